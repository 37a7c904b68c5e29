//! Where a service may and should run: node-affinity rules (and the HA groups they replaced),
//! resource-affinity rules, and the basic scheduler's score (how many HA services a node carries).
//! Pure: state in, a node out.
use std::collections::{BTreeMap, BTreeSet};

use crate::ha::model::{Affinity, Group, Rule, ServiceConf};
use crate::ha::state::ServiceStatus;

/// The rules after compilation: per service, its node set with priorities; and who must stay
/// together or apart.
#[derive(Debug, Clone, Default)]
pub struct Compiled {
    pub node_affinity: BTreeMap<String, BTreeMap<String, i64>>,
    pub positive: BTreeMap<String, BTreeSet<String>>,
    pub negative: BTreeMap<String, BTreeSet<String>>,
}

/// Turn HA groups into node-affinity rules, as ha-manager 5 does in memory (`ha-group-NAME`,
/// `restricted` becomes `strict`), for every service that names an existing group.
pub fn groups_to_rules(rules: &mut Vec<Rule>, groups: &BTreeMap<String, Group>, services: &BTreeMap<String, ServiceConf>) {
    let mut members: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for s in services.values() {
        if let Some(g) = &s.group {
            members.entry(g.as_str()).or_default().insert(s.sid.clone());
        }
    }
    for (gid, sids) in members {
        let Some(g) = groups.get(gid) else { continue };
        let id = format!("ha-group-{gid}");
        rules.retain(|r| r.id() != id);
        rules.push(Rule::NodeAffinity {
            id,
            resources: sids,
            nodes: g.nodes.iter().cloned().collect(),
            strict: g.restricted,
            disable: false,
            comment: Some(g.comment.clone().unwrap_or_else(|| format!("Generated from HA group '{gid}'."))),
            span: g.span,
        });
    }
}

/// A service's `failback` as the manager sees it: a group's `nofailback` wins.
pub fn apply_group_failback(groups: &BTreeMap<String, Group>, services: &mut BTreeMap<String, ServiceConf>) {
    for s in services.values_mut() {
        if let Some(g) = s.group.as_ref().and_then(|g| groups.get(g)) {
            s.failback = !g.nofailback;
        }
    }
}

/// Drop rules that cannot hold together (ha-manager's rule checks), returning the log messages
/// (`Drop rule 'X', because ...`), then compile what is left.
pub fn transform_and_compile(rules: &[Rule], nodes: &[String]) -> (Compiled, Vec<String>) {
    let enabled: Vec<&Rule> = rules.iter().filter(|r| !r.disabled()).collect();
    let mut drop: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // a resource in more than one node-affinity rule
    let mut na_of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in &enabled {
        if let Rule::NodeAffinity { id, resources, .. } = r {
            for s in resources {
                na_of.entry(s.as_str()).or_default().push(id.as_str());
            }
        }
    }
    for (sid, ids) in &na_of {
        if ids.len() > 1 {
            for id in ids {
                drop.entry(id.to_string()).or_default().push(format!("resource '{sid}' is already used in another node affinity rule"));
            }
        }
    }
    // resource affinity rules with fewer than two resources, or negative ones with more
    // resources than nodes
    for r in &enabled {
        if let Rule::ResourceAffinity { id, resources, affinity, .. } = r {
            if resources.len() < 2 {
                drop.entry(id.clone()).or_default().push("rule must specify at least two resources".into());
            } else if *affinity == Affinity::Negative && resources.len() > nodes.len() {
                drop.entry(id.clone()).or_default().push("rule defines more resources than available nodes".into());
            }
        }
    }
    // positive and negative on the same pair
    for a in &enabled {
        let Rule::ResourceAffinity { id: ida, resources: ra, affinity: Affinity::Positive, .. } = a else { continue };
        for b in &enabled {
            let Rule::ResourceAffinity { id: idb, resources: rb, affinity: Affinity::Negative, .. } = b else { continue };
            if ra.intersection(rb).count() >= 2 {
                drop.entry(ida.clone()).or_default().push(format!("rule shares two or more resources with '{idb}'"));
                drop.entry(idb.clone()).or_default().push(format!("rule shares two or more resources with '{ida}'"));
            }
        }
    }
    let mut messages = Vec::new();
    for (id, why) in &drop {
        for w in why {
            messages.push(format!("Drop rule '{id}', because {w}."));
        }
    }
    let mut c = Compiled::default();
    for r in enabled {
        if drop.contains_key(r.id()) {
            continue;
        }
        match r {
            Rule::NodeAffinity { resources, nodes: rn, strict, .. } => {
                let mut eff = rn.clone();
                if !strict {
                    for n in nodes {
                        eff.entry(n.clone()).or_insert(-1);
                    }
                }
                for s in resources {
                    c.node_affinity.insert(s.clone(), eff.clone());
                }
            }
            Rule::ResourceAffinity { resources, affinity, .. } => {
                let set = if *affinity == Affinity::Positive { &mut c.positive } else { &mut c.negative };
                for s in resources {
                    for o in resources {
                        if o != s {
                            set.entry(s.clone()).or_default().insert(o.clone());
                        }
                    }
                }
            }
        }
    }
    (c, messages)
}

/// The nodes a service's state occupies (current, target) among the online ones.
pub fn used_nodes(online: &BTreeSet<String>, sd: &ServiceStatus) -> (Option<String>, Option<String>) {
    let st = sd.state.as_str();
    if st == "stopped" || st == "request_start" {
        return (None, None);
    }
    let mut cur = None;
    if matches!(st, "started" | "request_stop" | "fence" | "freeze" | "error" | "recovery" | "migrate" | "relocate") {
        cur = sd.node.clone().filter(|n| online.contains(n));
    }
    let mut tgt = None;
    if matches!(st, "migrate" | "relocate" | "request_start_balance") {
        tgt = sd.target.clone().filter(|n| online.contains(n));
    }
    (cur, tgt)
}

/// The basic scheduler: a node's score is the number of HA services placed on it.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub nodes: BTreeMap<String, BTreeSet<String>>,
}

impl Usage {
    pub fn new(online: &[String]) -> Usage {
        Usage { nodes: online.iter().map(|n| (n.clone(), BTreeSet::new())).collect() }
    }
    pub fn online(&self) -> BTreeSet<String> {
        self.nodes.keys().cloned().collect()
    }
    /// Returns a warning when the node is not online (ha-manager logs it).
    pub fn add_service_usage(&mut self, sid: &str, sd: &ServiceStatus) -> Vec<String> {
        let (cur, tgt) = used_nodes(&self.online(), sd);
        let mut warn = Vec::new();
        for n in [cur, tgt].into_iter().flatten() {
            match self.nodes.get_mut(&n) {
                Some(set) => {
                    set.insert(sid.to_string());
                }
                None => warn.push(format!("unable to add service '{sid}' usage to node '{n}' - node not in usage hash")),
            }
        }
        warn
    }
    pub fn remove_service_usage(&mut self, sid: &str) {
        for set in self.nodes.values_mut() {
            set.remove(sid);
        }
    }
    pub fn score(&self, node: &str) -> usize {
        self.nodes.get(node).map(|s| s.len()).unwrap_or(0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    /// Stay on the current node if at all possible.
    None,
    /// The best-scored node.
    BestScore,
    /// The best-scored node not yet tried (failed_nodes).
    TryNext,
}

fn node_affinity(c: &Compiled, sid: &str, online: &BTreeSet<String>) -> (BTreeSet<String>, BTreeSet<String>) {
    let Some(nodes) = c.node_affinity.get(sid) else {
        return (online.clone(), online.clone());
    };
    let mut allowed = BTreeSet::new();
    let mut by_prio: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for (n, p) in nodes {
        if !online.contains(n) {
            continue;
        }
        allowed.insert(n.clone());
        by_prio.entry(*p).or_default().insert(n.clone());
    }
    let preferred = by_prio.into_iter().next_back().map(|(_, s)| s).unwrap_or_default();
    (allowed, preferred)
}

/// (together: node -> count of positive partners there, separate: nodes of negative partners)
fn resource_affinity(c: &Compiled, sid: &str, ss: &BTreeMap<String, ServiceStatus>, online: &BTreeSet<String>) -> (BTreeMap<String, usize>, BTreeSet<String>) {
    let mut together = BTreeMap::new();
    let mut separate = BTreeSet::new();
    if let Some(p) = c.positive.get(sid) {
        for cs in p {
            let Some(sd) = ss.get(cs) else { continue };
            let (cur, tgt) = used_nodes(online, sd);
            if let Some(n) = tgt.or(cur) {
                *together.entry(n).or_insert(0) += 1;
            }
        }
    }
    if let Some(n) = c.negative.get(sid) {
        for cs in n {
            let Some(sd) = ss.get(cs) else { continue };
            let (cur, tgt) = used_nodes(online, sd);
            separate.extend(cur);
            separate.extend(tgt);
        }
    }
    (together, separate)
}

/// ha-manager's `select_service_node`: the node a service should run on, or None when no node
/// is allowed.
pub fn select_service_node(c: &Compiled, usage: &Usage, sid: &str, cd: &ServiceConf, ss: &BTreeMap<String, ServiceStatus>, pref: Preference) -> Option<String> {
    let sd = ss.get(sid)?;
    let current = sd.node.clone().unwrap_or_default();
    let online = usage.online();
    let (allowed, mut pri) = node_affinity(c, sid, &online);
    if pri.is_empty() {
        return None;
    }
    let (mut together, separate) = resource_affinity(c, sid, ss, &online);
    let allowed_here = together.get(&current).copied().unwrap_or(0) > 0 || !separate.contains(&current);
    if pref == Preference::None && !cd.failback && allowed.contains(&current) && allowed_here {
        return Some(current);
    }
    if pref == Preference::TryNext {
        for n in sd.failed_nodes.iter().flatten() {
            pri.remove(n);
        }
    }
    for n in &separate {
        pri.remove(n);
    }
    together.retain(|n, _| pri.contains(n));
    if !together.is_empty() {
        let mut cands: Vec<(&String, &usize)> = together.iter().collect();
        cands.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let majority = cands[0].0.clone();
        pri.retain(|n| *n == majority);
    }
    if let Some(m) = &sd.maintenance_node {
        if pri.contains(m) {
            return Some(m.clone());
        }
    }
    if pref == Preference::None && pri.contains(&current) {
        return Some(current);
    }
    let mut nodes: Vec<&String> = pri.iter().collect();
    nodes.sort_by(|a, b| usage.score(a).cmp(&usage.score(b)).then(a.cmp(b)));
    if nodes.is_empty() {
        return None;
    }
    let found = nodes.iter().position(|n| **n == current);
    if pref == Preference::TryNext {
        if let Some(i) = found {
            if i < nodes.len() - 1 {
                return Some(nodes[i + 1].clone());
            }
        }
    }
    Some(nodes[0].clone())
}
