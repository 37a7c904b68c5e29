//! Fence races and network splits of a cman `two_node="1"` cluster, rehearsed in the lab:
//!
//! * `fence-race`: both nodes' fenced fire at the same moment, each powers the other off, and both
//!   nodes are down; then the usual fix (a static `delay` on one node's device) and why it is weak.
//! * `split-no-arbiter`: a network split, the votequorum arithmetic of each half (both quorate
//!   with two_node), the race that follows, and what it means for DRBD.
//! * `split-arbiter`: the same split with arbiter-gated fencing (`twonode conf gate-fencing`):
//!   exactly one node is fenced; and with the arbiter down nobody fences.
//!
//! How the lab models "the fenced of a node": a `twonode fence NODE --file cluster.conf` run with
//! `TWONODE_LOCAL_NODE` set to the node it runs on (fenced runs the methods of the victim in
//! order, as `twonode fence` does). A step marked `dies_with(NODE)` is killed the moment NODE's
//! BMC reports power off: a fence agent dies with the machine it runs on.
use super::rig::Lab;
use super::scenario::{Scenario, Step};
use anyhow::Context;

/// This module's scenarios, in the order the demo plays them.
pub fn scenarios() -> Vec<Scenario> {
    let mut v = vec![
        Scenario {
            name: "fence-race",
            title: "Fence race: both nodes fence each other at once (and the static-delay fix)",
            story: "cman two_node=\"1\" without any protection. When the nodes lose sight of each other, \
                    both keep quorum and both fenced fire at the same moment: each powers the other off, and \
                    the cluster is gone. Then the classic fix, a static delay on one node's fence device: that \
                    node survives the race, for the wrong reason.",
            needs: &[],
            steps: fence_race,
        },
        Scenario {
            name: "split-no-arbiter",
            title: "Network split of a two_node cluster without an arbiter: both halves quorate",
            story: "The cluster network between node1 and node2 fails. The votequorum arithmetic of each half \
                    (what `quorum status` shows on each side), what each side does next, and what that means \
                    for DRBD.",
            needs: &[],
            steps: split_no_arbiter,
        },
    ];
    if !GATE_CLI {
        return v;
    }
    v.push(
        Scenario {
            name: "split-arbiter",
            title: "Network split with arbiter-gated fencing: exactly one node is fenced",
            story: "The same split, with the arbiter gate configured by `twonode conf gate-fencing`: before \
                    touching a BMC each side asks the arbiter for the cluster's vote; only the side holding it \
                    fences. Then the same split while the arbiter is down: nobody fences, and why that is the \
                    safe choice.",
            needs: &["arbiter"],
            steps: split_arbiter,
        },
    );
    v
}

/// `twonode conf gate-fencing` is on main (split-arbiter needs it).
const GATE_CLI: bool = true;

const CONF: &str = "--file $LAB/cluster.conf";

/// node1's fenced fencing node2 and node2's fenced fencing node1, `--action off`.
fn fenced_of(node: &'static str, victim: &str, title: &str, why: &str, expect: i32) -> Step {
    Step::new(title, why, &format!("fence {victim} --action off --yes {CONF}"), expect).env("TWONODE_LOCAL_NODE", node)
}

fn both_on(lab: &Lab) -> anyhow::Result<()> {
    lab.set_power("node1", true)?;
    lab.set_power("node2", true)
}

fn observe(lab: &Lab) -> anyhow::Result<String> {
    lab.observe_power()
}

fn fence_race() -> Vec<Step> {
    vec![
        Step::new(
            "What protects this cluster from a fence race?",
            "The lab's cluster.conf: two_node=\"1\" expected_votes=\"1\", node1 fenced through its IPMI BMC, \
             node2 through its iLO, no delay, no arbiter. The fence test reaches both BMCs and warns.",
            &format!("fence test {CONF}"),
            0,
        )
        .before(both_on),
        Step::narrate(
            "The link between node1 and node2 breaks; both still reach both BMCs (a separate management \
             network). With two_node=\"1\" one vote is quorum, so each node stays quorate alone, declares \
             the other failed, and its fenced fences it: at the same moment, since both saw the same \
             token loss.",
        ),
        Step::race(
            "Both fenced fire at once",
            "Both with action off, each as the fenced of its node (TWONODE_LOCAL_NODE).",
            vec![
                fenced_of("node1", "node2", "node1's fenced fences node2", "", 0),
                fenced_of("node2", "node1", "node2's fenced fences node1", "", 0),
            ],
        )
        .after(observe),
        Step::narrate(
            "Both nodes are powered off: the fence race. On real hardware both power-off requests leave \
             within milliseconds of each other, before either machine loses power, and each agent then \
             dies with its node (in the lab both ran to the end and reported success). With action reboot \
             (fenced's default) it ends the same way: each agent dies between its power-off and its \
             power-on, so nobody turns the other back on. Every service of the cluster is down until \
             someone walks to the machines.",
        ),
        Step::new(
            "The usual fix: a static delay on node1's fence device",
            "Both nodes were powered on again. Whoever fences node1 now waits 5 s before acting (written in \
             place here; on a real cluster stage it, review with `conf diff`, activate with `conf apply`).",
            &format!("conf bind node1 ipmi-node1 --method ipmi delay=5 --in-place {CONF}"),
            0,
        )
        .before(both_on),
        Step::race(
            "The same race with the delay",
            "A fence agent dies with the machine it runs on: the lab kills each fenced when its own node's \
             BMC reports power off.",
            vec![
                fenced_of("node1", "node2", "node1's fenced fences node2", "No delay: node2's iLO is switched off at once.", 0)
                    .dies_with("node1"),
                fenced_of(
                    "node2",
                    "node1",
                    "node2's fenced fences node1",
                    "Waits node1's 5 s delay first, and node2 loses power while it waits.",
                    Step::DIED,
                )
                .dies_with("node2"),
            ],
        )
        .after(observe),
        Step::new(
            "The price: node1 really crashes",
            "node2 is powered on again and node1 hangs for real (nothing races now). node2's fenced must \
             still wait node1's delay before it can fence node1 and take over its services.",
            &format!("fence node1 --action off --yes {CONF}"),
            0,
        )
        .env("TWONODE_LOCAL_NODE", "node2")
        .before(|lab| lab.set_power("node2", true))
        .after(observe),
        Step::narrate(
            "node1 survived the race because of the delay and nothing else. That is why a static delay is a weak \
             fix: (1) it always picks node1, also when node1 is the sick one (its cluster network card \
             flaps, its storage hangs, but it still reaches the BMCs): node2 waits 5 s and loses, and the \
             cluster keeps the broken node after powering off the healthy one; (2) it slows every fence of \
             node1, also when node1 really crashed: its services stay down for the delay on top of the \
             fence (15 s in the usual advice). Arbiter-gated fencing decides per incident instead: only \
             the side that still reaches a third party may fence (scenario split-arbiter).",
        ),
    ]
}

/// `cman_tool status` as NODE (alone after the split) prints it; the lab has no cman, so it writes
/// what each side's cman would report into `$LAB/split/NODE.cman_tool_status`.
fn cman_tool_status(node: &str, nodeid: u32, config_version: &str) -> String {
    format!(
        "Version: 6.2.0\nConfig Version: {config_version}\nCluster Name: lab\nCluster Id: 1701\nCluster Member: Yes\n\
         Cluster Generation: 12\nMembership state: Cluster-Member\nNodes: 1\nExpected votes: 1\nTotal votes: 1\n\
         Node votes: 1\nQuorum: 1  \nActive subsystems: 8\nFlags: 2node \nPorts Bound: 0 11 177  \n\
         Node name: {node}\nNode ID: {nodeid}\nMulticast addresses: 239.192.6.165 \nNode addresses: 127.0.0.1 \n"
    )
}

fn write_split_views(lab: &Lab) -> anyhow::Result<()> {
    let conf = std::fs::read_to_string(lab.path("cluster.conf")).context("reading the lab's cluster.conf")?;
    let version = conf
        .split("config_version=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("1")
        .to_string();
    let dir = lab.path("split");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (node, id) in [("node1", 1), ("node2", 2)] {
        let path = dir.join(format!("{node}.cman_tool_status"));
        std::fs::write(&path, cman_tool_status(node, id, &version)).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn split_no_arbiter() -> Vec<Step> {
    vec![
        Step::new(
            "The quorum arithmetic while both nodes are up",
            "votequorum: quorum = max((expected+2)/2, (total+2)/2), except two_node, where one vote is quorum. \
             Both nodes up: total 2, quorum 1.",
            &format!("quorum status {CONF}"),
            0,
        )
        .before(both_on),
        Step::narrate(
            "The cluster network between node1 and node2 fails (a switch dies, a cable is pulled). Both \
             nodes keep running and keep reaching both BMCs. Each cman forms a membership of one.",
        ),
        Step::new(
            "node1's view after the split",
            "`cman_tool status` as node1 prints it now (the lab has no cman: it wrote this file), read by \
             `quorum status --live`: Nodes 1, Total votes 1, Quorum 1.",
            &format!("quorum status {CONF} --live $LAB/split/node1.cman_tool_status"),
            0,
        )
        .before(write_split_views),
        Step::new(
            "node2's view after the split",
            "The same arithmetic on the other side.",
            &format!("quorum status {CONF} --live $LAB/split/node2.cman_tool_status"),
            0,
        ),
        Step::narrate(
            "Both halves are quorate: with two_node=\"1\" expected_votes=\"1\" one vote is quorum, and each \
             half has one. Without two_node (expected 2, quorum 2) neither half would be quorate and both \
             would stop their services: safe, but a two-node cluster could then never survive the loss of \
             a node, which is why two_node exists. A quorate node whose peer vanished must fence the peer \
             before it recovers the peer's services; so both do.",
        ),
        Step::race(
            "What each side does next: fence the other",
            "Each side's fenced, at the same moment (scenario fence-race).",
            vec![
                fenced_of("node1", "node2", "node1's fenced fences node2", "", 0),
                fenced_of("node2", "node1", "node2's fenced fences node1", "", 0),
            ],
        )
        .after(observe),
        Step::narrate(
            "Both nodes are off. And DRBD: on Proxmox VE 2.x/3.x DRBD usually runs dual-primary \
             (allow-two-primaries, both nodes Primary so guests can live-migrate), and the split cuts the \
             replication link too. With DRBD's default fencing dont-care each side keeps its disk \
             writable and every guest still running writes on its side only. Whenever fencing does not \
             stop one side at once (the BMCs sit on the broken network, an agent hangs, a static delay \
             runs), both sides write meanwhile: a DRBD split brain, seen only when the link returns (StandAlone, \"Split-Brain \
             detected, dropping connection\"), and one side's writes must be thrown away by hand \
             (scenario split-brain rehearses the recovery). DRBD waits for fencing only with fencing \
             resource-and-stonith and a fence-peer handler (rhcs_fence under cman); then the race above \
             decides, and both nodes end off.",
        ),
    ]
}

/// The arbiter's view, from its status socket: who holds the cluster's vote.
fn observe_arbiter(lab: &Lab) -> anyhow::Result<String> {
    let power = lab.observe_power()?;
    if lab.arbiter.is_none() {
        return Ok(power);
    }
    if !lab.arbiter_running() {
        return Ok(format!("{power}; the arbiter is down"));
    }
    let holders = vote_holders(lab)?;
    Ok(match holders.as_slice() {
        [] => format!("{power}; the arbiter: nobody holds the vote"),
        [one] => format!("{power}; the arbiter: {one} holds the cluster's vote"),
        many => format!("{power}; the arbiter: {} hold the vote", many.join(", ")),
    })
}

/// A freshly started arbiter grants nothing for its start hold (the lab's is only the lease
/// margin, about 1 s): wait until it is over, so the race below starts with an arbiter that can
/// decide at once (and the log does not depend on how fast the lab started).
fn arbiter_ready(lab: &Lab) -> anyhow::Result<()> {
    let a = lab.arbiter.as_ref().context("the lab has no arbiter")?;
    let start = std::time::Instant::now();
    loop {
        let v = crate::quorum::arbiter::server::query_status(&a.status_socket).context("asking the lab's arbiter")?;
        if v["arbiter"]["startup_hold_remaining_ms"].as_u64().unwrap_or(0) == 0 {
            return Ok(());
        }
        if start.elapsed() > std::time::Duration::from_secs(30) {
            anyhow::bail!("the lab's arbiter still holds its start hold after 30 s (see {}/arbiter.log)", a.dir.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The nodes the lab's arbiter counts as (possibly) holding the cluster's vote.
fn vote_holders(lab: &Lab) -> anyhow::Result<Vec<String>> {
    let a = lab.arbiter.as_ref().context("the lab has no arbiter")?;
    let v = crate::quorum::arbiter::server::query_status(&a.status_socket).context("asking the lab's arbiter")?;
    let mut holders = Vec::new();
    for c in v["arbiter"]["clusters"].as_array().cloned().unwrap_or_default() {
        for n in c["nodes"].as_array().cloned().unwrap_or_default() {
            if n["holds_lease"].as_bool() == Some(true) {
                holders.push(format!("node{}", n["node_id"]));
            }
        }
    }
    holders.sort();
    holders.dedup();
    Ok(holders)
}

fn stop_arbiter_and_power_on(lab: &Lab) -> anyhow::Result<()> {
    both_on(lab)?;
    lab.stop_arbiter()
}

fn split_arbiter() -> Vec<Step> {
    vec![
        Step::new(
            "Put the arbiter gate in front of every fence method",
            "Adds the fencedevice twonode-arbiter (the lab's arbiter, its CA and the cluster's client \
             certificate) and makes it the first device of every method of every node: fenced abandons a \
             method at its first failing device, so without the vote the real device is never reached. \
             Staged in cluster.conf.new like every edit.",
            "conf gate-fencing --arbiter 127.0.0.1:$ARBITER_PORT --ca $LAB/arbiter/ca.crt --cert $LAB/arbiter/node.crt \
             --key $LAB/arbiter/node.key --file $LAB/cluster.conf",
            0,
        )
        .before(both_on),
        Step::new(
            "Activate",
            "Validated first (the gate must be first in every method), config_version raised, old file kept.",
            &format!("conf apply {CONF}"),
            0,
        ),
        Step::new(
            "The fence test sees the gate",
            "The arbiter answers (TLS, INIT accepted), and the fence race risk is covered by the gate.",
            &format!("fence test {CONF}"),
            0,
        ),
        Step::narrate(
            "The cluster network fails as in split-no-arbiter: both halves quorate, both fenced fire, and \
             both nodes still reach the arbiter. The arbiter gives the vote to the first side that asks \
             (its tie-breaker, lowest node id, only decides when both ask at once) and a side holding the \
             vote keeps it. To make this log repeatable the lab starts node1's fenced just after \
             node2's got the vote; on a real cluster they ask within milliseconds of each other, and the \
             second is refused all the same.",
        ),
        Step::race(
            "Both fenced fire; the arbiter decides",
            "Each method now starts with the gate: ask the arbiter for the vote, and only with it go on \
             to the BMC.",
            vec![
                fenced_of("node1", "node2", "node1's fenced fences node2", "Starts once node2 holds the vote.", 1)
                    .start_when(|lab| vote_holders(lab).map(|h| h == ["node2"]).unwrap_or(false))
                    .before(arbiter_ready),
                fenced_of("node2", "node1", "node2's fenced fences node1", "", 0),
            ],
        )
        .after(observe_arbiter),
        Step::narrate(
            "Exactly one BMC is off. node2's gate got the vote and held it (its connection to the arbiter \
             stayed open) while its method went on to node1's IPMI BMC. node1's gate asked meanwhile and \
             was refused (NACK): exit 1, the method stops there and node2's iLO is never touched; fenced \
             would retry and be refused again. After node2's gate lets go the arbiter still keeps the vote \
             with node2 for its hold (120 s by default), so a slow BMC can finish. (On real hardware node1 \
             may well be off before its fenced even asks; the lab kept it alive to show what it would \
             have been told.)",
        ),
        Step::narrate(
            "Both nodes are powered on again, and now the arbiter's host is down (or unreachable from both \
             nodes) when the same split happens.",
        ),
        Step::race(
            "The split while the arbiter is down",
            "Both fenced fire at the same moment again.",
            vec![
                fenced_of("node1", "node2", "node1's fenced fences node2", "", 1).before(stop_arbiter_and_power_on),
                fenced_of("node2", "node1", "node2's fenced fences node1", "", 1),
            ],
        )
        .after(observe_arbiter),
        Step::narrate(
            "Nobody fences: the gate never fences without a vote, and with the arbiter gone neither side \
             can know whether the other is alive and fencing too. Fencing anyway would bring back the race \
             of fence-race: both nodes off, or worse. So the cluster blocks (fenced retries; DLM, GFS2 and \
             rgmanager wait) and no data is at risk. What the admin does: bring the arbiter back (the next \
             fenced retry then gets the vote and fences), or check by hand that the other node is really \
             off or dead (its console, `twonode fence NODE --action status`, which needs no vote) and only \
             then tell cman with `fence_ack_manual NODE`.",
        ),
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn cman_tool_status_reads_back_as_a_one_node_membership() {
        let l = crate::quorum::votequorum::Live::from_cman_tool(&super::cman_tool_status("node2", 2, "3")).unwrap();
        assert_eq!(l.members, vec![(2, 1)]);
        assert_eq!(l.reported_blocked, Some(false));
    }

    #[test]
    fn three_scenarios_with_distinct_names() {
        let s = super::scenarios();
        let names: Vec<&str> = s.iter().map(|s| s.name).collect();
        assert_eq!(names[..2], ["fence-race", "split-no-arbiter"]);
        for sc in &s {
            assert!(!(sc.steps)().is_empty());
        }
    }
}
