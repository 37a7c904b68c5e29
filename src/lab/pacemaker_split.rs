//! `pacemaker-split`: a DRBD split brain on a resource pacemaker manages, recovered with pacemaker
//! kept out of the way. The DRBD side is the lab's (the real drbdadm over the simulated kernel,
//! reached over SSH); the pacemaker side is the real pacemaker CLI (crm_resource, cibadmin,
//! crm_mon) acting on a CIB file through CIB_file, so the scenario needs no running cluster.
use super::rig::Lab;
use super::scenario::{Scenario, Step};
use anyhow::Context;

pub fn scenarios() -> Vec<Scenario> {
    vec![Scenario {
        name: "pacemaker-split",
        title: "DRBD split brain under pacemaker: recovered with pacemaker kept out of the way",
        story: "Pacemaker runs r0 as a promotable clone (ocf:linbit:drbd), node1 Promoted. The replication link \
                breaks, DRBD's fence-peer handler on node1 writes a drbd-fence-by-handler constraint (only node1 \
                may be promoted), and node2 is promoted by mistake anyway: split brain. Recover it without \
                pacemaker fighting back: see the refusal when the constraint contradicts the victim you pick, \
                read the plan (unmanage, the DRBD steps, remove the stale constraint, clean up, hand back, \
                wait for Promoted on the survivor), run it, and check DRBD and pacemaker's view after. \
                The CIB is a file (written by pcs, cibadmin and crm_simulate) that the real pacemaker tools \
                change through CIB_file.",
        needs: &["sshd", "drbdadm", "crm_resource", "cibadmin", "crm_mon"],
        steps,
    }]
}

const NODES: &str = "$DRBD_NODES";
const CIB: &str = include_str!("../../fixtures/pacemaker/drbd-split-brain.xml");

/// The CIB file, and node1 Primary as pacemaker's promotion left it (the real drbdadm on node1).
fn write_cib(lab: &Lab) -> anyhow::Result<()> {
    std::fs::write(lab.path("cib.xml"), CIB).context("writing $LAB/cib.xml")?;
    let d = lab.drbd.as_ref().context("the lab has no DRBD nodes")?;
    let out = d.host("node1")?.run(&["drbdadm", "primary", "r0"], None)?;
    if !out.success() {
        anyhow::bail!("drbdadm primary r0 on node1: {}", out.stderr_str().trim());
    }
    Ok(())
}

/// Pacemaker's view of the CIB file: the real cibadmin and crm_mon through CIB_file.
fn observe_cib(lab: &Lab) -> anyhow::Result<String> {
    let out = std::process::Command::new("sh")
        .args(["-c", &crate::pacemaker::drbd::probe_script()])
        .env("CIB_file", lab.path("cib.xml"))
        .output()
        .context("running cibadmin and crm_mon")?;
    let v = crate::pacemaker::drbd::crm_view(&String::from_utf8_lossy(&out.stdout), "drbd-r0-clone", "drbd-r0")
        .map_err(|e| anyhow::anyhow!("reading pacemaker's view: {e}"))?;
    let fence: Vec<&String> = v.constraints.iter().filter(|c| c.starts_with("drbd-fence-by-handler-")).collect();
    Ok(format!(
        "pacemaker (crm_mon on $LAB/cib.xml): drbd-r0-clone {}; Promoted on {}; fence-by-handler constraint: {}",
        match v.managed {
            Some(true) => "managed",
            Some(false) => "UNMANAGED",
            None => "not shown",
        },
        if v.promoted.is_empty() { "no node".to_string() } else { v.promoted.join(", ") },
        if fence.is_empty() { "none".to_string() } else { fence.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ") }
    ))
}

fn observe_both(lab: &Lab) -> anyhow::Result<String> {
    let d = lab.drbd.as_ref().context("the lab has no DRBD nodes")?;
    let drbd = super::drbd_sim::with_world(&d.state, |w| {
        let Some(r) = w.resources.get("r0") else { return "no resource r0".to_string() };
        let current: Vec<u64> = r.nodes.values().map(|n| n.volumes[0].gi[0]).collect();
        let disks: Vec<String> = r
            .nodes
            .iter()
            .map(|(name, n)| {
                format!("{name} {:?} {}", n.role, serde_json::to_value(n.volumes[0].disk).ok().and_then(|x| x.as_str().map(String::from)).unwrap_or_default())
            })
            .collect();
        format!(
            "DRBD r0 {}; {}; data generation {}",
            if r.connected { "connected" } else { "NOT connected" },
            disks.join(", "),
            if current.windows(2).all(|p| p[0] == p[1]) { "the same on both nodes" } else { "DIFFERENT on each node" }
        )
    })?;
    Ok(format!("{drbd}\n{}", observe_cib(lab)?))
}

fn steps() -> Vec<Step> {
    vec![
        Step::new(
            "The cluster as pacemaker describes it",
            "The CIB: the fence devices of each node, and r0 run by pacemaker (Promoted on node1, where DRBD is Primary) as the promotable clone drbd-r0-clone \
             (drbd_resource=r0). The constraint drbd-fence-by-handler-r0-drbd-r0-clone is what crm-fence-peer.9.sh \
             on node1 wrote when it lost its peer: only node1 may be promoted.",
            "pacemaker show --cib $LAB/cib.xml",
            0,
        )
        .before(write_cib)
        .after(observe_both),
        Step::new(
            "Break it: the split, writes on both sides, the link back",
            "node1 keeps the service and writes 4000 KiB; node2 is promoted by mistake, writes 40 KiB and is \
             demoted. When the link returns DRBD finds two histories and drops the connection.",
            "lab drbd-kernel --state $LAB/drbd/sim scenario split-brain --primary node1 --primary node2 \
             --writes node1=4000 --writes node2=40 --demote node2",
            0,
        )
        .after(observe_both),
        Step::new(
            "Pick the wrong victim: refused",
            "Discarding node1 (with --accept-loss, past DRBD's own objection) contradicts the constraint: DRBD's \
             fencing judged node1's data current, and while the constraint stands pacemaker could never promote \
             node2. Exit 2, nothing changed, and the command that would unblock it if node2 really is the good side.",
            &format!("drbd recover r0 --discard node1 --accept-loss --dry-run --cib $LAB/cib.xml {NODES}"),
            2,
        ),
        Step::new(
            "The plan, changing nothing",
            "The DRBD steps inside the pacemaker ones, each with its check before and after: unmanage the clone \
             (crm_resource ... is-managed false, read back from crm_mon), the DRBD recovery, once both sides are \
             UpToDate remove the stale constraint and clear the failures pacemaker recorded meanwhile, hand the \
             clone back, wait until pacemaker runs it Promoted on node1.",
            &format!("drbd recover r0 --discard node2 --dry-run --cib $LAB/cib.xml {NODES}"),
            0,
        ),
        Step::new(
            "Recover with pacemaker kept out of the way",
            "The pacemaker commands run on node1 (here: against the CIB file), the DRBD ones over SSH; the journal \
             records each confirmed step, so an interrupted recovery resumes with --resume and still hands the \
             clone back.",
            &format!("drbd recover r0 --discard node2 --yes --cib $LAB/cib.xml {NODES}"),
            0,
        )
        .after(observe_both),
        Step::new(
            "Verify",
            "DRBD Connected and UpToDate on both nodes; pacemaker manages the clone again, Promoted on node1, and the \
             constraint is gone.",
            &format!("drbd status r0 {NODES}"),
            0,
        )
        .after(observe_cib),
    ]
}
