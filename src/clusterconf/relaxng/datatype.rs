//! The datatypes a RELAX NG schema can name: the built-in library (`string`, `token`) and the
//! part of XML Schema datatypes that cluster schemas use (integers, ID/IDREF, names, ...).

use super::pattern::{Datatype, DtKind, Facet};

/// Map an (library, type name) pair to a kind. `None` = unsupported (a schema error).
pub fn lookup(library: &str, name: &str) -> Option<DtKind> {
    if library.is_empty() {
        return match name {
            "string" => Some(DtKind::String),
            "token" => Some(DtKind::Token),
            _ => None,
        };
    }
    if library != "http://www.w3.org/2001/XMLSchema-datatypes" {
        return None;
    }
    Some(match name {
        "string" => DtKind::String,
        "normalizedString" => DtKind::NormalizedString,
        "token" | "language" => DtKind::Token,
        "integer" => DtKind::Integer,
        "positiveInteger" => DtKind::PositiveInteger,
        "nonNegativeInteger" => DtKind::NonNegativeInteger,
        "negativeInteger" => DtKind::NegativeInteger,
        "nonPositiveInteger" => DtKind::NonPositiveInteger,
        "long" => DtKind::Long,
        "int" => DtKind::Int,
        "short" => DtKind::Short,
        "byte" => DtKind::Byte,
        "unsignedLong" => DtKind::UnsignedLong,
        "unsignedInt" => DtKind::UnsignedInt,
        "unsignedShort" => DtKind::UnsignedShort,
        "unsignedByte" => DtKind::UnsignedByte,
        "decimal" => DtKind::Decimal,
        "boolean" => DtKind::Boolean,
        "NCName" => DtKind::NcName,
        "Name" => DtKind::Name,
        "NMTOKEN" => DtKind::NmToken,
        "NMTOKENS" => DtKind::NmTokens,
        "ID" => DtKind::Id,
        "IDREF" => DtKind::IdRef,
        "IDREFS" => DtKind::IdRefs,
        "anyURI" => DtKind::AnyUri,
        _ => return None,
    })
}

/// Human name of a kind, as used in diagnostics ("not a positiveInteger").
pub fn kind_name(k: DtKind) -> &'static str {
    match k {
        DtKind::String => "string",
        DtKind::Token => "token",
        DtKind::NormalizedString => "normalizedString",
        DtKind::Integer => "integer",
        DtKind::PositiveInteger => "positiveInteger",
        DtKind::NonNegativeInteger => "nonNegativeInteger",
        DtKind::NegativeInteger => "negativeInteger",
        DtKind::NonPositiveInteger => "nonPositiveInteger",
        DtKind::Long => "long",
        DtKind::Int => "int",
        DtKind::Short => "short",
        DtKind::Byte => "byte",
        DtKind::UnsignedLong => "unsignedLong",
        DtKind::UnsignedInt => "unsignedInt",
        DtKind::UnsignedShort => "unsignedShort",
        DtKind::UnsignedByte => "unsignedByte",
        DtKind::Decimal => "decimal",
        DtKind::Boolean => "boolean",
        DtKind::NcName => "NCName",
        DtKind::Name => "Name",
        DtKind::NmToken => "NMTOKEN",
        DtKind::NmTokens => "NMTOKENS",
        DtKind::Id => "ID",
        DtKind::IdRef => "IDREF",
        DtKind::IdRefs => "IDREFS",
        DtKind::AnyUri => "anyURI",
    }
}

/// XML whitespace (the four characters of production S).
pub fn is_xml_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

pub fn is_whitespace(s: &str) -> bool {
    s.chars().all(is_xml_ws)
}

/// Whitespace facet "collapse": trim and squeeze runs to one space.
pub fn collapse(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for w in s.split(is_xml_ws).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

fn is_name_start(c: char) -> bool {
    c == ':' || c == '_' || c.is_ascii_alphabetic() || (!c.is_ascii() && c.is_alphabetic())
}

fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || c == '-'
        || c == '.'
        || c.is_ascii_digit()
        || c == '\u{B7}'
        || (!c.is_ascii() && c.is_alphanumeric())
}

fn is_ncname(s: &str) -> bool {
    let mut it = s.chars();
    match it.next() {
        Some(c) if c != ':' && is_name_start(c) => {}
        _ => return false,
    }
    it.all(|c| c != ':' && is_name_char(c))
}

fn is_xml_name(s: &str) -> bool {
    let mut it = s.chars();
    match it.next() {
        Some(c) if is_name_start(c) => {}
        _ => return false,
    }
    it.all(is_name_char)
}

fn is_nmtoken(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_name_char)
}

/// Parse an xsd:integer lexical form (already collapsed). Very long values saturate.
fn parse_integer(s: &str) -> Option<i128> {
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: i128 = 0;
    for b in digits.bytes() {
        v = v.saturating_mul(10).saturating_add((b - b'0') as i128);
    }
    Some(if neg { -v } else { v })
}

fn parse_decimal(s: &str) -> Option<()> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (a, b) = match body.split_once('.') {
        Some((a, b)) => (a, b),
        None => (body, ""),
    };
    if a.is_empty() && b.is_empty() {
        return None;
    }
    if a.bytes().all(|c| c.is_ascii_digit()) && b.bytes().all(|c| c.is_ascii_digit()) {
        Some(())
    } else {
        None
    }
}

fn int_range(k: DtKind) -> Option<(i128, i128)> {
    Some(match k {
        DtKind::Integer => (i128::MIN, i128::MAX),
        DtKind::PositiveInteger => (1, i128::MAX),
        DtKind::NonNegativeInteger => (0, i128::MAX),
        DtKind::NegativeInteger => (i128::MIN, -1),
        DtKind::NonPositiveInteger => (i128::MIN, 0),
        DtKind::Long => (i64::MIN as i128, i64::MAX as i128),
        DtKind::Int => (i32::MIN as i128, i32::MAX as i128),
        DtKind::Short => (i16::MIN as i128, i16::MAX as i128),
        DtKind::Byte => (i8::MIN as i128, i8::MAX as i128),
        DtKind::UnsignedLong => (0, u64::MAX as i128),
        DtKind::UnsignedInt => (0, u32::MAX as i128),
        DtKind::UnsignedShort => (0, u16::MAX as i128),
        DtKind::UnsignedByte => (0, u8::MAX as i128),
        _ => return None,
    })
}

/// The value after the type's whitespace processing.
pub fn normalize(k: DtKind, s: &str) -> String {
    match k {
        DtKind::String => s.to_string(),
        DtKind::NormalizedString => s.chars().map(|c| if is_xml_ws(c) { ' ' } else { c }).collect(),
        _ => collapse(s),
    }
}

/// Is `s` a valid lexical form of the datatype (facets included)?
pub fn allows(dt: &Datatype, s: &str) -> bool {
    let v = normalize(dt.kind, s);
    let ok = match dt.kind {
        DtKind::String | DtKind::Token | DtKind::NormalizedString | DtKind::AnyUri => true,
        DtKind::Decimal => parse_decimal(&v).is_some(),
        DtKind::Boolean => matches!(v.as_str(), "true" | "false" | "1" | "0"),
        DtKind::NcName | DtKind::Id | DtKind::IdRef => is_ncname(&v),
        DtKind::IdRefs => !v.is_empty() && v.split(' ').all(is_ncname),
        DtKind::Name => is_xml_name(&v),
        DtKind::NmToken => is_nmtoken(&v),
        DtKind::NmTokens => !v.is_empty() && v.split(' ').all(is_nmtoken),
        k => match (parse_integer(&v), int_range(k)) {
            (Some(n), Some((lo, hi))) => n >= lo && n <= hi,
            _ => false,
        },
    };
    ok && dt.facets.iter().all(|f| facet_ok(dt.kind, f, &v))
}

fn facet_ok(k: DtKind, f: &Facet, v: &str) -> bool {
    let len = || match k {
        DtKind::IdRefs | DtKind::NmTokens => v.split(' ').count(),
        _ => v.chars().count(),
    };
    let num = || parse_integer(v);
    match *f {
        Facet::Length(n) => len() == n,
        Facet::MinLength(n) => len() >= n,
        Facet::MaxLength(n) => len() <= n,
        Facet::MinInclusive(n) => num().is_some_and(|x| x >= n),
        Facet::MaxInclusive(n) => num().is_some_and(|x| x <= n),
        Facet::MinExclusive(n) => num().is_some_and(|x| x > n),
        Facet::MaxExclusive(n) => num().is_some_and(|x| x < n),
    }
}

/// Value equality (for `<value>`): both must be valid, then compare in the value space.
pub fn equal(dt: &Datatype, literal: &str, s: &str) -> bool {
    if !allows(dt, s) {
        return false;
    }
    if int_range(dt.kind).is_some() {
        return parse_integer(&collapse(literal)) == parse_integer(&collapse(s));
    }
    if dt.kind == DtKind::Boolean {
        let b = |x: &str| matches!(collapse(x).as_str(), "true" | "1");
        return b(literal) == b(s);
    }
    normalize(dt.kind, literal) == normalize(dt.kind, s)
}

/// Parse a `<param name=...>` for the given kind.
pub fn facet(name: &str, value: &str) -> Result<Facet, String> {
    let v = collapse(value);
    let usize_v = || v.parse::<usize>().map_err(|_| format!("param {name}: {value:?} is not a length"));
    let int_v = || parse_integer(&v).ok_or_else(|| format!("param {name}: {value:?} is not an integer"));
    Ok(match name {
        "length" => Facet::Length(usize_v()?),
        "minLength" => Facet::MinLength(usize_v()?),
        "maxLength" => Facet::MaxLength(usize_v()?),
        "minInclusive" => Facet::MinInclusive(int_v()?),
        "maxInclusive" => Facet::MaxInclusive(int_v()?),
        "minExclusive" => Facet::MinExclusive(int_v()?),
        "maxExclusive" => Facet::MaxExclusive(int_v()?),
        other => return Err(format!("unsupported datatype parameter {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(k: DtKind) -> Datatype {
        Datatype { kind: k, facets: vec![] }
    }

    #[test]
    fn integers() {
        let p = dt(DtKind::PositiveInteger);
        assert!(allows(&p, "1"));
        assert!(allows(&p, " +01 "));
        assert!(!allows(&p, "0"));
        assert!(!allows(&p, "-1"));
        assert!(!allows(&p, "1.0"));
        assert!(!allows(&p, ""));
        assert!(!allows(&p, "1 2"));
        let n = dt(DtKind::NonNegativeInteger);
        assert!(allows(&n, "0"));
        assert!(allows(&n, "-0"));
        assert!(!allows(&n, "-1"));
        assert!(allows(&dt(DtKind::Integer), "-17"));
    }

    #[test]
    fn names() {
        let id = dt(DtKind::Id);
        assert!(allows(&id, "fence1"));
        assert!(allows(&id, " fence1 "));
        assert!(!allows(&id, "1fence"));
        assert!(!allows(&id, "a:b"));
        assert!(!allows(&id, "a b"));
    }

    #[test]
    fn token_equality() {
        let t = dt(DtKind::Token);
        assert!(equal(&t, "udp", " udp "));
        assert!(!equal(&t, "udp", "UDP"));
        assert!(!equal(&dt(DtKind::String), "udp", " udp"));
    }
}
