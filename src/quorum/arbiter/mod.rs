//! The quorum arbiter: a corosync-qnetd replacement for the third machine.
//!
//! * [`wire`]: the qdevice ⇄ qnetd TLV protocol (framing, typed messages);
//! * [`core`]: the sans-IO state machine (events + time in, messages + timers out).
pub mod core;
pub mod wire;
