//! Probes of the arbiter through a gate device (fence test, doctor, `quorum status`): TCP, TLS,
//! INIT accepted, one round trip; no vote is ever asked.
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fence::spec::DeviceSpec;
use crate::quorum::arbiter::client::{self, ClientConfig};

use super::layout::GateConf;
use super::settings::GateSettings;

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


/// A certificate file as read (PEM: public, never a key).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertFacts {
    pub path: String,
    pub pem: Option<String>,
    pub error: Option<String>,
}

/// What probing the arbiter through the gate's client gave.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GateProbe {
    /// HOST:PORT of the arbiter (from the gate device).
    pub target: String,
    /// How far it was checked: "init" (TCP + TLS + INIT accepted) or "tcp" (connect only).
    pub depth: String,
    pub ok: bool,
    pub rtt_ms: Option<f64>,
    /// What the arbiter said / the client saw (for the evidence).
    pub detail: Option<String>,
    pub error: Option<String>,
    /// The client certificate used for the probe (on the machine running doctor).
    pub cert: Option<CertFacts>,
}

/// Probe the arbiter the way the gate reaches it: the gate's client
/// ([`crate::quorum::arbiter::client::probe`]: TCP, STARTTLS with the gate's CA/cert/key, INIT for
/// this cluster with a probe node id, one echo). When the certificate files are not on this
/// machine (doctor run from elsewhere) only a TCP connect is tried (depth "tcp").
pub fn probe_gate(g: &GateConf, cluster: &str, node_id: u32, timeout: std::time::Duration) -> GateProbe {
    use crate::quorum::arbiter::client::{self, ClientConfig, ClientError, ClientTls};
    let mut p = GateProbe { target: g.target(), depth: "init".into(), ..Default::default() };
    if let Some(c) = &g.cert {
        p.cert = Some(read_cert_local(c));
    }
    let mut cfg = ClientConfig::new(g.host.clone(), g.port, cluster, node_id);
    cfg.connect_timeout = timeout;
    cfg.timeout = timeout.max(std::time::Duration::from_secs(10));
    if let (Some(ca), Some(cert), Some(key)) = (&g.ca, &g.cert, &g.key) {
        cfg.tls = Some(ClientTls { ca: ca.into(), cert: cert.into(), key: key.into() });
    }
    let missing: Vec<&str> = cfg
        .tls
        .as_ref()
        .map(|t| [&t.ca, &t.cert, &t.key].into_iter().filter(|f| !f.exists()).filter_map(|f| f.to_str()).collect())
        .unwrap_or_default();
    if !missing.is_empty() {
        return probe_tcp(p, g, timeout, format!("the gate's files {} are not on this machine", missing.join(", ")));
    }
    match client::probe(&cfg) {
        Ok(r) => {
            p.ok = true;
            p.rtt_ms = Some(r.rtt_ms);
            p.detail = Some(format!(
                "TLS {} (the arbiter offers TLS {}), INIT accepted in {:.1} ms, algorithms {}",
                if r.tls { "used" } else { "NOT used" },
                r.server_tls,
                r.init_ms,
                r.algorithms.join(",")
            ));
        }
        Err(ClientError::Config(e)) => return probe_tcp(p, g, timeout, format!("the gate's client cannot start here: {e}")),
        Err(e) => p.error = Some(format!("{e} ({})", e.advice())),
    }
    p
}

fn probe_tcp(mut p: GateProbe, g: &GateConf, timeout: std::time::Duration, why: String) -> GateProbe {
    use std::net::ToSocketAddrs;
    p.depth = "tcp".into();
    let t0 = std::time::Instant::now();
    match (g.host.as_str(), g.port).to_socket_addrs() {
        Ok(mut it) => match it.next() {
            Some(addr) => match std::net::TcpStream::connect_timeout(&addr, timeout) {
                Ok(_) => {
                    p.ok = true;
                    p.rtt_ms = Some(t0.elapsed().as_secs_f64() * 1000.0);
                    p.detail = Some(why);
                }
                Err(e) => p.error = Some(format!("connecting to {addr}: {e} ({why}: TCP only)")),
            },
            None => p.error = Some(format!("{} has no address", g.host)),
        },
        Err(e) => p.error = Some(format!("{} does not resolve: {e}", g.host)),
    }
    p
}

/// A certificate file read on this machine.
pub fn read_cert_local(path: &str) -> CertFacts {
    match std::fs::read_to_string(path) {
        Ok(t) => CertFacts { path: path.into(), pem: Some(t), error: None },
        Err(e) => CertFacts { path: path.into(), pem: None, error: Some(e.to_string()) },
    }
}

