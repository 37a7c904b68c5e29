//! Real corosync 3 + unmodified corosync-qdevice on two nodes in network namespaces, against
//! `twonode arbiter serve` and, in the same run, the real corosync-qnetd (tests/corosync-lab).
//! Scenarios: ring cut, node isolated, arbiter killed, arbiter restarted during a split, the vote
//! holder's link to the arbiter cut while split, heuristics deciding the winner. For each: which
//! side is quorate over time, overlap, time without quorum, failover time.
//!
//! Needs root, `ip netns`, and the Debian packages corosync, corosync-qdevice, corosync-qnetd,
//! libnss3-tools (scripts/install-deps). Elsewhere it prints why and passes as skipped.
//! Short timers (quorum.device.timeout 4000 ms, token 1000 ms); `bench/arbiter-bench` runs the
//! same set with corosync's defaults.
mod netns_support;
use netns_support::{rows, skip_reason, Row};
use std::path::Path;
use std::process::Command;


fn run_set(id: &str, arbiter: &str, dir: &Path) -> (Vec<Row>, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corosync-lab/scenarios.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args([id, &dir.join("lab").to_string_lossy(), arbiter])
        .env("TWONODE", env!("CARGO_BIN_EXE_twonode"))
        .output()
        .expect("running tests/corosync-lab/scenarios.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let rows = rows(&stdout);
    (rows, format!("{stdout}\n{stderr}"))
}

const SCENARIOS: [&str; 6] = ["ring-cut", "isolate-n1", "arbiter-killed", "arbiter-restart-split", "holder-link-cut", "heuristics"];

fn num(r: &Row, k: &str) -> i64 {
    r.get(k).and_then(|v| v.parse().ok()).unwrap_or(i64::MIN)
}

#[test]
fn corosync_qdevice_with_twonode_arbiter_and_with_corosync_qnetd() {
    if let Some(why) = skip_reason(&["corosync", "corosync-qdevice", "corosync-qnetd", "corosync-quorumtool", "certutil"]) {
        eprintln!("SKIPPED arbiter_lab: {why}");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let pid = std::process::id() % 100_000;
    let (dq, dt) = (t.path().join("qnetd"), t.path().join("twonode"));
    std::fs::create_dir_all(&dq).unwrap();
    std::fs::create_dir_all(&dt).unwrap();
    let (idq, idt) = (format!("q{pid}"), format!("t{pid}"));
    let hq = std::thread::spawn(move || run_set(&idq, "qnetd", &dq));
    let (tw, tw_log) = run_set(&idt, "twonode", &dt);
    let (qn, qn_log) = hq.join().unwrap();

    println!("{:<22} | {:^32} | {:^32}", "scenario", "twonode arbiter", "corosync-qnetd");
    println!("{:<22} | {:>7} {:>7} {:>8} {:>7} | {:>7} {:>7} {:>8} {:>7}", "", "overlap", "noquor", "failover", "winner",
        "overlap", "noquor", "failover", "winner");
    let find = |rows: &[Row], s: &str| rows.iter().find(|r| r.get("scenario").map(String::as_str) == Some(s)).cloned();
    for s in SCENARIOS {
        let a = find(&tw, s).unwrap_or_default();
        let b = find(&qn, s).unwrap_or_default();
        let cell = |r: &Row| {
            format!(
                "{:>7} {:>7} {:>8} {:>7}",
                r.get("overlap_ms").map(String::as_str).unwrap_or("-"),
                r.get("noquorum_ms").map(String::as_str).unwrap_or("-"),
                r.get("failover_ms").map(String::as_str).unwrap_or("-"),
                r.get("winner").map(String::as_str).unwrap_or("-")
            )
        };
        println!("{s:<22} | {} | {}", cell(&a), cell(&b));
    }
    println!("(ms; overlap = both nodes quorate while each sees only itself)");
    for r in tw.iter().chain(qn.iter()) {
        println!("  {} {}: {}", r.get("arbiter").cloned().unwrap_or_default(), r.get("scenario").cloned().unwrap_or_default(),
            r.get("timeline").cloned().unwrap_or_default());
    }

    // the lab itself must work with the real corosync-qnetd (otherwise the comparison means nothing)
    for s in SCENARIOS {
        assert!(find(&qn, s).is_some(), "qnetd lab: scenario {s} has no result\n{qn_log}");
    }
    // twonode: every scenario ran, never two quorate partitions, a winner where one is expected
    for s in SCENARIOS {
        let r = find(&tw, s).unwrap_or_else(|| panic!("twonode: scenario {s} has no result\n{tw_log}"));
        assert!(!r.contains_key("error"), "twonode: {s}: {r:?}\n{tw_log}");
        assert_eq!(num(&r, "overlap_ms"), 0, "twonode: {s}: two partitions quorate at once: {r:?}");
        match s {
            "arbiter-killed" => assert_eq!(num(&r, "noquorum_ms"), 0, "twonode: {s}: {r:?}"),
            _ => assert!(num(&r, "failover_ms") >= 0, "twonode: {s}: the expected side never became quorate: {r:?}\n{tw_log}"),
        }
    }
}
