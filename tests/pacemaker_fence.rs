//! `twonode fence NODE --cib` and `twonode fence test --cib` against REAL peers: CIBs written by
//! real `pcs -f` (fixtures/pacemaker/fence-*.xml, see make-fixtures.sh) whose `ipport` values are
//! rewritten here to the ports of OpenIPMI `ipmi_sim` BMCs this test starts on loopback; the BMC's
//! power state is read back from the sim and with ipmitool. `--cib live --ssh` goes through a real
//! OpenSSH sshd on loopback, whose PATH serves a `cibadmin` printing that CIB (the transport is what
//! is tested there; the CIB is still pcs's).
mod fence_support;
use fence_support::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use twonode::lab::services::{keygen, LoopbackSshd};

fn fx(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pacemaker").join(name)
}

/// The password of the fixtures' fence devices (ipmi_sim's admin in fixtures/sims/ipmi_sim/lan.conf).
const PASSWORD: &str = "secret";

/// A copy of a fixture with each `value="OLD"` ipport replaced.
fn cib_with_ports(dir: &Path, name: &str, ports: &[(u16, u16)]) -> String {
    let mut text = std::fs::read_to_string(fx(name)).unwrap();
    for (old, new) in ports {
        let from = format!("name=\"ipport\" value=\"{old}\"");
        assert!(text.contains(&from), "{name} has no ipport {old}");
        text = text.replace(&from, &format!("name=\"ipport\" value=\"{new}\""));
    }
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn ipmitool_power(port: u16) -> String {
    let out = Command::new("ipmitool")
        .args(["-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", &port.to_string(), "-U", "admin", "-E", "chassis", "power", "status"])
        .env("IPMI_PASSWORD", PASSWORD)
        .output()
        .expect("ipmitool");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn no_secret(r: &Run, audit: &Path) {
    let log = std::fs::read_to_string(audit).unwrap_or_default();
    for (what, text) in [("stdout", &r.stdout), ("stderr", &r.stderr), ("audit log", &log)] {
        // the word itself: "********" is what a masked value looks like
        assert!(!text.contains(PASSWORD), "the password leaked into {what}: {text}");
    }
}

fn peers() -> bool {
    let ok = have("ipmi_sim") && have("ipmitool");
    if !ok {
        eprintln!("SKIPPED: ipmi_sim or ipmitool missing (run scripts/install-deps)");
    }
    ok
}

#[test]
fn off_through_the_cib_device_powers_the_bmc_off_and_logs_without_the_password() {
    if !peers() {
        return;
    }
    let (s1, s2) = (IpmiSim::start(), IpmiSim::start());
    let dir = tempfile::tempdir().unwrap();
    let cib = cib_with_ports(dir.path(), "fence-ipmi.xml", &[(6231, s1.port), (6232, s2.port)]);
    let audit = dir.path().join("audit.log");
    let a = audit.display().to_string();
    assert!(s1.power());
    let r = twonode(&["fence", "node1", "--cib", &cib, "--action", "off", "--yes", "--audit-log", &a], None);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("node1 fenced: power off confirmed (method fence-node1)"), "{}", r.stdout);
    assert!(r.stderr.contains("pcmk_delay_max (15000 ms) NOT applied"), "{}", r.stderr);
    assert!(!s1.power(), "the sim still has power on");
    assert_eq!(ipmitool_power(s1.port), "Chassis Power is off");
    assert!(s2.power(), "node2's BMC was touched");
    let log = std::fs::read_to_string(&audit).unwrap();
    assert!(log.contains("\"cib\"") && log.contains("\"outcome\"") && log.contains("fence-node1"), "{log}");
    no_secret(&r, &audit);
    // status now reads OFF (exit 2), through the same device
    let r = twonode(&["fence", "node1", "--cib", &cib, "--action", "status", "--json"], None);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["verdict"], "status_off");
    assert_eq!(v["exit_code"], 2);
    no_secret(&r, &audit);
}

#[test]
fn reboot_with_pcmk_reboot_action_off_powers_off_and_the_stopped_spare_is_skipped() {
    if !peers() {
        return;
    }
    let (s1, s2) = (IpmiSim::start(), IpmiSim::start());
    let dir = tempfile::tempdir().unwrap();
    let cib = cib_with_ports(dir.path(), "fence-ipmi.xml", &[(6231, s1.port), (6232, s2.port)]);
    let audit = dir.path().join("audit.log");
    let dry = twonode(&["fence", "node2", "--cib", &cib, "--dry-run"], None);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(dry.stdout.contains("fence-node2-spare skipped: disabled (meta target-role=Stopped)"), "{}", dry.stdout);
    assert!(dry.stdout.contains("asked for off instead of reboot (pcmk_reboot_action)"), "{}", dry.stdout);
    assert!(s2.power(), "--dry-run touched the BMC");
    let r = twonode(&["fence", "node2", "--cib", &cib, "--yes", "--audit-log", &audit.display().to_string(), "--json"], None);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["action"], "reboot");
    assert_eq!(v["verdict"], "done");
    assert!(v["notes"].to_string().contains("fence-node2-spare"), "{v}");
    assert!(!s2.power(), "pcmk_reboot_action=off: the node must stay off");
    assert_eq!(ipmitool_power(s2.port), "Chassis Power is off");
    assert!(s1.power());
    no_secret(&r, &audit);
}

#[test]
fn level_one_unreachable_then_level_two_reboots() {
    if !peers() {
        return;
    }
    let sim = IpmiSim::start();
    let dead = free_udp_port();
    let dir = tempfile::tempdir().unwrap();
    let cib = cib_with_ports(dir.path(), "fence-levels.xml", &[(6231, dead), (6233, sim.port)]);
    let audit = dir.path().join("audit.log");
    let r = twonode(&["fence", "node1", "--cib", &cib, "--yes", "--json", "--audit-log", &audit.display().to_string()], None);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["verdict"], "done", "{v}");
    assert_eq!(v["method"], "level 2", "{v}");
    let steps = v["steps"].as_array().unwrap();
    assert!(steps.iter().any(|s| s["method"] == "level 1" && s["ok"] == false), "{v}");
    // reboot: off confirmed then on confirmed on the sim of level 2
    assert!(sim.power());
    assert_eq!(ipmitool_power(sim.port), "Chassis Power is on");
    let chassis = sim.chassis_log();
    let (off, on) = (chassis.find("set power 0"), chassis.rfind("set power 1"));
    assert!(off.is_some() && on > off, "the BMC did not see off then on: {chassis}");
    no_secret(&r, &audit);
    // both levels dead: exit 4 (unreachable), every level's reason in the message
    let cib = cib_with_ports(dir.path(), "fence-levels.xml", &[(6231, dead), (6233, dead)]);
    let r = twonode(&["fence", "node1", "--cib", &cib, "--action", "status"], None);
    assert!(r.code == 4 || r.code == 5, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("level 1") && r.stderr.contains("level 2"), "{}", r.stderr);
}

#[test]
fn a_node_without_a_device_or_with_unknown_targets_is_refused_with_exit_1() {
    let r = twonode(&["fence", "node1", "--cib", fx("node-without-device.xml").to_str().unwrap(), "--yes"], None);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("no usable fence device can fence node1; nothing was done"), "{}", r.stderr);
    assert!(r.stderr.contains("pcs stonith create"), "{}", r.stderr);
    let r = twonode(&["fence", "node9", "--cib", fx("healthy.xml").to_str().unwrap(), "--yes"], None);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("node9 is not a node of the CIB (nodes: node1, node2)"), "{}", r.stderr);
    let dl = fx("dynamic-list.xml");
    let r = twonode(&["fence", "node1", "--cib", dl.to_str().unwrap(), "--yes"], None);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("targets unknown") && r.stderr.contains("--device fence-virt"), "{}", r.stderr);
    // named with --device: used (the plan shows the node as the plug the agent gets)
    let r = twonode(&["fence", "node1", "--cib", dl.to_str().unwrap(), "--device", "fence-virt", "--dry-run"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("fence-virt (fence_virsh 127.0.0.1 plug node1) via external"), "{}", r.stdout);
    let r = twonode(&["fence", "node1", "--cib", dl.to_str().unwrap(), "--device", "nope", "--dry-run"], None);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no stonith resource nope"), "{}", r.stderr);
    // an unreadable CIB: exit 1 (a configuration error; 2 would read as "status OFF")
    let r = twonode(&["fence", "node1", "--cib", "/nonexistent/cib.xml", "--yes"], None);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("cannot read /nonexistent/cib.xml"), "{}", r.stderr);
}

#[test]
fn fence_test_checks_every_device_of_every_node() {
    if !peers() {
        return;
    }
    let (s1, s2) = (IpmiSim::start(), IpmiSim::start());
    let dir = tempfile::tempdir().unwrap();
    let cib = cib_with_ports(dir.path(), "fence-ipmi.xml", &[(6231, s1.port), (6232, s2.port)]);
    let r = twonode(&["fence", "test", "--cib", &cib, "--json"], None);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", r.stdout, r.stderr));
    let checks = v["checks"].as_array().unwrap();
    let devs: Vec<(&str, &str)> = checks.iter().map(|c| (c["node"].as_str().unwrap(), c["device"].as_str().unwrap())).collect();
    assert_eq!(devs, [("node1", "fence-node1"), ("node2", "fence-node2")], "{v}");
    assert!(checks.iter().all(|c| c["status"] == "on" && c["error"].is_null()), "{v}");
    assert!(v["risks"].to_string().contains("fence-node2-spare"), "the skipped device is reported: {v}");
    assert!(v["race_protection"].as_str().unwrap().contains("fence-node1"), "{v}");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains(PASSWORD) && !r.stderr.contains(PASSWORD));
    assert!(s1.power() && s2.power(), "a non-destructive test changed power");
    // node2's BMC gone: that device fails, exit 1
    drop(s2);
    let r = twonode(&["fence", "test", "--cib", &cib], None);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("fence-node2") && r.stdout.contains("fence-node1"), "{}", r.stdout);
}

#[test]
fn destructive_fence_test_powers_each_node_off_and_on_and_audits_it() {
    if !peers() {
        return;
    }
    let (s1, s2) = (IpmiSim::start(), IpmiSim::start());
    let dir = tempfile::tempdir().unwrap();
    let cib = cib_with_ports(dir.path(), "fence-ipmi.xml", &[(6231, s1.port), (6232, s2.port)]);
    let audit = dir.path().join("audit.log");
    let report = dir.path().join("report.json");
    let r = twonode(
        &["fence", "test", "--cib", &cib, "--destructive", "--yes", "--audit-log", &audit.display().to_string(), "--report", &report.display().to_string()],
        None,
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let pt = v["power_tests"].as_array().unwrap();
    assert_eq!(pt.len(), 2, "{v}");
    assert!(pt.iter().all(|p| p["off_ok"] == true && p["on_ok"] == true), "{v}");
    for s in [&s1, &s2] {
        let log = s.chassis_log();
        assert!(log.contains("set power 0") && log.contains("set power 1"), "{log}");
        assert!(s.power());
    }
    no_secret(&r, &audit);
}

#[test]
fn live_cib_without_a_running_cluster_is_exit_1_with_the_way_out() {
    let probe = Command::new("cibadmin").arg("-Q").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if matches!(probe, Ok(s) if s.success()) {
        eprintln!("SKIPPED: a pacemaker cluster answers here");
        return;
    }
    let r = twonode(&["fence", "node1", "--cib", "live", "--action", "status"], None);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("cibadmin -Q") && r.stderr.contains("--cib cib.xml"), "{}", r.stderr);
}

// ---------------------------------------------------------------- over SSH

/// An sshd on loopback whose PATH starts with `bin`; user_key and known_hosts go into `dir`.
fn sshd(dir: &Path, bin: &Path) -> LoopbackSshd {
    keygen(&dir.join("user_key")).expect("ssh-keygen");
    std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).unwrap();
    let d = LoopbackSshd::start(dir, "node1", &dir.join("authorized_keys"), bin, dir).expect("sshd");
    std::fs::write(dir.join("known_hosts"), &d.known_hosts_line).unwrap();
    d
}

#[test]
fn live_cib_over_ssh_fences_and_tests_through_the_node_s_cibadmin() {
    if !peers() || !have("sshd") || !have("ssh-keygen") {
        eprintln!("SKIPPED: sshd/ssh-keygen/ipmi_sim missing");
        return;
    }
    let (s1, s2) = (IpmiSim::start(), IpmiSim::start());
    let dir = tempfile::tempdir().unwrap();
    let cib = cib_with_ports(dir.path(), "fence-ipmi.xml", &[(6231, s1.port), (6232, s2.port)]);
    // the node's `cibadmin`: prints the pcs-written CIB for -Q, refuses anything else
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("cibadmin");
    std::fs::write(&fake, format!("#!/bin/sh\n[ \"$1\" = -Q ] || {{ echo \"cibadmin: only -Q here\" >&2; exit 64; }}\nexec cat '{cib}'\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = sshd(dir.path(), &bin);
    let target = format!("root@127.0.0.1:{}", d.port);
    let key = dir.path().join("user_key").display().to_string();
    let kh = dir.path().join("known_hosts").display().to_string();
    let audit = dir.path().join("audit.log");
    let ssh = ["--cib", "live", "--ssh", &target, "--identity", &key, "--known-hosts", &kh];
    let mut args = vec!["fence", "node1", "--action", "off", "--yes", "--audit-log"];
    let a = audit.display().to_string();
    args.push(&a);
    args.extend_from_slice(&ssh);
    let r = twonode(&args, None);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(!s1.power());
    assert_eq!(ipmitool_power(s1.port), "Chassis Power is off");
    assert!(std::fs::read_to_string(&audit).unwrap().contains("cibadmin -Q on 127.0.0.1"));
    no_secret(&r, &audit);
    let mut args = vec!["fence", "test", "--json"];
    args.extend_from_slice(&ssh);
    let r = twonode(&args, None);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", r.stdout, r.stderr));
    assert_eq!(v["file"], "cibadmin -Q on 127.0.0.1");
    assert_eq!(v["checks"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["checks"][0]["status"], "off", "{v}");
    // doctor --cib live: `cibadmin -Q` on the first node that answers (node2 here has none running)
    let node1 = format!("node1={target}");
    let missing = dir.path().join("no-cluster.conf").display().to_string();
    let r = twonode(
        &["--json", "doctor", "--file", &missing, "--node", &node1, "--node", "node2=local", "--identity", &key, "--known-hosts", &kh, "--cib", "live"],
        None,
    );
    let f = findings(&r);
    assert!(f.iter().any(|x| x["check"] == "pacemaker.cib" && x["severity"] == "ok" && x["evidence"].as_str().unwrap().contains("cibadmin -Q on node1")), "{f:?}");
    assert!(has(&f, "pacemaker.device", "ok"), "{f:?}");
    assert!(!r.stdout.contains(PASSWORD));
    // an unknown host key is refused (exit 1), the CIB is not read
    std::fs::write(dir.path().join("known_hosts"), "").unwrap();
    let r = twonode(&["fence", "node1", "--action", "status", "--cib", "live", "--ssh", &target, "--identity", &key, "--known-hosts", &kh], None);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("unknown host"), "{}", r.stderr);
}

// ---------------------------------------------------------------- doctor

fn findings(r: &Run) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", r.stdout, r.stderr));
    v["findings"].as_array().unwrap().clone()
}

fn has(f: &[serde_json::Value], check: &str, sev: &str) -> bool {
    f.iter().any(|x| x["check"] == check && x["severity"] == sev)
}

#[test]
fn doctor_reads_the_cib_judges_it_and_asks_its_devices() {
    if !peers() {
        return;
    }
    let (s1, s2) = (IpmiSim::start(), IpmiSim::start());
    let dir = tempfile::tempdir().unwrap();
    let cib = cib_with_ports(dir.path(), "fence-ipmi.xml", &[(6231, s1.port), (6232, s2.port)]);
    let cc = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/corosync/pve-two-node.conf").display().to_string();
    let missing = dir.path().join("no-cluster.conf").display().to_string();
    let base = ["--json", "doctor", "--file", &missing, "--corosync-conf", &cc, "--node", "node1=local", "--node", "node2=local"];
    let mut args = base.to_vec();
    args.extend_from_slice(&["--cib", &cib]);
    let r = twonode(&args, None);
    let f = findings(&r);
    assert!(has(&f, "pacemaker.cib", "ok"), "{f:?}");
    let devs: Vec<&serde_json::Value> = f.iter().filter(|x| x["check"] == "pacemaker.device" && x["severity"] == "ok").collect();
    assert_eq!(devs.len(), 2, "both BMCs answer: {f:?}");
    assert!(f.iter().any(|x| x["check"] == "pacemaker.device" && x["severity"] == "warning" && x["evidence"].as_str().unwrap().contains("fence-node2-spare")), "{f:?}");
    // pcmk_delay_max on fence-node1: the race is decided; the corosync-only warning is not repeated
    assert!(!f.iter().any(|x| x["check"] == "pcmk.fence-race"), "{f:?}");
    assert!(!f.iter().any(|x| x["check"] == "fence.race"), "{f:?}");
    assert!(!r.stdout.contains(PASSWORD) && !r.stderr.contains(PASSWORD));
    // node2's BMC gone: an error with the fix, exit 1
    drop(s2);
    let r = twonode(&args, None);
    let f = findings(&r);
    assert!(f.iter().any(|x| x["check"] == "pacemaker.device" && x["severity"] == "error" && x["node"] == "node2" && x["fix"].as_str().unwrap().contains("pcs stonith config fence-node2")), "{f:?}");
    assert_eq!(r.code, 1, "{}", r.stderr);
    // a CIB with a finding of the shared rules: the same id as `pacemaker validate`
    let mut args = base.to_vec();
    let fr = fx("fence-race.xml").display().to_string();
    args.extend_from_slice(&["--cib", &fr, "--no-fence"]);
    let f = findings(&twonode(&args, None));
    assert!(has(&f, "pcmk.fence-race", "error"), "{f:?}");
    assert!(has(&f, "pacemaker.device", "info"), "--no-fence: {f:?}");
    // without --cib and no pacemaker answering here: no pacemaker area at all
    let probe = Command::new("cibadmin").arg("-Q").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if !matches!(probe, Ok(s) if s.success()) {
        let mut args = base.to_vec();
        args.push("--no-fence");
        let f = findings(&twonode(&args, None));
        assert!(!f.iter().any(|x| x["check"].as_str().unwrap().starts_with("pacemaker.")), "{f:?}");
    }
    // an unreadable CIB asked for: an error finding
    let mut args = base.to_vec();
    args.extend_from_slice(&["--cib", "/nonexistent/cib.xml", "--no-fence"]);
    let f = findings(&twonode(&args, None));
    assert!(has(&f, "pacemaker.cib", "error"), "{f:?}");
}

#[test]
fn the_cluster_s_stonith_action_is_named_when_the_run_differs() {
    if !have("pcs") {
        eprintln!("SKIPPED: pcs missing (run scripts/install-deps)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cib = dir.path().join("cib.xml");
    std::fs::copy(fx("healthy.xml"), &cib).unwrap();
    let st = Command::new("pcs").arg("-f").arg(&cib).args(["property", "set", "stonith-action=off"]).stderr(Stdio::null()).status().unwrap();
    assert!(st.success());
    let c = cib.display().to_string();
    let r = twonode(&["fence", "node1", "--cib", &c, "--dry-run"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("the cluster's stonith-action=off") && r.stdout.contains("--action off to do the same"), "{}", r.stdout);
    let r = twonode(&["fence", "node1", "--cib", &c, "--dry-run", "--action", "off"], None);
    assert!(!r.stdout.contains("stonith-action"), "{}", r.stdout);
}
