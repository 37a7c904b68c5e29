//! The cluster resource manager daemon's loop (ha-manager's CRM.pm): wait for quorum, take the
//! manager lock (guarded by a watchdog) and become master, or stay slave; give the lock up when
//! idle or shutting down.
// One match arm per state, as ha-manager's state machines are written: a state's checks stay in
// its arm (some have side effects, e.g. taking a lock) rather than moving into match guards.
#![allow(clippy::collapsible_match)]
use crate::ha::env::{lock_with_retries, Env};
use crate::ha::manager::{count_fenced, Manager};

const MAX_ACTIVE_IDLE_ROUNDS: u32 = 90;

pub struct Crm {
    pub state: String,
    pub manager: Option<Manager>,
    shutdown_request: bool,
    cluster_state_update: bool,
    active_idle_rounds: u32,
    watchdog: Option<String>,
    disarmed: bool,
}

impl Crm {
    pub fn new(env: &mut dyn Env) -> Crm {
        let mut c = Crm { state: "startup".into(), manager: None, shutdown_request: false, cluster_state_update: false, active_idle_rounds: 0, watchdog: None, disarmed: false };
        c.set_state(env, "wait_for_quorum");
        c
    }

    pub fn shutdown_request(&mut self, env: &mut dyn Env) {
        if !self.shutdown_request {
            env.log("info", "server received shutdown request");
        }
        self.shutdown_request = true;
    }

    fn set_state(&mut self, env: &mut dyn Env, new: &str) {
        if self.state == new {
            return;
        }
        env.log("info", &format!("status change {} => {new}", self.state));
        self.state = new.to_string();
        if new == "master" {
            self.manager = Some(Manager::new(env));
        } else {
            self.manager = None;
        }
    }

    /// The manager lock, with the watchdog armed (or renewed) while it is held.
    fn protected_lock(&mut self, env: &mut dyn Env) -> bool {
        if !lock_with_retries(env, |e| e.get_ha_manager_lock()) {
            return false;
        }
        if let Some(w) = &self.watchdog {
            let _ = env.watchdog_update(w);
        } else if !self.disarmed {
            let ms = env.read_manager_status().ok();
            if ms.as_ref().and_then(|m| m.disarm.as_ref()).is_some_and(|d| d.state == "disarmed") {
                env.log("info", "taking over as disarmed master, skipping watchdog");
                self.disarmed = true;
            } else {
                self.watchdog = Some(env.watchdog_open());
            }
        }
        true
    }

    fn give_up_watchdog(&mut self, env: &mut dyn Env) {
        if let Some(w) = self.watchdog.take() {
            let _ = env.watchdog_close(&w);
        }
    }

    fn healthy(&self, env: &mut dyn Env) -> Option<crate::ha::state::ManagerStatus> {
        let ms = match env.read_manager_status() {
            Ok(m) => m,
            Err(e) => {
                env.log("err", &format!("could not read manager status: {e}"));
                return None;
            }
        };
        if !env.quorate() || !self.cluster_state_update {
            return None;
        }
        if count_fenced(&ms.service_status, &env.nodename()) > 0 {
            return None;
        }
        Some(ms)
    }

    fn can_get_active(&self, env: &mut dyn Env, allow_no_service: bool) -> bool {
        let Some(ms) = self.healthy(env) else { return false };
        if allow_no_service {
            return true;
        }
        let conf = match env.read_service_config() {
            Ok(c) => c,
            Err(e) => {
                env.log("err", &format!("could not read service config: {e}"));
                return false;
            }
        };
        if !conf.is_empty() {
            return true;
        }
        let me = env.nodename();
        let master = ms.master_node.clone();
        let master_online = master.as_ref().and_then(|m| ms.node_status.get(m)).map(String::as_str) == Some("online");
        if master.is_none() || !master_online || master.as_deref() == Some(me.as_str()) {
            for (node, st) in &ms.node_status {
                if st == "maintenance" && !ms.maintenance_requested(node) {
                    return true;
                }
            }
            if env.any_pending_crm_command() || !ms.service_status.is_empty() || ms.disarm.is_some() {
                return true;
            }
        }
        false
    }

    fn allowed_to_get_idle(&self, env: &mut dyn Env) -> bool {
        let Some(ms) = self.healthy(env) else { return false };
        if ms.disarm.is_some() {
            return false;
        }
        match env.read_service_config() {
            Ok(c) => c.is_empty() && ms.service_status.is_empty(),
            Err(e) => {
                env.log("err", &format!("could not read service config: {e}"));
                false
            }
        }
    }

    /// One loop iteration; false when the CRM exits.
    pub fn work(&mut self, env: &mut dyn Env) -> bool {
        self.cluster_state_update = env.cluster_state_update();
        match self.state.as_str() {
            "wait_for_quorum" => {
                if self.can_get_active(env, false) {
                    if self.protected_lock(env) {
                        self.set_state(env, "master");
                    } else {
                        self.set_state(env, "slave");
                    }
                }
            }
            "slave" => {
                if self.can_get_active(env, false) {
                    if self.protected_lock(env) {
                        self.set_state(env, "master");
                    }
                } else {
                    self.set_state(env, "wait_for_quorum");
                }
            }
            "lost_manager_lock" => {
                if self.can_get_active(env, true) && self.protected_lock(env) {
                    self.set_state(env, "master");
                }
            }
            "master" => {
                if !self.protected_lock(env) {
                    self.set_state(env, "lost_manager_lock");
                } else if self.allowed_to_get_idle(env) {
                    self.active_idle_rounds += 1;
                    if self.active_idle_rounds > MAX_ACTIVE_IDLE_ROUNDS {
                        self.active_idle_rounds = 0;
                        env.log("info", &format!("cluster had no service configured for {MAX_ACTIVE_IDLE_ROUNDS} rounds, going idle."));
                        env.release_ha_manager_lock();
                        self.give_up_watchdog(env);
                        self.set_state(env, "wait_for_quorum");
                    }
                } else if self.active_idle_rounds > 0 {
                    self.active_idle_rounds = 0;
                }
            }
            _ => {}
        }
        match self.state.as_str() {
            "wait_for_quorum" => {
                if self.shutdown_request {
                    return false;
                }
                env.sleep(5);
            }
            "master" => {
                let start = env.time();
                if self.shutdown_request {
                    self.give_up_watchdog(env);
                    env.log("info", "voluntary release CRM lock");
                    if !env.release_ha_manager_lock() {
                        env.log("notice", "CRM lock release failed, let the lock timeout");
                    }
                    return false;
                }
                if !self.cluster_state_update {
                    env.log("notice", "temporary inconsistent cluster state (cfs restart?), skip round");
                } else {
                    let mut m = self.manager.take().expect("master has a manager");
                    if let Err(e) = m.manage(env) {
                        env.log("err", &format!("got unexpected error - {e}"));
                    }
                    let disarmed = m.is_fully_disarmed();
                    self.manager = Some(m);
                    if disarmed {
                        if !self.disarmed {
                            env.log("info", "HA stack fully disarmed, releasing CRM watchdog");
                            self.give_up_watchdog(env);
                            self.disarmed = true;
                        }
                    } else if self.disarmed {
                        env.log("info", "re-arming HA stack");
                        self.disarmed = false;
                    }
                }
                env.sleep_until(start + 10);
            }
            "lost_manager_lock" => {
                self.give_up_watchdog(env);
                if self.shutdown_request {
                    return false;
                }
                self.set_state(env, "wait_for_quorum");
            }
            "slave" => {
                if self.shutdown_request {
                    return false;
                }
            }
            _ => {}
        }
        true
    }
}
