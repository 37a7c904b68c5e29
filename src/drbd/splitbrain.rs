//! Split-brain classification from BOTH nodes' states, with the evidence per node and a
//! recommended victim. Pure: inputs in ([`NodeInput`] for each node), verdict out ([`Report`]).
//!
//! Verdicts: healthy, syncing, disconnected (not a split brain), split brain, unrelated data (refuse
//! to touch), unknown. The GIs decide when both sides' are known (DRBD's own `uuid_compare` rules,
//! see [`Gi::compare`]); otherwise the kernel log lines (`Split-Brain detected`, `Unrelated data`)
//! and events2 helper calls; StandAlone alone does not prove a split brain.
//!
//! The victim (whose changes get discarded) is recommended only when every piece of evidence that
//! prefers a side prefers the same one: fewer changed blocks, was Secondary during the split, not
//! mounted / not held open, not running the cluster service. When they disagree, or nothing tells
//! the sides apart, there is no recommendation and the report says why.
use super::parse::evidence::{Holder, KernelEvent, KernelEventKind, Mount, Service};
use super::parse::Paste;
use super::state::*;
use serde::Serialize;
use std::fmt::Write;

/// Everything known about one node.
#[derive(Debug, Clone, Default)]
pub struct NodeInput {
    /// Node name as the admin knows it (host name; what the peer's connection is named after).
    pub name: String,
    pub state: DrbdState,
    pub kernel_log: Vec<KernelEvent>,
    /// This node's mounts (/proc/mounts).
    pub mounts: Vec<Mount>,
    /// Processes holding the DRBD devices open (fuser/lsof), as read by the driver.
    pub holders: Vec<Holder>,
    /// Cluster services as this node's `clustat`/`crm_mon` sees them.
    pub services: Vec<Service>,
    /// Mounts / holders were read (so "none" means none, not "not looked").
    pub mounts_read: bool,
    pub holders_read: bool,
}

impl NodeInput {
    pub fn from_paste(name: impl Into<String>, p: Paste) -> Self {
        use super::parse::Format;
        let has = |f: Format| p.sections.iter().any(|s| s.format == f);
        NodeInput {
            mounts_read: has(Format::Mounts),
            holders_read: has(Format::Holders),
            name: name.into(),
            state: p.state,
            kernel_log: p.kernel_log,
            mounts: p.mounts,
            holders: p.holders,
            services: p.services,
        }
    }
}

/// Options of a classification.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Node the cluster service runs on (overrides what clustat output says).
    pub service_on: Option<String>,
    /// Only this resource.
    pub resource: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Healthy,
    Syncing,
    /// Not connected, and not a split brain (same data, or one side simply newer).
    Disconnected,
    SplitBrain,
    /// No common history: refuse to touch.
    UnrelatedData,
    Unknown,
}

impl Verdict {
    pub fn describe(self) -> &'static str {
        match self {
            Verdict::Healthy => "healthy",
            Verdict::Syncing => "syncing",
            Verdict::Disconnected => "disconnected (not a split brain)",
            Verdict::SplitBrain => "SPLIT BRAIN",
            Verdict::UnrelatedData => "UNRELATED DATA (refuse to touch)",
            Verdict::Unknown => "unknown",
        }
    }
    /// Severity order for combining volumes: the worst wins.
    fn rank(self) -> u8 {
        match self {
            Verdict::Healthy => 0,
            Verdict::Syncing => 1,
            Verdict::Disconnected => 2,
            Verdict::Unknown => 3,
            Verdict::SplitBrain => 4,
            Verdict::UnrelatedData => 5,
        }
    }
}

/// Per-volume comparison.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeFinding {
    pub volume: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_gi: Option<Gi>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_gi: Option<Gi>,
    /// GI comparison seen from the local node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gi_verdict: Option<GiVerdict>,
    pub verdict: Verdict,
}

/// A yes/no/unknown fact with the evidence behind it.
#[derive(Debug, Clone, Serialize)]
pub struct Fact {
    pub value: Option<bool>,
    pub because: Vec<String>,
}

/// The evidence about one node for one resource.
#[derive(Debug, Clone, Serialize)]
pub struct NodeFinding {
    pub node: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_now: Option<Role>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnState>,
    pub disks: Vec<(u32, Option<DiskState>)>,
    /// Was Primary while the nodes were apart.
    pub was_primary_during_split: Fact,
    /// Data changed on this side since the nodes parted, KiB (handshake `bits:` × 4 KiB, or
    /// out-of-sync), with where the figure comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed_kib: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed_source: Option<String>,
    pub devices: Vec<String>,
    pub mounts: Vec<Mount>,
    pub holders: Vec<Holder>,
    /// DRBD says the device is open (events2 `open:yes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_open: Option<bool>,
    /// Mounted or held open (None: not read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_use: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs_service: Option<bool>,
    /// Kernel log lines about the disconnect and the split-brain detection.
    pub kernel_lines: Vec<KernelEvent>,
}


#[derive(Debug, Clone, Serialize)]
pub struct Recommendation {
    /// Node whose changes would be discarded.
    pub victim: String,
    pub survivor: String,
    pub reasons: Vec<String>,
}

/// The verdict for one resource.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceVerdict {
    pub resource: String,
    pub verdict: Verdict,
    /// Why, in words.
    pub explanation: Vec<String>,
    pub volumes: Vec<VolumeFinding>,
    pub local: NodeFinding,
    pub peer: NodeFinding,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recommendation: Option<Recommendation>,
    /// Why there is no recommendation (for a split brain: the contradiction, or missing evidence).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_recommendation: Option<String>,
    /// Warnings (automatic after-sb policies, one-sided evidence...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub local: String,
    pub peer: String,
    pub resources: Vec<ResourceVerdict>,
}

impl Report {
    /// The worst verdict over all resources.
    pub fn worst(&self) -> Option<Verdict> {
        self.resources.iter().map(|r| r.verdict).max_by_key(|v| v.rank())
    }
}

// ----------------------------------------------------------------------------------------------

/// Name the two nodes: given names win; else each side's connection names the other.
pub fn node_names(local: &DrbdState, peer: &DrbdState) -> (Option<String>, Option<String>) {
    let first_peer = |st: &DrbdState| {
        st.resources
            .iter()
            .flat_map(|r| r.connections.iter())
            .find_map(|c| c.peer.clone().filter(|p| p != "peer"))
    };
    (first_peer(peer), first_peer(local))
}

/// Resources to classify: the union of names on both sides (unnamed ones matched by minor).
fn resource_names(local: &DrbdState, peer: &DrbdState) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in local.resources.iter().chain(peer.resources.iter()) {
        if r.unconfigured {
            continue;
        }
        let n = key_of(r);
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

fn key_of(r: &Resource) -> String {
    if r.name.is_empty() {
        r.display_name()
    } else {
        r.name.clone()
    }
}

fn find<'a>(st: &'a DrbdState, key: &str) -> Option<&'a Resource> {
    st.resources.iter().find(|r| !r.unconfigured && key_of(r) == key)
}

/// Classify every resource seen on either node.
pub fn classify(local: &NodeInput, peer: &NodeInput, opts: &Options) -> Report {
    let mut resources = Vec::new();
    for name in resource_names(&local.state, &peer.state) {
        if opts.resource.as_ref().is_some_and(|r| *r != name) {
            continue;
        }
        resources.push(classify_resource(&name, local, peer, opts));
    }
    Report { local: local.name.clone(), peer: peer.name.clone(), resources }
}

fn minors_of(node: &NodeInput, r: Option<&Resource>, name: &str) -> Vec<(u32, u32)> {
    let mut v: Vec<(u32, u32)> = r
        .map(|r| r.volumes.iter().filter_map(|v| v.minor.map(|m| (v.volume, m))).collect())
        .unwrap_or_default();
    if v.is_empty() {
        // kernel log prefixes name them: "drbd r0/0 drbd0: ..."
        for k in &node.kernel_log {
            if let (Some(r), Some(vol), Some(m)) = (&k.resource, k.volume, k.minor) {
                if r == name && !v.contains(&(vol, m)) {
                    v.push((vol, m));
                }
            }
        }
    }
    if v.is_empty() {
        if let Some(c) = node.state.config(name) {
            let host = c.hosts.iter().find(|h| h.name == node.name);
            let vols = host.map(|h| h.volumes.clone()).filter(|v| !v.is_empty()).unwrap_or_else(|| c.volumes.clone());
            v = vols.iter().filter_map(|x| x.minor.map(|m| (x.volume, m))).collect();
        }
    }
    v
}

fn device_matches(dev: &str, name: &str, minors: &[(u32, u32)]) -> bool {
    if let Some(m) = dev.strip_prefix("/dev/drbd").and_then(|m| m.parse::<u32>().ok()) {
        return minors.iter().any(|(_, x)| *x == m);
    }
    if let Some(rest) = dev.strip_prefix("/dev/drbd/by-res/") {
        return rest.split('/').next() == Some(name);
    }
    false
}

fn node_finding(
    node: &NodeInput,
    r: Option<&Resource>,
    name: &str,
    service_owner: Option<&str>,
    fallback_minors: &[(u32, u32)],
) -> NodeFinding {
    let mut minors = minors_of(node, r, name);
    if minors.is_empty() {
        // the peer's minors (configurations are symmetric in practice); else, with one resource
        // only, every DRBD device on the node is this resource's
        minors = fallback_minors.to_vec();
    }
    let single = node.state.resources.iter().filter(|r| !r.unconfigured).count() <= 1;
    if minors.is_empty() && single {
        let devs = node.mounts.iter().map(|m| m.device.as_str()).chain(node.holders.iter().filter_map(|h| h.device.as_deref()));
        for d in devs {
            if let Some(m) = d.strip_prefix("/dev/drbd").and_then(|m| m.parse::<u32>().ok()) {
                if !minors.iter().any(|(_, x)| *x == m) {
                    minors.push((minors.len() as u32, m));
                }
            }
        }
    }
    let devices: Vec<String> = minors.iter().map(|(_, m)| format!("/dev/drbd{m}")).collect();
    let conn = r.and_then(|r| r.connections.first());
    let kernel_lines: Vec<KernelEvent> = node
        .kernel_log
        .iter()
        .filter(|k| {
            let ours = k.resource.as_deref() == Some(name)
                || k.minor.is_some_and(|m| minors.iter().any(|(_, x)| *x == m))
                || (k.resource.is_none() && k.minor.is_none());
            let relevant = match &k.kind {
                KernelEventKind::Other | KernelEventKind::Disk { .. } | KernelEventKind::PeerRole { .. } => false,
                KernelEventKind::Conn { from, to } => from == "Connected" || to == "StandAlone" || to == "Connected",
                _ => true,
            };
            ours && relevant
        })
        .cloned()
        .collect();
    let device_open = r.and_then(|r| {
        let v: Vec<bool> = r.volumes.iter().filter_map(|v| v.open).collect();
        if v.is_empty() {
            None
        } else {
            Some(v.iter().any(|x| *x))
        }
    });
    let mounts: Vec<Mount> = node.mounts.iter().filter(|m| device_matches(&m.device, name, &minors)).cloned().collect();
    let holders: Vec<Holder> = node
        .holders
        .iter()
        .filter(|h| h.device.as_deref().is_none_or(|d| device_matches(d, name, &minors)))
        .cloned()
        .collect();
    let in_use = if !mounts.is_empty() || !holders.is_empty() || device_open == Some(true) {
        Some(true)
    } else if device_open == Some(false)
        || (node.mounts_read && (!minors.is_empty() || !node.mounts.iter().any(|m| m.device.starts_with("/dev/drbd"))))
    {
        Some(false)
    } else {
        None
    };
    NodeFinding {
        in_use,
        node: node.name.clone(),
        role_now: r.and_then(|r| r.role.clone()),
        connection: conn.and_then(|c| c.state.clone()),
        disks: r.map(|r| r.volumes.iter().map(|v| (v.volume, v.disk.clone())).collect()).unwrap_or_default(),
        was_primary_during_split: Fact { value: None, because: vec![] },
        changed_kib: None,
        changed_source: None,
        mounts,
        holders,
        devices,
        device_open,
        runs_service: service_owner.map(|o| o == node.name),
        kernel_lines,
    }
}

/// Changed data since the split: the node's own handshake line (`self ... bits:N`), else the
/// peer's view of it (`peer ... bits:N` in the other node's log), else out-of-sync KiB.
fn changed_data(me: &NodeFinding, other: &NodeFinding, r: Option<&Resource>) -> (Option<u64>, Option<String>) {
    let bits_of = |f: &NodeFinding, side: &str| {
        let v: Vec<u64> = f
            .kernel_lines
            .iter()
            .filter_map(|k| match &k.kind {
                KernelEventKind::HandshakeGi { side: s, bits: Some(b), .. } if s == side => Some(*b),
                _ => None,
            })
            .collect();
        if v.is_empty() {
            None
        } else {
            // the last handshake per volume; several volumes add up (approximated: sum of the last
            // line per distinct minor is not knowable without minors on 9 lines, so take the max)
            v.iter().copied().max()
        }
    };
    if let Some(b) = bits_of(me, "self") {
        return (Some(b * 4), Some(format!("{b} changed 4 KiB blocks (bits:{b} in its handshake log line)")));
    }
    if let Some(b) = bits_of(other, "peer") {
        return (Some(b * 4), Some(format!("{b} changed 4 KiB blocks (bits:{b} in the peer's handshake log line)")));
    }
    if let Some(o) = r.and_then(|r| r.out_of_sync_kib()) {
        return (Some(o), Some(format!("{o} KiB out of sync (blocks written while apart)")));
    }
    (None, None)
}

fn was_primary(me: &mut NodeFinding, r: Option<&Resource>, other_gi_current: &[Option<u64>], split: bool) {
    let mut yes = Vec::new();
    let mut no = Vec::new();
    if me.role_now == Some(Role::Primary) {
        yes.push("it is Primary now".to_string());
    }
    // kernel log: role changes after the last disconnect
    let last_disc = me.kernel_lines.iter().rposition(|k| matches!(&k.kind, KernelEventKind::Conn { from, .. } if from == "Connected"));
    if let Some(i) = last_disc {
        for k in &me.kernel_lines[i..] {
            if let KernelEventKind::Role { from, to } = &k.kind {
                if to == "Primary" {
                    yes.push(format!("promoted to Primary after the disconnect (log line {})", k.line));
                } else if from == "Primary" {
                    yes.push(format!("was Primary after the disconnect, demoted later (log line {})", k.line));
                }
            }
        }
        if let Some(KernelEvent { text, .. }) = me.kernel_lines.get(i) {
            if text.contains("role( Primary") || text.contains("Primary/") {
                yes.push("was Primary at the disconnect (log)".to_string());
            }
        }
    }
    if let Some(r) = r {
        for v in &r.volumes {
            if let Some(g) = &v.gi {
                if let Some(f) = g.flags.and_then(|f| f.primary) {
                    if f {
                        yes.push(format!("volume {}: GI flag \"was/is primary\" is set", v.volume));
                    } else {
                        no.push(format!("volume {}: GI flag \"was/is primary\" is clear", v.volume));
                    }
                }
                // a new data generation made while apart carries the role in its lowest bit
                let differs = other_gi_current.iter().flatten().all(|c| Gi::masked(*c) != Gi::masked(g.current));
                if split && differs && g.current & 1 == 1 {
                    yes.push(format!(
                        "volume {}: its current UUID {:016X} has the primary bit: its data generation began as Primary",
                        v.volume, g.current
                    ));
                }
            }
        }
    }
    me.was_primary_during_split = if !yes.is_empty() {
        Fact { value: Some(true), because: yes }
    } else if !no.is_empty() && me.role_now == Some(Role::Secondary) {
        no.push("it is Secondary now".into());
        Fact { value: Some(false), because: no }
    } else {
        Fact { value: None, because: vec!["no GI flags or kernel log to tell".into()] }
    };
}

fn last_event(f: &NodeFinding, pred: fn(&KernelEventKind) -> bool) -> Option<KernelEvent> {
    f.kernel_lines.iter().rev().find(|k| pred(&k.kind)).cloned()
}

/// Classify one resource.
pub fn classify_resource(name: &str, local: &NodeInput, peer: &NodeInput, opts: &Options) -> ResourceVerdict {
    let lr = find(&local.state, name);
    let pr = find(&peer.state, name);
    // where the cluster service runs: given, or from either node's clustat/crm_mon
    let service_owner = opts.service_on.clone().or_else(|| {
        local
            .services
            .iter()
            .chain(peer.services.iter())
            .find(|s| s.state.eq_ignore_ascii_case("started"))
            .and_then(|s| s.owner.clone())
    });
    let (lm, pm) = (minors_of(local, lr, name), minors_of(peer, pr, name));
    let mut lf = node_finding(local, lr, name, service_owner.as_deref(), &pm);
    let mut pf = node_finding(peer, pr, name, service_owner.as_deref(), &lm);
    let mut explanation = Vec::new();
    let mut warnings = Vec::new();

    // ---- per volume GI comparison
    let mut vnrs: Vec<u32> = lr.iter().chain(pr.iter()).flat_map(|r| r.volumes.iter().map(|v| v.volume)).collect();
    vnrs.sort_unstable();
    vnrs.dedup();
    let mut volumes = Vec::new();
    for vnr in &vnrs {
        let lg = lr.and_then(|r| r.volume(*vnr)).and_then(|v| v.gi);
        let pg = pr.and_then(|r| r.volume(*vnr)).and_then(|v| v.gi);
        let (gv, verdict) = match (lg, pg) {
            (Some(a), Some(b)) => {
                let c = a.compare(&b);
                let v = match c.relation {
                    GiRelation::SplitBrain { .. } => Verdict::SplitBrain,
                    GiRelation::Unrelated => Verdict::UnrelatedData,
                    GiRelation::InSync | GiRelation::BothJustCreated => Verdict::Healthy,
                    GiRelation::LocalIsSource { .. } | GiRelation::PeerIsSource { .. } => Verdict::Disconnected,
                };
                (Some(c), v)
            }
            _ => (None, Verdict::Unknown),
        };
        volumes.push(VolumeFinding { volume: *vnr, local_gi: lg, peer_gi: pg, gi_verdict: gv, verdict });
    }

    // ---- connection picture
    let lc = lf.connection.clone();
    let pc = pf.connection.clone();
    let connected = |c: &Option<ConnState>| c.as_ref().is_some_and(|c| c.is_connected());
    let both_connected = connected(&lc) && connected(&pc)
        || (connected(&lc) && pr.is_none())
        || (connected(&pc) && lr.is_none());
    let syncing: Vec<String> = [lr, pr]
        .iter()
        .flatten()
        .flat_map(|r| r.connections.iter().flat_map(|c| c.peer_devices.iter()))
        .filter(|p| p.replication.as_ref().is_some_and(|x| x.is_syncing()))
        .map(|p| {
            format!(
                "volume {} {}{}",
                p.volume,
                p.replication.as_ref().map_or("", |x| x.as_str()),
                p.sync.as_ref().and_then(|s| s.done_percent).map_or(String::new(), |d| format!(" {d:.1}% done"))
            )
        })
        .collect();

    // ---- log and helper evidence
    let sb_logged = |f: &NodeFinding| {
        last_event(f, |k| matches!(k, KernelEventKind::SplitBrain { resolved: false, .. } | KernelEventKind::SplitBrainHelper))
    };
    let unrelated_logged = |f: &NodeFinding| last_event(f, |k| matches!(k, KernelEventKind::UnrelatedData));
    let auto_solved = |f: &NodeFinding| last_event(f, |k| matches!(k, KernelEventKind::SplitBrain { resolved: true, .. }));
    let helper_sb: Vec<String> = [(&local.name, &local.state), (&peer.name, &peer.state)]
        .iter()
        .flat_map(|(n, st)| {
            st.helpers
                .iter()
                .filter(|h| h.resource == name && h.helper.contains("split-brain"))
                .map(move |h| format!("{n}: events2 shows the {} handler was called", h.helper))
        })
        .collect();

    let gi_worst = volumes.iter().filter(|v| v.gi_verdict.is_some()).map(|v| v.verdict).max_by_key(|v| v.rank());
    let all_gis_known = !volumes.is_empty() && volumes.iter().all(|v| v.gi_verdict.is_some());
    let cs = |f: &NodeFinding| f.connection.as_ref().map_or("unknown".to_string(), |c| c.to_string());

    let verdict = if lr.is_none() && pr.is_none() {
        explanation.push("neither node's output shows this resource".into());
        Verdict::Unknown
    } else if both_connected {
        if !syncing.is_empty() {
            explanation.push(format!("connected and resyncing: {}", syncing.join(", ")));
            Verdict::Syncing
        } else {
            let disks_ok = [lr, pr].iter().flatten().all(|r| {
                r.volumes.iter().all(|v| v.disk.as_ref().is_none_or(|d| *d == DiskState::UpToDate))
                    && r.connections.iter().flat_map(|c| c.peer_devices.iter()).all(|p| {
                        p.peer_disk.as_ref().is_none_or(|d| *d == DiskState::UpToDate)
                    })
            });
            if disks_ok {
                explanation.push("both nodes are connected and every disk they report is UpToDate".into());
                Verdict::Healthy
            } else {
                explanation.push(
                    "connected, but not every disk is UpToDate and no resync is running; not a split brain".into(),
                );
                Verdict::Unknown
            }
        }
    } else {
        explanation.push(format!(
            "not connected: {} is {}, {} is {}",
            lf.node,
            cs(&lf),
            pf.node,
            cs(&pf)
        ));
        match gi_worst {
            Some(Verdict::UnrelatedData) => {
                for v in volumes.iter().filter(|v| v.verdict == Verdict::UnrelatedData) {
                    explanation.push(format!("volume {}: {}", v.volume, v.gi_verdict.as_ref().map_or("", |g| &g.explanation)));
                }
                Verdict::UnrelatedData
            }
            Some(Verdict::SplitBrain) => {
                for v in volumes.iter().filter(|v| v.verdict == Verdict::SplitBrain) {
                    explanation.push(format!(
                        "volume {}: {} (rule {})",
                        v.volume,
                        v.gi_verdict.as_ref().map_or("", |g| &g.explanation),
                        v.gi_verdict.as_ref().map_or(0, |g| g.rule)
                    ));
                }
                Verdict::SplitBrain
            }
            Some(_) if all_gis_known => {
                for v in &volumes {
                    if let Some(g) = &v.gi_verdict {
                        explanation.push(format!("volume {}: {}", v.volume, g.explanation));
                    }
                }
                if let Some(k) = sb_logged(&lf).or_else(|| sb_logged(&pf)) {
                    warnings.push(format!(
                        "the kernel log reports a split brain (line {}: {:?}), but the GIs now show no divergence: it was resolved since, or the log is older than these GIs",
                        k.line, k.text
                    ));
                }
                explanation.push("the GIs show no divergence: reconnecting resolves it (a resync runs if one side is newer)".into());
                Verdict::Disconnected
            }
            _ => {
                if let Some(k) = unrelated_logged(&lf).or_else(|| unrelated_logged(&pf)) {
                    explanation.push(format!("kernel log line {}: {:?}", k.line, k.text));
                    Verdict::UnrelatedData
                } else if let Some(k) = sb_logged(&lf).or_else(|| sb_logged(&pf)) {
                    explanation.push(format!(
                        "kernel log line {}: {:?} (GIs of both nodes are needed to confirm: `drbdadm get-gi {name}` on each)",
                        k.line, k.text
                    ));
                    Verdict::SplitBrain
                } else if !helper_sb.is_empty() {
                    explanation.extend(helper_sb.iter().cloned());
                    Verdict::SplitBrain
                } else {
                    let trying = |f: &NodeFinding| f.connection.as_ref().is_some_and(|c| c.is_trying());
                    if trying(&lf) && trying(&pf) {
                        explanation.push(
                            "both nodes are trying to connect: a network problem, not (yet) a split brain; \
                             DRBD compares the GIs when they reach each other"
                                .into(),
                        );
                        Verdict::Disconnected
                    } else {
                        explanation.push(format!(
                            "StandAlone alone does not prove a split brain (admin disconnect, configuration error); \
                             GIs of both nodes are needed: run `drbdadm get-gi {name}` (8.4) or \
                             `drbdadm show-gi {name}` (9) on each node, plus `dmesg | grep drbd`"
                        ));
                        Verdict::Unknown
                    }
                }
            }
        }
    };
    if let Some(k) = auto_solved(&lf).or_else(|| auto_solved(&pf)) {
        warnings.push(format!(
            "an automatic after-sb policy resolved a split brain (log line {}: {:?}): one side's changes were discarded",
            k.line, k.text
        ));
    }
    if let Some(c) = local.state.config(name).or_else(|| peer.state.config(name)) {
        if c.net.auto_resolves() {
            warnings.push(format!(
                "automatic split-brain policies are configured (after-sb-0pri {}, after-sb-1pri {}, after-sb-2pri {}): DRBD may discard one side's changes by itself",
                c.net.after_sb_0pri.as_deref().unwrap_or("disconnect"),
                c.net.after_sb_1pri.as_deref().unwrap_or("disconnect"),
                c.net.after_sb_2pri.as_deref().unwrap_or("disconnect"),
            ));
        }
    }

    // ---- per-node evidence that needs both sides
    let split = verdict == Verdict::SplitBrain;
    let pcur: Vec<Option<u64>> = volumes.iter().map(|v| v.peer_gi.map(|g| g.current)).collect();
    let lcur: Vec<Option<u64>> = volumes.iter().map(|v| v.local_gi.map(|g| g.current)).collect();
    was_primary(&mut lf, lr, &pcur, split);
    was_primary(&mut pf, pr, &lcur, split);
    let (lk, ls) = changed_data(&lf, &pf, lr);
    let (pk, ps) = changed_data(&pf, &lf, pr);
    (lf.changed_kib, lf.changed_source, pf.changed_kib, pf.changed_source) = (lk, ls, pk, ps);

    let (recommendation, no_recommendation) = if split {
        recommend(&lf, &pf)
    } else if verdict == Verdict::UnrelatedData {
        (None, Some("unrelated data: do not discard either side; find out which data set is the right one first".into()))
    } else {
        (None, None)
    };
    ResourceVerdict {
        resource: name.to_string(),
        verdict,
        explanation,
        volumes,
        local: lf,
        peer: pf,
        recommendation,
        no_recommendation,
        warnings,
    }
}

/// Which node each criterion prefers as the victim (0 = local, 1 = peer), with the reason.
fn recommend(a: &NodeFinding, b: &NodeFinding) -> (Option<Recommendation>, Option<String>) {
    let nodes = [a, b];
    let mut votes: Vec<(usize, String)> = Vec::new();
    // fewer changes
    if let (Some(x), Some(y)) = (a.changed_kib, b.changed_kib) {
        if x != y {
            let (v, s) = if x < y { (0, 1) } else { (1, 0) };
            votes.push((
                v,
                format!(
                    "fewer changes: {} KiB on {} against {} KiB on {}",
                    nodes[v].changed_kib.unwrap_or(0),
                    nodes[v].node,
                    nodes[s].changed_kib.unwrap_or(0),
                    nodes[s].node
                ),
            ));
        }
    }
    // role during the split
    match (a.was_primary_during_split.value, b.was_primary_during_split.value) {
        (Some(false), Some(true)) => votes.push((0, format!("{} was Secondary during the split, {} was Primary", a.node, b.node))),
        (Some(true), Some(false)) => votes.push((1, format!("{} was Secondary during the split, {} was Primary", b.node, a.node))),
        _ => {}
    }
    // role now, when the role during the split did not decide
    if !votes.iter().any(|(_, r)| r.contains("during the split")) {
        match (&a.role_now, &b.role_now) {
            (Some(Role::Secondary), Some(Role::Primary)) => {
                votes.push((0, format!("{} is Secondary now, {} is Primary", a.node, b.node)))
            }
            (Some(Role::Primary), Some(Role::Secondary)) => {
                votes.push((1, format!("{} is Secondary now, {} is Primary", b.node, a.node)))
            }
            _ => {}
        }
    }
    // in use (mounted / open)
    match (a.in_use, b.in_use) {
        (Some(true), Some(false)) => votes.push((1, format!("{} has the device mounted or open, {} does not", a.node, b.node))),
        (Some(false), Some(true)) => votes.push((0, format!("{} has the device mounted or open, {} does not", b.node, a.node))),
        _ => {}
    }
    // cluster service
    match (a.runs_service, b.runs_service) {
        (Some(false), Some(true)) => votes.push((0, format!("the cluster service runs on {}", b.node))),
        (Some(true), Some(false)) => votes.push((1, format!("the cluster service runs on {}", a.node))),
        _ => {}
    }
    if votes.is_empty() {
        return (
            None,
            Some(
                "no evidence tells the nodes apart (changes, roles, mounts, service): decide from what the \
                 applications wrote, then name the victim yourself"
                    .into(),
            ),
        );
    }
    let first = votes[0].0;
    if votes.iter().all(|(v, _)| *v == first) {
        let victim = nodes[first];
        let survivor = nodes[1 - first];
        (
            Some(Recommendation {
                victim: victim.node.clone(),
                survivor: survivor.node.clone(),
                reasons: votes.into_iter().map(|(_, r)| r).collect(),
            }),
            None,
        )
    } else {
        let for_a: Vec<&str> = votes.iter().filter(|(v, _)| *v == 0).map(|(_, r)| r.as_str()).collect();
        let for_b: Vec<&str> = votes.iter().filter(|(v, _)| *v == 1).map(|(_, r)| r.as_str()).collect();
        (
            None,
            Some(format!(
                "the evidence contradicts itself: for discarding {}: {}; for discarding {}: {}. \
                 Find out which side's data the applications need before choosing",
                a.node,
                for_a.join("; "),
                b.node,
                for_b.join("; ")
            )),
        )
    }
}

// ----------------------------------------------------------------------------------------------
// Human rendering

fn fact(f: &Fact) -> String {
    let v = match f.value {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    };
    format!("{v} ({})", f.because.join("; "))
}

fn node_block(n: &NodeFinding, out: &mut String) {
    let _ = writeln!(
        out,
        "  {}: role {}, connection {}, disks {}",
        n.node,
        n.role_now.as_ref().map_or("?".into(), |r| r.to_string()),
        n.connection.as_ref().map_or("?".into(), |c| c.to_string()),
        n.disks
            .iter()
            .map(|(v, d)| format!("{v}:{}", d.as_ref().map_or("?".into(), |d| d.to_string())))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = writeln!(out, "    primary during the split: {}", fact(&n.was_primary_during_split));
    let _ = writeln!(out, "    changed data: {}", n.changed_source.as_deref().unwrap_or("unknown"));
    let mounts = if n.mounts.is_empty() {
        "none seen".to_string()
    } else {
        n.mounts.iter().map(|m| format!("{} on {}", m.device, m.mountpoint)).collect::<Vec<_>>().join(", ")
    };
    let _ = writeln!(out, "    mounts: {mounts}");
    if !n.holders.is_empty() || n.device_open.is_some() {
        let _ = writeln!(
            out,
            "    open: {}{}",
            if n.device_open == Some(true) { "DRBD reports the device open; " } else { "" },
            n.holders
                .iter()
                .map(|h| match h.pid {
                    Some(p) => format!("{} (pid {p})", h.command),
                    None => h.command.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(s) = n.runs_service {
        let _ = writeln!(out, "    cluster service here: {}", if s { "yes" } else { "no" });
    }
    for k in &n.kernel_lines {
        let _ = writeln!(out, "    log line {}: {}{}", k.line, k.time.as_ref().map_or(String::new(), |t| format!("{t} ")), k.text);
    }
}

/// Text report for admins.
pub fn render(rep: &Report) -> String {
    let mut out = String::new();
    for r in &rep.resources {
        let _ = writeln!(out, "resource {}: {}", r.resource, r.verdict.describe());
        for e in &r.explanation {
            let _ = writeln!(out, "  - {e}");
        }
        for v in &r.volumes {
            if v.local_gi.is_some() || v.peer_gi.is_some() {
                let _ = writeln!(
                    out,
                    "  volume {} GIs: {} {}  /  {} {}",
                    v.volume,
                    r.local.node,
                    v.local_gi.map_or("?".into(), |g| g.tuple_string()),
                    r.peer.node,
                    v.peer_gi.map_or("?".into(), |g| g.tuple_string())
                );
            }
        }
        let _ = writeln!(out, " evidence:");
        node_block(&r.local, &mut out);
        node_block(&r.peer, &mut out);
        if let Some(rec) = &r.recommendation {
            let _ = writeln!(out, " recommended victim (its changes are discarded): {}", rec.victim);
            for reason in &rec.reasons {
                let _ = writeln!(out, "  - {reason}");
            }
            let _ = writeln!(
                out,
                "  then: twonode drbd recover {} --discard {} --dry-run",
                r.resource, rec.victim
            );
        }
        if let Some(n) = &r.no_recommendation {
            let _ = writeln!(out, " no recommendation: {n}");
        }
        for w in &r.warnings {
            let _ = writeln!(out, " warning: {w}");
        }
        out.push('\n');
    }
    if rep.resources.is_empty() {
        out.push_str("no DRBD resources in either node's output\n");
    }
    out
}
