//! The safety invariant, checked over a simulator log (twonode's and upstream's alike): a service
//! never runs on two nodes at once, and is never recovered from a node that may still run it
//! (its fence was not confirmed: the node was not powered off).
use std::collections::{BTreeMap, BTreeSet};

/// A violation, with the log line number (1-based) where it shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub line: usize,
    pub what: String,
}

fn node_of(id: &str) -> Option<&str> {
    id.split_once('/').map(|(n, _)| n)
}

/// The N-th '...'-quoted word of a log message.
pub fn quoted(msg: &str, n: usize) -> Option<&str> {
    msg.split('\'').nth(2 * n + 1)
}

/// Check a log; returns every violation found.
pub fn check(log: &[String]) -> Vec<Violation> {
    let mut running: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, line) in log.iter().enumerate() {
        let Some((head, msg)) = line.split_once(": ") else { continue };
        let id = head.split_whitespace().last().unwrap_or("");
        let ln = i + 1;
        if let Some(rest) = msg.strip_prefix("execute power ") {
            let mut w = rest.split_whitespace();
            if let (Some(node), Some("off")) = (w.next(), w.next()) {
                running.remove(node);
            }
            continue;
        }
        if let Some(rest) = msg.strip_prefix("execute service ") {
            // the admin moved the guest by hand: it no longer runs where HA last saw it
            let mut w = rest.split_whitespace();
            if let (Some(sid), Some("manual-migrate")) = (w.next(), w.next()) {
                for set in running.values_mut() {
                    set.remove(sid);
                }
            }
            continue;
        }
        let Some(node) = node_of(id) else { continue };
        if let Some(sid) = msg.strip_prefix("service status ").and_then(|r| r.strip_suffix(" started")) {
            for (n, set) in &running {
                if n != node && set.contains(sid) {
                    out.push(Violation { line: ln, what: format!("{sid} started on {node} while still running on {n}") });
                }
            }
            running.entry(node.to_string()).or_default().insert(sid.to_string());
        } else if let Some(sid) = msg.strip_prefix("service status ").and_then(|r| r.strip_suffix(" stopped")) {
            if let Some(s) = running.get_mut(node) {
                s.remove(sid);
            }
        } else if msg.starts_with("service ") && msg.contains(" - end migrate to node ") {
            let sid = msg.trim_start_matches("service ").split_whitespace().next().unwrap_or("");
            let target = quoted(msg, 0).unwrap_or("");
            let was = running.get_mut(node).map(|s| s.remove(sid)).unwrap_or(false);
            if was {
                running.entry(target.to_string()).or_default().insert(sid.to_string());
            }
        } else if msg.starts_with("recover service '") {
            let sid = quoted(msg, 0).unwrap_or("");
            let from = quoted(msg, 1).unwrap_or("");
            if running.get(from).is_some_and(|s| s.contains(sid)) {
                out.push(Violation { line: ln, what: format!("{sid} recovered from {from}, which may still run it (not powered off)") });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catches_double_start_and_unfenced_recovery() {
        let log: Vec<String> = [
            "info     21    node1/lrm: service status vm:101 started",
            "info    200    node2/lrm: service status vm:101 started",
            "info    240    node1/crm: recover service 'vm:101' from fenced node 'node1' to node 'node2'",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let v = check(&log);
        assert_eq!(v.len(), 2, "{v:?}");
        let ok: Vec<String> = ["info     21    node1/lrm: service status vm:101 started", "info    166     watchdog: execute power node1 off", "info    200    node2/lrm: service status vm:101 started"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(check(&ok).is_empty());
    }
}
