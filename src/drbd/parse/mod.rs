//! Parsers for every DRBD output format an admin pastes, one module per format, all producing
//! [`DrbdState`]. [`parse_auto`] detects the format; [`parse_paste`] also splits a paste holding
//! several command outputs (each after its shell prompt line, e.g. `# drbdadm status r0`) and the
//! non-DRBD evidence around them (kernel log, /proc/mounts, fuser, clustat).
//!
//! Input that cannot be read gives a [`ParseError`] naming the line number and its content; no input
//! makes a parser panic (property-tested in tests/drbd_parse.rs).
use super::state::DrbdState;
use serde::Serialize;
use std::fmt;

pub mod config;
pub mod events2;
pub mod evidence;
pub mod gi;
pub mod json;
pub mod paste;
pub mod proc_drbd;
pub mod status;
pub mod words;

pub use paste::{parse_paste, Paste};

/// Input a parser cannot read: where and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParseError {
    /// 1-based line number in the whole input.
    pub line: usize,
    /// The offending line (truncated to 160 characters).
    pub content: String,
    pub message: String,
    /// The format the parser was reading, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)?;
        if let Some(fmt_) = self.format {
            write!(f, " (reading {})", fmt_.describe())?;
        }
        write!(f, ": {:?}", self.content)
    }
}

impl std::error::Error for ParseError {}

impl ParseError {
    pub fn new(line: usize, content: &str, message: impl Into<String>) -> Self {
        let content: String = if content.chars().count() > 160 {
            content.chars().take(157).chain("...".chars()).collect()
        } else {
            content.to_string()
        };
        ParseError { line, content, message: message.into(), format: None }
    }
    pub(crate) fn in_format(mut self, f: Format) -> Self {
        if self.format.is_none() {
            self.format = Some(f);
        }
        self
    }
}

/// The formats twonode reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `cat /proc/drbd` (8.0 - 8.4; on 9 the version lines only).
    ProcDrbd,
    /// `drbdadm status` / `drbdsetup status [--verbose] [--statistics]` (8.9+ utils, 9).
    Status,
    /// `drbdsetup status --json`.
    StatusJson,
    /// `drbdsetup show --json`.
    ShowJson,
    /// `drbdsetup events2` (--now, --statistics, --timestamps, --diff, --color).
    Events2,
    /// `drbdadm get-gi` / `drbdmeta ... get-gi` / `drbdsetup get-gi`.
    GetGi,
    /// `drbdadm show-gi` / `drbdmeta ... show-gi`.
    ShowGi,
    /// `drbdadm role|cstate|dstate` (8.4: Local/Peer; 9: one value per line).
    StateWords,
    /// `drbdadm dump` / `drbdsetup show` / drbd.conf.
    Config,
    /// `drbdadm dump-xml`.
    ConfigXml,
    /// Kernel log lines (dmesg, journalctl -k, /var/log/messages).
    KernelLog,
    /// /proc/mounts or `mount` output.
    Mounts,
    /// `fuser -vm DEV` / `lsof DEV` output.
    Holders,
    /// `clustat` (rgmanager) output.
    Clustat,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::ProcDrbd => "proc-drbd",
            Format::Status => "status",
            Format::StatusJson => "status-json",
            Format::ShowJson => "show-json",
            Format::Events2 => "events2",
            Format::GetGi => "get-gi",
            Format::ShowGi => "show-gi",
            Format::StateWords => "role-cstate-dstate",
            Format::Config => "config",
            Format::ConfigXml => "config-xml",
            Format::KernelLog => "kernel-log",
            Format::Mounts => "mounts",
            Format::Holders => "holders",
            Format::Clustat => "clustat",
        }
    }
    pub fn describe(self) -> &'static str {
        match self {
            Format::ProcDrbd => "/proc/drbd",
            Format::Status => "drbdadm/drbdsetup status",
            Format::StatusJson => "drbdsetup status --json",
            Format::ShowJson => "drbdsetup show --json",
            Format::Events2 => "drbdsetup events2",
            Format::GetGi => "get-gi",
            Format::ShowGi => "show-gi",
            Format::StateWords => "drbdadm role/cstate/dstate",
            Format::Config => "drbdadm dump / drbdsetup show",
            Format::ConfigXml => "drbdadm dump-xml",
            Format::KernelLog => "kernel log",
            Format::Mounts => "/proc/mounts",
            Format::Holders => "fuser/lsof",
            Format::Clustat => "clustat",
        }
    }
    /// True for the formats that describe DRBD itself (not host evidence).
    pub fn is_drbd(self) -> bool {
        !matches!(self, Format::KernelLog | Format::Mounts | Format::Holders | Format::Clustat)
    }
}

/// A numbered line: (1-based line number in the whole input, text without the line end).
pub type Line<'a> = (usize, &'a str);

/// Split text into numbered lines starting at `first` (CR and NUL bytes removed at the ends: the
/// 8.3 kernel printed a stray NUL in /proc/drbd).
pub fn number_lines(text: &str, first: usize) -> Vec<Line<'_>> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (first + i, l.trim_end_matches(['\r', '\0'])))
        .collect()
}

/// Hints a prompt line gives the parser of the output below it (`drbdadm get-gi r0/1`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    pub resource: Option<String>,
    pub volume: Option<u32>,
    pub peer: Option<String>,
    pub peer_node_id: Option<u32>,
    pub minor: Option<u32>,
    /// The command word: "role", "cstate", "dstate", "get-gi", "status", ...
    pub command: Option<String>,
}

/// Detect the format of one output from its first meaningful line(s).
pub fn detect(lines: &[Line<'_>]) -> Result<Format, ParseError> {
    let mut it = lines.iter().filter(|(_, l)| !l.trim().is_empty() && !paste::is_artifact(l));
    let Some(&(mut no, mut first)) = it.next() else {
        return Err(ParseError::new(lines.first().map_or(1, |l| l.0), "", "empty input: nothing to parse"));
    };
    // leading comment lines (drbd.conf, `drbdadm dump` headers) do not tell the format
    if first.trim_start().starts_with('#') {
        if let Some(&(n, l)) = it.find(|(_, l)| !l.trim_start().starts_with('#')) {
            if config::looks_like(l.trim()) {
                return Ok(Format::Config);
            }
            (no, first) = (n, l);
        }
    }
    let t = first.trim();
    if proc_drbd::looks_like(t) {
        return Ok(Format::ProcDrbd);
    }
    if t.starts_with('[') || t.starts_with('{') {
        // JSON: status or show, told apart by their keys
        let all: String = lines.iter().map(|l| l.1).collect::<Vec<_>>().join("\n");
        if all.contains("\"_this_host\"") || all.contains("\"resource\":") || all.contains("\"resource\" :") {
            return Ok(Format::ShowJson);
        }
        return Ok(Format::StatusJson);
    }
    if events2::looks_like(t) {
        return Ok(Format::Events2);
    }
    if gi::looks_like_show_gi(t) {
        return Ok(Format::ShowGi);
    }
    if gi::looks_like_get_gi(t) {
        return Ok(Format::GetGi);
    }
    if t.starts_with("<resource") || t.starts_with("<?xml") || t.starts_with("<config") {
        return Ok(Format::ConfigXml);
    }
    if config::looks_like(t) {
        return Ok(Format::Config);
    }
    if words::looks_like(t) {
        return Ok(Format::StateWords);
    }
    if evidence::looks_like_kernel_log(t) {
        return Ok(Format::KernelLog);
    }
    if evidence::looks_like_mounts(t) {
        return Ok(Format::Mounts);
    }
    if evidence::looks_like_holders(t) {
        return Ok(Format::Holders);
    }
    if evidence::looks_like_clustat(t) {
        return Ok(Format::Clustat);
    }
    if status::looks_like(t) {
        return Ok(Format::Status);
    }
    Err(ParseError::new(
        no,
        first,
        "unrecognised format: expected /proc/drbd, drbdadm/drbdsetup status (text or --json), events2, \
         get-gi/show-gi, role/cstate/dstate, drbdadm dump/dump-xml or drbdsetup show output",
    ))
}

/// Parse lines of a known DRBD format into a state.
pub fn parse_as(format: Format, lines: &[Line<'_>], hints: &Hints) -> Result<DrbdState, ParseError> {
    let r = match format {
        Format::ProcDrbd => proc_drbd::parse(lines),
        Format::Status => status::parse(lines),
        Format::StatusJson => json::parse_status(lines),
        Format::ShowJson => json::parse_show(lines),
        Format::Events2 => events2::parse(lines),
        Format::GetGi | Format::ShowGi => gi::parse(lines, hints),
        Format::StateWords => words::parse(lines, hints),
        Format::Config => config::parse(lines),
        Format::ConfigXml => config::parse_xml(lines),
        Format::KernelLog | Format::Mounts | Format::Holders | Format::Clustat => {
            let (no, l) = lines.first().copied().unwrap_or((1, ""));
            Err(ParseError::new(no, l, format!("{} is host evidence, not DRBD state", format.describe())))
        }
    };
    r.map(|mut st| {
        if st.sources.is_empty() {
            st.sources.push(format.name().to_string());
        }
        st
    })
    .map_err(|e| e.in_format(format))
}

/// Parse one DRBD output (or a paste of several, each after its prompt line) into a state.
/// Host evidence sections (kernel log, mounts...) in the paste are accepted and left out; use
/// [`parse_paste`] to get them too.
pub fn parse_auto(text: &str) -> Result<DrbdState, ParseError> {
    parse_paste(text).map(|p| p.state)
}

// ----------------------------------------------------------------------------------------------
// Small shared helpers

/// Split `key:value` at the first colon. None when there is no colon or the key is empty.
#[inline]
pub(crate) fn kv(token: &str) -> Option<(&str, &str)> {
    let i = token.find(':')?;
    if i == 0 {
        return None;
    }
    Some((&token[..i], &token[i + 1..]))
}

/// Remove ANSI colour sequences (`events2 --color`, `drbdadm status` on a tty).
pub(crate) fn strip_ansi(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('\x1b') {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // parameters until a final byte in @..~
                for d in chars.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    std::borrow::Cow::Owned(out)
}

/// Parse an unsigned number or fail naming the line.
pub(crate) fn num<T: std::str::FromStr>(v: &str, key: &str, line: Line<'_>) -> Result<T, ParseError> {
    v.parse::<T>()
        .map_err(|_| ParseError::new(line.0, line.1, format!("`{key}:` needs a number, found {v:?}")))
}

/// yes/no/true/false → bool.
pub(crate) fn yes_no(v: &str) -> Option<bool> {
    match v {
        "yes" | "true" | "1" => Some(true),
        "no" | "false" | "0" => Some(false),
        _ => None,
    }
}

/// Leading whitespace width (tabs count as 8 columns).
pub(crate) fn indent_of(l: &str) -> usize {
    let mut n = 0;
    for c in l.chars() {
        match c {
            ' ' => n += 1,
            '\t' => n = (n / 8 + 1) * 8,
            _ => break,
        }
    }
    n
}
