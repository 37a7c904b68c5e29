//! Fence-agent mode: twonode called by cman/fenced or pacemaker like any fence agent
//! (`twonode fence agent`, or a link named `fence_twonode`).
//!
//! Input: with no arguments, `key=value` lines on stdin (`#` comments, quotes stripped, `-` and `_`
//! interchangeable, unknown keys ignored); otherwise getopt-style options (`-o reboot -a 10.0.0.5
//! -l admin -S /path/script ...`; `-p PASSWORD` is accepted for compatibility but puts the password
//! in argv — prefer stdin or `-S`). Exit codes follow the fence-agents convention: 0 success (status:
//! on), 2 status off, 1 failure. A reboot whose power-on fails after the off was confirmed exits 0
//! (the node is fenced; FenceAgentAPI) but says "fenced (off confirmed), power-on FAILED" on stderr.
use super::engine::{driver_kind, Action, DriverKind, Engine, NoObserver, RealClock, RunOptions, Verdict};
use super::spec::{normalise_key, DeviceSpec, FenceTarget, Method, Timing};
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

/// One parameter of the agent: key, getopt form, type, default, description.
struct Param {
    name: &'static str,
    getopt: &'static str,
    ty: &'static str,
    default: Option<&'static str>,
    required: bool,
    deprecated: bool,
    desc: &'static str,
}

const PARAMS: &[Param] = &[
    Param { name: "action", getopt: "-o, --action=[action]", ty: "string", default: Some("reboot"), required: false, deprecated: false, desc: "Fencing action" },
    Param { name: "ip", getopt: "-a, --ip=[ip]", ty: "string", default: None, required: true, deprecated: false, desc: "IP address or hostname of the fencing device" },
    Param { name: "ipaddr", getopt: "-a, --ip=[ip]", ty: "string", default: None, required: true, deprecated: true, desc: "IP address or hostname of the fencing device" },
    Param { name: "ipport", getopt: "-u, --ipport=[port]", ty: "integer", default: Some("623"), required: false, deprecated: false, desc: "UDP/TCP port to use for connection with the device" },
    Param { name: "username", getopt: "-l, --username=[name]", ty: "string", default: None, required: false, deprecated: false, desc: "Login name" },
    Param { name: "login", getopt: "-l, --username=[name]", ty: "string", default: None, required: false, deprecated: true, desc: "Login name" },
    Param { name: "password", getopt: "-p, --password=[password]", ty: "string", default: None, required: false, deprecated: false, desc: "Login password or passphrase (prefer stdin or a password script)" },
    Param { name: "passwd", getopt: "-p, --password=[password]", ty: "string", default: None, required: false, deprecated: true, desc: "Login password or passphrase" },
    Param { name: "password_script", getopt: "-S, --password-script=[script]", ty: "string", default: None, required: false, deprecated: false, desc: "Script to run to retrieve password" },
    Param { name: "passwd_script", getopt: "-S, --password-script=[script]", ty: "string", default: None, required: false, deprecated: true, desc: "Script to run to retrieve password" },
    Param { name: "plug", getopt: "-n, --plug=[id]", ty: "string", default: None, required: false, deprecated: false, desc: "Physical plug number on device (external agents only)" },
    Param { name: "port", getopt: "-n, --plug=[id]", ty: "string", default: None, required: false, deprecated: true, desc: "Physical plug number on device (external agents only)" },
    Param { name: "lanplus", getopt: "-P, --lanplus", ty: "boolean", default: Some("1"), required: false, deprecated: false, desc: "Use Lanplus (IPMI 2.0 RMCP+); always on for the native IPMI driver" },
    Param { name: "cipher", getopt: "-C, --cipher=[cipher]", ty: "string", default: None, required: false, deprecated: false, desc: "Ciphersuite to use (same as ipmitool -C parameter); the native driver runs 17 and 3, and without it takes 17 when the BMC offers it, else 3" },
    Param { name: "privlvl", getopt: "-L, --privlvl=[level]", ty: "select", default: Some("administrator"), required: false, deprecated: false, desc: "IPMI privilege level" },
    Param { name: "method", getopt: "-m, --method=[method]", ty: "select", default: Some("onoff"), required: false, deprecated: false, desc: "Method to fence (onoff|cycle)" },
    Param { name: "twonode_driver", getopt: "--driver=[driver]", ty: "select", default: Some("ipmi"), required: false, deprecated: false, desc: "Driver: ipmi, ribcl, redfish (native) or external (run the agent named by agent=); default from agent=, else ipmi" },
    Param { name: "agent", getopt: "--agent=[agent]", ty: "string", default: None, required: false, deprecated: false, desc: "Device type as a fence agent name (fence_ipmilan, fence_ilo, fence_redfish, or any agent to run)" },
    Param { name: "ssl_insecure", getopt: "--ssl-insecure", ty: "boolean", default: None, required: false, deprecated: false, desc: "Do not verify the TLS certificate (iLO, Redfish)" },
    Param { name: "delay", getopt: "--delay=[seconds]", ty: "second", default: Some("0"), required: false, deprecated: false, desc: "Wait X seconds before fencing is started" },
    Param { name: "power_wait", getopt: "--power-wait=[seconds]", ty: "second", default: Some("2"), required: false, deprecated: false, desc: "Wait X seconds after issuing ON/OFF" },
    Param { name: "power_timeout", getopt: "--power-timeout=[seconds]", ty: "second", default: Some("20"), required: false, deprecated: false, desc: "Test X seconds for status change after ON/OFF" },
    Param { name: "login_timeout", getopt: "--login-timeout=[seconds]", ty: "second", default: Some("5"), required: false, deprecated: false, desc: "Wait X seconds for the device to answer after login" },
    Param { name: "retry_on", getopt: "--retry-on=[attempts]", ty: "integer", default: Some("1"), required: false, deprecated: false, desc: "Count of attempts to retry power on" },
    Param { name: "verbose", getopt: "-v, --verbose", ty: "boolean", default: None, required: false, deprecated: false, desc: "Verbose mode" },
];

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `-o metadata`: valid against fence-agents' metadata.rng.
pub fn metadata() -> String {
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" ?>\n");
    x.push_str("<resource-agent name=\"fence_twonode\" shortdesc=\"Fence agent for IPMI (native RMCP+) and any installed fence agent, with verified reboot\" >\n");
    x.push_str("<longdesc>fence_twonode (twonode fence agent) powers a node off and on through its BMC using IPMI 2.0 RMCP+ natively, or through any installed fence agent, and verifies every power state by reading it back. Reboot confirms OFF before powering on and reports a failed power-on distinctly.</longdesc>\n");
    x.push_str("<vendor-url>https://github.com/twonode</vendor-url>\n<parameters>\n");
    for p in PARAMS {
        x.push_str(&format!(
            "\t<parameter name=\"{}\" unique=\"0\" required=\"{}\"{}>\n\t\t<getopt mixed=\"{}\" />\n",
            p.name,
            u8::from(p.required),
            if p.deprecated { " deprecated=\"1\"" } else { "" },
            xml_escape(p.getopt)
        ));
        let default = p.default.map(|d| format!(" default=\"{}\"", xml_escape(d))).unwrap_or_default();
        if p.ty == "select" {
            let opts: &[&str] = match p.name {
                "privlvl" => &["callback", "user", "operator", "administrator"],
                "method" => &["onoff", "cycle"],
                _ => &["ipmi", "ribcl", "redfish", "external"],
            };
            x.push_str(&format!("\t\t<content type=\"select\"{default} >\n"));
            for o in opts {
                x.push_str(&format!("\t\t\t<option value=\"{o}\" />\n"));
            }
            x.push_str("\t\t</content>\n");
        } else {
            x.push_str(&format!("\t\t<content type=\"{}\"{default} />\n", p.ty));
        }
        x.push_str(&format!("\t\t<shortdesc lang=\"en\">{}</shortdesc>\n\t</parameter>\n", xml_escape(p.desc)));
    }
    x.push_str("</parameters>\n<actions>\n");
    for a in ["on", "off", "reboot", "status", "monitor", "list", "metadata", "validate-all"] {
        let extra = if a == "on" { " automatic=\"0\"" } else { "" };
        x.push_str(&format!("\t<action name=\"{a}\"{extra} />\n"));
    }
    x.push_str("</actions>\n</resource-agent>\n");
    x
}

fn strip_quotes(v: &str) -> &str {
    let v = v.trim();
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

/// Parse `key=value` stdin. Returns parameters and warnings (unknown or malformed lines).
pub fn parse_stdin(text: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut warnings = Vec::new();
    let known: Vec<&str> = PARAMS.iter().map(|p| p.name).collect();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            warnings.push(format!("stdin line {}: not key=value, ignored", i + 1));
            continue;
        };
        let k = normalise_key(k);
        if k == "nodename" || k == "nodeid" {
            continue;
        }
        if !known.contains(&k.as_str()) && !k.starts_with("twonode_") {
            warnings.push(format!("stdin line {}: unknown parameter \"{k}\" ignored", i + 1));
        }
        out.insert(k, strip_quotes(v).to_string());
    }
    (out, warnings)
}

/// Parse getopt-style arguments into parameters. Returns parameters and warnings.
pub fn parse_args(args: &[String]) -> Result<(BTreeMap<String, String>, Vec<String>), String> {
    let mut out = BTreeMap::new();
    let mut warnings = Vec::new();
    let short = |c: char| -> Option<(&'static str, bool)> {
        Some(match c {
            'o' => ("action", true),
            'a' => ("ip", true),
            'u' => ("ipport", true),
            'l' => ("username", true),
            'p' => ("password", true),
            'S' => ("password_script", true),
            'n' => ("plug", true),
            'C' => ("cipher", true),
            'L' => ("privlvl", true),
            'm' => ("method", true),
            'P' => ("lanplus", false),
            'v' => ("verbose", false),
            _ => return None,
        })
    };
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        let (key, has_value, inline): (String, bool, Option<String>) = if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (long.to_string(), None),
            };
            let name = normalise_key(&name);
            let key = match name.as_str() {
                "ipaddr" => "ip".to_string(),
                "login" => "username".to_string(),
                "passwd" => "password".to_string(),
                "passwd_script" => "password_script".to_string(),
                "port" => "plug".to_string(),
                "driver" => "twonode_driver".to_string(),
                other => other.to_string(),
            };
            if !PARAMS.iter().any(|p| p.name == key) {
                return Err(format!("unknown option --{name}"));
            }
            let flag = matches!(key.as_str(), "lanplus" | "verbose" | "ssl_insecure");
            (key, !flag, inline)
        } else if let Some(s) = a.strip_prefix('-').filter(|s| !s.is_empty()) {
            let mut chars = s.chars();
            let c = chars.next().unwrap_or('-');
            let (key, has) = short(c).ok_or_else(|| format!("unknown option -{c}"))?;
            let rest: String = chars.collect();
            (key.to_string(), has, if rest.is_empty() { None } else { Some(rest) })
        } else {
            return Err(format!("unexpected argument \"{a}\""));
        };
        let value = if has_value {
            match inline {
                Some(v) => v,
                None => {
                    let v = args.get(i).cloned().ok_or_else(|| format!("option {a} needs a value"))?;
                    i += 1;
                    v
                }
            }
        } else {
            "1".to_string()
        };
        if key == "password" {
            warnings.push(
                "a password given with -p/--password is visible in the process list; pass it on stdin or with -S".into(),
            );
        }
        out.insert(key, value);
    }
    Ok((out, warnings))
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
        return 0;
    }
    let parsed = if args.is_empty() {
        let mut text = String::new();
        if let Err(e) = stdin.read_to_string(&mut text) {
            eprintln!("Failed: cannot read parameters from stdin: {e}");
            return 1;
        }
        Ok(parse_stdin(&text))
    } else {
        parse_args(args)
    };
    let (params, warnings) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("Failed: {e}\n{USAGE}");
            return 1;
        }
    };
    for w in &warnings {
        eprintln!("twonode: warning: {w}");
    }
    let action = match parse_action(params.get("action").map(|s| s.as_str()).unwrap_or("reboot")) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("Failed: {e}");
            return 1;
        }
    };
    if action == AgentAction::Metadata {
        print!("{}", metadata());
        return 0;
    }
    let dev = device_from_params(&params);
    if let Err(e) = validate(&dev) {
        eprintln!("Failed: {e}");
        return 1;
    }
    match action {
        AgentAction::ValidateAll => {
            println!("Success: parameters are valid");
            return 0;
        }
        AgentAction::List => {
            // One machine per BMC: nothing to list.
            return 0;
        }
        _ => {}
    }
    let power_action = match action {
        AgentAction::Power(a) => a,
        _ => Action::Status,
    };
    let target = FenceTarget {
        node: params.get("plug").cloned().unwrap_or_else(|| dev.address().unwrap_or("target").to_string()),
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
        (AgentAction::Monitor, Verdict::StatusOn | Verdict::StatusOff) => 0,
        (_, Verdict::StatusOn) => {
            println!("Status: ON");
            0
        }
        (_, Verdict::StatusOff) => {
            println!("Status: OFF");
            2
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
            0
        }
        (_, Verdict::FencedPowerOnFailed { .. }) => {
            eprintln!("{}", report.message);
            println!("Success: Powered OFF (fenced, off confirmed); power-on FAILED");
            0
        }
        (_, Verdict::Failed { error }) => {
            eprintln!("Failed: {error}");
            1
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
        assert_eq!(p["ip"], "127.0.0.1");
        assert_eq!(p["ipport"], "9999");
        assert_eq!(p["username"], "admin");
        assert_eq!(p["password_script"], "/bin/echo x");
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
