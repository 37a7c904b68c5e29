//! get-gi / show-gi of 8.4 and 9 (`drbdadm get-gi r0`, `drbdmeta ... get-gi`, `drbdsetup get-gi`).
//!
//! ```text
//! 9E4DEF0B06A6DA9D:41C26508159C156A:CA64B93EC801717D:CA63B93EC801717D:1:1:1:0:0:0:0
//! ```
//! Four UUIDs (current, bitmap, history1, history2) then flags: 7 on 8.4 (consistent, was
//! up-to-date, primary, connected, full sync, peer out of date, crashed primary), 12 on 9
//! (consistent, up-to-date, primary, crashed primary, al clean, al disabled, primary lost quorum,
//! connected, peer out of date, fence policy, full sync, have backing). show-gi adds an ASCII-art
//! legend around the tuple and on 8.4 a `flags: Primary, StandAlone, UpToDate` line.
use super::{Hints, Line, ParseError};
use crate::drbd::state::*;

fn is_hex16(s: &str) -> bool {
    !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The GI tuple token of a line (after an optional `r0/0` or `bob:` style prefix token).
fn tuple_token(t: &str) -> Option<&str> {
    t.split_whitespace().find(|tok| {
        let mut parts = tok.split(':');
        (0..4).all(|_| parts.next().is_some_and(is_hex16))
    })
}

pub fn looks_like_get_gi(t: &str) -> bool {
    let mut toks = t.split_whitespace();
    match toks.next() {
        Some(first) => tuple_token(first).is_some() && toks.next().is_none(),
        None => false,
    }
}

pub fn looks_like_show_gi(t: &str) -> bool {
    t.starts_with("+--<") && t.contains("generation UUID")
}

/// Parse the tuple "CUR:BM:H1:H2[:flags...]".
pub fn parse_tuple(tok: &str, line: Line<'_>) -> Result<(Gi, usize), ParseError> {
    let parts: Vec<&str> = tok.split(':').collect();
    if parts.len() < 4 {
        return Err(ParseError::new(line.0, line.1, "a GI needs four UUIDs: CURRENT:BITMAP:HISTORY1:HISTORY2"));
    }
    let mut u = [0u64; 4];
    for (i, p) in parts.iter().take(4).enumerate() {
        if !is_hex16(p) {
            return Err(ParseError::new(line.0, line.1, format!("GI field {} is not a hex UUID: {p:?}", i + 1)));
        }
        u[i] = u64::from_str_radix(p, 16)
            .map_err(|_| ParseError::new(line.0, line.1, format!("GI field {} is not a hex UUID: {p:?}", i + 1)))?;
    }
    let mut flags = Vec::new();
    for p in &parts[4..] {
        match *p {
            "0" => flags.push(false),
            "1" => flags.push(true),
            _ => return Err(ParseError::new(line.0, line.1, format!("GI flag is not 0 or 1: {p:?}"))),
        }
    }
    let mut gi = Gi::new(u[0], u[1], u[2], u[3]);
    let f = |i: usize| flags.get(i).copied();
    gi.flags = match flags.len() {
        0 => None,
        // 8.4 (drbdmeta v08)
        n if n <= 7 => Some(GiFlags {
            consistent: f(0),
            was_up_to_date: f(1),
            primary: f(2),
            connected: f(3),
            full_sync: f(4),
            peer_out_of_date: f(5),
            crashed_primary: f(6),
        }),
        // 9 (drbdmeta v09)
        _ => Some(GiFlags {
            consistent: f(0),
            was_up_to_date: f(1),
            primary: f(2),
            crashed_primary: f(3),
            connected: f(7),
            peer_out_of_date: f(8),
            full_sync: f(10),
        }),
    };
    Ok((gi, flags.len()))
}

pub fn parse(lines: &[Line<'_>], hints: &Hints) -> Result<DrbdState, ParseError> {
    let mut st = DrbdState::default();
    let mut res = Resource { name: hints.resource.clone().unwrap_or_default(), ..Default::default() };
    let mut count = 0u32;
    for &(no, raw) in lines {
        let line = (no, raw);
        let t = raw.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(tok) = tuple_token(t) {
            let (gi, nflags) = parse_tuple(tok, line)?;
            match nflags {
                0 => {}
                n if n <= 7 => {
                    st.generation.get_or_insert(Generation::V8);
                }
                _ => {
                    st.generation.get_or_insert(Generation::V9);
                }
            }
            let vnr = hints.volume.unwrap_or(0) + count;
            count += 1;
            let vol = res.volume_mut(vnr);
            vol.gi = Some(gi);
            if let Some(m) = hints.minor {
                vol.minor = Some(m + (vnr - hints.volume.unwrap_or(0)));
            }
            continue;
        }
        // show-gi legend and trailers
        if looks_like_show_gi(t) {
            continue;
        }
        let art = t.chars().all(|c| matches!(c, '|' | 'V' | '^' | '+' | ' ' | '-'));
        if art || t.contains("-<") || t.starts_with("meta-data:") || t.starts_with("zero size device") {
            continue;
        }
        if let Some(fl) = t.strip_prefix("flags:") {
            // 8.4 show-gi: "flags: Primary, StandAlone, UpToDate"
            for w in fl.split(',').map(str::trim).filter(|w| !w.is_empty()) {
                let role = Role::parse(w);
                let disk = DiskState::parse(w);
                let cs = ConnState::parse(w);
                if role.is_known() && role != Role::Unknown {
                    res.role = Some(role);
                } else if disk.is_known() {
                    res.volume_mut(hints.volume.unwrap_or(0)).disk = Some(disk);
                } else if cs.is_known() {
                    res.connection_mut(hints.peer.as_deref(), hints.peer_node_id).state = Some(cs);
                }
            }
            continue;
        }
        return Err(ParseError::new(no, raw, "expected a GI tuple CURRENT:BITMAP:HISTORY1:HISTORY2[:flags]"));
    }
    if count == 0 {
        let (no, l) = lines.iter().find(|l| !l.1.trim().is_empty()).copied().unwrap_or((1, ""));
        return Err(ParseError::new(no, l, "no GI tuple found"));
    }
    st.resources.push(res);
    Ok(st)
}
