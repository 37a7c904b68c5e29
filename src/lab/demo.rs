//! `twonode lab demo`: a guided, non-interactive tour. Each step runs the real `twonode` binary
//! exactly as an admin would type it, inside a lab directory, and prints the command, why it
//! matters, and what it printed. The normalised log doubles as a golden regression test.
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// What a step does.
pub enum Kind {
    /// Run `twonode ARGS` and show what it printed.
    Run,
    /// Run the sub-steps' commands at the same time (e.g. both nodes' fenced firing at once);
    /// their outputs are printed in the listed order, never completion order.
    Race(Vec<Step>),
    /// Print an explanation (what happened and why) without running anything.
    Narrate,
}

/// One step of the tour or of a scenario.
pub struct Step {
    pub title: String,
    pub why: String,
    /// Arguments after `twonode`; `$LAB`, `$IPMI_PORT`, `$ILO_PORT`, `$ARBITER_PORT` are expanded.
    pub args: Vec<String>,
    /// Exit code the step must end with for the tour to go on.
    pub expect: i32,
    /// Standard input for the step (how secrets reach twonode without argv).
    pub stdin: Option<String>,
    /// The step drives the IPMI BMC (skipped when ipmi_sim is not installed).
    pub needs_ipmi: bool,
    /// Something to do to the lab before the step runs (e.g. inject a fault).
    pub before: Option<fn(&Lab) -> anyhow::Result<()>>,
    /// An observation printed after the step ("observed: node2 BMC off"), part of the golden log.
    pub after: Option<fn(&Lab) -> anyhow::Result<String>>,
    /// Extra environment for the command (shown in the log as `VAR=value twonode ...`); values
    /// are expanded like `args`.
    pub env: Vec<(String, String)>,
    pub kind: Kind,
    /// The command runs ON this node (it is that node's fenced): the lab kills it the moment the
    /// node's BMC reports power off, as a machine switched off takes its processes with it. Its
    /// exit code is then [`Step::DIED`] and its partial output is not kept (timing-dependent).
    pub dies_with: Option<&'static str>,
    /// In a race: start only once this holds in the lab (polled every 20 ms, at most 30 s), e.g.
    /// "the other node's gate holds the arbiter's vote": a later start without a timing guess.
    pub start_when: Option<fn(&Lab) -> bool>,
}

impl Step {
    /// A step running `twonode ARGS` (split on whitespace), which must exit with EXPECT.
    pub fn new(title: &str, why: &str, args: &str, expect: i32) -> Step {
        Step {
            title: title.into(),
            why: why.into(),
            args: args.split_whitespace().map(String::from).collect(),
            expect,
            stdin: None,
            needs_ipmi: false,
            before: None,
            after: None,
            env: Vec::new(),
            kind: Kind::Run,
            dies_with: None,
            start_when: None,
        }
    }

    /// The "exit code" of a command killed because its node lost power (see `dies_with`).
    pub const DIED: i32 = -9;

    /// The command runs on NODE and dies with it (see the field).
    pub fn dies_with(mut self, node: &'static str) -> Step {
        self.dies_with = Some(node);
        self
    }

    /// In a race, start once COND holds (see the field).
    pub fn start_when(mut self, cond: fn(&Lab) -> bool) -> Step {
        self.start_when = Some(cond);
        self
    }

    /// Run STEPS' commands concurrently (each `before` hook first, in order), then print their
    /// outputs in the listed order. Each sub-step's exit code is checked.
    pub fn race(title: &str, why: &str, steps: Vec<Step>) -> Step {
        let needs_ipmi = steps.iter().any(|s| s.needs_ipmi);
        Step { kind: Kind::Race(steps), needs_ipmi, ..Step::new(title, why, "", 0) }
    }

    /// An explanation printed between steps ("what happened and why"); runs nothing.
    pub fn narrate(text: &str) -> Step {
        Step { kind: Kind::Narrate, ..Step::new(text, "", "", 0) }
    }

    pub fn ipmi(mut self) -> Step {
        self.needs_ipmi = true;
        self
    }

    pub fn before(mut self, f: fn(&Lab) -> anyhow::Result<()>) -> Step {
        self.before = Some(f);
        self
    }

    pub fn after(mut self, f: fn(&Lab) -> anyhow::Result<String>) -> Step {
        self.after = Some(f);
        self
    }

    pub fn stdin(mut self, input: &str) -> Step {
        self.stdin = Some(input.into());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Step {
        self.env.push((key.into(), value.into()));
        self
    }
}

pub use super::rig::Lab;

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
        .before(|lab| lab.ignore_power_on("node1", true)),
        Step::new(
            "Power node1 on again once the fault is fixed",
            "Verified: the command returns only when the BMC reports on.",
            &format!("fence node1 --action on --yes {audit} {f}"),
            0,
        )
        .ipmi()
        .before(|lab| lab.ignore_power_on("node1", false)),
    ]
}

/// Where the steps come from: every area contributes its part of the tour.
pub fn tour() -> Vec<Step> {
    let mut steps = conf_steps();
    steps.extend(fence_steps());
    steps
}

/// Runs steps against a lab: prints them (unless --json), and collects the normalised log and a
/// JSON report. Shared by the tour and the scenarios.
pub struct Runner<'a> {
    pub lab: &'a Lab,
    exe: PathBuf,
    json: bool,
    number: usize,
    /// The normalised log so far (the golden-log text).
    pub log: String,
    pub report: Vec<serde_json::Value>,
    /// Why the run stopped, if a step did not end as expected.
    pub failed: Option<String>,
}

/// One finished command of a step.
struct Ran {
    shown: String,
    args: Vec<String>,
    code: i32,
    stdout: String,
    stderr: String,
    ms: u128,
}

impl<'a> Runner<'a> {
    pub fn new(lab: &'a Lab, json: bool) -> anyhow::Result<Runner<'a>> {
        let exe = std::env::current_exe().context("locating the twonode binary")?;
        Ok(Runner { lab, exe, json, number: 0, log: String::new(), report: Vec::new(), failed: None })
    }

    /// Text that is not a step (a header): printed, and part of the log.
    pub fn text(&mut self, t: &str) {
        let t = self.lab.placeholders(t);
        if !self.json {
            print!("{t}");
        }
        self.log.push_str(&normalise(&t, &self.lab.dir));
    }

    /// Run STEP; false when it did not end as expected (the run stops; see `failed`).
    pub fn run(&mut self, step: &Step) -> anyhow::Result<bool> {
        if let Kind::Narrate = step.kind {
            let block = format!("{}\n", wrap(&step.title, ">> ", "   "));
            self.text(&block);
            self.report.push(serde_json::json!({ "narration": step.title }));
            return Ok(true);
        }
        self.number += 1;
        let n = self.number;
        if step.needs_ipmi && self.lab.ipmi_port.is_none() {
            if !self.json {
                println!("== {n}. {} (skipped: no ipmi_sim)\n", step.title);
            }
            return Ok(true);
        }
        let started = Instant::now();
        let mut block = format!("== {n}. {}\n", step.title);
        if !step.why.is_empty() {
            block.push_str(&format!("   {}\n", step.why));
        }
        let mut ok = true;
        let mut entry = serde_json::json!({ "step": n, "title": step.title });
        match &step.kind {
            Kind::Run => {
                if let Some(f) = step.before {
                    f(self.lab).with_context(|| format!("preparing step {n} ({})", step.title))?;
                }
                let ran = self.exec(step).with_context(|| format!("running step {n} ({})", step.title))?;
                block.push_str(&self.render(&ran));
                if let Some(f) = step.after {
                    block.push_str(&observed(&f(self.lab).with_context(|| format!("observing after step {n}"))?));
                }
                entry["args"] = serde_json::json!(ran.args);
                entry["exit"] = serde_json::json!(ran.code);
                entry["expected_exit"] = serde_json::json!(step.expect);
                entry["ms"] = serde_json::json!(ran.ms as u64);
                if ran.code != step.expect {
                    ok = false;
                    self.failed = Some(format!("step {n} ({}) ended with exit {}, expected {}", step.title, ran.code, step.expect));
                }
            }
            Kind::Race(subs) => {
                block.push_str(&format!("   (these {} commands run at the same time; their outputs follow in this order)\n", subs.len()));
                for s in subs {
                    if let Some(f) = s.before {
                        f(self.lab).with_context(|| format!("preparing step {n} ({})", s.title))?;
                    }
                }
                let results: Vec<anyhow::Result<Ran>> = std::thread::scope(|sc| {
                    let handles: Vec<_> = subs.iter().map(|s| sc.spawn(|| self.exec(s))).collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a concurrent step panicked"))))
                        .collect()
                });
                let mut parts = Vec::new();
                for (s, r) in subs.iter().zip(results) {
                    let ran = r.with_context(|| format!("running step {n} ({})", s.title))?;
                    block.push_str(&format!("-- {}\n", s.title));
                    if !s.why.is_empty() {
                        block.push_str(&format!("   {}\n", s.why));
                    }
                    block.push_str(&self.render(&ran));
                    if let Some(f) = s.after {
                        block.push_str(&observed(&f(self.lab)?));
                    }
                    parts.push(serde_json::json!({
                        "title": s.title, "args": ran.args, "exit": ran.code, "expected_exit": s.expect, "ms": ran.ms as u64,
                    }));
                    if ran.code != s.expect && ok {
                        ok = false;
                        self.failed = Some(format!("step {n} ({}: {}) ended with exit {}, expected {}", step.title, s.title, ran.code, s.expect));
                    }
                }
                if let Some(f) = step.after {
                    block.push_str(&observed(&f(self.lab)?));
                }
                entry["race"] = serde_json::json!(parts);
            }
            Kind::Narrate => {}
        }
        block.push('\n');
        let shown = self.lab.placeholders(&block);
        self.log.push_str(&normalise(&shown, &self.lab.dir));
        if !self.json {
            print!("{shown}");
            println!("   ({} ms)\n", started.elapsed().as_millis());
        }
        entry["output"] = serde_json::json!(normalise(&shown, &self.lab.dir));
        self.report.push(entry);
        Ok(ok)
    }

    fn exec(&self, step: &Step) -> anyhow::Result<Ran> {
        let args = self.lab.expand_args(&step.args);
        let env: Vec<(String, String)> = step.env.iter().map(|(k, v)| (k.clone(), self.lab.expand(v))).collect();
        if let Some(cond) = step.start_when {
            let t = Instant::now();
            while !cond(self.lab) {
                if t.elapsed() > std::time::Duration::from_secs(30) {
                    anyhow::bail!("`{}` waited 30 s for its start condition", step.title);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let started = Instant::now();
        let lab = self.lab;
        let alive = step.dies_with.map(|node| move || lab.power_on(node).unwrap_or(true));
        let (out, died) = run_child(&self.exe, &args, &self.lab.dir, step.stdin.as_deref(), &self.lab.env(), &env, alive)
            .with_context(|| format!("running twonode {}", args.join(" ")))?;
        let mut shown = String::new();
        for (k, v) in &env {
            shown.push_str(&format!("{k}={} ", show_word(v)));
        }
        shown.push_str("twonode");
        for a in &args {
            shown.push(' ');
            shown.push_str(&show_word(a));
        }
        if let (true, Some(node)) = (died, step.dies_with) {
            return Ok(Ran {
                shown,
                args,
                code: Step::DIED,
                stdout: String::new(),
                stderr: format!("({node} lost power while this ran: its fenced died with it)\n"),
                ms: started.elapsed().as_millis(),
            });
        }
        Ok(Ran {
            shown,
            args,
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            ms: started.elapsed().as_millis(),
        })
    }

    fn render(&self, r: &Ran) -> String {
        if r.code == Step::DIED {
            return format!("$ {}\n{}[no exit: killed]\n", r.shown, indent(&r.stderr));
        }
        format!("$ {}\n{}{}[exit {}]\n", r.shown, indent(&r.stdout), indent(&r.stderr), r.code)
    }
}

/// A word of a command line as shown in the log: quoted only when a shell would split it.
fn show_word(w: &str) -> String {
    if w.is_empty() || w.chars().any(|c| c.is_whitespace() || c == '\'' || c == '"' || c == ';' || c == '|' || c == '&') {
        format!("'{}'", w.replace('\'', "'\\''"))
    } else {
        w.to_string()
    }
}

fn observed(text: &str) -> String {
    wrap(text, "observed: ", "          ")
}

/// Wrap TEXT at 100 columns: FIRST before the first line, REST before the others; explicit
/// newlines start new lines.
pub fn wrap(text: &str, first: &str, rest: &str) -> String {
    let mut out = String::new();
    let mut prefix = first;
    for para in text.lines() {
        let mut line = String::new();
        for word in para.split_whitespace() {
            if !line.is_empty() && prefix.len() + line.len() + 1 + word.len() > 100 {
                out.push_str(&format!("{prefix}{line}\n"));
                prefix = rest;
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        out.push_str(&format!("{prefix}{line}\n"));
        prefix = rest;
    }
    out
}

/// Run the tour, then every registered scenario (each in a fresh lab); returns the exit code (0
/// when every step ended as expected).
pub fn run(keep: Option<PathBuf>, log: Option<PathBuf>, json: bool) -> anyhow::Result<i32> {
    let tmp;
    let kept = keep.is_some();
    let lab: PathBuf = match keep {
        Some(dir) => {
            super::rig::fresh_dir(&dir)?;
            dir
        }
        None => {
            tmp = super::rig::temp_dir()?;
            tmp.path().to_path_buf()
        }
    };
    let mut text = String::new();
    let mut reports = Vec::new();
    let mut failed;
    let mut steps = 0;
    let mut played = 0;
    {
        let lab_env = Lab::start(lab.clone(), super::rig::LabOptions::default())?;
        for note in &lab_env.notes {
            eprintln!("lab: {note}");
        }
        let mut r = Runner::new(&lab_env, json)?;
        for step in tour() {
            if !r.run(&step)? {
                break;
            }
        }
        text.push_str(&r.log);
        steps += r.report.iter().filter(|e| e.get("step").is_some()).count();
        failed = r.failed.take();
        reports.push(serde_json::json!({ "part": "tour", "lab": lab, "steps": r.report, "failed": failed }));
    }
    if failed.is_none() {
        for sc in super::scenario::all() {
            let dir = lab.join("scenarios").join(sc.name);
            let out = super::scenario::run_in(&sc, dir.clone(), json)?;
            text.push_str(&out.log);
            steps += out.report.iter().filter(|e| e.get("step").is_some()).count();
            played += 1;
            reports.push(serde_json::json!({ "part": sc.name, "lab": dir, "steps": out.report, "failed": out.failed, "skipped": out.skipped }));
            if let Some(f) = out.failed {
                failed = Some(format!("scenario {}: {f}", sc.name));
                break;
            }
        }
    }
    if let Some(path) = log {
        std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    if json {
        crate::util::print_json(&serde_json::json!({ "lab": lab, "parts": reports, "failed": failed }))?;
    } else {
        match &failed {
            Some(why) => println!("tour stopped: {why}"),
            None if kept => println!("tour complete: the tour and {played} scenarios, {steps} steps; the lab stays in {}", lab.display()),
            None => println!("tour complete: the tour and {played} scenarios, {steps} steps (lab removed; `--keep DIR` keeps it to explore)"),
        }
    }
    Ok(if failed.is_some() { 1 } else { 0 })
}

fn run_child(
    exe: &Path,
    args: &[String],
    dir: &Path,
    stdin: Option<&str>,
    lab_env: &[(String, String)],
    env: &[(String, String)],
    alive: Option<impl Fn() -> bool>,
) -> std::io::Result<(std::process::Output, bool)> {
    use std::io::Write;
    use std::process::Stdio;
    let mut cmd = Command::new(exe);
    cmd.args(args).current_dir(dir);
    for (k, v) in lab_env.iter().chain(env) {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())?;
    }
    let Some(alive) = alive else { return Ok((child.wait_with_output()?, false)) };
    // Watch the node the command runs on; drain the pipes meanwhile.
    fn drain(p: Option<impl std::io::Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = p {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    }
    let (out, err) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let mut died = false;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if !alive() {
            let _ = child.kill();
            died = true;
            break child.wait()?;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    Ok((std::process::Output { status, stdout, stderr }, died))
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
