//! A RIBCL/iLO simulator: what fence_ilo, python-hpilo and twonode's RIBCL driver talk to in
//! the tests and in the lab.
//!
//! Modelled on the transcripts of real iLO3/iLO4 replies and on how fence_ilo and python-hpilo
//! drive them:
//! - TLS on one port with a self-signed certificate (SANs localhost and 127.0.0.1), written to
//!   `STATE_DIR/cert.pem`.
//! - Raw mode (iLO, iLO2, and also accepted by iLO3/4): the stream is processed incrementally;
//!   every item gets its reply as soon as it is complete (fence_ilo waits for the answer to the
//!   lone `<?xml version="1.0"?>` before it sends more). Each reply is a complete
//!   `<?xml?><RIBCL VERSION=".."><RESPONSE STATUS=.. MESSAGE='..'/>..</RIBCL>` document.
//!   The connection closes after `</RIBCL>` or a failed login.
//! - HTTP mode (iLO3/4): `POST /ribcl` answered `200` with a chunked body, one chunk per
//!   document; iLO/iLO2 answer any HTTP request with 404 (python-hpilo's detection relies on it).
//! - LOGIN values are compared verbatim (iLO does not decode XML escapes), unless the profile
//!   supports `<?ilo entity-processing="standard"?>` and the client sent it.
//! - Power state persists in `STATE_DIR/power` ("on"/"off"); every connection, login and
//!   command is appended to `STATE_DIR/log`.
//! - Fault files in STATE_DIR, read at each command: `ignore_on`, `ignore_off` (the command is
//!   acknowledged but nothing happens), `delay_s` (apply power changes N seconds later),
//!   `wrong_fw` (GET_FW_VERSION reports the file's text as FIRMWARE_VERSION, or omits it when
//!   the file says "missing"), `hang` (accept, then never answer), `drop` (close the
//!   connection right after the login).
use crate::fence::ribcl::{next_item, xml_unescape, Item};
use anyhow::{Context, Result};
use std::io::{Read, Write};
use super::tls_server::{ServerStream, TlsListener};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The firmware a simulated iLO pretends to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Profile {
    /// iLO (first generation), firmware 1.87, RIBCL 2.15: SET_HOST_POWER, raw only.
    Ilo,
    /// iLO2 firmware 1.29, RIBCL 2.22: HOLD_PWR_BTN toggles; raw only.
    #[value(name = "ilo2-129")]
    Ilo2Old,
    /// iLO2 firmware 2.29, RIBCL 2.22: HOLD_PWR_BTN TOGGLE="yes"; raw only.
    Ilo2,
    /// iLO3 firmware 1.82, RIBCL 2.23: HTTP POST /ribcl and raw; HOLD/PRESS_PWR_BTN.
    Ilo3,
    /// iLO4 firmware 2.55, RIBCL 2.23: like iLO3, plus entity-processing="standard".
    Ilo4,
}

/// The facts of a profile (each can be overridden in `IloSimConfig`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProfileSpec {
    pub processor: String,
    pub firmware: String,
    pub firmware_date: String,
    pub ribcl: String,
    pub http: bool,
    pub raw: bool,
    pub entity_processing: bool,
}

impl Profile {
    pub fn spec(self) -> ProfileSpec {
        let (processor, firmware, date, ribcl, http, ent) = match self {
            Profile::Ilo => ("iLO", "1.87", "Mar 04 2008", "2.15", false, false),
            Profile::Ilo2Old => ("iLO2", "1.29", "Jan 18 2007", "2.22", false, false),
            Profile::Ilo2 => ("iLO2", "2.29", "Jul 16 2015", "2.22", false, false),
            Profile::Ilo3 => ("iLO3", "1.82", "Jan 15 2015", "2.23", true, false),
            Profile::Ilo4 => ("iLO4", "2.55", "Aug 16 2017", "2.23", true, true),
        };
        ProfileSpec {
            processor: processor.into(),
            firmware: firmware.into(),
            firmware_date: date.into(),
            ribcl: ribcl.into(),
            http,
            raw: true,
            entity_processing: ent,
        }
    }
}

/// A user account of the simulated iLO.
#[derive(Clone, PartialEq, Eq)]
pub struct SimUser {
    pub login: String,
    pub password: String,
    /// RESET_SERVER_PRIV ("Virtual Power and Reset").
    pub can_reset: bool,
}

impl std::fmt::Debug for SimUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimUser({}, can_reset={})", self.login, self.can_reset)
    }
}

/// How to run a simulated iLO.
#[derive(Debug, Clone)]
pub struct IloSimConfig {
    pub spec: ProfileSpec,
    pub state_dir: PathBuf,
    pub users: Vec<SimUser>,
    /// Address to listen on; port 0 picks a free one. Loopback only by default.
    pub bind: SocketAddr,
    /// Initial power state when STATE_DIR/power does not exist yet.
    pub initial_on: bool,
}

impl IloSimConfig {
    pub fn new(profile: Profile, state_dir: impl Into<PathBuf>) -> Self {
        IloSimConfig {
            spec: profile.spec(),
            state_dir: state_dir.into(),
            users: vec![SimUser { login: "admin".into(), password: "secret".into(), can_reset: true }],
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            initial_on: true,
        }
    }
}

/// A running simulator; stops (and closes its port) when dropped.
pub struct IloSim {
    listener: TlsListener,
    state_dir: PathBuf,
}

impl IloSim {
    /// Bind, write the certificate and the initial state, and serve in background threads.
    pub fn start(cfg: IloSimConfig) -> Result<IloSim> {
        std::fs::create_dir_all(&cfg.state_dir)
            .with_context(|| format!("creating state dir {}", cfg.state_dir.display()))?;
        let power = cfg.state_dir.join("power");
        if !power.exists() {
            write_atomic(&power, if cfg.initial_on { "on\n" } else { "off\n" })?;
        }
        let shared = Arc::new(Shared { cfg: cfg.clone(), lock: Mutex::new(()) });
        let sh = shared.clone();
        // Short read timeouts so a connection's thread notices `stop`; the session itself idles
        // out after 60 s.
        let listener = TlsListener::start(cfg.bind, "ilo-sim", Duration::from_millis(200), move |tls, stop| {
            serve_connection(tls, &sh, stop)
        })?;
        let cert_path = cfg.state_dir.join("cert.pem");
        std::fs::write(&cert_path, listener.cert_pem()).with_context(|| format!("writing {}", cert_path.display()))?;
        shared.log(&format!(
            "START {} fw {} RIBCL {} on {}",
            cfg.spec.processor,
            cfg.spec.firmware,
            cfg.spec.ribcl,
            listener.addr()
        ));
        Ok(IloSim { listener, state_dir: cfg.state_dir })
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener.addr()
    }
    pub fn port(&self) -> u16 {
        self.addr().port()
    }
    pub fn cert_pem(&self) -> &str {
        self.listener.cert_pem()
    }
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }
    /// The persisted power state (true = on).
    pub fn power_on(&self) -> bool {
        read_power(&self.state_dir)
    }
    /// Set the power state directly (as if someone pressed the real button).
    pub fn set_power(&self, on: bool) -> Result<()> {
        write_atomic(&self.state_dir.join("power"), if on { "on\n" } else { "off\n" })
    }
    /// The command log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state_dir.join("log")).unwrap_or_default()
    }
    /// Create or remove a fault file (`ignore_on`, `ignore_off`, `delay_s`, `wrong_fw`, `hang`, `drop`).
    pub fn set_fault(&self, name: &str, content: Option<&str>) -> Result<()> {
        let path = self.state_dir.join(name);
        match content {
            Some(c) => std::fs::write(&path, c).with_context(|| format!("writing {}", path.display())),
            None => match std::fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
            },
        }
    }
    pub fn stop(&mut self) {
        self.listener.stop();
    }
}

struct Shared {
    cfg: IloSimConfig,
    lock: Mutex<()>,
}

impl Shared {
    fn log(&self, line: &str) {
        let _g = self.lock.lock();
        if let Ok(mut f) =
            std::fs::OpenOptions::new().create(true).append(true).open(self.cfg.state_dir.join("log"))
        {
            let _ = writeln!(f, "{line}");
        }
    }
    fn fault(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.cfg.state_dir.join(name)).ok().map(|s| s.trim().to_string())
    }
    fn power(&self) -> bool {
        read_power(&self.cfg.state_dir)
    }
    /// Apply a power change, honouring ignore_on / ignore_off / delay_s.
    fn change_power(&self, on: bool, cmd: &str) {
        let before = self.power();
        if on && self.fault("ignore_on").is_some() {
            self.log(&format!("CMD {cmd}: ignored (fault ignore_on)"));
            return;
        }
        if !on && self.fault("ignore_off").is_some() {
            self.log(&format!("CMD {cmd}: ignored (fault ignore_off)"));
            return;
        }
        let word = |b: bool| if b { "on" } else { "off" };
        let delay = self.fault("delay_s").and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
        let path = self.cfg.state_dir.join("power");
        if delay > 0.0 {
            self.log(&format!("CMD {cmd}: {} -> {} in {delay} s", word(before), word(on)));
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs_f64(delay.min(3600.0)));
                let _ = write_atomic(&path, if on { "on\n" } else { "off\n" });
            });
        } else {
            self.log(&format!("CMD {cmd}: {} -> {}", word(before), word(on)));
            let _ = write_atomic(&path, if on { "on\n" } else { "off\n" });
        }
    }
}

fn read_power(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("power")).map(|s| s.trim().eq_ignore_ascii_case("on")).unwrap_or(false)
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// The RIBCL interpreter of one connection (shared by raw and HTTP modes).
struct Session<'a> {
    sh: &'a Shared,
    user: Option<SimUser>,
    entity: bool,
    write_mode: bool,
    done: bool,
}

impl<'a> Session<'a> {
    fn new(sh: &'a Shared) -> Self {
        Session { sh, user: None, entity: false, write_mode: false, done: false }
    }

    fn doc(&self, status: u32, message: &str, extra: &str) -> String {
        format!(
            "<?xml version=\"1.0\"?>\r\n<RIBCL VERSION=\"{}\">\r\n<RESPONSE\r\n    STATUS=\"0x{status:04X}\"\r\n    MESSAGE='{message}'\r\n     />\r\n{extra}</RIBCL>\r\n",
            self.sh.cfg.spec.ribcl
        )
    }
    fn ok(&self, extra: &str) -> String {
        self.doc(0, "No error", extra)
    }

    fn value(&self, raw: Option<&str>) -> String {
        let raw = raw.unwrap_or("");
        if self.entity {
            xml_unescape(raw)
        } else {
            raw.to_string()
        }
    }

    /// Handle one item; returns the documents to send.
    fn feed(&mut self, item: Item) -> Vec<String> {
        let spec = &self.sh.cfg.spec;
        match item {
            Item::Pi { target, .. } if target.eq_ignore_ascii_case("xml") => vec![self.ok("")],
            Item::Pi { target, attrs } if target.eq_ignore_ascii_case("ilo") => {
                let standard = attrs
                    .iter()
                    .any(|(k, v)| k.eq_ignore_ascii_case("entity-processing") && v.eq_ignore_ascii_case("standard"));
                if standard && spec.entity_processing {
                    self.entity = true;
                }
                vec![]
            }
            Item::Pi { .. } | Item::Text(_) | Item::Other => vec![],
            Item::End { name } => {
                let n = name.to_ascii_uppercase();
                if n == "RIBCL" {
                    self.done = true;
                } else if n == "LOGIN" {
                    self.user = None;
                }
                vec![]
            }
            Item::Start { name, attrs, empty } => {
                let item = Item::Start { name: name.clone(), attrs, empty };
                let n = name.to_ascii_uppercase();
                match n.as_str() {
                    "RIBCL" => vec![self.ok("")],
                    "LOGIN" => self.login(&item),
                    "SERVER_INFO" | "RIB_INFO" | "USER_INFO" | "DIR_INFO" => {
                        if self.user.is_none() {
                            return vec![self.doc(0x0001, "Syntax error: command outside LOGIN", "")];
                        }
                        self.write_mode = item.attr("MODE").is_some_and(|m| m.eq_ignore_ascii_case("write"));
                        vec![]
                    }
                    _ => {
                        if self.user.is_none() {
                            return vec![self.doc(0x0001, &format!("Syntax error: {n} outside LOGIN"), "")];
                        }
                        vec![self.command(&n, &item)]
                    }
                }
            }
        }
    }

    fn login(&mut self, item: &Item) -> Vec<String> {
        let spec = &self.sh.cfg.spec;
        let login = self.value(item.attr("USER_LOGIN"));
        let password = self.value(item.attr("PASSWORD"));
        let user = self.sh.cfg.users.iter().find(|u| u.login == login);
        match user {
            Some(u) if u.password == password => {
                self.sh.log(&format!("LOGIN ok {login}"));
                self.user = Some(u.clone());
                if self.sh.fault("drop").is_some() {
                    self.sh.log("FAULT drop: closing after login");
                    self.done = true;
                    return vec![];
                }
                vec![self.ok("")]
            }
            None if spec.processor == "iLO" => {
                self.sh.log(&format!("LOGIN unknown-user {login}"));
                self.done = true;
                vec![self.doc(0x000A, "User login name was not found", "")]
            }
            _ => {
                self.sh.log(&format!("LOGIN failed {login}"));
                self.done = true;
                let msg = if spec.processor == "iLO2" || spec.processor == "iLO" {
                    "Login credentials rejected."
                } else {
                    "Login failed."
                };
                vec![self.doc(0x005F, msg, "")]
            }
        }
    }

    fn command(&mut self, n: &str, item: &Item) -> String {
        let spec = self.sh.cfg.spec.clone();
        let ribcl: f64 = spec.ribcl.parse().unwrap_or(2.0);
        let fw: f64 = spec.firmware.parse().unwrap_or(0.0);
        let can_reset = self.user.as_ref().is_some_and(|u| u.can_reset);
        let no_priv = || "User does not have correct privilege for action. RESET_SERVER_PRIV required.";
        let power_cmd = matches!(n, "SET_HOST_POWER" | "HOLD_PWR_BTN" | "PRESS_PWR_BTN" | "COLD_BOOT_SERVER" | "RESET_SERVER");
        if power_cmd && !self.write_mode {
            return self.doc(0x0001, &format!("Syntax error: {n} needs MODE=\"write\""), "");
        }
        if power_cmd && !can_reset {
            self.sh.log(&format!("CMD {n}: refused, no RESET_SERVER_PRIV"));
            return self.doc(0x0023, no_priv(), "");
        }
        let on = self.sh.power();
        match n {
            "GET_FW_VERSION" if ribcl < 2.0 => {
                self.sh.log("CMD GET_FW_VERSION: unknown to RIBCL 1.x");
                self.doc(0x0001, "Syntax error: Line #0: syntax error near \"GET_FW_VERSION\"", "")
            }
            "GET_FW_VERSION" => {
                let fwtext = match self.sh.fault("wrong_fw") {
                    Some(s) if s == "missing" => String::new(),
                    Some(s) => format!("\r\n   FIRMWARE_VERSION = \"{}\"", if s.is_empty() { "x.yz" } else { &s }),
                    None => format!("\r\n   FIRMWARE_VERSION = \"{}\"", spec.firmware),
                };
                self.sh.log("CMD GET_FW_VERSION");
                self.ok(&format!(
                    "<GET_FW_VERSION{fwtext}\r\n   FIRMWARE_DATE = \"{}\"\r\n   MANAGEMENT_PROCESSOR = \"{}\"\r\n   />\r\n",
                    spec.firmware_date, spec.processor
                ))
            }
            "GET_HOST_POWER_STATUS" => {
                self.sh.log(&format!("CMD GET_HOST_POWER_STATUS: {}", if on { "ON" } else { "OFF" }));
                self.ok(&format!("<GET_HOST_POWER\r\n    HOST_POWER=\"{}\"\r\n    />\r\n", if on { "ON" } else { "OFF" }))
            }
            "SET_HOST_POWER" => {
                let v = item.attr("HOST_POWER").unwrap_or("").trim().to_ascii_lowercase();
                let want = match v.as_str() {
                    "on" | "yes" | "y" | "true" | "t" | "1" => true,
                    "off" | "no" | "n" | "false" | "f" | "0" => false,
                    _ => {
                        return self.doc(0x0004, &format!("The value specified for HOST_POWER is invalid: {v}"), "")
                    }
                };
                self.sh.change_power(want, &format!("SET_HOST_POWER HOST_POWER={v}"));
                self.ok("")
            }
            "HOLD_PWR_BTN" | "PRESS_PWR_BTN" if ribcl < 2.21 && spec.processor != "iLO2" => {
                self.sh.log(&format!("CMD {n}: unsupported by RIBCL {}", spec.ribcl));
                self.doc(0x003C, &format!("{n} is not supported on this firmware"), "")
            }
            "HOLD_PWR_BTN" => {
                let toggle = item.attr("TOGGLE").is_some_and(|t| {
                    matches!(t.trim().to_ascii_lowercase().as_str(), "yes" | "y" | "true" | "t" | "1")
                });
                let old_toggle = spec.processor == "iLO2" && fw <= 1.29;
                if toggle || old_toggle {
                    let label = if toggle { "HOLD_PWR_BTN TOGGLE=yes" } else { "HOLD_PWR_BTN (toggles on iLO2 <= 1.29)" };
                    self.sh.change_power(!on, label);
                } else if on {
                    self.sh.change_power(false, "HOLD_PWR_BTN");
                } else {
                    self.sh.log("CMD HOLD_PWR_BTN: already off, nothing happens");
                }
                self.ok("")
            }
            "PRESS_PWR_BTN" => {
                if on {
                    self.sh.log("CMD PRESS_PWR_BTN: machine on: ACPI power button event only");
                } else {
                    self.sh.change_power(true, "PRESS_PWR_BTN");
                }
                self.ok("")
            }
            "COLD_BOOT_SERVER" => {
                self.sh.change_power(false, "COLD_BOOT_SERVER (off)");
                self.sh.change_power(true, "COLD_BOOT_SERVER (on)");
                self.ok("")
            }
            "RESET_SERVER" => {
                self.sh.log(&format!("CMD RESET_SERVER: {}", if on { "warm reset" } else { "machine off: nothing" }));
                self.ok("")
            }
            other => {
                self.sh.log(&format!("CMD {other}: unknown"));
                self.doc(0x0001, &format!("Syntax error: Line #0: syntax error near \"{other}\""), "")
            }
        }
    }
}


fn serve_connection(mut tls: ServerStream, sh: &Shared, stop: &AtomicBool) {
    let idle_limit = Instant::now() + Duration::from_secs(60);
    if sh.fault("hang").is_some() {
        sh.log("CONN hang (fault): never answering");
        while !stop.load(Ordering::SeqCst) && Instant::now() < idle_limit {
            let mut b = [0u8; 512];
            match tls.read(&mut b) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {}
                Err(_) => return,
            }
        }
        return;
    }
    let mut buf: Vec<u8> = Vec::new();
    // Sniff: raw RIBCL starts with '<', anything else is HTTP.
    loop {
        if stop.load(Ordering::SeqCst) || Instant::now() > idle_limit {
            return;
        }
        if let Some(first) = buf.iter().find(|b| !b.is_ascii_whitespace()) {
            if *first == b'<' {
                if sh.cfg.spec.raw {
                    sh.log("CONN raw");
                    serve_raw(&mut tls, buf, sh, stop, idle_limit);
                } else {
                    sh.log("CONN raw refused (profile is HTTP only)");
                }
                return;
            }
            if buf.len() >= 4 {
                serve_http(&mut tls, buf, sh, stop, idle_limit);
                return;
            }
        }
        if !read_more(&mut tls, &mut buf) {
            return;
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}

/// Read once; false on EOF or a hard error (timeouts are not errors).
fn read_more(tls: &mut ServerStream, buf: &mut Vec<u8>) -> bool {
    let mut b = [0u8; 4096];
    match tls.read(&mut b) {
        Ok(0) => false,
        Ok(n) => {
            buf.extend_from_slice(&b[..n]);
            true
        }
        Err(e) if is_timeout(&e) || e.kind() == std::io::ErrorKind::Interrupted => true,
        Err(_) => false,
    }
}

fn close(tls: &mut ServerStream) {
    tls.conn.send_close_notify();
    let _ = tls.flush();
    let _ = tls.sock.shutdown(std::net::Shutdown::Both);
}

fn serve_raw(tls: &mut ServerStream, mut buf: Vec<u8>, sh: &Shared, stop: &AtomicBool, idle_limit: Instant) {
    let mut session = Session::new(sh);
    loop {
        while let Some((item, used)) = next_item(&buf) {
            buf.drain(..used);
            let out = session.feed(item);
            if !out.is_empty() {
                if tls.write_all(out.concat().as_bytes()).is_err() {
                    return;
                }
                let _ = tls.flush();
            }
            if session.done {
                close(tls);
                return;
            }
        }
        if stop.load(Ordering::SeqCst) || Instant::now() > idle_limit {
            close(tls);
            return;
        }
        if !read_more(tls, &mut buf) {
            return;
        }
    }
}

fn serve_http(tls: &mut ServerStream, mut buf: Vec<u8>, sh: &Shared, stop: &AtomicBool, idle_limit: Instant) {
    // Read the head.
    let (method, path, head_len, content_length) = loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(n)) => {
                let cl = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break (req.method.unwrap_or("").to_string(), req.path.unwrap_or("").to_string(), n, cl);
            }
            Ok(httparse::Status::Partial) => {}
            Err(_) => {
                let _ = tls.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                close(tls);
                return;
            }
        }
        if stop.load(Ordering::SeqCst) || Instant::now() > idle_limit || buf.len() > 65536 {
            return;
        }
        if !read_more(tls, &mut buf) {
            return;
        }
    };
    sh.log(&format!("CONN http {method} {path}"));
    let not_found = |tls: &mut ServerStream| {
        let body = "<HTML><HEAD><TITLE>404 Not Found</TITLE></HEAD><BODY>Not Found</BODY></HTML>";
        let _ = tls.write_all(
            format!(
                "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        close(tls);
    };
    // Read the whole request (its body too) before answering, even with a 404: a client that
    // writes the body after the headers (python-hpilo's protocol detection does) must not find
    // the connection already closed.
    while buf.len() < head_len + content_length.min(1 << 20) {
        if stop.load(Ordering::SeqCst) || Instant::now() > idle_limit {
            return;
        }
        if !read_more(tls, &mut buf) {
            break;
        }
    }
    if !sh.cfg.spec.http || method != "POST" || path != "/ribcl" {
        not_found(tls);
        return;
    }
    let mut body = buf.split_off(head_len.min(buf.len()));
    body.truncate(content_length);
    let mut session = Session::new(sh);
    let mut docs = Vec::new();
    let mut pos = 0;
    while let Some((item, used)) = next_item(&body[pos..]) {
        pos += used;
        docs.extend(session.feed(item));
        if session.done {
            break;
        }
    }
    let mut out = String::from(
        "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\nServer: twonode-ilo-sim\r\nConnection: close\r\n\r\n",
    );
    for d in docs {
        out.push_str(&format!("{:03x}\r\n{d}\r\n", d.len()));
    }
    out.push_str("0\r\n\r\n");
    let _ = tls.write_all(out.as_bytes());
    close(tls);
}

/// Parse a users file: one `LOGIN:PASSWORD` per line (`#` comments); the password is the rest
/// of the line after the first colon, taken verbatim.
pub fn parse_users(text: &str, readonly: &[String]) -> Result<Vec<SimUser>> {
    let mut users = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let (login, password) = line
            .split_once(':')
            .with_context(|| format!("users file line {}: expected LOGIN:PASSWORD", n + 1))?;
        users.push(SimUser {
            login: login.trim().to_string(),
            password: password.to_string(),
            can_reset: !readonly.iter().any(|r| r == login.trim()),
        });
    }
    anyhow::ensure!(!users.is_empty(), "users file holds no LOGIN:PASSWORD line");
    Ok(users)
}
