//! The gate in cluster.conf: `twonode conf gate-fencing` as clusterconf's generic
//! [`LeadDevice`] edit, with the gate's agent, device name, port and attribute names from here.
//!
//! Attribute names: only names the stock cluster.rng accepts together (see the module doc of
//! `fence::gate`): `ipaddr`, `ipport`, `tlscacert`, `tlscert`, `tlskey`, `login_timeout` (the
//! decision timeout) and `power_timeout` (the hold).
use crate::clusterconf::edit::{Attrs, EditError, EditErrorKind, LeadDevice, LeadSet, Op};
use crate::quorum::arbiter::wire;

use super::settings::{AGENT, DEVICE_NAME};

/// The arbiter gate's settings as `twonode conf gate-fencing` takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateSpec {
    pub host: String,
    pub port: Option<u16>,
    pub ca: String,
    pub cert: String,
    pub key: String,
    /// Seconds to wait for the arbiter's decision.
    pub timeout: Option<u64>,
    /// Seconds the vote stays after the gate (power_timeout; heartbeat = hold / 2).
    pub hold: Option<u64>,
}

fn lead(set: Option<LeadSet>, describe: String) -> Op {
    Op::LeadDevice(LeadDevice {
        agent: AGENT.into(),
        set,
        what: "arbiter gate".into(),
        short: "gate".into(),
        command: "twonode conf gate-fencing".into(),
        describe,
    })
}

impl GateSpec {
    /// The `<fencedevice>` attributes (after the agent) the gate is written with.
    pub fn attrs(&self) -> Attrs {
        let mut attrs: Attrs = vec![("ipaddr".into(), self.host.trim().to_string())];
        attrs.push(("ipport".into(), self.port.unwrap_or(wire::DEFAULT_PORT).to_string()));
        attrs.push(("tlscacert".into(), self.ca.clone()));
        attrs.push(("tlscert".into(), self.cert.clone()));
        attrs.push(("tlskey".into(), self.key.clone()));
        if let Some(t) = self.timeout {
            // login_timeout, not timeout: cluster.rng allows tls* only with the former
            attrs.push(("login_timeout".into(), t.to_string()));
        }
        if let Some(h) = self.hold {
            attrs.push(("power_timeout".into(), h.to_string()));
        }
        attrs
    }

    /// The arguments as the gate needs them (checked before any file is touched).
    pub fn check(&self) -> Result<(), EditError> {
        if self.host.trim().is_empty() {
            return Err(EditError::invalid("--arbiter needs a host name or address"));
        }
        for (what, v) in [("--ca", &self.ca), ("--cert", &self.cert), ("--key", &self.key)] {
            if !v.starts_with('/') {
                return Err(EditError::new(
                    EditErrorKind::Invalid,
                    format!("{what} {v:?} is not an absolute path"),
                    Some("fenced runs the agent from another directory: give the path on the nodes, e.g. /etc/twonode/arbiter/node.key"),
                ));
            }
        }
        if let Some(h) = self.hold {
            if !(2..=240).contains(&h) {
                return Err(EditError::invalid(format!("--hold {h}: the arbiter accepts a hold of 2 to 240 seconds (heartbeat 1 to 120 s)")));
            }
        }
        if self.timeout == Some(0) {
            return Err(EditError::invalid("--timeout must be at least 1 second"));
        }
        Ok(())
    }

    /// The edit: define (or update) the gate and put it first in every method of every node.
    pub fn edit_op(&self) -> Result<Op, EditError> {
        self.check()?;
        let set = LeadSet {
            name: DEVICE_NAME.into(),
            attrs: self.attrs(),
            unset_absent: ["timeout", "login_timeout", "power_timeout"].iter().map(|k| k.to_string()).collect(),
        };
        Ok(lead(Some(set), format!("gate fencing through the arbiter {}", self.host)))
    }
}

/// The edit removing the gate from every method, and its fencedevice.
pub fn remove_op() -> Op {
    lead(None, "remove the arbiter gate from fencing".into())
}
