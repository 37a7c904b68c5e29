//! DRBD split brain on the lab's two simulated nodes: evidence, guided recovery over SSH.
use super::scenario::Scenario;

pub fn scenarios() -> Vec<Scenario> {
    vec![]
}
