//! Reading the instance document (quick-xml, byte offsets kept for line:column) and streaming it
//! through the derivative engine, with error recovery so that more than the first error is found.

use std::collections::{BTreeSet, HashMap};

use quick_xml::events::Event;

use super::compile::Compiled;
use super::datatype::{self, is_whitespace};
use super::deriv::{QName, Session};
use super::pattern::{DtKind, NameClass, Pat, P, NOT_ALLOWED};
use super::SchemaDiag;

const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

// ---------------------------------------------------------------- tokenising

#[derive(Debug)]
pub struct Attr {
    pub qname: String,
    pub ns: String,
    pub local: String,
    pub value: String,
    pub off: usize,
}

#[derive(Debug)]
pub enum Ev {
    Start { qname: String, ns: String, local: String, attrs: Vec<Attr>, off: usize },
    End,
    Text { s: String, off: usize },
}

/// Maps byte offsets to 1-based line and column (column counted in characters).
pub struct Lines<'a> {
    src: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    pub fn new(src: &'a str) -> Lines<'a> {
        let mut starts = vec![0];
        for (i, b) in src.bytes().enumerate() {
            if b == b'\n' {
                starts.push(i + 1);
            }
        }
        Lines { src, starts }
    }

    pub fn pos(&self, off: usize) -> (usize, usize) {
        let off = off.min(self.src.len());
        let line = match self.starts.binary_search(&off) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.starts[line];
        let col = self.src.get(start..off).map(|s| s.chars().count()).unwrap_or(off - start) + 1;
        (line + 1, col)
    }
}

/// Offset of `part` inside `whole` when `part` borrows from it.
fn offset_in(whole: &str, part: &[u8]) -> Option<usize> {
    let w = whole.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    if p >= w && p <= w + whole.len() {
        Some(p - w)
    } else {
        None
    }
}

/// General entities declared in the internal DTD subset (`<!ENTITY name "value">`).
fn internal_entities(doctype: &str, out: &mut HashMap<String, String>) {
    let mut rest = doctype;
    while let Some(i) = rest.find("<!ENTITY") {
        rest = &rest[i + 8..];
        let t = rest.trim_start();
        if t.starts_with('%') {
            continue;
        }
        let name_end = t.find(|c: char| datatype::is_xml_ws(c)).unwrap_or(t.len());
        let name = &t[..name_end];
        let after = t[name_end..].trim_start();
        let Some(q) = after.chars().next() else { continue };
        if q != '"' && q != '\'' {
            continue;
        }
        if let Some(end) = after[1..].find(q) {
            let val = &after[1..1 + end];
            // character references inside the literal are expanded when the entity is declared
            let v = quick_xml::escape::unescape(val).map(|c| c.into_owned()).unwrap_or_else(|_| val.to_string());
            out.entry(name.to_string()).or_insert(v);
        }
    }
}

fn wf_error(lines: &Lines, off: usize, msg: impl std::fmt::Display) -> SchemaDiag {
    let (line, col) = lines.pos(off);
    SchemaDiag { line, col, message: format!("not well-formed XML: {msg}") }
}

/// Attribute-value normalisation (XML 1.0 §3.3.3) of a raw literal, then entity expansion.
fn attr_value(raw: &str, ents: &HashMap<String, String>) -> Result<String, String> {
    if raw.contains('<') {
        return Err("'<' is not allowed in an attribute value".into());
    }
    let norm = raw.replace("\r\n", " ").replace(['\r', '\n', '\t'], " ");
    expand(&norm, ents)
}

fn expand(s: &str, ents: &HashMap<String, String>) -> Result<String, String> {
    quick_xml::escape::unescape_with(s, |name| {
        quick_xml::escape::resolve_predefined_entity(name).or_else(|| ents.get(name).map(|v| v.as_str()))
    })
        .map(|c| c.into_owned())
        .map_err(|e| e.to_string())
}

/// Parse the instance into simplified events. The first well-formedness error ends it.
pub fn tokenize(src: &str, lines: &Lines) -> Result<Vec<Ev>, SchemaDiag> {
    let mut rd = quick_xml::Reader::from_str(src);
    {
        let cfg = rd.config_mut();
        cfg.check_end_names = true;
        cfg.check_comments = true;
        cfg.expand_empty_elements = false;
    }
    let mut evs = Vec::new();
    let mut ents: HashMap<String, String> = HashMap::new();
    // namespace scopes: (prefix, uri); per open element the scope length before it
    let mut scope: Vec<(String, String)> = vec![("xml".into(), XML_NS.into())];
    let mut marks: Vec<usize> = Vec::new();
    let mut root_done = false;
    let mut seen_root = false;
    loop {
        let before = rd.buffer_position() as usize;
        let ev = match rd.read_event() {
            Ok(e) => e,
            Err(e) => {
                let at = (rd.error_position() as usize).max(before);
                return Err(wf_error(lines, at, e));
            }
        };
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                let name_bytes = e.name().as_ref().to_vec();
                let off = offset_in(src, e.name().as_ref()).map(|o| o.saturating_sub(1)).unwrap_or(before);
                if root_done {
                    return Err(wf_error(lines, off, "extra content at the end of the document (a second root element)"));
                }
                seen_root = true;
                marks.push(scope.len());
                let mut raw_attrs = Vec::new();
                for a in e.attributes() {
                    let a = a.map_err(|err| wf_error(lines, off, format!("in the start tag: {err}")))?;
                    let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
                    let aoff = offset_in(src, a.key.as_ref()).unwrap_or(off);
                    let raw = String::from_utf8_lossy(&a.value).into_owned();
                    let value = attr_value(&raw, &ents).map_err(|m| wf_error(lines, aoff, format!("attribute {key}: {m}")))?;
                    if key == "xmlns" {
                        scope.push((String::new(), value));
                    } else if let Some(p) = key.strip_prefix("xmlns:") {
                        if value.is_empty() {
                            return Err(wf_error(lines, aoff, format!("namespace prefix {p} bound to an empty URI")));
                        }
                        scope.push((p.to_string(), value));
                    } else {
                        raw_attrs.push((key, value, aoff));
                    }
                }
                let resolve = |prefix: &str| scope.iter().rev().find(|(p, _)| p == prefix).map(|(_, u)| u.clone());
                let qname = String::from_utf8_lossy(&name_bytes).into_owned();
                let (ns, local) = match qname.split_once(':') {
                    Some((p, l)) => match resolve(p) {
                        Some(u) => (u, l.to_string()),
                        None => return Err(wf_error(lines, off, format!("namespace prefix {p} of <{qname}> is not declared"))),
                    },
                    None => (resolve("").unwrap_or_default(), qname.clone()),
                };
                let mut attrs = Vec::new();
                for (key, value, aoff) in raw_attrs {
                    let (ans, alocal) = match key.split_once(':') {
                        Some((p, l)) => match resolve(p) {
                            Some(u) => (u, l.to_string()),
                            None => {
                                return Err(wf_error(lines, aoff, format!("namespace prefix {p} of attribute {key} is not declared")))
                            }
                        },
                        None => (String::new(), key.clone()),
                    };
                    if attrs.iter().any(|a: &Attr| a.ns == ans && a.local == alocal) {
                        return Err(wf_error(lines, aoff, format!("attribute {key} appears twice")));
                    }
                    attrs.push(Attr { qname: key, ns: ans, local: alocal, value, off: aoff });
                }
                evs.push(Ev::Start { qname, ns, local, attrs, off });
                if empty {
                    evs.push(Ev::End);
                    if let Some(m) = marks.pop() {
                        scope.truncate(m);
                    }
                    if marks.is_empty() {
                        root_done = true;
                    }
                }
            }
            Event::End(_) => {
                evs.push(Ev::End);
                match marks.pop() {
                    Some(m) => scope.truncate(m),
                    None => return Err(wf_error(lines, before, "end tag without a start tag")),
                }
                if marks.is_empty() {
                    root_done = true;
                }
            }
            Event::Text(ref t) => {
                let off = offset_in(src, t).unwrap_or(before);
                let raw = String::from_utf8_lossy(t).into_owned();
                if marks.is_empty() {
                    if !is_whitespace(&raw) {
                        let msg = if root_done { "extra content at the end of the document" } else { "text before the root element" };
                        return Err(wf_error(lines, off + raw.len() - raw.trim_start().len(), msg));
                    }
                    continue;
                }
                let raw = raw.replace("\r\n", "\n").replace('\r', "\n");
                let s = expand(&raw, &ents).map_err(|m| wf_error(lines, off, m))?;
                push_text(&mut evs, s, off);
            }
            Event::CData(ref t) => {
                let off = offset_in(src, t).unwrap_or(before);
                if marks.is_empty() {
                    return Err(wf_error(lines, off, "CDATA section outside the root element"));
                }
                push_text(&mut evs, String::from_utf8_lossy(t).replace("\r\n", "\n"), off);
            }
            Event::DocType(ref t) => {
                if seen_root {
                    return Err(wf_error(lines, before, "DOCTYPE after the root element"));
                }
                internal_entities(&String::from_utf8_lossy(t), &mut ents);
            }
            Event::Decl(_) => {
                if before != 0 && !(before == 3 && src.starts_with('\u{feff}')) {
                    return Err(wf_error(lines, before, "XML declaration allowed only at the start of the document"));
                }
            }
            Event::PI(ref p) => {
                let target = p.target();
                if target.eq_ignore_ascii_case(b"xml") {
                    return Err(wf_error(lines, before, "XML declaration allowed only at the start of the document"));
                }
            }
            Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !marks.is_empty() {
        return Err(wf_error(lines, src.len(), "premature end of data: an element is not closed"));
    }
    if !seen_root {
        return Err(wf_error(lines, 0, "the document is empty (no root element)"));
    }
    Ok(evs)
}

fn push_text(evs: &mut Vec<Ev>, s: String, off: usize) {
    if let Some(Ev::Text { s: prev, .. }) = evs.last_mut() {
        prev.push_str(&s);
        return;
    }
    evs.push(Ev::Text { s, off });
}

// ---------------------------------------------------------------- validating

enum Mode {
    Normal,
    /// subtree skipped after an error; on its end the parent continues with this pattern
    Skip(P),
}

struct Frame {
    qname: String,
    off: usize,
    mode: Mode,
    has_child: bool,
    text: String,
    text_off: usize,
}

struct IdUse {
    value: String,
    off: usize,
    element: String,
    attr: String,
}

pub struct Validator<'a, 'l> {
    s: Session<'a>,
    lines: &'l Lines<'l>,
    diags: Vec<SchemaDiag>,
}

fn quote_list(items: &BTreeSet<String>, limit: usize) -> String {
    let mut v: Vec<String> = items.iter().take(limit).cloned().collect();
    if items.len() > limit {
        v.push(format!("... ({} more)", items.len() - limit));
    }
    v.join(", ")
}

impl<'a, 'l> Validator<'a, 'l> {
    pub fn new(c: &'a Compiled, lines: &'l Lines<'l>) -> Self {
        Validator { s: Session::new(c), lines, diags: Vec::new() }
    }

    fn report(&mut self, off: usize, message: String) {
        let (line, col) = self.lines.pos(off);
        self.diags.push(SchemaDiag { line, col, message });
    }

    fn name_of_nc(&self, nc: u32, out: &mut BTreeSet<String>) {
        match self.s.c.ncs.get(nc as usize) {
            Some(NameClass::Name(ns, l)) => {
                let ns = self.s.ar.sym_str(*ns);
                let l = self.s.ar.sym_str(*l);
                out.insert(if ns.is_empty() { l.to_string() } else { format!("{{{ns}}}{l}") });
            }
            Some(NameClass::Choice(a, b)) => {
                self.name_of_nc(*a, out);
                self.name_of_nc(*b, out);
            }
            Some(NameClass::AnyName(_)) => {
                out.insert("(any name)".into());
            }
            Some(NameClass::NsName(ns, _)) => {
                out.insert(format!("(any name in {})", self.s.ar.sym_str(*ns)));
            }
            None => {}
        }
    }

    /// The leaf patterns (elements, text, data, values...) that may match first in `p`, looking
    /// through choices, interleaves, groups with a nullable head, repetitions and `After`.
    fn first_leaves(&self, p: P) -> Vec<P> {
        let mut leaves = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![p];
        while let Some(q) = stack.pop() {
            if !seen.insert(q) {
                continue;
            }
            match self.s.ar.pat(q) {
                Pat::Choice(a, b) | Pat::Interleave(a, b) => {
                    stack.push(a);
                    stack.push(b);
                }
                Pat::Group(a, b) => {
                    stack.push(a);
                    if self.s.nullable(a) {
                        stack.push(b);
                    }
                }
                Pat::OneOrMore(a) | Pat::After(a, _) => stack.push(a),
                _ => leaves.push(q),
            }
        }
        leaves
    }

    /// Element names that may start at this point.
    fn expected_elements(&self, p: P) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for q in self.first_leaves(p) {
            if let Pat::Element(nc, _) = self.s.ar.pat(q) {
                self.name_of_nc(nc, &mut out);
            }
        }
        out.into_iter().map(|n| format!("<{n}>")).collect()
    }

    /// Attribute names all alternatives of `p` still require.
    fn required_attrs(&self, p: P, depth: usize) -> BTreeSet<String> {
        if depth > 64 {
            return BTreeSet::new();
        }
        match self.s.ar.pat(p) {
            Pat::Attribute(nc, _) => {
                let mut o = BTreeSet::new();
                self.name_of_nc(nc, &mut o);
                o
            }
            Pat::Group(a, b) | Pat::Interleave(a, b) => {
                let mut x = self.required_attrs(a, depth + 1);
                x.extend(self.required_attrs(b, depth + 1));
                x
            }
            Pat::Choice(a, b) => {
                let x = self.required_attrs(a, depth + 1);
                let y = self.required_attrs(b, depth + 1);
                x.intersection(&y).cloned().collect()
            }
            Pat::After(a, _) | Pat::OneOrMore(a) => self.required_attrs(a, depth + 1),
            _ => BTreeSet::new(),
        }
    }

    /// What an attribute's content pattern accepts, in words.
    fn describe_content(&self, p: P, out: &mut BTreeSet<String>, depth: usize) {
        if depth > 32 {
            return;
        }
        match self.s.ar.pat(p) {
            Pat::Choice(a, b) => {
                self.describe_content(a, out, depth + 1);
                self.describe_content(b, out, depth + 1);
            }
            Pat::Value(_, v) => {
                out.insert(format!("\"{}\"", self.s.ar.sym_str(v)));
            }
            Pat::Data(dt) | Pat::DataExcept(dt, _) => {
                out.insert(format!("a {}", datatype::kind_name(self.s.c.dts[dt as usize].kind)));
            }
            Pat::Text => {
                out.insert("any text".into());
            }
            Pat::Empty => {
                out.insert("an empty value".into());
            }
            Pat::List(_) => {
                out.insert("a list".into());
            }
            _ => {
                out.insert("a structured value".into());
            }
        }
    }

    fn qn(&mut self, ns: &str, local: &str) -> QName {
        (self.s.ar.sym(ns), self.s.ar.sym(local))
    }

    pub fn run(mut self, evs: &[Ev]) -> Vec<SchemaDiag> {
        let c = self.s.c;
        let mut cur = c.start;
        let mut stack: Vec<Frame> = Vec::new();
        let mut ids: HashMap<String, usize> = HashMap::new();
        let mut refs: Vec<IdUse> = Vec::new();
        for ev in evs {
            match ev {
                Ev::Start { qname, ns, local, attrs, off } => {
                    let off = *off;
                    if matches!(stack.last().map(|f| &f.mode), Some(Mode::Skip(_))) {
                        stack.push(Frame { qname: qname.clone(), off, mode: Mode::Skip(cur), has_child: false, text: String::new(), text_off: 0 });
                        continue;
                    }
                    // text before this child: parent has element children -> whitespace is ignored
                    if let Some(parent) = stack.last_mut() {
                        parent.has_child = true;
                        if !is_whitespace(&parent.text) {
                            let t = std::mem::take(&mut parent.text);
                            let (pname, toff) = (parent.qname.clone(), parent.text_off);
                            let d = self.s.text(cur, &t);
                            if d == NOT_ALLOWED {
                                self.report(toff, format!("element <{pname}>: text {:?} is not allowed here", shorten(&t)));
                            } else {
                                cur = d;
                            }
                        }
                        parent.text.clear();
                    }
                    let qn = self.qn(ns, local);
                    let p_open = self.s.start_tag_open(cur, qn);
                    if p_open == NOT_ALLOWED {
                        let exp = self.expected_elements(cur);
                        let place = match stack.last() {
                            Some(f) => format!("inside <{}>", f.qname),
                            None => "as the root element".to_string(),
                        };
                        let what = if exp.is_empty() {
                            "no further element is allowed there".to_string()
                        } else {
                            format!("expected {}", quote_list(&exp, 12))
                        };
                        self.report(off, format!("element <{qname}> is not allowed {place}: {what}"));
                        stack.push(Frame { qname: qname.clone(), off, mode: Mode::Skip(cur), has_child: false, text: String::new(), text_off: 0 });
                        continue;
                    }
                    let mut p = p_open;
                    let mut accepted: Vec<&Attr> = Vec::new();
                    for a in attrs {
                        let aqn = self.qn(&a.ns, &a.local);
                        let q = self.s.att(p, aqn, &a.value);
                        if q != NOT_ALLOWED {
                            p = q;
                            accepted.push(a);
                            let key = (qn.0, qn.1, aqn.0, aqn.1);
                            match c.id_attrs.get(&key) {
                                Some(DtKind::Id) => {
                                    let v = datatype::collapse(&a.value);
                                    if let Some(&first) = ids.get(&v) {
                                        let (l, _) = self.lines.pos(first);
                                        self.report(a.off, format!("element <{qname}>: attribute {}=\"{}\": ID \"{v}\" is already defined on line {l}", a.qname, a.value));
                                    } else {
                                        ids.insert(v, a.off);
                                    }
                                }
                                Some(DtKind::IdRef) | Some(DtKind::IdRefs) => {
                                    for v in datatype::collapse(&a.value).split(' ').filter(|w| !w.is_empty()) {
                                        refs.push(IdUse { value: v.to_string(), off: a.off, element: qname.clone(), attr: a.qname.clone() });
                                    }
                                }
                                _ => {}
                            }
                            continue;
                        }
                        let leaves_now = self.attr_contents(p, aqn);
                        let msg = if !leaves_now.is_empty() {
                            let mut d = BTreeSet::new();
                            for l in leaves_now {
                                self.describe_content(l, &mut d, 0);
                            }
                            format!("element <{qname}>: attribute {}=\"{}\" is invalid: expected {}", a.qname, a.value, quote_list(&d, 12))
                        } else if !self.attr_contents(p_open, aqn).is_empty() {
                            let others: Vec<String> = accepted.iter().map(|x| x.qname.clone()).collect();
                            format!(
                                "element <{qname}>: attribute {} cannot be combined with {} (no single alternative of the schema allows them together{})",
                                a.qname,
                                others.join(", "),
                                if local == "fencedevice" || local == "device" { ", e.g. they belong to different fence agents" } else { "" }
                            )
                        } else {
                            format!("element <{qname}>: attribute {} is not allowed", a.qname)
                        };
                        self.report(a.off, msg);
                        let q = self.s.att_any_value(p, aqn);
                        if q != NOT_ALLOWED {
                            p = q;
                        }
                    }
                    let mut p_closed = self.s.start_tag_close(p);
                    if p_closed == NOT_ALLOWED {
                        let req = self.required_attrs(p, 0);
                        let msg = if req.is_empty() {
                            format!("element <{qname}>: a required attribute is missing")
                        } else if req.len() == 1 {
                            format!("element <{qname}>: attribute {} is required", quote_list(&req, 12))
                        } else {
                            format!("element <{qname}>: attributes {} are required", quote_list(&req, 12))
                        };
                        self.report(off, msg);
                        p_closed = self.s.start_tag_close_lenient(p);
                    }
                    if p_closed == NOT_ALLOWED {
                        let resume = self.s.continuations(p_open);
                        stack.push(Frame { qname: qname.clone(), off, mode: Mode::Skip(resume), has_child: false, text: String::new(), text_off: 0 });
                        continue;
                    }
                    cur = p_closed;
                    stack.push(Frame { qname: qname.clone(), off, mode: Mode::Normal, has_child: false, text: String::new(), text_off: 0 });
                }
                Ev::Text { s, off } => {
                    if let Some(f) = stack.last_mut() {
                        if matches!(f.mode, Mode::Normal) {
                            if f.text.is_empty() {
                                f.text_off = *off;
                            }
                            f.text.push_str(s);
                        }
                    }
                }
                Ev::End => {
                    let Some(f) = stack.pop() else { continue };
                    match f.mode {
                        Mode::Skip(resume) => {
                            // only the outermost skipped frame restores the parent's pattern
                            if !matches!(stack.last().map(|x| &x.mode), Some(Mode::Skip(_))) {
                                cur = resume;
                            }
                            continue;
                        }
                        Mode::Normal => {}
                    }
                    if !f.has_child {
                        let d = self.s.text(cur, &f.text);
                        let next = if is_whitespace(&f.text) { self.s.ar.choice(cur, d) } else { d };
                        if next == NOT_ALLOWED {
                            let mut exp = BTreeSet::new();
                            self.describe_text_expect(cur, &mut exp);
                            let detail = if exp.is_empty() { String::new() } else { format!(" (expected {})", quote_list(&exp, 8)) };
                            self.report(f.text_off.max(f.off), format!("element <{}>: text {:?} is not allowed here{detail}", f.qname, shorten(&f.text)));
                        } else {
                            cur = next;
                        }
                    } else if !is_whitespace(&f.text) {
                        let d = self.s.text(cur, &f.text);
                        if d == NOT_ALLOWED {
                            self.report(f.text_off, format!("element <{}>: text {:?} is not allowed here", f.qname, shorten(&f.text)));
                        } else {
                            cur = d;
                        }
                    }
                    let e = self.s.end_tag(cur);
                    if e == NOT_ALLOWED {
                        let exp = self.expected_elements(cur);
                        let msg = if exp.is_empty() {
                            format!("element <{}> is incomplete", f.qname)
                        } else {
                            format!("element <{}> is incomplete: expected {} (missing required child element)", f.qname, quote_list(&exp, 12))
                        };
                        self.report(f.off, msg);
                        cur = self.s.continuations(cur);
                    } else {
                        cur = e;
                    }
                }
            }
        }
        // every IDREF must name a declared ID
        for r in refs {
            if !ids.contains_key(&r.value) {
                let decl: BTreeSet<String> = c
                    .id_attrs
                    .iter()
                    .filter(|(_, k)| **k == DtKind::Id)
                    .map(|((_, el, _, at), _)| format!("<{} {}=...>", self.s.ar.sym_str(*el), self.s.ar.sym_str(*at)))
                    .collect();
                self.report(
                    r.off,
                    format!(
                        "element <{}>: IDREF attribute {} references an unknown ID \"{}\" (declared IDs come from {})",
                        r.element,
                        r.attr,
                        r.value,
                        quote_list(&decl, 4)
                    ),
                );
            }
        }
        self.diags.sort_by_key(|d| (d.line, d.col));
        self.diags
    }

    fn attr_contents(&mut self, p: P, qn: QName) -> Vec<P> {
        // the attribute patterns that could match this name at this point
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![p];
        while let Some(q) = stack.pop() {
            if !seen.insert(q) {
                continue;
            }
            match self.s.ar.pat(q) {
                Pat::Choice(a, b) | Pat::Group(a, b) | Pat::Interleave(a, b) | Pat::After(a, b) => {
                    stack.push(a);
                    stack.push(b);
                }
                Pat::OneOrMore(a) => stack.push(a),
                Pat::Attribute(nc, content)
                    if super::pattern::nc_contains(&self.s.c.ncs, nc, qn.0, qn.1) => {
                        out.push(content);
                    }
                _ => {}
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    fn describe_text_expect(&self, p: P, out: &mut BTreeSet<String>) {
        for q in self.first_leaves(p) {
            match self.s.ar.pat(q) {
                Pat::Element(nc, _) => {
                    let mut n = BTreeSet::new();
                    self.name_of_nc(nc, &mut n);
                    for x in n {
                        out.insert(format!("<{x}>"));
                    }
                }
                Pat::Value(..) | Pat::Data(..) | Pat::DataExcept(..) | Pat::List(..) => self.describe_content(q, out, 0),
                _ => {}
            }
        }
    }
}

fn shorten(s: &str) -> String {
    let t = s.trim();
    if t.chars().count() > 40 {
        let mut x: String = t.chars().take(40).collect();
        x.push('…');
        x
    } else {
        t.to_string()
    }
}
