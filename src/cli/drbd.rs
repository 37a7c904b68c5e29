//! `twonode drbd`: command-line surface; logic lives in the library.
use super::Global;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args, _g: &Global) -> anyhow::Result<i32> {
    anyhow::bail!("`twonode drbd` is not implemented yet")
}
