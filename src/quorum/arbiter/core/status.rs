//! The arbiter's state as `twonode arbiter status` shows it (like `corosync-qnetd-tool -lv`):
//! a snapshot taken from the core, plain data.
use super::*;

impl Arbiter {

    /// A snapshot of clusters, nodes, votes and lease ages.
    pub fn status(&self, now: Millis) -> Status {
        let mut st = Status {
            now_ms: now,
            startup_hold_remaining_ms: self.startup_hold_until.checked_sub(now).filter(|d| *d > 0),
            connections: self.conns.len(),
            clusters: Vec::new(),
        };
        for (name, cl) in &self.clusters {
            let mut cs = ClusterStatus { name: name.clone(), ..ClusterStatus::default() };
            if let Some(c) = cl.conns.iter().filter_map(|id| self.conns.get(id)).next() {
                cs.algorithm = format!("{:?}", c.algorithm).to_lowercase();
                cs.tie_breaker = match c.tie_breaker {
                    TieBreaker::Lowest => "lowest".into(),
                    TieBreaker::Highest => "highest".into(),
                    TieBreaker::NodeId(n) => n.to_string(),
                };
            }
            cs.waiting_for_lease_ms = cl.waiting_since.filter(|_| self.pending.contains(name)).map(|t| now.saturating_sub(t));
            let config_nodes = cl.conns.iter().filter_map(|id| self.conns.get(id)).map(|c| c.config_nodes.clone()).find(|v| !v.is_empty());
            if let Some(cfg) = config_nodes {
                // nodes that could still block some partition: a first report of the whole
                // cluster's ring never conflicts with a later partition (that ring has then ended)
                cs.restart_hold_nodes = self
                    .restart_blockers(cl, &cfg, None, now)
                    .into_iter()
                    .filter(|m| cl.first_report.get(m).is_none_or(|(_, members)| !cfg.iter().all(|n| members.contains(n))))
                    .collect();
            } else if self.startup_hold_until > now {
                cs.restart_hold_nodes = cl.node_rings.keys().copied().collect();
            }
            for id in cl.conns.iter() {
                let Some(c) = self.conns.get(id) else { continue };
                let hold = cl.holds.iter().filter(|h| h.conn == *id).max_by_key(|h| h.granted_at);
                cs.nodes.push(NodeStatus {
                    node_id: c.node_id,
                    conn: Some(*id),
                    peer: c.peer.clone(),
                    tls: c.tls,
                    ring_id: c.ring,
                    heartbeat_ms: c.hb,
                    vote: c.last_vote.map(|v| format!("{v:?}").to_uppercase()),
                    holds_lease: hold.is_some(),
                    last_seen_ms_ago: now.saturating_sub(c.last_rx),
                    lease_remaining_ms: 0,
                    heuristics: c.heuristics.map(|h| format!("{h:?}").to_lowercase()),
                    connected_for_ms: now.saturating_sub(c.connected_at),
                });
            }
            for h in cl.holds.iter().filter(|h| !h.conn_alive) {
                cs.nodes.push(NodeStatus {
                    node_id: h.node_id,
                    conn: None,
                    peer: "(disconnected)".into(),
                    ring_id: Some(h.ring),
                    heartbeat_ms: h.hb_max,
                    vote: Some("ACK".into()),
                    holds_lease: true,
                    last_seen_ms_ago: now.saturating_sub(h.last_rx),
                    lease_remaining_ms: self.lease_end(h).map_or(Millis::MAX, |e| e.saturating_sub(now)),
                    ..NodeStatus::default()
                });
            }
            cs.nodes.sort_by_key(|n| (n.node_id, n.conn.is_none()));
            st.clusters.push(cs);
        }
        st
    }
}

/// A snapshot for `twonode arbiter status` (like `corosync-qnetd-tool -lv`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Status {
    pub now_ms: Millis,
    /// Time left before an incomplete partition can get a vote after a restart.
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
    /// How long the chosen partition has been waiting for an old lease to run out.
    pub waiting_for_lease_ms: Option<Millis>,
    /// Nodes that may still count a vote granted by a previous arbiter instance (restart hold);
    /// empty when the restart hold can no longer delay any grant in this cluster.
    pub restart_hold_nodes: Vec<u32>,
    pub nodes: Vec<NodeStatus>,
}

/// One node (connection, or a disconnected node whose lease still runs) in [`ClusterStatus`].
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct NodeStatus {
    pub node_id: u32,
    /// `None` for a disconnected node whose vote lease still runs.
    pub conn: Option<ConnId>,
    pub peer: String,
    pub tls: bool,
    pub ring_id: Option<RingId>,
    pub heartbeat_ms: u32,
    /// Last vote sent (ACK/NACK/ASKLATER...), `None` before any.
    pub vote: Option<String>,
    /// Whether the arbiter counts this node as possibly holding an ACK.
    pub holds_lease: bool,
    pub last_seen_ms_ago: Millis,
    /// For a disconnected holder: ms until its lease has certainly expired (u64::MAX: never, lms).
    pub lease_remaining_ms: Millis,
    pub heuristics: Option<String>,
    pub connected_for_ms: Millis,
}
