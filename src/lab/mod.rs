//! Simulators admins rehearse with, and the lab that ties them together.
pub mod bmc_sim;
pub mod demo;
pub mod drbd_sim;
pub mod faults;
pub mod ha;
pub mod ilo_sim;
pub mod pacemaker_split;
pub mod pdu_sim;
pub mod redfish_sim;
pub mod rig;
pub mod scenario;
pub mod services;
pub mod split;
pub mod splitbrain;
pub mod start;
pub mod steps;
pub mod tls_server;
