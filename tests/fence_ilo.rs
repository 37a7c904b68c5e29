//! The RIBCL driver against the iLO simulator, per firmware profile, and the real fence_ilo
//! (Debian fence-agents, via gnutls-cli) against the same simulator to check its faithfulness.
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use twonode::fence::power::{PowerDevice, PowerError, PowerState};
use twonode::fence::ribcl::RibclDevice;
use twonode::lab::ilo_sim::{IloSim, IloSimConfig, Profile, SimUser};

const ALL: [Profile; 5] = [Profile::Ilo, Profile::Ilo2Old, Profile::Ilo2, Profile::Ilo3, Profile::Ilo4];

fn sim(profile: Profile) -> (IloSim, tempfile::TempDir) {
    sim_with(profile, |_| {})
}

fn sim_with(profile: Profile, f: impl FnOnce(&mut IloSimConfig)) -> (IloSim, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = IloSimConfig::new(profile, dir.path());
    f(&mut cfg);
    (IloSim::start(cfg).expect("start simulator"), dir)
}

fn params(port: u16, login: &str, password: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut p = BTreeMap::new();
    p.insert("ipaddr".into(), "127.0.0.1".into());
    p.insert("ipport".into(), port.to_string());
    p.insert("login".into(), login.into());
    p.insert("passwd".into(), password.into());
    p.insert("ssl_insecure".into(), "1".into());
    p.insert("login_timeout".into(), "3".into());
    for (k, v) in extra {
        p.insert(k.to_string(), v.to_string());
    }
    p
}

fn device(s: &IloSim) -> RibclDevice {
    RibclDevice::from_params(&params(s.port(), "admin", "secret", &[])).expect("params")
}

/// Power lines (CMD ... -> ...) the simulator logged.
fn power_cmds(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.starts_with("CMD ") && !l.contains("GET_"))
        .map(|l| l.to_string())
        .collect()
}

#[test]
fn driver_status_off_on_per_profile() {
    for profile in ALL {
        let (s, _d) = sim(profile);
        let mut dev = device(&s);
        assert_eq!(dev.status().unwrap(), PowerState::On, "{profile:?}");
        dev.power_off().unwrap_or_else(|e| panic!("{profile:?} off: {e}"));
        assert!(!s.power_on(), "{profile:?}: the simulated machine must be off");
        assert_eq!(dev.status().unwrap(), PowerState::Off);
        // Off again: must not toggle the machine back on (iLO2 toggles!).
        dev.power_off().unwrap();
        assert!(!s.power_on(), "{profile:?}: a second off must not power on");
        dev.power_on().unwrap();
        assert!(s.power_on(), "{profile:?}: on");
        dev.power_on().unwrap();
        assert!(s.power_on(), "{profile:?}: a second on must not power off");
        let fw = dev.firmware().expect("discovered").clone();
        let cmds = power_cmds(&s.log()).join("\n");
        match profile {
            Profile::Ilo => {
                assert_eq!(fw.processor.as_deref(), Some("iLO"));
                assert!(cmds.contains("SET_HOST_POWER HOST_POWER=off: on -> off"), "{cmds}");
                assert!(cmds.contains("SET_HOST_POWER HOST_POWER=on: off -> on"), "{cmds}");
            }
            Profile::Ilo2Old => {
                assert_eq!(fw.firmware_version.as_deref(), Some("1.29"));
                assert!(cmds.contains("HOLD_PWR_BTN (toggles on iLO2 <= 1.29): on -> off"), "{cmds}");
                assert!(cmds.contains("HOLD_PWR_BTN (toggles on iLO2 <= 1.29): off -> on"), "{cmds}");
            }
            Profile::Ilo2 => {
                assert!(cmds.contains("HOLD_PWR_BTN TOGGLE=yes: on -> off"), "{cmds}");
                assert!(cmds.contains("HOLD_PWR_BTN TOGGLE=yes: off -> on"), "{cmds}");
                assert_eq!(cmds.matches("TOGGLE=yes").count(), 2, "exactly one toggle per change: {cmds}");
            }
            Profile::Ilo3 | Profile::Ilo4 => {
                assert!(fw.http, "{profile:?} must be detected as HTTP");
                assert!(s.log().contains("CONN http POST /ribcl"));
                assert!(cmds.contains("CMD HOLD_PWR_BTN: on -> off"), "{cmds}");
                assert!(cmds.contains("CMD PRESS_PWR_BTN: off -> on"), "{cmds}");
                assert!(!cmds.contains("ACPI"), "on must never press the button of a running machine: {cmds}");
            }
        }
        if !matches!(profile, Profile::Ilo3 | Profile::Ilo4) {
            assert!(!fw.http, "{profile:?} is raw");
        }
        assert!(dev.describe().contains("fw"), "{}", dev.describe());
    }
}

#[test]
fn wrong_password_unknown_user_and_missing_privilege_are_auth() {
    let (s, _d) = sim_with(Profile::Ilo4, |c| {
        c.users.push(SimUser { login: "viewer".into(), password: "look".into(), can_reset: false })
    });
    let mut dev = RibclDevice::from_params(&params(s.port(), "admin", "wrong", &[])).unwrap();
    match dev.status() {
        Err(PowerError::Auth(m)) => {
            assert!(m.contains("0x005F") && m.contains("admin"), "{m}");
            assert!(!m.contains("wrong"), "no password in messages: {m}");
        }
        other => panic!("expected Auth, got {other:?}"),
    }
    let mut viewer = RibclDevice::from_params(&params(s.port(), "viewer", "look", &[])).unwrap();
    assert_eq!(viewer.status().unwrap(), PowerState::On);
    match viewer.power_off() {
        Err(PowerError::Auth(m)) => assert!(m.contains("0x0023"), "{m}"),
        other => panic!("expected Auth (privilege), got {other:?}"),
    }
    assert!(s.power_on(), "nothing switched");
    // First-generation iLO reports an unknown user as 0x000A.
    let (s1, _d1) = sim(Profile::Ilo);
    let mut nobody = RibclDevice::from_params(&params(s1.port(), "nobody", "x", &[])).unwrap();
    match nobody.status() {
        Err(PowerError::Auth(m)) => assert!(m.contains("0x000A"), "{m}"),
        other => panic!("expected Auth, got {other:?}"),
    }
}

#[test]
fn dead_port_is_unreachable_fast() {
    // A socket bound but never listening holds the port for the whole test (a closed listener's
    // port could be taken by a simulator of a test running beside this one): connects are refused.
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = held.local_addr().unwrap().port();
    let mut dev = RibclDevice::from_params(&params(port, "admin", "secret", &[])).unwrap();
    let t = Instant::now();
    match dev.status() {
        Err(PowerError::Unreachable(m)) => assert!(m.contains("refused"), "{m}"),
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(1), "took {:?}", t.elapsed());
}

#[test]
fn silent_peer_times_out_within_login_timeout() {
    // Accepts TCP but never speaks TLS: like an iLO whose web server hangs.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let _keep = std::thread::spawn(move || {
        let _conns: Vec<_> = l.incoming().take(4).collect();
        std::thread::sleep(Duration::from_secs(10));
    });
    let mut dev = RibclDevice::from_params(&params(port, "admin", "secret", &[("login_timeout", "1")])).unwrap();
    let t = Instant::now();
    let r = dev.status();
    assert!(matches!(r, Err(PowerError::Timeout(_))), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(4), "took {:?}", t.elapsed());
    // The hang fault of the simulator: TLS up, RIBCL never answered.
    let (s, _d) = sim(Profile::Ilo2);
    s.set_fault("hang", Some("")).unwrap();
    let mut dev = RibclDevice::from_params(&params(s.port(), "admin", "secret", &[("login_timeout", "1")])).unwrap();
    let r = dev.status();
    assert!(matches!(r, Err(PowerError::Timeout(_))), "{r:?}");
}

#[test]
fn certificate_checked_by_default() {
    let (s, d) = sim(Profile::Ilo3);
    let mut p = params(s.port(), "admin", "secret", &[]);
    p.remove("ssl_insecure");
    let mut dev = RibclDevice::from_params(&p).unwrap();
    match dev.status() {
        Err(PowerError::Protocol(m)) => assert!(m.contains("not trusted") && m.contains("ssl_insecure"), "{m}"),
        other => panic!("expected a certificate error, got {other:?}"),
    }
    assert!(!s.log().contains("LOGIN"), "no credentials may be sent to an untrusted peer");
    // The simulator's own certificate as CA: verified, works.
    p.insert("ssl_ca".into(), d.path().join("cert.pem").display().to_string());
    let mut dev = RibclDevice::from_params(&p).unwrap();
    assert_eq!(dev.status().unwrap(), PowerState::On);
    p.insert("ssl_ca".into(), "/nonexistent/ca.pem".into());
    assert!(matches!(RibclDevice::from_params(&p), Err(PowerError::Config(_))));
}

#[test]
fn special_character_passwords() {
    let pw = ["a&b", "q\"uote", "ap'os", "lt<gt", "both'\"q", "amp&amp;lit"];
    for profile in [Profile::Ilo2, Profile::Ilo4] {
        let (s, _d) = sim_with(profile, |c| {
            c.users = pw
                .iter()
                .enumerate()
                .map(|(i, p)| SimUser { login: format!("u{i}"), password: p.to_string(), can_reset: true })
                .collect()
        });
        // Verbatim-safe passwords work on every firmware.
        for (i, p) in pw.iter().enumerate() {
            if p.contains('<') || (p.contains('"') && p.contains('\'')) {
                continue;
            }
            let mut dev = RibclDevice::from_params(&params(s.port(), &format!("u{i}"), p, &[])).unwrap();
            assert_eq!(dev.status().unwrap_or_else(|e| panic!("{profile:?} {p:?}: {e}")), PowerState::On);
        }
        // What verbatim cannot carry is refused before anything is sent.
        let before = s.log();
        for i in [3, 4] {
            match RibclDevice::from_params(&params(s.port(), &format!("u{i}"), pw[i], &[])) {
                Err(PowerError::Config(m)) => {
                    assert!(m.contains("ribcl_escape=standard"), "{m}");
                    assert!(!m.contains(pw[i]), "no password in messages: {m}");
                }
                other => panic!("expected refusal, got {other:?}"),
            }
        }
        assert_eq!(before, s.log(), "nothing may reach the device");
        // With entity processing: works where the firmware supports it (iLO4), fails clearly elsewhere.
        for i in [3, 4, 0] {
            let mut dev =
                RibclDevice::from_params(&params(s.port(), &format!("u{i}"), pw[i], &[("ribcl_escape", "standard")]))
                    .unwrap();
            match (profile, dev.status()) {
                (Profile::Ilo4, r) => assert_eq!(r.unwrap(), PowerState::On),
                (_, Err(PowerError::Auth(m))) => assert!(m.contains("entity-processing"), "{m}"),
                (_, other) => panic!("{profile:?}: expected Auth, got {other:?}"),
            }
        }
    }
}

#[test]
fn faults_wrong_firmware_ignore_off_and_delay() {
    let (s, _d) = sim(Profile::Ilo4);
    s.set_fault("wrong_fw", Some("x.yz")).unwrap();
    let mut dev = device(&s);
    match dev.status() {
        Err(PowerError::Protocol(m)) => assert!(m.contains("FIRMWARE_VERSION"), "{m}"),
        other => panic!("expected Protocol, got {other:?}"),
    }
    s.set_fault("wrong_fw", Some("missing")).unwrap();
    assert!(matches!(device(&s).status(), Err(PowerError::Protocol(_))));
    s.set_fault("wrong_fw", None).unwrap();

    s.set_fault("ignore_off", Some("")).unwrap();
    let mut dev = device(&s);
    dev.power_off().unwrap(); // accepted...
    assert_eq!(dev.status().unwrap(), PowerState::On, "...but ignored: the engine must verify");
    s.set_fault("ignore_off", None).unwrap();

    s.set_fault("delay_s", Some("0.5")).unwrap();
    dev.power_off().unwrap();
    assert_eq!(dev.status().unwrap(), PowerState::On, "not yet");
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(dev.status().unwrap(), PowerState::Off);
}

#[test]
fn forced_transport_and_ribcl_version() {
    let (s, _d) = sim(Profile::Ilo4);
    // Raw transport also works on iLO4; forcing RIBCL 2.0 selects SET_HOST_POWER like fence_ilo -r.
    let mut dev =
        RibclDevice::from_params(&params(s.port(), "admin", "secret", &[("ribcl_transport", "raw"), ("ribcl", "2.0")]))
            .unwrap();
    dev.power_off().unwrap();
    assert!(!s.power_on());
    assert!(power_cmds(&s.log()).join("\n").contains("SET_HOST_POWER HOST_POWER=off"));
    assert!(!s.log().contains("CONN http"));
    // An HTTP-only iLO3 refuses the raw stream: the driver reports it clearly.
    let (h, _d2) = sim_with(Profile::Ilo3, |c| c.spec.raw = false);
    let mut dev = RibclDevice::from_params(&params(h.port(), "admin", "secret", &[("ribcl_transport", "raw")])).unwrap();
    assert!(matches!(dev.status(), Err(PowerError::Protocol(_))));
    let mut auto = device(&h);
    assert_eq!(auto.status().unwrap(), PowerState::On);
}

#[test]
fn password_from_passwd_script() {
    let (s, d) = sim(Profile::Ilo4);
    let file = d.path().join("pw");
    std::fs::write(&file, "secret\nsecond line ignored\n").unwrap();
    let mut p = params(s.port(), "admin", "", &[]);
    p.remove("passwd");
    p.insert("passwd_script".into(), format!("cat {}", file.display()));
    assert_eq!(RibclDevice::from_params(&p).unwrap().status().unwrap(), PowerState::On);
    p.insert("passwd_script".into(), "exit 3".into());
    assert!(matches!(RibclDevice::from_params(&p), Err(PowerError::Config(_))));
    p.remove("passwd_script");
    assert!(matches!(RibclDevice::from_params(&p), Err(PowerError::Config(_))));
}

#[test]
fn ribcl_1x_device_without_get_fw_version() {
    // A first-generation iLO speaking RIBCL 1.30: no GET_FW_VERSION, SET_HOST_POWER.
    let (s, _d) = sim_with(Profile::Ilo, |c| c.spec.ribcl = "1.30".into());
    let mut dev = device(&s);
    assert_eq!(dev.status().unwrap(), PowerState::On);
    dev.power_off().unwrap();
    assert!(!s.power_on());
    assert!(!s.log().contains("GET_FW_VERSION"), "{}", s.log());
    let fw = dev.firmware().unwrap();
    assert_eq!((fw.ribcl_version.as_str(), fw.firmware_version.as_deref()), ("1.30", None));
    if fence_ilo_available() {
        let (rc, out) = fence_ilo(s.port(), "admin", "secret", "on");
        assert_eq!(rc, 0, "{out}");
        assert!(s.power_on());
        assert!(power_cmds(&s.log()).last().unwrap().contains("SET_HOST_POWER HOST_POWER=on"));
    }
}

// ----- the real fence_ilo against the simulator ------------------------------------------------

fn fence_ilo_available() -> bool {
    let ok = std::path::Path::new("/usr/sbin/fence_ilo").exists()
        && Command::new("gnutls-cli").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    if !ok {
        eprintln!("SKIPPED: fence_ilo (fence-agents) or gnutls-cli (gnutls-bin) missing; run scripts/install-deps");
    }
    ok
}

/// Run fence_ilo with key=value on stdin (no password in argv); returns (exit code, output).
fn fence_ilo(port: u16, login: &str, password: &str, action: &str) -> (i32, String) {
    let mut child = Command::new("/usr/sbin/fence_ilo")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fence_ilo");
    let input = format!(
        "action={action}\nipaddr=127.0.0.1\nipport={port}\nlogin={login}\npasswd={password}\nssl_insecure=1\nlogin_timeout=5\npower_timeout=10\n"
    );
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn real_fence_ilo_against_simulator_per_profile() {
    if !fence_ilo_available() {
        return;
    }
    let threads: Vec<_> = ALL
        .into_iter()
        .map(|profile| {
            std::thread::spawn(move || {
                let (s, _d) = sim(profile);
                let (rc, out) = fence_ilo(s.port(), "admin", "secret", "status");
                assert_eq!((rc, out.contains("Status: ON")), (0, true), "{profile:?} status: {out}");
                let (rc, out) = fence_ilo(s.port(), "admin", "secret", "off");
                assert_eq!(rc, 0, "{profile:?} off: {out}");
                assert!(out.contains("Success: Powered OFF"), "{out}");
                assert!(!s.power_on());
                let (rc, out) = fence_ilo(s.port(), "admin", "secret", "status");
                assert_eq!((rc, out.contains("Status: OFF")), (2, true), "{profile:?}: {out}");
                let (rc, out) = fence_ilo(s.port(), "admin", "secret", "on");
                assert_eq!(rc, 0, "{profile:?} on: {out}");
                assert!(s.power_on());
                let fence_ilo_cmds = power_cmds(&s.log());
                let (rc, out) = fence_ilo(s.port(), "admin", "secret", "reboot");
                assert_eq!((rc, out.contains("Success: Rebooted")), (0, true), "{profile:?} reboot: {out}");
                assert!(s.power_on());
                assert!(power_cmds(&s.log()).len() >= fence_ilo_cmds.len() + 2, "reboot = off + on");
                // Same profile, same actions with twonode's driver: the same power commands.
                let (t, _d2) = sim(profile);
                let mut dev = device(&t);
                dev.power_off().unwrap();
                dev.power_on().unwrap();
                assert_eq!(power_cmds(&t.log()), fence_ilo_cmds, "{profile:?}: twonode and fence_ilo differ");
                let (rc, out) = fence_ilo(s.port(), "admin", "wrong", "status");
                assert_eq!(rc, 1, "{profile:?} wrong password: {out}");
                assert!(out.contains("Unable to connect/login"), "{out}");
            })
        })
        .collect();
    for t in threads {
        t.join().expect("profile thread");
    }
}

#[test]
fn real_fence_ilo_with_special_character_passwords() {
    if !fence_ilo_available() {
        return;
    }
    let (s, _d) = sim_with(Profile::Ilo2, |c| {
        c.users = vec![
            SimUser { login: "dq".into(), password: "q\"uote".into(), can_reset: true },
            SimUser { login: "amp".into(), password: "a&b".into(), can_reset: true },
        ]
    });
    // quoteattr() puts a password with " between single quotes: iLO reads it verbatim: works.
    let (rc, out) = fence_ilo(s.port(), "dq", "q\"uote", "status");
    assert_eq!(rc, 0, "{out}");
    // quoteattr() escapes & as &amp;, which iLO does not decode: fence_ilo cannot log in,
    // twonode (verbatim) can.
    let (rc, out) = fence_ilo(s.port(), "amp", "a&b", "status");
    assert_eq!(rc, 1, "{out}");
    let mut dev = RibclDevice::from_params(&params(s.port(), "amp", "a&b", &[])).unwrap();
    assert_eq!(dev.status().unwrap(), PowerState::On);
}

// ----- the CLI: `twonode lab ilo-sim` and `twonode lab power` ----------------------------------

struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn cli_ilo_sim_and_lab_power() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, "admin:s3cr&t\n").unwrap();
    let state = dir.path().join("state");
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_twonode"))
            .args(["lab", "ilo-sim", "--profile", "ilo3", "--port", "0", "--off", "--state-dir"])
            .arg(&state)
            .arg("--users-file")
            .arg(&users)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port: u16 = line.rsplit(':').next().unwrap().trim().parse().unwrap_or_else(|_| panic!("{line}"));
    let run = |action: &str, pw: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_twonode"))
            .args(["lab", "power", "--driver", "ribcl", "--action", action])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let input = format!("ipaddr=127.0.0.1\nipport={port}\nlogin=admin\npasswd={pw}\nssl_insecure=1\n");
        c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let o = c.wait_with_output().unwrap();
        (o.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
    };
    assert_eq!(run("status", "s3cr&t").0, 2, "off → exit 2");
    let (rc, out) = run("reboot", "s3cr&t");
    assert_eq!(rc, 0, "{out}");
    assert_eq!(std::fs::read_to_string(state.join("power")).unwrap().trim(), "on");
    let (rc, out) = run("status", "nope");
    assert_eq!(rc, 3, "auth failure exit code: {out}");
    let o = Command::new(env!("CARGO_BIN_EXE_twonode"))
        .args(["lab", "power", "--driver", "ribcl", "--param", "passwd=x"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("never in argv"));
}

// ----- python-hpilo (PyPI) against the simulator: the HTTP transport and its detection -------

fn python_hpilo_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import hpilo"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: python-hpilo (PyPI) is not installed; run scripts/install-deps");
    }
    ok
}

const HPILO_SCRIPT: &str = r#"
import sys, ssl, hpilo
port, login = int(sys.argv[1]), sys.argv[2]
password = sys.stdin.readline().rstrip("\n")
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
ilo = hpilo.Ilo("127.0.0.1", login=login, password=password, port=port, ssl_context=ctx)
try:
    fw = ilo.get_fw_version()
except hpilo.IloLoginFailed as e:
    print("LOGIN_FAILED", e); sys.exit(3)
print("protocol", {1: "raw", 2: "http"}[ilo.protocol], fw["management_processor"], fw["firmware_version"])
print("power", ilo.get_host_power_status())
ilo.hold_pwr_btn()
print("after_hold", ilo.get_host_power_status())
ilo.press_pwr_btn()
print("after_press", ilo.get_host_power_status())
"#;

fn python_hpilo(port: u16, login: &str, password: &str) -> (i32, String) {
    let mut c = Command::new("python3")
        .args(["-c", HPILO_SCRIPT, &port.to_string(), login])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    c.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    (o.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

#[test]
fn real_python_hpilo_detects_transport_and_drives_power() {
    if !python_hpilo_available() {
        return;
    }
    for (profile, proto, hold_result) in [(Profile::Ilo2, "raw iLO2 2.29", "OFF"), (Profile::Ilo4, "http iLO4 2.55", "OFF")] {
        let (s, _d) = sim_with(profile, |c| {
            c.users = vec![SimUser { login: "admin".into(), password: "a&b".into(), can_reset: true }]
        });
        let (rc, out) = python_hpilo(s.port(), "admin", "a&b");
        assert_eq!(rc, 0, "{profile:?}: {out}");
        assert!(out.contains(&format!("protocol {proto}")), "{profile:?}: {out}");
        assert!(out.contains("power ON") && out.contains(&format!("after_hold {hold_result}")), "{out}");
        assert!(out.contains("after_press ON"), "{out}");
        let (rc, out) = python_hpilo(s.port(), "admin", "wrong");
        assert_eq!(rc, 3, "{profile:?} wrong password: {out}");
    }
}
