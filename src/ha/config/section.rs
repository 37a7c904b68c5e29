//! Proxmox's section-config format (resources.cfg, groups.cfg, rules.cfg): sections that start
//! with `TYPE: ID` at column 1, followed by indented `KEY VALUE` lines, separated by blank lines.
use crate::ha::model::Span;

#[derive(Debug, Clone, PartialEq)]
pub struct Prop {
    pub key: String,
    pub value: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub kind: String,
    pub id: String,
    pub span: Span,
    pub props: Vec<Prop>,
}

impl Section {
    pub fn get(&self, key: &str) -> Option<&Prop> {
        self.props.iter().rev().find(|p| p.key == key)
    }
}

/// A syntax error with its place and what was expected there.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{line}:{col}: {msg}")]
pub struct SyntaxError {
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

/// A JSON file's error (datacenter.cfg in the regression format, .members, a storage map) at
/// serde_json's line and column.
impl From<serde_json::Error> for SyntaxError {
    fn from(e: serde_json::Error) -> SyntaxError {
        SyntaxError { line: e.line(), col: e.column(), msg: e.to_string() }
    }
}

/// Split a section-config text into sections. Comments (`#`) and blank lines are skipped.
pub fn parse(text: &str) -> Result<Vec<Section>, SyntaxError> {
    let mut out: Vec<Section> = Vec::new();
    let mut in_section = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            in_section = false;
            continue;
        }
        if raw.trim_start().starts_with('#') {
            continue;
        }
        let indented = raw.starts_with(' ') || raw.starts_with('\t');
        if !indented {
            let Some((kind, id)) = raw.split_once(':') else {
                return Err(SyntaxError { line, col: 1, msg: format!("expected a section header `TYPE: ID`, found `{}`", raw.trim()) });
            };
            let id = id.trim();
            if kind.trim().is_empty() || id.is_empty() || id.contains(char::is_whitespace) {
                return Err(SyntaxError { line, col: 1, msg: format!("expected a section header `TYPE: ID`, found `{}`", raw.trim()) });
            }
            let col = raw.find(id).map(|c| c + 1).unwrap_or(1);
            out.push(Section { kind: kind.trim().to_lowercase(), id: id.to_string(), span: Span { line, col }, props: Vec::new() });
            in_section = true;
            continue;
        }
        if !in_section {
            return Err(SyntaxError { line, col: 1, msg: "a property line outside of a section (a blank line ends a section)".into() });
        }
        let col = raw.len() - raw.trim_start().len() + 1;
        let body = raw.trim();
        let (key, value) = match body.split_once(char::is_whitespace) {
            Some((k, v)) => (k, v.trim()),
            None => (body, ""),
        };
        out.last_mut().unwrap().props.push(Prop { key: key.to_string(), value: value.to_string(), span: Span { line, col } });
    }
    Ok(out)
}

/// `node1:2,node2` -> [(node1, 2), (node2, 0)].
pub fn parse_node_list(v: &str) -> Result<Vec<(String, i64)>, String> {
    let mut out = Vec::new();
    for item in v.split([',', ';', ' ']).map(str::trim).filter(|s| !s.is_empty()) {
        let (node, prio) = match item.split_once(':') {
            Some((n, p)) => (n, p.parse::<i64>().map_err(|_| format!("priority `{p}` of node `{n}` is not a number"))?),
            None => (item, 0),
        };
        if node.is_empty() {
            return Err(format!("empty node name in `{v}`"));
        }
        out.push((node.to_string(), prio));
    }
    Ok(out)
}

pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}
