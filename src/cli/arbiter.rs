//! `twonode arbiter`: command-line surface; logic lives in the library.
use super::arbiter_server;
use super::Global;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Run the arbiter daemon (speaks the corosync-qnetd protocol on TCP 5403).
    Serve(arbiter_server::ServeArgs),
    /// Clusters, nodes, votes and lease ages of a running arbiter.
    Status(arbiter_server::StatusArgs),
    /// Certificates for corosync-qdevice (init a CA, sign node requests, import a qnetd db).
    #[command(subcommand)]
    Certs(arbiter_server::CertsCmd),
    /// Run random fault schedules (partitions, delays, crashes, arbiter restarts, clock drift)
    /// of simulated two-node clusters with corosync-qdevice clients through the arbiter's core,
    /// checking at every event that at most one partition is quorate.
    ///
    /// Last line (script contract): `violations: V schedules: N failover_p50_ms: X
    /// failover_p99_ms: Y`. Exit 1 if V > 0.
    #[command(after_help = "Examples:\n  twonode arbiter simulate --schedules 20000 --seed 7\n  twonode arbiter simulate --schedules 200 --policy qnetd-like --scenario split-then-holder-cut")]
    Simulate(SimulateArgs),
    /// Load generator for bench/arbiter-bench (simulated clusters speaking the protocol).
    #[command(hide = true)]
    Loadgen(arbiter_server::LoadgenArgs),
    /// One I/O worker process of `arbiter serve --workers N` (started by it).
    #[command(hide = true)]
    Worker,
}

#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// Number of schedules (seeds SEED, SEED+1, ...).
    #[arg(long, default_value_t = 2000)]
    pub schedules: u64,
    /// First seed; a violating schedule is replayed exactly with `--schedules 1 --seed S`.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Vote policy of the arbiter: `lease` (twonode) or `qnetd-like` (corosync-qnetd, unsafe).
    #[arg(long, value_enum, default_value_t = PolicyArg::Lease)]
    pub policy: PolicyArg,
    /// Fault mix: `random`, or `split-then-holder-cut` (the hole measured on real corosync-qnetd).
    #[arg(long, value_enum, default_value_t = ScenarioArg::Random)]
    pub scenario: ScenarioArg,
    /// Simulated seconds per schedule.
    #[arg(long, default_value_t = 240)]
    pub duration_s: u64,
    /// Worker threads (default: all CPUs).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Decision algorithm of the simulated clusters: `mixed` (ffsplit, and lms for every fourth
    /// seed, half of those with wait_for_all), `ffsplit` or `lms`.
    #[arg(long, value_enum, default_value_t = AlgorithmArg::Mixed)]
    pub algorithm: AlgorithmArg,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlgorithmArg {
    Mixed,
    Ffsplit,
    Lms,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyArg {
    Lease,
    QnetdLike,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScenarioArg {
    Random,
    SplitThenHolderCut,
}


pub fn run(args: Args, g: &Global) -> anyhow::Result<i32> {
    match args.cmd {
        Cmd::Serve(a) => arbiter_server::serve(a, g),
        Cmd::Status(a) => arbiter_server::status(a, g),
        Cmd::Certs(c) => arbiter_server::certs(c, g),
        Cmd::Simulate(a) => simulate(a, g),
        Cmd::Loadgen(a) => arbiter_server::loadgen(a, g),
        Cmd::Worker => arbiter_server::worker(),
    }
}

fn simulate(a: SimulateArgs, g: &Global) -> anyhow::Result<i32> {
    use crate::quorum::arbiter::core::Policy;
    use crate::quorum::arbiter::sim::{self, SimConfig, Summary};
    let cfg = SimConfig {
        policy: match a.policy {
            PolicyArg::Lease => Policy::Lease,
            PolicyArg::QnetdLike => Policy::QnetdLike,
        },
        scenario_f_only: a.scenario == ScenarioArg::SplitThenHolderCut,
        algorithms: match a.algorithm {
            AlgorithmArg::Mixed => sim::Algorithms::Mixed,
            AlgorithmArg::Ffsplit => sim::Algorithms::Ffsplit,
            AlgorithmArg::Lms => sim::Algorithms::Lms,
        },
        duration_ms: a.duration_s.max(60) * 1000,
        ..SimConfig::default()
    };
    let threads = a.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1);
    let chunk = 50u64;
    let bar = if g.json { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(a.schedules) };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} schedules ({per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let start = std::time::Instant::now();
    let next = std::sync::atomic::AtomicU64::new(0);
    let results: Vec<(u64, Summary)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(chunk, std::sync::atomic::Ordering::Relaxed);
                        if i >= a.schedules {
                            break;
                        }
                        let n = chunk.min(a.schedules - i);
                        out.push((i, sim::run_many_detailed(n, a.seed.wrapping_add(i), &cfg)));
                        bar.inc(n);
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    });
    bar.finish_and_clear();
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    let mut parts = results;
    parts.sort_by_key(|p| p.0);
    let total = sim::merge(parts.into_iter().map(|p| p.1).collect());
    let per_s = a.schedules as f64 / elapsed;
    if g.json {
        let v = serde_json::json!({
            "policy": format!("{:?}", a.policy), "scenario": format!("{:?}", a.scenario),
            "summary": total, "elapsed_s": elapsed, "schedules_per_s": per_s,
            "events_per_s": total.events as f64 / elapsed,
        });
        crate::util::print_json(&v)?;
    } else {
        println!("policy: {:?}  scenario: {:?}  seeds {}..{}", a.policy, a.scenario, a.seed, a.seed.wrapping_add(a.schedules));
        println!(
            "simulated {:.1} h in {:.2} s ({:.0} schedules/s, {:.0} events/s, {} threads)",
            (a.schedules * cfg.duration_ms) as f64 / 3.6e6,
            elapsed,
            per_s,
            total.events as f64 / elapsed,
            threads
        );
        println!(
            "failovers: {}  p50 {} ms  p99 {} ms  max {} ms   longest overlap {} ms",
            total.failovers, total.failover_p50_ms, total.failover_p99_ms, total.failover_max_ms, total.overlap_ms_max
        );
        println!("lms schedules: {} ({} with wait_for_all)", total.lms_schedules, total.lms_wait_for_all_schedules);
        if let Some(s) = total.first_violating_seed {
            println!("first violating schedule: --seed {s} --schedules 1");
            println!("{}", sim::describe(s, &cfg));
        }
    }
    println!(
        "violations: {} schedules: {} failover_p50_ms: {} failover_p99_ms: {}",
        total.violations, total.schedules, total.failover_p50_ms, total.failover_p99_ms
    );
    Ok(if total.violations > 0 { 1 } else { 0 })
}

