//! The gate's rules for `twonode conf validate` (and doctor's config check), over the
//! cluster.conf model: handed to the validator as a [`RuleSet`] (clusterconf, a foundation,
//! knows no twonode agent). Read from the one [`GateLayout`] (`GateLayout::of_model`).
use crate::clusterconf::model::Model;
use crate::clusterconf::validate::{Diagnostic, RuleSet, Severity};

use super::layout::GateLayout;
use super::settings::is_gate_agent;

/// The gate's rule set.
pub const RULES: RuleSet = RuleSet { name: "arbiter gate", check, decides_fence_race };

/// The validator's reading of "the gate decides the race": every node has a method and every
/// method, empty ones included, starts with the gate.
fn decides_fence_race(m: &Model) -> bool {
    let l = GateLayout::of_model(m);
    l.complete() && l.methods.iter().all(|mg| mg.devices > 0) && m.nodes.iter().all(|n| !n.methods.is_empty())
}

fn diag(severity: Severity, (line, col): (usize, usize), code: &str, message: String, hint: &str) -> Diagnostic {
    Diagnostic { severity, line, col, code: code.into(), message, hint: Some(hint.into()) }
}

/// Arbiter-gated fencing: once one method is gated, every method of every node must start with
/// the gate, or the node that lost the arbiter's vote fences through it.
fn check(m: &Model) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let l = GateLayout::of_model(m);
    if !l.any() {
        return out;
    }
    for mg in l.methods.iter().filter(|mg| mg.devices > 0) {
        let mt = &m.nodes[mg.node_ix].methods[mg.method_ix];
        let (node, meth) = (&mg.node, &mg.method);
        for &i in mg.gates_at.iter().filter(|i| **i > 0) {
            let d = &mt.devices[i];
            out.push(diag(
                Severity::Error,
                (d.loc.line, d.loc.col),
                "fence.gate-not-first",
                format!(
                    "the arbiter gate {} is not the first device of method {meth} of node {node}: the devices before it run without the arbiter's vote",
                    d.name.as_deref().unwrap_or("?")
                ),
                "`twonode conf gate-fencing ...` puts it first in every method",
            ));
        }
        if mg.gates_at.is_empty() {
            out.push(diag(
                Severity::Error,
                (mt.loc.line, mt.loc.col),
                "fence.gate-missing",
                format!(
                    "method {meth} of node {node} is not gated by the arbiter while other methods are: in a split, the node that lost the \
                     arbiter's vote fails its gated methods and then fences through this one"
                ),
                "run `twonode conf gate-fencing ...` again (it gates every method), or remove the gate everywhere (`--remove`)",
            ));
        } else if mg.gates_at[0] == 0 && mg.devices == 1 {
            out.push(diag(
                Severity::Error,
                (mt.loc.line, mt.loc.col),
                "fence.gate-only",
                format!("method {meth} of node {node} has only the arbiter gate and no real fence device after it"),
                &format!("`twonode conf bind {node} DEVICE --method {meth}` adds the real device"),
            ));
        }
    }
    for fd in m.fencedevices.iter().filter(|f| f.agent.as_deref().is_some_and(is_gate_agent)) {
        let pos = (fd.loc.line, fd.loc.col);
        let dname = fd.name.as_deref().unwrap_or("?");
        if fd.get("ipaddr").is_none() {
            out.push(diag(
                Severity::Error,
                pos,
                "fence.gate-no-arbiter",
                format!("the arbiter gate {dname} has no ipaddr= (the arbiter's address)"),
                "`twonode conf gate-fencing --arbiter HOST ...`",
            ));
        }
        if ["tlscacert", "tlscert", "tlskey"].iter().any(|k| fd.get(k).is_none()) {
            out.push(diag(
                Severity::Warning,
                pos,
                "fence.gate-no-tls",
                format!("the arbiter gate {dname} has no tlscacert/tlscert/tlskey: anyone who can reach the arbiter could claim the vote for this cluster"),
                "give the CA, the cluster's certificate and key from `twonode arbiter certs`, and run the arbiter with tls.mode = \"required\"",
            ));
        }
    }
    if !m.two_node() {
        let pos = m.cman.as_ref().map(|c| (c.loc.line, c.loc.col)).unwrap_or((m.root.line, m.root.col));
        out.push(diag(
            Severity::Warning,
            pos,
            "fence.gate-not-two-node",
            "fencing is gated by the arbiter but two_node is not set: with a real quorum the partition without quorum never fences anyway".into(),
            "the gate is meant for cman two_node=\"1\"; keep it only if you know why",
        ));
    }
    out
}
