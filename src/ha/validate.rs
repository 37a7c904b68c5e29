//! `ha validate`: the HA configuration against its cluster, as findings with file:line:col. Pure:
//! the loaders (`config::pve`, `config::rgmanager`) gather, this decides.
use std::collections::{BTreeMap, BTreeSet};

use crate::diag::Severity;
use crate::ha::config::pve::ClusterFacts;
use crate::ha::model::{HaConfig, Rule, ShutdownPolicy, Span};
use crate::ha::placement;

/// Where each guest's storage can be reached: sid -> the nodes that have it (None: anywhere), and
/// the storages that decide it (for the message).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StorageFacts {
    pub reachable: BTreeMap<String, (BTreeSet<String>, Vec<String>)>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Finding {
    /// The file the finding points into (`ha/resources.cfg`, `cluster.conf`, ...).
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub severity: Severity,
    pub code: String,
    pub message: String,
    pub fix: String,
}

/// Which files hold what (PVE: three files; rgmanager: one cluster.conf).
#[derive(Debug, Clone)]
pub struct Files {
    pub resources: String,
    pub groups: String,
    pub rules: String,
    pub datacenter: String,
    pub cluster: String,
    /// Where datacenter.cfg sets shutdown_policy (0:0 when not known: reported at 1:1).
    pub shutdown_policy_at: Span,
}

impl Files {
    pub fn pve() -> Files {
        Files { resources: "ha/resources.cfg".into(), groups: "ha/groups.cfg".into(), rules: "ha/rules.cfg".into(), datacenter: "datacenter.cfg".into(), cluster: "corosync.conf".into(), shutdown_policy_at: Span::default() }
    }
    pub fn cman(path: &str) -> Files {
        Files { resources: path.into(), groups: path.into(), rules: path.into(), datacenter: path.into(), cluster: path.into(), shutdown_policy_at: Span::default() }
    }
}

struct Out<'a> {
    files: &'a Files,
    v: Vec<Finding>,
}

impl Out<'_> {
    fn push(&mut self, file: &str, span: Span, sev: Severity, code: &str, message: String, fix: String) {
        self.v.push(Finding { file: file.to_string(), line: span.line.max(1), col: span.col.max(1), severity: sev, code: code.into(), message, fix });
    }
}

/// Check `cfg` against its cluster. `storage` may be empty (not gathered).
pub fn validate(cfg: &HaConfig, cluster: &ClusterFacts, storage: &StorageFacts, files: &Files) -> Vec<Finding> {
    let mut o = Out { files, v: Vec::new() };
    let nodes: BTreeSet<&String> = cluster.nodes.iter().collect();
    let known = |n: &String| nodes.is_empty() || nodes.contains(n);
    let f = o.files.clone();

    for s in cfg.services.values() {
        if let Some(g) = &s.group {
            if !cfg.groups.contains_key(g) {
                o.push(&f.resources, s.span, Severity::Error, "ha.unknown-group", format!("{} names group `{g}`, which is not defined", s.sid), format!("define group `{g}` or fix the name (groups: {})", cfg.groups.keys().cloned().collect::<Vec<_>>().join(", ")));
            }
        }
        if !s.node.is_empty() && !known(&s.node) {
            o.push(&f.resources, s.span, Severity::Error, "ha.unknown-node", format!("{} is placed on `{}`, which is not a cluster node", s.sid, s.node), format!("cluster nodes: {}", cluster.nodes.join(", ")));
        }
    }
    for g in cfg.groups.values() {
        for (n, _) in g.nodes.iter().filter(|(n, _)| !known(n)) {
            o.push(&f.groups, g.span, Severity::Error, "ha.unknown-node", format!("group `{}` names `{n}`, which is not a cluster node", g.id), format!("cluster nodes: {}", cluster.nodes.join(", ")));
        }
        if g.restricted && !nodes.is_empty() && g.nodes.iter().all(|(n, _)| !known(n)) {
            o.push(&f.groups, g.span, Severity::Error, "ha.restricted-no-member", format!("restricted group `{}` has no member in the cluster: its services can run nowhere", g.id), "add a cluster node to the group, or make it unrestricted".into());
        }
    }
    for r in &cfg.rules {
        if let Rule::NodeAffinity { id, nodes: rn, strict, span, .. } = r {
            for n in rn.keys().filter(|n| !known(n)) {
                o.push(&f.rules, *span, Severity::Error, "ha.unknown-node", format!("rule `{id}` names `{n}`, which is not a cluster node"), format!("cluster nodes: {}", cluster.nodes.join(", ")));
            }
            if *strict && !nodes.is_empty() && rn.keys().all(|n| !known(n)) {
                o.push(&f.rules, *span, Severity::Error, "ha.restricted-no-member", format!("strict rule `{id}` allows no cluster node: its resources can run nowhere"), "add a cluster node, or make the rule non-strict".into());
            }
        }
    }
    // rules ha-manager would drop
    let mut rules = cfg.rules.clone();
    placement::groups_to_rules(&mut rules, &cfg.groups, &cfg.services);
    let (_, dropped) = placement::transform_and_compile(&rules, &cluster.nodes);
    for m in dropped {
        let id = m.split('\'').nth(1).unwrap_or("").to_string();
        let span = cfg.rules.iter().find(|r| r.id() == id).map(|r| r.span()).unwrap_or_default();
        o.push(&f.rules, span, Severity::Warning, "ha.rule-dropped", format!("ha-manager ignores this rule: {m}"), "make the rules consistent; until then the CRM logs the same line and runs without the rule".into());
    }
    // shutdown policy
    if let Some(p) = &cfg.datacenter.shutdown_policy {
        if ShutdownPolicy::parse(p).is_none() {
            o.push(&f.datacenter, f.shutdown_policy_at, Severity::Error, "ha.shutdown-policy", format!("shutdown_policy `{p}` is not known: the LRM falls back to conditional"), "use conditional, freeze, failover or migrate".into());
        }
    }
    let has_services = cfg.services.values().any(|s| s.state != crate::ha::model::RequestState::Ignored);
    let two = cluster.nodes.len() == 2 || cluster.two_node;
    if two && cfg.datacenter.policy() == ShutdownPolicy::Migrate && has_services {
        o.push(&f.datacenter, f.shutdown_policy_at, Severity::Warning, "ha.migrate-two-node", "shutdown_policy=migrate on two nodes: every shutdown or reboot moves all HA services onto the one other node, which must have room for all of them (memory above all)".into(), "check the peer's free memory against the guests' sum, or use freeze/conditional for planned reboots".into());
    }
    if has_services && two {
        if !cluster.arbiter {
            if cluster.hardware_fencing == Some(true) {
                o.push(&f.cluster, Span { line: 1, col: 1 }, Severity::Warning, "ha.two-node-no-arbiter", "HA on a two-node cluster without an arbiter: after a split both sides are quorate and whichever fences first wins (the fence race); twonode's HA core will not fence without a vote, so a lost node's services stay where they are".into(), "add an arbiter (`twonode quorum enable-arbiter` for corosync, or `twonode conf gate-fencing` for cman)".into());
            } else {
                o.push(&f.cluster, Span { line: 1, col: 1 }, Severity::Error, "ha.two-node-no-arbiter", "HA on a two-node cluster without an arbiter and without hardware fencing: ha-manager's watchdog self-fencing relies on quorum, which two_node gives both sides of a split; twonode refuses self-fencing under two_node".into(), "add an arbiter (`twonode quorum enable-arbiter` for corosync, or `twonode conf gate-fencing` for cman) and hardware fencing".into());
            }
        }
        if cluster.hardware_fencing == Some(false) {
            let which = if cluster.unfenced.is_empty() { String::new() } else { format!(" (none for {})", cluster.unfenced.join(", ")) };
            o.push(&f.cluster, Span { line: 1, col: 1 }, Severity::Error, "ha.no-hardware-fencing", format!("HA on two nodes without hardware fencing for every node{which}: a lost node can only be fenced by its own watchdog, and a service would be recovered on the word of a node that may still run it"), "configure a power fence device (BMC/PDU) for each node: /etc/pve/ha/fence.cfg or cluster.conf <fencedevices>".into());
        }
    }
    // storage
    for s in cfg.services.values() {
        let Some((have, storages)) = storage.reachable.get(&s.sid) else { continue };
        let (possible, restricted): (BTreeSet<String>, bool) = match s.group.as_ref().and_then(|g| cfg.groups.get(g)) {
            Some(g) if g.restricted => (g.nodes.iter().map(|(n, _)| n.clone()).collect(), true),
            _ => (cluster.nodes.iter().cloned().collect(), false),
        };
        let missing: Vec<&String> = possible.iter().filter(|n| !have.contains(*n)).collect();
        if missing.is_empty() {
            continue;
        }
        let sev = if restricted { Severity::Error } else { Severity::Warning };
        let list: Vec<String> = missing.iter().map(|n| n.to_string()).collect();
        o.push(
            &f.resources,
            s.span,
            sev,
            "ha.storage-mismatch",
            format!("replication and HA configuration mismatch: {} may be recovered on {} but its storage ({}) is only on {}", s.sid, list.join(", "), storages.join(", "), have.iter().cloned().collect::<Vec<_>>().join(", ")),
            format!("restrict {} to the nodes that have its storage (a restricted group / strict node-affinity rule), or replicate it there", s.sid),
        );
    }
    o.v.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.file.cmp(&b.file)).then(a.line.cmp(&b.line)).then(a.code.cmp(&b.code)));
    o.v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ha::config::{parse_groups, pve::parse_resources};

    #[test]
    fn two_node_findings() {
        let mut cfg = HaConfig {
            services: parse_resources("vm: 100\n\tgroup g\n\nvm: 101\n\tgroup nope\n").unwrap(),
            groups: parse_groups("group: g\n\tnodes node1,node3\n\trestricted 1\n").unwrap(),
            ..Default::default()
        };
        cfg.datacenter.shutdown_policy = Some("migrate".into());
        let cluster = ClusterFacts { source: "corosync.conf".into(), nodes: vec!["node1".into(), "node2".into()], two_node: true, arbiter: false, hardware_fencing: Some(false), unfenced: vec!["node2".into()] };
        let mut st = StorageFacts::default();
        st.reachable.insert("vm:100".into(), (BTreeSet::from(["node2".to_string()]), vec!["drbd-r0".into()]));
        let f = validate(&cfg, &cluster, &st, &Files::pve());
        let codes: Vec<&str> = f.iter().map(|x| x.code.as_str()).collect();
        for c in ["ha.unknown-group", "ha.unknown-node", "ha.two-node-no-arbiter", "ha.no-hardware-fencing", "ha.migrate-two-node", "ha.storage-mismatch"] {
            assert!(codes.contains(&c), "{c} missing: {f:#?}");
        }
        let nofence = f.iter().find(|x| x.code == "ha.no-hardware-fencing").unwrap();
        assert!(nofence.message.contains("(none for node2)"), "{}", nofence.message);
        let g = f.iter().find(|x| x.code == "ha.unknown-group").unwrap();
        assert_eq!((g.file.as_str(), g.line, g.col), ("ha/resources.cfg", 4, 5));
    }
}
