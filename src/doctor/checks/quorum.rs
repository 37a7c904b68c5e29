//! Quorum arithmetic of the configuration read (cluster.conf's cman/quorumd or corosync.conf's
//! quorum section): votequorum's own rules as `quorum.CODE` findings, and the votes it gives
//! (`quorum.arithmetic`) when none of them is an error.
use super::{Context, Finding, Severity};
use crate::quorum::votequorum::QuorumConfig;

pub fn check(cx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(c) = &cx.cman {
        quorum_findings(&QuorumConfig::from_cluster_conf(&c.model, &c.path), &c.path, &mut out);
    }
    if let Some(c) = &cx.corosync {
        quorum_findings(&c.quorum, &c.path, &mut out);
    }
    out
}

fn quorum_findings(q: &QuorumConfig, path: &str, out: &mut Vec<Finding>) {
    let view = q.compute(None);
    let diags = q.check();
    for d in &diags {
        let at = d.line().map(|l| format!(" ({path}:{l})")).unwrap_or_default();
        out.push(Finding::new(&format!("quorum.{}", d.code), d.severity, None, format!("{}{at}", d.message), d.hint.clone().unwrap_or_default()));
    }
    if !diags.iter().any(|d| d.is_error()) {
        out.push(Finding::new(
            "quorum.arithmetic",
            Severity::Ok,
            None,
            format!(
                "expected votes {}, total {}, quorum {}, flags {}",
                view.expected_votes,
                view.total_votes,
                view.quorum,
                if view.flags.is_empty() { "-".to_string() } else { view.flags.join(" ") }
            ),
            "",
        ));
    }
}
