//! The fence devices asked for their power status, one device at a time (never a power action):
//! `fence test`'s non-destructive check over the real drivers. The gate devices are not BMCs and
//! are left to `gather::gate`.
use crate::doctor::checks::gate::without_gate;
use crate::fence::spec::{FenceTarget, Method};
use crate::fence::test::DeviceCheck;
use indicatif::ProgressBar;

/// Check every fence device of `targets` but the gate's.
pub fn check_devices(targets: &[FenceTarget], bar: &ProgressBar) -> Vec<DeviceCheck> {
    let plain = without_gate(targets);
    let clock = crate::fence::engine::RealClock::new();
    let mut opener = crate::fence::drivers::RealOpener;
    let n: usize = plain.iter().flat_map(|t| &t.methods).map(|m| m.devices.len()).sum();
    bar.inc_length(n as u64);
    let mut checks = Vec::new();
    for t in &plain {
        for m in &t.methods {
            for d in &m.devices {
                bar.set_message(format!("fence device {} ({} method {})", d.name, t.node, m.name));
                let one = FenceTarget { node: t.node.clone(), nodeid: t.nodeid.clone(), methods: vec![Method { name: m.name.clone(), devices: vec![d.clone()] }] };
                checks.extend(crate::fence::test::check_devices(&[one], &mut opener, &clock));
                bar.inc(1);
            }
        }
    }
    checks
}
