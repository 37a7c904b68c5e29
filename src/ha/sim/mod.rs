//! The simulator: pve-ha-manager's regression-test world (nodes with power and network, a shared
//! cluster file system with locks, watchdogs, simulated guests) on a virtual clock, driving the
//! real HA core. `twonode` adds the two-node world: an arbiter, BMCs, DRBD, a split between nodes.
pub mod env;
pub mod hardware;
pub mod invariant;
pub mod regdir;
pub mod twonode;

pub use hardware::Hardware;
pub use regdir::{load_dir, Scenario};

/// The hard limit of the virtual clock: a run never goes on forever.
pub const MAX_SIM_TIME: i64 = 10000;

/// One log line in ha-manager's simulator format.
pub fn format_line(level: &str, time: i64, id: &str, msg: &str) -> String {
    let level: String = level.chars().take(4).collect();
    format!("{:<5} {:>5} {:>12}: {}", level, time, id, msg.trim_end_matches('\n'))
}

/// Run a regression directory; returns the log (also when the run stops on an error: the error
/// is its last line) and the error, if any.
pub fn simulate(dir: &std::path::Path) -> Result<(Vec<String>, Option<String>), String> {
    let sc = load_dir(dir)?;
    let mut hw = Hardware::new(sc);
    let r = hw.run();
    Ok((hw.log, r.err()))
}

/// As [`simulate`], fencing through `fencer` instead of the simulated arbiter and BMCs.
pub fn simulate_with(dir: &std::path::Path, fencer: Box<dyn twonode::Fencer>) -> Result<(Vec<String>, Option<String>), String> {
    let sc = load_dir(dir)?;
    if sc.twonode.is_none() {
        return Err(format!("{}: real fencing needs the two-node world (a twonode.json in the directory)", dir.display()));
    }
    let mut hw = Hardware::new(sc);
    hw.fencer = Some(fencer);
    let r = hw.run();
    Ok((hw.log, r.err()))
}
