//! DRBD: state model, parsers for every format, split-brain classification.
pub mod journal;
pub mod parse;
pub mod recover;
pub mod render;
pub mod run;
pub mod splitbrain;
pub mod state;
