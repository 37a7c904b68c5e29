//! Human-readable rendering of parsed DRBD state (what `twonode drbd parse` prints).
use super::parse::Paste;
use super::state::*;
use std::fmt::Write;

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or("?".to_string(), |x| x.to_string())
}

/// One resource as indented text.
pub fn resource(r: &Resource, out: &mut String) {
    let _ = write!(out, "resource {}", r.display_name());
    if r.unconfigured {
        let _ = writeln!(out, ": unconfigured");
        return;
    }
    let _ = write!(out, ": role {}", opt(&r.role));
    if let Some(id) = r.node_id {
        let _ = write!(out, ", node-id {id}");
    }
    if r.suspended == Some(true) {
        let _ = write!(out, ", I/O SUSPENDED");
    }
    out.push('\n');
    for v in &r.volumes {
        let _ = write!(out, "  volume {}", v.volume);
        if let Some(m) = v.minor {
            let _ = write!(out, " (/dev/drbd{m})");
        }
        let _ = write!(out, ": disk {}", opt(&v.disk));
        if v.open == Some(true) {
            let _ = write!(out, ", open");
        }
        if let Some(s) = v.size_kib {
            let _ = write!(out, ", {s} KiB");
        }
        out.push('\n');
        if let Some(gi) = &v.gi {
            let _ = writeln!(out, "    GI {}", gi.tuple_string());
        }
    }
    for c in &r.connections {
        let _ = write!(out, "  peer {}", c.display_peer());
        if let (Some(_), Some(id)) = (&c.peer, c.peer_node_id) {
            let _ = write!(out, " (node-id {id})");
        }
        let _ = write!(out, ": connection {}", opt(&c.state));
        if let Some(role) = &c.peer_role {
            let _ = write!(out, ", role {role}");
        }
        out.push('\n');
        for p in &c.peer_devices {
            let _ = write!(out, "    volume {}: replication {}, peer disk {}", p.volume, opt(&p.replication), opt(&p.peer_disk));
            if let Some(o) = p.out_of_sync_kib {
                let _ = write!(out, ", out of sync {o} KiB");
            }
            if let Some(s) = &p.sync {
                if let Some(d) = s.done_percent {
                    let _ = write!(out, ", {d:.1}% done");
                }
                if let Some(e) = s.eta_seconds {
                    let _ = write!(out, ", {e} s to go");
                }
            }
            out.push('\n');
        }
    }
}

/// A configuration summary.
pub fn config(c: &ResourceConfig, out: &mut String) {
    let _ = writeln!(out, "config {}:", if c.name.is_empty() { "(unnamed)" } else { &c.name });
    for h in &c.hosts {
        let _ = write!(out, "  host {}", h.name);
        if let Some(id) = h.node_id {
            let _ = write!(out, " node-id {id}");
        }
        if let Some(a) = &h.address {
            let _ = write!(out, " address {a}");
        }
        out.push('\n');
        for v in &h.volumes {
            let _ = writeln!(out, "    volume {}: {} on {}", v.volume, opt(&v.device), opt(&v.disk));
        }
    }
    for v in &c.volumes {
        let _ = writeln!(out, "  volume {}: {} on {}", v.volume, opt(&v.device), opt(&v.disk));
    }
    let n = &c.net;
    let _ = writeln!(
        out,
        "  split-brain policies: after-sb-0pri {}, after-sb-1pri {}, after-sb-2pri {}{}",
        n.after_sb_0pri.as_deref().unwrap_or("disconnect (default)"),
        n.after_sb_1pri.as_deref().unwrap_or("disconnect (default)"),
        n.after_sb_2pri.as_deref().unwrap_or("disconnect (default)"),
        if n.auto_resolves() { "  [automatic resolution may discard data]" } else { "" }
    );
}

/// The whole paste.
pub fn paste(p: &Paste) -> String {
    let mut out = String::new();
    let st = &p.state;
    if let Some(v) = &st.version {
        let _ = writeln!(out, "DRBD {v}");
    } else if let Some(g) = st.generation {
        let _ = writeln!(out, "DRBD {}", if g == Generation::V9 { "9" } else { "8.x" });
    }
    let fmts: Vec<&str> = p.sections.iter().map(|s| s.format.name()).collect();
    let _ = writeln!(out, "read: {}", fmts.join(", "));
    for r in &st.resources {
        resource(r, &mut out);
    }
    for c in &st.configs {
        config(c, &mut out);
    }
    for h in &st.helpers {
        let _ = writeln!(
            out,
            "helper {} on {}{}: {}",
            h.helper,
            h.resource,
            h.peer.as_ref().map_or(String::new(), |p| format!(" (peer {p})")),
            h.status.map_or("called, no response".to_string(), |s| format!("exit status {s}"))
        );
    }
    for k in &p.kernel_log {
        let _ = writeln!(out, "kernel line {}: {}", k.line, k.text);
    }
    for m in &p.mounts {
        let _ = writeln!(out, "mount {} on {}", m.device, m.mountpoint);
    }
    for h in &p.holders {
        let _ = writeln!(out, "held open: {} by {}", h.device.as_deref().unwrap_or("?"), h.command);
    }
    for s in &p.services {
        let _ = writeln!(out, "service {} {} on {}", s.name, s.state, s.owner.as_deref().unwrap_or("?"));
    }
    out
}
