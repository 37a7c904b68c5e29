//! Fencing: one engine (cascade of methods, reboot = off/verify/on/verify) over small power drivers.
//!
//! Map:
//! * pure cores: `engine.rs` (cascade, timeouts, outcomes, the `Gatekeeper` seam), `spec.rs`
//!   (device parameters as fenced merges them, `Timing`, `ClusterConf`: cluster.conf read once),
//!   `options.rs` (the ONE fence-agent option layer: fence-agents' option table and aliases,
//!   stdin and getopt parsers, metadata writer, exit codes, the password script), `config.rs`
//!   (typed driver configs built once: IPMI, the HTTPS BMCs), `test.rs` (`fence test`'s checks,
//!   risks and report; its command line is `cli/fence.rs`), `gate/` (the arbiter gate: settings,
//!   layout, decide, rules for the validator, the gate-fencing edit; see `gate/mod.rs`).
//! * drivers: `power.rs` (trait `PowerDevice`), `drivers.rs` (the real opener), `ipmi.rs`,
//!   `ribcl.rs`, `redfish.rs` (over `tls.rs`), `external.rs`; `agent.rs` (`fence agent` mode),
//!   `audit.rs`, `sim.rs` (simulated devices), `gate/{agent,keeper,probe}.rs`.
pub mod power;
pub mod ipmi;
pub mod engine;
pub mod sim;
pub mod spec;
pub mod external;
pub mod drivers;
pub mod agent;
pub mod audit;
pub mod test;
pub mod ribcl;
pub mod tls;
pub mod redfish;
pub mod gate;
pub mod snmp;
pub mod apc_snmp;
pub mod rmcp;
pub mod options;
pub mod config;

/// The fence layer's cluster.conf rules (the arbiter gate's), for the validator.
pub fn conf_rules() -> Vec<crate::clusterconf::validate::RuleSet> {
    vec![gate::RULES]
}

/// Validate cluster.conf as `twonode conf validate` does: clusterconf's rules plus the fence
/// layer's ([`conf_rules`]) on top of whatever `opts.rules` already holds.
pub fn validate_conf(bytes: &[u8], opts: &crate::clusterconf::validate::Options) -> crate::clusterconf::validate::Report {
    let mut o = opts.clone();
    o.rules.extend(conf_rules());
    crate::clusterconf::validate::validate(bytes, &o)
}
