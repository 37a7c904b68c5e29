//! drbd
