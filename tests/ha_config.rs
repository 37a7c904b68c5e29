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

const RULES: &str = "fixtures/ha/pve-rules";

#[test]
fn validate_rules_and_shutdown_policy_at_their_places() {
    let (rc, so, se) = out(&["ha", "validate", "--pve-dir", RULES]);
    assert_eq!(rc, 1, "{so}{se}");
    for want in [
        "pve-rules/datacenter.cfg:2:5: error: shutdown_policy `reboot` is not known: the LRM falls back to conditional [ha.shutdown-policy]",
        // a resource in two node-affinity rules: both are dropped
        "pve-rules/ha/rules.cfg:1:16: warning: ha-manager ignores this rule: Drop rule 'pin-node1', because resource 'vm:100' is already used in another node affinity rule.",
        "pve-rules/ha/rules.cfg:5:16: warning: ha-manager ignores this rule: Drop rule 'pin-node2', because resource 'vm:100' is already used in another node affinity rule.",
        // positive and negative on the same pair
        "pve-rules/ha/rules.cfg:10:20: warning: ha-manager ignores this rule: Drop rule 'keep-together', because rule shares two or more resources with a negative resource affinity rule.",
        "pve-rules/ha/rules.cfg:14:20: warning: ha-manager ignores this rule: Drop rule 'keep-apart', because rule shares two or more resources with a positive resource affinity rule.",
        // three resources kept apart on two nodes
        "pve-rules/ha/rules.cfg:18:20: warning: ha-manager ignores this rule: Drop rule 'spread-three', because rule defines more resources than available nodes.",
    ] {
        assert!(so.contains(want), "missing {want:?} in\n{so}");
    }
    // a quorum device and a fence device connected to each node: none of the two-node errors;
    // the local disks are replicated to the other node: no storage mismatch
    for not in ["ha.two-node-no-arbiter", "ha.no-hardware-fencing", "ha.storage-mismatch", "ha.unknown-"] {
        assert!(!so.contains(not), "{not} in\n{so}");
    }
    let (rc, j, _) = out(&["--json", "ha", "validate", "--pve-dir", RULES]);
    assert_eq!(rc, 1);
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(v["errors"], 1);
    assert_eq!(v["cluster"]["arbiter"], true);
    assert_eq!(v["cluster"]["hardware_fencing"], true);
    let f = &v["findings"][0];
    assert_eq!((f["file"].as_str(), f["line"].as_u64(), f["col"].as_u64(), f["severity"].as_str()), (Some("datacenter.cfg"), Some(2), Some(5), Some("error")), "{f}");
}

#[test]
fn status_of_a_cluster_without_quorum_and_a_fenced_node() {
    let (rc, so, se) = out(&["ha", "status", "--pve-dir", RULES]);
    assert_eq!(rc, 0, "{se}");
    assert_eq!(
        so,
        "quorum No quorum on node 'node2'!\n\
         master node2 (old timestamp - dead?, Thu Dec  5 13:00:00 2024) - static load CRS\n\
         fencing standby (CRM watchdog standby)\n\
         lrm node1 (unable to read lrm status)\n\
         lrm node2 (old timestamp - dead?, watchdog standby, Thu Dec  5 13:00:01 2024)\n\
         service vm:100 (node1, fence)\n\
         service vm:101 (node2, started)\n\
         service vm:102 (node1, error)\n\
         service ct:200 (node2, queued)\n"
    );
    let (_, j, _) = out(&["--json", "ha", "status", "--pve-dir", RULES]);
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(v["quorate"], false);
    let lrm: Vec<&str> = v["lrm"].as_array().unwrap().iter().map(|l| l["status"].as_str().unwrap()).collect();
    assert_eq!(lrm[0], "node1 (unable to read lrm status)");
    let ct = v["services"].as_array().unwrap().iter().find(|s| s["sid"] == "ct:200").unwrap();
    assert_eq!((ct["request_state"].as_str(), ct["crm_state"].as_str()), (Some("stopped"), None));
}

/// A copy of pve-rules with FILE replaced by TEXT.
fn rules_with(file: &str, text: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let st = std::process::Command::new("cp").arg("-a").arg(format!("{}/{RULES}/.", env!("CARGO_MANIFEST_DIR"))).arg(t.path()).status().unwrap();
    assert!(st.success());
    std::fs::write(t.path().join(file), text).unwrap();
    t
}

#[test]
fn fence_cfg_decides_hardware_fencing_per_node() {
    // node2's BMC is declared but connected to nothing
    let t = rules_with("ha/fence.cfg", "device bmc1 fence_ipmilan ip=192.0.2.21\ndevice bmc2 fence_ipmilan ip=192.0.2.22\nconnect bmc1 node=node1 plug=1\n");
    let (rc, so, _) = out(&["ha", "validate", "--pve-dir", t.path().to_str().unwrap()]);
    assert_eq!(rc, 1);
    assert!(so.contains("corosync.conf:1:1: error: HA on two nodes without hardware fencing for every node (none for node2)") && so.contains("[ha.no-hardware-fencing]"), "{so}");
    // what-if knows which node lacks it: node1 fails -> fenced through bmc1, its guests move;
    // node2 fails -> nothing can confirm it is off, ct:200 stays in fence and says why
    let (rc, so, se) = out(&["ha", "what-if", "--fail", "node1", "--pve-dir", t.path().to_str().unwrap()]);
    assert_eq!(rc, 0, "{se}");
    assert!(so.contains("vm:100  node1 -> runs on node2, running again after"), "{so}");
    let (_, so, _) = out(&["ha", "what-if", "--fail", "node2", "--pve-dir", t.path().to_str().unwrap()]);
    assert!(so.contains("ct:200  node2 -> fence (on node2)") && so.contains("no hardware fence device is configured for 'node2'"), "{so}");
    // the arbiter is there: no fence race, so no two-node-no-arbiter finding
    assert!(!so.contains("ha.two-node-no-arbiter"), "{so}");
    // ha-manager's own errors, with the place
    let t = rules_with("ha/fence.cfg", "# BMCs\nconnect bmc1 node=node1 plug=1\n");
    let (rc, _, se) = out(&["ha", "validate", "--pve-dir", t.path().to_str().unwrap()]);
    assert_eq!(rc, 2);
    assert!(se.contains("ha/fence.cfg:2:9: device 'bmc1' must be declared before you can connect to it"), "{se}");
    let t = rules_with("ha/fence.cfg", "device bmc1 fence_ipmilan ip=192.0.2.21\nconnect bmc1 plug=1 node=node1\n");
    let (rc, _, se) = out(&["ha", "status", "--pve-dir", t.path().to_str().unwrap()]);
    assert_eq!(rc, 2);
    assert!(se.contains("ha/fence.cfg:2:14: node=NODENAME needed to connect device 'bmc1' to a node, found `plug=1`"), "{se}");
}

#[test]
fn every_reader_says_file_line_col_and_exits_2() {
    for (file, text, want) in [
        ("ha/resources.cfg", "vm: 100\n\tmax_restart many\n", "ha/resources.cfg:2:2: max_restart: expected a number, found `many`"),
        ("ha/resources.cfg", "vm: 100\n\tmigrate 1\n", "ha/resources.cfg:2:2: unknown resource property `migrate`"),
        ("ha/resources.cfg", "qemu: 100\n", "ha/resources.cfg:1:1: unknown resource type `qemu` (expected vm or ct)"),
        ("ha/groups.cfg", "group: g\n\tnodes node1\n\trestricted maybe\n", "ha/groups.cfg:3:2: expected 0 or 1"),
        ("ha/rules.cfg", "resource-affinity: r\n\tresources vm:100,vm:101\n\taffinity apart\n", "ha/rules.cfg:3:2: affinity `apart`: expected positive or negative"),
        ("datacenter.cfg", "ha shutdown_policy=migrate\n", "datacenter.cfg:1:1: expected `key: value`"),
        ("datacenter.cfg", "{\"ha\": {\"shutdown_policy\": \"migrate\"}\n", "datacenter.cfg:2:"),
        ("ha/manager_status", "{\"master_node\": \"node1\", \"node_status\": [}", "ha/manager_status:1:"),
        (".members", "{\"nodename\": ", ".members:1:13: EOF while parsing a value"),
    ] {
        let t = rules_with(file, text);
        for cmd in ["validate", "status"] {
            let (rc, so, se) = out(&["ha", cmd, "--pve-dir", t.path().to_str().unwrap()]);
            assert_eq!(rc, 2, "{file} {text:?}: {so}{se}");
            assert!(se.contains(want), "{file} {text:?}: want {want:?}, got {se}");
            assert!(!se.contains("panicked"), "{se}");
        }
    }
}

#[test]
fn rgmanager_real_files_map_onto_the_model() {
    use twonode::ha::config::rgmanager::load_rgmanager;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/clusterconf/corpus");
    // Proxmox VE 3's own writer after `ha add`: <pvevm autostart="1" vmid="100"/>
    let r = load_rgmanager(&root.join("rendered/R3_pve3-write_cluster_conf-after-ha-add.conf")).unwrap();
    let vm = &r.config.services["vm:100"];
    assert_eq!((vm.node.as_str(), vm.state.as_str(), vm.max_restart, vm.max_relocate, vm.span.line, vm.span.col), ("pve1", "started", 1, 1, 9, 5));
    assert_eq!(r.cluster.nodes, vec!["pve1", "pve2"]);
    assert_eq!((r.cluster.arbiter, r.cluster.hardware_fencing), (false, Some(false)));
    // an ordered, restricted domain where node2 has no priority: rgmanager tries it first (0 < 1)
    let r = load_rgmanager(&root.join("14_clufter-test1.conf")).unwrap();
    let g = &r.config.groups["one"];
    assert!(g.restricted && !g.nofailback);
    assert_eq!(g.nodes, vec![("node1".to_string(), 99), ("node2".to_string(), 100)]);
    assert_eq!((g.span.line, g.span.col), (9, 25));
    assert!(r.config.services.contains_key("service:nfs1") && r.config.services.contains_key("service:nfs2"));
    // unordered: all equal
    let r = load_rgmanager(&root.join("17_clufter-test4.conf")).unwrap();
    assert_eq!(r.config.groups["one"].nodes, vec![("node1".to_string(), 0), ("node2".to_string(), 0)]);
    let nfs2 = &r.config.services["service:nfs2"];
    assert_eq!(nfs2.group.as_deref(), Some("one"));
    // the pvevm file through the CLI: HA on two nodes with neither arbiter nor fencing
    let conf = "fixtures/clusterconf/corpus/rendered/R3_pve3-write_cluster_conf-after-ha-add.conf";
    let (rc, so, _) = out(&["ha", "validate", "--cluster-conf", conf]);
    assert_eq!(rc, 1);
    assert!(so.contains("R3_pve3-write_cluster_conf-after-ha-add.conf:1:1: error: HA on a two-node cluster without an arbiter and without hardware fencing"), "{so}");
    assert!(so.contains("[ha.no-hardware-fencing]"), "{so}");
}

#[test]
fn rgmanager_recovery_policies_and_bad_values() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("cluster.conf");
    let conf = |rm: &str| {
        format!(
            "<?xml version=\"1.0\"?>\n<cluster name=\"c\" config_version=\"1\">\n<cman two_node=\"1\" expected_votes=\"1\"/>\n<clusternodes>\n<clusternode name=\"a\" nodeid=\"1\"/>\n<clusternode name=\"b\" nodeid=\"2\"/>\n</clusternodes>\n<rm>\n{rm}\n</rm>\n</cluster>\n"
        )
    };
    std::fs::write(&p, conf("<pvevm vmid=\"100\"/>\n<pvevm vmid=\"101\" recovery=\"relocate\"/>\n<pvevm vmid=\"102\" recovery=\"disable\" autostart=\"0\"/>\n<service name=\"web\" max_restarts=\"3\" restart_expire_time=\"600\"/>")).unwrap();
    let r = twonode::ha::config::rgmanager::load_rgmanager(&p).unwrap();
    let m = |sid: &str| (r.config.services[sid].max_restart, r.config.services[sid].max_relocate, r.config.services[sid].state.as_str());
    assert_eq!(m("vm:100"), (1, 1, "started"));
    assert_eq!(m("vm:101"), (0, 1, "started"));
    assert_eq!(m("vm:102"), (0, 0, "stopped"));
    assert_eq!(m("service:web"), (3, 1, "started"));
    assert_eq!(r.config.services["service:web"].comment.as_deref(), Some("rgmanager restart_expire_time=600"));
    for (rm, want) in [
        ("<pvevm vmid=\"100\" recovery=\"reboot\"/>", "cluster.conf:9:1: recovery `reboot`: expected restart, relocate, restart-disable or disable"),
        ("<pvevm vmid=\"100\" max_restarts=\"x\"/>", "cluster.conf:9:1: max_restarts `x` of vm:100 is not a number"),
        ("<pvevm domain=\"d\"/>", "cluster.conf:9:1: <pvevm> without a vmid"),
        ("<failoverdomains><failoverdomain name=\"d\" ordered=\"1\"><failoverdomainnode name=\"a\" priority=\"high\"/></failoverdomain></failoverdomains>", "cluster.conf:9:55: priority `high` of a is not a number"),
    ] {
        std::fs::write(&p, conf(rm)).unwrap();
        let (rc, _, se) = out(&["ha", "validate", "--cluster-conf", p.to_str().unwrap()]);
        assert_eq!(rc, 2, "{rm}: {se}");
        assert!(se.contains(want), "{rm}: want {want:?}, got {se}");
    }
}

#[test]
fn storage_map_says_where_drbd_is() {
    let conf = "fixtures/clusterconf/corpus/rendered/R3_pve3-write_cluster_conf-after-ha-add.conf";
    let t = tempfile::tempdir().unwrap();
    let map = t.path().join("map.json");
    std::fs::write(&map, "{\"vm:100\": {\"drbd\": [\"r0\"], \"nodes\": [\"pve1\"]}}\n").unwrap();
    let (rc, so, _) = out(&["ha", "validate", "--cluster-conf", conf, "--storage-map", map.to_str().unwrap()]);
    assert_eq!(rc, 1);
    assert!(
        so.contains(":9:5: warning: replication and HA configuration mismatch: vm:100 may be recovered on pve2 but its storage (DRBD r0) is only on pve1 [ha.storage-mismatch]"),
        "{so}"
    );
    // on both nodes: no mismatch
    std::fs::write(&map, "{\"vm:100\": {\"drbd\": [\"r0\"], \"nodes\": [\"pve1\", \"pve2\"]}}\n").unwrap();
    let (_, so, _) = out(&["ha", "validate", "--cluster-conf", conf, "--storage-map", map.to_str().unwrap()]);
    assert!(!so.contains("ha.storage-mismatch"), "{so}");
    // PVE: the map replaces what storage.cfg and replication.cfg said (vm:101 is replicated there)
    std::fs::write(&map, "{\"vm:101\": {\"nodes\": [\"node1\"]},\n \"ct:200\": {\"replication\": [\"node1\"]}}\n").unwrap();
    let (_, so, _) = out(&["ha", "validate", "--pve-dir", RULES, "--storage-map", map.to_str().unwrap()]);
    assert!(so.contains("vm:101 may be recovered on node2 but its storage (the storage map) is only on node1"), "{so}");
    assert!(!so.contains("ct:200 may be"), "{so}");
    // mistakes: where and what
    for (text, want) in [
        ("{\"vm:100\": {\"drbd\": \"r0\"}}", ":1:2: vm:100: `drbd` must be a list of names, e.g. [\"r0\"]"),
        ("{\"vm:100\": {},\n  \"vm:999\": {}}", ":2:3: `vm:999` is not an HA resource of this configuration (resources: vm:100)"),
        ("{\"vm:100\": {\"node\": [\"pve1\"]}}", ":1:13: vm:100: unknown key `node` (expected drbd, nodes, replication)"),
        ("[1, 2", ":1:5: EOF while parsing a list"),
    ] {
        std::fs::write(&map, text).unwrap();
        let (rc, _, se) = out(&["ha", "validate", "--cluster-conf", conf, "--storage-map", map.to_str().unwrap()]);
        assert_eq!(rc, 2, "{text}: {se}");
        assert!(se.contains(&format!("map.json{want}")), "{text}: want {want:?}, got {se}");
    }
}
