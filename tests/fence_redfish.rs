//! The Redfish driver against sushy-emulator (PyPI sushy-tools, fake driver), started here on a
//! free loopback port with a generated certificate and an htpasswd file; the real
//! fence_redfish against the same emulator for reference. Skipped, saying so, when
//! sushy-emulator is not installed (scripts/install-deps installs it with pip).
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use twonode::fence::power::{PowerDevice, PowerError, PowerState};
use twonode::fence::redfish::RedfishDevice;

const UUID_A: &str = "27946b59-9e44-4fa7-8e91-f3527a1ef094";
const UUID_B: &str = "48295861-2522-3561-6729-621118518810";

struct Sushy {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Sushy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sushy {
    fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sushy.log")).unwrap_or_default()
    }
}

fn sushy_available() -> bool {
    let ok = Command::new("sushy-emulator").arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    if !ok {
        eprintln!("SKIPPED: sushy-emulator (PyPI sushy-tools) is not installed; run scripts/install-deps");
    }
    ok
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Start sushy-emulator with the fake driver; `systems` are (uuid, name, initial power state).
fn start_sushy(systems: &[(&str, &str, &str)]) -> Sushy {
    let mut dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), ck.key_pair.serialize_pem()).unwrap();
    // htpasswd with a bcrypt digest (the only kind sushy accepts); the password goes via stdin.
    let mut py = Command::new("python3")
        .args(["-c", "import sys,bcrypt; print(bcrypt.hashpw(sys.stdin.read().encode(), bcrypt.gensalt(rounds=4)).decode())"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 for bcrypt");
    py.stdin.take().unwrap().write_all(b"secret").unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(out.status.success(), "bcrypt hash failed");
    let hash = String::from_utf8(out.stdout).unwrap();
    std::fs::write(dir.path().join("htpasswd"), format!("admin:{}\n", hash.trim())).unwrap();
    let fake: Vec<String> = systems
        .iter()
        .map(|(u, n, s)| format!("{{'uuid': '{u}', 'name': '{n}', 'power_state': '{s}', 'external_notifier': False, 'nics': []}}"))
        .collect();
    let mut last_err = String::new();
    for _attempt in 0..3 {
        let port = free_port();
        let d = dir.path().display();
        let conf = format!(
            "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\nSUSHY_EMULATOR_LISTEN_PORT = {port}\n\
             SUSHY_EMULATOR_SSL_CERT = '{d}/cert.pem'\nSUSHY_EMULATOR_SSL_KEY = '{d}/key.pem'\n\
             SUSHY_EMULATOR_AUTH_FILE = '{d}/htpasswd'\nSUSHY_EMULATOR_FAKE_DRIVER = True\n\
             SUSHY_EMULATOR_STATE_DIR = '{d}/state'\nSUSHY_EMULATOR_FAKE_SYSTEMS = [{}]\n",
            fake.join(", ")
        );
        std::fs::write(dir.path().join("sushy.conf"), conf).unwrap();
        let log = std::fs::File::create(dir.path().join("sushy.log")).unwrap();
        let child = Command::new("sushy-emulator")
            .arg("--config")
            .arg(dir.path().join("sushy.conf"))
            .env("SUSHY_EMULATOR_FAKE_DRIVER", "True")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn sushy-emulator");
        let mut s = Sushy { child, port, dir };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return s;
            }
            if let Ok(Some(_)) = s.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        last_err = s.log();
        let _ = s.child.kill();
        let _ = s.child.wait();
        dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    }
    panic!("sushy-emulator did not start: {last_err}");
}

fn params(s: &Sushy, password: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut p = BTreeMap::new();
    p.insert("ipaddr".into(), "127.0.0.1".into());
    p.insert("ipport".into(), s.port.to_string());
    p.insert("login".into(), "admin".into());
    p.insert("passwd".into(), password.into());
    p.insert("ssl_insecure".into(), "1".into());
    for (k, v) in extra {
        p.insert(k.to_string(), v.to_string());
    }
    p
}

fn wait_state(dev: &mut RedfishDevice, want: PowerState, secs: u64) -> Duration {
    let t = Instant::now();
    loop {
        if dev.status().unwrap() == want {
            return t.elapsed();
        }
        assert!(t.elapsed() < Duration::from_secs(secs), "not {want:?} after {secs} s");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn redfish_status_off_on_against_sushy() {
    if !sushy_available() {
        return;
    }
    let s = start_sushy(&[(UUID_A, "fake", "On")]);
    let mut dev = RedfishDevice::from_params(&params(&s, "secret", &[])).unwrap();
    dev.connect().unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert_eq!(dev.system_uri().unwrap(), format!("/redfish/v1/Systems/{UUID_A}"));
    assert_eq!(dev.status().unwrap(), PowerState::On);
    dev.power_off().unwrap();
    let off = wait_state(&mut dev, PowerState::Off, 20);
    dev.power_on().unwrap();
    let on = wait_state(&mut dev, PowerState::On, 20);
    eprintln!("sushy fake driver: off confirmed after {off:?}, on after {on:?}");
    assert!(dev.describe().contains(UUID_A));
}

#[test]
fn redfish_errors_auth_tls_unreachable_and_ambiguous_systems() {
    if !sushy_available() {
        return;
    }
    let s = start_sushy(&[(UUID_A, "fake", "On"), (UUID_B, "fake2", "Off")]);
    // Wrong password → Auth (HTTP 401), no password in the message.
    let mut dev = RedfishDevice::from_params(&params(&s, "wrong", &[])).unwrap();
    match dev.status() {
        Err(PowerError::Auth(m)) => assert!(m.contains("401") && !m.contains("wrong"), "{m}"),
        other => panic!("expected Auth, got {other:?}"),
    }
    // Two systems and no systems_uri: refuse and list them (fence_redfish takes the last one).
    let mut dev = RedfishDevice::from_params(&params(&s, "secret", &[])).unwrap();
    match dev.status() {
        Err(PowerError::Config(m)) => assert!(m.contains(UUID_A) && m.contains(UUID_B) && m.contains("systems_uri"), "{m}"),
        other => panic!("expected Config, got {other:?}"),
    }
    let uri = format!("/redfish/v1/Systems/{UUID_B}");
    let mut dev = RedfishDevice::from_params(&params(&s, "secret", &[("systems_uri", &uri)])).unwrap();
    assert_eq!(dev.status().unwrap(), PowerState::Off);
    let bad = RedfishDevice::from_params(&params(&s, "secret", &[("systems_uri", "/redfish/v1/Systems/nope")]));
    assert!(matches!(bad.unwrap().status(), Err(PowerError::Config(_))));
    // Certificate checking is on by default; the emulator's certificate as CA works.
    let mut p = params(&s, "secret", &[("systems_uri", &uri)]);
    p.remove("ssl_insecure");
    match RedfishDevice::from_params(&p).unwrap().status() {
        Err(PowerError::Protocol(m)) => assert!(m.contains("not trusted"), "{m}"),
        other => panic!("expected a certificate error, got {other:?}"),
    }
    p.insert("ssl_ca".into(), s.cert().display().to_string());
    assert_eq!(RedfishDevice::from_params(&p).unwrap().status().unwrap(), PowerState::Off);
    // Dead port → Unreachable, fast.
    let mut p = params(&s, "secret", &[]);
    p.insert("ipport".into(), free_port().to_string());
    let t = Instant::now();
    assert!(matches!(RedfishDevice::from_params(&p).unwrap().status(), Err(PowerError::Unreachable(_))));
    assert!(t.elapsed() < Duration::from_secs(1));
}

fn fence_redfish(s: &Sushy, password: &str, action: &str) -> (i32, String, Duration) {
    let t = Instant::now();
    let mut child = Command::new("/usr/sbin/fence_redfish")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fence_redfish");
    let input = format!(
        "action={action}\nipaddr=127.0.0.1\nipport={}\nlogin=admin\npasswd={password}\nssl_insecure=1\npower_timeout=25\n",
        s.port
    );
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text, t.elapsed())
}

#[test]
fn real_fence_redfish_against_the_same_emulator() {
    if !sushy_available() || !std::path::Path::new("/usr/sbin/fence_redfish").exists() {
        eprintln!("SKIPPED: fence_redfish or sushy-emulator missing");
        return;
    }
    let s = start_sushy(&[(UUID_A, "fake", "On")]);
    let (rc, out, t) = fence_redfish(&s, "secret", "status");
    assert_eq!((rc, out.contains("Status: ON")), (0, true), "{out}");
    eprintln!("fence_redfish status: {t:?}");
    let (rc, out, t) = fence_redfish(&s, "secret", "off");
    assert_eq!(rc, 0, "{out}");
    eprintln!("fence_redfish off: {t:?}");
    // twonode reads the state fence_redfish left.
    let mut dev = RedfishDevice::from_params(&params(&s, "secret", &[])).unwrap();
    assert_eq!(dev.status().unwrap(), PowerState::Off);
    let (rc, out, _) = fence_redfish(&s, "secret", "status");
    assert_eq!(rc, 2, "{out}");
    let (rc, out, _) = fence_redfish(&s, "wrong", "status");
    assert_eq!(rc, 1, "fence_redfish with a wrong password: {out}");
}
