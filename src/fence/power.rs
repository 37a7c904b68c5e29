//! The one trait every power driver implements (IPMI, RIBCL, Redfish, external fence agent), and the
//! error kinds the fencing engine and its exit codes are built on.
use serde::Serialize;
use std::time::Duration;

/// The power state of a machine as its device reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    On,
    Off,
}

/// Why a device operation failed. Each kind has its own exit code (see `exit_code`) so that
/// scripts can tell a wrong password from a dead BMC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum PowerError {
    /// The device answered but refused the credentials or privilege level.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// Nothing answered at the address (connection refused, no route, no reply at all).
    #[error("device unreachable: {0}")]
    Unreachable(String),
    /// The device answered at first but an operation did not complete in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The device answered something we could not understand or that reported an error.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The device does not support the operation (e.g. cycle on a chassis that is off).
    #[error("not supported: {0}")]
    NotSupported(String),
    /// The requested power state was not reached within the allowed time.
    #[error("power state not reached: {0}")]
    StateNotReached(String),
    /// Bad configuration (missing address, unknown option...). Nothing was sent.
    #[error("configuration error: {0}")]
    Config(String),
}

impl PowerError {
    /// Process exit code for this error kind. 0 and 2 are taken by the fence-agents `status`
    /// convention (on / off); 1 stays the generic failure fence-agents users know.
    pub fn exit_code(&self) -> i32 {
        match self {
            PowerError::Config(_) => 1,
            PowerError::Auth(_) => 3,
            PowerError::Unreachable(_) => 4,
            PowerError::Timeout(_) => 5,
            PowerError::Protocol(_) | PowerError::NotSupported(_) => 6,
            PowerError::StateNotReached(_) => 7,
        }
    }
}

/// A device that can switch one machine's power. Implementations do the I/O; the fencing engine
/// (`engine.rs`) decides what to call and verifies the outcome by reading `status` back.
pub trait PowerDevice {
    /// A short description for reports and logs, never containing a secret.
    fn describe(&self) -> String;
    /// Contact the device and log in, if the driver has a separate login step (the fence test
    /// times it apart from the first status read). Default: nothing to do.
    fn connect(&mut self) -> Result<(), PowerError> {
        Ok(())
    }
    /// Read the current power state.
    fn status(&mut self) -> Result<PowerState, PowerError>;
    /// Ask for power on. Returning Ok only means the request was accepted.
    fn power_on(&mut self) -> Result<(), PowerError>;
    /// Ask for power off (hard off, not an ACPI request). Ok only means accepted.
    fn power_off(&mut self) -> Result<(), PowerError>;
    /// Ask for a power cycle, where the device supports one.
    fn power_cycle(&mut self) -> Result<(), PowerError> {
        Err(PowerError::NotSupported(format!("{}: power cycle", self.describe())))
    }
    /// How long a login / first contact may take before `Timeout`/`Unreachable`.
    fn login_timeout(&self) -> Duration {
        Duration::from_secs(5)
    }
}
