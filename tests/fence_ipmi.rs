//! The native IPMI driver and `twonode fence` against a real OpenIPMI ipmi_sim on loopback, with
//! ipmitool and fence_ipmilan as reference clients on the same simulator.
mod fence_support;
use fence_support::*;
use std::process::Command;
use std::time::Duration;
use twonode::fence::ipmi::{IpmiConfig, IpmiDevice, Privilege};
use twonode::fence::power::{PowerDevice, PowerError, PowerState};

fn cfg(sim: &IpmiSim, password: &str) -> IpmiConfig {
    IpmiConfig {
        host: "127.0.0.1".into(),
        port: sim.port,
        username: "admin".into(),
        password: password.into(),
        cipher: Some(3),
        privilege: Privilege::Administrator,
        timeout: Duration::from_secs(2),
        retries: 1,
    }
}

struct Setup {
    sim: IpmiSim,
    _dir: tempfile::TempDir,
    conf: String,
    audit: String,
}

fn setup(attrs: &str) -> Setup {
    let sim = IpmiSim::start();
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(dir.path(), &conf_nodes(&[("node1", sim.port, "delay=\"1\""), ("node2", sim.port, attrs)]));
    let audit = dir.path().join("audit.log").display().to_string();
    Setup { sim, _dir: dir, conf, audit }
}

impl Setup {
    fn fence(&self, node: &str, action: &str, extra: &[&str]) -> Run {
        let mut a = vec!["fence", node, "--action", action, "--file", &self.conf, "--audit-log", &self.audit];
        a.extend_from_slice(extra);
        twonode(&a, None)
    }
}

fn ipmitool(sim: &IpmiSim, args: &[&str]) -> String {
    let out = Command::new("ipmitool")
        .args(["-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", &sim.port.to_string(), "-U", "admin", "-E"])
        .args(args)
        .env("IPMI_PASSWORD", "secret")
        .output()
        .expect("ipmitool");
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn fence_ipmilan(sim: &IpmiSim, action: &str, extra: &str) -> (i32, String) {
    use std::io::Write;
    let mut c = Command::new("fence_ipmilan")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("fence_ipmilan");
    let input = format!(
        "ipaddr=127.0.0.1\nipport={}\nlogin=admin\npasswd=secret\nlanplus=1\ncipher=3\naction={action}\n{extra}",
        sim.port
    );
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn driver_status_off_on_against_ipmi_sim() {
    let sim = IpmiSim::start();
    let mut dev = IpmiDevice::new(cfg(&sim, "secret")).unwrap();
    assert_eq!(dev.status().unwrap(), PowerState::On);
    dev.power_off().unwrap();
    assert!(!sim.power());
    assert_eq!(dev.status().unwrap(), PowerState::Off);
    dev.power_on().unwrap();
    assert!(sim.power());
    assert_eq!(dev.status().unwrap(), PowerState::On);
}

#[test]
fn driver_wrong_password_is_auth_error() {
    let sim = IpmiSim::start();
    let mut dev = IpmiDevice::new(cfg(&sim, "wrong")).unwrap();
    let err = dev.status().unwrap_err();
    assert!(matches!(err, PowerError::Auth(_)), "{err}");
}

#[test]
fn driver_closes_its_sessions() {
    let sim = IpmiSim::start();
    for i in 0..14 {
        let mut dev = IpmiDevice::new(cfg(&sim, "secret")).unwrap();
        assert_eq!(dev.status().unwrap_or_else(|e| panic!("round {i}: {e}")), PowerState::On);
        dev.close().unwrap_or_else(|e| panic!("round {i}: close: {e}"));
    }
}

#[test]
fn operator_privilege_level_is_set_and_enough_for_chassis_control() {
    let sim = IpmiSim::start();
    let mut c = cfg(&sim, "secret");
    c.privilege = Privilege::Operator;
    let mut dev = IpmiDevice::new(c).unwrap();
    dev.power_off().unwrap();
    assert!(!sim.power());
    // User level is not enough for Chassis Control: the BMC answers 0xD4, reported as an auth error.
    let mut c = cfg(&sim, "secret");
    c.privilege = Privilege::User;
    let mut dev = IpmiDevice::new(c).unwrap();
    let e = dev.power_on().unwrap_err();
    assert!(matches!(e, PowerError::Auth(ref m) if m.contains("0xD4")), "{e}");
    assert!(!sim.power());
}

#[test]
fn cli_status_off_on_reboot_verified_by_power_file() {
    let s = setup("");
    let r = s.fence("node2", "status", &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Status: ON"));

    let r = s.fence("node2", "off", &["--yes"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(!s.sim.power());
    let r = s.fence("node2", "status", &[]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);

    let r = s.fence("node2", "on", &["--yes"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(s.sim.power());

    let before = s.sim.chassis_log().lines().count();
    let r = s.fence("node2", "reboot", &["--yes", "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(s.sim.power());
    let log: Vec<String> = s.sim.chassis_log().lines().skip(before).map(|l| l.to_string()).collect();
    let off = log.iter().position(|l| l.ends_with("set power 0")).expect("off sent");
    let on = log.iter().position(|l| l.ends_with("set power 1")).expect("on sent");
    assert!(off < on, "{log:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["verdict"], "done");
    assert_eq!(v["exit_code"], 0);
    assert!(!r.stdout.contains("secret"));

    // Audit log: JSON lines for every destructive run, no password.
    let audit = std::fs::read_to_string(&s.audit).unwrap();
    assert!(!audit.contains("secret"));
    let outcomes: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"] == "outcome")
        .collect();
    assert_eq!(outcomes.len(), 3);
}

#[test]
fn cli_refuses_without_terminal_or_yes_and_on_self() {
    let s = setup("");
    let r = s.fence("node2", "off", &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("--yes"), "{}", r.stderr);
    assert!(s.sim.power(), "nothing may be sent without confirmation");
    // The node this runs on, by host name.
    let host = nix::unistd::gethostname().unwrap().to_string_lossy().to_string();
    let selfdir = tempfile::tempdir().unwrap();
    let conf = write_conf(selfdir.path(), &conf_nodes(&[(&host, s.sim.port, "")]));
    let r = twonode(&["fence", &host, "--action", "off", "--yes", "--file", &conf, "--audit-log", &s.audit], None);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("--allow-self"), "{}", r.stderr);
    assert!(s.sim.power());
    let r = twonode(
        &["fence", &host, "--action", "off", "--yes", "--allow-self", "--file", &conf, "--audit-log", &s.audit],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!s.sim.power());
    // Unknown node: clear error naming the nodes.
    let r = s.fence("node9", "status", &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("node1, node2"), "{}", r.stderr);
}

#[test]
fn cli_ignore_on_is_power_on_failed_exit_8_where_fence_ipmilan_says_success() {
    let s = setup("power_timeout=\"3\"");
    s.sim.fault("ignore_on", "");
    let r = s.fence("node2", "reboot", &["--yes"]);
    assert_eq!(r.code, 8, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("fenced (off confirmed), power-on FAILED"), "{}", r.stderr);
    assert!(!s.sim.power());
    // The reference agent on the same simulator reports success with the node left off.
    s.sim.set_power(true);
    let (code, out) = fence_ipmilan(&s.sim, "reboot", "power_wait=1\npower_timeout=3\n");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Success"), "{out}");
    assert!(!s.sim.power());
}

#[test]
fn cli_ignore_off_is_state_not_reached_exit_7() {
    let s = setup("power_timeout=\"2\"");
    s.sim.fault("ignore_off", "");
    let r = s.fence("node2", "off", &["--yes"]);
    assert_eq!(r.code, 7, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("power state not reached"), "{}", r.stderr);
    assert!(s.sim.power());
    // reboot must not power on (nor claim success) when off was never confirmed
    let r = s.fence("node2", "reboot", &["--yes"]);
    assert_eq!(r.code, 7);
}

#[test]
fn cli_late_bmc_delay_s_is_polled_until_confirmed() {
    let s = setup("");
    s.sim.fault("delay_s", "2");
    let r = s.fence("node2", "reboot", &["--yes"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.secs >= 3.5, "off and on each applied 2 s late, took {}", r.secs);
    std::thread::sleep(Duration::from_millis(200));
    assert!(s.sim.power());
}

#[test]
fn cli_wrong_password_is_exit_3() {
    let s = setup("");
    let conf = std::fs::read_to_string(&s.conf).unwrap().replace("passwd=\"secret\"", "passwd=\"Xyzzy9\"");
    std::fs::write(&s.conf, conf).unwrap();
    let r = s.fence("node2", "status", &[]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("authentication failed"), "{}", r.stderr);
    assert!(!r.stderr.contains("Xyzzy9"), "password leaked: {}", r.stderr);
}

#[test]
fn cli_dead_port_is_exit_4_fast() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let conf = write_conf(dir.path(), &conf_nodes(&[("node2", port, "")]));
    let r = twonode(&["fence", "node2", "--action", "status", "--file", &conf], None);
    assert_eq!(r.code, 4, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("unreachable"), "{}", r.stderr);
    assert!(r.secs < 3.0, "took {}s", r.secs);
}

#[test]
fn reference_clients_agree_with_twonode() {
    let s = setup("");
    assert!(ipmitool(&s.sim, &["chassis", "power", "status"]).contains("is on"));
    assert_eq!(s.fence("node2", "off", &["--yes"]).code, 0);
    assert!(ipmitool(&s.sim, &["chassis", "power", "status"]).contains("is off"));
    let (code, _) = fence_ipmilan(&s.sim, "status", "");
    assert_eq!(code, 2);
    assert_eq!(s.fence("node2", "status", &[]).code, 2);
    ipmitool(&s.sim, &["chassis", "power", "on"]);
    assert_eq!(s.fence("node2", "status", &[]).code, 0);
    let (code, _) = fence_ipmilan(&s.sim, "status", "");
    assert_eq!(code, 0);
}

#[test]
fn agent_mode_stdin_getopt_and_metadata() {
    let sim = IpmiSim::start();
    let base = format!("# from fenced\nipaddr=\"127.0.0.1\"\nipport={}\nlogin=admin\npasswd='secret'\nnodename=node2\npower-wait=0\n", sim.port);
    let r = twonode(&["fence", "agent"], Some(&format!("{base}action=status\n")));
    assert_eq!((r.code, r.stdout.trim()), (0, "Status: ON"), "{}", r.stderr);
    let r = twonode(&["fence", "agent"], Some(&format!("{base}action=off\n")));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!sim.power());
    let r = twonode(&["fence", "agent"], Some(&format!("{base}action=status\n")));
    assert_eq!(r.code, 2);
    let r = twonode(&["fence", "agent"], Some(&format!("{base}action=monitor\n")));
    assert_eq!(r.code, 0);
    // getopt style, password from a script (never in argv)
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("pw.sh");
    std::fs::write(&script, "#!/bin/sh\necho secret\n").unwrap();
    let port = sim.port.to_string();
    let r = twonode(
        &["fence", "agent", "-o", "on", "-a", "127.0.0.1", "-u", &port, "-l", "admin", "-S", &format!("sh {}", script.display()), "--power-wait=0"],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(sim.power());
    // wrong password: fence-agent convention, exit 1
    let r = twonode(&["fence", "agent"], Some(&format!("{}action=status\n", base.replace("'secret'", "nope"))));
    assert_eq!(r.code, 1, "{}", r.stderr);
    // validate-all does not contact the device; an unsupported cipher is refused
    let r = twonode(&["fence", "agent"], Some(&format!("{base}cipher=5\naction=validate-all\n")));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("cipher suite 5"), "{}", r.stderr);
    // invoked as fence_twonode (a symlink), it is the agent
    let link = dir.path().join("fence_twonode");
    std::os::unix::fs::symlink(assert_cmd::cargo::cargo_bin("twonode"), &link).unwrap();
    let out = {
        use std::io::Write;
        let mut c = Command::new(&link)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(format!("{base}action=status\n").as_bytes()).unwrap();
        c.wait_with_output().unwrap()
    };
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Status: ON");
    // metadata valid against fence-agents' schema
    let r = twonode(&["fence", "agent", "-o", "metadata"], None);
    assert_eq!(r.code, 0);
    let meta = dir.path().join("meta.xml");
    std::fs::write(&meta, &r.stdout).unwrap();
    let rng = "/usr/share/cluster/relaxng/metadata.rng";
    assert!(std::path::Path::new(rng).exists(), "fence-agents' metadata.rng missing: run scripts/install-deps");
    let st = Command::new("xmllint").args(["--noout", "--relaxng", rng]).arg(&meta).status().unwrap();
    assert!(st.success(), "metadata does not validate:\n{}", r.stdout);
}

/// Parent pid and cmdline of a process, if it still exists.
fn proc_info(pid: u32) -> Option<(u32, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let ppid: u32 = after.split_whitespace().nth(1)?.parse().ok()?;
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some((ppid, String::from_utf8_lossy(&cmd).replace('\0', " ")))
}

#[test]
fn no_password_in_argv_of_processes_twonode_starts() {
    let s = setup("twonode_driver=\"external\" power_timeout=\"5\"");
    let password = "secret";
    let bin = assert_cmd::cargo::cargo_bin("twonode");
    let mut child = Command::new(bin)
        .args(["fence", "node2", "--action", "reboot", "--yes", "--file", &s.conf, "--audit-log", &s.audit])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let root = child.id();
    let mut seen: std::collections::BTreeMap<u32, (u32, String)> = Default::default();
    while child.try_wait().unwrap().is_none() {
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) {
                if let Some(info) = proc_info(pid) {
                    if !info.1.is_empty() {
                        seen.entry(pid).or_insert(info);
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let depth = |mut pid: u32| -> Option<usize> {
        let mut d = 0;
        while pid != root {
            pid = seen.get(&pid)?.0;
            d += 1;
            if d > 10 {
                return None;
            }
        }
        Some(d)
    };
    let mut agents = 0;
    for (pid, (_, cmd)) in &seen {
        match depth(*pid) {
            Some(0) | Some(1) => {
                assert!(!cmd.contains(password), "password in argv of pid {pid}: {cmd}");
                if cmd.contains("fence_ipmilan") {
                    agents += 1;
                }
            }
            // fence_ipmilan itself runs `ipmitool ... -P <password>`: a leak of that agent, not of
            // twonode (the native IPMI driver starts no process at all).
            Some(_) if cmd.contains(password) => {
                assert!(cmd.contains("ipmitool"), "unexpected leak in pid {pid}: {cmd}");
                eprintln!("note: fence_ipmilan exposes the password in its ipmitool child (pid {pid})");
            }
            Some(_) | None => {}
        }
    }
    assert!(agents >= 1, "fence_ipmilan was not seen running under twonode: {seen:?}");
}

/// A fake BMC that answers Open Session choosing authentication algorithm RAKP-none (a path
/// ipmi-rs 0.6, which this driver used to run on, left as `todo!()`: a panic). twonode must
/// report a protocol error (exit 6), send nothing further, and never show a panic.
fn fake_bmc_choosing_rakp_none() -> (u16, std::thread::JoinHandle<()>) {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let port = sock.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        let ipmb_chk = |b: &[u8]| (0u8).wrapping_sub(b.iter().fold(0u8, |a, x| a.wrapping_add(*x)));
        // Serve whoever asks for 20 s (a stray ping from another test must not use up the script).
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            let Ok((n, peer)) = sock.recv_from(&mut buf) else { continue };
            if n < 12 || (buf[3] != 0x06 && n < 20) {
                continue;
            }
            let m = &buf[..n];
            let reply: Vec<u8> = if m[3] == 0x06 {
                // ASF presence ping -> pong (IPMI supported)
                let mut r = vec![0x06, 0x00, 0xff, 0x06, 0x00, 0x00, 0x11, 0xbe, 0x40, m[9], 0x00, 0x10];
                r.extend([0x00, 0x00, 0x11, 0xbe, 0, 0, 0, 0, 0x81, 0x00, 0, 0, 0, 0, 0, 0]);
                r
            } else if m[4] == 0x00 {
                // IPMI 1.5 session-less: Get Channel Authentication Capabilities -> IPMI 2.0 supported
                let rqseq = m[14 + 4];
                let mut ipmb = vec![0x81, 0x1c];
                ipmb.push(ipmb_chk(&ipmb));
                let body = [0x20, rqseq, 0x38, 0x00, 0x01, 0x84, 0x04, 0x02, 0, 0, 0, 0];
                ipmb.extend(body);
                ipmb.push(ipmb_chk(&body));
                let mut r = vec![0x06, 0x00, 0xff, 0x07, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, ipmb.len() as u8];
                r.extend(ipmb);
                r
            } else if m[4] == 0x06 && m[5] == 0x10 {
                // Open Session Request -> response choosing RAKP-none / none / none
                let p = &m[16..];
                let mut pl = vec![p[0], 0x00, 0x04, 0x00];
                pl.extend(&p[4..8]);
                pl.extend([0x78, 0x56, 0x34, 0x12]);
                pl.extend([0x00, 0, 0, 0x08, 0x00, 0, 0, 0]);
                pl.extend([0x01, 0, 0, 0x08, 0x00, 0, 0, 0]);
                pl.extend([0x02, 0, 0, 0x08, 0x00, 0, 0, 0]);
                let mut r = vec![0x06, 0x00, 0xff, 0x07, 0x06, 0x11, 0, 0, 0, 0, 0, 0, 0, 0];
                r.extend((pl.len() as u16).to_le_bytes());
                r.extend(pl);
                r.extend([0u8; 0]);
                // remember the console session id for RAKP 2
                REMOTE_SID.with(|s| s.set(u32::from_le_bytes([p[4], p[5], p[6], p[7]])));
                r
            } else if m[4] == 0x06 && m[5] == 0x12 {
                // RAKP 1 -> RAKP 2 with an empty key exchange code (RAKP-none)
                let tag = m[16];
                let mut pl = vec![tag, 0x00, 0, 0];
                pl.extend(REMOTE_SID.with(|s| s.get()).to_le_bytes());
                pl.extend([0x11u8; 16]);
                pl.extend([0x22u8; 16]);
                let mut r = vec![0x06, 0x00, 0xff, 0x07, 0x06, 0x13, 0, 0, 0, 0, 0, 0, 0, 0];
                r.extend((pl.len() as u16).to_le_bytes());
                r.extend(pl);
                r
            } else {
                continue;
            };
            let _ = sock.send_to(&reply, peer);
        }
    });
    (port, h)
}

thread_local! {
    static REMOTE_SID: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

#[test]
fn a_bmc_choosing_other_algorithms_is_a_protocol_error() {
    let (port, _h) = fake_bmc_choosing_rakp_none();
    let mut dev = IpmiDevice::new(IpmiConfig {
        host: "127.0.0.1".into(),
        port,
        username: "admin".into(),
        password: "secret".into(),
        cipher: Some(3),
        privilege: Privilege::Administrator,
        timeout: Duration::from_secs(5),
        retries: 0,
    })
    .unwrap();
    let e = dev.status().unwrap_err();
    assert!(matches!(e, PowerError::Protocol(ref m) if m.contains("instead of cipher suite 3")), "{e}");

    let (port, _h) = fake_bmc_choosing_rakp_none();
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(dir.path(), &conf_nodes(&[("node2", port, "")]));
    let r = twonode(&["fence", "node2", "--action", "status", "--file", &conf], None);
    assert_eq!(r.code, 6, "{}{}", r.stdout, r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert!(r.stderr.contains("protocol error"), "{}", r.stderr);
}
