//! The one fencing engine: the node's methods in order (cascade), every device of a method must
//! succeed (dual power supplies: every device off before any is switched on), reboot = off, confirm
//! off, power_wait, on, confirm on. A reboot whose power-on fails is reported as
//! `FencedPowerOnFailed` (exit 8), never as plain success.
//!
//! The engine does no I/O itself: devices come from a `DeviceOpener`, time from a `Clock`, and
//! everything that happens goes to an `Observer` (progress bars, audit log). Tests drive it with
//! simulated devices and a simulated clock.
use super::power::{PowerDevice, PowerError, PowerState};
use super::spec::{DeviceSpec, FenceTarget, Timing};
use serde::Serialize;
use std::time::{Duration, Instant};

/// What the admin (or fenced) asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Reboot,
    Off,
    On,
    Status,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Reboot => "reboot",
            Action::Off => "off",
            Action::On => "on",
            Action::Status => "status",
        }
    }
    pub fn is_destructive(self) -> bool {
        !matches!(self, Action::Status)
    }
}

/// Reboot by off/on with verification (default) or by one `cycle` command (only on request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum RebootMethod {
    #[default]
    Onoff,
    Cycle,
}

/// Which driver serves a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    Ipmi,
    Ribcl,
    Redfish,
    /// Switched PDU outlet over SNMP (fence_apc_snmp's devices, `apc_snmp.rs`).
    Snmp,
    External,
}

/// Driver for a device: `twonode_driver=` if set, else by `agent=`.
pub fn driver_kind(dev: &DeviceSpec) -> Result<DriverKind, PowerError> {
    if let Some(d) = dev.get(&["twonode_driver"]) {
        return match d.to_ascii_lowercase().as_str() {
            "ipmi" | "ipmilan" | "lanplus" => Ok(DriverKind::Ipmi),
            "ribcl" | "ilo" => Ok(DriverKind::Ribcl),
            "redfish" => Ok(DriverKind::Redfish),
            "apc_snmp" | "snmp" | "pdu" => Ok(DriverKind::Snmp),
            "external" | "agent" => Ok(DriverKind::External),
            other => Err(PowerError::Config(format!(
                "device {}: twonode_driver=\"{other}\" is not one of ipmi, ribcl, redfish, snmp, external",
                dev.name
            ))),
        };
    }
    let agent = dev.agent();
    let base = agent.rsplit('/').next().unwrap_or(agent);
    Ok(match base {
        "fence_ipmilan" | "fence_ilo3" | "fence_ilo4" | "fence_ilo5" | "fence_idrac" | "fence_imm"
        | "fence_ipmilanplus" => DriverKind::Ipmi,
        "fence_ilo" | "fence_ilo2" => DriverKind::Ribcl,
        "fence_redfish" => DriverKind::Redfish,
        "fence_apc_snmp" | "fence_tripplite_snmp" => DriverKind::Snmp,
        "" => {
            return Err(PowerError::Config(format!(
                "device {}: no agent= (and no twonode_driver=): cannot tell how to drive it",
                dev.name
            )))
        }
        _ => DriverKind::External,
    })
}

/// Source of time. Real: `RealClock`; tests: a simulated clock that only advances on `sleep`.
pub trait Clock {
    fn now(&self) -> Duration;
    fn sleep(&self, d: Duration);
}

pub struct RealClock(Instant);

impl RealClock {
    pub fn new() -> Self {
        RealClock(Instant::now())
    }
}

impl Default for RealClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for RealClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }
}

/// Opens a driver for a device spec (I/O lives behind this).
pub trait DeviceOpener {
    fn open(&mut self, dev: &DeviceSpec, timing: &Timing) -> Result<Box<dyn PowerDevice>, PowerError>;
}

/// One thing the engine did, for reports, progress and the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub method: String,
    pub device: String,
    /// status, off, on, cycle, delay, power_wait, wait_off, wait_on
    pub op: String,
    /// "ok", "on", "off", or the error text
    pub result: String,
    pub ok: bool,
    /// Milliseconds since the engine started.
    pub at_ms: u64,
    pub took_ms: u64,
}

/// Live events for progress display.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    Step(&'a Step),
    /// Polling `device` for `want`; `elapsed` of `limit` used so far.
    Waiting { device: &'a str, want: PowerState, elapsed: Duration, limit: Duration },
    WaitDone { device: &'a str },
    Sleeping { why: &'a str, d: Duration },
}

/// Asks the quorum arbiter before a method whose first device is the arbiter gate
/// (`fence::gate`, agent `fence_twonode_arbiter`). `Ok(hold)`: this node holds the cluster's vote
/// and may fence; the engine keeps `hold` until the method has ended (the real gatekeeper keeps
/// its arbiter connection open meanwhile). `Err`: no vote, the method fails without touching
/// any device.
pub trait Gatekeeper {
    fn acquire(&mut self, gate: &DeviceSpec, target: &FenceTarget, action: Action) -> Result<Box<dyn std::any::Any>, PowerError>;
}

/// Split a method into its gate (first device, when it is the arbiter gate) and the real
/// devices. A gate anywhere but first is a configuration error (the devices before it would run
/// without the vote).
pub fn split_gate(devs: &[DeviceSpec]) -> Result<(Option<&DeviceSpec>, Vec<DeviceSpec>), PowerError> {
    if let Some(pos) = devs.iter().skip(1).position(super::gate::is_gate) {
        return Err(PowerError::Config(format!(
            "device {} (the arbiter gate) is device {} of its method: it must be the first, or the devices before it \
             run without the arbiter's vote (twonode conf gate-fencing fixes the order)",
            devs[pos + 1].name,
            pos + 2
        )));
    }
    match devs.first() {
        Some(g) if super::gate::is_gate(g) => {
            let rest: Vec<DeviceSpec> = devs[1..].to_vec();
            if rest.is_empty() {
                return Err(PowerError::Config(format!(
                    "the method has only the arbiter gate {} and no real fence device after it",
                    g.name
                )));
            }
            Ok((Some(g), rest))
        }
        _ => Ok((None, devs.to_vec())),
    }
}

pub trait Observer {
    fn event(&mut self, e: Event<'_>);
}

pub struct NoObserver;
impl Observer for NoObserver {
    fn event(&mut self, _e: Event<'_>) {}
}

/// The overall result.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Action done and the resulting state confirmed.
    Done,
    /// `status`: every device reports on (or at least one of several).
    StatusOn,
    StatusOff,
    /// Reboot: the node is off (confirmed), but power-on failed.
    FencedPowerOnFailed { error: PowerError },
    Failed { error: PowerError },
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub node: String,
    pub action: Action,
    pub reboot_method: RebootMethod,
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The method that succeeded (or confirmed off for FencedPowerOnFailed).
    pub method: Option<String>,
    pub message: String,
    pub steps: Vec<Step>,
    pub elapsed_ms: u64,
}

/// Exit code for fenced-but-power-on-failed.
pub const EXIT_POWER_ON_FAILED: i32 = 8;

impl Report {
    /// 0 ok / on, 2 off (status), 8 power-on failed after fencing, else the error kind's code.
    pub fn exit_code(&self) -> i32 {
        match &self.verdict {
            Verdict::Done | Verdict::StatusOn => 0,
            Verdict::StatusOff => 2,
            Verdict::FencedPowerOnFailed { .. } => EXIT_POWER_ON_FAILED,
            Verdict::Failed { error } => error.exit_code(),
        }
    }
    pub fn fenced(&self) -> bool {
        matches!(self.verdict, Verdict::Done | Verdict::FencedPowerOnFailed { .. })
            && matches!(self.action, Action::Off | Action::Reboot)
    }
}

/// Options the caller can force for the whole run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub reboot_method: Option<RebootMethod>,
    /// Skip the configured delay (e.g. the fence test, where no race exists).
    pub no_delay: bool,
}

struct Opened {
    spec: DeviceSpec,
    timing: Timing,
    dev: Box<dyn PowerDevice>,
}

/// A run of the engine over one target.
pub struct Engine<'a> {
    clock: &'a dyn Clock,
    opener: &'a mut dyn DeviceOpener,
    observer: &'a mut dyn Observer,
    steps: Vec<Step>,
    gatekeeper: Option<&'a mut dyn Gatekeeper>,
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

impl<'a> Engine<'a> {
    pub fn new(clock: &'a dyn Clock, opener: &'a mut dyn DeviceOpener, observer: &'a mut dyn Observer) -> Self {
        Engine { clock, opener, observer, steps: Vec::new(), gatekeeper: None }
    }

    /// Ask `g` before every method gated by the arbiter (see [`Gatekeeper`]).
    pub fn with_gatekeeper(mut self, g: &'a mut dyn Gatekeeper) -> Self {
        self.gatekeeper = Some(g);
        self
    }

    /// The gate of one method: `Ok(None)` no gate or a non-destructive action, `Ok(Some(hold))`
    /// the vote is held, `Err` no vote (or no gatekeeper): the method must not run.
    fn pass_gate(&mut self, method: &str, gate: Option<&DeviceSpec>, target: &FenceTarget, action: Action) -> Result<Option<Box<dyn std::any::Any>>, PowerError> {
        let Some(g) = gate else { return Ok(None) };
        if !matches!(action, Action::Off | Action::Reboot) {
            return Ok(None);
        }
        let t0 = self.clock.now();
        let r = match self.gatekeeper.as_mut() {
            Some(k) => k.acquire(g, target, action),
            None => Err(PowerError::Config(format!(
                "method {method} is gated by the arbiter ({}) but this run cannot ask it; no vote, no fencing",
                g.name
            ))),
        };
        match r {
            Ok(h) => {
                self.record(method, &g.name, "gate", t0, Ok("vote granted (ACK)".into()));
                Ok(Some(h))
            }
            Err(e) => {
                self.record(method, &g.name, "gate", t0, Err(&e));
                Err(e)
            }
        }
    }

    fn record(&mut self, method: &str, device: &str, op: &str, started: Duration, r: Result<String, &PowerError>) {
        let now = self.clock.now();
        let (result, ok) = match r {
            Ok(s) => (s, true),
            Err(e) => (e.to_string(), false),
        };
        let step = Step {
            method: method.into(),
            device: device.into(),
            op: op.into(),
            result,
            ok,
            at_ms: ms(started),
            took_ms: ms(now.saturating_sub(started)),
        };
        self.observer.event(Event::Step(&step));
        self.steps.push(step);
    }

    fn sleep(&mut self, method: &str, why: &str, d: Duration) {
        if d.is_zero() {
            return;
        }
        let t0 = self.clock.now();
        self.observer.event(Event::Sleeping { why, d });
        self.clock.sleep(d);
        self.record(method, "-", why, t0, Ok(format!("{:.1}s", d.as_secs_f64())));
    }

    fn open_all(&mut self, method: &str, devs: &[DeviceSpec]) -> Result<Vec<Opened>, PowerError> {
        let mut out = Vec::new();
        for spec in devs {
            let t0 = self.clock.now();
            let timing = Timing::for_device(spec).map_err(PowerError::Config)?;
            match self.opener.open(spec, &timing) {
                Ok(dev) => out.push(Opened { spec: spec.clone(), timing, dev }),
                Err(e) => {
                    self.record(method, &spec.name, "open", t0, Err(&e));
                    return Err(e);
                }
            }
        }
        Ok(out)
    }

    fn status(&mut self, method: &str, o: &mut Opened) -> Result<PowerState, PowerError> {
        let t0 = self.clock.now();
        let r = o.dev.status();
        match &r {
            Ok(s) => self.record(method, &o.spec.name, "status", t0, Ok(state_word(*s).into())),
            Err(e) => self.record(method, &o.spec.name, "status", t0, Err(e)),
        }
        r
    }

    fn command(&mut self, method: &str, o: &mut Opened, op: &str) -> Result<(), PowerError> {
        let t0 = self.clock.now();
        let r = match op {
            "on" => o.dev.power_on(),
            "off" => o.dev.power_off(),
            _ => o.dev.power_cycle(),
        };
        match &r {
            Ok(()) => self.record(method, &o.spec.name, op, t0, Ok("ok".into())),
            Err(e) => self.record(method, &o.spec.name, op, t0, Err(e)),
        }
        r
    }

    /// Poll until `want` or power_timeout. Auth/config errors end the wait at once.
    fn wait_for(&mut self, method: &str, o: &mut Opened, want: PowerState) -> Result<(), PowerError> {
        let t0 = self.clock.now();
        let limit = o.timing.power_timeout;
        let mut last_err: Option<PowerError>;
        let op = if want == PowerState::Off { "wait_off" } else { "wait_on" };
        loop {
            let elapsed = self.clock.now().saturating_sub(t0);
            self.observer.event(Event::Waiting { device: &o.spec.name, want, elapsed, limit });
            match o.dev.status() {
                Ok(s) if s == want => {
                    self.observer.event(Event::WaitDone { device: &o.spec.name });
                    self.record(method, &o.spec.name, op, t0, Ok(state_word(s).into()));
                    return Ok(());
                }
                Ok(_) => last_err = None,
                Err(e @ (PowerError::Auth(_) | PowerError::Config(_))) => {
                    self.observer.event(Event::WaitDone { device: &o.spec.name });
                    self.record(method, &o.spec.name, op, t0, Err(&e));
                    return Err(e);
                }
                Err(e) => last_err = Some(e),
            }
            let elapsed = self.clock.now().saturating_sub(t0);
            if elapsed >= limit {
                self.observer.event(Event::WaitDone { device: &o.spec.name });
                let e = match last_err {
                    Some(e) => PowerError::Timeout(format!(
                        "{}: could not read the power state for {:.0}s (power_timeout): {e}",
                        o.spec.name,
                        limit.as_secs_f64()
                    )),
                    None => PowerError::StateNotReached(format!(
                        "{}: still {} after {:.0}s (power_timeout); the device accepted the request but the \
                         power state did not change",
                        o.spec.name,
                        state_word(flip(want)),
                        limit.as_secs_f64()
                    )),
                };
                self.record(method, &o.spec.name, op, t0, Err(&e));
                return Err(e);
            }
            let step = o.timing.poll_interval.min(limit.saturating_sub(elapsed)).max(Duration::from_millis(10));
            self.clock.sleep(step);
        }
    }

    /// Off phase for every device of a method: off where not already off, power_wait, confirm off.
    fn off_phase(&mut self, method: &str, devs: &mut [Opened]) -> Result<(), PowerError> {
        let mut sent = false;
        for o in devs.iter_mut() {
            match self.status(method, o)? {
                PowerState::Off => {}
                PowerState::On => {
                    self.command(method, o, "off")?;
                    sent = true;
                }
            }
        }
        if sent {
            let wait = devs.iter().map(|o| o.timing.power_wait).max().unwrap_or_default();
            self.sleep(method, "power_wait", wait);
        }
        for o in devs.iter_mut() {
            self.wait_for(method, o, PowerState::Off)?;
        }
        Ok(())
    }

    /// On phase: every device on (retry_on attempts each), power_wait, confirm on.
    fn on_phase(&mut self, method: &str, devs: &mut [Opened]) -> Result<(), PowerError> {
        for o in devs.iter_mut() {
            let attempts = o.timing.retry_on.max(1);
            let mut last = None;
            for attempt in 1..=attempts {
                let r = match self.status(method, o) {
                    Ok(PowerState::On) => Ok(()),
                    Ok(PowerState::Off) => self.command(method, o, "on").and_then(|_| {
                        let w = o.timing.power_wait;
                        self.sleep(method, "power_wait", w);
                        self.wait_for(method, o, PowerState::On)
                    }),
                    Err(e) => Err(e),
                };
                match r {
                    Ok(()) => {
                        last = None;
                        break;
                    }
                    Err(e @ (PowerError::Auth(_) | PowerError::Config(_))) => {
                        last = Some(e);
                        break;
                    }
                    Err(e) => {
                        if attempt < attempts {
                            tracing::info!("{}: power on attempt {attempt} failed: {e}", o.spec.name);
                        }
                        last = Some(e)
                    }
                }
            }
            if let Some(e) = last {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Reboot by a single cycle command: never on a chassis that is off (then plain on).
    fn cycle_phase(&mut self, method: &str, devs: &mut [Opened]) -> Result<(), PowerError> {
        for o in devs.iter_mut() {
            match self.status(method, o)? {
                PowerState::Off => self.command(method, o, "on")?,
                PowerState::On => self.command(method, o, "cycle")?,
            }
        }
        let wait = devs.iter().map(|o| o.timing.power_wait).max().unwrap_or_default();
        self.sleep(method, "power_wait", wait);
        for o in devs.iter_mut() {
            self.wait_for(method, o, PowerState::On)?;
        }
        Ok(())
    }

    /// Run `action` on `target` through its methods in order.
    pub fn run(mut self, target: &FenceTarget, action: Action, opts: &RunOptions) -> Report {
        let started = self.clock.now();
        let mut report = Report {
            node: target.node.clone(),
            action,
            reboot_method: RebootMethod::Onoff,
            verdict: Verdict::Failed { error: PowerError::Config("no fence method".into()) },
            method: None,
            message: String::new(),
            steps: vec![],
            elapsed_ms: 0,
        };
        if target.methods.iter().all(|m| m.devices.is_empty()) {
            let e = PowerError::Config(format!(
                "node {} has no fence device configured (add <fence><method><device/></method></fence> in cluster.conf)",
                target.node
            ));
            report.message = e.to_string();
            report.verdict = Verdict::Failed { error: e };
            return report;
        }
        // The delay (fence race breaker) once, before off/reboot only.
        if matches!(action, Action::Off | Action::Reboot) && !opts.no_delay {
            let delay = target
                .methods
                .iter()
                .find(|m| !m.devices.is_empty())
                .map(|m| {
                    m.devices
                        .iter()
                        .filter_map(|d| Timing::for_device(d).ok())
                        .map(|t| t.delay)
                        .max()
                        .unwrap_or_default()
                })
                .unwrap_or_default();
            self.sleep("-", "delay", delay);
        }
        let mut errors: Vec<(String, PowerError)> = Vec::new();
        for m in target.methods.iter().filter(|m| !m.devices.is_empty()) {
            let mname = if m.name.is_empty() { "(unnamed)".to_string() } else { m.name.clone() };
            let (gate, real) = match split_gate(&m.devices) {
                Ok(x) => x,
                Err(e) => {
                    errors.push((mname, e));
                    continue;
                }
            };
            // Held until this iteration ends: through every device of the method.
            let _hold = match self.pass_gate(&mname, gate, target, action) {
                Ok(h) => h,
                Err(e) => {
                    errors.push((mname, e));
                    continue;
                }
            };
            let mut devs = match self.open_all(&mname, &real) {
                Ok(d) => d,
                Err(e) => {
                    errors.push((mname, e));
                    continue;
                }
            };
            let mut reboot_method = opts.reboot_method.unwrap_or_else(|| {
                if real.iter().any(|d| d.get(&["method"]).map(|v| v.eq_ignore_ascii_case("cycle")) == Some(true)) {
                    RebootMethod::Cycle
                } else {
                    RebootMethod::Onoff
                }
            });
            // Several devices (power supplies) cycled one after the other need never be off at the
            // same time: the machine keeps running. Only off/on guarantees all off before any on.
            if action == Action::Reboot && reboot_method == RebootMethod::Cycle && devs.len() > 1 {
                let t0 = self.clock.now();
                let note = format!("cycle not used with {} devices in one method: all off before any on", devs.len());
                self.record(&mname, "", "onoff", t0, Ok(note));
                reboot_method = RebootMethod::Onoff;
            }
            report.reboot_method = reboot_method;
            let result: Result<Verdict, PowerError> = match action {
                Action::Status => {
                    let mut any_on = false;
                    let mut err = None;
                    for o in devs.iter_mut() {
                        match self.status(&mname, o) {
                            Ok(PowerState::On) => any_on = true,
                            Ok(PowerState::Off) => {}
                            Err(e) => {
                                err = Some(e);
                                break;
                            }
                        }
                    }
                    match err {
                        Some(e) => Err(e),
                        None if any_on => Ok(Verdict::StatusOn),
                        None => Ok(Verdict::StatusOff),
                    }
                }
                Action::Off => self.off_phase(&mname, &mut devs).map(|_| Verdict::Done),
                Action::On => self.on_phase(&mname, &mut devs).map(|_| Verdict::Done),
                Action::Reboot if reboot_method == RebootMethod::Cycle => {
                    self.cycle_phase(&mname, &mut devs).map(|_| Verdict::Done)
                }
                Action::Reboot => match self.off_phase(&mname, &mut devs) {
                    Err(e) => Err(e),
                    Ok(()) => match self.on_phase(&mname, &mut devs) {
                        Ok(()) => Ok(Verdict::Done),
                        Err(e) => Ok(Verdict::FencedPowerOnFailed { error: e }),
                    },
                },
            };
            match result {
                Ok(v) => {
                    report.method = Some(mname.clone());
                    report.message = message_for(&target.node, action, reboot_method, &v, &mname);
                    report.verdict = v;
                    report.steps = std::mem::take(&mut self.steps);
                    report.elapsed_ms = ms(self.clock.now().saturating_sub(started));
                    return report;
                }
                Err(e) => {
                    errors.push((mname, e));
                }
            }
        }
        // Every method failed: report the last error's kind, and every method's reason.
        let summary = errors.iter().map(|(m, e)| format!("method {m}: {e}")).collect::<Vec<_>>().join("; ");
        let (_, last) = errors.pop().unwrap_or(("-".into(), PowerError::Config("no usable fence method".into())));
        report.message = format!("{} {} FAILED: {summary}", target.node, action.as_str());
        report.verdict = Verdict::Failed { error: last };
        report.steps = std::mem::take(&mut self.steps);
        report.elapsed_ms = ms(self.clock.now().saturating_sub(started));
        report
    }
}

fn flip(s: PowerState) -> PowerState {
    match s {
        PowerState::On => PowerState::Off,
        PowerState::Off => PowerState::On,
    }
}

pub fn state_word(s: PowerState) -> &'static str {
    match s {
        PowerState::On => "on",
        PowerState::Off => "off",
    }
}

fn message_for(node: &str, action: Action, rm: RebootMethod, v: &Verdict, method: &str) -> String {
    match v {
        Verdict::StatusOn => format!("{node} is ON (method {method})"),
        Verdict::StatusOff => format!("{node} is OFF (method {method})"),
        Verdict::FencedPowerOnFailed { error } => {
            format!("{node} fenced (off confirmed), power-on FAILED (method {method}): {error}")
        }
        Verdict::Failed { error } => format!("{node} {} FAILED: {error}", action.as_str()),
        Verdict::Done => match action {
            Action::Off => format!("{node} fenced: power off confirmed (method {method})"),
            Action::On => format!("{node} power on confirmed (method {method})"),
            Action::Reboot if rm == RebootMethod::Cycle => format!(
                "{node} power cycled, on confirmed (method {method}; cycle: the off phase is not observable)"
            ),
            Action::Reboot => format!("{node} fenced: off confirmed, then on confirmed (method {method})"),
            Action::Status => format!("{node}: status read (method {method})"),
        },
    }
}

/// Human-readable plan of what `run` would do (for --dry-run), secrets never included.
pub fn plan(target: &FenceTarget, action: Action, opts: &RunOptions) -> Vec<String> {
    let mut out = Vec::new();
    let first = target.methods.iter().find(|m| !m.devices.is_empty());
    if matches!(action, Action::Off | Action::Reboot) && !opts.no_delay {
        if let Some(m) = first {
            let d = m.devices.iter().filter_map(|d| Timing::for_device(d).ok()).map(|t| t.delay).max();
            if let Some(d) = d.filter(|d| !d.is_zero()) {
                out.push(format!("wait delay {:.0}s (fence race breaker)", d.as_secs_f64()));
            }
        }
    }
    for (i, m) in target.methods.iter().filter(|m| !m.devices.is_empty()).enumerate() {
        let names: Vec<String> = m
            .devices
            .iter()
            .map(|d| {
                if super::gate::is_gate(d) {
                    return format!("{} (ask the arbiter {}:{} for the vote first; no vote, no fencing)", d.name, d.address().unwrap_or("?"), d.ipport().unwrap_or("5403"));
                }
                let k = driver_kind(d).map(|k| format!("{k:?}").to_lowercase()).unwrap_or_else(|e| e.to_string());
                format!("{} via {k}", d.describe())
            })
            .collect();
        let head = if i == 0 { "method".to_string() } else { "if that fails, method".to_string() };
        let cycle = (opts.reboot_method == Some(RebootMethod::Cycle)
            || m.devices.iter().any(|d| d.get(&["method"]).map(|v| v.eq_ignore_ascii_case("cycle")) == Some(true)))
            && m.devices.iter().filter(|d| !super::gate::is_gate(d)).count() <= 1;
        let what = match action {
            Action::Status => "read status of every device (on if any is on)".to_string(),
            Action::Off => "off on every device not already off; power_wait; poll each until off (power_timeout)".into(),
            Action::On => "on on every device; power_wait; poll each until on (retry_on attempts)".into(),
            Action::Reboot if cycle => "status; cycle if on, on if off; power_wait; poll until on".into(),
            Action::Reboot => "off on every device, confirm all off; then on every device, confirm all on \
                               (power-on failure after confirmed off = exit 8)"
                .into(),
        };
        out.push(format!("{head} {}: {}: {what}", m.name, names.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fence::sim::{SimClock, SimOpener};
    use crate::fence::spec::Method;
    use PowerState::*;

    fn dev(name: &str, extra: &[(&str, &str)]) -> DeviceSpec {
        let mut p: Vec<(String, String)> = vec![("agent".into(), "fence_sim".into())];
        p.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        DeviceSpec::new(name, p)
    }

    fn target(methods: Vec<(&str, Vec<DeviceSpec>)>) -> FenceTarget {
        FenceTarget {
            node: "node2".into(),
            nodeid: None,
            methods: methods.into_iter().map(|(n, d)| Method { name: n.into(), devices: d }).collect(),
        }
    }

    fn run(op: &mut SimOpener, clock: &SimClock, t: &FenceTarget, a: Action) -> Report {
        let mut obs = NoObserver;
        Engine::new(clock, op, &mut obs).run(t, a, &RunOptions::default())
    }

    #[test]
    fn reboot_is_off_confirm_wait_on_confirm() {
        let clock = SimClock::new();
        let mut op = SimOpener::new(clock.clone());
        let c = op.add("d1", On);
        let t = target(vec![("m", vec![dev("d1", &[("power_wait", "3")])])]);
        let r = run(&mut op, &clock, &t, Action::Reboot);
        assert!(matches!(r.verdict, Verdict::Done), "{r:?}");
        assert_eq!(r.exit_code(), 0);
        assert_eq!(c.borrow().power, On);
        let log = c.borrow().log.clone();
        let off = log.iter().position(|s| s == "off").unwrap();
        let on = log.iter().position(|s| s == "on").unwrap();
        assert!(off < on);
        // power_wait after off, then after on
        assert!(r.steps.iter().filter(|s| s.op == "power_wait").count() == 2);
        assert!(r.steps.iter().any(|s| s.op == "wait_off" && s.ok));
    }

    #[test]
    fn power_on_failure_after_confirmed_off_is_exit_8_not_success() {
        let clock = SimClock::new();
        let mut op = SimOpener::new(clock.clone());
        let c = op.add("d1", On);
        c.borrow_mut().ignore_on = true;
        let t = target(vec![("m", vec![dev("d1", &[("power_timeout", "5"), ("retry_on", "2")])])]);
        let r = run(&mut op, &clock, &t, Action::Reboot);
        assert!(matches!(r.verdict, Verdict::FencedPowerOnFailed { .. }), "{r:?}");
        assert_eq!(r.exit_code(), EXIT_POWER_ON_FAILED);
        assert!(r.message.contains("fenced (off confirmed), power-on FAILED"), "{}", r.message);
        assert!(r.fenced());
        // retry_on=2: two on requests
        assert_eq!(c.borrow().log.iter().filter(|s| *s == "on").count(), 2);
    }

    #[test]
    fn ignored_off_is_state_not_reached_after_power_timeout() {
        let clock = SimClock::new();
        let mut op = SimOpener::new(clock.clone());
        let c = op.add("d1", On);
        c.borrow_mut().ignore_off = true;
        let t = target(vec![("m", vec![dev("d1", &[("power_timeout", "7")])])]);
        let r = run(&mut op, &clock, &t, Action::Off);
        assert_eq!(r.exit_code(), 7, "{r:?}");
        assert!(clock.now() >= Duration::from_secs(7) && clock.now() < Duration::from_secs(9));
        assert!(c.borrow().log.iter().all(|s| s != "on"));
    }

    #[test]
    fn cascade_falls_through_to_second_method() {
        let clock = SimClock::new();
        let mut op = SimOpener::new(clock.clone());
        let c1 = op.add("ipmi", On);
        c1.borrow_mut().fail_open = Some(PowerError::Unreachable("dead BMC".into()));
        let pdu = op.add("pdu", On);
        let t = target(vec![("ipmi", vec![dev("ipmi", &[])]), ("pdu", vec![dev("pdu", &[])])]);
        let r = run(&mut op, &clock, &t, Action::Off);
        assert!(matches!(r.verdict, Verdict::Done), "{r:?}");
        assert_eq!(r.method.as_deref(), Some("pdu"));
        assert_eq!(pdu.borrow().power, Off);
    }

    #[test]
    fn all_methods_failing_reports_last_kind_and_every_reason() {
        let clock = SimClock::new();
        let mut op = SimOpener::new(clock.clone());
        op.add("a", On).borrow_mut().fail_open = Some(PowerError::Unreachable("x".into()));
        op.add("b", On).borrow_mut().fail_status = Some(PowerError::Auth("bad password".into()));
        let t = target(vec![("one", vec![dev("a", &[])]), ("two", vec![dev("b", &[])])]);
        let r = run(&mut op, &clock, &t, Action::Reboot);
        assert_eq!(r.exit_code(), 3);
        assert!(r.message.contains("method one") && r.message.contains("method two"), "{}", r.message);
    }

    #[test]
    fn dual_psu_every_off_before_any_on() {
        let clock = SimClock::new();
        let mut op = SimOpener::new(clock.clone());
        let a = op.add("psu1", On);
        let b = op.add("psu2", On);
        let order = Rc::new(RefCell::new(Vec::<String>::new()));
        let t = target(vec![("psu", vec![dev("psu1", &[]), dev("psu2", &[])])]);
        let r = run(&mut op, &clock, &t, Action::Reboot);
        assert!(matches!(r.verdict, Verdict::Done));
        let cmds: Vec<String> = r
            .steps
            .iter()
            .filter(|s| s.op == "on" || s.op == "off")
            .map(|s| format!("{} {}", s.device, s.op))
            .collect();
        order.borrow_mut().extend(cmds.clone());
        assert_eq!(cmds, vec!["psu1 off", "psu2 off", "psu1 on", "psu2 on"]);
        assert_eq!(a.borrow().power, On);
        assert_eq!(b.borrow().power, On);
    }

    use std::cell::RefCell;
    use std::rc::Rc;

    #[test]
    fn dual_psu_written_the_cman_way_with_action_attributes() {
        // <device name="psu1" action="off"/><device name="psu2" action="off"/>
        // <device name="psu1" action="on"/><device name="psu2" action="on"/>
        let clock = SimClock::new();
        let mut op = SimOpener::new(clock.clone());
        let a = op.add("psu1", On);
        let b = op.add("psu2", On);
        let t = target(vec![(
            "psu",
            vec![
                dev("psu1", &[("action", "off")]),
                dev("psu2", &[("action", "off")]),
                dev("psu1", &[("action", "on")]),
                dev("psu2", &[("action", "on")]),
            ],
        )]);
        let r = run(&mut op, &clock, &t, Action::Reboot);
        assert!(matches!(r.verdict, Verdict::Done), "{r:?}");
        let cmds: Vec<String> =
            r.steps.iter().filter(|s| s.op == "on" || s.op == "off").map(|s| format!("{} {}", s.device, s.op)).collect();
        assert_eq!(cmds, vec!["psu1 off", "psu2 off", "psu1 on", "psu2 on"]);
        assert_eq!((a.borrow().power, b.borrow().power), (On, On));
        let r = run(&mut op, &clock, &t, Action::Off);
        assert!(matches!(r.verdict, Verdict::Done));
        assert_eq!((a.borrow().power, b.borrow().power), (Off, Off));
    }

    #[test]
    fn dual_psu_one_failing_off_fails_the_method() {
        let clock = SimClock::new();
        let mut op = SimOpener::new(clock.clone());
        op.add("psu1", On);
        op.add("psu2", On).borrow_mut().ignore_off = true;
        let t = target(vec![("psu", vec![dev("psu1", &[("power_timeout", "3")]), dev("psu2", &[("power_timeout", "3")])])]);
        let r = run(&mut op, &clock, &t, Action::Reboot);
        assert_eq!(r.exit_code(), 7, "{r:?}");
        assert!(!r.fenced());
    }

    #[test]
    fn delay_before_off_and_reboot_only() {
        let clock = SimClock::new();
        let mut op = SimOpener::new(clock.clone());
        op.add("d1", On);
        let t = target(vec![("m", vec![dev("d1", &[("delay", "15")])])]);
        let r = run(&mut op, &clock, &t, Action::Status);
        assert!(matches!(r.verdict, Verdict::StatusOn));
        assert!(clock.now() < Duration::from_secs(1));
        let r = run(&mut op, &clock, &t, Action::On);
        assert!(r.steps.iter().all(|s| s.op != "delay"));
        let r = run(&mut op, &clock, &t, Action::Off);
        assert_eq!(r.steps[0].op, "delay");
        assert!(clock.now() >= Duration::from_secs(15));
    }

    #[test]
    fn status_exit_codes() {
        let clock = SimClock::new();
        let mut op = SimOpener::new(clock.clone());
        op.add("d1", Off);
        let t = target(vec![("m", vec![dev("d1", &[])])]);
        let r = run(&mut op, &clock, &t, Action::Status);
        assert_eq!(r.exit_code(), 2);
    }

    #[test]
    fn cycle_only_when_requested_and_never_on_an_off_chassis() {
        let clock = SimClock::new();
        let mut op = SimOpener::new(clock.clone());
        let c = op.add("d1", Off);
        let t = target(vec![("m", vec![dev("d1", &[("method", "cycle")])])]);
        let r = run(&mut op, &clock, &t, Action::Reboot);
        assert!(matches!(r.verdict, Verdict::Done), "{r:?}");
        assert!(c.borrow().log.iter().all(|s| s != "cycle"));
        assert_eq!(c.borrow().power, On);
        let r = run(&mut op, &clock, &t, Action::Reboot);
        assert!(matches!(r.verdict, Verdict::Done));
        assert_eq!(c.borrow().log.iter().filter(|s| *s == "cycle").count(), 1);
        // Without method=cycle no cycle is sent.
        let t2 = target(vec![("m", vec![dev("d1", &[])])]);
        run(&mut op, &clock, &t2, Action::Reboot);
        assert_eq!(c.borrow().log.iter().filter(|s| *s == "cycle").count(), 1);
    }

    #[test]
    fn cycle_never_used_for_several_power_supplies() {
        let clock = SimClock::new();
        let mut op = SimOpener::new(clock.clone());
        let a = op.add("psu1", On);
        let b = op.add("psu2", On);
        let t = target(vec![("m", vec![dev("psu1", &[("method", "cycle")]), dev("psu2", &[])])]);
        let r = run(&mut op, &clock, &t, Action::Reboot);
        assert!(matches!(r.verdict, Verdict::Done), "{r:?}");
        assert_eq!(r.reboot_method, RebootMethod::Onoff);
        assert!(r.steps.iter().any(|s| s.op == "onoff" && s.result.contains("all off before any on")), "{:?}", r.steps);
        for c in [&a, &b] {
            assert!(c.borrow().log.iter().all(|s| s != "cycle"), "{:?}", c.borrow().log);
            assert_eq!(c.borrow().power, On);
        }
        let p = plan(&t, Action::Reboot, &RunOptions { reboot_method: Some(RebootMethod::Cycle), no_delay: false });
        assert!(p.iter().all(|l| !l.contains("cycle if on")), "{p:?}");
    }

    #[test]
    fn late_bmc_is_polled_until_state_reached() {
        let clock = SimClock::new();
        let mut op = SimOpener::new(clock.clone());
        let c = op.add("d1", On);
        c.borrow_mut().delay = Duration::from_secs(4);
        let t = target(vec![("m", vec![dev("d1", &[("power_wait", "0")])])]);
        let r = run(&mut op, &clock, &t, Action::Reboot);
        assert!(matches!(r.verdict, Verdict::Done), "{r:?}");
        assert!(clock.now() >= Duration::from_secs(8));
    }

    #[test]
    fn agent_defaults_apply_unless_configured() {
        let clock = SimClock::new();
        let mut op = SimOpener::new(clock.clone());
        op.add("d1", On);
        let t = target(vec![(
            "m",
            vec![DeviceSpec::new("d1", vec![("agent".to_string(), "fence_ilo".to_string())])],
        )]);
        run(&mut op, &clock, &t, Action::Status);
        assert_eq!(op.opened[0].1, Duration::from_secs(10));
    }

    #[test]
    fn dispatch_by_agent_and_override() {
        let k = |agent: &str, drv: Option<&str>| {
            let mut p = vec![("agent".to_string(), agent.to_string())];
            if let Some(d) = drv {
                p.push(("twonode_driver".into(), d.into()));
            }
            driver_kind(&DeviceSpec::new("x", p)).unwrap()
        };
        assert_eq!(k("fence_ilo", None), DriverKind::Ribcl);
        for a in ["fence_ipmilan", "fence_ilo3", "fence_ilo4", "fence_idrac", "fence_imm"] {
            assert_eq!(k(a, None), DriverKind::Ipmi, "{a}");
        }
        assert_eq!(k("fence_redfish", None), DriverKind::Redfish);
        assert_eq!(k("fence_apc", None), DriverKind::External);
        assert_eq!(k("fence_apc_snmp", None), DriverKind::Snmp);
        assert_eq!(k("fence_apc_snmp", Some("external")), DriverKind::External);
        assert_eq!(k("/usr/sbin/fence_ipmilan", None), DriverKind::Ipmi);
        assert_eq!(k("fence_ipmilan", Some("external")), DriverKind::External);
        assert!(driver_kind(&DeviceSpec::new("x", vec![("twonode_driver".to_string(), "foo".to_string())])).is_err());
    }

    #[test]
    fn no_device_is_a_config_error() {
        let clock = SimClock::new();
        let mut op = SimOpener::new(clock.clone());
        let r = run(&mut op, &clock, &target(vec![]), Action::Off);
        assert_eq!(r.exit_code(), 1);
    }
}
