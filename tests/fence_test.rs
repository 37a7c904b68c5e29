//! `twonode fence test` against two real ipmi_sim BMCs on loopback.
mod fence_support;
use fence_support::*;

#[test]
fn fence_test_checks_every_device_and_destructive_run_confirms_each_state() {
    let a = IpmiSim::start();
    let b = IpmiSim::start();
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(
        dir.path(),
        &conf_nodes(&[("node1", a.port, "delay=\"2\""), ("node2", b.port, "")]),
    );
    let audit = dir.path().join("audit.log").display().to_string();

    let r = twonode(&["fence", "test", "--file", &conf, "--json"], None);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["ok"], true);
    let checks = v["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 2);
    for c in checks {
        assert_eq!(c["reachable"], true);
        assert_eq!(c["login"], true);
        assert_eq!(c["status"], "on");
    }
    // a delay on one node: no fence-race warning; single BMC level is only a warning
    let codes: Vec<&str> = v["risks"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap()).collect();
    assert!(!codes.contains(&"fence_race"), "{codes:?}");
    assert!(!r.stdout.contains("secret"));

    // destructive: one node at a time, off and on confirmed, report kept
    let report = dir.path().join("evidence.json");
    let r = twonode(
        &["fence", "test", "--file", &conf, "--destructive", "--yes", "--audit-log", &audit, "--report", report.to_str().unwrap()],
        None,
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("confirmed"), "{}", r.stdout);
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let pts = v["power_tests"].as_array().unwrap();
    assert_eq!(pts.len(), 2);
    for p in pts {
        assert_eq!(p["off_ok"], true);
        assert_eq!(p["on_ok"], true);
        assert!(p["off_ms"].as_u64().unwrap() >= 900, "power_wait 1 s: {p}"); // and no delay in the test
        assert!(p["off_ms"].as_u64().unwrap() < 2000, "the fence delay must not apply in the test: {p}");
    }
    assert!(a.power() && b.power());
    let log_a = a.chassis_log();
    assert!(log_a.contains("set power 0") && log_a.contains("set power 1"));
    assert!(std::fs::read_to_string(&audit).unwrap().lines().count() >= 4);

    // destructive without --yes and without a terminal: refused, nothing switched
    let before = b.chassis_log().len();
    let r = twonode(&["fence", "test", "--file", &conf, "--destructive", "--audit-log", &audit], None);
    assert_ne!(r.code, 0);
    assert_eq!(b.chassis_log().len(), before);
}

#[test]
fn fence_test_flags_failures_and_risks() {
    let a = IpmiSim::start();
    let dir = tempfile::tempdir().unwrap();
    let dead = free_udp_port();
    // node2's device: wrong password; node3's: nothing listening. No delay anywhere.
    let conf = conf_nodes(&[("node1", a.port, ""), ("node2", a.port, ""), ("node3", dead, "")]);
    let conf = {
        // second device gets a wrong password
        let i = conf.match_indices("passwd=\"secret\"").nth(1).unwrap().0;
        format!("{}passwd=\"bad\"{}", &conf[..i], &conf[i + "passwd=\"secret\"".len()..])
    };
    let conf = write_conf(dir.path(), &conf);
    let report = dir.path().join("r.json");
    let r = twonode(&["fence", "test", "--file", &conf, "--report", report.to_str().unwrap()], None);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("result: FAIL"));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let c = v["checks"].as_array().unwrap();
    assert_eq!(c[0]["status"], "on");
    assert_eq!((c[1]["reachable"].as_bool(), c[1]["login"].as_bool(), c[1]["exit_code"].as_i64()), (Some(true), Some(false), Some(3)));
    assert_eq!((c[2]["reachable"].as_bool(), c[2]["exit_code"].as_i64()), (Some(false), Some(4)));
    let codes: Vec<&str> = v["risks"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap()).collect();
    assert!(codes.contains(&"fence_race"), "{codes:?}");
    assert!(codes.contains(&"shared_device"), "{codes:?}");
    // --destructive refuses to switch anything when a device failed its check
    let before = a.chassis_log().len();
    let r = twonode(&["fence", "test", "--file", &conf, "--destructive", "--yes", "--audit-log", dir.path().join("a.log").to_str().unwrap()], None);
    assert_eq!(r.code, 1);
    assert_eq!(a.chassis_log().len(), before);
}

/// Dispatch by agent= and the cascade through real drivers: node1's first method is an iLO (RIBCL,
/// the project's iLO simulator), its second an IPMI BMC (ipmi_sim).
#[test]
fn cascade_over_real_drivers_ribcl_then_ipmi() {
    use twonode::lab::ilo_sim::{IloSim, IloSimConfig, Profile};
    let ilo_dir = tempfile::tempdir().unwrap();
    let bmc = IloSim::start(IloSimConfig::new(Profile::Ilo4, ilo_dir.path())).expect("ilo sim");
    let ipmi = IpmiSim::start();
    let dir = tempfile::tempdir().unwrap();
    let conf_for = |ilo_port: u16| {
        format!(
            r#"<?xml version="1.0"?>
<cluster name="c" config_version="1">
  <clusternodes>
    <clusternode name="node1" nodeid="1"><fence>
      <method name="ilo"><device name="ilo1"/></method>
      <method name="ipmi"><device name="ipmi1"/></method>
    </fence></clusternode>
  </clusternodes>
  <fencedevices>
    <fencedevice name="ilo1" agent="fence_ilo" ipaddr="127.0.0.1" ipport="{ilo_port}" login="admin" passwd="secret" ssl_insecure="1" login_timeout="3" power_wait="0"/>
    <fencedevice name="ipmi1" agent="fence_ipmilan" ipaddr="127.0.0.1" ipport="{}" login="admin" passwd="secret" cipher="3" power_wait="0"/>
  </fencedevices>
</cluster>
"#,
            ipmi.port
        )
    };
    let audit = dir.path().join("a.log").display().to_string();
    let conf = write_conf(dir.path(), &conf_for(bmc.port()));
    let r = twonode(&["fence", "node1", "--action", "off", "--yes", "--json", "--file", &conf, "--audit-log", &audit], None);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["method"], "ilo");
    assert!(!bmc.power_on());
    assert!(ipmi.power(), "the second method must not be used when the first succeeds");
    // iLO unreachable: the cascade falls through to IPMI.
    let conf = write_conf(dir.path(), &conf_for(free_udp_port()));
    let r = twonode(&["fence", "node1", "--action", "off", "--yes", "--json", "--file", &conf, "--audit-log", &audit], None);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["method"], "ipmi");
    assert!(!ipmi.power());
}

/// --wait-ping: after power-on the node must answer ping again (node "localhost" answers at once).
#[test]
fn destructive_test_waits_for_ping() {
    assert!(have("ping"), "ping missing: run scripts/install-deps (iputils-ping)");
    let a = IpmiSim::start();
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(dir.path(), &conf_nodes(&[("localhost", a.port, "power_wait=\"0\"")]).replace("power_wait=\"1\" ", ""));
    let audit = dir.path().join("a.log").display().to_string();
    let r = twonode(
        &["fence", "test", "--file", &conf, "--destructive", "--yes", "--wait-ping", "5", "--json", "--audit-log", &audit],
        None,
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let p = &v["power_tests"][0];
    assert_eq!(p["on_ok"], true, "{p}");
    assert!(p["ping_ms"].as_u64().is_some(), "{p}");
}
