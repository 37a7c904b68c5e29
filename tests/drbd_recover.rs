//! `twonode drbd recover` / `drbd status` against two simulated DRBD nodes reached over REAL
//! OpenSSH: each node is an `sshd` started here on a free loopback port with generated keys, whose
//! `SetEnv PATH=` puts that node's tools first: the REAL `drbdadm` (drbd-utils) pointed with -s/-m
//! at the `twonode lab drbd-kernel` simulator, pretending to be that node (`__DRBD_NODE__`).
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use twonode::lab::services::{keygen, LoopbackSshd};

const BIN: &str = env!("CARGO_BIN_EXE_twonode");

fn have(tool: &str) -> bool {
    ["/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/"].iter().any(|d| Path::new(&format!("{d}{tool}")).exists())
}

/// Skip (loudly) when the real peers are missing; CI installs them (scripts/install-deps).
fn peers_present() -> bool {
    let ok = have("sshd") && have("ssh-keygen") && have("drbdadm");
    if !ok {
        eprintln!("SKIPPED: sshd, ssh-keygen or drbdadm missing (run scripts/install-deps)");
    }
    ok
}

/// A TCP proxy on loopback that can cut every connection (the "network" between twonode and a node).
struct Proxy {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

impl Proxy {
    fn start(to: u16, cut_file: PathBuf) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = l.local_addr().expect("addr").port();
        let cut = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        // Watch the cut file (a node-side hook touches it to simulate the link dying mid-step).
        {
            let (cut, stop) = (cut.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    cut.store(cut_file.exists(), Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
        }
        {
            let (cut, stop) = (cut.clone(), stop.clone());
            std::thread::spawn(move || {
                for c in l.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = c else { continue };
                    if cut.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else { continue };
                    for (mut a, mut b) in [
                        (client.try_clone().expect("clone"), server.try_clone().expect("clone")),
                        (server, client),
                    ] {
                        let cut = cut.clone();
                        std::thread::spawn(move || {
                            a.set_read_timeout(Some(Duration::from_millis(5))).ok();
                            let mut buf = [0u8; 16384];
                            loop {
                                if cut.load(Ordering::SeqCst) {
                                    let _ = a.shutdown(std::net::Shutdown::Both);
                                    let _ = b.shutdown(std::net::Shutdown::Both);
                                    return;
                                }
                                match a.read(&mut buf) {
                                    Ok(0) => {
                                        let _ = b.shutdown(std::net::Shutdown::Write);
                                        return;
                                    }
                                    Ok(n) => {
                                        if b.write_all(&buf[..n]).is_err() {
                                            return;
                                        }
                                    }
                                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                                    Err(_) => return,
                                }
                            }
                        });
                    }
                }
            });
        }
        Proxy { port, stop }
    }
}

/// Two simulated DRBD nodes, alice and bob, each behind its own sshd.
struct Lab {
    dir: tempfile::TempDir,
    sshd: Vec<LoopbackSshd>,
    /// Port twonode uses per node (the sshd's, or a proxy's in front of it).
    ports: Vec<u16>,
    proxies: Vec<Proxy>,
}

impl Lab {
    fn state(&self) -> PathBuf {
        self.dir.path().join("sim")
    }
    fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn new(flavour: &str, volumes: u32, resync_rate: u64) -> Lab {
        let dir = tempfile::tempdir().expect("tempdir");
        let sim = dir.path().join("sim");
        let out = Command::new(BIN)
            .args(["lab", "drbd-kernel", "--state"])
            .arg(&sim)
            .args(["init", "--flavour", flavour, "--volumes", &volumes.to_string(), "--resync-rate", &resync_rate.to_string()])
            .output()
            .expect("run twonode");
        assert!(out.status.success(), "init: {}", String::from_utf8_lossy(&out.stderr));
        keygen(&dir.path().join("user_key")).expect("ssh-keygen");
        std::fs::copy(dir.path().join("user_key.pub"), dir.path().join("authorized_keys")).expect("copy key");
        let mut known = String::new();
        let mut sshd = Vec::new();
        for node in ["alice", "bob"] {
            let (bin, home) = (sim.join(node).join("bin"), dir.path().join(format!("home_{node}")));
            let d = LoopbackSshd::start(dir.path(), node, &dir.path().join("authorized_keys"), &bin, &home).expect("sshd");
            known.push_str(&d.known_hosts_line);
            sshd.push(d);
        }
        std::fs::write(dir.path().join("known_hosts"), known).expect("known_hosts");
        let ports = sshd.iter().map(|s| s.port).collect();
        Lab { dir, sshd, ports, proxies: vec![] }
    }

    /// Put a cuttable proxy in front of bob's sshd.
    fn proxy_bob(&mut self) -> PathBuf {
        let cut = self.p("cut-bob");
        let px = Proxy::start(self.sshd[1].port, cut.clone());
        // the same host key, now reached through the proxy's port
        let pubkey = std::fs::read_to_string(self.p("host_key_bob.pub")).expect("host pub");
        let mut parts = pubkey.split_whitespace();
        let line = format!("[127.0.0.1]:{} {} {}\n", px.port, parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let mut kh = std::fs::read_to_string(self.p("known_hosts")).expect("kh");
        kh.push_str(&line);
        std::fs::write(self.p("known_hosts"), kh).expect("kh");
        self.ports[1] = px.port;
        self.proxies.push(px);
        cut
    }

    fn sim(&self, node: Option<&str>, args: &[&str]) -> String {
        let mut c = Command::new(BIN);
        c.args(["lab", "drbd-kernel", "--state"]).arg(self.state());
        if let Some(n) = node {
            c.args(["--node", n]);
        }
        let out = c.args(args).output().expect("twonode lab");
        assert!(out.status.success(), "lab {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn node_args(&self) -> Vec<String> {
        self.node_args_kh(&self.p("known_hosts"))
    }

    fn node_args_kh(&self, kh: &Path) -> Vec<String> {
        vec![
            "--node".into(),
            format!("alice=root@127.0.0.1:{}", self.ports[0]),
            "--node".into(),
            format!("bob=root@127.0.0.1:{}", self.ports[1]),
            "--identity".into(),
            self.p("user_key").display().to_string(),
            "--known-hosts".into(),
            kh.display().to_string(),
        ]
    }

    fn twonode(&self, args: &[&str]) -> Output {
        let mut c = Command::new(BIN);
        c.args(args).args(self.node_args()).arg("--journal-dir").arg(self.p("journal"));
        c.env("TWONODE_REPORT_TRIPS", "1").stdin(Stdio::null());
        c.output().expect("run twonode")
    }

    fn status(&self, args: &[&str]) -> Output {
        let mut c = Command::new(BIN);
        c.args(["drbd", "status"]).args(args).args(self.node_args()).stdin(Stdio::null());
        c.output().expect("run twonode")
    }

    /// drbdadm status as the node prints it (the real drbdadm through the node's wrapper).
    fn drbdadm(&self, node: &str, args: &[&str]) -> Output {
        Command::new(self.state().join(node).join("bin").join("drbdadm")).args(args).output().expect("drbdadm")
    }

    fn world(&self) -> serde_json::Value {
        serde_json::from_str(&self.sim(Some("alice"), &["show", "json"])).expect("json")
    }
}

fn text(o: &Output) -> String {
    format!("--- exit {:?}\n--- stdout\n{}\n--- stderr\n{}", o.status.code(), String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}")))
        .collect()
}

/// Both nodes connected, every volume UpToDate, same current UUID on both.
fn assert_recovered(lab: &Lab, survivor: &str) {
    let w = lab.world();
    let r = &w["resources"]["r0"];
    assert_eq!(r["connected"], true, "{w:#}");
    assert!(r["resyncs"].as_array().map(|a| a.is_empty()).unwrap_or(false), "{w:#}");
    let nodes = &r["nodes"];
    let vols = nodes["alice"]["volumes"].as_array().expect("volumes").len();
    for v in 0..vols {
        let a = &nodes["alice"]["volumes"][v];
        let b = &nodes["bob"]["volumes"][v];
        assert_eq!(a["disk"], "UpToDate");
        assert_eq!(b["disk"], "UpToDate");
        assert_eq!(a["gi"][0], b["gi"][0], "current UUIDs differ after recovery");
        assert_eq!(a["gi"][0], nodes[survivor]["volumes"][v]["gi"][0]);
    }
    let o = lab.status(&["r0"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("r0: Healthy"), "{}", text(&o));
}

fn split(lab: &Lab, primaries: &[&str], writes: &[(&str, u64)], demote: &[&str]) {
    let mut args: Vec<String> = vec!["scenario".into(), "split-brain".into()];
    for p in primaries {
        args.push("--primary".into());
        args.push(p.to_string());
    }
    for (n, k) in writes {
        args.push("--writes".into());
        args.push(format!("{n}={k}"));
    }
    for d in demote {
        args.push("--demote".into());
        args.push(d.to_string());
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    lab.sim(None, &a);
}

#[test]
fn primary_secondary_split_v9_two_volumes_recovers_over_ssh() {
    if !peers_present() {
        return;
    }
    let lab = Lab::new("9", 2, 50_000);
    // alice primary throughout; bob promoted during the split, wrote, and was demoted again.
    split(&lab, &["alice", "bob"], &[("alice", 8000), ("bob", 400)], &["bob"]);
    let st = String::from_utf8_lossy(&lab.drbdadm("bob", &["status", "r0"]).stdout).into_owned();
    assert!(st.contains("alice connection:StandAlone"), "{st}");
    let o = lab.status(&["r0"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("r0: SplitBrain"), "{}", text(&o));

    let o = lab.twonode(&["--json", "drbd", "recover", "r0", "--discard", "bob", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let ev = json_lines(&o);
    assert_eq!(ev[0]["event"], "evidence");
    assert_eq!(ev[0]["verdict"], "split-brain");
    assert_eq!(ev[0]["loss_kib"], serde_json::json!([[0, 400], [1, 400]]));
    // the project's split-brain evidence (kernel log read through the node's dmesg) agrees
    assert_eq!(ev[0]["split_brain"]["recommendation"]["victim"], "bob", "{}", text(&o));
    let kl = ev[0]["split_brain"]["peer"]["kernel_lines"].to_string();
    assert!(kl.contains("Split-Brain detected"), "{kl}");
    let steps: Vec<String> = ev.iter().filter(|e| e["event"] == "step").map(|e| format!("{}:{}", e["step"].as_str().unwrap_or(""), e["status"].as_str().unwrap_or(""))).collect();
    // bob is Secondary and StandAlone; alice still Connecting: only the discard-connect and the wait.
    assert_eq!(steps, ["victim-connect-discard:done", "wait-resync:done"], "{}", text(&o));
    assert_eq!(ev.last().map(|e| e["status"].clone()), Some(serde_json::json!("recovered")));
    assert_recovered(&lab, "alice");
    // The journal is archived: a second run finds nothing to do.
    let o = lab.twonode(&["drbd", "recover", "r0", "--discard", "bob", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("already connected and UpToDate"), "{}", text(&o));
}

#[test]
fn primary_primary_split_v84_victim_demoted_then_discarded() {
    if !peers_present() {
        return;
    }
    let lab = Lab::new("8.4", 1, 100_000);
    split(&lab, &["alice", "bob"], &[("alice", 4000), ("bob", 40)], &[]);
    let o = lab.twonode(&["--json", "drbd", "recover", "r0", "--discard", "bob", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let steps: Vec<String> = json_lines(&o).iter().filter(|e| e["event"] == "step").map(|e| e["step"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(steps, ["victim-secondary", "victim-connect-discard", "wait-resync"]);
    assert_recovered(&lab, "alice");
    let p = lab.sim(Some("bob"), &["show", "proc"]);
    assert!(p.contains(" 0: cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate C r-----"), "{p}");
}

#[test]
fn survivor_standalone_v9_is_disconnected_and_reconnected() {
    if !peers_present() {
        return;
    }
    let lab = Lab::new("9", 1, 100_000);
    // bob (node-id 1) detects the split brain and goes StandAlone; alice keeps Connecting.
    // Discard alice's (fewer) changes: the victim is the one still Connecting.
    split(&lab, &["bob", "alice"], &[("bob", 4000), ("alice", 40)], &["alice"]);
    let o = lab.twonode(&["--json", "drbd", "recover", "r0", "--discard", "alice", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let steps: Vec<String> = json_lines(&o).iter().filter(|e| e["event"] == "step").map(|e| e["step"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(steps, ["victim-disconnect", "victim-connect-discard", "survivor-disconnect", "survivor-connect", "wait-resync"], "{}", text(&o));
    assert_recovered(&lab, "bob");
}

#[test]
fn victim_primary_and_mounted_is_refused_and_nothing_changes() {
    if !peers_present() {
        return;
    }
    let lab = Lab::new("9", 1, 100_000);
    split(&lab, &["alice", "bob"], &[("alice", 4000), ("bob", 40)], &[]);
    lab.sim(Some("bob"), &["open", "r0", "--mount", "/srv/data"]);
    let before = lab.world();
    let o = lab.twonode(&["drbd", "recover", "r0", "--discard", "bob", "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("victim-open") && err.contains("held open") && err.contains("stops nothing"), "{}", text(&o));
    let after = lab.world();
    assert_eq!(before["resources"], after["resources"], "a refused recovery changed the state");
    // The real drbdadm agrees: secondary fails with (-12).
    let d = lab.drbdadm("bob", &["secondary", "r0"]);
    assert!(String::from_utf8_lossy(&d.stderr).contains("(-12) Device is held open by someone"));
    // After the admin unmounts, the same command goes through.
    lab.sim(Some("bob"), &["close", "r0"]);
    let o = lab.twonode(&["drbd", "recover", "r0", "--discard", "bob", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_recovered(&lab, "alice");
}

#[test]
fn survivor_not_uptodate_is_refused() {
    if !peers_present() {
        return;
    }
    let lab = Lab::new("8.4", 2, 100_000);
    split(&lab, &["alice", "bob"], &[("alice", 4000), ("bob", 40)], &["bob"]);
    lab.sim(Some("alice"), &["disk", "r0", "--volume", "1", "Outdated"]);
    let o = lab.twonode(&["drbd", "recover", "r0", "--discard", "bob", "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("survivor-not-uptodate") && e.contains("volume 1 is Outdated"), "{}", text(&o));
}

#[test]
fn unrelated_data_is_refused() {
    if !peers_present() {
        return;
    }
    let lab = Lab::new("9", 1, 100_000);
    lab.sim(None, &["scenario", "unrelated"]);
    let o = lab.twonode(&["--json", "drbd", "recover", "r0", "--discard", "bob", "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let ev = json_lines(&o);
    assert_eq!(ev[0]["verdict"], "unrelated");
    assert_eq!(ev.last().map(|e| e["kind"].clone()), Some(serde_json::json!("unrelated-data")));
}

#[test]
fn wrong_victim_shows_the_data_to_be_lost_first_and_is_refused() {
    if !peers_present() {
        return;
    }
    let lab = Lab::new("8.4", 2, 100_000);
    split(&lab, &["alice", "bob"], &[("alice", 8000), ("bob", 40)], &["bob"]);
    let before = lab.world();
    let o = lab.twonode(&["drbd", "recover", "r0", "--discard", "alice", "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("DATA THAT WILL BE LOST on alice: 16000 KiB"), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("wrong-victim"), "{}", text(&o));
    assert_eq!(before["resources"], lab.world()["resources"]);
    // Asked for explicitly, it runs (alice's 16000 KiB are discarded).
    let o = lab.twonode(&["drbd", "recover", "r0", "--discard", "alice", "--yes", "--accept-loss"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_recovered(&lab, "bob");
}

#[test]
fn dry_run_runbook_with_drbdadm_expansions_and_stale_fingerprint() {
    if !peers_present() {
        return;
    }
    for (flavour, expect) in [("9", "drbdsetup connect r0 0 --discard-my-data"), ("8.4", "--discard-my-data")] {
        let lab = Lab::new(flavour, 1, 100_000);
        split(&lab, &["alice", "bob"], &[("alice", 4000), ("bob", 40)], &[]);
        let before = lab.world();
        let o = lab.twonode(&["drbd", "recover", "r0", "--discard", "bob", "--dry-run"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(out.contains("ssh bob 'drbdadm connect --discard-my-data r0'"), "{out}");
        assert!(out.contains("ssh bob 'drbdadm secondary r0'"), "{out}");
        // what the real drbdadm -d on bob expands the planned commands to
        let dline = out.lines().find(|l| l.contains("drbdadm -d:") && l.contains("connect")).unwrap_or_default().to_string();
        assert!(dline.contains(expect) && !dline.contains("FAILED"), "{flavour}: {out}");
        if flavour == "8.4" {
            assert!(dline.contains("connect r0 ipv4:127.0.0.1:7790 ipv4:127.0.0.1:7789"), "{dline}");
        }
        assert_eq!(before["resources"], lab.world()["resources"], "dry run changed the state");
        // The runbook is a shell script.
        let script = out.split_once("#!/bin/sh").map(|x| format!("#!/bin/sh{}", x.1)).unwrap_or_default();
        let rb = lab.p("runbook.sh");
        std::fs::write(&rb, &script).expect("write runbook");
        assert!(Command::new("sh").arg("-n").arg(&rb).status().expect("sh").success());
        // A plan made from another state is refused.
        let fp = out.lines().find_map(|l| l.split("--expect-fingerprint ").nth(1)).expect("fingerprint").trim().to_string();
        lab.sim(Some("alice"), &["write", "r0", "--kib", "4"]);
        let o = lab.twonode(&["drbd", "recover", "r0", "--discard", "bob", "--yes", "--expect-fingerprint", &fp]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains("stale-plan"), "{}", text(&o));
    }
}

#[test]
fn connection_lost_mid_recovery_then_resume_completes() {
    if !peers_present() {
        return;
    }
    let mut lab = Lab::new("9", 2, 100_000);
    split(&lab, &["alice", "bob"], &[("alice", 4000), ("bob", 40)], &[]);
    let cut = lab.proxy_bob();
    // bob's drbdadm: after a `connect` has run, the link to bob dies before the answer comes back.
    let bin = lab.state().join("bob").join("bin");
    let real = bin.join("drbdadm.real");
    std::fs::rename(bin.join("drbdadm"), &real).expect("rename");
    std::fs::write(
        bin.join("drbdadm"),
        format!(
            "#!/bin/sh\ncase \" $* \" in *' connect '*) {real} \"$@\"; rc=$?; touch {cut}; sleep 2; exit $rc;; esac\nexec {real} \"$@\"\n",
            real = real.display(),
            cut = cut.display()
        ),
    )
    .expect("hook");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join("drbdadm"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let o = lab.twonode(&["--json", "drbd", "recover", "r0", "--discard", "bob", "--yes", "--ssh-timeout", "5"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let ev = json_lines(&o);
    assert!(ev.iter().any(|e| e["step"] == "victim-connect-discard" && e["status"] == "interrupted"), "{}", text(&o));
    // A fresh run refuses: never twice.
    let o2 = lab.twonode(&["drbd", "recover", "r0", "--discard", "bob", "--yes"]);
    assert_eq!(o2.status.code(), Some(2), "{}", text(&o2));
    assert!(String::from_utf8_lossy(&o2.stderr).contains("--resume"), "{}", text(&o2));
    // The link comes back; --resume verifies the interrupted step from DRBD's state and finishes.
    std::fs::remove_file(&cut).expect("uncut");
    std::thread::sleep(Duration::from_millis(50));
    let o = lab.twonode(&["--json", "drbd", "recover", "r0", "--resume", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let ev = json_lines(&o);
    assert!(ev.iter().any(|e| e["step"] == "victim-connect-discard" && e["status"] == "done" && e["message"].as_str().unwrap_or("").contains("already done")), "{}", text(&o));
    assert!(!ev.iter().any(|e| e["step"] == "victim-secondary"), "a done step ran again: {}", text(&o));
    assert_recovered(&lab, "alice");
    // Nothing left to resume.
    let o = lab.twonode(&["drbd", "recover", "r0", "--resume", "--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no interrupted recovery"), "{}", text(&o));
}

#[test]
fn already_resolved_while_resyncing_and_host_key_checks() {
    if !peers_present() {
        return;
    }
    // slow resync: 4000 KiB at 1000 KiB/s
    let lab = Lab::new("9", 1, 1_000);
    split(&lab, &["alice", "bob"], &[("alice", 4000), ("bob", 40)], &["bob"]);
    let d = lab.drbdadm("bob", &["connect", "--discard-my-data", "r0"]);
    assert!(d.status.success(), "{}", text(&d));
    let o = lab.twonode(&["drbd", "recover", "r0", "--discard", "bob", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("already resolved"), "{}", text(&o));
    let o = lab.status(&["r0"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("SyncTarget"), "{}", text(&o));

    // Unknown host: refused with the fix.
    let empty = lab.p("empty_known_hosts");
    std::fs::write(&empty, "").expect("write");
    let mut args = vec!["drbd".to_string(), "status".into(), "r0".into()];
    args.extend(lab.node_args_kh(&empty));
    let o = Command::new(BIN).args(&args).stdin(Stdio::null()).output().expect("run");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("unknown host") && e.contains("ssh-keyscan"), "{}", text(&o));
    // accept-new adds both keys, then strict checking passes.
    args.push("--accept-new-host-keys".into());
    let o = Command::new(BIN).args(&args).stdin(Stdio::null()).output().expect("run");
    assert!(o.status.code() != Some(2) && String::from_utf8_lossy(&o.stdout).contains("r0:"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&empty).expect("read").lines().count(), 2);
    // A changed key is refused even with accept-new.
    let other = lab.p("other_key");
    keygen(&other).expect("ssh-keygen");
    let otherpub = std::fs::read_to_string(other.with_extension("pub")).expect("pub");
    let mut p = otherpub.split_whitespace();
    std::fs::write(&empty, format!("[127.0.0.1]:{} {} {}\n", lab.ports[0], p.next().unwrap_or(""), p.next().unwrap_or(""))).expect("write");
    let o = Command::new(BIN).args(&args).stdin(Stdio::null()).output().expect("run");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("HOST KEY MISMATCH"), "{}", text(&o));
}

#[test]
fn interactive_mode_without_a_terminal_refuses() {
    if !peers_present() {
        return;
    }
    let lab = Lab::new("9", 1, 100_000);
    split(&lab, &["alice", "bob"], &[("alice", 4000), ("bob", 40)], &["bob"]);
    let o = lab.twonode(&["drbd", "recover", "r0", "--discard", "bob"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--dry-run"), "{}", text(&o));
}

#[test]
fn interactive_on_a_terminal_asks_and_a_declined_step_resumes_later() {
    if !peers_present() || !have("script") {
        return;
    }
    let lab = Lab::new("9", 1, 100_000);
    split(&lab, &["alice", "bob"], &[("alice", 4000), ("bob", 40)], &[]);
    // `script` gives twonode a terminal; the admin types the victim's name, then answers "n".
    let o = recover_on_terminal(&lab, "bob", &["bob", "n"], Duration::from_millis(3000));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(out.contains("DATA THAT WILL BE LOST on bob: 40 KiB"), "{out}");
    assert!(out.contains("run `drbdadm connect --discard-my-data r0`? [y/N]"), "{out}");
    assert!(out.contains("declined"), "{out}");
    // bob was demoted (not destructive, no question), the discard did not run
    let w = lab.world();
    assert_eq!(w["resources"]["r0"]["nodes"]["bob"]["role"], "Secondary");
    assert_eq!(w["resources"]["r0"]["connected"], false);
    let o = lab.twonode(&["drbd", "recover", "r0", "--resume", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_recovered(&lab, "alice");
}

#[test]
fn interactive_on_a_terminal_shows_resync_progress() {
    if !peers_present() || !have("script") {
        return;
    }
    // A slow resync (bob's 4000 KiB at 1000 KiB/s) so the bar has something to show.
    let lab = Lab::new("9", 1, 1000);
    split(&lab, &["alice", "bob"], &[("alice", 40), ("bob", 4000)], &[]);
    let o = recover_on_terminal(&lab, "alice", &["alice", "y"], Duration::from_millis(8000));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(out.contains("alice resyncing ["), "no progress bar on the terminal:\n{out}");
    assert_recovered(&lab, "bob");
}

/// Run `twonode drbd recover r0 --discard VICTIM` on a real terminal (`script`), typing ANSWERS one
/// after another, 1.5 s apart, then keeping the terminal open for LINGER.
fn recover_on_terminal(lab: &Lab, victim: &str, answers: &[&str], linger: Duration) -> std::process::Output {
    let mut cmd = vec![BIN.to_string(), "drbd".into(), "recover".into(), "r0".into(), "--discard".into(), victim.into()];
    cmd.extend(lab.node_args());
    cmd.extend(["--journal-dir".into(), lab.p("journal").display().to_string()]);
    let line = cmd.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" ");
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script");
    let mut stdin = child.stdin.take().expect("stdin");
    let answers: Vec<String> = answers.iter().map(|a| format!("{a}\n")).collect();
    std::thread::spawn(move || {
        for a in answers {
            std::thread::sleep(Duration::from_millis(1500));
            let _ = stdin.write_all(a.as_bytes());
        }
        std::thread::sleep(linger);
    });
    child.wait_with_output().expect("wait")
}
