//! The simulated hardware and cluster file system, the command set of the regression format,
//! and the run loop on ha-manager's virtual clock (rounds of max(20, 2 x nodes) seconds, a
//! command batch every 5 rounds, the run ends 500 s after the last command).
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::ha::crm::Crm;
use crate::ha::lrm::Lrm;
use crate::ha::model::{Datacenter, Group, RequestState, Rule, ServiceConf};
use crate::ha::sim::env::SimEnv;
use crate::ha::sim::regdir::Scenario;
use crate::ha::sim::twonode::{Bmc, Fencer, TwoNode};
use crate::ha::sim::{format_line, MAX_SIM_TIME};
use crate::ha::state::{LrmStatus, ManagerStatus};

pub const WATCHDOG_TIMEOUT: i64 = 60;
pub const LOCK_TIMEOUT: i64 = 120;

#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    pub time: i64,
    pub delay: i64,
}

pub struct NodeHw {
    pub power: bool,
    pub network: bool,
    pub shutdown: Option<String>,
    pub cfs: BTreeMap<String, bool>,
    pub version: Option<String>,
    pub crm: Option<Crm>,
    pub lrm: Option<Lrm>,
    pub crm_clock: Clock,
    pub lrm_clock: Clock,
    pub crm_stop: bool,
    pub lrm_restart: bool,
    /// sid -> running
    pub services: BTreeMap<String, bool>,
    pub lrm_status: LrmStatus,
}

pub struct Hardware {
    pub nodes: BTreeMap<String, NodeHw>,
    pub services: BTreeMap<String, ServiceConf>,
    /// lock name -> (node, time)
    pub locks: BTreeMap<String, (String, i64)>,
    pub manager_status: ManagerStatus,
    pub crm_commands: String,
    pub rules: Vec<Rule>,
    pub groups: BTreeMap<String, Group>,
    pub datacenter: Datacenter,
    /// watchdog id -> (node, last update)
    pub watchdogs: BTreeMap<String, (String, i64)>,
    wd_counter: u64,
    pub log: Vec<String>,
    pub time: i64,
    /// (kind, sid) -> tries, for `fa:` services that fail on purpose
    pub fail_tries: BTreeMap<(String, String), u32>,
    lrm_wrote_startup: bool,
    cmdlist: VecDeque<Vec<String>>,
    pub two: Option<TwoNode>,
    refused: Option<String>,
    /// A real fence path replacing the simulated arbiter and BMCs (None: simulated).
    pub fencer: Option<Box<dyn Fencer>>,
}

impl Hardware {
    pub fn new(sc: Scenario) -> Hardware {
        let names: Vec<String> = sc.nodes.keys().cloned().collect();
        let nodes = sc
            .nodes
            .iter()
            .map(|(n, init)| {
                let hw = NodeHw {
                    power: init.power,
                    network: init.network,
                    shutdown: None,
                    cfs: BTreeMap::new(),
                    version: init.version.clone(),
                    crm: None,
                    lrm: None,
                    crm_clock: Clock::default(),
                    lrm_clock: Clock::default(),
                    crm_stop: false,
                    lrm_restart: false,
                    services: sc.service_status.get(n).cloned().unwrap_or_default(),
                    lrm_status: LrmStatus::default(),
                };
                (n.clone(), hw)
            })
            .collect();
        let mut refused = None;
        let two = sc.twonode.as_ref().map(|c| {
            if c.self_fencing {
                refused = Some("refusing watchdog self-fencing under two_node: it relies on a fence race that cannot be won safely; configure hardware fencing (BMC) and an arbiter".to_string());
            }
            TwoNode::new(c, &names)
        });
        Hardware {
            nodes,
            services: sc.services,
            locks: BTreeMap::new(),
            manager_status: sc.manager_status,
            crm_commands: String::new(),
            rules: sc.rules,
            groups: sc.groups,
            datacenter: sc.datacenter,
            watchdogs: BTreeMap::new(),
            wd_counter: 0,
            log: Vec::new(),
            time: 0,
            fail_tries: BTreeMap::new(),
            lrm_wrote_startup: false,
            cmdlist: sc.cmdlist.into(),
            two,
            refused,
            fencer: None,
        }
    }

    pub fn hw_log(&mut self, level: &str, msg: &str, id: &str) {
        let line = format_line(level, self.time, id, msg);
        self.log.push(line);
    }

    /// Nodes whose power and network are on.
    pub fn up_nodes(&self) -> BTreeSet<String> {
        self.nodes.iter().filter(|(_, d)| d.power && d.network).map(|(n, _)| n.clone()).collect()
    }

    /// Membership as `node` sees it: node -> online, and whether its partition is quorate.
    pub fn node_info(&self, node: &str) -> (BTreeMap<String, bool>, bool) {
        let up = self.up_nodes();
        match &self.two {
            None => {
                let quorate = up.len() > self.nodes.len() / 2;
                let info = self.nodes.keys().map(|n| (n.clone(), quorate && up.contains(n))).collect();
                (info, quorate)
            }
            Some(t) => {
                let quorate = t.quorate(node, &up, self.nodes.len());
                let mine = t.partitions(&up).into_iter().find(|p| p.contains(node)).unwrap_or_default();
                let info = self.nodes.keys().map(|n| (n.clone(), quorate && mine.contains(n))).collect();
                (info, quorate)
            }
        }
    }

    pub fn quorate(&self, node: &str) -> bool {
        let (info, q) = self.node_info(node);
        q && info.get(node).copied().unwrap_or(false)
    }

    pub fn cfs(&self, node: &str, what: &str) -> bool {
        self.nodes.get(node).and_then(|d| d.cfs.get(what)).copied().unwrap_or(true)
    }

    /// ha-manager's simulated cluster lock: held for LOCK_TIMEOUT seconds after its last renewal.
    pub fn lock(&mut self, node: &str, name: &str, unlock: bool, now: i64, id: &str, clock_time: i64) -> bool {
        if !self.quorate(node) {
            return false;
        }
        let held = self.locks.get(name).cloned();
        if unlock {
            return match held {
                Some((n, t)) => {
                    if now - t > LOCK_TIMEOUT {
                        true
                    } else if n == node {
                        self.locks.remove(name);
                        true
                    } else {
                        false
                    }
                }
                None => false,
            };
        }
        match held {
            Some((n, t)) if now - t <= LOCK_TIMEOUT => {
                if n == node {
                    self.locks.insert(name.to_string(), (n, now));
                    true
                } else {
                    false
                }
            }
            _ => {
                self.locks.insert(name.to_string(), (node.to_string(), now));
                self.log.push(format_line("info", clock_time, &format!("{node}/{id}"), &format!("got lock '{name}'")));
                true
            }
        }
    }

    pub fn watchdog_open(&mut self, node: &str) -> String {
        self.wd_counter += 1;
        let id = format!("WD:{node}:{}", self.wd_counter);
        self.watchdogs.insert(id.clone(), (node.to_string(), self.time));
        id
    }

    pub fn watchdog_update(&mut self, id: &str) -> Result<(), String> {
        let now = self.time;
        let w = self.watchdogs.get_mut(id).ok_or_else(|| format!("no such watchdog handle '{id}'"))?;
        if now - w.1 > WATCHDOG_TIMEOUT {
            return Err("watchdog expired".into());
        }
        w.1 = now;
        Ok(())
    }

    pub fn watchdog_close(&mut self, id: &str) -> Result<(), String> {
        let now = self.time;
        let w = self.watchdogs.remove(id).ok_or_else(|| format!("no such watchdog handle '{id}'"))?;
        if now - w.1 > WATCHDOG_TIMEOUT {
            return Err("watchdog expired".into());
        }
        Ok(())
    }

    /// false when a watchdog of `node` expired (it then fires). twonode's two-node world has no
    /// watchdog: self-fencing is refused there, the BMC fences.
    fn watchdog_check(&mut self, node: &str) -> bool {
        if self.two.is_some() {
            return true;
        }
        let now = self.time;
        let expired: Vec<String> = self.watchdogs.iter().filter(|(_, (n, t))| n == node && now - t > WATCHDOG_TIMEOUT).map(|(id, _)| id.clone()).collect();
        for id in &expired {
            self.watchdogs.remove(id);
        }
        expired.is_empty()
    }

    fn env(&mut self, node: &str, id: &'static str) -> SimEnv<'_> {
        let clock = if id == "crm" { self.nodes[node].crm_clock } else { self.nodes[node].lrm_clock };
        SimEnv::new(self, node, id, clock)
    }

    fn start_crm(&mut self, node: &str) {
        let mut env = self.env(node, "crm");
        let crm = Crm::new(&mut env);
        let clock = env.clock;
        let d = self.nodes.get_mut(node).unwrap();
        d.crm_clock = clock;
        d.crm = Some(crm);
    }

    fn start_lrm(&mut self, node: &str) {
        let wrote = self.lrm_wrote_startup;
        let mut env = self.env(node, "lrm");
        let lrm = Lrm::new(&mut env, wrote);
        let clock = env.clock;
        let d = self.nodes.get_mut(node).unwrap();
        d.lrm_clock = clock;
        d.lrm = Some(lrm);
    }

    fn node_log(&mut self, node: &str, id: &'static str, level: &str, msg: &str) {
        let t = if id == "crm" { self.nodes[node].crm_clock.time } else { self.nodes[node].lrm_clock.time };
        self.log.push(format_line(level, t, &format!("{node}/{id}"), msg));
    }

    /// Power a node off: its daemons die, its watchdogs and running guests are gone.
    fn power_off(&mut self, node: &str) {
        if self.nodes[node].crm.is_some() {
            self.node_log(node, "crm", "info", "killed by poweroff");
            self.nodes.get_mut(node).unwrap().crm = None;
        }
        if self.nodes[node].lrm.is_some() {
            self.node_log(node, "lrm", "info", "killed by poweroff");
            let d = self.nodes.get_mut(node).unwrap();
            d.lrm = None;
            d.lrm_restart = false;
        }
        self.watchdogs.retain(|_, (n, _)| n != node);
        self.nodes.get_mut(node).unwrap().services.clear();
    }

    /// Execute one command of the regression format (and twonode's additions).
    pub fn command(&mut self, cmdstr: &str, logid: &str) -> Result<(), String> {
        let w: Vec<&str> = cmdstr.split_whitespace().collect();
        if w.len() < 2 {
            return Err(format!("sim_hardware_cmd: no node or service for command specified: '{cmdstr}'"));
        }
        let (cmd, obj) = (w[0], w[1]);
        let action = w.get(2).copied().unwrap_or("");
        let params: Vec<&str> = w.iter().skip(3).copied().collect();
        if matches!(cmd, "arbiter" | "split" | "bmc" | "drbd") {
            return self.twonode_command(cmdstr, &w, logid);
        }
        if cmd != "service" && !self.nodes.contains_key(obj) {
            return Err(format!("sim_hardware_cmd: no such node '{obj}'"));
        }
        if cmd == "service" && !obj.contains(':') {
            return Err(format!("sim_hardware_cmd: invalid service id '{obj}' (expected TYPE:ID)"));
        }
        self.hw_log("info", &format!("execute {cmdstr}"), logid);
        match cmd {
            "power" => {
                let on = match action {
                    "on" => true,
                    "off" => false,
                    _ => return Err(format!("sim_hardware_cmd: unknown action '{action}'")),
                };
                self.set_power(obj, on);
            }
            "network" => {
                let d = self.nodes.get_mut(obj).unwrap();
                d.network = match action {
                    "on" => true,
                    "off" => false,
                    _ => return Err(format!("sim_hardware_cmd: unknown network action '{action}'")),
                };
            }
            "pve-manager-version" => {
                if action != "set" {
                    return Err(format!("sim_hardware_cmd: unknown version action '{action}'"));
                }
                self.nodes.get_mut(obj).unwrap().version = params.first().map(|s| s.to_string());
            }
            "cfs" => {
                if !matches!(action, "rw" | "update") {
                    return Err(format!("sim_hardware_cmd: unknown cfs action '{action}' for node '{obj}'"));
                }
                let p = params.first().copied().unwrap_or("");
                if !matches!(p, "work" | "fail") {
                    return Err(format!("sim_hardware_cmd: unknown cfs command '{p}' for '{action}' on node '{obj}'"));
                }
                self.nodes.get_mut(obj).unwrap().cfs.insert(action.to_string(), p == "work");
            }
            "reboot" | "shutdown" => {
                self.nodes.get_mut(obj).unwrap().shutdown = Some(cmd.to_string());
                if let Some(mut lrm) = self.nodes.get_mut(obj).unwrap().lrm.take() {
                    let mut env = self.env(obj, "lrm");
                    lrm.shutdown_request(&mut env);
                    let clock = env.clock;
                    let d = self.nodes.get_mut(obj).unwrap();
                    d.lrm_clock = clock;
                    d.lrm = Some(lrm);
                }
            }
            "restart-lrm" => {
                if let Some(mut lrm) = self.nodes.get_mut(obj).unwrap().lrm.take() {
                    self.nodes.get_mut(obj).unwrap().lrm_restart = true;
                    let mut env = self.env(obj, "lrm");
                    lrm.shutdown_request(&mut env);
                    let clock = env.clock;
                    let d = self.nodes.get_mut(obj).unwrap();
                    d.lrm_clock = clock;
                    d.lrm = Some(lrm);
                }
            }
            "crm" => match action {
                "stop" => {
                    if let Some(mut crm) = self.nodes.get_mut(obj).unwrap().crm.take() {
                        self.nodes.get_mut(obj).unwrap().crm_stop = true;
                        let mut env = self.env(obj, "crm");
                        crm.shutdown_request(&mut env);
                        let clock = env.clock;
                        let d = self.nodes.get_mut(obj).unwrap();
                        d.crm_clock = clock;
                        d.crm = Some(crm);
                    }
                }
                "start" => {
                    if self.nodes[obj].crm.is_none() {
                        self.start_crm(obj);
                    }
                }
                "enable-node-maintenance" | "disable-node-maintenance" => self.crm_commands.push_str(&format!("{action} {obj}\n")),
                "disarm-ha" => {
                    let mode = params.first().copied().unwrap_or("");
                    if !matches!(mode, "freeze" | "ignore") {
                        return Err(format!("sim_hardware_cmd: unknown resource mode '{mode}'"));
                    }
                    self.crm_commands.push_str(&format!("disarm-ha {mode}\n"));
                }
                "arm-ha" => self.crm_commands.push_str("arm-ha\n"),
                _ => return Err(format!("sim_hardware_cmd: unknown action '{action}'")),
            },
            "service" => self.service_command(obj, action, &params)?,
            _ => return Err(format!("sim_hardware_cmd: unknown command '{cmdstr}'")),
        }
        self.refresh_vote();
        Ok(())
    }

    fn set_power(&mut self, node: &str, on: bool) {
        if self.nodes[node].power != on {
            if on {
                if self.nodes[node].crm.is_none() {
                    self.start_crm(node);
                }
                if self.nodes[node].lrm.is_none() {
                    self.start_lrm(node);
                }
                let d = self.nodes.get_mut(node).unwrap();
                d.lrm_restart = false;
                d.cfs.clear();
            } else {
                self.power_off(node);
            }
        }
        let d = self.nodes.get_mut(node).unwrap();
        d.power = on;
        d.network = on;
        d.shutdown = None;
    }

    fn service_command(&mut self, sid: &str, action: &str, params: &[&str]) -> Result<(), String> {
        let param = params.first().copied();
        let exists = self.services.contains_key(sid);
        let need = |exists: bool| if exists { Ok(()) } else { Err(format!("no such service '{sid}'")) };
        match action {
            "started" | "disabled" | "stopped" | "ignored" => {
                need(exists)?;
                self.services.get_mut(sid).unwrap().state = RequestState::parse(action).unwrap();
            }
            "migrate" | "relocate" => {
                let t = param.ok_or_else(|| format!("sim_hardware_cmd: missing target node for '{action}' command"))?;
                self.crm_commands.push_str(&format!("{action} {sid} {t}\n"));
            }
            "stop" => {
                let t = param.ok_or_else(|| format!("sim_hardware_cmd: missing timeout for '{action}' command"))?;
                self.crm_commands.push_str(&format!("stop {sid} {t}\n"));
            }
            "add" => {
                if exists {
                    return Err(format!("resource ID '{sid}' already defined"));
                }
                let node = param.ok_or("sim_hardware_cmd: missing node for 'add'")?;
                let state = params.get(1).and_then(|s| RequestState::parse(s)).unwrap_or(RequestState::Started);
                self.services.insert(sid.to_string(), ServiceConf::new(sid, node, state));
                let running = params.get(2).is_some_and(|r| *r != "0");
                if let Some(d) = self.nodes.get_mut(node) {
                    d.services.insert(sid.to_string(), running);
                }
            }
            "delete" => {
                need(exists)?;
                self.services.remove(sid);
            }
            "lock" => {
                need(exists)?;
                self.services.get_mut(sid).unwrap().lock = Some(param.unwrap_or("backup").to_string());
            }
            "unlock" => {
                need(exists)?;
                let s = self.services.get_mut(sid).unwrap();
                if param.is_none() || s.lock.as_deref() == param {
                    s.lock = None;
                }
            }
            "manual-migrate" => {
                let t = param.ok_or_else(|| format!("sim_hardware_cmd: missing target node for '{action}' command"))?;
                need(exists)?;
                let ignored = self.services[sid].state == RequestState::Ignored;
                let disarm_ignore = self.manager_status.disarm.as_ref().is_some_and(|d| d.mode == "ignore");
                if !ignored && !disarm_ignore {
                    return Err("sim_hardware_cmd: manual-migrate requires service in 'ignored' state or disarm-ha ignore mode".into());
                }
                self.services.get_mut(sid).unwrap().node = t.to_string();
            }
            "set-static-stats" | "set-dynamic-stats" => {}
            _ => return Err(format!("sim_hardware_cmd: unknown service action '{action}' - not implemented")),
        }
        Ok(())
    }

    fn twonode_command(&mut self, cmdstr: &str, w: &[&str], logid: &str) -> Result<(), String> {
        if self.two.is_none() {
            return Err(format!("'{cmdstr}': a two-node command, but this directory has no twonode.json"));
        }
        self.hw_log("info", &format!("execute {cmdstr}"), logid);
        let nodes: Vec<String> = self.nodes.keys().cloned().collect();
        let up = self.up_nodes();
        let t = self.two.as_mut().unwrap();
        match w {
            ["arbiter", "down"] => t.arbiter_up = false,
            ["arbiter", "up"] => {
                if !t.arbiter {
                    return Err("arbiter up: no arbiter is configured (twonode.json \"arbiter\": true)".into());
                }
                t.arbiter_up = true;
            }
            ["split", "on"] => t.split = true,
            ["split", "off"] => t.split = false,
            ["bmc", node, state] => {
                if !nodes.iter().any(|n| n == node) {
                    return Err(format!("bmc: no such node '{node}'"));
                }
                let b = match *state {
                    "dead" => Bmc::Dead,
                    "ok" | "alive" => Bmc::Ok,
                    "ignore-on" => Bmc::IgnoreOn,
                    _ => return Err(format!("bmc {node} {state}: expected dead, ok or ignore-on")),
                };
                t.bmc.insert(node.to_string(), b);
            }
            ["drbd", res, node, state] => {
                if !matches!(*state, "UpToDate" | "Outdated" | "Inconsistent" | "Diskless" | "Consistent") {
                    return Err(format!("drbd {res} {node} {state}: expected UpToDate, Outdated, Inconsistent, Consistent or Diskless"));
                }
                let e = t.drbd.entry(res.to_string()).or_default().entry(node.to_string()).or_insert((String::new(), false));
                e.0 = state.to_string();
            }
            _ => return Err(format!("unknown two-node command '{cmdstr}' (arbiter up|down, split on|off, bmc NODE dead|ok|ignore-on, drbd RES NODE STATE)")),
        }
        t.update_vote(&up);
        Ok(())
    }

    /// Say once per reason (and node) why a fence is blocked; always false.
    fn block_once(&mut self, by: &str, node: &str, why: String, clock_time: i64) -> bool {
        let t = self.two.as_mut().expect("the two-node world fences");
        if t.blocked.get(node) != Some(&why) {
            self.log.push(format_line("warn", clock_time, &format!("{by}/crm"), &format!("fencing '{node}' blocked: {why}")));
            t.blocked.insert(node.to_string(), why);
        }
        false
    }

    /// A fence confirmed: `node` is off and runs nothing, so `by` may take its agent lock now.
    fn fence_confirmed(&mut self, by: &str, node: &str, clock_time: i64) {
        if let Some(t) = self.two.as_mut() {
            t.blocked.remove(node);
        }
        self.locks.insert(format!("ha_agent_{node}_lock"), (by.to_string(), clock_time));
        self.log.push(format_line("info", clock_time, &format!("{by}/crm"), &format!("got lock 'ha_agent_{node}_lock'")));
    }

    /// Why the simulated arbiter and BMC would not let `by` fence `node` now (None: they would).
    fn simulated_fence_blocker(&mut self, by: &str, node: &str) -> Option<String> {
        let up = self.up_nodes();
        let t = self.two.as_mut()?;
        t.update_vote(&up);
        if !t.arbiter {
            Some("no arbiter configured: under two_node there is no vote to gate the fence on, so it is refused and the services stay in fence".to_string())
        } else if !t.arbiter_up {
            Some("the arbiter does not answer: no vote, no fence; the services stay in fence".to_string())
        } else if !t.holds_vote(by, &up) {
            Some(format!("the arbiter's vote is held by the other side ({}): this side must not fence", t.vote.clone().unwrap_or_default()))
        } else if t.bmc.get(node) == Some(&Bmc::None) {
            Some(format!("no hardware fence device is configured for '{node}': its power-off cannot be confirmed, recovery is blocked"))
        } else if t.bmc.get(node) == Some(&Bmc::Dead) {
            Some(format!("the BMC of '{node}' does not answer: power-off cannot be confirmed, recovery is blocked"))
        } else {
            None
        }
    }

    /// twonode's fence of `node` on behalf of `by`: the arbiter's vote, then the BMC's power-off,
    /// confirmed; then power on again (fence action reboot) unless the BMC ignores it. With a
    /// real fencer, its answer decides instead of the simulated arbiter and BMC.
    pub fn twonode_fence(&mut self, by: &str, node: &str, clock_time: i64) -> bool {
        if !self.nodes.contains_key(node) {
            let why = format!("'{node}' is not a node of this cluster: nothing to fence, nothing is recovered");
            return self.block_once(by, node, why, clock_time);
        }
        let id = format!("{by}/crm");
        if let Some(mut f) = self.fencer.take() {
            let r = f.fence(by, node);
            self.fencer = Some(f);
            return match r {
                Ok(summary) => {
                    self.log.push(format_line("info", clock_time, &id, &format!("fencing '{node}': {summary}")));
                    self.hw_log("info", &format!("execute power {node} off"), "fence");
                    self.set_power(node, false);
                    self.fence_confirmed(by, node, clock_time);
                    true
                }
                Err(why) => self.block_once(by, node, why, clock_time),
            };
        }
        if let Some(why) = self.simulated_fence_blocker(by, node) {
            return self.block_once(by, node, why, clock_time);
        }
        let ignore_on = self.two.as_ref().is_some_and(|t| t.bmc.get(node) == Some(&Bmc::IgnoreOn));
        self.log.push(format_line("info", clock_time, &id, &format!("fencing '{node}': arbiter vote held, BMC power off")));
        self.hw_log("info", &format!("execute power {node} off"), "bmc");
        self.set_power(node, false);
        self.log.push(format_line("info", clock_time, &id, &format!("fencing '{node}': BMC confirms power is off")));
        self.fence_confirmed(by, node, clock_time);
        if ignore_on {
            self.hw_log("warn", &format!("BMC of '{node}' ignored power on: '{node}' stays off"), "bmc");
        } else {
            self.hw_log("info", &format!("execute power {node} on"), "bmc");
            self.set_power(node, true);
        }
        true
    }

    pub fn refused(&self) -> Option<&str> {
        self.refused.as_deref()
    }

    /// The arbiter re-decides on every membership change; it keeps its vote with the side that
    /// had it while that side still reaches it.
    fn refresh_vote(&mut self) {
        let up = self.up_nodes();
        if let Some(t) = self.two.as_mut() {
            t.update_vote(&up);
        }
    }

    fn step(&mut self, node: &str, id: &'static str) -> bool {
        self.refresh_vote();
        let mut clock = if id == "crm" { self.nodes[node].crm_clock } else { self.nodes[node].lrm_clock };
        clock.delay = 0;
        clock.time = self.time;
        let (alive, clock) = if id == "crm" {
            let mut crm = self.nodes.get_mut(node).unwrap().crm.take().unwrap();
            let mut env = SimEnv::new(self, node, id, clock);
            let alive = crm.work(&mut env);
            let c = env.clock;
            if self.nodes[node].power {
                self.nodes.get_mut(node).unwrap().crm = Some(crm);
            }
            (alive, c)
        } else {
            let mut lrm = self.nodes.get_mut(node).unwrap().lrm.take().unwrap();
            let mut env = SimEnv::new(self, node, id, clock);
            let alive = lrm.work(&mut env);
            let c = env.clock;
            if lrm.wrote_status_at_startup {
                self.lrm_wrote_startup = true;
            }
            if self.nodes[node].power {
                self.nodes.get_mut(node).unwrap().lrm = Some(lrm);
            }
            (alive, c)
        };
        let mut clock = clock;
        clock.delay = 0;
        clock.time += 1;
        let d = self.nodes.get_mut(node).unwrap();
        if id == "crm" {
            d.crm_clock = clock;
        } else {
            d.lrm_clock = clock;
        }
        alive
    }

    /// Run the scenario to its end. Errors stop the run (bad command, time limit) and are also
    /// written to the log.
    pub fn run(&mut self) -> Result<(), String> {
        self.hw_log("info", "starting simulation", "hardware");
        if let Some(r) = self.refused.clone() {
            self.hw_log("err", &r, "hardware");
            return Err(r);
        }
        if let Some(t) = &self.two {
            if !t.arbiter {
                self.hw_log("warn", "two_node without an arbiter: a node that fails cannot be fenced (no vote to gate on), its services will stay in fence", "hardware");
            }
        }
        let (mut last_cmd, mut next_cmd_at, mut loop_count) = (0i64, 0i64, 0u64);
        let (mut skip_crm, mut skip_lrm) = (0u32, 0u32);
        loop {
            let start = self.time;
            let nodes: Vec<String> = self.nodes.keys().cloned().collect();
            let looptime = (nodes.len() as i64 * 2).max(20);
            let mut first = true;
            for node in &nodes {
                if self.nodes[node].crm.is_some() {
                    let mut exit = false;
                    if skip_crm == 0 {
                        exit = !self.step(node, "crm");
                    } else if first {
                        self.hw_log("info", "skipping CRM round", "run-loop");
                    }
                    self.time = self.time.max(self.nodes[node].crm_clock.time);
                    if exit && self.nodes[node].crm.is_some() {
                        self.node_log(node, "crm", "info", "exit (loop end)");
                        self.nodes.get_mut(node).unwrap().crm = None;
                        let shutdown = self.nodes[node].shutdown.clone().unwrap_or_default();
                        if shutdown == "reboot" {
                            self.command(&format!("power {node} off"), "reboot")?;
                            self.command(&format!("power {node} on"), "reboot")?;
                        } else if shutdown == "shutdown" {
                            self.command(&format!("power {node} off"), "shutdown")?;
                        } else if !self.nodes[node].crm_stop {
                            return Err(format!("unexpected CRM exit on {node}"));
                        }
                        self.nodes.get_mut(node).unwrap().crm_stop = false;
                    }
                }
                if self.nodes[node].lrm.is_some() {
                    let mut exit = false;
                    if skip_lrm == 0 {
                        exit = !self.step(node, "lrm");
                    } else if first {
                        self.hw_log("info", "skipping LRM round", "run-loop");
                    }
                    self.time = self.time.max(self.nodes[node].lrm_clock.time);
                    if exit && self.nodes[node].lrm.is_some() {
                        self.node_log(node, "lrm", "info", "exit (loop end)");
                        self.nodes.get_mut(node).unwrap().lrm = None;
                        let shutdown = self.nodes[node].shutdown.clone().unwrap_or_default();
                        if self.nodes[node].lrm_restart {
                            self.nodes.get_mut(node).unwrap().lrm_restart = false;
                            self.start_lrm(node);
                        } else if shutdown == "reboot" || shutdown == "shutdown" {
                            self.command(&format!("crm {node} stop"), &shutdown)?;
                        } else {
                            return Err(format!("unexpected LRM exit on {node}"));
                        }
                    }
                }
                for n in &nodes {
                    if !self.watchdog_check(n) {
                        self.command(&format!("power {n} off"), "watchdog")?;
                        self.hw_log("info", &format!("server '{n}' stopped by poweroff (watchdog)"), "hardware");
                        let d = self.nodes.get_mut(n).unwrap();
                        d.crm = None;
                        d.lrm = None;
                    }
                }
                first = false;
            }
            skip_crm = skip_crm.saturating_sub(1);
            skip_lrm = skip_lrm.saturating_sub(1);
            if self.time - start < looptime {
                self.time = start + looptime;
            }
            if self.time > MAX_SIM_TIME {
                let msg = format!("simulation exceeded maximum time ({MAX_SIM_TIME}) - force end");
                self.hw_log("err", &msg, "hardware");
                return Err(msg);
            }
            let now = self.time;
            for d in self.nodes.values_mut() {
                d.lrm_clock = Clock { time: now, delay: 0 };
                d.crm_clock = Clock { time: now, delay: 0 };
            }
            if self.time < next_cmd_at {
                continue;
            }
            if loop_count % 5 == 0 {
                match self.cmdlist.pop_front() {
                    None => {
                        if self.time - last_cmd > 500 {
                            self.hw_log("info", "exit simulation - done", "hardware");
                            return Ok(());
                        }
                    }
                    Some(list) => {
                        for cmd in list {
                            last_cmd = self.time;
                            let w: Vec<&str> = cmd.split_whitespace().collect();
                            match w.as_slice() {
                                ["delay", n] => {
                                    let n: i64 = n.parse().map_err(|_| format!("'{cmd}': delay needs a number of seconds"))?;
                                    self.hw_log("info", &format!("execute {cmd}"), "cmdlist");
                                    next_cmd_at = self.time + n;
                                }
                                ["skip-round", what @ ("crm" | "lrm"), rest @ ..] => {
                                    let n: u32 = match rest.first() {
                                        Some(x) => x.parse().map_err(|_| format!("'{cmd}': skip-round takes a number of rounds"))?,
                                        None => 1,
                                    };
                                    self.hw_log("info", &format!("execute {cmd}"), "cmdlist");
                                    if *what == "crm" {
                                        skip_crm += n;
                                    } else {
                                        skip_lrm += n;
                                    }
                                }
                                _ => {
                                    if let Err(e) = self.command(&cmd, "cmdlist") {
                                        self.hw_log("err", &e, "cmdlist");
                                        return Err(e);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            loop_count += 1;
        }
    }
}

/// The `fa:` services of the simulator fail on purpose: `fa:1SMX...` digits after the first are
/// start failures, migrate failures, cannot-stop, exists, and the node (nodeN) they fail on.
pub fn decode_fail(id: &str) -> (u32, u32, bool, u32) {
    let d: Vec<u32> = id.chars().filter_map(|c| c.to_digit(10)).collect();
    let get = |i: usize| d.get(i).copied();
    (get(1).unwrap_or(0), get(2).unwrap_or(0), get(3).unwrap_or(0) != 0, get(5).unwrap_or(0))
}
