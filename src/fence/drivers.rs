//! The real `DeviceOpener`: picks the driver for a device (`engine::driver_kind`) and builds it
//! from the device's parameters.
use super::engine::{driver_kind, DeviceOpener, DriverKind};
use super::external::ExternalAgent;
use super::ipmi::{IpmiConfig, IpmiDevice, Privilege};
use super::power::{PowerDevice, PowerError};
use super::spec::{DeviceSpec, Timing};

/// IPMI settings from fence_ipmilan-style parameters.
pub fn ipmi_config(dev: &DeviceSpec, timing: &Timing) -> Result<IpmiConfig, PowerError> {
    let host = dev
        .address()
        .ok_or_else(|| PowerError::Config(format!("device {}: no ipaddr= for the BMC", dev.name)))?
        .to_string();
    let port = match dev.ipport() {
        None => 623,
        Some(p) => p
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| PowerError::Config(format!("device {}: ipport=\"{p}\" is not a UDP port", dev.name)))?,
    };
    let cipher = match dev.get(&["cipher"]) {
        None => None,
        Some(c) if c.trim().is_empty() => None,
        Some(c) => Some(
            c.trim()
                .parse::<u8>()
                .map_err(|_| PowerError::Config(format!("device {}: cipher=\"{c}\" is not a cipher suite number", dev.name)))?,
        ),
    };
    let privilege = Privilege::parse(dev.get(&["privlvl"]).unwrap_or("administrator"))
        .map_err(|e| PowerError::Config(format!("device {}: {e}", dev.name)))?;
    let password = dev.password().map_err(PowerError::Config)?;
    Ok(IpmiConfig {
        host,
        port,
        username: dev.login().unwrap_or("").to_string(),
        password,
        cipher,
        privilege,
        timeout: timing.login_timeout,
        retries: 1,
    })
}

/// The device's parameters with the engine's effective login/power timeouts filled in, so the
/// RIBCL and Redfish drivers (which read them from their parameters) use the same values.
fn with_timing(dev: &DeviceSpec, timing: &Timing) -> std::collections::BTreeMap<String, String> {
    let mut p = dev.params.clone();
    p.entry("login_timeout".into()).or_insert_with(|| format!("{}", timing.login_timeout.as_secs_f64()));
    p.entry("power_timeout".into()).or_insert_with(|| format!("{}", timing.power_timeout.as_secs_f64()));
    p
}

#[derive(Default)]
pub struct RealOpener;

impl DeviceOpener for RealOpener {
    fn open(&mut self, dev: &DeviceSpec, timing: &Timing) -> Result<Box<dyn PowerDevice>, PowerError> {
        match driver_kind(dev)? {
            DriverKind::Ipmi => Ok(Box::new(IpmiDevice::new(ipmi_config(dev, timing)?)?)),
            DriverKind::External => Ok(Box::new(ExternalAgent::new(dev, timing)?)),
            DriverKind::Ribcl => Ok(Box::new(super::ribcl::RibclDevice::from_params(&with_timing(dev, timing))?)),
            DriverKind::Redfish => Ok(Box::new(super::redfish::RedfishDevice::from_params(&with_timing(dev, timing))?)),
            DriverKind::Snmp => Ok(Box::new(super::apc_snmp::ApcSnmpDevice::from_params(&with_timing(dev, timing))?)),
        }
    }
}
