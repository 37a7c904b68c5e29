//! `twonode pacemaker`: read a pacemaker CIB (a file or `cibadmin -Q`), show its fencing as twonode
//! sees it, and validate it against corosync.conf and the DRBD configuration.
use super::Global;
use crate::pacemaker::checks::{self, CorosyncFacts, DrbdFacts, Finding};
use crate::pacemaker::cib::{Cib, LevelTarget, Targets, Usable};
use crate::util::{print_json, Failure};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// The CIB as twonode reads it: for each node the devices that fence it, in the fencer's order
    /// (topology levels, else every device whose targets name it), the cluster properties that
    /// matter for fencing, DRBD promotable clones and constraints. Passwords are masked.
    ///
    /// Exit codes: 0 shown; 2 CIB unreadable.
    #[command(after_help = "Examples:\n  twonode pacemaker show --cib live\n  cibadmin -Q > cib.xml && twonode pacemaker show --cib cib.xml --json")]
    Show {
        /// CIB XML file (`cibadmin -Q > cib.xml`, a crm_report's cib.xml), or `live` to run `cibadmin -Q` here.
        #[arg(long, value_name = "FILE|live")]
        cib: String,
    },
    /// Findings about the CIB's fencing, quorum policy and DRBD integration, each with its
    /// evidence and the pcs and crm commands that fix it.
    ///
    /// Exit codes: 0 no error; 1 error(s) found; 2 input unreadable.
    #[command(after_help = "Examples:\n  twonode pacemaker validate --cib cib.xml --corosync /etc/corosync/corosync.conf --drbd-conf /etc/drbd.d/r0.res\n  drbdadm status > st.txt; twonode pacemaker validate --cib live --drbd-status st.txt --json")]
    Validate {
        /// CIB XML file, or `live` to run `cibadmin -Q` here.
        #[arg(long, value_name = "FILE|live")]
        cib: String,
        /// corosync.conf, for two_node and the quorum device (without it, two nodes in the CIB
        /// are taken for two_node and the race findings are warnings).
        #[arg(long, value_name = "FILE")]
        corosync: Option<PathBuf>,
        /// DRBD configuration (drbd.conf, a .res file or `drbdadm dump` output): fencing policy,
        /// handlers, resource names.
        #[arg(long, value_name = "FILE")]
        drbd_conf: Option<PathBuf>,
        /// `drbdadm status` output of a node: decides whether a crm-fence-peer constraint is stale.
        #[arg(long, value_name = "FILE")]
        drbd_status: Option<PathBuf>,
    },
}

pub fn run(a: Args, g: &Global) -> anyhow::Result<i32> {
    match a.cmd {
        Cmd::Show { cib } => {
            let (name, cib) = load_cib(&cib)?;
            show(&name, &cib, g)
        }
        Cmd::Validate { cib, corosync, drbd_conf, drbd_status } => {
            let (name, cib) = load_cib(&cib)?;
            let corosync = match corosync {
                Some(p) => {
                    let t = read(&p)?;
                    Some(CorosyncFacts::from_text(&t, &p.display().to_string()).map_err(|e| Failure::new(2, format!("corosync.conf unreadable: {e}")))?)
                }
                None => None,
            };
            let mut drbd = DrbdFacts::default();
            if let Some(p) = drbd_conf {
                let st = crate::drbd::parse::parse_auto(&read(&p)?).map_err(|e| Failure::new(2, format!("{}: DRBD configuration unreadable: {e}", p.display())))?;
                if st.configs.is_empty() {
                    return Err(Failure::new(2, format!("{}: no DRBD resource configuration in it (give drbd.conf, a .res file or `drbdadm dump` output)", p.display())).into());
                }
                drbd.config_source = Some(p.display().to_string());
                drbd.configs = Some(st.configs);
            }
            if let Some(p) = drbd_status {
                let st = crate::drbd::parse::parse_auto(&read(&p)?).map_err(|e| Failure::new(2, format!("{}: DRBD status unreadable: {e}", p.display())))?;
                drbd.status_source = Some(p.display().to_string());
                drbd.status = Some(st.resources);
            }
            let findings = checks::check(&cib, corosync.as_ref(), &drbd);
            validate_out(&name, &findings, g)
        }
    }
}

fn read(p: &std::path::Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(p).map_err(|e| Failure::new(2, format!("cannot read {}: {e}", p.display())))?;
    String::from_utf8(bytes).map_err(|_| Failure::new(2, format!("{}: not UTF-8 text", p.display())).into())
}

/// The CIB from a file, or from `cibadmin -Q` for `live` (`pacemaker::source`); unreadable: exit 2.
fn load_cib(spec: &str) -> anyhow::Result<(String, Cib)> {
    crate::pacemaker::source::load(spec, None).map_err(|e| Failure::new(2, e.message).into())
}

fn targets_text(t: &Targets) -> String {
    match t {
        Targets::Static { nodes } => nodes
            .iter()
            .map(|(n, p)| match p {
                Some(p) if p != n => format!("{n} (port {p})"),
                _ => n.clone(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Targets::Unknown { why } => format!("targets unknown: {why}"),
        Targets::Any => "any node (pcmk_host_check=none)".into(),
    }
}

fn usable_text(u: Usable) -> &'static str {
    match u {
        Usable::Yes => "",
        Usable::Unknown => " [targets unknown]",
        Usable::Disabled => " [DISABLED: target-role=Stopped]",
        Usable::NotATarget => " [does not list this node]",
        Usable::Missing => " [NO SUCH DEVICE]",
    }
}

fn show(name: &str, cib: &Cib, g: &Global) -> anyhow::Result<i32> {
    let nodes = cib.node_names();
    let plans: Vec<_> = nodes.iter().map(|n| cib.fence_plan(n)).collect();
    if g.json {
        print_json(&serde_json::json!({
            "cib": name,
            "fencing_enabled": cib.fencing_enabled(),
            "nodes": nodes,
            "fence_plans": plans,
            "model": cib,
        }))?;
        return Ok(0);
    }
    println!("CIB {name} ({})", cib.validate_with.as_deref().unwrap_or("schema unknown"));
    println!("fencing: {}", if cib.fencing_enabled() { "enabled" } else { "DISABLED" });
    println!("\nnodes:");
    for n in &nodes {
        let state = cib.node_states.iter().find(|s| &s.uname == n).map_or("no status".to_string(), |s| {
            if s.online() {
                "online".into()
            } else {
                format!("offline (in_ccm={} crmd={})", s.in_ccm.as_deref().unwrap_or("-"), s.crmd.as_deref().unwrap_or("-"))
            }
        });
        println!("  {n}: {state}");
    }
    println!("\nfencing per node (the fencer's order):");
    for p in &plans {
        let how = match &p.topology_target {
            Some(t) if p.ambiguous_with.is_empty() => format!("fencing topology, {t}"),
            Some(t) => format!("fencing topology, {t}; ALSO MATCHING {}: pacemaker uses one of them, in undefined order", p.ambiguous_with.join(", ")),
            None => "devices whose targets name it".to_string(),
        };
        println!("  {} ({how}):", p.node);
        if p.levels.is_empty() {
            println!("    NOTHING can fence {}", p.node);
        }
        for l in &p.levels {
            let devs: Vec<String> = l
                .devices
                .iter()
                .map(|d| {
                    let port = d.port.as_ref().map(|p| format!(" port {p}")).unwrap_or_default();
                    format!("{}{port}{}", d.id, usable_text(d.usable))
                })
                .collect();
            if p.from_topology {
                println!("    level {}: {}", l.index, devs.join(" + "));
            } else {
                println!("    - {}", devs.join(" + "));
            }
        }
    }
    println!("\ndevices:");
    for d in &cib.devices {
        let mut extra = Vec::new();
        if let Some(b) = &d.delay_base {
            extra.push(format!("pcmk_delay_base={}", d.param("pcmk_delay_base").map(|p| p.shown()).unwrap_or("")));
            let _ = b;
        }
        if let Some(m) = d.param("pcmk_delay_max") {
            extra.push(format!("pcmk_delay_max={}", m.shown()));
        }
        for k in ["pcmk_reboot_action", "pcmk_off_action"] {
            if let Some(p) = d.param(k) {
                extra.push(p.to_string());
            }
        }
        if d.disabled() {
            extra.push("target-role=Stopped".into());
        }
        println!("  {} ({}): fences {}{}", d.id, d.agent, targets_text(&d.targets), if extra.is_empty() { String::new() } else { format!("; {}", extra.join(", ")) });
        let params: Vec<String> = d.params.iter().filter(|p| !p.name.starts_with("pcmk_")).map(|p| p.to_string()).collect();
        if !params.is_empty() {
            println!("      {}", params.join(" "));
        }
        let allowed = cib.device_allowed_nodes(&d.id);
        if allowed.len() < nodes.len() {
            println!("      may run on: {}", if allowed.is_empty() { "no node".to_string() } else { allowed.join(", ") });
        }
    }
    if !cib.levels.is_empty() {
        println!("\nfencing topology:");
        for l in &cib.levels {
            let t = match &l.target {
                LevelTarget::Node { name } => name.clone(),
                LevelTarget::Pattern { regex } => format!("target-pattern {regex}"),
                LevelTarget::Attribute { name, value } => format!("target-attribute {name}={value}"),
            };
            println!("  {t}: level {} = {}", l.index, l.devices.join(","));
        }
    }
    println!("\nproperties:");
    let shown = [
        "stonith-enabled",
        "fencing-enabled",
        "stonith-action",
        "stonith-timeout",
        "priority-fencing-delay",
        "no-quorum-policy",
        "startup-fencing",
        "concurrent-fencing",
        "stonith-watchdog-timeout",
        "symmetric-cluster",
    ];
    for k in shown {
        if let Some(p) = cib.property(k) {
            println!("  {k}={}", p.value);
        }
    }
    for p in &cib.priorities {
        println!("  resource {} priority={}", p.id, p.priority);
    }
    if !cib.drbd.is_empty() {
        println!("\nDRBD resources:");
        for c in &cib.drbd {
            println!(
                "  {} ({}{}): drbd_resource={}",
                c.clone_id,
                if c.promotable { "promotable" } else { "NOT promotable" },
                if c.legacy_master { ", legacy <master>" } else { "" },
                c.drbd_resource.as_deref().unwrap_or("MISSING")
            );
        }
    }
    if !cib.locations.is_empty() {
        println!("\nlocation constraints:");
        for l in &cib.locations {
            if l.is_fence_by_handler() {
                println!("  {} on {}: crm-fence-peer: promotion only on {}", l.id, l.rsc, l.fence_handler_keeps().unwrap_or("?"));
            } else if let Some(n) = &l.node {
                println!("  {} : {} on {n} score {}", l.id, l.rsc, l.score.as_deref().unwrap_or("?"));
            } else {
                println!("  {} : {} (rules)", l.id, l.rsc);
            }
        }
    }
    Ok(0)
}

fn validate_out(name: &str, findings: &[Finding], g: &Global) -> anyhow::Result<i32> {
    let errors = findings.iter().filter(|f| f.severity == crate::diag::Severity::Error).count();
    let warnings = findings.iter().filter(|f| f.severity == crate::diag::Severity::Warning).count();
    if g.json {
        print_json(&serde_json::json!({"cib": name, "valid": errors == 0, "errors": errors, "warnings": warnings, "findings": findings}))?;
    } else {
        for f in findings {
            let at = if f.line > 0 { format!("{name}:{}: ", f.line) } else { format!("{name}: ") };
            println!("{at}{}[{}]: {}", f.severity.name(), f.code, f.message);
            for e in &f.evidence {
                println!("    evidence: {e}");
            }
            if let Some(c) = &f.fix.pcs {
                println!("    fix (pcs): {c}");
            }
            if let Some(c) = &f.fix.crm {
                println!("    fix (crm): {c}");
            }
            if let Some(c) = &f.fix.other {
                println!("    fix: {c}");
            }
        }
        println!("{name}: {} ({errors} error(s), {warnings} warning(s))", if errors > 0 { "INVALID" } else { "valid" });
    }
    Ok(if errors > 0 { 1 } else { 0 })
}
