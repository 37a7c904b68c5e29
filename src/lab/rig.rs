//! The lab itself: one directory on this machine holding a simulated two-node cluster. node1's BMC
//! is the project's IPMI 2.0 simulator (`super::bmc_sim`) offering cipher suite 17 only, as many
//! current BMCs do; node2's the project's RIBCL iLO simulator; with `LabOptions::full` also
//! the arbiter (`twonode arbiter serve`) and two simulated DRBD nodes reached over SSH (see
//! `super::services`). Everything listens on 127.0.0.1 on ports chosen at start, and stops when
//! the `Lab` is dropped. Scenarios use the accessors here to inject faults and observe state.
use super::ilo_sim::{IloSim, IloSimConfig, Profile};
use super::pdu_sim::PduSim;
use super::bmc_sim::{BmcSim, BmcSimConfig};
use super::services::{self, Arbiter, DrbdNodes};
use crate::fence::rmcp::Suite;
use anyhow::{bail, Context};
use std::path::PathBuf;
use std::sync::Mutex;

/// What to start besides the two BMCs.
#[derive(Debug, Clone, Copy, Default)]
pub struct LabOptions {
    /// Write a ready cluster.conf (both nodes bound to their BMC) into the lab directory.
    pub cluster_conf: bool,
    /// Start the arbiter (certificates made in DIR/arbiter).
    pub arbiter: bool,
    /// Create the two simulated DRBD nodes and their sshd.
    pub drbd: bool,
}

impl LabOptions {
    /// Everything: what scenarios and `twonode lab start` get.
    pub fn full() -> LabOptions {
        LabOptions { cluster_conf: true, arbiter: true, drbd: true }
    }
}

/// The running lab: its directory and simulators.
pub struct Lab {
    pub dir: PathBuf,
    /// node1's IPMI BMC port (UDP).
    pub ipmi_port: u16,
    ipmi: Mutex<Option<BmcSim>>,
    /// node2's iLO port.
    pub ilo_port: u16,
    ilo: Mutex<Option<IloSim>>,
    /// The switched PDU's UDP port (reserved at start; the PDU runs once `start_pdu` is called).
    pub pdu_port: u16,
    pdu: Mutex<Option<PduSim>>,
    pub arbiter: Option<Arbiter>,
    pub drbd: Option<DrbdNodes>,
    /// What could not be started, and what that means (printed before the first step).
    pub notes: Vec<String>,
}

/// The cluster.conf of a lab started with `cluster_conf`: two nodes, each fenced through its own
/// BMC, no delay (scenarios add what they rehearse). The lab's BMC password is `secret`.
pub fn cluster_conf(ipmi_port: u16, ilo_port: u16) -> String {
    format!(
        r#"<?xml version="1.0"?>
<cluster name="lab" config_version="1">
  <cman two_node="1" expected_votes="1"/>
  <clusternodes>
    <clusternode name="node1" votes="1" nodeid="1">
      <fence>
        <method name="ipmi">
          <device name="ipmi-node1"/>
        </method>
      </fence>
    </clusternode>
    <clusternode name="node2" votes="1" nodeid="2">
      <fence>
        <method name="ilo">
          <device name="ilo-node2"/>
        </method>
      </fence>
    </clusternode>
  </clusternodes>
  <fencedevices>
    <fencedevice name="ipmi-node1" agent="fence_ipmilan" ipaddr="127.0.0.1" ipport="{ipmi_port}" login="admin" passwd="secret" lanplus="1" cipher="17" power_timeout="8"/>
    <fencedevice name="ilo-node2" agent="fence_ilo" ipaddr="127.0.0.1" ipport="{ilo_port}" login="admin" passwd="secret" ssl_insecure="1"/>
  </fencedevices>
</cluster>
"#
    )
}

/// node1's BMC: state in DIR/bmc-node1/state (power.0x20 and the fault files, as ipmi_sim's
/// set-up keeps them), users admin/secret and oper/opsecret, suite 17 only; on PORT when a
/// stopped BMC comes back at the address cluster.conf names.
fn node1_bmc(dir: &std::path::Path, port: Option<u16>) -> BmcSimConfig {
    let mut cfg = BmcSimConfig::new(&dir.join("bmc-node1").join("state"));
    cfg.suites = vec![Suite::S17];
    if let Some(p) = port {
        cfg.bind = std::net::SocketAddr::from(([127, 0, 0, 1], p));
    }
    cfg
}

impl Lab {
    /// Start the lab in DIR. A missing sshd or drbdadm is not fatal: it is noted, and the steps or
    /// scenarios needing it are skipped.
    pub fn start(dir: PathBuf, opts: LabOptions) -> anyhow::Result<Lab> {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut notes = Vec::new();
        let ipmi = BmcSim::start(node1_bmc(&dir, None)).context("starting node1's simulated IPMI BMC")?;
        let cfg = IloSimConfig::new(Profile::Ilo2, dir.join("ilo-node2"));
        let ilo = IloSim::start(cfg).context("starting node2's simulated iLO")?;
        // The power file without a newline: fence_dummy (the lab's switched-PDU stand-in) reads
        // it as node2's outlet state and compares it as is.
        std::fs::write(dir.join("ilo-node2").join("power"), if ilo.power_on() { "on" } else { "off" })?;
        let ipmi_port = ipmi.port();
        let ilo_port = ilo.port();
        if opts.cluster_conf {
            let path = dir.join("cluster.conf");
            std::fs::write(&path, cluster_conf(ipmi_port, ilo_port))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        let exe = std::env::current_exe().context("locating the twonode binary")?;
        let arbiter = if opts.arbiter {
            Some(Arbiter::start(&dir.join("arbiter"), &exe, "lab").context("starting the lab's arbiter")?)
        } else {
            None
        };
        let drbd = if opts.drbd {
            match DrbdNodes::start(&dir.join("drbd"), &exe, &["node1", "node2"]) {
                Ok((d, note)) => {
                    notes.extend(note);
                    Some(d)
                }
                Err(e) => {
                    notes.push(format!("DRBD nodes not started, their steps are skipped: {e:#}"));
                    None
                }
            }
        } else {
            None
        };
        let pdu_port = super::pdu_sim::free_port().context("reserving a port for the PDU")?;
        Ok(Lab {
            dir,
            ipmi_port,
            ipmi: Mutex::new(Some(ipmi)),
            ilo_port,
            ilo: Mutex::new(Some(ilo)),
            pdu_port,
            pdu: Mutex::new(None),
            arbiter,
            drbd,
            notes,
        })
    }

    /// Is the program a scenario needs available here (and its part of the lab running)?
    pub fn has(&self, program: &str) -> bool {
        match program {
            "sshd" => self.drbd.as_ref().map(|d| d.over_ssh()).unwrap_or(false),
            "drbdadm" => self.drbd.is_some(),
            "arbiter" => self.arbiter.is_some(),
            "snmpsim" => services::have(super::pdu_sim::PROGRAM),
            other => services::have(other),
        }
    }

    /// Replace `$LAB`, `$IPMI_PORT`, `$ILO_PORT`, `$ARBITER_PORT`, `$DRBD_NODES` in a step argument.
    pub fn expand(&self, arg: &str) -> String {
        let mut s = arg
            .replace("$LAB", &self.dir.to_string_lossy())
            .replace("$IPMI_PORT", &self.ipmi_port.to_string())
            .replace("$ILO_PORT", &self.ilo_port.to_string())
            .replace("$PDU_PORT", &self.pdu_port.to_string());
        if let Some(a) = &self.arbiter {
            s = s.replace("$ARBITER_PORT", &a.port.to_string());
        }
        if let Some(d) = &self.drbd {
            for (i, n) in d.nodes.iter().enumerate() {
                s = s.replace(&format!("$SSH_PORT{}", i + 1), &n.port.map(|p| p.to_string()).unwrap_or_default());
            }
        }
        s
    }

    /// Expand a step's arguments; an argument `$DRBD_NODES` becomes `--node NAME=TARGET` for both
    /// simulated DRBD nodes.
    pub fn expand_args(&self, args: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for a in args {
            if a == "$DRBD_NODES" {
                if let Some(d) = &self.drbd {
                    out.extend(d.node_args());
                    continue;
                }
            }
            out.push(self.expand(a));
        }
        out
    }

    /// Environment every command in the lab runs with: the fencing audit log, the SSH key and
    /// known_hosts of the DRBD nodes, the recovery journal, the DRBD simulator's state.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut v = vec![("TWONODE_FENCE_AUDIT_LOG".to_string(), self.dir.join("fence-audit.log").display().to_string())];
        if let Some(d) = &self.drbd {
            v.push(("TWONODE_SSH_IDENTITY".into(), d.identity.display().to_string()));
            v.push(("TWONODE_SSH_KNOWN_HOSTS".into(), d.known_hosts.display().to_string()));
            v.push(("TWONODE_JOURNAL_DIR".into(), d.journal.display().to_string()));
            v.push(("TWONODE_DRBD_SIM".into(), d.state.display().to_string()));
        }
        v
    }

    /// Undo `expand` in output, for logs that compare across runs.
    pub fn placeholders(&self, text: &str) -> String {
        let mut t = text.replace(&*self.dir.to_string_lossy(), "$LAB");
        let mut ports: Vec<(u16, String)> =
            vec![(self.ilo_port, "$ILO_PORT".into()), (self.pdu_port, "$PDU_PORT".into()), (self.ipmi_port, "$IPMI_PORT".into())];
        if let Some(a) = &self.arbiter {
            ports.push((a.port, "$ARBITER_PORT".into()));
        }
        if let Some(d) = &self.drbd {
            for (i, n) in d.nodes.iter().enumerate() {
                if let Some(p) = n.port {
                    ports.push((p, format!("$SSH_PORT{}", i + 1)));
                }
            }
        }
        for (port, name) in ports {
            t = replace_port(&t, port, &name);
        }
        if let Some(d) = &self.drbd {
            t = t.replace(&format!("{}@127.0.0.1", d.user), "$SSH_USER@127.0.0.1");
        }
        t
    }

    /// Lab path of a file.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn check_node(node: &str) -> anyhow::Result<()> {
        if node != "node1" && node != "node2" {
            bail!("the lab has node1 and node2, not {node}");
        }
        Ok(())
    }

    /// The power state a node's BMC models (true = on). Read from the simulator's state file, so
    /// it is known even while the BMC itself is stopped.
    pub fn power_on(&self, node: &str) -> anyhow::Result<bool> {
        Self::check_node(node)?;
        Ok(if node == "node1" {
            services::power_file_on(&self.dir.join("bmc-node1").join("state"))
        } else {
            std::fs::read_to_string(self.dir.join("ilo-node2").join("power")).map(|s| s.trim() != "off").unwrap_or(true)
        })
    }

    /// Set a node's power directly (someone pressed the button, or the node came back).
    pub fn set_power(&self, node: &str, on: bool) -> anyhow::Result<()> {
        Self::check_node(node)?;
        if node == "node1" {
            std::fs::write(self.dir.join("bmc-node1").join("state").join("power.0x20"), if on { "1\n" } else { "0\n" })?;
        } else {
            std::fs::write(self.dir.join("ilo-node2").join("power"), if on { "on" } else { "off" })?;
        }
        Ok(())
    }

    /// Is the node's BMC process answering (not stopped by a scenario)?
    pub fn bmc_running(&self, node: &str) -> bool {
        match node {
            "node1" => self.ipmi.lock().map(|b| b.is_some()).unwrap_or(false),
            "node2" => self.ilo.lock().map(|b| b.is_some()).unwrap_or(false),
            _ => false,
        }
    }

    /// Stop a node's BMC: its port stops answering (a dead BMC, a pulled network cable).
    pub fn stop_bmc(&self, node: &str) -> anyhow::Result<()> {
        Self::check_node(node)?;
        if node == "node1" {
            let mut g = self.ipmi.lock().map_err(|_| anyhow::anyhow!("lab lock poisoned"))?;
            g.take();
        } else {
            let mut g = self.ilo.lock().map_err(|_| anyhow::anyhow!("lab lock poisoned"))?;
            if let Some(mut s) = g.take() {
                s.stop();
            }
        }
        Ok(())
    }

    /// Start a stopped BMC again on the same port (cluster.conf still points there).
    pub fn start_bmc(&self, node: &str) -> anyhow::Result<()> {
        Self::check_node(node)?;
        if node == "node1" {
            let mut g = self.ipmi.lock().map_err(|_| anyhow::anyhow!("lab lock poisoned"))?;
            if g.is_none() {
                *g = Some(BmcSim::start(node1_bmc(&self.dir, Some(self.ipmi_port)))?);
            }
        } else {
            let mut g = self.ilo.lock().map_err(|_| anyhow::anyhow!("lab lock poisoned"))?;
            if g.is_none() {
                let mut cfg = IloSimConfig::new(Profile::Ilo2, self.dir.join("ilo-node2"));
                cfg.bind = std::net::SocketAddr::from(([127, 0, 0, 1], self.ilo_port));
                *g = Some(IloSim::start(cfg)?);
            }
        }
        Ok(())
    }

    /// Make a node's BMC accept power-on requests but never power on (or undo it).
    pub fn ignore_power_on(&self, node: &str, on: bool) -> anyhow::Result<()> {
        Self::check_node(node)?;
        if node == "node1" {
            let f = self.dir.join("bmc-node1").join("state").join("ignore_on");
            if on {
                std::fs::write(f, "")?;
            } else if f.exists() {
                std::fs::remove_file(f)?;
            }
        } else {
            let f = self.dir.join("ilo-node2").join("ignore_on");
            if on {
                std::fs::write(f, "")?;
            } else if f.exists() {
                std::fs::remove_file(f)?;
            }
        }
        Ok(())
    }

    /// One line on both nodes' power and BMCs: "node1 on (BMC up), node2 off (BMC DOWN)".
    pub fn observe_power(&self) -> anyhow::Result<String> {
        let mut parts = Vec::new();
        for n in ["node1", "node2"] {
            let bmc = if self.bmc_running(n) { "BMC up" } else { "BMC DOWN" };
            parts.push(format!("{n} {} ({bmc})", if self.power_on(n)? { "on" } else { "off" }));
        }
        Ok(parts.join(", "))
    }

    /// Start the switched PDU (snmpsim) on `pdu_port`: node2's power supplies on outlets 3 and 4
    /// (node2-psu1, node2-psu2), fed into node2's power state. Does nothing if it runs.
    pub fn start_pdu(&self) -> anyhow::Result<()> {
        let mut g = self.pdu.lock().map_err(|_| anyhow::anyhow!("lab lock poisoned"))?;
        if g.is_none() {
            let power = self.dir.join("ilo-node2").join("power");
            *g = Some(PduSim::start(&self.dir.join("pdu"), self.pdu_port, &power, &[3, 4]).context("starting the lab's PDU")?);
        }
        Ok(())
    }

    pub fn pdu_running(&self) -> bool {
        self.pdu.lock().map(|p| p.is_some()).unwrap_or(false)
    }

    /// The PDU's outlet switches so far ("3 off", ...), from its log.
    pub fn pdu_switches(&self) -> Vec<String> {
        self.pdu.lock().ok().and_then(|p| p.as_ref().map(|p| p.switches())).unwrap_or_default()
    }

    /// Stop the arbiter (as if its host died).
    pub fn stop_arbiter(&self) -> anyhow::Result<()> {
        self.arbiter.as_ref().context("the lab has no arbiter")?.stop()
    }

    /// Start the arbiter again on the same port.
    pub fn start_arbiter(&self) -> anyhow::Result<()> {
        self.arbiter.as_ref().context("the lab has no arbiter")?.restart()
    }

    pub fn arbiter_running(&self) -> bool {
        self.arbiter.as_ref().map(|a| a.running()).unwrap_or(false)
    }
}

/// Replace `:PORT`, `=PORT`, `"PORT"`, ` PORT` (as a whole number) with NAME.
fn replace_port(text: &str, port: u16, name: &str) -> String {
    let p = port.to_string();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(&p) {
        let before = rest[..i].chars().last();
        let after = rest[i + p.len()..].chars().next();
        let whole = !before.map(|c| c.is_ascii_alphanumeric() || c == '.' || c == '$').unwrap_or(false)
            && !after.map(|c| c.is_ascii_alphanumeric()).unwrap_or(false);
        let ctx = matches!(before, Some(':') | Some('=') | Some('"') | Some(' ') | Some('\'') | Some('(') | Some('/'));
        out.push_str(&rest[..i]);
        if whole && ctx {
            out.push_str(name);
        } else {
            out.push_str(&p);
        }
        rest = &rest[i + p.len()..];
    }
    out.push_str(rest);
    out
}

/// Create DIR for a new lab, refusing a directory that already holds files (a previous lab's
/// staged cluster.conf.new, keys or journal would change what the steps do).
pub fn fresh_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let used = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?.next().is_some();
    if used {
        return Err(anyhow::Error::new(crate::util::Failure::new(
            2,
            format!(
                "{} is not empty: a lab needs a fresh directory (a previous lab's files would change what the steps do); \
                 pick another directory or remove this one",
                dir.display()
            ),
        )));
    }
    Ok(())
}

/// Where a lab directory lives when none is given: a fresh temporary directory.
pub fn temp_dir() -> anyhow::Result<tempfile::TempDir> {
    Ok(tempfile::Builder::new().prefix("twonode-lab.").tempdir()?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports_become_placeholders_only_as_whole_numbers() {
        let t = super::replace_port("ipport=\"40123\" at 127.0.0.1:40123 port 40123 but 401234 and x40123", 40123, "$P");
        assert_eq!(t, "ipport=\"$P\" at 127.0.0.1:$P port $P but 401234 and x40123");
    }

    #[test]
    fn nodes_are_checked() {
        assert!(super::Lab::check_node("node3").is_err());
    }
}
