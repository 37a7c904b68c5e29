//! What a fence agent does to its victim, for the agents of fence-agents (and cman's own) that do
//! NOT cut the victim's power themselves. Everything not listed here is taken to be a power (or
//! reset) switch: a BMC, a PDU, a hypervisor or a cloud API that stops the machine.
//!
//! The catalogue comes from each agent's own description (`fence_X -o metadata`, fence-agents
//! 4.12 on Debian 12) and, for fence_sanlock and fence_manual (RHEL 6 cluster suite, not in
//! Debian's fence-agents), from their man pages. The point for a two-node cluster: with
//! `two_node="1"` both halves of a split keep quorum, so the only thing that stops both from
//! running the services is a fence that really takes the other node down. An agent that relies on
//! the victim (its watchdog, its kdump), only acknowledges, only checks reachability, or cuts
//! storage or network paths but leaves the machine running, cannot be that fence alone.

/// What an agent does instead of cutting power.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPowerCut {
    /// The victim resets itself through its own watchdog: trusts the victim to be alive enough to
    /// notice, and after a split both sides believe the other did.
    SelfFencing,
    /// Nothing happens to the victim: a human (or nobody) acknowledges.
    Acknowledge,
    /// The agent only confirms something the victim does (a kdump message) or checks a condition
    /// (ping, crosslink); it never acts on the victim.
    ConfirmOnly,
    /// The victim is cut off shared storage (SCSI-3 reservations, a SAN switch port) but keeps
    /// running: protects that SAN's data, not DRBD-replicated local disks, not IP services.
    StorageOnly,
    /// A network switch port is disabled: the victim keeps running and writing its local disks.
    NetworkOnly,
    /// Tells a cloud scheduler the host is down; another agent must have stopped it.
    Scheduler,
    /// A test agent that switches nothing real.
    Test,
    /// twonode's arbiter gate: asks the quorum arbiter for the vote before the real devices of its
    /// method run (`fence::gate`, checked by the gate rules of the validator).
    Gate,
}

/// One agent that cuts no power: what it is, and what it is not.
#[derive(Debug, Clone, Copy)]
pub struct AgentFacts {
    pub agent: &'static str,
    pub kind: NoPowerCut,
    /// What the agent does (a sentence fragment after "AGENT ...").
    pub what: &'static str,
}

/// The agents that do not cut power, by name.
pub const NO_POWER_CUT: &[AgentFacts] = &[
    AgentFacts { agent: "fence_watchdog", kind: NoPowerCut::SelfFencing, what: "relies on the victim's own watchdog to reset it (self-fencing)" },
    AgentFacts { agent: "fence_sbd", kind: NoPowerCut::SelfFencing, what: "without a shared disk (devices=) is watchdog-only self-fencing" },
    AgentFacts {
        agent: "fence_sanlock",
        kind: NoPowerCut::SelfFencing,
        what: "relies on the victim's watchdog (wdmd) to reset it once it loses its sanlock lease on shared storage (self-fencing)",
    },
    AgentFacts { agent: "fence_manual", kind: NoPowerCut::Acknowledge, what: "cuts no power: fenced waits for a human to run fence_ack_manual" },
    AgentFacts { agent: "fence_ack_manual", kind: NoPowerCut::Acknowledge, what: "cuts no power: it only acknowledges a fence nobody performed" },
    AgentFacts {
        agent: "fence_kdump",
        kind: NoPowerCut::ConfirmOnly,
        what: "cuts no power: it only waits for the crashed victim's kdump to report in, and fails when the victim did not crash into kdump",
    },
    AgentFacts {
        agent: "fence_heuristics_ping",
        kind: NoPowerCut::ConfirmOnly,
        what: "is not a fence: it only decides by ping whether the next device of the same method may run",
    },
    AgentFacts {
        agent: "fence_crosslink",
        kind: NoPowerCut::ConfirmOnly,
        what: "cuts no power: it declares the peer dead when the crosslink does not answer, which a cut cable also does",
    },
    AgentFacts {
        agent: "fence_scsi",
        kind: NoPowerCut::StorageOnly,
        what: "removes the victim's SCSI-3 reservation key: it can no longer write that shared storage but keeps running (DRBD's local disks and IP services are not protected; a manual reboot is needed)",
    },
    AgentFacts {
        agent: "fence_mpath",
        kind: NoPowerCut::StorageOnly,
        what: "removes the victim's multipath SCSI-3 reservation key: it can no longer write that shared storage but keeps running (DRBD's local disks and IP services are not protected)",
    },
    AgentFacts { agent: "fence_brocade", kind: NoPowerCut::StorageOnly, what: "disables the victim's Brocade FC switch port: it loses the SAN but keeps running" },
    AgentFacts { agent: "fence_cisco_mds", kind: NoPowerCut::StorageOnly, what: "disables the victim's Cisco MDS FC switch port: it loses the SAN but keeps running" },
    AgentFacts { agent: "fence_sanbox2", kind: NoPowerCut::StorageOnly, what: "disables the victim's QLogic SANBox2 FC switch port: it loses the SAN but keeps running" },
    AgentFacts {
        agent: "fence_ifmib",
        kind: NoPowerCut::NetworkOnly,
        what: "disables a switch port (IF-MIB ifAdminStatus): the victim keeps running and writing its local disks, and reaches anything not behind that port",
    },
    AgentFacts { agent: "fence_compute", kind: NoPowerCut::Scheduler, what: "only tells OpenStack Nova the compute host is down; it stops nothing" },
    AgentFacts { agent: "fence_evacuate", kind: NoPowerCut::Scheduler, what: "only reschedules OpenStack instances; it stops nothing" },
    AgentFacts { agent: "fence_dummy", kind: NoPowerCut::Test, what: "is a test agent: it switches a file or nothing, never a machine" },
    AgentFacts {
        agent: "fence_twonode_arbiter",
        kind: NoPowerCut::Gate,
        what: "asks the quorum arbiter for the vote; it cuts no power and must be followed by a real device in its method",
    },
];

/// The facts of `agent` (a name or a path) when it cuts no power; None for a power switch (or an
/// unknown agent, which is given the benefit of the doubt).
pub fn no_power_cut(agent: &str) -> Option<&'static AgentFacts> {
    let name = agent.rsplit('/').next().unwrap_or(agent);
    NO_POWER_CUT.iter().find(|a| a.agent == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_has_each_agent_once_and_power_switches_are_absent() {
        for (i, a) in NO_POWER_CUT.iter().enumerate() {
            assert!(NO_POWER_CUT[..i].iter().all(|b| b.agent != a.agent), "{} twice", a.agent);
        }
        for power in ["fence_ipmilan", "fence_ilo", "fence_redfish", "fence_apc_snmp", "fence_virsh", "fence_pve", "/usr/sbin/fence_ipmilan"] {
            assert!(no_power_cut(power).is_none(), "{power}");
        }
        assert_eq!(no_power_cut("fence_sanlock").unwrap().kind, NoPowerCut::SelfFencing);
        assert_eq!(no_power_cut("fence_kdump").unwrap().kind, NoPowerCut::ConfirmOnly);
        assert_eq!(no_power_cut("/usr/sbin/fence_twonode_arbiter").unwrap().kind, NoPowerCut::Gate);
    }
}
