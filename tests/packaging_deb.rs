//! The Debian package: `scripts/build-deb` (cargo-deb) builds it, `dpkg-deb -c` lists what it holds,
//! and the fence agents inside answer as themselves through their symlinks. Skipped, with a message,
//! when cargo-deb or dpkg-deb is missing (`cargo install cargo-deb`); it builds the release binary.
use std::path::Path;
use std::process::Command;

fn have(cmd: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {cmd}")).output().is_ok_and(|o| o.status.success())
}

#[test]
fn deb_holds_binary_agents_unit_man_pages_and_completions() {
    if !have("cargo-deb") || !have("dpkg-deb") {
        eprintln!("SKIP: cargo-deb or dpkg-deb missing (cargo install cargo-deb; apt-get install dpkg)");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash").arg(root.join("scripts/build-deb")).current_dir(root).output().expect("build-deb runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "scripts/build-deb failed:\n{stderr}");
    let deb = String::from_utf8_lossy(&out.stdout).lines().last().expect("deb path").trim().to_string();
    let deb = root.join(deb);
    assert!(deb.exists(), "{} missing", deb.display());

    let list = Command::new("dpkg-deb").arg("-c").arg(&deb).output().unwrap();
    assert!(list.status.success());
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    let entry = |path: &str| list.lines().find(|l| l.split_whitespace().nth(5) == Some(path)).map(str::to_string);
    let bin = entry("./usr/bin/twonode").unwrap_or_else(|| panic!("no /usr/bin/twonode:\n{list}"));
    assert!(bin.starts_with("-rwxr-xr-x"), "{bin}");
    let agent = entry("./usr/sbin/fence_twonode").unwrap_or_else(|| panic!("no /usr/sbin/fence_twonode:\n{list}"));
    assert!(agent.starts_with("-rwxr-xr-x"), "fence_twonode is its own binary: {agent}");
    let l = entry("./usr/sbin/fence_twonode_arbiter").unwrap_or_else(|| panic!("no /usr/sbin/fence_twonode_arbiter:\n{list}"));
    assert!(l.starts_with('l') && l.ends_with("-> ../bin/twonode"), "fence_twonode_arbiter is not a symlink to ../bin/twonode: {l}");
    assert!(entry("./lib/systemd/system/twonode-arbiter.service").is_some(), "no unit:\n{list}");
    for man in ["twonode.1.gz", "twonode-pacemaker.1.gz", "twonode-arbiter.1.gz", "twonode-fence.1.gz"] {
        assert!(entry(&format!("./usr/share/man/man1/{man}")).is_some(), "no {man}:\n{list}");
    }
    for c in ["./usr/share/bash-completion/completions/twonode", "./usr/share/zsh/vendor-completions/_twonode", "./usr/share/fish/vendor_completions.d/twonode.fish"] {
        assert!(entry(c).is_some(), "no {c}:\n{list}");
    }

    let field = |f: &str| String::from_utf8_lossy(&Command::new("dpkg-deb").arg("-f").arg(&deb).arg(f).output().unwrap().stdout).trim().to_string();
    assert_eq!(field("Package"), "twonode");
    assert!(field("Depends").contains("libc6"), "Depends: {}", field("Depends"));

    // unpacked, the agents answer as themselves; fence_twonode loads no OpenSSL, zlib or libssh2
    let dir = tempfile::tempdir().unwrap();
    assert!(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(dir.path()).status().unwrap().success());
    let dynamic = Command::new("readelf").arg("-d").arg(dir.path().join("usr/sbin/fence_twonode")).output().unwrap();
    let needed: Vec<String> = String::from_utf8_lossy(&dynamic.stdout).lines().filter(|l| l.contains("(NEEDED)")).map(str::to_string).collect();
    assert!(!needed.is_empty(), "readelf -d listed no NEEDED entries");
    for lib in ["libssl", "libcrypto", "libz.", "libssh2"] {
        assert!(!needed.iter().any(|l| l.contains(lib)), "fence_twonode loads {lib}: {needed:?}");
    }
    let meta = Command::new(dir.path().join("usr/sbin/fence_twonode")).args(["-o", "metadata"]).output().unwrap();
    let meta = String::from_utf8_lossy(&meta.stdout);
    assert!(meta.contains("<resource-agent") && meta.contains("fence_twonode"), "{meta}");
    let meta = Command::new(dir.path().join("usr/sbin/fence_twonode_arbiter")).args(["-o", "metadata"]).output().unwrap();
    let meta = String::from_utf8_lossy(&meta.stdout);
    assert!(meta.contains("<resource-agent") && meta.contains("fence_twonode_arbiter"), "{meta}");
    let unit = std::fs::read_to_string(dir.path().join("lib/systemd/system/twonode-arbiter.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/twonode arbiter serve"), "{unit}");
    let bash = std::fs::read_to_string(dir.path().join("usr/share/bash-completion/completions/twonode")).unwrap();
    assert!(bash.contains("pacemaker"), "completions name the subcommands");
}
