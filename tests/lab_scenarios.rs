//! Every lab scenario (`twonode lab scenario --list`) is a regression test: its normalised log must
//! match fixtures/lab/scenarios/NAME.golden. Each scenario runs the real twonode binary against the
//! lab's simulators (ipmi_sim, the iLO simulator, the arbiter, sshd + real drbdadm over the DRBD
//! simulator), all on loopback. After a deliberate change: `TWONODE_BLESS=1 cargo test --test
//! lab_scenarios`, then review the diff. `TWONODE_SCENARIO=NAME` runs only that one.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_twonode");

fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/lab/scenarios").join(format!("{name}.golden"))
}

fn names() -> Vec<String> {
    let out = Command::new(BIN).args(["--json", "lab", "scenario", "--list"]).output().expect("run twonode");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--list --json is JSON");
    v.as_array().expect("array").iter().map(|s| s["name"].as_str().expect("name").to_string()).collect()
}

/// Run one scenario; Err(diff or failure) when it does not match its golden log.
fn check(name: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let log = dir.path().join("scenario.log");
    let t = Instant::now();
    let out = Command::new(BIN)
        .args(["lab", "scenario", name, "--log"])
        .arg(&log)
        .output()
        .map_err(|e| e.to_string())?;
    let secs = t.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("scenario {name} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    let got = std::fs::read_to_string(&log).map_err(|e| e.to_string())?;
    if got.contains("(skipped: ") {
        // Loud, but not a failure: CI installs every program (scripts/install-deps).
        eprintln!("SKIPPED scenario {name}: {}", got.lines().find(|l| l.contains("(skipped: ")).unwrap_or(""));
        return Ok(format!("{name}: skipped"));
    }
    let path = golden_path(name);
    if std::env::var_os("TWONODE_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("dir")).map_err(|e| e.to_string())?;
        std::fs::write(&path, &got).map_err(|e| e.to_string())?;
        return Ok(format!("{name}: blessed ({secs:.1} s)"));
    }
    let golden = std::fs::read_to_string(&path)
        .map_err(|_| format!("{} missing: bless it once with TWONODE_BLESS=1", path.display()))?;
    if got != golden {
        let diff = similar::TextDiff::from_lines(&golden, &got);
        return Err(format!("scenario {name}: log differs from {}:\n{}", path.display(), diff.unified_diff().header("golden", "now")));
    }
    Ok(format!("{name}: ok ({secs:.1} s)"))
}

#[test]
fn every_scenario_matches_its_golden_log() {
    let only = std::env::var("TWONODE_SCENARIO").ok();
    let names: Vec<String> = names().into_iter().filter(|n| only.as_ref().map(|o| o == n).unwrap_or(true)).collect();
    assert!(!names.is_empty(), "no scenario to run");
    // Two at a time: the scenarios' timings (fence delays, power timeouts) stay far from the limits
    // on a 2-core machine.
    let mut results = Vec::new();
    for chunk in names.chunks(2) {
        let r: Vec<Result<String, String>> = std::thread::scope(|s| {
            let hs: Vec<_> = chunk.iter().map(|n| s.spawn(move || check(n))).collect();
            hs.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("panicked".into()))).collect()
        });
        results.extend(r);
    }
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(line) => eprintln!("{line}"),
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // Every golden log belongs to a scenario (a renamed scenario leaves no stale file behind).
    if only.is_none() {
        let all = self::names();
        for e in std::fs::read_dir(golden_path("x").parent().expect("dir")).expect("fixtures/lab/scenarios") {
            let p = e.expect("entry").path();
            let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            assert!(all.contains(&stem), "{} has no scenario named {stem}", p.display());
        }
    }
}

#[test]
fn list_and_unknown_names() {
    let out = Command::new(BIN).args(["lab", "scenario", "--list"]).output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for n in ["dead-bmc", "no-power-on", "split-brain"] {
        assert!(text.contains(n), "{n} not listed:\n{text}");
    }
    let out = Command::new(BIN).args(["lab", "scenario", "no-such-thing"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no scenario named") && err.contains("dead-bmc"), "{err}");
    // A used directory is refused: a previous lab's staged files would change the steps.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("cluster.conf.new"), "<cluster/>").expect("write");
    for args in [vec!["lab", "scenario", "dead-bmc", "--keep"], vec!["lab", "start", "--dir"], vec!["lab", "demo", "--keep"]] {
        let out = Command::new(BIN).args(&args).arg(dir.path()).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("is not empty"), "{args:?}");
    }
}

#[test]
fn json_report_has_every_step_with_its_exit_code() {
    let out = Command::new(BIN).args(["--json", "lab", "scenario", "dead-bmc"]).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["scenario"], "dead-bmc");
    assert_eq!(v["failed"], serde_json::Value::Null);
    let steps = v["steps"].as_array().expect("steps");
    let exits: Vec<i64> = steps.iter().filter_map(|s| s["exit"].as_i64()).collect();
    assert_eq!(exits, [0, 1, 4, 0, 0, 0, 0, 0, 1, 0]);
    assert!(steps.iter().any(|s| s["narration"].is_string()));
    // the BMC password and the PDU's community of the lab never show (conf's option and its words
    // for a changed secret aside)
    let text = String::from_utf8_lossy(&out.stdout)
        .replace("# secret changed (value not shown)", "")
        .replace("--secret-stdin", "");
    assert!(!text.contains("secret"));
    assert!(!text.contains(twonode::lab::pdu_sim::COMMUNITY));
}

#[test]
fn lab_start_serves_everything_until_interrupted() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = dir.path().join("lab");
    let mut child = Command::new(BIN)
        .args(["--json", "lab", "start", "--dir"])
        .arg(&lab)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let env: Vec<(String, String)> = v["env"]
        .as_object()
        .expect("env")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
        .collect();
    let run = |args: &[String]| {
        let out = Command::new(BIN).args(args).envs(env.iter().cloned()).output().expect("run");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };
    let conf = lab.join("cluster.conf").display().to_string();
    let (code, out) = run(&["fence".into(), "test".into(), "--file".into(), conf.clone()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("result: PASS"), "{out}");
    if let Some(nodes) = v["drbd_nodes"].as_array() {
        let mut args: Vec<String> = vec!["drbd".into(), "status".into(), "r0".into()];
        args.extend(nodes.iter().map(|n| n.as_str().unwrap_or("").to_string()));
        let (code, out) = run(&args);
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains("r0: Healthy"), "{out}");
    }
    // node1's BMC speaks suite 17 only: the real ipmitool gets in with -C 17 and is refused with
    // -C 3, and the real fence_ipmilan (ipmitool's default suite, 17 on 1.8.19) reads its power.
    let ipmi_port = v["ipmi_port"].as_u64().expect("ipmi_port").to_string();
    if twonode::lab::services::have("ipmitool") {
        let ipmitool = |suite: &str| {
            Command::new("ipmitool")
                .args(["-I", "lanplus", "-C", suite, "-H", "127.0.0.1", "-p", &ipmi_port, "-U", "admin", "-E"])
                .args(["-N", "1", "-R", "1", "chassis", "power", "status"])
                .env("IPMI_PASSWORD", "secret")
                .output()
                .expect("ipmitool")
        };
        let ok = ipmitool("17");
        assert!(ok.status.success(), "ipmitool -C 17: {}", String::from_utf8_lossy(&ok.stderr));
        assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "Chassis Power is on");
        let refused = ipmitool("3");
        assert!(!refused.status.success(), "suite 3 must be refused by a suite-17-only BMC");
    }
    if twonode::lab::services::have("fence_ipmilan") {
        let mut agent = Command::new("fence_ipmilan")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("fence_ipmilan");
        use std::io::Write;
        let opts = format!("action=status\nip=127.0.0.1\nipport={ipmi_port}\nusername=admin\npassword=secret\nlanplus=1\n");
        agent.stdin.take().expect("stdin").write_all(opts.as_bytes()).expect("write");
        let out = agent.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("Status: ON"), "{}", String::from_utf8_lossy(&out.stdout));
    }
    let sock = v["arbiter_status_socket"].as_str().expect("arbiter").to_string();
    let (code, out) = run(&["arbiter".into(), "status".into(), "--socket".into(), sock]);
    assert_eq!(code, Some(0), "{out}");
    // Ctrl-C stops everything: the ports close.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).expect("kill");
    let st = child.wait().expect("wait");
    assert_eq!(st.code(), Some(0));
    for key in ["ilo_port", "arbiter_port"] {
        let port = v[key].as_u64().expect("port") as u16;
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "{key} {port} still open");
    }
}
