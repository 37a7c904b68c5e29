//! The driver of a split-brain recovery: reads each node's DRBD state over a [`Host`], runs the
//! steps of a [`Plan`] on the nodes with their checks before and after, records them in the
//! [`Journal`], and waits for the resync with a progress bar. The decisions are made by the pure
//! core in [`super::recover`].
use super::journal::{Journal, StepRecord};
use super::recover::*;
use super::state::*;
use crate::host::Host;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::time::{Duration, Instant};

/// How to read a node's DRBD state and the evidence around it: one round trip, a paste of several
/// outputs with their prompt lines (parsed by `drbd::parse::parse_paste`).
pub fn probe_script(resource: &str) -> String {
    let r = crate::host::shell_quote(resource);
    format!(
        "echo '# drbdsetup events2 --now --statistics {r}'; drbdsetup events2 --now --statistics {r} 2>/dev/null; \
         echo '# drbdadm get-gi {r}'; drbdadm get-gi {r} 2>/dev/null; \
         echo '# dmesg'; dmesg 2>/dev/null | grep -i drbd | tail -n 300; \
         echo '# cat /proc/mounts'; grep '^/dev/drbd' /proc/mounts 2>/dev/null; true"
    )
}

/// Read one node's view of the resource (one round trip).
pub fn read_view(host: &mut dyn Host, resource: &str) -> Result<NodeView> {
    Ok(read_node(host, resource)?.0)
}

/// Read one node: the view the plan uses and the full input of the split-brain classification.
pub fn read_node(host: &mut dyn Host, resource: &str) -> Result<(NodeView, super::splitbrain::NodeInput)> {
    let name = host.name().to_string();
    let out = host.run(&["sh", "-c", &probe_script(resource)], None)?;
    let text = out.stdout_str();
    let paste = super::parse::parse_paste(&text)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("{name}: reading the DRBD state of {resource}"))?;
    let mut v = NodeView::from_state(&name, resource, &paste.state);
    let minors: Vec<String> = paste
        .state
        .resource(resource)
        .map(|r| r.volumes.iter().filter_map(|v| v.minor).map(|m| format!("/dev/drbd{m}")).collect())
        .unwrap_or_default();
    v.mounts = paste.mounts.iter().filter(|m| minors.contains(&m.device)).map(|m| format!("{} on {}", m.device, m.mountpoint)).collect();
    let input = super::splitbrain::NodeInput::from_paste(name, paste);
    Ok((v, input))
}

/// Parse a probe's output (or any paste) with the project's DRBD parsers.
pub fn parse_probe(text: &str) -> Result<DrbdState> {
    let st = super::parse::parse_auto(text).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(st)
}

/// What the checks read: both nodes' DRBD views and, when a check needs it, pacemaker's state.
#[derive(Debug, Clone)]
pub struct State {
    pub views: Vec<NodeView>,
    pub crm: Option<CrmView>,
}

impl State {
    pub fn holds(&self, check: &Check) -> std::result::Result<(), String> {
        check.holds_in(&self.views, self.crm.as_ref())
    }
}

/// How the driver talks to the admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Ask before each destructive step.
    Interactive,
    /// Unattended (`--yes`).
    Yes,
}

/// A report line of the run (printed as human text or one JSON object per line).
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub event: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    pub status: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<u64>,
}

/// How the driver reaches pacemaker (the cluster resource manager that manages the resource):
/// the cluster-wide steps run through `host` (or, without one, on the step's node), and `read`
/// turns one round trip's output of `probe` into the state the pacemaker checks read.
pub struct CrmLink<'a> {
    /// A separate connection for the pacemaker commands (e.g. this machine with `CIB_file` set);
    /// None: run them on the step's node.
    pub host: Option<&'a mut dyn Host>,
    /// The shell script that prints what `read` parses.
    pub probe: String,
    pub read: &'a dyn Fn(&str) -> std::result::Result<CrmView, String>,
    /// The node to read pacemaker's state on when `host` is None.
    pub node: String,
    /// Longest wait for a pacemaker wait step (e.g. the promotion after the hand-back).
    pub wait: Duration,
}

/// Everything the driver needs.
pub struct Recovery<'a> {
    pub resource: String,
    pub hosts: Vec<&'a mut dyn Host>,
    pub mode: Mode,
    pub journal: Journal,
    /// Called for every event (the CLI prints it).
    pub report: &'a mut dyn FnMut(&Event),
    /// Asks the admin; returns true for yes.
    pub confirm: &'a mut dyn FnMut(&str) -> bool,
    /// How long a verification may take to hold (DRBD changes state asynchronously).
    pub settle: Duration,
    /// Longest wait for the resync.
    pub resync_timeout: Duration,
    pub progress: bool,
    /// Pacemaker, when the plan has pacemaker steps.
    pub crm: Option<CrmLink<'a>>,
}

impl<'a> Recovery<'a> {
    /// The host a step runs on: pacemaker's connection for a cluster-wide step when there is one.
    fn host_for(&mut self, step: &Step) -> Result<&mut (dyn Host + 'a)> {
        match (step.cluster, self.crm.as_mut()) {
            (true, Some(CrmLink { host: Some(h), .. })) => Ok(&mut **h),
            _ => match self.hosts.iter_mut().find(|h| h.name() == step.node) {
                Some(h) => Ok(&mut **h),
                None => bail!("no connection configured for node {}", step.node),
            },
        }
    }

    /// Read pacemaker's state (one round trip).
    pub fn read_crm(&mut self) -> Result<CrmView> {
        let Some(link) = self.crm.as_mut() else { bail!("the plan has pacemaker steps but twonode has no connection to pacemaker (--cib)") };
        let probe = link.probe.clone();
        let node = link.node.clone();
        let out = match link.host.as_mut() {
            Some(h) => h.run(&["sh", "-c", &probe], None)?,
            None => match self.hosts.iter_mut().find(|h| h.name() == node) {
                Some(h) => h.run(&["sh", "-c", &probe], None)?,
                None => bail!("no connection configured for node {node}"),
            },
        };
        let link = self.crm.as_ref().expect("checked above");
        (link.read)(&out.stdout_str()).map_err(|e| anyhow::anyhow!("reading pacemaker's state on {node}: {e} ({})", out.stderr_str().trim()))
    }

    /// The DRBD views, and pacemaker's state when `check` needs it.
    fn read_for(&mut self, check: &Check) -> Result<State> {
        let views = self.read_all()?;
        let crm = if check.needs_crm() { Some(self.read_crm()?) } else { None };
        Ok(State { views, crm })
    }

    pub fn read_all(&mut self) -> Result<Vec<NodeView>> {
        let res = self.resource.clone();
        let mut out = Vec::new();
        for h in self.hosts.iter_mut() {
            out.push(read_view(&mut **h, &res)?);
        }
        Ok(out)
    }

    fn emit(&mut self, e: Event) {
        (self.report)(&e);
    }

    fn ev(event: &str, step: Option<&Step>, status: &str, message: String) -> Event {
        Event {
            event: event.into(),
            step: step.map(|s| s.id.clone()),
            node: step.map(|s| s.node.clone()),
            command: step.filter(|s| !s.argv.is_empty()).map(|s| s.argv.join(" ")),
            status: status.into(),
            message,
            exit_status: None,
            elapsed_ms: None,
        }
    }

    /// Poll until `check` holds or `within` passes; returns the last state read.
    fn wait_for(&mut self, check: &Check, within: Duration) -> Result<(Result<(), String>, State)> {
        let start = Instant::now();
        loop {
            let st = self.read_for(check)?;
            let r = st.holds(check);
            if r.is_ok() || start.elapsed() >= within {
                return Ok((r, st));
            }
            std::thread::sleep(Duration::from_millis(if check.needs_crm() { 500 } else { 150 }));
        }
    }

    /// What to say about pacemaker when the run stops before the end.
    fn crm_hint(plan: &Plan) -> String {
        match &plan.managed_by {
            Some(c) if plan.steps.iter().any(|s| s.id == "pacemaker-unmanage") => {
                format!(" Pacemaker keeps its hands off {c} until the recovery ends: `--resume` (with the same --cib) hands it back.")
            }
            _ => String::new(),
        }
    }

    /// Run the plan's steps that the journal does not mark done. Returns the exit code.
    pub fn execute(&mut self, plan: &Plan) -> Result<i32> {
        // The state read to verify a step is the state the next step's precondition sees (when it
        // holds what that precondition reads).
        let mut cached: Option<State> = None;
        let hint = Self::crm_hint(plan);
        for step in plan.steps.clone() {
            if self.journal.is_done(&step.id) {
                continue;
            }
            let t0 = Instant::now();
            let both = Check::All { checks: vec![step.pre.clone(), step.post.clone()] };
            let views = match cached.take() {
                Some(v) if v.crm.is_some() || !both.needs_crm() => v,
                _ => self.read_for(&both)?,
            };
            // A step interrupted after it ran (journal says started): its verification may hold.
            if self.journal.is_started(&step.id) && views.holds(&step.post).is_ok() {
                self.journal.record(StepRecord::done(&step.id, "verified after resume"))?;
                self.emit(Self::ev("step", Some(&step), "done", format!("{} (already done before the interruption; verified)", step.title)));
                continue;
            }
            if step.argv.is_empty() && step.cluster {
                if !self.wait_crm(&step, t0, &hint)? {
                    return Ok(exit::FAILED);
                }
                continue;
            }
            if step.argv.is_empty() {
                self.wait_resync(&step, t0)?;
                continue;
            }
            if let Err(why) = views.holds(&step.pre) {
                // Maybe the step is not needed any more (done by hand meanwhile).
                if views.holds(&step.post).is_ok() {
                    self.journal.record(StepRecord::done(&step.id, "already in the target state"))?;
                    self.emit(Self::ev("step", Some(&step), "skipped", format!("{}: already done ({})", step.title, step.post.describe())));
                    continue;
                }
                self.emit(Self::ev(
                    "step",
                    Some(&step),
                    "precondition-failed",
                    format!("{}: not run, precondition does not hold: {why}. Fix it, then `--resume`.{hint}", step.title),
                ));
                return Ok(exit::FAILED);
            }
            if step.destructive && self.mode == Mode::Interactive {
                let q = format!("[{}] {} — run `{}`?", step.node, step.title, step.argv.join(" "));
                if !(self.confirm)(&q) {
                    self.emit(Self::ev("step", Some(&step), "declined", format!("{}: declined; nothing after it ran. `--resume` continues.{hint}", step.title)));
                    return Ok(exit::DECLINED);
                }
            }
            self.journal.record(StepRecord::started(&step.id, &step.node, &step.argv))?;
            let argv: Vec<&str> = step.argv.iter().map(String::as_str).collect();
            let node = step.node.clone();
            let out = self.host_for(&step)?.run(&argv, None);
            let out = match out {
                Ok(o) => o,
                Err(e) => {
                    self.emit(Self::ev(
                        "step",
                        Some(&step),
                        "interrupted",
                        format!("{}: lost the connection to {node} ({e:#}); the step may or may not have run. Restore the connection, then `--resume`.{hint}", step.title),
                    ));
                    return Ok(exit::FAILED);
                }
            };
            let (ok, views) = self.wait_for(&step.post, self.settle)?;
            let stderr = out.stderr_str();
            let kernel_msg = stderr
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.contains("__DRBD_NODE__") && !l.contains("PRETENDING"))
                .collect::<Vec<_>>()
                .join(" / ");
            match ok {
                Ok(()) => {
                    cached = Some(views);
                    self.journal.record(StepRecord::done(&step.id, &kernel_msg))?;
                    let mut e = Self::ev("step", Some(&step), "done", format!("{}: verified: {}", step.title, step.post.describe()));
                    e.exit_status = Some(out.status);
                    e.elapsed_ms = Some(t0.elapsed().as_millis() as u64);
                    self.emit(e);
                }
                Err(why) => {
                    self.journal.record(StepRecord::failed(&step.id, &format!("{why}; {kernel_msg}")))?;
                    let mut e = Self::ev(
                        "step",
                        Some(&step),
                        "failed",
                        format!(
                            "{}: verification failed: {why} (exit status {}{}). Nothing further ran; fix the cause, then `--resume`.{hint}",
                            step.title,
                            out.status,
                            if kernel_msg.is_empty() { String::new() } else { format!(", {} said: {kernel_msg}", if step.cluster { "pacemaker" } else { "DRBD" }) }
                        ),
                    );
                    e.exit_status = Some(out.status);
                    self.emit(e);
                    return Ok(exit::FAILED);
                }
            }
        }
        self.journal.finish()?;
        let handed = match &plan.managed_by {
            Some(c) if plan.steps.iter().any(|s| s.id == "pacemaker-manage") => format!("; {c} handed back to pacemaker"),
            Some(c) => format!("; pacemaker's hands stay off {c}, as they were"),
            None => String::new(),
        };
        let mut e = Self::ev("result", None, "recovered", format!("{}: both nodes Connected and UpToDate{handed}", self.resource));
        e.exit_status = Some(0);
        self.emit(e);
        Ok(exit::OK)
    }

    /// A pacemaker wait step (argv empty): poll pacemaker's state until the step's verification
    /// holds, at most `CrmLink::wait`. Returns false (and reports) when it did not.
    fn wait_crm(&mut self, step: &Step, t0: Instant, hint: &str) -> Result<bool> {
        self.journal.record(StepRecord::started(&step.id, &step.node, &[]))?;
        let within = self.crm.as_ref().map(|c| c.wait).unwrap_or(Duration::from_secs(120));
        let (ok, _) = self.wait_for(&step.post, within)?;
        match ok {
            Ok(()) => {
                self.journal.record(StepRecord::done(&step.id, "verified"))?;
                let mut e = Self::ev("step", Some(step), "done", format!("{}: verified: {}", step.title, step.post.describe()));
                e.elapsed_ms = Some(t0.elapsed().as_millis() as u64);
                self.emit(e);
                Ok(true)
            }
            Err(why) => {
                self.journal.record(StepRecord::failed(&step.id, &why))?;
                self.emit(Self::ev(
                    "step",
                    Some(step),
                    "failed",
                    format!(
                        "{}: not within {:?}: {why}. The data is recovered; see `crm_mon -1` (constraints, target-role, scores), then `--resume`.{hint}",
                        step.title, within
                    ),
                ));
                Ok(false)
            }
        }
    }

    fn wait_resync(&mut self, step: &Step, t0: Instant) -> Result<()> {
        self.journal.record(StepRecord::started(&step.id, &step.node, &[]))?;
        let pb = if self.progress {
            let pb = indicatif::ProgressBar::new(10_000);
            pb.set_style(
                indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {percent:>3}% {elapsed_precise}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            pb.set_message(format!("{} resyncing", step.node));
            Some(pb)
        } else {
            None
        };
        let start = Instant::now();
        loop {
            let views = self.read_all()?;
            if step.post.holds(&views).is_ok() {
                break;
            }
            if let Err(why) = step.pre.holds(&views) {
                if let Some(pb) = &pb {
                    pb.abandon();
                }
                bail!("while waiting for the resync: {why}");
            }
            if let Some(pb) = &pb {
                let v = views.iter().find(|v| v.node == step.node);
                let done: Vec<f64> = v.map(|v| v.volumes.iter().filter_map(|x| x.done_percent).collect()).unwrap_or_default();
                if !done.is_empty() {
                    let avg = done.iter().sum::<f64>() / done.len() as f64;
                    pb.set_position((avg * 100.0) as u64);
                }
            }
            if start.elapsed() > self.resync_timeout {
                bail!("the resync did not finish within {:?}; it goes on in the background: watch `twonode drbd status {}`, then `--resume`", self.resync_timeout, self.resource);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        if let Some(pb) = &pb {
            pb.finish_and_clear();
        }
        self.journal.record(StepRecord::done(&step.id, "in sync"))?;
        let mut e = Self::ev("step", Some(step), "done", format!("{}: verified: {}", step.title, step.post.describe()));
        e.elapsed_ms = Some(t0.elapsed().as_millis() as u64);
        self.emit(e);
        Ok(())
    }
}
