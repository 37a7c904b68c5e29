//! `twonode fence`: command-line surface; logic lives in `crate::fence`.
use super::Global;
use crate::fence::audit::AuditLog;
use crate::fence::engine::{self, Action, Engine, Event, Observer, RealClock, RebootMethod, Report, RunOptions, Verdict};
use crate::fence::power::PowerState;
use crate::fence::spec::{self, FenceTarget};
use crate::util::Failure;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

pub const EXIT_CODES: &str = "\
Exit codes:
  0  success; for --action status: the node is ON
  1  failure: configuration error, refused (own node, no confirmation), other
  2  --action status: the node is OFF
  3  authentication failed (user, password, privilege level)
  4  device unreachable (no answer, connection refused)
  5  timeout (the device stopped answering)
  6  protocol error (unexpected answer, unsupported command)
  7  power state not reached within power_timeout
  8  fenced (off confirmed) but power-on FAILED (reboot)";

#[derive(clap::Args, Debug)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = EXIT_CODES,
    override_usage = "twonode fence NODE [--action reboot|off|on|status] [--file PATH] [--yes]\n       \
                      twonode fence NODE --cib FILE|live [--ssh USER@HOST[:PORT]] [--device ID] [--dry-run]\n       \
                      twonode fence test [--file PATH] [--destructive --yes] [--json] [--report PATH]\n       \
                      twonode fence test --cib FILE|live [--ssh USER@HOST[:PORT]] [--json]\n       \
                      twonode fence agent [fence-agent options]   (key=value on stdin without options)\n       \
                      twonode fence gate [gate options]           (the arbiter gate; key=value on stdin without options)"
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Sub>,
    /// The cluster node to act on (its clusternode name in cluster.conf).
    pub node: Option<String>,
    #[command(flatten)]
    pub act: ActArgs,
}

#[derive(clap::Args, Debug)]
pub struct ActArgs {
    /// What to do: reboot = off, confirm off, on, confirm on.
    #[arg(short = 'o', long, value_enum, default_value = "reboot")]
    pub action: Action,
    /// cluster.conf to read the node's fence methods from (default: /etc/pve/cluster.conf if present, else /etc/cluster/cluster.conf).
    #[arg(long, env = "TWONODE_CLUSTER_CONF", default_value_os_t = crate::clusterconf::store::default_path())]
    pub file: PathBuf,
    /// Do not ask for confirmation (required when not on a terminal).
    #[arg(short, long)]
    pub yes: bool,
    /// Allow fencing the node this command runs on.
    #[arg(long)]
    pub allow_self: bool,
    /// Reboot method for every device: onoff (verified, default) or cycle (one command; only on request).
    #[arg(long, value_enum)]
    pub method: Option<RebootMethod>,
    /// Print the plan and exit without touching any device.
    #[arg(long)]
    pub dry_run: bool,
    /// Append every action and outcome as a JSON line here.
    #[arg(long, env = "TWONODE_FENCE_AUDIT_LOG", default_value = crate::fence::audit::DEFAULT_PATH)]
    pub audit_log: PathBuf,
    /// This node's clusternode name, for methods gated by the arbiter (default: cman_tool status,
    /// else the host name).
    #[arg(long, env = "TWONODE_LOCAL_NODE")]
    pub local_node: Option<String>,
    #[command(flatten)]
    pub cib: CibArgs,
    /// With --cib: use only this stonith device (also one whose targets the CIB leaves to the
    /// device: pcmk_host_check=dynamic-list/status).
    #[arg(long, value_name = "ID", requires = "cib")]
    pub device: Option<String>,
}

/// Fence from a pacemaker CIB instead of cluster.conf.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CibArgs {
    /// Take the fence devices from a pacemaker CIB instead of cluster.conf: a file
    /// (`cibadmin -Q > cib.xml`, a crm_report's cib.xml) or `live` (`cibadmin -Q` here, or on --ssh).
    #[arg(long, value_name = "FILE|live")]
    pub cib: Option<String>,
    /// With --cib live: run `cibadmin -Q` on this cluster node over SSH (key authentication, the
    /// host key checked against --known-hosts).
    #[arg(long, value_name = "USER@HOST[:PORT]", requires = "cib")]
    pub ssh: Option<String>,
    /// SSH private key for --ssh (default ~/.ssh/id_ed25519, else ~/.ssh/id_rsa).
    #[arg(long, env = "TWONODE_SSH_IDENTITY")]
    pub identity: Option<PathBuf>,
    /// known_hosts file for --ssh (default ~/.ssh/known_hosts).
    #[arg(long, env = "TWONODE_SSH_KNOWN_HOSTS")]
    pub known_hosts: Option<PathBuf>,
    /// Seconds the SSH connection and `cibadmin -Q` may take.
    #[arg(long, default_value_t = 20)]
    pub ssh_timeout: u64,
}

impl CibArgs {
    /// The CIB: (name for messages, model). Unreadable: exit 1 (a configuration error; 2 is
    /// "status OFF" for fence).
    pub fn load(&self) -> anyhow::Result<Option<(String, crate::pacemaker::Cib)>> {
        use crate::host::{HostKeyPolicy, Ssh, SshTarget};
        use crate::pacemaker::source;
        let Some(spec) = &self.cib else { return Ok(None) };
        let r = match &self.ssh {
            None => source::load(spec, None),
            Some(_) if spec != "live" => return Err(Failure::new(1, format!("--ssh reads the live CIB of a node: give --cib live, not --cib {spec}")).into()),
            Some(target) => {
                let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
                let identity = self.identity.clone().unwrap_or_else(|| {
                    let ed = home.join(".ssh/id_ed25519");
                    if ed.exists() { ed } else { home.join(".ssh/id_rsa") }
                });
                let (user, host, port) = SshTarget::parse(target, target).map_err(|e| Failure::new(1, format!("--ssh {target}: {e}")))?;
                let mut ssh = Ssh::new(SshTarget {
                    node: host.clone(),
                    user,
                    host,
                    port,
                    identity,
                    known_hosts: self.known_hosts.clone().unwrap_or_else(|| home.join(".ssh/known_hosts")),
                    policy: HostKeyPolicy::Strict,
                    timeout: Duration::from_secs(self.ssh_timeout.max(1)),
                });
                source::load(spec, Some(&mut ssh))
            }
        };
        r.map(Some).map_err(|e| Failure::new(1, e.message).into())
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum Sub {
    /// Pre-production test of every fence device of every node (non-destructive unless --destructive).
    #[command(after_help = "Exit codes: 0 every device passed (and every power test, with --destructive);\n\
                            1 a device or power test failed, or a DANGER configuration risk was found.")]
    Test(TestArgs),
    /// Run as a fence agent for fenced/pacemaker (key=value on stdin, or getopt options).
    #[command(disable_help_flag = true)]
    Agent {
        /// fence-agent options (-o ACTION -a IP -l LOGIN -S SCRIPT ...); none: read stdin.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The arbiter gate (fence agent fence_twonode_arbiter): exit 0 only if the quorum arbiter
    /// gives this node the cluster's vote. First device of every method in a gated cluster.conf.
    #[command(disable_help_flag = true)]
    Gate {
        /// gate options (-o ACTION -a ARBITER -n NODE --tlscacert F ...); none: read stdin.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// cluster.conf to read.
    #[arg(long, env = "TWONODE_CLUSTER_CONF", default_value_os_t = crate::clusterconf::store::default_path())]
    pub file: PathBuf,
    /// Power every node off and on again, one at a time (asks for confirmation unless --yes).
    #[arg(long)]
    pub destructive: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// Include the node this runs on in --destructive.
    #[arg(long)]
    pub allow_self: bool,
    /// After power-on, wait up to SECONDS for the node to answer ping again.
    #[arg(long, value_name = "SECONDS")]
    pub wait_ping: Option<u64>,
    /// Also write the JSON report to PATH (evidence to keep).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Audit log for destructive actions.
    #[arg(long, env = "TWONODE_FENCE_AUDIT_LOG", default_value = crate::fence::audit::DEFAULT_PATH)]
    pub audit_log: PathBuf,
    #[command(flatten)]
    pub cib: CibArgs,
}

pub fn run(args: Args, g: &Global) -> anyhow::Result<i32> {
    match args.command {
        Some(Sub::Test(t)) => run_test(t, g),
        Some(Sub::Agent { args }) => Ok(crate::fence::agent::run(&args, &mut std::io::stdin(), None)),
        Some(Sub::Gate { args }) => Ok(crate::fence::gate::run_agent(&args, &mut std::io::stdin(), None)),
        None => {
            let Some(node) = args.node else {
                anyhow::bail!("name the node to fence: twonode fence NODE --action reboot|off|on|status (see --help)");
            };
            if args.act.cib.cib.is_some() {
                return super::fence_cib::fence_node(&node, args.act, g);
            }
            fence_node(&node, args.act, g)
        }
    }
}

/// When the binary is invoked as `fence_twonode` (a symlink), behave as the fence agent.
pub fn run_if_named_as_agent() -> Option<i32> {
    let argv0 = std::env::args_os().next()?;
    let name = std::path::Path::new(&argv0).file_name()?.to_str()?.to_string();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if name == crate::fence::gate::AGENT {
        return Some(crate::fence::gate::run_agent(&args, &mut std::io::stdin(), None));
    }
    if name != "fence_twonode" {
        return None;
    }
    Some(crate::fence::agent::run(&args, &mut std::io::stdin(), None))
}

/// Is `node` the machine we run on? Compares short host names.
pub fn is_self(node: &str) -> bool {
    let host = nix::unistd::gethostname().map(|h| h.to_string_lossy().to_string()).unwrap_or_default();
    let short = |s: &str| s.split('.').next().unwrap_or("").to_ascii_lowercase();
    !host.is_empty() && short(&host) == short(node)
}

/// Ask on the terminal. No terminal and no --yes: refuse.
pub fn confirm(question: &str, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::new(
            1,
            format!("refused: \"{question}\" needs confirmation, but there is no terminal; add --yes to confirm"),
        )
        .into());
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(Failure::new(1, "not confirmed; nothing was done").into())
    }
}

pub fn find_target(targets: Vec<FenceTarget>, node: &str, file: &std::path::Path) -> anyhow::Result<FenceTarget> {
    let names: Vec<String> = targets.iter().map(|t| t.node.clone()).collect();
    targets.into_iter().find(|t| t.node == node).ok_or_else(|| {
        Failure::new(1, format!("node \"{node}\" is not a clusternode in {} (nodes: {})", file.display(), names.join(", ")))
            .into()
    })
}

/// Progress bars while the engine waits; step lines with -v.
pub struct Progress {
    bar: Option<ProgressBar>,
    verbose: bool,
    quiet: bool,
}

impl Progress {
    pub fn new(verbose: bool, quiet: bool) -> Self {
        Progress { bar: None, verbose, quiet }
    }
}

impl Observer for Progress {
    fn event(&mut self, e: Event<'_>) {
        if self.quiet {
            return;
        }
        match e {
            Event::Waiting { device, want, elapsed, limit } => {
                let bar = self.bar.get_or_insert_with(|| {
                    let b = ProgressBar::with_draw_target(Some(limit.as_millis() as u64), ProgressDrawTarget::stderr());
                    b.set_style(
                        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {elapsed}/{len_s}")
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .with_key("len_s", |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                                let _ = write!(w, "{}s", s.len().unwrap_or(0) / 1000);
                            }),
                    );
                    b
                });
                bar.set_message(format!("{device}: waiting for power {}", engine::state_word(want)));
                bar.set_position(elapsed.as_millis() as u64);
            }
            Event::WaitDone { .. } => {
                if let Some(b) = self.bar.take() {
                    b.finish_and_clear();
                }
            }
            Event::Sleeping { why, d } => {
                if self.verbose || d >= Duration::from_secs(3) {
                    eprintln!("  {why}: waiting {:.0}s", d.as_secs_f64());
                }
            }
            Event::Step(s) => {
                if self.verbose {
                    eprintln!(
                        "  [{:>6.1}s] {} {} {}: {}",
                        s.at_ms as f64 / 1000.0,
                        s.method,
                        s.device,
                        s.op,
                        s.result
                    );
                }
            }
        }
    }
}

/// Audit + progress together.
pub struct AuditObserver<'a> {
    pub progress: Progress,
    pub audit: &'a AuditLog,
    pub node: String,
    pub action: Action,
}

impl Observer for AuditObserver<'_> {
    fn event(&mut self, e: Event<'_>) {
        if let Event::Step(s) = &e {
            self.audit.append(
                "step",
                serde_json::json!({"node": self.node, "action": self.action.as_str(), "step": s}),
            );
        }
        self.progress.event(e);
    }
}

fn fence_node(node: &str, a: ActArgs, g: &Global) -> anyhow::Result<i32> {
    // cluster.conf read and parsed once: the targets and (for the gate) the cluster identity
    let conf = spec::ClusterConf::load(&a.file)?;
    let target = find_target(conf.targets.clone(), node, &a.file)?;
    let opts = RunOptions { reboot_method: a.method, no_delay: false };
    if a.dry_run {
        let plan = engine::plan(&target, a.action, &opts);
        if g.json {
            crate::util::print_json(&serde_json::json!({"node": node, "action": a.action.as_str(), "plan": plan}))?;
        } else {
            println!("plan for {} {} (nothing is done: --dry-run):", node, a.action.as_str());
            for (i, p) in plan.iter().enumerate() {
                println!("  {}. {p}", i + 1);
            }
        }
        return Ok(0);
    }
    if a.action.is_destructive() {
        if is_self(node) && !a.allow_self {
            return Err(Failure::new(
                1,
                format!(
                    "refusing to {} {node}: it is the machine this command runs on (use --allow-self if you really mean it)",
                    a.action.as_str()
                ),
            )
            .into());
        }
        let plan = engine::plan(&target, a.action, &opts);
        if !a.yes && std::io::stdin().is_terminal() {
            eprintln!("{} {node}:", a.action.as_str());
            for p in &plan {
                eprintln!("  - {p}");
            }
        }
        confirm(&format!("{} node {node}?", a.action.as_str()), a.yes)?;
    }
    let audit = if a.action.is_destructive() { Some(AuditLog::open(Some(&a.audit_log))) } else { None };
    let clock = RealClock::new();
    let mut opener = crate::fence::drivers::RealOpener;
    let mut gatekeeper = gatekeeper_for(&target, &conf, &a)?;
    let report = match &audit {
        Some(log) => {
            log.append("start", serde_json::json!({"node": node, "action": a.action.as_str(), "file": a.file}));
            let mut obs = AuditObserver {
                progress: Progress::new(g.verbose > 0, g.json),
                audit: log,
                node: node.into(),
                action: a.action,
            };
            let mut e = Engine::new(&clock, &mut opener, &mut obs);
            if let Some(k) = gatekeeper.as_mut() {
                e = e.with_gatekeeper(k);
            }
            let r = e.run(&target, a.action, &opts);
            log.append(
                "outcome",
                serde_json::json!({"node": node, "action": a.action.as_str(), "exit": r.exit_code(),
                    "verdict": r.verdict, "method": r.method, "message": r.message, "elapsed_ms": r.elapsed_ms}),
            );
            r
        }
        None => {
            let mut obs = Progress::new(g.verbose > 0, g.json);
            let mut e = Engine::new(&clock, &mut opener, &mut obs);
            if let Some(k) = gatekeeper.as_mut() {
                e = e.with_gatekeeper(k);
            }
            e.run(&target, a.action, &opts)
        }
    };
    print_report(&report, g)?;
    Ok(report.exit_code())
}

/// `twonode fence test`.
fn run_test(a: TestArgs, g: &Global) -> anyhow::Result<i32> {
    use crate::fence::test::{resolve, risks};
    if a.cib.cib.is_some() {
        return super::fence_cib::run_test(a, g);
    }
    let targets = crate::fence::spec::load_cluster_conf(&a.file)?;
    let risks = risks(&targets, &resolve);
    let race = crate::fence::gate::race_protection(&targets);
    run_test_on(&targets, a.file.display().to_string(), risks, race, a, g)
}

/// The body of `fence test` over fence targets (from cluster.conf, or from a CIB).
pub fn run_test_on(
    targets: &[FenceTarget],
    source: String,
    risks: Vec<crate::fence::test::Risk>,
    race_protection: String,
    a: TestArgs,
    g: &Global,
) -> anyhow::Result<i32> {
    use crate::fence::test::{check_devices, power_test, table, wait_ping, PowerTest, Severity, TestReport};
    let targets = targets.to_vec();
    let clock = crate::fence::engine::RealClock::new();
    let mut opener = crate::fence::drivers::RealOpener;
    let mut report = TestReport {
        file: source.clone(),
        started: crate::fence::audit::utc_now(),
        checks: vec![],
        power_tests: vec![],
        risks,
        race_protection,
        ok: true,
    };
    if !g.json {
        eprintln!("checking {} node(s) from {source} ...", targets.len());
    }
    report.checks = check_devices(&targets, &mut opener, &clock);
    let devices_ok = report.checks.iter().all(|c| c.ok());
    if a.destructive {
        if !devices_ok {
            eprintln!("twonode: not running --destructive: some devices failed the basic check");
        } else if report.risks.iter().any(|r| r.severity == Severity::Error) {
            eprintln!("twonode: not running --destructive: fix the DANGER configuration risks first");
        } else {
            let audit = crate::fence::audit::AuditLog::open(Some(&a.audit_log));
            for t in &targets {
                if t.methods.iter().all(|m| m.devices.is_empty()) {
                    continue;
                }
                if is_self(&t.node) && !a.allow_self {
                    report.power_tests.push(PowerTest {
                        node: t.node.clone(),
                        skipped: Some("this is the node the test runs on (use --allow-self)".into()),
                        off_ok: false,
                        off_ms: 0,
                        on_ok: false,
                        on_ms: 0,
                        ping_ms: None,
                        error: None,
                    });
                    continue;
                }
                confirm(&format!("power node {} OFF and ON again (destructive fence test)?", t.node), a.yes)?;
                audit.append("start", serde_json::json!({"mode": "test", "node": t.node, "action": "off+on"}));
                let mut progress = Progress::new(g.verbose > 0, g.json);
                let mut pt = power_test(t, &mut opener, &clock, &mut progress);
                if pt.on_ok {
                    if let Some(secs) = a.wait_ping {
                        pt.ping_ms = wait_ping(&t.node, std::time::Duration::from_secs(secs));
                        if pt.ping_ms.is_none() {
                            pt.error = Some(format!("{} did not answer ping within {secs}s after power-on", t.node));
                        }
                    }
                }
                audit.append(
                    "outcome",
                    serde_json::json!({"mode": "test", "node": t.node, "action": "off+on", "result": pt}),
                );
                let failed = !pt.ok();
                report.power_tests.push(pt);
                if failed {
                    eprintln!("twonode: stopping the destructive test: node {} failed", t.node);
                    break;
                }
            }
        }
    }
    report.ok = devices_ok
        && report.power_tests.iter().all(|p| p.ok())
        && !report.risks.iter().any(|r| r.severity == Severity::Error)
        && !(a.destructive && report.power_tests.is_empty() && targets.iter().any(|t| !t.methods.is_empty()));
    if let Some(path) = &a.report {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n")
            .map_err(|e| anyhow::anyhow!("writing the report {}: {e}", path.display()))?;
    }
    if g.json {
        crate::util::print_json(&report)?;
    } else {
        print!("{}", table(&report));
    }
    Ok(if report.ok { 0 } else { 1 })
}

/// For a target with methods gated by the arbiter: a gatekeeper knowing the cluster (name, node
/// ids from the same cluster.conf) and this node. None when no method is gated.
fn gatekeeper_for(target: &FenceTarget, conf: &spec::ClusterConf, a: &ActArgs) -> anyhow::Result<Option<crate::fence::gate::RealGatekeeper>> {
    use crate::fence::gate;
    if !target.methods.iter().any(|m| m.devices.iter().any(gate::is_gate)) {
        return Ok(None);
    }
    let identity = gate::ClusterIdentity::from_model(&conf.model, &conf.path).map_err(|e| Failure::new(1, e))?;
    let mut p = std::collections::BTreeMap::new();
    if let Some(l) = &a.local_node {
        p.insert("local_node".to_string(), l.clone());
    }
    let local = gate::local_node(&p).unwrap_or_default();
    Ok(Some(gate::RealGatekeeper::new(identity, local)))
}

pub fn print_report(r: &Report, g: &Global) -> anyhow::Result<()> {
    print_report_from(r, g, false)
}

/// The report; `cib`: the devices came from a pacemaker CIB (the advice says where to fix them).
pub fn print_report_from(r: &Report, g: &Global, cib: bool) -> anyhow::Result<()> {
    if g.json {
        let mut v = serde_json::to_value(r).context("report to JSON")?;
        if let Some(o) = v.as_object_mut() {
            o.insert("exit_code".into(), r.exit_code().into());
        }
        return crate::util::print_json(&v);
    }
    match &r.verdict {
        Verdict::StatusOn | Verdict::StatusOff => println!(
            "Status: {} ({})",
            if matches!(r.verdict, Verdict::StatusOn) { "ON" } else { "OFF" },
            r.node
        ),
        Verdict::Done => {
            println!("OK: {} ({:.1}s)", r.message, r.elapsed_ms as f64 / 1000.0);
            if let Some(s) = r.steps.iter().find(|s| s.op == "gate" && s.ok) {
                println!("  arbiter gate {}: vote granted after {} ms, held until the method ended", s.device, s.took_ms);
            }
        }
        Verdict::FencedPowerOnFailed { .. } => {
            eprintln!("WARNING: {} ({:.1}s)", r.message, r.elapsed_ms as f64 / 1000.0);
            eprintln!("  The node is powered off (fenced). Check its power supply/BMC and power it on by hand.");
        }
        Verdict::Failed { error } => {
            eprintln!("FAILED: {}", r.message);
            if r.steps.iter().any(|s| s.op == "gate" && !s.ok) {
                eprintln!(
                    "  arbiter gate: no device was touched where the arbiter gave no vote. Refused (NACK / no \
                     decision): the other node holds the vote and fences this one. Unreachable or TLS/INIT refused: \
                     fix the arbiter; until then nobody can fence."
                );
            } else {
                let a = advice(error);
                if cib {
                    eprintln!("  what to do: {}", a.replace("in cluster.conf", "in the CIB (`pcs stonith update DEVICE ...`)"));
                } else {
                    eprintln!("  what to do: {a}");
                }
            }
        }
    }
    let _ = PowerState::On;
    Ok(())
}

/// What the admin should check for each error kind.
pub fn advice(e: &crate::fence::power::PowerError) -> &'static str {
    use crate::fence::power::PowerError::*;
    match e {
        Auth(_) => "check login/passwd (or passwd_script) and privlvl for this device in cluster.conf, and the user on the BMC",
        Unreachable(_) => "check ipaddr/ipport, that the BMC is powered and cabled, and that IPMI over LAN is enabled",
        Timeout(_) => "the device stopped answering: check the network path; raise login_timeout/power_timeout if it is slow",
        Protocol(_) | NotSupported(_) => "the device answered unexpectedly: check agent=, cipher= and the firmware; try twonode_driver=external",
        StateNotReached(_) => "the device accepted the command but the power did not change: check the chassis; raise power_timeout if it is slow",
        Config(_) => "fix the fence configuration in cluster.conf (see the message)",
    }
}
