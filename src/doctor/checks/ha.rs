//! HA (rgmanager's `<rm>` read into twonode's HA model): `ha validate`'s findings, and the
//! rehearsal of each node's failure in the HA simulator with the two-node world: a service that
//! would not come back (no vote, no fence device, a restricted domain) is said before it happens.
//! Proxmox VE's /etc/pve/ha is not gathered by doctor; `twonode ha validate` reads it.
use super::{Context, Finding, Severity};
use crate::ha::config::rgmanager;
use crate::ha::validate::{validate, Files, StorageFacts};
use crate::ha::whatif::{two_node_world, what_if, Event};

pub fn check(cx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(c) = &cx.cman else { return out };
    if c.model.rm.is_none() {
        return out;
    }
    let r = match rgmanager::from_doc(&c.doc, &c.model, &c.path) {
        Ok(r) => r,
        Err(e) => {
            out.push(Finding::new("ha.config", Severity::Error, None, e, "fix the <rm> section (see `twonode ha validate --cluster-conf FILE`)"));
            return out;
        }
    };
    if r.config.services.is_empty() {
        return out;
    }
    for f in validate(&r.config, &r.cluster, &StorageFacts::default(), &Files::cman(&c.path)) {
        // the services check reports DRBD coherence with guest configs; the rest is ha.*
        out.push(Finding::new(&f.code, f.severity, None, format!("{}:{}:{}: {}", f.file, f.line, f.col, f.message), f.fix));
    }
    let Some(two) = two_node_world(&r.cluster) else { return out };
    for node in &r.cluster.nodes {
        let Ok(w) = what_if(&r.config, &r.cluster.nodes, Some(two.clone()), &Event::Fail(node.clone())) else { continue };
        for o in w.outcomes.iter().filter(|o| o.before == *node && o.state != "stopped" && o.state != "ignored") {
            let back = o.state == "started" && o.after.as_deref() != Some(node.as_str());
            if back {
                continue;
            }
            let why = o.blocked_by.first().cloned().unwrap_or_else(|| format!("it ends in state {}", o.state));
            out.push(Finding::new(
                "ha.failover",
                Severity::Warning,
                Some(node),
                format!("if {node} fails, {} does not come back on the other node: {why}", o.sid),
                format!("rehearse it: `twonode ha what-if --fail {node} --cluster-conf {}`", c.path),
            ));
        }
    }
    out
}
