//! `twonode lab demo`: a guided, non-interactive tour. Each step runs the real `twonode` binary
//! exactly as an admin would type it, inside a lab directory, and prints the command, why it
//! matters, and what it printed. The normalised log doubles as a golden regression test.
//! The steps and their runner live in [`super::steps`].
use anyhow::Context;
use std::path::PathBuf;

use super::steps::{Lab, Runner, Step};

/// The cluster.conf part of the tour.
pub fn conf_steps() -> Vec<Step> {
    let f = "--file $LAB/cluster.conf";
    vec![
        Step::new(
            "Create a two-node cluster.conf",
            "A skeleton: two nodes of one vote each, two_node=1 and expected_votes=1, written in place.",
            &format!("conf init --name lab --node node1 --node node2 --in-place {f}"),
            0,
        ),
        Step::new(
            "Validate it",
            "Valid XML and schema, but no fence method: fenced would retry forever when a node fails.",
            &format!("conf validate {f}"),
            0,
        ),
        Step::new(
            "Add node1's IPMI BMC (password on stdin)",
            "The edit goes to cluster.conf.new with config_version+1; the password never reaches argv, logs or diffs.",
            &format!("conf device add ipmi-node1 --agent fence_ipmilan ipaddr=127.0.0.1 ipport=$IPMI_PORT login=admin lanplus=1 cipher=17 power_timeout=8 --secret-stdin passwd {f}"),
            0,
        )
        .stdin("secret\n"),
        Step::new(
            "Add node2's iLO the RHEL 5 way (hostname=)",
            "Staging allows it, but the validator flags it: fence-agents 4.x ignores hostname= and fencing breaks.",
            &format!("conf device add ilo-node2 --agent fence_ilo hostname=ilo-node2.example ipport=$ILO_PORT login=admin ssl_insecure=1 --secret-stdin passwd {f}"),
            0,
        )
        .stdin("secret\n"),
        Step::new(
            "Bind node1 to its BMC, with a delay",
            "A delay on ONE node decides the two-node fence race: whoever fences node1 waits 5 s, so node1 wins.",
            &format!("conf bind node1 ipmi-node1 --method ipmi delay=5 {f}"),
            0,
        ),
        Step::new(
            "Bind node2 to its iLO",
            "Each node gets a method; methods are tried in order (cascade).",
            &format!("conf bind node2 ilo-node2 --method ilo {f}"),
            0,
        ),
        Step::new(
            "Try to activate",
            "apply validates first: with an error nothing is changed.",
            &format!("conf apply {f}"),
            1,
        ),
        Step::new(
            "Fix the iLO address",
            "Only the bytes of that one attribute (and config_version) change.",
            &format!("conf device set ilo-node2 ipaddr=127.0.0.1 --unset hostname {f}"),
            0,
        ),
        Step::new(
            "Review live against staged",
            "What `cman_tool version -r` would load; passwords are masked on both sides.",
            &format!("conf diff {f}"),
            0,
        ),
        Step::new(
            "Activate",
            "Validates, checks the version is higher, keeps cluster.conf.old, replaces the file atomically.",
            &format!("conf apply {f}"),
            0,
        ),
        Step::new(
            "Show what fenced will do",
            "The typed view of the live file.",
            &format!("conf show {f}"),
            0,
        ),
    ]
}

/// The fencing part: the devices configured above, against the lab's simulated BMCs.
pub fn fence_steps() -> Vec<Step> {
    let f = "--file $LAB/cluster.conf";
    let audit = "--audit-log $LAB/fence-audit.log";
    vec![
        Step::new(
            "Test every fence device before production",
            "Reachable, login, status and timing of every device of every node, plus the config risks.",
            &format!("fence test {f}"),
            0,
        ),
        Step::new(
            "Read node2's power state",
            "Through its iLO (RIBCL over TLS); exit 0 means on, 2 means off, as fence agents do.",
            &format!("fence node2 --action status {f}"),
            0,
        ),
        Step::new(
            "Fence node2",
            "reboot = off, confirm off by reading the state back, on, confirm on. Audited.",
            &format!("fence node2 --action reboot --yes {audit} {f}"),
            0,
        ),
        Step::new(
            "Fence node1 whose BMC ignores power-on",
            "Waits node1's 5 s delay, powers off (confirmed), then power-on never comes within power_timeout=8: \
             reported as fenced but power-on FAILED (exit 8), where fence_ipmilan says Success.",
            &format!("fence node1 --action reboot --yes {audit} {f}"),
            8,
        )
        .before(|lab| lab.ignore_power_on("node1", true)),
        Step::new(
            "Power node1 on again once the fault is fixed",
            "Verified: the command returns only when the BMC reports on.",
            &format!("fence node1 --action on --yes {audit} {f}"),
            0,
        )
        .before(|lab| lab.ignore_power_on("node1", false)),
    ]
}

/// Where the steps come from: every area contributes its part of the tour.
pub fn tour() -> Vec<Step> {
    let mut steps = conf_steps();
    steps.extend(fence_steps());
    steps
}

/// Run the tour, then every registered scenario (each in a fresh lab); returns the exit code (0
/// when every step ended as expected).
pub fn run(keep: Option<PathBuf>, log: Option<PathBuf>, json: bool) -> anyhow::Result<i32> {
    let tmp;
    let kept = keep.is_some();
    let lab: PathBuf = match keep {
        Some(dir) => {
            super::rig::fresh_dir(&dir)?;
            dir
        }
        None => {
            tmp = super::rig::temp_dir()?;
            tmp.path().to_path_buf()
        }
    };
    let mut text = String::new();
    let mut reports = Vec::new();
    let mut failed;
    let mut steps = 0;
    let mut played = 0;
    {
        let lab_env = Lab::start(lab.clone(), super::rig::LabOptions::default())?;
        for note in &lab_env.notes {
            eprintln!("lab: {note}");
        }
        let mut r = Runner::new(&lab_env, json)?;
        for step in tour() {
            if !r.run(&step)? {
                break;
            }
        }
        text.push_str(&r.log);
        steps += r.report.iter().filter(|e| e.get("step").is_some()).count();
        failed = r.failed.take();
        reports.push(serde_json::json!({ "part": "tour", "lab": lab, "steps": r.report, "failed": failed }));
    }
    if failed.is_none() {
        for sc in super::scenario::all() {
            let dir = lab.join("scenarios").join(sc.name);
            let out = super::scenario::run_in(&sc, dir.clone(), json)?;
            text.push_str(&out.log);
            steps += out.report.iter().filter(|e| e.get("step").is_some()).count();
            played += 1;
            reports.push(serde_json::json!({ "part": sc.name, "lab": dir, "steps": out.report, "failed": out.failed, "skipped": out.skipped }));
            if let Some(f) = out.failed {
                failed = Some(format!("scenario {}: {f}", sc.name));
                break;
            }
        }
    }
    if let Some(path) = log {
        std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    if json {
        crate::util::print_json(&serde_json::json!({ "lab": lab, "parts": reports, "failed": failed }))?;
    } else {
        match &failed {
            Some(why) => println!("tour stopped: {why}"),
            None if kept => println!("tour complete: the tour and {played} scenarios, {steps} steps; the lab stays in {}", lab.display()),
            None => println!("tour complete: the tour and {played} scenarios, {steps} steps (lab removed; `--keep DIR` keeps it to explore)"),
        }
    }
    Ok(if failed.is_some() { 1 } else { 0 })
}
