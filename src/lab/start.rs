//! `twonode lab start [--dir DIR]`: the whole lab (both BMCs, the arbiter, two DRBD nodes over
//! SSH, a ready cluster.conf), up until Ctrl-C, with what runs where and commands to try.
use super::rig::{Lab, LabOptions};
use anyhow::Context;
use std::path::PathBuf;

/// What runs where, and commands to try (pure text from the running lab).
pub fn describe(lab: &Lab) -> String {
    let d = lab.dir.display();
    let mut s = format!("twonode lab: a simulated two-node cluster in {d}\n\n");
    s.push_str(&format!("  cluster.conf   {d}/cluster.conf  (cluster \"lab\", node1 + node2, two_node=1)\n"));
    s.push_str(&format!(
        "  node1 BMC      IPMI 2.0, RMCP+ cipher suite 17 only (twonode's simulator)  127.0.0.1:{}/udp  login admin, password secret\n",
        lab.ipmi_port
    ));
    s.push_str(&format!("  node2 BMC      HP iLO 2, RIBCL over TLS (twonode's simulator)  127.0.0.1:{}  login admin, password secret\n", lab.ilo_port));
    if lab.pdu_running() {
        s.push_str(&format!(
            "  PDU            APC AP7900 switched PDU over SNMP (snmpsim)  127.0.0.1:{}/udp  community {}; node2's power supplies on outlets 3, 4 (node2-psu1, node2-psu2)\n",
            lab.pdu_port,
            super::pdu_sim::COMMUNITY
        ));
    }
    if let Some(a) = &lab.arbiter {
        s.push_str(&format!(
            "  arbiter        twonode arbiter serve  127.0.0.1:{}  (TLS; CA and node certificate in {})\n",
            a.port,
            a.dir.display()
        ));
    }
    if let Some(dn) = &lab.drbd {
        for n in &dn.nodes {
            match n.port {
                Some(p) => s.push_str(&format!("  DRBD {:<9} sshd 127.0.0.1:{p}, login {} with {}\n", n.name, dn.user, dn.identity.display())),
                None => s.push_str(&format!("  DRBD {:<9} local (no sshd): {}/{}/bin\n", n.name, dn.state.display(), n.name)),
            }
        }
        s.push_str(&format!(
            "                 resource r0: the real drbdadm over twonode's simulated DRBD kernel ({}), both UpToDate\n",
            dn.state.display()
        ));
    }
    for n in &lab.notes {
        s.push_str(&format!("  note: {n}\n"));
    }
    s.push_str("\nIn another shell:\n");
    for (k, v) in lab.env() {
        s.push_str(&format!("  export {k}={v}\n"));
    }
    let f = format!("--file {d}/cluster.conf");
    s.push_str(&format!("  twonode fence test {f}\n"));
    s.push_str(&format!("  twonode fence node2 --action status {f}\n"));
    s.push_str(&format!("  twonode fence node2 --action reboot --yes {f}\n"));
    s.push_str(&format!("  twonode conf show {f}\n"));
    if lab.pdu_running() {
        s.push_str(&format!(
            "  echo {} | twonode conf device add pdu1 --agent fence_apc_snmp ipaddr=127.0.0.1 ipport={} --secret-stdin community {f}   (then: twonode conf bind node2 pdu1 port=node2-psu1 --method pdu; again with port=node2-psu2 --append)\n",
            super::pdu_sim::COMMUNITY,
            lab.pdu_port
        ));
    }
    if let Some(dn) = &lab.drbd {
        let nodes = dn.node_args().join(" ");
        s.push_str(&format!("  twonode drbd status r0 {nodes}\n"));
        s.push_str(&format!(
            "  twonode lab drbd-kernel --state {} scenario split-brain --primary node1 --primary node2 --writes node1=4000 --writes node2=40   (break it)\n",
            dn.state.display()
        ));
        s.push_str(&format!("  twonode drbd recover r0 --discard node2 --dry-run {nodes}\n"));
        let arb = lab.arbiter.as_ref().map(|a| format!(" --arbiter {}", a.status_socket.display())).unwrap_or_default();
        s.push_str(&format!("  twonode doctor {f}{arb} {nodes}\n"));
    }
    if let Some(a) = &lab.arbiter {
        s.push_str(&format!("  twonode arbiter status --socket {}\n", a.status_socket.display()));
    }
    s.push_str("\nRehearsals with a story and a golden log: twonode lab scenario --list\nCtrl-C stops the lab.\n");
    s
}

pub fn run(dir: Option<PathBuf>, json: bool) -> anyhow::Result<i32> {
    let tmp;
    let dir = match dir {
        Some(d) => d,
        None => {
            tmp = super::rig::temp_dir()?;
            tmp.path().to_path_buf()
        }
    };
    super::rig::fresh_dir(&dir)?;
    let mut lab = Lab::start(dir, LabOptions::full())?;
    if let Err(e) = lab.start_pdu() {
        lab.notes.push(format!("the switched PDU is not running: {e:#}"));
    }
    if json {
        let v = serde_json::json!({
            "dir": lab.dir,
            "cluster_conf": lab.dir.join("cluster.conf"),
            "ipmi_port": lab.ipmi_port,
            "ilo_port": lab.ilo_port,
            "pdu_port": lab.pdu_running().then_some(lab.pdu_port),
            "arbiter_port": lab.arbiter.as_ref().map(|a| a.port),
            "arbiter_status_socket": lab.arbiter.as_ref().map(|a| a.status_socket.clone()),
            "drbd_nodes": lab.drbd.as_ref().map(|d| d.node_args()),
            "env": lab.env().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
            "notes": lab.notes,
        });
        println!("{}", serde_json::to_string(&v)?);
    } else {
        print!("{}", describe(&lab));
    }
    use std::io::Write;
    std::io::stdout().flush().ok();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
        let mut hup = signal(SignalKind::hangup()).context("installing a SIGHUP handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C"),
            _ = term.recv() => Ok(()),
            _ = hup.recv() => Ok(()),
        }
    })?;
    if !json {
        println!("\nstopping the lab");
    }
    drop(lab);
    Ok(0)
}
