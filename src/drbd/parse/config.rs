//! DRBD configuration syntax: `drbdadm dump`, drbd.conf, and `drbdsetup show` (8.0 - 9), plus
//! `drbdadm dump-xml`.
//!
//! ```text
//! resource r0 {
//!     net { after-sb-0pri discard-zero-changes; }
//!     on alice { node-id 0; address ipv4 127.0.0.1:7789; volume 0 { device /dev/drbd0 minor 0; } }
//! }
//! ```
//! Read into a small tree (sections `word args { ... }`, statements `word values ;`, `#` comments,
//! quoted strings) and then interpreted. `drbdsetup show` of 8.0/8.3 has no `resource` wrapper:
//! its top-level `net {}`/`_this_host {}` sections make one unnamed resource. `_is_default` markers
//! and `[ 0 ]` meta-disk indexes are dropped.
use super::{Line, ParseError};
use crate::drbd::state::*;

pub fn looks_like(t: &str) -> bool {
    let first = t.split_whitespace().next().unwrap_or("");
    let opens = t.contains('{');
    (opens
        && matches!(
            first,
            "resource" | "global" | "common" | "disk" | "net" | "syncer" | "_this_host" | "_remote_host" | "skip" | "options" | "handlers" | "startup"
        ))
        || (t.starts_with("# resource ") || t.starts_with("# /") || t.starts_with("include "))
}

#[derive(Debug, Clone)]
enum Item {
    Stmt { words: Vec<String> },
    Section { words: Vec<String>, items: Vec<Item>, line: usize },
}

struct Tok {
    text: String,
    line: usize,
    quoted: bool,
}

fn tokenize(lines: &[Line<'_>]) -> Result<Vec<Tok>, ParseError> {
    let mut out = Vec::new();
    for &(no, raw) in lines {
        let mut chars = raw.char_indices().peekable();
        while let Some(&(i, c)) = chars.peek() {
            if c.is_whitespace() {
                chars.next();
                continue;
            }
            if c == '#' {
                break;
            }
            if matches!(c, '{' | '}' | ';') {
                out.push(Tok { text: c.to_string(), line: no, quoted: false });
                chars.next();
                continue;
            }
            if c == '"' {
                chars.next();
                let mut s = String::new();
                let mut closed = false;
                while let Some((_, d)) = chars.next() {
                    match d {
                        '\\' => {
                            if let Some((_, e)) = chars.next() {
                                s.push(e);
                            }
                        }
                        '"' => {
                            closed = true;
                            break;
                        }
                        _ => s.push(d),
                    }
                }
                if !closed {
                    return Err(ParseError::new(no, raw, format!("unterminated string starting at column {}", i + 1)));
                }
                out.push(Tok { text: s, line: no, quoted: true });
                continue;
            }
            let start = i;
            let mut end = raw.len();
            while let Some(&(j, d)) = chars.peek() {
                if d.is_whitespace() || matches!(d, '{' | '}' | ';' | '"' | '#') {
                    end = j;
                    break;
                }
                chars.next();
            }
            out.push(Tok { text: raw[start..end].to_string(), line: no, quoted: false });
        }
    }
    Ok(out)
}

fn line_text<'a>(lines: &[Line<'a>], no: usize) -> &'a str {
    let first = lines.first().map_or(0, |l| l.0);
    lines.get(no.wrapping_sub(first)).map_or("", |l| l.1)
}

fn build(toks: &[Tok], lines: &[Line<'_>]) -> Result<Vec<Item>, ParseError> {
    // iterative, so deeply nested garbage cannot overflow the stack
    let mut stack: Vec<(Vec<String>, Vec<Item>, usize)> = vec![(vec![], vec![], 0)];
    let mut words: Vec<String> = Vec::new();
    let mut wline = 0;
    for t in toks {
        if t.quoted {
            if words.is_empty() {
                wline = t.line;
            }
            words.push(t.text.clone());
            continue;
        }
        match t.text.as_str() {
            "{" => {
                if words.is_empty() {
                    return Err(ParseError::new(t.line, line_text(lines, t.line), "`{` without a section name"));
                }
                stack.push((std::mem::take(&mut words), vec![], wline));
            }
            "}" => {
                if !words.is_empty() {
                    return Err(ParseError::new(
                        wline,
                        line_text(lines, wline),
                        format!("missing `;` after `{}`", words.join(" ")),
                    ));
                }
                if stack.len() < 2 {
                    return Err(ParseError::new(t.line, line_text(lines, t.line), "`}` without a matching `{`"));
                }
                let (w, items, l) = stack.pop().unwrap_or_default();
                if let Some(top) = stack.last_mut() {
                    top.1.push(Item::Section { words: w, items, line: l });
                }
            }
            ";" => {
                if !words.is_empty() {
                    let top = stack.last_mut().map(|s| &mut s.1);
                    if let Some(top) = top {
                        top.push(Item::Stmt { words: std::mem::take(&mut words) });
                    }
                }
            }
            w => {
                if w == "_is_default" || w == "[" || w == "]" {
                    continue;
                }
                if words.is_empty() {
                    wline = t.line;
                }
                words.push(w.to_string());
            }
        }
    }
    if !words.is_empty() {
        return Err(ParseError::new(wline, line_text(lines, wline), format!("missing `;` after `{}`", words.join(" "))));
    }
    if stack.len() > 1 {
        let (w, _, l) = stack.last().cloned().unwrap_or_default();
        return Err(ParseError::new(l, line_text(lines, l), format!("section `{}` is never closed (missing `}}`)", w.join(" "))));
    }
    Ok(stack.pop().map(|s| s.1).unwrap_or_default())
}

pub fn parse(lines: &[Line<'_>]) -> Result<DrbdState, ParseError> {
    let toks = tokenize(lines)?;
    let items = build(&toks, lines)?;
    let mut st = DrbdState::default();
    let mut common = ResourceConfig::default();
    let mut loose = ResourceConfig::default(); // 8.0/8.3 `drbdsetup show` without a resource wrapper
    let mut loose_used = false;
    for it in &items {
        match it {
            Item::Section { words, items, line } => match words[0].as_str() {
                "global" => {}
                "common" => {
                    for i in items {
                        section_into(&mut common, i, lines)?;
                    }
                }
                "resource" => {
                    let Some(name) = words.get(1) else {
                        return Err(ParseError::new(*line, line_text(lines, *line), "`resource` without a name"));
                    };
                    let mut cfg = common.clone();
                    cfg.name = name.clone();
                    for i in items {
                        section_into(&mut cfg, i, lines)?;
                    }
                    inherit_volumes(&mut cfg);
                    st.configs.push(cfg);
                }
                "skip" => {}
                _ => {
                    loose_used = true;
                    section_into(&mut loose, it, lines)?;
                }
            },
            Item::Stmt { words, .. } => match words[0].as_str() {
                "include" => {}
                _ => {
                    loose_used = true;
                    section_into(&mut loose, it, lines)?;
                }
            },
        }
    }
    if loose_used {
        st.generation = Some(Generation::V8);
        st.configs.push(loose);
    }
    if st.configs.is_empty() {
        let (no, l) = lines.iter().find(|l| !l.1.trim().is_empty()).copied().unwrap_or((1, ""));
        return Err(ParseError::new(no, l, "no resource in the configuration"));
    }
    // runtime hints for `drbdsetup show` (the config of a running device names its minor)
    for c in &st.configs {
        if c.hosts.iter().any(|h| h.node_id.is_some()) {
            st.generation.get_or_insert(Generation::V9);
        }
    }
    Ok(st)
}

/// Hosts inherit resource-level volumes (9 style) and fill their own partial ones from them
/// (`volume 0 { device /dev/drbd0; }` at resource level with `disk` inside `on alice {}`).
fn inherit_volumes(cfg: &mut ResourceConfig) {
    for h in &mut cfg.hosts {
        for rv in &cfg.volumes {
            match h.volumes.iter_mut().find(|v| v.volume == rv.volume) {
                Some(hv) => {
                    hv.device = hv.device.take().or_else(|| rv.device.clone());
                    hv.minor = hv.minor.or(rv.minor);
                    hv.disk = hv.disk.take().or_else(|| rv.disk.clone());
                    hv.meta_disk = hv.meta_disk.take().or_else(|| rv.meta_disk.clone());
                }
                None => h.volumes.push(rv.clone()),
            }
        }
        h.volumes.sort_by_key(|v| v.volume);
    }
}

fn minor_of(words: &[String]) -> Option<u32> {
    if let Some(i) = words.iter().position(|w| w == "minor") {
        return words.get(i + 1).and_then(|m| m.parse().ok());
    }
    words.iter().find_map(|w| w.strip_prefix("/dev/drbd").and_then(|m| m.parse().ok()))
}

fn volume_from(vc: &mut VolumeConfig, items: &[Item]) {
    for i in items {
        if let Item::Stmt { words, .. } = i {
            volume_stmt(vc, words);
        }
    }
}

fn volume_stmt(vc: &mut VolumeConfig, words: &[String]) -> bool {
    let rest = || words[1..].iter().find(|w| *w != "minor" && w.parse::<u32>().is_err()).cloned();
    match words[0].as_str() {
        "device" => {
            vc.minor = minor_of(words);
            vc.device = rest().or_else(|| vc.minor.map(|m| format!("/dev/drbd{m}")));
        }
        "disk" => vc.disk = words.get(1).cloned(),
        "meta-disk" | "flexible-meta-disk" => vc.meta_disk = words.get(1).cloned(),
        _ => return false,
    }
    true
}

fn section_into(cfg: &mut ResourceConfig, it: &Item, lines: &[Line<'_>]) -> Result<(), ParseError> {
    match it {
        Item::Stmt { words, .. } => {
            // resource-level statements: protocol (8.x), device/disk/meta-disk (single-volume form)
            if words[0] == "protocol" {
                cfg.net.protocol = words.get(1).cloned();
            }
            let v = words[1..].join(" ");
            cfg.options.insert(words[0].clone(), v);
        }
        Item::Section { words, items, line } => {
            let kind = words[0].as_str();
            match kind {
                "on" | "_this_host" | "_remote_host" | "floating" => {
                    let name = match kind {
                        "on" => words.get(1).cloned().ok_or_else(|| {
                            ParseError::new(*line, line_text(lines, *line), "`on` without a host name")
                        })?,
                        _ => kind.to_string(),
                    };
                    let mut h = HostConfig { name, ..Default::default() };
                    let mut single = VolumeConfig::default();
                    let mut has_single = false;
                    for i in items {
                        match i {
                            Item::Stmt { words: w, .. } => match w[0].as_str() {
                                "node-id" => h.node_id = w.get(1).and_then(|x| x.parse().ok()),
                                "address" => h.address = Some(w[1..].join(" ")),
                                _ => has_single |= volume_stmt(&mut single, w),
                            },
                            Item::Section { words: w, items: vi, .. } if w[0] == "volume" => {
                                let mut vc = VolumeConfig {
                                    volume: w.get(1).and_then(|x| x.parse().ok()).unwrap_or(0),
                                    ..Default::default()
                                };
                                volume_from(&mut vc, vi);
                                // per-volume disk options
                                for sub in vi {
                                    if let Item::Section { words: sw, items: si, .. } = sub {
                                        flatten(cfg, &sw[0], si);
                                    }
                                }
                                h.volumes.push(vc);
                            }
                            Item::Section { .. } => {}
                        }
                    }
                    if has_single {
                        h.volumes.push(single);
                    }
                    cfg.hosts.push(h);
                }
                "volume" => {
                    let mut vc = VolumeConfig {
                        volume: words.get(1).and_then(|x| x.parse().ok()).unwrap_or(0),
                        ..Default::default()
                    };
                    volume_from(&mut vc, items);
                    cfg.volumes.push(vc);
                }
                "connection" | "connection-mesh" => {
                    // `drbdsetup show` (9): `_peer_node_id N;`, `path { _remote_host ipv4 A:P; }`,
                    // `net { _name "bob"; }` describe the peer
                    let mut peer_id: Option<u32> = None;
                    let mut peer_name: Option<String> = None;
                    let mut peer_addr: Option<String> = None;
                    for i in items {
                        match i {
                            Item::Section { words: w, items: si, .. } => {
                                if w[0] == "net" {
                                    net_into(cfg, si);
                                }
                                for x in si {
                                    if let Item::Stmt { words: sw } = x {
                                        match sw[0].as_str() {
                                            "_name" => peer_name = sw.get(1).cloned(),
                                            "_remote_host" => peer_addr = Some(sw[1..].join(" ")),
                                            _ => {}
                                        }
                                    }
                                }
                                flatten(cfg, &format!("{kind}.{}", w[0]), si);
                            }
                            Item::Stmt { words: w } if w[0] == "_peer_node_id" => {
                                peer_id = w.get(1).and_then(|x| x.parse().ok());
                            }
                            Item::Stmt { .. } => {}
                        }
                    }
                    if let Some(id) = peer_id {
                        if !cfg.hosts.iter().any(|h| h.node_id == Some(id)) {
                            cfg.hosts.push(HostConfig {
                                name: peer_name.unwrap_or_else(|| format!("peer node-id {id}")),
                                node_id: Some(id),
                                address: peer_addr,
                                volumes: vec![],
                            });
                        }
                    }
                }
                "net" => {
                    net_into(cfg, items);
                    flatten(cfg, "net", items);
                }
                "disk" => {
                    for i in items {
                        if let Item::Stmt { words: w, .. } = i {
                            if w[0] == "fencing" {
                                cfg.net.fencing = w.get(1).cloned();
                            }
                        }
                    }
                    flatten(cfg, "disk", items);
                }
                other => flatten(cfg, other, items),
            }
        }
    }
    Ok(())
}

fn net_into(cfg: &mut ResourceConfig, items: &[Item]) {
    for i in items {
        if let Item::Stmt { words, .. } = i {
            let v = words.get(1).cloned();
            match words[0].as_str() {
                "protocol" => cfg.net.protocol = v,
                "after-sb-0pri" => cfg.net.after_sb_0pri = v,
                "after-sb-1pri" => cfg.net.after_sb_1pri = v,
                "after-sb-2pri" => cfg.net.after_sb_2pri = v,
                "rr-conflict" => cfg.net.rr_conflict = v,
                "fencing" => cfg.net.fencing = v,
                "allow-two-primaries" => {
                    cfg.net.allow_two_primaries = Some(v.as_deref().is_none_or(|x| x == "yes"))
                }
                _ => {}
            }
        }
    }
}

fn flatten(cfg: &mut ResourceConfig, section: &str, items: &[Item]) {
    for i in items {
        match i {
            Item::Stmt { words, .. } => {
                cfg.options.insert(format!("{section}.{}", words[0]), words[1..].join(" "));
            }
            Item::Section { words, items, .. } => flatten(cfg, &format!("{section}.{}", words.join(" ")), items),
        }
    }
}

/// `drbdadm dump-xml`.
pub fn parse_xml(lines: &[Line<'_>]) -> Result<DrbdState, ParseError> {
    use quick_xml::events::Event;
    let text: String = lines.iter().map(|l| l.1).collect::<Vec<_>>().join("\n");
    let first = lines.first().map_or(1, |l| l.0);
    let line_at = |pos: usize| -> usize { first + text[..pos.min(text.len())].matches('\n').count() };
    let err = |pos: usize, msg: String| {
        let no = line_at(pos);
        ParseError::new(no, line_text(lines, no), msg)
    };
    let mut r = quick_xml::Reader::from_str(&text);
    r.config_mut().trim_text(true);
    let mut st = DrbdState::default();
    let mut path: Vec<String> = Vec::new();
    let mut cfg: Option<ResourceConfig> = None;
    let mut host: Option<HostConfig> = None;
    let mut vol: Option<VolumeConfig> = None;
    let mut section: Option<String> = None;
    let mut addr_attrs = (String::new(), String::new());
    let mut minor_attr: Option<u32> = None;
    loop {
        let pos = r.buffer_position() as usize;
        let ev = r.read_event().map_err(|e| err(pos, format!("invalid XML: {e}")))?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).to_string();
                let mut attrs = std::collections::BTreeMap::new();
                for a in e.attributes() {
                    let a = a.map_err(|e| err(pos, format!("invalid XML attribute: {e}")))?;
                    let k = String::from_utf8_lossy(a.key.as_ref()).to_string();
                    let v = a.unescape_value().map_err(|e| err(pos, format!("invalid XML attribute: {e}")))?;
                    attrs.insert(k, v.to_string());
                }
                let in_conn = path.iter().any(|p| p == "connection");
                match name.as_str() {
                    "resource" => {
                        cfg = Some(ResourceConfig { name: attrs.get("name").cloned().unwrap_or_default(), ..Default::default() })
                    }
                    "host" if !in_conn => {
                        host = Some(HostConfig {
                            name: attrs.get("name").cloned().unwrap_or_default(),
                            node_id: attrs.get("node-id").and_then(|x| x.parse().ok()),
                            ..Default::default()
                        })
                    }
                    "volume" => {
                        vol = Some(VolumeConfig {
                            volume: attrs.get("vnr").and_then(|x| x.parse().ok()).unwrap_or(0),
                            ..Default::default()
                        })
                    }
                    "device" => minor_attr = attrs.get("minor").and_then(|x| x.parse().ok()),
                    "address" => {
                        addr_attrs = (
                            attrs.get("family").cloned().unwrap_or_default(),
                            attrs.get("port").cloned().unwrap_or_default(),
                        )
                    }
                    "section" => section = attrs.get("name").cloned(),
                    "option" => {
                        if let (Some(c), Some(k)) = (cfg.as_mut(), attrs.get("name")) {
                            let v = attrs.get("value").cloned().unwrap_or_default();
                            let sec = section.clone().unwrap_or_default();
                            if sec == "net" {
                                let item = Item::Stmt { words: vec![k.clone(), v.clone()] };
                                net_into(c, std::slice::from_ref(&item));
                            }
                            c.options.insert(format!("{sec}.{k}"), v);
                        }
                    }
                    _ => {}
                }
                if matches!(ev, Event::Start(_)) {
                    path.push(name);
                }
            }
            Event::Text(t) => {
                let txt = t.unescape().map_err(|e| err(pos, format!("invalid XML text: {e}")))?.to_string();
                let in_conn = path.iter().any(|p| p == "connection");
                match path.last().map(String::as_str) {
                    Some("device") => {
                        if let Some(v) = vol.as_mut() {
                            v.device = Some(txt.clone());
                            v.minor = minor_attr.or_else(|| minor_of(std::slice::from_ref(&txt)));
                        }
                    }
                    Some("disk") => {
                        if let Some(v) = vol.as_mut() {
                            v.disk = Some(txt)
                        }
                    }
                    Some("meta-disk") => {
                        if let Some(v) = vol.as_mut() {
                            v.meta_disk = Some(txt)
                        }
                    }
                    Some("address") if !in_conn => {
                        if let Some(h) = host.as_mut() {
                            let (fam, port) = &addr_attrs;
                            h.address = Some(format!("{}{}:{}", if fam.is_empty() { String::new() } else { format!("{fam} ") }, txt, port));
                        }
                    }
                    _ => {}
                }
            }
            Event::End(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).to_string();
                path.pop();
                let in_conn = path.iter().any(|p| p == "connection");
                match name.as_str() {
                    "volume" => {
                        if let Some(v) = vol.take() {
                            match host.as_mut() {
                                Some(h) => h.volumes.push(v),
                                None => {
                                    if let Some(c) = cfg.as_mut() {
                                        c.volumes.push(v)
                                    }
                                }
                            }
                        }
                    }
                    "host" if !in_conn => {
                        if let (Some(h), Some(c)) = (host.take(), cfg.as_mut()) {
                            c.hosts.push(h);
                        }
                    }
                    "section" => section = None,
                    "resource" => {
                        if let Some(c) = cfg.take() {
                            st.configs.push(c);
                        }
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !path.is_empty() {
        return Err(err(text.len(), format!("XML element <{}> is never closed", path.join("><"))));
    }
    if st.configs.is_empty() {
        return Err(err(0, "no <resource> in the XML".to_string()));
    }
    Ok(st)
}
