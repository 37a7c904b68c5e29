//! The one fence-agent option layer (`fence::options`) against fence-agents itself: every alias
//! names the same option, the last given wins (stdin and argv), a password script wins over a
//! password; checked by running fence-agents' own parsers (`/usr/share/fence/fencing.py`,
//! `_parse_input_stdin` / `_parse_input_cmdline`) on the same input. And both twonode agents
//! (`fence agent`, `fence gate`) read the same parameters the same way, with metadata valid
//! against fence-agents' metadata.rng.
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use twonode::fence::options::{self, canonical, option};

const FENCING_PY: &str = "/usr/share/fence/fencing.py";

/// fence-agents' options this test gives fencing.py (the ones fencing.py itself defines;
/// lanplus/cipher/privlvl are fence_ipmilan's own, checked by table below).
const FA_OPTS: &[&str] = &[
    "ipaddr", "login", "passwd", "passwd_script", "port", "ipport", "ssl", "ssl_insecure", "method", "delay", "power_wait",
    "power_timeout", "login_timeout", "shell_timeout", "retry_on",
];

/// Run fencing.py's parser: `stdin` mode reads `input`, `argv` mode parses `args`. Returns
/// canonical key → value (its `--longopt` keys mapped back through twonode's table).
fn fence_agents_parse(mode: &str, input: &str, args: &[&str]) -> BTreeMap<String, String> {
    let script = format!(
        r#"
import sys, json, types
sys.path.insert(0, "/usr/share/fence")
sys.modules.setdefault("pycurl", types.ModuleType("pycurl"))
import fencing
avail = {opts:?} + ["action", "verbose"]
if sys.argv[1] == "stdin":
    o = fencing._parse_input_stdin(avail)
else:
    sys.argv = [sys.argv[0]] + sys.argv[2:]
    o = fencing._parse_input_cmdline(avail)
print(json.dumps({{k[2:]: v for k, v in o.items() if k.startswith("--") and k != "--verbose-level"}}))
"#,
        opts = FA_OPTS
    );
    let mut c = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(mode)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    {
        use std::io::Write;
        c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success(), "fencing.py: {}", String::from_utf8_lossy(&out.stderr));
    let v: BTreeMap<String, String> = serde_json::from_slice(&out.stdout).unwrap();
    v.into_iter()
        .map(|(long, val)| {
            let o = option(&long).unwrap_or_else(|| panic!("fence-agents' --{long} is not in twonode's option table"));
            // a getopt flag is "" in fencing.py's argv form; twonode writes "1" (both: set)
            (o.name.to_string(), if !o.value && val.is_empty() { "1".into() } else { val })
        })
        .collect()
}

fn have_fencing_py() -> bool {
    Path::new(FENCING_PY).exists() && Command::new("python3").arg("--version").output().is_ok()
}

/// Every alias twonode's table has for fence-agents' options (key = cluster.conf name, long
/// option, short letter), from fencing.py's `all_opt` and fence_ipmilan's own options.
#[test]
fn each_alias_names_one_option() {
    let table: &[(&str, &str, Option<char>)] = &[
        ("ipaddr", "ip", Some('a')),
        ("login", "username", Some('l')),
        ("passwd", "password", Some('p')),
        ("passwd_script", "password-script", Some('S')),
        ("port", "plug", Some('n')),
        ("ipport", "ipport", Some('u')),
        ("ssl", "ssl", Some('z')),
        ("ssl_insecure", "ssl-insecure", None),
        ("lanplus", "lanplus", Some('P')),
        ("cipher", "cipher", Some('C')),
        ("privlvl", "privlvl", Some('L')),
        ("method", "method", Some('m')),
        ("action", "action", Some('o')),
        ("delay", "delay", None),
        ("power_wait", "power-wait", None),
        ("power_timeout", "power-timeout", None),
        ("login_timeout", "login-timeout", None),
        ("shell_timeout", "shell-timeout", None),
        ("retry_on", "retry-on", None),
    ];
    for (key, long, short) in table {
        let o = option(key).unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!((o.name, o.longopt, o.short), (*key, *long, *short), "{key}");
        assert_eq!(canonical(long), *key);
        assert_eq!(canonical(&long.replace('-', "_")), *key);
        assert_eq!(canonical(&key.to_uppercase()), *key);
        // stdin: either spelling, the later line wins
        let all = |_: &str| true;
        let p = options::parse_stdin(&format!("{key}=first\n{}=second\n", long.replace('-', "_")), &all).params;
        assert_eq!(p[*key], "second", "{key} then {long}");
        let p = options::parse_stdin(&format!("{long}=first\n{key}=second\n"), &all).params;
        assert_eq!(p[*key], "second", "{long} then {key}");
        // argv: long form, cman spelling as a long option, short letter; the last wins
        if o.value {
            let mut args = vec![format!("--{long}=one"), format!("--{}", key.replace('_', "-")), "two".into()];
            if let Some(c) = short {
                args.push(format!("-{c}three"));
            }
            let p = options::parse_argv(&args, &all).unwrap().params;
            assert_eq!(p[*key], if short.is_some() { "three" } else { "two" }, "{args:?}");
        }
    }
    // fence-agents 4.12 does not know option= (the RHEL 5 spelling of action=): ignored
    assert!(option("option").is_none());
    let p = options::parse_stdin("option=off\n", &|k: &str| option(k).is_some());
    assert_eq!(p.warnings.len(), 1);
}

/// fencing.py's own parsers on the same input give the same option values (precedence: the
/// last spelling given wins, on stdin and on the command line).
#[test]
fn precedence_agrees_with_fencing_py() {
    if !have_fencing_py() {
        eprintln!("skipped: {FENCING_PY} not installed (scripts/install-deps installs fence-agents)");
        return;
    }
    let offered = |k: &str| FA_OPTS.contains(&k) || k == "action" || k == "verbose";
    for stdin in [
        "ip=a\nipaddr=b\nusername=u1\nlogin=u2\npasswd=p1\npassword=p2\nplug=3\nport=4\npower-wait=3\nssl_insecure=1\n",
        "ipaddr=b\nip=a\nlogin=u2\nusername=u1\npassword=p2\npasswd=p1\nport=4\nplug=3\npassword_script=x\npasswd_script=y\nlogin_timeout=\"7\"\naction=off\n",
        "# comment\n\nipport=624\nretry-on=2\ndelay=5\nshell_timeout=4\npower_timeout=30\nmethod=cycle\nssl=1\nnodename=node2\n",
    ] {
        let theirs = fence_agents_parse("stdin", stdin, &[]);
        let ours = options::parse_stdin(stdin, &offered).params;
        assert_eq!(ours, theirs, "stdin:\n{stdin}");
    }
    for args in [
        &["-a", "x", "--ip", "y", "-l", "u", "--username", "v", "-n", "1", "--plug", "2", "-o", "off"][..],
        &["--ip=y", "-ax", "--password-script=s", "-S", "t", "--power-wait=4", "--ssl-insecure", "-u", "1623"][..],
        &["--username=v", "-lu", "--delay", "3", "--retry-on=2", "-m", "cycle", "-z"][..],
    ] {
        let theirs = fence_agents_parse("argv", "", args);
        let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let ours = options::parse_argv(&argv, &offered).unwrap().params;
        assert_eq!(ours, theirs, "argv: {args:?}");
    }
}

/// fencing.py runs the password script and REPLACES --password with its output.
#[test]
fn a_password_script_wins_over_the_password() {
    let p: BTreeMap<String, String> =
        [("passwd", "fromconf"), ("passwd_script", "echo fromscript")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    assert_eq!(options::password(&p).unwrap().as_deref(), Some("fromscript"));
    let p: BTreeMap<String, String> = [("password", "x")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    assert_eq!(options::password(&p).unwrap().as_deref(), Some("x"));
    assert_eq!(options::password(&BTreeMap::new()).unwrap(), None);
    let p: BTreeMap<String, String> = [("password_script", "exit 3")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    assert!(options::password(&p).is_err());
}

/// `fence agent` and `fence gate` parse the same parameters into the same values, and the
/// gate's settings and the device view read the same address whichever spelling was used.
#[test]
fn both_agents_agree() {
    use twonode::fence::{agent, gate, spec::DeviceSpec};
    for stdin in [
        "ip=10.0.0.1\nipport=5999\nlogin_timeout=7\npower_timeout=30\naction=off\n",
        "ipaddr=10.0.0.1\nip=10.0.0.2\nipport=\"5999\"\nlogin-timeout=7\npower-timeout=30\naction=reboot\n",
    ] {
        let (a, _) = agent::parse_stdin(stdin);
        let g = gate::parse_stdin(stdin);
        for k in ["ipaddr", "ipport", "login_timeout", "power_timeout", "action"] {
            assert_eq!(a.get(k), g.get(k), "{k} from:\n{stdin}");
        }
        let dev = DeviceSpec::new("d", a.clone());
        let s = gate::GateSettings::from_params(&g).unwrap();
        assert_eq!(dev.address(), Some(s.host.as_str()));
        assert_eq!(dev.ipport().map(|p| p.parse::<u16>().unwrap()), Some(s.port));
    }
    let args: Vec<String> = ["-o", "off", "-a", "h", "--ipport=1234", "--login-timeout", "7", "--ip", "h2"].iter().map(|s| s.to_string()).collect();
    let (a, _) = agent::parse_args(&args).unwrap();
    let g = gate::parse_args(&args).unwrap();
    for k in ["ipaddr", "ipport", "login_timeout", "action"] {
        assert_eq!(a.get(k), g.get(k), "{k}");
    }
    assert_eq!(a["ipaddr"], "h2");
    // both metadata documents valid against fence-agents' metadata.rng
    let rng = "/usr/share/cluster/relaxng/metadata.rng";
    if Path::new(rng).exists() && Command::new("xmllint").arg("--version").output().is_ok() {
        let t = tempfile::tempdir().unwrap();
        for (name, xml) in [("agent", agent::metadata()), ("gate", gate::metadata())] {
            let f = t.path().join(format!("{name}.xml"));
            std::fs::write(&f, &xml).unwrap();
            let out = Command::new("xmllint").args(["--noout", "--relaxng", rng]).arg(&f).output().unwrap();
            assert!(out.status.success(), "{name}: {}\n{xml}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

/// The `fence_twonode` binary is the agent, alone: the same metadata and parameters as `twonode
/// fence agent`, and nothing on its fence path loads OpenSSL, zlib or libssh2.
#[test]
fn the_agent_binary_is_the_agent() {
    let agent = env!("CARGO_BIN_EXE_fence_twonode");
    let meta = |cmd: &mut Command| String::from_utf8(cmd.output().unwrap().stdout).unwrap();
    let own = meta(Command::new(agent).args(["-o", "metadata"]));
    let via_cli = meta(Command::new(env!("CARGO_BIN_EXE_twonode")).args(["fence", "agent", "-o", "metadata"]));
    assert!(own.contains("<resource-agent name=\"fence_twonode\""), "{own}");
    assert_eq!(own, via_cli);
    // bad input: the fence-agents exit code for a failure, and a message saying what is wrong
    let out = Command::new(agent).args(["-o", "status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).trim().is_empty());
    if let Ok(out) = Command::new("readelf").arg("-d").arg(agent).output() {
        let dynamic = String::from_utf8_lossy(&out.stdout);
        for lib in ["libssl", "libcrypto", "libz.", "libssh2"] {
            assert!(!dynamic.lines().any(|l| l.contains("(NEEDED)") && l.contains(lib)), "fence_twonode loads {lib}:\n{dynamic}");
        }
    }
}
