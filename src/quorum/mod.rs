//! Quorum: the votequorum arithmetic and configuration rules, and the quorum arbiter
//! (a corosync-qnetd replacement) with its wire format, sans-IO core and simulator.
pub mod arbiter;
pub mod corosync_conf;
pub mod votequorum;
