//! Load generator for arbiters speaking the corosync-qnetd protocol (twonode's or the real
//! corosync-qnetd, TLS off): N simulated two-node clusters, each node one TCP connection doing what
//! corosync-qdevice does (PREINIT, INIT, SET_OPTION, config and membership node lists, echo
//! heartbeats, VOTE_INFO replies). Measures the time from the membership list to the vote (ACK),
//! then optionally splits every cluster 1:1 and measures the time until the winner holds the vote
//! for its new ring; samples the arbiter process's CPU and memory from /proc.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::wire::{self, Init, Message, NodeInfo, NodeList, NodeListType, RingId, TieBreaker, Vote};

/// Load parameters.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub target: SocketAddr,
    pub clusters: usize,
    pub heartbeat_ms: u32,
    /// Heartbeat phase after every cluster has its vote.
    pub hold: Duration,
    /// Split every cluster after the hold and time the new vote.
    pub split: bool,
    /// Arbiter process to sample (CPU, RSS).
    pub pid: Option<u32>,
    pub prefix: String,
    /// Give up on a vote after this long.
    pub vote_timeout: Duration,
    /// Clusters joining at the same time.
    pub concurrency: usize,
    /// Number of this generator's first connection among all generators of one run (one process
    /// holds only RLIMIT_NOFILE sockets; see [`merge`]): picks the source addresses.
    pub conn_offset: usize,
    /// Put every measured time in the report, for [`merge`].
    pub samples: bool,
}

/// What was measured.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct LoadReport {
    pub clusters: usize,
    pub connections_ok: usize,
    pub votes: usize,
    #[serde(deserialize_with = "nan_if_null")]
    pub vote_p50_ms: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub vote_p99_ms: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub vote_max_ms: f64,
    pub split_votes: usize,
    #[serde(deserialize_with = "nan_if_null")]
    pub split_p50_ms: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub split_p99_ms: f64,
    pub errors: usize,
    pub first_error: Option<String>,
    /// Of `errors`: connections the arbiter closed after this load generator itself left more
    /// than the dead-peer limit (1.5 × heartbeat) between two of its messages, i.e. the client
    /// really missed its heartbeat (the load generator was starved); the close is correct.
    pub closed_after_missed_heartbeat: usize,
    /// Of `errors`: connections the arbiter closed although every gap between our messages
    /// stayed within the dead-peer limit (an arbiter defect, or a network fault).
    pub closed_while_on_time: usize,
    /// Largest gap between two messages sent on one connection (ms): how late the load
    /// generator's own heartbeats ran.
    pub max_send_gap_ms: f64,
    /// Arbiter CPU use during the heartbeat hold, percent of one core.
    pub cpu_hold_pct: Option<f64>,
    /// Arbiter CPU seconds for the whole run.
    pub cpu_total_s: Option<f64>,
    /// Arbiter RSS after the hold: the process and its worker processes, summed (pages they
    /// share, such as the program's own, count once per process).
    pub rss_kb: Option<u64>,
    /// Load generator processes that made this report.
    #[serde(default)]
    pub processes: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vote_samples_ms: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub split_samples_ms: Vec<f64>,
}

/// A percentile of no samples is NaN, which JSON writes as null.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(<Option<f64> as serde::Deserialize>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// One report of several load generators run side by side (each made with `samples`): the
/// percentiles over all their samples, the counts summed, CPU and memory from the one that
/// sampled the arbiter.
pub fn merge(parts: Vec<LoadReport>) -> LoadReport {
    let mut r = LoadReport::default();
    for p in parts {
        r.clusters += p.clusters;
        r.connections_ok += p.connections_ok;
        r.votes += p.votes;
        r.split_votes += p.split_votes;
        r.errors += p.errors;
        r.first_error = r.first_error.or(p.first_error);
        r.closed_after_missed_heartbeat += p.closed_after_missed_heartbeat;
        r.closed_while_on_time += p.closed_while_on_time;
        r.max_send_gap_ms = r.max_send_gap_ms.max(p.max_send_gap_ms);
        r.cpu_hold_pct = r.cpu_hold_pct.or(p.cpu_hold_pct);
        r.cpu_total_s = r.cpu_total_s.or(p.cpu_total_s);
        r.rss_kb = r.rss_kb.or(p.rss_kb);
        r.processes += p.processes.max(1);
        r.vote_samples_ms.extend(p.vote_samples_ms);
        r.split_samples_ms.extend(p.split_samples_ms);
    }
    let mut v = std::mem::take(&mut r.vote_samples_ms);
    let mut s = std::mem::take(&mut r.split_samples_ms);
    (r.vote_p50_ms, r.vote_p99_ms, r.vote_max_ms) = (pct(&mut v, 0.5), pct(&mut v, 0.99), pct(&mut v, 1.0));
    (r.split_p50_ms, r.split_p99_ms) = (pct(&mut s, 0.5), pct(&mut s, 0.99));
    r
}

struct Node {
    rd: tokio::net::tcp::OwnedReadHalf,
    wr: tokio::net::tcp::OwnedWriteHalf,
    buf: Vec<u8>,
    seq: u32,
    last_sent: Option<Instant>,
    max_gap: Duration,
    /// The arbiter's dead-peer limit for this connection (1.5 × heartbeat).
    dpd_limit: Duration,
}

/// The arbiter closed a connection; with what we know of our own timing.
#[derive(Debug)]
pub struct ClosedByArbiter {
    /// Time since our last message, and the largest gap between two of our messages (ms).
    pub since_last_ms: u64,
    pub max_gap_ms: u64,
    pub dpd_limit_ms: u64,
}

impl ClosedByArbiter {
    /// Whether we ourselves stayed silent longer than the arbiter's dead-peer limit.
    pub fn missed_heartbeat(&self) -> bool {
        self.since_last_ms.max(self.max_gap_ms) > self.dpd_limit_ms
    }
}

impl std::fmt::Display for ClosedByArbiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.missed_heartbeat() {
            write!(
                f,
                "arbiter closed the connection after this client missed its heartbeat: {} ms without a message from us \
                 (dead-peer limit {} ms; the load generator was starved, the close is correct)",
                self.since_last_ms.max(self.max_gap_ms),
                self.dpd_limit_ms
            )
        } else {
            write!(
                f,
                "arbiter closed the connection although our heartbeats were on time (largest gap {} ms, last message {} ms ago, \
                 dead-peer limit {} ms)",
                self.max_gap_ms, self.since_last_ms, self.dpd_limit_ms
            )
        }
    }
}

impl std::error::Error for ClosedByArbiter {}

impl Node {
    async fn send(&mut self, m: Message) -> anyhow::Result<()> {
        let b = m.encode()?;
        let now = Instant::now();
        if let Some(l) = self.last_sent {
            self.max_gap = self.max_gap.max(now - l);
        }
        self.last_sent = Some(now);
        self.wr.write_all(&b).await?;
        Ok(())
    }
    fn next_seq(&mut self) -> u32 {
        self.seq += 1;
        self.seq
    }
    async fn recv(&mut self) -> anyhow::Result<Message> {
        loop {
            if let Some(n) = wire::frame_len(&self.buf)? {
                let f: Vec<u8> = self.buf.drain(..n).collect();
                return Ok(Message::decode(&f)?);
            }
            let n = self.rd.read_buf(&mut self.buf).await?;
            if n == 0 {
                return Err(ClosedByArbiter {
                    since_last_ms: self.last_sent.map_or(0, |l| l.elapsed().as_millis() as u64),
                    max_gap_ms: self.max_gap.as_millis() as u64,
                    dpd_limit_ms: self.dpd_limit.as_millis() as u64,
                }
                .into());
            }
        }
    }
    /// Wait for the vote for `ring`; answers VOTE_INFO, keeps sending echo requests every
    /// heartbeat (as corosync-qdevice does) and skips echo replies.
    async fn wait_vote(&mut self, ring: RingId, hb: Duration) -> anyhow::Result<Vote> {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + hb, hb);
        loop {
            let m = tokio::select! {
                m = self.recv() => m?,
                _ = tick.tick() => {
                    let s = self.next_seq();
                    self.send(Message::EchoRequest { seq: Some(s) }).await?;
                    continue;
                }
            };
            match m {
                Message::NodeListReply { vote: Some(v), ring_id, .. } if ring_id.is_none_or(|r| r == ring) => {
                    if matches!(v, Vote::Ack | Vote::Nack) {
                        return Ok(v);
                    }
                }
                Message::VoteInfo { seq, vote, ring_id } => {
                    self.send(Message::VoteInfoReply { seq }).await?;
                    if let Some(v @ (Vote::Ack | Vote::Nack)) = vote {
                        if ring_id.is_none_or(|r| r == ring) {
                            return Ok(v);
                        }
                    }
                }
                Message::ServerError { error, .. } => bail!("server error {error:?}"),
                _ => {}
            }
        }
    }
}

/// Connections per loopback source address: below the 28,232 ephemeral ports Linux gives one
/// (source address, destination) pair by default (32768-60999).
const CONNECTIONS_PER_SOURCE: usize = 20_000;

/// The local address of connection number `k` towards a loopback target: 127.0.0.1 for the first
/// 20,000, then 127.0.0.2, 127.0.0.3, ... (all of 127.0.0.0/8 is this machine), so that 100,000
/// connections (50,000 clusters) do not run out of ephemeral ports. None: let the kernel choose.
fn source_for(target: std::net::SocketAddr, k: usize) -> Option<std::net::SocketAddr> {
    match target {
        std::net::SocketAddr::V4(t) if t.ip().is_loopback() => {
            let n = (k / CONNECTIONS_PER_SOURCE) as u32;
            Some(std::net::SocketAddr::from((std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(127, 0, 0, 1)) + n), 0)))
        }
        _ => None,
    }
}

async fn connect(spec: &LoadSpec, conn_no: usize, cluster: &str, node_id: u32, ring: RingId) -> anyhow::Result<Node> {
    let s = match source_for(spec.target, conn_no) {
        None => TcpStream::connect(spec.target).await.context("connect")?,
        Some(src) => {
            let sock = tokio::net::TcpSocket::new_v4().context("socket")?;
            // the source port is chosen at connect, unique per (source, destination) pair: without
            // this, bind takes a port from the one ephemeral range for good, and 100,000
            // connections run out of ports whatever the source address
            nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::IpBindAddressNoPort, &true).context("IP_BIND_ADDRESS_NO_PORT")?;
            sock.bind(src).with_context(|| format!("bind {src}"))?;
            sock.connect(spec.target).await.with_context(|| format!("connect from {src}"))?
        }
    };
    let _ = s.set_nodelay(true);
    let (rd, wr) = s.into_split();
    let dpd_limit = Duration::from_millis(spec.heartbeat_ms as u64 * 3 / 2);
    let mut n = Node { rd, wr, buf: Vec::with_capacity(1024), seq: 0, last_sent: None, max_gap: Duration::ZERO, dpd_limit };
    let seq = n.next_seq();
    n.send(Message::Preinit { seq: Some(seq), cluster_name: Some(cluster.into()) }).await?;
    match n.recv().await? {
        Message::PreinitReply { tls: Some(wire::TlsSupported::Required), .. } => {
            bail!("the arbiter requires TLS; run it with TLS off for the load test")
        }
        Message::PreinitReply { .. } => {}
        other => bail!("unexpected reply to PREINIT: {other:?}"),
    }
    let seq = n.next_seq();
    n.send(Message::Init(Init {
        seq: Some(seq),
        supported_messages: Some(wire::all_msg_types()),
        supported_options: Some(wire::all_opt_types()),
        node_id: Some(node_id),
        decision_algorithm: Some(1),
        heartbeat_interval: Some(spec.heartbeat_ms),
        tie_breaker: Some(TieBreaker::Lowest),
        ring_id: Some(ring),
    }))
    .await?;
    match n.recv().await? {
        Message::InitReply(r) if r.error.is_none_or(|e| e == wire::ReplyErrorCode::NoError) => {}
        other => bail!("INIT refused: {other:?}"),
    }
    let seq = n.next_seq();
    n.send(Message::SetOption { seq: Some(seq), heartbeat_interval: Some(spec.heartbeat_ms), keep_active_partition: Some(true) })
        .await?;
    match n.recv().await? {
        Message::SetOptionReply { .. } => {}
        other => bail!("SET_OPTION refused: {other:?}"),
    }
    let seq = n.next_seq();
    n.send(Message::NodeList(NodeList {
        seq: Some(seq),
        list_type: Some(NodeListType::InitialConfig),
        nodes: vec![node(1), node(2)],
        ..NodeList::default()
    }))
    .await?;
    Ok(n)
}

fn node(id: u32) -> NodeInfo {
    NodeInfo { node_id: id, data_center_id: 0, node_state: None }
}

async fn membership(n: &mut Node, ring: RingId, members: &[u32]) -> anyhow::Result<()> {
    let seq = n.next_seq();
    n.send(Message::NodeList(NodeList {
        seq: Some(seq),
        list_type: Some(NodeListType::Membership),
        ring_id: Some(ring),
        nodes: members.iter().map(|m| node(*m)).collect(),
        heuristics: None,
        ..NodeList::default()
    }))
    .await
}

#[derive(Default)]
struct Shared {
    vote_ms: Vec<f64>,
    split_ms: Vec<f64>,
    ok: usize,
    errors: usize,
    first_error: Option<String>,
    missed: usize,
    on_time: usize,
    max_gap: Duration,
}

fn err(sh: &mut Shared, e: anyhow::Error) {
    sh.errors += 1;
    if let Some(c) = e.downcast_ref::<ClosedByArbiter>() {
        if c.missed_heartbeat() {
            sh.missed += 1;
        } else {
            sh.on_time += 1;
        }
    }
    if sh.first_error.is_none() {
        sh.first_error = Some(format!("{e:#}"));
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

/// CPU ticks (utime + stime) and RSS (kB) of a process and its descendants (an arbiter's
/// worker processes).
fn proc_sample(pid: u32) -> Option<(u64, u64)> {
    let (mut ticks, mut rss) = one_proc_sample(pid)?;
    let mut todo = children_of(pid);
    while let Some(c) = todo.pop() {
        if let Some((t, r)) = one_proc_sample(c) {
            ticks += t;
            rss += r;
        }
        todo.extend(children_of(c));
    }
    Some((ticks, rss))
}

fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|l| l.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<u32>>())
        .collect()
}

fn one_proc_sample(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some((ticks, rss))
}

fn clk_tck() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().map(|v| v as f64).unwrap_or(100.0)
}

/// Run the load and report.
pub async fn run(spec: LoadSpec) -> anyhow::Result<LoadReport> {
    let shared = Arc::new(Mutex::new(Shared::default()));
    let start_sample = spec.pid.and_then(proc_sample);
    let (split_tx, split_rx) = tokio::sync::watch::channel(false);
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let done_note = Arc::new(tokio::sync::Notify::new());
    let hold_started = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // clusters join a few at a time, like real ones (and within a listen backlog)
    let gate = Arc::new(tokio::sync::Semaphore::new(spec.concurrency.max(1)));
    let mut tasks = Vec::new();
    for k in 0..spec.clusters {
        let spec = spec.clone();
        let shared = shared.clone();
        let mut split_rx = split_rx.clone();
        let gate = gate.clone();
        let done = done.clone();
        let done_note = done_note.clone();
        let hold_started = hold_started.clone();
        let mark_done = move || {
            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            done_note.notify_one();
        };
        tasks.push(tokio::spawn(async move {
            let name = format!("{}{k}", spec.prefix);
            let ring = RingId { node_id: 1, seq: 4 };
            let hb = Duration::from_millis(spec.heartbeat_ms as u64);
            let permit = gate.acquire_owned().await;
            // the whole join under the timeout: an arbiter out of descriptors leaves connections
            // in its backlog unanswered
            let r = tokio::time::timeout(spec.vote_timeout, async {
                let mut a = connect(&spec, spec.conn_offset + 2 * k, &name, 1, ring).await?;
                let mut b = connect(&spec, spec.conn_offset + 2 * k + 1, &name, 2, ring).await?;
                let t = Instant::now();
                membership(&mut a, ring, &[1, 2]).await?;
                membership(&mut b, ring, &[1, 2]).await?;
                let (va, vb) = tokio::time::timeout(spec.vote_timeout, async {
                    tokio::try_join!(a.wait_vote(ring, hb), b.wait_vote(ring, hb))
                })
                .await
                .context("no vote within the timeout")??;
                if va != Vote::Ack || vb != Vote::Ack {
                    bail!("cluster {name}: votes {va:?}/{vb:?} for a full membership");
                }
                anyhow::Ok((a, b, t.elapsed()))
            })
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("no vote within the timeout (connect and join included)")));
            drop(permit);
            let r = match r {
                // the hold measures the arbiter with every cluster on it: a cluster that got its
                // vote only after the hold began did not count there, and the arbiter did not
                // take it in time
                Ok(_) if hold_started.load(std::sync::atomic::Ordering::SeqCst) => {
                    Err(anyhow::anyhow!("cluster {name} joined only after the heartbeat hold began (the arbiter was too slow to take every cluster)"))
                }
                r => r,
            };
            let (mut a, mut b) = match r {
                Ok((a, b, d)) => {
                    let mut sh = shared.lock().await;
                    sh.vote_ms.push(d.as_secs_f64() * 1000.0);
                    sh.ok += 2;
                    (a, b)
                }
                Err(e) => {
                    err(&mut *shared.lock().await, e);
                    mark_done();
                    return;
                }
            };
            mark_done();
            // heartbeats until the split (or the end)
            let mut tick = tokio::time::interval(hb);
            let res: anyhow::Result<()> = async {
                loop {
                    tokio::select! {
                        r = split_rx.changed() => { if r.is_err() || *split_rx.borrow() { break } }
                        _ = tick.tick() => {
                            let s = a.next_seq();
                            a.send(Message::EchoRequest { seq: Some(s) }).await?;
                            let s = b.next_seq();
                            b.send(Message::EchoRequest { seq: Some(s) }).await?;
                        }
                        m = a.recv() => { if let Message::VoteInfo { seq, .. } = m? { a.send(Message::VoteInfoReply { seq }).await?; } }
                        m = b.recv() => { if let Message::VoteInfo { seq, .. } = m? { b.send(Message::VoteInfoReply { seq }).await?; } }
                    }
                }
                if !spec.split {
                    return Ok(());
                }
                let ra = RingId { node_id: 1, seq: 8 };
                let rb = RingId { node_id: 2, seq: 8 };
                let t = Instant::now();
                membership(&mut a, ra, &[1]).await?;
                membership(&mut b, rb, &[2]).await?;
                let (va, vb) = tokio::time::timeout(spec.vote_timeout, async {
                    tokio::try_join!(a.wait_vote(ra, hb), b.wait_vote(rb, hb))
                })
                .await
                .context("no split decision within the timeout")??;
                let d = t.elapsed();
                if va == Vote::Ack && vb == Vote::Ack {
                    bail!("cluster {name}: BOTH halves got ACK after the split");
                }
                if va == Vote::Ack || vb == Vote::Ack {
                    shared.lock().await.split_ms.push(d.as_secs_f64() * 1000.0);
                }
                // keep the winner's lease fed briefly so the arbiter is not left mid-protocol
                Ok(())
            }
            .await;
            let mut sh = shared.lock().await;
            sh.max_gap = sh.max_gap.max(a.max_gap).max(b.max_gap);
            if let Err(e) = res {
                err(&mut sh, e);
            }
        }));
    }
    let deadline = Instant::now() + spec.vote_timeout + Duration::from_secs(30);
    while done.load(std::sync::atomic::Ordering::SeqCst) < spec.clusters && Instant::now() < deadline {
        let _ = tokio::time::timeout(Duration::from_millis(200), done_note.notified()).await;
    }
    hold_started.store(true, std::sync::atomic::Ordering::SeqCst);
    let hold_sample = spec.pid.and_then(proc_sample);
    let hold_start = Instant::now();
    tokio::time::sleep(spec.hold).await;
    let hold_end = spec.pid.and_then(proc_sample);
    let hold_secs = hold_start.elapsed().as_secs_f64();
    let _ = split_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let end_sample = spec.pid.and_then(proc_sample);
    let mut sh = shared.lock().await;
    let mut votes = std::mem::take(&mut sh.vote_ms);
    let mut splits = std::mem::take(&mut sh.split_ms);
    let tck = clk_tck();
    Ok(LoadReport {
        clusters: spec.clusters,
        connections_ok: sh.ok,
        votes: votes.len(),
        vote_p50_ms: pct(&mut votes, 0.5),
        vote_p99_ms: pct(&mut votes, 0.99),
        vote_max_ms: pct(&mut votes, 1.0),
        split_votes: splits.len(),
        split_p50_ms: pct(&mut splits, 0.5),
        split_p99_ms: pct(&mut splits, 0.99),
        errors: sh.errors,
        first_error: sh.first_error.clone(),
        closed_after_missed_heartbeat: sh.missed,
        closed_while_on_time: sh.on_time,
        max_send_gap_ms: sh.max_gap.as_secs_f64() * 1000.0,
        cpu_hold_pct: match (hold_sample, hold_end) {
            (Some(a), Some(b)) if hold_secs > 0.0 => Some((b.0 - a.0) as f64 / tck / hold_secs * 100.0),
            _ => None,
        },
        cpu_total_s: match (start_sample, end_sample) {
            (Some(a), Some(b)) => Some((b.0 - a.0) as f64 / tck),
            _ => None,
        },
        rss_kb: hold_end.map(|s| s.1),
        processes: 1,
        vote_samples_ms: if spec.samples { votes } else { Vec::new() },
        split_samples_ms: if spec.samples { splits } else { Vec::new() },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_of_several_generators_merge_over_all_samples() {
        let part = |votes: Vec<f64>, splits: Vec<f64>, rss: Option<u64>| {
            let r = LoadReport {
                clusters: votes.len(),
                votes: votes.len(),
                vote_p50_ms: f64::NAN,
                split_p50_ms: f64::NAN,
                rss_kb: rss,
                processes: 1,
                vote_samples_ms: votes,
                split_samples_ms: splits,
                ..LoadReport::default()
            };
            // through JSON, as from a child process (no samples: null percentiles)
            serde_json::from_str::<LoadReport>(&serde_json::to_string(&r).unwrap()).unwrap()
        };
        let m = merge(vec![part(vec![1.0, 2.0, 3.0], vec![], Some(900)), part(vec![100.0], vec![5.0], None)]);
        assert_eq!((m.clusters, m.votes, m.processes, m.rss_kb), (4, 4, 2, Some(900)));
        assert_eq!(m.vote_max_ms, 100.0);
        assert_eq!(m.vote_p50_ms, 3.0);
        assert_eq!(m.split_p99_ms, 5.0);
        assert!(m.vote_samples_ms.is_empty(), "the merged report carries percentiles, not samples");
    }

    #[test]
    fn sources_spread_over_loopback_addresses() {
        let t: std::net::SocketAddr = "127.0.0.1:5403".parse().unwrap();
        assert_eq!(source_for(t, 0), Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(source_for(t, 19_999), Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(source_for(t, 20_000), Some("127.0.0.2:0".parse().unwrap()));
        assert_eq!(source_for(t, 99_999), Some("127.0.0.5:0".parse().unwrap()));
        assert_eq!(source_for("10.0.0.1:5403".parse().unwrap(), 50_000), None);
    }
}
