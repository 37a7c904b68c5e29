//! `twonode doctor`: one preflight over a whole two-node cluster.
//!
//! Split like every area:
//! * [`facts`]: what was gathered, plain data ([`Facts`], [`NodeFacts`], ...).
//! * [`gather`]: the I/O that fills the facts (the nodes through [`crate::host::Host`], the fence
//!   drivers, the arbiter gate's client, the arbiter's socket); it never judges.
//! * [`checks`]: pure functions facts -> [`Finding`]s, one file per area (conf, quorum, fence,
//!   gate, qdevice, arbiter, drbd, services), listed in [`checks::AREAS`]. Each finding has a
//!   stable check id, a severity, the node, the evidence seen and the fix. A new area is a new
//!   file there (see [`checks`] for how).
//! * [`render`]: the human table and the `--json` document.
//!
//! [`diagnose`] runs every check area on the facts; [`exit_code`] turns the outcome into the
//! command's exit code. The heuristics the checks rest on are documented in the area that uses
//! them (e.g. which DRBD resources an HA service uses: [`checks::services`]).
pub mod checks;
pub mod facts;
pub mod gather;
pub mod render;

pub use checks::{Finding, Severity};
pub use facts::qdevice;
pub use facts::{ArbiterFacts, CertFacts, Facts, GateMonitor, GateProbe, GuestConf, NodeFacts};
pub use gather::{gather, GatherOptions, DEFAULT_COROSYNC};
pub use render::render;
// the gate as doctor reads it from a cluster.conf (`fence::gate`; tests/doctor.rs checks it)
pub use checks::gate::gate_of_cluster_conf;

/// The pure core: facts in, findings out (sorted: errors first, then by check).
pub fn diagnose(facts: &Facts) -> Vec<Finding> {
    let cx = checks::Context::new(facts);
    let mut out: Vec<Finding> = checks::AREAS.iter().flat_map(|area| (area.check)(&cx)).collect();
    out.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.check.cmp(&b.check)));
    out
}

/// Exit code: 0 no error, 1 errors found, 2 could not gather (a node unreachable).
pub fn exit_code(facts: &Facts, findings: &[Finding]) -> i32 {
    if facts.nodes.iter().any(|n| n.unreachable.is_some()) {
        2
    } else if findings.iter().any(|x| x.severity == Severity::Error) {
        1
    } else {
        0
    }
}
