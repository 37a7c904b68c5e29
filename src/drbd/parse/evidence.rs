//! Host evidence around DRBD: kernel log lines (dmesg, journalctl -k, syslog), /proc/mounts or
//! `mount`, `fuser -vm` / `lsof` holders, and `clustat` / `crm_mon` service placement.
//!
//! These readers are lenient: lines they do not understand are skipped (counted), because an admin
//! pastes whatever the log holds. The DRBD kernel messages they recognise:
//! - 8.4: `block drbd0: Split-Brain detected but unresolved, dropping connection!`,
//!   `block drbd0: uuid_compare()=100 by rule 90`, `block drbd0: self CUR:BM:H1:H2 bits:N flags:0`,
//!   `d-con r0: conn( Connected -> NetworkFailure )`, `block drbd0: role( Secondary -> Primary )`
//! - 9: `drbd r0/0 drbd0 bob: uuid_compare()=split-brain-auto-recover by rule=bitmap-both`,
//!   `drbd r0 bob: conn( Connected -> NetworkFailure ) peer( Primary -> Unknown )`,
//!   `drbd r0: role( Secondary -> Primary )`, `Unrelated data, aborting!`
use super::Line;
use crate::drbd::state::Gi;
use serde::{Deserialize, Serialize};

/// What a kernel log line says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum KernelEventKind {
    /// `Split-Brain detected ...`; `resolved` with the direction when an after-sb policy acted.
    SplitBrain { resolved: bool, sync_from: Option<String> },
    /// `uuid_compare()=X by rule Y`.
    UuidCompare { result: String, rule: String },
    /// `Unrelated data, aborting!`
    UnrelatedData,
    /// The split-brain handler was run (`helper command: ... split-brain`).
    SplitBrainHelper,
    /// Connection state change `conn( A -> B )`.
    Conn { from: String, to: String },
    /// Local role change `role( A -> B )`.
    Role { from: String, to: String },
    /// Peer role change `peer( A -> B )`.
    PeerRole { from: String, to: String },
    /// Disk state change `disk( A -> B )`.
    Disk { from: String, to: String },
    /// Handshake GI line `self|peer CUR:BM:H1:H2 bits:N flags:F`.
    HandshakeGi { side: String, gi: Gi, bits: Option<u64> },
    /// Other DRBD line (kept for the timeline).
    Other,
}

/// One DRBD kernel log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelEvent {
    /// 1-based line number in the input.
    pub line: usize,
    /// Timestamp as printed (`Nov 22 00:15:01`, `[ 1234.567890]`, ISO), when there is one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub minor: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub volume: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub peer: Option<String>,
    #[serde(flatten)]
    pub kind: KernelEventKind,
    /// The message after the DRBD prefix.
    pub text: String,
}

/// A mounted filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub device: String,
    pub mountpoint: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fstype: Option<String>,
}

/// A process (or the kernel, for a mount) holding a device open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub device: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pid: Option<u32>,
    pub command: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user: Option<String>,
}

/// A cluster service and the node it runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub owner: Option<String>,
    pub state: String,
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Split a log line into (timestamp, message after the `kernel:` / dmesg prefix).
fn strip_log_prefix(l: &str) -> (Option<String>, &str) {
    let t = l.trim();
    let mut time = None;
    let mut rest = t;
    // syslog: "Nov 22 00:15:01 host kernel: ..." or ISO "2026-11-22T00:15:01+00:00 host kernel: ..."
    if MONTHS.iter().any(|m| t.starts_with(m)) || t.get(..4).is_some_and(|y| y.bytes().all(|b| b.is_ascii_digit())) {
        if let Some(i) = t.find(" kernel: ") {
            let head = &t[..i];
            // drop the host name (last word of the head)
            let ts = head.rsplit_once(' ').map_or(head, |(a, _)| a);
            time = Some(ts.to_string());
            rest = &t[i + 9..];
        }
    }
    let r = rest.trim_start();
    if let Some(after) = r.strip_prefix('[') {
        if let Some(j) = after.find(']') {
            let inner = after[..j].trim();
            if inner.bytes().all(|b| b.is_ascii_digit() || b == b'.') && !inner.is_empty() {
                if time.is_none() {
                    time = Some(format!("[{inner}]"));
                }
                rest = after[j + 1..].trim_start();
                return (time, rest);
            }
        }
    }
    (time, r)
}

/// The DRBD prefix of a kernel message: `block drbd0: `, `d-con r0: `, `drbd r0: `,
/// `drbd r0/0 drbd0: `, `drbd r0 bob: `, `drbd r0/0 drbd0 bob: `. Returns (resource, minor,
/// volume, peer, message).
#[allow(clippy::type_complexity)]
fn drbd_prefix(m: &str) -> Option<(Option<String>, Option<u32>, Option<u32>, Option<String>, &str)> {
    if let Some(r) = m.strip_prefix("block drbd") {
        let (n, msg) = r.split_once(": ")?;
        return Some((None, n.parse().ok(), None, None, msg));
    }
    if let Some(r) = m.strip_prefix("d-con ") {
        let (n, msg) = r.split_once(": ")?;
        return Some((Some(n.to_string()), None, None, None, msg));
    }
    let r = m.strip_prefix("drbd ")?;
    let (head, msg) = r.split_once(": ")?;
    let mut words = head.split_whitespace();
    let first = words.next()?;
    let (res, vol) = match first.split_once('/') {
        Some((a, v)) => (a.to_string(), v.parse().ok()),
        None => (first.to_string(), None),
    };
    let mut minor = None;
    let mut peer = None;
    for w in words {
        if let Some(n) = w.strip_prefix("drbd").and_then(|n| n.parse().ok()) {
            minor = Some(n);
        } else {
            peer = Some(w.to_string());
        }
    }
    Some((Some(res), minor, vol, peer, msg))
}

pub fn looks_like_kernel_log(t: &str) -> bool {
    let (_, m) = strip_log_prefix(t);
    drbd_prefix(m).is_some() || (t.contains(" kernel: ") && t.contains("drbd"))
}

fn state_change(msg: &str, key: &str) -> Option<(String, String)> {
    let pat = format!("{key}( ");
    let i = msg.find(&pat)?;
    if i > 0 && !msg[..i].ends_with(' ') {
        return None;
    }
    let rest = &msg[i + pat.len()..];
    let end = rest.find(" )")?;
    let (a, b) = rest[..end].split_once(" -> ")?;
    Some((a.trim().to_string(), b.trim().to_string()))
}

fn classify(msg: &str) -> KernelEventKind {
    if msg.contains("Split-Brain detected") {
        let resolved = !msg.contains("unresolved");
        let sync_from = if msg.contains("Sync from this node") {
            Some("this".to_string())
        } else if msg.contains("Sync from peer node") {
            Some("peer".to_string())
        } else {
            None
        };
        return KernelEventKind::SplitBrain { resolved, sync_from };
    }
    if msg.contains("Unrelated data") {
        return KernelEventKind::UnrelatedData;
    }
    if let Some(i) = msg.find("uuid_compare()=") {
        let rest = &msg[i + 15..];
        let result = rest.split_whitespace().next().unwrap_or("").to_string();
        let rule = rest
            .find("rule")
            .map(|j| rest[j + 4..].trim_start_matches(['=', ' ']).split_whitespace().next().unwrap_or("").to_string())
            .unwrap_or_default();
        return KernelEventKind::UuidCompare { result, rule };
    }
    if msg.contains("helper command:") && msg.contains("split-brain") {
        return KernelEventKind::SplitBrainHelper;
    }
    for side in ["self", "peer"] {
        if let Some(rest) = msg.strip_prefix(side).and_then(|r| r.strip_prefix(' ')) {
            let mut toks = rest.split_whitespace();
            if let Some(tuple) = toks.next() {
                let parts: Vec<&str> = tuple.split(':').collect();
                if parts.len() >= 4 {
                    let hex: Vec<u64> = parts[..4].iter().filter_map(|p| u64::from_str_radix(p, 16).ok()).collect();
                    if hex.len() == 4 {
                        let bits = toks.find_map(|t| t.strip_prefix("bits:").and_then(|b| b.parse().ok()));
                        return KernelEventKind::HandshakeGi {
                            side: side.to_string(),
                            gi: Gi::new(hex[0], hex[1], hex[2], hex[3]),
                            bits,
                        };
                    }
                }
            }
        }
    }
    if let Some((from, to)) = state_change(msg, "conn") {
        return KernelEventKind::Conn { from, to };
    }
    if let Some((from, to)) = state_change(msg, "role") {
        return KernelEventKind::Role { from, to };
    }
    if let Some((from, to)) = state_change(msg, "peer") {
        return KernelEventKind::PeerRole { from, to };
    }
    if let Some((from, to)) = state_change(msg, "disk") {
        return KernelEventKind::Disk { from, to };
    }
    KernelEventKind::Other
}

/// DRBD lines of a kernel log; other lines are skipped. Never fails.
pub fn parse_kernel_log(lines: &[Line<'_>]) -> Vec<KernelEvent> {
    let mut out = Vec::new();
    for &(no, raw) in lines {
        let (time, m) = strip_log_prefix(raw);
        let Some((resource, minor, volume, peer, msg)) = drbd_prefix(m) else { continue };
        let kind = classify(msg);
        // 8.4/9 print several changes on one line: "conn( A -> B ) disk( C -> D )"; the first wins
        // the kind, the later ones are still readable from `text`.
        out.push(KernelEvent { line: no, time, resource, minor, volume, peer, kind, text: msg.to_string() });
    }
    out
}

pub fn looks_like_mounts(t: &str) -> bool {
    let w: Vec<&str> = t.split_whitespace().collect();
    (w.len() == 6 && w[4].parse::<u32>().is_ok() && w[5].parse::<u32>().is_ok() && w[1].starts_with('/'))
        || (w.len() >= 5 && w[1] == "on" && w[3] == "type")
}

/// /proc/mounts (`dev dir type opts 0 0`) or `mount` (`dev on dir type fs (opts)`) lines.
pub fn parse_mounts(lines: &[Line<'_>]) -> Vec<Mount> {
    let mut out = Vec::new();
    for &(_, raw) in lines {
        let w: Vec<&str> = raw.split_whitespace().collect();
        if w.len() >= 5 && w[1] == "on" && w[3] == "type" {
            out.push(Mount { device: w[0].to_string(), mountpoint: w[2].to_string(), fstype: Some(w[4].to_string()) });
        } else if w.len() >= 3 && w[1].starts_with('/') {
            out.push(Mount { device: w[0].to_string(), mountpoint: w[1].to_string(), fstype: Some(w[2].to_string()) });
        }
    }
    out
}

pub fn looks_like_holders(t: &str) -> bool {
    let w: Vec<&str> = t.split_whitespace().collect();
    (w.len() >= 4 && w[0] == "USER" && w[1] == "PID") || (w.len() >= 4 && w[0] == "COMMAND" && w[1] == "PID")
        || t.starts_with("/dev/drbd") && t.split_whitespace().next().is_some_and(|d| d.ends_with(':'))
}

/// `fuser -vm DEV` or `lsof DEV` output.
pub fn parse_holders(lines: &[Line<'_>]) -> Vec<Holder> {
    let mut out = Vec::new();
    let mut dev: Option<String> = None;
    let mut lsof = false;
    for &(_, raw) in lines {
        let mut w: Vec<&str> = raw.split_whitespace().collect();
        if w.is_empty() {
            continue;
        }
        if w[0] == "USER" && w.get(1) == Some(&"PID") {
            continue;
        }
        if w[0] == "COMMAND" && w.get(1) == Some(&"PID") {
            lsof = true;
            continue;
        }
        if lsof {
            // COMMAND PID USER FD TYPE DEVICE SIZE/OFF NODE NAME
            if w.len() >= 3 {
                out.push(Holder {
                    device: w.last().map(|s| s.to_string()),
                    pid: w[1].parse().ok(),
                    command: w[0].to_string(),
                    user: Some(w[2].to_string()),
                });
            }
            continue;
        }
        // fuser: "/dev/drbd0:   root  kernel mount /srv" / "   root  1234 F.... postgres"
        if w[0].ends_with(':') {
            dev = Some(w[0].trim_end_matches(':').to_string());
            w.remove(0);
        }
        if w.len() >= 3 {
            let (user, pid, cmd) = (w[0], w[1], &w[2..]);
            let command = if pid == "kernel" { cmd.join(" ") } else { cmd.last().unwrap_or(&"").to_string() };
            out.push(Holder { device: dev.clone(), pid: pid.parse().ok(), command, user: Some(user.to_string()) });
        }
    }
    out
}

pub fn looks_like_clustat(t: &str) -> bool {
    t.starts_with("Cluster Status for") || t.starts_with("Service Name") || t.starts_with("Member Name")
}

/// `clustat` service lines (`service:web  alice  started`) and `crm_mon`/`pcs status` resource lines
/// (`fs_r0 (ocf::heartbeat:Filesystem): Started alice`).
pub fn parse_services(lines: &[Line<'_>]) -> Vec<Service> {
    let mut out = Vec::new();
    for &(_, raw) in lines {
        let w: Vec<&str> = raw.split_whitespace().collect();
        if w.is_empty() {
            continue;
        }
        let name = w[0].trim_start_matches('*');
        if (name.starts_with("service:") || name.starts_with("vm:")) && w.len() >= 3 {
            let owner = w[1].trim_matches(['(', ')']);
            out.push(Service {
                name: name.to_string(),
                owner: (owner != "none").then(|| owner.to_string()),
                state: w[w.len() - 1].to_string(),
            });
            continue;
        }
        if let Some(i) = w.iter().position(|x| *x == "Started" || *x == "Stopped") {
            let name = w.iter().find(|x| **x != "*").map_or("", |x| x.trim_end_matches(':'));
            out.push(Service {
                name: name.to_string(),
                owner: w.get(i + 1).map(|s| s.to_string()),
                state: w[i].to_string(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drbd::parse::number_lines;

    #[test]
    fn kernel_log_8_4_and_9_lines() {
        let text = "\
Nov 22 00:15:01 alice kernel: [ 5000.1] block drbd0: conn( Connected -> NetworkFailure ) pdsk( UpToDate -> DUnknown )
Nov 22 00:15:09 alice kernel: block drbd0: role( Secondary -> Primary )
Nov 22 00:20:00 alice kernel: block drbd0: self 9E4DEF0B06A6DA9D:41C26508159C156A:CA64B93EC801717D:CA63B93EC801717D bits:25600 flags:0
Nov 22 00:20:00 alice kernel: block drbd0: uuid_compare()=100 by rule 90
Nov 22 00:20:00 alice kernel: block drbd0: helper command: /sbin/drbdadm split-brain minor-0
Nov 22 00:20:00 alice kernel: block drbd0: Split-Brain detected but unresolved, dropping connection!
Nov 22 00:20:00 alice sshd[1]: Accepted publickey for root
[ 6000.5] drbd r0/1 drbd1 bob: uuid_compare()=split-brain-auto-recover by rule=bitmap-both
[ 6000.6] drbd r0: Split-Brain detected, 1 primaries, automatically solved. Sync from peer node
[ 6000.7] d-con r0: Unrelated data, aborting!
2026-11-22T00:20:00.123456+00:00 bob kernel: drbd r0 alice: conn( Connecting -> Connected ) peer( Unknown -> Primary )
";
        let ev = parse_kernel_log(&number_lines(text, 1));
        assert_eq!(ev.len(), 10, "{ev:#?}");
        assert_eq!(ev[0].time.as_deref(), Some("Nov 22 00:15:01"));
        assert_eq!(ev[0].minor, Some(0));
        assert_eq!(ev[0].kind, KernelEventKind::Conn { from: "Connected".into(), to: "NetworkFailure".into() });
        assert_eq!(ev[1].kind, KernelEventKind::Role { from: "Secondary".into(), to: "Primary".into() });
        match &ev[2].kind {
            KernelEventKind::HandshakeGi { side, gi, bits } => {
                assert_eq!((side.as_str(), gi.bitmap, *bits), ("self", 0x41C26508159C156A, Some(25600)));
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(ev[3].kind, KernelEventKind::UuidCompare { result: "100".into(), rule: "90".into() });
        assert_eq!(ev[4].kind, KernelEventKind::SplitBrainHelper);
        assert_eq!(ev[5].kind, KernelEventKind::SplitBrain { resolved: false, sync_from: None });
        assert_eq!(ev[6].line, 8); // the sshd line is skipped
        assert_eq!((ev[6].resource.as_deref(), ev[6].volume, ev[6].minor, ev[6].peer.as_deref()), (Some("r0"), Some(1), Some(1), Some("bob")));
        assert_eq!(ev[6].kind, KernelEventKind::UuidCompare { result: "split-brain-auto-recover".into(), rule: "bitmap-both".into() });
        assert_eq!(ev[7].kind, KernelEventKind::SplitBrain { resolved: true, sync_from: Some("peer".into()) });
        assert_eq!(ev[8].kind, KernelEventKind::UnrelatedData);
        assert_eq!(ev[9].time.as_deref(), Some("2026-11-22T00:20:00.123456+00:00"));
        assert_eq!(ev[9].peer.as_deref(), Some("alice"));
    }

    #[test]
    fn mounts_holders_services() {
        let m = parse_mounts(&number_lines("/dev/drbd0 /srv ext4 rw 0 0\n/dev/drbd1 on /var/lib/pgsql type xfs (rw)\n", 1));
        assert_eq!(m.len(), 2);
        assert_eq!((m[1].device.as_str(), m[1].mountpoint.as_str()), ("/dev/drbd1", "/var/lib/pgsql"));
        let h = parse_holders(&number_lines(
            "                     USER        PID ACCESS COMMAND\n/dev/drbd0:          root     kernel mount /srv\n                     postgres   4242 F.... postgres\n",
            1,
        ));
        assert_eq!(h.len(), 2);
        assert_eq!((h[0].command.as_str(), h[0].pid), ("mount /srv", None));
        assert_eq!((h[1].device.as_deref(), h[1].pid, h[1].user.as_deref()), (Some("/dev/drbd0"), Some(4242), Some("postgres")));
        let l = parse_holders(&number_lines(
            "COMMAND  PID USER   FD   TYPE DEVICE SIZE/OFF NODE NAME\npostgres 4242 postgres 3u BLK 147,0 0t0 123 /dev/drbd0\n",
            1,
        ));
        assert_eq!((l[0].command.as_str(), l[0].pid, l[0].device.as_deref()), ("postgres", Some(4242), Some("/dev/drbd0")));
        let s = parse_services(&number_lines(
            "Cluster Status for c @ Sun Nov 22 00:00:00 2026\n Service Name      Owner (Last)     State\n ------- ----      ----- ------     -----\n service:web       alice            started\n service:db        (bob)            stopped\n",
            1,
        ));
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].owner.as_deref(), s[0].state.as_str()), (Some("alice"), "started"));
        assert_eq!(s[1].owner.as_deref(), Some("bob"));
        let c = parse_services(&number_lines("  * fs_r0\t(ocf::heartbeat:Filesystem):\t Started alice\n", 1));
        assert_eq!((c[0].name.as_str(), c[0].owner.as_deref()), ("fs_r0", Some("alice")));
    }
}
