//! `drbdadm status` / `drbdsetup status [--verbose] [--statistics]` text (drbd-utils 8.9+ and 9).
//!
//! ```text
//! r0 role:Secondary
//!   volume:0 disk:Inconsistent
//!   alice role:Primary
//!     volume:0 replication:SyncTarget peer-disk:UpToDate done:37.50
//!   bob connection:Connecting
//! ```
//! Structure by indentation: resource at column 0; local volumes and connections at 2; peer
//! volumes at 4 under a connection. Deeper lines (statistics lines of --verbose/--statistics, and
//! the right-aligned continuation lines of output wrapped at 80 columns) belong to the object above.
//! `connection:` is printed only when not Connected, `role:` only when Connected.
use super::{indent_of, kv, num, strip_ansi, yes_no, Line, ParseError};
use crate::drbd::state::*;

pub fn looks_like(t: &str) -> bool {
    let mut toks = t.split_whitespace();
    let Some(first) = toks.next() else { return false };
    if first.contains(':') || first.contains('{') {
        return false;
    }
    toks.any(|tok| matches!(kv(tok), Some(("role" | "node-id" | "suspended" | "connection", _))))
}

#[derive(Clone, Copy, PartialEq)]
enum Obj {
    Resource,
    Volume(u32),
    Conn(usize),
    PeerDev(usize, u32),
}

pub fn parse(lines: &[Line<'_>]) -> Result<DrbdState, ParseError> {
    let mut st = DrbdState::default();
    let mut res: Option<Resource> = None;
    let mut cur = Obj::Resource;
    for &(no, raw0) in lines {
        let stripped = strip_ansi(raw0);
        let raw: &str = &stripped;
        let line = (no, raw0);
        let t = raw.trim();
        if t.is_empty() || t.chars().all(|c| c == '-') {
            if let Some(r) = res.take() {
                finish(&mut st, r);
            }
            continue;
        }
        let ind = indent_of(raw);
        let mut toks = t.split_whitespace().peekable();
        let first = toks.peek().copied().unwrap_or("");
        if ind == 0 {
            // a new resource: "NAME key:val..."
            if first.contains(':') {
                return Err(ParseError::new(no, raw0, "expected a resource line `NAME role:...`"));
            }
            if let Some(r) = res.take() {
                finish(&mut st, r);
            }
            let mut r = Resource { name: first.to_string(), ..Default::default() };
            toks.next();
            let mut any = false;
            for tok in toks {
                { let (k, v) = need_kv(tok, line)?; apply_resource(&mut r, k, v, line)? };
                any = true;
            }
            if !any {
                return Err(ParseError::new(no, raw0, "resource line without any key:value (role:, node-id:...)"));
            }
            res = Some(r);
            cur = Obj::Resource;
            continue;
        }
        let Some(r) = res.as_mut() else {
            return Err(ParseError::new(no, raw0, "indented line before any resource line"));
        };
        let in_conn = matches!(cur, Obj::Conn(_) | Obj::PeerDev(..));
        if ind == 2 && !first.contains(':') {
            // connection header: "PEER key:val..."
            r.connections.push(Connection { peer: Some(first.to_string()), ..Default::default() });
            cur = Obj::Conn(r.connections.len() - 1);
            toks.next();
        } else if ind == 2 && (first.starts_with("volume:") || first.starts_with("disk:")) {
            let vnr = match kv(first) {
                Some(("volume", v)) => num(v, "volume", line)?,
                _ => 0,
            };
            r.volume_mut(vnr);
            cur = Obj::Volume(vnr);
        } else if ind == 4 && in_conn {
            let ci = match cur {
                Obj::Conn(c) | Obj::PeerDev(c, _) => c,
                _ => 0,
            };
            let vnr = match kv(first) {
                Some(("volume", v)) => num(v, "volume", line)?,
                _ => 0,
            };
            r.connections[ci].peer_device_mut(vnr);
            cur = Obj::PeerDev(ci, vnr);
        }
        for tok in toks {
            let (k, v) = need_kv(tok, line)?;
            match cur {
                Obj::Resource => apply_resource(r, k, v, line)?,
                Obj::Volume(n) => apply_volume(r.volume_mut(n), k, v, line)?,
                Obj::Conn(c) => apply_conn(&mut r.connections[c], k, v, line)?,
                Obj::PeerDev(c, n) => apply_peer_dev(r.connections[c].peer_device_mut(n), k, v, line)?,
            }
        }
    }
    if let Some(r) = res.take() {
        finish(&mut st, r);
    }
    Ok(st)
}

fn finish(st: &mut DrbdState, mut r: Resource) {
    for c in &mut r.connections {
        // `role:` is printed only when Connected, `connection:` only when not
        if c.state.is_none() && c.peer_role.is_some() {
            c.state = Some(ConnState::Connected);
        }
        // 8.4 kernels have no peer names: drbd-utils prints "peer"
        if c.peer.as_deref() == Some("peer") && r.node_id.is_none() {
            st.generation.get_or_insert(Generation::V8);
        }
    }
    if r.node_id.is_some() {
        st.generation.get_or_insert(Generation::V9);
    }
    st.resources.push(r);
}

fn need_kv<'a>(tok: &'a str, line: Line<'_>) -> Result<(&'a str, &'a str), ParseError> {
    kv(tok).ok_or_else(|| ParseError::new(line.0, line.1, format!("expected key:value, found {tok:?}")))
}

fn apply_resource(r: &mut Resource, k: &str, v: &str, line: Line<'_>) -> Result<(), ParseError> {
    match k {
        "role" => r.role = Some(Role::parse(v)),
        "node-id" => r.node_id = Some(num(v, k, line)?),
        "suspended" => r.suspended = Some(v != "no"),
        _ => {}
    }
    Ok(())
}

pub(crate) fn apply_volume(vol: &mut Volume, k: &str, v: &str, line: Line<'_>) -> Result<(), ParseError> {
    match k {
        "volume" => vol.volume = num(v, k, line)?,
        "minor" => vol.minor = Some(num(v, k, line)?),
        "disk" => vol.disk = Some(DiskState::parse(v)),
        "open" => vol.open = yes_no(v),
        "quorum" => vol.quorum = yes_no(v),
        "size" => vol.size_kib = Some(num(v, k, line)?),
        "backing_dev" | "backing-dev" => vol.backing_dev = Some(v.to_string()),
        _ => {
            if let Ok(n) = v.parse::<u64>() {
                set_stat(&mut vol.stats, k, n);
            }
        }
    }
    Ok(())
}

pub(crate) fn apply_conn(c: &mut Connection, k: &str, v: &str, line: Line<'_>) -> Result<(), ParseError> {
    match k {
        "connection" => c.state = Some(ConnState::parse(v)),
        "role" => c.peer_role = Some(Role::parse(v)),
        "node-id" | "peer-node-id" => c.peer_node_id = Some(num(v, k, line)?),
        "congested" => c.congested = yes_no(v),
        "local" => c.local_addr = Some(v.to_string()),
        "peer" => c.peer_addr = Some(v.to_string()),
        "conn-name" => c.peer = Some(v.to_string()),
        _ => {}
    }
    Ok(())
}

pub(crate) fn apply_peer_dev(p: &mut PeerDevice, k: &str, v: &str, line: Line<'_>) -> Result<(), ParseError> {
    match k {
        "volume" => p.volume = num(v, k, line)?,
        "replication" => p.replication = Some(ReplState::parse(v)),
        // old 9 utils printed the peer's disk as `disk:` under the connection
        "peer-disk" | "disk" => p.peer_disk = Some(DiskState::parse(v)),
        "out-of-sync" => p.out_of_sync_kib = Some(num(v, k, line)?),
        "resync-suspended" => p.resync_suspended = Some(v.to_string()),
        "done" => {
            let d: f64 = num(v, k, line)?;
            p.sync.get_or_insert_with(SyncProgress::default).done_percent = Some(d);
        }
        "eta" => {
            let d: u64 = num(v, k, line)?;
            p.sync.get_or_insert_with(SyncProgress::default).eta_seconds = Some(d);
        }
        _ => {
            if let Ok(n) = v.parse::<u64>() {
                set_stat(&mut p.stats, k, n);
            }
        }
    }
    Ok(())
}

/// Update a statistic without allocating its key again (events2 streams repeat the same keys).
#[inline]
fn set_stat(m: &mut std::collections::BTreeMap<String, u64>, k: &str, n: u64) {
    match m.get_mut(k) {
        Some(x) => *x = n,
        None => {
            m.insert(k.to_string(), n);
        }
    }
}
