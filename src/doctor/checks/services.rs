//! HA services and their guests (cman/rgmanager; Proxmox `pvevm`): a service may only run on a
//! node where the DRBD resources it uses are configured (`ha.drbd-coherence`), and a guest left
//! locked blocks HA (`guest.lock`).
//!
//! Heuristics (best effort; an admin must know what they rest on):
//! * An HA service uses DRBD resource R when (a) the `<service>` holds an rgmanager `<drbd
//!   resource="R">` resource, or (b) it is a `<pvevm vmid="N">` whose guest config (read from
//!   `PVE_DIR/nodes/*/qemu-server/N.conf` or `lxc/N.conf`) has, before its first `[snapshot]`
//!   section, a disk line naming `/dev/drbdMINOR` of R, `/dev/drbd/by-res/R`, or a storage id equal
//!   to R or containing R as a `-`/`_`-separated word (e.g. `drbd-r0`). Storage definitions in
//!   storage.cfg are not followed.
//! * The nodes a service can run on: the nodes of its failover domain when the domain is
//!   `restricted="1"`, otherwise every cluster node (rgmanager may place it anywhere).
//! * A guest lock (`lock:` line in the guest config's main section) is reported as stale without
//!   checking running tasks: the fix says to check first.
use super::{same_host, CmanConf, Context, Finding, Severity};
use crate::clusterconf::document::{Document, NodeId};
use crate::doctor::facts::{Facts, GuestConf};
use crate::drbd::state::ResourceConfig;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub fn check(cx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(c) = &cx.cman {
        service_checks(cx, c, &mut out);
    }
    lock_checks(cx.facts, &mut out);
    out
}

/// An HA service and the DRBD resources it uses.
struct Service {
    label: String,
    domain: Option<String>,
    drbd: BTreeSet<String>,
}

/// Every element under `id`, depth first.
fn descendants(doc: &Document, id: NodeId, out: &mut Vec<NodeId>) {
    for c in doc.child_elements(id) {
        out.push(c);
        descendants(doc, c, out);
    }
}

/// The main section of a guest config (before its first `[snapshot]`).
fn guest_main(text: &str) -> impl Iterator<Item = &str> {
    text.lines().take_while(|l| !l.trim_start().starts_with('['))
}

/// (vmid, node) of a guest config path.
fn guest_id_of(path: &str) -> Option<(String, String)> {
    // .../nodes/NODE/qemu-server/100.conf
    let p = Path::new(path);
    let vmid = p.file_stem()?.to_str()?.to_string();
    let kind = p.parent()?;
    let node = kind.parent()?.file_name()?.to_str()?.to_string();
    Some((vmid, node))
}

/// A guest config key that names a disk (`virtio0`, `scsi1`, `mp0`, `rootfs`, ...).
fn disk_key(k: &str) -> bool {
    let base = k.trim_end_matches(|c: char| c.is_ascii_digit());
    matches!(base, "ide" | "sata" | "scsi" | "virtio" | "efidisk" | "tpmstate" | "mp" | "rootfs")
}

/// DRBD resources a guest config uses (the heuristic is in the module doc).
fn guest_drbd(text: &str, configs: &[ResourceConfig]) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for line in guest_main(text) {
        let Some((k, v)) = line.split_once(':') else { continue };
        if !disk_key(k.trim()) {
            continue;
        }
        let v = v.trim();
        let storage = v.split(':').next().unwrap_or("").split(',').next().unwrap_or("");
        for r in configs {
            let words: Vec<&str> = storage.split(['-', '_']).collect();
            let minors: Vec<u32> = r
                .volumes
                .iter()
                .chain(r.hosts.iter().flat_map(|h| h.volumes.iter()))
                .filter_map(|x| x.minor.or_else(|| x.device.as_deref().and_then(|d| d.trim_start_matches("/dev/drbd").parse().ok())))
                .collect();
            let by_dev = minors.iter().any(|m| {
                let d = format!("/dev/drbd{m}");
                v.split([',', ' ', ':']).any(|w| w == d)
            });
            if storage == r.name || words.contains(&r.name.as_str()) || by_dev || v.contains(&format!("/dev/drbd/by-res/{}", r.name)) {
                used.insert(r.name.clone());
            }
        }
    }
    used
}

/// Failover domains by name: (restricted, nodes).
type Domains = BTreeMap<String, (bool, Vec<String>)>;

/// The HA services of cluster.conf's `<rm>` with the DRBD resources each uses, and the
/// failover domains.
fn services(c: &CmanConf, facts: &Facts, configs: &[ResourceConfig]) -> (Vec<Service>, Domains) {
    let doc = &c.doc;
    let mut domains: Domains = BTreeMap::new();
    let mut out = Vec::new();
    let Some(rm) = c.model.rm else { return (out, domains) };
    for fds in doc.children_named(rm.id, "failoverdomains") {
        for fd in doc.children_named(fds, "failoverdomain") {
            let Some(name) = doc.attr_value(fd, "name") else { continue };
            let restricted = doc.attr_value(fd, "restricted").map(|v| v.trim() == "1").unwrap_or(false);
            let nodes = doc.children_named(fd, "failoverdomainnode").iter().filter_map(|n| doc.attr_value(*n, "name").map(String::from)).collect();
            domains.insert(name.to_string(), (restricted, nodes));
        }
    }
    let mut guests: BTreeMap<String, &GuestConf> = BTreeMap::new();
    for n in &facts.nodes {
        for g in &n.guests {
            if let Some((vmid, _)) = guest_id_of(&g.path) {
                guests.entry(vmid).or_insert(g);
            }
        }
    }
    for s in doc.child_elements(rm.id) {
        let el = doc.name(s);
        let domain = doc.attr_value(s, "domain").map(String::from);
        match el {
            "service" => {
                let mut all = Vec::new();
                descendants(doc, s, &mut all);
                let drbd = all
                    .iter()
                    .filter(|d| doc.name(**d) == "drbd")
                    .filter_map(|d| doc.attr_value(*d, "resource").map(String::from))
                    .collect();
                out.push(Service { label: format!("service:{}", doc.attr_value(s, "name").unwrap_or("?")), domain, drbd });
            }
            "pvevm" | "vm" => {
                let vmid = doc.attr_value(s, "vmid").or_else(|| doc.attr_value(s, "name")).unwrap_or("?").to_string();
                let drbd = guests.get(&vmid).map(|g| guest_drbd(&g.text, configs)).unwrap_or_default();
                out.push(Service { label: format!("{el}:{vmid}"), domain, drbd });
            }
            _ => {}
        }
    }
    (out, domains)
}

/// `ha.drbd-coherence`: each node a service may run on has the DRBD resources it uses.
fn service_checks(cx: &Context, c: &CmanConf, out: &mut Vec<Finding>) {
    let facts = cx.facts;
    let all_configs: Vec<ResourceConfig> = facts.nodes.iter().flat_map(|n| n.drbd_configs.iter().flatten().cloned()).collect();
    let (svcs, domains) = services(c, facts, &all_configs);
    let cluster = c.node_names();
    for s in &svcs {
        if s.drbd.is_empty() {
            continue;
        }
        let (candidates, how) = match s.domain.as_ref().and_then(|d| domains.get(d).map(|x| (d, x))) {
            Some((d, (true, nodes))) => (nodes.clone(), format!("restricted failover domain {d}")),
            Some((d, (false, _))) => (cluster.clone(), format!("unrestricted failover domain {d}: any cluster node")),
            None => (cluster.clone(), "no failover domain: any cluster node".to_string()),
        };
        for node in &candidates {
            let Some(nf) = cx.node(node) else { continue };
            let Some(cfgs) = &nf.drbd_configs else { continue };
            for r in &s.drbd {
                let here = cfgs.iter().find(|x| &x.name == r);
                let ok = here.is_some_and(|x| x.hosts.is_empty() || x.hosts.iter().any(|h| same_host(&h.name, node)));
                if !ok {
                    out.push(Finding::new(
                        "ha.drbd-coherence",
                        Severity::Error,
                        Some(node),
                        format!("HA {} uses DRBD resource {r} and may run on {node} ({how}), but {r} is not configured on {node}", s.label),
                        format!(
                            "configure {r} on {node} (/etc/drbd.d/{r}.res, create-md, up), or restrict the service's failover domain to the nodes that have it"
                        ),
                    ));
                } else {
                    out.push(Finding::new("ha.drbd-coherence", Severity::Ok, Some(node), format!("HA {} can run on {node}: {r} is configured there", s.label), ""));
                }
            }
        }
    }
}

/// `guest.lock`: a guest config with a `lock:` in its main section (once per file).
fn lock_checks(facts: &Facts, out: &mut Vec<Finding>) {
    let mut seen = BTreeSet::new();
    for n in &facts.nodes {
        for g in &n.guests {
            if !seen.insert(g.path.clone()) {
                continue;
            }
            let Some(lock) = guest_main(&g.text).find_map(|l| l.strip_prefix("lock:").map(|v| v.trim().to_string())) else { continue };
            let (vmid, owner) = guest_id_of(&g.path).unwrap_or_else(|| ("?".into(), n.name.clone()));
            let tool = if g.path.contains("/lxc/") { "pct" } else { "qm" };
            out.push(Finding::new(
                "guest.lock",
                Severity::Warning,
                Some(&owner),
                format!("guest {vmid} is locked ({g_path}: `lock: {lock}`); HA cannot start or migrate it while locked", g_path = g.path),
                format!(
                    "if no {lock} task is running for {vmid} on {owner} (check `ps` / the task log), clear it with `{tool} unlock {vmid}` on {owner}"
                ),
            ));
        }
    }
}
