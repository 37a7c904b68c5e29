//! The simulator's Env: one node's CRM or LRM talking to the simulated hardware.
use std::collections::BTreeMap;

use crate::ha::env::{CfsResult, Env};
use crate::ha::model::{Datacenter, Group, RequestState, Rule, ServiceConf};
use crate::ha::sim::format_line;
use crate::ha::sim::hardware::{decode_fail, Clock, Hardware};
use crate::ha::state::{LrmStatus, ManagerStatus};

pub struct SimEnv<'a> {
    pub hw: &'a mut Hardware,
    pub node: String,
    pub id: &'static str,
    pub clock: Clock,
}

impl<'a> SimEnv<'a> {
    pub fn new(hw: &'a mut Hardware, node: &str, id: &'static str, clock: Clock) -> SimEnv<'a> {
        SimEnv { hw, node: node.to_string(), id, clock }
    }

    fn cfs_rw(&self) -> CfsResult<()> {
        if self.hw.cfs(&self.node, "rw") {
            Ok(())
        } else {
            Err("cfs connection refused - not mounted?".into())
        }
    }

    fn fail_try(&mut self, what: &str, sid: &str, failures: u32, limit_node: u32) -> bool {
        if limit_node == 0 || self.node == format!("node{limit_node}") {
            let t = self.hw.fail_tries.entry((what.to_string(), sid.to_string())).or_insert(0);
            *t += 1;
            if failures >= *t {
                return true;
            }
        }
        self.hw.fail_tries.insert((what.to_string(), sid.to_string()), 0);
        false
    }
}

impl Env for SimEnv<'_> {
    fn nodename(&self) -> String {
        self.node.clone()
    }
    fn time(&self) -> i64 {
        self.clock.time
    }
    fn log(&mut self, level: &str, msg: &str) {
        if level == "debug" {
            return;
        }
        let line = format_line(level, self.clock.time, &format!("{}/{}", self.node, self.id), msg);
        self.hw.log.push(line);
    }
    fn sleep(&mut self, secs: i64) {
        self.clock.delay += secs;
    }
    fn sleep_until(&mut self, t: i64) {
        let cur = self.clock.time + self.clock.delay;
        if cur < t {
            self.clock.delay += t - cur;
        }
    }

    fn get_ha_manager_lock(&mut self) -> bool {
        let (node, t) = (self.node.clone(), self.clock.time);
        let r = self.hw.lock(&node, "ha_manager_lock", false, t, self.id, t);
        self.clock.delay += 1;
        r
    }
    fn release_ha_manager_lock(&mut self) -> bool {
        let (node, t) = (self.node.clone(), self.clock.time);
        self.hw.lock(&node, "ha_manager_lock", true, t, self.id, t)
    }
    fn get_ha_agent_lock(&mut self, node: Option<&str>) -> bool {
        let name = format!("ha_agent_{}_lock", node.unwrap_or(&self.node));
        let (me, t) = (self.node.clone(), self.clock.time);
        let r = self.hw.lock(&me, &name, false, t, self.id, t);
        self.clock.delay += 1;
        r
    }
    fn release_ha_agent_lock(&mut self) -> bool {
        let name = format!("ha_agent_{}_lock", self.node);
        let (me, t) = (self.node.clone(), self.clock.time);
        self.hw.lock(&me, &name, true, t, self.id, t)
    }

    fn quorate(&self) -> bool {
        self.hw.quorate(&self.node)
    }
    fn node_info(&self) -> (BTreeMap<String, bool>, bool) {
        self.hw.node_info(&self.node)
    }
    fn cluster_state_update(&self) -> bool {
        self.hw.cfs(&self.node, "update")
    }

    fn read_manager_status(&self) -> CfsResult<ManagerStatus> {
        self.cfs_rw()?;
        Ok(self.hw.manager_status.clone())
    }
    fn write_manager_status(&mut self, ms: &ManagerStatus) -> CfsResult<()> {
        self.cfs_rw()?;
        self.hw.manager_status = ms.clone();
        Ok(())
    }
    fn read_lrm_status(&self, node: &str) -> CfsResult<LrmStatus> {
        self.cfs_rw()?;
        Ok(self.hw.nodes.get(node).map(|d| d.lrm_status.clone()).unwrap_or_default())
    }
    fn write_lrm_status(&mut self, st: &LrmStatus) -> CfsResult<()> {
        self.cfs_rw()?;
        if let Some(d) = self.hw.nodes.get_mut(&self.node) {
            d.lrm_status = st.clone();
        }
        Ok(())
    }
    fn read_service_config(&self) -> CfsResult<BTreeMap<String, ServiceConf>> {
        self.cfs_rw()?;
        Ok(self.hw.services.clone())
    }
    fn set_service_state(&mut self, sid: &str, state: &str) {
        if let (Some(s), Some(st)) = (self.hw.services.get_mut(sid), RequestState::parse(state)) {
            s.state = st;
        }
    }
    fn steal_service(&mut self, sid: &str, from: &str, to: &str) -> CfsResult<()> {
        self.cfs_rw()?;
        let s = self.hw.services.get_mut(sid).ok_or_else(|| format!("no such service '{sid}'"))?;
        if s.node != from {
            return Err(format!("current_node for '{sid}' does not match ({from} != {})", s.node));
        }
        s.node = to.to_string();
        Ok(())
    }
    fn read_rules(&self) -> CfsResult<Vec<Rule>> {
        self.cfs_rw()?;
        Ok(self.hw.rules.clone())
    }
    fn read_groups(&self) -> CfsResult<BTreeMap<String, Group>> {
        self.cfs_rw()?;
        Ok(self.hw.groups.clone())
    }
    fn migrate_groups(&mut self, rules: Vec<Rule>) -> CfsResult<()> {
        self.cfs_rw()?;
        let groups = std::mem::take(&mut self.hw.groups);
        self.hw.rules = rules;
        for s in self.hw.services.values_mut() {
            if let Some(g) = s.group.take() {
                if groups.get(&g).is_some_and(|g| g.nofailback) {
                    s.failback = false;
                }
            }
        }
        Ok(())
    }
    fn read_crm_commands(&mut self) -> CfsResult<String> {
        self.cfs_rw()?;
        Ok(std::mem::take(&mut self.hw.crm_commands))
    }
    fn any_pending_crm_command(&self) -> bool {
        !self.hw.crm_commands.is_empty()
    }
    fn datacenter(&self) -> Datacenter {
        self.hw.datacenter.clone()
    }
    fn is_node_shutdown(&self) -> (bool, bool) {
        match self.hw.nodes.get(&self.node).and_then(|d| d.shutdown.as_deref()) {
            Some("shutdown") => (true, false),
            Some("reboot") => (true, true),
            _ => (false, false),
        }
    }
    fn node_version(&self, node: &str) -> Option<String> {
        Some(self.hw.nodes.get(node).and_then(|d| d.version.clone()).unwrap_or_else(|| "9.0.0~2".into()))
    }

    fn watchdog_open(&mut self) -> String {
        let n = self.node.clone();
        self.hw.watchdog_open(&n)
    }
    fn watchdog_update(&mut self, id: &str) -> Result<(), String> {
        self.hw.watchdog_update(id)
    }
    fn watchdog_close(&mut self, id: &str) -> Result<(), String> {
        self.hw.watchdog_close(id)
    }
    fn notify(&mut self, prefix: &str, subject: &str) {
        self.log("email", &format!("{prefix}: {subject}"));
    }

    fn resource_running(&self, sid: &str) -> bool {
        self.hw.nodes.get(&self.node).and_then(|d| d.services.get(sid)).copied().unwrap_or(false)
    }
    fn resource_start(&mut self, sid: &str) {
        if sid.starts_with("fa:") {
            let (start_fail, _, _, limit) = decode_fail(sid);
            if self.fail_try("start", sid, start_fail, limit) {
                return;
            }
        }
        if let Some(l) = self.hw.services.get(sid).and_then(|s| s.lock.clone()) {
            self.log("err", &format!("service '{sid}' locked ({l}), unable to start!"));
            return;
        }
        self.sleep(2);
        let n = self.node.clone();
        self.hw.nodes.get_mut(&n).unwrap().services.insert(sid.to_string(), true);
    }
    fn resource_shutdown(&mut self, sid: &str, _timeout: Option<&str>) {
        if sid.starts_with("fa:") && decode_fail(sid).2 {
            return;
        }
        if let Some(l) = self.hw.services.get(sid).and_then(|s| s.lock.clone()) {
            self.log("err", &format!("service '{sid}' locked ({l}), unable to shutdown!"));
            return;
        }
        self.sleep(2);
        let n = self.node.clone();
        self.hw.nodes.get_mut(&n).unwrap().services.insert(sid.to_string(), false);
    }
    fn resource_migrate(&mut self, sid: &str, target: &str, online: bool) -> bool {
        if sid.starts_with("fa:") {
            let (_, mig_fail, _, limit) = decode_fail(sid);
            if self.fail_try("migrate", sid, mig_fail, limit) {
                return false;
            }
        }
        let cmd = if online { "migrate" } else { "relocate" };
        self.log("info", &format!("service {sid} - start {cmd} to node '{target}'"));
        if let Some(l) = self.hw.services.get(sid).and_then(|s| s.lock.clone()) {
            self.log("err", &format!("service '{sid}' locked ({l}), unable to {cmd}!"));
            return false;
        }
        if !online && self.resource_running(sid) {
            self.log("info", &format!("stopping service {sid} (relocate)"));
            self.resource_shutdown(sid, None);
            self.log("info", &format!("service status {sid} stopped"));
        } else {
            self.sleep(2);
        }
        let me = self.node.clone();
        if let Some(s) = self.hw.services.get_mut(sid) {
            if s.node != me {
                return false;
            }
            s.node = target.to_string();
        }
        self.log("info", &format!("service {sid} - end {cmd} to node '{target}'"));
        self.hw.nodes.get_mut(&me).unwrap().services.remove(sid);
        true
    }
    fn resource_remove_locks(&mut self, sid: &str, locks: &[&str]) -> Option<String> {
        let s = self.hw.services.get_mut(sid)?;
        let l = s.lock.clone()?;
        if locks.contains(&l.as_str()) {
            s.lock = None;
            return Some(l);
        }
        None
    }

    fn fence_node(&mut self, node: &str) -> bool {
        if self.hw.two.is_some() {
            let me = self.node.clone();
            let t = self.clock.time;
            return self.hw.twonode_fence(&me, node, t);
        }
        self.get_ha_agent_lock(Some(node))
    }

    fn recovery_blocker(&mut self, sid: &str, node: &str) -> Option<String> {
        let res = self.hw.services.get(sid)?.drbd.clone();
        let two = self.hw.two.as_mut()?;
        let mut why = None;
        for r in &res {
            let disk = two.drbd.get(r).and_then(|m| m.get(node)).map(|d| d.0.clone()).unwrap_or_else(|| "unknown".into());
            if disk != "UpToDate" {
                why = Some(format!("DRBD resource '{r}' is {disk} on '{node}', not UpToDate; promoting it there would lose data"));
                break;
            }
        }
        match why {
            Some(w) => {
                if two.waiting.get(sid) == Some(&w) {
                    // said already: an empty reason keeps the log to one line per change
                    return Some(String::new());
                }
                two.waiting.insert(sid.to_string(), w.clone());
                Some(w)
            }
            None => {
                two.waiting.remove(sid);
                None
            }
        }
    }

    fn before_recovery(&mut self, sid: &str, node: &str) {
        let res = match self.hw.services.get(sid) {
            Some(s) => s.drbd.clone(),
            None => return,
        };
        let Some(two) = self.hw.two.as_mut() else { return };
        let mut lines = Vec::new();
        for r in &res {
            if let Some(m) = two.drbd.get_mut(r) {
                for (n, st) in m.iter_mut() {
                    st.1 = n == node;
                }
                lines.push(format!("drbd: promote '{r}' on '{node}' (UpToDate, peer fenced)"));
            }
        }
        for l in lines {
            self.log("info", &l);
        }
    }
}

