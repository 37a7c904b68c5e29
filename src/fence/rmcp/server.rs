//! The BMC's side of RMCP+ as a sans-IO state machine, for the lab's BMC simulator
//! (`crate::lab::bmc_sim`): datagram in, datagram out. It keeps the session table, answers the
//! session-less commands (Get Channel Authentication Capabilities, Get Channel Cipher Suites),
//! runs Open Session and RAKP 1-4 for the suites it offers, enforces session privilege, and hands
//! every other command to the chassis model.
use super::crypto::{ct_eq, Rakp, SessionKeys, Suite};
use super::packet::{self, ptype, status, Datagram, IpmiMessage, OpenSessionRequest, OpenSessionResponse, Rakp1, Rakp2, Rakp3, Rakp4};
use rand::{RngCore, SeedableRng};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One BMC user.
#[derive(Clone)]
pub struct User {
    pub name: Vec<u8>,
    pub password: Vec<u8>,
    /// Highest privilege level (2 user, 3 operator, 4 administrator).
    pub max_priv: u8,
}

#[derive(Clone)]
pub struct BmcConfig {
    pub users: Vec<User>,
    /// Offered cipher suites, in the order Get Channel Cipher Suites lists them.
    pub suites: Vec<Suite>,
    pub guid: [u8; 16],
    pub max_sessions: usize,
    /// A session silent for this long is dropped.
    pub idle_timeout: Duration,
}

/// The chassis and everything else a command can reach: (completion code, data).
pub trait Commands {
    fn command(&mut self, netfn: u8, cmd: u8, data: &[u8]) -> (u8, Vec<u8>);
}

/// Lowest session privilege a command needs (IPMI 2.0 appendix G, for what the simulator serves).
pub fn required_privilege(netfn: u8, cmd: u8) -> u8 {
    match (netfn, cmd) {
        (0x00, 0x02) => 3, // Chassis Control: operator
        _ => 2,
    }
}

enum State {
    Opened { console_sid: u32, suite: Suite },
    Rakp2Sent { rakp: Rakp, user: usize },
    Active { keys: SessionKeys, console_sid: u32, privilege: u8, max_priv: u8, out_seq: u32 },
}

struct Session {
    state: State,
    last_seen: Instant,
    /// The last handshake request and our answer to it (a retransmission gets the same answer).
    last: Option<(Vec<u8>, Vec<u8>)>,
}

/// The simulated BMC's protocol engine.
pub struct Bmc {
    pub cfg: BmcConfig,
    sessions: BTreeMap<u32, Session>,
    rng: rand_chacha::ChaCha8Rng,
    /// What happened, one line per event (drained by the simulator into its log).
    pub events: Vec<String>,
}

fn rakp_reply(kind: u8, payload: Vec<u8>) -> Vec<u8> {
    packet::build_v2(kind, 0, 0, &payload, None, None)
}

impl Bmc {
    pub fn new(cfg: BmcConfig, seed: u64) -> Bmc {
        Bmc { cfg, sessions: BTreeMap::new(), rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed), events: vec![] }
    }

    pub fn active_sessions(&self) -> usize {
        self.sessions.values().filter(|s| matches!(s.state, State::Active { .. })).count()
    }

    fn random16(&mut self) -> [u8; 16] {
        let mut b = [0u8; 16];
        self.rng.fill_bytes(&mut b);
        b
    }

    fn log(&mut self, s: String) {
        self.events.push(s);
    }

    /// One datagram in; the answer, if any.
    pub fn handle(&mut self, raw: &[u8], now: Instant, cmds: &mut dyn Commands) -> Option<Vec<u8>> {
        let idle = self.cfg.idle_timeout;
        let before = self.sessions.len();
        self.sessions.retain(|_, s| now.duration_since(s.last_seen) < idle);
        if self.sessions.len() < before {
            let n = before - self.sessions.len();
            self.log(format!("{n} idle session(s) dropped"));
        }
        let d = packet::parse(raw).ok()?;
        match d {
            Datagram::Asf(b) => asf_pong(&b),
            Datagram::V15 { session_id: 0, msg, .. } => {
                let req = packet::decode_request(&msg).ok()?;
                let (cc, data) = self.sessionless(&req);
                Some(packet::wrap_v15(&packet::encode_response(&req, cc, &data)))
            }
            Datagram::V15 { .. } => None, // IPMI 1.5 sessions are not offered
            Datagram::V2 { payload_type: ptype::IPMI, session_id: 0, authenticated: false, encrypted: false, payload, .. } => {
                let req = packet::decode_request(&payload).ok()?;
                let (cc, data) = self.sessionless(&req);
                Some(packet::build_v2(ptype::IPMI, 0, 0, &packet::encode_response(&req, cc, &data), None, None))
            }
            Datagram::V2 { payload_type: ptype::OPEN_SESSION_REQUEST, payload, .. } => self.open_session(&payload, now),
            Datagram::V2 { payload_type: ptype::RAKP1, payload, .. } => self.rakp1(&payload, now),
            Datagram::V2 { payload_type: ptype::RAKP3, payload, .. } => self.rakp3(&payload, now),
            Datagram::V2 { payload_type: ptype::IPMI, session_id, .. } => self.in_session(raw, session_id, now, cmds),
            Datagram::V2 { .. } => None,
        }
    }

    fn sessionless(&mut self, req: &IpmiMessage) -> (u8, Vec<u8>) {
        match (req.netfn, req.cmd) {
            (0x06, 0x38) => (0x00, vec![0x01, 0x80, 0x04, 0x02, 0, 0, 0, 0]),
            (0x06, 0x54) => self.cipher_suites(&req.data),
            (0x06, 0x39) => (0xC1, vec![]), // Get Session Challenge: no IPMI 1.5 sessions here
            _ => (0xD4, vec![]),
        }
    }

    fn cipher_suites(&self, data: &[u8]) -> (u8, Vec<u8>) {
        if data.len() < 3 {
            return (0xC7, vec![]);
        }
        if data[1] & 0x3F != 0 {
            return (0xCC, vec![]); // only the IPMI payload type
        }
        let by_suite = data[2] & 0x80 != 0;
        let index = (data[2] & 0x3F) as usize;
        let all: Vec<u8> = if by_suite {
            let list: Vec<(u8, u8, u8, u8)> = self.cfg.suites.iter().map(|s| {
                let (a, i, c) = s.algorithms();
                (s.id, a, i, c)
            }).collect();
            packet::encode_suite_records(&list)
        } else {
            let mut algs: Vec<u8> = vec![];
            for s in &self.cfg.suites {
                let (a, i, c) = s.algorithms();
                for b in [a, 0x40 | i, 0x80 | c] {
                    if !algs.contains(&b) {
                        algs.push(b);
                    }
                }
            }
            let mut v = vec![0xC0];
            v.extend(algs);
            v
        };
        let from = (index * 16).min(all.len());
        let to = (from + 16).min(all.len());
        let mut out = vec![0x01];
        out.extend_from_slice(&all[from..to]);
        (0x00, out)
    }

    fn repeat(&mut self, bmc_sid: u32, payload: &[u8], now: Instant) -> Option<Vec<u8>> {
        let s = self.sessions.get_mut(&bmc_sid)?;
        match &s.last {
            Some((req, reply)) if req == payload => {
                s.last_seen = now;
                Some(reply.clone())
            }
            _ => None,
        }
    }

    fn open_session(&mut self, payload: &[u8], now: Instant) -> Option<Vec<u8>> {
        let req = OpenSessionRequest::parse(payload).ok()?;
        let refuse = |st: u8| {
            rakp_reply(
                ptype::OPEN_SESSION_RESPONSE,
                OpenSessionResponse { tag: req.tag, status: st, max_priv: 0, console_sid: req.console_sid, bmc_sid: 0, auth: 0, integrity: 0, conf: 0 }.encode(),
            )
        };
        let suites = &self.cfg.suites;
        let st = if !suites.iter().any(|s| s.algorithms().0 == req.auth) {
            Some(status::INVALID_AUTH_ALG)
        } else if !suites.iter().any(|s| s.algorithms().1 == req.integrity) {
            Some(status::INVALID_INTEGRITY_ALG)
        } else if !suites.iter().any(|s| s.algorithms().2 == req.conf) {
            Some(status::INVALID_CONF_ALG)
        } else {
            None
        };
        let suite = match Suite::by_algorithms(req.auth, req.integrity, req.conf).filter(|s| suites.contains(s)) {
            Some(s) => s,
            None => {
                let st = st.unwrap_or(status::NO_CIPHER_SUITE_MATCH);
                self.log(format!(
                    "Open Session refused: algorithms {}/{}/{}: {} (status 0x{st:02X})",
                    req.auth, req.integrity, req.conf, packet::rakp_status_text(st)
                ));
                return Some(refuse(st));
            }
        };
        if req.max_priv > 5 {
            return Some(refuse(status::INVALID_ROLE));
        }
        if self.sessions.len() >= self.cfg.max_sessions {
            self.log("Open Session refused: session table full".into());
            return Some(refuse(status::NO_RESOURCES));
        }
        let mut bmc_sid;
        loop {
            bmc_sid = self.rng.next_u32();
            if bmc_sid != 0 && !self.sessions.contains_key(&bmc_sid) {
                break;
            }
        }
        self.sessions.insert(bmc_sid, Session { state: State::Opened { console_sid: req.console_sid, suite }, last_seen: now, last: None });
        let (a, i, c) = suite.algorithms();
        let max_priv = if req.max_priv == 0 { 4 } else { req.max_priv };
        Some(rakp_reply(
            ptype::OPEN_SESSION_RESPONSE,
            OpenSessionResponse { tag: req.tag, status: 0, max_priv, console_sid: req.console_sid, bmc_sid, auth: a, integrity: i, conf: c }.encode(),
        ))
    }

    fn rakp1(&mut self, payload: &[u8], now: Instant) -> Option<Vec<u8>> {
        let m = match Rakp1::parse(payload) {
            Ok(m) => m,
            Err(_) if payload.len() >= 28 => {
                // a name longer than 16 bytes
                let sid = u32::from_le_bytes([payload[4], payload[5], payload[6], payload[7]]);
                let console_sid = match self.sessions.get(&sid).map(|s| &s.state) {
                    Some(State::Opened { console_sid, .. }) => *console_sid,
                    _ => 0,
                };
                let r = Rakp2 { tag: payload[0], status: status::INVALID_NAME_LENGTH, console_sid, rc: [0; 16], guid: [0; 16], code: vec![] };
                return Some(rakp_reply(ptype::RAKP2, r.encode()));
            }
            Err(_) => return None,
        };
        if let Some(r) = self.repeat(m.bmc_sid, payload, now) {
            return Some(r);
        }
        let fail = |tag: u8, st: u8, console_sid: u32| {
            rakp_reply(ptype::RAKP2, Rakp2 { tag, status: st, console_sid, rc: [0; 16], guid: [0; 16], code: vec![] }.encode())
        };
        let (console_sid, suite) = match self.sessions.get(&m.bmc_sid).map(|s| &s.state) {
            Some(State::Opened { console_sid, suite }) => (*console_sid, *suite),
            _ => return Some(fail(m.tag, status::INVALID_SESSION_ID, 0)),
        };
        let level = m.role & 0x0F;
        let user = self.cfg.users.iter().position(|u| u.name == m.username);
        let reject = |bmc: &mut Bmc, st: u8, why: String| {
            bmc.sessions.remove(&m.bmc_sid);
            bmc.log(why);
            Some(fail(m.tag, st, console_sid))
        };
        let Some(ui) = user else {
            let name = String::from_utf8_lossy(&m.username).to_string();
            return reject(self, status::UNAUTHORIZED_NAME, format!("RAKP 1 refused: unknown user {name:?} (status 0x0D)"));
        };
        if level == 0 || level > 5 {
            return reject(self, status::INVALID_ROLE, format!("RAKP 1 refused: role 0x{:02X} (status 0x09)", m.role));
        }
        if level > self.cfg.users[ui].max_priv {
            return reject(self, status::UNAUTHORIZED_ROLE, format!("RAKP 1 refused: privilege {level} above the user's limit (status 0x0A)"));
        }
        let rc = self.random16();
        let rakp = Rakp { suite, console_sid, bmc_sid: m.bmc_sid, rm: m.rm, rc, guid: self.cfg.guid, role: m.role, username: m.username.clone() };
        let code = rakp.rakp2_code(&self.cfg.users[ui].password);
        let reply = rakp_reply(ptype::RAKP2, Rakp2 { tag: m.tag, status: 0, console_sid, rc, guid: self.cfg.guid, code }.encode());
        let s = self.sessions.get_mut(&m.bmc_sid)?;
        s.state = State::Rakp2Sent { rakp, user: ui };
        s.last_seen = now;
        s.last = Some((payload.to_vec(), reply.clone()));
        Some(reply)
    }

    fn rakp3(&mut self, payload: &[u8], now: Instant) -> Option<Vec<u8>> {
        let m = Rakp3::parse(payload).ok()?;
        if let Some(r) = self.repeat(m.bmc_sid, payload, now) {
            return Some(r);
        }
        let (rakp, ui) = match self.sessions.get(&m.bmc_sid).map(|s| &s.state) {
            Some(State::Rakp2Sent { rakp, user }) => (rakp.clone(), *user),
            _ => {
                return Some(rakp_reply(ptype::RAKP4, Rakp4 { tag: m.tag, status: status::INVALID_SESSION_ID, console_sid: 0, icv: vec![] }.encode()));
            }
        };
        let name = String::from_utf8_lossy(&rakp.username).to_string();
        if m.status != 0 {
            self.sessions.remove(&m.bmc_sid);
            self.log(format!(
                "session 0x{:08X} abandoned by the console (RAKP 3 status 0x{:02X}: {}): user {name:?}, the console's password differs",
                m.bmc_sid, m.status, packet::rakp_status_text(m.status)
            ));
            return None;
        }
        let user = self.cfg.users[ui].clone();
        if !ct_eq(&rakp.rakp3_code(&user.password), &m.code) {
            self.sessions.remove(&m.bmc_sid);
            self.log(format!("session 0x{:08X} refused: RAKP 3 code does not match (wrong password for user {name:?}; status 0x0F)", m.bmc_sid));
            return Some(rakp_reply(ptype::RAKP4, Rakp4 { tag: m.tag, status: status::INVALID_ICV, console_sid: rakp.console_sid, icv: vec![] }.encode()));
        }
        let sik = rakp.sik(&user.password);
        let icv = rakp.rakp4_icv(&sik);
        let reply = rakp_reply(ptype::RAKP4, Rakp4 { tag: m.tag, status: 0, console_sid: rakp.console_sid, icv }.encode());
        let level = rakp.role & 0x0F;
        let s = self.sessions.get_mut(&m.bmc_sid)?;
        s.state = State::Active { keys: SessionKeys::derive(rakp.suite, &sik), console_sid: rakp.console_sid, privilege: level.min(2), max_priv: level, out_seq: 0 };
        s.last_seen = now;
        s.last = Some((payload.to_vec(), reply.clone()));
        self.log(format!("session 0x{:08X} active: user {name:?}, cipher suite {}, privilege limit {level}", m.bmc_sid, rakp.suite.id));
        Some(reply)
    }

    fn in_session(&mut self, raw: &[u8], bmc_sid: u32, now: Instant, cmds: &mut dyn Commands) -> Option<Vec<u8>> {
        let (keys, console_sid) = match self.sessions.get(&bmc_sid).map(|s| &s.state) {
            Some(State::Active { keys, console_sid, .. }) => (keys.clone(), *console_sid),
            _ => return None,
        };
        let (_, _, _, plain) = match packet::open_v2(raw, &keys) {
            Ok(v) => v,
            Err(e) => {
                self.log(format!("session 0x{bmc_sid:08X}: packet dropped: {e}"));
                return None;
            }
        };
        let encrypted = matches!(packet::parse(raw), Ok(Datagram::V2 { encrypted: true, .. }));
        let req = packet::decode_request(&plain).ok()?;
        let mut close = false;
        let mut set_level = None;
        let (cc, data) = {
            let s = self.sessions.get_mut(&bmc_sid)?;
            s.last_seen = now;
            let State::Active { privilege, max_priv, .. } = &mut s.state else { return None };
            match (req.netfn, req.cmd) {
                (0x06, 0x3B) => {
                    let want = req.data.first().map(|b| b & 0x0F).unwrap_or(0);
                    if want == 0 {
                        (0, vec![*privilege])
                    } else if want > 5 || want == 1 {
                        (0xCC, vec![])
                    } else if want > *max_priv {
                        (0x81, vec![])
                    } else {
                        *privilege = want;
                        set_level = Some(want);
                        (0, vec![want])
                    }
                }
                (0x06, 0x3C) => {
                    let sid = req.data.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).unwrap_or(0);
                    if sid == bmc_sid {
                        close = true;
                        (0, vec![])
                    } else {
                        (0x87, vec![])
                    }
                }
                (0x06, 0x38) | (0x06, 0x54) => (0xFF, vec![]), // replaced below
                (netfn, cmd) if required_privilege(netfn, cmd) > *privilege => (0xD4, vec![]),
                _ => (0xFE, vec![]),
            }
        };
        if let Some(l) = set_level {
            self.log(format!("session 0x{bmc_sid:08X} privilege level {l}"));
        }
        let (cc, data) = match (cc, req.netfn, req.cmd) {
            (0xFF, 0x06, 0x38 | 0x54) => self.sessionless(&req),
            (0xFE, netfn, cmd) => cmds.command(netfn, cmd, &req.data),
            _ => (cc, data),
        };
        let resp = packet::encode_response(&req, cc, &data);
        let iv = if encrypted { Some(self.random16()) } else { None };
        let s = self.sessions.get_mut(&bmc_sid)?;
        let State::Active { out_seq, .. } = &mut s.state else { return None };
        *out_seq = out_seq.wrapping_add(1).max(1);
        let out = packet::build_v2(ptype::IPMI, console_sid, *out_seq, &resp, Some(&keys), iv);
        if close {
            self.sessions.remove(&bmc_sid);
            self.log(format!("session 0x{bmc_sid:08X} closed"));
        }
        Some(out)
    }
}

/// ASF Presence Pong for a Presence Ping.
fn asf_pong(ping: &[u8]) -> Option<Vec<u8>> {
    if ping.len() < 12 || ping[8] != 0x80 {
        return None;
    }
    let mut r = vec![0x06, 0x00, 0xFF, 0x06, 0x00, 0x00, 0x11, 0xBE, 0x40, ping[9], 0x00, 0x10];
    r.extend([0x00, 0x00, 0x11, 0xBE, 0, 0, 0, 0, 0x81, 0x00, 0, 0, 0, 0, 0, 0]);
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fence::rmcp::client::{Handshake, Login};

    struct Chassis(bool);
    impl Commands for Chassis {
        fn command(&mut self, netfn: u8, cmd: u8, data: &[u8]) -> (u8, Vec<u8>) {
            match (netfn, cmd) {
                (0x00, 0x01) => (0, vec![self.0 as u8, 0, 0]),
                (0x00, 0x02) => {
                    self.0 = data.first() == Some(&1);
                    (0, vec![])
                }
                _ => (0xC1, vec![]),
            }
        }
    }

    fn bmc(suites: Vec<Suite>) -> Bmc {
        Bmc::new(
            BmcConfig {
                users: vec![
                    User { name: b"admin".to_vec(), password: b"secret".to_vec(), max_priv: 4 },
                    User { name: b"oper".to_vec(), password: b"opsecret".to_vec(), max_priv: 3 },
                ],
                suites,
                guid: [7; 16],
                max_sessions: 4,
                idle_timeout: Duration::from_secs(60),
            },
            1,
        )
    }

    fn payload(raw: &[u8]) -> Vec<u8> {
        match packet::parse(raw).unwrap() {
            Datagram::V2 { payload, .. } => payload,
            other => panic!("{other:?}"),
        }
    }

    fn login(user: &str, pw: &str, privilege: u8) -> Login {
        Login { username: user.as_bytes().to_vec(), password: pw.as_bytes().to_vec(), privilege }
    }

    /// Client and BMC state machines talking in memory.
    fn connect(b: &mut Bmc, suite: Suite, l: Login, ch: &mut Chassis) -> Result<crate::fence::rmcp::client::Session, crate::fence::power::PowerError> {
        let now = Instant::now();
        let mut hs = Handshake::new(l, suite, 0x1111, [9; 16], "t");
        let r = b.handle(&hs.open_session_request(), now, ch).unwrap();
        let rakp1 = hs.on_open_session_response(&payload(&r))?;
        let r = b.handle(&rakp1, now, ch).unwrap();
        let after = hs.on_rakp2(&payload(&r))?;
        if let Some(e) = after.failed {
            assert!(b.handle(&after.rakp3, now, ch).is_none());
            return Err(e);
        }
        let r = b.handle(&after.rakp3, now, ch).unwrap();
        hs.on_rakp4(&payload(&r))
    }

    fn call(b: &mut Bmc, s: &mut crate::fence::rmcp::client::Session, ch: &mut Chassis, netfn: u8, cmd: u8, data: &[u8]) -> (u8, Vec<u8>) {
        let rq = s.next_rq_seq();
        let raw = b.handle(&s.seal(netfn, cmd, rq, data, [3; 16]), Instant::now(), ch).expect("a reply");
        let m = s.reader().open(&raw, cmd, rq).unwrap().expect("our reply");
        (m.cc.unwrap(), m.data)
    }

    #[test]
    fn both_suites_end_to_end_with_privilege_rules() {
        for suite in [Suite::S3, Suite::S17] {
            let mut b = bmc(vec![Suite::S3, Suite::S17]);
            let mut ch = Chassis(true);
            let mut s = connect(&mut b, suite, login("admin", "secret", 4), &mut ch).unwrap();
            assert_eq!(b.active_sessions(), 1);
            // the session starts at user level: chassis control needs Set Session Privilege first
            assert_eq!(call(&mut b, &mut s, &mut ch, 0x00, 0x02, &[0]).0, 0xD4);
            assert_eq!(call(&mut b, &mut s, &mut ch, 0x06, 0x3B, &[4]), (0, vec![4]));
            assert_eq!(call(&mut b, &mut s, &mut ch, 0x00, 0x02, &[0]).0, 0);
            assert_eq!(call(&mut b, &mut s, &mut ch, 0x00, 0x01, &[]), (0, vec![0, 0, 0]));
            assert_eq!(call(&mut b, &mut s, &mut ch, 0x06, 0x3B, &[5]).0, 0x81);
            let sid = s.bmc_sid.to_le_bytes();
            assert_eq!(call(&mut b, &mut s, &mut ch, 0x06, 0x3C, &sid).0, 0);
            assert_eq!(b.active_sessions(), 0);
        }
    }

    #[test]
    fn wrong_password_unknown_user_role_and_suite_are_refused_with_rakp_status() {
        let mut b = bmc(vec![Suite::S3]);
        let mut ch = Chassis(true);
        // the console sees the BMC's RAKP 2 code mismatch and says so in RAKP 3
        let e = connect(&mut b, Suite::S3, login("admin", "wrong", 4), &mut ch).err().unwrap();
        assert!(matches!(e, crate::fence::power::PowerError::Auth(ref m) if m.contains("wrong password")), "{e}");
        assert!(b.events.iter().any(|e| e.contains("abandoned by the console")), "{:?}", b.events);
        let e = connect(&mut b, Suite::S3, login("nobody", "secret", 4), &mut ch).err().unwrap();
        assert!(e.to_string().contains("0x0D"), "{e}");
        let e = connect(&mut b, Suite::S3, login("oper", "opsecret", 4), &mut ch).err().unwrap();
        assert!(e.to_string().contains("0x0A"), "{e}");
        let e = connect(&mut b, Suite::S17, login("admin", "secret", 4), &mut ch).err().unwrap();
        assert!(e.to_string().contains("status 0x04"), "{e}");
        assert_eq!(b.active_sessions(), 0);
    }

    #[test]
    fn a_wrong_rakp3_code_gets_rakp4_status_0f() {
        // a console that skips the RAKP 2 check and sends a code made with another password
        let mut b = bmc(vec![Suite::S17]);
        let mut ch = Chassis(true);
        let now = Instant::now();
        let mut hs = Handshake::new(login("admin", "secret", 4), Suite::S17, 5, [1; 16], "t");
        let r = b.handle(&hs.open_session_request(), now, &mut ch).unwrap();
        let osr = OpenSessionResponse::parse(&payload(&r)).unwrap();
        let rakp1 = hs.on_open_session_response(&payload(&r)).unwrap();
        let r2 = Rakp2::parse(&payload(&b.handle(&rakp1, now, &mut ch).unwrap())).unwrap();
        let rakp = Rakp { suite: Suite::S17, console_sid: 5, bmc_sid: osr.bmc_sid, rm: [1; 16], rc: r2.rc, guid: r2.guid, role: 0x14, username: b"admin".to_vec() };
        let bad = Rakp3 { tag: 9, status: 0, bmc_sid: osr.bmc_sid, code: rakp.rakp3_code(b"guess") };
        let r4 = b.handle(&rakp_reply(ptype::RAKP3, bad.encode()), now, &mut ch).unwrap();
        assert_eq!(Rakp4::parse(&payload(&r4)).unwrap().status, status::INVALID_ICV);
        assert_eq!(b.active_sessions(), 0);
        assert!(b.events.iter().any(|e| e.contains("wrong password")));
    }

    #[test]
    fn session_table_limit_and_cipher_suite_pages() {
        let mut b = bmc(vec![Suite::S3, Suite::S17]);
        let mut ch = Chassis(true);
        for _ in 0..4 {
            connect(&mut b, Suite::S17, login("admin", "secret", 4), &mut ch).unwrap();
        }
        let e = connect(&mut b, Suite::S17, login("admin", "secret", 4), &mut ch).err().unwrap();
        assert!(e.to_string().contains("no free session"), "{e}");
        let req = IpmiMessage { netfn: 6, cmd: 0x54, seq: 1, cc: None, data: vec![0x0E, 0, 0x80] };
        let (cc, data) = b.sessionless(&req);
        assert_eq!(cc, 0);
        let ids: Vec<u8> = packet::parse_suite_records(&data[1..]).unwrap().iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![3, 17]);
        // garbage never panics
        for n in 0..64 {
            let _ = b.handle(&vec![0x06; n], Instant::now(), &mut ch);
            let mut v = packet::RMCP_IPMI.to_vec();
            v.extend(vec![0x06u8; n]);
            let _ = b.handle(&v, Instant::now(), &mut ch);
        }
    }
}
