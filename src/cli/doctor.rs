//! `twonode doctor`: the command-line surface of the cluster preflight (logic in `crate::doctor`).
use super::Global;
use crate::doctor::{self, GatherOptions};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  twonode doctor --node alice=root@10.0.0.1 --node bob=root@10.0.0.2
  twonode doctor --node alice=local --node bob=root@bob --arbiter arbiter.example:5403
  twonode doctor --json --node alice=local --node bob=root@bob --arbiter /run/twonode-arbiter/status.sock
  twonode doctor --node n1=root@n1 --node n2=root@n2 --corosync-conf /etc/corosync/corosync.conf

Checks: cluster.conf (or corosync.conf) valid and identical on both nodes, quorum arithmetic, every
fence device answering (status only, never a power action), fence race protection (arbiter gate,
quorum device, static delay, nothing), the arbiter: for a cman cluster with the arbiter gate a probe
with the gate's client and its certificates (expiry, CN), for a corosync quorum device each node's
`corosync-quorumtool -s` / `corosync-qdevice-tool -sv` (device vote counted, one partition, both
agree), on the arbiter machine its status socket; DRBD resources connected and UpToDate, DRBD peers
= cluster nodes, HA services vs DRBD resources, stale guest locks.
A progress line on stderr shows what is being contacted (only on a terminal, never with --json).

Exit codes: 0 no error; 1 errors found; 2 could not gather (a node unreachable).")]
pub struct Args {
    /// cluster.conf path, read on each node (default: /etc/pve/cluster.conf if present, else /etc/cluster/cluster.conf).
    #[arg(long, env = "TWONODE_CLUSTER_CONF", default_value_os_t = crate::clusterconf::store::default_path())]
    pub file: PathBuf,
    /// Another cluster.conf (or corosync.conf) path for one node: NAME=PATH (repeatable).
    /// A corosync.conf given to --file or --node-file is recognised by its content.
    #[arg(long, value_name = "NAME=PATH")]
    pub node_file: Vec<String>,
    /// The arbiter: HOST:PORT (checked with a TCP connect) or its status socket path (lease shown).
    /// Default: the local status socket when doctor runs on the arbiter machine.
    #[arg(long, value_name = "HOST:PORT|SOCKET")]
    pub arbiter: Option<String>,
    /// corosync.conf path on the nodes, for a corosync cluster (no cluster.conf).
    /// Default: /etc/pve/corosync.conf, then /etc/corosync/corosync.conf.
    #[arg(long, value_name = "PATH")]
    pub corosync_conf: Option<PathBuf>,
    /// Do not probe the arbiter through the gate's client, nor run the gate agent's monitor on the
    /// nodes (cman clusters with the arbiter gate).
    #[arg(long)]
    pub no_arbiter_probe: bool,
    /// The arbiter's config file, read when present (doctor on the arbiter machine): the expiry
    /// of its server and CA certificates is checked.
    #[arg(long, default_value = crate::quorum::arbiter::server::DEFAULT_CONFIG)]
    pub arbiter_config: PathBuf,
    /// The Proxmox configuration directory on the nodes (guest configs for the lock and HA checks).
    #[arg(long, default_value = "/etc/pve")]
    pub pve_dir: PathBuf,
    /// Do not contact the fence devices.
    #[arg(long)]
    pub no_fence: bool,
    /// The pacemaker CIB to check: a file (`cibadmin -Q > cib.xml`) or `live` (`cibadmin -Q` on
    /// the first node that answers). Default: `cibadmin -Q` here when it answers, else none.
    #[arg(long, value_name = "FILE|live")]
    pub cib: Option<String>,
    #[command(flatten)]
    pub nodes: super::drbd_recover::NodeArgs,
}

pub fn run(a: Args, g: &Global) -> Result<i32> {
    let mut overrides = BTreeMap::new();
    for s in &a.node_file {
        let (n, p) = s.split_once('=').with_context(|| format!("--node-file {s}: expected NAME=PATH"))?;
        overrides.insert(n.to_string(), PathBuf::from(p));
    }
    let mut hosts = match super::drbd_recover::make_hosts(&a.nodes, None) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("twonode: error: {e:#}");
            return Ok(2);
        }
    };
    // On the arbiter machine its status socket is read without being asked.
    let local_socket = crate::quorum::arbiter::server::DEFAULT_STATUS_SOCKET;
    let arbiter = a.arbiter.clone().or_else(|| Path::new(local_socket).exists().then(|| local_socket.to_string()));
    let opts = GatherOptions {
        conf_path: a.file.clone(),
        conf_overrides: overrides,
        pve_dir: a.pve_dir.clone(),
        fence: !a.no_fence,
        arbiter: arbiter.as_deref(),
        arbiter_timeout: Duration::from_secs(5),
        corosync_paths: match &a.corosync_conf {
            Some(p) => vec![p.clone()],
            None => doctor::DEFAULT_COROSYNC.iter().map(PathBuf::from).collect(),
        },
        probe_gate: !a.no_arbiter_probe,
        arbiter_config: Some(a.arbiter_config.clone()),
        cib: doctor::gather::pacemaker::CibRequest::from_arg(a.cib.as_deref()),
    };
    let bar = progress_bar(g.json);
    if !g.json && bar.is_hidden() {
        eprintln!("gathering from {} ...", hosts.iter().map(|h| h.name().to_string()).collect::<Vec<_>>().join(", "));
    }
    let facts = doctor::gather(&mut hosts, &opts, &bar);
    let findings = doctor::diagnose(&facts);
    let code = doctor::exit_code(&facts, &findings);
    if g.json {
        crate::util::print_json(&doctor::render::json(&findings, code))?;
    } else {
        print!("{}", doctor::render(&findings));
    }
    Ok(code)
}

/// The progress bar on stderr: hidden with --json or when stderr is not a terminal.
fn progress_bar(json: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if json || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(0);
    b.set_style(
        indicatif::ProgressStyle::with_template("doctor [{bar:24}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b.enable_steady_tick(Duration::from_millis(200));
    b
}
