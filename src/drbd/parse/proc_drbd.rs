//! `/proc/drbd` of DRBD 8.0 - 8.4 (and the version-only file of 9).
//!
//! ```text
//! version: 8.4.2 (api:1/proto:86-101)
//!  0: cs:SyncSource ro:Secondary/Secondary ds:UpToDate/Inconsistent C r---n-
//!     ns:716992 nr:0 dw:0 dr:719432 al:0 bm:43 lo:0 pe:33 ua:18 ap:0 ep:1 wo:f oos:335744
//!         [============>.......] sync'ed: 68.5% (335744/1048576)K
//!         finish: 0:00:05 speed: 64,800 (64,800) K/sec
//! ```
//! 8.0 prints `st:` instead of `ro:`; 8.0/8.3 add `resync:`/`act_log:` lines; some kernels glue
//! `finish:` onto the progress line.
use super::{kv, num, Line, ParseError};
use crate::drbd::state::*;

/// The first meaningful line looks like /proc/drbd.
pub fn looks_like(t: &str) -> bool {
    if t.starts_with("version: ") || t.starts_with("GIT-hash:") || t.starts_with("srcversion:") {
        return true;
    }
    minor_line(t).is_some()
}

/// `N: cs:...` → (minor, rest after "cs:")
fn minor_line(t: &str) -> Option<(u32, &str)> {
    let t = t.trim_start();
    let colon = t.find(':')?;
    let minor: u32 = t[..colon].parse().ok()?;
    let rest = t[colon + 1..].trim_start();
    let rest = rest.strip_prefix("cs:")?;
    Some((minor, rest))
}

pub fn parse(lines: &[Line<'_>]) -> Result<DrbdState, ParseError> {
    let mut st = DrbdState::default();
    // index of the resource of the current minor
    let mut cur: Option<usize> = None;
    for &(no, raw) in lines {
        let line = (no, raw);
        let t = raw.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(v) = t.strip_prefix("version:") {
            let ver = v.split_whitespace().next().unwrap_or("").to_string();
            if !ver.is_empty() {
                st.generation = match ver.split('.').next() {
                    Some("9") => Some(Generation::V9),
                    Some("8") => Some(Generation::V8),
                    _ => None,
                };
                st.version = Some(ver);
            }
            continue;
        }
        if t.starts_with("GIT-hash:")
            || t.starts_with("srcversion:")
            || t.starts_with("Transports")
            || t.starts_with("resync:")
            || t.starts_with("act_log:")
            || t.contains("% sector pos:")
        {
            continue;
        }
        if let Some((minor, rest)) = minor_line(t) {
            st.generation.get_or_insert(Generation::V8);
            let mut res = Resource::default();
            let mut toks = rest.split_whitespace();
            let cs = toks.next().unwrap_or("");
            if cs.is_empty() {
                return Err(ParseError::new(no, raw, "`cs:` without a connection state"));
            }
            res.volume_mut(0).minor = Some(minor);
            if cs == "Unconfigured" {
                res.unconfigured = true;
                st.resources.push(res);
                cur = Some(st.resources.len() - 1);
                continue;
            }
            let (conn_state, repl) = ConnState::from_v8_cstate(cs);
            let mut conn = Connection { state: Some(conn_state), ..Default::default() };
            let mut pd = PeerDevice { volume: 0, replication: repl, ..Default::default() };
            for tok in toks {
                match kv(tok) {
                    Some(("ro", v)) | Some(("st", v)) => {
                        let (l, p) = pair(v, line, "ro")?;
                        res.role = Some(Role::parse(l));
                        conn.peer_role = Some(Role::parse(p));
                    }
                    Some(("ds", v)) => {
                        let (l, p) = pair(v, line, "ds")?;
                        res.volume_mut(0).disk = Some(DiskState::parse(l));
                        pd.peer_disk = Some(DiskState::parse(p));
                    }
                    Some((_, _)) => {}
                    None => {
                        // protocol letter and the flag column (r-----, r---n-, s---); nothing else
                        let ok = matches!(tok, "A" | "B" | "C")
                            || tok.chars().all(|c| c.is_ascii_alphabetic() || c == '-');
                        if !ok {
                            return Err(ParseError::new(no, raw, format!("unexpected field {tok:?} in the state line")));
                        }
                    }
                }
            }
            if res.role.is_none() {
                return Err(ParseError::new(no, raw, "state line without `ro:` (or `st:`) roles"));
            }
            conn.peer_devices.push(pd);
            res.connections.push(conn);
            st.resources.push(res);
            cur = Some(st.resources.len() - 1);
            continue;
        }
        let Some(ci) = cur else {
            return Err(ParseError::new(no, raw, "expected `version:` or a `N: cs:` device line"));
        };
        let res = &mut st.resources[ci];
        if t.starts_with("ns:") {
            for tok in t.split_whitespace() {
                let Some((k, v)) = kv(tok) else {
                    return Err(ParseError::new(no, raw, format!("expected key:value, found {tok:?}")));
                };
                match k {
                    "oos" => {
                        let n: u64 = num(v, k, line)?;
                        if let Some(c) = res.connections.first_mut() {
                            c.peer_device_mut(0).out_of_sync_kib = Some(n);
                        } else {
                            res.volume_mut(0).stats.insert(k.to_string(), n);
                        }
                    }
                    "wo" => {} // write ordering letter (b/f/d/n)
                    _ => {
                        let n: u64 = num(v, k, line)?;
                        res.volume_mut(0).stats.insert(k.to_string(), n);
                    }
                }
            }
            continue;
        }
        if t.starts_with('[') || t.contains("sync'ed:") || t.contains("verified:") || t.starts_with("finish:") {
            let Some(c) = res.connections.first_mut() else {
                return Err(ParseError::new(no, raw, "resync progress for a device without a connection"));
            };
            let sync = c.peer_device_mut(0).sync.get_or_insert_with(SyncProgress::default);
            progress(t, sync, line)?;
            continue;
        }
        return Err(ParseError::new(no, raw, "unexpected line in /proc/drbd"));
    }
    Ok(st)
}

fn pair<'a>(v: &'a str, line: Line<'_>, key: &str) -> Result<(&'a str, &'a str), ParseError> {
    v.split_once('/')
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .ok_or_else(|| ParseError::new(line.0, line.1, format!("`{key}:` needs Local/Peer, found {v:?}")))
}

/// `[===>....] sync'ed: 34.9% (346112/524288)M` and/or `finish: 0:00:05 speed: 59,392 (59,392) K/sec`
fn progress(t: &str, s: &mut SyncProgress, line: Line<'_>) -> Result<(), ParseError> {
    let bad = |m: &str| ParseError::new(line.0, line.1, m.to_string());
    let mut rest = t;
    if let Some(i) = rest.find("sync'ed:").or_else(|| rest.find("verified:")) {
        let after = &rest[i..];
        let after = &after[after.find(':').map_or(0, |x| x + 1)..];
        let after = after.trim_start();
        let pct_end = after.find('%').ok_or_else(|| bad("progress without a percentage"))?;
        let pct: f64 = after[..pct_end].trim().parse().map_err(|_| bad("bad progress percentage"))?;
        s.done_percent = Some(pct);
        let after = &after[pct_end + 1..];
        if let (Some(o), Some(c)) = (after.find('('), after.find(')')) {
            if o < c {
                let inner = &after[o + 1..c];
                let unit = after[c + 1..].chars().next().unwrap_or('K');
                let mult: u64 = match unit {
                    'M' => 1024,
                    'G' => 1024 * 1024,
                    _ => 1,
                };
                if let Some((l, tot)) = inner.split_once('/') {
                    let l: u64 = l.trim().parse().map_err(|_| bad("bad (left/total) in progress line"))?;
                    let tot: u64 = tot.trim().parse().map_err(|_| bad("bad (left/total) in progress line"))?;
                    s.left_kib = Some(l.saturating_mul(mult));
                    s.total_kib = Some(tot.saturating_mul(mult));
                }
            }
        }
        rest = after;
    }
    if let Some(i) = rest.find("finish:") {
        let after = rest[i + 7..].trim_start();
        let eta = after.split_whitespace().next().unwrap_or("");
        let mut secs: u64 = 0;
        for part in eta.split(':') {
            let p: u64 = part.parse().map_err(|_| bad("bad `finish:` time"))?;
            secs = secs.saturating_mul(60).saturating_add(p);
        }
        s.eta_seconds = Some(secs);
        if let Some(j) = after.find("speed:") {
            let sp = after[j + 6..].split_whitespace().next().unwrap_or("").replace(',', "");
            if let Ok(v) = sp.parse::<u64>() {
                s.speed_kib_s = Some(v);
            }
        }
    }
    Ok(())
}
