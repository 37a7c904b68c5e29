//! The command-line surface itself: help with examples, shell completions, man pages.
use assert_cmd::Command;

fn twonode() -> Command {
    Command::cargo_bin("twonode").expect("binary built")
}

#[test]
fn help_lists_every_area_and_examples() {
    let out = twonode().arg("--help").assert().success().get_output().stdout.clone();
    let text = String::from_utf8(out).unwrap();
    for area in ["conf", "fence", "quorum", "arbiter", "drbd", "lab", "completions", "man"] {
        assert!(text.contains(area), "--help lacks {area}:\n{text}");
    }
    assert!(text.contains("Examples:"), "{text}");
}

#[test]
fn completions_for_bash_zsh_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let out = twonode().args(["completions", shell]).assert().success().get_output().stdout.clone();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("twonode"), "{shell} completion:\n{text}");
        assert!(text.contains("conf"), "{shell} completion lacks subcommands");
    }
}

#[test]
fn man_pages_are_written() {
    let dir = tempfile::tempdir().unwrap();
    twonode().arg("man").arg(dir.path()).assert().success();
    let page = std::fs::read_to_string(dir.path().join("twonode.1")).unwrap();
    assert!(page.contains(".TH twonode"), "{page}");
    assert!(dir.path().join("twonode-conf.1").exists());
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    twonode().arg("frobnicate").assert().code(2);
}

#[test]
fn closed_stdout_ends_quietly_like_a_unix_filter() {
    // `twonode completions bash | head -1`: the reader goes away; no panic message, status 141.
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("twonode"))
        .args(["completions", "bash"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(141));
}
