//! `twonode arbiter serve | status | certs`: the arbiter daemon's command-line surface.
use std::path::PathBuf;

use anyhow::Context;

use super::Global;
use crate::quorum::arbiter::{certs, server};

/// Run the arbiter daemon (a corosync-qnetd replacement) in the foreground.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Config file (TOML, every key optional; defaults shown):
  listen = \"::\"            port = 5403        max_clients = 0
  workers = 0                # I/O worker processes: each holds up to RLIMIT_NOFILE clients
  status_socket = \"/run/twonode-arbiter/status.sock\"
  lease_margin_ms = 1000     # extra margin on every vote lease
  log_format = \"text\"       # text | json (one JSON object per line, for log shippers)
  [tls]
  mode = \"on\"              # on | required | off   (corosync-qnetd -s on|req|off)
  client_cert_required = true
  cert = \"/etc/twonode/arbiter/server.crt\"   key = \"/etc/twonode/arbiter/server.key\"
  ca = \"/etc/twonode/arbiter/ca.crt\"
  [arbiter]                # core settings: clock_drift, dpd_coefficient, heartbeat_min_ms, ...
Signals: SIGTERM/SIGINT stop the daemon cleanly (clients are closed; a restarted arbiter grants
no vote until every lease a previous instance may have granted has expired).
Logs: on stderr, level info by default (TWONODE_LOG=warn|info|debug, or -vv for debug); every
decision is one line with key=value fields (event=ack|nack|hold_released|waiting|close|join...,
cluster, node, conn, ring, reason), or one JSON object per line with --log-format json.")]
pub struct ServeArgs {
    /// Config file; a missing default file means defaults.
    #[arg(long, short = 'c', default_value = server::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Override `listen` (address).
    #[arg(long)]
    pub listen: Option<String>,
    /// Override `port`.
    #[arg(long, short = 'p')]
    pub port: Option<u16>,
    /// Override `tls.mode` (on | required | off).
    #[arg(long)]
    pub tls: Option<String>,
    /// Override `status_socket`.
    #[arg(long)]
    pub status_socket: Option<PathBuf>,
    /// Override `log_format`: text, or json (one JSON object per line: timestamp, level, message,
    /// event, cluster, node, conn, ring, reason).
    #[arg(long, value_enum)]
    pub log_format: Option<server::LogFormat>,
    /// Override `workers`: serve the sockets in N worker processes (for more clients than one
    /// process's descriptor limit allows: two per cluster).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Check the configuration (and load the TLS files), print it, and exit.
    #[arg(long)]
    pub check: bool,
}

/// Show clusters, nodes, votes and lease ages of a running arbiter (like corosync-qnetd-tool -lv).
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The arbiter's status socket.
    #[arg(long, short = 's', default_value = server::DEFAULT_STATUS_SOCKET)]
    pub socket: PathBuf,
}

/// Certificates corosync-qdevice accepts (replaces corosync-qnetd-certutil on the arbiter).
#[derive(clap::Subcommand, Debug)]
#[command(after_help = "\
Walk-through (cluster name = totem.cluster_name, here \"mycluster\"):
  arbiter# twonode arbiter certs init --dir /etc/twonode/arbiter
  arbiter# scp /etc/twonode/arbiter/qnetd-cacert.crt node1:/tmp/ ; same for node2
  node1#   corosync-qdevice-net-certutil -i -c /tmp/qnetd-cacert.crt
  node1#   corosync-qdevice-net-certutil -r -n mycluster
  node1#   scp /etc/corosync/qdevice/net/nssdb/qdevice-net-node.crq arbiter:/tmp/
  arbiter# twonode arbiter certs sign --dir /etc/twonode/arbiter --csr /tmp/qdevice-net-node.crq \\
             --cluster mycluster --out /tmp/cluster-mycluster.crt
  node1#   corosync-qdevice-net-certutil -M -c /tmp/cluster-mycluster.crt   (writes qdevice-net-node.p12)
  node2#   corosync-qdevice-net-certutil -i -c /tmp/qnetd-cacert.crt
  node2#   corosync-qdevice-net-certutil -m -c /tmp/qdevice-net-node.p12   (copied from node1)
Replacing an existing corosync-qnetd: `twonode arbiter certs import-nssdb` exports its CA and
server key, so the nodes keep their certificates. Restart corosync-qdevice after new certificates.")]
pub enum CertsCmd {
    /// Create a CA and the server certificate (CN \"Qnetd Server\") as PEM files in DIR.
    Init {
        #[arg(long, default_value = "/etc/twonode/arbiter")]
        dir: PathBuf,
    },
    /// Sign a node's request (qdevice-net-node.crq) for CLUSTER with the CA in DIR.
    Sign {
        #[arg(long, default_value = "/etc/twonode/arbiter")]
        dir: PathBuf,
        #[arg(long)]
        csr: PathBuf,
        #[arg(long)]
        cluster: String,
        /// Where to write the signed certificate (default: cluster-CLUSTER.crt in the current directory).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Export an existing corosync-qnetd NSS database's CA and server key to PEM files in DIR.
    ImportNssdb {
        #[arg(long, default_value = "/etc/corosync/qnetd/nssdb")]
        nssdb: PathBuf,
        #[arg(long, default_value = "/etc/twonode/arbiter")]
        dir: PathBuf,
    },
}

pub fn serve(a: ServeArgs, g: &Global) -> anyhow::Result<i32> {
    let mut cfg = if a.config.exists() || a.config.as_os_str() != server::DEFAULT_CONFIG {
        server::ServerConfig::load(&a.config)?
    } else {
        server::ServerConfig::default()
    };
    if let Some(l) = a.listen {
        cfg.listen = l;
    }
    if let Some(p) = a.port {
        cfg.port = p;
    }
    if let Some(t) = a.tls {
        cfg.tls.mode = t;
    }
    if let Some(s) = a.status_socket {
        cfg.status_socket = s;
    }
    if let Some(f) = a.log_format {
        cfg.log_format = f;
    }
    if let Some(w) = a.workers {
        cfg.workers = w;
    }
    // the daemon logs its decisions at info by default (other commands: warnings only)
    let level = match g.verbose {
        0 | 1 => "info",
        2 => "debug",
        _ => "trace",
    };
    server::init_logging(cfg.log_format, level);
    cfg.finish()?;
    if a.check {
        if cfg.arbiter.tls != crate::quorum::arbiter::wire::TlsSupported::Unsupported {
            server::tls_config(&cfg.tls).context("checking the [tls] files")?;
        }
        cfg.listen_addr()?;
        if g.json {
            println!("{}", serde_json::to_string_pretty(&cfg)?);
        } else {
            print!("{}", toml::to_string(&cfg).context("rendering the config")?);
        }
        return Ok(0);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(server::serve(cfg, None, None))?;
    Ok(0)
}

pub fn status(a: StatusArgs, g: &Global) -> anyhow::Result<i32> {
    let v = server::query_status(&a.socket)?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", server::render_status(&v));
    }
    Ok(0)
}

pub fn certs(c: CertsCmd, g: &Global) -> anyhow::Result<i32> {
    let out = match c {
        CertsCmd::Init { dir } => {
            let r = certs::init(&certs::CertDir::new(&dir))?;
            if !g.json {
                println!("CA:                 {} (key {}, keep it private)", r.ca_cert.display(), r.ca_key.display());
                println!("server certificate: {} (key {})", r.server_cert.display(), r.server_key.display());
                println!("for the nodes:      {}  ->  corosync-qdevice-net-certutil -i -c qnetd-cacert.crt", r.qnetd_cacert.display());
            }
            serde_json::to_value(r)?
        }
        CertsCmd::Sign { dir, csr, cluster, out } => {
            let out = out.unwrap_or_else(|| PathBuf::from(format!("cluster-{cluster}.crt")));
            let r = certs::sign(&certs::CertDir::new(&dir), &csr, &cluster, &out)?;
            if !g.json {
                println!("signed certificate for cluster {:?}: {}", r.cluster, r.certificate.display());
                println!("next, on the node that made the request: corosync-qdevice-net-certutil -M -c {}", r.certificate.display());
            }
            serde_json::to_value(r)?
        }
        CertsCmd::ImportNssdb { nssdb, dir } => {
            let r = certs::import_nssdb(&nssdb, &certs::CertDir::new(&dir))?;
            if !g.json {
                println!("CA {} / server certificate {} / key {}", r.ca_cert.display(), r.server_cert.display(), r.server_key.display());
            }
            serde_json::to_value(r)?
        }
    };
    if g.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(0)
}

/// Load generator: N simulated two-node clusters against an arbiter (TLS off), for bench/arbiter-bench.
#[derive(clap::Args, Debug)]
pub struct LoadgenArgs {
    /// Arbiter address (host:port).
    #[arg(long)]
    pub target: std::net::SocketAddr,
    #[arg(long, default_value_t = 1000)]
    pub clusters: usize,
    #[arg(long, default_value_t = 8000)]
    pub heartbeat_ms: u32,
    /// Seconds of heartbeats after every cluster got its vote.
    #[arg(long, default_value_t = 10)]
    pub hold_s: u64,
    /// Split every cluster 1:1 after the hold and time the decision.
    #[arg(long)]
    pub split: bool,
    /// Arbiter process id to sample CPU and memory from /proc.
    #[arg(long)]
    pub pid: Option<u32>,
    #[arg(long, default_value = "lg")]
    pub prefix: String,
    #[arg(long, default_value_t = 60)]
    pub vote_timeout_s: u64,
    /// Clusters joining at the same time.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Spread the clusters over N load generator processes (one process holds only
    /// RLIMIT_NOFILE sockets, two per cluster); their reports are merged.
    #[arg(long, default_value_t = 1)]
    pub processes: usize,
    /// (for --processes) number of this generator's first connection among all.
    #[arg(long, default_value_t = 0, hide = true)]
    pub conn_offset: usize,
    /// (for --processes) put every measured time in the JSON report.
    #[arg(long, hide = true)]
    pub samples: bool,
}

/// `loadgen --processes N`: N load generators side by side, each with its share of the
/// clusters and its own source addresses; the merged report.
fn loadgen_processes(a: &LoadgenArgs) -> anyhow::Result<crate::quorum::arbiter::loadgen::LoadReport> {
    let exe = std::env::current_exe().context("finding this program")?;
    let n = a.processes;
    let mut children = Vec::new();
    let mut first = 0;
    for i in 0..n {
        let clusters = a.clusters / n + usize::from(i < a.clusters % n);
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["--json", "arbiter", "loadgen", "--samples"])
            .arg(format!("--target={}", a.target))
            .arg(format!("--clusters={clusters}"))
            .arg(format!("--heartbeat-ms={}", a.heartbeat_ms))
            .arg(format!("--hold-s={}", a.hold_s))
            .arg(format!("--prefix={}{i}-", a.prefix))
            .arg(format!("--vote-timeout-s={}", a.vote_timeout_s))
            .arg(format!("--concurrency={}", a.concurrency))
            .arg(format!("--conn-offset={}", a.conn_offset + 2 * first))
            .stdout(std::process::Stdio::piped());
        if a.split {
            cmd.arg("--split");
        }
        // one of them samples the arbiter (and its workers) during its hold
        if let (0, Some(pid)) = (i, a.pid) {
            cmd.arg(format!("--pid={pid}"));
        }
        children.push(cmd.spawn().context("starting a load generator")?);
        first += clusters;
    }
    let mut parts = Vec::new();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().unwrap_or_default();
        let head: String = line.chars().take(300).collect();
        parts.push(serde_json::from_str(line).with_context(|| format!("load generator {i} reported {head:?} ({})", out.status))?);
    }
    Ok(crate::quorum::arbiter::loadgen::merge(parts))
}

pub fn loadgen(a: LoadgenArgs, g: &Global) -> anyhow::Result<i32> {
    use crate::quorum::arbiter::loadgen;
    if a.processes > 1 {
        let r = loadgen_processes(&a)?;
        return print_load_report(&r, g);
    }
    let spec = loadgen::LoadSpec {
        target: a.target,
        clusters: a.clusters,
        heartbeat_ms: a.heartbeat_ms,
        hold: std::time::Duration::from_secs(a.hold_s),
        split: a.split,
        pid: a.pid,
        prefix: a.prefix,
        vote_timeout: std::time::Duration::from_secs(a.vote_timeout_s),
        concurrency: a.concurrency,
        conn_offset: a.conn_offset,
        samples: a.samples,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let r = rt.block_on(loadgen::run(spec))?;
    print_load_report(&r, g)
}

fn print_load_report(r: &crate::quorum::arbiter::loadgen::LoadReport, g: &Global) -> anyhow::Result<i32> {
    if g.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "clusters: {} connections_ok: {} votes: {} vote_p50_ms: {:.1} vote_p99_ms: {:.1} vote_max_ms: {:.1} \
             split_votes: {} split_p50_ms: {:.1} split_p99_ms: {:.1} errors: {} (missed_heartbeat: {} on_time: {}) max_send_gap_ms: {:.0} cpu_hold_pct: {} cpu_total_s: {} rss_kb: {}",
            r.clusters, r.connections_ok, r.votes, r.vote_p50_ms, r.vote_p99_ms, r.vote_max_ms, r.split_votes,
            r.split_p50_ms, r.split_p99_ms, r.errors, r.closed_after_missed_heartbeat, r.closed_while_on_time, r.max_send_gap_ms,
            r.cpu_hold_pct.map(|v| format!("{v:.1}")).unwrap_or("-".into()),
            r.cpu_total_s.map(|v| format!("{v:.2}")).unwrap_or("-".into()),
            r.rss_kb.map(|v| v.to_string()).unwrap_or("-".into()),
        );
        if let Some(e) = &r.first_error {
            println!("first error: {e}");
        }
    }
    Ok(if r.errors > 0 { 1 } else { 0 })
}

/// `twonode arbiter worker`: one I/O worker process of `arbiter serve --workers N` (started by
/// it, never by hand).
pub fn worker() -> anyhow::Result<i32> {
    crate::quorum::arbiter::workers::run_worker()?;
    Ok(0)
}
