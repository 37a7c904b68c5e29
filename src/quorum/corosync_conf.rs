//! corosync.conf, losslessly: every byte of the file (comments, blank lines, indentation, line
//! endings) is kept, and edits are byte patches that touch only the lines they must.
//!
//! Syntax as corosync's `coroparse.c` reads it, line by line: leading/trailing whitespace is
//! ignored; a line whose first non-blank character is `#` is a comment; a line containing `{`
//! opens a section named by the text before it; otherwise a line containing `:` is `key: value`
//! (value trimmed, `#` inside a value is part of it); otherwise a line containing `}` closes the
//! innermost section.
//!
//! `totem.config_version`: every edit increases it by exactly one **when the file has it**. It is
//! never added: corosync refuses to join nodes whose config_version differ, so adding it to one
//! node's copy is a change the admin must roll out to every node consciously (Proxmox's
//! /etc/pve/corosync.conf always carries it; pcs-managed files do not use it).
//!
//! On top: [`validate`] (votequorum's rules from [`super::votequorum`] with line:column, plus the
//! qdevice settings and watchdog-only self-fencing), and the pure planners
//! [`enable_arbiter`] / [`disable_arbiter`].
use crate::diag::{Diagnostic, Report, Severity};
use crate::quorum::votequorum::{DeviceConf, NodeConf, QuorumConfig};

/// A parse error with its 1-based position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {col}: {msg}")]
pub struct ParseError {
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineKind {
    Blank,
    Comment,
    /// `name {`
    Open { name: String },
    /// `}`
    Close,
    /// `key: value`; value as byte range of the file.
    Key { key: String, value: String, value_start: usize, value_end: usize },
}

/// One line of the file: `start..end` its text without the line ending, `start..next` with it.
#[derive(Debug, Clone)]
pub struct Line {
    pub start: usize,
    pub end: usize,
    pub next: usize,
    /// Leading whitespace (bytes).
    pub indent: usize,
    pub kind: LineKind,
}

/// A section; index 0 of [`CorosyncConf::sections`] is the file itself (no open/close line).
#[derive(Debug, Clone)]
pub struct Section {
    pub name: String,
    /// Dotted path: `quorum.device.net`.
    pub path: String,
    pub open: Option<usize>,
    pub close: Option<usize>,
    pub parent: Option<usize>,
    pub children: Vec<usize>,
    /// Line indices of its `key: value` lines.
    pub keys: Vec<usize>,
}

/// A parsed corosync.conf that renders back byte for byte.
#[derive(Debug, Clone)]
pub struct CorosyncConf {
    text: String,
    pub lines: Vec<Line>,
    pub sections: Vec<Section>,
}

impl CorosyncConf {
    pub fn parse(text: &str) -> Result<CorosyncConf, ParseError> {
        let mut lines = Vec::new();
        let mut sections = vec![Section { name: String::new(), path: String::new(), open: None, close: None, parent: None, children: vec![], keys: vec![] }];
        let mut stack = vec![0usize];
        let mut pos = 0;
        while pos < text.len() {
            let nl = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
            let next = if nl < text.len() { nl + 1 } else { nl };
            let end = if nl > pos && text.as_bytes()[nl - 1] == b'\r' { nl - 1 } else { nl };
            let raw = &text[pos..end];
            let trimmed = raw.trim();
            let indent = raw.len() - raw.trim_start().len();
            let idx = lines.len();
            let lno = idx + 1;
            let kind = if trimmed.is_empty() {
                LineKind::Blank
            } else if trimmed.starts_with('#') {
                LineKind::Comment
            } else if let Some(b) = trimmed.find('{') {
                let name = trimmed[..b].trim().to_string();
                if name.is_empty() {
                    return Err(ParseError { line: lno, col: indent + 1, msg: "a section needs a name before '{'".into() });
                }
                if trimmed[b + 1..].contains('}') {
                    return Err(ParseError { line: lno, col: indent + b + 2, msg: format!("section {name:?} opened and closed on one line: put '}}' on its own line") });
                }
                let parent = *stack.last().unwrap_or(&0);
                let path = if sections[parent].path.is_empty() { name.clone() } else { format!("{}.{}", sections[parent].path, name) };
                sections.push(Section { name: name.clone(), path, open: Some(idx), close: None, parent: Some(parent), children: vec![], keys: vec![] });
                let s = sections.len() - 1;
                sections[parent].children.push(s);
                stack.push(s);
                LineKind::Open { name }
            } else if let Some(c) = trimmed.find(':') {
                let key = trimmed[..c].trim().to_string();
                if key.is_empty() {
                    return Err(ParseError { line: lno, col: indent + 1, msg: "a key is missing before ':'".into() });
                }
                let after = pos + indent + c + 1;
                let vraw = &text[after..end];
                let value_start = after + (vraw.len() - vraw.trim_start().len());
                let value_end = after + vraw.trim_end().len();
                let value_end = value_end.max(value_start);
                let cur = *stack.last().unwrap_or(&0);
                sections[cur].keys.push(idx);
                LineKind::Key { key, value: text[value_start..value_end].to_string(), value_start, value_end }
            } else if trimmed.contains('}') {
                if stack.len() <= 1 {
                    return Err(ParseError { line: lno, col: indent + 1, msg: "'}' without an open section".into() });
                }
                let s = stack.pop().unwrap_or(0);
                sections[s].close = Some(idx);
                LineKind::Close
            } else {
                return Err(ParseError { line: lno, col: indent + 1, msg: format!("expected 'key: value', 'name {{' or '}}', got {trimmed:?}") });
            };
            lines.push(Line { start: pos, end, next, indent, kind });
            pos = next;
        }
        if stack.len() > 1 {
            let s = stack[stack.len() - 1];
            let line = sections[s].open.map_or(0, |l| l + 1);
            return Err(ParseError { line, col: 1, msg: format!("section {:?} is not closed (missing '}}')", sections[s].path) });
        }
        Ok(CorosyncConf { text: text.to_string(), lines, sections })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Sections with this dotted path, in file order.
    pub fn sections_at(&self, path: &str) -> Vec<usize> {
        (1..self.sections.len()).filter(|&i| self.sections[i].path == path).collect()
    }

    pub fn section(&self, path: &str) -> Option<usize> {
        if path.is_empty() {
            return Some(0);
        }
        self.sections_at(path).into_iter().next()
    }

    /// The line index of `key` in section `s` (the last one: corosync keeps the last value).
    pub fn key_line(&self, s: usize, key: &str) -> Option<usize> {
        self.sections[s].keys.iter().rev().copied().find(|&l| matches!(&self.lines[l].kind, LineKind::Key { key: k, .. } if k == key))
    }

    /// The value of `path`'s `key` (first section with that path).
    pub fn get(&self, path: &str, key: &str) -> Option<&str> {
        let s = self.section(path)?;
        let l = self.key_line(s, key)?;
        match &self.lines[l].kind {
            LineKind::Key { value, .. } => Some(value.as_str()),
            _ => None,
        }
    }

    /// 1-based (line, column) of a line's first non-blank character.
    pub fn pos(&self, line_idx: usize) -> (usize, usize) {
        (line_idx + 1, self.lines.get(line_idx).map_or(1, |l| l.indent + 1))
    }

    /// (line, col) of `path.key`, else of the section, else (1,1)... as None when absent.
    pub fn pos_of(&self, path: &str, key: &str) -> Option<(usize, usize)> {
        let s = self.section(path)?;
        self.key_line(s, key).map(|l| self.pos(l))
    }

    fn newline(&self) -> &'static str {
        if self.lines.first().is_some_and(|l| l.next > l.end + 1) {
            "\r\n"
        } else {
            "\n"
        }
    }

    /// The file's indentation unit: the indent of the first line one level deep.
    fn indent_unit(&self) -> String {
        for s in &self.sections[0].children {
            let sec = &self.sections[*s];
            let open_indent = sec.open.map_or(0, |o| self.lines[o].indent);
            let (Some(o), Some(c)) = (sec.open, sec.close) else { continue };
            for l in &self.lines[o + 1..c] {
                if !matches!(l.kind, LineKind::Blank) && l.indent > open_indent {
                    return self.text[l.start + open_indent..l.start + l.indent].to_string();
                }
            }
        }
        "\t".into()
    }

    fn indent_str(&self, line_idx: usize) -> &str {
        let l = &self.lines[line_idx];
        &self.text[l.start..l.start + l.indent]
    }

    /// Indentation for lines inside section `s`.
    fn child_indent(&self, s: usize) -> String {
        let sec = &self.sections[s];
        if let Some(&k) = sec.keys.first() {
            return self.indent_str(k).to_string();
        }
        if let Some(&c) = sec.children.first() {
            if let Some(o) = self.sections[c].open {
                return self.indent_str(o).to_string();
            }
        }
        match sec.open {
            Some(o) => format!("{}{}", self.indent_str(o), self.indent_unit()),
            None => String::new(),
        }
    }

    fn patched(&self, at: usize, remove_to: usize, insert: &str) -> Result<CorosyncConf, ParseError> {
        let mut t = String::with_capacity(self.text.len() + insert.len());
        t.push_str(&self.text[..at]);
        t.push_str(insert);
        t.push_str(&self.text[remove_to..]);
        CorosyncConf::parse(&t)
    }

    /// Byte offset where new lines go at the end of section `s` (before its `}`), with the text
    /// needed to start a fresh line there.
    fn end_of_section(&self, s: usize) -> (usize, String) {
        match self.sections[s].close {
            Some(c) => (self.lines[c].start, String::new()),
            None => {
                let prefix = if self.text.is_empty() || self.text.ends_with('\n') { String::new() } else { self.newline().to_string() };
                (self.text.len(), prefix)
            }
        }
    }

    /// Set `key: value` in the first section at `path` (created, with its parents, if absent).
    /// An existing key keeps its line and only its value bytes change; a new key goes after the
    /// section's last key (or first in it).
    pub fn set(&self, path: &str, key: &str, value: &str) -> Result<CorosyncConf, ParseError> {
        let Some(s) = self.section(path) else {
            let (parent, name) = path.rsplit_once('.').unwrap_or(("", path));
            return self.add_section(parent, name, &[(key, value)]);
        };
        if let Some(l) = self.key_line(s, key) {
            if let LineKind::Key { value: old, value_start, value_end, .. } = &self.lines[l].kind {
                if old == value {
                    return Ok(self.clone());
                }
                return self.patched(*value_start, *value_end, value);
            }
        }
        let nl = self.newline();
        let line = format!("{}{key}: {value}{nl}", self.child_indent(s));
        let sec = &self.sections[s];
        match (sec.keys.last(), sec.open) {
            (Some(&k), _) => self.patched(self.lines[k].next, self.lines[k].next, &line),
            (None, Some(o)) => self.patched(self.lines[o].next, self.lines[o].next, &line),
            (None, None) => {
                let (at, prefix) = self.end_of_section(s);
                self.patched(at, at, &format!("{prefix}{line}"))
            }
        }
    }

    /// Remove every `key` line of the first section at `path` (no-op when absent).
    pub fn remove(&self, path: &str, key: &str) -> Result<CorosyncConf, ParseError> {
        let mut cur = self.clone();
        while let Some(l) = cur.section(path).and_then(|s| cur.key_line(s, key)) {
            let (a, b) = (cur.lines[l].start, cur.lines[l].next);
            cur = cur.patched(a, b, "")?;
        }
        Ok(cur)
    }

    /// Add section `name` with `keys` at the end of the section at `parent` ("" = top level),
    /// creating the parent if needed, indented like the rest of the file.
    pub fn add_section(&self, parent: &str, name: &str, keys: &[(&str, &str)]) -> Result<CorosyncConf, ParseError> {
        self.add_tree(parent, &Tree { name: name.to_string(), keys: keys.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), children: vec![] })
    }

    /// Add a nested section tree at the end of `parent`.
    pub fn add_tree(&self, parent: &str, tree: &Tree) -> Result<CorosyncConf, ParseError> {
        let Some(p) = self.section(parent) else {
            let (gp, pname) = parent.rsplit_once('.').unwrap_or(("", parent));
            let wrapped = Tree { name: pname.to_string(), keys: vec![], children: vec![tree.clone()] };
            return self.add_tree(gp, &wrapped);
        };
        let base = self.child_indent(p);
        let unit = self.indent_unit();
        let nl = self.newline();
        let mut out = String::new();
        tree.render(&base, &unit, nl, &mut out);
        let (at, prefix) = self.end_of_section(p);
        self.patched(at, at, &format!("{prefix}{out}"))
    }

    /// Remove the first section at `path`, its lines from `name {` to `}` inclusive.
    pub fn remove_section(&self, path: &str) -> Result<CorosyncConf, ParseError> {
        let Some(s) = self.section(path) else { return Ok(self.clone()) };
        let (Some(o), Some(c)) = (self.sections[s].open, self.sections[s].close) else { return Ok(self.clone()) };
        self.patched(self.lines[o].start, self.lines[c].next, "")
    }

    /// `totem.config_version`, if present and a number.
    pub fn config_version(&self) -> Option<u64> {
        self.get("totem", "config_version").and_then(|v| v.trim().parse().ok())
    }

    /// Increase `totem.config_version` by one when the file has it (never added).
    pub fn bump_version(&self) -> Result<CorosyncConf, ParseError> {
        match self.config_version() {
            Some(v) => self.set("totem", "config_version", &(v + 1).to_string()),
            None => Ok(self.clone()),
        }
    }

    /// What votequorum reads, with key → line recorded for messages.
    pub fn quorum_config(&self, source: &str) -> Result<QuorumConfig, String> {
        let mut c = QuorumConfig { source: source.to_string(), ..Default::default() };
        c.cluster_name = self.get("totem", "cluster_name").map(String::from);
        let num = |l: usize, k: &str, v: &str| -> Result<u32, String> {
            v.trim().parse().map_err(|_| format!("{source}:{}:{}: {k}: {v:?} is not a number", l + 1, self.lines[l].indent + 1))
        };
        let flag = |v: &str| v == "1" || v.eq_ignore_ascii_case("yes") || v.eq_ignore_ascii_case("on");
        if let Some(s) = self.section("nodelist") {
            c.lines.push(("nodelist".into(), self.sections[s].open.map_or(0, |o| o + 1)));
        }
        for s in self.sections_at("nodelist.node") {
            let mut n = NodeConf { name: None, nodeid: None, votes: 1 };
            for &l in &self.sections[s].keys {
                if let LineKind::Key { key, value, .. } = &self.lines[l].kind {
                    match key.as_str() {
                        "name" => n.name = Some(value.clone()),
                        "nodeid" => n.nodeid = Some(num(l, key, value)?),
                        "quorum_votes" => n.votes = num(l, key, value)?,
                        _ => {}
                    }
                }
            }
            c.nodes.push(n);
        }
        if let Some(q) = self.section("quorum") {
            for &l in &self.sections[q].keys {
                if let LineKind::Key { key, value, .. } = &self.lines[l].kind {
                    let known = match key.as_str() {
                        "expected_votes" => {
                            c.expected_votes = Some(num(l, key, value)?);
                            true
                        }
                        "two_node" => {
                            c.two_node = flag(value);
                            true
                        }
                        "wait_for_all" => {
                            c.wait_for_all = Some(flag(value));
                            true
                        }
                        "last_man_standing" => {
                            c.last_man_standing = flag(value);
                            true
                        }
                        "auto_tie_breaker" => {
                            c.auto_tie_breaker = flag(value);
                            true
                        }
                        "allow_downscale" => {
                            c.allow_downscale = flag(value);
                            true
                        }
                        _ => false,
                    };
                    if known {
                        c.lines.retain(|(k, _)| k != key);
                        c.lines.push((key.clone(), l + 1));
                    }
                }
            }
        }
        if let Some(d) = self.section("quorum.device") {
            c.lines.push(("device".into(), self.sections[d].open.map_or(0, |o| o + 1)));
            let mut dev = DeviceConf::default();
            if let Some(m) = self.get("quorum.device", "model") {
                dev.model = m.to_string();
            }
            if let Some(l) = self.key_line(d, "votes") {
                if let LineKind::Key { key, value, .. } = &self.lines[l].kind {
                    dev.votes = Some(num(l, key, value)?);
                }
                c.lines.push(("device.votes".into(), l + 1));
            }
            dev.algorithm = self.get("quorum.device.net", "algorithm").map(String::from);
            dev.tie_breaker = self.get("quorum.device.net", "tie_breaker").map(String::from);
            dev.host = self.get("quorum.device.net", "host").map(String::from);
            c.device = Some(dev);
        }
        Ok(c)
    }
}

/// A section to add: keys first, then sub-sections.
#[derive(Debug, Clone)]
pub struct Tree {
    pub name: String,
    pub keys: Vec<(String, String)>,
    pub children: Vec<Tree>,
}

impl Tree {
    fn render(&self, indent: &str, unit: &str, nl: &str, out: &mut String) {
        out.push_str(&format!("{indent}{} {{{nl}", self.name));
        let inner = format!("{indent}{unit}");
        for (k, v) in &self.keys {
            out.push_str(&format!("{inner}{k}: {v}{nl}"));
        }
        for c in &self.children {
            c.render(&inner, unit, nl, out);
        }
        out.push_str(&format!("{indent}}}{nl}"));
    }
}

// ------------------------------------------------------------------ validation

/// What else decides safety: the sbd configuration and the pacemaker CIB, as (name, text).
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// /etc/sysconfig/sbd or /etc/default/sbd.
    pub sbd: Option<(String, String)>,
    /// A pacemaker CIB (`cibadmin -Q` output).
    pub cib: Option<(String, String)>,
}

/// Evidence of watchdog-only self-fencing, one sentence per finding.
pub fn watchdog_evidence(ctx: &Context) -> Vec<String> {
    let mut ev = Vec::new();
    if let Some((name, text)) = &ctx.sbd {
        let mut vars = std::collections::HashMap::new();
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with('#') {
                continue;
            }
            let t = t.strip_prefix("export ").unwrap_or(t);
            if let Some((k, v)) = t.split_once('=') {
                let v = v.trim().trim_matches(|c| c == '"' || c == '\'').trim();
                vars.insert(k.trim().to_string(), v.to_string());
            }
        }
        let device = vars.get("SBD_DEVICE").map(String::as_str).unwrap_or("");
        let wd = vars.get("SBD_WATCHDOG_DEV").map(String::as_str).unwrap_or("");
        if device.is_empty() && !wd.is_empty() && wd != "none" {
            ev.push(format!("{name}: diskless sbd (SBD_WATCHDOG_DEV={wd}, no SBD_DEVICE): fencing is the victim's own watchdog"));
        }
    }
    if let Some((name, text)) = &ctx.cib {
        ev.extend(cib_watchdog(name, text));
    }
    ev
}

fn cib_watchdog(name: &str, text: &str) -> Vec<String> {
    use quick_xml::events::Event;
    let mut ev = Vec::new();
    let mut r = quick_xml::Reader::from_str(text);
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                let attr = |n: &str| {
                    e.attributes().flatten().find(|a| a.key.as_ref() == n.as_bytes()).map(|a| String::from_utf8_lossy(&a.value).into_owned())
                };
                match e.name().as_ref() {
                    b"primitive" if attr("class").as_deref() == Some("stonith") && attr("type").as_deref() == Some("fence_watchdog") => {
                        ev.push(format!("{name}: stonith resource {:?} is fence_watchdog (self-fencing)", attr("id").unwrap_or_default()));
                    }
                    b"nvpair" if attr("name").as_deref() == Some("stonith-watchdog-timeout") => {
                        let v = attr("value").unwrap_or_default();
                        // negative = computed from SBD_WATCHDOG_TIMEOUT: enabled too
                        if !v.trim().is_empty() && v.trim() != "0" {
                            ev.push(format!("{name}: stonith-watchdog-timeout={v} (pacemaker trusts watchdog self-fencing)"));
                        }
                    }
                    _ => {}
                }
            }
            Ok(Event::Eof) => break,
            Err(e) => {
                ev.push(format!("{name}: not readable XML ({e}); cannot tell whether it uses fence_watchdog"));
                break;
            }
            _ => {}
        }
    }
    ev
}

fn pos_for(conf: &CorosyncConf, key: &str) -> (usize, usize) {
    let p = match key {
        "nodelist" => conf.section("nodelist").and_then(|s| conf.sections[s].open).map(|o| conf.pos(o)),
        "device" => conf.section("quorum.device").and_then(|s| conf.sections[s].open).map(|o| conf.pos(o)),
        "device.votes" => conf.pos_of("quorum.device", "votes"),
        k => conf.pos_of("quorum", k),
    };
    p.or_else(|| conf.section("quorum").and_then(|s| conf.sections[s].open).map(|o| conf.pos(o))).unwrap_or((1, 1))
}

/// Validate a corosync.conf: the parse, votequorum's refusals, qdevice settings, safety.
pub fn validate(text: &str, source: &str, ctx: &Context) -> Report {
    let mut diags = Vec::new();
    let mut push = |sev, (line, col): (usize, usize), code: &str, message: String, hint: Option<String>| {
        diags.push(Diagnostic { severity: sev, line, col, code: code.to_string(), message, hint });
    };
    let conf = match CorosyncConf::parse(text) {
        Ok(c) => c,
        Err(e) => {
            push(Severity::Error, (e.line, e.col), "corosync.parse", e.msg, Some("corosync cannot read the file: fix this first".into()));
            return report(false, diags);
        }
    };
    let mut cfg = match conf.quorum_config(source) {
        Ok(c) => c,
        Err(e) => {
            push(Severity::Error, (1, 1), "corosync.value", e, None);
            return report(true, diags);
        }
    };
    let evidence = watchdog_evidence(ctx);
    cfg.watchdog_fencing = !evidence.is_empty();
    for d in cfg.check() {
        let key = cfg.lines.iter().find(|(_, l)| Some(*l) == d.line()).map(|(k, _)| k.clone()).unwrap_or_default();
        let at = match d.line() {
            Some(l) if l >= 1 && l <= conf.lines.len() => conf.pos(l - 1),
            _ => pos_for(&conf, &key),
        };
        // the file name is already in front of line:col
        let mut msg = d.message.strip_prefix(&format!("{source}: ")).unwrap_or(&d.message).to_string();
        if d.code == "watchdog-with-two-node" {
            msg = format!("{msg} ({})", evidence.join("; "));
        }
        push(d.severity, at, &format!("quorum.{}", d.code), msg, d.hint.clone());
    }
    // the quorum provider: without votequorum none of the quorum settings apply
    if let Some(q) = conf.section("quorum") {
        let open = conf.sections[q].open.map_or((1, 1), |o| conf.pos(o));
        match conf.get("quorum", "provider") {
            Some("corosync_votequorum") => {}
            Some(p) => push(Severity::Error, conf.pos_of("quorum", "provider").unwrap_or(open), "quorum.provider", format!("unknown quorum provider {p:?}"), Some("provider: corosync_votequorum".into())),
            None => push(Severity::Warning, open, "quorum.no-provider", "quorum {} has no provider: corosync runs without quorum and ignores these settings".into(), Some("add `provider: corosync_votequorum`".into())),
        }
    }
    if cfg.two_node && cfg.nodes.len() == 2 && cfg.wait_for_all == Some(false) {
        push(
            Severity::Warning,
            conf.pos_of("quorum", "wait_for_all").unwrap_or((1, 1)),
            "quorum.two-node-no-wait-for-all",
            "two_node with wait_for_all: 0: a node booting alone is quorate at once and can fence its peer".into(),
            Some("remove wait_for_all (two_node implies it) or set it to 1".into()),
        );
    }
    if let Some(d) = conf.section("quorum.device") {
        let open = conf.sections[d].open.map_or((1, 1), |o| conf.pos(o));
        let dev = cfg.device.clone().unwrap_or_default();
        if dev.model.is_empty() {
            push(Severity::Error, open, "qdevice.model", "quorum.device has no model: corosync-qdevice refuses to start".into(), Some("add `model: net`".into()));
        } else if dev.model != "net" {
            push(Severity::Error, conf.pos_of("quorum.device", "model").unwrap_or(open), "qdevice.model", format!("quorum.device model {:?} is not supported (corosync-qdevice knows only `net`)", dev.model), Some("model: net".into()));
        }
        if dev.model == "net" {
            let net_open = conf.section("quorum.device.net").and_then(|s| conf.sections[s].open).map_or(open, |o| conf.pos(o));
            if dev.host.as_deref().is_none_or(|h| h.is_empty()) {
                push(Severity::Error, net_open, "qdevice.net-host", "quorum.device.net has no host: qdevice does not know where the arbiter (qnetd) is".into(), Some("add `host: ARBITER` in quorum.device.net".into()));
            }
            let alg = dev.algorithm.clone().unwrap_or_else(|| "ffsplit".into());
            let apos = conf.pos_of("quorum.device.net", "algorithm").unwrap_or(net_open);
            match alg.as_str() {
                "ffsplit" | "lms" => {}
                "2nodelms" | "test" => push(Severity::Warning, apos, "qdevice.algorithm", format!("algorithm {alg:?} is meant for developers"), Some("use ffsplit (even node counts) or lms".into())),
                other => push(Severity::Error, apos, "qdevice.algorithm", format!("unknown qdevice algorithm {other:?}"), Some("algorithm: ffsplit or lms".into())),
            }
            if let Some(tb) = &dev.tie_breaker {
                let tpos = conf.pos_of("quorum.device.net", "tie_breaker").unwrap_or(net_open);
                if tb != "lowest" && tb != "highest" {
                    match tb.parse::<u32>() {
                        Ok(id) if cfg.nodes.iter().any(|n| n.nodeid == Some(id)) => {}
                        Ok(id) => push(Severity::Error, tpos, "qdevice.tie-breaker", format!("tie_breaker {id} is not a nodeid of the nodelist"), Some("use lowest, highest or a configured nodeid".into())),
                        Err(_) => push(Severity::Error, tpos, "qdevice.tie-breaker", format!("tie_breaker {tb:?} is neither lowest, highest nor a node id"), Some("tie_breaker: lowest".into())),
                    }
                }
            }
        }
    }
    diags.sort_by_key(|d| (d.line, d.col));
    report(true, diags)
}

fn report(well_formed: bool, diagnostics: Vec<Diagnostic>) -> Report {
    Report::new(well_formed, diagnostics)
}

/// Whether `twonode quorum apply` may make the staged corosync.conf live: it must validate
/// without errors and its totem.config_version (when both files have one) must be higher than
/// the live file's. On refusal, the message says why, naming `staged_name`.
pub fn may_apply(staged: &str, live: Option<&str>, staged_name: &str, ctx: &Context) -> Result<(), String> {
    let r = validate(staged, staged_name, ctx);
    if !r.well_formed || r.has_errors() {
        let errs: Vec<String> = r.of(Severity::Error).map(|d| format!("{staged_name}:{d}")).collect();
        return Err(format!("not applying {staged_name}: validation failed; nothing was changed\n{}", errs.join("\n")));
    }
    let sv = CorosyncConf::parse(staged).ok().and_then(|c| c.config_version());
    let lv = live.and_then(|l| CorosyncConf::parse(l).ok()).and_then(|c| c.config_version());
    match (sv, lv) {
        (Some(s), Some(l)) if s <= l => {
            Err(format!("not applying {staged_name}: its totem.config_version {s} is not higher than the live {l}; nothing was changed"))
        }
        _ => Ok(()),
    }
}

// ------------------------------------------------------------------ arbiter planners

/// What `enable-arbiter` adds.
#[derive(Debug, Clone)]
pub struct ArbiterSpec {
    pub host: String,
    /// ffsplit or lms.
    pub algorithm: String,
    /// lowest, highest or a node id.
    pub tie_breaker: String,
}

/// A planned edit: the new file and what it changed, in words.
#[derive(Debug, Clone)]
pub struct Plan {
    pub new: CorosyncConf,
    pub notes: Vec<String>,
}

fn perr(e: ParseError) -> String {
    format!("internal: the edited file does not parse ({e})")
}

fn refuse_errors(new: &CorosyncConf, source: &str, ctx: &Context) -> Result<(), String> {
    let r = validate(new.text(), source, ctx);
    if r.has_errors() {
        let list: Vec<String> = r.diagnostics.iter().filter(|d| d.severity == Severity::Error).map(|d| d.to_string()).collect();
        return Err(format!("the result would not be valid; nothing was written:\n{}", list.join("\n")));
    }
    Ok(())
}

/// Add `quorum.device` (model net) and drop two_node. Refuses what votequorum refuses.
pub fn enable_arbiter(conf: &CorosyncConf, spec: &ArbiterSpec, source: &str, ctx: &Context) -> Result<Plan, String> {
    let cfg = conf.quorum_config(source)?;
    if conf.section("quorum.device").is_some() {
        let at = conf.section("quorum.device").and_then(|s| conf.sections[s].open).map_or(0, |o| o + 1);
        return Err(format!("{source}:{at}: quorum.device already exists; run `twonode quorum disable-arbiter` first to replace it"));
    }
    if !matches!(spec.algorithm.as_str(), "ffsplit" | "lms") {
        return Err(format!("algorithm {:?}: use ffsplit (the default, for even node counts) or lms", spec.algorithm));
    }
    match spec.tie_breaker.as_str() {
        "lowest" | "highest" => {}
        t => match t.parse::<u32>() {
            Ok(id) if cfg.nodes.iter().any(|n| n.nodeid == Some(id)) => {}
            _ => return Err(format!("tie-breaker {t:?}: use lowest, highest or the nodeid of a configured node")),
        },
    }
    if spec.host.trim().is_empty() || spec.host.contains(char::is_whitespace) {
        return Err(format!("host {:?}: give the arbiter's address or name", spec.host));
    }
    if cfg.nodes.is_empty() {
        return Err(format!("{source}: no nodelist {{ node {{ ... }} }}: qdevice needs a nodelist with nodeids"));
    }
    if cfg.nodes.iter().any(|n| n.nodeid.is_none()) {
        return Err(format!("{source}: every node needs a nodeid for qdevice"));
    }
    for (key, on, why) in [
        ("last_man_standing", cfg.last_man_standing, "last_man_standing"),
        ("auto_tie_breaker", cfg.auto_tie_breaker, "auto_tie_breaker (the arbiter breaks ties instead)"),
        ("allow_downscale", cfg.allow_downscale, "allow_downscale"),
    ] {
        if on {
            let (l, c) = conf.pos_of("quorum", key).unwrap_or((0, 0));
            return Err(format!("{source}:{l}:{c}: votequorum refuses a quorum device together with {why}; remove `{key}` first (`twonode quorum` will not drop it for you)"));
        }
    }
    let votes: Vec<u32> = cfg.nodes.iter().map(|n| n.votes).collect();
    if votes.windows(2).any(|w| w[0] != w[1]) {
        return Err(format!("{source}: votequorum refuses a quorum device with unequal node votes {votes:?}; give every node quorum_votes: 1"));
    }
    let mut notes = Vec::new();
    let mut new = conf.clone();
    if conf.get("quorum", "two_node").is_some() {
        new = new.remove("quorum", "two_node").map_err(perr)?;
        notes.push("removed quorum.two_node (votequorum refuses it with a device; the arbiter is the third vote)".into());
        if cfg.wait_for_all.is_some() {
            notes.push("kept the explicit wait_for_all".into());
        } else {
            notes.push("wait_for_all was only implied by two_node and is now off".into());
        }
    }
    let n = cfg.nodes.len() as u32;
    let dev_votes = if spec.algorithm == "lms" { n.saturating_sub(1).max(1) } else { 1 };
    if let Some(ev) = cfg.expected_votes {
        let want = cfg.node_votes() + dev_votes;
        if ev != want {
            new = new.set("quorum", "expected_votes", &want.to_string()).map_err(perr)?;
            notes.push(format!("expected_votes {ev} -> {want} (node votes + device votes)"));
        }
    }
    let tree = Tree {
        name: "device".into(),
        keys: vec![("model".into(), "net".into()), ("votes".into(), dev_votes.to_string())],
        children: vec![Tree {
            name: "net".into(),
            keys: vec![("host".into(), spec.host.clone()), ("algorithm".into(), spec.algorithm.clone()), ("tie_breaker".into(), spec.tie_breaker.clone())],
            children: vec![],
        }],
    };
    if new.section("quorum").is_none() {
        new = new.set("quorum", "provider", "corosync_votequorum").map_err(perr)?;
    }
    new = new.add_tree("quorum", &tree).map_err(perr)?;
    notes.push(format!("added quorum.device (model net, votes {dev_votes}, host {}, algorithm {}, tie_breaker {})", spec.host, spec.algorithm, spec.tie_breaker));
    new = version_note(conf, new, &mut notes)?;
    refuse_errors(&new, source, ctx)?;
    Ok(Plan { new, notes })
}

fn version_note(old: &CorosyncConf, new: CorosyncConf, notes: &mut Vec<String>) -> Result<CorosyncConf, String> {
    let bumped = new.bump_version().map_err(perr)?;
    match (old.config_version(), bumped.config_version()) {
        (Some(a), Some(b)) => notes.push(format!("totem.config_version {a} -> {b}")),
        _ => notes.push("no totem.config_version in the file: none added; copy the file to every node yourself".into()),
    }
    Ok(bumped)
}

/// Remove `quorum.device`; with exactly two nodes restore `two_node: 1`.
pub fn disable_arbiter(conf: &CorosyncConf, source: &str, ctx: &Context) -> Result<Plan, String> {
    let cfg = conf.quorum_config(source)?;
    if conf.section("quorum.device").is_none() {
        return Err(format!("{source}: no quorum.device section: nothing to disable"));
    }
    let mut notes = Vec::new();
    let mut new = conf.remove_section("quorum.device").map_err(perr)?;
    notes.push("removed quorum.device".into());
    if cfg.nodes.len() == 2 {
        if !watchdog_evidence(ctx).is_empty() {
            return Err(format!(
                "{source}: refusing to go back to two_node: this cluster self-fences by watchdog ({}); under two_node both halves of a split stay quorate and a watchdog never proves the peer dead. Keep the arbiter, or configure hardware fence devices on both nodes first",
                watchdog_evidence(ctx).join("; ")
            ));
        }
        new = new.set("quorum", "two_node", "1").map_err(perr)?;
        notes.push("set quorum.two_node: 1 (two nodes; implies wait_for_all)".into());
    } else {
        notes.push(format!("{} nodes: two_node not restored", cfg.nodes.len()));
    }
    if let Some(ev) = cfg.expected_votes {
        let want = cfg.node_votes();
        if ev != want {
            new = new.set("quorum", "expected_votes", &want.to_string()).map_err(perr)?;
            notes.push(format!("expected_votes {ev} -> {want} (node votes)"));
        }
    }
    new = version_note(conf, new, &mut notes)?;
    refuse_errors(&new, source, ctx)?;
    Ok(Plan { new, notes })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "# two nodes\ntotem {\n    version: 2\n    cluster_name: c1\n    config_version: 7\n}\n\nquorum {\n    provider: corosync_votequorum\n    two_node: 1\n}\n\nnodelist {\n    node {\n        name: a\n        nodeid: 1\n    }\n    node {\n        name: b\n        nodeid: 2\n    }\n}\n";

    #[test]
    fn round_trip_and_edits_are_minimal() {
        let c = CorosyncConf::parse(BASE).unwrap();
        assert_eq!(c.text(), BASE);
        assert_eq!(c.get("quorum", "two_node"), Some("1"));
        assert_eq!(c.sections_at("nodelist.node").len(), 2);
        let e = c.set("quorum", "two_node", "0").unwrap();
        assert_eq!(e.text(), BASE.replace("two_node: 1", "two_node: 0"));
        let e = c.set("quorum", "wait_for_all", "1").unwrap();
        assert_eq!(e.text(), BASE.replace("two_node: 1\n", "two_node: 1\n    wait_for_all: 1\n"));
        let e = c.remove("quorum", "two_node").unwrap();
        assert_eq!(e.text(), BASE.replace("    two_node: 1\n", ""));
        let e = c.add_section("quorum", "device", &[("model", "net")]).unwrap();
        assert_eq!(e.text(), BASE.replace("two_node: 1\n}", "two_node: 1\n    device {\n        model: net\n    }\n}"));
        assert_eq!(e.remove_section("quorum.device").unwrap().text(), BASE);
        assert_eq!(c.bump_version().unwrap().config_version(), Some(8));
        let tabs = "quorum {\r\n\tprovider: corosync_votequorum\r\n}\r\n";
        let t = CorosyncConf::parse(tabs).unwrap().add_section("quorum", "device", &[("votes", "1")]).unwrap();
        assert_eq!(t.text(), "quorum {\r\n\tprovider: corosync_votequorum\r\n\tdevice {\r\n\t\tvotes: 1\r\n\t}\r\n}\r\n");
    }

    #[test]
    fn may_apply_wants_a_valid_file_with_a_higher_version() {
        let cx = Context::default();
        let newer = BASE.replace("config_version: 7", "config_version: 8");
        assert_eq!(may_apply(&newer, Some(BASE), "c.new", &cx), Ok(()));
        assert_eq!(may_apply(&newer, None, "c.new", &cx), Ok(()));
        let same = may_apply(BASE, Some(BASE), "c.new", &cx).unwrap_err();
        assert!(same.contains("config_version 7 is not higher than the live 7") && same.starts_with("not applying c.new"), "{same}");
        let broken = may_apply("quorum {\n", Some(BASE), "c.new", &cx).unwrap_err();
        assert!(broken.contains("validation failed") && broken.contains("c.new:"), "{broken}");
    }

    #[test]
    fn parse_errors_have_positions() {
        let e = CorosyncConf::parse("quorum {\n  two_node 1\n}\n").unwrap_err();
        assert_eq!((e.line, e.col), (2, 3));
        let e = CorosyncConf::parse("quorum {\n").unwrap_err();
        assert!(e.msg.contains("not closed"));
        let e = CorosyncConf::parse("}\n").unwrap_err();
        assert_eq!(e.line, 1);
    }

    #[test]
    fn enable_then_disable_restores() {
        let c = CorosyncConf::parse(BASE).unwrap();
        let spec = ArbiterSpec { host: "arb".into(), algorithm: "ffsplit".into(), tie_breaker: "lowest".into() };
        let p = enable_arbiter(&c, &spec, "t", &Context::default()).unwrap();
        assert!(p.new.get("quorum", "two_node").is_none());
        assert_eq!(p.new.get("quorum.device.net", "host"), Some("arb"));
        assert_eq!(p.new.config_version(), Some(8));
        let back = disable_arbiter(&p.new, "t", &Context::default()).unwrap();
        assert_eq!(back.new.text(), BASE.replace("config_version: 7", "config_version: 9"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
        /// Adding a key then removing it gives back the exact bytes; setting an existing key
        /// changes only that line; the rest of the file never moves.
        #[test]
        fn edits_are_local_and_reversible(
            sec in proptest::sample::select(vec!["totem", "quorum", "nodelist.node", "logging", "quorum.device.net"]),
            key in "[a-z][a-z_]{0,12}",
            value in "[A-Za-z0-9./:-]{1,20}",
            crlf in proptest::bool::ANY,
        ) {
            let base = if crlf { BASE.replace('\n', "\r\n") } else { BASE.to_string() };
            let c = CorosyncConf::parse(&base).unwrap();
            let had = c.get(sec, &key).is_some() || c.section(sec).is_none();
            let e = c.set(sec, &key, &value).unwrap();
            proptest::prop_assert_eq!(e.get(sec, &key), Some(value.as_str()));
            if !had {
                let r = e.remove(sec, &key).unwrap();
                proptest::prop_assert_eq!(r.text(), base.as_str());
                let added: Vec<&str> = e.text().lines().filter(|l| !base.lines().any(|b| b == *l)).collect();
                proptest::prop_assert_eq!(added.len(), 1, "{:?}", added);
            } else if c.section(sec).is_some() {
                let changed = e.text().lines().zip(base.lines()).filter(|(a, b)| a != b).count();
                proptest::prop_assert!(changed <= 1);
            }
            let again = CorosyncConf::parse(e.text()).unwrap();
            proptest::prop_assert_eq!(again.text(), e.text());
        }
    }
}
