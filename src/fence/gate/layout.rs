//! Where the gate is in the cluster's fence methods: [`GateLayout`], computed ONCE per
//! configuration (from fence targets, or from the cluster.conf model for the validator) and read
//! by everyone who asks "is every method gated": `conf validate` (`rules.rs`), `fence test`
//! ([`race_protection`], its risks), doctor's gate and race checks, and `quorum status`.
use serde::Serialize;

use crate::clusterconf::model::Model;
use crate::fence::spec::{DeviceSpec, FenceTarget};
use crate::quorum::arbiter::wire;

use super::settings::{is_gate, is_gate_agent, GateSettings};

/// One arbiter gate device as configured (GATE.md): the first device of a method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateConf {
    /// The `<fencedevice name>`.
    pub device: String,
    pub host: String,
    pub port: u16,
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    /// Seconds the gate waits for a decision.
    pub timeout_s: Option<u64>,
}

impl GateConf {
    /// The gate device's settings as the gate itself reads them ([`GateSettings::from_params`]
    /// for the decision timeout), tolerant of what the gate would refuse (validate/doctor report that).
    pub fn of_device(d: &DeviceSpec) -> GateConf {
        let port = d.ipport().and_then(|p| p.trim().parse().ok()).unwrap_or(wire::DEFAULT_PORT);
        GateConf {
            device: d.name.clone(),
            host: d.address().unwrap_or("").trim().to_string(),
            port,
            ca: d.get(&["tlscacert"]).map(String::from),
            cert: d.get(&["tlscert"]).map(String::from),
            key: d.get(&["tlskey"]).map(String::from),
            // the decision timeout as the gate itself reads it (login_timeout, else timeout); None when unset
            timeout_s: d
                .get(&["login_timeout", "timeout"])
                .and_then(|_| GateSettings::from_params(&d.params).ok())
                .map(|g| g.timeout.as_secs()),
        }
    }

    pub fn target(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The gate devices of one fence method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MethodGates {
    /// Index of the node and of the method (in the input's order, empty methods included).
    pub node_ix: usize,
    pub method_ix: usize,
    pub node: String,
    pub method: String,
    /// How many devices the method has.
    pub devices: usize,
    /// Positions of the gate devices in the method (0 = first).
    pub gates_at: Vec<usize>,
}

/// Where the gate is (or is not) in the cluster's fence methods.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GateLayout {
    /// The gate devices configured (usually one).
    pub gates: Vec<GateConf>,
    /// Methods (node, method) that start with the gate.
    pub gated: Vec<(String, String)>,
    /// Methods without the gate first: (node, method, what is wrong).
    pub ungated: Vec<(String, String, String)>,
    /// Every method, with where its gates are (the facts the lists above are made from).
    #[serde(skip)]
    pub methods: Vec<MethodGates>,
}

impl GateLayout {
    /// The gate protects the race: present and first in every method with devices.
    pub fn complete(&self) -> bool {
        !self.gates.is_empty() && !self.gated.is_empty() && self.ungated.is_empty()
    }

    /// Some method uses the gate.
    pub fn any(&self) -> bool {
        !self.gates.is_empty()
    }

    /// Build from every method: (node, method, per device: its name and, when it is a gate, its
    /// settings).
    fn build(methods: impl IntoIterator<Item = (usize, usize, String, String, Vec<(String, Option<GateConf>)>)>) -> GateLayout {
        let mut l = GateLayout::default();
        for (node_ix, method_ix, node, method, devs) in methods {
            let gates_at: Vec<usize> = devs.iter().enumerate().filter(|(_, d)| d.1.is_some()).map(|(i, _)| i).collect();
            if !devs.is_empty() {
                for g in devs.iter().filter_map(|d| d.1.as_ref()) {
                    if !l.gates.iter().any(|x| x.device == g.device) {
                        l.gates.push(g.clone());
                    }
                }
                match gates_at.first() {
                    Some(0) => l.gated.push((node.clone(), method.clone())),
                    Some(i) => l.ungated.push((
                        node.clone(),
                        method.clone(),
                        format!("the gate is device {} of the method, not the first: {} runs before it", i + 1, devs[0].0),
                    )),
                    None => l.ungated.push((node.clone(), method.clone(), "no gate in this method".into())),
                }
            }
            l.methods.push(MethodGates { node_ix, method_ix, node, method, devices: devs.len(), gates_at });
        }
        l
    }

    /// From fence targets (what fenced runs).
    pub fn of_targets(targets: &[FenceTarget]) -> GateLayout {
        let methods: Vec<_> = targets
            .iter()
            .enumerate()
            .flat_map(|(ti, t)| {
                t.methods.iter().enumerate().map(move |(mi, m)| {
                    let devs = m.devices.iter().map(|d| (d.name.clone(), is_gate(d).then(|| GateConf::of_device(d)))).collect();
                    (ti, mi, t.node.clone(), m.name.clone(), devs)
                })
            })
            .collect();
        Self::build(methods)
    }

    /// From the cluster.conf model (the validator: broken files included; `node_ix`/`method_ix`
    /// index `m.nodes[..].methods[..]`).
    pub fn of_model(m: &Model) -> GateLayout {
        let mut methods = Vec::new();
        for (ni, n) in m.nodes.iter().enumerate() {
            let node = n.name.clone().unwrap_or_else(|| "?".into());
            for (mi, mt) in n.methods.iter().enumerate() {
                let devs = mt
                    .devices
                    .iter()
                    .map(|d| {
                        let gate = d.name.as_deref().and_then(|x| m.fencedevice(x)).filter(|fd| fd.agent.as_deref().is_some_and(is_gate_agent)).map(|fd| {
                            let spec = DeviceSpec::new(fd.name.clone().unwrap_or_default(), fd.attrs.iter().map(|a| (a.name.clone(), a.value.clone())));
                            GateConf::of_device(&spec)
                        });
                        (d.name.clone().unwrap_or_else(|| "?".into()), gate)
                    })
                    .collect();
                methods.push((ni, mi, node.clone(), mt.name.clone().unwrap_or_else(|| "?".into()), devs));
            }
        }
        Self::build(methods)
    }

    /// The gate of a cluster.conf text (None: no gate device in any method).
    pub fn of_cluster_conf(xml: &str, path: &str) -> Option<GateLayout> {
        let targets = crate::fence::spec::from_cluster_conf(xml, path).ok()?;
        let l = GateLayout::of_targets(&targets);
        l.any().then_some(l)
    }
}

/// Find the gate in the fence methods (pure).
pub fn gate_layout(targets: &[FenceTarget]) -> GateLayout {
    GateLayout::of_targets(targets)
}

/// The gate of a cluster.conf text (None: no gate device in any method).
pub fn gate_of_cluster_conf(xml: &str, path: &str) -> Option<GateLayout> {
    GateLayout::of_cluster_conf(xml, path)
}

/// The fence targets without the gate devices (they are probed as the arbiter, not as BMCs).
pub fn without_gate(targets: &[FenceTarget]) -> Vec<FenceTarget> {
    targets
        .iter()
        .map(|t| {
            let mut t = t.clone();
            for m in &mut t.methods {
                m.devices.retain(|d| !is_gate(d));
            }
            t
        })
        .collect()
}

/// How the fence race of a two-node cluster is decided, from its fence targets: the arbiter
/// gate (every method gated), a delay, or nothing.
pub fn race_protection(targets: &[FenceTarget]) -> String {
    let layout = GateLayout::of_targets(targets);
    if layout.complete() {
        let g = &layout.gates[0];
        let host = if g.host.is_empty() { "?" } else { g.host.as_str() };
        return format!("arbiter gate {} ({host}:{}): only the node holding the arbiter's vote fences (no arbiter, no fencing)", g.device, g.port);
    }
    if layout.any() {
        return "PARTIAL arbiter gate: some methods are not gated (twonode conf validate shows which)".into();
    }
    let fenced = targets.iter().filter(|t| t.methods.iter().any(|m| !m.devices.is_empty()));
    let delayed: Vec<String> = fenced
        .filter(|t| {
            t.methods.iter().find(|m| !m.devices.is_empty()).is_some_and(|m| {
                m.devices.iter().any(|d| crate::fence::spec::Timing::for_device(d).map(|x| !x.delay.is_zero()).unwrap_or(false))
            })
        })
        .map(|t| t.node.clone())
        .collect();
    if delayed.is_empty() {
        "none: both nodes can fence each other at once".into()
    } else {
        format!("static delay on {} (the other node loses a race)", delayed.join(", "))
    }
}
