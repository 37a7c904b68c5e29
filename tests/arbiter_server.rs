//! The arbiter daemon (`twonode arbiter serve`) against raw TCP / TLS clients on loopback:
//! framing, the 32 KiB cap, malformed input, STARTTLS + client certificate rules, the status
//! socket and SIGTERM. The server runs in-process (tokio) on 127.0.0.1 with an OS-chosen port,
//! or as the real binary for the signal test.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use twonode::quorum::arbiter::certs::{self, CertDir};
use twonode::quorum::arbiter::server::{self, ServerConfig};
use twonode::quorum::arbiter::wire::{self, Init, Message, ReplyErrorCode, RingId, TieBreaker};

struct Running {
    addr: SocketAddr,
    _server: server::Background,
}

impl Running {
    fn start(cfg: ServerConfig) -> Running {
        let server = server::Background::start(cfg).expect("server start");
        Running { addr: server.addr(), _server: server }
    }
    /// Still serving: a fresh client gets a PREINIT_REPLY.
    fn alive(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(self.addr) else { return false };
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        send(&mut s, &preinit(1, "alive"));
        matches!(recv(&mut s), Some(Message::PreinitReply { .. }))
    }
}

fn preinit(seq: u32, cluster: &str) -> Message {
    Message::Preinit { seq: Some(seq), cluster_name: Some(cluster.into()) }
}

fn init(seq: u32, node: u32) -> Message {
    Message::Init(Init {
        seq: Some(seq),
        supported_messages: Some(wire::all_msg_types()),
        supported_options: Some(wire::all_opt_types()),
        node_id: Some(node),
        decision_algorithm: Some(1),
        heartbeat_interval: Some(8000),
        tie_breaker: Some(TieBreaker::Lowest),
        ring_id: Some(RingId { node_id: 1, seq: 4 }),
    })
}

fn send<W: Write>(s: &mut W, m: &Message) {
    s.write_all(&m.encode().unwrap()).unwrap();
    s.flush().unwrap();
}

/// One message, or None on EOF / error / timeout.
fn recv<R: Read>(s: &mut R) -> Option<Message> {
    let mut hdr = [0u8; 6];
    s.read_exact(&mut hdr).ok()?;
    let len = u32::from_be_bytes([hdr[2], hdr[3], hdr[4], hdr[5]]) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    let mut all = hdr.to_vec();
    all.extend(body);
    Message::decode(&all).ok()
}

fn tls_off() -> ServerConfig {
    server::loopback_config()
}

fn tls_on(dir: &Path) -> ServerConfig {
    certs::init(&CertDir::new(dir)).unwrap();
    let mut c = server::loopback_config();
    c.tls.mode = "on".into();
    c.tls.client_cert_required = true;
    c.tls.cert = dir.join(certs::SERVER_CERT);
    c.tls.key = dir.join(certs::SERVER_KEY);
    c.tls.ca = dir.join(certs::CA_CERT);
    c.finish().unwrap();
    c
}

fn error_of(m: &Option<Message>) -> Option<ReplyErrorCode> {
    match m {
        Some(Message::ServerError { error, .. }) => *error,
        Some(Message::InitReply(r)) => r.error,
        _ => None,
    }
}

#[test]
fn preinit_and_init_in_clear_text_when_tls_is_off() {
    let srv = Running::start(tls_off());
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    send(&mut s, &preinit(1, "qlab"));
    match recv(&mut s) {
        Some(Message::PreinitReply { seq, tls, .. }) => {
            assert_eq!(seq, Some(1));
            assert_eq!(tls, Some(wire::TlsSupported::Unsupported));
        }
        other => panic!("expected PREINIT_REPLY, got {other:?}"),
    }
    send(&mut s, &init(2, 1));
    let r = recv(&mut s);
    assert_eq!(error_of(&r), Some(ReplyErrorCode::NoError), "{r:?}");
    send(&mut s, &Message::EchoRequest { seq: Some(3) });
    assert!(matches!(recv(&mut s), Some(Message::EchoReply { seq: Some(3) })));
}

#[test]
fn garbage_and_truncated_frames_never_crash_the_server() {
    let srv = Running::start(tls_off());
    // random garbage
    for junk in [&b"\xff\xff\xff\xff\xff\xff\x00\x01"[..], b"GET / HTTP/1.0\r\n\r\n", &[0u8; 3][..]] {
        let mut s = TcpStream::connect(srv.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(junk).unwrap();
        let _ = recv(&mut s);
    }
    // a known type whose TLV length runs past the frame
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&[0, 0, 0, 0, 0, 6, 0, 0, 0, 9, 1, 2]).unwrap();
    let r = recv(&mut s);
    assert!(matches!(r, Some(Message::ServerError { .. }) | None), "{r:?}");
    // half a frame, then hang up
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.write_all(&[0, 3, 0, 0, 1, 0, 0, 0]).unwrap();
    drop(s);
    // an unknown message type gets an error reply, the connection stays usable
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&[0x12, 0x34, 0, 0, 0, 0]).unwrap();
    assert_eq!(error_of(&recv(&mut s)), Some(ReplyErrorCode::UnsupportedMessage));
    send(&mut s, &preinit(1, "qlab"));
    assert!(matches!(recv(&mut s), Some(Message::PreinitReply { .. })));
    assert!(srv.alive());
}

#[test]
fn oversized_message_is_skipped_and_answered_not_buffered() {
    let srv = Running::start(tls_off());
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // 1 MiB body announced and sent: far over the 32 KiB cap
    let len: u32 = 1 << 20;
    let mut big = vec![0u8, 0];
    big.extend(len.to_be_bytes());
    big.extend(std::iter::repeat_n(0xAAu8, len as usize));
    s.write_all(&big).unwrap();
    assert_eq!(error_of(&recv(&mut s)), Some(ReplyErrorCode::MessageTooLong));
    // the stream is back in sync afterwards
    send(&mut s, &preinit(7, "qlab"));
    match recv(&mut s) {
        Some(Message::PreinitReply { seq, .. }) => assert_eq!(seq, Some(7)),
        other => panic!("expected PREINIT_REPLY after the skipped message, got {other:?}"),
    }
    // a 4 GiB announcement is not waited for in memory either: the server answers at once
    let mut s2 = TcpStream::connect(srv.addr).unwrap();
    s2.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s2.write_all(&[0, 0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]).unwrap();
    assert_eq!(error_of(&recv(&mut s2)), Some(ReplyErrorCode::MessageTooLong));
    assert!(srv.alive());
}

#[test]
fn init_before_preinit_and_tls_required_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let mut cfg = tls_on(t.path());
    cfg.tls.mode = "required".into();
    cfg.finish().unwrap();
    let srv = Running::start(cfg);
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    send(&mut s, &preinit(1, "qlab"));
    assert!(matches!(recv(&mut s), Some(Message::PreinitReply { tls: Some(wire::TlsSupported::Required), .. })));
    // INIT without TLS when TLS is required: refused, no vote machinery reached
    send(&mut s, &init(2, 1));
    assert_eq!(error_of(&recv(&mut s)), Some(ReplyErrorCode::TlsRequired));
}

// ---- TLS clients (OpenSSL), the way corosync-qdevice talks: PREINIT, STARTTLS, TLS on the socket ----

fn client_files(dir: &Path, cluster: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = certs::client_pem(&CertDir::new(dir), cluster).unwrap();
    let c = dir.join(format!("client-{cluster}.crt"));
    let k = dir.join(format!("client-{cluster}.key"));
    std::fs::write(&c, cert).unwrap();
    std::fs::write(&k, key).unwrap();
    (c, k)
}

fn starttls(
    addr: SocketAddr,
    cluster: &str,
    ca: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<openssl::ssl::SslStream<TcpStream>, String> {
    use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode};
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    send(&mut s, &preinit(1, cluster));
    let r = recv(&mut s);
    assert!(matches!(r, Some(Message::PreinitReply { .. })), "{r:?}");
    send(&mut s, &Message::StartTls { seq: Some(2) });
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_ca_file(ca).unwrap();
    b.set_verify(SslVerifyMode::PEER);
    if let Some((c, k)) = client {
        b.set_certificate_file(c, SslFiletype::PEM).unwrap();
        b.set_private_key_file(k, SslFiletype::PEM).unwrap();
    }
    let mut conf = b.build().configure().unwrap();
    conf.set_verify_hostname(false);
    conf.set_use_server_name_indication(false);
    let mut t = conf.connect("Qnetd Server", s).map_err(|e| e.to_string())?;
    // the server certificate is the one corosync-qdevice expects
    let cn = t.ssl().peer_certificate().and_then(|c| c.to_der().ok()).and_then(|d| certs::cert_common_name(&d));
    assert_eq!(cn.as_deref(), Some(certs::SERVER_CN));
    // TLS 1.3 may report a rejected client certificate only at the first read or write
    t.write_all(&init(3, 1).encode().unwrap()).map_err(|e| format!("write after handshake: {e}"))?;
    match recv(&mut t) {
        Some(Message::InitReply(r)) if r.error == Some(ReplyErrorCode::NoError) => Ok(t),
        other => Err(format!("no successful INIT_REPLY: {other:?}")),
    }
}

#[test]
fn tls_with_the_cluster_certificate_works() {
    let t = tempfile::tempdir().unwrap();
    let srv = Running::start(tls_on(t.path()));
    let (c, k) = client_files(t.path(), "qlab");
    let mut tls = starttls(srv.addr, "qlab", &t.path().join(certs::CA_CERT), Some((&c, &k))).expect("TLS session");
    send(&mut tls, &Message::EchoRequest { seq: Some(9) });
    assert!(matches!(recv(&mut tls), Some(Message::EchoReply { seq: Some(9) })));
}

#[test]
fn wrong_cluster_name_unknown_ca_or_no_certificate_is_rejected() {
    let t = tempfile::tempdir().unwrap();
    let srv = Running::start(tls_on(t.path()));
    let ca = t.path().join(certs::CA_CERT);
    // certificate for another cluster than the one announced in PREINIT
    let (c, k) = client_files(t.path(), "other");
    let r = starttls(srv.addr, "qlab", &ca, Some((&c, &k)));
    assert!(r.is_err(), "a certificate for cluster 'other' must not serve cluster 'qlab'");
    // certificate signed by a different CA
    let other = tempfile::tempdir().unwrap();
    certs::init(&CertDir::new(other.path())).unwrap();
    let (c2, k2) = client_files(other.path(), "qlab");
    assert!(starttls(srv.addr, "qlab", &ca, Some((&c2, &k2))).is_err(), "a foreign CA's certificate must be refused");
    // no certificate at all
    assert!(starttls(srv.addr, "qlab", &ca, None).is_err(), "no client certificate must be refused");
    assert!(srv.alive());
}

#[test]
fn status_socket_lists_connected_clusters() {
    let t = tempfile::tempdir().unwrap();
    let mut cfg = tls_off();
    cfg.status_socket = t.path().join("status.sock");
    let sock = cfg.status_socket.clone();
    let srv = Running::start(cfg);
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    send(&mut s, &preinit(1, "qlab"));
    recv(&mut s).unwrap();
    send(&mut s, &init(2, 1));
    recv(&mut s).unwrap();
    let v = server::query_status(&sock).unwrap();
    let clusters = v["arbiter"]["clusters"].as_array().cloned().unwrap_or_default();
    assert!(clusters.iter().any(|c| c["name"] == "qlab"), "{v}");
    let text = server::render_status(&v);
    assert!(text.contains("Cluster \"qlab\""), "{text}");
    assert!(text.contains("Node ID 1"), "{text}");
}

/// A config file in `dir` for the real daemon: loopback, a port the OS picks, TLS off, a status
/// socket; `extra` goes before the `[tls]` table. Returns (config file, status socket).
fn daemon_config(dir: &Path, extra: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let sock = dir.join("status.sock");
    let conf = dir.join("arbiter.toml");
    let text = format!("listen = \"127.0.0.1\"\nport = 0\nstatus_socket = \"{}\"\n{extra}[tls]\nmode = \"off\"\n", sock.display());
    std::fs::write(&conf, text).unwrap();
    (conf, sock)
}

#[test]
fn sigterm_stops_the_daemon_cleanly() {
    let t = tempfile::tempdir().unwrap();
    // port 0: the OS picks; the test only needs the process to come up and go down
    let (conf, sock) = daemon_config(t.path(), "");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_twonode"))
        .args(["arbiter", "serve", "--config"])
        .arg(&conf)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    for _ in 0..100 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(sock.exists(), "status socket never appeared");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_twonode"))
        .args(["arbiter", "status", "--socket"])
        .arg(&sock)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("twonode arbiter"));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let mut code = None;
    for _ in 0..100 {
        if let Some(st) = child.try_wait().unwrap() {
            code = Some(st);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _guard = Kill(child);
    let st = code.expect("arbiter did not stop within 5 s of SIGTERM");
    assert!(st.success(), "{st:?}");
    assert!(!sock.exists(), "status socket left behind");
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn unknown_cluster_is_refused_and_closed() {
    let mut cfg = tls_off();
    cfg.arbiter.allowed_clusters = vec!["qlab".into()];
    let srv = Running::start(cfg);
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    send(&mut s, &preinit(1, "intruder"));
    let r = recv(&mut s);
    assert!(matches!(r, Some(Message::ServerError { .. })), "{r:?}");
    assert!(recv(&mut s).is_none(), "the connection must be closed");
    // the allowed cluster still works
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    send(&mut s, &preinit(1, "qlab"));
    assert!(matches!(recv(&mut s), Some(Message::PreinitReply { .. })));
}

#[test]
fn malformed_node_list_gets_no_vote() {
    let srv = Running::start(tls_off());
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    send(&mut s, &preinit(1, "qlab"));
    recv(&mut s).unwrap();
    send(&mut s, &init(2, 1));
    recv(&mut s).unwrap();
    // NODE_LIST whose NODE_INFO option claims more bytes than the frame holds
    let mut body = Vec::new();
    body.extend([0, 0, 0, 4, 0, 0, 0, 3]); // SEQ = 3
    body.extend([0, 18, 0, 1, 2]); // NODE_LIST_TYPE = membership
    body.extend([0, 17, 0, 40, 0, 9, 0, 4, 0, 0, 0, 1]); // NODE_INFO truncated
    let mut frame = vec![0, 10];
    frame.extend((body.len() as u32).to_be_bytes());
    frame.extend(body);
    s.write_all(&frame).unwrap();
    let mut got_ack = false;
    while let Some(m) = recv(&mut s) {
        if matches!(m, Message::NodeListReply { vote: Some(wire::Vote::Ack), .. } | Message::VoteInfo { vote: Some(wire::Vote::Ack), .. }) {
            got_ack = true;
        }
    }
    assert!(!got_ack, "a malformed membership list must never earn a vote");
}

/// The load generator (also used by bench/arbiter-bench) against the in-process server:
/// every simulated cluster gets its vote, and after a 1:1 split exactly one half of each.
#[test]
fn simulated_clusters_get_the_vote_and_one_half_after_a_split() {
    use twonode::quorum::arbiter::loadgen::{run, LoadSpec};
    let mut cfg = tls_off();
    // a fresh arbiter gives a split half no vote before a previous instance's leases are over:
    // keep that restart hold short here (about 4.3 s)
    cfg.arbiter.restart_hold_heartbeat_ms = 1000;
    let srv = Running::start(cfg);
    let spec = LoadSpec {
        target: srv.addr,
        clusters: 20,
        heartbeat_ms: 1000,
        hold: Duration::from_millis(500),
        split: true,
        pid: None,
        prefix: "t".into(),
        vote_timeout: Duration::from_secs(20),
        concurrency: 8,
        conn_offset: 0,
        samples: false,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let r = rt.block_on(run(spec)).unwrap();
    assert_eq!(r.errors, 0, "{r:?}");
    assert_eq!(r.votes, 20, "{r:?}");
    assert_eq!(r.split_votes, 20, "one half of every split cluster holds the vote: {r:?}");
}

/// A qdevice-like client of cluster `cluster`, node `node`, reporting `ring` with `members`:
/// PREINIT, INIT, config list {1,2}, membership list. Answers VOTE_INFO; returns the socket.
fn join(addr: SocketAddr, cluster: &str, node: u32, ring: RingId, members: &[u32]) -> TcpStream {
    use twonode::quorum::arbiter::wire::{NodeInfo, NodeList, NodeListType};
    let nl = |seq: u32, t: NodeListType, r: Option<RingId>, ids: &[u32]| {
        Message::NodeList(NodeList {
            seq: Some(seq),
            list_type: Some(t),
            ring_id: r,
            nodes: ids.iter().map(|i| NodeInfo { node_id: *i, data_center_id: 0, node_state: None }).collect(),
            ..NodeList::default()
        })
    };
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    send(&mut s, &preinit(1, cluster));
    assert!(matches!(recv(&mut s), Some(Message::PreinitReply { .. })));
    let Message::Init(mut i) = init(2, node) else { unreachable!() };
    i.ring_id = Some(ring);
    send(&mut s, &Message::Init(i));
    assert!(matches!(recv(&mut s), Some(Message::InitReply(_))));
    send(&mut s, &nl(3, NodeListType::InitialConfig, None, &[1, 2]));
    assert!(matches!(recv(&mut s), Some(Message::NodeListReply { .. })));
    send(&mut s, &nl(4, NodeListType::Membership, Some(ring), members));
    // the reply comes before any VOTE_INFO: the arbiter has taken the membership in
    assert!(matches!(recv(&mut s), Some(Message::NodeListReply { .. })));
    s
}

/// `--log-format json`: every stderr line of the daemon is one JSON object with timestamp and
/// level; decisions carry event, cluster, node and ring (ACK for a whole cluster, the restart
/// hold making a split cluster wait, with its reason, a client closing).
#[test]
fn json_logs_one_object_per_line_with_decision_fields() {
    use std::io::BufRead;
    let t = tempfile::tempdir().unwrap();
    let conf = t.path().join("arbiter.toml");
    // the config file says text; the command line wins
    std::fs::write(&conf, "listen = \"127.0.0.1\"\nport = 0\nstatus_socket = \"\"\nlog_format = \"text\"\n[tls]\nmode = \"off\"\n").unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_twonode"))
        .args(["arbiter", "serve", "--log-format", "json", "--config"])
        .arg(&conf)
        .env_remove("TWONODE_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stderr = child.stderr.take().unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let guard = Kill(child);
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines: Vec<String> = Vec::new();
    let wait_for = |what: &str, pred: &dyn Fn(&serde_json::Value) -> bool, lines: &mut Vec<String>| -> serde_json::Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(v) = lines.iter().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).find(|v| pred(v)) {
                return v;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => lines.push(l),
                Err(_) => panic!("no log line with {what}; got:\n{}", lines.join("\n")),
            }
        }
    };
    let started = wait_for("message 'arbiter started'", &|v| v["message"] == "arbiter started", &mut lines);
    let addr: SocketAddr = started["listen"].as_str().unwrap().parse().unwrap();
    // a whole cluster gets its vote at once, even during the restart hold
    let r4 = RingId { node_id: 1, seq: 4 };
    let _w1 = join(addr, "whole", 1, r4, &[1, 2]);
    let _w2 = join(addr, "whole", 2, r4, &[1, 2]);
    for n in [1, 2] {
        let ack = wait_for(&format!("event=ack node={n}"), &|v| v["event"] == "ack" && v["cluster"] == "whole" && v["node"] == n, &mut lines);
        assert_eq!(ack["ring"], "1/4", "{ack}");
        assert_eq!(ack["level"], "INFO", "{ack}");
    }
    // a split cluster waits for the restart hold (the reason is in the line)
    let _s1 = join(addr, "split", 1, RingId { node_id: 1, seq: 8 }, &[1]);
    let s2 = join(addr, "split", 2, RingId { node_id: 2, seq: 8 }, &[2]);
    let w = wait_for("event=waiting", &|v| v["event"] == "waiting" && v["cluster"] == "split", &mut lines);
    assert!(w["reason"].as_str().unwrap_or("").contains("restart hold"), "{w}");
    assert_eq!(w["ring"], "1/8", "tie-breaker lowest: {w}");
    drop(s2);
    let c = wait_for("event=closed_by_peer", &|v| v["event"] == "closed_by_peer" && v["cluster"] == "split", &mut lines);
    assert_eq!(c["node"], 2, "{c}");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    wait_for("message 'arbiter stopped'", &|v| v["message"] == "arbiter stopped", &mut lines);
    drop(guard);
    let _ = reader.join();
    lines.extend(rx.try_iter());
    assert!(lines.len() >= 8, "{lines:?}");
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v.is_object() && v["timestamp"].is_string() && v["level"].is_string() && v["message"].is_string(), "{l}");
    }
}

// ---- `serve --workers N`: the sockets in worker processes, the decisions in one core ----

/// The real binary serving `conf`; stopped (SIGKILL) on drop if still running.
struct Daemon(std::process::Child);

impl Daemon {
    fn start(conf: &Path, status: &Path) -> (Daemon, SocketAddr) {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_twonode"));
        cmd.args(["arbiter", "serve", "--config"]).arg(conf).env("TWONODE_LOG", "warn");
        Daemon::start_cmd(cmd, status)
    }
    /// Run `cmd` (an `arbiter serve`) until its status socket tells the address it listens on.
    fn start_cmd(mut cmd: std::process::Command, status: &Path) -> (Daemon, SocketAddr) {
        let d = Daemon(cmd.spawn().unwrap());
        for _ in 0..200 {
            if let Ok(v) = server::query_status(status) {
                let addr = v["server"]["listen"].as_str().unwrap().parse().unwrap();
                return (d, addr);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the arbiter never answered on its status socket");
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
    /// The worker processes (children of the daemon).
    fn workers(&self) -> Vec<u32> {
        let mut v = Vec::new();
        for t in std::fs::read_dir(format!("/proc/{}/task", self.pid())).unwrap().flatten() {
            let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            v.extend(kids.split_whitespace().map(|p| p.parse::<u32>().unwrap()));
        }
        v
    }
    /// Exit status within `secs`.
    fn wait(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        for _ in 0..secs * 20 {
            if let Some(st) = self.0.try_wait().unwrap() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn alive(pid: u32) -> bool {
    // a zombie (exited, not yet reaped) counts as gone
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

fn sigterm(pid: u32) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
}

#[test]
fn workers_serve_tls_clients_and_stop_with_the_daemon() {
    let t = tempfile::tempdir().unwrap();
    certs::init(&CertDir::new(t.path())).unwrap();
    let status = t.path().join("status.sock");
    let conf = t.path().join("arbiter.toml");
    std::fs::write(
        &conf,
        format!(
            "listen = \"127.0.0.1\"\nport = 0\nworkers = 2\nstatus_socket = \"{}\"\n[tls]\nmode = \"on\"\nclient_cert_required = true\n\
             cert = \"{}\"\nkey = \"{}\"\nca = \"{}\"\n",
            status.display(),
            t.path().join(certs::SERVER_CERT).display(),
            t.path().join(certs::SERVER_KEY).display(),
            t.path().join(certs::CA_CERT).display()
        ),
    )
    .unwrap();
    let (mut d, addr) = Daemon::start(&conf, &status);
    let workers = d.workers();
    assert_eq!(workers.len(), 2, "two worker processes: {workers:?}");
    for w in &workers {
        let cmd = std::fs::read_to_string(format!("/proc/{w}/cmdline")).unwrap().replace('\0', " ");
        assert!(cmd.contains("arbiter worker"), "{cmd}");
    }
    // clients over both workers (each accepts from the shared socket): TLS, the cluster's
    // certificate checked by the core, messages answered
    let ca = t.path().join(certs::CA_CERT);
    let mut sessions = Vec::new();
    for i in 0..6 {
        let cluster = format!("w{i}");
        let (c, k) = client_files(t.path(), &cluster);
        let mut s = starttls(addr, &cluster, &ca, Some((&c, &k))).expect("TLS session through a worker");
        send(&mut s, &Message::EchoRequest { seq: Some(40 + i) });
        assert!(matches!(recv(&mut s), Some(Message::EchoReply { seq: Some(x) }) if x == 40 + i));
        sessions.push(s);
    }
    let (c, k) = client_files(t.path(), "other");
    assert!(starttls(addr, "w0", &ca, Some((&c, &k))).is_err(), "another cluster's certificate is refused through a worker too");
    let v = server::query_status(&status).unwrap();
    assert_eq!(v["server"]["workers"], 2, "{v}");
    let names: Vec<String> = v["arbiter"]["clusters"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_string()).collect();
    for i in 0..6 {
        assert!(names.contains(&format!("w{i}")), "{names:?}");
    }
    // SIGTERM: clients closed, workers gone, exit 0, status socket removed
    sigterm(d.pid());
    let st = d.wait(10).expect("the arbiter did not stop within 10 s of SIGTERM");
    assert!(st.success(), "{st:?}");
    for s in &mut sessions {
        assert!(recv(s).is_none(), "a client was left open");
    }
    for w in &workers {
        assert!(!alive(*w), "worker {w} outlived the daemon");
    }
    assert!(!status.exists());
}

#[test]
fn workers_carry_load_generators_in_several_processes_and_a_lost_worker_stops_the_arbiter() {
    let t = tempfile::tempdir().unwrap();
    let (conf, status) = daemon_config(t.path(), "workers = 3\n");
    std::fs::write(&conf, std::fs::read_to_string(&conf).unwrap() + "[arbiter]\nrestart_hold_heartbeat_ms = 1000\n").unwrap();
    let (mut d, addr) = Daemon::start(&conf, &status);
    // the restart hold (one lease of the assumed heartbeat): no split decision before it ends
    std::thread::sleep(Duration::from_millis(4500));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_twonode"))
        .args(["--json", "arbiter", "loadgen", "--clusters", "40", "--heartbeat-ms", "1000", "--hold-s", "1", "--split", "--processes", "2"])
        .arg(format!("--target={addr}"))
        .arg(format!("--pid={}", d.pid()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let r: serde_json::Value = serde_json::from_str(text.lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["processes"], 2, "{r}");
    assert_eq!(r["votes"], 40, "{r}");
    assert_eq!(r["split_votes"], 40, "one half of every split cluster holds the vote: {r}");
    assert!(r["rss_kb"].as_u64().unwrap() > 0, "the arbiter and its workers were sampled: {r}");
    // a worker that dies takes its clients' state with it: the whole arbiter stops (non-zero)
    let workers = d.workers();
    assert_eq!(workers.len(), 3);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(workers[0] as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    let st = d.wait(10).expect("the arbiter went on without one of its workers");
    assert!(!st.success(), "{st:?}");
    std::thread::sleep(Duration::from_millis(300));
    for w in &workers[1..] {
        assert!(!alive(*w), "worker {w} outlived the daemon");
    }
}

#[test]
fn workers_refuse_to_start_from_another_program() {
    // a worker is `twonode arbiter worker`; this test harness must not be run as one
    let mut cfg = tls_off();
    cfg.workers = 2;
    let e = server::Background::start(cfg).err().expect("an embedded arbiter with workers must not start").to_string();
    assert!(e.contains("needs the twonode program"), "{e}");
}

#[test]
fn out_of_descriptors_the_loop_waits_logs_once_and_accepts_again() {
    let t = tempfile::tempdir().unwrap();
    let (conf, status) = daemon_config(t.path(), "");
    let log = t.path().join("arbiter.log");
    // a descriptor limit of 48: about 35 clients fit beside the daemon's own descriptors
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "ulimit -n 48 && exec \"$0\" arbiter serve --config \"$1\" 2>\"$2\""])
        .arg(env!("CARGO_BIN_EXE_twonode"))
        .arg(&conf)
        .arg(&log)
        .env("TWONODE_LOG", "info");
    let (d, addr) = Daemon::start_cmd(cmd, &status);
    // 60 clients: the kernel completes every connection, the daemon accepts what its limit allows
    let mut clients: Vec<TcpStream> = (0..60).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(1000));
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("accept failed").count(), 1, "one warning while the limit holds, not one per retry:\n{text}");
    assert!(text.contains("raise LimitNOFILE or set workers"), "{text}");
    // the last client waits in the backlog; when others leave, it is taken and served
    let mut last = clients.pop().unwrap();
    clients.truncate(10);
    last.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    send(&mut last, &preinit(1, "late"));
    assert!(matches!(recv(&mut last), Some(Message::PreinitReply { .. })), "a client from the backlog was never served");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("accepting connections again"), "{text}");
    drop(d);
}
