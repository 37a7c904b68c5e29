//! Checks on the nodes and their configuration files: each node reached (`node.reachable`), its
//! cluster.conf or corosync.conf readable and valid (`config.readable`, `config.valid`), the same
//! file on both nodes (`config.version`), the `--node` names known to cluster.conf
//! (`config.node-names`). Also which file the other areas read ([`newest_cman`],
//! [`newest_corosync`]).
use super::{same_host, CmanConf, Context, CorosyncCluster, Finding, Severity, Stack};
use crate::clusterconf::model::Model;
use crate::clusterconf::validate;
use crate::doctor::facts::Facts;
use crate::quorum::corosync_conf::{self, CorosyncConf};
use std::collections::BTreeSet;

pub fn check(cx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    for n in &cx.facts.nodes {
        if let Some(e) = &n.unreachable {
            out.push(Finding::new(
                "node.reachable",
                Severity::Error,
                Some(&n.name),
                format!("could not reach the node: {e}"),
                "check the node is up and reachable (ssh, key, known_hosts); checks needing it were skipped",
            ));
        }
    }
    match cx.stack {
        Stack::Cman => {
            cluster_conf_checks(cx.facts, &mut out);
            if let Some(c) = &cx.cman {
                node_name_checks(cx.facts, c, &mut out);
            }
        }
        Stack::Corosync => corosync_conf_checks(cx.facts, &mut out),
    }
    out
}

/// The newest cluster.conf that parses (the first node's on equal versions).
pub fn newest_cman(facts: &Facts) -> Option<CmanConf> {
    let mut parsed: Vec<CmanConf> = Vec::new();
    for n in facts.reachable() {
        let Some(bytes) = &n.conf else { continue };
        if let Ok((doc, model)) = Model::parse(bytes) {
            let xml = String::from_utf8_lossy(doc.source()).into_owned();
            let targets = crate::fence::spec::from_cluster_conf(&xml, &n.conf_path).map_err(|e| format!("{}:{}: {}", e.path, e.line, e.message));
            parsed.push(CmanConf { path: n.conf_path.clone(), doc, model, targets });
        }
    }
    parsed.sort_by_key(|c| std::cmp::Reverse(c.model.version()));
    parsed.into_iter().next()
}

/// The newest corosync.conf whose quorum section reads (the first node's on equal versions).
pub fn newest_corosync(facts: &Facts) -> Option<CorosyncCluster> {
    let mut parsed: Vec<(Option<u64>, CorosyncCluster)> = Vec::new();
    for n in facts.reachable() {
        let Some(text) = &n.corosync_conf else { continue };
        let path = n.corosync_path.clone().unwrap_or_else(|| "corosync.conf".into());
        if let Ok(conf) = CorosyncConf::parse(text) {
            if let Ok(quorum) = conf.quorum_config(&path) {
                parsed.push((conf.config_version(), CorosyncCluster { path, quorum }));
            }
        }
    }
    parsed.sort_by_key(|c| std::cmp::Reverse(c.0));
    parsed.into_iter().next().map(|x| x.1)
}

/// cluster.conf on each reachable node: readable, valid; the same on every node.
fn cluster_conf_checks(facts: &Facts, out: &mut Vec<Finding>) {
    let mut versions: Vec<(String, Option<u64>, &[u8])> = Vec::new();
    for n in facts.reachable() {
        let Some(bytes) = &n.conf else {
            out.push(Finding::new(
                "config.readable",
                Severity::Error,
                Some(&n.name),
                format!("cannot read {}: {}", n.conf_path, n.conf_error.as_deref().unwrap_or("unknown error")),
                format!(
                    "put the cluster's cluster.conf at {} on {} (or pass --file / --node-file; for a corosync cluster --corosync-conf)",
                    n.conf_path, n.name
                ),
            ));
            continue;
        };
        let rep = crate::fence::validate_conf(bytes, &validate::Options::default());
        let diag_text = |sev: Severity| {
            rep.diagnostics
                .iter()
                .filter(|d| d.severity == sev)
                .take(5)
                .map(|d| format!("{}:{}: [{}] {}", n.conf_path, d.line, d.code, d.message))
                .collect::<Vec<_>>()
                .join("; ")
        };
        if rep.has_errors() {
            out.push(Finding::new(
                "config.valid",
                Severity::Error,
                Some(&n.name),
                format!("{} error(s): {}", rep.errors, diag_text(Severity::Error)),
                format!("on {}: `twonode conf validate --file {}` shows every error with its hint; fix them, raise config_version and propagate", n.name, n.conf_path),
            ));
        } else if rep.warnings > 0 {
            out.push(Finding::new(
                "config.valid",
                Severity::Warning,
                Some(&n.name),
                format!("valid, {} warning(s): {}", rep.warnings, diag_text(Severity::Warning)),
                format!("review with `twonode conf validate --file {}` on {}", n.conf_path, n.name),
            ));
        } else {
            out.push(Finding::new("config.valid", Severity::Ok, Some(&n.name), format!("{} is valid", n.conf_path), ""));
        }
        let version = Model::parse(bytes).ok().and_then(|(_, model)| model.version());
        versions.push((n.name.clone(), version, bytes.as_slice()));
    }
    if versions.len() >= 2 {
        let vs: BTreeSet<Option<u64>> = versions.iter().map(|v| v.1).collect();
        let list = versions
            .iter()
            .map(|(n, v, _)| format!("{n}: config_version {}", v.map(|v| v.to_string()).unwrap_or_else(|| "?".into())))
            .collect::<Vec<_>>()
            .join(", ");
        if vs.len() > 1 {
            out.push(Finding::new(
                "config.version",
                Severity::Error,
                None,
                format!("the nodes hold different configurations ({list})"),
                "make the node with the newest correct file the source: on cman `cman_tool version -r` after copying it \
                 (or `ccs_sync`); on Proxmox /etc/pve is shared, so check pmxcfs (`pvecm status`) on the stale node",
            ));
        } else if versions.windows(2).any(|w| w[0].2 != w[1].2) {
            out.push(Finding::new(
                "config.version",
                Severity::Error,
                None,
                format!("same config_version but different contents ({list}): one node was edited without raising the version"),
                "choose the right file, raise config_version in it and propagate it to both nodes (`twonode conf apply`)",
            ));
        } else {
            out.push(Finding::new("config.version", Severity::Ok, None, format!("identical on both nodes ({list})"), ""));
        }
    }
}

/// Each `--node` name is a `<clusternode>` (the other checks match nodes by it).
fn node_name_checks(facts: &Facts, c: &CmanConf, out: &mut Vec<Finding>) {
    let names = c.node_names();
    for n in &facts.nodes {
        if !names.iter().any(|x| same_host(x, &n.name)) {
            out.push(Finding::new(
                "config.node-names",
                Severity::Warning,
                Some(&n.name),
                format!("node `{}` is not a <clusternode> of {} (nodes: {})", n.name, c.path, names.join(", ")),
                "name each --node as its <clusternode name=...> so the checks can match them",
            ));
        }
    }
}

/// The first five diagnostics of one severity, as `PATH:LINE:COL: [code] message`.
fn render_diags(rep: &validate::Report, path: &str, sev: Severity) -> String {
    rep.diagnostics
        .iter()
        .filter(|d| d.severity == sev)
        .take(5)
        .map(|d| format!("{path}:{}:{}: [{}] {}", d.line, d.col, d.code, d.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// corosync.conf on each reachable node: present, valid; the same on every node.
fn corosync_conf_checks(facts: &Facts, out: &mut Vec<Finding>) {
    let mut versions: Vec<(String, Option<u64>, &str)> = Vec::new();
    for n in facts.reachable() {
        let path = n.corosync_path.clone().unwrap_or_else(|| "corosync.conf".into());
        let Some(text) = &n.corosync_conf else {
            out.push(Finding::new(
                "config.readable",
                Severity::Error,
                Some(&n.name),
                format!("no corosync.conf on {} (and no cluster.conf at {}: {})", n.name, n.conf_path, n.conf_error.as_deref().unwrap_or("?")),
                "copy the cluster's corosync.conf to the node (`pvecm`/`pcs cluster sync` do it), or name its path with --corosync-conf",
            ));
            continue;
        };
        let rep = corosync_conf::validate(text, &path, &corosync_conf::Context::default());
        if rep.has_errors() {
            out.push(Finding::new(
                "config.valid",
                Severity::Error,
                Some(&n.name),
                format!("{} error(s): {}", rep.errors, render_diags(&rep, &path, Severity::Error)),
                format!("on {}: `twonode quorum validate --file {path}` shows each error with its fix", n.name),
            ));
        } else if rep.warnings > 0 {
            out.push(Finding::new(
                "config.valid",
                Severity::Warning,
                Some(&n.name),
                format!("valid, {} warning(s): {}", rep.warnings, render_diags(&rep, &path, Severity::Warning)),
                format!("review with `twonode quorum validate --file {path}` on {}", n.name),
            ));
        } else {
            out.push(Finding::new("config.valid", Severity::Ok, Some(&n.name), format!("{path} is valid"), ""));
        }
        let version = CorosyncConf::parse(text).ok().and_then(|c| c.config_version());
        versions.push((n.name.clone(), version, text.as_str()));
    }
    if versions.len() >= 2 {
        let list = versions
            .iter()
            .map(|(n, v, _)| format!("{n}: config_version {}", v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())))
            .collect::<Vec<_>>()
            .join(", ");
        let vs: BTreeSet<Option<u64>> = versions.iter().map(|v| v.1).collect();
        if vs.len() > 1 {
            out.push(Finding::new(
                "config.version",
                Severity::Error,
                None,
                format!("the nodes hold different corosync.conf versions ({list})"),
                "copy the newest correct file to the other node, then `corosync-cfgtool -R` (Proxmox: /etc/pve/corosync.conf is synced by pmxcfs: check `pvecm status`)",
            ));
        } else if versions.windows(2).any(|w| w[0].2 != w[1].2) {
            out.push(Finding::new(
                "config.version",
                Severity::Error,
                None,
                format!("same config_version but different corosync.conf contents ({list})"),
                "choose the right file, raise totem.config_version in it and copy it to both nodes (`twonode quorum apply`)",
            ));
        } else {
            out.push(Finding::new("config.version", Severity::Ok, None, format!("corosync.conf identical on both nodes ({list})"), ""));
        }
    }
}
