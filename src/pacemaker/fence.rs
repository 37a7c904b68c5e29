//! The CIB's fencing as twonode's fence engine takes it: a node's devices in the fencer's order
//! ([`Cib::fence_plan`]) turned into [`FenceTarget`]s of typed-config-ready [`DeviceSpec`]s, so
//! `twonode fence NODE --cib` and `fence test --cib` run the SAME engine, drivers, power-state
//! verification, exit codes and audit log as the cluster.conf path. Pure: CIB in, runs out.
//!
//! The mapping, as pacemaker's fencer hands a device to its agent:
//! * `type` becomes `agent=` (the engine picks the driver from it: fence_ipmilan, fence_ipmilanplus,
//!   fence_idrac, fence_ilo3..5 via IPMI; fence_ilo/fence_ilo2 via RIBCL; fence_redfish;
//!   fence_apc_snmp; anything else = the installed agent program).
//! * instance_attributes keep their fence-agents names; every spelling (`ip`/`ipaddr`,
//!   `username`/`login`, `password`/`passwd`, `plug`/`port`, ...) is re-keyed by the ONE option
//!   table, [`crate::fence::options::canonical_map`]. The `pcmk_*` ones are the fencer's and are
//!   not passed (pacemaker does not pass them either).
//! * the plug: a `port`/`plug` the device sets itself, else the node's entry of `pcmk_host_map`,
//!   else the node's name (pacemaker's `pcmk_host_argument`, default `port`; `none` passes none).
//! * `pcmk_reboot_action` / `pcmk_off_action` replace the action asked for (e.g. a device whose
//!   reboot is `off`); levels asking for different actions run one after the other.
//! * delays (`pcmk_delay_base`, `pcmk_delay_max`, the agent's `delay`, `priority-fencing-delay`)
//!   are NOT applied: they break the race of two fencers, and `twonode fence` is the manual path
//!   (an admin decided). They are named in the notes.
//! * devices pacemaker would not use (meta `target-role=Stopped`, a static list without the node,
//!   a level naming a missing device) are skipped with a note; devices whose targets are known only
//!   at fence time (`pcmk_host_check=dynamic-list|status`, no list) are skipped too ("targets
//!   unknown": twonode does not guess) unless the admin names the device (`--device`).
use super::cib::{Cib, Device, LevelTarget, PlanLevel, Usable};
use crate::fence::engine::Action;
use crate::fence::options;
use crate::fence::spec::{DeviceSpec, FenceTarget, Method};
use serde::Serialize;
use std::collections::BTreeMap;

/// One engine run: consecutive levels asking the agents for the same action.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// The action the agents are asked for (after pcmk_reboot_action / pcmk_off_action).
    pub action: Action,
    /// Levels as the engine's methods, in order (`level 1`, ... or the device id without topology).
    pub target: FenceTarget,
}

/// How `node` gets fenced from the CIB.
#[derive(Debug, Clone, Serialize)]
pub struct CibFence {
    pub node: String,
    /// The action asked for.
    pub asked: Action,
    pub from_topology: bool,
    pub runs: Vec<Run>,
    /// What was skipped and why, what is not applied (delays): one line each.
    pub notes: Vec<String>,
}

impl CibFence {
    /// Every device used, for the plan.
    pub fn devices(&self) -> impl Iterator<Item = (&Method, &DeviceSpec)> {
        self.runs.iter().flat_map(|r| r.target.methods.iter().flat_map(|m| m.devices.iter().map(move |d| (m, d))))
    }
}

/// Why no run could be made. Exit code 1 (a configuration matter) at the CLI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PlanError {
    pub message: String,
}

fn err(message: String) -> PlanError {
    PlanError { message }
}

/// The action a device's agent is asked for when pacemaker is asked for `asked`.
pub fn device_action(d: &Device, asked: Action) -> Result<Action, String> {
    let (set, name) = match asked {
        Action::Reboot => (d.reboot_action.as_deref(), "pcmk_reboot_action"),
        Action::Off => (d.off_action.as_deref(), "pcmk_off_action"),
        other => return Ok(other),
    };
    match set.map(|s| s.trim().to_ascii_lowercase()) {
        None => Ok(asked),
        Some(v) if v.is_empty() => Ok(asked),
        Some(v) => match v.as_str() {
            "reboot" => Ok(Action::Reboot),
            "off" => Ok(Action::Off),
            "on" => Ok(Action::On),
            other => Err(format!("device {}: {name}={other:?} is not reboot, off or on", d.id)),
        },
    }
}

/// The device's parameters as its agent gets them for `node` (see the module doc).
pub fn device_spec(d: &Device, node: &str, map_port: Option<&str>) -> DeviceSpec {
    let mut raw: BTreeMap<String, String> = BTreeMap::new();
    for p in &d.params {
        let k = options::normalise_key(&p.name);
        // the fencer's own settings, the action (pacemaker sets it) and the race-breaking delay
        if k.starts_with("pcmk_") || k == "action" || k == "delay" {
            continue;
        }
        raw.insert(k, p.expose().to_string());
    }
    let mut params = options::canonical_map(&raw);
    params.insert("agent".into(), d.agent.clone());
    // pacemaker's default is `port` when the agent's metadata has a plug, else none: the BMC
    // agents (IPMI, iLO, Redfish) fence the machine they sit in and have none
    let bmc = matches!(
        crate::fence::engine::driver_kind(&DeviceSpec::new(d.id.clone(), params.clone())),
        Ok(crate::fence::engine::DriverKind::Ipmi | crate::fence::engine::DriverKind::Ribcl | crate::fence::engine::DriverKind::Redfish)
    );
    let host_arg = match d.param("pcmk_host_argument") {
        Some(p) => options::normalise_key(p.expose()),
        None if bmc => "none".into(),
        None => "port".into(),
    };
    if host_arg != "none" && !host_arg.is_empty() {
        let key = options::canonical(&host_arg);
        if options::get(&params, &key).is_none() {
            params.insert(key, map_port.unwrap_or(node).to_string());
        }
    }
    DeviceSpec::new(d.id.clone(), params)
}

fn usable_note(u: Usable, dev: &str, node: &str, cib: &Cib) -> String {
    match u {
        Usable::Disabled => format!("device {dev} skipped: disabled (meta target-role=Stopped); enable it with `pcs stonith enable {dev}`"),
        Usable::NotATarget => format!("device {dev} skipped: its pcmk_host_list/pcmk_host_map does not name {node}"),
        Usable::Missing => format!("device {dev} skipped: the fencing topology names it, but the CIB has no such stonith resource"),
        Usable::Unknown => {
            let why = cib.device(dev).map(|d| match &d.targets {
                super::cib::Targets::Unknown { why } => why.clone(),
                _ => String::new(),
            });
            format!(
                "device {dev} skipped: targets unknown ({}); twonode does not guess whether it can fence {node}: name it with --device {dev} to use it",
                why.unwrap_or_default()
            )
        }
        Usable::Yes => String::new(),
    }
}

fn delay_notes(cib: &Cib, node: &str, ids: &[String], notes: &mut Vec<String>) {
    for id in ids {
        let Some(d) = cib.device(id) else { continue };
        let mut what = Vec::new();
        if d.delay_base.is_some() {
            what.push(format!("pcmk_delay_base ({} ms for {node})", d.static_delay_ms(node)));
        }
        if let Some(ms) = d.delay_max_ms {
            what.push(format!("pcmk_delay_max ({ms} ms)"));
        }
        if let Some(p) = d.param("delay") {
            what.push(format!("delay={}", p.shown()));
        }
        if !what.is_empty() {
            notes.push(format!(
                "device {id}: {} NOT applied: delays break the race of two fencers, and `twonode fence` is the manual path (an admin decided)",
                what.join(", ")
            ));
        }
    }
    if let Some(ms) = cib.priority_fencing_delay_ms() {
        notes.push(format!("priority-fencing-delay ({ms} ms) NOT applied: the fencer's race breaker, not the manual path's"));
    }
}

/// How `node` is fenced with `asked`, from the CIB. `only`: the device the admin named
/// (`--device`): used alone, also when its targets are unknown.
pub fn plan(cib: &Cib, node: &str, asked: Action, only: Option<&str>) -> Result<CibFence, PlanError> {
    let mut notes = Vec::new();
    let mut steps: Vec<(String, Vec<String>)> = Vec::new();
    let fp = cib.fence_plan(node);
    if let Some(id) = only {
        let d = cib.device(id).ok_or_else(|| {
            let ids: Vec<&str> = cib.devices.iter().map(|d| d.id.as_str()).collect();
            err(format!("--device {id}: the CIB has no stonith resource {id} (devices: {})", if ids.is_empty() { "none".into() } else { ids.join(", ") }))
        })?;
        if d.disabled() {
            return Err(err(format!("device {id} is disabled (meta target-role=Stopped): refusing to use it; enable it with `pcs stonith enable {id}` first")));
        }
        if d.can_fence(node) == Some(false) {
            return Err(err(format!("device {id} cannot fence {node}: its pcmk_host_list/pcmk_host_map does not name it")));
        }
        if d.can_fence(node).is_none() {
            notes.push(format!("device {id}: targets unknown to the CIB; used for {node} because --device names it"));
        }
        steps.push((id.to_string(), vec![id.to_string()]));
    } else {
        if fp.from_topology {
            if let Some(t) = &fp.topology_target {
                notes.push(format!("fencing topology for {node}: {t}"));
            }
            for a in &fp.ambiguous_with {
                notes.push(format!("also matches {a}: pacemaker picks one of the matching targets in an undefined order; twonode uses the first in the CIB"));
            }
        }
        for lvl in &fp.levels {
            let label = if fp.from_topology { format!("level {}", lvl.index) } else { lvl.devices.first().map(|d| d.id.clone()).unwrap_or_default() };
            match PlanLevel::usable(lvl) {
                Some(true) => steps.push((label, lvl.devices.iter().map(|d| d.id.clone()).collect())),
                _ => {
                    for d in lvl.devices.iter().filter(|d| d.usable != Usable::Yes) {
                        let mut n = usable_note(d.usable, &d.id, node, cib);
                        if fp.from_topology {
                            n = format!("{label}: {n} (every device of a level must succeed: the level is skipped)");
                        }
                        notes.push(n);
                    }
                }
            }
        }
    }
    if steps.is_empty() {
        let known = cib.node_names();
        let why = if !known.iter().any(|n| n == node) && !cib.devices.iter().any(|d| d.can_fence(node) == Some(true)) {
            format!("{node} is not a node of the CIB (nodes: {}) and no device lists it", if known.is_empty() { "none".into() } else { known.join(", ") })
        } else {
            format!("no usable fence device can fence {node}")
        };
        let mut m = format!("{why}; nothing was done");
        for n in &notes {
            m.push_str(&format!("\n  {n}"));
        }
        if notes.is_empty() {
            m.push_str(&format!("\n  add one: pcs stonith create fence-{node} fence_ipmilan ip=BMC username=USER password=... pcmk_host_list={node}"));
        }
        return Err(err(m));
    }
    let used: Vec<String> = steps.iter().flat_map(|(_, ids)| ids.clone()).collect();
    delay_notes(cib, node, &used, &mut notes);
    let mut runs: Vec<Run> = Vec::new();
    for (label, ids) in steps {
        let mut action: Option<Action> = None;
        let mut devices = Vec::new();
        let mut bad = None;
        for id in &ids {
            let Some(d) = cib.device(id) else { continue };
            match device_action(d, asked) {
                Ok(a) if action.is_none_or(|x| x == a) => action = Some(a),
                Ok(a) => bad = Some(format!("{label}: its devices ask for different actions ({} and {}); skipped", action.map_or("", |x| x.as_str()), a.as_str())),
                Err(e) => bad = Some(format!("{label}: {e}; skipped")),
            }
            let port = match &d.targets {
                super::cib::Targets::Static { nodes } => nodes.iter().find(|(n, _)| n == node).and_then(|(_, p)| p.clone()),
                _ => None,
            };
            devices.push(device_spec(d, node, port.as_deref()));
        }
        if let Some(b) = bad {
            notes.push(b);
            continue;
        }
        let action = action.unwrap_or(asked);
        if action != asked {
            notes.push(format!("{label}: the agent is asked for {} instead of {} (pcmk_{}_action)", action.as_str(), asked.as_str(), asked.as_str()));
        }
        let method = Method { name: label, devices };
        match runs.last_mut() {
            Some(r) if r.action == action => r.target.methods.push(method),
            _ => runs.push(Run { action, target: FenceTarget { node: node.into(), nodeid: None, methods: vec![method] } }),
        }
    }
    if runs.is_empty() {
        return Err(err(format!("no usable fence device can fence {node}; nothing was done\n  {}", notes.join("\n  "))));
    }
    Ok(CibFence { node: node.into(), asked, from_topology: fp.from_topology && only.is_none(), runs, notes })
}

/// Every node's devices for `fence test` and doctor: one target per node with the levels it
/// would use (status only), and the notes of what is not tested.
pub fn test_targets(cib: &Cib) -> (Vec<FenceTarget>, Vec<String>) {
    let mut targets = Vec::new();
    let mut notes = Vec::new();
    // the CIB's nodes, then any node a device's static list names (a CIB without <nodes>)
    let mut nodes = cib.node_names();
    for d in &cib.devices {
        if let super::cib::Targets::Static { nodes: list } = &d.targets {
            for (n, _) in list {
                if !nodes.contains(n) {
                    nodes.push(n.clone());
                }
            }
        }
    }
    for node in nodes {
        match plan(cib, &node, Action::Status, None) {
            Ok(p) => {
                notes.extend(p.notes.iter().filter(|n| n.contains("skipped")).map(|n| format!("{node}: {n}")));
                let methods = p.runs.into_iter().flat_map(|r| r.target.methods).collect();
                targets.push(FenceTarget { node: node.clone(), nodeid: None, methods });
            }
            Err(e) => {
                notes.push(format!("{node}: {}", e.message.replace('\n', " ")));
                targets.push(FenceTarget { node: node.clone(), nodeid: None, methods: vec![] });
            }
        }
    }
    (targets, notes)
}

/// The topology target words for a level (for plans).
pub fn level_target_text(t: &LevelTarget) -> String {
    match t {
        LevelTarget::Node { name } => format!("target {name}"),
        LevelTarget::Pattern { regex } => format!("target-pattern {regex}"),
        LevelTarget::Attribute { name, value } => format!("target-attribute {name}={value}"),
    }
}

/// How the CIB decides a fence race (for `fence test`'s report).
pub fn race_protection(cib: &Cib) -> String {
    if let Some(ms) = cib.priority_fencing_delay_ms() {
        return format!("priority-fencing-delay {ms} ms: the node running the higher-priority resources wins");
    }
    let delayed: Vec<String> = cib
        .devices
        .iter()
        .filter(|d| !d.disabled() && (d.delay_max_ms.is_some_and(|m| m > 0) || d.delay_base.is_some()))
        .map(|d| d.id.clone())
        .collect();
    if delayed.is_empty() {
        "NONE: no pcmk_delay_max, pcmk_delay_base or priority-fencing-delay (both nodes may fence each other; unless a quorum device decides)".into()
    } else {
        format!("pcmk delays on {}", delayed.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Cib {
        let p = format!("{}/fixtures/pacemaker/{name}", env!("CARGO_MANIFEST_DIR"));
        super::super::parse(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    #[test]
    fn ipmi_device_maps_aliases_through_the_option_table() {
        let cib = fixture("healthy.xml");
        let p = plan(&cib, "node1", Action::Reboot, None).unwrap();
        assert_eq!(p.runs.len(), 1);
        let d = &p.runs[0].target.methods[0].devices[0];
        assert_eq!(d.name, "fence-node1");
        assert_eq!(d.agent(), "fence_ipmilan");
        assert_eq!(d.address(), Some("127.0.0.1"));
        assert_eq!(d.login(), Some("admin"));
        assert_eq!(d.ipport(), Some("6231"));
        assert_eq!(d.password().unwrap(), "ipmi-secret-1");
        assert!(d.params.keys().all(|k| !k.starts_with("pcmk_")), "{:?}", d.params.keys());
        assert!(!format!("{} {:?} {}", d.describe(), d.redacted(), serde_json::to_string(&p).unwrap()).contains("ipmi-secret"));
        assert!(p.notes.iter().any(|n| n.contains("pcmk_delay_max") && n.contains("NOT applied")), "{:?}", p.notes);
    }

    #[test]
    fn every_spelling_reaches_the_typed_configs() {
        let cib = fixture("passwords.xml");
        // fence_ilo with the aliases login= / passwd=: the RIBCL driver's WebBmc reads them
        let ilo = cib.device("fence-node2").unwrap();
        let d = device_spec(ilo, "node2", None);
        assert_eq!(crate::fence::engine::driver_kind(&d).unwrap(), crate::fence::engine::DriverKind::Ribcl);
        assert_eq!((d.params.get("login").map(String::as_str), d.params.get("passwd").map(String::as_str)), (Some("admin"), Some("ilo-passwd-2")));
        assert!(d.plug().is_none(), "a BMC agent gets no plug");
        let web = crate::fence::config::WebBmc::from_params(&d.params, crate::fence::config::WebKind::Ilo, None).unwrap();
        assert_eq!((web.host.as_str(), web.login.as_str(), web.password.as_str(), web.port), ("127.0.0.1", "admin", "ilo-passwd-2", 443));
        // fence_redfish's password_script is fence-agents' passwd_script
        let rf = device_spec(cib.device("fence-redfish").unwrap(), "node1", Some("1"));
        assert_eq!(rf.params.get("passwd_script").map(String::as_str), Some("/etc/twonode/redfish-pw"));
        // fence_ipmilan with ip=/username=/password=: the IPMI config
        let ipmi = device_spec(cib.device("fence-node1").unwrap(), "node1", None);
        let t = crate::fence::spec::Timing::for_device(&ipmi).unwrap();
        let c = crate::fence::config::ipmi(&ipmi, &t).unwrap();
        assert_eq!((c.host.as_str(), c.port, c.username.as_str(), c.password.as_str()), ("127.0.0.1", 6231, "admin", "ipmi-secret-1"));
    }

    #[test]
    fn host_map_port_and_unknown_targets() {
        let cib = fixture("host-map.xml");
        let p = plan(&cib, "node2", Action::Off, None).unwrap();
        assert_eq!(p.runs[0].target.methods[0].devices[0].plug(), Some("2"));
        let cib = fixture("dynamic-list.xml");
        let e = plan(&cib, "node1", Action::Reboot, None).unwrap_err();
        assert!(e.message.contains("targets unknown") && e.message.contains("--device fence-virt"), "{e}");
        let p = plan(&cib, "node1", Action::Reboot, Some("fence-virt")).unwrap();
        assert_eq!(p.runs[0].target.methods[0].devices[0].plug(), Some("node1"));
    }

    #[test]
    fn topology_levels_in_order_and_stopped_devices_skipped() {
        let cib = fixture("topology.xml");
        let p = plan(&cib, "node1", Action::Reboot, None).unwrap();
        let names: Vec<&str> = p.runs[0].target.methods.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["level 1", "level 2"]);
        let cib = fixture("device-stopped.xml");
        let e = plan(&cib, "node2", Action::Reboot, None).unwrap_err();
        assert!(e.message.contains("target-role=Stopped"), "{e}");
        let e = plan(&fixture("node-without-device.xml"), "node1", Action::Reboot, None).unwrap_err();
        assert!(e.message.contains("no usable fence device can fence node1"), "{e}");
    }

    #[test]
    fn test_targets_every_node_and_the_untested() {
        let (t, notes) = test_targets(&fixture("topology.xml"));
        let shape: Vec<(&str, usize)> = t.iter().map(|t| (t.node.as_str(), t.methods.len())).collect();
        assert_eq!(shape, [("node1", 2), ("node2", 1)]);
        assert!(notes.is_empty(), "{notes:?}");
        let (t, notes) = test_targets(&fixture("device-stopped.xml"));
        assert!(t[1].methods.is_empty());
        assert!(notes.iter().any(|n| n.starts_with("node2: ") && n.contains("target-role=Stopped")), "{notes:?}");
        // a CIB without <nodes>: the devices' lists name them
        let mut cib = fixture("healthy.xml");
        cib.nodes.clear();
        cib.node_states.clear();
        let (t, _) = test_targets(&cib);
        assert_eq!(t.iter().map(|t| t.node.as_str()).collect::<Vec<_>>(), ["node1", "node2"]);
    }

    #[test]
    fn reboot_action_override_splits_runs() {
        let mut cib = fixture("topology.xml");
        for d in cib.devices.iter_mut().filter(|d| d.id == "fence-pdu") {
            d.reboot_action = Some("off".into());
        }
        let p = plan(&cib, "node1", Action::Reboot, None).unwrap();
        assert_eq!(p.runs.len(), 2);
        assert_eq!((p.runs[0].action, p.runs[1].action), (Action::Reboot, Action::Off));
    }
}
