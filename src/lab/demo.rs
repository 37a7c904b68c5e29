//! `twonode lab demo`: a guided, non-interactive tour. Each step runs the real `twonode` binary
//! exactly as an admin would type it, inside a lab directory, and prints the command, why it
//! matters, and what it printed. The normalised log doubles as a golden regression test.
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// One step of the tour.
pub struct Step {
    pub title: String,
    pub why: String,
    /// Arguments after `twonode`; `$LAB` is replaced by the lab directory.
    pub args: Vec<String>,
    /// Exit code the step must end with for the tour to go on.
    pub expect: i32,
    /// Standard input for the step (how secrets reach twonode without argv).
    pub stdin: Option<String>,
    /// The step drives the IPMI BMC (skipped when ipmi_sim is not installed).
    pub needs_ipmi: bool,
    /// Something to do to the lab before the step runs (e.g. inject a fault).
    pub before: Option<fn(&Lab) -> anyhow::Result<()>>,
}

/// The running lab: its directory and simulators.
pub struct Lab {
    pub dir: PathBuf,
    pub ipmi: Option<super::services::IpmiBmc>,
    pub ilo: Option<super::ilo_sim::IloSim>,
}

impl Lab {
    /// Replace `$LAB`, `$IPMI_PORT`, `$ILO_PORT` in a step argument.
    fn expand(&self, arg: &str) -> String {
        arg.replace("$LAB", &self.dir.to_string_lossy())
            .replace("$IPMI_PORT", &self.ipmi.as_ref().map(|b| b.port).unwrap_or(9623).to_string())
            .replace("$ILO_PORT", &self.ilo.as_ref().map(|b| b.port()).unwrap_or(8443).to_string())
    }

    /// Undo `expand` in output, for logs that compare across runs.
    fn placeholders(&self, text: &str) -> String {
        let mut t = text.replace(&*self.dir.to_string_lossy(), "$LAB");
        if let Some(b) = &self.ipmi {
            t = t.replace(&format!(":{}", b.port), ":$IPMI_PORT").replace(&format!("={}", b.port), "=$IPMI_PORT")
                .replace(&format!("\"{}\"", b.port), "\"$IPMI_PORT\"");
        }
        if let Some(b) = &self.ilo {
            let port = b.port();
            t = t.replace(&format!(":{port}"), ":$ILO_PORT").replace(&format!("={port}"), "=$ILO_PORT")
                .replace(&format!("\"{port}\""), "\"$ILO_PORT\"");
        }
        t
    }
}

impl Step {
    fn new(title: &str, why: &str, args: &str, expect: i32) -> Step {
        Step {
            title: title.into(),
            why: why.into(),
            args: args.split_whitespace().map(String::from).collect(),
            expect,
            stdin: None,
            needs_ipmi: false,
            before: None,
        }
    }

    fn ipmi(mut self) -> Step {
        self.needs_ipmi = true;
        self
    }

    fn before(mut self, f: fn(&Lab) -> anyhow::Result<()>) -> Step {
        self.before = Some(f);
        self
    }

    fn stdin(mut self, input: &str) -> Step {
        self.stdin = Some(input.into());
        self
    }
}

/// The cluster.conf part of the tour.
pub fn conf_steps() -> Vec<Step> {
    let f = "--file $LAB/cluster.conf";
    vec![
        Step::new(
            "Create a two-node cluster.conf",
            "A skeleton: two nodes of one vote each, two_node=1 and expected_votes=1, written in place.",
            &format!("conf init --name lab --node node1 --node node2 --in-place {f}"),
            0,
        ),
        Step::new(
            "Validate it",
            "Valid XML and schema, but no fence method: fenced would retry forever when a node fails.",
            &format!("conf validate {f}"),
            0,
        ),
        Step::new(
            "Add node1's IPMI BMC (password on stdin)",
            "The edit goes to cluster.conf.new with config_version+1; the password never reaches argv, logs or diffs.",
            &format!("conf device add ipmi-node1 --agent fence_ipmilan ipaddr=127.0.0.1 ipport=$IPMI_PORT login=admin lanplus=1 cipher=3 power_timeout=8 --secret-stdin passwd {f}"),
            0,
        )
        .stdin("secret\n"),
        Step::new(
            "Add node2's iLO the RHEL 5 way (hostname=)",
            "Staging allows it, but the validator flags it: fence-agents 4.x ignores hostname= and fencing breaks.",
            &format!("conf device add ilo-node2 --agent fence_ilo hostname=ilo-node2.example ipport=$ILO_PORT login=admin ssl_insecure=1 --secret-stdin passwd {f}"),
            0,
        )
        .stdin("secret\n"),
        Step::new(
            "Bind node1 to its BMC, with a delay",
            "A delay on ONE node decides the two-node fence race: whoever fences node1 waits 5 s, so node1 wins.",
            &format!("conf bind node1 ipmi-node1 --method ipmi delay=5 {f}"),
            0,
        ),
        Step::new(
            "Bind node2 to its iLO",
            "Each node gets a method; methods are tried in order (cascade).",
            &format!("conf bind node2 ilo-node2 --method ilo {f}"),
            0,
        ),
        Step::new(
            "Try to activate",
            "apply validates first: with an error nothing is changed.",
            &format!("conf apply {f}"),
            1,
        ),
        Step::new(
            "Fix the iLO address",
            "Only the bytes of that one attribute (and config_version) change.",
            &format!("conf device set ilo-node2 ipaddr=127.0.0.1 --unset hostname {f}"),
            0,
        ),
        Step::new(
            "Review live against staged",
            "What `cman_tool version -r` would load; passwords are masked on both sides.",
            &format!("conf diff {f}"),
            0,
        ),
        Step::new(
            "Activate",
            "Validates, checks the version is higher, keeps cluster.conf.old, replaces the file atomically.",
            &format!("conf apply {f}"),
            0,
        ),
        Step::new(
            "Show what fenced will do",
            "The typed view of the live file.",
            &format!("conf show {f}"),
            0,
        ),
    ]
}

/// The fencing part: the devices configured above, against the lab's simulated BMCs.
pub fn fence_steps() -> Vec<Step> {
    let f = "--file $LAB/cluster.conf";
    let audit = "--audit-log $LAB/fence-audit.log";
    vec![
        Step::new(
            "Test every fence device before production",
            "Reachable, login, status and timing of every device of every node, plus the config risks.",
            &format!("fence test {f}"),
            0,
        )
        .ipmi(),
        Step::new(
            "Read node2's power state",
            "Through its iLO (RIBCL over TLS); exit 0 means on, 2 means off, as fence agents do.",
            &format!("fence node2 --action status {f}"),
            0,
        ),
        Step::new(
            "Fence node2",
            "reboot = off, confirm off by reading the state back, on, confirm on. Audited.",
            &format!("fence node2 --action reboot --yes {audit} {f}"),
            0,
        ),
        Step::new(
            "Fence node1 whose BMC ignores power-on",
            "Waits node1's 5 s delay, powers off (confirmed), then power-on never comes within power_timeout=8: \
             reported as fenced but power-on FAILED (exit 8), where fence_ipmilan says Success.",
            &format!("fence node1 --action reboot --yes {audit} {f}"),
            8,
        )
        .ipmi()
        .before(|lab| {
            if let Some(b) = &lab.ipmi {
                b.ignore_power_on(true)?;
            }
            Ok(())
        }),
        Step::new(
            "Power node1 on again once the fault is fixed",
            "Verified: the command returns only when the BMC reports on.",
            &format!("fence node1 --action on --yes {audit} {f}"),
            0,
        )
        .ipmi()
        .before(|lab| {
            if let Some(b) = &lab.ipmi {
                b.ignore_power_on(false)?;
            }
            Ok(())
        }),
    ]
}

/// Where the steps come from: every area contributes its part of the tour.
pub fn tour() -> Vec<Step> {
    let mut steps = conf_steps();
    steps.extend(fence_steps());
    steps
}

/// Start the lab's simulators in DIR. A missing ipmi_sim is not fatal: its steps are skipped.
pub fn start_lab(dir: PathBuf) -> anyhow::Result<(Lab, Vec<String>)> {
    let mut notes = Vec::new();
    let ipmi = match super::services::IpmiBmc::start(&dir.join("bmc-node1")) {
        Ok(b) => Some(b),
        Err(e) => {
            notes.push(format!("IPMI steps skipped: {e:#}"));
            None
        }
    };
    let cfg = super::ilo_sim::IloSimConfig::new(super::ilo_sim::Profile::Ilo2, dir.join("ilo-node2"));
    let ilo = Some(super::ilo_sim::IloSim::start(cfg)?);
    Ok((Lab { dir, ipmi, ilo }, notes))
}

/// Run the tour; returns the exit code (0 when every step ended as expected).
pub fn run(keep: Option<PathBuf>, log: Option<PathBuf>, json: bool) -> anyhow::Result<i32> {
    let tmp;
    let kept = keep.is_some();
    let lab: PathBuf = match keep {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            dir
        }
        None => {
            tmp = tempfile::Builder::new().prefix("twonode-lab.").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let exe = std::env::current_exe().context("locating the twonode binary")?;
    let (lab_env, notes) = start_lab(lab.clone())?;
    for note in &notes {
        eprintln!("lab: {note}");
    }
    let mut normalised = String::new();
    let mut report = Vec::new();
    let mut failed = None;
    for (i, step) in tour().iter().enumerate() {
        if step.needs_ipmi && lab_env.ipmi.is_none() {
            if !json {
                println!("== {}. {} (skipped: no ipmi_sim)\n", i + 1, step.title);
            }
            continue;
        }
        if let Some(f) = step.before {
            f(&lab_env).with_context(|| format!("preparing step {}", i + 1))?;
        }
        let args: Vec<String> = step.args.iter().map(|a| lab_env.expand(a)).collect();
        let started = Instant::now();
        let out = run_child(&exe, &args, &lab, step.stdin.as_deref())
            .with_context(|| format!("running step {}: twonode {}", i + 1, args.join(" ")))?;
        let code = out.status.code().unwrap_or(-1);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let block = format!(
            "== {}. {}\n   {}\n$ twonode {}\n{}{}[exit {}]\n\n",
            i + 1,
            step.title,
            step.why,
            step.args.join(" "),
            indent(&stdout),
            indent(&stderr),
            code
        );
        normalised.push_str(&normalise(&lab_env.placeholders(&block), &lab));
        if !json {
            print!("{}", lab_env.placeholders(&block));
            println!("   ({} ms)\n", started.elapsed().as_millis());
        }
        report.push(serde_json::json!({
            "step": i + 1, "title": step.title, "args": args, "exit": code,
            "expected_exit": step.expect, "ms": started.elapsed().as_millis() as u64,
        }));
        if code != step.expect {
            failed = Some(format!("step {} ({}) ended with exit {code}, expected {}", i + 1, step.title, step.expect));
            break;
        }
    }
    if let Some(path) = log {
        std::fs::write(&path, &normalised).with_context(|| format!("writing {}", path.display()))?;
    }
    if json {
        crate::util::print_json(&serde_json::json!({ "lab": lab, "steps": report, "failed": failed }))?;
    } else {
        match &failed {
            Some(why) => println!("tour stopped: {why}"),
            None if kept => println!("tour complete: {} steps; the lab stays in {}", report.len(), lab.display()),
            None => println!("tour complete: {} steps (lab removed; `--keep DIR` keeps it to explore)", report.len()),
        }
    }
    Ok(if failed.is_some() { 1 } else { 0 })
}

fn run_child(exe: &Path, args: &[String], dir: &Path, stdin: Option<&str>) -> std::io::Result<std::process::Output> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(exe)
        .args(args)
        .current_dir(dir)
        .env("TWONODE_FENCE_AUDIT_LOG", dir.join("fence-audit.log"))
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())?;
    }
    child.wait_with_output()
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

/// Make a log comparable across runs: the lab path becomes `$LAB`, decimal numbers (timings)
/// become `N.N`, integer millisecond timings `N ms`, ISO timestamps `TIMESTAMP`.
pub fn normalise(text: &str, lab: &Path) -> String {
    let text = text.replace(&*lab.to_string_lossy(), "$LAB");
    let mut out = String::with_capacity(text.len() + 1);
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if is_timestamp(&b[i..]) {
            let end = b[i..].iter().position(|c| c.is_ascii_whitespace()).map(|p| i + p).unwrap_or(b.len());
            out.push_str("TIMESTAMP");
            i = end;
            continue;
        }
        let prev_alnum = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if b[i].is_ascii_digit() && !prev_alnum {
            let mut j = i;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if j + 1 < b.len() && b[j] == b'.' && b[j + 1].is_ascii_digit() {
                let mut k = j + 1;
                while k < b.len() && b[k].is_ascii_digit() {
                    k += 1;
                }
                out.push_str("N.N");
                i = k;
                continue;
            }
            if text[j..].starts_with(" ms") {
                out.push('N');
                i = j;
                continue;
            }
            out.push_str(&text[i..j]);
            i = j;
            continue;
        }
        let ch = text[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// `2026-11-22T01:09:21...`
fn is_timestamp(b: &[u8]) -> bool {
    const SHAPE: &[u8] = b"dddd-dd-ddTdd:dd:dd";
    b.len() >= SHAPE.len()
        && SHAPE.iter().zip(b).all(|(s, c)| if *s == b'd' { c.is_ascii_digit() } else { s == c })
}

#[cfg(test)]
mod tests {
    #[test]
    fn normalise_strips_paths_and_timings() {
        let lab = std::path::Path::new("/tmp/twonode-lab.abc");
        let got = super::normalise(
            "status read in 12.5 ms at /tmp/twonode-lab.abc/x\nno ms here, (188 ms) node2 at 2026-11-22T01:09:21.327Z ok",
            lab,
        );
        assert_eq!(got, "status read in N.N ms at $LAB/x\nno ms here, (N ms) node2 at TIMESTAMP ok\n");
    }
}
