//! `split-brain`: a DRBD split brain on the lab's two simulated nodes (the real drbdadm over the
//! simulated kernel side, reached over SSH), the evidence on each node, and the guided recovery:
//! dry run and runbook, execution over SSH, verification.
use super::rig::Lab;
use super::scenario::{Scenario, Step};
use anyhow::Context;

pub fn scenarios() -> Vec<Scenario> {
    vec![Scenario {
        name: "split-brain",
        title: "DRBD split brain: evidence on both nodes, then guided recovery over SSH",
        story: "The replication link between the nodes breaks while both can still run the service, and both \
                write: when the link returns DRBD finds two different histories, refuses to connect, and waits for \
                a human. Rehearse the recovery: see it in `drbd status`, read each node's evidence (roles, \
                data generations, kernel log) with `drbd split-brain`, pick the victim whose changes are thrown \
                away, review the plan as a runbook (--dry-run), run it over SSH, and check both nodes are \
                Connected and UpToDate again.",
        needs: &["sshd", "drbdadm"],
        steps,
    }]
}

const NODES: &str = "$DRBD_NODES";

/// One line per node from the simulator's state, and whether the data generations agree.
fn observe(lab: &Lab) -> anyhow::Result<String> {
    let d = lab.drbd.as_ref().context("the lab has no DRBD nodes")?;
    super::drbd_sim::with_world(&d.state, |w| {
        let Some(r) = w.resources.get("r0") else { return "no resource r0".to_string() };
        let mut parts = Vec::new();
        let mut current = Vec::new();
        for (name, n) in &r.nodes {
            let v = &n.volumes[0];
            current.push(v.gi[0]);
            parts.push(format!(
                "{name} {:?} {} ({} KiB the peer lacks)",
                n.role,
                serde_json::to_value(v.disk).ok().and_then(|x| x.as_str().map(String::from)).unwrap_or_default(),
                v.bits * 4
            ));
        }
        let same = current.windows(2).all(|p| p[0] == p[1]);
        format!(
            "r0 {}; {}; current data generation {}",
            if r.connected { "connected" } else { "NOT connected" },
            parts.join(", "),
            if same { "the same on both nodes" } else { "DIFFERENT on each node" }
        )
    })
}

/// What an admin saves from each node for `drbd split-brain`: the outputs, each after its prompt.
const EVIDENCE: &str = "echo '# drbdadm status r0'; drbdadm status r0 2>/dev/null; \
                        echo '# drbdadm get-gi r0'; drbdadm get-gi r0 2>/dev/null; \
                        echo '# dmesg | grep drbd'; dmesg | grep drbd";

fn collect(lab: &Lab) -> anyhow::Result<()> {
    let d = lab.drbd.as_ref().context("the lab has no DRBD nodes")?;
    let dir = lab.path("evidence");
    std::fs::create_dir_all(&dir)?;
    for n in ["node1", "node2"] {
        let mut h = d.host(n)?;
        let out = h.run(&["sh", "-c", EVIDENCE], None)?;
        if !out.success() {
            anyhow::bail!("collecting evidence on {n}: {}", out.stderr_str().trim());
        }
        std::fs::write(dir.join(format!("{n}.txt")), out.stdout)?;
    }
    Ok(())
}

fn collected(lab: &Lab) -> anyhow::Result<String> {
    let mut parts = Vec::new();
    for n in ["node1", "node2"] {
        let p = lab.path(&format!("evidence/{n}.txt"));
        let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        parts.push(format!("$LAB/evidence/{n}.txt ({} lines)", text.lines().count()));
    }
    Ok(format!("saved over SSH: {}", parts.join(", ")))
}

fn steps() -> Vec<Step> {
    vec![
        Step::new(
            "Both nodes replicate r0",
            "Over SSH to each node (its own sshd, host key checked), the real drbdadm reports the simulated kernel's state.",
            &format!("drbd status r0 {NODES}"),
            0,
        )
        .after(observe),
        Step::narrate(
            "The replication link breaks (a switch reboots). DRBD has no fencing policy here (no `fencing \
             resource-and-stonith;` with a fence-peer handler), so nothing stops the second node: node1 keeps \
             the service and writes 4000 KiB; node2 is promoted by mistake, writes 40 KiB, and is demoted \
             again. Then the link returns. The lab's DRBD simulator plays exactly that:",
        ),
        Step::new(
            "Break it: the split, writes on both sides, the link back",
            "What the kernel does when the link returns: compare the data generations (UUIDs), find both changed, \
             log \"Split-Brain detected but unresolved\", and drop the connection.",
            "lab drbd-kernel --state $LAB/drbd/sim scenario split-brain --primary node1 --primary node2 \
             --writes node1=4000 --writes node2=40 --demote node2",
            0,
        )
        .after(observe),
        Step::new(
            "What the admin sees",
            "Exit 1: not healthy. node2 is StandAlone (it detected the split brain and gave up), node1 still \
             Connecting; the UUID comparison says why.",
            &format!("drbd status r0 {NODES}"),
            1,
        ),
        Step::narrate(
            "Before changing anything, gather each node's evidence, as an admin would paste it into a ticket: \
             `drbdadm status r0`, `drbdadm get-gi r0` and the kernel log, each after its prompt line. The lab \
             saves them over SSH (ssh nodeN 'drbdadm status r0; drbdadm get-gi r0; dmesg | grep drbd').",
        ),
        Step::new(
            "Read the evidence of both nodes",
            "Exit 2 means split brain. For each node: role, connection, whether it was Primary during the split \
             and the kernel log lines that show it; then a recommended victim. Advice only: it never picks for you.",
            "drbd split-brain --local-file $LAB/evidence/node1.txt --peer-file $LAB/evidence/node2.txt --service-on node1",
            2,
        )
        .before(collect)
        .after(collected),
        Step::narrate(
            "node2 is the victim: the service ran on node1, and node2 changed 40 KiB against node1's 4000 KiB. \
             Its 40 KiB are lost: if they matter, copy them off node2 first (mount its device read-only).",
        ),
        Step::new(
            "The plan as a runbook, changing nothing",
            "Each step with the check before and after it, what the real `drbdadm -d` on the node expands it to, \
             the data that will be lost, and the state fingerprint the plan was made from.",
            &format!("drbd recover r0 --discard node2 --dry-run {NODES}"),
            0,
        )
        .after(observe),
        Step::new(
            "Recover over SSH",
            "Each step checks its precondition by reading DRBD's state, runs, and reads the state back; a \
             journal records progress so an interrupted recovery resumes (--resume) instead of running twice.",
            &format!("drbd recover r0 --discard node2 --yes {NODES}"),
            0,
        )
        .after(observe),
        Step::new(
            "Verify",
            "Connected and UpToDate on both nodes, one data generation: the split brain is over.",
            &format!("drbd status r0 {NODES}"),
            0,
        )
        .after(observe),
    ]
}
