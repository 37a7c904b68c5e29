//! IPMI over LAN, RMCP+ ("lanplus"), natively, on top of the `ipmi-rs` crate.
//!
//! ipmi-rs 0.6 does the RMCP+ session set-up (Open Session, RAKP 1-4, AES-CBC-128 / HMAC-SHA1-96,
//! i.e. cipher suite 3) and message framing. What it lacks is filled in here:
//! - Set Session Privilege Level (netfn 0x06 cmd 0x3B) right after activation; without it the BMC
//!   keeps the session at User level and refuses Chassis Control with completion code 0xD4.
//! - Close Session (Get Session Info for our handle, then Close Session by handle) so that repeated
//!   runs do not exhaust the BMC's session table.
//! - Cipher suite choice: ipmi-rs always proposes suite 3, so any other suite is refused here with a
//!   clear message *before* anything is sent (suite 17's SHA-256 paths are `todo!()` in ipmi-rs).
//! - Retries (a fresh session per retry) and classification of failures into `PowerError` kinds.
//! - Panics: every call into ipmi-rs runs under `catch_unwind`; a panic becomes `PowerError::Protocol`.
//!
//! The pure part (request bytes, reply parsing, completion-code and error mapping) is separate from
//! the socket part and unit-tested.
use super::power::{PowerDevice, PowerError, PowerState};
use ipmi_rs::connection::{IpmiConnection, LogicalUnit, Message, Request, RequestTargetAddress};
use ipmi_rs::rmcp::{ActivationError, Rmcp, V2_0ActivationError};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

/// Cipher suites this driver can run. ipmi-rs implements only suite 3.
pub const SUPPORTED_CIPHERS: &[u8] = &[3];

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
    pub cipher: u8,
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
        if !SUPPORTED_CIPHERS.contains(&self.cipher) {
            return Err(PowerError::Config(format!(
                "cipher suite {} is not supported by the native IPMI driver (only suite 3: \
                 RAKP-HMAC-SHA1 / HMAC-SHA1-96 / AES-CBC-128). Set cipher=3 if the BMC allows it, \
                 or set twonode_driver=external to use fence_ipmilan for suite {}",
                self.cipher, self.cipher
            )));
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

fn io_error_kind(ctx: &str, e: &std::io::Error) -> PowerError {
    use std::io::ErrorKind::*;
    match e.kind() {
        WouldBlock | TimedOut => PowerError::Unreachable(format!("{ctx}: no reply ({e})")),
        ConnectionRefused => {
            PowerError::Unreachable(format!("{ctx}: connection refused (nothing listens on that UDP port)"))
        }
        _ => PowerError::Unreachable(format!("{ctx}: {e}")),
    }
}

/// Classify an ipmi-rs activation failure.
pub fn activation_error(target: &str, e: &ActivationError) -> PowerError {
    use ipmi_rs::rmcp::RmcpIpmiReceiveError as R;
    let recv = |what: &str, r: &R| match r {
        R::Io(io) => {
            if matches!(io.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) {
                PowerError::Timeout(format!("{target}: {what}: BMC stopped answering during session set-up"))
            } else {
                io_error_kind(&format!("{target}: {what}"), io)
            }
        }
        other => PowerError::Protocol(format!("{target}: {what}: {other:?}")),
    };
    match e {
        ActivationError::BindSocket(io) | ActivationError::PingSend(io) | ActivationError::PongReceive(io) => {
            io_error_kind(&format!("{target}: RMCP ping"), io)
        }
        ActivationError::PongRead | ActivationError::RmcpError(_) => {
            PowerError::Protocol(format!("{target}: RMCP ping answer not understood (is this an IPMI BMC?)"))
        }
        ActivationError::IpmiNotSupported | ActivationError::NoSupportedIpmiLANVersions => PowerError::Protocol(
            format!("{target}: the device does not offer IPMI 2.0 (RMCP+) on this port (enable IPMI over LAN)"),
        ),
        ActivationError::GetChannelAuthenticationCapabilities(err) => match err {
            ipmi_rs::IpmiError::Connection(ipmi_rs::rmcp::RmcpIpmiError::Receive(R::Io(io))) => {
                io_error_kind(&format!("{target}: Get Channel Authentication Capabilities"), io)
            }
            other => PowerError::Protocol(format!("{target}: Get Channel Authentication Capabilities: {other:?}")),
        },
        ActivationError::V1_5(inner) => PowerError::Protocol(format!("{target}: IPMI 1.5 session: {inner:?}")),
        ActivationError::V2_0(inner) => {
            use V2_0ActivationError as A;
            match inner {
                A::ServerAuthenticationFailed | A::RakpMessage4InvalidIntegrityCheckValue => PowerError::Auth(format!(
                    "{target}: RMCP+ authentication failed: wrong password (or Kg key) for this user"
                )),
                A::RakpMessage2Parse(p) => match p {
                    ipmi_rs::rmcp::RakpMessage2ParseError::ErrorStatusCode(code) => PowerError::Auth(format!(
                        "{target}: BMC refused the login ({code:?}): unknown user name, or privilege level not allowed for it"
                    )),
                    other => PowerError::Protocol(format!("{target}: RAKP message 2: {other:?}")),
                },
                A::RakpMessage4Parse(p) => PowerError::Auth(format!("{target}: BMC refused the login in RAKP 4: {p:?}")),
                A::OpenSessionResponseParse(p) => PowerError::Protocol(format!(
                    "{target}: BMC refused RMCP+ Open Session ({p:?}); it may not allow cipher suite 3"
                )),
                A::OpenSessionResponseReceive(r) => recv("Open Session", r),
                A::RakpMessage2Receive(r) => recv("RAKP 2", r),
                A::RakpMessage4Receive(r) => recv("RAKP 4", r),
                A::Io(io) => io_error_kind(target, io),
                other => PowerError::Protocol(format!("{target}: RMCP+ session set-up: {other:?}")),
            }
        }
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// Run `f`, turning a panic inside ipmi-rs into a protocol error (last line of defence).
fn guarded<T>(target: &str, f: impl FnOnce() -> Result<T, PowerError>) -> Result<T, PowerError> {
    let _quiet = QuietPanics::enter();
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let text = panic_text(p);
            // ipmi-rs unwraps socket send errors: a BMC gone mid-session shows up this way.
            if text.contains("ConnectionRefused") || text.contains("NetworkUnreachable") || text.contains("HostUnreachable") {
                return Err(PowerError::Unreachable(format!("{target}: the BMC stopped answering ({text})")));
            }
            Err(PowerError::Protocol(format!(
                "{target}: the IPMI library failed on an unexpected reply ({text}); nothing more was sent"
            )))
        }
    }
}

thread_local! {
    static QUIET: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// While alive, panics on this thread are not printed by the panic hook (they are caught and
/// reported as errors instead). The hook is installed once and delegates otherwise.
struct QuietPanics;

impl QuietPanics {
    fn enter() -> Self {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            let prev = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if QUIET.with(|q| q.get()) == 0 {
                    prev(info);
                } else {
                    tracing::debug!("caught panic in IPMI library: {info}");
                }
            }));
        });
        QUIET.with(|q| q.set(q.get() + 1));
        QuietPanics
    }
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        QUIET.with(|q| q.set(q.get().saturating_sub(1)));
    }
}

/// A BMC reached over RMCP+. The session is opened lazily, kept for further commands (status
/// polling) and closed on drop.
pub struct IpmiDevice {
    cfg: IpmiConfig,
    session: Option<Rmcp>,
}

impl IpmiDevice {
    pub fn new(cfg: IpmiConfig) -> Result<Self, PowerError> {
        cfg.check()?;
        Ok(IpmiDevice { cfg, session: None })
    }

    fn target(&self) -> String {
        format!("IPMI {}:{}", self.cfg.host, self.cfg.port)
    }

    fn open(&mut self) -> Result<(), PowerError> {
        if self.session.is_some() {
            return Ok(());
        }
        let target = self.target();
        let addr = format_addr(&self.cfg.host, self.cfg.port);
        let cfg = self.cfg.clone();
        let rmcp = guarded(&target, || {
            let mut rmcp = Rmcp::new(addr.as_str(), cfg.timeout)
                .map_err(|e| PowerError::Unreachable(format!("{target}: cannot resolve address: {e}")))?;
            rmcp.activate(true, Some(&cfg.username), Some(cfg.password.as_bytes()))
                .map_err(|e| activation_error(&target, &e))?;
            Ok(rmcp)
        })?;
        self.session = Some(rmcp);
        // The gap in ipmi-rs: raise the session to the requested privilege level.
        let level = self.cfg.privilege.code();
        match self.raw(cmd::NETFN_APP, cmd::SET_SESSION_PRIVILEGE, &[level], "Set Session Privilege Level") {
            Ok(_) => Ok(()),
            Err(e) => {
                self.session = None;
                Err(e)
            }
        }
    }

    /// Send one request on the open session; returns the reply data after the completion code.
    fn raw(&mut self, netfn: u8, command: u8, data: &[u8], what: &str) -> Result<Vec<u8>, PowerError> {
        let target = self.target();
        let Some(rmcp) = self.session.as_mut() else {
            return Err(PowerError::Protocol(format!("{target}: no session")));
        };
        let result = guarded(&target, || {
            let mut req = Request::new(
                Message::new_raw(netfn, command, data.to_vec()),
                RequestTargetAddress::Bmc(LogicalUnit::Zero),
            );
            let resp = rmcp.send_recv(&mut req).map_err(|e| command_error(&target, what, &e))?;
            if resp.cmd() != command {
                return Err(PowerError::Protocol(format!(
                    "{target}: {what}: reply is for command 0x{:02X}, expected 0x{command:02X}",
                    resp.cmd()
                )));
            }
            if resp.cc() != 0 {
                return Err(completion_error(&format!("{target}: {what}"), resp.cc()));
            }
            Ok(resp.data().to_vec())
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
            let r = self.open().and_then(|_| self.raw(netfn, command, data, what));
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

    /// Close the session (Close Session with our session ID). Dropping the device does this too,
    /// ignoring errors.
    ///
    /// ipmi-rs 0.6 keeps the managed-system session ID private; its `Debug` output is the only
    /// way to read it (`session_id: N`). If that ever changes, fall back to Close Session by
    /// handle (Get Session Info, index 0), which some BMCs accept.
    pub fn close(&mut self) -> Result<(), PowerError> {
        let Some(rmcp) = self.session.as_ref() else {
            return Ok(());
        };
        let sid = session_id_from_debug(&format!("{rmcp:?}"));
        let r = match sid {
            Some(sid) => self
                .raw(cmd::NETFN_APP, cmd::CLOSE_SESSION, &sid.to_le_bytes(), "Close Session")
                .map(|_| ()),
            None => self
                .raw(cmd::NETFN_APP, cmd::GET_SESSION_INFO, &[0x00], "Get Session Info")
                .and_then(|info| match info.first() {
                    Some(&handle) => self
                        .raw(cmd::NETFN_APP, cmd::CLOSE_SESSION, &[0, 0, 0, 0, handle], "Close Session")
                        .map(|_| ()),
                    None => Err(PowerError::Protocol("empty Get Session Info reply".into())),
                }),
        };
        self.session = None;
        r
    }
}

/// The `session_id: N` field of ipmi-rs's RMCP+ state, as printed by `Debug`.
fn session_id_from_debug(dbg: &str) -> Option<u32> {
    let at = dbg.find("session_id: ")? + "session_id: ".len();
    let digits: String = dbg[at..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

fn command_error(target: &str, what: &str, e: &ipmi_rs::rmcp::RmcpIpmiError) -> PowerError {
    use ipmi_rs::rmcp::{RmcpIpmiError as E, RmcpIpmiReceiveError as R};
    match e {
        E::Receive(R::Io(io)) if matches!(io.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
            PowerError::Timeout(format!("{target}: {what}: no reply"))
        }
        E::Receive(R::Io(io)) => io_error_kind(&format!("{target}: {what}"), io),
        other => PowerError::Protocol(format!("{target}: {what}: {other:?}")),
    }
}

fn format_addr(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl Drop for IpmiDevice {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl PowerDevice for IpmiDevice {
    fn describe(&self) -> String {
        format!(
            "IPMI lanplus {}:{} user {} cipher {} privlvl {:?}",
            self.cfg.host, self.cfg.port, self.cfg.username, self.cfg.cipher, self.cfg.privilege
        )
    }
    fn connect(&mut self) -> Result<(), PowerError> {
        self.open()
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
            cipher: 17,
            privilege: Privilege::Administrator,
            timeout: Duration::from_secs(1),
            retries: 0,
        };
        let err = IpmiDevice::new(cfg.clone()).err().unwrap();
        assert!(matches!(err, PowerError::Config(ref m) if m.contains("cipher suite 17")), "{err}");
        assert!(!format!("{cfg:?}").contains("secret"));
    }

    #[test]
    fn privilege_names() {
        assert_eq!(Privilege::parse("OPERATOR").unwrap(), Privilege::Operator);
        assert_eq!(Privilege::parse("").unwrap(), Privilege::Administrator);
        assert!(Privilege::parse("root").is_err());
    }

    #[test]
    fn panics_become_errors() {
        let r: Result<(), PowerError> = guarded("t", || panic!("not yet implemented"));
        assert!(matches!(r, Err(PowerError::Protocol(ref m)) if m.contains("not yet implemented")));
    }
}
