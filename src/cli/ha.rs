//! `twonode ha`: status, validate, simulate, what-if — ha-manager's view of a Proxmox VE cluster
//! (or of rgmanager's `<rm>` in a cman cluster.conf), and the HA core in the simulator.
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::cli::Global;
use crate::ha::sim::{invariant, simulate, simulate_with, twonode::Fencer};
use crate::ha::whatif::WhatIf;
use crate::util::Failure;

#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// A directory in pve-ha-manager's regression format (cmdlist, hardware_status,
    /// service_config, groups, rules_config, datacenter.cfg, manager_status); a twonode.json adds
    /// the two-node world (arbiter, BMCs, DRBD).
    pub dir: PathBuf,
    /// Write the log to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Compare the log with DIR/log.expect and check the safety invariant (a service never runs
    /// on two nodes; never recovered from a node that may still run it): exit 1 on a difference.
    #[arg(long)]
    pub check: bool,
    /// Fence for real: each fence runs `twonode fence NODE --action off --yes --file FILE` as the
    /// fencing node (TWONODE_LOCAL_NODE), with its arbiter gate and BMCs, instead of the
    /// simulated ones. Recovery waits for its confirmed power-off.
    #[arg(long, value_name = "CLUSTER_CONF")]
    pub fence_with: Option<PathBuf>,
}

/// The real fence path: this very binary's `fence` command, run as fenced would run an agent.
struct TwonodeFence {
    conf: PathBuf,
}

impl Fencer for TwonodeFence {
    fn fence(&mut self, by: &str, node: &str) -> Result<String, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find the twonode binary: {e}"))?;
        let out = std::process::Command::new(exe)
            .args(["fence", node, "--action", "off", "--yes", "--file"])
            .arg(&self.conf)
            .env("TWONODE_LOCAL_NODE", by)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("running twonode fence: {e}"))?;
        let cmd = format!("`twonode fence {node} --action off` run as {by}");
        if out.status.success() {
            return Ok(format!("{cmd}: power off confirmed by the BMC"));
        }
        let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
        let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output").trim().to_string();
        Err(format!("{cmd} failed (exit {}): {last}", out.status.code().unwrap_or(-1)))
    }
}

pub fn run_simulate(a: SimulateArgs, g: &Global) -> anyhow::Result<i32> {
    let res = match &a.fence_with {
        Some(conf) => simulate_with(&a.dir, Box::new(TwonodeFence { conf: conf.clone() })),
        None => simulate(&a.dir),
    };
    let (log, err) = res.map_err(|e| Failure::new(2, e))?;
    let text = log.join("\n") + "\n";
    let violations: Vec<String> = invariant::check(&log).into_iter().map(|v| format!("log line {}: {}", v.line, v.what)).collect();
    let mut differs = None;
    if a.check {
        let want_path = a.dir.join("log.expect");
        let mut want = String::new();
        std::fs::File::open(&want_path)
            .and_then(|mut f| f.read_to_string(&mut want))
            .map_err(|e| Failure::new(2, format!("{}: {e} (--check compares with it)", want_path.display())))?;
        if want != text {
            differs = Some(similar::TextDiff::from_lines(&want, &text).unified_diff().header("log.expect", "simulated").to_string());
        }
    }
    if let Some(p) = &a.log {
        write_file(p, &text)?;
    }
    if g.json {
        crate::util::print_json(&serde_json::json!({
            "dir": a.dir, "log": log, "error": err, "violations": violations, "differs_from_log_expect": differs,
        }))?;
    } else {
        if a.log.is_none() {
            print!("{text}");
        }
        for v in &violations {
            eprintln!("twonode: SAFETY: {v}");
        }
        if let Some(d) = &differs {
            eprintln!("twonode: the log differs from {}:\n{d}", a.dir.join("log.expect").display());
        }
        if let Some(e) = &err {
            eprintln!("twonode: the simulation stopped: {e}");
        }
    }
    Ok(if err.is_some() || !violations.is_empty() || differs.is_some() { 1 } else { 0 })
}

fn write_file(p: &Path, text: &str) -> anyhow::Result<()> {
    crate::clusterconf::store::atomic_write(p, text.as_bytes(), None).map_err(|e| Failure::new(2, e.to_string()).into())
}

/// Print a what-if result for people.
pub fn print_what_if(w: &WhatIf) {
    println!("what if {}:", w.event);
    let width = w.outcomes.iter().map(|o| o.sid.len()).max().unwrap_or(6);
    for o in &w.outcomes {
        let place = match (&o.after, o.state.as_str()) {
            (Some(n), "started") if *n == o.before => format!("stays on {n}"),
            (Some(n), "started") => format!("runs on {n}"),
            (Some(n), st) => format!("{st} (on {n})"),
            (None, st) => st.to_string(),
        };
        let when = o.back_after_s.map(|s| format!(", running again after {s} s")).unwrap_or_default();
        println!("  {:width$}  {} -> {place}{when}", o.sid, o.before);
        for b in &o.blocked_by {
            println!("  {:width$}    blocked: {b}", "");
        }
    }
    for v in &w.violations {
        println!("  SAFETY: {v}");
    }
}

/// `twonode ha`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  twonode ha status                          ha-manager's view from /etc/pve (master, LRMs, services)
  twonode ha validate --cluster-conf /etc/cluster/cluster.conf
                                             rgmanager's <rm> checked against its cluster
  twonode ha what-if --fail node2            where every service ends up when node2 dies
  twonode ha simulate tests/ha-regression/tn-dead-bmc --check
                                             a regression directory against its golden log")]
pub struct Args {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// ha-manager's status from manager_status and the configuration: master, LRMs, services.
    Status(SourceArgs),
    /// Check the HA configuration against its cluster (line:col findings; exit 1 on errors).
    Validate(SourceArgs),
    /// Run a regression directory (pve-ha-manager's format, twonode.json for two nodes) and print its log.
    Simulate(SimulateArgs),
    /// Replay one failure against the configuration: where every service ends up, after how long, and what blocks it.
    WhatIf(WhatIfArgs),
}

/// Where the HA configuration is read from.
#[derive(clap::Args, Debug, Clone)]
pub struct SourceArgs {
    /// A Proxmox VE cluster file system (or a copy of it): ha/resources.cfg, ha/groups.cfg,
    /// ha/rules.cfg, ha/manager_status, datacenter.cfg, corosync.conf, storage.cfg,
    /// replication.cfg, nodes/*/. Default: /etc/pve when it has ha/, else --cluster-conf's default.
    #[arg(long, value_name = "DIR", conflicts_with = "cluster_conf")]
    pub pve_dir: Option<PathBuf>,
    /// A cman cluster.conf whose <rm> (failover domains, services, pvevm) is the HA configuration.
    #[arg(long, value_name = "FILE")]
    pub cluster_conf: Option<PathBuf>,
    /// JSON saying where each service's storage is, when the configuration cannot:
    /// {"vm:100": {"drbd": ["r0"], "nodes": ["node1","node2"]}, "vm:101": {"replication": ["node2"]}}
    /// (drbd: its DRBD resources; nodes: the nodes that have its storage; replication: targets).
    #[arg(long, value_name = "FILE")]
    pub storage_map: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct WhatIfArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// NODE dies and does not come back.
    #[arg(long, value_name = "NODE", conflicts_with_all = ["split", "shutdown"])]
    pub fail: Option<String>,
    /// The link between the two nodes is cut (two-node clusters).
    #[arg(long, conflicts_with = "shutdown")]
    pub split: bool,
    /// NODE is shut down cleanly (the shutdown policy applies).
    #[arg(long, value_name = "NODE")]
    pub shutdown: Option<String>,
    /// Print the simulated log too.
    #[arg(long)]
    pub log: bool,
}

/// The loaded configuration, whichever stack it came from.
struct Loaded {
    label: String,
    config: crate::ha::model::HaConfig,
    cluster: crate::ha::config::pve::ClusterFacts,
    storage: crate::ha::validate::StorageFacts,
    files: crate::ha::validate::Files,
    pve: Option<crate::ha::config::pve::PveHa>,
}

fn load(a: &SourceArgs) -> anyhow::Result<Loaded> {
    use crate::ha::config::{pve, rgmanager};
    use crate::ha::validate::Files;
    let pve_dir = match (&a.pve_dir, &a.cluster_conf) {
        (Some(d), _) => Some(d.clone()),
        (None, Some(_)) => None,
        (None, None) => Some(PathBuf::from("/etc/pve")).filter(|d| d.join("ha").is_dir()),
    };
    if let Some(d) = pve_dir {
        let h = pve::load_pve(&d).map_err(|e| Failure::new(2, e))?;
        let storage = pve::load_storage(&h);
        let files = Files { shutdown_policy_at: h.shutdown_policy_at, ..Files::pve() };
        let l = Loaded { label: d.display().to_string(), config: h.config.clone(), cluster: h.cluster.clone(), storage, files, pve: Some(h) };
        return with_storage_map(l, a);
    }
    let path = a.cluster_conf.clone().unwrap_or_else(crate::clusterconf::store::default_path);
    let r = rgmanager::load_rgmanager(&path).map_err(|e| Failure::new(2, e))?;
    let label = path.display().to_string();
    with_storage_map(Loaded { files: Files::cman(&label), label, config: r.config, cluster: r.cluster, storage: Default::default(), pve: None }, a)
}

fn with_storage_map(mut l: Loaded, a: &SourceArgs) -> anyhow::Result<Loaded> {
    let Some(p) = &a.storage_map else { return Ok(l) };
    let text = std::fs::read_to_string(p).map_err(|e| Failure::new(2, format!("{}: {e}", p.display())))?;
    crate::ha::config::storage_map::apply_storage_map(&text, &mut l.config, &mut l.storage).map_err(|e| Failure::new(2, format!("{}:{}:{}: {}", p.display(), e.line, e.col, e.msg)))?;
    Ok(l)
}

fn run_status(a: SourceArgs, g: &Global) -> anyhow::Result<i32> {
    use crate::ha::status_view::{entries, render, Inputs};
    let l = load(&a)?;
    let empty = Default::default();
    let lrm = l.pve.as_ref().map(|p| &p.lrm).unwrap_or(&empty);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let i = Inputs {
        manager_status: l.pve.as_ref().and_then(|p| p.manager_status.as_ref()),
        services: &l.config.services,
        lrm,
        quorate: l.pve.as_ref().and_then(|p| p.quorate),
        local_node: l.pve.as_ref().and_then(|p| p.local_node.as_deref()),
        crs_ha: l.config.datacenter.crs_ha.as_deref(),
        now,
    };
    let e = entries(&i);
    if g.json {
        let master = i.manager_status.and_then(|m| m.master_node.clone());
        let of = |k: &str| e.iter().filter(|x| x.kind == k).collect::<Vec<_>>();
        crate::util::print_json(&serde_json::json!({
            "source": l.label, "master": master, "timestamp": i.manager_status.and_then(|m| m.timestamp),
            "quorate": i.quorate, "lrm": of("lrm"), "services": of("service"), "entries": e,
        }))?;
        return Ok(0);
    }
    print!("{}", render(&e));
    if l.pve.is_none() {
        eprintln!("twonode: {}: rgmanager keeps no manager_status: these are the configured services (`clustat` shows where they run)", l.label);
    } else if i.manager_status.is_none() {
        eprintln!("twonode: {}: no ha/manager_status: the HA manager has not run yet", l.label);
    }
    Ok(0)
}

fn run_validate(a: SourceArgs, g: &Global) -> anyhow::Result<i32> {
    let l = load(&a)?;
    let f = crate::ha::validate::validate(&l.config, &l.cluster, &l.storage, &l.files);
    let errors = f.iter().filter(|x| x.severity == crate::diag::Severity::Error).count();
    if g.json {
        crate::util::print_json(&serde_json::json!({"source": l.label, "cluster": l.cluster, "findings": f, "errors": errors}))?;
    } else {
        for x in &f {
            let file = if l.pve.is_some() { format!("{}/{}", l.label.trim_end_matches('/'), x.file) } else { x.file.clone() };
            println!("{file}:{}:{}: {}: {} [{}]", x.line, x.col, x.severity.name(), x.message, x.code);
            if !x.fix.is_empty() {
                println!("    fix: {}", x.fix);
            }
        }
        if f.is_empty() {
            println!("{}: {} HA service(s) on {} node(s): no findings", l.label, l.config.services.len(), l.cluster.nodes.len());
        }
    }
    Ok(if errors > 0 { 1 } else { 0 })
}

fn run_what_if(a: WhatIfArgs, g: &Global) -> anyhow::Result<i32> {
    use crate::ha::whatif::{two_node_world, what_if, Event};
    let l = load(&a.source)?;
    let event = match (&a.fail, a.split, &a.shutdown) {
        (Some(n), _, _) => Event::Fail(n.clone()),
        (_, true, _) => Event::Split,
        (_, _, Some(n)) => Event::Shutdown(n.clone()),
        _ => return Err(Failure::new(2, "say what happens: --fail NODE, --split or --shutdown NODE").into()),
    };
    if l.cluster.nodes.is_empty() {
        return Err(Failure::new(2, format!("{}: no cluster nodes found (corosync.conf / <clusternodes>)", l.label)).into());
    }
    let two = two_node_world(&l.cluster);
    let w = what_if(&l.config, &l.cluster.nodes, two, &event).map_err(|e| Failure::new(2, e))?;
    if g.json {
        crate::util::print_json(&w)?;
    } else {
        if a.log {
            for line in &w.log {
                println!("{line}");
            }
            println!();
        }
        print_what_if(&w);
    }
    Ok(if w.violations.is_empty() { 0 } else { 1 })
}

pub fn run(a: Args, g: &Global) -> anyhow::Result<i32> {
    match a.cmd {
        Cmd::Status(s) => run_status(s, g),
        Cmd::Validate(s) => run_validate(s, g),
        Cmd::Simulate(s) => run_simulate(s, g),
        Cmd::WhatIf(w) => run_what_if(w, g),
    }
}
