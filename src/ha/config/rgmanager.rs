//! rgmanager's `<rm>` in a cman cluster.conf (RHEL 6, Proxmox VE 2/3), mapped onto the same HA
//! model so its admins get the same simulation:
//!
//! * `<failoverdomain name ordered restricted nofailback>` with `<failoverdomainnode name
//!   priority>` → a group. rgmanager tries an ordered domain's nodes by ascending priority
//!   (1..100; a missing or out-of-range priority counts as 0, i.e. before 1); ha-manager prefers
//!   the higher number, so priority P becomes 100 - P (a missing one 100). Unordered: all 0.
//! * `<service name>` → `service:NAME` (moved by stop and start, like a container);
//!   `<pvevm vmid>` / `<vm name>` → `vm:VMID` (live-migrated).
//! * `autostart="0"` → requested state `stopped` (otherwise `started`).
//! * `recovery` (rgmanager's service.sh: `restart` "tries to restart failed parts of this resource
//!   group locally before attempting to relocate", the default): `restart` → max_restart =
//!   `max_restarts` (at least 1: one restart in place; rgmanager's default 0 means no limit on
//!   restarts that succeed, but a restart that fails relocates), max_relocate = nodes - 1 (every
//!   other node of the domain is tried); `relocate` moves at once (max_restart 0, max_relocate =
//!   nodes - 1); `restart-disable` restarts once, then gives up; `disable` gives up at once.
//! * `restart_expire_time` has no ha-manager counterpart (its restart count is per start
//!   attempt); it is kept in the service's comment.
use std::path::Path;

use super::pve::ClusterFacts;
use crate::clusterconf::document::{Document, NodeId};
use crate::clusterconf::model::Model;
use crate::ha::model::{Group, HaConfig, RequestState, ServiceConf, Span};

/// The cluster.conf's HA configuration and its cluster facts.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Rgmanager {
    pub config: HaConfig,
    pub cluster: ClusterFacts,
}

fn span(doc: &Document, id: NodeId) -> Span {
    let (line, col) = doc.pos(id);
    Span { line, col }
}

fn flag(doc: &Document, id: NodeId, name: &str) -> bool {
    doc.attr_value(id, name).is_some_and(|v| v.trim() == "1" || v.trim().eq_ignore_ascii_case("yes"))
}

/// Map a parsed cluster.conf. Errors carry line:col.
pub fn from_doc(doc: &Document, model: &Model, source: &str) -> Result<Rgmanager, String> {
    let mut r = Rgmanager::default();
    r.cluster.source = source.to_string();
    r.cluster.nodes = model.nodes.iter().filter_map(|n| n.name.clone()).collect();
    r.cluster.nodes.sort();
    r.cluster.two_node = model.two_node();
    let gated = model.fencedevices.iter().any(|d| d.agent.as_deref() == Some("fence_twonode_arbiter"));
    r.cluster.arbiter = model.quorumd.is_some() || gated;
    r.cluster.unfenced = r
        .cluster
        .nodes
        .iter()
        .filter(|n| !model.fencing_for(n).is_some_and(|f| f.methods.iter().any(|m| !m.devices.is_empty())))
        .cloned()
        .collect();
    r.cluster.hardware_fencing = Some(!r.cluster.nodes.is_empty() && r.cluster.unfenced.is_empty());
    let Some(rm) = &model.rm else { return Ok(r) };
    let nodes = r.cluster.nodes.len() as u32;
    for fds in doc.children_named(rm.id, "failoverdomains") {
        for fd in doc.children_named(fds, "failoverdomain") {
            let Some(name) = doc.attr_value(fd, "name") else {
                let (l, c) = doc.pos(fd);
                return Err(format!("{source}:{l}:{c}: <failoverdomain> without a name"));
            };
            let ordered = flag(doc, fd, "ordered");
            let mut members = Vec::new();
            for n in doc.children_named(fd, "failoverdomainnode") {
                let Some(node) = doc.attr_value(n, "name") else { continue };
                let prio = match (ordered, doc.attr_value(n, "priority")) {
                    (true, Some(p)) => {
                        let p: i64 = p.trim().parse().map_err(|_| {
                            let (l, c) = doc.pos(n);
                            format!("{source}:{l}:{c}: priority `{p}` of {node} is not a number (expected 1 to 100, 1 first)")
                        })?;
                        // rgmanager: outside 1..100 counts as 0, tried before 1
                        100 - if (1..=100).contains(&p) { p } else { 0 }
                    }
                    (true, None) => 100,
                    (false, _) => 0,
                };
                members.push((node.to_string(), prio));
            }
            r.config.groups.insert(
                name.to_string(),
                Group { id: name.to_string(), nodes: members, restricted: flag(doc, fd, "restricted"), nofailback: flag(doc, fd, "nofailback"), comment: None, span: span(doc, fd) },
            );
        }
    }
    let first_node = r.cluster.nodes.first().cloned().unwrap_or_default();
    for s in doc.child_elements(rm.id) {
        let sid = match doc.name(s) {
            "service" => match doc.attr_value(s, "name") {
                Some(n) => format!("service:{n}"),
                None => continue, // a `<service ref=...>` reference
            },
            "pvevm" => match doc.attr_value(s, "vmid") {
                Some(v) => format!("vm:{v}"),
                None => {
                    let (l, c) = doc.pos(s);
                    return Err(format!("{source}:{l}:{c}: <pvevm> without a vmid"));
                }
            },
            "vm" => match doc.attr_value(s, "name") {
                Some(v) => format!("vm:{v}"),
                None => continue,
            },
            _ => continue,
        };
        let autostart = doc.attr_value(s, "autostart").map(|v| v.trim() != "0").unwrap_or(true);
        let domain = doc.attr_value(s, "domain").map(String::from);
        // where it starts: the domain's most preferred node, else the first cluster node
        let node = domain
            .as_ref()
            .and_then(|d| r.config.groups.get(d))
            .and_then(|g| g.nodes.iter().max_by_key(|(_, p)| *p).map(|(n, _)| n.clone()))
            .unwrap_or_else(|| first_node.clone());
        let mut c = ServiceConf::new(&sid, &node, if autostart { RequestState::Started } else { RequestState::Stopped });
        c.span = span(doc, s);
        c.group = domain;
        let max_restarts = match doc.attr_value(s, "max_restarts") {
            None => None,
            Some(v) => Some(v.trim().parse::<u32>().map_err(|_| {
                let (l, c) = doc.pos(s);
                format!("{source}:{l}:{c}: max_restarts `{v}` of {sid} is not a number (expected a count, 0 for no limit)")
            })?),
        };
        match doc.attr_value(s, "recovery").unwrap_or("restart") {
            "relocate" => {
                c.max_restart = 0;
                c.max_relocate = nodes.saturating_sub(1).max(1);
            }
            "restart-disable" => {
                c.max_restart = 1;
                c.max_relocate = 0;
            }
            "disable" => {
                c.max_restart = 0;
                c.max_relocate = 0;
            }
            "restart" => {
                c.max_restart = max_restarts.unwrap_or(0).max(1);
                c.max_relocate = nodes.saturating_sub(1).max(1);
            }
            other => {
                let (l, col) = doc.pos(s);
                return Err(format!("{source}:{l}:{col}: recovery `{other}`: expected restart, relocate, restart-disable or disable"));
            }
        }
        if let Some(t) = doc.attr_value(s, "restart_expire_time") {
            c.comment = Some(format!("rgmanager restart_expire_time={t}"));
        }
        r.config.services.insert(sid, c);
    }
    Ok(r)
}

/// Read and map a cluster.conf.
pub fn load_rgmanager(path: &Path) -> Result<Rgmanager, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (doc, model) = Model::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    from_doc(&doc, &model, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_domains_and_services() {
        let xml = r#"<cluster name="c" config_version="1"><cman two_node="1" expected_votes="1"/>
<clusternodes><clusternode name="a" nodeid="1"/><clusternode name="b" nodeid="2"/></clusternodes>
<rm><failoverdomains><failoverdomain name="d" ordered="1" restricted="1" nofailback="1">
<failoverdomainnode name="a" priority="2"/><failoverdomainnode name="b" priority="1"/></failoverdomain></failoverdomains>
<pvevm vmid="100" domain="d" recovery="relocate"/><service name="nfs" autostart="0" max_restarts="3"/></rm></cluster>"#;
        let (doc, model) = Model::parse(xml.as_bytes()).unwrap();
        let r = from_doc(&doc, &model, "cluster.conf").unwrap();
        let g = &r.config.groups["d"];
        assert!(g.restricted && g.nofailback);
        assert_eq!(g.nodes, vec![("a".to_string(), 98), ("b".to_string(), 99)]);
        let vm = &r.config.services["vm:100"];
        assert_eq!((vm.node.as_str(), vm.max_restart, vm.max_relocate), ("b", 0, 1));
        let nfs = &r.config.services["service:nfs"];
        assert_eq!((nfs.state, nfs.max_restart), (RequestState::Stopped, 3));
        assert!(r.cluster.two_node && !r.cluster.arbiter);
        assert_eq!(r.cluster.hardware_fencing, Some(false));
    }
}
