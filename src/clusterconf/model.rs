//! A typed view of what admins touch in cluster.conf, built from a [`Document`].
//!
//! Every item keeps its element id and line:column so diagnostics can point at it. Values are the
//! decoded attribute values; serialising (`--json`) masks secrets (see
//! [`super::document::is_secret_attr`]). The `rm` section is not modelled: it is passed through
//! untouched (only its position is recorded).
use serde::ser::{Serialize, SerializeStruct, Serializer};

use super::document::{is_secret_attr, Document, NodeId, ParseError, MASK};

/// Where an item is: the element and its 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Loc {
    #[serde(skip)]
    pub id: NodeId,
    pub line: usize,
    pub col: usize,
}

/// One attribute value with its position. Serialises with the value masked when it is a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrVal {
    pub name: String,
    pub value: String,
    pub line: usize,
    pub col: usize,
}

impl AttrVal {
    /// The value, or `********` for a secret.
    pub fn display_value(&self) -> &str {
        if is_secret_attr(&self.name) {
            MASK
        } else {
            &self.value
        }
    }
}

impl Serialize for AttrVal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("AttrVal", 4)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("value", self.display_value())?;
        st.serialize_field("line", &self.line)?;
        st.serialize_field("col", &self.col)?;
        st.end()
    }
}

/// A generic section (cman, totem, fence_daemon, logging, heuristic ...): its attributes in order.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Section {
    pub element: String,
    pub loc: Loc,
    pub attrs: Vec<AttrVal>,
    /// Element children as sections (e.g. `<multicast>`, `<interface>`, `<logging_daemon>`).
    pub children: Vec<Section>,
}

impl Section {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|a| a.name == name).map(|a| a.value.as_str())
    }
    pub fn attr(&self, name: &str) -> Option<&AttrVal> {
        self.attrs.iter().find(|a| a.name == name)
    }
}

/// `<device>` under a method or under `<unfence>`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeviceRef {
    pub name: Option<String>,
    pub loc: Loc,
    /// All attributes, `name` included, in file order.
    pub attrs: Vec<AttrVal>,
}

impl DeviceRef {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|a| a.name == name).map(|a| a.value.as_str())
    }
}

/// `<method name>`: devices that must all succeed, tried in file order after earlier methods.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Method {
    pub name: Option<String>,
    pub loc: Loc,
    pub devices: Vec<DeviceRef>,
}

/// `<clusternode>`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterNode {
    pub name: Option<String>,
    pub nodeid: Option<String>,
    pub votes: Option<String>,
    pub loc: Loc,
    pub attrs: Vec<AttrVal>,
    /// The `<fence>` element, if any.
    pub fence: Option<Loc>,
    pub methods: Vec<Method>,
    pub unfence: Vec<DeviceRef>,
    pub unfence_elem: Option<Loc>,
}

impl ClusterNode {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|a| a.name == name).map(|a| a.value.as_str())
    }
    /// votes as cman reads it (default 1).
    pub fn votes_or_default(&self) -> Option<u64> {
        match &self.votes {
            None => Some(1),
            Some(v) => v.trim().parse().ok(),
        }
    }
}

/// `<fencedevice>`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FenceDevice {
    pub name: Option<String>,
    pub agent: Option<String>,
    pub loc: Loc,
    pub attrs: Vec<AttrVal>,
}

impl FenceDevice {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|a| a.name == name).map(|a| a.value.as_str())
    }
}

/// `<quorumd>` and its heuristics.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Quorumd {
    pub section: Section,
    pub heuristics: Vec<Section>,
}

/// The typed view of a cluster.conf.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Model {
    /// Name of the root element (normally `cluster`).
    pub root_element: String,
    pub root: Loc,
    pub name: Option<AttrVal>,
    pub config_version: Option<AttrVal>,
    pub cluster_attrs: Vec<AttrVal>,
    pub cman: Option<Section>,
    pub totem: Option<Section>,
    pub quorumd: Option<Quorumd>,
    pub fence_daemon: Option<Section>,
    pub logging: Option<Section>,
    pub clusternodes: Option<Loc>,
    pub nodes: Vec<ClusterNode>,
    pub fencedevices_elem: Option<Loc>,
    pub fencedevices: Vec<FenceDevice>,
    /// The resource manager section: position only, content passed through untouched.
    pub rm: Option<Loc>,
    /// Other top-level elements (dlm, gfs_controld, ...), by name and position.
    pub other: Vec<(String, Loc)>,
}

fn loc(doc: &Document, id: NodeId) -> Loc {
    let (line, col) = doc.pos(id);
    Loc { id, line, col }
}

fn attrs(doc: &Document, id: NodeId) -> Vec<AttrVal> {
    match doc.element(id) {
        Some(e) => e
            .attrs
            .iter()
            .map(|a| {
                let (line, col) = doc.line_col(a.span.start);
                AttrVal { name: a.name.clone(), value: a.value.clone(), line, col }
            })
            .collect(),
        None => Vec::new(),
    }
}

fn section(doc: &Document, id: NodeId) -> Section {
    Section {
        element: doc.name(id).to_string(),
        loc: loc(doc, id),
        attrs: attrs(doc, id),
        children: doc.child_elements(id).into_iter().map(|c| section(doc, c)).collect(),
    }
}

fn device_ref(doc: &Document, id: NodeId) -> DeviceRef {
    DeviceRef { name: doc.attr_value(id, "name").map(str::to_string), loc: loc(doc, id), attrs: attrs(doc, id) }
}

impl Model {
    /// Parse bytes into a document and its model.
    pub fn parse(bytes: &[u8]) -> Result<(Document, Model), ParseError> {
        let doc = Document::parse(bytes)?;
        let model = Model::from_doc(&doc);
        Ok((doc, model))
    }

    /// Build the typed view of `doc` (never fails: what is missing is None/empty, and the
    /// validator reports it).
    pub fn from_doc(doc: &Document) -> Model {
        let root = doc.root().unwrap_or(0);
        let attr_val = |id: NodeId, n: &str| -> Option<AttrVal> { attrs(doc, id).into_iter().find(|a| a.name == n) };
        let mut m = Model {
            root_element: doc.name(root).to_string(),
            root: loc(doc, root),
            name: attr_val(root, "name"),
            config_version: attr_val(root, "config_version"),
            cluster_attrs: attrs(doc, root),
            cman: None,
            totem: None,
            quorumd: None,
            fence_daemon: None,
            logging: None,
            clusternodes: None,
            nodes: Vec::new(),
            fencedevices_elem: None,
            fencedevices: Vec::new(),
            rm: None,
            other: Vec::new(),
        };
        for c in doc.child_elements(root) {
            match doc.name(c) {
                "cman" if m.cman.is_none() => m.cman = Some(section(doc, c)),
                "totem" if m.totem.is_none() => m.totem = Some(section(doc, c)),
                "fence_daemon" if m.fence_daemon.is_none() => m.fence_daemon = Some(section(doc, c)),
                "logging" if m.logging.is_none() => m.logging = Some(section(doc, c)),
                "quorumd" if m.quorumd.is_none() => {
                    m.quorumd = Some(Quorumd {
                        section: section(doc, c),
                        heuristics: doc.children_named(c, "heuristic").into_iter().map(|h| section(doc, h)).collect(),
                    })
                }
                "clusternodes" if m.clusternodes.is_none() => {
                    m.clusternodes = Some(loc(doc, c));
                    for n in doc.children_named(c, "clusternode") {
                        m.nodes.push(Self::build_node(doc, n));
                    }
                }
                "fencedevices" if m.fencedevices_elem.is_none() => {
                    m.fencedevices_elem = Some(loc(doc, c));
                    for d in doc.children_named(c, "fencedevice") {
                        m.fencedevices.push(FenceDevice {
                            name: doc.attr_value(d, "name").map(str::to_string),
                            agent: doc.attr_value(d, "agent").map(str::to_string),
                            loc: loc(doc, d),
                            attrs: attrs(doc, d),
                        });
                    }
                }
                "rm" if m.rm.is_none() => m.rm = Some(loc(doc, c)),
                other => m.other.push((other.to_string(), loc(doc, c))),
            }
        }
        m
    }

    fn build_node(doc: &Document, n: NodeId) -> ClusterNode {
        let fence = doc.child(n, "fence");
        let methods = fence
            .map(|f| {
                doc.children_named(f, "method")
                    .into_iter()
                    .map(|mid| Method {
                        name: doc.attr_value(mid, "name").map(str::to_string),
                        loc: loc(doc, mid),
                        devices: doc.children_named(mid, "device").into_iter().map(|d| device_ref(doc, d)).collect(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let unfence_elem = doc.child(n, "unfence");
        ClusterNode {
            name: doc.attr_value(n, "name").map(str::to_string),
            nodeid: doc.attr_value(n, "nodeid").map(str::to_string),
            votes: doc.attr_value(n, "votes").map(str::to_string),
            loc: loc(doc, n),
            attrs: attrs(doc, n),
            fence: fence.map(|f| loc(doc, f)),
            methods,
            unfence: unfence_elem
                .map(|u| doc.children_named(u, "device").into_iter().map(|d| device_ref(doc, d)).collect())
                .unwrap_or_default(),
            unfence_elem: unfence_elem.map(|u| loc(doc, u)),
        }
    }

    pub fn cluster_name(&self) -> Option<&str> {
        self.name.as_ref().map(|a| a.value.as_str())
    }

    /// config_version as an integer, if it is one.
    pub fn version(&self) -> Option<u64> {
        self.config_version.as_ref().and_then(|a| a.value.trim().parse().ok())
    }

    pub fn node(&self, name: &str) -> Option<&ClusterNode> {
        self.nodes.iter().find(|n| n.name.as_deref() == Some(name))
    }

    pub fn fencedevice(&self, name: &str) -> Option<&FenceDevice> {
        self.fencedevices.iter().find(|d| d.name.as_deref() == Some(name))
    }

    /// `<cman two_node="1">`.
    pub fn two_node(&self) -> bool {
        self.cman.as_ref().and_then(|c| c.get("two_node")).map(|v| v.trim() == "1").unwrap_or(false)
    }

    /// expected_votes from `<cman>`, if set and numeric.
    pub fn expected_votes(&self) -> Option<u64> {
        self.cman.as_ref().and_then(|c| c.get("expected_votes")).and_then(|v| v.trim().parse().ok())
    }

    /// Sum of node votes (a node without `votes` counts 1); None if some value is not a number.
    pub fn vote_sum(&self) -> Option<u64> {
        self.nodes.iter().map(|n| n.votes_or_default()).sum()
    }

    /// How fenced would fence `node`: its methods in order, each with its devices and the
    /// parameters the agent gets on stdin. None when the node is not in the file.
    pub fn fencing_for(&self, node: &str) -> Option<NodeFencing> {
        let n = self.node(node)?;
        let call = |d: &DeviceRef| -> FenceCall {
            let device = d.name.clone().unwrap_or_default();
            let fd = self.fencedevice(&device);
            // fenced (libfence make_args): the node's <device> attributes except name, then
            // nodename= unless given, then the <fencedevice> attributes except name (agent= included).
            let mut stdin: Vec<(String, String)> = Vec::new();
            for a in d.attrs.iter().filter(|a| a.name != "name") {
                stdin.push((a.name.clone(), a.value.clone()));
            }
            if !stdin.iter().any(|(k, _)| k == "nodename") {
                stdin.push(("nodename".into(), node.to_string()));
            }
            if let Some(fd) = fd {
                for a in fd.attrs.iter().filter(|a| a.name != "name") {
                    stdin.push((a.name.clone(), a.value.clone()));
                }
            }
            let mut params: Vec<(String, String)> = Vec::new();
            for (k, v) in &stdin {
                match params.iter_mut().find(|(pk, _)| pk == k) {
                    Some(p) => p.1 = v.clone(),
                    None => params.push((k.clone(), v.clone())),
                }
            }
            FenceCall {
                device,
                agent: fd.and_then(|f| f.agent.clone()),
                defined: fd.is_some(),
                line: d.loc.line,
                col: d.loc.col,
                stdin,
                params,
            }
        };
        Some(NodeFencing {
            node: node.to_string(),
            nodeid: n.nodeid.as_ref().and_then(|v| v.trim().parse().ok()),
            methods: n
                .methods
                .iter()
                .map(|m| FenceMethod { name: m.name.clone().unwrap_or_default(), devices: m.devices.iter().map(call).collect() })
                .collect(),
            unfence: n.unfence.iter().map(call).collect(),
        })
    }
}

/// How one node is fenced: methods in cascade order (the first whose devices all succeed wins).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeFencing {
    pub node: String,
    pub nodeid: Option<u32>,
    pub methods: Vec<FenceMethod>,
    /// `<unfence>` devices (run at start-up with action=on by the init script).
    pub unfence: Vec<FenceCall>,
}

/// One `<method>`: every device must succeed (dual PSU: off, off, on, on).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FenceMethod {
    pub name: String,
    pub devices: Vec<FenceCall>,
}

/// One agent invocation.
#[derive(Clone, PartialEq, Eq)]
pub struct FenceCall {
    /// The `<device name>` = `<fencedevice name>`.
    pub device: String,
    /// `agent=` of the fencedevice (None when the device is undefined or has no agent).
    pub agent: Option<String>,
    /// Whether a `<fencedevice>` of that name exists.
    pub defined: bool,
    /// Position of the `<device>` element.
    pub line: usize,
    pub col: usize,
    /// key=value lines exactly as fenced writes them to the agent's stdin, in order: the node's
    /// device attributes (minus `name`), `nodename=<node>` unless given, then the fencedevice's
    /// attributes (minus `name`, `agent` included). Contains secrets.
    pub stdin: Vec<(String, String)>,
    /// The same merged the way fence agents read stdin (a later line overrides an earlier one, so
    /// a fencedevice attribute wins over the node's device attribute of the same name), in order
    /// of first appearance. Contains secrets.
    pub params: Vec<(String, String)>,
}

impl FenceCall {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    /// The stdin text fenced would send (`key=value\n` lines). Contains secrets.
    pub fn stdin_text(&self) -> String {
        self.stdin.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
    }
}

fn masked_pairs(v: &[(String, String)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, val)| (k.clone(), if is_secret_attr(k) { MASK.to_string() } else { val.clone() }))
        .collect()
}

impl std::fmt::Debug for FenceCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FenceCall")
            .field("device", &self.device)
            .field("agent", &self.agent)
            .field("defined", &self.defined)
            .field("params", &masked_pairs(&self.params))
            .finish()
    }
}

impl Serialize for FenceCall {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("FenceCall", 6)?;
        st.serialize_field("device", &self.device)?;
        st.serialize_field("agent", &self.agent)?;
        st.serialize_field("defined", &self.defined)?;
        st.serialize_field("line", &self.line)?;
        st.serialize_field("col", &self.col)?;
        st.serialize_field("params", &masked_pairs(&self.params))?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: &str = r#"<?xml version="1.0"?>
<cluster name="duo" config_version="7">
  <cman two_node="1" expected_votes="1"/>
  <clusternodes>
    <clusternode name="a" nodeid="1" votes="1">
      <fence>
        <method name="ipmi">
          <device name="ipmi-a" delay="15" passwd="node-level"/>
        </method>
        <method name="pdu">
          <device name="pdu" port="1" action="off"/>
          <device name="pdu" port="2" action="off"/>
        </method>
      </fence>
      <unfence><device name="pdu" port="1" action="on"/></unfence>
    </clusternode>
    <clusternode name="b" nodeid="2" votes="1"/>
  </clusternodes>
  <fencedevices>
    <fencedevice name="ipmi-a" agent="fence_ipmilan" ipaddr="10.0.0.1" login="admin" passwd="s3&amp;cret" lanplus="1"/>
    <fencedevice name="pdu" agent="fence_apc" ipaddr="10.0.0.9"/>
  </fencedevices>
  <rm><service name="x"/></rm>
</cluster>
"#;

    #[test]
    fn typed_view() {
        let (_d, m) = Model::parse(F.as_bytes()).unwrap();
        assert_eq!(m.cluster_name(), Some("duo"));
        assert_eq!(m.version(), Some(7));
        assert!(m.two_node());
        assert_eq!(m.expected_votes(), Some(1));
        assert_eq!(m.nodes.len(), 2);
        assert_eq!(m.nodes[0].methods.len(), 2);
        assert_eq!(m.nodes[0].methods[1].devices.len(), 2);
        assert_eq!(m.nodes[0].methods[0].loc.line, 7);
        assert_eq!(m.fencedevices[0].get("passwd"), Some("s3&cret"));
        assert!(m.rm.is_some());
        let json = serde_json::to_string(&m).unwrap();
        assert!(!json.contains("s3&cret") && !json.contains("node-level"), "{json}");
    }

    #[test]
    fn fencing_for_merges_like_fenced() {
        let (_d, m) = Model::parse(F.as_bytes()).unwrap();
        let f = m.fencing_for("a").unwrap();
        assert_eq!(f.nodeid, Some(1));
        assert_eq!(f.methods.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["ipmi", "pdu"]);
        let ipmi = &f.methods[0].devices[0];
        assert_eq!(ipmi.agent.as_deref(), Some("fence_ipmilan"));
        assert_eq!(ipmi.param("delay"), Some("15"));
        assert_eq!(ipmi.param("nodename"), Some("a"));
        // the fencedevice line comes later on stdin and wins
        assert_eq!(ipmi.param("passwd"), Some("s3&cret"));
        assert_eq!(ipmi.stdin_text(), "delay=15\npasswd=node-level\nnodename=a\nagent=fence_ipmilan\nipaddr=10.0.0.1\nlogin=admin\npasswd=s3&cret\nlanplus=1\n");
        assert!(!format!("{ipmi:?}").contains("s3&cret"));
        assert_eq!(f.methods[1].devices[1].param("port"), Some("2"));
        assert_eq!(f.unfence[0].param("action"), Some("on"));
        assert!(m.fencing_for("b").unwrap().methods.is_empty());
        assert!(m.fencing_for("zz").is_none());
    }
}
