//! corosync.conf through the real binary on temp files: lossless round trip, each votequorum rule
//! at its line:column, enable/disable-arbiter diffs touching only what they must, refusals, the
//! watchdog refusal, apply, and (when installed) the real `corosync -t` on the files we write.
use std::path::{Path, PathBuf};
use std::process::Command;

use twonode::quorum::corosync_conf::CorosyncConf;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_twonode"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = bin().args(args).output().expect("run twonode");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Two loopback nodes (so `corosync -t` finds the local node), no crypto.
const TWO: &str = "# lab\ntotem {\n\tversion: 2\n\tcluster_name: lab\n\tconfig_version: 3\n\ttransport: knet\n\tcrypto_cipher: none\n\tcrypto_hash: none\n}\n\nquorum {\n\t# votequorum\n\tprovider: corosync_votequorum\n\ttwo_node: 1\n}\n\nnodelist {\n\tnode {\n\t\tname: n1\n\t\tnodeid: 1\n\t\tring0_addr: 127.0.0.1\n\t}\n\tnode {\n\t\tname: n2\n\t\tnodeid: 2\n\t\tring0_addr: 127.0.0.2\n\t}\n}\n";

const DEVICE: &str = "\tdevice {\n\t\tmodel: net\n\t\tvotes: 1\n\t\tnet {\n\t\t\thost: 127.0.0.3\n\t\t\talgorithm: ffsplit\n\t\t\ttie_breaker: lowest\n\t\t}\n\t}\n";

fn with_device(extra_quorum: &str) -> String {
    TWO.replace("\ttwo_node: 1\n", &format!("{extra_quorum}{DEVICE}"))
}

fn diags(file: &Path, extra: &[&str]) -> (i32, Vec<(String, usize, usize)>, String) {
    let f = file.to_str().unwrap();
    let mut args = vec!["--json", "quorum", "validate", "--file", f];
    args.extend_from_slice(extra);
    let (code, out, err) = run(&args);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("json: {e}\n{out}\n{err}"));
    let d = v["report"]["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["code"].as_str().unwrap().to_string(), d["line"].as_u64().unwrap() as usize, d["col"].as_u64().unwrap() as usize))
        .collect();
    (code, d, out)
}

#[test]
fn real_files_round_trip_byte_for_byte() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("fixtures/corosync")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "conf")).collect();
    for e in std::fs::read_dir(root().join("fixtures/sims/corosync-lab")).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().starts_with("corosync.conf") {
            files.push(p);
        }
    }
    files.push(root().join("fixtures/quorum/corosync-twonode-plus-qdevice.conf"));
    assert!(files.len() >= 6, "{files:?}");
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let c = CorosyncConf::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert_eq!(c.text(), text, "{}", f.display());
        // a no-op edit changes nothing; a real one changes only its line
        assert_eq!(c.set("quorum", "provider", "corosync_votequorum").unwrap().text(), text);
        let (code, _, err) = run(&["quorum", "validate", "--file", f.to_str().unwrap()]);
        assert!(code == 0 || code == 1, "{}: {code} {err}", f.display());
    }
}

#[test]
fn every_votequorum_refusal_at_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, String, &str, usize, usize)] = &[
        ("two_node", with_device("\ttwo_node: 1\n"), "quorum.device-with-two-node", 14, 2),
        ("lms", with_device("\tlast_man_standing: 1\n"), "quorum.device-with-lms", 14, 2),
        ("atb", with_device("\tauto_tie_breaker: 1\n"), "quorum.device-with-atb", 14, 2),
        ("downscale", with_device("\tallow_downscale: 1\n"), "quorum.device-with-downscale", 14, 2),
        ("expected-no-votes", with_device("\texpected_votes: 3\n").replace("\t\tvotes: 1\n", ""), "quorum.device-expected-without-votes", 14, 2),
        ("expected-low", with_device("\texpected_votes: 2\n"), "quorum.device-expected-too-low", 14, 2),
        ("unequal", with_device("").replace("\t\tnodeid: 2\n", "\t\tnodeid: 2\n\t\tquorum_votes: 2\n"), "quorum.device-unequal-votes", 25, 1),
        ("no-host", with_device("").replace("\t\t\thost: 127.0.0.3\n", ""), "qdevice.net-host", 17, 3),
        ("algorithm", with_device("").replace("ffsplit", "coin"), "qdevice.algorithm", 19, 4),
        ("tie-breaker", with_device("").replace("tie_breaker: lowest", "tie_breaker: 9"), "qdevice.tie-breaker", 20, 4),
        ("model", with_device("").replace("model: net", "model: disk"), "qdevice.model", 15, 3),
    ];
    for (name, text, code, line, col) in cases {
        let f = write(dir.path(), &format!("{name}.conf"), text);
        let (exit, d, out) = diags(&f, &[]);
        assert_eq!(exit, 1, "{name}: {out}");
        assert!(d.iter().any(|(c, l, k)| c == code && l == line && k == col), "{name}: want {code} at {line}:{col}, got {d:?}");
    }
    // the human form names file:line:col and the fix
    let f = dir.path().join("two_node.conf");
    let (_, out, _) = run(&["quorum", "validate", "--file", f.to_str().unwrap()]);
    assert!(out.contains("two_node.conf:14:2: error[quorum.device-with-two-node]") && out.contains("hint: remove two_node"), "{out}");
    // the good one is valid, a parse error exits 2 with its position
    let ok = write(dir.path(), "ok.conf", &with_device(""));
    assert_eq!(diags(&ok, &[]).0, 0);
    let bad = write(dir.path(), "bad.conf", "quorum {\n  provider: corosync_votequorum\n  two_node 1\n}\n");
    let (exit, d, _) = diags(&bad, &[]);
    assert_eq!((exit, d), (2, vec![("corosync.parse".to_string(), 3, 3)]));
}

#[test]
fn watchdog_only_self_fencing_under_two_node_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write(dir.path(), "corosync.conf", TWO);
    let sbd = write(dir.path(), "sbd", "# diskless\nSBD_WATCHDOG_DEV=/dev/watchdog\nSBD_DEVICE=\"\"\nSBD_PACEMAKER=yes\n");
    let (exit, d, out) = diags(&conf, &["--sbd-config", sbd.to_str().unwrap()]);
    assert_eq!(exit, 1, "{out}");
    assert!(d.contains(&("quorum.watchdog-with-two-node".into(), 14, 2)), "{d:?}");
    assert!(out.contains("SBD_WATCHDOG_DEV=/dev/watchdog") && out.contains("hardware fence devices") && out.contains("arbiter"), "{out}");
    // sbd with a shared disk is not watchdog-only
    let disk = write(dir.path(), "sbd-disk", "SBD_DEVICE=/dev/disk/by-id/sbd1\nSBD_WATCHDOG_DEV=/dev/watchdog\n");
    assert_eq!(diags(&conf, &["--sbd-config", disk.to_str().unwrap()]).0, 0);
    // fence_watchdog in the CIB
    let cib = write(dir.path(), "cib.xml", "<cib><configuration><resources><primitive id=\"wd\" class=\"stonith\" type=\"fence_watchdog\"/></resources></configuration></cib>");
    let (exit, d, out) = diags(&conf, &["--cib", cib.to_str().unwrap()]);
    assert_eq!(exit, 1);
    assert!(d.iter().any(|x| x.0 == "quorum.watchdog-with-two-node") && out.contains("fence_watchdog"), "{out}");
    // with the arbiter instead of two_node the same sbd is fine, and going back is refused
    let arb = write(dir.path(), "arb.conf", &with_device(""));
    assert_eq!(diags(&arb, &["--sbd-config", sbd.to_str().unwrap()]).0, 0);
    let (exit, _, err) = run(&["quorum", "disable-arbiter", "--file", arb.to_str().unwrap(), "--sbd-config", sbd.to_str().unwrap()]);
    assert_eq!(exit, 1, "{err}");
    assert!(err.contains("refusing to go back to two_node"), "{err}");
    assert!(!dir.path().join("arb.conf.new").exists());
}

#[test]
fn enable_and_disable_arbiter_touch_only_what_they_must() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write(dir.path(), "corosync.conf", TWO);
    let f = conf.to_str().unwrap();
    // dry run writes nothing
    let (exit, out, err) = run(&["quorum", "enable-arbiter", "--host", "127.0.0.3", "--file", f, "--dry-run"]);
    assert_eq!(exit, 0, "{err}");
    assert!(out.contains("-\ttwo_node: 1") && out.contains("+\t\t\thost: 127.0.0.3") && out.contains("+\tconfig_version: 4"), "{out}");
    assert!(!dir.path().join("corosync.conf.new").exists());
    // staged
    let (exit, _, err) = run(&["quorum", "enable-arbiter", "--host", "127.0.0.3", "--file", f]);
    assert_eq!(exit, 0, "{err}");
    let staged = std::fs::read_to_string(dir.path().join("corosync.conf.new")).unwrap();
    assert_eq!(staged, with_device("").replace("config_version: 3", "config_version: 4"));
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), TWO, "live untouched until apply");
    let (_, out, _) = run(&["quorum", "diff", "--file", f]);
    assert!(out.contains("+\tdevice {"), "{out}");
    let (exit, out, err) = run(&["quorum", "apply", "--file", f]);
    assert_eq!(exit, 0, "{out}{err}");
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), staged);
    assert_eq!(std::fs::read_to_string(dir.path().join("corosync.conf.old")).unwrap(), TWO);
    // already there: refused
    let (exit, _, err) = run(&["quorum", "enable-arbiter", "--host", "x", "--file", f, "--in-place"]);
    assert_eq!(exit, 1);
    assert!(err.contains("already exists"), "{err}");
    // back, in place: only the device and two_node lines move, version +1 again
    let (exit, _, err) = run(&["quorum", "disable-arbiter", "--file", f, "--in-place"]);
    assert_eq!(exit, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), TWO.replace("config_version: 3", "config_version: 5"));
    // explicit wait_for_all survives, expected_votes follows; lms gets its votes
    let vq = std::fs::read_to_string(root().join("fixtures/corosync/votequorum5-examples.conf")).unwrap();
    let v = write(dir.path(), "vq.conf", &vq);
    let (exit, _, err) = run(&["quorum", "enable-arbiter", "--host", "q", "--algorithm", "lms", "--tie-breaker", "2", "--file", v.to_str().unwrap(), "--in-place"]);
    assert_eq!(exit, 0, "{err}");
    let after = std::fs::read_to_string(&v).unwrap();
    let c = CorosyncConf::parse(&after).unwrap();
    assert_eq!((c.get("quorum", "wait_for_all"), c.get("quorum", "expected_votes"), c.get("quorum", "two_node")), (Some("1"), Some("3"), None));
    assert_eq!((c.get("quorum.device.net", "algorithm"), c.get("quorum.device.net", "tie_breaker"), c.config_version()), (Some("lms"), Some("2"), Some(12)));
    assert!(after.starts_with("# quorum settings in the shapes votequorum(5)"), "comments kept");
}

#[test]
fn refusals_leave_files_alone() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text, want) in [
        ("lms", TWO.replace("\ttwo_node: 1\n", "\tlast_man_standing: 1\n"), "last_man_standing"),
        ("atb", TWO.replace("\ttwo_node: 1\n", "\tauto_tie_breaker: 1\n"), "auto_tie_breaker"),
        ("unequal", TWO.replace("\t\tnodeid: 2\n", "\t\tnodeid: 2\n\t\tquorum_votes: 3\n"), "unequal node votes"),
    ] {
        let f = write(dir.path(), &format!("{name}.conf"), &text);
        let (exit, _, err) = run(&["quorum", "enable-arbiter", "--host", "q", "--file", f.to_str().unwrap()]);
        assert_eq!(exit, 1, "{name}: {err}");
        assert!(err.contains(want) && err.contains("refused"), "{name}: {err}");
        assert!(!dir.path().join(format!("{name}.conf.new")).exists());
        assert_eq!(std::fs::read_to_string(&f).unwrap(), text);
    }
    let f = write(dir.path(), "two.conf", TWO);
    let (exit, _, err) = run(&["quorum", "enable-arbiter", "--host", "q", "--tie-breaker", "7", "--file", f.to_str().unwrap()]);
    assert_eq!(exit, 1, "{err}");
    // apply refuses a staged file that does not validate
    write(dir.path(), "two.conf.new", &with_device("\ttwo_node: 1\n"));
    let (exit, _, err) = run(&["quorum", "apply", "--file", f.to_str().unwrap()]);
    assert_eq!(exit, 1, "{err}");
    assert!(err.contains("device-with-two-node"), "{err}");
    assert_eq!(std::fs::read_to_string(&f).unwrap(), TWO);
}

/// The files we write parse for the real corosync (`corosync -t -c FILE`), when it is installed.
#[test]
fn real_corosync_accepts_what_we_write() {
    let corosync = ["/usr/sbin/corosync", "/usr/bin/corosync"].into_iter().find(|p| Path::new(p).exists());
    let Some(corosync) = corosync else {
        eprintln!("SKIP: corosync not installed (scripts/install-deps installs it)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let conf = write(dir.path(), "corosync.conf", TWO);
    let f = conf.to_str().unwrap();
    let check = |what: &str| {
        let out = Command::new(corosync).args(["-t", "-c", f]).output().unwrap();
        assert!(out.status.success(), "{what}: corosync -t: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    };
    check("original");
    assert_eq!(run(&["quorum", "enable-arbiter", "--host", "127.0.0.3", "--file", f, "--in-place"]).0, 0);
    check("enable-arbiter");
    assert_eq!(run(&["quorum", "disable-arbiter", "--file", f, "--in-place"]).0, 0);
    check("disable-arbiter");
    // and a parse error we report is one corosync reports too
    std::fs::write(&conf, "quorum {\n\tprovider: corosync_votequorum\n").unwrap();
    assert!(!Command::new(corosync).args(["-t", "-c", f]).output().unwrap().status.success());
    assert_eq!(run(&["quorum", "validate", "--file", f]).0, 2);
}
