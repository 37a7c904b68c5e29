//! Fencing: one engine (cascade of methods, reboot = off/verify/on/verify) over small power drivers.
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
