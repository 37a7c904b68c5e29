//! A Redfish BMC simulator with vendor profiles: what twonode's Redfish driver and the real
//! fence_redfish talk to in the tests and in the lab.
//!
//! The shapes of each profile come from public vendor mockups (provenance per profile in
//! fixtures/redfish/SOURCES); the fields are written here from those facts, not copied:
//! - `ilo5` (HPE iLO 5, ProLiant DL325 Gen10 Plus): `/redfish/v1/Systems/1`, allowed values
//!   inline (`ResetType@Redfish.AllowableValues`, no PowerCycle, no ForceOn), a reset answered
//!   200 with iLO's `error` object carrying Base.Success, 400 InvalidOperationForSystemState for
//!   a reset pointless in the current state (ForceOff when off, On when on), weak ETags, sessions.
//! - `idrac9` (Dell iDRAC 9): `/redfish/v1/Systems/System.Embedded.1`, allowed values inline
//!   (with PowerCycle), a reset answered 204 No Content, sessions.
//! - `ami` (AMI MegaRAC, Gigabyte H262): `/redfish/v1/Systems/Self`, allowed values only in the
//!   `@Redfish.ActionInfo` resource (`ResetActionInfo`), a reset answered 202 Accepted with a
//!   Task (`Location: /redfish/v1/TaskService/Tasks/N`) that completes after `task_delay`.
//! - `openbmc` (bmcweb): `/redfish/v1/Systems/system`, allowed values in ActionInfo (with
//!   ForceOn and PowerCycle), a reset answered 200 with `@Message.ExtendedInfo` Base.Success.
//! - `sushy-like` (sushy-tools' emulator): `/redfish/v1/Systems/<uuid>`, allowed values inline,
//!   204, no SessionService (basic authentication only).
//!
//! Every profile: TLS with a self-signed certificate (written to `STATE_DIR/cert.pem` when a
//! state dir is given), the service root readable without credentials, everything else behind
//! basic authentication or a session's `X-Auth-Token` (401 otherwise); sessions created by
//! POST to the Sessions collection (201, `X-Auth-Token`, `Location`) and ended by DELETE (the
//! simulator counts the open ones); a ResetType the profile does not allow (or that the config
//! refuses) is answered 400 with Base's ActionParameterValueNotInList naming the allowed values;
//! the System resource carries an ETag (`@odata.etag` and the header), PATCH honours `If-Match`
//! (412 on a stale one). The power state lives in memory; every request is logged.
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use super::tls_server::{ServerStream, TlsListener};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The vendor a simulated Redfish BMC pretends to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Profile {
    /// HPE iLO 5: Systems/1, values inline, 200 with Base.Success, sessions.
    Ilo5,
    /// Dell iDRAC 9: Systems/System.Embedded.1, values inline with PowerCycle, 204, sessions.
    Idrac9,
    /// AMI MegaRAC: Systems/Self, values in ResetActionInfo, 202 + Task, sessions.
    Ami,
    /// OpenBMC bmcweb: Systems/system, values in ResetActionInfo, 200, sessions.
    Openbmc,
    /// sushy-tools' emulator: Systems/<uuid>, values inline, 204, basic auth only.
    #[value(name = "sushy-like")]
    SushyLike,
}

/// How a profile answers an accepted reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ResetAnswer {
    /// 200 with iLO's `error` object carrying Base.Success.
    Ok200Ilo,
    /// 200 with `@Message.ExtendedInfo` Base.Success (bmcweb).
    Ok200Success,
    /// 204 No Content.
    NoContent,
    /// 202 Accepted with a Task to poll.
    AcceptedTask,
}

/// The facts of a profile.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProfileSpec {
    pub system_id: String,
    pub manufacturer: String,
    pub model: String,
    pub allowed: Vec<String>,
    /// Allowed values only in an ActionInfo resource (else inline).
    pub action_info: bool,
    pub reset_answer: ResetAnswer,
    pub sessions: bool,
    /// Weak ETags (`W/"…"`).
    pub weak_etag: bool,
    /// Refuse a reset that makes no sense in the current state with 400
    /// InvalidOperationForSystemState (iLO: ForceOff/ForceRestart when off, On when on).
    pub state_checks: bool,
    pub root_name: String,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl Profile {
    pub fn spec(self) -> ProfileSpec {
        let (id, mfr, model, allowed, info, answer, sessions, weak, root): (_, _, _, &[&str], _, _, _, _, _) = match self {
            Profile::Ilo5 => (
                "1",
                "HPE",
                "ProLiant DL325 Gen10 Plus",
                &["On", "ForceOff", "GracefulShutdown", "ForceRestart", "Nmi", "PushPowerButton", "GracefulRestart"],
                false,
                ResetAnswer::Ok200Ilo,
                true,
                true,
                "HPE RESTful Root Service",
            ),
            Profile::Idrac9 => (
                "System.Embedded.1",
                "Dell Inc.",
                "PowerEdge R640",
                &["On", "ForceOff", "ForceRestart", "GracefulRestart", "GracefulShutdown", "PushPowerButton", "Nmi", "PowerCycle"],
                false,
                ResetAnswer::NoContent,
                true,
                false,
                "Root Service",
            ),
            Profile::Ami => (
                "Self",
                "GIGABYTE",
                "H262-Z63-00",
                &["GracefulShutdown", "ForceRestart", "ForceOff", "On"],
                true,
                ResetAnswer::AcceptedTask,
                true,
                true,
                "Root Service",
            ),
            Profile::Openbmc => (
                "system",
                "OpenBMC",
                "system",
                &["On", "ForceOff", "ForceOn", "ForceRestart", "GracefulRestart", "GracefulShutdown", "PowerCycle", "Nmi"],
                true,
                ResetAnswer::Ok200Success,
                true,
                false,
                "Root Service",
            ),
            Profile::SushyLike => (
                "27946b59-9e44-4fa7-8e91-f3527a1ef094",
                "Sushy Emulator",
                "fake",
                &["On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "Nmi", "ForceOn"],
                false,
                ResetAnswer::NoContent,
                false,
                false,
                "Redfish Service",
            ),
        };
        ProfileSpec {
            system_id: id.into(),
            manufacturer: mfr.into(),
            model: model.into(),
            allowed: strings(allowed),
            action_info: info,
            reset_answer: answer,
            sessions,
            weak_etag: weak,
            state_checks: self == Profile::Ilo5,
            root_name: root.into(),
        }
    }
}

/// How to run a simulated Redfish BMC.
#[derive(Clone)]
pub struct RedfishSimConfig {
    pub profile: Profile,
    pub spec: ProfileSpec,
    /// (login, password) pairs.
    pub users: Vec<(String, String)>,
    pub bind: SocketAddr,
    pub initial_on: bool,
    /// Values still advertised but answered 400 (a firmware that lists more than it does).
    pub refuse: Vec<String>,
    /// Refuse session logins (403, policy): clients must use basic authentication.
    pub sessions_refused: bool,
    /// How long a 202 task runs before it completes (and the power changes).
    pub task_delay: Duration,
    /// End tasks in TaskState Exception instead of Completed (power unchanged).
    pub task_fails: bool,
    /// Further systems listed in the Systems collection (`<id>-2`, …), each with its own power.
    pub extra_systems: usize,
    /// Where to write cert.pem (optional).
    pub state_dir: Option<PathBuf>,
}

impl std::fmt::Debug for RedfishSimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedfishSimConfig").field("profile", &self.profile).field("bind", &self.bind).finish()
    }
}

impl RedfishSimConfig {
    pub fn new(profile: Profile) -> Self {
        RedfishSimConfig {
            profile,
            spec: profile.spec(),
            users: vec![("admin".into(), "secret".into())],
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            initial_on: true,
            refuse: Vec::new(),
            sessions_refused: false,
            task_delay: Duration::from_millis(600),
            task_fails: false,
            extra_systems: 0,
            state_dir: None,
        }
    }
}

/// Parse LOGIN:PASSWORD lines (for `twonode lab redfish-sim --users-file`).
pub fn parse_users(text: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (l, p) = line.split_once(':').with_context(|| format!("line {}: expected LOGIN:PASSWORD", n + 1))?;
        out.push((l.to_string(), p.to_string()));
    }
    anyhow::ensure!(!out.is_empty(), "no LOGIN:PASSWORD line");
    Ok(out)
}

struct Task {
    id: u32,
    system: String,
    reset: String,
    done_at: Instant,
    applied: bool,
}

/// The simulator's state (behind one mutex).
struct State {
    power: BTreeMap<String, bool>,
    sessions: BTreeMap<u32, String>,
    next_id: u32,
    sessions_created: u32,
    tasks: Vec<Task>,
    etag: u64,
    asset_tag: String,
    log: Vec<String>,
    resets: Vec<String>,
}

/// A request as the simulator sees it.
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// An answer.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
}

fn reply(status: u16, body: Value) -> Response {
    Response { status, headers: Vec::new(), body: Some(body) }
}

fn base_error(status: u16, id: &str, message: &str) -> Response {
    reply(
        status,
        json!({"error": {"code": format!("Base.1.8.{id}"), "message": message,
            "@Message.ExtendedInfo": [{"MessageId": format!("Base.1.8.{id}"), "Message": message, "Severity": "Warning"}]}}),
    )
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        412 => "Precondition Failed",
        _ => "Status",
    }
}

const ROOT: &str = "/redfish/v1";
const SESSIONS: &str = "/redfish/v1/SessionService/Sessions";

struct Shared {
    cfg: RedfishSimConfig,
    st: Mutex<State>,
}

impl Shared {
    fn system_ids(&self) -> Vec<String> {
        let id = &self.cfg.spec.system_id;
        let mut v = vec![id.clone()];
        for n in 0..self.cfg.extra_systems {
            v.push(format!("{id}-{}", n + 2));
        }
        v
    }

    fn etag(&self, st: &State) -> String {
        if self.cfg.spec.weak_etag {
            format!("W/\"{:08X}\"", st.etag)
        } else {
            format!("\"{}\"", st.etag)
        }
    }

    /// Apply due tasks (the power change of a 202 reset happens when its task completes).
    fn advance(&self, st: &mut State) {
        let now = Instant::now();
        let mut changes = Vec::new();
        for t in st.tasks.iter_mut() {
            if !t.applied && now >= t.done_at {
                t.applied = true;
                if !self.cfg.task_fails {
                    changes.push((t.system.clone(), t.reset.clone()));
                }
            }
        }
        for (sys, reset) in changes {
            apply_reset(st, &sys, &reset);
        }
    }

    fn authorized(&self, st: &State, req: &Request) -> bool {
        if let Some(tok) = req.header("X-Auth-Token") {
            return st.sessions.values().any(|t| t == tok);
        }
        let Some(b64) = req.header("Authorization").and_then(|a| a.strip_prefix("Basic ")) else { return false };
        use base64::Engine;
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else { return false };
        let raw = String::from_utf8_lossy(&raw);
        let Some((l, p)) = raw.split_once(':') else { return false };
        self.cfg.users.iter().any(|(ul, up)| ul == l && up == p)
    }

    fn system_json(&self, st: &State, id: &str) -> Value {
        let spec = &self.cfg.spec;
        let uri = format!("{ROOT}/Systems/{id}");
        let mut reset = json!({"target": format!("{uri}/Actions/ComputerSystem.Reset")});
        if spec.action_info {
            reset["@Redfish.ActionInfo"] = json!(format!("{uri}/ResetActionInfo"));
        } else {
            reset["ResetType@Redfish.AllowableValues"] = json!(spec.allowed);
        }
        let on = st.power.get(id).copied().unwrap_or(false);
        json!({
            "@odata.id": uri, "@odata.type": "#ComputerSystem.v1_10_0.ComputerSystem",
            "@odata.etag": self.etag(st), "Id": id, "Name": "System",
            "Manufacturer": spec.manufacturer, "Model": spec.model, "AssetTag": st.asset_tag,
            "SystemType": "Physical", "PowerState": if on { "On" } else { "Off" },
            "Status": {"State": "Enabled", "Health": "OK"},
            "Actions": {"#ComputerSystem.Reset": reset},
        })
    }

    fn task_json(&self, t: &Task) -> Value {
        let state = if !t.applied {
            "Running"
        } else if self.cfg.task_fails {
            "Exception"
        } else {
            "Completed"
        };
        let msg = if state == "Exception" { "The reset could not be completed." } else { "Successfully Completed Request" };
        json!({
            "@odata.id": format!("{ROOT}/TaskService/Tasks/{}", t.id), "@odata.type": "#Task.v1_4_1.Task",
            "Id": t.id.to_string(), "Name": format!("ComputerSystem.Reset {}", t.reset),
            "TaskState": state, "TaskStatus": if state == "Exception" { "Critical" } else { "OK" },
            "Messages": if state == "Running" { json!([]) } else { json!([{"Message": msg}]) },
        })
    }

    /// The whole service: one request in, one answer out.
    fn handle(&self, req: &Request) -> Response {
        let mut st = self.st.lock().unwrap_or_else(|p| p.into_inner());
        self.advance(&mut st);
        let path = req.path.split('?').next().unwrap_or("").trim_end_matches('/').to_string();
        let m = req.method.as_str();
        let spec = &self.cfg.spec;
        // unauthenticated: the service root, and the session login
        if m == "GET" && (path == "/redfish" || path.is_empty()) {
            return reply(200, json!({"v1": "/redfish/v1/"}));
        }
        if m == "GET" && path == ROOT {
            let mut root = json!({
                "@odata.id": ROOT, "@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot", "Id": "RootService",
                "Name": spec.root_name, "RedfishVersion": "1.6.0",
                "Systems": {"@odata.id": format!("{ROOT}/Systems")},
            });
            if spec.sessions {
                root["SessionService"] = json!({"@odata.id": format!("{ROOT}/SessionService")});
                root["Links"] = json!({"Sessions": {"@odata.id": SESSIONS}});
            }
            if spec.reset_answer == ResetAnswer::AcceptedTask {
                root["Tasks"] = json!({"@odata.id": format!("{ROOT}/TaskService")});
            }
            if self.cfg.profile == Profile::Ilo5 {
                root["Oem"] = json!({"Hpe": {"Manager": [{"ManagerType": "iLO 5", "ManagerFirmwareVersion": "2.46"}]}});
            }
            return reply(200, root);
        }
        if spec.sessions && m == "POST" && path == SESSIONS {
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let user = body.get("UserName").and_then(Value::as_str).unwrap_or("");
            let pass = body.get("Password").and_then(Value::as_str).unwrap_or("");
            if !self.cfg.users.iter().any(|(l, p)| l == user && p == pass) {
                st.log.push(format!("SESSION refused for {user:?} (bad credentials)"));
                return base_error(401, "NoValidSession", "Invalid user name or password.");
            }
            if self.cfg.sessions_refused {
                st.log.push("SESSION refused by policy".into());
                return base_error(403, "InsufficientPrivilege", "Session login is disabled by policy; use basic authentication.");
            }
            st.next_id += 1;
            st.sessions_created += 1;
            let id = st.next_id;
            let token: String = {
                use rand::Rng;
                let mut r = rand::thread_rng();
                (0..32).map(|_| format!("{:x}", r.gen_range(0..16u8))).collect()
            };
            st.sessions.insert(id, token.clone());
            let uri = format!("{SESSIONS}/{id}");
            st.log.push(format!("SESSION {id} opened for {user}"));
            let mut r = reply(201, json!({"@odata.id": uri, "Id": id.to_string(), "UserName": user}));
            r.headers.push(("X-Auth-Token".into(), token));
            r.headers.push(("Location".into(), uri));
            return r;
        }
        if !self.authorized(&st, req) {
            let mut r = base_error(401, "NoValidSession", "There is no valid session established with the implementation.");
            r.headers.push(("WWW-Authenticate".into(), "Basic realm=\"Redfish\"".into()));
            return r;
        }
        if spec.sessions {
            if m == "GET" && path == format!("{ROOT}/SessionService") {
                return reply(200, json!({"@odata.id": format!("{ROOT}/SessionService"), "ServiceEnabled": true,
                    "SessionTimeout": 1800, "Sessions": {"@odata.id": SESSIONS}}));
            }
            if m == "GET" && path == SESSIONS {
                let members: Vec<Value> = st.sessions.keys().map(|id| json!({"@odata.id": format!("{SESSIONS}/{id}")})).collect();
                return reply(200, json!({"@odata.id": SESSIONS, "Members@odata.count": members.len(), "Members": members}));
            }
            if let Some(id) = path.strip_prefix(&format!("{SESSIONS}/")).and_then(|s| s.parse::<u32>().ok()) {
                if m == "DELETE" {
                    return match st.sessions.remove(&id) {
                        Some(_) => {
                            st.log.push(format!("SESSION {id} closed"));
                            Response { status: 204, headers: Vec::new(), body: None }
                        }
                        None => base_error(404, "ResourceMissingAtURI", "No such session."),
                    };
                }
            }
        }
        if m == "GET" && path == format!("{ROOT}/Systems") {
            let members: Vec<Value> =
                self.system_ids().iter().map(|id| json!({"@odata.id": format!("{ROOT}/Systems/{id}")})).collect();
            return reply(200, json!({"@odata.id": format!("{ROOT}/Systems"), "Name": "Computer System Collection",
                "Members@odata.count": members.len(), "Members": members}));
        }
        if let Some(n) = path.strip_prefix(&format!("{ROOT}/TaskService/Tasks/")).and_then(|s| s.parse::<u32>().ok()) {
            if m == "GET" {
                if let Some(t) = st.tasks.iter().find(|t| t.id == n) {
                    return reply(200, self.task_json(t));
                }
            }
            return base_error(404, "ResourceMissingAtURI", "No such task.");
        }
        for id in self.system_ids() {
            let uri = format!("{ROOT}/Systems/{id}");
            if path == uri {
                return match m {
                    "GET" => {
                        let mut r = reply(200, self.system_json(&st, &id));
                        r.headers.push(("ETag".into(), self.etag(&st)));
                        r
                    }
                    "PATCH" => self.patch_system(&mut st, req, &id),
                    _ => base_error(405, "ActionNotSupported", "Method not allowed on the system resource."),
                };
            }
            if spec.action_info && m == "GET" && path == format!("{uri}/ResetActionInfo") {
                return reply(200, json!({"@odata.id": format!("{uri}/ResetActionInfo"), "@odata.type": "#ActionInfo.v1_1_2.ActionInfo",
                    "Id": "ResetActionInfo", "Name": "Reset Action Info",
                    "Parameters": [{"Name": "ResetType", "Required": true, "DataType": "String", "AllowableValues": spec.allowed}]}));
            }
            if m == "POST" && path == format!("{uri}/Actions/ComputerSystem.Reset") {
                return self.reset(&mut st, req, &id);
            }
        }
        base_error(404, "ResourceMissingAtURI", &format!("The resource at the URI {} was not found.", req.path))
    }

    fn patch_system(&self, st: &mut State, req: &Request, _id: &str) -> Response {
        if let Some(want) = req.header("If-Match") {
            if want != "*" && want != self.etag(st) {
                return base_error(412, "PreconditionFailed", "The ETag supplied did not match the ETag required to change this resource.");
            }
        }
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        match body.get("AssetTag").and_then(Value::as_str) {
            Some(tag) => {
                st.asset_tag = tag.to_string();
                st.etag += 1;
                Response { status: 204, headers: vec![("ETag".into(), self.etag(st))], body: None }
            }
            None => base_error(400, "PropertyNotWritable", "Only AssetTag can be changed here."),
        }
    }

    fn reset(&self, st: &mut State, req: &Request, id: &str) -> Response {
        let spec = &self.cfg.spec;
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let Some(kind) = body.get("ResetType").and_then(Value::as_str) else {
            return base_error(400, "ActionParameterMissing", "The action ComputerSystem.Reset requires the parameter ResetType to be present in the request body.");
        };
        st.log.push(format!("RESET {id} {kind}"));
        if !spec.allowed.iter().any(|a| a == kind) || self.cfg.refuse.iter().any(|r| r == kind) {
            st.log.push(format!("RESET {id} {kind} refused (400)"));
            return base_error(
                400,
                "ActionParameterValueNotInList",
                &format!(
                    "The value {kind} for the parameter ResetType in the action ComputerSystem.Reset is not in the list of acceptable values: {}.",
                    spec.allowed.iter().filter(|a| !self.cfg.refuse.contains(a)).cloned().collect::<Vec<_>>().join(", ")
                ),
            );
        }
        let on = st.power.get(id).copied().unwrap_or(false);
        let pointless = match kind {
            "On" | "ForceOn" => on,
            "ForceOff" | "GracefulShutdown" | "ForceRestart" | "GracefulRestart" | "PowerCycle" | "Nmi" => !on,
            _ => false,
        };
        if spec.state_checks && pointless {
            st.log.push(format!("RESET {id} {kind} refused (400, power is {})", if on { "on" } else { "off" }));
            let arg = if on { "Power is on" } else { "Power is off" };
            return reply(400, json!({"error": {"code": "iLO.0.10.ExtendedInfo",
                "message": "See @Message.ExtendedInfo for more information.",
                "@Message.ExtendedInfo": [{"MessageId": "iLO.2.15.InvalidOperationForSystemState", "MessageArgs": [arg]}]}}));
        }
        st.resets.push(kind.to_string());
        st.etag += 1;
        match spec.reset_answer {
            ResetAnswer::AcceptedTask => {
                st.next_id += 1;
                let t = Task {
                    id: st.next_id,
                    system: id.to_string(),
                    reset: kind.to_string(),
                    done_at: Instant::now() + self.cfg.task_delay,
                    applied: false,
                };
                let uri = format!("{ROOT}/TaskService/Tasks/{}", t.id);
                let mut r = reply(202, self.task_json(&t));
                st.tasks.push(t);
                r.headers.push(("Location".into(), uri));
                r
            }
            other => {
                apply_reset(st, id, kind);
                let ok = "Successfully Completed Request";
                match other {
                    ResetAnswer::Ok200Ilo => reply(200, json!({"error": {"code": "iLO.0.10.ExtendedInfo",
                        "message": "See @Message.ExtendedInfo for more information.",
                        "@Message.ExtendedInfo": [{"MessageId": "Base.1.4.Success"}]}})),
                    ResetAnswer::Ok200Success => reply(200, json!({"@Message.ExtendedInfo": [{"MessageId": "Base.1.8.1.Success",
                        "Message": ok, "Severity": "OK", "Resolution": "None"}]})),
                    _ => Response { status: 204, headers: Vec::new(), body: None },
                }
            }
        }
    }
}

/// What a ResetType does to the (simulated) power. A graceful shutdown is modelled as
/// succeeding (the simulated OS always cooperates).
fn apply_reset(st: &mut State, id: &str, kind: &str) {
    let before = st.power.get(id).copied().unwrap_or(false);
    let after = match kind {
        "On" | "ForceOn" | "ForceRestart" | "GracefulRestart" | "PowerCycle" => true,
        "ForceOff" | "GracefulShutdown" => false,
        "PushPowerButton" => !before,
        _ => before,
    };
    st.power.insert(id.to_string(), after);
    st.log.push(format!("POWER {id} {} -> {}", if before { "on" } else { "off" }, if after { "on" } else { "off" }));
}

/// A running simulator; stops (and closes its port) when dropped.
pub struct RedfishSim {
    listener: TlsListener,
    shared: Arc<Shared>,
}

impl RedfishSim {
    /// Bind, make the certificate, and serve in background threads.
    pub fn start(cfg: RedfishSimConfig) -> Result<RedfishSim> {
        let mut st = empty_state();
        st.etag = 0x1C21_0906;
        for n in 0..=cfg.extra_systems {
            let id = if n == 0 { cfg.spec.system_id.clone() } else { format!("{}-{}", cfg.spec.system_id, n + 1) };
            st.power.insert(id, cfg.initial_on);
        }
        let shared = Arc::new(Shared { cfg: cfg.clone(), st: Mutex::new(st) });
        let sh = shared.clone();
        let listener =
            TlsListener::start(cfg.bind, "redfish-sim", Duration::from_secs(10), move |tls, _stop| serve_connection(tls, &sh))?;
        if let Some(dir) = &cfg.state_dir {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            std::fs::write(dir.join("cert.pem"), listener.cert_pem())
                .with_context(|| format!("writing {}/cert.pem", dir.display()))?;
        }
        shared.st.lock().unwrap_or_else(|p| p.into_inner()).log.insert(0, format!("START {:?} on {}", cfg.profile, listener.addr()));
        Ok(RedfishSim { listener, shared })
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
    /// The profile's facts.
    pub fn spec(&self) -> &ProfileSpec {
        &self.shared.cfg.spec
    }
    /// The path of the (first) system.
    pub fn system_uri(&self) -> String {
        format!("{ROOT}/Systems/{}", self.shared.cfg.spec.system_id)
    }
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut st = self.shared.st.lock().unwrap_or_else(|p| p.into_inner());
        self.shared.advance(&mut st);
        f(&mut st)
    }
    /// The real power state of the (first) system (true = on).
    pub fn power_on(&self) -> bool {
        let id = self.shared.cfg.spec.system_id.clone();
        self.with(|st| st.power.get(&id).copied().unwrap_or(false))
    }
    /// Set the power directly (as if someone pressed the real button).
    pub fn set_power(&self, on: bool) {
        let id = self.shared.cfg.spec.system_id.clone();
        self.with(|st| {
            st.power.insert(id, on);
        })
    }
    /// Sessions open now.
    pub fn open_sessions(&self) -> usize {
        self.with(|st| st.sessions.len())
    }
    /// End every session (as a session timeout or a BMC reset does); clients get 401.
    pub fn expire_sessions(&self) {
        self.with(|st| {
            st.sessions.clear();
            st.log.push("SESSIONS expired".into());
        })
    }
    /// Sessions created since the start.
    pub fn sessions_created(&self) -> u32 {
        self.with(|st| st.sessions_created)
    }
    /// The ResetType values accepted so far, in order.
    pub fn resets(&self) -> Vec<String> {
        self.with(|st| st.resets.clone())
    }
    /// The log so far (sessions, resets, power changes).
    pub fn log(&self) -> String {
        self.with(|st| st.log.join("\n"))
    }
    pub fn stop(&mut self) {
        self.listener.stop();
    }
}

fn empty_state() -> State {
    State {
        power: BTreeMap::new(),
        sessions: BTreeMap::new(),
        next_id: 0,
        sessions_created: 0,
        tasks: Vec::new(),
        etag: 0,
        asset_tag: String::new(),
        log: Vec::new(),
        resets: Vec::new(),
    }
}

/// One connection: TLS, one HTTP request, one answer, close.
fn serve_connection(mut tls: ServerStream, sh: &Shared) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(15);
    let req = loop {
        if Instant::now() > deadline || buf.len() > 1 << 20 {
            return;
        }
        match tls.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return,
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Request::new(&mut headers);
        let Ok(httparse::Status::Complete(head)) = r.parse(&buf) else { continue };
        let hdrs: Vec<(String, String)> =
            r.headers.iter().map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).trim().to_string())).collect();
        let len = hdrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        if buf.len() - head < len {
            continue;
        }
        break Request {
            method: r.method.unwrap_or("").to_string(),
            path: r.path.unwrap_or("").to_string(),
            headers: hdrs,
            body: buf[head..head + len].to_vec(),
        };
    };
    let resp = sh.handle(&req);
    {
        let mut st = sh.st.lock().unwrap_or_else(|p| p.into_inner());
        st.log.push(format!("{} {} {}", req.method, req.path, resp.status));
    }
    let body = resp.body.as_ref().map(|b| serde_json::to_vec_pretty(b).unwrap_or_default()).unwrap_or_default();
    let mut head = format!("HTTP/1.1 {} {}\r\nConnection: close\r\nOData-Version: 4.0\r\n", resp.status, reason(resp.status));
    if resp.body.is_some() {
        head.push_str("Content-Type: application/json; charset=utf-8\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    let _ = tls.write_all(&out);
    let _ = tls.flush();
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(p: Profile) -> Shared {
        let cfg = RedfishSimConfig::new(p);
        let mut st = empty_state();
        st.power.insert(cfg.spec.system_id.clone(), true);
        Shared { cfg, st: Mutex::new(st) }
    }

    fn req(method: &str, path: &str, body: &str, auth: bool) -> Request {
        let mut headers = Vec::new();
        if auth {
            headers.push(("Authorization".to_string(), "Basic YWRtaW46c2VjcmV0".to_string())); // admin:secret
        }
        Request { method: method.into(), path: path.into(), headers, body: body.as_bytes().to_vec() }
    }

    #[test]
    fn disallowed_value_is_400_naming_allowed() {
        let sh = shared(Profile::Ilo5);
        let r = sh.handle(&req("POST", "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset", r#"{"ResetType":"PowerCycle"}"#, true));
        assert_eq!(r.status, 400);
        let text = r.body.unwrap().to_string();
        assert!(text.contains("ActionParameterValueNotInList") && text.contains("ForceOff"), "{text}");
        let r = sh.handle(&req("POST", "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset", r#"{"ResetType":"ForceOff"}"#, true));
        assert_eq!(r.status, 200);
        assert!(!sh.st.lock().unwrap().power["1"]);
    }

    #[test]
    fn auth_root_open_rest_closed() {
        let sh = shared(Profile::Openbmc);
        assert_eq!(sh.handle(&req("GET", "/redfish/v1/", "", false)).status, 200);
        assert_eq!(sh.handle(&req("GET", "/redfish/v1/Systems", "", false)).status, 401);
        assert_eq!(sh.handle(&req("GET", "/redfish/v1/Systems/system/ResetActionInfo", "", true)).status, 200);
        let r = sh.handle(&req("POST", SESSIONS, r#"{"UserName":"admin","Password":"secret"}"#, false));
        assert_eq!(r.status, 201);
        let tok = r.headers.iter().find(|(k, _)| k == "X-Auth-Token").unwrap().1.clone();
        let mut g = req("GET", "/redfish/v1/Systems/system", "", false);
        g.headers.push(("X-Auth-Token".into(), tok.clone()));
        assert_eq!(sh.handle(&g).status, 200);
        let mut d = req("DELETE", &format!("{SESSIONS}/1"), "", false);
        d.headers.push(("X-Auth-Token".into(), tok));
        assert_eq!(sh.handle(&d).status, 204);
        assert!(sh.st.lock().unwrap().sessions.is_empty());
    }

    #[test]
    fn etag_if_match() {
        let sh = shared(Profile::Idrac9);
        let mut p = req("PATCH", "/redfish/v1/Systems/System.Embedded.1", r#"{"AssetTag":"x"}"#, true);
        p.headers.push(("If-Match".into(), "\"stale\"".into()));
        assert_eq!(sh.handle(&p).status, 412);
        let etag = sh.handle(&req("GET", "/redfish/v1/Systems/System.Embedded.1", "", true)).headers[0].1.clone();
        p.headers.pop();
        p.headers.push(("If-Match".into(), etag));
        assert_eq!(sh.handle(&p).status, 204);
    }
}
