//! Pacemaker accepts twonode's fence agents: with `fence_twonode` and `fence_twonode_arbiter` in
//! /usr/sbin (as the Debian package installs them: fence_twonode its own binary, the gate a symlink
//! to twonode), the real
//! `stonith_admin --list-installed` lists them, `stonith_admin --metadata` reads their metadata,
//! and `pcs stonith create` validates parameters against it. /usr/sbin is changed only inside a
//! private mount namespace (`unshare -m` + an overlay), never on the machine. Skipped, with a
//! message, without root, unshare/overlayfs or pacemaker's tools.
use std::process::Command;

#[test]
fn stonith_admin_and_pcs_accept_the_agents() {
    let have = |c: &str| Command::new("sh").arg("-c").arg(format!("command -v {c}")).output().is_ok_and(|o| o.status.success());
    if !nix::unistd::geteuid().is_root() || !have("unshare") || !have("stonith_admin") || !have("pcs") || !have("cibadmin") {
        eprintln!("SKIP: needs root, unshare, stonith_admin, pcs, cibadmin (scripts/install-deps)");
        return;
    }
    let bin = assert_cmd::cargo::cargo_bin("twonode");
    let agent = assert_cmd::cargo::cargo_bin("fence_twonode");
    let dir = tempfile::tempdir().unwrap();
    let (upper, work) = (dir.path().join("u"), dir.path().join("w"));
    std::fs::create_dir_all(&upper).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    std::fs::copy(&agent, upper.join("fence_twonode")).unwrap();
    std::os::unix::fs::symlink(&bin, upper.join("fence_twonode_arbiter")).unwrap();
    let cib = dir.path().join("cib.xml");
    let script = format!(
        r#"set -e
mount --make-rprivate /
mount -t overlay overlay -o lowerdir=/usr/sbin,upperdir={u},workdir={w} /usr/sbin || {{ echo NO-OVERLAY; exit 0; }}
echo "== list"; stonith_admin --list-installed
echo "== meta"; stonith_admin --metadata -a fence_twonode
echo "== meta-arbiter"; stonith_admin --metadata -a fence_twonode_arbiter
cibadmin --empty > {cib}
echo "== pcs"; pcs -f {cib} stonith create fence-node2 fence_twonode ip=127.0.0.1 username=admin password=pcs-secret lanplus=1 pcmk_host_list=node2 pcmk_delay_max=15s 2>&1
echo "== pcs-bad"; pcs -f {cib} stonith create bogus fence_twonode nosuchparam=1 2>&1 || echo "pcs refused: $?"
"#,
        u = upper.display(),
        w = work.display(),
        cib = cib.display()
    );
    let out = Command::new("unshare").args(["-m", "sh", "-c", &script]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if text.contains("NO-OVERLAY") || (!out.status.success() && text.contains("unshare")) {
        eprintln!("SKIP: no private mount namespace with overlayfs here: {text}");
        return;
    }
    assert!(out.status.success(), "{text}");
    let list = text.split("== meta").next().unwrap();
    assert!(list.lines().any(|l| l.trim() == "fence_twonode") && list.lines().any(|l| l.trim() == "fence_twonode_arbiter"), "{list}");
    assert!(text.contains("<resource-agent name=\"fence_twonode\""), "{text}");
    assert!(text.contains("<resource-agent name=\"fence_twonode_arbiter\""), "{text}");
    assert!(text.contains("invalid stonith option 'nosuchparam'") && text.contains("pcs refused"), "{text}");
    // the machine's /usr/sbin is untouched
    assert!(!std::path::Path::new("/usr/sbin/fence_twonode").exists());
    // and twonode reads the CIB pcs wrote, password masked
    let show = Command::new(&bin).args(["pacemaker", "show", "--cib", cib.to_str().unwrap()]).output().unwrap();
    let show = String::from_utf8_lossy(&show.stdout);
    assert!(show.contains("fence-node2 (fence_twonode): fences node2; pcmk_delay_max=15s"), "{show}");
    assert!(show.contains("password=********") && !show.contains("pcs-secret"), "{show}");
}
