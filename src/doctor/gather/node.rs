//! One node read through [`Host`]: its name, cluster.conf (or corosync.conf, told apart by
//! content), the quorum device's state on a corosync cluster with `quorum.device` model net,
//! `drbdadm dump` and each resource's state, and the Proxmox guest configs.
use super::GatherOptions;
use crate::doctor::facts::qdevice::{self, NodeQdevice};
use crate::doctor::facts::{GuestConf, NodeFacts};

use crate::host::Host;
use crate::quorum::corosync_conf::CorosyncConf;
use std::path::Path;

/// Everything doctor reads on one node; `unreachable` set (and nothing else) when even `uname
/// -n` fails.
pub fn gather_node(h: &mut dyn Host, o: &GatherOptions) -> NodeFacts {
    let name = h.name().to_string();
    let conf_path = o.conf_overrides.get(&name).cloned().unwrap_or_else(|| o.conf_path.clone());
    let mut nf = NodeFacts { name: name.clone(), conf_path: conf_path.display().to_string(), ..Default::default() };
    match h.run(&["uname", "-n"], None) {
        Ok(out) => nf.hostname = Some(out.stdout_str().trim().to_string()),
        Err(e) => {
            nf.unreachable = Some(format!("{e:#}"));
            return nf;
        }
    }
    read_config(h, o, &conf_path, &mut nf);
    read_drbd(h, &mut nf);
    read_guests(h, o, &mut nf);
    nf
}

/// cluster.conf at `conf_path`; without one, corosync.conf (and the quorum device's state when
/// it has one, model net).
fn read_config(h: &mut dyn Host, o: &GatherOptions, conf_path: &Path, nf: &mut NodeFacts) {
    match h.read_file(conf_path) {
        // --file / --node-file may name a corosync.conf: told apart by content, like `quorum status`
        Ok(b) if !String::from_utf8_lossy(&b).trim_start().starts_with('<')
            && CorosyncConf::parse(&String::from_utf8_lossy(&b)).is_ok_and(|c| c.section("totem").is_some() || c.section("quorum").is_some()) =>
        {
            nf.corosync_path = Some(conf_path.display().to_string());
            nf.corosync_conf = Some(String::from_utf8_lossy(&b).into_owned());
            nf.conf_error = Some(format!("{} is a corosync.conf", conf_path.display()));
        }
        Ok(b) => nf.conf = Some(b),
        Err(e) => nf.conf_error = Some(format!("{e:#}")),
    }
    if nf.conf.is_none() {
        for p in o.corosync_paths.iter().filter(|_| nf.corosync_conf.is_none()) {
            if let Ok(b) = h.read_file(p) {
                nf.corosync_path = Some(p.display().to_string());
                nf.corosync_conf = Some(String::from_utf8_lossy(&b).into_owned());
                break;
            }
        }
        let net = nf
            .corosync_conf
            .as_deref()
            .and_then(|t| CorosyncConf::parse(t).ok())
            .is_some_and(|c| c.get("quorum.device", "model") == Some("net"));
        if net {
            nf.qdevice = Some(gather_qdevice(h));
        }
    }
}

/// `drbdadm dump` and the state of each resource it names.
fn read_drbd(h: &mut dyn Host, nf: &mut NodeFacts) {
    match h.run(&["drbdadm", "dump"], None) {
        Ok(out) if out.success() => match crate::drbd::parse::parse_auto(&out.stdout_str()) {
            Ok(st) => nf.drbd_configs = Some(st.configs),
            Err(e) => nf.drbd_error = Some(format!("cannot parse `drbdadm dump`: {e}")),
        },
        Ok(out) => {
            let err = out.stderr_str();
            // No DRBD at all on the node: nothing configured.
            if err.contains("no resources defined") || err.contains("No such file") {
                nf.drbd_configs = Some(vec![]);
            } else {
                nf.drbd_error = Some(format!("exit {}: {}", out.status, err.trim()));
            }
        }
        Err(e) => nf.drbd_error = Some(format!("{e:#}")),
    }
    for r in nf.drbd_configs.clone().unwrap_or_default() {
        match crate::drbd::run::read_view(h, &r.name) {
            Ok(v) => {
                nf.drbd_views.insert(r.name.clone(), v);
            }
            Err(e) => nf.drbd_error = Some(format!("reading the state of {}: {e:#}", r.name)),
        }
    }
}

/// The Proxmox guest configs under `PVE_DIR/nodes/*/{qemu-server,lxc}/` (every node's: /etc/pve
/// is shared).
fn read_guests(h: &mut dyn Host, o: &GatherOptions, nf: &mut NodeFacts) {
    let dir = crate::host::shell_quote(&o.pve_dir.to_string_lossy());
    let script = format!(
        "for f in {dir}/nodes/*/qemu-server/*.conf {dir}/nodes/*/lxc/*.conf; do [ -f \"$f\" ] && {{ echo \"### $f\"; cat \"$f\"; }}; done; true"
    );
    if let Ok(out) = h.run(&["sh", "-c", &script], None) {
        let text = out.stdout_str();
        let mut cur: Option<GuestConf> = None;
        for line in text.lines() {
            if let Some(p) = line.strip_prefix("### ") {
                nf.guests.extend(cur.take());
                cur = Some(GuestConf { path: p.to_string(), text: String::new() });
            } else if let Some(g) = cur.as_mut() {
                g.text.push_str(line);
                g.text.push('\n');
            }
        }
        nf.guests.extend(cur);
    }
}

/// Run a tool on a node with a time limit; Ok(stdout) when it printed something parseable.
fn run_tool(h: &mut dyn Host, argv: &[&str]) -> Result<(i32, String, String), String> {
    let mut full = vec!["timeout", "15"];
    full.extend_from_slice(argv);
    match h.run(&full, None) {
        Ok(o) if o.status == 127 => Err(format!("`{}` is not installed on the node", argv[0])),
        Ok(o) if o.status == 124 => Err(format!("`{}` did not answer within 15 s", argv.join(" "))),
        Ok(o) => Ok((o.status, o.stdout_str(), o.stderr_str())),
        Err(e) => Err(format!("{e:#}")),
    }
}

/// The node's quorum device state: `corosync-quorumtool -s` and `corosync-qdevice-tool -sv`.
pub fn gather_qdevice(h: &mut dyn Host) -> NodeQdevice {
    let mut q = NodeQdevice { node: h.name().to_string(), ..Default::default() };
    match run_tool(h, &["corosync-quorumtool", "-s"]) {
        // 0 quorate, 2 not quorate: both are answers
        Ok((code, out, err)) => match qdevice::parse_quorumtool(&out) {
            Ok(p) => q.quorumtool = Some(p),
            Err(e) => q.quorumtool_error = Some(format!("exit {code}: {} ({e})", first_line(&err, &out))),
        },
        Err(e) => q.quorumtool_error = Some(e),
    }
    match run_tool(h, &["corosync-qdevice-tool", "-s", "-v"]) {
        Ok((code, out, err)) => match qdevice::parse_qdevice_tool(&out) {
            Ok(p) => q.qdevice_tool = Some(p),
            Err(_) => q.qdevice_tool_error = Some(format!("exit {code}: {}", first_line(&err, &out))),
        },
        Err(e) => q.qdevice_tool_error = Some(e),
    }
    q
}

fn first_line(a: &str, b: &str) -> String {
    a.lines().chain(b.lines()).map(str::trim).find(|l| !l.is_empty()).unwrap_or("no output").to_string()
}
