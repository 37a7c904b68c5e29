//! Fencing: the configuration risks `fence test` flags (`fence.CODE`), the fence race protection
//! (`fence.race`: the arbiter gate, a quorum disk or quorum device, a static delay, nothing) and
//! every fence device answering a status query (`fence.device`, from `gather::fence`). The gate
//! devices are left out here: the gate area checks them as the arbiter.
//!
//! What counts as race protection (best effort):
//! * cman: the arbiter gate (`agent="fence_twonode_arbiter"` first in every method, see GATE.md)
//!   or a quorum disk with two_node="0" protect; a static delay is a weak protection (warning);
//!   nothing under two_node="1" is an error.
//! * corosync: a quorum device protects (stonith needs quorum); two_node without one is a warning
//!   (unless doctor read the CIB: the pacemaker area then judges the race with its pcmk delays).
use super::gate::{gate_layout, without_gate, GateLayout};
use super::{CmanConf, Context, CorosyncCluster, Finding, Severity};
use crate::fence::spec::{FenceTarget, Timing};
use std::collections::BTreeSet;

pub fn check(cx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(c) = &cx.cman {
        cman_checks(cx, c, &mut out);
    }
    // with the CIB read, the pacemaker area judges the race (pcmk delays, priority-fencing-delay)
    let cib_read = cx.facts.pacemaker.as_ref().is_some_and(|p| p.cib.is_some());
    if let Some(c) = cx.corosync.as_ref().filter(|_| !cib_read) {
        corosync_race(c, &mut out);
    }
    out
}

/// A cman cluster's fencing: configuration risks, the race, the devices.
fn cman_checks(cx: &Context, c: &CmanConf, out: &mut Vec<Finding>) {
    let all = match &c.targets {
        Ok(t) => t,
        Err(e) => {
            out.push(Finding::new("fence.config", Severity::Error, None, format!("fencing in {} cannot be read: {e}", c.path), "fix cluster.conf (see config.valid)"));
            return;
        }
    };
    let layout = gate_layout(all);
    let targets = without_gate(all);
    // Configuration risks, as `fence test` flags them (its fence_race rule is refined below).
    for r in crate::fence::test::risks(&targets, &literal_only) {
        if r.code == "fence_race" {
            continue;
        }
        let sev = match (r.severity, r.code) {
            (_, "single_bmc_level") => Severity::Info,
            (sev, _) => sev,
        };
        let (evidence, fix) = match r.message.rsplit_once(". ") {
            Some((e, fx)) => (e.to_string(), fx.to_string()),
            None => (r.message.clone(), "see `twonode fence test`".to_string()),
        };
        out.push(Finding::new(&format!("fence.{}", r.code), sev, None, evidence, fix));
    }
    race_check(c, &layout, &targets, out);
    // Devices answering.
    match &cx.facts.fence_checks {
        None => out.push(Finding::new("fence.device", Severity::Info, None, "fence devices were not contacted", "run without --no-fence to check them")),
        Some(checks) => {
            for d in checks.iter().filter(|d| !layout.gates.iter().any(|g| g.device == d.device)) {
                if d.ok() {
                    out.push(Finding::new(
                        "fence.device",
                        Severity::Ok,
                        Some(&d.node),
                        d.answered(),
                        "",
                    ));
                } else {
                    let what = d.failure();
                    out.push(Finding::new(
                        "fence.device",
                        Severity::Error,
                        Some(&d.node),
                        format!("{} ({} method {}): {what}: {}", d.describe, d.node, d.method, d.error.as_deref().unwrap_or("?")),
                        format!(
                            "node {} cannot be fenced through this device: check its address, port, credentials and network path; \
                             retest with `twonode fence test`",
                            d.node
                        ),
                    ));
                }
            }
        }
    }
}

/// Name resolution is I/O: the pure core only recognises literal addresses.
fn literal_only(h: &str) -> Vec<std::net::IpAddr> {
    h.trim().trim_start_matches('[').trim_end_matches(']').parse().map(|ip| vec![ip]).unwrap_or_default()
}


fn delay_of(t: &FenceTarget) -> Option<u64> {
    let m = t.methods.iter().find(|m| !m.devices.is_empty())?;
    m.devices
        .iter()
        .filter_map(|d| {
            let t = Timing::for_device(d).ok().map(|x| x.delay.as_secs()).filter(|s| *s > 0);
            t.or_else(|| d.get(&["pcmk_delay_max", "pcmk_delay_base"]).map(|v| v.trim().trim_end_matches('s').parse().unwrap_or(1)))
        })
        .max()
}

/// Fence race protection of a cman cluster: the gate (ok), a quorum disk without two_node (ok),
/// a static delay (weak: warning), nothing under two_node (error).
fn race_check(c: &CmanConf, layout: &GateLayout, targets: &[FenceTarget], out: &mut Vec<Finding>) {
    let two_node = c.model.two_node();
    let fenced: Vec<&FenceTarget> = targets.iter().filter(|t| t.methods.iter().any(|m| !m.devices.is_empty())).collect();
    if layout.complete() {
        let g = &layout.gates[0];
        out.push(Finding::new(
            "fence.race",
            Severity::Ok,
            None,
            format!(
                "arbiter gate {} (device {}) is the first device of every fence method ({}): only the partition holding the arbiter's vote fences",
                g.target(),
                g.device,
                layout.gated.iter().map(|(n, m)| format!("{n}/{m}")).collect::<Vec<_>>().join(", ")
            ),
            "",
        ));
        return;
    }
    if !layout.gates.is_empty() {
        let bad = layout.ungated.iter().map(|(n, m, w)| format!("node {n} method {m}: {w}")).collect::<Vec<_>>().join("; ");
        out.push(Finding::new(
            "fence.race",
            Severity::Error,
            None,
            format!("the arbiter gate {} does not guard every fence method ({bad}): in a split such a method lets the partition WITHOUT the arbiter's vote fence", layout.gates[0].device),
            "`twonode conf gate-fencing --arbiter HOST[:PORT] --ca F --cert F --key F` puts the gate first in every method (or fix the methods named)",
        ));
        return;
    }
    if fenced.len() < 2 {
        return;
    }
    if !two_node {
        let ev = if c.model.quorumd.is_some() {
            "two_node=\"0\" with a quorum disk: qdiskd decides which node keeps quorum; only the quorate node fences"
        } else {
            "two_node=\"0\": a node alone has no quorum and does not fence, so there is no race (and no failover either)"
        };
        out.push(Finding::new("fence.race", Severity::Ok, None, ev, ""));
        return;
    }
    let delays: Vec<(String, Option<u64>)> = fenced.iter().map(|t| (t.node.clone(), delay_of(t))).collect();
    let ev = delays
        .iter()
        .map(|(n, d)| format!("{n}: {}", d.map(|d| format!("delay {d}s")).unwrap_or_else(|| "no delay".into())))
        .collect::<Vec<_>>()
        .join(", ");
    let with: Vec<&(String, Option<u64>)> = delays.iter().filter(|d| d.1.is_some()).collect();
    let distinct: BTreeSet<Option<u64>> = delays.iter().map(|d| d.1).collect();
    let gate_fix = "let the arbiter decide: run `twonode arbiter serve` on a third machine and \
                    `twonode conf gate-fencing --arbiter HOST[:PORT] --ca F --cert F --key F`";
    if distinct.len() > 1 {
        // someone is favoured: the one whose fencing waits longest
        let favoured = delays.iter().max_by_key(|d| d.1.unwrap_or(0)).map(|d| d.0.clone()).unwrap_or_default();
        out.push(Finding::new(
            "fence.race",
            Severity::Warning,
            None,
            format!(
                "two_node=\"1\" protected by a static fence delay only ({ev}): weak. The delay picks the survivor in advance ({favoured}), \
                 not the partition that still works: if {favoured} is the node cut off from the network but still reaching its peer's BMC, \
                 it fences the healthy peer; a hung {favoured} is fenced {}s later than needed",
                with.iter().filter_map(|d| d.1).max().unwrap_or(0)
            ),
            format!("{gate_fix}; keep the delay until then"),
        ));
    } else {
        let what = if with.is_empty() { "no fence delay and no arbiter gate" } else { "equal fence delays on every node (they only postpone the race)" };
        out.push(Finding::new(
            "fence.race",
            Severity::Error,
            None,
            format!("two_node=\"1\" with {what} ({ev}): on a network split both nodes stay quorate and fence each other at once (both can end powered off)"),
            format!("{gate_fix}; as a stopgap set delay=\"15\" on the fence device of ONE node (the one that should survive, e.g. {})", fenced[0].node),
        ));
    }
}

/// Fence race protection of a corosync cluster: a quorum device decides; else two_node races.
fn corosync_race(cc: &CorosyncCluster, out: &mut Vec<Finding>) {
    let q = &cc.quorum;
    match &q.device {
        Some(d) => out.push(Finding::new(
            "fence.race",
            Severity::Ok,
            None,
            format!(
                "quorum device (model {}, arbiter {}, algorithm {}, tie_breaker {}) decides which partition stays quorate; only a quorate partition fences",
                d.model,
                d.host.as_deref().unwrap_or("?"),
                d.algorithm.as_deref().unwrap_or("ffsplit"),
                d.tie_breaker.as_deref().unwrap_or("lowest")
            ),
            "",
        )),
        None if q.effective_two_node() => out.push(Finding::new(
            "fence.race",
            Severity::Warning,
            None,
            format!("{}: two_node without a quorum device: both halves of a split stay quorate and race to fence each other; only a pcmk_delay_* in the CIB can bias the race (give --cib FILE|live to have doctor read it)", cc.path),
            "add the arbiter as quorum device: `twonode quorum enable-arbiter --host ARBITER` (drops two_node), or at least set pcmk_delay_max on the stonith resources",
        )),
        None => {}
    }
}
