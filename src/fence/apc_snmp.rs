//! Switched PDU outlets over SNMP v1/v2c: what fence_apc_snmp (fence-agents 4.12) does, natively.
//!
//! The device type comes from sysObjectID (1.3.6.1.2.1.1.2.0), as fence_apc_snmp tells them apart:
//! APC rack PDU (318.1.3.4.5), APC MasterSwitch+ (318.1.3.4.4, outlets as SWITCH:OUTLET), APC
//! MasterSwitch with 6.x firmware (318.1.3.4.6), Tripplite (850.1) and Tripplite LX (850.1.1.1);
//! anything else is driven as the old APC MasterSwitch (sPDUOutletCtl), fence_apc_snmp's fallback.
//! The outlet is `plug=`: a number, `SWITCH:NUMBER`, or the outlet's name as the PDU lists it.
//! Where fence_apc_snmp takes the last of several outlets with the same name, twonode refuses:
//! switching the wrong outlet is worse than not fencing. States other than on/off are an error
//! instead of "off".
//!
//! Parameters (fence_apc_snmp's names): ip/ipaddr, ipport/udpport (161), community (private),
//! snmp_version (1; 2c; 3 is refused with a pointer to the external agent), plug/port, switch (1),
//! login_timeout (5: one try per second), inet4_only, inet6_only.
use super::options;
use super::power::{PowerDevice, PowerError, PowerState};
use super::spec::Timing;
use super::snmp::client::{Client, ClientConfig, SnmpError};
use super::snmp::{Oid, Value, Version};
use std::collections::BTreeMap;
use std::time::Duration;

/// sysObjectID.0
pub const SYS_OBJECT_ID: &str = "1.3.6.1.2.1.1.2.0";

/// One kind of PDU: where its outlets' state, control and names are, and the values it uses.
#[derive(Debug, PartialEq, Eq)]
pub struct Profile {
    pub name: &'static str,
    /// sysObjectID that selects it (None: the fallback).
    pub sys_object_id: Option<&'static str>,
    /// Column OIDs; the instance is `.PORT`, or `.SWITCH.1.PORT` when `has_switches`.
    pub status: &'static str,
    pub control: &'static str,
    pub names: &'static str,
    pub state_on: i64,
    pub state_off: i64,
    pub turn_on: i64,
    pub turn_off: i64,
    /// The control value for an outlet reboot (off, then on after the PDU's reboot duration).
    pub reboot: Option<i64>,
    pub has_switches: bool,
}

const APC_MS: Profile = Profile {
    name: "APC MasterSwitch (sPDUOutletCtl)",
    sys_object_id: None,
    status: "1.3.6.1.4.1.318.1.1.4.4.2.1.3",
    control: "1.3.6.1.4.1.318.1.1.4.4.2.1.3",
    names: "1.3.6.1.4.1.318.1.1.4.4.2.1.4",
    state_on: 1,
    state_off: 2,
    turn_on: 1,
    turn_off: 2,
    reboot: Some(3),
    has_switches: false,
};

/// The device table of fence_apc_snmp, same OIDs and values.
pub const PROFILES: &[Profile] = &[
    Profile {
        name: "APC rack PDU (rPDUOutletControl)",
        sys_object_id: Some("1.3.6.1.4.1.318.1.3.4.5"),
        status: "1.3.6.1.4.1.318.1.1.12.3.5.1.1.4",
        control: "1.3.6.1.4.1.318.1.1.12.3.3.1.1.4",
        names: "1.3.6.1.4.1.318.1.1.12.3.5.1.1.2",
        state_on: 1,
        state_off: 2,
        turn_on: 1,
        turn_off: 2,
        reboot: Some(3),
        has_switches: false,
    },
    Profile {
        name: "APC MasterSwitch+",
        sys_object_id: Some("1.3.6.1.4.1.318.1.3.4.4"),
        status: "1.3.6.1.4.1.318.1.1.6.7.1.1.5",
        control: "1.3.6.1.4.1.318.1.1.6.5.1.1.5",
        names: "1.3.6.1.4.1.318.1.1.6.7.1.1.4",
        state_on: 1,
        state_off: 2,
        turn_on: 1,
        turn_off: 3,
        reboot: None,
        has_switches: true,
    },
    Profile {
        name: "APC MasterSwitch, firmware 6.x",
        sys_object_id: Some("1.3.6.1.4.1.318.1.3.4.6"),
        status: "1.3.6.1.4.1.318.1.1.4.4.2.1.3",
        control: "1.3.6.1.4.1.318.1.1.12.3.3.1.1.4",
        names: "1.3.6.1.4.1.318.1.1.4.4.2.1.4",
        state_on: 1,
        state_off: 2,
        turn_on: 1,
        turn_off: 2,
        reboot: Some(3),
        has_switches: false,
    },
    Profile {
        name: "Tripplite PDU",
        sys_object_id: Some("1.3.6.1.4.1.850.1"),
        status: "1.3.6.1.4.1.850.10.2.3.5.1.2.1",
        control: "1.3.6.1.4.1.850.10.2.3.5.1.4.1",
        names: "1.3.6.1.4.1.850.10.2.3.5.1.5",
        state_on: 2,
        state_off: 1,
        turn_on: 2,
        turn_off: 1,
        reboot: None,
        has_switches: false,
    },
    Profile {
        name: "Tripplite LX PDU",
        sys_object_id: Some("1.3.6.1.4.1.850.1.1.1"),
        status: "1.3.6.1.4.1.850.1.1.3.2.3.3.1.1.4.1",
        control: "1.3.6.1.4.1.850.1.1.3.2.3.3.1.1.6.1",
        names: "1.3.6.1.4.1.850.1.1.3.2.3.3.1.1.2.1",
        state_on: 2,
        state_off: 1,
        turn_on: 2,
        turn_off: 1,
        reboot: None,
        has_switches: false,
    },
    APC_MS,
];

/// The profile for a sysObjectID value (fence_apc_snmp: exact match, else the MasterSwitch).
pub fn profile_for(sys_object_id: Option<&Value>) -> &'static Profile {
    let id = match sys_object_id {
        Some(Value::Oid(o)) => Some(o.to_string()),
        _ => None,
    };
    PROFILES
        .iter()
        .find(|p| p.sys_object_id.is_some() && p.sys_object_id.map(str::to_string) == id)
        .unwrap_or(&APC_MS)
}

fn col(s: &str) -> Oid {
    Oid::parse(s).expect("profile OIDs are valid")
}

impl Profile {
    fn instance(&self, column: &str, outlet: Outlet) -> Oid {
        if self.has_switches {
            col(column).child(&[outlet.switch, 1, outlet.port])
        } else {
            col(column).child(&[outlet.port])
        }
    }
    pub fn status_oid(&self, outlet: Outlet) -> Oid {
        self.instance(self.status, outlet)
    }
    pub fn control_oid(&self, outlet: Outlet) -> Oid {
        self.instance(self.control, outlet)
    }
    /// The outlet's state from its status value; anything but the two known values is an error.
    pub fn state_of(&self, v: &Value) -> Result<PowerState, String> {
        match v {
            Value::Integer(i) if *i == self.state_on => Ok(PowerState::On),
            Value::Integer(i) if *i == self.state_off => Ok(PowerState::Off),
            other => Err(format!(
                "outlet state {} is neither on ({}) nor off ({})",
                other.text(),
                self.state_on,
                self.state_off
            )),
        }
    }
    /// Outlet number (and switch) from a row of the name table.
    fn outlet_of_row(&self, oid: &Oid) -> Option<Outlet> {
        let a = &oid.0;
        let port = *a.last()?;
        if self.has_switches {
            let switch = *a.get(a.len().checked_sub(3)?)?;
            Some(Outlet { switch, port })
        } else {
            Some(Outlet { switch: 1, port })
        }
    }
}

/// An outlet: number, and the switch for MasterSwitch+ chains (1 otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outlet {
    pub switch: u32,
    pub port: u32,
}

/// What `plug=` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlugSpec {
    Number { switch: u32, port: u32 },
    Name(String),
}

/// Parse `plug=` (and `switch=`): "3", "2:3" (SWITCH:OUTLET), or an outlet name.
pub fn parse_plug(plug: &str, switch: Option<&str>) -> Result<PlugSpec, String> {
    let plug = plug.trim();
    if plug.is_empty() {
        return Err("plug= is empty: give the outlet number or name".into());
    }
    let num = |s: &str| s.parse::<u32>().ok().filter(|n| *n > 0);
    let default_switch = match switch.map(str::trim).filter(|s| !s.is_empty()) {
        None => 1,
        Some(s) => num(s).ok_or_else(|| format!("switch=\"{s}\" is not a switch number (1, 2, ...)"))?,
    };
    if plug.bytes().all(|b| b.is_ascii_digit()) {
        let port = num(plug).ok_or_else(|| format!("plug=\"{plug}\": outlet numbers start at 1"))?;
        return Ok(PlugSpec::Number { switch: default_switch, port });
    }
    if let Some((s, p)) = plug.split_once(':') {
        if !s.is_empty() && !p.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && p.bytes().all(|b| b.is_ascii_digit()) {
            let switch = num(s).ok_or_else(|| format!("plug=\"{plug}\": switch numbers start at 1"))?;
            let port = num(p).ok_or_else(|| format!("plug=\"{plug}\": outlet numbers start at 1"))?;
            return Ok(PlugSpec::Number { switch, port });
        }
    }
    Ok(PlugSpec::Name(plug.to_string()))
}

/// Find an outlet by name in the PDU's name table (rows `(oid, name)`); exactly one must match.
pub fn resolve_name(profile: &Profile, name: &str, table: &[(Oid, Value)]) -> Result<Outlet, String> {
    let clean = |v: &Value| v.text().trim().trim_matches('"').to_string();
    let hits: Vec<Outlet> =
        table.iter().filter(|(_, v)| clean(v) == name).filter_map(|(o, _)| profile.outlet_of_row(o)).collect();
    let show = |o: &Outlet| if profile.has_switches { format!("{}:{}", o.switch, o.port) } else { o.port.to_string() };
    match hits.as_slice() {
        [one] => Ok(*one),
        [] => {
            let known: Vec<String> = table
                .iter()
                .filter_map(|(o, v)| profile.outlet_of_row(o).map(|x| format!("{} \"{}\"", show(&x), clean(v))))
                .collect();
            Err(format!(
                "no outlet named \"{name}\" on this PDU ({}); outlets: {}",
                profile.name,
                if known.is_empty() { "none listed".to_string() } else { known.join(", ") }
            ))
        }
        many => Err(format!(
            "{} outlets are named \"{name}\" ({}): give the outlet number in plug= instead",
            many.len(),
            many.iter().map(show).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Settings of one PDU outlet device, from fence_apc_snmp's parameters.
#[derive(Debug, Clone)]
pub struct ApcSnmpConfig {
    pub client: ClientConfig,
    pub plug: PlugSpec,
}

/// A parameter by fence-agents' option name, any of its spellings ([`options`]).
fn get<'a>(p: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    options::get(p, name)
}

fn flag(p: &BTreeMap<String, String>, key: &str) -> bool {
    get(p, key).map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "on" | "yes" | "true")).unwrap_or(false)
}

impl ApcSnmpConfig {
    pub fn from_params(p: &BTreeMap<String, String>) -> Result<Self, PowerError> {
        Self::from_params_timed(p, None)
    }

    /// The config from the device's parameters; `login_timeout` not given there comes from the
    /// engine's timing (fence-agents' default for SNMP agents otherwise: 5 s).
    pub fn from_params_timed(p: &BTreeMap<String, String>, timing: Option<&Timing>) -> Result<Self, PowerError> {
        let cfg = |m: String| PowerError::Config(format!("fence_apc_snmp device: {m}"));
        let host = get(p, "ipaddr").ok_or_else(|| cfg("no address: give ipaddr=HOST".into()))?.trim().to_string();
        let port = match get(p, "ipport") {
            None => 161,
            Some(v) => v
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| cfg(format!("ipport=\"{v}\" is not a UDP port")))?,
        };
        let version = match get(p, "snmp_version") {
            None => Version::V1,
            Some(v) => Version::parse(v).map_err(|e| {
                cfg(if v.trim() == "3" {
                    format!("{e}; run the fence-agents script instead (twonode_driver=external)")
                } else {
                    e
                })
            })?,
        };
        let community = get(p, "community").unwrap_or("private").as_bytes().to_vec();
        let plug = get(p, "port").ok_or_else(|| cfg("no outlet: give plug=NUMBER or plug=NAME".into()))?;
        let plug = parse_plug(plug, get(p, "switch")).map_err(cfg)?;
        let login_timeout = match get(p, "login_timeout") {
            None => timing.map(|t| t.login_timeout.as_secs_f64()).unwrap_or(5.0),
            Some(v) => v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x > 0.0 && *x < 3600.0)
                .ok_or_else(|| cfg(format!("login_timeout=\"{v}\" is not a number of seconds")))?,
        };
        let (inet4_only, inet6_only) = (flag(p, "inet4_only"), flag(p, "inet6_only"));
        if inet4_only && inet6_only {
            return Err(cfg("inet4_only and inet6_only both set".into()));
        }
        // one try per second of login_timeout, as net-snmp's 1 s timeout with retries
        let tries = login_timeout.ceil().max(1.0) as u32;
        let timeout = Duration::from_secs_f64((login_timeout / tries as f64).max(0.1));
        Ok(ApcSnmpConfig {
            client: ClientConfig { host, port, version, community, timeout, tries, inet4_only, inet6_only },
            plug,
        })
    }
}

/// One PDU outlet as a `PowerDevice`.
pub struct ApcSnmpDevice {
    cfg: ApcSnmpConfig,
    client: Option<Client>,
    profile: Option<&'static Profile>,
    outlet: Option<Outlet>,
}

impl ApcSnmpDevice {
    pub fn new(cfg: ApcSnmpConfig) -> Self {
        ApcSnmpDevice { cfg, client: None, profile: None, outlet: None }
    }

    pub fn from_params(p: &BTreeMap<String, String>) -> Result<Self, PowerError> {
        Ok(Self::new(ApcSnmpConfig::from_params(p)?))
    }

    pub fn from_params_timed(p: &BTreeMap<String, String>, timing: Option<&Timing>) -> Result<Self, PowerError> {
        Ok(Self::new(ApcSnmpConfig::from_params_timed(p, timing)?))
    }

    /// The detected device type (after the first contact).
    pub fn profile(&self) -> Option<&'static Profile> {
        self.profile
    }

    /// The outlet number the plug resolved to (after the first contact).
    pub fn outlet(&self) -> Option<Outlet> {
        self.outlet
    }

    fn plug_text(&self) -> String {
        match &self.cfg.plug {
            PlugSpec::Number { switch, port } if *switch != 1 => format!("{switch}:{port}"),
            PlugSpec::Number { port, .. } => port.to_string(),
            PlugSpec::Name(n) => format!("\"{n}\""),
        }
    }

    fn map_err(&self, first_contact: bool, what: &str, e: SnmpError) -> PowerError {
        let msg = format!("{}: {what}: {e}", self.describe());
        match e {
            SnmpError::Address(_) => PowerError::Unreachable(msg),
            SnmpError::NoAnswer(_) if first_contact => PowerError::Unreachable(msg),
            SnmpError::NoAnswer(_) => PowerError::Timeout(msg),
            SnmpError::Agent { status: 16, .. } => PowerError::Auth(msg),
            SnmpError::Agent { status: 2 | 4 | 6 | 17, .. } if what.starts_with("switch") => PowerError::Auth(format!(
                "{msg} (the community may be read-only: fencing needs the PDU's read-write community)"
            )),
            SnmpError::Agent { .. } | SnmpError::Malformed(_) => PowerError::Protocol(msg),
        }
    }

    fn ensure(&mut self) -> Result<(&'static Profile, Outlet), PowerError> {
        if let (Some(p), Some(o)) = (self.profile, self.outlet) {
            return Ok((p, o));
        }
        if self.client.is_none() {
            let c = Client::open(self.cfg.client.clone()).map_err(|e| self.map_err(true, "open", e))?;
            self.client = Some(c);
        }
        let sys = Oid::parse(SYS_OBJECT_ID).expect("valid");
        let got = self.client.as_mut().expect("opened").get(&sys);
        let sys_value = match got {
            Ok(v) => Some(v),
            // no sysObjectID: fence_apc_snmp's fallback applies
            Err(SnmpError::Agent { .. }) => None,
            Err(e) => return Err(self.map_err(true, "read sysObjectID", e)),
        };
        let profile = profile_for(sys_value.as_ref());
        tracing::debug!(profile = profile.name, "PDU type from sysObjectID");
        self.profile = Some(profile);
        let outlet = match self.cfg.plug.clone() {
            PlugSpec::Number { switch, port } => Outlet { switch, port },
            PlugSpec::Name(name) => {
                let table = self
                    .client
                    .as_mut()
                    .expect("opened")
                    .walk(&col(profile.names), 4096)
                    .map_err(|e| self.map_err(false, "read the outlet names", e))?;
                resolve_name(profile, &name, &table).map_err(|e| PowerError::Config(format!("{}: {e}", self.describe())))?
            }
        };
        self.outlet = Some(outlet);
        Ok((profile, outlet))
    }

    fn switch(&mut self, value: i64, what: &str) -> Result<(), PowerError> {
        let (profile, outlet) = self.ensure()?;
        let oid = profile.control_oid(outlet);
        let r = self.client.as_mut().expect("connected").set(&oid, Value::Integer(value));
        r.map(|_| ()).map_err(|e| self.map_err(false, &format!("switch outlet {what} (SET {oid} = {value})"), e))
    }
}

impl PowerDevice for ApcSnmpDevice {
    fn describe(&self) -> String {
        let c = &self.cfg.client;
        let kind = self.profile.map(|p| p.name).unwrap_or("PDU");
        format!("{kind} {}:{} outlet {} (SNMP {})", c.host, c.port, self.plug_text(), c.version)
    }

    fn connect(&mut self) -> Result<(), PowerError> {
        self.ensure().map(|_| ())
    }

    fn status(&mut self) -> Result<PowerState, PowerError> {
        let (profile, outlet) = self.ensure()?;
        let oid = profile.status_oid(outlet);
        let v = match self.client.as_mut().expect("connected").get(&oid) {
            Ok(v) => v,
            // v1's way of saying there is no such outlet
            Err(SnmpError::Agent { status: 2, .. }) => Value::NoSuchInstance,
            Err(e) => return Err(self.map_err(false, &format!("read outlet state ({oid})"), e)),
        };
        if v.is_exception() {
            return Err(PowerError::Config(format!(
                "{}: outlet {} does not exist on this PDU ({oid}: {})",
                self.describe(),
                outlet.port,
                v.text()
            )));
        }
        profile.state_of(&v).map_err(|e| PowerError::Protocol(format!("{}: {e}", self.describe())))
    }

    fn power_on(&mut self) -> Result<(), PowerError> {
        let (p, _) = self.ensure()?;
        self.switch(p.turn_on, "on")
    }

    fn power_off(&mut self) -> Result<(), PowerError> {
        let (p, _) = self.ensure()?;
        self.switch(p.turn_off, "off")
    }

    fn power_cycle(&mut self) -> Result<(), PowerError> {
        let (p, _) = self.ensure()?;
        match p.reboot {
            Some(v) => self.switch(v, "reboot"),
            None => Err(PowerError::NotSupported(format!("{}: outlet reboot command", self.describe()))),
        }
    }

    fn login_timeout(&self) -> Duration {
        self.cfg.client.timeout * self.cfg.client.tries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(s: &str) -> Oid {
        Oid::parse(s).unwrap()
    }
    fn params(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn device_type_by_sys_object_id() {
        let rpdu = profile_for(Some(&Value::Oid(oid("1.3.6.1.4.1.318.1.3.4.5"))));
        assert_eq!(rpdu.name, "APC rack PDU (rPDUOutletControl)");
        let o = Outlet { switch: 1, port: 3 };
        assert_eq!(rpdu.status_oid(o).to_string(), "1.3.6.1.4.1.318.1.1.12.3.5.1.1.4.3");
        assert_eq!(rpdu.control_oid(o).to_string(), "1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.3");
        let msp = profile_for(Some(&Value::Oid(oid("1.3.6.1.4.1.318.1.3.4.4"))));
        assert_eq!(msp.status_oid(Outlet { switch: 2, port: 7 }).to_string(), "1.3.6.1.4.1.318.1.1.6.7.1.1.5.2.1.7");
        assert_eq!(msp.turn_off, 3);
        let trip = profile_for(Some(&Value::Oid(oid("1.3.6.1.4.1.850.1"))));
        assert_eq!(trip.state_of(&Value::Integer(2)).unwrap(), PowerState::On);
        // unknown, missing or non-OID: the MasterSwitch fallback
        for v in [Some(Value::Oid(oid("1.3.6.1.4.1.9.1.1"))), None, Some(Value::OctetString(b"x".to_vec()))] {
            assert_eq!(profile_for(v.as_ref()).sys_object_id, None);
        }
    }

    #[test]
    fn states_other_than_on_and_off_are_errors() {
        let p = &PROFILES[0];
        assert_eq!(p.state_of(&Value::Integer(1)).unwrap(), PowerState::On);
        assert_eq!(p.state_of(&Value::Integer(2)).unwrap(), PowerState::Off);
        assert!(p.state_of(&Value::Integer(4)).unwrap_err().contains("neither on (1) nor off (2)"));
        assert!(p.state_of(&Value::OctetString(b"1".to_vec())).is_err());
    }

    #[test]
    fn plugs() {
        assert_eq!(parse_plug("3", None).unwrap(), PlugSpec::Number { switch: 1, port: 3 });
        assert_eq!(parse_plug("3", Some("2")).unwrap(), PlugSpec::Number { switch: 2, port: 3 });
        assert_eq!(parse_plug("2:5", None).unwrap(), PlugSpec::Number { switch: 2, port: 5 });
        assert_eq!(parse_plug("node2-psu1", None).unwrap(), PlugSpec::Name("node2-psu1".into()));
        assert_eq!(parse_plug("a:b", None).unwrap(), PlugSpec::Name("a:b".into()));
        assert!(parse_plug("0", None).is_err());
        assert!(parse_plug("", None).is_err());
        assert!(parse_plug("3", Some("x")).is_err());
    }

    #[test]
    fn names_resolve_to_exactly_one_outlet() {
        let p = &PROFILES[0];
        let col = "1.3.6.1.4.1.318.1.1.12.3.5.1.1.2";
        let table = vec![
            (oid(&format!("{col}.1")), Value::OctetString(b"node1-psu1".to_vec())),
            (oid(&format!("{col}.2")), Value::OctetString(b"\"spare\"".to_vec())),
            (oid(&format!("{col}.3")), Value::OctetString(b"spare".to_vec())),
        ];
        assert_eq!(resolve_name(p, "node1-psu1", &table).unwrap(), Outlet { switch: 1, port: 1 });
        let e = resolve_name(p, "spare", &table).unwrap_err();
        assert!(e.contains("2 outlets are named \"spare\" (2, 3)"), "{e}");
        let e = resolve_name(p, "node9", &table).unwrap_err();
        assert!(e.contains("no outlet named \"node9\"") && e.contains("1 \"node1-psu1\""), "{e}");
        let msp = &PROFILES[1];
        let t = vec![(oid("1.3.6.1.4.1.318.1.1.6.7.1.1.4.2.1.6"), Value::OctetString(b"db".to_vec()))];
        assert_eq!(resolve_name(msp, "db", &t).unwrap(), Outlet { switch: 2, port: 6 });
    }

    #[test]
    fn config_from_fence_apc_snmp_parameters() {
        let c = ApcSnmpConfig::from_params(&params(&[("ipaddr", "pdu-a"), ("port", "4")])).unwrap();
        assert_eq!((c.client.port, c.client.version, c.client.community.as_slice()), (161, Version::V1, &b"private"[..]));
        assert_eq!((c.client.tries, c.client.timeout), (5, Duration::from_secs(1)));
        assert_eq!(c.plug, PlugSpec::Number { switch: 1, port: 4 });
        let c = ApcSnmpConfig::from_params(&params(&[
            ("ip", "127.0.0.1"),
            ("udpport", "16161"),
            ("community", "s3cret"),
            ("snmp_version", "2c"),
            ("plug", "node2-psu2"),
            ("login_timeout", "2"),
        ]))
        .unwrap();
        assert_eq!((c.client.port, c.client.version, c.client.tries), (16161, Version::V2c, 2));
        assert!(!format!("{c:?}").contains("s3cret"));
        let err = |kv: &[(&str, &str)]| ApcSnmpConfig::from_params(&params(kv)).err().unwrap().to_string();
        assert!(err(&[("port", "1")]).contains("no address"));
        assert!(err(&[("ipaddr", "h")]).contains("no outlet"));
        assert!(err(&[("ipaddr", "h"), ("port", "1"), ("snmp_version", "3")]).contains("twonode_driver=external"));
        assert!(err(&[("ipaddr", "h"), ("port", "1"), ("ipport", "99999")]).contains("not a UDP port"));
        assert!(err(&[("ipaddr", "h"), ("port", "1"), ("login_timeout", "-1")]).contains("login_timeout"));
    }

    #[test]
    fn describe_never_shows_the_community() {
        let d = ApcSnmpDevice::from_params(&params(&[("ipaddr", "10.0.0.9"), ("community", "s3cret"), ("port", "node1-psu2")]))
            .unwrap();
        assert_eq!(d.describe(), "PDU 10.0.0.9:161 outlet \"node1-psu2\" (SNMP v1)");
    }
}
