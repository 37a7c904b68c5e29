//! Reading a RELAX NG schema (XML syntax) and compiling it into interned patterns.
//!
//! Supported: grammar/start/define (with `combine`, inside `div` too), ref, element, attribute,
//! group, interleave, choice, optional, zeroOrMore, oneOrMore, mixed, list, empty, text,
//! notAllowed, value, data (with param and except), name classes (name, anyName, nsName,
//! choice, except), the `ns` and `datatypeLibrary` inheritance. Not supported (reported as a
//! schema error, never silently ignored): include, externalRef, nested grammar / parentRef.

use std::collections::{HashMap, HashSet};

use super::datatype;
use super::pattern::{Arena, Datatype, DtKind, NameClass, Pat, Store, Sym, P, EMPTY, NOT_ALLOWED, TEXT};

pub const RNG_NS: &str = "http://relaxng.org/ns/structure/1.0";

/// A compiled schema.
#[derive(Debug)]
pub struct Compiled {
    pub store: Store,
    pub ncs: Vec<NameClass>,
    pub dts: Vec<Datatype>,
    /// content pattern of each element pattern, by element index
    pub elements: Vec<P>,
    pub start: P,
    /// (element ns, element local, attribute ns, attribute local) -> ID / IDREF / IDREFS
    pub id_attrs: HashMap<(Sym, Sym, Sym, Sym), DtKind>,
}

// ---------------------------------------------------------------- a tiny DOM for the schema

#[derive(Debug)]
struct Node {
    ns: String,
    local: String,
    /// unprefixed attributes only (RELAX NG attributes have no namespace)
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
    text: String,
    line: usize,
}

impl Node {
    fn attr(&self, n: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str())
    }
    fn is_rng(&self) -> bool {
        self.ns == RNG_NS
    }
    fn rng_children(&self) -> impl Iterator<Item = &Node> {
        self.children.iter().filter(|c| c.is_rng())
    }
}

fn parse_dom(src: &str) -> Result<Node, String> {
    use quick_xml::events::Event;
    let mut rd = quick_xml::Reader::from_str(src);
    rd.config_mut().check_end_names = true;
    let lines = super::instance::Lines::new(src);
    let line_of = |pos: usize| lines.pos(pos).0;
    // open nodes, and the namespace scope (prefix, uri) with its length before each open node
    let mut stack: Vec<(Node, usize)> = Vec::new();
    let mut scope: Vec<(String, String)> = Vec::new();
    let mut root: Option<Node> = None;
    loop {
        let pos = rd.buffer_position() as usize;
        let ev = rd.read_event().map_err(|e| format!("schema is not well-formed XML (line {}): {e}", line_of(pos)))?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let is_empty = matches!(ev, Event::Empty(_));
                let mark = scope.len();
                let mut plain = Vec::new();
                for a in e.attributes() {
                    let a = a.map_err(|err| format!("schema attribute error (line {}): {err}", line_of(pos)))?;
                    let key = a.key.as_ref();
                    let is_ns = key == b"xmlns" || key.starts_with(b"xmlns:");
                    if !is_ns && key.contains(&b':') {
                        continue; // foreign (annotation) attribute
                    }
                    let key = String::from_utf8_lossy(key).into_owned();
                    let val = a
                        .unescape_value()
                        .map_err(|err| format!("schema attribute error (line {}): {err}", line_of(pos)))?
                        .into_owned();
                    if key == "xmlns" {
                        scope.push((String::new(), val));
                    } else if let Some(p) = key.strip_prefix("xmlns:") {
                        scope.push((p.to_string(), val));
                    } else {
                        plain.push((key, val));
                    }
                }
                let qname = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                let (prefix, local) = match qname.split_once(':') {
                    Some((p, l)) => (p.to_string(), l.to_string()),
                    None => (String::new(), qname.clone()),
                };
                let ns = scope.iter().rev().find(|(p, _)| *p == prefix).map(|(_, u)| u.clone()).unwrap_or_default();
                let node = Node { ns, local, attrs: plain, children: vec![], text: String::new(), line: line_of(pos) };
                if is_empty {
                    scope.truncate(mark);
                    match stack.last_mut() {
                        Some((parent, _)) => parent.children.push(node),
                        None => root = Some(node),
                    }
                } else {
                    stack.push((node, mark));
                }
            }
            Event::End(_) => {
                let (node, mark) = stack.pop().ok_or("schema: unbalanced end tag")?;
                scope.truncate(mark);
                match stack.last_mut() {
                    Some((parent, _)) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Text(t) => {
                if let Some((n, _)) = stack.last_mut() {
                    let s = t.unescape().map_err(|e| format!("schema text error (line {}): {e}", line_of(pos)))?;
                    n.text.push_str(&s);
                }
            }
            Event::CData(t) => {
                if let Some((n, _)) = stack.last_mut() {
                    n.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    root.ok_or_else(|| "schema has no root element".to_string())
}

// ---------------------------------------------------------------- compiler

#[derive(Clone)]
struct Env {
    ns: String,
    dtlib: String,
}

impl Env {
    fn enter(&self, n: &Node) -> Env {
        Env {
            ns: n.attr("ns").map(str::to_string).unwrap_or_else(|| self.ns.clone()),
            dtlib: n.attr("datatypeLibrary").map(str::to_string).unwrap_or_else(|| self.dtlib.clone()),
        }
    }
}

struct Compiler<'s> {
    ar: Arena<'static>,
    ncs: Vec<NameClass>,
    dts: Vec<Datatype>,
    elements: Vec<P>,
    defines: HashMap<String, Vec<(&'s Node, Env)>>,
    define_cache: HashMap<String, P>,
    in_progress: HashSet<String>,
    queue: Vec<(u32, &'s Node, Env)>,
}

fn err(n: &Node, msg: impl std::fmt::Display) -> String {
    format!("schema line {}: <{}>: {msg}", n.line, n.local)
}

pub fn compile(src: &str) -> Result<Compiled, String> {
    let root = parse_dom(src)?;
    if !root.is_rng() {
        return Err(format!("schema root <{}> is not in the RELAX NG namespace {RNG_NS}", root.local));
    }
    let env0 = Env { ns: String::new(), dtlib: String::new() }.enter(&root);
    let mut c = Compiler {
        ar: Arena::new_root(),
        ncs: vec![],
        dts: vec![],
        elements: vec![],
        defines: HashMap::new(),
        define_cache: HashMap::new(),
        in_progress: HashSet::new(),
        queue: vec![],
    };
    let start = if root.local == "grammar" {
        let mut starts = Vec::new();
        c.collect_grammar(&root, &env0, &mut starts)?;
        if starts.is_empty() {
            return Err("schema grammar has no <start>".into());
        }
        let mut acc: Option<P> = None;
        let mut interleave = false;
        for (n, env) in &starts {
            if n.attr("combine") == Some("interleave") {
                interleave = true;
            }
            let p = c.group_of(n.rng_children(), env, n)?;
            acc = Some(match acc {
                None => p,
                Some(a) if interleave => c.ar.interleave(a, p),
                Some(a) => c.ar.choice(a, p),
            });
        }
        acc.unwrap_or(NOT_ALLOWED)
    } else {
        c.pattern(&root, &env0)?
    };
    while let Some((idx, node, env)) = c.queue.pop() {
        let mut kids = node.rng_children();
        if node.attr("name").is_none() {
            kids.next(); // the name class
        }
        let content = c.group_of(kids, &env, node)?;
        c.elements[idx as usize] = content;
    }
    let mut compiled = Compiled {
        store: c.ar.into_store(),
        ncs: c.ncs,
        dts: c.dts,
        elements: c.elements,
        start,
        id_attrs: HashMap::new(),
    };
    compiled.id_attrs = id_attributes(&compiled);
    Ok(compiled)
}

impl<'s> Compiler<'s> {
    fn collect_grammar(&mut self, g: &'s Node, env: &Env, starts: &mut Vec<(&'s Node, Env)>) -> Result<(), String> {
        for n in g.rng_children() {
            let e = env.enter(n);
            match n.local.as_str() {
                "start" => starts.push((n, e)),
                "define" => {
                    let name = n.attr("name").ok_or_else(|| err(n, "define without name"))?.trim().to_string();
                    self.defines.entry(name).or_default().push((n, e));
                }
                "div" => self.collect_grammar(n, &e, starts)?,
                "include" => return Err(err(n, "<include> is not supported")),
                other => return Err(err(n, format!("unexpected <{other}> in grammar"))),
            }
        }
        Ok(())
    }

    fn group_of(&mut self, kids: impl Iterator<Item = &'s Node>, env: &Env, parent: &Node) -> Result<P, String> {
        let mut acc: Option<P> = None;
        for k in kids {
            let p = self.pattern(k, env)?;
            acc = Some(match acc {
                None => p,
                Some(a) => self.ar.group(a, p),
            });
        }
        acc.ok_or_else(|| err(parent, "expected a pattern inside"))
    }

    fn fold(&mut self, n: &'s Node, env: &Env, op: fn(&mut Arena<'static>, P, P) -> P) -> Result<P, String> {
        let mut acc: Option<P> = None;
        for k in n.rng_children() {
            let p = self.pattern(k, env)?;
            acc = Some(match acc {
                None => p,
                Some(a) => op(&mut self.ar, a, p),
            });
        }
        acc.ok_or_else(|| err(n, "expected a pattern inside"))
    }

    fn pattern(&mut self, n: &'s Node, env: &Env) -> Result<P, String> {
        let env = env.enter(n);
        let env = &env;
        Ok(match n.local.as_str() {
            "element" => {
                let nc = match n.attr("name") {
                    Some(name) => self.qname_nc(name, env, true, n)?,
                    None => {
                        let first = n.rng_children().next().ok_or_else(|| err(n, "element without name"))?;
                        self.name_class(first, env, true)?
                    }
                };
                let idx = self.elements.len() as u32;
                self.elements.push(NOT_ALLOWED);
                self.queue.push((idx, n, env.clone()));
                self.ar.element(nc, idx)
            }
            "attribute" => {
                let (nc, rest): (u32, Vec<&Node>) = match n.attr("name") {
                    Some(name) => (self.qname_nc(name, env, n.attr("ns").is_some(), n)?, n.rng_children().collect()),
                    None => {
                        let mut it = n.rng_children();
                        let first = it.next().ok_or_else(|| err(n, "attribute without name"))?;
                        (self.name_class(first, env, false)?, it.collect())
                    }
                };
                let content = if rest.is_empty() { TEXT } else { self.group_of(rest.into_iter(), env, n)? };
                self.ar.attribute(nc, content)
            }
            "group" => self.fold(n, env, |a, x, y| a.group(x, y))?,
            "interleave" => self.fold(n, env, |a, x, y| a.interleave(x, y))?,
            "choice" => self.fold(n, env, |a, x, y| a.choice(x, y))?,
            "optional" => {
                let p = self.group_of(n.rng_children(), env, n)?;
                self.ar.optional(p)
            }
            "zeroOrMore" => {
                let p = self.group_of(n.rng_children(), env, n)?;
                self.ar.zero_or_more(p)
            }
            "oneOrMore" => {
                let p = self.group_of(n.rng_children(), env, n)?;
                self.ar.one_or_more(p)
            }
            "mixed" => {
                let p = self.group_of(n.rng_children(), env, n)?;
                self.ar.interleave(p, TEXT)
            }
            "list" => {
                let p = self.group_of(n.rng_children(), env, n)?;
                self.ar.list(p)
            }
            "empty" => EMPTY,
            "text" => TEXT,
            "notAllowed" => NOT_ALLOWED,
            "ref" => {
                let name = n.attr("name").ok_or_else(|| err(n, "ref without name"))?.trim().to_string();
                self.define(&name, n)?
            }
            "value" => {
                let (dt, _) = self.datatype(n, env, true)?;
                let v = self.ar.sym(&n.text);
                self.ar.value(dt, v)
            }
            "data" => {
                let (dt, except) = self.datatype(n, env, false)?;
                match except {
                    Some(e) => self.ar.data_except(dt, e),
                    None => self.ar.data(dt),
                }
            }
            "externalRef" | "parentRef" | "grammar" | "include" => {
                return Err(err(n, "is not supported by this validator"))
            }
            other => return Err(err(n, format!("unknown pattern <{other}>"))),
        })
    }

    fn define(&mut self, name: &str, at: &Node) -> Result<P, String> {
        if let Some(&p) = self.define_cache.get(name) {
            return Ok(p);
        }
        if !self.in_progress.insert(name.to_string()) {
            return Err(err(at, format!("ref {name:?} is recursive without passing through an element")));
        }
        let defs = self.defines.get(name).cloned().ok_or_else(|| err(at, format!("ref to undefined {name:?}")))?;
        let interleave = defs.iter().any(|(d, _)| d.attr("combine") == Some("interleave"));
        let mut acc: Option<P> = None;
        for (d, env) in defs {
            let p = self.group_of(d.rng_children(), &env, d)?;
            acc = Some(match acc {
                None => p,
                Some(a) if interleave => self.ar.interleave(a, p),
                Some(a) => self.ar.choice(a, p),
            });
        }
        let p = acc.unwrap_or(NOT_ALLOWED);
        self.in_progress.remove(name);
        self.define_cache.insert(name.to_string(), p);
        Ok(p)
    }

    fn push_nc(&mut self, nc: NameClass) -> u32 {
        if let Some(i) = self.ncs.iter().position(|x| *x == nc) {
            return i as u32;
        }
        let bloom = match &nc {
            NameClass::Name(_, l) => super::pattern::name_bit(*l),
            NameClass::Choice(a, b) => {
                let g = |i: &u32| self.ar.nc_bloom.get(*i as usize).copied().unwrap_or(u128::MAX);
                g(a) | g(b)
            }
            _ => u128::MAX,
        };
        self.ncs.push(nc);
        self.ar.nc_bloom.push(bloom);
        (self.ncs.len() - 1) as u32
    }

    /// A `name="..."` attribute: elements use the inherited ns, attributes "" unless `ns` is set.
    fn qname_nc(&mut self, name: &str, env: &Env, use_ns: bool, n: &Node) -> Result<u32, String> {
        let name = name.trim();
        if name.contains(':') {
            return Err(err(n, format!("prefixed name {name:?} is not supported")));
        }
        let ns = if use_ns { self.ar.sym(&env.ns) } else { self.ar.sym("") };
        let l = self.ar.sym(name);
        Ok(self.push_nc(NameClass::Name(ns, l)))
    }

    fn name_class(&mut self, n: &Node, env: &Env, is_element: bool) -> Result<u32, String> {
        let env = env.enter(n);
        let except = |c: &mut Self, n: &Node| -> Result<Option<u32>, String> {
            match n.rng_children().find(|k| k.local == "except") {
                Some(ex) => {
                    let mut acc: Option<u32> = None;
                    for k in ex.rng_children() {
                        let x = c.name_class(k, &env, is_element)?;
                        acc = Some(match acc {
                            None => x,
                            Some(a) => c.push_nc(NameClass::Choice(a, x)),
                        });
                    }
                    Ok(acc)
                }
                None => Ok(None),
            }
        };
        Ok(match n.local.as_str() {
            "name" => {
                let local = n.text.trim();
                let ns_str = match n.attr("ns") {
                    Some(x) => x.to_string(),
                    None if is_element => env.ns.clone(),
                    None => String::new(),
                };
                if local.contains(':') {
                    return Err(err(n, "prefixed names are not supported"));
                }
                let ns = self.ar.sym(&ns_str);
                let l = self.ar.sym(local);
                self.push_nc(NameClass::Name(ns, l))
            }
            "anyName" => {
                let ex = except(self, n)?;
                self.push_nc(NameClass::AnyName(ex))
            }
            "nsName" => {
                let ex = except(self, n)?;
                let ns = self.ar.sym(&env.ns);
                self.push_nc(NameClass::NsName(ns, ex))
            }
            "choice" => {
                let mut acc: Option<u32> = None;
                for k in n.rng_children() {
                    let x = self.name_class(k, &env, is_element)?;
                    acc = Some(match acc {
                        None => x,
                        Some(a) => self.push_nc(NameClass::Choice(a, x)),
                    });
                }
                acc.ok_or_else(|| err(n, "empty name class choice"))?
            }
            other => return Err(err(n, format!("<{other}> is not a name class"))),
        })
    }

    /// Datatype of a `<data>` or `<value>` node (+ compiled `<except>` for data).
    fn datatype(&mut self, n: &'s Node, env: &Env, is_value: bool) -> Result<(u32, Option<P>), String> {
        let (lib, ty) = match n.attr("type") {
            Some(t) => (env.dtlib.clone(), t.trim().to_string()),
            None if is_value => (String::new(), "token".to_string()),
            None => return Err(err(n, "data without type")),
        };
        let kind = datatype::lookup(&lib, &ty)
            .ok_or_else(|| err(n, format!("unsupported datatype {ty:?} of library {lib:?}")))?;
        let mut facets = Vec::new();
        let mut except = None;
        for k in n.rng_children() {
            match k.local.as_str() {
                "param" if !is_value => {
                    let name = k.attr("name").ok_or_else(|| err(k, "param without name"))?;
                    facets.push(datatype::facet(name.trim(), &k.text).map_err(|e| err(k, e))?);
                }
                "except" if !is_value => {
                    let e = self.fold(k, env, |a, x, y| a.choice(x, y))?;
                    except = Some(e);
                }
                other => return Err(err(k, format!("unexpected <{other}> inside <{}>", n.local))),
            }
        }
        let dt = Datatype { kind, facets };
        let idx = match self.dts.iter().position(|d| *d == dt) {
            Some(i) => i,
            None => {
                self.dts.push(dt);
                self.dts.len() - 1
            }
        };
        Ok((idx as u32, except))
    }
}

/// Which attributes (by element and attribute name) have an ID-typed datatype.
fn id_attributes(c: &Compiled) -> HashMap<(Sym, Sym, Sym, Sym), DtKind> {
    let ar = Arena::overlay(&c.store);
    let mut out = HashMap::new();
    // visit every element pattern in the store
    for p in 0..c.store.pats.len() as P {
        if let Pat::Element(nc, idx) = ar.pat(p) {
            let Some(NameClass::Name(ens, el)) = c.ncs.get(nc as usize).cloned() else { continue };
            let content = c.elements[idx as usize];
            let mut seen = HashSet::new();
            let mut stack = vec![content];
            while let Some(q) = stack.pop() {
                if !seen.insert(q) {
                    continue;
                }
                match ar.pat(q) {
                    Pat::Choice(a, b) | Pat::Group(a, b) | Pat::Interleave(a, b) | Pat::After(a, b) => {
                        stack.push(a);
                        stack.push(b);
                    }
                    Pat::OneOrMore(a) => stack.push(a),
                    Pat::Attribute(anc, acontent) => {
                        if let Some(NameClass::Name(ans, al)) = c.ncs.get(anc as usize) {
                            if let Pat::Data(dt) | Pat::DataExcept(dt, _) = ar.pat(acontent) {
                                let k = c.dts[dt as usize].kind;
                                if matches!(k, DtKind::Id | DtKind::IdRef | DtKind::IdRefs) {
                                    out.insert((ens, el, *ans, *al), k);
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    out
}
