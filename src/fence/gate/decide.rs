//! Who asks for what ([`plan`]) and what the answer means ([`decide`]): pure; only an ACK opens
//! the gate.
use crate::quorum::arbiter::client::{ClientConfig, ClientError, VoteOutcome, VoteRequest, VoteResult};
use crate::quorum::arbiter::wire::{self, TieBreaker};

use super::settings::{ClusterIdentity, GateSettings};

/// Who asks for what: the outcome of [`plan`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GatePlan {
    pub local: String,
    pub victim: String,
    pub client: ClientConfig,
    pub request: VoteRequest,
}

/// Build the request. Pure; `ring_seq` must never decrease for this node (unix ms).
pub fn plan(s: &GateSettings, id: &ClusterIdentity, local: &str, victim: &str, ring_seq: u64) -> Result<GatePlan, String> {
    let local_id = id.id_of(local).ok_or_else(|| {
        format!(
            "this node {local:?} is not a clusternode of {} (nodes: {}); set local_node= or TWONODE_LOCAL_NODE",
            id.cluster,
            id.nodes.iter().map(|n| n.0.as_str()).collect::<Vec<_>>().join(", ")
        )
    })?;
    let victim_id = id.id_of(victim).ok_or_else(|| format!("the node to fence {victim:?} is not a clusternode of {}", id.cluster))?;
    if victim_id == local_id {
        return Err(format!("{local} would fence itself: the gate refuses (nodename= names this node)"));
    }
    let local = id.name_of(local_id).unwrap_or(local).to_string();
    let victim = id.name_of(victim_id).unwrap_or(victim).to_string();
    let mut c = ClientConfig::new(s.host.clone(), s.port, id.cluster.clone(), local_id);
    c.tls = s.tls.clone();
    c.heartbeat_ms = s.heartbeat_ms;
    c.timeout = s.timeout;
    c.tie_breaker = TieBreaker::Lowest;
    c.keep_active_partition = true;
    let request = VoteRequest {
        config_nodes: id.nodes.iter().map(|n| n.1).collect(),
        members: vec![local_id],
        ring: wire::RingId { node_id: local_id, seq: ring_seq.max(1) },
        config_version: id.config_version,
    };
    Ok(GatePlan { local, victim, client: c, request })
}

/// Unix time in ms: the gate's ring seq (never decreasing for this node).
pub fn ring_seq_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(1)
}

/// The gate's verdict.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GateDecision {
    /// Fencing may go on (ACK). The only case with exit 0.
    pub allowed: bool,
    pub exit_code: i32,
    /// `ack`, `nack`, `no_decision`, or the error kind (`unreachable`, `tls`, `refused`, ...).
    pub outcome: String,
    pub message: String,
    /// What the admin should expect / do.
    pub expect: String,
    pub elapsed_ms: Option<f64>,
}

/// Pure: the arbiter's answer (or why there was none) → verdict and words.
pub fn decide(p: &GatePlan, r: &Result<VoteResult, ClientError>) -> GateDecision {
    let addr = p.client.address();
    let (l, v) = (&p.local, &p.victim);
    let deny = |outcome: &str, message: String, expect: String, ms: Option<f64>| GateDecision {
        allowed: false,
        exit_code: 1,
        outcome: outcome.into(),
        message,
        expect,
        elapsed_ms: ms,
    };
    match r {
        Ok(res) => match res.outcome {
            VoteOutcome::Ack => GateDecision {
                allowed: true,
                exit_code: 0,
                outcome: "ack".into(),
                message: format!("arbiter {addr} gave {l} the vote: {l} may fence {v}"),
                expect: format!(
                    "the vote stays with {l} for at least {:.0} s after this gate's last message, while its fence device runs",
                    2.0 * p.client.heartbeat_ms as f64 / 1000.0
                ),
                elapsed_ms: Some(res.elapsed_ms),
            },
            VoteOutcome::Nack => deny(
                "nack",
                format!("arbiter {addr} refused the vote (NACK): the other partition holds it; {l} must not fence {v}"),
                format!("expect {l} to be fenced by {v}; nothing to fix if the link between the nodes is down"),
                Some(res.elapsed_ms),
            ),
            VoteOutcome::NoDecision => deny(
                "no_decision",
                format!(
                    "arbiter {addr} gave no vote within {:.0} s (most likely {v} holds it and is fencing {l}; or the arbiter \
                     restarted less than about 80 s ago and waits out old leases): {l} does not fence {v}",
                    p.client.timeout.as_secs_f64()
                ),
                format!("expect {l} to be fenced by {v}; if {v} is really down, the arbiter grants the vote once {v}'s lease ends and fenced retries"),
                Some(res.elapsed_ms),
            ),
        },
        Err(e) => {
            let kind = match e {
                ClientError::Config(_) => "config",
                ClientError::Unreachable(_) => "unreachable",
                ClientError::Tls(_) => "tls",
                ClientError::Refused(_) => "refused",
                ClientError::Timeout(_) => "timeout",
                ClientError::Protocol(_) => "protocol",
            };
            deny(
                kind,
                format!("cannot get the vote from arbiter {addr}: {e}; no vote, no fencing: {l} does not fence {v}"),
                format!(
                    "nobody can fence while the arbiter cannot be asked: fix the arbiter ({}); fenced retries the method",
                    e.advice()
                ),
                None,
            )
        }
    }
}


/// A decision that could not even be asked (bad settings): exit 1 with the reason.
pub fn config_failure(message: String) -> GateDecision {
    GateDecision {
        allowed: false,
        exit_code: 1,
        outcome: "config".into(),
        message: format!("arbiter gate not usable: {message}; no vote, no fencing"),
        expect: "fix the gate device in cluster.conf (twonode conf gate-fencing) or the environment; fenced retries".into(),
        elapsed_ms: None,
    }
}

