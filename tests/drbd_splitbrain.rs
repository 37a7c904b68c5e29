//! Split-brain classification on realistic pairs of node outputs, built from the fixtures (real
//! drbdmeta GI output, UG and derived status samples) and from derived pastes.
use std::path::Path;
use twonode::drbd::parse::parse_paste;
use twonode::drbd::splitbrain::{classify, node_names, NodeInput, Options, Report, ResourceVerdict, Verdict};

fn fixture(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/drbd").join(rel);
    String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned()
}

/// A paste: `# command` then the fixture's text, for each (command, fixture-or-literal) pair.
fn paste(parts: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (cmd, body) in parts {
        s.push_str(&format!("root@node:~# {cmd}\n"));
        let text = match body.strip_prefix('@') {
            Some(f) => fixture(f),
            None => body.to_string(),
        };
        s.push_str(&text);
        if !s.ends_with('\n') {
            s.push('\n');
        }
    }
    s
}

fn run(local: &str, peer: &str, opts: Options) -> Report {
    let lp = parse_paste(local).unwrap();
    let pp = parse_paste(peer).unwrap();
    let (ln, pn) = node_names(&lp.state, &pp.state);
    let l = NodeInput::from_paste(ln.unwrap_or_else(|| "alice".into()), lp);
    let p = NodeInput::from_paste(pn.unwrap_or_else(|| "bob".into()), pp);
    classify(&l, &p, &opts)
}

fn only(rep: &Report) -> &ResourceVerdict {
    assert_eq!(rep.resources.len(), 1, "{rep:#?}");
    &rep.resources[0]
}

const ALICE_STATUS_SB: &str = "r0 role:Primary\n  disk:UpToDate\n  bob connection:StandAlone\n";
const BOB_STATUS_SB: &str = "r0 role:Secondary\n  disk:UpToDate\n  alice connection:Connecting\n";

#[test]
fn v9_split_brain_primary_secondary_recommends_the_secondary() {
    let alice = paste(&[
        ("drbdadm status r0", "@derived/drbdadm_status_9_sb_survivor_or_victim_standalone.txt"),
        ("drbdadm show-gi r0", "@local-drbd-utils-9.22/gi_v9_alice_show-gi.stdout"),
        ("drbdadm get-gi r0", "@local-drbd-utils-9.22/gi_v9_alice_get-gi.stdout"),
        ("cat /proc/mounts", "/dev/drbd0 /srv ext4 rw 0 0\n"),
    ]);
    let bob = paste(&[
        ("drbdadm status r0", "@derived/drbdadm_status_9_sb_peer_still_connecting.txt"),
        ("drbdadm get-gi r0", "@local-drbd-utils-9.22/gi_v9_bob_get-gi.stdout"),
        ("cat /proc/mounts", "/dev/sda1 / ext4 rw 0 0\n"),
    ]);
    let rep = run(&alice, &bob, Options::default());
    assert_eq!((rep.local.as_str(), rep.peer.as_str()), ("alice", "bob"));
    let r = only(&rep);
    assert_eq!(r.verdict, Verdict::SplitBrain, "{r:#?}");
    assert!(r.explanation.iter().any(|e| e.contains("bitmap UUIDs are equal") && e.contains("rule 90")), "{:?}", r.explanation);
    assert_eq!(r.local.was_primary_during_split.value, Some(true));
    assert_eq!(r.peer.was_primary_during_split.value, Some(false));
    let rec = r.recommendation.as_ref().expect("a recommendation");
    assert_eq!((rec.victim.as_str(), rec.survivor.as_str()), ("bob", "alice"));
    assert!(rec.reasons.iter().any(|x| x.contains("bob was Secondary")), "{:?}", rec.reasons);
    assert!(rec.reasons.iter().any(|x| x.contains("mounted")), "{:?}", rec.reasons);
    let text = twonode::drbd::splitbrain::render(&rep);
    assert!(text.contains("SPLIT BRAIN") && text.contains("recommended victim (its changes are discarded): bob"), "{text}");
}

#[test]
fn v84_proc_drbd_and_show_gi_pair() {
    // 8.4: /proc/drbd (minor 0 StandAlone) + real drbdmeta show-gi output of the split-brain pair
    let alice = paste(&[
        ("cat /proc/drbd", "version: 8.4.11 (api:1/proto:86-101)\n 0: cs:StandAlone ro:Primary/Unknown ds:UpToDate/DUnknown   r-----\n    ns:0 nr:0 dw:4096 dr:0 al:2 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:4096\n"),
        ("drbdadm show-gi r0", "@local-drbd-utils-9.22/gi_84_alice_show-gi.stdout"),
        ("drbdadm dump r0", "@local-drbd-utils-9.22/drbdadm_dump_84_full.stdout"),
    ]);
    let bob = paste(&[
        ("cat /proc/drbd", "version: 8.4.11 (api:1/proto:86-101)\n 0: cs:WFConnection ro:Secondary/Unknown ds:UpToDate/DUnknown C r-----\n    ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:8\n"),
        ("drbdadm show-gi r0", "@local-drbd-utils-9.22/gi_84_bob_show-gi.stdout"),
    ]);
    let rep = run(&alice, &bob, Options::default());
    let r = only(&rep);
    assert_eq!(r.resource, "r0");
    assert_eq!(r.verdict, Verdict::SplitBrain, "{r:#?}");
    assert_eq!(r.local.changed_kib, Some(4096));
    assert_eq!(r.peer.changed_kib, Some(8));
    let rec = r.recommendation.as_ref().expect("recommendation");
    assert_eq!(rec.victim, "bob");
    assert!(rec.reasons[0].contains("fewer changes: 8 KiB on bob"), "{:?}", rec.reasons);
    // the configured after-sb policies are automatic: warned about
    assert!(r.warnings.iter().any(|w| w.contains("discard-zero-changes")), "{:?}", r.warnings);
}

#[test]
fn contradicting_evidence_gives_no_recommendation() {
    // bob changed less, but bob runs the service and has the filesystem mounted
    let alice = paste(&[
        ("drbdadm status r0", ALICE_STATUS_SB),
        ("drbdadm get-gi r0", "9E4DEF0B06A6DA9C:41C26508159C156A:CA64B93EC801717D:CA63B93EC801717D"),
        ("dmesg", "[ 10.0] drbd r0/0 drbd0 bob: self 9E4DEF0B06A6DA9C:41C26508159C156A:CA64B93EC801717D:CA63B93EC801717D bits:5000 flags:0\n[ 10.1] drbd r0/0 drbd0 bob: peer 35BBB10CCF212668:41C26508159C156A:CA64B93EC801717C:CA63B93EC801717D bits:10 flags:0\n"),
        ("cat /proc/mounts", "/dev/sda1 / ext4 rw 0 0\n"),
    ]);
    let bob = paste(&[
        ("drbdadm status r0", "r0 role:Primary\n  disk:UpToDate\n  alice connection:StandAlone\n"),
        ("drbdadm get-gi r0", "35BBB10CCF212669:41C26508159C156A:CA64B93EC801717C:CA63B93EC801717D"),
        ("cat /proc/mounts", "/dev/drbd0 /srv ext4 rw 0 0\n"),
    ]);
    let rep = run(&alice, &bob, Options { service_on: Some("bob".into()), resource: None });
    let r = only(&rep);
    assert_eq!(r.verdict, Verdict::SplitBrain);
    assert!(r.recommendation.is_none(), "{:?}", r.recommendation);
    let why = r.no_recommendation.as_deref().unwrap();
    assert!(why.contains("contradicts") && why.contains("fewer changes") && why.contains("service"), "{why}");
}

#[test]
fn unrelated_data_refuses() {
    let alice = paste(&[("drbdadm status r0", ALICE_STATUS_SB), ("drbdadm get-gi r0", "AAAA000000000000:1111000000000000:2222000000000000:3333000000000000")]);
    let bob = paste(&[("drbdadm status r0", BOB_STATUS_SB), ("drbdadm get-gi r0", "BBBB000000000000:4444000000000000:5555000000000000:6666000000000000")]);
    let r = only(&run(&alice, &bob, Options::default())).clone();
    assert_eq!(r.verdict, Verdict::UnrelatedData);
    assert!(r.recommendation.is_none());
    assert!(r.no_recommendation.unwrap().contains("do not discard"));
    assert!(r.explanation.iter().any(|e| e.contains("unrelated")), "{:?}", r.explanation);
}

#[test]
fn healthy_and_syncing() {
    let st = "r0 role:Primary\n  disk:UpToDate\n  bob role:Secondary\n    peer-disk:UpToDate\n";
    let st2 = "r0 role:Secondary\n  disk:UpToDate\n  alice role:Primary\n    peer-disk:UpToDate\n";
    let r = only(&run(&paste(&[("drbdadm status", st)]), &paste(&[("drbdadm status", st2)]), Options::default())).clone();
    assert_eq!(r.verdict, Verdict::Healthy, "{:?}", r.explanation);
    assert!(r.recommendation.is_none() && r.no_recommendation.is_none());
    // victim resyncing after a discard (derived fixture), survivor is SyncSource
    let victim = paste(&[("drbdadm status r0", "@derived/drbdadm_status_9_victim_resyncing_after_discard.txt")]);
    let survivor = "r0 role:Primary\n  volume:0 disk:UpToDate\n  volume:1 disk:UpToDate\n  bob role:Secondary\n    volume:0 replication:SyncSource peer-disk:Inconsistent done:37.50\n    volume:1 replication:SyncSource peer-disk:Inconsistent done:74.08\n";
    let rep = run(&paste(&[("drbdadm status r0", survivor)]), &victim, Options::default());
    let r = only(&rep);
    assert_eq!(r.verdict, Verdict::Syncing);
    assert!(r.explanation[0].contains("37.5% done"), "{:?}", r.explanation);
}

#[test]
fn disconnected_is_not_a_split_brain() {
    // both trying to connect, no GIs: a network problem
    let a = paste(&[("cat /proc/drbd", " 0: cs:WFConnection ro:Primary/Unknown ds:UpToDate/DUnknown C r-----\n")]);
    let b = paste(&[("cat /proc/drbd", " 0: cs:WFConnection ro:Secondary/Unknown ds:UpToDate/DUnknown C r-----\n")]);
    let r = only(&run(&a, &b, Options::default())).clone();
    assert_eq!(r.verdict, Verdict::Disconnected, "{:?}", r.explanation);
    // StandAlone with GIs that show only one side moved on: reconnect resyncs, no split brain
    let alice = paste(&[("drbdadm status r0", ALICE_STATUS_SB), ("drbdadm get-gi r0", "AAAA000000000001:BBBB000000000000:CCCC000000000000:0")]);
    let bob = paste(&[("drbdadm status r0", BOB_STATUS_SB), ("drbdadm get-gi r0", "BBBB000000000000:0:CCCC000000000000:0")]);
    let r = only(&run(&alice, &bob, Options::default())).clone();
    assert_eq!(r.verdict, Verdict::Disconnected, "{:?}", r.explanation);
    assert!(r.explanation.iter().any(|e| e.contains("sync source")), "{:?}", r.explanation);
}

#[test]
fn standalone_without_gis_is_unknown_and_log_decides() {
    let alice = paste(&[("drbdadm status r0", ALICE_STATUS_SB)]);
    let bob = paste(&[("drbdadm status r0", BOB_STATUS_SB)]);
    let r = only(&run(&alice, &bob, Options::default())).clone();
    assert_eq!(r.verdict, Verdict::Unknown);
    assert!(r.explanation.iter().any(|e| e.contains("does not prove")), "{:?}", r.explanation);
    // the same with the kernel's split-brain line (8.4 style, by minor)
    let alice = paste(&[
        ("drbdadm status r0", "r0 role:Primary\n  volume:0 minor:0 disk:UpToDate\n  bob connection:StandAlone\n"),
        ("journalctl -k", "Nov 22 00:15:01 alice kernel: block drbd0: uuid_compare()=100 by rule 90\nNov 22 00:15:01 alice kernel: block drbd0: Split-Brain detected but unresolved, dropping connection!\n"),
    ]);
    let r = only(&run(&alice, &bob, Options::default())).clone();
    assert_eq!(r.verdict, Verdict::SplitBrain, "{:?}", r.explanation);
    assert!(r.explanation.iter().any(|e| e.contains("Split-Brain detected")), "{:?}", r.explanation);
    assert_eq!(r.local.kernel_lines.len(), 2);
    assert_eq!(r.local.kernel_lines[0].time.as_deref(), Some("Nov 22 00:15:01"));
    // events2 helper calls say so too
    let alice = paste(&[("drbdsetup events2 --now r0", "@derived/events2_9_split_brain_helper_calls.txt")]);
    let r = only(&run(&alice, &bob, Options::default())).clone();
    assert_eq!(r.verdict, Verdict::SplitBrain, "{:?}", r.explanation);
}

#[test]
fn two_volumes_worst_wins_and_no_evidence_no_recommendation() {
    let alice = paste(&[
        ("drbdadm status r0", "@derived/drbdadm_status_9_sb_two_volumes_standalone.txt"),
        ("drbdadm get-gi r0/0", "AAAA000000000000:0:0:0"),
        ("drbdadm get-gi r0/1", "9E4DEF0B06A6DA9C:41C26508159C156A:CA64B93EC801717D:CA63B93EC801717D"),
    ]);
    let bob = paste(&[
        ("drbdadm status r0", "r0 role:Secondary\n  volume:0 disk:UpToDate\n  volume:1 disk:UpToDate\n  alice connection:StandAlone\n"),
        ("drbdadm get-gi r0/0", "AAAA000000000000:0:0:0"),
        ("drbdadm get-gi r0/1", "35BBB10CCF212668:41C26508159C156A:CA64B93EC801717C:CA63B93EC801717D"),
    ]);
    let r = only(&run(&alice, &bob, Options::default())).clone();
    assert_eq!(r.verdict, Verdict::SplitBrain);
    assert_eq!(r.volumes[0].verdict, Verdict::Healthy);
    assert_eq!(r.volumes[1].verdict, Verdict::SplitBrain);
    // alice is Primary now (a vote for discarding bob): recommendation bob
    assert_eq!(r.recommendation.as_ref().map(|x| x.victim.as_str()), Some("bob"));
    // both Secondary now, no other evidence: no recommendation
    let alice2 = alice.replace("r0 role:Primary", "r0 role:Secondary");
    let r = only(&run(&alice2, &bob, Options::default())).clone();
    assert_eq!(r.verdict, Verdict::SplitBrain);
    assert!(r.recommendation.is_none());
    assert!(r.no_recommendation.unwrap().contains("no evidence"));
}

#[test]
fn cli_offline_split_brain_exit_codes() {
    use assert_cmd::Command;
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("alice.txt");
    let b = dir.path().join("bob.txt");
    std::fs::write(&a, paste(&[("drbdadm status r0", ALICE_STATUS_SB), ("drbdadm get-gi r0", "@local-drbd-utils-9.22/gi_84_alice_get-gi.stdout")])).unwrap();
    std::fs::write(&b, paste(&[("drbdadm status r0", BOB_STATUS_SB), ("drbdadm get-gi r0", "@local-drbd-utils-9.22/gi_84_bob_get-gi.stdout")])).unwrap();
    let out = Command::cargo_bin("twonode").unwrap().args(["drbd", "split-brain", "--json", "--local-file"]).arg(&a).arg("--peer-file").arg(&b).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["resources"][0]["verdict"], "split-brain");
    assert_eq!(v["resources"][0]["recommendation"]["victim"], "bob");
    // unreadable peer file: exit 1 naming the file and line
    std::fs::write(&b, "r0 role:Secondary\n  disk:UpToDate\n  alice connection:Connecting ???\n").unwrap();
    let out = Command::cargo_bin("twonode").unwrap().args(["drbd", "split-brain", "--local-file"]).arg(&a).arg("--peer-file").arg(&b).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bob.txt: line 3"), "{err}");
}
