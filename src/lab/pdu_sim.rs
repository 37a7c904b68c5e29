//! The lab's switched PDU: an APC AP7900 (8 outlets) simulated by snmpsim (PyPI), from the
//! recording and variation module in fixtures/pdu (compiled in, written to DIR at start). node2's
//! two power supplies are on outlets 3 and 4 (node2-psu1, node2-psu2): when both are off, node2's
//! power file (what its iLO simulator reports) says off; when one comes back, node2 powers up.
//! Every accepted SET is appended to DIR/sets.log. Listens on 127.0.0.1; stopped on drop.
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RECORDING: &str = include_str!("../../fixtures/pdu/apc-ap7900.snmprec");
const VARIATION: &str = include_str!("../../fixtures/pdu/variation/apc_outlet.py");

/// The PDU's read-write community in the lab (given on stdin when the device is added).
pub const COMMUNITY: &str = "lab-rw";

/// The program that serves it.
pub const PROGRAM: &str = "snmpsim-command-responder";

pub struct PduSim {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Drop for PduSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free UDP port on 127.0.0.1 (bound and released), reserved for the PDU when the lab starts.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl PduSim {
    /// Start on `port` in `dir`; the outlets in `powered_by` feed the machine whose power file is
    /// `power_file`. Waits until the PDU answers (snmpsim takes a few seconds to start).
    pub fn start(dir: &Path, port: u16, power_file: &Path, powered_by: &[u32]) -> anyhow::Result<PduSim> {
        if !super::services::have(PROGRAM) {
            bail!("{PROGRAM} (PyPI snmpsim) is not installed: scripts/install-deps installs it");
        }
        for sub in ["data", "cache", "variation"] {
            std::fs::create_dir_all(dir.join(sub)).with_context(|| format!("creating {}", dir.join(sub).display()))?;
        }
        std::fs::write(dir.join("data").join(format!("{COMMUNITY}.snmprec")), RECORDING)?;
        std::fs::write(dir.join("variation").join("apc_outlet.py"), VARIATION)?;
        let feeds: Vec<String> = powered_by.iter().map(|n| n.to_string()).collect();
        let out = std::fs::File::create(dir.join("snmpsim.out"))?;
        let child = Command::new(PROGRAM)
            .arg(format!("--data-dir={}", dir.join("data").display()))
            .arg(format!("--cache-dir={}", dir.join("cache").display()))
            .arg(format!("--variation-modules-dir={}", dir.join("variation").display()))
            .arg(format!(
                "--variation-module-options=apc_outlet:log:{},reboot:5,powerfile:{},powered_by:{}",
                dir.join("sets.log").display(),
                power_file.display(),
                feeds.join("+")
            ))
            .arg(format!("--agent-udpv4-endpoint=127.0.0.1:{port}"))
            // as root, snmpsim otherwise insists on dropping privileges (and then cannot read its
            // own Python modules under /root)
            .env("SNMPSIM_ALLOW_ROOT", "true")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {PROGRAM}"))?;
        let mut sim = PduSim { child, port, dir: dir.to_path_buf() };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(st)) = sim.child.try_wait() {
                let log = std::fs::read_to_string(dir.join("snmpsim.out")).unwrap_or_default();
                bail!("{PROGRAM} exited ({st}): {}", log.lines().rev().take(5).collect::<Vec<_>>().join(" | "));
            }
            if sim.answers() {
                return Ok(sim);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!("the simulated PDU did not answer on 127.0.0.1:{port} within 60 s")
    }

    /// Does it answer a GET of sysObjectID?
    fn answers(&self) -> bool {
        use crate::fence::snmp::client::{Client, ClientConfig};
        use crate::fence::snmp::{Oid, Version};
        let cfg = ClientConfig {
            host: "127.0.0.1".into(),
            port: self.port,
            version: Version::V2c,
            community: COMMUNITY.as_bytes().to_vec(),
            timeout: Duration::from_millis(300),
            tries: 1,
            inet4_only: true,
            inet6_only: false,
        };
        let Ok(mut c) = Client::open(cfg) else { return false };
        Oid::parse(crate::fence::apc_snmp::SYS_OBJECT_ID).map(|o| c.get(&o).is_ok()).unwrap_or(false)
    }

    /// The outlet switches so far, in order: "3 off", "4 off", ...
    pub fn switches(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("sets.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let outlet = l.split("outlet=").nth(1)?.split_whitespace().next()?;
                let state = l.rsplit("-> ").next()?.trim();
                Some(format!("{outlet} {state}"))
            })
            .collect()
    }
}
