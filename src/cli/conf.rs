//! `twonode conf`: command-line surface; logic lives in the library (`crate::clusterconf`).
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};

use super::Global;
use crate::clusterconf::document::{is_secret_attr, mask_secrets_lenient, Document, Kind};
use crate::clusterconf::edit::{self, Attrs, EditError, EditErrorKind, InitSpec, Op};
use crate::clusterconf::model::{Model, Section};
use crate::clusterconf::store::{atomic_write, ConfStore, StoreError, Which};
use crate::clusterconf::validate::Options;
use crate::diag::{Report, Severity};
use crate::util::{print_json, Failure};

const EXAMPLES: &str = "\
Examples:
  twonode conf validate                          check /etc/pve/cluster.conf (or /etc/cluster/cluster.conf)
  twonode conf show --json --file ./cluster.conf
  twonode conf init --name duo --node n1 --node n2 --file ./cluster.conf --in-place
  twonode conf device add ipmi-n1 --agent fence_ipmilan ipaddr=10.0.0.11 login=admin lanplus=1 --secret-stdin passwd
  twonode conf bind n1 ipmi-n1 --method ipmi delay=15
  twonode conf diff && twonode conf apply --reload 'cman_tool version -r -S'

Edits write PATH.new (the staged file; PVE's cluster.conf.new) starting from PATH.new if it exists,
else PATH; --in-place writes PATH itself. Every edit bumps config_version by exactly one and changes
only the bytes it must. Exit codes: 0 ok; 1 error (validation errors, refused edit); 2 file
unreadable or not XML (validate); 3 conflict (--expect-version mismatch or the file changed while
editing).";

#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The live cluster.conf [default: /etc/pve/cluster.conf if present, else /etc/cluster/cluster.conf].
    #[arg(long, global = true, value_name = "PATH")]
    pub file: Option<PathBuf>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Options shared by every edit.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct EditOpts {
    /// Write PATH itself instead of staging the change in PATH.new.
    #[arg(long)]
    pub in_place: bool,
    /// Refuse (exit 3) unless the file's config_version is exactly N.
    #[arg(long, value_name = "N")]
    pub expect_version: Option<u64>,
    /// Print the change as a diff and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Read the value of attribute KEY from the first line of standard input (keeps passwords
    /// out of argv and shell history).
    #[arg(long, value_name = "KEY")]
    pub secret_stdin: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Check well-formedness, the schema (cluster.rng) and the two-node rules.
    #[command(after_help = "Examples:\n  twonode conf validate --file /etc/cluster/cluster.conf\n  twonode conf validate --staged --json\n\nExit: 0 no error (warnings allowed), 1 errors, 2 unreadable or not XML.")]
    Validate {
        /// Validate PATH.new, and require its config_version to be higher than PATH's.
        #[arg(long)]
        staged: bool,
    },
    /// Show the typed view (cluster, cman, nodes with their fence methods, devices, quorumd...).
    #[command(after_help = "Examples:\n  twonode conf show\n  twonode conf show --staged --json\n\nPasswords are always shown as ********.")]
    Show {
        /// Show PATH.new instead of PATH.
        #[arg(long)]
        staged: bool,
    },
    /// How fenced would fence NODE: methods in order, devices, the merged agent parameters.
    #[command(after_help = "Example:\n  twonode conf fencing n1 --json")]
    Fencing {
        node: String,
        #[arg(long)]
        staged: bool,
    },
    /// Create a new cluster.conf (config_version 1), two_node by default.
    #[command(after_help = "Examples:\n  twonode conf init --name duo --node n1 --node n2            (writes PATH.new)\n  twonode conf init --name duo --node n1 --node n2 --in-place --file ./cluster.conf\n  twonode conf init --name trio --node a --node b --node c --no-two-node")]
    Init {
        /// Cluster name (1-15 characters).
        #[arg(long)]
        name: String,
        /// A node name (repeat: exactly two for two_node).
        #[arg(long = "node", value_name = "NAME", required = true)]
        nodes: Vec<String>,
        /// Do not set two_node (expected_votes = number of nodes).
        #[arg(long)]
        no_two_node: bool,
        /// cman transport (udp, udpb, udpu, rdma).
        #[arg(long)]
        transport: Option<String>,
        /// cman keyfile (PVE: /var/lib/pve-cluster/corosync.authkey).
        #[arg(long)]
        keyfile: Option<String>,
        /// Write PATH itself instead of PATH.new.
        #[arg(long)]
        in_place: bool,
        /// Overwrite an existing target file.
        #[arg(long)]
        force: bool,
    },
    /// Turn two_node on (two_node=1 expected_votes=1) or off (expected_votes = vote sum).
    #[command(after_help = "Examples:\n  twonode conf set-two-node on\n  twonode conf set-two-node off --expected-votes 3    (before adding a quorum disk)")]
    SetTwoNode {
        state: OnOff,
        /// With off: expected_votes to write (default: sum of votes, plus the quorum disk's).
        #[arg(long)]
        expected_votes: Option<u64>,
        #[command(flatten)]
        edit: EditOpts,
    },
    /// Add, remove or change cluster nodes.
    #[command(subcommand, after_help = "Examples:\n  twonode conf node add n3 --nodeid 3\n  twonode conf node set n1 votes=1\n  twonode conf node remove n3")]
    Node(NodeCmd),
    /// Add, remove or change fence devices (<fencedevice>).
    #[command(subcommand, after_help = "Examples:\n  echo \"$PW\" | twonode conf device add ipmi-n1 --agent fence_ipmilan ipaddr=10.0.0.11 login=admin lanplus=1 --secret-stdin passwd\n  twonode conf device set ipmi-n1 ipaddr=10.0.0.12\n  twonode conf device remove ipmi-n1 --cascade")]
    Device(DeviceCmd),
    /// Bind NODE to fence DEVICE in a method (created as needed) with device attributes.
    #[command(after_help = "Examples:\n  twonode conf bind n1 ipmi-n1 --method ipmi delay=15\n  twonode conf bind n1 pdu --method pdu port=1 action=off --append\n  twonode conf bind n1 san --unfence            (action=on in <unfence>)")]
    Bind {
        node: String,
        device: String,
        /// Method name (methods are tried in file order).
        #[arg(long, default_value = "1")]
        method: String,
        /// Device attributes KEY=VALUE (action, port, plug, delay, ...).
        #[arg(value_name = "KEY=VALUE")]
        attrs: Vec<String>,
        /// Bind in <unfence> instead of a method.
        #[arg(long)]
        unfence: bool,
        /// Always add a new <device> (dual PSU: off,off,on,on), never update an existing one.
        #[arg(long)]
        append: bool,
        #[command(flatten)]
        edit: EditOpts,
    },
    /// Remove NODE's binding to DEVICE (a method left empty is removed).
    #[command(after_help = "Examples:\n  twonode conf unbind n1 ipmi-n1\n  twonode conf unbind n1 pdu --method pdu")]
    Unbind {
        node: String,
        device: String,
        #[arg(long)]
        method: Option<String>,
        #[arg(long)]
        unfence: bool,
        #[command(flatten)]
        edit: EditOpts,
    },
    /// Reorder NODE's fence methods (cascade levels): the named ones first, in this order.
    #[command(after_help = "Example:\n  twonode conf reorder-methods n1 ipmi pdu")]
    ReorderMethods {
        node: String,
        #[arg(required = true)]
        methods: Vec<String>,
        #[command(flatten)]
        edit: EditOpts,
    },
    /// Configure or remove the quorum disk (<quorumd> and its heuristics).
    #[command(subcommand, after_help = "Examples:\n  twonode conf set-two-node off --expected-votes 3\n  twonode conf quorumd set label=qdisk votes=1 --heuristic 'program=ping -c1 -w1 10.0.0.254,score=1'\n  twonode conf quorumd remove")]
    Quorumd(QuorumdCmd),
    /// Set attributes of a section: cluster, cman, totem, fence_daemon, logging, quorumd, dlm.
    #[command(after_help = "Examples:\n  twonode conf set totem token=10000\n  twonode conf set fence_daemon post_join_delay=20\n  twonode conf set cman transport=udpu --unset broadcast")]
    Set {
        section: String,
        #[arg(value_name = "KEY=VALUE")]
        attrs: Vec<String>,
        #[arg(long, value_name = "KEY")]
        unset: Vec<String>,
        #[command(flatten)]
        edit: EditOpts,
    },
    /// Gate every fence method through the quorum arbiter (cman two_node): only the node holding
    /// the arbiter's vote fences. Adds the fencedevice twonode-arbiter (agent
    /// fence_twonode_arbiter) and makes it the first device of every method; --remove undoes it.
    #[command(after_help = "Examples:\n  twonode conf gate-fencing --arbiter arbiter.example.com --ca /etc/twonode/arbiter/ca.crt \\\n      --cert /etc/twonode/arbiter/node.crt --key /etc/twonode/arbiter/node.key\n  twonode conf gate-fencing --remove\n\nTrade-off: with the gate, no arbiter means no fencing (both nodes wait) until it answers again.")]
    GateFencing {
        /// The arbiter: HOST or HOST:PORT (port 5403 by default).
        #[arg(long, value_name = "HOST[:PORT]", required_unless_present = "remove")]
        arbiter: Option<String>,
        /// CA certificate (PEM) of the arbiter, as a path on the nodes.
        #[arg(long, value_name = "FILE", required_unless_present = "remove")]
        ca: Option<String>,
        /// This cluster's client certificate (PEM, CN = cluster name), path on the nodes.
        #[arg(long, value_name = "FILE", required_unless_present = "remove")]
        cert: Option<String>,
        /// Its key (PEM), path on the nodes: only the path goes into cluster.conf.
        #[arg(long, value_name = "FILE", required_unless_present = "remove")]
        key: Option<String>,
        /// Seconds to wait for the arbiter's decision (default 30; written as login_timeout=).
        #[arg(long, value_name = "S")]
        timeout: Option<u64>,
        /// Seconds the vote stays with the fencing node after the gate, to cover its real device
        /// (default 120; 2-240).
        #[arg(long, value_name = "S")]
        hold: Option<u64>,
        /// Remove the gate from every method and its fencedevice.
        #[arg(long, conflicts_with_all = ["arbiter", "ca", "cert", "key", "timeout", "hold"])]
        remove: bool,
        #[command(flatten)]
        edit: EditOpts,
    },
    /// config_version + 1, nothing else.
    #[command(after_help = "Examples:\n  twonode conf bump\n  twonode conf bump --in-place --file /etc/cluster/cluster.conf")]
    Bump {
        #[command(flatten)]
        edit: EditOpts,
    },
    /// Unified diff of PATH (live) against PATH.new (staged), passwords masked on both sides.
    #[command(after_help = "Example:\n  twonode conf diff --file /etc/pve/cluster.conf")]
    Diff,
    /// Validate PATH.new, check its version is higher, back up PATH to PATH.old, replace PATH atomically.
    #[command(after_help = "Examples:\n  twonode conf apply\n  twonode conf apply --reload 'cman_tool version -r -S'")]
    Apply {
        /// Shell command run after the replacement (TWONODE_CONF names the file).
        #[arg(long, value_name = "CMD")]
        reload: Option<String>,
        /// Apply even when validation reports errors (version must still increase).
        #[arg(long)]
        force: bool,
    },
    /// Drop the staged PATH.new.
    #[command(after_help = "Example:\n  twonode conf revert")]
    Revert,
    /// Live and staged versions, whether something is staged, and its validity.
    #[command(after_help = "Example:\n  twonode conf status --json")]
    Status,
}

#[derive(Subcommand, Debug)]
pub enum NodeCmd {
    /// Add a clusternode (nodeid: next free, votes: 1).
    #[command(after_help = "Example:\n  twonode conf node add n3 --nodeid 3")]
    Add {
        name: String,
        #[arg(long)]
        nodeid: Option<u64>,
        #[arg(long)]
        votes: Option<u64>,
        #[arg(value_name = "KEY=VALUE")]
        attrs: Vec<String>,
        #[command(flatten)]
        edit: EditOpts,
    },
    /// Remove a clusternode (with its fence methods).
    #[command(after_help = "Example:\n  twonode conf node remove n3")]
    Remove {
        name: String,
        #[command(flatten)]
        edit: EditOpts,
    },
    /// Set or unset attributes of a clusternode (name= renames it).
    #[command(after_help = "Example:\n  twonode conf node set n1 votes=1 --unset weight")]
    Set {
        name: String,
        #[arg(value_name = "KEY=VALUE")]
        attrs: Vec<String>,
        #[arg(long, value_name = "KEY")]
        unset: Vec<String>,
        #[command(flatten)]
        edit: EditOpts,
    },
}

#[derive(Subcommand, Debug)]
pub enum DeviceCmd {
    /// Add a <fencedevice> NAME with AGENT and its attributes.
    #[command(after_help = "Example:\n  echo \"$PW\" | twonode conf device add ilo-n1 --agent fence_ilo ipaddr=10.0.0.21 login=fence --secret-stdin passwd")]
    Add {
        name: String,
        #[arg(long)]
        agent: String,
        #[arg(value_name = "KEY=VALUE")]
        attrs: Vec<String>,
        #[command(flatten)]
        edit: EditOpts,
    },
    /// Remove a fence device (refused while nodes use it, unless --cascade).
    #[command(after_help = "Example:\n  twonode conf device remove old-pdu --cascade")]
    Remove {
        name: String,
        /// Also remove every <device> that refers to it.
        #[arg(long)]
        cascade: bool,
        #[command(flatten)]
        edit: EditOpts,
    },
    /// Set or unset attributes of a fence device (name= renames it and its references).
    #[command(after_help = "Examples:\n  twonode conf device set ilo-n1 ipaddr=10.0.0.22 --unset hostname\n  twonode conf device set ilo-n1 --secret-stdin passwd < pwfile")]
    Set {
        name: String,
        #[arg(value_name = "KEY=VALUE")]
        attrs: Vec<String>,
        #[arg(long, value_name = "KEY")]
        unset: Vec<String>,
        #[command(flatten)]
        edit: EditOpts,
    },
}

#[derive(Subcommand, Debug)]
pub enum QuorumdCmd {
    /// Create or change <quorumd>; --heuristic replaces all heuristics.
    #[command(after_help = "Example:\n  twonode conf quorumd set label=qdisk votes=1 interval=1 tko=10 --heuristic 'program=ping -c1 -w1 10.0.0.254,score=1,interval=2'")]
    Set {
        #[arg(value_name = "KEY=VALUE")]
        attrs: Vec<String>,
        /// A heuristic as comma-separated KEY=VALUE (program= required); repeat for several.
        #[arg(long, value_name = "K=V,K=V")]
        heuristic: Vec<String>,
        #[command(flatten)]
        edit: EditOpts,
    },
    /// Remove <quorumd>.
    #[command(after_help = "Example:\n  twonode conf quorumd remove")]
    Remove {
        #[command(flatten)]
        edit: EditOpts,
    },
}

pub fn run(args: Args, g: &Global) -> anyhow::Result<i32> {
    let live = args.file.clone().unwrap_or_else(crate::clusterconf::store::default_path);
    let store = ConfStore::new(live);
    match args.cmd {
        Cmd::Validate { staged } => cmd_validate(&store, staged, g),
        Cmd::Show { staged } => cmd_show(&store, staged, g),
        Cmd::Fencing { node, staged } => cmd_fencing(&store, &node, staged, g),
        Cmd::Init { name, nodes, no_two_node, transport, keyfile, in_place, force } => {
            let spec = InitSpec { name, nodes, two_node: !no_two_node, transport, keyfile };
            cmd_init(&store, &spec, in_place, force, g)
        }
        Cmd::SetTwoNode { state, expected_votes, edit } => {
            do_edit(&store, &edit, Op::SetTwoNode { on: matches!(state, OnOff::On), expected_votes }, g)
        }
        Cmd::Node(NodeCmd::Add { name, nodeid, votes, attrs, edit }) => {
            let attrs = kv(&attrs, &edit)?;
            do_edit(&store, &edit, Op::NodeAdd { name, nodeid, votes, attrs }, g)
        }
        Cmd::Node(NodeCmd::Remove { name, edit }) => do_edit(&store, &edit, Op::NodeRemove { name }, g),
        Cmd::Node(NodeCmd::Set { name, attrs, unset, edit }) => {
            let set = kv(&attrs, &edit)?;
            need_change(&set, &unset)?;
            do_edit(&store, &edit, Op::NodeSet { name, set, unset }, g)
        }
        Cmd::Device(DeviceCmd::Add { name, agent, attrs, edit }) => {
            let attrs = kv(&attrs, &edit)?;
            do_edit(&store, &edit, Op::DeviceAdd { name, agent, attrs }, g)
        }
        Cmd::Device(DeviceCmd::Remove { name, cascade, edit }) => do_edit(&store, &edit, Op::DeviceRemove { name, cascade }, g),
        Cmd::Device(DeviceCmd::Set { name, attrs, unset, edit }) => {
            let set = kv(&attrs, &edit)?;
            need_change(&set, &unset)?;
            do_edit(&store, &edit, Op::DeviceSet { name, set, unset }, g)
        }
        Cmd::Bind { node, device, method, attrs, unfence, append, edit } => {
            let attrs = kv(&attrs, &edit)?;
            do_edit(&store, &edit, Op::Bind { node, method, device, attrs, unfence, append }, g)
        }
        Cmd::Unbind { node, device, method, unfence, edit } => do_edit(&store, &edit, Op::Unbind { node, device, method, unfence }, g),
        Cmd::ReorderMethods { node, methods, edit } => do_edit(&store, &edit, Op::ReorderMethods { node, order: methods }, g),
        Cmd::Quorumd(QuorumdCmd::Set { attrs, heuristic, edit }) => {
            let attrs = kv(&attrs, &edit)?;
            let heuristics = if heuristic.is_empty() {
                None
            } else {
                Some(heuristic.iter().map(|h| parse_heuristic(h)).collect::<anyhow::Result<Vec<Attrs>>>()?)
            };
            do_edit(&store, &edit, Op::QuorumdSet { attrs, heuristics }, g)
        }
        Cmd::Quorumd(QuorumdCmd::Remove { edit }) => do_edit(&store, &edit, Op::QuorumdRemove, g),
        Cmd::Set { section, attrs, unset, edit } => {
            let set = kv(&attrs, &edit)?;
            need_change(&set, &unset)?;
            do_edit(&store, &edit, Op::SectionSet { section, set, unset }, g)
        }
        Cmd::GateFencing { arbiter, ca, cert, key, timeout, hold, remove, edit } => {
            use crate::fence::gate::{conf::remove_op, GateSpec};
            let op = if remove {
                remove_op()
            } else {
                let (host, port) = split_host_port(arbiter.as_deref().unwrap_or_default())?;
                GateSpec { host, port, ca: ca.unwrap_or_default(), cert: cert.unwrap_or_default(), key: key.unwrap_or_default(), timeout, hold }
                    .edit_op()
                    .map_err(edit_failure)?
            };
            do_edit(&store, &edit, op, g)
        }
        Cmd::Bump { edit } => do_edit(&store, &edit, Op::Bump, g),
        Cmd::Diff => cmd_diff(&store, g),
        Cmd::Apply { reload, force } => cmd_apply(&store, reload.as_deref(), force, g),
        Cmd::Revert => cmd_revert(&store, g),
        Cmd::Status => cmd_status(&store, g),
    }
}

// ------------------------------------------------------------------ arguments

fn need_change(set: &Attrs, unset: &[String]) -> anyhow::Result<()> {
    if set.is_empty() && unset.is_empty() {
        anyhow::bail!("nothing to change: give KEY=VALUE pairs and/or --unset KEY");
    }
    Ok(())
}

fn split_kv(s: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => anyhow::bail!("expected KEY=VALUE, got {s:?}"),
    }
}

/// KEY=VALUE arguments plus the --secret-stdin value. Warns when a secret sits in argv.
fn kv(args: &[String], edit: &EditOpts) -> anyhow::Result<Attrs> {
    let mut out = Vec::new();
    for a in args {
        let (k, v) = split_kv(a)?;
        if is_secret_attr(&k) {
            eprintln!(
                "twonode: warning: {k}= on the command line is visible to other users (ps) and in shell history; \
                 prefer --secret-stdin {k}"
            );
        }
        out.push((k, v));
    }
    if let Some(key) = &edit.secret_stdin {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            eprint!("{key}: ");
        }
        let mut line = String::new();
        stdin.lock().read_line(&mut line).context("reading the secret from standard input")?;
        let value = line.trim_end_matches(['\n', '\r']).to_string();
        if value.is_empty() {
            anyhow::bail!("--secret-stdin {key}: standard input gave an empty line");
        }
        out.retain(|(k, _)| k != key);
        out.push((key.clone(), value));
    }
    Ok(out)
}

/// "host", "host:port", "[v6]:port" or a bare IPv6 address.
fn split_host_port(s: &str) -> anyhow::Result<(String, Option<u16>)> {
    let s = s.trim();
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| anyhow::anyhow!("--arbiter {s:?}: {p:?} is not a TCP port"));
    if let Some(rest) = s.strip_prefix('[') {
        let (h, tail) = rest.split_once(']').ok_or_else(|| anyhow::anyhow!("--arbiter {s:?}: missing ]"))?;
        return Ok((h.to_string(), match tail.strip_prefix(':') { Some(p) => Some(port(p)?), None => None }));
    }
    match s.matches(':').count() {
        1 => {
            let (h, p) = s.split_once(':').unwrap_or((s, ""));
            Ok((h.to_string(), Some(port(p)?)))
        }
        _ => Ok((s.to_string(), None)),
    }
}

fn parse_heuristic(s: &str) -> anyhow::Result<Attrs> {
    s.split(',').filter(|p| !p.trim().is_empty()).map(split_kv).collect()
}

// ------------------------------------------------------------------ errors

fn edit_failure(e: EditError) -> anyhow::Error {
    let code = match e.kind {
        EditErrorKind::VersionConflict => 3,
        _ => 1,
    };
    Failure::new(code, e.to_string()).into()
}

/// Give store conflicts exit code 3.
fn store_failure(e: anyhow::Error) -> anyhow::Error {
    if let Some(StoreError::Conflict { .. }) = e.downcast_ref::<StoreError>() {
        let msg = e.to_string();
        return Failure::new(3, msg).into();
    }
    e
}

fn read_snapshot(store: &ConfStore, which: Which) -> anyhow::Result<crate::clusterconf::store::Snapshot> {
    store.read(which).map_err(|e| Failure::new(2, format!("cannot read cluster.conf: {e}")).into())
}

// ------------------------------------------------------------------ read commands


fn cmd_validate(store: &ConfStore, staged: bool, g: &Global) -> anyhow::Result<i32> {
    let snap = read_snapshot(store, if staged { Which::Staged } else { Which::Live })?;
    let mut opts = Options::default();
    if staged {
        if let Ok(live) = std::fs::read(&store.live) {
            opts.running_version = edit::version_of(&live).ok().flatten();
        }
    }
    let report = crate::fence::validate_conf(&snap.bytes, &opts);
    if g.json {
        print_json(&serde_json::json!({ "file": snap.path, "valid": !report.has_errors() && report.well_formed, "report": report }))?;
    } else {
        print!("{}", report.render_human(&snap.path, "not well-formed"));
    }
    Ok(if !report.well_formed {
        2
    } else if report.has_errors() {
        1
    } else {
        0
    })
}

fn parse_or_exit2(snap: &crate::clusterconf::store::Snapshot) -> anyhow::Result<(Document, Model)> {
    Model::parse(&snap.bytes).map_err(|e| {
        Failure::new(2, format!("{}: not well-formed XML at line {}, column {}: {}", snap.path.display(), e.line, e.col, e.msg)).into()
    })
}

fn attrs_line(attrs: &[crate::clusterconf::model::AttrVal], skip: &[&str]) -> String {
    attrs
        .iter()
        .filter(|a| !skip.contains(&a.name.as_str()))
        .map(|a| format!("{}={}", a.name, a.display_value()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn section_line(label: &str, s: &Option<Section>) -> Option<String> {
    let s = s.as_ref()?;
    let mut line = format!("{label:<13} {}  (line {})", attrs_line(&s.attrs, &[]), s.loc.line);
    for c in &s.children {
        line.push_str(&format!("\n              <{}> {}", c.element, attrs_line(&c.attrs, &[])));
    }
    Some(line)
}

fn cmd_show(store: &ConfStore, staged: bool, g: &Global) -> anyhow::Result<i32> {
    let snap = read_snapshot(store, if staged { Which::Staged } else { Which::Live })?;
    let (_doc, m) = parse_or_exit2(&snap)?;
    if g.json {
        let fencing: Vec<_> = m.nodes.iter().filter_map(|n| m.fencing_for(n.name.as_deref()?)).collect();
        print_json(&serde_json::json!({ "file": snap.path, "model": m, "fencing": fencing }))?;
        return Ok(0);
    }
    println!(
        "cluster {} (config_version {})   {}",
        m.cluster_name().unwrap_or("(no name)"),
        m.config_version.as_ref().map(|v| v.value.as_str()).unwrap_or("(none)"),
        snap.path.display()
    );
    for l in [section_line("cman", &m.cman), section_line("totem", &m.totem), section_line("fence_daemon", &m.fence_daemon), section_line("logging", &m.logging)]
        .into_iter()
        .flatten()
    {
        println!("{l}");
    }
    if let Some(q) = &m.quorumd {
        println!("{:<13} {}  (line {})", "quorumd", attrs_line(&q.section.attrs, &[]), q.section.loc.line);
        for h in &q.heuristics {
            println!("              heuristic {}", attrs_line(&h.attrs, &[]));
        }
    }
    println!("nodes ({}):", m.nodes.len());
    for n in &m.nodes {
        println!("  {}  {}  (line {})", n.name.as_deref().unwrap_or("(no name)"), attrs_line(&n.attrs, &["name"]), n.loc.line);
        if n.methods.is_empty() {
            println!("      no fence method!");
        }
        for (i, mt) in n.methods.iter().enumerate() {
            println!("      method {} {:?}:", i + 1, mt.name.as_deref().unwrap_or(""));
            for d in &mt.devices {
                let agent = d.name.as_deref().and_then(|x| m.fencedevice(x)).and_then(|f| f.agent.as_deref()).unwrap_or("UNDEFINED");
                println!("        {} [{agent}] {}", d.name.as_deref().unwrap_or("?"), attrs_line(&d.attrs, &["name"]));
            }
        }
        for d in &n.unfence {
            println!("      unfence: {} {}", d.name.as_deref().unwrap_or("?"), attrs_line(&d.attrs, &["name"]));
        }
    }
    println!("fence devices ({}):", m.fencedevices.len());
    for d in &m.fencedevices {
        println!("  {}  {}  (line {})", d.name.as_deref().unwrap_or("(no name)"), attrs_line(&d.attrs, &["name"]), d.loc.line);
    }
    if let Some(rm) = &m.rm {
        println!("rm            present (line {}), passed through untouched", rm.line);
    }
    for (name, l) in &m.other {
        println!("{name:<13} (line {})", l.line);
    }
    Ok(0)
}

fn cmd_fencing(store: &ConfStore, node: &str, staged: bool, g: &Global) -> anyhow::Result<i32> {
    let snap = read_snapshot(store, if staged { Which::Staged } else { Which::Live })?;
    let (_doc, m) = parse_or_exit2(&snap)?;
    let Some(f) = m.fencing_for(node) else {
        let known: Vec<&str> = m.nodes.iter().filter_map(|n| n.name.as_deref()).collect();
        anyhow::bail!("no clusternode named {node:?} in {} (nodes: {})", snap.path.display(), known.join(", "));
    };
    if g.json {
        print_json(&f)?;
        return Ok(0);
    }
    println!("fencing of {node} (nodeid {}):", f.nodeid.map(|i| i.to_string()).unwrap_or("?".into()));
    if f.methods.is_empty() {
        println!("  no fence method: fenced would retry forever");
    }
    for (i, mt) in f.methods.iter().enumerate() {
        println!("  {}. method {:?}", i + 1, mt.name);
        for d in &mt.devices {
            let params: Vec<String> =
                d.params.iter().map(|(k, v)| format!("{k}={}", if is_secret_attr(k) { "********" } else { v })).collect();
            println!("     {} {}", d.agent.as_deref().unwrap_or("(undefined device)"), params.join(" "));
        }
    }
    Ok(0)
}

// ------------------------------------------------------------------ edits

fn version_str(bytes: &[u8]) -> String {
    match edit::version_of(bytes) {
        Ok(Some(v)) => v.to_string(),
        _ => "?".into(),
    }
}

/// Unified diff of two texts with secrets masked on both sides.
fn masked_diff(a: &[u8], b: &[u8], a_name: &str, b_name: &str) -> (String, Vec<String>) {
    let at = mask_secrets_lenient(&String::from_utf8_lossy(a));
    let bt = mask_secrets_lenient(&String::from_utf8_lossy(b));
    let diff = similar::TextDiff::from_lines(&at, &bt).unified_diff().context_radius(3).header(a_name, b_name).to_string();
    (diff, changed_secrets(a, b))
}

/// Secret attributes whose value differs (by element, its name= and the attribute): never values.
fn changed_secrets(a: &[u8], b: &[u8]) -> Vec<String> {
    fn secrets(bytes: &[u8]) -> Vec<(String, String)> {
        let Ok(d) = Document::parse_fragment(bytes) else { return Vec::new() };
        let mut out = Vec::new();
        for (id, n) in d.nodes.iter().enumerate() {
            if let Kind::Element(e) = &n.kind {
                for a in &e.attrs {
                    if is_secret_attr(&a.name) {
                        let owner = d.attr_value(id, "name").unwrap_or("");
                        out.push((format!("<{} name={owner:?}> {}", e.name, a.name), a.value.clone()));
                    }
                }
            }
        }
        out
    }
    let (sa, sb) = (secrets(a), secrets(b));
    let mut keys: Vec<&String> = sa.iter().chain(sb.iter()).map(|(k, _)| k).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| sa.iter().find(|(x, _)| x == *k).map(|p| &p.1) != sb.iter().find(|(x, _)| x == *k).map(|p| &p.1))
        .cloned()
        .collect()
}

fn print_diff(diff: &str, secrets: &[String]) {
    print!("{diff}");
    for s in secrets {
        println!("# secret changed (value not shown): {s}");
    }
}

fn do_edit(store: &ConfStore, opts: &EditOpts, op: Op, g: &Global) -> anyhow::Result<i32> {
    let which = Which::EditTarget { in_place: opts.in_place };
    if opts.dry_run {
        let snap = read_snapshot(store, which)?;
        let new = edit::apply(&snap.bytes, &op, opts.expect_version).map_err(edit_failure)?;
        let (diff, secrets) = masked_diff(&snap.bytes, &new, &snap.path.display().to_string(), &snap.target.display().to_string());
        if g.json {
            print_json(&serde_json::json!({"dry_run": true, "op": op.describe(), "source": snap.path, "target": snap.target, "old_version": version_str(&snap.bytes), "new_version": version_str(&new), "diff": diff, "secrets_changed": secrets}))?;
        } else {
            println!("dry run: {} would write {} (config_version {} -> {})", op.describe(), snap.target.display(), version_str(&snap.bytes), version_str(&new));
            print_diff(&diff, &secrets);
        }
        return Ok(0);
    }
    if !store.live.exists() && !store.staged().exists() {
        return Err(Failure::new(
            2,
            format!("{} does not exist; create it with `twonode conf init --name NAME --node N1 --node N2 --file {}`", store.live.display(), store.live.display()),
        )
        .into());
    }
    let expect = opts.expect_version;
    let outcome = store
        .edit(opts.in_place, |bytes| edit::apply(bytes, &op, expect).map_err(edit_failure))
        .map_err(store_failure)?;
    let report = crate::fence::validate_conf(&outcome.new, &Options::default());
    if g.json {
        print_json(&serde_json::json!({
            "op": op.describe(), "source": outcome.source, "target": outcome.target,
            "old_version": version_str(&outcome.old), "new_version": version_str(&outcome.new),
            "validation": {"errors": report.errors, "warnings": report.warnings},
        }))?;
    } else {
        println!(
            "{}: wrote {} (config_version {} -> {})",
            op.describe(),
            outcome.target.display(),
            version_str(&outcome.old),
            version_str(&outcome.new)
        );
        let (diff, secrets) = masked_diff(&outcome.old, &outcome.new, &outcome.source.display().to_string(), &outcome.target.display().to_string());
        print_diff(&diff, &secrets);
        for d in report.diagnostics.iter().filter(|d| d.severity == Severity::Error) {
            println!("{}:{d}", outcome.target.display());
        }
        println!("validation: {} error(s), {} warning(s) (`twonode conf validate{}` for details)", report.errors, report.warnings, if opts.in_place { "" } else { " --staged" });
        if !opts.in_place {
            println!("review with `twonode conf diff`, activate with `twonode conf apply`, drop with `twonode conf revert`");
        }
    }
    Ok(0)
}

fn cmd_init(store: &ConfStore, spec: &InitSpec, in_place: bool, force: bool, g: &Global) -> anyhow::Result<i32> {
    let text = edit::skeleton(spec).map_err(edit_failure)?;
    let target = if in_place { store.live.clone() } else { store.staged() };
    {
        let _lock = store.lock()?;
        if target.exists() && !force {
            anyhow::bail!("{} already exists; pass --force to overwrite it (or edit it with the other conf commands)", target.display());
        }
        atomic_write(&target, text.as_bytes(), None)?;
    }
    if g.json {
        print_json(&serde_json::json!({"target": target, "config_version": 1}))?;
    } else {
        println!("wrote {} (config_version 1)", target.display());
        println!("next: add fence devices (`twonode conf device add`) and bind each node (`twonode conf bind`)");
    }
    Ok(0)
}

// ------------------------------------------------------------------ staging

/// What `diff` says when there is no staged file (shared with `quorum diff`).
pub(super) fn nothing_staged(staged_path: &std::path::Path, g: &Global) -> anyhow::Result<i32> {
    if g.json {
        print_json(&serde_json::json!({"staged": false, "changed": false, "diff": ""}))?;
    } else {
        println!("nothing staged ({} does not exist)", staged_path.display());
    }
    Ok(0)
}

fn cmd_diff(store: &ConfStore, g: &Global) -> anyhow::Result<i32> {
    let staged_path = store.staged();
    let Some((live, staged)) = store.staged_pair() else {
        return nothing_staged(&staged_path, g);
    };
    let (diff, secrets) = masked_diff(&live, &staged, &store.live.display().to_string(), &staged_path.display().to_string());
    if g.json {
        print_json(&serde_json::json!({
            "staged": true, "changed": live != staged, "live": store.live, "staged_file": staged_path,
            "live_version": version_str(&live), "staged_version": version_str(&staged),
            "diff": diff, "secrets_changed": secrets,
        }))?;
    } else if live == staged {
        println!("{} is identical to {}", staged_path.display(), store.live.display());
    } else {
        print_diff(&diff, &secrets);
    }
    Ok(0)
}

fn cmd_apply(store: &ConfStore, reload: Option<&str>, force: bool, g: &Global) -> anyhow::Result<i32> {
    let mut report_out: Option<Report> = None;
    let outcome = store.apply(
        |staged, live| {
            let running = live.and_then(|l| edit::version_of(l).ok().flatten());
            let report = crate::fence::validate_conf(staged, &Options { running_version: running, ..Default::default() });
            let verdict = crate::clusterconf::validate::may_apply(&report, force, &store.staged());
            report_out = Some(report);
            verdict.map_err(|refusal| anyhow::anyhow!(refusal))?;
            Ok(())
        },
        reload,
    )?;
    let report = report_out;
    if g.json {
        print_json(&serde_json::json!({"applied": true, "outcome": outcome, "warnings": report.as_ref().map(|r| r.warnings)}))?;
    } else {
        println!("applied: {} replaced atomically", outcome.live.display());
        if let Some(b) = &outcome.backup {
            println!("previous version kept in {}", b.display());
        }
        if let Some(r) = &report {
            if r.warnings > 0 {
                println!("{} warning(s): `twonode conf validate` lists them", r.warnings);
            }
        }
        if let Some(h) = &outcome.hook {
            println!("reload `{}`: {}", h.command, if h.success { "ok" } else { "FAILED" });
            if !h.output.trim().is_empty() {
                println!("{}", h.output.trim_end());
            }
        } else {
            println!("not reloaded: run `cman_tool version -r` (or pass --reload) so cman picks it up");
        }
    }
    Ok(match &outcome.hook {
        Some(h) if !h.success => 1,
        _ => 0,
    })
}

fn cmd_revert(store: &ConfStore, g: &Global) -> anyhow::Result<i32> {
    let dropped = store.revert()?;
    if g.json {
        print_json(&serde_json::json!({"reverted": dropped, "staged_file": store.staged()}))?;
    } else if dropped {
        println!("dropped {}", store.staged().display());
    } else {
        println!("nothing staged ({} does not exist)", store.staged().display());
    }
    Ok(0)
}

fn cmd_status(store: &ConfStore, g: &Global) -> anyhow::Result<i32> {
    let live = std::fs::read(&store.live).ok();
    let staged = std::fs::read(store.staged()).ok();
    let live_v = live.as_deref().map(version_str);
    let staged_v = staged.as_deref().map(version_str);
    let staged_report = staged.as_deref().map(|s| {
        let running = live.as_deref().and_then(|l| edit::version_of(l).ok().flatten());
        crate::fence::validate_conf(s, &Options { running_version: running, ..Default::default() })
    });
    let live_report = live.as_deref().map(|l| crate::fence::validate_conf(l, &Options::default()));
    if g.json {
        print_json(&serde_json::json!({
            "live": store.live, "live_exists": live.is_some(), "live_version": live_v,
            "live_errors": live_report.as_ref().map(|r| r.errors), "live_warnings": live_report.as_ref().map(|r| r.warnings),
            "staged": store.staged(), "staged_exists": staged.is_some(), "staged_version": staged_v,
            "staged_errors": staged_report.as_ref().map(|r| r.errors), "staged_warnings": staged_report.as_ref().map(|r| r.warnings),
        }))?;
        return Ok(0);
    }
    match (&live_v, &live_report) {
        (Some(v), Some(r)) => println!("live    {}  config_version {v}  ({} error(s), {} warning(s))", store.live.display(), r.errors, r.warnings),
        _ => println!("live    {}  (missing)", store.live.display()),
    }
    match (&staged_v, &staged_report) {
        (Some(v), Some(r)) => {
            println!("staged  {}  config_version {v}  ({} error(s), {} warning(s))", store.staged().display(), r.errors, r.warnings);
            println!("        `twonode conf diff` to review, `twonode conf apply` to activate, `twonode conf revert` to drop");
        }
        _ => println!("staged  nothing ({} does not exist)", store.staged().display()),
    }
    Ok(0)
}
