//! The gate device's settings (device parameters -> [`GateSettings`]) and the cluster as the
//! arbiter knows it ([`ClusterIdentity`]). Pure.
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::clusterconf::model::Model;
use crate::fence::spec::DeviceSpec;
use crate::quorum::arbiter::client::{ClientConfig, ClientTls};
use crate::quorum::arbiter::wire;

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
        // one option layer: any spelling of an option (`ip`/`ipaddr`) reads the same
        let get = |keys: &[&str]| keys.iter().find_map(|k| crate::fence::options::get(p, k).map(str::trim));
        let host = get(&["ipaddr"]).ok_or("no ipaddr= (the arbiter's address)")?.to_string();
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
        Self::from_model(&m, path)
    }

    /// From an already parsed cluster.conf (`spec::ClusterConf`: one read, one parse per fence).
    pub fn from_model(m: &Model, path: &str) -> Result<ClusterIdentity, String> {
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

