//! The quorum arbiter: a corosync-qnetd replacement for the third machine.
//!
//! * [`wire`]: the qdevice ⇄ qnetd TLV protocol (framing, typed messages);
//! * [`core`]: the sans-IO state machine (events + time in, messages + timers out).
//! * [`server`]: the tokio + OpenSSL driver (`twonode arbiter serve`), config file, status socket;
//! * [`sim`]: deterministic simulator of clusters, networks and faults around the core;
//! * [`certs`]: certificates corosync-qdevice accepts (`twonode arbiter certs`).
//! * [`client`]: a qdevice-style client (probe, ask for the vote, hold it) for the fence gate.
pub mod certs;
pub mod client;
pub mod core;
pub mod loadgen;
pub mod server;
pub mod sim;
pub mod wire;
