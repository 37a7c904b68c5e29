//! `twonode drbd recover` and `twonode drbd status`: command-line surface of the guided recovery
//! (logic in `crate::drbd::recover`, `crate::drbd::journal`, `crate::host`).
use super::Global;
use crate::drbd::journal::{self, Journal};
use crate::drbd::recover::{self, exit, Allow, NodeView, Plan, Refusal};
use crate::drbd::run::{self, Event, Mode, Recovery};
use crate::host::{HostKeyPolicy, Host, Local, Ssh, SshTarget};
use anyhow::{bail, Context, Result};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

/// How to reach the two nodes.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct NodeArgs {
    /// A node and how to reach it: NAME=local, NAME=[user@]host[:port], or NAME=lab:DIR (a node of
    /// `twonode lab drbd-kernel --state DIR`). Repeat for both nodes.
    /// Without it, the hosts of `drbdadm dump RESOURCE` are used (this host locally, the other as
    /// root@NAME over SSH).
    #[arg(long = "node", value_name = "NAME=TARGET")]
    pub nodes: Vec<String>,
    /// SSH private key (key authentication only).
    #[arg(long, env = "TWONODE_SSH_IDENTITY")]
    pub identity: Option<PathBuf>,
    /// known_hosts file the nodes' host keys are checked against (default ~/.ssh/known_hosts).
    #[arg(long, env = "TWONODE_SSH_KNOWN_HOSTS")]
    pub known_hosts: Option<PathBuf>,
    /// Add host keys not seen before to known_hosts (a CHANGED key is still refused).
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// Seconds an SSH connect or command may take.
    #[arg(long, default_value_t = 20)]
    pub ssh_timeout: u64,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  twonode drbd recover r0 --discard bob --dry-run --node alice=root@10.0.0.1 --node bob=root@10.0.0.2
  twonode drbd recover r0 --discard bob              interactive: evidence, then a question per destructive step
  twonode drbd recover r0 --discard bob --yes --json unattended, one JSON object per step
  twonode drbd recover r0 --resume                   continue an interrupted recovery
  twonode drbd recover r0 --discard bob --dry-run --cib cib.xml   rehearse on a CIB copy

Under pacemaker (an ocf:linbit:drbd clone of RESOURCE in the CIB; --cib auto asks cibadmin -Q
on the survivor) the plan unmanages the clone first, removes a stale fence-by-handler
constraint once both sides are UpToDate, cleans up, hands the clone back and waits until
pacemaker runs it Promoted on the survivor (docs/pacemaker.md).

Exit codes: 0 recovered or nothing to do; 1 a step failed (journal kept, fix and --resume);
2 refused before changing anything; 4 declined at a prompt.")]
pub struct RecoverArgs {
    /// The DRBD resource.
    pub resource: String,
    /// The node whose changes since the split are DISCARDED (twonode never picks it for you).
    #[arg(long, value_name = "NODE", required_unless_present = "resume")]
    pub discard: Option<String>,
    /// Print the plan as a runbook (a shell script) and change nothing.
    #[arg(long, conflicts_with_all = ["yes", "resume"])]
    pub dry_run: bool,
    /// Run unattended: no questions.
    #[arg(long)]
    pub yes: bool,
    /// Continue an interrupted recovery from its journal.
    #[arg(long)]
    pub resume: bool,
    /// Refuse unless the nodes' state still has this fingerprint (printed by --dry-run).
    #[arg(long, value_name = "FP")]
    pub expect_fingerprint: Option<String>,
    /// Go on although the victim changed more data than the survivor (that data is lost).
    #[arg(long)]
    pub accept_loss: bool,
    /// Directory of the recovery journal.
    #[arg(long, env = "TWONODE_JOURNAL_DIR", default_value = journal::DEFAULT_DIR)]
    pub journal_dir: PathBuf,
    /// Longest wait for the victim's resync, seconds.
    #[arg(long, default_value_t = 3600)]
    pub resync_timeout: u64,
    /// Pacemaker's CIB: `auto` (use `cibadmin -Q` on the survivor when it answers), `live` (the
    /// same, required), or a FILE: the plan reads it and the pacemaker steps act on it through
    /// CIB_file on this machine (a rehearsal on a copy; the lab).
    #[arg(long, value_name = "FILE|live|auto", default_value = "auto")]
    pub cib: String,
    /// How the plan keeps pacemaker out of the way: unmanage the DRBD clone only, or the whole
    /// cluster's maintenance-mode.
    #[arg(long, value_enum, default_value = "unmanage")]
    pub hands_off: crate::pacemaker::drbd::HandsOff,
    /// Longest wait for pacemaker to promote the survivor after the hand-back, seconds.
    #[arg(long, default_value_t = crate::pacemaker::drbd::PROMOTE_WAIT_S)]
    pub promote_timeout: u64,
    #[command(flatten)]
    pub nodes: NodeArgs,
}

/// The CIB the recovery reads, and the file the pacemaker steps act on (None: the live cluster).
struct CibIn {
    text: String,
    file: Option<PathBuf>,
}

/// Read the CIB per `--cib` (on `node` when live). None: pacemaker does not run there (auto).
fn read_cib(spec: &str, hosts: &mut [Box<dyn Host>], node: &str) -> Result<Option<CibIn>> {
    match spec {
        "auto" | "live" => {
            let Some(h) = hosts.iter_mut().find(|h| h.name() == node) else { bail!("no connection to {node}") };
            let out = h.run(&["sh", "-c", &crate::pacemaker::drbd::detect_script()], None)?;
            let text = out.stdout_str();
            if out.success() && text.trim_start().starts_with("<cib") {
                Ok(Some(CibIn { text, file: None }))
            } else if spec == "live" {
                bail!("--cib live: `cibadmin -Q` on {node} did not answer (exit {}): is pacemaker running there?", out.status)
            } else {
                Ok(None)
            }
        }
        file => {
            let p = std::fs::canonicalize(file).with_context(|| format!("--cib {file}: no such file"))?;
            let text = std::fs::read_to_string(&p).with_context(|| format!("reading --cib {}", p.display()))?;
            Ok(Some(CibIn { text, file: Some(p) }))
        }
    }
}

/// The clone and primitive ids pacemaker manages `resource` as, from the CIB.
fn managed_ids(cib: &CibIn, resource: &str) -> Result<Option<(String, String)>> {
    let parsed = crate::pacemaker::parse(&cib.text).map_err(|e| anyhow::anyhow!("the CIB: {e}"))?;
    Ok(crate::pacemaker::drbd::managed_by(&parsed, resource).map(|c| (c.clone_id.clone(), c.primitive_id.clone())))
}

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  twonode drbd status r0 --node alice=root@10.0.0.1 --node bob=root@10.0.0.2
  twonode drbd status --json --node alice=local --node bob=root@bob

Exit codes: 0 every resource healthy; 1 otherwise (or a node unreachable).")]
pub struct StatusArgs {
    /// Resource (default: every resource the nodes know).
    pub resource: Option<String>,
    #[command(flatten)]
    pub nodes: NodeArgs,
}

/// Build the hosts from --node, or from `drbdadm dump`.
pub fn make_hosts(a: &NodeArgs, resource: Option<&str>) -> Result<Vec<Box<dyn Host>>> {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    let identity = a.identity.clone().unwrap_or_else(|| {
        let ed = home.join(".ssh/id_ed25519");
        if ed.exists() { ed } else { home.join(".ssh/id_rsa") }
    });
    let known_hosts = a.known_hosts.clone().unwrap_or_else(|| home.join(".ssh/known_hosts"));
    let policy = if a.accept_new_host_keys { HostKeyPolicy::AcceptNew } else { HostKeyPolicy::Strict };
    let mut specs: Vec<(String, String)> = Vec::new();
    for n in &a.nodes {
        let (name, target) = n.split_once('=').with_context(|| format!("--node {n}: expected NAME=local or NAME=[user@]host[:port]"))?;
        specs.push((name.to_string(), target.to_string()));
    }
    if specs.is_empty() {
        specs = nodes_from_dump(resource)?;
    }
    let mut out: Vec<Box<dyn Host>> = Vec::new();
    for (name, target) in specs {
        if target == "local" {
            out.push(Box::new(Local::new(name)));
        } else if let Some(dir) = target.strip_prefix("lab:") {
            // A node of `twonode lab drbd-kernel`: run locally with that node's tools first in PATH.
            let tools = crate::lab::drbd_sim::node_tools(std::path::Path::new(dir), &name);
            let path = format!("{}:{}", tools.bin.display(), std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into()));
            let mut l = Local::new(name);
            l.env.push(("PATH".into(), path));
            out.push(Box::new(l));
        } else {
            let (user, host, port) = SshTarget::parse(&name, &target)?;
            out.push(Box::new(Ssh::new(SshTarget {
                node: name,
                user,
                host,
                port,
                identity: identity.clone(),
                known_hosts: known_hosts.clone(),
                policy,
                timeout: Duration::from_secs(a.ssh_timeout.max(1)),
            })));
        }
    }
    if out.len() != 2 {
        bail!("a two-node resource needs exactly two nodes, got {} (use --node NAME=TARGET twice)", out.len());
    }
    Ok(out)
}

/// Hosts of `drbdadm dump RESOURCE`: this host locally, the other one as root@NAME over SSH.
fn nodes_from_dump(resource: Option<&str>) -> Result<Vec<(String, String)>> {
    let mut local = Local::new("local");
    let mut argv = vec!["drbdadm", "dump"];
    if let Some(r) = resource {
        argv.push(r);
    }
    let out = local.run(&argv, None).context("running `drbdadm dump` to find the nodes; or name them with --node")?;
    if !out.success() {
        bail!("`drbdadm dump` failed ({}); name the nodes with --node NAME=TARGET", out.stderr_str().trim());
    }
    let st = crate::drbd::parse::parse_auto(&out.stdout_str()).map_err(|e| anyhow::anyhow!("reading `drbdadm dump`: {e}"))?;
    let me = nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default();
    let short = me.split('.').next().unwrap_or("").to_string();
    let cfg = match resource {
        Some(r) => st.config(r).cloned(),
        None => st.configs.first().cloned(),
    }
    .context("`drbdadm dump` shows no such resource; name the nodes with --node")?;
    Ok(cfg
        .hosts
        .iter()
        .map(|h| {
            let t = if h.name == me || h.name == short { "local".to_string() } else { format!("root@{}", h.name) };
            (h.name.clone(), t)
        })
        .collect())
}

fn print_event(e: &Event, json: bool) {
    if json {
        println!("{}", serde_json::to_string(e).unwrap_or_default());
        return;
    }
    let mark = match e.status.as_str() {
        "done" | "recovered" => "ok ",
        "skipped" => "-- ",
        _ => "!! ",
    };
    let node = e.node.as_deref().map(|n| format!("[{n}] ")).unwrap_or_default();
    println!("{mark}{node}{}", e.message);
}

fn refuse(r: &Refusal, json: bool) -> i32 {
    if json {
        println!("{}", serde_json::json!({"event":"refused","status": if r.nothing_to_do {"nothing-to-do"} else {"refused"}, "kind": r.kind, "message": r.reason, "fix": r.fix}));
    } else if r.nothing_to_do {
        println!("{}\n  {}", r.reason, r.fix);
    } else {
        eprintln!("twonode: refused ({}): {}\n  fix: {}", r.kind, r.reason, r.fix);
    }
    if r.nothing_to_do { exit::OK } else { exit::REFUSED }
}

/// The evidence table and the data to be lost, shown before anything runs.
fn evidence_text(plan_victim: &str, views: &[NodeView], words: &[String]) -> String {
    let mut s = String::new();
    for v in views {
        s.push_str(&format!(
            "  {:<8} role {:<10} connection {:<13}{}\n",
            v.node,
            v.role.as_deref().unwrap_or("?"),
            v.cstate.as_deref().unwrap_or("?"),
            if v.node == plan_victim { "  <- victim: its changes are DISCARDED" } else { "  <- survivor: its data is kept" }
        ));
        for vol in &v.volumes {
            s.push_str(&format!(
                "           volume {} disk {:<12} gi {}  changed since split {} KiB{}\n",
                vol.volume,
                vol.disk.as_deref().unwrap_or("?"),
                vol.gi.map(|g| g.tuple_string()).unwrap_or_else(|| "?".into()),
                vol.oos_kib.map(|k| k.to_string()).unwrap_or_else(|| "?".into()),
                if vol.open == Some(true) { "  OPEN" } else { "" }
            ));
        }
    }
    for w in words {
        s.push_str(&format!("  {w}\n"));
    }
    s
}

fn loss_line(plan: &Plan) -> String {
    let total: Option<u64> = plan.loss_kib.iter().map(|(_, k)| *k).sum();
    let per: Vec<String> = plan
        .loss_kib
        .iter()
        .map(|(v, k)| format!("volume {v}: {}", k.map(|k| format!("{k} KiB ({} blocks of 4 KiB)", k.div_ceil(4))).unwrap_or_else(|| "unknown".into())))
        .collect();
    format!(
        "DATA THAT WILL BE LOST on {}: {} ({})",
        plan.victim,
        total.map(|t| format!("{t} KiB")).unwrap_or_else(|| "unknown amount".into()),
        per.join(", ")
    )
}

/// Ask a yes/no question on the terminal.
fn ask(q: &str) -> bool {
    eprint!("{q} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim(), "y" | "Y" | "yes" | "YES")
}

pub fn run_recover(a: RecoverArgs, g: &Global) -> Result<i32> {
    let json = g.json;
    let interactive = !a.yes && !a.dry_run;
    if interactive && !std::io::stdin().is_terminal() {
        return Ok(refuse(
            &Refusal {
                kind: "no-terminal".into(),
                reason: "no terminal to ask the questions on".into(),
                fix: "look at the plan with --dry-run, then run it unattended with --yes".into(),
                nothing_to_do: false,
            },
            json,
        ));
    }
    let mut boxed = make_hosts(&a.nodes, Some(&a.resource))?;
    let names: Vec<String> = boxed.iter().map(|h| h.name().to_string()).collect();

    // Resume: the plan comes from the journal.
    let (plan, journal) = if a.resume {
        let j = Journal::resume(&a.journal_dir, &a.resource)?;
        if let Some(d) = &a.discard {
            if d != &j.data.plan.victim {
                bail!(
                    "the interrupted recovery discards {}, not {d}; resume it as it was planned (omit --discard) or finish it first",
                    j.data.plan.victim
                );
            }
        }
        (j.data.plan.clone(), Some(j))
    } else {
        let victim = a.discard.clone().unwrap_or_default();
        if !names.contains(&victim) {
            bail!("--discard {victim}: not one of the nodes ({})", names.join(", "));
        }
        if let Some(old) = Journal::peek(&a.journal_dir, &a.resource)? {
            if !old.finished && !a.dry_run {
                return Ok(refuse(
                    &Refusal {
                        kind: "journal-exists".into(),
                        reason: format!(
                            "an interrupted recovery of {} (discarding {}) is recorded in {}",
                            a.resource,
                            old.plan.victim,
                            journal::path_for(&a.journal_dir, &a.resource).display()
                        ),
                        fix: format!("continue it: twonode drbd recover {} --resume", a.resource),
                        nothing_to_do: false,
                    },
                    json,
                ));
            }
        }
        let survivor = names.iter().find(|n| **n != victim).cloned().unwrap_or_default();
        let mut views = Vec::new();
        let mut inputs = Vec::new();
        for h in boxed.iter_mut() {
            let (v, i) = run::read_node(h.as_mut(), &a.resource)?;
            views.push(v);
            inputs.push(i);
        }
        let vv = views.iter().find(|v| v.node == victim).cloned().unwrap_or_default();
        let sv = views.iter().find(|v| v.node == survivor).cloned().unwrap_or_default();
        // The project's split-brain classification, from the victim's side: evidence + recommendation.
        let vi = inputs.iter().position(|i| i.name == victim).unwrap_or(0);
        let si = 1 - vi.min(1);
        let rv = crate::drbd::splitbrain::classify_resource(
            &a.resource,
            &inputs[vi],
            &inputs[si],
            &crate::drbd::splitbrain::Options { service_on: None, resource: Some(a.resource.clone()) },
        );
        // recovery decides on the split-brain classifier's verdict; the sentences describe the views
        let verdict = recover::Verdict::from(rv.verdict);
        let words = recover::explain(&vv, &sv);
        let fp = recover::fingerprint(&views);
        if let Some(expect) = &a.expect_fingerprint {
            if expect != &fp {
                return Ok(refuse(
                    &Refusal {
                        kind: "stale-plan".into(),
                        reason: format!("the nodes' state changed since the plan was made (fingerprint {fp}, plan made from {expect})"),
                        fix: format!("make a new plan: twonode drbd recover {} --discard {victim} --dry-run", a.resource),
                        nothing_to_do: false,
                    },
                    json,
                ));
            }
        }
        // The data the victim would lose is shown first, whatever happens next.
        let loss: Vec<(u32, Option<u64>)> = vv.volumes.iter().map(|x| (x.volume, x.oos_kib)).collect();
        if json {
            println!(
                "{}",
                serde_json::json!({"event":"evidence","status":"read","verdict":verdict,"explanation":words,"fingerprint":fp,"victim":victim,"survivor":survivor,"loss_kib":loss,"nodes":views,"split_brain":rv})
            );
        } else {
            println!("DRBD resource {}: {:?}", a.resource, verdict);
            print!("{}", evidence_text(&victim, &views, &words));
            let rep = crate::drbd::splitbrain::Report { local: victim.clone(), peer: survivor.clone(), resources: vec![rv.clone()] };
            let ev = crate::drbd::splitbrain::render(&rep);
            let ev: String = ev.lines().skip_while(|l| !l.starts_with(" evidence:")).map(|l| format!("{l}\n")).collect();
            print!("{ev}");
            let tmp = Plan { resource: a.resource.clone(), victim: victim.clone(), survivor: survivor.clone(), generation: String::new(), fingerprint: fp.clone(), loss_kib: loss.clone(), steps: vec![], managed_by: None, notes: vec![] };
            if verdict == recover::Verdict::SplitBrain {
                println!("{}", loss_line(&tmp));
            }
        }
        if let Err(r) = recover::assess(&a.resource, &vv, &sv, verdict, &Allow { wrong_victim: a.accept_loss }) {
            return Ok(refuse(&r, json));
        }
        if let Some(rec) = rv.recommendation.as_ref().filter(|r| r.victim != victim && !a.accept_loss) {
            return Ok(refuse(
                &Refusal {
                    kind: "wrong-victim".into(),
                    reason: format!(
                        "the evidence points at {} as the victim, not {victim}: {}",
                        rec.victim,
                        rec.reasons.join("; ")
                    ),
                    fix: format!(
                        "run with --discard {}; if {victim}'s changes really are the ones to lose, confirm with --accept-loss",
                        rec.victim
                    ),
                    nothing_to_do: false,
                },
                json,
            ));
        }
        let mut plan = recover::plan(&a.resource, &vv, &sv);
        // Pacemaker: refuse when it would fight, else keep it out of the way around the DRBD steps.
        if let Some(cib) = read_cib(&a.cib, &mut boxed, &survivor)? {
            let parsed = crate::pacemaker::parse(&cib.text).map_err(|e| anyhow::anyhow!("the CIB: {e}"))?;
            match crate::pacemaker::drbd::assess(&parsed, &cib.text, &a.resource, &victim, &survivor) {
                Err(r) => return Ok(refuse(&r, json)),
                Ok(Some(m)) => {
                    let from = cib.file.as_ref().map(|f| format!("CIB file {} (the pacemaker steps act on it through CIB_file)", f.display())).unwrap_or_else(|| format!("the live cluster (cibadmin -Q on {survivor})"));
                    if json {
                        println!("{}", serde_json::json!({"event":"pacemaker","status":"managed","clone":m.clone_id,"primitive":m.primitive_id,"cib":from,"hands_off_already":m.hands_off_already,"stale_constraints":m.stale_constraints}));
                    } else {
                        println!("pacemaker manages {} as {} (CIB from {from}): the plan keeps pacemaker out of the way", a.resource, m.clone_id);
                    }
                    plan = crate::pacemaker::drbd::wrap(plan, &m, a.hands_off, a.promote_timeout);
                    if let Some(f) = &cib.file {
                        plan.notes.push(format!("the pacemaker commands act on the CIB file {} (CIB_file), not on a running cluster", f.display()));
                    }
                }
                Ok(None) => {}
            }
        }
        if a.dry_run {
            // Show what drbdadm makes of each command on its node (drbdadm -d: nothing runs).
            for st in plan.steps.iter_mut().filter(|s| !s.argv.is_empty() && !s.cluster) {
                let mut argv: Vec<&str> = vec!["drbdadm", "-d"];
                argv.extend(st.argv[1..].iter().map(String::as_str));
                if let Some(h) = boxed.iter_mut().find(|h| h.name() == st.node) {
                    if let Ok(o) = h.run(&argv, None) {
                        st.expands_to = o.stdout_str().lines().filter(|l| !l.trim().is_empty()).map(String::from).collect();
                        if !o.success() {
                            st.expands_to.push(format!("drbdadm -d FAILED: {}", o.stderr_str().trim()));
                        }
                    }
                }
            }
            if json {
                println!("{}", serde_json::json!({"event":"plan","status":"dry-run","plan":plan}));
            } else {
                print!("\n{}", recover::runbook(&plan, &vv, &sv, &words));
                let cib = if a.cib == "auto" { String::new() } else { format!(" --cib {}", a.cib) };
                println!("\n# to run it with twonode: twonode drbd recover {} --discard {} --yes --expect-fingerprint {}{cib}", a.resource, victim, plan.fingerprint);
            }
            return Ok(exit::OK);
        }
        if interactive {
            println!("\nPlan ({} steps):", plan.steps.len());
            for (i, s) in plan.steps.iter().enumerate() {
                println!("  {}. [{}] {}{}", i + 1, s.node, s.title, if s.argv.is_empty() { String::new() } else { format!(": {}", s.argv.join(" ")) });
            }
            eprint!("Type the name of the node whose changes are discarded to go on: ");
            let _ = std::io::stderr().flush();
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).ok();
            if line.trim() != victim {
                println!("not confirmed ({:?} is not {victim}); nothing was changed", line.trim());
                return Ok(exit::DECLINED);
            }
            // The state may have moved while the admin read: plan again only if it did not.
            let mut again = Vec::new();
            for h in boxed.iter_mut() {
                again.push(run::read_view(h.as_mut(), &a.resource)?);
            }
            if recover::fingerprint(&again) != plan.fingerprint {
                return Ok(refuse(
                    &Refusal {
                        kind: "stale-plan".into(),
                        reason: "the nodes' state changed while the plan was on screen".into(),
                        fix: "run the command again to see the new state and plan".into(),
                        nothing_to_do: false,
                    },
                    json,
                ));
            }
        }
        let j = Journal::create(&a.journal_dir, &plan)?;
        if json {
            println!("{}", serde_json::json!({"event":"plan","status":"running","plan":plan,"journal":j.path()}));
        }
        (plan, Some(j))
    };

    let Some(journal) = journal else { bail!("internal: no journal") };
    if !json && a.resume {
        println!("resuming the recovery of {} (discarding {}) from {}", plan.resource, plan.victim, journal.path().display());
    }
    let mut report = |e: &Event| print_event(e, json);
    let mut confirm = |q: &str| ask(q);
    // Pacemaker: the plan's pacemaker steps run on the survivor (or against the CIB file).
    let mut crm_ids: Option<(String, String)> = None;
    let mut crm_file_host: Option<Local> = None;
    if plan.managed_by.is_some() {
        let Some(cib) = read_cib(&a.cib, &mut boxed, &plan.survivor)? else {
            bail!("the plan keeps pacemaker out of the way, but `cibadmin -Q` does not answer on {}: give the CIB with --cib live or --cib FILE as when it was made", plan.survivor)
        };
        crm_ids = managed_ids(&cib, &plan.resource)?;
        if crm_ids.is_none() {
            bail!("the plan keeps pacemaker out of the way of {:?}, but the CIB has no ocf:linbit:drbd resource for {} any more", plan.managed_by, plan.resource);
        }
        if let Some(f) = &cib.file {
            let mut l = Local::new(plan.survivor.clone());
            l.env.push(("CIB_file".into(), f.display().to_string()));
            crm_file_host = Some(l);
        }
    }
    let (clone_id, prim_id) = crm_ids.clone().unwrap_or_default();
    let read_crm = move |out: &str| crate::pacemaker::drbd::crm_view(out, &clone_id, &prim_id);
    let crm = crm_ids.as_ref().map(|_| run::CrmLink {
        host: crm_file_host.as_mut().map(|h| h as &mut dyn Host),
        probe: crate::pacemaker::drbd::probe_script(),
        read: &read_crm,
        node: plan.survivor.clone(),
        wait: Duration::from_secs(a.promote_timeout),
    });
    let hosts: Vec<&mut dyn Host> = boxed.iter_mut().map(|b| b.as_mut() as &mut dyn Host).collect();
    let mut rec = Recovery {
        resource: a.resource.clone(),
        hosts,
        mode: if a.yes { Mode::Yes } else { Mode::Interactive },
        journal,
        report: &mut report,
        confirm: &mut confirm,
        settle: Duration::from_secs(10),
        resync_timeout: Duration::from_secs(a.resync_timeout),
        progress: !json && std::io::stderr().is_terminal(),
        crm,
    };
    let code = rec.execute(&plan);
    drop(rec);
    let trips: u64 = boxed.iter().map(|h| h.round_trips()).sum();
    tracing::info!("round trips: {trips}");
    if std::env::var_os("TWONODE_REPORT_TRIPS").is_some() {
        eprintln!("twonode: round trips: {trips}");
    }
    match code {
        Ok(c) => Ok(c),
        Err(e) => {
            print_event(
                &Event {
                    event: "result".into(),
                    step: None,
                    node: None,
                    command: None,
                    status: "failed".into(),
                    message: format!("{e:#}; the journal is kept: fix the cause, then `twonode drbd recover {} --resume`", a.resource),
                    exit_status: None,
                    elapsed_ms: None,
                },
                json,
            );
            Ok(exit::FAILED)
        }
    }
}

pub fn run_status(a: StatusArgs, g: &Global) -> Result<i32> {
    let mut hosts = make_hosts(&a.nodes, a.resource.as_deref())?;
    let res = a.resource.clone().unwrap_or_else(|| "all".into());
    let mut per_node: Vec<(String, crate::drbd::state::DrbdState)> = Vec::new();
    for h in hosts.iter_mut() {
        let name = h.name().to_string();
        let script = if res == "all" {
            "echo '# drbdsetup events2 --now --statistics'; drbdsetup events2 --now --statistics 2>/dev/null; true".to_string()
        } else {
            run::probe_script(&res)
        };
        let out = h.run(&["sh", "-c", &script], None)?;
        let st = run::parse_probe(&out.stdout_str()).with_context(|| format!("{name}: reading DRBD state"))?;
        per_node.push((name, st));
    }
    let mut names: Vec<String> = per_node.iter().flat_map(|(_, s)| s.resources.iter().map(|r| r.name.clone())).collect();
    names.sort();
    names.dedup();
    if res != "all" {
        names = vec![res.clone()];
    }
    let mut all = Vec::new();
    let mut unhealthy = false;
    for r in &names {
        let views: Vec<NodeView> = per_node.iter().map(|(n, s)| NodeView::from_state(n, r, s)).collect();
        let (verdict, words) = if views.len() == 2 { recover::classify(&views[0], &views[1]) } else { (recover::Verdict::Unknown, vec![]) };
        unhealthy |= verdict != recover::Verdict::Healthy;
        if g.json {
            all.push(serde_json::json!({"resource": r, "verdict": verdict, "explanation": words, "nodes": views}));
        } else {
            println!("{r}: {verdict:?}");
            println!("  {:<8} {:<10} {:<13} {:>3} {:<13} {:<13} {:<12} {:>10} {:>6}", "NODE", "ROLE", "CONNECTION", "VOL", "DISK", "PEER-DISK", "REPLICATION", "OOS-KiB", "OPEN");
            for v in &views {
                if !v.present {
                    println!("  {:<8} (resource not configured)", v.node);
                }
                for vol in &v.volumes {
                    println!(
                        "  {:<8} {:<10} {:<13} {:>3} {:<13} {:<13} {:<12} {:>10} {:>6}",
                        v.node,
                        v.role.as_deref().unwrap_or("?"),
                        v.cstate.as_deref().unwrap_or("?"),
                        vol.volume,
                        vol.disk.as_deref().unwrap_or("?"),
                        vol.peer_disk.as_deref().unwrap_or("?"),
                        match (vol.replication.as_deref(), vol.done_percent) {
                            (Some(r), Some(d)) => format!("{r} {d:.1}%"),
                            (Some(r), None) => r.to_string(),
                            _ => "?".into(),
                        },
                        vol.oos_kib.map(|k| k.to_string()).unwrap_or_else(|| "?".into()),
                        match vol.open { Some(true) => "yes", Some(false) => "no", None => "?" }
                    );
                }
            }
            for w in &words {
                println!("  {w}");
            }
        }
    }
    if g.json {
        crate::util::print_json(&all)?;
    }
    Ok(if unhealthy { 1 } else { 0 })
}
