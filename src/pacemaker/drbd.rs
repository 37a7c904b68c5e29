//! DRBD split-brain recovery on a resource pacemaker manages: pacemaker is kept out of the way.
//!
//! Pure: the CIB (text and [`Cib`]) and the two nodes' names in, refusals or the pacemaker steps
//! around the DRBD plan of `drbd::recover` out; the driver's read-back of pacemaker's state is
//! parsed here too ([`crm_view`]). Direction of the layers: pacemaker uses drbd, never the reverse
//! (`drbd::recover` only knows the neutral [`CrmView`] and its checks).
//!
//! The steps, all run on the survivor (pacemaker is cluster-wide; the survivor is the node that
//! stays up and keeps its data):
//! 1. `crm_resource --resource CLONE --meta --set-parameter is-managed --parameter-value false`:
//!    pacemaker keeps its hands off the clone (it still monitors, records, but neither demotes,
//!    promotes, stops nor restarts it). Chosen over `pcs resource unmanage` because crm_resource
//!    ships with pacemaker itself (pcs is absent on crmsh clusters such as SUSE's), and over
//!    maintenance-mode because that unmanages every resource of the cluster. crm_resource also
//!    updates a child primitive's own `is-managed` when one exists (pacemaker 2.1.5, checked).
//! 2. the DRBD steps; 3. once both sides are UpToDate, `cibadmin --delete` of the stale
//!    `drbd-fence-by-handler-*` constraint (crm-unfence-peer.9.sh may have removed it already:
//!    then the step is skipped as done); 4. `crm_resource --cleanup` while still unmanaged, so
//!    pacemaker re-probes the recovered state and forgets the monitor failures the recovery
//!    caused before it acts again; 5. `is-managed=true`; 6. wait until pacemaker runs the clone
//!    Promoted on the survivor.
use super::cib::{is_true, Cib, DrbdClone};
use super::xml;
use crate::drbd::recover::{Check, CrmView, Plan, Refusal, Step};
use serde::Serialize;

/// How long the plan waits for pacemaker to promote the survivor after the hand-back, seconds.
pub const PROMOTE_WAIT_S: u64 = 120;

/// How the plan takes the resource out of pacemaker's hands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum HandsOff {
    /// `is-managed=false` on the clone only (the default).
    Unmanage,
    /// The cluster-wide `maintenance-mode=true`: every resource unmanaged, no monitors run.
    Maintenance,
}

/// The pacemaker side of one recovery (after [`assess`] said yes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Managed {
    pub clone_id: String,
    pub primitive_id: String,
    pub promotable: bool,
    /// Why pacemaker already keeps its hands off the resource (maintenance-mode, is-managed=false
    /// set by someone): the plan then neither unmanages nor hands back.
    pub hands_off_already: Option<String>,
    /// Fence-by-handler constraints on the clone that keep the survivor (stale once both sides
    /// are UpToDate).
    pub stale_constraints: Vec<String>,
}

/// The `ocf:linbit:drbd` primitive (usually in a promotable clone) whose `drbd_resource` is
/// `resource`.
pub fn managed_by<'a>(cib: &'a Cib, resource: &str) -> Option<&'a DrbdClone> {
    cib.drbd.iter().find(|c| c.drbd_resource.as_deref() == Some(resource))
}

fn refusal(kind: &str, reason: String, fix: String) -> Refusal {
    Refusal { kind: kind.into(), reason, fix, nothing_to_do: false }
}

/// The `meta_attributes` value `name` of the element with `id` (clone, master or primitive).
fn meta_of(root: &xml::Element, id: &str, name: &str) -> Option<String> {
    let mut all = Vec::new();
    for kind in ["clone", "master", "primitive", "group"] {
        root.descendants(kind, &mut all);
    }
    let el = all.into_iter().find(|e| e.attr("id") == Some(id))?;
    el.children_named("meta_attributes")
        .flat_map(|m| m.children_named("nvpair"))
        .find(|n| n.attr("name") == Some(name))
        .and_then(|n| n.attr("value"))
        .map(String::from)
}

fn rsc_default(root: &xml::Element, name: &str) -> Option<String> {
    let mut sets = Vec::new();
    root.descendants("rsc_defaults", &mut sets);
    sets.iter()
        .flat_map(|d| d.children_named("meta_attributes"))
        .flat_map(|m| m.children_named("nvpair"))
        .find(|n| n.attr("name") == Some(name))
        .and_then(|n| n.attr("value"))
        .map(String::from)
}

/// Decide whether pacemaker would fight the recovery of `resource` (victim's changes discarded,
/// survivor's kept). Ok(None): pacemaker does not manage it. `cib_text` is the CIB `cib` was
/// parsed from (for the meta attributes the typed model does not keep).
pub fn assess(cib: &Cib, cib_text: &str, resource: &str, victim: &str, survivor: &str) -> Result<Option<Managed>, Refusal> {
    let Some(c) = managed_by(cib, resource) else { return Ok(None) };
    let clone = c.clone_id.clone();
    let known = cib.node_names();
    for n in [victim, survivor] {
        if !known.iter().any(|k| k == n) {
            return Err(refusal(
                "pacemaker-node-unknown",
                format!(
                    "pacemaker manages {resource} as {clone}, but knows no node {n} (its nodes: {}): what pacemaker does on {n} cannot be checked",
                    known.join(", ")
                ),
                "name the nodes as pacemaker does (`crm_node -l` lists them): --node NAME=TARGET with those names".into(),
            ));
        }
    }
    let policy = cib.property("no-quorum-policy").map(|p| p.value.clone()).unwrap_or_else(|| "stop".into());
    if cib.have_quorum == Some(false) && policy != "ignore" {
        return Err(refusal(
            "pacemaker-no-quorum",
            format!(
                "the cluster has no quorum and no-quorum-policy={policy}: without quorum pacemaker {} resources, so handing {clone} back would not promote {survivor}",
                match policy.as_str() {
                    "freeze" => "neither starts nor promotes",
                    "demote" => "demotes promotable",
                    _ => "stops",
                }
            ),
            "bring the cluster back to quorum first (start the cluster stack on both nodes: `pcs cluster start --all` or `crm cluster start`; \
             `corosync-quorumtool -s` shows the votes), then re-run"
                .into(),
        ));
    }
    let node_attr = |n: &str, a: &str| {
        cib.nodes.iter().find(|x| x.uname == n).and_then(|x| x.attributes.iter().find(|(k, _)| k == a)).is_some_and(|(_, v)| is_true(v))
    };
    if node_attr(survivor, "standby") {
        return Err(refusal(
            "pacemaker-survivor-standby",
            format!("the survivor {survivor} is in standby: pacemaker runs nothing there, so it would stop {clone} on {survivor} instead of promoting it"),
            format!("take {survivor} out of standby first (`crm_attribute --node {survivor} --name standby --delete`, or `pcs node unstandby {survivor}`), then re-run"),
        ));
    }
    if let Some(n) = [victim, survivor].into_iter().find(|n| node_attr(n, "maintenance")) {
        let other = if n == victim { survivor } else { victim };
        return Err(refusal(
            "pacemaker-node-maintenance",
            format!(
                "{n} is in maintenance: pacemaker keeps its hands off {clone} there but not on {other}, and would not manage it on {n} after the                  hand-back; twonode does not plan around half of it"
            ),
            format!(
                "either end it (`crm_attribute --node {n} --name maintenance --delete`, or `pcs node unmaintenance {n}`) and re-run: twonode unmanages                  {clone} itself; or put the whole cluster in maintenance-mode (`crm_attribute --type crm_config --name maintenance-mode --update true`):                  twonode then leaves pacemaker's hands off and does not hand back"
            ),
        ));
    }
    let mut stale = Vec::new();
    for l in cib.locations.iter().filter(|l| l.is_fence_by_handler() && l.rsc == clone) {
        match l.fence_handler_keeps() {
            Some(k) if k == survivor => stale.push(l.id.clone()),
            keeps => {
                let who = keeps.map(|k| format!("only {k}")).unwrap_or_else(|| "no node it names clearly".into());
                return Err(refusal(
                    "pacemaker-constraint-keeps-victim",
                    format!(
                        "constraint {id} (written by DRBD's fence-peer handler crm-fence-peer) lets {who} be promoted: when the link broke, \
                         DRBD's fencing judged {}'s data the current one, and you asked to DISCARD {victim}. While it stands, pacemaker \
                         cannot promote {survivor} after the recovery",
                        keeps.unwrap_or("that node"),
                        id = l.id
                    ),
                    format!(
                        "if {survivor}'s data really is the one to keep, remove the constraint first: `cibadmin --delete --xml-text '<rsc_location id=\"{id}\"/>'` \
                         (or `pcs constraint remove {id}`), then re-run; if the handler was right, run with --discard {survivor}",
                        id = l.id
                    ),
                ));
            }
        }
    }
    let root = xml::parse(cib_text).map_err(|e| refusal("pacemaker-cib-unreadable", format!("the CIB: {e}"), "check the CIB (`cibadmin -Q`)".into()))?;
    let maint = cib.property("maintenance-mode").is_some_and(|p| is_true(&p.value));
    let unmanaged_by = [c.clone_id.as_str(), c.primitive_id.as_str()]
        .into_iter()
        .find(|id| meta_of(&root, id, "is-managed").is_some_and(|v| !is_true(&v)))
        .map(|id| format!("{id} has is-managed=false"))
        .or_else(|| rsc_default(&root, "is-managed").filter(|v| !is_true(v)).map(|_| "rsc_defaults is-managed=false".to_string()));
    let hands_off_already = if maint { Some("the cluster is in maintenance-mode".to_string()) } else { unmanaged_by };
    Ok(Some(Managed { clone_id: clone, primitive_id: c.primitive_id.clone(), promotable: c.promotable, hands_off_already, stale_constraints: stale }))
}

fn step(id: &str, node: &str, title: String, argv: &[&str], pre: Check, post: Check) -> Step {
    Step {
        id: id.into(),
        node: node.into(),
        title,
        argv: argv.iter().map(|s| s.to_string()).collect(),
        destructive: false,
        pre,
        post,
        expands_to: vec![],
        cluster: true,
    }
}

/// The argv that sets the clone's `is-managed` meta attribute.
pub fn set_managed_argv(clone: &str, managed: bool) -> Vec<String> {
    ["crm_resource", "--resource", clone, "--meta", "--set-parameter", "is-managed", "--parameter-value", if managed { "true" } else { "false" }]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// The argv that sets or removes the cluster's `maintenance-mode`.
pub fn maintenance_argv(on: bool) -> Vec<String> {
    let mut v: Vec<String> = ["crm_attribute", "--type", "crm_config", "--name", "maintenance-mode"].iter().map(|s| s.to_string()).collect();
    if on {
        v.extend(["--update".to_string(), "true".to_string()]);
    } else {
        v.push("--delete".into());
    }
    v
}

/// Put the pacemaker steps around the DRBD plan (see the module's comment for why each is there);
/// `promote_wait_s` is how long the last step waits for the promotion.
pub fn wrap(mut plan: Plan, m: &Managed, how: HandsOff, promote_wait_s: u64) -> Plan {
    let (v, s) = (plan.victim.clone(), plan.survivor.clone());
    let clone = m.clone_id.as_str();
    let managed = |b: bool| Check::CrmManaged { resource: clone.into(), managed: b };
    let in_sync = Check::InSync { victim: v.clone(), survivor: s.clone() };
    let mut before = Vec::new();
    let mut after = Vec::new();
    if m.hands_off_already.is_none() {
        let mut st = step("pacemaker-unmanage", &s, String::new(), &[], managed(true), managed(false));
        (st.title, st.argv) = match how {
            HandsOff::Unmanage => (format!("take {clone} out of pacemaker's hands (is-managed=false)"), set_managed_argv(clone, false)),
            HandsOff::Maintenance => (
                format!("put the cluster in maintenance-mode: pacemaker keeps its hands off every resource, {clone} included"),
                maintenance_argv(true),
            ),
        };
        before.push(st);
    }
    for id in &m.stale_constraints {
        let xml = format!("<rsc_location id=\"{id}\"/>");
        after.push(step(
            &format!("pacemaker-remove-{id}"),
            &s,
            format!("remove the stale fence-by-handler constraint {id} (both sides UpToDate now)"),
            &["cibadmin", "--delete", "--xml-text", &xml],
            Check::All { checks: vec![in_sync.clone(), Check::CrmConstraint { id: id.clone(), present: true }] },
            Check::CrmConstraint { id: id.clone(), present: false },
        ));
    }
    after.push(step(
        "pacemaker-cleanup",
        &s,
        format!("clear {clone}'s failed operations and fail counts (pacemaker re-probes the recovered state)"),
        &["crm_resource", "--cleanup", "--resource", clone],
        in_sync.clone(),
        Check::CrmNoFailures { resource: clone.into() },
    ));
    if m.hands_off_already.is_none() {
        let mut st = step("pacemaker-manage", &s, String::new(), &[], Check::All { checks: vec![in_sync.clone(), managed(false)] }, managed(true));
        (st.title, st.argv) = match how {
            HandsOff::Unmanage => (format!("hand {clone} back to pacemaker (is-managed=true)"), set_managed_argv(clone, true)),
            HandsOff::Maintenance => (format!("end the cluster's maintenance-mode: pacemaker manages {clone} again"), maintenance_argv(false)),
        };
        after.push(st);
        if m.promotable {
            after.push(step(
                "pacemaker-promoted",
                &s,
                format!("wait (at most {promote_wait_s} s) until pacemaker runs {clone} Promoted on {s}"),
                &[],
                managed(true),
                Check::CrmPromoted { resource: clone.into(), node: s.clone() },
            ));
        } else {
            plan.notes.push(format!("{clone} is not promotable: pacemaker promotes it nowhere, so no promotion is waited for"));
        }
    } else if let Some(why) = &m.hands_off_already {
        plan.notes.push(format!(
            "pacemaker already keeps its hands off {clone} ({why}): twonode leaves it so and does not hand it back; \
             when you hand it back, pacemaker should promote {s}"
        ));
    }
    let mut steps = before;
    steps.append(&mut plan.steps);
    steps.append(&mut after);
    plan.steps = steps;
    plan.managed_by = Some(m.clone_id.clone());
    plan
}

/// One round trip that reads what the checks need: the CIB and pacemaker's view of the resources.
/// With `CIB_file` set in the environment, both tools read that file instead of the cluster.
pub fn probe_script() -> String {
    "echo '# cibadmin -Q'; cibadmin -Q; echo '# crm_mon'; crm_mon -1 --output-as=xml".into()
}

/// Whether `cibadmin -Q` answers (pacemaker runs on the node), for `--cib auto`.
pub fn detect_script() -> String {
    "cibadmin -Q 2>/dev/null".into()
}

/// Parse the output of [`probe_script`] into what the checks read.
pub fn crm_view(output: &str, clone_id: &str, primitive_id: &str) -> Result<CrmView, String> {
    let (cib_part, mon_part) = output.split_once("# crm_mon\n").ok_or("no crm_mon output (is pacemaker running on the node?)")?;
    let cib_part = cib_part.trim_start().strip_prefix("# cibadmin -Q").unwrap_or(cib_part);
    let cib = xml::parse(cib_part.trim()).map_err(|e| format!("cibadmin -Q: {e}"))?;
    let mon = xml::parse(mon_part.trim()).map_err(|e| format!("crm_mon: {e}"))?;
    let mut view = CrmView::default();
    let mut locs = Vec::new();
    cib.descendants("rsc_location", &mut locs);
    view.constraints = locs.iter().filter_map(|l| l.attr("id")).map(String::from).collect();
    // the clone's instances (or the primitive itself when it is not cloned)
    let mut instances: Vec<&xml::Element> = Vec::new();
    let mut clones = Vec::new();
    mon.descendants("clone", &mut clones);
    if let Some(c) = clones.iter().find(|c| c.attr("id") == Some(clone_id)) {
        instances.extend(c.children_named("resource"));
    } else {
        let mut all = Vec::new();
        mon.descendants("resource", &mut all);
        instances.extend(all.into_iter().filter(|r| r.attr("id") == Some(primitive_id)));
    }
    let flags: Vec<bool> = instances.iter().filter_map(|r| r.attr("managed")).map(is_true).collect();
    view.managed = if flags.is_empty() {
        None
    } else if flags.iter().all(|f| *f) {
        Some(true)
    } else if flags.iter().all(|f| !*f) {
        Some(false)
    } else {
        None
    };
    for r in &instances {
        if matches!(r.attr("role"), Some("Promoted" | "Master")) {
            view.promoted.extend(r.children_named("node").filter_map(|n| n.attr("name")).map(String::from));
        }
    }
    let mut failures = Vec::new();
    mon.descendants("failure", &mut failures);
    for f in failures {
        let key = f.attr("op_key").unwrap_or("");
        let ours = key.strip_prefix(primitive_id).is_some_and(|rest| rest.starts_with('_') || rest.starts_with(':'));
        if let (true, Some(n)) = (ours, f.attr("node")) {
            if !view.failed_on.iter().any(|x| x == n) {
                view.failed_on.push(n.to_string());
            }
        }
    }
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drbd::recover::{Plan, Step};

    const DRBD_CIB: &str = include_str!("../../fixtures/pacemaker/drbd.xml");
    const FENCE_CIB: &str = include_str!("../../fixtures/pacemaker/drbd-fence-constraint.xml");

    fn drbd_plan(victim: &str, survivor: &str) -> Plan {
        let st = |id: &str, node: &str| Step {
            id: id.into(),
            node: node.into(),
            title: id.into(),
            argv: vec!["drbdadm".into(), id.into(), "r0".into()],
            destructive: false,
            pre: Check::NotStandAlone { node: node.into() },
            post: Check::NotStandAlone { node: node.into() },
            expands_to: vec![],
            cluster: false,
        };
        Plan {
            resource: "r0".into(),
            victim: victim.into(),
            survivor: survivor.into(),
            generation: "9".into(),
            fingerprint: "f".into(),
            loss_kib: vec![],
            steps: vec![st("victim-connect-discard", victim), st("wait-resync", victim)],
            managed_by: None,
            notes: vec![],
        }
    }

    fn ids(p: &Plan) -> Vec<&str> {
        p.steps.iter().map(|s| s.id.as_str()).collect()
    }

    #[test]
    fn unmanaged_resource_gets_no_steps() {
        let cib = crate::pacemaker::parse(DRBD_CIB).unwrap();
        assert!(assess(&cib, DRBD_CIB, "r9", "node2", "node1").unwrap().is_none());
    }

    #[test]
    fn plan_wraps_the_drbd_steps() {
        let cib = crate::pacemaker::parse(FENCE_CIB).unwrap();
        // the handler kept node1: discarding node2 is what it said; its constraint is stale afterwards
        let m = assess(&cib, FENCE_CIB, "r0", "node2", "node1").unwrap().unwrap();
        assert_eq!(m.clone_id, "drbd-r0-clone");
        assert_eq!(m.stale_constraints, ["drbd-fence-by-handler-r0-drbd-r0-clone"]);
        let p = wrap(drbd_plan("node2", "node1"), &m, HandsOff::Unmanage, PROMOTE_WAIT_S);
        assert_eq!(
            ids(&p),
            [
                "pacemaker-unmanage",
                "victim-connect-discard",
                "wait-resync",
                "pacemaker-remove-drbd-fence-by-handler-r0-drbd-r0-clone",
                "pacemaker-cleanup",
                "pacemaker-manage",
                "pacemaker-promoted"
            ]
        );
        assert!(p.steps.iter().filter(|s| s.cluster).all(|s| s.node == "node1"));
        assert_eq!(p.steps[0].argv.join(" "), "crm_resource --resource drbd-r0-clone --meta --set-parameter is-managed --parameter-value false");
        assert_eq!(p.steps[0].post, Check::CrmManaged { resource: "drbd-r0-clone".into(), managed: false });
        assert_eq!(p.steps[3].argv[3], "<rsc_location id=\"drbd-fence-by-handler-r0-drbd-r0-clone\"/>");
        assert_eq!(p.managed_by.as_deref(), Some("drbd-r0-clone"));
        // every pacemaker step is checked before and after against pacemaker's state
        assert!(p.steps.iter().filter(|s| s.cluster).all(|s| s.post.needs_crm()));
        // maintenance-mode instead: the same checks (pacemaker's effective view of the clone)
        let p = wrap(drbd_plan("node2", "node1"), &m, HandsOff::Maintenance, 30);
        assert_eq!(p.steps[0].argv.join(" "), "crm_attribute --type crm_config --name maintenance-mode --update true");
        assert_eq!(p.steps[0].post, Check::CrmManaged { resource: "drbd-r0-clone".into(), managed: false });
        let back = p.steps.iter().find(|s| s.id == "pacemaker-manage").unwrap();
        assert_eq!(back.argv.join(" "), "crm_attribute --type crm_config --name maintenance-mode --delete");
        assert!(p.steps.last().unwrap().title.contains("at most 30 s"));
    }

    #[test]
    fn refuses_a_constraint_that_keeps_the_victim() {
        let cib = crate::pacemaker::parse(FENCE_CIB).unwrap();
        let r = assess(&cib, FENCE_CIB, "r0", "node1", "node2").unwrap_err();
        assert_eq!(r.kind, "pacemaker-constraint-keeps-victim");
        assert!(r.reason.contains("only node1") && r.reason.contains("cannot promote node2"), "{}", r.reason);
        assert!(r.fix.contains("cibadmin --delete --xml-text '<rsc_location id=\"drbd-fence-by-handler-r0-drbd-r0-clone\"/>'"), "{}", r.fix);
        assert!(r.fix.contains("--discard node2"));
    }

    #[test]
    fn refuses_unknown_nodes_and_no_quorum() {
        let mut cib = crate::pacemaker::parse(DRBD_CIB).unwrap();
        let r = assess(&cib, DRBD_CIB, "r0", "bob", "node1").unwrap_err();
        assert_eq!(r.kind, "pacemaker-node-unknown");
        assert!(r.reason.contains("no node bob") && r.fix.contains("crm_node -l"), "{r:?}");
        cib.have_quorum = Some(false);
        let r = assess(&cib, DRBD_CIB, "r0", "node2", "node1").unwrap_err();
        assert_eq!(r.kind, "pacemaker-no-quorum");
        assert!(r.reason.contains("no-quorum-policy=stop"), "{}", r.reason);
        let text = DRBD_CIB.replacen("<nvpair id=\"cib-bootstrap-options-stonith-enabled\"", "<nvpair id=\"nqp\" name=\"no-quorum-policy\" value=\"ignore\"/><nvpair id=\"cib-bootstrap-options-stonith-enabled\"", 1);
        let mut cib = crate::pacemaker::parse(&text).unwrap();
        cib.have_quorum = Some(false);
        assert!(assess(&cib, &text, "r0", "node2", "node1").is_ok());
    }

    #[test]
    fn refuses_a_survivor_in_standby_and_half_maintenance() {
        let with_attr = |node: &str, name: &str| {
            DRBD_CIB.replacen(
                &format!("<node id=\"{}\" uname=\"{node}\"/>", &node[4..]),
                &format!("<node id=\"{id}\" uname=\"{node}\"><instance_attributes id=\"na\"><nvpair id=\"na-1\" name=\"{name}\" value=\"on\"/></instance_attributes></node>", id = &node[4..]),
                1,
            )
        };
        let text = with_attr("node1", "standby");
        assert!(text.contains("name=\"standby\""), "fixture layout changed");
        let cib = crate::pacemaker::parse(&text).unwrap();
        let r = assess(&cib, &text, "r0", "node2", "node1").unwrap_err();
        assert_eq!(r.kind, "pacemaker-survivor-standby");
        assert!(r.fix.contains("crm_attribute --node node1 --name standby --delete"), "{}", r.fix);
        // the victim in standby is no reason to refuse
        let text = with_attr("node2", "standby");
        assert!(assess(&crate::pacemaker::parse(&text).unwrap(), &text, "r0", "node2", "node1").is_ok());
        let text = with_attr("node2", "maintenance");
        let r = assess(&crate::pacemaker::parse(&text).unwrap(), &text, "r0", "node2", "node1").unwrap_err();
        assert_eq!(r.kind, "pacemaker-node-maintenance");
        assert!(r.reason.contains("node2 is in maintenance") && r.fix.contains("pcs node unmaintenance node2"), "{r:?}");
    }

    #[test]
    fn maintenance_or_unmanaged_already_is_left_so() {
        let text = DRBD_CIB.replacen(
            "<nvpair id=\"cib-bootstrap-options-stonith-enabled\"",
            "<nvpair id=\"mm\" name=\"maintenance-mode\" value=\"true\"/><nvpair id=\"cib-bootstrap-options-stonith-enabled\"",
            1,
        );
        let cib = crate::pacemaker::parse(&text).unwrap();
        let m = assess(&cib, &text, "r0", "node2", "node1").unwrap().unwrap();
        assert_eq!(m.hands_off_already.as_deref(), Some("the cluster is in maintenance-mode"));
        let p = wrap(drbd_plan("node2", "node1"), &m, HandsOff::Unmanage, PROMOTE_WAIT_S);
        assert_eq!(ids(&p), ["victim-connect-discard", "wait-resync", "pacemaker-cleanup"]);
        assert!(p.notes[0].contains("leaves it so"), "{:?}", p.notes);
    }

    #[test]
    fn reads_crm_mon_and_the_cib() {
        let out = format!(
            "# cibadmin -Q\n{FENCE_CIB}\n# crm_mon\n{}",
            r#"<pacemaker-result api-version="2.25"><resources>
  <clone id="drbd-r0-clone" multi_state="true" managed="false">
    <resource id="drbd-r0" role="Promoted" managed="false" failed="false"><node name="node1" id="1"/></resource>
    <resource id="drbd-r0" role="Unpromoted" managed="false" failed="true"><node name="node2" id="2"/></resource>
  </clone></resources>
  <failures><failure op_key="drbd-r0_monitor_31000" node="node2" exitstatus="error"/><failure op_key="other_monitor_0" node="node1"/></failures>
</pacemaker-result>"#
        );
        let v = crm_view(&out, "drbd-r0-clone", "drbd-r0").unwrap();
        assert_eq!(v.managed, Some(false));
        assert_eq!(v.promoted, ["node1"]);
        assert_eq!(v.failed_on, ["node2"]);
        assert_eq!(v.constraints.iter().filter(|c| c.starts_with("drbd-fence")).count(), 1);
        assert!(crm_view("garbage", "c", "p").is_err());
    }
}
