//! `twonode lab redfish-sim`: a simulated Redfish BMC with a vendor profile.
use crate::cli::Global;
use crate::lab::redfish_sim::{self, Profile, RedfishSim, RedfishSimConfig};
use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Debug)]
#[command(after_help = "Serves Redfish over HTTPS (self-signed certificate, written to STATE_DIR/cert.pem) on
loopback until killed. Default user admin / password secret unless --users-file gives
LOGIN:PASSWORD lines. Try it with the real agent (password on stdin, never in argv):
  printf 'action=status\\nip=127.0.0.1\\nipport=PORT\\nusername=admin\\npassword=secret\\nssl_insecure=1\\n' | fence_redfish")]
pub struct RedfishSimArgs {
    /// TCP port (0 = pick a free one and print it).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1")]
    pub listen: std::net::IpAddr,
    /// Vendor profile.
    #[arg(long, value_enum, default_value = "ilo5")]
    pub profile: Profile,
    /// Directory for cert.pem.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// File of LOGIN:PASSWORD lines (passwords never on the command line).
    #[arg(long)]
    pub users_file: Option<PathBuf>,
    /// Start with the machine powered off.
    #[arg(long)]
    pub off: bool,
    /// Seconds a 202 task runs (profiles that answer resets with a task).
    #[arg(long, default_value_t = 0.6)]
    pub task_delay: f64,
    /// Refuse session logins (403): clients must fall back to basic authentication.
    #[arg(long)]
    pub no_sessions: bool,
}

pub fn run_sim(a: RedfishSimArgs, g: &Global) -> anyhow::Result<i32> {
    let mut cfg = RedfishSimConfig::new(a.profile);
    cfg.bind = std::net::SocketAddr::new(a.listen, a.port);
    cfg.initial_on = !a.off;
    cfg.task_delay = Duration::from_secs_f64(a.task_delay.clamp(0.0, 600.0));
    cfg.sessions_refused = a.no_sessions;
    cfg.state_dir = a.state_dir.clone();
    if let Some(f) = &a.users_file {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading users file {}", f.display()))?;
        cfg.users = redfish_sim::parse_users(&text).with_context(|| format!("in {}", f.display()))?;
    }
    let sim = RedfishSim::start(cfg)?;
    if g.json {
        crate::util::print_json(&serde_json::json!({
            "listening": sim.addr().to_string(), "port": sim.port(), "profile": a.profile,
            "systems_uri": sim.system_uri(), "spec": sim.spec(),
        }))?;
    } else {
        println!(
            "redfish-sim: {:?} ({} {}), system {}; listening on {}",
            a.profile,
            sim.spec().manufacturer,
            sim.spec().model,
            sim.system_uri(),
            sim.addr()
        );
    }
    std::io::stdout().flush()?;
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
