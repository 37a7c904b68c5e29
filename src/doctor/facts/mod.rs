//! What doctor gathered: plain data, no behaviour. [`super::gather`] fills a [`Facts`] value over
//! the nodes ([`crate::host::Host`]), the fence devices and the arbiter; [`super::checks`] reads it
//! and never does I/O. Everything is `Serialize`/`Deserialize` so a gathering can be kept and
//! diagnosed again.
//!
//! A check area that needs facts nobody gathers yet gets its own optional struct here, in a file
//! of this folder like [`qdevice`] (`#[serde(default)] pub AREA: Option<AreaFacts>` on
//! [`NodeFacts`] or [`Facts`]): `None` means "not gathered", and older gatherings still read.
use crate::drbd::recover::NodeView;
use crate::drbd::state::ResourceConfig;
use crate::fence::test::DeviceCheck;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub mod pacemaker;
pub mod qdevice;

/// Everything the diagnosis looks at.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Facts {
    pub nodes: Vec<NodeFacts>,
    /// Non-destructive fence device checks (None: not run, e.g. no readable config).
    #[serde(skip_deserializing)]
    pub fence_checks: Option<Vec<DeviceCheck>>,
    pub arbiter: Option<ArbiterFacts>,
    /// The arbiter probed through the gate's client (cman with the gate).
    #[serde(default)]
    pub gate_probe: Option<GateProbe>,
    /// The arbiter's own certificates (server certificate, CA) when doctor runs on the arbiter
    /// machine: (what, file).
    #[serde(default)]
    pub arbiter_certs: Vec<(String, CertFacts)>,
    /// Unix time (s) of the gathering: certificate expiry is judged against it.
    #[serde(default)]
    pub now_unix: i64,
    /// The pacemaker CIB and its fence devices (None: no CIB asked for, none found here).
    #[serde(default)]
    pub pacemaker: Option<pacemaker::PacemakerFacts>,
}

impl Facts {
    /// The nodes that could be reached (the others carry only their name and `unreachable`).
    pub fn reachable(&self) -> impl Iterator<Item = &NodeFacts> {
        self.nodes.iter().filter(|n| n.unreachable.is_none())
    }
}

/// What was gathered from one node.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeFacts {
    /// The node's name (from `--node NAME=...`).
    pub name: String,
    /// Set when the node could not be reached at all (nothing else was read).
    pub unreachable: Option<String>,
    /// `uname -n` on the node.
    pub hostname: Option<String>,
    /// Path of cluster.conf on the node.
    pub conf_path: String,
    /// The bytes of cluster.conf, or why they could not be read.
    pub conf: Option<Vec<u8>>,
    pub conf_error: Option<String>,
    /// `drbdadm dump` on the node, parsed (None: could not run; see drbd_error).
    pub drbd_configs: Option<Vec<ResourceConfig>>,
    pub drbd_error: Option<String>,
    /// The node's view of each configured resource (the recovery probe), by resource name.
    pub drbd_views: BTreeMap<String, NodeView>,
    /// Guest configs found on the node.
    pub guests: Vec<GuestConf>,
    /// corosync.conf found on the node (path, text), for corosync clusters.
    #[serde(default)]
    pub corosync_path: Option<String>,
    #[serde(default)]
    pub corosync_conf: Option<String>,
    /// The node's quorum device state (corosync with quorum.device model net).
    #[serde(default)]
    pub qdevice: Option<qdevice::NodeQdevice>,
    /// The arbiter gate's client certificate as found on this node (cman with the gate).
    #[serde(default)]
    pub gate_cert: Option<CertFacts>,
    /// The gate agent's own probe on this node (`fence_twonode_arbiter`, action=monitor).
    #[serde(default)]
    pub gate_monitor: Option<GateMonitor>,
}

/// A guest configuration file as read on a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestConf {
    /// Path on the node (`/etc/pve/nodes/NODE/qemu-server/100.conf`).
    pub path: String,
    pub text: String,
}

/// What `fence_twonode_arbiter` (action=monitor) said on a node: the arbiter as that node's
/// fenced would reach it, with that node's certificate files and cluster.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateMonitor {
    /// The command that ran (`fence_twonode_arbiter` or `twonode fence gate`); None: neither found.
    pub command: Option<String>,
    pub exit: Option<i32>,
    /// Its first meaningful output line (stdout on success, stderr on failure).
    pub output: String,
}

// The probe of the arbiter through the gate's client is the gate's (`fence::gate::probe`).
pub use crate::fence::gate::{CertFacts, GateProbe};

/// What the arbiter said.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ArbiterFacts {
    /// HOST:PORT or the status socket path.
    pub target: String,
    pub reachable: bool,
    pub error: Option<String>,
    /// The status socket's JSON (when a socket was given).
    pub status: Option<serde_json::Value>,
}
