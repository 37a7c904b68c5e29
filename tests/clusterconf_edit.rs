//! Every `twonode conf` command through the real binary, on real corpus files in temp dirs.
use assert_cmd::Command;
use std::path::{Path, PathBuf};

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/clusterconf/corpus").join(name)).unwrap()
}

/// A temp dir with `cluster.conf` = the corpus file.
fn setup(name: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("cluster.conf");
    std::fs::write(&p, corpus(name)).unwrap();
    (d, p)
}

fn conf(file: &Path, args: &[&str]) -> assert_cmd::assert::Assert {
    Command::cargo_bin("twonode").unwrap().arg("conf").args(args).arg("--file").arg(file).write_stdin("").assert()
}

fn staged(file: &Path) -> String {
    std::fs::read_to_string(format!("{}.new", file.display())).unwrap()
}

fn stdout(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

fn code(a: &assert_cmd::assert::Assert) -> i32 {
    a.get_output().status.code().unwrap_or(-1)
}

const T23: &str = "23_pcs09-test-resources.conf"; // two_node, pcmk redirect, no XML decl
const T14: &str = "14_clufter-test1.conf"; // 8-space indent, no cman
const T26: &str = "26_pcs09-ccs-3node-udpu-foreign-agent.conf"; // 3 nodes, no trailing newline
const T22: &str = "22_clufter-try_edit-unknown-attrs.conf"; // passwd="mysecret"

#[test]
fn bump_changes_config_version_and_nothing_else() {
    let (_d, f) = setup(T14);
    let before = std::fs::read_to_string(&f).unwrap();
    conf(&f, &["bump", "--in-place"]).success();
    let after = std::fs::read_to_string(&f).unwrap();
    assert_eq!(after, before.replace("config_version=\"1\"", "config_version=\"2\""));
    assert!(!Path::new(&format!("{}.new", f.display())).exists());
    // staged by default, starting from the staged file the next time
    conf(&f, &["bump"]).success();
    conf(&f, &["bump"]).success();
    assert_eq!(staged(&f), before.replace("config_version=\"1\"", "config_version=\"4\""));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), after);
}

#[test]
fn expect_version_conflict_exits_3() {
    let (_d, f) = setup(T23);
    let before = std::fs::read(&f).unwrap();
    let a = conf(&f, &["bump", "--in-place", "--expect-version", "8"]).failure();
    assert_eq!(code(&a), 3);
    assert!(String::from_utf8_lossy(&a.get_output().stderr).contains("conflict"));
    assert_eq!(std::fs::read(&f).unwrap(), before);
    conf(&f, &["bump", "--in-place", "--expect-version", "9"]).success();
    assert!(std::fs::read_to_string(&f).unwrap().contains("config_version=\"10\""));
}

#[test]
fn init_creates_a_valid_two_node_skeleton() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("cluster.conf");
    conf(&f, &["init", "--name", "duo", "--node", "n1", "--node", "n2", "--in-place"]).success();
    let text = std::fs::read_to_string(&f).unwrap();
    assert!(text.contains("<cman two_node=\"1\" expected_votes=\"1\"/>"), "{text}");
    conf(&f, &["validate"]).success();
    // refuses to overwrite, refuses long names and 3 nodes with two_node
    conf(&f, &["init", "--name", "duo", "--node", "n1", "--node", "n2", "--in-place"]).failure();
    conf(&f, &["init", "--name", "a-much-too-long-name", "--node", "n1", "--node", "n2"]).failure();
    conf(&f, &["init", "--name", "trio", "--node", "a", "--node", "b", "--node", "c"]).failure();
    conf(&f, &["init", "--name", "trio", "--node", "a", "--node", "b", "--node", "c", "--no-two-node"]).success();
    assert!(staged(&f).contains("expected_votes=\"3\""));
}

#[test]
fn set_two_node_off_and_on() {
    let (_d, f) = setup(T23);
    let before = std::fs::read_to_string(&f).unwrap();
    conf(&f, &["set-two-node", "off"]).success();
    let s = staged(&f);
    assert_eq!(
        s,
        before
            .replace("config_version=\"9\"", "config_version=\"10\"")
            .replace("expected_votes=\"1\" transport=\"udpu\" two_node=\"1\"", "expected_votes=\"2\" transport=\"udpu\" two_node=\"0\"")
    );
    conf(&f, &["set-two-node", "on"]).success();
    assert!(staged(&f).contains("expected_votes=\"1\" transport=\"udpu\" two_node=\"1\""));
    // 3 nodes: refused
    let (_d2, f3) = setup(T26);
    let a = conf(&f3, &["set-two-node", "on"]).failure();
    assert!(String::from_utf8_lossy(&a.get_output().stderr).contains("exactly 2"));
}

#[test]
fn node_add_remove_set() {
    let (_d, f) = setup(T14);
    let before = std::fs::read_to_string(&f).unwrap();
    conf(&f, &["node", "add", "node3", "--in-place"]).success();
    let after = std::fs::read_to_string(&f).unwrap();
    assert_eq!(
        after,
        before.replace("config_version=\"1\"", "config_version=\"2\"").replace(
            "                <clusternode name=\"node2\" nodeid=\"2\" />\n",
            "                <clusternode name=\"node2\" nodeid=\"2\" />\n                <clusternode name=\"node3\" votes=\"1\" nodeid=\"3\"/>\n"
        )
    );
    conf(&f, &["node", "set", "node3", "votes=2", "--in-place"]).success();
    assert!(std::fs::read_to_string(&f).unwrap().contains("<clusternode name=\"node3\" votes=\"2\" nodeid=\"3\"/>"));
    conf(&f, &["node", "add", "node3", "--in-place"]).failure();
    conf(&f, &["node", "set", "node3", "nodeid=1", "--in-place"]).failure();
    conf(&f, &["node", "remove", "node3", "--in-place"]).success();
    assert_eq!(std::fs::read_to_string(&f).unwrap(), before.replace("config_version=\"1\"", "config_version=\"4\""));
    conf(&f, &["node", "remove", "nope", "--in-place"]).failure();
}

#[test]
fn device_add_set_remove_and_secrets() {
    let (_d, f) = setup(T23);
    let a = Command::cargo_bin("twonode")
        .unwrap()
        .args(["conf", "device", "add", "ilo-1", "--agent", "fence_ilo", "ipaddr=10.1.1.1", "login=fence", "--secret-stdin", "passwd", "--file"])
        .arg(&f)
        .write_stdin("pa&ss<word\"x\n")
        .assert()
        .success();
    let out = stdout(&a);
    assert!(!out.contains("pa&ss") && !out.contains("pa&amp;ss"), "{out}");
    let s = staged(&f);
    assert!(s.contains("    <fencedevice name=\"ilo-1\" agent=\"fence_ilo\" ipaddr=\"10.1.1.1\" login=\"fence\" passwd=\"pa&amp;ss&lt;word&quot;x\"/>\n  </fencedevices>"), "{s}");
    conf(&f, &["device", "set", "ilo-1", "ipaddr=10.1.1.2", "--unset", "login"]).success();
    assert!(staged(&f).contains("<fencedevice name=\"ilo-1\" agent=\"fence_ilo\" ipaddr=\"10.1.1.2\" passwd="));
    // the pcmk device is in use: refused without --cascade
    conf(&f, &["device", "remove", "pcmk-redirect"]).failure();
    conf(&f, &["device", "set", "pcmk-redirect", "name=pcmk"]).success();
    let s = staged(&f);
    assert!(s.contains("<device name=\"pcmk\" port=\"rh7-1\"/>") && s.contains("<fencedevice agent=\"fence_pcmk\" name=\"pcmk\"/>"), "{s}");
    conf(&f, &["device", "remove", "pcmk", "--cascade"]).success();
    let s = staged(&f);
    assert!(!s.contains("pcmk") && !s.contains("<method"), "{s}");
    conf(&f, &["device", "add", "1bad", "--agent", "fence_ilo"]).failure();
}

#[test]
fn bind_unbind_reorder() {
    let (_d, f) = setup(T14);
    let before = std::fs::read_to_string(&f).unwrap();
    conf(&f, &["device", "add", "ipmi1", "--agent", "fence_ipmilan", "ipaddr=10.0.0.1", "--in-place"]).success();
    let with_dev = std::fs::read_to_string(&f).unwrap();
    // new <fencedevices> placed before <rm>, 8-space indentation copied
    assert!(with_dev.contains("        </clusternodes>\n        <fencedevices>\n                <fencedevice name=\"ipmi1\" agent=\"fence_ipmilan\" ipaddr=\"10.0.0.1\"/>\n        </fencedevices>\n        <rm>"), "{with_dev}");
    conf(&f, &["device", "add", "pdu", "--agent", "fence_apc", "--in-place"]).success();
    conf(&f, &["bind", "node1", "ipmi1", "--method", "ipmi", "delay=15", "lanplus=1", "--in-place"]).success();
    conf(&f, &["bind", "node1", "pdu", "--method", "pdu", "port=1", "action=off", "--in-place"]).success();
    conf(&f, &["bind", "node1", "pdu", "--method", "pdu", "port=2", "action=off", "--in-place"]).success();
    let t = std::fs::read_to_string(&f).unwrap();
    assert!(t.contains(
        "                <clusternode name=\"node1\" nodeid=\"1\">\n                        <fence>\n                                <method name=\"ipmi\">\n                                        <device name=\"ipmi1\" delay=\"15\" lanplus=\"1\"/>\n                                </method>\n                                <method name=\"pdu\">\n                                        <device name=\"pdu\" port=\"1\" action=\"off\"/>\n                                        <device name=\"pdu\" port=\"2\" action=\"off\"/>\n                                </method>\n                        </fence>\n                </clusternode>\n"
    ), "{t}");
    conf(&f, &["reorder-methods", "node1", "pdu", "ipmi", "--in-place"]).success();
    let r = std::fs::read_to_string(&f).unwrap();
    let (pdu, ipmi) = (r.find("<method name=\"pdu\">").unwrap(), r.find("<method name=\"ipmi\">").unwrap());
    assert!(pdu < ipmi, "{r}");
    conf(&f, &["reorder-methods", "node1", "nosuch", "--in-place"]).failure();
    // fencing view merges the fencedevice and device attributes
    let a = conf(&f, &["fencing", "node1", "--json"]).success();
    let v: serde_json::Value = serde_json::from_str(&stdout(&a)).unwrap();
    assert_eq!(v["methods"][0]["name"], "pdu");
    assert_eq!(v["methods"][1]["devices"][0]["agent"], "fence_ipmilan");
    // unbind everything: back to the file with the devices only (+ versions)
    conf(&f, &["unbind", "node1", "pdu", "--in-place"]).success();
    conf(&f, &["unbind", "node1", "ipmi1", "--method", "ipmi", "--in-place"]).success();
    let u = std::fs::read_to_string(&f).unwrap();
    assert!(u.contains("<clusternode name=\"node1\" nodeid=\"1\">\n                        <fence>\n                        </fence>\n                </clusternode>"), "{u}");
    conf(&f, &["unbind", "node1", "ipmi1", "--in-place"]).failure();
    // bind to an undefined device is refused with the list of devices
    let a = conf(&f, &["bind", "node2", "nosuch", "--in-place"]).failure();
    assert!(String::from_utf8_lossy(&a.get_output().stderr).contains("ipmi1, pdu"));
    let _ = before;
}

#[test]
fn unfence_binding() {
    let (_d, f) = setup(T23);
    conf(&f, &["bind", "rh7-1", "pcmk-redirect", "--unfence", "--in-place"]).success();
    let t = std::fs::read_to_string(&f).unwrap();
    assert!(t.contains("      </fence>\n      <unfence>\n        <device name=\"pcmk-redirect\" action=\"on\"/>\n      </unfence>\n    </clusternode>"), "{t}");
}

#[test]
fn quorumd_set_and_remove() {
    let (_d, f) = setup(T26);
    let before = std::fs::read_to_string(&f).unwrap();
    conf(&f, &["quorumd", "set", "label=qd", "votes=2", "--heuristic", "program=ping -c1 10.0.0.254,score=1,interval=2", "--in-place"]).success();
    let t = std::fs::read_to_string(&f).unwrap();
    assert!(t.contains("  <quorumd label=\"qd\" votes=\"2\">\n    <heuristic program=\"ping -c1 10.0.0.254\" score=\"1\" interval=\"2\"/>\n  </quorumd>\n"), "{t}");
    conf(&f, &["quorumd", "set", "tko=10", "--heuristic", "program=/bin/true", "--in-place"]).success();
    let t = std::fs::read_to_string(&f).unwrap();
    assert!(t.contains("  <quorumd label=\"qd\" votes=\"2\" tko=\"10\">\n    <heuristic program=\"/bin/true\"/>\n  </quorumd>\n"), "{t}");
    conf(&f, &["quorumd", "remove", "--in-place"]).success();
    let t = std::fs::read_to_string(&f).unwrap();
    assert_eq!(t, before.replace("config_version=\"14\"", "config_version=\"17\""), "only the version differs after set+set+remove");
    // with two_node on, a quorum disk is refused
    let (_d2, f2) = setup(T23);
    conf(&f2, &["quorumd", "set", "label=qd"]).failure();
}

#[test]
fn set_section() {
    let (_d, f) = setup(T23);
    conf(&f, &["set", "totem", "token=10000", "--in-place"]).success();
    let t = std::fs::read_to_string(&f).unwrap();
    assert!(t.contains("  <totem token=\"10000\"/>\n  <fence_daemon/>"), "{t}");
    conf(&f, &["set", "fence_daemon", "post_join_delay=20", "--in-place"]).success();
    assert!(std::fs::read_to_string(&f).unwrap().contains("<fence_daemon post_join_delay=\"20\"/>"));
    conf(&f, &["set", "cluster", "config_version=99", "--in-place"]).failure();
    conf(&f, &["set", "clusternodes", "x=1", "--in-place"]).failure();
}

#[test]
fn diff_apply_revert_status() {
    let (_d, f) = setup(T22);
    let live_before = std::fs::read(&f).unwrap();
    conf(&f, &["diff"]).success().stdout(predicates::str::contains("nothing staged"));
    conf(&f, &["device", "set", "foo", "agent=fence_ipmilan", "passwd=n3wsecret"]).success();
    let a = conf(&f, &["diff"]).success();
    let out = stdout(&a);
    assert!(out.contains("+  <fencedevices>") || out.contains("fence_ipmilan"), "{out}");
    assert!(!out.contains("mysecret") && !out.contains("n3wsecret"), "{out}");
    assert!(out.contains("secret changed"), "{out}");
    let a = conf(&f, &["diff", "--json"]).success();
    let out = stdout(&a);
    assert!(!out.contains("mysecret") && !out.contains("n3wsecret"), "{out}");
    let a = conf(&f, &["status", "--json"]).success();
    let v: serde_json::Value = serde_json::from_str(&stdout(&a)).unwrap();
    assert_eq!(v["staged_exists"], true);
    assert_eq!(v["staged_version"], "2");
    // 22 fails the schema / has cman two_node with expected_votes 3 but is applied with --force
    conf(&f, &["revert"]).success().stdout(predicates::str::contains("dropped"));
    assert_eq!(std::fs::read(&f).unwrap(), live_before);
    conf(&f, &["revert"]).success().stdout(predicates::str::contains("nothing staged"));

    // apply a good change with a reload hook
    let (_d2, g) = setup(T23);
    let marker = g.with_file_name("reloaded");
    conf(&g, &["set", "totem", "token=10000"]).success();
    let hook = format!("cp \"$TWONODE_CONF\" {}", marker.display());
    conf(&g, &["apply", "--reload", &hook]).success();
    assert!(std::fs::read_to_string(&g).unwrap().contains("token=\"10000\""));
    assert!(std::fs::read_to_string(g.with_file_name("cluster.conf.old")).unwrap().contains("config_version=\"9\""));
    assert!(std::fs::read_to_string(&marker).unwrap().contains("config_version=\"10\""));
    assert!(!Path::new(&format!("{}.new", g.display())).exists());
    conf(&g, &["apply"]).failure();
}

#[test]
fn apply_refuses_a_version_that_is_not_higher() {
    let (_d, f) = setup(T23);
    std::fs::write(format!("{}.new", f.display()), corpus(T23)).unwrap(); // same version 9
    let a = conf(&f, &["apply"]).failure();
    assert!(String::from_utf8_lossy(&a.get_output().stderr).contains("not higher"), "{:?}", a.get_output());
    assert!(Path::new(&format!("{}.new", f.display())).exists());
}

#[test]
fn validate_exit_codes() {
    let (_d, ok) = setup(T14);
    conf(&ok, &["validate"]).code(0);
    let (_d, bad) = setup("07_rgmanager-test001-no-cluster-attrs.conf");
    let a = conf(&bad, &["validate"]).code(1);
    assert!(stdout(&a).contains("cluster.name-missing"));
    let (_d, r2) = setup("rendered/R2_ccs_tool-create-2-fence_ipmilan.conf");
    let a = conf(&r2, &["validate"]).code(2);
    assert!(stdout(&a).contains(":9:33:"), "{}", stdout(&a));
    let d = tempfile::tempdir().unwrap();
    conf(&d.path().join("missing.conf"), &["validate"]).code(2);
    let a = conf(&ok, &["validate", "--json"]).code(0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&a)).unwrap();
    assert_eq!(v["valid"], true);
}

#[test]
fn passwords_never_in_show_or_json() {
    let (_d, f) = setup(T22);
    for args in [&["show"][..], &["show", "--json"][..], &["validate", "--json"][..], &["validate"][..], &["fencing", "ju", "--json"][..]] {
        let a = conf(&f, args);
        let out = stdout(&a);
        assert!(!out.contains("mysecret"), "{args:?}: {out}");
    }
    let a = conf(&f, &["show"]).success();
    assert!(stdout(&a).contains("passwd=********"));
}

#[test]
fn edits_refuse_malformed_files_with_position() {
    let (_d, f) = setup("rendered/R2_ccs_tool-create-2-fence_ipmilan.conf");
    let before = std::fs::read(&f).unwrap();
    let a = conf(&f, &["bump", "--in-place"]).failure();
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(err.contains("line 9, column 33"), "{err}");
    assert_eq!(std::fs::read(&f).unwrap(), before);
}

#[test]
fn dry_run_writes_nothing() {
    let (_d, f) = setup(T23);
    let a = conf(&f, &["node", "set", "rh7-1", "votes=1", "--dry-run"]).success();
    assert!(stdout(&a).contains("+    <clusternode name=\"rh7-1\" nodeid=\"1\" votes=\"1\">"), "{}", stdout(&a));
    assert!(!Path::new(&format!("{}.new", f.display())).exists());
}

#[test]
fn crlf_and_mode_are_kept() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("cluster.conf");
    let text = String::from_utf8(corpus(T23)).unwrap().replace('\n', "\r\n");
    std::fs::write(&f, &text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    conf(&f, &["node", "add", "rh7-3", "--in-place"]).success();
    let t = std::fs::read_to_string(&f).unwrap();
    assert!(t.contains("    </clusternode>\r\n    <clusternode name=\"rh7-3\" votes=\"1\" nodeid=\"3\"/>\r\n  </clusternodes>"), "{t:?}");
    assert!(!t.replace("\r\n", "").contains('\n'));
    assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
}
