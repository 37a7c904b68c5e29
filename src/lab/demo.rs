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
}

impl Step {
    fn new(title: &str, why: &str, args: &str, expect: i32) -> Step {
        Step {
            title: title.into(),
            why: why.into(),
            args: args.split_whitespace().map(String::from).collect(),
            expect,
            stdin: None,
        }
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
            "The edit goes to cluster.conf.new with config_version+1; a password with & < \" is escaped, never shown.",
            &format!("conf device add ipmi-node1 --agent fence_ipmilan ipaddr=127.0.0.1 ipport=9623 login=admin lanplus=1 cipher=3 --secret-stdin passwd {f}"),
            0,
        )
        .stdin("s3cr&t<\"x\n"),
        Step::new(
            "Add node2's iLO the RHEL 5 way (hostname=)",
            "Staging allows it, but the validator flags it: fence-agents 4.x ignores hostname= and fencing breaks.",
            &format!("conf device add ilo-node2 --agent fence_ilo hostname=ilo-node2.example ipport=8443 login=admin ssl_insecure=1 --secret-stdin passwd {f}"),
            0,
        )
        .stdin("secret\n"),
        Step::new(
            "Bind node1 to its BMC, with a delay",
            "The delay on ONE node decides the two-node fence race: node1 survives a split.",
            &format!("conf bind node1 ipmi-node1 --method ipmi delay=15 {f}"),
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

/// Where the steps come from: every area contributes its part of the tour.
pub fn tour() -> Vec<Step> {
    conf_steps()
}

/// Run the tour; returns the exit code (0 when every step ended as expected).
pub fn run(keep: Option<PathBuf>, log: Option<PathBuf>, json: bool) -> anyhow::Result<i32> {
    let tmp;
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
    let mut normalised = String::new();
    let mut report = Vec::new();
    let mut failed = None;
    for (i, step) in tour().iter().enumerate() {
        let args: Vec<String> = step.args.iter().map(|a| a.replace("$LAB", &lab.to_string_lossy())).collect();
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
        normalised.push_str(&normalise(&block, &lab));
        if !json {
            print!("{}", block.replace(&*lab.to_string_lossy(), "$LAB"));
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
            None => println!("tour complete: {} steps, lab directory {}", report.len(), lab.display()),
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
        .env("TWONODE_AUDIT_LOG", dir.join("fence-audit.log"))
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

/// Make a log comparable across runs: the lab path becomes `$LAB`, millisecond timings vanish.
pub fn normalise(text: &str, lab: &Path) -> String {
    let text = text.replace(&*lab.to_string_lossy(), "$LAB");
    text.lines()
        .map(|l| {
            let mut out = String::new();
            let mut rest = l;
            while let Some(pos) = rest.find(" ms") {
                let head = &rest[..pos];
                let digits = head.len() - head.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.').len();
                if digits > 0 {
                    out.push_str(&head[..head.len() - digits]);
                    out.push_str("N ms");
                } else {
                    out.push_str(&rest[..pos + 3]);
                }
                rest = &rest[pos + 3..];
            }
            out.push_str(rest);
            out.push('\n');
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn normalise_strips_paths_and_timings() {
        let lab = std::path::Path::new("/tmp/twonode-lab.abc");
        let got = super::normalise("status read in 12.5 ms at /tmp/twonode-lab.abc/x\nno ms here", lab);
        assert_eq!(got, "status read in N ms at $LAB/x\nno ms here\n");
    }
}
