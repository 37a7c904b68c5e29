//! A regression directory in pve-ha-manager's format: cmdlist, hardware_status, manager_status,
//! service_config, groups, rules_config, datacenter.cfg (JSON), service_status_NODE; twonode adds
//! twonode.json (arbiter, BMCs, DRBD).
use std::collections::BTreeMap;
use std::path::Path;

use crate::ha::config;
use crate::ha::model::{Datacenter, Group, Rule, ServiceConf};
use crate::ha::state::ManagerStatus;
use crate::ha::sim::twonode::TwoNodeConf;

#[derive(Debug, Clone)]
pub struct NodeInit {
    pub power: bool,
    pub network: bool,
    pub version: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub cmdlist: Vec<Vec<String>>,
    pub nodes: BTreeMap<String, NodeInit>,
    pub manager_status: ManagerStatus,
    pub services: BTreeMap<String, ServiceConf>,
    pub groups: BTreeMap<String, Group>,
    pub rules: Vec<Rule>,
    pub datacenter: Datacenter,
    /// node -> sid -> running
    pub service_status: BTreeMap<String, BTreeMap<String, bool>>,
    pub twonode: Option<TwoNodeConf>,
}

fn read(dir: &Path, name: &str) -> Result<Option<String>, String> {
    let p = dir.join(name);
    match std::fs::read_to_string(&p) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", p.display())),
    }
}

fn json_err(path: &Path, e: serde_json::Error, what: &str) -> String {
    format!("{}:{}:{}: {e} (expected {what})", path.display(), e.line(), e.column())
}

/// Read a regression directory. Errors name the file, the line and what was expected.
pub fn load_dir(dir: &Path) -> Result<Scenario, String> {
    let path = |n: &str| dir.join(n);
    let cmdlist_text = read(dir, "cmdlist")?.ok_or_else(|| format!("{}: missing (a JSON list of command batches)", path("cmdlist").display()))?;
    let cmdlist: Vec<Vec<String>> = serde_json::from_str(&cmdlist_text).map_err(|e| json_err(&path("cmdlist"), e, "a JSON list of lists of command strings"))?;

    let mut nodes = BTreeMap::new();
    match read(dir, "hardware_status")? {
        Some(t) => {
            let v: BTreeMap<String, serde_json::Value> = serde_json::from_str(&t).map_err(|e| json_err(&path("hardware_status"), e, r#"{"node1": {"power": "off", "network": "off"}, ...}"#))?;
            for (n, d) in v {
                let on = |k: &str| d.get(k).and_then(|x| x.as_str()) == Some("on");
                nodes.insert(n, NodeInit { power: on("power"), network: on("network"), version: d.get("pve-manager-version").and_then(|x| x.as_str()).map(String::from) });
            }
        }
        None => {
            for n in ["node1", "node2", "node3"] {
                nodes.insert(n.to_string(), NodeInit { power: false, network: false, version: None });
            }
        }
    }
    if nodes.is_empty() {
        return Err(format!("{}: no nodes", path("hardware_status").display()));
    }
    let manager_status = match read(dir, "manager_status")? {
        Some(t) if !t.trim().is_empty() => serde_json::from_str(&t).map_err(|e| json_err(&path("manager_status"), e, "manager_status JSON"))?,
        _ => ManagerStatus::default(),
    };
    let services = match read(dir, "service_config")? {
        Some(t) => config::parse_service_json(&t).map_err(|e| format!("{}: {e}", path("service_config").display()))?,
        None => {
            let mut m = BTreeMap::new();
            for (sid, n) in [("vm:101", "node1"), ("vm:102", "node2"), ("vm:103", "node3"), ("vm:104", "node1"), ("vm:105", "node2"), ("vm:106", "node3")] {
                m.insert(sid.to_string(), ServiceConf::new(sid, n, crate::ha::model::RequestState::Disabled));
            }
            m
        }
    };
    let groups = match read(dir, "groups")? {
        Some(t) => config::parse_groups(&t).map_err(|e| format!("{}:{e}", path("groups").display()))?,
        None => BTreeMap::new(),
    };
    let rules = match read(dir, "rules_config")? {
        Some(t) => config::parse_rules(&t).map_err(|e| format!("{}:{e}", path("rules_config").display()))?,
        None => Vec::new(),
    };
    let datacenter = match read(dir, "datacenter.cfg")? {
        Some(t) => config::pve::parse_datacenter_json(&t).map_err(|e| json_err(&path("datacenter.cfg"), e, r#"{"ha": {"shutdown_policy": "..."}}"#))?,
        None => Datacenter::default(),
    };
    let mut service_status = BTreeMap::new();
    for n in nodes.keys() {
        let name = format!("service_status_{n}");
        if let Some(t) = read(dir, &name)? {
            let v: BTreeMap<String, serde_json::Value> = serde_json::from_str(&t).map_err(|e| json_err(&path(&name), e, r#"{"vm:101": 1}"#))?;
            service_status.insert(n.clone(), v.into_iter().map(|(k, v)| (k, v.as_i64().map(|x| x != 0).or(v.as_bool()).unwrap_or(false))).collect());
        }
    }
    let twonode = match read(dir, "twonode.json")? {
        Some(t) => Some(serde_json::from_str(&t).map_err(|e| json_err(&path("twonode.json"), e, "twonode's two-node settings"))?),
        None => None,
    };
    Ok(Scenario { cmdlist, nodes, manager_status, services, groups, rules, datacenter, service_status, twonode })
}
