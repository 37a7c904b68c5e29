//! The findings as `twonode doctor` prints them: for people a table (one row per finding:
//! severity, check, node, evidence; the fix under it; the counts), for `--json` the findings
//! themselves with the exit code and the counts.
use super::checks::{Finding, Severity};

/// Human table.
pub fn render(findings: &[Finding]) -> String {
    let mut s = String::new();
    s.push_str(&format!("{:<8} {:<22} {:<10} {}\n", "SEVERITY", "CHECK", "NODE", "EVIDENCE"));
    for x in findings {
        s.push_str(&format!("{:<8} {:<22} {:<10} {}\n", x.severity.word(), x.check, x.node.as_deref().unwrap_or("-"), x.evidence));
        if !x.fix.is_empty() {
            s.push_str(&format!("{:<42}fix: {}\n", "", x.fix));
        }
    }
    let count = |sv: Severity| findings.iter().filter(|x| x.severity == sv).count();
    s.push_str(&format!(
        "\n{} error(s), {} warning(s), {} info, {} ok\n",
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info),
        count(Severity::Ok)
    ));
    s
}

/// The `--json` document: `{"findings": [...], "exit_code": N, "errors": N, "warnings": N}`.
pub fn json(findings: &[Finding], exit_code: i32) -> serde_json::Value {
    serde_json::json!({
        "findings": findings,
        "exit_code": exit_code,
        "errors": findings.iter().filter(|x| x.severity == Severity::Error).count(),
        "warnings": findings.iter().filter(|x| x.severity == Severity::Warning).count(),
    })
}
