//! `twonode drbd recover` against a LIVE two-node pacemaker 2.1 (tests/pacemaker-lab/lab.sh:
//! corosync + pacemaker per node, each in network, mount and UTS namespaces of its own), run by
//! tests/pacemaker-lab/drbd-recover.sh: what tests/pacemaker_drbd.rs cannot observe on a CIB file.
//! twonode runs inside node n1 with `--cib live` (cibadmin -Q / crm_mon over the same host as the
//! DRBD steps); pacemaker's state is read back live after each step; `crm_resource --cleanup`
//! clears a failure recorded on n2 (observed in crm_mon); after the hand-back pacemaker runs the
//! clone Promoted on the survivor n1 and the stale fence-by-handler constraint is gone.
//!
//! The DRBD side is the lab's simulator with the real drbdadm. No DRBD kernel runs here, so the
//! clone's ocf:linbit:drbd path is bound, in each node's private mount namespace, to pacemaker's own
//! promotable test agent ocf:pacemaker:Stateful (a stand-in for the resource agent; pacemaker itself
//! is real). Needs root, `ip netns`, nsenter/unshare, overlayfs, corosync, pacemaker, pcs
//! (scripts/install-deps); elsewhere it prints why and passes as skipped. About 30 seconds.
//! Namespaces tnpm<ID>-*: do not run it at the same time as tests/pacemaker_lab.rs.
mod netns_support;
use netns_support::{rows, skip_reason};
use std::path::Path;
use std::process::Command;


/// The OCF agents the DRBD lab binds (pacemaker:Stateful stands in for linbit:drbd).
fn ocf_missing() -> Option<String> {
    let ok = Path::new("/usr/lib/ocf/resource.d/pacemaker/Stateful").exists() && Path::new("/usr/lib/ocf/resource.d/linbit/drbd").exists();
    (!ok).then(|| "the OCF agents pacemaker:Stateful / linbit:drbd are missing (pacemaker-resource-agents, drbd-utils)".into())
}

#[test]
fn drbd_recover_keeps_a_live_pacemaker_out_of_the_way() {
    if let Some(why) = skip_reason(&["corosync", "pacemakerd", "crm_mon", "crm_resource", "cibadmin", "crm_attribute", "drbdadm", "nsenter"]).or_else(ocf_missing) {
        eprintln!("SKIPPED pacemaker_drbd_lab: {why}");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    // a lab id apart from tests/pacemaker_lab.rs's (pid % 100000)
    let id = format!("d{}", std::process::id() % 10_000);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pacemaker-lab/drbd-recover.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(&id)
        .arg(t.path().join("lab"))
        .env("TWONODE", env!("CARGO_BIN_EXE_twonode"))
        .output()
        .expect("running tests/pacemaker-lab/drbd-recover.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let log = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    println!("{stdout}");
    let ns = String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).into_owned();
    assert!(!ns.contains(&format!("tnpm{id}-")), "namespaces left behind: {ns}");
    let rs = rows(&stdout);
    let get = |s: &str| rs.iter().find(|r| r.get("scenario").map(String::as_str) == Some(s)).cloned().unwrap_or_default();
    let setup = get("setup");
    assert!(!setup.contains_key("error"), "setup failed: {log}");
    assert_eq!(setup.get("failure_on_n2").map(String::as_str), Some("yes"), "{log}");
    let r = get("recover");
    assert_eq!(r.get("rc").map(String::as_str), Some("0"), "{log}");
    assert_eq!(
        r.get("steps").map(String::as_str),
        Some(
            "pacemaker-unmanage,victim-connect-discard,wait-resync,pacemaker-remove-drbd-fence-by-handler-r0-drbd-r0-clone,\
             pacemaker-cleanup,pacemaker-manage,pacemaker-promoted"
        ),
        "{log}"
    );
    assert_eq!(r.get("clone_managed").map(String::as_str), Some("1"), "handed back: {log}");
    assert_eq!(r.get("failures_after").map(String::as_str), Some("0"), "the clean-up cleared the failure: {log}");
    assert_eq!(r.get("constraint_after").map(String::as_str), Some("0"), "the stale constraint is gone: {log}");
    assert_eq!(r.get("promoted").map(String::as_str), Some("n1"), "pacemaker runs it Promoted on the survivor: {log}");
}
