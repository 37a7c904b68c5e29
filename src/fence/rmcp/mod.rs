//! RMCP+ (IPMI 2.0 over LAN, "lanplus"), written for twonode: cipher suites 3 and 17.
//!
//! Why not ipmi-rs: version 0.6 runs suite 3 only (its SHA-256 paths are `todo!()`), never sends
//! Set Session Privilege Level or Close Session, hides the session ID, and panics on some
//! replies. The session layer is small enough to own: pure parts (`crypto`, `packet`, `client`
//! for the console, `server` for the lab's BMC simulator) and one thin socket driver (`udp`).
//!
//! - `crypto`: RAKP codes, SIK/K1/K2, HMAC-SHA1-96 / HMAC-SHA256-128 AuthCodes, AES-CBC-128.
//! - `packet`: datagram framing, IPMI LAN messages, Open Session / RAKP payloads, cipher suite
//!   records.
//! - `client`: the console's handshake state machine and active session (sans-IO).
//! - `server`: the BMC's side of the same (sans-IO), used by `crate::lab::bmc_sim`.
//! - `udp`: suite negotiation (Get Channel Cipher Suites, 17 preferred, else 3, as ipmitool
//!   1.8.19 does), retransmission and time limits.
pub mod client;
pub mod crypto;
pub mod packet;
pub mod server;
pub mod udp;

pub use crypto::Suite;
