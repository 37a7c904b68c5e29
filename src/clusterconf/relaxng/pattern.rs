//! Interned RELAX NG patterns (hash-consed, in an arena) and name classes.
//!
//! A compiled [`Store`] is immutable and shared; each validation run works in an [`Arena`] that
//! overlays its own new patterns (derivatives) on top of the compiled store, so the schema can be
//! shared between threads while every run still memoises freely.

use rustc_hash::FxHashMap as HashMap;

/// A pattern id (index into the store + overlay).
pub type P = u32;
/// An interned string (names, namespace URIs, literal values).
pub type Sym = u32;

pub const EMPTY: P = 0;
pub const NOT_ALLOWED: P = 1;
pub const TEXT: P = 2;

/// Patterns after simplification, as in James Clark's derivative algorithm.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Pat {
    Empty,
    NotAllowed,
    Text,
    Choice(P, P),
    Interleave(P, P),
    Group(P, P),
    OneOrMore(P),
    List(P),
    /// datatype index
    Data(u32),
    /// datatype index, excepted pattern
    DataExcept(u32, P),
    /// datatype index, literal value
    Value(u32, Sym),
    /// name class index, content
    Attribute(u32, P),
    /// name class index, element index (content in `Store::elements`)
    Element(u32, u32),
    After(P, P),
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Info {
    pub nullable: bool,
    /// contains an attribute pattern outside any element
    pub has_att: bool,
    /// contains an element pattern (at this level)
    pub has_elem: bool,
    /// made only of attributes, empty and combinators (no text, data, element, after)
    pub only_atts: bool,
    /// Bloom filter of the attribute local names it contains (see [`name_bit`])
    pub att_bloom: u128,
}

/// The Bloom-filter bit of a local-name symbol.
#[inline]
pub fn name_bit(local: Sym) -> u128 {
    1u128 << ((local as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 57)
}

/// Name classes (not hash-consed: the schema has few of them and runs never create any).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameClass {
    Name(Sym, Sym),
    AnyName(Option<u32>),
    NsName(Sym, Option<u32>),
    Choice(u32, u32),
}

/// XSD or built-in datatypes we implement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DtKind {
    /// built-in `string` (no whitespace processing)
    String,
    /// built-in `token` and xsd:token (whitespace collapsed)
    Token,
    NormalizedString,
    Integer,
    PositiveInteger,
    NonNegativeInteger,
    NegativeInteger,
    NonPositiveInteger,
    Long,
    Int,
    Short,
    Byte,
    UnsignedLong,
    UnsignedInt,
    UnsignedShort,
    UnsignedByte,
    Decimal,
    Boolean,
    NcName,
    Name,
    NmToken,
    NmTokens,
    Id,
    IdRef,
    IdRefs,
    AnyUri,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Facet {
    Length(usize),
    MinLength(usize),
    MaxLength(usize),
    MinInclusive(i128),
    MaxInclusive(i128),
    MinExclusive(i128),
    MaxExclusive(i128),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datatype {
    pub kind: DtKind,
    pub facets: Vec<Facet>,
}

/// Hash-consed pattern storage plus string symbols.
#[derive(Default, Debug)]
pub struct Store {
    pub pats: Vec<Pat>,
    pub info: Vec<Info>,
    pub map: HashMap<Pat, P>,
    pub syms: Vec<Box<str>>,
    pub sym_map: HashMap<Box<str>, Sym>,
}

/// A store overlaid on an optional immutable base store.
pub struct Arena<'a> {
    pub base: Option<&'a Store>,
    pub own: Store,
    pub off: u32,
    pub soff: u32,
    /// Bloom bits of each name class (compile time only; attributes are never created later)
    pub nc_bloom: Vec<u128>,
}

impl<'a> Arena<'a> {
    /// A fresh arena with the three constant patterns (used while compiling a schema).
    pub fn new_root() -> Arena<'static> {
        let mut a = Arena { base: None, own: Store::default(), off: 0, soff: 0, nc_bloom: Vec::new() };
        a.intern(Pat::Empty);
        a.intern(Pat::NotAllowed);
        a.intern(Pat::Text);
        a
    }

    /// An overlay on a compiled store.
    pub fn overlay(base: &'a Store) -> Arena<'a> {
        Arena {
            base: Some(base),
            own: Store::default(),
            off: base.pats.len() as u32,
            soff: base.syms.len() as u32,
            nc_bloom: Vec::new(),
        }
    }

    pub fn into_store(self) -> Store {
        self.own
    }

    #[inline]
    pub fn pat(&self, p: P) -> Pat {
        if p < self.off {
            match self.base {
                Some(b) => b.pats[p as usize],
                None => Pat::NotAllowed,
            }
        } else {
            self.own.pats[(p - self.off) as usize]
        }
    }

    #[inline]
    pub fn info(&self, p: P) -> Info {
        if p < self.off {
            match self.base {
                Some(b) => b.info[p as usize],
                None => Info::default(),
            }
        } else {
            self.own.info[(p - self.off) as usize]
        }
    }

    #[inline]
    pub fn nullable(&self, p: P) -> bool {
        self.info(p).nullable
    }

    pub fn sym(&mut self, s: &str) -> Sym {
        if let Some(b) = self.base {
            if let Some(&id) = b.sym_map.get(s) {
                return id;
            }
        }
        if let Some(&id) = self.own.sym_map.get(s) {
            return id;
        }
        let id = self.soff + self.own.syms.len() as u32;
        self.own.syms.push(s.into());
        self.own.sym_map.insert(s.into(), id);
        id
    }

    pub fn sym_str(&self, s: Sym) -> &str {
        if s < self.soff {
            match self.base {
                Some(b) => &b.syms[s as usize],
                None => "",
            }
        } else {
            &self.own.syms[(s - self.soff) as usize]
        }
    }

    fn intern(&mut self, pat: Pat) -> P {
        if let Some(b) = self.base {
            if let Some(&id) = b.map.get(&pat) {
                return id;
            }
        }
        if let Some(&id) = self.own.map.get(&pat) {
            return id;
        }
        let info = self.compute_info(&pat);
        let id = self.off + self.own.pats.len() as u32;
        self.own.pats.push(pat);
        self.own.info.push(info);
        self.own.map.insert(pat, id);
        id
    }

    fn compute_info(&self, pat: &Pat) -> Info {
        let i = |p: P| self.info(p);
        let none = Info::default();
        match *pat {
            Pat::Empty => Info { nullable: true, only_atts: true, ..none },
            Pat::NotAllowed => Info { only_atts: true, ..none },
            Pat::Text => Info { nullable: true, ..none },
            Pat::Data(_) | Pat::DataExcept(..) | Pat::Value(..) | Pat::List(_) => none,
            Pat::Choice(a, b) => {
                let (a, b) = (i(a), i(b));
                Info {
                    nullable: a.nullable || b.nullable,
                    has_att: a.has_att || b.has_att,
                    has_elem: a.has_elem || b.has_elem,
                    only_atts: a.only_atts && b.only_atts,
                    att_bloom: a.att_bloom | b.att_bloom,
                }
            }
            Pat::Group(a, b) | Pat::Interleave(a, b) => {
                let (a, b) = (i(a), i(b));
                Info {
                    nullable: a.nullable && b.nullable,
                    has_att: a.has_att || b.has_att,
                    has_elem: a.has_elem || b.has_elem,
                    only_atts: a.only_atts && b.only_atts,
                    att_bloom: a.att_bloom | b.att_bloom,
                }
            }
            Pat::After(a, b) => {
                let (a, b) = (i(a), i(b));
                Info {
                    nullable: false,
                    has_att: a.has_att || b.has_att,
                    has_elem: a.has_elem || b.has_elem,
                    only_atts: false,
                    att_bloom: a.att_bloom | b.att_bloom,
                }
            }
            Pat::OneOrMore(a) => i(a),
            Pat::Attribute(nc, _) => Info {
                nullable: false,
                has_att: true,
                has_elem: false,
                only_atts: true,
                att_bloom: self.nc_bloom.get(nc as usize).copied().unwrap_or(u128::MAX),
            },
            Pat::Element(..) => Info { has_elem: true, ..none },
        }
    }

    // ----- smart constructors (normalising) -----

    pub fn choice(&mut self, a: P, b: P) -> P {
        if a == NOT_ALLOWED {
            return b;
        }
        if b == NOT_ALLOWED || a == b {
            return a;
        }
        let mut leaves = Vec::new();
        self.choice_leaves(a, &mut leaves);
        self.choice_leaves(b, &mut leaves);
        leaves.sort_unstable();
        leaves.dedup();
        let mut it = leaves.into_iter().rev();
        let mut acc = match it.next() {
            Some(x) => x,
            None => return NOT_ALLOWED,
        };
        for l in it {
            acc = self.intern(Pat::Choice(l, acc));
        }
        acc
    }

    fn choice_leaves(&self, p: P, out: &mut Vec<P>) {
        let mut cur = p;
        loop {
            match self.pat(cur) {
                Pat::Choice(a, b) => {
                    self.choice_leaves(a, out);
                    cur = b;
                }
                Pat::NotAllowed => return,
                _ => {
                    out.push(cur);
                    return;
                }
            }
        }
    }

    pub fn group(&mut self, a: P, b: P) -> P {
        if a == NOT_ALLOWED || b == NOT_ALLOWED {
            return NOT_ALLOWED;
        }
        if a == EMPTY {
            return b;
        }
        if b == EMPTY {
            return a;
        }
        self.intern(Pat::Group(a, b))
    }

    pub fn interleave(&mut self, a: P, b: P) -> P {
        if a == NOT_ALLOWED || b == NOT_ALLOWED {
            return NOT_ALLOWED;
        }
        if a == EMPTY {
            return b;
        }
        if b == EMPTY {
            return a;
        }
        // canonical operand order: interleave is commutative
        let (a, b) = if a <= b { (a, b) } else { (b, a) };
        self.intern(Pat::Interleave(a, b))
    }

    pub fn after(&mut self, a: P, b: P) -> P {
        if a == NOT_ALLOWED || b == NOT_ALLOWED {
            return NOT_ALLOWED;
        }
        self.intern(Pat::After(a, b))
    }

    pub fn one_or_more(&mut self, a: P) -> P {
        if a == NOT_ALLOWED || a == EMPTY {
            return a;
        }
        self.intern(Pat::OneOrMore(a))
    }

    pub fn list(&mut self, a: P) -> P {
        if a == NOT_ALLOWED {
            return a;
        }
        self.intern(Pat::List(a))
    }

    pub fn data(&mut self, dt: u32) -> P {
        self.intern(Pat::Data(dt))
    }

    pub fn data_except(&mut self, dt: u32, e: P) -> P {
        if e == NOT_ALLOWED {
            return self.data(dt);
        }
        self.intern(Pat::DataExcept(dt, e))
    }

    pub fn value(&mut self, dt: u32, v: Sym) -> P {
        self.intern(Pat::Value(dt, v))
    }

    pub fn attribute(&mut self, nc: u32, content: P) -> P {
        if content == NOT_ALLOWED {
            return NOT_ALLOWED;
        }
        self.intern(Pat::Attribute(nc, content))
    }

    pub fn element(&mut self, nc: u32, idx: u32) -> P {
        self.intern(Pat::Element(nc, idx))
    }

    /// `optional p` = `choice p empty`
    pub fn optional(&mut self, a: P) -> P {
        self.choice(a, EMPTY)
    }

    /// `zeroOrMore p` = `choice (oneOrMore p) empty`
    pub fn zero_or_more(&mut self, a: P) -> P {
        let o = self.one_or_more(a);
        self.choice(o, EMPTY)
    }
}

/// Does the name class contain the qualified name (ns, local)?
pub fn nc_contains(ncs: &[NameClass], nc: u32, ns: Sym, local: Sym) -> bool {
    match ncs.get(nc as usize) {
        Some(NameClass::Name(n, l)) => *n == ns && *l == local,
        Some(NameClass::AnyName(ex)) => match ex {
            Some(e) => !nc_contains(ncs, *e, ns, local),
            None => true,
        },
        Some(NameClass::NsName(n, ex)) => {
            *n == ns
                && match ex {
                    Some(e) => !nc_contains(ncs, *e, ns, local),
                    None => true,
                }
        }
        Some(NameClass::Choice(a, b)) => nc_contains(ncs, *a, ns, local) || nc_contains(ncs, *b, ns, local),
        None => false,
    }
}
