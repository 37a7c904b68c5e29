//! Fencing: one engine (cascade of methods, reboot = off/verify/on/verify) over small power drivers.
pub mod power;
