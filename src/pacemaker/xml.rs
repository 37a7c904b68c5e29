//! A small element tree over quick-xml, with the line and column of every element, for the CIB
//! reader. Malformed XML gives an error naming the line and column where it went wrong.
use quick_xml::events::{BytesStart, Event};
use std::fmt;

/// XML that cannot be read: where and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct XmlError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

impl std::error::Error for XmlError {}

/// One element: name, attributes in document order, children, and where it starts (1-based).
#[derive(Debug, Clone, Default)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub line: usize,
    pub col: usize,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every descendant (depth first, document order) named `name`.
    pub fn descendants<'a>(&'a self, name: &str, out: &mut Vec<&'a Element>) {
        for c in &self.children {
            if c.name == name {
                out.push(c);
            }
            c.descendants(name, out);
        }
    }
}

/// Byte offset -> (line, column), both 1-based; the column counts characters.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let col = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
    (line, col)
}

fn element_of(e: &BytesStart<'_>, text: &str, at: usize) -> Result<Element, XmlError> {
    let (line, col) = line_col(text, at);
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|err| XmlError { line, col, message: format!("bad attribute in <{}>: {err}", String::from_utf8_lossy(e.name().as_ref())) })?;
        let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
        let value = a
            .unescape_value()
            .map_err(|err| XmlError { line, col, message: format!("bad value of attribute {key:?}: {err}") })?
            .into_owned();
        attrs.push((key, value));
    }
    Ok(Element { name: String::from_utf8_lossy(e.name().as_ref()).into_owned(), attrs, children: vec![], line, col })
}

/// Parse a whole document into its root element.
pub fn parse(text: &str) -> Result<Element, XmlError> {
    let mut r = quick_xml::Reader::from_str(text);
    r.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let at = r.buffer_position() as usize;
        let ev = r.read_event().map_err(|e| {
            let (line, col) = line_col(text, r.error_position() as usize);
            XmlError { line, col, message: format!("not well-formed XML: {e}") }
        })?;
        // the position of the `<` of this event: skip whitespace text before it
        let at = at + text[at.min(text.len())..].find('<').unwrap_or(0);
        match ev {
            Event::Start(e) => stack.push(element_of(&e, text, at)?),
            Event::Empty(e) => {
                let el = element_of(&e, text, at)?;
                match stack.last_mut() {
                    Some(p) => p.children.push(el),
                    None if root.is_none() => root = Some(el),
                    None => {
                        let (line, col) = line_col(text, at);
                        return Err(XmlError { line, col, message: "a second root element".into() });
                    }
                }
            }
            Event::End(_) => {
                let el = stack.pop().expect("quick-xml checks end names");
                match stack.last_mut() {
                    Some(p) => p.children.push(el),
                    None if root.is_none() => root = Some(el),
                    None => {
                        let (line, col) = line_col(text, at);
                        return Err(XmlError { line, col, message: "a second root element".into() });
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if let Some(open) = stack.last() {
        let (line, col) = line_col(text, text.len());
        return Err(XmlError {
            line,
            col,
            message: format!("the document ends inside <{}> opened at {}:{} (truncated file?)", open.name, open.line, open.col),
        });
    }
    root.ok_or(XmlError { line: 1, col: 1, message: "no XML element in the input (empty file?)".into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_errors() {
        let e = parse("<a>\n  <b x=\"1\"/>\n</a>").unwrap();
        assert_eq!((e.children[0].line, e.children[0].col), (2, 3));
        let err = parse("<a>\n  <b>\n</a>").unwrap_err();
        assert_eq!(err.line, 3, "{err}");
        let err = parse("<a>\n  <b/>\n").unwrap_err();
        assert!(err.message.contains("ends inside <a> opened at 1:1"), "{err}");
        assert!(parse("").is_err());
        assert!(parse("<a x='1' x='2'/>").is_err());
    }
}
