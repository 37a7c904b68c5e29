//! `--storage-map FILE`: where each HA service's storage lives, said by the admin when the
//! configuration cannot say it (rgmanager's `<rm>`, DRBD resources outside storage.cfg):
//!
//! ```json
//! {"vm:100": {"drbd": ["r0"], "nodes": ["node1", "node2"]},
//!  "vm:101": {"replication": ["node2"]}}
//! ```
//!
//! * `drbd`: the DRBD resources the guest's disks are on (the HA core then recovers it only where
//!   they are UpToDate, and promotes them there only);
//! * `nodes`: the nodes that have its storage (a DRBD resource's hosts, a storage's `nodes`);
//! * `replication`: replication targets; with the node the service is on, they have its storage.
//!
//! An entry replaces what storage.cfg and the guest config said for that service.
use std::collections::BTreeSet;

use super::section::SyntaxError;
use crate::ha::model::HaConfig;
use crate::ha::validate::StorageFacts;

fn at(text: &str, needle: &str, msg: String) -> SyntaxError {
    let span = super::pve::locate(text, needle).unwrap_or(crate::ha::model::Span { line: 1, col: 1 });
    SyntaxError { line: span.line, col: span.col, msg }
}

fn names(text: &str, sid: &str, key: &str, v: &serde_json::Value) -> Result<Vec<String>, SyntaxError> {
    let eg = if key == "drbd" { "[\"r0\"]" } else { "[\"node1\", \"node2\"]" };
    let bad = || at(text, &format!("\"{sid}\""), format!("{sid}: `{key}` must be a list of names, e.g. {eg}"));
    let list = v.as_array().ok_or_else(bad)?;
    list.iter().map(|x| x.as_str().map(String::from).filter(|s| !s.is_empty()).ok_or_else(bad)).collect()
}

/// Apply a storage map to the configuration (ServiceConf.drbd) and the storage facts validate
/// checks. Errors carry line:col in the map's text.
pub fn apply_storage_map(text: &str, cfg: &mut HaConfig, storage: &mut StorageFacts) -> Result<(), SyntaxError> {
    let v: serde_json::Value = serde_json::from_str(text)?;
    let obj = v.as_object().ok_or_else(|| SyntaxError { line: 1, col: 1, msg: "expected a JSON object: {\"vm:100\": {\"drbd\": [\"r0\"], \"nodes\": [\"node1\", \"node2\"]}}".into() })?;
    for (sid, entry) in obj {
        let Some(svc) = cfg.services.get_mut(sid) else {
            let known: Vec<&String> = cfg.services.keys().collect();
            return Err(at(text, &format!("\"{sid}\""), format!("`{sid}` is not an HA resource of this configuration (resources: {})", known.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "))));
        };
        let e = entry.as_object().ok_or_else(|| at(text, &format!("\"{sid}\""), format!("{sid}: expected an object with drbd, nodes, replication")))?;
        if let Some(k) = e.keys().find(|k| !matches!(k.as_str(), "drbd" | "nodes" | "replication")) {
            return Err(at(text, &format!("\"{k}\""), format!("{sid}: unknown key `{k}` (expected drbd, nodes, replication)")));
        }
        let drbd = match e.get("drbd") {
            Some(x) => names(text, sid, "drbd", x)?,
            None => Vec::new(),
        };
        let nodes = e.get("nodes").map(|x| names(text, sid, "nodes", x)).transpose()?;
        let targets = e.get("replication").map(|x| names(text, sid, "replication", x)).transpose()?;
        if !drbd.is_empty() {
            svc.drbd = drbd.clone();
        }
        if nodes.is_none() && targets.is_none() {
            continue;
        }
        let mut have: BTreeSet<String> = nodes.clone().unwrap_or_default().into_iter().collect();
        if let Some(t) = &targets {
            if !svc.node.is_empty() {
                have.insert(svc.node.clone());
            }
            have.extend(t.iter().cloned());
        }
        let mut what: Vec<String> = drbd.iter().map(|r| format!("DRBD {r}")).collect();
        if let Some(t) = &targets {
            what.push(format!("replicated to {}", t.join(", ")));
        }
        if what.is_empty() {
            what.push("the storage map".into());
        }
        storage.reachable.insert(sid.clone(), (have, what));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ha::model::{RequestState, ServiceConf};

    #[test]
    fn map_sets_drbd_and_reach() {
        let mut cfg = HaConfig::default();
        cfg.services.insert("vm:100".into(), ServiceConf::new("vm:100", "node1", RequestState::Started));
        cfg.services.insert("vm:101".into(), ServiceConf::new("vm:101", "node1", RequestState::Started));
        let mut st = StorageFacts::default();
        apply_storage_map("{\"vm:100\": {\"drbd\": [\"r0\"], \"nodes\": [\"node1\"]},\n \"vm:101\": {\"replication\": [\"node2\"]}}", &mut cfg, &mut st).unwrap();
        assert_eq!(cfg.services["vm:100"].drbd, vec!["r0"]);
        assert_eq!(st.reachable["vm:100"].0, BTreeSet::from(["node1".to_string()]));
        assert_eq!(st.reachable["vm:101"].0, BTreeSet::from(["node1".to_string(), "node2".to_string()]));
        let e = apply_storage_map("{\"vm:100\": {},\n \"vm:999\": {}}", &mut cfg, &mut st).unwrap_err();
        assert_eq!((e.line, e.col), (2, 2));
        let e = apply_storage_map("{\"vm:100\": {\"drdb\": []}}", &mut cfg, &mut st).unwrap_err();
        assert!(e.msg.contains("unknown key `drdb`"), "{}", e.msg);
    }
}
