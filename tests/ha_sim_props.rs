//! Property: whatever happens to a two-node cluster (power, network, splits, the arbiter, BMCs,
//! admin commands, in any order), the simulated HA manager never runs a service on two nodes and
//! never recovers one from a node that may still run it; and no command sequence makes it panic.
use proptest::prelude::*;
use twonode::ha::sim::{invariant, simulate};

const WORDS: &[&str] = &[
    "power node1 off", "power node1 on", "power node2 off", "power node2 on",
    "network node1 off", "network node1 on", "network node2 off", "network node2 on",
    "reboot node1", "reboot node2", "shutdown node2", "restart-lrm node1",
    "crm node2 enable-node-maintenance", "crm node2 disable-node-maintenance",
    "service vm:101 migrate node2", "service vm:102 relocate node1", "service vm:102 stopped",
    "service vm:102 started", "service vm:101 stop 10", "service vm:103 disabled",
    "arbiter down", "arbiter up", "split on", "split off",
    "bmc node1 dead", "bmc node2 dead", "bmc node1 ok", "bmc node2 ok", "bmc node2 ignore-on",
    "drbd r0 node1 Outdated", "drbd r0 node1 UpToDate", "delay 0", "delay 60", "skip-round crm",
];

fn dir(cmds: &[Vec<usize>], arbiter: bool, policy: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let mut list = vec![vec!["power node1 on".to_string(), "power node2 on".to_string()]];
    list.extend(cmds.iter().map(|b| b.iter().map(|i| WORDS[*i].to_string()).collect()));
    let w = |n: &str, s: String| std::fs::write(t.path().join(n), s).unwrap();
    w("cmdlist", serde_json::to_string(&list).unwrap());
    w("hardware_status", r#"{"node1": {"power": "off", "network": "off"}, "node2": {"power": "off", "network": "off"}}"#.into());
    w(
        "service_config",
        r#"{"vm:101": {"node": "node1", "state": "started"}, "vm:102": {"node": "node2", "state": "started", "drbd": ["r0"]},
            "vm:103": {"node": "node2", "state": "started"}}"#
            .into(),
    );
    w("twonode.json", format!(r#"{{"arbiter": {arbiter}, "drbd": {{"r0": {{"node1": "UpToDate", "node2": "UpToDate"}}}}}}"#));
    w("datacenter.cfg", format!(r#"{{"ha": {{"shutdown_policy": "{policy}"}}}}"#));
    t
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn never_twice_never_unfenced(
        cmds in proptest::collection::vec(proptest::collection::vec(0..WORDS.len(), 1..3), 1..8),
        arbiter in any::<bool>(),
        policy in prop_oneof![Just("conditional"), Just("freeze"), Just("failover"), Just("migrate")],
    ) {
        let d = dir(&cmds, arbiter, policy);
        let (log, _err) = simulate(d.path()).unwrap();
        let v = invariant::check(&log);
        prop_assert!(v.is_empty(), "{:?}\n{}", v, log.join("\n"));
    }
}
