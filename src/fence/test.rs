//! Pre-production fence test (`twonode fence test`): every device of every node is contacted,
//! logged in to and asked for its power state, each timed; with `--destructive` every node is
//! powered off and on again, one at a time, each state confirmed and timed. Configuration risks
//! are flagged. The report (table and JSON) is meant to be kept as evidence.
use super::engine::{driver_kind, Action, Clock, DeviceOpener, Engine, Observer, RunOptions, Verdict};
use super::power::{PowerError, PowerState};
use super::spec::{FenceTarget, Timing};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
pub struct DeviceCheck {
    pub node: String,
    pub method: String,
    pub device: String,
    /// The device's plug/port (a PDU outlet), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plug: Option<String>,
    pub describe: String,
    pub driver: String,
    pub reachable: bool,
    pub login: bool,
    pub status: Option<PowerState>,
    pub connect_ms: u64,
    pub status_ms: u64,
    pub error: Option<String>,
    pub exit_code: Option<i32>,
}

impl DeviceCheck {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }

    /// What answered: `DEVICE answered: power on (login 0.12s, status 0.03s)`.
    pub fn answered(&self) -> String {
        format!(
            "{} answered: power {} (login {:.2}s, status {:.2}s)",
            self.describe,
            self.status.map(crate::fence::engine::state_word).unwrap_or("?"),
            self.connect_ms as f64 / 1000.0,
            self.status_ms as f64 / 1000.0
        )
    }

    /// How a failed check failed: unreachable, login refused, or status failed.
    pub fn failure(&self) -> &'static str {
        if !self.reachable {
            "unreachable"
        } else if !self.login {
            "login refused"
        } else {
            "status failed"
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PowerTest {
    pub node: String,
    pub skipped: Option<String>,
    pub off_ok: bool,
    pub off_ms: u64,
    pub on_ok: bool,
    pub on_ms: u64,
    pub ping_ms: Option<u64>,
    pub error: Option<String>,
}

impl PowerTest {
    pub fn ok(&self) -> bool {
        self.skipped.is_some() || (self.off_ok && self.on_ok && self.error.is_none())
    }
}

pub use crate::diag::Severity;

/// A risk's word: `fence test` has always called an error-grade risk "danger" (table and JSON).
fn risk_word(sev: Severity) -> &'static str {
    match sev {
        Severity::Error => "danger",
        other => other.name(),
    }
}

fn serialize_risk_severity<S: serde::Serializer>(sev: &Severity, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(risk_word(*sev))
}

#[derive(Debug, Clone, Serialize)]
pub struct Risk {
    /// `Warning`, or `Error` for a danger.
    #[serde(serialize_with = "serialize_risk_severity")]
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TestReport {
    pub file: String,
    pub started: String,
    pub checks: Vec<DeviceCheck>,
    pub power_tests: Vec<PowerTest>,
    pub risks: Vec<Risk>,
    /// How a fence race between the nodes is decided (arbiter gate, delay, none).
    #[serde(default)]
    pub race_protection: String,
    pub ok: bool,
}

fn ms(d: std::time::Duration) -> u64 {
    d.as_millis() as u64
}

/// Contact every device of every node (non-destructive).
pub fn check_devices(targets: &[FenceTarget], opener: &mut dyn DeviceOpener, clock: &dyn Clock) -> Vec<DeviceCheck> {
    let mut out = Vec::new();
    for t in targets {
        for m in &t.methods {
            for d in &m.devices {
                if super::gate::is_gate(d) {
                    out.push(gate_check(t, &m.name, d, clock));
                    continue;
                }
                let mut c = DeviceCheck {
                    node: t.node.clone(),
                    method: m.name.clone(),
                    device: d.name.clone(),
                    plug: d.plug().map(str::to_string),
                    describe: d.describe(),
                    driver: driver_kind(d).map(|k| format!("{k:?}").to_lowercase()).unwrap_or_else(|_| "?".into()),
                    reachable: false,
                    login: false,
                    status: None,
                    connect_ms: 0,
                    status_ms: 0,
                    error: None,
                    exit_code: None,
                };
                let fail = |c: &mut DeviceCheck, e: PowerError| {
                    c.reachable = !matches!(e, PowerError::Unreachable(_) | PowerError::Config(_));
                    c.login = c.reachable && !matches!(e, PowerError::Auth(_)) && c.login;
                    c.exit_code = Some(e.exit_code());
                    c.error = Some(e.to_string());
                };
                let t0 = clock.now();
                let timing = match Timing::for_device(d) {
                    Ok(t) => t,
                    Err(e) => {
                        fail(&mut c, PowerError::Config(e));
                        out.push(c);
                        continue;
                    }
                };
                let mut dev = match opener.open(d, &timing) {
                    Ok(dev) => dev,
                    Err(e) => {
                        fail(&mut c, e);
                        out.push(c);
                        continue;
                    }
                };
                let r = dev.connect();
                c.connect_ms = ms(clock.now().saturating_sub(t0));
                if let Err(e) = r {
                    fail(&mut c, e);
                    out.push(c);
                    continue;
                }
                c.reachable = true;
                c.login = true;
                let t1 = clock.now();
                let r = dev.status();
                c.status_ms = ms(clock.now().saturating_sub(t1));
                match r {
                    Ok(s) => c.status = Some(s),
                    Err(e) => fail(&mut c, e),
                }
                out.push(c);
            }
        }
    }
    out
}

/// The row of an arbiter gate: a probe (TCP, TLS, INIT accepted, round trip), no vote asked.
fn gate_check(t: &FenceTarget, method: &str, d: &super::spec::DeviceSpec, clock: &dyn Clock) -> DeviceCheck {
    let t0 = clock.now();
    let id = t.nodeid.as_deref().and_then(|n| n.parse::<u32>().ok()).unwrap_or(1);
    let r = super::gate::probe_device(d, None, id);
    let took = ms(clock.now().saturating_sub(t0));
    let mut c = DeviceCheck {
        node: t.node.clone(),
        method: method.to_string(),
        device: d.name.clone(),
        plug: None,
        describe: format!("{} (arbiter gate {}:{})", d.name, d.address().unwrap_or("?"), d.ipport().unwrap_or("5403")),
        driver: "arbiter".into(),
        reachable: false,
        login: false,
        status: None,
        connect_ms: took,
        status_ms: 0,
        error: None,
        exit_code: None,
    };
    match r {
        Ok(p) => {
            c.reachable = true;
            c.login = true;
            c.connect_ms = p.init_ms.round() as u64;
            c.status_ms = p.rtt_ms.ceil() as u64;
        }
        Err(e) => {
            c.reachable = !e.contains("unreachable");
            c.error = Some(format!("arbiter: {e}"));
            c.exit_code = Some(1);
        }
    }
    c
}

fn norm_addr(a: &str) -> String {
    a.trim().trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase()
}

/// Addresses a host name or address resolves to (empty if it does not resolve).
pub fn resolve(host: &str) -> Vec<std::net::IpAddr> {
    use std::net::ToSocketAddrs;
    if let Ok(ip) = norm_addr(host).parse::<std::net::IpAddr>() {
        return vec![ip];
    }
    (host, 0).to_socket_addrs().map(|it| it.map(|s| s.ip()).collect()).unwrap_or_default()
}

/// Configuration risks (pure but for the name resolution passed in).
pub fn risks(targets: &[FenceTarget], resolve: &dyn Fn(&str) -> Vec<std::net::IpAddr>) -> Vec<Risk> {
    let mut out = Vec::new();
    let fenced: Vec<&FenceTarget> = targets.iter().filter(|t| t.methods.iter().any(|m| !m.devices.is_empty())).collect();
    for t in targets.iter().filter(|t| t.methods.iter().all(|m| m.devices.is_empty())) {
        out.push(Risk {
            severity: Severity::Error,
            code: "no_fencing",
            message: format!("node {} has no fence device: the cluster cannot recover when it fails", t.node),
        });
    }
    // 1. fence race: no node has a delay on its first method (the arbiter gate on every method
    //    decides the race instead: `fence::gate::race_protection`)
    let all_gated = super::gate::GateLayout::of_targets(targets).complete();
    if fenced.len() >= 2 && !all_gated {
        let delayed = fenced.iter().any(|t| {
            t.methods.iter().find(|m| !m.devices.is_empty()).is_some_and(|m| {
                m.devices.iter().any(|d| {
                    Timing::for_device(d).map(|x| !x.delay.is_zero()).unwrap_or(false)
                        || d.get(&["pcmk_delay_max", "pcmk_delay_base"]).is_some()
                })
            })
        });
        if !delayed {
            out.push(Risk {
                severity: Severity::Warning,
                code: "fence_race",
                message: format!(
                    "no node has a fence delay: on a network split both nodes ({}) can fence each other at once. \
                     Set delay=\"15\" on the device of ONE node (the one that should survive)",
                    fenced.iter().map(|t| t.node.as_str()).collect::<Vec<_>>().join(", ")
                ),
            });
        }
    }
    // 2. one BMC (address:port, same plug) serving several nodes
    let mut seen: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
    for t in targets {
        for m in &t.methods {
            // the arbiter gate serves every node by design
            for d in m.devices.iter().filter(|d| !super::gate::is_gate(d)) {
                if let Some(a) = d.address() {
                    let port = d.ipport().unwrap_or("").to_string();
                    let plug = d.plug().unwrap_or("").to_string();
                    let e = seen.entry((norm_addr(a), port, plug)).or_default();
                    if !e.contains(&t.node) {
                        e.push(t.node.clone());
                    }
                }
            }
        }
    }
    for ((a, p, plug), nodes) in &seen {
        if nodes.len() > 1 {
            out.push(Risk {
                severity: Severity::Error,
                code: "shared_device",
                message: format!(
                    "one fence device {a}{}{} serves several nodes ({}): fencing one would power off the other, \
                     or the wrong machine",
                    if p.is_empty() { String::new() } else { format!(":{p}") },
                    if plug.is_empty() { String::new() } else { format!(" plug {plug}") },
                    nodes.join(", ")
                ),
            });
        }
    }
    // 3. device addressed through the node it fences
    for t in targets {
        let node_ips = resolve(&t.node);
        for m in &t.methods {
            for d in &m.devices {
                let Some(a) = d.address() else { continue };
                let same_name = norm_addr(a) == t.node.to_ascii_lowercase()
                    || norm_addr(a).split('.').next() == Some(&t.node.to_ascii_lowercase());
                let dev_ips = if same_name { vec![] } else { resolve(a) };
                let loopback_only = dev_ips.iter().all(|i| i.is_loopback()) && !dev_ips.is_empty();
                let same_ip = !loopback_only && dev_ips.iter().any(|i| node_ips.contains(i));
                if same_name || same_ip {
                    out.push(Risk {
                        severity: Severity::Error,
                        code: "device_on_node",
                        message: format!(
                            "device {} of node {} is addressed at {a}, the node's own address: when the node hangs or \
                             loses power it cannot be fenced. Use the BMC's own address",
                            d.name, t.node
                        ),
                    });
                }
            }
        }
    }
    // 4. a single fencing level on a BMC
    for t in &fenced {
        let levels: Vec<_> = t.methods.iter().filter(|m| !m.devices.is_empty()).collect();
        if levels.len() == 1
            && levels[0].devices.iter().filter(|d| !super::gate::is_gate(d)).all(|d| {
                matches!(
                    driver_kind(d),
                    Ok(super::engine::DriverKind::Ipmi | super::engine::DriverKind::Ribcl | super::engine::DriverKind::Redfish)
                )
            })
        {
            out.push(Risk {
                severity: Severity::Warning,
                code: "single_bmc_level",
                message: format!(
                    "node {} is fenced only through its BMC: if the node loses all power its BMC goes with it and \
                     fencing fails. Consider a second method (a switched PDU)",
                    t.node
                ),
            });
        }
    }
    out
}

/// Power `target` off and on again (destructive part), each confirmed by the engine.
pub fn power_test(
    target: &FenceTarget,
    opener: &mut dyn DeviceOpener,
    clock: &dyn Clock,
    observer: &mut dyn Observer,
) -> PowerTest {
    let opts = RunOptions { reboot_method: None, no_delay: true };
    let mut pt = PowerTest {
        node: target.node.clone(),
        skipped: None,
        off_ok: false,
        off_ms: 0,
        on_ok: false,
        on_ms: 0,
        ping_ms: None,
        error: None,
    };
    // The arbiter gate decides races between the nodes; a supervised, confirmed power test of the
    // real devices does not ask it (the gate's own row above probed the arbiter).
    let ungated = FenceTarget {
        methods: target
            .methods
            .iter()
            .map(|m| super::spec::Method { name: m.name.clone(), devices: m.devices.iter().filter(|d| !super::gate::is_gate(d)).cloned().collect() })
            .collect(),
        ..target.clone()
    };
    let target = &ungated;
    let off = Engine::new(clock, opener, observer).run(target, Action::Off, &opts);
    pt.off_ms = off.elapsed_ms;
    if !matches!(off.verdict, Verdict::Done) {
        pt.error = Some(format!("off: {}", off.message));
        return pt;
    }
    pt.off_ok = true;
    let on = Engine::new(clock, opener, observer).run(target, Action::On, &opts);
    pt.on_ms = on.elapsed_ms;
    if matches!(on.verdict, Verdict::Done) {
        pt.on_ok = true;
    } else {
        pt.error = Some(format!("on: {} (the node is left OFF)", on.message));
    }
    pt
}

/// Wait until `host` answers one ping, up to `limit`. Returns the time it took.
pub fn wait_ping(host: &str, limit: std::time::Duration) -> Option<u64> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        let ok = std::process::Command::new("ping")
            .args(["-c", "1", "-W", "1", "--", host])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return Some(start.elapsed().as_millis() as u64);
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    None
}

pub fn table(r: &TestReport) -> String {
    let mut s = String::new();
    s.push_str(&format!("fence test of {} at {}\n\n", r.file, r.started));
    s.push_str(&format!(
        "{:<12} {:<10} {:<16} {:<9} {:<6} {:<6} {:<7} {:>8} {:>8}  {}\n",
        "NODE", "METHOD", "DEVICE", "DRIVER", "REACH", "LOGIN", "STATUS", "LOGIN_S", "STATUS_S", "RESULT"
    ));
    let yn = |b: bool| if b { "yes" } else { "NO" };
    for c in &r.checks {
        s.push_str(&format!(
            "{:<12} {:<10} {:<16} {:<9} {:<6} {:<6} {:<7} {:>8.3} {:>8.3}  {}\n",
            c.node,
            c.method,
            // the outlet tells the devices of a dual-PSU method apart
            match &c.plug {
                Some(p) => format!("{}:{p}", c.device),
                None => c.device.clone(),
            },
            c.driver,
            yn(c.reachable),
            yn(c.login),
            c.status.map(super::engine::state_word).unwrap_or("-"),
            c.connect_ms as f64 / 1000.0,
            c.status_ms as f64 / 1000.0,
            c.error.clone().unwrap_or_else(|| "ok".into())
        ));
    }
    if !r.power_tests.is_empty() {
        s.push_str(&format!("\n{:<12} {:<8} {:>8} {:<8} {:>8} {:>8}  {}\n", "NODE", "OFF", "OFF_S", "ON", "ON_S", "PING_S", "RESULT"));
        for p in &r.power_tests {
            if let Some(why) = &p.skipped {
                s.push_str(&format!("{:<12} skipped: {why}\n", p.node));
                continue;
            }
            s.push_str(&format!(
                "{:<12} {:<8} {:>8.1} {:<8} {:>8.1} {:>8}  {}\n",
                p.node,
                if p.off_ok { "confirmed" } else { "FAILED" },
                p.off_ms as f64 / 1000.0,
                if p.on_ok { "confirmed" } else { "FAILED" },
                p.on_ms as f64 / 1000.0,
                p.ping_ms.map(|m| format!("{:.1}", m as f64 / 1000.0)).unwrap_or_else(|| "-".into()),
                p.error.clone().unwrap_or_else(|| "ok".into())
            ));
        }
    }
    if !r.race_protection.is_empty() {
        s.push_str(&format!("\nfence race protection: {}\n", r.race_protection));
    }
    if !r.risks.is_empty() {
        s.push_str("\nconfiguration risks:\n");
        for k in &r.risks {
            s.push_str(&format!("  [{}] {}: {}\n", risk_word(k.severity).to_uppercase(), k.code, k.message));
        }
    }
    s.push_str(&format!("\nresult: {}\n", if r.ok { "PASS" } else { "FAIL" }));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fence::sim::{SimClock, SimOpener};
    use crate::fence::spec::{DeviceSpec, Method};

    fn t(node: &str, devs: Vec<DeviceSpec>) -> FenceTarget {
        FenceTarget { node: node.into(), nodeid: None, methods: vec![Method { name: "m".into(), devices: devs }] }
    }
    fn d(name: &str, kv: &[(&str, &str)]) -> DeviceSpec {
        DeviceSpec::new(name, kv.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }
    fn no_resolve(_: &str) -> Vec<std::net::IpAddr> {
        vec![]
    }

    #[test]
    fn fence_race_flagged_without_delay_only() {
        let a = t("n1", vec![d("i1", &[("agent", "fence_ipmilan"), ("ipaddr", "10.0.0.1")])]);
        let b = t("n2", vec![d("i2", &[("agent", "fence_ipmilan"), ("ipaddr", "10.0.0.2")])]);
        let r = risks(&[a.clone(), b.clone()], &no_resolve);
        assert!(r.iter().any(|r| r.code == "fence_race"));
        let a2 = t("n1", vec![d("i1", &[("agent", "fence_ipmilan"), ("ipaddr", "10.0.0.1"), ("delay", "15")])]);
        let r = risks(&[a2, b], &no_resolve);
        assert!(!r.iter().any(|r| r.code == "fence_race"));
        assert!(r.iter().any(|r| r.code == "single_bmc_level"));
    }

    #[test]
    fn shared_bmc_flagged_but_pdu_plugs_not() {
        let a = t("n1", vec![d("i", &[("agent", "fence_ipmilan"), ("ipaddr", "10.0.0.1")])]);
        let b = t("n2", vec![d("i", &[("agent", "fence_ipmilan"), ("ipaddr", "10.0.0.1")])]);
        assert!(risks(&[a, b], &no_resolve).iter().any(|r| r.code == "shared_device" && r.severity == Severity::Error));
        let a = t("n1", vec![d("p", &[("agent", "fence_apc"), ("ipaddr", "10.0.0.9"), ("port", "1")])]);
        let b = t("n2", vec![d("p", &[("agent", "fence_apc"), ("ipaddr", "10.0.0.9"), ("port", "2")])]);
        assert!(!risks(&[a, b], &no_resolve).iter().any(|r| r.code == "shared_device"));
    }

    #[test]
    fn device_on_its_own_node_flagged() {
        let a = t("n1", vec![d("i", &[("agent", "fence_ipmilan"), ("ipaddr", "n1")])]);
        assert!(risks(&[a], &no_resolve).iter().any(|r| r.code == "device_on_node"));
        let res = |h: &str| -> Vec<std::net::IpAddr> {
            match h {
                "n1" | "10.1.1.1" => vec!["10.1.1.1".parse().unwrap()],
                _ => vec![],
            }
        };
        let a = t("n1", vec![d("i", &[("agent", "fence_ipmilan"), ("ipaddr", "10.1.1.1")])]);
        assert!(risks(&[a], &res).iter().any(|r| r.code == "device_on_node"));
        let a = t("n1", vec![d("i", &[("agent", "fence_ipmilan"), ("ipaddr", "10.1.1.2")])]);
        assert!(!risks(&[a], &res).iter().any(|r| r.code == "device_on_node"));
    }

    #[test]
    fn checks_and_power_test_with_simulated_devices() {
        let clock = SimClock::new();
        let mut op = SimOpener::new(clock.clone());
        op.add("i1", PowerState::On);
        op.add("i2", PowerState::On).borrow_mut().fail_status = Some(PowerError::Auth("wrong password".into()));
        let targets = vec![
            t("n1", vec![d("i1", &[("agent", "fence_ipmilan")])]),
            t("n2", vec![d("i2", &[("agent", "fence_ipmilan")])]),
        ];
        let c = check_devices(&targets, &mut op, &clock);
        assert!(c[0].ok() && c[0].status == Some(PowerState::On));
        assert!(!c[1].ok() && c[1].reachable && c[1].exit_code == Some(3));
        let mut obs = crate::fence::engine::NoObserver;
        let pt = power_test(&targets[0], &mut op, &clock, &mut obs);
        assert!(pt.ok() && pt.off_ok && pt.on_ok, "{pt:?}");
        let rep = TestReport {
            file: "x".into(),
            started: "now".into(),
            checks: c,
            power_tests: vec![pt],
            risks: vec![],
            race_protection: String::new(),
            ok: false,
        };
        let tab = table(&rep);
        assert!(tab.contains("confirmed") && tab.contains("FAIL"), "{tab}");
    }
}
