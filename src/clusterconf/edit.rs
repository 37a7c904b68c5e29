//! Edit operations on cluster.conf bytes. Each operation changes only the bytes it must (through
//! [`Patch`]es on the lossless [`Document`]) and then bumps `config_version` by exactly one.
//! Pure: bytes in, bytes out.
use std::fmt;

use super::document::{apply_patches, Document, NewElement, NodeId, ParseError, Patch};
use super::model::Model;

/// Why an edit was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditErrorKind {
    /// The input is not well-formed XML.
    Parse,
    /// A node, device, method... does not exist.
    NotFound,
    /// It already exists.
    Exists,
    /// The edit would produce a configuration cman refuses or that is unsafe.
    Refused,
    /// `--expect-version` did not match the file.
    VersionConflict,
    /// A bad argument (name, number...).
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditError {
    pub kind: EditErrorKind,
    pub message: String,
    pub hint: Option<String>,
}

impl EditError {
    pub fn new(kind: EditErrorKind, message: impl Into<String>, hint: Option<&str>) -> Self {
        EditError { kind, message: message.into(), hint: hint.map(str::to_string) }
    }
    pub fn not_found(message: impl Into<String>, hint: impl Into<String>) -> Self {
        EditError { kind: EditErrorKind::NotFound, message: message.into(), hint: Some(hint.into()) }
    }
    pub fn refused(message: impl Into<String>, hint: impl Into<String>) -> Self {
        EditError { kind: EditErrorKind::Refused, message: message.into(), hint: Some(hint.into()) }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        EditError { kind: EditErrorKind::Invalid, message: message.into(), hint: None }
    }
}

impl fmt::Display for EditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}
impl std::error::Error for EditError {}

impl From<ParseError> for EditError {
    fn from(e: ParseError) -> Self {
        EditError::new(
            EditErrorKind::Parse,
            format!("not well-formed XML: {e}"),
            Some("fix the file by hand first (`twonode conf validate` shows every problem)"),
        )
    }
}

/// key=value pairs in the order given.
pub type Attrs = Vec<(String, String)>;

/// One edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// config_version + 1 and nothing else.
    Bump,
    /// two_node on (two_node=1 expected_votes=1) or off (expected_votes = given, else the sum of
    /// votes plus the quorum disk's votes).
    SetTwoNode { on: bool, expected_votes: Option<u64> },
    NodeAdd { name: String, nodeid: Option<u64>, votes: Option<u64>, attrs: Attrs },
    NodeRemove { name: String },
    /// Set and unset attributes of a clusternode (`name=` renames it).
    NodeSet { name: String, set: Attrs, unset: Vec<String> },
    DeviceAdd { name: String, agent: String, attrs: Attrs },
    /// Remove a fencedevice; with `cascade` also every `<device>` that refers to it.
    DeviceRemove { name: String, cascade: bool },
    /// Set/unset attributes of a fencedevice (`name=` renames it and every reference).
    DeviceSet { name: String, set: Attrs, unset: Vec<String> },
    /// Bind `node` to `device` in method `method` (created as needed) with the given device
    /// attributes (action, port/plug, delay ...). An existing `<device>` of that name (and of the
    /// same port/plug, if one is given) in the method is updated unless `append`. With `unfence`
    /// the binding goes to `<unfence>` (action defaults to "on").
    Bind { node: String, method: String, device: String, attrs: Attrs, unfence: bool, append: bool },
    /// Remove `device` from `method` (or from every method when None) of `node`; a method left
    /// empty is removed. With `unfence`, from `<unfence>`.
    Unbind { node: String, device: String, method: Option<String>, unfence: bool },
    /// Put the named methods first, in this order (the rest keep their relative order).
    ReorderMethods { node: String, order: Vec<String> },
    /// Create or change `<quorumd>`; `heuristics` (when Some) replaces every `<heuristic>`.
    QuorumdSet { attrs: Attrs, heuristics: Option<Vec<Attrs>> },
    QuorumdRemove,
    /// Set/unset attributes of a top-level section (cman, totem, fence_daemon, logging, dlm...),
    /// created when absent; `cluster` means the root element (not config_version).
    SectionSet { section: String, set: Attrs, unset: Vec<String> },
    /// A device first in every fence method of every node (a gate in front of the real devices,
    /// e.g. the arbiter gate: `fence::gate::GateSpec::edit_op`), or removed from all of them.
    LeadDevice(LeadDevice),
}

/// The generic edit behind gate fencing. clusterconf imports no area (it is a foundation
/// layer: it imports no area); the area owning the device (`fence::gate`) fills in the agent,
/// the default device name, the attributes and the words, and checks its own arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadDevice {
    /// The agent that makes a `<fencedevice>` this device (a path ending in it counts too).
    pub agent: String,
    /// `Some`: define (or update) the device and put it first in every method; `None`: remove it
    /// from every method (and `<unfence>`) and remove its `<fencedevice>`.
    pub set: Option<LeadSet>,
    /// How messages name it, e.g. "arbiter gate".
    pub what: String,
    /// Short name in messages, e.g. "gate".
    pub short: String,
    /// The command that configures it (hints), e.g. "twonode conf gate-fencing".
    pub command: String,
    /// How `describe` names the edit.
    pub describe: String,
}

/// The device's definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadSet {
    /// The `<fencedevice name>` when none exists yet.
    pub name: String,
    pub attrs: Attrs,
    /// Attributes removed from an existing device when `attrs` does not set them.
    pub unset_absent: Vec<String>,
}

impl Op {
    /// A short description for messages.
    pub fn describe(&self) -> String {
        match self {
            Op::Bump => "bump config_version".into(),
            Op::SetTwoNode { on, .. } => format!("set two_node {}", if *on { "on" } else { "off" }),
            Op::NodeAdd { name, .. } => format!("add node {name}"),
            Op::NodeRemove { name } => format!("remove node {name}"),
            Op::NodeSet { name, .. } => format!("change node {name}"),
            Op::DeviceAdd { name, .. } => format!("add fence device {name}"),
            Op::DeviceRemove { name, .. } => format!("remove fence device {name}"),
            Op::DeviceSet { name, .. } => format!("change fence device {name}"),
            Op::Bind { node, device, method, .. } => format!("bind node {node} to {device} (method {method})"),
            Op::Unbind { node, device, .. } => format!("unbind node {node} from {device}"),
            Op::ReorderMethods { node, .. } => format!("reorder fence methods of {node}"),
            Op::QuorumdSet { .. } => "set quorumd".into(),
            Op::QuorumdRemove => "remove quorumd".into(),
            Op::SectionSet { section, .. } => format!("change <{section}>"),
            Op::LeadDevice(l) => l.describe.clone(),
        }
    }
}

/// The config_version of `src` as an integer (None when missing or not a number).
pub fn version_of(src: &[u8]) -> Result<Option<u64>, ParseError> {
    let (_d, m) = Model::parse(src)?;
    Ok(m.version())
}

/// Apply `op` to `src` and bump config_version once. With `expect_version`, refuse unless the
/// file's config_version is exactly that.
pub fn apply(src: &[u8], op: &Op, expect_version: Option<u64>) -> Result<Vec<u8>, EditError> {
    let mut w = Work { bytes: src.to_vec() };
    let doc = w.doc()?;
    let root = cluster_root(&doc)?;
    if let Some(want) = expect_version {
        let have = doc.attr_value(root, "config_version").unwrap_or("(none)").to_string();
        if have.trim().parse::<u64>().ok() != Some(want) {
            return Err(EditError::new(
                EditErrorKind::VersionConflict,
                format!("conflict: config_version is {have}, expected {want}; nothing was written"),
                Some("someone changed the file since you looked: re-read it (`twonode conf show`) and retry with the current version"),
            ));
        }
    }
    // check the version is bumpable before doing anything
    bump_patch(&doc, root)?;
    run(&mut w, op)?;
    let doc = w.doc()?;
    let root = cluster_root(&doc)?;
    let p = bump_patch(&doc, root)?;
    w.patch(vec![p])?;
    Ok(w.bytes)
}

fn bump_patch(doc: &Document, root: NodeId) -> Result<Patch, EditError> {
    match doc.attr(root, "config_version") {
        None => Ok(doc.add_attr(root, "config_version", "1").expect("root is an element")),
        Some(a) => {
            let v: u64 = a.value.trim().parse().map_err(|_| {
                let (l, c) = doc.line_col(a.value_span.start);
                EditError::new(
                    EditErrorKind::Refused,
                    format!("config_version=\"{}\" at line {l}, column {c} is not an integer; cannot bump it", a.value),
                    Some("set it to a whole number higher than the running version (cman_tool version) by hand"),
                )
            })?;
            let next = v.checked_add(1).ok_or_else(|| EditError::invalid("config_version overflows"))?;
            Ok(doc.set_attr(root, "config_version", &next.to_string()).expect("root is an element"))
        }
    }
}

struct Work {
    bytes: Vec<u8>,
}

impl Work {
    fn doc(&self) -> Result<Document, EditError> {
        Ok(Document::parse(&self.bytes)?)
    }
    fn patch(&mut self, patches: Vec<Patch>) -> Result<(), EditError> {
        self.bytes = apply_patches(&self.bytes, &patches).map_err(EditError::invalid)?;
        Ok(())
    }
}

fn cluster_root(doc: &Document) -> Result<NodeId, EditError> {
    let root = doc.root().ok_or_else(|| EditError::invalid("no root element"))?;
    if doc.name(root) != "cluster" {
        return Err(EditError::refused(
            format!("the root element is <{}>, not <cluster>", doc.name(root)),
            "this is not a cman cluster.conf (2004-era <nodes>/<fence_devices> files must be converted first)",
        ));
    }
    Ok(root)
}

/// Canonical order of <cluster> children, used to place a new section.
fn rank(name: &str) -> usize {
    match name {
        "cman" => 0,
        "totem" => 1,
        "quorumd" => 2,
        "fence_daemon" => 3,
        "logging" => 4,
        "clusternodes" => 6,
        "fencedevices" => 7,
        "rm" => 8,
        _ => 5,
    }
}

/// Insert a new top-level section at its canonical place.
fn insert_section(w: &mut Work, el: NewElement) -> Result<(), EditError> {
    let doc = w.doc()?;
    let root = cluster_root(&doc)?;
    let r = rank(&el.name);
    let before = doc.child_elements(root).into_iter().find(|&c| rank(doc.name(c)) > r);
    let p = doc.insert_child(root, before, &el).ok_or_else(|| EditError::invalid("cannot insert section"))?;
    w.patch(p)
}

fn section(doc: &Document, name: &str) -> Result<Option<NodeId>, EditError> {
    let root = cluster_root(doc)?;
    Ok(doc.child(root, name))
}

fn find_node(doc: &Document, name: &str) -> Result<NodeId, EditError> {
    let root = cluster_root(doc)?;
    let found = doc
        .child(root, "clusternodes")
        .and_then(|cns| doc.children_named(cns, "clusternode").into_iter().find(|&n| doc.attr_value(n, "name") == Some(name)));
    found.ok_or_else(|| {
        let known: Vec<String> = Model::from_doc(doc).nodes.iter().filter_map(|n| n.name.clone()).collect();
        EditError::not_found(
            format!("no clusternode named {name:?}"),
            if known.is_empty() { "the file has no nodes: `twonode conf node add NAME`".to_string() } else { format!("nodes in the file: {}", known.join(", ")) },
        )
    })
}

fn find_fencedevice(doc: &Document, name: &str) -> Result<Option<NodeId>, EditError> {
    let Some(fds) = section(doc, "fencedevices")? else { return Ok(None) };
    Ok(doc.children_named(fds, "fencedevice").into_iter().find(|&d| doc.attr_value(d, "name") == Some(name)))
}

fn check_positive(what: &str, v: &str) -> Result<(), EditError> {
    match v.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(()),
        _ => Err(EditError::invalid(format!("{what} must be a positive integer, not {v:?}"))),
    }
}

/// A name cman/the schema accept for a fencedevice (xsd:ID: an NCName, not starting with a digit).
pub fn check_device_name(name: &str) -> Result<(), EditError> {
    let ok_first = name.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_');
    let ok_rest = name.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok_first || !ok_rest {
        return Err(EditError::new(
            EditErrorKind::Invalid,
            format!("invalid fence device name {name:?}"),
            Some("a fencedevice name is an XML ID: it starts with a letter or `_` (never a digit) and holds only letters, digits, `_`, `-`, `.`"),
        ));
    }
    Ok(())
}

/// A cluster name cman accepts (1-15 characters).
pub fn check_cluster_name(name: &str) -> Result<(), EditError> {
    if name.is_empty() || name.chars().count() > 15 {
        return Err(EditError::new(
            EditErrorKind::Invalid,
            format!("cluster name {name:?} has {} characters; cman accepts 1 to 15", name.chars().count()),
            Some("pick a shorter name (cman refuses to start with a longer one)"),
        ));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
        return Err(EditError::invalid(format!("cluster name {name:?} may only hold letters, digits, `_`, `-`, `.`")));
    }
    Ok(())
}

fn run(w: &mut Work, op: &Op) -> Result<(), EditError> {
    match op {
        Op::Bump => Ok(()),
        Op::SetTwoNode { on, expected_votes } => set_two_node(w, *on, *expected_votes),
        Op::NodeAdd { name, nodeid, votes, attrs } => node_add(w, name, *nodeid, *votes, attrs),
        Op::NodeRemove { name } => {
            let doc = w.doc()?;
            let n = find_node(&doc, name)?;
            w.patch(vec![doc.remove_element(n)])
        }
        Op::NodeSet { name, set, unset } => node_set(w, name, set, unset),
        Op::DeviceAdd { name, agent, attrs } => device_add(w, name, agent, attrs),
        Op::DeviceRemove { name, cascade } => device_remove(w, name, *cascade),
        Op::DeviceSet { name, set, unset } => device_set(w, name, set, unset),
        Op::Bind { node, method, device, attrs, unfence, append } => bind(w, node, method, device, attrs, *unfence, *append),
        Op::Unbind { node, device, method, unfence } => unbind(w, node, device, method.as_deref(), *unfence),
        Op::ReorderMethods { node, order } => reorder(w, node, order),
        Op::QuorumdSet { attrs, heuristics } => quorumd_set(w, attrs, heuristics.as_ref()),
        Op::QuorumdRemove => {
            let doc = w.doc()?;
            let q = section(&doc, "quorumd")?
                .ok_or_else(|| EditError::not_found("there is no <quorumd> section", "nothing to remove"))?;
            w.patch(vec![doc.remove_element(q)])
        }
        Op::SectionSet { section: s, set, unset } => section_set(w, s, set, unset),
        Op::LeadDevice(l) => lead_device(w, l),
    }
}

/// The `<fencedevice>` names with the lead device's agent (a path ending in it counts).
fn lead_device_names(doc: &Document, agent: &str) -> Result<Vec<String>, EditError> {
    let m = Model::from_doc(doc);
    let _ = cluster_root(doc)?;
    Ok(m.fencedevices
        .iter()
        .filter(|f| f.agent.as_deref().is_some_and(|a| a.rsplit('/').next() == Some(agent)))
        .filter_map(|f| f.name.clone())
        .collect())
}

fn lead_device(w: &mut Work, l: &LeadDevice) -> Result<(), EditError> {
    let doc = w.doc()?;
    let existing = lead_device_names(&doc, &l.agent)?;
    let Some(g) = &l.set else {
        if existing.is_empty() {
            return Err(EditError::not_found(format!("no {} (agent {}) is configured", l.what, l.agent), "nothing to remove"));
        }
        // every <device> naming a gate, in methods and unfence, then the fencedevices
        loop {
            let doc = w.doc()?;
            let root = cluster_root(&doc)?;
            let refs: Vec<NodeId> = doc
                .child(root, "clusternodes")
                .map(|cns| {
                    let mut v = Vec::new();
                    for n in doc.children_named(cns, "clusternode") {
                        let mut containers: Vec<NodeId> = doc.child(n, "fence").map(|f| doc.children_named(f, "method")).unwrap_or_default();
                        containers.extend(doc.child(n, "unfence"));
                        for c in containers {
                            v.extend(doc.children_named(c, "device").into_iter().filter(|&d| {
                                doc.attr_value(d, "name").is_some_and(|x| existing.iter().any(|e| e == x))
                            }));
                        }
                    }
                    v
                })
                .unwrap_or_default();
            let Some(first) = refs.first() else { break };
            w.patch(vec![doc.remove_element(*first)])?;
        }
        for name in &existing {
            let doc = w.doc()?;
            if let Some(fd) = find_fencedevice(&doc, name)? {
                w.patch(vec![doc.remove_element(fd)])?;
            }
        }
        return Ok(());
    };
    let m = Model::from_doc(&doc);
    if m.nodes.is_empty() {
        return Err(EditError::refused("the file has no clusternode", "add the nodes and their fence devices first"));
    }
    for n in &m.nodes {
        let name = n.name.as_deref().unwrap_or("?");
        if n.methods.is_empty() || n.methods.iter().all(|mt| mt.devices.is_empty()) {
            return Err(EditError::refused(
                format!("node {name} has no fence method with a device (line {}): the {} wraps real fence devices", n.loc.line, l.short),
                format!("bind a real device first: `twonode conf bind {name} DEVICE --method ipmi`"),
            ));
        }
    }
    let name = match existing.as_slice() {
        [] => g.name.clone(),
        [one] => one.clone(),
        many => {
            return Err(EditError::refused(
                format!("several {} devices are defined ({}); keep one", l.what, many.join(", ")),
                format!("`{} --remove` then configure it again", l.command),
            ))
        }
    };
    if existing.is_empty() {
        if let Some(m) = m.fencedevice(&name) {
            return Err(EditError::new(
                EditErrorKind::Exists,
                format!("a fence device named {name} exists with agent {:?} (line {})", m.agent.as_deref().unwrap_or(""), m.loc.line),
                Some("rename it (`twonode conf device set NAME name=OTHER`)"),
            ));
        }
    }
    let attrs = &g.attrs;
    if existing.is_empty() {
        device_add(w, &name, &l.agent, attrs)?;
    } else {
        let unset: Vec<String> = g.unset_absent.iter().filter(|k| !attrs.iter().any(|(a, _)| a == *k)).cloned().collect();
        device_set(w, &name, attrs, &unset)?;
    }
    // the device first in every method: remove it where it is elsewhere, insert it first
    loop {
        let doc = w.doc()?;
        let root = cluster_root(&doc)?;
        let Some(cns) = doc.child(root, "clusternodes") else { break };
        let mut todo: Option<(NodeId, Option<NodeId>)> = None;
        'scan: for n in doc.children_named(cns, "clusternode") {
            let Some(f) = doc.child(n, "fence") else { continue };
            for mt in doc.children_named(f, "method") {
                let devs = doc.children_named(mt, "device");
                if devs.is_empty() {
                    continue;
                }
                let is_g = |d: NodeId| doc.attr_value(d, "name") == Some(name.as_str());
                if is_g(devs[0]) {
                    if let Some(extra) = devs.iter().skip(1).find(|&&d| is_g(d)) {
                        todo = Some((*extra, None));
                        break 'scan;
                    }
                    continue;
                }
                match devs.iter().find(|&&d| is_g(d)) {
                    Some(&misplaced) => todo = Some((misplaced, None)),
                    None => todo = Some((mt, doc.child_elements(mt).first().copied())),
                }
                break 'scan;
            }
        }
        match todo {
            None => break,
            // in the wrong place (or twice): remove it; the next pass inserts it first
            Some((d, None)) if doc.name(d) == "device" => w.patch(vec![doc.remove_element(d)])?,
            Some((mt, before)) => {
                let p = doc
                    .insert_child(mt, before, &NewElement::new("device").attr("name", name.as_str()))
                    .ok_or_else(|| EditError::invalid(format!("cannot insert the {} device", l.short)))?;
                w.patch(p)?;
            }
        }
    }
    Ok(())
}

/// Patches that set/unset attributes of one element.
fn attr_patches(doc: &Document, id: NodeId, set: &[(String, String)], unset: &[String]) -> Result<Vec<Patch>, EditError> {
    let mut out = Vec::new();
    for k in unset {
        if set.iter().any(|(s, _)| s == k) {
            return Err(EditError::invalid(format!("attribute {k} is both set and unset")));
        }
        if let Some(p) = doc.remove_attr(id, k) {
            out.push(p);
        }
    }
    let mut seen: Vec<&str> = Vec::new();
    for (k, v) in set {
        check_attr_name(k)?;
        if seen.contains(&k.as_str()) {
            return Err(EditError::invalid(format!("attribute {k} given twice")));
        }
        seen.push(k);
        // an attribute being removed and re-added: remove_attr already planned; add at end
        out.push(doc.set_attr(id, k, v).ok_or_else(|| EditError::invalid("not an element"))?);
    }
    Ok(out)
}

fn check_attr_name(k: &str) -> Result<(), EditError> {
    let ok = k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(EditError::invalid(format!("invalid attribute name {k:?}")))
    }
}

fn set_two_node(w: &mut Work, on: bool, expected: Option<u64>) -> Result<(), EditError> {
    let doc = w.doc()?;
    let m = Model::from_doc(&doc);
    if on {
        if m.nodes.len() != 2 {
            return Err(EditError::refused(
                format!("two_node needs exactly 2 clusternodes; the file has {}", m.nodes.len()),
                "cman refuses to start otherwise (\"two_node set but there are not 2 nodes\"); add or remove nodes first",
            ));
        }
        for n in &m.nodes {
            if n.votes_or_default() != Some(1) {
                return Err(EditError::refused(
                    format!(
                        "node {} has votes={} (line {}); two_node needs one vote per node",
                        n.name.as_deref().unwrap_or("?"),
                        n.votes.as_deref().unwrap_or("1"),
                        n.loc.line
                    ),
                    "`twonode conf node set NODE votes=1` first",
                ));
            }
        }
        if m.quorumd.is_some() {
            return Err(EditError::refused(
                "a <quorumd> is configured: with two_node=1 quorum is pinned to 1 and the quorum disk's votes do nothing",
                "choose one: keep the quorum disk (two_node off, expected_votes 3) or `twonode conf quorumd remove` then set two_node on",
            ));
        }
        if let Some(e) = expected {
            if e != 1 {
                return Err(EditError::refused(
                    format!("two_node requires expected_votes=1, not {e}"),
                    "omit --expected-votes",
                ));
            }
        }
        match section(&doc, "cman")? {
            Some(c) => {
                let p = attr_patches(&doc, c, &[("two_node".into(), "1".into()), ("expected_votes".into(), "1".into())], &[])?;
                w.patch(p)
            }
            None => insert_section(w, NewElement::new("cman").attr("two_node", "1").attr("expected_votes", "1")),
        }
    } else {
        let ev = match expected {
            Some(e) => e,
            None => {
                let mut sum = m.vote_sum().ok_or_else(|| {
                    EditError::refused("a node's votes is not a number", "fix the votes attribute or give --expected-votes")
                })?;
                if let Some(q) = &m.quorumd {
                    let qv = match q.section.get("votes") {
                        Some(v) => v.trim().parse::<u64>().ok(),
                        None => Some((m.nodes.len() as u64).saturating_sub(1)),
                    };
                    sum += qv.unwrap_or(0);
                }
                sum
            }
        };
        if ev == 0 {
            return Err(EditError::invalid("expected_votes must be at least 1"));
        }
        match section(&doc, "cman")? {
            Some(c) => {
                let mut set: Attrs = vec![("expected_votes".into(), ev.to_string())];
                if doc.attr(c, "two_node").is_some() {
                    set.insert(0, ("two_node".into(), "0".into()));
                }
                let p = attr_patches(&doc, c, &set, &[])?;
                w.patch(p)
            }
            None => insert_section(w, NewElement::new("cman").attr("expected_votes", ev.to_string())),
        }
    }
}

fn node_add(w: &mut Work, name: &str, nodeid: Option<u64>, votes: Option<u64>, attrs: &Attrs) -> Result<(), EditError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace()) {
        return Err(EditError::invalid(format!("invalid node name {name:?} (use the node's cluster hostname)")));
    }
    let doc = w.doc()?;
    let m = Model::from_doc(&doc);
    if m.node(name).is_some() {
        return Err(EditError::new(EditErrorKind::Exists, format!("node {name} already exists"), Some("use `twonode conf node set` to change it")));
    }
    let ids: Vec<u64> = m.nodes.iter().filter_map(|n| n.nodeid.as_deref()?.trim().parse().ok()).collect();
    let id = match nodeid {
        Some(0) => return Err(EditError::invalid("nodeid must be a positive integer")),
        Some(i) => {
            if ids.contains(&i) {
                return Err(EditError::new(EditErrorKind::Exists, format!("nodeid {i} is already used"), Some("omit --nodeid to take the next free one")));
            }
            i
        }
        None => ids.iter().max().copied().unwrap_or(0) + 1,
    };
    let votes = votes.unwrap_or(1);
    if votes == 0 {
        return Err(EditError::refused("votes=0 fails the schema and cman", "omit --votes (1)"));
    }
    let mut el = NewElement::new("clusternode").attr("name", name).attr("votes", votes.to_string()).attr("nodeid", id.to_string());
    for (k, v) in attrs {
        check_attr_name(k)?;
        if matches!(k.as_str(), "name" | "votes" | "nodeid") {
            return Err(EditError::invalid(format!("give {k} with its own option")));
        }
        el = el.attr(k, v.clone());
    }
    match section(&doc, "clusternodes")? {
        Some(cns) => {
            let p = doc.insert_child(cns, None, &el).ok_or_else(|| EditError::invalid("cannot insert"))?;
            w.patch(p)
        }
        None => insert_section(w, NewElement::new("clusternodes").child(el)),
    }
}

fn node_set(w: &mut Work, name: &str, set: &Attrs, unset: &[String]) -> Result<(), EditError> {
    let doc = w.doc()?;
    let n = find_node(&doc, name)?;
    let m = Model::from_doc(&doc);
    for (k, v) in set {
        match k.as_str() {
            "name" if v != name && m.node(v).is_some() => {
                return Err(EditError::new(EditErrorKind::Exists, format!("node {v} already exists"), None));
            }
            "nodeid" => {
                check_positive("nodeid", v)?;
                if m.nodes.iter().any(|o| o.name.as_deref() != Some(name) && o.nodeid.as_deref().map(str::trim) == Some(v.trim())) {
                    return Err(EditError::new(EditErrorKind::Exists, format!("nodeid {v} is already used"), None));
                }
            }
            "votes" => check_positive("votes", v)?,
            _ => {}
        }
    }
    if unset.iter().any(|k| k == "name" || k == "nodeid") {
        return Err(EditError::refused("name and nodeid are required on a clusternode", "set a new value instead"));
    }
    let p = attr_patches(&doc, n, set, unset)?;
    w.patch(p)
}

fn device_add(w: &mut Work, name: &str, agent: &str, attrs: &Attrs) -> Result<(), EditError> {
    check_device_name(name)?;
    if agent.is_empty() {
        return Err(EditError::invalid("--agent is required (e.g. fence_ipmilan, fence_ilo)"));
    }
    let doc = w.doc()?;
    if find_fencedevice(&doc, name)?.is_some() {
        return Err(EditError::new(EditErrorKind::Exists, format!("fence device {name} already exists"), Some("use `twonode conf device set` to change it")));
    }
    let mut el = NewElement::new("fencedevice").attr("name", name).attr("agent", agent);
    for (k, v) in attrs {
        check_attr_name(k)?;
        if k == "name" || k == "agent" {
            return Err(EditError::invalid(format!("give {k} with its own option")));
        }
        el = el.attr(k, v.clone());
    }
    match section(&doc, "fencedevices")? {
        Some(fds) => {
            let p = doc.insert_child(fds, None, &el).ok_or_else(|| EditError::invalid("cannot insert"))?;
            w.patch(p)
        }
        None => insert_section(w, NewElement::new("fencedevices").child(el)),
    }
}

/// Every `<device name=...>` reference: (clusternode, container method-or-unfence, device element).
fn device_refs(doc: &Document, device: &str) -> Vec<(NodeId, NodeId, NodeId)> {
    let mut out = Vec::new();
    let Some(root) = doc.root() else { return out };
    let Some(cns) = doc.child(root, "clusternodes") else { return out };
    for n in doc.children_named(cns, "clusternode") {
        let mut containers = Vec::new();
        if let Some(f) = doc.child(n, "fence") {
            containers.extend(doc.children_named(f, "method"));
        }
        containers.extend(doc.children_named(n, "unfence"));
        for c in containers {
            for d in doc.children_named(c, "device") {
                if doc.attr_value(d, "name") == Some(device) {
                    out.push((n, c, d));
                }
            }
        }
    }
    out
}

fn device_remove(w: &mut Work, name: &str, cascade: bool) -> Result<(), EditError> {
    let doc = w.doc()?;
    let fd = find_fencedevice(&doc, name)?.ok_or_else(|| no_device(&doc, name))?;
    let refs = device_refs(&doc, name);
    if !refs.is_empty() && !cascade {
        let list: Vec<String> = refs
            .iter()
            .map(|&(n, c, d)| {
                let (l, col) = doc.pos(d);
                format!("{} {} (line {l}:{col})", doc.attr_value(n, "name").unwrap_or("?"), describe_container(&doc, c))
            })
            .collect();
        return Err(EditError::refused(
            format!("fence device {name} is still used by: {}", list.join(", ")),
            "unbind those nodes first, or pass --cascade to remove the references too",
        ));
    }
    let _ = fd;
    // remove references one node/method at a time (a method left empty goes too)
    loop {
        let doc = w.doc()?;
        let Some(&(n, _, _)) = device_refs(&doc, name).first() else { break };
        let node = doc.attr_value(n, "name").unwrap_or_default().to_string();
        unbind_in(w, &doc, n, &node, name, None, None)?;
    }
    let doc = w.doc()?;
    let fd = find_fencedevice(&doc, name)?.ok_or_else(|| no_device(&doc, name))?;
    w.patch(vec![doc.remove_element(fd)])
}

fn describe_container(doc: &Document, c: NodeId) -> String {
    if doc.name(c) == "unfence" {
        "unfence".into()
    } else {
        format!("method {}", doc.attr_value(c, "name").unwrap_or("?"))
    }
}

fn no_device(doc: &Document, name: &str) -> EditError {
    let m = Model::from_doc(doc);
    let known: Vec<String> = m.fencedevices.iter().filter_map(|d| d.name.clone()).collect();
    EditError::not_found(
        format!("no fencedevice named {name:?}"),
        if known.is_empty() {
            "the file defines no fence devices: `twonode conf device add NAME --agent fence_ipmilan ipaddr=... login=...`".to_string()
        } else {
            format!("fence devices in the file: {} (or add one with `twonode conf device add`)", known.join(", "))
        },
    )
}

fn device_set(w: &mut Work, name: &str, set: &Attrs, unset: &[String]) -> Result<(), EditError> {
    let doc = w.doc()?;
    let fd = find_fencedevice(&doc, name)?.ok_or_else(|| no_device(&doc, name))?;
    if unset.iter().any(|k| k == "name" || k == "agent") {
        return Err(EditError::refused("name and agent are required on a fencedevice", "set a new value instead"));
    }
    let mut patches = attr_patches(&doc, fd, set, unset)?;
    if let Some((_, new)) = set.iter().find(|(k, _)| k == "name") {
        check_device_name(new)?;
        if new != name {
            if find_fencedevice(&doc, new)?.is_some() {
                return Err(EditError::new(EditErrorKind::Exists, format!("fence device {new} already exists"), None));
            }
            for (_, _, d) in device_refs(&doc, name) {
                patches.extend(doc.set_attr(d, "name", new));
            }
        }
    }
    w.patch(patches)
}

fn bind(w: &mut Work, node: &str, method: &str, device: &str, attrs: &Attrs, unfence: bool, append: bool) -> Result<(), EditError> {
    let doc = w.doc()?;
    let n = find_node(&doc, node)?;
    if find_fencedevice(&doc, device)?.is_none() {
        return Err(no_device(&doc, device));
    }
    if method.is_empty() {
        return Err(EditError::invalid("method name must not be empty"));
    }
    let mut attrs: Attrs = attrs.clone();
    for (k, _) in &attrs {
        check_attr_name(k)?;
        if k == "name" {
            return Err(EditError::invalid("the device name is the DEVICE argument"));
        }
    }
    if unfence && !attrs.iter().any(|(k, _)| k == "action") {
        attrs.push(("action".into(), "on".into()));
    }
    let mut dev = NewElement::new("device").attr("name", device);
    for (k, v) in &attrs {
        dev = dev.attr(k, v.clone());
    }
    let port_of = |a: &Attrs| a.iter().find(|(k, _)| k == "port" || k == "plug").map(|(_, v)| v.clone());
    let want_port = port_of(&attrs);
    // existing device to update?
    let existing_in = |container: NodeId| -> Option<NodeId> {
        if append {
            return None;
        }
        doc.children_named(container, "device").into_iter().find(|&d| {
            doc.attr_value(d, "name") == Some(device)
                && match &want_port {
                    None => true,
                    Some(p) => doc.attr_value(d, "port").or(doc.attr_value(d, "plug")) == Some(p.as_str()),
                }
        })
    };
    if unfence {
        match doc.child(n, "unfence") {
            Some(u) => match existing_in(u) {
                Some(d) => w.patch(attr_patches(&doc, d, &attrs, &[])?),
                None => w.patch(doc.insert_child(u, None, &dev).ok_or_else(|| EditError::invalid("cannot insert"))?),
            },
            None => w.patch(
                doc.insert_child(n, None, &NewElement::new("unfence").child(dev)).ok_or_else(|| EditError::invalid("cannot insert"))?,
            ),
        }
    } else {
        let method_el = NewElement::new("method").attr("name", method);
        match doc.child(n, "fence") {
            None => {
                let before = doc.child(n, "unfence");
                let p = doc
                    .insert_child(n, before, &NewElement::new("fence").child(method_el.child(dev)))
                    .ok_or_else(|| EditError::invalid("cannot insert"))?;
                w.patch(p)
            }
            Some(f) => match doc.children_named(f, "method").into_iter().find(|&m| doc.attr_value(m, "name") == Some(method)) {
                None => w.patch(doc.insert_child(f, None, &method_el.child(dev)).ok_or_else(|| EditError::invalid("cannot insert"))?),
                Some(m) => match existing_in(m) {
                    Some(d) => w.patch(attr_patches(&doc, d, &attrs, &[])?),
                    None => w.patch(doc.insert_child(m, None, &dev).ok_or_else(|| EditError::invalid("cannot insert"))?),
                },
            },
        }
    }
}

fn unbind(w: &mut Work, node: &str, device: &str, method: Option<&str>, unfence: bool) -> Result<(), EditError> {
    let doc = w.doc()?;
    let n = find_node(&doc, node)?;
    unbind_in(w, &doc, n, node, device, method, Some(unfence))
}

/// Remove `device` refs of node `n` (in `method`, or all methods; `unfence`: Some(true) only the
/// unfence section, Some(false) only methods, None both). Methods left empty are removed.
fn unbind_in(
    w: &mut Work,
    doc: &Document,
    n: NodeId,
    node: &str,
    device: &str,
    method: Option<&str>,
    unfence: Option<bool>,
) -> Result<(), EditError> {
    let mut containers = Vec::new();
    if unfence != Some(true) {
        if let Some(f) = doc.child(n, "fence") {
            for m in doc.children_named(f, "method") {
                if method.is_none() || doc.attr_value(m, "name") == method {
                    containers.push(m);
                }
            }
        }
    }
    if unfence != Some(false) {
        containers.extend(doc.children_named(n, "unfence"));
    }
    let mut patches = Vec::new();
    for c in containers {
        let devs = doc.children_named(c, "device");
        let hit: Vec<NodeId> = devs.iter().copied().filter(|&d| doc.attr_value(d, "name") == Some(device)).collect();
        if hit.is_empty() {
            continue;
        }
        if hit.len() == devs.len() && doc.name(c) == "method" {
            patches.push(doc.remove_element(c));
        } else {
            patches.extend(hit.into_iter().map(|d| doc.remove_element(d)));
        }
    }
    if patches.is_empty() {
        return Err(EditError::not_found(
            format!(
                "node {node} is not bound to {device}{}",
                method.map(|m| format!(" in method {m}")).unwrap_or_default()
            ),
            "`twonode conf show` lists each node's methods and devices",
        ));
    }
    w.patch(patches)
}

fn methods_of(doc: &Document, n: NodeId) -> Vec<NodeId> {
    doc.child(n, "fence").map(|f| doc.children_named(f, "method")).unwrap_or_default()
}

fn reorder(w: &mut Work, node: &str, order: &[String]) -> Result<(), EditError> {
    let doc = w.doc()?;
    let n = find_node(&doc, node)?;
    let names: Vec<String> = methods_of(&doc, n).iter().map(|&m| doc.attr_value(m, "name").unwrap_or("").to_string()).collect();
    for (i, o) in order.iter().enumerate() {
        if !names.contains(o) {
            return Err(EditError::not_found(format!("node {node} has no fence method {o:?}"), format!("its methods, in order: {}", names.join(", "))));
        }
        if order[..i].contains(o) {
            return Err(EditError::invalid(format!("method {o} listed twice")));
        }
    }
    for (i, o) in order.iter().enumerate() {
        let doc = w.doc()?;
        let n = find_node(&doc, node)?;
        let ms = methods_of(&doc, n);
        let Some(idx) = ms.iter().position(|&m| doc.attr_value(m, "name") == Some(o.as_str())) else { continue };
        if idx != i {
            let p = doc.move_element(ms[idx], Some(ms[i])).ok_or_else(|| EditError::invalid("cannot move method"))?;
            w.patch(p)?;
        }
    }
    Ok(())
}

fn quorumd_set(w: &mut Work, attrs: &Attrs, heuristics: Option<&Vec<Attrs>>) -> Result<(), EditError> {
    let doc = w.doc()?;
    let m = Model::from_doc(&doc);
    if m.two_node() {
        return Err(EditError::refused(
            "two_node=1 is set: quorum is pinned to 1, a quorum disk's votes would do nothing",
            "first `twonode conf set-two-node off --expected-votes 3` (qdisk(5): two_node=0, expected_votes=3), then add the quorum disk",
        ));
    }
    if let Some(hs) = heuristics {
        for h in hs {
            if !h.iter().any(|(k, _)| k == "program") {
                return Err(EditError::invalid("every heuristic needs program=... (e.g. program=\"ping -c1 -w1 10.0.0.254\")"));
            }
        }
    }
    let heur_el = |h: &Attrs| h.iter().fold(NewElement::new("heuristic"), |e, (k, v)| e.attr(k, v.clone()));
    match section(&doc, "quorumd")? {
        None => {
            let mut el = NewElement::new("quorumd");
            for (k, v) in attrs {
                check_attr_name(k)?;
                el = el.attr(k, v.clone());
            }
            for h in heuristics.map(|v| v.as_slice()).unwrap_or(&[]) {
                el = el.child(heur_el(h));
            }
            insert_section(w, el)
        }
        Some(q) => {
            w.patch(attr_patches(&doc, q, attrs, &[])?)?;
            if let Some(hs) = heuristics {
                let doc = w.doc()?;
                let q = section(&doc, "quorumd")?.ok_or_else(|| EditError::invalid("quorumd vanished"))?;
                let rm: Vec<Patch> = doc.children_named(q, "heuristic").into_iter().map(|h| doc.remove_element(h)).collect();
                w.patch(rm)?;
                for h in hs {
                    let doc = w.doc()?;
                    let q = section(&doc, "quorumd")?.ok_or_else(|| EditError::invalid("quorumd vanished"))?;
                    let p = doc.insert_child(q, None, &heur_el(h)).ok_or_else(|| EditError::invalid("cannot insert"))?;
                    w.patch(p)?;
                }
            }
            Ok(())
        }
    }
}

/// Sections `conf set` may change.
pub const SETTABLE_SECTIONS: &[&str] = &["cluster", "cman", "totem", "fence_daemon", "logging", "quorumd", "dlm", "gfs_controld"];

fn section_set(w: &mut Work, name: &str, set: &Attrs, unset: &[String]) -> Result<(), EditError> {
    if !SETTABLE_SECTIONS.contains(&name) {
        return Err(EditError::invalid(format!(
            "cannot set attributes of <{name}> this way; sections: {} (nodes, devices and quorumd have their own commands)",
            SETTABLE_SECTIONS.join(", ")
        )));
    }
    let doc = w.doc()?;
    let root = cluster_root(&doc)?;
    if name == "cluster" {
        if set.iter().any(|(k, _)| k == "config_version") || unset.iter().any(|k| k == "config_version" || k == "name") {
            return Err(EditError::refused("config_version is managed by every edit", "use `twonode conf bump`"));
        }
        if let Some((_, v)) = set.iter().find(|(k, _)| k == "name") {
            check_cluster_name(v)?;
        }
        return w.patch(attr_patches(&doc, root, set, unset)?);
    }
    if name == "cman" {
        if let Some((_, v)) = set.iter().find(|(k, _)| k == "two_node") {
            if v.trim() == "1" {
                return Err(EditError::refused("set two_node with its own command", "`twonode conf set-two-node on` checks the rules"));
            }
        }
    }
    match doc.child(root, name) {
        Some(s) => w.patch(attr_patches(&doc, s, set, unset)?),
        None => {
            let mut el = NewElement::new(name);
            for (k, v) in set {
                check_attr_name(k)?;
                el = el.attr(k, v.clone());
            }
            insert_section(w, el)
        }
    }
}

/// Options of `conf init`.
#[derive(Debug, Clone, Default)]
pub struct InitSpec {
    pub name: String,
    pub nodes: Vec<String>,
    /// two_node=1 expected_votes=1 (needs exactly two nodes).
    pub two_node: bool,
    pub transport: Option<String>,
    /// e.g. PVE's /var/lib/pve-cluster/corosync.authkey
    pub keyfile: Option<String>,
}

/// A fresh cluster.conf (config_version 1) for `spec`.
pub fn skeleton(spec: &InitSpec) -> Result<String, EditError> {
    check_cluster_name(&spec.name)?;
    if spec.nodes.is_empty() {
        return Err(EditError::invalid("give the nodes with --node NAME (twice for a two-node cluster)"));
    }
    for (i, n) in spec.nodes.iter().enumerate() {
        if n.is_empty() || n.chars().any(|c| c.is_whitespace() || c == '"' || c == '<' || c == '&') {
            return Err(EditError::invalid(format!("invalid node name {n:?}")));
        }
        if spec.nodes[..i].contains(n) {
            return Err(EditError::invalid(format!("node {n} given twice")));
        }
    }
    if spec.two_node && spec.nodes.len() != 2 {
        return Err(EditError::refused(
            format!("two_node needs exactly 2 nodes, got {}", spec.nodes.len()),
            "give --node twice, or --no-two-node for a larger cluster",
        ));
    }
    let mut cman = NewElement::new("cman");
    if spec.two_node {
        cman = cman.attr("two_node", "1").attr("expected_votes", "1");
    } else {
        cman = cman.attr("expected_votes", spec.nodes.len().to_string());
    }
    if let Some(t) = &spec.transport {
        cman = cman.attr("transport", t.clone());
    }
    if let Some(k) = &spec.keyfile {
        cman = cman.attr("keyfile", k.clone());
    }
    let mut nodes = NewElement::new("clusternodes");
    for (i, n) in spec.nodes.iter().enumerate() {
        nodes = nodes.child(NewElement::new("clusternode").attr("name", n.clone()).attr("votes", "1").attr("nodeid", (i + 1).to_string()));
    }
    let root = NewElement::new("cluster")
        .attr("name", spec.name.clone())
        .attr("config_version", "1")
        .child(cman)
        .child(nodes)
        .child(NewElement::new("fencedevices"));
    Ok(format!("<?xml version=\"1.0\"?>\n{}\n", root.render("", "  ", "\n", b'"')))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "<?xml version=\"1.0\"?>\n<!-- keep me -->\n<cluster name=\"duo\" config_version=\"3\">\n  <cman two_node=\"1\" expected_votes=\"1\"/>\n  <clusternodes>\n    <clusternode name=\"a\" votes=\"1\" nodeid=\"1\"/>\n    <clusternode name=\"b\" votes=\"1\" nodeid=\"2\"/>\n  </clusternodes>\n  <fencedevices>\n    <fencedevice name=\"ipmi-a\" agent=\"fence_ipmilan\" ipaddr=\"10.0.0.1\"/>\n  </fencedevices>\n</cluster>\n";

    fn ed(src: &str, op: Op) -> String {
        String::from_utf8(apply(src.as_bytes(), &op, None).unwrap_or_else(|e| panic!("{e}"))).unwrap()
    }

    #[test]
    fn bump_changes_only_version() {
        let out = ed(BASE, Op::Bump);
        assert_eq!(out, BASE.replace("config_version=\"3\"", "config_version=\"4\""));
        let e = apply(BASE.as_bytes(), &Op::Bump, Some(2)).unwrap_err();
        assert_eq!(e.kind, EditErrorKind::VersionConflict);
        assert!(apply(BASE.as_bytes(), &Op::Bump, Some(3)).is_ok());
    }

    #[test]
    fn bind_creates_fence_and_method() {
        let out = ed(BASE, Op::Bind { node: "a".into(), method: "1".into(), device: "ipmi-a".into(), attrs: vec![("delay".into(), "15".into())], unfence: false, append: false });
        assert!(out.contains("    <clusternode name=\"a\" votes=\"1\" nodeid=\"1\">\n      <fence>\n        <method name=\"1\">\n          <device name=\"ipmi-a\" delay=\"15\"/>\n        </method>\n      </fence>\n    </clusternode>\n"), "{out}");
        assert!(out.contains("config_version=\"4\""));
        // second bind in a new method appends; same device again updates
        let out2 = ed(&out, Op::Bind { node: "a".into(), method: "1".into(), device: "ipmi-a".into(), attrs: vec![("delay".into(), "10".into())], unfence: false, append: false });
        assert!(out2.contains("<device name=\"ipmi-a\" delay=\"10\"/>"), "{out2}");
        let out3 = ed(&out2, Op::Unbind { node: "a".into(), device: "ipmi-a".into(), method: None, unfence: false });
        assert!(!out3.contains("<method"), "{out3}");
    }

    #[test]
    fn two_node_rules() {
        let e = apply(BASE.as_bytes(), &Op::QuorumdSet { attrs: vec![], heuristics: None }, None).unwrap_err();
        assert_eq!(e.kind, EditErrorKind::Refused);
        let off = ed(BASE, Op::SetTwoNode { on: false, expected_votes: None });
        assert!(off.contains("<cman two_node=\"0\" expected_votes=\"2\"/>"), "{off}");
        let q = ed(&off, Op::QuorumdSet { attrs: vec![("label".into(), "qd".into())], heuristics: Some(vec![vec![("program".into(), "ping -c1 gw".into())]]) });
        assert!(q.contains("  <quorumd label=\"qd\">\n    <heuristic program=\"ping -c1 gw\"/>\n  </quorumd>\n  <clusternodes>"), "{q}");
        let three = ed(BASE, Op::NodeAdd { name: "c".into(), nodeid: None, votes: None, attrs: vec![] });
        assert!(three.contains("<clusternode name=\"c\" votes=\"1\" nodeid=\"3\"/>"));
        assert_eq!(apply(three.as_bytes(), &Op::SetTwoNode { on: true, expected_votes: None }, None).unwrap_err().kind, EditErrorKind::Refused);
    }

    #[test]
    fn reorder_methods() {
        let src = "<cluster name=\"c\" config_version=\"1\">\n<clusternodes>\n<clusternode name=\"a\" nodeid=\"1\">\n\t<fence>\n\t\t<method name=\"1\"><device name=\"x\"/></method>\n\t\t<method name=\"2\"><device name=\"y\"/></method>\n\t\t<method name=\"3\"><device name=\"z\"/></method>\n\t</fence>\n</clusternode>\n</clusternodes>\n</cluster>";
        let out = ed(src, Op::ReorderMethods { node: "a".into(), order: vec!["3".into(), "1".into()] });
        assert!(out.contains("\t\t<method name=\"3\"><device name=\"z\"/></method>\n\t\t<method name=\"1\"><device name=\"x\"/></method>\n\t\t<method name=\"2\"><device name=\"y\"/></method>\n"), "{out}");
    }

    #[test]
    fn skeleton_is_valid_shape() {
        let s = skeleton(&InitSpec { name: "duo".into(), nodes: vec!["a".into(), "b".into()], two_node: true, ..Default::default() }).unwrap();
        let (_d, m) = Model::parse(s.as_bytes()).unwrap();
        assert!(m.two_node());
        assert_eq!(m.nodes.len(), 2);
        assert!(skeleton(&InitSpec { name: "a-very-long-cluster-name".into(), nodes: vec!["a".into()], ..Default::default() }).is_err());
    }
}
