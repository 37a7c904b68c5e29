//! The two-node world twonode adds to the simulator: an arbiter that gives its vote to one side
//! of a split only, BMCs that cut power (or do not answer), DRBD resources whose disk state
//! decides where a service may be recovered, and a network split between the two nodes.
use std::collections::{BTreeMap, BTreeSet};

/// `twonode.json` in a regression directory.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwoNodeConf {
    /// A twonode arbiter (QDevice-style vote) is configured.
    #[serde(default)]
    pub arbiter: bool,
    /// The arbiter is down when the run starts.
    #[serde(default)]
    pub arbiter_down: bool,
    /// node -> "ok" | "dead" | "ignore-on" | "none" (no fence device configured) (default ok)
    #[serde(default)]
    pub bmc: BTreeMap<String, String>,
    /// DRBD resource -> node -> disk state ("UpToDate", "Outdated", "Inconsistent", "Diskless")
    #[serde(default)]
    pub drbd: BTreeMap<String, BTreeMap<String, String>>,
    /// Ask for watchdog self-fencing (ha-manager's default): refused under two_node.
    #[serde(default)]
    pub self_fencing: bool,
}

/// A real fence path for the simulator (the lab: `twonode fence` against the lab's BMCs with the
/// arbiter gate in front). `Ok(summary)` only once the node's power-off is confirmed.
pub trait Fencer {
    fn fence(&mut self, by: &str, node: &str) -> Result<String, String>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bmc {
    Ok,
    Dead,
    IgnoreOn,
    /// No hardware fence device is configured for the node.
    None,
}

#[derive(Debug, Clone)]
pub struct TwoNode {
    pub arbiter: bool,
    pub arbiter_up: bool,
    /// The lowest node name of the partition holding the arbiter's vote.
    pub vote: Option<String>,
    pub split: bool,
    pub bmc: BTreeMap<String, Bmc>,
    /// resource -> node -> (disk, primary)
    pub drbd: BTreeMap<String, BTreeMap<String, (String, bool)>>,
    /// node -> the last reason its fence is blocked (logged once per change)
    pub blocked: BTreeMap<String, String>,
    /// sid -> the last reason its recovery waits
    pub waiting: BTreeMap<String, String>,
}

impl TwoNode {
    pub fn new(c: &TwoNodeConf, nodes: &[String]) -> TwoNode {
        let bmc = nodes
            .iter()
            .map(|n| {
                let b = match c.bmc.get(n).map(String::as_str) {
                    Some("dead") => Bmc::Dead,
                    Some("ignore-on") => Bmc::IgnoreOn,
                    Some("none") => Bmc::None,
                    _ => Bmc::Ok,
                };
                (n.clone(), b)
            })
            .collect();
        let drbd = c.drbd.iter().map(|(r, m)| (r.clone(), m.iter().map(|(n, d)| (n.clone(), (d.clone(), false))).collect())).collect();
        TwoNode { arbiter: c.arbiter, arbiter_up: c.arbiter && !c.arbiter_down, vote: None, split: false, bmc, drbd, blocked: BTreeMap::new(), waiting: BTreeMap::new() }
    }

    /// The partitions of the online nodes (each a sorted set).
    pub fn partitions(&self, online: &BTreeSet<String>) -> Vec<BTreeSet<String>> {
        if self.split {
            online.iter().map(|n| BTreeSet::from([n.clone()])).collect()
        } else if online.is_empty() {
            Vec::new()
        } else {
            vec![online.clone()]
        }
    }

    /// Recompute who holds the arbiter's vote: the current holder's partition if it can still
    /// reach the arbiter, else the largest partition, the one with the lowest node on a tie.
    pub fn update_vote(&mut self, online: &BTreeSet<String>) {
        if !self.arbiter || !self.arbiter_up {
            self.vote = None;
            return;
        }
        let parts = self.partitions(online);
        if let Some(v) = &self.vote {
            if let Some(p) = parts.iter().find(|p| p.contains(v)) {
                self.vote = p.iter().next().cloned();
                return;
            }
        }
        let mut best: Option<&BTreeSet<String>> = None;
        for p in &parts {
            best = match best {
                None => Some(p),
                Some(b) if p.len() > b.len() => Some(p),
                Some(b) => Some(b),
            };
        }
        self.vote = best.and_then(|p| p.iter().next().cloned());
    }

    /// Whether `node`'s partition is quorate. With an arbiter: nodes + arbiter vote must be a
    /// majority of (nodes + 1). Without: corosync's two_node, each side alone is quorate.
    pub fn quorate(&self, node: &str, online: &BTreeSet<String>, total: usize) -> bool {
        let parts = self.partitions(online);
        let Some(p) = parts.iter().find(|p| p.contains(node)) else { return false };
        if !self.arbiter {
            return true;
        }
        let holds = self.vote.as_ref().is_some_and(|v| p.contains(v));
        let votes = p.len() + usize::from(holds);
        votes * 2 > total + 1
    }

    pub fn holds_vote(&self, node: &str, online: &BTreeSet<String>) -> bool {
        let parts = self.partitions(online);
        parts.iter().any(|p| p.contains(node) && self.vote.as_ref().is_some_and(|v| p.contains(v)))
    }
}
