//! Redfish power driver (iLO 5/6, iDRAC 9, AMI MegaRAC, OpenBMC, and every other Redfish BMC):
//! what fence_redfish does, discovered instead of assumed.
//!
//! * Discovery: GET `redfish_uri` (default /redfish/v1) → `Systems` collection → its one member
//!   (or `systems_uri` given; several members and none given: refused, listing them — where
//!   fence_redfish silently takes the last one, fencing the wrong machine is worse than not
//!   fencing). The reset target is `Actions.#ComputerSystem.Reset.target`; the allowed
//!   ResetType values come from `ResetType@Redfish.AllowableValues`, else from the
//!   `@Redfish.ActionInfo` resource (`Parameters[Name=ResetType].AllowableValues`), else the
//!   standard set is assumed.
//! * The reset per allowed values ([`choose_reset`]): off = ForceOff (GracefulShutdown only when
//!   nothing that cuts power is offered, and then said so); on = On, else ForceOn; a `cycle`
//!   reboot (only on request: the engine's reboot is off, verify, on, verify) = PowerCycle, else
//!   ForceRestart.
//! * Answers: 200/204 accepted; 202 with a `Location` task monitor polled (bounded by
//!   power_timeout) until TaskState Completed (or Exception/Killed/Cancelled: an error); 400 is
//!   an error naming the allowed values.
//! * Authentication: a Redfish session (POST SessionService/Sessions, `X-Auth-Token`, DELETE of
//!   the session when the device is dropped, on success and on error alike); basic
//!   authentication when the service offers no sessions or refuses the login by policy (not
//!   on 401: a wrong password stays a wrong password). Certificates as fence-agents:
//!   `ssl_insecure` accepts self-signed ones, `ssl_ca` (twonode extension) pins one.
//! * The engine verifies every action by reading `PowerState` back, as for every driver.
use super::power::{PowerDevice, PowerError, PowerState};
use super::config::{flag, WebBmc, WebKind};
use super::options;
use super::spec::Timing;
use super::tls;
use base64::Engine;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The power change a fence wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Off,
    On,
    Cycle,
}

/// The ResetType chosen for a [`Want`], with a note when the choice is weaker than usual.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetChoice {
    pub reset_type: String,
    pub note: Option<String>,
}

/// The standard values assumed when a service lists none (what fence_redfish sends).
pub const STANDARD_RESET_TYPES: [&str; 3] = ["On", "ForceOff", "ForceRestart"];

/// Choose the ResetType for `want` among `allowed` (None: the service lists none, the standard
/// set is assumed). Pure. Off prefers ForceOff (power cut now); GracefulShutdown is taken only
/// when nothing else can switch the machine off, with a note saying the fence then depends on
/// the victim's OS (it still counts only once PowerState Off is read back). PushPowerButton is
/// never used: it toggles, so it could switch a machine on.
pub fn choose_reset(want: Want, allowed: Option<&[String]>) -> Result<ResetChoice, String> {
    let std_set: Vec<String> = STANDARD_RESET_TYPES.iter().map(|s| s.to_string()).collect();
    let list = allowed.unwrap_or(&std_set);
    let has = |v: &str| list.iter().any(|a| a == v);
    let pick = |v: &str, note: Option<String>| ResetChoice { reset_type: v.to_string(), note };
    let (wanted, prefs): (&str, &[&str]) = match want {
        Want::Off => ("power off", &["ForceOff"]),
        Want::On => ("power on", &["On", "ForceOn"]),
        Want::Cycle => ("power cycle", &["PowerCycle", "ForceRestart"]),
    };
    if let Some(v) = prefs.iter().find(|v| has(v)) {
        return Ok(pick(v, None));
    }
    if want == Want::Off && has("GracefulShutdown") {
        return Ok(pick(
            "GracefulShutdown",
            Some(
                "the BMC offers no ForceOff: asked for GracefulShutdown, which relies on the victim's OS \
                 (a hung node may never go off); the fence counts only once PowerState Off is read back"
                    .into(),
            ),
        ));
    }
    Err(format!(
        "no ResetType to {wanted}: the BMC allows {} (twonode uses {})",
        if list.is_empty() { "none".to_string() } else { list.join(", ") },
        prefs.join(" or ")
    ))
}

/// What a task monitor's answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskProgress {
    Running(String),
    Done,
    Failed(String),
}

/// Read a task monitor answer: HTTP 202 = still running; a Task resource's `TaskState`
/// (Completed = done unless `TaskStatus` is Critical; Exception/Killed/Cancelled = failed with
/// its messages); any other 2xx without a TaskState = the operation's own final answer = done.
pub fn task_progress(status: u16, body: &Value) -> TaskProgress {
    let state = body.get("TaskState").and_then(Value::as_str);
    let messages = || {
        body.get("Messages")
            .and_then(Value::as_array)
            .map(|m| m.iter().filter_map(|x| x.get("Message").and_then(Value::as_str)).collect::<Vec<_>>().join("; "))
            .filter(|s| !s.is_empty())
            .map(|s| format!(": {s}"))
            .unwrap_or_default()
    };
    match state {
        Some("Completed") if body.get("TaskStatus").and_then(Value::as_str) == Some("Critical") => {
            TaskProgress::Failed(format!("task Completed with TaskStatus Critical{}", messages()))
        }
        Some("Completed") => TaskProgress::Done,
        Some(s @ ("Exception" | "Killed" | "Cancelled")) => TaskProgress::Failed(format!("task {s}{}", messages())),
        Some(s) => TaskProgress::Running(s.to_string()),
        None if status == 202 => TaskProgress::Running("202 Accepted".into()),
        None => TaskProgress::Done,
    }
}

/// The allowed ResetType values of an ActionInfo resource.
pub fn action_info_values(info: &Value) -> Option<Vec<String>> {
    info.get("Parameters")?
        .as_array()?
        .iter()
        .find(|p| p.get("Name").and_then(Value::as_str) == Some("ResetType"))?
        .get("AllowableValues")?
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
}

/// The message of a Redfish error body (`error.@Message.ExtendedInfo[*].Message`, else
/// `error.message`), for error texts.
pub fn error_detail(json: &Value) -> String {
    let ext: Vec<&str> = json
        .pointer("/error/@Message.ExtendedInfo")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|m| m.get("Message").and_then(Value::as_str)).collect())
        .unwrap_or_default();
    if !ext.is_empty() {
        return format!(": {}", ext.join("; "));
    }
    // iLO: MessageId (MessageID on iLO 4) and MessageArgs, no Message
    let ids: Vec<String> = json
        .pointer("/error/@Message.ExtendedInfo")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|m| {
                    let id = m.get("MessageId").or_else(|| m.get("MessageID")).and_then(Value::as_str)?;
                    let args: Vec<&str> =
                        m.get("MessageArgs").and_then(Value::as_array).map(|x| x.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
                    Some(if args.is_empty() { id.to_string() } else { format!("{id} ({})", args.join(", ")) })
                })
                .collect()
        })
        .unwrap_or_default();
    if !ids.is_empty() {
        return format!(": {}", ids.join("; "));
    }
    json.pointer("/error/message").and_then(Value::as_str).map(|s| format!(": {s}")).unwrap_or_default()
}

/// How the driver authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Auth {
    /// Not decided yet (before the first contact).
    Unknown,
    Basic,
    /// A Redfish session: the token and the session's URI (for the DELETE).
    Session { token: String, uri: Option<String> },
}

/// A Redfish service. Build it with `from_params`.
pub struct RedfishDevice {
    host: String,
    port: u16,
    login: String,
    password: String,
    redfish_uri: String,
    systems_uri: Option<String>,
    tls: Arc<rustls::ClientConfig>,
    tls_desc: &'static str,
    login_timeout: Duration,
    power_timeout: Duration,
    auth: Auth,
    reset_target: Option<String>,
    /// None until read; Some(None) when the service lists no values.
    reset_types: Option<Option<Vec<String>>>,
    notes: Vec<String>,
    /// The last reset was answered 400.
    last_refused: bool,
}

impl std::fmt::Debug for RedfishDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedfishDevice")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("login", &self.login)
            .field("password", &"********")
            .field("systems_uri", &self.systems_uri)
            .finish()
    }
}

/// Map a Redfish `PowerState` to on/off for fencing: only "Off" is off, "PoweringOn" is not
/// yet on (so an on-confirmation waits), "PoweringOff" is still on.
pub fn power_state_of(s: &str) -> Option<PowerState> {
    match s.trim() {
        "Off" | "PoweringOn" => Some(PowerState::Off),
        "On" | "PoweringOff" | "Paused" => Some(PowerState::On),
        _ => None,
    }
}

/// One answer: status, headers, JSON body (Null when empty or not JSON).
struct Reply {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    json: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The path of a URI the service gave (a Location may be absolute: keep its path).
fn path_of(uri: &str) -> String {
    if let Some(rest) = uri.strip_prefix("https://").or_else(|| uri.strip_prefix("http://")) {
        match rest.find('/') {
            Some(i) => rest[i..].to_string(),
            None => "/".into(),
        }
    } else {
        uri.to_string()
    }
}

impl RedfishDevice {
    /// From fence_redfish's parameters: ip/ipaddr (HOST or HOST:PORT), ipport (443),
    /// login/username, passwd/password or passwd_script, ssl_insecure, ssl_ca (PEM, twonode
    /// extension), redfish_uri (/redfish/v1), systems_uri, login_timeout (5), power_timeout (20).
    pub fn from_params(p: &BTreeMap<String, String>) -> Result<Self, PowerError> {
        Self::from_params_timed(p, None)
    }

    /// As [`from_params`](Self::from_params), the engine's timing filling the timeouts the
    /// parameters do not set.
    pub fn from_params_timed(p: &BTreeMap<String, String>, timing: Option<&Timing>) -> Result<Self, PowerError> {
        let web = WebBmc::from_params(p, WebKind::Redfish, timing)?;
        let param = |k: &str| options::lookup(p, k);
        let redfish_uri = param("redfish_uri").unwrap_or("/redfish/v1").trim().to_string();
        let systems_uri = param("systems_uri").map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        for (k, v) in [("redfish_uri", Some(&redfish_uri)), ("systems_uri", systems_uri.as_ref())] {
            if let Some(v) = v {
                if !v.starts_with('/') || v.contains(char::is_whitespace) {
                    return Err(PowerError::Config(format!("{k}={v:?}: expected an absolute path like /redfish/v1/Systems/1")));
                }
            }
        }
        let _ = flag(p, "ssl_secure")?;
        Ok(RedfishDevice {
            host: web.host,
            port: web.port,
            login: web.login,
            password: web.password,
            redfish_uri,
            systems_uri,
            tls: web.tls,
            tls_desc: web.tls_desc,
            login_timeout: web.login_timeout,
            power_timeout: web.power_timeout,
            auth: Auth::Unknown,
            reset_target: None,
            reset_types: None,
            notes: Vec::new(),
            last_refused: false,
        })
    }

    fn name(&self) -> String {
        format!("Redfish {}:{}", self.host, self.port)
    }

    /// Notes about choices weaker than usual (e.g. GracefulShutdown as the only off).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// "session" or "basic" once decided (for tests and reports), else "undecided".
    pub fn auth_kind(&self) -> &'static str {
        match self.auth {
            Auth::Unknown => "undecided",
            Auth::Basic => "basic",
            Auth::Session { .. } => "session",
        }
    }

    fn basic_header(&self) -> String {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.login, self.password));
        format!("Basic {token}")
    }

    /// One request; `with_auth` adds the session token or basic credentials.
    fn send(&self, method: &str, path: &str, body: Option<&Value>, timeout: Duration, with_auth: bool) -> Result<Reply, PowerError> {
        let what = format!("{} {method} {path}", self.name());
        let mut headers: Vec<(&str, String)> = vec![("Accept", "application/json".into()), ("OData-Version", "4.0".into())];
        if with_auth {
            match &self.auth {
                Auth::Session { token, .. } => headers.push(("X-Auth-Token", token.clone())),
                _ => headers.push(("Authorization", self.basic_header())),
            }
        }
        let bytes = match body {
            Some(b) => {
                headers.push(("Content-Type", "application/json".into()));
                serde_json::to_vec(b).map_err(|e| PowerError::Protocol(format!("{what}: {e}")))?
            }
            None => Vec::new(),
        };
        let resp = tls::https_request(&self.host, self.port, &self.tls, self.login_timeout, timeout, method, path, &headers, &bytes)?;
        let json = if resp.body.iter().all(|b| b.is_ascii_whitespace()) {
            Value::Null
        } else {
            serde_json::from_slice(&resp.body).unwrap_or(Value::Null)
        };
        Ok(Reply { status: resp.status, reason: resp.reason, headers: resp.headers, json })
    }

    /// Map a non-2xx answer to an error.
    fn fail(&self, method: &str, path: &str, r: &Reply) -> PowerError {
        let what = format!("{} {method} {path}", self.name());
        let detail = error_detail(&r.json);
        match r.status {
            401 => PowerError::Auth(format!("{what}: HTTP 401: the BMC rejected user {:?}: check login and passwd", self.login)),
            403 => PowerError::Auth(format!(
                "{what}: HTTP 403: user {:?} may not do this (needs the power-control privilege){detail}",
                self.login
            )),
            404 => PowerError::Config(format!("{what}: HTTP 404: no such resource: check redfish_uri / systems_uri{detail}")),
            s => PowerError::Protocol(format!("{what}: HTTP {s} {}{detail}", r.reason)),
        }
    }

    /// An authenticated request that must succeed (2xx); logs in first when needed.
    fn request(&mut self, method: &str, path: &str, body: Option<&Value>, timeout: Duration) -> Result<Reply, PowerError> {
        self.ensure_auth()?;
        let mut r = self.send(method, path, body, timeout, true)?;
        if r.status == 401 && self.relogin()? {
            r = self.send(method, path, body, timeout, true)?;
        }
        if (200..300).contains(&r.status) {
            Ok(r)
        } else {
            Err(self.fail(method, path, &r))
        }
    }

    /// After a 401 with a session token: the session expired (or the BMC was reset); log in
    /// again once. Returns whether a retry makes sense.
    fn relogin(&mut self) -> Result<bool, PowerError> {
        if !matches!(self.auth, Auth::Session { .. }) {
            return Ok(false);
        }
        self.auth = Auth::Unknown; // the old session is gone: nothing to DELETE
        self.ensure_auth()?;
        Ok(true)
    }

    /// Decide how to authenticate: a session when the service root offers one and the login
    /// is not refused by policy, else basic. A 401 on the login is a wrong password.
    fn ensure_auth(&mut self) -> Result<(), PowerError> {
        if self.auth != Auth::Unknown {
            return Ok(());
        }
        let root_uri = self.redfish_uri.clone();
        // The service root is readable without credentials (Redfish spec); some BMCs want them.
        let mut root = self.send("GET", &root_uri, None, self.login_timeout, false)?;
        if root.status == 401 {
            root = self.send("GET", &root_uri, None, self.login_timeout, true)?;
        }
        if !(200..300).contains(&root.status) {
            self.auth = Auth::Basic;
            return Err(self.fail("GET", &root_uri, &root));
        }
        let sessions = root
            .json
            .pointer("/Links/Sessions/@odata.id")
            .and_then(Value::as_str)
            .map(String::from)
            .or_else(|| root.json.get("SessionService").map(|_| format!("{}/SessionService/Sessions", root_uri.trim_end_matches('/'))));
        let Some(sessions) = sessions else {
            self.auth = Auth::Basic;
            return Ok(());
        };
        let body = serde_json::json!({ "UserName": self.login, "Password": self.password });
        let r = self.send("POST", &sessions, Some(&body), self.login_timeout, false)?;
        match r.status {
            200..=299 => match r.header("X-Auth-Token") {
                Some(t) if !t.is_empty() => {
                    let uri = r
                        .header("Location")
                        .map(path_of)
                        .or_else(|| r.json.get("@odata.id").and_then(Value::as_str).map(String::from));
                    self.auth = Auth::Session { token: t.to_string(), uri };
                    Ok(())
                }
                _ => {
                    self.auth = Auth::Basic;
                    Ok(())
                }
            },
            401 => Err(self.fail("POST", &sessions, &r)),
            // sessions not offered there or refused by policy: basic authentication
            _ => {
                self.auth = Auth::Basic;
                Ok(())
            }
        }
    }

    /// Log out (DELETE the session) now; later requests log in again. Best effort.
    pub fn logout(&mut self) {
        if let Auth::Session { uri: Some(uri), .. } = &self.auth {
            let uri = uri.clone();
            let _ = self.send("DELETE", &uri, None, self.login_timeout, true);
        }
        self.auth = Auth::Unknown;
    }

    /// The system resource path: systems_uri, or the one member of the Systems collection.
    pub fn system_uri(&mut self) -> Result<String, PowerError> {
        if let Some(s) = &self.systems_uri {
            return Ok(s.clone());
        }
        let root_uri = self.redfish_uri.clone();
        let root = self.request("GET", &root_uri, None, self.login_timeout)?.json;
        let systems = root
            .pointer("/Systems/@odata.id")
            .and_then(Value::as_str)
            .ok_or_else(|| PowerError::Protocol(format!("{}: service root {root_uri} has no Systems", self.name())))?
            .to_string();
        let coll = self.request("GET", &systems, None, self.login_timeout)?.json;
        let members: Vec<String> = coll
            .get("Members")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|m| m.get("@odata.id").and_then(Value::as_str).map(String::from)).collect())
            .unwrap_or_default();
        match members.as_slice() {
            [one] => {
                self.systems_uri = Some(one.clone());
                Ok(one.clone())
            }
            [] => Err(PowerError::Protocol(format!("{}: {systems} lists no system", self.name()))),
            many => Err(PowerError::Config(format!(
                "{}: {systems} lists {} systems ({}): say which one with systems_uri= (--systems-uri)",
                self.name(),
                many.len(),
                many.join(", ")
            ))),
        }
    }

    /// GET the system; on first read also learn the reset target and the allowed values.
    fn system(&mut self) -> Result<Value, PowerError> {
        let uri = self.system_uri()?;
        let sys = self.request("GET", &uri, None, self.login_timeout)?.json;
        if self.reset_types.is_none() {
            let action = sys.pointer("/Actions/#ComputerSystem.Reset").cloned().unwrap_or(Value::Null);
            self.reset_target = action.get("target").and_then(Value::as_str).map(String::from);
            let inline = action
                .get("ResetType@Redfish.AllowableValues")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect::<Vec<_>>());
            let listed = match (inline, action.get("@Redfish.ActionInfo").and_then(Value::as_str)) {
                (Some(v), _) => Some(v),
                (None, Some(info_uri)) => {
                    let info = self.request("GET", info_uri, None, self.login_timeout)?.json;
                    action_info_values(&info)
                }
                (None, None) => None,
            };
            // An empty list is a firmware slip, not "nothing allowed": assume the standard set
            // (a 400 then still names what the BMC accepts).
            self.reset_types = Some(listed.filter(|v| !v.is_empty()));
        }
        Ok(sys)
    }

    /// The allowed ResetType values as discovered (None: the service lists none).
    pub fn allowed_reset_types(&mut self) -> Result<Option<Vec<String>>, PowerError> {
        if self.reset_types.is_none() {
            self.system()?;
        }
        Ok(self.reset_types.clone().flatten())
    }

    /// The ResetType this device would send for `want`.
    pub fn reset_type_for(&mut self, want: Want) -> Result<ResetChoice, PowerError> {
        let allowed = self.allowed_reset_types()?;
        choose_reset(want, allowed.as_deref()).map_err(|e| PowerError::NotSupported(format!("{}: {e}", self.name())))
    }

    fn reset(&mut self, want: Want) -> Result<(), PowerError> {
        let choice = self.reset_type_for(want)?;
        let target = self.reset_target.clone().ok_or_else(|| {
            PowerError::NotSupported(format!("{}: the system offers no #ComputerSystem.Reset action", self.name()))
        })?;
        if let Some(n) = &choice.note {
            if !self.notes.contains(n) {
                self.notes.push(n.clone());
            }
        }
        match self.post_reset(&target, &choice.reset_type) {
            // iLO refuses ForceOff on a machine already off (and On on one already on) with 400
            // InvalidOperationForSystemState: the state wanted is there, so the request is moot.
            Err(e) if self.last_refused && want != Want::Cycle => {
                let wanted = if want == Want::Off { PowerState::Off } else { PowerState::On };
                match self.status() {
                    Ok(s) if s == wanted => Ok(()),
                    _ => Err(e),
                }
            }
            r => r,
        }
    }

    /// POST `{"ResetType": kind}` to `target`; follow a 202 task monitor to its end.
    pub fn post_reset(&mut self, target: &str, kind: &str) -> Result<(), PowerError> {
        self.ensure_auth()?;
        let body = serde_json::json!({ "ResetType": kind });
        let timeout = self.power_timeout.max(self.login_timeout);
        let mut r = self.send("POST", target, Some(&body), timeout, true)?;
        if r.status == 401 && self.relogin()? {
            r = self.send("POST", target, Some(&body), timeout, true)?;
        }
        self.last_refused = r.status == 400;
        match r.status {
            202 => self.follow_task(target, kind, &r),
            200..=299 => Ok(()),
            400 => {
                let allowed = self.reset_types.clone().flatten();
                Err(PowerError::NotSupported(format!(
                    "{} POST {target}: HTTP 400: the BMC refused ResetType {kind}{}; allowed values it lists: {}",
                    self.name(),
                    error_detail(&r.json),
                    allowed.map(|a| a.join(", ")).unwrap_or_else(|| "none listed".into())
                )))
            }
            _ => Err(self.fail("POST", target, &r)),
        }
    }

    fn follow_task(&mut self, target: &str, kind: &str, first: &Reply) -> Result<(), PowerError> {
        let monitor = first
            .header("Location")
            .map(path_of)
            .or_else(|| first.json.get("@odata.id").and_then(Value::as_str).map(String::from));
        let Some(monitor) = monitor else {
            // 202 without a monitor: accepted; the engine's PowerState polling decides.
            return Ok(());
        };
        let started = Instant::now();
        let mut last = match task_progress(202, &first.json) {
            TaskProgress::Running(s) => s,
            TaskProgress::Done => return Ok(()),
            TaskProgress::Failed(e) => return Err(PowerError::Protocol(format!("{} ResetType {kind}: {e}", self.name()))),
        };
        loop {
            if started.elapsed() > self.power_timeout {
                return Err(PowerError::Timeout(format!(
                    "{} ResetType {kind} (POST {target}): task {monitor} still {last} after {:.0} s (power_timeout)",
                    self.name(),
                    self.power_timeout.as_secs_f64()
                )));
            }
            std::thread::sleep(Duration::from_millis(250));
            let mut r = self.send("GET", &monitor, None, self.login_timeout, true)?;
            if r.status == 401 && self.relogin()? {
                r = self.send("GET", &monitor, None, self.login_timeout, true)?;
            }
            if r.status == 404 || r.status == 410 {
                // Some BMCs drop a finished task's monitor: the PowerState read-back decides.
                return Ok(());
            }
            if !(200..300).contains(&r.status) {
                return Err(self.fail("GET", &monitor, &r));
            }
            match task_progress(r.status, &r.json) {
                TaskProgress::Running(s) => last = s,
                TaskProgress::Done => return Ok(()),
                TaskProgress::Failed(e) => {
                    return Err(PowerError::Protocol(format!("{} ResetType {kind}: {monitor}: {e}", self.name())))
                }
            }
        }
    }
}

impl Drop for RedfishDevice {
    fn drop(&mut self) {
        self.logout();
    }
}

impl PowerDevice for RedfishDevice {
    fn describe(&self) -> String {
        format!(
            "Redfish {}:{}{} as {}; {}",
            self.host,
            self.port,
            self.systems_uri.as_deref().unwrap_or(""),
            self.login,
            self.tls_desc
        ) + &self.notes.iter().map(|n| format!("; NOTE: {n}")).collect::<String>()
    }

    /// Log in, find the system and its reset action (the fence test times this apart).
    fn connect(&mut self) -> Result<(), PowerError> {
        self.system().map(|_| ())
    }

    fn status(&mut self) -> Result<PowerState, PowerError> {
        let sys = self.system()?;
        let s = sys
            .get("PowerState")
            .and_then(Value::as_str)
            .ok_or_else(|| PowerError::Protocol(format!("{}: the system resource has no PowerState", self.name())))?;
        power_state_of(s).ok_or_else(|| PowerError::Protocol(format!("{}: unknown PowerState {s:?}", self.name())))
    }

    fn power_on(&mut self) -> Result<(), PowerError> {
        self.reset(Want::On)
    }

    fn power_off(&mut self) -> Result<(), PowerError> {
        self.reset(Want::Off)
    }

    fn power_cycle(&mut self) -> Result<(), PowerError> {
        self.reset(Want::Cycle)
    }

    fn login_timeout(&self) -> Duration {
        self.login_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn power_states() {
        assert_eq!(power_state_of("On"), Some(PowerState::On));
        assert_eq!(power_state_of("Off"), Some(PowerState::Off));
        assert_eq!(power_state_of("PoweringOn"), Some(PowerState::Off));
        assert_eq!(power_state_of("PoweringOff"), Some(PowerState::On));
        assert_eq!(power_state_of("Bogus"), None);
    }

    #[test]
    fn reset_choice_per_allowed_values() {
        let ilo5 = v(&["On", "ForceOff", "GracefulShutdown", "ForceRestart", "Nmi", "PushPowerButton", "GracefulRestart"]);
        assert_eq!(choose_reset(Want::Off, Some(&ilo5)).unwrap().reset_type, "ForceOff");
        assert_eq!(choose_reset(Want::On, Some(&ilo5)).unwrap().reset_type, "On");
        assert_eq!(choose_reset(Want::Cycle, Some(&ilo5)).unwrap().reset_type, "ForceRestart");
        let idrac = v(&["On", "ForceOff", "ForceRestart", "GracefulRestart", "GracefulShutdown", "PushPowerButton", "Nmi", "PowerCycle"]);
        assert_eq!(choose_reset(Want::Cycle, Some(&idrac)).unwrap().reset_type, "PowerCycle");
        let force_on_only = v(&["ForceOn", "ForceOff"]);
        assert_eq!(choose_reset(Want::On, Some(&force_on_only)).unwrap().reset_type, "ForceOn");
        // graceful only when nothing else, and said so
        let graceful = v(&["On", "GracefulShutdown", "PushPowerButton"]);
        let c = choose_reset(Want::Off, Some(&graceful)).unwrap();
        assert_eq!(c.reset_type, "GracefulShutdown");
        assert!(c.note.unwrap().contains("no ForceOff"));
        // never the toggling button
        let e = choose_reset(Want::Off, Some(&v(&["On", "PushPowerButton"]))).unwrap_err();
        assert!(e.contains("allows On, PushPowerButton"), "{e}");
        // nothing listed: the standard set
        assert_eq!(choose_reset(Want::Off, None).unwrap().reset_type, "ForceOff");
        assert_eq!(choose_reset(Want::Cycle, None).unwrap().reset_type, "ForceRestart");
    }

    #[test]
    fn task_states() {
        use serde_json::json;
        assert_eq!(task_progress(202, &Value::Null), TaskProgress::Running("202 Accepted".into()));
        assert_eq!(task_progress(200, &json!({"TaskState": "Running"})), TaskProgress::Running("Running".into()));
        assert_eq!(task_progress(200, &json!({"TaskState": "Completed", "TaskStatus": "OK"})), TaskProgress::Done);
        let f = task_progress(200, &json!({"TaskState": "Exception", "Messages": [{"Message": "power supply fault"}]}));
        assert_eq!(f, TaskProgress::Failed("task Exception: power supply fault".into()));
        assert!(matches!(task_progress(200, &json!({"TaskState": "Completed", "TaskStatus": "Critical"})), TaskProgress::Failed(_)));
        assert_eq!(task_progress(204, &Value::Null), TaskProgress::Done);
    }

    #[test]
    fn action_info_and_errors() {
        use serde_json::json;
        let info = json!({"Parameters": [{"Name": "ResetType", "AllowableValues": ["On", "ForceOff"]}]});
        assert_eq!(action_info_values(&info), Some(v(&["On", "ForceOff"])));
        assert_eq!(action_info_values(&json!({"Parameters": []})), None);
        let err = json!({"error": {"message": "x", "@Message.ExtendedInfo": [{"Message": "bad value"}]}});
        assert_eq!(error_detail(&err), ": bad value");
        assert_eq!(path_of("https://10.0.0.1/redfish/v1/TaskService/Tasks/3"), "/redfish/v1/TaskService/Tasks/3");
        assert_eq!(path_of("/redfish/v1/x"), "/redfish/v1/x");
    }

    #[test]
    fn ip_with_port_and_defaults() {
        let mut p = BTreeMap::new();
        p.insert("ipaddr".to_string(), "127.0.0.1:8443".to_string());
        p.insert("login".to_string(), "admin".to_string());
        p.insert("passwd".to_string(), "pw".to_string());
        let d = RedfishDevice::from_params(&p).unwrap();
        assert_eq!((d.host.as_str(), d.port), ("127.0.0.1", 8443));
        assert!(!format!("{d:?}").contains("pw\""));
        p.insert("systems_uri".to_string(), "relative".to_string());
        assert!(matches!(RedfishDevice::from_params(&p), Err(PowerError::Config(_))));
    }
}
