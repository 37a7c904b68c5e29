//! OpenIPMI's `ipmi_sim` as a lab BMC, started on a free loopback port and stopped on drop. Its
//! set-up files are embedded in the binary, so the lab works from an installed twonode. (The
//! RIBCL iLO simulator is twonode's own: `super::ilo_sim`.)
use anyhow::{bail, Context};
use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LAN_CONF: &str = include_str!("../../fixtures/sims/ipmi_sim/lan.conf");
const SIM_EMU: &str = include_str!("../../fixtures/sims/ipmi_sim/sim.emu");
const CHASSIS_CONTROL: &str = include_str!("../../fixtures/sims/ipmi_sim/chassiscontrol.sh");

/// Is PROGRAM on PATH (or in /usr/sbin, where Debian puts some daemons)?
pub fn have(program: &str) -> bool {
    let in_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    in_path || Path::new("/usr/sbin").join(program).is_file()
}

/// A child process killed (and reaped) when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// OpenIPMI `ipmi_sim` serving one simulated BMC (user admin / password secret, cipher suite 3).
pub struct IpmiBmc {
    pub port: u16,
    /// Holds `power.0x20` (1 on, 0 off) and the fault files `ignore_on`, `ignore_off`, `delay_s`.
    pub state_dir: PathBuf,
    _child: Guard,
}

impl IpmiBmc {
    /// Start a BMC whose files live under DIR. Retries with another port if one was taken.
    pub fn start(dir: &Path) -> anyhow::Result<IpmiBmc> {
        Self::start_on(dir, None)
    }

    /// Start a BMC on PORT (a restarted BMC keeps the address cluster.conf names), or on a free
    /// port when None. The power state in DIR/state survives a restart.
    pub fn start_on(dir: &Path, port: Option<u16>) -> anyhow::Result<IpmiBmc> {
        if !have("ipmi_sim") {
            bail!("ipmi_sim is not installed (Debian package openipmi; `scripts/install-deps` installs it)");
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let script = dir.join("chassiscontrol.sh");
        std::fs::write(&script, CHASSIS_CONTROL)?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
        std::fs::write(dir.join("sim.emu"), SIM_EMU)?;
        let state_dir = dir.join("state");
        std::fs::create_dir_all(&state_dir)?;
        for _ in 0..(if port.is_some() { 1 } else { 5 }) {
            let port = match port {
                Some(p) => p,
                None => free_udp_port()?,
            };
            let conf = dir.join("lan.conf");
            std::fs::write(
                &conf,
                LAN_CONF.replace("@HERE@", &dir.to_string_lossy()).replace("@PORT@", &port.to_string()),
            )?;
            let log = std::fs::File::create(dir.join("ipmi_sim.log"))?;
            let child = Command::new("ipmi_sim")
                .arg("-c")
                .arg(&conf)
                .arg("-f")
                .arg(dir.join("sim.emu"))
                .arg("-s")
                .arg(&state_dir)
                .arg("-n")
                .env("IPMISIM_STATE_DIR", &state_dir)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("starting ipmi_sim")?;
            let mut guard = Guard(child);
            if rmcp_ping(port, &mut guard.0, Duration::from_secs(10)) {
                return Ok(IpmiBmc { port, state_dir, _child: guard });
            }
        }
        bail!("ipmi_sim did not answer on any loopback port (see {}/ipmi_sim.log)", dir.display())
    }

    /// The modelled chassis power (true = on), from the state file ipmi_sim's chassis script keeps.
    pub fn power_on(&self) -> bool {
        power_file_on(&self.state_dir)
    }

    /// Set the chassis power directly (as if someone pressed the button).
    pub fn set_power(&self, on: bool) -> std::io::Result<()> {
        std::fs::write(self.state_dir.join("power.0x20"), if on { "1\n" } else { "0\n" })
    }

    /// Make the BMC accept power-on requests but never power on (a node that does not come back).
    pub fn ignore_power_on(&self, on: bool) -> std::io::Result<()> {
        let f = self.state_dir.join("ignore_on");
        if on { std::fs::write(f, "") } else { std::fs::remove_file(f).or(Ok(())) }
    }
}

/// The power state kept in an ipmi_sim state directory (a missing file means on, as the script does).
pub fn power_file_on(state_dir: &Path) -> bool {
    std::fs::read_to_string(state_dir.join("power.0x20")).map(|s| s.trim() != "0").unwrap_or(true)
}

fn free_udp_port() -> std::io::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// RMCP/ASF presence ping until the BMC answers (or its process died).
fn rmcp_ping(port: u16, child: &mut Child, limit: Duration) -> bool {
    let Ok(sock) = UdpSocket::bind("127.0.0.1:0") else { return false };
    let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
    let ping = [0x06, 0x00, 0xff, 0x06, 0x00, 0x00, 0x11, 0xbe, 0x80, 0x01, 0x00, 0x00];
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        let _ = sock.send_to(&ping, ("127.0.0.1", port));
        let mut buf = [0u8; 64];
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            if n > 8 {
                // Still ours? A sim that lost a port race exits at once.
                std::thread::sleep(Duration::from_millis(150));
                return matches!(child.try_wait(), Ok(None));
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn free_tcp_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Wait until something accepts TCP connections on PORT (false if CHILD died or LIMIT passed).
fn wait_tcp(port: u16, child: &mut Child, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if std::net::TcpStream::connect_timeout(&std::net::SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    false
}

/// The lab's arbiter: `twonode arbiter serve` on a loopback port, with a CA, server certificate
/// and a client certificate for the cluster made in its directory (what `twonode arbiter certs`
/// makes). Stopped on drop; a scenario may stop and restart it (same port).
pub struct Arbiter {
    pub port: u16,
    pub dir: PathBuf,
    /// `twonode arbiter status --socket` path.
    pub status_socket: PathBuf,
    /// CA certificate, client certificate and key (PEM) the nodes use (CN = cluster name).
    pub ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    config: PathBuf,
    exe: PathBuf,
    child: std::sync::Mutex<Option<Guard>>,
}

impl Arbiter {
    pub fn start(dir: &Path, exe: &Path, cluster: &str) -> anyhow::Result<Arbiter> {
        use crate::quorum::arbiter::certs;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let cd = certs::CertDir::new(dir);
        if !cd.path(certs::CA_CERT).exists() {
            certs::init(&cd)?;
        }
        let client_cert = dir.join("node.crt");
        let client_key = dir.join("node.key");
        if !client_cert.exists() {
            let (cert, key) = certs::client_pem(&cd, cluster)?;
            std::fs::write(&client_cert, cert)?;
            write_private(&client_key, &key)?;
        }
        let status_socket = dir.join("status.sock");
        let config = dir.join("arbiter.toml");
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_tcp_port()?;
            std::fs::write(
                &config,
                format!(
                    "# the lab's arbiter (twonode arbiter serve -c {cfg})\nlisten = \"127.0.0.1\"\nport = {port}\nstatus_socket = {sock:?}\n\n\
                     [tls]\nmode = \"on\"\nclient_cert_required = true\ncert = {cert:?}\nkey = {key:?}\nca = {ca:?}\n\n\
                     # no earlier arbiter ever granted this lab a vote: skip the start hold (a real one keeps it)\n\
                     [arbiter]\nrestart_hold_heartbeat_ms = 0\n",
                    cfg = config.display(),
                    sock = status_socket.display().to_string(),
                    cert = cd.path(certs::SERVER_CERT).display().to_string(),
                    key = cd.path(certs::SERVER_KEY).display().to_string(),
                    ca = cd.path(certs::CA_CERT).display().to_string(),
                ),
            )?;
            let a = Arbiter {
                port,
                dir: dir.to_path_buf(),
                status_socket: status_socket.clone(),
                ca: cd.path(certs::CA_CERT),
                client_cert: client_cert.clone(),
                client_key: client_key.clone(),
                config: config.clone(),
                exe: exe.to_path_buf(),
                child: std::sync::Mutex::new(None),
            };
            match a.restart() {
                Ok(()) => return Ok(a),
                Err(e) => last = format!("{e:#}"),
            }
        }
        bail!("the arbiter did not start: {last}")
    }

    /// Start (again) on the same port; nothing to do when it runs.
    pub fn restart(&self) -> anyhow::Result<()> {
        let mut g = self.child.lock().map_err(|_| anyhow::anyhow!("lab lock poisoned"))?;
        if g.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("arbiter.log"))?;
        let child = Command::new(&self.exe)
            .args(["arbiter", "serve", "-c"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting `twonode arbiter serve`")?;
        let mut guard = Guard(child);
        if !wait_tcp(self.port, &mut guard.0, Duration::from_secs(10)) {
            bail!("`twonode arbiter serve` did not listen on 127.0.0.1:{} (see {}/arbiter.log)", self.port, self.dir.display());
        }
        *g = Some(guard);
        Ok(())
    }

    /// Stop the arbiter (its host died); the port stops answering.
    pub fn stop(&self) -> anyhow::Result<()> {
        let mut g = self.child.lock().map_err(|_| anyhow::anyhow!("lab lock poisoned"))?;
        g.take();
        Ok(())
    }

    pub fn running(&self) -> bool {
        self.child.lock().map(|g| g.is_some()).unwrap_or(false)
    }
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// One simulated DRBD node and how twonode reaches it.
pub struct DrbdNode {
    pub name: String,
    /// Its sshd's loopback port (None: reached locally through `lab:DIR`).
    pub port: Option<u16>,
}

/// Two simulated DRBD nodes (the real drbdadm against `twonode lab drbd-kernel`), each behind its
/// own OpenSSH sshd on loopback with its own host key, logging in the current user with a key
/// made here. Without sshd (or when it does not start) the nodes are reached as `lab:DIR`.
pub struct DrbdNodes {
    /// The simulator's state directory (`twonode lab drbd-kernel --state DIR`).
    pub state: PathBuf,
    pub nodes: Vec<DrbdNode>,
    /// SSH login user, private key and known_hosts file (TWONODE_SSH_IDENTITY / _KNOWN_HOSTS).
    pub user: String,
    pub identity: PathBuf,
    pub known_hosts: PathBuf,
    /// Recovery journal directory (TWONODE_JOURNAL_DIR).
    pub journal: PathBuf,
    _sshd: Vec<LoopbackSshd>,
}

fn current_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "root".into())
}

/// An OpenSSH sshd on a free loopback port for one simulated machine: its own host key, logins
/// with the keys in an authorized_keys file, the machine's tools first in PATH. Stopped on drop.
/// The lab's DRBD nodes and the tests that need a node over SSH start theirs with it.
pub struct LoopbackSshd {
    pub port: u16,
    /// `[127.0.0.1]:PORT TYPE KEY`, for a known_hosts file.
    pub known_hosts_line: String,
    _child: Guard,
}

impl LoopbackSshd {
    /// Start NAME's sshd with its files in DIR (host_key_NAME, sshd_NAME.conf, sshd_NAME.log):
    /// keys in AUTHORIZED_KEYS may log in, and get PATH=PATH_FIRST:/usr/sbin:/usr/bin:/sbin:/bin
    /// and HOME (created; the login shell reads no rc files of the user running it).
    pub fn start(dir: &Path, name: &str, authorized_keys: &Path, path_first: &Path, home: &Path) -> anyhow::Result<LoopbackSshd> {
        if nix::unistd::getuid().is_root() {
            // sshd's privilege separation directory (Debian creates it at boot).
            std::fs::create_dir_all("/run/sshd").ok();
        }
        let sshd = ["/usr/sbin/sshd", "/sbin/sshd"].iter().find(|p| Path::new(p).is_file()).copied().unwrap_or("sshd");
        let hk = dir.join(format!("host_key_{name}"));
        if !hk.exists() {
            keygen(&hk)?;
        }
        std::fs::create_dir_all(home).with_context(|| format!("creating {}", home.display()))?;
        for _ in 0..3 {
            let port = free_tcp_port()?;
            let cfg = dir.join(format!("sshd_{name}.conf"));
            std::fs::write(
                &cfg,
                format!(
                    "# simulated node {name}: its tools first in PATH\nPort {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\n\
                     PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n\
                     PidFile none\nLogLevel ERROR\nSetEnv PATH={bin}:/usr/sbin:/usr/bin:/sbin:/bin HOME={home}\n",
                    hk = hk.display(),
                    ak = authorized_keys.display(),
                    bin = path_first.display(),
                    home = home.display()
                ),
            )?;
            let log = std::fs::File::create(dir.join(format!("sshd_{name}.log")))?;
            let child = Command::new(sshd)
                .args(["-D", "-e", "-f"])
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("starting sshd")?;
            let mut g = Guard(child);
            if wait_tcp(port, &mut g.0, Duration::from_secs(10)) {
                let pubkey = std::fs::read_to_string(hk.with_extension("pub"))?;
                let mut parts = pubkey.split_whitespace();
                let known_hosts_line = format!("[127.0.0.1]:{port} {} {}\n", parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                return Ok(LoopbackSshd { port, known_hosts_line, _child: g });
            }
        }
        bail!("sshd for {name} did not listen (see {}/sshd_{name}.log)", dir.display())
    }
}

/// A new ed25519 key pair without a passphrase at PATH (PATH.pub beside it).
pub fn keygen(path: &Path) -> anyhow::Result<()> {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "twonode-lab", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running ssh-keygen")?;
    if !st.success() {
        bail!("ssh-keygen failed for {}", path.display());
    }
    Ok(())
}

impl DrbdNodes {
    /// Create the nodes in DIR (DIR/sim holds the simulated kernel side). Returns a note when the
    /// nodes are reached locally instead of over SSH.
    pub fn start(dir: &Path, exe: &Path, names: &[&str; 2]) -> anyhow::Result<(DrbdNodes, Option<String>)> {
        use super::drbd_sim;
        if !have("drbdadm") {
            bail!("drbdadm is not installed (Debian package drbd-utils; `scripts/install-deps` installs it)");
        }
        let state = dir.join("sim");
        let spec = drbd_sim::InitSpec {
            flavour: drbd_sim::Flavour::parse("9")?,
            resources: vec!["r0".into()],
            volumes: 1,
            nodes: [names[0].to_string(), names[1].to_string()],
            size_kib: 1 << 20,
            resync_kib_per_sec: 100_000,
            seed: 1,
        };
        drbd_sim::init(&state, &spec, exe)?;
        let ssh = dir.join("ssh");
        std::fs::create_dir_all(&ssh)?;
        let user = current_user();
        let mut d = DrbdNodes {
            state,
            nodes: names.iter().map(|n| DrbdNode { name: n.to_string(), port: None }).collect(),
            user,
            identity: ssh.join("id_ed25519"),
            known_hosts: ssh.join("known_hosts"),
            journal: dir.join("journal"),
            _sshd: Vec::new(),
        };
        if !(have("sshd") && have("ssh-keygen")) {
            return Ok((d, Some("sshd or ssh-keygen is not installed (Debian openssh-server): the DRBD nodes are reached locally (`--node NAME=lab:DIR`), not over SSH".into())));
        }
        match d.start_sshd(&ssh) {
            Ok(()) => Ok((d, None)),
            Err(e) => {
                for n in &mut d.nodes {
                    n.port = None;
                }
                d._sshd.clear();
                Ok((d, Some(format!("sshd did not start ({e:#}): the DRBD nodes are reached locally (`--node NAME=lab:DIR`), not over SSH"))))
            }
        }
    }

    fn start_sshd(&mut self, ssh: &Path) -> anyhow::Result<()> {
        keygen(&self.identity)?;
        let ak = ssh.join("authorized_keys");
        std::fs::copy(ssh.join("id_ed25519.pub"), &ak)?;
        let mut known = String::new();
        for i in 0..self.nodes.len() {
            let name = self.nodes[i].name.clone();
            let bin = self.state.join(&name).join("bin");
            let home = ssh.join(format!("home_{name}"));
            let d = LoopbackSshd::start(ssh, &name, &ak, &bin, &home)?;
            known.push_str(&d.known_hosts_line);
            self.nodes[i].port = Some(d.port);
            self._sshd.push(d);
        }
        std::fs::write(&self.known_hosts, known)?;
        // Prove the login works (key, host key, the node's PATH) before anyone relies on it.
        for n in &self.nodes {
            let mut h = self.host(&n.name)?;
            let out = crate::host::Host::run(h.as_mut(), &["sh", "-c", "command -v drbdadm"], None)?;
            if !out.success() || !out.stdout_str().contains(&format!("{}/bin/drbdadm", n.name)) {
                bail!("logged in to {} but its PATH has no simulated drbdadm: {}", n.name, out.stderr_str().trim());
            }
        }
        Ok(())
    }

    /// Are the nodes reached over SSH (not locally)?
    pub fn over_ssh(&self) -> bool {
        self.nodes.iter().all(|n| n.port.is_some())
    }

    /// `--node NAME=TARGET` value for a node, as twonode's DRBD commands take it.
    pub fn target(&self, name: &str) -> String {
        match self.nodes.iter().find(|n| n.name == name).and_then(|n| n.port) {
            Some(port) => format!("{name}={}@127.0.0.1:{port}", self.user),
            None => format!("{name}=lab:{}", self.state.display()),
        }
    }

    /// `--node ... --node ...` for both nodes.
    pub fn node_args(&self) -> Vec<String> {
        self.nodes.iter().flat_map(|n| ["--node".to_string(), self.target(&n.name)]).collect()
    }

    /// A `Host` for a node: over SSH (strict host key checking against the lab's known_hosts) or local.
    pub fn host(&self, name: &str) -> anyhow::Result<Box<dyn crate::host::Host>> {
        let node = self.nodes.iter().find(|n| n.name == name).with_context(|| format!("no DRBD node {name} in the lab"))?;
        match node.port {
            Some(port) => Ok(Box::new(crate::host::Ssh::new(crate::host::SshTarget {
                node: name.into(),
                user: self.user.clone(),
                host: "127.0.0.1".into(),
                port,
                identity: self.identity.clone(),
                known_hosts: self.known_hosts.clone(),
                policy: crate::host::HostKeyPolicy::Strict,
                timeout: Duration::from_secs(20),
            }))),
            None => {
                let tools = super::drbd_sim::node_tools(&self.state, name);
                let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", tools.bin.display());
                let mut l = crate::host::Local::new(name);
                l.env.push(("PATH".into(), path));
                Ok(Box::new(l))
            }
        }
    }
}
