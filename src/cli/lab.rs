//! `twonode lab`: the simulated two-node lab and the simulators admins rehearse with.
//! Each simulator adds one variant to `LabCmd` and one arm to `run`; the logic lives in `crate::lab`.
use super::Global;
use std::path::PathBuf;

pub mod bmc;
pub mod ilo;
pub mod redfish;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  twonode lab demo                 the guided tour and every scenario, non-interactive\n  twonode lab demo --keep /tmp/lab keep the lab's files to explore them afterwards\n  twonode lab scenario --list      the failures you can rehearse\n  twonode lab scenario dead-bmc    rehearse one\n  twonode lab start                a lab that stays up (Ctrl-C stops it) to try commands by hand")]
pub struct Args {
    #[command(subcommand)]
    pub cmd: LabCmd,
}

#[derive(clap::Subcommand, Debug)]
pub enum LabCmd {
    /// Run the guided tour over a simulated two-node cluster, non-interactively.
    Demo {
        /// Keep the lab directory here instead of a temporary one.
        #[arg(long)]
        keep: Option<PathBuf>,
        /// Also write a normalised log (paths and timings stripped) for regression comparison.
        #[arg(long)]
        log: Option<PathBuf>,
    },
    /// Rehearse one failure (a scenario) in a fresh lab, step by step, saying what happened and why.
    #[command(after_help = "Examples:
  twonode lab scenario --list
  twonode lab scenario dead-bmc
  twonode lab scenario split-brain --keep /tmp/sb      keep the lab (it must not exist or be empty)
  twonode --json lab scenario no-power-on              every step with its exit code and output

Exit codes: 0 every step ended as expected (or the scenario was skipped: a program it needs is
missing, said on stdout); 1 a step ended otherwise (the log shows which); 2 unknown scenario or
a directory that is not empty.")]
    Scenario {
        /// The scenario (see --list).
        #[arg(required_unless_present = "list")]
        name: Option<String>,
        /// List the scenarios.
        #[arg(long, conflicts_with_all = ["keep", "log"])]
        list: bool,
        /// Keep the lab directory here instead of a temporary one.
        #[arg(long)]
        keep: Option<PathBuf>,
        /// Also write a normalised log (ports, paths and timings as placeholders) for regression comparison.
        #[arg(long)]
        log: Option<PathBuf>,
    },
    /// Start the whole lab (BMCs, arbiter, DRBD nodes over SSH) and keep it up until Ctrl-C.
    #[command(after_help = "Examples:
  twonode lab start                 a temporary lab, removed on Ctrl-C
  twonode lab start --dir /tmp/lab  the lab's files stay in /tmp/lab (it must not exist or be empty)
  twonode --json lab start          one JSON line: ports, sockets, --node arguments, environment

Prints what runs where and commands to try from another shell; Ctrl-C or SIGTERM stops every
process it started.")]
    Start {
        /// The lab directory (default: a temporary one, removed on exit).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Run a simulated IPMI 2.0 BMC (RMCP+, cipher suites 17 and 3) on loopback UDP.
    BmcSim(bmc::BmcSimArgs),
    /// Run a simulated HP iLO (RIBCL over TLS, raw and HTTP) on loopback.
    IloSim(ilo::IloSimArgs),
    /// Run a simulated Redfish BMC with a vendor profile (iLO 5, iDRAC 9, AMI, OpenBMC, sushy-like).
    RedfishSim(redfish::RedfishSimArgs),
    /// Drive one power device (RIBCL iLO or Redfish) once; key=value parameters on stdin.
    Power(ilo::PowerArgs),
    /// The simulated DRBD kernel side (drbdsetup/drbdmeta stand-in driven by the real drbdadm).
    DrbdKernel(super::drbd_kernel::Args),
}

pub fn run(args: Args, g: &Global) -> anyhow::Result<i32> {
    match args.cmd {
        LabCmd::Demo { keep, log } => crate::lab::demo::run(keep, log, g.json),
        LabCmd::Scenario { list: true, .. } => crate::lab::scenario::list(g.json),
        LabCmd::Scenario { name, keep, log, .. } => crate::lab::scenario::run(name.as_deref().unwrap_or(""), keep, log, g.json),
        LabCmd::Start { dir } => crate::lab::start::run(dir, g.json),
        LabCmd::BmcSim(a) => bmc::run_sim(a, g),
        LabCmd::IloSim(a) => ilo::run_sim(a, g),
        LabCmd::RedfishSim(a) => redfish::run_sim(a, g),
        LabCmd::Power(a) => ilo::run_power(a, g),
        LabCmd::DrbdKernel(a) => super::drbd_kernel::run(a),
    }
}
