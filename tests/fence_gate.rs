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

/// The reference server: corosync-qnetd (TLS off: its NSS database is not ours), same client.
#[test]
fn client_against_corosync_qnetd() {
    if !have("corosync-qnetd") {
        eprintln!("corosync-qnetd not installed: skipped (scripts/install-deps installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut started = None;
    for _ in 0..5 {
        let port = free_tcp_port();
        let d = dir.path();
        let mut child = Command::new("corosync-qnetd")
            .args(["-f", "-d", "-s", "off", "-l", "127.0.0.1", "-p", &port.to_string(), "-S"])
            .arg(format!(
                "lock_file={},local_socket_file={},nss_db_dir={}",
                d.join("lock").display(),
                d.join("sock").display(),
                d.join("nss").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("qnetd.log")).unwrap())
            .spawn()
            .unwrap();
        if wait_listening(port, &mut child, Duration::from_secs(10)) {
            started = Some((port, child));
            break;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    let (port, child) = started.expect("corosync-qnetd did not start");
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _k = Kill(child);
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
