//! Gathering: the I/O that fills [`Facts`]. Each node is read through [`Host`] (local or ssh:
//! [`node`]), the fence devices are asked for their power status ([`fence`]), the arbiter gate is
//! probed and each node's gate agent run ([`gate`]), the arbiter is contacted ([`arbiter`]), the
//! pacemaker CIB is read and its fence devices asked for their status ([`pacemaker`]).
//! Nothing here judges: a failure is written into the facts (`*_error`, `unreachable`) for the
//! checks to report.
//!
//! A new check area that needs more from each node adds a `read_AREA` step to
//! [`node::gather_node`] (or a file here when it is more than a few commands) filling its
//! optional facts struct; facts from elsewhere are gathered in [`gather`].
use super::facts::Facts;
use crate::clusterconf::model::Model;
use crate::host::Host;
use indicatif::ProgressBar;
use std::collections::BTreeMap;

pub mod arbiter;
pub mod fence;
pub mod gate;
pub mod node;
pub mod pacemaker;

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
    /// The pacemaker CIB to check (`--cib`; `Auto`: `cibadmin -Q` here when it answers).
    pub cib: pacemaker::CibRequest,
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
            cib: pacemaker::CibRequest::Auto,
        }
    }
}

/// Where corosync.conf is looked for (Proxmox first).
pub const DEFAULT_COROSYNC: &[&str] = &["/etc/pve/corosync.conf", "/etc/corosync/corosync.conf"];

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
        facts.nodes.push(node::gather_node(h.as_mut(), o));
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
        if o.fence {
            facts.fence_checks = Some(fence::check_devices(&targets, bar));
        }
        gate::gather_gate(hosts, &mut facts, &targets, &model, o, bar);
    }
    facts.pacemaker = pacemaker::gather(hosts, &o.cib, o.fence, bar);
    if let Some(target) = o.arbiter {
        bar.set_message(format!("arbiter {target}"));
        facts.arbiter = Some(arbiter::contact(target, o.arbiter_timeout));
        bar.inc(1);
    }
    if let Some(path) = o.arbiter_config.as_ref().filter(|p| p.exists()) {
        facts.arbiter_certs = arbiter::own_certs(path);
    }
    bar.finish_and_clear();
    facts
}

/// A certificate file read on this machine (the gate's probe reads it the same way).
pub(crate) use crate::fence::gate::read_cert_local;
