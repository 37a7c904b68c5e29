//! A pacemaker cluster's CIB as doctor gathered it (`--cib FILE|live`, or `cibadmin -Q` here when
//! it answers), and its fence devices asked for their status.
use crate::fence::test::DeviceCheck;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PacemakerFacts {
    /// Where the CIB came from (`cib.xml`, `cibadmin -Q on alice`).
    pub source: String,
    /// The CIB read. Never serialized: it holds the devices' passwords (a kept gathering has no
    /// CIB; the pacemaker checks then say so).
    #[serde(skip)]
    pub cib: Option<crate::pacemaker::Cib>,
    /// Why no CIB could be read.
    pub error: Option<String>,
    /// The CIB's devices asked for their power status (None: not contacted, --no-fence).
    #[serde(skip_deserializing)]
    pub device_checks: Option<Vec<DeviceCheck>>,
    /// Devices of the CIB that were not contacted, and why (disabled, targets unknown).
    #[serde(default)]
    pub not_tested: Vec<String>,
}
