//! The pacemaker CIB (`cibadmin -Q`, a crm_report's cib.xml) read into a typed model: fence devices
//! and their targets, the fencing topology, cluster properties, DRBD promotable clones, location
//! constraints (with crm-fence-peer's `drbd-fence-by-handler-*`) and node states. Pure: text in,
//! model out. Secrets (passwords, SNMP communities) are masked in every Display, Debug and JSON.
use super::xml::{self, Element, XmlError};
use serde::{Serialize, Serializer};
use std::fmt;

pub use crate::clusterconf::document::MASK;

/// A CIB that cannot be read: malformed XML (with line:column) or not a CIB at all.
pub type CibError = XmlError;

/// Whether a parameter's value is a secret: fence-agents' passwords, SNMP communities, IPMI's
/// Kg key, and anything named like a password or secret.
pub fn is_secret(name: &str) -> bool {
    crate::clusterconf::document::is_secret_attr(name) || matches!(name, "kg" | "snmp_priv_passwd")
}

/// One agent parameter. The value of a secret is only reachable through [`Param::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    value: String,
    pub secret: bool,
}

impl Param {
    pub fn new(name: &str, value: &str) -> Param {
        Param { name: name.into(), value: value.into(), secret: is_secret(name) }
    }
    /// The value as it may be shown: masked when secret.
    pub fn shown(&self) -> &str {
        if self.secret {
            MASK
        } else {
            &self.value
        }
    }
    /// The real value, for handing to a fence agent (never for output).
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}", self.name, self.shown())
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.shown())
    }
}

impl Serialize for Param {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Param", 3)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("value", self.shown())?;
        st.serialize_field("secret", &self.secret)?;
        st.end()
    }
}

/// A pacemaker interval ("15s", "500ms", "2min", "1h", bare seconds) in milliseconds.
pub fn parse_interval_ms(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1000,
        "ms" | "msec" | "msecs" => 1,
        "us" | "usec" | "usecs" => return Some(n / 1000),
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// pacemaker's booleans (crm_is_true).
pub fn is_true(v: &str) -> bool {
    matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "on" | "yes" | "y" | "1")
}

/// `pcmk_delay_base`: one delay for every target, or a per-node map (`node1:5s;node2:0s`, pacemaker 2.1.2+).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DelayBase {
    All { ms: u64 },
    PerNode { map: Vec<(String, u64)> },
}

impl DelayBase {
    pub fn parse(v: &str) -> Option<DelayBase> {
        if v.contains(':') {
            let mut map = Vec::new();
            for item in v.split([';', ',', ' ']).filter(|s| !s.trim().is_empty()) {
                let (n, d) = item.split_once(':')?;
                map.push((n.trim().to_string(), parse_interval_ms(d)?));
            }
            Some(DelayBase::PerNode { map })
        } else {
            parse_interval_ms(v).map(|ms| DelayBase::All { ms })
        }
    }
    /// The static delay before fencing `node` (0 when the map does not name it).
    pub fn for_node(&self, node: &str) -> u64 {
        match self {
            DelayBase::All { ms } => *ms,
            DelayBase::PerNode { map } => map.iter().find(|(n, _)| n == node).map_or(0, |(_, d)| *d),
        }
    }
}

/// Which nodes a device can fence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Targets {
    /// A static list (`pcmk_host_list`, or the names of `pcmk_host_map`), with the port each maps to.
    Static { nodes: Vec<(String, Option<String>)> },
    /// Asked from the device at fence time (`dynamic-list`, `status`, or no list at all): unknown
    /// here, and never guessed.
    Unknown { why: String },
    /// `pcmk_host_check=none`: the device claims every node.
    Any,
}

/// A `class="stonith"` primitive.
#[derive(Debug, Clone, Serialize)]
pub struct Device {
    pub id: String,
    /// The fence agent (`type`), e.g. `fence_ipmilan`.
    pub agent: String,
    /// Agent parameters (instance_attributes, the `pcmk_*` ones included), in CIB order.
    pub params: Vec<Param>,
    pub targets: Targets,
    pub host_check: Option<String>,
    pub delay_base: Option<DelayBase>,
    pub delay_max_ms: Option<u64>,
    pub reboot_action: Option<String>,
    pub off_action: Option<String>,
    /// meta `target-role` (`Stopped` disables the device).
    pub target_role: Option<String>,
    /// meta `priority`.
    pub priority: Option<i64>,
    pub line: usize,
}

impl Device {
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }
    pub fn disabled(&self) -> bool {
        self.target_role.as_deref().is_some_and(|r| r.eq_ignore_ascii_case("stopped"))
    }
    /// Whether the device can fence `node`: Some(true/false) when known, None when the device
    /// decides at fence time.
    pub fn can_fence(&self, node: &str) -> Option<bool> {
        match &self.targets {
            Targets::Static { nodes } => Some(nodes.iter().any(|(n, _)| n == node)),
            Targets::Unknown { .. } => None,
            Targets::Any => Some(true),
        }
    }
    /// The static delay before fencing `node`, ms.
    pub fn static_delay_ms(&self, node: &str) -> u64 {
        self.delay_base.as_ref().map_or(0, |d| d.for_node(node))
    }
}

/// Whom a fencing level applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LevelTarget {
    Node { name: String },
    Pattern { regex: String },
    Attribute { name: String, value: String },
}

/// A `fencing-topology/fencing-level`.
#[derive(Debug, Clone, Serialize)]
pub struct Level {
    pub id: String,
    pub index: u32,
    pub devices: Vec<String>,
    pub target: LevelTarget,
    pub line: usize,
}

/// A node of `configuration/nodes`, with its attributes (topology's target-attribute reads them).
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub id: String,
    pub uname: String,
    pub attributes: Vec<(String, String)>,
}

/// `status/node_state`.
#[derive(Debug, Clone, Serialize)]
pub struct NodeState {
    pub id: String,
    pub uname: String,
    pub in_ccm: Option<String>,
    pub crmd: Option<String>,
    pub expected: Option<String>,
    pub join: Option<String>,
}

impl NodeState {
    /// Member of the cluster and its controller online.
    pub fn online(&self) -> bool {
        self.in_ccm.as_deref().is_some_and(|v| is_true(v) || v.chars().all(|c| c.is_ascii_digit()) && v != "0")
            && self.crmd.as_deref() == Some("online")
    }
}

/// An `ocf:linbit:drbd` primitive and the clone around it.
#[derive(Debug, Clone, Serialize)]
pub struct DrbdClone {
    /// The clone's id (what constraints name), or the primitive's when it is not cloned.
    pub clone_id: String,
    pub primitive_id: String,
    /// `drbd_resource`: the DRBD resource name on the nodes.
    pub drbd_resource: Option<String>,
    /// `promotable=true` (or a legacy `<master>`).
    pub promotable: bool,
    /// Written as the legacy `<master>` element (pacemaker 1.x schemas).
    pub legacy_master: bool,
    pub line: usize,
}

/// A rule's expression (`attribute operation value`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expr {
    pub attribute: String,
    pub operation: String,
    pub value: Option<String>,
}

/// A rule of a location constraint.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub id: String,
    pub role: Option<String>,
    pub score: Option<String>,
    pub expressions: Vec<Expr>,
}

/// An `rsc_location`.
#[derive(Debug, Clone, Serialize)]
pub struct Location {
    pub id: String,
    pub rsc: String,
    pub node: Option<String>,
    pub score: Option<String>,
    pub role: Option<String>,
    pub rules: Vec<Rule>,
    pub line: usize,
}

impl Location {
    /// A crm-fence-peer.9.sh constraint.
    pub fn is_fence_by_handler(&self) -> bool {
        self.id.starts_with("drbd-fence-by-handler-")
    }
    /// For a crm-fence-peer constraint: the node that may still be promoted (`#uname ne NODE`).
    pub fn fence_handler_keeps(&self) -> Option<&str> {
        self.rules
            .iter()
            .flat_map(|r| &r.expressions)
            .find(|e| e.attribute == "#uname" && e.operation == "ne")
            .and_then(|e| e.value.as_deref())
    }
}

/// A cluster property (`crm_config/cluster_property_set/nvpair`).
#[derive(Debug, Clone, Serialize)]
pub struct Property {
    pub name: String,
    pub value: String,
    pub set: String,
    pub line: usize,
}

/// A resource's meta `priority` (for priority-fencing-delay).
#[derive(Debug, Clone, Serialize)]
pub struct ResourcePriority {
    pub id: String,
    pub priority: i64,
}

/// The whole CIB as twonode reads it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cib {
    pub validate_with: Option<String>,
    pub have_quorum: Option<bool>,
    pub nodes: Vec<Node>,
    pub properties: Vec<Property>,
    pub devices: Vec<Device>,
    pub levels: Vec<Level>,
    pub drbd: Vec<DrbdClone>,
    pub locations: Vec<Location>,
    pub priorities: Vec<ResourcePriority>,
    pub node_states: Vec<NodeState>,
}

/// Fencing facts of one property, read with pacemaker's defaults.
impl Cib {
    pub fn property(&self, name: &str) -> Option<&Property> {
        self.properties.iter().find(|p| p.name == name)
    }

    /// Fencing on (`fencing-enabled` of pacemaker 3 wins over `stonith-enabled`; default true).
    pub fn fencing_enabled(&self) -> bool {
        self.property("fencing-enabled").or_else(|| self.property("stonith-enabled")).is_none_or(|p| is_true(&p.value))
    }

    /// The property that switches fencing, when set.
    pub fn fencing_property(&self) -> Option<&Property> {
        self.property("fencing-enabled").or_else(|| self.property("stonith-enabled"))
    }

    pub fn priority_fencing_delay_ms(&self) -> Option<u64> {
        self.property("priority-fencing-delay").and_then(|p| parse_interval_ms(&p.value)).filter(|&ms| ms > 0)
    }

    /// `stonith-watchdog-timeout` other than 0 (negative = derived from SBD_WATCHDOG_TIMEOUT: on too).
    pub fn watchdog_timeout(&self) -> Option<&Property> {
        self.property("stonith-watchdog-timeout").filter(|p| {
            let v = p.value.trim();
            !v.is_empty() && v != "0" && parse_interval_ms(v) != Some(0)
        })
    }

    pub fn device(&self, id: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.id == id)
    }

    /// The cluster's node names: configuration/nodes, then status, then device targets.
    pub fn node_names(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |n: &str| {
            if !n.is_empty() && !out.iter().any(|x| x == n) {
                out.push(n.to_string());
            }
        };
        for n in &self.nodes {
            add(&n.uname);
        }
        for s in &self.node_states {
            add(&s.uname);
        }
        out
    }

    fn node_attr(&self, node: &str, attr: &str) -> Option<&str> {
        self.nodes.iter().find(|n| n.uname == node)?.attributes.iter().find(|(k, _)| k == attr).map(|(_, v)| v.as_str())
    }

    /// Whether a level applies to `node`.
    pub fn level_applies(&self, level: &Level, node: &str) -> bool {
        match &level.target {
            LevelTarget::Node { name } => name == node,
            // pacemaker matches with regexec(REG_EXTENDED), unanchored
            LevelTarget::Pattern { regex } => regex::Regex::new(regex).is_ok_and(|r| r.is_match(node)),
            LevelTarget::Attribute { name, value } => self.node_attr(node, name) == Some(value.as_str()),
        }
    }

    /// Nodes a device may run on: all nodes, minus `-INFINITY` locations; with
    /// `symmetric-cluster=false`, only nodes with a positive score.
    pub fn device_allowed_nodes(&self, id: &str) -> Vec<String> {
        let symmetric = self.property("symmetric-cluster").is_none_or(|p| is_true(&p.value));
        let locs: Vec<&Location> = self.locations.iter().filter(|l| l.rsc == id && l.node.is_some()).collect();
        self.node_names()
            .into_iter()
            .filter(|n| {
                let score = locs.iter().find(|l| l.node.as_deref() == Some(n)).and_then(|l| l.score.clone());
                match score.as_deref() {
                    Some(s) if s.starts_with('-') => false,
                    Some(_) => true,
                    None => symmetric,
                }
            })
            .collect()
    }

    /// How `node` gets fenced, in the order the fencer tries: the topology levels that apply to it
    /// (ascending index), or else every device that can fence it. See [`FencePlan`].
    ///
    /// Like pacemaker's fencer (`find_topology_for_host`): levels whose `target` is the node's
    /// name (case-insensitive) win outright; otherwise the first target-pattern/target-attribute
    /// that matches. The fencer picks that one in hash-table order, so when several match, which
    /// one applies is undefined: the plan takes the first in CIB order and names the others in
    /// `ambiguous_with`.
    pub fn fence_plan(&self, node: &str) -> FencePlan {
        let key = |l: &Level| match &l.target {
            LevelTarget::Node { name } => format!("target {name}"),
            LevelTarget::Pattern { regex } => format!("target-pattern {regex}"),
            LevelTarget::Attribute { name, value } => format!("target-attribute {name}={value}"),
        };
        let by_name: Vec<&Level> = self.levels.iter().filter(|l| matches!(&l.target, LevelTarget::Node { name } if name.eq_ignore_ascii_case(node))).collect();
        let mut ambiguous_with = Vec::new();
        let mut levels = if !by_name.is_empty() {
            by_name
        } else {
            let mut keys: Vec<String> = Vec::new();
            for l in self.levels.iter().filter(|l| !matches!(l.target, LevelTarget::Node { .. }) && self.level_applies(l, node)) {
                if !keys.contains(&key(l)) {
                    keys.push(key(l));
                }
            }
            ambiguous_with = keys.iter().skip(1).cloned().collect();
            match keys.first() {
                Some(k) => self.levels.iter().filter(|l| &key(l) == k).collect(),
                None => vec![],
            }
        };
        levels.sort_by_key(|l| l.index);
        if !levels.is_empty() {
            return FencePlan {
                node: node.into(),
                from_topology: true,
                topology_target: Some(key(levels[0])),
                ambiguous_with,
                levels: levels
                    .into_iter()
                    .map(|l| PlanLevel { index: l.index, level_id: Some(l.id.clone()), devices: l.devices.iter().map(|d| self.plan_device(d, node)).collect() })
                    .collect(),
            };
        }
        let mut devs: Vec<&Device> = self.devices.iter().filter(|d| d.can_fence(node) != Some(false)).collect();
        // the fencer tries higher `priority` first
        devs.sort_by_key(|d| std::cmp::Reverse(d.priority.unwrap_or(0)));
        FencePlan {
            node: node.into(),
            from_topology: false,
            topology_target: None,
            ambiguous_with: vec![],
            levels: devs.into_iter().map(|d| PlanLevel { index: 0, level_id: None, devices: vec![self.plan_device(&d.id, node)] }).collect(),
        }
    }

    fn plan_device(&self, id: &str, node: &str) -> PlanDevice {
        match self.device(id) {
            None => PlanDevice { id: id.into(), usable: Usable::Missing, port: None },
            Some(d) => {
                let port = match &d.targets {
                    Targets::Static { nodes } => nodes.iter().find(|(n, _)| n == node).and_then(|(_, p)| p.clone()),
                    _ => None,
                };
                let usable = if d.disabled() {
                    Usable::Disabled
                } else {
                    match d.can_fence(node) {
                        Some(true) => Usable::Yes,
                        Some(false) => Usable::NotATarget,
                        None => Usable::Unknown,
                    }
                };
                PlanDevice { id: id.into(), usable, port }
            }
        }
    }
}

/// Whether a device of a plan can do its part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Usable {
    Yes,
    /// Targets are asked from the device at fence time.
    Unknown,
    /// meta target-role=Stopped.
    Disabled,
    /// Its static list does not name the node.
    NotATarget,
    /// The topology names a device the CIB does not have.
    Missing,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanDevice {
    pub id: String,
    pub usable: Usable,
    /// The port (plug) of `pcmk_host_map` for this node.
    pub port: Option<String>,
}

/// One step: every device of a level must succeed (topology), or one device (no topology).
#[derive(Debug, Clone, Serialize)]
pub struct PlanLevel {
    /// Topology index; 0 without topology.
    pub index: u32,
    pub level_id: Option<String>,
    pub devices: Vec<PlanDevice>,
}

impl PlanLevel {
    pub fn usable(&self) -> Option<bool> {
        if self.devices.iter().any(|d| matches!(d.usable, Usable::Disabled | Usable::NotATarget | Usable::Missing)) {
            Some(false)
        } else if self.devices.iter().all(|d| d.usable == Usable::Yes) {
            Some(true)
        } else {
            None
        }
    }
}

/// Which devices can fence a node, in the order pacemaker's fencer tries them.
#[derive(Debug, Clone, Serialize)]
pub struct FencePlan {
    pub node: String,
    pub from_topology: bool,
    /// The topology target that applies (`target node1`, `target-pattern node[12]`, ...).
    pub topology_target: Option<String>,
    /// Other pattern/attribute targets that match too: pacemaker picks one of them in an
    /// undefined order.
    pub ambiguous_with: Vec<String>,
    pub levels: Vec<PlanLevel>,
}

impl FencePlan {
    /// Some(true): a level can surely fence the node; None: only devices whose targets are unknown;
    /// Some(false): nothing can.
    pub fn can_fence(&self) -> Option<bool> {
        let u: Vec<Option<bool>> = self.levels.iter().map(PlanLevel::usable).collect();
        if u.contains(&Some(true)) {
            Some(true)
        } else if u.contains(&None) {
            None
        } else {
            Some(false)
        }
    }
}

// ------------------------------------------------------------------ reading

fn nvpairs(el: Option<&Element>) -> Vec<(String, String, usize)> {
    el.map(|e| e.children_named("nvpair").filter_map(|n| Some((n.attr("name")?.to_string(), n.attr("value").unwrap_or("").to_string(), n.line))).collect())
        .unwrap_or_default()
}

fn meta(el: &Element, name: &str) -> Option<String> {
    el.children_named("meta_attributes").flat_map(|m| nvpairs(Some(m))).find(|(k, _, _)| k == name).map(|(_, v, _)| v)
}

fn targets_of(params: &[Param]) -> (Targets, Option<String>) {
    let get = |n: &str| params.iter().find(|p| p.name == n).map(|p| p.expose().trim().to_string());
    let check = get("pcmk_host_check");
    let list: Option<Vec<String>> = get("pcmk_host_list").map(|l| l.split([' ', ',', ';']).filter(|s| !s.is_empty()).map(String::from).collect());
    let map: Option<Vec<(String, String)>> = get("pcmk_host_map").map(|m| {
        m.split([';', ',', ' '])
            .filter(|s| !s.is_empty())
            .map(|item| match item.split_once([':', '=']) {
                Some((n, p)) => (n.trim().to_string(), p.trim().to_string()),
                None => (item.trim().to_string(), item.trim().to_string()),
            })
            .collect()
    });
    let t = match check.as_deref() {
        Some("none") => Targets::Any,
        Some("dynamic-list") => Targets::Unknown { why: "pcmk_host_check=dynamic-list: the device lists its targets at fence time".into() },
        Some("status") => Targets::Unknown { why: "pcmk_host_check=status: the device is asked per node at fence time".into() },
        _ => match (list, map) {
            (Some(l), m) => Targets::Static {
                nodes: l.into_iter().map(|n| {
                    let port = m.as_ref().and_then(|m| m.iter().find(|(k, _)| *k == n).map(|(_, p)| p.clone()));
                    (n, port)
                }).collect(),
            },
            (None, Some(m)) => Targets::Static { nodes: m.into_iter().map(|(n, p)| (n, Some(p))).collect() },
            (None, None) => Targets::Unknown {
                why: "no pcmk_host_list or pcmk_host_map: pacemaker asks the device (list or status) at fence time".into(),
            },
        },
    };
    (t, check)
}

fn device_of(p: &Element) -> Device {
    let params: Vec<Param> = p.children_named("instance_attributes").flat_map(|ia| nvpairs(Some(ia))).map(|(k, v, _)| Param::new(&k, &v)).collect();
    let get = |n: &str| params.iter().find(|x| x.name == n).map(|x| x.expose().to_string());
    let (targets, host_check) = targets_of(&params);
    Device {
        id: p.attr("id").unwrap_or("").into(),
        agent: p.attr("type").unwrap_or("").into(),
        targets,
        host_check,
        delay_base: get("pcmk_delay_base").and_then(|v| DelayBase::parse(&v)),
        delay_max_ms: get("pcmk_delay_max").and_then(|v| parse_interval_ms(&v)),
        reboot_action: get("pcmk_reboot_action"),
        off_action: get("pcmk_off_action"),
        target_role: meta(p, "target-role"),
        priority: meta(p, "priority").and_then(|v| v.trim().parse().ok()),
        line: p.line,
        params,
    }
}

fn drbd_primitive(p: &Element) -> bool {
    p.attr("class") == Some("ocf") && p.attr("provider") == Some("linbit") && p.attr("type") == Some("drbd")
}

fn read_resources(el: &Element, parent: Option<&Element>, cib: &mut Cib) {
    for c in &el.children {
        match c.name.as_str() {
            "primitive" => {
                if c.attr("class") == Some("stonith") {
                    cib.devices.push(device_of(c));
                } else if drbd_primitive(c) {
                    let drbd_resource = nvpairs(c.child("instance_attributes")).into_iter().find(|(k, _, _)| k == "drbd_resource").map(|(_, v, _)| v);
                    let (clone_id, promotable, legacy, line) = match parent {
                        Some(p) if p.name == "master" => (p.attr("id").unwrap_or("").to_string(), true, true, p.line),
                        Some(p) if p.name == "clone" => {
                            (p.attr("id").unwrap_or("").to_string(), meta(p, "promotable").is_some_and(|v| is_true(&v)), false, p.line)
                        }
                        _ => (c.attr("id").unwrap_or("").to_string(), false, false, c.line),
                    };
                    cib.drbd.push(DrbdClone { clone_id, primitive_id: c.attr("id").unwrap_or("").into(), drbd_resource, promotable, legacy_master: legacy, line });
                }
                if let Some(pr) = meta(c, "priority").and_then(|v| v.trim().parse().ok()) {
                    cib.priorities.push(ResourcePriority { id: c.attr("id").unwrap_or("").into(), priority: pr });
                }
            }
            "group" | "clone" | "master" | "bundle" => {
                if let Some(pr) = meta(c, "priority").and_then(|v| v.trim().parse().ok()) {
                    cib.priorities.push(ResourcePriority { id: c.attr("id").unwrap_or("").into(), priority: pr });
                }
                read_resources(c, Some(c), cib);
            }
            _ => {}
        }
    }
}

fn location_of(l: &Element) -> Location {
    Location {
        id: l.attr("id").unwrap_or("").into(),
        rsc: l.attr("rsc").unwrap_or("").into(),
        node: l.attr("node").map(String::from),
        score: l.attr("score").map(String::from),
        role: l.attr("role").map(String::from),
        rules: l
            .children_named("rule")
            .map(|r| Rule {
                id: r.attr("id").unwrap_or("").into(),
                role: r.attr("role").map(String::from),
                score: r.attr("score").map(String::from),
                expressions: r
                    .children_named("expression")
                    .map(|e| Expr {
                        attribute: e.attr("attribute").unwrap_or("").into(),
                        operation: e.attr("operation").unwrap_or("").into(),
                        value: e.attr("value").map(String::from),
                    })
                    .collect(),
            })
            .collect(),
        line: l.line,
    }
}

fn level_of(l: &Element) -> Result<Level, CibError> {
    let err = |m: String| XmlError { line: l.line, col: l.col, message: m };
    let id = l.attr("id").unwrap_or("").to_string();
    let index: u32 = l
        .attr("index")
        .and_then(|i| i.trim().parse().ok())
        .ok_or_else(|| err(format!("fencing-level {id:?} has no numeric index (1-9)")))?;
    let devices: Vec<String> = l.attr("devices").unwrap_or("").split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    if devices.is_empty() {
        return Err(err(format!("fencing-level {id:?} names no devices")));
    }
    let target = if let Some(t) = l.attr("target") {
        LevelTarget::Node { name: t.into() }
    } else if let Some(p) = l.attr("target-pattern") {
        LevelTarget::Pattern { regex: p.into() }
    } else if let Some(a) = l.attr("target-attribute") {
        LevelTarget::Attribute { name: a.into(), value: l.attr("target-value").unwrap_or("").into() }
    } else {
        return Err(err(format!("fencing-level {id:?} has no target, target-pattern or target-attribute")));
    };
    Ok(Level { id, index, devices, target, line: l.line })
}

/// Read a CIB document (`cibadmin -Q`, `cibadmin --empty`, a crm_report's cib.xml).
pub fn parse(text: &str) -> Result<Cib, CibError> {
    let root = xml::parse(text)?;
    if root.name != "cib" {
        return Err(XmlError {
            line: root.line,
            col: root.col,
            message: format!("not a pacemaker CIB: the root element is <{}>, not <cib> (save one with `cibadmin -Q > cib.xml`)", root.name),
        });
    }
    let mut cib = Cib {
        validate_with: root.attr("validate-with").map(String::from),
        have_quorum: root.attr("have-quorum").map(is_true),
        ..Default::default()
    };
    let Some(conf) = root.child("configuration") else {
        return Err(XmlError { line: root.line, col: root.col, message: "the CIB has no <configuration>".into() });
    };
    if let Some(cc) = conf.child("crm_config") {
        for set in cc.children_named("cluster_property_set") {
            for (name, value, line) in nvpairs(Some(set)) {
                if !cib.properties.iter().any(|p| p.name == name) {
                    cib.properties.push(Property { name, value, set: set.attr("id").unwrap_or("").into(), line });
                }
            }
        }
    }
    if let Some(nodes) = conf.child("nodes") {
        for n in nodes.children_named("node") {
            let attributes = n.children_named("instance_attributes").flat_map(|ia| nvpairs(Some(ia))).map(|(k, v, _)| (k, v)).collect();
            cib.nodes.push(Node { id: n.attr("id").unwrap_or("").into(), uname: n.attr("uname").unwrap_or("").into(), attributes });
        }
    }
    if let Some(res) = conf.child("resources") {
        read_resources(res, None, &mut cib);
    }
    if let Some(cons) = conf.child("constraints") {
        cib.locations = cons.children_named("rsc_location").map(location_of).collect();
    }
    if let Some(topo) = conf.child("fencing-topology") {
        for l in topo.children_named("fencing-level") {
            cib.levels.push(level_of(l)?);
        }
    }
    if let Some(st) = root.child("status") {
        for s in st.children_named("node_state") {
            cib.node_states.push(NodeState {
                id: s.attr("id").unwrap_or("").into(),
                uname: s.attr("uname").unwrap_or("").into(),
                in_ccm: s.attr("in_ccm").map(String::from),
                crmd: s.attr("crmd").map(String::from),
                expected: s.attr("expected").map(String::from),
                join: s.attr("join").map(String::from),
            });
        }
    }
    Ok(cib)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_and_delays() {
        assert_eq!(parse_interval_ms("15s"), Some(15_000));
        assert_eq!(parse_interval_ms("15"), Some(15_000));
        assert_eq!(parse_interval_ms("500ms"), Some(500));
        assert_eq!(parse_interval_ms("2min"), Some(120_000));
        assert_eq!(parse_interval_ms("x"), None);
        let d = DelayBase::parse("node1:5s;node2:0s").unwrap();
        assert_eq!((d.for_node("node1"), d.for_node("node2"), d.for_node("node3")), (5000, 0, 0));
    }

    #[test]
    fn secrets_are_masked() {
        let p = Param::new("passwd", "hunter2");
        assert_eq!(format!("{p} {p:?}"), "passwd=******** passwd=\"********\"");
        assert!(!serde_json::to_string(&p).unwrap().contains("hunter2"));
        assert_eq!(p.expose(), "hunter2");
        assert!(!Param::new("ip", "1.2.3.4").secret);
    }

    #[test]
    fn not_a_cib() {
        let e = parse("<cluster/>").unwrap_err();
        assert!(e.message.contains("not a pacemaker CIB"), "{e}");
    }

    #[test]
    fn legacy_master() {
        let cib = parse(
            r#"<cib><configuration><crm_config/><nodes/><resources><master id="ms_r0"><primitive id="p_r0" class="ocf" provider="linbit" type="drbd"><instance_attributes id="i"><nvpair id="n" name="drbd_resource" value="r0"/></instance_attributes></primitive></master></resources><constraints/></configuration></cib>"#,
        )
        .unwrap();
        assert_eq!(cib.drbd[0].clone_id, "ms_r0");
        assert!(cib.drbd[0].promotable && cib.drbd[0].legacy_master);
        assert_eq!(cib.drbd[0].drbd_resource.as_deref(), Some("r0"));
    }
}
