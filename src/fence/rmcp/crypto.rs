//! The cryptography of an RMCP+ session (IPMI 2.0 section 13.28-13.32), for cipher suites 3 and 17:
//! RAKP key-exchange authentication codes, the session integrity key (SIK) and its derived keys
//! K1 (integrity) and K2 (confidentiality), per-packet integrity (HMAC-SHA1-96, HMAC-SHA256-128)
//! and AES-CBC-128 with IPMI's confidentiality padding. Pure functions, no I/O.
use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};

/// RAKP authentication algorithm numbers (Open Session payload type 0).
pub const AUTH_RAKP_HMAC_SHA1: u8 = 0x01;
pub const AUTH_RAKP_HMAC_SHA256: u8 = 0x03;
/// Integrity algorithm numbers (payload type 1).
pub const INTEGRITY_HMAC_SHA1_96: u8 = 0x01;
pub const INTEGRITY_HMAC_SHA256_128: u8 = 0x04;
/// Confidentiality algorithm numbers (payload type 2).
pub const CONF_AES_CBC_128: u8 = 0x01;

/// The hash behind an HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha256,
}

impl Hash {
    /// Full HMAC output length.
    #[allow(clippy::len_without_is_empty)] // an output size, never empty
    pub fn len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
        }
    }
    /// Truncated length of the per-packet AuthCode and of the RAKP 4 integrity check value
    /// (HMAC-SHA1-96: 12, HMAC-SHA256-128: 16).
    pub fn icv_len(self) -> usize {
        match self {
            Hash::Sha1 => 12,
            Hash::Sha256 => 16,
        }
    }
}

/// HMAC of the concatenation of `parts` under `key`. Keys shorter than the block size are
/// zero-padded by HMAC itself, so a password padded to 20 bytes with NULs (what IPMI stores)
/// gives the same result as the bare password.
pub fn hmac(hash: Hash, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    match hash {
        Hash::Sha1 => {
            let mut m = <Hmac<sha1::Sha1> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().to_vec()
        }
        Hash::Sha256 => {
            let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().to_vec()
        }
    }
}

/// Constant-time comparison of two authentication codes.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A cipher suite this code can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    pub id: u8,
    /// Hash of the RAKP exchange, the SIK, K1 and K2.
    pub rakp: Hash,
    /// Hash of the per-packet integrity AuthCode (keyed with K1).
    pub integrity: Hash,
}

impl Suite {
    /// Suite 3: RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128.
    pub const S3: Suite = Suite { id: 3, rakp: Hash::Sha1, integrity: Hash::Sha1 };
    /// Suite 17: RAKP-HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128.
    pub const S17: Suite = Suite { id: 17, rakp: Hash::Sha256, integrity: Hash::Sha256 };

    pub fn by_id(id: u8) -> Option<Suite> {
        match id {
            3 => Some(Suite::S3),
            17 => Some(Suite::S17),
            _ => None,
        }
    }

    /// The suite with these Open Session algorithm numbers, if it is one we run.
    pub fn by_algorithms(auth: u8, integrity: u8, conf: u8) -> Option<Suite> {
        [Suite::S3, Suite::S17].into_iter().find(|s| s.algorithms() == (auth, integrity, conf))
    }

    /// (authentication, integrity, confidentiality) algorithm numbers.
    pub fn algorithms(self) -> (u8, u8, u8) {
        match self.rakp {
            Hash::Sha1 => (AUTH_RAKP_HMAC_SHA1, INTEGRITY_HMAC_SHA1_96, CONF_AES_CBC_128),
            Hash::Sha256 => (AUTH_RAKP_HMAC_SHA256, INTEGRITY_HMAC_SHA256_128, CONF_AES_CBC_128),
        }
    }

    pub fn describe(self) -> &'static str {
        match self.rakp {
            Hash::Sha1 => "RAKP-HMAC-SHA1 / HMAC-SHA1-96 / AES-CBC-128",
            Hash::Sha256 => "RAKP-HMAC-SHA256 / HMAC-SHA256-128 / AES-CBC-128",
        }
    }
}

/// The values both sides of a RAKP exchange know once RAKP 2 has been seen.
#[derive(Clone)]
pub struct Rakp {
    pub suite: Suite,
    /// Remote console (client) session ID, SIDm.
    pub console_sid: u32,
    /// Managed system (BMC) session ID, SIDc.
    pub bmc_sid: u32,
    /// Remote console random number Rm.
    pub rm: [u8; 16],
    /// Managed system random number Rc.
    pub rc: [u8; 16],
    /// Managed system GUID.
    pub guid: [u8; 16],
    /// The whole requested-role byte of RAKP 1 (privilege level | name-only lookup bit).
    pub role: u8,
    pub username: Vec<u8>,
}

impl Rakp {
    /// RAKP 2 key exchange authentication code (BMC proves it knows the password):
    /// HMAC_Kuid(SIDm | SIDc | Rm | Rc | GUIDc | ROLEm | ULENGTHm | UNAMEm).
    pub fn rakp2_code(&self, kuid: &[u8]) -> Vec<u8> {
        hmac(
            self.suite.rakp,
            kuid,
            &[
                &self.console_sid.to_le_bytes(),
                &self.bmc_sid.to_le_bytes(),
                &self.rm,
                &self.rc,
                &self.guid,
                &[self.role, self.username.len() as u8],
                &self.username,
            ],
        )
    }

    /// RAKP 3 key exchange authentication code (console proves it knows the password):
    /// HMAC_Kuid(Rc | SIDm | ROLEm | ULENGTHm | UNAMEm).
    pub fn rakp3_code(&self, kuid: &[u8]) -> Vec<u8> {
        hmac(
            self.suite.rakp,
            kuid,
            &[&self.rc, &self.console_sid.to_le_bytes(), &[self.role, self.username.len() as u8], &self.username],
        )
    }

    /// Session integrity key: HMAC_Kg(Rm | Rc | ROLEm | ULENGTHm | UNAMEm), Kg = Kuid without a
    /// BMC key.
    pub fn sik(&self, kg: &[u8]) -> Vec<u8> {
        hmac(self.suite.rakp, kg, &[&self.rm, &self.rc, &[self.role, self.username.len() as u8], &self.username])
    }

    /// RAKP 4 integrity check value: HMAC_SIK(Rm | SIDc | GUIDc), truncated.
    pub fn rakp4_icv(&self, sik: &[u8]) -> Vec<u8> {
        let mut v = hmac(self.suite.rakp, sik, &[&self.rm, &self.bmc_sid.to_le_bytes(), &self.guid]);
        v.truncate(self.suite.rakp.icv_len());
        v
    }
}

/// The keys of an active session.
#[derive(Clone)]
pub struct SessionKeys {
    pub suite: Suite,
    /// K1 = HMAC_SIK(20 bytes of 0x01), keys the per-packet integrity AuthCode.
    pub k1: Vec<u8>,
    /// The first 16 bytes of K2 = HMAC_SIK(20 bytes of 0x02): the AES-128 key.
    pub aes_key: [u8; 16],
}

impl SessionKeys {
    /// The constants are 20 bytes for every hash (IPMI 2.0 section 13.32; ipmitool does the
    /// same for SHA-256): K1 and K2 are then as long as the hash output.
    pub fn derive(suite: Suite, sik: &[u8]) -> SessionKeys {
        let k1 = hmac(suite.rakp, sik, &[&[0x01u8; 20]]);
        let k2 = hmac(suite.rakp, sik, &[&[0x02u8; 20]]);
        let mut aes_key = [0u8; 16];
        aes_key.copy_from_slice(&k2[..16]);
        SessionKeys { suite, k1, aes_key }
    }

    /// Per-packet AuthCode over `data` (session header through Next Header), truncated.
    pub fn auth_code(&self, data: &[u8]) -> Vec<u8> {
        let mut v = hmac(self.suite.integrity, &self.k1, &[data]);
        v.truncate(self.suite.integrity.icv_len());
        v
    }

    /// AES-CBC-128 confidentiality: IV | E(payload | 01 02 .. n | n), n so that the whole is a
    /// multiple of 16 bytes.
    pub fn encrypt(&self, payload: &[u8], iv: [u8; 16]) -> Vec<u8> {
        let pad = (16 - (payload.len() + 1) % 16) % 16;
        let mut buf = payload.to_vec();
        buf.extend((1..=pad as u8).collect::<Vec<u8>>());
        buf.push(pad as u8);
        let len = buf.len();
        let enc = cbc::Encryptor::<aes::Aes128>::new(&self.aes_key.into(), &iv.into());
        let out = enc.encrypt_padded_mut::<NoPadding>(&mut buf, len).expect("length is a multiple of 16");
        let mut v = iv.to_vec();
        v.extend_from_slice(out);
        v
    }

    /// Reverse of `encrypt`; an error text when the data cannot be an AES-CBC-128 payload.
    pub fn decrypt(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        if data.len() < 32 || !data.len().is_multiple_of(16) {
            return Err(format!("encrypted payload of {} bytes is not IV + whole AES blocks", data.len()));
        }
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&data[..16]);
        let mut buf = data[16..].to_vec();
        let dec = cbc::Decryptor::<aes::Aes128>::new(&self.aes_key.into(), &iv.into());
        let plain = dec.decrypt_padded_mut::<NoPadding>(&mut buf).map_err(|_| "AES-CBC decryption failed".to_string())?;
        let pad = *plain.last().unwrap_or(&0) as usize;
        if pad >= plain.len() || pad > 15 {
            return Err(format!("confidentiality pad length {pad} is invalid (wrong session key?)"));
        }
        Ok(plain[..plain.len() - 1 - pad].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn sik_k1_k2_match_ipmitool_for_suite_3() {
        // ipmitool 1.8.19 -vv against ipmi_sim (user admin, password secret, role 0x14): it
        // printed the SIK input (Rm | Rc | role | ulen | name) and the keys below.
        let input = from_hex(
            "9d 55 24 83 bb 35 d1 61 45 63 b9 d6 be 2a 26 e8 6e e5 21 55 a0 eb d2 e8 3c b0 4b 94 fc 73 13 be 14 05 61 64 6d 69 6e",
        );
        let mut r = Rakp {
            suite: Suite::S3,
            console_sid: 0,
            bmc_sid: 0,
            rm: [0; 16],
            rc: [0; 16],
            guid: [0; 16],
            role: input[32],
            username: input[34..].to_vec(),
        };
        r.rm.copy_from_slice(&input[..16]);
        r.rc.copy_from_slice(&input[16..32]);
        let sik = r.sik(b"secret");
        assert_eq!(sik, from_hex("30 fe 3a 10 9d c3 5c 57 ac ca 13 66 18 40 26 13 66 a3 fe 30"));
        // the password padded to 20 bytes with NULs gives the same key
        let mut padded = b"secret".to_vec();
        padded.resize(20, 0);
        assert_eq!(r.sik(&padded), sik);
        let k = SessionKeys::derive(Suite::S3, &sik);
        assert_eq!(k.k1, from_hex("92 1e 72 b9 b0 d7 7a 34 62 d4 0b 66 36 6c 8c 90 82 e3 f8 89"));
        assert_eq!(k.aes_key.to_vec(), from_hex("69 72 88 d2 ee 39 19 77 23 2a 2a 29 dd 31 c9 cd"));
    }

    #[test]
    fn aes_round_trip_and_padding() {
        let k = SessionKeys::derive(Suite::S17, &[7u8; 32]);
        assert_eq!(k.k1.len(), 32);
        for n in [0usize, 1, 14, 15, 16, 17, 40] {
            let p: Vec<u8> = (0..n as u8).collect();
            let e = k.encrypt(&p, [9; 16]);
            assert_eq!(e.len() % 16, 0);
            assert_eq!(k.decrypt(&e).unwrap(), p);
        }
        assert!(k.decrypt(&[0u8; 20]).is_err());
        assert_eq!(k.auth_code(b"x").len(), 16);
        assert_eq!(SessionKeys::derive(Suite::S3, &[7u8; 20]).auth_code(b"x").len(), 12);
    }

    #[test]
    fn suites_by_algorithms() {
        assert_eq!(Suite::by_algorithms(3, 4, 1), Some(Suite::S17));
        assert_eq!(Suite::by_algorithms(1, 1, 1), Some(Suite::S3));
        assert_eq!(Suite::by_algorithms(1, 1, 0), None);
        assert!(ct_eq(b"ab", b"ab") && !ct_eq(b"ab", b"ac") && !ct_eq(b"a", b"ab"));
    }
}
