//! The README's first command: `twonode lab demo` runs the whole tour against the lab's simulators
//! (twonode's suite-17 IPMI simulator for node1's BMC, the RIBCL iLO simulator for node2), then every lab scenario, and its
//! normalised log matches the golden logs part by part: the tour fixtures/lab/demo.golden, each
//! scenario fixtures/lab/scenarios/NAME.golden (regression test in the style of pve-ha-manager's
//! replayed event logs). Regenerate the tour's after a deliberate change with
//! `TWONODE_BLESS=1 cargo test --test lab_demo` (the scenarios': tests/lab_scenarios.rs), and
//! review the diff.
use std::path::Path;

#[test]
fn demo_tour_matches_golden_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("demo.log");
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("twonode"))
        .args(["lab", "demo", "--log"])
        .arg(&log)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("tour complete"), "{stdout}");
    assert!(!stdout.contains("skipped"), "a part of the tour was skipped (are sshd and drbd-utils installed?):\n{stdout}");
    let got = std::fs::read_to_string(&log).unwrap();
    // The tour, then one part per scenario, each starting with "#### scenario NAME: ...".
    let mut parts = got.split("\n#### scenario ");
    // (compared without trailing blank lines: in the demo log the next part follows them)
    let tour = format!("{}\n\n", parts.next().unwrap_or_default().trim_end());
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/lab");
    let golden_path = fixtures.join("demo.golden");
    if std::env::var_os("TWONODE_BLESS").is_some() {
        std::fs::write(&golden_path, &tour).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(&golden_path).expect("fixtures/lab/demo.golden (bless it once)");
    let mut failures = Vec::new();
    if tour.trim_end() != golden.trim_end() {
        let diff = similar::TextDiff::from_lines(&golden, &tour);
        failures.push(format!("demo tour differs from the golden log:\n{}", diff.unified_diff().header("golden", "now")));
    }
    let mut seen = 0;
    for part in parts {
        seen += 1;
        let text = format!("#### scenario {}\n\n", part.trim_end());
        let name = part.split(':').next().unwrap_or_default();
        let path = fixtures.join("scenarios").join(format!("{name}.golden"));
        let golden = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{} missing (tests/lab_scenarios.rs blesses it)", path.display()));
        if text.trim_end() != golden.trim_end() {
            let diff = similar::TextDiff::from_lines(&golden, &text);
            failures.push(format!("scenario {name} in the demo differs from {}:\n{}", path.display(), diff.unified_diff().header("golden", "now")));
        }
    }
    assert!(seen > 0, "the demo played no scenario:\n{stdout}");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
