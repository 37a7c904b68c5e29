//! `twonode quorum status` and `twonode arbiter simulate` through the real binary.
use assert_cmd::Command;

fn twonode() -> Command {
    Command::cargo_bin("twonode").expect("binary built")
}

fn last_line(out: &[u8]) -> String {
    String::from_utf8_lossy(out).lines().last().unwrap_or_default().to_string()
}

#[test]
fn status_of_the_lab_qdevice_config_is_quorate_with_three_votes() {
    let out = twonode()
        .args(["quorum", "status", "--file", "fixtures/sims/corosync-lab/corosync.conf.n1.qdevice.final"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("Expected votes:   3"), "{text}");
    assert!(text.contains("Total votes:      3"), "{text}");
    assert!(text.contains("Quorum:           2"), "{text}");
    assert!(text.contains("Flags:            Quorate Qdevice"), "{text}");
}

#[test]
fn two_node_plus_device_is_refused_with_line_and_fix() {
    let out = twonode()
        .args(["--json", "quorum", "status", "--file", "fixtures/quorum/corosync-twonode-plus-qdevice.conf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let d = &v["diagnostics"][0];
    assert_eq!(d["code"], "device-with-two-node");
    assert_eq!(d["line"], 22);
    assert!(d["fix"].as_str().unwrap_or("").contains("remove two_node"));
}

#[test]
fn live_membership_from_quorumtool_output() {
    let out = twonode()
        .args([
            "--json",
            "quorum",
            "status",
            "--file",
            "fixtures/sims/corosync-lab/corosync.conf.n1.qdevice.final",
            "--live",
            "fixtures/quorum/quorumtool-n1-split-with-vote.txt",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["basis"], "live");
    assert_eq!(v["total_votes"], 2);
    assert_eq!(v["quorum"], 2);
    assert_eq!(v["nodes"][1]["qdevice"], "NR");
}

#[test]
fn cluster_conf_two_node_flags() {
    let out = twonode()
        .args(["quorum", "status", "--file", "fixtures/clusterconf/corpus/06_cluster-doc-min-gfs-fence-manual.conf"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Flags:            2Node Quorate WaitForAll"), "{text}");
    assert!(text.contains("Quorum:           1"), "{text}");
}

#[test]
fn missing_file_exits_2() {
    let out = twonode().args(["quorum", "status", "--file", "/nonexistent/corosync.conf"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/corosync.conf"));
}

#[test]
fn simulate_prints_the_contract_line() {
    let out = twonode().args(["arbiter", "simulate", "--schedules", "40", "--seed", "3"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let last = last_line(&out.stdout);
    let re_ok = last.starts_with("violations: 0 schedules: 40 failover_p50_ms: ") && last.contains(" failover_p99_ms: ");
    assert!(re_ok, "{last}");
}

#[test]
fn simulate_exits_1_when_the_qnetd_rule_overlaps() {
    let out = twonode()
        .args(["arbiter", "simulate", "--schedules", "10", "--policy", "qnetd-like", "--scenario", "split-then-holder-cut"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(last_line(&out.stdout).starts_with("violations: 10 schedules: 10 "), "{}", last_line(&out.stdout));
}
