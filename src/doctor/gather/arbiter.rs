//! The arbiter contacted directly: `--arbiter HOST:PORT` (a TCP connect) or its status socket
//! (the JSON status read), and, when doctor runs on the arbiter machine, its own TLS files named
//! in its config.
use super::read_cert_local;
use crate::doctor::facts::{ArbiterFacts, CertFacts};
use crate::quorum::arbiter::server::{query_status, ServerConfig};
use crate::quorum::arbiter::wire::TlsSupported;
use std::path::Path;
use std::time::Duration;

/// Contact the arbiter: a status socket when `target` holds a `/`, else HOST:PORT.
pub fn contact(target: &str, timeout: Duration) -> ArbiterFacts {
    let mut a = ArbiterFacts { target: target.to_string(), ..Default::default() };
    if target.contains('/') {
        match query_status(Path::new(target)) {
            Ok(v) => {
                a.reachable = true;
                a.status = Some(v);
            }
            Err(e) => a.error = Some(format!("{e:#}")),
        }
    } else {
        use std::net::ToSocketAddrs;
        match target.to_socket_addrs() {
            Ok(mut it) => match it.next() {
                Some(addr) => match std::net::TcpStream::connect_timeout(&addr, timeout) {
                    Ok(_) => a.reachable = true,
                    Err(e) => a.error = Some(format!("connecting to {addr}: {e}")),
                },
                None => a.error = Some(format!("{target} has no address")),
            },
            Err(e) => a.error = Some(format!("{target} is not HOST:PORT or does not resolve: {e}")),
        }
    }
    a
}

/// The arbiter's server and CA certificates named in its config at `path` (none when it runs
/// without TLS; the config's own error when it does not load).
pub fn own_certs(path: &Path) -> Vec<(String, CertFacts)> {
    match ServerConfig::load(path) {
        Ok(cfg) if cfg.arbiter.tls != TlsSupported::Unsupported => [("server certificate", &cfg.tls.cert), ("CA certificate", &cfg.tls.ca)]
            .into_iter()
            .map(|(what, p)| (what.to_string(), read_cert_local(&p.to_string_lossy())))
            .collect(),
        Ok(_) => Vec::new(),
        Err(e) => vec![("config".into(), CertFacts { path: path.display().to_string(), pem: None, error: Some(format!("{e:#}")) })],
    }
}
