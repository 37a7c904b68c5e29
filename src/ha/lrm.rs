//! The local resource manager (ha-manager's LRM.pm): holds this node's agent lock (guarded by a
//! watchdog) while it runs services, executes what the manager asks for each service, retries
//! starts up to `max_restart`, and on shutdown applies the shutdown policy.
// One match arm per state, as ha-manager's state machines are written: a state's checks stay in
// its arm (some have side effects, e.g. taking a lock) rather than moving into match guards.
#![allow(clippy::collapsible_match)]
use std::collections::BTreeMap;

use crate::ha::env::{exit, lock_with_retries, Env};
use crate::ha::manager::{count_active_services, count_fenced};
use crate::ha::model::ShutdownPolicy;
use crate::ha::state::{LrmResult, LrmStatus, ServiceStatus};

const MAX_ACTIVE_IDLE_ROUNDS: u32 = 60;

#[derive(Debug, Clone)]
struct Worker {
    uid: Option<String>,
    state: String,
    target: Option<String>,
    timeout: Option<String>,
    start_tries: u32,
}

pub struct Lrm {
    pub state: String,
    state_change_time: i64,
    pub mode: String,
    workers: BTreeMap<String, Worker>,
    results: BTreeMap<String, LrmResult>,
    restart_tries: BTreeMap<String, u32>,
    shutdown_request: Option<i64>,
    shutdown_errors: u32,
    cluster_state_update: bool,
    active_idle_rounds: u32,
    service_status: BTreeMap<String, ServiceStatus>,
    node_status: String,
    watchdog: Option<String>,
    /// ha-manager writes the LRM status once at startup before anything else; in its simulator
    /// this flag is shared by all LRMs of the process, so the simulator passes it in.
    pub wrote_status_at_startup: bool,
}

impl Lrm {
    pub fn new(env: &mut dyn Env, wrote_status_at_startup: bool) -> Lrm {
        let mut l = Lrm {
            state: "startup".into(),
            state_change_time: 0,
            mode: "active".into(),
            workers: BTreeMap::new(),
            results: BTreeMap::new(),
            restart_tries: BTreeMap::new(),
            shutdown_request: None,
            shutdown_errors: 0,
            cluster_state_update: false,
            active_idle_rounds: 0,
            service_status: BTreeMap::new(),
            node_status: "unknown".into(),
            watchdog: None,
            wrote_status_at_startup,
        };
        l.set_state(env, "wait_for_agent_lock");
        l
    }

    fn set_state(&mut self, env: &mut dyn Env, new: &str) {
        if self.state == new {
            return;
        }
        env.log("info", &format!("status change {} => {new}", self.state));
        self.state = new.to_string();
        self.state_change_time = env.time();
    }

    pub fn shutdown_request(&mut self, env: &mut dyn Env) {
        if self.shutdown_request.is_some() {
            return;
        }
        let (shutdown, reboot) = env.is_node_shutdown();
        let dc = env.datacenter();
        let raw = dc.shutdown_policy.clone().unwrap_or_else(|| "conditional".into());
        if shutdown {
            env.log("info", &format!("got shutdown request with shutdown policy '{raw}'"));
        }
        let policy = match ShutdownPolicy::parse(&raw) {
            Some(p) => p,
            None => {
                env.log("err", &format!("unknown shutdown policy '{raw}', fall back to conditional"));
                ShutdownPolicy::Conditional
            }
        };
        let (freeze_all, maintenance) = match policy {
            ShutdownPolicy::Conditional => (reboot, false),
            ShutdownPolicy::Freeze => (true, false),
            ShutdownPolicy::Failover => (false, false),
            ShutdownPolicy::Migrate => (false, true),
        };
        let me = env.nodename();
        if !maintenance && shutdown {
            let sids: Vec<String> = self.service_status.iter().filter(|(_, sd)| sd.node.as_deref() == Some(me.as_str())).map(|(s, _)| s.clone()).collect();
            for sid in sids {
                self.queue(&sid, None, "request_stop", None, None);
            }
        }
        if shutdown {
            let kind = if reboot { "reboot" } else { "shutdown" };
            if self.mode == "maintenance" {
                if maintenance {
                    env.log("info", &format!("{kind} LRM, ignore maintenance policy, already in maintenance mode"));
                } else {
                    env.log("info", &format!("{kind} LRM, ignore {raw} policy as manual maintenance mode is enabled"));
                }
            } else if maintenance {
                env.log("info", &format!("{kind} LRM, doing maintenance, removing this node from active list"));
                self.mode = "maintenance".into();
            } else if freeze_all {
                env.log("info", &format!("{kind} LRM, stop and freeze all services"));
                self.mode = "restart".into();
            } else {
                env.log("info", "shutdown LRM, stop all services");
                self.mode = "shutdown".into();
            }
        } else if self.mode == "maintenance" {
            env.log("\n\t    info", "Restarting LRM in maintenance mode may be delayed until all services are moved");
        } else {
            env.log("info", "restart LRM, freeze all services");
            self.mode = "restart".into();
        }
        self.shutdown_request = Some(env.time());
        if !self.update_lrm_status(env) {
            env.log("err", "unable to update lrm status file - not quorate?");
        }
    }

    fn update_lrm_status(&mut self, env: &mut dyn Env) -> bool {
        if !env.quorate() {
            return false;
        }
        let st = LrmStatus { state: self.state.clone(), mode: self.mode.clone(), results: self.results.clone(), timestamp: env.time() };
        if let Err(e) = env.write_lrm_status(&st) {
            env.log("err", &format!("unable to write lrm status file - {e}"));
            return false;
        }
        true
    }

    fn update_service_status(&mut self, env: &mut dyn Env) -> bool {
        match env.read_manager_status() {
            Err(e) => {
                env.log("err", &format!("updating service status from manager failed: {e}"));
                false
            }
            Ok(ms) => {
                let me = env.nodename();
                self.service_status = ms.service_status.clone();
                self.node_status = ms.node_status.get(&me).cloned().unwrap_or_else(|| "unknown".into());
                if self.shutdown_request.is_none() {
                    if ms.maintenance_requested(&me) {
                        self.mode = "maintenance".into();
                    } else if ms.disarm.is_some() {
                        self.mode = "disarm".into();
                    } else if self.mode == "maintenance" || self.mode == "disarm" {
                        self.mode = "active".into();
                    }
                }
                true
            }
        }
    }

    /// This node's agent lock, with the watchdog armed (or renewed) while it is held.
    fn protected_lock(&mut self, env: &mut dyn Env) -> bool {
        if !lock_with_retries(env, |e| e.get_ha_agent_lock(None)) {
            return false;
        }
        match &self.watchdog {
            Some(w) => {
                let _ = env.watchdog_update(w);
            }
            None => self.watchdog = Some(env.watchdog_open()),
        }
        true
    }

    fn give_up_watchdog(&mut self, env: &mut dyn Env) {
        if let Some(w) = self.watchdog.take() {
            let _ = env.watchdog_close(&w);
        }
    }

    fn has_configured_service_here(&self, me: &str) -> bool {
        self.service_status.values().any(|sd| sd.node.as_deref() == Some(me))
    }

    fn fence_requested(&self, me: &str) -> bool {
        count_fenced(&self.service_status, me) > 0 || self.node_status == "fence"
    }

    fn active_count(&self, me: &str) -> usize {
        count_active_services(&self.service_status, me)
    }

    /// One loop iteration; false when the LRM exits.
    pub fn work(&mut self, env: &mut dyn Env) -> bool {
        self.cluster_state_update = env.cluster_state_update();
        if !self.wrote_status_at_startup {
            if self.update_lrm_status(env) {
                self.wrote_status_at_startup = true;
            } else {
                env.sleep(5);
                return self.shutdown_request.is_none();
            }
        }
        let me = env.nodename();
        self.update_service_status(env);
        let fence = self.fence_requested(&me);
        match self.state.clone().as_str() {
            "wait_for_agent_lock" => {
                if self.mode == "disarm" {
                } else if !fence && self.active_count(&me) > 0 && env.quorate() && self.protected_lock(env) {
                    self.set_state(env, "active");
                }
            }
            "lost_agent_lock" => {
                if !fence && env.quorate() && self.protected_lock(env) {
                    self.set_state(env, "active");
                }
            }
            "active" => {
                if fence {
                    env.log("err", "node needs to be fenced - releasing agent_lock");
                    self.set_state(env, "lost_agent_lock");
                } else if !self.protected_lock(env) {
                    self.set_state(env, "lost_agent_lock");
                } else if self.mode == "maintenance" {
                    self.set_state(env, "maintenance");
                } else if self.mode == "disarm" && self.run_workers(env) == 0 {
                    env.log("info", "HA disarm requested, releasing agent lock and watchdog");
                    env.release_ha_agent_lock();
                    self.give_up_watchdog(env);
                    self.set_state(env, "wait_for_agent_lock");
                } else if !self.has_configured_service_here(&me) && self.run_workers(env) == 0 {
                    self.active_idle_rounds += 1;
                    if self.active_idle_rounds > MAX_ACTIVE_IDLE_ROUNDS {
                        env.log("info", &format!("node had no service configured for {MAX_ACTIVE_IDLE_ROUNDS} rounds, going idle."));
                        env.release_ha_agent_lock();
                        self.give_up_watchdog(env);
                        self.set_state(env, "wait_for_agent_lock");
                        self.active_idle_rounds = 0;
                    }
                } else if self.active_idle_rounds > 0 {
                    self.active_idle_rounds = 0;
                }
            }
            "maintenance" => {
                if fence {
                    env.log("err", "node needs to be fenced during maintenance mode - releasing agent_lock");
                    self.set_state(env, "lost_agent_lock");
                } else if self.mode == "disarm" && self.active_count(&me) == 0 && self.run_workers(env) == 0 {
                    env.log("info", "HA disarm requested during maintenance, releasing agent lock and watchdog");
                    env.release_ha_agent_lock();
                    self.give_up_watchdog(env);
                    self.set_state(env, "wait_for_agent_lock");
                } else if self.active_count(&me) > 0 || self.run_workers(env) > 0 {
                    if !self.protected_lock(env) {
                        self.set_state(env, "lost_agent_lock");
                    }
                } else if self.mode != "maintenance" {
                    if self.protected_lock(env) {
                        self.set_state(env, "active");
                    } else {
                        self.set_state(env, "lost_agent_lock");
                    }
                }
            }
            _ => {}
        }
        match self.state.clone().as_str() {
            "wait_for_agent_lock" => {
                if self.shutdown_request.is_some() {
                    return false;
                }
                self.update_lrm_status(env);
                env.sleep(5);
            }
            "active" => {
                let start = env.time();
                let mut shutdown = false;
                if self.update_service_status(env) {
                    if self.shutdown_request.is_some() {
                        if self.mode == "restart" {
                            let workers = self.run_workers(env);
                            if self.active_count(&me) == 0 && workers == 0 {
                                self.give_up_watchdog(env);
                                shutdown = true;
                                env.release_ha_agent_lock();
                            }
                        } else if self.run_workers(env) == 0 {
                            if self.shutdown_errors == 0 {
                                self.give_up_watchdog(env);
                                env.release_ha_agent_lock();
                            }
                            shutdown = true;
                        }
                    } else if !self.cluster_state_update {
                        env.log("notice", "temporary inconsistent cluster state (cfs restart?), skip round");
                    } else {
                        self.manage_resources(env);
                    }
                }
                self.update_lrm_status(env);
                if shutdown {
                    return false;
                }
                env.sleep_until(start + 10);
            }
            "lost_agent_lock" => {
                if self.shutdown_request.is_some() {
                    let n = self.active_count(&me);
                    if n > 0 {
                        env.log("err", &format!("got shutdown request in state 'lost_agent_lock' - detected {n} running services"));
                        if self.mode == "restart" && env.time() - self.state_change_time > 90 {
                            env.log("err", "lost agent lock and restart request for over 90 seconds - giving up!");
                            return false;
                        }
                    } else {
                        self.give_up_watchdog(env);
                        return false;
                    }
                }
                env.sleep(5);
            }
            "maintenance" => {
                let start = env.time();
                if !self.update_service_status(env) {
                    return true;
                }
                let mut exit_lrm = false;
                if self.active_count(&me) == 0 && self.run_workers(env) == 0 {
                    self.give_up_watchdog(env);
                    if self.shutdown_request.is_some() {
                        exit_lrm = true;
                    }
                    env.release_ha_agent_lock();
                }
                if !exit_lrm {
                    self.manage_resources(env);
                }
                self.update_lrm_status(env);
                if exit_lrm {
                    return false;
                }
                env.sleep_until(start + 5);
            }
            _ => {}
        }
        true
    }

    fn queue(&mut self, sid: &str, uid: Option<&str>, state: &str, target: Option<String>, timeout: Option<String>) {
        if state != "stopped" {
            if let Some(u) = uid {
                if self.results.contains_key(u) {
                    return;
                }
            }
        }
        self.workers.insert(sid.to_string(), Worker { uid: uid.map(String::from), state: state.to_string(), target, timeout, start_tries: 0 });
    }

    fn manage_resources(&mut self, env: &mut dyn Env) -> usize {
        let me = env.nodename();
        let ss = self.service_status.clone();
        self.restart_tries.retain(|sid, _| ss.contains_key(sid));
        for (sid, sd) in &ss {
            let Some(uid) = &sd.uid else { continue };
            if sd.node.as_deref() != Some(me.as_str()) {
                continue;
            }
            if matches!(sd.state.as_str(), "recovery" | "freeze" | "request_start") {
                continue;
            }
            self.queue(sid, Some(uid), &sd.state, sd.target.clone(), sd.timeout.clone());
        }
        self.run_workers(env)
    }

    /// Run the queued commands (the simulator runs them inline, one pass, like ha-manager with
    /// max_workers 0). Returns the number of commands still queued.
    fn run_workers(&mut self, env: &mut dyn Env) -> usize {
        for w in self.workers.values_mut() {
            w.start_tries += 1;
        }
        let mut order: Vec<(String, u32)> = self.workers.iter().map(|(s, w)| (s.clone(), w.start_tries)).collect();
        order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for (sid, _) in order {
            let Some(w) = self.workers.get(&sid).cloned() else { continue };
            let res = self.exec_resource_agent(env, &sid, &w);
            self.workers.remove(&sid);
            match &w.uid {
                Some(uid) => self.command_finished(env, &sid, uid, &w.state, res),
                None => {
                    if res != exit::SUCCESS {
                        self.shutdown_errors += 1;
                    }
                }
            }
        }
        self.workers.len()
    }

    fn command_finished(&mut self, env: &mut dyn Env, sid: &str, uid: &str, cmd: &str, code: i32) {
        let code = self.handle_exit_code(env, sid, cmd, code);
        if code == exit::ETRY_AGAIN {
            return;
        }
        self.results.insert(uid.to_string(), LrmResult { sid: sid.to_string(), state: cmd.to_string(), exit_code: code });
        let valid: std::collections::BTreeSet<String> = self.service_status.values().filter_map(|sd| sd.uid.clone()).collect();
        self.results.retain(|u, _| valid.contains(u));
    }

    fn handle_exit_code(&mut self, env: &mut dyn Env, sid: &str, cmd: &str, code: i32) -> i32 {
        let max_restart = env.read_service_config().ok().and_then(|sc| sc.get(sid).map(|c| c.max_restart)).unwrap_or(0);
        if cmd != "started" {
            return code;
        }
        if code == exit::SUCCESS {
            self.restart_tries.insert(sid.to_string(), 0);
            return code;
        }
        if code != exit::ERROR {
            return code;
        }
        let tries = self.restart_tries.entry(sid.to_string()).or_insert(0);
        if *tries >= max_restart {
            env.log("err", &format!("unable to start service {sid} on local node after {tries} retries"));
            *tries = 0;
            return exit::ERROR;
        }
        *tries += 1;
        env.log("warning", &format!("restart policy: retry number {tries} for service '{sid}'"));
        exit::ETRY_AGAIN
    }

    fn exec_resource_agent(&mut self, env: &mut dyn Env, sid: &str, w: &Worker) -> i32 {
        let sc = env.read_service_config().unwrap_or_default();
        let kind = sid.split_once(':').map(|(k, _)| k).unwrap_or("");
        if !matches!(kind, "vm" | "ct" | "fa") {
            env.log("err", &format!("service type '{kind}' not implemented"));
            return exit::EUNKNOWN_SERVICE_TYPE;
        }
        let Some(cd) = sc.get(sid) else {
            env.log("err", &format!("missing resource configuration for '{sid}'"));
            return exit::EUNKNOWN_SERVICE;
        };
        if w.state == "error" {
            env.log("err", &format!("service {sid} is in an error state and needs manual intervention. Look up 'ERROR RECOVERY' in the documentation."));
            return exit::SUCCESS;
        }
        let me = env.nodename();
        if cd.node != me {
            env.log("err", &format!("service '{sid}' not on this node"));
            return exit::EWRONG_NODE;
        }
        let running = env.resource_running(sid);
        match w.state.as_str() {
            "started" => {
                if running {
                    return exit::SUCCESS;
                }
                env.log("info", &format!("starting service {sid}"));
                env.resource_start(sid);
                if env.resource_running(sid) {
                    env.log("info", &format!("service status {sid} started"));
                    exit::SUCCESS
                } else {
                    env.log("warning", &format!("unable to start service {sid}"));
                    exit::ERROR
                }
            }
            "request_stop" | "stopped" => {
                if !running {
                    return exit::SUCCESS;
                }
                match &w.timeout {
                    Some(t) => env.log("info", &format!("stopping service {sid} (timeout={t})")),
                    None => env.log("info", &format!("stopping service {sid}")),
                }
                env.resource_shutdown(sid, w.timeout.as_deref());
                if !env.resource_running(sid) {
                    env.log("info", &format!("service status {sid} stopped"));
                    exit::SUCCESS
                } else {
                    env.log("info", &format!("unable to stop service {sid} (still running)"));
                    exit::ERROR
                }
            }
            "migrate" | "relocate" | "request_start_balance" => {
                let Some(target) = &w.target else {
                    env.log("err", &format!("{} '{sid}' failed - missing target", w.state));
                    return exit::EINVALID_PARAMETER;
                };
                if cd.node == *target {
                    return exit::SUCCESS;
                }
                if w.state == "request_start_balance" && running {
                    env.log("info", &format!("ignoring rebalance-on-start for service {sid} - already running"));
                    return exit::IGNORED;
                }
                if !env.resource_migrate(sid, target, w.state == "migrate") {
                    env.log("err", &format!("service {sid} not moved (migration error)"));
                    return exit::ERROR;
                }
                exit::SUCCESS
            }
            other => {
                env.log("err", &format!("implement me (cmd '{other}')"));
                exit::EUNKNOWN_COMMAND
            }
        }
    }
}
