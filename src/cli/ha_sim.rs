//! `twonode ha simulate` and `twonode ha what-if`: the HA core in the simulator.
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

/// `twonode ha` (the simulator part; status/validate join it from cli/ha.rs).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Run a regression directory (pve-ha-manager's format, twonode.json for two nodes) and print its log.
    Simulate(SimulateArgs),
}

pub fn run(a: Args, g: &Global) -> anyhow::Result<i32> {
    match a.cmd {
        Cmd::Simulate(s) => run_simulate(s, g),
    }
}
