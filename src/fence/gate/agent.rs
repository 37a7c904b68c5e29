//! Fence-agent mode (`twonode fence gate`, or a link named `fence_twonode_arbiter`), as fenced
//! runs it: stdin key=value or getopt; exit 0 only with the arbiter's vote.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::fence::options::{self, MetaAgent, MetaParam};
use crate::quorum::arbiter::client::{self, ClientConfig};

use super::decide::{config_failure, plan, ring_seq_now, GateDecision};
use super::keeper::ask;
use super::settings::{ClusterIdentity, GateSettings, AGENT};

// ---- fence-agent mode ------------------------------------------------------------------------

fn gp(name: &'static str, getopt: &'static str, ty: &'static str, default: Option<&'static str>, desc: &'static str) -> MetaParam {
    MetaParam { name, getopt, ty, default, required: name == "ipaddr", deprecated: false, choices: &[], desc }
}

/// Parameters of the gate agent (metadata; getopt through the one option table).
fn params() -> [MetaParam; 11] {
    [
        gp("action", "-o, --action=[action]", "string", Some("reboot"), "Fencing action (off/reboot ask the arbiter; on/status/list exit 0; monitor probes)"),
        gp("ipaddr", "-a, --ip=[ip]", "string", None, "Address of the arbiter (twonode arbiter serve or corosync-qnetd)"),
        gp("ipport", "-u, --ipport=[port]", "integer", Some("5403"), "TCP port of the arbiter"),
        gp("tlscacert", "--tlscacert=[file]", "string", None, "CA certificate (PEM) the arbiter's certificate must chain to"),
        gp("tlscert", "--tlscert=[file]", "string", None, "Client certificate (PEM, CN = cluster name)"),
        gp("tlskey", "--tlskey=[file]", "string", None, "Client key (PEM); only its path is ever passed"),
        gp("login_timeout", "--login-timeout=[seconds]", "second", Some("30"), "Seconds to wait for the arbiter's decision (also read as timeout=)"),
        gp("power_timeout", "--power-timeout=[seconds]", "second", Some("120"), "Seconds the vote stays with this node after the gate (hold; heartbeat = hold/2)"),
        gp("nodename", "-n, --plug=[node]", "string", None, "The node to fence (fenced passes nodename=)"),
        gp("local_node", "--local-node=[node]", "string", None, "This node's clusternode name (default: cman_tool status, else the host name)"),
        gp("cluster_conf", "--cluster-conf=[file]", "string", Some("/etc/cluster/cluster.conf"), "cluster.conf giving the cluster name and node ids"),
    ]
}

/// `-o metadata`.
pub fn metadata() -> String {
    options::metadata(&MetaAgent {
        name: AGENT,
        shortdesc: "Arbiter gate for two_node fencing: fence only with the arbiter's vote",
        longdesc: "fence_twonode_arbiter (twonode fence gate) is placed as the first device of every fence method. Before the real device runs it asks the quorum arbiter (qnetd protocol, twonode arbiter serve) for the cluster's vote: with the vote it exits 0 and the method goes on; without it (NACK, no decision, arbiter unreachable) it exits 1 and the method stops, so only one node of a split fences the other. No arbiter, no fencing.",
        params: &params(),
        actions: options::ACTIONS,
    })
}

/// getopt form → parameters ([`options::parse_argv`]; canonical keys: `-n`/`--plug` give
/// `port`, read by [`victim_of`]; `--timeout` is the gate's `--login-timeout`).
pub fn parse_args(args: &[String]) -> Result<BTreeMap<String, String>, String> {
    let offered = |k: &str| k == "verbose" || k == "port" || params().iter().any(|p| p.name == k);
    let args: Vec<String> = args
        .iter()
        .map(|a| match a.strip_prefix("--timeout") {
            Some(rest) if rest.is_empty() || rest.starts_with('=') => format!("--login-timeout{rest}"),
            _ => a.clone(),
        })
        .collect();
    Ok(options::parse_argv(&args, &offered)?.params)
}

/// stdin `key=value` (fenced's convention, [`options::parse_stdin`]) → parameters by canonical
/// key (every key kept); `port=`/`plug=` name the victim too.
pub fn parse_stdin(text: &str) -> BTreeMap<String, String> {
    options::parse_stdin(text, &|_| true).params
}

/// The node to fence: `nodename=`, else `port=` / `plug=`.
pub fn victim_of(p: &BTreeMap<String, String>) -> Option<String> {
    ["nodename", "port", "plug"].iter().find_map(|k| p.get(*k).filter(|v| !v.trim().is_empty()).map(|v| v.trim().to_string()))
}

/// This node's name: `local_node=`, env TWONODE_LOCAL_NODE, `cman_tool status` "Node name",
/// else the host name (matched against the clusternode names by the plan).
pub fn local_node(p: &BTreeMap<String, String>) -> Option<String> {
    if let Some(v) = p.get("local_node").filter(|v| !v.trim().is_empty()) {
        return Some(v.trim().to_string());
    }
    if let Ok(v) = std::env::var("TWONODE_LOCAL_NODE") {
        if !v.trim().is_empty() {
            return Some(v.trim().to_string());
        }
    }
    if let Ok(out) = std::process::Command::new("cman_tool").arg("status").stdin(std::process::Stdio::null()).output() {
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout);
            if let Some(n) = text.lines().find_map(|l| l.strip_prefix("Node name:")) {
                return Some(n.trim().to_string());
            }
        }
    }
    nix::unistd::gethostname().ok().map(|h| h.to_string_lossy().to_string()).filter(|h| !h.is_empty())
}

/// cluster.conf path: `cluster_conf=`, env TWONODE_CLUSTER_CONF, else the live file.
pub fn cluster_conf_path(p: &BTreeMap<String, String>) -> PathBuf {
    if let Some(v) = p.get("cluster_conf").filter(|v| !v.trim().is_empty()) {
        return PathBuf::from(v.trim());
    }
    crate::clusterconf::store::default_path()
}

pub const USAGE: &str = "\
Usage: twonode fence gate [OPTIONS]     (or: fence_twonode_arbiter [OPTIONS])
With no options, reads key=value lines on stdin (fenced's convention).
Asks the quorum arbiter for the cluster's vote before the real fence device runs: exit 0 only
with the vote (ACK); NACK, no decision, arbiter unreachable or refused: exit 1 (no fencing).
Options:
  -o, --action=ACTION     off, reboot (ask the arbiter); on, status, list (exit 0); monitor (probe);
                          metadata, validate-all
  -a, --ip=ADDRESS        the arbiter            -u, --ipport=PORT (5403)
  --tlscacert=FILE --tlscert=FILE --tlskey=FILE  PEM files from `twonode arbiter certs`
  --login-timeout=S       wait for the decision (30; --timeout too)
  --power-timeout=S       hold: the vote stays here S seconds after the gate (120; heartbeat S/2)
  -n, --plug=NODE         the node to fence (nodename= on stdin)
  --local-node=NODE       this node (env TWONODE_LOCAL_NODE; default cman_tool status / host name)
  --cluster-conf=FILE     cluster name and node ids (env TWONODE_CLUSTER_CONF; /etc/cluster/cluster.conf)
Exit codes: 0 vote granted (or a non-destructive action), 1 no vote: do not fence.";

/// Run as the fence agent. Returns the exit code.
pub fn run_agent(args: &[String], stdin: &mut dyn std::io::Read, audit_path: Option<&Path>) -> i32 {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return 0;
    }
    let params = if args.is_empty() {
        let mut text = String::new();
        if let Err(e) = stdin.read_to_string(&mut text) {
            eprintln!("Failed: cannot read parameters from stdin: {e}; no vote, no fencing");
            return 1;
        }
        parse_stdin(&text)
    } else {
        match parse_args(args) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("Failed: {e}\n{USAGE}");
                return 1;
            }
        }
    };
    let action = params.get("action").map(|s| s.trim().to_ascii_lowercase()).unwrap_or_else(|| "reboot".into());
    match action.as_str() {
        "metadata" => {
            print!("{}", metadata());
            return 0;
        }
        "on" | "enable" | "status" | "list" | "list-status" => return 0,
        _ => {}
    }
    let settings = match GateSettings::from_params(&params) {
        Ok(s) => s,
        Err(e) => return report(&config_failure(e), audit_path, &action),
    };
    let conf = cluster_conf_path(&params);
    let identity = match ClusterIdentity::load(&conf) {
        Ok(i) => i,
        Err(e) => return report(&config_failure(e), audit_path, &action),
    };
    let local = local_node(&params).unwrap_or_default();
    match action.as_str() {
        "monitor" => {
            let id = identity.id_of(&local).unwrap_or(0);
            let mut c = ClientConfig::new(settings.host.clone(), settings.port, identity.cluster.clone(), id);
            c.tls = settings.tls.clone();
            c.timeout = settings.timeout;
            return match client::probe(&c) {
                Ok(p) => {
                    println!(
                        "arbiter {} answers: INIT accepted in {:.0} ms, TLS {}, round trip {:.1} ms",
                        p.address,
                        p.init_ms,
                        if p.tls { "on" } else { "off" },
                        p.rtt_ms
                    );
                    0
                }
                Err(e) => {
                    eprintln!("Failed: arbiter {} does not answer: {e} ({})", c.address(), e.advice());
                    1
                }
            };
        }
        "validate-all" => {
            let victim = victim_of(&params).unwrap_or_else(|| identity.nodes.iter().map(|n| n.0.clone()).find(|n| n != &local).unwrap_or_default());
            return match plan(&settings, &identity, &local, &victim, 1) {
                Ok(_) => {
                    println!("Success: parameters are valid");
                    0
                }
                Err(e) => {
                    eprintln!("Failed: {e}");
                    1
                }
            };
        }
        "off" | "disable" | "reboot" => {}
        other => {
            eprintln!("Failed: action \"{other}\" is not supported (on, off, reboot, status, monitor, list, metadata, validate-all); no vote, no fencing");
            return 1;
        }
    }
    let Some(victim) = victim_of(&params) else {
        return report(&config_failure("no nodename= (the node to fence)".into()), audit_path, &action);
    };
    let p = match plan(&settings, &identity, &local, &victim, ring_seq_now()) {
        Ok(p) => p,
        Err(e) => return report(&config_failure(e), audit_path, &action),
    };
    let audit = audit_log(audit_path);
    audit.append("start", serde_json::json!({"mode": "gate", "node": p.victim, "local": p.local, "action": action, "arbiter": p.client.address()}));
    let d = ask(&p);
    audit.append("outcome", serde_json::json!({"mode": "gate", "node": p.victim, "local": p.local, "action": action, "exit": d.exit_code, "gate": d}));
    print_decision(&d);
    d.exit_code
}

fn audit_log(path: Option<&Path>) -> crate::fence::audit::AuditLog {
    let env_path = std::env::var_os("TWONODE_FENCE_AUDIT_LOG").map(PathBuf::from);
    crate::fence::audit::AuditLog::open(path.or(env_path.as_deref()))
}

fn report(d: &GateDecision, audit_path: Option<&Path>, action: &str) -> i32 {
    if matches!(action, "off" | "disable" | "reboot") {
        audit_log(audit_path).append("outcome", serde_json::json!({"mode": "gate", "action": action, "exit": d.exit_code, "gate": d}));
    }
    print_decision(d);
    d.exit_code
}

fn print_decision(d: &GateDecision) {
    if d.allowed {
        println!("Success: {}", d.message);
    } else {
        eprintln!("Failed: {}", d.message);
        eprintln!("  what to expect: {}", d.expect);
    }
}

