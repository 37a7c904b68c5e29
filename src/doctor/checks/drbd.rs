//! DRBD: `drbdadm dump` working on each node (`drbd.config`), the resources' hosts being cluster
//! nodes (`drbd.peers`), every resource configured and up on both nodes (`drbd.configured`,
//! `drbd.state`) and connected, UpToDate, not split (`drbd.state`, `drbd.split-brain`: the
//! recovery's own classification, `drbd::recover::classify`).
use super::{same_host, Context, Finding, Severity};
use crate::doctor::facts::NodeFacts;
use crate::drbd::recover::{self, NodeView};
use std::collections::BTreeSet;

pub fn check(cx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    let reachable: Vec<&NodeFacts> = cx.facts.reachable().collect();
    for n in &reachable {
        if let Some(e) = &n.drbd_error {
            out.push(Finding::new("drbd.config", Severity::Warning, Some(&n.name), format!("`drbdadm dump` failed: {e}"), "check drbd-utils and /etc/drbd.conf on the node"));
        }
    }
    // Peers named in the DRBD config vs the cluster's nodes.
    if let Some(c) = &cx.cman {
        let names = c.node_names();
        for n in &reachable {
            for r in n.drbd_configs.iter().flatten() {
                let hosts: Vec<&str> = r.hosts.iter().map(|h| h.name.as_str()).collect();
                let strangers: Vec<&str> = hosts.iter().copied().filter(|h| !names.iter().any(|x| same_host(x, h))).collect();
                if !strangers.is_empty() {
                    out.push(Finding::new(
                        "drbd.peers",
                        Severity::Warning,
                        Some(&n.name),
                        format!(
                            "resource {}: DRBD hosts {} are not cluster nodes ({})",
                            r.name,
                            hosts.join(", "),
                            names.join(", ")
                        ),
                        "DRBD's `on NAME` must be each node's `uname -n` and match <clusternode name>; rename one side so they agree",
                    ));
                } else {
                    out.push(Finding::new("drbd.peers", Severity::Ok, Some(&n.name), format!("resource {}: hosts {} are cluster nodes", r.name, hosts.join(", ")), ""));
                }
            }
        }
    }
    // Resource state on both nodes.
    let mut resources: BTreeSet<String> = BTreeSet::new();
    for n in &reachable {
        for r in n.drbd_configs.iter().flatten() {
            resources.insert(r.name.clone());
        }
    }
    for res in &resources {
        let views: Vec<(&str, Option<&NodeView>, bool)> = reachable
            .iter()
            .map(|n| {
                let configured = n.drbd_configs.iter().flatten().any(|r| &r.name == res);
                (n.name.as_str(), n.drbd_views.get(res).filter(|v| v.present), configured)
            })
            .collect();
        for (node, v, configured) in &views {
            if !configured {
                out.push(Finding::new(
                    "drbd.configured",
                    Severity::Error,
                    Some(node),
                    format!("resource {res} is configured on the peer but not on {node}"),
                    format!("copy the resource file (/etc/drbd.d/{res}.res) to {node} and `drbdadm create-md`/`up` it there"),
                ));
            } else if v.is_none() {
                out.push(Finding::new(
                    "drbd.state",
                    Severity::Error,
                    Some(node),
                    format!("resource {res} is configured but not up on {node}"),
                    format!("on {node}: `drbdadm up {res}`"),
                ));
            }
        }
        let up: Vec<&NodeView> = views.iter().filter_map(|x| x.1).collect();
        if up.len() != 2 {
            continue;
        }
        let (verdict, words) = recover::classify(up[0], up[1]);
        let ev_nodes = up
            .iter()
            .map(|v| {
                format!(
                    "{}: {} {} disk {}",
                    v.node,
                    v.role.as_deref().unwrap_or("?"),
                    v.cstate.as_deref().unwrap_or("?"),
                    v.volumes.iter().map(|x| x.disk.as_deref().unwrap_or("?")).collect::<Vec<_>>().join("/")
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let ev = if words.is_empty() { ev_nodes } else { format!("{ev_nodes}; {}", words.join("; ")) };
        let (n0, n1) = (up[0].node.as_str(), up[1].node.as_str());
        let finding = match verdict {
            recover::Verdict::Healthy => Finding::new("drbd.state", Severity::Ok, None, format!("{res}: connected, UpToDate on both ({ev})"), ""),
            recover::Verdict::Syncing if up.iter().any(|v| v.syncing()) => Finding::new(
                "drbd.state",
                Severity::Warning,
                None,
                format!("{res}: resync running ({ev})"),
                format!("wait for the resync to finish (`twonode drbd status {res}`) before any failover test"),
            ),
            recover::Verdict::Syncing => Finding::new(
                "drbd.state",
                Severity::Error,
                None,
                format!("{res}: connected but not UpToDate on both nodes ({ev})"),
                format!("find why the disk is not UpToDate (`twonode drbd status {res}`; `drbdadm status {res}` on each node)"),
            ),
            recover::Verdict::SplitBrain => Finding::new(
                "drbd.split-brain",
                Severity::Error,
                None,
                format!("{res}: SPLIT BRAIN ({ev})"),
                format!(
                    "see whose data to keep with `twonode drbd split-brain`, then rehearse with \
                     `twonode drbd recover {res} --discard <victim> --dry-run --node {n0}=... --node {n1}=...`"
                ),
            ),
            recover::Verdict::Disconnected => Finding::new(
                "drbd.state",
                Severity::Error,
                None,
                format!("{res}: not connected, no diverging data ({ev})"),
                format!("reconnect: `drbdadm connect {res}` on the StandAlone node(s); check the replication link"),
            ),
            recover::Verdict::Unrelated => Finding::new(
                "drbd.state",
                Severity::Error,
                None,
                format!("{res}: the nodes' data are UNRELATED ({ev})"),
                "the two disks never shared data: check both nodes' resource definitions and disks before anything else",
            ),
            recover::Verdict::Unknown => Finding::new(
                "drbd.state",
                Severity::Error,
                None,
                format!("{res}: not connected, state unclear ({ev})"),
                format!("inspect with `twonode drbd status {res}` and `twonode drbd split-brain`"),
            ),
        };
        out.push(finding);
    }
    out
}
