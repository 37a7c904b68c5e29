//! `twonode ha status|validate|what-if|simulate` on configurations: a Proxmox VE cluster file
//! system (fixtures/ha, written from the documented formats) and rgmanager's `<rm>` in real
//! cluster.conf files (fixtures/clusterconf/corpus).
use assert_cmd::Command;

fn twonode() -> Command {
    Command::cargo_bin("twonode").unwrap()
}

const PVE: &str = "fixtures/ha/pve-two-node";

fn out(args: &[&str]) -> (i32, String, String) {
    let o = twonode().args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into(), String::from_utf8_lossy(&o.stderr).into())
}

#[test]
fn status_like_ha_manager() {
    let (rc, so, se) = out(&["ha", "status", "--pve-dir", PVE]);
    assert_eq!(rc, 0, "{se}");
    // the fixture's timestamps are from 2024: ha-manager calls such a manager and LRMs dead
    assert_eq!(
        so,
        "quorum OK\n\
         master node1 (old timestamp - dead?, Thu Dec  5 12:00:00 2024)\n\
         fencing standby (CRM watchdog standby)\n\
         lrm node1 (old timestamp - dead?, watchdog standby, Thu Dec  5 12:00:01 2024)\n\
         lrm node2 (old timestamp - dead?, watchdog standby, Thu Dec  5 12:00:02 2024)\n\
         service ct:200 (node2, starting)\n\
         service vm:100 (node1, started)\n\
         service vm:101 (node1, queued)\n"
    );
    let (_, j, _) = out(&["--json", "ha", "status", "--pve-dir", PVE]);
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(v["master"], "node1");
    assert_eq!(v["quorate"], true);
    let services = v["services"].as_array().unwrap();
    assert_eq!(services.len(), 3);
    let ct = services.iter().find(|s| s["sid"] == "ct:200").unwrap();
    assert_eq!((ct["state"].as_str(), ct["crm_state"].as_str(), ct["request_state"].as_str()), (Some("starting"), Some("started"), Some("started")));
    assert_eq!(v["entries"][0]["type"], "quorum");
    // rgmanager: the configured services, quorum unknown, and a word on stderr
    let conf = "fixtures/clusterconf/corpus/rendered/R3_pve3-write_cluster_conf-after-ha-add.conf";
    let (rc, so, se) = out(&["ha", "status", "--cluster-conf", conf]);
    assert_eq!(rc, 0, "{se}");
    assert!(so.starts_with("quorum unknown") && so.ends_with("service vm:100 (pve1, queued)\n"), "{so}");
    assert!(se.contains("rgmanager keeps no manager_status"), "{se}");
}

#[test]
fn validate_finds_the_two_node_traps_with_their_places() {
    let (rc, so, _) = out(&["ha", "validate", "--pve-dir", PVE]);
    assert_eq!(rc, 1, "{so}");
    for want in [
        "ha/groups.cfg:1:8: error: group `prefer1` names `node3`, which is not a cluster node [ha.unknown-node]",
        "ha/resources.cfg:5:5: error: ct:200 names group `nosuchgroup`, which is not defined [ha.unknown-group]",
        "[ha.two-node-no-arbiter]",
        "[ha.no-hardware-fencing]",
        "[ha.migrate-two-node]",
        "replication and HA configuration mismatch: vm:100 may be recovered on node2 but its storage (local-lvm) is only on node1",
    ] {
        assert!(so.contains(want), "missing {want:?} in\n{so}");
    }
    let (_, j, _) = out(&["--json", "ha", "validate", "--pve-dir", PVE]);
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert!(v["errors"].as_u64().unwrap() >= 4);
}

#[test]
fn rgmanager_rm_is_the_same_model() {
    let conf = "fixtures/clusterconf/corpus/01_rgmanager-examples-pretty.conf";
    let (rc, so, _) = out(&["ha", "validate", "--cluster-conf", conf]);
    assert_eq!(rc, 1);
    assert!(so.contains(":43:5: error: restricted group `bluedomain` has no member in the cluster"), "{so}");
    assert!(so.contains(":103:3: error: service:blueonly is placed on `blue`"), "{so}");
    let (rc, so, se) = out(&["ha", "what-if", "--fail", "red", "--cluster-conf", conf]);
    assert_eq!(rc, 0, "{se}");
    assert!(so.starts_with("what if red fails:"), "{so}");
}

#[test]
fn what_if_says_what_blocks_recovery() {
    let (rc, so, _) = out(&["ha", "what-if", "--fail", "node2", "--pve-dir", PVE]);
    assert_eq!(rc, 0);
    assert!(so.contains("ct:200  node2 -> fence (on node2)"), "{so}");
    assert!(so.contains("blocked: fencing 'node2' blocked: no arbiter configured"), "{so}");
    let (_, j, _) = out(&["--json", "ha", "what-if", "--shutdown", "node2", "--pve-dir", PVE]);
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    let ct = v["outcomes"].as_array().unwrap().iter().find(|o| o["sid"] == "ct:200").unwrap().clone();
    assert_eq!(ct["after"], "node1", "shutdown_policy=migrate moves it: {ct}");
    let (rc, _, se) = out(&["ha", "what-if", "--fail", "node9", "--pve-dir", PVE]);
    assert_eq!(rc, 2);
    assert!(se.contains("no node 'node9'"), "{se}");
}

#[test]
fn bad_input_is_a_clear_error_not_a_panic() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("ha")).unwrap();
    std::fs::write(t.path().join("ha/resources.cfg"), "vm: 100\n\tstate runing\n").unwrap();
    let (rc, _, se) = out(&["ha", "validate", "--pve-dir", t.path().to_str().unwrap()]);
    assert_eq!(rc, 2);
    assert!(se.contains("ha/resources.cfg:2:2: state `runing`: expected started"), "{se}");
    let (rc, _, se) = out(&["ha", "simulate", t.path().to_str().unwrap()]);
    assert_eq!(rc, 2);
    assert!(se.contains("cmdlist: missing"), "{se}");
}

#[test]
fn simulate_check_against_a_golden_log() {
    let (rc, so, se) = out(&["ha", "simulate", "tests/ha-regression/tn-drbd-outdated", "--check"]);
    assert_eq!(rc, 0, "{se}");
    assert!(so.contains("drbd: promote 'r0' on 'node1'"));
    let (_, j, _) = out(&["--json", "ha", "simulate", "tests/ha-regression/tn-split-no-arbiter"]);
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert!(v["violations"].as_array().unwrap().is_empty());
}
