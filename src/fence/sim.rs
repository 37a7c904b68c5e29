//! Simulated power devices and a simulated clock for the engine's tests and the lab: a chassis that
//! can ignore on/off requests, apply them late, or fail status reads, on a clock that only moves
//! when someone sleeps.
use super::engine::{Clock, DeviceOpener};
use super::power::{PowerDevice, PowerError, PowerState};
use super::spec::{DeviceSpec, Timing};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

/// A clock that advances only on `sleep`.
#[derive(Clone, Default)]
pub struct SimClock(Rc<Cell<Duration>>);

impl SimClock {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Clock for SimClock {
    fn now(&self) -> Duration {
        self.0.get()
    }
    fn sleep(&self, d: Duration) {
        self.0.set(self.0.get() + d)
    }
}

/// The chassis behind one simulated device.
#[derive(Debug, Clone)]
pub struct SimChassis {
    pub power: PowerState,
    pub ignore_on: bool,
    pub ignore_off: bool,
    /// Requests take effect this long after they were accepted.
    pub delay: Duration,
    pub pending: Option<(Duration, PowerState)>,
    /// Every status read fails with this error.
    pub fail_status: Option<PowerError>,
    /// Opening the device fails with this error.
    pub fail_open: Option<PowerError>,
    /// Commands received, in order ("status", "on", "off", "cycle").
    pub log: Vec<String>,
}

impl SimChassis {
    pub fn new(power: PowerState) -> Self {
        SimChassis {
            power,
            ignore_on: false,
            ignore_off: false,
            delay: Duration::ZERO,
            pending: None,
            fail_status: None,
            fail_open: None,
            log: vec![],
        }
    }
    fn settle(&mut self, now: Duration) {
        if let Some((at, s)) = self.pending {
            if now >= at {
                self.power = s;
                self.pending = None;
            }
        }
    }
}

pub type Shared = Rc<RefCell<SimChassis>>;

pub struct SimDevice {
    pub name: String,
    pub chassis: Shared,
    pub clock: SimClock,
}

impl SimDevice {
    fn request(&mut self, want: PowerState, op: &str) {
        let now = self.clock.now();
        let mut c = self.chassis.borrow_mut();
        c.settle(now);
        c.log.push(op.into());
        let ignored = (want == PowerState::On && c.ignore_on) || (want == PowerState::Off && c.ignore_off);
        if ignored {
            return;
        }
        if c.delay.is_zero() {
            c.power = want;
        } else {
            c.pending = Some((now + c.delay, want));
        }
    }
}

impl PowerDevice for SimDevice {
    fn describe(&self) -> String {
        format!("simulated {}", self.name)
    }
    fn status(&mut self) -> Result<PowerState, PowerError> {
        let now = self.clock.now();
        let mut c = self.chassis.borrow_mut();
        c.settle(now);
        c.log.push("status".into());
        if let Some(e) = &c.fail_status {
            return Err(e.clone());
        }
        Ok(c.power)
    }
    fn power_on(&mut self) -> Result<(), PowerError> {
        self.request(PowerState::On, "on");
        Ok(())
    }
    fn power_off(&mut self) -> Result<(), PowerError> {
        self.request(PowerState::Off, "off");
        Ok(())
    }
    fn power_cycle(&mut self) -> Result<(), PowerError> {
        let now = self.clock.now();
        let mut c = self.chassis.borrow_mut();
        c.settle(now);
        c.log.push("cycle".into());
        if c.power == PowerState::Off {
            return Err(PowerError::NotSupported("cycle: command not supported in present state".into()));
        }
        Ok(())
    }
}

/// Opens simulated devices by fencedevice name.
#[derive(Default)]
pub struct SimOpener {
    pub clock: SimClock,
    pub chassis: BTreeMap<String, Shared>,
    /// (device name, login timeout seen) for every open.
    pub opened: Vec<(String, Duration)>,
}

impl SimOpener {
    pub fn new(clock: SimClock) -> Self {
        SimOpener { clock, chassis: BTreeMap::new(), opened: vec![] }
    }
    pub fn add(&mut self, name: &str, power: PowerState) -> Shared {
        let c = Rc::new(RefCell::new(SimChassis::new(power)));
        self.chassis.insert(name.into(), c.clone());
        c
    }
}

impl DeviceOpener for SimOpener {
    fn open(&mut self, dev: &DeviceSpec, timing: &Timing) -> Result<Box<dyn PowerDevice>, PowerError> {
        self.opened.push((dev.name.clone(), timing.login_timeout));
        let c = self
            .chassis
            .get(&dev.name)
            .cloned()
            .ok_or_else(|| PowerError::Unreachable(format!("{}: no such simulated device", dev.name)))?;
        if let Some(e) = c.borrow().fail_open.clone() {
            return Err(e);
        }
        Ok(Box::new(SimDevice { name: dev.name.clone(), chassis: c, clock: self.clock.clone() }))
    }
}
