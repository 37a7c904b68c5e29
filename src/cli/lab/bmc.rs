//! `twonode lab bmc-sim`: the IPMI 2.0 BMC simulator (RMCP+, cipher suites 17 and 3).
use crate::cli::Global;
use crate::lab::bmc_sim::{self, BmcSim, BmcSimConfig};
use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  twonode lab bmc-sim --state-dir /tmp/bmc1
  twonode lab bmc-sim --state-dir /tmp/bmc1 --suites 3      a BMC without suite 17
  ipmitool -I lanplus -C 17 -H 127.0.0.1 -p PORT -U admin -E chassis power status   (IPMI_PASSWORD=secret)
The line `listening on 127.0.0.1:PORT` is printed once the port is open. Power state is kept in
STATE_DIR/power.0x20 (1 on, 0 off), Chassis Control is logged to STATE_DIR/chassis.log and sessions
to STATE_DIR/bmc.log. Fault files there: ignore_on, ignore_off, delay_s (N seconds), hang.
Users admin/secret (administrator) and oper/opsecret (operator), unless --users-file gives
LOGIN:PASSWORD[:PRIVILEGE] lines.")]
pub struct BmcSimArgs {
    /// UDP port (0 = pick a free one and print it).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1")]
    pub listen: std::net::IpAddr,
    /// Directory for power state, logs and fault files.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Cipher suites offered, in the order Get Channel Cipher Suites lists them (3 and/or 17);
    /// `--suites 3` is a BMC without suite 17.
    #[arg(long, default_value = "3,17")]
    pub suites: String,
    /// File of LOGIN:PASSWORD[:administrator|operator|user] lines (passwords never in argv).
    #[arg(long)]
    pub users_file: Option<PathBuf>,
    /// Start with the machine powered off (when STATE_DIR/power.0x20 does not exist yet).
    #[arg(long)]
    pub off: bool,
}

pub fn run_sim(a: BmcSimArgs, g: &Global) -> anyhow::Result<i32> {
    let mut cfg = BmcSimConfig::new(&a.state_dir);
    cfg.bind = std::net::SocketAddr::new(a.listen, a.port);
    cfg.initial_on = !a.off;
    cfg.suites = bmc_sim::parse_suites(&a.suites).context("--suites")?;
    if let Some(f) = &a.users_file {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading users file {}", f.display()))?;
        cfg.users = bmc_sim::parse_users(&text).with_context(|| format!("in {}", f.display()))?;
    }
    let suites: Vec<u8> = cfg.suites.iter().map(|s| s.id).collect();
    let sim = BmcSim::start(cfg)?;
    if g.json {
        crate::util::print_json(&serde_json::json!({
            "listening": sim.addr().to_string(), "port": sim.port(), "suites": suites, "state_dir": a.state_dir,
        }))?;
    } else {
        let list: Vec<String> = suites.iter().map(|s| s.to_string()).collect();
        println!(
            "bmc-sim: IPMI 2.0 (RMCP+) cipher suites {}; state in {}; listening on {}",
            list.join(", "),
            a.state_dir.display(),
            sim.addr()
        );
    }
    std::io::stdout().flush()?;
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
