//! clusterconf
