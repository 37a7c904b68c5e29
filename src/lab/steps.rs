//! Steps of the lab's tour and scenarios and the runner that plays them: each step runs the real
//! `twonode` binary (or a shell command) in a lab directory, prints the command, why it matters
//! and what it printed, and collects the normalised log the golden tests compare.
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

pub use super::rig::Lab;

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
        Step { kind: Kind::Race(steps), ..Step::new(title, why, "", 0) }
    }

    /// An explanation printed between steps ("what happened and why"); runs nothing.
    pub fn narrate(text: &str) -> Step {
        Step { kind: Kind::Narrate, ..Step::new(text, "", "", 0) }
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
