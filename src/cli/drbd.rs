//! `twonode drbd`: command-line surface; logic lives in the library (`crate::drbd`).
//!
//! Subcommands: `parse` and `split-brain` (offline, from pasted outputs). Each subcommand has its own
//! Args struct and `run_*` function below, so further subcommands merge without touching these.
use super::Global;
use crate::drbd;
use crate::util::Failure;
use anyhow::Context;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Read any DRBD output (format detected) from FILE or stdin and print the parsed state.
    ///
    /// Reads /proc/drbd (8.0-8.4), drbdadm/drbdsetup status (text, --verbose --statistics, --json),
    /// drbdsetup events2, get-gi/show-gi, role/cstate/dstate, drbdadm dump/dump-xml, drbdsetup
    /// show; a paste of several outputs, each after its prompt line ("# drbdadm status r0"), too.
    /// Exit 0 when read; exit 1 with the line number on input it cannot read.
    Parse(ParseArgs),
    /// Classify each resource from both nodes' outputs: healthy, syncing, disconnected, split
    /// brain, unrelated data, unknown; show the evidence and a recommended victim.
    ///
    /// Offline mode: each file holds one node's pasted outputs, each after its prompt line, e.g.
    /// "# drbdadm status", "# drbdadm get-gi r0", "# dmesg | grep drbd", "# cat /proc/mounts",
    /// "# fuser -vm /dev/drbd0", "# clustat". It never picks a victim for you: the recommendation
    /// is advice; `drbd recover --discard NODE` needs the node named.
    /// Exit 0: no split brain (healthy, syncing or disconnected); 2: split brain; 3: unrelated
    /// data; 4: undecidable (unknown); 1: input unreadable.
    SplitBrain(SplitBrainArgs),
    /// Recover RESOURCE from a split brain on both nodes, discarding NODE's changes: plan, confirm,
    /// execute step by step with checks read back from DRBD, journal, resume.
    Recover(super::drbd_recover::RecoverArgs),
    /// Show the state of each resource and volume on both nodes (locally and over SSH).
    Status(super::drbd_recover::StatusArgs),
}

#[derive(clap::Args, Debug)]
pub struct ParseArgs {
    /// File to read; `-` or nothing for stdin.
    pub file: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct SplitBrainArgs {
    /// This node's pasted outputs (drbdadm status, get-gi, dmesg, /proc/mounts, ...).
    #[arg(long, value_name = "FILE")]
    pub local_file: PathBuf,
    /// The peer's pasted outputs.
    #[arg(long, value_name = "FILE")]
    pub peer_file: PathBuf,
    /// Name of this node (default: from the outputs, else "local").
    #[arg(long)]
    pub local_name: Option<String>,
    /// Name of the peer (default: from the outputs, else "peer").
    #[arg(long)]
    pub peer_name: Option<String>,
    /// The node the cluster service (and its filesystem) runs on, if known.
    #[arg(long, value_name = "NODE")]
    pub service_on: Option<String>,
    /// Only this resource.
    #[arg(long)]
    pub resource: Option<String>,
}

pub fn run(args: Args, g: &Global) -> anyhow::Result<i32> {
    match args.command {
        Cmd::Parse(a) => run_parse(a, g),
        Cmd::SplitBrain(a) => run_split_brain(a, g),
        Cmd::Recover(a) => super::drbd_recover::run_recover(a, g),
        Cmd::Status(a) => super::drbd_recover::run_status(a, g),
    }
}

fn read_input(file: Option<&PathBuf>) -> anyhow::Result<(String, String)> {
    match file {
        Some(p) if p.as_os_str() != "-" => {
            let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
            Ok((String::from_utf8_lossy(&bytes).into_owned(), p.display().to_string()))
        }
        _ => {
            use std::io::Read;
            let mut bytes = Vec::new();
            std::io::stdin().read_to_end(&mut bytes).context("cannot read stdin")?;
            Ok((String::from_utf8_lossy(&bytes).into_owned(), "<stdin>".to_string()))
        }
    }
}

fn parse_failure(name: &str, e: &drbd::parse::ParseError, g: &Global) -> anyhow::Error {
    if g.json {
        let _ = crate::util::print_json(&serde_json::json!({ "file": name, "error": e }));
    }
    anyhow::Error::new(Failure::new(
        1,
        format!(
            "{name}: {e}\n  fix: paste the complete output of one supported command (see `twonode drbd parse --help`), \
             or put each output after its prompt line, e.g. \"# drbdadm status r0\""
        ),
    ))
}

fn run_parse(a: ParseArgs, g: &Global) -> anyhow::Result<i32> {
    let (text, name) = read_input(a.file.as_ref())?;
    let paste = drbd::parse::parse_paste(&text).map_err(|e| parse_failure(&name, &e, g))?;
    let text = if g.json { serde_json::to_string_pretty(&paste)? + "\n" } else { drbd::render::paste(&paste) };
    write_stdout(&text)?;
    Ok(0)
}

/// Write to stdout; a closed pipe (`| head`) is not an error.
fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn run_split_brain(a: SplitBrainArgs, g: &Global) -> anyhow::Result<i32> {
    use drbd::splitbrain::{classify, node_names, NodeInput, Options, Verdict};
    let (lt, ln) = read_input(Some(&a.local_file))?;
    let (pt, pn) = read_input(Some(&a.peer_file))?;
    let lp = drbd::parse::paste::parse_drbd_paste(&lt).map_err(|e| parse_failure(&ln, &e, g))?;
    let pp = drbd::parse::paste::parse_drbd_paste(&pt).map_err(|e| parse_failure(&pn, &e, g))?;
    let (guess_local, guess_peer) = node_names(&lp.state, &pp.state);
    let local_name = a.local_name.or(guess_local).unwrap_or_else(|| "local".into());
    let peer_name = a.peer_name.or(guess_peer).unwrap_or_else(|| "peer".into());
    let local = NodeInput::from_paste(local_name, lp);
    let peer = NodeInput::from_paste(peer_name, pp);
    let report = classify(&local, &peer, &Options { service_on: a.service_on, resource: a.resource.clone() });
    if let (Some(r), true) = (&a.resource, report.resources.is_empty()) {
        return Err(anyhow::Error::new(Failure::new(
            1,
            format!("resource {r:?} is in neither node's output; fix: check the name, or paste `drbdadm status {r}` from both nodes"),
        )));
    }
    let text = if g.json { serde_json::to_string_pretty(&report)? + "\n" } else { drbd::splitbrain::render(&report) };
    write_stdout(&text)?;
    Ok(match report.worst() {
        Some(Verdict::SplitBrain) => 2,
        Some(Verdict::UnrelatedData) => 3,
        Some(Verdict::Unknown) => 4,
        _ => 0,
    })
}
