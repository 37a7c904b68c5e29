//! `twonode doctor`: the pure core on crafted facts, and one run end to end over two simulated DRBD
//! nodes (`lab:DIR`, the real drbdadm driving `twonode lab drbd-kernel`), a real ipmi_sim BMC and the
//! project's iLO simulator.
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use twonode::doctor::{diagnose, exit_code, Facts, Finding, GuestConf, NodeFacts, Severity};
use twonode::drbd::recover::{NodeView, VolView};
use twonode::drbd::state::{Gi, HostConfig, ResourceConfig};
use twonode::fence::test::DeviceCheck;

const BIN: &str = env!("CARGO_BIN_EXE_twonode");

fn conf(version: u32, alice_dev: &str, bob_dev: &str, rm: &str) -> String {
    format!(
        r#"<?xml version="1.0"?>
<cluster name="lab" config_version="{version}">
  <cman two_node="1" expected_votes="1"/>
  <clusternodes>
    <clusternode name="alice" nodeid="1"><fence><method name="1"><device name="bmc-alice"/></method></fence></clusternode>
    <clusternode name="bob" nodeid="2"><fence><method name="1"><device name="bmc-bob"/></method></fence></clusternode>
  </clusternodes>
  <fencedevices>
    {alice_dev}
    {bob_dev}
  </fencedevices>
  {rm}
</cluster>
"#
    )
}

fn ipmi_dev(name: &str, port: u16, extra: &str) -> String {
    format!(r#"<fencedevice name="{name}" agent="fence_ipmilan" ipaddr="127.0.0.1" ipport="{port}" login="admin" passwd="secret" cipher="3" power_wait="0" {extra}/>"#)
}

fn healthy_view(node: &str, gi: Gi) -> NodeView {
    NodeView {
        node: node.into(),
        present: true,
        generation: None,
        role: Some("Secondary".into()),
        cstate: Some("Connected".into()),
        peer_role: Some("Secondary".into()),
        volumes: vec![VolView {
            volume: 0,
            disk: Some("UpToDate".into()),
            gi: Some(gi),
            peer_disk: Some("UpToDate".into()),
            replication: Some("Established".into()),
            ..Default::default()
        }],
        mounts: vec![],
    }
}

fn r0(hosts: &[&str]) -> ResourceConfig {
    ResourceConfig {
        name: "r0".into(),
        hosts: hosts.iter().map(|h| HostConfig { name: h.to_string(), ..Default::default() }).collect(),
        ..Default::default()
    }
}

fn node(name: &str, conf: &str, drbd: Option<Vec<ResourceConfig>>, views: Vec<NodeView>) -> NodeFacts {
    NodeFacts {
        name: name.into(),
        conf_path: "/etc/cluster/cluster.conf".into(),
        conf: Some(conf.as_bytes().to_vec()),
        drbd_configs: drbd,
        drbd_views: views.into_iter().map(|v| ("r0".to_string(), v)).collect::<BTreeMap<_, _>>(),
        ..Default::default()
    }
}

fn good_facts() -> Facts {
    let c = conf(3, &ipmi_dev("bmc-alice", 1, r#"delay="15""#), &ipmi_dev("bmc-bob", 2, ""), "");
    let g = Gi::new(0x10, 0, 0x20, 0x30);
    Facts {
        nodes: vec![
            node("alice", &c, Some(vec![r0(&["alice", "bob"])]), vec![healthy_view("alice", g)]),
            node("bob", &c, Some(vec![r0(&["alice", "bob"])]), vec![healthy_view("bob", g)]),
        ],
        fence_checks: None,
        arbiter: None,
        ..Default::default()
    }
}

fn find<'a>(fs: &'a [Finding], check: &str) -> Vec<&'a Finding> {
    fs.iter().filter(|f| f.check == check).collect()
}

fn one<'a>(fs: &'a [Finding], check: &str) -> &'a Finding {
    let v = find(fs, check);
    assert_eq!(v.len(), 1, "{check}: {fs:#?}");
    v[0]
}

#[test]
fn healthy_cluster_has_no_error() {
    let facts = good_facts();
    let fs = diagnose(&facts);
    assert!(fs.iter().all(|f| f.severity != Severity::Error), "{fs:#?}");
    assert_eq!(one(&fs, "config.version").severity, Severity::Ok);
    // a static delay on one node is a weak protection: a warning, not an error
    assert_eq!(one(&fs, "fence.race").severity, Severity::Warning);
    assert_eq!(one(&fs, "drbd.state").severity, Severity::Ok);
    assert_eq!(one(&fs, "quorum.arithmetic").severity, Severity::Ok);
    assert!(find(&fs, "drbd.peers").iter().all(|f| f.severity == Severity::Ok));
    assert_eq!(exit_code(&facts, &fs), 0);
}

#[test]
fn different_versions_or_bytes_are_errors() {
    let mut facts = good_facts();
    let c4 = conf(4, &ipmi_dev("bmc-alice", 1, r#"delay="15""#), &ipmi_dev("bmc-bob", 2, ""), "");
    facts.nodes[1].conf = Some(c4.into_bytes());
    let fs = diagnose(&facts);
    let v = one(&fs, "config.version");
    assert_eq!(v.severity, Severity::Error);
    assert!(v.evidence.contains("alice: config_version 3") && v.evidence.contains("bob: config_version 4"), "{v:?}");
    assert!(v.fix.contains("cman_tool version -r"));
    assert_eq!(exit_code(&facts, &fs), 1);
    // same version, other bytes
    let mut facts = good_facts();
    let c3b = conf(3, &ipmi_dev("bmc-alice", 1, r#"delay="20""#), &ipmi_dev("bmc-bob", 2, ""), "");
    facts.nodes[1].conf = Some(c3b.into_bytes());
    let v = diagnose(&facts).into_iter().find(|f| f.check == "config.version").unwrap();
    assert_eq!(v.severity, Severity::Error);
    assert!(v.evidence.contains("different contents"), "{v:?}");
}

#[test]
fn invalid_config_is_an_error_on_that_node() {
    let mut facts = good_facts();
    facts.nodes[0].conf = Some(b"<cluster name=\"lab\" config_version=\"3\"><clusternodes>".to_vec());
    let fs = diagnose(&facts);
    let e: Vec<_> = find(&fs, "config.valid").into_iter().filter(|f| f.severity == Severity::Error).collect();
    assert_eq!(e.len(), 1, "{fs:#?}");
    assert_eq!(e[0].node.as_deref(), Some("alice"));
    assert!(e[0].fix.contains("twonode conf validate"));
}

#[test]
fn fence_race_nothing_is_an_error_a_delay_is_weak_an_arbiter_alone_does_not_protect_cman() {
    let mut facts = good_facts();
    let c = conf(3, &ipmi_dev("bmc-alice", 1, ""), &ipmi_dev("bmc-bob", 2, ""), "");
    for n in &mut facts.nodes {
        n.conf = Some(c.clone().into_bytes());
    }
    let fs = diagnose(&facts);
    let r = one(&fs, "fence.race");
    assert_eq!(r.severity, Severity::Error, "nothing under two_node: {r:?}");
    assert!(r.fix.contains("twonode conf gate-fencing") && r.fix.contains("delay=\"15\""), "{r:?}");
    assert_eq!(one(&fs, "arbiter").severity, Severity::Info);
    assert_eq!(exit_code(&facts, &fs), 1);
    // a reachable arbiter does not decide a cman fence race by itself (cman has no qdevice)
    facts.arbiter = Some(twonode::doctor::ArbiterFacts { target: "127.0.0.1:1".into(), reachable: true, ..Default::default() });
    let fs = diagnose(&facts);
    assert_eq!(one(&fs, "fence.race").severity, Severity::Error);
    assert_eq!(one(&fs, "arbiter.reachable").severity, Severity::Ok);
    // delays on both nodes, equal: still a race
    let c = conf(3, &ipmi_dev("bmc-alice", 1, r#"delay="15""#), &ipmi_dev("bmc-bob", 2, r#"delay="15""#), "");
    let mut facts = good_facts();
    for n in &mut facts.nodes {
        n.conf = Some(c.clone().into_bytes());
    }
    assert_eq!(one(&diagnose(&facts), "fence.race").severity, Severity::Error);
    // one delay: weak, explained
    let r = one(&diagnose(&good_facts()), "fence.race").clone();
    assert_eq!(r.severity, Severity::Warning);
    assert!(r.evidence.contains("weak") && r.evidence.contains("alice") && r.fix.contains("gate-fencing"), "{r:?}");
    // two_node="0": no race
    let c = conf(3, &ipmi_dev("bmc-alice", 1, ""), &ipmi_dev("bmc-bob", 2, ""), "").replace(r#"two_node="1" expected_votes="1""#, r#"two_node="0""#);
    let mut facts = good_facts();
    for n in &mut facts.nodes {
        n.conf = Some(c.clone().into_bytes());
    }
    assert_eq!(one(&diagnose(&facts), "fence.race").severity, Severity::Ok);
}

#[test]
fn unreachable_arbiter_is_an_error() {
    let mut facts = good_facts();
    facts.arbiter = Some(twonode::doctor::ArbiterFacts {
        target: "10.9.9.9:5403".into(),
        reachable: false,
        error: Some("connection refused".into()),
        status: None,
    });
    let fs = diagnose(&facts);
    let a = one(&fs, "arbiter.reachable");
    assert_eq!(a.severity, Severity::Error);
    assert!(a.evidence.contains("connection refused"));
}

#[test]
fn shared_bmc_and_failed_device_are_errors() {
    let mut facts = good_facts();
    let c = conf(3, &ipmi_dev("bmc-alice", 7, r#"delay="15""#), &ipmi_dev("bmc-bob", 7, ""), "");
    for n in &mut facts.nodes {
        n.conf = Some(c.clone().into_bytes());
    }
    facts.fence_checks = Some(vec![DeviceCheck {
        node: "bob".into(),
        method: "1".into(),
        device: "bmc-bob".into(),
        describe: "bmc-bob (fence_ipmilan 127.0.0.1:7)".into(),
        plug: None,
        driver: "ipmi".into(),
        reachable: false,
        login: false,
        status: None,
        connect_ms: 0,
        status_ms: 0,
        error: Some("no answer".into()),
        exit_code: Some(1),
    }]);
    let fs = diagnose(&facts);
    assert_eq!(one(&fs, "fence.shared_device").severity, Severity::Error);
    let d = one(&fs, "fence.device");
    assert_eq!((d.severity, d.node.as_deref()), (Severity::Error, Some("bob")));
    assert!(d.evidence.contains("unreachable") && !d.evidence.contains("secret"), "{d:?}");
}

#[test]
fn split_brain_is_an_error_with_the_recovery_fix() {
    let mut facts = good_facts();
    let a = Gi::new(0x9E4DEF0B06A6DA9D, 0x41C26508159C156A, 0xCA64B93EC801717D, 0xCA63B93EC801717D);
    let b = Gi::new(0x35BBB10CCF212668, 0x41C26508159C156A, 0xCA64B93EC801717C, 0xCA63B93EC801717D);
    for (n, g) in facts.nodes.iter_mut().zip([a, b]) {
        let v = n.drbd_views.get_mut("r0").unwrap();
        v.cstate = Some("StandAlone".into());
        v.role = Some("Primary".into());
        v.volumes[0].gi = Some(g);
        v.volumes[0].peer_disk = Some("DUnknown".into());
        v.volumes[0].replication = Some("Off".into());
    }
    let fs = diagnose(&facts);
    let s = one(&fs, "drbd.split-brain");
    assert_eq!(s.severity, Severity::Error);
    assert!(s.fix.contains("twonode drbd split-brain") && s.fix.contains("drbd recover r0") && s.fix.contains("--dry-run"), "{s:?}");
    assert_eq!(fs[0].severity, Severity::Error, "errors sort first");
}

#[test]
fn drbd_peers_not_cluster_nodes_and_resource_missing_on_a_node() {
    let mut facts = good_facts();
    facts.nodes[0].drbd_configs = Some(vec![r0(&["alice", "carol"])]);
    facts.nodes[1].drbd_configs = Some(vec![]);
    facts.nodes[1].drbd_views.clear();
    let fs = diagnose(&facts);
    let p = one(&fs, "drbd.peers");
    assert_eq!(p.severity, Severity::Warning);
    assert!(p.evidence.contains("carol"));
    let m = one(&fs, "drbd.configured");
    assert_eq!((m.severity, m.node.as_deref()), (Severity::Error, Some("bob")));
}

#[test]
fn ha_service_on_a_node_without_its_drbd_resource() {
    let rm = r#"<rm>
    <failoverdomains>
      <failoverdomain name="both" restricted="1"><failoverdomainnode name="alice"/><failoverdomainnode name="bob"/></failoverdomain>
      <failoverdomain name="alice-only" restricted="1"><failoverdomainnode name="alice"/></failoverdomain>
    </failoverdomains>
    <pvevm vmid="100" domain="both"/>
    <pvevm vmid="101" domain="alice-only"/>
    <service name="nfs" domain="both"><drbd name="d" resource="r0"><fs name="f" device="/dev/drbd0" mountpoint="/srv"/></drbd></service>
  </rm>"#;
    let c = conf(3, &ipmi_dev("bmc-alice", 1, r#"delay="15""#), &ipmi_dev("bmc-bob", 2, ""), rm);
    let mut facts = good_facts();
    for n in &mut facts.nodes {
        n.conf = Some(c.clone().into_bytes());
    }
    // r0 only on alice
    facts.nodes[1].drbd_configs = Some(vec![]);
    facts.nodes[1].drbd_views.clear();
    facts.nodes[0].guests = vec![
        GuestConf { path: "/etc/pve/nodes/alice/qemu-server/100.conf".into(), text: "name: web\nvirtio0: drbd-r0:vm-100-disk-1,size=8G\n".into() },
        GuestConf { path: "/etc/pve/nodes/alice/qemu-server/101.conf".into(), text: "virtio0: drbd-r0:vm-101-disk-1\n".into() },
    ];
    let fs = diagnose(&facts);
    let bad: Vec<_> = find(&fs, "ha.drbd-coherence").into_iter().filter(|f| f.severity == Severity::Error).collect();
    let labels: Vec<&str> = bad.iter().map(|f| f.evidence.split_whitespace().nth(1).unwrap_or("")).collect();
    assert_eq!(labels, vec!["pvevm:100", "service:nfs"], "{bad:#?}");
    assert!(bad.iter().all(|f| f.node.as_deref() == Some("bob")));
    assert!(bad[0].fix.contains("restrict the service's failover domain"));
}

#[test]
fn guest_lock_is_reported_once_with_unlock_fix() {
    let mut facts = good_facts();
    let g = GuestConf {
        path: "/etc/pve/nodes/bob/qemu-server/105.conf".into(),
        text: "lock: backup\nname: db\n\n[snap1]\nlock: snapshot\n".into(),
    };
    facts.nodes[0].guests = vec![g.clone()];
    facts.nodes[1].guests = vec![g, GuestConf { path: "/etc/pve/nodes/bob/lxc/106.conf".into(), text: "[s]\nlock: x\n".into() }];
    let fs = diagnose(&facts);
    let l = one(&fs, "guest.lock");
    assert_eq!((l.severity, l.node.as_deref()), (Severity::Warning, Some("bob")));
    assert!(l.evidence.contains("lock: backup") && l.fix.contains("qm unlock 105"), "{l:?}");
}

#[test]
fn unreachable_node_exits_2() {
    let mut facts = good_facts();
    facts.nodes[1] = NodeFacts { name: "bob".into(), unreachable: Some("connection refused".into()), ..Default::default() };
    let fs = diagnose(&facts);
    assert_eq!(one(&fs, "node.reachable").severity, Severity::Error);
    assert_eq!(exit_code(&facts, &fs), 2);
}

// ------------------------------------------------------------------------------------------------
// End to end

fn have(tool: &str) -> bool {
    ["/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/"].iter().any(|d| Path::new(&format!("{d}{tool}")).exists())
}

fn run(args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = Command::new(BIN).args(args).env_remove("TWONODE_CLUSTER_CONF").output().expect("run twonode");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), v, format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr)))
}

fn sev(v: &serde_json::Value, check: &str) -> Vec<String> {
    v["findings"]
        .as_array()
        .map(|a| a.iter().filter(|f| f["check"] == check).map(|f| f["severity"].as_str().unwrap_or("").to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn end_to_end_over_simulated_drbd_nodes_and_real_bmc_simulators() {
    if !(have("drbdadm") && have("ipmi_sim")) {
        eprintln!("SKIPPED: drbdadm or ipmi_sim missing (run scripts/install-deps)");
        return;
    }
    use twonode::lab::ilo_sim::{IloSim, IloSimConfig, Profile};
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim");
    let st = Command::new(BIN)
        .args(["lab", "drbd-kernel", "--state"])
        .arg(&sim)
        .args(["init", "--flavour", "9", "--volumes", "1"])
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let ipmi = twonode::lab::services::IpmiBmc::start(&dir.path().join("ipmi")).expect("ipmi_sim");
    let ilo = IloSim::start(IloSimConfig::new(Profile::Ilo4, dir.path().join("ilo"))).expect("ilo sim");
    let rm = r#"<rm><failoverdomains><failoverdomain name="both" restricted="1"><failoverdomainnode name="alice"/><failoverdomainnode name="bob"/></failoverdomain></failoverdomains>
    <service name="nfs" domain="both"><drbd name="d" resource="r0"/></service></rm>"#;
    let ilo_dev = format!(
        r#"<fencedevice name="bmc-bob" agent="fence_ilo" ipaddr="127.0.0.1" ipport="{}" login="admin" passwd="secret" ssl_insecure="1" login_timeout="3" power_wait="0"/>"#,
        ilo.port()
    );
    let text = conf(5, &ipmi_dev("bmc-alice", ipmi.port, r#"delay="15""#), &ilo_dev, rm);
    let cfile = dir.path().join("cluster.conf");
    std::fs::write(&cfile, &text).unwrap();
    let pve = dir.path().join("pve");
    std::fs::create_dir_all(pve.join("nodes/bob/qemu-server")).unwrap();
    std::fs::write(pve.join("nodes/bob/qemu-server/100.conf"), "lock: migrate\nvirtio0: drbd-r0:vm-100-disk-1\n").unwrap();
    let alice = format!("alice=lab:{}", sim.display());
    let bob = format!("bob=lab:{}", sim.display());
    let base = vec![
        "--json".to_string(),
        "doctor".into(),
        "--file".into(),
        cfile.display().to_string(),
        "--pve-dir".into(),
        pve.display().to_string(),
        "--node".into(),
        alice.clone(),
        "--node".into(),
        bob.clone(),
    ];
    let args: Vec<&str> = base.iter().map(String::as_str).collect();
    let (code, v, all) = run(&args);
    assert_eq!(code, 0, "{all}");
    assert!(!all.contains("secret"), "a password leaked: {all}");
    assert_eq!(sev(&v, "config.version"), ["ok"], "{all}");
    assert_eq!(sev(&v, "fence.device"), ["ok", "ok"], "both simulated BMCs answer: {all}");
    assert_eq!(sev(&v, "fence.race"), ["warning"], "one static delay: weak: {all}");
    assert_eq!(sev(&v, "drbd.state"), ["ok"], "{all}");
    assert_eq!(sev(&v, "drbd.peers"), ["ok", "ok"], "{all}");
    assert_eq!(sev(&v, "ha.drbd-coherence"), ["ok", "ok"], "{all}");
    // the HA area: rgmanager's <rm> read into the HA model; no arbiter on two nodes is a warning
    // when every node has hardware fencing, and the rehearsed failure of each node says why nfs
    // would not come back (no vote to gate the fence on)
    assert_eq!(sev(&v, "ha.two-node-no-arbiter"), ["warning"], "{all}");
    assert!(all.contains("does not come back on the other node") && all.contains("no arbiter configured"), "{all}");
    assert_eq!(sev(&v, "guest.lock"), ["warning"], "{all}");

    // Now: a split brain, bob holding an older config, a dead arbiter and a dead BMC.
    let st = Command::new(BIN)
        .args(["lab", "drbd-kernel", "--state"])
        .arg(&sim)
        .args(["scenario", "split-brain", "--primary", "alice", "--primary", "bob", "--writes", "alice=400", "--writes", "bob=40"])
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let old = dir.path().join("old.conf");
    std::fs::write(&old, text.replace(r#"config_version="5""#, r#"config_version="4""#)).unwrap();
    drop(ilo);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let mut more = base.clone();
    more.extend([
        "--node-file".to_string(),
        format!("bob={}", old.display()),
        "--arbiter".into(),
        format!("127.0.0.1:{dead_port}"),
    ]);
    let args: Vec<&str> = more.iter().map(String::as_str).collect();
    let (code, v, all) = run(&args);
    assert_eq!(code, 1, "{all}");
    assert_eq!(sev(&v, "config.version"), ["error"], "{all}");
    assert_eq!(sev(&v, "drbd.split-brain"), ["error"], "{all}");
    assert_eq!(sev(&v, "arbiter.reachable"), ["error"], "{all}");
    let fence = sev(&v, "fence.device");
    assert!(fence.contains(&"error".to_string()) && fence.contains(&"ok".to_string()), "{all}");

    // An unreachable node: exit 2.
    let (code, v, all) = run(&["--json", "doctor", "--file", &cfile.display().to_string(), "--no-fence", "--node", &alice, "--node", "bob=root@127.0.0.1:1", "--known-hosts", "/dev/null", "--ssh-timeout", "2"]);
    assert_eq!(code, 2, "{all}");
    assert_eq!(sev(&v, "node.reachable"), ["error"], "{all}");
}

// ------------------------------------------------------------------------------------------------
// corosync with a quorum device: real `corosync-quorumtool -s` / `corosync-qdevice-tool -sv`
// outputs captured in the netns lab (fixtures/corosync/qdevice/SOURCES.md)

fn qfix(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/corosync/qdevice").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn corosync_facts(state: &str) -> Facts {
    use twonode::doctor::qdevice::{parse_qdevice_tool, parse_quorumtool, NodeQdevice};
    let cc = qfix("corosync.conf.n1");
    let nodes = ["n1", "n2"]
        .iter()
        .map(|n| {
            let qt = qfix(&format!("{state}.{n}.quorumtool.txt"));
            let qd = qfix(&format!("{state}.{n}.qdevice-tool.txt"));
            let (qdt, qde) = match parse_qdevice_tool(&qd) {
                Ok(p) => (Some(p), None),
                Err(_) => (None, Some(qd.trim().to_string())),
            };
            NodeFacts {
                name: n.to_string(),
                conf_path: "/etc/cluster/cluster.conf".into(),
                conf_error: Some("No such file or directory".into()),
                corosync_path: Some("/etc/corosync/corosync.conf".into()),
                corosync_conf: Some(cc.clone()),
                drbd_configs: Some(vec![]),
                qdevice: Some(NodeQdevice {
                    node: n.to_string(),
                    quorumtool: Some(parse_quorumtool(&qt).expect("real quorumtool output parses")),
                    qdevice_tool: qdt,
                    qdevice_tool_error: qde,
                    ..Default::default()
                }),
                ..Default::default()
            }
        })
        .collect();
    Facts { nodes, ..Default::default() }
}

fn node_finding<'a>(fs: &'a [Finding], check: &str, node: &str) -> &'a Finding {
    fs.iter().find(|f| f.check == check && f.node.as_deref() == Some(node)).unwrap_or_else(|| panic!("{check} for {node}: {fs:#?}"))
}

#[test]
fn real_quorumtool_outputs_parse() {
    use twonode::doctor::qdevice::{parse_qdevice_tool, parse_quorumtool};
    let q = parse_quorumtool(&qfix("ring-cut.n2.quorumtool.txt")).unwrap();
    assert_eq!((q.node_id, q.ring_id.as_deref(), q.quorate, q.activity_blocked), (Some(2), Some("2.d"), Some(false), true));
    assert_eq!(q.device_row, Some((0, Some(1))), "0 votes now, configured with 1");
    assert_eq!(q.local().and_then(|m| m.qdevice.as_deref()), Some("A,NV,NMW"));
    let q = parse_quorumtool(&qfix("healthy.n1.quorumtool.txt")).unwrap();
    assert_eq!(q.member_ids(), vec![1, 2]);
    assert_eq!((q.total_votes, q.expected_votes, q.device_votes()), (Some(3), Some(3), 1));
    assert!(q.members.iter().all(|m| m.qdevice.as_deref() == Some("A,V,NMW")), "{q:?}");
    assert_eq!(q.local().map(|m| m.name.as_str()), Some("n1"));
    let q = parse_quorumtool(&qfix("no-qdevice.n1.quorumtool.txt")).unwrap();
    assert!(q.members.iter().all(|m| m.qdevice.is_none()) && q.device_row.is_none());
    let d = parse_qdevice_tool(&qfix("healthy.n2.qdevice-tool.txt")).unwrap();
    assert_eq!((d.state.as_deref(), d.cast_vote, d.membership.clone()), (Some("Connected"), true, vec![1, 2]));
    assert_eq!(d.qnetd_host.as_deref(), Some("10.77.2.254:5403"));
    let d = parse_qdevice_tool(&qfix("arbiter-killed.n1.qdevice-tool.txt")).unwrap();
    assert_eq!((d.state.as_deref(), d.cast_vote), (Some("Connect failed"), false));
    assert!(parse_qdevice_tool(&qfix("no-qdevice.n1.qdevice-tool.txt")).is_err());
}

#[test]
fn qdevice_healthy_both_nodes_agree_and_the_device_decides_the_race() {
    let facts = corosync_facts("healthy");
    let fs = diagnose(&facts);
    assert_eq!(node_finding(&fs, "qdevice.state", "n1").severity, Severity::Ok, "{fs:#?}");
    assert_eq!(node_finding(&fs, "qdevice.state", "n2").severity, Severity::Ok);
    let p = one(&fs, "qdevice.partition");
    assert_eq!(p.severity, Severity::Ok);
    assert!(p.evidence.contains("ring 1.9") && p.evidence.contains("[1, 2]"), "{p:?}");
    let r = one(&fs, "fence.race");
    assert_eq!(r.severity, Severity::Ok);
    assert!(r.evidence.contains("10.77.2.254"), "{r:?}");
    assert!(find(&fs, "config.readable").is_empty(), "a corosync cluster needs no cluster.conf: {fs:#?}");
    assert_eq!(one(&fs, "quorum.arithmetic").severity, Severity::Ok);
    assert_eq!(exit_code(&facts, &fs), 0, "{fs:#?}");
}

#[test]
fn qdevice_ring_cut_one_partition_holds_the_vote() {
    let fs = diagnose(&corosync_facts("ring-cut"));
    assert_eq!(node_finding(&fs, "qdevice.state", "n1").severity, Severity::Ok, "{fs:#?}");
    let n2 = node_finding(&fs, "qdevice.state", "n2");
    assert_eq!(n2.severity, Severity::Error);
    assert!(n2.evidence.contains("lost the arbiter's vote (NACK)") && n2.evidence.contains("A,NV,NMW"), "{n2:?}");
    let p = one(&fs, "qdevice.partition");
    assert_eq!(p.severity, Severity::Error);
    assert!(p.evidence.contains("n1 holds the vote") && p.evidence.contains("ring 2.d"), "{p:?}");
}

#[test]
fn qdevice_arbiter_down_and_qdevice_not_running_are_errors() {
    let fs = diagnose(&corosync_facts("arbiter-killed"));
    for n in ["n1", "n2"] {
        let s = node_finding(&fs, "qdevice.state", n);
        assert_eq!(s.severity, Severity::Error);
        assert!(s.evidence.contains("not connected to the arbiter 10.77.2.254:5403") && s.evidence.contains("Connect failed"), "{s:?}");
    }
    assert_eq!(one(&fs, "qdevice.partition").severity, Severity::Ok, "still one partition: {fs:#?}");
    let fs = diagnose(&corosync_facts("no-qdevice"));
    let s = node_finding(&fs, "qdevice.state", "n1");
    assert_eq!(s.severity, Severity::Error);
    assert!(s.fix.contains("corosync-qdevice") && s.evidence.contains("Can't connect to QDevice socket"), "{s:?}");
}

/// Per-node tool wrappers in `DIR/NODE/bin` (the PATH a `lab:DIR` node gets): the fake
/// corosync tools print the captured outputs (a parser fixture, not a peer), drbdadm says there is
/// no DRBD on the node.
fn fake_corosync_nodes(dir: &Path, state: &str) {
    use std::os::unix::fs::PermissionsExt;
    for n in ["n1", "n2"] {
        let bin = dir.join(n).join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/corosync/qdevice");
        let rc_qt = if qfix(&format!("{state}.{n}.quorumtool.txt")).contains("Quorate:          No") { 2 } else { 0 };
        let rc_qd = if qfix(&format!("{state}.{n}.qdevice-tool.txt")).starts_with("corosync-qdevice-tool:") { 3 } else { 0 };
        for (tool, file, rc) in [("corosync-quorumtool", "quorumtool", rc_qt), ("corosync-qdevice-tool", "qdevice-tool", rc_qd)] {
            let p = bin.join(tool);
            std::fs::write(&p, format!("#!/bin/sh\ncat '{}/{state}.{n}.{file}.txt'\nexit {rc}\n", fx.display())).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let p = bin.join("drbdadm");
        std::fs::write(&p, "#!/bin/sh\necho 'no resources defined!' >&2\nexit 1\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn cli_reads_the_qdevice_state_on_each_node() {
    let dir = tempfile::tempdir().unwrap();
    let cc = dir.path().join("corosync.conf");
    std::fs::write(&cc, qfix("corosync.conf.n1")).unwrap();
    let missing = dir.path().join("no-cluster.conf");
    for (state, code) in [("healthy", 0), ("ring-cut", 1)] {
        let nodes = dir.path().join(state);
        fake_corosync_nodes(&nodes, state);
        let n1 = format!("n1=lab:{}", nodes.display());
        let n2 = format!("n2=lab:{}", nodes.display());
        let (c, v, all) = run(&[
            "--json", "doctor", "--file", &missing.display().to_string(), "--corosync-conf", &cc.display().to_string(),
            "--no-fence", "--pve-dir", &dir.path().display().to_string(), "--node", &n1, "--node", &n2,
        ]);
        assert_eq!(c, code, "{state}: {all}");
        let states = sev(&v, "qdevice.state");
        let part = sev(&v, "qdevice.partition");
        match state {
            "healthy" => {
                assert_eq!(states, ["ok", "ok"], "{all}");
                assert_eq!(part, ["ok"], "{all}");
            }
            _ => {
                assert_eq!(states, ["error", "ok"], "errors sort first: {all}");
                assert_eq!(part, ["error"], "{all}");
            }
        }
        assert!(!all.contains("doctor ["), "no progress bar without a terminal: {all}");
    }
}

// ------------------------------------------------------------------------------------------------
// cman with the arbiter gate (GATE.md): layout, the probe through the gate's client against a real
// `twonode arbiter serve` on loopback, certificate expiry

fn gate_dev(port: u16, dir: &Path) -> String {
    format!(
        r#"<fencedevice name="twonode-arbiter" agent="fence_twonode_arbiter" ipaddr="127.0.0.1" ipport="{port}" tlscacert="{d}/ca.crt" tlscert="{d}/node.crt" tlskey="{d}/node.key"/>"#,
        d = dir.display()
    )
}

/// cluster.conf with the gate as first device of both nodes' methods (or only alice's).
fn gated_conf(port: u16, dir: &Path, both: bool, extra_bob: &str) -> String {
    let base = conf(7, &ipmi_dev("bmc-alice", 1, ""), &format!("{}\n    {}", ipmi_dev("bmc-bob", 2, extra_bob), gate_dev(port, dir)), "");
    let base = base.replace(
        r#"<method name="1"><device name="bmc-alice"/>"#,
        r#"<method name="1"><device name="twonode-arbiter"/><device name="bmc-alice"/>"#,
    );
    if both {
        base.replace(r#"<method name="1"><device name="bmc-bob"/>"#, r#"<method name="1"><device name="twonode-arbiter"/><device name="bmc-bob"/>"#)
    } else {
        base
    }
}

fn gated_facts(text: &str) -> Facts {
    let mut facts = good_facts();
    for n in &mut facts.nodes {
        n.conf = Some(text.as_bytes().to_vec());
    }
    facts
}

#[test]
fn gate_first_in_every_method_decides_the_race_a_partial_gate_is_an_error() {
    let d = Path::new("/etc/twonode/arbiter");
    let fs = diagnose(&gated_facts(&gated_conf(5403, d, true, "")));
    let r = one(&fs, "fence.race");
    assert_eq!(r.severity, Severity::Ok, "{fs:#?}");
    assert!(r.evidence.contains("arbiter gate 127.0.0.1:5403") && r.evidence.contains("alice/1, bob/1"), "{r:?}");
    assert!(find(&fs, "fence.shared_device").is_empty(), "the gate is not a shared BMC: {fs:#?}");
    assert_eq!(one(&fs, "arbiter.gate").severity, Severity::Info, "not probed");
    assert!(find(&fs, "arbiter").is_empty());
    // bob's method without the gate: the loser could fence
    let fs = diagnose(&gated_facts(&gated_conf(5403, d, false, "")));
    let r = one(&fs, "fence.race");
    assert_eq!(r.severity, Severity::Error);
    assert!(r.evidence.contains("node bob method 1: no gate in this method") && r.fix.contains("gate-fencing"), "{r:?}");
    // the gate second: the real device runs before the arbiter is asked
    let text = gated_conf(5403, d, true, "").replace(
        r#"<device name="twonode-arbiter"/><device name="bmc-bob"/>"#,
        r#"<device name="bmc-bob"/><device name="twonode-arbiter"/>"#,
    );
    let r = one(&diagnose(&gated_facts(&text)), "fence.race").clone();
    assert_eq!(r.severity, Severity::Error);
    assert!(r.evidence.contains("not the first: bmc-bob runs before it"), "{r:?}");
}

fn pem_cert(cn: &str, days_left: i64) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(400);
    p.not_after = now + time::Duration::days(days_left);
    p.self_signed(&key).unwrap().pem()
}

#[test]
fn gate_certificate_expiry_and_cn_are_checked_per_node() {
    use twonode::doctor::CertFacts;
    let d = Path::new("/etc/twonode/arbiter");
    let mut facts = gated_facts(&gated_conf(5403, d, true, ""));
    facts.now_unix = time::OffsetDateTime::now_utc().unix_timestamp();
    let cert = |pem: Option<String>| Some(CertFacts { path: "/etc/twonode/arbiter/node.crt".into(), error: pem.is_none().then(|| "No such file".into()), pem });
    facts.nodes[0].gate_cert = cert(Some(pem_cert("lab", 400)));
    facts.nodes[1].gate_cert = cert(Some(pem_cert("lab", 10)));
    let fs = diagnose(&facts);
    let a = node_finding(&fs, "arbiter.cert", "alice");
    assert_eq!(a.severity, Severity::Ok, "{a:?}");
    assert!(a.evidence.contains("CN \"lab\"") && a.evidence.contains("valid until 20"), "{a:?}");
    let b = node_finding(&fs, "arbiter.cert", "bob");
    assert_eq!(b.severity, Severity::Warning);
    assert!(b.evidence.contains("ends in less than 30 days") && b.fix.contains("twonode arbiter certs sign"), "{b:?}");
    facts.nodes[0].gate_cert = cert(Some(pem_cert("lab", -2)));
    facts.nodes[1].gate_cert = cert(Some(pem_cert("other-cluster", 400)));
    let fs = diagnose(&facts);
    let a = node_finding(&fs, "arbiter.cert", "alice");
    assert_eq!(a.severity, Severity::Error);
    assert!(a.evidence.contains("EXPIRED"), "{a:?}");
    let b = node_finding(&fs, "arbiter.cert", "bob");
    assert_eq!(b.severity, Severity::Error);
    assert!(b.evidence.contains("CN is the cluster name \"lab\""), "{b:?}");
    facts.nodes[1].gate_cert = cert(None);
    let b = diagnose(&facts).into_iter().find(|f| f.check == "arbiter.cert" && f.node.as_deref() == Some("bob")).unwrap();
    assert!(b.severity == Severity::Error && b.evidence.contains("cannot read the gate's client certificate"), "{b:?}");
}

/// `twonode arbiter serve` in-process on 127.0.0.1 (OS-chosen port), TLS on, client certificate
/// required; stopped on drop.
struct Arbiter {
    port: u16,
    _server: twonode::quorum::arbiter::server::Background,
}

impl Arbiter {
    fn start(dir: &Path, socket: Option<&Path>) -> Arbiter {
        use twonode::quorum::arbiter::{certs, server};
        let mut cfg = server::loopback_config();
        cfg.tls.mode = "on".into();
        cfg.tls.client_cert_required = true;
        cfg.tls.cert = dir.join(certs::SERVER_CERT);
        cfg.tls.key = dir.join(certs::SERVER_KEY);
        cfg.tls.ca = dir.join(certs::CA_CERT);
        if let Some(s) = socket {
            cfg.status_socket = s.to_path_buf();
        }
        cfg.finish().unwrap();
        let server = server::Background::start(cfg).expect("arbiter started");
        Arbiter { port: server.addr().port(), _server: server }
    }
}

/// Two lab nodes without DRBD (`DIR/NODE/bin/drbdadm` says so).
fn plain_nodes(dir: &Path) -> (String, String) {
    use std::os::unix::fs::PermissionsExt;
    for n in ["alice", "bob"] {
        let bin = dir.join(n).join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let p = bin.join("drbdadm");
        std::fs::write(&p, "#!/bin/sh\necho 'no resources defined!' >&2\nexit 1\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        // the gate agent as installed on a node: a link to twonode (argv[0] dispatch)
        std::os::unix::fs::symlink(BIN, bin.join("fence_twonode_arbiter")).unwrap();
    }
    (format!("alice=lab:{}", dir.display()), format!("bob=lab:{}", dir.display()))
}

fn finding_of<'a>(v: &'a serde_json::Value, check: &str) -> Vec<&'a serde_json::Value> {
    v["findings"].as_array().map(|a| a.iter().filter(|f| f["check"] == check).collect()).unwrap_or_default()
}

#[test]
fn gate_probe_through_the_gate_client_against_a_real_arbiter() {
    let t = tempfile::tempdir().unwrap();
    let tls = t.path().join("tls");
    let st = Command::new(BIN).args(["arbiter", "certs", "init", "--dir"]).arg(&tls).output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let (cert, key) = twonode::quorum::arbiter::certs::client_pem(&twonode::quorum::arbiter::certs::CertDir::new(&tls), "lab").unwrap();
    std::fs::write(tls.join("node.crt"), cert).unwrap();
    std::fs::write(tls.join("node.key"), key).unwrap();
    let sock = t.path().join("arbiter.sock");
    let arb = Arbiter::start(&tls, Some(&sock));
    let cfile = t.path().join("cluster.conf");
    std::fs::write(&cfile, gated_conf(arb.port, &tls, true, "")).unwrap();
    let (alice, bob) = plain_nodes(&t.path().join("nodes"));
    let file = cfile.display().to_string();
    let pve = t.path().display().to_string();
    let args = ["--json", "doctor", "--file", &file, "--pve-dir", &pve, "--no-fence", "--node", &alice, "--node", &bob];
    let (code, v, all) = run(&args);
    assert_eq!(sev(&v, "fence.race"), ["ok"], "{all}");
    let g = finding_of(&v, "arbiter.gate");
    assert_eq!(g.len(), 1, "{all}");
    assert_eq!(g[0]["severity"], "ok", "{all}");
    let ev = g[0]["evidence"].as_str().unwrap();
    assert!(ev.contains(&format!("arbiter 127.0.0.1:{} accepted the gate's client", arb.port)) && ev.contains("TLS used") && ev.contains("round trip"), "{ev}");
    assert_eq!(sev(&v, "arbiter.cert"), ["ok", "ok"], "{all}");
    // each node's own gate agent (monitor) reaches the arbiter too
    assert_eq!(sev(&v, "arbiter.gate-agent"), ["ok", "ok"], "{all}");
    assert!(finding_of(&v, "arbiter.gate-agent")[0]["evidence"].as_str().unwrap().contains("INIT accepted"), "{all}");
    assert!(!all.contains("PRIVATE KEY"), "key material leaked: {all}");
    assert_eq!(code, 0, "{all}");
    // with the arbiter's status socket (doctor on the arbiter machine): reachable, no client of
    // the cluster connected is normal for the gate
    let sock_s = sock.display().to_string();
    let mut with_sock = args.to_vec();
    with_sock.extend(["--arbiter", &sock_s]);
    // ... and its config: the server and CA certificates' expiry
    let toml = t.path().join("arbiter.toml");
    std::fs::write(
        &toml,
        format!("listen = \"127.0.0.1\"\n[tls]\nmode = \"on\"\ncert = \"{d}/server.crt\"\nkey = \"{d}/server.key\"\nca = \"{d}/ca.crt\"\n", d = tls.display()),
    )
    .unwrap();
    let toml_s = toml.display().to_string();
    with_sock.extend(["--arbiter-config", &toml_s]);
    let (_, v, all) = run(&with_sock);
    assert_eq!(sev(&v, "arbiter.reachable"), ["ok"], "{all}");
    assert_eq!(sev(&v, "arbiter.lease"), ["ok"], "{all}");
    assert_eq!(sev(&v, "arbiter.server-cert"), ["ok", "ok"], "{all}");
    assert!(finding_of(&v, "arbiter.server-cert")[0]["evidence"].as_str().unwrap().contains("valid until"), "{all}");
    // the arbiter stopped: no node can fence
    drop(arb);
    let (code, v, all) = run(&args);
    assert_eq!(code, 1, "{all}");
    let g = finding_of(&v, "arbiter.gate");
    assert_eq!(g[0]["severity"], "error", "{all}");
    assert!(g[0]["evidence"].as_str().unwrap().contains("NO node can fence"), "{all}");
    assert_eq!(sev(&v, "arbiter.gate-agent"), ["error", "error"], "{all}");
    // a client certificate the arbiter's CA did not sign: TLS refused
    let other = t.path().join("other");
    let st = Command::new(BIN).args(["arbiter", "certs", "init", "--dir"]).arg(&other).output().unwrap();
    assert!(st.status.success());
    let (cert, key) = twonode::quorum::arbiter::certs::client_pem(&twonode::quorum::arbiter::certs::CertDir::new(&other), "lab").unwrap();
    let arb = Arbiter::start(&tls, None);
    std::fs::write(tls.join("node.crt"), cert).unwrap();
    std::fs::write(tls.join("node.key"), key).unwrap();
    std::fs::write(&cfile, gated_conf(arb.port, &tls, true, "")).unwrap();
    let (_, v, all) = run(&args);
    let g = finding_of(&v, "arbiter.gate");
    assert_eq!(g[0]["severity"], "error", "{all}");
    // (TLS 1.3 reports the refused client certificate only at the first write: the client
    // currently words it as "the arbiter closed the connection")
    assert!(g[0]["evidence"].as_str().unwrap().contains("NO node can fence"), "{all}");
}

#[test]
fn gate_probe_tcp_only_is_a_warning() {
    use twonode::doctor::GateProbe;
    let mut facts = gated_facts(&gated_conf(5403, Path::new("/etc/twonode/arbiter"), true, ""));
    facts.gate_probe = Some(GateProbe {
        target: "127.0.0.1:5403".into(),
        depth: "tcp".into(),
        ok: true,
        rtt_ms: Some(0.3),
        detail: Some("the gate's files /etc/twonode/arbiter/node.crt are not on this machine".into()),
        ..Default::default()
    });
    let g = one(&diagnose(&facts), "arbiter.gate").clone();
    assert_eq!(g.severity, Severity::Warning);
    assert!(g.evidence.contains("TLS and INIT were NOT checked") && g.evidence.contains("not on this machine"), "{g:?}");
}

#[test]
fn progress_bar_on_a_terminal_only() {
    if !have("script") {
        eprintln!("SKIPPED: script (bsdutils) missing");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    // a dead arbiter behind the gate and two dead BMCs: something to wait on
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let cfile = t.path().join("cluster.conf");
    std::fs::write(&cfile, gated_conf(port, t.path(), true, "")).unwrap();
    let (alice, bob) = plain_nodes(&t.path().join("nodes"));
    let line = format!("'{BIN}' doctor --file '{}' --pve-dir '{}' --node '{alice}' --node '{bob}'", cfile.display(), t.path().display());
    let o = Command::new("script").args(["-qec", &line, "/dev/null"]).stdin(std::process::Stdio::null()).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("doctor [") && out.contains("fence device bmc-alice"), "no progress bar on a terminal:\n{out}");
    assert!(out.contains("fence.race"), "{out}");
    // --json on the same terminal: no bar
    let o = Command::new("script").args(["-qec", &format!("{line} --json").replace("' doctor", "' --json doctor"), "/dev/null"]).stdin(std::process::Stdio::null()).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("doctor [") && out.contains("\"findings\""), "{out}");
}

// ------------------------------------------------------------------------------------------------
// Real corosync 3 + corosync-qdevice in network namespaces (tests/corosync-lab) against
// `twonode arbiter serve`: doctor reads each node's state through per-node tool wrappers
// (`ip netns exec` into the node's namespace), healthy then with the ring cut.

fn lab_skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root (network namespaces need root; CI runs this as root)".into());
    }
    for tool in ["corosync", "corosync-qdevice", "corosync-qdevice-tool", "corosync-quorumtool", "certutil", "ip", "unshare"] {
        if !have(tool) {
            return Some(format!("{tool} not installed (run scripts/install-deps)"));
        }
    }
    let probe = format!("tnprobe{}", std::process::id());
    if !Command::new("ip").args(["netns", "add", &probe]).status().map(|s| s.success()).unwrap_or(false) {
        return Some("cannot create a network namespace here".into());
    }
    let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    None
}

struct CorosyncLab {
    id: String,
    dir: std::path::PathBuf,
}

impl CorosyncLab {
    fn sh(&self, args: &[&str]) -> std::process::Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corosync-lab/lab.sh");
        Command::new("bash")
            .arg(&script)
            .args([self.id.as_str(), &self.dir.to_string_lossy(), "twonode"])
            .args(args)
            .env("TWONODE", BIN)
            .env("LAB_TIMEOUT", "4000")
            .env("LAB_TOKEN", "1000")
            .env("LAB_SYNC_TIMEOUT", "8000")
            .output()
            .expect("lab.sh")
    }
    fn quorumtool(&self, n: u32) -> String {
        let o = Command::new("ip").args(["netns", "exec", &format!("tn{}-n{n}", self.id), "corosync-quorumtool", "-s"]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for CorosyncLab {
    fn drop(&mut self) {
        let _ = self.sh(&["down"]);
    }
}

#[test]
fn end_to_end_over_the_corosync_netns_lab() {
    use std::os::unix::fs::PermissionsExt;
    if let Some(why) = lab_skip_reason() {
        eprintln!("SKIPPED doctor corosync lab: {why}");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let lab = CorosyncLab { id: format!("d{}", std::process::id() % 1000), dir: t.path().join("lab") };
    let up = lab.sh(&["up"]);
    assert!(up.status.success(), "lab up: {}", String::from_utf8_lossy(&up.stderr));
    for step in ["start-arbiter", "start-nodes"] {
        assert!(lab.sh(&[step]).status.success(), "{step}");
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(lab.sh(&["start-qdevices"]).status.success());
    let healthy = |lab: &CorosyncLab| (1..=2).all(|n| lab.quorumtool(n).lines().any(|l| l.starts_with("Total votes:") && l.trim_end().ends_with(" 3")));
    let t0 = std::time::Instant::now();
    while !healthy(&lab) {
        assert!(t0.elapsed().as_secs() < 90, "the lab never became quorate with the device:\n{}\n{}", lab.quorumtool(1), lab.quorumtool(2));
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    // per-node wrappers: the real tools, run in the node's namespace / against its qdevice socket
    let nodes = t.path().join("nodes");
    let real = |tool: &str| {
        ["/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/"].iter().map(|d| format!("{d}{tool}")).find(|p| Path::new(p).exists()).unwrap()
    };
    let (qt, qd) = (real("corosync-quorumtool"), real("corosync-qdevice-tool"));
    for n in 1..=2 {
        let bin = nodes.join(format!("n{n}")).join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let files = [
            ("corosync-quorumtool", format!("#!/bin/sh\nexec ip netns exec tn{}-n{n} {qt} \"$@\"\n", lab.id)),
            (
                "corosync-qdevice-tool",
                format!("#!/bin/sh\nexec {qd} \"$@\" -p '{}/n{n}/run/corosync-qdevice/corosync-qdevice.sock'\n", lab.dir.display()),
            ),
            ("drbdadm", "#!/bin/sh\necho 'no resources defined!' >&2\nexit 1\n".to_string()),
        ];
        for (name, text) in files {
            std::fs::write(bin.join(name), text).unwrap();
            std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let n = |i: u32| format!("n{i}=lab:{}", nodes.display());
    let nf = |i: u32| format!("n{i}={}/n{i}/etc/corosync.conf", lab.dir.display());
    let sock = format!("{}/arb/run/twonode-arbiter.sock", lab.dir.display());
    let missing = t.path().join("none.conf").display().to_string();
    let pve = t.path().display().to_string();
    let args = [
        "--json", "doctor", "--file", &missing, "--node-file", &nf(1), "--node-file", &nf(2), "--pve-dir", &pve, "--arbiter", &sock,
        "--node", &n(1), "--node", &n(2),
    ];
    let (_, v, all) = run(&args);
    assert_eq!(sev(&v, "qdevice.state"), ["ok", "ok"], "{all}");
    assert_eq!(sev(&v, "qdevice.partition"), ["ok"], "{all}");
    assert_eq!(sev(&v, "fence.race"), ["ok"], "{all}");
    assert_eq!(sev(&v, "arbiter.reachable"), ["ok"], "{all}");
    assert_eq!(sev(&v, "arbiter.lease"), ["ok"], "the arbiter sees both nodes: {all}");
    assert!(finding_of(&v, "arbiter.lease")[0]["evidence"].as_str().unwrap().contains("2 of 2 node(s) connected"), "{all}");
    assert_eq!(sev(&v, "arbiter.view"), ["ok"], "the arbiter's votes and rings = the nodes': {all}");
    // cut n1's ring link: n1 keeps the vote (tie_breaker lowest), n2 loses it
    let st = Command::new("ip").args(["-n", &format!("tn{}-sw", lab.id), "link", "set", "r-n1", "down"]).status().unwrap();
    assert!(st.success());
    let t0 = std::time::Instant::now();
    loop {
        let (code, v, all) = run(&args);
        let part = sev(&v, "qdevice.partition");
        let states = sev(&v, "qdevice.state");
        if part == ["error"] && states == ["error", "ok"] {
            assert_eq!(code, 1, "{all}");
            let p = finding_of(&v, "qdevice.partition")[0]["evidence"].as_str().unwrap().to_string();
            assert!(p.contains("n1 holds the vote"), "{all}");
            let lost = finding_of(&v, "qdevice.state").into_iter().find(|f| f["severity"] == "error").unwrap();
            assert_eq!(lost["node"], "n2", "{all}");
            break;
        }
        assert!(t0.elapsed().as_secs() < 40, "the split never showed as expected: {all}");
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

#[test]
fn gate_agent_missing_on_a_node_is_an_error() {
    use twonode::doctor::GateMonitor;
    let mut facts = gated_facts(&gated_conf(5403, Path::new("/etc/twonode/arbiter"), true, ""));
    facts.nodes[0].gate_monitor = Some(GateMonitor { command: Some("fence_twonode_arbiter".into()), exit: Some(0), output: "arbiter 10.0.0.3:5403 answers".into() });
    facts.nodes[1].gate_monitor = Some(GateMonitor { command: None, exit: None, output: "neither fence_twonode_arbiter nor twonode is on the node's PATH".into() });
    let fs = diagnose(&facts);
    assert_eq!(node_finding(&fs, "arbiter.gate-agent", "alice").severity, Severity::Ok);
    let b = node_finding(&fs, "arbiter.gate-agent", "bob");
    assert_eq!(b.severity, Severity::Error);
    assert!(b.evidence.contains("bob can NEVER fence") && b.fix.contains("ln -s"), "{b:?}");
}

#[test]
fn arbiter_server_certificate_ending_soon_is_a_warning() {
    use twonode::doctor::CertFacts;
    let mut facts = good_facts();
    facts.now_unix = time::OffsetDateTime::now_utc().unix_timestamp();
    facts.arbiter_certs = vec![
        ("server certificate".into(), CertFacts { path: "/etc/twonode/arbiter/server.crt".into(), pem: Some(pem_cert("Qnetd Server", 5)), error: None }),
        ("CA certificate".into(), CertFacts { path: "/etc/twonode/arbiter/ca.crt".into(), pem: Some(pem_cert("twonode CA", -1)), error: None }),
    ];
    let fs = diagnose(&facts);
    let s = find(&fs, "arbiter.server-cert");
    assert_eq!(s.len(), 2, "{fs:#?}");
    assert_eq!(s[0].severity, Severity::Error, "errors first");
    assert!(s[0].evidence.contains("CA certificate") && s[0].evidence.contains("EXPIRED"), "{s:?}");
    assert_eq!(s[1].severity, Severity::Warning);
    assert!(s[1].evidence.contains("ends in less than 30 days") && s[1].fix.contains("twonode arbiter certs init"), "{s:?}");
}

#[test]
fn arbiter_view_is_compared_with_the_nodes() {
    // the arbiter's status captured at the same moment as the nodes' outputs
    for (state, want) in [("healthy", Severity::Ok), ("ring-cut", Severity::Ok)] {
        let mut facts = corosync_facts(state);
        let status: serde_json::Value = serde_json::from_str(&qfix(&format!("{state}.arbiter-status.json"))).unwrap();
        facts.arbiter = Some(twonode::doctor::ArbiterFacts { target: "/run/x.sock".into(), reachable: true, error: None, status: Some(status) });
        let fs = diagnose(&facts);
        let v = one(&fs, "arbiter.view");
        assert_eq!(v.severity, want, "{state}: {v:?}");
    }
    // n2's node says it casts the vote, the arbiter says NACK: disagreement
    let mut facts = corosync_facts("healthy");
    let mut status: serde_json::Value = serde_json::from_str(&qfix("healthy.arbiter-status.json")).unwrap();
    status["arbiter"]["clusters"][0]["nodes"][1]["vote"] = "NACK".into();
    facts.arbiter = Some(twonode::doctor::ArbiterFacts { target: "/run/x.sock".into(), reachable: true, error: None, status: Some(status) });
    let v = one(&diagnose(&facts), "arbiter.view").clone();
    assert_eq!(v.severity, Severity::Warning);
    assert!(v.evidence.contains("n2: the arbiter says NACK but the node casts the device vote"), "{v:?}");
}

/// The gate's decision timeout is read as the gate reads it: `login_timeout` (what
/// `conf gate-fencing` writes), else `timeout`; unset stays unset.
#[test]
fn gate_timeout_is_read_like_the_gate_reads_it() {
    let d = Path::new("/etc/twonode/arbiter");
    let text = gated_conf(5403, d, true, "");
    let timeout_of = |t: &str| twonode::doctor::gate_of_cluster_conf(t, "cluster.conf").expect("gate").gates[0].timeout_s;
    assert_eq!(timeout_of(&text), None);
    let with = |attr: &str| text.replace(r#"agent="fence_twonode_arbiter""#, &format!(r#"agent="fence_twonode_arbiter" {attr}"#));
    assert_eq!(timeout_of(&with(r#"login_timeout="20""#)), Some(20));
    assert_eq!(timeout_of(&with(r#"timeout="12""#)), Some(12));
    assert_eq!(timeout_of(&with(r#"login_timeout="20" timeout="12""#)), Some(20));
}
