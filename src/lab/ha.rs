//! `ha-failover`: the HA core (ha-manager's semantics) driving twonode's real fence engine in the
//! lab. The cluster's membership and guests are simulated; the fence is not: it is `twonode fence`
//! against the lab's BMCs with the arbiter gate in front, and recovery waits for its confirmed
//! power-off.
use super::rig::Lab;
use super::scenario::{Scenario, Step};
use anyhow::Context;

pub fn scenarios() -> Vec<Scenario> {
    vec![Scenario {
        name: "ha-failover",
        title: "HA failover on two nodes: the service comes back only after the BMC confirms off",
        story: "node1 runs vm:101, node2 runs vm:102, under ha-manager's rules. node2 drops off the cluster \
                network. The HA manager on node1 waits its 60 s, marks vm:102 for fencing and asks \
                twonode to fence node2: the arbiter's vote first, then node2's BMC, whose power-off is \
                read back. Only then is vm:102 recovered on node1. The HA core and the cluster are \
                simulated; the arbiter, the BMCs and the fence are the lab's real ones.",
        needs: &["arbiter"],
        steps,
    }]
}

const CONF: &str = "--file $LAB/cluster.conf";

fn both_on(lab: &Lab) -> anyhow::Result<()> {
    lab.set_power("node1", true)?;
    lab.set_power("node2", true)
}

/// The HA scenario, in pve-ha-manager's regression format plus twonode.json.
fn write_ha_dir(lab: &Lab) -> anyhow::Result<()> {
    let dir = lab.path("ha-failover");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let files = [
        ("cmdlist", "[\n    [\"power node1 on\", \"power node2 on\"],\n    [\"network node2 off\"]\n]\n"),
        ("hardware_status", "{\n    \"node1\": {\"power\": \"off\", \"network\": \"off\"},\n    \"node2\": {\"power\": \"off\", \"network\": \"off\"}\n}\n"),
        ("service_config", "{\n    \"vm:101\": {\"node\": \"node1\", \"state\": \"started\"},\n    \"vm:102\": {\"node\": \"node2\", \"state\": \"started\"}\n}\n"),
        ("manager_status", "{}\n"),
        ("twonode.json", "{\"arbiter\": true}\n"),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).with_context(|| format!("writing {name}"))?;
    }
    both_on(lab)
}

fn dead_bmc(lab: &Lab) -> anyhow::Result<()> {
    write_ha_dir(lab)?;
    lab.stop_bmc("node2")
}

fn observe(lab: &Lab) -> anyhow::Result<String> {
    lab.observe_power()
}

fn steps() -> Vec<Step> {
    vec![
        Step::new(
            "Put the arbiter gate in front of every fence method",
            "As in split-arbiter: the arbiter's vote is the first device of every method, so a side \
             without the vote never reaches a BMC.",
            "conf gate-fencing --arbiter 127.0.0.1:$ARBITER_PORT --ca $LAB/arbiter/ca.crt --cert $LAB/arbiter/node.crt \
             --key $LAB/arbiter/node.key --file $LAB/cluster.conf",
            0,
        )
        .before(both_on),
        Step::new("Activate", "Validated, config_version raised.", &format!("conf apply {CONF}"), 0),
        Step::new(
            "node2 drops off the network: the HA manager fences it, then recovers vm:102",
            "The HA manager (master on node1) sees node2 go 'unknown', waits 60 s, puts vm:102 into \
             'fence' and calls the fence: `twonode fence node2 --action off` as node1, which asks the \
             arbiter for the vote and powers node2 off through its BMC, reading the state back. The \
             log shows recovery strictly after that confirmation; `ha simulate` also checks that no \
             service ever ran on two nodes.",
            "ha simulate $LAB/ha-failover --fence-with $LAB/cluster.conf",
            0,
        )
        .before(write_ha_dir)
        .after(observe),
        Step::narrate(
            "node2's BMC reports power off, node1's is on: vm:102 runs on node1, and it started there only \
             after the BMC answered.",
        ),
        Step::new(
            "The same failure with node2's BMC dead",
            "Both nodes on again, node2's BMC stopped (a dead management board). The fence cannot be \
             confirmed, so the HA manager must not recover vm:102: it stays in 'fence', and the log \
             says why once.",
            "ha simulate $LAB/ha-failover --fence-with $LAB/cluster.conf",
            0,
        )
        .before(dead_bmc)
        .after(observe),
        Step::narrate(
            "node2 is still on (its BMC never answered) and vm:102 was never started on node1: no \
             confirmed power-off, no second copy. The admin who has checked node2 by hand would power it \
             off and acknowledge the fence; twonode does not guess.",
        ),
    ]
}
