//! `drbdsetup status --json` and `drbdsetup show --json` (DRBD 9).
use super::{Line, ParseError};
use crate::drbd::state::*;
use serde_json::Value;

fn load(lines: &[Line<'_>]) -> Result<Value, ParseError> {
    let first = lines.first().map_or(1, |l| l.0);
    let text: String = lines.iter().map(|l| l.1).collect::<Vec<_>>().join("\n");
    serde_json::from_str(&text).map_err(|e| {
        let idx = e.line().saturating_sub(1);
        let content = lines.get(idx).map_or("", |l| l.1);
        ParseError::new(first + idx, content, format!("invalid JSON: {e}"))
    })
}

fn err_at(lines: &[Line<'_>], msg: impl Into<String>) -> ParseError {
    let (no, l) = lines.first().copied().unwrap_or((1, ""));
    ParseError::new(no, l, msg)
}

fn items(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![v],
        _ => vec![],
    }
}

fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}
fn u(v: &Value, k: &str) -> Option<u64> {
    v.get(k).and_then(|x| x.as_u64().or_else(|| x.as_str().and_then(|s| s.parse().ok())))
}
fn b(v: &Value, k: &str) -> Option<bool> {
    v.get(k).and_then(|x| x.as_bool().or_else(|| x.as_str().and_then(super::yes_no)))
}
fn u32_of(v: &Value, k: &str) -> Option<u32> {
    u(v, k).and_then(|x| u32::try_from(x).ok())
}

fn stats(v: &Value, skip: &[&str]) -> std::collections::BTreeMap<String, u64> {
    let mut m = std::collections::BTreeMap::new();
    if let Value::Object(o) = v {
        for (k, x) in o {
            if skip.contains(&k.as_str()) {
                continue;
            }
            if let Some(n) = x.as_u64() {
                m.insert(k.clone(), n);
            }
        }
    }
    m
}

/// `drbdsetup status --json`.
pub fn parse_status(lines: &[Line<'_>]) -> Result<DrbdState, ParseError> {
    let root = load(lines)?;
    let list = items(&root);
    if list.is_empty() && !root.is_array() {
        return Err(err_at(lines, "expected a JSON array of resources"));
    }
    let mut st = DrbdState { generation: Some(Generation::V9), ..Default::default() };
    for r in list {
        let Some(name) = s(r, "name") else {
            return Err(err_at(lines, "a resource in the JSON has no \"name\""));
        };
        let mut res = Resource {
            name: name.to_string(),
            node_id: u32_of(r, "node-id"),
            role: s(r, "role").map(Role::parse),
            suspended: b(r, "suspended"),
            ..Default::default()
        };
        for d in r.get("devices").map(items).unwrap_or_default() {
            let vnr = u32_of(d, "volume").unwrap_or(0);
            let vol = res.volume_mut(vnr);
            vol.minor = u32_of(d, "minor");
            vol.disk = s(d, "disk-state").map(DiskState::parse);
            vol.quorum = b(d, "quorum");
            vol.open = b(d, "open");
            vol.size_kib = u(d, "size");
            vol.stats = stats(d, &["volume", "minor", "size"]);
        }
        for c in r.get("connections").map(items).unwrap_or_default() {
            let conn = res.connection_mut(s(c, "name"), u32_of(c, "peer-node-id"));
            conn.state = s(c, "connection-state").map(ConnState::parse);
            conn.peer_role = s(c, "peer-role").map(Role::parse);
            conn.congested = b(c, "congested");
            let pds = c.get("peer_devices").or_else(|| c.get("peer-devices"));
            for p in pds.map(items).unwrap_or_default() {
                let vnr = u32_of(p, "volume").unwrap_or(0);
                let pd = conn.peer_device_mut(vnr);
                pd.replication = s(p, "replication-state").map(ReplState::parse);
                pd.peer_disk = s(p, "peer-disk-state").map(DiskState::parse);
                pd.out_of_sync_kib = u(p, "out-of-sync");
                pd.resync_suspended = s(p, "resync-suspended").map(str::to_string);
                if b(p, "has-sync-details") == Some(true) {
                    let sp = pd.sync.get_or_insert_with(SyncProgress::default);
                    sp.done_percent = p.get("percent-in-sync").and_then(Value::as_f64);
                    sp.eta_seconds = u(p, "estimated-seconds-to-finish");
                }
                pd.stats = stats(p, &["volume", "out-of-sync"]);
            }
        }
        st.resources.push(res);
    }
    Ok(st)
}

/// `drbdsetup show --json`: configuration plus each connection's `_cstate`.
pub fn parse_show(lines: &[Line<'_>]) -> Result<DrbdState, ParseError> {
    let root = load(lines)?;
    let mut st = DrbdState { generation: Some(Generation::V9), ..Default::default() };
    for r in items(&root) {
        let Some(name) = s(r, "resource") else {
            return Err(err_at(lines, "a resource in the JSON has no \"resource\" name"));
        };
        let mut cfg = ResourceConfig { name: name.to_string(), ..Default::default() };
        let mut res = Resource { name: name.to_string(), ..Default::default() };
        flatten_options(&mut cfg, "options", r.get("options"));
        if let Some(h) = r.get("_this_host") {
            let mut host = HostConfig { name: "_this_host".into(), node_id: u32_of(h, "node-id"), ..Default::default() };
            res.node_id = host.node_id;
            for v in h.get("volumes").map(items).unwrap_or_default() {
                let vc = VolumeConfig {
                    volume: u32_of(v, "volume_nr").unwrap_or(0),
                    minor: u32_of(v, "device_minor"),
                    device: u32_of(v, "device_minor").map(|m| format!("/dev/drbd{m}")),
                    disk: s(v, "backing-disk").map(str::to_string),
                    meta_disk: s(v, "meta-disk").map(str::to_string),
                };
                let vol = res.volume_mut(vc.volume);
                vol.minor = vc.minor;
                host.volumes.push(vc);
                flatten_options(&mut cfg, "disk", v.get("disk"));
            }
            cfg.hosts.push(host);
        }
        for c in r.get("connections").map(items).unwrap_or_default() {
            let id = u32_of(c, "_peer_node_id");
            let conn = res.connection_mut(None, id);
            conn.peer_node_id = id;
            conn.state = s(c, "_cstate").map(ConnState::parse);
            flatten_options(&mut cfg, "net", c.get("net"));
            if let Some(n) = c.get("net") {
                cfg.net.allow_two_primaries = b(n, "allow-two-primaries");
                cfg.net.after_sb_0pri = s(n, "after-sb-0pri").map(str::to_string);
                cfg.net.after_sb_1pri = s(n, "after-sb-1pri").map(str::to_string);
                cfg.net.after_sb_2pri = s(n, "after-sb-2pri").map(str::to_string);
                cfg.net.protocol = s(n, "protocol").map(str::to_string);
                cfg.net.fencing = s(n, "fencing").map(str::to_string);
            }
            cfg.hosts.push(HostConfig {
                name: format!("peer node-id {}", id.map_or("?".to_string(), |i| i.to_string())),
                node_id: id,
                ..Default::default()
            });
        }
        st.configs.push(cfg);
        st.resources.push(res);
    }
    Ok(st)
}

fn flatten_options(cfg: &mut ResourceConfig, section: &str, v: Option<&Value>) {
    if let Some(Value::Object(o)) = v {
        for (k, x) in o {
            let val = match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            cfg.options.insert(format!("{section}.{k}"), val);
        }
    }
}
