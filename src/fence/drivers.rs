//! The real `DeviceOpener`: picks the driver for a device (`engine::driver_kind`) and builds it
//! from the device's parameters (typed configs: `config.rs`).
use super::engine::{driver_kind, DeviceOpener, DriverKind};
use super::external::ExternalAgent;
use super::ipmi::{IpmiConfig, IpmiDevice};
use super::power::{PowerDevice, PowerError};
use super::spec::{DeviceSpec, Timing};

/// IPMI settings from fence_ipmilan-style parameters ([`super::config::ipmi`]).
pub fn ipmi_config(dev: &DeviceSpec, timing: &Timing) -> Result<IpmiConfig, PowerError> {
    super::config::ipmi(dev, timing)
}

#[derive(Default)]
pub struct RealOpener;

impl DeviceOpener for RealOpener {
    fn open(&mut self, dev: &DeviceSpec, timing: &Timing) -> Result<Box<dyn PowerDevice>, PowerError> {
        match driver_kind(dev)? {
            DriverKind::Ipmi => Ok(Box::new(IpmiDevice::new(ipmi_config(dev, timing)?)?)),
            DriverKind::External => Ok(Box::new(ExternalAgent::new(dev, timing)?)),
            DriverKind::Ribcl => Ok(Box::new(super::ribcl::RibclDevice::from_params_timed(&dev.params, Some(timing))?)),
            DriverKind::Redfish => Ok(Box::new(super::redfish::RedfishDevice::from_params_timed(&dev.params, Some(timing))?)),
            DriverKind::Snmp => Ok(Box::new(super::apc_snmp::ApcSnmpDevice::from_params_timed(&dev.params, Some(timing))?)),
        }
    }
}
