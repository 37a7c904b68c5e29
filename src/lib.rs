//! twonode: a toolkit for two-node high-availability clusters.
//!
//! Each area keeps a pure core (parsers, validators, planners, state machines) apart from the thin
//! drivers that talk to files, sockets, SSH and processes. See `docs/architecture.md`.
pub mod cli;
pub mod clusterconf;
pub mod diag;
pub mod doctor;
pub mod drbd;
pub mod fence;
pub mod ha;
pub mod host;
pub mod lab;
pub mod pacemaker;
pub mod quorum;
pub mod util;
