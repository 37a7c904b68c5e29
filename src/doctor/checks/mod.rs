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
pub mod conf;
pub mod drbd;
pub mod fence;
pub mod gate;
pub mod ha;
pub mod pacemaker;
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
    Area { name: "ha", check: ha::check },
    Area { name: "pacemaker", check: pacemaker::check },
];

/// Which cluster stack the nodes run: corosync when no reachable node has a cluster.conf but one
/// has a corosync.conf (its quorum device state is then gathered and checked: [`qdevice`]).
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of this folder is a check area and runs: a new file left out of [`AREAS`]
    /// would be dead code.
    #[test]
    fn every_area_file_is_registered_once() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/doctor/checks");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "rs"))
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .filter(|n| n != "mod")
            .collect();
        files.sort();
        let mut names: Vec<String> = AREAS.iter().map(|a| a.name.to_string()).collect();
        names.sort();
        assert_eq!(files, names);
    }

    fn cluster_conf(version: u32) -> Vec<u8> {
        format!(
            r#"<cluster name="lab" config_version="{version}"><cman two_node="1" expected_votes="1"/><clusternodes>
<clusternode name="alice" nodeid="1"/><clusternode name="bob" nodeid="2"/></clusternodes></cluster>"#
        )
        .into_bytes()
    }

    fn node(name: &str, conf: Option<Vec<u8>>, corosync: Option<&str>) -> NodeFacts {
        NodeFacts { name: name.into(), conf_path: format!("/{name}/cluster.conf"), conf, corosync_conf: corosync.map(String::from), ..Default::default() }
    }

    #[test]
    fn context_reads_the_newest_cluster_conf_first_node_on_a_tie() {
        let facts = Facts { nodes: vec![node("alice", Some(cluster_conf(3)), None), node("bob", Some(cluster_conf(4)), None)], ..Default::default() };
        let cx = Context::new(&facts);
        assert_eq!(cx.stack, Stack::Cman);
        assert_eq!(cx.cman.as_ref().map(|c| c.path.as_str()), Some("/bob/cluster.conf"));
        assert_eq!(cx.cluster_name(), Some("lab"));
        assert!(cx.gate().is_none());
        let facts = Facts { nodes: vec![node("alice", Some(cluster_conf(4)), None), node("bob", Some(cluster_conf(4)), None)], ..Default::default() };
        assert_eq!(Context::new(&facts).cman.map(|c| c.path), Some("/alice/cluster.conf".into()));
        // an unreachable node's stale file is not read
        let mut stale = node("bob", Some(cluster_conf(9)), None);
        stale.unreachable = Some("down".into());
        let facts = Facts { nodes: vec![node("alice", Some(cluster_conf(4)), None), stale], ..Default::default() };
        assert_eq!(Context::new(&facts).cman.map(|c| c.path), Some("/alice/cluster.conf".into()));
    }

    #[test]
    fn context_is_corosync_only_without_any_cluster_conf() {
        let cc = "totem {\n  version: 2\n  cluster_name: pve\n  config_version: 2\n}\nnodelist {\n  node {\n    name: a\n    nodeid: 1\n    ring0_addr: 10.0.0.1\n  }\n  node {\n    name: b\n    nodeid: 2\n    ring0_addr: 10.0.0.2\n  }\n}\nquorum {\n  provider: corosync_votequorum\n  two_node: 1\n}\n";
        let facts = Facts { nodes: vec![node("a", None, Some(cc)), node("b", None, Some(cc))], ..Default::default() };
        let cx = Context::new(&facts);
        assert_eq!(cx.stack, Stack::Corosync);
        assert!(cx.cman.is_none());
        assert_eq!(cx.corosync.as_ref().map(|c| c.path.as_str()), Some("corosync.conf"));
        assert_eq!(cx.cluster_name(), Some("pve"));
        // one cluster.conf anywhere makes it a cman cluster
        let facts = Facts { nodes: vec![node("a", Some(cluster_conf(1)), Some(cc)), node("b", None, Some(cc))], ..Default::default() };
        let cx = Context::new(&facts);
        assert_eq!(cx.stack, Stack::Cman);
        assert!(cx.corosync.is_none());
    }
}
