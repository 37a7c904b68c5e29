//! What the namespace labs (tests/arbiter_lab.rs, tests/pacemaker_lab.rs,
//! tests/pacemaker_drbd_lab.rs) share: whether this machine can run them, and the `RESULT k=v ...`
//! lines their scripts print.
#![allow(dead_code)]
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

pub type Row = BTreeMap<String, String>;

pub fn have(tool: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].iter().any(|d| Path::new(d).join(tool).exists())
}

/// Why a namespace lab cannot run here (None: it can): not root, one of TOOLS missing, or no
/// network namespace can be made (probed with `ip netns add`).
pub fn skip_reason(tools: &[&str]) -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root (network namespaces need root; CI runs this as root)".into());
    }
    for tool in tools.iter().chain(["ip", "unshare"].iter()) {
        if !have(tool) {
            return Some(format!("{tool} not installed (run scripts/install-deps)"));
        }
    }
    let probe = format!("tnprobe{}", std::process::id());
    let ok = Command::new("ip").args(["netns", "add", &probe]).status().map(|s| s.success()).unwrap_or(false);
    if !ok {
        return Some("cannot create a network namespace here (`ip netns add` failed)".into());
    }
    let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    None
}

/// The `RESULT k=v k=v ...` lines of a lab script's output; everything after ` timeline=` is one
/// value (the timeline has spaces).
pub fn rows(stdout: &str) -> Vec<Row> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .map(|l| {
            let (head, timeline) = match l.find(" timeline=") {
                Some(i) => (&l[..i], Some(&l[i + 10..])),
                None => (l, None),
            };
            let mut r: Row = head.split_whitespace().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect();
            if let Some(t) = timeline {
                r.insert("timeline".into(), t.into());
            }
            r
        })
        .collect()
}
