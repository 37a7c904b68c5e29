//! The ONE fence-agent option layer, shared by `twonode fence agent` (`fence/agent.rs`), the
//! arbiter gate agent (`fence/gate/agent.rs`) and the drivers' typed configs (IPMI, RIBCL,
//! Redfish, external): one option table with fence-agents' names and aliases, one stdin
//! (`key=value`) parser, one getopt-style argv parser, one metadata writer, the exit codes, and
//! the one place a password script is started.
//!
//! fence-agents' model (lib/fencing.py.py, `all_opt`): every option has a key — the cman
//! cluster.conf attribute name (`ipaddr`, `login`, `passwd`, `passwd_script`, `port`) — and a
//! long option (`--ip`, `--username`, `--password`, `--password-script`, `--plug`); both
//! spellings name the SAME option. On stdin `_parse_input_stdin` maps either spelling (`-` and
//! `_` alike) to the option and keeps the LAST line given (an unknown key, e.g. the old
//! `option=`, is ignored with a warning); on the command line `-a`, `--ip` and
//! (here) `--ipaddr` are one option, the last given wins. A password script, when given, is run
//! and its output REPLACES the password (`process_input`: `options["--password"] =
//! popen(script)`), so the script wins over `passwd=`. `nodename=` (fenced's) is skipped by
//! agents that do not use it. twonode keeps parameters under the key spelling (canonical name).
//!
//! Maps without an order (a cluster.conf device's merged attributes, [`crate::fence::spec::DeviceSpec`])
//! resolve a clash of spellings in favour of the key spelling (`ipaddr` over `ip`), the name
//! cluster.conf documents.
use std::collections::BTreeMap;
use std::time::Duration;

/// fence-agents' exit codes (FenceAgentAPI): success (status: on), failure, status off.
pub mod exit {
    pub const SUCCESS: i32 = 0;
    pub const FAILURE: i32 = 1;
    pub const STATUS_OFF: i32 = 2;
}

/// One option of fence-agents' table.
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    /// fence-agents' key = the cluster.conf attribute (canonical here).
    pub name: &'static str,
    /// The long option (`--ip`); `-` written as `_` on stdin is the same.
    pub longopt: &'static str,
    /// The short getopt letter.
    pub short: Option<char>,
    /// Takes a value (else a flag: "1" when given).
    pub value: bool,
    /// Other spellings accepted for it (twonode's own: `udpport`, which DeviceSpec always read).
    pub aliases: &'static [&'static str],
}

const fn o(name: &'static str, longopt: &'static str, short: Option<char>, value: bool, aliases: &'static [&'static str]) -> Opt {
    Opt { name, longopt, short, value, aliases }
}

/// The options twonode's agents know, with fence-agents' names (fencing.py `all_opt`).
pub const OPTIONS: &[Opt] = &[
    o("action", "action", Some('o'), true, &[]),
    o("ipaddr", "ip", Some('a'), true, &[]),
    o("ipport", "ipport", Some('u'), true, &["udpport"]),
    o("login", "username", Some('l'), true, &[]),
    o("passwd", "password", Some('p'), true, &[]),
    o("passwd_script", "password-script", Some('S'), true, &[]),
    o("port", "plug", Some('n'), true, &[]),
    o("lanplus", "lanplus", Some('P'), false, &[]),
    o("cipher", "cipher", Some('C'), true, &[]),
    o("privlvl", "privlvl", Some('L'), true, &[]),
    o("method", "method", Some('m'), true, &[]),
    o("ssl", "ssl", Some('z'), false, &[]),
    o("ssl_insecure", "ssl-insecure", None, false, &[]),
    o("ssl_secure", "ssl-secure", None, false, &[]),
    o("delay", "delay", None, true, &[]),
    o("power_wait", "power-wait", None, true, &[]),
    o("power_timeout", "power-timeout", None, true, &[]),
    o("login_timeout", "login-timeout", None, true, &[]),
    o("shell_timeout", "shell-timeout", None, true, &[]),
    o("retry_on", "retry-on", None, true, &[]),
    o("verbose", "verbose", Some('v'), false, &[]),
    // SNMP devices (switched PDUs)
    o("community", "community", Some('c'), true, &[]),
    o("snmp_version", "snmp-version", Some('d'), true, &[]),
    o("switch", "switch", Some('s'), true, &[]),
    o("inet4_only", "inet4-only", Some('4'), false, &[]),
    o("inet6_only", "inet6-only", Some('6'), false, &[]),
    // twonode's own
    o("twonode_driver", "driver", None, true, &[]),
    o("agent", "agent", None, true, &[]),
    o("tlscacert", "tlscacert", None, true, &[]),
    o("tlscert", "tlscert", None, true, &[]),
    o("tlskey", "tlskey", None, true, &[]),
    o("nodename", "nodename", None, true, &[]),
    o("local_node", "local-node", None, true, &[]),
    o("cluster_conf", "cluster-conf", None, true, &[]),
];

/// `-`/`_` and case alike.
pub fn normalise_key(k: &str) -> String {
    k.trim().to_ascii_lowercase().replace('-', "_")
}

/// The option a spelling names (key, long option or alias), if any.
pub fn option(spelling: &str) -> Option<&'static Opt> {
    let k = normalise_key(spelling);
    OPTIONS.iter().find(|o| o.name == k || o.longopt.replace('-', "_") == k || o.aliases.contains(&k.as_str()))
}

/// The canonical key of a spelling (unknown keys: normalised as given).
pub fn canonical(spelling: &str) -> String {
    option(spelling).map(|o| o.name.to_string()).unwrap_or_else(|| normalise_key(spelling))
}

/// Every spelling of the option `name` (key first, then long option, then aliases).
pub fn spellings(name: &str) -> Vec<String> {
    match option(name) {
        Some(o) => {
            let mut v = vec![o.name.to_string()];
            let l = o.longopt.replace('-', "_");
            if l != o.name {
                v.push(l);
            }
            v.extend(o.aliases.iter().map(|a| a.to_string()));
            v
        }
        None => vec![normalise_key(name)],
    }
}

/// A map keyed by any spelling, re-keyed by canonical name; when two spellings of one option
/// are present, the key spelling wins (cluster.conf's name), else the long option.
pub fn canonical_map(p: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut rank: BTreeMap<String, usize> = BTreeMap::new();
    for (k, v) in p {
        let nk = normalise_key(k);
        let c = canonical(&nk);
        let r = spellings(&c).iter().position(|s| *s == nk).unwrap_or(usize::MAX);
        if rank.get(&c).is_none_or(|old| r < *old) {
            rank.insert(c.clone(), r);
            out.insert(c, v.clone());
        }
    }
    out
}

/// Lookup in a (not yet canonical) map by option: the key spelling first, then the others.
pub fn lookup<'a>(p: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    for s in spellings(name) {
        if let Some(v) = p.get(&s) {
            return Some(v.as_str());
        }
        if let Some((_, v)) = p.iter().find(|(k, _)| normalise_key(k) == s) {
            return Some(v.as_str());
        }
    }
    None
}

/// Lookup, empty values counting as absent.
pub fn get<'a>(p: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    lookup(p, name).filter(|v| !v.trim().is_empty())
}

/// fence-agents' boolean: 1/yes/on/true or empty (a getopt flag) → true, 0/no/off/false → false.
pub fn flag(p: &BTreeMap<String, String>, name: &str) -> Result<Option<bool>, String> {
    match lookup(p, name) {
        None => Ok(None),
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "" | "1" | "yes" | "on" | "true" | "y" | "t" => Ok(Some(true)),
            "0" | "no" | "off" | "false" | "n" | "f" => Ok(Some(false)),
            other => Err(format!("{name}={other:?}: expected 1 or 0")),
        },
    }
}

/// A number of seconds (`None`: not given).
pub fn seconds(p: &BTreeMap<String, String>, name: &str, max: f64) -> Result<Option<Duration>, String> {
    match lookup(p, name) {
        None => Ok(None),
        Some(v) => {
            let s: f64 = v.trim().parse().map_err(|_| format!("{name}={v:?}: expected a number of seconds"))?;
            if !(0.0..=max).contains(&s) {
                return Err(format!("{name}={v}: out of range 0..{max} s"));
            }
            Ok(Some(Duration::from_secs_f64(s)))
        }
    }
}

/// The password: from the password script when one is given (its output replaces any
/// `passwd=`, as fence-agents do; twonode keeps its first line where fence-agents keep the whole
/// output with trailing white space stripped), else `passwd`/`password`; `None` when neither is given
/// (whether that is an error is the driver's call: fence_ipmilan allows an empty password,
/// fence_ilo and fence_redfish do not). The ONE place a password script is started (`sh -c`;
/// the script's argv carries no secret).
pub fn password(p: &BTreeMap<String, String>) -> Result<Option<String>, String> {
    if let Some(script) = get(p, "passwd_script") {
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("passwd_script {script:?}: cannot run: {e}"))?;
        if !out.status.success() {
            return Err(format!("passwd_script {script:?} failed ({})", out.status));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        return Ok(Some(text.lines().next().unwrap_or("").to_string()));
    }
    Ok(lookup(p, "passwd").map(str::to_string))
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

/// What a parser found besides the parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Parameters by canonical key.
    pub params: BTreeMap<String, String>,
    /// Lines or options ignored, with why (for a warning).
    pub warnings: Vec<String>,
}

/// fenced's stdin convention: `key=value` lines, `#` comments, quotes stripped, `-`/`_` alike,
/// any spelling of an option; the last line for an option wins. `accepts(canonical)` tells
/// which keys the agent knows (others are kept but warned about); `nodename=` is dropped when
/// the agent does not accept it, as fence-agents do.
pub fn parse_stdin(text: &str, accepts: &dyn Fn(&str) -> bool) -> Parsed {
    let mut out = Parsed::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            out.warnings.push(format!("stdin line {}: not key=value, ignored", i + 1));
            continue;
        };
        let k = canonical(k);
        if !accepts(&k) {
            if k == "nodename" || k == "nodeid" {
                continue;
            }
            out.warnings.push(format!("stdin line {}: unknown parameter \"{k}\" ignored", i + 1));
        }
        out.params.insert(k, strip_quotes(v).to_string());
    }
    out
}

/// getopt-style arguments (`-a HOST`, `-aHOST`, `--ip=HOST`, `--ip HOST`, flags without a
/// value); any spelling of an option's long name; the last given wins. `accepts(canonical)`:
/// the options the agent offers (others are an error, as getopt's).
pub fn parse_argv(args: &[String], accepts: &dyn Fn(&str) -> bool) -> Result<Parsed, String> {
    let mut out = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        let (opt, inline): (&Opt, Option<String>) = if let Some(long) = a.strip_prefix("--") {
            let (n, v) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            match option(n).filter(|o| accepts(o.name)) {
                Some(o) => (o, v),
                None => return Err(format!("unknown option --{}", normalise_key(n))),
            }
        } else if let Some(s) = a.strip_prefix('-').filter(|s| !s.is_empty()) {
            let mut ch = s.chars();
            let c = ch.next().unwrap_or('-');
            let o = OPTIONS.iter().find(|o| o.short == Some(c) && accepts(o.name)).ok_or_else(|| format!("unknown option -{c}"))?;
            let rest: String = ch.collect();
            (o, if rest.is_empty() { None } else { Some(rest) })
        } else {
            return Err(format!("unexpected argument \"{a}\""));
        };
        let v = if !opt.value {
            "1".to_string()
        } else {
            match inline {
                Some(v) => v,
                None => {
                    let v = args.get(i).cloned().ok_or_else(|| format!("option {a} needs a value"))?;
                    i += 1;
                    v
                }
            }
        };
        if opt.name == "passwd" {
            out.warnings.push("a password given with -p/--password is visible in the process list; pass it on stdin or with -S".into());
        }
        out.params.insert(opt.name.to_string(), v);
    }
    Ok(out)
}

/// One parameter as metadata shows it.
#[derive(Debug, Clone, Copy)]
pub struct MetaParam {
    pub name: &'static str,
    pub getopt: &'static str,
    /// `string`, `integer`, `second`, `boolean` or `select`.
    pub ty: &'static str,
    pub default: Option<&'static str>,
    pub required: bool,
    pub deprecated: bool,
    /// For `select`.
    pub choices: &'static [&'static str],
    pub desc: &'static str,
}

/// The agent as metadata shows it.
pub struct MetaAgent<'a> {
    pub name: &'a str,
    pub shortdesc: &'a str,
    pub longdesc: &'a str,
    pub params: &'a [MetaParam],
    pub actions: &'a [&'a str],
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `-o metadata`, valid against fence-agents' metadata.rng (the one writer for every agent).
pub fn metadata(a: &MetaAgent) -> String {
    let mut x = String::from("<?xml version=\"1.0\" ?>\n");
    x.push_str(&format!("<resource-agent name=\"{}\" shortdesc=\"{}\" >\n", a.name, a.shortdesc));
    x.push_str(&format!("<longdesc>{}</longdesc>\n", a.longdesc));
    x.push_str("<vendor-url>https://github.com/twonode</vendor-url>\n<parameters>\n");
    for p in a.params {
        x.push_str(&format!(
            "\t<parameter name=\"{}\" unique=\"0\" required=\"{}\"{}>\n\t\t<getopt mixed=\"{}\" />\n",
            p.name,
            u8::from(p.required),
            if p.deprecated { " deprecated=\"1\"" } else { "" },
            xml_escape(p.getopt)
        ));
        let default = p.default.map(|d| format!(" default=\"{}\"", xml_escape(d))).unwrap_or_default();
        if p.ty == "select" {
            x.push_str(&format!("\t\t<content type=\"select\"{default} >\n"));
            for o in p.choices {
                x.push_str(&format!("\t\t\t<option value=\"{o}\" />\n"));
            }
            x.push_str("\t\t</content>\n");
        } else {
            x.push_str(&format!("\t\t<content type=\"{}\"{default} />\n", p.ty));
        }
        x.push_str(&format!("\t\t<shortdesc lang=\"en\">{}</shortdesc>\n\t</parameter>\n", xml_escape(p.desc)));
    }
    x.push_str("</parameters>\n<actions>\n");
    for act in a.actions {
        let extra = if *act == "on" { " automatic=\"0\"" } else { "" };
        x.push_str(&format!("\t<action name=\"{act}\"{extra} />\n"));
    }
    x.push_str("</actions>\n</resource-agent>\n");
    x
}

/// The actions both agents list.
pub const ACTIONS: &[&str] = &["on", "off", "reboot", "status", "monitor", "list", "metadata", "validate-all"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_and_precedence() {
        assert_eq!(canonical("ip"), "ipaddr");
        assert_eq!(canonical("username"), "login");
        assert_eq!(canonical("password-script"), "passwd_script");
        assert_eq!(canonical("plug"), "port");
        assert_eq!(canonical("option"), "option", "fence-agents 4.12 ignores option= (unknown)");
        let all = |_: &str| true;
        let p = parse_stdin("ip=a\nipaddr=b\n", &all).params;
        assert_eq!(p["ipaddr"], "b");
        let p = parse_stdin("ipaddr=b\nip=a\n", &all).params;
        assert_eq!(p["ipaddr"], "a");
        let m: BTreeMap<String, String> = [("ip", "a"), ("ipaddr", "b")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(canonical_map(&m)["ipaddr"], "b");
        assert_eq!(get(&m, "ipaddr"), Some("b"));
    }
}
