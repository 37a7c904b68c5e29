//! The HA manager's view: Proxmox ha-manager's semantics (CRM/LRM, service states, groups and
//! rules, shutdown policies, fencing) as a deterministic core, its regression-test simulator, and
//! twonode's two-node Env where fencing is the arbiter's vote plus a power-off confirmed by the BMC.
pub mod config;
pub mod model;
pub mod state;
pub mod placement;
pub mod env;
pub mod node_status;
pub mod manager;
pub mod crm;
pub mod lrm;
pub mod sim;
pub mod whatif;
pub mod validate;
pub mod status_view;
