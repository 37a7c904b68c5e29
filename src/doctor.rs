//! `twonode doctor`: one preflight over a whole two-node cluster.
//!
//! Split like every area: [`gather`] (thin, I/O through [`Host`], the fence drivers and the arbiter's
//! socket) fills a [`Facts`] value; [`diagnose`] (pure) turns the facts into [`Finding`]s, each with
//! a check id, a severity, the node, the evidence seen and the fix.
//!
//! Heuristics (best effort, documented here because an admin must know what they rest on):
//! * An HA service uses DRBD resource R when (a) the `<service>` holds an rgmanager `<drbd
//!   resource="R">` resource, or (b) it is a `<pvevm vmid="N">` whose guest config (read from
//!   `PVE_DIR/nodes/*/qemu-server/N.conf` or `lxc/N.conf`) has, before its first `[snapshot]`
//!   section, a disk line naming `/dev/drbdMINOR` of R, `/dev/drbd/by-res/R`, or a storage id equal
//!   to R or containing R as a `-`/`_`-separated word (e.g. `drbd-r0`). Storage definitions in
//!   storage.cfg are not followed.
//! * The nodes a service can run on: the nodes of its failover domain when the domain is
//!   `restricted="1"`, otherwise every cluster node (rgmanager may place it anywhere).
//! * A guest lock (`lock:` line in the guest config's main section) is reported as stale without
//!   checking running tasks: the fix says to check first.
//! * Fence race protection (cman): the arbiter gate (`agent="fence_twonode_arbiter"` first in every
//!   method, see GATE.md) or a quorum disk with two_node="0" protect; a static delay is a weak
//!   protection (warning); nothing under two_node="1" is an error. corosync: a quorum device
//!   protects (stonith needs quorum); two_node without one is a warning (pcmk delays in the CIB are
//!   not read).
//! * A cluster is a corosync cluster when no node has a cluster.conf but a corosync.conf is found;
//!   with `quorum.device` model net the nodes' `corosync-quorumtool -s` / `corosync-qdevice-tool
//!   -sv` are read and checked ([`qdevice`]).
use crate::clusterconf::document::{Document, NodeId};
use crate::clusterconf::model::Model;
use crate::clusterconf::validate;
use crate::drbd::recover::{self, NodeView};
use crate::drbd::state::ResourceConfig;
use crate::fence::spec::{FenceTarget, Timing};
use crate::fence::test::DeviceCheck;
use crate::host::Host;
use crate::quorum::votequorum::QuorumConfig;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub mod qdevice;

/// The agent name of the arbiter gate's `<fencedevice>` (GATE.md).
pub const GATE_AGENT: &str = crate::fence::gate::AGENT;
/// Certificates closer than this to their end are a warning.
pub const CERT_WARN_DAYS: i64 = 30;

pub use crate::diag::Severity;

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

fn f(check: &str, severity: Severity, node: Option<&str>, evidence: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding { check: check.into(), severity, node: node.map(String::from), evidence: evidence.into(), fix: fix.into() }
}

/// A guest configuration file as read on a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestConf {
    /// Path on the node (`/etc/pve/nodes/NODE/qemu-server/100.conf`).
    pub path: String,
    pub text: String,
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

/// A certificate file as read (PEM: public, never a key).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertFacts {
    pub path: String,
    pub pem: Option<String>,
    pub error: Option<String>,
}

/// What probing the arbiter through the gate's client gave.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GateProbe {
    /// HOST:PORT of the arbiter (from the gate device).
    pub target: String,
    /// How far it was checked: "init" (TCP + TLS + INIT accepted) or "tcp" (connect only).
    pub depth: String,
    pub ok: bool,
    pub rtt_ms: Option<f64>,
    /// What the arbiter said / the client saw (for the evidence).
    pub detail: Option<String>,
    pub error: Option<String>,
    /// The client certificate used for the probe (on the machine running doctor).
    pub cert: Option<CertFacts>,
}

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
}

/// The parsed cluster.conf the cluster-wide checks use.
struct Conf {
    path: String,
    doc: Document,
    model: Model,
}

fn short(n: &str) -> &str {
    n.split('.').next().unwrap_or(n)
}

fn same_host(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || short(a).eq_ignore_ascii_case(short(b))
}

/// The pure core: facts in, findings out (sorted: errors first, then by check).
pub fn diagnose(facts: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    for n in &facts.nodes {
        if let Some(e) = &n.unreachable {
            out.push(f(
                "node.reachable",
                Severity::Error,
                Some(&n.name),
                format!("could not reach the node: {e}"),
                "check the node is up and reachable (ssh, key, known_hosts); checks needing it were skipped",
            ));
        }
    }
    let corosync = is_corosync(facts);
    let conf = if corosync { None } else { config_checks(facts, &mut out) };
    let cc = if corosync { corosync_checks(facts, &mut out) } else { None };
    if let Some(c) = &conf {
        node_name_checks(facts, c, &mut out);
        let q = QuorumConfig::from_cluster_conf(&c.model, &c.path);
        quorum_checks(&q, &c.path, &mut out);
        fence_checks(facts, c, &mut out);
        gate_checks(facts, c, &mut out);
    }
    if let Some(cc) = &cc {
        corosync_race(cc, &mut out);
        if cc.q.device.as_ref().is_some_and(|d| d.model == "net") {
            let nodes: Vec<qdevice::NodeQdevice> = facts
                .nodes
                .iter()
                .filter(|n| n.unreachable.is_none())
                .map(|n| n.qdevice.clone().unwrap_or_else(|| qdevice::NodeQdevice { node: n.name.clone(), quorumtool_error: Some("not gathered".into()), ..Default::default() }))
                .collect();
            let host = cc.q.device.as_ref().and_then(|d| d.host.clone()).unwrap_or_else(|| "?".into());
            for (check, sev, node, ev, fix) in qdevice::checks(&nodes, &host, cc.q.nodes.len()) {
                out.push(Finding { check: check.into(), severity: sev, node, evidence: ev, fix });
            }
        }
    }
    let cluster_name = conf.as_ref().and_then(|c| c.model.cluster_name().map(String::from)).or_else(|| cc.as_ref().and_then(|c| c.q.cluster_name.clone()));
    arbiter_checks(facts, conf.as_ref(), cluster_name.as_deref(), &mut out);
    for (what, c) in &facts.arbiter_certs {
        server_cert_finding(what, c, facts.now_unix, &mut out);
    }
    drbd_checks(facts, conf.as_ref(), &mut out);
    if let Some(c) = &conf {
        service_checks(facts, c, &mut out);
    }
    lock_checks(facts, &mut out);
    out.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.check.cmp(&b.check)));
    out
}

/// Exit code: 0 no error, 1 errors found, 2 could not gather (a node unreachable).
pub fn exit_code(facts: &Facts, findings: &[Finding]) -> i32 {
    if facts.nodes.iter().any(|n| n.unreachable.is_some()) {
        2
    } else if findings.iter().any(|x| x.severity == Severity::Error) {
        1
    } else {
        0
    }
}

fn config_checks(facts: &Facts, out: &mut Vec<Finding>) -> Option<Conf> {
    let mut parsed: Vec<Conf> = Vec::new();
    let mut versions: Vec<(String, Option<u64>, &[u8])> = Vec::new();
    for n in facts.nodes.iter().filter(|n| n.unreachable.is_none()) {
        let Some(bytes) = &n.conf else {
            out.push(f(
                "config.readable",
                Severity::Error,
                Some(&n.name),
                format!("cannot read {}: {}", n.conf_path, n.conf_error.as_deref().unwrap_or("unknown error")),
                format!(
                    "put the cluster's cluster.conf at {} on {} (or pass --file / --node-file; for a corosync cluster --corosync-conf)",
                    n.conf_path, n.name
                ),
            ));
            continue;
        };
        let rep = validate::validate(bytes, &validate::Options::default());
        let diag_text = |sev: Severity| {
            rep.diagnostics
                .iter()
                .filter(|d| d.severity == sev)
                .take(5)
                .map(|d| format!("{}:{}: [{}] {}", n.conf_path, d.line, d.code, d.message))
                .collect::<Vec<_>>()
                .join("; ")
        };
        if rep.has_errors() {
            out.push(f(
                "config.valid",
                Severity::Error,
                Some(&n.name),
                format!("{} error(s): {}", rep.errors, diag_text(Severity::Error)),
                format!("on {}: `twonode conf validate --file {}` shows every error with its hint; fix them, raise config_version and propagate", n.name, n.conf_path),
            ));
        } else if rep.warnings > 0 {
            out.push(f(
                "config.valid",
                Severity::Warning,
                Some(&n.name),
                format!("valid, {} warning(s): {}", rep.warnings, diag_text(Severity::Warning)),
                format!("review with `twonode conf validate --file {}` on {}", n.conf_path, n.name),
            ));
        } else {
            out.push(f("config.valid", Severity::Ok, Some(&n.name), format!("{} is valid", n.conf_path), ""));
        }
        match Model::parse(bytes) {
            Ok((doc, model)) => {
                versions.push((n.name.clone(), model.version(), bytes.as_slice()));
                parsed.push(Conf { path: n.conf_path.clone(), doc, model });
            }
            Err(_) => versions.push((n.name.clone(), None, bytes.as_slice())),
        }
    }
    if versions.len() >= 2 {
        let vs: BTreeSet<Option<u64>> = versions.iter().map(|v| v.1).collect();
        let list = versions
            .iter()
            .map(|(n, v, _)| format!("{n}: config_version {}", v.map(|v| v.to_string()).unwrap_or_else(|| "?".into())))
            .collect::<Vec<_>>()
            .join(", ");
        if vs.len() > 1 {
            out.push(f(
                "config.version",
                Severity::Error,
                None,
                format!("the nodes hold different configurations ({list})"),
                "make the node with the newest correct file the source: on cman `cman_tool version -r` after copying it \
                 (or `ccs_sync`); on Proxmox /etc/pve is shared, so check pmxcfs (`pvecm status`) on the stale node",
            ));
        } else if versions.windows(2).any(|w| w[0].2 != w[1].2) {
            out.push(f(
                "config.version",
                Severity::Error,
                None,
                format!("same config_version but different contents ({list}): one node was edited without raising the version"),
                "choose the right file, raise config_version in it and propagate it to both nodes (`twonode conf apply`)",
            ));
        } else {
            out.push(f("config.version", Severity::Ok, None, format!("identical on both nodes ({list})"), ""));
        }
    }
    // Cluster-wide checks use the newest parsed config.
    parsed.sort_by_key(|c| std::cmp::Reverse(c.model.version()));
    parsed.into_iter().next()
}

fn cluster_nodes(c: &Conf) -> Vec<String> {
    c.model.nodes.iter().filter_map(|n| n.name.clone()).collect()
}

fn node_name_checks(facts: &Facts, c: &Conf, out: &mut Vec<Finding>) {
    let names = cluster_nodes(c);
    for n in &facts.nodes {
        if !names.iter().any(|x| same_host(x, &n.name)) {
            out.push(f(
                "config.node-names",
                Severity::Warning,
                Some(&n.name),
                format!("node `{}` is not a <clusternode> of {} (nodes: {})", n.name, c.path, names.join(", ")),
                "name each --node as its <clusternode name=...> so the checks can match them",
            ));
        }
    }
}

/// A corosync cluster: no node has a cluster.conf, some node has a corosync.conf.
fn is_corosync(facts: &Facts) -> bool {
    let reach = || facts.nodes.iter().filter(|n| n.unreachable.is_none());
    !reach().any(|n| n.conf.is_some()) && reach().any(|n| n.corosync_conf.is_some())
}

/// The parsed corosync.conf the cluster-wide checks use.
struct Cc {
    path: String,
    q: QuorumConfig,
}

fn render_diags(rep: &validate::Report, path: &str, sev: Severity) -> String {
    rep.diagnostics
        .iter()
        .filter(|d| d.severity == sev)
        .take(5)
        .map(|d| format!("{path}:{}:{}: [{}] {}", d.line, d.col, d.code, d.message))
        .collect::<Vec<_>>()
        .join("; ")
}

fn corosync_checks(facts: &Facts, out: &mut Vec<Finding>) -> Option<Cc> {
    use crate::quorum::corosync_conf::{self as cc, CorosyncConf};
    let mut parsed: Vec<(Option<u64>, Cc)> = Vec::new();
    let mut versions: Vec<(String, Option<u64>, &str)> = Vec::new();
    for n in facts.nodes.iter().filter(|n| n.unreachable.is_none()) {
        let path = n.corosync_path.clone().unwrap_or_else(|| "corosync.conf".into());
        let Some(text) = &n.corosync_conf else {
            out.push(f(
                "config.readable",
                Severity::Error,
                Some(&n.name),
                format!("no corosync.conf on {} (and no cluster.conf at {}: {})", n.name, n.conf_path, n.conf_error.as_deref().unwrap_or("?")),
                "copy the cluster's corosync.conf to the node (`pvecm`/`pcs cluster sync` do it), or name its path with --corosync-conf",
            ));
            continue;
        };
        let rep = cc::validate(text, &path, &cc::Context::default());
        if rep.has_errors() {
            out.push(f(
                "config.valid",
                Severity::Error,
                Some(&n.name),
                format!("{} error(s): {}", rep.errors, render_diags(&rep, &path, Severity::Error)),
                format!("on {}: `twonode quorum validate --file {path}` shows each error with its fix", n.name),
            ));
        } else if rep.warnings > 0 {
            out.push(f(
                "config.valid",
                Severity::Warning,
                Some(&n.name),
                format!("valid, {} warning(s): {}", rep.warnings, render_diags(&rep, &path, Severity::Warning)),
                format!("review with `twonode quorum validate --file {path}` on {}", n.name),
            ));
        } else {
            out.push(f("config.valid", Severity::Ok, Some(&n.name), format!("{path} is valid"), ""));
        }
        if let Ok(conf) = CorosyncConf::parse(text) {
            let v = conf.config_version();
            versions.push((n.name.clone(), v, text.as_str()));
            if let Ok(q) = conf.quorum_config(&path) {
                parsed.push((v, Cc { path: path.clone(), q }));
            }
        } else {
            versions.push((n.name.clone(), None, text.as_str()));
        }
    }
    if versions.len() >= 2 {
        let list = versions
            .iter()
            .map(|(n, v, _)| format!("{n}: config_version {}", v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())))
            .collect::<Vec<_>>()
            .join(", ");
        let vs: BTreeSet<Option<u64>> = versions.iter().map(|v| v.1).collect();
        if vs.len() > 1 {
            out.push(f(
                "config.version",
                Severity::Error,
                None,
                format!("the nodes hold different corosync.conf versions ({list})"),
                "copy the newest correct file to the other node, then `corosync-cfgtool -R` (Proxmox: /etc/pve/corosync.conf is synced by pmxcfs: check `pvecm status`)",
            ));
        } else if versions.windows(2).any(|w| w[0].2 != w[1].2) {
            out.push(f(
                "config.version",
                Severity::Error,
                None,
                format!("same config_version but different corosync.conf contents ({list})"),
                "choose the right file, raise totem.config_version in it and copy it to both nodes (`twonode quorum apply`)",
            ));
        } else {
            out.push(f("config.version", Severity::Ok, None, format!("corosync.conf identical on both nodes ({list})"), ""));
        }
    }
    parsed.sort_by_key(|c| std::cmp::Reverse(c.0));
    let best = parsed.into_iter().next().map(|x| x.1)?;
    quorum_checks(&best.q, &best.path, out);
    Some(best)
}

/// Fence race protection of a corosync cluster: a quorum device decides; else two_node races.
fn corosync_race(cc: &Cc, out: &mut Vec<Finding>) {
    let q = &cc.q;
    match &q.device {
        Some(d) => out.push(f(
            "fence.race",
            Severity::Ok,
            None,
            format!(
                "quorum device (model {}, arbiter {}, algorithm {}, tie_breaker {}) decides which partition stays quorate; only a quorate partition fences",
                d.model,
                d.host.as_deref().unwrap_or("?"),
                d.algorithm.as_deref().unwrap_or("ffsplit"),
                d.tie_breaker.as_deref().unwrap_or("lowest")
            ),
            "",
        )),
        None if q.effective_two_node() => out.push(f(
            "fence.race",
            Severity::Warning,
            None,
            format!("{}: two_node without a quorum device: both halves of a split stay quorate and race to fence each other; only a pcmk_delay_* in the CIB (not read by doctor) can bias the race", cc.path),
            "add the arbiter as quorum device: `twonode quorum enable-arbiter --host ARBITER` (drops two_node), or at least set pcmk_delay_max on the stonith resources",
        )),
        None => {}
    }
}

fn quorum_checks(q: &QuorumConfig, path: &str, out: &mut Vec<Finding>) {
    let view = q.compute(None);
    let diags = q.check();
    for d in &diags {
        let at = d.line().map(|l| format!(" ({path}:{l})")).unwrap_or_default();
        out.push(f(&format!("quorum.{}", d.code), d.severity, None, format!("{}{at}", d.message), d.hint.clone().unwrap_or_default()));
    }
    if !diags.iter().any(|d| d.is_error()) {
        out.push(f(
            "quorum.arithmetic",
            Severity::Ok,
            None,
            format!(
                "expected votes {}, total {}, quorum {}, flags {}",
                view.expected_votes,
                view.total_votes,
                view.quorum,
                if view.flags.is_empty() { "-".to_string() } else { view.flags.join(" ") }
            ),
            "",
        ));
    }
}

fn targets_of(c: &Conf) -> Result<Vec<FenceTarget>, String> {
    let xml = String::from_utf8_lossy(c.doc.source()).into_owned();
    crate::fence::spec::from_cluster_conf(&xml, &c.path).map_err(|e| format!("{}:{}: {}", e.path, e.line, e.message))
}

/// Name resolution is I/O: the pure core only recognises literal addresses.
fn literal_only(h: &str) -> Vec<std::net::IpAddr> {
    h.trim().trim_start_matches('[').trim_end_matches(']').parse().map(|ip| vec![ip]).unwrap_or_default()
}

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
    pub fn target(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
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
}

impl GateLayout {
    /// The gate protects the race: present and first in every method with devices.
    pub fn complete(&self) -> bool {
        !self.gates.is_empty() && !self.gated.is_empty() && self.ungated.is_empty()
    }
}

/// Is this device the arbiter gate? (the fence gate's own rule)
pub fn is_gate(d: &crate::fence::spec::DeviceSpec) -> bool {
    crate::fence::gate::is_gate(d)
}

fn gate_conf_of(d: &crate::fence::spec::DeviceSpec) -> GateConf {
    let port = d.ipport().and_then(|p| p.trim().parse().ok()).unwrap_or(crate::quorum::arbiter::wire::DEFAULT_PORT);
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
            .and_then(|_| crate::fence::gate::GateSettings::from_params(&d.params).ok())
            .map(|g| g.timeout.as_secs()),
    }
}

/// Find the gate in the fence methods (pure).
pub fn gate_layout(targets: &[FenceTarget]) -> GateLayout {
    let mut l = GateLayout::default();
    for t in targets {
        for m in t.methods.iter().filter(|m| !m.devices.is_empty()) {
            for d in m.devices.iter().filter(|d| is_gate(d)) {
                if !l.gates.iter().any(|g| g.device == d.name) {
                    l.gates.push(gate_conf_of(d));
                }
            }
            match m.devices.iter().position(is_gate) {
                Some(0) => l.gated.push((t.node.clone(), m.name.clone())),
                Some(i) => l.ungated.push((
                    t.node.clone(),
                    m.name.clone(),
                    format!("the gate is device {} of the method, not the first: {} runs before it", i + 1, m.devices[0].name),
                )),
                None => l.ungated.push((t.node.clone(), m.name.clone(), "no gate in this method".into())),
            }
        }
    }
    l
}

/// The gate of a cluster.conf text (None: no gate device in any method).
pub fn gate_of_cluster_conf(xml: &str, path: &str) -> Option<GateLayout> {
    let targets = crate::fence::spec::from_cluster_conf(xml, path).ok()?;
    let l = gate_layout(&targets);
    (!l.gates.is_empty()).then_some(l)
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

fn delay_of(t: &FenceTarget) -> Option<u64> {
    let m = t.methods.iter().find(|m| !m.devices.is_empty())?;
    m.devices
        .iter()
        .filter_map(|d| {
            let t = Timing::for_device(d).ok().map(|x| x.delay.as_secs()).filter(|s| *s > 0);
            t.or_else(|| d.get(&["pcmk_delay_max", "pcmk_delay_base"]).map(|v| v.trim().trim_end_matches('s').parse().unwrap_or(1)))
        })
        .max()
}

/// Fence race protection of a cman cluster: the gate (ok), a quorum disk without two_node (ok),
/// a static delay (weak: warning), nothing under two_node (error).
fn race_check(c: &Conf, layout: &GateLayout, targets: &[FenceTarget], out: &mut Vec<Finding>) {
    let two_node = c.model.two_node();
    let fenced: Vec<&FenceTarget> = targets.iter().filter(|t| t.methods.iter().any(|m| !m.devices.is_empty())).collect();
    if layout.complete() {
        let g = &layout.gates[0];
        out.push(f(
            "fence.race",
            Severity::Ok,
            None,
            format!(
                "arbiter gate {} (device {}) is the first device of every fence method ({}): only the partition holding the arbiter's vote fences",
                g.target(),
                g.device,
                layout.gated.iter().map(|(n, m)| format!("{n}/{m}")).collect::<Vec<_>>().join(", ")
            ),
            "",
        ));
        return;
    }
    if !layout.gates.is_empty() {
        let bad = layout.ungated.iter().map(|(n, m, w)| format!("node {n} method {m}: {w}")).collect::<Vec<_>>().join("; ");
        out.push(f(
            "fence.race",
            Severity::Error,
            None,
            format!("the arbiter gate {} does not guard every fence method ({bad}): in a split such a method lets the partition WITHOUT the arbiter's vote fence", layout.gates[0].device),
            "`twonode conf gate-fencing --arbiter HOST[:PORT] --ca F --cert F --key F` puts the gate first in every method (or fix the methods named)",
        ));
        return;
    }
    if fenced.len() < 2 {
        return;
    }
    if !two_node {
        let ev = if c.model.quorumd.is_some() {
            "two_node=\"0\" with a quorum disk: qdiskd decides which node keeps quorum; only the quorate node fences"
        } else {
            "two_node=\"0\": a node alone has no quorum and does not fence, so there is no race (and no failover either)"
        };
        out.push(f("fence.race", Severity::Ok, None, ev, ""));
        return;
    }
    let delays: Vec<(String, Option<u64>)> = fenced.iter().map(|t| (t.node.clone(), delay_of(t))).collect();
    let ev = delays
        .iter()
        .map(|(n, d)| format!("{n}: {}", d.map(|d| format!("delay {d}s")).unwrap_or_else(|| "no delay".into())))
        .collect::<Vec<_>>()
        .join(", ");
    let with: Vec<&(String, Option<u64>)> = delays.iter().filter(|d| d.1.is_some()).collect();
    let distinct: BTreeSet<Option<u64>> = delays.iter().map(|d| d.1).collect();
    let gate_fix = "let the arbiter decide: run `twonode arbiter serve` on a third machine and \
                    `twonode conf gate-fencing --arbiter HOST[:PORT] --ca F --cert F --key F`";
    if distinct.len() > 1 {
        // someone is favoured: the one whose fencing waits longest
        let favoured = delays.iter().max_by_key(|d| d.1.unwrap_or(0)).map(|d| d.0.clone()).unwrap_or_default();
        out.push(f(
            "fence.race",
            Severity::Warning,
            None,
            format!(
                "two_node=\"1\" protected by a static fence delay only ({ev}): weak. The delay picks the survivor in advance ({favoured}), \
                 not the partition that still works: if {favoured} is the node cut off from the network but still reaching its peer's BMC, \
                 it fences the healthy peer; a hung {favoured} is fenced {}s later than needed",
                with.iter().filter_map(|d| d.1).max().unwrap_or(0)
            ),
            format!("{gate_fix}; keep the delay until then"),
        ));
    } else {
        let what = if with.is_empty() { "no fence delay and no arbiter gate" } else { "equal fence delays on every node (they only postpone the race)" };
        out.push(f(
            "fence.race",
            Severity::Error,
            None,
            format!("two_node=\"1\" with {what} ({ev}): on a network split both nodes stay quorate and fence each other at once (both can end powered off)"),
            format!("{gate_fix}; as a stopgap set delay=\"15\" on the fence device of ONE node (the one that should survive, e.g. {})", fenced[0].node),
        ));
    }
}

/// When a certificate ends, read from its PEM: (not_after unix time, subject CN).
pub fn cert_info(pem: &str) -> Result<(i64, Option<String>), String> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| format!("not a PEM certificate: {e}"))?;
    let cert = p.parse_x509().map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let cn = cert.subject().iter_common_name().next().and_then(|c| c.as_str().ok()).map(String::from);
    Ok((cert.validity().not_after.timestamp(), cn))
}

/// A unix time as a date (UTC).
pub fn date_of(ts: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .map(|d| format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day()))
        .unwrap_or_else(|_| ts.to_string())
}

/// Certificate findings: expired / ending within CERT_WARN_DAYS / CN not the cluster name.
fn cert_finding(node: Option<&str>, c: &CertFacts, now: i64, cluster: Option<&str>, out: &mut Vec<Finding>) {
    let who = node.map(|n| format!(" on {n}")).unwrap_or_else(|| " here".into());
    let Some(pem) = &c.pem else {
        out.push(f(
            "arbiter.cert",
            Severity::Error,
            node,
            format!("cannot read the gate's client certificate {}{who}: {}", c.path, c.error.as_deref().unwrap_or("?")),
            "copy the node's certificate and key (from `twonode arbiter certs`) to the paths in the gate device (tlscert/tlskey), or fix the paths",
        ));
        return;
    };
    let (end, cn) = match cert_info(pem) {
        Ok(x) => x,
        Err(e) => {
            out.push(f("arbiter.cert", Severity::Error, node, format!("{}{who}: {e}", c.path), "put the PEM certificate `twonode arbiter certs` made there"));
            return;
        }
    };
    let days = (end - now).div_euclid(86_400);
    let ev = format!("{}{who}: CN {:?}, valid until {} ({days} days)", c.path, cn.as_deref().unwrap_or("-"), date_of(end));
    if let (Some(want), Some(cn)) = (cluster, cn.as_deref()) {
        if want != cn {
            out.push(f(
                "arbiter.cert",
                Severity::Error,
                node,
                format!("{ev}: the arbiter only accepts a client certificate whose CN is the cluster name {want:?}"),
                format!("sign a certificate for the cluster: `twonode arbiter certs sign --cluster {want} ...` on the arbiter"),
            ));
            return;
        }
    }
    let renew = "make a new one before it ends: on the arbiter `twonode arbiter certs sign --cluster NAME --csr ...`, copy it to both nodes";
    if end <= now {
        out.push(f("arbiter.cert", Severity::Error, node, format!("{ev}: EXPIRED, the arbiter refuses the gate: no node can fence"), renew));
    } else if days < CERT_WARN_DAYS {
        out.push(f("arbiter.cert", Severity::Warning, node, format!("{ev}: ends in less than {CERT_WARN_DAYS} days"), renew));
    } else {
        out.push(f("arbiter.cert", Severity::Ok, node, ev, ""));
    }
}

/// The arbiter's own TLS files (on the arbiter machine): expired / ending soon.
fn server_cert_finding(what: &str, c: &CertFacts, now: i64, out: &mut Vec<Finding>) {
    let fix = "make new ones (`twonode arbiter certs init --dir NEWDIR`, then sign the nodes' requests again) before they end, \
               and restart `twonode arbiter serve`";
    let Some(pem) = &c.pem else {
        out.push(f("arbiter.server-cert", Severity::Error, None, format!("arbiter {what} {}: {}", c.path, c.error.as_deref().unwrap_or("?")), "fix the [tls] files in the arbiter's config (`twonode arbiter serve --check`)"));
        return;
    };
    match cert_info(pem) {
        Err(e) => out.push(f("arbiter.server-cert", Severity::Error, None, format!("arbiter {what} {}: {e}", c.path), fix)),
        Ok((end, cn)) => {
            let days = (end - now).div_euclid(86_400);
            let ev = format!("arbiter {what} {} (CN {:?}) valid until {} ({days} days)", c.path, cn.as_deref().unwrap_or("-"), date_of(end));
            if end <= now {
                out.push(f("arbiter.server-cert", Severity::Error, None, format!("{ev}: EXPIRED: no node can connect"), fix));
            } else if days < CERT_WARN_DAYS {
                out.push(f("arbiter.server-cert", Severity::Warning, None, format!("{ev}: ends in less than {CERT_WARN_DAYS} days"), fix));
            } else {
                out.push(f("arbiter.server-cert", Severity::Ok, None, ev, ""));
            }
        }
    }
}

/// The arbiter as the gate sees it: probe (TLS + INIT) and each node's client certificate.
fn gate_checks(facts: &Facts, c: &Conf, out: &mut Vec<Finding>) {
    let Ok(targets) = targets_of(c) else { return };
    let layout = gate_layout(&targets);
    let Some(g) = layout.gates.first() else { return };
    let cluster = c.model.cluster_name();
    match &facts.gate_probe {
        None => out.push(f(
            "arbiter.gate",
            Severity::Info,
            None,
            format!("the arbiter gate {} was not probed", g.target()),
            "run doctor without --no-arbiter-probe on a node (it needs the gate's certificate files)",
        )),
        Some(p) if p.ok && p.depth == "init" => out.push(f(
            "arbiter.gate",
            Severity::Ok,
            None,
            format!(
                "arbiter {} accepted the gate's client (TCP, TLS, INIT for cluster {:?}){}{}",
                p.target,
                cluster.unwrap_or("?"),
                p.rtt_ms.map(|r| format!(", round trip {r:.1} ms")).unwrap_or_default(),
                p.detail.as_deref().map(|d| format!("; {d}")).unwrap_or_default()
            ),
            "",
        )),
        Some(p) if p.ok => out.push(f(
            "arbiter.gate",
            Severity::Warning,
            None,
            format!(
                "arbiter {} accepts TCP connections{}; TLS and INIT were NOT checked{}",
                p.target,
                p.rtt_ms.map(|r| format!(" ({r:.1} ms)")).unwrap_or_default(),
                p.detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
            ),
            "run doctor on a cluster node, where the gate's certificate files are, so the full handshake is tried",
        )),
        Some(p) => out.push(f(
            "arbiter.gate",
            Severity::Error,
            None,
            format!(
                "the gate cannot get an answer from the arbiter {}: {}. While this lasts NO node can fence (the gate fails safe: no vote, no fencing)",
                p.target,
                p.error.as_deref().unwrap_or("?")
            ),
            "start the arbiter (`twonode arbiter serve` on the third machine), open TCP to it, and check the CA/cert/key paths of the gate device",
        )),
    }
    if let Some(cf) = facts.gate_probe.as_ref().and_then(|p| p.cert.as_ref()) {
        if !facts.nodes.iter().any(|n| n.gate_cert.is_some()) {
            cert_finding(None, cf, facts.now_unix, cluster, out);
        }
    }
    for n in facts.nodes.iter().filter(|n| n.unreachable.is_none()) {
        if let Some(cf) = &n.gate_cert {
            cert_finding(Some(&n.name), cf, facts.now_unix, cluster, out);
        }
        let Some(m) = &n.gate_monitor else { continue };
        let node = Some(n.name.as_str());
        match (&m.command, m.exit) {
            (None, _) => out.push(f(
                "arbiter.gate-agent",
                Severity::Error,
                node,
                format!("{}: fenced on {} cannot run the gate, so {} can NEVER fence (every method starts with it)", m.output, n.name, n.name),
                format!("install twonode on {} and link the agent: `ln -s $(command -v twonode) /usr/sbin/{GATE_AGENT}`", n.name),
            )),
            (Some(cmd), Some(0)) => out.push(f("arbiter.gate-agent", Severity::Ok, node, format!("`{cmd}` (action=monitor) on {}: {}", n.name, m.output), "")),
            (Some(cmd), _) => out.push(f(
                "arbiter.gate-agent",
                Severity::Error,
                node,
                format!("`{cmd}` (action=monitor) on {} failed: {}; {} cannot fence while this lasts", n.name, m.output, n.name),
                format!("on {}: check the gate device's files exist there and the arbiter is reachable from it (`{GATE_AGENT} -o monitor ...`)", n.name),
            )),
        }
    }
}

fn fence_checks(facts: &Facts, c: &Conf, out: &mut Vec<Finding>) {
    let all = match targets_of(c) {
        Ok(t) => t,
        Err(e) => {
            out.push(f("fence.config", Severity::Error, None, format!("fencing in {} cannot be read: {e}", c.path), "fix cluster.conf (see config.valid)"));
            return;
        }
    };
    let layout = gate_layout(&all);
    let targets = without_gate(&all);
    // Configuration risks, as `fence test` flags them (its fence_race rule is refined below).
    for r in crate::fence::test::risks(&targets, &literal_only) {
        if r.code == "fence_race" {
            continue;
        }
        let sev = match (r.severity, r.code) {
            (_, "single_bmc_level") => Severity::Info,
            (sev, _) => sev,
        };
        let (evidence, fix) = match r.message.rsplit_once(". ") {
            Some((e, fx)) => (e.to_string(), fx.to_string()),
            None => (r.message.clone(), "see `twonode fence test`".to_string()),
        };
        out.push(f(&format!("fence.{}", r.code), sev, None, evidence, fix));
    }
    race_check(c, &layout, &targets, out);
    // Devices answering.
    match &facts.fence_checks {
        None => out.push(f("fence.device", Severity::Info, None, "fence devices were not contacted", "run without --no-fence to check them")),
        Some(checks) => {
            for d in checks.iter().filter(|d| !layout.gates.iter().any(|g| g.device == d.device)) {
                if d.ok() {
                    out.push(f(
                        "fence.device",
                        Severity::Ok,
                        Some(&d.node),
                        format!(
                            "{} answered: power {} (login {:.2}s, status {:.2}s)",
                            d.describe,
                            d.status.map(crate::fence::engine::state_word).unwrap_or("?"),
                            d.connect_ms as f64 / 1000.0,
                            d.status_ms as f64 / 1000.0
                        ),
                        "",
                    ));
                } else {
                    let what = if !d.reachable {
                        "unreachable"
                    } else if !d.login {
                        "login refused"
                    } else {
                        "status failed"
                    };
                    out.push(f(
                        "fence.device",
                        Severity::Error,
                        Some(&d.node),
                        format!("{} ({} method {}): {what}: {}", d.describe, d.node, d.method, d.error.as_deref().unwrap_or("?")),
                        format!(
                            "node {} cannot be fenced through this device: check its address, port, credentials and network path; \
                             retest with `twonode fence test`",
                            d.node
                        ),
                    ));
                }
            }
        }
    }
}

fn arbiter_checks(facts: &Facts, c: Option<&Conf>, cluster: Option<&str>, out: &mut Vec<Finding>) {
    let Some(a) = &facts.arbiter else {
        let gated = facts.gate_probe.is_some() || c.is_some_and(|c| targets_of(c).is_ok_and(|t| !gate_layout(&t).gates.is_empty()));
        let qdev = facts.nodes.iter().any(|n| n.qdevice.is_some());
        if c.is_none_or(|c| c.model.quorumd.is_none()) && !gated && !qdev {
            out.push(f("arbiter", Severity::Info, None, "no arbiter configured or given (--arbiter)", ""));
        }
        return;
    };
    if !a.reachable {
        out.push(f(
            "arbiter.reachable",
            Severity::Error,
            None,
            format!("arbiter {} not reachable: {}", a.target, a.error.as_deref().unwrap_or("?")),
            "start it (`twonode arbiter serve`) or fix the network path to it; without it a split is decided by fence delays only",
        ));
        return;
    }
    let Some(st) = &a.status else {
        out.push(f("arbiter.reachable", Severity::Ok, None, format!("arbiter {} accepts connections", a.target), ""));
        return;
    };
    out.push(f("arbiter.reachable", Severity::Ok, None, format!("arbiter status socket {} answered", a.target), ""));
    if let Some(h) = st["arbiter"]["startup_hold_remaining_ms"].as_u64() {
        out.push(f(
            "arbiter.hold",
            Severity::Warning,
            None,
            format!("the arbiter restarted recently: it grants no vote for another {:.1} s (leases of its previous instance)", h as f64 / 1000.0),
            "wait; a split now would leave both partitions without the vote until the hold ends",
        ));
    }
    let name = cluster.unwrap_or("");
    let gated = c.is_some_and(|c| targets_of(c).is_ok_and(|t| !gate_layout(&t).gates.is_empty()));
    let clusters = st["arbiter"]["clusters"].as_array().cloned().unwrap_or_default();
    // probes (doctor's own, `fence gate` monitor) announce node ids with the top bit set: not nodes
    let real = |c: &serde_json::Value| -> Vec<serde_json::Value> {
        c["nodes"].as_array().into_iter().flatten().filter(|n| n["node_id"].as_u64().is_some_and(|id| id & 0x8000_0000 == 0)).cloned().collect()
    };
    let Some(cl) = clusters.iter().find(|x| x["name"].as_str() == Some(name) && !real(x).is_empty()) else {
        let known = clusters.iter().filter_map(|x| x["name"].as_str()).collect::<Vec<_>>().join(", ");
        if gated {
            // the gate connects only while a node fences
            out.push(f(
                "arbiter.lease",
                Severity::Ok,
                None,
                format!("no client of cluster \"{name}\" connected now (normal for the gate: it connects only while a node fences; the arbiter knows: {known})"),
                "",
            ));
        } else {
            out.push(f(
                "arbiter.lease",
                Severity::Warning,
                None,
                format!("the arbiter knows no cluster \"{name}\" (it knows: {known})"),
                "start the arbiter client (corosync-qdevice) on both nodes with this cluster name",
            ));
        }
        return;
    };
    let nodes = real(cl);
    let connected = nodes.iter().filter(|n| !n["conn"].is_null() || n.get("conn").is_none()).count();
    let holders: Vec<String> = nodes.iter().filter(|n| n["holds_lease"].as_bool() == Some(true)).map(|n| n["node_id"].to_string()).collect();
    let per_node = nodes
        .iter()
        .map(|n| {
            let ring = match &n["ring_id"] {
                serde_json::Value::Object(r) => format!("{:x}.{:x}", r["node_id"].as_u64().unwrap_or(0), r["seq"].as_u64().unwrap_or(0)),
                _ => "-".into(),
            };
            format!("node {}: vote {}, ring {ring}", n["node_id"], n["vote"].as_str().unwrap_or("-"))
        })
        .collect::<Vec<_>>()
        .join("; ");
    // corosync quorum device: the arbiter's view of each node against the node's own
    let mut disagree = Vec::new();
    let mut compared = 0;
    for nf in facts.nodes.iter().filter_map(|n| n.qdevice.as_ref().map(|q| (n, q))) {
        let (n, q) = nf;
        let Some(qt) = &q.quorumtool else { continue };
        let Some(id) = qt.node_id else { continue };
        let Some(a) = nodes.iter().find(|x| x["node_id"].as_u64() == Some(id as u64)) else {
            disagree.push(format!("{} (node id {id}) is not connected to the arbiter", n.name));
            continue;
        };
        compared += 1;
        let node_v = qt.local().and_then(|m| m.qdevice.as_deref()).is_some_and(|c| c.split(',').any(|w| w == "V"));
        let arb_v = a["vote"].as_str() == Some("ACK");
        if node_v != arb_v {
            disagree.push(format!(
                "{}: the arbiter says {} but the node {} the device vote",
                n.name,
                a["vote"].as_str().unwrap_or("-"),
                if node_v { "casts" } else { "does not cast" }
            ));
        }
        let ring = match &a["ring_id"] {
            serde_json::Value::Object(r) => Some(format!("{:x}.{:x}", r["node_id"].as_u64().unwrap_or(0), r["seq"].as_u64().unwrap_or(0))),
            _ => None,
        };
        if let (Some(r), Some(nr)) = (&ring, &qt.ring_id) {
            if !r.eq_ignore_ascii_case(nr) {
                disagree.push(format!("{}: ring {nr} on the node, {r} at the arbiter", n.name));
            }
        }
    }
    if !disagree.is_empty() {
        out.push(f(
            "arbiter.view",
            Severity::Warning,
            None,
            format!("the arbiter and the nodes disagree: {}", disagree.join("; ")),
            "often a membership change in progress: run doctor again in a few seconds; if it stays, restart corosync-qdevice on the node named",
        ));
    } else if compared > 0 {
        out.push(f("arbiter.view", Severity::Ok, None, format!("the arbiter's votes and ring ids match what {compared} node(s) report"), ""));
    }
    let ev = format!("cluster \"{name}\": {connected} of {} node(s) connected ({per_node})", nodes.len());
    if holders.is_empty() {
        out.push(f(
            "arbiter.lease",
            Severity::Warning,
            None,
            format!("{ev}; no node holds a lease"),
            "check the arbiter clients on both nodes (`twonode arbiter status`, `corosync-qdevice-tool -sv`)",
        ));
    } else {
        out.push(f("arbiter.lease", Severity::Ok, None, format!("{ev}; lease held by node id {}", holders.join(", ")), ""));
    }
    if connected < 2 && !gated {
        out.push(f("arbiter.clients", Severity::Warning, None, ev, "start the arbiter client (corosync-qdevice) on the node that is missing"));
    }
}

fn drbd_checks(facts: &Facts, c: Option<&Conf>, out: &mut Vec<Finding>) {
    let reachable: Vec<&NodeFacts> = facts.nodes.iter().filter(|n| n.unreachable.is_none()).collect();
    for n in &reachable {
        if let Some(e) = &n.drbd_error {
            out.push(f("drbd.config", Severity::Warning, Some(&n.name), format!("`drbdadm dump` failed: {e}"), "check drbd-utils and /etc/drbd.conf on the node"));
        }
    }
    // Peers named in the DRBD config vs the cluster's nodes.
    if let Some(c) = c {
        let names = cluster_nodes(c);
        for n in &reachable {
            for r in n.drbd_configs.iter().flatten() {
                let hosts: Vec<&str> = r.hosts.iter().map(|h| h.name.as_str()).collect();
                let strangers: Vec<&str> = hosts.iter().copied().filter(|h| !names.iter().any(|x| same_host(x, h))).collect();
                if !strangers.is_empty() {
                    out.push(f(
                        "drbd.peers",
                        Severity::Warning,
                        Some(&n.name),
                        format!(
                            "resource {}: DRBD hosts {} are not cluster nodes ({})",
                            r.name,
                            hosts.join(", "),
                            names.join(", ")
                        ),
                        "DRBD's `on NAME` must be each node's `uname -n` and match <clusternode name>; rename one side so they agree",
                    ));
                } else {
                    out.push(f("drbd.peers", Severity::Ok, Some(&n.name), format!("resource {}: hosts {} are cluster nodes", r.name, hosts.join(", ")), ""));
                }
            }
        }
    }
    // Resource state on both nodes.
    let mut resources: BTreeSet<String> = BTreeSet::new();
    for n in &reachable {
        for r in n.drbd_configs.iter().flatten() {
            resources.insert(r.name.clone());
        }
    }
    for res in &resources {
        let views: Vec<(&str, Option<&NodeView>, bool)> = reachable
            .iter()
            .map(|n| {
                let configured = n.drbd_configs.iter().flatten().any(|r| &r.name == res);
                (n.name.as_str(), n.drbd_views.get(res).filter(|v| v.present), configured)
            })
            .collect();
        for (node, v, configured) in &views {
            if !configured {
                out.push(f(
                    "drbd.configured",
                    Severity::Error,
                    Some(node),
                    format!("resource {res} is configured on the peer but not on {node}"),
                    format!("copy the resource file (/etc/drbd.d/{res}.res) to {node} and `drbdadm create-md`/`up` it there"),
                ));
            } else if v.is_none() {
                out.push(f(
                    "drbd.state",
                    Severity::Error,
                    Some(node),
                    format!("resource {res} is configured but not up on {node}"),
                    format!("on {node}: `drbdadm up {res}`"),
                ));
            }
        }
        let up: Vec<&NodeView> = views.iter().filter_map(|x| x.1).collect();
        if up.len() != 2 {
            continue;
        }
        let (verdict, words) = recover::classify(up[0], up[1]);
        let ev_nodes = up
            .iter()
            .map(|v| {
                format!(
                    "{}: {} {} disk {}",
                    v.node,
                    v.role.as_deref().unwrap_or("?"),
                    v.cstate.as_deref().unwrap_or("?"),
                    v.volumes.iter().map(|x| x.disk.as_deref().unwrap_or("?")).collect::<Vec<_>>().join("/")
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let ev = if words.is_empty() { ev_nodes } else { format!("{ev_nodes}; {}", words.join("; ")) };
        let (n0, n1) = (up[0].node.as_str(), up[1].node.as_str());
        let finding = match verdict {
            recover::Verdict::Healthy => f("drbd.state", Severity::Ok, None, format!("{res}: connected, UpToDate on both ({ev})"), ""),
            recover::Verdict::Syncing if up.iter().any(|v| v.syncing()) => f(
                "drbd.state",
                Severity::Warning,
                None,
                format!("{res}: resync running ({ev})"),
                format!("wait for the resync to finish (`twonode drbd status {res}`) before any failover test"),
            ),
            recover::Verdict::Syncing => f(
                "drbd.state",
                Severity::Error,
                None,
                format!("{res}: connected but not UpToDate on both nodes ({ev})"),
                format!("find why the disk is not UpToDate (`twonode drbd status {res}`; `drbdadm status {res}` on each node)"),
            ),
            recover::Verdict::SplitBrain => f(
                "drbd.split-brain",
                Severity::Error,
                None,
                format!("{res}: SPLIT BRAIN ({ev})"),
                format!(
                    "see whose data to keep with `twonode drbd split-brain`, then rehearse with \
                     `twonode drbd recover {res} --discard <victim> --dry-run --node {n0}=... --node {n1}=...`"
                ),
            ),
            recover::Verdict::Disconnected => f(
                "drbd.state",
                Severity::Error,
                None,
                format!("{res}: not connected, no diverging data ({ev})"),
                format!("reconnect: `drbdadm connect {res}` on the StandAlone node(s); check the replication link"),
            ),
            recover::Verdict::Unrelated => f(
                "drbd.state",
                Severity::Error,
                None,
                format!("{res}: the nodes' data are UNRELATED ({ev})"),
                "the two disks never shared data: check both nodes' resource definitions and disks before anything else",
            ),
            recover::Verdict::Unknown => f(
                "drbd.state",
                Severity::Error,
                None,
                format!("{res}: not connected, state unclear ({ev})"),
                format!("inspect with `twonode drbd status {res}` and `twonode drbd split-brain`"),
            ),
        };
        out.push(finding);
    }
}

/// An HA service and the DRBD resources it uses.
struct Service {
    label: String,
    domain: Option<String>,
    drbd: BTreeSet<String>,
}

fn descendants(doc: &Document, id: NodeId, out: &mut Vec<NodeId>) {
    for c in doc.child_elements(id) {
        out.push(c);
        descendants(doc, c, out);
    }
}

fn guest_main(text: &str) -> impl Iterator<Item = &str> {
    text.lines().take_while(|l| !l.trim_start().starts_with('['))
}

fn guest_id_of(path: &str) -> Option<(String, String)> {
    // .../nodes/NODE/qemu-server/100.conf
    let p = Path::new(path);
    let vmid = p.file_stem()?.to_str()?.to_string();
    let kind = p.parent()?;
    let node = kind.parent()?.file_name()?.to_str()?.to_string();
    Some((vmid, node))
}

fn disk_key(k: &str) -> bool {
    let base = k.trim_end_matches(|c: char| c.is_ascii_digit());
    matches!(base, "ide" | "sata" | "scsi" | "virtio" | "efidisk" | "tpmstate" | "mp" | "rootfs")
}

/// DRBD resources a guest config uses (see the module doc for the heuristic).
fn guest_drbd(text: &str, configs: &[ResourceConfig]) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for line in guest_main(text) {
        let Some((k, v)) = line.split_once(':') else { continue };
        if !disk_key(k.trim()) {
            continue;
        }
        let v = v.trim();
        let storage = v.split(':').next().unwrap_or("").split(',').next().unwrap_or("");
        for r in configs {
            let words: Vec<&str> = storage.split(['-', '_']).collect();
            let minors: Vec<u32> = r
                .volumes
                .iter()
                .chain(r.hosts.iter().flat_map(|h| h.volumes.iter()))
                .filter_map(|x| x.minor.or_else(|| x.device.as_deref().and_then(|d| d.trim_start_matches("/dev/drbd").parse().ok())))
                .collect();
            let by_dev = minors.iter().any(|m| {
                let d = format!("/dev/drbd{m}");
                v.split([',', ' ', ':']).any(|w| w == d)
            });
            if storage == r.name || words.contains(&r.name.as_str()) || by_dev || v.contains(&format!("/dev/drbd/by-res/{}", r.name)) {
                used.insert(r.name.clone());
            }
        }
    }
    used
}

/// Failover domains by name: (restricted, nodes).
type Domains = BTreeMap<String, (bool, Vec<String>)>;

fn services(c: &Conf, facts: &Facts, configs: &[ResourceConfig]) -> (Vec<Service>, Domains) {
    let doc = &c.doc;
    let mut domains: Domains = BTreeMap::new();
    let mut out = Vec::new();
    let Some(rm) = c.model.rm else { return (out, domains) };
    for fds in doc.children_named(rm.id, "failoverdomains") {
        for fd in doc.children_named(fds, "failoverdomain") {
            let Some(name) = doc.attr_value(fd, "name") else { continue };
            let restricted = doc.attr_value(fd, "restricted").map(|v| v.trim() == "1").unwrap_or(false);
            let nodes = doc.children_named(fd, "failoverdomainnode").iter().filter_map(|n| doc.attr_value(*n, "name").map(String::from)).collect();
            domains.insert(name.to_string(), (restricted, nodes));
        }
    }
    let mut guests: BTreeMap<String, &GuestConf> = BTreeMap::new();
    for n in &facts.nodes {
        for g in &n.guests {
            if let Some((vmid, _)) = guest_id_of(&g.path) {
                guests.entry(vmid).or_insert(g);
            }
        }
    }
    for s in doc.child_elements(rm.id) {
        let el = doc.name(s);
        let domain = doc.attr_value(s, "domain").map(String::from);
        match el {
            "service" => {
                let mut all = Vec::new();
                descendants(doc, s, &mut all);
                let drbd = all
                    .iter()
                    .filter(|d| doc.name(**d) == "drbd")
                    .filter_map(|d| doc.attr_value(*d, "resource").map(String::from))
                    .collect();
                out.push(Service { label: format!("service:{}", doc.attr_value(s, "name").unwrap_or("?")), domain, drbd });
            }
            "pvevm" | "vm" => {
                let vmid = doc.attr_value(s, "vmid").or_else(|| doc.attr_value(s, "name")).unwrap_or("?").to_string();
                let drbd = guests.get(&vmid).map(|g| guest_drbd(&g.text, configs)).unwrap_or_default();
                out.push(Service { label: format!("{el}:{vmid}"), domain, drbd });
            }
            _ => {}
        }
    }
    (out, domains)
}

fn service_checks(facts: &Facts, c: &Conf, out: &mut Vec<Finding>) {
    let all_configs: Vec<ResourceConfig> = facts.nodes.iter().flat_map(|n| n.drbd_configs.iter().flatten().cloned()).collect();
    let (svcs, domains) = services(c, facts, &all_configs);
    let cluster = cluster_nodes(c);
    for s in &svcs {
        if s.drbd.is_empty() {
            continue;
        }
        let (candidates, how) = match s.domain.as_ref().and_then(|d| domains.get(d).map(|x| (d, x))) {
            Some((d, (true, nodes))) => (nodes.clone(), format!("restricted failover domain {d}")),
            Some((d, (false, _))) => (cluster.clone(), format!("unrestricted failover domain {d}: any cluster node")),
            None => (cluster.clone(), "no failover domain: any cluster node".to_string()),
        };
        for node in &candidates {
            let Some(nf) = facts.nodes.iter().find(|n| same_host(&n.name, node)) else { continue };
            let Some(cfgs) = &nf.drbd_configs else { continue };
            for r in &s.drbd {
                let here = cfgs.iter().find(|x| &x.name == r);
                let ok = here.is_some_and(|x| x.hosts.is_empty() || x.hosts.iter().any(|h| same_host(&h.name, node)));
                if !ok {
                    out.push(f(
                        "ha.drbd-coherence",
                        Severity::Error,
                        Some(node),
                        format!("HA {} uses DRBD resource {r} and may run on {node} ({how}), but {r} is not configured on {node}", s.label),
                        format!(
                            "configure {r} on {node} (/etc/drbd.d/{r}.res, create-md, up), or restrict the service's failover domain to the nodes that have it"
                        ),
                    ));
                } else {
                    out.push(f("ha.drbd-coherence", Severity::Ok, Some(node), format!("HA {} can run on {node}: {r} is configured there", s.label), ""));
                }
            }
        }
    }
}

fn lock_checks(facts: &Facts, out: &mut Vec<Finding>) {
    let mut seen = BTreeSet::new();
    for n in &facts.nodes {
        for g in &n.guests {
            if !seen.insert(g.path.clone()) {
                continue;
            }
            let Some(lock) = guest_main(&g.text).find_map(|l| l.strip_prefix("lock:").map(|v| v.trim().to_string())) else { continue };
            let (vmid, owner) = guest_id_of(&g.path).unwrap_or_else(|| ("?".into(), n.name.clone()));
            let tool = if g.path.contains("/lxc/") { "pct" } else { "qm" };
            out.push(f(
                "guest.lock",
                Severity::Warning,
                Some(&owner),
                format!("guest {vmid} is locked ({g_path}: `lock: {lock}`); HA cannot start or migrate it while locked", g_path = g.path),
                format!(
                    "if no {lock} task is running for {vmid} on {owner} (check `ps` / the task log), clear it with `{tool} unlock {vmid}` on {owner}"
                ),
            ));
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Gathering (I/O)

/// What to gather and where.
pub struct GatherOptions<'a> {
    /// cluster.conf path on each node (per-node overrides by name).
    pub conf_path: std::path::PathBuf,
    pub conf_overrides: BTreeMap<String, std::path::PathBuf>,
    /// The Proxmox config directory on the nodes (guest configs under nodes/*/qemu-server, lxc).
    pub pve_dir: std::path::PathBuf,
    /// Contact the fence devices (status only).
    pub fence: bool,
    /// HOST:PORT of the arbiter, or its status socket path (anything with a `/`).
    pub arbiter: Option<&'a str>,
    pub arbiter_timeout: std::time::Duration,
    /// corosync.conf paths tried on a node without cluster.conf (first found wins).
    pub corosync_paths: Vec<std::path::PathBuf>,
    /// Probe the arbiter through the gate's client when the gate is configured.
    pub probe_gate: bool,
    /// The arbiter's config file, read when doctor runs on the arbiter machine (its TLS files'
    /// expiry is checked).
    pub arbiter_config: Option<std::path::PathBuf>,
}

impl GatherOptions<'_> {
    /// Defaults for tests and callers that set only a few fields.
    pub fn new(conf_path: impl Into<std::path::PathBuf>) -> GatherOptions<'static> {
        GatherOptions {
            conf_path: conf_path.into(),
            conf_overrides: BTreeMap::new(),
            pve_dir: "/etc/pve".into(),
            fence: true,
            arbiter: None,
            arbiter_timeout: std::time::Duration::from_secs(5),
            corosync_paths: DEFAULT_COROSYNC.iter().map(std::path::PathBuf::from).collect(),
            probe_gate: true,
            arbiter_config: None,
        }
    }
}

/// Where corosync.conf is looked for (Proxmox first).
pub const DEFAULT_COROSYNC: &[&str] = &["/etc/pve/corosync.conf", "/etc/corosync/corosync.conf"];

/// Run a tool on a node with a time limit; Ok(stdout) when it printed something parseable.
fn run_tool(h: &mut dyn Host, argv: &[&str]) -> Result<(i32, String, String), String> {
    let mut full = vec!["timeout", "15"];
    full.extend_from_slice(argv);
    match h.run(&full, None) {
        Ok(o) if o.status == 127 => Err(format!("`{}` is not installed on the node", argv[0])),
        Ok(o) if o.status == 124 => Err(format!("`{}` did not answer within 15 s", argv.join(" "))),
        Ok(o) => Ok((o.status, o.stdout_str(), o.stderr_str())),
        Err(e) => Err(format!("{e:#}")),
    }
}

/// The node's quorum device state: `corosync-quorumtool -s` and `corosync-qdevice-tool -sv`.
pub fn gather_qdevice(h: &mut dyn Host) -> qdevice::NodeQdevice {
    let mut q = qdevice::NodeQdevice { node: h.name().to_string(), ..Default::default() };
    match run_tool(h, &["corosync-quorumtool", "-s"]) {
        // 0 quorate, 2 not quorate: both are answers
        Ok((code, out, err)) => match qdevice::parse_quorumtool(&out) {
            Ok(p) => q.quorumtool = Some(p),
            Err(e) => q.quorumtool_error = Some(format!("exit {code}: {} ({e})", first_line(&err, &out))),
        },
        Err(e) => q.quorumtool_error = Some(e),
    }
    match run_tool(h, &["corosync-qdevice-tool", "-s", "-v"]) {
        Ok((code, out, err)) => match qdevice::parse_qdevice_tool(&out) {
            Ok(p) => q.qdevice_tool = Some(p),
            Err(_) => q.qdevice_tool_error = Some(format!("exit {code}: {}", first_line(&err, &out))),
        },
        Err(e) => q.qdevice_tool_error = Some(e),
    }
    q
}

fn first_line(a: &str, b: &str) -> String {
    a.lines().chain(b.lines()).map(str::trim).find(|l| !l.is_empty()).unwrap_or("no output").to_string()
}

/// Probe the arbiter the way the gate reaches it: the gate's client
/// ([`crate::quorum::arbiter::client::probe`]: TCP, STARTTLS with the gate's CA/cert/key, INIT for
/// this cluster with a probe node id, one echo). When the certificate files are not on this
/// machine (doctor run from elsewhere) only a TCP connect is tried (depth "tcp").
pub fn probe_gate(g: &GateConf, cluster: &str, node_id: u32, timeout: std::time::Duration) -> GateProbe {
    use crate::quorum::arbiter::client::{self, ClientConfig, ClientError, ClientTls};
    let mut p = GateProbe { target: g.target(), depth: "init".into(), ..Default::default() };
    if let Some(c) = &g.cert {
        p.cert = Some(read_cert_local(c));
    }
    let mut cfg = ClientConfig::new(g.host.clone(), g.port, cluster, node_id);
    cfg.connect_timeout = timeout;
    cfg.timeout = timeout.max(std::time::Duration::from_secs(10));
    if let (Some(ca), Some(cert), Some(key)) = (&g.ca, &g.cert, &g.key) {
        cfg.tls = Some(ClientTls { ca: ca.into(), cert: cert.into(), key: key.into() });
    }
    let missing: Vec<&str> = cfg
        .tls
        .as_ref()
        .map(|t| [&t.ca, &t.cert, &t.key].into_iter().filter(|f| !f.exists()).filter_map(|f| f.to_str()).collect())
        .unwrap_or_default();
    if !missing.is_empty() {
        return probe_tcp(p, g, timeout, format!("the gate's files {} are not on this machine", missing.join(", ")));
    }
    match client::probe(&cfg) {
        Ok(r) => {
            p.ok = true;
            p.rtt_ms = Some(r.rtt_ms);
            p.detail = Some(format!(
                "TLS {} (the arbiter offers TLS {}), INIT accepted in {:.1} ms, algorithms {}",
                if r.tls { "used" } else { "NOT used" },
                r.server_tls,
                r.init_ms,
                r.algorithms.join(",")
            ));
        }
        Err(ClientError::Config(e)) => return probe_tcp(p, g, timeout, format!("the gate's client cannot start here: {e}")),
        Err(e) => p.error = Some(format!("{e} ({})", e.advice())),
    }
    p
}

/// Run the gate agent's monitor action on a node (stdin key=value like fenced; paths, no secrets).
pub fn gate_monitor(h: &mut dyn Host, d: &crate::fence::spec::DeviceSpec, conf_path: &str) -> GateMonitor {
    let mut input = String::from("action=monitor\n");
    for k in crate::fence::gate::PARAM_KEYS {
        if let Some(v) = d.params.get(*k) {
            input.push_str(&format!("{k}={v}\n"));
        }
    }
    input.push_str(&format!("cluster_conf={conf_path}\n"));
    for argv in [&["timeout", "60", GATE_AGENT][..], &["timeout", "60", "twonode", "fence", "gate"][..]] {
        match h.run(argv, Some(input.as_bytes())) {
            Ok(o) if o.status == 127 => continue,
            Ok(o) => {
                let text = if o.success() { o.stdout_str() } else { format!("{}\n{}", o.stderr_str(), o.stdout_str()) };
                return GateMonitor {
                    command: Some(argv[2..].join(" ")),
                    exit: Some(o.status),
                    output: text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("no output").to_string(),
                };
            }
            Err(e) if format!("{e:#}").contains("cannot start") => continue,
            Err(e) => return GateMonitor { command: Some(argv[2..].join(" ")), exit: None, output: format!("{e:#}") },
        }
    }
    GateMonitor { command: None, exit: None, output: format!("neither {GATE_AGENT} nor twonode is on the node's PATH") }
}

fn probe_tcp(mut p: GateProbe, g: &GateConf, timeout: std::time::Duration, why: String) -> GateProbe {
    use std::net::ToSocketAddrs;
    p.depth = "tcp".into();
    let t0 = std::time::Instant::now();
    match (g.host.as_str(), g.port).to_socket_addrs() {
        Ok(mut it) => match it.next() {
            Some(addr) => match std::net::TcpStream::connect_timeout(&addr, timeout) {
                Ok(_) => {
                    p.ok = true;
                    p.rtt_ms = Some(t0.elapsed().as_secs_f64() * 1000.0);
                    p.detail = Some(why);
                }
                Err(e) => p.error = Some(format!("connecting to {addr}: {e} ({why}: TCP only)")),
            },
            None => p.error = Some(format!("{} has no address", g.host)),
        },
        Err(e) => p.error = Some(format!("{} does not resolve: {e}", g.host)),
    }
    p
}

fn read_cert_local(path: &str) -> CertFacts {
    match std::fs::read_to_string(path) {
        Ok(t) => CertFacts { path: path.into(), pem: Some(t), error: None },
        Err(e) => CertFacts { path: path.into(), pem: None, error: Some(e.to_string()) },
    }
}

fn gather_node(h: &mut dyn Host, o: &GatherOptions) -> NodeFacts {
    let name = h.name().to_string();
    let conf_path = o.conf_overrides.get(&name).cloned().unwrap_or_else(|| o.conf_path.clone());
    let mut nf = NodeFacts { name: name.clone(), conf_path: conf_path.display().to_string(), ..Default::default() };
    match h.run(&["uname", "-n"], None) {
        Ok(out) => nf.hostname = Some(out.stdout_str().trim().to_string()),
        Err(e) => {
            nf.unreachable = Some(format!("{e:#}"));
            return nf;
        }
    }
    match h.read_file(&conf_path) {
        // --file / --node-file may name a corosync.conf: told apart by content, like `quorum status`
        Ok(b) if !String::from_utf8_lossy(&b).trim_start().starts_with('<')
            && crate::quorum::corosync_conf::CorosyncConf::parse(&String::from_utf8_lossy(&b)).is_ok_and(|c| c.section("totem").is_some() || c.section("quorum").is_some()) =>
        {
            nf.corosync_path = Some(conf_path.display().to_string());
            nf.corosync_conf = Some(String::from_utf8_lossy(&b).into_owned());
            nf.conf_error = Some(format!("{} is a corosync.conf", conf_path.display()));
        }
        Ok(b) => nf.conf = Some(b),
        Err(e) => nf.conf_error = Some(format!("{e:#}")),
    }
    if nf.conf.is_none() {
        for p in o.corosync_paths.iter().filter(|_| nf.corosync_conf.is_none()) {
            if let Ok(b) = h.read_file(p) {
                nf.corosync_path = Some(p.display().to_string());
                nf.corosync_conf = Some(String::from_utf8_lossy(&b).into_owned());
                break;
            }
        }
        let net = nf
            .corosync_conf
            .as_deref()
            .and_then(|t| crate::quorum::corosync_conf::CorosyncConf::parse(t).ok())
            .is_some_and(|c| c.get("quorum.device", "model") == Some("net"));
        if net {
            nf.qdevice = Some(gather_qdevice(h));
        }
    }
    match h.run(&["drbdadm", "dump"], None) {
        Ok(out) if out.success() => match crate::drbd::parse::parse_auto(&out.stdout_str()) {
            Ok(st) => nf.drbd_configs = Some(st.configs),
            Err(e) => nf.drbd_error = Some(format!("cannot parse `drbdadm dump`: {e}")),
        },
        Ok(out) => {
            let err = out.stderr_str();
            // No DRBD at all on the node: nothing configured.
            if err.contains("no resources defined") || err.contains("No such file") {
                nf.drbd_configs = Some(vec![]);
            } else {
                nf.drbd_error = Some(format!("exit {}: {}", out.status, err.trim()));
            }
        }
        Err(e) => nf.drbd_error = Some(format!("{e:#}")),
    }
    for r in nf.drbd_configs.clone().unwrap_or_default() {
        match recover::read_view(h, &r.name) {
            Ok(v) => {
                nf.drbd_views.insert(r.name.clone(), v);
            }
            Err(e) => nf.drbd_error = Some(format!("reading the state of {}: {e:#}", r.name)),
        }
    }
    let dir = crate::host::shell_quote(&o.pve_dir.to_string_lossy());
    let script = format!(
        "for f in {dir}/nodes/*/qemu-server/*.conf {dir}/nodes/*/lxc/*.conf; do [ -f \"$f\" ] && {{ echo \"### $f\"; cat \"$f\"; }}; done; true"
    );
    if let Ok(out) = h.run(&["sh", "-c", &script], None) {
        let text = out.stdout_str();
        let mut cur: Option<GuestConf> = None;
        for line in text.lines() {
            if let Some(p) = line.strip_prefix("### ") {
                nf.guests.extend(cur.take());
                cur = Some(GuestConf { path: p.to_string(), text: String::new() });
            } else if let Some(g) = cur.as_mut() {
                g.text.push_str(line);
                g.text.push('\n');
            }
        }
        nf.guests.extend(cur);
    }
    nf
}

/// Gather the facts from the nodes, the fence devices and the arbiter. `bar` shows what is being
/// contacted (pass `ProgressBar::hidden()` for none).
pub fn gather(hosts: &mut [Box<dyn Host>], o: &GatherOptions, bar: &ProgressBar) -> Facts {
    let mut facts = Facts {
        now_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0),
        ..Default::default()
    };
    bar.set_length(hosts.len() as u64 + u64::from(o.arbiter.is_some()));
    for h in hosts.iter_mut() {
        bar.set_message(format!("node {}", h.name()));
        facts.nodes.push(gather_node(h.as_mut(), o));
        bar.inc(1);
    }
    // The fence devices and the gate come from the newest readable config.
    let best = facts
        .nodes
        .iter()
        .filter_map(|n| n.conf.as_ref().map(|b| (n, b)))
        .filter_map(|(n, b)| Model::parse(b).ok().map(|(_, m)| (n, b, m)))
        .max_by_key(|x| x.2.version());
    let parsed = best.and_then(|(n, b, m)| {
        crate::fence::spec::from_cluster_conf(&String::from_utf8_lossy(b), &n.conf_path).ok().map(|t| (t, m))
    });
    if let Some((targets, model)) = parsed {
        let layout = gate_layout(&targets);
        let plain = without_gate(&targets);
        if o.fence {
            let clock = crate::fence::engine::RealClock::new();
            let mut opener = crate::fence::drivers::RealOpener;
            let n: usize = plain.iter().flat_map(|t| &t.methods).map(|m| m.devices.len()).sum();
            bar.inc_length(n as u64);
            let mut checks = Vec::new();
            for t in &plain {
                for m in &t.methods {
                    for d in &m.devices {
                        bar.set_message(format!("fence device {} ({} method {})", d.name, t.node, m.name));
                        let one = FenceTarget {
                            node: t.node.clone(),
                            nodeid: t.nodeid.clone(),
                            methods: vec![crate::fence::spec::Method { name: m.name.clone(), devices: vec![d.clone()] }],
                        };
                        checks.extend(crate::fence::test::check_devices(&[one], &mut opener, &clock));
                        bar.inc(1);
                    }
                }
            }
            facts.fence_checks = Some(checks);
        }
        if let Some(g) = layout.gates.first() {
            // each node's client certificate, read on the node
            if let Some(cert) = &g.cert {
                for (h, nf) in hosts.iter_mut().zip(facts.nodes.iter_mut()) {
                    if nf.unreachable.is_some() {
                        continue;
                    }
                    nf.gate_cert = Some(match h.read_file(Path::new(cert)) {
                        Ok(b) => CertFacts { path: cert.clone(), pem: Some(String::from_utf8_lossy(&b).into_owned()), error: None },
                        Err(e) => CertFacts { path: cert.clone(), pem: None, error: Some(format!("{e:#}")) },
                    });
                }
            }
            if o.probe_gate {
                // each node's own gate agent, as fenced would run it there (paths only on stdin)
                let d = targets.iter().flat_map(|t| &t.methods).flat_map(|m| &m.devices).find(|d| is_gate(d));
                if let Some(d) = d {
                    for (h, nf) in hosts.iter_mut().zip(facts.nodes.iter_mut()) {
                        if nf.unreachable.is_some() {
                            continue;
                        }
                        bar.inc_length(1);
                        bar.set_message(format!("gate agent on {}", nf.name));
                        nf.gate_monitor = Some(gate_monitor(h.as_mut(), d, &nf.conf_path));
                        bar.inc(1);
                    }
                }
                bar.inc_length(1);
                bar.set_message(format!("arbiter {} (gate)", g.target()));
                // the id of the node doctor runs on when it is one, else the first node's
                let me = nix::unistd::gethostname().ok().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
                let ids: Vec<(String, u32)> = model
                    .nodes
                    .iter()
                    .filter_map(|n| Some((n.name.clone()?, n.nodeid.as_deref()?.trim().parse().ok()?)))
                    .collect();
                let id = ids.iter().find(|(n, _)| same_host(n, &me)).or(ids.first()).map(|x| x.1).unwrap_or(1);
                facts.gate_probe = Some(probe_gate(g, model.cluster_name().unwrap_or(""), id, o.arbiter_timeout));
                bar.inc(1);
            }
        }
    }
    if let Some(t) = o.arbiter {
        bar.set_message(format!("arbiter {t}"));
        let mut a = ArbiterFacts { target: t.to_string(), ..Default::default() };
        if t.contains('/') {
            match crate::quorum::arbiter::server::query_status(Path::new(t)) {
                Ok(v) => {
                    a.reachable = true;
                    a.status = Some(v);
                }
                Err(e) => a.error = Some(format!("{e:#}")),
            }
        } else {
            use std::net::ToSocketAddrs;
            match t.to_socket_addrs() {
                Ok(mut it) => match it.next() {
                    Some(addr) => match std::net::TcpStream::connect_timeout(&addr, o.arbiter_timeout) {
                        Ok(_) => a.reachable = true,
                        Err(e) => a.error = Some(format!("connecting to {addr}: {e}")),
                    },
                    None => a.error = Some(format!("{t} has no address")),
                },
                Err(e) => a.error = Some(format!("{t} is not HOST:PORT or does not resolve: {e}")),
            }
        }
        facts.arbiter = Some(a);
        bar.inc(1);
    }
    if let Some(cfgp) = o.arbiter_config.as_ref().filter(|p| p.exists()) {
        match crate::quorum::arbiter::server::ServerConfig::load(cfgp) {
            Ok(cfg) if cfg.arbiter.tls != crate::quorum::arbiter::wire::TlsSupported::Unsupported => {
                for (what, p) in [("server certificate", &cfg.tls.cert), ("CA certificate", &cfg.tls.ca)] {
                    facts.arbiter_certs.push((what.to_string(), read_cert_local(&p.to_string_lossy())));
                }
            }
            Ok(_) => {}
            Err(e) => facts.arbiter_certs.push((
                "config".into(),
                CertFacts { path: cfgp.display().to_string(), pem: None, error: Some(format!("{e:#}")) },
            )),
        }
    }
    bar.finish_and_clear();
    facts
}

/// Human table.
pub fn render(findings: &[Finding]) -> String {
    let mut s = String::new();
    s.push_str(&format!("{:<8} {:<22} {:<10} {}\n", "SEVERITY", "CHECK", "NODE", "EVIDENCE"));
    for x in findings {
        s.push_str(&format!("{:<8} {:<22} {:<10} {}\n", x.severity.word(), x.check, x.node.as_deref().unwrap_or("-"), x.evidence));
        if !x.fix.is_empty() {
            s.push_str(&format!("{:<42}fix: {}\n", "", x.fix));
        }
    }
    let count = |sv: Severity| findings.iter().filter(|x| x.severity == sv).count();
    s.push_str(&format!(
        "\n{} error(s), {} warning(s), {} info, {} ok\n",
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info),
        count(Severity::Ok)
    ));
    s
}
