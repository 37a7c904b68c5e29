//! A RELAX NG validator of our own, used to check `cluster.conf` against the schema cman ships
//! (`fixtures/clusterconf/schema/cluster.rng`, embedded), with line:column diagnostics.
//!
//! Algorithm: James Clark's derivative algorithm ("An algorithm for RELAX NG validation"): the
//! schema is compiled once into hash-consed patterns (ids in an arena, choices kept canonical:
//! flattened, sorted, deduplicated); the document is streamed through `startTagOpenDeriv`,
//! `attDeriv`, `startTagCloseDeriv`, text and `endTagDeriv`, all memoised. A validation run
//! overlays its new patterns on the shared compiled store, so the schema is compiled once per
//! process ([`validate_cluster_conf`] keeps it in a `OnceLock`) and runs need no locking.
//!
//! Semantics follow the RELAX NG specification, which is what `xmllint --relaxng` (libxml2)
//! implements for this schema:
//! * whitespace-only text is ignored between elements, and an element whose only content is
//!   whitespace (or nothing) matches `empty`;
//! * attribute values are normalised as an XML parser does (tabs/newlines become spaces), then
//!   the datatype's whitespace rule applies (`<value>` without a type is a `token`: `" udp "`
//!   equals `udp`; xsd integers and ID/IDREF are whitespace-collapsed);
//! * a `<choice>` of `<group>`s of optional attributes (FENCEDEVICEOPTIONS) requires all the
//!   attributes of one element to fit one group (one fence agent);
//! * xsd:ID values must be unique, and every xsd:IDREF must name a declared ID (libxml2's
//!   "IDREF attribute name references an unknown ID"); like libxml2 the check is done on the
//!   document after validation.
//!
//! The validator reports the first problem at each place and recovers (skips a misplaced element,
//! ignores a rejected attribute, treats missing attributes or children as present), so one run
//! reports several independent errors. A not-well-formed document gives exactly one diagnostic,
//! starting "not well-formed XML:", and is not validated (xmllint does the same).
//!
//! Deliberate differences from `xmllint --noout --relaxng cluster.rng` (verdicts; also listed in
//! tests/relaxng_agreement.rs):
//! * none known: the corpus and every mutant of tests/relaxng_agreement.rs (400 in CI, 13,000
//!   over several seeds when written) get xmllint's verdict. Error *positions* differ often:
//!   libxml2 tends to report an enclosing element ("Extra element fencedevices in interleave"),
//!   we report the attribute or element that is actually wrong.
//! * Not supported in the *schema*: include, externalRef, nested grammars, datatype `pattern`
//!   facets: `Schema::parse` returns an error for them (cluster.rng uses none of them).
//! * Entities: only the predefined ones, character references and `<!ENTITY n "v">` declared in
//!   the internal DTD subset are expanded; external entities are not (xmllint does not load them
//!   either without --loaddtd/--noent). DTD default attributes are not applied (nor by xmllint).
//!
//! Messages name the element and attribute and what was expected; positions are 1-based line and
//! column (characters) of the offending element's `<`, attribute name or text.

mod compile;
mod datatype;
mod deriv;
mod instance;
mod pattern;

use std::sync::OnceLock;

/// The schema cman 3.x / Proxmox VE 2-3 validates cluster.conf against (`ccs_config_validate`).
pub const CLUSTER_RNG: &str = include_str!("../../fixtures/clusterconf/schema/cluster.rng");

/// One schema or well-formedness problem, 1-based position.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SchemaDiag {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl std::fmt::Display for SchemaDiag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

/// A compiled RELAX NG schema.
pub struct Schema {
    compiled: compile::Compiled,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schema")
            .field("patterns", &self.compiled.store.pats.len())
            .field("elements", &self.compiled.elements.len())
            .finish()
    }
}

impl Schema {
    /// Compile a schema in RELAX NG XML syntax. Errors name the schema line.
    pub fn parse(rng: &str) -> Result<Schema, String> {
        Ok(Schema { compiled: compile::compile(rng)? })
    }

    /// Validate a document; an empty result means valid. Never panics on any input.
    pub fn validate(&self, xml: &str) -> Vec<SchemaDiag> {
        let lines = instance::Lines::new(xml);
        let evs = match instance::tokenize(xml, &lines) {
            Ok(evs) => evs,
            Err(d) => return vec![d],
        };
        instance::Validator::new(&self.compiled, &lines).run(&evs)
    }

    /// Is this diagnostic a well-formedness error (the document could not be read as XML)?
    pub fn is_wellformedness_error(d: &SchemaDiag) -> bool {
        d.message.starts_with("not well-formed XML:")
    }
}

/// The embedded cluster.rng, compiled on first use.
pub fn cluster_schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| match Schema::parse(CLUSTER_RNG) {
        Ok(s) => s,
        // The embedded schema is a fixed input checked by the tests; failing to compile it is a
        // build defect, not a user error.
        Err(e) => panic!("embedded cluster.rng does not compile: {e}"),
    })
}

/// Validate a cluster.conf text against the embedded cluster.rng. Empty = valid.
pub fn validate_cluster_conf(xml: &str) -> Vec<SchemaDiag> {
    cluster_schema().validate(xml)
}

/// A generated, schema-valid cluster.conf with `nodes` nodes (IPMI fencing per node plus a shared
/// APC PDU as second method, quorumd, totem, logging, rm with domains, resources and services).
/// Used by the agreement tests (as a mutation base) and by `bench/relaxng-bench`.
#[doc(hidden)]
pub fn sample_cluster_conf(nodes: usize) -> String {
    use std::fmt::Write;
    let nodes = nodes.max(1);
    let mut s = String::new();
    let _ = writeln!(s, "<?xml version=\"1.0\"?>");
    let _ = writeln!(s, "<cluster name=\"bench\" config_version=\"42\">");
    if nodes == 2 {
        let _ = writeln!(s, "  <cman two_node=\"1\" expected_votes=\"1\" transport=\"udpu\" port=\"5405\"/>");
    } else {
        let _ = writeln!(s, "  <cman expected_votes=\"{}\" transport=\"udpu\" port=\"5405\"/>", nodes + 1);
    }
    let _ = writeln!(s, "  <totem token=\"10000\" consensus=\"12000\" rrp_mode=\"none\" secauth=\"on\"/>");
    if nodes != 2 {
        let _ = writeln!(s, "  <quorumd interval=\"1\" tko=\"10\" votes=\"1\" label=\"qdisk\" min_score=\"1\">");
        let _ = writeln!(s, "    <heuristic program=\"ping -c1 -w1 10.0.0.254\" score=\"1\" interval=\"2\" tko=\"3\"/>");
        let _ = writeln!(s, "  </quorumd>");
    }
    let _ = writeln!(s, "  <fence_daemon post_join_delay=\"20\" post_fail_delay=\"0\" clean_start=\"0\"/>");
    let _ = writeln!(s, "  <logging to_syslog=\"yes\" to_logfile=\"yes\" logfile=\"/var/log/cluster/cluster.log\">");
    let _ = writeln!(s, "    <logging_daemon name=\"corosync\" debug=\"off\"/>");
    let _ = writeln!(s, "  </logging>");
    let _ = writeln!(s, "  <clusternodes>");
    for i in 1..=nodes {
        let _ = writeln!(s, "    <!-- node {i} -->");
        let _ = writeln!(s, "    <clusternode name=\"node{i}.example.net\" nodeid=\"{i}\" votes=\"1\">");
        let _ = writeln!(s, "      <altname name=\"node{i}-ring1\"/>");
        let _ = writeln!(s, "      <fence>");
        let _ = writeln!(s, "        <method name=\"1\">");
        let _ = writeln!(s, "          <device name=\"ipmi{i}\" action=\"reboot\"{}/>", if i == 1 { " delay=\"15\"" } else { "" });
        let _ = writeln!(s, "        </method>");
        let _ = writeln!(s, "        <method name=\"pdu\">");
        let _ = writeln!(s, "          <device name=\"apc\" port=\"{i}\" action=\"off\"/>");
        let _ = writeln!(s, "          <device name=\"apc\" port=\"{i}\" action=\"on\"/>");
        let _ = writeln!(s, "        </method>");
        let _ = writeln!(s, "      </fence>");
        let _ = writeln!(s, "      <unfence>");
        let _ = writeln!(s, "        <device name=\"apc\" port=\"{i}\" action=\"on\"/>");
        let _ = writeln!(s, "      </unfence>");
        let _ = writeln!(s, "    </clusternode>");
    }
    let _ = writeln!(s, "  </clusternodes>");
    let _ = writeln!(s, "  <fencedevices>");
    for i in 1..=nodes {
        let _ = writeln!(
            s,
            "    <fencedevice name=\"ipmi{i}\" agent=\"fence_ipmilan\" ipaddr=\"10.1.0.{}\" login=\"admin\" passwd=\"s&amp;cret{i}\" lanplus=\"1\" power_wait=\"5\"/>",
            i % 250 + 1
        );
    }
    let _ = writeln!(s, "    <fencedevice name=\"apc\" agent=\"fence_apc\" ipaddr=\"10.2.0.1\" login=\"apc\" passwd_script=\"/usr/local/bin/apcpw\" cmd_prompt=\"APC&gt;\"/>");
    let _ = writeln!(s, "  </fencedevices>");
    let _ = writeln!(s, "  <rm log_level=\"5\">");
    let _ = writeln!(s, "    <failoverdomains>");
    let _ = writeln!(s, "      <failoverdomain name=\"all\" ordered=\"1\" restricted=\"0\">");
    for i in 1..=nodes {
        let _ = writeln!(s, "        <failoverdomainnode name=\"node{i}.example.net\" priority=\"{i}\"/>");
    }
    let _ = writeln!(s, "      </failoverdomain>");
    let _ = writeln!(s, "    </failoverdomains>");
    let _ = writeln!(s, "    <resources>");
    let _ = writeln!(s, "      <ip address=\"10.0.0.100\" monitor_link=\"1\"/>");
    let _ = writeln!(s, "      <fs name=\"data\" device=\"/dev/drbd0\" mountpoint=\"/srv\" fstype=\"ext4\"/>");
    let _ = writeln!(s, "    </resources>");
    let _ = writeln!(s, "    <service name=\"web\" domain=\"all\" autostart=\"1\" recovery=\"relocate\">");
    let _ = writeln!(s, "      <ip ref=\"10.0.0.100\">");
    let _ = writeln!(s, "        <fs ref=\"data\"/>");
    let _ = writeln!(s, "      </ip>");
    let _ = writeln!(s, "    </service>");
    for v in 0..nodes.min(16) {
        let _ = writeln!(s, "    <pvevm vmid=\"{}\" autostart=\"1\"/>", 100 + v);
    }
    let _ = writeln!(s, "  </rm>");
    let _ = writeln!(s, "</cluster>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(body: &str) -> Schema {
        let src = format!(
            "<grammar xmlns='http://relaxng.org/ns/structure/1.0' \
             datatypeLibrary='http://www.w3.org/2001/XMLSchema-datatypes'>{body}</grammar>"
        );
        match Schema::parse(&src) {
            Ok(s) => s,
            Err(e) => panic!("schema: {e}"),
        }
    }

    fn ok(s: &Schema, xml: &str) -> bool {
        s.validate(xml).is_empty()
    }

    #[test]
    fn element_and_attributes() {
        let s = schema(
            "<start><element name='a'><attribute name='x'><data type='positiveInteger'/></attribute>\
             <optional><attribute name='y'/></optional><empty/></element></start>",
        );
        assert!(ok(&s, "<a x='1'/>"));
        assert!(ok(&s, "<a y='q' x=' 2 '/>"));
        assert!(ok(&s, "<a x='1'>  \n </a>"));
        assert!(!ok(&s, "<a/>"));
        assert!(!ok(&s, "<a x='0'/>"));
        assert!(!ok(&s, "<a x='1' z='2'/>"));
        assert!(!ok(&s, "<a x='1'>text</a>"));
        assert!(!ok(&s, "<a x='1'><b/></a>"));
        assert!(!ok(&s, "<b x='1'/>"));
        let d = s.validate("<a x='0'/>");
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].line, d[0].col), (1, 4));
        assert!(d[0].message.contains("positiveInteger"), "{}", d[0].message);
        let d = s.validate("<a\n y='1'/>");
        assert!(d[0].message.contains("attribute x is required"), "{}", d[0].message);
    }

    #[test]
    fn group_order_and_interleave() {
        let s = schema(
            "<start><element name='r'><group><element name='a'><empty/></element>\
             <element name='b'><empty/></element></group>\
             <interleave><optional><element name='c'><empty/></element></optional>\
             <zeroOrMore><element name='d'><empty/></element></zeroOrMore></interleave></element></start>",
        );
        assert!(ok(&s, "<r><a/><b/></r>"));
        assert!(ok(&s, "<r><a/><b/><d/><c/><d/></r>"));
        assert!(!ok(&s, "<r><b/><a/></r>"));
        assert!(!ok(&s, "<r><a/></r>"));
        assert!(!ok(&s, "<r><a/><b/><c/><c/></r>"));
        let d = s.validate("<r><a/></r>");
        assert!(d[0].message.contains("incomplete") && d[0].message.contains("<b>"), "{:?}", d);
    }

    #[test]
    fn choice_of_attribute_groups_needs_one_group() {
        let s = schema(
            "<start><element name='dev'><choice>\
             <group><optional><attribute name='a'/></optional><optional><attribute name='b'/></optional></group>\
             <group><optional><attribute name='c'/></optional><optional><attribute name='b'/></optional></group>\
             </choice></element></start>",
        );
        assert!(ok(&s, "<dev a='1' b='2'/>"));
        assert!(ok(&s, "<dev c='1' b='2'/>"));
        assert!(ok(&s, "<dev/>"));
        assert!(!ok(&s, "<dev a='1' c='2'/>"));
        let d = s.validate("<dev a='1' c='2'/>");
        assert!(d[0].message.contains("cannot be combined"), "{:?}", d);
    }

    #[test]
    fn text_value_and_lists() {
        let s = schema(
            "<start><element name='r'><attribute name='t'><choice><value>udp</value><value>udpu</value></choice></attribute>\
             <element name='n'><data type='integer'/></element>\
             <element name='l'><list><oneOrMore><data type='integer'/></oneOrMore></list></element>\
             <element name='m'><mixed><zeroOrMore><element name='x'><empty/></element></zeroOrMore></mixed></element>\
             </element></start>",
        );
        assert!(ok(&s, "<r t=' udp '><n> -5 </n><l>1 2  3</l><m>a<x/>b<x/></m></r>"));
        assert!(!ok(&s, "<r t='tcp'><n>1</n><l>1</l><m/></r>"));
        assert!(!ok(&s, "<r t='udp'><n>x</n><l>1</l><m/></r>"));
        assert!(!ok(&s, "<r t='udp'><n>1</n><l></l><m/></r>"));
        assert!(ok(&s, "<r t='udp'><n>1<!-- c -->2</n><l>1</l><m/></r>"));
        let d = s.validate("<r t='tcp'><n>1</n><l>1</l><m/></r>");
        assert!(d[0].message.contains("\"udp\""), "{:?}", d);
    }

    #[test]
    fn recursion_through_defines() {
        let s = schema(
            "<start><ref name='node'/></start>\
             <define name='node'><element name='n'><optional><attribute name='v'/></optional>\
             <zeroOrMore><ref name='node'/></zeroOrMore></element></define>",
        );
        assert!(ok(&s, "<n><n v='1'><n/><n/></n></n>"));
        assert!(!ok(&s, "<n><m/></n>"));
    }

    #[test]
    fn ids_and_idrefs() {
        let s = schema(
            "<start><element name='r'><zeroOrMore><choice>\
             <element name='d'><attribute name='name'><data type='ID'/></attribute></element>\
             <element name='u'><attribute name='ref'><data type='IDREF'/></attribute></element>\
             </choice></zeroOrMore></element></start>",
        );
        assert!(ok(&s, "<r><u ref='a'/><d name='a'/></r>"));
        assert!(ok(&s, "<r><u ref=' a '/><d name='a'/></r>"));
        assert!(!ok(&s, "<r><u ref='b'/><d name='a'/></r>"));
        assert!(!ok(&s, "<r><d name='a'/><d name='a'/></r>"));
        assert!(!ok(&s, "<r><d name='1a'/></r>"));
        let d = s.validate("<r>\n<u ref='b'/><d name='a'/></r>");
        assert_eq!((d[0].line, d[0].col), (2, 4));
        assert!(d[0].message.contains("unknown ID \"b\""), "{:?}", d);
    }

    #[test]
    fn well_formedness_errors_are_single_diagnostics() {
        let s = schema("<start><element name='r'><empty/></element></start>");
        for bad in ["", "<r>", "<r/><r/>", "<r a/>", "<r a='1' a='2'/>", "<r></s>", "x<r/>", "<r>&bogus;</r>"] {
            let d = s.validate(bad);
            assert_eq!(d.len(), 1, "{bad:?}: {d:?}");
            assert!(Schema::is_wellformedness_error(&d[0]), "{bad:?}: {d:?}");
        }
        assert!(ok(&s, "<?xml version='1.0'?>\n<!-- c --><r/>\n"));
        assert!(ok(&s, "<!DOCTYPE r [<!ENTITY e ''>]><r>&e;</r>"));
    }

    #[test]
    fn namespaces() {
        let s = schema("<start><element name='r'><optional><attribute name='a'/></optional><empty/></element></start>");
        assert!(ok(&s, "<r xmlns:x='urn:x'/>"));
        assert!(!ok(&s, "<r xmlns='urn:x'/>"));
        assert!(!ok(&s, "<r xmlns:x='urn:x' x:a='1'/>"));
        assert!(!ok(&s, "<r xml:lang='en'/>"));
    }

    #[test]
    fn embedded_schema_compiles_and_validates_a_minimal_file() {
        let d = validate_cluster_conf(
            "<cluster name='c' config_version='1'><clusternodes>\
             <clusternode name='a' nodeid='1'/></clusternodes></cluster>",
        );
        assert!(d.is_empty(), "{d:?}");
        let d = validate_cluster_conf(
            "<cluster name='c' config_version='1'><clusternodes>\n\
             <clusternode name='a' votes='0'/></clusternodes></cluster>",
        );
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d.iter().any(|x| x.message.contains("nodeid is required")), "{d:?}");
        assert!(d.iter().any(|x| x.message.contains("votes=\"0\"") && x.message.contains("positiveInteger")), "{d:?}");
    }
}
