//! twonode's own engine: ask first, keep holding the vote while the method's devices run.
use crate::fence::engine::Action;
use crate::fence::power::PowerError;
use crate::fence::spec::{DeviceSpec, FenceTarget};
use crate::quorum::arbiter::client::{self, VoteHold};

use super::decide::{decide, plan, ring_seq_now, GateDecision, GatePlan};
use super::settings::{ClusterIdentity, GateSettings};

/// Ask the arbiter (socket driver) and decide.
pub fn ask(p: &GatePlan) -> GateDecision {
    let r = client::ask_vote(&p.client, &p.request);
    decide(p, &r)
}


/// Asks the arbiter for the engine (`twonode fence NODE --file`), keeping the connection (and so
/// the vote) while the method's real devices run.
pub struct RealGatekeeper {
    pub identity: ClusterIdentity,
    pub local: String,
    /// Decisions made (for reports).
    pub decisions: Vec<GateDecision>,
}

impl RealGatekeeper {
    pub fn new(identity: ClusterIdentity, local: String) -> Self {
        RealGatekeeper { identity, local, decisions: Vec::new() }
    }
}

impl crate::fence::engine::Gatekeeper for RealGatekeeper {
    fn acquire(&mut self, gate: &DeviceSpec, target: &FenceTarget, action: Action) -> Result<Box<dyn std::any::Any>, PowerError> {
        let _ = action;
        let settings = GateSettings::from_params(&gate.params).map_err(|e| PowerError::Config(format!("device {}: {e}", gate.name)))?;
        let p = plan(&settings, &self.identity, &self.local, &target.node, ring_seq_now()).map_err(PowerError::Config)?;
        let r = client::ask_and_hold(&p.client, &p.request);
        let (d, hold): (GateDecision, Option<VoteHold>) = match r {
            Ok((res, hold)) => (decide(&p, &Ok(res)), hold),
            Err(e) => (decide(&p, &Err(e)), None),
        };
        self.decisions.push(d.clone());
        match (d.allowed, hold) {
            (true, Some(h)) => Ok(Box::new(h)),
            (true, None) => Err(PowerError::Protocol("ACK without a hold".into())),
            _ => Err(gate_error(&d)),
        }
    }
}

/// A denied gate as the engine's error: NACK / no decision are "refused" (Config → exit 1).
pub fn gate_error(d: &GateDecision) -> PowerError {
    PowerError::Config(format!("{} ({})", d.message, d.expect))
}

