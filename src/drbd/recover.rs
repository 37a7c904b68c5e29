//! Guided split-brain recovery: a plan for both nodes, each step with a precondition checked before
//! and a verification read back from DRBD afterwards (never an exit code alone).
//!
//! The core is pure: [`NodeView`] (what one node's DRBD says about the resource) → [`assess`]
//! (refusals with reason and fix) → [`plan`] (steps) → [`Check::holds`] (pre/post conditions).
//! The driver that runs the steps on the nodes is [`super::run`].
use super::state::{ConnState, DiskState, DrbdState, Generation, Gi, GiRelation, ReplState, Role};
use crate::host::shell_join;
use anyhow::Result;
use serde::{Deserialize, Serialize};

/// Exit codes of `twonode drbd recover`.
pub mod exit {
    /// Recovered, or nothing to do (already healthy / already resolved).
    pub const OK: i32 = 0;
    /// A step failed or its verification did not hold: the journal is kept, fix and `--resume`.
    pub const FAILED: i32 = 1;
    /// Refused before changing anything (reason and fix printed).
    pub const REFUSED: i32 = 2;
    /// The admin answered no at a prompt (nothing after that step ran).
    pub const DECLINED: i32 = 4;
}

/// One volume as a node sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolView {
    pub volume: u32,
    pub disk: Option<String>,
    pub gi: Option<Gi>,
    pub open: Option<bool>,
    /// Out of sync toward the peer, KiB (what this node changed that the peer lacks, while
    /// disconnected; what is left to sync while syncing).
    pub oos_kib: Option<u64>,
    pub replication: Option<String>,
    pub peer_disk: Option<String>,
    pub done_percent: Option<f64>,
}

/// The resource as one node sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub node: String,
    /// The resource is configured (up) on this node.
    pub present: bool,
    pub generation: Option<Generation>,
    pub role: Option<String>,
    pub cstate: Option<String>,
    pub peer_role: Option<String>,
    pub volumes: Vec<VolView>,
    /// Mount points of the resource's devices, when the probe could read them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<String>,
}

impl NodeView {
    /// Extract the view of `resource` from a parsed state.
    pub fn from_state(node: &str, resource: &str, st: &DrbdState) -> NodeView {
        let Some(r) = st.resource(resource) else {
            return NodeView { node: node.into(), generation: st.generation, ..Default::default() };
        };
        let conn = r.connections.first();
        let volumes = r
            .volumes
            .iter()
            .map(|v| {
                let pd = conn.and_then(|c| c.peer_device(v.volume));
                VolView {
                    volume: v.volume,
                    disk: v.disk.as_ref().map(|d| d.as_str().to_string()),
                    gi: v.gi,
                    open: v.open,
                    oos_kib: pd.and_then(|p| p.out_of_sync_kib),
                    replication: pd.and_then(|p| p.replication.as_ref()).map(|x| x.as_str().to_string()),
                    peer_disk: pd.and_then(|p| p.peer_disk.as_ref()).map(|x| x.as_str().to_string()),
                    done_percent: pd.and_then(|p| p.sync.as_ref()).and_then(|s| s.done_percent),
                }
            })
            .collect();
        NodeView {
            node: node.into(),
            present: true,
            generation: st.generation,
            role: r.role.as_ref().map(|x| x.as_str().to_string()),
            cstate: conn.and_then(|c| c.state.as_ref()).map(|x| x.as_str().to_string()),
            peer_role: conn.and_then(|c| c.peer_role.as_ref()).map(|x| x.as_str().to_string()),
            volumes,
            mounts: Vec::new(),
        }
    }

    fn cs(&self) -> ConnState {
        ConnState::parse(self.cstate.as_deref().unwrap_or("Unknown"))
    }
    pub fn is_primary(&self) -> bool {
        self.role.as_deref() == Some(Role::Primary.as_str())
    }
    pub fn is_standalone(&self) -> bool {
        self.cs().is_standalone()
    }
    pub fn is_connected(&self) -> bool {
        self.cs().is_connected()
    }
    pub fn is_trying(&self) -> bool {
        self.cs().is_trying()
    }
    pub fn any_open(&self) -> bool {
        self.volumes.iter().any(|v| v.open == Some(true)) || !self.mounts.is_empty()
    }
    pub fn all_uptodate(&self) -> bool {
        !self.volumes.is_empty() && self.volumes.iter().all(|v| v.disk.as_deref() == Some(DiskState::UpToDate.as_str()))
    }
    pub fn syncing(&self) -> bool {
        self.volumes.iter().any(|v| v.replication.as_deref().map(|r| ReplState::parse(r).is_syncing()).unwrap_or(false))
    }
    pub fn sync_target(&self) -> bool {
        self.volumes
            .iter()
            .any(|v| v.replication.as_deref().map(|r| ReplState::parse(r).is_sync_target()).unwrap_or(false))
    }
    /// KiB this node changed that the peer lacks (sum over volumes), when known.
    pub fn changed_kib(&self) -> Option<u64> {
        let known: Vec<u64> = self.volumes.iter().filter_map(|v| v.oos_kib).collect();
        if known.is_empty() {
            None
        } else {
            Some(known.iter().sum())
        }
    }
    pub fn is_v9(&self) -> bool {
        self.generation != Some(Generation::V8)
    }
    /// Healthy: connected, no resync, every volume UpToDate on both sides.
    pub fn healthy(&self) -> bool {
        self.is_connected()
            && !self.syncing()
            && self.all_uptodate()
            && self.volumes.iter().all(|v| v.peer_disk.as_deref().map(|d| d == "UpToDate").unwrap_or(true))
    }
}

/// What both nodes' state says about the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Healthy,
    /// Connected and resyncing (a recovery already ran or a normal resync).
    Syncing,
    SplitBrain,
    /// Disconnected, but the GIs show one side simply newer: no data diverged.
    Disconnected,
    Unrelated,
    Unknown,
}

impl From<super::splitbrain::Verdict> for Verdict {
    /// The split-brain classifier's verdict (`splitbrain::classify_resource`, which weighs the
    /// GIs, the connection, the kernel log and the handlers of both nodes) in recovery's words.
    fn from(v: super::splitbrain::Verdict) -> Verdict {
        use super::splitbrain::Verdict as Sb;
        match v {
            Sb::Healthy => Verdict::Healthy,
            Sb::Syncing => Verdict::Syncing,
            Sb::Disconnected => Verdict::Disconnected,
            Sb::SplitBrain => Verdict::SplitBrain,
            Sb::UnrelatedData => Verdict::Unrelated,
            Sb::Unknown => Verdict::Unknown,
        }
    }
}

/// The sentences that describe the two nodes' relation (victim first): the connection when both
/// are connected, else one per volume from the generation identifiers.
pub fn explain(victim: &NodeView, survivor: &NodeView) -> Vec<String> {
    classify(victim, survivor).1
}

/// A summary verdict from the two nodes' views alone, for `drbd status` and doctor (which read no
/// kernel log). Recovery does not decide on it: it takes the split-brain classifier's verdict
/// (see [`assess`]). Returns the verdict and a sentence per volume.
pub fn classify(victim: &NodeView, survivor: &NodeView) -> (Verdict, Vec<String>) {
    if victim.healthy() && survivor.healthy() {
        return (Verdict::Healthy, vec!["connected, every volume UpToDate on both nodes".into()]);
    }
    if victim.is_connected() && survivor.is_connected() {
        return (Verdict::Syncing, vec!["connected; a resync is running".into()]);
    }
    let mut words = Vec::new();
    let mut verdict = Verdict::Disconnected;
    for v in &victim.volumes {
        let s = survivor.volumes.iter().find(|x| x.volume == v.volume);
        match (v.gi, s.and_then(|s| s.gi)) {
            (Some(a), Some(b)) => {
                let c = a.compare(&b);
                words.push(format!("volume {}: {} (rule {})", v.volume, c.explanation, c.rule));
                match c.relation {
                    GiRelation::Unrelated => verdict = Verdict::Unrelated,
                    GiRelation::SplitBrain { .. } if verdict != Verdict::Unrelated => verdict = Verdict::SplitBrain,
                    _ => {}
                }
            }
            _ => {
                words.push(format!("volume {}: generation identifiers not readable on both nodes", v.volume));
                if verdict == Verdict::Disconnected {
                    verdict = Verdict::Unknown;
                }
            }
        }
    }
    if victim.volumes.is_empty() {
        verdict = Verdict::Unknown;
    }
    (verdict, words)
}

/// What the cluster resource manager (pacemaker) says about the cluster resource that manages
/// the DRBD resource, as far as the recovery's checks need it. Neutral: the driver gets it from a
/// reader the CLI builds (`pacemaker::drbd` parses `cibadmin -Q` and `crm_mon --output-as=xml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmView {
    /// Every instance of the resource is managed (pacemaker's effective view: the resource's and
    /// its parent's `is-managed`, `rsc_defaults`, maintenance-mode). None: not read / not found.
    pub managed: Option<bool>,
    /// Ids of the location constraints on the resource (cibadmin -Q).
    pub constraints: Vec<String>,
    /// Nodes where pacemaker runs the resource in the Promoted role.
    pub promoted: Vec<String>,
    /// Nodes with a failed operation of the resource recorded (what `crm_resource --cleanup` clears).
    pub failed_on: Vec<String>,
}

/// A condition on the nodes' state, checked before (pre) or after (post) a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "check", rename_all = "kebab-case")]
pub enum Check {
    /// The node's connection state is one of these.
    CState { node: String, any_of: Vec<String> },
    /// The node's connection state is not StandAlone.
    NotStandAlone { node: String },
    Role { node: String, role: String },
    /// No volume of the resource is open or mounted on the node.
    NotOpen { node: String },
    /// Both nodes connected, the victim a sync target or already in sync.
    Reconnected { victim: String, survivor: String },
    /// Both connected, every volume UpToDate on both, nothing left to sync.
    InSync { victim: String, survivor: String },
    /// Pacemaker manages the cluster resource (`managed: true`) or keeps its hands off it (false).
    CrmManaged { resource: String, managed: bool },
    /// The location constraint exists in the CIB (`present: true`) or is gone (false).
    CrmConstraint { id: String, present: bool },
    /// No failed operation of the cluster resource is recorded on any node.
    CrmNoFailures { resource: String },
    /// Pacemaker runs the cluster resource Promoted on `node`.
    CrmPromoted { resource: String, node: String },
    All { checks: Vec<Check> },
}

impl Check {
    /// Whether checking needs the cluster resource manager's state.
    pub fn needs_crm(&self) -> bool {
        match self {
            Check::CrmManaged { .. } | Check::CrmConstraint { .. } | Check::CrmNoFailures { .. } | Check::CrmPromoted { .. } => true,
            Check::All { checks } => checks.iter().any(Check::needs_crm),
            _ => false,
        }
    }

    pub fn holds(&self, views: &[NodeView]) -> Result<(), String> {
        self.holds_in(views, None)
    }

    /// The check against the DRBD views and, for the pacemaker checks, pacemaker's view.
    pub fn holds_in(&self, views: &[NodeView], crm: Option<&CrmView>) -> Result<(), String> {
        let crm_of = || crm.ok_or_else(|| "pacemaker's state was not read".to_string());
        let get = |n: &str| views.iter().find(|v| v.node == n).ok_or_else(|| format!("no state read from {n}"));
        match self {
            Check::CState { node, any_of } => {
                let v = get(node)?;
                let cs = v.cstate.clone().unwrap_or_else(|| "unknown".into());
                let ok = any_of.iter().any(|a| ConnState::parse(a) == ConnState::parse(&cs));
                if ok { Ok(()) } else { Err(format!("{node} is {cs}, expected {}", any_of.join(" or "))) }
            }
            Check::NotStandAlone { node } => {
                let v = get(node)?;
                if v.is_standalone() { Err(format!("{node} is still StandAlone")) } else { Ok(()) }
            }
            Check::Role { node, role } => {
                let v = get(node)?;
                let r = v.role.clone().unwrap_or_else(|| "unknown".into());
                if &r == role { Ok(()) } else { Err(format!("{node} is {r}, expected {role}")) }
            }
            Check::NotOpen { node } => {
                let v = get(node)?;
                if v.any_open() {
                    let open: Vec<String> = v.volumes.iter().filter(|x| x.open == Some(true)).map(|x| x.volume.to_string()).collect();
                    Err(format!(
                        "{node}: device of volume(s) {} is open{}",
                        open.join(","),
                        if v.mounts.is_empty() { String::new() } else { format!(" (mounted on {})", v.mounts.join(", ")) }
                    ))
                } else {
                    Ok(())
                }
            }
            Check::Reconnected { victim, survivor } => {
                let (v, s) = (get(victim)?, get(survivor)?);
                if !v.is_connected() || !s.is_connected() {
                    return Err(format!(
                        "not connected yet: {victim} {}, {survivor} {}",
                        v.cstate.as_deref().unwrap_or("?"),
                        s.cstate.as_deref().unwrap_or("?")
                    ));
                }
                if s.sync_target() {
                    return Err(format!("WRONG DIRECTION: {survivor} became the sync target"));
                }
                Ok(())
            }
            Check::InSync { victim, survivor } => {
                let (v, s) = (get(victim)?, get(survivor)?);
                if v.healthy() && s.healthy() {
                    Ok(())
                } else {
                    Err(format!("{victim} not in sync yet"))
                }
            }
            Check::CrmManaged { resource, managed } => match crm_of()?.managed {
                Some(m) if m == *managed => Ok(()),
                Some(m) => Err(format!("pacemaker {} {resource}", if m { "still manages" } else { "does not manage" })),
                None => Err(format!("pacemaker does not show {resource}")),
            },
            Check::CrmConstraint { id, present } => {
                let there = crm_of()?.constraints.iter().any(|c| c == id);
                match (there, present) {
                    (true, false) => Err(format!("constraint {id} is still in the CIB")),
                    (false, true) => Err(format!("constraint {id} is not in the CIB")),
                    _ => Ok(()),
                }
            }
            Check::CrmNoFailures { resource } => {
                let c = crm_of()?;
                if c.failed_on.is_empty() {
                    Ok(())
                } else {
                    Err(format!("failed operations of {resource} are recorded on {}", c.failed_on.join(", ")))
                }
            }
            Check::CrmPromoted { resource, node } => {
                let c = crm_of()?;
                if c.promoted.iter().any(|p| p == node) {
                    Ok(())
                } else if c.promoted.is_empty() {
                    Err(format!("pacemaker runs {resource} Promoted nowhere (yet)"))
                } else {
                    Err(format!("pacemaker runs {resource} Promoted on {}, not on {node}", c.promoted.join(", ")))
                }
            }
            Check::All { checks } => {
                for c in checks {
                    c.holds_in(views, crm)?;
                }
                Ok(())
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Check::CState { node, any_of } => format!("{node} is {}", any_of.join(" or ")),
            Check::NotStandAlone { node } => format!("{node} is not StandAlone"),
            Check::Role { node, role } => format!("{node} is {role}"),
            Check::NotOpen { node } => format!("no device of the resource is open or mounted on {node}"),
            Check::Reconnected { victim, survivor } => {
                format!("{victim} and {survivor} are Connected, {victim} is the sync target (or in sync)")
            }
            Check::InSync { .. } => "both nodes Connected and UpToDate on every volume".into(),
            Check::CrmManaged { resource, managed: true } => format!("pacemaker manages {resource}"),
            Check::CrmManaged { resource, managed: false } => format!("pacemaker keeps its hands off {resource} (unmanaged)"),
            Check::CrmConstraint { id, present: true } => format!("constraint {id} is in the CIB"),
            Check::CrmConstraint { id, present: false } => format!("constraint {id} is gone from the CIB"),
            Check::CrmNoFailures { resource } => format!("no failed operation of {resource} recorded"),
            Check::CrmPromoted { resource, node } => format!("pacemaker runs {resource} Promoted on {node}"),
            Check::All { checks } => checks.iter().map(|c| c.describe()).collect::<Vec<_>>().join("; "),
        }
    }
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub id: String,
    pub node: String,
    pub title: String,
    /// The command, run on `node`. Empty for a wait step.
    pub argv: Vec<String>,
    /// Discards or risks data (asks first in interactive mode).
    pub destructive: bool,
    pub pre: Check,
    pub post: Check,
    /// `drbdadm -d` equivalent (what drbdsetup calls this means), for the runbook; filled by the
    /// driver when it can.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expands_to: Vec<String>,
    /// A cluster-wide pacemaker command (or wait), run on `node` or through the pacemaker
    /// connection the driver is given.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster: bool,
}

/// The plan for one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub resource: String,
    pub victim: String,
    pub survivor: String,
    pub generation: String,
    /// Fingerprint of both nodes' state the plan was made from.
    pub fingerprint: String,
    /// What the victim loses: KiB per volume (changes made on the victim since the split).
    pub loss_kib: Vec<(u32, Option<u64>)>,
    pub steps: Vec<Step>,
    /// The cluster resource that manages the DRBD resource (pacemaker's clone id), when the plan
    /// keeps pacemaker out of the way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
    /// Sentences about the plan the admin must read (e.g. what is left to pacemaker).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// A reason not to go on, with the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Stable key for scripts: already-healthy, already-resolved, unrelated-data, not-split-brain,
    /// survivor-not-uptodate, victim-open, wrong-victim, unknown-state, missing-resource,
    /// stale-plan, journal-exists.
    pub kind: String,
    pub reason: String,
    pub fix: String,
    /// Nothing to do (exit 0) rather than a refusal (exit 2).
    pub nothing_to_do: bool,
}

fn refusal(kind: &str, reason: String, fix: String) -> Refusal {
    Refusal { kind: kind.into(), reason, fix, nothing_to_do: false }
}

/// FNV-1a 64 over the canonical JSON of the views minus what moves on its own (resync progress).
pub fn fingerprint(views: &[NodeView]) -> String {
    let mut canon: Vec<NodeView> = views.to_vec();
    canon.sort_by(|a, b| a.node.cmp(&b.node));
    for v in &mut canon {
        for vol in &mut v.volumes {
            vol.done_percent = None;
            if vol.replication.as_deref().map(|r| ReplState::parse(r).is_syncing()).unwrap_or(false) {
                vol.oos_kib = None;
            }
        }
    }
    let data = serde_json::to_vec(&canon).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Options that change what is refused.
#[derive(Debug, Clone, Default)]
pub struct Allow {
    /// The admin confirmed a victim that has more changes than the survivor.
    pub wrong_victim: bool,
}

/// Decide whether a recovery may run; Ok(()) = go on and plan. `verdict` is the split-brain
/// classifier's verdict on the resource (`splitbrain::classify_resource(..).verdict.into()`).
pub fn assess(resource: &str, victim: &NodeView, survivor: &NodeView, verdict: Verdict, allow: &Allow) -> Result<(), Refusal> {
    for n in [victim, survivor] {
        if !n.present {
            return Err(refusal(
                "missing-resource",
                format!("resource {resource} is not configured (or not up) on {}", n.node),
                format!("check `drbdadm status {resource}` on {}; bring it up with `drbdadm up {resource}`", n.node),
            ));
        }
    }
    let words = explain(victim, survivor);
    match verdict {
        Verdict::Healthy => {
            return Err(Refusal {
                kind: "already-healthy".into(),
                reason: format!("{resource} is already connected and UpToDate on both nodes: no split brain to recover"),
                fix: "nothing to do".into(),
                nothing_to_do: true,
            })
        }
        Verdict::Syncing => {
            let ok = victim.sync_target() || !survivor.sync_target();
            return Err(Refusal {
                kind: "already-resolved".into(),
                reason: format!(
                    "{resource} is connected and resyncing ({} is the sync {}): the split brain is already resolved",
                    victim.node,
                    if victim.sync_target() { "target" } else { "source" }
                ),
                fix: if ok { format!("wait for the resync: `twonode drbd status {resource}`") } else { "check which side was discarded".into() },
                nothing_to_do: true,
            });
        }
        Verdict::Unrelated => {
            return Err(refusal(
                "unrelated-data",
                format!("the two nodes hold UNRELATED data for {resource} (no common generation): {}", words.join("; ")),
                "do not force a sync: check that both nodes use the right backing disks and meta data \
                 (drbdadm dump, lsblk); re-create the meta data of the wrong side only after a backup"
                    .into(),
            ))
        }
        Verdict::Disconnected => {
            return Err(refusal(
                "not-split-brain",
                format!("{resource} is disconnected but not split brain: {}", words.join("; ")),
                format!(
                    "no data needs discarding: run `drbdadm connect {resource}` on each StandAlone node \
                     (the older side becomes the sync target by itself)"
                ),
            ))
        }
        Verdict::Unknown => {
            return Err(refusal(
                "unknown-state",
                format!("cannot tell the state of {resource}: {}", words.join("; ")),
                "read `drbdadm status` and `drbdadm get-gi` on both nodes; `twonode drbd split-brain` explains them".into(),
            ))
        }
        Verdict::SplitBrain => {}
    }
    if !survivor.all_uptodate() {
        let bad: Vec<String> = survivor
            .volumes
            .iter()
            .filter(|v| v.disk.as_deref() != Some("UpToDate"))
            .map(|v| format!("volume {} is {}", v.volume, v.disk.as_deref().unwrap_or("unknown")))
            .collect();
        return Err(refusal(
            "survivor-not-uptodate",
            format!("the survivor {} is not UpToDate ({}): its data cannot be the good copy", survivor.node, bad.join(", ")),
            format!("check {}'s backing disk (drbdadm status, dmesg); pick the other node only if its data is the good one", survivor.node),
        ));
    }
    if victim.any_open() && victim.is_primary() {
        let mounts = if victim.mounts.is_empty() { String::new() } else { format!(" (mounted on {})", victim.mounts.join(", ")) };
        return Err(refusal(
            "victim-open",
            format!("the victim {} is Primary and its device is in use{mounts}; DRBD refuses `secondary` ((-12) Device is held open by someone)", victim.node),
            format!(
                "on {}: stop the service using the data and unmount it (twonode stops nothing by itself), then re-run",
                victim.node
            ),
        ));
    }
    if victim.any_open() {
        return Err(refusal(
            "victim-open",
            format!("the victim {}'s device is open (someone mounted the Secondary?)", victim.node),
            format!("on {}: close/unmount the device, then re-run", victim.node),
        ));
    }
    if !allow.wrong_victim {
        if let (Some(vk), Some(sk)) = (victim.changed_kib(), survivor.changed_kib()) {
            if vk > sk {
                return Err(refusal(
                    "wrong-victim",
                    format!(
                        "{} (the node you asked to discard) changed MORE data than {} ({vk} KiB against {sk} KiB): \
                         discarding it loses the larger set of changes",
                        victim.node, survivor.node
                    ),
                    format!(
                        "if {} really holds the data to keep, confirm with --accept-loss; otherwise run with --discard {}",
                        survivor.node, survivor.node
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn drbdadm(args: &[&str]) -> Vec<String> {
    std::iter::once("drbdadm").chain(args.iter().copied()).map(String::from).collect()
}

/// Build the plan (after [`assess`] said yes).
pub fn plan(resource: &str, victim: &NodeView, survivor: &NodeView) -> Plan {
    let (v, s) = (victim.node.clone(), survivor.node.clone());
    let v9 = victim.is_v9() && survivor.is_v9();
    let waiting: Vec<String> = if v9 { vec!["Connecting".into()] } else { vec!["WFConnection".into()] };
    let mut steps = Vec::new();
    let standalone = vec!["StandAlone".to_string()];
    if !victim.is_standalone() {
        steps.push(Step {
            id: "victim-disconnect".into(),
            node: v.clone(),
            title: format!("disconnect the victim {v}"),
            argv: drbdadm(&["disconnect", resource]),
            destructive: false,
            pre: Check::NotStandAlone { node: v.clone() },
            post: Check::CState { node: v.clone(), any_of: standalone.clone() },
            expands_to: vec![],
            cluster: false,
        });
    }
    if victim.is_primary() {
        steps.push(Step {
            id: "victim-secondary".into(),
            node: v.clone(),
            title: format!("demote the victim {v} to Secondary"),
            argv: drbdadm(&["secondary", resource]),
            destructive: false,
            pre: Check::All { checks: vec![Check::Role { node: v.clone(), role: "Primary".into() }, Check::NotOpen { node: v.clone() }] },
            post: Check::Role { node: v.clone(), role: "Secondary".into() },
            expands_to: vec![],
            cluster: false,
        });
    }
    let mut ok_after_connect = waiting.clone();
    ok_after_connect.push("Connected".into());
    steps.push(Step {
        id: "victim-connect-discard".into(),
        node: v.clone(),
        title: format!("reconnect {v} DISCARDING its changes since the split"),
        argv: drbdadm(&["connect", "--discard-my-data", resource]),
        destructive: true,
        pre: Check::All {
            checks: vec![
                Check::CState { node: v.clone(), any_of: standalone.clone() },
                Check::Role { node: v.clone(), role: "Secondary".into() },
                Check::NotOpen { node: v.clone() },
            ],
        },
        post: Check::CState { node: v.clone(), any_of: ok_after_connect.clone() },
        expands_to: vec![],
        cluster: false,
    });
    if survivor.is_standalone() {
        if v9 {
            steps.push(Step {
                id: "survivor-disconnect".into(),
                node: s.clone(),
                title: format!("reset the survivor {s}'s connection (DRBD 9: disconnect before connect)"),
                argv: drbdadm(&["disconnect", resource]),
                destructive: false,
                pre: Check::CState { node: s.clone(), any_of: standalone.clone() },
                post: Check::CState { node: s.clone(), any_of: standalone.clone() },
                expands_to: vec![],
                cluster: false,
            });
        }
        steps.push(Step {
            id: "survivor-connect".into(),
            node: s.clone(),
            title: format!("reconnect the survivor {s}"),
            argv: drbdadm(&["connect", resource]),
            destructive: false,
            pre: Check::CState { node: s.clone(), any_of: standalone.clone() },
            post: Check::Reconnected { victim: v.clone(), survivor: s.clone() },
            expands_to: vec![],
            cluster: false,
        });
    }
    steps.push(Step {
        id: "wait-resync".into(),
        node: v.clone(),
        title: format!("wait until {v} has resynced the changed blocks from {s}"),
        argv: vec![],
        destructive: false,
        pre: Check::Reconnected { victim: v.clone(), survivor: s.clone() },
        post: Check::InSync { victim: v.clone(), survivor: s.clone() },
        expands_to: vec![],
        cluster: false,
    });
    let views = [victim.clone(), survivor.clone()];
    Plan {
        resource: resource.into(),
        victim: v,
        survivor: s,
        generation: if v9 { "9".into() } else { "8.4".into() },
        fingerprint: fingerprint(&views),
        loss_kib: victim.volumes.iter().map(|x| (x.volume, x.oos_kib)).collect(),
        steps,
        managed_by: None,
        notes: vec![],
    }
}

/// The plan as a readable runbook that is also a shell script (`sh runbook.sh` on a machine that
/// reaches both nodes with `ssh NODE`).
pub fn runbook(plan: &Plan, victim: &NodeView, survivor: &NodeView, words: &[String]) -> String {
    let mut s = String::new();
    let p = plan;
    s.push_str("#!/bin/sh\n");
    s.push_str(&format!("# twonode split-brain recovery runbook for DRBD resource {} (DRBD {} syntax)\n", p.resource, p.generation));
    s.push_str(&format!("# victim (changes DISCARDED): {}    survivor (data kept): {}\n", p.victim, p.survivor));
    s.push_str(&format!("# made from state fingerprint {}: re-check the state if it changed since.\n", p.fingerprint));
    for w in words {
        s.push_str(&format!("#   {w}\n"));
    }
    for (vol, kib) in &p.loss_kib {
        s.push_str(&format!(
            "# DATA LOST on {}: volume {vol}: {} written on {} since the split\n",
            p.victim,
            kib.map(|k| format!("{k} KiB")).unwrap_or_else(|| "unknown amount".into()),
            p.victim
        ));
    }
    s.push_str(&format!(
        "# now: {} {} {} | {} {} {}\n",
        victim.node,
        victim.role.as_deref().unwrap_or("?"),
        victim.cstate.as_deref().unwrap_or("?"),
        survivor.node,
        survivor.role.as_deref().unwrap_or("?"),
        survivor.cstate.as_deref().unwrap_or("?")
    ));
    if let Some(m) = &p.managed_by {
        s.push_str(&format!("# pacemaker manages {} as {m}: the plan keeps pacemaker out of the way\n", p.resource));
    }
    for n in &p.notes {
        s.push_str(&format!("# NOTE: {n}\n"));
    }
    s.push_str("set -e\n");
    for (i, st) in p.steps.iter().enumerate() {
        s.push_str(&format!("\n# step {}: [{}] {}\n", i + 1, st.node, st.title));
        s.push_str(&format!("#   before: {}\n", st.pre.describe()));
        s.push_str(&format!("#   after:  {}\n", st.post.describe()));
        for e in &st.expands_to {
            s.push_str(&format!("#   drbdadm -d: {e}\n"));
        }
        if st.argv.is_empty() && st.cluster {
            if let Check::CrmPromoted { resource, node } = &st.post {
                s.push_str(&format!(
                    "until ssh {} crm_resource --locate --resource {} | grep -q 'on: {} Promoted'; do sleep 5; done\n",
                    crate::host::shell_quote(&st.node),
                    crate::host::shell_quote(resource),
                    node
                ));
            }
        } else if st.argv.is_empty() {
            s.push_str(&format!(
                "until ssh {} drbdadm status {} | grep -q 'disk:UpToDate' && ! ssh {} drbdadm status {} | grep -q -e Inconsistent -e 'replication:Sync'; do sleep 2; done\n",
                st.node, p.resource, st.node, p.resource
            ));
        } else {
            let argv: Vec<&str> = st.argv.iter().map(String::as_str).collect();
            s.push_str(&format!("ssh {} {}\n", crate::host::shell_quote(&st.node), crate::host::shell_quote(&shell_join(&argv))));
        }
    }
    s
}

// ------------------------------------------------------------------------------------------------
// Driver

#[cfg(test)]
mod tests {
    use super::*;

    fn gi(c: u64, b: u64) -> Option<Gi> {
        Some(Gi::new(c, b, 0x1000, 0x2000))
    }

    fn view(node: &str, role: &str, cs: &str, cur: u64, bm: u64, oos: u64) -> NodeView {
        NodeView {
            node: node.into(),
            present: true,
            generation: Some(Generation::V9),
            role: Some(role.into()),
            cstate: Some(cs.into()),
            peer_role: None,
            volumes: vec![VolView {
                volume: 0,
                disk: Some("UpToDate".into()),
                gi: gi(cur, bm),
                open: Some(false),
                oos_kib: Some(oos),
                replication: Some("Off".into()),
                peer_disk: Some("DUnknown".into()),
                done_percent: None,
            }],
            mounts: vec![],
        }
    }

    #[test]
    fn plans_primary_secondary_split_v9() {
        let v = view("bob", "Primary", "StandAlone", 0xB0, 0xA0, 400);
        let s = view("alice", "Primary", "Connecting", 0xC0, 0xA0, 4000);
        assert_eq!(classify(&v, &s).0, Verdict::SplitBrain);
        assert!(assess("r0", &v, &s, classify(&v, &s).0, &Allow::default()).is_ok());
        let p = plan("r0", &v, &s);
        let ids: Vec<&str> = p.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["victim-secondary", "victim-connect-discard", "wait-resync"]);
        assert_eq!(p.steps[1].argv, ["drbdadm", "connect", "--discard-my-data", "r0"]);
        let rb = runbook(&p, &v, &s, &[]);
        assert!(rb.contains("ssh bob 'drbdadm connect --discard-my-data r0'"), "{rb}");
    }

    #[test]
    fn survivor_standalone_v9_disconnects_first() {
        let v = view("bob", "Secondary", "Connecting", 0xB0, 0xA0, 40);
        let s = view("alice", "Primary", "StandAlone", 0xC0, 0xA0, 4000);
        let p = plan("r0", &v, &s);
        let ids: Vec<&str> = p.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["victim-disconnect", "victim-connect-discard", "survivor-disconnect", "survivor-connect", "wait-resync"]);
        let mut v84 = v.clone();
        v84.generation = Some(Generation::V8);
        let p = plan("r0", &v84, &s);
        assert!(!p.steps.iter().any(|s| s.id == "survivor-disconnect"));
    }

    #[test]
    fn refusals() {
        let s = view("alice", "Primary", "StandAlone", 0xC0, 0xA0, 4000);
        let mut v = view("bob", "Primary", "StandAlone", 0xB0, 0xA0, 400);
        v.volumes[0].open = Some(true);
        assert_eq!(assess("r0", &v, &s, classify(&v, &s).0, &Allow::default()).unwrap_err().kind, "victim-open");
        let v = view("bob", "Secondary", "StandAlone", 0xB0, 0xA0, 400);
        // wrong victim: alice changed more
        assert_eq!(assess("r0", &s, &v, classify(&s, &v).0, &Allow::default()).unwrap_err().kind, "wrong-victim");
        assert!(assess("r0", &s, &v, classify(&s, &v).0, &Allow { wrong_victim: true }).is_ok());
        let u = view("bob", "Secondary", "StandAlone", 0x70, 0x90, 400);
        let mut u = u;
        u.volumes[0].gi = Some(Gi::new(0x70, 0x90, 0x300, 0x500));
        assert_eq!(assess("r0", &u, &s, classify(&u, &s).0, &Allow::default()).unwrap_err().kind, "unrelated-data");
        let mut bad = s.clone();
        bad.volumes[0].disk = Some("Outdated".into());
        assert_eq!(assess("r0", &v, &bad, classify(&v, &bad).0, &Allow::default()).unwrap_err().kind, "survivor-not-uptodate");
        let mut h1 = view("bob", "Secondary", "Connected", 0xC0, 0, 0);
        h1.volumes[0].replication = Some("Established".into());
        h1.volumes[0].peer_disk = Some("UpToDate".into());
        let mut h2 = h1.clone();
        h2.node = "alice".into();
        let r = assess("r0", &h1, &h2, classify(&h1, &h2).0, &Allow::default()).unwrap_err();
        assert!(r.nothing_to_do && r.kind == "already-healthy");
    }

    #[test]
    fn crm_checks_read_pacemakers_view() {
        let views = [view("alice", "Primary", "Connected", 0xC0, 0, 0)];
        let unmanaged = Check::CrmManaged { resource: "c".into(), managed: false };
        assert!(unmanaged.needs_crm() && !Check::NotOpen { node: "alice".into() }.needs_crm());
        assert!(Check::All { checks: vec![Check::NotOpen { node: "alice".into() }, unmanaged.clone()] }.needs_crm());
        // without pacemaker's state a pacemaker check never holds
        assert_eq!(unmanaged.holds(&views).unwrap_err(), "pacemaker's state was not read");
        let mut crm = CrmView { managed: Some(false), constraints: vec!["x".into()], promoted: vec!["bob".into()], failed_on: vec![] };
        assert!(unmanaged.holds_in(&views, Some(&crm)).is_ok());
        assert!(Check::CrmManaged { resource: "c".into(), managed: true }.holds_in(&views, Some(&crm)).unwrap_err().contains("does not manage"));
        assert!(Check::CrmConstraint { id: "x".into(), present: false }.holds_in(&views, Some(&crm)).unwrap_err().contains("still in the CIB"));
        assert!(Check::CrmConstraint { id: "y".into(), present: false }.holds_in(&views, Some(&crm)).is_ok());
        let promoted = Check::CrmPromoted { resource: "c".into(), node: "alice".into() };
        assert_eq!(promoted.holds_in(&views, Some(&crm)).unwrap_err(), "pacemaker runs c Promoted on bob, not on alice");
        crm.promoted = vec!["alice".into()];
        assert!(promoted.holds_in(&views, Some(&crm)).is_ok());
        crm.failed_on = vec!["bob".into()];
        assert!(Check::CrmNoFailures { resource: "c".into() }.holds_in(&views, Some(&crm)).unwrap_err().contains("recorded on bob"));
        crm.managed = None;
        assert!(unmanaged.holds_in(&views, Some(&crm)).is_err());
    }

    #[test]
    fn fingerprint_changes_with_state() {
        let a = view("alice", "Primary", "StandAlone", 0xC0, 0xA0, 4000);
        let b = view("bob", "Secondary", "StandAlone", 0xB0, 0xA0, 400);
        let f1 = fingerprint(&[a.clone(), b.clone()]);
        assert_eq!(f1, fingerprint(&[b.clone(), a.clone()]));
        let mut b2 = b.clone();
        b2.volumes[0].oos_kib = Some(404);
        assert_ne!(f1, fingerprint(&[a, b2]));
    }
}
