//! The socket side of the RMCP+ client: one connected UDP socket, retransmission, time limits
//! and the order of the exchanges. Every decision about bytes is made in `super::client`.
use super::client::{self, Handshake, Login, Session};
use super::crypto::Suite;
use super::packet::{self, ptype, Datagram, IpmiMessage};
use crate::fence::power::PowerError;
use std::net::{ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

/// How a session is opened.
#[derive(Clone, Debug)]
pub struct Options {
    pub login: Login,
    /// The cipher suite to use; None = ask the BMC (Get Channel Cipher Suites) and take 17 when
    /// offered, else 3, as ipmitool does.
    pub suite: Option<Suite>,
    /// Time allowed for each exchange (retransmitting within it).
    pub timeout: Duration,
}

/// What happened while choosing the suite (for logs and `describe`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Negotiation {
    /// cipher= was set.
    Configured,
    /// The BMC listed these suites.
    Offered(Vec<u8>),
    /// The BMC refused Get Channel Cipher Suites (completion code): suite 3 assumed, as ipmitool does.
    NotListed(u8),
}

struct Link {
    sock: UdpSocket,
    target: String,
    timeout: Duration,
    heard: bool,
}

impl Link {
    fn new(host: &str, port: u16, target: &str, timeout: Duration) -> Result<Link, PowerError> {
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(|e| PowerError::Unreachable(format!("{target}: cannot resolve {host}: {e}")))?
            .next()
            .ok_or_else(|| PowerError::Unreachable(format!("{target}: {host} has no address")))?;
        let local = if addr.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
        let io = |e: std::io::Error| PowerError::Unreachable(format!("{target}: UDP socket: {e}"));
        let sock = UdpSocket::bind(local).map_err(io)?;
        sock.connect(addr).map_err(io)?;
        Ok(Link { sock, target: target.to_string(), timeout, heard: false })
    }

    /// Send what `build(attempt)` makes until `accept` takes a reply or the time is up.
    fn exchange<T>(
        &mut self,
        what: &str,
        mut build: impl FnMut(u32) -> Vec<u8>,
        mut accept: impl FnMut(&[u8]) -> Result<Option<T>, PowerError>,
    ) -> Result<T, PowerError> {
        let start = Instant::now();
        let every = (self.timeout / 4).clamp(Duration::from_millis(250), Duration::from_secs(1));
        let mut buf = [0u8; 1024];
        let mut attempt = 0;
        loop {
            let out = build(attempt);
            attempt += 1;
            if let Err(e) = self.sock.send(&out) {
                return Err(self.io_error(what, &e));
            }
            let resend_at = start.elapsed() + every;
            loop {
                let now = start.elapsed();
                if now >= self.timeout {
                    return Err(if self.heard {
                        PowerError::Timeout(format!("{}: {what}: no reply within {:.1} s; the BMC stopped answering", self.target, self.timeout.as_secs_f64()))
                    } else {
                        PowerError::Unreachable(format!(
                            "{}: {what}: no reply within {:.1} s (is IPMI over LAN enabled, and the address and port right?)",
                            self.target,
                            self.timeout.as_secs_f64()
                        ))
                    });
                }
                if now >= resend_at {
                    break;
                }
                let wait = (resend_at - now).min(self.timeout - now).max(Duration::from_millis(1));
                let _ = self.sock.set_read_timeout(Some(wait));
                match self.sock.recv(&mut buf) {
                    Ok(n) => {
                        self.heard = true;
                        if let Some(v) = accept(&buf[..n])? {
                            return Ok(v);
                        }
                    }
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted) => {}
                    Err(e) => return Err(self.io_error(what, &e)),
                }
            }
        }
    }

    fn io_error(&self, what: &str, e: &std::io::Error) -> PowerError {
        if e.kind() == std::io::ErrorKind::ConnectionRefused {
            PowerError::Unreachable(format!("{}: {what}: connection refused (nothing listens on that UDP port)", self.target))
        } else {
            PowerError::Unreachable(format!("{}: {what}: {e}", self.target))
        }
    }
}

/// Get Channel Cipher Suites, session-less. The request goes out in both forms at first: IPMI 2.0
/// (what ipmitool sends) and IPMI 1.5 (the only one OpenIPMI's ipmi_sim answers); the form that
/// is answered is used for the following pages.
fn list_suites(link: &mut Link) -> Result<Negotiation, PowerError> {
    let mut records = vec![];
    let mut v15: Option<bool> = None;
    for index in 0u8..64 {
        let rq_seq = index + 1;
        let req = client::cipher_suites_request(index);
        let msg = packet::encode_request(0x06, 0x54, rq_seq, &req);
        let (f15, f20) = (packet::wrap_v15(&msg), packet::build_v2(ptype::IPMI, 0, 0, &msg, None, None));
        if v15.is_none() {
            let _ = link.sock.send(&f15);
        }
        let target = link.target.clone();
        let (reply, was_v15) = link.exchange(
            "Get Channel Cipher Suites",
            |attempt| match v15 {
                Some(true) => f15.clone(),
                Some(false) => f20.clone(),
                None if attempt % 2 == 0 => f20.clone(),
                None => f15.clone(),
            },
            |raw| {
                let (m, was_v15) = match packet::parse(raw) {
                    Ok(Datagram::V15 { session_id: 0, msg, .. }) => (msg, true),
                    Ok(Datagram::V2 { payload_type: ptype::IPMI, session_id: 0, authenticated: false, payload, .. }) => (payload, false),
                    _ => return Ok(None),
                };
                match packet::decode_response(&m) {
                    Ok(r) if r.cmd == 0x54 && r.seq == rq_seq => Ok(Some((r, was_v15))),
                    Ok(_) => Ok(None),
                    Err(e) => Err(PowerError::Protocol(format!("{target}: Get Channel Cipher Suites: {e}"))),
                }
            },
        )?;
        v15 = Some(was_v15);
        match reply.cc {
            Some(0) => {}
            Some(cc) => return Ok(Negotiation::NotListed(cc)),
            None => return Err(PowerError::Protocol(format!("{}: Get Channel Cipher Suites: reply without completion code", link.target))),
        }
        match client::cipher_suites_page(&mut records, &reply.data) {
            Ok(Some(ids)) => return Ok(Negotiation::Offered(ids)),
            Ok(None) => {}
            Err(e) => return Err(PowerError::Protocol(format!("{}: Get Channel Cipher Suites: {e}", link.target))),
        }
    }
    Err(PowerError::Protocol(format!("{}: Get Channel Cipher Suites: the list does not end", link.target)))
}

/// An open RMCP+ session on a connected UDP socket.
pub struct Connection {
    link: Link,
    session: Session,
    pub negotiation: Negotiation,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("target", &self.link.target).field("suite", &self.session.suite().id).finish()
    }
}

fn random<T>() -> T
where
    rand::distributions::Standard: rand::distributions::Distribution<T>,
{
    rand::random()
}

impl Connection {
    /// Choose the suite (unless given), open the session: Open Session, RAKP 1-4.
    pub fn open(host: &str, port: u16, target: &str, opts: &Options) -> Result<Connection, PowerError> {
        let mut link = Link::new(host, port, target, opts.timeout)?;
        let (suite, negotiation) = match opts.suite {
            Some(s) => (s, Negotiation::Configured),
            None => match list_suites(&mut link)? {
                Negotiation::Offered(ids) => match client::choose_suite(&ids) {
                    Some(s) => (s, Negotiation::Offered(ids)),
                    None => {
                        return Err(PowerError::Protocol(format!(
                            "{target}: the BMC offers cipher suites {ids:?}, none of which this driver runs (17: RAKP-HMAC-SHA256, 3: RAKP-HMAC-SHA1); enable suite 17 or 3 on the BMC, or use twonode_driver=external"
                        )))
                    }
                },
                n @ Negotiation::NotListed(_) => (Suite::S3, n),
                Negotiation::Configured => unreachable!("list_suites never answers Configured"),
            },
        };
        tracing::debug!("{target}: cipher suite {} ({:?})", suite.id, negotiation);
        let mut hs = Handshake::new(opts.login.clone(), suite, random::<u32>(), random::<[u8; 16]>(), target);
        let osr = hs.open_session_request();
        let payload_of = |raw: &[u8], hs: &Handshake, want: u8| -> Option<Vec<u8>> {
            match packet::parse(raw) {
                Ok(d) if hs.is_reply(&d, want) => match d {
                    Datagram::V2 { payload, .. } => Some(payload),
                    _ => None,
                },
                _ => None,
            }
        };
        let resp = link.exchange("Open Session", |_| osr.clone(), |raw| Ok(payload_of(raw, &hs, ptype::OPEN_SESSION_RESPONSE)))?;
        let rakp1 = hs.on_open_session_response(&resp)?;
        let r2 = link.exchange("RAKP 1", |_| rakp1.clone(), |raw| Ok(payload_of(raw, &hs, ptype::RAKP2)))?;
        let after = hs.on_rakp2(&r2)?;
        if let Some(e) = after.failed {
            let _ = link.sock.send(&after.rakp3);
            return Err(e);
        }
        let r4 = link.exchange("RAKP 3", |_| after.rakp3.clone(), |raw| Ok(payload_of(raw, &hs, ptype::RAKP4)))?;
        let session = hs.on_rakp4(&r4)?;
        Ok(Connection { link, session, negotiation })
    }

    pub fn suite(&self) -> Suite {
        self.session.suite()
    }

    /// One request on the session; the reply with its completion code.
    pub fn command(&mut self, netfn: u8, cmd: u8, data: &[u8], what: &str) -> Result<IpmiMessage, PowerError> {
        let rq_seq = self.session.next_rq_seq();
        let reader = self.session.reader();
        let session = &mut self.session;
        let target = self.link.target.clone();
        self.link.exchange(
            what,
            |_| session.seal(netfn, cmd, rq_seq, data, random::<[u8; 16]>()),
            |raw| reader.open(raw, cmd, rq_seq).map_err(|e| PowerError::Protocol(format!("{target}: {what}: {e}"))),
        )
    }

    /// Close Session without waiting for the answer: one datagram, nothing read. Nothing depends on
    /// the answer; if the datagram is lost the BMC ends the session at its idle timeout, as for a
    /// client that died. Saves the last round trip of every run.
    pub fn close_unconfirmed(mut self) {
        let rq_seq = self.session.next_rq_seq();
        let sid = self.session.bmc_sid.to_le_bytes();
        let out = self.session.seal(0x06, 0x3C, rq_seq, &sid, random::<[u8; 16]>());
        let _ = self.link.sock.send(&out);
    }

    /// Close Session (our session ID), waiting for the answer. Errors are reported, the socket is
    /// dropped either way.
    pub fn close(mut self) -> Result<(), PowerError> {
        let sid = self.session.bmc_sid.to_le_bytes();
        let r = self.command(0x06, 0x3C, &sid, "Close Session")?;
        match r.cc {
            Some(0) | None => Ok(()),
            Some(cc) => Err(PowerError::Protocol(format!("{}: Close Session: completion code 0x{cc:02X}", self.link.target))),
        }
    }
}

