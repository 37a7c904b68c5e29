//! Command-line definitions (clap) and dispatch. Each area has its own file with its `Args` and
//! `run`; the logic lives in the library modules, not here.
use clap::{CommandFactory, Parser, Subcommand};

pub mod arbiter;
pub mod arbiter_server;
pub mod conf;
pub mod doctor;
pub mod drbd;
pub mod drbd_kernel;
pub mod drbd_recover;
pub mod fence;
pub mod fence_cib;
pub mod ha;
pub mod lab;
pub mod pacemaker;
pub mod quorum;
pub mod quorum_corosync;

/// Options every subcommand understands.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Global {
    /// Machine-readable JSON on stdout instead of human output.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

const EXAMPLES: &str = "\
Examples:
  twonode lab demo                       rehearse on a simulated two-node lab
  twonode conf validate --file /etc/cluster/cluster.conf
  twonode conf set-two-node on           stage the change in cluster.conf.new
  twonode conf diff && twonode conf apply
  twonode fence node2 --action status
  twonode drbd split-brain
  twonode quorum status --json

Exit codes: 0 success; 1 failure or errors found; 2 input unreadable (validate), or power off
(fence status); see each subcommand's --help for its own codes.";

#[derive(Parser, Debug)]
#[command(
    name = "twonode",
    version,
    about = "Run a two-node HA cluster safely: cluster.conf, fencing, quorum arbiter, DRBD recovery",
    after_help = EXAMPLES
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Read, validate, edit, stage and apply a cman cluster.conf losslessly.
    Conf(conf::Args),
    /// Fence a node through its configured devices, or test every fence device.
    Fence(fence::Args),
    /// Show votequorum state computed from the configuration and live membership.
    Quorum(quorum::Args),
    /// The quorum arbiter for a third machine (a corosync-qnetd replacement) and its simulator.
    Arbiter(arbiter::Args),
    /// DRBD status, split-brain detection and guided recovery on both nodes.
    Drbd(drbd::Args),
    /// A simulated two-node lab to rehearse failures in.
    Lab(lab::Args),
    /// One preflight over the whole cluster: config, quorum, fencing, arbiter, DRBD, HA coherence.
    Doctor(doctor::Args),
    /// Read a pacemaker CIB: who fences whom, and the two-node traps in it.
    Pacemaker(pacemaker::Args),
    /// The HA manager's view (Proxmox ha-manager semantics): simulate, rehearse, check.
    Ha(ha::Args),
    /// Print shell completions for SHELL on stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages (twonode.1 and one per subcommand) into DIR.
    Man {
        #[arg(default_value = ".")]
        dir: std::path::PathBuf,
    },
}

/// Parse the command line, run, and return the process exit code.
pub fn main() -> i32 {
    quiet_on_closed_stdout();
    if let Some(code) = fence::run_if_named_as_agent() {
        return code;
    }
    let cli = Cli::parse();
    // `arbiter serve` sets up its own logging once its config (log_format) is read
    if !matches!(&cli.command, Command::Arbiter(a) if matches!(a.cmd, arbiter::Cmd::Serve(_))) {
        init_logging(cli.global.verbose);
    }
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("twonode: error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            crate::util::exit_code_of(&err)
        }
    }
}

/// `println!` panics when the reader went away (`twonode ... --json | head`). End quietly with the
/// shell's SIGPIPE status instead, like every Unix filter. SIGPIPE itself stays ignored, so that a
/// write to a closed socket or to the stdin of a fence agent that exited early is an error we
/// handle, not a silent death.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("Broken pipe") || msg.contains("BrokenPipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TWONODE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn run(cli: Cli) -> anyhow::Result<i32> {
    let g = cli.global;
    match cli.command {
        Command::Conf(a) => conf::run(a, &g),
        Command::Fence(a) => fence::run(a, &g),
        Command::Quorum(a) => quorum::run(a, &g),
        Command::Arbiter(a) => arbiter::run(a, &g),
        Command::Drbd(a) => drbd::run(a, &g),
        Command::Lab(a) => lab::run(a, &g),
        Command::Doctor(a) => doctor::run(a, &g),
        Command::Pacemaker(a) => pacemaker::run(a, &g),
        Command::Ha(a) => ha::run(a, &g),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "twonode", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man { dir } => {
            write_man_pages(&dir)?;
            Ok(0)
        }
    }
}

fn write_man_pages(dir: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cmd = Cli::command();
    clap_mangen::generate_to(cmd, dir).with_context(|| format!("writing man pages into {}", dir.display()))?;
    Ok(())
}
