//! Simulators admins rehearse with, and the lab that ties them together.
pub mod demo;
pub mod drbd_sim;
pub mod ilo_sim;
pub mod services;
