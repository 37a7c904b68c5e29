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

/// Rule sets whose resources overlap, merged: (rule ids, resources), ordered by each set's
/// lowest resource id (ha-manager's `find_disjoint_rules_resource_sets`).
fn disjoint_sets(rules: &[(&str, &BTreeSet<String>)]) -> Vec<(Vec<String>, BTreeSet<String>)> {
    let mut ids: Vec<&(&str, &BTreeSet<String>)> = rules.iter().collect();
    ids.sort_by(|a, b| a.0.cmp(b.0));
    ids.sort_by(|a, b| a.1.iter().next().cmp(&b.1.iter().next()));
    let mut out: Vec<(Vec<String>, BTreeSet<String>)> = Vec::new();
    for (id, res) in ids {
        match out.iter_mut().find(|(_, set)| !set.is_disjoint(res)) {
            Some((rids, set)) => {
                rids.push(id.to_string());
                set.extend(res.iter().cloned());
            }
            None => out.push((vec![id.to_string()], (*res).clone())),
        }
    }
    out
}

fn multiple_priorities(nodes: &BTreeMap<String, i64>) -> bool {
    let mut p = nodes.values();
    match p.next() {
        Some(first) => p.any(|x| x != first),
        None => false,
    }
}

/// ha-manager's rule checks: the rules that make the set infeasible, each with its reasons, in
/// the order the checks run (node affinity, resource affinity, then the checks across types).
fn infeasible(rules: &[Rule], nodes: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut err: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut push = |id: &str, m: String| err.entry(id.to_string()).or_default().push(m);
    let enabled: Vec<&Rule> = rules.iter().filter(|r| !r.disabled()).collect();
    let na: Vec<(&str, &BTreeSet<String>, &BTreeMap<String, i64>)> = enabled
        .iter()
        .filter_map(|r| match r {
            Rule::NodeAffinity { id, resources, nodes, .. } => Some((id.as_str(), resources, nodes)),
            _ => None,
        })
        .collect();
    let ra = |want: Option<Affinity>| -> Vec<(&str, &BTreeSet<String>)> {
        enabled
            .iter()
            .filter_map(|r| match r {
                Rule::ResourceAffinity { id, resources, affinity, .. } if want.is_none_or(|w| w == *affinity) => Some((id.as_str(), resources)),
                _ => None,
            })
            .collect()
    };
    let (all_ra, positive, negative) = (ra(None), ra(Some(Affinity::Positive)), ra(Some(Affinity::Negative)));

    // node affinity: a resource in one rule only
    let mut by_sid: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, res, _) in &na {
        for s in res.iter() {
            by_sid.entry(s.as_str()).or_default().push(id);
        }
    }
    let mut conflicts: Vec<(&str, &str)> = by_sid.iter().filter(|(_, ids)| ids.len() > 1).flat_map(|(s, ids)| ids.iter().map(move |id| (*id, *s))).collect();
    conflicts.sort();
    for (id, sid) in conflicts {
        push(id, format!("resource '{sid}' is already used in another node affinity rule"));
    }
    // resource affinity
    let mut few: Vec<&str> = all_ra.iter().filter(|(_, r)| r.len() < 2).map(|(id, _)| *id).collect();
    few.sort();
    for id in few {
        push(id, "rule is ineffective as there are less than two resources".into());
    }
    let mut many: Vec<&str> = negative.iter().filter(|(_, r)| r.len() > nodes.len()).map(|(id, _)| *id).collect();
    many.sort();
    for id in many {
        push(id, "rule defines more resources than available nodes".into());
    }
    let mut c: Vec<(&str, String)> = Vec::new();
    for (pids, pres) in disjoint_sets(&positive) {
        for (nid, nres) in &negative {
            if pres.intersection(nres).count() < 2 {
                continue;
            }
            c.push(("negative", nid.to_string()));
            for p in &pids {
                c.push(("positive", p.clone()));
            }
        }
    }
    c.sort();
    for (kind, id) in c {
        let other = if kind == "positive" { "negative" } else { "positive" };
        push(&id, format!("rule shares two or more resources with a {other} resource affinity rule"));
    }
    // across types
    let mut c: Vec<(&str, String)> = Vec::new();
    for (rid, rres) in &all_ra {
        let paired: Vec<&(&str, &BTreeSet<String>, &BTreeMap<String, i64>)> = na.iter().filter(|(_, res, _)| !res.is_disjoint(rres)).collect();
        if paired.iter().any(|(_, _, n)| multiple_priorities(n)) {
            c.push(("resource-affinity", rid.to_string()));
            c.extend(paired.iter().map(|(id, _, _)| ("node-affinity", id.to_string())));
        }
    }
    c.sort();
    for (kind, id) in c {
        let m = if kind == "node-affinity" {
            "resources are in a resource affinity rule and cannot be in a node affinity rule with multiple priorities"
        } else {
            "resources are in node affinity rules with multiple priorities"
        };
        push(&id, m.into());
    }
    let mut c: Vec<(&str, String)> = Vec::new();
    for (pids, pres) in disjoint_sets(&positive) {
        let paired: Vec<&str> = na.iter().filter(|(_, res, _)| !res.is_disjoint(&pres)).map(|(id, _, _)| *id).collect();
        if paired.len() > 1 {
            c.extend(pids.iter().map(|p| ("positive", p.clone())));
            c.extend(paired.iter().map(|id| ("node-affinity", id.to_string())));
        }
    }
    c.sort();
    for (kind, id) in c {
        let m = if kind == "positive" {
            "resources are in multiple node affinity rules"
        } else {
            "at least one resource is in a positive resource affinity rule and there are other resources in at least one other node affinity rule already"
        };
        push(&id, m.into());
    }
    let mut c: Vec<(&str, String)> = Vec::new();
    for (nid, nres) in &negative {
        let mut allowed: BTreeSet<&String> = BTreeSet::new();
        let mut located: BTreeSet<&String> = BTreeSet::new();
        let mut paired = Vec::new();
        for (id, res, nodes) in &na {
            let common: Vec<&String> = nres.intersection(res).collect();
            if common.is_empty() {
                continue;
            }
            located.extend(common);
            allowed.extend(nodes.keys());
            paired.push(*id);
        }
        if allowed.len() < located.len() {
            c.push(("negative", nid.to_string()));
            c.extend(paired.iter().map(|id| ("node-affinity", id.to_string())));
        }
    }
    c.sort();
    for (kind, id) in c {
        let m = if kind == "negative" {
            "two or more resources are restricted to less nodes than available to the resources"
        } else {
            "at least one resource is in a negative resource affinity rule and this rule would restrict these to less nodes than available to the resources"
        };
        push(&id, m.into());
    }
    err
}

/// ha-manager's rule transforms on a feasible set: overlapping positive rules merged, the
/// negative relations a positive group inherits made explicit, and a positive group's node
/// affinity extended to all of its members.
fn transform(rules: &mut Vec<Rule>) {
    let positive = |rules: &Vec<Rule>| -> Vec<(String, BTreeSet<String>)> {
        rules
            .iter()
            .filter_map(|r| match r {
                Rule::ResourceAffinity { id, resources, affinity: Affinity::Positive, disable: false, .. } => Some((id.clone(), resources.clone())),
                _ => None,
            })
            .collect()
    };
    let p = positive(rules);
    let refs: Vec<(&str, &BTreeSet<String>)> = p.iter().map(|(i, r)| (i.as_str(), r)).collect();
    for (ids, res) in disjoint_sets(&refs) {
        if ids.len() < 2 {
            continue;
        }
        let pos = rules.iter().position(|r| r.id() == ids[0]).unwrap();
        let merged = Rule::ResourceAffinity { id: format!("_merged-{}", ids.join("-")), resources: res, affinity: Affinity::Positive, disable: false, comment: None, span: rules[pos].span() };
        rules[pos] = merged;
        rules.retain(|r| !ids.iter().skip(1).any(|i| i == r.id()));
    }
    let negative: Vec<BTreeSet<String>> = rules
        .iter()
        .filter_map(|r| match r {
            Rule::ResourceAffinity { resources, affinity: Affinity::Negative, disable: false, .. } => Some(resources.clone()),
            _ => None,
        })
        .collect();
    for (pid, pres) in positive(rules) {
        let mut separated: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for nres in &negative {
            for sid in &pres {
                if !nres.contains(sid) {
                    continue;
                }
                for csid in nres {
                    if csid != sid {
                        separated.entry(csid.clone()).or_default().insert(sid.clone());
                    }
                }
            }
        }
        for (csid, from) in &separated {
            for sid in &pres {
                if from.contains(sid) {
                    continue;
                }
                rules.push(Rule::ResourceAffinity {
                    id: format!("_implicit-negative-{pid}-{sid}-{csid}"),
                    resources: BTreeSet::from([sid.clone(), csid.clone()]),
                    affinity: Affinity::Negative,
                    disable: false,
                    comment: None,
                    span: Default::default(),
                });
            }
        }
    }
    for (_, pres) in positive(rules) {
        for r in rules.iter_mut() {
            if let Rule::NodeAffinity { resources, disable: false, .. } = r {
                if !resources.is_disjoint(&pres) {
                    resources.extend(pres.iter().cloned());
                    break;
                }
            }
        }
    }
}

/// Drop rules that cannot hold together (ha-manager's rule checks), returning the log messages
/// (`Drop rule 'X', because ...`), transform the rest and compile it.
pub fn transform_and_compile(rules: &[Rule], nodes: &[String]) -> (Compiled, Vec<String>) {
    let errors = infeasible(rules, nodes);
    let mut rules: Vec<Rule> = rules.iter().filter(|r| !errors.contains_key(r.id())).cloned().collect();
    let mut messages = Vec::new();
    for (id, why) in &errors {
        for w in why {
            messages.push(format!("Drop rule '{id}', because {w}."));
        }
    }
    transform(&mut rules);
    let mut c = Compiled::default();
    for r in rules.iter().filter(|r| !r.disabled()) {
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
