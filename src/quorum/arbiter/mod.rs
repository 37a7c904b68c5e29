//! The quorum arbiter: a corosync-qnetd replacement for the third machine.
//!
//! * [`wire`]: the qdevice ⇄ qnetd TLV protocol (framing, typed messages);
//! * [`core`]: the sans-IO state machine (events + time in, messages + timers out).
//! * [`server`]: the daemon (`twonode arbiter serve`): config file, the core's thread, status socket;
//! * [`reactor`]: its I/O loop (one epoll, every client in a slab, non-blocking OpenSSL);
//! * [`workers`]: the I/O loops in worker processes, for more clients than one process may hold;
//! * [`sim`]: deterministic simulator of clusters, networks and faults around the core;
//! * [`certs`]: certificates corosync-qdevice accepts (`twonode arbiter certs`).
//! * [`client`]: a qdevice-style client (probe, ask for the vote, hold it) for the fence gate.
pub mod certs;
pub mod client;
pub mod core;
pub mod loadgen;
mod reactor;
pub mod server;
pub mod sim;
pub mod wire;
pub mod workers;
