//! `drbdadm role|cstate|dstate` output.
//!
//! 8.4 prints `Local/Peer` (`Primary/Secondary`, `UpToDate/DUnknown`, and a bare `Connected`
//! for cstate); 9 prints the local value only: role once, dstate once per volume, cstate once per
//! connection. Each line is classified by its words (role, disk state and connection state names
//! do not overlap), or by the command of the prompt line above it when there is one.
use super::{Hints, Line, ParseError};
use crate::drbd::state::*;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Role,
    Disk,
    Conn,
}

fn kind_of(w: &str) -> Option<Kind> {
    if Role::parse(w).is_known() {
        return Some(Kind::Role);
    }
    if DiskState::parse(w).is_known() {
        return Some(Kind::Disk);
    }
    let (cs, repl) = ConnState::from_v8_cstate(w);
    if cs.is_known() || repl.is_some() {
        return Some(Kind::Conn);
    }
    None
}

fn classify(t: &str) -> Option<(Kind, &str, Option<&str>)> {
    let t = t.trim();
    if t.contains(char::is_whitespace) {
        return None;
    }
    match t.split_once('/') {
        Some((a, b)) => {
            let ka = kind_of(a)?;
            let kb = kind_of(b)?;
            (ka == kb).then_some((ka, a, Some(b)))
        }
        None => kind_of(t).map(|k| (k, t, None)),
    }
}

pub fn looks_like(t: &str) -> bool {
    classify(t).is_some()
}

pub fn parse(lines: &[Line<'_>], hints: &Hints) -> Result<DrbdState, ParseError> {
    let mut st = DrbdState::default();
    let mut res = Resource { name: hints.resource.clone().unwrap_or_default(), ..Default::default() };
    let (mut ndisk, mut nconn) = (0u32, 0usize);
    let base_vol = hints.volume.unwrap_or(0);
    for &(no, raw) in lines {
        let t = raw.trim();
        if t.is_empty() {
            continue;
        }
        let Some((kind, local, peer)) = classify(t) else {
            return Err(ParseError::new(
                no,
                raw,
                "expected a role, connection state or disk state (e.g. Primary/Secondary, Connected, UpToDate)",
            ));
        };
        if peer.is_some() {
            st.generation.get_or_insert(Generation::V8);
        }
        match kind {
            Kind::Role => {
                res.role = Some(Role::parse(local));
                if let Some(p) = peer {
                    res.connection_mut(hints.peer.as_deref(), hints.peer_node_id).peer_role = Some(Role::parse(p));
                }
            }
            Kind::Disk => {
                let vnr = base_vol + ndisk;
                ndisk += 1;
                res.volume_mut(vnr).disk = Some(DiskState::parse(local));
                if let Some(m) = hints.minor {
                    res.volume_mut(vnr).minor = Some(m);
                }
                if let Some(p) = peer {
                    res.connection_mut(hints.peer.as_deref(), hints.peer_node_id).peer_device_mut(vnr).peer_disk =
                        Some(DiskState::parse(p));
                }
            }
            Kind::Conn => {
                let (cs, repl) = ConnState::from_v8_cstate(local);
                // 9 prints one line per connection; without names they are told apart by order
                let c = if nconn == 0 {
                    res.connection_mut(hints.peer.as_deref(), hints.peer_node_id)
                } else {
                    res.connections.push(Connection::default());
                    let n = res.connections.len() - 1;
                    &mut res.connections[n]
                };
                nconn += 1;
                c.state = Some(cs);
                // a bare `Connected` says nothing about replication (9 prints connection states only)
                if let Some(r) = repl.filter(|_| local != "Connected") {
                    c.peer_device_mut(base_vol).replication = Some(r);
                }
            }
        }
    }
    st.resources.push(res);
    Ok(st)
}
