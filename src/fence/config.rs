//! Typed driver configs, built ONCE from a device's parameters through the one option layer
//! ([`super::options`]) and the engine's [`Timing`]: [`ipmi`] (→ `ipmi::IpmiConfig`), [`WebBmc`]
//! (what the HTTPS drivers, RIBCL and Redfish, share: address, port, login, password, TLS,
//! timeouts). The drivers parse only their own extensions (RIBCL's escape mode, Redfish's URIs).
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::ipmi::{IpmiConfig, Privilege};
use super::options;
use super::power::PowerError;
use super::spec::{DeviceSpec, Timing};
use super::tls::{self, TlsOptions};

fn cfg(e: String) -> PowerError {
    PowerError::Config(e)
}

/// IPMI settings from fence_ipmilan's parameters and the engine's timing.
pub fn ipmi(dev: &DeviceSpec, timing: &Timing) -> Result<IpmiConfig, PowerError> {
    let host = dev.address().ok_or_else(|| cfg(format!("device {}: no ipaddr= for the BMC", dev.name)))?.to_string();
    let port = match dev.ipport() {
        None => 623,
        Some(p) => p
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| cfg(format!("device {}: ipport=\"{p}\" is not a UDP port", dev.name)))?,
    };
    // unset: negotiated with the BMC (17 when offered, else 3), as ipmitool does
    let cipher = match dev.get(&["cipher"]).map(str::trim).filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(c.parse::<u8>().map_err(|_| cfg(format!("device {}: cipher=\"{c}\" is not a cipher suite number", dev.name)))?),
    };
    let privilege = Privilege::parse(dev.get(&["privlvl"]).unwrap_or("administrator")).map_err(|e| cfg(format!("device {}: {e}", dev.name)))?;
    // fence_ipmilan allows an empty password
    let password = dev.password().map_err(PowerError::Config)?;
    Ok(IpmiConfig {
        host,
        port,
        username: dev.login().unwrap_or("").to_string(),
        password,
        cipher,
        privilege,
        timeout: timing.login_timeout,
        retries: 1,
    })
}

/// A boolean parameter (absent: false).
pub fn flag(p: &BTreeMap<String, String>, name: &str) -> Result<bool, PowerError> {
    options::flag(p, name).map(|v| v.unwrap_or(false)).map_err(cfg)
}

/// Seconds (0..3600, at least 0.1): the parameter, else the engine's timing, else `default`.
pub fn seconds(p: &BTreeMap<String, String>, name: &str, timing: Option<Duration>, default: f64) -> Result<Duration, PowerError> {
    match options::seconds(p, name, 3600.0).map_err(cfg)? {
        Some(d) => Ok(d.max(Duration::from_secs_f64(0.1))),
        None => Ok(timing.unwrap_or(Duration::from_secs_f64(default)).max(Duration::from_secs_f64(0.1))),
    }
}

/// The TLS client of an HTTPS BMC: `ssl_insecure`, `ssl_ca` (PEM, twonode extension).
pub fn tls_client(p: &BTreeMap<String, String>) -> Result<(Arc<rustls::ClientConfig>, &'static str), PowerError> {
    let insecure = flag(p, "ssl_insecure")?;
    let ca_file = ["ssl_ca", "ca", "ca_file"].iter().find_map(|k| options::lookup(p, k)).map(std::path::PathBuf::from);
    let opts = TlsOptions { insecure, ca_file: ca_file.clone() };
    let desc = if insecure {
        "certificate NOT checked (ssl_insecure)"
    } else if ca_file.is_some() {
        "certificate checked against ssl_ca"
    } else {
        "certificate checked against the web roots"
    };
    Ok((tls::client_config(&opts)?, desc))
}

/// Which HTTPS BMC (for messages and defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebKind {
    /// fence_ilo (RIBCL): login_timeout 10 s.
    Ilo,
    /// fence_redfish: login_timeout 5 s, `ip=HOST:PORT` accepted.
    Redfish,
}

/// What RIBCL and Redfish share, parsed once.
pub struct WebBmc {
    pub host: String,
    pub port: u16,
    pub login: String,
    pub password: String,
    pub tls: Arc<rustls::ClientConfig>,
    pub tls_desc: &'static str,
    pub login_timeout: Duration,
    pub power_timeout: Duration,
}

impl WebBmc {
    /// From fence_ilo / fence_redfish parameters: ipaddr/ip, ipport (443), login/username,
    /// passwd/password or passwd_script (required), ssl_insecure, ssl_ca, login_timeout,
    /// power_timeout (a parameter, else the engine's `timing`, else the agent's default).
    pub fn from_params(p: &BTreeMap<String, String>, kind: WebKind, timing: Option<&Timing>) -> Result<WebBmc, PowerError> {
        let (agent, label, login_default) = match kind {
            WebKind::Ilo => ("fence_ilo", "iLO", 10.0),
            WebKind::Redfish => ("fence_redfish", "Redfish", 5.0),
        };
        let mut host = options::lookup(p, "ipaddr")
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| cfg(format!("{agent} device: no address: give ipaddr=HOST")))?
            .trim()
            .to_string();
        let mut port: u16 = match options::lookup(p, "ipport") {
            None => 443,
            Some(v) => v.trim().parse().map_err(|_| cfg(format!("ipport={v:?}: expected a TCP port number")))?,
        };
        // fence_redfish accepts ip=HOST:PORT.
        if kind == WebKind::Redfish && host.matches(':').count() == 1 {
            if let Some((h, pt)) = host.clone().split_once(':') {
                port = pt.parse().map_err(|_| cfg(format!("ip={host:?}: bad port after ':'")))?;
                host = h.to_string();
            }
        }
        let login = options::lookup(p, "login").ok_or_else(|| cfg(format!("{label} {host}: no user: give login=NAME")))?.to_string();
        let password = options::password(p).map_err(cfg)?.ok_or_else(|| cfg("no password: give passwd=... or passwd_script=...".into()))?;
        let (tls, tls_desc) = tls_client(p)?;
        Ok(WebBmc {
            host,
            port,
            login,
            password,
            tls,
            tls_desc,
            login_timeout: seconds(p, "login_timeout", timing.map(|t| t.login_timeout), login_default)?,
            power_timeout: seconds(p, "power_timeout", timing.map(|t| t.power_timeout), 20.0)?,
        })
    }
}
