//! The arbiter gate for cman `two_node` clusters: before a node fences its peer, it asks the
//! arbiter (`twonode arbiter serve`, qnetd protocol) for the cluster's vote. Only the partition
//! holding the vote fences; the other never does. See docs in README ("Arbiter-gated fencing").
//!
//! In cluster.conf the gate is the FIRST device of every method (fenced abandons a method at its
//! first failing device), a `<fencedevice agent="fence_twonode_arbiter">` run as
//! `twonode fence gate` (or through a link named `fence_twonode_arbiter`).
//!
//! Layers:
//! * pure: [`GateSettings::from_params`] (device parameters → settings), [`ClusterIdentity`]
//!   (cluster.conf → cluster name + node ids), [`plan`] (who asks for what), [`decide`]
//!   (the arbiter's answer or failure → exit code and message). Never exit 0 without an ACK.
//! * I/O: [`ask`] (the qnetd client, `quorum::arbiter::client`), [`run_agent`] (fence-agent
//!   mode: stdin key=value or getopt), [`RealGatekeeper`] (twonode's own engine: asks, then
//!   keeps the connection while the method's real devices run).
//!
//! The hold: after an ACK the arbiter keeps the vote with this node for at least 2 × the
//! heartbeat interval the gate announced, counted from the gate's last message (its lease rule:
//! `(2·hb + E)·(1+ρ) + margin` after the last message, or `2·hb·(1+ρ) + margin` when it saw the
//! gate close the connection). The gate announces `hb = hold / 2` with `hold` = the device's
//! `power_timeout` (seconds, default 120; the arbiter accepts hb 1..120 s, so the hold is
//! 2..240 s). The peer's gate asking during the hold gets NACK (or no decision): it never fences.
//!
//! Attribute names: only names the stock cluster.rng accepts together. Its fencedevice
//! attributes are per-agent alternatives, and the only one holding `tlscacert`/`tlscert`/`tlskey`
//! (fence_docker's) has `ipaddr`, `ipport`, `login_timeout`, `power_timeout` but no `timeout`:
//! so the decision timeout is `login_timeout` (`timeout=` is still read, for hand-written files).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::engine::Action;
use super::power::PowerError;
use super::spec::{normalise_key, DeviceSpec, FenceTarget};
use crate::clusterconf::model::Model;
use crate::quorum::arbiter::client::{self, ClientConfig, ClientError, ClientTls, VoteHold, VoteOutcome, VoteRequest, VoteResult};
use crate::quorum::arbiter::wire::{self, TieBreaker};

/// The agent name in `<fencedevice agent=...>`.
pub const AGENT: &str = "fence_twonode_arbiter";
/// The fencedevice name `twonode conf gate-fencing` uses.
pub const DEVICE_NAME: &str = "twonode-arbiter";
/// The device parameters the gate reads (all paths or numbers, never a secret): what a caller
/// that runs the gate agent itself (doctor's monitor) passes on, as fenced would.
pub const PARAM_KEYS: &[&str] = &["ipaddr", "ip", "ipport", "tlscacert", "tlscert", "tlskey", "login_timeout", "timeout", "power_timeout"];
/// Default decision timeout (s).
pub const DEFAULT_TIMEOUT_S: f64 = 30.0;
/// Default hold (s): how long the vote stays with this node after the gate's last message.
pub const DEFAULT_HOLD_S: f64 = 120.0;

/// Is this device the arbiter gate?
pub fn is_gate(dev: &DeviceSpec) -> bool {
    is_gate_agent(dev.agent())
}

/// Is `agent` (possibly a path) the gate agent?
pub fn is_gate_agent(agent: &str) -> bool {
    agent.rsplit('/').next() == Some(AGENT)
}

/// Settings of one gate device.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GateSettings {
    pub host: String,
    pub port: u16,
    pub tls: Option<ClientTls>,
    /// Wait this long for a decision.
    pub timeout: Duration,
    /// Requested hold after the last message (≥ 2 × heartbeat).
    pub hold: Duration,
    /// Heartbeat announced (ms): hold / 2 within 1000..=120000.
    pub heartbeat_ms: u32,
}

impl GateSettings {
    /// From fence-agent parameters (keys normalised: `ipaddr`/`ip`, `ipport`, `tlscacert`,
    /// `tlscert`, `tlskey`, `login_timeout` (or `timeout`): the decision timeout, `power_timeout`:
    /// the hold).
    pub fn from_params(p: &BTreeMap<String, String>) -> Result<GateSettings, String> {
        let get = |keys: &[&str]| keys.iter().find_map(|k| p.get(*k).map(|v| v.trim()).filter(|v| !v.is_empty()));
        let host = get(&["ipaddr", "ip"]).ok_or("no ipaddr= (the arbiter's address)")?.to_string();
        let port = match get(&["ipport"]) {
            None => wire::DEFAULT_PORT,
            Some(v) => v.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| format!("ipport=\"{v}\" is not a TCP port"))?,
        };
        let files: Vec<Option<&str>> = ["tlscacert", "tlscert", "tlskey"].iter().map(|k| get(&[k])).collect();
        let tls = match (files[0], files[1], files[2]) {
            (Some(ca), Some(cert), Some(key)) => Some(ClientTls { ca: ca.into(), cert: cert.into(), key: key.into() }),
            (None, None, None) => None,
            _ => return Err("tlscacert=, tlscert= and tlskey= go together (the arbiter's CA, this cluster's certificate and its key)".into()),
        };
        let secs = |key: &str, default: f64, min: f64, max: f64| -> Result<f64, String> {
            match get(&[key]) {
                None => Ok(default),
                Some(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= min && *x <= max)
                    .ok_or_else(|| format!("{key}=\"{v}\" must be a number of seconds from {min} to {max}")),
            }
        };
        // the decision timeout: `login_timeout` (the stock cluster.rng allows tlscacert/tlscert/
        // tlskey only in an attribute set without `timeout`), `timeout` read as well
        let timeout_key = if get(&["login_timeout"]).is_some() { "login_timeout" } else { "timeout" };
        let timeout = secs(timeout_key, DEFAULT_TIMEOUT_S, 1.0, 3600.0)?;
        let hold = secs("power_timeout", DEFAULT_HOLD_S, 2.0, 240.0)?;
        let heartbeat_ms = ((hold * 1000.0 / 2.0).ceil() as u32).clamp(1000, 120_000);
        Ok(GateSettings {
            host,
            port,
            tls,
            timeout: Duration::from_secs_f64(timeout),
            hold: Duration::from_secs_f64(hold),
            heartbeat_ms,
        })
    }

    pub fn address(&self) -> String {
        ClientConfig::new(self.host.clone(), self.port, "", 0).address()
    }
}

/// The cluster as the arbiter knows it: name and node ids.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClusterIdentity {
    pub cluster: String,
    pub nodes: Vec<(String, u32)>,
    pub config_version: Option<u64>,
}

impl ClusterIdentity {
    /// From cluster.conf text (`path` for messages).
    pub fn from_conf(xml: &[u8], path: &str) -> Result<ClusterIdentity, String> {
        let (_doc, m) = Model::parse(xml).map_err(|e| format!("{path}:{}: {}", e.line, e.msg))?;
        let cluster = m.cluster_name().filter(|n| !n.is_empty()).ok_or_else(|| format!("{path}: <cluster> has no name="))?;
        let mut nodes = Vec::new();
        for n in &m.nodes {
            let name = n.name.clone().unwrap_or_default();
            let id = n.nodeid.as_deref().and_then(|v| v.trim().parse::<u32>().ok()).filter(|i| *i > 0).ok_or_else(|| {
                format!("{path}:{}: clusternode {name:?} has no numeric nodeid= (the arbiter identifies nodes by id)", n.loc.line)
            })?;
            nodes.push((name, id));
        }
        if nodes.is_empty() {
            return Err(format!("{path}: no <clusternode>"));
        }
        Ok(ClusterIdentity { cluster: cluster.to_string(), nodes, config_version: m.version() })
    }

    /// Read a cluster.conf file.
    pub fn load(path: &Path) -> Result<ClusterIdentity, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        Self::from_conf(&bytes, &path.display().to_string())
    }

    /// Node id by name (exact, then short host name).
    pub fn id_of(&self, name: &str) -> Option<u32> {
        let short = |s: &str| s.split('.').next().unwrap_or("").to_ascii_lowercase();
        self.nodes
            .iter()
            .find(|(n, _)| n == name)
            .or_else(|| self.nodes.iter().find(|(n, _)| short(n) == short(name)))
            .map(|(_, id)| *id)
    }

    pub fn name_of(&self, id: u32) -> Option<&str> {
        self.nodes.iter().find(|(_, i)| *i == id).map(|(n, _)| n.as_str())
    }
}

/// Who asks for what: the outcome of [`plan`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GatePlan {
    pub local: String,
    pub victim: String,
    pub client: ClientConfig,
    pub request: VoteRequest,
}

/// Build the request. Pure; `ring_seq` must never decrease for this node (unix ms).
pub fn plan(s: &GateSettings, id: &ClusterIdentity, local: &str, victim: &str, ring_seq: u64) -> Result<GatePlan, String> {
    let local_id = id.id_of(local).ok_or_else(|| {
        format!(
            "this node {local:?} is not a clusternode of {} (nodes: {}); set local_node= or TWONODE_LOCAL_NODE",
            id.cluster,
            id.nodes.iter().map(|n| n.0.as_str()).collect::<Vec<_>>().join(", ")
        )
    })?;
    let victim_id = id.id_of(victim).ok_or_else(|| format!("the node to fence {victim:?} is not a clusternode of {}", id.cluster))?;
    if victim_id == local_id {
        return Err(format!("{local} would fence itself: the gate refuses (nodename= names this node)"));
    }
    let local = id.name_of(local_id).unwrap_or(local).to_string();
    let victim = id.name_of(victim_id).unwrap_or(victim).to_string();
    let mut c = ClientConfig::new(s.host.clone(), s.port, id.cluster.clone(), local_id);
    c.tls = s.tls.clone();
    c.heartbeat_ms = s.heartbeat_ms;
    c.timeout = s.timeout;
    c.tie_breaker = TieBreaker::Lowest;
    c.keep_active_partition = true;
    let request = VoteRequest {
        config_nodes: id.nodes.iter().map(|n| n.1).collect(),
        members: vec![local_id],
        ring: wire::RingId { node_id: local_id, seq: ring_seq.max(1) },
        config_version: id.config_version,
    };
    Ok(GatePlan { local, victim, client: c, request })
}

/// Unix time in ms: the gate's ring seq (never decreasing for this node).
pub fn ring_seq_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(1)
}

/// The gate's verdict.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GateDecision {
    /// Fencing may go on (ACK). The only case with exit 0.
    pub allowed: bool,
    pub exit_code: i32,
    /// `ack`, `nack`, `no_decision`, or the error kind (`unreachable`, `tls`, `refused`, ...).
    pub outcome: String,
    pub message: String,
    /// What the admin should expect / do.
    pub expect: String,
    pub elapsed_ms: Option<f64>,
}

/// Pure: the arbiter's answer (or why there was none) → verdict and words.
pub fn decide(p: &GatePlan, r: &Result<VoteResult, ClientError>) -> GateDecision {
    let addr = p.client.address();
    let (l, v) = (&p.local, &p.victim);
    let deny = |outcome: &str, message: String, expect: String, ms: Option<f64>| GateDecision {
        allowed: false,
        exit_code: 1,
        outcome: outcome.into(),
        message,
        expect,
        elapsed_ms: ms,
    };
    match r {
        Ok(res) => match res.outcome {
            VoteOutcome::Ack => GateDecision {
                allowed: true,
                exit_code: 0,
                outcome: "ack".into(),
                message: format!("arbiter {addr} gave {l} the vote: {l} may fence {v}"),
                expect: format!(
                    "the vote stays with {l} for at least {:.0} s after this gate's last message, while its fence device runs",
                    2.0 * p.client.heartbeat_ms as f64 / 1000.0
                ),
                elapsed_ms: Some(res.elapsed_ms),
            },
            VoteOutcome::Nack => deny(
                "nack",
                format!("arbiter {addr} refused the vote (NACK): the other partition holds it; {l} must not fence {v}"),
                format!("expect {l} to be fenced by {v}; nothing to fix if the link between the nodes is down"),
                Some(res.elapsed_ms),
            ),
            VoteOutcome::NoDecision => deny(
                "no_decision",
                format!(
                    "arbiter {addr} gave no vote within {:.0} s (most likely {v} holds it and is fencing {l}; or the arbiter \
                     restarted less than about 80 s ago and waits out old leases): {l} does not fence {v}",
                    p.client.timeout.as_secs_f64()
                ),
                format!("expect {l} to be fenced by {v}; if {v} is really down, the arbiter grants the vote once {v}'s lease ends and fenced retries"),
                Some(res.elapsed_ms),
            ),
        },
        Err(e) => {
            let kind = match e {
                ClientError::Config(_) => "config",
                ClientError::Unreachable(_) => "unreachable",
                ClientError::Tls(_) => "tls",
                ClientError::Refused(_) => "refused",
                ClientError::Timeout(_) => "timeout",
                ClientError::Protocol(_) => "protocol",
            };
            deny(
                kind,
                format!("cannot get the vote from arbiter {addr}: {e}; no vote, no fencing: {l} does not fence {v}"),
                format!(
                    "nobody can fence while the arbiter cannot be asked: fix the arbiter ({}); fenced retries the method",
                    e.advice()
                ),
                None,
            )
        }
    }
}

/// Ask the arbiter (socket driver) and decide.
pub fn ask(p: &GatePlan) -> GateDecision {
    let r = client::ask_vote(&p.client, &p.request);
    decide(p, &r)
}

/// A decision that could not even be asked (bad settings): exit 1 with the reason.
pub fn config_failure(message: String) -> GateDecision {
    GateDecision {
        allowed: false,
        exit_code: 1,
        outcome: "config".into(),
        message: format!("arbiter gate not usable: {message}; no vote, no fencing"),
        expect: "fix the gate device in cluster.conf (twonode conf gate-fencing) or the environment; fenced retries".into(),
        elapsed_ms: None,
    }
}

// ---- probes (fence test, doctor) -------------------------------------------------------------

/// The cluster name a client certificate is for (its CN), read from a PEM file.
pub fn cluster_from_cert(path: &Path) -> Option<String> {
    let pem = std::fs::read(path).ok()?;
    let x = openssl::x509::X509::from_pem(&pem).ok()?;
    crate::quorum::arbiter::certs::cert_common_name(&x.to_der().ok()?)
}

/// Probe the arbiter of a gate device (TCP, TLS, INIT accepted, one round trip), asking for
/// nothing. The cluster name comes from the client certificate's CN (or `cluster`).
pub fn probe_device(dev: &DeviceSpec, cluster: Option<&str>, node_id: u32) -> Result<client::ProbeReport, String> {
    let s = GateSettings::from_params(&dev.params).map_err(|e| format!("device {}: {e}", dev.name))?;
    let name = s
        .tls
        .as_ref()
        .and_then(|t| cluster_from_cert(&t.cert))
        .or_else(|| cluster.map(str::to_string))
        .unwrap_or_else(|| "twonode-probe".into());
    let mut c = ClientConfig::new(s.host.clone(), s.port, name, node_id);
    c.tls = s.tls.clone();
    c.timeout = s.timeout.min(Duration::from_secs(10));
    client::probe(&c).map_err(|e| format!("{e} ({})", e.advice()))
}

/// How the fence race of a two-node cluster is decided, from its fence targets: the arbiter
/// gate (every method gated), a delay, or nothing.
pub fn race_protection(targets: &[FenceTarget]) -> String {
    let fenced: Vec<&FenceTarget> = targets.iter().filter(|t| t.methods.iter().any(|m| !m.devices.is_empty())).collect();
    let gated = |t: &FenceTarget| t.methods.iter().filter(|m| !m.devices.is_empty()).all(|m| m.devices.first().is_some_and(is_gate));
    if !fenced.is_empty() && fenced.iter().all(|t| gated(t)) {
        let g = fenced.iter().flat_map(|t| t.methods.iter()).filter_map(|m| m.devices.first()).find(|d| is_gate(d));
        let addr = g
            .map(|d| format!("{} ({}:{})", d.name, d.address().unwrap_or("?"), d.ipport().unwrap_or("5403")))
            .unwrap_or_default();
        return format!("arbiter gate {addr}: only the node holding the arbiter's vote fences (no arbiter, no fencing)");
    }
    if fenced.iter().any(|t| gated(t)) {
        return "PARTIAL arbiter gate: some methods are not gated (twonode conf validate shows which)".into();
    }
    let delayed: Vec<String> = fenced
        .iter()
        .filter(|t| {
            t.methods.iter().find(|m| !m.devices.is_empty()).is_some_and(|m| {
                m.devices.iter().any(|d| super::spec::Timing::for_device(d).map(|x| !x.delay.is_zero()).unwrap_or(false))
            })
        })
        .map(|t| t.node.clone())
        .collect();
    if delayed.is_empty() {
        "none: both nodes can fence each other at once".into()
    } else {
        format!("static delay on {} (the other node loses a race)", delayed.join(", "))
    }
}

// ---- fence-agent mode ------------------------------------------------------------------------

/// Parameters of the gate agent (metadata, getopt).
const PARAMS: &[(&str, &str, &str, Option<&str>, &str)] = &[
    ("action", "-o, --action=[action]", "string", Some("reboot"), "Fencing action (off/reboot ask the arbiter; on/status/list exit 0; monitor probes)"),
    ("ipaddr", "-a, --ip=[ip]", "string", None, "Address of the arbiter (twonode arbiter serve or corosync-qnetd)"),
    ("ipport", "-u, --ipport=[port]", "integer", Some("5403"), "TCP port of the arbiter"),
    ("tlscacert", "--tlscacert=[file]", "string", None, "CA certificate (PEM) the arbiter's certificate must chain to"),
    ("tlscert", "--tlscert=[file]", "string", None, "Client certificate (PEM, CN = cluster name)"),
    ("tlskey", "--tlskey=[file]", "string", None, "Client key (PEM); only its path is ever passed"),
    ("login_timeout", "--login-timeout=[seconds]", "second", Some("30"), "Seconds to wait for the arbiter's decision (also read as timeout=)"),
    ("power_timeout", "--power-timeout=[seconds]", "second", Some("120"), "Seconds the vote stays with this node after the gate (hold; heartbeat = hold/2)"),
    ("nodename", "-n, --plug=[node]", "string", None, "The node to fence (fenced passes nodename=)"),
    ("local_node", "--local-node=[node]", "string", None, "This node's clusternode name (default: cman_tool status, else the host name)"),
    ("cluster_conf", "--cluster-conf=[file]", "string", Some("/etc/cluster/cluster.conf"), "cluster.conf giving the cluster name and node ids"),
];

/// `-o metadata`.
pub fn metadata() -> String {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let mut x = String::from("<?xml version=\"1.0\" ?>\n");
    x.push_str(&format!("<resource-agent name=\"{AGENT}\" shortdesc=\"Arbiter gate for two_node fencing: fence only with the arbiter's vote\" >\n"));
    x.push_str("<longdesc>fence_twonode_arbiter (twonode fence gate) is placed as the first device of every fence method. Before the real device runs it asks the quorum arbiter (qnetd protocol, twonode arbiter serve) for the cluster's vote: with the vote it exits 0 and the method goes on; without it (NACK, no decision, arbiter unreachable) it exits 1 and the method stops, so only one node of a split fences the other. No arbiter, no fencing.</longdesc>\n");
    x.push_str("<vendor-url>https://github.com/twonode</vendor-url>\n<parameters>\n");
    for (name, getopt, ty, default, desc) in PARAMS {
        x.push_str(&format!(
            "\t<parameter name=\"{name}\" unique=\"0\" required=\"{}\">\n\t\t<getopt mixed=\"{}\" />\n",
            u8::from(*name == "ipaddr"),
            esc(getopt)
        ));
        let d = default.map(|d| format!(" default=\"{}\"", esc(d))).unwrap_or_default();
        x.push_str(&format!("\t\t<content type=\"{ty}\"{d} />\n\t\t<shortdesc lang=\"en\">{}</shortdesc>\n\t</parameter>\n", esc(desc)));
    }
    x.push_str("</parameters>\n<actions>\n");
    for a in ["on", "off", "reboot", "status", "monitor", "list", "metadata", "validate-all"] {
        let extra = if a == "on" { " automatic=\"0\"" } else { "" };
        x.push_str(&format!("\t<action name=\"{a}\"{extra} />\n"));
    }
    x.push_str("</actions>\n</resource-agent>\n");
    x
}

/// getopt form → parameters.
pub fn parse_args(args: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        let (key, inline) = if let Some(long) = a.strip_prefix("--") {
            let (n, v) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let k = match normalise_key(n).as_str() {
                "ip" => "ipaddr".to_string(),
                "plug" | "port" => "nodename".to_string(),
                other => other.to_string(),
            };
            let k = if k == "timeout" { "login_timeout".to_string() } else { k };
            if k != "verbose" && !PARAMS.iter().any(|p| p.0 == k) {
                return Err(format!("unknown option --{n}"));
            }
            (k, v)
        } else if let Some(s) = a.strip_prefix('-').filter(|s| !s.is_empty()) {
            let mut ch = s.chars();
            let k = match ch.next() {
                Some('o') => "action",
                Some('a') => "ipaddr",
                Some('u') => "ipport",
                Some('n') => "nodename",
                Some('v') => "verbose",
                Some(c) => return Err(format!("unknown option -{c}")),
                None => return Err("empty option".into()),
            };
            let rest: String = ch.collect();
            (k.to_string(), if rest.is_empty() { None } else { Some(rest) })
        } else {
            return Err(format!("unexpected argument \"{a}\""));
        };
        let v = if key == "verbose" {
            "1".to_string()
        } else {
            match inline {
                Some(v) => v,
                None => {
                    let v = args.get(i).cloned().ok_or_else(|| format!("option {a} needs a value"))?;
                    i += 1;
                    v
                }
            }
        };
        out.insert(key, v);
    }
    Ok(out)
}

/// stdin `key=value` (fenced's convention) → parameters; `port=`/`plug=` name the victim too.
pub fn parse_stdin(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else { continue };
        let v = v.trim();
        let v = v.strip_prefix('"').and_then(|x| x.strip_suffix('"')).unwrap_or(v);
        let v = v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')).unwrap_or(v);
        let k = match normalise_key(k).as_str() {
            "ip" => "ipaddr".to_string(),
            other => other.to_string(),
        };
        out.insert(k, v.to_string());
    }
    out
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
    if let Some(v) = std::env::var_os("TWONODE_CLUSTER_CONF").filter(|v| !v.is_empty()) {
        return PathBuf::from(v);
    }
    crate::clusterconf::store::ConfStore::default_live()
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

fn audit_log(path: Option<&Path>) -> super::audit::AuditLog {
    let env_path = std::env::var_os("TWONODE_FENCE_AUDIT_LOG").map(PathBuf::from);
    super::audit::AuditLog::open(path.or(env_path.as_deref()))
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

// ---- twonode's own engine: ask first, keep holding while the method runs ----------------------

/// Asks the arbiter for the engine (`twonode fence NODE --file`), keeping the connection (and so
/// the vote) while the method's real devices run.
pub struct RealGatekeeper {
    pub identity: ClusterIdentity,
    pub local: String,
    /// Decisions made (for reports).
    pub decisions: Vec<GateDecision>,
}

impl RealGatekeeper {
    pub fn new(identity: ClusterIdentity, local: String) -> Self {
        RealGatekeeper { identity, local, decisions: Vec::new() }
    }
}

impl super::engine::Gatekeeper for RealGatekeeper {
    fn acquire(&mut self, gate: &DeviceSpec, target: &FenceTarget, action: Action) -> Result<Box<dyn std::any::Any>, PowerError> {
        let _ = action;
        let settings = GateSettings::from_params(&gate.params).map_err(|e| PowerError::Config(format!("device {}: {e}", gate.name)))?;
        let p = plan(&settings, &self.identity, &self.local, &target.node, ring_seq_now()).map_err(PowerError::Config)?;
        let r = client::ask_and_hold(&p.client, &p.request);
        let (d, hold): (GateDecision, Option<VoteHold>) = match r {
            Ok((res, hold)) => (decide(&p, &Ok(res)), hold),
            Err(e) => (decide(&p, &Err(e)), None),
        };
        self.decisions.push(d.clone());
        match (d.allowed, hold) {
            (true, Some(h)) => Ok(Box::new(h)),
            (true, None) => Err(PowerError::Protocol("ACK without a hold".into())),
            _ => Err(gate_error(&d)),
        }
    }
}

/// A denied gate as the engine's error: NACK / no decision are "refused" (Config → exit 1).
pub fn gate_error(d: &GateDecision) -> PowerError {
    PowerError::Config(format!("{} ({})", d.message, d.expect))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const CONF: &str = r#"<?xml version="1.0"?>
<cluster name="gclu" config_version="7">
  <cman two_node="1" expected_votes="1"/>
  <clusternodes>
    <clusternode name="node1.example.com" nodeid="1"/>
    <clusternode name="node2.example.com" nodeid="2"/>
  </clusternodes>
</cluster>"#;

    #[test]
    fn settings_from_params_and_hold_formula() {
        let s = GateSettings::from_params(&params(&[("ipaddr", "10.0.0.9")])).unwrap();
        assert_eq!((s.port, s.heartbeat_ms, s.timeout.as_secs()), (5403, 60_000, 30));
        assert!(s.tls.is_none());
        let s = GateSettings::from_params(&params(&[("ip", "a"), ("power_timeout", "10"), ("timeout", "3")])).unwrap();
        assert_eq!(s.heartbeat_ms, 5000);
        assert!(GateSettings::from_params(&params(&[("ipaddr", "a"), ("power_timeout", "1000")])).is_err());
        assert!(GateSettings::from_params(&params(&[("ipaddr", "a"), ("tlscert", "/x")])).is_err());
        assert!(GateSettings::from_params(&params(&[])).unwrap_err().contains("ipaddr"));
    }

    #[test]
    fn plan_resolves_ids_and_refuses_self() {
        let id = ClusterIdentity::from_conf(CONF.as_bytes(), "c.conf").unwrap();
        let s = GateSettings::from_params(&params(&[("ipaddr", "127.0.0.1")])).unwrap();
        let p = plan(&s, &id, "node2", "node1.example.com", 42).unwrap();
        assert_eq!(p.client.node_id, 2);
        assert_eq!(p.client.cluster, "gclu");
        assert_eq!(p.request.members, vec![2]);
        assert_eq!(p.request.config_nodes, vec![1, 2]);
        assert_eq!(p.request.ring, wire::RingId { node_id: 2, seq: 42 });
        assert_eq!(p.local, "node2.example.com");
        assert!(plan(&s, &id, "node1", "node1", 1).unwrap_err().contains("fence itself"));
        assert!(plan(&s, &id, "nodeX", "node1", 1).unwrap_err().contains("not a clusternode"));
    }

    #[test]
    fn only_an_ack_opens_the_gate() {
        let id = ClusterIdentity::from_conf(CONF.as_bytes(), "c.conf").unwrap();
        let s = GateSettings::from_params(&params(&[("ipaddr", "127.0.0.1")])).unwrap();
        let p = plan(&s, &id, "node1", "node2", 1).unwrap();
        let res = |o| VoteResult { outcome: o, address: "x".into(), ring: p.request.ring, tls: true, elapsed_ms: 3.0, heartbeat_ms: 60_000 };
        let d = decide(&p, &Ok(res(VoteOutcome::Ack)));
        assert!(d.allowed && d.exit_code == 0);
        assert_eq!(d.message, "arbiter 127.0.0.1:5403 gave node1.example.com the vote: node1.example.com may fence node2.example.com");
        let d = decide(&p, &Ok(res(VoteOutcome::Nack)));
        assert!(!d.allowed && d.exit_code == 1 && d.message.contains("NACK") && d.expect.contains("to be fenced"));
        let d = decide(&p, &Ok(res(VoteOutcome::NoDecision)));
        assert!(!d.allowed && d.exit_code == 1 && d.message.contains("no vote within 30 s"));
        for e in [
            ClientError::Unreachable("refused".into()),
            ClientError::Tls("x".into()),
            ClientError::Refused("x".into()),
            ClientError::Timeout("x".into()),
            ClientError::Protocol("x".into()),
            ClientError::Config("x".into()),
        ] {
            let d = decide(&p, &Err(e));
            assert!(!d.allowed && d.exit_code == 1, "{d:?}");
            assert!(d.message.contains("no vote, no fencing") && d.expect.contains("fix the arbiter"), "{d:?}");
        }
    }

    /// The engine with a simulated gatekeeper and simulated devices: NACK touches no device; an
    /// ACK's hold lives exactly as long as the method's devices run.
    #[test]
    fn engine_asks_first_and_holds_through_the_method() {
        use crate::fence::engine::{Engine, Gatekeeper, NoObserver, RunOptions, Verdict};
        use crate::fence::power::PowerState;
        use crate::fence::sim::{SimClock, SimOpener};
        use crate::fence::spec::Method;
        use std::cell::RefCell;
        use std::rc::Rc;
        struct Hold(Rc<RefCell<Vec<String>>>);
        impl Drop for Hold {
            fn drop(&mut self) {
                self.0.borrow_mut().push("released".into());
            }
        }
        struct Fake {
            ack: bool,
            log: Rc<RefCell<Vec<String>>>,
        }
        impl Gatekeeper for Fake {
            fn acquire(&mut self, _g: &DeviceSpec, t: &FenceTarget, a: Action) -> Result<Box<dyn std::any::Any>, PowerError> {
                self.log.borrow_mut().push(format!("ask {} {}", t.node, a.as_str()));
                if self.ack {
                    Ok(Box::new(Hold(self.log.clone())))
                } else {
                    Err(PowerError::Config("arbiter refused the vote (NACK)".into()))
                }
            }
        }
        let gate = DeviceSpec::new("twonode-arbiter", vec![("agent".to_string(), AGENT.to_string()), ("ipaddr".into(), "127.0.0.1".into())]);
        let bmc = DeviceSpec::new("bmc", vec![("agent".to_string(), "fence_sim".to_string())]);
        let target = FenceTarget { node: "node2".into(), nodeid: None, methods: vec![Method { name: "ipmi".into(), devices: vec![gate.clone(), bmc.clone()] }] };
        for ack in [false, true] {
            let clock = SimClock::new();
            let mut op = SimOpener::new(clock.clone());
            let dev = op.add("bmc", PowerState::On);
            let log = Rc::new(RefCell::new(Vec::new()));
            let mut k = Fake { ack, log: log.clone() };
            let mut obs = NoObserver;
            let r = Engine::new(&clock, &mut op, &mut obs).with_gatekeeper(&mut k).run(&target, Action::Off, &RunOptions::default());
            if ack {
                assert!(matches!(r.verdict, Verdict::Done), "{r:?}");
                assert_eq!(dev.borrow().power, PowerState::Off);
                assert_eq!(log.borrow().as_slice(), ["ask node2 off", "released"]);
                assert_eq!(r.steps[0].op, "gate");
            } else {
                assert_eq!(r.exit_code(), 1, "{r:?}");
                assert!(r.message.contains("NACK"), "{}", r.message);
                assert!(dev.borrow().log.is_empty(), "no device touched: {:?}", dev.borrow().log);
                assert_eq!(dev.borrow().power, PowerState::On);
            }
            // status never asks
            let r = Engine::new(&clock, &mut op, &mut obs).with_gatekeeper(&mut k).run(&target, Action::Status, &RunOptions::default());
            assert!(matches!(r.verdict, Verdict::StatusOn | Verdict::StatusOff), "{r:?}");
            assert_eq!(log.borrow().iter().filter(|l| l.starts_with("ask")).count(), 1);
        }
        // without a gatekeeper a gated method never runs; a gate not first is refused
        let clock = SimClock::new();
        let mut op = SimOpener::new(clock.clone());
        let dev = op.add("bmc", PowerState::On);
        let mut obs = NoObserver;
        let r = Engine::new(&clock, &mut op, &mut obs).run(&target, Action::Reboot, &RunOptions::default());
        assert_eq!(r.exit_code(), 1);
        let wrong = FenceTarget { node: "node2".into(), nodeid: None, methods: vec![Method { name: "m".into(), devices: vec![bmc, gate] }] };
        let r = Engine::new(&clock, &mut op, &mut obs).run(&wrong, Action::Off, &RunOptions::default());
        assert!(r.message.contains("must be the first"), "{}", r.message);
        assert!(dev.borrow().log.is_empty());
    }

    #[test]
    fn agent_input_conventions() {
        let p = parse_stdin("agent=fence_twonode_arbiter\nipaddr=\"10.1.1.1\"\nnodename=node2\naction=off\ntlskey=/k\n");
        assert_eq!(victim_of(&p).as_deref(), Some("node2"));
        assert_eq!(p["ipaddr"], "10.1.1.1");
        let a: Vec<String> = ["-o", "off", "-a", "h", "-u", "1234", "-n", "node2", "--tlskey=/k", "--local-node", "node1"].iter().map(|s| s.to_string()).collect();
        let p = parse_args(&a).unwrap();
        assert_eq!((p["action"].as_str(), p["ipport"].as_str(), p["nodename"].as_str(), p["local_node"].as_str()), ("off", "1234", "node2", "node1"));
        assert!(parse_args(&["--password=x".to_string()]).is_err());
        // unusable settings: exit 1, never 0
        let code = run_agent(&[], &mut "action=off\nnodename=node2\n".as_bytes(), Some(Path::new("/dev/null")));
        assert_eq!(code, 1);
        assert_eq!(run_agent(&[], &mut "action=status\n".as_bytes(), None), 0);
        assert!(metadata().contains("<parameter name=\"tlscacert\""));
    }
}
