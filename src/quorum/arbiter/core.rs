//! The sans-IO arbiter: a state machine fed with events and the time, returning messages,
//! connection closes, a timer request and log lines. No clock, no sockets, no randomness: the
//! tokio driver (`server.rs`) and the simulator (`sim.rs`) run exactly this code.
//!
//! # Driver contract
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
//!
//! # The safety rule: the vote is a lease
//!
//! **Statement.** For every cluster the arbiter keeps a list of *holds*: each ACK it sends creates
//! a hold `(node, connection, ring id R, members of R)`. ACK is sent to a partition with ring `W`
//! only when every hold on a ring other than `W` has been released, and a hold is released only
//! when one of these is certain:
//! 1. *ring dissolved*: a node that was a member of `R` reports (INIT or membership node list) a
//!    ring with a higher sequence. corosync-qdevice votes NACK the moment its node's ring changes,
//!    votequorum ignores polls carrying an old ring id and drops a device vote it was not re-polled
//!    for during the new ring's sync, so a vote for `R` counts nowhere once `R` is gone;
//! 2. *NACK acknowledged*: the holder answered VOTE_INFO(NACK) with VOTE_INFO_REPLY (qdevice
//!    polls votequorum with the NACK before it replies);
//! 3. *lease expired* (ffsplit only): `now ≥ last_rx + (2·hb + E)·(1+ρ) + margin`, where
//!    `last_rx` is the arrival time of the holder's last message on that connection, `hb` the
//!    largest heartbeat interval it used on it, `E = vote_expiry_factor·hb` votequorum's
//!    device timeout (corosync-qdevice derives hb = 0.8 × timeout, so E = 1.25·hb), `ρ` the
//!    clock-rate bound and `margin` a scheduling allowance. If the client itself closed the
//!    connection (its process died or disconnected) at `closed`, the bound is
//!    `max(last_rx + 2·hb·(1+ρ), closed + E·(1+ρ)) + margin` instead.
//!
//! A freshly started arbiter also treats "any hold a previous instance may have granted node m"
//! as one more hold per configured node, which expires at `start + (2·h + 1.25·h)·(1+ρ) +
//! margin` with `h` = `restart_hold_heartbeat_ms` (qdevice's sync heartbeat, 0.8 × sync_timeout
//! = 24 s by default; no timed end for lms under `lms_wait_for_all`), and earlier once the first
//! ring `F` that m itself reported to this instance has ended, or `F` is the chosen partition,
//! or m confirmed a NACK of this instance (see `restart_blockers` and docs/arbiter-safety.md).
//!
//! **Why it is safe.** corosync-qdevice sends ECHO_REQUEST every `hb` and, at each tick, gives up
//! the connection (ffsplit: and polls NACK at once) if the previous request was not answered.
//! Let echo `k−1` be the last one answered: the arbiter received it at some `R ≥ t(k−1)` (its send
//! time), so the client disconnects at the latest at `t(k+1) = t(k−1) + 2·hb` (client clock) `≤
//! last_rx + 2·hb·(1+ρ)` in arbiter time. Delays only make `R` later, never earlier, so slow or
//! retransmitted TCP cannot extend the bound; TCP order means no old ACK can overtake a later
//! NACK, and after the client disconnects it reads nothing more on that connection. If the qdevice
//! process dies (or freezes) instead, votequorum counts its last poll for `E`; that poll happened
//! before the death, which happened before the client would have given up, hence the `+E`. If
//! the arbiter saw the client close the socket, the death happened before `closed`. The margin
//! covers timer lateness and the time votequorum takes to act on a NACK poll. A previous arbiter
//! instance's holds are bounded the same way from the moment it stopped, which is before this
//! instance started.
//!
//! **What it costs.** A holder that goes silent while its ring stays the same (the case
//! corosync-qnetd gets wrong: the nodes are already split and the holder loses the arbiter) keeps
//! the vote for `(2 + 1.25)·hb·1.01 + 1 s` ≈ 27.3 s with qdevice defaults (hb 8 s), against
//! qnetd's unsafe 12 s (1.5·hb). Setting `vote_expiry_factor` to 0 drops the crashed-qdevice
//! term (≈ 17.2 s) at the price of trusting qdevice not to die during that window. Everything
//! else is as fast as the protocol allows: node death, ring splits and clean disconnects release
//! the vote by rules 1 and 2 as soon as the surviving side reports its new ring, and a crashed
//! qdevice whose TCP close the arbiter sees costs `E` ≈ 10 s. LMS clients keep their vote while
//! disconnected (qdevice's lms keeps it when quorate with wait_for_all), so for lms only rules 1
//! and 2 release a hold.
use std::collections::{BTreeMap, BTreeSet, HashMap};

mod lms;
mod status;
mod vecmap;
use vecmap::{VecMap, VecSet};
pub use status::{ClusterStatus, NodeStatus, Status};

use super::wire::{
    self, DecisionAlgorithm, Heuristics, Init, InitReply, Message, NodeList, NodeListType, ReplyErrorCode, RingId,
    TieBreaker, TlsSupported, Vote, WireError,
};

/// Driver-chosen connection id (unique for the arbiter's lifetime).
pub type ConnId = u64;
/// Monotonic milliseconds.
pub type Millis = u64;

/// When the arbiter considers an old vote gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// The lease rule of this module (default).
    Lease,
    /// corosync-qnetd's behaviour: a holder's vote is considered gone as soon as its connection
    /// is (dead-peer timer or close), and a restarted arbiter grants at once. Unsafe; kept to
    /// demonstrate the difference in the simulator.
    QnetdLike,
}

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
    /// Dropping a client does NOT move its vote early: the lease rule decides that.
    pub dpd_coefficient: f64,
    /// Bound on the relative clock rate error between arbiter and client (0.01 = 1 %).
    pub clock_drift: f64,
    /// Extra safety margin (ms) for scheduling delays on the client and in votequorum.
    pub lease_margin_ms: u64,
    /// votequorum's device timeout as a multiple of the heartbeat (qdevice: hb = 0.8 × timeout,
    /// so 1.25). 0 = assume a qdevice process never dies while it holds the vote.
    pub vote_expiry_factor: f64,
    /// Heartbeat assumed for clients of a previous arbiter instance (restart hold); qdevice's
    /// sync heartbeat is 0.8 × sync_timeout = 24000 ms by default.
    pub restart_hold_heartbeat_ms: u32,
    /// keep_active_partition_tie_breaker default before a client sets it (qnetd: disabled;
    /// corosync-qdevice sends its own setting, enabled by default, after INIT).
    pub keep_active_partition: bool,
    /// Cluster names accepted (empty = any).
    pub allowed_clusters: Vec<String>,
    /// Largest frame accepted (bytes, header included).
    pub max_msg_size: u32,
    /// Lease (safe, default) or QnetdLike (unsafe, for comparison).
    pub policy: Policy,
    /// A client whose last membership is known to be outdated (another member of its ring
    /// reported a newer ring) is waited for this long before the decision goes on without it,
    /// so that both halves of a fresh split are compared (tie-breaker) rather than the first to
    /// report winning.
    pub stale_membership_grace_ms: u64,
    /// lms clusters: assume the nodes run with votequorum's `wait_for_all` (corosync-qdevice's
    /// lms then keeps its vote while it cannot reach the arbiter, as long as its node is
    /// quorate), so an lms vote is never released by the lease rule (default true). Set to false
    /// only if NO node of any lms cluster served here has `quorum.wait_for_all`: lms holds then
    /// expire like ffsplit ones.
    pub lms_wait_for_all: bool,
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
            vote_expiry_factor: 1.25,
            restart_hold_heartbeat_ms: 24_000,
            keep_active_partition: false,
            allowed_clusters: Vec::new(),
            max_msg_size: wire::MAX_MSG_SIZE as u32,
            policy: Policy::Lease,
            stale_membership_grace_ms: 2000,
            lms_wait_for_all: true,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
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
    /// A log line: `text` for humans, `fields` for structured (JSON) logs.
    Log { level: Level, text: String, fields: LogFields },
}

/// The structured facts of a log line (`twonode arbiter serve --log-format json`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LogFields {
    /// What happened: `ack`, `nack`, `hold_released`, `waiting` (the chosen partition waits for
    /// an old vote), `join`, `init_refused`, `close` (the arbiter closes), `closed_by_peer`,
    /// `connect`, `bad_frame`, `unexpected_message`; `log` for anything else.
    pub event: &'static str,
    pub cluster: Option<String>,
    pub node: Option<u32>,
    pub conn: Option<ConnId>,
    /// The ring the event is about (`node_id/seq`).
    pub ring: Option<RingId>,
    /// Why (close reason, release rule, what the partition waits for...).
    pub reason: Option<String>,
}

impl LogFields {
    fn ev(event: &'static str) -> LogFields {
        LogFields { event, ..LogFields::default() }
    }
    fn cluster(mut self, c: &str) -> Self {
        self.cluster = Some(c.to_string());
        self
    }
    fn node(mut self, n: u32) -> Self {
        self.node = Some(n);
        self
    }
    fn conn(mut self, c: ConnId) -> Self {
        self.conn = Some(c);
        self
    }
    fn ring(mut self, r: RingId) -> Self {
        self.ring = Some(r);
        self
    }
    fn reason(mut self, r: impl Into<String>) -> Self {
        self.reason = Some(r.into());
        self
    }
}

/// The arbiter's state.
#[derive(Debug)]
pub struct Arbiter {
    cfg: Config,
    started: Millis,
    /// Before this instant no ACK is granted to an incomplete partition.
    startup_hold_until: Millis,
    /// Boxed: the map's table has room for up to twice as many entries as it holds, and an
    /// empty slot then costs 16 bytes instead of the size of a `Conn` (about 270).
    conns: HashMap<ConnId, Box<Conn>>,
    /// Boxed: a B-tree node has room for 11 entries and is about two thirds full.
    clusters: BTreeMap<String, Box<Cluster>>,
    /// Clusters with a decision waiting for a lease to run out.
    pending: BTreeSet<String>,
    /// When each pending cluster must be evaluated again (its [`Arbiter::wake_time`]), as an
    /// ordered queue plus the entry of each cluster: an event re-evaluates only its own cluster
    /// and the clusters whose wake time has come, never every waiting cluster (after a mass
    /// split every cluster waits at once).
    wakes: BTreeSet<(Millis, String)>,
    wake_of: HashMap<String, Millis>,
    /// Clusters evaluated while handling the current event: their wake time is recomputed.
    touched: Vec<String>,
    /// Log lines below this level are not produced (the driver's log filter drops them anyway;
    /// formatting them cost the core time in a mass split).
    min_log: Level,
    next_scan: Millis,
    timer: Option<Millis>,
    out: Vec<Action>,
}

#[derive(Debug)]
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
    connected_at: Millis,
    hb: u32,
    hb_max: u32,
    algorithm: DecisionAlgorithm,
    tie_breaker: TieBreaker,
    kap: bool,
    config_nodes: Vec<u32>,
    members: Vec<u32>,
    membership_known: bool,
    ring: Option<RingId>,
    heuristics: Option<Heuristics>,
    vote_seq: u32,
    last_vote: Option<Vote>,
    acked_ring: Option<RingId>,
    stale_since: Option<Millis>,
    /// lms: the last decision this client got (qnetd's `last_result`); `None` = a newcomer.
    lms_result: Option<Vote>,
    /// The last VOTE_INFO(NACK) sent on this connection: (seq, ring it carried).
    nack_sent: Option<(u32, RingId)>,
}

#[derive(Debug, Clone)]
struct Hold {
    node_id: u32,
    conn: ConnId,
    conn_alive: bool,
    ring: RingId,
    members: Vec<u32>,
    last_rx: Millis,
    hb_max: u32,
    closed_by_peer: Option<Millis>,
    nack_seq: Option<u32>,
    lms: bool,
    granted_at: Millis,
}

#[derive(Debug, Default)]
struct Cluster {
    conns: VecSet<ConnId>,
    holds: Vec<Hold>,
    /// Highest ring reported per node id (survives disconnects).
    node_rings: VecMap<u32, RingId>,
    /// Members of the last partition that got the vote (keep_active_partition).
    quorate_partition: Vec<u32>,
    /// The partition the algorithm chose last, and since when it waits for the lease.
    target: Option<RingId>,
    waiting_since: Option<Millis>,
    /// Re-evaluate then (a stale client's grace ends).
    stale_wake: Option<Millis>,
    /// Restart hold bookkeeping: the first membership (ring, members) each node reported to
    /// this instance. Whatever a previous instance granted that node was for this ring or for
    /// an older one of its rings, which has then ended.
    first_report: BTreeMap<u32, (RingId, Vec<u32>)>,
    /// Nodes whose possible vote from a previous instance is ruled out: they confirmed a NACK
    /// sent by this instance (their qdevice polled NACK before replying).
    prev_released: BTreeSet<u32>,
    /// Whether the chosen partition waits for the restart hold (wake-up time).
    restart_blocked: bool,
    /// First seen during this instance's restart hold: a previous instance may have served it.
    restart_tracked: bool,
    /// Its clients speak lms.
    lms: bool,
}

impl Arbiter {
    /// A fresh arbiter started at `now`.
    pub fn new(cfg: Config, now: Millis) -> Arbiter {
        let hold = match cfg.policy {
            Policy::Lease => {
                let h = cfg.restart_hold_heartbeat_ms;
                lease_span(&cfg, h, h)
            }
            Policy::QnetdLike => 0,
        };
        Arbiter {
            cfg,
            started: now,
            startup_hold_until: now + hold,
            conns: HashMap::new(),
            clusters: BTreeMap::new(),
            pending: BTreeSet::new(),
            wakes: BTreeSet::new(),
            wake_of: HashMap::new(),
            touched: Vec::new(),
            min_log: Level::Debug,
            next_scan: now,
            timer: None,
            out: Vec::new(),
        }
    }

    /// Produce no log lines below `level` (default: all). For a driver whose log filter would
    /// drop them.
    pub fn set_min_log_level(&mut self, level: Level) {
        self.min_log = level;
    }

    /// Whether log lines of this level are produced.
    fn logs(&self, level: Level) -> bool {
        level >= self.min_log
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// When this instance started (driver time).
    pub fn started(&self) -> Millis {
        self.started
    }

    /// Feed one event; get the actions to execute, in order.
    pub fn handle(&mut self, now: Millis, ev: Event) -> Vec<Action> {
        match ev {
            Event::ClientConnected { conn, peer } => {
                if self.logs(Level::Debug) {
                    self.log_ev(Level::Debug, LogFields::ev("connect").conn(conn).reason(peer.clone()), format!("conn {conn}: new client from {peer}"));
                }
                self.conns.insert(conn, Box::new(Conn::new(peer, now, &self.cfg)));
            }
            Event::Message { conn, msg } => self.on_message(now, conn, msg),
            Event::BadFrame { conn, error } => {
                let seq = match &error {
                    WireError::UnsupportedMessage { seq, .. } => *seq,
                    _ => None,
                };
                let f = self.conn_fields("bad_frame", conn).reason(error.to_string());
                self.log_ev(Level::Warn, f, format!("conn {conn}: bad frame: {error}"));
                self.send(conn, Message::server_error(seq, error.reply_code()));
                if !matches!(error, WireError::UnsupportedMessage { .. } | WireError::TooLong { .. }) {
                    self.close(now, conn, format!("undecodable message: {error}"));
                }
            }
            Event::TlsEstablished { conn, peer_cn } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.tls = true;
                    c.tls_cn = peer_cn;
                    c.cert_ok = false;
                    c.last_rx = now;
                }
            }
            Event::ClientClosed { conn } => {
                if self.logs(Level::Info) {
                    let f = self.conn_fields("closed_by_peer", conn);
                    self.log_ev(Level::Info, f, format!("conn {conn}: closed by peer"));
                }
                self.drop_conn(now, conn, true);
            }
            Event::Tick => {}
        }
        if now >= self.next_scan {
            self.scan(now);
        }
        let due: Vec<String> = self.wakes.iter().take_while(|(t, _)| *t <= now).map(|(_, n)| n.clone()).collect();
        for name in due {
            self.evaluate(now, &name);
        }
        self.reschedule(now);
        self.arm_timer(now);
        std::mem::take(&mut self.out)
    }

    // ---- plumbing -------------------------------------------------------------------------

    #[allow(dead_code)]
    fn log(&mut self, level: Level, text: String) {
        self.out.push(Action::Log { level, text, fields: LogFields::ev("log") });
    }
    fn log_ev(&mut self, level: Level, fields: LogFields, text: String) {
        if !self.logs(level) {
            return;
        }
        self.out.push(Action::Log { level, text, fields });
    }
    /// Log fields naming a connection, with its cluster and node once known.
    fn conn_fields(&self, event: &'static str, conn: ConnId) -> LogFields {
        let mut f = LogFields::ev(event).conn(conn);
        if let Some(c) = self.conns.get(&conn) {
            f.cluster = c.cluster.clone();
            if c.init {
                f.node = Some(c.node_id);
            }
        }
        f
    }
    fn send(&mut self, conn: ConnId, msg: Message) {
        self.out.push(Action::Send { conn, msg });
    }
    fn close(&mut self, now: Millis, conn: ConnId, reason: String) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        let f = self.conn_fields("close", conn).reason(reason.clone());
        self.log_ev(Level::Warn, f, format!("conn {conn}: closing: {reason}"));
        self.drop_conn(now, conn, false);
        self.out.push(Action::Close { conn, reason });
    }

    /// Forget a connection; its holds stay until released by the rule.
    fn drop_conn(&mut self, now: Millis, conn: ConnId, by_peer: bool) {
        let Some(c) = self.conns.remove(&conn) else { return };
        let Some(name) = c.cluster.filter(|_| c.init) else { return };
        if let Some(cl) = self.clusters.get_mut(&name) {
            cl.conns.remove(&conn);
            for h in cl.holds.iter_mut().filter(|h| h.conn == conn) {
                h.conn_alive = false;
                if by_peer {
                    h.closed_by_peer = Some(now);
                }
            }
        }
        self.evaluate(now, &name);
    }

    /// Dead-peer detection, once a second.
    fn scan(&mut self, now: Millis) {
        self.next_scan = now + 1000;
        let dpd = self.cfg.dpd_coefficient;
        let dead: Vec<(ConnId, Millis, Millis, u32)> = self
            .conns
            .iter()
            .filter_map(|(id, c)| {
                let limit = if c.init { (c.hb as f64 * dpd).ceil() as Millis } else { 30_000 };
                (now.saturating_sub(c.last_rx) > limit).then_some((*id, now - c.last_rx, limit, c.hb))
            })
            .collect();
        for (id, silent, limit, hb) in dead {
            // the driver stamps messages with their arrival time, so this is the client's own
            // silence, not time its messages spent queued behind a busy arbiter
            self.close(now, id, format!("no message for {silent} ms (dead peer: the client missed its heartbeat; limit {limit} ms = {dpd} × heartbeat {hb} ms)"));
        }
    }

    /// Recompute the wake time of every cluster evaluated during this event (a cluster that is
    /// no longer pending leaves the queue). Between its own events and its wake time nothing
    /// changes a waiting cluster's decision, so it is not evaluated in between.
    fn reschedule(&mut self, now: Millis) {
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort_unstable();
        touched.dedup();
        for name in touched.drain(..) {
            if let Some(old) = self.wake_of.remove(&name) {
                self.wakes.remove(&(old, name.clone()));
            }
            if !self.pending.contains(&name) {
                continue;
            }
            if let Some(t) = self.clusters.get(&name).and_then(|cl| self.wake_time(cl, now)) {
                self.wakes.insert((t, name.clone()));
                self.wake_of.insert(name, t);
            }
        }
        self.touched = touched;
    }

    fn arm_timer(&mut self, now: Millis) {
        let mut at = if self.conns.is_empty() { None } else { Some(self.next_scan) };
        if let Some((t, _)) = self.wakes.first() {
            at = Some(at.map_or(*t, |a: Millis| a.min(*t)));
        }
        if at != self.timer {
            self.timer = at;
            if let Some(at) = at {
                self.out.push(Action::SetTimer { at: at.max(now) });
            }
        }
    }

    /// Earliest time a blocking hold (or the restart hold) of this cluster may end.
    fn wake_time(&self, cl: &Cluster, now: Millis) -> Option<Millis> {
        if let Some(w) = cl.stale_wake {
            return Some(w);
        }
        let target = cl.target?;
        let mut t: Option<Millis> = None;
        for h in cl.holds.iter().filter(|h| h.ring != target) {
            if let Some(end) = self.lease_end(h) {
                t = Some(t.map_or(end, |x: Millis| x.min(end)));
            }
        }
        if cl.restart_blocked && now < self.startup_hold_until {
            t = Some(t.map_or(self.startup_hold_until, |x| x.max(self.startup_hold_until)));
        }
        t
    }

    /// Nodes whose possible vote from a previous arbiter instance may still be counted in a
    /// partition other than `w` (the restart hold, per node). Empty once the hold is over.
    ///
    /// A previous instance can only have granted node `m` a vote for a ring `m` reported to it,
    /// before that instance stopped, so before this one started; corosync ring sequence numbers
    /// only grow, so that ring is either the first ring `F` that `m` reported to this instance or
    /// an older one of `m`'s rings, which has ended for all its members (the assumption of
    /// release rule 1). Hence `m` does not block `w` if: `F` is `w`; or `F` has ended too (a
    /// member of `F` reported a newer ring); or `m` confirmed a NACK sent by this instance
    /// (its qdevice polled NACK before replying, replacing any older vote). A node that has
    /// reported nothing to this instance blocks until the restart hold runs out; in an lms
    /// cluster under `lms_wait_for_all` it never runs out (qdevice's lms keeps a vote without
    /// the arbiter while quorate with wait_for_all), only the rules above end it.
    fn restart_blockers(&self, cl: &Cluster, config_nodes: &[u32], w: Option<RingId>, now: Millis) -> Vec<u32> {
        let unbounded = cl.lms && self.cfg.lms_wait_for_all;
        if !cl.restart_tracked || (now >= self.startup_hold_until && !unbounded) {
            return Vec::new();
        }
        config_nodes
            .iter()
            .copied()
            .filter(|m| !cl.prev_released.contains(m))
            .filter(|m| match cl.first_report.get(m) {
                None => true,
                Some((f, members)) => Some(*f) != w && !ring_ended(cl, *f, members),
            })
            .collect()
    }

    /// When a hold certainly ends by itself (`None`: only by ring change or NACK reply).
    fn lease_end(&self, h: &Hold) -> Option<Millis> {
        match self.cfg.policy {
            Policy::QnetdLike => {
                return if h.conn_alive { None } else { Some(0) };
            }
            Policy::Lease => {}
        }
        if h.lms && self.cfg.lms_wait_for_all {
            return None;
        }
        let r = 1.0 + self.cfg.clock_drift.max(0.0);
        let hb = h.hb_max as f64;
        let e = self.cfg.vote_expiry_factor.max(0.0) * hb;
        let silent = h.last_rx + ((2.0 * hb + e) * r).ceil() as Millis;
        let end = match h.closed_by_peer {
            Some(c) => silent.min((h.last_rx + (2.0 * hb * r).ceil() as Millis).max(c + (e * r).ceil() as Millis)),
            None => silent,
        };
        Some(end + self.cfg.lease_margin_ms)
    }

    // ---- TLS rules ------------------------------------------------------------------------

    /// corosync-qnetd's TLS / certificate rules for every message after PREINIT.
    /// true = go on; false = error sent or connection closed.
    fn check_tls(&mut self, now: Millis, conn: ConnId, seq: Option<u32>) -> bool {
        let (tls_on, cn, cluster, cert_ok) = match self.conns.get(&conn) {
            Some(c) => (c.tls, c.tls_cn.clone(), c.cluster.clone(), c.cert_ok),
            None => return false,
        };
        if self.cfg.tls == TlsSupported::Required && !tls_on {
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
                    self.close(now, conn, "client sent no valid certificate".into());
                    return false;
                }
                (Some(cn), cl) => {
                    let cl = cl.unwrap_or_default();
                    self.close(now, conn, format!("client certificate CN {cn:?} is not the cluster name {cl:?}"));
                    return false;
                }
            }
        }
        true
    }

    /// TLS check + INIT required. Returns the cluster name when the message may be processed.
    fn ready(&mut self, now: Millis, conn: ConnId, seq: Option<u32>) -> Option<String> {
        if !self.check_tls(now, conn, seq) {
            return None;
        }
        match self.conns.get(&conn) {
            Some(c) if c.init => c.cluster.clone(),
            Some(_) => {
                self.send(conn, Message::server_error(seq, ReplyErrorCode::InitRequired));
                None
            }
            None => None,
        }
    }

    // ---- messages -------------------------------------------------------------------------

    fn on_message(&mut self, now: Millis, conn: ConnId, msg: Message) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        c.last_rx = now;
        if let Some(cl) = c.cluster.as_ref().filter(|_| c.init).and_then(|n| self.clusters.get_mut(n)) {
            for h in cl.holds.iter_mut().filter(|h| h.conn == conn) {
                h.last_rx = now;
            }
        }
        let seq = msg.seq();
        match msg {
            Message::Preinit { cluster_name, .. } => {
                let Some(name) = cluster_name else {
                    self.send(conn, Message::server_error(seq, ReplyErrorCode::DoesntContainRequiredOption));
                    return;
                };
                if !self.cfg.allowed_clusters.is_empty() && !self.cfg.allowed_clusters.contains(&name) {
                    self.send(conn, Message::server_error(seq, ReplyErrorCode::UnexpectedMessage));
                    self.close(now, conn, format!("cluster {name:?} is not in allowed_clusters"));
                    return;
                }
                if let Some(c) = self.conns.get_mut(&conn) {
                    if c.init {
                        // a second PREINIT after INIT: refuse, keep the client as it is
                        self.send(conn, Message::server_error(seq, ReplyErrorCode::UnexpectedMessage));
                        return;
                    }
                    c.cluster = Some(name);
                    c.preinit = true;
                }
                let reply = Message::PreinitReply {
                    seq,
                    tls: Some(self.cfg.tls),
                    client_cert_required: Some(self.cfg.client_cert_required),
                };
                self.send(conn, reply);
            }
            Message::StartTls { .. } => {
                let (pre, tls) = self.conns.get(&conn).map(|c| (c.preinit, c.tls)).unwrap_or((false, false));
                if !pre {
                    self.send(conn, Message::server_error(seq, ReplyErrorCode::PreinitRequired));
                } else if self.cfg.tls == TlsSupported::Unsupported || tls {
                    self.send(conn, Message::server_error(seq, ReplyErrorCode::UnexpectedMessage));
                } else {
                    self.out.push(Action::StartTls { conn });
                }
            }
            Message::Init(init) => self.on_init(now, conn, init),
            Message::EchoRequest { .. } => {
                if self.ready(now, conn, seq).is_some() {
                    self.send(conn, Message::EchoReply { seq });
                }
            }
            Message::SetOption { heartbeat_interval, keep_active_partition, .. } => {
                if self.ready(now, conn, seq).is_none() {
                    return;
                }
                if let Some(hb) = heartbeat_interval {
                    if hb < self.cfg.heartbeat_min_ms || hb > self.cfg.heartbeat_max_ms {
                        self.send(conn, Message::server_error(seq, ReplyErrorCode::InvalidHeartbeatInterval));
                        return;
                    }
                }
                let Some(c) = self.conns.get_mut(&conn) else { return };
                if let Some(hb) = heartbeat_interval {
                    c.hb = hb;
                    c.hb_max = c.hb_max.max(hb);
                }
                if let Some(k) = keep_active_partition {
                    c.kap = k;
                }
                let reply = Message::SetOptionReply {
                    seq,
                    heartbeat_interval: heartbeat_interval.map(|_| c.hb),
                    keep_active_partition: keep_active_partition.map(|_| c.kap),
                };
                let hbm = c.hb_max;
                if let Some(cl) = c.cluster.clone().and_then(|n| self.clusters.get_mut(&n)) {
                    for h in cl.holds.iter_mut().filter(|h| h.conn == conn) {
                        h.hb_max = h.hb_max.max(hbm);
                    }
                }
                self.send(conn, reply);
            }
            Message::NodeList(nl) => self.on_node_list(now, conn, nl),
            Message::AskForVote { .. } => {
                let Some(name) = self.ready(now, conn, seq) else { return };
                let Some(c) = self.conns.get(&conn) else { return };
                if seq.is_none() {
                    self.send(conn, Message::server_error(seq, ReplyErrorCode::DoesntContainRequiredOption));
                    return;
                }
                if c.algorithm == DecisionAlgorithm::Ffsplit {
                    self.send(conn, Message::server_error(seq, ReplyErrorCode::UnsupportedDecisionAlgorithmMessage));
                    return;
                }
                self.evaluate(now, &name);
                let Some(c) = self.conns.get(&conn) else { return };
                let vote = if c.acked_ring.is_some() && c.acked_ring == c.ring {
                    Vote::Ack
                } else if self.clusters.get(&name).is_some_and(|cl| cl.target.is_some() && cl.target != c.ring) {
                    Vote::Nack
                } else {
                    Vote::WaitForReply
                };
                let ring = c.ring;
                self.send(conn, Message::AskForVoteReply { seq, ring_id: ring, vote: Some(vote) });
            }
            Message::VoteInfoReply { .. } => {
                let Some(name) = self.ready(now, conn, seq) else { return };
                // A confirmed NACK for the ring the node still reports: its qdevice polled NACK,
                // which replaces any older vote, also one a previous arbiter instance gave.
                let confirmed = self
                    .conns
                    .get(&conn)
                    .filter(|c| c.nack_sent.is_some_and(|(s, r)| Some(s) == seq && c.ring == Some(r)))
                    .map(|c| c.node_id);
                if let (Some(s), Some(cl)) = (seq, self.clusters.get_mut(&name)) {
                    let holding = cl.restart_tracked;
                    let before = cl.holds.len();
                    cl.holds.retain(|h| !(h.conn == conn && h.nack_seq == Some(s)));
                    let released = cl.holds.len() != before;
                    let prev = match confirmed {
                        Some(node) if holding => cl.prev_released.insert(node),
                        _ => false,
                    };
                    if released && self.logs(Level::Info) {
                        let f = self.conn_fields("hold_released", conn).reason("NACK confirmed");
                        self.log_ev(Level::Info, f, format!("cluster {name}: conn {conn} confirmed NACK; its vote is released"));
                    }
                    if prev {
                        let f = self.conn_fields("hold_released", conn).reason("NACK confirmed: restart hold lifted for this node");
                        self.log_ev(Level::Info, f, format!("cluster {name}: conn {conn} confirmed NACK; no vote of a previous arbiter instance counts for it"));
                    }
                }
                self.evaluate(now, &name);
            }
            Message::HeuristicsChange { heuristics, .. } => {
                let Some(name) = self.ready(now, conn, seq) else { return };
                if heuristics.is_none() || seq.is_none() {
                    self.send(conn, Message::server_error(seq, ReplyErrorCode::DoesntContainRequiredOption));
                    return;
                }
                let Some(c) = self.conns.get_mut(&conn) else { return };
                c.heuristics = heuristics;
                let vote = if c.config_nodes.is_empty() || !c.membership_known { Vote::AskLater } else { Vote::NoChange };
                let ring = c.ring;
                self.send(conn, Message::HeuristicsChangeReply { seq, ring_id: ring, heuristics, vote: Some(vote) });
                self.evaluate(now, &name);
            }
            other => {
                let t = other.msg_type();
                let f = self.conn_fields("unexpected_message", conn).reason(t.to_string());
                self.log_ev(Level::Warn, f, format!("conn {conn}: unexpected {t} message from a client"));
                self.send(conn, Message::server_error(seq, ReplyErrorCode::UnexpectedMessage));
            }
        }
    }

    fn on_init(&mut self, now: Millis, conn: ConnId, init: Init) {
        if !self.check_tls(now, conn, init.seq) {
            return;
        }
        let Some(c) = self.conns.get(&conn) else { return };
        let mut code = ReplyErrorCode::NoError;
        let algorithm = init.decision_algorithm.and_then(DecisionAlgorithm::from_u16);
        if !c.preinit {
            code = ReplyErrorCode::PreinitRequired;
        } else if c.init {
            code = ReplyErrorCode::UnexpectedMessage;
        } else if init.node_id.is_none()
            || init.ring_id.is_none()
            || init.heartbeat_interval.is_none()
            || init.tie_breaker.is_none()
            || init.decision_algorithm.is_none()
        {
            code = ReplyErrorCode::DoesntContainRequiredOption;
        } else if init
            .heartbeat_interval
            .is_some_and(|hb| hb < self.cfg.heartbeat_min_ms || hb > self.cfg.heartbeat_max_ms)
        {
            code = ReplyErrorCode::InvalidHeartbeatInterval;
        } else if !matches!(algorithm, Some(DecisionAlgorithm::Ffsplit) | Some(DecisionAlgorithm::Lms)) {
            code = ReplyErrorCode::UnsupportedDecisionAlgorithm;
        }
        let name = c.cluster.clone().unwrap_or_default();
        let node_id = init.node_id.unwrap_or(0);
        let tb = init.tie_breaker.unwrap_or(TieBreaker::Lowest);
        let mut replaced = None;
        if code == ReplyErrorCode::NoError {
            if let Some(cl) = self.clusters.get(&name) {
                for other in cl.conns.iter().filter_map(|id| self.conns.get(id).map(|o| (id, o))) {
                    if other.1.tie_breaker != tb {
                        code = ReplyErrorCode::TieBreakerDiffersFromOtherNodes;
                    } else if Some(other.1.algorithm) != algorithm {
                        code = ReplyErrorCode::AlgorithmDiffersFromOtherNodes;
                    } else if other.1.node_id == node_id {
                        // a qdevice has one connection: the old one is dead (its holds stay)
                        replaced = Some(*other.0);
                    }
                }
            }
        }
        if let Some(old) = replaced.filter(|_| code == ReplyErrorCode::NoError) {
            self.close(now, old, format!("node {node_id} of cluster {name} reconnected as conn {conn}"));
        }
        if code == ReplyErrorCode::NoError {
            let kap_default = self.cfg.keep_active_partition;
            if let Some(c) = self.conns.get_mut(&conn) {
                c.init = true;
                c.node_id = node_id;
                c.hb = init.heartbeat_interval.unwrap_or(8000);
                c.hb_max = c.hb;
                c.algorithm = algorithm.unwrap_or(DecisionAlgorithm::Ffsplit);
                c.tie_breaker = tb;
                c.kap = kap_default;
                c.ring = init.ring_id;
            }
            let lms = algorithm == Some(DecisionAlgorithm::Lms);
            // an lms vote of a previous instance has no time bound (lms_wait_for_all): track
            // lms clusters whenever this instance first sees them, not only during the hold
            let tracked = now < self.startup_hold_until || (lms && self.cfg.lms_wait_for_all && self.cfg.policy == Policy::Lease);
            let cl = self.clusters.entry(name.clone()).or_insert_with(|| Box::new(Cluster { restart_tracked: tracked, ..Cluster::default() }));
            cl.lms |= lms;
            cl.conns.insert(conn);
            if let Some(r) = init.ring_id {
                note_ring(cl, node_id, r);
            }
            if self.logs(Level::Info) {
                let f = LogFields::ev("join").cluster(&name).node(node_id).conn(conn);
                self.log_ev(Level::Info, f, format!("cluster {name}: node {node_id} joined (conn {conn})"));
            }
        } else {
            let f = LogFields::ev("init_refused").cluster(&name).node(node_id).conn(conn).reason(format!("{code:?}"));
            self.log_ev(Level::Warn, f, format!("conn {conn}: INIT refused: {code:?}"));
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
        if code == ReplyErrorCode::NoError {
            self.evaluate(now, &name);
        }
    }

    fn on_node_list(&mut self, now: Millis, conn: ConnId, nl: NodeList) {
        let seq = nl.seq;
        let Some(name) = self.ready(now, conn, seq) else { return };
        let (Some(list_type), Some(_)) = (nl.list_type, seq) else {
            self.send(conn, Message::server_error(seq, ReplyErrorCode::DoesntContainRequiredOption));
            return;
        };
        let Some(c) = self.conns.get_mut(&conn) else { return };
        let ids: Vec<u32> = nl.nodes.iter().map(|n| n.node_id).collect();
        let vote = match list_type {
            NodeListType::InitialConfig | NodeListType::ChangedConfig => {
                if ids.is_empty() || !ids.contains(&c.node_id) {
                    self.send(conn, Message::server_error(seq, ReplyErrorCode::InvalidConfigNodeList));
                    return;
                }
                c.config_nodes = ids;
                if list_type == NodeListType::InitialConfig || !c.membership_known {
                    Vote::AskLater
                } else {
                    Vote::NoChange
                }
            }
            NodeListType::Membership => {
                let Some(ring) = nl.ring_id else {
                    self.send(conn, Message::server_error(seq, ReplyErrorCode::DoesntContainRequiredOption));
                    return;
                };
                if ids.is_empty() || !ids.contains(&c.node_id) {
                    self.send(conn, Message::server_error(seq, ReplyErrorCode::InvalidMembershipNodeList));
                    return;
                }
                c.members = ids;
                c.membership_known = true;
                c.stale_since = None;
                c.ring = Some(ring);
                c.heuristics = nl.heuristics;
                if c.acked_ring != Some(ring) {
                    c.acked_ring = None;
                }
                let node = c.node_id;
                let members = c.members.clone();
                if let Some(cl) = self.clusters.get_mut(&name) {
                    note_ring(cl, node, ring);
                    if cl.restart_tracked {
                        cl.first_report.entry(node).or_insert((ring, members));
                    }
                }
                let Some(c) = self.conns.get(&conn) else { return };
                if c.config_nodes.is_empty() {
                    Vote::AskLater
                } else {
                    Vote::NoChange
                }
            }
            NodeListType::Quorum => {
                if nl.quorate.is_none() {
                    self.send(conn, Message::server_error(seq, ReplyErrorCode::DoesntContainRequiredOption));
                    return;
                }
                Vote::NoChange
            }
        };
        let ring = self.conns.get(&conn).and_then(|c| c.ring);
        if let Some(c) = self.conns.get_mut(&conn) {
            if matches!(vote, Vote::AskLater) {
                c.last_vote = Some(vote);
            }
        }
        self.send(conn, Message::NodeListReply { seq, list_type: Some(list_type), ring_id: ring, vote: Some(vote) });
        self.evaluate(now, &name);
    }

    // ---- the decision -----------------------------------------------------------------------

    /// Release what the rule allows, choose the partition, send NACKs, and ACKs when safe.
    fn evaluate(&mut self, now: Millis, name: &str) {
        if self.touched.last().is_none_or(|t| t != name) {
            self.touched.push(name.to_string());
        }
        self.release(now, name);
        let Some(cl) = self.clusters.get(name) else { return };
        if cl.conns.is_empty() && cl.holds.is_empty() {
            self.clusters.remove(name);
            self.pending.remove(name);
            return;
        }
        // Clients that told us everything we need. A client whose ring is known to be dissolved
        // (another member reported a newer ring) is between rings: wait a little for its new
        // membership, then decide without it.
        let grace = self.cfg.stale_membership_grace_ms;
        let mut ready = Vec::new();
        let mut stale_wake: Option<Millis> = None;
        let mut newly_stale = Vec::new();
        for id in cl.conns.iter().copied() {
            let Some(c) = self.conns.get(&id) else { continue };
            if !c.membership_known || c.config_nodes.is_empty() {
                continue;
            }
            let Some(r) = c.ring else { continue };
            let stale = c.members.iter().any(|m| cl.node_rings.get(m).is_some_and(|x| x.seq > r.seq));
            if !stale {
                ready.push(id);
                continue;
            }
            let since = c.stale_since.unwrap_or(now);
            if c.stale_since.is_none() {
                newly_stale.push(id);
            }
            if now < since + grace {
                stale_wake = Some(stale_wake.map_or(since + grace, |w: Millis| w.min(since + grace)));
            }
        }
        for id in newly_stale {
            if let Some(c) = self.conns.get_mut(&id) {
                c.stale_since = Some(now);
                let node = c.node_id;
                self.log(Level::Debug, format!("cluster {name}: node {node}'s ring has ended; waiting up to {grace} ms for its new membership"));
            }
        }
        if let Some(cl) = self.clusters.get_mut(name) {
            cl.stale_wake = stale_wake;
        }
        if stale_wake.is_some() {
            self.pending.insert(name.to_string());
            return;
        }
        if ready.is_empty() {
            if let Some(cl) = self.clusters.get_mut(name) {
                cl.target = None;
            }
            self.pending.remove(name);
            return;
        }
        if !self.stable(&ready) {
            return;
        }
        let winner = self.choose(name, &ready);
        // NACK everyone outside the winner.
        let mut nacks = Vec::new();
        for id in &ready {
            let Some(c) = self.conns.get(id) else { continue };
            if c.ring == winner {
                continue;
            }
            let held = self
                .clusters
                .get(name)
                .is_some_and(|cl| cl.holds.iter().any(|h| h.conn == *id && h.nack_seq.is_none()));
            if held || c.last_vote != Some(Vote::Nack) {
                nacks.push(*id);
            }
        }
        let lms = ready.iter().filter_map(|id| self.conns.get(id)).any(|c| c.algorithm == DecisionAlgorithm::Lms);
        let newcomer_nacks: Vec<ConnId> =
            if lms { nacks.iter().copied().filter(|id| self.lms_newcomer_nack(&ready, self.conns.get(id).and_then(|c| c.ring))).collect() } else { Vec::new() };
        for id in nacks {
            if lms && !newcomer_nacks.contains(&id) {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.lms_result = Some(Vote::Nack);
                }
            }
            self.send_nack(name, id, None);
        }
        let Some(w) = winner else {
            if let Some(cl) = self.clusters.get_mut(name) {
                cl.target = None;
                cl.waiting_since = None;
            }
            self.pending.remove(name);
            return;
        };
        let members: Vec<u32> = ready
            .iter()
            .filter_map(|id| self.conns.get(id))
            .find(|c| c.ring == Some(w))
            .map(|c| c.members.clone())
            .unwrap_or_default();
        let config_nodes: Vec<u32> = ready.iter().filter_map(|id| self.conns.get(id)).map(|c| c.config_nodes.clone()).next().unwrap_or_default();
        let restart_blockers = match self.clusters.get(name) {
            Some(cl) => self.restart_blockers(cl, &config_nodes, Some(w), now),
            None => return,
        };
        let restart_block = !restart_blockers.is_empty();
        let Some(cl) = self.clusters.get_mut(name) else { return };
        if cl.target != Some(w) {
            cl.target = Some(w);
            cl.waiting_since = Some(now);
        }
        cl.restart_blocked = restart_block;
        let blockers: Vec<(u32, RingId)> = cl.holds.iter().filter(|h| h.ring != w).map(|h| (h.node_id, h.ring)).collect();
        if !blockers.is_empty() || restart_block {
            if self.pending.insert(name.to_string()) {
                let why = if restart_block && blockers.is_empty() && now >= self.startup_hold_until {
                    format!(
                        "lms: node(s) {restart_blockers:?} may still count a vote of a previous arbiter instance \
                         (lms keeps it while disconnected, with wait_for_all); waiting for them to report"
                    )
                } else if restart_block && blockers.is_empty() {
                    format!(
                        "arbiter restart hold ({} ms left): node(s) {restart_blockers:?} may still count a vote of a previous arbiter instance",
                        self.startup_hold_until - now
                    )
                } else {
                    format!("vote still possibly held by node(s) {:?}", blockers.iter().map(|b| b.0).collect::<Vec<_>>())
                };
                let f = LogFields::ev("waiting").cluster(name).ring(w).reason(why.clone());
                self.log_ev(Level::Info, f, format!("cluster {name}: partition {}/{} chosen, waiting: {why}", w.node_id, w.seq));
            }
            // ffsplit, waiting on another partition's hold: the chosen partition is told NACK at
            // once (a NACK is always safe; its ACK follows when the rule allows), so a client that
            // cannot wait (the fence gate of a cman node) learns now that the vote is elsewhere
            // instead of timing out. (A restart hold alone sends nothing: a cluster starting whole
            // gets its ACK moments later.)
            if !lms && !blockers.is_empty() {
                let waiting: Vec<ConnId> = ready
                    .iter()
                    .copied()
                    .filter(|id| {
                        self.conns.get(id).is_some_and(|c| c.ring == Some(w) && c.acked_ring != Some(w) && c.last_vote != Some(Vote::Nack))
                    })
                    .collect();
                for id in waiting {
                    self.send_nack(name, id, Some("while its partition waits"));
                }
            }
            return;
        }
        self.pending.remove(name);
        cl.quorate_partition = members.clone();
        cl.waiting_since = None;
        cl.restart_blocked = false;
        let mut acks = Vec::new();
        for id in &ready {
            let Some(c) = self.conns.get(id) else { continue };
            if c.ring == Some(w) && c.acked_ring != Some(w) {
                acks.push(*id);
            }
        }
        let lms_cluster = ready.iter().filter_map(|id| self.conns.get(id)).any(|c| c.algorithm == DecisionAlgorithm::Lms);
        for id in acks {
            let Some(c) = self.conns.get_mut(&id) else { continue };
            c.vote_seq = c.vote_seq.wrapping_add(1);
            let s = c.vote_seq;
            c.last_vote = Some(Vote::Ack);
            c.acked_ring = Some(w);
            if c.algorithm == DecisionAlgorithm::Lms {
                c.lms_result = Some(Vote::Ack);
            }
            let hold = Hold {
                node_id: c.node_id,
                conn: id,
                conn_alive: true,
                ring: w,
                members: members.clone(),
                last_rx: c.last_rx,
                hb_max: c.hb_max,
                closed_by_peer: None,
                nack_seq: None,
                lms: lms_cluster,
                granted_at: now,
            };
            let node = c.node_id;
            if let Some(cl) = self.clusters.get_mut(name) {
                cl.holds.reserve_exact(1); // one hold per node: no room for four
                cl.holds.push(hold);
            }
            if self.logs(Level::Info) {
                let f = LogFields::ev("ack").cluster(name).node(node).conn(id).ring(w);
                self.log_ev(Level::Info, f, format!("cluster {name}: ACK to node {node} (ring {}/{})", w.node_id, w.seq));
            }
            self.send(id, Message::vote_info(s, w, Vote::Ack));
        }
    }

    /// Send `VOTE_INFO(NACK)` for the client's current ring, and mark its holds so that its
    /// `VOTE_INFO_REPLY` releases them (rule 2). `why` goes into the log.
    fn send_nack(&mut self, name: &str, id: ConnId, why: Option<&str>) {
        let Some(c) = self.conns.get_mut(&id) else { return };
        c.vote_seq = c.vote_seq.wrapping_add(1);
        let s = c.vote_seq;
        c.last_vote = Some(Vote::Nack);
        c.acked_ring = None;
        let ring = c.ring.unwrap_or_default();
        c.nack_sent = Some((s, ring));
        let node = c.node_id;
        if let Some(cl) = self.clusters.get_mut(name) {
            for h in cl.holds.iter_mut().filter(|h| h.conn == id && h.nack_seq.is_none()) {
                h.nack_seq = Some(s);
            }
        }
        if self.logs(Level::Info) {
            let mut f = LogFields::ev("nack").cluster(name).node(node).conn(id).ring(ring);
            let mut text = format!("cluster {name}: NACK to node {node}");
            if let Some(why) = why {
                f = f.reason(why);
                text.push(' ');
                text.push_str(why);
            }
            self.log_ev(Level::Info, f, format!("{text} (ring {}/{})", ring.node_id, ring.seq));
        }
        self.send(id, Message::vote_info(s, ring, Vote::Nack));
    }

    /// Apply release rules 1 (ring dissolved) and 3 (lease expired). Rule 2 is in the
    /// VOTE_INFO_REPLY handler.
    fn release(&mut self, now: Millis, name: &str) {
        let Some(cl) = self.clusters.get(name) else { return };
        let mut keep = Vec::with_capacity(cl.holds.len());
        let mut released = Vec::new();
        for h in &cl.holds {
            let dissolved = ring_ended(cl, h.ring, &h.members);
            let expired = self.lease_end(h).is_some_and(|end| now >= end);
            if dissolved || expired {
                released.push((h.node_id, h.conn, h.ring, if dissolved { "its ring dissolved" } else { "its lease expired" }));
            } else {
                keep.push(h.clone());
            }
        }
        if let Some(cl) = self.clusters.get_mut(name) {
            cl.holds = keep;
        }
        if self.logs(Level::Info) {
            for (node, conn, ring, why) in released {
                let f = LogFields::ev("hold_released").cluster(name).node(node).conn(conn).ring(ring).reason(why);
                self.log_ev(Level::Info, f, format!("cluster {name}: vote of node {node} released: {why}"));
            }
        }
    }

    /// qnetd's "membership stable": every connected member of a client's membership reports
    /// the same ring and the same members; and all clients share one config node list.
    fn stable(&self, ready: &[ConnId]) -> bool {
        let by_node: HashMap<u32, &Conn> = ready.iter().filter_map(|id| self.conns.get(id)).map(|c| (c.node_id, &**c)).collect();
        let mut cfg0: Option<Vec<u32>> = None;
        for c in by_node.values() {
            let mut cfg = c.config_nodes.clone();
            cfg.sort_unstable();
            match &cfg0 {
                None => cfg0 = Some(cfg),
                Some(x) if *x != cfg => return false,
                _ => {}
            }
            for m in &c.members {
                if let Some(o) = by_node.get(m) {
                    if o.ring != c.ring || sorted(&o.members) != sorted(&c.members) {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// The algorithm: which partition (ring) should have the vote.
    fn choose(&self, name: &str, ready: &[ConnId]) -> Option<RingId> {
        let clients: Vec<&Conn> = ready.iter().filter_map(|id| self.conns.get(id)).map(|c| &**c).collect();
        let first = clients.first()?;
        let mut parts: BTreeMap<RingId, Vec<&Conn>> = BTreeMap::new();
        for c in &clients {
            if let Some(r) = c.ring {
                parts.entry(r).or_default().push(c);
            }
        }
        let n = first.config_nodes.len();
        let tb_node = match first.tie_breaker {
            TieBreaker::Lowest => first.config_nodes.iter().copied().min(),
            TieBreaker::Highest => first.config_nodes.iter().copied().max(),
            TieBreaker::NodeId(id) => Some(id),
        };
        let preferred = |members: &[u32]| tb_node.is_some_and(|t| members.contains(&t));
        if first.algorithm == DecisionAlgorithm::Lms {
            return self.choose_lms(name, &parts, first.tie_breaker);
        }
        // ffsplit
        let kap = clients.iter().all(|c| c.kap);
        let quorate_partition = self.clusters.get(name).map(|cl| cl.quorate_partition.clone()).unwrap_or_default();
        #[derive(PartialEq, Eq, PartialOrd, Ord)]
        struct Key {
            score: i64,
            active: usize,
            kap: bool,
            preferred: bool,
        }
        let mut best: Option<(Key, RingId)> = None;
        for (r, cs) in &parts {
            let members = &cs[0].members;
            if members.len() * 2 > n {
                return Some(*r);
            }
            if n % 2 == 1 || members.len() * 2 < n {
                continue;
            }
            let active = cs.len() as i64;
            let pass = cs.iter().filter(|c| c.heuristics == Some(Heuristics::Pass)).count() as i64;
            let fail = cs.iter().filter(|c| c.heuristics == Some(Heuristics::Fail)).count() as i64;
            let key = Key {
                score: active + pass - fail,
                active: cs.len(),
                kap: kap && cs.iter().any(|c| quorate_partition.contains(&c.node_id)),
                preferred: preferred(members),
            };
            if best.as_ref().is_none_or(|(k, _)| key > *k) {
                best = Some((key, *r));
            }
        }
        best.map(|b| b.1)
    }

}

impl Conn {
    fn new(peer: String, now: Millis, cfg: &Config) -> Conn {
        Conn {
            peer,
            cluster: None,
            preinit: false,
            tls: false,
            tls_cn: None,
            cert_ok: false,
            init: false,
            node_id: 0,
            last_rx: now,
            connected_at: now,
            hb: 8000,
            hb_max: 8000,
            algorithm: DecisionAlgorithm::Ffsplit,
            tie_breaker: TieBreaker::Lowest,
            kap: cfg.keep_active_partition,
            config_nodes: Vec::new(),
            members: Vec::new(),
            membership_known: false,
            ring: None,
            heuristics: None,
            vote_seq: 0,
            last_vote: None,
            acked_ring: None,
            stale_since: None,
            lms_result: None,
            nack_sent: None,
        }
    }
}

fn note_ring(cl: &mut Cluster, node: u32, ring: RingId) {
    match cl.node_rings.get_mut(&node) {
        Some(e) if ring.seq > e.seq => *e = ring,
        Some(_) => {}
        None => {
            cl.node_rings.insert(node, ring);
        }
    }
}

/// Whether ring `r` (with these members) has ended: one of its members reported a newer ring.
fn ring_ended(cl: &Cluster, r: RingId, members: &[u32]) -> bool {
    members.iter().any(|m| cl.node_rings.get(m).is_some_and(|x| x.seq > r.seq))
}

fn sorted(v: &[u32]) -> Vec<u32> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v
}

/// Lease length after the last message for heartbeat `hb_ms` (the silent case of rule 3).
pub fn lease_len(cfg: &Config, hb_ms: u32) -> Millis {
    lease_span(cfg, hb_ms, hb_ms)
}

fn lease_span(cfg: &Config, hb_ms: u32, expiry_hb_ms: u32) -> Millis {
    let r = 1.0 + cfg.clock_drift.max(0.0);
    let span = (2.0 * hb_ms as f64 + cfg.vote_expiry_factor.max(0.0) * expiry_hb_ms as f64) * r;
    span.ceil() as Millis + cfg.lease_margin_ms
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::arbiter::wire::{NodeInfo, NodeList};

    fn cfg() -> Config {
        Config { tls: TlsSupported::Unsupported, client_cert_required: false, ..Config::default() }
    }

    struct H {
        a: Arbiter,
        now: Millis,
        seq: u32,
    }

    fn ring(id: u32, seq: u64) -> RingId {
        RingId { node_id: id, seq }
    }

    impl H {
        fn new(cfg: Config) -> H {
            H { a: Arbiter::new(cfg, 0), now: 0, seq: 100 }
        }
        fn at(&mut self, t: Millis) -> &mut Self {
            self.now = t;
            self
        }
        fn ev(&mut self, e: Event) -> Vec<Action> {
            self.a.handle(self.now, e)
        }
        fn msg(&mut self, conn: ConnId, m: Message) -> Vec<Action> {
            self.ev(Event::Message { conn, msg: m })
        }
        fn s(&mut self) -> Option<u32> {
            self.seq += 1;
            Some(self.seq)
        }
        fn join(&mut self, conn: ConnId, node: u32, r: RingId, members: &[u32]) -> Vec<Action> {
            self.join_with(conn, node, r, members, "c1", TieBreaker::Lowest, 1)
        }
        #[allow(clippy::too_many_arguments)]
        fn join_with(&mut self, conn: ConnId, node: u32, r: RingId, members: &[u32], cluster: &str, tb: TieBreaker, alg: u16) -> Vec<Action> {
            let mut out = self.ev(Event::ClientConnected { conn, peer: format!("n{node}") });
            let s = self.s();
            out.extend(self.msg(conn, Message::Preinit { seq: s, cluster_name: Some(cluster.into()) }));
            let s = self.s();
            out.extend(self.msg(
                conn,
                Message::Init(Init {
                    seq: s,
                    node_id: Some(node),
                    ring_id: Some(r),
                    heartbeat_interval: Some(8000),
                    tie_breaker: Some(tb),
                    decision_algorithm: Some(alg),
                    ..Init::default()
                }),
            ));
            let s = self.s();
            out.extend(self.msg(conn, Message::SetOption { seq: s, heartbeat_interval: None, keep_active_partition: Some(true) }));
            let s = self.s();
            out.extend(self.msg(conn, nl(s, NodeListType::InitialConfig, None, &[1, 2], None)));
            out.extend(self.membership(conn, r, members, None));
            out
        }
        fn membership(&mut self, conn: ConnId, r: RingId, members: &[u32], h: Option<Heuristics>) -> Vec<Action> {
            let s = self.s();
            self.msg(conn, nl(s, NodeListType::Membership, Some(r), members, h))
        }
        fn echo(&mut self, conn: ConnId) -> Vec<Action> {
            let s = self.s();
            self.msg(conn, Message::EchoRequest { seq: s })
        }
    }

    fn nl(seq: Option<u32>, t: NodeListType, r: Option<RingId>, ids: &[u32], h: Option<Heuristics>) -> Message {
        Message::NodeList(NodeList {
            seq,
            list_type: Some(t),
            ring_id: r,
            nodes: ids.iter().map(|i| NodeInfo { node_id: *i, data_center_id: 0, node_state: None }).collect(),
            heuristics: h,
            ..NodeList::default()
        })
    }

    fn votes(acts: &[Action]) -> Vec<(ConnId, Vote, u32)> {
        acts.iter()
            .filter_map(|a| match a {
                Action::Send { conn, msg: Message::VoteInfo { vote: Some(v), seq: Some(s), .. } } => Some((*conn, *v, *s)),
                _ => None,
            })
            .collect()
    }

    /// Two nodes, already split (rings 1/8 and 2/8), node 1 holds the vote.
    fn split_with_holder(cfg: Config) -> H {
        let mut h = H::new(cfg);
        h.at(0);
        let mut acts = h.join(1, 1, ring(1, 4), &[1, 2]);
        acts.extend(h.join(2, 2, ring(1, 4), &[1, 2]));
        let v = votes(&acts);
        assert!(v.contains(&(1, Vote::Ack, 1)) && v.iter().any(|x| x.0 == 2 && x.1 == Vote::Ack), "healthy cluster: both ACK at once even during the restart hold: {v:?}");
        h.at(1000);
        let mut acts = h.membership(1, ring(1, 8), &[1], None);
        acts.extend(h.membership(2, ring(2, 8), &[2], None));
        let v = votes(&acts);
        assert!(v.iter().any(|x| x.0 == 1 && x.1 == Vote::Ack), "tie_breaker lowest: node 1 wins: {v:?}");
        assert!(v.iter().any(|x| x.0 == 2 && x.1 == Vote::Nack), "{v:?}");
        h
    }

    fn no_restart_hold() -> Config {
        Config { restart_hold_heartbeat_ms: 0, lease_margin_ms: 1000, ..cfg() }
    }

    #[test]
    fn holder_losing_the_arbiter_keeps_the_vote_for_the_full_lease() {
        let c = no_restart_hold();
        let lease = lease_len(&c, 8000);
        assert!((27_260..=27_261).contains(&lease), "(2 + 1.25) × 8000 × 1.01 + 1000 = {lease}");
        let mut h = split_with_holder(c);
        // node 1's link to the arbiter is cut right after its last message at t=1000.
        let mut first_ack = None;
        let mut t = 1000;
        while t < 60_000 && first_ack.is_none() {
            t += 500;
            h.at(t);
            let mut acts = h.echo(2);
            acts.extend(h.ev(Event::Tick));
            if votes(&acts).iter().any(|x| x.0 == 2 && x.1 == Vote::Ack) {
                first_ack = Some(t);
            }
            if acts.iter().any(|a| matches!(a, Action::Close { conn: 1, .. })) {
                assert!(t >= 1000 + 12_000, "dead-peer drop at 1.5 × heartbeat");
            }
        }
        let got = first_ack.expect("node 2 gets the vote eventually");
        assert!(got >= 1000 + lease, "ACK to node 2 at {got} before node 1's lease ended at {}", 1000 + lease);
        assert!(got <= 1000 + lease + 1000, "and not much later: {got}");
    }

    #[test]
    fn a_newcomer_waiting_on_another_partitions_hold_is_told_nack_at_once() {
        // The fence gate's pattern: node 1 asks alone, gets the vote and goes away; node 2 then
        // asks alone on its own ring. Its partition is the only one left, but node 1's hold
        // stands: NACK at once (the gate must not time out guessing), ACK once the lease ends.
        let mut h = H::new(no_restart_hold());
        h.at(2000);
        let acts = h.join(1, 1, ring(1, 100), &[1]);
        assert_eq!(acked(&h.confirm(acts)), vec![1]);
        h.at(2500);
        h.ev(Event::ClientClosed { conn: 1 });
        h.at(3000);
        let v = votes(&h.join(2, 2, ring(2, 200), &[2]));
        assert!(v.iter().any(|x| x.0 == 2 && x.1 == Vote::Nack), "node 2 is told at once: {v:?}");
        assert!(!v.iter().any(|x| x.1 == Vote::Ack), "{v:?}");
        let mut t = 3000;
        let mut first_ack = None;
        while t < 60_000 && first_ack.is_none() {
            t += 500;
            h.at(t);
            let mut acts = h.echo(2);
            acts.extend(h.ev(Event::Tick));
            let v = votes(&acts);
            assert!(!v.iter().any(|x| x.0 == 2 && x.1 == Vote::Nack), "one NACK, not one per tick: {v:?}");
            if v.iter().any(|x| x.0 == 2 && x.1 == Vote::Ack) {
                first_ack = Some(t);
            }
        }
        let got = first_ack.expect("node 2 gets the vote once node 1's hold ends");
        // it closed the connection itself: 2·hb·(1+ρ) after its last message, plus the margin
        assert!(got >= 2000 + 16_160 + 1000, "ACK at {got}, within node 1's hold");
    }

    #[test]
    fn qnetd_like_policy_regrants_at_the_dead_peer_timer() {
        let c = Config { policy: Policy::QnetdLike, ..no_restart_hold() };
        let mut h = split_with_holder(c);
        let mut t = 1000;
        let mut first_ack = None;
        while t < 60_000 && first_ack.is_none() {
            t += 500;
            h.at(t);
            let mut acts = h.echo(2);
            acts.extend(h.ev(Event::Tick));
            if votes(&acts).iter().any(|x| x.0 == 2 && x.1 == Vote::Ack) {
                first_ack = Some(t);
            }
        }
        let got = first_ack.unwrap_or(0);
        assert!((13_000..=14_500).contains(&got), "qnetd-like: re-grant right after 1.5 × hb: {got}");
    }

    #[test]
    fn moving_the_vote_waits_for_the_nack_to_be_confirmed() {
        let mut h = split_with_holder(no_restart_hold());
        h.at(2000);
        // heuristics now favour node 2
        let mut acts = h.membership(1, ring(1, 8), &[1], Some(Heuristics::Fail));
        acts.extend(h.membership(2, ring(2, 8), &[2], Some(Heuristics::Pass)));
        let v = votes(&acts);
        let nack = v.iter().find(|x| x.0 == 1 && x.1 == Vote::Nack).copied().expect("NACK to the old holder");
        assert!(!v.iter().any(|x| x.0 == 2 && x.1 == Vote::Ack), "no ACK before the holder confirmed: {v:?}");
        h.at(2100);
        let acts = h.msg(1, Message::VoteInfoReply { seq: Some(nack.2) });
        let v = votes(&acts);
        assert!(v.iter().any(|x| x.0 == 2 && x.1 == Vote::Ack), "ACK right after the confirmation: {v:?}");
    }

    #[test]
    fn node_death_fails_over_at_once() {
        let mut h = H::new(no_restart_hold());
        h.join(1, 1, ring(1, 4), &[1, 2]);
        h.join(2, 2, ring(1, 4), &[1, 2]);
        // node 1 dies silently; node 2 reports its new ring
        h.at(5000);
        let acts = h.membership(2, ring(2, 8), &[2], None);
        assert!(!votes(&acts).iter().any(|x| x.1 == Vote::Ack), "node 1 gets the grace to report its own new ring");
        h.at(7000);
        let acts = h.ev(Event::Tick);
        assert!(votes(&acts).iter().any(|x| x.0 == 2 && x.1 == Vote::Ack), "ring {{1,2}} dissolved: node 1's ACK counts nowhere: {acts:?}");
    }

    #[test]
    fn crashed_holder_seen_closing_costs_the_vote_expiry() {
        let c = no_restart_hold();
        let mut h = split_with_holder(c.clone());
        h.at(3000);
        h.ev(Event::ClientClosed { conn: 1 });
        let mut t = 3000;
        let mut first = None;
        while first.is_none() && t < 60_000 {
            t += 250;
            h.at(t);
            let mut acts = h.echo(2);
            acts.extend(h.ev(Event::Tick));
            if votes(&acts).iter().any(|x| x.0 == 2 && x.1 == Vote::Ack) {
                first = Some(t);
            }
        }
        // max(last_rx + 2hb·1.01, close + 1.25hb·1.01) + margin = max(1000+16160, 3000+10100) + 1000
        let expect = 1000 + 16_160 + 1000;
        let got = first.unwrap_or(0);
        assert!(got >= expect && got < expect + 600, "{got} vs {expect}");
    }

    #[test]
    fn restarted_arbiter_waits_a_full_lease_for_a_split_cluster() {
        let c = cfg();
        let hold = lease_len(&c, 24_000);
        let mut h = H::new(c);
        let mut acts = h.join(1, 1, ring(1, 8), &[1]);
        acts.extend(h.join(2, 2, ring(2, 8), &[2]));
        assert!(!votes(&acts).iter().any(|x| x.1 == Vote::Ack));
        let st = h.a.status(0);
        assert!(st.startup_hold_remaining_ms.is_some());
        let mut t = 0;
        let mut first = None;
        while first.is_none() && t < 200_000 {
            t += 1000;
            h.at(t);
            let mut acts = h.echo(1);
            acts.extend(h.echo(2));
            acts.extend(h.ev(Event::Tick));
            if votes(&acts).iter().any(|x| x.1 == Vote::Ack) {
                first = Some(t);
            }
        }
        assert!(first.unwrap_or(0) >= hold, "{first:?} vs hold {hold}");
    }

    /// The lab's ring-cut with corosync's default timers took 14 s instead of 7 s: the cut came
    /// 71 s after the arbiter started, inside its 79.8 s restart hold, and the hold was only
    /// waived for a partition holding every node. A cluster whose nodes all reported the whole
    /// ring to this instance cannot count an older instance's vote in a later partition.
    #[test]
    fn ring_cut_inside_the_restart_hold_of_a_cluster_seen_whole_acks_at_once() {
        let c = cfg();
        assert!(lease_len(&c, 24_000) > 70_000, "the default restart hold is long");
        let mut h = H::new(c);
        let mut acts = h.join(1, 1, ring(1, 4), &[1, 2]);
        acts.extend(h.join(2, 2, ring(1, 4), &[1, 2]));
        assert_eq!(votes(&acts).iter().filter(|x| x.1 == Vote::Ack).count(), 2, "whole cluster: ACK at once");
        assert!(h.a.status(500).clusters[0].restart_hold_nodes.is_empty(), "{:?}", h.a.status(500));
        h.at(5000);
        let acts = h.membership(2, ring(2, 8), &[2], None);
        assert!(!votes(&acts).iter().any(|x| x.1 == Vote::Ack), "node 1 has not reported yet: {acts:?}");
        h.at(5002);
        let acts = h.membership(1, ring(1, 8), &[1], None);
        let v = votes(&acts);
        assert!(v.iter().any(|x| x.0 == 2 && x.1 == Vote::Nack), "{v:?}");
        assert!(v.iter().any(|x| x.0 == 1 && x.1 == Vote::Ack), "winner's ACK in the same step, no timer: {acts:?}");
        let nack_pos = acts.iter().position(|a| matches!(a, Action::Send { conn: 2, msg: Message::VoteInfo { vote: Some(Vote::Nack), .. } }));
        let ack_pos = acts.iter().position(|a| matches!(a, Action::Send { conn: 1, msg: Message::VoteInfo { vote: Some(Vote::Ack), .. } }));
        assert!(nack_pos < ack_pos, "the loser's NACK goes out before the winner's ACK");
    }

    /// After a ring cut the loser's NACK is confirmed: the winner's ACK goes out on that reply,
    /// not on a grace or a timer (here the loser was the holder, so only rule 2 releases it).
    #[test]
    fn confirmed_nack_releases_the_winner_at_once_even_inside_the_restart_hold() {
        let mut h = H::new(cfg());
        h.join(1, 1, ring(1, 4), &[1, 2]);
        h.join(2, 2, ring(1, 4), &[1, 2]);
        h.at(1000);
        // both halves report; node 1's heuristics fail, so node 2 wins
        let mut acts = h.membership(1, ring(1, 8), &[1], Some(Heuristics::Fail));
        acts.extend(h.membership(2, ring(2, 8), &[2], Some(Heuristics::Pass)));
        let v = votes(&acts);
        assert!(v.iter().any(|x| x.0 == 2 && x.1 == Vote::Ack), "both old holds dissolved (rule 1): {v:?}");
        // now node 2 holds ring 2/8; heuristics turn: node 1 passes, node 2 fails
        h.at(2000);
        let mut acts = h.membership(2, ring(2, 8), &[2], Some(Heuristics::Fail));
        acts.extend(h.membership(1, ring(1, 8), &[1], Some(Heuristics::Pass)));
        let v = votes(&acts);
        let nack = v.iter().find(|x| x.0 == 2 && x.1 == Vote::Nack).copied().expect("NACK to the holder");
        assert!(!v.iter().any(|x| x.0 == 1 && x.1 == Vote::Ack), "{v:?}");
        h.at(2003);
        let acts = h.msg(2, Message::VoteInfoReply { seq: Some(nack.2) });
        assert!(votes(&acts).iter().any(|x| x.0 == 1 && x.1 == Vote::Ack), "ACK on the confirmation: {acts:?}");
    }

    /// Arbiter restarted while the cluster is split, both nodes reconnect: each gave up its old
    /// connection (ffsplit then polls NACK), and the loser confirms this instance's NACK, so the
    /// winner need not wait out the restart hold.
    #[test]
    fn restarted_arbiter_grants_a_split_once_the_loser_confirms_its_nack() {
        let mut h = H::new(cfg());
        h.at(1500);
        let mut acts = h.join(2, 2, ring(2, 8), &[2]);
        acts.extend(h.join(1, 1, ring(1, 8), &[1]));
        let v = votes(&acts);
        let nack = v.iter().find(|x| x.0 == 2 && x.1 == Vote::Nack).copied().expect("NACK to the loser");
        assert!(!v.iter().any(|x| x.1 == Vote::Ack), "{v:?}");
        assert_eq!(h.a.status(1500).clusters[0].restart_hold_nodes, vec![1, 2]);
        h.at(1600);
        let acts = h.msg(2, Message::VoteInfoReply { seq: Some(nack.2) });
        assert!(votes(&acts).iter().any(|x| x.0 == 1 && x.1 == Vote::Ack), "{acts:?}");
        // node 1 could still count an old vote for its own ring 1/8 (harmless unless another
        // partition were chosen); node 2 is cleared
        assert_eq!(h.a.status(1600).clusters[0].restart_hold_nodes, vec![1]);
    }

    /// A node that has not reported to this instance may still count an old vote: the restart
    /// hold runs in full for a partition without it.
    #[test]
    fn restarted_arbiter_waits_the_full_hold_for_a_node_it_has_not_heard() {
        let c = cfg();
        let hold = lease_len(&c, 24_000);
        let mut h = H::new(c);
        let acts = h.join(2, 2, ring(2, 8), &[2]);
        assert!(!votes(&acts).iter().any(|x| x.1 == Vote::Ack));
        assert_eq!(h.a.status(0).clusters[0].restart_hold_nodes, vec![1, 2]);
        let mut t = 0;
        let mut first = None;
        while first.is_none() && t < 200_000 {
            t += 1000;
            h.at(t);
            let mut acts = h.echo(2);
            acts.extend(h.ev(Event::Tick));
            if votes(&acts).iter().any(|x| x.0 == 2 && x.1 == Vote::Ack) {
                first = Some(t);
            }
        }
        let got = first.unwrap_or(0);
        assert!(got >= hold && got <= hold + 1000, "{got} vs hold {hold}");
    }

    /// A confirmed NACK for a ring the node no longer reports proves nothing (qdevice answers
    /// VOTE_INFO for an old ring without applying it); only the newer ring can release it.
    #[test]
    fn nack_confirmed_for_an_outdated_ring_does_not_lift_the_restart_hold() {
        let mut h = H::new(cfg());
        let mut acts = h.join(2, 2, ring(2, 8), &[2]);
        acts.extend(h.join(1, 1, ring(1, 8), &[1]));
        let nack = votes(&acts).into_iter().find(|x| x.0 == 2 && x.1 == Vote::Nack).expect("NACK to the loser");
        // the "new ring" here is older than node 2's first report: nothing ended
        let c2 = h.a.conns.get_mut(&2).expect("conn 2");
        c2.ring = Some(ring(2, 9));
        let acts = h.msg(2, Message::VoteInfoReply { seq: Some(nack.2) });
        assert!(!votes(&acts).iter().any(|x| x.1 == Vote::Ack), "{acts:?}");
        assert_eq!(h.a.status(0).clusters[0].restart_hold_nodes, vec![1, 2]);
    }

    /// lms with wait_for_all keeps a vote without the arbiter, so a node of an lms cluster that
    /// has not reported to a restarted arbiter blocks other partitions past the timed hold.
    #[test]
    fn lms_restart_hold_does_not_run_out_for_a_node_never_heard() {
        let c = cfg();
        let hold = lease_len(&c, 24_000);
        let mut h = H::new(c);
        let acts = h.join_lms(2, 2, ring(2, 8), &[2], &[1, 2], TieBreaker::Lowest, None);
        assert!(!votes(&acts).iter().any(|x| x.1 == Vote::Ack));
        let mut t = 0;
        while t < hold + 60_000 {
            t += 1000;
            h.at(t);
            let mut acts = h.echo(2);
            acts.extend(h.ev(Event::Tick));
            assert!(!votes(&acts).iter().any(|x| x.1 == Vote::Ack), "ACK at {t} while node 1 may keep an old lms vote");
        }
    }

    /// The restart hold no longer stretches an ordinary lease once it cannot matter: the
    /// silent holder's lease (27.3 s) decides, not the restart hold (79.8 s).
    #[test]
    fn restart_hold_does_not_stretch_a_lease_in_a_cluster_seen_whole() {
        let c = cfg();
        let lease = lease_len(&c, 8000);
        let mut h = split_with_holder(c);
        let mut first_ack = None;
        let mut t = 1000;
        while t < 100_000 && first_ack.is_none() {
            t += 500;
            h.at(t);
            let mut acts = h.echo(2);
            acts.extend(h.ev(Event::Tick));
            if votes(&acts).iter().any(|x| x.0 == 2 && x.1 == Vote::Ack) {
                first_ack = Some(t);
            }
        }
        let got = first_ack.unwrap_or(0);
        assert!(got >= 1000 + lease && got <= 1000 + lease + 1000, "{got} vs {}", 1000 + lease);
    }

    #[test]
    fn bad_clients_get_errors_and_no_vote() {
        let mut h = H::new(Config { tls: TlsSupported::Required, client_cert_required: true, ..Config::default() });
        h.ev(Event::ClientConnected { conn: 7, peer: "x".into() });
        // INIT before PREINIT and without TLS
        let acts = h.msg(7, Message::Init(Init { seq: Some(1), ..Init::default() }));
        assert!(acts.iter().any(|a| matches!(a, Action::Send { msg: Message::ServerError { error: Some(ReplyErrorCode::TlsRequired), .. }, .. })), "{acts:?}");
        let acts = h.msg(7, Message::StartTls { seq: Some(1) });
        assert!(acts.iter().any(|a| matches!(a, Action::Send { msg: Message::ServerError { error: Some(ReplyErrorCode::PreinitRequired), .. }, .. })), "{acts:?}");
        h.msg(7, Message::Preinit { seq: Some(2), cluster_name: Some("c1".into()) });
        // TLS required
        let acts = h.msg(7, Message::EchoRequest { seq: Some(3) });
        assert!(acts.iter().any(|a| matches!(a, Action::Send { msg: Message::ServerError { error: Some(ReplyErrorCode::TlsRequired), .. }, .. })));
        let acts = h.msg(7, Message::StartTls { seq: Some(4) });
        assert!(acts.contains(&Action::StartTls { conn: 7 }));
        h.ev(Event::TlsEstablished { conn: 7, peer_cn: Some("other".into()) });
        let acts = h.msg(7, Message::EchoRequest { seq: Some(5) });
        assert!(acts.iter().any(|a| matches!(a, Action::Close { conn: 7, .. })), "wrong certificate CN closes: {acts:?}");
        // garbage frame
        h.ev(Event::ClientConnected { conn: 8, peer: "y".into() });
        let acts = h.ev(Event::BadFrame { conn: 8, error: WireError::Truncated { need: 6, have: 2 } });
        assert!(acts.iter().any(|a| matches!(a, Action::Close { conn: 8, .. })));
        assert!(h.a.status(0).clusters.is_empty());
    }

    #[test]
    fn tie_breakers_highest_and_nodeid_and_many_clusters() {
        let mut h = H::new(no_restart_hold());
        // cluster "hi": tie_breaker highest; cluster "id": tie_breaker node 1 explicitly; same arbiter
        h.join_with(1, 1, ring(1, 4), &[1, 2], "hi", TieBreaker::Highest, 1);
        h.join_with(2, 2, ring(1, 4), &[1, 2], "hi", TieBreaker::Highest, 1);
        h.join_with(3, 1, ring(1, 4), &[1, 2], "id", TieBreaker::NodeId(1), 1);
        h.join_with(4, 2, ring(1, 4), &[1, 2], "id", TieBreaker::NodeId(1), 1);
        assert_eq!(h.a.status(0).clusters.len(), 2);
        h.at(1000);
        // the SetOption in join enabled keep_active_partition; both halves were in the active
        // partition, so the tie-breaker decides
        let mut acts = h.membership(1, ring(1, 8), &[1], None);
        acts.extend(h.membership(2, ring(2, 8), &[2], None));
        acts.extend(h.membership(3, ring(1, 8), &[1], None));
        acts.extend(h.membership(4, ring(2, 8), &[2], None));
        let v = votes(&acts);
        assert!(v.iter().any(|x| x.0 == 2 && x.1 == Vote::Ack), "highest: node 2 of 'hi': {v:?}");
        assert!(v.iter().any(|x| x.0 == 3 && x.1 == Vote::Ack), "nodeid 1 of 'id': {v:?}");
        assert!(!v.iter().any(|x| (x.0 == 1 || x.0 == 4) && x.1 == Vote::Ack), "{v:?}");
        // a client with another tie-breaker is refused
        let acts = h.join_with(5, 3, ring(1, 8), &[1, 2], "hi", TieBreaker::Lowest, 1);
        assert!(acts.iter().any(|a| matches!(a, Action::Send { msg: Message::InitReply(InitReply { error: Some(ReplyErrorCode::TieBreakerDiffersFromOtherNodes), .. }), .. })));
    }

    #[test]
    fn lms_gives_the_vote_to_the_larger_partition_and_never_expires_it() {
        let mut h = H::new(no_restart_hold());
        h.join_with(1, 1, ring(1, 4), &[1, 2], "l", TieBreaker::Lowest, 3);
        h.join_with(2, 2, ring(1, 4), &[1, 2], "l", TieBreaker::Lowest, 3);
        h.at(1000);
        let mut acts = h.membership(1, ring(1, 8), &[1], None);
        acts.extend(h.membership(2, ring(2, 8), &[2], None));
        let v = votes(&acts);
        assert!(v.iter().any(|x| x.0 == 1 && x.1 == Vote::Ack), "{v:?}");
        // ask-for-vote is an lms message
        let s = h.s();
        let acts = h.msg(1, Message::AskForVote { seq: s });
        assert!(acts.iter().any(|a| matches!(a, Action::Send { msg: Message::AskForVoteReply { vote: Some(Vote::Ack), .. }, .. })));
        // node 1 goes silent: an lms holder keeps its vote while disconnected, so never re-grant
        let mut t = 1000;
        while t < 200_000 {
            t += 1000;
            h.at(t);
            let mut acts = h.echo(2);
            acts.extend(h.ev(Event::Tick));
            assert!(!votes(&acts).iter().any(|x| x.0 == 2 && x.1 == Vote::Ack), "lms vote moved at {t}");
        }
    }

    // ---- lms (qnetd-algo-lms.c) ----------------------------------------------------------------

    impl H {
        /// An lms client of cluster "l" with config nodes `cfg_nodes`.
        #[allow(clippy::too_many_arguments)]
        fn join_lms(&mut self, conn: ConnId, node: u32, r: RingId, members: &[u32], cfg_nodes: &[u32], tb: TieBreaker, h: Option<Heuristics>) -> Vec<Action> {
            let mut out = self.ev(Event::ClientConnected { conn, peer: format!("n{node}") });
            let s = self.s();
            out.extend(self.msg(conn, Message::Preinit { seq: s, cluster_name: Some("l".into()) }));
            let s = self.s();
            out.extend(self.msg(
                conn,
                Message::Init(Init {
                    seq: s,
                    node_id: Some(node),
                    ring_id: Some(r),
                    heartbeat_interval: Some(8000),
                    tie_breaker: Some(tb),
                    decision_algorithm: Some(DecisionAlgorithm::Lms.as_u16()),
                    ..Init::default()
                }),
            ));
            let s = self.s();
            out.extend(self.msg(conn, nl(s, NodeListType::InitialConfig, None, cfg_nodes, None)));
            out.extend(self.membership(conn, r, members, h));
            out
        }
        /// Answer every VOTE_INFO in `acts` (as qdevice does) and return all votes seen.
        fn confirm(&mut self, acts: Vec<Action>) -> Vec<(ConnId, Vote, u32)> {
            let mut seen = votes(&acts);
            let mut todo = seen.clone();
            while let Some((conn, _, seq)) = todo.pop() {
                let more = votes(&self.msg(conn, Message::VoteInfoReply { seq: Some(seq) }));
                todo.extend(more.iter().copied());
                seen.extend(more);
            }
            seen
        }
    }

    fn acked(v: &[(ConnId, Vote, u32)]) -> Vec<ConnId> {
        let mut a: Vec<ConnId> = v.iter().filter(|x| x.1 == Vote::Ack).map(|x| x.0).collect();
        a.sort_unstable();
        a.dedup();
        a
    }

    /// Three lms nodes all in ring 1/4, then split {1} | {2,3}.
    fn lms3_split(h1: Option<Heuristics>, h23: Option<Heuristics>) -> Vec<(ConnId, Vote, u32)> {
        let mut h = H::new(no_restart_hold());
        let all = [1, 2, 3];
        let mut acts = Vec::new();
        for n in all {
            acts.extend(h.join_lms(n as ConnId, n, ring(1, 4), &all, &all, TieBreaker::Lowest, None));
        }
        assert_eq!(acked(&h.confirm(acts)), vec![1, 2, 3], "one partition: everybody ACK");
        h.at(1000);
        let mut acts = h.membership(1, ring(1, 8), &[1], h1);
        acts.extend(h.membership(2, ring(2, 8), &[2, 3], h23));
        acts.extend(h.membership(3, ring(2, 8), &[2, 3], h23));
        h.confirm(acts)
    }

    #[test]
    fn lms_the_partition_with_most_active_nodes_wins() {
        let v = lms3_split(None, None);
        assert_eq!(acked(&v), vec![2, 3], "{v:?}");
        assert!(v.iter().any(|x| x.0 == 1 && x.1 == Vote::Nack), "{v:?}");
    }

    #[test]
    fn lms_heuristics_score_comes_before_size() {
        // {1} passes (score 2), {2,3} one pass one fail... both fail here: score 0 < 2
        let v = lms3_split(Some(Heuristics::Pass), Some(Heuristics::Fail));
        assert_eq!(acked(&v), vec![1], "{v:?}");
        // equal scores (2 = 1+1): the larger partition
        let v = lms3_split(Some(Heuristics::Pass), None);
        assert_eq!(acked(&v), vec![2, 3], "{v:?}");
    }

    #[test]
    fn lms_ties_go_to_the_tie_breaker_partition() {
        for (tb, winner) in [(TieBreaker::Lowest, 1), (TieBreaker::Highest, 2), (TieBreaker::NodeId(2), 2), (TieBreaker::NodeId(1), 1)] {
            let mut h = H::new(no_restart_hold());
            let mut acts = h.join_lms(1, 1, ring(1, 4), &[1, 2], &[1, 2], tb, None);
            acts.extend(h.join_lms(2, 2, ring(1, 4), &[1, 2], &[1, 2], tb, None));
            assert_eq!(acked(&h.confirm(acts)), vec![1, 2]);
            h.at(1000);
            let mut acts = h.membership(1, ring(1, 8), &[1], None);
            acts.extend(h.membership(2, ring(2, 8), &[2], None));
            let v = h.confirm(acts);
            assert_eq!(acked(&v), vec![winner], "{tb:?}: {v:?}");
        }
    }

    #[test]
    fn lms_the_last_man_standing_gets_the_vote_alone() {
        let mut h = H::new(no_restart_hold());
        let all = [1, 2, 3];
        let mut acts = Vec::new();
        for n in all {
            acts.extend(h_join(&mut h, n as ConnId, n, ring(1, 4), &all));
        }
        assert_eq!(acked(&h.confirm(acts)), vec![1, 2, 3]);
        // nodes 1 and 2 die; node 3 is alone in a new ring
        h.at(4000);
        h.ev(Event::ClientClosed { conn: 1 });
        h.ev(Event::ClientClosed { conn: 2 });
        let acts = h.membership(3, ring(3, 20), &[3], None);
        let v = h.confirm(acts);
        assert_eq!(acked(&v), vec![3], "one partition gets the vote whatever its size: {v:?}");
        // a fresh arbiter told that no node runs wait_for_all does the same at once
        let mut h = H::new(Config { lms_wait_for_all: false, ..no_restart_hold() });
        h.at(2000);
        let acts = h_join(&mut h, 3, 3, ring(3, 20), &[3]);
        assert_eq!(acked(&h.confirm(acts)), vec![3]);
    }

    fn h_join(h: &mut H, conn: ConnId, node: u32, r: RingId, members: &[u32]) -> Vec<Action> {
        h.join_lms(conn, node, r, members, &[1, 2, 3], TieBreaker::Lowest, None)
    }

    #[test]
    fn lms_newcomers_do_not_take_the_vote_from_the_active_partition() {
        let mut h = H::new(no_restart_hold());
        let all = [1, 2, 3];
        let mut acts = Vec::new();
        for n in all {
            acts.extend(h_join(&mut h, n as ConnId, n, ring(1, 4), &all));
        }
        assert_eq!(acked(&h.confirm(acts)), vec![1, 2, 3]);
        // nodes 2 and 3 lose the others and their qdevices restart; node 1 is left alone
        h.at(3000);
        h.ev(Event::ClientClosed { conn: 2 });
        h.ev(Event::ClientClosed { conn: 3 });
        let acts = h.membership(1, ring(1, 8), &[1], None);
        assert_eq!(acked(&h.confirm(acts)), vec![1], "last man standing");
        // 2 and 3 come back on the other side of the cut: a larger partition, but new clients
        h.at(5000);
        let mut acts = h_join(&mut h, 12, 2, ring(2, 12), &[2, 3]);
        acts.extend(h_join(&mut h, 13, 3, ring(2, 12), &[2, 3]));
        let v = h.confirm(acts);
        assert!(acked(&v).is_empty(), "the active partition keeps the vote: {v:?}");
        assert!(v.iter().any(|x| x.0 == 12 && x.1 == Vote::Nack) && v.iter().any(|x| x.0 == 13 && x.1 == Vote::Nack), "{v:?}");
        // and keeps it as time goes by and messages come in
        for t in 1..20 {
            h.at(5000 + t * 1000);
            let mut acts = h.echo(1);
            acts.extend(h.echo(12));
            acts.extend(h.ev(Event::Tick));
            assert!(acked(&votes(&acts)).is_empty(), "{acts:?}");
        }
        let st = h.a.status(30_000);
        let n1 = st.clusters[0].nodes.iter().find(|n| n.node_id == 1).unwrap();
        assert!(n1.holds_lease, "{st:?}");
    }

    /// A restarted arbiter cannot know which lms node kept an ACK of its previous instance (lms
    /// keeps it while disconnected, with wait_for_all, without a time bound): a node nobody
    /// reports blocks the vote for good; once it reports, it is NACKed like a holder.
    #[test]
    fn lms_after_a_restart_a_silent_node_may_still_hold_the_vote() {
        for (tb, winner, loser) in [(TieBreaker::Highest, 2, 1), (TieBreaker::Lowest, 1, 2)] {
            let mut h = H::new(no_restart_hold());
            h.at(2000);
            let acts = h.join_lms(2, 2, ring(2, 8), &[2], &[1, 2], tb, None);
            assert!(acked(&h.confirm(acts)).is_empty());
            for t in 1..200 {
                h.at(2000 + t * 1000);
                let mut acts = h.echo(2);
                acts.extend(h.ev(Event::Tick));
                assert!(acked(&votes(&acts)).is_empty(), "node 1 may still vote for its own ring: {acts:?}");
            }
            assert!(h.a.status(h.now).clusters[0].waiting_for_lease_ms.is_some());
            h.at(201_500);
            let acts = h.join_lms(1, 1, ring(1, 8), &[1], &[1, 2], tb, None);
            let v = h.confirm(acts);
            assert_eq!(acked(&v), vec![winner as ConnId], "{tb:?}: {v:?}");
            assert!(v.iter().any(|x| x.0 == loser && x.1 == Vote::Nack), "{tb:?}: the other side is NACKed first: {v:?}");
            // the NACK came before the ACK
            let nack_pos = v.iter().position(|x| x.0 == loser && x.1 == Vote::Nack);
            let ack_pos = v.iter().position(|x| x.0 == winner as ConnId && x.1 == Vote::Ack);
            assert!(nack_pos < ack_pos, "{v:?}");
        }
    }

    /// Nodes that report in one ring clear the doubt at once (the usual arbiter restart).
    #[test]
    fn lms_after_a_restart_a_whole_cluster_gets_the_vote_at_once() {
        let mut h = H::new(cfg());
        let mut acts = h.join_lms(1, 1, ring(1, 8), &[1, 2], &[1, 2], TieBreaker::Lowest, None);
        acts.extend(h.join_lms(2, 2, ring(1, 8), &[1, 2], &[1, 2], TieBreaker::Lowest, None));
        assert_eq!(acked(&h.confirm(acts)), vec![1, 2]);
    }

    #[test]
    fn lms_known_nodes_in_a_larger_partition_do_take_the_vote() {
        // same as above, but 2 and 3 had decisions before (they are not newcomers)
        let v = lms3_split(None, None);
        assert_eq!(acked(&v), vec![2, 3]);
    }

    #[test]
    fn lms_hold_expires_by_lease_only_when_nodes_run_without_wait_for_all() {
        let c = Config { lms_wait_for_all: false, ..no_restart_hold() };
        let lease = lease_len(&c, 8000);
        let mut h = H::new(c);
        let mut acts = h.join_lms(1, 1, ring(1, 4), &[1, 2], &[1, 2], TieBreaker::Lowest, None);
        acts.extend(h.join_lms(2, 2, ring(1, 4), &[1, 2], &[1, 2], TieBreaker::Lowest, None));
        h.confirm(acts);
        h.at(1000);
        let mut acts = h.membership(1, ring(1, 8), &[1], None);
        acts.extend(h.membership(2, ring(2, 8), &[2], None));
        assert_eq!(acked(&h.confirm(acts)), vec![1]);
        // node 1 goes silent: without wait_for_all its qdevice drops the vote at 2 × hb
        let mut t = 1000;
        let mut first = None;
        while first.is_none() && t < 100_000 {
            t += 500;
            h.at(t);
            let mut acts = h.echo(2);
            acts.extend(h.ev(Event::Tick));
            if acked(&votes(&acts)) == vec![2] {
                first = Some(t);
            }
        }
        let got = first.expect("the vote moves after the lease");
        assert!(got >= 1000 + lease && got <= 1000 + lease + 1000, "{got} vs {}", 1000 + lease);
    }

    #[test]
    fn status_lists_nodes_and_leases() {
        let mut h = split_with_holder(no_restart_hold());
        h.at(4000);
        h.ev(Event::ClientClosed { conn: 1 });
        let st = h.a.status(5000);
        let c = &st.clusters[0];
        assert_eq!(c.name, "c1");
        let gone = c.nodes.iter().find(|n| n.node_id == 1 && n.conn.is_none()).expect("disconnected holder listed");
        assert!(gone.holds_lease && gone.lease_remaining_ms > 0);
        assert!(c.waiting_for_lease_ms.is_some());
    }
}
