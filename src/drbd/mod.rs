//! DRBD: state model, parsers for every format, split-brain classification.
pub mod parse;
pub mod render;
pub mod state;
