//! Append-only audit log of fencing actions: one JSON object per line. Secrets never reach it
//! (the engine's steps and reports carry device names and error texts only).
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub const DEFAULT_PATH: &str = "/var/log/twonode/fence.log";

pub struct AuditLog {
    path: Option<PathBuf>,
    run_id: String,
}

/// UTC timestamp like 2026-11-22T00:21:57.123Z.
pub fn utc_now() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = if month <= 2 { y + 1 } else { y };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

fn writable(path: &Path) -> bool {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::OpenOptions::new().create(true).append(true).open(path).is_ok()
}

impl AuditLog {
    /// Open the log at `path` (or the default). If it cannot be written, fall back to
    /// `$HOME/.local/state/twonode/fence.log` or `/tmp/twonode-fence-UID.log`, with a warning on
    /// stderr; if nothing can be written, warn and carry on without a log.
    pub fn open(path: Option<&Path>) -> AuditLog {
        let run_id = format!("{}-{}", std::process::id(), SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis());
        let wanted = path.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(DEFAULT_PATH));
        if writable(&wanted) {
            return AuditLog { path: Some(wanted), run_id };
        }
        let mut fallbacks = Vec::new();
        if let Some(home) = std::env::var_os("HOME") {
            fallbacks.push(PathBuf::from(home).join(".local/state/twonode/fence.log"));
        }
        fallbacks.push(PathBuf::from(format!("/tmp/twonode-fence-{}.log", nix::unistd::getuid())));
        for f in fallbacks {
            if writable(&f) {
                eprintln!(
                    "twonode: warning: cannot write the audit log {}; writing it to {} instead",
                    wanted.display(),
                    f.display()
                );
                return AuditLog { path: Some(f), run_id };
            }
        }
        eprintln!("twonode: warning: cannot write any audit log (tried {}); continuing without", wanted.display());
        AuditLog { path: None, run_id }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Append one record (`event` plus fields); adds time, run id, pid and user.
    pub fn append(&self, event: &str, fields: Value) {
        let Some(path) = &self.path else { return };
        let mut rec = json!({
            "time": utc_now(),
            "run": self.run_id,
            "pid": std::process::id(),
            "uid": nix::unistd::getuid().as_raw(),
            "event": event,
        });
        if let (Some(obj), Value::Object(extra)) = (rec.as_object_mut(), fields) {
            obj.extend(extra);
        }
        let line = format!("{rec}\n");
        match std::fs::OpenOptions::new().create(true).append(true).open(path) {
            Ok(mut f) => {
                if let Err(e) = f.write_all(line.as_bytes()) {
                    eprintln!("twonode: warning: audit log {}: {e}", path.display());
                }
            }
            Err(e) => eprintln!("twonode: warning: audit log {}: {e}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/fence.log");
        let log = AuditLog::open(Some(&p));
        log.append("start", json!({"node": "n2", "action": "off"}));
        log.append("outcome", json!({"node": "n2", "exit": 0}));
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "start");
        assert_eq!(lines[1]["exit"], 0);
        assert_eq!(lines[0]["run"], lines[1]["run"]);
        assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn timestamp_shape() {
        let t = utc_now();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.starts_with("20"));
    }
}
