//! A real two-node pacemaker 2.1 cluster (corosync 3 + pacemakerd per node, each node in a network
//! namespace of its own with private mount and UTS namespaces) fencing through two OpenIPMI
//! ipmi_sim BMCs with twonode as the fence agent (`fence_twonode`, overlaid into the nodes'
//! /usr/sbin where pacemaker's fencer looks for agents). tests/pacemaker-lab/scenarios.sh:
//! the agent is listed and its metadata accepted; two stonith devices created with pcs against the
//! live CIB; crm_simulate on the live CIB as pacemaker's own answer; `stonith_admin --reboot n2`
//! powers BMC n2 off and on with the password never in any argv; a ring cut under two_node with
//! pcmk_delay_base/pcmk_delay_max on one device (then on the device that shoots the non-DC node:
//! the delay decides, not who was DC), and one with corosync-qdevice + `twonode arbiter
//! serve` (two_node off): exactly one node fenced, observed on the BMCs.
//!
//! Needs root, `ip netns`, nsenter/unshare, overlayfs, and the Debian packages corosync,
//! corosync-qdevice, pacemaker, pacemaker-cli-utils, pcs, openipmi, ipmitool, libxml2-utils
//! (scripts/install-deps). Elsewhere it prints why and passes as skipped. About 4 minutes.
mod netns_support;
use netns_support::{rows, skip_reason, Row};
use std::path::Path;
use std::process::Command;

#[test]
fn pacemaker_fences_through_fence_twonode_in_a_namespace_lab() {
    if let Some(why) = skip_reason(&["corosync", "corosync-qdevice", "corosync-quorumtool", "pacemakerd", "crm_mon", "stonith_admin", "cibadmin", "crm_simulate", "pcs", "ipmi_sim", "ipmitool", "xmllint", "nsenter"]) {
        eprintln!("SKIPPED pacemaker_lab: {why}");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let id = format!("{}", std::process::id() % 100_000);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pacemaker-lab/scenarios.sh");
    let lab_dir = t.path().join("lab");
    let out = Command::new("bash")
        .arg(&script)
        .arg(&id)
        .arg(&lab_dir)
        .env("TWONODE", env!("CARGO_BIN_EXE_twonode"))
        .output()
        .expect("running tests/pacemaker-lab/scenarios.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let log = format!("{stdout}\n{stderr}");
    println!("{stdout}");
    // the script's trap removes every namespace and process it started
    let ns = String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).into_owned();
    assert!(!ns.contains(&format!("tnpm{id}-")), "namespaces left behind: {ns}");

    let rs = rows(&stdout);
    let get = |s: &str| -> Row {
        rs.iter()
            .find(|r| r.get("scenario").map(String::as_str) == Some(s))
            .cloned()
            .unwrap_or_else(|| panic!("scenario {s} has no result\n{log}"))
    };
    let val = |r: &Row, k: &str| r.get(k).cloned().unwrap_or_default();

    let setup = get("setup");
    assert!(!setup.contains_key("error"), "{setup:?}\n{log}");

    let agent = get("agent");
    assert_eq!(val(&agent, "listed"), "yes", "stonith_admin --list-installed inside a node: {agent:?}\n{log}");
    assert_eq!(val(&agent, "metadata"), "yes", "stonith_admin --metadata --agent fence_twonode: {agent:?}\n{log}");
    assert_eq!(val(&agent, "host_listed"), "no", "the host's /usr/sbin must stay untouched: {agent:?}");

    let conf = get("configure");
    assert_eq!(val(&conf, "started"), "2", "{conf:?}\n{log}");

    let sim = get("crm-simulate");
    assert_eq!(val(&sim, "fail_n1_fences_n1"), "1", "{sim:?}");
    assert_eq!(val(&sim, "fail_n2_fences_n2"), "1", "{sim:?}");

    let reboot = get("reboot");
    assert_eq!(val(&reboot, "rc"), "0", "stonith_admin --reboot n2: {reboot:?}\n{log}");
    let off: i64 = val(&reboot, "bmc2_off_ms").parse().unwrap_or(-1);
    let on: i64 = val(&reboot, "bmc2_on_ms").parse().unwrap_or(-1);
    assert!(off >= 0 && on > off, "BMC n2 must be powered off, then on: {reboot:?}");
    assert_eq!(val(&reboot, "bmc1_offs"), "0", "{reboot:?}");
    assert_eq!(val(&reboot, "bmc2_power"), "1", "{reboot:?}");
    assert_eq!(val(&reboot, "argv_hits"), "0", "the BMC password appeared in a process's argv: {reboot:?}");
    assert!(val(&reboot, "argv_scans").parse::<u32>().unwrap_or(0) >= 5, "argv barely scanned: {reboot:?}");

    let dc_setup = get("ring-cut-delay-dc-setup");
    let dc_victim = val(&dc_setup, "expected_fenced");
    for (sc, victim) in [("ring-cut-delay", "n2".to_string()), ("ring-cut-delay-dc", dc_victim), ("ring-cut-qdevice", "n2".to_string())] {
        let r = get(sc);
        assert!(!r.contains_key("error"), "{sc}: {r:?}\n{log}");
        assert_eq!(val(&r, "fenced"), victim, "{sc}: exactly one node ({victim}) must be fenced: {r:?}\n{log}");
        let (v, other) = if victim == "n1" { ("1", "2") } else { ("2", "1") };
        assert_eq!(val(&r, &format!("bmc{other}_offs")), "0", "{sc}: {r:?}");
        assert_eq!(val(&r, &format!("bmc{v}_offs")), "1", "{sc}: {r:?}");
        assert_eq!(val(&r, "bmc1_power"), "1", "{sc}: {r:?}");
        assert_eq!(val(&r, "bmc2_power"), "1", "{sc}: {r:?}");
        assert_eq!(val(&r, &format!("n{v}_quorate")), "No", "{sc}: the rebooted {victim} must stay without quorum while cut: {r:?}");
        assert_eq!(val(&r, &format!("n{other}_quorate")), "Yes", "{sc}: the survivor must stay quorate: {r:?}");
    }
    let end = get("end");
    assert_eq!(val(&end, "both_online"), "yes", "{log}");
    // from the device creation (pcs gets a placeholder, never the password) to the end: monitors,
    // the reboot and three ring cuts with their fences
    assert_eq!(val(&end, "argv_hits_total"), "0", "the BMC password appeared in a process's argv: {end:?}");
    assert!(val(&end, "argv_scans_total").parse::<u32>().unwrap_or(0) >= 200, "argv barely scanned: {end:?}");
}
