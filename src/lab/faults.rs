//! Fence-device faults: a dead BMC (`dead-bmc`) and a node that does not power back on
//! (`no-power-on`).
use super::scenario::{Scenario, Step};

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "dead-bmc",
            title: "node2's BMC is dead: fencing node2 fails, and a second method fixes it",
            story: "A BMC dies quietly (its network cable, its firmware, the node's power supply) and nobody notices until \
                    the node it fences fails. With one fence method per node, fenced then retries forever and the \
                    cluster's services stay frozen. Rehearse it: find the dead device with `fence test`, see the \
                    failed fencing, and add a second method (a switched PDU) so fencing no longer depends on the BMC.",
            needs: &["snmpsim"],
            steps: dead_bmc,
        },
        Scenario {
            name: "no-power-on",
            title: "node1's BMC powers off but never on: fenced, power-on FAILED (exit 8)",
            story: "A reboot fence is two operations: power off (the fencing: the node can no longer write to shared \
                    data) and power on (getting the node back). Some BMCs accept the power-on and do nothing (a \
                    tripped breaker, a PSU fault, a firmware bug). fence_ipmilan reports Success all the same; twonode \
                    reads the power state back and says what is true: the node IS fenced (the cluster may recover \
                    its services) but did not come back, exit 8, so the admin knows a node is down for good.",
            needs: &[],
            steps: no_power_on,
        },
    ]
}

const F: &str = "--file $LAB/cluster.conf";

fn observe(lab: &super::rig::Lab) -> anyhow::Result<String> {
    lab.observe_power()
}

/// The fencing audit trail of the last fence run in the lab: every operation and the verdict.
fn audit(lab: &super::rig::Lab) -> anyhow::Result<String> {
    use anyhow::Context;
    let path = lab.path("fence-audit.log");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let events: Vec<serde_json::Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let run = events.iter().rev().find(|e| e["event"] == "start").map(|e| e["run"].clone()).context("no fence run in the audit log")?;
    let mut ops = Vec::new();
    let mut end = String::new();
    let mut head = String::new();
    for e in events.iter().filter(|e| e["run"] == run) {
        match e["event"].as_str() {
            Some("start") => head = format!("{} {}:", e["action"].as_str().unwrap_or("?"), e["node"].as_str().unwrap_or("?")),
            Some("step") => {
                let st = &e["step"];
                let op = st["op"].as_str().unwrap_or("?");
                let res = if st["ok"].as_bool().unwrap_or(false) { st["result"].as_str().unwrap_or("").to_string() } else { "FAILED".into() };
                ops.push(if op == "power_wait" { op.to_string() } else { format!("{op} {res}") });
            }
            Some("outcome") => {
                end = format!(
                    "-> {} (exit {})",
                    e["verdict"]["verdict"].as_str().unwrap_or("?"),
                    e["exit"].as_i64().unwrap_or(-1)
                )
            }
            _ => {}
        }
    }
    Ok(format!("{}\naudit trail ($LAB/fence-audit.log): {head} {} {end}", lab.observe_power()?, ops.join(", ")))
}

fn dead_bmc() -> Vec<Step> {
    vec![
        Step::new(
            "Every fence device answers",
            "The lab's cluster.conf: node1 fenced through its IPMI BMC, node2 through its iLO; one method each.",
            &format!("fence test {F}"),
            0,
        )
        .after(observe),
        Step::narrate(
            "node2's iLO dies now (the lab stops its simulator; node2 itself keeps running). Nothing in the \
             cluster notices: cman watches the nodes, not their fence devices.",
        ),
        Step::new(
            "Test the fence devices again (do it weekly, and after every change)",
            "fence test shows the dead device, why, and fails with exit 1 so a cron job or monitoring notices.",
            &format!("fence test {F}"),
            1,
        )
        .before(|lab| lab.stop_bmc("node2"))
        .after(observe),
        Step::narrate(
            "Then node2 fails (it hangs, or loses the cluster network). cman on node1 sees node2 leave and \
             fenced must fence node2 before anything recovers: DLM lockspaces, GFS2 and rgmanager block until \
             node2 is known to be off, so a half-dead node2 cannot write to shared data.",
        ),
        Step::new(
            "node1's fenced fences node2 (as fenced would, through node2's only method)",
            "The iLO does not answer: the method fails, and with no other method the fencing fails: exit 4, \
             twonode's code for an unreachable device (3 login refused, 5 timeout, 7 power state not reached).",
            &format!("fence node2 --action reboot --yes {F}"),
            4,
        )
        .after(observe),
        Step::narrate(
            "What cman does now: fenced logs \"fence node2 dev 0.0 agent fence_ilo result: error from agent\" and \
             \"fence node2 failed\", waits and tries every method again, forever. Until one succeeds, \
             node2's services are not relocated and every service using DLM or GFS2 stays frozen on node1 too: \
             the cluster is up but does nothing. The only way out without a working device is \
             `fence_ack_manual node2`, and only after checking by hand that node2 is really off (pull its \
             power cords): acknowledging a node that still runs corrupts shared data.",
        ),
        Step::narrate(
            "The fix: a second fence method that does not depend on node2's BMC. A switched PDU cuts node2's \
             power at the outlet. The lab has one: an APC AP7900 switched rack PDU spoken to over SNMP (simulated by \
             snmpsim from fixtures/pdu), the device fence_apc_snmp drives. node2 has two power supplies, on outlets 3 \
             and 4 (named node2-psu1 and node2-psu2): both must be off before either is switched on again, or node2 \
             keeps running on the other supply. fenced tries methods in order, so the PDU is used only when the iLO \
             fails.",
        ),
        Step::new(
            "Add the PDU as a fence device (its SNMP community on stdin)",
            "The community is the PDU's password: kept out of argv, shown as ******** everywhere. Staged in \
             cluster.conf.new with config_version+1, like every edit.",
            &format!("conf device add pdu1 --agent fence_apc_snmp ipaddr=127.0.0.1 ipport=$PDU_PORT snmp_version=2c --secret-stdin community {F}"),
            0,
        )
        .stdin(&format!("{}\n", super::pdu_sim::COMMUNITY))
        .before(|lab| lab.start_pdu()),
        Step::new(
            "Bind node2's first power supply to it, as a second method",
            "Methods are tried in order: the iLO first (it can also power node2 back on cleanly), then the PDU.",
            &format!("conf bind node2 pdu1 port=node2-psu1 --method pdu {F}"),
            0,
        ),
        Step::new(
            "And node2's second power supply, in the same method",
            "Two devices in one method: both outlets are switched off and confirmed off before either is switched on.",
            &format!("conf bind node2 pdu1 port=node2-psu2 --method pdu {F}"),
            0,
        ),
        Step::new(
            "Activate",
            "Validated first; then `cman_tool version -r` on a real cluster.",
            &format!("conf apply {F}"),
            0,
        ),
        Step::new(
            "Fence node2 again",
            "The iLO method fails as before; the PDU method switches both outlets off, confirms them off, and \
             switches them on again.",
            &format!("fence node2 --action reboot --yes {F}"),
            0,
        )
        .after(pdu_observe),
        Step::new(
            "What fence test says now",
            "Still exit 1: the dead iLO must be repaired, but fencing node2 no longer depends on it, and the \
             single-BMC warning for node2 is gone.",
            &format!("fence test {F}"),
            1,
        ),
        Step::new(
            "The iLO is repaired",
            "Both methods of node2 answer: PASS. Keep `fence test` in a weekly cron job: the next dead BMC \
             is then found on a quiet day, not during a failure.",
            &format!("fence test {F}"),
            0,
        )
        .before(|lab| lab.start_bmc("node2"))
        .after(observe),
    ]
}

/// Power states, and the outlets the PDU switched (from its log), in order.
fn pdu_observe(lab: &super::rig::Lab) -> anyhow::Result<String> {
    Ok(format!("{}\nPDU outlets switched ($LAB/pdu/sets.log): {}", lab.observe_power()?, lab.pdu_switches().join(", ")))
}

fn no_power_on() -> Vec<Step> {
    vec![
        Step::new(
            "node1 is on, its BMC answers",
            "Exit 0 means on, 2 off, as fence agents report status.",
            &format!("fence node1 --action status {F}"),
            0,
        )
        .after(observe),
        Step::narrate(
            "node1's BMC now accepts power-on requests and ignores them (the lab sets its BMC simulator's ignore_on fault). \
             Nothing shows it until the next reboot.",
        ),
        Step::new(
            "node2's fenced reboots node1",
            "Off, confirmed off by reading the state back; on, then waits up to power_timeout=8 s for the BMC to \
             report on. It never does.",
            &format!("fence node1 --action reboot --yes {F}"),
            8,
        )
        .before(|lab| lab.ignore_power_on("node1", true))
        .after(audit),
        Step::narrate(
            "Exit 8: the fencing part succeeded (node1 is off, confirmed), so fenced may let the cluster recover \
             node1's services on node2. But node1 did not come back: the cluster now runs on one node with no \
             redundancy. fence_ipmilan would have said \"Success: Rebooted\" here. What to do: look at node1's \
             power supply and BMC event log (`ipmitool sel list`), then power it on by hand once fixed.",
        ),
        Step::new(
            "Power node1 on once the fault is fixed",
            "Verified: the command returns only when the BMC reports on.",
            &format!("fence node1 --action on --yes {F}"),
            0,
        )
        .before(|lab| lab.ignore_power_on("node1", false))
        .after(observe),
    ]
}
