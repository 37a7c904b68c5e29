//! DRBD: state model, parsers for every format, split-brain classification.
pub mod state;
