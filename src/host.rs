//! The Env seam: run commands and read files on a node, locally or over SSH.
//!
//! `Host` is the only way the DRBD recovery (and other areas) touch a node. `Local` runs processes on
//! this machine; `Ssh` keeps ONE ssh2 session per node and opens one exec channel per command. Both
//! count their round trips (one per command or file read) for the benchmark.
//!
//! Security rules kept here: host keys are checked against a known_hosts file (unknown host or key
//! mismatch is refused with the fix, unless the caller explicitly asked for accept-new), only key
//! authentication is used, and argv elements are shell-quoted one by one, never concatenated raw.
use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The result of one command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Exit status (-1 when killed by a signal / not reported).
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// A node commands run on.
pub trait Host {
    /// The node's name (as DRBD knows it, e.g. `alice`).
    fn name(&self) -> &str;
    /// Run `argv` (no shell on the local side; each element quoted on the SSH side).
    fn run(&mut self, argv: &[&str], stdin: Option<&[u8]>) -> Result<Output>;
    /// Read a whole file.
    fn read_file(&mut self, path: &Path) -> Result<Vec<u8>>;
    /// Commands and reads done so far (each is one round trip over SSH).
    fn round_trips(&self) -> u64;
}

/// Quote one word for a POSIX shell: safe words stay as they are, everything else goes in single
/// quotes with embedded `'` written as `'\''`.
pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./-_".contains(&b));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Quote a whole argv into one shell command line.
pub fn shell_join(argv: &[&str]) -> String {
    argv.iter().map(|w| shell_quote(w)).collect::<Vec<_>>().join(" ")
}

/// Commands on this machine.
pub struct Local {
    name: String,
    trips: u64,
    /// Extra environment for every command (used by the lab to pretend to be a node).
    pub env: Vec<(String, String)>,
}

impl Local {
    pub fn new(name: impl Into<String>) -> Self {
        Local { name: name.into(), trips: 0, env: Vec::new() }
    }
}

impl Host for Local {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(&mut self, argv: &[&str], stdin: Option<&[u8]>) -> Result<Output> {
        use std::process::{Command, Stdio};
        let Some((prog, args)) = argv.split_first() else { bail!("empty command") };
        self.trips += 1;
        let mut cmd = Command::new(prog);
        cmd.args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("{}: cannot start `{}`", self.name, shell_join(argv)))?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // Ignore EPIPE: the command may not read its input.
            let _ = pipe.write_all(data);
        }
        let out = child.wait_with_output().with_context(|| format!("{}: waiting for `{}`", self.name, argv[0]))?;
        Ok(Output { status: out.status.code().unwrap_or(-1), stdout: out.stdout, stderr: out.stderr })
    }

    fn read_file(&mut self, path: &Path) -> Result<Vec<u8>> {
        self.trips += 1;
        std::fs::read(path).with_context(|| format!("{}: reading {}", self.name, path.display()))
    }

    fn round_trips(&self) -> u64 {
        self.trips
    }
}

/// What to do with a host key that is not in known_hosts yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostKeyPolicy {
    /// Refuse unknown hosts (the default; like `StrictHostKeyChecking yes`).
    #[default]
    Strict,
    /// Add unknown hosts to known_hosts, still refuse a changed key (`accept-new`).
    AcceptNew,
}

/// How to reach a node over SSH.
#[derive(Debug, Clone)]
pub struct SshTarget {
    /// DRBD node name.
    pub node: String,
    pub user: String,
    pub host: String,
    pub port: u16,
    pub identity: PathBuf,
    pub known_hosts: PathBuf,
    pub policy: HostKeyPolicy,
    pub timeout: Duration,
}

impl SshTarget {
    /// Parse `user@host[:port]` (user defaults to root, port to 22).
    pub fn parse(node: &str, spec: &str) -> Result<(String, String, u16)> {
        let (user, rest) = match spec.split_once('@') {
            Some((u, r)) => (u.to_string(), r),
            None => ("root".to_string(), spec),
        };
        let (host, port) = if let Some(stripped) = rest.strip_prefix('[') {
            // [v6]:port
            let (h, p) = stripped
                .split_once(']')
                .with_context(|| format!("node {node}: `{spec}`: missing `]`"))?;
            let port = match p.strip_prefix(':') {
                Some(p) => p.parse().with_context(|| format!("node {node}: bad port in `{spec}`"))?,
                None => 22,
            };
            (h.to_string(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().with_context(|| format!("node {node}: bad port in `{spec}`"))?),
                None => (rest.to_string(), 22),
            }
        };
        if host.is_empty() || user.is_empty() {
            bail!("node {node}: `{spec}` is not user@host[:port]");
        }
        Ok((user, host, port))
    }
}

/// One SSH session to one node, reused for every command.
pub struct Ssh {
    target: SshTarget,
    session: Option<ssh2::Session>,
    trips: u64,
}

impl Ssh {
    /// Prepare a connection; the session is opened on first use (and re-opened after a failure).
    pub fn new(target: SshTarget) -> Self {
        Ssh { target, session: None, trips: 0 }
    }

    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// Connect, check the host key and authenticate now (instead of on the first command).
    pub fn connect(&mut self) -> Result<()> {
        self.session()?;
        Ok(())
    }

    fn known_hosts_name(&self) -> String {
        if self.target.port == 22 {
            self.target.host.clone()
        } else {
            format!("[{}]:{}", self.target.host, self.target.port)
        }
    }

    fn session(&mut self) -> Result<&mut ssh2::Session> {
        if self.session.is_none() {
            let s = self.open()?;
            self.session = Some(s);
        }
        match self.session.as_mut() {
            Some(s) => Ok(s),
            None => bail!("internal: no session"),
        }
    }

    fn open(&mut self) -> Result<ssh2::Session> {
        let t = &self.target;
        let where_ = format!("{} ({}@{}:{})", t.node, t.user, t.host, t.port);
        let addr = (t.host.as_str(), t.port)
            .to_socket_addrs()
            .with_context(|| format!("{where_}: cannot resolve {}", t.host))?
            .next()
            .with_context(|| format!("{where_}: {} has no address", t.host))?;
        let tcp = TcpStream::connect_timeout(&addr, t.timeout)
            .with_context(|| format!("{where_}: cannot connect to {addr}; is sshd running and reachable?"))?;
        tcp.set_nodelay(true).ok();
        let mut sess = ssh2::Session::new().context("creating an SSH session")?;
        sess.set_tcp_stream(tcp);
        sess.set_timeout(t.timeout.as_millis().min(u32::MAX as u128) as u32);
        sess.handshake().with_context(|| format!("{where_}: SSH handshake failed"))?;
        self.check_host_key(&sess, &where_)?;
        sess.userauth_pubkey_file(&t.user, None, &t.identity, None).with_context(|| {
            format!(
                "{where_}: key authentication with {} refused; install its .pub in ~{}/.ssh/authorized_keys on the node",
                t.identity.display(),
                t.user
            )
        })?;
        if !sess.authenticated() {
            bail!("{where_}: not authenticated");
        }
        Ok(sess)
    }

    fn check_host_key(&self, sess: &ssh2::Session, where_: &str) -> Result<()> {
        let t = &self.target;
        let (key, ktype) = sess.host_key().with_context(|| format!("{where_}: server sent no host key"))?;
        let mut kh = sess.known_hosts().context("known_hosts")?;
        let exists = t.known_hosts.exists();
        if exists {
            kh.read_file(&t.known_hosts, ssh2::KnownHostFileKind::OpenSSH)
                .with_context(|| format!("reading known hosts file {}", t.known_hosts.display()))?;
        }
        let fp = sess
            .host_key_hash(ssh2::HashType::Sha256)
            .map(|h| h.iter().map(|b| format!("{b:02x}")).collect::<String>())
            .unwrap_or_default();
        match kh.check_port(&t.host, t.port, key) {
            ssh2::CheckResult::Match => Ok(()),
            ssh2::CheckResult::Mismatch => bail!(
                "{where_}: HOST KEY MISMATCH for {} in {} (server key sha256 {fp}). The node was reinstalled \
                 or someone is in the middle. Check the key on the node's console (ssh-keygen -lf \
                 /etc/ssh/ssh_host_*_key.pub), then remove the old line with `ssh-keygen -R '{}' -f {}`.",
                self.known_hosts_name(),
                t.known_hosts.display(),
                self.known_hosts_name(),
                t.known_hosts.display()
            ),
            ssh2::CheckResult::NotFound | ssh2::CheckResult::Failure => {
                if t.policy == HostKeyPolicy::AcceptNew {
                    kh.add(&self.known_hosts_name(), key, "added by twonode (accept-new)", ktype.into())
                        .context("adding host key")?;
                    kh.write_file(&t.known_hosts, ssh2::KnownHostFileKind::OpenSSH)
                        .with_context(|| format!("writing {}", t.known_hosts.display()))?;
                    tracing::warn!("{where_}: new host key sha256 {fp} added to {}", t.known_hosts.display());
                    Ok(())
                } else {
                    bail!(
                        "{where_}: unknown host {} (not in {}; server key sha256 {fp}). Verify the key, then \
                         add it with `ssh-keyscan -p {} {} >> {}`, or pass --accept-new-host-keys once.",
                        self.known_hosts_name(),
                        t.known_hosts.display(),
                        t.port,
                        t.host,
                        t.known_hosts.display()
                    )
                }
            }
        }
    }

    fn exec(&mut self, command: &str, stdin: Option<&[u8]>) -> Result<Output> {
        let node = self.target.node.clone();
        let sess = self.session()?;
        let mut ch = sess.channel_session().with_context(|| format!("{node}: opening an SSH channel"))?;
        ch.exec(command).with_context(|| format!("{node}: running `{command}`"))?;
        if let Some(data) = stdin {
            ch.write_all(data).with_context(|| format!("{node}: sending input"))?;
        }
        ch.send_eof().ok();
        let mut stdout = Vec::new();
        ch.read_to_end(&mut stdout).with_context(|| format!("{node}: reading output of `{command}`"))?;
        let mut stderr = Vec::new();
        ch.stderr().read_to_end(&mut stderr).with_context(|| format!("{node}: reading errors of `{command}`"))?;
        ch.wait_close().with_context(|| format!("{node}: closing channel"))?;
        let status = ch.exit_status().unwrap_or(-1);
        Ok(Output { status, stdout, stderr })
    }
}

impl Host for Ssh {
    fn name(&self) -> &str {
        &self.target.node
    }

    fn run(&mut self, argv: &[&str], stdin: Option<&[u8]>) -> Result<Output> {
        if argv.is_empty() {
            bail!("empty command");
        }
        self.trips += 1;
        let line = shell_join(argv);
        let r = self.exec(&line, stdin);
        if r.is_err() {
            // Drop the broken session: the next call reconnects.
            self.session = None;
        }
        r
    }

    fn read_file(&mut self, path: &Path) -> Result<Vec<u8>> {
        let p = path.to_string_lossy().into_owned();
        let out = self.run(&["cat", "--", &p], None)?;
        if !out.success() {
            bail!("{}: cannot read {}: {}", self.target.node, p, out.stderr_str().trim());
        }
        Ok(out.stdout)
    }

    fn round_trips(&self) -> u64 {
        self.trips
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("r0"), "r0");
        assert_eq!(shell_quote("--discard-my-data"), "--discard-my-data");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(shell_join(&["drbdadm", "connect", "r 0;x"]), "drbdadm connect 'r 0;x'");
    }

    #[test]
    fn target_parse() {
        assert_eq!(SshTarget::parse("a", "root@127.0.0.1:2201").unwrap(), ("root".into(), "127.0.0.1".into(), 2201));
        assert_eq!(SshTarget::parse("a", "node1").unwrap(), ("root".into(), "node1".into(), 22));
        assert_eq!(SshTarget::parse("a", "u@[::1]:23").unwrap(), ("u".into(), "::1".into(), 23));
        assert!(SshTarget::parse("a", "u@h:x").is_err());
    }

    #[test]
    fn local_runs_and_counts() {
        let mut l = Local::new("me");
        let o = l.run(&["sh", "-c", "cat; echo err >&2; exit 3"], Some(b"hi")).unwrap();
        assert_eq!(o.stdout, b"hi");
        assert_eq!(o.stderr, b"err\n");
        assert_eq!(o.status, 3);
        assert_eq!(l.round_trips(), 1);
    }
}
