//! Durable record of a recovery's executed steps, so an interrupted recovery resumes where it
//! stopped (`--resume`) and is never run twice.
//!
//! One file per resource, `<dir>/recover-<resource>.json`, rewritten atomically (temp file, fsync,
//! rename, fsync of the directory) before and after every step. While a recovery runs, an exclusive
//! flock on `<dir>/recover-<resource>.lock` keeps a second twonode from running the same recovery.
//! A finished journal is moved aside to `recover-<resource>.<time>.done.json`.
use super::recover::Plan;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Default journal directory on a node.
pub const DEFAULT_DIR: &str = "/var/lib/twonode";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: String,
    /// started | done | failed
    pub status: String,
    pub at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub argv: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl StepRecord {
    pub fn started(step: &str, node: &str, argv: &[String]) -> Self {
        StepRecord { step: step.into(), status: "started".into(), at_ms: now_ms(), node: Some(node.into()), argv: argv.to_vec(), note: String::new() }
    }
    pub fn done(step: &str, note: &str) -> Self {
        StepRecord { step: step.into(), status: "done".into(), at_ms: now_ms(), node: None, argv: vec![], note: note.into() }
    }
    pub fn failed(step: &str, note: &str) -> Self {
        StepRecord { step: step.into(), status: "failed".into(), at_ms: now_ms(), node: None, argv: vec![], note: note.into() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalData {
    pub resource: String,
    pub plan: Plan,
    pub started_at_ms: u64,
    pub finished: bool,
    pub records: Vec<StepRecord>,
}

/// An open journal, holding the recovery lock.
pub struct Journal {
    path: PathBuf,
    pub data: JournalData,
    _lock: Option<nix::fcntl::Flock<File>>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish()
    }
}

fn safe_name(resource: &str) -> String {
    resource.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' }).collect()
}

pub fn path_for(dir: &Path, resource: &str) -> PathBuf {
    dir.join(format!("recover-{}.json", safe_name(resource)))
}

fn lock(dir: &Path, resource: &str) -> Result<nix::fcntl::Flock<File>> {
    use nix::fcntl::{Flock, FlockArg};
    std::fs::create_dir_all(dir).with_context(|| format!("creating journal directory {}", dir.display()))?;
    let p = dir.join(format!("recover-{}.lock", safe_name(resource)));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .with_context(|| format!("opening {}", p.display()))?;
    Flock::lock(f, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        anyhow::anyhow!("another twonode is recovering {resource} right now (lock {} held: {e}); wait for it to finish", p.display())
    })
}

fn write_atomic(path: &Path, data: &JournalData) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut f = File::create(&tmp).with_context(|| format!("writing journal {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec_pretty(data)?)?;
    f.sync_all().with_context(|| format!("fsync {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, path).with_context(|| format!("renaming onto {}", path.display()))?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

impl Journal {
    /// Read the unfinished journal of `resource`, if any (without locking).
    pub fn peek(dir: &Path, resource: &str) -> Result<Option<JournalData>> {
        let p = path_for(dir, resource);
        match std::fs::read(&p) {
            Ok(b) => {
                let d: JournalData = serde_json::from_slice(&b)
                    .with_context(|| format!("journal {} is damaged; move it aside after checking the nodes by hand", p.display()))?;
                Ok(Some(d))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
        }
    }

    /// Start a new journal for `plan`. Refuses when an unfinished one exists.
    pub fn create(dir: &Path, plan: &Plan) -> Result<Journal> {
        let l = lock(dir, &plan.resource)?;
        let path = path_for(dir, &plan.resource);
        if let Some(old) = Self::peek(dir, &plan.resource)? {
            if !old.finished {
                bail!(
                    "an interrupted recovery of {} (discarding {}) is recorded in {}: continue it with --resume; \
                     never start a second one on top",
                    old.resource,
                    old.plan.victim,
                    path.display()
                );
            }
        }
        let data = JournalData { resource: plan.resource.clone(), plan: plan.clone(), started_at_ms: now_ms(), finished: false, records: vec![] };
        write_atomic(&path, &data)?;
        Ok(Journal { path, data, _lock: Some(l) })
    }

    /// Open the unfinished journal to resume it.
    pub fn resume(dir: &Path, resource: &str) -> Result<Journal> {
        let l = lock(dir, resource)?;
        let path = path_for(dir, resource);
        match Self::peek(dir, resource)? {
            Some(d) if !d.finished => Ok(Journal { path, data: d, _lock: Some(l) }),
            _ => bail!("no interrupted recovery of {resource} to resume (no journal at {})", path.display()),
        }
    }

    /// A journal that lives in memory only (dry runs, unit tests).
    pub fn in_memory(plan: &Plan) -> Journal {
        Journal {
            path: PathBuf::new(),
            data: JournalData { resource: plan.resource.clone(), plan: plan.clone(), started_at_ms: now_ms(), finished: false, records: vec![] },
            _lock: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn save(&self) -> Result<()> {
        if self.path.as_os_str().is_empty() {
            return Ok(());
        }
        write_atomic(&self.path, &self.data)
    }

    pub fn record(&mut self, r: StepRecord) -> Result<()> {
        self.data.records.push(r);
        self.save()
    }

    fn last(&self, step: &str) -> Option<&StepRecord> {
        self.data.records.iter().rev().find(|r| r.step == step)
    }

    pub fn is_done(&self, step: &str) -> bool {
        self.last(step).map(|r| r.status == "done").unwrap_or(false)
    }

    /// The step ran (or may have run) but is not verified done.
    pub fn is_started(&self, step: &str) -> bool {
        self.last(step).map(|r| r.status != "done").unwrap_or(false)
    }

    /// Mark finished and move the file aside.
    pub fn finish(&mut self) -> Result<()> {
        self.data.finished = true;
        self.save()?;
        if !self.path.as_os_str().is_empty() {
            let done = self.path.with_extension(format!("{}.done.json", now_ms()));
            std::fs::rename(&self.path, &done).with_context(|| format!("archiving {}", self.path.display()))?;
            self.path = done;
        }
        Ok(())
    }
}
