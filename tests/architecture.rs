//! The house rules of `docs/architecture.md`, checked on the source itself: imports run downward
//! only (cli -> doctor, lab -> the areas -> the foundations), no module outside `src/cli` reaches
//! into the CLI, no circle between top-level folders, and no source file grows past 1,500 lines.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layers, top to bottom. A module may use modules of its own layer (no circle) or of lower ones.
const LAYERS: &[&[&str]] = &[
    &["main", "cli"],
    &["doctor", "lab"],
    &["ha", "pacemaker", "fence", "drbd", "quorum"],
    &["clusterconf", "diag", "host", "util"],
];

fn layer_of(top: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&top))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level folder (or file) of `src/` a source file belongs to.
fn top_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().to_string();
    first.trim_end_matches(".rs").to_string()
}

/// The code of a file without comments and without its `#[cfg(test)] mod tests` (unit tests may
/// use anything).
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every top-level module a file names through `crate::`: `crate::fence::x`, `use crate::{fence, drbd::y}`.
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // top-level names of the group: split at commas outside nested braces
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        push_ident(&item, &mut out);
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            push_ident(&item, &mut out);
        } else {
            push_ident(rest, &mut out);
        }
    }
    out
}

fn push_ident(s: &str, out: &mut BTreeSet<String>) {
    let id: String = s.trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    if !id.is_empty() && id != "self" {
        out.insert(id);
    }
}

/// (from top-level module, to top-level module) -> the files that make the edge.
fn edges() -> BTreeMap<(String, String), Vec<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for f in files {
        let from = top_of(&src, &f);
        if from == "lib" {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(&f).unwrap());
        for to in crate_refs(&code) {
            if to != from {
                out.entry((from.clone(), to)).or_default().push(f.strip_prefix(&src).unwrap().display().to_string());
            }
        }
    }
    out
}

#[test]
fn no_module_outside_the_cli_imports_the_cli() {
    let bad: Vec<String> =
        edges().into_iter().filter(|((from, to), _)| to == "cli" && from != "main").map(|((from, _), files)| format!("{from} -> cli in {files:?}")).collect();
    assert!(bad.is_empty(), "the CLI is the top layer; these reach up into it:\n{}", bad.join("\n"));
}

#[test]
fn imports_run_downward() {
    let mut bad = Vec::new();
    for ((from, to), files) in edges() {
        match (layer_of(&from), layer_of(&to)) {
            (Some(a), Some(b)) if b < a => bad.push(format!("{from} (layer {a}) -> {to} (layer {b}) in {files:?}")),
            (None, _) => bad.push(format!("{from} is in no layer of tests/architecture.rs: add it (and to docs/architecture.md)")),
            (_, None) => bad.push(format!("{to} (used by {from}) is in no layer of tests/architecture.rs")),
            _ => {}
        }
    }
    assert!(bad.is_empty(), "imports must run downward:\n{}", bad.join("\n"));
}

#[test]
fn no_circle_between_top_level_folders() {
    let e = edges();
    let graph: BTreeMap<&str, Vec<&str>> = e.keys().fold(BTreeMap::new(), |mut g, (a, b)| {
        g.entry(a.as_str()).or_default().push(b.as_str());
        g
    });
    // depth-first search for a back edge, reporting the circle
    fn visit<'a>(n: &'a str, g: &BTreeMap<&'a str, Vec<&'a str>>, stack: &mut Vec<&'a str>, done: &mut BTreeSet<&'a str>) -> Option<Vec<&'a str>> {
        if let Some(i) = stack.iter().position(|s| *s == n) {
            let mut c = stack[i..].to_vec();
            c.push(n);
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n);
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n);
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, &graph, &mut Vec::new(), &mut done) {
            let why: Vec<String> = c.windows(2).map(|w| format!("{} -> {} in {:?}", w[0], w[1], e[&(w[0].to_string(), w[1].to_string())])).collect();
            panic!("circle between top-level folders:\n{}", why.join("\n"));
        }
    }
}

#[test]
fn no_source_file_over_1500_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            // unit tests aside
            let lines = code_of(&text).lines().count();
            (lines > 1500).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these:\n{}", long.join("\n"));
}

#[test]
fn the_reference_scanner_reads_groups() {
    let r = crate_refs("use crate::{fence::gate::{a, b}, drbd, util::x};\nlet y = crate::host::Local;");
    assert_eq!(r.into_iter().collect::<Vec<_>>(), ["drbd", "fence", "host", "util"]);
}
