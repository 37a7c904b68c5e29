//! `twonode drbd recover` on a DRBD resource pacemaker manages, against the REAL pacemaker tools
//! and the real drbdadm: the CIB is a copy of fixtures/pacemaker/drbd-split-brain.xml (written by
//! pcs, cibadmin, crm_attribute and crm_simulate), and the plan's pacemaker steps run the real
//! crm_resource / cibadmin / crm_mon on it through CIB_file (pacemaker's offline mode). The DRBD
//! side is the one tests/drbd_recover.rs uses: the real drbdadm (-s/-m) over `twonode lab
//! drbd-kernel`, here reached as `lab:DIR` nodes (no SSH: that transport is tested there).
//!
//! Pacemaker's decisions come from its own scheduler: `crm_simulate -S` on the CIB file says what
//! pacemaker would do (nothing after the hand-back: node1 stays Promoted; demote node1 and promote
//! the victim when the fence-by-handler constraint names the victim; nothing while unmanaged).
//!
//! What cannot be observed offline: pacemaker promoting by itself (no controller runs on a CIB
//! file; the fixture's status already shows node1 Promoted, as pacemaker's scheduler computed it
//! with crm_simulate, and the check reads that), and `crm_resource --cleanup` clearing failures
//! (pacemaker 2.1.5 skips it on a CIB file: "Dry run: skipping clean-up", then crashes; the step's
//! check, no failed operation in crm_mon, holds since the fixture records none). Both are tested
//! against a live pacemaker in tests/pacemaker_drbd_lab.rs.
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_twonode");
const CLONE_UNMANAGED: &str = r#"name="is-managed" value="false""#;
const CLONE_MANAGED: &str = r#"name="is-managed" value="true""#;
const CONSTRAINT: &str = r#"id="drbd-fence-by-handler-r0-drbd-r0-clone""#;

fn have(tool: &str) -> bool {
    ["/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/"].iter().any(|d| Path::new(&format!("{d}{tool}")).exists())
}

/// Skip (loudly) when the real peers are missing; CI installs them (scripts/install-deps).
fn peers_present() -> bool {
    let ok = ["drbdadm", "crm_resource", "cibadmin", "crm_mon"].iter().all(|t| have(t));
    if !ok {
        eprintln!("SKIPPED: drbdadm or the pacemaker CLI (crm_resource, cibadmin, crm_mon) missing (run scripts/install-deps)");
    }
    ok
}

struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    /// Two simulated DRBD nodes node1 and node2 in a split brain (node1 kept the service and wrote
    /// `kib`, node2 was promoted by mistake, wrote 40 KiB and was demoted), and a copy of the CIB.
    fn new(kib: u64, rate: u64) -> Lab {
        let dir = tempfile::tempdir().expect("tempdir");
        let lab = Lab { dir };
        lab.sim(&["init", "--nodes", "node1,node2", "--resync-rate", &rate.to_string()]);
        lab.sim(&[
            "scenario", "split-brain", "--primary", "node1", "--primary", "node2", "--writes", &format!("node1={kib}"), "--writes", "node2=40",
            "--demote", "node2",
        ]);
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pacemaker/drbd-split-brain.xml");
        std::fs::copy(fixture, lab.cib()).expect("copy the CIB fixture");
        lab
    }
    fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn cib(&self) -> PathBuf {
        self.p("cib.xml")
    }
    fn cib_text(&self) -> String {
        std::fs::read_to_string(self.cib()).expect("read the CIB")
    }
    fn sim(&self, args: &[&str]) -> String {
        let out = Command::new(BIN).args(["lab", "drbd-kernel", "--state"]).arg(self.p("sim")).args(args).output().expect("twonode lab");
        assert!(out.status.success(), "lab {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn recover(&self, args: &[&str]) -> Command {
        let sim = self.p("sim").display().to_string();
        let mut c = Command::new(BIN);
        c.arg("--json").args(["drbd", "recover", "r0"]).args(args);
        c.args(["--node", &format!("node1=lab:{sim}"), "--node", &format!("node2=lab:{sim}")]);
        c.arg("--cib").arg(self.cib()).arg("--journal-dir").arg(self.p("journal"));
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    }
    /// pacemaker's own view of the CIB file.
    fn crm_mon(&self) -> String {
        let out = Command::new("crm_mon").args(["-1", "--output-as=xml"]).env("CIB_file", self.cib()).output().expect("crm_mon");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn world(&self) -> serde_json::Value {
        serde_json::from_str(&self.sim(&["--node", "node1", "show", "json"])).expect("json")
    }
}

/// Pacemaker's scheduler on the CIB file (crm_simulate -S, the real one): the actions it would
/// take now, one per line of its "Transition Summary".
fn transition(cib: &Path) -> Vec<String> {
    let out = Command::new("crm_simulate").arg("-S").arg("-x").arg(cib).output().expect("crm_simulate");
    assert!(out.status.success(), "crm_simulate: {}", String::from_utf8_lossy(&out.stderr));
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.lines()
        .skip_while(|l| !l.starts_with("Transition Summary"))
        .skip(1)
        .take_while(|l| !l.starts_with("Executing"))
        .map(|l| l.trim().trim_start_matches("* ").to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn text(o: &Output) -> String {
    format!("--- exit {:?}\n--- stdout\n{}\n--- stderr\n{}", o.status.code(), String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout).lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).expect("JSON line")).collect()
}

/// The steps reported done, in order.
fn done_steps(o: &Output) -> Vec<String> {
    json_lines(o)
        .iter()
        .filter(|e| e["event"] == "step" && (e["status"] == "done" || e["status"] == "skipped"))
        .map(|e| e["step"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The CIB after a complete recovery: handed back, constraint gone, node1 Promoted per pacemaker.
fn assert_handed_back(lab: &Lab) {
    let cib = lab.cib_text();
    assert!(cib.contains(CLONE_MANAGED) && !cib.contains(CLONE_UNMANAGED), "not handed back:\n{cib}");
    assert!(!cib.contains(CONSTRAINT), "the stale constraint is still there:\n{cib}");
    let mon = lab.crm_mon();
    assert!(mon.contains(r#"<clone id="drbd-r0-clone" multi_state="true" unique="false" managed="true""#), "{mon}");
    let promoted = mon.split("<resource ").find(|r| r.contains(r#"role="Promoted""#)).unwrap_or("");
    assert!(promoted.contains(r#"<node name="node1""#), "node1 not Promoted per crm_mon:\n{mon}");
    let w = lab.world();
    let r = &w["resources"]["r0"];
    assert_eq!(r["connected"], true, "{w:#}");
    for n in ["node1", "node2"] {
        assert_eq!(r["nodes"][n]["volumes"][0]["disk"], "UpToDate", "{w:#}");
    }
    assert_eq!(r["nodes"]["node1"]["volumes"][0]["gi"][0], r["nodes"]["node2"]["volumes"][0]["gi"][0], "{w:#}");
    // pacemaker's scheduler, handed the resource back, leaves it as it is: node1 stays Promoted
    let t = transition(&lab.cib());
    assert!(t.is_empty(), "pacemaker would act after the hand-back: {t:?}");
}

#[test]
fn recovery_keeps_pacemaker_out_of_the_way_then_hands_back() {
    if !peers_present() {
        return;
    }
    // 40000 KiB to resync at 20000 KiB/s: the resync takes about 2 s, the CIB is watched meanwhile
    let lab = Lab::new(40000, 20000);
    let before = lab.cib_text();
    assert!(before.contains(CONSTRAINT) && !before.contains("is-managed"));
    let child = lab.recover(&["--discard", "node2", "--yes"]).spawn().expect("run twonode");
    // What the CIB says while the DRBD steps run.
    let (mut unmanaged_with_constraint, mut seen_resync_while_unmanaged) = (false, false);
    let t = Instant::now();
    let out = {
        let mut child = child;
        loop {
            if let Some(_st) = child.try_wait().expect("wait") {
                break child.wait_with_output().expect("output");
            }
            let cib = std::fs::read_to_string(lab.cib()).unwrap_or_default();
            if cib.contains(CLONE_UNMANAGED) && cib.contains(CONSTRAINT) {
                unmanaged_with_constraint = true;
                let w = lab.world();
                if w["resources"]["r0"]["resyncs"].as_array().is_some_and(|a| !a.is_empty()) {
                    seen_resync_while_unmanaged = true;
                }
            }
            assert!(t.elapsed() < Duration::from_secs(120), "recovery hangs");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(unmanaged_with_constraint, "never saw is-managed=false in the CIB while the DRBD steps ran");
    assert!(seen_resync_while_unmanaged, "never saw the resync run while pacemaker's hands were off");
    assert_eq!(
        done_steps(&out),
        [
            "pacemaker-unmanage",
            "victim-connect-discard",
            "wait-resync",
            "pacemaker-remove-drbd-fence-by-handler-r0-drbd-r0-clone",
            "pacemaker-cleanup",
            "pacemaker-manage",
            "pacemaker-promoted"
        ],
        "{}",
        text(&out)
    );
    let ev = json_lines(&out);
    let pm = ev.iter().find(|e| e["event"] == "pacemaker").expect("pacemaker event");
    assert_eq!(pm["clone"], "drbd-r0-clone");
    let unmanage = ev.iter().find(|e| e["step"] == "pacemaker-unmanage").expect("unmanage event");
    assert_eq!(unmanage["command"], "crm_resource --resource drbd-r0-clone --meta --set-parameter is-managed --parameter-value false");
    assert_eq!(unmanage["exit_status"], 0);
    assert!(ev.last().expect("result")["message"].as_str().unwrap_or("").contains("handed back to pacemaker"), "{}", text(&out));
    assert_handed_back(&lab);
}

#[test]
fn interrupted_recovery_resumes_and_hands_the_resource_back() {
    if !peers_present() {
        return;
    }
    // a slow resync: twonode is killed while it waits for it
    let lab = Lab::new(40000, 4000);
    let mut child = lab.recover(&["--discard", "node2", "--yes"]).spawn().expect("run twonode");
    let t = Instant::now();
    loop {
        let w = lab.world();
        if w["resources"]["r0"]["resyncs"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "the resync never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("kill twonode");
    let _ = child.wait();
    // killed mid-recovery: pacemaker's hands stay off the resource, the constraint stays
    let cib = lab.cib_text();
    assert!(cib.contains(CLONE_UNMANAGED) && cib.contains(CONSTRAINT), "{cib}");
    let journal = std::fs::read_to_string(lab.p("journal/recover-r0.json")).expect("journal kept");
    assert!(journal.contains("pacemaker-unmanage"), "{journal}");
    // a new recovery is refused: the journal must be resumed
    let again = lab.recover(&["--discard", "node2", "--yes"]).output().expect("run");
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("journal-exists"), "{}", text(&again));
    let out = lab.recover(&["--resume", "--yes", "--resync-timeout", "60"]).output().expect("resume");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let done = done_steps(&out);
    assert!(!done.contains(&"pacemaker-unmanage".to_string()), "the confirmed step ran again: {done:?}");
    assert_eq!(done.last().map(String::as_str), Some("pacemaker-promoted"), "{}", text(&out));
    assert!(done.contains(&"pacemaker-manage".to_string()));
    assert_handed_back(&lab);
}

#[test]
fn a_constraint_keeping_the_victim_is_refused_and_nothing_changes() {
    if !peers_present() {
        return;
    }
    let lab = Lab::new(400, 200000);
    let before = lab.cib_text();
    let world = lab.world();
    // discard node1, whose data crm-fence-peer kept: DRBD's own check passes with --accept-loss,
    // pacemaker's constraint still says node1
    let out = lab.recover(&["--discard", "node1", "--yes", "--accept-loss"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let ev = json_lines(&out);
    let r = ev.iter().find(|e| e["event"] == "refused").expect("refused event");
    assert_eq!(r["kind"], "pacemaker-constraint-keeps-victim", "{r:#}");
    assert!(r["message"].as_str().unwrap_or("").contains("cannot promote node2"), "{r:#}");
    assert!(
        r["fix"].as_str().unwrap_or("").contains(r#"cibadmin --delete --xml-text '<rsc_location id="drbd-fence-by-handler-r0-drbd-r0-clone"/>'"#),
        "{r:#}"
    );
    assert_eq!(lab.cib_text(), before, "the CIB changed");
    assert_eq!(lab.world()["resources"]["r0"]["nodes"], world["resources"]["r0"]["nodes"], "DRBD changed");
    // the command the refusal names, run by the admin, unblocks it (checked with the real cibadmin)
    let st = Command::new("cibadmin")
        .args(["--delete", "--xml-text", r#"<rsc_location id="drbd-fence-by-handler-r0-drbd-r0-clone"/>"#])
        .env("CIB_file", lab.cib())
        .status()
        .expect("cibadmin");
    assert!(st.success());
    let out = lab.recover(&["--discard", "node1", "--accept-loss", "--dry-run"]).output().expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn pacemaker_would_fight_for_a_constraint_that_keeps_the_victim() {
    if !peers_present() {
        return;
    }
    let lab = Lab::new(400, 200000);
    // the handler's constraint names node2 (as crm-fence-peer on node2 would have written it)
    let st = Command::new("cibadmin")
        .args(["--modify", "--xml-text", r#"<expression id="drbd-fence-by-handler-r0-expr-drbd-r0-clone" value="node2"/>"#])
        .env("CIB_file", lab.cib())
        .status()
        .expect("cibadmin");
    assert!(st.success());
    // pacemaker's own answer: it would demote node1 and promote node2, the side to be discarded
    let t = transition(&lab.cib());
    assert!(t.iter().any(|l| l.starts_with("Demote") && l.contains("node1")), "{t:?}");
    assert!(t.iter().any(|l| l.starts_with("Promote") && l.contains("node2")), "{t:?}");
    let before = lab.cib_text();
    let out = lab.recover(&["--discard", "node2", "--yes"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let ev = json_lines(&out);
    let r = ev.iter().find(|e| e["event"] == "refused").expect("refused event");
    assert_eq!(r["kind"], "pacemaker-constraint-keeps-victim", "{r:#}");
    assert!(r["message"].as_str().unwrap_or("").contains("only node2"), "{r:#}");
    assert_eq!(lab.cib_text(), before, "the CIB changed");
    // unmanaged, the same CIB makes pacemaker do nothing: what the plan's first step is for
    let st = Command::new("crm_resource")
        .args(["--resource", "drbd-r0-clone", "--meta", "--set-parameter", "is-managed", "--parameter-value", "false"])
        .env("CIB_file", lab.cib())
        .stdout(Stdio::null())
        .status()
        .expect("crm_resource");
    assert!(st.success());
    assert!(transition(&lab.cib()).is_empty());
}

#[test]
fn maintenance_mode_instead_of_unmanage() {
    if !peers_present() {
        return;
    }
    let lab = Lab::new(400, 200000);
    let out = lab.recover(&["--discard", "node2", "--yes", "--hands-off", "maintenance"]).output().expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ev = json_lines(&out);
    let cmd = |id: &str| ev.iter().find(|e| e["step"] == id).map(|e| e["command"].as_str().unwrap_or("").to_string()).unwrap_or_default();
    assert_eq!(cmd("pacemaker-unmanage"), "crm_attribute --type crm_config --name maintenance-mode --update true");
    assert_eq!(cmd("pacemaker-manage"), "crm_attribute --type crm_config --name maintenance-mode --delete");
    assert_eq!(done_steps(&out).len(), 7, "{}", text(&out));
    let cib = lab.cib_text();
    assert!(!cib.contains("maintenance-mode") && !cib.contains("is-managed"), "{cib}");
    assert!(!cib.contains(CONSTRAINT));
    assert!(transition(&lab.cib()).is_empty());
}
