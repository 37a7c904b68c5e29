//! IPMI over LAN, RMCP+ ("lanplus"), natively: the fence driver over twonode's own session layer
//! (`super::rmcp`, cipher suites 3 and 17).
//!
//! - Cipher suite: `cipher=` is honoured exactly (3 or 17; anything else is refused before a
//!   packet is sent); without it the BMC is asked (Get Channel Cipher Suites) and suite 17 is
//!   taken when offered, else 3, as ipmitool 1.8.19 does.
//! - Set Session Privilege Level (netfn 0x06 cmd 0x3B) before the first Chassis Control; without
//!   it the BMC keeps the session at User level and refuses Chassis Control with completion code
//!   0xD4. A status read does not need it (User level reads Get Chassis Status).
//! - Close Session at the end, so that repeated runs do not exhaust the BMC's session table.
//! - Retries (a fresh session per retry) and classification of failures into `PowerError` kinds.
//!
//! The pure part (reply parsing, completion-code mapping) is unit-tested here; the protocol is
//! in `super::rmcp`.
use super::power::{PowerDevice, PowerError, PowerState};
use super::rmcp::client::Login;
use super::rmcp::udp::{Connection, Negotiation, Options};
use super::rmcp::Suite;
use std::time::Duration;

/// Cipher suites this driver can run.
pub const SUPPORTED_CIPHERS: &[u8] = &[3, 17];

/// IPMI privilege levels as the admin names them (fence_ipmilan `privlvl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    Callback,
    User,
    Operator,
    Administrator,
}

impl Privilege {
    pub fn parse(s: &str) -> Result<Self, PowerError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "callback" => Ok(Privilege::Callback),
            "user" => Ok(Privilege::User),
            "operator" => Ok(Privilege::Operator),
            "administrator" | "admin" | "" => Ok(Privilege::Administrator),
            other => Err(PowerError::Config(format!(
                "privlvl '{other}' is not an IPMI privilege level (use administrator, operator, user or callback)"
            ))),
        }
    }
    pub fn code(self) -> u8 {
        match self {
            Privilege::Callback => 1,
            Privilege::User => 2,
            Privilege::Operator => 3,
            Privilege::Administrator => 4,
        }
    }
}

/// Everything needed to talk to one BMC. `Debug` never prints the password.
#[derive(Clone)]
pub struct IpmiConfig {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    /// `cipher=`: the suite to use, or None to negotiate (17 if the BMC offers it, else 3).
    pub cipher: Option<u8>,
    pub privilege: Privilege,
    /// Time to wait for each reply (and for the whole session set-up per attempt).
    pub timeout: Duration,
    /// Additional attempts (with a fresh session) after a failed one.
    pub retries: u32,
}

impl std::fmt::Debug for IpmiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpmiConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .field("cipher", &self.cipher)
            .field("privilege", &self.privilege)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish()
    }
}

impl IpmiConfig {
    /// Refuse what this driver cannot do before any packet is sent.
    pub fn check(&self) -> Result<(), PowerError> {
        if self.host.trim().is_empty() {
            return Err(PowerError::Config("IPMI device has no ipaddr/ip".into()));
        }
        if let Some(c) = self.cipher {
            if !SUPPORTED_CIPHERS.contains(&c) {
                return Err(PowerError::Config(format!(
                    "cipher suite {c} is not supported by the native IPMI driver (it runs 17: \
                     RAKP-HMAC-SHA256 / HMAC-SHA256-128 / AES-CBC-128, and 3: RAKP-HMAC-SHA1 / \
                     HMAC-SHA1-96 / AES-CBC-128). Set cipher=17 or cipher=3 if the BMC offers it, \
                     leave cipher= unset to negotiate, or set twonode_driver=external to use \
                     fence_ipmilan for suite {c}"
                )));
            }
        }
        if self.username.len() > 16 {
            return Err(PowerError::Config("IPMI user names are at most 16 bytes".into()));
        }
        if self.password.len() > 20 {
            return Err(PowerError::Config("IPMI 2.0 passwords are at most 20 bytes".into()));
        }
        Ok(())
    }
}

/// IPMI commands used by the fence driver (netfn, cmd, data).
pub mod cmd {
    pub const NETFN_CHASSIS: u8 = 0x00;
    pub const NETFN_APP: u8 = 0x06;
    pub const GET_CHASSIS_STATUS: u8 = 0x01;
    pub const CHASSIS_CONTROL: u8 = 0x02;
    pub const SET_SESSION_PRIVILEGE: u8 = 0x3B;
    pub const CLOSE_SESSION: u8 = 0x3C;
    pub const GET_SESSION_INFO: u8 = 0x3D;
}

/// Chassis Control data byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChassisControl {
    Off = 0,
    On = 1,
    Cycle = 2,
    HardReset = 3,
    SoftOff = 5,
}

/// Power state from a Get Chassis Status reply (data after the completion code).
pub fn parse_chassis_status(data: &[u8]) -> Result<PowerState, PowerError> {
    match data.first() {
        Some(b) if b & 1 == 1 => Ok(PowerState::On),
        Some(_) => Ok(PowerState::Off),
        None => Err(PowerError::Protocol("empty Get Chassis Status reply".into())),
    }
}

/// Meaning of an IPMI completion code, mapped onto our error kinds.
pub fn completion_error(what: &str, cc: u8) -> PowerError {
    let text = match cc {
        0xC0 => "node busy",
        0xC1 => "invalid command",
        0xC3 => "timeout while processing command",
        0xC7 | 0xC8 => "request data length invalid",
        0xCC => "invalid data field in request",
        0xCE => "command response could not be provided",
        0xD4 => "insufficient privilege level",
        0xD5 => "command not supported in present state",
        0xD6 => "command sub-function disabled or unavailable",
        0xFF => "unspecified error",
        0x81 => "requested privilege level exceeds the user's or channel's limit",
        _ => "error",
    };
    let msg = format!("{what}: completion code 0x{cc:02X} ({text})");
    match cc {
        0xD4 | 0x81 | 0x80 => PowerError::Auth(format!(
            "{msg}; the user needs operator or administrator privilege (privlvl)"
        )),
        0xD5 | 0xD6 | 0xC1 => PowerError::NotSupported(msg),
        0xC3 => PowerError::Timeout(msg),
        _ => PowerError::Protocol(msg),
    }
}

/// A BMC reached over RMCP+. The session is opened lazily, kept for further commands (status
/// polling) and closed on drop.
pub struct IpmiDevice {
    cfg: IpmiConfig,
    session: Option<Connection>,
    /// The suite of the last session (for `describe`).
    used: Option<(u8, bool)>,
    /// The privilege level of the open session.
    level: u8,
}

impl IpmiDevice {
    pub fn new(cfg: IpmiConfig) -> Result<Self, PowerError> {
        cfg.check()?;
        Ok(IpmiDevice { cfg, session: None, used: None, level: 0 })
    }

    fn target(&self) -> String {
        format!("IPMI {}:{}", self.cfg.host, self.cfg.port)
    }

    /// The suite the last session used, and whether it was negotiated (cipher= unset).
    pub fn suite_used(&self) -> Option<(u8, bool)> {
        self.used
    }

    fn open(&mut self) -> Result<(), PowerError> {
        if self.session.is_some() {
            return Ok(());
        }
        let target = self.target();
        let opts = Options {
            login: Login {
                username: self.cfg.username.as_bytes().to_vec(),
                password: self.cfg.password.as_bytes().to_vec(),
                privilege: self.cfg.privilege.code(),
            },
            suite: self.cfg.cipher.and_then(Suite::by_id),
            timeout: self.cfg.timeout,
        };
        let conn = Connection::open(&self.cfg.host, self.cfg.port, &target, &opts)?;
        if let Negotiation::NotListed(cc) = &conn.negotiation {
            tracing::info!("{target}: Get Channel Cipher Suites refused (completion code 0x{cc:02X}); using suite 3");
        }
        self.used = Some((conn.suite().id, !matches!(conn.negotiation, Negotiation::Configured)));
        self.session = Some(conn);
        // A session starts at User level (or the requested level when lower): enough for Get
        // Chassis Status, so a status read saves the Set Session Privilege round trip.
        self.level = self.cfg.privilege.code().min(2);
        Ok(())
    }

    /// Raise the session to the configured privilege level (Set Session Privilege Level) before a
    /// command that needs more than the session has.
    fn ensure_level(&mut self, needed: u8) -> Result<(), PowerError> {
        let want = self.cfg.privilege.code();
        if needed <= self.level || want <= self.level {
            return Ok(());
        }
        self.raw(cmd::NETFN_APP, cmd::SET_SESSION_PRIVILEGE, &[want], "Set Session Privilege Level")?;
        self.level = want;
        Ok(())
    }

    /// Send one request on the open session; returns the reply data after the completion code.
    fn raw(&mut self, netfn: u8, command: u8, data: &[u8], what: &str) -> Result<Vec<u8>, PowerError> {
        let target = self.target();
        let Some(conn) = self.session.as_mut() else {
            return Err(PowerError::Protocol(format!("{target}: no session")));
        };
        let result = conn.command(netfn, command, data, what).and_then(|resp| match resp.cc {
            Some(0) => Ok(resp.data),
            Some(cc) => Err(completion_error(&format!("{target}: {what}"), cc)),
            None => Err(PowerError::Protocol(format!("{target}: {what}: reply without completion code"))),
        });
        if let Err(e) = &result {
            // A transport failure leaves the session in an unknown state: start afresh next time.
            if matches!(e, PowerError::Timeout(_) | PowerError::Unreachable(_) | PowerError::Protocol(_)) {
                self.session = None;
            }
        }
        result
    }

    /// Open a session if needed and run one command, retrying with a fresh session on transport
    /// failures (not on authentication or completion-code errors).
    fn command(&mut self, netfn: u8, command: u8, data: &[u8], what: &str) -> Result<Vec<u8>, PowerError> {
        let mut attempt = 0;
        loop {
            let needed = if (netfn, command) == (cmd::NETFN_CHASSIS, cmd::CHASSIS_CONTROL) { 3 } else { 2 };
            let r = self.open().and_then(|_| self.ensure_level(needed)).and_then(|_| self.raw(netfn, command, data, what));
            match r {
                Err(e @ (PowerError::Timeout(_) | PowerError::Protocol(_))) if attempt < self.cfg.retries => {
                    tracing::info!("{what} failed ({e}); retrying with a new session");
                    self.session = None;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    pub fn chassis_control(&mut self, c: ChassisControl) -> Result<(), PowerError> {
        let what = format!("Chassis Control {c:?}");
        self.command(cmd::NETFN_CHASSIS, cmd::CHASSIS_CONTROL, &[c as u8], &what).map(|_| ())
    }

    /// Close the session (Close Session with our session ID) and wait for the BMC's answer.
    /// Dropping the device closes it too, without waiting (see `Connection::close_unconfirmed`).
    pub fn close(&mut self) -> Result<(), PowerError> {
        match self.session.take() {
            Some(conn) => conn.close(),
            None => Ok(()),
        }
    }
}

impl Drop for IpmiDevice {
    fn drop(&mut self) {
        if let Some(conn) = self.session.take() {
            conn.close_unconfirmed();
        }
    }
}

impl PowerDevice for IpmiDevice {
    fn describe(&self) -> String {
        let cipher = match (self.cfg.cipher, self.used) {
            (Some(c), _) => c.to_string(),
            (None, Some((c, _))) => format!("{c} (negotiated)"),
            (None, None) => "auto".to_string(),
        };
        format!(
            "IPMI lanplus {}:{} user {} cipher {} privlvl {:?}",
            self.cfg.host, self.cfg.port, self.cfg.username, cipher, self.cfg.privilege
        )
    }
    /// Open the session and raise it to the configured privilege level, so that `fence test`
    /// proves the level a fence needs can be had (a status read alone does not need it).
    fn connect(&mut self) -> Result<(), PowerError> {
        self.open()?;
        self.ensure_level(self.cfg.privilege.code())
    }
    fn status(&mut self) -> Result<PowerState, PowerError> {
        let data = self.command(cmd::NETFN_CHASSIS, cmd::GET_CHASSIS_STATUS, &[], "Get Chassis Status")?;
        parse_chassis_status(&data)
    }
    fn power_on(&mut self) -> Result<(), PowerError> {
        self.chassis_control(ChassisControl::On)
    }
    fn power_off(&mut self) -> Result<(), PowerError> {
        self.chassis_control(ChassisControl::Off)
    }
    fn power_cycle(&mut self) -> Result<(), PowerError> {
        self.chassis_control(ChassisControl::Cycle)
    }
    fn login_timeout(&self) -> Duration {
        self.cfg.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chassis_status_bit0() {
        assert_eq!(parse_chassis_status(&[0x01, 0, 0]).unwrap(), PowerState::On);
        assert_eq!(parse_chassis_status(&[0x60, 0, 0]).unwrap(), PowerState::Off);
        assert!(parse_chassis_status(&[]).is_err());
    }

    #[test]
    fn completion_codes_map_to_kinds() {
        assert_eq!(completion_error("x", 0xD4).exit_code(), 3);
        assert!(matches!(completion_error("x", 0xD5), PowerError::NotSupported(_)));
        assert!(matches!(completion_error("x", 0xCC), PowerError::Protocol(_)));
    }

    #[test]
    fn unsupported_cipher_refused_before_sending() {
        let cfg = IpmiConfig {
            host: "127.0.0.1".into(),
            port: 1,
            username: "admin".into(),
            password: "secret".into(),
            cipher: Some(5),
            privilege: Privilege::Administrator,
            timeout: Duration::from_secs(1),
            retries: 0,
        };
        let err = IpmiDevice::new(cfg.clone()).err().unwrap();
        assert!(matches!(err, PowerError::Config(ref m) if m.contains("cipher suite 5")), "{err}");
        assert!(IpmiDevice::new(IpmiConfig { cipher: Some(17), ..cfg.clone() }).is_ok());
        assert!(IpmiDevice::new(IpmiConfig { cipher: None, ..cfg.clone() }).is_ok());
        assert!(!format!("{cfg:?}").contains("secret"));
    }

    #[test]
    fn privilege_names() {
        assert_eq!(Privilege::parse("OPERATOR").unwrap(), Privilege::Operator);
        assert_eq!(Privilege::parse("").unwrap(), Privilege::Administrator);
        assert!(Privilege::parse("root").is_err());
    }
}
