//! The arbiter gate (GATE.md) in cluster.conf and as the nodes see it.
//!
//! Where the gate is in the fence methods ([`gate_layout`]: [`GateLayout`], [`GateConf`], owned
//! by `fence::gate`; used by the fence area's race check), and the checks on it: the arbiter
//! answering the gate's client (`arbiter.gate`, from the probe `gather::gate` made), each node's
//! client certificate (`arbiter.cert`: readable, not expired, CN = cluster name) and each node's
//! gate agent (`arbiter.gate-agent`: `fence_twonode_arbiter -o monitor` as fenced would run it).
use super::arbiter::{cert_info, date_of, CERT_WARN_DAYS};
use super::{Context, Finding, Severity};
use crate::doctor::facts::CertFacts;

/// The agent name of the arbiter gate's `<fencedevice>` (GATE.md).
pub const GATE_AGENT: &str = crate::fence::gate::AGENT;

// Where the gate is: computed once by the gate itself (`fence::gate::GateLayout`), read here.
pub use crate::fence::gate::{gate_layout, gate_of_cluster_conf, is_gate, without_gate, GateConf, GateLayout};

/// The arbiter as the gate sees it: probe (TLS + INIT) and each node's client certificate and
/// gate agent.
pub fn check(cx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(c) = &cx.cman else { return out };
    let Ok(targets) = &c.targets else { return out };
    let layout = gate_layout(targets);
    let Some(g) = layout.gates.first() else { return out };
    let cluster = c.model.cluster_name();
    let facts = cx.facts;
    match &facts.gate_probe {
        None => out.push(Finding::new(
            "arbiter.gate",
            Severity::Info,
            None,
            format!("the arbiter gate {} was not probed", g.target()),
            "run doctor without --no-arbiter-probe on a node (it needs the gate's certificate files)",
        )),
        Some(p) if p.ok && p.depth == "init" => out.push(Finding::new(
            "arbiter.gate",
            Severity::Ok,
            None,
            format!(
                "arbiter {} accepted the gate's client (TCP, TLS, INIT for cluster {:?}){}{}",
                p.target,
                cluster.unwrap_or("?"),
                p.rtt_ms.map(|r| format!(", round trip {r:.1} ms")).unwrap_or_default(),
                p.detail.as_deref().map(|d| format!("; {d}")).unwrap_or_default()
            ),
            "",
        )),
        Some(p) if p.ok => out.push(Finding::new(
            "arbiter.gate",
            Severity::Warning,
            None,
            format!(
                "arbiter {} accepts TCP connections{}; TLS and INIT were NOT checked{}",
                p.target,
                p.rtt_ms.map(|r| format!(" ({r:.1} ms)")).unwrap_or_default(),
                p.detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
            ),
            "run doctor on a cluster node, where the gate's certificate files are, so the full handshake is tried",
        )),
        Some(p) => out.push(Finding::new(
            "arbiter.gate",
            Severity::Error,
            None,
            format!(
                "the gate cannot get an answer from the arbiter {}: {}. While this lasts NO node can fence (the gate fails safe: no vote, no fencing)",
                p.target,
                p.error.as_deref().unwrap_or("?")
            ),
            "start the arbiter (`twonode arbiter serve` on the third machine), open TCP to it, and check the CA/cert/key paths of the gate device",
        )),
    }
    if let Some(cf) = facts.gate_probe.as_ref().and_then(|p| p.cert.as_ref()) {
        if !facts.nodes.iter().any(|n| n.gate_cert.is_some()) {
            cert_finding(None, cf, facts.now_unix, cluster, &mut out);
        }
    }
    for n in facts.nodes.iter().filter(|n| n.unreachable.is_none()) {
        if let Some(cf) = &n.gate_cert {
            cert_finding(Some(&n.name), cf, facts.now_unix, cluster, &mut out);
        }
        let Some(m) = &n.gate_monitor else { continue };
        let node = Some(n.name.as_str());
        match (&m.command, m.exit) {
            (None, _) => out.push(Finding::new(
                "arbiter.gate-agent",
                Severity::Error,
                node,
                format!("{}: fenced on {} cannot run the gate, so {} can NEVER fence (every method starts with it)", m.output, n.name, n.name),
                format!("install twonode on {} and link the agent: `ln -s $(command -v twonode) /usr/sbin/{GATE_AGENT}`", n.name),
            )),
            (Some(cmd), Some(0)) => out.push(Finding::new("arbiter.gate-agent", Severity::Ok, node, format!("`{cmd}` (action=monitor) on {}: {}", n.name, m.output), "")),
            (Some(cmd), _) => out.push(Finding::new(
                "arbiter.gate-agent",
                Severity::Error,
                node,
                format!("`{cmd}` (action=monitor) on {} failed: {}; {} cannot fence while this lasts", n.name, m.output, n.name),
                format!("on {}: check the gate device's files exist there and the arbiter is reachable from it (`{GATE_AGENT} -o monitor ...`)", n.name),
            )),
        }
    }
    out
}

/// The gate's client certificate: unreadable / expired / ending within CERT_WARN_DAYS / CN not the cluster name.
fn cert_finding(node: Option<&str>, c: &CertFacts, now: i64, cluster: Option<&str>, out: &mut Vec<Finding>) {
    let who = node.map(|n| format!(" on {n}")).unwrap_or_else(|| " here".into());
    let Some(pem) = &c.pem else {
        out.push(Finding::new(
            "arbiter.cert",
            Severity::Error,
            node,
            format!("cannot read the gate's client certificate {}{who}: {}", c.path, c.error.as_deref().unwrap_or("?")),
            "copy the node's certificate and key (from `twonode arbiter certs`) to the paths in the gate device (tlscert/tlskey), or fix the paths",
        ));
        return;
    };
    let (end, cn) = match cert_info(pem) {
        Ok(x) => x,
        Err(e) => {
            out.push(Finding::new("arbiter.cert", Severity::Error, node, format!("{}{who}: {e}", c.path), "put the PEM certificate `twonode arbiter certs` made there"));
            return;
        }
    };
    let days = (end - now).div_euclid(86_400);
    let ev = format!("{}{who}: CN {:?}, valid until {} ({days} days)", c.path, cn.as_deref().unwrap_or("-"), date_of(end));
    if let (Some(want), Some(cn)) = (cluster, cn.as_deref()) {
        if want != cn {
            out.push(Finding::new(
                "arbiter.cert",
                Severity::Error,
                node,
                format!("{ev}: the arbiter only accepts a client certificate whose CN is the cluster name {want:?}"),
                format!("sign a certificate for the cluster: `twonode arbiter certs sign --cluster {want} ...` on the arbiter"),
            ));
            return;
        }
    }
    let renew = "make a new one before it ends: on the arbiter `twonode arbiter certs sign --cluster NAME --csr ...`, copy it to both nodes";
    if end <= now {
        out.push(Finding::new("arbiter.cert", Severity::Error, node, format!("{ev}: EXPIRED, the arbiter refuses the gate: no node can fence"), renew));
    } else if days < CERT_WARN_DAYS {
        out.push(Finding::new("arbiter.cert", Severity::Warning, node, format!("{ev}: ends in less than {CERT_WARN_DAYS} days"), renew));
    } else {
        out.push(Finding::new("arbiter.cert", Severity::Ok, node, ev, ""));
    }
}
