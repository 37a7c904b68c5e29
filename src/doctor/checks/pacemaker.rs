//! Pacemaker: the CIB's findings (`pcmk.CODE`, the ids `pacemaker validate` prints: the rules of `twonode pacemaker validate`,
//! `crate::pacemaker::checks`, not repeated here) judged with the cluster's corosync.conf and the
//! nodes' DRBD configuration, and the CIB's fence devices answering a status query
//! (`pacemaker.device`, gathered through the same path as cluster.conf's devices).
//!
//! The CIB comes from `--cib FILE|live`, or from `cibadmin -Q` on the machine doctor runs on when
//! it answers; without one this area says nothing.
use super::{Context, Finding, Severity};
use crate::doctor::facts::pacemaker::PacemakerFacts;
use crate::pacemaker::checks::{self as pc, CorosyncFacts, DrbdFacts};

pub fn check(cx: &Context) -> Vec<Finding> {
    let Some(p) = &cx.facts.pacemaker else { return vec![] };
    let mut out = Vec::new();
    if let Some(e) = &p.error {
        out.push(Finding::new("pacemaker.cib", Severity::Error, None, format!("the CIB cannot be read: {e}"), "give a readable CIB: `cibadmin -Q > cib.xml` on a node, then `twonode doctor --cib cib.xml`"));
        return out;
    }
    let Some(cib) = &p.cib else {
        out.push(Finding::new("pacemaker.cib", Severity::Info, None, format!("the CIB of {} is not kept in a saved gathering (it holds passwords)", p.source), "gather again with --cib"));
        return out;
    };
    out.push(Finding::new(
        "pacemaker.cib",
        Severity::Ok,
        None,
        format!("CIB from {}: {} stonith device(s), {} fencing level(s), nodes {}", p.source, cib.devices.len(), cib.levels.len(), cib.node_names().join(", ")),
        "",
    ));
    let corosync = cx.corosync.as_ref().map(|c| CorosyncFacts {
        source: c.path.clone(),
        two_node: c.quorum.two_node,
        quorum_device: c.quorum.device.is_some(),
        nodes: c.quorum.nodes.len(),
    });
    let mut drbd = DrbdFacts::default();
    if let Some(n) = cx.facts.reachable().find(|n| n.drbd_configs.as_ref().is_some_and(|c| !c.is_empty())) {
        drbd.config_source = Some(format!("drbdadm dump on {}", n.name));
        drbd.configs = n.drbd_configs.clone();
    }
    for f in pc::check(cib, corosync.as_ref(), &drbd) {
        let mut evidence = f.message.clone();
        if !f.evidence.is_empty() {
            evidence = format!("{evidence} ({})", f.evidence.join("; "));
        }
        if f.line > 0 {
            evidence = format!("{evidence} [{}:{}]", p.source, f.line);
        }
        let fix = [f.fix.pcs.as_ref().map(|c| format!("pcs: {c}")), f.fix.crm.as_ref().map(|c| format!("crm: {c}")), f.fix.other.clone()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" | ");
        // the same id as `twonode pacemaker validate` prints (pcmk.CODE)
        out.push(Finding::new(&f.code, f.severity, None, evidence, fix));
    }
    devices(p, &mut out);
    out
}

fn devices(p: &PacemakerFacts, out: &mut Vec<Finding>) {
    let Some(checks) = &p.device_checks else {
        out.push(Finding::new("pacemaker.device", Severity::Info, None, "the CIB's fence devices were not contacted", "run without --no-fence to check them"));
        return;
    };
    for d in checks {
        if d.ok() {
            out.push(Finding::new(
                "pacemaker.device",
                Severity::Ok,
                Some(&d.node),
                d.answered(),
                "",
            ));
        } else {
            let what = d.failure();
            out.push(Finding::new(
                "pacemaker.device",
                Severity::Error,
                Some(&d.node),
                format!("{} {what}: {}", d.describe, d.error.as_deref().unwrap_or("?")),
                format!("check the device and its instance attributes in the CIB (`pcs stonith config {}`); then `twonode fence test --cib live`", d.device),
            ));
        }
    }
    for n in &p.not_tested {
        out.push(Finding::new("pacemaker.device", Severity::Warning, None, format!("not contacted: {n}"), ""));
    }
}
