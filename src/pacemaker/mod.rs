//! Pacemaker two-node clusters: the CIB read into a typed model ([`cib`]) and the findings about
//! its fencing, quorum policy and DRBD integration ([`checks`]). Pure: the CLI reads the files (or
//! runs `cibadmin -Q`) and hands the text in.
pub mod checks;
pub mod drbd;
pub mod fence;
pub mod source;
pub mod cib;
pub mod xml;

pub use cib::{parse, Cib, CibError};
