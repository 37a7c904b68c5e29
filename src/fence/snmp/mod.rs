//! A small SNMP v1/v2c message layer (RFC 1157, RFC 3416 PDUs, BER as in X.690), sans I/O:
//! `encode_request` builds the bytes of a GetRequest / GetNextRequest / SetRequest, `decode_message`
//! reads a reply into a `Message`. The UDP part is `client.rs`. Only what a fence driver needs:
//! INTEGER, OCTET STRING, NULL, OBJECT IDENTIFIER and the SMI application types; no v3.
//!
//! Decoding never panics: every length is checked against the bytes that are there.
pub mod client;

use std::fmt;

/// SNMP protocol version on the wire (the message's version field: v1 = 0, v2c = 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2c,
}

impl Version {
    fn wire(self) -> i64 {
        match self {
            Version::V1 => 0,
            Version::V2c => 1,
        }
    }
    /// From fence-agents' `snmp_version=` values ("1", "2c"; "2" taken as 2c).
    pub fn parse(s: &str) -> Result<Version, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "1" | "v1" => Ok(Version::V1),
            "2c" | "2" | "v2c" => Ok(Version::V2c),
            "3" | "v3" => Err("SNMPv3 is not supported by the native SNMP driver".into()),
            other => Err(format!("snmp_version=\"{other}\" is not one of 1, 2c, 3")),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::V1 => "v1",
            Version::V2c => "v2c",
        })
    }
}

/// An object identifier, e.g. 1.3.6.1.2.1.1.2.0.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Oid(pub Vec<u32>);

impl Oid {
    /// Parse dotted text ("1.3.6.1..." or ".1.3.6.1...").
    pub fn parse(s: &str) -> Result<Oid, String> {
        let t = s.trim().trim_start_matches('.');
        let arcs: Result<Vec<u32>, _> = t.split('.').map(|a| a.parse::<u32>()).collect();
        match arcs {
            Ok(a) if a.len() >= 2 && a[0] <= 2 && (a[0] == 2 || a[1] < 40) => Ok(Oid(a)),
            _ => Err(format!("\"{s}\" is not an object identifier (dotted numbers like 1.3.6.1.2.1.1.2.0)")),
        }
    }
    /// This OID with more arcs appended.
    pub fn child(&self, arcs: &[u32]) -> Oid {
        let mut v = self.0.clone();
        v.extend_from_slice(arcs);
        Oid(v)
    }
    pub fn starts_with(&self, prefix: &Oid) -> bool {
        self.0.starts_with(&prefix.0)
    }
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|a| a.to_string()).collect();
        write!(f, "{}", parts.join("."))
    }
}

/// A variable binding's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Integer(i64),
    OctetString(Vec<u8>),
    Null,
    Oid(Oid),
    IpAddress([u8; 4]),
    Counter32(u32),
    Gauge32(u32),
    TimeTicks(u32),
    Counter64(u64),
    /// v2c exceptions in a Response (RFC 3416 §3).
    NoSuchObject,
    NoSuchInstance,
    EndOfMibView,
    /// Any other tag, kept raw.
    Other(u8, Vec<u8>),
}

impl Value {
    /// The value as text, for messages and outlet names (strings lossily as UTF-8).
    pub fn text(&self) -> String {
        match self {
            Value::Integer(i) => i.to_string(),
            Value::OctetString(b) => String::from_utf8_lossy(b).into_owned(),
            Value::Null => "NULL".into(),
            Value::Oid(o) => o.to_string(),
            Value::IpAddress(a) => format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]),
            Value::Counter32(v) | Value::Gauge32(v) | Value::TimeTicks(v) => v.to_string(),
            Value::Counter64(v) => v.to_string(),
            Value::NoSuchObject => "noSuchObject".into(),
            Value::NoSuchInstance => "noSuchInstance".into(),
            Value::EndOfMibView => "endOfMibView".into(),
            Value::Other(t, b) => format!("tag 0x{t:02x} ({} bytes)", b.len()),
        }
    }
    pub fn is_exception(&self) -> bool {
        matches!(self, Value::NoSuchObject | Value::NoSuchInstance | Value::EndOfMibView)
    }
}

/// PDU types this layer builds or reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PduKind {
    Get,
    GetNext,
    Response,
    Set,
    /// Anything else (traps, reports, bulk): carried so a reply of the wrong kind can be named.
    Other(u8),
}

impl PduKind {
    fn tag(self) -> u8 {
        match self {
            PduKind::Get => 0xA0,
            PduKind::GetNext => 0xA1,
            PduKind::Response => 0xA2,
            PduKind::Set => 0xA3,
            PduKind::Other(t) => t,
        }
    }
    fn from_tag(t: u8) -> PduKind {
        match t {
            0xA0 => PduKind::Get,
            0xA1 => PduKind::GetNext,
            0xA2 => PduKind::Response,
            0xA3 => PduKind::Set,
            t => PduKind::Other(t),
        }
    }
}

/// The error-status names of RFC 3416 (0-18; 0-5 are also v1's).
pub fn error_status_name(status: i64) -> &'static str {
    match status {
        0 => "noError",
        1 => "tooBig",
        2 => "noSuchName",
        3 => "badValue",
        4 => "readOnly",
        5 => "genErr",
        6 => "noAccess",
        7 => "wrongType",
        8 => "wrongLength",
        9 => "wrongEncoding",
        10 => "wrongValue",
        11 => "noCreation",
        12 => "inconsistentValue",
        13 => "resourceUnavailable",
        14 => "commitFailed",
        15 => "undoFailed",
        16 => "authorizationError",
        17 => "notWritable",
        18 => "inconsistentName",
        _ => "unknown error status",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    pub kind: PduKind,
    pub request_id: i32,
    pub error_status: i64,
    /// 1-based index of the varbind the error is about (0 = none).
    pub error_index: i64,
    pub varbinds: Vec<(Oid, Value)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub version: Version,
    pub community: Vec<u8>,
    pub pdu: Pdu,
}

// ---- BER encoding ----

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 4);
    out.push(tag);
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

fn int_content(v: i64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    // drop leading bytes that only repeat the sign
    while start < 7 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0x00 && next & 0x80 == 0) || (b == 0xFF && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    bytes[start..].to_vec()
}

fn uint_content(v: u64) -> Vec<u8> {
    let mut c = v.to_be_bytes().to_vec();
    while c.len() > 1 && c[0] == 0 && c[1] & 0x80 == 0 {
        c.remove(0);
    }
    if c[0] & 0x80 != 0 {
        c.insert(0, 0);
    }
    c
}

fn oid_content(oid: &Oid) -> Vec<u8> {
    let a = &oid.0;
    let mut out = Vec::new();
    let mut arcs: Vec<u64> = Vec::with_capacity(a.len());
    match a.len() {
        0 => arcs.push(0),
        1 => arcs.push(a[0] as u64 * 40),
        _ => {
            arcs.push(a[0] as u64 * 40 + a[1] as u64);
            arcs.extend(a[2..].iter().map(|x| *x as u64));
        }
    }
    for mut v in arcs {
        let mut tmp = vec![(v & 0x7F) as u8];
        v >>= 7;
        while v > 0 {
            tmp.push(0x80 | (v & 0x7F) as u8);
            v >>= 7;
        }
        tmp.reverse();
        out.extend(tmp);
    }
    out
}

fn encode_value(v: &Value) -> Vec<u8> {
    match v {
        Value::Integer(i) => tlv(0x02, &int_content(*i)),
        Value::OctetString(b) => tlv(0x04, b),
        Value::Null => tlv(0x05, &[]),
        Value::Oid(o) => tlv(0x06, &oid_content(o)),
        Value::IpAddress(a) => tlv(0x40, a),
        Value::Counter32(x) => tlv(0x41, &uint_content(*x as u64)),
        Value::Gauge32(x) => tlv(0x42, &uint_content(*x as u64)),
        Value::TimeTicks(x) => tlv(0x43, &uint_content(*x as u64)),
        Value::Counter64(x) => tlv(0x46, &uint_content(*x)),
        Value::NoSuchObject => tlv(0x80, &[]),
        Value::NoSuchInstance => tlv(0x81, &[]),
        Value::EndOfMibView => tlv(0x82, &[]),
        Value::Other(t, b) => tlv(*t, b),
    }
}

/// The bytes of a whole message.
pub fn encode_message(m: &Message) -> Vec<u8> {
    let mut vbs = Vec::new();
    for (oid, val) in &m.pdu.varbinds {
        let mut vb = tlv(0x06, &oid_content(oid));
        vb.extend(encode_value(val));
        vbs.extend(tlv(0x30, &vb));
    }
    let mut pdu = tlv(0x02, &int_content(m.pdu.request_id as i64));
    pdu.extend(tlv(0x02, &int_content(m.pdu.error_status)));
    pdu.extend(tlv(0x02, &int_content(m.pdu.error_index)));
    pdu.extend(tlv(0x30, &vbs));
    let mut msg = tlv(0x02, &int_content(m.version.wire()));
    msg.extend(tlv(0x04, &m.community));
    msg.extend(tlv(m.pdu.kind.tag(), &pdu));
    tlv(0x30, &msg)
}

/// A request: Get/GetNext carry NULL values, Set the values to write.
pub fn encode_request(version: Version, community: &[u8], kind: PduKind, request_id: i32, varbinds: &[(Oid, Value)]) -> Vec<u8> {
    encode_message(&Message {
        version,
        community: community.to_vec(),
        pdu: Pdu { kind, request_id, error_status: 0, error_index: 0, varbinds: varbinds.to_vec() },
    })
}

// ---- BER decoding ----

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
    /// Next TLV: (tag, content).
    fn tlv(&mut self, what: &str) -> Result<(u8, &'a [u8]), String> {
        let at = self.pos;
        let tag = *self.buf.get(self.pos).ok_or_else(|| format!("{what}: message ends at byte {at}"))?;
        if tag & 0x1F == 0x1F {
            return Err(format!("{what}: multi-byte tag at byte {at} is not used by SNMP"));
        }
        let first = *self.buf.get(self.pos + 1).ok_or_else(|| format!("{what}: no length at byte {}", at + 1))?;
        let mut p = self.pos + 2;
        let len = if first < 0x80 {
            first as usize
        } else {
            let n = (first & 0x7F) as usize;
            if n == 0 || n > 4 {
                return Err(format!("{what}: unsupported length form 0x{first:02x} at byte {}", at + 1));
            }
            let bytes = self.buf.get(p..p + n).ok_or_else(|| format!("{what}: length bytes cut off at byte {p}"))?;
            p += n;
            bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize)
        };
        let content = self
            .buf
            .get(p..p.checked_add(len).ok_or("length overflow")?)
            .ok_or_else(|| format!("{what}: {len} bytes announced at byte {at}, only {} there", self.buf.len().saturating_sub(p)))?;
        self.pos = p + len;
        Ok((tag, content))
    }
    fn expect(&mut self, tag: u8, what: &str) -> Result<&'a [u8], String> {
        let at = self.pos;
        let (t, c) = self.tlv(what)?;
        if t != tag {
            return Err(format!("{what}: expected tag 0x{tag:02x} at byte {at}, found 0x{t:02x}"));
        }
        Ok(c)
    }
    fn integer(&mut self, what: &str) -> Result<i64, String> {
        let c = self.expect(0x02, what)?;
        decode_int(c).ok_or_else(|| format!("{what}: integer of {} bytes", c.len()))
    }
}

fn decode_int(c: &[u8]) -> Option<i64> {
    if c.is_empty() || c.len() > 8 {
        return None;
    }
    let mut v: i64 = if c[0] & 0x80 != 0 { -1 } else { 0 };
    for b in c {
        v = (v << 8) | *b as i64;
    }
    Some(v)
}

fn decode_uint(c: &[u8]) -> Option<u64> {
    let c = if c.len() > 1 && c[0] == 0 { &c[1..] } else { c };
    if c.is_empty() || c.len() > 8 {
        return None;
    }
    Some(c.iter().fold(0u64, |acc, b| (acc << 8) | *b as u64))
}

fn decode_oid(c: &[u8]) -> Option<Oid> {
    if c.is_empty() {
        return None;
    }
    let mut arcs: Vec<u64> = Vec::new();
    let mut v: u64 = 0;
    for (i, b) in c.iter().enumerate() {
        if v > (u64::MAX >> 7) {
            return None;
        }
        v = (v << 7) | (*b & 0x7F) as u64;
        if b & 0x80 == 0 {
            arcs.push(v);
            v = 0;
        } else if i == c.len() - 1 {
            return None;
        }
    }
    let first = arcs[0];
    let (a, b) = if first < 40 { (0, first) } else if first < 80 { (1, first - 40) } else { (2, first - 80) };
    let mut out = vec![a as u32, u32::try_from(b).ok()?];
    for x in &arcs[1..] {
        out.push(u32::try_from(*x).ok()?);
    }
    Some(Oid(out))
}

fn decode_value(tag: u8, c: &[u8]) -> Result<Value, String> {
    let bad = |name: &str| format!("{name} value of {} bytes", c.len());
    Ok(match tag {
        0x02 => Value::Integer(decode_int(c).ok_or_else(|| bad("INTEGER"))?),
        0x04 => Value::OctetString(c.to_vec()),
        0x05 => Value::Null,
        0x06 => Value::Oid(decode_oid(c).ok_or_else(|| bad("OBJECT IDENTIFIER"))?),
        0x40 => Value::IpAddress(c.try_into().map_err(|_| bad("IpAddress"))?),
        0x41..=0x43 => {
            let v = decode_uint(c).and_then(|v| u32::try_from(v).ok()).ok_or_else(|| bad("32-bit counter"))?;
            match tag {
                0x41 => Value::Counter32(v),
                0x42 => Value::Gauge32(v),
                _ => Value::TimeTicks(v),
            }
        }
        0x46 => Value::Counter64(decode_uint(c).ok_or_else(|| bad("Counter64"))?),
        0x80 => Value::NoSuchObject,
        0x81 => Value::NoSuchInstance,
        0x82 => Value::EndOfMibView,
        t => Value::Other(t, c.to_vec()),
    })
}

/// Read one SNMP v1/v2c message (any PDU type with the request-id/error/varbinds layout).
pub fn decode_message(buf: &[u8]) -> Result<Message, String> {
    let mut top = Reader::new(buf);
    let body = top.expect(0x30, "SNMP message")?;
    let mut r = Reader::new(body);
    let version = match r.integer("version")? {
        0 => Version::V1,
        1 => Version::V2c,
        3 => return Err("an SNMPv3 message (only v1 and v2c are understood)".into()),
        v => return Err(format!("unknown SNMP version number {v}")),
    };
    let community = r.expect(0x04, "community")?.to_vec();
    let (ptag, pbody) = r.tlv("PDU")?;
    let kind = PduKind::from_tag(ptag);
    if ptag == 0xA4 {
        return Err("an SNMPv1 trap, not a response".into());
    }
    let mut p = Reader::new(pbody);
    let rid = p.integer("request-id")?;
    let request_id = i32::try_from(rid).map_err(|_| format!("request-id {rid} out of range"))?;
    let error_status = p.integer("error-status")?;
    let error_index = p.integer("error-index")?;
    let vbl = p.expect(0x30, "varbind list")?;
    let mut vr = Reader::new(vbl);
    let mut varbinds = Vec::new();
    while !vr.done() {
        let vb = vr.expect(0x30, "varbind")?;
        let mut one = Reader::new(vb);
        let oid_c = one.expect(0x06, "varbind name")?;
        let oid = decode_oid(oid_c).ok_or("varbind name: malformed OBJECT IDENTIFIER")?;
        let (vt, vc) = one.tlv("varbind value")?;
        varbinds.push((oid, decode_value(vt, vc).map_err(|e| format!("varbind value: {e}"))?));
    }
    Ok(Message { version, community, pdu: Pdu { kind, request_id, error_status, error_index, varbinds } })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(s: &str) -> Oid {
        Oid::parse(s).unwrap()
    }

    #[test]
    fn get_request_matches_net_snmp_bytes() {
        // snmpget -v1 -c public HOST 1.3.6.1.2.1.1.2.0 with request-id 0x1234, as RFC 1157 BER
        let b = encode_request(Version::V1, b"public", PduKind::Get, 0x1234, &[(oid("1.3.6.1.2.1.1.2.0"), Value::Null)]);
        let want: Vec<u8> = vec![
            0x30, 0x27, 0x02, 0x01, 0x00, 0x04, 0x06, b'p', b'u', b'b', b'l', b'i', b'c', 0xA0, 0x1A, 0x02, 0x02, 0x12,
            0x34, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30, 0x0E, 0x30, 0x0C, 0x06, 0x08, 0x2B, 0x06, 0x01, 0x02,
            0x01, 0x01, 0x02, 0x00, 0x05, 0x00,
        ];
        assert_eq!(b, want);
    }

    #[test]
    fn round_trip_every_value_type() {
        let vbs = vec![
            (oid("1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.3"), Value::Integer(2)),
            (oid("1.3.6.1.2.1.1.1.0"), Value::OctetString(b"APC".to_vec())),
            (oid("1.3.6.1.2.1.1.2.0"), Value::Oid(oid("1.3.6.1.4.1.318.1.3.4.5"))),
            (oid("1.3.6.1.2.1.1.3.0"), Value::TimeTicks(4_000_000_000)),
            (oid("1.3.6.1.2.1.2.2.1.10.1"), Value::Counter32(0x8000_0000)),
            (oid("1.3.6.1.2.1.31.1.1.1.6.1"), Value::Counter64(u64::MAX)),
            (oid("1.3.6.1.2.1.4.20.1.1.1"), Value::IpAddress([127, 0, 0, 1])),
            (oid("1.3.6.1.9"), Value::NoSuchInstance),
            (oid("2.999.1"), Value::Gauge32(0)),
            (oid("1.3.6.1.9.1"), Value::Integer(-129)),
            (oid("1.3.6.1.9.2"), Value::Integer(i64::MIN)),
            (oid("1.3.6.1.9.3"), Value::OctetString(vec![b'x'; 300])),
        ];
        let m = Message {
            version: Version::V2c,
            community: b"private".to_vec(),
            pdu: Pdu { kind: PduKind::Response, request_id: -5, error_status: 17, error_index: 2, varbinds: vbs },
        };
        assert_eq!(decode_message(&encode_message(&m)).unwrap(), m);
    }

    #[test]
    fn integers_are_minimal() {
        assert_eq!(int_content(0), vec![0]);
        assert_eq!(int_content(127), vec![0x7F]);
        assert_eq!(int_content(128), vec![0x00, 0x80]);
        assert_eq!(int_content(-1), vec![0xFF]);
        assert_eq!(int_content(-128), vec![0x80]);
        assert_eq!(int_content(-129), vec![0xFF, 0x7F]);
    }

    #[test]
    fn truncated_or_garbage_input_is_an_error_not_a_panic() {
        let good = encode_request(Version::V1, b"c", PduKind::Get, 7, &[(oid("1.3.6.1.2.1.1.2.0"), Value::Null)]);
        for n in 0..good.len() {
            assert!(decode_message(&good[..n]).is_err(), "prefix of {n} bytes");
        }
        let mut x: u32 = 12345;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let _ = decode_message(&bytes);
        }
        assert!(decode_message(&[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]).is_err());
        assert!(decode_message(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_err());
    }

    #[test]
    fn oid_text() {
        assert_eq!(oid(".1.3.6.1.4.1.318").to_string(), "1.3.6.1.4.1.318");
        assert!(Oid::parse("1").is_err());
        assert!(Oid::parse("1.3.x").is_err());
        assert!(Oid::parse("3.1").is_err());
        assert!(oid("1.3.6.1.4.1.318.1.1.12.3.5.1.1.2.4").starts_with(&oid("1.3.6.1.4.1.318.1.1.12.3.5.1.1.2")));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = decode_message(&bytes);
        }

        #[test]
        fn requests_round_trip(
            rid in proptest::prelude::any::<i32>(),
            v in proptest::prelude::any::<i64>(),
            first in 0u32..3,
            second in 0u32..40,
            rest in proptest::collection::vec(proptest::prelude::any::<u32>(), 0..12),
            community in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ) {
            let mut arcs = vec![first, second];
            arcs.extend(rest);
            let m = Message {
                version: Version::V1,
                community,
                pdu: Pdu { kind: PduKind::Set, request_id: rid, error_status: 0, error_index: 0, varbinds: vec![(Oid(arcs), Value::Integer(v))] },
            };
            proptest::prop_assert_eq!(decode_message(&encode_message(&m)).unwrap(), m);
        }
    }

    #[test]
    fn versions() {
        assert_eq!(Version::parse("1").unwrap(), Version::V1);
        assert_eq!(Version::parse("2c").unwrap(), Version::V2c);
        assert!(Version::parse("3").unwrap_err().contains("v3"));
        assert!(Version::parse("4").is_err());
    }
}
