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
}

impl Step {
    fn new(title: &str, why: &str, args: &str, expect: i32) -> Step {
        Step {
            title: title.into(),
            why: why.into(),
            args: args.split_whitespace().map(String::from).collect(),
            expect,
        }
    }
}

/// The cluster.conf part of the tour.
pub fn conf_steps() -> Vec<Step> {
    vec![
        Step::new(
            "Create a two-node cluster.conf",
            "A skeleton with two nodes of one vote each, two_node=1 and expected_votes=1.",
            "conf init --file $LAB/cluster.conf --name lab --node node1 --node node2",
            0,
        ),
        Step::new(
            "Validate it",
            "No fence devices yet: the validator says what a real cluster would die of.",
            "conf validate --file $LAB/cluster.conf",
            1,
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
        let out = Command::new(&exe).args(&args).current_dir(&lab).output()
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
