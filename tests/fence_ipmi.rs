//! The native IPMI driver and `twonode fence` against a real OpenIPMI ipmi_sim on loopback.
mod fence_support;
use fence_support::*;
use std::time::Duration;
use twonode::fence::ipmi::{IpmiConfig, IpmiDevice, Privilege};
use twonode::fence::power::{PowerDevice, PowerError, PowerState};

fn cfg(sim: &IpmiSim, password: &str) -> IpmiConfig {
    IpmiConfig {
        host: "127.0.0.1".into(),
        port: sim.port,
        username: "admin".into(),
        password: password.into(),
        cipher: 3,
        privilege: Privilege::Administrator,
        timeout: Duration::from_secs(2),
        retries: 1,
    }
}

#[test]
fn driver_status_off_on_against_ipmi_sim() {
    let sim = IpmiSim::start();
    let mut dev = IpmiDevice::new(cfg(&sim, "secret")).unwrap();
    assert_eq!(dev.status().unwrap(), PowerState::On);
    dev.power_off().unwrap();
    assert!(!sim.power());
    assert_eq!(dev.status().unwrap(), PowerState::Off);
    dev.power_on().unwrap();
    assert!(sim.power());
    assert_eq!(dev.status().unwrap(), PowerState::On);
}

#[test]
fn driver_wrong_password_is_auth_error() {
    let sim = IpmiSim::start();
    let mut dev = IpmiDevice::new(cfg(&sim, "wrong")).unwrap();
    let err = dev.status().unwrap_err();
    assert!(matches!(err, PowerError::Auth(_)), "{err}");
}

#[test]
fn driver_closes_its_sessions() {
    // ipmi_sim allows 10 sessions per user: 14 sequential devices only work if each one closes.
    let sim = IpmiSim::start();
    for i in 0..14 {
        let mut dev = IpmiDevice::new(cfg(&sim, "secret")).unwrap();
        assert_eq!(dev.status().unwrap_or_else(|e| panic!("round {i}: {e}")), PowerState::On);
        dev.close().unwrap_or_else(|e| panic!("round {i}: close: {e}"));
    }
}
