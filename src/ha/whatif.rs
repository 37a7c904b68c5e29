//! `ha what-if`: replay one failure against the live configuration in the simulator and say,
//! service by service, where it ends up, after how long, and what blocks it.
use std::collections::BTreeMap;

use crate::ha::config::pve::ClusterFacts;
use crate::ha::model::HaConfig;
use crate::ha::sim::hardware::Hardware;
use crate::ha::sim::invariant::{self, quoted};
use crate::ha::sim::regdir::{NodeInit, Scenario};
use crate::ha::sim::twonode::TwoNodeConf;

/// The failure to rehearse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The node dies and does not come back (its BMC still cuts power for the fence).
    Fail(String),
    /// The link between the two nodes is cut; both keep running.
    Split,
    /// The node is shut down cleanly (the shutdown policy applies).
    Shutdown(String),
}

/// The two-node world of a real cluster, for rehearsing it: its arbiter as configured, and "no
/// fence device" for every node when hardware fencing is missing. None for more than two nodes
/// (ha-manager's own semantics apply).
pub fn two_node_world(cluster: &ClusterFacts) -> Option<TwoNodeConf> {
    if cluster.nodes.len() != 2 {
        return None;
    }
    let mut t = TwoNodeConf { arbiter: cluster.arbiter, ..Default::default() };
    // only the nodes without a power fence device: the other one is fenced through its BMC
    for n in &cluster.unfenced {
        t.bmc.insert(n.clone(), "none".into());
    }
    Some(t)
}

/// The simulated time the event happens at (the cluster has settled by then).
const EVENT_AT: i64 = 120;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub sid: String,
    pub before: String,
    pub after: Option<String>,
    pub state: String,
    /// Seconds from the event until the service ran again on its final node.
    pub back_after_s: Option<i64>,
    /// Why it did not (or not at once) come back.
    pub blocked_by: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct WhatIf {
    pub event: String,
    pub outcomes: Vec<Outcome>,
    /// Safety invariant violations in the simulated run (expected: none).
    pub violations: Vec<String>,
    pub log: Vec<String>,
}

fn time_of(line: &str) -> i64 {
    line.split_whitespace().nth(1).and_then(|t| t.parse().ok()).unwrap_or(0)
}

/// Rehearse `event` for `cfg` on `nodes`. `two` is the two-node world (arbiter, BMCs, DRBD) for
/// a two-node cluster, None for ha-manager's own semantics.
pub fn what_if(cfg: &HaConfig, nodes: &[String], two: Option<TwoNodeConf>, event: &Event) -> Result<WhatIf, String> {
    let known = |n: &str| if nodes.iter().any(|x| x == n) { Ok(()) } else { Err(format!("no node '{n}' in the cluster (nodes: {})", nodes.join(", "))) };
    let (label, cmds): (String, Vec<String>) = match event {
        Event::Fail(n) => {
            known(n)?;
            let mut c = vec![format!("power {n} off")];
            // "does not come back": its BMC powers it off but not on again; a node without a
            // fence device (or with a dead BMC) keeps that, which is what blocks its recovery
            if two.as_ref().is_some_and(|t| t.bmc.get(n.as_str()).is_none_or(|b| b == "ok")) {
                c.insert(0, format!("bmc {n} ignore-on"));
            }
            (format!("{n} fails"), c)
        }
        Event::Split => {
            if two.is_none() {
                return Err("--split rehearses the two-node world: the cluster has more than two nodes".into());
            }
            ("the link between the nodes is cut".into(), vec!["split on".into()])
        }
        Event::Shutdown(n) => {
            known(n)?;
            (format!("{n} shuts down"), vec![format!("shutdown {n}")])
        }
    };
    // a DRBD resource a service names is taken as UpToDate on every node unless the caller knows
    // better (the two-node world's DRBD table)
    let mut two = two;
    if let Some(t) = two.as_mut() {
        for s in cfg.services.values() {
            for r in &s.drbd {
                let e = t.drbd.entry(r.clone()).or_default();
                for n in nodes {
                    e.entry(n.clone()).or_insert_with(|| "UpToDate".into());
                }
            }
        }
    }
    let mut services = cfg.services.clone();
    for s in services.values_mut() {
        if s.node.is_empty() {
            s.node = nodes[0].clone();
        }
    }
    let sc = Scenario {
        cmdlist: vec![nodes.iter().map(|n| format!("power {n} on")).collect(), cmds],
        nodes: nodes.iter().map(|n| (n.clone(), NodeInit { power: false, network: false, version: Some("9.0.0".into()) })).collect(),
        manager_status: Default::default(),
        services,
        groups: cfg.groups.clone(),
        rules: cfg.rules.clone(),
        datacenter: cfg.datacenter.clone(),
        service_status: BTreeMap::new(),
        twonode: two,
    };
    let mut hw = Hardware::new(sc);
    let run = hw.run();
    let log = hw.log.clone();
    if let Err(e) = run {
        if hw.refused().is_some() {
            return Err(e);
        }
    }
    let violations = invariant::check(&log).into_iter().map(|v| format!("log line {}: {}", v.line, v.what)).collect();
    let mut outcomes = Vec::new();
    for (sid, cd) in &cfg.services {
        let st = hw.manager_status.service_status.get(sid);
        let state = st.map(|s| s.state.clone()).unwrap_or_else(|| "ignored".into());
        let after = st.and_then(|s| s.node.clone());
        let running_after = after.as_ref().filter(|n| hw.nodes.get(*n).is_some_and(|d| d.services.get(sid) == Some(&true)));
        let mut back = None;
        let mut blocked = Vec::new();
        for l in log.iter().filter(|l| time_of(l) >= EVENT_AT) {
            let msg = l.split_once(": ").map(|(_, m)| m).unwrap_or("");
            if let Some(n) = running_after {
                if msg == format!("service status {sid} started") && l.contains(&format!("{n}/lrm")) {
                    back = Some(time_of(l) - EVENT_AT);
                }
            }
            let about_me = msg.contains(&format!("'{sid}'")) || quoted(msg, 0).is_some_and(|n| n == cd.node);
            if about_me && (msg.contains("blocked") || msg.contains("waits") || msg.contains("no recovery node found") || msg.contains("error state")) {
                let m = msg.to_string();
                if !blocked.contains(&m) {
                    blocked.push(m);
                }
            }
        }
        if running_after.is_none() {
            back = None;
        }
        outcomes.push(Outcome { sid: sid.clone(), before: cd.node.clone(), after: running_after.cloned().or(after), state, back_after_s: back, blocked_by: blocked });
    }
    Ok(WhatIf { event: label, outcomes, violations, log })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ha::model::{RequestState, ServiceConf};

    fn cfg() -> HaConfig {
        let mut c = HaConfig::default();
        for (sid, n) in [("vm:101", "node1"), ("vm:102", "node2")] {
            c.services.insert(sid.into(), ServiceConf::new(sid, n, RequestState::Started));
        }
        c
    }

    fn nodes() -> Vec<String> {
        vec!["node1".into(), "node2".into()]
    }

    #[test]
    fn failover_with_an_arbiter() {
        let w = what_if(&cfg(), &nodes(), Some(TwoNodeConf { arbiter: true, ..Default::default() }), &Event::Fail("node2".into())).unwrap();
        let o = w.outcomes.iter().find(|o| o.sid == "vm:102").unwrap();
        assert_eq!(o.after.as_deref(), Some("node1"));
        assert_eq!(o.state, "started");
        assert!(o.back_after_s.unwrap() > 0 && o.back_after_s.unwrap() < 120, "{o:?}");
        assert!(w.violations.is_empty());
    }

    #[test]
    fn only_the_node_without_a_fence_device_is_unfenceable() {
        let cluster = ClusterFacts {
            nodes: nodes(),
            two_node: true,
            arbiter: true,
            hardware_fencing: Some(false),
            unfenced: vec!["node2".into()],
            ..Default::default()
        };
        let t = two_node_world(&cluster).unwrap();
        assert_eq!(t.bmc.get("node2").map(String::as_str), Some("none"));
        assert!(!t.bmc.contains_key("node1"), "node1 has its BMC: {:?}", t.bmc);
        // node1 fails: fenced through its BMC, its service recovered on node2
        let w = what_if(&cfg(), &nodes(), Some(t.clone()), &Event::Fail("node1".into())).unwrap();
        let o = w.outcomes.iter().find(|o| o.sid == "vm:101").unwrap();
        assert_eq!((o.after.as_deref(), o.state.as_str()), (Some("node2"), "started"), "{o:?}");
        // node2 fails: nothing can confirm it is off, so its service stays where it was
        let w = what_if(&cfg(), &nodes(), Some(t), &Event::Fail("node2".into())).unwrap();
        let o = w.outcomes.iter().find(|o| o.sid == "vm:102").unwrap();
        assert_eq!(o.state, "fence", "{o:?}");
        assert!(o.blocked_by.iter().any(|b| b.contains("no hardware fence device")), "{o:?}");
        assert!(w.violations.is_empty());
    }

    #[test]
    fn no_arbiter_blocks_and_says_why() {
        let w = what_if(&cfg(), &nodes(), Some(TwoNodeConf::default()), &Event::Split).unwrap();
        let o = w.outcomes.iter().find(|o| o.sid == "vm:102").unwrap();
        assert_eq!(o.state, "fence");
        assert!(o.blocked_by.iter().any(|b| b.contains("no arbiter")), "{o:?}");
        assert!(what_if(&cfg(), &nodes(), None, &Event::Fail("node9".into())).is_err());
    }
}
