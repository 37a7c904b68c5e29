//! A switched PDU as the second fencing method: an APC AP7900 simulated by snmpsim (PyPI) from
//! fixtures/pdu (recording + the apc_outlet variation module that keeps outlet state), started here
//! on a free loopback UDP port and stopped again. The real fence_apc_snmp is the reference client
//! (it proves the simulator faithful), net-snmp's snmpget the independent observer; then the native
//! driver, and a dual-PSU node (two outlets) through `twonode fence`: both outlets off before any on,
//! read from the simulator's log of SETs. Skipped, saying so, when snmpsim, the net-snmp tools or
//! fence-agents are missing (scripts/install-deps installs them).
mod fence_support;
use fence_support::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use twonode::fence::apc_snmp::{ApcSnmpDevice, Outlet};
use twonode::fence::power::{PowerDevice, PowerError, PowerState};

/// The read-write community of the simulated PDU (snmpsim serves the data file named after it).
const COMMUNITY: &str = "rw-s3cret";
const STATUS: &str = ".1.3.6.1.4.1.318.1.1.12.3.5.1.1.4";

struct PduSim {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for PduSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pdu")
}

fn pdu_available() -> bool {
    for (cmd, what) in [
        ("snmpsim-command-responder", "snmpsim (PyPI)"),
        ("snmpget", "snmpget (Debian snmp)"),
        ("snmpset", "snmpset (Debian snmp)"),
        ("fence_apc_snmp", "fence_apc_snmp (Debian fence-agents)"),
    ] {
        if !have(cmd) {
            eprintln!("SKIPPED: {what} is not installed; run scripts/install-deps");
            return false;
        }
    }
    true
}

impl PduSim {
    fn start() -> PduSim {
        Self::start_as(None)
    }

    /// Start with another sysObjectID than the AP7900's (another APC device type).
    fn start_as(sys_object_id: Option<&str>) -> PduSim {
        let mut recording = std::fs::read_to_string(fixtures().join("apc-ap7900.snmprec")).unwrap();
        if let Some(id) = sys_object_id {
            recording = recording.replace("1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.318.1.3.4.5", &format!("1.3.6.1.2.1.1.2.0|6|{id}"));
        }
        let mut last = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("data")).unwrap();
            std::fs::create_dir_all(dir.path().join("cache")).unwrap();
            std::fs::write(dir.path().join(format!("data/{COMMUNITY}.snmprec")), &recording).unwrap();
            let port = free_udp_port();
            let log = std::fs::File::create(dir.path().join("snmpsim.out")).unwrap();
            let child = Command::new("snmpsim-command-responder")
                .arg(format!("--data-dir={}", dir.path().join("data").display()))
                .arg(format!("--cache-dir={}", dir.path().join("cache").display()))
                .arg(format!("--variation-modules-dir={}", fixtures().join("variation").display()))
                .arg(format!("--variation-module-options=apc_outlet:log:{},reboot:1", dir.path().join("sets.log").display()))
                .arg(format!("--agent-udpv4-endpoint=127.0.0.1:{port}"))
                // as root snmpsim insists on dropping privileges, which these temp dirs do not allow
                .env("SNMPSIM_ALLOW_ROOT", "true")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("spawn snmpsim-command-responder");
            let mut sim = PduSim { child, port, dir };
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(60) {
                if let Ok(Some(_)) = sim.child.try_wait() {
                    break;
                }
                if sim.snmpget("1.3.6.1.2.1.1.2.0").is_some() {
                    return sim;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            last = std::fs::read_to_string(sim.dir.path().join("snmpsim.out")).unwrap_or_default();
        }
        panic!("snmpsim did not start:\n{last}");
    }

    /// net-snmp's snmpget, as the independent observer: the value, or None without an answer.
    fn snmpget(&self, oid: &str) -> Option<String> {
        let out = Command::new("snmpget")
            .args(["-v1", "-c", COMMUNITY, "-t", "0.5", "-r", "0", "-m", "", "-Oqv"])
            .arg(format!("127.0.0.1:{}", self.port))
            .arg(oid)
            .output()
            .ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// rPDUOutletStatusOutletState of an outlet as snmpget reads it.
    fn outlet(&self, n: u32) -> PowerState {
        match self.snmpget(&format!("{STATUS}.{n}")).as_deref() {
            Some("1") => PowerState::On,
            Some("2") => PowerState::Off,
            other => panic!("outlet {n}: unexpected {other:?}"),
        }
    }

    /// The accepted SETs so far as (outlet, "on"/"off"), in order.
    fn sets(&self) -> Vec<(u32, String)> {
        let text = std::fs::read_to_string(self.dir.path().join("sets.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let outlet = l.split("outlet=").nth(1)?.split_whitespace().next()?.parse().ok()?;
                let state = l.rsplit("-> ").next()?.trim().to_string();
                Some((outlet, state))
            })
            .collect()
    }

    fn clear_sets(&self) {
        let _ = std::fs::remove_file(self.dir.path().join("sets.log"));
    }
}

/// Run the real fence_apc_snmp with its parameters on stdin (the community stays out of argv).
fn fence_apc_snmp(sim: &PduSim, community: &str, lines: &str) -> (i32, String) {
    let mut c = Command::new("fence_apc_snmp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fence_apc_snmp");
    let input = format!("ip=127.0.0.1\nipport={}\ncommunity={community}\n{lines}", sim.port);
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn reference_fence_apc_snmp_drives_the_simulated_pdu() {
    if !pdu_available() {
        return;
    }
    let sim = PduSim::start();
    let run = |lines: &str| fence_apc_snmp(&sim, COMMUNITY, lines);

    let (code, out) = run("port=3\naction=status\n");
    assert_eq!((code, out.trim()), (0, "Status: ON"));
    // by name, as fence_apc_snmp resolves it from rPDUOutletStatusOutletName
    let (code, out) = run("port=node2-psu1\naction=off\n");
    assert_eq!(code, 0, "{out}");
    assert_eq!(sim.outlet(3), PowerState::Off, "snmpget after fence_apc_snmp off");
    assert_eq!(sim.outlet(4), PowerState::On, "only outlet 3 switched");
    let (code, out) = run("port=3\naction=status\n");
    assert_eq!((code, out.trim()), (2, "Status: OFF"));
    let (code, out) = run("port=3\naction=on\nsnmp_version=2c\n");
    assert_eq!(code, 0, "{out}");
    assert_eq!(sim.outlet(3), PowerState::On);

    sim.clear_sets();
    let (code, out) = run("port=4\naction=reboot\n");
    assert_eq!(code, 0, "{out}");
    assert_eq!(sim.sets(), vec![(4, "off".to_string()), (4, "on".to_string())]);
    assert_eq!(sim.outlet(4), PowerState::On);

    let (code, out) = run("action=list\n");
    assert_eq!(code, 0, "{out}");
    for (n, name) in [(1, "node1-psu1"), (4, "node2-psu2"), (8, "Outlet 8")] {
        assert!(out.lines().any(|l| l.trim() == format!("{n},{name}")), "{name} missing from list:\n{out}");
    }

    // a wrong community gets no answer at all (as from a real agent): fence_apc_snmp fails, nothing switched
    sim.clear_sets();
    let (code, out) = fence_apc_snmp(&sim, "public", "port=3\naction=off\n");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Timeout") || out.contains("No Response"), "{out}");
    assert!(sim.sets().is_empty());
    assert_eq!(sim.outlet(3), PowerState::On);
}

fn params(sim: &PduSim, kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut p: BTreeMap<String, String> = [
        ("ipaddr", "127.0.0.1".to_string()),
        ("udpport", sim.port.to_string()),
        ("community", COMMUNITY.to_string()),
        ("login_timeout", "2".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, v) in kv {
        p.insert(k.to_string(), v.to_string());
    }
    p
}

#[test]
fn native_driver_status_off_on_verified_by_snmpget_and_fence_apc_snmp() {
    if !pdu_available() {
        return;
    }
    let sim = PduSim::start();
    for (version, plug, n) in [("1", "3", 3u32), ("2c", "node1-psu2", 2)] {
        let mut dev = ApcSnmpDevice::from_params(&params(&sim, &[("port", plug), ("snmp_version", version)])).unwrap();
        dev.connect().unwrap();
        assert_eq!(dev.outlet(), Some(Outlet { switch: 1, port: n }));
        assert!(dev.describe().starts_with("APC rack PDU"), "{}", dev.describe());
        assert!(!dev.describe().contains(COMMUNITY));
        assert_eq!(dev.status().unwrap(), PowerState::On);
        dev.power_off().unwrap();
        assert_eq!(sim.outlet(n), PowerState::Off, "snmpget after native off (v{version})");
        assert_eq!(dev.status().unwrap(), PowerState::Off);
        let (code, out) = fence_apc_snmp(&sim, COMMUNITY, &format!("port={n}\naction=status\n"));
        assert_eq!((code, out.trim()), (2, "Status: OFF"), "fence_apc_snmp agrees");
        dev.power_on().unwrap();
        assert_eq!(sim.outlet(n), PowerState::On);
        assert_eq!(dev.status().unwrap(), PowerState::On);
    }
    // outlet reboot (immediateReboot): off now, on again after the PDU's reboot duration (1 s here)
    let mut dev = ApcSnmpDevice::from_params(&params(&sim, &[("port", "5")])).unwrap();
    dev.power_cycle().unwrap();
    assert_eq!(sim.outlet(5), PowerState::Off);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(dev.status().unwrap(), PowerState::On);

    // no such outlet, by number and by name: configuration errors naming what exists
    let mut dev = ApcSnmpDevice::from_params(&params(&sim, &[("port", "9")])).unwrap();
    let e = dev.status().unwrap_err();
    assert!(matches!(e, PowerError::Config(_)) && e.to_string().contains("outlet 9 does not exist"), "{e}");
    let mut dev = ApcSnmpDevice::from_params(&params(&sim, &[("port", "node3-psu1")])).unwrap();
    let e = dev.power_off().unwrap_err();
    assert!(e.to_string().contains("no outlet named \"node3-psu1\"") && e.to_string().contains("4 \"node2-psu2\""), "{e}");

    // a wrong community: no answer; unreachable after login_timeout, saying the community may be why
    sim.clear_sets();
    let mut p = params(&sim, &[("port", "3")]);
    p.insert("community".into(), "public".into());
    let mut dev = ApcSnmpDevice::from_params(&p).unwrap();
    let t = Instant::now();
    let e = dev.power_off().unwrap_err();
    assert!(matches!(e, PowerError::Unreachable(_)), "{e:?}");
    assert!(e.to_string().contains("community"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert!(!e.to_string().contains("public"));
    assert!(sim.sets().is_empty());
    assert_eq!(sim.outlet(3), PowerState::On);
}

#[test]
fn other_apc_device_types_native_agrees_with_fence_apc_snmp() {
    if !pdu_available() {
        return;
    }
    // 318.1.3.4.6: MasterSwitch with 6.x firmware (status sPDUOutletCtl, control rPDU command);
    // an unknown sysObjectID: fence_apc_snmp's fallback, the old MasterSwitch table (sPDUOutletCtl)
    for (id, kind) in [("1.3.6.1.4.1.318.1.3.4.6", "APC MasterSwitch, firmware 6.x"), ("1.3.6.1.4.1.318.1.3.4.99", "APC MasterSwitch (sPDUOutletCtl)")] {
        let sim = PduSim::start_as(Some(id));
        let mut dev = ApcSnmpDevice::from_params(&params(&sim, &[("port", "node1-psu2")])).unwrap();
        dev.connect().unwrap();
        assert_eq!(dev.profile().map(|p| p.name), Some(kind));
        assert_eq!(dev.outlet(), Some(Outlet { switch: 1, port: 2 }));
        dev.power_off().unwrap();
        assert_eq!(sim.outlet(2), PowerState::Off);
        let (code, out) = fence_apc_snmp(&sim, COMMUNITY, "port=node1-psu2\naction=status\n");
        assert_eq!((code, out.trim()), (2, "Status: OFF"), "{kind}");
        let (code, out) = fence_apc_snmp(&sim, COMMUNITY, "port=2\naction=on\n");
        assert_eq!(code, 0, "{kind}: {out}");
        assert_eq!(dev.status().unwrap(), PowerState::On, "{kind}");
    }
}

/// cluster.conf: node2 has two power supplies on PDU outlets 3 and 4, one method with both.
fn dual_psu_conf(sim: &PduSim, extra: &str) -> String {
    format!(
        r#"<?xml version="1.0"?>
<cluster name="testclu" config_version="1">
  <cman two_node="1" expected_votes="1"/>
  <clusternodes>
    <clusternode name="node1" nodeid="1">
      <fence>
        <method name="pdu">
          <device name="pdu-a" port="node1-psu1"/>
          <device name="pdu-a" port="node1-psu2"/>
        </method>
      </fence>
    </clusternode>
    <clusternode name="node2" nodeid="2">
      <fence>
        <method name="pdu">
          <device name="pdu-a" port="node2-psu1"/>
          <device name="pdu-a" port="node2-psu2"/>
        </method>
      </fence>
    </clusternode>
  </clusternodes>
  <fencedevices>
    <fencedevice name="pdu-a" agent="fence_apc_snmp" ipaddr="127.0.0.1" ipport="{}" community="{COMMUNITY}" snmp_version="2c" login_timeout="2" {extra}/>
  </fencedevices>
</cluster>
"#,
        sim.port
    )
}

fn off_on(sets: &[(u32, String)]) -> Vec<(u32, &str)> {
    sets.iter().map(|(o, s)| (*o, s.as_str())).collect()
}

fn dual_psu_reboot(extra: &str) {
    let sim = PduSim::start();
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(dir.path(), &dual_psu_conf(&sim, extra));
    let audit = dir.path().join("audit.log").display().to_string();
    let fence = |action: &str| twonode(&["fence", "node2", "--action", action, "--file", &conf, "--audit-log", &audit, "--yes"], None);

    let r = fence("status");
    assert_eq!(r.code, 0, "status: {}{}", r.stdout, r.stderr);

    sim.clear_sets();
    let r = fence("reboot");
    assert_eq!(r.code, 0, "reboot: {}{}", r.stdout, r.stderr);
    // both outlets off before either is switched on again; node1's outlets untouched
    assert_eq!(off_on(&sim.sets()), vec![(3, "off"), (4, "off"), (3, "on"), (4, "on")], "{}", r.stdout);
    for n in [1, 2, 3, 4] {
        assert_eq!(sim.outlet(n), PowerState::On, "outlet {n} after reboot");
    }

    sim.clear_sets();
    let r = fence("off");
    assert_eq!(r.code, 0, "off: {}{}", r.stdout, r.stderr);
    assert_eq!(off_on(&sim.sets()), vec![(3, "off"), (4, "off")]);
    assert_eq!((sim.outlet(3), sim.outlet(4)), (PowerState::Off, PowerState::Off));
    let r = fence("status");
    assert_eq!(r.code, 2, "status after off: {}{}", r.stdout, r.stderr);

    // one supply still on is not "off": power outlet 4 back on by hand, status must not say off
    Command::new("snmpset")
        .args(["-v1", "-c", COMMUNITY, "-m", ""])
        .arg(format!("127.0.0.1:{}", sim.port))
        .args([".1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.4", "i", "1"])
        .output()
        .unwrap();
    let r = fence("status");
    assert_eq!(r.code, 0, "status with one supply on: {}{}", r.stdout, r.stderr);

    let r = fence("on");
    assert_eq!(r.code, 0, "on: {}{}", r.stdout, r.stderr);
    assert_eq!((sim.outlet(3), sim.outlet(4)), (PowerState::On, PowerState::On));

    // a cycle reboot asked for: not with two power supplies (each outlet's off time need not overlap)
    sim.clear_sets();
    let r = twonode(
        &["fence", "node2", "--action", "reboot", "--method", "cycle", "--file", &conf, "--audit-log", &audit, "--yes"],
        None,
    );
    assert_eq!(r.code, 0, "reboot --method cycle: {}{}", r.stdout, r.stderr);
    assert_eq!(off_on(&sim.sets()), vec![(3, "off"), (4, "off"), (3, "on"), (4, "on")], "{}", r.stdout);

    // fence test reads both outlets and tells them apart
    let t = twonode(&["--json", "fence", "test", "--file", &conf], None);
    let v: serde_json::Value = serde_json::from_str(&t.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", t.stdout, t.stderr));
    let text = t.stdout.clone();
    let checks = v["checks"].as_array().unwrap_or_else(|| panic!("no checks: {text}"));
    let plugs: Vec<&str> = checks.iter().filter(|c| c["node"] == "node2").filter_map(|c| c["plug"].as_str()).collect();
    assert_eq!(plugs, ["node2-psu1", "node2-psu2"], "{text}");
    assert!(checks.iter().all(|c| c["driver"] == if extra.is_empty() { "snmp" } else { "external" }), "{text}");
    let j = twonode(&["--json", "fence", "node2", "--action", "status", "--file", &conf, "--audit-log", &audit], None);
    assert_eq!(j.code, 0, "{}{}", j.stdout, j.stderr);

    // the community is a secret: not in twonode's output (human or JSON) nor its audit log
    let log = std::fs::read_to_string(&audit).unwrap_or_default();
    assert!(!log.is_empty(), "audit log written");
    for text in [&r.stdout, &r.stderr, &log, &t.stdout, &t.stderr, &j.stdout, &j.stderr] {
        assert!(!text.contains(COMMUNITY), "community leaked: {text}");
    }
}

#[test]
fn dual_psu_node_native_driver_all_outlets_off_before_any_on() {
    if !pdu_available() {
        return;
    }
    dual_psu_reboot("");
}

#[test]
fn dual_psu_node_external_fence_apc_snmp_all_outlets_off_before_any_on() {
    if !pdu_available() {
        return;
    }
    dual_psu_reboot(r#"twonode_driver="external""#);
}
