//! `twonode quorum validate|enable-arbiter|disable-arbiter|diff|apply` on corosync.conf.
//! Logic lives in `crate::quorum::corosync_conf`; files go through `ConfStore` (lock, staging in
//! PATH.new, compare-and-swap, atomic apply with PATH.old backup).
use std::path::{Path, PathBuf};

use super::quorum::{CorosyncEdit, CorosyncFile};
use super::Global;
use crate::clusterconf::store::{ConfStore, StoreError, Which};
use crate::quorum::corosync_conf::{self, ArbiterSpec, Context, CorosyncConf, Plan};
use crate::util::{print_json, Failure};

fn default_file() -> PathBuf {
    let pve = PathBuf::from("/etc/pve/corosync.conf");
    if pve.exists() {
        pve
    } else {
        PathBuf::from("/etc/corosync/corosync.conf")
    }
}

fn store_of(file: &Option<PathBuf>) -> ConfStore {
    ConfStore::new(file.clone().unwrap_or_else(default_file))
}

fn read_opt(p: &Path) -> anyhow::Result<(String, String)> {
    let t = std::fs::read_to_string(p).map_err(|e| Failure::new(2, format!("cannot read {}: {e}", p.display())))?;
    Ok((p.display().to_string(), t))
}

/// The sbd configuration and CIB to consider.
fn context(cc: &CorosyncFile, live: &Path) -> anyhow::Result<Context> {
    let sbd = match &cc.sbd_config {
        Some(p) => Some(read_opt(p)?),
        None if live.starts_with("/etc") => ["/etc/sysconfig/sbd", "/etc/default/sbd"]
            .iter()
            .map(Path::new)
            .find(|p| p.exists())
            .and_then(|p| read_opt(p).ok()),
        None => None,
    };
    let cib = match &cc.cib {
        Some(p) => Some(read_opt(p)?),
        None => None,
    };
    Ok(Context { sbd, cib })
}

fn text_of(bytes: &[u8], path: &Path) -> anyhow::Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| Failure::new(2, format!("{}: not UTF-8 text", path.display())).into())
}


pub fn validate(cc: &CorosyncFile, staged: bool, g: &Global) -> anyhow::Result<i32> {
    let store = store_of(&cc.file);
    let snap = store.read(if staged { Which::Staged } else { Which::Live }).map_err(|e| Failure::new(2, format!("cannot read corosync.conf: {e}")))?;
    let ctx = context(cc, &store.live)?;
    let text = text_of(&snap.bytes, &snap.path)?;
    let report = corosync_conf::validate(&text, &snap.path.display().to_string(), &ctx);
    // the pacemaker CIB's fencing findings (issue 13), lines are the CIB's
    let cib = ctx.cib.as_ref().map(|(name, t)| (name.clone(), crate::pacemaker::checks::report_with_corosync(t, &text, &snap.path.display().to_string())));
    if g.json {
        print_json(&serde_json::json!({"file": snap.path, "valid": report.well_formed && !report.has_errors() && cib.as_ref().is_none_or(|c| !c.1.has_errors()), "report": report, "cib": cib.as_ref().map(|c| serde_json::json!({"file": c.0, "report": c.1}))}))?;
    } else {
        print!("{}", report.render_human(&snap.path, "not parseable"));
        if let Some((name, r)) = &cib {
            print!("{}", r.render_human(Path::new(name), "not readable"));
        }
    }
    Ok(if !report.well_formed || cib.as_ref().is_some_and(|c| !c.1.well_formed) {
        2
    } else if report.has_errors() || cib.as_ref().is_some_and(|c| c.1.has_errors()) {
        1
    } else {
        0
    })
}

fn diff_text(a: &[u8], b: &[u8], an: &str, bn: &str) -> String {
    let (at, bt) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    similar::TextDiff::from_lines(&at, &bt).unified_diff().context_radius(3).header(an, bn).to_string()
}

fn run_edit(edit: &CorosyncEdit, what: &str, g: &Global, plan: impl Fn(&CorosyncConf, &str, &Context) -> Result<Plan, String>) -> anyhow::Result<i32> {
    let store = store_of(&edit.cc.file);
    let ctx = context(&edit.cc, &store.live)?;
    let which = Which::EditTarget { in_place: edit.in_place };
    let make = |bytes: &[u8], path: &Path| -> anyhow::Result<Plan> {
        let text = text_of(bytes, path)?;
        let src = path.display().to_string();
        let conf = CorosyncConf::parse(&text).map_err(|e| Failure::new(2, format!("{src}:{}:{}: {} (fix the file first)", e.line, e.col, e.msg)))?;
        plan(&conf, &src, &ctx).map_err(|e| Failure::new(1, format!("{what} refused: {e}")).into())
    };
    let snap = store.read(which).map_err(|e| Failure::new(2, format!("cannot read corosync.conf: {e}")))?;
    let p = make(&snap.bytes, &snap.path)?;
    let new = p.new.text().as_bytes().to_vec();
    let diff = diff_text(&snap.bytes, &new, &snap.path.display().to_string(), &snap.target.display().to_string());
    if !edit.dry_run {
        store.write_from(&snap, &new).map_err(|e| match e {
            StoreError::Conflict { .. } => anyhow::Error::from(Failure::new(3, e.to_string())),
            other => other.into(),
        })?;
    }
    if g.json {
        print_json(&serde_json::json!({
            "dry_run": edit.dry_run, "source": snap.path, "target": snap.target, "changes": p.notes, "diff": diff,
            "old_version": CorosyncConf::parse(&String::from_utf8_lossy(&snap.bytes)).ok().and_then(|c| c.config_version()),
            "new_version": p.new.config_version(),
        }))?;
    } else {
        if edit.dry_run {
            println!("dry run: {what} would write {}", snap.target.display());
        } else {
            println!("{what}: wrote {}", snap.target.display());
        }
        for n in &p.notes {
            println!("  - {n}");
        }
        print!("{diff}");
        if !edit.dry_run && !edit.in_place {
            println!("review with `twonode quorum diff`, activate with `twonode quorum apply` (then copy to every node and `corosync-cfgtool -R`)");
        }
    }
    Ok(0)
}

pub fn enable_arbiter(edit: &CorosyncEdit, spec: ArbiterSpec, g: &Global) -> anyhow::Result<i32> {
    run_edit(edit, "enable-arbiter", g, |c, src, ctx| corosync_conf::enable_arbiter(c, &spec, src, ctx))
}

pub fn disable_arbiter(edit: &CorosyncEdit, g: &Global) -> anyhow::Result<i32> {
    run_edit(edit, "disable-arbiter", g, corosync_conf::disable_arbiter)
}

pub fn diff(file: Option<PathBuf>, g: &Global) -> anyhow::Result<i32> {
    let store = store_of(&file);
    let staged_path = store.staged();
    let Some((live, staged)) = store.staged_pair() else {
        return super::conf::nothing_staged(&staged_path, g);
    };
    let d = diff_text(&live, &staged, &store.live.display().to_string(), &staged_path.display().to_string());
    if g.json {
        print_json(&serde_json::json!({"staged": true, "changed": live != staged, "live": store.live, "staged_file": staged_path, "diff": d}))?;
    } else if live == staged {
        println!("{} is identical to {}", staged_path.display(), store.live.display());
    } else {
        print!("{d}");
    }
    Ok(0)
}

pub fn apply(cc: &CorosyncFile, reload: Option<&str>, g: &Global) -> anyhow::Result<i32> {
    let store = store_of(&cc.file);
    let ctx = context(cc, &store.live)?;
    let staged_name = store.staged().display().to_string();
    let outcome = store.apply(
        |staged, live| {
            let live = live.map(String::from_utf8_lossy);
            corosync_conf::may_apply(&String::from_utf8_lossy(staged), live.as_deref(), &staged_name, &ctx).map_err(|refusal| anyhow::anyhow!(refusal))?;
            Ok(())
        },
        reload,
    )?;
    if g.json {
        print_json(&serde_json::json!({"applied": true, "outcome": outcome}))?;
    } else {
        println!("applied: {} replaced atomically", outcome.live.display());
        if let Some(b) = &outcome.backup {
            println!("previous version kept in {}", b.display());
        }
        match &outcome.hook {
            Some(h) => println!("reload `{}`: {}{}", h.command, if h.success { "ok" } else { "FAILED" }, if h.output.trim().is_empty() { String::new() } else { format!("\n{}", h.output.trim_end()) }),
            None => println!("not reloaded: copy the file to every node, then `corosync-cfgtool -R` (or pass --reload)"),
        }
    }
    Ok(match &outcome.hook {
        Some(h) if !h.success => 1,
        _ => 0,
    })
}
