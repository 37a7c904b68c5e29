//! The manager's view of the nodes: online, maintenance, unknown, fence, gone.
// One match arm per state, as ha-manager's state machines are written: a state's checks stay in
// its arm (some have side effects, e.g. taking a lock) rather than moving into match guards.
#![allow(clippy::collapsible_match)]
use std::collections::BTreeMap;

use crate::ha::env::Env;

/// Seconds a node must have been offline before its services are fenced.
pub const FENCE_DELAY: i64 = 60;

#[derive(Debug, Clone, Default)]
pub struct NodeStatus {
    pub status: BTreeMap<String, String>,
    last_online: BTreeMap<String, i64>,
}

impl NodeStatus {
    pub fn new(status: BTreeMap<String, String>) -> NodeStatus {
        NodeStatus { status, last_online: BTreeMap::new() }
    }

    pub fn state(&self, node: &str) -> &str {
        self.status.get(node).map(String::as_str).unwrap_or("unknown")
    }

    pub fn is_online(&self, node: &str) -> bool {
        self.state(node) == "online"
    }

    pub fn is_operational(&self, node: &str) -> bool {
        self.is_online(node) || self.state(node) == "maintenance"
    }

    /// Offline for at least `delay` seconds (the first call only starts the clock).
    pub fn offline_delayed(&mut self, env: &dyn Env, node: &str, delay: i64) -> bool {
        if self.state(node) == "online" {
            return false;
        }
        let now = env.time();
        match self.last_online.get(node) {
            None => {
                self.last_online.insert(node.to_string(), now);
                false
            }
            Some(t) => now - t >= delay,
        }
    }

    pub fn list_nodes(&self) -> Vec<String> {
        self.status.keys().cloned().collect()
    }

    pub fn online_nodes(&self) -> Vec<String> {
        self.status.iter().filter(|(_, s)| *s == "online").map(|(n, _)| n.clone()).collect()
    }

    pub fn changed_nodelist(&self, info: &BTreeMap<String, bool>) -> bool {
        info.keys().any(|n| !self.status.contains_key(n)) || self.status.keys().any(|n| !info.contains_key(n))
    }

    fn set(&mut self, env: &mut dyn Env, node: &str, state: &str) {
        let last = self.state(node).to_string();
        if last == state {
            return;
        }
        self.status.insert(node.to_string(), state.to_string());
        env.log("info", &format!("node '{node}': state changed from '{last}' => '{state}'"));
    }

    pub fn update(&mut self, env: &mut dyn Env, info: &BTreeMap<String, bool>, lrm_modes: &BTreeMap<String, String>) {
        for (node, online) in info {
            if !online {
                continue;
            }
            let mode = lrm_modes.get(node).map(String::as_str).unwrap_or("unknown");
            self.last_online.insert(node.clone(), env.time());
            match self.state(node) {
                "online" => {
                    if mode == "maintenance" {
                        self.set(env, node, "maintenance");
                    }
                }
                "unknown" | "gone" => self.set(env, node, "online"),
                "maintenance" => {
                    if mode != "maintenance" {
                        self.set(env, node, "online");
                    }
                }
                _ => {}
            }
        }
        for node in self.list_nodes() {
            let known = info.get(&node);
            if known == Some(&true) {
                continue;
            }
            match self.state(&node).to_string().as_str() {
                "online" => self.set(env, &node, "unknown"),
                "maintenance" => {
                    if lrm_modes.get(&node).map(String::as_str).unwrap_or("unknown") != "maintenance" {
                        self.set(env, &node, "unknown");
                    }
                }
                "unknown" => {
                    if known.is_none() {
                        self.set(env, &node, "gone");
                    }
                }
                "gone" => {
                    if self.offline_delayed(env, &node, 3600) {
                        self.last_online.remove(&node);
                        self.status.remove(&node);
                        env.log("notice", &format!("deleting gone node '{node}', not a cluster member anymore."));
                    }
                }
                _ => {}
            }
        }
    }

    /// Mark `node` for fencing (mailing FENCE once) and try to confirm it.
    pub fn fence_node(&mut self, env: &mut dyn Env, node: &str) -> bool {
        if self.state(node) != "fence" {
            self.set(env, node, "fence");
            env.notify("FENCE", &format!("Try to fence node '{node}'"));
        }
        let ok = env.fence_node(node);
        if ok {
            let msg = format!("fencing: acknowledged - got agent lock for node '{node}'");
            env.log("info", &msg);
            self.set(env, node, "unknown");
            env.notify("SUCCEED", &msg);
        }
        ok
    }
}
