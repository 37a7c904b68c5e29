//! Redfish power driver (iLO 5+, iDRAC, and every modern BMC): what fence_redfish does, over
//! HTTPS with basic authentication.
//!
//! GET `redfish_uri` (default /redfish/v1) → `Systems` collection → its one member (or
//! `systems_uri` given), read `PowerState`, POST the `#ComputerSystem.Reset` target with
//! `ResetType` On / ForceOff / ForceRestart (PowerCycle when the system lists it).
//! Where fence_redfish silently takes the last of several systems, twonode refuses and lists
//! them: fencing the wrong machine is worse than not fencing.
use super::power::{PowerDevice, PowerError, PowerState};
use super::config::{flag, WebBmc, WebKind};
use super::options;
use super::spec::Timing;
use super::tls;
use base64::Engine;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

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
    reset_target: Option<String>,
    reset_types: Vec<String>,
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
            reset_target: None,
            reset_types: Vec::new(),
        })
    }

    fn name(&self) -> String {
        format!("Redfish {}:{}", self.host, self.port)
    }

    fn auth_header(&self) -> String {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.login, self.password));
        format!("Basic {token}")
    }

    fn request(&self, method: &str, path: &str, body: Option<&Value>, timeout: Duration) -> Result<Value, PowerError> {
        let what = format!("{} {method} {path}", self.name());
        let mut headers: Vec<(&str, String)> = vec![
            ("Authorization", self.auth_header()),
            ("Accept", "application/json".into()),
            ("OData-Version", "4.0".into()),
        ];
        let bytes = match body {
            Some(b) => {
                headers.push(("Content-Type", "application/json".into()));
                serde_json::to_vec(b).map_err(|e| PowerError::Protocol(format!("{what}: {e}")))?
            }
            None => Vec::new(),
        };
        let resp = tls::https_request(&self.host, self.port, &self.tls, self.login_timeout, timeout, method, path, &headers, &bytes)?;
        let json: Value = if resp.body.iter().all(|b| b.is_ascii_whitespace()) {
            Value::Null
        } else {
            serde_json::from_slice(&resp.body).unwrap_or(Value::Null)
        };
        let detail = || {
            json.pointer("/error/@Message.ExtendedInfo/0/Message")
                .or_else(|| json.pointer("/error/message"))
                .and_then(Value::as_str)
                .map(|s| format!(": {s}"))
                .unwrap_or_default()
        };
        match resp.status {
            200..=299 => Ok(json),
            401 => Err(PowerError::Auth(format!(
                "{what}: HTTP 401: the BMC rejected user {:?}: check login and passwd",
                self.login
            ))),
            403 => Err(PowerError::Auth(format!(
                "{what}: HTTP 403: user {:?} may not do this (needs the power-control privilege){}",
                self.login,
                detail()
            ))),
            404 => Err(PowerError::Config(format!(
                "{what}: HTTP 404: no such resource: check redfish_uri / systems_uri{}",
                detail()
            ))),
            s => Err(PowerError::Protocol(format!("{what}: HTTP {s} {}{}", resp.reason, detail()))),
        }
    }

    /// The system resource path: systems_uri, or the one member of the Systems collection.
    pub fn system_uri(&mut self) -> Result<String, PowerError> {
        if let Some(s) = &self.systems_uri {
            return Ok(s.clone());
        }
        let root = self.request("GET", &self.redfish_uri.clone(), None, self.login_timeout)?;
        let systems = root
            .pointer("/Systems/@odata.id")
            .and_then(Value::as_str)
            .ok_or_else(|| PowerError::Protocol(format!("{}: service root {} has no Systems", self.name(), self.redfish_uri)))?
            .to_string();
        let coll = self.request("GET", &systems, None, self.login_timeout)?;
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
                "{}: {systems} lists {} systems ({}): say which one with systems_uri=",
                self.name(),
                many.len(),
                many.join(", ")
            ))),
        }
    }

    fn system(&mut self) -> Result<Value, PowerError> {
        let uri = self.system_uri()?;
        let sys = self.request("GET", &uri, None, self.login_timeout)?;
        if let Some(t) = sys.pointer("/Actions/#ComputerSystem.Reset/target").and_then(Value::as_str) {
            self.reset_target = Some(t.to_string());
        }
        if let Some(a) = sys
            .pointer("/Actions/#ComputerSystem.Reset/ResetType@Redfish.AllowableValues")
            .and_then(Value::as_array)
        {
            self.reset_types = a.iter().filter_map(|v| v.as_str().map(String::from)).collect();
        }
        Ok(sys)
    }

    fn reset(&mut self, kind: &str) -> Result<(), PowerError> {
        if self.reset_target.is_none() {
            self.system()?;
        }
        let target = self.reset_target.clone().ok_or_else(|| {
            PowerError::NotSupported(format!("{}: the system offers no #ComputerSystem.Reset action", self.name()))
        })?;
        if !self.reset_types.is_empty() && !self.reset_types.iter().any(|t| t == kind) {
            return Err(PowerError::NotSupported(format!(
                "{}: ResetType {kind} not offered (allowed: {})",
                self.name(),
                self.reset_types.join(", ")
            )));
        }
        let body = serde_json::json!({ "ResetType": kind });
        self.request("POST", &target, Some(&body), self.power_timeout.max(self.login_timeout)).map(|_| ())
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
        )
    }

    /// Find the system and authenticate (the fence test times this apart).
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
        self.reset("On")
    }

    fn power_off(&mut self) -> Result<(), PowerError> {
        self.reset("ForceOff")
    }

    fn power_cycle(&mut self) -> Result<(), PowerError> {
        if self.reset_target.is_none() {
            self.system()?;
        }
        if self.reset_types.iter().any(|t| t == "PowerCycle") {
            self.reset("PowerCycle")
        } else {
            self.reset("ForceRestart")
        }
    }

    fn login_timeout(&self) -> Duration {
        self.login_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_states() {
        assert_eq!(power_state_of("On"), Some(PowerState::On));
        assert_eq!(power_state_of("Off"), Some(PowerState::Off));
        assert_eq!(power_state_of("PoweringOn"), Some(PowerState::Off));
        assert_eq!(power_state_of("PoweringOff"), Some(PowerState::On));
        assert_eq!(power_state_of("Bogus"), None);
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
