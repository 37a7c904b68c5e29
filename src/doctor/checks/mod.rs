//! The checks: pure functions from the gathered [`Facts`] to [`Finding`]s, one file per area.
//!
//! [`Context`] is what every area reads: the facts plus the cluster's configuration worked out
//! once (the stack, the newest cluster.conf or corosync.conf that parses, its fence targets).
//! [`AREAS`] lists the areas in the order they run; [`super::diagnose`] runs them all and sorts
//! the findings (errors first, then by check id; the order within one check id is the order the
//! areas produced them).
//!
//! Adding a check area: write `checks/NAME.rs` with `pub fn check(cx: &Context) -> Vec<Finding>`,
//! declare it below and put it in [`AREAS`]. It may only read facts: when it needs facts nobody
//! gathers yet, give them an optional struct in [`super::facts`] and fill it in
//! [`super::gather`] (see `facts/qdevice.rs`, `gather/node.rs`); `None` must mean "not
//! gathered" to the check (say so as an `Info` finding, or nothing), never an error.
use super::facts::{Facts, NodeFacts};
use crate::clusterconf::document::Document;
use crate::clusterconf::model::Model;
use crate::fence::spec::FenceTarget;
use crate::quorum::votequorum::QuorumConfig;
use serde::{Deserialize, Serialize};

pub use crate::diag::Severity;

pub mod arbiter;
pub mod certs;
pub mod conf;
pub mod drbd;
pub mod fence;
pub mod gate;
pub mod qdevice;
pub mod quorum;
pub mod services;

/// One result of the preflight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable id of the check (`config.version`, `drbd.state`, ...).
    pub check: String,
    pub severity: Severity,
    /// The node concerned (None: the cluster as a whole).
    pub node: Option<String>,
    /// What was seen.
    pub evidence: String,
    /// What to do (empty when nothing is to be done).
    pub fix: String,
}

impl Finding {
    pub fn new(check: &str, severity: Severity, node: Option<&str>, evidence: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding { check: check.into(), severity, node: node.map(String::from), evidence: evidence.into(), fix: fix.into() }
    }
}

/// A check area: its name and its pure function.
pub struct Area {
    pub name: &'static str,
    pub check: fn(&Context) -> Vec<Finding>,
}

/// Every check area, in the order they run.
pub const AREAS: &[Area] = &[
    Area { name: "conf", check: conf::check },
    Area { name: "quorum", check: quorum::check },
    Area { name: "fence", check: fence::check },
    Area { name: "gate", check: gate::check },
    Area { name: "qdevice", check: qdevice::check },
    Area { name: "arbiter", check: arbiter::check },
    Area { name: "drbd", check: drbd::check },
    Area { name: "services", check: services::check },
];

/// Which cluster stack the nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// cman / rgmanager: cluster.conf.
    Cman,
    /// corosync 2+ (Proxmox, pacemaker): corosync.conf, no cluster.conf on any node.
    Corosync,
}

/// The cluster.conf the cluster-wide checks read (the newest that parses).
pub struct CmanConf {
    pub path: String,
    pub doc: Document,
    pub model: Model,
    /// Its fence targets, or why they cannot be read (`PATH:LINE: message`).
    pub targets: Result<Vec<FenceTarget>, String>,
}

impl CmanConf {
    /// The `<clusternode name>`s.
    pub fn node_names(&self) -> Vec<String> {
        self.model.nodes.iter().filter_map(|n| n.name.clone()).collect()
    }
}

/// The corosync.conf the cluster-wide checks read (the newest whose quorum section reads).
pub struct CorosyncCluster {
    pub path: String,
    pub quorum: QuorumConfig,
}

/// What every check area reads.
pub struct Context<'a> {
    pub facts: &'a Facts,
    pub stack: Stack,
    /// Set on a cman cluster when some node's cluster.conf parses.
    pub cman: Option<CmanConf>,
    /// Set on a corosync cluster when some node's corosync.conf parses.
    pub corosync: Option<CorosyncCluster>,
}

impl<'a> Context<'a> {
    pub fn new(facts: &'a Facts) -> Context<'a> {
        // a corosync cluster: no node has a cluster.conf, some node has a corosync.conf
        let corosync = !facts.reachable().any(|n| n.conf.is_some()) && facts.reachable().any(|n| n.corosync_conf.is_some());
        if corosync {
            Context { facts, stack: Stack::Corosync, cman: None, corosync: conf::newest_corosync(facts) }
        } else {
            Context { facts, stack: Stack::Cman, cman: conf::newest_cman(facts), corosync: None }
        }
    }

    /// The cluster's name, from the configuration read.
    pub fn cluster_name(&self) -> Option<&str> {
        self.cman.as_ref().and_then(|c| c.model.cluster_name()).or_else(|| self.corosync.as_ref().and_then(|c| c.quorum.cluster_name.as_deref()))
    }

    /// The facts of the node named `name` (`same_host`).
    pub fn node(&self, name: &str) -> Option<&'a NodeFacts> {
        self.facts.nodes.iter().find(|n| same_host(&n.name, name))
    }

    /// The arbiter gate of the cluster.conf read (None: no cluster.conf, or no gate in it).
    pub fn gate(&self) -> Option<gate::GateLayout> {
        let targets = self.cman.as_ref()?.targets.as_ref().ok()?;
        let layout = gate::gate_layout(targets);
        (!layout.gates.is_empty()).then_some(layout)
    }
}

fn short(n: &str) -> &str {
    n.split('.').next().unwrap_or(n)
}

/// Two host names name the same machine (case-insensitive, short names compared too).
pub fn same_host(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || short(a).eq_ignore_ascii_case(short(b))
}
