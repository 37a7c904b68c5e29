//! Any installed fence agent (fence_apc, fence_ilo, fence_ipmilan, ...) as a `PowerDevice`: run with
//! no arguments and `key=value` lines on stdin, the convention every fence agent understands, so a
//! password never appears in any process's argv. Exit codes: 0 ok (status: on), 2 status off,
//! anything else a failure; the agent's own message is kept in the error.
use super::power::{PowerDevice, PowerError, PowerState};
use super::spec::{DeviceSpec, Timing};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Keys that are ours, or that the engine handles itself, and are not passed to the agent.
const NOT_PASSED: &[&str] = &["agent", "twonode_driver", "delay", "action", "nodename", "method"];

/// Directories searched for an agent named without a path.
const AGENT_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/usr/local/sbin"];

/// Find the agent executable. Names must look like fence agents (`fence_...`); a path is taken as is.
pub fn find_agent(agent: &str) -> Result<PathBuf, PowerError> {
    if agent.contains('/') {
        let p = PathBuf::from(agent);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(PowerError::Config(format!("fence agent {agent} does not exist")))
        };
    }
    if !agent.starts_with("fence_") || !agent.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(PowerError::Config(format!(
            "agent=\"{agent}\" is not a fence agent name (expected fence_<something>)"
        )));
    }
    let path_dirs: Vec<PathBuf> = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    for d in AGENT_DIRS.iter().map(PathBuf::from).chain(path_dirs) {
        let p = d.join(agent);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(PowerError::Config(format!(
        "fence agent {agent} is not installed (looked in {} and $PATH); install fence-agents",
        AGENT_DIRS.join(", ")
    )))
}

/// The stdin an agent gets for `action` (pure; tested).
pub fn stdin_for(params: &std::collections::BTreeMap<String, String>, action: &str) -> String {
    let mut s = String::new();
    for (k, v) in params {
        if NOT_PASSED.contains(&k.as_str()) || k.starts_with("twonode_") {
            continue;
        }
        // One line per key: a newline inside a value would inject another key.
        let v = v.replace(['\n', '\r'], " ");
        s.push_str(&format!("{k}={v}\n"));
    }
    s.push_str(&format!("action={action}\n"));
    s
}

/// Interpretation of an agent's exit for `action` (pure; tested).
pub fn interpret(action: &str, code: Option<i32>, stderr: &str, agent: &str) -> Result<Option<PowerState>, PowerError> {
    let msg = || {
        let last = stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .rfind(|l| !l.contains("Parse error") || l.contains("Failed"))
            .unwrap_or("")
            .trim()
            .to_string();
        if last.is_empty() {
            format!("{agent} {action} failed (exit {})", code.map(|c| c.to_string()).unwrap_or("by signal".into()))
        } else {
            format!("{agent} {action} failed (exit {}): {last}", code.map(|c| c.to_string()).unwrap_or("by signal".into()))
        }
    };
    match (action, code) {
        ("status", Some(0)) => Ok(Some(PowerState::On)),
        ("status", Some(2)) => Ok(Some(PowerState::Off)),
        (_, Some(0)) => Ok(None),
        _ => {
            let text = stderr.to_ascii_lowercase();
            let m = msg();
            Err(if text.contains("unable to connect") || text.contains("connection refused") {
                PowerError::Unreachable(m)
            } else if text.contains("login") || text.contains("password") || text.contains("authenticat") {
                PowerError::Auth(m)
            } else if text.contains("timed out") || text.contains("timeout") {
                PowerError::Timeout(m)
            } else {
                PowerError::Protocol(m)
            })
        }
    }
}

pub struct ExternalAgent {
    name: String,
    path: PathBuf,
    params: std::collections::BTreeMap<String, String>,
    /// Kill the agent after this long.
    limit: Duration,
    /// The pid of the last agent started (for tests that inspect /proc).
    pub last_pid: Option<u32>,
}

impl ExternalAgent {
    pub fn new(dev: &DeviceSpec, timing: &Timing) -> Result<Self, PowerError> {
        let path = find_agent(dev.agent())?;
        // The agent polls on its own (power_wait + power_timeout) after on/off; allow for that.
        let limit = timing.login_timeout + timing.power_wait + timing.power_timeout + Duration::from_secs(30);
        Ok(ExternalAgent { name: dev.name.clone(), path, params: dev.params.clone(), limit, last_pid: None })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run the agent for `action`; returns the interpreted outcome.
    pub fn run(&mut self, action: &str) -> Result<Option<PowerState>, PowerError> {
        let input = stdin_for(&self.params, action);
        let agent = self.path.display().to_string();
        let mut child = Command::new(&self.path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| PowerError::Config(format!("cannot start {agent}: {e}")))?;
        self.last_pid = Some(child.id());
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input.as_bytes());
        }
        let mut out = child.stdout.take();
        let mut err = child.stderr.take();
        let out_t = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(o) = out.as_mut() {
                let _ = o.read_to_string(&mut s);
            }
            s
        });
        let err_t = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(e) = err.as_mut() {
                let _ = e.read_to_string(&mut s);
            }
            s
        });
        let start = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break Some(st),
                Ok(None) if start.elapsed() > self.limit => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(PowerError::Protocol(format!("waiting for {agent}: {e}"))),
            }
        };
        let stdout = out_t.join().unwrap_or_default();
        let stderr = err_t.join().unwrap_or_default();
        tracing::debug!("{agent} {action}: stdout {stdout:?} stderr {stderr:?}");
        let Some(status) = status else {
            return Err(PowerError::Timeout(format!(
                "{agent} {action} did not finish within {:.0}s; killed",
                self.limit.as_secs_f64()
            )));
        };
        let both = format!("{stderr}\n{stdout}");
        interpret(action, status.code(), &both, &agent)
    }
}

impl PowerDevice for ExternalAgent {
    fn describe(&self) -> String {
        format!("external agent {} for {}", self.path.display(), self.name)
    }
    fn status(&mut self) -> Result<PowerState, PowerError> {
        match self.run("status")? {
            Some(s) => Ok(s),
            None => Err(PowerError::Protocol(format!("{} status gave no state", self.path.display()))),
        }
    }
    fn power_on(&mut self) -> Result<(), PowerError> {
        self.run("on").map(|_| ())
    }
    fn power_off(&mut self) -> Result<(), PowerError> {
        self.run("off").map(|_| ())
    }
    fn power_cycle(&mut self) -> Result<(), PowerError> {
        Err(PowerError::NotSupported(format!(
            "{}: cycle through an external agent is not offered; use method onoff",
            self.path.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn stdin_has_params_and_action_but_not_ours() {
        let mut p = BTreeMap::new();
        p.insert("ipaddr".to_string(), "10.0.0.1".to_string());
        p.insert("passwd".to_string(), "a\nb=c".to_string());
        p.insert("agent".to_string(), "fence_x".to_string());
        p.insert("twonode_driver".to_string(), "external".to_string());
        p.insert("delay".to_string(), "10".to_string());
        let s = stdin_for(&p, "status");
        assert_eq!(s, "ipaddr=10.0.0.1\npasswd=a b=c\naction=status\n");
    }

    #[test]
    fn exit_codes() {
        assert_eq!(interpret("status", Some(0), "", "a").unwrap(), Some(PowerState::On));
        assert_eq!(interpret("status", Some(2), "", "a").unwrap(), Some(PowerState::Off));
        assert_eq!(interpret("off", Some(0), "", "a").unwrap(), None);
        assert!(matches!(interpret("off", Some(1), "Failed: Unable to connect", "a"), Err(PowerError::Unreachable(_))));
        assert!(matches!(interpret("on", Some(1), "whatever", "a"), Err(PowerError::Protocol(_))));
        assert!(matches!(interpret("status", Some(1), "Unable to obtain correct plug status", "a"), Err(PowerError::Protocol(_))));
    }

    #[test]
    fn agent_names_are_checked() {
        assert!(matches!(find_agent("rm -rf"), Err(PowerError::Config(_))));
        assert!(matches!(find_agent("fence_does_not_exist_here"), Err(PowerError::Config(_))));
    }
}
