//! corosync-qnetd's lms ("last man standing") decision, as `qnetd-algo-lms.c` makes it, for
//! the arbiter core ([`super::Arbiter`]); the ffsplit rule and the lease live in `core.rs`.
use std::collections::BTreeMap;

use super::*;

impl Arbiter {
    /// corosync-qnetd's lms (`qnetd-algo-lms.c`), decided for the whole cluster at once:
    /// 1. one partition (among the connected clients) gets the vote whatever its size — the last
    ///    man standing; votequorum decides whether that makes it quorate;
    /// 2. partitions made only of newcomers (clients that never got an lms decision) do not take
    ///    the vote from a partition one of whose connected clients holds an ACK;
    /// 3. the highest score wins (per connected client: 1, +1 heuristics pass, −1 fail);
    /// 4. among the partitions tied on score, the one with most connected clients;
    /// 5. then the tie-breaker: the partition of the lowest / highest connected node id among
    ///    them, or the one whose membership holds the configured node id; none: no vote.
    ///
    /// Deviations from qnetd, on purpose: step 4 compares only the partitions tied in step 3
    /// (qnetd compares all, so a larger partition whose heuristics fail could win); step 5's
    /// `nodeid` mode looks for the configured node (qnetd compares the asking client's own id,
    /// so only that node itself ever gets the vote).
    pub(super) fn choose_lms(&self, _name: &str, parts: &BTreeMap<RingId, Vec<&Conn>>, tb: TieBreaker) -> Option<RingId> {
        let excluded = Self::lms_newcomer_parts(parts);
        let cands: Vec<(&RingId, &Vec<&Conn>)> = parts.iter().filter(|(r, _)| !excluded.contains(r)).collect();
        if cands.len() <= 1 {
            return cands.first().map(|c| *c.0);
        }
        let score = |cs: &[&Conn]| -> i64 {
            cs.iter()
                .map(|c| match c.heuristics {
                    Some(Heuristics::Pass) => 2,
                    Some(Heuristics::Fail) => 0,
                    _ => 1,
                })
                .sum()
        };
        let best = cands.iter().map(|c| score(c.1)).max()?;
        let cands: Vec<_> = cands.into_iter().filter(|c| score(c.1) == best).collect();
        if cands.len() == 1 {
            return Some(*cands[0].0);
        }
        let most = cands.iter().map(|c| c.1.len()).max()?;
        let cands: Vec<_> = cands.into_iter().filter(|c| c.1.len() == most).collect();
        if cands.len() == 1 {
            return Some(*cands[0].0);
        }
        let ids = |cs: &[&Conn]| cs.iter().map(|c| c.node_id).collect::<Vec<_>>();
        match tb {
            TieBreaker::Lowest => cands.iter().min_by_key(|c| ids(c.1).into_iter().min()).map(|c| *c.0),
            TieBreaker::Highest => cands.iter().max_by_key(|c| ids(c.1).into_iter().max()).map(|c| *c.0),
            TieBreaker::NodeId(n) => cands.iter().find(|c| c.1.iter().any(|x| x.node_id == n || x.members.contains(&n))).map(|c| *c.0),
        }
    }

    /// lms: rings of the partitions that are newcomers only while another partition has a
    /// connected client holding an ACK (qnetd: "we are a new partition and another active
    /// partition exists. NACK").
    pub(super) fn lms_newcomer_parts(parts: &BTreeMap<RingId, Vec<&Conn>>) -> Vec<RingId> {
        let active: Vec<RingId> =
            parts.iter().filter(|(_, cs)| cs.iter().any(|c| c.lms_result == Some(Vote::Ack))).map(|(r, _)| *r).collect();
        parts
            .iter()
            .filter(|(r, cs)| cs.iter().all(|c| c.lms_result.is_none()) && active.iter().any(|a| a != *r))
            .map(|(r, _)| *r)
            .collect()
    }

    /// lms: whether a NACK to a client of ring `r` is a newcomer NACK (not remembered, as qnetd).
    pub(super) fn lms_newcomer_nack(&self, ready: &[ConnId], r: Option<RingId>) -> bool {
        let Some(r) = r else { return false };
        let mut parts: BTreeMap<RingId, Vec<&Conn>> = BTreeMap::new();
        for c in ready.iter().filter_map(|id| self.conns.get(id)) {
            if let Some(x) = c.ring {
                parts.entry(x).or_default().push(c);
            }
        }
        Self::lms_newcomer_parts(&parts).contains(&r)
    }
}
