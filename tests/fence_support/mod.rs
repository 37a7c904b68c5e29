//! Shared helpers for the fence integration tests: a real OpenIPMI `ipmi_sim` BMC on a free loopback
//! UDP port (killed on drop), and small utilities.
#![allow(dead_code)]
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd} >/dev/null 2>&1 || test -x /usr/sbin/{cmd}"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A free UDP port on 127.0.0.1 (bound and released; the sim binds it right after).
pub fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    s.local_addr().unwrap().port()
}

pub struct IpmiSim {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl IpmiSim {
    pub fn start() -> IpmiSim {
        assert!(have("ipmi_sim"), "ipmi_sim missing: run scripts/install-deps (Debian openipmi)");
        for _ in 0..5 {
            let port = free_udp_port();
            let dir = tempfile::tempdir().expect("tempdir");
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sims/ipmi_sim/run_sim.sh");
            let log = std::fs::File::create(dir.path().join("sim.log")).unwrap();
            let child = Command::new("sh")
                .arg(&script)
                .arg(port.to_string())
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start ipmi_sim");
            let mut sim = IpmiSim { port, dir, child };
            // Ready, and still our process (a sim that lost a port race exits at once, while the
            // ping may have been answered by another test's sim on that port).
            if sim.wait_ready(Duration::from_secs(10)) {
                std::thread::sleep(Duration::from_millis(150));
                if matches!(sim.child.try_wait(), Ok(None)) {
                    return sim;
                }
            }
            let _ = sim.child.kill();
        }
        panic!("ipmi_sim did not come up");
    }

    fn wait_ready(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        // RMCP/ASF presence ping
        let ping = [0x06, 0x00, 0xff, 0x06, 0x00, 0x00, 0x11, 0xbe, 0x80, 0x01, 0x00, 0x00];
        while start.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            let _ = sock.send_to(&ping, ("127.0.0.1", self.port));
            let mut buf = [0u8; 64];
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                if n > 8 {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Modelled power: Some(true) = on.
    pub fn power(&self) -> bool {
        let p = self.dir.path().join("power.0x20");
        std::fs::read_to_string(p).map(|s| s.trim() == "1").unwrap_or(true)
    }

    pub fn set_power(&self, on: bool) {
        std::fs::write(self.dir.path().join("power.0x20"), if on { "1\n" } else { "0\n" }).unwrap();
    }

    pub fn fault(&self, name: &str, content: &str) {
        std::fs::write(self.dir.path().join(name), content).unwrap();
    }

    pub fn clear_fault(&self, name: &str) {
        let _ = std::fs::remove_file(self.dir.path().join(name));
    }

    pub fn chassis_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chassis.log")).unwrap_or_default()
    }
}

impl Drop for IpmiSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A cluster.conf with two nodes fenced through IPMI devices (both on this sim unless given).
pub fn cluster_conf(node1_port: u16, node2_port: u16, extra_dev: &str) -> String {
    format!(
        r#"<?xml version="1.0"?>
<cluster name="testclu" config_version="3">
  <cman two_node="1" expected_votes="1"/>
  <clusternodes>
    <clusternode name="node1" nodeid="1">
      <fence>
        <method name="ipmi">
          <device name="ipmi1" delay="1"/>
        </method>
      </fence>
    </clusternode>
    <clusternode name="node2" nodeid="2">
      <fence>
        <method name="ipmi">
          <device name="ipmi2"/>
        </method>
      </fence>
    </clusternode>
  </clusternodes>
  <fencedevices>
    <fencedevice name="ipmi1" agent="fence_ipmilan" ipaddr="127.0.0.1" ipport="{node1_port}" login="admin" passwd="secret" lanplus="1" cipher="3" power_wait="1" {extra_dev}/>
    <fencedevice name="ipmi2" agent="fence_ipmilan" ipaddr="127.0.0.1" ipport="{node2_port}" login="admin" passwd="secret" lanplus="1" cipher="3" power_wait="1" {extra_dev}/>
  </fencedevices>
</cluster>
"#
    )
}

/// A cluster.conf with one node per (name, device attributes) entry, each fenced by one IPMI
/// device on 127.0.0.1:port. `attrs` are extra attributes of that fencedevice.
pub fn conf_nodes(nodes: &[(&str, u16, &str)]) -> String {
    let mut cn = String::new();
    let mut fd = String::new();
    for (i, (name, port, attrs)) in nodes.iter().enumerate() {
        cn.push_str(&format!(
            "    <clusternode name=\"{name}\" nodeid=\"{}\">\n      <fence>\n        <method name=\"ipmi\">\n          <device name=\"bmc-{name}\"/>\n        </method>\n      </fence>\n    </clusternode>\n",
            i + 1
        ));
        fd.push_str(&format!(
            "    <fencedevice name=\"bmc-{name}\" agent=\"fence_ipmilan\" ipaddr=\"127.0.0.1\" ipport=\"{port}\" login=\"admin\" passwd=\"secret\" lanplus=\"1\" cipher=\"3\" power_wait=\"1\" {attrs}/>\n"
        ));
    }
    format!(
        "<?xml version=\"1.0\"?>\n<cluster name=\"testclu\" config_version=\"1\">\n  <cman two_node=\"1\" expected_votes=\"1\"/>\n  <clusternodes>\n{cn}  </clusternodes>\n  <fencedevices>\n{fd}  </fencedevices>\n</cluster>\n"
    )
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub secs: f64,
}

/// Run the twonode binary with `args` (and optional stdin), no terminal.
pub fn twonode(args: &[&str], stdin: Option<&str>) -> Run {
    use std::io::Write;
    let bin = assert_cmd::cargo::cargo_bin("twonode");
    let start = Instant::now();
    // Never the system audit log from tests (an explicit --audit-log still wins).
    let audit = std::env::temp_dir().join(format!("twonode-test-audit-{}.log", std::process::id()));
    let mut child = Command::new(bin)
        .args(args)
        .env("TWONODE_FENCE_AUDIT_LOG", audit)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run twonode");
    {
        let mut i = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            let _ = i.write_all(s.as_bytes());
        }
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
        secs: start.elapsed().as_secs_f64(),
    }
}

/// Write `text` as cluster.conf in `dir`; returns its path as a String.
pub fn write_conf(dir: &Path, text: &str) -> String {
    let p = dir.join("cluster.conf");
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}
