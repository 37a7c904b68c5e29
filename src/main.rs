//! The `twonode` binary: clap definitions live in `twonode::cli`; this only dispatches.
fn main() {
    std::process::exit(twonode::cli::main());
}
