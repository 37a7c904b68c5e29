//! Arbiter-gated fencing end to end, against real peers on loopback: the real `twonode arbiter
//! serve` binary with certificates made by `twonode arbiter certs` (client certificates from an
//! `openssl req` request signed by `twonode arbiter certs sign`), the real corosync-qnetd as the
//! reference server, and two OpenIPMI `ipmi_sim` BMCs.
mod fence_support;
use fence_support::*;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use twonode::quorum::arbiter::client::{self, ClientConfig, ClientError, ClientTls, VoteOutcome, VoteRequest};
use twonode::quorum::arbiter::wire::RingId;

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("twonode")
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_listening(port: u16, child: &mut Child, limit: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    false
}

/// `twonode arbiter serve` as a process, TLS required with a client certificate (the setting for
/// a fence gate: with `mode = "on"` the arbiter, like corosync-qnetd `-s on`, also serves
/// clear-text clients, which then need no certificate).
struct Arbiter {
    port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl Arbiter {
    fn start() -> Arbiter {
        Self::start_with("")
    }

    /// `extra`: more `[arbiter]` settings.
    fn start_with(extra: &str) -> Arbiter {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("tls");
        let r = twonode(&["arbiter", "certs", "init", "--dir", certs.to_str().unwrap()], None);
        assert_eq!(r.code, 0, "certs init: {}{}", r.stdout, r.stderr);
        for _ in 0..5 {
            let port = free_tcp_port();
            let conf = dir.path().join("arbiter.toml");
            // restart hold: a fresh arbiter would wait ≈ 80 s before giving a partial partition
            // the vote (leases of a previous instance); there is no previous instance here.
            std::fs::write(
                &conf,
                format!(
                    "listen = \"127.0.0.1\"\nport = {port}\nstatus_socket = \"{}\"\n[tls]\nmode = \"required\"\n\
                     cert = \"{c}/server.crt\"\nkey = \"{c}/server.key\"\nca = \"{c}/ca.crt\"\n\
                     [arbiter]\nrestart_hold_heartbeat_ms = 0\n{extra}\n",
                    dir.path().join("status.sock").display(),
                    c = certs.display()
                ),
            )
            .unwrap();
            let log = std::fs::File::create(dir.path().join("arbiter.log")).unwrap();
            let mut child = Command::new(bin())
                .args(["arbiter", "serve", "--config"])
                .arg(&conf)
                .env("TWONODE_LOG", "info")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            if wait_listening(port, &mut child, Duration::from_secs(10)) {
                // the restart hold is the lease margin (1 s) here
                std::thread::sleep(Duration::from_millis(1100));
                return Arbiter { port, dir, child };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("twonode arbiter serve did not come up");
    }

    fn certs(&self) -> PathBuf {
        self.dir.path().join("tls")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("arbiter.log")).unwrap_or_default()
    }

    /// A client key + certificate for `cluster`: request made by openssl, signed by
    /// `twonode arbiter certs sign` (as an admin would with corosync-qdevice-net-certutil's).
    fn client_cert(&self, cluster: &str) -> ClientTls {
        client_cert_in(&self.certs(), self.dir.path(), cluster)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Arbiter {
    fn drop(&mut self) {
        self.stop();
    }
}

fn client_cert_in(ca_dir: &Path, out: &Path, cluster: &str) -> ClientTls {
    let key = out.join(format!("{cluster}.key"));
    let csr = out.join(format!("{cluster}.csr"));
    let crt = out.join(format!("{cluster}.crt"));
    let st = Command::new("openssl")
        .args(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout"])
        .arg(&key)
        .args(["-subj", &format!("/CN={cluster}"), "-out"])
        .arg(&csr)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(st.success(), "openssl req");
    let r = twonode(
        &["arbiter", "certs", "sign", "--dir", ca_dir.to_str().unwrap(), "--csr", csr.to_str().unwrap(), "--cluster", cluster, "--out", crt.to_str().unwrap()],
        None,
    );
    assert_eq!(r.code, 0, "certs sign: {}{}", r.stdout, r.stderr);
    ClientTls { ca: ca_dir.join("ca.crt"), cert: crt, key }
}

fn ccfg(port: u16, cluster: &str, node: u32, tls: Option<ClientTls>) -> ClientConfig {
    let mut c = ClientConfig::new("127.0.0.1", port, cluster, node);
    c.tls = tls;
    c.heartbeat_ms = 2000;
    c.timeout = Duration::from_secs(5);
    c
}

fn alone(node: u32) -> VoteRequest {
    VoteRequest::alone(node, vec![1, 2])
}

// ---- step 1: the client against the real servers ------------------------------------------------

#[test]
fn client_probe_and_vote_against_twonode_arbiter_with_tls() {
    let arb = Arbiter::start();
    let tls = arb.client_cert("gclient");
    let c1 = ccfg(arb.port, "gclient", 1, Some(tls.clone()));
    let p = client::probe(&c1).unwrap_or_else(|e| panic!("{e}\n{}", arb.log()));
    assert!(p.tls, "{p:?}");
    assert_eq!(p.server_tls, "required");
    assert!(p.algorithms.contains(&"ffsplit".to_string()), "{p:?}");
    assert!(p.rtt_ms < 1000.0);

    // node1 asks and holds; node2 asks meanwhile: NACK at once
    let t0 = Instant::now();
    let (r1, hold) = client::ask_and_hold(&c1, &alone(1)).unwrap();
    let vote_ms = t0.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(r1.outcome, VoteOutcome::Ack, "{r1:?}\n{}", arb.log());
    assert!(r1.tls);
    let hold = hold.expect("a hold after ACK");
    let c2 = ccfg(arb.port, "gclient", 2, Some(tls.clone()));
    let r2 = client::ask_vote(&c2, &alone(2)).unwrap();
    assert_eq!(r2.outcome, VoteOutcome::Nack, "{r2:?}\n{}", arb.log());
    // a probe while node1 holds does not disturb the hold (own probe node id)
    client::probe(&c1).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let st = hold.state();
    assert!(st.lost.is_none(), "{st:?}");
    let r2 = client::ask_vote(&c2, &alone(2)).unwrap();
    assert_eq!(r2.outcome, VoteOutcome::Nack, "still held: {r2:?}");
    let st = hold.release();
    assert!(st.lost.is_none() && st.held_ms >= 1500, "{st:?}");
    // after the release the lease (≥ 2 × 2 s heartbeat) still keeps node2 out
    let mut c2s = c2.clone();
    c2s.timeout = Duration::from_secs(2);
    let r2 = client::ask_vote(&c2s, &alone(2)).unwrap();
    assert_ne!(r2.outcome, VoteOutcome::Ack, "the lease must still run: {r2:?}");
    println!("time to a vote (TLS, connect to ACK): {vote_ms:.1} ms; probe rtt {:.2} ms, init {:.1} ms", p.rtt_ms, p.init_ms);
}

#[test]
fn client_errors_say_what_failed() {
    let arb = Arbiter::start();
    let good = arb.client_cert("gerr");
    // certificate for another cluster name
    let other = arb.client_cert("someoneelse");
    let e = client::probe(&ccfg(arb.port, "gerr", 1, Some(other))).unwrap_err();
    assert!(matches!(e, ClientError::Tls(_) | ClientError::Protocol(_)), "{e}");
    // a CA that did not sign the arbiter's certificate
    let foreign = tempfile::tempdir().unwrap();
    let r = twonode(&["arbiter", "certs", "init", "--dir", foreign.path().join("ca").to_str().unwrap()], None);
    assert_eq!(r.code, 0);
    let mut wrong_ca = good.clone();
    wrong_ca.ca = foreign.path().join("ca/ca.crt");
    let e = client::probe(&ccfg(arb.port, "gerr", 1, Some(wrong_ca))).unwrap_err();
    assert!(matches!(e, ClientError::Tls(ref m) if m.contains("not trusted")), "{e}");
    // a client certificate the arbiter's CA did not sign: the arbiter refuses it, and the
    // error says so (TLS 1.3 only shows it as a close after the handshake)
    let mut foreign_client = client_cert_in(&foreign.path().join("ca"), foreign.path(), "gerr");
    foreign_client.ca = good.ca.clone();
    let e = client::probe(&ccfg(arb.port, "gerr", 1, Some(foreign_client))).unwrap_err();
    assert!(e.to_string().contains("certificate"), "{e}");
    // missing key file
    let mut nokey = good.clone();
    nokey.key = PathBuf::from("/nonexistent/node.key");
    let e = client::probe(&ccfg(arb.port, "gerr", 1, Some(nokey))).unwrap_err();
    assert!(matches!(e, ClientError::Config(ref m) if m.contains("/nonexistent/node.key")), "{e}");
    // nobody listening
    let e = client::probe(&ccfg(free_tcp_port(), "gerr", 1, Some(good.clone()))).unwrap_err();
    assert!(matches!(e, ClientError::Unreachable(_)), "{e}");
    assert!(!e.advice().is_empty());
    // no TLS files for an arbiter that requires TLS
    let e = client::ask_vote(&ccfg(arb.port, "gerr", 1, None), &alone(1)).unwrap_err();
    assert!(matches!(e, ClientError::Tls(ref m) if m.contains("requires TLS")), "{e}");
}

/// The real corosync-qnetd on a free loopback port (TLS options `tls`, NSS database `DIR/nss_db`,
/// log in `DIR/qnetd.log`); killed when the returned guard drops.
fn start_qnetd(dir: &Path, tls: &[&str], nss_db: &str) -> (u16, KillOnDrop) {
    for _ in 0..5 {
        let port = free_tcp_port();
        let mut child = Command::new("corosync-qnetd")
            .args(["-f", "-d"])
            .args(tls)
            .args(["-l", "127.0.0.1", "-p", &port.to_string(), "-S"])
            .arg(format!(
                "lock_file={},local_socket_file={},nss_db_dir={}",
                dir.join("lock").display(),
                dir.join("sock").display(),
                dir.join(nss_db).display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("qnetd.log")).unwrap())
            .spawn()
            .unwrap();
        if wait_listening(port, &mut child, Duration::from_secs(10)) {
            return (port, KillOnDrop(child));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("corosync-qnetd did not start");
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The reference server: corosync-qnetd (TLS off: its NSS database is not ours), same client.
#[test]
fn client_against_corosync_qnetd() {
    if !have("corosync-qnetd") {
        eprintln!("corosync-qnetd not installed: skipped (scripts/install-deps installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (port, _k) = start_qnetd(dir.path(), &["-s", "off"], "nss");
    let log = || std::fs::read_to_string(dir.path().join("qnetd.log")).unwrap_or_default();
    let c1 = ccfg(port, "qref", 1, None);
    let p = client::probe(&c1).unwrap_or_else(|e| panic!("{e}\n{}", log()));
    assert!(!p.tls);
    assert_eq!(p.server_tls, "off");
    let (r1, hold) = client::ask_and_hold(&c1, &alone(1)).unwrap_or_else(|e| panic!("{e}\n{}", log()));
    assert_eq!(r1.outcome, VoteOutcome::Ack, "{r1:?}\n{}", log());
    let r2 = client::ask_vote(&ccfg(port, "qref", 2, None), &alone(2)).unwrap_or_else(|e| panic!("{e}\n{}", log()));
    assert_eq!(r2.outcome, VoteOutcome::Nack, "{r2:?}\n{}", log());
    let st = hold.expect("hold").release();
    assert!(st.lost.is_none(), "{st:?}\n{}", log());
    let _ = RingId::default();
}

/// The reference server with TLS: corosync-qnetd with its own NSS CA (made by the real
/// corosync-qnetd-certutil in a temporary directory), TLS required, client certificate required;
/// our request signed by `corosync-qnetd-certutil -s`, exactly as an admin of a qnetd does.
#[test]
fn client_tls_against_corosync_qnetd() {
    for tool in ["corosync-qnetd", "corosync-qnetd-certutil", "certutil", "openssl", "bash"] {
        if !have(tool) {
            eprintln!("{tool} not installed: skipped (scripts/install-deps installs it)");
            return;
        }
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    // the real script, pointed at our directory instead of /etc/corosync/qnetd
    let script = std::fs::read_to_string("/usr/bin/corosync-qnetd-certutil").unwrap();
    let script: String = script
        .lines()
        .map(|l| if l.starts_with("CONFIG_DIR=") { format!("CONFIG_DIR=\"{}\"", d.display()) } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(d.join("qcu.sh"), script).unwrap();
    let sh = |args: &[&str]| {
        let o = Command::new("bash").arg(d.join("qcu.sh")).args(args).current_dir(d).output().unwrap();
        assert!(o.status.success(), "corosync-qnetd-certutil {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    };
    sh(&["-i"]);
    let st = Command::new("openssl")
        .args(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout"])
        .arg(d.join("node.key"))
        .args(["-subj", "/CN=qtls", "-outform", "DER", "-out"])
        .arg(d.join("node.csr"))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    sh(&["-s", "-c", d.join("node.csr").to_str().unwrap(), "-n", "qtls"]);
    let pem = |args: &[&str], out: &str| {
        let o = Command::new(args[0]).args(&args[1..]).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        std::fs::write(d.join(out), &o.stdout).unwrap();
    };
    let db = format!("sql:{}", d.join("nssdb").display());
    pem(&["certutil", "-L", "-d", &db, "-n", "QNet CA", "-a"], "ca.pem");
    pem(&["openssl", "x509", "-inform", "DER", "-in", d.join("nssdb/cluster-qtls.crt").to_str().unwrap()], "node.crt");
    let tls = ClientTls { ca: d.join("ca.pem"), cert: d.join("node.crt"), key: d.join("node.key") };
    let (port, _k) = start_qnetd(d, &["-s", "req", "-c", "on"], "nssdb");
    let log = || std::fs::read_to_string(d.join("qnetd.log")).unwrap_or_default();
    let c1 = ccfg(port, "qtls", 1, Some(tls.clone()));
    let p = client::probe(&c1).unwrap_or_else(|e| panic!("{e}\n{}", log()));
    assert!(p.tls && p.server_tls == "required", "{p:?}");
    let (r1, hold) = client::ask_and_hold(&c1, &alone(1)).unwrap_or_else(|e| panic!("{e}\n{}", log()));
    assert_eq!(r1.outcome, VoteOutcome::Ack, "{r1:?}\n{}", log());
    let r2 = client::ask_vote(&ccfg(port, "qtls", 2, Some(tls.clone())), &alone(2)).unwrap_or_else(|e| panic!("{e}\n{}", log()));
    assert_eq!(r2.outcome, VoteOutcome::Nack, "{r2:?}\n{}", log());
    assert!(hold.expect("hold").release().lost.is_none());
    // a certificate for another cluster name is refused by qnetd too
    let e = client::ask_vote(&ccfg(port, "other", 1, Some(tls)), &alone(1));
    assert!(!matches!(e, Ok(ref r) if r.outcome == VoteOutcome::Ack), "{e:?}");
}

// ---- steps 2-3, 6: the gate and the engine against a real arbiter and two real BMCs ----------

/// The BMC password of these tests: must never show up in any argv or log.
const BMC_PASSWORD: &str = "secret";

/// A two-node lab: the arbiter, one ipmi_sim BMC per node, a gated cluster.conf per round.
struct Lab {
    arb: Arbiter,
    bmc1: IpmiSim,
    bmc2: IpmiSim,
    dir: tempfile::TempDir,
    audit: PathBuf,
    watch: ArgvWatch,
}

/// Whether process `pid` is a descendant of `ancestor` (parent chain in /proc/PID/stat).
fn descends_from(mut pid: u32, ancestor: u32) -> bool {
    for _ in 0..64 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { return false };
        let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) else { return false };
        if ppid == ancestor {
            return true;
        }
        if ppid <= 1 {
            return false;
        }
        pid = ppid;
    }
    false
}

/// Scans the argv (/proc/PID/cmdline) of every process this test starts (its descendants:
/// twonode, ipmi_sim, openssl...) while the test runs, for secrets.
struct ArgvWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    found: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    needles: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    scans: std::sync::Arc<std::sync::atomic::AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ArgvWatch {
    fn start() -> ArgvWatch {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let found = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let needles = std::sync::Arc::new(std::sync::Mutex::new(vec![BMC_PASSWORD.to_string()]));
        let scans = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (s, f, n, c) = (stop.clone(), found.clone(), needles.clone(), scans.clone());
        let me = std::process::id();
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let needles = n.lock().unwrap().clone();
                if let Ok(rd) = std::fs::read_dir("/proc") {
                    for e in rd.flatten() {
                        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else { continue };
                        if pid == me || !descends_from(pid, me) {
                            continue;
                        }
                        let Ok(b) = std::fs::read(e.path().join("cmdline")) else { continue };
                        let args: Vec<String> = b.split(|c| *c == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
                        let hit = args.iter().any(|a| {
                            needles.iter().any(|n| a == n || a.ends_with(&format!("={n}")) || (n.len() > 12 && a.contains(n.as_str())))
                        });
                        if hit {
                            f.lock().unwrap().push(args.join(" "));
                        }
                    }
                }
                c.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        ArgvWatch { stop, found, needles, scans, thread: Some(thread) }
    }
    fn add_needle(&self, s: String) {
        self.needles.lock().unwrap().push(s);
    }
    fn finish(&mut self) -> (Vec<String>, u64) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        (self.found.lock().unwrap().clone(), self.scans.load(std::sync::atomic::Ordering::SeqCst))
    }
}

impl Drop for ArgvWatch {
    fn drop(&mut self) {
        self.finish();
    }
}

/// What one side's fenced did.
#[derive(Debug, Clone)]
#[allow(dead_code)]
struct Side {
    local: String,
    gate_code: i32,
    gate_out: String,
    device_ran: bool,
    device_code: Option<i32>,
    secs: f64,
}

impl Lab {
    fn start() -> Lab {
        let arb = Arbiter::start();
        let bmc1 = IpmiSim::start();
        let bmc2 = IpmiSim::start();
        let dir = tempfile::tempdir().unwrap();
        let audit = dir.path().join("audit.log");
        Lab { arb, bmc1, bmc2, dir, audit, watch: ArgvWatch::start() }
    }

    /// A gated two_node cluster.conf for `cluster` (its own certificate), `gate_attrs` extra
    /// attributes of the gate device; returns its path.
    fn conf(&self, cluster: &str, gate_attrs: &str) -> PathBuf {
        let tls = self.arb.client_cert(cluster);
        // the client key's body must never appear in an argv or a log either
        let key = std::fs::read_to_string(&tls.key).unwrap();
        if let Some(l) = key.lines().find(|l| l.len() > 40 && !l.starts_with("-----")) {
            self.watch.add_needle(l.to_string());
        }
        let text = format!(
            r#"<?xml version="1.0"?>
<cluster name="{cluster}" config_version="1">
  <cman two_node="1" expected_votes="1"/>
  <clusternodes>
    <clusternode name="node1" nodeid="1">
      <fence>
        <method name="ipmi">
          <device name="twonode-arbiter"/>
          <device name="bmc-node1" action="off"/>
        </method>
      </fence>
    </clusternode>
    <clusternode name="node2" nodeid="2">
      <fence>
        <method name="ipmi">
          <device name="twonode-arbiter"/>
          <device name="bmc-node2" action="off"/>
        </method>
      </fence>
    </clusternode>
  </clusternodes>
  <fencedevices>
    <fencedevice name="twonode-arbiter" agent="fence_twonode_arbiter" ipaddr="127.0.0.1" ipport="{port}" tlscacert="{ca}" tlscert="{cert}" tlskey="{key}" {gate_attrs}/>
    <fencedevice name="bmc-node1" agent="fence_ipmilan" ipaddr="127.0.0.1" ipport="{p1}" login="admin" passwd="{pw}" lanplus="1" cipher="3" power_wait="1"/>
    <fencedevice name="bmc-node2" agent="fence_ipmilan" ipaddr="127.0.0.1" ipport="{p2}" login="admin" passwd="{pw}" lanplus="1" cipher="3" power_wait="1"/>
  </fencedevices>
</cluster>
"#,
            port = self.arb.port,
            ca = tls.ca.display(),
            cert = tls.cert.display(),
            key = tls.key.display(),
            p1 = self.bmc1.port,
            p2 = self.bmc2.port,
            pw = BMC_PASSWORD,
        );
        let p = self.dir.path().join(format!("{cluster}.conf"));
        std::fs::write(&p, text).unwrap();
        p
    }

    /// node `local`'s fenced running the method for `victim` exactly as fenced does: each
    /// device's agent in order with the key=value lines fenced writes on its stdin (from the
    /// cluster.conf model), stopping at the first failing device.
    fn fenced(&self, conf: &Path, local: &str, victim: &str) -> Side {
        let xml = std::fs::read(conf).unwrap();
        let (_d, m) = twonode::clusterconf::model::Model::parse(&xml).unwrap();
        let f = m.fencing_for(victim).unwrap();
        let method = &f.methods[0];
        let t0 = Instant::now();
        let mut side = Side { local: local.into(), gate_code: -1, gate_out: String::new(), device_ran: false, device_code: None, secs: 0.0 };
        for (i, call) in method.devices.iter().enumerate() {
            let stdin: String = call.stdin.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            let agent = call.agent.clone().unwrap_or_default();
            let sub = if agent == "fence_twonode_arbiter" { "gate" } else { "agent" };
            let r = self.run_env(&["fence", sub], &stdin, local, conf);
            if i == 0 {
                side.gate_code = r.code;
                side.gate_out = format!("{}{}", r.stdout, r.stderr);
            } else {
                side.device_ran = true;
                side.device_code = Some(r.code);
            }
            if r.code != 0 {
                break;
            }
        }
        side.secs = t0.elapsed().as_secs_f64();
        side
    }

    /// `twonode fence VICTIM --file CONF` on node `local` (the engine: asks, holds, fences).
    fn engine(&self, conf: &Path, local: &str, victim: &str) -> Side {
        let t0 = Instant::now();
        let r = self.run_env(&["fence", victim, "--action", "off", "--yes", "--file", conf.to_str().unwrap()], "", local, conf);
        let out = format!("{}{}", r.stdout, r.stderr);
        Side {
            local: local.into(),
            gate_code: if out.contains("vote granted") { 0 } else { 1 },
            device_ran: out.contains("power off confirmed"),
            device_code: Some(r.code),
            gate_out: out,
            secs: t0.elapsed().as_secs_f64(),
        }
    }

    fn run_env(&self, args: &[&str], stdin: &str, local: &str, conf: &Path) -> Run {
        use std::io::Write;
        let t0 = Instant::now();
        let mut child = Command::new(bin())
            .args(args)
            .env("TWONODE_LOCAL_NODE", local)
            .env("TWONODE_CLUSTER_CONF", conf)
            .env("TWONODE_FENCE_AUDIT_LOG", &self.audit)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
            secs: t0.elapsed().as_secs_f64(),
        }
    }

    fn reset_power(&self) {
        self.bmc1.set_power(true);
        self.bmc2.set_power(true);
    }

    /// No secret in any argv seen during the test, nor in the logs.
    fn check_secrets(&mut self, outputs: &[String]) {
        let (found, scans) = self.watch.finish();
        assert!(scans >= 2, "the argv scanner ran {scans} times");
        assert!(found.is_empty(), "secret in a process's argv: {found:?}");
        let needles = self.watch.needles.lock().unwrap().clone();
        let mut logs = vec![self.arb.log(), std::fs::read_to_string(&self.audit).unwrap_or_default()];
        logs.extend(outputs.iter().cloned());
        for l in &logs {
            for n in &needles {
                assert!(!l.contains(n.as_str()), "secret {n:?} in a log or output:\n{l}");
            }
            assert!(!l.contains("PRIVATE KEY"), "key material in a log:\n{l}");
        }
    }
}

/// A small deterministic random source (seed printed, so a failing round can be replayed).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

fn seed() -> u64 {
    std::env::var("GATE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    })
}

/// Both fenced daemons at (nearly) the same moment: offsets in ms for node1's and node2's side.
fn race(lab: &Lab, conf: &Path, off1: u64, off2: u64, engine: bool) -> (Side, Side) {
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        let h1 = s.spawn(|| {
            barrier.wait();
            std::thread::sleep(Duration::from_millis(off1));
            if engine { lab.engine(conf, "node1", "node2") } else { lab.fenced(conf, "node1", "node2") }
        });
        let h2 = s.spawn(|| {
            barrier.wait();
            std::thread::sleep(Duration::from_millis(off2));
            if engine { lab.engine(conf, "node2", "node1") } else { lab.fenced(conf, "node2", "node1") }
        });
        (h1.join().unwrap(), h2.join().unwrap())
    })
}

/// Exactly one BMC off; the loser's gate exited 1 and its device never ran.
fn assert_one_fenced(lab: &Lab, round: &str, a: &Side, b: &Side) -> &'static str {
    let off1 = !lab.bmc1.power();
    let off2 = !lab.bmc2.power();
    assert!(off1 ^ off2, "{round}: exactly one node must be fenced; node1 off={off1} node2 off={off2}\n{a:?}\n{b:?}\n{}", lab.arb.log());
    let (winner, loser) = if off2 { (a, b) } else { (b, a) };
    assert_eq!(winner.gate_code, 0, "{round}: winner {winner:?}");
    assert!(winner.device_ran && winner.device_code == Some(0), "{round}: winner's device: {winner:?}");
    assert_eq!(loser.gate_code, 1, "{round}: loser {loser:?}");
    assert!(!loser.device_ran, "{round}: the loser's device must never run: {loser:?}");
    assert!(loser.gate_out.contains("NACK"), "{round}: the loser's gate must name the NACK: {}", loser.gate_out);
    assert!(loser.gate_out.contains("to be fenced"), "{round}: the loser is told what to expect: {}", loser.gate_out);
    if off2 { "node1" } else { "node2" }
}

/// THE PROOF, engine mode (`twonode fence NODE --file`, the gate wrapping the real device): in a
/// split both nodes fence at the same moment, with random start offsets and with either side
/// first: every round exactly one BMC ends off, the other side's gate names the NACK.
#[test]
fn split_race_exactly_one_node_is_fenced_engine() {
    let mut lab = Lab::start();
    let s = seed();
    println!("GATE_SEED={s}");
    let mut rng = Lcg(s);
    let mut wins = std::collections::BTreeMap::new();
    let mut outs = Vec::new();
    let rounds = 10;
    for i in 0..rounds {
        let (o1, o2) = match i {
            0 => (0, 0),
            1 => (0, 250), // node1 clearly first
            2 => (250, 0), // node2 clearly first
            _ => (rng.next(200), rng.next(200)),
        };
        lab.reset_power();
        let conf = lab.conf(&format!("ge{i}"), "login_timeout=\"5\" power_timeout=\"4\"");
        let (a, b) = race(&lab, &conf, o1, o2, true);
        let w = assert_one_fenced(&lab, &format!("engine round {i} (offsets {o1}/{o2} ms)"), &a, &b);
        if i == 1 {
            assert_eq!(w, "node1", "the first to ask wins");
        }
        if i == 2 {
            assert_eq!(w, "node2", "the first to ask wins");
        }
        *wins.entry(w).or_insert(0) += 1;
        outs.push(a.gate_out);
        outs.push(b.gate_out);
    }
    println!("engine rounds: {rounds}, winners: {wins:?}");
    lab.check_secrets(&outs);
}

/// THE PROOF, fenced mode: the gate and the real agent as two processes, as fenced runs the
/// method (`twonode fence gate` exits, the vote stays by the lease, then `twonode fence agent`).
#[test]
fn split_race_exactly_one_node_is_fenced_fenced_mode() {
    let mut lab = Lab::start();
    let s = seed();
    println!("GATE_SEED={s}");
    let mut rng = Lcg(s ^ 0x5eed);
    let mut outs = Vec::new();
    let rounds = 6;
    for i in 0..rounds {
        let (o1, o2) = match i {
            0 => (0, 0),
            1 => (0, 300),
            2 => (300, 0),
            _ => (rng.next(150), rng.next(150)),
        };
        lab.reset_power();
        // the winner's gate may be gone already: the arbiter still NACKs the loser at once
        // (the winner's hold stands), long before this 2 s decision timeout
        let conf = lab.conf(&format!("gf{i}"), "login_timeout=\"2\" power_timeout=\"10\"");
        let (a, b) = race(&lab, &conf, o1, o2, false);
        assert_one_fenced(&lab, &format!("fenced round {i} (offsets {o1}/{o2} ms)"), &a, &b);
        outs.push(a.gate_out);
        outs.push(b.gate_out);
    }
    println!("fenced-mode rounds: {rounds}, every loser told NACK");
    lab.check_secrets(&outs);
}

/// No arbiter, no fencing: both sides' gates exit 1 saying the arbiter is unreachable, both
/// BMCs stay on, in both modes.
#[test]
fn arbiter_unreachable_nobody_is_fenced() {
    let mut lab = Lab::start();
    let conf = lab.conf("gu", "login_timeout=\"3\" power_timeout=\"4\"");
    lab.arb.stop();
    for engine in [false, true] {
        lab.reset_power();
        let (a, b) = race(&lab, &conf, 0, 0, engine);
        assert!(lab.bmc1.power() && lab.bmc2.power(), "nobody may be fenced without the arbiter: {a:?} {b:?}");
        for s in [&a, &b] {
            assert_ne!(s.gate_code, 0, "{s:?}");
            assert!(!s.device_ran, "{s:?}");
            assert!(s.gate_out.contains("unreachable") && s.gate_out.contains("fix the arbiter"), "{s:?}");
        }
        if engine {
            assert_eq!(a.device_code, Some(1), "{a:?}");
        }
    }
    // monitor says so too; status/on never ask
    let r = lab.run_env(&["fence", "gate", "-o", "monitor", "-a", "127.0.0.1", "-u", &lab.arb.port.to_string()], "", "node1", &conf);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let r = lab.run_env(&["fence", "gate"], "action=status\n", "node1", &conf);
    assert_eq!(r.code, 0);
    lab.check_secrets(&[]);
}

/// The winner's hold covers a slow real device: while node1 fences node2 through a BMC that
/// takes 4 s to switch off, node2's fenced retries every 0.5 s and is refused every time.
#[test]
fn winner_hold_covers_a_slow_device_and_the_retrying_loser_is_refused() {
    let mut lab = Lab::start();
    lab.bmc2.fault("delay_s", "4");
    let mut outs = Vec::new();
    for engine in [true, false] {
        lab.reset_power();
        let conf = lab.conf(if engine { "gse" } else { "gsf" }, "login_timeout=\"1\" power_timeout=\"20\"");
        let done = std::sync::atomic::AtomicBool::new(false);
        let (winner, tries) = std::thread::scope(|s| {
            let w = s.spawn(|| {
                let r = if engine { lab.engine(&conf, "node1", "node2") } else { lab.fenced(&conf, "node1", "node2") };
                done.store(true, std::sync::atomic::Ordering::SeqCst);
                r
            });
            std::thread::sleep(Duration::from_millis(300));
            let mut tries = Vec::new();
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                tries.push(lab.fenced(&conf, "node2", "node1"));
                std::thread::sleep(Duration::from_millis(500));
            }
            (w.join().unwrap(), tries)
        });
        let mode = if engine { "engine" } else { "fenced" };
        assert!(winner.secs >= 4.0, "{mode}: the slow device took {:.1} s", winner.secs);
        assert_eq!(winner.device_code, Some(0), "{mode}: {winner:?}\n{}", lab.arb.log());
        assert!(!lab.bmc2.power() && lab.bmc1.power(), "{mode}: node2 off, node1 on");
        assert!(tries.len() >= if engine { 3 } else { 2 }, "{mode}: the loser retried {} times", tries.len());
        for t in &tries {
            assert_eq!(t.gate_code, 1, "{mode}: {t:?}");
            assert!(!t.device_ran, "{mode}: {t:?}");
            assert!(t.gate_out.contains("NACK"), "{mode}: {}", t.gate_out);
        }
        println!("{mode}: hold during a {:.1} s fence; loser refused {} times", winner.secs, tries.len());
        outs.extend(tries.into_iter().map(|t| t.gate_out));
        outs.push(winner.gate_out);
    }
    lab.check_secrets(&outs);
}

/// The argv scanner is not blind: a password on a command line is caught.
#[test]
fn argv_watch_catches_a_password_on_a_command_line() {
    let mut w = ArgvWatch::start();
    let mut c = Command::new("sh").args(["-c", "sleep 1", "x", &format!("passwd={BMC_PASSWORD}")]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let _ = c.kill();
    let _ = c.wait();
    let (found, _) = w.finish();
    assert!(!found.is_empty(), "the scanner must see a password in argv");
}

/// Agent surface: metadata valid against fence-agents' metadata.rng, getopt form, and the
/// binary invoked as fence_twonode_arbiter (a link, as fenced runs agents by name).
#[test]
fn gate_agent_metadata_getopt_and_argv0() {
    let r = twonode(&["fence", "gate", "-o", "metadata"], None);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("resource-agent name=\"fence_twonode_arbiter\""));
    let rng = "/usr/share/cluster/relaxng/metadata.rng";
    if Path::new(rng).exists() && have("xmllint") {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("m.xml");
        std::fs::write(&f, &r.stdout).unwrap();
        let out = Command::new("xmllint").args(["--noout", "--relaxng", rng]).arg(&f).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let arb = Arbiter::start();
    let t = tempfile::tempdir().unwrap();
    let tls = arb.client_cert("gargv");
    let conf = t.path().join("cluster.conf");
    std::fs::write(
        &conf,
        "<?xml version=\"1.0\"?>\n<cluster name=\"gargv\" config_version=\"1\"><cman two_node=\"1\" expected_votes=\"1\"/>\
         <clusternodes><clusternode name=\"node1\" nodeid=\"1\"/><clusternode name=\"node2\" nodeid=\"2\"/></clusternodes></cluster>\n",
    )
    .unwrap();
    let link = t.path().join("fence_twonode_arbiter");
    std::os::unix::fs::symlink(bin(), &link).unwrap();
    let port = arb.port.to_string();
    let args = [
        "-o", "off", "-a", "127.0.0.1", "-u", &port, "-n", "node2", "--local-node", "node1",
        "--tlscacert", tls.ca.to_str().unwrap(), "--tlscert", tls.cert.to_str().unwrap(), "--tlskey", tls.key.to_str().unwrap(),
        "--power-timeout=4", "--timeout=3",
    ];
    let out = Command::new(&link).args(args).env("TWONODE_CLUSTER_CONF", &conf).env("TWONODE_FENCE_AUDIT_LOG", t.path().join("a.log")).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", arb.log());
    assert!(text.contains(&format!("arbiter 127.0.0.1:{port} gave node1 the vote: node1 may fence node2")), "{text}");
    // monitor probes; validate-all checks the parameters without asking
    let out = Command::new(&link).args(["-o", "monitor"]).args(&args[2..]).env("TWONODE_CLUSTER_CONF", &conf).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("INIT accepted"));
    // fencing oneself is refused
    let mut me = args.to_vec();
    me[7] = "node1";
    let out = Command::new(&link).args(&me).env("TWONODE_CLUSTER_CONF", &conf).env("TWONODE_FENCE_AUDIT_LOG", t.path().join("a.log")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fence itself"));
}

// ---- step 4: twonode conf gate-fencing -------------------------------------------------------

const UNGATED: &str = "<?xml version=\"1.0\"?>\n<!-- duo: hand-written, keep the comments -->\n<cluster name=\"duo\" config_version=\"41\">\n\t<cman two_node=\"1\" expected_votes=\"1\"/>\n\t<clusternodes>\n\t\t<clusternode name=\"node1\" nodeid=\"1\" votes=\"1\">\n\t\t\t<fence>\n\t\t\t\t<method name=\"ipmi\">\n\t\t\t\t\t<device name=\"ipmi-n1\" delay=\"15\"/>\n\t\t\t\t</method>\n\t\t\t\t<method name=\"pdu\"> <!-- dual PSU -->\n\t\t\t\t\t<device name=\"apc\" port=\"1\" action=\"off\"/>\n\t\t\t\t\t<device name=\"apc\" port=\"2\" action=\"off\"/>\n\t\t\t\t\t<device name=\"apc\" port=\"1\" action=\"on\"/>\n\t\t\t\t\t<device name=\"apc\" port=\"2\" action=\"on\"/>\n\t\t\t\t</method>\n\t\t\t</fence>\n\t\t</clusternode>\n\t\t<clusternode name=\"node2\" nodeid=\"2\" votes=\"1\">\n\t\t\t<fence>\n\t\t\t\t<method name=\"ipmi\">\n\t\t\t\t\t<device name=\"ipmi-n2\"/>\n\t\t\t\t</method>\n\t\t\t</fence>\n\t\t</clusternode>\n\t</clusternodes>\n\t<fencedevices>\n\t\t<fencedevice name=\"ipmi-n1\" agent=\"fence_ipmilan\" ipaddr=\"10.0.0.11\" login=\"admin\" passwd=\"s3cr3t-pw\" lanplus=\"1\"/>\n\t\t<fencedevice name=\"ipmi-n2\" agent=\"fence_ipmilan\" ipaddr=\"10.0.0.12\" login=\"admin\" passwd=\"s3cr3t-pw\" lanplus=\"1\"/>\n\t\t<fencedevice name=\"apc\" agent=\"fence_apc\" ipaddr=\"10.0.0.20\" login=\"apc\" passwd=\"s3cr3t-pw\"/>\n\t</fencedevices>\n\t<rm/>\n</cluster>\n";

fn xmllint_ok(path: &Path) -> Result<(), String> {
    let rng = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/clusterconf/schema/cluster.rng");
    let out = Command::new("xmllint").args(["--noout", "--relaxng"]).arg(&rng).arg(path).output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into())
    }
}

#[test]
fn conf_gate_fencing_is_lossless_valid_one_bump_and_removable() {
    let t = tempfile::tempdir().unwrap();
    let live = t.path().join("cluster.conf");
    std::fs::write(&live, UNGATED).unwrap();
    let f = live.to_str().unwrap();
    let r = twonode(
        &["conf", "gate-fencing", "--arbiter", "arbiter.example.com:5404", "--ca", "/etc/twonode/arbiter/ca.crt",
          "--cert", "/etc/twonode/arbiter/duo.crt", "--key", "/etc/twonode/arbiter/duo.key", "--hold", "90", "--timeout", "20", "--file", f],
        None,
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("s3cr3t-pw") && !r.stderr.contains("s3cr3t-pw"), "{}", r.stdout);
    assert_eq!(std::fs::read_to_string(&live).unwrap(), UNGATED, "staged: the live file is untouched");
    let staged_path = t.path().join("cluster.conf.new");
    let staged = std::fs::read_to_string(&staged_path).unwrap();
    // lossless: take the added lines and the version away and the original comes back
    let gate_dev = "\t\t\t\t\t<device name=\"twonode-arbiter\"/>\n";
    assert_eq!(staged.matches(gate_dev).count(), 3, "first device of all 3 methods:\n{staged}");
    let fd_line = staged.lines().find(|l| l.contains("agent=\"fence_twonode_arbiter\"")).expect("gate fencedevice").to_string();
    assert!(fd_line.contains("ipaddr=\"arbiter.example.com\"") && fd_line.contains("ipport=\"5404\"") && fd_line.contains("power_timeout=\"90\"") && fd_line.contains("login_timeout=\"20\""), "{fd_line}");
    let back = staged.replace(gate_dev, "").replace(&format!("{fd_line}\n"), "").replace("config_version=\"42\"", "config_version=\"41\"");
    assert_eq!(back, UNGATED, "only the gate lines and the version changed");
    // each method begins with the gate
    for m in ["<method name=\"ipmi\">\n", "<method name=\"pdu\"> <!-- dual PSU -->\n"] {
        for (i, _) in staged.match_indices(m) {
            assert!(staged[i + m.len()..].starts_with(gate_dev), "gate not first after {m:?}");
        }
    }
    // valid for twonode and for the stock schema
    let r = twonode(&["conf", "validate", "--staged", "--file", f], None);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    if have("xmllint") {
        xmllint_ok(&staged_path).unwrap_or_else(|e| panic!("xmllint --relaxng cluster.rng refuses the gated file: {e}\n{staged}"));
    }
    // again: no second gate anywhere, one more bump
    let r = twonode(
        &["conf", "gate-fencing", "--arbiter", "10.0.0.99", "--ca", "/a/ca.crt", "--cert", "/a/duo.crt", "--key", "/a/duo.key", "--file", f],
        None,
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let again = std::fs::read_to_string(&staged_path).unwrap();
    assert_eq!(again.matches("<device name=\"twonode-arbiter\"/>").count(), 3);
    assert!(again.contains("config_version=\"43\"") && again.contains("ipaddr=\"10.0.0.99\"") && !again.contains("power_timeout=\"90\""));
    // relative paths are refused (fenced runs agents elsewhere)
    let r = twonode(&["conf", "gate-fencing", "--arbiter", "h", "--ca", "ca.crt", "--cert", "/c", "--key", "/k", "--file", f], None);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not an absolute path"), "{}", r.stderr);
    // --remove gives back the original, two versions later
    let r = twonode(&["conf", "gate-fencing", "--remove", "--file", f], None);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let removed = std::fs::read_to_string(&staged_path).unwrap();
    assert_eq!(removed, UNGATED.replace("config_version=\"41\"", "config_version=\"44\""));
}

#[test]
fn validator_requires_the_gate_first_in_every_method() {
    let t = tempfile::tempdir().unwrap();
    let live = t.path().join("cluster.conf");
    std::fs::write(&live, UNGATED).unwrap();
    let f = live.to_str().unwrap();
    let r = twonode(&["conf", "gate-fencing", "--arbiter", "10.0.0.9", "--ca", "/a/ca", "--cert", "/a/c", "--key", "/a/k", "--file", f, "--in-place"], None);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let gated = std::fs::read_to_string(&live).unwrap();
    let validate = |text: &str| {
        std::fs::write(&live, text).unwrap();
        let r = twonode(&["conf", "validate", "--file", f], None);
        (r.code, format!("{}{}", r.stdout, r.stderr))
    };
    // node2's method without the gate: error at the method's line:col
    let lines: Vec<&str> = gated.lines().collect();
    let n2 = lines.iter().position(|l| l.contains("clusternode name=\"node2\"")).unwrap();
    let gate_line = n2 + lines[n2..].iter().position(|l| l.contains("twonode-arbiter")).unwrap();
    let mut v = lines.clone();
    v.remove(gate_line);
    let (code, out) = validate(&(v.join("\n") + "\n"));
    assert_eq!(code, 1, "{out}");
    let method_line = gate_line; // the <method> line is just above the removed line (1-based = index)
    assert!(out.contains(&format!(":{method_line}:5: error[fence.gate-missing]")), "{out}");
    assert!(out.contains("method ipmi of node node2"), "{out}");
    // the gate second: error at that device
    let mut v = lines.clone();
    v.swap(gate_line, gate_line + 1);
    let (code, out) = validate(&(v.join("\n") + "\n"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!(":{}:6: error[fence.gate-not-first]", gate_line + 2)), "{out}");
    // two_node off: a warning only
    let (code, out) = validate(&gated.replace("two_node=\"1\" expected_votes=\"1\"", "expected_votes=\"2\""));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("warning[fence.gate-not-two-node]"), "{out}");
    // the file as gate-fencing wrote it is clean
    let (code, out) = validate(&gated);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("gate"), "{out}");
}

/// The whole path an admin takes: an ungated cluster.conf, `conf gate-fencing`, then a split.
#[test]
fn gated_by_conf_gate_fencing_then_a_split_fences_exactly_one() {
    let mut lab = Lab::start();
    let gated = lab.conf("gc", "login_timeout=\"3\" power_timeout=\"4\"");
    let text = std::fs::read_to_string(&gated).unwrap();
    let fd = text.lines().find(|l| l.contains("fence_twonode_arbiter")).unwrap().to_string();
    let attr = |k: &str| fd.split(&format!("{k}=\"")).nth(1).and_then(|r| r.split('"').next()).unwrap().to_string();
    let ungated = text.replace("          <device name=\"twonode-arbiter\"/>\n", "").replace(&format!("{fd}\n"), "");
    let path = lab.dir.path().join("gc-admin.conf");
    std::fs::write(&path, &ungated).unwrap();
    std::fs::write(lab.dir.path().join("gc-ungated.conf"), &ungated).unwrap();
    let r = twonode(
        &["conf", "gate-fencing", "--arbiter", &format!("127.0.0.1:{}", lab.arb.port), "--ca", &attr("tlscacert"), "--cert", &attr("tlscert"),
          "--key", &attr("tlskey"), "--timeout", "3", "--hold", "4", "--in-place", "--file", path.to_str().unwrap()],
        None,
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // no delay= anywhere, but the gate decides the race: no fence.race warning
    let v = twonode(&["conf", "validate", "--file", path.to_str().unwrap()], None);
    assert_eq!(v.code, 0, "{}", v.stdout);
    assert!(!v.stdout.contains("fence.race"), "{}", v.stdout);
    let v = twonode(&["conf", "validate", "--file", lab.dir.path().join("gc-ungated.conf").to_str().unwrap()], None);
    assert!(v.stdout.contains("fence.race"), "the ungated file has the race: {}", v.stdout);
    lab.reset_power();
    let (a, b) = race(&lab, &path, 0, 0, true);
    assert_one_fenced(&lab, "conf-gated round", &a, &b);
    lab.check_secrets(&[a.gate_out, b.gate_out, r.stdout]);
}

// ---- step 5: fence test shows the gate -------------------------------------------------------

#[test]
fn fence_test_probes_the_gate_and_names_the_race_protection() {
    let mut lab = Lab::start();
    let conf = lab.conf("gt", "login_timeout=\"3\" power_timeout=\"4\"");
    let f = conf.to_str().unwrap();
    let audit = lab.audit.to_str().unwrap().to_string();
    let r = twonode(&["fence", "test", "--file", f, "--audit-log", &audit], None);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let gate_rows: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with("node") && l.contains("twonode-arbiter")).collect();
    assert_eq!(gate_rows.len(), 2, "{}", r.stdout);
    assert!(gate_rows.iter().all(|l| l.contains("yes") && l.ends_with("ok")), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("fence race protection: arbiter gate twonode-arbiter (127.0.0.1:{})", lab.arb.port)), "{}", r.stdout);
    assert!(!r.stdout.contains("fence_race"), "{}", r.stdout);
    let r = twonode(&["fence", "test", "--file", f, "--json", "--audit-log", &audit], None);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v["race_protection"].as_str().unwrap().starts_with("arbiter gate"));
    assert!(v["checks"].as_array().unwrap().iter().any(|c| c["driver"] == "arbiter" && c["login"] == true));
    // destructive: the real devices are powered off and on; the gate is not asked for a supervised test
    let r = twonode(&["fence", "test", "--file", f, "--destructive", "--yes", "--audit-log", &audit], None);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stdout.matches("confirmed").count(), 4, "{}", r.stdout);
    assert!(lab.bmc1.power() && lab.bmc2.power());
    // the arbiter down: the gate rows fail, the test fails
    lab.arb.stop();
    let r = twonode(&["fence", "test", "--file", f, "--audit-log", &audit], None);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("arbiter: arbiter unreachable"), "{}", r.stdout);
    lab.check_secrets(&[r.stdout]);
}

// ---- gate-fencing on many shapes (proptest over the library edit) -----------------------------

mod shapes {
    use proptest::prelude::*;
    use twonode::clusterconf::edit::apply;
    use twonode::fence::gate::{conf::remove_op, GateSpec};
    use twonode::clusterconf::model::Model;

    /// A two-node cluster.conf: per node, methods of devices (0 = gate, 1.. = real devices).
    fn render(methods: &[Vec<Vec<u8>>], gate_defined: bool) -> String {
        let mut s = String::from("<?xml version=\"1.0\"?>\n<cluster name=\"shapes\" config_version=\"7\">\n  <cman two_node=\"1\" expected_votes=\"1\"/>\n  <clusternodes>\n");
        for (i, ms) in methods.iter().enumerate() {
            s.push_str(&format!("    <clusternode name=\"n{}\" nodeid=\"{}\">\n      <fence>\n", i + 1, i + 1));
            for (j, devs) in ms.iter().enumerate() {
                s.push_str(&format!("        <method name=\"m{j}\">\n"));
                for d in devs {
                    if *d == 0 {
                        s.push_str("          <device name=\"twonode-arbiter\"/>\n");
                    } else {
                        s.push_str(&format!("          <device name=\"dev{d}\" port=\"{}\"/>\n", i + 1));
                    }
                }
                s.push_str("        </method>\n");
            }
            s.push_str("      </fence>\n    </clusternode>\n");
        }
        s.push_str("  </clusternodes>\n  <fencedevices>\n");
        for d in 1..=3 {
            s.push_str(&format!("    <fencedevice name=\"dev{d}\" agent=\"fence_apc\" ipaddr=\"10.0.0.{d}\" login=\"a\" passwd=\"x\"/>\n"));
        }
        if gate_defined {
            s.push_str("    <fencedevice name=\"twonode-arbiter\" agent=\"fence_twonode_arbiter\" ipaddr=\"old\"/>\n");
        }
        s.push_str("  </fencedevices>\n</cluster>\n");
        s
    }

    fn method() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(1u8..=3, 1..=3).prop_flat_map(|real| {
            let n = real.len();
            (Just(real), proptest::option::of(0..=n)).prop_map(|(mut r, gate_at)| {
                if let Some(i) = gate_at {
                    r.insert(i, 0);
                }
                r
            })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn every_method_starts_with_exactly_one_gate_and_remove_undoes_it(
            n1 in proptest::collection::vec(method(), 1..=3),
            n2 in proptest::collection::vec(method(), 1..=3),
        ) {
            let any_gate = n1.iter().chain(n2.iter()).any(|m| m.contains(&0));
            let src = render(&[n1.clone(), n2.clone()], any_gate);
            let spec = GateSpec { host: "10.9.9.9".into(), port: None, ca: "/c".into(), cert: "/d".into(), key: "/k".into(), timeout: Some(5), hold: None };
            let out = apply(src.as_bytes(), &spec.edit_op().unwrap(), None).expect("gate-fencing applies");
            let (_d, m) = Model::parse(&out).unwrap();
            prop_assert_eq!(m.version(), Some(8));
            for n in &m.nodes {
                for mt in &n.methods {
                    let names: Vec<&str> = mt.devices.iter().filter_map(|d| d.name.as_deref()).collect();
                    prop_assert_eq!(names[0], "twonode-arbiter");
                    prop_assert_eq!(names.iter().filter(|x| **x == "twonode-arbiter").count(), 1);
                    prop_assert!(names.len() >= 2);
                }
            }
            prop_assert_eq!(m.fencedevices.iter().filter(|f| f.agent.as_deref() == Some("fence_twonode_arbiter")).count(), 1);
            let rep = twonode::fence::validate_conf(&out, &Default::default());
            prop_assert!(!rep.diagnostics.iter().any(|d| d.code.starts_with("fence.gate")), "{:?}", rep.diagnostics);
            // removal: no gate left; from a file that had none, the original comes back (version + 2)
            let back = apply(&out, &remove_op(), None).expect("remove");
            let text = String::from_utf8(back).unwrap();
            prop_assert!(!text.contains("twonode-arbiter"));
            if !any_gate {
                prop_assert_eq!(text, src.replace("config_version=\"7\"", "config_version=\"9\""));
            }
        }
    }
}
