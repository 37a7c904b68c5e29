//! The UDP side of the SNMP layer: one request, one matching response, retried on silence.
//! Replies whose request-id or community do not match are dropped (stale answers to an earlier try).
use super::{decode_message, encode_request, error_status_name, Oid, PduKind, Value, Version};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

/// Why an SNMP exchange failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnmpError {
    /// The address could not be resolved or no socket could be opened.
    Address(String),
    /// No (matching) answer after every try. v1/v2c agents drop a wrong community silently, so
    /// this is also what a wrong community looks like.
    NoAnswer(String),
    /// The agent answered with an error-status (noSuchName, notWritable, wrongValue, ...).
    Agent { status: i64, index: i64, oid: Option<Oid>, text: String },
    /// The answer was not a well-formed response.
    Malformed(String),
}

impl std::fmt::Display for SnmpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnmpError::Address(s) | SnmpError::NoAnswer(s) | SnmpError::Malformed(s) => f.write_str(s),
            SnmpError::Agent { text, .. } => f.write_str(text),
        }
    }
}

/// Connection settings. `community` is a secret (the v1/v2c password): never in logs.
#[derive(Clone)]
pub struct ClientConfig {
    pub host: String,
    pub port: u16,
    pub version: Version,
    pub community: Vec<u8>,
    /// Wait per try, and how many tries (net-snmp's default is 1 s and 1 + 5 retries).
    pub timeout: Duration,
    pub tries: u32,
    /// Restrict to IPv4 / IPv6 addresses (fence-agents' inet4_only / inet6_only).
    pub inet4_only: bool,
    pub inet6_only: bool,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("version", &self.version)
            .field("community", &"********")
            .field("timeout", &self.timeout)
            .field("tries", &self.tries)
            .finish()
    }
}

pub struct Client {
    cfg: ClientConfig,
    socket: UdpSocket,
    peer: SocketAddr,
    next_id: i32,
}

impl Client {
    pub fn open(cfg: ClientConfig) -> Result<Client, SnmpError> {
        let addrs: Vec<SocketAddr> = (cfg.host.as_str(), cfg.port)
            .to_socket_addrs()
            .map_err(|e| SnmpError::Address(format!("cannot resolve {}: {e}", cfg.host)))?
            .filter(|a| if a.is_ipv4() { !cfg.inet6_only } else { !cfg.inet4_only })
            .collect();
        let peer = *addrs.first().ok_or_else(|| SnmpError::Address(format!("{} has no usable address", cfg.host)))?;
        let bind: SocketAddr = if peer.is_ipv4() { "0.0.0.0:0".parse().unwrap() } else { "[::]:0".parse().unwrap() };
        let socket = UdpSocket::bind(bind).map_err(|e| SnmpError::Address(format!("cannot open a UDP socket: {e}")))?;
        socket.connect(peer).map_err(|e| SnmpError::Address(format!("cannot reach {peer}: {e}")))?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(1)
            ^ std::process::id();
        Ok(Client { cfg, socket, peer, next_id: (seed & 0x3FFF_FFFF) as i32 + 1 })
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Send one request and return the response's varbinds (error-status checked).
    pub fn request(&mut self, kind: PduKind, varbinds: &[(Oid, Value)]) -> Result<Vec<(Oid, Value)>, SnmpError> {
        let id = self.next_id;
        self.next_id = if self.next_id >= 0x7FFF_FFF0 { 1 } else { self.next_id + 1 };
        let bytes = encode_request(self.cfg.version, &self.cfg.community, kind, id, varbinds);
        let mut buf = vec![0u8; 65_535];
        let tries = self.cfg.tries.max(1);
        let mut refused = None;
        for _ in 0..tries {
            if let Err(e) = self.socket.send(&bytes) {
                refused = Some(e.to_string());
                std::thread::sleep(self.cfg.timeout.min(Duration::from_millis(200)));
                continue;
            }
            let deadline = Instant::now() + self.cfg.timeout;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                self.socket.set_read_timeout(Some(left)).map_err(|e| SnmpError::Address(e.to_string()))?;
                let n = match self.socket.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break,
                    Err(e) => {
                        // ICMP port unreachable shows up here on a connected socket
                        refused = Some(e.to_string());
                        std::thread::sleep(left.min(Duration::from_millis(200)));
                        break;
                    }
                };
                let Ok(msg) = decode_message(&buf[..n]) else { continue };
                if msg.pdu.request_id != id || msg.community != self.cfg.community || msg.pdu.kind != PduKind::Response {
                    continue;
                }
                let pdu = msg.pdu;
                if pdu.error_status != 0 {
                    let oid = usize::try_from(pdu.error_index)
                        .ok()
                        .and_then(|i| i.checked_sub(1))
                        .and_then(|i| varbinds.get(i))
                        .map(|(o, _)| o.clone());
                    let text = format!(
                        "{} answered {} (error-status {}){}",
                        self.peer,
                        error_status_name(pdu.error_status),
                        pdu.error_status,
                        oid.as_ref().map(|o| format!(" for {o}")).unwrap_or_default()
                    );
                    return Err(SnmpError::Agent { status: pdu.error_status, index: pdu.error_index, oid, text });
                }
                if pdu.varbinds.len() != varbinds.len() {
                    return Err(SnmpError::Malformed(format!(
                        "{} answered {} values to a request for {}",
                        self.peer,
                        pdu.varbinds.len(),
                        varbinds.len()
                    )));
                }
                return Ok(pdu.varbinds);
            }
        }
        let total = self.cfg.timeout * tries;
        Err(SnmpError::NoAnswer(match refused {
            Some(e) => format!("no SNMP agent at {} ({e})", self.peer),
            None => format!(
                "no answer from {} in {:.1} s ({tries} tries, SNMP {}): the device is down or unreachable, \
                 or it drops the request because the community or SNMP version is wrong",
                self.peer,
                total.as_secs_f64(),
                self.cfg.version
            ),
        }))
    }

    /// GET one object. A v2c exception (noSuchObject/noSuchInstance) comes back as its value.
    pub fn get(&mut self, oid: &Oid) -> Result<Value, SnmpError> {
        let mut vbs = self.request(PduKind::Get, &[(oid.clone(), Value::Null)])?;
        Ok(vbs.remove(0).1)
    }

    /// SET one object; returns the value the agent echoes.
    pub fn set(&mut self, oid: &Oid, value: Value) -> Result<Value, SnmpError> {
        let mut vbs = self.request(PduKind::Set, &[(oid.clone(), value)])?;
        Ok(vbs.remove(0).1)
    }

    /// Every object under `prefix`, in order (GETNEXT until the subtree ends), at most `max`.
    pub fn walk(&mut self, prefix: &Oid, max: usize) -> Result<Vec<(Oid, Value)>, SnmpError> {
        let mut out = Vec::new();
        let mut cur = prefix.clone();
        loop {
            let next = match self.request(PduKind::GetNext, &[(cur.clone(), Value::Null)]) {
                Ok(mut v) => v.remove(0),
                // v1 signals the end of the MIB view this way
                Err(SnmpError::Agent { status: 2, .. }) if self.cfg.version == super::Version::V1 => break,
                Err(e) => return Err(e),
            };
            if next.1 == Value::EndOfMibView || !next.0.starts_with(prefix) {
                break;
            }
            if next.0 <= cur {
                return Err(SnmpError::Malformed(format!("{}: GETNEXT from {cur} went back to {}", self.peer, next.0)));
            }
            cur = next.0.clone();
            out.push(next);
            if out.len() >= max {
                return Err(SnmpError::Malformed(format!("{}: more than {max} objects under {prefix}", self.peer)));
            }
        }
        Ok(out)
    }
}
