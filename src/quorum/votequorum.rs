//! The votequorum arithmetic (corosync `exec/votequorum.c`, cman is the same) and the
//! configuration rules that make corosync refuse to start, checked before a daemon dies of them.
//!
//! Inputs: a [`QuorumConfig`] filled from cluster.conf ([`QuorumConfig::from_cluster_conf`]) or
//! corosync.conf ([`QuorumConfig::from_corosync_conf`], a minimal parser of the `totem{}`,
//! `quorum{}` and `nodelist{}` sections), plus optional live membership ([`Live`], parsed from
//! `corosync-quorumtool -s` or `cman_tool status`). Output: a [`QuorumView`] printed like
//! `corosync-quorumtool -s`, and [`Diagnostic`]s.
use std::fmt::Write as _;

/// One configured node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeConf {
    pub name: Option<String>,
    pub nodeid: Option<u32>,
    pub votes: u32,
}

/// The quorum device (`quorum.device` of corosync, `<quorumd>` of cman).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct DeviceConf {
    /// "net" (qdevice/qnetd) or "qdisk" (cman's qdiskd).
    pub model: String,
    /// `votes` if configured.
    pub votes: Option<u32>,
    pub algorithm: Option<String>,
    pub tie_breaker: Option<String>,
    pub host: Option<String>,
}

/// What votequorum reads from the configuration.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct QuorumConfig {
    /// Where it came from (for messages).
    pub source: String,
    pub cluster_name: Option<String>,
    pub nodes: Vec<NodeConf>,
    pub expected_votes: Option<u32>,
    pub two_node: bool,
    /// Explicit wait_for_all; `None` = follows two_node.
    pub wait_for_all: Option<bool>,
    pub last_man_standing: bool,
    pub auto_tie_breaker: bool,
    pub allow_downscale: bool,
    pub device: Option<DeviceConf>,
    /// Self-fencing by watchdog configured (fence_watchdog / diskless sbd).
    pub watchdog_fencing: bool,
    /// Line numbers of the settings (key → line), for messages.
    #[serde(skip)]
    pub lines: Vec<(String, usize)>,
}

/// Live membership as a node sees it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Live {
    /// Node ids that are members, with their votes.
    pub members: Vec<(u32, u32)>,
    /// Quorum device: votes it adds when it casts its vote.
    pub qdevice_votes: u32,
    /// Whether the device currently casts its vote (`A,V`).
    pub qdevice_cast: bool,
    /// The node's own report of being quorate, if the tool printed it.
    pub reported_quorate: Option<bool>,
    /// Highest expected reported by the node (includes other nodes' expectations).
    pub reported_highest_expected: Option<u32>,
    /// "Activity blocked" / wait_for_all not yet satisfied.
    pub reported_blocked: Option<bool>,
    pub node_names: Vec<(u32, String)>,
}

pub use crate::diag::{Diagnostic, Severity};

/// `quorum status --json` has always shown a configuration finding as
/// `{severity, code, message, fix, line}` (line null when unknown): keep that shape.
fn serialize_findings<S: serde::Serializer>(diags: &[Diagnostic], s: S) -> Result<S::Ok, S::Error> {
    #[derive(serde::Serialize)]
    struct Finding<'a> {
        severity: Severity,
        code: &'a str,
        message: &'a str,
        fix: &'a str,
        line: Option<usize>,
    }
    s.collect_seq(diags.iter().map(|d| Finding {
        severity: d.severity,
        code: &d.code,
        message: &d.message,
        fix: d.hint.as_deref().unwrap_or(""),
        line: d.line(),
    }))
}

/// One row of the per-node table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeView {
    pub nodeid: Option<u32>,
    pub name: Option<String>,
    pub votes: u32,
    pub member: bool,
    /// Qdevice column like corosync-quorumtool: `A,V,NMW` / `NA,NV,NMW` / `NR`.
    pub qdevice: Option<String>,
}

/// The computed quorum state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QuorumView {
    pub source: String,
    /// "live" or "configuration (all nodes assumed up)".
    pub basis: String,
    pub expected_votes: u32,
    pub highest_expected: u32,
    pub total_votes: u32,
    pub quorum: u32,
    pub quorate: bool,
    /// wait_for_all not yet satisfied ("Activity blocked").
    pub activity_blocked: bool,
    /// In corosync-quorumtool order: 2Node Quorate WaitForAll LastManStanding AutoTieBreaker AllowDownscale Qdevice.
    pub flags: Vec<String>,
    pub nodes: Vec<NodeView>,
    pub qdevice_votes: Option<u32>,
    #[serde(serialize_with = "serialize_findings")]
    pub diagnostics: Vec<Diagnostic>,
}

/// votequorum's quorum: `max((highest_expected + 2) / 2, (total_votes + 2) / 2)`, and 1 for
/// two_node with at most two voters counted (nodes + device).
pub fn quorum(highest_expected: u32, total_votes: u32, two_node: bool, voters: usize) -> u32 {
    let q = ((highest_expected + 2) / 2).max((total_votes + 2) / 2);
    if two_node && voters <= 2 {
        1
    } else {
        q
    }
}

impl QuorumConfig {
    fn line(&self, key: &str) -> Option<usize> {
        self.lines.iter().find(|(k, _)| k == key).map(|(_, l)| *l)
    }

    /// two_node as votequorum applies it: off with auto_tie_breaker or more than two nodes.
    pub fn effective_two_node(&self) -> bool {
        self.two_node && !self.auto_tie_breaker && self.nodes.len() <= 2
    }

    /// wait_for_all: explicit, else implied by two_node.
    pub fn effective_wait_for_all(&self) -> bool {
        self.wait_for_all.unwrap_or(self.two_node)
    }

    /// Sum of node votes.
    pub fn node_votes(&self) -> u32 {
        self.nodes.iter().map(|n| n.votes).sum()
    }

    /// Expected votes: configured, else node votes + device votes.
    pub fn expected(&self) -> u32 {
        self.expected_votes.unwrap_or_else(|| self.node_votes() + self.device.as_ref().and_then(|d| d.votes).unwrap_or(0))
    }

    /// The rules corosync (or qdevice, or safety) enforces.
    pub fn check(&self) -> Vec<Diagnostic> {
        let mut d = Vec::new();
        let mut err = |code: &'static str, key: &str, message: String, fix: &str| {
            d.push(Diagnostic::new(Severity::Error, (self.line(key).unwrap_or(0), 0), code, message, Some(fix.to_string())));
        };
        let src = &self.source;
        if self.nodes.is_empty() && self.expected_votes.is_none() {
            err("no-nodes", "nodelist", format!("{src}: neither a node list nor expected_votes"), "add the nodes (nodelist{} / <clusternodes>)");
        }
        if let Some(dev) = &self.device {
            let what = if dev.model == "qdisk" { "<quorumd>" } else { "quorum.device" };
            if self.two_node {
                err(
                    "device-with-two-node",
                    "two_node",
                    format!("{src}: {what} together with two_node: corosync exits at start (code 20: \"two_node and quorum device cannot be configured at the same time\"); corosync -t does not catch it"),
                    "remove two_node (set it to 0) and let the device provide the third vote (expected_votes 3)",
                );
            }
            if self.last_man_standing {
                err("device-with-lms", "last_man_standing", format!("{src}: {what} is not compatible with last_man_standing"), "remove last_man_standing");
            }
            if self.auto_tie_breaker {
                err("device-with-atb", "auto_tie_breaker", format!("{src}: {what} is not compatible with auto_tie_breaker"), "remove auto_tie_breaker; the device breaks ties");
            }
            if self.allow_downscale {
                err("device-with-downscale", "allow_downscale", format!("{src}: {what} is not compatible with allow_downscale"), "remove allow_downscale");
            }
            let votes: Vec<u32> = self.nodes.iter().map(|n| n.votes).collect();
            if votes.windows(2).any(|w| w[0] != w[1]) {
                err("device-unequal-votes", "nodelist", format!("{src}: {what} needs every node to have the same number of votes, got {votes:?}"), "give every node votes: 1");
            }
            match (self.expected_votes, dev.votes) {
                (Some(_), None) => err(
                    "device-expected-without-votes",
                    "expected_votes",
                    format!("{src}: expected_votes is set but {what} has no votes"),
                    "set the device's votes (normally 1 for ffsplit) or remove expected_votes",
                ),
                (Some(ev), Some(dv)) if ev < dv + 2 => err(
                    "device-expected-too-low",
                    "expected_votes",
                    format!("{src}: expected_votes {ev} minus device votes {dv} is below 2"),
                    "expected_votes must be node votes + device votes (3 for two nodes and one device vote)",
                ),
                _ => {}
            }
            if dev.model == "net" && dev.algorithm.as_deref().unwrap_or("ffsplit") == "ffsplit" {
                if let Some(v) = dev.votes.filter(|v| *v != 1) {
                    err("ffsplit-device-votes", "device.votes", format!("{src}: the ffsplit algorithm needs device votes 1, got {v}"), "set quorum.device.votes: 1");
                }
            }
        }
        if self.two_node && self.watchdog_fencing {
            err(
                "watchdog-with-two-node",
                "two_node",
                format!("{src}: watchdog self-fencing under two_node: both halves of a split stay quorate, so a watchdog never proves the peer is dead"),
                "use hardware fence devices on both nodes (with a delay on one), or a third vote from an arbiter (two_node 0, expected_votes 3)",
            );
        }
        let mut warn = |code: &'static str, key: &str, message: String, fix: &str| {
            d.push(Diagnostic::new(Severity::Warning, (self.line(key).unwrap_or(0), 0), code, message, Some(fix.to_string())));
        };
        if self.two_node && self.nodes.len() > 2 {
            warn("two-node-more-nodes", "two_node", format!("{src}: two_node with {} nodes is ignored by votequorum", self.nodes.len()), "remove two_node");
        }
        if self.two_node && self.auto_tie_breaker {
            warn("two-node-atb", "auto_tie_breaker", format!("{src}: two_node and auto_tie_breaker: votequorum disables two_node"), "choose one of them");
        }
        if self.two_node && self.device.is_none() && self.expected_votes.is_some_and(|e| e != 1) && self.source.contains("cluster.conf") {
            warn("cman-two-node-expected", "expected_votes", format!("{src}: cman two_node=\"1\" needs expected_votes=\"1\""), "set <cman two_node=\"1\" expected_votes=\"1\"/>");
        }
        d
    }

    /// Compute the quorum state, from live membership when given, else assuming every
    /// configured node (and the device) is up.
    pub fn compute(&self, live: Option<&Live>) -> QuorumView {
        let two_node = self.effective_two_node();
        let wfa = self.effective_wait_for_all();
        let expected = self.expected();
        let dev_votes = self.device.as_ref().map(|d| d.votes.unwrap_or(1));
        let (members, device_cast, basis): (Vec<(u32, u32)>, bool, String) = match live {
            Some(l) => (l.members.clone(), l.qdevice_cast, "live".to_string()),
            None => (
                self.nodes.iter().enumerate().map(|(i, n)| (n.nodeid.unwrap_or(i as u32 + 1), n.votes)).collect(),
                self.device.is_some(),
                "configuration (all nodes assumed up)".to_string(),
            ),
        };
        let mut total: u32 = members.iter().map(|m| m.1).sum();
        let mut voters = members.len();
        if device_cast {
            total += live.map(|l| l.qdevice_votes).filter(|v| *v > 0).or(dev_votes).unwrap_or(0);
            voters += 1;
        }
        let highest = live.and_then(|l| l.reported_highest_expected).unwrap_or(expected).max(expected);
        let q = quorum(highest, total, two_node, voters);
        let all_seen = self.nodes.iter().enumerate().all(|(i, n)| {
            let id = n.nodeid.unwrap_or(i as u32 + 1);
            members.iter().any(|m| m.0 == id)
        });
        let blocked = live.and_then(|l| l.reported_blocked).unwrap_or(wfa && !all_seen);
        let quorate = live.and_then(|l| l.reported_quorate).unwrap_or(total >= q && !blocked);
        let mut flags = Vec::new();
        if two_node {
            flags.push("2Node");
        }
        if quorate {
            flags.push("Quorate");
        }
        if wfa {
            flags.push("WaitForAll");
        }
        if self.last_man_standing {
            flags.push("LastManStanding");
        }
        if self.auto_tie_breaker {
            flags.push("AutoTieBreaker");
        }
        if self.allow_downscale {
            flags.push("AllowDownscale");
        }
        if self.device.is_some() {
            flags.push("Qdevice");
        }
        let mut nodes: Vec<NodeView> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let id = n.nodeid.unwrap_or(i as u32 + 1);
                let member = members.iter().any(|m| m.0 == id);
                NodeView {
                    nodeid: n.nodeid,
                    name: n.name.clone(),
                    votes: members.iter().find(|m| m.0 == id).map_or(n.votes, |m| m.1),
                    member,
                    qdevice: self.device.as_ref().map(|_| {
                        if !member {
                            "NR".to_string()
                        } else if device_cast {
                            "A,V,NMW".to_string()
                        } else {
                            "A,NV,NMW".to_string()
                        }
                    }),
                }
            })
            .collect();
        // members the configuration does not know
        for (id, v) in &members {
            if !nodes.iter().enumerate().any(|(i, n)| n.nodeid.unwrap_or(i as u32 + 1) == *id) {
                let name = live.and_then(|l| l.node_names.iter().find(|x| x.0 == *id).map(|x| x.1.clone()));
                nodes.push(NodeView { nodeid: Some(*id), name, votes: *v, member: true, qdevice: None });
            }
        }
        QuorumView {
            source: self.source.clone(),
            basis,
            expected_votes: expected,
            highest_expected: highest,
            total_votes: total,
            quorum: q,
            quorate,
            activity_blocked: blocked,
            flags: flags.into_iter().map(String::from).collect(),
            nodes,
            qdevice_votes: dev_votes,
            diagnostics: self.check(),
        }
    }

    /// From cluster.conf (cman): `<cman two_node expected_votes>`, `<clusternode votes>`,
    /// `<quorumd votes>`, fence_watchdog devices.
    pub fn from_cluster_conf(m: &crate::clusterconf::model::Model, source: &str) -> QuorumConfig {
        let mut c = QuorumConfig { source: source.to_string(), cluster_name: m.cluster_name().map(String::from), ..Default::default() };
        c.two_node = m.two_node();
        // cman has no wait_for_all (it came with corosync 2's votequorum; cluster.rng has no such
        // attribute): a two_node node booting alone is quorate at once and fences its absent peer
        // after post_join_delay, the two-node "fence loop".
        c.wait_for_all = Some(false);
        c.expected_votes = m.expected_votes().map(|v| v as u32);
        if let Some(cman) = &m.cman {
            for a in &cman.attrs {
                match a.name.as_str() {
                    "two_node" => c.lines.push(("two_node".into(), a.line)),
                    "expected_votes" => c.lines.push(("expected_votes".into(), a.line)),
                    _ => {}
                }
            }
        }
        if let Some(l) = m.clusternodes {
            c.lines.push(("nodelist".into(), l.line));
        }
        for n in &m.nodes {
            c.nodes.push(NodeConf {
                name: n.name.clone(),
                nodeid: n.nodeid.as_deref().and_then(|v| v.trim().parse().ok()),
                votes: n.votes_or_default().unwrap_or(1) as u32,
            });
        }
        if let Some(q) = &m.quorumd {
            c.device = Some(DeviceConf {
                model: "qdisk".into(),
                votes: q.section.get("votes").and_then(|v| v.trim().parse().ok()),
                ..Default::default()
            });
            c.lines.push(("device.votes".into(), q.section.loc.line));
        }
        c.watchdog_fencing = m.fencedevices.iter().any(|d| d.agent.as_deref().is_some_and(|a| a == "fence_watchdog" || a == "fence_sbd_watchdog"));
        c
    }

    /// From corosync.conf text, through the lossless parser of [`super::corosync_conf`].
    pub fn from_corosync_conf(text: &str, source: &str) -> Result<QuorumConfig, String> {
        let conf = super::corosync_conf::CorosyncConf::parse(text).map_err(|e| format!("{source}:{}:{}: {}", e.line, e.col, e.msg))?;
        conf.quorum_config(source)
    }
}

impl Live {
    /// Parse `corosync-quorumtool -s` (or `pvecm status`) output.
    pub fn from_quorumtool(text: &str) -> Result<Live, String> {
        let mut l = Live::default();
        let mut in_table = false;
        let mut saw_any = false;
        for line in text.lines() {
            let t = line.trim();
            if let Some(v) = t.strip_prefix("Quorate:") {
                l.reported_quorate = Some(v.trim().eq_ignore_ascii_case("yes"));
                saw_any = true;
            } else if let Some(v) = t.strip_prefix("Highest expected:") {
                l.reported_highest_expected = v.trim().parse().ok();
            } else if let Some(v) = t.strip_prefix("Quorum:") {
                l.reported_blocked = Some(v.contains("Activity blocked"));
            } else if t.starts_with("Nodeid") && t.contains("Votes") {
                in_table = true;
            } else if in_table && !t.is_empty() {
                let cols: Vec<&str> = t.split_whitespace().collect();
                // Nodeid Votes [Qdevice] Name ; qdevice row: "0 1 Qdevice"
                if cols.len() >= 2 {
                    let id = cols[0].strip_prefix("0x").map_or_else(|| cols[0].parse().ok(), |h| u32::from_str_radix(h, 16).ok());
                    let (Some(id), Ok(votes)) = (id, cols[1].parse::<u32>()) else { continue };
                    if id == 0 {
                        l.qdevice_votes = votes;
                        l.qdevice_cast = true;
                        continue;
                    }
                    l.members.push((id, votes));
                    if let Some(name) = cols.last().filter(|_| cols.len() >= 3) {
                        l.node_names.push((id, name.trim_end_matches("(local)").trim().to_string()));
                    }
                }
            } else if in_table && t.is_empty() && !l.members.is_empty() {
                in_table = false;
            }
        }
        if !saw_any && l.members.is_empty() {
            return Err("not corosync-quorumtool -s output (no 'Quorate:' line and no membership table)".into());
        }
        Ok(l)
    }

    /// Parse `cman_tool status` (members are not listed there: only counts).
    pub fn from_cman_tool(text: &str) -> Result<Live, String> {
        let mut l = Live::default();
        let mut nodes = None;
        let mut total = None;
        let mut own: (Option<u32>, Option<String>) = (None, None);
        for line in text.lines() {
            let Some((k, v)) = line.split_once(':') else { continue };
            let v = v.trim();
            match k.trim() {
                "Nodes" => nodes = v.parse::<u32>().ok(),
                "Total votes" => total = v.parse::<u32>().ok(),
                "Quorum device votes" => l.qdevice_votes = v.parse().unwrap_or(0),
                "Expected votes" => l.reported_highest_expected = v.parse().ok(),
                "Quorum" => l.reported_blocked = Some(v.contains("Activity blocked")),
                "Node ID" => own.0 = v.parse().ok(),
                "Node name" => own.1 = Some(v.to_string()).filter(|n| !n.is_empty()),
                "Cluster Member" => {}
                _ => {}
            }
            if line.contains("Quorate") {
                l.reported_quorate = Some(!line.contains("Inquorate"));
            }
        }
        let n = nodes.ok_or("not cman_tool status output (no 'Nodes:' line)")?;
        let t = total.unwrap_or(n);
        l.qdevice_cast = l.qdevice_votes > 0;
        let node_votes = t.saturating_sub(l.qdevice_votes);
        // Alone in its membership (a split, or the peer down): the only member is this node,
        // whose id and name cman_tool prints.
        if let (1, Some(id)) = (n, own.0) {
            l.members.push((id, node_votes));
            if let Some(name) = own.1 {
                l.node_names.push((id, name));
            }
            return Ok(l);
        }
        // cman_tool status does not list other members' ids: number them 1..n, votes spread evenly
        for i in 0..n {
            l.members.push((i + 1, node_votes.checked_div(n).unwrap_or(0)));
        }
        Ok(l)
    }
}

impl QuorumView {
    /// Human output in the layout of `corosync-quorumtool -s`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "Quorum information ({}, {})", self.source, self.basis);
        let _ = writeln!(s, "------------------");
        let _ = writeln!(s, "Quorate:          {}", if self.quorate { "Yes" } else { "No" });
        let _ = writeln!(s);
        let _ = writeln!(s, "Votequorum information");
        let _ = writeln!(s, "----------------------");
        let _ = writeln!(s, "Expected votes:   {}", self.expected_votes);
        let _ = writeln!(s, "Highest expected: {}", self.highest_expected);
        let _ = writeln!(s, "Total votes:      {}", self.total_votes);
        let _ = writeln!(s, "Quorum:           {}{}", self.quorum, if self.activity_blocked { "  Activity blocked" } else { "" });
        let _ = writeln!(s, "Flags:            {}", self.flags.join(" "));
        let _ = writeln!(s);
        let _ = writeln!(s, "Membership information");
        let _ = writeln!(s, "----------------------");
        let dev = self.qdevice_votes.is_some();
        if dev {
            let _ = writeln!(s, "    Nodeid      Votes    Qdevice Name");
        } else {
            let _ = writeln!(s, "    Nodeid      Votes Name");
        }
        for n in &self.nodes {
            let id = n.nodeid.map_or("?".to_string(), |i| i.to_string());
            let name = n.name.clone().unwrap_or_default();
            let name = if n.member { name } else { format!("{name} (not a member)") };
            if dev {
                let _ = writeln!(s, "{:>10} {:>10} {:>10} {}", id, n.votes, n.qdevice.clone().unwrap_or_default(), name);
            } else {
                let _ = writeln!(s, "{:>10} {:>10} {}", id, n.votes, name);
            }
        }
        if let Some(v) = self.qdevice_votes {
            let _ = writeln!(s, "{:>10} {:>10} {:>10} Qdevice", 0, v, "");
        }
        for d in &self.diagnostics {
            let at = d.line().map(|l| format!(" (line {l})")).unwrap_or_default();
            let _ = writeln!(s, "\n{}[{}]{at}: {}\n  fix: {}", d.severity.name(), d.code, d.message, d.hint.as_deref().unwrap_or(""));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two(votes: u32) -> Vec<NodeConf> {
        vec![
            NodeConf { name: Some("n1".into()), nodeid: Some(1), votes },
            NodeConf { name: Some("n2".into()), nodeid: Some(2), votes },
        ]
    }

    #[test]
    fn arithmetic_matches_votequorum() {
        assert_eq!(quorum(3, 3, false, 3), 2);
        assert_eq!(quorum(3, 2, false, 2), 2);
        assert_eq!(quorum(2, 2, true, 2), 1);
        assert_eq!(quorum(2, 2, false, 2), 2);
        assert_eq!(quorum(5, 3, false, 3), 3);
        // quorum follows the larger of expected and total
        assert_eq!(quorum(3, 6, false, 6), 4);
        // two_node off when more than two voters count
        assert_eq!(quorum(3, 3, true, 3), 2);
    }

    #[test]
    fn two_node_implies_wait_for_all_and_quorum_one() {
        let c = QuorumConfig { source: "t".into(), nodes: two(1), two_node: true, expected_votes: Some(1), ..Default::default() };
        let v = c.compute(None);
        assert_eq!((v.expected_votes, v.total_votes, v.quorum), (1, 2, 1));
        assert_eq!(v.flags, vec!["2Node", "Quorate", "WaitForAll"]);
        // alone after a restart: blocked until it has seen its peer
        let live = Live { members: vec![(1, 1)], ..Default::default() };
        let v = c.compute(Some(&live));
        assert!(v.activity_blocked && !v.quorate);
        assert!(v.render().contains("Quorum:           1  Activity blocked"));
    }

    #[test]
    fn cman_tool_status_alone_names_this_node() {
        let text = "Cluster Name: lab\nMembership state: Cluster-Member\nNodes: 1\nExpected votes: 1\nTotal votes: 1\nNode votes: 1\nQuorum: 1  \nFlags: 2node \nNode name: node2\nNode ID: 2\n";
        let l = Live::from_cman_tool(text).unwrap();
        assert_eq!(l.members, vec![(2, 1)]);
        assert_eq!(l.node_names, vec![(2, "node2".to_string())]);
        let c = QuorumConfig { source: "t".into(), nodes: two(1), two_node: true, expected_votes: Some(1), ..Default::default() };
        let v = c.compute(Some(&l));
        assert!(v.quorate && !v.activity_blocked);
        assert!(!v.nodes[0].member && v.nodes[1].member);
        // two members: ids are not printed for the peer, numbered 1..n as before
        let both = text.replace("Nodes: 1", "Nodes: 2").replace("Total votes: 1", "Total votes: 2");
        assert_eq!(Live::from_cman_tool(&both).unwrap().members, vec![(1, 1), (2, 1)]);
    }

    #[test]
    fn device_rules_refuse_what_corosync_refuses() {
        let dev = DeviceConf { model: "net".into(), votes: Some(1), algorithm: Some("ffsplit".into()), ..Default::default() };
        let ok = QuorumConfig { source: "t".into(), nodes: two(1), device: Some(dev.clone()), ..Default::default() };
        assert!(ok.check().is_empty(), "{:?}", ok.check());
        let v = ok.compute(None);
        assert_eq!((v.expected_votes, v.total_votes, v.quorum), (3, 3, 2));
        assert_eq!(v.flags, vec!["Quorate", "Qdevice"]);
        let codes = |c: &QuorumConfig| c.check().into_iter().map(|d| d.code).collect::<Vec<_>>();
        assert_eq!(codes(&QuorumConfig { two_node: true, ..ok.clone() }), vec!["device-with-two-node"]);
        assert_eq!(codes(&QuorumConfig { last_man_standing: true, ..ok.clone() }), vec!["device-with-lms"]);
        assert_eq!(codes(&QuorumConfig { auto_tie_breaker: true, ..ok.clone() }), vec!["device-with-atb"]);
        assert_eq!(codes(&QuorumConfig { allow_downscale: true, ..ok.clone() }), vec!["device-with-downscale"]);
        let mut unequal = ok.clone();
        unequal.nodes[1].votes = 2;
        assert_eq!(codes(&unequal), vec!["device-unequal-votes"]);
        let nov = QuorumConfig { expected_votes: Some(3), device: Some(DeviceConf { votes: None, ..dev.clone() }), ..ok.clone() };
        assert_eq!(codes(&nov), vec!["device-expected-without-votes"]);
        assert_eq!(codes(&QuorumConfig { expected_votes: Some(2), ..ok.clone() }), vec!["device-expected-too-low"]);
        let wd = QuorumConfig { source: "t".into(), nodes: two(1), two_node: true, watchdog_fencing: true, ..Default::default() };
        assert_eq!(codes(&wd), vec!["watchdog-with-two-node"]);
    }

    #[test]
    fn corosync_conf_and_quorumtool_are_read() {
        let conf = "totem {\n cluster_name: qlab\n}\nquorum {\n provider: corosync_votequorum\n two_node: 1\n device {\n  model: net\n  votes: 1\n  net {\n   host: 10.77.2.254\n   algorithm: ffsplit\n  }\n }\n}\nnodelist {\n node {\n  name: n1\n  nodeid: 1\n }\n node {\n  name: n2\n  nodeid: 2\n  quorum_votes: 1\n }\n}\n";
        let c = QuorumConfig::from_corosync_conf(conf, "corosync.conf").unwrap();
        assert_eq!(c.cluster_name.as_deref(), Some("qlab"));
        assert_eq!(c.nodes.len(), 2);
        assert_eq!(c.device.as_ref().and_then(|d| d.host.clone()).as_deref(), Some("10.77.2.254"));
        let d = c.check();
        assert_eq!(d[0].code, "device-with-two-node");
        assert_eq!(d[0].line(), Some(6));
        assert!(QuorumConfig::from_corosync_conf("quorum {\n", "x").unwrap_err().contains("not closed"));
        let qt = "Quorum information\n------------------\nDate:             Sun Nov 22 00:00:00 2026\nQuorum provider:  corosync_votequorum\nNodes:            1\nNode ID:          0x00000001\nRing ID:          1.c\nQuorate:          Yes\n\nVotequorum information\n----------------------\nExpected votes:   3\nHighest expected: 3\nTotal votes:      2\nQuorum:           2  \nFlags:            Quorate Qdevice \n\nMembership information\n----------------------\n    Nodeid      Votes    Qdevice Name\n0x00000001          1    A,V,NMW 10.77.1.1 (local)\n0x00000000          1            Qdevice\n";
        let l = Live::from_quorumtool(qt).unwrap();
        assert_eq!(l.members, vec![(1, 1)]);
        assert!(l.qdevice_cast && l.reported_quorate == Some(true));
        let ok = QuorumConfig { two_node: false, ..c };
        let v = ok.compute(Some(&l));
        assert_eq!((v.total_votes, v.quorum, v.quorate), (2, 2, true));
        assert!(v.render().contains("NR"), "n2 is not a member:\n{}", v.render());
    }
}
