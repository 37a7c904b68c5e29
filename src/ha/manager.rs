//! The cluster resource manager's brain (ha-manager's Manager.pm semantics): one instance runs on
//! the node that holds the manager lock, reads the LRMs' results and the configuration, moves
//! every service through its states, and fences nodes whose services must be recovered.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ha::env::{exit, Env};
use crate::ha::model::{Group, RequestState, Rule, ServiceConf};
use crate::ha::node_status::{NodeStatus, FENCE_DELAY};
use crate::ha::placement::{self, Compiled, Preference, Usage};
use crate::ha::state::{Disarm, LrmResult, ManagerStatus, ServiceStatus};

static UID: AtomicU64 = AtomicU64::new(0);

/// A fresh id for a service state: the LRM reports its result under it.
pub fn new_uid(state: &str) -> String {
    format!("{}-{}", state, UID.fetch_add(1, Ordering::Relaxed) + 1)
}

const HA_RULES_MINVERSION: &str = "9.0.0~16";

pub struct Manager {
    pub ns: NodeStatus,
    pub ss: BTreeMap<String, ServiceStatus>,
    master_node: String,
    node_request: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    disarm: Option<Disarm>,
    compiled: Option<Compiled>,
    last_rules: Option<Vec<Rule>>,
    last_groups: Option<BTreeMap<String, Group>>,
    usage: Usage,
    group_migration_round: i32,
    all_lrms_disarmed: bool,
}

/// Services that count as active on `node` (its LRM holds its lock while there are any): placed
/// or targeted there, and not stopped, frozen, in error or only requested to start.
pub fn count_active_services(ss: &BTreeMap<String, ServiceStatus>, node: &str) -> usize {
    ss.values()
        .filter(|sd| sd.node.as_deref() == Some(node) || sd.target.as_deref() == Some(node))
        .filter(|sd| !matches!(sd.state.as_str(), "stopped" | "freeze" | "error" | "request_start"))
        .count()
}

/// Services of `node` in state `fence`.
pub fn count_fenced(ss: &BTreeMap<String, ServiceStatus>, node: &str) -> usize {
    ss.values().filter(|sd| sd.node.as_deref() == Some(node) && sd.state == "fence").count()
}


/// `9.0.0~16`-style version comparison of pve-manager.
pub fn has_min_version(v: &str, min: &str) -> bool {
    let parts = |s: &str| -> Option<(u64, u64, u64, Option<u64>)> {
        let re = regex::Regex::new(r"^(\d+)\.(\d+)(?:\.|-)(\d+)(?:~(\d+))?").ok()?;
        let c = re.captures(s)?;
        Some((c[1].parse().ok()?, c[2].parse().ok()?, c[3].parse().ok()?, c.get(4).and_then(|m| m.as_str().parse().ok())))
    };
    let (Some(a), Some(b)) = (parts(v), parts(min)) else { return false };
    if a.0 != b.0 {
        return a.0 > b.0;
    }
    if a.1 != b.1 {
        return a.1 > b.1;
    }
    if a.2 != b.2 {
        return a.2 > b.2;
    }
    match a.3 {
        Some(r) => r >= b.3.unwrap_or(0),
        None => true,
    }
}

impl Manager {
    pub fn new(env: &mut dyn Env) -> Manager {
        let old = env.read_manager_status().unwrap_or_default();
        Manager {
            ns: NodeStatus::new(old.node_status.clone()),
            ss: old.service_status.clone(),
            master_node: env.nodename(),
            node_request: old.node_request.clone(),
            disarm: old.disarm.clone(),
            compiled: None,
            last_rules: None,
            last_groups: None,
            usage: Usage::default(),
            group_migration_round: 3,
            all_lrms_disarmed: false,
        }
    }

    pub fn is_fully_disarmed(&self) -> bool {
        self.all_lrms_disarmed
    }

    fn status(&self, env: &dyn Env) -> ManagerStatus {
        ManagerStatus {
            master_node: Some(self.master_node.clone()),
            node_status: self.ns.status.clone(),
            service_status: self.ss.clone(),
            node_request: self.node_request.clone(),
            disarm: self.disarm.clone(),
            timestamp: Some(env.time()),
        }
    }

    fn flush(&self, env: &mut dyn Env) -> Result<(), String> {
        let ms = self.status(env);
        env.write_manager_status(&ms)
    }

    fn change_state(&mut self, env: &mut dyn Env, sid: &str, new: &str, params: &[(&str, String)]) {
        let sd = self.ss.get_mut(sid).expect("service in status");
        let old = std::mem::take(&mut sd.state);
        let keep = ServiceStatus { node: sd.node.take(), failed_nodes: sd.failed_nodes.take(), maintenance_node: sd.maintenance_node.take(), ..Default::default() };
        *sd = keep;
        sd.state = new.to_string();
        let mut text = Vec::new();
        for (k, v) in params {
            text.push(format!("{k} = {v}"));
            match *k {
                "node" => sd.node = Some(v.clone()),
                "target" => sd.target = Some(v.clone()),
                "timeout" => sd.timeout = Some(v.clone()),
                _ => {}
            }
        }
        self.usage.remove_service_usage(sid);
        let snapshot = sd.clone();
        self.usage.add_service_usage(sid, &snapshot);
        self.ss.get_mut(sid).unwrap().uid = Some(new_uid(new));
        let text = if text.is_empty() { String::new() } else { format!("  ({})", text.join(", ")) };
        env.log("info", &format!("service '{sid}': state changed from '{old}' to '{new}'{text}"));
    }

    fn read_lrm_status(&self, env: &dyn Env) -> (BTreeMap<String, LrmResult>, BTreeMap<String, String>) {
        let mut results = BTreeMap::new();
        let mut modes = BTreeMap::new();
        for node in self.ns.list_nodes() {
            let st = env.read_lrm_status(&node).unwrap_or_default();
            modes.insert(node.clone(), if st.mode.is_empty() { "active".to_string() } else { st.mode.clone() });
            for (uid, r) in st.results {
                results.entry(uid).or_insert(r);
            }
        }
        (results, modes)
    }

    fn recompute_usage(&mut self, sc: &BTreeMap<String, ServiceConf>) {
        let mut u = Usage::new(&self.ns.online_nodes());
        for (sid, sd) in &self.ss {
            u.add_service_usage(sid, sd);
        }
        for (sid, cd) in sc {
            if self.ss.contains_key(sid) {
                continue;
            }
            let sd = ServiceStatus { state: cd.state.as_str().to_string(), node: Some(cd.node.clone()), ..Default::default() };
            u.add_service_usage(sid, &sd);
        }
        self.usage = u;
    }

    fn queue_motion(&mut self, env: &mut dyn Env, cmd: &str, task: &str, sid: &str, target: &str) {
        let compiled = self.compiled.clone().unwrap_or_default();
        for cs in compiled.negative.get(sid).into_iter().flatten() {
            let Some(c) = self.ss.get(cs) else { continue };
            if c.state == "ignored" {
                continue;
            }
            if c.node.as_deref().is_some_and(|n| n != target) {
                continue;
            }
            if c.target.as_deref().is_some_and(|n| n != target) {
                continue;
            }
            env.log("err", &format!("crm command '{cmd}' error - service '{cs}' on node '{target}' in negative affinity with service '{sid}'"));
            return;
        }
        env.log("info", &format!("got crm command: {cmd}"));
        self.ss.get_mut(sid).unwrap().cmd = Some(vec![task.to_string(), target.to_string()]);
        let mut along = Vec::new();
        for cs in compiled.positive.get(sid).into_iter().flatten() {
            let Some(c) = self.ss.get(cs) else { continue };
            if c.state == "ignored" || c.node.as_deref() == Some(target) || c.target.as_deref() == Some(target) {
                continue;
            }
            along.push(cs.clone());
        }
        for cs in along {
            env.log("info", &format!("crm command '{cmd}' - {task} service '{cs}' to node '{target}' (service '{cs}' in positive affinity with service '{sid}')"));
            self.ss.get_mut(&cs).unwrap().cmd = Some(vec![task.to_string(), target.to_string()]);
        }
    }

    fn update_crm_commands(&mut self, env: &mut dyn Env) {
        let Ok(list) = env.read_crm_commands() else { return };
        for cmd in list.lines() {
            let w: Vec<&str> = cmd.split_whitespace().collect();
            match w.as_slice() {
                [task @ ("migrate" | "relocate"), sid, node] => {
                    let Some(sd) = self.ss.get(*sid) else {
                        env.log("err", &format!("crm command error - no such service: {cmd}"));
                        continue;
                    };
                    if !self.ns.is_online(node) {
                        env.log("err", &format!("crm command error - node not online: {cmd}"));
                    } else if sd.node.as_deref() == Some(*node) {
                        env.log("info", &format!("ignore crm command - service already on target node: {cmd}"));
                    } else {
                        self.queue_motion(env, cmd, task, sid, node);
                    }
                }
                ["stop", sid, timeout] => {
                    if let Some(sd) = self.ss.get_mut(*sid) {
                        env.log("info", &format!("got crm command: {cmd}"));
                        sd.cmd = Some(vec!["stop".into(), timeout.to_string()]);
                    } else {
                        env.log("err", &format!("crm command error - no such service: {cmd}"));
                    }
                }
                ["enable-node-maintenance", node] => {
                    let state = self.ns.state(node).to_string();
                    if self.disarm.is_some() {
                        env.log("warn", &format!("ignoring maintenance command for node {node} - HA stack is disarmed"));
                    } else if state == "online" {
                        self.node_request.entry(node.to_string()).or_default().insert("maintenance".into(), serde_json::json!(1));
                    } else if state == "maintenance" {
                        env.log("info", &format!("ignoring crm command - node {node} is already in maintenance state"));
                    } else {
                        env.log("err", &format!("crm command error - node not online: {cmd}"));
                    }
                }
                ["disable-node-maintenance", node] => {
                    let state = self.ns.state(node).to_string();
                    if state != "maintenance" {
                        env.log("warn", &format!("clearing maintenance of node {node} requested, but it's in state {state}"));
                    }
                    if let Some(r) = self.node_request.get_mut(*node) {
                        r.remove("maintenance");
                    }
                }
                ["disarm-ha", mode @ ("freeze" | "ignore")] => {
                    if let Some(d) = &self.disarm {
                        env.log("notice", &format!("ignoring disarm-ha command - already in disarm state ({})", d.state));
                    } else {
                        env.log("info", &format!("got crm command: disarm-ha {mode}"));
                        if *mode == "ignore" {
                            for sid in self.ss.keys() {
                                env.log("info", &format!("disarm: suspending HA tracking for service '{sid}'"));
                            }
                        }
                        self.disarm = Some(Disarm { mode: mode.to_string(), state: "disarming".into() });
                    }
                }
                ["arm-ha"] => {
                    if let Some(d) = self.disarm.clone() {
                        env.log("info", "got crm command: arm-ha");
                        if d.mode == "ignore" {
                            let sc = env.read_service_config().unwrap_or_default();
                            for (sid, sd) in self.ss.iter_mut() {
                                let Some(cd) = sc.get(sid) else { continue };
                                if sd.node.as_deref() == Some(cd.node.as_str()) {
                                    continue;
                                }
                                env.log("info", &format!("service '{sid}': updating node '{}' => '{}' (changed while disarmed)", sd.node.clone().unwrap_or_default(), cd.node));
                                sd.node = Some(cd.node.clone());
                            }
                        }
                        self.disarm = None;
                    } else {
                        env.log("notice", "ignoring arm-ha command - HA stack is not disarmed");
                    }
                }
                _ => env.log("err", &format!("unable to parse crm command: {cmd}")),
            }
        }
    }

    fn try_group_migration(&mut self, env: &mut dyn Env) {
        let groups = env.read_groups().unwrap_or_default();
        if groups.is_empty() {
            return;
        }
        self.group_migration_round -= 1;
        if self.group_migration_round > 0 {
            return;
        }
        self.group_migration_round = 6;
        env.log("notice", "start ha group migration...");
        match self.migrate_groups(env, &groups) {
            Ok(()) => env.log("notice", "ha groups migration successful"),
            Err(e) => {
                env.log("err", &format!("abort ha groups migration: {e}"));
                env.log("err", "ha groups migration failed");
                env.log("notice", "retry ha groups migration in 6 rounds (~ 60 seconds)");
            }
        }
    }

    fn migrate_groups(&mut self, env: &mut dyn Env, groups: &BTreeMap<String, Group>) -> Result<(), String> {
        if !env.quorate() {
            return Err("cluster is not quorate".into());
        }
        let nodes = self.ns.list_nodes();
        if nodes.is_empty() {
            return Err("node list is empty".into());
        }
        for node in &nodes {
            let state = self.ns.state(node).to_string();
            env.log("notice", &format!("ha groups migration: node '{node}' is in state '{state}'"));
            if state != "online" {
                return Err(format!("node '{node}' is not online"));
            }
            let lrm = env.read_lrm_status(node).unwrap_or_default();
            if lrm.state.is_empty() || lrm.mode.is_empty() {
                return Err(format!("could not retrieve state for lrm '{node}'"));
            }
            env.log("notice", &format!("ha groups migration: lrm '{node}' is in state '{}' and mode '{}'", lrm.state, lrm.mode));
            let active = count_active_services(&self.ss, node);
            if !(lrm.state == "active" || (lrm.state == "wait_for_agent_lock" && active == 0)) {
                return Err(format!("lrm '{node}' is not in state 'active' or 'idle'"));
            }
            if lrm.mode != "active" {
                return Err(format!("lrm '{node}' is not in mode 'active'"));
            }
            let v = env.node_version(node).ok_or_else(|| format!("could not retrieve version from node '{node}'"))?;
            env.log("notice", &format!("ha groups migration: node '{node}' has version '{v}'"));
            if !has_min_version(&v, HA_RULES_MINVERSION) {
                return Err(format!("node '{node}' needs at least pve-manager version '{HA_RULES_MINVERSION}'"));
            }
        }
        let services = env.read_service_config()?;
        let mut rules = env.read_rules()?;
        placement::groups_to_rules(&mut rules, groups, &services);
        env.migrate_groups(rules)?;
        env.log("notice", "ha groups migration: migration to rules config successful");
        env.log("notice", "ha groups migration: migration to resources config successful");
        env.log("notice", "ha groups migration: group config deletion successful");
        Ok(())
    }

    /// One round of the manager. Errors are what ha-manager would `die` with; the CRM logs them.
    pub fn manage(&mut self, env: &mut dyn Env) -> Result<(), String> {
        let (info, _) = env.node_info();
        let changed = self.ns.changed_nodelist(&info);
        let (results, modes) = self.read_lrm_status(env);
        self.ns.update(env, &info, &modes);
        if !self.ns.is_operational(&env.nodename()) {
            env.log("info", "master seems offline");
            return Ok(());
        }
        self.try_group_migration(env);
        let mut sc = env.read_service_config()?;
        let groups = env.read_groups()?;
        if self.disarm.is_none() {
            for (sid, cd) in &sc {
                if self.ss.contains_key(sid) || cd.state == RequestState::Ignored {
                    continue;
                }
                env.log("info", &format!("adding new service '{sid}' on node '{}'", cd.node));
                let state = if cd.state == RequestState::Started { "request_start" } else { "request_stop" };
                self.ss.insert(sid.clone(), ServiceStatus { state: state.into(), node: Some(cd.node.clone()), uid: Some(new_uid("started")), ..Default::default() });
            }
            let stale: Vec<String> = self.ss.keys().filter(|sid| sc.get(*sid).is_none_or(|c| c.state == RequestState::Ignored)).cloned().collect();
            for sid in stale {
                let reason = if sc.contains_key(&sid) { "ignored state requested" } else { "no config" };
                env.log("info", &format!("removing stale service '{sid}' ({reason})"));
                self.ss.remove(&sid);
            }
        }
        self.recompute_usage(&sc);
        let mut rules = env.read_rules()?;
        placement::apply_group_failback(&groups, &mut sc);
        if self.compiled.is_none() || changed || self.last_rules.as_ref() != Some(&rules) || self.last_groups.as_ref() != Some(&groups) {
            self.last_rules = Some(rules.clone());
            self.last_groups = Some(groups.clone());
            placement::groups_to_rules(&mut rules, &groups, &sc);
            let (compiled, messages) = placement::transform_and_compile(&rules, &self.ns.list_nodes());
            for m in messages {
                env.log("info", &m);
            }
            self.compiled = Some(compiled);
        }
        self.update_crm_commands(env);

        let mut deferred: Option<BTreeSet<String>> = None;
        if let Some(d) = self.disarm.clone() {
            match self.handle_disarm(env, d, &modes) {
                None => return Ok(()),
                Some(set) => deferred = Some(set),
            }
        }
        self.all_lrms_disarmed = false;

        loop {
            let mut repeat = false;
            let sids: Vec<String> = self.ss.keys().cloned().collect();
            for sid in &sids {
                if deferred.as_ref().is_some_and(|d| !d.contains(sid)) {
                    continue;
                }
                let cd = sc.get(sid).cloned().unwrap_or_else(|| ServiceConf::new(sid, "", RequestState::Disabled));
                let Some(sd) = self.ss.get(sid) else { continue };
                let lrm_res = sd.uid.as_ref().and_then(|u| results.get(u)).cloned();
                let last = sd.state.clone();
                match last.as_str() {
                    "stopped" => self.next_stopped(env, sid, &cd),
                    "started" => self.next_started(env, sid, &cd, lrm_res.as_ref()),
                    "request_start" => self.next_request_start(env, sid),
                    "migrate" | "relocate" | "request_start_balance" => self.next_migrate_relocate(env, sid, &cd, lrm_res.as_ref()),
                    "fence" => {}
                    "recovery" => self.next_recovery(env, sid, &mut sc),
                    "request_stop" => self.next_request_stop(env, sid, lrm_res.as_ref()),
                    "freeze" => {
                        let node = self.ss[sid].node.clone();
                        if node.and_then(|n| modes.get(&n).cloned()).as_deref() == Some("active") {
                            let st = if cd.state == RequestState::Started { "started" } else { "request_stop" };
                            self.change_state(env, sid, st, &[]);
                        }
                    }
                    "error" => {
                        if cd.state == RequestState::Disabled {
                            self.ss.get_mut(sid).unwrap().failed_nodes = None;
                            self.change_state(env, sid, "stopped", &[]);
                        }
                    }
                    other => env.log("err", &format!("unknown service state '{other}' of '{sid}'")),
                }
                let sd = &self.ss[sid];
                let mode = sd.node.as_ref().and_then(|n| modes.get(n)).cloned();
                if mode.as_deref() == Some("restart") && matches!(sd.state.as_str(), "started" | "stopped" | "request_stop") {
                    self.change_state(env, sid, "freeze", &[]);
                }
                if self.ss[sid].state != last {
                    repeat = true;
                }
            }
            let mut fenced: BTreeMap<String, bool> = BTreeMap::new();
            for sid in &sids {
                let Some(sd) = self.ss.get(sid) else { continue };
                if sd.state != "fence" {
                    continue;
                }
                let node = sd.node.clone().unwrap_or_default();
                if !fenced.contains_key(&node) {
                    let ok = self.ns.fence_node(env, &node);
                    fenced.insert(node.clone(), ok);
                }
                if !fenced[&node] {
                    continue;
                }
                self.change_state(env, sid, "recovery", &[]);
                repeat = true;
            }
            for node in self.ns.list_nodes() {
                if fenced.contains_key(&node) || self.ns.state(&node) != "fence" {
                    continue;
                }
                env.log("notice", &format!("node '{node}' in fence state but no services to-fence! admin interference?!"));
                if self.ns.fence_node(env, &node) {
                    repeat = true;
                }
            }
            if !repeat {
                break;
            }
        }
        self.flush(env)
    }

    /// None: disarm is progressing, skip the service state machine this round. Some(set): only
    /// these services (in fence/recovery/migrate/relocate) still run through it.
    fn handle_disarm(&mut self, env: &mut dyn Env, mut d: Disarm, modes: &BTreeMap<String, String>) -> Option<BTreeSet<String>> {
        if d.mode != "freeze" && d.mode != "ignore" {
            env.log("err", &format!("unknown disarm-mode '{}', ignoring", d.mode));
            return None;
        }
        let mut deferred = BTreeSet::new();
        for (sid, sd) in &self.ss {
            match sd.state.as_str() {
                st @ ("fence" | "recovery") => {
                    env.log("warn", &format!("deferring disarm - service '{sid}' is in '{st}' state"));
                    deferred.insert(sid.clone());
                }
                st @ ("migrate" | "relocate") => {
                    env.log("info", &format!("deferring disarm - service '{sid}' is in '{st}' state"));
                    deferred.insert(sid.clone());
                }
                _ => {}
            }
        }
        if !deferred.is_empty() {
            return Some(deferred);
        }
        let strip = |sd: &mut ServiceStatus| {
            *sd = ServiceStatus { state: std::mem::take(&mut sd.state), node: sd.node.take(), uid: sd.uid.take(), maintenance_node: sd.maintenance_node.take(), ..Default::default() };
        };
        if d.mode == "freeze" {
            for (sid, sd) in self.ss.iter_mut() {
                let st = sd.state.clone();
                if st == "freeze" {
                    continue;
                }
                if matches!(st.as_str(), "started" | "stopped" | "request_stop" | "request_start" | "request_start_balance") {
                    env.log("info", &format!("disarm: freezing service '{sid}' (was '{st}')"));
                    strip(sd);
                    sd.state = "freeze".into();
                    sd.uid = Some(new_uid("freeze"));
                }
            }
        } else {
            for sd in self.ss.values_mut() {
                strip(sd);
            }
        }
        let all = self.ns.online_nodes().iter().all(|n| modes.get(n).map(String::as_str) == Some("disarm"));
        if all && d.state != "disarmed" {
            env.log("info", "all LRMs disarmed, HA stack is now fully disarmed");
            d.state = "disarmed".into();
        }
        self.all_lrms_disarmed = d.state == "disarmed";
        self.disarm = Some(d);
        let _ = self.flush(env);
        None
    }

    fn offline_delayed(&mut self, env: &dyn Env, node: &str) -> bool {
        self.ns.offline_delayed(env, node, FENCE_DELAY)
    }

    fn node_of(&self, sid: &str) -> String {
        self.ss[sid].node.clone().unwrap_or_default()
    }

    fn next_request_stop(&mut self, env: &mut dyn Env, sid: &str, res: Option<&LrmResult>) {
        if let Some(r) = res {
            if r.exit_code == exit::SUCCESS {
                self.change_state(env, sid, "stopped", &[]);
            } else {
                env.log("err", &format!("service '{sid}' stop failed (exit code {})", r.exit_code));
                self.change_state(env, sid, "error", &[]);
            }
            return;
        }
        let node = self.node_of(sid);
        if self.offline_delayed(env, &node) {
            self.change_state(env, sid, "fence", &[]);
        }
    }

    fn next_migrate_relocate(&mut self, env: &mut dyn Env, sid: &str, cd: &ServiceConf, res: Option<&LrmResult>) {
        let node = self.node_of(sid);
        if let Some(r) = res {
            let req = if cd.state == RequestState::Started { "started" } else { "request_stop" };
            match r.exit_code {
                exit::SUCCESS => {
                    let target = self.ss[sid].target.clone().unwrap_or_default();
                    self.change_state(env, sid, req, &[("node", target)]);
                    return;
                }
                exit::EWRONG_NODE => {
                    env.log("err", &format!("service '{sid}' - migration failed: service registered on wrong node!"));
                    self.change_state(env, sid, "error", &[]);
                }
                exit::IGNORED => {
                    env.log("info", &format!("service '{sid}' - rebalance-on-start request ignored - service already running"));
                    self.change_state(env, sid, req, &[("node", node.clone())]);
                }
                code => {
                    env.log("err", &format!("service '{sid}' - migration failed (exit code {code})"));
                    self.change_state(env, sid, req, &[("node", node)]);
                    return;
                }
            }
        }
        let node = self.node_of(sid);
        if self.offline_delayed(env, &node) {
            self.change_state(env, sid, "fence", &[]);
        }
    }

    /// The target of a queued migrate/relocate command, or None (said why) when the target is not
    /// online or the service is already there.
    fn motion_target(&self, env: &mut dyn Env, sid: &str, task: &str, cmd: &[String], node: &str) -> Option<String> {
        let target = cmd.get(1).cloned().unwrap_or_default();
        if !self.ns.is_online(&target) {
            env.log("err", &format!("ignore service '{sid}' {task} request - node '{target}' not online"));
            None
        } else if node == target {
            env.log("info", &format!("ignore service '{sid}' {task} request - service already on node '{target}'"));
            None
        } else {
            Some(target)
        }
    }

    fn next_stopped(&mut self, env: &mut dyn Env, sid: &str, cd: &ServiceConf) {
        let node = self.node_of(sid);
        if !cd.node.is_empty() && node != cd.node {
            env.log("info", &format!("fixup service '{sid}' location ({node} => {})", cd.node));
            self.ss.get_mut(sid).unwrap().node = Some(cd.node.clone());
        }
        let node = self.node_of(sid);
        if let Some(cmd) = self.ss.get_mut(sid).unwrap().cmd.take() {
            match cmd.first().map(String::as_str) {
                Some(task @ ("migrate" | "relocate")) => {
                    if let Some(target) = self.motion_target(env, sid, task, &cmd, &node) {
                        let task = task.to_string();
                        self.change_state(env, sid, &task, &[("node", node), ("target", target)]);
                        return;
                    }
                }
                Some("stop") => env.log("info", &format!("ignore service '{sid}' stop request - service already stopped")),
                other => env.log("err", &format!("unknown command '{}' for service '{sid}'", other.unwrap_or(""))),
            }
        }
        if cd.state == RequestState::Disabled {
            return;
        }
        if self.offline_delayed(env, &node) && self.ns.state(&node) != "maintenance" {
            self.change_state(env, sid, "fence", &[]);
            return;
        }
        match cd.state {
            RequestState::Stopped => {}
            RequestState::Started => self.change_state(env, sid, "request_start", &[("node", node)]),
            other => env.log("err", &format!("service '{sid}' - unknown state '{}' in service configuration", other.as_str())),
        }
    }

    fn next_request_start(&mut self, env: &mut dyn Env, sid: &str) {
        let node = self.node_of(sid);
        self.change_state(env, sid, "started", &[("node", node)]);
    }

    fn next_started(&mut self, env: &mut dyn Env, sid: &str, cd: &ServiceConf, res: Option<&LrmResult>) {
        let node = self.node_of(sid);
        if !self.ns.is_online(&node) {
            if self.offline_delayed(env, &node) {
                self.change_state(env, sid, "fence", &[]);
            }
            if self.ns.state(&node) != "maintenance" {
                return;
            }
            self.ss.get_mut(sid).unwrap().maintenance_node = Some(node.clone());
        }
        if matches!(cd.state, RequestState::Disabled | RequestState::Stopped) {
            self.change_state(env, sid, "request_stop", &[]);
            return;
        }
        if cd.state != RequestState::Started {
            env.log("err", &format!("service '{sid}' - unknown state '{}' in service configuration", cd.state.as_str()));
            return;
        }
        if let Some(cmd) = self.ss.get_mut(sid).unwrap().cmd.take() {
            match cmd.first().map(String::as_str) {
                Some(task @ ("migrate" | "relocate")) => {
                    if let Some(target) = self.motion_target(env, sid, task, &cmd, &node) {
                        env.log("info", &format!("{task} service '{sid}' to node '{target}'"));
                        let task = task.to_string();
                        self.change_state(env, sid, &task, &[("node", node), ("target", target)]);
                    }
                }
                Some("stop") => {
                    let timeout = cmd.get(1).cloned().unwrap_or_default();
                    if timeout.parse::<i64>().unwrap_or(0) == 0 {
                        env.log("info", &format!("request immediate service hard-stop for service '{sid}'"));
                    } else {
                        env.log("info", &format!("request graceful stop with timeout '{timeout}' for service '{sid}'"));
                    }
                    self.change_state(env, sid, "request_stop", &[("timeout", timeout)]);
                    env.set_service_state(sid, "stopped");
                }
                other => env.log("err", &format!("unknown command '{}' for service '{sid}'", other.unwrap_or(""))),
            }
            return;
        }
        let mut pref = Preference::None;
        if let Some(r) = res {
            let ec = r.exit_code;
            if ec == exit::SUCCESS {
                let sd = self.ss.get_mut(sid).unwrap();
                if let Some(f) = &sd.failed_nodes {
                    env.log("info", &format!("relocation policy successful for '{sid}' on node '{node}', failed nodes: {}", f.join(", ")));
                }
                sd.failed_nodes = None;
                sd.running = Some(true);
            } else if ec == exit::ERROR || ec == exit::EWRONG_NODE {
                let sd = self.ss.get_mut(sid).unwrap();
                sd.running = None;
                sd.failed_nodes.get_or_insert_with(Vec::new).push(node.clone());
                let failed = sd.failed_nodes.clone().unwrap();
                if failed.len() as u32 <= cd.max_relocate {
                    pref = Preference::TryNext;
                    env.log("warning", &format!("starting service {sid} on node '{node}' failed, relocating service."));
                } else {
                    env.log("err", &format!("recovery policy for service {sid} failed, entering error state. Failed nodes: {}", failed.join(", ")));
                    self.change_state(env, sid, "error", &[]);
                    return;
                }
            } else {
                self.ss.get_mut(sid).unwrap().failed_nodes.get_or_insert_with(Vec::new).push(node.clone());
                env.log("err", &format!("service '{sid}' got unrecoverable error (exit code {ec})"));
                self.change_state(env, sid, "error", &[]);
                return;
            }
        }
        let compiled = self.compiled.clone().unwrap_or_default();
        let target = placement::select_service_node(&compiled, &self.usage, sid, cd, &self.ss, pref);
        match target {
            Some(t) if t != node => {
                let sd = self.ss.get_mut(sid).unwrap();
                if let Some(fb) = sd.maintenance_node.clone() {
                    if t == fb {
                        env.log("info", &format!("moving service '{sid}' back to '{fb}', node came back from maintenance."));
                        sd.maintenance_node = None;
                    } else if node != fb {
                        env.log("info", &format!("dropping maintenance fallback node '{fb}' for '{sid}'"));
                        sd.maintenance_node = None;
                    }
                }
                if cd.kind == "vm" {
                    env.log("info", &format!("migrate service '{sid}' to node '{t}' (running)"));
                    self.change_state(env, sid, "migrate", &[("node", node), ("target", t)]);
                } else {
                    env.log("info", &format!("relocate service '{sid}' to node '{t}'"));
                    self.change_state(env, sid, "relocate", &[("node", node), ("target", t)]);
                }
            }
            t => {
                if pref == Preference::TryNext && t.is_none() {
                    let failed = self.ss[sid].failed_nodes.clone().unwrap_or_default();
                    env.log("warning", &format!("Start Error Recovery: Tried all available nodes for service '{sid}', retry start on current node. Tried nodes: {}", failed.join(", ")));
                }
                let sd = self.ss.get_mut(sid).unwrap();
                if let Some(m) = sd.maintenance_node.clone() {
                    if m == node && self.ns.state(&node) == "online" {
                        env.log("info", &format!("service '{sid}': clearing stale maintenance node '{m}' setting (is current node)"));
                        sd.maintenance_node = None;
                    }
                }
                if res.is_some() {
                    sd.uid = Some(new_uid(&sd.state));
                }
            }
        }
    }

    fn next_recovery(&mut self, env: &mut dyn Env, sid: &str, sc: &mut BTreeMap<String, ServiceConf>) {
        let cd = sc.get(sid).cloned().unwrap_or_else(|| ServiceConf::new(sid, "", RequestState::Disabled));
        let fenced = self.node_of(sid);
        let compiled = self.compiled.clone().unwrap_or_default();
        let target = placement::select_service_node(&compiled, &self.usage, sid, &cd, &self.ss, Preference::BestScore);
        if let Some(t) = &target {
            if let Some(why) = env.recovery_blocker(sid, t) {
                if !why.is_empty() {
                    env.log("warning", &format!("recovery of service '{sid}' to node '{t}' waits: {why}"));
                }
                return;
            }
        }
        match target {
            Some(t) => {
                if t == fenced {
                    env.log("info", &format!("recover service '{sid}' to previous failed and fenced node '{fenced}' again"));
                } else {
                    env.log("info", &format!("recover service '{sid}' from fenced node '{fenced}' to node '{t}'"));
                }
                let locks = ["backup", "mounted", "migrate", "clone", "rollback", "snapshot", "snapshot-delete", "suspending", "suspended"];
                if let Some(l) = env.resource_remove_locks(sid, &locks) {
                    env.log("warning", &format!("removed leftover lock '{l}' from recovered service '{sid}' to allow its start."));
                }
                if let Err(e) = env.steal_service(sid, &fenced, &t) {
                    env.log("err", &format!("got unexpected error - {e}"));
                    return;
                }
                env.before_recovery(sid, &t);
                if let Some(c) = sc.get_mut(sid) {
                    c.node = t.clone();
                }
                self.ss.get_mut(sid).unwrap().node = Some(t.clone());
                let st = if cd.state == RequestState::Started { "started" } else { "request_stop" };
                self.change_state(env, sid, st, &[("node", t)]);
            }
            None => {
                env.log("err", &format!("recovering service '{sid}' from fenced node '{fenced}' failed, no recovery node found"));
                if cd.state == RequestState::Disabled {
                    self.ss.get_mut(sid).unwrap().failed_nodes = None;
                    self.change_state(env, sid, "stopped", &[]);
                }
            }
        }
    }
}
