//! The README's first command: `twonode lab demo` runs the whole tour against the lab's simulators
//! (ipmi_sim for node1's BMC, the RIBCL iLO simulator for node2) and its normalised log matches the
//! golden log in fixtures/lab/demo.golden, step by step (regression test in the style of
//! pve-ha-manager's replayed event logs). Regenerate after a deliberate change with
//! `TWONODE_BLESS=1 cargo test --test lab_demo`, and review the diff.
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
    assert!(!stdout.contains("skipped"), "a part of the tour was skipped (is ipmi_sim installed?):\n{stdout}");
    let got = std::fs::read_to_string(&log).unwrap();
    let golden_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/lab/demo.golden");
    if std::env::var_os("TWONODE_BLESS").is_some() {
        std::fs::write(&golden_path, &got).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(&golden_path).expect("fixtures/lab/demo.golden (bless it once)");
    if got != golden {
        let diff = similar::TextDiff::from_lines(&golden, &got);
        panic!("demo log differs from the golden log:\n{}", diff.unified_diff().header("golden", "now"));
    }
}
