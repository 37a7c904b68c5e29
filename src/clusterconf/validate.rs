//! Validation of cluster.conf: well-formedness, the RELAX NG schema (cluster.rng, via
//! [`super::relaxng`]), and the rules the schema does not check but cman, fenced and a two-node
//! cluster's safety depend on. Every diagnostic has a severity, line:column, a stable code, a
//! message and, where there is one, a hint. No diagnostic ever contains a secret's value.
//!
//! Agreement with `xmllint --relaxng cluster.rng` (what `ccs_config_validate` runs): every schema
//! problem is reported as code `schema` by the RELAX NG validator, so a file xmllint rejects always
//! has errors here. Deliberate extra ERRORS on files the schema accepts (rules cman, fenced or
//! two-node safety impose, see fixtures/clusterconf/schema/SUMMARY.md):
//! `version.not-integer` (config_version="x" passes the schema), `version.not-increasing` (only
//! with a running version), `node.duplicate-nodeid`, `cluster.name-too-long` (> 15 characters),
//! `two_node.node-count` / `two_node.votes` (cman refuses to start), `two_node.quorumd`,
//! `fence.self-fencing-two-node` (fence_watchdog, fence_sbd without devices=, fence_manual,
//! fence_ack_manual under two_node=1), `fence.ilo-hostname` without ipaddr= (fence-agents 4.x).
//! Everything else beyond the schema is a warning. On the corpus the verdicts agree with xmllint
//! (tests/clusterconf_validate.rs `verdict_agrees_with_xmllint_on_the_corpus`).
pub use crate::diag::{Diagnostic, Report, Severity};

use super::document::{is_secret_attr, Document};
use super::agents::{self, NoPowerCut};
use super::model::{FenceDevice, Model};

/// What the validator knows beyond the file.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The running (or live) config_version: the file's must be higher.
    pub running_version: Option<u64>,
    /// Skip the RELAX NG check (benchmarks, fragments).
    pub skip_schema: bool,
    /// Rules of the layers above (clusterconf imports no area): `fence::conf_rules()`
    /// gives the fence layer's (the arbiter gate's). Callers that validate a file for the
    /// user go through `fence::validate_conf`, which adds them.
    pub rules: Vec<RuleSet>,
}

/// Rules a layer above adds to the validator (the design: clusterconf is a foundation and
/// imports no area; an area that gives cluster.conf meaning, like `fence::gate`, owns its rules
/// and hands them in). They run over the same model, after the fencing rules and before the
/// two_node rules; their diagnostics are sorted with the others.
#[derive(Clone, Copy)]
pub struct RuleSet {
    pub name: &'static str,
    /// Diagnostics over the model.
    pub check: fn(&Model) -> Vec<Diagnostic>,
    /// Does this rule set's configuration decide the two-node fence race itself? (then the
    /// validator's `fence.race` warning about delays is not raised)
    pub decides_fence_race: fn(&Model) -> bool,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet").field("name", &self.name).finish()
    }
}

struct Ctx {
    diags: Vec<Diagnostic>,
}

impl Ctx {
    fn push(&mut self, severity: Severity, (line, col): (usize, usize), code: &str, message: String, hint: Option<String>) {
        self.diags.push(Diagnostic { severity, line, col, code: code.into(), message, hint });
    }
    fn err(&mut self, pos: (usize, usize), code: &str, message: String, hint: impl Into<Option<String>>) {
        self.push(Severity::Error, pos, code, message, hint.into());
    }
    fn warn(&mut self, pos: (usize, usize), code: &str, message: String, hint: impl Into<Option<String>>) {
        self.push(Severity::Warning, pos, code, message, hint.into());
    }
}

/// Validate cluster.conf bytes.
pub fn validate(bytes: &[u8], opts: &Options) -> Report {
    let mut cx = Ctx { diags: Vec::new() };
    match Document::parse(bytes) {
        Err(e) => {
            cx.err((e.line, e.col), "xml.not-well-formed", format!("not well-formed XML: {}", e.msg), Some("fix this first; cman cannot read the file at all".into()));
            return finish(cx, false);
        }
        Ok(doc) => {
            if !opts.skip_schema {
                let text = String::from_utf8_lossy(bytes);
                let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
                for d in super::relaxng::validate_cluster_conf(text) {
                    cx.err((d.line, d.col), "schema", mask_in_message(&d.message, &doc), Some("cluster.rng (what ccs_config_validate checks) rejects this".into()));
                }
            }
            let m = Model::from_doc(&doc);
            semantic(&mut cx, &doc, &m, opts);
        }
    }
    finish(cx, true)
}

/// Schema messages may quote attribute values; never let a secret through.
fn mask_in_message(msg: &str, doc: &Document) -> String {
    let mut out = msg.to_string();
    for n in &doc.nodes {
        if let super::document::Kind::Element(e) = &n.kind {
            for a in &e.attrs {
                if is_secret_attr(&a.name) && !a.value.is_empty() {
                    out = out.replace(&a.raw, super::document::MASK).replace(&a.value, super::document::MASK);
                }
            }
        }
    }
    out
}

fn finish(mut cx: Ctx, well_formed: bool) -> Report {
    cx.diags.sort_by_key(|d| (d.line, d.col, d.severity.listing_rank()));
    cx.diags.dedup();
    Report::new(well_formed, cx.diags)
}

fn semantic(cx: &mut Ctx, _doc: &Document, m: &Model, opts: &Options) {
    let root = (m.root.line, m.root.col);
    if m.root_element != "cluster" {
        cx.err(
            root,
            "cluster.root",
            format!("the root element is <{}>, not <cluster>", m.root_element),
            Some("2004-era files (<nodes>, <fence_devices>) must be rewritten for cman 3 (<clusternodes>, <fencedevices>)".into()),
        );
        return;
    }
    // cluster name
    match &m.name {
        None => cx.err(root, "cluster.name-missing", "<cluster> has no name=".into(), Some("add name=\"CLUSTER\" (1-15 characters)".into())),
        Some(n) if n.value.chars().count() > 15 => cx.err(
            (n.line, n.col),
            "cluster.name-too-long",
            format!("cluster name {:?} has {} characters; cman refuses names longer than 15", n.value, n.value.chars().count()),
            Some("shorten it (renaming a running cluster needs a full cluster restart)".into()),
        ),
        Some(n) if n.value.is_empty() => cx.err((n.line, n.col), "cluster.name-missing", "the cluster name is empty".into(), None),
        _ => {}
    }
    // config_version
    match &m.config_version {
        None => cx.err(root, "version.missing", "<cluster> has no config_version=".into(), Some("add config_version=\"1\"".into())),
        Some(v) => match v.value.trim().parse::<u64>() {
            Err(_) => cx.err(
                (v.line, v.col),
                "version.not-integer",
                format!("config_version={:?} is not a whole number (the schema accepts it, cman does not)", v.value),
                Some("set a whole number higher than the running version (`cman_tool version`)".into()),
            ),
            Ok(n) => {
                if let Some(run) = opts.running_version {
                    if n <= run {
                        cx.err(
                            (v.line, v.col),
                            "version.not-increasing",
                            format!("config_version {n} is not higher than the running version {run}: cman_tool version -r refuses it"),
                            Some(format!("`twonode conf bump` (needs {} or more)", run + 1)),
                        );
                    }
                }
            }
        },
    }
    if let Some(a) = m.cluster_attrs.iter().find(|a| a.name == "alias") {
        cx.warn((a.line, a.col), "cluster.alias", "alias= is RHEL 5 only; cman 3 rejects it".into(), Some("remove it".into()));
    }
    nodes(cx, m);
    devices(cx, m);
    fencing(cx, m);
    for r in &opts.rules {
        cx.diags.extend((r.check)(m));
    }
    let race_decided = opts.rules.iter().any(|r| (r.decides_fence_race)(m));
    two_node(cx, m, race_decided);
}

fn nodes(cx: &mut Ctx, m: &Model) {
    if m.clusternodes.is_none() {
        cx.err((m.root.line, m.root.col), "node.no-clusternodes", "there is no <clusternodes> section".into(), Some("`twonode conf node add NAME`".into()));
    }
    for (i, n) in m.nodes.iter().enumerate() {
        let pos = (n.loc.line, n.loc.col);
        let Some(name) = &n.name else {
            cx.err(pos, "node.name-missing", "<clusternode> without name=".into(), None);
            continue;
        };
        if let Some(prev) = m.nodes[..i].iter().find(|o| o.name.as_deref() == Some(name)) {
            cx.err(pos, "node.duplicate-name", format!("node {name} is defined twice (first at line {})", prev.loc.line), Some("remove or rename one of them".into()));
        }
        match &n.nodeid {
            None => cx.err(pos, "node.nodeid-missing", format!("node {name} has no nodeid="), Some("add a unique nodeid=\"N\" (cman 3 requires it)".into())),
            Some(id) => match id.trim().parse::<u64>() {
                Ok(v) if v > 0 => {
                    if let Some(prev) = m.nodes[..i].iter().find(|o| o.nodeid.as_deref().map(str::trim) == Some(id.trim())) {
                        cx.err(
                            pos,
                            "node.duplicate-nodeid",
                            format!("node {name} reuses nodeid {id} of node {} (line {})", prev.name.as_deref().unwrap_or("?"), prev.loc.line),
                            Some("give every node its own nodeid (ccs refuses duplicates; membership breaks)".into()),
                        );
                    }
                }
                _ => cx.err(pos, "node.nodeid-invalid", format!("node {name}: nodeid={id:?} is not a positive integer"), None),
            },
        }
        if let Some(v) = &n.votes {
            match v.trim().parse::<u64>() {
                Ok(x) if x > 0 => {}
                _ => cx.err(
                    pos,
                    "node.votes-invalid",
                    format!("node {name}: votes={v:?} is not a positive integer (cman does not accept votes=0)"),
                    Some("remove votes= (default 1) or set a positive number".into()),
                ),
            }
        }
    }
}

/// What `fd` does instead of cutting power ([`super::agents`]); None for a power switch. fence_sbd
/// with a shared disk (devices=) is a poison-pill fence, not watchdog-only self-fencing.
fn no_power_cut_of(fd: &FenceDevice) -> Option<&'static agents::AgentFacts> {
    let facts = agents::no_power_cut(fd.agent.as_deref()?)?;
    let sbd_with_disk = facts.agent == "fence_sbd" && fd.get("devices").is_some_and(|d| !d.trim().is_empty());
    (!sbd_with_disk).then_some(facts)
}

/// Why `fd` must never be the fence of a two_node cluster: its agent relies on the victim's own
/// watchdog (self-fencing) or only acknowledges.
fn is_self_fencing(fd: &FenceDevice) -> Option<&'static str> {
    no_power_cut_of(fd).filter(|f| matches!(f.kind, NoPowerCut::SelfFencing | NoPowerCut::Acknowledge)).map(|f| f.what)
}

/// Whether a device referenced by a method cuts the victim's power (unknown agents and missing
/// devices are given the benefit of the doubt: other rules report them).
fn cuts_power(fd: Option<&FenceDevice>) -> bool {
    fd.is_none_or(|fd| no_power_cut_of(fd).is_none())
}

/// Whether `twonode conf apply` may make the staged file live, judged on its validation report:
/// never when it is not well-formed or has errors, except that `force` lets errors through
/// unless they concern the XML itself or config_version (cman could not load it, or the other
/// node would ignore it). On refusal, the message names `staged` and lists every error.
pub fn may_apply(report: &Report, force: bool, staged: &std::path::Path) -> Result<(), String> {
    let refused = !report.well_formed
        || report.of(Severity::Error).any(|d| !force || d.code.starts_with("version.") || d.code.starts_with("xml."));
    if !refused {
        return Ok(());
    }
    let errors: Vec<String> = report.of(Severity::Error).map(|d| d.to_string()).collect();
    Err(format!("not applying {}: validation failed; nothing was changed\n{}", staged.display(), errors.join("\n")))
}

/// Agents that act on the victim in some other way than cutting its power (kdump, heuristics,
/// storage and network fencing, schedulers, test agents): say what each is and is not, and under
/// two_node require every node to have at least one method that really cuts its power.
fn no_power_cut(cx: &mut Ctx, m: &Model, two: bool) {
    for fd in &m.fencedevices {
        let Some(facts) = no_power_cut_of(fd) else { continue };
        if matches!(facts.kind, NoPowerCut::SelfFencing | NoPowerCut::Acknowledge | NoPowerCut::Gate) {
            continue; // self-fencing/manual and the gate have rules of their own
        }
        let dname = fd.name.as_deref().unwrap_or("?");
        cx.warn(
            (fd.loc.line, fd.loc.col),
            "fence.no-power-cut",
            format!("fence device {dname} uses {}, which {}", facts.agent, facts.what),
            Some("keep it only together with a device that cuts power (a BMC or a switched PDU) in the same or a later method".into()),
        );
    }
    if !two {
        return;
    }
    for n in &m.nodes {
        if n.methods.is_empty() {
            continue; // fence.no-method says it
        }
        let devices = || n.methods.iter().flat_map(|mt| mt.devices.iter()).map(|d| d.name.as_deref().and_then(|x| m.fencedevice(x)));
        // a self-fencing or manual device has been refused above already
        let refused = devices().any(|fd| fd.is_some_and(|fd| is_self_fencing(fd).is_some()));
        if !refused && !devices().any(cuts_power) {
            let name = n.name.as_deref().unwrap_or("?");
            cx.err(
                (n.loc.line, n.loc.col),
                "fence.no-power-fence",
                format!(
                    "node {name}: none of its fence methods cuts its power. With two_node=1 both halves of a split keep quorum; only a fence that \
                     stops the other machine keeps both from running the services"
                ),
                Some(format!("add a method with a BMC (fence_ipmilan, fence_ilo, fence_redfish) or a switched PDU for {name}: `twonode conf device add ...` and `twonode conf bind ...`")),
            );
        }
    }
}

fn devices(cx: &mut Ctx, m: &Model) {
    for (i, d) in m.fencedevices.iter().enumerate() {
        let pos = (d.loc.line, d.loc.col);
        let Some(name) = &d.name else {
            cx.err(pos, "device.name-missing", "<fencedevice> without name=".into(), None);
            continue;
        };
        if name.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            cx.err(pos, "device.name-digit", format!("fence device name {name:?} starts with a digit; cman refuses it (it is an XML ID)"), Some(format!("rename it, e.g. `twonode conf device set {name} name=fence-{name}` (references follow)")));
        }
        if m.fencedevices[..i].iter().any(|o| o.name.as_deref() == Some(name)) {
            cx.err(pos, "device.duplicate-name", format!("fence device {name} is defined twice"), Some("remove or rename one".into()));
        }
        if d.agent.as_deref().map(str::trim).unwrap_or("").is_empty() {
            cx.err(pos, "device.no-agent", format!("fence device {name} has no agent="), Some("add agent=\"fence_ipmilan\" (or the agent for this hardware)".into()));
        }
        if d.get("passwd").is_some() && d.get("passwd_script").is_some() {
            cx.warn(pos, "device.passwd-and-script", format!("fence device {name} has both passwd and passwd_script; the agent uses passwd_script's output only when passwd is empty"), Some("keep one of them".into()));
        }
    }
}

fn fencing(cx: &mut Ctx, m: &Model) {
    let two = m.two_node();
    for n in &m.nodes {
        let name = n.name.as_deref().unwrap_or("?");
        let npos = (n.loc.line, n.loc.col);
        if n.methods.is_empty() {
            cx.warn(
                npos,
                "fence.no-method",
                format!("node {name} has no fence method: when it fails, fenced retries every 5 s forever (\"error no method\") and DLM, rgmanager and HA stay blocked"),
                Some(format!("`twonode conf bind {name} DEVICE --method 1 ...` (until then only fence_ack_manual unblocks recovery)")),
            );
        }
        for meth in &n.methods {
            if meth.devices.is_empty() {
                cx.warn(
                    (meth.loc.line, meth.loc.col),
                    "fence.empty-method",
                    format!("method {} of node {name} has no device; fenced skips it", meth.name.as_deref().unwrap_or("?")),
                    Some("bind a device to it or remove it".into()),
                );
            }
        }
        let all = n.methods.iter().flat_map(|mt| mt.devices.iter()).chain(n.unfence.iter());
        for d in all {
            let dpos = (d.loc.line, d.loc.col);
            let Some(dname) = &d.name else {
                cx.err(dpos, "fence.device-name-missing", format!("a <device> of node {name} has no name="), None);
                continue;
            };
            let Some(fd) = m.fencedevice(dname) else {
                let known: Vec<&str> = m.fencedevices.iter().filter_map(|f| f.name.as_deref()).collect();
                cx.err(
                    dpos,
                    "fence.dangling-device",
                    format!("node {name} uses fence device {dname:?}, which no <fencedevice> defines"),
                    Some(if known.is_empty() { "define it: `twonode conf device add ...`".to_string() } else { format!("defined devices: {}", known.join(", ")) }),
                );
                continue;
            };
            // hostname= on iLO: fence-agents 4.x ignores it
            if fd.agent.as_deref().is_some_and(|a| a.starts_with("fence_ilo")) {
                let host_on_dev = d.attrs.iter().find(|a| a.name == "hostname");
                let host_on_fd = fd.attrs.iter().find(|a| a.name == "hostname");
                if let Some(h) = host_on_dev.or(host_on_fd) {
                    let has_ip = d.get("ipaddr").is_some() || fd.get("ipaddr").is_some();
                    let msg = format!(
                        "hostname= on {} device {dname} is ignored by fence-agents 4.x{}",
                        fd.agent.as_deref().unwrap_or(""),
                        if has_ip { "" } else { ": with no ipaddr= the agent has no address and fencing fails after an upgrade" }
                    );
                    let hint = Some("rename hostname= to ipaddr=".to_string());
                    // report once per definition, at the attribute
                    let pos = (h.line, h.col);
                    if has_ip {
                        cx.warn(pos, "fence.ilo-hostname", msg, hint);
                    } else {
                        cx.err(pos, "fence.ilo-hostname", msg, hint);
                    }
                }
            }
        }
    }
    no_power_cut(cx, m, two);
    // self-fencing agents
    for fd in &m.fencedevices {
        let Some(why) = is_self_fencing(fd) else { continue };
        let agent = fd.agent.as_deref().unwrap_or("");
        let dname = fd.name.as_deref().unwrap_or("?");
        let pos = (fd.loc.line, fd.loc.col);
        if two {
            cx.err(
                pos,
                "fence.self-fencing-two-node",
                format!(
                    "fence device {dname} uses {agent}, which {why}. With two_node=1 each node keeps quorum alone, so after a split both \
                     nodes consider the other fenced and both run the services: the shared data gets corrupted"
                ),
                Some(
                    "use hardware fencing (fence_ipmilan, fence_ilo, fence_redfish, a switched PDU) with delay= on the device of the node \
                     that should survive a race; or give the cluster a third vote (quorum disk or arbiter): `twonode conf set-two-node off \
                     --expected-votes 3` and configure it"
                        .into(),
                ),
            );
        } else if agent == "fence_manual" || agent == "fence_ack_manual" {
            cx.warn(pos, "fence.manual", format!("fence device {dname} uses {agent}, which {why}; recovery waits for a human and a wrong acknowledgement corrupts data"), Some("use a hardware fence device".into()));
        }
    }
}

fn two_node(cx: &mut Ctx, m: &Model, race_decided: bool) {
    let Some(cman) = &m.cman else { return };
    let tn = cman.attr("two_node");
    if let Some(t) = tn {
        if !matches!(t.value.trim(), "0" | "1") {
            cx.err((t.line, t.col), "two_node.value", format!("two_node={:?} must be 0 or 1", t.value), None);
        }
    }
    if let Some(ev) = cman.attr("expected_votes") {
        if !ev.value.trim().parse::<u64>().is_ok_and(|v| v > 0) {
            cx.err((ev.line, ev.col), "cman.expected-votes-invalid", format!("expected_votes={:?} is not a positive integer", ev.value), None);
        }
    }
    if !m.two_node() {
        // quorum arithmetic sanity when expected_votes is set
        if let (Some(ev), Some(sum)) = (m.expected_votes(), m.vote_sum()) {
            let q_votes = m.quorumd.as_ref().map(|q| q.section.get("votes").and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or((m.nodes.len() as u64).saturating_sub(1))).unwrap_or(0);
            let total = sum + q_votes;
            if ev < total && !m.nodes.is_empty() {
                let a = cman.attr("expected_votes").map(|a| (a.line, a.col)).unwrap_or((cman.loc.line, cman.loc.col));
                cx.warn(
                    a,
                    "quorum.expected-votes-low",
                    format!("expected_votes={ev} is lower than the {total} votes configured: quorum is computed from the larger value once all nodes joined, but a partition can be quorate at start-up"),
                    Some(format!("set expected_votes={total} (`twonode conf set cman expected_votes={total}`)")),
                );
            }
        }
        return;
    }
    let pos = tn.map(|t| (t.line, t.col)).unwrap_or((cman.loc.line, cman.loc.col));
    if m.nodes.len() != 2 {
        cx.err(
            pos,
            "two_node.node-count",
            format!("two_node=1 with {} clusternodes: cman refuses to start (\"two_node set but there are not 2 nodes in cluster.conf\")", m.nodes.len()),
            Some("two_node is for exactly two nodes: remove the extra nodes or `twonode conf set-two-node off`".into()),
        );
    }
    for n in &m.nodes {
        if n.votes_or_default() != Some(1) {
            cx.err(
                (n.loc.line, n.loc.col),
                "two_node.votes",
                format!("node {} has votes={} but two_node needs one vote per node (cman refuses to start)", n.name.as_deref().unwrap_or("?"), n.votes.as_deref().unwrap_or("?")),
                Some("set votes=\"1\" (or remove votes=)".into()),
            );
        }
    }
    match cman.attr("expected_votes") {
        Some(ev) if ev.value.trim() != "1" => cx.warn(
            (ev.line, ev.col),
            "two_node.expected-votes",
            format!("two_node=1 with expected_votes={}: documented value is 1 (cman forces quorum to 1 anyway; `cman_tool join -2` refuses other values)", ev.value),
            Some("`twonode conf set-two-node on` sets expected_votes=1".into()),
        ),
        None => cx.warn(pos, "two_node.expected-votes", "two_node=1 without expected_votes=\"1\"".into(), Some("add expected_votes=\"1\"".into())),
        _ => {}
    }
    if let Some(q) = &m.quorumd {
        cx.err(
            (q.section.loc.line, q.section.loc.col),
            "two_node.quorumd",
            "<quorumd> with two_node=1: quorum is pinned to 1, so the quorum disk's votes decide nothing (qdisk(5): use two_node=0, expected_votes=3; corosync 2+ refuses the combination)".into(),
            Some("either `twonode conf set-two-node off --expected-votes 3` to use the quorum disk, or `twonode conf quorumd remove`".into()),
        );
    }
    // fence race: both nodes fence each other at once unless one device waits (or a rule set
    // from above decides the race: the arbiter gate, first in every method)
    if m.nodes.len() == 2 && !race_decided {
        let delays: Vec<Option<u64>> = m
            .nodes
            .iter()
            .map(|n| {
                let f = m.fencing_for(n.name.as_deref().unwrap_or(""))?;
                let first = f.methods.first()?;
                Some(first.devices.iter().filter_map(|d| d.param("delay").and_then(|v| v.trim().parse::<u64>().ok())).max().unwrap_or(0))
            })
            .collect();
        if let (Some(a), Some(b)) = (delays[0], delays[1]) {
            if a == b {
                let n0 = &m.nodes[0];
                let pos = n0.methods.first().and_then(|mt| mt.devices.first()).map(|d| (d.loc.line, d.loc.col)).unwrap_or((n0.loc.line, n0.loc.col));
                let what = if a == 0 { "no delay= on either node's fence device".to_string() } else { format!("the same delay={a} on both nodes' fence devices") };
                cx.warn(
                    pos,
                    "fence.race",
                    format!("{what}: after a network split both nodes can shoot each other at the same moment and both go down"),
                    Some(format!(
                        "add delay=15 to the device that fences the node that should survive, e.g. `twonode conf bind {} DEVICE delay=15`",
                        n0.name.as_deref().unwrap_or("NODE")
                    )),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn may_apply_refuses_errors_and_force_passes_only_safe_ones() {
        let staged = std::path::Path::new("/etc/cluster/cluster.conf.new");
        let diag = |code: &str| Diagnostic::new(Severity::Error, (3, 1), code, "bad", None);
        let warn = Report::new(true, vec![Diagnostic::new(Severity::Warning, (2, 1), "fence.race", "race", None)]);
        assert_eq!(may_apply(&warn, false, staged), Ok(()));
        let err = Report::new(true, vec![diag("two_node.votes")]);
        let msg = may_apply(&err, false, staged).unwrap_err();
        assert!(msg.starts_with("not applying /etc/cluster/cluster.conf.new: validation failed") && msg.contains("error[two_node.votes]"), "{msg}");
        assert_eq!(may_apply(&err, true, staged), Ok(()));
        for code in ["version.not-increasing", "xml.not-well-formed"] {
            assert!(may_apply(&Report::new(true, vec![diag(code)]), true, staged).is_err(), "{code}");
        }
        assert!(may_apply(&Report::new(false, vec![]), true, staged).is_err());
    }

    use super::*;

    fn codes(src: &str) -> Vec<(String, usize, usize, Severity)> {
        validate(src.as_bytes(), &Options { skip_schema: true, ..Default::default() })
            .diagnostics
            .into_iter()
            .map(|d| (d.code, d.line, d.col, d.severity))
            .collect()
    }

    #[test]
    fn clean_two_node_file_has_no_diagnostics() {
        let src = "<cluster name=\"duo\" config_version=\"2\">\n<cman two_node=\"1\" expected_votes=\"1\"/>\n<clusternodes>\n<clusternode name=\"a\" nodeid=\"1\"><fence><method name=\"1\"><device name=\"ia\" delay=\"15\"/></method></fence></clusternode>\n<clusternode name=\"b\" nodeid=\"2\"><fence><method name=\"1\"><device name=\"ib\"/></method></fence></clusternode>\n</clusternodes>\n<fencedevices><fencedevice name=\"ia\" agent=\"fence_ipmilan\" ipaddr=\"1\"/><fencedevice name=\"ib\" agent=\"fence_ipmilan\" ipaddr=\"2\"/></fencedevices>\n</cluster>\n";
        assert_eq!(codes(src), vec![]);
    }
}
