//! A corosync-qdevice-style client of the qnetd protocol: what twonode's fence gate
//! (`twonode fence gate`), `quorum status`, `doctor` and the lab use to talk to an arbiter
//! (`twonode arbiter serve`, or a real corosync-qnetd).
//!
//! Two layers, like the server:
//! * [`Session`]: the sans-IO protocol state machine. It produces the messages corosync-qdevice
//!   sends (PREINIT, STARTTLS, INIT with node id / ffsplit / tie-breaker / heartbeat,
//!   SET_OPTION, the config and membership node lists, ECHO_REQUEST, VOTE_INFO_REPLY) and turns
//!   the arbiter's replies into events (TLS wanted, INIT accepted, the vote, an error);
//! * a blocking driver over `std::net::TcpStream` and OpenSSL (the same library as the
//!   server: corosync-qnetd's server certificate is named "Qnetd Server", with a space, which
//!   OpenSSL verifies by comparing the CN ourselves, as NSS does in corosync-qdevice).
//!
//! Public API (small on purpose):
//! * [`probe`]: TCP + (TLS) + INIT accepted + one echo round trip → [`ProbeReport`];
//! * [`ask_vote`]: ask for the cluster's vote for a membership and return the decision
//!   ([`VoteOutcome`]: ACK, NACK, or no decision within the timeout), then close the
//!   connection: an ACK then stays with this node for the arbiter's lease (≥ 2 × heartbeat);
//! * [`ask_and_hold`]: the same, but on ACK the connection stays open in a background thread
//!   ([`VoteHold`]) that answers the arbiter and sends echo requests, so the vote stays with
//!   this node for as long as the caller works (its real fence device), plus the lease after
//!   [`VoteHold::release`].
//!
//! Safety rule of the client: once an ACK was handed to the caller, a later VOTE_INFO(NACK) is
//! never confirmed with VOTE_INFO_REPLY while the caller may still act on the vote (a reply
//! would tell the arbiter the vote is no longer used, and it could give it to the other node).
//! The arbiter then keeps the vote here until this connection has been silent for its lease.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::wire::{
    self, DecisionAlgorithm, Init, Message, NodeInfo, NodeList, NodeListType, ReplyErrorCode, RingId, TieBreaker,
    TlsSupported, Vote,
};

/// Name corosync-qdevice expects in the arbiter's certificate.
pub const SERVER_NAME: &str = super::certs::SERVER_CN;

/// PEM files for the TLS client side (the ones `twonode arbiter certs` makes).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClientTls {
    /// CA the arbiter's certificate must chain to.
    pub ca: PathBuf,
    /// Client certificate (CN = cluster name) and its key. Only paths: nothing of the key is
    /// ever printed or put on a command line.
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How to reach the arbiter and who this client is.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClientConfig {
    pub host: String,
    pub port: u16,
    /// Cluster name (PREINIT; must be the CN of the client certificate).
    pub cluster: String,
    /// This node's id (INIT).
    pub node_id: u32,
    /// TLS files; `None` = clear text (refused by an arbiter that requires TLS).
    pub tls: Option<ClientTls>,
    /// Heartbeat interval announced (INIT, SET_OPTION), ms; the arbiter accepts 1000..=120000.
    pub heartbeat_ms: u32,
    pub tie_breaker: TieBreaker,
    pub algorithm: DecisionAlgorithm,
    /// keep_active_partition_tie_breaker (SET_OPTION): the partition holding the vote keeps it
    /// against an equal one. On for the gate: a second asker never takes the vote from a holder.
    pub keep_active_partition: bool,
    /// TCP connect and TLS handshake, each.
    pub connect_timeout: Duration,
    /// Whole exchange, from connect to the decision.
    pub timeout: Duration,
}

impl ClientConfig {
    /// Defaults of the gate: ffsplit, tie-breaker lowest, keep-active-partition on, heartbeat
    /// 60 s (lease ≥ 120 s), connect 5 s, decision 30 s.
    pub fn new(host: impl Into<String>, port: u16, cluster: impl Into<String>, node_id: u32) -> Self {
        ClientConfig {
            host: host.into(),
            port,
            cluster: cluster.into(),
            node_id,
            tls: None,
            heartbeat_ms: 60_000,
            tie_breaker: TieBreaker::Lowest,
            algorithm: DecisionAlgorithm::Ffsplit,
            keep_active_partition: true,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
        }
    }

    /// "host:port" for messages (IPv6 in brackets).
    pub fn address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// What to ask the arbiter for: the vote for this membership.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VoteRequest {
    /// Every configured node id (config node list).
    pub config_nodes: Vec<u32>,
    /// The members of this node's partition (membership node list; must contain this node).
    pub members: Vec<u32>,
    /// The partition's ring id; its seq must never decrease for this node.
    pub ring: RingId,
    pub config_version: Option<u64>,
}

impl VoteRequest {
    /// A one-node partition {node_id} with ring (node_id, now in ms since the epoch): what the
    /// fence gate reports (the ring seq then never decreases for this node).
    pub fn alone(node_id: u32, config_nodes: Vec<u32>) -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1);
        VoteRequest { config_nodes, members: vec![node_id], ring: RingId { node_id, seq: ms }, config_version: None }
    }
}

/// Why talking to the arbiter failed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum ClientError {
    /// Bad settings (no such file, node not in the config list...). Nothing was sent.
    #[error("configuration: {0}")]
    Config(String),
    /// No TCP connection (refused, no route, name not resolved, connect timeout).
    #[error("arbiter unreachable: {0}")]
    Unreachable(String),
    /// TLS failed (certificate not trusted, no or wrong client certificate, handshake).
    #[error("TLS failed: {0}")]
    Tls(String),
    /// The arbiter refused us (INIT_REPLY error, SERVER_ERROR).
    #[error("refused by the arbiter: {0}")]
    Refused(String),
    /// The arbiter stopped answering mid-exchange (not: no vote decision yet).
    #[error("timed out: {0}")]
    Timeout(String),
    /// The connection was closed or an answer made no sense.
    #[error("protocol: {0}")]
    Protocol(String),
}

impl ClientError {
    /// What the admin should check.
    pub fn advice(&self) -> &'static str {
        match self {
            ClientError::Config(_) => "fix the arbiter settings (host, port, certificate paths, node ids)",
            ClientError::Unreachable(_) => {
                "check that `twonode arbiter serve` (or corosync-qnetd) runs on the arbiter host, the port, and the firewall"
            }
            ClientError::Tls(_) => {
                "check the CA (the arbiter's ca.crt), the client certificate (CN = cluster name, signed by that CA) and its key"
            }
            ClientError::Refused(_) => {
                "see the arbiter's log (`twonode arbiter status`); cluster name, node id, algorithm and tie-breaker must agree"
            }
            ClientError::Timeout(_) | ClientError::Protocol(_) => "check the arbiter host and the network path to it",
        }
    }
}

fn code_text(c: ReplyErrorCode) -> String {
    let what = match c {
        ReplyErrorCode::TlsRequired => "the arbiter requires TLS (configure the CA, certificate and key)",
        ReplyErrorCode::InvalidHeartbeatInterval => "heartbeat interval not accepted (1000..120000 ms)",
        ReplyErrorCode::TieBreakerDiffersFromOtherNodes => "another node of this cluster uses a different tie-breaker",
        ReplyErrorCode::AlgorithmDiffersFromOtherNodes => "another node of this cluster uses a different algorithm",
        ReplyErrorCode::DuplicateNodeId => "another client uses this node id",
        ReplyErrorCode::UnsupportedDecisionAlgorithm => "decision algorithm not supported",
        ReplyErrorCode::InvalidConfigNodeList => "config node list refused (this node not in it?)",
        ReplyErrorCode::InvalidMembershipNodeList => "membership node list refused",
        ReplyErrorCode::UnexpectedMessage => "unexpected message (cluster not allowed by the arbiter?)",
        _ => "",
    };
    if what.is_empty() {
        format!("{c:?}")
    } else {
        format!("{c:?}: {what}")
    }
}

// ---- the sans-IO session ---------------------------------------------------------------------

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Preinit,
    /// STARTTLS sent; the driver runs the handshake and calls `tls_established`.
    Tls,
    Init,
    /// INIT accepted; lists sent (when a vote is asked for), waiting for the vote.
    Voting,
    /// Probe finished at INIT.
    Ready,
    Failed,
}

/// What the session tells its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// Run the TLS client handshake now (everything queued before was sent in clear).
    StartTls,
    /// INIT accepted (a probe can stop here).
    InitAccepted,
    /// The arbiter decided for our ring.
    Vote(Vote),
    /// After an ACK was handed out: the arbiter asked for the vote back (not confirmed).
    Withdrawn,
}

/// Messages to send and at most one event, for one input.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Output {
    pub send: Vec<Message>,
    pub event: Option<SessionEvent>,
}

/// The client protocol state machine (no I/O, no clock).
#[derive(Debug)]
pub struct Session {
    cluster: String,
    node_id: u32,
    heartbeat_ms: u32,
    tie_breaker: TieBreaker,
    algorithm: DecisionAlgorithm,
    kap: bool,
    have_tls: bool,
    request: Option<VoteRequest>,
    phase: Phase,
    seq: u32,
    /// Seqs of the messages whose replies we wait for, by purpose.
    init_seq: u32,
    membership_seq: u32,
    /// The vote was handed to the caller: never confirm a NACK from now on.
    holding: bool,
    decided: Option<Vote>,
    /// Server facts for reports.
    pub server_tls: Option<TlsSupported>,
    pub server_algorithms: Vec<u16>,
}

impl Session {
    /// A session for `cfg`; with `request` it asks for the vote, without it stops at INIT (probe).
    pub fn new(cfg: &ClientConfig, request: Option<VoteRequest>) -> Session {
        Session {
            cluster: cfg.cluster.clone(),
            node_id: cfg.node_id,
            heartbeat_ms: cfg.heartbeat_ms,
            tie_breaker: cfg.tie_breaker,
            algorithm: cfg.algorithm,
            kap: cfg.keep_active_partition,
            have_tls: cfg.tls.is_some(),
            request,
            phase: Phase::Preinit,
            seq: 0,
            init_seq: 0,
            membership_seq: 0,
            holding: false,
            decided: None,
            server_tls: None,
            server_algorithms: Vec::new(),
        }
    }

    fn next(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// The first message (PREINIT).
    pub fn start(&mut self) -> Vec<Message> {
        let s = self.next();
        vec![Message::Preinit { seq: Some(s), cluster_name: Some(self.cluster.clone()) }]
    }

    /// An echo request (heartbeat). Only meaningful after INIT.
    pub fn echo(&mut self) -> Message {
        let s = self.next();
        Message::EchoRequest { seq: Some(s) }
    }

    /// The caller now acts on the ACK: from here on a NACK is never confirmed.
    pub fn set_holding(&mut self) {
        self.holding = true;
    }

    /// Whether the session can take messages after INIT (echoes).
    pub fn initialised(&self) -> bool {
        matches!(self.phase, Phase::Voting | Phase::Ready)
    }

    fn init_msg(&mut self) -> Message {
        let s = self.next();
        self.init_seq = s;
        self.phase = Phase::Init;
        Message::Init(Init {
            seq: Some(s),
            supported_messages: Some(wire::all_msg_types()),
            supported_options: Some(wire::all_opt_types()),
            node_id: Some(self.node_id),
            decision_algorithm: Some(self.algorithm.as_u16()),
            heartbeat_interval: Some(self.heartbeat_ms),
            tie_breaker: Some(self.tie_breaker),
            ring_id: Some(self.request.as_ref().map(|r| r.ring).unwrap_or(RingId { node_id: self.node_id, seq: 0 })),
        })
    }

    /// The TLS handshake succeeded: go on with INIT.
    pub fn tls_established(&mut self) -> Vec<Message> {
        vec![self.init_msg()]
    }

    fn fail(&mut self, e: ClientError) -> Result<Output, ClientError> {
        self.phase = Phase::Failed;
        Err(e)
    }

    /// Feed one message from the arbiter.
    pub fn on_message(&mut self, msg: Message) -> Result<Output, ClientError> {
        let mut out = Output::default();
        match (self.phase, msg) {
            (_, Message::ServerError { error, seq }) => {
                let code = error.unwrap_or(ReplyErrorCode::InternalError);
                return self.fail(ClientError::Refused(format!(
                    "SERVER_ERROR {}{}",
                    code_text(code),
                    seq.map(|s| format!(" (to message {s})")).unwrap_or_default()
                )));
            }
            (Phase::Preinit, Message::PreinitReply { tls, client_cert_required, .. }) => {
                self.server_tls = tls;
                let tls = tls.unwrap_or(TlsSupported::Unsupported);
                match (tls, self.have_tls) {
                    (TlsSupported::Required, false) => {
                        return self.fail(ClientError::Tls(
                            "the arbiter requires TLS but no CA/certificate/key is configured".into(),
                        ))
                    }
                    (TlsSupported::Unsupported, true) => {
                        // certificates configured = we want an authenticated arbiter
                        return self.fail(ClientError::Tls(
                            "TLS is configured here but the arbiter offers none (its tls mode is off): \
                             refusing to talk in clear text"
                                .into(),
                        ));
                    }
                    (TlsSupported::Supported | TlsSupported::Required, true) => {
                        let s = self.next();
                        out.send.push(Message::StartTls { seq: Some(s) });
                        out.event = Some(SessionEvent::StartTls);
                        self.phase = Phase::Tls;
                    }
                    (_, false) => {
                        if client_cert_required == Some(true) && tls != TlsSupported::Unsupported {
                            // qnetd with TLS on but optional for the client: clear text is allowed
                        }
                        let m = self.init_msg();
                        out.send.push(m);
                    }
                }
            }
            (Phase::Init, Message::InitReply(r)) => {
                if let Some(e) = r.error.filter(|e| *e != ReplyErrorCode::NoError) {
                    return self.fail(ClientError::Refused(format!("INIT: {}", code_text(e))));
                }
                self.server_algorithms = r.supported_decision_algorithms.clone().unwrap_or_default();
                out.event = Some(SessionEvent::InitAccepted);
                match self.request.clone() {
                    None => self.phase = Phase::Ready,
                    Some(req) => {
                        if !req.members.contains(&self.node_id) || !req.config_nodes.contains(&self.node_id) {
                            return self.fail(ClientError::Config(format!(
                                "node id {} must be in both the config list {:?} and the membership {:?}",
                                self.node_id, req.config_nodes, req.members
                            )));
                        }
                        let s = self.next();
                        out.send.push(Message::SetOption {
                            seq: Some(s),
                            heartbeat_interval: Some(self.heartbeat_ms),
                            keep_active_partition: Some(self.kap),
                        });
                        let node = |id: &u32| NodeInfo { node_id: *id, data_center_id: 0, node_state: None };
                        let s = self.next();
                        out.send.push(Message::NodeList(NodeList {
                            seq: Some(s),
                            list_type: Some(NodeListType::InitialConfig),
                            config_version: req.config_version,
                            nodes: req.config_nodes.iter().map(node).collect(),
                            ..NodeList::default()
                        }));
                        let s = self.next();
                        self.membership_seq = s;
                        out.send.push(Message::NodeList(NodeList {
                            seq: Some(s),
                            list_type: Some(NodeListType::Membership),
                            ring_id: Some(req.ring),
                            nodes: req.members.iter().map(node).collect(),
                            ..NodeList::default()
                        }));
                        self.phase = Phase::Voting;
                    }
                }
            }
            (Phase::Voting | Phase::Ready, Message::EchoReply { .. } | Message::SetOptionReply { .. }) => {}
            (Phase::Voting, Message::NodeListReply { seq, list_type, ring_id, vote }) => {
                let ours = list_type == Some(NodeListType::Membership)
                    && seq == Some(self.membership_seq)
                    && ring_id.is_none_or(|r| Some(r) == self.request.as_ref().map(|q| q.ring));
                if let (true, Some(v @ (Vote::Ack | Vote::Nack))) = (ours, vote) {
                    out.event = self.decide(v);
                }
            }
            (Phase::Voting | Phase::Ready, Message::VoteInfo { seq, ring_id, vote }) => {
                let ours = ring_id.is_none_or(|r| Some(r) == self.request.as_ref().map(|q| q.ring));
                match vote {
                    Some(Vote::Nack) if self.holding => {
                        // never confirm: the caller may be powering the other node off right now
                        out.event = Some(SessionEvent::Withdrawn);
                    }
                    Some(v @ (Vote::Ack | Vote::Nack)) if ours => {
                        out.send.push(Message::VoteInfoReply { seq });
                        out.event = self.decide(v);
                    }
                    _ => out.send.push(Message::VoteInfoReply { seq }),
                }
            }
            (Phase::Voting | Phase::Ready, Message::HeuristicsChangeReply { .. } | Message::AskForVoteReply { .. }) => {}
            (phase, other) => {
                let t = other.msg_type();
                return self.fail(ClientError::Protocol(format!("unexpected {t} from the arbiter (state {phase:?})")));
            }
        }
        Ok(out)
    }

    fn decide(&mut self, v: Vote) -> Option<SessionEvent> {
        if self.decided.is_some() && !(self.decided == Some(Vote::Nack) && v == Vote::Ack) {
            return None;
        }
        self.decided = Some(v);
        Some(SessionEvent::Vote(v))
    }
}

// ---- the blocking driver ---------------------------------------------------------------------

enum Stream {
    Plain(TcpStream),
    Tls(Box<openssl::ssl::SslStream<TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(b),
            Stream::Tls(s) => s.read(b),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(b),
            Stream::Tls(s) => s.write(b),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// One connection: stream, receive buffer, session.
struct Conn {
    stream: Option<Stream>,
    buf: Vec<u8>,
    session: Session,
    addr: String,
    /// TLS is up but the arbiter has not answered anything over it yet: a close or an alert now
    /// most likely means it refused this node's certificate (TLS 1.3 reports that only then).
    tls_unanswered: bool,
}

fn resolve(cfg: &ClientConfig) -> Result<Vec<SocketAddr>, ClientError> {
    let addrs: Vec<SocketAddr> = (cfg.host.as_str(), cfg.port)
        .to_socket_addrs()
        .map_err(|e| ClientError::Unreachable(format!("{}: cannot resolve {:?}: {e}", cfg.address(), cfg.host)))?
        .collect();
    if addrs.is_empty() {
        return Err(ClientError::Unreachable(format!("{}: no address for {:?}", cfg.address(), cfg.host)));
    }
    Ok(addrs)
}

fn tls_connector(t: &ClientTls) -> Result<openssl::ssl::SslConnector, ClientError> {
    use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode};
    for (p, what) in [(&t.ca, "CA certificate"), (&t.cert, "client certificate"), (&t.key, "client key")] {
        if !p.exists() {
            return Err(ClientError::Config(format!("the {what} {} does not exist", p.display())));
        }
    }
    let tls = |e: openssl::error::ErrorStack, what: String| ClientError::Tls(format!("{what}: {e}"));
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| tls(e, "initialising OpenSSL".into()))?;
    b.set_ca_file(&t.ca).map_err(|e| tls(e, format!("loading the CA {}", t.ca.display())))?;
    b.set_certificate_chain_file(&t.cert)
        .map_err(|e| tls(e, format!("loading the client certificate {}", t.cert.display())))?;
    b.set_private_key_file(&t.key, SslFiletype::PEM)
        .map_err(|e| tls(e, format!("loading the client key {}", t.key.display())))?;
    b.check_private_key()
        .map_err(|e| tls(e, format!("the key {} does not fit the certificate {}", t.key.display(), t.cert.display())))?;
    b.set_verify(SslVerifyMode::PEER);
    Ok(b.build())
}

fn io_err(addr: &str, what: &str, e: std::io::Error) -> ClientError {
    use std::io::ErrorKind::*;
    match e.kind() {
        WouldBlock | TimedOut => ClientError::Timeout(format!("{addr}: no answer while {what}")),
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe => {
            ClientError::Protocol(format!("{addr}: the arbiter closed the connection while {what}"))
        }
        _ => ClientError::Protocol(format!("{addr}: {what}: {e}")),
    }
}

impl Conn {
    fn open(cfg: &ClientConfig, request: Option<VoteRequest>) -> Result<Conn, ClientError> {
        if cfg.cluster.is_empty() {
            return Err(ClientError::Config("no cluster name".into()));
        }
        let addr = cfg.address();
        let mut last = None;
        let mut tcp = None;
        for a in resolve(cfg)? {
            match TcpStream::connect_timeout(&a, cfg.connect_timeout) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = tcp.ok_or_else(|| {
            ClientError::Unreachable(format!(
                "{addr}: {}",
                last.map(|e| e.to_string()).unwrap_or_else(|| "no address".into())
            ))
        })?;
        let _ = tcp.set_nodelay(true);
        Ok(Conn {
            stream: Some(Stream::Plain(tcp)),
            buf: Vec::with_capacity(4096),
            session: Session::new(cfg, request),
            addr,
            tls_unanswered: false,
        })
    }

    fn send(&mut self, msgs: &[Message]) -> Result<(), ClientError> {
        let Some(s) = self.stream.as_mut() else { return Err(ClientError::Protocol("connection closed".into())) };
        let mut bytes = Vec::new();
        for m in msgs {
            bytes.extend(m.encode().map_err(|e| ClientError::Protocol(e.to_string()))?);
        }
        let r = s.write_all(&bytes).and_then(|_| s.flush());
        r.map_err(|e| self.hint(io_err(&self.addr, "sending", e)))
    }

    /// Add the likely cause to a failure that came right after the TLS handshake.
    fn hint(&self, e: ClientError) -> ClientError {
        match e {
            ClientError::Protocol(m) if self.tls_unanswered => ClientError::Tls(format!(
                "{m} (right after the TLS handshake: the arbiter has most likely refused this node's certificate; \
                 check that it is signed by the arbiter's CA and that its CN is the cluster name)"
            )),
            other => other,
        }
    }

    /// One message, waiting at most until `deadline`. `Ok(None)` = nothing by then.
    fn recv(&mut self, deadline: Instant) -> Result<Option<Message>, ClientError> {
        loop {
            match wire::frame_len(&self.buf) {
                Ok(Some(n)) => {
                    let f: Vec<u8> = self.buf.drain(..n).collect();
                    self.tls_unanswered = false;
                    return Message::decode(&f)
                        .map(Some)
                        .map_err(|e| ClientError::Protocol(format!("{}: undecodable message: {e}", self.addr)));
                }
                Ok(None) => {}
                Err(e) => return Err(ClientError::Protocol(format!("{}: {e}", self.addr))),
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let Some(s) = self.stream.as_mut() else { return Err(ClientError::Protocol("connection closed".into())) };
            let wait = (deadline - now).max(Duration::from_millis(1));
            let _ = s.tcp().set_read_timeout(Some(wait));
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk) {
                Ok(0) => {
                    return Err(self.hint(ClientError::Protocol(format!("{}: the arbiter closed the connection", self.addr))));
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let e = io_err(&self.addr, "reading", e);
                    return Err(self.hint(e));
                }
            }
        }
    }

    fn starttls(&mut self, cfg: &ClientConfig) -> Result<(), ClientError> {
        let Some(t) = cfg.tls.as_ref() else { return Err(ClientError::Config("no TLS files".into())) };
        let connector = tls_connector(t)?;
        let Some(Stream::Plain(tcp)) = self.stream.take() else {
            return Err(ClientError::Protocol("STARTTLS on a TLS connection".into()));
        };
        if !self.buf.is_empty() {
            return Err(ClientError::Protocol(format!("{}: data after the PREINIT reply, before TLS", self.addr)));
        }
        let _ = tcp.set_read_timeout(Some(cfg.connect_timeout));
        let _ = tcp.set_write_timeout(Some(cfg.connect_timeout));
        let mut conf = connector.configure().map_err(|e| ClientError::Tls(e.to_string()))?;
        // "Qnetd Server" is no host name: no SNI, and the CN is compared below (like NSS does).
        conf.set_verify_hostname(false);
        conf.set_use_server_name_indication(false);
        let s = conf.connect(SERVER_NAME, tcp).map_err(|e| {
            let detail = match &e {
                openssl::ssl::HandshakeError::Failure(m) => {
                    let v = m.ssl().verify_result();
                    if v != openssl::x509::X509VerifyResult::OK {
                        format!("the arbiter's certificate is not trusted: {}", v.error_string())
                    } else {
                        format!("handshake failed: {}", m.error())
                    }
                }
                other => other.to_string(),
            };
            ClientError::Tls(format!("{}: {detail}", self.addr))
        })?;
        let cn = s.ssl().peer_certificate().and_then(|c| c.to_der().ok()).and_then(|d| super::certs::cert_common_name(&d));
        if cn.as_deref() != Some(SERVER_NAME) {
            return Err(ClientError::Tls(format!(
                "{}: the arbiter's certificate is for {:?}, not {SERVER_NAME:?}",
                self.addr,
                cn.unwrap_or_default()
            )));
        }
        self.stream = Some(Stream::Tls(Box::new(s)));
        self.tls_unanswered = true;
        Ok(())
    }

    /// Drive the session until `stop` says so or the deadline passes. Sends echoes every
    /// `echo_every` once INIT is done. Returns the event that stopped it, `None` at the deadline.
    fn drive(
        &mut self,
        cfg: &ClientConfig,
        deadline: Instant,
        echo_every: Duration,
        stop: &dyn Fn(&SessionEvent) -> bool,
    ) -> Result<Option<SessionEvent>, ClientError> {
        let mut next_echo = Instant::now() + echo_every;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            if self.session.initialised() && now >= next_echo {
                let m = self.session.echo();
                self.send(&[m])?;
                next_echo = now + echo_every;
            }
            let until = if self.session.initialised() { deadline.min(next_echo) } else { deadline };
            let Some(m) = self.recv(until)? else { continue };
            let out = self.session.on_message(m)?;
            self.send(&out.send)?;
            if let Some(ev) = out.event {
                if ev == SessionEvent::StartTls {
                    self.starttls(cfg)?;
                    let init = self.session.tls_established();
                    self.send(&init)?;
                    continue;
                }
                if stop(&ev) {
                    return Ok(Some(ev));
                }
            }
        }
    }

    fn close(&mut self) {
        if let Some(s) = self.stream.take() {
            let _ = s.tcp().shutdown(std::net::Shutdown::Both);
        }
    }
}

fn echo_interval(hb_ms: u32) -> Duration {
    Duration::from_millis((hb_ms as u64 / 2).clamp(200, 5000))
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProbeReport {
    pub address: String,
    /// TLS was used (STARTTLS + certificate checks passed).
    pub tls: bool,
    /// The arbiter's TLS offer: "off", "on" or "required".
    pub server_tls: String,
    /// TCP connect to INIT accepted, ms.
    pub init_ms: f64,
    /// One ECHO_REQUEST round trip after INIT, ms.
    pub rtt_ms: f64,
    /// Decision algorithms the arbiter supports (names).
    pub algorithms: Vec<String>,
}

/// Node id a probe announces: `0x8000_0000 | node_id`, so a probe never replaces the
/// connection of a node that is holding the vote (an INIT with the same node id would).
pub fn probe_node_id(node_id: u32) -> u32 {
    0x8000_0000 | (node_id & 0x7fff_ffff)
}

/// Connect, (TLS), INIT, one echo round trip; close. Asks for nothing.
pub fn probe(cfg: &ClientConfig) -> Result<ProbeReport, ClientError> {
    let t0 = Instant::now();
    let deadline = t0 + cfg.timeout;
    let mut pc = cfg.clone();
    pc.node_id = probe_node_id(cfg.node_id);
    let mut c = Conn::open(&pc, None)?;
    let first = c.session.start();
    c.send(&first)?;
    let ev = c.drive(&pc, deadline, Duration::from_secs(3600), &|e| *e == SessionEvent::InitAccepted)?;
    if ev.is_none() {
        c.close();
        return Err(ClientError::Timeout(format!("{}: INIT not answered within {:?}", c.addr, cfg.timeout)));
    }
    let init_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let t1 = Instant::now();
    let echo = c.session.echo();
    let want = echo.seq();
    c.send(&[echo])?;
    loop {
        match c.recv(deadline)? {
            Some(Message::EchoReply { seq }) if seq == want => break,
            Some(m) => {
                let out = c.session.on_message(m)?;
                c.send(&out.send)?;
            }
            None => {
                c.close();
                return Err(ClientError::Timeout(format!("{}: echo not answered", c.addr)));
            }
        }
    }
    let rtt_ms = t1.elapsed().as_secs_f64() * 1000.0;
    let tls = matches!(c.stream, Some(Stream::Tls(_)));
    let server_tls = match c.session.server_tls {
        Some(TlsSupported::Required) => "required",
        Some(TlsSupported::Supported) => "on",
        _ => "off",
    }
    .to_string();
    let algorithms = c
        .session
        .server_algorithms
        .iter()
        .map(|a| DecisionAlgorithm::from_u16(*a).map(|d| format!("{d:?}").to_lowercase()).unwrap_or_else(|| a.to_string()))
        .collect();
    c.close();
    Ok(ProbeReport { address: cfg.address(), tls, server_tls, init_ms, rtt_ms, algorithms })
}

/// The arbiter's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VoteOutcome {
    /// This partition holds the cluster's vote.
    Ack,
    /// Another partition holds (or gets) it.
    Nack,
    /// No decision within the timeout: most likely another node's vote lease still runs.
    NoDecision,
}

/// The decision with its timing.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VoteResult {
    pub outcome: VoteOutcome,
    pub address: String,
    pub ring: RingId,
    pub tls: bool,
    /// Connect to decision (or to the timeout), ms.
    pub elapsed_ms: f64,
    /// Heartbeat announced: the arbiter keeps an ACK for at least 2 × this after our last message.
    pub heartbeat_ms: u32,
}

fn run_vote(cfg: &ClientConfig, req: &VoteRequest) -> Result<(VoteResult, Conn), ClientError> {
    if !req.config_nodes.contains(&cfg.node_id) || !req.members.contains(&cfg.node_id) {
        return Err(ClientError::Config(format!(
            "node id {} is not in the config list {:?} / membership {:?}",
            cfg.node_id, req.config_nodes, req.members
        )));
    }
    let t0 = Instant::now();
    let deadline = t0 + cfg.timeout;
    let mut c = Conn::open(cfg, Some(req.clone()))?;
    let first = c.session.start();
    c.send(&first)?;
    let ev = c.drive(cfg, deadline, echo_interval(cfg.heartbeat_ms), &|e| matches!(e, SessionEvent::Vote(_)))?;
    let outcome = match ev {
        Some(SessionEvent::Vote(Vote::Ack)) => VoteOutcome::Ack,
        Some(SessionEvent::Vote(_)) => VoteOutcome::Nack,
        _ => VoteOutcome::NoDecision,
    };
    if outcome == VoteOutcome::Ack {
        c.session.set_holding();
    }
    let res = VoteResult {
        outcome,
        address: cfg.address(),
        ring: req.ring,
        tls: matches!(c.stream, Some(Stream::Tls(_))),
        elapsed_ms: t0.elapsed().as_secs_f64() * 1000.0,
        heartbeat_ms: cfg.heartbeat_ms,
    };
    Ok((res, c))
}

/// Ask for the vote and close the connection. On ACK the arbiter keeps the vote with this node
/// for its lease (at least 2 × `heartbeat_ms` after our last message, see docs/arbiter-safety.md).
pub fn ask_vote(cfg: &ClientConfig, req: &VoteRequest) -> Result<VoteResult, ClientError> {
    let (res, mut c) = run_vote(cfg, req)?;
    c.close();
    Ok(res)
}

/// What a hold saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct HoldState {
    /// The arbiter asked for the vote back during the hold (never confirmed while holding).
    pub withdrawn: bool,
    /// The connection failed during the hold (the lease still covers ≥ 2 × heartbeat after the
    /// last message the arbiter received).
    pub lost: Option<String>,
    /// How long the hold lasted, ms.
    pub held_ms: u64,
}

/// A vote kept by a background thread (echoes, VOTE_INFO answers) until released or dropped.
pub struct VoteHold {
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<HoldState>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl VoteHold {
    fn start(mut c: Conn, cfg: ClientConfig) -> VoteHold {
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(HoldState::default()));
        let (s2, st2) = (stop.clone(), state.clone());
        let every = echo_interval(cfg.heartbeat_ms);
        let thread = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut next_echo = Instant::now();
            while !s2.load(Ordering::SeqCst) {
                let now = Instant::now();
                if now >= next_echo {
                    let m = c.session.echo();
                    if let Err(e) = c.send(&[m]) {
                        set_lost(&st2, e);
                        break;
                    }
                    next_echo = now + every;
                }
                let until = (now + Duration::from_millis(100)).min(next_echo);
                match c.recv(until) {
                    Ok(None) => {}
                    Ok(Some(m)) => match c.session.on_message(m) {
                        Ok(out) => {
                            if out.event == Some(SessionEvent::Withdrawn) {
                                if let Ok(mut s) = st2.lock() {
                                    s.withdrawn = true;
                                }
                            }
                            if let Err(e) = c.send(&out.send) {
                                set_lost(&st2, e);
                                break;
                            }
                        }
                        Err(e) => {
                            set_lost(&st2, e);
                            break;
                        }
                    },
                    Err(e) => {
                        set_lost(&st2, e);
                        break;
                    }
                }
            }
            if let Ok(mut s) = st2.lock() {
                s.held_ms = t0.elapsed().as_millis() as u64;
            }
            c.close();
        });
        VoteHold { stop, state, thread: Some(thread) }
    }

    /// What the hold has seen so far.
    pub fn state(&self) -> HoldState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Stop holding: close the connection (the arbiter's lease then runs from our last message).
    pub fn release(mut self) -> HoldState {
        self.finish();
        self.state()
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for VoteHold {
    fn drop(&mut self) {
        self.finish();
    }
}

fn set_lost(st: &Mutex<HoldState>, e: ClientError) {
    if let Ok(mut s) = st.lock() {
        s.lost = Some(e.to_string());
    }
}

/// Ask for the vote; on ACK keep it (a [`VoteHold`]) until the caller releases it.
pub fn ask_and_hold(cfg: &ClientConfig, req: &VoteRequest) -> Result<(VoteResult, Option<VoteHold>), ClientError> {
    let (res, mut c) = run_vote(cfg, req)?;
    if res.outcome == VoteOutcome::Ack {
        Ok((res, Some(VoteHold::start(c, cfg.clone()))))
    } else {
        c.close();
        Ok((res, None))
    }
}

#[cfg(test)]
mod tests {
    use super::super::core::{Action, Arbiter, Config, Event};
    use super::*;

    /// Client sessions against the arbiter's core, both sans-IO: no sockets, no clock.
    struct Pair {
        arb: Arbiter,
        now: u64,
    }

    impl Pair {
        fn new() -> Pair {
            let cfg = Config {
                tls: TlsSupported::Unsupported,
                client_cert_required: false,
                restart_hold_heartbeat_ms: 0,
                ..Config::default()
            };
            Pair { arb: Arbiter::new(cfg, 0), now: 100_000 }
        }
        /// Feed client messages to the core; return what the core sends back per connection.
        fn feed(&mut self, conn: u64, msgs: Vec<Message>) -> Vec<(u64, Message)> {
            let mut back = Vec::new();
            for m in msgs {
                self.now += 1;
                for a in self.arb.handle(self.now, Event::Message { conn, msg: m }) {
                    if let Action::Send { conn, msg } = a {
                        back.push((conn, msg));
                    }
                }
            }
            back
        }
    }

    fn cfg(node: u32) -> ClientConfig {
        let mut c = ClientConfig::new("127.0.0.1", 5403, "gatetest", node);
        c.heartbeat_ms = 2000;
        c
    }

    /// Run sessions until quiet; returns the events per session.
    fn pump(p: &mut Pair, sessions: &mut [(u64, Session)], mut pending: Vec<(u64, Message)>) -> Vec<(u64, SessionEvent)> {
        let mut events = Vec::new();
        while !pending.is_empty() {
            let batch = std::mem::take(&mut pending);
            for (conn, msg) in batch {
                let Some((_, s)) = sessions.iter_mut().find(|(c, _)| *c == conn) else { continue };
                let out = s.on_message(msg).expect("session accepts the arbiter's message");
                if let Some(e) = out.event.clone() {
                    events.push((conn, e));
                }
                pending.extend(p.feed(conn, out.send));
            }
        }
        events
    }

    fn connect(p: &mut Pair, conn: u64, s: &mut Session) -> Vec<(u64, Message)> {
        p.arb.handle(p.now, Event::ClientConnected { conn, peer: format!("test{conn}") });
        let first = s.start();
        p.feed(conn, first)
    }

    #[test]
    fn first_asker_gets_ack_second_gets_nack_and_a_holder_never_confirms_a_nack() {
        let mut p = Pair::new();
        let r1 = VoteRequest { config_nodes: vec![1, 2], members: vec![1], ring: RingId { node_id: 1, seq: 10 }, config_version: None };
        let r2 = VoteRequest { config_nodes: vec![1, 2], members: vec![2], ring: RingId { node_id: 2, seq: 11 }, config_version: None };
        let mut sessions = vec![(1u64, Session::new(&cfg(1), Some(r1))), (2u64, Session::new(&cfg(2), Some(r2)))];
        let first = connect(&mut p, 1, &mut sessions[0].1);
        let ev = pump(&mut p, &mut sessions, first);
        assert!(ev.contains(&(1, SessionEvent::Vote(Vote::Ack))), "{ev:?}");
        sessions[0].1.set_holding();
        let first = connect(&mut p, 2, &mut sessions[1].1);
        let ev = pump(&mut p, &mut sessions, first);
        assert!(ev.contains(&(2, SessionEvent::Vote(Vote::Nack))), "{ev:?}");
        assert!(!ev.iter().any(|e| e == &(2, SessionEvent::Vote(Vote::Ack))), "{ev:?}");
        // the holder, told NACK, stays silent about it (no VOTE_INFO_REPLY)
        let out = sessions[0].1.on_message(Message::vote_info(9, RingId { node_id: 1, seq: 10 }, Vote::Nack)).unwrap();
        assert!(out.send.is_empty());
        assert_eq!(out.event, Some(SessionEvent::Withdrawn));
    }

    #[test]
    fn tls_rules_and_refusals_are_errors_not_votes() {
        let mut c = cfg(1);
        c.tls = Some(ClientTls { ca: "/x".into(), cert: "/y".into(), key: "/z".into() });
        let mut s = Session::new(&c, None);
        s.start();
        let e = s
            .on_message(Message::PreinitReply { seq: Some(1), tls: Some(TlsSupported::Unsupported), client_cert_required: Some(false) })
            .unwrap_err();
        assert!(matches!(e, ClientError::Tls(_)), "{e}");
        let mut s = Session::new(&cfg(1), None);
        s.start();
        let e = s
            .on_message(Message::PreinitReply { seq: Some(1), tls: Some(TlsSupported::Required), client_cert_required: Some(true) })
            .unwrap_err();
        assert!(matches!(e, ClientError::Tls(_)), "{e}");
        let mut s = Session::new(&c, None);
        s.start();
        let out = s
            .on_message(Message::PreinitReply { seq: Some(1), tls: Some(TlsSupported::Supported), client_cert_required: Some(true) })
            .unwrap();
        assert_eq!(out.event, Some(SessionEvent::StartTls));
        assert!(matches!(out.send[0], Message::StartTls { .. }));
        let init = s.tls_established();
        assert!(matches!(init[0], Message::Init(_)));
        let e = s.on_message(Message::server_error(Some(3), ReplyErrorCode::TieBreakerDiffersFromOtherNodes)).unwrap_err();
        assert!(e.to_string().contains("tie-breaker"), "{e}");
    }

    #[test]
    fn probe_id_never_collides_with_a_node() {
        assert_eq!(probe_node_id(1), 0x8000_0001);
        assert_ne!(probe_node_id(2), 2);
    }
}
