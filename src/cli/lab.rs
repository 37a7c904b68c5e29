//! `twonode lab`: the simulated two-node lab and the simulators admins rehearse with.
//! Each simulator adds one variant to `LabCmd` and one arm to `run`; the logic lives in `crate::lab`.
use super::Global;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  twonode lab demo                 the guided tour, non-interactive\n  twonode lab demo --keep /tmp/lab keep the lab's files to explore them afterwards")]
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
}

pub fn run(args: Args, g: &Global) -> anyhow::Result<i32> {
    match args.cmd {
        LabCmd::Demo { keep, log } => crate::lab::demo::run(keep, log, g.json),
    }
}
