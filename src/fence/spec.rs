//! What the fencing engine is asked to work with: a node, its fence methods in order, and for each
//! method the devices with their merged key=value parameters, as fenced passes them to an agent
//! (the node's `<device>` attributes, then the `<fencedevice>` ones; on stdin the later line wins).
//!
//! `from_cluster_conf` reads them through the cluster.conf model (`clusterconf::model`,
//! `Model::fencing_for`), so the parameters are merged exactly as fenced merges them.
use super::options;
use crate::clusterconf::model::{Model, NodeFencing};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// One fence device as used by one node's method, with all parameters merged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceSpec {
    /// The `<fencedevice name=...>` (for reports).
    pub name: String,
    /// Merged parameters; keys normalised with `_` for `-`. May contain secrets: never print.
    #[serde(skip)]
    pub params: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Method {
    pub name: String,
    pub devices: Vec<DeviceSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FenceTarget {
    pub node: String,
    pub nodeid: Option<String>,
    pub methods: Vec<Method>,
}

/// Parameter keys whose values are secrets (never logged, never in argv).
pub const SECRET_KEYS: &[&str] = &["passwd", "password", "snmp_priv_passwd", "kg", "community"];

pub use super::options::normalise_key;

impl DeviceSpec {
    pub fn new(name: impl Into<String>, params: impl IntoIterator<Item = (String, String)>) -> Self {
        DeviceSpec { name: name.into(), params: params.into_iter().map(|(k, v)| (normalise_key(&k), v)).collect() }
    }

    /// First present, non-empty value among the aliases.
    pub fn get(&self, keys: &[&str]) -> Option<&str> {
        keys.iter().find_map(|k| self.params.get(*k).map(|s| s.as_str()).filter(|s| !s.is_empty()))
    }

    pub fn agent(&self) -> &str {
        self.get(&["agent"]).unwrap_or("")
    }

    /// Address of the device (`ipaddr` / `ip`: one option, [`super::options`]).
    pub fn address(&self) -> Option<&str> {
        options::get(&self.params, "ipaddr")
    }

    pub fn ipport(&self) -> Option<&str> {
        options::get(&self.params, "ipport")
    }

    pub fn login(&self) -> Option<&str> {
        options::get(&self.params, "login")
    }

    pub fn plug(&self) -> Option<&str> {
        options::get(&self.params, "port")
    }

    pub fn flag(&self, keys: &[&str]) -> Option<bool> {
        self.get(keys).map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "on" | "yes" | "true" | ""))
    }

    /// The password ([`options::password`]: the script's output when a password script is
    /// given, else `passwd`/`password`), "" when neither (fence_ipmilan's rule; drivers that
    /// need one use `options::password` and refuse `None`). Nothing of it ever goes into an argv.
    pub fn password(&self) -> Result<String, String> {
        options::password(&self.params).map(Option::unwrap_or_default).map_err(|e| format!("device {}: {e}", self.name))
    }

    /// A description safe for logs: agent and address, never the password.
    pub fn describe(&self) -> String {
        let mut s = format!("{} ({}", self.name, if self.agent().is_empty() { "no agent" } else { self.agent() });
        if let Some(a) = self.address() {
            s.push_str(&format!(" {a}"));
            if let Some(p) = self.ipport() {
                s.push_str(&format!(":{p}"));
            }
        }
        if let Some(p) = self.plug() {
            s.push_str(&format!(" plug {p}"));
        }
        s.push(')');
        s
    }

    /// Parameters with secrets masked (for reports and --json).
    pub fn redacted(&self) -> BTreeMap<String, String> {
        self.params
            .iter()
            .map(|(k, v)| {
                let v = if SECRET_KEYS.contains(&k.as_str()) { "********".to_string() } else { v.clone() };
                (k.clone(), v)
            })
            .collect()
    }
}

/// Timing knobs with the fence-agents defaults per agent, overridable per device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Timing {
    /// Sleep before off/reboot (fence race breaker).
    pub delay: Duration,
    /// Wait after a power command before checking status.
    pub power_wait: Duration,
    /// How long to poll status for the wanted state.
    pub power_timeout: Duration,
    /// Time allowed for contacting / logging in to the device.
    pub login_timeout: Duration,
    /// Attempts for power on.
    pub retry_on: u32,
    /// Interval between status polls.
    pub poll_interval: Duration,
}

impl Timing {
    /// fence-agents 4.12 defaults for `agent`.
    pub fn defaults_for(agent: &str) -> Timing {
        let a = agent.rsplit('/').next().unwrap_or(agent);
        let mut t = Timing {
            delay: Duration::ZERO,
            power_wait: Duration::ZERO,
            power_timeout: Duration::from_secs(20),
            login_timeout: Duration::from_secs(5),
            retry_on: 1,
            poll_interval: Duration::from_secs(1),
        };
        match a {
            "fence_ipmilan" | "fence_idrac" | "fence_imm" | "fence_ipmilanplus" => t.power_wait = Duration::from_secs(2),
            "fence_ilo3" | "fence_ilo4" | "fence_ilo5" => t.power_wait = Duration::from_secs(4),
            "fence_ilo" | "fence_ilo2" => {
                t.login_timeout = Duration::from_secs(10);
                t.retry_on = 3;
            }
            _ => {}
        }
        t
    }

    /// Defaults for the device's agent, then the device's own settings.
    pub fn for_device(dev: &DeviceSpec) -> Result<Timing, String> {
        let mut t = Timing::defaults_for(dev.agent());
        let secs = |key: &str| -> Result<Option<Duration>, String> {
            match dev.get(&[key]) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0 && *x < 86400.0)
                    .map(|x| Some(Duration::from_secs_f64(x)))
                    .ok_or_else(|| format!("device {}: {key}=\"{v}\" is not a number of seconds", dev.name)),
            }
        };
        if let Some(d) = secs("delay")? {
            t.delay = d;
        }
        if let Some(d) = secs("power_wait")? {
            t.power_wait = d;
        }
        if let Some(d) = secs("power_timeout")? {
            t.power_timeout = d;
        }
        if let Some(d) = secs("login_timeout")? {
            t.login_timeout = d;
        }
        if let Some(v) = dev.get(&["retry_on"]) {
            t.retry_on = v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1 && *n <= 100)
                .ok_or_else(|| format!("device {}: retry_on=\"{v}\" must be a whole number from 1", dev.name))?;
        }
        Ok(t)
    }
}

/// A configuration problem found while reading the fencing part of cluster.conf.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct ConfError {
    pub path: String,
    pub line: usize,
    pub message: String,
}

/// Adapter from the cluster.conf model: the methods, devices and merged parameters exactly as
/// fenced would pass them (`clusterconf::model::NodeFencing`).
pub fn from_node_fencing(f: &NodeFencing, path: &str) -> Result<FenceTarget, ConfError> {
    let mut methods = Vec::new();
    for m in &f.methods {
        let mut devices = Vec::new();
        for call in &m.devices {
            if !call.defined {
                return Err(ConfError {
                    path: path.into(),
                    line: call.line,
                    message: format!(
                        "node {} method {}: device \"{}\" is not defined in <fencedevices>",
                        f.node, m.name, call.device
                    ),
                });
            }
            let params = call
                .params
                .iter()
                .filter(|(k, _)| k != "nodename")
                .map(|(k, v)| (normalise_key(k), v.clone()))
                .collect();
            devices.push(DeviceSpec { name: call.device.clone(), params });
        }
        methods.push(Method { name: m.name.clone(), devices });
    }
    Ok(FenceTarget { node: f.node.clone(), nodeid: f.nodeid.map(|n| n.to_string()), methods })
}

/// Every node's fencing from a cluster.conf text, in document order.
pub fn from_cluster_conf(xml: &str, path: &str) -> Result<Vec<FenceTarget>, ConfError> {
    let (_doc, model) = Model::parse(xml.as_bytes())
        .map_err(|e| ConfError { path: path.into(), line: e.line, message: e.msg.clone() })?;
    from_model(&model, path)
}

/// Every node's fencing from the parsed model, in document order.
pub fn from_model(model: &Model, path: &str) -> Result<Vec<FenceTarget>, ConfError> {
    let mut out = Vec::new();
    for n in &model.nodes {
        let Some(name) = n.name.as_deref() else { continue };
        if let Some(f) = model.fencing_for(name) {
            out.push(from_node_fencing(&f, path)?);
        }
    }
    Ok(out)
}

/// Read and parse a cluster.conf file.
pub fn load_cluster_conf(path: &std::path::Path) -> anyhow::Result<Vec<FenceTarget>> {
    Ok(ClusterConf::load(path)?.targets)
}

/// One cluster.conf read and parsed ONCE for one fence: the fence targets and the model the
/// gate's cluster identity is read from (`gate::ClusterIdentity::from_model`).
pub struct ClusterConf {
    pub path: String,
    pub model: Model,
    pub targets: Vec<FenceTarget>,
}

impl ClusterConf {
    pub fn load(path: &std::path::Path) -> anyhow::Result<ClusterConf> {
        use anyhow::Context;
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let shown = path.display().to_string();
        let (_doc, model) =
            Model::parse(text.as_bytes()).map_err(|e| ConfError { path: shown.clone(), line: e.line, message: e.msg.clone() })?;
        let targets = from_model(&model, &shown)?;
        Ok(ClusterConf { path: shown, model, targets })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = r#"<?xml version="1.0"?>
<cluster name="c" config_version="1">
  <clusternodes>
    <clusternode name="n1" nodeid="1">
      <fence>
        <method name="ilo"><device name="ilo-n1" delay="15"/></method>
        <method name="pdu">
          <device name="apc" port="1" action="off"/>
          <device name="apc2" port="1"/>
        </method>
      </fence>
    </clusternode>
    <clusternode name="n2" nodeid="2"><fence/></clusternode>
  </clusternodes>
  <fencedevices>
    <fencedevice name="ilo-n1" agent="fence_ipmilan" ipaddr="10.0.0.1" login="a" passwd="s3cret" power-wait="3"/>
    <fencedevice name="apc" agent="fence_apc" ipaddr="10.0.0.9"/>
    <fencedevice name="apc2" agent="fence_apc" ipaddr="10.0.0.10"/>
  </fencedevices>
</cluster>"#;

    #[test]
    fn reads_methods_in_order_with_merged_params() {
        let t = from_cluster_conf(CONF, "cluster.conf").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].node, "n1");
        assert_eq!(t[0].methods.len(), 2);
        let d = &t[0].methods[0].devices[0];
        assert_eq!(d.agent(), "fence_ipmilan");
        assert_eq!(d.get(&["delay"]), Some("15"));
        assert!(d.get(&["nodename"]).is_none());
        assert_eq!(d.get(&["power_wait"]), Some("3"));
        assert_eq!(t[0].methods[1].devices.len(), 2);
        assert_eq!(t[0].methods[1].devices[0].plug(), Some("1"));
        assert!(t[1].methods.is_empty());
        let tm = Timing::for_device(d).unwrap();
        assert_eq!(tm.delay, Duration::from_secs(15));
        assert_eq!(tm.power_wait, Duration::from_secs(3));
        assert_eq!(tm.power_timeout, Duration::from_secs(20));
        assert!(!d.describe().contains("s3cret"));
        assert_eq!(d.redacted()["passwd"], "********");
    }

    #[test]
    fn undefined_device_names_the_line() {
        let bad = CONF.replace("name=\"apc2\" agent", "name=\"other\" agent");
        let e = from_cluster_conf(&bad, "cluster.conf").unwrap_err();
        assert_eq!(e.line, 9, "{e}");
        assert!(e.message.contains("apc2"));
    }

    #[test]
    fn agent_defaults() {
        assert_eq!(Timing::defaults_for("fence_ipmilan").power_wait, Duration::from_secs(2));
        assert_eq!(Timing::defaults_for("fence_ilo").retry_on, 3);
        assert_eq!(Timing::defaults_for("fence_ilo").login_timeout, Duration::from_secs(10));
        assert_eq!(Timing::defaults_for("fence_apc").power_wait, Duration::ZERO);
    }
}
