//! clusterconf
pub mod store;
