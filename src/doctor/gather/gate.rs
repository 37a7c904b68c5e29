//! The arbiter gate as the nodes reach it (cman clusters whose fence methods start with
//! `fence_twonode_arbiter`): each node's client certificate read on the node, each node's gate
//! agent run with action=monitor as fenced would run it ([`gate_monitor`]), and the arbiter probed
//! with the gate's own client from here ([`probe_gate`]).
use super::GatherOptions;
use crate::clusterconf::model::Model;
use crate::doctor::checks::gate::{gate_layout, is_gate, GATE_AGENT};
use crate::doctor::checks::same_host;
use crate::doctor::facts::{CertFacts, Facts, GateMonitor};
use crate::fence::spec::FenceTarget;
use crate::host::Host;
use indicatif::ProgressBar;
use std::path::Path;

/// Gather what the gate checks need, when `targets` hold a gate.
pub fn gather_gate(hosts: &mut [Box<dyn Host>], facts: &mut Facts, targets: &[FenceTarget], model: &Model, o: &GatherOptions, bar: &ProgressBar) {
    let layout = gate_layout(targets);
    let Some(g) = layout.gates.first() else { return };
    // each node's client certificate, read on the node
    if let Some(cert) = &g.cert {
        for (h, nf) in hosts.iter_mut().zip(facts.nodes.iter_mut()) {
            if nf.unreachable.is_some() {
                continue;
            }
            nf.gate_cert = Some(match h.read_file(Path::new(cert)) {
                Ok(b) => CertFacts { path: cert.clone(), pem: Some(String::from_utf8_lossy(&b).into_owned()), error: None },
                Err(e) => CertFacts { path: cert.clone(), pem: None, error: Some(format!("{e:#}")) },
            });
        }
    }
    if o.probe_gate {
        // each node's own gate agent, as fenced would run it there (paths only on stdin)
        let d = targets.iter().flat_map(|t| &t.methods).flat_map(|m| &m.devices).find(|d| is_gate(d));
        if let Some(d) = d {
            for (h, nf) in hosts.iter_mut().zip(facts.nodes.iter_mut()) {
                if nf.unreachable.is_some() {
                    continue;
                }
                bar.inc_length(1);
                bar.set_message(format!("gate agent on {}", nf.name));
                nf.gate_monitor = Some(gate_monitor(h.as_mut(), d, &nf.conf_path));
                bar.inc(1);
            }
        }
        bar.inc_length(1);
        bar.set_message(format!("arbiter {} (gate)", g.target()));
        // the id of the node doctor runs on when it is one, else the first node's
        let me = nix::unistd::gethostname().ok().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
        let ids: Vec<(String, u32)> = model
            .nodes
            .iter()
            .filter_map(|n| Some((n.name.clone()?, n.nodeid.as_deref()?.trim().parse().ok()?)))
            .collect();
        let id = ids.iter().find(|(n, _)| same_host(n, &me)).or(ids.first()).map(|x| x.1).unwrap_or(1);
        facts.gate_probe = Some(probe_gate(g, model.cluster_name().unwrap_or(""), id, o.arbiter_timeout));
        bar.inc(1);
    }
}

// Probing the arbiter through the gate's client is the gate's own (`fence::gate::probe_gate`).
pub use crate::fence::gate::probe_gate;

/// Run the gate agent's monitor action on a node (stdin key=value like fenced; paths, no secrets).
pub fn gate_monitor(h: &mut dyn Host, d: &crate::fence::spec::DeviceSpec, conf_path: &str) -> GateMonitor {
    let mut input = String::from("action=monitor\n");
    for k in crate::fence::gate::PARAM_KEYS {
        if let Some(v) = d.params.get(*k) {
            input.push_str(&format!("{k}={v}\n"));
        }
    }
    input.push_str(&format!("cluster_conf={conf_path}\n"));
    for argv in [&["timeout", "60", GATE_AGENT][..], &["timeout", "60", "twonode", "fence", "gate"][..]] {
        match h.run(argv, Some(input.as_bytes())) {
            Ok(o) if o.status == 127 => continue,
            Ok(o) => {
                let text = if o.success() { o.stdout_str() } else { format!("{}\n{}", o.stderr_str(), o.stdout_str()) };
                return GateMonitor {
                    command: Some(argv[2..].join(" ")),
                    exit: Some(o.status),
                    output: text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("no output").to_string(),
                };
            }
            Err(e) if format!("{e:#}").contains("cannot start") => continue,
            Err(e) => return GateMonitor { command: Some(argv[2..].join(" ")), exit: None, output: format!("{e:#}") },
        }
    }
    GateMonitor { command: None, exit: None, output: format!("neither {GATE_AGENT} nor twonode is on the node's PATH") }
}

