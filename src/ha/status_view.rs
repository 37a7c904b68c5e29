//! `ha status`: what `ha-manager status` prints, computed from manager_status, the configured
//! services and the LRMs' lrm_status. Pure: the caller reads the files and passes the clock.
//!
//! Facts from ha-manager (its status API): a quorum line; a master line whose state comes from the
//! age of manager_status' timestamp (active when at most 30 s old, `old timestamp - dead?` when
//! older, `detected time drift!` when more than 2 s in the future, `idle` when stale and no service
//! is configured); a fencing line (armed/standby, or the disarm state); one LRM line per node of
//! manager_status' `node_status`; one line per service, first those the CRM knows, then those it has
//! not processed yet (`queued`), with the verbose state (`starting` for a started service not yet
//! running, `stopping`, `disabled`, `clearing error flag`, ...).
use std::collections::BTreeMap;

use crate::ha::manager::count_active_services;
use crate::ha::model::{RequestState, ServiceConf};
use crate::ha::state::{LrmStatus, ManagerStatus, ServiceStatus};

/// One status entry, in the shape of ha-manager's status API (`type` + `status` text).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Entry {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The text `ha-manager status` prints after the type.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quorate: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Services: the verbose state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Services: the CRM's own state in manager_status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crm_state: Option<String>,
    /// Services: the requested state of resources.cfg.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl Entry {
    fn new(id: String, kind: &str, status: String) -> Entry {
        Entry { id, kind: kind.into(), node: None, status, timestamp: None, quorate: None, sid: None, state: None, crm_state: None, request_state: None, group: None }
    }
}

/// What the status is computed from.
pub struct Inputs<'a> {
    pub manager_status: Option<&'a ManagerStatus>,
    pub services: &'a BTreeMap<String, ServiceConf>,
    /// node -> its lrm_status (a node missing here: "unable to read lrm status")
    pub lrm: &'a BTreeMap<String, LrmStatus>,
    /// The cluster's quorum as this node sees it (None: not known, e.g. a copy of /etc/pve).
    pub quorate: Option<bool>,
    /// This node's name (for the no-quorum text and the fencing line without a master).
    pub local_node: Option<&'a str>,
    /// datacenter.cfg `crs: ha=...` (anything but basic is named on the master line).
    pub crs_ha: Option<&'a str>,
    /// Now, in seconds since the epoch.
    pub now: i64,
}

/// The age of a manager or LRM timestamp, as ha-manager words it.
pub fn timestamp_status(now: i64, ts: i64) -> &'static str {
    let d = now.saturating_sub(ts);
    if d > 30 {
        "old timestamp - dead?"
    } else if d < -2 {
        "detected time drift!"
    } else {
        "active"
    }
}

/// ha-manager's verbose service state from the CRM's entry and the configuration.
pub fn verbose_service_state(ss: Option<&ServiceStatus>, sc: Option<&ServiceConf>) -> String {
    let Some(sc) = sc else { return "deleting".into() };
    if sc.state == RequestState::Ignored {
        return "ignored".into();
    }
    if sc.node.is_empty() {
        return "not found".into();
    }
    let Some(ss) = ss else { return "queued".into() };
    let req = sc.state;
    let cur = ss.state.as_str();
    match cur {
        "" => "queued".into(),
        "stopped" if req == RequestState::Started => "starting".into(),
        "stopped" if req == RequestState::Disabled => "disabled".into(),
        "started" if ss.running != Some(true) => "starting".into(),
        "started" if matches!(req, RequestState::Stopped | RequestState::Disabled) => "stopping".into(),
        "error" if req == RequestState::Disabled => "clearing error flag".into(),
        other => other.into(),
    }
}

/// A timestamp as Perl's scalar `localtime` prints it (`Thu Dec  5 12:00:00 2024`), in UTC.
pub fn ctime(ts: i64) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    match time::OffsetDateTime::from_unix_timestamp(ts) {
        Ok(t) => format!(
            "{} {} {:>2} {:02}:{:02}:{:02} {}",
            DAYS[t.weekday().number_days_from_monday() as usize],
            MONTHS[u8::from(t.month()) as usize - 1],
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.year()
        ),
        Err(_) => format!("@{ts}"),
    }
}

/// The status entries in ha-manager's order: quorum, master, fencing, LRMs, services.
pub fn entries(i: &Inputs) -> Vec<Entry> {
    let mut out = Vec::new();
    let here = i.local_node.unwrap_or("localhost");
    let mut q = Entry::new(
        "quorum".into(),
        "quorum",
        match i.quorate {
            Some(true) => "OK".into(),
            Some(false) => format!("No quorum on node '{here}'!"),
            None => "unknown (not read from a running cluster: no pmxcfs .members)".into(),
        },
    );
    q.node = i.local_node.map(String::from);
    q.quorate = i.quorate;
    out.push(q);
    let empty = ManagerStatus::default();
    let ms = i.manager_status.unwrap_or(&empty);
    let crm_active = matches!((&ms.master_node, ms.timestamp), (Some(_), Some(ts)) if timestamp_status(i.now, ts) == "active");
    if let (Some(master), Some(ts)) = (&ms.master_node, ms.timestamp) {
        let mut st = timestamp_status(i.now, ts).to_string();
        if i.quorate != Some(false) && st != "active" && i.services.is_empty() {
            st = "idle".into();
        }
        let mut extra = String::new();
        if let Some(d) = &ms.disarm {
            extra += &format!(" - {}, resource mode: {}", d.state, d.mode);
        }
        if let Some(crs) = i.crs_ha.filter(|c| !c.is_empty() && *c != "basic") {
            extra += &format!(" - {crs} load CRS");
        }
        let mut e = Entry::new("master".into(), "master", format!("{master} ({st}, {}){extra}", ctime(ts)));
        e.node = Some(master.clone());
        e.timestamp = Some(ts);
        out.push(e);
    }
    let fence_node = ms.master_node.clone().unwrap_or_else(|| here.to_string());
    let fencing = match &ms.disarm {
        Some(d) => {
            let wd = if d.state == "disarmed" { "CRM watchdog released" } else { "CRM watchdog active" };
            format!("{}, resource mode: {} ({wd})", d.state, d.mode)
        }
        None if crm_active => "armed (CRM watchdog active)".into(),
        None => "standby (CRM watchdog standby)".into(),
    };
    let mut e = Entry::new("fencing".into(), "fencing", fencing);
    e.node = Some(fence_node);
    out.push(e);
    for node in ms.node_status.keys() {
        let mut e = match i.lrm.get(node).filter(|l| l.timestamp != 0) {
            None => Entry::new(format!("lrm:{node}"), "lrm", format!("{node} (unable to read lrm status)")),
            Some(l) => {
                let mut st = timestamp_status(i.now, l.timestamp).to_string();
                let lrm_state = if l.state.is_empty() { "unknown" } else { l.state.as_str() };
                let wd = if st == "active" && matches!(lrm_state, "active" | "maintenance") {
                    "watchdog active"
                } else if l.mode == "disarm" {
                    "watchdog released"
                } else {
                    "watchdog standby"
                };
                let mode = if l.mode.is_empty() { "active" } else { l.mode.as_str() };
                if st == "active" {
                    st = if mode != "active" {
                        format!("{mode} mode")
                    } else if lrm_state == "wait_for_agent_lock" && count_active_services(&ms.service_status, node) == 0 {
                        "idle".into()
                    } else {
                        lrm_state.into()
                    };
                } else if matches!(l.mode.as_str(), "maintenance" | "disarm") {
                    st = format!("{} mode", l.mode);
                }
                let mut e = Entry::new(format!("lrm:{node}"), "lrm", format!("{node} ({st}, {wd}, {})", ctime(l.timestamp)));
                e.timestamp = Some(l.timestamp);
                e
            }
        };
        e.node = Some(node.clone());
        out.push(e);
    }
    let mut service = |sid: &str, sc: Option<&ServiceConf>, ss: Option<&ServiceStatus>| {
        let node = ss.and_then(|s| s.node.clone()).or_else(|| sc.map(|c| c.node.clone()).filter(|n| !n.is_empty()));
        let mut state = verbose_service_state(ss, sc);
        if ms.disarm.as_ref().is_some_and(|d| d.mode == "ignore") {
            state = "ignore".into();
        }
        let mut e = Entry::new(format!("service:{sid}"), "service", format!("{sid} ({}, {state})", node.as_deref().unwrap_or("---")));
        e.sid = Some(sid.to_string());
        e.node = node;
        e.state = Some(state);
        e.crm_state = ss.map(|s| s.state.clone());
        e.request_state = sc.map(|c| c.state.as_str().to_string());
        e.group = sc.and_then(|c| c.group.clone());
        out.push(e);
    };
    for (sid, ss) in &ms.service_status {
        service(sid, i.services.get(sid), Some(ss));
    }
    for (sid, sc) in i.services {
        if !ms.service_status.contains_key(sid) {
            service(sid, Some(sc), None);
        }
    }
    out
}

/// The human text: `TYPE STATUS` per entry, as `ha-manager status` prints it.
pub fn render(entries: &[Entry]) -> String {
    entries.iter().map(|e| format!("{} {}\n", e.kind, e.status)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(json: &str) -> ManagerStatus {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn like_ha_manager_status() {
        let m = ms(r#"{"master_node":"node1","timestamp":1000,"node_status":{"node1":"online","node2":"online"},
            "service_status":{"vm:100":{"state":"started","node":"node1","running":1},"vm:101":{"state":"started","node":"node2"},
            "vm:102":{"state":"stopped","node":"node2"},"vm:103":{"state":"error","node":"node1"}}}"#);
        let mut services = BTreeMap::new();
        for (sid, st) in [("vm:100", RequestState::Started), ("vm:101", RequestState::Started), ("vm:102", RequestState::Started), ("vm:103", RequestState::Disabled), ("ct:200", RequestState::Started), ("ct:201", RequestState::Ignored)] {
            services.insert(sid.to_string(), ServiceConf::new(sid, "node2", st));
        }
        let mut lrm = BTreeMap::new();
        lrm.insert("node1".to_string(), LrmStatus { state: "active".into(), mode: "active".into(), timestamp: 1001, ..Default::default() });
        lrm.insert("node2".to_string(), LrmStatus { state: "wait_for_agent_lock".into(), mode: "active".into(), timestamp: 999, ..Default::default() });
        let i = Inputs { manager_status: Some(&m), services: &services, lrm: &lrm, quorate: Some(true), local_node: Some("node1"), crs_ha: Some("static"), now: 1005 };
        let text = render(&entries(&i));
        assert_eq!(
            text,
            "quorum OK\n\
             master node1 (active, Thu Jan  1 00:16:40 1970) - static load CRS\n\
             fencing armed (CRM watchdog active)\n\
             lrm node1 (active, watchdog active, Thu Jan  1 00:16:41 1970)\n\
             lrm node2 (wait_for_agent_lock, watchdog standby, Thu Jan  1 00:16:39 1970)\n\
             service vm:100 (node1, started)\n\
             service vm:101 (node2, starting)\n\
             service vm:102 (node2, starting)\n\
             service vm:103 (node1, clearing error flag)\n\
             service ct:200 (node2, queued)\n\
             service ct:201 (node2, ignored)\n"
        );
        // a stale manager, an LRM without status, no quorum
        let mut lrm1 = lrm.clone();
        lrm1.remove("node2");
        let i = Inputs { quorate: Some(false), now: 2000, crs_ha: None, lrm: &lrm1, ..i };
        let text = render(&entries(&i));
        assert!(text.starts_with("quorum No quorum on node 'node1'!\nmaster node1 (old timestamp - dead?, "), "{text}");
        assert!(text.contains("fencing standby (CRM watchdog standby)\n"), "{text}");
        assert!(text.contains("lrm node2 (unable to read lrm status)\n"), "{text}");
    }

    #[test]
    fn idle_lrm_and_clock() {
        assert_eq!(timestamp_status(100, 60), "old timestamp - dead?");
        assert_eq!(timestamp_status(100, 103), "detected time drift!");
        assert_eq!(timestamp_status(100, 70), "active");
        assert_eq!(timestamp_status(100, i64::MIN), "old timestamp - dead?");
        assert_eq!(timestamp_status(-100, i64::MAX), "detected time drift!");
        assert_eq!(ctime(i64::MAX), format!("@{}", i64::MAX));
        assert_eq!(ctime(1733400000), "Thu Dec  5 12:00:00 2024");
        let m = ms(r#"{"master_node":"a","timestamp":10,"node_status":{"a":"online"},"service_status":{}}"#);
        let mut lrm = BTreeMap::new();
        lrm.insert("a".to_string(), LrmStatus { state: "wait_for_agent_lock".into(), mode: "active".into(), timestamp: 10, ..Default::default() });
        let services = BTreeMap::new();
        let i = Inputs { manager_status: Some(&m), services: &services, lrm: &lrm, quorate: None, local_node: None, crs_ha: None, now: 100 };
        let e = entries(&i);
        // stale and no service configured: idle
        assert_eq!(e[1].status, "a (idle, Thu Jan  1 00:00:10 1970)");
        let i = Inputs { now: 12, ..i };
        assert_eq!(entries(&i)[3].status, "a (idle, watchdog standby, Thu Jan  1 00:00:10 1970)");
    }
}
