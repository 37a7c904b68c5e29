//! Readers that fill `ha::model` from files: the section-config files of `/etc/pve/ha/`, and the
//! JSON of pve-ha-manager's regression-test directories.
pub mod pve;
pub mod rgmanager;
pub mod section;
pub mod storage_map;

use std::collections::BTreeMap;

use crate::ha::model::{Affinity, Group, RequestState, Rule, ServiceConf, Span};
pub use section::SyntaxError;

fn err(span: Span, msg: impl Into<String>) -> SyntaxError {
    SyntaxError { line: span.line, col: span.col, msg: msg.into() }
}

/// groups.cfg (or a test directory's `groups`).
pub fn parse_groups(text: &str) -> Result<BTreeMap<String, Group>, SyntaxError> {
    let mut out = BTreeMap::new();
    for s in section::parse(text)? {
        if s.kind != "group" {
            return Err(err(Span { col: 1, ..s.span }, format!("unknown section type `{}` (groups.cfg has `group:` sections only)", s.kind)));
        }
        let mut g = Group { id: s.id.clone(), nodes: Vec::new(), restricted: false, nofailback: false, comment: None, span: s.span };
        for p in &s.props {
            match p.key.as_str() {
                "nodes" => g.nodes = section::parse_node_list(&p.value).map_err(|m| err(p.span, m))?,
                "restricted" => g.restricted = section::parse_bool(&p.value).ok_or_else(|| err(p.span, "expected 0 or 1"))?,
                "nofailback" => g.nofailback = section::parse_bool(&p.value).ok_or_else(|| err(p.span, "expected 0 or 1"))?,
                "comment" => g.comment = Some(p.value.clone()),
                k => return Err(err(p.span, format!("unknown group property `{k}` (expected nodes, restricted, nofailback, comment)"))),
            }
        }
        if g.nodes.is_empty() {
            return Err(err(s.span, format!("group `{}` has no `nodes`", s.id)));
        }
        out.insert(g.id.clone(), g);
    }
    Ok(out)
}

/// rules.cfg (or a test directory's `rules_config`), in file order.
pub fn parse_rules(text: &str) -> Result<Vec<Rule>, SyntaxError> {
    let mut out = Vec::new();
    for s in section::parse(text)? {
        let resources = s
            .get("resources")
            .map(|p| p.value.split([',', ' ']).map(str::trim).filter(|x| !x.is_empty()).map(String::from).collect())
            .unwrap_or_default();
        let disable = match s.get("disable") {
            Some(p) => section::parse_bool(&p.value).ok_or_else(|| err(p.span, "expected 0 or 1"))?,
            None => false,
        };
        let comment = s.get("comment").map(|p| p.value.clone());
        let known: &[&str] = match s.kind.as_str() {
            "node-affinity" => &["resources", "nodes", "strict", "disable", "comment"],
            "resource-affinity" => &["resources", "affinity", "disable", "comment"],
            k => return Err(err(Span { col: 1, ..s.span }, format!("unknown rule type `{k}` (expected node-affinity or resource-affinity)"))),
        };
        if let Some(p) = s.props.iter().find(|p| !known.contains(&p.key.as_str())) {
            return Err(err(p.span, format!("unknown {} property `{}` (expected {})", s.kind, p.key, known.join(", "))));
        }
        if s.get("resources").is_none() {
            return Err(err(s.span, format!("rule `{}` has no `resources`", s.id)));
        }
        if s.kind == "node-affinity" {
            let nodes = match s.get("nodes") {
                Some(p) => section::parse_node_list(&p.value).map_err(|m| err(p.span, m))?.into_iter().collect(),
                None => return Err(err(s.span, format!("rule `{}` has no `nodes`", s.id))),
            };
            let strict = match s.get("strict") {
                Some(p) => section::parse_bool(&p.value).ok_or_else(|| err(p.span, "expected 0 or 1"))?,
                None => false,
            };
            out.push(Rule::NodeAffinity { id: s.id, resources, nodes, strict, disable, comment, span: s.span });
        } else {
            let affinity = match s.get("affinity") {
                Some(p) if p.value == "positive" => Affinity::Positive,
                Some(p) if p.value == "negative" => Affinity::Negative,
                Some(p) => return Err(err(p.span, format!("affinity `{}`: expected positive or negative", p.value))),
                None => return Err(err(s.span, format!("rule `{}` has no `affinity`", s.id))),
            };
            out.push(Rule::ResourceAffinity { id: s.id, resources, affinity, disable, comment, span: s.span });
        }
    }
    Ok(out)
}

/// A regression directory's `service_config`: `{"vm:101": {"node": "node1", "state": "started", ...}}`.
/// A missing state is `disabled` there (the simulator's default).
pub fn parse_service_json(text: &str) -> Result<BTreeMap<String, ServiceConf>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("{}:{}: {e}", e.line(), e.column()))?;
    let obj = v.as_object().ok_or("expected a JSON object of services")?;
    let mut out = BTreeMap::new();
    for (sid, d) in obj {
        let Some((kind, _)) = sid.split_once(':') else {
            return Err(format!("service id `{sid}`: expected TYPE:ID, e.g. vm:101"));
        };
        if !matches!(kind, "vm" | "ct" | "fa") {
            return Err(format!("service id `{sid}`: type `{kind}` is not vm, ct or fa"));
        }
        let node = d.get("node").and_then(|n| n.as_str()).ok_or_else(|| format!("service `{sid}` without assigned node"))?;
        let state = match d.get("state").and_then(|s| s.as_str()) {
            None => RequestState::Disabled,
            Some(s) => RequestState::parse(s).ok_or_else(|| format!("service `{sid}`: unknown state `{s}`"))?,
        };
        let mut s = ServiceConf::new(sid, node, state);
        s.group = d.get("group").and_then(|g| g.as_str()).map(String::from);
        let num = |k: &str| d.get(k).and_then(|x| x.as_u64().or_else(|| x.as_str().and_then(|s| s.parse().ok())));
        if let Some(n) = num("max_restart") {
            s.max_restart = n as u32;
        }
        if let Some(n) = num("max_relocate") {
            s.max_relocate = n as u32;
        }
        if let Some(n) = num("failback") {
            s.failback = n != 0;
        }
        s.comment = d.get("comment").and_then(|c| c.as_str()).map(String::from);
        s.lock = d.get("lock").and_then(|c| c.as_str()).map(String::from);
        if let Some(list) = d.get("drbd") {
            let items: Vec<String> = match list {
                serde_json::Value::String(s) => s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect(),
                serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(String::from)).collect(),
                _ => return Err(format!("service `{sid}`: drbd must be a string or a list")),
            };
            s.drbd = items;
        }
        out.insert(sid.clone(), s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_rules() {
        let g = parse_groups("group: group2\n\tnodes node2:2,node3\n\tnofailback 1\n").unwrap();
        assert_eq!(g["group2"].nodes, vec![("node2".to_string(), 2), ("node3".to_string(), 0)]);
        assert!(g["group2"].nofailback);
        let r = parse_rules("resource-affinity: apart\n\tresources vm:101,vm:102\n\taffinity negative\n\nnode-affinity: n\n\tresources vm:101\n\tnodes node1\n\tstrict 1\n").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].resources().len(), 2);
        let e = parse_rules("node-affinity: n\n\tresources vm:1\n\tnodes node1\n\tstrictt 1\n").unwrap_err();
        assert_eq!((e.line, e.col), (4, 2));
    }
}
