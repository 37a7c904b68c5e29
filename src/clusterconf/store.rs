//! The file side of cluster.conf: staging in `cluster.conf.new`, an advisory lock around every
//! read-modify-write, compare-and-swap against the bytes an edit was made from, atomic replacement
//! (write temp, fsync, rename, fsync dir) that keeps the original mode and owner, a backup of the
//! live file on apply, and revert.
//!
//! The store knows nothing about XML: callers hand it bytes and closures that decide (validate,
//! compare versions). Killing the process at any instant leaves each file either complete-old or
//! complete-new, because bytes only ever reach the real name through `rename(2)`.
//!
//! Test hook: `TWONODE_TEST_PAUSE_MS=N` makes every atomic write sleep N ms after writing half of
//! the temporary file and again before the rename, so crash tests can kill the process mid-write.
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};

/// Errors of the file store, each with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "conflict: {path} changed since it was read (someone else edited it); nothing was written. \
         Re-run the command to edit the current version"
    )]
    Conflict { path: PathBuf },
    #[error("nothing staged: {path} does not exist (make an edit first, or use --in-place)")]
    NothingStaged { path: PathBuf },
    #[error("timed out after {secs}s waiting for the lock {path} (another twonode is editing; retry)")]
    LockTimeout { path: PathBuf, secs: u64 },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// Which file to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The live cluster.conf.
    Live,
    /// The staged `cluster.conf.new` (error if absent).
    Staged,
    /// What an edit starts from: the live file with `in_place`, else the staged file if it
    /// exists, else the live file.
    EditTarget { in_place: bool },
}

/// The bytes of a file as read, plus what is needed to detect a change underneath.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The file the bytes came from.
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    /// Where an edit made from this snapshot is written.
    pub target: PathBuf,
    /// The bytes of `target` at read time, when target differs from path (None: did not exist).
    target_seen: Option<Option<Vec<u8>>>,
}

/// What an edit did.
#[derive(Debug, Clone)]
pub struct EditOutcome {
    pub source: PathBuf,
    pub target: PathBuf,
    pub old: Vec<u8>,
    pub new: Vec<u8>,
}

/// What apply did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApplyOutcome {
    pub live: PathBuf,
    /// Copy of the previous live file, if there was one.
    pub backup: Option<PathBuf>,
    /// The reload hook's command, exit status and combined output, if a hook ran.
    pub hook: Option<HookOutcome>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct HookOutcome {
    pub command: String,
    pub success: bool,
    pub code: Option<i32>,
    pub output: String,
}

/// cluster.conf on disk: the live file and its staged twin.
#[derive(Debug, Clone)]
pub struct ConfStore {
    pub live: PathBuf,
    /// How long to wait for the advisory lock.
    pub lock_timeout: Duration,
}

/// The cluster.conf every command reads when given none: TWONODE_CLUSTER_CONF when set, else
/// /etc/pve/cluster.conf if present (Proxmox VE 2/3), else /etc/cluster/cluster.conf. The one place
/// this is worked out.
pub fn default_path() -> PathBuf {
    match std::env::var_os("TWONODE_CLUSTER_CONF").filter(|v| !v.is_empty()) {
        Some(v) => PathBuf::from(v),
        None => ConfStore::default_live(),
    }
}

impl ConfStore {
    pub fn new(live: impl Into<PathBuf>) -> Self {
        ConfStore { live: live.into(), lock_timeout: Duration::from_secs(10) }
    }

    /// The default live file: /etc/pve/cluster.conf if present, else /etc/cluster/cluster.conf
    /// (what [`default_path`] falls back to when TWONODE_CLUSTER_CONF is not set).
    pub fn default_live() -> PathBuf {
        let pve = PathBuf::from("/etc/pve/cluster.conf");
        if pve.exists() {
            pve
        } else {
            PathBuf::from("/etc/cluster/cluster.conf")
        }
    }

    /// `PATH.new`.
    pub fn staged(&self) -> PathBuf {
        with_suffix(&self.live, ".new")
    }

    /// `PATH.old`: the live file as it was before the last apply.
    pub fn backup_path(&self) -> PathBuf {
        with_suffix(&self.live, ".old")
    }

    fn lock_path(&self) -> PathBuf {
        let name = self.live.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        self.live.with_file_name(format!(".{name}.twonode-lock"))
    }

    /// Read a file (no lock: the snapshot is checked again when written back).
    pub fn read(&self, which: Which) -> Result<Snapshot, StoreError> {
        let staged = self.staged();
        let (path, target) = match which {
            Which::Live => (self.live.clone(), self.live.clone()),
            Which::Staged => {
                if !staged.exists() {
                    return Err(StoreError::NothingStaged { path: staged });
                }
                (staged.clone(), staged)
            }
            Which::EditTarget { in_place: true } => (self.live.clone(), self.live.clone()),
            Which::EditTarget { in_place: false } => {
                if staged.exists() {
                    (staged.clone(), staged)
                } else {
                    (self.live.clone(), staged)
                }
            }
        };
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        let target_seen = if target != path { Some(read_optional(&target)?) } else { None };
        Ok(Snapshot { path, bytes, target, target_seen })
    }

    /// Write `new` to the snapshot's target, but only if neither the source nor the target
    /// changed since the snapshot was taken (compare-and-swap under the lock).
    pub fn write_from(&self, snap: &Snapshot, new: &[u8]) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        self.check_unchanged(snap)?;
        let mode_from = if snap.target.exists() { &snap.target } else { &snap.path };
        atomic_write(&snap.target, new, Some(mode_from))
    }

    fn check_unchanged(&self, snap: &Snapshot) -> Result<(), StoreError> {
        let now = fs::read(&snap.path).map_err(io_err(&snap.path))?;
        if now != snap.bytes {
            return Err(StoreError::Conflict { path: snap.path.clone() });
        }
        if let Some(seen) = &snap.target_seen {
            if &read_optional(&snap.target)? != seen {
                return Err(StoreError::Conflict { path: snap.target.clone() });
            }
        }
        Ok(())
    }

    /// Read-modify-write under the lock: `f` gets the bytes of the edit source (see
    /// `Which::EditTarget`) and returns the new bytes, which are written atomically to the target.
    pub fn edit(
        &self,
        in_place: bool,
        f: impl FnOnce(&[u8]) -> anyhow::Result<Vec<u8>>,
    ) -> anyhow::Result<EditOutcome> {
        let _lock = self.lock()?;
        let snap = self.read(Which::EditTarget { in_place })?;
        let new = f(&snap.bytes)?;
        // Same lock held: nobody following the protocol can have changed it, but a plain editor
        // could have; the check costs one read.
        self.check_unchanged(&snap)?;
        let mode_from = if snap.target.exists() { &snap.target } else { &snap.path };
        atomic_write(&snap.target, &new, Some(mode_from))?;
        Ok(EditOutcome { source: snap.path, target: snap.target, old: snap.bytes, new })
    }

    /// Replace the live file by the staged one. `check(staged, live)` decides whether that is
    /// allowed (validation, version higher than live...); on success the previous live file is
    /// kept as `PATH.old`, the live file is replaced atomically, the staged file removed, and the
    /// reload hook (a shell command, e.g. `cman_tool version -r`) runs with TWONODE_CONF set.
    pub fn apply(
        &self,
        check: impl FnOnce(&[u8], Option<&[u8]>) -> anyhow::Result<()>,
        reload_hook: Option<&str>,
    ) -> anyhow::Result<ApplyOutcome> {
        let _lock = self.lock()?;
        let staged_path = self.staged();
        let staged = match fs::read(&staged_path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NothingStaged { path: staged_path }.into())
            }
            Err(e) => return Err(io_err(&staged_path)(e).into()),
        };
        let live = read_optional(&self.live)?;
        check(&staged, live.as_deref())?;
        let backup = match &live {
            Some(bytes) => {
                let b = self.backup_path();
                atomic_write(&b, bytes, Some(&self.live))?;
                Some(b)
            }
            None => None,
        };
        let mode_from = if live.is_some() { self.live.clone() } else { staged_path.clone() };
        atomic_write(&self.live, &staged, Some(&mode_from))?;
        fs::remove_file(&staged_path).map_err(io_err(&staged_path))?;
        sync_dir(&self.live)?;
        let hook = reload_hook.map(|cmd| run_hook(cmd, &self.live));
        Ok(ApplyOutcome { live: self.live.clone(), backup, hook })
    }

    /// The live and staged bytes for a diff, or None when nothing is staged (no readable
    /// `PATH.new`). A missing live file reads as empty: everything staged is then new.
    pub fn staged_pair(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        let staged = fs::read(self.staged()).ok()?;
        Some((fs::read(&self.live).unwrap_or_default(), staged))
    }

    /// Drop the staged file. Returns whether there was one.
    pub fn revert(&self) -> Result<bool, StoreError> {
        let _lock = self.lock()?;
        let staged = self.staged();
        match fs::remove_file(&staged) {
            Ok(()) => {
                sync_dir(&staged)?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(&staged)(e)),
        }
    }

    /// Take the advisory lock (flock on a hidden file beside the live file), waiting up to
    /// `lock_timeout`. Released when the guard drops (or the process dies).
    pub fn lock(&self) -> Result<Flock<File>, StoreError> {
        let path = self.lock_path();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path))?;
        let deadline = std::time::Instant::now() + self.lock_timeout;
        let mut file = file;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(guard) => {
                    self.remove_stale_temps();
                    return Ok(guard);
                }
                Err((f, errno)) if errno == nix::errno::Errno::EWOULDBLOCK => {
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::LockTimeout { path, secs: self.lock_timeout.as_secs() });
                    }
                    file = f;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err((_, errno)) => {
                    return Err(StoreError::Io { path, source: io::Error::from_raw_os_error(errno as i32) })
                }
            }
        }
    }
}

impl ConfStore {
    /// Temp files left by a writer that was killed mid-write (`.cluster.conf.XXXX.tmp`). Only
    /// called with the lock held, so no live writer owns them.
    fn remove_stale_temps(&self) {
        let (Some(dir), Some(name)) = (self.live.parent(), self.live.file_name()) else { return };
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        let prefix = format!(".{}.", name.to_string_lossy());
        let Ok(entries) = fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let n = entry.file_name().to_string_lossy().into_owned();
            if n.starts_with(&prefix) && n.ends_with(".tmp") {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

fn test_pause() {
    if let Some(ms) = std::env::var("TWONODE_TEST_PAUSE_MS").ok().and_then(|v| v.parse::<u64>().ok()) {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// Write `bytes` to `path` so that `path` is at every instant either its old complete content or
/// the new one: temp file in the same directory, same mode (and owner, when permitted) as
/// `mode_from` (0640 when it does not exist), fsync, rename, fsync the directory. On any error the
/// temp file is removed and `path` is untouched.
pub fn atomic_write(path: &Path, bytes: &[u8], mode_from: Option<&Path>) -> Result<(), StoreError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let meta = mode_from.and_then(|p| fs::metadata(p).ok());
    let mode = meta.as_ref().map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o640);
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    let tmp_path = tmp.path().to_path_buf();
    let result = (|| -> io::Result<()> {
        let f = tmp.as_file_mut();
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        if let Some(m) = &meta {
            // Keep owner and group (e.g. root:www-data 0640 on PVE); ignore EPERM as non-root.
            let _ = std::os::unix::fs::fchown(&*f, Some(m.uid()), Some(m.gid()));
        }
        let half = bytes.len() / 2;
        f.write_all(&bytes[..half])?;
        test_pause();
        f.write_all(&bytes[half..])?;
        f.sync_all()?;
        test_pause();
        Ok(())
    })();
    result.map_err(io_err(&tmp_path))?;
    tmp.persist(path).map_err(|e| StoreError::Io { path: path.to_path_buf(), source: e.error })?;
    sync_dir(path)
}

fn sync_dir(path: &Path) -> Result<(), StoreError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

fn run_hook(cmd: &str, live: &Path) -> HookOutcome {
    match std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .env("TWONODE_CONF", live)
        .stdin(std::process::Stdio::null())
        .output()
    {
        Ok(out) => {
            let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
            output.push_str(&String::from_utf8_lossy(&out.stderr));
            HookOutcome { command: cmd.to_string(), success: out.status.success(), code: out.status.code(), output }
        }
        Err(e) => HookOutcome { command: cmd.to_string(), success: false, code: None, output: e.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(content: &str, mode: u32) -> (tempfile::TempDir, ConfStore) {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("cluster.conf");
        fs::write(&live, content).unwrap();
        fs::set_permissions(&live, fs::Permissions::from_mode(mode)).unwrap();
        (dir, ConfStore::new(live))
    }

    #[test]
    fn edit_goes_to_staged_and_keeps_mode() {
        let (_d, s) = setup("v1", 0o600);
        let out = s.edit(false, |b| Ok([b, b"+a"].concat())).unwrap();
        assert_eq!(out.target, s.staged());
        assert_eq!(fs::read(&s.live).unwrap(), b"v1");
        assert_eq!(fs::read(s.staged()).unwrap(), b"v1+a");
        assert_eq!(fs::metadata(s.staged()).unwrap().permissions().mode() & 0o777, 0o600);
        // A second edit starts from the staged file.
        s.edit(false, |b| Ok([b, b"+b"].concat())).unwrap();
        assert_eq!(fs::read(s.staged()).unwrap(), b"v1+a+b");
    }

    #[test]
    fn in_place_edit_writes_live() {
        let (_d, s) = setup("v1", 0o640);
        s.edit(true, |_| Ok(b"v2".to_vec())).unwrap();
        assert_eq!(fs::read(&s.live).unwrap(), b"v2");
        assert!(!s.staged().exists());
        assert_eq!(fs::metadata(&s.live).unwrap().permissions().mode() & 0o777, 0o640);
    }

    #[test]
    fn stale_snapshot_is_refused() {
        let (_d, s) = setup("v1", 0o640);
        let snap = s.read(Which::EditTarget { in_place: true }).unwrap();
        fs::write(&s.live, "v1-changed-by-someone").unwrap();
        let err = s.write_from(&snap, b"v2").unwrap_err();
        assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
        assert_eq!(fs::read(&s.live).unwrap(), b"v1-changed-by-someone");
    }

    #[test]
    fn staging_created_meanwhile_is_a_conflict() {
        let (_d, s) = setup("v1", 0o640);
        let snap = s.read(Which::EditTarget { in_place: false }).unwrap();
        assert_eq!(snap.path, s.live);
        fs::write(s.staged(), "other edit").unwrap();
        assert!(matches!(s.write_from(&snap, b"v2"), Err(StoreError::Conflict { .. })));
        assert_eq!(fs::read(s.staged()).unwrap(), b"other edit");
    }

    #[test]
    fn failing_edit_writes_nothing() {
        let (_d, s) = setup("v1", 0o640);
        assert!(s.edit(false, |_| anyhow::bail!("bad input")).is_err());
        assert!(!s.staged().exists());
        assert_eq!(fs::read(&s.live).unwrap(), b"v1");
    }

    #[test]
    fn apply_backs_up_replaces_and_runs_hook() {
        let (d, s) = setup("v1", 0o640);
        s.edit(false, |_| Ok(b"v2".to_vec())).unwrap();
        let marker = d.path().join("hook-ran");
        let hook = format!("cat \"$TWONODE_CONF\" > {}", marker.display());
        let out = s.apply(|staged, live| {
            assert_eq!(staged, b"v2");
            assert_eq!(live, Some(&b"v1"[..]));
            Ok(())
        }, Some(&hook)).unwrap();
        assert_eq!(fs::read(&s.live).unwrap(), b"v2");
        assert_eq!(fs::read(s.backup_path()).unwrap(), b"v1");
        assert!(!s.staged().exists());
        assert!(out.hook.unwrap().success);
        assert_eq!(fs::read(marker).unwrap(), b"v2");
        assert_eq!(fs::metadata(&s.live).unwrap().permissions().mode() & 0o777, 0o640);
    }

    #[test]
    fn refused_apply_changes_nothing() {
        let (_d, s) = setup("v1", 0o640);
        s.edit(false, |_| Ok(b"v2".to_vec())).unwrap();
        assert!(s.apply(|_, _| anyhow::bail!("version not higher"), None).is_err());
        assert_eq!(fs::read(&s.live).unwrap(), b"v1");
        assert_eq!(fs::read(s.staged()).unwrap(), b"v2");
        assert!(!s.backup_path().exists());
    }

    #[test]
    fn apply_without_staged_and_revert() {
        let (_d, s) = setup("v1", 0o640);
        let err = s.apply(|_, _| Ok(()), None).unwrap_err();
        assert!(err.to_string().contains("nothing staged"), "{err}");
        assert!(!s.revert().unwrap());
        s.edit(false, |_| Ok(b"v2".to_vec())).unwrap();
        assert!(s.revert().unwrap());
        assert!(!s.staged().exists());
    }

    #[test]
    fn lock_excludes_a_second_holder() {
        let (_d, mut s) = setup("v1", 0o640);
        s.lock_timeout = Duration::from_millis(200);
        let held = s.lock().unwrap();
        // flock locks belong to the open file description: a second open conflicts.
        assert!(matches!(s.lock(), Err(StoreError::LockTimeout { .. })));
        drop(held);
        assert!(s.lock().is_ok());
    }
}
