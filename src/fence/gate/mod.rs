//! The arbiter gate for cman `two_node` clusters: before a node fences its peer, it asks the
//! arbiter (`twonode arbiter serve`, qnetd protocol) for the cluster's vote. Only the partition
//! holding the vote fences; the other never does. See docs in README ("Arbiter-gated fencing").
//!
//! In cluster.conf the gate is the FIRST device of every method (fenced abandons a method at its
//! first failing device), a `<fencedevice agent="fence_twonode_arbiter">` run as
//! `twonode fence gate` (or through a link named `fence_twonode_arbiter`).
//!
//! Layers:
//! * pure: [`GateSettings::from_params`] (device parameters → settings), [`ClusterIdentity`]
//!   (cluster.conf → cluster name + node ids), [`plan`] (who asks for what), [`decide`]
//!   (the arbiter's answer or failure → exit code and message). Never exit 0 without an ACK.
//! * I/O: [`ask`] (the qnetd client, `quorum::arbiter::client`), [`run_agent`] (fence-agent
//!   mode: stdin key=value or getopt), [`RealGatekeeper`] (twonode's own engine: asks, then
//!   keeps the connection while the method's real devices run).
//!
//! The hold: after an ACK the arbiter keeps the vote with this node for at least 2 × the
//! heartbeat interval the gate announced, counted from the gate's last message (its lease rule:
//! `(2·hb + E)·(1+ρ) + margin` after the last message, or `2·hb·(1+ρ) + margin` when it saw the
//! gate close the connection). The gate announces `hb = hold / 2` with `hold` = the device's
//! `power_timeout` (seconds, default 120; the arbiter accepts hb 1..120 s, so the hold is
//! 2..240 s). The peer's gate asking during the hold gets NACK (or no decision): it never fences.
//!
//! Attribute names: only names the stock cluster.rng accepts together. Its fencedevice
//! attributes are per-agent alternatives, and the only one holding `tlscacert`/`tlscert`/`tlskey`
//! (fence_docker's) has `ipaddr`, `ipport`, `login_timeout`, `power_timeout` but no `timeout`:
//! so the decision timeout is `login_timeout` (`timeout=` is still read, for hand-written files).
//!
//! Files: `settings.rs` (device parameters, cluster identity), `layout.rs` (where the gate is
//! in the fence methods: computed once, used by validate, doctor, `fence test`, `quorum status`),
//! `decide.rs` (plan + decide), `keeper.rs` (the engine's gatekeeper), `probe.rs` (probes),
//! `agent.rs` (fence-agent mode).
mod agent;
pub mod conf;
mod decide;
mod keeper;
mod layout;
mod probe;
mod rules;
mod settings;

pub use agent::*;
pub use conf::GateSpec;
pub use decide::*;
pub use keeper::*;
pub use layout::*;
pub use probe::*;
pub use rules::RULES;
pub use settings::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fence::engine::Action;
    use crate::fence::power::PowerError;
    use crate::fence::spec::{DeviceSpec, FenceTarget};
    use crate::quorum::arbiter::client::{ClientError, VoteOutcome, VoteResult};
    use crate::quorum::arbiter::wire;
    use std::collections::BTreeMap;
    use std::path::Path;

    fn params(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const CONF: &str = r#"<?xml version="1.0"?>
<cluster name="gclu" config_version="7">
  <cman two_node="1" expected_votes="1"/>
  <clusternodes>
    <clusternode name="node1.example.com" nodeid="1"/>
    <clusternode name="node2.example.com" nodeid="2"/>
  </clusternodes>
</cluster>"#;

    #[test]
    fn settings_from_params_and_hold_formula() {
        let s = GateSettings::from_params(&params(&[("ipaddr", "10.0.0.9")])).unwrap();
        assert_eq!((s.port, s.heartbeat_ms, s.timeout.as_secs()), (5403, 60_000, 30));
        assert!(s.tls.is_none());
        let s = GateSettings::from_params(&params(&[("ip", "a"), ("power_timeout", "10"), ("timeout", "3")])).unwrap();
        assert_eq!(s.heartbeat_ms, 5000);
        assert!(GateSettings::from_params(&params(&[("ipaddr", "a"), ("power_timeout", "1000")])).is_err());
        assert!(GateSettings::from_params(&params(&[("ipaddr", "a"), ("tlscert", "/x")])).is_err());
        assert!(GateSettings::from_params(&params(&[])).unwrap_err().contains("ipaddr"));
    }

    #[test]
    fn plan_resolves_ids_and_refuses_self() {
        let id = ClusterIdentity::from_conf(CONF.as_bytes(), "c.conf").unwrap();
        let s = GateSettings::from_params(&params(&[("ipaddr", "127.0.0.1")])).unwrap();
        let p = plan(&s, &id, "node2", "node1.example.com", 42).unwrap();
        assert_eq!(p.client.node_id, 2);
        assert_eq!(p.client.cluster, "gclu");
        assert_eq!(p.request.members, vec![2]);
        assert_eq!(p.request.config_nodes, vec![1, 2]);
        assert_eq!(p.request.ring, wire::RingId { node_id: 2, seq: 42 });
        assert_eq!(p.local, "node2.example.com");
        assert!(plan(&s, &id, "node1", "node1", 1).unwrap_err().contains("fence itself"));
        assert!(plan(&s, &id, "nodeX", "node1", 1).unwrap_err().contains("not a clusternode"));
    }

    #[test]
    fn only_an_ack_opens_the_gate() {
        let id = ClusterIdentity::from_conf(CONF.as_bytes(), "c.conf").unwrap();
        let s = GateSettings::from_params(&params(&[("ipaddr", "127.0.0.1")])).unwrap();
        let p = plan(&s, &id, "node1", "node2", 1).unwrap();
        let res = |o| VoteResult { outcome: o, address: "x".into(), ring: p.request.ring, tls: true, elapsed_ms: 3.0, heartbeat_ms: 60_000 };
        let d = decide(&p, &Ok(res(VoteOutcome::Ack)));
        assert!(d.allowed && d.exit_code == 0);
        assert_eq!(d.message, "arbiter 127.0.0.1:5403 gave node1.example.com the vote: node1.example.com may fence node2.example.com");
        let d = decide(&p, &Ok(res(VoteOutcome::Nack)));
        assert!(!d.allowed && d.exit_code == 1 && d.message.contains("NACK") && d.expect.contains("to be fenced"));
        let d = decide(&p, &Ok(res(VoteOutcome::NoDecision)));
        assert!(!d.allowed && d.exit_code == 1 && d.message.contains("no vote within 30 s"));
        for e in [
            ClientError::Unreachable("refused".into()),
            ClientError::Tls("x".into()),
            ClientError::Refused("x".into()),
            ClientError::Timeout("x".into()),
            ClientError::Protocol("x".into()),
            ClientError::Config("x".into()),
        ] {
            let d = decide(&p, &Err(e));
            assert!(!d.allowed && d.exit_code == 1, "{d:?}");
            assert!(d.message.contains("no vote, no fencing") && d.expect.contains("fix the arbiter"), "{d:?}");
        }
    }

    /// The engine with a simulated gatekeeper and simulated devices: NACK touches no device; an
    /// ACK's hold lives exactly as long as the method's devices run.
    #[test]
    fn engine_asks_first_and_holds_through_the_method() {
        use crate::fence::engine::{Engine, Gatekeeper, NoObserver, RunOptions, Verdict};
        use crate::fence::power::PowerState;
        use crate::fence::sim::{SimClock, SimOpener};
        use crate::fence::spec::Method;
        use std::cell::RefCell;
        use std::rc::Rc;
        struct Hold(Rc<RefCell<Vec<String>>>);
        impl Drop for Hold {
            fn drop(&mut self) {
                self.0.borrow_mut().push("released".into());
            }
        }
        struct Fake {
            ack: bool,
            log: Rc<RefCell<Vec<String>>>,
        }
        impl Gatekeeper for Fake {
            fn acquire(&mut self, _g: &DeviceSpec, t: &FenceTarget, a: Action) -> Result<Box<dyn std::any::Any>, PowerError> {
                self.log.borrow_mut().push(format!("ask {} {}", t.node, a.as_str()));
                if self.ack {
                    Ok(Box::new(Hold(self.log.clone())))
                } else {
                    Err(PowerError::Config("arbiter refused the vote (NACK)".into()))
                }
            }
        }
        let gate = DeviceSpec::new("twonode-arbiter", vec![("agent".to_string(), AGENT.to_string()), ("ipaddr".into(), "127.0.0.1".into())]);
        let bmc = DeviceSpec::new("bmc", vec![("agent".to_string(), "fence_sim".to_string())]);
        let target = FenceTarget { node: "node2".into(), nodeid: None, methods: vec![Method { name: "ipmi".into(), devices: vec![gate.clone(), bmc.clone()] }] };
        for ack in [false, true] {
            let clock = SimClock::new();
            let mut op = SimOpener::new(clock.clone());
            let dev = op.add("bmc", PowerState::On);
            let log = Rc::new(RefCell::new(Vec::new()));
            let mut k = Fake { ack, log: log.clone() };
            let mut obs = NoObserver;
            let r = Engine::new(&clock, &mut op, &mut obs).with_gatekeeper(&mut k).run(&target, Action::Off, &RunOptions::default());
            if ack {
                assert!(matches!(r.verdict, Verdict::Done), "{r:?}");
                assert_eq!(dev.borrow().power, PowerState::Off);
                assert_eq!(log.borrow().as_slice(), ["ask node2 off", "released"]);
                assert_eq!(r.steps[0].op, "gate");
            } else {
                assert_eq!(r.exit_code(), 1, "{r:?}");
                assert!(r.message.contains("NACK"), "{}", r.message);
                assert!(dev.borrow().log.is_empty(), "no device touched: {:?}", dev.borrow().log);
                assert_eq!(dev.borrow().power, PowerState::On);
            }
            // status never asks
            let r = Engine::new(&clock, &mut op, &mut obs).with_gatekeeper(&mut k).run(&target, Action::Status, &RunOptions::default());
            assert!(matches!(r.verdict, Verdict::StatusOn | Verdict::StatusOff), "{r:?}");
            assert_eq!(log.borrow().iter().filter(|l| l.starts_with("ask")).count(), 1);
        }
        // without a gatekeeper a gated method never runs; a gate not first is refused
        let clock = SimClock::new();
        let mut op = SimOpener::new(clock.clone());
        let dev = op.add("bmc", PowerState::On);
        let mut obs = NoObserver;
        let r = Engine::new(&clock, &mut op, &mut obs).run(&target, Action::Reboot, &RunOptions::default());
        assert_eq!(r.exit_code(), 1);
        let wrong = FenceTarget { node: "node2".into(), nodeid: None, methods: vec![Method { name: "m".into(), devices: vec![bmc, gate] }] };
        let r = Engine::new(&clock, &mut op, &mut obs).run(&wrong, Action::Off, &RunOptions::default());
        assert!(r.message.contains("must be the first"), "{}", r.message);
        assert!(dev.borrow().log.is_empty());
    }

    /// One layout, whether read from the fence targets (fenced's view: doctor, fence test,
    /// quorum status) or from the model (the validator's rules): the same gated/ungated facts.
    #[test]
    fn layout_from_targets_and_from_model_agree() {
        use crate::clusterconf::model::Model;
        let conf = r#"<?xml version="1.0"?>
<cluster name="g" config_version="1">
  <cman two_node="1" expected_votes="1"/>
  <clusternodes>
    <clusternode name="n1" nodeid="1"><fence>
      <method name="a"><device name="twonode-arbiter"/><device name="b1"/></method>
      <method name="b"><device name="b1"/><device name="twonode-arbiter"/></method>
    </fence></clusternode>
    <clusternode name="n2" nodeid="2"><fence>
      <method name="a"><device name="b2"/></method>
    </fence></clusternode>
  </clusternodes>
  <fencedevices>
    <fencedevice name="twonode-arbiter" agent="fence_twonode_arbiter" ipaddr="10.0.0.9" login_timeout="7"/>
    <fencedevice name="b1" agent="fence_ipmilan" ipaddr="10.0.0.1"/>
    <fencedevice name="b2" agent="fence_ipmilan" ipaddr="10.0.0.2"/>
  </fencedevices>
</cluster>"#;
        let targets = crate::fence::spec::from_cluster_conf(conf, "c").unwrap();
        let (_d, m) = Model::parse(conf.as_bytes()).unwrap();
        let (t, mo) = (GateLayout::of_targets(&targets), GateLayout::of_model(&m));
        assert_eq!((&t.gates, &t.gated, &t.ungated), (&mo.gates, &mo.gated, &mo.ungated));
        assert_eq!(t.gated, vec![("n1".to_string(), "a".to_string())]);
        assert_eq!(t.ungated.len(), 2);
        assert!(t.any() && !t.complete());
        assert_eq!((t.gates[0].port, t.gates[0].timeout_s), (5403, Some(7)));
        assert!(race_protection(&targets).starts_with("PARTIAL"));
    }

    #[test]
    fn agent_input_conventions() {
        let p = parse_stdin("agent=fence_twonode_arbiter\nipaddr=\"10.1.1.1\"\nnodename=node2\naction=off\ntlskey=/k\n");
        assert_eq!(victim_of(&p).as_deref(), Some("node2"));
        assert_eq!(p["ipaddr"], "10.1.1.1");
        let a: Vec<String> = ["-o", "off", "-a", "h", "-u", "1234", "-n", "node2", "--tlskey=/k", "--local-node", "node1"].iter().map(|s| s.to_string()).collect();
        let p = parse_args(&a).unwrap();
        assert_eq!((p["action"].as_str(), p["ipport"].as_str(), p["local_node"].as_str()), ("off", "1234", "node1"));
        assert_eq!(victim_of(&p).as_deref(), Some("node2"));
        assert!(parse_args(&["--password=x".to_string()]).is_err());
        // unusable settings: exit 1, never 0
        let code = run_agent(&[], &mut "action=off\nnodename=node2\n".as_bytes(), Some(Path::new("/dev/null")));
        assert_eq!(code, 1);
        assert_eq!(run_agent(&[], &mut "action=status\n".as_bytes(), None), 0);
        assert!(metadata().contains("<parameter name=\"tlscacert\""));
    }
}
