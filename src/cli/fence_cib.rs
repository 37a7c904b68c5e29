//! `twonode fence NODE --cib FILE|live` and `twonode fence test --cib ...`: a pacemaker cluster's
//! fencing through twonode's own engine. The mapping (CIB devices and topology -> fence targets)
//! is `crate::pacemaker::fence`; the engine, drivers, verification, exit codes, audit log and
//! test report are the cluster.conf path's (`super::fence`).
use super::fence::{confirm, is_self, print_report_from, run_test_on, ActArgs, AuditObserver, Progress, TestArgs};
use super::Global;
use crate::fence::audit::AuditLog;
use crate::fence::engine::{self, Engine, RealClock, Report, RunOptions, Verdict};
use crate::fence::test::{Risk, Severity};
use crate::pacemaker::fence as pf;
use crate::util::Failure;
use std::io::IsTerminal;

fn loaded(c: &super::fence::CibArgs) -> anyhow::Result<(String, crate::pacemaker::Cib)> {
    c.load()?.ok_or_else(|| anyhow::anyhow!("internal: --cib missing"))
}

/// The plan's lines: per run, the engine's own plan of it.
fn plan_lines(p: &pf::CibFence, opts: &RunOptions) -> Vec<String> {
    let mut out = Vec::new();
    for (i, r) in p.runs.iter().enumerate() {
        if i > 0 {
            out.push(format!("if that fails, ask the agents for {}:", r.action.as_str()));
        } else if r.action != p.asked {
            out.push(format!("ask the agents for {}:", r.action.as_str()));
        }
        out.extend(engine::plan(&r.target, r.action, opts));
    }
    out
}

pub fn fence_node(node: &str, a: ActArgs, g: &Global) -> anyhow::Result<i32> {
    let (name, cib) = loaded(&a.cib)?;
    let plan = pf::plan(&cib, node, a.action, a.device.as_deref()).map_err(|e| Failure::new(1, format!("{name}: {}", e.message)))?;
    let mut notes = plan.notes.clone();
    if !cib.fencing_enabled() {
        notes.push("fencing is disabled in the CIB (stonith-enabled/fencing-enabled=false): pacemaker would not fence; twonode does because you asked".into());
    }
    if let Some(p) = cib.property("fencing-action").or_else(|| cib.property("stonith-action")) {
        let v = p.value.trim().to_ascii_lowercase();
        let v = if v == "poweroff" { "off".to_string() } else { v };
        if v != a.action.as_str() && matches!(a.action, crate::fence::engine::Action::Off | crate::fence::engine::Action::Reboot) {
            notes.push(format!("the cluster's {}={} (what pacemaker does when it fences); this run does {} as asked (--action {v} to do the same)", p.name, p.value, a.action.as_str()));
        }
    }
    // delays are the fencer's race breakers; the manual path applies none (named in the notes)
    let opts = RunOptions { reboot_method: a.method, no_delay: true };
    let lines = plan_lines(&plan, &opts);
    if a.dry_run {
        if g.json {
            crate::util::print_json(&serde_json::json!({"node": node, "action": a.action.as_str(), "cib": name,
                "from_topology": plan.from_topology, "plan": lines, "runs": plan.runs, "notes": notes}))?;
        } else {
            println!(
                "plan for {node} {} from {name} ({}; nothing is done: --dry-run):",
                a.action.as_str(),
                if plan.from_topology { "fencing topology, levels by index" } else { "no topology: every device that can fence it" }
            );
            for (i, p) in lines.iter().enumerate() {
                println!("  {}. {p}", i + 1);
            }
            for n in &notes {
                println!("  note: {n}");
            }
        }
        return Ok(0);
    }
    if !g.json {
        for n in &notes {
            eprintln!("note: {n}");
        }
    }
    if a.action.is_destructive() {
        if is_self(node) && !a.allow_self {
            return Err(Failure::new(
                1,
                format!("refusing to {} {node}: it is the machine this command runs on (use --allow-self if you really mean it)", a.action.as_str()),
            )
            .into());
        }
        if !a.yes && std::io::stdin().is_terminal() {
            eprintln!("{} {node} (from {name}):", a.action.as_str());
            for p in &lines {
                eprintln!("  - {p}");
            }
        }
        confirm(&format!("{} node {node}?", a.action.as_str()), a.yes)?;
    }
    let audit = if a.action.is_destructive() { Some(AuditLog::open(Some(&a.audit_log))) } else { None };
    if let Some(log) = &audit {
        log.append("start", serde_json::json!({"node": node, "action": a.action.as_str(), "cib": name, "notes": notes}));
    }
    let clock = RealClock::new();
    let mut opener = crate::fence::drivers::RealOpener;
    let mut failures: Vec<String> = Vec::new();
    let mut steps = Vec::new();
    let mut last: Option<Report> = None;
    for run in &plan.runs {
        let r = match &audit {
            Some(log) => {
                let mut obs = AuditObserver { progress: Progress::new(g.verbose > 0, g.json), audit: log, node: node.into(), action: run.action };
                Engine::new(&clock, &mut opener, &mut obs).run(&run.target, run.action, &opts)
            }
            None => {
                let mut obs = Progress::new(g.verbose > 0, g.json);
                Engine::new(&clock, &mut opener, &mut obs).run(&run.target, run.action, &opts)
            }
        };
        steps.extend(r.steps.iter().cloned());
        let failed = matches!(r.verdict, Verdict::Failed { .. });
        if failed {
            failures.push(r.message.clone());
        }
        last = Some(r);
        if !failed {
            break;
        }
    }
    let Some(mut report) = last else { return Err(Failure::new(1, format!("no usable fence device can fence {node}")).into()) };
    report.steps = steps;
    report.action = a.action;
    if matches!(report.verdict, Verdict::Failed { .. }) && failures.len() > 1 {
        report.message = failures.join("; then ");
    }
    if let Some(log) = &audit {
        log.append(
            "outcome",
            serde_json::json!({"node": node, "action": a.action.as_str(), "cib": name, "exit": report.exit_code(),
                "verdict": report.verdict, "method": report.method, "message": report.message, "elapsed_ms": report.elapsed_ms}),
        );
    }
    if g.json {
        let mut v = serde_json::to_value(&report)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("exit_code".into(), report.exit_code().into());
            o.insert("cib".into(), name.into());
            o.insert("notes".into(), serde_json::to_value(&notes)?);
        }
        crate::util::print_json(&v)?;
    } else {
        print_report_from(&report, g, true)?;
    }
    Ok(report.exit_code())
}

/// The CIB's findings (pacemaker::checks, the rules `pacemaker validate` uses) as test risks.
fn cib_risks(cib: &crate::pacemaker::Cib, notes: &[String]) -> Vec<Risk> {
    let findings = crate::pacemaker::checks::check(cib, None, &crate::pacemaker::checks::DrbdFacts::default());
    let mut out: Vec<Risk> = findings
        .iter()
        .filter(|f| matches!(f.severity, Severity::Error | Severity::Warning))
        .map(|f| Risk { severity: f.severity, code: "cib", message: format!("[{}] {}", f.code, f.message) })
        .collect();
    out.extend(notes.iter().map(|n| Risk { severity: Severity::Warning, code: "not_tested", message: n.clone() }));
    out
}

pub fn run_test(a: TestArgs, g: &Global) -> anyhow::Result<i32> {
    let (name, cib) = loaded(&a.cib)?;
    let (targets, notes) = pf::test_targets(&cib);
    let mut risks = cib_risks(&cib, &notes);
    // the cluster.conf risks that hold for any device list (shared BMC, device on its own node,
    // one BMC level); the fence race is the CIB's finding above
    risks.extend(crate::fence::test::risks(&targets, &crate::fence::test::resolve).into_iter().filter(|r| r.code != "fence_race" && r.code != "no_fencing"));
    run_test_on(&targets, name, risks, pf::race_protection(&cib), a, g)
}
