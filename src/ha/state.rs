//! The manager's persisted state (`/etc/pve/ha/manager_status`, the regression format's
//! `manager_status`) and the LRM's (`lrm_status`), in ha-manager's JSON shape.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One service's entry in manager_status' `service_status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "de_flag")]
    pub running: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_nodes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_node: Option<String>,
    /// A queued crm command: ["migrate", "node2"], ["stop", "30"].
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "de_cmd")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "de_num_str")]
    pub timeout: Option<String>,
}

fn de_flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::Bool(b) => Some(b),
        serde_json::Value::Number(n) => Some(n.as_i64().unwrap_or(0) != 0),
        serde_json::Value::String(s) => Some(s != "0" && !s.is_empty()),
        _ => None,
    })
}

fn de_num_str<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

fn de_cmd<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::Array(a) => Some(
            a.into_iter()
                .map(|x| match x {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                })
                .collect(),
        ),
        _ => None,
    })
}

/// manager_status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManagerStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_node: Option<String>,
    #[serde(default)]
    pub node_status: BTreeMap<String, String>,
    #[serde(default)]
    pub service_status: BTreeMap<String, ServiceStatus>,
    /// node -> {"maintenance": 1}
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_request: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disarm: Option<Disarm>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

impl ManagerStatus {
    pub fn maintenance_requested(&self, node: &str) -> bool {
        self.node_request
            .get(node)
            .and_then(|r| r.get("maintenance"))
            .map(|v| !matches!(v, serde_json::Value::Null | serde_json::Value::Bool(false)) && v != &serde_json::json!(0))
            .unwrap_or(false)
    }
}

/// `disarm-ha freeze|ignore` in progress or done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disarm {
    pub mode: String,
    pub state: String,
}

/// One finished LRM command, keyed by the uid the manager handed out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrmResult {
    pub sid: String,
    pub state: String,
    pub exit_code: i32,
}

/// lrm_status of one node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LrmStatus {
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub results: BTreeMap<String, LrmResult>,
    #[serde(default)]
    pub timestamp: i64,
}
