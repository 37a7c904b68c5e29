//! Fencing: one engine (cascade of methods, reboot = off/verify/on/verify) over small power drivers.
pub mod power;
pub mod ipmi;
pub mod engine;
pub mod sim;
pub mod spec;
pub mod external;
pub mod drivers;
pub mod agent;
pub mod audit;
pub mod test;
pub mod ribcl;
pub mod tls;
pub mod redfish;
pub mod gate;
pub mod snmp;
pub mod apc_snmp;
pub mod rmcp;
