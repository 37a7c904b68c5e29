//! The remote-console side of an RMCP+ session as a sans-IO state machine: it turns replies into
//! the next datagram to send and never touches a socket (`super::udp` does the I/O).
//!
//! Open Session Request -> Response, RAKP 1 -> 2 (the BMC proves it knows the password), RAKP
//! 3 -> 4 (we prove it; both sides derive SIK, K1, K2), then IPMI requests on the session,
//! authenticated and encrypted with the negotiated suite.
use super::crypto::{ct_eq, Rakp, SessionKeys, Suite};
use super::packet::{self, ptype, status, Datagram, IpmiMessage, OpenSessionRequest, OpenSessionResponse, Rakp1, Rakp2, Rakp3, Rakp4};
use crate::fence::power::PowerError;

/// Who logs in, and how.
#[derive(Clone)]
pub struct Login {
    pub username: Vec<u8>,
    /// Kuid: the user's password (at most 20 bytes).
    pub password: Vec<u8>,
    /// Requested privilege level (1 callback .. 4 administrator).
    pub privilege: u8,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login").field("username", &String::from_utf8_lossy(&self.username)).field("privilege", &self.privilege).finish()
    }
}

/// The request payload of Get Channel Cipher Suites for page `index` (this channel, IPMI
/// payload, list algorithms by cipher suite).
pub fn cipher_suites_request(index: u8) -> [u8; 3] {
    [0x0E, 0x00, 0x80 | (index & 0x3F)]
}

/// What to do after one Get Channel Cipher Suites page: the record bytes so far grow by the page;
/// `Ok(None)` asks for the next page, `Ok(Some(list))` is the complete list of suite IDs.
pub fn cipher_suites_page(records: &mut Vec<u8>, reply_data: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let page = reply_data.get(1..).unwrap_or(&[]);
    records.extend_from_slice(page);
    if page.len() < 16 || records.len() >= 64 * 16 {
        let recs = packet::parse_suite_records(records)?;
        return Ok(Some(recs.into_iter().map(|r| r.id).collect()));
    }
    // Stop early once suite 17 is listed: nothing later can change the choice.
    if records.windows(2).any(|w| w == [0xC0, 17]) {
        if let Ok(recs) = packet::parse_suite_records(records) {
            return Ok(Some(recs.into_iter().map(|r| r.id).collect()));
        }
    }
    Ok(None)
}

/// ipmitool's choice: 17 when offered, else 3; None when the BMC offers neither.
pub fn choose_suite(offered: &[u8]) -> Option<Suite> {
    [17u8, 3].into_iter().find(|id| offered.contains(id)).and_then(Suite::by_id)
}

/// Session set-up in progress.
pub struct Handshake {
    login: Login,
    pub suite: Suite,
    console_sid: u32,
    rm: [u8; 16],
    tag: u8,
    target: String,
    rakp: Option<Rakp>,
    bmc_sid: u32,
}

/// What RAKP 2 led to: the RAKP 3 datagram to send, and whether the handshake must stop after it
/// (the BMC's code did not match: we tell it so in RAKP 3, then report the error).
pub struct AfterRakp2 {
    pub rakp3: Vec<u8>,
    pub failed: Option<PowerError>,
}

impl Handshake {
    /// `console_sid` (non-zero) and `rm` must be random.
    pub fn new(login: Login, suite: Suite, console_sid: u32, rm: [u8; 16], target: &str) -> Handshake {
        Handshake { login, suite, console_sid: console_sid.max(1), rm, tag: 0, target: target.to_string(), rakp: None, bmc_sid: 0 }
    }

    pub fn console_sid(&self) -> u32 {
        self.console_sid
    }

    pub fn open_session_request(&mut self) -> Vec<u8> {
        self.tag = self.tag.wrapping_add(1);
        let (auth, integrity, conf) = self.suite.algorithms();
        // Requested maximum privilege 0: the highest the user may have (as ipmitool does); the
        // level is chosen in RAKP 1 and set with Set Session Privilege Level.
        let req = OpenSessionRequest { tag: self.tag, max_priv: 0, console_sid: self.console_sid, auth, integrity, conf };
        packet::build_v2(ptype::OPEN_SESSION_REQUEST, 0, 0, &req.encode(), None, None)
    }

    /// Is `d` the reply to the last message of type `want` that we sent?
    pub fn is_reply(&self, d: &Datagram, want: u8) -> bool {
        matches!(d, Datagram::V2 { payload_type, session_id: 0, payload, .. } if *payload_type == want && payload.first() == Some(&self.tag))
    }

    pub fn on_open_session_response(&mut self, payload: &[u8]) -> Result<Vec<u8>, PowerError> {
        let r = OpenSessionResponse::parse(payload).map_err(|e| self.protocol(&e))?;
        if r.status != status::OK {
            let text = packet::rakp_status_text(r.status);
            return Err(match r.status {
                status::INVALID_AUTH_ALG | status::INVALID_INTEGRITY_ALG | status::INVALID_CONF_ALG | status::NO_CIPHER_SUITE_MATCH => {
                    PowerError::Protocol(format!(
                        "{}: the BMC refused cipher suite {} ({}): Open Session status 0x{:02X} ({text}); set cipher= to a suite the BMC offers (this driver runs 3 and 17), or leave cipher= unset to negotiate",
                        self.target, self.suite.id, self.suite.describe(), r.status
                    ))
                }
                status::NO_RESOURCES => PowerError::Protocol(format!("{}: the BMC has no free session (Open Session status 0x01: {text}); wait for idle sessions to time out", self.target)),
                _ => PowerError::Protocol(format!("{}: Open Session refused: status 0x{:02X} ({text})", self.target, r.status)),
            });
        }
        if r.console_sid != self.console_sid {
            return Err(self.protocol("Open Session Response is for another session"));
        }
        if Suite::by_algorithms(r.auth, r.integrity, r.conf) != Some(self.suite) {
            return Err(self.protocol(&format!(
                "the BMC answered Open Session with algorithms {}/{}/{} instead of cipher suite {}",
                r.auth, r.integrity, r.conf, self.suite.id
            )));
        }
        self.bmc_sid = r.bmc_sid;
        self.tag = self.tag.wrapping_add(1);
        let role = (self.login.privilege & 0x0F) | 0x10;
        let m = Rakp1 { tag: self.tag, bmc_sid: r.bmc_sid, rm: self.rm, role, username: self.login.username.clone() };
        self.rakp = Some(Rakp {
            suite: self.suite,
            console_sid: self.console_sid,
            bmc_sid: r.bmc_sid,
            rm: self.rm,
            rc: [0; 16],
            guid: [0; 16],
            role,
            username: self.login.username.clone(),
        });
        Ok(packet::build_v2(ptype::RAKP1, 0, 0, &m.encode(), None, None))
    }

    pub fn on_rakp2(&mut self, payload: &[u8]) -> Result<AfterRakp2, PowerError> {
        let m = Rakp2::parse(payload).map_err(|e| self.protocol(&e))?;
        if m.status != status::OK {
            let text = packet::rakp_status_text(m.status);
            return Err(match m.status {
                status::UNAUTHORIZED_NAME | status::INVALID_NAME_LENGTH => PowerError::Auth(format!(
                    "{}: the BMC does not know this user name (RAKP 2 status 0x{:02X}: {text})", self.target, m.status
                )),
                status::INVALID_ROLE | status::UNAUTHORIZED_ROLE => PowerError::Auth(format!(
                    "{}: the user may not have the requested privilege level (RAKP 2 status 0x{:02X}: {text}); lower privlvl or raise the user's limit",
                    self.target, m.status
                )),
                _ => PowerError::Protocol(format!("{}: RAKP 2 status 0x{:02X} ({text})", self.target, m.status)),
            });
        }
        if m.console_sid != self.console_sid {
            return Err(self.protocol("RAKP 2 is for another session"));
        }
        let rakp = self.rakp.as_mut().ok_or_else(|| PowerError::Protocol("RAKP 2 before Open Session".into()))?;
        rakp.rc = m.rc;
        rakp.guid = m.guid;
        let rakp = rakp.clone();
        let expect = rakp.rakp2_code(&self.login.password);
        self.tag = self.tag.wrapping_add(1);
        if !ct_eq(&expect, &m.code) {
            // Tell the BMC (RAKP 3 with an error status) so it drops the half-open session.
            let r3 = Rakp3 { tag: self.tag, status: status::INVALID_ICV, bmc_sid: self.bmc_sid, code: vec![] };
            return Ok(AfterRakp2 {
                rakp3: packet::build_v2(ptype::RAKP3, 0, 0, &r3.encode(), None, None),
                failed: Some(PowerError::Auth(format!(
                    "{}: RMCP+ authentication failed: wrong password (or Kg key) for this user (the BMC's RAKP 2 code does not match)",
                    self.target
                ))),
            });
        }
        let r3 = Rakp3 { tag: self.tag, status: status::OK, bmc_sid: self.bmc_sid, code: rakp.rakp3_code(&self.login.password) };
        Ok(AfterRakp2 { rakp3: packet::build_v2(ptype::RAKP3, 0, 0, &r3.encode(), None, None), failed: None })
    }

    pub fn on_rakp4(self, payload: &[u8]) -> Result<Session, PowerError> {
        let m = Rakp4::parse(payload).map_err(|e| self.protocol(&e))?;
        if m.status != status::OK {
            let text = packet::rakp_status_text(m.status);
            return Err(match m.status {
                status::INVALID_ICV => PowerError::Auth(format!(
                    "{}: RMCP+ authentication failed: the BMC rejected our RAKP 3 (status 0x0F: {text}): wrong password for this user",
                    self.target
                )),
                _ => PowerError::Protocol(format!("{}: RAKP 4 status 0x{:02X} ({text})", self.target, m.status)),
            });
        }
        let rakp = self.rakp.as_ref().ok_or_else(|| PowerError::Protocol("RAKP 4 before RAKP 2".into()))?;
        let sik = rakp.sik(&self.login.password);
        if !ct_eq(&rakp.rakp4_icv(&sik), &m.icv) {
            return Err(PowerError::Auth(format!(
                "{}: RMCP+ authentication failed: the RAKP 4 integrity check value does not match (wrong password or Kg key)",
                self.target
            )));
        }
        Ok(Session { keys: SessionKeys::derive(self.suite, &sik), bmc_sid: self.bmc_sid, console_sid: self.console_sid, seq: 0, rq_seq: 0 })
    }

    fn protocol(&self, what: &str) -> PowerError {
        PowerError::Protocol(format!("{}: {what}", self.target))
    }
}

/// An active session: seals requests, opens replies.
pub struct Session {
    pub keys: SessionKeys,
    pub bmc_sid: u32,
    pub console_sid: u32,
    seq: u32,
    rq_seq: u8,
}

impl Session {
    pub fn suite(&self) -> Suite {
        self.keys.suite
    }

    /// Next rqSeq for a new request (1..63).
    pub fn next_rq_seq(&mut self) -> u8 {
        self.rq_seq = self.rq_seq % 63 + 1;
        self.rq_seq
    }

    /// One datagram carrying the request (a retransmission gets a new session sequence number
    /// but keeps its rqSeq).
    pub fn seal(&mut self, netfn: u8, cmd: u8, rq_seq: u8, data: &[u8], iv: [u8; 16]) -> Vec<u8> {
        self.seq = self.seq.wrapping_add(1).max(1);
        let msg = packet::encode_request(netfn, cmd, rq_seq, data);
        packet::build_v2(ptype::IPMI, self.bmc_sid, self.seq, &msg, Some(&self.keys), Some(iv))
    }

    /// What reads the replies (a copy of the keys, so a reply can be checked while the session
    /// is borrowed for retransmissions).
    pub fn reader(&self) -> ReplyReader {
        ReplyReader { keys: self.keys.clone(), console_sid: self.console_sid }
    }
}

/// Opens replies on a session.
pub struct ReplyReader {
    keys: SessionKeys,
    console_sid: u32,
}

impl ReplyReader {
    /// The reply to (cmd, rq_seq) in `raw`, or None when `raw` is something else (a late reply
    /// to an earlier request, another session's packet). Err when it is ours but unusable.
    pub fn open(&self, raw: &[u8], cmd: u8, rq_seq: u8) -> Result<Option<IpmiMessage>, String> {
        match packet::parse(raw) {
            Ok(Datagram::V2 { payload_type: ptype::IPMI, session_id, .. }) if session_id == self.console_sid => {}
            _ => return Ok(None),
        }
        let (_, _, _, plain) = packet::open_v2(raw, &self.keys)?;
        let m = packet::decode_response(&plain)?;
        if m.cmd != cmd || m.seq != rq_seq {
            return Ok(None);
        }
        Ok(Some(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_choice_prefers_17_then_3() {
        assert_eq!(choose_suite(&[0, 1, 2, 3, 17]).map(|s| s.id), Some(17));
        assert_eq!(choose_suite(&[0, 1, 2, 3, 6, 7, 8, 11, 12]).map(|s| s.id), Some(3));
        assert_eq!(choose_suite(&[0, 1, 2]), None);
    }

    #[test]
    fn cipher_suite_pages_until_short_or_17() {
        let mut recs = vec![];
        let page0 = [1u8, 0xc0, 0x00, 0x00, 0x40, 0x80, 0xc0, 0x01, 0x01, 0x40, 0x80, 0xc0, 0x02, 0x01, 0x41, 0x80, 0xc0];
        assert_eq!(cipher_suites_page(&mut recs, &page0).unwrap(), None);
        let page1 = [1u8, 0x03, 0x01, 0x41, 0x81];
        assert_eq!(cipher_suites_page(&mut recs, &page1).unwrap(), Some(vec![0, 1, 2, 3]));
        let mut recs = vec![];
        let mut p = vec![1u8];
        p.extend(packet::encode_suite_records(&[(17, 3, 4, 1), (3, 1, 1, 1), (1, 1, 0, 0)]));
        p.truncate(17);
        assert_eq!(cipher_suites_page(&mut recs, &p).unwrap(), Some(vec![17, 3, 1]));
    }
}
