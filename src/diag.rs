//! The one diagnostic vocabulary of twonode: how grave a finding is ([`Severity`]), a finding of a
//! validator at a place in a file ([`Diagnostic`]), and a validator's whole answer ([`Report`]).
//!
//! Every validator uses these: cluster.conf (`clusterconf::validate`), corosync.conf
//! (`quorum::corosync_conf`), votequorum's configuration rules (`quorum::votequorum`), the risks
//! `fence test` finds and the findings of `doctor`. A diagnostic never carries a secret's value.
use serde::{Deserialize, Serialize};

/// How grave a finding is, from "all is well" to "this breaks the cluster". Ordered by gravity
/// (`Ok < Info < Warning < Error`), so the worst of a list is its `max()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Info,
    Warning,
    Error,
}

impl Severity {
    /// The lower-case word of validators' `LINE:COL: error[code]` lines and of JSON.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    /// The word of `doctor`'s table, where what needs action shouts.
    pub fn word(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Info => "info",
            Severity::Warning => "WARNING",
            Severity::Error => "ERROR",
        }
    }

    /// Errors first, then warnings: the order diagnostics at one position are listed in.
    pub fn listing_rank(self) -> std::cmp::Reverse<Severity> {
        std::cmp::Reverse(self)
    }
}

/// One finding of a validator: what is wrong, where (1-based line and column; 0 when the place is
/// not known), a stable rule code (`two_node.node-count`, `quorum.expected-votes`, ...), and what
/// to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub line: usize,
    pub col: usize,
    /// Stable identifier of the rule.
    pub code: String,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(severity: Severity, (line, col): (usize, usize), code: impl Into<String>, message: impl Into<String>, hint: Option<String>) -> Self {
        Diagnostic { severity, line, col, code: code.into(), message: message.into(), hint }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The line, when known.
    pub fn line(&self) -> Option<usize> {
        (self.line > 0).then_some(self.line)
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}[{}]: {}", self.line, self.col, self.severity.name(), self.code, self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n    hint: {h}")?;
        }
        Ok(())
    }
}

/// A validator's answer: whether the input could be read at all, and every diagnostic in the
/// validator's order (by position).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub well_formed: bool,
    pub errors: usize,
    pub warnings: usize,
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    /// Count the errors and warnings of `diagnostics` (kept in the order given).
    pub fn new(well_formed: bool, diagnostics: Vec<Diagnostic>) -> Report {
        let errors = diagnostics.iter().filter(|d| d.is_error()).count();
        let warnings = diagnostics.iter().filter(|d| d.severity == Severity::Warning).count();
        Report { well_formed, errors, warnings, diagnostics }
    }

    pub fn has_errors(&self) -> bool {
        self.errors > 0
    }

    /// The diagnostics of one severity.
    pub fn of(&self, severity: Severity) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(move |d| d.severity == severity)
    }

    /// The human form `validate` commands print: one `PATH:LINE:COL: ...` line per diagnostic, then
    /// a verdict line. `unparsed` names the verdict when the file could not be parsed at all.
    pub fn render_human(&self, path: &std::path::Path, unparsed: &str) -> String {
        let mut out = String::new();
        for d in &self.diagnostics {
            out.push_str(&format!("{}:{d}\n", path.display()));
        }
        let verdict = if !self.well_formed {
            unparsed
        } else if self.errors > 0 {
            "INVALID"
        } else {
            "valid"
        };
        out.push_str(&format!("{}: {verdict} ({} error(s), {} warning(s))\n", path.display(), self.errors, self.warnings));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gravity_order_and_listing_order() {
        assert!(Severity::Ok < Severity::Info && Severity::Info < Severity::Warning && Severity::Warning < Severity::Error);
        let mut v = [Severity::Warning, Severity::Error];
        v.sort_by_key(|s| s.listing_rank());
        assert_eq!(v, [Severity::Error, Severity::Warning]);
        assert_eq!(serde_json::to_string(&Severity::Warning).unwrap(), "\"warning\"");
    }

    #[test]
    fn report_counts_and_display() {
        let d = vec![
            Diagnostic::new(Severity::Error, (3, 5), "x.y", "bad", Some("fix it".into())),
            Diagnostic::new(Severity::Warning, (4, 1), "x.z", "odd", None),
        ];
        let r = Report::new(true, d);
        assert_eq!((r.errors, r.warnings), (1, 1));
        assert_eq!(r.diagnostics[0].to_string(), "3:5: error[x.y]: bad\n    hint: fix it");
        assert!(r.render_human(std::path::Path::new("f"), "unreadable").ends_with("f: INVALID (1 error(s), 1 warning(s))\n"));
    }
}
