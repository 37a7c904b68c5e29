//! Scenarios: failures an admin rehearses in the lab, each a list of `Step`s run against a fresh
//! `Lab` (both BMCs, the arbiter, two DRBD nodes over SSH, a ready cluster.conf). Each prints what
//! happened and why, step by step; its normalised log is a golden regression log in
//! `fixtures/lab/scenarios/NAME.golden` (tests/lab_scenarios.rs; bless with TWONODE_BLESS=1).
//!
//! A scenario module adds ONE line to `all()`.
use super::rig::{Lab, LabOptions};
use anyhow::Context;
use std::path::PathBuf;

pub use super::steps::{Kind, Runner, Step};

/// One rehearsal.
pub struct Scenario {
    /// Command-line name (`twonode lab scenario NAME`), also the golden log's file name.
    pub name: &'static str,
    /// One line.
    pub title: &'static str,
    /// What it rehearses and what the admin learns (printed at the start).
    pub story: &'static str,
    /// Programs (or lab parts) it cannot run without: "ipmi_sim", "sshd", "drbdadm", "arbiter",
    /// or any program name looked up in PATH. Missing → the scenario is skipped with a message.
    pub needs: &'static [&'static str],
    pub steps: fn() -> Vec<Step>,
}

/// Every scenario, in the order `twonode lab demo` plays them.
pub fn all() -> Vec<Scenario> {
    let mut v = Vec::new();
    v.extend(super::faults::scenarios()); // labscen: dead-bmc, no-power-on
    v.extend(super::splitbrain::scenarios()); // labscen: split-brain
    v.extend(super::split::scenarios()); // labsplit: fence-race, split-no-arbiter, split-arbiter
    v.extend(super::ha::scenarios()); // labha: ha-failover
    v.extend(super::pacemaker_split::scenarios()); // pcmkdrbd: pacemaker-split
    v
}

pub fn find(name: &str) -> Option<Scenario> {
    all().into_iter().find(|s| s.name == name)
}

/// What running a scenario produced.
pub struct Outcome {
    /// Normalised log (the golden-log text), starting with the scenario's header.
    pub log: String,
    pub report: Vec<serde_json::Value>,
    pub failed: Option<String>,
    /// Why it was skipped (a missing program).
    pub skipped: Option<String>,
}

/// The header line every scenario's log starts with (also what separates scenarios in the demo log).
pub fn header(sc: &Scenario) -> String {
    format!("#### scenario {}: {}\n{}\n", sc.name, sc.title, super::steps::wrap(sc.story, "   ", "   "))
}

/// Start a lab in DIR and run SC in it.
pub fn run_in(sc: &Scenario, dir: PathBuf, json: bool) -> anyhow::Result<Outcome> {
    let lab = Lab::start(dir, LabOptions::full())?;
    let missing: Vec<&str> = sc.needs.iter().copied().filter(|p| !lab.has(p)).collect();
    let mut r = Runner::new(&lab, json)?;
    r.text(&header(sc));
    if !missing.is_empty() {
        let why = format!(
            "needs {} (not available here: {}); `scripts/install-deps` installs openipmi, openssh-server, drbd-utils",
            missing.join(", "),
            if lab.notes.is_empty() { "not installed".to_string() } else { lab.notes.join("; ") }
        );
        r.text(&format!("(skipped: {why})\n\n"));
        return Ok(Outcome { log: r.log, report: r.report, failed: None, skipped: Some(why) });
    }
    for note in &lab.notes {
        if !json {
            eprintln!("lab: {note}");
        }
    }
    for step in (sc.steps)() {
        if !r.run(&step)? {
            break;
        }
    }
    let failed = r.failed.take();
    Ok(Outcome { log: r.log, report: r.report, failed, skipped: None })
}

/// `twonode lab scenario --list`.
pub fn list(json: bool) -> anyhow::Result<i32> {
    let all = all();
    if json {
        let v: Vec<_> = all
            .iter()
            .map(|s| serde_json::json!({ "name": s.name, "title": s.title, "story": s.story, "needs": s.needs, "steps": (s.steps)().len() }))
            .collect();
        crate::util::print_json(&v)?;
        return Ok(0);
    }
    let width = all.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in &all {
        println!("{:width$}  {}", s.name, s.title);
    }
    println!("\nrun one: twonode lab scenario NAME [--keep DIR] [--log FILE]; all of them: twonode lab demo");
    Ok(0)
}

/// `twonode lab scenario NAME [--keep DIR] [--log FILE] [--json]`.
pub fn run(name: &str, keep: Option<PathBuf>, log: Option<PathBuf>, json: bool) -> anyhow::Result<i32> {
    let Some(sc) = find(name) else {
        let names: Vec<&str> = all().iter().map(|s| s.name).collect();
        return Err(anyhow::Error::new(crate::util::Failure::new(
            2,
            format!("no scenario named {name:?}; there are: {} (`twonode lab scenario --list`)", names.join(", ")),
        )));
    };
    let tmp;
    let kept = keep.is_some();
    let dir = match keep {
        Some(d) => {
            super::rig::fresh_dir(&d)?;
            d
        }
        None => {
            tmp = super::rig::temp_dir()?;
            tmp.path().to_path_buf()
        }
    };
    let out = run_in(&sc, dir.clone(), json)?;
    if let Some(path) = log {
        std::fs::write(&path, &out.log).with_context(|| format!("writing {}", path.display()))?;
    }
    if json {
        crate::util::print_json(&serde_json::json!({
            "scenario": sc.name, "lab": dir, "steps": out.report, "failed": out.failed, "skipped": out.skipped,
        }))?;
    } else {
        match (&out.failed, &out.skipped) {
            (Some(why), _) => println!("scenario {} stopped: {why}", sc.name),
            (None, Some(_)) => println!("scenario {} skipped", sc.name),
            (None, None) if kept => println!("scenario {} complete; the lab stays in {}", sc.name, dir.display()),
            (None, None) => println!("scenario {} complete (lab removed; `--keep DIR` keeps it to explore)", sc.name),
        }
    }
    Ok(if out.failed.is_some() { 1 } else { 0 })
}
