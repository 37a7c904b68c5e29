//! Lossless round trip: every corpus, rendered and fragment file, and synthetic files exercising
//! every XML construct, parse and reassemble byte for byte.
use std::path::PathBuf;
use twonode::clusterconf::document::{Document, Kind};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/clusterconf/corpus")
}

fn files_in(sub: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(corpus_dir().join(sub))
        .expect("corpus dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "SOURCES.txt"))
        .collect();
    v.sort();
    v
}

#[test]
fn corpus_round_trips_byte_for_byte() {
    let files = files_in("");
    assert!(files.len() >= 20, "corpus missing: {files:?}");
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let doc = Document::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert_eq!(doc.to_bytes(), bytes, "{}", f.display());
    }
}

#[test]
fn rendered_round_trip_and_r2_is_refused_with_position() {
    for f in files_in("rendered") {
        let bytes = std::fs::read(&f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        match Document::parse(&bytes) {
            Ok(doc) => assert_eq!(doc.to_bytes(), bytes, "{name}"),
            Err(e) => {
                // ccs_tool's skeleton with the literal ADDARGS placeholder is not XML
                assert!(name.starts_with("R2_"), "{name}: {e}");
                assert_eq!((e.line, e.col), (9, 33), "{e}");
                assert!(e.msg.contains("ADDARGS"), "{e}");
            }
        }
    }
}

#[test]
fn fragments_round_trip() {
    let files = files_in("fragments");
    assert_eq!(files.len(), 5);
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let doc = Document::parse_fragment(&bytes).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert_eq!(doc.to_bytes(), bytes, "{}", f.display());
    }
}

const SYNTHETIC: &[(&str, &str)] = &[
    ("crlf", "<?xml version=\"1.0\"?>\r\n<cluster name=\"c\" config_version=\"1\">\r\n  <clusternodes>\r\n    <clusternode name=\"a\" nodeid=\"1\"/>\r\n  </clusternodes>\r\n</cluster>\r\n"),
    ("bom", "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<cluster name=\"c\" config_version=\"1\"/>\n"),
    ("entities", "<cluster name=\"a&amp;b\" config_version=\"1\"><fencedevice passwd=\"&lt;&gt;&quot;&apos;&#65;&#x42;\"/>text &amp; more</cluster>"),
    ("cdata", "<cluster name=\"c\" config_version=\"1\"><![CDATA[ <not> & markup ]]></cluster>"),
    ("doctype", "<?xml version=\"1.0\"?>\n<!DOCTYPE cluster SYSTEM \"cluster.dtd\">\n<cluster name=\"c\" config_version=\"1\"/>"),
    ("doctype-subset", "<!DOCTYPE cluster [\n  <!ENTITY pw \"secret\">\n  <!-- ] > -->\n]>\n<cluster name=\"c\" config_version=\"1\" x=\"&pw;\"/>\n"),
    ("pi", "<?xml version=\"1.0\"?>\n<?xml-stylesheet href=\"x.xsl\"?>\n<cluster name=\"c\" config_version=\"1\"><?app data?></cluster>\n<?tail?>"),
    ("namespaced", "<cluster xmlns:x=\"urn:x\" x:foo=\"1\" name=\"c\" config_version=\"1\"><x:ext x:a='b'/></cluster>"),
    ("single-quotes", "<cluster name='c' config_version='1'><cman two_node='1' expected_votes=\"1\"/></cluster>\n"),
    ("split-attrs", "<cluster\n    name=\"c\"\n    config_version = '1'\n  >\n  <clusternode\tname=\"a\"\n\tnodeid=\"1\"\n  />\n</cluster>\n"),
    ("no-final-newline", "<cluster name=\"c\" config_version=\"1\">\n</cluster>"),
    ("comments-everywhere", "<!-- head -->\n<cluster name=\"c\" config_version=\"1\"><!---->\n<!-- a - b -->\n</cluster>\n<!-- tail -->\n\n"),
    ("utf8", "<cluster name=\"c\" config_version=\"1\"><!-- Grüße ✓ --><clusternode name=\"nœud\" nodeid=\"1\"/></cluster>\n"),
    ("tabs-mixed", "<cluster name=\"c\" config_version=\"1\">\n\t<clusternodes>\n  \t<clusternode name=\"a\" nodeid=\"1\"></clusternode>\n\t</clusternodes>\n</cluster>\n"),
    ("end-tag-space", "<cluster name=\"c\" config_version=\"1\" ><rm ></rm ></cluster  >\n"),
];

#[test]
fn synthetic_constructs_round_trip() {
    for (name, text) in SYNTHETIC {
        let doc = Document::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(doc.to_bytes(), text.as_bytes(), "{name}");
        let root = doc.root().unwrap();
        assert_eq!(doc.name(root), "cluster", "{name}");
    }
}

#[test]
fn synthetic_values_decode() {
    let d = Document::parse(SYNTHETIC[2].1.as_bytes()).unwrap();
    let root = d.root().unwrap();
    assert_eq!(d.attr_value(root, "name"), Some("a&b"));
    let fd = d.child(root, "fencedevice").unwrap();
    assert_eq!(d.attr_value(fd, "passwd"), Some("<>\"'AB"));
    assert_eq!(d.attr(fd, "passwd").unwrap().raw, "&lt;&gt;&quot;&apos;&#65;&#x42;");
    let d = Document::parse(SYNTHETIC[1].1.as_bytes()).unwrap();
    assert!(d.has_bom());
    assert_eq!(d.pos(d.root().unwrap()), (2, 1));
    let d = Document::parse(SYNTHETIC[0].1.as_bytes()).unwrap();
    assert_eq!(d.newline(), "\r\n");
    assert!(matches!(d.nodes[d.top[0]].kind, Kind::XmlDecl));
}

#[test]
fn malformed_inputs_give_line_and_column() {
    let cases: &[(&str, (usize, usize))] = &[
        ("<cluster>\n  <a>\n</cluster>", (3, 1)),
        ("<cluster name=\"x\" name=\"y\"/>", (1, 19)),
        ("<cluster>\n <fencedevice passwd=\"a&b\"/>\n</cluster>", (2, 24)),
        ("<cluster>\n <x a=\"<\"/>\n</cluster>", (2, 8)),
        ("<cluster>", (1, 10)),
        ("<cluster/>\n<second/>", (2, 1)),
        ("hello<cluster/>", (1, 1)),
        ("<cluster a=1/>", (1, 12)),
        ("\n<?xml version=\"1.0\"?><cluster/>", (2, 1)),
        ("<cluster>\u{1}</cluster>", (1, 10)),
    ];
    for (text, want) in cases {
        let e = Document::parse(text.as_bytes()).expect_err(text);
        assert_eq!((e.line, e.col), *want, "{text:?}: {e}");
    }
    let e = Document::parse(b"<cluster>\xff</cluster>").unwrap_err();
    assert_eq!((e.line, e.col), (1, 10));
}

// ---------------------------------------------------------------- property tests: random edits

use proptest::prelude::*;
use twonode::clusterconf::document::apply_patches;
use twonode::clusterconf::edit::{self, Op};
use twonode::clusterconf::model::Model;

/// Corpus files that are cman 3 configurations (root <cluster>, integer config_version).
fn editable_corpus() -> Vec<(String, Vec<u8>)> {
    files_in("")
        .into_iter()
        .filter_map(|p| {
            let b = std::fs::read(&p).ok()?;
            let (_d, m) = Model::parse(&b).ok()?;
            let name = p.file_name()?.to_string_lossy().to_string();
            (m.root_element == "cluster" && m.version().is_some()).then_some((name, b))
        })
        .collect()
}

/// The byte range of `old` that differs from `new` (common prefix / suffix).
fn changed_range(old: &[u8], new: &[u8]) -> Option<std::ops::Range<usize>> {
    if old == new {
        return None;
    }
    let pre = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let max_suf = old.len().min(new.len()) - pre;
    let suf = old.iter().rev().zip(new.iter().rev()).take(max_suf).take_while(|(a, b)| a == b).count();
    Some(pre..old.len() - suf)
}

/// Undo the config_version bump so the rest of the change can be located.
fn reset_version(new: &[u8], old_version: &str) -> Vec<u8> {
    let d = Document::parse(new).expect("edited file parses");
    let root = d.root().unwrap();
    let p = d.set_attr(root, "config_version", old_version).unwrap();
    apply_patches(new, &[p]).unwrap()
}

/// The span of `id` extended to whole lines.
fn line_span(d: &Document, id: usize) -> std::ops::Range<usize> {
    let s = d.span(id);
    let src = d.source();
    let start = src[..s.start].iter().rposition(|&b| b == b'\n').map(|p| p + 1).unwrap_or(0);
    let end = src[s.end..].iter().position(|&b| b == b'\n').map(|p| s.end + p + 1).unwrap_or(src.len());
    start..end
}

fn value_strategy() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-zA-Z0-9 &<>\"'=;#/.é-]{0,12}").unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn random_edits_touch_only_their_element_and_the_version(
        file_ix in 0usize..64, pick in 0usize..1000, kind in 0usize..7, value in value_strategy(), num in 1u64..9
    ) {
        let corpus = editable_corpus();
        let (name, old) = &corpus[file_ix % corpus.len()];
        let doc = Document::parse(old).unwrap();
        let (_d, m) = Model::parse(old).unwrap();
        let old_version = m.config_version.as_ref().unwrap().value.clone();
        let root = doc.root().unwrap();
        let cns = doc.child(root, "clusternodes");
        let nodes: Vec<usize> = cns.map(|c| doc.children_named(c, "clusternode")).unwrap_or_default();
        let fds: Vec<usize> = doc.child(root, "fencedevices").map(|f| doc.children_named(f, "fencedevice")).unwrap_or_default();
        let node_name = |i: usize| doc.attr_value(nodes[i], "name").unwrap_or("").to_string();
        // (operation, element whose (line-extended) span must contain the change, expected attr check)
        let (op, scope, check): (Op, Option<usize>, Option<(String, String)>) = match kind {
            0 if !nodes.is_empty() => {
                let i = pick % nodes.len();
                (Op::NodeSet { name: node_name(i), set: vec![("x_prop".into(), value.clone())], unset: vec![] }, Some(nodes[i]), Some(("x_prop".into(), value.clone())))
            }
            1 if !fds.is_empty() => {
                let i = pick % fds.len();
                let dn = doc.attr_value(fds[i], "name").unwrap_or("").to_string();
                (Op::DeviceSet { name: dn, set: vec![("passwd".into(), value.clone())], unset: vec![] }, Some(fds[i]), None)
            }
            2 if !nodes.is_empty() && !fds.is_empty() => {
                let i = pick % nodes.len();
                let dn = doc.attr_value(fds[pick % fds.len()], "name").unwrap_or("").to_string();
                (Op::Bind { node: node_name(i), method: format!("m{num}"), device: dn, attrs: vec![("port".into(), value.clone())], unfence: false, append: false }, Some(nodes[i]), None)
            }
            3 if !nodes.is_empty() => {
                let i = pick % nodes.len();
                (Op::NodeRemove { name: node_name(i) }, Some(nodes[i]), None)
            }
            4 if cns.is_some() => (Op::NodeAdd { name: format!("prop-node-{pick}"), nodeid: None, votes: Some(num), attrs: vec![] }, cns, None),
            5 if !nodes.is_empty() => {
                let i = pick % nodes.len();
                (Op::NodeSet { name: node_name(i), set: vec![("votes".into(), num.to_string())], unset: vec!["x_absent".into()] }, Some(nodes[i]), Some(("votes".into(), num.to_string())))
            }
            _ => (Op::Bump, None, None),
        };
        let new = match edit::apply(old, &op, None) {
            Ok(n) => n,
            Err(e) => { prop_assert!(false, "{name}: {:?} failed: {e}", op); unreachable!() }
        };
        // re-parses, version + 1
        let (_nd, nm) = Model::parse(&new).map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
        prop_assert_eq!(nm.version(), m.version().map(|v| v + 1), "{}", name);
        let back = reset_version(&new, &old_version);
        match scope {
            None => prop_assert!(back == *old, "{}: bump changed more than config_version", name),
            Some(el) => {
                // (setting votes to the value it already has legitimately changes nothing else)
                prop_assert!(back != *old || kind == 5, "{}: {:?} changed nothing", name, op);
                // everything before and after the element's lines is untouched
                let allowed = line_span(&doc, el);
                let tail = old.len() - allowed.end;
                prop_assert!(back.len() >= allowed.start + tail);
                prop_assert!(back[..allowed.start] == old[..allowed.start] && back[back.len() - tail..] == old[allowed.end..],
                    "{}: {:?} changed bytes outside the element {:?}", name, op, allowed);
            }
        }
        if let Some((k, v)) = check {
            let nd = Document::parse(&new).unwrap();
            let nroot = nd.root().unwrap();
            let ncns = nd.child(nroot, "clusternodes").unwrap();
            let found = nd.children_named(ncns, "clusternode").into_iter().any(|n| nd.attr_value(n, &k) == Some(v.as_str()));
            prop_assert!(found, "{}: value {:?} did not survive escaping", name, v);
        }
    }

    #[test]
    fn set_attr_round_trips_any_value(file_ix in 0usize..64, pick in 0usize..10_000, value in value_strategy(), single in any::<bool>()) {
        let corpus = editable_corpus();
        let (_name, old) = &corpus[file_ix % corpus.len()];
        let doc = Document::parse(old).unwrap();
        let elems: Vec<usize> = (0..doc.nodes.len()).filter(|&i| doc.element(i).is_some()).collect();
        let el = elems[pick % elems.len()];
        let key = if single { "x:ns" } else { "x_plain" };
        let p = doc.set_attr(el, key, &value).unwrap();
        let new = apply_patches(old, std::slice::from_ref(&p)).unwrap();
        let nd = Document::parse(&new).unwrap();
        prop_assert_eq!(nd.to_bytes(), new.clone());
        prop_assert_eq!(nd.attr_value(el, key), Some(value.as_str()));
        // the change is inside the start tag
        let r = changed_range(old, &new).unwrap();
        let st = doc.element(el).unwrap().start_tag.clone();
        prop_assert!(st.start <= r.start && r.end <= st.end);
    }
}
