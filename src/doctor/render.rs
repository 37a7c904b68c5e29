//! The findings for people: one table row per finding (severity, check, node, evidence), the
//! fix under it, and the counts. (`--json` prints the findings themselves: `src/cli/doctor.rs`.)
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
