//! What the HA core needs from the world, and nothing more: time, a log, cluster locks, quorum and
//! membership, the shared state files, watchdogs, the resource agents, and fencing. The simulator
//! (`ha::sim`) and a daemon would each implement it; the core never knows how these are delivered.
use std::collections::BTreeMap;

use crate::ha::model::{Datacenter, Group, Rule, ServiceConf};
use crate::ha::state::{LrmStatus, ManagerStatus};

/// ha-manager's resource-agent exit codes.
pub mod exit {
    pub const SUCCESS: i32 = 0;
    pub const ERROR: i32 = 1;
    pub const ETRY_AGAIN: i32 = 2;
    pub const EWRONG_NODE: i32 = 3;
    pub const EUNKNOWN_SERVICE_TYPE: i32 = 4;
    pub const EUNKNOWN_COMMAND: i32 = 5;
    pub const EINVALID_PARAMETER: i32 = 6;
    pub const EUNKNOWN_SERVICE: i32 = 7;
    pub const IGNORED: i32 = 8;
}

/// An error of the shared file system (pmxcfs down, not quorate): the caller logs it and retries.
pub type CfsResult<T> = Result<T, String>;

/// Take a cluster lock as ha-manager's daemons do: up to 6 tries a second apart, for at most 5 s.
pub fn lock_with_retries(env: &mut dyn Env, mut get: impl FnMut(&mut dyn Env) -> bool) -> bool {
    let start = env.time();
    let mut count = 0;
    loop {
        if get(env) {
            return true;
        }
        count += 1;
        if count > 5 || env.time() - start > 5 {
            return false;
        }
        env.sleep(1);
    }
}

/// One node's view of the world, used by its CRM, its LRM and (on the master) the manager.
pub trait Env {
    fn nodename(&self) -> String;
    fn time(&self) -> i64;
    fn log(&mut self, level: &str, msg: &str);
    /// Time passes for this node only (the simulator adds it up per round).
    fn sleep(&mut self, secs: i64);
    fn sleep_until(&mut self, t: i64);

    fn get_ha_manager_lock(&mut self) -> bool;
    fn release_ha_manager_lock(&mut self) -> bool;
    /// The LRM agent lock of `node` (None = this node). The master takes a dead node's lock to
    /// know the node can no longer run anything.
    fn get_ha_agent_lock(&mut self, node: Option<&str>) -> bool;
    fn release_ha_agent_lock(&mut self) -> bool;

    fn quorate(&self) -> bool;
    /// Membership as this node sees it: node -> online, and whether this partition is quorate.
    fn node_info(&self) -> (BTreeMap<String, bool>, bool);
    /// false while the cluster file system is between updates (pmxcfs restart).
    fn cluster_state_update(&self) -> bool;

    fn read_manager_status(&self) -> CfsResult<ManagerStatus>;
    fn write_manager_status(&mut self, ms: &ManagerStatus) -> CfsResult<()>;
    fn read_lrm_status(&self, node: &str) -> CfsResult<LrmStatus>;
    fn write_lrm_status(&mut self, st: &LrmStatus) -> CfsResult<()>;
    fn read_service_config(&self) -> CfsResult<BTreeMap<String, ServiceConf>>;
    /// Set one service's requested state (the `stop` crm command makes it `stopped`).
    fn set_service_state(&mut self, sid: &str, state: &str);
    /// Move a service's config to another node (recovery after a fence).
    fn steal_service(&mut self, sid: &str, from: &str, to: &str) -> CfsResult<()>;
    fn read_rules(&self) -> CfsResult<Vec<Rule>>;
    fn read_groups(&self) -> CfsResult<BTreeMap<String, Group>>;
    /// Persist groups as rules (pve-manager >= 9): rules written, groups removed, services'
    /// `group` replaced by `failback`.
    fn migrate_groups(&mut self, rules: Vec<Rule>) -> CfsResult<()>;
    /// Queued crm commands, emptied by reading.
    fn read_crm_commands(&mut self) -> CfsResult<String>;
    fn any_pending_crm_command(&self) -> bool;
    fn datacenter(&self) -> Datacenter;
    /// (shutting down, rebooting)
    fn is_node_shutdown(&self) -> (bool, bool);
    fn node_version(&self, node: &str) -> Option<String>;

    fn watchdog_open(&mut self) -> String;
    fn watchdog_update(&mut self, id: &str) -> Result<(), String>;
    fn watchdog_close(&mut self, id: &str) -> Result<(), String>;

    /// A notification (ha-manager mails FENCE/SUCCEED).
    fn notify(&mut self, prefix: &str, subject: &str);

    // The resource agent, run on this node.
    fn resource_running(&self, sid: &str) -> bool;
    fn resource_start(&mut self, sid: &str);
    fn resource_shutdown(&mut self, sid: &str, timeout: Option<&str>);
    /// true when the service moved.
    fn resource_migrate(&mut self, sid: &str, target: &str, online: bool) -> bool;
    /// Remove the first of `locks` the guest holds; returns it.
    fn resource_remove_locks(&mut self, sid: &str, locks: &[&str]) -> Option<String>;

    /// Fence `node`: true once it is certain the node runs nothing. ha-manager's answer is
    /// "we hold its agent lock" (its watchdog has fired); twonode's two-node Env answers only
    /// after the arbiter's vote and a power-off confirmed by the node's BMC.
    fn fence_node(&mut self, node: &str) -> bool {
        self.get_ha_agent_lock(Some(node))
    }
    /// Whether `node` may take over `sid` now (twonode: its DRBD resources are UpToDate there).
    /// Returns the reason when not; an empty reason means "still not, and already said why".
    fn recovery_blocker(&mut self, _sid: &str, _node: &str) -> Option<String> {
        None
    }
    /// Called before a recovered service is started on `node` (twonode: promote its DRBD there).
    fn before_recovery(&mut self, _sid: &str, _node: &str) {}
}
