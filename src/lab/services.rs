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
        for _ in 0..5 {
            let port = free_udp_port()?;
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

    /// Make the BMC accept power-on requests but never power on (a node that does not come back).
    pub fn ignore_power_on(&self, on: bool) -> std::io::Result<()> {
        let f = self.state_dir.join("ignore_on");
        if on { std::fs::write(f, "") } else { std::fs::remove_file(f).or(Ok(())) }
    }
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
