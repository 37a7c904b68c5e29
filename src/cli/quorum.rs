//! `twonode quorum`: command-line surface; logic lives in `crate::quorum::votequorum`.
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::Global;
use crate::diag::Severity;
use crate::quorum::votequorum::{Live, QuorumConfig};
use crate::util::Failure;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Votequorum state like `corosync-quorumtool -s`: expected/total votes, quorum, flags,
    /// per-node votes, and the configuration rules corosync would refuse at start.
    ///
    /// Exit codes: 0 quorate and no configuration error; 1 configuration error(s); 2 input
    /// unreadable; 3 not quorate (or activity blocked).
        /// A cman cluster.conf whose fence methods start with the arbiter gate
    /// (agent fence_twonode_arbiter) also shows the gate: the arbiter HOST:PORT, whether it
    /// answers the gate's client (TLS + INIT; skipped with --no-probe), and the tie-breaker.
    #[command(after_help = "Examples:\n  twonode quorum status\n  twonode quorum status --file /etc/corosync/corosync.conf --json\n  corosync-quorumtool -s > qt.txt; twonode quorum status --file corosync.conf --live qt.txt\n  twonode quorum status --file /etc/cluster/cluster.conf --no-probe")]
    Status {
        /// cluster.conf or corosync.conf (default: /etc/cluster/cluster.conf, then
        /// /etc/pve/corosync.conf, then /etc/corosync/corosync.conf). Given a file, live
        /// membership is only used with --live.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Saved output of `corosync-quorumtool -s` / `pvecm status` / `cman_tool status`
        /// ("-" = stdin). Without --file the local corosync-quorumtool is asked, if present.
        #[arg(long)]
        live: Option<PathBuf>,
        /// cman with the arbiter gate: do not probe the arbiter (no network).
        #[arg(long)]
        no_probe: bool,
    },
    /// Validate corosync.conf: votequorum's refusals (quorum device with two_node,
    /// last_man_standing, auto_tie_breaker, allow_downscale, unequal votes, expected_votes),
    /// qdevice settings, and watchdog-only self-fencing under two_node, each at line:column.
    ///
    /// Exit codes: 0 valid; 1 error(s) found; 2 unreadable or not parseable.
    #[command(after_help = "Examples:\n  twonode quorum validate\n  twonode quorum validate --file corosync.conf --sbd-config /etc/sysconfig/sbd --cib cib.xml --json")]
    Validate {
        #[command(flatten)]
        cc: CorosyncFile,
        /// Validate the staged PATH.new instead of PATH.
        #[arg(long)]
        staged: bool,
    },
    /// Add the arbiter as corosync quorum device (quorum.device, model net) and drop two_node;
    /// refuses what votequorum refuses. Writes PATH.new (review with `quorum diff`, activate
    /// with `quorum apply`) unless --in-place. Prints the diff.
    #[command(after_help = "Examples:\n  twonode quorum enable-arbiter --host arbiter.example.com --dry-run\n  twonode quorum enable-arbiter --host 10.0.0.3 --algorithm ffsplit --tie-breaker lowest")]
    EnableArbiter {
        /// The arbiter (qnetd) host name or address.
        #[arg(long)]
        host: String,
        /// ffsplit (even node counts, the default) or lms.
        #[arg(long, default_value = "ffsplit")]
        algorithm: String,
        /// lowest, highest or a node id: who wins a 50:50 split when nothing else decides.
        #[arg(long, default_value = "lowest")]
        tie_breaker: String,
        #[command(flatten)]
        edit: CorosyncEdit,
    },
    /// Remove the quorum device; with exactly two nodes restore two_node: 1 (refused when the
    /// cluster self-fences by watchdog).
    DisableArbiter {
        #[command(flatten)]
        edit: CorosyncEdit,
    },
    /// Show the difference between corosync.conf and the staged corosync.conf.new.
    Diff {
        /// corosync.conf (default: /etc/pve/corosync.conf if present, else /etc/corosync/corosync.conf).
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Replace corosync.conf by the staged corosync.conf.new, only if it validates (and its
    /// config_version is higher when both have one); the old file is kept as PATH.old.
    Apply {
        #[command(flatten)]
        cc: CorosyncFile,
        /// Shell command run after replacing, e.g. `corosync-cfgtool -R`.
        #[arg(long)]
        reload: Option<String>,
    },
}

#[derive(clap::Args, Debug, Clone)]
pub struct CorosyncFile {
    /// corosync.conf (default: /etc/pve/corosync.conf if present, else /etc/corosync/corosync.conf).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// sbd configuration to check for watchdog-only (diskless) sbd. Default: /etc/sysconfig/sbd
    /// or /etc/default/sbd when the corosync.conf is the system one (under /etc).
    #[arg(long)]
    pub sbd_config: Option<PathBuf>,
    /// Pacemaker CIB XML (`cibadmin -Q > cib.xml`): fence_watchdog stonith, and the CIB's fencing
    /// findings (as `twonode pacemaker validate`).
    #[arg(long)]
    pub cib: Option<PathBuf>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct CorosyncEdit {
    #[command(flatten)]
    pub cc: CorosyncFile,
    /// Write PATH itself instead of staging PATH.new.
    #[arg(long)]
    pub in_place: bool,
    /// Print the diff only; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Where `quorum status` looks when given no file: the cluster.conf every command defaults to
/// (`clusterconf::store::default_path`), then corosync 2/3's corosync.conf (Proxmox VE 4+ first).
fn default_candidates() -> Vec<PathBuf> {
    vec![crate::clusterconf::store::default_path(), PathBuf::from("/etc/pve/corosync.conf"), PathBuf::from("/etc/corosync/corosync.conf")]
}

pub fn run(args: Args, g: &Global) -> anyhow::Result<i32> {
    match args.cmd {
        Cmd::Status { file, live, no_probe } => status(file, live, no_probe, g),
        Cmd::Validate { cc, staged } => super::quorum_corosync::validate(&cc, staged, g),
        Cmd::EnableArbiter { host, algorithm, tie_breaker, edit } => {
            super::quorum_corosync::enable_arbiter(&edit, crate::quorum::corosync_conf::ArbiterSpec { host, algorithm, tie_breaker }, g)
        }
        Cmd::DisableArbiter { edit } => super::quorum_corosync::disable_arbiter(&edit, g),
        Cmd::Diff { file } => super::quorum_corosync::diff(file, g),
        Cmd::Apply { cc, reload } => super::quorum_corosync::apply(&cc, reload.as_deref(), g),
    }
}

fn status(file: Option<PathBuf>, live: Option<PathBuf>, no_probe: bool, g: &Global) -> anyhow::Result<i32> {
    let explicit = file.is_some();
    let path = match file {
        Some(p) => p,
        None => {
            let candidates = default_candidates();
            candidates.iter().find(|p| p.exists()).cloned().ok_or_else(|| {
                let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
                Failure::new(2, format!("no cluster configuration found (looked at {}); pass --file PATH", looked.join(", ")))
            })?
        }
    };
    let cfg = load_config(&path)?;
    let live = match live {
        Some(p) => Some(load_live(&p)?),
        None if !explicit => ask_quorumtool(),
        None => None,
    };
    let view = cfg.compute(live.as_ref());
    let gate = gate_status(&path, no_probe);
    if g.json {
        let mut v = serde_json::to_value(&view)?;
        if let (Some(gs), Some(o)) = (&gate, v.as_object_mut()) {
            o.insert("gate".into(), serde_json::to_value(gs)?);
        }
        crate::util::print_json(&v)?;
    } else {
        print!("{}", view.render());
        if let Some(gs) = &gate {
            print!("{}", gs.render());
        }
    }
    if view.diagnostics.iter().any(|d| d.severity == Severity::Error) {
        return Ok(1);
    }
    Ok(if view.quorate { 0 } else { 3 })
}

/// Read cluster.conf (XML) or corosync.conf, by content.
pub fn load_config(path: &Path) -> anyhow::Result<QuorumConfig> {
    let bytes = std::fs::read(path).map_err(|e| Failure::new(2, format!("cannot read {}: {e}", path.display())))?;
    let shown = path.display().to_string();
    let text = String::from_utf8_lossy(&bytes);
    if text.trim_start().starts_with('<') {
        let (_doc, model) = crate::clusterconf::model::Model::parse(&bytes)
            .map_err(|e| Failure::new(2, format!("{shown}: not a readable cluster.conf: {e}")))?;
        Ok(QuorumConfig::from_cluster_conf(&model, &format!("{shown} (cluster.conf)")))
    } else {
        QuorumConfig::from_corosync_conf(&text, &shown).map_err(|e| Failure::new(2, e).into())
    }
}

fn load_live(p: &Path) -> anyhow::Result<Live> {
    let text = if p == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).context("reading membership from stdin")?;
        s
    } else {
        std::fs::read_to_string(p).map_err(|e| Failure::new(2, format!("cannot read {}: {e}", p.display())))?
    };
    let parsed = if text.contains("Nodes:") && text.contains("Membership state") {
        Live::from_cman_tool(&text)
    } else {
        Live::from_quorumtool(&text)
    };
    parsed.map_err(|e| Failure::new(2, format!("{}: {e}", p.display())).into())
}

/// Ask the local corosync (exit 0 quorate, 2 not quorate are both answers).
fn ask_quorumtool() -> Option<Live> {
    let out = std::process::Command::new("corosync-quorumtool").arg("-s").output().ok()?;
    if !matches!(out.status.code(), Some(0) | Some(2)) {
        tracing::info!("corosync-quorumtool -s failed ({}); using the configuration only", out.status);
        return None;
    }
    Live::from_quorumtool(&String::from_utf8_lossy(&out.stdout)).ok()
}

/// The arbiter gate of a cman cluster.conf, as `quorum status` shows it.
#[derive(Debug, serde::Serialize)]
pub struct GateStatus {
    /// The gate's `<fencedevice name>`.
    pub device: String,
    /// HOST:PORT of the arbiter.
    pub arbiter: String,
    /// "ffsplit" / "lowest": what the gate asks the arbiter for (GATE.md).
    pub algorithm: String,
    pub tie_breaker: String,
    /// Whether the gate is the first device of every fence method.
    pub complete: bool,
    /// Methods (NODE/METHOD) that start with the gate, and those that do not (with why).
    pub guarded: Vec<String>,
    pub unguarded: Vec<String>,
    /// null with --no-probe; else the probe through the gate's client.
    pub reachable: Option<bool>,
    pub probe: Option<crate::fence::gate::GateProbe>,
}

impl GateStatus {
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(s, "\nFence gate");
        let _ = writeln!(s, "----------");
        let state = match (&self.reachable, &self.probe) {
            (None, _) => "not probed (--no-probe)".to_string(),
            (Some(true), Some(p)) if p.depth == "init" => {
                format!("reachable: TLS + INIT accepted{}", p.rtt_ms.map(|r| format!(", round trip {r:.1} ms")).unwrap_or_default())
            }
            (Some(true), Some(p)) => format!(
                "reachable over TCP only ({}); TLS and INIT not checked",
                p.detail.as_deref().unwrap_or("the gate's certificate files are not here")
            ),
            (Some(false), Some(p)) => format!("UNREACHABLE: {} (no node can fence until it answers)", p.error.as_deref().unwrap_or("?")),
            _ => "?".into(),
        };
        let _ = writeln!(s, "Fence gate:       arbiter {} ({state}), tie_breaker {}", self.arbiter, self.tie_breaker);
        let _ = writeln!(s, "Device:           {} (agent {}), algorithm {}", self.device, crate::fence::gate::AGENT, self.algorithm);
        let _ = writeln!(s, "Guarded methods:  {}", if self.guarded.is_empty() { "-".into() } else { self.guarded.join(", ") });
        if !self.unguarded.is_empty() {
            let _ = writeln!(s, "NOT guarded:      {}", self.unguarded.join("; "));
            let _ = writeln!(
                s,
                "  fix: the gate must be the first device of every method (`twonode conf gate-fencing --arbiter HOST ...`): \
                 otherwise the partition without the arbiter's vote can fence"
            );
        }
        s
    }
}

/// The gate of the cluster.conf at `path` (None: not a cluster.conf, or no gate in it).
fn gate_status(path: &Path, no_probe: bool) -> Option<GateStatus> {
    let bytes = std::fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    if !text.trim_start().starts_with('<') {
        return None;
    }
    let shown = path.display().to_string();
    let layout = crate::fence::gate::gate_of_cluster_conf(&text, &shown)?;
    let g = layout.gates.first()?.clone();
    let (_, model) = crate::clusterconf::model::Model::parse(&bytes).ok()?;
    let cluster = model.cluster_name().unwrap_or("").to_string();
    let defaults = crate::quorum::arbiter::client::ClientConfig::new(g.host.clone(), g.port, cluster.clone(), 1);
    let probe = (!no_probe).then(|| {
        let me = nix::unistd::gethostname().ok().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
        let short = |n: &str| n.split('.').next().unwrap_or(n).to_ascii_lowercase();
        let ids: Vec<(String, u32)> = model
            .nodes
            .iter()
            .filter_map(|n| Some((n.name.clone()?, n.nodeid.as_deref()?.trim().parse().ok()?)))
            .collect();
        let id = ids.iter().find(|(n, _)| short(n) == short(&me)).or(ids.first()).map(|x| x.1).unwrap_or(1);
        crate::fence::gate::probe_gate(&g, &cluster, id, std::time::Duration::from_secs(5))
    });
    Some(GateStatus {
        device: g.device.clone(),
        arbiter: g.target(),
        algorithm: format!("{:?}", defaults.algorithm).to_lowercase(),
        tie_breaker: format!("{:?}", defaults.tie_breaker).to_lowercase(),
        complete: layout.complete(),
        guarded: layout.gated.iter().map(|(n, m)| format!("{n}/{m}")).collect(),
        unguarded: layout.ungated.iter().map(|(n, m, w)| format!("{n}/{m}: {w}")).collect(),
        reachable: probe.as_ref().map(|p| p.ok),
        probe,
    })
}
