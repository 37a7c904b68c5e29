//! A lossless XML document for cluster.conf.
//!
//! The parser is a small, strict tokenizer for the XML that configuration files use (elements,
//! attributes, text, comments, processing instructions, an XML declaration, a DOCTYPE with or
//! without internal subset, CDATA sections, entity and character references, a UTF-8 BOM, any line
//! ends). It records the byte span of every piece instead of building a re-serialisable tree, so the
//! source bytes stay the single truth: [`Document::to_bytes`] reassembles the input from the spans
//! (byte for byte), and edits are [`Patch`]es (byte range + replacement) applied to the source.
//!
//! Well-formedness is checked the way xmllint does for the constructs above (matching tags, one root,
//! quoted and unique attributes, `<` never inside values, `&` only as a reference, no `--` inside a
//! comment, only XML characters, valid UTF-8), and every error carries line and column.
use std::fmt;
use std::ops::Range;

/// A byte range into the source.
pub type Span = Range<usize>;
/// Index of a node in [`Document::nodes`].
pub type NodeId = usize;

/// A well-formedness error, with 1-based line and column (columns count characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub col: usize,
    pub offset: usize,
    pub msg: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}: {}", self.line, self.col, self.msg)
    }
}
impl std::error::Error for ParseError {}

/// One attribute of a start tag, with its spans and both its raw and decoded value.
#[derive(Debug, Clone)]
pub struct Attr {
    /// Qualified name as written (`xsi:type` keeps its prefix).
    pub name: String,
    pub name_span: Span,
    /// The value between the quotes (raw bytes, entity references not expanded).
    pub value_span: Span,
    /// `b'"'` or `b'\''`.
    pub quote: u8,
    /// The value exactly as written between the quotes.
    pub raw: String,
    /// The value after reference expansion and attribute-value normalisation.
    pub value: String,
    /// From the first byte of the name to the closing quote included.
    pub span: Span,
}

/// An element: its start tag, attributes, children and end tag.
#[derive(Debug, Clone)]
pub struct Element {
    pub name: String,
    /// The whole start tag `<name ...>` or `<name .../>`.
    pub start_tag: Span,
    /// The end tag `</name>`, None for an empty-element tag `<name/>`.
    pub end_tag: Option<Span>,
    pub attrs: Vec<Attr>,
    pub children: Vec<NodeId>,
}

impl Element {
    pub fn self_closing(&self) -> bool {
        self.end_tag.is_none()
    }
    pub fn attr(&self, name: &str) -> Option<&Attr> {
        self.attrs.iter().find(|a| a.name == name)
    }
}

/// What a node is.
#[derive(Debug, Clone)]
pub enum Kind {
    Element(Element),
    /// Character data (may contain references), including whitespace between tags.
    Text,
    Comment,
    /// `<?target ...?>`; the XML declaration is [`Kind::XmlDecl`].
    Pi,
    XmlDecl,
    Doctype,
    CData,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub kind: Kind,
    /// The node's whole extent (for an element: start tag to end tag).
    pub span: Span,
    pub parent: Option<NodeId>,
}

/// A byte patch: replace `range` of the source with `text` (an empty range inserts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    pub range: Span,
    pub text: String,
}

impl Patch {
    pub fn replace(range: Span, text: impl Into<String>) -> Patch {
        Patch { range, text: text.into() }
    }
    pub fn insert(at: usize, text: impl Into<String>) -> Patch {
        Patch { range: at..at, text: text.into() }
    }
    pub fn delete(range: Span) -> Patch {
        Patch { range, text: String::new() }
    }
}

/// Apply non-overlapping patches to `src`. Insertions at the same offset keep their given order.
pub fn apply_patches(src: &[u8], patches: &[Patch]) -> Result<Vec<u8>, String> {
    let mut order: Vec<usize> = (0..patches.len()).collect();
    order.sort_by_key(|&i| (patches[i].range.start, patches[i].range.end));
    let mut out = Vec::with_capacity(src.len() + patches.iter().map(|p| p.text.len()).sum::<usize>());
    let mut pos = 0usize;
    for i in order {
        let p = &patches[i];
        if p.range.start < pos || p.range.end > src.len() || p.range.start > p.range.end {
            return Err(format!("internal error: overlapping or out-of-range edit at byte {}", p.range.start));
        }
        out.extend_from_slice(&src[pos..p.range.start]);
        out.extend_from_slice(p.text.as_bytes());
        pos = p.range.end;
    }
    out.extend_from_slice(&src[pos..]);
    Ok(out)
}

/// The parsed, lossless document.
#[derive(Debug, Clone)]
pub struct Document {
    src: Vec<u8>,
    pub nodes: Vec<Node>,
    /// Top-level nodes in document order (prolog, root element(s), trailing comments/whitespace).
    pub top: Vec<NodeId>,
    line_starts: Vec<usize>,
    bom: bool,
    internal_subset: bool,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl Document {
    /// Parse a complete document (exactly one root element).
    pub fn parse(bytes: &[u8]) -> Result<Document, ParseError> {
        Parser::run(bytes, false)
    }

    /// Parse a fragment: like [`Document::parse`] but several top-level elements are allowed
    /// (man-page snippets such as `<clusternode>` followed by `<fencedevices>`).
    pub fn parse_fragment(bytes: &[u8]) -> Result<Document, ParseError> {
        Parser::run(bytes, true)
    }

    /// The source bytes.
    pub fn source(&self) -> &[u8] {
        &self.src
    }

    /// Reassemble the document from the spans of its nodes. Equal to the input, byte for byte;
    /// computed from the node tree (not a copy of the input) so it proves the spans cover everything.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.src.len());
        if self.bom {
            out.extend_from_slice(BOM);
        }
        for &id in &self.top {
            self.write_node(id, &mut out);
        }
        out
    }

    fn write_node(&self, id: NodeId, out: &mut Vec<u8>) {
        let node = &self.nodes[id];
        match &node.kind {
            Kind::Element(e) => {
                // start tag: name, then each attribute with the bytes between them
                let st = &e.start_tag;
                let mut pos = st.start;
                for a in &e.attrs {
                    out.extend_from_slice(&self.src[pos..a.name_span.start]);
                    out.extend_from_slice(&self.src[a.name_span.clone()]);
                    out.extend_from_slice(&self.src[a.name_span.end..a.value_span.start]);
                    out.extend_from_slice(&self.src[a.value_span.clone()]);
                    pos = a.value_span.end;
                }
                out.extend_from_slice(&self.src[pos..st.end]);
                for &c in &e.children {
                    self.write_node(c, out);
                }
                if let Some(et) = &e.end_tag {
                    out.extend_from_slice(&self.src[et.clone()]);
                }
            }
            _ => out.extend_from_slice(&self.src[node.span.clone()]),
        }
    }

    pub fn has_bom(&self) -> bool {
        self.bom
    }

    /// True when the DOCTYPE has an internal subset (entities we cannot expand may be declared).
    pub fn has_internal_subset(&self) -> bool {
        self.internal_subset
    }

    /// The first top-level element.
    pub fn root(&self) -> Option<NodeId> {
        self.top.iter().copied().find(|&id| self.element(id).is_some())
    }

    /// All top-level elements (one for a document, maybe several for a fragment).
    pub fn roots(&self) -> Vec<NodeId> {
        self.top.iter().copied().filter(|&id| self.element(id).is_some()).collect()
    }

    pub fn element(&self, id: NodeId) -> Option<&Element> {
        match &self.nodes.get(id)?.kind {
            Kind::Element(e) => Some(e),
            _ => None,
        }
    }

    pub fn name(&self, id: NodeId) -> &str {
        self.element(id).map(|e| e.name.as_str()).unwrap_or("")
    }

    pub fn span(&self, id: NodeId) -> Span {
        self.nodes[id].span.clone()
    }

    pub fn parent(&self, id: NodeId) -> Option<NodeId> {
        self.nodes.get(id)?.parent
    }

    /// Element children of `id`, in order.
    pub fn child_elements(&self, id: NodeId) -> Vec<NodeId> {
        match self.element(id) {
            Some(e) => e.children.iter().copied().filter(|&c| self.element(c).is_some()).collect(),
            None => Vec::new(),
        }
    }

    /// Element children of `id` named `name`.
    pub fn children_named(&self, id: NodeId, name: &str) -> Vec<NodeId> {
        self.child_elements(id).into_iter().filter(|&c| self.name(c) == name).collect()
    }

    /// First element child named `name`.
    pub fn child(&self, id: NodeId, name: &str) -> Option<NodeId> {
        self.child_elements(id).into_iter().find(|&c| self.name(c) == name)
    }

    pub fn attr(&self, id: NodeId, name: &str) -> Option<&Attr> {
        self.element(id)?.attr(name)
    }

    /// Decoded value of attribute `name` of element `id`.
    pub fn attr_value(&self, id: NodeId, name: &str) -> Option<&str> {
        self.attr(id, name).map(|a| a.value.as_str())
    }

    /// 1-based line and column (in characters; a BOM is not counted) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col_in(&self.src, &self.line_starts, offset)
    }

    /// Line and column of the start of node `id`.
    pub fn pos(&self, id: NodeId) -> (usize, usize) {
        self.line_col(self.nodes[id].span.start)
    }

    /// The newline the file uses: "\r\n" when most line ends are CRLF, else "\n".
    pub fn newline(&self) -> &'static str {
        let lf = self.src.iter().filter(|&&b| b == b'\n').count();
        let crlf = self.src.windows(2).filter(|w| w == b"\r\n").count();
        if crlf > 0 && crlf * 2 >= lf {
            "\r\n"
        } else {
            "\n"
        }
    }

    /// The quote character most attributes use (`"` by default).
    pub fn quote_style(&self) -> u8 {
        let (mut dq, mut sq) = (0, 0);
        for n in &self.nodes {
            if let Kind::Element(e) = &n.kind {
                for a in &e.attrs {
                    if a.quote == b'\'' {
                        sq += 1
                    } else {
                        dq += 1
                    }
                }
            }
        }
        if sq > dq {
            b'\''
        } else {
            b'"'
        }
    }

    /// The indentation in front of node `id` when it starts its own line (only spaces/tabs before it
    /// on that line), else None.
    pub fn own_line_indent(&self, id: NodeId) -> Option<String> {
        let start = self.nodes[id].span.start;
        let ls = self.line_start_of(start);
        let ls = if ls == 0 && self.bom { BOM.len() } else { ls };
        let before = &self.src[ls..start];
        if before.iter().all(|&b| b == b' ' || b == b'\t') {
            Some(String::from_utf8_lossy(before).into_owned())
        } else {
            None
        }
    }

    /// Indentation of `id` (its own-line indent, or that of its nearest ancestor that has one).
    pub fn indent_of(&self, id: NodeId) -> String {
        let mut cur = Some(id);
        while let Some(c) = cur {
            if let Some(s) = self.own_line_indent(c) {
                return s;
            }
            cur = self.nodes[c].parent;
        }
        String::new()
    }

    /// The indentation step the file uses: the most common difference between a child's and its
    /// parent's indentation; a tab when the file indents with tabs, two spaces when nothing tells.
    pub fn indent_unit(&self) -> String {
        let mut counts: Vec<(String, usize)> = Vec::new();
        let mut tabs = 0usize;
        for (id, n) in self.nodes.iter().enumerate() {
            let Some(parent) = n.parent else { continue };
            if !matches!(n.kind, Kind::Element(_)) {
                continue;
            }
            let (Some(ci), Some(pi)) = (self.own_line_indent(id), self.own_line_indent(parent)) else { continue };
            if ci.starts_with('\t') {
                tabs += 1;
            }
            if ci.len() > pi.len() && ci.starts_with(&pi) {
                let d = ci[pi.len()..].to_string();
                match counts.iter_mut().find(|(s, _)| *s == d) {
                    Some((_, c)) => *c += 1,
                    None => counts.push((d, 1)),
                }
            }
        }
        if let Some((s, _)) = counts.iter().max_by_key(|(_, c)| *c) {
            return s.clone();
        }
        if tabs > 0 {
            "\t".into()
        } else {
            "  ".into()
        }
    }

    fn line_start_of(&self, offset: usize) -> usize {
        match self.line_starts.binary_search(&offset) {
            Ok(i) => self.line_starts[i],
            Err(i) => self.line_starts[i.saturating_sub(1)],
        }
    }

    /// The range of `id` extended to whole lines when it sits alone on its line(s): from the start of
    /// its first line to after the newline ending its last line. Otherwise just its span.
    pub fn line_chunk(&self, id: NodeId) -> Span {
        let span = self.nodes[id].span.clone();
        if self.own_line_indent(id).is_none() {
            return span;
        }
        let mut end = span.end;
        while end < self.src.len() && (self.src[end] == b' ' || self.src[end] == b'\t') {
            end += 1;
        }
        if end < self.src.len() && self.src[end] == b'\r' && self.src.get(end + 1) == Some(&b'\n') {
            end += 2;
        } else if end < self.src.len() && self.src[end] == b'\n' {
            end += 1;
        } else if end < self.src.len() {
            return span; // something else follows on the same line
        }
        let ls = self.line_start_of(span.start);
        let ls = if ls == 0 && self.bom { BOM.len() } else { ls };
        ls..end
    }

    // ---------------------------------------------------------------- patches

    /// Set attribute `name` of element `id` to `value` (escaped for its quote char); adds it after
    /// the last attribute when absent.
    pub fn set_attr(&self, id: NodeId, name: &str, value: &str) -> Option<Patch> {
        let e = self.element(id)?;
        match e.attr(name) {
            Some(a) => Some(Patch::replace(a.value_span.clone(), escape_attr(value, a.quote))),
            None => self.add_attr(id, name, value),
        }
    }

    /// Add attribute `name="value"` after the last attribute (or the element name), quoted the way
    /// the element's (or else the file's) other attributes are.
    pub fn add_attr(&self, id: NodeId, name: &str, value: &str) -> Option<Patch> {
        let e = self.element(id)?;
        let quote = e.attrs.last().map(|a| a.quote).unwrap_or_else(|| self.quote_style());
        let at = match e.attrs.last() {
            Some(a) => a.span.end,
            None => e.start_tag.start + 1 + e.name.len(),
        };
        let q = quote as char;
        Some(Patch::insert(at, format!(" {name}={q}{}{q}", escape_attr(value, quote))))
    }

    /// Remove attribute `name` of `id` with the whitespace in front of it.
    pub fn remove_attr(&self, id: NodeId, name: &str) -> Option<Patch> {
        let e = self.element(id)?;
        let a = e.attr(name)?;
        let mut start = a.span.start;
        while start > e.start_tag.start && matches!(self.src[start - 1], b' ' | b'\t' | b'\r' | b'\n') {
            start -= 1;
        }
        Some(Patch::delete(start..a.span.end))
    }

    /// Remove element `id` (with its own line when it sits alone on it).
    pub fn remove_element(&self, id: NodeId) -> Patch {
        Patch::delete(self.line_chunk(id))
    }

    /// Insert `new` as a child of `parent`, before `before` (an element child of `parent`) or after
    /// the last element child when None. Indentation is copied from the siblings, or is the parent's
    /// plus the file's indent unit; line ends follow the file (CRLF stays CRLF).
    pub fn insert_child(&self, parent: NodeId, before: Option<NodeId>, new: &NewElement) -> Option<Vec<Patch>> {
        let pe = self.element(parent)?;
        let nl = self.newline();
        let unit = self.indent_unit();
        let quote = self.quote_style();
        let kids = self.child_elements(parent);
        if let Some(b) = before {
            if !kids.contains(&b) {
                return None;
            }
            return Some(match self.own_line_indent(b) {
                Some(ind) => {
                    let chunk = self.line_chunk(b);
                    vec![Patch::insert(chunk.start, format!("{}{nl}", new.render(&ind, &unit, nl, quote)))]
                }
                None => vec![Patch::insert(self.nodes[b].span.start, new.render_inline(quote))],
            });
        }
        if let Some(&last) = kids.last() {
            return Some(match self.own_line_indent(last) {
                Some(ind) => vec![Patch::insert(
                    self.nodes[last].span.end,
                    format!("{nl}{}", new.render(&ind, &unit, nl, quote)),
                )],
                None => vec![Patch::insert(self.nodes[last].span.end, new.render_inline(quote))],
            });
        }
        let pind = self.own_line_indent(parent);
        let inline = pind.is_none();
        let pind = pind.unwrap_or_default();
        let cind = format!("{pind}{unit}");
        match &pe.end_tag {
            None => {
                // <p .../>  ->  <p ...>NL child NL </p>
                let st = &pe.start_tag;
                let mut slash = st.end - 2;
                while slash > st.start && matches!(self.src[slash - 1], b' ' | b'\t' | b'\r' | b'\n') {
                    slash -= 1;
                }
                let body = if inline {
                    format!(">{}</{}>", new.render_inline(quote), pe.name)
                } else {
                    format!(">{nl}{}{nl}{pind}</{}>", new.render(&cind, &unit, nl, quote), pe.name)
                };
                Some(vec![Patch::replace(slash..st.end, body)])
            }
            Some(et) => {
                let content = &self.src[pe.start_tag.end..et.start];
                if inline {
                    return Some(vec![Patch::insert(et.start, new.render_inline(quote))]);
                }
                if content.is_empty() {
                    Some(vec![Patch::insert(
                        et.start,
                        format!("{nl}{}{nl}{pind}", new.render(&cind, &unit, nl, quote)),
                    )])
                } else if content.iter().all(|b| b.is_ascii_whitespace()) && content.contains(&b'\n') {
                    Some(vec![Patch::insert(pe.start_tag.end, format!("{nl}{}", new.render(&cind, &unit, nl, quote)))])
                } else {
                    // text or comments but no element: append before the end tag on a new line
                    let tail_ws = content.iter().rev().take_while(|b| matches!(b, b' ' | b'\t')).count();
                    let at = et.start - tail_ws;
                    Some(vec![Patch::insert(at, format!("{nl}{}{nl}", new.render(&cind, &unit, nl, quote)))])
                }
            }
        }
    }

    /// Move element `id` before sibling `before` (or to after its last element sibling when None).
    pub fn move_element(&self, id: NodeId, before: Option<NodeId>) -> Option<Vec<Patch>> {
        let parent = self.nodes[id].parent?;
        let kids = self.child_elements(parent);
        if before == Some(id) {
            return Some(Vec::new());
        }
        let chunk = self.line_chunk(id);
        let text = String::from_utf8_lossy(&self.src[chunk.clone()]).into_owned();
        let own = chunk != self.nodes[id].span;
        let target = match before {
            Some(b) => {
                if !kids.contains(&b) {
                    return None;
                }
                if own {
                    self.line_chunk(b).start
                } else {
                    self.nodes[b].span.start
                }
            }
            None => {
                let last = *kids.last()?;
                if last == id {
                    return Some(Vec::new());
                }
                if own {
                    self.line_chunk(last).end
                } else {
                    self.nodes[last].span.end
                }
            }
        };
        if target >= chunk.start && target <= chunk.end {
            return Some(Vec::new());
        }
        // a line chunk moved to the end of the last sibling that has no newline after it
        let text = if own && before.is_none() && self.line_chunk(*kids.last()?) == self.nodes[*kids.last()?].span {
            format!("{}{}", self.newline(), text.trim_end_matches(['\r', '\n']))
        } else {
            text
        };
        Some(vec![Patch::delete(chunk), Patch::insert(target, text)])
    }

    /// The document text with every secret attribute value (see [`is_secret_attr`]) replaced by
    /// `********`.
    pub fn masked(&self) -> String {
        let mut patches = Vec::new();
        for n in &self.nodes {
            if let Kind::Element(e) = &n.kind {
                for a in &e.attrs {
                    if is_secret_attr(&a.name) {
                        patches.push(Patch::replace(a.value_span.clone(), MASK));
                    }
                }
            }
        }
        let out = apply_patches(&self.src, &patches).unwrap_or_else(|_| self.src.clone());
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// What a masked secret looks like in output.
pub const MASK: &str = "********";

/// Attribute names whose values are secrets (passwords, SNMP communities, keys).
pub fn is_secret_attr(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    let local = n.rsplit(':').next().unwrap_or(&n);
    local.contains("passw")
        || local.contains("secret")
        || local == "community"
        || local == "key"
        || local == "auth_key"
        || local.ends_with("_passwd")
}

/// Mask secrets in text that may not even parse: values of `name="..."`/`name='...'` pairs whose
/// name is secret. Used for diffs of files that are not well-formed.
pub fn mask_secrets_lenient(text: &str) -> String {
    match Document::parse_fragment(text.as_bytes()) {
        Ok(d) => d.masked(),
        Err(_) => {
            let b = text.as_bytes();
            let mut out = String::with_capacity(text.len());
            let mut i = 0;
            let mut last = 0;
            while i < b.len() {
                if b[i] == b'=' {
                    // name before '='
                    let mut j = i;
                    while j > 0 && b[j - 1].is_ascii_whitespace() {
                        j -= 1;
                    }
                    let name_end = j;
                    while j > 0 && (b[j - 1].is_ascii_alphanumeric() || matches!(b[j - 1], b'_' | b'-' | b':' | b'.')) {
                        j -= 1;
                    }
                    let name = &text[j..name_end];
                    let mut k = i + 1;
                    while k < b.len() && b[k].is_ascii_whitespace() {
                        k += 1;
                    }
                    if !name.is_empty() && is_secret_attr(name) && k < b.len() && (b[k] == b'"' || b[k] == b'\'') {
                        let q = b[k];
                        let vstart = k + 1;
                        let vend = b[vstart..].iter().position(|&c| c == q).map(|p| vstart + p).unwrap_or(b.len());
                        out.push_str(&text[last..vstart]);
                        out.push_str(MASK);
                        last = vend;
                        i = vend;
                        continue;
                    }
                }
                i += 1;
            }
            out.push_str(&text[last..]);
            out
        }
    }
}

/// Escape a value for an attribute quoted with `quote`: `&`, `<`, `>`, the quote itself, and the
/// whitespace characters that attribute-value normalisation would otherwise turn into spaces.
pub fn escape_attr(value: &str, quote: u8) -> String {
    let mut s = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '"' if quote == b'"' => s.push_str("&quot;"),
            '\'' if quote == b'\'' => s.push_str("&apos;"),
            '\t' => s.push_str("&#9;"),
            '\n' => s.push_str("&#10;"),
            '\r' => s.push_str("&#13;"),
            c => s.push(c),
        }
    }
    s
}

/// An element to insert: name, attributes in order, children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewElement {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<NewElement>,
}

impl NewElement {
    pub fn new(name: &str) -> NewElement {
        NewElement { name: name.into(), ..Default::default() }
    }
    pub fn attr(mut self, k: &str, v: impl Into<String>) -> NewElement {
        self.attrs.push((k.into(), v.into()));
        self
    }
    pub fn child(mut self, c: NewElement) -> NewElement {
        self.children.push(c);
        self
    }

    fn open(&self, quote: u8) -> String {
        let q = quote as char;
        let mut s = format!("<{}", self.name);
        for (k, v) in &self.attrs {
            s.push_str(&format!(" {k}={q}{}{q}", escape_attr(v, quote)));
        }
        s
    }

    /// Render at indentation `indent` (the first line included), children one `unit` deeper,
    /// lines joined by `nl`; no newline before or after.
    pub fn render(&self, indent: &str, unit: &str, nl: &str, quote: u8) -> String {
        let mut s = String::new();
        self.render_into(&mut s, indent, unit, nl, quote);
        s
    }

    fn render_into(&self, s: &mut String, indent: &str, unit: &str, nl: &str, quote: u8) {
        s.push_str(indent);
        s.push_str(&self.open(quote));
        if self.children.is_empty() {
            s.push_str("/>");
            return;
        }
        s.push('>');
        let deeper = format!("{indent}{unit}");
        for c in &self.children {
            s.push_str(nl);
            c.render_into(s, &deeper, unit, nl, quote);
        }
        s.push_str(nl);
        s.push_str(indent);
        s.push_str(&format!("</{}>", self.name));
    }

    /// Render on one line (for files that put siblings on one line).
    pub fn render_inline(&self, quote: u8) -> String {
        let mut s = self.open(quote);
        if self.children.is_empty() {
            s.push_str("/>");
        } else {
            s.push('>');
            for c in &self.children {
                s.push_str(&c.render_inline(quote));
            }
            s.push_str(&format!("</{}>", self.name));
        }
        s
    }
}

fn line_col_in(src: &[u8], line_starts: &[usize], offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let idx = match line_starts.binary_search(&offset) {
        Ok(i) => i,
        Err(i) => i.saturating_sub(1),
    };
    let mut ls = line_starts.get(idx).copied().unwrap_or(0);
    if ls == 0 && src.starts_with(BOM) && offset >= BOM.len() {
        ls = BOM.len();
    }
    let prefix = &src[ls..offset];
    let chars = String::from_utf8_lossy(prefix).chars().count();
    (idx + 1, chars + 1)
}

// -------------------------------------------------------------------- the tokenizer

struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    nodes: Vec<Node>,
    top: Vec<NodeId>,
    stack: Vec<NodeId>,
    line_starts: Vec<usize>,
    internal_subset: bool,
    seen_root: bool,
    seen_doctype: bool,
    fragment: bool,
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':' || b >= 0x80
}
fn is_name_char(b: u8) -> bool {
    is_name_start(b) || b.is_ascii_digit() || b == b'-' || b == b'.'
}
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

impl<'a> Parser<'a> {
    fn run(src: &'a [u8], fragment: bool) -> Result<Document, ParseError> {
        let mut line_starts = vec![0];
        for (i, &b) in src.iter().enumerate() {
            if b == b'\n' {
                line_starts.push(i + 1);
            }
        }
        let mut p = Parser {
            src,
            pos: 0,
            nodes: Vec::new(),
            top: Vec::new(),
            stack: Vec::new(),
            line_starts,
            internal_subset: false,
            seen_root: false,
            seen_doctype: false,
            fragment,
        };
        if let Err(e) = std::str::from_utf8(src) {
            return Err(p.err_at(e.valid_up_to(), "the file is not valid UTF-8 (cluster.conf must be UTF-8)"));
        }
        for (i, &b) in src.iter().enumerate() {
            if b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r') {
                return Err(p.err_at(i, &format!("control character 0x{b:02x} is not allowed in XML")));
            }
        }
        let bom = src.starts_with(BOM);
        if bom {
            p.pos = BOM.len();
        }
        p.parse_all()?;
        Ok(Document {
            src: src.to_vec(),
            nodes: p.nodes,
            top: p.top,
            line_starts: p.line_starts,
            bom,
            internal_subset: p.internal_subset,
        })
    }

    fn err_at(&self, offset: usize, msg: &str) -> ParseError {
        let (line, col) = line_col_in(self.src, &self.line_starts, offset);
        ParseError { line, col, offset, msg: msg.to_string() }
    }

    fn at(&self, s: &[u8]) -> bool {
        self.src[self.pos..].starts_with(s)
    }

    fn push(&mut self, kind: Kind, span: Span) -> NodeId {
        let id = self.nodes.len();
        let parent = self.stack.last().copied();
        self.nodes.push(Node { kind, span, parent });
        match parent {
            Some(p) => {
                if let Kind::Element(e) = &mut self.nodes[p].kind {
                    e.children.push(id);
                }
            }
            None => self.top.push(id),
        }
        id
    }

    fn find(&self, from: usize, pat: &[u8]) -> Option<usize> {
        self.src[from..].windows(pat.len()).position(|w| w == pat).map(|p| from + p)
    }

    fn parse_all(&mut self) -> Result<(), ParseError> {
        let doc_start = self.pos;
        while self.pos < self.src.len() {
            if self.src[self.pos] == b'<' {
                if self.at(b"<?") {
                    self.parse_pi(doc_start)?;
                } else if self.at(b"<!--") {
                    self.parse_comment()?;
                } else if self.at(b"<![CDATA[") {
                    self.parse_cdata()?;
                } else if self.at(b"<!DOCTYPE") {
                    self.parse_doctype()?;
                } else if self.at(b"</") {
                    self.parse_end_tag()?;
                } else if self.at(b"<!") {
                    return Err(self.err_at(self.pos, "unknown markup declaration `<!` (expected a comment, CDATA or DOCTYPE)"));
                } else {
                    self.parse_start_tag()?;
                }
            } else {
                self.parse_text()?;
            }
        }
        if let Some(&open) = self.stack.last() {
            let name = match &self.nodes[open].kind {
                Kind::Element(e) => e.name.clone(),
                _ => String::new(),
            };
            let start = self.nodes[open].span.start;
            let (l, c) = line_col_in(self.src, &self.line_starts, start);
            return Err(self.err_at(
                self.src.len(),
                &format!("end of file inside <{name}> opened at line {l}, column {c}: add </{name}>"),
            ));
        }
        if !self.seen_root {
            return Err(self.err_at(self.src.len(), "no root element: the file has no <cluster> element"));
        }
        Ok(())
    }

    fn parse_pi(&mut self, doc_start: usize) -> Result<(), ParseError> {
        let start = self.pos;
        let Some(end) = self.find(start + 2, b"?>") else {
            return Err(self.err_at(start, "processing instruction not closed with `?>`"));
        };
        let mut t = start + 2;
        while t < end && is_name_char(self.src[t]) {
            t += 1;
        }
        let target = &self.src[start + 2..t];
        if target.is_empty() {
            return Err(self.err_at(start + 2, "processing instruction without a target name"));
        }
        if t < end && !is_ws(self.src[t]) {
            return Err(self.err_at(t, "expected whitespace after the processing instruction target"));
        }
        let span = start..end + 2;
        self.pos = end + 2;
        if target.eq_ignore_ascii_case(b"xml") {
            if start != doc_start || target != b"xml" {
                return Err(self.err_at(start, "the XML declaration `<?xml ...?>` is only allowed at the very start of the file"));
            }
            self.push(Kind::XmlDecl, span);
        } else {
            self.push(Kind::Pi, span);
        }
        Ok(())
    }

    fn parse_comment(&mut self) -> Result<(), ParseError> {
        let start = self.pos;
        let body = start + 4;
        let Some(dd) = self.find(body, b"--") else {
            return Err(self.err_at(start, "comment not closed with `-->`"));
        };
        if self.src.get(dd + 2) != Some(&b'>') {
            return Err(self.err_at(dd, "`--` is not allowed inside a comment"));
        }
        self.pos = dd + 3;
        self.push(Kind::Comment, start..self.pos);
        Ok(())
    }

    fn parse_cdata(&mut self) -> Result<(), ParseError> {
        let start = self.pos;
        if self.stack.is_empty() {
            return Err(self.err_at(start, "CDATA section outside the root element"));
        }
        let Some(end) = self.find(start + 9, b"]]>") else {
            return Err(self.err_at(start, "CDATA section not closed with `]]>`"));
        };
        self.pos = end + 3;
        self.push(Kind::CData, start..self.pos);
        Ok(())
    }

    fn parse_doctype(&mut self) -> Result<(), ParseError> {
        let start = self.pos;
        if self.seen_root || self.seen_doctype || !self.stack.is_empty() {
            return Err(self.err_at(start, "DOCTYPE is only allowed once, before the root element"));
        }
        let mut i = start + 9;
        let mut depth = 0usize;
        let src = self.src;
        loop {
            let Some(&b) = src.get(i) else {
                return Err(self.err_at(start, "DOCTYPE not closed with `>`"));
            };
            match b {
                b'"' | b'\'' => match src[i + 1..].iter().position(|&c| c == b) {
                    Some(p) => i += p + 2,
                    None => return Err(self.err_at(i, "unterminated quoted string in DOCTYPE")),
                },
                b'<' if src[i..].starts_with(b"<!--") => match self.find(i + 4, b"-->") {
                    Some(p) => i = p + 3,
                    None => return Err(self.err_at(i, "comment in DOCTYPE not closed")),
                },
                b'[' => {
                    depth += 1;
                    self.internal_subset = true;
                    i += 1;
                }
                b']' => {
                    depth = depth.saturating_sub(1);
                    i += 1;
                }
                b'>' if depth == 0 => {
                    i += 1;
                    break;
                }
                _ => i += 1,
            }
        }
        self.seen_doctype = true;
        self.pos = i;
        self.push(Kind::Doctype, start..i);
        Ok(())
    }

    fn read_name(&self, at: usize) -> usize {
        let mut i = at;
        if i < self.src.len() && is_name_start(self.src[i]) {
            i += 1;
            while i < self.src.len() && is_name_char(self.src[i]) {
                i += 1;
            }
        }
        i
    }

    fn skip_ws(&self, mut i: usize) -> usize {
        while i < self.src.len() && is_ws(self.src[i]) {
            i += 1;
        }
        i
    }

    fn text_of(&self, r: Span) -> String {
        String::from_utf8_lossy(&self.src[r]).into_owned()
    }

    fn parse_start_tag(&mut self) -> Result<(), ParseError> {
        let start = self.pos;
        if self.stack.is_empty() && self.seen_root && !self.fragment {
            return Err(self.err_at(start, "extra content after the root element: a document has exactly one root element"));
        }
        let name_end = self.read_name(start + 1);
        if name_end == start + 1 {
            return Err(self.err_at(start + 1, "invalid element name after `<` (write `&lt;` for a literal `<`)"));
        }
        let name = self.text_of(start + 1..name_end);
        let mut attrs: Vec<Attr> = Vec::new();
        let mut i = name_end;
        let self_closing;
        loop {
            let ws_end = self.skip_ws(i);
            let had_ws = ws_end > i;
            i = ws_end;
            match self.src.get(i) {
                None => return Err(self.err_at(start, &format!("start tag <{name}> not closed with `>`"))),
                Some(b'>') => {
                    i += 1;
                    self_closing = false;
                    break;
                }
                Some(b'/') if self.src.get(i + 1) == Some(&b'>') => {
                    i += 2;
                    self_closing = true;
                    break;
                }
                _ => {}
            }
            if !had_ws {
                return Err(self.err_at(i, &format!("expected whitespace, `>` or `/>` in start tag <{name}>")));
            }
            let an_end = self.read_name(i);
            if an_end == i {
                return Err(self.err_at(i, &format!("invalid attribute name in start tag <{name}>")));
            }
            let aname = self.text_of(i..an_end);
            let mut j = self.skip_ws(an_end);
            if self.src.get(j) != Some(&b'=') {
                return Err(self.err_at(
                    i,
                    &format!("attribute `{aname}` of <{name}> has no value (write {aname}=\"...\")"),
                ));
            }
            j = self.skip_ws(j + 1);
            let quote = match self.src.get(j) {
                Some(&q @ (b'"' | b'\'')) => q,
                _ => return Err(self.err_at(j, &format!("value of attribute `{aname}` must be quoted with \" or '"))),
            };
            let vstart = j + 1;
            let Some(vlen) = self.src[vstart..].iter().position(|&c| c == quote) else {
                return Err(self.err_at(j, &format!("unterminated value of attribute `{aname}`")));
            };
            let vend = vstart + vlen;
            if let Some(lt) = self.src[vstart..vend].iter().position(|&c| c == b'<') {
                return Err(self.err_at(
                    vstart + lt,
                    &format!("`<` is not allowed in the value of attribute `{aname}`: write &lt;"),
                ));
            }
            let value = self.decode(vstart..vend, true)?;
            if attrs.iter().any(|a| a.name == aname) {
                return Err(self.err_at(i, &format!("attribute `{aname}` appears twice in <{name}>")));
            }
            attrs.push(Attr {
                name: aname,
                name_span: i..an_end,
                value_span: vstart..vend,
                quote,
                raw: self.text_of(vstart..vend),
                value,
                span: i..vend + 1,
            });
            i = vend + 1;
        }
        self.pos = i;
        let elem = Element { name, start_tag: start..i, end_tag: None, attrs, children: Vec::new() };
        if self.stack.is_empty() {
            self.seen_root = true;
        }
        let id = self.push(Kind::Element(elem), start..i);
        if !self_closing {
            self.stack.push(id);
        }
        Ok(())
    }

    fn parse_end_tag(&mut self) -> Result<(), ParseError> {
        let start = self.pos;
        let name_end = self.read_name(start + 2);
        let name = self.text_of(start + 2..name_end);
        let i = self.skip_ws(name_end);
        if name.is_empty() || self.src.get(i) != Some(&b'>') {
            return Err(self.err_at(start, "malformed end tag (expected `</name>`)"));
        }
        let Some(open) = self.stack.pop() else {
            return Err(self.err_at(start, &format!("end tag </{name}> without a matching start tag")));
        };
        let ostart = self.nodes[open].span.start;
        let (ol, oc) = line_col_in(self.src, &self.line_starts, ostart);
        let end = i + 1;
        if let Kind::Element(e) = &mut self.nodes[open].kind {
            if e.name != name {
                let oname = e.name.clone();
                return Err(self.err_at(
                    start,
                    &format!("end tag </{name}> does not match <{oname}> opened at line {ol}, column {oc}"),
                ));
            }
            e.end_tag = Some(start..end);
        }
        self.nodes[open].span.end = end;
        self.pos = end;
        Ok(())
    }

    fn parse_text(&mut self) -> Result<(), ParseError> {
        let start = self.pos;
        let end = self.src[start..].iter().position(|&c| c == b'<').map(|p| start + p).unwrap_or(self.src.len());
        if self.stack.is_empty() {
            if let Some(p) = self.src[start..end].iter().position(|&c| !is_ws(c)) {
                let msg = if self.seen_root {
                    "text after the root element"
                } else {
                    "text before the root element (a cluster.conf starts with `<?xml`, a comment or `<cluster`)"
                };
                return Err(self.err_at(start + p, msg));
            }
        } else {
            if let Some(p) = self.find_in(start, end, b"]]>") {
                return Err(self.err_at(p, "`]]>` is not allowed in text"));
            }
            self.decode(start..end, false)?;
        }
        self.pos = end;
        self.push(Kind::Text, start..end);
        Ok(())
    }

    fn find_in(&self, from: usize, to: usize, pat: &[u8]) -> Option<usize> {
        self.src[from..to].windows(pat.len()).position(|w| w == pat).map(|p| from + p)
    }

    /// Check references in `r` and return the decoded text (attribute values normalised).
    fn decode(&self, r: Span, attr: bool) -> Result<String, ParseError> {
        let s = &self.src[r.clone()];
        let mut out = String::with_capacity(s.len());
        let mut i = 0;
        let mut lit_start = 0;
        let flush = |out: &mut String, a: usize, b: usize| {
            let t = String::from_utf8_lossy(&s[a..b]);
            if attr {
                for c in t.chars() {
                    out.push(if matches!(c, '\t' | '\n' | '\r') { ' ' } else { c });
                }
            } else {
                out.push_str(&t);
            }
        };
        while i < s.len() {
            if s[i] != b'&' {
                i += 1;
                continue;
            }
            flush(&mut out, lit_start, i);
            let Some(semi) = s[i..].iter().take(40).position(|&c| c == b';') else {
                return Err(self.err_at(r.start + i, "`&` must start a reference such as &amp; (write &amp; for a literal &)"));
            };
            let body = &s[i + 1..i + semi];
            let text = String::from_utf8_lossy(body);
            let decoded: Option<String> = if let Some(num) = text.strip_prefix('#') {
                let cp = if let Some(hex) = num.strip_prefix('x') {
                    u32::from_str_radix(hex, 16).ok()
                } else {
                    num.parse::<u32>().ok()
                };
                match cp.and_then(char::from_u32) {
                    Some(c) if c == '\t' || c == '\n' || c == '\r' || c >= ' ' => Some(c.to_string()),
                    _ => return Err(self.err_at(r.start + i, &format!("invalid character reference &{text};"))),
                }
            } else {
                match &*text {
                    "amp" => Some("&".into()),
                    "lt" => Some("<".into()),
                    "gt" => Some(">".into()),
                    "quot" => Some("\"".into()),
                    "apos" => Some("'".into()),
                    _ => {
                        let valid = !body.is_empty() && is_name_start(body[0]) && body.iter().all(|&c| is_name_char(c));
                        if !valid {
                            return Err(self.err_at(
                                r.start + i,
                                "`&` must start a reference such as &amp; (write &amp; for a literal &)",
                            ));
                        }
                        if !self.internal_subset {
                            return Err(self.err_at(r.start + i, &format!("entity &{text}; is not defined")));
                        }
                        None
                    }
                }
            };
            match decoded {
                Some(d) => out.push_str(&d),
                None => out.push_str(&format!("&{text};")),
            }
            i += semi + 1;
            lit_start = i;
        }
        flush(&mut out, lit_start, s.len());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(s: &str) -> Document {
        let d = Document::parse(s.as_bytes()).unwrap_or_else(|e| panic!("{e} in {s:?}"));
        assert_eq!(d.to_bytes(), s.as_bytes());
        d
    }

    #[test]
    fn round_trips_odd_syntax() {
        rt("\u{feff}<?xml version='1.0'?>\r\n<!DOCTYPE cluster [ <!ENTITY pw \"x>y\"> ]>\r\n<?pi data?><cluster a='1'\r\n  b = \"&amp;&#38;&#x26;&pw;\" xmlns:x=\"u\" x:y='z'><![CDATA[<&>]]><!-- c --></cluster >");
        rt("<cluster/>");
        rt("<cluster name=\"a\"></cluster>\n\n<!-- tail -->");
    }

    #[test]
    fn errors_have_positions() {
        let e = Document::parse(b"<cluster>\n  <device name=\"a\" ADDARGS/>\n</cluster>").unwrap_err();
        assert_eq!((e.line, e.col), (2, 20), "{e}");
        let e = Document::parse(b"<cluster>\n<a></b>\n</cluster>").unwrap_err();
        assert_eq!((e.line, e.col), (2, 4));
        let e = Document::parse(b"<cluster p=\"a&b\"/>").unwrap_err();
        assert_eq!((e.line, e.col), (1, 14));
        assert!(Document::parse(b"<a/><b/>").is_err());
        assert!(Document::parse_fragment(b"<a/>\n<b/>\n").is_ok());
        assert!(Document::parse(b"<a><!-- x -- y --></a>").is_err());
        assert!(Document::parse(b"<a>&nbsp;</a>").is_err());
        assert!(Document::parse(b"<a x='1' x='2'/>").is_err());
    }

    #[test]
    fn set_attr_escapes_and_keeps_quote() {
        let d = rt("<cluster><fencedevice name='d' passwd='old'/></cluster>");
        let fd = d.child(d.root().unwrap(), "fencedevice").unwrap();
        let p = d.set_attr(fd, "passwd", "a&b<c>'\"").unwrap();
        let out = apply_patches(d.source(), &[p]).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert_eq!(s, "<cluster><fencedevice name='d' passwd='a&amp;b&lt;c&gt;&apos;\"'/></cluster>");
        let d2 = Document::parse(s.as_bytes()).unwrap();
        let fd = d2.child(d2.root().unwrap(), "fencedevice").unwrap();
        assert_eq!(d2.attr_value(fd, "passwd"), Some("a&b<c>'\""));
    }

    #[test]
    fn insert_child_copies_indent_and_crlf() {
        let src = "<cluster>\r\n\t<clusternodes>\r\n\t\t<clusternode name=\"a\" nodeid=\"1\"/>\r\n\t</clusternodes>\r\n</cluster>\r\n";
        let d = rt(src);
        let cns = d.child(d.root().unwrap(), "clusternodes").unwrap();
        let p = d.insert_child(cns, None, &NewElement::new("clusternode").attr("name", "b").attr("nodeid", "2")).unwrap();
        let out = String::from_utf8(apply_patches(d.source(), &p).unwrap()).unwrap();
        assert_eq!(out, "<cluster>\r\n\t<clusternodes>\r\n\t\t<clusternode name=\"a\" nodeid=\"1\"/>\r\n\t\t<clusternode name=\"b\" nodeid=\"2\"/>\r\n\t</clusternodes>\r\n</cluster>\r\n");
        // into a self-closing parent
        let d = rt("<cluster>\n  <clusternodes>\n    <clusternode name=\"a\" nodeid=\"1\" />\n  </clusternodes>\n</cluster>\n");
        let cn = d.child(d.child(d.root().unwrap(), "clusternodes").unwrap(), "clusternode").unwrap();
        let p = d.insert_child(cn, None, &NewElement::new("fence").child(NewElement::new("method").attr("name", "1"))).unwrap();
        let out = String::from_utf8(apply_patches(d.source(), &p).unwrap()).unwrap();
        assert_eq!(out, "<cluster>\n  <clusternodes>\n    <clusternode name=\"a\" nodeid=\"1\">\n      <fence>\n        <method name=\"1\"/>\n      </fence>\n    </clusternode>\n  </clusternodes>\n</cluster>\n");
    }

    #[test]
    fn remove_and_move() {
        let d = rt("<f>\n  <m name=\"1\"/>\n  <m name=\"2\">\n    <d/>\n  </m>\n</f>");
        let ms = d.children_named(d.root().unwrap(), "m");
        let out = apply_patches(d.source(), &[d.remove_element(ms[0])]).unwrap();
        assert_eq!(out, b"<f>\n  <m name=\"2\">\n    <d/>\n  </m>\n</f>");
        let out = apply_patches(d.source(), &d.move_element(ms[1], Some(ms[0])).unwrap()).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "<f>\n  <m name=\"2\">\n    <d/>\n  </m>\n  <m name=\"1\"/>\n</f>");
        let out = apply_patches(d.source(), &d.move_element(ms[0], None).unwrap()).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "<f>\n  <m name=\"2\">\n    <d/>\n  </m>\n  <m name=\"1\"/>\n</f>");
    }

    #[test]
    fn masking() {
        let d = rt("<c><fencedevice passwd=\"s&amp;3\" login='x' snmp_priv_passwd='p'/></c>");
        let m = d.masked();
        assert!(!m.contains("s&amp;3") && !m.contains("'p'"), "{m}");
        assert!(mask_secrets_lenient("<c passwd=\"abc\" ADDARGS/>").contains(MASK));
        assert!(!mask_secrets_lenient("<c passwd=\"abc\" ADDARGS/>").contains("abc"));
    }
}
