//! James Clark's derivative algorithm ("An algorithm for RELAX NG validation", 2002), on
//! interned patterns with memoised derivatives.
//!
//! Streaming form: for an element, `start_tag_open` → `att` per attribute → `start_tag_close` →
//! children (`text` / nested elements) → `end_tag`. Patterns of the form `After(content, rest)`
//! carry "what remains of this element" and "what follows it in the parent".

use rustc_hash::FxHashMap as HashMap;

use super::compile::Compiled;
use super::datatype;
use super::pattern::{nc_contains, Arena, Pat, Sym, P, EMPTY, NOT_ALLOWED, TEXT};

/// A qualified name (namespace URI symbol, local name symbol).
pub type QName = (Sym, Sym);

#[derive(Clone, Copy)]
enum AfterFn {
    /// x -> group(x, p)
    GroupRight(P),
    /// x -> interleave(x, p)
    InterleaveRight(P),
    /// x -> interleave(p, x)
    InterleaveLeft(P),
    /// x -> after(x, p)
    AfterRight(P),
}

pub struct Session<'a> {
    pub c: &'a Compiled,
    pub ar: Arena<'a>,
    open_memo: HashMap<(P, QName), P>,
    close_memo: HashMap<P, P>,
    close_lenient_memo: HashMap<P, P>,
    end_memo: HashMap<P, P>,
    /// (p, name, value-acceptance signature) -> derivative
    att_memo: HashMap<(P, QName, Vec<bool>), P>,
    /// (p, name) -> distinct content patterns of the attribute patterns whose name matches
    att_leaves_memo: HashMap<(P, QName), Vec<P>>,
    text_memo: HashMap<(P, Sym), P>,
}

impl<'a> Session<'a> {
    pub fn new(c: &'a Compiled) -> Session<'a> {
        Session {
            c,
            ar: Arena::overlay(&c.store),
            open_memo: HashMap::default(),
            close_memo: HashMap::default(),
            close_lenient_memo: HashMap::default(),
            end_memo: HashMap::default(),
            att_memo: HashMap::default(),
            att_leaves_memo: HashMap::default(),
            text_memo: HashMap::default(),
        }
    }

    pub fn nullable(&self, p: P) -> bool {
        self.ar.nullable(p)
    }

    fn apply_after(&mut self, f: AfterFn, p: P) -> P {
        match self.ar.pat(p) {
            Pat::After(p1, p2) => {
                let q = match f {
                    AfterFn::GroupRight(x) => self.ar.group(p2, x),
                    AfterFn::InterleaveRight(x) => self.ar.interleave(p2, x),
                    AfterFn::InterleaveLeft(x) => self.ar.interleave(x, p2),
                    AfterFn::AfterRight(x) => self.ar.after(p2, x),
                };
                self.ar.after(p1, q)
            }
            Pat::Choice(p1, p2) => {
                let a = self.apply_after(f, p1);
                let b = self.apply_after(f, p2);
                self.ar.choice(a, b)
            }
            _ => NOT_ALLOWED,
        }
    }

    pub fn start_tag_open(&mut self, p: P, qn: QName) -> P {
        if !self.ar.info(p).has_elem {
            return NOT_ALLOWED;
        }
        if let Some(&r) = self.open_memo.get(&(p, qn)) {
            return r;
        }
        let r = match self.ar.pat(p) {
            Pat::Choice(a, b) => {
                let x = self.start_tag_open(a, qn);
                let y = self.start_tag_open(b, qn);
                self.ar.choice(x, y)
            }
            Pat::Element(nc, idx) => {
                if nc_contains(&self.c.ncs, nc, qn.0, qn.1) {
                    let content = self.c.elements[idx as usize];
                    self.ar.after(content, EMPTY)
                } else {
                    NOT_ALLOWED
                }
            }
            Pat::Interleave(a, b) => {
                let x = self.start_tag_open(a, qn);
                let x = self.apply_after(AfterFn::InterleaveRight(b), x);
                let y = self.start_tag_open(b, qn);
                let y = self.apply_after(AfterFn::InterleaveLeft(a), y);
                self.ar.choice(x, y)
            }
            Pat::OneOrMore(a) => {
                let x = self.start_tag_open(a, qn);
                let rest = self.ar.optional(p);
                self.apply_after(AfterFn::GroupRight(rest), x)
            }
            Pat::Group(a, b) => {
                let x = self.start_tag_open(a, qn);
                let x = self.apply_after(AfterFn::GroupRight(b), x);
                if self.ar.nullable(a) {
                    let y = self.start_tag_open(b, qn);
                    self.ar.choice(x, y)
                } else {
                    x
                }
            }
            Pat::After(a, b) => {
                let x = self.start_tag_open(a, qn);
                self.apply_after(AfterFn::AfterRight(b), x)
            }
            _ => NOT_ALLOWED,
        };
        self.open_memo.insert((p, qn), r);
        r
    }

    /// Does the content pattern `p` accept the attribute value `s`?
    pub fn value_match(&mut self, p: P, s: &str) -> bool {
        (self.ar.nullable(p) && datatype::is_whitespace(s)) || {
            let d = self.text(p, s);
            self.ar.nullable(d)
        }
    }

    fn att_leaves(&mut self, p: P, qn: QName) -> Vec<P> {
        if let Some(v) = self.att_leaves_memo.get(&(p, qn)) {
            return v.clone();
        }
        let mut out = Vec::new();
        let mut seen = rustc_hash::FxHashSet::default();
        let mut stack = vec![p];
        let bit = super::pattern::name_bit(qn.1);
        while let Some(q) = stack.pop() {
            if self.ar.info(q).att_bloom & bit == 0 || !seen.insert(q) {
                continue;
            }
            match self.ar.pat(q) {
                Pat::Choice(a, b) | Pat::Group(a, b) | Pat::Interleave(a, b) | Pat::After(a, b) => {
                    stack.push(a);
                    stack.push(b);
                }
                Pat::OneOrMore(a) => stack.push(a),
                Pat::Attribute(nc, content)
                    if nc_contains(&self.c.ncs, nc, qn.0, qn.1) => {
                        out.push(content);
                    }
                _ => {}
            }
        }
        out.sort_unstable();
        out.dedup();
        self.att_leaves_memo.insert((p, qn), out.clone());
        out
    }

    /// Derivative with respect to one attribute `qn="s"`.
    pub fn att(&mut self, p: P, qn: QName, s: &str) -> P {
        if !self.ar.info(p).has_att {
            return NOT_ALLOWED;
        }
        let leaves = self.att_leaves(p, qn);
        if leaves.is_empty() {
            return NOT_ALLOWED;
        }
        let sig: Vec<bool> = leaves.iter().map(|&c| self.value_match(c, s)).collect();
        if let Some(&r) = self.att_memo.get(&(p, qn, sig.clone())) {
            return r;
        }
        let accept: HashMap<P, bool> = leaves.iter().copied().zip(sig.iter().copied()).collect();
        let mut local = HashMap::default();
        let r = self.att_rec(p, qn, &accept, &mut local);
        self.att_memo.insert((p, qn, sig), r);
        r
    }

    /// Error recovery: consume an attribute of this name whatever its value.
    pub fn att_any_value(&mut self, p: P, qn: QName) -> P {
        let leaves = self.att_leaves(p, qn);
        if leaves.is_empty() {
            return NOT_ALLOWED;
        }
        let accept: HashMap<P, bool> = leaves.iter().map(|&l| (l, true)).collect();
        let mut local = HashMap::default();
        self.att_rec(p, qn, &accept, &mut local)
    }

    fn att_rec(&mut self, p: P, qn: QName, accept: &HashMap<P, bool>, memo: &mut HashMap<P, P>) -> P {
        if self.ar.info(p).att_bloom & super::pattern::name_bit(qn.1) == 0 {
            return NOT_ALLOWED;
        }
        if let Some(&r) = memo.get(&p) {
            return r;
        }
        let r = match self.ar.pat(p) {
            Pat::After(a, b) => {
                let x = self.att_rec(a, qn, accept, memo);
                self.ar.after(x, b)
            }
            Pat::Choice(a, b) => {
                let x = self.att_rec(a, qn, accept, memo);
                let y = self.att_rec(b, qn, accept, memo);
                self.ar.choice(x, y)
            }
            Pat::Group(a, b) => {
                let x = self.att_rec(a, qn, accept, memo);
                let x = self.ar.group(x, b);
                let y = self.att_rec(b, qn, accept, memo);
                let y = self.ar.group(a, y);
                self.ar.choice(x, y)
            }
            Pat::Interleave(a, b) => {
                let x = self.att_rec(a, qn, accept, memo);
                let x = self.ar.interleave(x, b);
                let y = self.att_rec(b, qn, accept, memo);
                let y = self.ar.interleave(a, y);
                self.ar.choice(x, y)
            }
            Pat::OneOrMore(a) => {
                let x = self.att_rec(a, qn, accept, memo);
                let rest = self.ar.optional(p);
                self.ar.group(x, rest)
            }
            Pat::Attribute(nc, content) => {
                if nc_contains(&self.c.ncs, nc, qn.0, qn.1) && accept.get(&content).copied().unwrap_or(false) {
                    EMPTY
                } else {
                    NOT_ALLOWED
                }
            }
            _ => NOT_ALLOWED,
        };
        memo.insert(p, r);
        r
    }

    /// After the last attribute: remaining attribute patterns become notAllowed.
    pub fn start_tag_close(&mut self, p: P) -> P {
        self.close(p, false)
    }

    /// Error recovery: remaining (missing) attribute patterns count as satisfied.
    pub fn start_tag_close_lenient(&mut self, p: P) -> P {
        self.close(p, true)
    }

    fn close(&mut self, p: P, lenient: bool) -> P {
        let info = self.ar.info(p);
        if !info.has_att {
            return p;
        }
        if info.only_atts {
            // only attributes left: they all become notAllowed (or, lenient, empty)
            return if info.nullable || lenient { EMPTY } else { NOT_ALLOWED };
        }
        let memo = if lenient { &self.close_lenient_memo } else { &self.close_memo };
        if let Some(&r) = memo.get(&p) {
            return r;
        }
        let r = match self.ar.pat(p) {
            Pat::After(a, b) => {
                let x = self.close(a, lenient);
                self.ar.after(x, b)
            }
            Pat::Choice(a, b) => {
                let x = self.close(a, lenient);
                let y = self.close(b, lenient);
                self.ar.choice(x, y)
            }
            Pat::Group(a, b) => {
                let x = self.close(a, lenient);
                let y = self.close(b, lenient);
                self.ar.group(x, y)
            }
            Pat::Interleave(a, b) => {
                let x = self.close(a, lenient);
                let y = self.close(b, lenient);
                self.ar.interleave(x, y)
            }
            Pat::OneOrMore(a) => {
                let x = self.close(a, lenient);
                self.ar.one_or_more(x)
            }
            Pat::Attribute(..) => {
                if lenient {
                    EMPTY
                } else {
                    NOT_ALLOWED
                }
            }
            _ => p,
        };
        if lenient {
            self.close_lenient_memo.insert(p, r);
        } else {
            self.close_memo.insert(p, r);
        }
        r
    }

    pub fn end_tag(&mut self, p: P) -> P {
        if let Some(&r) = self.end_memo.get(&p) {
            return r;
        }
        let r = match self.ar.pat(p) {
            Pat::Choice(a, b) => {
                let x = self.end_tag(a);
                let y = self.end_tag(b);
                self.ar.choice(x, y)
            }
            Pat::After(a, b) => {
                if self.ar.nullable(a) {
                    b
                } else {
                    NOT_ALLOWED
                }
            }
            _ => NOT_ALLOWED,
        };
        self.end_memo.insert(p, r);
        r
    }

    /// Error recovery: what may follow the current element in its parent, whatever its content.
    pub fn continuations(&mut self, p: P) -> P {
        match self.ar.pat(p) {
            Pat::Choice(a, b) => {
                let x = self.continuations(a);
                let y = self.continuations(b);
                self.ar.choice(x, y)
            }
            Pat::After(_, b) => b,
            _ => NOT_ALLOWED,
        }
    }

    /// Derivative with respect to a text node.
    pub fn text(&mut self, p: P, s: &str) -> P {
        let key = (p, self.ar.sym(s));
        if let Some(&r) = self.text_memo.get(&key) {
            return r;
        }
        let r = self.text_rec(p, s);
        self.text_memo.insert(key, r);
        r
    }

    fn text_rec(&mut self, p: P, s: &str) -> P {
        match self.ar.pat(p) {
            Pat::Choice(a, b) => {
                let x = self.text(a, s);
                let y = self.text(b, s);
                self.ar.choice(x, y)
            }
            Pat::Interleave(a, b) => {
                let x = self.text(a, s);
                let x = self.ar.interleave(x, b);
                let y = self.text(b, s);
                let y = self.ar.interleave(a, y);
                self.ar.choice(x, y)
            }
            Pat::Group(a, b) => {
                let x = self.text(a, s);
                let x = self.ar.group(x, b);
                if self.ar.nullable(a) {
                    let y = self.text(b, s);
                    self.ar.choice(x, y)
                } else {
                    x
                }
            }
            Pat::After(a, b) => {
                let x = self.text(a, s);
                self.ar.after(x, b)
            }
            Pat::OneOrMore(a) => {
                let x = self.text(a, s);
                let rest = self.ar.optional(p);
                self.ar.group(x, rest)
            }
            Pat::Text => TEXT,
            Pat::Value(dt, v) => {
                let lit = self.ar.sym_str(v).to_string();
                if datatype::equal(&self.c.dts[dt as usize], &lit, s) {
                    EMPTY
                } else {
                    NOT_ALLOWED
                }
            }
            Pat::Data(dt) => {
                if datatype::allows(&self.c.dts[dt as usize], s) {
                    EMPTY
                } else {
                    NOT_ALLOWED
                }
            }
            Pat::DataExcept(dt, e) => {
                if datatype::allows(&self.c.dts[dt as usize], s) && !self.value_match_strict(e, s) {
                    EMPTY
                } else {
                    NOT_ALLOWED
                }
            }
            Pat::List(inner) => {
                let mut q = inner;
                for w in s.split(datatype::is_xml_ws).filter(|w| !w.is_empty()) {
                    q = self.text(q, w);
                    if q == NOT_ALLOWED {
                        break;
                    }
                }
                if self.ar.nullable(q) {
                    EMPTY
                } else {
                    NOT_ALLOWED
                }
            }
            _ => NOT_ALLOWED,
        }
    }

    fn value_match_strict(&mut self, p: P, s: &str) -> bool {
        let d = self.text(p, s);
        self.ar.nullable(d)
    }
}
