//! The HA simulator against golden logs: twonode's two-node regression directories
//! (tests/ha-regression, written for this project) byte for byte, the safety invariant over every
//! log, and — when a checkout of pve-ha-manager is at hand — its upstream regression suite.
use std::path::{Path, PathBuf};

use twonode::ha::sim::{invariant, simulate};

fn dirs(root: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    v.sort();
    v
}

#[test]
fn two_node_regression_dirs_match_their_golden_logs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ha-regression");
    let all = dirs(&root, "tn-");
    assert!(all.len() >= 20, "at least 20 two-node regression directories, found {}", all.len());
    let mut bad = Vec::new();
    for d in &all {
        let (log, _err) = simulate(d).unwrap();
        let got = log.join("\n") + "\n";
        let want = std::fs::read_to_string(d.join("log.expect")).unwrap();
        if got != want {
            let diff = similar::TextDiff::from_lines(&want, &got).unified_diff().header("log.expect", "simulated").to_string();
            bad.push(format!("{}:\n{diff}", d.display()));
        }
        let v = invariant::check(&log);
        assert!(v.is_empty(), "{}: {v:?}", d.display());
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

fn log_of(name: &str) -> String {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ha-regression").join(name);
    simulate(&d).unwrap().0.join("\n")
}

#[test]
fn no_vote_no_fence_and_the_log_says_why() {
    let l = log_of("tn-split-no-arbiter");
    assert!(l.contains("fencing 'node2' blocked: no arbiter configured"), "{l}");
    assert!(!l.contains("recover service 'vm:102'"), "{l}");
    let l = log_of("tn-dead-bmc");
    let blocked = l.find("the BMC of 'node2' does not answer").unwrap();
    let recovered = l.find("recover service 'vm:102' from fenced node 'node2' to node 'node1'").unwrap();
    let bmc_ok = l.find("execute bmc node2 ok").unwrap();
    assert!(blocked < bmc_ok && bmc_ok < recovered, "{l}");
}

#[test]
fn recovery_comes_only_after_the_bmc_confirms_off() {
    for name in ["tn-failover-gated", "tn-failover-isolated", "tn-split-with-arbiter", "tn-drbd-uptodate"] {
        let l = log_of(name);
        let off = l.find("fencing 'node2': BMC confirms power is off").unwrap_or_else(|| panic!("{name}: {l}"));
        let rec = l.find("recover service 'vm:102'").unwrap_or_else(|| panic!("{name}: {l}"));
        assert!(off < rec, "{name}");
    }
}

#[test]
fn drbd_gates_recovery_and_promotes_on_the_survivor_only() {
    let l = log_of("tn-drbd-outdated");
    let waits = l.find("DRBD resource 'r0' is Outdated on 'node1'").unwrap();
    let promote = l.find("drbd: promote 'r0' on 'node1'").unwrap();
    let uptodate = l.find("execute drbd r0 node1 UpToDate").unwrap();
    assert!(waits < uptodate && uptodate < promote, "{l}");
    assert_eq!(l.matches("is Outdated on 'node1'").count(), 1, "the reason is said once: {l}");
}

#[test]
fn self_fencing_is_refused_under_two_node() {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ha-regression/tn-self-fencing-refused");
    let (log, err) = simulate(&d).unwrap();
    assert!(err.unwrap().contains("refusing watchdog self-fencing"));
    assert!(!log.iter().any(|l| l.contains("execute power")), "{log:?}");
}

fn scratch(files: &[(&str, &str)]) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    for (n, c) in files {
        std::fs::write(t.path().join(n), c).unwrap();
    }
    t
}

#[test]
fn bad_input_says_where_and_what_is_expected() {
    let t = scratch(&[("cmdlist", "[[\"power node1 on\"],\n  [\"power node2 on\"\n")]);
    let e = simulate(t.path()).unwrap_err();
    assert!(e.contains("cmdlist:3:") && e.contains("expected a JSON list"), "{e}");

    let t = scratch(&[("cmdlist", "[]"), ("rules_config", "node-affinity: r\n\tresources vm:101\n\tnodez node1\n")]);
    let e = simulate(t.path()).unwrap_err();
    assert!(e.contains("rules_config:3:2:") && e.contains("unknown node-affinity property `nodez`"), "{e}");

    let t = scratch(&[("cmdlist", "[[\"power node9 on\"]]")]);
    let (log, err) = simulate(t.path()).unwrap();
    assert!(err.as_deref().unwrap().contains("no such node 'node9'"));
    assert!(log.last().unwrap().contains("no such node 'node9'"));
}

#[test]
fn the_run_is_bounded() {
    // a delay far beyond the time limit: the run stops and says so instead of running on
    let t = scratch(&[("cmdlist", "[[\"power node1 on\", \"power node2 on\"], [\"delay 20000\"], [\"power node3 on\"]]")]);
    let (log, err) = simulate(t.path()).unwrap();
    assert!(err.unwrap().contains("exceeded maximum time"));
    assert!(log.last().unwrap().contains("exceeded maximum time"));
}

/// pve-ha-manager's own suite (AGPL, not in this repository): set TWONODE_HA_UPSTREAM to its
/// src/test directory, or keep a fetched snapshot where /work/.library's fetch puts it.
fn upstream_tests() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("TWONODE_HA_UPSTREAM") {
        return Some(PathBuf::from(d));
    }
    let git = Path::new("/work/.mirror/proxmox+pve-ha-manager/repo");
    if !git.exists() {
        return None;
    }
    let out = std::env::temp_dir().join(format!("twonode-ha-upstream-{}", std::process::id()));
    std::fs::create_dir_all(&out).ok()?;
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("git --git-dir={} archive HEAD src/test | tar x -C {}", git.display(), out.display()))
        .status()
        .ok()?;
    st.success().then(|| out.join("src/test"))
}

#[test]
fn upstream_regression_suite() {
    let Some(root) = upstream_tests() else {
        eprintln!("skipped: no pve-ha-manager checkout (set TWONODE_HA_UPSTREAM=.../src/test)");
        return;
    };
    let mut exact = 0;
    let mut total = 0;
    let mut differ = Vec::new();
    for d in dirs(&root, "test-") {
        let name = d.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("test-crs-") {
            continue; // the CRS scheduler (static/dynamic load) is not modelled
        }
        total += 1;
        let (log, _) = simulate(&d).unwrap();
        let want = std::fs::read_to_string(d.join("log.expect")).unwrap();
        if log.join("\n") + "\n" == want {
            exact += 1;
        } else {
            differ.push(name.clone());
        }
        let v = invariant::check(&log);
        assert!(v.is_empty(), "{name}: {v:?}");
        // the invariant holds on upstream's own expected logs too
        let want_lines: Vec<String> = want.lines().map(String::from).collect();
        assert!(invariant::check(&want_lines).is_empty(), "{name} (upstream log)");
    }
    eprintln!("upstream: {exact} of {total} non-CRS tests byte-identical; differ: {differ:?}");
    assert!(total >= 100, "found only {total} upstream tests in {}", root.display());
    assert_eq!(exact, total, "{exact} of {total} identical; differ: {differ:?}");
}
