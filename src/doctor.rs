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
use crate::clusterconf::document::{Document, NodeId};
use crate::clusterconf::model::Model;
use crate::clusterconf::validate;
use crate::drbd::recover::{self, NodeView};
use crate::drbd::state::ResourceConfig;
use crate::fence::spec::{FenceTarget, Timing};
use crate::fence::test::DeviceCheck;
use crate::host::Host;
use crate::quorum::votequorum::{self, QuorumConfig};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn word(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Info => "info",
            Severity::Warning => "WARNING",
            Severity::Error => "ERROR",
        }
    }
}

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
    let conf = config_checks(facts, &mut out);
    if let Some(c) = &conf {
        node_name_checks(facts, c, &mut out);
        quorum_checks(c, &mut out);
        fence_checks(facts, c, &mut out);
    }
    arbiter_checks(facts, conf.as_ref(), &mut out);
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
                format!("put the cluster's cluster.conf at {} on {} (or pass --file / --node-file)", n.conf_path, n.name),
            ));
            continue;
        };
        let rep = validate::validate(bytes, &validate::Options::default());
        let diag_text = |sev: validate::Severity| {
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
                format!("{} error(s): {}", rep.errors, diag_text(validate::Severity::Error)),
                format!("on {}: `twonode conf validate --file {}` shows every error with its hint; fix them, raise config_version and propagate", n.name, n.conf_path),
            ));
        } else if rep.warnings > 0 {
            out.push(f(
                "config.valid",
                Severity::Warning,
                Some(&n.name),
                format!("valid, {} warning(s): {}", rep.warnings, diag_text(validate::Severity::Warning)),
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

fn quorum_checks(c: &Conf, out: &mut Vec<Finding>) {
    let q = QuorumConfig::from_cluster_conf(&c.model, &c.path);
    let view = q.compute(None);
    let diags = q.check();
    for d in &diags {
        let sev = match d.severity {
            votequorum::Severity::Error => Severity::Error,
            votequorum::Severity::Warning => Severity::Warning,
        };
        let at = d.line.map(|l| format!(" ({}:{l})", c.path)).unwrap_or_default();
        out.push(f(&format!("quorum.{}", d.code), sev, None, format!("{}{at}", d.message), d.fix.clone()));
    }
    if !diags.iter().any(|d| d.severity == votequorum::Severity::Error) {
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

fn arbiter_in_use(facts: &Facts, c: Option<&Conf>) -> bool {
    facts.arbiter.as_ref().is_some_and(|a| a.reachable) || c.is_some_and(|c| c.model.quorumd.is_some())
}

fn fence_checks(facts: &Facts, c: &Conf, out: &mut Vec<Finding>) {
    let targets = match targets_of(c) {
        Ok(t) => t,
        Err(e) => {
            out.push(f("fence.config", Severity::Error, None, format!("fencing in {} cannot be read: {e}", c.path), "fix cluster.conf (see config.valid)"));
            return;
        }
    };
    // Configuration risks, as `fence test` flags them (its fence_race rule is refined below).
    for r in crate::fence::test::risks(&targets, &literal_only) {
        if r.code == "fence_race" {
            continue;
        }
        let sev = match (r.severity, r.code) {
            (_, "single_bmc_level") => Severity::Info,
            (crate::fence::test::Severity::Danger, _) => Severity::Error,
            (crate::fence::test::Severity::Warning, _) => Severity::Warning,
        };
        let (evidence, fix) = match r.message.rsplit_once(". ") {
            Some((e, fx)) => (e.to_string(), fx.to_string()),
            None => (r.message.clone(), "see `twonode fence test`".to_string()),
        };
        out.push(f(&format!("fence.{}", r.code), sev, None, evidence, fix));
    }
    // Fence race: a delay on exactly one node, or an arbiter deciding.
    let fenced: Vec<&FenceTarget> = targets.iter().filter(|t| t.methods.iter().any(|m| !m.devices.is_empty())).collect();
    if fenced.len() >= 2 {
        let delay_of = |t: &FenceTarget| -> Option<u64> {
            let m = t.methods.iter().find(|m| !m.devices.is_empty())?;
            m.devices
                .iter()
                .filter_map(|d| {
                    let t = Timing::for_device(d).ok().map(|x| x.delay.as_secs()).filter(|s| *s > 0);
                    t.or_else(|| d.get(&["pcmk_delay_max", "pcmk_delay_base"]).map(|v| v.trim().trim_end_matches('s').parse().unwrap_or(1)))
                })
                .max()
        };
        let delays: Vec<(String, Option<u64>)> = fenced.iter().map(|t| (t.node.clone(), delay_of(t))).collect();
        let ev = delays
            .iter()
            .map(|(n, d)| format!("{n}: {}", d.map(|d| format!("delay {d}s")).unwrap_or_else(|| "no delay".into())))
            .collect::<Vec<_>>()
            .join(", ");
        let with: Vec<&(String, Option<u64>)> = delays.iter().filter(|d| d.1.is_some()).collect();
        let arb = arbiter_in_use(facts, Some(c));
        if arb {
            out.push(f("fence.race", Severity::Ok, None, format!("an arbiter decides which partition fences ({ev})"), ""));
        } else if with.len() == 1 {
            out.push(f("fence.race", Severity::Ok, None, format!("delay on exactly one node ({ev}): {} survives a split", with[0].0), ""));
        } else if with.is_empty() {
            out.push(f(
                "fence.race",
                Severity::Warning,
                None,
                format!("no fence delay and no arbiter ({ev}): on a network split both nodes can fence each other at once"),
                format!("set delay=\"15\" on the fence device of ONE node (the one that should survive, e.g. {}), or configure an arbiter", fenced[0].node),
            ));
        } else {
            let distinct: BTreeSet<Option<u64>> = with.iter().map(|d| d.1).collect();
            out.push(f(
                "fence.race",
                if distinct.len() > 1 { Severity::Info } else { Severity::Warning },
                None,
                format!("every node has a fence delay ({ev}): equal delays only postpone the race"),
                "keep the delay on the node that should survive only, or configure an arbiter",
            ));
        }
    }
    // Devices answering.
    match &facts.fence_checks {
        None => out.push(f("fence.device", Severity::Info, None, "fence devices were not contacted", "run without --no-fence to check them")),
        Some(checks) => {
            for d in checks {
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

fn arbiter_checks(facts: &Facts, c: Option<&Conf>, out: &mut Vec<Finding>) {
    let Some(a) = &facts.arbiter else {
        if c.is_none_or(|c| c.model.quorumd.is_none()) {
            out.push(f("arbiter", Severity::Info, None, "no arbiter given (--arbiter)", ""));
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
    let name = c.and_then(|c| c.model.cluster_name()).unwrap_or("");
    let clusters = st["arbiter"]["clusters"].as_array().cloned().unwrap_or_default();
    let Some(cl) = clusters.iter().find(|x| x["name"].as_str() == Some(name)) else {
        out.push(f(
            "arbiter.lease",
            Severity::Warning,
            None,
            format!(
                "the arbiter knows no cluster \"{name}\" (it knows: {})",
                clusters.iter().filter_map(|x| x["name"].as_str()).collect::<Vec<_>>().join(", ")
            ),
            "start the arbiter client (corosync-qdevice) on both nodes with this cluster name",
        ));
        return;
    };
    let nodes = cl["nodes"].as_array().cloned().unwrap_or_default();
    let connected = nodes.iter().filter(|n| !n["conn"].is_null() || n.get("conn").is_none()).count();
    let holder = nodes.iter().find(|n| n["holds_lease"].as_bool() == Some(true));
    let ev = format!("{connected} of {} node(s) connected", nodes.len());
    match holder {
        Some(h) => out.push(f("arbiter.lease", Severity::Ok, None, format!("{ev}; node id {} holds the lease", h["node_id"]), "")),
        None => out.push(f(
            "arbiter.lease",
            Severity::Warning,
            None,
            format!("{ev}; no node holds a lease"),
            "check the arbiter clients on both nodes (`twonode arbiter status`)",
        )),
    }
    if connected < 2 {
        out.push(f("arbiter.clients", Severity::Warning, None, ev, "start the arbiter client on the node that is missing"));
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
        Ok(b) => nf.conf = Some(b),
        Err(e) => nf.conf_error = Some(format!("{e:#}")),
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

/// Gather the facts from the nodes, the fence devices and the arbiter.
pub fn gather(hosts: &mut [Box<dyn Host>], o: &GatherOptions) -> Facts {
    let mut facts = Facts::default();
    for h in hosts.iter_mut() {
        facts.nodes.push(gather_node(h.as_mut(), o));
    }
    if o.fence {
        // The fence devices come from the newest readable config.
        let best = facts
            .nodes
            .iter()
            .filter_map(|n| n.conf.as_ref().map(|b| (n, b)))
            .filter_map(|(n, b)| Model::parse(b).ok().map(|(_, m)| (n, b, m.version())))
            .max_by_key(|x| x.2);
        if let Some((n, b, _)) = best {
            if let Ok(targets) = crate::fence::spec::from_cluster_conf(&String::from_utf8_lossy(b), &n.conf_path) {
                let clock = crate::fence::engine::RealClock::new();
                let mut opener = crate::fence::drivers::RealOpener;
                facts.fence_checks = Some(crate::fence::test::check_devices(&targets, &mut opener, &clock));
            }
        }
    }
    if let Some(t) = o.arbiter {
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
    }
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
