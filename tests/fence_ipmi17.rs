//! IPMI cipher suite 17: the lab's BMC simulator (`twonode lab bmc-sim`) proven with the real
//! ipmitool (`-I lanplus -C 17` and `-C 3`) and fence_ipmilan as independent clients, then
//! twonode's native driver against it with both suites, and against OpenIPMI's ipmi_sim (which
//! offers suites 0-14: the driver must fall back to 3 when cipher= is unset).
mod fence_support;
use fence_support::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use twonode::fence::ipmi::{IpmiConfig, IpmiDevice, Privilege};
use twonode::fence::power::{PowerDevice, PowerError, PowerState};

/// `twonode lab bmc-sim` as a process on a free loopback port (killed on drop).
struct Sim17 {
    port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl Sim17 {
    fn start(extra: &[&str]) -> Sim17 {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("twonode"))
            .args(["lab", "bmc-sim", "--port", "0", "--state-dir"])
            .arg(dir.path())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start twonode lab bmc-sim");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line
            .trim()
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or_else(|| panic!("bmc-sim did not say where it listens: {line:?}"));
        Sim17 { port, dir, child }
    }
    fn power(&self) -> bool {
        std::fs::read_to_string(self.dir.path().join("power.0x20")).map(|s| s.trim() == "1").unwrap_or(true)
    }
    fn set_power(&self, on: bool) {
        std::fs::write(self.dir.path().join("power.0x20"), if on { "1\n" } else { "0\n" }).unwrap();
    }
    fn fault(&self, name: &str, content: &str) {
        std::fs::write(self.dir.path().join(name), content).unwrap();
    }
    fn chassis_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("chassis.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split_once(' ').map(|(_, r)| r.to_string()).unwrap_or_default())
            .collect()
    }
    fn bmc_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bmc.log")).unwrap_or_default()
    }
}

impl Drop for Sim17 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Out {
    code: i32,
    text: String,
}

/// The real ipmitool; the password through the environment (never argv).
fn ipmitool(port: u16, cipher: Option<&str>, user: &str, password: &str, args: &[&str]) -> Out {
    let mut c = Command::new("ipmitool");
    c.args(["-I", "lanplus"]);
    if let Some(cs) = cipher {
        c.args(["-C", cs]);
    }
    let out = c
        .args(["-H", "127.0.0.1", "-p", &port.to_string(), "-U", user, "-E"])
        .args(args)
        .env("IPMI_PASSWORD", password)
        .output()
        .expect("ipmitool");
    Out { code: out.status.code().unwrap_or(-1), text: format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)) }
}

fn fence_ipmilan(port: u16, lines: &str) -> Out {
    use std::io::Write;
    let mut c = Command::new("fence_ipmilan").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("fence_ipmilan");
    let input = format!("ipaddr=127.0.0.1\nipport={port}\nlogin=admin\npasswd=secret\nlanplus=1\n{lines}");
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    Out { code: out.status.code().unwrap_or(-1), text: format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)) }
}

fn cfg(port: u16, cipher: Option<u8>, password: &str) -> IpmiConfig {
    IpmiConfig {
        host: "127.0.0.1".into(),
        port,
        username: "admin".into(),
        password: password.into(),
        cipher,
        privilege: Privilege::Administrator,
        timeout: Duration::from_secs(2),
        retries: 1,
    }
}

/// A cluster.conf whose node2 is fenced through 127.0.0.1:port; `attrs` are extra device
/// attributes (no cipher= unless given: the driver negotiates).
fn conf(dir: &std::path::Path, port: u16, attrs: &str) -> String {
    write_conf(
        dir,
        &format!(
            "<?xml version=\"1.0\"?>\n<cluster name=\"c17\" config_version=\"1\">\n  <cman two_node=\"1\" expected_votes=\"1\"/>\n  <clusternodes>\n    <clusternode name=\"node1\" nodeid=\"1\"/>\n    <clusternode name=\"node2\" nodeid=\"2\">\n      <fence>\n        <method name=\"ipmi\">\n          <device name=\"bmc2\"/>\n        </method>\n      </fence>\n    </clusternode>\n  </clusternodes>\n  <fencedevices>\n    <fencedevice name=\"bmc2\" agent=\"fence_ipmilan\" ipaddr=\"127.0.0.1\" ipport=\"{port}\" login=\"admin\" passwd=\"secret\" lanplus=\"1\" power_wait=\"1\" {attrs}/>\n  </fencedevices>\n</cluster>\n"
        ),
    )
}

// ---- the simulator, proven with independent clients ----

#[test]
fn ipmitool_runs_power_commands_on_the_simulator_with_suite_17_and_3() {
    let sim = Sim17::start(&[]);
    for cs in ["17", "3"] {
        let st = |s: &Sim17| ipmitool(s.port, Some(cs), "admin", "secret", &["chassis", "power", "status"]);
        let r = st(&sim);
        assert_eq!((r.code, r.text.trim()), (0, "Chassis Power is on"), "-C {cs}");
        let r = ipmitool(sim.port, Some(cs), "admin", "secret", &["chassis", "power", "off"]);
        assert!(r.code == 0 && r.text.contains("Down/Off"), "-C {cs}: {}", r.text);
        assert!(!sim.power());
        assert!(st(&sim).text.contains("is off"));
        let r = ipmitool(sim.port, Some(cs), "admin", "secret", &["chassis", "power", "on"]);
        assert!(r.code == 0 && r.text.contains("Up/On"), "-C {cs}: {}", r.text);
        assert!(sim.power());
        let before = sim.chassis_log().len();
        let r = ipmitool(sim.port, Some(cs), "admin", "secret", &["chassis", "power", "cycle"]);
        assert!(r.code == 0 && r.text.contains("Cycle"), "-C {cs}: {}", r.text);
        assert!(!sim.power(), "cycle: off at once");
        std::thread::sleep(Duration::from_millis(1300));
        assert!(sim.power(), "cycle: on again after 1 s");
        assert_eq!(sim.chassis_log()[before..], ["set power 0", "set power 1"]);
        let r = ipmitool(sim.port, Some(cs), "admin", "secret", &["chassis", "power", "reset"]);
        assert!(r.code == 0 && r.text.contains("Reset"), "-C {cs}: {}", r.text);
        assert_eq!(sim.chassis_log().last().unwrap(), "set reset 1");
        let r = ipmitool(sim.port, Some(cs), "admin", "secret", &["mc", "info"]);
        assert!(r.code == 0 && r.text.contains("IPMI Version              : 2.0"), "{}", r.text);
    }
    // without -C, ipmitool asks for the suites and takes 17
    let r = ipmitool(sim.port, None, "admin", "secret", &["-vv", "chassis", "power", "status"]);
    assert!(r.text.contains("Using best available cipher suite 17"), "{}", r.text);
    let r = ipmitool(sim.port, None, "admin", "secret", &["channel", "getciphers", "ipmi"]);
    assert!(r.text.contains("17   N/A     hmac_sha256     sha256_128      aes_cbc_128"), "{}", r.text);
    let log = sim.bmc_log();
    assert!(log.contains("cipher suite 17") && log.contains("cipher suite 3"), "{log}");
    // every session was closed
    assert_eq!(log.matches(" active: ").count(), log.matches(" closed").count(), "{log}");
}

#[test]
fn ipmitool_with_a_wrong_password_unknown_user_or_too_high_privilege_is_refused() {
    let sim = Sim17::start(&[]);
    for cs in ["17", "3"] {
        let r = ipmitool(sim.port, Some(cs), "admin", "Xyzzy9", &["chassis", "power", "off"]);
        assert_ne!(r.code, 0, "{}", r.text);
        assert!(r.text.contains("Unable to establish IPMI v2 / RMCP+ session"), "{}", r.text);
        assert!(sim.power(), "nothing may happen with a wrong password");
    }
    let r = ipmitool(sim.port, Some("17"), "nobody", "secret", &["chassis", "power", "status"]);
    assert_ne!(r.code, 0);
    assert!(sim.bmc_log().contains("unknown user \"nobody\" (status 0x0D)"));
    // the operator may not ask for administrator, and may control power as operator
    let r = ipmitool(sim.port, Some("17"), "oper", "opsecret", &["chassis", "power", "status"]);
    assert_ne!(r.code, 0, "{}", r.text);
    let r = ipmitool(sim.port, Some("17"), "oper", "opsecret", &["-L", "OPERATOR", "chassis", "power", "off"]);
    assert_eq!(r.code, 0, "{}", r.text);
    assert!(!sim.power());
    // user level is not enough for Chassis Control
    let r = ipmitool(sim.port, Some("17"), "oper", "opsecret", &["-L", "USER", "chassis", "power", "on"]);
    assert_ne!(r.code, 0, "{}", r.text);
    assert!(r.text.contains("Insufficient privilege level"), "{}", r.text);
    assert!(!sim.power());
}

#[test]
fn a_simulator_without_suite_17_refuses_it_like_ipmi_sim_and_ipmitool_falls_back() {
    let sim = Sim17::start(&["--suites", "3"]);
    let r = ipmitool(sim.port, Some("17"), "admin", "secret", &["chassis", "power", "status"]);
    assert_ne!(r.code, 0);
    assert!(r.text.contains("invalid authentication algorithm"), "{}", r.text);
    let r = ipmitool(sim.port, None, "admin", "secret", &["-vv", "chassis", "power", "status"]);
    assert!(r.text.contains("Using best available cipher suite 3") && r.text.contains("Chassis Power is on"), "{}", r.text);
}

#[test]
fn fence_ipmilan_fences_through_the_simulator() {
    let sim = Sim17::start(&[]);
    let r = fence_ipmilan(sim.port, "cipher=17\naction=status\n");
    assert_eq!(r.code, 0, "{}", r.text);
    assert!(r.text.contains("Status: ON"), "{}", r.text);
    // no cipher: ipmitool negotiates (17)
    let r = fence_ipmilan(sim.port, "power_wait=1\naction=reboot\n");
    assert_eq!(r.code, 0, "{}", r.text);
    assert!(sim.power());
    assert!(sim.chassis_log().ends_with(&["set power 0".to_string(), "set power 1".to_string()]), "{:?}", sim.chassis_log());
    let r = fence_ipmilan(sim.port, "cipher=17\naction=off\npower_wait=1\n");
    assert_eq!(r.code, 0, "{}", r.text);
    assert!(!sim.power());
    let r = fence_ipmilan(sim.port, "cipher=17\naction=status\n");
    assert_eq!(r.code, 2, "{}", r.text);
    let wrong = {
        use std::io::Write;
        let mut c = Command::new("fence_ipmilan").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let input = format!("ipaddr=127.0.0.1\nipport={}\nlogin=admin\npasswd=nope\nlanplus=1\ncipher=17\naction=status\n", sim.port);
        c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        c.wait_with_output().unwrap()
    };
    assert_eq!(wrong.status.code(), Some(1));
}

// ---- twonode's native driver ----

#[test]
fn driver_negotiates_17_and_honours_cipher_exactly() {
    let sim = Sim17::start(&[]);
    let mut dev = IpmiDevice::new(cfg(sim.port, None, "secret")).unwrap();
    assert_eq!(dev.status().unwrap(), PowerState::On);
    assert_eq!(dev.suite_used(), Some((17, true)));
    assert!(dev.describe().contains("cipher 17 (negotiated)"), "{}", dev.describe());
    dev.power_off().unwrap();
    assert!(!sim.power());
    assert_eq!(dev.status().unwrap(), PowerState::Off);
    dev.power_on().unwrap();
    assert!(sim.power());
    dev.close().unwrap();
    for cs in [3u8, 17] {
        let mut dev = IpmiDevice::new(cfg(sim.port, Some(cs), "secret")).unwrap();
        dev.power_off().unwrap();
        assert!(!sim.power());
        assert_eq!(dev.status().unwrap(), PowerState::Off);
        dev.power_cycle().unwrap_err(); // off: 0xD5, as many real BMCs
        dev.power_on().unwrap();
        assert_eq!(dev.status().unwrap(), PowerState::On);
        assert_eq!(dev.suite_used(), Some((cs, false)));
        dev.close().unwrap();
    }
    // and ipmitool sees the state twonode left
    assert!(ipmitool(sim.port, Some("17"), "admin", "secret", &["chassis", "power", "status"]).text.contains("is on"));
    // every session opened was closed: 20 more runs do not exhaust the 16-entry session table
    // (dropping the device sends Close Session without waiting for the answer)
    for i in 0..20 {
        let mut dev = IpmiDevice::new(cfg(sim.port, Some(17), "secret")).unwrap();
        assert_eq!(dev.status().unwrap_or_else(|e| panic!("round {i}: {e}")), PowerState::On);
    }
    let start = Instant::now();
    loop {
        let log = sim.bmc_log();
        if log.matches(" active: ").count() == log.matches(" closed").count() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(2), "sessions left open:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn driver_wrong_password_unknown_user_and_privilege_are_auth_errors() {
    let sim = Sim17::start(&[]);
    for cs in [None, Some(3), Some(17)] {
        let mut dev = IpmiDevice::new(cfg(sim.port, cs, "Xyzzy9")).unwrap();
        let e = dev.power_off().unwrap_err();
        assert!(matches!(e, PowerError::Auth(ref m) if m.contains("wrong password")), "{cs:?}: {e}");
        assert!(!e.to_string().contains("Xyzzy9"));
    }
    assert!(sim.power());
    // the driver tells the BMC (RAKP 3 with status 0x0F) instead of leaving the session half open
    assert!(sim.bmc_log().contains("abandoned by the console (RAKP 3 status 0x0F"), "{}", sim.bmc_log());
    let mut c = cfg(sim.port, Some(17), "secret");
    c.username = "nobody".into();
    let e = IpmiDevice::new(c).unwrap().status().unwrap_err();
    assert!(matches!(e, PowerError::Auth(ref m) if m.contains("user name")), "{e}");
    let mut c = cfg(sim.port, Some(17), "opsecret");
    c.username = "oper".into();
    let e = IpmiDevice::new(c.clone()).unwrap().status().unwrap_err();
    assert!(matches!(e, PowerError::Auth(ref m) if m.contains("privilege")), "{e}");
    c.privilege = Privilege::Operator;
    let mut dev = IpmiDevice::new(c.clone()).unwrap();
    dev.power_off().unwrap();
    assert!(!sim.power());
    c.privilege = Privilege::User;
    let e = IpmiDevice::new(c).unwrap().power_on().unwrap_err();
    assert!(matches!(e, PowerError::Auth(ref m) if m.contains("0xD4")), "{e}");
}

#[test]
fn driver_against_a_bmc_without_17_falls_back_unless_17_is_required() {
    let sim = Sim17::start(&["--suites", "3"]);
    let mut dev = IpmiDevice::new(cfg(sim.port, None, "secret")).unwrap();
    assert_eq!(dev.status().unwrap(), PowerState::On);
    assert_eq!(dev.suite_used(), Some((3, true)));
    let e = IpmiDevice::new(cfg(sim.port, Some(17), "secret")).unwrap().status().unwrap_err();
    assert!(matches!(e, PowerError::Protocol(ref m) if m.contains("refused cipher suite 17") && m.contains("0x04")), "{e}");
}

#[test]
fn driver_against_ipmi_sim_falls_back_to_3_quickly() {
    let sim = IpmiSim::start();
    let start = Instant::now();
    let mut dev = IpmiDevice::new(cfg(sim.port, None, "secret")).unwrap();
    assert_eq!(dev.status().unwrap(), PowerState::On);
    assert_eq!(dev.suite_used(), Some((3, true)));
    dev.power_off().unwrap();
    assert!(!sim.power());
    dev.power_on().unwrap();
    dev.close().unwrap();
    // ipmitool spends ~10 s here (ipmi_sim ignores its IPMI 2.0 form of Get Channel Cipher Suites)
    assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
    let e = IpmiDevice::new(cfg(sim.port, Some(17), "secret")).unwrap().status().unwrap_err();
    assert!(matches!(e, PowerError::Protocol(ref m) if m.contains("refused cipher suite 17")), "{e}");
    let e = IpmiDevice::new(cfg(sim.port, None, "Xyzzy9")).unwrap().status().unwrap_err();
    assert!(matches!(e, PowerError::Auth(_)), "{e}");
}

#[test]
fn cli_fences_through_suite_17_with_exit_codes() {
    let sim = Sim17::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = conf(dir.path(), sim.port, "");
    let audit = dir.path().join("audit.log").display().to_string();
    let fence = |action: &str, extra: &[&str]| {
        let mut a = vec!["fence", "node2", "--action", action, "--file", &file, "--audit-log", &audit];
        a.extend_from_slice(extra);
        twonode(&a, None)
    };
    let r = fence("status", &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = fence("reboot", &["--yes", "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(sim.power());
    assert!(sim.chassis_log().ends_with(&["set power 0".to_string(), "set power 1".to_string()]));
    assert!(r.stdout.contains("cipher 17 (negotiated)") || sim.bmc_log().contains("cipher suite 17"), "{}", r.stdout);
    let r = fence("off", &["--yes"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(fence("status", &[]).code, 2);
    // ignore_on: off confirmed, power-on failed = exit 8
    sim.fault("ignore_on", "");
    sim.set_power(true);
    let slow = conf(dir.path(), sim.port, "cipher=\"17\" power_timeout=\"3\"");
    let r = twonode(&["fence", "node2", "--action", "reboot", "--yes", "--file", &slow, "--audit-log", &audit], None);
    assert_eq!(r.code, 8, "{}{}", r.stdout, r.stderr);
    assert!(!sim.power());
    std::fs::remove_file(sim.dir.path().join("ignore_on")).unwrap();
    // wrong password: exit 3, and the password is not shown
    let bad = write_conf(dir.path(), &std::fs::read_to_string(&file).unwrap().replace("passwd=\"secret\"", "passwd=\"Xyzzy9\""));
    let r = twonode(&["fence", "node2", "--action", "status", "--file", &bad], None);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("authentication failed") && !r.stderr.contains("Xyzzy9"), "{}", r.stderr);
    // a BMC that stopped answering
    let good = write_conf(dir.path(), &std::fs::read_to_string(&bad).unwrap().replace("passwd=\"Xyzzy9\"", "passwd=\"secret\""));
    sim.fault("hang", "");
    let r = twonode(&["fence", "node2", "--action", "status", "--file", &good], None);
    assert!(r.code == 4 || r.code == 5, "{}{}", r.stdout, r.stderr);
}

#[test]
fn agent_mode_with_cipher_17_and_without() {
    let sim = Sim17::start(&[]);
    let base = format!("ipaddr=127.0.0.1\nipport={}\nlogin=admin\npasswd=secret\npower_wait=0\n", sim.port);
    for extra in ["cipher=17\n", "cipher=3\n", ""] {
        let r = twonode(&["fence", "agent"], Some(&format!("{base}{extra}action=status\n")));
        assert_eq!((r.code, r.stdout.trim()), (0, "Status: ON"), "{extra}: {}", r.stderr);
    }
    let r = twonode(&["fence", "agent"], Some(&format!("{base}cipher=17\naction=off\n")));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!sim.power());
}

#[test]
fn the_simulator_applies_delay_s_late() {
    let sim = Sim17::start(&["--off"]);
    assert!(!sim.power());
    sim.fault("delay_s", "1");
    let mut dev = IpmiDevice::new(cfg(sim.port, Some(17), "secret")).unwrap();
    dev.power_on().unwrap();
    assert_eq!(dev.status().unwrap(), PowerState::Off, "applied late");
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(dev.status().unwrap(), PowerState::On);
}

#[test]
fn connect_raises_the_privilege_level_that_fencing_needs() {
    // `fence test` calls connect(): it must prove Set Session Privilege works, not only the login
    let sim = Sim17::start(&[]);
    let mut dev = IpmiDevice::new(cfg(sim.port, Some(17), "secret")).unwrap();
    assert_eq!(dev.status().unwrap(), PowerState::On);
    assert!(!sim.bmc_log().contains("privilege level"), "a status read needs no Set Session Privilege");
    dev.close().unwrap();
    let mut dev = IpmiDevice::new(cfg(sim.port, Some(17), "secret")).unwrap();
    dev.connect().unwrap();
    assert!(sim.bmc_log().contains("privilege level 4"), "{}", sim.bmc_log());
    assert_eq!(dev.status().unwrap(), PowerState::On);
    dev.close().unwrap();
    let mut c = cfg(sim.port, Some(17), "opsecret");
    c.username = "oper".into();
    c.privilege = Privilege::Operator;
    let mut dev = IpmiDevice::new(c).unwrap();
    dev.connect().unwrap();
    assert!(sim.bmc_log().contains("privilege level 3"), "{}", sim.bmc_log());
    dev.power_off().unwrap();
    assert!(!sim.power());
}
