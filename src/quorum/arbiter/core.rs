//! The sans-IO arbiter: a state machine fed with events and the time, returning messages,
//! connection closes, a timer request and log lines. No clock, no sockets, no randomness: the
//! tokio driver (`server.rs`) and the simulator (`sim.rs`) run exactly this code.
//!
//! Driver contract:
//! * time is a monotonic millisecond counter chosen by the driver (`now`), never going back;
//! * `Event::ClientConnected` when a TCP connection is accepted; `Event::Message` for every
//!   decoded frame; `Event::BadFrame` when a frame failed to decode (the core replies and/or
//!   closes); `Event::TlsEstablished` once the TLS handshake asked for by `Action::StartTls`
//!   succeeded (with the verified client certificate's CN, if any); `Event::ClientClosed` when the
//!   socket is gone (never after the driver executed `Action::Close` for it);
//! * `Event::Tick` whenever the time asked for by the last `Action::SetTimer` has come (extra
//!   ticks are harmless);
//! * the driver executes actions in order. `Action::StartTls` means: every message queued before
//!   it goes out in clear text, then the server side of the TLS handshake starts on that socket.
use std::collections::{BTreeMap, HashMap};

use super::wire::{
    self, DecisionAlgorithm, Heuristics, Init, InitReply, Message, NodeInfo, NodeListType, ReplyErrorCode, RingId,
    TieBreaker, TlsSupported, Vote, WireError,
};

/// Driver-chosen connection id (unique for the arbiter's lifetime).
pub type ConnId = u64;
/// Monotonic milliseconds.
pub type Millis = u64;

/// Arbiter settings (the `[arbiter]` part of the config file).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// TLS offer in PREINIT_REPLY (corosync-qnetd default: supported).
    pub tls: TlsSupported,
    /// Require a client certificate whose CN is the cluster name (qnetd default: yes).
    pub client_cert_required: bool,
    /// Accepted heartbeat interval range (ms), qnetd: 1000..=120000.
    pub heartbeat_min_ms: u32,
    pub heartbeat_max_ms: u32,
    /// Silent clients are dropped after `dpd_coefficient` × their heartbeat interval (qnetd 1.5).
    /// Dropping a client does NOT move its vote early: the lease rule below decides that.
    pub dpd_coefficient: f64,
    /// Bound on the relative clock rate error between arbiter and client (e.g. 0.01 = 1 %).
    pub clock_drift: f64,
    /// Extra safety margin (ms) for scheduling delays on the client and in votequorum.
    pub lease_margin_ms: u64,
    /// keep_active_partition_tie_breaker default before a client sets it (qnetd: disabled;
    /// corosync-qdevice sends its own setting, enabled by default, after INIT).
    pub keep_active_partition: bool,
    /// Heartbeat interval assumed for clients of a previous arbiter instance (restart hold),
    /// corosync-qdevice's default is 8000 ms (0.8 × timeout 10000 ms).
    pub assumed_heartbeat_ms: u32,
    /// Largest frame accepted (bytes, header included).
    pub max_msg_size: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tls: TlsSupported::Supported,
            client_cert_required: true,
            heartbeat_min_ms: 1000,
            heartbeat_max_ms: 120_000,
            dpd_coefficient: 1.5,
            clock_drift: 0.01,
            lease_margin_ms: 1000,
            keep_active_partition: false,
            assumed_heartbeat_ms: 120_000,
            max_msg_size: wire::MAX_MSG_SIZE as u32,
        }
    }
}

/// What happens to the arbiter.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    ClientConnected { conn: ConnId, peer: String },
    Message { conn: ConnId, msg: Message },
    /// A frame that did not decode (or was too long and skipped by the driver).
    BadFrame { conn: ConnId, error: WireError },
    /// TLS handshake done; `peer_cn` is the CN of the verified client certificate, if one was sent.
    TlsEstablished { conn: ConnId, peer_cn: Option<String> },
    ClientClosed { conn: ConnId },
    Tick,
}

/// Log severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Send { conn: ConnId, msg: Message },
    /// Flush what was queued, then run the TLS server handshake on this socket.
    StartTls { conn: ConnId },
    /// Flush what was queued, then close the socket. No `ClientClosed` follows.
    Close { conn: ConnId, reason: String },
    /// Deliver `Event::Tick` at (or after) this time. Replaces any earlier request.
    SetTimer { at: Millis },
    Log { level: Level, text: String },
}

/// The arbiter's state.
#[derive(Debug)]
#[allow(dead_code)] // skeleton: the decision state is being filled in
pub struct Arbiter {
    cfg: Config,
    /// Before this instant no ACK is granted (a restarted arbiter waits out any lease a
    /// previous instance may have handed out).
    startup_hold_until: Millis,
    conns: HashMap<ConnId, Conn>,
    clusters: BTreeMap<String, Cluster>,
    out: Vec<Action>,
}

#[derive(Debug, Default)]
struct Conn {
    peer: String,
    cluster: Option<String>,
    preinit: bool,
    tls: bool,
    tls_cn: Option<String>,
    cert_ok: bool,
    init: bool,
    node_id: u32,
    last_rx: Millis,
}

#[derive(Debug, Default)]
struct Cluster {}

impl Arbiter {
    /// A fresh arbiter started at `now`. It grants nothing before `now + full lease` unless it can
    /// prove no other partition holds a vote (see the module's safety rule).
    pub fn new(cfg: Config, now: Millis) -> Arbiter {
        let hold = lease_len(&cfg, cfg.assumed_heartbeat_ms);
        Arbiter {
            cfg,
            startup_hold_until: now + hold,
            conns: HashMap::new(),
            clusters: BTreeMap::new(),
            out: Vec::new(),
        }
    }

    /// A snapshot of clusters, nodes, votes and lease ages.
    pub fn status(&self, now: Millis) -> Status {
        let mut st = Status {
            now_ms: now,
            startup_hold_remaining_ms: self.startup_hold_until.checked_sub(now).filter(|d| *d > 0),
            connections: self.conns.len(),
            clusters: Vec::new(),
        };
        let mut by_cluster: BTreeMap<String, Vec<NodeStatus>> = BTreeMap::new();
        for (id, c) in &self.conns {
            if let (true, Some(cl)) = (c.init, &c.cluster) {
                by_cluster.entry(cl.clone()).or_default().push(NodeStatus {
                    node_id: c.node_id,
                    conn: *id,
                    peer: c.peer.clone(),
                    tls: c.tls,
                    last_seen_ms_ago: now.saturating_sub(c.last_rx),
                    ..NodeStatus::default()
                });
            }
        }
        for (name, mut nodes) in by_cluster {
            nodes.sort_by_key(|n| n.node_id);
            st.clusters.push(ClusterStatus { name, nodes, ..ClusterStatus::default() });
        }
        st
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Feed one event; get the actions to execute, in order.
    pub fn handle(&mut self, now: Millis, ev: Event) -> Vec<Action> {
        match ev {
            Event::ClientConnected { conn, peer } => {
                self.log(Level::Info, format!("conn {conn}: new client from {peer}"));
                self.conns.insert(conn, Conn { peer, last_rx: now, ..Conn::default() });
            }
            Event::Message { conn, msg } => self.on_message(now, conn, msg),
            Event::BadFrame { conn, error } => {
                let seq = match &error {
                    WireError::UnsupportedMessage { seq, .. } => *seq,
                    _ => None,
                };
                self.log(Level::Warn, format!("conn {conn}: bad frame: {error}"));
                self.send(conn, Message::server_error(seq, error.reply_code()));
                if !matches!(error, WireError::UnsupportedMessage { .. } | WireError::TooLong { .. }) {
                    self.close(conn, format!("undecodable message: {error}"));
                }
            }
            Event::TlsEstablished { conn, peer_cn } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.tls = true;
                    c.tls_cn = peer_cn;
                    c.cert_ok = false;
                }
            }
            Event::ClientClosed { conn } => {
                self.log(Level::Info, format!("conn {conn}: closed by peer"));
                self.conns.remove(&conn);
            }
            Event::Tick => {}
        }
        let _ = now;
        std::mem::take(&mut self.out)
    }

    fn log(&mut self, level: Level, text: String) {
        self.out.push(Action::Log { level, text });
    }
    fn send(&mut self, conn: ConnId, msg: Message) {
        self.out.push(Action::Send { conn, msg });
    }
    fn close(&mut self, conn: ConnId, reason: String) {
        self.log(Level::Warn, format!("conn {conn}: closing: {reason}"));
        self.conns.remove(&conn);
        self.out.push(Action::Close { conn, reason });
    }

    /// TLS / certificate rules of corosync-qnetd for every message after PREINIT.
    /// Ok(true) = go on; Ok(false) = error sent, stop; Err = closed.
    fn check_tls(&mut self, conn: ConnId, seq: Option<u32>) -> bool {
        let (tls_on, cn, cluster, cert_ok) = match self.conns.get(&conn) {
            Some(c) => (c.tls, c.tls_cn.clone(), c.cluster.clone(), c.cert_ok),
            None => return false,
        };
        let required = self.cfg.tls == TlsSupported::Required;
        if required && !tls_on {
            self.send(conn, Message::server_error(seq, ReplyErrorCode::TlsRequired));
            return false;
        }
        let check_cert = self.cfg.tls != TlsSupported::Unsupported && tls_on && self.cfg.client_cert_required && !cert_ok;
        if check_cert {
            match (cn, cluster) {
                (Some(cn), Some(cl)) if cn == cl => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.cert_ok = true;
                    }
                }
                (None, _) => {
                    self.close(conn, "client sent no valid certificate".into());
                    return false;
                }
                (Some(cn), cl) => {
                    self.close(
                        conn,
                        format!("client certificate CN {cn:?} is not the cluster name {:?}", cl.unwrap_or_default()),
                    );
                    return false;
                }
            }
        }
        true
    }

    fn on_message(&mut self, now: Millis, conn: ConnId, msg: Message) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        c.last_rx = now;
        let seq = msg.seq();
        match msg {
            Message::Preinit { cluster_name, .. } => {
                let Some(name) = cluster_name else {
                    self.send(conn, Message::server_error(seq, ReplyErrorCode::DoesntContainRequiredOption));
                    return;
                };
                c.cluster = Some(name);
                c.preinit = true;
                let reply = Message::PreinitReply {
                    seq,
                    tls: Some(self.cfg.tls),
                    client_cert_required: Some(self.cfg.client_cert_required),
                };
                self.send(conn, reply);
            }
            Message::StartTls { .. } => {
                if !c.preinit {
                    self.send(conn, Message::server_error(seq, ReplyErrorCode::PreinitRequired));
                } else if self.cfg.tls == TlsSupported::Unsupported {
                    self.send(conn, Message::server_error(seq, ReplyErrorCode::UnexpectedMessage));
                } else {
                    self.out.push(Action::StartTls { conn });
                }
            }
            Message::Init(init) => self.on_init(now, conn, init),
            Message::EchoRequest { .. } => {
                if !self.check_tls(conn, seq) {
                    return;
                }
                if !self.conns.get(&conn).is_some_and(|c| c.init) {
                    self.send(conn, Message::server_error(seq, ReplyErrorCode::InitRequired));
                    return;
                }
                self.send(conn, Message::EchoReply { seq });
            }
            other => {
                let t = other.msg_type();
                self.log(Level::Warn, format!("conn {conn}: unexpected {t} message"));
                self.send(conn, Message::server_error(seq, ReplyErrorCode::UnexpectedMessage));
            }
        }
    }

    fn on_init(&mut self, _now: Millis, conn: ConnId, init: Init) {
        if !self.check_tls(conn, init.seq) {
            return;
        }
        let mut code = ReplyErrorCode::NoError;
        let preinit = self.conns.get(&conn).is_some_and(|c| c.preinit);
        if !preinit {
            code = ReplyErrorCode::PreinitRequired;
        } else if init.node_id.is_none() || init.ring_id.is_none() || init.heartbeat_interval.is_none() || init.tie_breaker.is_none() {
            code = ReplyErrorCode::DoesntContainRequiredOption;
        } else if let Some(hb) = init.heartbeat_interval.filter(|hb| *hb < self.cfg.heartbeat_min_ms || *hb > self.cfg.heartbeat_max_ms) {
            let _ = hb;
            code = ReplyErrorCode::InvalidHeartbeatInterval;
        } else {
            match init.decision_algorithm.and_then(DecisionAlgorithm::from_u16) {
                None if init.decision_algorithm.is_none() => code = ReplyErrorCode::DoesntContainRequiredOption,
                Some(DecisionAlgorithm::Ffsplit) | Some(DecisionAlgorithm::Lms) => {}
                _ => code = ReplyErrorCode::UnsupportedDecisionAlgorithm,
            }
        }
        if code == ReplyErrorCode::NoError {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.init = true;
                c.node_id = init.node_id.unwrap_or(0);
            }
        }
        let reply = InitReply {
            seq: init.seq,
            error: Some(code),
            supported_messages: init.supported_messages.as_ref().map(|_| wire::all_msg_types()),
            supported_options: init.supported_options.as_ref().map(|_| wire::all_opt_types()),
            server_maximum_request_size: Some(self.cfg.max_msg_size),
            server_maximum_reply_size: Some(self.cfg.max_msg_size),
            supported_decision_algorithms: Some(vec![DecisionAlgorithm::Ffsplit.as_u16(), DecisionAlgorithm::Lms.as_u16()]),
        };
        self.send(conn, Message::InitReply(reply));
    }
}

/// Length of the lease a client with heartbeat interval `hb_ms` holds after the last message the
/// arbiter received from it: 2 × heartbeat (corosync-qdevice's echo timer), stretched by the clock
/// drift bound, plus the margin.
pub fn lease_len(cfg: &Config, hb_ms: u32) -> Millis {
    let base = 2.0 * hb_ms as f64 * (1.0 + cfg.clock_drift);
    base.ceil() as Millis + cfg.lease_margin_ms
}

/// A snapshot for `twonode arbiter status` (like `corosync-qnetd-tool -lv`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Status {
    pub now_ms: Millis,
    /// Until this time no vote is granted (restart hold); `None` once passed.
    pub startup_hold_remaining_ms: Option<Millis>,
    pub connections: usize,
    pub clusters: Vec<ClusterStatus>,
}

/// One cluster in [`Status`].
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ClusterStatus {
    pub name: String,
    pub algorithm: String,
    pub tie_breaker: String,
    pub nodes: Vec<NodeStatus>,
}

/// One connected node in [`ClusterStatus`].
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct NodeStatus {
    pub node_id: u32,
    pub conn: ConnId,
    pub peer: String,
    pub tls: bool,
    pub ring_id: Option<RingId>,
    pub heartbeat_ms: u32,
    /// Last vote sent (ACK/NACK/...), `None` before any.
    pub vote: Option<String>,
    /// Whether the arbiter still counts this node as possibly holding an ACK (its lease).
    pub holds_lease: bool,
    /// Milliseconds since the last message from this node.
    pub last_seen_ms_ago: Millis,
    /// Milliseconds until the lease this node may hold has certainly expired (0 = none).
    pub lease_remaining_ms: Millis,
    pub heuristics: Option<String>,
}

#[allow(dead_code)]
fn _unused(_: NodeInfo, _: NodeListType, _: RingId, _: TieBreaker, _: Vote, _: Heuristics) {}
