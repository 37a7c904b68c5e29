//! `twonode arbiter`: command-line surface; logic lives in the library.
use super::arbiter_server;
use super::Global;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Run the arbiter daemon (speaks the corosync-qnetd protocol on TCP 5403).
    Serve(arbiter_server::ServeArgs),
    /// Clusters, nodes, votes and lease ages of a running arbiter.
    Status(arbiter_server::StatusArgs),
    /// Certificates for corosync-qdevice (init a CA, sign node requests, import a qnetd db).
    #[command(subcommand)]
    Certs(arbiter_server::CertsCmd),
}

pub fn run(args: Args, g: &Global) -> anyhow::Result<i32> {
    match args.cmd {
        Cmd::Serve(a) => arbiter_server::serve(a, g),
        Cmd::Status(a) => arbiter_server::status(a, g),
        Cmd::Certs(c) => arbiter_server::certs(c, g),
    }
}
