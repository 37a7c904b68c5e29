//! HP iLO over RIBCL (the XML dialect fence_ilo speaks), natively.
//!
//! Pure parts first (a tolerant streaming tag scanner shared with the lab simulator, the LOGIN
//! credential encoding, reply parsing, the per-firmware power command choice), then the driver
//! `RibclDevice` (one TLS connection per request, raw or HTTP transport detected the way
//! python-hpilo does it).
//!
//! Power commands follow fence_ilo (fence-agents 4.12) exactly:
//! - MANAGEMENT_PROCESSOR "iLO2": firmware > 1.29 → `<HOLD_PWR_BTN TOGGLE="yes"/>`, else
//!   `<HOLD_PWR_BTN/>`, for on AND off (both toggle the power, so twonode reads the status first
//!   and sends nothing when the machine is already in the wanted state);
//! - else RIBCL < 2.21 → `<SET_HOST_POWER HOST_POWER="on|off"/>`;
//! - else `<HOLD_PWR_BTN/>` for off and `<PRESS_PWR_BTN/>` for on (a press on a running machine
//!   would be an ACPI shutdown request, so on is only sent when the machine is off).
//!
//! Passwords: iLO firmware takes the LOGIN attribute values verbatim (it does not decode XML
//! escapes; python-hpilo and HP advisory c03221572 report `&amp;` failing where `&` works).
//! twonode therefore sends credentials verbatim by default, quoting with `'` when the value
//! holds `"`. What verbatim cannot carry safely (`<`, `>`, both kinds of quote, control
//! characters) is refused before anything is sent, unless `ribcl_escape=standard` says the
//! firmware understands `<?ilo entity-processing="standard"?>` (newer iLO 4 firmware): then
//! every value is escaped the standard XML way and that instruction is sent first.
use super::power::{PowerDevice, PowerError, PowerState};
use super::config::{flag, WebBmc, WebKind};
use super::options;
use super::spec::Timing;
use super::tls;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Tolerant streaming scanner for RIBCL (requests and replies).

/// One lexical item of a RIBCL stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// `<?target attrs?>` (the XML declaration or `<?ilo ...?>`).
    Pi { target: String, attrs: Vec<(String, String)> },
    /// `<NAME attrs>` or `<NAME attrs/>` (then `empty`). Attribute values are raw (not unescaped).
    Start { name: String, attrs: Vec<(String, String)>, empty: bool },
    /// `</NAME>`
    End { name: String },
    /// Text between tags (raw).
    Text(String),
    /// Comments, CDATA, DOCTYPE: ignored.
    Other,
}

impl Item {
    /// The raw value of attribute `key` (case-insensitive) of a Start or Pi item.
    pub fn attr(&self, key: &str) -> Option<&str> {
        let attrs = match self {
            Item::Start { attrs, .. } | Item::Pi { attrs, .. } => attrs,
            _ => return None,
        };
        attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }
}

/// Scan the next complete item at the start of `buf`. Returns the item and how many bytes it
/// used, or None when `buf` does not yet hold a complete item (streaming: read more).
/// Quotes are honoured inside tags, so `>` in a quoted value does not end the tag.
pub fn next_item(buf: &[u8]) -> Option<(Item, usize)> {
    if buf.is_empty() {
        return None;
    }
    if buf[0] != b'<' {
        let end = buf.iter().position(|&b| b == b'<')?;
        return Some((Item::Text(String::from_utf8_lossy(&buf[..end]).into_owned()), end));
    }
    if buf.starts_with(b"<!--") {
        let end = find(buf, b"-->")?;
        return Some((Item::Other, end + 3));
    }
    if buf.starts_with(b"<![CDATA[") {
        let end = find(buf, b"]]>")?;
        return Some((Item::Other, end + 3));
    }
    if buf.starts_with(b"<?") {
        let end = find(buf, b"?>")?;
        let inner = String::from_utf8_lossy(&buf[2..end]).into_owned();
        let (target, rest) = split_name(&inner);
        return Some((Item::Pi { target, attrs: parse_attrs(rest) }, end + 2));
    }
    if buf.len() < 2 {
        return None;
    }
    // Find the closing '>' outside quotes.
    let mut quote: Option<u8> = None;
    let mut end = None;
    for (i, &b) in buf.iter().enumerate().skip(1) {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'>' => {
                end = Some(i);
                break;
            }
            None => {}
        }
    }
    let end = end?;
    let inner = String::from_utf8_lossy(&buf[1..end]).into_owned();
    if buf[1] == b'!' {
        return Some((Item::Other, end + 1));
    }
    if let Some(name) = inner.strip_prefix('/') {
        return Some((Item::End { name: name.trim().to_string() }, end + 1));
    }
    let trimmed = inner.trim_end();
    let (body, empty) = match trimmed.strip_suffix('/') {
        Some(b) => (b, true),
        None => (trimmed, false),
    };
    let (name, rest) = split_name(body);
    Some((Item::Start { name, attrs: parse_attrs(rest), empty }, end + 1))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn split_name(s: &str) -> (String, &str) {
    let s = s.trim_start();
    let end = s.find(|c: char| c.is_whitespace() || c == '/' || c == '=').unwrap_or(s.len());
    (s[..end].to_string(), &s[end..])
}

/// Attributes `K = "v"`, `K='v'` or (iLO output quirk) `K = v`; values are returned raw.
pub fn parse_attrs(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && (b[*i] as char).is_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if i >= b.len() {
            break;
        }
        let start = i;
        while i < b.len() && !(b[i] as char).is_whitespace() && b[i] != b'=' {
            i += 1;
        }
        let key = s[start..i].to_string();
        skip_ws(&mut i);
        if i >= b.len() || b[i] != b'=' {
            if !key.is_empty() {
                out.push((key, String::new()));
            }
            if i < b.len() && b[i] != b'=' && i == start {
                i += 1; // never loop forever on an odd byte
            }
            continue;
        }
        i += 1; // '='
        skip_ws(&mut i);
        if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
            let q = b[i];
            let vstart = i + 1;
            let vend = s[vstart..].bytes().position(|c| c == q).map(|p| vstart + p).unwrap_or(b.len());
            out.push((key, s[vstart..vend].to_string()));
            i = (vend + 1).min(b.len());
        } else {
            let vstart = i;
            while i < b.len() && !(b[i] as char).is_whitespace() {
                i += 1;
            }
            out.push((key, s[vstart..i].to_string()));
        }
    }
    out
}

/// Decode the standard XML entities (`&amp; &lt; &gt; &quot; &apos; &#N; &#xN;`).
pub fn xml_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        rest = &rest[p..];
        let Some(semi) = rest.find(';') else { break };
        let ent = &rest[1..semi];
        let decoded = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ if ent.starts_with("#x") || ent.starts_with("#X") => {
                u32::from_str_radix(&ent[2..], 16).ok().and_then(char::from_u32)
            }
            _ if ent.starts_with('#') => ent[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Escape for a double-quoted XML attribute.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Credentials.

/// How LOGIN attribute values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscapeMode {
    /// Verbatim between quotes: what every iLO firmware understands (default).
    Verbatim,
    /// Standard XML escaping plus `<?ilo entity-processing="standard"?>` (newer firmware only).
    Standard,
}

/// The PI that switches newer iLO firmware to standard entity processing.
pub const ENTITY_PI: &str = "<?ilo entity-processing=\"standard\"?>";

/// Write `value` as a quoted LOGIN attribute value (quotes included), or refuse it with a
/// message saying why and what to do. `what` is "password" or "login" (never the value).
pub fn login_attr(value: &str, mode: EscapeMode, what: &str) -> Result<String, PowerError> {
    if value.chars().any(|c| c.is_control()) {
        return Err(PowerError::Config(format!(
            "the iLO {what} contains a control character (newline, tab...), which RIBCL cannot carry"
        )));
    }
    match mode {
        EscapeMode::Standard => Ok(format!("\"{}\"", xml_escape(value))),
        EscapeMode::Verbatim => {
            let has_dq = value.contains('"');
            let has_sq = value.contains('\'');
            let bad = if value.contains('<') || value.contains('>') {
                Some("`<` or `>`")
            } else if has_dq && has_sq {
                Some("both `\"` and `'`")
            } else {
                None
            };
            if let Some(bad) = bad {
                return Err(PowerError::Config(format!(
                    "the iLO {what} contains {bad}, which RIBCL cannot send safely: iLO firmware \
                     reads LOGIN values verbatim and does not decode XML escapes. Nothing was sent. \
                     If this iLO's firmware supports <?ilo entity-processing=\"standard\"?> (newer \
                     iLO 4), set ribcl_escape=standard; otherwise change the iLO {what} to avoid \
                     < > and mixing ' with \" (& and a single kind of quote are fine)"
                )));
            }
            if has_dq {
                Ok(format!("'{value}'"))
            } else {
                Ok(format!("\"{value}\""))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Replies.

/// What GET_FW_VERSION and the RIBCL header told us about the device.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FwInfo {
    /// RIBCL version the device speaks (from `<RIBCL VERSION="x">` in its replies), as text.
    pub ribcl_version: String,
    /// FIRMWARE_VERSION, as text (e.g. "1.29", "2.55"); None for RIBCL < 2 (not asked).
    pub firmware_version: Option<String>,
    /// MANAGEMENT_PROCESSOR ("iLO", "iLO2", "iLO3", "iLO4"...).
    pub processor: Option<String>,
    /// Whether the device speaks RIBCL over HTTP (`POST /ribcl`) rather than a raw stream.
    pub http: bool,
}

impl FwInfo {
    /// The version as fence_ilo sees it: Python `float()` of the text (0 when unparsable).
    pub fn ribcl_float(&self) -> f64 {
        self.ribcl_version.trim().parse().unwrap_or(0.0)
    }
    pub fn firmware_float(&self) -> f64 {
        self.firmware_version.as_deref().and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
    }
}

/// A non-zero RESPONSE status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RibclStatus {
    pub code: u32,
    pub message: String,
}

/// Everything of interest in a device reply (one or more `<?xml?><RIBCL>` documents).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    pub ribcl_version: Option<String>,
    pub errors: Vec<RibclStatus>,
    pub host_power: Option<String>,
    pub firmware_version: Option<String>,
    pub processor: Option<String>,
    pub responses: usize,
}

/// Parse a whole RIBCL reply text.
pub fn parse_reply(text: &[u8]) -> Reply {
    let mut r = Reply::default();
    let mut pos = 0;
    while pos < text.len() {
        let Some((item, used)) = next_item(&text[pos..]) else { break };
        pos += used;
        if let Item::Start { name, .. } = &item {
            match name.to_ascii_uppercase().as_str() {
                "RIBCL" => {
                    if let Some(v) = item.attr("VERSION") {
                        r.ribcl_version = Some(v.trim().to_string());
                    }
                }
                "RESPONSE" => {
                    r.responses += 1;
                    let status = item.attr("STATUS").unwrap_or("0x0000");
                    let code = u32::from_str_radix(status.trim().trim_start_matches("0x").trim_start_matches("0X"), 16)
                        .unwrap_or(u32::MAX);
                    if code != 0 {
                        let message = item.attr("MESSAGE").or_else(|| item.attr("MSG")).unwrap_or("");
                        r.errors.push(RibclStatus { code, message: xml_unescape(message) });
                    }
                }
                "GET_HOST_POWER" => r.host_power = item.attr("HOST_POWER").map(|s| s.trim().to_string()),
                "GET_FW_VERSION" => {
                    r.firmware_version = item.attr("FIRMWARE_VERSION").map(|s| s.trim().to_string());
                    r.processor = item.attr("MANAGEMENT_PROCESSOR").map(|s| s.trim().to_string());
                }
                _ => {}
            }
        }
    }
    r
}

/// Map a RIBCL error status to the error kind and a message naming the device and the fix.
pub fn status_error(device: &str, user: &str, st: &RibclStatus) -> PowerError {
    let msg = st.message.trim().trim_end_matches('.');
    let lower = msg.to_ascii_lowercase();
    match st.code {
        0x005F => PowerError::Auth(format!(
            "{device}: login failed for user {user:?} (RIBCL 0x005F \"{msg}\"): check login and passwd"
        )),
        0x000A => PowerError::Auth(format!(
            "{device}: user {user:?} is not known to the iLO (RIBCL 0x000A \"{msg}\"): check login"
        )),
        0x0023 => PowerError::Auth(format!(
            "{device}: user {user:?} lacks the privilege for this command (RIBCL 0x0023 \"{msg}\"): \
             give it the Virtual Power and Reset (RESET_SERVER_PRIV) right"
        )),
        0x003C => PowerError::NotSupported(format!(
            "{device}: the iLO does not support this command (RIBCL 0x003C \"{msg}\"); \
             force another RIBCL dialect with ribcl=VERSION or use the external fence_ilo agent"
        )),
        _ if lower.contains("login failed") || lower.contains("credentials rejected") => {
            PowerError::Auth(format!("{device}: login failed for user {user:?} (RIBCL 0x{:04X} \"{msg}\")", st.code))
        }
        _ if lower.contains("user login name was not found") => {
            PowerError::Auth(format!("{device}: user {user:?} is not known to the iLO (\"{msg}\")"))
        }
        _ if lower.contains("privilege") => PowerError::Auth(format!(
            "{device}: user {user:?} lacks the privilege (RIBCL 0x{:04X} \"{msg}\")",
            st.code
        )),
        _ => PowerError::Protocol(format!("{device}: the iLO reported error 0x{:04X}: {msg}", st.code)),
    }
}

// ---------------------------------------------------------------------------------------------
// Power commands per firmware (fence_ilo's choice).

/// The power command to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerCmd {
    /// `<SET_HOST_POWER HOST_POWER="on|off"/>` (RIBCL < 2.21), the action word as fence_ilo sends it.
    SetHostPower(PowerState),
    /// `<HOLD_PWR_BTN TOGGLE="yes"/>` (iLO2 firmware > 1.29): toggles.
    HoldToggle,
    /// `<HOLD_PWR_BTN/>`: on iLO2 <= 1.29 toggles; elsewhere powers off.
    Hold,
    /// `<PRESS_PWR_BTN/>`: momentary press (powers on a machine that is off).
    Press,
}

impl PowerCmd {
    pub fn xml(&self) -> String {
        match self {
            PowerCmd::SetHostPower(PowerState::On) => "<SET_HOST_POWER HOST_POWER=\"on\"/>".into(),
            PowerCmd::SetHostPower(PowerState::Off) => "<SET_HOST_POWER HOST_POWER=\"off\"/>".into(),
            PowerCmd::HoldToggle => "<HOLD_PWR_BTN TOGGLE=\"yes\"/>".into(),
            PowerCmd::Hold => "<HOLD_PWR_BTN/>".into(),
            PowerCmd::Press => "<PRESS_PWR_BTN/>".into(),
        }
    }
    /// True when sending it in the wrong state would do the opposite of what was asked, so the
    /// state must be read first.
    pub fn needs_state_check(&self, fw: &FwInfo) -> bool {
        match self {
            PowerCmd::HoldToggle | PowerCmd::Press => true,
            // On iLO2 (fence_ilo sends it there for on AND off) it toggles.
            PowerCmd::Hold => fw.processor.as_deref() == Some("iLO2"),
            PowerCmd::SetHostPower(_) => false,
        }
    }
}

/// fence_ilo's choice of command for `want`, given what the device reported.
pub fn power_command(fw: &FwInfo, want: PowerState) -> PowerCmd {
    if fw.processor.as_deref() == Some("iLO2") {
        if fw.firmware_float() > 1.29 {
            PowerCmd::HoldToggle
        } else {
            PowerCmd::Hold
        }
    } else if fw.ribcl_float() < 2.21 {
        PowerCmd::SetHostPower(want)
    } else if want == PowerState::Off {
        PowerCmd::Hold
    } else {
        PowerCmd::Press
    }
}

// ---------------------------------------------------------------------------------------------
// The driver.

/// A raw RIBCL reply is complete when the iLO closes the connection (it does after our
/// `</RIBCL>` or a failed login; python-hpilo relies on the same): never cut it short, a slow
/// command's RESPONSE may still come.
fn raw_completion(_: &[u8]) -> tls::Completion {
    tls::Completion::No
}

const FW_CMD: &str = "<RIB_INFO MODE=\"read\"><GET_FW_VERSION/></RIB_INFO>";

/// Transport selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Auto,
    Raw,
    Http,
}

/// An HP iLO reached over RIBCL. Build it with `from_params` (fence-agents key=value names).
pub struct RibclDevice {
    host: String,
    port: u16,
    login: String,
    password: String,
    escape: EscapeMode,
    transport: Transport,
    forced_ribcl: Option<String>,
    tls: Arc<rustls::ClientConfig>,
    tls_desc: &'static str,
    login_timeout: Duration,
    power_timeout: Duration,
    fw: Option<FwInfo>,
}

impl std::fmt::Debug for RibclDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RibclDevice")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("login", &self.login)
            .field("password", &"********")
            .field("fw", &self.fw)
            .finish()
    }
}

impl RibclDevice {
    /// Build from the merged key=value parameters fence-agents use: ipaddr/ip, ipport (443),
    /// login/username, passwd/password or passwd_script/password_script, ssl_insecure,
    /// ssl_ca (PEM file, twonode extension), ribcl (force RIBCL version), login_timeout (10),
    /// power_timeout (20), ribcl_escape=verbatim|standard and ribcl_transport=auto|raw|http
    /// (twonode extensions). Other keys (action, nodename, delay, power_wait...) are ignored.
    pub fn from_params(p: &BTreeMap<String, String>) -> Result<Self, PowerError> {
        Self::from_params_timed(p, None)
    }

    /// As [`from_params`](Self::from_params), the engine's timing filling the timeouts the
    /// parameters do not set (the engine's opener: built once, nothing written back).
    pub fn from_params_timed(p: &BTreeMap<String, String>, timing: Option<&Timing>) -> Result<Self, PowerError> {
        let web = WebBmc::from_params(p, WebKind::Ilo, timing)?;
        let param = |k: &str| options::lookup(p, k);
        let escape = match param("ribcl_escape").map(|s| s.trim().to_ascii_lowercase()) {
            None => EscapeMode::Verbatim,
            Some(s) if s == "verbatim" || s.is_empty() => EscapeMode::Verbatim,
            Some(s) if s == "standard" => EscapeMode::Standard,
            Some(s) => return Err(PowerError::Config(format!("ribcl_escape={s:?}: expected verbatim or standard"))),
        };
        let transport = match param("ribcl_transport").map(|s| s.trim().to_ascii_lowercase()) {
            None => Transport::Auto,
            Some(s) if s == "auto" || s.is_empty() => Transport::Auto,
            Some(s) if s == "raw" => Transport::Raw,
            Some(s) if s == "http" => Transport::Http,
            Some(s) => return Err(PowerError::Config(format!("ribcl_transport={s:?}: expected auto, raw or http"))),
        };
        let forced_ribcl = match param("ribcl").or_else(|| param("ribcl_version")) {
            None => None,
            Some(v) => {
                v.trim()
                    .parse::<f64>()
                    .map_err(|_| PowerError::Config(format!("ribcl={v:?}: expected a RIBCL version like 2.22")))?;
                Some(v.trim().to_string())
            }
        };
        if flag(p, "tls1.0")? || flag(p, "tls1_0")? || flag(p, "notls")? {
            tracing::warn!("iLO {}: tls1.0/notls asked for; twonode speaks TLS 1.2 and newer only", web.host);
        }
        // Validate the credentials' encoding now, so a bad password is refused before any I/O.
        login_attr(&web.login, escape, "login")?;
        login_attr(&web.password, escape, "password")?;
        Ok(RibclDevice {
            host: web.host,
            port: web.port,
            login: web.login,
            password: web.password,
            escape,
            transport,
            forced_ribcl,
            tls: web.tls,
            tls_desc: web.tls_desc,
            login_timeout: web.login_timeout,
            power_timeout: web.power_timeout,
            fw: None,
        })
    }

    /// What the device reported (after the first successful operation).
    pub fn firmware(&self) -> Option<&FwInfo> {
        self.fw.as_ref()
    }

    fn name(&self) -> String {
        format!("iLO {}:{}", self.host, self.port)
    }

    fn open_tls(&self, io_timeout: Duration) -> Result<tls::TlsStream, PowerError> {
        tls::connect(&self.host, self.port, &self.tls, self.login_timeout, io_timeout)
    }

    /// The full RIBCL document (without the XML declaration) for `inner` commands.
    fn document(&self, ribcl_version: f64, inner: &str) -> Result<String, PowerError> {
        let user = login_attr(&self.login, self.escape, "login")?;
        let pass = login_attr(&self.password, self.escape, "password")?;
        let pi = if self.escape == EscapeMode::Standard { format!("{ENTITY_PI}\r\n") } else { String::new() };
        let version = if ribcl_version >= 2.0 { "2.0" } else { "1.2" };
        Ok(format!(
            "{pi}<RIBCL VERSION=\"{version}\">\r\n<LOGIN USER_LOGIN={user} PASSWORD={pass}>\r\n{inner}\r\n</LOGIN>\r\n</RIBCL>\r\n"
        ))
    }

    /// HTTP probe (python-hpilo's protocol detection): 200 → HTTP transport; 404 or a raw
    /// RIBCL answer → raw stream. Returns (http, ribcl version if the reply told it).
    fn probe_http(&self) -> Result<(bool, Option<String>), PowerError> {
        let mut s = self.open_tls(self.login_timeout)?;
        let body = "<?xml version=\"1.0\"?>\r\n<RIBCL VERSION=\"2.0\"></RIBCL>\r\n";
        let req = format!(
            "POST /ribcl HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: Close\r\n\r\n{body}",
            self.host,
            body.len()
        );
        let what = self.name();
        s.write_all(req.as_bytes()).map_err(|e| tls::io_error(&what, &e))?;
        let _ = s.flush();
        let mut raw = Vec::new();
        let probe_done = |b: &[u8]| match b.first() {
            Some(b'H') => tls::http_completion(b),
            Some(_) => raw_completion(b),
            None => tls::Completion::No,
        };
        tls::read_reply(&mut s, &mut raw, Instant::now() + self.login_timeout, &what, &probe_done)?;
        match tls::parse_http_response(&raw) {
            Ok(Some(resp)) if resp.status == 200 => Ok((true, parse_reply(&resp.body).ribcl_version)),
            Ok(Some(_)) => Ok((false, None)),
            Ok(None) if raw.starts_with(b"<?xml") || raw.is_empty() => Ok((false, None)),
            Ok(None) => Err(PowerError::Protocol(format!(
                "{what}: answered neither HTTP nor RIBCL: is this an iLO? ({} bytes)",
                raw.len()
            ))),
            Err(e) => Err(PowerError::Protocol(format!("{what}: {e}"))),
        }
    }

    /// One request: returns the parsed reply, or the mapped RIBCL error.
    fn exchange(&mut self, inner: &str, io_timeout: Duration) -> Result<Reply, PowerError> {
        let what = self.name();
        let http = match (self.transport, &self.fw) {
            (Transport::Raw, _) => false,
            (Transport::Http, _) => true,
            (Transport::Auto, Some(fw)) => fw.http,
            (Transport::Auto, None) => {
                let (http, _) = self.probe_http()?;
                self.transport = if http { Transport::Http } else { Transport::Raw };
                http
            }
        };
        let mut s = self.open_tls(io_timeout)?;
        let deadline = Instant::now() + io_timeout;
        let mut raw = Vec::new();
        let header_version: Option<String>;
        if http {
            let ribcl = self.fw.as_ref().map(|f| f.ribcl_float()).unwrap_or(2.0);
            let body = format!("<?xml version=\"1.0\"?>\r\n{}", self.document(ribcl, inner)?);
            let req = format!(
                "POST /ribcl HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: Close\r\n\r\n{body}",
                self.host,
                body.len()
            );
            s.write_all(req.as_bytes()).map_err(|e| tls::io_error(&what, &e))?;
            let _ = s.flush();
            tls::read_reply(&mut s, &mut raw, deadline, &what, &tls::http_completion)?;
            let resp = tls::parse_http_response(&raw)
                .map_err(|e| PowerError::Protocol(format!("{what}: {e}")))?
                .ok_or_else(|| PowerError::Protocol(format!("{what}: expected an HTTP reply to POST /ribcl")))?;
            if resp.status != 200 {
                return Err(PowerError::Protocol(format!(
                    "{what}: POST /ribcl answered HTTP {} {}",
                    resp.status, resp.reason
                )));
            }
            raw = resp.body;
            header_version = None;
        } else {
            // fence_ilo's opening: the XML declaration alone; the iLO answers with a RIBCL
            // document that carries its version. The request follows in a separate write.
            s.write_all(b"<?xml version=\"1.0\"?>\r\n").map_err(|e| tls::io_error(&what, &e))?;
            let _ = s.flush();
            let mut chunk = [0u8; 4096];
            loop {
                if find(&raw, b"</RIBCL>").is_some() || find(&raw, b"<END_RIBCL/>").is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(PowerError::Timeout(format!("{what}: no RIBCL greeting in time")));
                }
                match s.read(&mut chunk) {
                    Ok(0) => {
                        return Err(PowerError::Protocol(format!(
                            "{what}: the iLO closed the connection after the XML declaration \
                             (not a raw RIBCL endpoint? try ribcl_transport=http)"
                        )))
                    }
                    Ok(n) => raw.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(tls::io_error(&what, &e)),
                }
            }
            header_version = parse_reply(&raw).ribcl_version;
            let ribcl = self
                .forced_ribcl
                .as_deref()
                .or(self.fw.as_ref().map(|f| f.ribcl_version.as_str()))
                .or(header_version.as_deref())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(2.0);
            // RIBCL 1.x devices do not know GET_FW_VERSION: fence_ilo skips it there, so do we.
            let inner = if ribcl < 2.0 { inner.replace(FW_CMD, "") } else { inner.to_string() };
            let doc = self.document(ribcl, &inner)?;
            s.write_all(doc.as_bytes()).map_err(|e| tls::io_error(&what, &e))?;
            let _ = s.flush();
            raw.clear();
            tls::read_reply(&mut s, &mut raw, deadline, &what, &raw_completion)?;
        }
        let mut reply = parse_reply(&raw);
        if reply.ribcl_version.is_none() {
            reply.ribcl_version = header_version;
        }
        if let Some(err) = reply.errors.first() {
            let mut e = status_error(&what, &self.login, err);
            if self.escape == EscapeMode::Standard {
                if let PowerError::Auth(m) = &mut e {
                    m.push_str(
                        " (credentials were sent XML-escaped with entity-processing=\"standard\"; \
                         firmware without that support compares the escaped text and fails)",
                    );
                }
            }
            return Err(e);
        }
        if reply.responses == 0 {
            return Err(PowerError::Protocol(format!(
                "{what}: no RIBCL RESPONSE in the reply ({} bytes): the connection was cut or this is not an iLO",
                raw.len()
            )));
        }
        Ok(reply)
    }

    /// Log in and read the firmware version (once); decides transport and power dialect.
    pub fn discover(&mut self) -> Result<&FwInfo, PowerError> {
        if self.fw.is_none() {
            self.discover_with("")?;
        }
        self.fw.as_ref().ok_or_else(|| PowerError::Protocol("discovery failed".into()))
    }

    /// Discovery, with `extra` commands in the same login (saves a connection); returns the reply.
    fn discover_with(&mut self, extra: &str) -> Result<Reply, PowerError> {
        {
            let forced = self.forced_ribcl.clone();
            // RIBCL 1.x devices do not know GET_FW_VERSION (fence_ilo skips it there too).
            // (the raw exchange drops it when the greeting says RIBCL 1.x).
            let skip_fw = forced.as_deref().and_then(|v| v.parse::<f64>().ok()).is_some_and(|v| v < 2.0);
            let fw_cmd = if skip_fw { "" } else { FW_CMD };
            let reply = self.exchange(&format!("{fw_cmd}{extra}"), self.login_timeout)?;
            let http = self.transport == Transport::Http;
            let ribcl_version = forced.or(reply.ribcl_version.clone()).unwrap_or_else(|| "2.0".into());
            if reply.firmware_version.is_none() && ribcl_version.parse::<f64>().unwrap_or(2.0) >= 2.0 {
                return Err(PowerError::Protocol(format!(
                    "{}: GET_FW_VERSION reply without FIRMWARE_VERSION: cannot choose the power commands \
                     (force the dialect with ribcl=VERSION)",
                    self.name()
                )));
            }
            if let Some(v) = &reply.firmware_version {
                if v.parse::<f64>().is_err() {
                    return Err(PowerError::Protocol(format!(
                        "{}: unreadable FIRMWARE_VERSION {v:?}: cannot choose the power commands",
                        self.name()
                    )));
                }
            }
            self.fw = Some(FwInfo {
                ribcl_version,
                firmware_version: reply.firmware_version.clone(),
                processor: reply.processor.clone(),
                http,
            });
            tracing::info!(device = %self.name(), fw = ?self.fw, "iLO discovered");
            Ok(reply)
        }
    }

    fn set_power(&mut self, want: PowerState) -> Result<(), PowerError> {
        let fw = self.discover()?.clone();
        let cmd = power_command(&fw, want);
        if cmd.needs_state_check(&fw) && self.status()? == want {
            tracing::info!(device = %self.name(), ?want, "already in the wanted state; nothing sent");
            return Ok(());
        }
        let inner = format!("<SERVER_INFO MODE=\"write\">{}</SERVER_INFO>", cmd.xml());
        self.exchange(&inner, self.power_timeout.max(self.login_timeout)).map(|_| ())
    }
}

impl PowerDevice for RibclDevice {
    fn describe(&self) -> String {
        let fw = match &self.fw {
            Some(f) => format!(
                ", {} fw {} RIBCL {}{}",
                f.processor.as_deref().unwrap_or("iLO"),
                f.firmware_version.as_deref().unwrap_or("?"),
                f.ribcl_version,
                if f.http { " over HTTP" } else { "" }
            ),
            None => String::new(),
        };
        format!("iLO (RIBCL) {}:{} as {}{fw}; {}", self.host, self.port, self.login, self.tls_desc)
    }

    /// Log in and read the firmware version (the fence test times this apart).
    fn connect(&mut self) -> Result<(), PowerError> {
        self.discover().map(|_| ())
    }

    fn status(&mut self) -> Result<PowerState, PowerError> {
        const STATUS: &str = "<SERVER_INFO MODE=\"read\"><GET_HOST_POWER_STATUS/></SERVER_INFO>";
        let reply = if self.fw.is_none() {
            self.discover_with(STATUS)?
        } else {
            self.exchange(STATUS, self.login_timeout)?
        };
        match reply.host_power.as_deref().map(|s| s.to_ascii_uppercase()) {
            Some(s) if s == "ON" => Ok(PowerState::On),
            Some(s) if s == "OFF" => Ok(PowerState::Off),
            Some(other) => Err(PowerError::Protocol(format!("{}: unknown HOST_POWER {other:?}", self.name()))),
            None => Err(PowerError::Protocol(format!("{}: reply without HOST_POWER", self.name()))),
        }
    }

    fn power_on(&mut self) -> Result<(), PowerError> {
        self.set_power(PowerState::On)
    }

    fn power_off(&mut self) -> Result<(), PowerError> {
        self.set_power(PowerState::Off)
    }

    fn login_timeout(&self) -> Duration {
        self.login_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fw(proc_: Option<&str>, fw: Option<&str>, ribcl: &str) -> FwInfo {
        FwInfo {
            ribcl_version: ribcl.into(),
            firmware_version: fw.map(Into::into),
            processor: proc_.map(Into::into),
            http: false,
        }
    }

    #[test]
    fn power_command_matches_fence_ilo() {
        use PowerState::*;
        assert_eq!(power_command(&fw(Some("iLO2"), Some("2.29"), "2.22"), Off), PowerCmd::HoldToggle);
        assert_eq!(power_command(&fw(Some("iLO2"), Some("2.29"), "2.22"), On), PowerCmd::HoldToggle);
        assert_eq!(power_command(&fw(Some("iLO2"), Some("1.29"), "2.22"), On), PowerCmd::Hold);
        assert_eq!(power_command(&fw(Some("iLO2"), Some("1.3"), "2.22"), On), PowerCmd::HoldToggle);
        assert_eq!(power_command(&fw(Some("iLO"), Some("1.87"), "2.15"), On), PowerCmd::SetHostPower(On));
        assert_eq!(power_command(&fw(None, None, "1.30"), Off), PowerCmd::SetHostPower(Off));
        assert_eq!(power_command(&fw(Some("iLO4"), Some("2.55"), "2.23"), Off), PowerCmd::Hold);
        assert_eq!(power_command(&fw(Some("iLO4"), Some("2.55"), "2.23"), On), PowerCmd::Press);
        assert_eq!(power_command(&fw(Some("iLO3"), Some("1.82"), "2.21"), On), PowerCmd::Press);
    }

    #[test]
    fn scanner_handles_ilo_quirks() {
        let text = b"<?xml version=\"1.0\"?>\r\n<RIBCL VERSION=\"2.23\">\n<RESPONSE\n    STATUS=\"0x0000\"\n    MESSAGE='No error'\n     />\n<GET_FW_VERSION\n   FIRMWARE_VERSION = \"1.82\"\n   MANAGEMENT_PROCESSOR = \"iLO3\"\n   />\n<GET_HOST_POWER\n    HOST_POWER=\"ON\"\n    />\n</RIBCL>\n";
        let r = parse_reply(text);
        assert_eq!(r.ribcl_version.as_deref(), Some("2.23"));
        assert_eq!(r.firmware_version.as_deref(), Some("1.82"));
        assert_eq!(r.processor.as_deref(), Some("iLO3"));
        assert_eq!(r.host_power.as_deref(), Some("ON"));
        assert!(r.errors.is_empty());
        assert_eq!(r.responses, 1);
    }

    #[test]
    fn scanner_is_streaming_and_quote_aware() {
        let full = b"<LOGIN USER_LOGIN = \"a>b\" PASSWORD='x\"y'>rest";
        assert!(next_item(&full[..10]).is_none());
        let (item, used) = next_item(full).unwrap();
        assert_eq!(&full[used..], b"rest");
        assert_eq!(item.attr("user_login"), Some("a>b"));
        assert_eq!(item.attr("PASSWORD"), Some("x\"y"));
    }

    #[test]
    fn errors_map_to_kinds() {
        let st = |c, m: &str| RibclStatus { code: c, message: m.into() };
        assert!(matches!(status_error("d", "u", &st(0x5F, "Login failed.")), PowerError::Auth(_)));
        assert!(matches!(status_error("d", "u", &st(0x0A, "User login name was not found")), PowerError::Auth(_)));
        assert!(matches!(status_error("d", "u", &st(0x23, "no priv")), PowerError::Auth(_)));
        assert!(matches!(status_error("d", "u", &st(0x3C, "unsupported")), PowerError::NotSupported(_)));
        assert!(matches!(status_error("d", "u", &st(0x01, "Syntax error")), PowerError::Protocol(_)));
    }

    #[test]
    fn credentials_encoding() {
        let v = EscapeMode::Verbatim;
        assert_eq!(login_attr("a&b", v, "password").unwrap(), "\"a&b\"");
        assert_eq!(login_attr("a\"b", v, "password").unwrap(), "'a\"b'");
        assert_eq!(login_attr("a'b", v, "password").unwrap(), "\"a'b\"");
        assert!(matches!(login_attr("a<b", v, "password"), Err(PowerError::Config(_))));
        assert!(matches!(login_attr("a'\"b", v, "password"), Err(PowerError::Config(_))));
        let e = login_attr("a<b", v, "password").unwrap_err().to_string();
        assert!(!e.contains("a<b"), "the error must not echo the password: {e}");
        assert_eq!(login_attr("a<'\"&", EscapeMode::Standard, "password").unwrap(), "\"a&lt;&apos;&quot;&amp;\"");
        assert_eq!(xml_unescape("a&lt;&apos;&quot;&amp;&#65;"), "a<'\"&A");
    }
}
