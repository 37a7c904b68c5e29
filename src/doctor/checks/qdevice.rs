//! The corosync quorum device (a corosync cluster with `quorum.device` model net), from each
//! node's `corosync-quorumtool -s` and `corosync-qdevice-tool -sv` ([`crate::doctor::qdevice`]):
//! on each node the device registered, alive, connected and its vote counted (`qdevice.state`);
//! across the nodes one partition that both agree on (`qdevice.partition`).
use super::{Context, Finding, Severity};
use crate::doctor::facts::qdevice::{NodeQdevice, QuorumTool};

pub fn check(cx: &Context) -> Vec<Finding> {
    let Some(cc) = &cx.corosync else { return Vec::new() };
    let Some(device) = cc.quorum.device.as_ref().filter(|d| d.model == "net") else { return Vec::new() };
    let nodes: Vec<NodeQdevice> = cx
        .facts
        .reachable()
        .map(|n| n.qdevice.clone().unwrap_or_else(|| NodeQdevice { node: n.name.clone(), quorumtool_error: Some("not gathered".into()), ..Default::default() }))
        .collect();
    let host = device.host.clone().unwrap_or_else(|| "?".into());
    qdevice_checks(&nodes, &host, cc.quorum.nodes.len())
}

fn node_evidence(q: &QuorumTool) -> String {
    format!(
        "ring {}, members {:?}, quorate {}, total votes {}/{} expected, device votes {}",
        q.ring_id.as_deref().unwrap_or("?"),
        q.member_ids(),
        match q.quorate {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "?",
        },
        q.total_votes.map(|v| v.to_string()).unwrap_or("?".into()),
        q.expected_votes.map(|v| v.to_string()).unwrap_or("?".into()),
        q.device_votes()
    )
}

/// Checks for a corosync cluster with `quorum.device` model net: on each node the device is
/// registered, alive, connected to the arbiter and its vote counted; across nodes exactly one
/// partition (same members, same ring id) and both agree. `host` is quorum.device.net.host.
fn qdevice_checks(nodes: &[NodeQdevice], host: &str, configured_nodes: usize) -> Vec<Finding> {
    use Severity::*;
    let mut out: Vec<Finding> = Vec::new();
    let fix_start = "on the node: `systemctl enable --now corosync-qdevice`; its log (`journalctl -u corosync-qdevice`) says why it stops (certificates: `corosync-qdevice-net-certutil`)";
    for n in nodes {
        let name = Some(n.node.as_str());
        let Some(q) = &n.quorumtool else {
            out.push(Finding::new(
                "qdevice.state",
                Error,
                name,
                format!("`corosync-quorumtool -s` gave nothing usable: {}", n.quorumtool_error.as_deref().unwrap_or("?")),
                "is corosync running on the node? (`systemctl status corosync`)",
            ));
            continue;
        };
        let qd = n.qdevice_tool.as_ref();
        let conn = qd
            .map(|d| {
                format!(
                    "; corosync-qdevice-tool: state {}, arbiter {}, TLS {}, vote {}",
                    d.state.as_deref().unwrap_or("?"),
                    d.qnetd_host.as_deref().unwrap_or(host),
                    d.tls_active.as_deref().unwrap_or("?"),
                    if d.cast_vote { "cast" } else { "not cast" }
                )
            })
            .or_else(|| n.qdevice_tool_error.as_ref().map(|e| format!("; corosync-qdevice-tool: {e}")))
            .unwrap_or_default();
        let ev = format!("{}{conn}", node_evidence(q));
        let col = q.local().and_then(|m| m.qdevice.clone());
        let registered = q.flags.iter().any(|f| f == "Qdevice") && col.as_deref().is_some_and(|c| c != "NR");
        if !registered {
            out.push(Finding::new(
                "qdevice.state",
                Error,
                name,
                format!("no quorum device registered with votequorum (Qdevice column {}; {ev})", col.as_deref().unwrap_or("absent")),
                format!("corosync-qdevice is not running: {fix_start}"),
            ));
            continue;
        }
        let col = col.unwrap_or_default();
        let flags: Vec<&str> = col.split(',').collect();
        if flags.contains(&"NA") {
            out.push(Finding::new(
                "qdevice.state",
                Error,
                name,
                format!("the qdevice daemon is registered but not alive (Qdevice {col}; {ev})"),
                format!("restart it: {fix_start}"),
            ));
            continue;
        }
        let connected = qd.and_then(|d| d.state.as_deref()).map(|s| s == "Connected");
        if flags.contains(&"V") && q.device_votes() > 0 {
            out.push(Finding::new("qdevice.state", Ok, name, format!("device vote counted (Qdevice {col}; {ev})"), String::new()));
            continue;
        }
        let alone = q.members.len() < configured_nodes;
        let (evd, fix) = match connected {
            Some(false) => (
                format!(
                    "the device vote is NOT counted: the qdevice is not connected to the arbiter {} (Qdevice {col}; {ev})",
                    qd.and_then(|d| d.qnetd_host.clone()).unwrap_or_else(|| host.to_string())
                ),
                "check the arbiter runs (`twonode arbiter status` on it) and the node reaches it (TCP 5403, firewall); \
                 while it is away a further failure of either node stops the cluster"
                    .to_string(),
            ),
            _ if alone => (
                format!("the device vote is NOT counted: this partition lost the arbiter's vote (NACK) (Qdevice {col}; {ev})"),
                "the nodes are split (see qdevice.partition): repair the ring link; the partition holding the vote runs the services".into(),
            ),
            _ => (
                format!("the device vote is NOT counted although the qdevice is connected (arbiter NACK or waiting) (Qdevice {col}; {ev})"),
                "look at the arbiter's view (`twonode arbiter status`) and the qdevice log; a vote withheld with both nodes up is often a lease still held by an old ring".into(),
            ),
        };
        out.push(Finding::new("qdevice.state", Error, name, evd, fix));
    }
    // Across the nodes: one partition, same ring, both agree.
    let seen: Vec<(&str, &QuorumTool)> = nodes.iter().filter_map(|n| n.quorumtool.as_ref().map(|q| (n.node.as_str(), q))).collect();
    if seen.len() >= 2 {
        let ev = seen.iter().map(|(n, q)| format!("{n}: {}", node_evidence(q))).collect::<Vec<_>>().join("; ");
        let members: std::collections::BTreeSet<Vec<u32>> = seen.iter().map(|(_, q)| q.member_ids()).collect();
        let rings: std::collections::BTreeSet<Option<&str>> = seen.iter().map(|(_, q)| q.ring_id.as_deref()).collect();
        let quorate: Vec<&str> = seen.iter().filter(|(_, q)| q.quorate == Some(true)).map(|(n, _)| *n).collect();
        if members.len() > 1 || seen.iter().any(|(_, q)| q.members.len() < configured_nodes) {
            if quorate.len() > 1 {
                out.push(Finding::new(
                    "qdevice.partition",
                    Error,
                    None,
                    format!("SPLIT with more than one quorate partition ({}): {ev}", quorate.join(", ")),
                    "stop the services on all but one partition NOW, then repair the ring; a quorum device must never let both sides be quorate: check that two_node is not set together with it",
                ));
            } else {
                let holder = quorate.first().map(|n| format!("{n} holds the vote and runs the cluster")).unwrap_or_else(|| "no partition is quorate".into());
                out.push(Finding::new(
                    "qdevice.partition",
                    Error,
                    None,
                    format!("the nodes are split into partitions ({holder}): {ev}"),
                    "repair the corosync ring between the nodes (`corosync-cfgtool -s` on each); the other partition is fenced or waits",
                ));
            }
        } else if rings.len() > 1 {
            out.push(Finding::new(
                "qdevice.partition",
                Warning,
                None,
                format!("same members but different ring ids (a membership change in progress?): {ev}"),
                "run doctor again in a few seconds; if it stays, check `corosync-cfgtool -s` on both nodes",
            ));
        } else if quorate.len() != seen.len() {
            out.push(Finding::new("qdevice.partition", Error, None, format!("one partition but not every node is quorate: {ev}"), "see qdevice.state per node"));
        } else {
            out.push(Finding::new("qdevice.partition", Ok, None, format!("one partition, both nodes agree: {ev}"), String::new()));
        }
    }
    out
}
