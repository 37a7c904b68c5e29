//! Fence-agent mode: twonode called by cman/fenced or pacemaker like any fence agent
//! (`fence_twonode`, a binary of its own: src/bin/fence_twonode.rs; also `twonode fence agent`, or a
//! link to twonode named `fence_twonode`).
//!
//! Input: with no arguments, `key=value` lines on stdin (`#` comments, quotes stripped, `-` and `_`
//! interchangeable, unknown keys ignored); otherwise getopt-style options (`-o reboot -a 10.0.0.5
//! -l admin -S /path/script ...`; `-p PASSWORD` is accepted for compatibility but puts the password
//! in argv — prefer stdin or `-S`). Exit codes follow the fence-agents convention: 0 success (status:
//! on), 2 status off, 1 failure. A reboot whose power-on fails after the off was confirmed exits 0
//! (the node is fenced; FenceAgentAPI) but says "fenced (off confirmed), power-on FAILED" on stderr.
use super::engine::{driver_kind, Action, DriverKind, Engine, NoObserver, RealClock, RunOptions, Verdict};
use super::options::{self, exit, MetaAgent, MetaParam};
use super::spec::{DeviceSpec, FenceTarget, Method, Timing};
use std::collections::BTreeMap;

/// What the agent was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentAction {
    Power(Action),
    Monitor,
    List,
    Metadata,
    ValidateAll,
}

pub fn parse_action(s: &str) -> Result<AgentAction, String> {
    Ok(match s.trim().to_ascii_lowercase().as_str() {
        "on" | "enable" => AgentAction::Power(Action::On),
        "off" | "disable" => AgentAction::Power(Action::Off),
        "reboot" | "" => AgentAction::Power(Action::Reboot),
        "status" => AgentAction::Power(Action::Status),
        "monitor" => AgentAction::Monitor,
        "list" | "list-status" => AgentAction::List,
        "metadata" => AgentAction::Metadata,
        "validate-all" => AgentAction::ValidateAll,
        other => return Err(format!("action \"{other}\" is not supported (on, off, reboot, status, monitor, list, metadata, validate-all)")),
    })
}

/// The agent's parameters as its metadata lists them (fence-agents' names; the deprecated
/// cman spellings listed too, as fence-agents do).
const PARAMS: &[MetaParam] = &[
    MetaParam { name: "action", getopt: "-o, --action=[action]", ty: "string", default: Some("reboot"), required: false, deprecated: false, choices: &[], desc: "Fencing action" },
    MetaParam { name: "ip", getopt: "-a, --ip=[ip]", ty: "string", default: None, required: true, deprecated: false, choices: &[], desc: "IP address or hostname of the fencing device" },
    MetaParam { name: "ipaddr", getopt: "-a, --ip=[ip]", ty: "string", default: None, required: true, deprecated: true, choices: &[], desc: "IP address or hostname of the fencing device" },
    MetaParam { name: "ipport", getopt: "-u, --ipport=[port]", ty: "integer", default: Some("623"), required: false, deprecated: false, choices: &[], desc: "UDP/TCP port to use for connection with the device" },
    MetaParam { name: "username", getopt: "-l, --username=[name]", ty: "string", default: None, required: false, deprecated: false, choices: &[], desc: "Login name" },
    MetaParam { name: "login", getopt: "-l, --username=[name]", ty: "string", default: None, required: false, deprecated: true, choices: &[], desc: "Login name" },
    MetaParam { name: "password", getopt: "-p, --password=[password]", ty: "string", default: None, required: false, deprecated: false, choices: &[], desc: "Login password or passphrase (prefer stdin or a password script)" },
    MetaParam { name: "passwd", getopt: "-p, --password=[password]", ty: "string", default: None, required: false, deprecated: true, choices: &[], desc: "Login password or passphrase" },
    MetaParam { name: "password_script", getopt: "-S, --password-script=[script]", ty: "string", default: None, required: false, deprecated: false, choices: &[], desc: "Script to run to retrieve password" },
    MetaParam { name: "passwd_script", getopt: "-S, --password-script=[script]", ty: "string", default: None, required: false, deprecated: true, choices: &[], desc: "Script to run to retrieve password" },
    MetaParam { name: "plug", getopt: "-n, --plug=[id]", ty: "string", default: None, required: false, deprecated: false, choices: &[], desc: "Physical plug number or name on device (PDU outlets, external agents)" },
    MetaParam { name: "port", getopt: "-n, --plug=[id]", ty: "string", default: None, required: false, deprecated: true, choices: &[], desc: "Physical plug number or name on device (PDU outlets, external agents)" },
    MetaParam { name: "lanplus", getopt: "-P, --lanplus", ty: "boolean", default: Some("1"), required: false, deprecated: false, choices: &[], desc: "Use Lanplus (IPMI 2.0 RMCP+); always on for the native IPMI driver" },
    MetaParam { name: "cipher", getopt: "-C, --cipher=[cipher]", ty: "string", default: None, required: false, deprecated: false, choices: &[], desc: "Ciphersuite to use (same as ipmitool -C parameter); the native driver runs 17 and 3, and without it takes 17 when the BMC offers it, else 3" },
    MetaParam { name: "privlvl", getopt: "-L, --privlvl=[level]", ty: "select", default: Some("administrator"), required: false, deprecated: false, choices: &["callback", "user", "operator", "administrator"], desc: "IPMI privilege level" },
    MetaParam { name: "method", getopt: "-m, --method=[method]", ty: "select", default: Some("onoff"), required: false, deprecated: false, choices: &["onoff", "cycle"], desc: "Method to fence (onoff|cycle)" },
    MetaParam { name: "twonode_driver", getopt: "--driver=[driver]", ty: "select", default: Some("ipmi"), required: false, deprecated: false, choices: &["ipmi", "ribcl", "redfish", "snmp", "external"], desc: "Driver: ipmi, ribcl, redfish, snmp (switched PDU; native) or external (run the agent named by agent=); default from agent=, else ipmi" },
    MetaParam { name: "agent", getopt: "--agent=[agent]", ty: "string", default: None, required: false, deprecated: false, choices: &[], desc: "Device type as a fence agent name (fence_ipmilan, fence_ilo, fence_redfish, or any agent to run)" },
    MetaParam { name: "ssl_insecure", getopt: "--ssl-insecure", ty: "boolean", default: None, required: false, deprecated: false, choices: &[], desc: "Do not verify the TLS certificate (iLO, Redfish)" },
    MetaParam { name: "delay", getopt: "--delay=[seconds]", ty: "second", default: Some("0"), required: false, deprecated: false, choices: &[], desc: "Wait X seconds before fencing is started" },
    MetaParam { name: "power_wait", getopt: "--power-wait=[seconds]", ty: "second", default: Some("2"), required: false, deprecated: false, choices: &[], desc: "Wait X seconds after issuing ON/OFF" },
    MetaParam { name: "power_timeout", getopt: "--power-timeout=[seconds]", ty: "second", default: Some("20"), required: false, deprecated: false, choices: &[], desc: "Test X seconds for status change after ON/OFF" },
    MetaParam { name: "login_timeout", getopt: "--login-timeout=[seconds]", ty: "second", default: Some("5"), required: false, deprecated: false, choices: &[], desc: "Wait X seconds for the device to answer after login" },
    MetaParam { name: "retry_on", getopt: "--retry-on=[attempts]", ty: "integer", default: Some("1"), required: false, deprecated: false, choices: &[], desc: "Count of attempts to retry power on" },
    MetaParam { name: "community", getopt: "-c, --community=[community]", ty: "string", default: Some("private"), required: false, deprecated: false, choices: &[], desc: "SNMP community (switched PDU; a secret like a password)" },
    MetaParam { name: "snmp_version", getopt: "-d, --snmp-version=[version]", ty: "select", default: Some("1"), required: false, deprecated: false, choices: &["1", "2c"], desc: "SNMP version of the native PDU driver (3: use the external agent)" },
    MetaParam { name: "switch", getopt: "-s, --switch=[id]", ty: "string", default: Some("1"), required: false, deprecated: false, choices: &[], desc: "Physical switch number on the PDU" },
    MetaParam { name: "inet4_only", getopt: "-4, --inet4-only", ty: "boolean", default: None, required: false, deprecated: false, choices: &[], desc: "Forces the agent to use IPv4 addresses only" },
    MetaParam { name: "inet6_only", getopt: "-6, --inet6-only", ty: "boolean", default: None, required: false, deprecated: false, choices: &[], desc: "Forces the agent to use IPv6 addresses only" },
    MetaParam { name: "verbose", getopt: "-v, --verbose", ty: "boolean", default: None, required: false, deprecated: false, choices: &[], desc: "Verbose mode" },
];

/// `-o metadata`: valid against fence-agents' metadata.rng.
pub fn metadata() -> String {
    options::metadata(&MetaAgent {
        name: "fence_twonode",
        shortdesc: "Fence agent for IPMI (native RMCP+) and any installed fence agent, with verified reboot",
        longdesc: "fence_twonode (twonode fence agent) powers a node off and on through its BMC using IPMI 2.0 RMCP+ natively, or through any installed fence agent, and verifies every power state by reading it back. Reboot confirms OFF before powering on and reports a failed power-on distinctly.",
        params: PARAMS,
        actions: options::ACTIONS,
    })
}

/// Does the agent take this (canonical) parameter? (its table, and `twonode_*` extensions)
fn accepts(key: &str) -> bool {
    key.starts_with("twonode_") || PARAMS.iter().any(|p| options::canonical(p.name) == key)
}

/// Parse `key=value` stdin ([`options::parse_stdin`]): parameters by canonical key, warnings.
pub fn parse_stdin(text: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let p = options::parse_stdin(text, &accepts);
    (p.params, p.warnings)
}

/// Parse getopt-style arguments ([`options::parse_argv`]): parameters by canonical key, warnings.
pub fn parse_args(args: &[String]) -> Result<(BTreeMap<String, String>, Vec<String>), String> {
    let p = options::parse_argv(args, &accepts)?;
    Ok((p.params, p.warnings))
}

/// The device the agent drives, from its parameters.
pub fn device_from_params(params: &BTreeMap<String, String>) -> DeviceSpec {
    let mut p = params.clone();
    p.remove("action");
    p.remove("verbose");
    // Without a driver, `agent=` decides (fence_ilo → RIBCL, fence_redfish → Redfish, other → that
    // agent); with neither, the native IPMI driver.
    let named = p.get("agent").map(|a| a != "fence_twonode" && !a.is_empty()).unwrap_or(false);
    if !p.contains_key("twonode_driver") && !named {
        p.insert("twonode_driver".into(), "ipmi".into());
    }
    if !p.contains_key("agent") && p.get("twonode_driver").map(|d| d == "ipmi") == Some(true) {
        // fence_ipmilan's timing defaults (power_wait 2) for the native IPMI driver.
        p.insert("agent".into(), "fence_ipmilan".into());
    }
    DeviceSpec::new("agent", p)
}

/// Check parameters without contacting the device.
pub fn validate(dev: &DeviceSpec) -> Result<(), String> {
    let timing = Timing::for_device(dev)?;
    match driver_kind(dev).map_err(|e| e.to_string())? {
        DriverKind::Ipmi => {
            let cfg = super::drivers::ipmi_config(dev, &timing).map_err(|e| e.to_string())?;
            cfg.check().map_err(|e| e.to_string())
        }
        DriverKind::Ribcl => super::ribcl::RibclDevice::from_params(&dev.params).map(|_| ()).map_err(|e| e.to_string()),
        DriverKind::Redfish => super::redfish::RedfishDevice::from_params(&dev.params).map(|_| ()).map_err(|e| e.to_string()),
        DriverKind::Snmp => super::apc_snmp::ApcSnmpDevice::from_params(&dev.params).map(|_| ()).map_err(|e| e.to_string()),
        DriverKind::External => super::external::find_agent(dev.agent()).map(|_| ()).map_err(|e| e.to_string()),
    }
}

/// Run agent mode. `args` are the arguments after `agent` (or after argv[0] for fence_twonode);
/// `stdin` is read only when there are none. Returns the exit code.
pub fn run(args: &[String], stdin: &mut dyn std::io::Read, audit_path: Option<&std::path::Path>) -> i32 {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{}", USAGE);
        return exit::SUCCESS;
    }
    let parsed = if args.is_empty() {
        let mut text = String::new();
        if let Err(e) = stdin.read_to_string(&mut text) {
            eprintln!("Failed: cannot read parameters from stdin: {e}");
            return exit::FAILURE;
        }
        Ok(parse_stdin(&text))
    } else {
        parse_args(args)
    };
    let (params, warnings) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("Failed: {e}\n{USAGE}");
            return exit::FAILURE;
        }
    };
    for w in &warnings {
        eprintln!("twonode: warning: {w}");
    }
    let action = match parse_action(params.get("action").map(|s| s.as_str()).unwrap_or("reboot")) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("Failed: {e}");
            return exit::FAILURE;
        }
    };
    if action == AgentAction::Metadata {
        print!("{}", metadata());
        return exit::SUCCESS;
    }
    let dev = device_from_params(&params);
    if let Err(e) = validate(&dev) {
        eprintln!("Failed: {e}");
        return exit::FAILURE;
    }
    match action {
        AgentAction::ValidateAll => {
            println!("Success: parameters are valid");
            return exit::SUCCESS;
        }
        AgentAction::List => {
            // One machine per BMC: nothing to list.
            return exit::SUCCESS;
        }
        _ => {}
    }
    let power_action = match action {
        AgentAction::Power(a) => a,
        _ => Action::Status,
    };
    let target = FenceTarget {
        node: params.get("port").cloned().unwrap_or_else(|| dev.address().unwrap_or("target").to_string()),
        nodeid: None,
        methods: vec![Method { name: "agent".into(), devices: vec![dev] }],
    };
    let env_path = std::env::var_os("TWONODE_FENCE_AUDIT_LOG").map(std::path::PathBuf::from);
    let audit_path = audit_path.or(env_path.as_deref());
    let audit = if power_action.is_destructive() { Some(super::audit::AuditLog::open(audit_path)) } else { None };
    if let Some(a) = &audit {
        a.append("start", serde_json::json!({"mode": "agent", "node": target.node, "action": power_action.as_str()}));
    }
    let clock = RealClock::new();
    let mut opener = super::drivers::RealOpener;
    let mut obs = NoObserver;
    let report = Engine::new(&clock, &mut opener, &mut obs).run(&target, power_action, &RunOptions::default());
    if let Some(a) = &audit {
        a.append(
            "outcome",
            serde_json::json!({"mode": "agent", "node": report.node, "action": power_action.as_str(),
                "exit": report.exit_code(), "message": report.message, "steps": report.steps}),
        );
    }
    match (&action, &report.verdict) {
        (AgentAction::Monitor, Verdict::StatusOn | Verdict::StatusOff) => exit::SUCCESS,
        (_, Verdict::StatusOn) => {
            println!("Status: ON");
            exit::SUCCESS
        }
        (_, Verdict::StatusOff) => {
            println!("Status: OFF");
            exit::STATUS_OFF
        }
        (_, Verdict::Done) => {
            println!(
                "Success: {}",
                match power_action {
                    Action::On => "Powered ON",
                    Action::Off => "Powered OFF",
                    _ => "Rebooted",
                }
            );
            exit::SUCCESS
        }
        (_, Verdict::FencedPowerOnFailed { .. }) => {
            eprintln!("{}", report.message);
            println!("Success: Powered OFF (fenced, off confirmed); power-on FAILED");
            exit::SUCCESS
        }
        (_, Verdict::Failed { error }) => {
            eprintln!("Failed: {error}");
            exit::FAILURE
        }
    }
}

pub const USAGE: &str = "\
Usage: twonode fence agent [OPTIONS]     (or: fence_twonode [OPTIONS])
With no options, reads key=value lines on stdin (the fenced/pacemaker convention).
Options:
  -o, --action=ACTION      on, off, reboot (default), status, monitor, list, metadata, validate-all
  -a, --ip=ADDRESS         BMC address            -u, --ipport=PORT   UDP port (623)
  -l, --username=NAME      login name             -S, --password-script=SCRIPT
  -p, --password=PASSWORD  accepted for compatibility: visible in ps; prefer stdin or -S
  -C, --cipher=N           IPMI cipher 17|3|auto  -L, --privlvl=LEVEL (administrator)
  -m, --method=onoff|cycle --driver=ipmi|external  --agent=fence_xxx (external)
  --delay=S --power-wait=S --power-timeout=S --login-timeout=S --retry-on=N
Exit codes: 0 success / status on, 2 status off, 1 failure.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_convention() {
        let (p, w) = parse_stdin(
            "# comment\nipaddr=\"10.0.0.5\"\nlogin='admin'\npower-wait=3\nnodename=n2\nfoo=bar\naction=off\n\nbroken\n",
        );
        assert_eq!(p["ipaddr"], "10.0.0.5");
        assert_eq!(p["login"], "admin");
        assert_eq!(p["power_wait"], "3");
        assert!(!p.contains_key("nodename"));
        assert_eq!(p["action"], "off");
        assert_eq!(w.len(), 2, "{w:?}");
        let d = device_from_params(&p);
        assert_eq!(d.address(), Some("10.0.0.5"));
        assert_eq!(d.login(), Some("admin"));
        assert_eq!(driver_kind(&d).unwrap(), DriverKind::Ipmi);
    }

    #[test]
    fn getopt_convention() {
        let a: Vec<String> = ["-o", "status", "-a", "127.0.0.1", "--ipport=9999", "-ladmin", "-S", "/bin/echo x", "-P", "-C", "3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (p, w) = parse_args(&a).unwrap();
        assert_eq!(p["action"], "status");
        // canonical keys (fence-agents' names): --ip is ipaddr, -l login, -S passwd_script
        assert_eq!(p["ipaddr"], "127.0.0.1");
        assert_eq!(p["ipport"], "9999");
        assert_eq!(p["login"], "admin");
        assert_eq!(p["passwd_script"], "/bin/echo x");
        assert_eq!(p["lanplus"], "1");
        assert!(w.is_empty());
        let (_, w) = parse_args(&["-p".to_string(), "x".to_string()]).unwrap();
        assert_eq!(w.len(), 1);
        assert!(parse_args(&["--bogus".to_string()]).is_err());
        assert!(parse_args(&["-a".to_string()]).is_err());
    }

    #[test]
    fn actions() {
        assert_eq!(parse_action("reboot").unwrap(), AgentAction::Power(Action::Reboot));
        assert_eq!(parse_action("validate-all").unwrap(), AgentAction::ValidateAll);
        assert!(parse_action("explode").is_err());
    }

    #[test]
    fn external_when_agent_named() {
        let mut p = BTreeMap::new();
        p.insert("agent".to_string(), "fence_apc".to_string());
        assert_eq!(driver_kind(&device_from_params(&p)).unwrap(), DriverKind::External);
    }
}
