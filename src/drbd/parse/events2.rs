//! `drbdsetup events2` (with or without --now, --statistics, --timestamps, --diff, --color).
//!
//! ```text
//! [2019-05-07T13:50:23.973595-07:00 ]exists|create|change|destroy|call|response OBJECT key:value...
//! exists -
//! ```
//! Events are applied in order to build the state at the end of the stream: `create`/`exists`/
//! `change` update an object, `destroy` removes it. `--diff` values (`role:Secondary->Primary`)
//! count by their new value. Real events2 lines are never wrapped; lines starting with whitespace
//! (the user's guide breaks them "for readability") are joined to the line before.
use super::status::{apply_conn, apply_peer_dev, apply_volume};
use super::{kv, num, strip_ansi, yes_no, Line, ParseError};
use crate::drbd::state::*;

const VERBS: [&str; 6] = ["exists", "create", "change", "destroy", "call", "response"];

fn is_timestamp(tok: &str) -> bool {
    let b = tok.as_bytes();
    (b.len() >= 19 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[..4].iter().all(u8::is_ascii_digit))
        || tok == "TIME"
}

pub fn looks_like(t: &str) -> bool {
    let mut toks = t.split_whitespace();
    let Some(mut first) = toks.next() else { return false };
    if is_timestamp(first) {
        match toks.next() {
            Some(f) => first = f,
            None => return false,
        }
    }
    if !VERBS.contains(&first) {
        return false;
    }
    matches!(toks.next(), Some("-" | "resource" | "device" | "connection" | "peer-device" | "path" | "helper"))
}

/// Parse a whole events2 stream.
pub fn parse(lines: &[Line<'_>]) -> Result<DrbdState, ParseError> {
    let mut p = Events2::default();
    let mut pending: Option<(usize, String, &str)> = None; // joined wrapped lines
    for &(no, raw) in lines {
        if raw.trim().is_empty() || raw.trim() == "..." {
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            match pending.as_mut() {
                Some((_, buf, _)) => {
                    buf.push(' ');
                    buf.push_str(raw.trim());
                    continue;
                }
                None => return Err(ParseError::new(no, raw, "indented line before any event line")),
            }
        }
        if let Some((pno, buf, praw)) = pending.take() {
            p.line(&buf, (pno, praw))?;
        }
        if lines_may_wrap(lines, no) {
            pending = Some((no, raw.to_string(), raw));
        } else {
            p.line(raw, (no, raw))?;
        }
    }
    if let Some((pno, buf, praw)) = pending.take() {
        p.line(&buf, (pno, praw))?;
    }
    Ok(p.st)
}

/// Only buffer a line when the next one is a continuation (keeps the common case copy-free).
fn lines_may_wrap(lines: &[Line<'_>], no: usize) -> bool {
    let first = lines.first().map_or(0, |l| l.0);
    let idx = no.wrapping_sub(first) + 1;
    lines.get(idx).is_some_and(|(_, l)| l.starts_with([' ', '\t']) && !l.trim().is_empty())
}

/// Incremental events2 reader: feed it lines as they come (`drbdsetup events2` follow mode).
#[derive(Debug, Default)]
pub struct Events2 {
    pub st: DrbdState,
    /// `exists -` seen: the initial state is complete.
    pub initial_done: bool,
}

impl Events2 {
    /// Apply one event line. `line` is used for error messages.
    pub fn line(&mut self, text: &str, line: Line<'_>) -> Result<(), ParseError> {
        let clean = strip_ansi(text);
        let mut toks = clean.split_whitespace();
        let mut verb = toks.next().unwrap_or("");
        let mut ts = None;
        if is_timestamp(verb) {
            ts = Some(verb.to_string());
            verb = toks.next().unwrap_or("");
        }
        if !VERBS.contains(&verb) {
            return Err(ParseError::new(
                line.0,
                line.1,
                format!("expected an event (exists/create/change/destroy/call/response), found {verb:?}"),
            ));
        }
        let obj = toks.next().unwrap_or("");
        if obj == "-" {
            self.initial_done = true;
            return Ok(());
        }
        // collect key:value pairs; --diff values count by their new value
        let mut name = None;
        let mut peer = None;
        let mut peer_id = None;
        let mut vnr = None;
        let mut rest: Vec<(&str, &str)> = Vec::with_capacity(16);
        for tok in toks {
            let Some((k, v)) = kv(tok) else {
                return Err(ParseError::new(line.0, line.1, format!("expected key:value, found {tok:?}")));
            };
            let v = match v.rfind("->") {
                Some(i) => &v[i + 2..],
                None => v,
            };
            match k {
                "name" => name = Some(v),
                "conn-name" => peer = Some(v),
                "peer-node-id" => peer_id = Some(num::<u32>(v, k, line)?),
                "volume" => vnr = Some(num::<u32>(v, k, line)?),
                _ => rest.push((k, v)),
            }
        }
        let Some(name) = name else {
            return Err(ParseError::new(line.0, line.1, format!("`{verb} {obj}` without `name:`")));
        };
        let destroy = verb == "destroy";
        match obj {
            "resource" => {
                if destroy {
                    self.st.resources.retain(|r| r.name != name);
                    return Ok(());
                }
                let r = self.st.resource_mut(name);
                for (k, v) in rest {
                    match k {
                        "role" => r.role = Some(Role::parse(v)),
                        "suspended" => r.suspended = Some(v != "no"),
                        "node-id" => r.node_id = Some(num(v, k, line)?),
                        _ => {}
                    }
                }
            }
            "device" => {
                let vnr = vnr.ok_or_else(|| ParseError::new(line.0, line.1, "device event without `volume:`"))?;
                if destroy {
                    if let Some(r) = self.st.resources.iter_mut().find(|r| r.name == name) {
                        r.volumes.retain(|v| v.volume != vnr);
                    }
                    return Ok(());
                }
                let vol = self.st.resource_mut(name).volume_mut(vnr);
                for (k, v) in rest {
                    apply_volume_kv(vol, k, v, line)?;
                }
            }
            "connection" | "peer-device" | "path" => {
                if peer.is_none() && peer_id.is_none() {
                    return Err(ParseError::new(
                        line.0,
                        line.1,
                        format!("{obj} event without `conn-name:` or `peer-node-id:`"),
                    ));
                }
                if destroy {
                    if let Some(r) = self.st.resources.iter_mut().find(|r| r.name == name) {
                        let hit = |c: &Connection| {
                            (peer.is_some() && c.peer.as_deref() == peer)
                                || (peer_id.is_some() && c.peer_node_id == peer_id)
                        };
                        match obj {
                            "connection" => r.connections.retain(|c| !hit(c)),
                            "peer-device" => {
                                for c in r.connections.iter_mut().filter(|c| hit(c)) {
                                    c.peer_devices.retain(|p| Some(p.volume) != vnr);
                                }
                            }
                            _ => {}
                        }
                    }
                    return Ok(());
                }
                let c = self.st.resource_mut(name).connection_mut(peer, peer_id);
                match obj {
                    "connection" => {
                        for (k, v) in rest {
                            apply_conn(c, k, v, line)?;
                        }
                    }
                    "peer-device" => {
                        let vnr =
                            vnr.ok_or_else(|| ParseError::new(line.0, line.1, "peer-device event without `volume:`"))?;
                        let pd = c.peer_device_mut(vnr);
                        for (k, v) in rest {
                            apply_peer_dev(pd, k, v, line)?;
                        }
                    }
                    _ => {
                        // path: local/peer addresses
                        for (k, v) in rest {
                            match k {
                                "local" => c.local_addr = Some(v.to_string()),
                                "peer" => c.peer_addr = Some(v.to_string()),
                                _ => {}
                            }
                        }
                    }
                }
            }
            "helper" => {
                let helper = rest.iter().find(|(k, _)| *k == "helper").map(|(_, v)| v.to_string());
                let Some(helper) = helper else {
                    return Err(ParseError::new(line.0, line.1, "helper event without `helper:`"));
                };
                let status = match rest.iter().find(|(k, _)| *k == "status") {
                    Some((_, v)) => Some(num::<i32>(v, "status", line)?),
                    None => None,
                };
                if verb == "response" {
                    if let Some(h) = self.st.helpers.iter_mut().rev().find(|h| {
                        h.resource == name && h.helper == helper && h.status.is_none() && h.volume == vnr
                    }) {
                        h.status = status;
                        return Ok(());
                    }
                }
                self.st.helpers.push(HelperCall {
                    resource: name.to_string(),
                    peer: peer.map(str::to_string),
                    volume: vnr,
                    helper,
                    status,
                    timestamp: ts,
                });
            }
            other => {
                return Err(ParseError::new(line.0, line.1, format!("unknown events2 object {other:?}")));
            }
        }
        Ok(())
    }
}

fn apply_volume_kv(vol: &mut Volume, k: &str, v: &str, line: Line<'_>) -> Result<(), ParseError> {
    if k != "backing_dev" {
        return apply_volume(vol, k, v, line);
    }
    match k {
        "minor" => vol.minor = Some(num(v, k, line)?),
        "disk" => vol.disk = Some(DiskState::parse(v)),
        "open" => vol.open = yes_no(v),
        "quorum" => vol.quorum = yes_no(v),
        "size" => vol.size_kib = Some(num(v, k, line)?),
        "backing_dev" => vol.backing_dev = if v == "none" { None } else { Some(v.to_string()) },
        _ => {
            if let Ok(n) = v.parse::<u64>() {
                vol.stats.insert(k.to_string(), n);
            }
        }
    }
    Ok(())
}

