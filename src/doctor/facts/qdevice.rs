//! corosync quorum device state as the nodes report it (facts of a corosync cluster with
//! `quorum.device` model net): the parsed outputs of `corosync-quorumtool -s` and
//! `corosync-qdevice-tool -sv` and their parsers (corosync 3.1 / corosync-qdevice 3.0 layouts; real
//! outputs in `fixtures/corosync/qdevice`). Gathered by `gather::node`, checked by
//! `checks::qdevice`.
//!
//! What the columns mean (corosync-quorumtool(8)): the Qdevice column of a member is
//! `A`/`NA` (the qdevice daemon of that node is alive / not alive), `V`/`NV` (it casts the
//! device's vote / does not), `MW`/`NMW` (master wins on / off), or `NR` (no qdevice registered).
//! The `0 ... Qdevice` row carries the votes the device currently adds; `Qdevice (votes N)` with
//! 0 votes means it is configured with N votes but not casting them.
use serde::{Deserialize, Serialize};

/// One member row of `corosync-quorumtool -s`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub nodeid: u32,
    pub votes: u32,
    /// The Qdevice column (`A,V,NMW`, `NR`), when the table has one.
    pub qdevice: Option<String>,
    pub name: String,
    pub local: bool,
}

/// `corosync-quorumtool -s` as parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumTool {
    pub node_id: Option<u32>,
    pub ring_id: Option<String>,
    pub quorate: Option<bool>,
    pub expected_votes: Option<u32>,
    pub total_votes: Option<u32>,
    pub quorum: Option<u32>,
    pub activity_blocked: bool,
    pub flags: Vec<String>,
    pub members: Vec<Member>,
    /// The device row: (votes now counted, votes configured when printed as `(votes N)`).
    pub device_row: Option<(u32, Option<u32>)>,
}

fn num(s: &str) -> Option<u32> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Parse `corosync-quorumtool -s` (decimal or `-H` hex node ids).
pub fn parse_quorumtool(text: &str) -> Result<QuorumTool, String> {
    let mut q = QuorumTool::default();
    let mut table: Option<bool> = None; // Some(has_qdevice_column)
    let mut saw = false;
    for line in text.lines() {
        let t = line.trim();
        if let Some((k, v)) = t.split_once(':').filter(|_| table.is_none()) {
            let v = v.trim();
            match k.trim() {
                "Node ID" => q.node_id = num(v),
                "Ring ID" => q.ring_id = Some(v.to_string()),
                "Quorate" => {
                    saw = true;
                    q.quorate = Some(v.eq_ignore_ascii_case("yes"))
                }
                "Expected votes" => q.expected_votes = num(v),
                "Total votes" => q.total_votes = num(v),
                "Quorum" => {
                    q.quorum = v.split_whitespace().next().and_then(num);
                    q.activity_blocked = v.contains("Activity blocked");
                }
                "Flags" => q.flags = v.split_whitespace().map(String::from).collect(),
                _ => {}
            }
            continue;
        }
        if t.starts_with("Nodeid") && t.contains("Votes") {
            table = Some(t.contains("Qdevice"));
            continue;
        }
        let Some(has_q) = table else { continue };
        if t.is_empty() {
            continue;
        }
        let cols: Vec<&str> = t.split_whitespace().collect();
        let (Some(id), Some(votes)) = (cols.first().and_then(|c| num(c)), cols.get(1).and_then(|c| num(c))) else { continue };
        if id == 0 {
            // "0 1 Qdevice" or "0 0 Qdevice (votes 1)"
            let conf = t.split_once("(votes").and_then(|(_, r)| num(r.trim_end_matches(')').trim()));
            q.device_row = Some((votes, conf));
            continue;
        }
        let rest = &cols[2..];
        let (qd, name_cols) = if has_q && !rest.is_empty() && looks_like_qdevice_flags(rest[0]) {
            (Some(rest[0].to_string()), &rest[1..])
        } else {
            (None, rest)
        };
        let mut name = name_cols.join(" ");
        let local = name.ends_with("(local)");
        if local {
            name = name.trim_end_matches("(local)").trim().to_string();
        }
        q.members.push(Member { nodeid: id, votes, qdevice: qd, name, local });
    }
    if !saw && q.members.is_empty() {
        return Err("not `corosync-quorumtool -s` output (no 'Quorate:' line, no membership table)".into());
    }
    Ok(q)
}

fn looks_like_qdevice_flags(s: &str) -> bool {
    s == "NR" || s.split(',').all(|w| matches!(w, "A" | "NA" | "V" | "NV" | "MW" | "NMW"))
}

impl QuorumTool {
    /// The row of the node that ran the tool.
    pub fn local(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.local).or_else(|| self.node_id.and_then(|id| self.members.iter().find(|m| m.nodeid == id)))
    }
    pub fn member_ids(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.members.iter().map(|m| m.nodeid).collect();
        v.sort_unstable();
        v
    }
    /// Votes the device adds right now (the `0 N Qdevice` row).
    pub fn device_votes(&self) -> u32 {
        self.device_row.map(|d| d.0).unwrap_or(0)
    }
}

/// `corosync-qdevice-tool -sv` as parsed (the keys doctor uses).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QdeviceTool {
    pub node_id: Option<u32>,
    pub ring_id: Option<String>,
    pub membership: Vec<u32>,
    pub quorate: Option<bool>,
    /// "Poll timer running: Yes (cast vote)" / "Last poll call: ... (cast vote)".
    pub cast_vote: bool,
    pub cluster_name: Option<String>,
    pub qnetd_host: Option<String>,
    pub algorithm: Option<String>,
    pub tie_breaker: Option<String>,
    /// "Connected", "Connect failed", "Waiting for initial reply", ...
    pub state: Option<String>,
    pub tls_active: Option<String>,
    pub heuristics: Option<String>,
    pub connected_since: Option<String>,
}

/// Parse `corosync-qdevice-tool -s -v`.
pub fn parse_qdevice_tool(text: &str) -> Result<QdeviceTool, String> {
    let mut q = QdeviceTool::default();
    let mut saw = false;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else { continue };
        let v = v.trim().to_string();
        match k.trim() {
            "Model" => saw = true,
            "Node ID" => q.node_id = num(&v),
            "Ring ID" => q.ring_id = Some(v),
            "Membership node list" => q.membership = v.split(',').filter_map(num).collect(),
            "Quorate" => q.quorate = Some(v.eq_ignore_ascii_case("yes")),
            "Poll timer running" | "Last poll call" => q.cast_vote |= v.contains("(cast vote)"),
            "Cluster name" => q.cluster_name = Some(v),
            "QNetd host" => q.qnetd_host = Some(v),
            "Algorithm" => q.algorithm = Some(v),
            "Tie-breaker" => q.tie_breaker = Some(v),
            "State" => q.state = Some(v),
            "TLS active" => q.tls_active = Some(v),
            "Heuristics result" => q.heuristics = Some(v),
            "Connected since" => q.connected_since = Some(v),
            _ => {}
        }
    }
    if !saw {
        return Err("not `corosync-qdevice-tool -sv` output (no 'Model:' line)".into());
    }
    Ok(q)
}

/// What one node said (raw tool outputs kept as evidence).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeQdevice {
    pub node: String,
    /// Parsed `corosync-quorumtool -s`, or why it is missing.
    pub quorumtool: Option<QuorumTool>,
    pub quorumtool_error: Option<String>,
    /// Parsed `corosync-qdevice-tool -sv`, or why it is missing (not installed, not running).
    pub qdevice_tool: Option<QdeviceTool>,
    pub qdevice_tool_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hex_ids_and_nr() {
        let t = "Quorate:          No\nNode ID:          0x00000001\nRing ID:          1.5\nFlags:            \n\nMembership information\n----------------------\n    Nodeid      Votes    Qdevice Name\n0x00000001          1         NR 10.0.0.1 (local)\n";
        let q = parse_quorumtool(t).unwrap();
        assert_eq!(q.node_id, Some(1));
        assert_eq!(q.members[0].qdevice.as_deref(), Some("NR"));
        assert!(q.members[0].local && q.members[0].name == "10.0.0.1");
        assert!(parse_quorumtool("hello").is_err());
        assert!(parse_qdevice_tool("Can't connect").is_err());
    }
}
