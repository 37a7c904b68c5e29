//! An IPMI 2.0 BMC simulator (RMCP+ over UDP, cipher suites 17 and 3): what the lab's IPMI node,
//! ipmitool, fence_ipmilan and twonode's native driver talk to when suite 17 matters (OpenIPMI's
//! ipmi_sim accepts suites 0-14 only).
//!
//! The protocol is `crate::fence::rmcp::server` (sans-IO); this file is the socket loop and the
//! chassis model, kept file-compatible with the lab's ipmi_sim set-up:
//! - power state in `STATE_DIR/power.0x20` ("1" on, "0" off), every Chassis Control appended to
//!   `STATE_DIR/chassis.log` as `<unix time> set power 0|1` (or `set reset 1`), session events in
//!   `STATE_DIR/bmc.log`;
//! - fault files in STATE_DIR, read at each command: `ignore_on`, `ignore_off` (acknowledged,
//!   nothing happens), `delay_s` (power changes applied N seconds later), `hang` (every datagram
//!   is dropped: a BMC that stopped answering);
//! - commands: Get Device ID, Get Chassis Status, Chassis Control (off, on, cycle = off then on
//!   1 s later, hard reset, soft off; cycle and reset on a chassis that is off answer 0xD5 like
//!   many real BMCs), Get Channel Authentication Capabilities, Get Channel Cipher Suites, Set
//!   Session Privilege Level, Close Session; anything else answers 0xC1 (invalid command).
use crate::fence::rmcp::server::{Bmc, BmcConfig, Commands, User};
use crate::fence::rmcp::Suite;
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct BmcSimConfig {
    pub bind: SocketAddr,
    pub state_dir: PathBuf,
    pub users: Vec<User>,
    pub suites: Vec<Suite>,
    /// Power state when STATE_DIR/power.0x20 does not exist yet.
    pub initial_on: bool,
}

impl BmcSimConfig {
    /// Loopback, free port, suites 3 and 17, users admin/secret (administrator) and
    /// oper/opsecret (operator), as the lab's ipmi_sim has them.
    pub fn new(state_dir: &Path) -> BmcSimConfig {
        BmcSimConfig {
            bind: "127.0.0.1:0".parse().expect("literal address"),
            state_dir: state_dir.to_path_buf(),
            users: vec![
                User { name: b"admin".to_vec(), password: b"secret".to_vec(), max_priv: 4 },
                User { name: b"oper".to_vec(), password: b"opsecret".to_vec(), max_priv: 3 },
            ],
            suites: vec![Suite::S3, Suite::S17],
            initial_on: true,
        }
    }
}

/// `LOGIN:PASSWORD[:administrator|operator|user]` lines (`#` comments).
pub fn parse_users(text: &str) -> Result<Vec<User>> {
    let mut users = vec![];
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, ':');
        let (Some(name), Some(password)) = (parts.next(), parts.next()) else {
            bail!("line {}: expected LOGIN:PASSWORD[:PRIVILEGE]", n + 1);
        };
        let max_priv = match parts.next().map(|p| p.trim().to_ascii_lowercase()) {
            None => 4,
            Some(p) => match p.as_str() {
                "administrator" | "admin" => 4,
                "operator" => 3,
                "user" => 2,
                other => bail!("line {}: privilege {other:?} (use administrator, operator or user)", n + 1),
            },
        };
        if name.is_empty() || name.len() > 16 {
            bail!("line {}: IPMI user names are 1-16 bytes", n + 1);
        }
        if password.len() > 20 {
            bail!("line {}: IPMI 2.0 passwords are at most 20 bytes", n + 1);
        }
        users.push(User { name: name.as_bytes().to_vec(), password: password.as_bytes().to_vec(), max_priv });
    }
    if users.is_empty() {
        bail!("no users");
    }
    Ok(users)
}

/// `17,3` -> suites, in that listing order.
pub fn parse_suites(text: &str) -> Result<Vec<Suite>> {
    let mut out = vec![];
    for p in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let id: u8 = p.parse().with_context(|| format!("cipher suite {p:?} is not a number"))?;
        let s = Suite::by_id(id).with_context(|| format!("cipher suite {id}: the simulator runs 3 and 17"))?;
        if !out.contains(&s) {
            out.push(s);
        }
    }
    if out.is_empty() {
        bail!("no cipher suite given");
    }
    Ok(out)
}

/// The chassis, kept in STATE_DIR.
struct Chassis {
    dir: PathBuf,
}

impl Chassis {
    fn power_file(&self) -> PathBuf {
        self.dir.join("power.0x20")
    }
    fn power(&self) -> bool {
        super::services::power_file_on(&self.dir)
    }
    fn fault(&self, name: &str) -> bool {
        self.dir.join(name).exists()
    }
    fn log(&self, what: &str) {
        let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("chassis.log")) {
            let _ = writeln!(f, "{}.{:09} {what}", ts.as_secs(), ts.subsec_nanos());
        }
    }
    /// Apply a power change now or after `delay_s`, unless a fault file says to ignore it.
    fn set_power(&self, on: bool, extra_delay: Duration) {
        self.log(&format!("set power {}", on as u8));
        if (on && self.fault("ignore_on")) || (!on && self.fault("ignore_off")) {
            return;
        }
        let delay = std::fs::read_to_string(self.dir.join("delay_s"))
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|d| d.is_finite() && *d >= 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or_default()
            + extra_delay;
        let file = self.power_file();
        let write = move || {
            let _ = std::fs::write(&file, if on { "1\n" } else { "0\n" });
        };
        if delay.is_zero() {
            write();
        } else {
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                write();
            });
        }
    }
}

impl Commands for Chassis {
    fn command(&mut self, netfn: u8, cmd: u8, data: &[u8]) -> (u8, Vec<u8>) {
        match (netfn, cmd) {
            // Get Device ID: device 0x20, rev 1, firmware 1.00, IPMI 2.0, chassis+bridge+IPMB+SDR
            (0x06, 0x01) => (0, vec![0x20, 0x01, 0x01, 0x00, 0x02, 0xBF, 0x00, 0x00, 0x00, 0x00, 0x00, 0, 0, 0, 0]),
            // Get Chassis Status: power bit, last power event, misc chassis state
            (0x00, 0x01) => (0, vec![self.power() as u8, 0x00, 0x00]),
            (0x00, 0x02) => {
                let Some(&c) = data.first() else { return (0xC7, vec![]) };
                match c & 0x0F {
                    0 | 5 => self.set_power(false, Duration::ZERO),
                    1 => self.set_power(true, Duration::ZERO),
                    2 => {
                        if !self.power() {
                            return (0xD5, vec![]);
                        }
                        self.set_power(false, Duration::ZERO);
                        self.set_power(true, Duration::from_secs(1));
                    }
                    3 => {
                        if !self.power() {
                            return (0xD5, vec![]);
                        }
                        self.log("set reset 1");
                    }
                    _ => return (0xCC, vec![]),
                }
                (0, vec![])
            }
            _ => (0xC1, vec![]),
        }
    }
}

/// A running simulator (stopped on drop).
pub struct BmcSim {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BmcSim {
    pub fn start(cfg: BmcSimConfig) -> Result<BmcSim> {
        std::fs::create_dir_all(&cfg.state_dir).with_context(|| format!("creating {}", cfg.state_dir.display()))?;
        let power = cfg.state_dir.join("power.0x20");
        if !power.exists() {
            std::fs::write(&power, if cfg.initial_on { "1\n" } else { "0\n" })?;
        }
        let sock = UdpSocket::bind(cfg.bind).with_context(|| format!("binding UDP {}", cfg.bind))?;
        sock.set_read_timeout(Some(Duration::from_millis(200)))?;
        let addr = sock.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let mut guid = [0u8; 16];
        guid.copy_from_slice(&0xa123_4567_89ab_cdef_a123_4567_89ab_cdefu128.to_be_bytes());
        let bmc_cfg = BmcConfig { users: cfg.users.clone(), suites: cfg.suites.clone(), guid, max_sessions: 16, idle_timeout: Duration::from_secs(60) };
        let dir = cfg.state_dir.clone();
        let thread = std::thread::Builder::new().name("bmc-sim".into()).spawn(move || serve(sock, Bmc::new(bmc_cfg, rand::random()), Chassis { dir }, stop2))?;
        Ok(BmcSim { addr, stop, thread: Some(thread) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for BmcSim {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(sock: UdpSocket, mut bmc: Bmc, mut chassis: Chassis, stop: Arc<AtomicBool>) {
    let mut buf = [0u8; 1024];
    let log_path = chassis.dir.join("bmc.log");
    while !stop.load(Ordering::SeqCst) {
        let (n, peer) = match sock.recv_from(&mut buf) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if chassis.fault("hang") {
            continue;
        }
        let reply = bmc.handle(&buf[..n], Instant::now(), &mut chassis);
        if !bmc.events.is_empty() {
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&log_path) {
                for e in bmc.events.drain(..) {
                    let _ = writeln!(f, "{e}");
                }
            }
            bmc.events.clear();
        }
        if let Some(r) = reply {
            let _ = sock.send_to(&r, peer);
        }
    }
}
