//! The arbiter itself: reachable (`arbiter.reachable`, `--arbiter HOST:PORT` or its status
//! socket), its restart hold (`arbiter.hold`), the cluster's leases and clients
//! (`arbiter.lease`, `arbiter.clients`), its view against the nodes' own (`arbiter.view`,
//! corosync quorum device), and its TLS files when doctor runs on the arbiter machine
//! (`arbiter.server-cert`). Also how a certificate is read for these checks and the gate's
//! ([`cert_info`]).
use super::{Context, Finding, Severity};
use crate::doctor::facts::CertFacts;

pub fn check(cx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    arbiter_checks(cx, &mut out);
    for (what, c) in &cx.facts.arbiter_certs {
        server_cert_finding(what, c, cx.facts.now_unix, &mut out);
    }
    out
}

/// The arbiter contacted directly (`facts.arbiter`): reachable, hold, leases, clients, view.
fn arbiter_checks(cx: &Context, out: &mut Vec<Finding>) {
    let facts = cx.facts;
    let Some(a) = &facts.arbiter else {
        let gated = facts.gate_probe.is_some() || cx.gate().is_some();
        let qdev = facts.nodes.iter().any(|n| n.qdevice.is_some());
        if cx.cman.as_ref().is_none_or(|c| c.model.quorumd.is_none()) && !gated && !qdev {
            out.push(Finding::new("arbiter", Severity::Info, None, "no arbiter configured or given (--arbiter)", ""));
        }
        return;
    };
    if !a.reachable {
        out.push(Finding::new(
            "arbiter.reachable",
            Severity::Error,
            None,
            format!("arbiter {} not reachable: {}", a.target, a.error.as_deref().unwrap_or("?")),
            "start it (`twonode arbiter serve`) or fix the network path to it; without it a split is decided by fence delays only",
        ));
        return;
    }
    let Some(st) = &a.status else {
        out.push(Finding::new("arbiter.reachable", Severity::Ok, None, format!("arbiter {} accepts connections", a.target), ""));
        return;
    };
    out.push(Finding::new("arbiter.reachable", Severity::Ok, None, format!("arbiter status socket {} answered", a.target), ""));
    if let Some(h) = st["arbiter"]["startup_hold_remaining_ms"].as_u64() {
        out.push(Finding::new(
            "arbiter.hold",
            Severity::Warning,
            None,
            format!("the arbiter restarted recently: it grants no vote for another {:.1} s (leases of its previous instance)", h as f64 / 1000.0),
            "wait; a split now would leave both partitions without the vote until the hold ends",
        ));
    }
    let name = cx.cluster_name().unwrap_or("");
    let gated = cx.gate().is_some();
    let clusters = st["arbiter"]["clusters"].as_array().cloned().unwrap_or_default();
    // probes (doctor's own, `fence gate` monitor) announce node ids with the top bit set: not nodes
    let real = |c: &serde_json::Value| -> Vec<serde_json::Value> {
        c["nodes"].as_array().into_iter().flatten().filter(|n| n["node_id"].as_u64().is_some_and(|id| id & 0x8000_0000 == 0)).cloned().collect()
    };
    let Some(cl) = clusters.iter().find(|x| x["name"].as_str() == Some(name) && !real(x).is_empty()) else {
        let known = clusters.iter().filter_map(|x| x["name"].as_str()).collect::<Vec<_>>().join(", ");
        if gated {
            // the gate connects only while a node fences
            out.push(Finding::new(
                "arbiter.lease",
                Severity::Ok,
                None,
                format!("no client of cluster \"{name}\" connected now (normal for the gate: it connects only while a node fences; the arbiter knows: {known})"),
                "",
            ));
        } else {
            out.push(Finding::new(
                "arbiter.lease",
                Severity::Warning,
                None,
                format!("the arbiter knows no cluster \"{name}\" (it knows: {known})"),
                "start the arbiter client (corosync-qdevice) on both nodes with this cluster name",
            ));
        }
        return;
    };
    let nodes = real(cl);
    let connected = nodes.iter().filter(|n| !n["conn"].is_null() || n.get("conn").is_none()).count();
    let holders: Vec<String> = nodes.iter().filter(|n| n["holds_lease"].as_bool() == Some(true)).map(|n| n["node_id"].to_string()).collect();
    let per_node = nodes
        .iter()
        .map(|n| {
            let ring = match &n["ring_id"] {
                serde_json::Value::Object(r) => format!("{:x}.{:x}", r["node_id"].as_u64().unwrap_or(0), r["seq"].as_u64().unwrap_or(0)),
                _ => "-".into(),
            };
            format!("node {}: vote {}, ring {ring}", n["node_id"], n["vote"].as_str().unwrap_or("-"))
        })
        .collect::<Vec<_>>()
        .join("; ");
    // corosync quorum device: the arbiter's view of each node against the node's own
    let mut disagree = Vec::new();
    let mut compared = 0;
    for nf in facts.nodes.iter().filter_map(|n| n.qdevice.as_ref().map(|q| (n, q))) {
        let (n, q) = nf;
        let Some(qt) = &q.quorumtool else { continue };
        let Some(id) = qt.node_id else { continue };
        let Some(a) = nodes.iter().find(|x| x["node_id"].as_u64() == Some(id as u64)) else {
            disagree.push(format!("{} (node id {id}) is not connected to the arbiter", n.name));
            continue;
        };
        compared += 1;
        let node_v = qt.local().and_then(|m| m.qdevice.as_deref()).is_some_and(|c| c.split(',').any(|w| w == "V"));
        let arb_v = a["vote"].as_str() == Some("ACK");
        if node_v != arb_v {
            disagree.push(format!(
                "{}: the arbiter says {} but the node {} the device vote",
                n.name,
                a["vote"].as_str().unwrap_or("-"),
                if node_v { "casts" } else { "does not cast" }
            ));
        }
        let ring = match &a["ring_id"] {
            serde_json::Value::Object(r) => Some(format!("{:x}.{:x}", r["node_id"].as_u64().unwrap_or(0), r["seq"].as_u64().unwrap_or(0))),
            _ => None,
        };
        if let (Some(r), Some(nr)) = (&ring, &qt.ring_id) {
            if !r.eq_ignore_ascii_case(nr) {
                disagree.push(format!("{}: ring {nr} on the node, {r} at the arbiter", n.name));
            }
        }
    }
    if !disagree.is_empty() {
        out.push(Finding::new(
            "arbiter.view",
            Severity::Warning,
            None,
            format!("the arbiter and the nodes disagree: {}", disagree.join("; ")),
            "often a membership change in progress: run doctor again in a few seconds; if it stays, restart corosync-qdevice on the node named",
        ));
    } else if compared > 0 {
        out.push(Finding::new("arbiter.view", Severity::Ok, None, format!("the arbiter's votes and ring ids match what {compared} node(s) report"), ""));
    }
    let ev = format!("cluster \"{name}\": {connected} of {} node(s) connected ({per_node})", nodes.len());
    if holders.is_empty() {
        out.push(Finding::new(
            "arbiter.lease",
            Severity::Warning,
            None,
            format!("{ev}; no node holds a lease"),
            "check the arbiter clients on both nodes (`twonode arbiter status`, `corosync-qdevice-tool -sv`)",
        ));
    } else {
        out.push(Finding::new("arbiter.lease", Severity::Ok, None, format!("{ev}; lease held by node id {}", holders.join(", ")), ""));
    }
    if connected < 2 && !gated {
        out.push(Finding::new("arbiter.clients", Severity::Warning, None, ev, "start the arbiter client (corosync-qdevice) on the node that is missing"));
    }
}

/// The arbiter's own TLS files (on the arbiter machine): expired / ending soon.
fn server_cert_finding(what: &str, c: &CertFacts, now: i64, out: &mut Vec<Finding>) {
    let fix = "make new ones (`twonode arbiter certs init --dir NEWDIR`, then sign the nodes' requests again) before they end, \
               and restart `twonode arbiter serve`";
    let Some(pem) = &c.pem else {
        out.push(Finding::new("arbiter.server-cert", Severity::Error, None, format!("arbiter {what} {}: {}", c.path, c.error.as_deref().unwrap_or("?")), "fix the [tls] files in the arbiter's config (`twonode arbiter serve --check`)"));
        return;
    };
    match cert_info(pem) {
        Err(e) => out.push(Finding::new("arbiter.server-cert", Severity::Error, None, format!("arbiter {what} {}: {e}", c.path), fix)),
        Ok((end, cn)) => {
            let days = (end - now).div_euclid(86_400);
            let ev = format!("arbiter {what} {} (CN {:?}) valid until {} ({days} days)", c.path, cn.as_deref().unwrap_or("-"), date_of(end));
            if end <= now {
                out.push(Finding::new("arbiter.server-cert", Severity::Error, None, format!("{ev}: EXPIRED: no node can connect"), fix));
            } else if days < CERT_WARN_DAYS {
                out.push(Finding::new("arbiter.server-cert", Severity::Warning, None, format!("{ev}: ends in less than {CERT_WARN_DAYS} days"), fix));
            } else {
                out.push(Finding::new("arbiter.server-cert", Severity::Ok, None, ev, ""));
            }
        }
    }
}

/// Certificates closer than this to their end are a warning.
pub const CERT_WARN_DAYS: i64 = 30;

/// When a certificate ends, read from its PEM: (not_after unix time, subject CN).
pub fn cert_info(pem: &str) -> Result<(i64, Option<String>), String> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| format!("not a PEM certificate: {e}"))?;
    let cert = p.parse_x509().map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let cn = cert.subject().iter_common_name().next().and_then(|c| c.as_str().ok()).map(String::from);
    Ok((cert.validity().not_after.timestamp(), cn))
}

/// A unix time as a date (UTC).
pub fn date_of(ts: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .map(|d| format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day()))
        .unwrap_or_else(|_| ts.to_string())
}
