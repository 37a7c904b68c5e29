//! Proxmox VE's HA files: `/etc/pve/ha/resources.cfg`, `groups.cfg`, `rules.cfg`,
//! `manager_status`, `/etc/pve/datacenter.cfg`, and the cluster facts the HA checks need from
//! `/etc/pve/corosync.conf` (nodes, two_node, a quorum device) and `ha/fence.cfg`.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::section::{self, SyntaxError};
use super::{parse_groups, parse_rules};
use crate::ha::model::{Datacenter, HaConfig, RequestState, ServiceConf, Span};
use crate::ha::state::{LrmStatus, ManagerStatus};

fn err(span: Span, msg: impl Into<String>) -> SyntaxError {
    SyntaxError { line: span.line, col: span.col, msg: msg.into() }
}

/// resources.cfg: `vm: 100` / `ct: 200` sections (state defaults to `started`).
pub fn parse_resources(text: &str) -> Result<BTreeMap<String, ServiceConf>, SyntaxError> {
    let mut out = BTreeMap::new();
    for s in section::parse(text)? {
        if s.kind != "vm" && s.kind != "ct" {
            return Err(err(Span { col: 1, ..s.span }, format!("unknown resource type `{}` (expected vm or ct)", s.kind)));
        }
        if s.id.parse::<u32>().map_or(true, |n| n < 100) {
            return Err(err(s.span, format!("`{}` is not a guest id (a number of 100 or more)", s.id)));
        }
        let sid = format!("{}:{}", s.kind, s.id);
        if out.contains_key(&sid) {
            return Err(err(s.span, format!("resource {sid} is defined twice")));
        }
        let mut c = ServiceConf::new(&sid, "", RequestState::Started);
        c.span = s.span;
        for p in &s.props {
            let num = || p.value.parse::<u32>().map_err(|_| err(p.span, format!("{}: expected a number, found `{}`", p.key, p.value)));
            match p.key.as_str() {
                "state" => c.state = RequestState::parse(&p.value).ok_or_else(|| err(p.span, format!("state `{}`: expected started, stopped, disabled or ignored", p.value)))?,
                "group" => c.group = Some(p.value.clone()),
                "max_restart" => c.max_restart = num()?,
                "max_relocate" => c.max_relocate = num()?,
                "failback" => c.failback = section::parse_bool(&p.value).ok_or_else(|| err(p.span, "failback: expected 0 or 1"))?,
                "comment" => c.comment = Some(p.value.clone()),
                k => return Err(err(p.span, format!("unknown resource property `{k}` (expected state, group, max_restart, max_relocate, failback, comment)"))),
            }
        }
        out.insert(sid, c);
    }
    Ok(out)
}

/// The regression format's datacenter.cfg: `{"ha": {"shutdown_policy": "migrate"}, "crs": {...}}`.
pub fn parse_datacenter_json(text: &str) -> Result<Datacenter, serde_json::Error> {
    let v: serde_json::Value = serde_json::from_str(text)?;
    let s = |o: Option<&serde_json::Value>| o.and_then(|x| x.as_str().map(String::from).or_else(|| x.as_i64().map(|n| n.to_string())));
    Ok(Datacenter {
        shutdown_policy: s(v.pointer("/ha/shutdown_policy")),
        crs_ha: s(v.pointer("/crs/ha")),
        rebalance_on_start: s(v.pointer("/crs/ha-rebalance-on-start")).is_some_and(|x| x == "1" || x == "true"),
    })
}

/// datacenter.cfg in PVE's format (`ha: shutdown_policy=migrate`, `crs: ha=static,...`), or the
/// regression format's JSON when the text starts with `{`.
pub fn parse_datacenter(text: &str) -> Result<Datacenter, SyntaxError> {
    if text.trim_start().starts_with('{') {
        return Ok(parse_datacenter_json(text)?);
    }
    let mut d = Datacenter::default();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let Some((key, value)) = t.split_once(':') else {
            return Err(SyntaxError { line: i + 1, col: 1, msg: format!("expected `key: value`, found `{t}`") });
        };
        let col = line.find(value.trim()).map(|c| c + 1).unwrap_or(1);
        let items = value.trim().split(',').map(str::trim).filter(|s| !s.is_empty());
        match key.trim() {
            "ha" => {
                for it in items {
                    match it.split_once('=') {
                        Some(("shutdown_policy", v)) => d.shutdown_policy = Some(v.to_string()),
                        Some((_, _)) => {}
                        None => return Err(SyntaxError { line: i + 1, col, msg: format!("ha: expected key=value, found `{it}`") }),
                    }
                }
            }
            "crs" => {
                for it in items {
                    match it.split_once('=') {
                        Some(("ha", v)) => d.crs_ha = Some(v.to_string()),
                        Some(("ha-rebalance-on-start", v)) => d.rebalance_on_start = v == "1",
                        Some(_) => {}
                        None => return Err(SyntaxError { line: i + 1, col, msg: format!("crs: expected key=value, found `{it}`") }),
                    }
                }
            }
            _ => {}
        }
    }
    Ok(d)
}

/// The words of LINE with their byte offsets.
fn words_at(line: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                out.push((s, &line[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &line[s..]));
    }
    out
}

/// The leading word characters (Perl's `\w+`) of S.
fn perl_word(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// ha-manager's `ha/fence.cfg` (`device NAME[:N] AGENT ARGS...`, `connect NAME[:N] node=NODE
/// ARGS...`): the nodes a fence device is connected to. Names are read as ha-manager reads them:
/// the device name is its leading word characters and N defaults to 1; the node is the word
/// characters after `node=` (so `node=pve-1` connects `pve`, as in ha-manager, and `pve-1` stays
/// without hardware fencing). Errors are ha-manager's: a device declared twice, a connect before
/// its device or to an undeclared parallel device, a connect without `node=`, a node connected
/// twice. Lines that are not `device`/`connect` with at least three arguments are ignored, as
/// ha-manager ignores them (with a warning).
pub fn parse_fence_cfg(text: &str) -> Result<BTreeSet<String>, SyntaxError> {
    let mut devices: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let mut nodes = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let words = words_at(line);
        if words.len() < 4 || !matches!(words[0].1, "device" | "connect") {
            continue;
        }
        let at = |w: usize, msg: String| SyntaxError { line: i + 1, col: words[w].0 + 1, msg };
        let dev = words[1].1;
        let name = match perl_word(dev) {
            "" => dev.to_string(),
            w => w.to_string(),
        };
        let number = match dev[name.len()..].strip_prefix(':').map(|r| &r[..r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len())]) {
            Some(n) if !n.is_empty() && n != "0" => n.to_string(),
            _ => "1".to_string(),
        };
        if words[0].1 == "device" {
            if devices.contains_key(&(name.clone(), number.clone())) {
                return Err(at(1, format!("device '{name}:{number}' already declared")));
            }
            devices.insert((name, number), BTreeSet::new());
            continue;
        }
        if !devices.keys().any(|(n, _)| *n == name) {
            return Err(at(1, format!("device '{name}' must be declared before you can connect to it")));
        }
        let Some(connected) = devices.get_mut(&(name.clone(), number.clone())) else {
            return Err(at(1, format!("no parallel device '{name}:{number}' declared (declare it with `device {name}:{number} AGENT ARGS...` above)")));
        };
        let target = words[2].1;
        let Some(node) = target.find("node=").map(|k| perl_word(&target[k + 5..])).filter(|n| !n.is_empty()) else {
            return Err(at(2, format!("node=NODENAME needed to connect device '{name}' to a node, found `{target}`")));
        };
        if !connected.insert(node.to_string()) {
            return Err(at(2, format!("node '{node}' already connected to device '{name}:{number}'")));
        }
        nodes.insert(node.to_string());
    }
    Ok(nodes)
}

/// pmxcfs' `/etc/pve/.members` (`{"nodename": ..., "cluster": {"quorate": 1, ...}, "nodelist": ...}`):
/// this node's name and the cluster's quorum.
pub fn parse_members(text: &str) -> Result<(Option<String>, Option<bool>), SyntaxError> {
    let v: serde_json::Value = serde_json::from_str(text)?;
    let node = v.get("nodename").and_then(|n| n.as_str()).map(String::from);
    let quorate = v.get("cluster").and_then(|c| c.get("quorate")).and_then(|q| q.as_i64().or_else(|| q.as_bool().map(i64::from))).map(|q| q != 0);
    Ok((node, quorate))
}

/// Line and column of the first WORD in TEXT.
pub fn locate(text: &str, word: &str) -> Option<Span> {
    text.lines().enumerate().find_map(|(i, l)| l.find(word).map(|c| Span { line: i + 1, col: c + 1 }))
}

/// What the HA checks need to know about the cluster around the HA configuration.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ClusterFacts {
    /// The file the node list came from.
    pub source: String,
    pub nodes: Vec<String>,
    pub two_node: bool,
    /// A quorum device (corosync-qdevice / twonode's arbiter, cman's qdisk, or the arbiter gate).
    pub arbiter: bool,
    /// Hardware fencing configured for every node (None: not known).
    pub hardware_fencing: Option<bool>,
    /// The nodes known to have no hardware fencing (a power fence device), sorted.
    pub unfenced: Vec<String>,
}

/// A loaded `/etc/pve` (or a copy).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PveHa {
    pub dir: PathBuf,
    pub config: HaConfig,
    pub manager_status: Option<ManagerStatus>,
    /// node -> its LRM's status (`nodes/NODE/lrm_status`)
    pub lrm: BTreeMap<String, LrmStatus>,
    pub cluster: ClusterFacts,
    /// pmxcfs' `.members`: this node's name and whether the cluster is quorate (None: no
    /// `.members`, e.g. a copy of /etc/pve).
    pub local_node: Option<String>,
    pub quorate: Option<bool>,
    /// The nodes ha/fence.cfg connects a fence device to.
    pub fenced_nodes: BTreeSet<String>,
    /// Where datacenter.cfg sets `shutdown_policy` (for findings about it).
    pub shutdown_policy_at: Span,
    /// file name -> its text, for line:col findings
    #[serde(skip)]
    pub texts: BTreeMap<String, String>,
}

fn read_opt(p: &Path) -> Result<Option<String>, String> {
    match std::fs::read_to_string(p) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", p.display())),
    }
}

/// Load the HA configuration of a Proxmox VE cluster file system rooted at DIR (`/etc/pve`).
/// Errors name the file, the line and column, and what was expected.
pub fn load_pve(dir: &Path) -> Result<PveHa, String> {
    let mut h = PveHa { dir: dir.to_path_buf(), ..Default::default() };
    let at = |rel: &str, e: SyntaxError| format!("{}:{}:{}: {}", dir.join(rel).display(), e.line, e.col, e.msg);
    if let Some(t) = read_opt(&dir.join("ha/resources.cfg"))? {
        h.config.services = parse_resources(&t).map_err(|e| at("ha/resources.cfg", e))?;
        h.texts.insert("ha/resources.cfg".into(), t);
    }
    if let Some(t) = read_opt(&dir.join("ha/groups.cfg"))? {
        h.config.groups = parse_groups(&t).map_err(|e| at("ha/groups.cfg", e))?;
        h.texts.insert("ha/groups.cfg".into(), t);
    }
    if let Some(t) = read_opt(&dir.join("ha/rules.cfg"))? {
        h.config.rules = parse_rules(&t).map_err(|e| at("ha/rules.cfg", e))?;
        h.texts.insert("ha/rules.cfg".into(), t);
    }
    if let Some(t) = read_opt(&dir.join("datacenter.cfg"))? {
        h.config.datacenter = parse_datacenter(&t).map_err(|e| at("datacenter.cfg", e))?;
        h.shutdown_policy_at = locate(&t, "shutdown_policy").unwrap_or_default();
    }
    if let Some(t) = read_opt(&dir.join("ha/manager_status"))? {
        let ms: ManagerStatus = serde_json::from_str(&t).map_err(|e| format!("{}:{}:{}: {e}", dir.join("ha/manager_status").display(), e.line(), e.column()))?;
        h.manager_status = Some(ms);
    }
    if let Some(t) = read_opt(&dir.join("corosync.conf"))? {
        let c = crate::quorum::corosync_conf::CorosyncConf::parse(&t).map_err(|e| format!("{}: {e}", dir.join("corosync.conf").display()))?;
        let q = c.quorum_config("corosync.conf").map_err(|e| format!("{}: {e}", dir.display()))?;
        h.cluster.source = dir.join("corosync.conf").display().to_string();
        h.cluster.nodes = q.nodes.iter().filter_map(|n| n.name.clone()).collect();
        h.cluster.two_node = q.two_node;
        h.cluster.arbiter = q.device.is_some();
    }
    if let Some(t) = read_opt(&dir.join(".members"))? {
        let (node, quorate) = parse_members(&t).map_err(|e| at(".members", e))?;
        h.local_node = node;
        h.quorate = quorate;
    }
    // ha-manager's hardware fencing: a node is covered when a device is `connect`ed to it
    let fenced = match read_opt(&dir.join("ha/fence.cfg"))? {
        Some(t) => parse_fence_cfg(&t).map_err(|e| at("ha/fence.cfg", e))?,
        None => BTreeSet::new(),
    };
    h.fenced_nodes = fenced;
    let nodes: Vec<String> = if h.cluster.nodes.is_empty() {
        std::fs::read_dir(dir.join("nodes")).map(|rd| rd.flatten().filter_map(|e| e.file_name().to_str().map(String::from)).collect()).unwrap_or_default()
    } else {
        h.cluster.nodes.clone()
    };
    for n in &nodes {
        if let Some(t) = read_opt(&dir.join("nodes").join(n).join("lrm_status"))? {
            if let Ok(s) = serde_json::from_str::<LrmStatus>(&t) {
                h.lrm.insert(n.clone(), s);
            }
        }
    }
    if h.cluster.nodes.is_empty() {
        h.cluster.nodes = nodes;
    }
    h.cluster.nodes.sort();
    h.cluster.unfenced = h.cluster.nodes.iter().filter(|n| !h.fenced_nodes.contains(*n)).cloned().collect();
    h.cluster.hardware_fencing = Some(if h.cluster.nodes.is_empty() { !h.fenced_nodes.is_empty() } else { h.cluster.unfenced.is_empty() });
    // resources.cfg does not say where a guest is: its config's directory does (nodes/NODE/...),
    // else the manager's last word
    for (sid, c) in h.config.services.iter_mut() {
        let Some((kind, id)) = sid.split_once(':') else { continue };
        let sub = if kind == "ct" { "lxc" } else { "qemu-server" };
        if let Some(n) = h.cluster.nodes.iter().find(|n| dir.join("nodes").join(n.as_str()).join(sub).join(format!("{id}.conf")).is_file()) {
            c.node = n.clone();
        } else if let Some(n) = h.manager_status.as_ref().and_then(|m| m.service_status.get(sid)).and_then(|s| s.node.clone()) {
            c.node = n;
        }
    }
    Ok(h)
}

/// Local storage types: a disk there exists on one node (plus its replication targets).
const LOCAL_TYPES: &[&str] = &["dir", "lvm", "lvmthin", "zfspool", "btrfs"];

/// Where each HA guest's disks can be reached, from `storage.cfg` (a storage's `nodes`, local
/// types and `shared`), the guest configs under `nodes/*/{qemu-server,lxc}/ID.conf` and
/// `replication.cfg` (a local disk replicated to a target is there too). Guests without a config
/// here are left out (nothing known).
pub fn load_storage(h: &PveHa) -> crate::ha::validate::StorageFacts {
    let mut out = crate::ha::validate::StorageFacts::default();
    let dir = &h.dir;
    let all: BTreeSet<String> = h.cluster.nodes.iter().cloned().collect();
    // storage id -> (type, nodes restriction, shared)
    let mut storages: BTreeMap<String, (String, Option<BTreeSet<String>>, bool)> = BTreeMap::new();
    if let Ok(Some(t)) = read_opt(&dir.join("storage.cfg")) {
        if let Ok(secs) = section::parse(&t) {
            for s in secs {
                let nodes = s.get("nodes").map(|p| p.value.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect());
                let shared = s.get("shared").is_some_and(|p| p.value == "1");
                storages.insert(s.id.clone(), (s.kind.clone(), nodes, shared));
            }
        }
    }
    // guest id -> replication targets
    let mut targets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    if let Ok(Some(t)) = read_opt(&dir.join("replication.cfg")) {
        if let Ok(secs) = section::parse(&t) {
            for s in secs {
                let guest = s.id.split('-').next().unwrap_or("").to_string();
                if let Some(p) = s.get("target") {
                    targets.entry(guest).or_default().insert(p.value.clone());
                }
            }
        }
    }
    for sid in h.config.services.keys() {
        let Some((kind, id)) = sid.split_once(':') else { continue };
        let sub = if kind == "ct" { "lxc" } else { "qemu-server" };
        let mut found = None;
        for n in &h.cluster.nodes {
            if let Ok(Some(t)) = read_opt(&dir.join("nodes").join(n).join(sub).join(format!("{id}.conf"))) {
                found = Some((n.clone(), t));
                break;
            }
        }
        let Some((home, text)) = found else { continue };
        let mut reach = all.clone();
        let mut names = Vec::new();
        for line in text.lines().take_while(|l| !l.trim_start().starts_with('[')) {
            let Some((k, v)) = line.split_once(':') else { continue };
            let base = k.trim().trim_end_matches(|c: char| c.is_ascii_digit());
            if !matches!(base, "ide" | "sata" | "scsi" | "virtio" | "efidisk" | "tpmstate" | "mp" | "rootfs") {
                continue;
            }
            let v = v.trim();
            if v.starts_with("none") || v.contains("media=cdrom") {
                continue;
            }
            let Some((st, _)) = v.split_once(':') else { continue };
            let Some((ty, restrict, shared)) = storages.get(st) else { continue };
            let mut here: BTreeSet<String> = restrict.clone().unwrap_or_else(|| all.clone());
            if LOCAL_TYPES.contains(&ty.as_str()) && !shared {
                let mut on: BTreeSet<String> = BTreeSet::from([home.clone()]);
                on.extend(targets.get(id).cloned().unwrap_or_default());
                here = here.intersection(&on).cloned().collect();
            }
            reach = reach.intersection(&here).cloned().collect();
            if !names.contains(&st.to_string()) {
                names.push(st.to_string());
            }
        }
        if !names.is_empty() {
            out.reachable.insert(sid.clone(), (reach, names));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_and_datacenter() {
        let r = parse_resources("vm: 100\n\tgroup g\n\tmax_restart 2\n\nct: 200\n\tstate stopped\n").unwrap();
        assert_eq!(r["vm:100"].max_restart, 2);
        assert_eq!(r["ct:200"].state, RequestState::Stopped);
        let e = parse_resources("vm: 100\n\tstate runing\n").unwrap_err();
        assert_eq!((e.line, e.col), (2, 2));
        assert!(e.msg.contains("expected started"));
        let d = parse_datacenter("keyboard: en-us\nha: shutdown_policy=migrate\ncrs: ha=static,ha-rebalance-on-start=1\n").unwrap();
        assert_eq!(d.shutdown_policy.as_deref(), Some("migrate"));
        assert!(d.rebalance_on_start);
        assert_eq!(parse_datacenter(r#"{"ha": {"shutdown_policy": "freeze"}}"#).unwrap().shutdown_policy.as_deref(), Some("freeze"));
    }

    #[test]
    fn fence_cfg_names_as_ha_manager_reads_them() {
        let t = "device bmc fence_ipmilan ip=192.0.2.1\n  device bmc:2 fence_ipmilan ip=192.0.2.2\nconnect bmc node=node1 plug=1\nconnect bmc:2 node=pve-2 plug=2\nnonsense line\n";
        assert_eq!(parse_fence_cfg(t).unwrap(), BTreeSet::from(["node1".to_string(), "pve".to_string()]));
        // bmc:0 and bmc:1 are the same device for ha-manager
        let e = parse_fence_cfg("device bmc:0 a b\ndevice bmc a b\n").unwrap_err();
        assert_eq!((e.line, e.col, e.msg.as_str()), (2, 8, "device 'bmc:1' already declared"));
        let e = parse_fence_cfg("device bmc a b\nconnect   bmc:3 node=n x\n").unwrap_err();
        assert_eq!((e.line, e.col), (2, 11));
        assert!(e.msg.starts_with("no parallel device 'bmc:3' declared"), "{}", e.msg);
        let e = parse_fence_cfg("device bmc a b\nconnect bmc node=n x\nconnect bmc node=n y\n").unwrap_err();
        assert_eq!((e.line, e.col, e.msg.as_str()), (3, 13, "node 'n' already connected to device 'bmc:1'"));
    }
}
