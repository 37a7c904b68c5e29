//! `twonode lab ilo-sim` (the RIBCL iLO simulator) and `twonode lab power` (drive one power
//! device once, for rehearsals and benchmarks).
use crate::cli::Global;
use crate::fence::power::{PowerDevice, PowerError, PowerState};
use crate::lab::ilo_sim::{self, IloSim, IloSimConfig, Profile};
use crate::util::Failure;
use anyhow::Context;
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
#[command(after_help = "Example:
  twonode lab ilo-sim --profile ilo2 --port 0 --state-dir /tmp/ilo1
The line `listening on 127.0.0.1:PORT` is printed once the port is open. Power state is kept in
STATE_DIR/power; fault files there: ignore_on, ignore_off, delay_s, wrong_fw, hang, drop.
Default user admin / password secret unless --users-file gives LOGIN:PASSWORD lines.")]
pub struct IloSimArgs {
    /// TCP port (0 = pick a free one and print it).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1")]
    pub listen: std::net::IpAddr,
    /// Directory for power state, log, certificate and fault files.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Firmware profile.
    #[arg(long, value_enum, default_value = "ilo2")]
    pub profile: Profile,
    /// File of LOGIN:PASSWORD lines (passwords never on the command line).
    #[arg(long)]
    pub users_file: Option<PathBuf>,
    /// A user (from --users-file) without the power-control privilege.
    #[arg(long)]
    pub readonly_user: Vec<String>,
    /// Override the FIRMWARE_VERSION the profile reports.
    #[arg(long)]
    pub firmware: Option<String>,
    /// Override the RIBCL version the profile reports.
    #[arg(long)]
    pub ribcl: Option<String>,
    /// Override MANAGEMENT_PROCESSOR.
    #[arg(long)]
    pub processor: Option<String>,
    /// Refuse the raw stream (HTTP POST /ribcl only).
    #[arg(long)]
    pub http_only: bool,
    /// Start with the machine powered off (when STATE_DIR/power does not exist yet).
    #[arg(long)]
    pub off: bool,
}

pub fn run_sim(a: IloSimArgs, g: &Global) -> anyhow::Result<i32> {
    let mut cfg = IloSimConfig::new(a.profile, &a.state_dir);
    cfg.bind = std::net::SocketAddr::new(a.listen, a.port);
    cfg.initial_on = !a.off;
    if let Some(f) = &a.users_file {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading users file {}", f.display()))?;
        cfg.users = ilo_sim::parse_users(&text, &a.readonly_user).with_context(|| format!("in {}", f.display()))?;
    } else if !a.readonly_user.is_empty() {
        anyhow::bail!("--readonly-user needs --users-file");
    }
    if let Some(v) = a.firmware {
        cfg.spec.firmware = v;
    }
    if let Some(v) = a.ribcl {
        cfg.spec.ribcl = v;
    }
    if let Some(v) = a.processor {
        cfg.spec.processor = v;
    }
    if a.http_only {
        anyhow::ensure!(cfg.spec.http, "--http-only: profile {:?} has no HTTP transport", a.profile);
        cfg.spec.raw = false;
    }
    let spec = cfg.spec.clone();
    let sim = IloSim::start(cfg)?;
    if g.json {
        crate::util::print_json(&serde_json::json!({
            "listening": sim.addr().to_string(), "port": sim.port(), "spec": spec,
            "state_dir": a.state_dir, "cert": a.state_dir.join("cert.pem"),
        }))?;
    } else {
        println!(
            "ilo-sim: {} firmware {} RIBCL {}{}; state in {}; listening on {}",
            spec.processor,
            spec.firmware,
            spec.ribcl,
            if spec.http { " (raw + HTTP)" } else { " (raw)" },
            a.state_dir.display(),
            sim.addr()
        );
    }
    std::io::stdout().flush()?;
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Driver {
    /// HP iLO over RIBCL (fence_ilo's protocol).
    Ribcl,
    /// Redfish (fence_redfish's protocol).
    Redfish,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    Status,
    On,
    Off,
    Reboot,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "Parameters come as fence-agent key=value lines on stdin (ipaddr, ipport, login,
passwd or passwd_script, ssl_insecure, ssl_ca, ...), so no password is ever in argv:
  printf 'ipaddr=127.0.0.1\\nipport=4443\\nlogin=admin\\npasswd=secret\\nssl_insecure=1\\n' |
      twonode lab power --driver ribcl --action status
Exit codes: status 0 on / 2 off; 3 auth, 4 unreachable, 5 timeout, 6 protocol, 7 state not reached.")]
pub struct PowerArgs {
    #[arg(long, value_enum)]
    pub driver: Driver,
    #[arg(long, value_enum, default_value = "status")]
    pub action: Action,
    /// Seconds to wait after a power change before polling (fence-agents power_wait).
    #[arg(long, default_value_t = 0.0)]
    pub power_wait: f64,
    /// Seconds to wait for the new state (fence-agents power_timeout).
    #[arg(long, default_value_t = 20.0)]
    pub power_timeout: f64,
    /// Non-secret parameter KEY=VALUE (repeatable); passwords are refused here.
    #[arg(long = "param", short = 'P')]
    pub params: Vec<String>,
}

/// Parse fence-agent stdin: key=value lines, `#` comments, surrounding quotes stripped.
pub fn parse_kv(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
                .unwrap_or(v);
            m.insert(k.trim().replace('-', "_"), v.to_string());
        }
    }
    m
}

fn fail(e: PowerError) -> anyhow::Error {
    anyhow::Error::new(Failure::new(e.exit_code(), e.to_string()))
}

fn wait_for(dev: &mut dyn PowerDevice, want: PowerState, timeout: Duration) -> Result<(), PowerError> {
    let start = Instant::now();
    loop {
        if dev.status()? == want {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(PowerError::StateNotReached(format!(
                "{}: still not {want:?} after {:.0} s (power_timeout)",
                dev.describe(),
                timeout.as_secs_f64()
            )));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

pub fn run_power(a: PowerArgs, g: &Global) -> anyhow::Result<i32> {
    let mut text = String::new();
    if !std::io::stdin().is_terminal() {
        for line in std::io::stdin().lock().lines() {
            text.push_str(&line.context("reading key=value parameters from stdin")?);
            text.push('\n');
        }
    }
    let mut params = parse_kv(&text);
    for p in &a.params {
        let (k, v) = p.split_once('=').with_context(|| format!("--param {p:?}: expected KEY=VALUE"))?;
        let key = k.trim().replace('-', "_");
        anyhow::ensure!(
            !matches!(key.as_str(), "passwd" | "password"),
            "--param {key}: passwords go on stdin (key=value), never in argv"
        );
        params.insert(key, v.to_string());
    }
    let mut dev: Box<dyn PowerDevice> = match a.driver {
        Driver::Ribcl => Box::new(crate::fence::ribcl::RibclDevice::from_params(&params).map_err(fail)?),
        Driver::Redfish => Box::new(crate::fence::redfish::RedfishDevice::from_params(&params).map_err(fail)?),
    };
    let timeout = Duration::from_secs_f64(a.power_timeout.clamp(0.0, 3600.0));
    let pause = Duration::from_secs_f64(a.power_wait.clamp(0.0, 3600.0));
    let started = Instant::now();
    let result: Result<(PowerState, &str), PowerError> = (|| {
        let dev = dev.as_mut();
        match a.action {
            Action::Status => Ok((dev.status()?, "status")),
            Action::On => {
                if dev.status()? == PowerState::On {
                    return Ok((PowerState::On, "already on"));
                }
                dev.power_on()?;
                std::thread::sleep(pause);
                wait_for(dev, PowerState::On, timeout)?;
                Ok((PowerState::On, "powered on"))
            }
            Action::Off => {
                if dev.status()? == PowerState::Off {
                    return Ok((PowerState::Off, "already off"));
                }
                dev.power_off()?;
                std::thread::sleep(pause);
                wait_for(dev, PowerState::Off, timeout)?;
                Ok((PowerState::Off, "powered off"))
            }
            Action::Reboot => {
                if dev.status()? != PowerState::Off {
                    dev.power_off()?;
                    std::thread::sleep(pause);
                    wait_for(dev, PowerState::Off, timeout)?;
                }
                dev.power_on().map_err(|e| {
                    PowerError::StateNotReached(format!("fenced (off confirmed), power-on FAILED: {e}"))
                })?;
                std::thread::sleep(pause);
                wait_for(dev, PowerState::On, timeout).map_err(|e| {
                    PowerError::StateNotReached(format!("fenced (off confirmed), power-on FAILED: {e}"))
                })?;
                Ok((PowerState::On, "rebooted (off and on confirmed)"))
            }
        }
    })();
    let elapsed = started.elapsed().as_secs_f64();
    match result {
        Ok((state, what)) => {
            if g.json {
                crate::util::print_json(&serde_json::json!({
                    "device": dev.describe(), "action": format!("{:?}", a.action).to_lowercase(),
                    "result": what, "state": state, "elapsed_s": elapsed,
                }))?;
            } else if a.action == Action::Status {
                println!("Status: {}", if state == PowerState::On { "ON" } else { "OFF" });
            } else {
                println!("Success: {what} ({elapsed:.2} s) — {}", dev.describe());
            }
            Ok(if a.action == Action::Status && state == PowerState::Off { 2 } else { 0 })
        }
        Err(e) => Err(fail(e)),
    }
}
