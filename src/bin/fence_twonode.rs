//! `fence_twonode`: twonode's fence agent as a binary of its own, for fenced, pacemaker and
//! stonith_admin. It links only the fence engine and its drivers (no clap command tree, no SSH,
//! no OpenSSL), so that the process a cluster starts to fence a node begins its first packet
//! sooner. Options, input and exit codes: `twonode::fence::agent` (`fence_twonode -h`).
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(twonode::fence::agent::run(&args, &mut std::io::stdin(), None));
}
