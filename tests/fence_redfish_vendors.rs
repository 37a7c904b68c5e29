//! The Redfish driver against the project's Redfish simulator, per vendor profile (iLO 5,
//! iDRAC 9, AMI, OpenBMC, sushy-like; shapes from public mockups, fixtures/redfish/SOURCES),
//! and the real fence_redfish against the same profiles as the independent client.
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use twonode::fence::power::{PowerDevice, PowerError, PowerState};
use twonode::fence::redfish::RedfishDevice;
use twonode::lab::redfish_sim::{Profile, RedfishSim, RedfishSimConfig};

const PROFILES: [Profile; 5] = [Profile::Ilo5, Profile::Idrac9, Profile::Ami, Profile::Openbmc, Profile::SushyLike];

fn sim(profile: Profile) -> RedfishSim {
    sim_with(profile, |_| {})
}

fn sim_with(profile: Profile, f: impl FnOnce(&mut RedfishSimConfig)) -> RedfishSim {
    let mut cfg = RedfishSimConfig::new(profile);
    cfg.task_delay = Duration::from_millis(400);
    f(&mut cfg);
    RedfishSim::start(cfg).expect("start the Redfish simulator")
}

fn params(port: u16, password: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut p = BTreeMap::new();
    p.insert("ipaddr".into(), "127.0.0.1".into());
    p.insert("ipport".into(), port.to_string());
    p.insert("login".into(), "admin".into());
    p.insert("passwd".into(), password.into());
    p.insert("ssl_insecure".into(), "1".into());
    p.insert("power_timeout".into(), "10".into());
    for (k, v) in extra {
        p.insert(k.to_string(), v.to_string());
    }
    p
}

fn device(s: &RedfishSim) -> RedfishDevice {
    RedfishDevice::from_params(&params(s.port(), "secret", &[])).unwrap()
}

fn wait_state(dev: &mut RedfishDevice, want: PowerState) {
    let t = Instant::now();
    while dev.status().unwrap() != want {
        assert!(t.elapsed() < Duration::from_secs(10), "not {want:?} after 10 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `twonode lab power --driver redfish` (parameters and password on stdin): (exit code, output).
fn lab_power(port: u16, password: &str, action: &str, extra: &str) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_twonode"))
        .args(["lab", "power", "--driver", "redfish", "--action", action, "--power-timeout", "10"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn twonode");
    let input = format!("ipaddr=127.0.0.1\nipport={port}\nlogin=admin\npasswd={password}\nssl_insecure=1\n{extra}");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn driver_status_off_on_reboot_per_profile() {
    for profile in PROFILES {
        let s = sim(profile);
        {
            let mut dev = device(&s);
            assert_eq!(dev.system_uri().unwrap(), s.system_uri(), "{profile:?}");
            assert_eq!(dev.status().unwrap(), PowerState::On, "{profile:?}");
            assert_eq!(dev.auth_kind(), if s.spec().sessions { "session" } else { "basic" }, "{profile:?}");
            let allowed = dev.allowed_reset_types().unwrap().expect("every profile lists its values");
            assert_eq!(allowed, s.spec().allowed, "{profile:?}: values discovered (inline or ActionInfo)");
            dev.power_off().unwrap_or_else(|e| panic!("{profile:?}: {e}\n{}", s.log()));
            wait_state(&mut dev, PowerState::Off);
            assert!(!s.power_on(), "{profile:?}: the simulator's machine is off");
            dev.power_on().unwrap();
            wait_state(&mut dev, PowerState::On);
            assert!(s.power_on(), "{profile:?}: the simulator's machine is on");
            assert!(dev.notes().is_empty(), "{profile:?}: {:?}", dev.notes());
        }
        assert_eq!(s.resets(), ["ForceOff", "On"], "{profile:?}");
        assert_eq!(s.open_sessions(), 0, "{profile:?}: the session was deleted\n{}", s.log());
        // reboot as the engine does it: off, confirmed, on, confirmed (not ForceRestart)
        let (rc, out) = lab_power(s.port(), "secret", "reboot", "");
        assert_eq!(rc, 0, "{profile:?}: {out}\n{}", s.log());
        assert!(out.contains("off and on confirmed"), "{out}");
        assert_eq!(s.resets(), ["ForceOff", "On", "ForceOff", "On"], "{profile:?}");
        assert!(s.power_on());
        let (rc, out) = lab_power(s.port(), "secret", "status", "");
        assert_eq!((rc, out.contains("Status: ON")), (0, true), "{out}");
        assert_eq!(s.open_sessions(), 0, "{profile:?}: every CLI run logged out\n{}", s.log());
        if s.spec().sessions {
            assert!(s.sessions_created() >= 3, "{profile:?}: sessions were used");
        } else {
            assert_eq!(s.sessions_created(), 0);
        }
    }
}

#[test]
fn cycle_on_request_uses_power_cycle_where_offered() {
    let s = sim(Profile::Idrac9);
    device(&s).power_cycle().unwrap();
    let s2 = sim(Profile::Ilo5);
    device(&s2).power_cycle().unwrap();
    assert_eq!((s.resets(), s2.resets()), (vec!["PowerCycle".to_string()], vec!["ForceRestart".to_string()]));
}

#[test]
fn disallowed_value_400_names_the_allowed_values() {
    // A firmware that lists ForceOff but refuses it.
    let s = sim_with(Profile::Ilo5, |c| c.refuse = vec!["ForceOff".into()]);
    let mut dev = device(&s);
    match dev.power_off() {
        Err(e @ PowerError::NotSupported(_)) => {
            let m = e.to_string();
            assert!(m.contains("HTTP 400") && m.contains("ForceOff") && m.contains("acceptable values: On, GracefulShutdown"), "{m}");
            assert_eq!(e.exit_code(), 6);
        }
        other => panic!("expected NotSupported, got {other:?}"),
    }
    assert!(s.power_on(), "nothing happened");
    drop(dev);
    assert_eq!(s.open_sessions(), 0, "logged out on error too");
    // A BMC that offers no power cut at all: GracefulShutdown, said so; never PushPowerButton.
    let s = sim_with(Profile::Openbmc, |c| c.spec.allowed = vec!["On".into(), "GracefulShutdown".into(), "PushPowerButton".into()]);
    let mut dev = device(&s);
    dev.power_off().unwrap();
    assert_eq!(s.resets(), ["GracefulShutdown"]);
    assert!(dev.notes()[0].contains("no ForceOff"), "{:?}", dev.notes());
    let s = sim_with(Profile::Openbmc, |c| c.spec.allowed = vec!["On".into(), "PushPowerButton".into()]);
    match device(&s).power_off() {
        Err(PowerError::NotSupported(m)) => assert!(m.contains("allows On, PushPowerButton"), "{m}"),
        other => panic!("expected NotSupported, got {other:?}"),
    }
    assert!(s.resets().is_empty() && s.power_on());
}

#[test]
fn accepted_202_task_is_polled_to_the_end() {
    let s = sim_with(Profile::Ami, |c| c.task_delay = Duration::from_millis(800));
    let mut dev = device(&s);
    let t = Instant::now();
    dev.power_off().unwrap();
    assert!(t.elapsed() >= Duration::from_millis(700), "returned before the task ended: {:?}", t.elapsed());
    assert!(!s.power_on(), "the task completed, the machine is off");
    assert!(s.log().contains("GET /redfish/v1/TaskService/Tasks/"), "{}", s.log());
    // A task ending in Exception is an error, and the session is still deleted.
    let s = sim_with(Profile::Ami, |c| c.task_fails = true);
    let mut dev = device(&s);
    match dev.power_off() {
        Err(PowerError::Protocol(m)) => assert!(m.contains("task Exception") || m.contains("Critical"), "{m}"),
        other => panic!("expected a task failure, got {other:?}"),
    }
    assert!(s.power_on());
    drop(dev);
    assert_eq!(s.open_sessions(), 0);
    // A task that outlives power_timeout: Timeout within the bound.
    let s = sim_with(Profile::Ami, |c| c.task_delay = Duration::from_secs(30));
    let mut dev = RedfishDevice::from_params(&params(s.port(), "secret", &[("power_timeout", "1")])).unwrap();
    let t = Instant::now();
    assert!(matches!(dev.power_off(), Err(PowerError::Timeout(_))));
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[test]
fn sessions_logout_and_basic_fallback() {
    let s = sim(Profile::Idrac9);
    {
        let mut dev = device(&s);
        dev.connect().unwrap();
        assert_eq!(dev.auth_kind(), "session");
        assert_eq!(s.open_sessions(), 1);
        dev.status().unwrap();
        assert_eq!(s.sessions_created(), 1, "one session for the device's whole life");
    }
    assert_eq!(s.open_sessions(), 0);
    assert!(s.log().contains("SESSION 1 closed"));
    // Login refused by policy: basic authentication.
    let s = sim_with(Profile::Ilo5, |c| c.sessions_refused = true);
    let mut dev = device(&s);
    assert_eq!(dev.status().unwrap(), PowerState::On);
    assert_eq!(dev.auth_kind(), "basic");
    dev.power_off().unwrap();
    assert!(!s.power_on());
}

#[test]
fn wrong_password_is_auth_exit_3() {
    for profile in [Profile::Ilo5, Profile::SushyLike] {
        let s = sim(profile);
        let mut dev = RedfishDevice::from_params(&params(s.port(), "wrong", &[])).unwrap();
        match dev.status() {
            Err(e @ PowerError::Auth(_)) => {
                assert!(e.to_string().contains("401") && !e.to_string().contains("wrong"), "{e}");
                assert_eq!(e.exit_code(), 3);
            }
            other => panic!("{profile:?}: expected Auth, got {other:?}"),
        }
        let (rc, out) = lab_power(s.port(), "wrong", "status", "");
        assert_eq!(rc, 3, "{profile:?}: {out}");
        assert!(!out.contains("wrong"));
        assert_eq!(s.open_sessions(), 0);
    }
}

#[test]
fn several_systems_need_systems_uri() {
    let s = sim_with(Profile::Openbmc, |c| c.extra_systems = 1);
    match device(&s).status() {
        Err(PowerError::Config(m)) => {
            assert!(m.contains("/redfish/v1/Systems/system, /redfish/v1/Systems/system-2") && m.contains("systems_uri"), "{m}")
        }
        other => panic!("expected Config, got {other:?}"),
    }
    let mut dev = RedfishDevice::from_params(&params(s.port(), "secret", &[("systems_uri", "/redfish/v1/Systems/system")])).unwrap();
    dev.power_off().unwrap();
    assert!(!s.power_on());
}

// ----- the real fence_redfish against the simulator ---------------------------------------------

fn fence_redfish_available() -> bool {
    let ok = std::path::Path::new("/usr/sbin/fence_redfish").exists();
    if !ok {
        eprintln!("SKIPPED: fence_redfish (fence-agents) missing; run scripts/install-deps");
    }
    ok
}

/// fence_redfish with key=value on stdin (the password never in argv): (exit code, output).
fn fence_redfish(port: u16, password: &str, action: &str, extra: &str) -> (i32, String) {
    let mut child = Command::new("/usr/sbin/fence_redfish")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fence_redfish");
    let input = format!(
        "action={action}\nip=127.0.0.1\nipport={port}\nusername=admin\npassword={password}\nssl_insecure=1\npower_timeout=10\n{extra}"
    );
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn real_fence_redfish_against_every_profile() {
    if !fence_redfish_available() {
        return;
    }
    for profile in PROFILES {
        let s = sim(profile);
        let (rc, out) = fence_redfish(s.port(), "secret", "status", "");
        assert_eq!((rc, out.contains("Status: ON")), (0, true), "{profile:?}: {out}");
        let (rc, out) = fence_redfish(s.port(), "secret", "off", "");
        assert_eq!(rc, 0, "{profile:?}: {out}\n{}", s.log());
        assert!(!s.power_on(), "{profile:?}");
        // twonode reads the state fence_redfish left, and the other way round
        assert_eq!(device(&s).status().unwrap(), PowerState::Off);
        let (rc, out) = fence_redfish(s.port(), "secret", "status", "");
        assert_eq!(rc, 2, "{profile:?}: {out}");
        let (rc, out) = fence_redfish(s.port(), "secret", "on", "");
        assert_eq!(rc, 0, "{profile:?}: {out}");
        assert!(s.power_on(), "{profile:?}");
        assert_eq!(s.resets(), ["ForceOff", "On"], "{profile:?}: fence_redfish sent what twonode sends");
        let (rc, out) = fence_redfish(s.port(), "secret", "status", "");
        assert_eq!(rc, 0, "{profile:?}: {out}");
        // fence_redfish uses basic authentication only: no session left behind
        assert_eq!(s.open_sessions(), 0);
        let (rc, out) = fence_redfish(s.port(), "wrong", "status", "");
        assert_ne!(rc, 0, "{profile:?}: fence_redfish with a wrong password: {out}");
    }
    // Several systems: fence_redfish takes the last one silently; with systems_uri it is exact.
    let s = sim_with(Profile::Idrac9, |c| c.extra_systems = 1);
    let (rc, out) = fence_redfish(s.port(), "secret", "off", "systems_uri=/redfish/v1/Systems/System.Embedded.1\n");
    assert_eq!(rc, 0, "{out}");
    assert!(!s.power_on());
}

#[test]
fn ilo_refuses_pointless_resets_and_the_driver_reads_the_state() {
    let s = sim(Profile::Ilo5);
    s.set_power(false);
    let mut dev = device(&s);
    // ForceOff on a machine already off: iLO answers 400 InvalidOperationForSystemState; the
    // state wanted is there, so the off is done.
    dev.power_off().unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert!(s.log().contains("ForceOff refused (400, power is off)"), "{}", s.log());
    assert!(s.resets().is_empty() && !s.power_on());
    // A cycle of a machine that is off stays an error, with iLO's message id and argument.
    match dev.power_cycle() {
        Err(PowerError::NotSupported(m)) => assert!(m.contains("InvalidOperationForSystemState (Power is off)"), "{m}"),
        other => panic!("expected NotSupported, got {other:?}"),
    }
    dev.power_on().unwrap();
    assert!(s.power_on());
    dev.power_on().unwrap();
    assert_eq!(s.resets(), ["On"], "the second On was refused by the BMC and found moot");
}

/// A cluster.conf whose node2 is fenced by fence_redfish at the simulator (twonode's native
/// Redfish driver under the real engine).
fn conf_for(dir: &std::path::Path, port: u16) -> String {
    let text = format!(
        r#"<?xml version="1.0"?>
<cluster name="rfclu" config_version="1">
  <cman two_node="1" expected_votes="1"/>
  <clusternodes>
    <clusternode name="node1" nodeid="1"><fence><method name="bmc"><device name="bmc1"/></method></fence></clusternode>
    <clusternode name="node2" nodeid="2"><fence><method name="bmc"><device name="bmc2"/></method></fence></clusternode>
  </clusternodes>
  <fencedevices>
    <fencedevice name="bmc1" agent="fence_redfish" ipaddr="127.0.0.1" ipport="{port}" login="admin" passwd="secret" ssl_insecure="1" delay="1"/>
    <fencedevice name="bmc2" agent="fence_redfish" ipaddr="127.0.0.1" ipport="{port}" login="admin" passwd="secret" ssl_insecure="1" power_timeout="10"/>
  </fencedevices>
</cluster>
"#
    );
    let p = dir.join("cluster.conf");
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn the_fence_engine_reboots_and_fences_every_profile() {
    for profile in PROFILES {
        let s = sim(profile);
        let dir = tempfile::tempdir().unwrap();
        let conf = conf_for(dir.path(), s.port());
        let audit = dir.path().join("audit.log").display().to_string();
        let run = |action: &str| {
            let out = Command::new(env!("CARGO_BIN_EXE_twonode"))
                .args(["fence", "node2", "--action", action, "--yes", "--file", &conf, "--audit-log", &audit])
                .env("TWONODE_FENCE_AUDIT_LOG", &audit)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            (out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
        };
        let (rc, out) = run("reboot");
        assert_eq!(rc, 0, "{profile:?}: {out}\n{}", s.log());
        assert_eq!(s.resets(), ["ForceOff", "On"], "{profile:?}: reboot = off, confirmed, on (not ForceRestart)");
        assert!(s.power_on(), "{profile:?}");
        let (rc, out) = run("off");
        assert_eq!(rc, 0, "{profile:?}: {out}");
        assert!(!s.power_on(), "{profile:?}: fenced off for real");
        let (rc, out) = run("status");
        assert_eq!(rc, 2, "{profile:?}: status of an off node: {out}");
        assert_eq!(s.open_sessions(), 0, "{profile:?}: the engine's devices logged out\n{}", s.log());
    }
}

#[test]
fn expired_session_logs_in_again() {
    let s = sim(Profile::Openbmc);
    let mut dev = device(&s);
    assert_eq!(dev.status().unwrap(), PowerState::On);
    s.expire_sessions();
    dev.power_off().unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert!(!s.power_on());
    assert_eq!(s.sessions_created(), 2, "{}", s.log());
    drop(dev);
    assert_eq!(s.open_sessions(), 0);
}

#[test]
fn self_signed_certificates_as_fence_agents() {
    let s = sim(Profile::Idrac9);
    let mut p = params(s.port(), "secret", &[]);
    p.remove("ssl_insecure");
    match RedfishDevice::from_params(&p).unwrap().status() {
        Err(PowerError::Protocol(m)) => assert!(m.contains("not trusted") && m.contains("ssl_insecure"), "{m}"),
        other => panic!("expected a certificate error, got {other:?}"),
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("bmc.pem");
    std::fs::write(&ca, s.cert_pem()).unwrap();
    p.insert("ssl_ca".into(), ca.display().to_string());
    assert_eq!(RedfishDevice::from_params(&p).unwrap().status().unwrap(), PowerState::On);
    assert_eq!(s.open_sessions(), 0);
}
