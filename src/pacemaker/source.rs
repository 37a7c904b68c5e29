//! Where a CIB comes from: a file (`cibadmin -Q > cib.xml`, a crm_report's cib.xml) or `live`:
//! `cibadmin -Q` run on a node through [`crate::host::Host`] (this machine, or a cluster node over
//! SSH with the project's one SSH client). The thin I/O in front of the pure [`super::parse`].
use super::cib::{self, Cib};
use crate::host::Host;

/// A CIB could not be had: `code` 2 (input unreadable) is what the commands exit with.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    pub message: String,
}

fn e(message: String) -> SourceError {
    SourceError { message }
}

/// `cibadmin -Q` on `host`: (a name for messages, the XML text).
pub fn query(host: &mut dyn Host) -> Result<(String, String), SourceError> {
    let name = host.name().to_string();
    let shown = if name == "local" { "cibadmin -Q".to_string() } else { format!("cibadmin -Q on {name}") };
    let out = host.run(&["cibadmin", "-Q"], None).map_err(|x| {
        e(format!("cannot run `{shown}` ({x:#}): is pacemaker-cli-utils installed there? Or save a CIB with `cibadmin -Q > cib.xml` and give --cib cib.xml"))
    })?;
    if !out.success() {
        return Err(e(format!(
            "`{shown}` failed (exit {}): {} (is pacemaker running there? save a CIB elsewhere with `cibadmin -Q > cib.xml` and give --cib cib.xml)",
            out.status,
            out.stderr_str().trim()
        )));
    }
    Ok((shown, out.stdout_str()))
}

/// The text of `spec`: `live` through `host` (this machine when None), else a file.
pub fn read(spec: &str, host: Option<&mut dyn Host>) -> Result<(String, String), SourceError> {
    if spec == "live" {
        return match host {
            Some(h) => query(h),
            None => query(&mut crate::host::Local::new("local")),
        };
    }
    let bytes = std::fs::read(spec).map_err(|x| e(format!("cannot read {spec}: {x} (save a CIB with `cibadmin -Q > cib.xml`, or give --cib live)")))?;
    let text = String::from_utf8(bytes).map_err(|_| e(format!("{spec}: not UTF-8 text")))?;
    Ok((spec.to_string(), text))
}

/// Read and parse: (name, model).
pub fn load(spec: &str, host: Option<&mut dyn Host>) -> Result<(String, Cib), SourceError> {
    let (name, text) = read(spec, host)?;
    let cib = cib::parse(&text).map_err(|x| e(format!("{name}:{x}")))?;
    Ok((name, cib))
}

/// Whether `cibadmin` is installed here (doctor then reads the live CIB without being asked).
pub fn cibadmin_installed() -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).chain(["/usr/sbin".into(), "/usr/bin".into()]).any(|d: std::path::PathBuf| d.join("cibadmin").is_file())
}
