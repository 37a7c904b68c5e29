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
    // cman has no wait_for_all: only corosync 2+ votequorum implies it with two_node
    assert!(text.contains("Flags:            2Node Quorate"), "{text}");
    assert!(!text.contains("WaitForAll"), "{text}");
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

// ---- cman with the arbiter gate (GATE.md): `quorum status --file cluster.conf` shows the gate ----

/// `twonode arbiter serve` in-process on 127.0.0.1 (OS-chosen port), TLS on, client certificate
/// required; stopped on drop.
struct Arbiter {
    port: u16,
    _server: twonode::quorum::arbiter::server::Background,
}

impl Arbiter {
    fn start(dir: &std::path::Path) -> Arbiter {
        use twonode::quorum::arbiter::{certs, server};
        let mut cfg = server::loopback_config();
        cfg.tls.mode = "on".into();
        cfg.tls.client_cert_required = true;
        cfg.tls.cert = dir.join(certs::SERVER_CERT);
        cfg.tls.key = dir.join(certs::SERVER_KEY);
        cfg.tls.ca = dir.join(certs::CA_CERT);
        cfg.finish().unwrap();
        let server = server::Background::start(cfg).expect("arbiter started");
        Arbiter { port: server.addr().port(), _server: server }
    }
}

fn gated_cluster_conf(port: u16, tls: &std::path::Path) -> String {
    format!(
        r#"<?xml version="1.0"?>
<cluster name="lab" config_version="4">
  <cman two_node="1" expected_votes="1"/>
  <clusternodes>
    <clusternode name="alice" nodeid="1"><fence><method name="ipmi"><device name="twonode-arbiter"/><device name="ipmi-alice"/></method></fence></clusternode>
    <clusternode name="bob" nodeid="2"><fence><method name="ipmi"><device name="twonode-arbiter"/><device name="ipmi-bob"/></method></fence></clusternode>
  </clusternodes>
  <fencedevices>
    <fencedevice name="twonode-arbiter" agent="fence_twonode_arbiter" ipaddr="127.0.0.1" ipport="{port}" tlscacert="{d}/ca.crt" tlscert="{d}/node.crt" tlskey="{d}/node.key"/>
    <fencedevice name="ipmi-alice" agent="fence_ipmilan" ipaddr="127.0.0.1" ipport="1" login="admin" passwd="secret"/>
    <fencedevice name="ipmi-bob" agent="fence_ipmilan" ipaddr="127.0.0.1" ipport="2" login="admin" passwd="secret"/>
  </fencedevices>
</cluster>
"#,
        d = tls.display()
    )
}

#[test]
fn status_of_a_gated_cman_config_shows_the_gate_probed_or_not() {
    let t = tempfile::tempdir().unwrap();
    let tls = t.path().join("tls");
    let st = twonode().args(["arbiter", "certs", "init", "--dir"]).arg(&tls).output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let dir = twonode::quorum::arbiter::certs::CertDir::new(&tls);
    let (cert, key) = twonode::quorum::arbiter::certs::client_pem(&dir, "lab").unwrap();
    std::fs::write(tls.join("node.crt"), cert).unwrap();
    std::fs::write(tls.join("node.key"), key).unwrap();
    let arb = Arbiter::start(&tls);
    let file = t.path().join("cluster.conf");
    std::fs::write(&file, gated_cluster_conf(arb.port, &tls)).unwrap();
    let target = format!("127.0.0.1:{}", arb.port);

    // --no-probe: the gate from the file alone, nothing on the network
    let out = twonode().args(["quorum", "status", "--no-probe", "--file"]).arg(&file).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains(&format!("Fence gate:       arbiter {target} (not probed (--no-probe)), tie_breaker lowest")), "{text}");
    assert!(text.contains("Guarded methods:  alice/ipmi, bob/ipmi"), "{text}");
    let out = twonode().args(["--json", "quorum", "status", "--no-probe", "--file"]).arg(&file).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["gate"]["arbiter"], target.as_str());
    assert_eq!(v["gate"]["reachable"], serde_json::Value::Null);
    assert_eq!(v["gate"]["complete"], true);
    assert_eq!(v["quorum"], 1, "the votequorum view is still there: {v}");

    // probed (the default with --file): the gate's client gets TLS + INIT through
    let out = twonode().args(["quorum", "status", "--file"]).arg(&file).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("arbiter {target} (reachable: TLS + INIT accepted, round trip")), "{text}");
    let out = twonode().args(["--json", "quorum", "status", "--file"]).arg(&file).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["gate"]["reachable"], true, "{v}");
    assert_eq!(v["gate"]["probe"]["depth"], "init", "{v}");
    assert_eq!(v["gate"]["tie_breaker"], "lowest");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("secret"), "a password leaked");

    // the arbiter gone
    drop(arb);
    let out = twonode().args(["--json", "quorum", "status", "--file"]).arg(&file).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["gate"]["reachable"], false, "{v}");
    let out = twonode().args(["quorum", "status", "--file"]).arg(&file).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("arbiter {target} (UNREACHABLE: ")), "{text}");
}

#[test]
fn status_of_a_config_whose_gate_misses_a_method_says_so() {
    let conf = gated_cluster_conf(5403, std::path::Path::new("/etc/twonode/arbiter"))
        .replacen(r#"<device name="twonode-arbiter"/><device name="ipmi-bob"/>"#, r#"<device name="ipmi-bob"/>"#, 1);
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("cluster.conf");
    std::fs::write(&file, conf).unwrap();
    let out = twonode().args(["quorum", "status", "--no-probe", "--file"]).arg(&file).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("NOT guarded:      bob/ipmi: no gate in this method"), "{text}");
    // a config without a gate prints no gate section
    let out = twonode().args(["--json", "quorum", "status", "--file", "fixtures/sims/corosync-lab/corosync.conf.n1.qdevice.final"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(v.get("gate").is_none(), "{v}");
}
