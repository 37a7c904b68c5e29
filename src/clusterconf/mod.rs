//! cluster.conf engine: a lossless document, a typed model over it, edits as byte patches,
//! validation with line:column diagnostics. Pure: bytes in, values out (the store does the I/O).
pub mod agents;
pub mod document;
pub mod edit;
pub mod model;
pub mod relaxng;
pub mod store;
pub mod validate;
