//! Findings about a pacemaker two-node cluster: a pure function of the CIB model, optionally the
//! corosync.conf facts (two_node, quorum device) and the DRBD facts (configuration, status). Each
//! finding carries its evidence and the exact pcs and crm commands that fix it, so `pacemaker
//! validate`, `quorum validate --cib` and doctor can all show the same words.
use super::cib::{Cib, Targets, Usable};
use crate::diag::{Diagnostic, Severity};
use crate::drbd::state::{ConnState, DiskState, Resource, ResourceConfig};
use serde::Serialize;

/// What corosync.conf says about quorum, as far as fencing safety goes.
#[derive(Debug, Clone, Serialize)]
pub struct CorosyncFacts {
    /// Where it came from (for evidence).
    pub source: String,
    pub two_node: bool,
    /// A quorum device (qdevice / the twonode arbiter) is configured.
    pub quorum_device: bool,
    pub nodes: usize,
}

impl CorosyncFacts {
    /// Read with the corosync.conf parser of `quorum::corosync_conf`.
    pub fn from_text(text: &str, source: &str) -> Result<CorosyncFacts, String> {
        let conf = crate::quorum::corosync_conf::CorosyncConf::parse(text).map_err(|e| format!("{source}:{}:{}: {}", e.line, e.col, e.msg))?;
        let q = conf.quorum_config(source)?;
        Ok(CorosyncFacts { source: source.into(), two_node: q.two_node, quorum_device: q.device.is_some(), nodes: q.nodes.len() })
    }
}

/// What the DRBD side says: its configuration (`drbdadm dump`, drbd.conf) and/or its status.
#[derive(Debug, Clone, Default)]
pub struct DrbdFacts {
    pub config_source: Option<String>,
    pub configs: Option<Vec<ResourceConfig>>,
    pub status_source: Option<String>,
    pub status: Option<Vec<Resource>>,
}

/// The commands that fix a finding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Fix {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pcs: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crm: Option<String>,
    /// Anything else (a drbd.conf change).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other: Option<String>,
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// Stable identifier (`pcmk.fencing-disabled`, ...).
    pub code: String,
    pub message: String,
    /// The facts it rests on (CIB line numbers, values, the other files).
    pub evidence: Vec<String>,
    pub fix: Fix,
    /// Line in the CIB, 0 when the finding is about the absence of something.
    pub line: usize,
}

impl Finding {
    fn new(severity: Severity, code: &str, message: impl Into<String>) -> Finding {
        Finding { severity, code: code.into(), message: message.into(), evidence: vec![], fix: Fix::default(), line: 0 }
    }
    fn ev(mut self, e: impl Into<String>) -> Finding {
        self.evidence.push(e.into());
        self
    }
    fn at(mut self, line: usize) -> Finding {
        self.line = line;
        self
    }
    fn pcs(mut self, c: impl Into<String>) -> Finding {
        self.fix.pcs = Some(c.into());
        self
    }
    fn crm(mut self, c: impl Into<String>) -> Finding {
        self.fix.crm = Some(c.into());
        self
    }
    fn other(mut self, c: impl Into<String>) -> Finding {
        self.fix.other = Some(c.into());
        self
    }

    /// The finding in the project's one diagnostic vocabulary (for `quorum validate` and doctor):
    /// evidence joined into the message, the fix commands into the hint.
    pub fn to_diagnostic(&self) -> Diagnostic {
        let mut msg = self.message.clone();
        if !self.evidence.is_empty() {
            msg = format!("{msg} ({})", self.evidence.join("; "));
        }
        let hint = [self.fix.pcs.as_ref().map(|c| format!("pcs: {c}")), self.fix.crm.as_ref().map(|c| format!("crm: {c}")), self.fix.other.clone()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("\n    ");
        Diagnostic::new(self.severity, (self.line, if self.line > 0 { 1 } else { 0 }), self.code.clone(), msg, (!hint.is_empty()).then_some(hint))
    }
}

fn fmt_ms(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Every finding, errors first.
pub fn check(cib: &Cib, corosync: Option<&CorosyncFacts>, drbd: &DrbdFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    fencing_enabled(cib, &mut out);
    per_node(cib, &mut out);
    devices_on_victim(cib, &mut out);
    fence_race(cib, corosync, &mut out);
    no_quorum_policy(cib, corosync, &mut out);
    startup_fencing(cib, &mut out);
    watchdog(cib, corosync, &mut out);
    drbd_checks(cib, drbd, &mut out);
    out.sort_by_key(|f| f.severity.listing_rank());
    out
}

fn fencing_enabled(cib: &Cib, out: &mut Vec<Finding>) {
    if !cib.fencing_enabled() {
        let p = cib.fencing_property().expect("only a set property disables fencing");
        out.push(
            Finding::new(
                Severity::Error,
                "pcmk.fencing-disabled",
                "fencing is disabled: a node that stops answering is assumed dead, both nodes can run the same resources (DRBD split brain, data loss)",
            )
            .ev(format!("CIB line {}: {}={}", p.line, p.name, p.value))
            .at(p.line)
            .pcs(format!("pcs property set {}=true", p.name))
            .crm(format!("crm configure property {}=true", p.name)),
        );
    }
}

fn per_node(cib: &Cib, out: &mut Vec<Finding>) {
    for node in cib.node_names() {
        let plan = cib.fence_plan(&node);
        let disabled: Vec<&str> = plan.levels.iter().flat_map(|l| &l.devices).filter(|d| d.usable == Usable::Disabled).map(|d| d.id.as_str()).collect();
        let missing: Vec<&str> = plan.levels.iter().flat_map(|l| &l.devices).filter(|d| d.usable == Usable::Missing).map(|d| d.id.as_str()).collect();
        if !plan.ambiguous_with.is_empty() {
            let all = std::iter::once(plan.topology_target.clone().unwrap_or_default()).chain(plan.ambiguous_with.iter().cloned()).collect::<Vec<_>>();
            out.push(
                Finding::new(
                    Severity::Warning,
                    "pcmk.topology-ambiguous",
                    format!("several fencing-topology targets match {node} ({}): the fencer uses only one of them, chosen in an undefined order", all.join("; ")),
                )
                .ev("pacemaker-fenced find_topology_for_host: an exact node name wins, else the first matching pattern/attribute in hash-table order")
                .pcs(format!("pcs stonith level add INDEX {node} DEVICE...  # levels by node name take precedence"))
                .crm(format!("crm configure fencing_topology {node}: DEVICE...")),
            );
        }
        for m in &missing {
            out.push(
                Finding::new(Severity::Error, "pcmk.topology-missing-device", format!("the fencing topology for {node} names device {m:?}, which the CIB does not have"))
                    .pcs(format!("pcs stonith level remove LEVEL target {node} stonith {m}  # or create the device"))
                    .crm("crm configure edit fencing_topology"),
            );
        }
        match plan.can_fence() {
            Some(true) => {}
            Some(false) => {
                let mut f = Finding::new(Severity::Error, "pcmk.node-without-device", format!("no fence device can fence {node}: when it fails, pacemaker cannot recover its resources (they stay blocked)"));
                if plan.levels.is_empty() {
                    f = f.ev(format!("no stonith device lists {node} (pcmk_host_list / pcmk_host_map) and none asks the device at fence time"));
                }
                for d in &disabled {
                    f = f.ev(format!("{d} could, but it is disabled (meta target-role=Stopped)"));
                }
                if let Some(d) = disabled.first() {
                    f = f.pcs(format!("pcs stonith enable {d}")).crm(format!("crm resource start {d}"));
                } else {
                    f = f
                        .pcs(format!("pcs stonith create fence-{node} fence_ipmilan ip=BMC-ADDRESS username=USER password=... lanplus=1 pcmk_host_list={node} && pcs constraint location fence-{node} avoids {node}"))
                        .crm(format!("crm configure primitive fence-{node} stonith:fence_ipmilan params ip=BMC-ADDRESS username=USER password=... lanplus=1 pcmk_host_list={node}"));
                }
                out.push(f);
            }
            None => {
                let unknown: Vec<&str> = plan.levels.iter().flat_map(|l| &l.devices).filter(|d| d.usable == Usable::Unknown).map(|d| d.id.as_str()).collect();
                let mut f = Finding::new(
                    Severity::Warning,
                    "pcmk.targets-unknown",
                    format!("whether a device can fence {node} is decided by the device at fence time ({}); twonode does not guess", unknown.join(", ")),
                );
                for id in &unknown {
                    if let Some(Targets::Unknown { why }) = cib.device(id).map(|d| &d.targets) {
                        f = f.ev(format!("{id}: {why}"));
                    }
                }
                out.push(f.pcs(format!("pcs stonith update {} pcmk_host_list=\"{}\"", unknown.first().unwrap_or(&"DEVICE"), node)).crm(format!(
                    "crm resource param {} set pcmk_host_list \"{}\"",
                    unknown.first().unwrap_or(&"DEVICE"),
                    node
                )));
            }
        }
        // a disabled device in a plan that still works: worth saying
        if plan.can_fence() == Some(true) && !disabled.is_empty() {
            out.push(
                Finding::new(Severity::Info, "pcmk.device-disabled", format!("device(s) {} for {node} are disabled (target-role=Stopped)", disabled.join(", ")))
                    .pcs(format!("pcs stonith enable {}", disabled[0]))
                    .crm(format!("crm resource start {}", disabled[0])),
            );
        }
    }
}

fn devices_on_victim(cib: &Cib, out: &mut Vec<Finding>) {
    for d in &cib.devices {
        let Targets::Static { nodes } = &d.targets else { continue };
        let allowed = cib.device_allowed_nodes(&d.id);
        for (t, _) in nodes {
            if !cib.node_names().contains(t) {
                continue;
            }
            if allowed.iter().all(|a| a == t) {
                let locs: Vec<&str> = cib.locations.iter().filter(|l| l.rsc == d.id && l.node.is_some()).map(|l| l.id.as_str()).collect();
                let mut f = Finding::new(
                    Severity::Error,
                    "pcmk.device-only-on-victim",
                    format!(
                        "{} can fence only {t} but may run only on {}: when {t} must be fenced, no other node can use it",
                        d.id,
                        if allowed.is_empty() { "no node".to_string() } else { allowed.join(", ") }
                    ),
                )
                .at(d.line);
                for l in cib.locations.iter().filter(|l| l.rsc == d.id && l.node.is_some()) {
                    f = f.ev(format!("CIB line {}: rsc_location {} {} score {}", l.line, l.id, l.node.as_deref().unwrap_or(""), l.score.as_deref().unwrap_or("")));
                }
                let other = cib.node_names().into_iter().find(|n| n != t).unwrap_or_else(|| "OTHER-NODE".into());
                let rm = locs.iter().map(|l| format!("pcs constraint remove {l}")).collect::<Vec<_>>().join(" && ");
                let rm_crm = locs.iter().map(|l| format!("crm configure delete {l}")).collect::<Vec<_>>().join(" && ");
                let sep = if rm.is_empty() { "" } else { " && " };
                out.push(
                    f.pcs(format!("{rm}{sep}pcs constraint location {} avoids {t}", d.id))
                        .crm(format!("{rm_crm}{sep}crm configure location ban-{}-{t} {} -inf: {t}", d.id, d.id))
                        .ev(format!("it should run on {other}")),
                );
            }
        }
    }
}

fn fence_race(cib: &Cib, corosync: Option<&CorosyncFacts>, out: &mut Vec<Finding>) {
    if !cib.fencing_enabled() {
        return;
    }
    let nodes = cib.node_names();
    let (two_node, assumed) = match corosync {
        Some(c) if c.quorum_device => {
            out.push(Finding::new(Severity::Info, "pcmk.quorum-device", "a quorum device breaks the tie: only the partition with its vote fences").ev(format!("{}: quorum.device", c.source)));
            return;
        }
        Some(c) => (c.two_node, false),
        None => (nodes.len() == 2, true),
    };
    if !two_node {
        return;
    }
    let sev = if assumed { Severity::Warning } else { Severity::Error };
    let basis = match corosync {
        Some(c) => format!("{}: two_node: 1 and no quorum device", c.source),
        None => format!("two nodes in the CIB ({}); corosync.conf not given (--corosync): assuming two_node without a quorum device", nodes.join(", ")),
    };
    let usable = |id: &str| cib.device(id).filter(|d| !d.disabled());
    // delays on the first usable level of each node's plan
    let mut random = Vec::new();
    let mut statics = Vec::new();
    for n in &nodes {
        let plan = cib.fence_plan(n);
        let first = plan.levels.iter().find(|l| l.usable() != Some(false));
        let mut st = 0;
        for pd in first.map(|l| l.devices.as_slice()).unwrap_or(&[]) {
            if let Some(d) = usable(&pd.id) {
                if d.delay_max_ms.is_some_and(|m| m > 0) {
                    random.push(format!("{} pcmk_delay_max={} (fencing {n})", d.id, fmt_ms(d.delay_max_ms.unwrap_or(0))));
                }
                st = st.max(d.static_delay_ms(n));
            }
        }
        statics.push((n.clone(), st));
    }
    if let Some(pfd) = cib.priority_fencing_delay_ms() {
        if cib.priorities.iter().any(|p| p.priority > 0) {
            return;
        }
        out.push(
            Finding::new(Severity::Warning, "pcmk.priority-fencing-delay-unused", format!("priority-fencing-delay={} is set but no resource has a meta priority: it delays nothing", fmt_ms(pfd)))
                .pcs("pcs resource meta RESOURCE priority=10")
                .crm("crm resource meta RESOURCE set priority 10"),
        );
    }
    if !random.is_empty() {
        return;
    }
    let first = nodes.first().cloned().unwrap_or_else(|| "node1".into());
    let first_dev = cib.fence_plan(&first).levels.first().and_then(|l| l.devices.first()).map(|d| d.id.clone()).unwrap_or_else(|| format!("fence-{first}"));
    let distinct: std::collections::BTreeSet<u64> = statics.iter().map(|(_, s)| *s).collect();
    if distinct.len() > 1 {
        return; // static delays differ: one node wins the race
    }
    let st = *distinct.iter().next().unwrap_or(&0);
    if st > 0 {
        out.push(
            Finding::new(
                sev,
                "pcmk.same-static-delay",
                format!("every node is fenced after the same static delay ({}): under two_node both still shoot at once", fmt_ms(st)),
            )
            .ev(basis)
            .ev(statics.iter().map(|(n, s)| format!("fencing {n}: pcmk_delay_base {}", fmt_ms(*s))).collect::<Vec<_>>().join(", "))
            .pcs(format!("pcs stonith update {first_dev} pcmk_delay_base=15s  # and 0s on the other device(s); or pcmk_delay_max=15s"))
            .crm(format!("crm resource param {first_dev} set pcmk_delay_base 15s")),
        );
        return;
    }
    out.push(
        Finding::new(
            sev,
            "pcmk.fence-race",
            "two_node without a quorum device and no fencing delay: on a link failure both nodes are quorate and fence each other at once (both can go down)",
        )
        .ev(basis)
        .ev("no pcmk_delay_max, no pcmk_delay_base, no priority-fencing-delay")
        .pcs(format!("pcs stonith update {first_dev} pcmk_delay_max=15s  # {first} survives a race; or: pcs property set priority-fencing-delay=15s"))
        .crm(format!("crm resource param {first_dev} set pcmk_delay_max 15s"))
        .other("or give the cluster a third vote: twonode quorum enable-arbiter (corosync-qdevice with the twonode arbiter)"),
    );
}

fn startup_fencing(cib: &Cib, out: &mut Vec<Finding>) {
    let Some(p) = cib.property("startup-fencing") else { return };
    if super::cib::is_true(&p.value) || !cib.fencing_enabled() {
        return;
    }
    out.push(
        Finding::new(
            Severity::Warning,
            "pcmk.startup-fencing-off",
            "startup-fencing=false: a node the cluster has never seen is assumed down without being fenced; if it is in fact up (a split at boot), both nodes run the resources",
        )
        .ev(format!("CIB line {}: startup-fencing={}", p.line, p.value))
        .at(p.line)
        .pcs("pcs property set startup-fencing=true")
        .crm("crm configure property startup-fencing=true"),
    );
}

fn no_quorum_policy(cib: &Cib, corosync: Option<&CorosyncFacts>, out: &mut Vec<Finding>) {
    let Some(p) = cib.property("no-quorum-policy") else { return };
    if p.value.trim() != "ignore" {
        return;
    }
    let mut f = Finding::new(
        Severity::Warning,
        "pcmk.no-quorum-policy-ignore",
        "no-quorum-policy=ignore: a node without quorum keeps running (and starting) resources; with corosync 2+ two_node already keeps a lone survivor quorate, so ignore only removes the last safety net",
    )
    .ev(format!("CIB line {}: no-quorum-policy=ignore", p.line))
    .at(p.line)
    .pcs("pcs property set no-quorum-policy=stop")
    .crm("crm configure property no-quorum-policy=stop");
    if let Some(c) = corosync {
        f = f.ev(format!("{}: two_node: {}", c.source, u8::from(c.two_node)));
    }
    out.push(f);
}

fn watchdog(cib: &Cib, corosync: Option<&CorosyncFacts>, out: &mut Vec<Finding>) {
    let mut ev = Vec::new();
    let mut line = 0;
    if let Some(p) = cib.watchdog_timeout() {
        ev.push(format!("CIB line {}: stonith-watchdog-timeout={} (pacemaker trusts watchdog self-fencing, diskless sbd)", p.line, p.value));
        line = p.line;
    }
    for d in cib.devices.iter().filter(|d| d.agent == "fence_watchdog") {
        ev.push(format!("CIB line {}: device {} is fence_watchdog (self-fencing)", d.line, d.id));
        if line == 0 {
            line = d.line;
        }
    }
    if ev.is_empty() {
        return;
    }
    let (sev, why) = match corosync {
        Some(c) if c.two_node && !c.quorum_device => (Severity::Error, format!("{}: two_node: 1", c.source)),
        Some(c) if c.quorum_device => (Severity::Info, format!("{}: quorum device configured (self-fencing can rely on quorum)", c.source)),
        Some(c) => (Severity::Warning, format!("{}: two_node off, no quorum device", c.source)),
        None => (Severity::Warning, "corosync.conf not given (--corosync): cannot tell whether two_node is on".into()),
    };
    let mut f = Finding::new(
        sev,
        "pcmk.watchdog-with-two-node",
        "watchdog self-fencing (diskless sbd / stonith-watchdog-timeout) under two_node: both halves of a split stay quorate, so neither watchdog fires and nothing proves the peer dead (refused)",
    )
    .at(line)
    .ev(why);
    for e in ev {
        f = f.ev(e);
    }
    out.push(
        f.pcs("pcs property set stonith-watchdog-timeout=0  # then fence with hardware devices (one with pcmk_delay_max), or add a quorum device")
            .crm("crm configure property stonith-watchdog-timeout=0")
            .other("or give the cluster a third vote: twonode quorum enable-arbiter"),
    );
}

fn is_crm_fence(v: Option<&String>) -> bool {
    v.is_some_and(|h| h.contains("crm-fence-peer"))
}

fn drbd_checks(cib: &Cib, drbd: &DrbdFacts, out: &mut Vec<Finding>) {
    for c in &cib.drbd {
        if !c.promotable {
            out.push(
                Finding::new(Severity::Warning, "pcmk.drbd-not-promotable", format!("{} runs ocf:linbit:drbd without promotable=true: pacemaker never promotes it", c.clone_id))
                    .at(c.line)
                    .pcs(format!("pcs resource meta {} promotable=true", c.clone_id))
                    .crm(format!("crm resource meta {} set promotable true", c.clone_id)),
            );
        }
        match (&c.drbd_resource, &drbd.configs) {
            (None, _) => out.push(
                Finding::new(Severity::Error, "pcmk.drbd-no-resource", format!("{} has no drbd_resource parameter: the agent does not know which DRBD resource to manage", c.primitive_id))
                    .at(c.line)
                    .pcs(format!("pcs resource update {} drbd_resource=r0", c.primitive_id))
                    .crm(format!("crm resource param {} set drbd_resource r0", c.primitive_id)),
            ),
            (Some(name), Some(configs)) if !configs.iter().any(|r| &r.name == name) => {
                let known: Vec<&str> = configs.iter().map(|r| r.name.as_str()).collect();
                out.push(
                    Finding::new(Severity::Error, "pcmk.drbd-unknown-resource", format!("{} manages DRBD resource {name:?}, which the DRBD configuration does not define: its start fails on every node", c.primitive_id))
                        .at(c.line)
                        .ev(format!("{}: resources {}", drbd.config_source.as_deref().unwrap_or("DRBD configuration"), known.join(", ")))
                        .pcs(format!("pcs resource update {} drbd_resource={}", c.primitive_id, known.first().unwrap_or(&"RESOURCE")))
                        .crm(format!("crm resource param {} set drbd_resource {}", c.primitive_id, known.first().unwrap_or(&"RESOURCE"))),
                );
            }
            _ => {}
        }
    }
    if let Some(configs) = &drbd.configs {
        let managed: Vec<&str> = cib.drbd.iter().filter_map(|c| c.drbd_resource.as_deref()).collect();
        let src = drbd.config_source.as_deref().unwrap_or("DRBD configuration");
        for r in configs.iter().filter(|r| managed.is_empty() || managed.contains(&r.name.as_str())) {
            let fencing = r.net.fencing.as_deref().unwrap_or("dont-care");
            let fp = r.options.get("handlers.fence-peer");
            let ufp = r.options.get("handlers.unfence-peer");
            let fencing_on = matches!(fencing, "resource-only" | "resource-and-stonith");
            let handlers = format!(
                "handlers {{ fence-peer \"/usr/lib/drbd/crm-fence-peer.9.sh\"; unfence-peer \"/usr/lib/drbd/crm-unfence-peer.9.sh\"; }} in resource {}, then `drbdadm adjust {}` on both nodes",
                r.name, r.name
            );
            if fencing_on && fp.is_none() {
                out.push(
                    Finding::new(
                        Severity::Error,
                        "drbd.fencing-without-handler",
                        format!("DRBD resource {} has `fencing {fencing}` but no fence-peer handler: on a lost connection I/O {} and pacemaker is never told to keep the outdated peer from promotion", r.name, if fencing == "resource-and-stonith" { "freezes forever" } else { "goes on unprotected" }),
                    )
                    .ev(format!("{src}: resource {}: fencing {fencing}; no handlers.fence-peer", r.name))
                    .other(format!("add {handlers}")),
                );
            } else if fencing_on && is_crm_fence(fp) && ufp.is_none() {
                out.push(
                    Finding::new(Severity::Warning, "drbd.no-unfence-handler", format!("DRBD resource {} has crm-fence-peer but no unfence-peer handler: the fence constraint stays after the resync and blocks the next promotion", r.name))
                        .ev(format!("{src}: resource {}: fence-peer {}", r.name, fp.map(String::as_str).unwrap_or("")))
                        .other(format!("add unfence-peer \"/usr/lib/drbd/crm-unfence-peer.9.sh\" to the handlers of {}, then `drbdadm adjust {}`", r.name, r.name)),
                );
            } else if !fencing_on && (fp.is_some() || ufp.is_some()) {
                out.push(
                    Finding::new(Severity::Warning, "drbd.handler-without-fencing", format!("DRBD resource {} has fence-peer/unfence-peer handlers but `fencing {fencing}`: DRBD never calls them", r.name))
                        .ev(format!("{src}: resource {}: fencing {fencing}; fence-peer {}", r.name, fp.map(String::as_str).unwrap_or("-")))
                        .other(format!("set `net {{ fencing resource-and-stonith; }}` in resource {} (8.4: in disk {{}}), then `drbdadm adjust {}`", r.name, r.name)),
                );
            } else if fencing == "resource-only" && cib.fencing_enabled() && !cib.devices.is_empty() {
                out.push(
                    Finding::new(Severity::Info, "drbd.resource-only", format!("DRBD resource {} uses `fencing resource-only`; with pacemaker fencing, resource-and-stonith also freezes I/O until the peer is fenced", r.name))
                        .ev(format!("{src}: resource {}: fencing resource-only", r.name)),
                );
            }
        }
    }
    for l in cib.locations.iter().filter(|l| l.is_fence_by_handler()) {
        let clone = cib.drbd.iter().find(|c| c.clone_id == l.rsc);
        let res = clone.and_then(|c| c.drbd_resource.clone()).unwrap_or_else(|| {
            l.id.trim_start_matches("drbd-fence-by-handler-").trim_end_matches(&format!("-{}", l.rsc)).to_string()
        });
        let keeps = l.fence_handler_keeps().unwrap_or("?");
        let rm = Fix {
            pcs: Some(format!("pcs constraint remove {}", l.id)),
            crm: Some(format!("crm configure delete {}", l.id)),
            other: Some(format!("or, on {keeps}: DRBD_RESOURCE={res} /usr/lib/drbd/crm-unfence-peer.9.sh (what DRBD runs after a resync)")),
        };
        let base = format!("crm-fence-peer's constraint {} keeps {} from being promoted anywhere but {keeps}", l.id, l.rsc);
        let state = drbd.status.as_ref().and_then(|st| st.iter().find(|r| r.name == res));
        let src = drbd.status_source.as_deref().unwrap_or("DRBD status");
        let mut f = match state {
            Some(r) if both_up_to_date(r) => Finding::new(
                Severity::Error,
                "drbd.stale-fence-constraint",
                format!("{base}, but both sides of {res} are UpToDate and connected: the constraint is stale and blocks promotion on the peer (a failed or missing unfence-peer)"),
            )
            .ev(format!("{src}: {res} disk {}, peer disk(s) {}", disk_of(r), peer_disks(r))),
            Some(r) => Finding::new(
                Severity::Info,
                "drbd.fence-constraint-active",
                format!("{base}; {res} is not UpToDate on both sides, so the constraint still protects the peer's outdated data: leave it until the resync ends"),
            )
            .ev(format!("{src}: {res} disk {}, peer disk(s) {}", disk_of(r), peer_disks(r))),
            None => Finding::new(
                Severity::Warning,
                "drbd.fence-constraint",
                format!("{base}: it is stale (remove it) if both sides of {res} are UpToDate now; give the DRBD status (--drbd-status) to decide"),
            ),
        };
        f = f.at(l.line).ev(format!("CIB line {}: rsc_location {} (#uname ne {keeps}, -INFINITY for the promoted role)", l.line, l.id));
        if f.severity != Severity::Info {
            f.fix = rm;
        }
        out.push(f);
    }
}

fn disk_of(r: &Resource) -> String {
    let d: Vec<String> = r.volumes.iter().map(|v| v.disk.as_ref().map_or("?".to_string(), |d| d.to_string())).collect();
    if d.is_empty() {
        "?".into()
    } else {
        d.join("/")
    }
}

fn peer_disks(r: &Resource) -> String {
    let d: Vec<String> = r
        .connections
        .iter()
        .flat_map(|c| c.peer_devices.iter().map(move |p| format!("{}:{}", c.peer.as_deref().unwrap_or("peer"), p.peer_disk.as_ref().map_or("?".to_string(), |d| d.to_string()))))
        .collect();
    if d.is_empty() {
        "unknown (not connected)".into()
    } else {
        d.join(", ")
    }
}

fn both_up_to_date(r: &Resource) -> bool {
    !r.volumes.is_empty()
        && r.volumes.iter().all(|v| v.disk == Some(DiskState::UpToDate))
        && !r.connections.is_empty()
        && r.connections.iter().all(|c| {
            c.state.as_ref().is_none_or(|s| *s == ConnState::Connected) && !c.peer_devices.is_empty() && c.peer_devices.iter().all(|p| p.peer_disk == Some(DiskState::UpToDate))
        })
}

/// The findings of a CIB next to its corosync.conf, as a [`crate::diag::Report`] whose lines are
/// the CIB's: what `quorum validate --cib` and doctor add to the corosync.conf diagnostics. The
/// watchdog finding is left out (corosync.conf's own validation reports it, with the sbd facts).
/// `well_formed` is false when the CIB cannot be read (the error is the only diagnostic).
pub fn report_with_corosync(cib_text: &str, corosync_text: &str, corosync_source: &str) -> crate::diag::Report {
    let cib = match super::cib::parse(cib_text) {
        Ok(c) => c,
        Err(e) => {
            let d = Diagnostic::new(Severity::Error, (e.line, e.col), "pcmk.cib-unreadable", e.message, Some("save the CIB with `cibadmin -Q > cib.xml`".into()));
            return crate::diag::Report::new(false, vec![d]);
        }
    };
    let facts = CorosyncFacts::from_text(corosync_text, corosync_source).ok();
    let diags = check(&cib, facts.as_ref(), &DrbdFacts::default())
        .iter()
        .filter(|f| f.code != "pcmk.watchdog-with-two-node")
        .map(Finding::to_diagnostic)
        .collect();
    crate::diag::Report::new(true, diags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Cib {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pacemaker").join(name);
        super::super::cib::parse(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    fn two_node() -> CorosyncFacts {
        CorosyncFacts { source: "corosync.conf".into(), two_node: true, quorum_device: false, nodes: 2 }
    }

    fn codes(f: &[Finding]) -> Vec<&str> {
        f.iter().map(|f| f.code.as_str()).collect()
    }

    #[test]
    fn per_node_delay_map_settles_the_race_and_plans_follow_targets() {
        let cib = fixture("per-node-delay.xml");
        assert_eq!(cib.device("fence-node1").unwrap().static_delay_ms("node1"), 5000);
        assert_eq!(cib.device("fence-node2").unwrap().static_delay_ms("node2"), 0);
        let f = check(&cib, Some(&two_node()), &DrbdFacts::default());
        assert!(f.is_empty(), "{:?}", codes(&f));
        let plan = cib.fence_plan("node2");
        assert_eq!(plan.levels.len(), 1);
        assert_eq!(plan.levels[0].devices[0].id, "fence-node2");
        assert_eq!(plan.can_fence(), Some(true));
    }

    #[test]
    fn errors_come_first_and_become_diagnostics_with_the_fix_as_hint() {
        let cib = fixture("stonith-disabled.xml");
        let f = check(&cib, Some(&two_node()), &DrbdFacts::default());
        assert_eq!(f[0].code, "pcmk.fencing-disabled");
        let d = f[0].to_diagnostic();
        assert_eq!((d.severity, d.line), (Severity::Error, 5));
        assert_eq!(d.hint.as_deref(), Some("pcs: pcs property set stonith-enabled=true\n    crm: crm configure property stonith-enabled=true"));
        // fencing off: no race finding on top
        assert!(!codes(&f).contains(&"pcmk.fence-race"));
    }

    #[test]
    fn priority_fencing_delay_with_a_priority_settles_the_race() {
        let cib = fixture("priority-delay.xml");
        assert_eq!(cib.priority_fencing_delay_ms(), Some(15_000));
        assert_eq!(cib.priorities[0].priority, 10);
        let f = check(&cib, Some(&two_node()), &DrbdFacts::default());
        assert!(f.is_empty(), "{:?}", codes(&f));
    }

    #[test]
    fn unreadable_cib_in_the_corosync_report() {
        let r = report_with_corosync("<cib>", "quorum {\n provider: corosync_votequorum\n two_node: 1\n}\n", "c.conf");
        assert!(!r.well_formed && r.has_errors());
        assert_eq!(r.diagnostics[0].code, "pcmk.cib-unreadable");
    }
}
