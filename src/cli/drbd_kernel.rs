//! `twonode lab drbd-kernel`: the simulated DRBD kernel side (see `crate::lab::drbd_sim`).
use crate::lab::drbd_sim::{self, Flavour, InitSpec};
use anyhow::{Context, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  twonode lab drbd-kernel --state /tmp/sim init --flavour 9 --volumes 2
  twonode lab drbd-kernel --state /tmp/sim scenario split-brain --primary alice --primary bob
  /tmp/sim/alice/bin/drbdadm status r0       the real drbdadm, pretending to be alice
  twonode lab drbd-kernel --state /tmp/sim --node bob show proc")]
pub struct Args {
    /// Directory holding the simulated nodes' state (state.json, drbd.conf, NODE/bin wrappers).
    #[arg(long, env = "TWONODE_DRBD_SIM")]
    pub state: PathBuf,
    /// The node a command acts as (default: $__DRBD_NODE__, as drbdadm passes it on).
    #[arg(long)]
    pub node: Option<String>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Create two connected, in-sync nodes, a drbd.conf and per node bin/ wrappers.
    Init {
        #[arg(long, default_value = "9")]
        flavour: String,
        #[arg(long = "resource", default_value = "r0")]
        resources: Vec<String>,
        #[arg(long, default_value_t = 1)]
        volumes: u32,
        #[arg(long, default_value = "alice,bob", value_delimiter = ',')]
        nodes: Vec<String>,
        /// Volume size in KiB.
        #[arg(long, default_value_t = 1 << 20)]
        size_kib: u64,
        /// Resync speed in KiB/s.
        #[arg(long, default_value_t = 200_000)]
        resync_rate: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// The drbdsetup stand-in (what the wrappers call).
    #[command(disable_help_flag = true)]
    Drbdsetup {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The drbdmeta stand-in.
    #[command(disable_help_flag = true)]
    Drbdmeta {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Cut or restore the replication link of a resource.
    Link {
        resource: String,
        #[arg(value_parser = ["up", "down"])]
        state: String,
    },
    /// Application writes on --node (needs Primary); disconnected writes set bitmap bits.
    Write {
        resource: String,
        #[arg(long)]
        volume: Option<u32>,
        #[arg(long)]
        kib: u64,
    },
    /// Open (or mount) a device on --node, holding it open.
    Open {
        resource: String,
        #[arg(long, default_value_t = 0)]
        volume: u32,
        #[arg(long)]
        mount: Option<String>,
    },
    /// Close one opener of a device on --node.
    Close {
        resource: String,
        #[arg(long, default_value_t = 0)]
        volume: u32,
    },
    /// Force a volume's disk state on --node (e.g. Outdated after a failed resync, for rehearsals).
    Disk {
        resource: String,
        #[arg(long, default_value_t = 0)]
        volume: u32,
        #[arg(value_parser = ["UpToDate", "Outdated", "Inconsistent"])]
        state: String,
    },
    /// Ready-made situations.
    Scenario {
        #[arg(value_parser = ["split-brain", "unrelated", "disconnected"])]
        name: String,
        #[arg(long, default_value = "r0")]
        resource: String,
        /// Nodes that are Primary during the split (one or both).
        #[arg(long)]
        primary: Vec<String>,
        /// KiB written per node during the split, NODE=KIB.
        #[arg(long)]
        writes: Vec<String>,
        /// Nodes demoted to Secondary after the split (before the link comes back).
        #[arg(long)]
        demote: Vec<String>,
    },
    /// Print state in a real format as --node sees it: status, proc, events2, events2-stats, dmesg.
    Show {
        #[arg(value_parser = ["status", "proc", "events2", "events2-stats", "dmesg", "json"])]
        what: String,
        resource: Option<String>,
    },
}

fn node(a: &Args) -> Result<String> {
    a.node
        .clone()
        .or_else(|| std::env::var("__DRBD_NODE__").ok())
        .context("which node? pass --node NAME (or set __DRBD_NODE__)")
}

pub fn run(a: Args) -> Result<i32> {
    let now = drbd_sim::now_ms();
    let dir = a.state.clone();
    let e = |k: drbd_sim::KernelError| anyhow::anyhow!(k.message);
    match &a.cmd {
        Cmd::Init { flavour, resources, volumes, nodes, size_kib, resync_rate, seed } => {
            let [n1, n2] = nodes.as_slice() else { anyhow::bail!("--nodes needs exactly two names, e.g. alice,bob") };
            let spec = InitSpec {
                flavour: Flavour::parse(flavour)?,
                resources: resources.clone(),
                volumes: (*volumes).max(1),
                nodes: [n1.clone(), n2.clone()],
                size_kib: *size_kib,
                resync_kib_per_sec: *resync_rate,
                seed: *seed,
            };
            let exe = std::env::current_exe().context("locating the twonode binary")?;
            drbd_sim::init(&dir, &spec, &exe)?;
            println!("simulated DRBD {} lab in {}: nodes {n1}, {n2}; drbdadm wrappers in {}/<node>/bin", flavour, dir.display(), dir.display());
            Ok(0)
        }
        Cmd::Drbdsetup { args } | Cmd::Drbdmeta { args } => {
            let n = node(&a)?;
            let env_res = std::env::var("DRBD_RESOURCE").ok();
            let meta = matches!(a.cmd, Cmd::Drbdmeta { .. });
            let out = drbd_sim::with_world(&dir, |w| {
                if meta {
                    drbd_sim::drbdmeta(w, &n, args, now)
                } else {
                    w.drbdsetup(&n, args, env_res.as_deref(), now)
                }
            })?;
            match out {
                Ok(s) => {
                    print!("{s}");
                    Ok(0)
                }
                Err(k) => {
                    eprintln!("{}", k.message);
                    Ok(k.code)
                }
            }
        }
        Cmd::Link { resource, state } => {
            drbd_sim::with_world(&dir, |w| w.set_link(resource, state == "up", now))??;
            Ok(0)
        }
        Cmd::Write { resource, volume, kib } => {
            let n = node(&a)?;
            drbd_sim::with_world(&dir, |w| w.write(&n, resource, *volume, *kib, now))??;
            Ok(0)
        }
        Cmd::Open { resource, volume, mount } => {
            let n = node(&a)?;
            drbd_sim::with_world(&dir, |w| w.set_open(&n, resource, *volume, true, mount.clone()))??;
            Ok(0)
        }
        Cmd::Disk { resource, volume, state } => {
            let n = node(&a)?;
            let d = match state.as_str() {
                "Outdated" => drbd_sim::Disk::Outdated,
                "Inconsistent" => drbd_sim::Disk::Inconsistent,
                _ => drbd_sim::Disk::UpToDate,
            };
            drbd_sim::with_world(&dir, |w| -> Result<()> {
                let v = w
                    .resources
                    .get_mut(resource)
                    .and_then(|r| r.nodes.get_mut(&n))
                    .and_then(|x| x.volumes.get_mut(*volume as usize))
                    .with_context(|| format!("{resource}/{volume}: no such volume on {n}"))?;
                v.disk = d;
                Ok(())
            })??;
            Ok(0)
        }
        Cmd::Close { resource, volume } => {
            let n = node(&a)?;
            drbd_sim::with_world(&dir, |w| w.set_open(&n, resource, *volume, false, None))??;
            Ok(0)
        }
        Cmd::Scenario { name, resource, primary, writes, demote } => {
            let r = resource.as_str();
            drbd_sim::with_world(&dir, |w| -> Result<()> {
                let names: Vec<String> = w.resources.get(r).with_context(|| format!("no resource {r}"))?.nodes.keys().cloned().collect();
                let sv = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
                match name.as_str() {
                    "unrelated" => {
                        w.set_link(r, false, now)?;
                        w.make_unrelated(&names[1], r)?;
                        w.set_link(r, true, now)?;
                    }
                    _ => {
                        // the first primary is promoted while connected, the others during the split
                        let mut prim = primary.clone();
                        if prim.is_empty() {
                            prim.push(names[0].clone());
                        }
                        w.drbdsetup(&prim[0], &sv(&["primary", r]), None, now).map_err(e)?;
                        w.set_link(r, false, now)?;
                        for p in &prim[1..] {
                            w.drbdsetup(p, &sv(&["primary", r]), None, now).map_err(e)?;
                        }
                        for spec in writes {
                            let (n, k) = spec.split_once('=').with_context(|| format!("--writes {spec}: NODE=KIB"))?;
                            let k: u64 = k.parse().with_context(|| format!("--writes {spec}: KIB is a number"))?;
                            w.write(n, r, None, k, now)?;
                        }
                        for d in demote {
                            w.drbdsetup(d, &sv(&["secondary", r]), None, now).map_err(e)?;
                        }
                        if name == "split-brain" {
                            w.set_link(r, true, now)?;
                        }
                    }
                }
                Ok(())
            })??;
            Ok(0)
        }
        Cmd::Show { what, resource } => {
            let n = node(&a)?;
            let out = drbd_sim::with_world(&dir, |w| {
                w.tick(now);
                match what.as_str() {
                    "status" => w.render_status(&n, resource.as_deref(), now),
                    "proc" => w.render_proc_drbd(&n, now),
                    "events2" => w.render_events2(&n, resource.as_deref(), false, now),
                    "events2-stats" => w.render_events2(&n, resource.as_deref(), true, now),
                    "dmesg" => w
                        .resources
                        .values()
                        .filter_map(|r| r.nodes.get(&n))
                        .flat_map(|x| x.log.iter().map(|l| format!("{l}\n")))
                        .collect(),
                    _ => serde_json::to_string_pretty(&*w).unwrap_or_default() + "\n",
                }
            })?;
            print!("{out}");
            Ok(0)
        }
    }
}
