//! RMCP / IPMI 1.5 / IPMI 2.0 (RMCP+) datagrams and the messages carried in them: IPMI LAN
//! messages, Open Session, RAKP 1-4 and Get Channel Cipher Suites records. Encoding and parsing
//! only; every parser returns an error text instead of panicking on short or odd input.
use super::crypto::SessionKeys;

/// RMCP header of an IPMI datagram: version 6, reserved, sequence FFh (no ack), class IPMI.
pub const RMCP_IPMI: [u8; 4] = [0x06, 0x00, 0xFF, 0x07];
/// Authentication type / format byte of an IPMI 2.0 (RMCP+) session header.
pub const FORMAT_RMCP_PLUS: u8 = 0x06;

/// Payload types.
pub mod ptype {
    pub const IPMI: u8 = 0x00;
    pub const OPEN_SESSION_REQUEST: u8 = 0x10;
    pub const OPEN_SESSION_RESPONSE: u8 = 0x11;
    pub const RAKP1: u8 = 0x12;
    pub const RAKP2: u8 = 0x13;
    pub const RAKP3: u8 = 0x14;
    pub const RAKP4: u8 = 0x15;
}

/// Addresses used on the LAN channel: the BMC and the remote console software ID.
pub const BMC_ADDR: u8 = 0x20;
pub const CONSOLE_ADDR: u8 = 0x81;

fn checksum(b: &[u8]) -> u8 {
    0u8.wrapping_sub(b.iter().fold(0u8, |a, x| a.wrapping_add(*x)))
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// An IPMI request or response as carried on LAN (IPMB-like framing with two checksums).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpmiMessage {
    /// Request netfn (even); a response carries netfn + 1.
    pub netfn: u8,
    pub cmd: u8,
    /// rqSeq (6 bits).
    pub seq: u8,
    /// Completion code (responses only).
    pub cc: Option<u8>,
    pub data: Vec<u8>,
}

/// rsAddr | netFn/rsLUN | chk1 | rqAddr | rqSeq/rqLUN | cmd | data | chk2
pub fn encode_request(netfn: u8, cmd: u8, seq: u8, data: &[u8]) -> Vec<u8> {
    let h = [BMC_ADDR, netfn << 2];
    let mut b = vec![CONSOLE_ADDR, (seq & 0x3F) << 2, cmd];
    b.extend_from_slice(data);
    let mut out = h.to_vec();
    out.push(checksum(&h));
    out.extend_from_slice(&b);
    out.push(checksum(&b));
    out
}

/// rqAddr | netFn+1/rqLUN | chk1 | rsAddr | rqSeq/rsLUN | cmd | cc | data | chk2
pub fn encode_response(req: &IpmiMessage, cc: u8, data: &[u8]) -> Vec<u8> {
    let h = [CONSOLE_ADDR, (req.netfn | 1) << 2];
    let mut b = vec![BMC_ADDR, (req.seq & 0x3F) << 2, req.cmd, cc];
    b.extend_from_slice(data);
    let mut out = h.to_vec();
    out.push(checksum(&h));
    out.extend_from_slice(&b);
    out.push(checksum(&b));
    out
}

fn decode_message(b: &[u8], response: bool) -> Result<IpmiMessage, String> {
    let min = if response { 8 } else { 7 };
    if b.len() < min {
        return Err(format!("IPMI message of {} bytes is too short", b.len()));
    }
    if checksum(&b[..2]) != b[2] || checksum(&b[3..b.len() - 1]) != b[b.len() - 1] {
        return Err("IPMI message checksum mismatch".into());
    }
    let netfn = b[1] >> 2;
    let (cc, data) = if response { (Some(b[6]), b[7..b.len() - 1].to_vec()) } else { (None, b[6..b.len() - 1].to_vec()) };
    Ok(IpmiMessage { netfn: if response { netfn & !1 } else { netfn }, cmd: b[5], seq: b[4] >> 2, cc, data })
}

pub fn decode_request(b: &[u8]) -> Result<IpmiMessage, String> {
    decode_message(b, false)
}

pub fn decode_response(b: &[u8]) -> Result<IpmiMessage, String> {
    decode_message(b, true)
}

/// A received datagram, split into its session header and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datagram {
    /// RMCP class ASF (presence ping/pong): the whole datagram.
    Asf(Vec<u8>),
    /// IPMI 1.5 session header (session-less when session_id is 0).
    V15 { auth_type: u8, seq: u32, session_id: u32, msg: Vec<u8> },
    /// IPMI 2.0 (RMCP+) session header. `rest` is what follows the payload (integrity trailer).
    V2 { encrypted: bool, authenticated: bool, payload_type: u8, session_id: u32, seq: u32, payload: Vec<u8>, rest: Vec<u8>, signed_start: usize },
}

/// Parse an RMCP datagram.
pub fn parse(b: &[u8]) -> Result<Datagram, String> {
    if b.len() < 4 || b[0] != 0x06 {
        return Err("not an RMCP datagram".into());
    }
    match b[3] & 0x1F {
        0x06 => return Ok(Datagram::Asf(b.to_vec())),
        0x07 => {}
        c => return Err(format!("RMCP class 0x{c:02X} is not IPMI")),
    }
    if b.len() < 5 {
        return Err("IPMI datagram without session header".into());
    }
    let auth_type = b[4];
    if auth_type == FORMAT_RMCP_PLUS {
        if b.len() < 16 {
            return Err("RMCP+ session header is truncated".into());
        }
        let pt = b[5];
        if pt & 0x3F == 0x02 {
            return Err("OEM explicit payloads are not supported".into());
        }
        let session_id = le32(b, 6);
        let seq = le32(b, 10);
        let len = u16::from_le_bytes([b[14], b[15]]) as usize;
        if b.len() < 16 + len {
            return Err(format!("RMCP+ payload length {len} exceeds the datagram"));
        }
        Ok(Datagram::V2 {
            encrypted: pt & 0x80 != 0,
            authenticated: pt & 0x40 != 0,
            payload_type: pt & 0x3F,
            session_id,
            seq,
            payload: b[16..16 + len].to_vec(),
            rest: b[16 + len..].to_vec(),
            signed_start: 4,
        })
    } else {
        // IPMI 1.5: auth type, seq, session id, [16-byte auth code], length, message
        if b.len() < 14 {
            return Err("IPMI 1.5 session header is truncated".into());
        }
        let seq = le32(b, 5);
        let session_id = le32(b, 9);
        let at = if auth_type == 0 { 13 } else { 29 };
        if b.len() < at + 1 {
            return Err("IPMI 1.5 session header is truncated".into());
        }
        let len = b[at] as usize;
        if b.len() < at + 1 + len {
            return Err("IPMI 1.5 message length exceeds the datagram".into());
        }
        Ok(Datagram::V15 { auth_type, seq, session_id, msg: b[at + 1..at + 1 + len].to_vec() })
    }
}

/// Session-less IPMI 1.5 datagram (authentication type none, session 0).
pub fn wrap_v15(msg: &[u8]) -> Vec<u8> {
    let mut out = RMCP_IPMI.to_vec();
    out.extend([0u8; 9]);
    out.push(msg.len() as u8);
    out.extend_from_slice(msg);
    out
}

/// Build an RMCP+ datagram. With `keys`, the packet carries the integrity trailer (pad, pad
/// length, next header 07h, AuthCode over session header..next header); with `iv` as well, the
/// payload is encrypted with AES-CBC-128.
pub fn build_v2(payload_type: u8, session_id: u32, seq: u32, payload: &[u8], keys: Option<&SessionKeys>, iv: Option<[u8; 16]>) -> Vec<u8> {
    let body = match (keys, iv) {
        (Some(k), Some(iv)) => k.encrypt(payload, iv),
        _ => payload.to_vec(),
    };
    let mut pt = payload_type;
    if keys.is_some() {
        pt |= 0x40;
        if iv.is_some() {
            pt |= 0x80;
        }
    }
    let mut out = RMCP_IPMI.to_vec();
    out.push(FORMAT_RMCP_PLUS);
    out.push(pt);
    out.extend(session_id.to_le_bytes());
    out.extend(seq.to_le_bytes());
    out.extend((body.len() as u16).to_le_bytes());
    out.extend(&body);
    if let Some(k) = keys {
        // pad so that session header .. next header is a multiple of 4 bytes
        let pad = (4 - (12 + body.len() + 2) % 4) % 4;
        out.extend(std::iter::repeat_n(0xFF, pad));
        out.push(pad as u8);
        out.push(0x07);
        let code = k.auth_code(&out[4..]);
        out.extend(code);
    }
    out
}

/// Check the integrity trailer of an authenticated RMCP+ datagram `raw` and return its payload,
/// decrypted when it is encrypted.
pub fn open_v2(raw: &[u8], keys: &SessionKeys) -> Result<(u8, u32, u32, Vec<u8>), String> {
    let Datagram::V2 { encrypted, authenticated, payload_type, session_id, seq, payload, rest, .. } = parse(raw)? else {
        return Err("not an RMCP+ datagram".into());
    };
    if !authenticated {
        return Err("packet on an active session is not authenticated".into());
    }
    let icv = keys.suite.integrity.icv_len();
    if rest.len() < icv + 2 {
        return Err("integrity trailer is truncated".into());
    }
    let signed_end = raw.len() - icv;
    if raw[signed_end - 1] != 0x07 {
        return Err("integrity trailer: next header is not 07h".into());
    }
    let pad = raw[signed_end - 2] as usize;
    if pad + 2 + icv != rest.len() {
        return Err(format!("integrity pad length {pad} does not match the trailer"));
    }
    let code = keys.auth_code(&raw[4..signed_end]);
    if !super::crypto::ct_eq(&code, &raw[signed_end..]) {
        return Err("integrity check failed (AuthCode mismatch)".into());
    }
    let plain = if encrypted { keys.decrypt(&payload)? } else { payload };
    Ok((payload_type, session_id, seq, plain))
}

/// RMCP+ / RAKP message status codes (IPMI 2.0 table 13-15).
pub fn rakp_status_text(code: u8) -> &'static str {
    match code {
        0x00 => "no errors",
        0x01 => "insufficient resources to create a session",
        0x02 => "invalid session ID",
        0x03 => "invalid payload type",
        0x04 => "invalid authentication algorithm",
        0x05 => "invalid integrity algorithm",
        0x06 => "no matching authentication payload",
        0x07 => "no matching integrity payload",
        0x08 => "inactive session ID",
        0x09 => "invalid role",
        0x0A => "unauthorized role or privilege level requested",
        0x0B => "insufficient resources to create a session at the requested role",
        0x0C => "invalid name length",
        0x0D => "unauthorized name",
        0x0E => "unauthorized GUID",
        0x0F => "invalid integrity check value",
        0x10 => "invalid confidentiality algorithm",
        0x11 => "no cipher suite match with proposed security algorithms",
        0x12 => "illegal or unrecognized parameter",
        _ => "unknown status code",
    }
}

pub mod status {
    pub const OK: u8 = 0x00;
    pub const NO_RESOURCES: u8 = 0x01;
    pub const INVALID_SESSION_ID: u8 = 0x02;
    pub const INVALID_AUTH_ALG: u8 = 0x04;
    pub const INVALID_INTEGRITY_ALG: u8 = 0x05;
    pub const INVALID_ROLE: u8 = 0x09;
    pub const UNAUTHORIZED_ROLE: u8 = 0x0A;
    pub const INVALID_NAME_LENGTH: u8 = 0x0C;
    pub const UNAUTHORIZED_NAME: u8 = 0x0D;
    pub const INVALID_ICV: u8 = 0x0F;
    pub const INVALID_CONF_ALG: u8 = 0x10;
    pub const NO_CIPHER_SUITE_MATCH: u8 = 0x11;
    pub const ILLEGAL_PARAMETER: u8 = 0x12;
}

/// Open Session Request (payload type 10h).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSessionRequest {
    pub tag: u8,
    /// Requested maximum privilege (0 = the highest the user and channel allow).
    pub max_priv: u8,
    pub console_sid: u32,
    pub auth: u8,
    pub integrity: u8,
    pub conf: u8,
}

fn alg_record(kind: u8, alg: u8) -> [u8; 8] {
    [kind, 0, 0, 0x08, alg, 0, 0, 0]
}

impl OpenSessionRequest {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.tag, self.max_priv, 0, 0];
        v.extend(self.console_sid.to_le_bytes());
        v.extend(alg_record(0, self.auth));
        v.extend(alg_record(1, self.integrity));
        v.extend(alg_record(2, self.conf));
        v
    }
    pub fn parse(b: &[u8]) -> Result<Self, String> {
        if b.len() < 32 {
            return Err(format!("Open Session Request of {} bytes (32 expected)", b.len()));
        }
        if b[8] != 0 || b[16] != 1 || b[24] != 2 {
            return Err("Open Session Request: algorithm payloads out of order".into());
        }
        Ok(OpenSessionRequest { tag: b[0], max_priv: b[1] & 0x0F, console_sid: le32(b, 4), auth: b[12] & 0x3F, integrity: b[20] & 0x3F, conf: b[28] & 0x3F })
    }
}

/// Open Session Response (payload type 11h).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSessionResponse {
    pub tag: u8,
    pub status: u8,
    pub max_priv: u8,
    pub console_sid: u32,
    pub bmc_sid: u32,
    pub auth: u8,
    pub integrity: u8,
    pub conf: u8,
}

impl OpenSessionResponse {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.tag, self.status, self.max_priv, 0];
        v.extend(self.console_sid.to_le_bytes());
        if self.status != 0 {
            return v;
        }
        v.extend(self.bmc_sid.to_le_bytes());
        v.extend(alg_record(0, self.auth));
        v.extend(alg_record(1, self.integrity));
        v.extend(alg_record(2, self.conf));
        v
    }
    pub fn parse(b: &[u8]) -> Result<Self, String> {
        if b.len() < 2 {
            return Err("Open Session Response is truncated".into());
        }
        let mut r = OpenSessionResponse { tag: b[0], status: b[1], max_priv: 0, console_sid: 0, bmc_sid: 0, auth: 0, integrity: 0, conf: 0 };
        if r.status != 0 {
            if b.len() >= 8 {
                r.console_sid = le32(b, 4);
            }
            return Ok(r);
        }
        if b.len() < 36 {
            return Err(format!("Open Session Response of {} bytes (36 expected)", b.len()));
        }
        r.max_priv = b[2] & 0x0F;
        r.console_sid = le32(b, 4);
        r.bmc_sid = le32(b, 8);
        r.auth = b[16] & 0x3F;
        r.integrity = b[24] & 0x3F;
        r.conf = b[32] & 0x3F;
        Ok(r)
    }
}

/// RAKP Message 1 (payload type 12h).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rakp1 {
    pub tag: u8,
    pub bmc_sid: u32,
    pub rm: [u8; 16],
    pub role: u8,
    pub username: Vec<u8>,
}

impl Rakp1 {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.tag, 0, 0, 0];
        v.extend(self.bmc_sid.to_le_bytes());
        v.extend(self.rm);
        v.extend([self.role, 0, 0, self.username.len() as u8]);
        v.extend(&self.username);
        v
    }
    pub fn parse(b: &[u8]) -> Result<Self, String> {
        if b.len() < 28 {
            return Err(format!("RAKP 1 of {} bytes (28 at least)", b.len()));
        }
        let n = b[27] as usize;
        if n > 16 || b.len() < 28 + n {
            return Err(format!("RAKP 1: user name length {n} invalid"));
        }
        let mut rm = [0u8; 16];
        rm.copy_from_slice(&b[8..24]);
        Ok(Rakp1 { tag: b[0], bmc_sid: le32(b, 4), rm, role: b[24], username: b[28..28 + n].to_vec() })
    }
}

/// RAKP Message 2 (payload type 13h).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rakp2 {
    pub tag: u8,
    pub status: u8,
    pub console_sid: u32,
    pub rc: [u8; 16],
    pub guid: [u8; 16],
    pub code: Vec<u8>,
}

impl Rakp2 {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.tag, self.status, 0, 0];
        v.extend(self.console_sid.to_le_bytes());
        if self.status != 0 {
            return v;
        }
        v.extend(self.rc);
        v.extend(self.guid);
        v.extend(&self.code);
        v
    }
    pub fn parse(b: &[u8]) -> Result<Self, String> {
        if b.len() < 2 {
            return Err("RAKP 2 is truncated".into());
        }
        let mut r = Rakp2 { tag: b[0], status: b[1], console_sid: 0, rc: [0; 16], guid: [0; 16], code: vec![] };
        if b.len() >= 8 {
            r.console_sid = le32(b, 4);
        }
        if r.status != 0 {
            return Ok(r);
        }
        if b.len() < 40 {
            return Err(format!("RAKP 2 of {} bytes (40 at least)", b.len()));
        }
        r.rc.copy_from_slice(&b[8..24]);
        r.guid.copy_from_slice(&b[24..40]);
        r.code = b[40..].to_vec();
        Ok(r)
    }
}

/// RAKP Message 3 (payload type 14h).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rakp3 {
    pub tag: u8,
    pub status: u8,
    pub bmc_sid: u32,
    pub code: Vec<u8>,
}

impl Rakp3 {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.tag, self.status, 0, 0];
        v.extend(self.bmc_sid.to_le_bytes());
        v.extend(&self.code);
        v
    }
    pub fn parse(b: &[u8]) -> Result<Self, String> {
        if b.len() < 8 {
            return Err("RAKP 3 is truncated".into());
        }
        Ok(Rakp3 { tag: b[0], status: b[1], bmc_sid: le32(b, 4), code: b[8..].to_vec() })
    }
}

/// RAKP Message 4 (payload type 15h).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rakp4 {
    pub tag: u8,
    pub status: u8,
    pub console_sid: u32,
    pub icv: Vec<u8>,
}

impl Rakp4 {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.tag, self.status, 0, 0];
        v.extend(self.console_sid.to_le_bytes());
        if self.status == 0 {
            v.extend(&self.icv);
        }
        v
    }
    pub fn parse(b: &[u8]) -> Result<Self, String> {
        if b.len() < 2 {
            return Err("RAKP 4 is truncated".into());
        }
        let mut r = Rakp4 { tag: b[0], status: b[1], console_sid: 0, icv: vec![] };
        if b.len() >= 8 {
            r.console_sid = le32(b, 4);
            r.icv = b[8..].to_vec();
        }
        Ok(r)
    }
}

/// One cipher suite from Get Channel Cipher Suites ("list algorithms by cipher suite").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuiteRecord {
    pub id: u8,
    pub auth: Option<u8>,
    pub integrity: Vec<u8>,
    pub conf: Vec<u8>,
}

/// The record bytes a BMC reports for `suites` (standard records, C0h).
pub fn encode_suite_records(suites: &[(u8, u8, u8, u8)]) -> Vec<u8> {
    let mut v = vec![];
    for &(id, a, i, c) in suites {
        v.extend([0xC0, id, a & 0x3F, 0x40 | (i & 0x3F), 0x80 | (c & 0x3F)]);
    }
    v
}

/// Parse the concatenated record data of every Get Channel Cipher Suites page.
pub fn parse_suite_records(b: &[u8]) -> Result<Vec<SuiteRecord>, String> {
    let mut out: Vec<SuiteRecord> = vec![];
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            0xC0 | 0xC1 => {
                let oem = b[i] == 0xC1;
                // a record split at the end of the data (a page boundary) ends the list
                let Some(&id) = b.get(i + 1) else { break };
                i += if oem { 5 } else { 2 };
                out.push(SuiteRecord { id, auth: None, integrity: vec![], conf: vec![] });
            }
            x => {
                let Some(r) = out.last_mut() else {
                    return Err(format!("cipher suite data starts with 0x{x:02X}, not a record start (C0h/C1h)"));
                };
                match x >> 6 {
                    0 => r.auth = Some(x & 0x3F),
                    1 => r.integrity.push(x & 0x3F),
                    2 => r.conf.push(x & 0x3F),
                    _ => return Err(format!("cipher suite data: unexpected byte 0x{x:02X}")),
                }
                i += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fence::rmcp::crypto::{SessionKeys, Suite};

    #[test]
    fn ipmi_message_round_trip() {
        let req = encode_request(0x06, 0x38, 5, &[0x8E, 0x04]);
        let m = decode_request(&req).unwrap();
        assert_eq!((m.netfn, m.cmd, m.seq, m.data.clone()), (0x06, 0x38, 5, vec![0x8E, 0x04]));
        let resp = encode_response(&m, 0, &[1, 2]);
        let r = decode_response(&resp).unwrap();
        assert_eq!((r.netfn, r.cmd, r.seq, r.cc, r.data), (0x06, 0x38, 5, Some(0), vec![1, 2]));
        let mut bad = resp.clone();
        bad[7] ^= 1;
        assert!(decode_response(&bad).is_err());
        assert!(decode_response(&[1, 2]).is_err());
    }

    #[test]
    fn ipmi_sim_cipher_suite_page_parses() {
        // Get Channel Cipher Suites page 0 as ipmi_sim answers it (records after the channel byte)
        let page = [0xc0, 0x00, 0x00, 0x40, 0x80, 0xc0, 0x01, 0x01, 0x40, 0x80, 0xc0, 0x02, 0x01, 0x41, 0x80, 0xc0];
        let recs = parse_suite_records(&page).unwrap();
        assert_eq!(recs.iter().map(|r| r.id).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(recs[2].integrity, vec![1]);
        let ours = encode_suite_records(&[(3, 1, 1, 1), (17, 3, 4, 1)]);
        let recs = parse_suite_records(&ours).unwrap();
        assert_eq!(recs[1], SuiteRecord { id: 17, auth: Some(3), integrity: vec![4], conf: vec![1] });
        assert!(parse_suite_records(&[0x41]).is_err());
    }

    #[test]
    fn sealed_packets_open_and_tampering_is_caught() {
        for suite in [Suite::S3, Suite::S17] {
            let k = SessionKeys::derive(suite, &[3u8; 20]);
            let msg = encode_request(0, 1, 1, &[]);
            let p = build_v2(ptype::IPMI, 0x1234, 7, &msg, Some(&k), Some([5; 16]));
            assert_eq!((p.len() - 4 - suite.integrity.icv_len()) % 4, 0);
            let (pt, sid, seq, plain) = open_v2(&p, &k).unwrap();
            assert_eq!((pt, sid, seq, plain), (0, 0x1234, 7, msg.clone()));
            let mut bad = p.clone();
            bad[20] ^= 0x80;
            assert!(open_v2(&bad, &k).unwrap_err().contains("integrity"));
            let other = SessionKeys::derive(suite, &[4u8; 20]);
            assert!(open_v2(&p, &other).is_err());
        }
        // garbage never panics
        for n in 0..40 {
            let _ = parse(&vec![0x06; n]);
            let _ = OpenSessionResponse::parse(&vec![0; n]);
            let _ = Rakp2::parse(&vec![0; n]);
            let _ = Rakp1::parse(&vec![0xFF; n]);
        }
    }

    #[test]
    fn session_payloads_round_trip() {
        let o = OpenSessionRequest { tag: 1, max_priv: 4, console_sid: 0xA0B0C0D0, auth: 3, integrity: 4, conf: 1 };
        assert_eq!(OpenSessionRequest::parse(&o.encode()).unwrap(), o);
        let r = OpenSessionResponse { tag: 1, status: 0, max_priv: 4, console_sid: 9, bmc_sid: 10, auth: 3, integrity: 4, conf: 1 };
        assert_eq!(OpenSessionResponse::parse(&r.encode()).unwrap(), r);
        let r1 = Rakp1 { tag: 2, bmc_sid: 10, rm: [1; 16], role: 0x14, username: b"admin".to_vec() };
        assert_eq!(Rakp1::parse(&r1.encode()).unwrap(), r1);
        let r2 = Rakp2 { tag: 2, status: 0, console_sid: 9, rc: [2; 16], guid: [3; 16], code: vec![4; 32] };
        assert_eq!(Rakp2::parse(&r2.encode()).unwrap(), r2);
        let r4 = Rakp4 { tag: 3, status: 0x0F, console_sid: 9, icv: vec![] };
        assert_eq!(Rakp4::parse(&r4.encode()).unwrap(), r4);
    }
}
