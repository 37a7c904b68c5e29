//! The CIB for the pacemaker checks: a file, `cibadmin -Q` on the first node that answers
//! (`--cib live`, through the nodes' [`Host`]s, local or SSH), or, without `--cib`, `cibadmin -Q`
//! on this machine when it is installed and answers. Then the CIB's fence devices are asked for
//! their status through the same path as cluster.conf's ([`super::fence::check_devices`]).
use crate::doctor::facts::pacemaker::PacemakerFacts;
use crate::host::Host;
use crate::pacemaker::source;
use indicatif::ProgressBar;

/// Which CIB doctor reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CibRequest {
    /// `--cib FILE`.
    File(String),
    /// `--cib live`: `cibadmin -Q` on the nodes.
    Live,
    /// No `--cib`: `cibadmin -Q` here, when installed and answering; else no pacemaker checks.
    Auto,
}

impl CibRequest {
    pub fn from_arg(arg: Option<&str>) -> CibRequest {
        match arg {
            None => CibRequest::Auto,
            Some("live") => CibRequest::Live,
            Some(f) => CibRequest::File(f.to_string()),
        }
    }
}

fn read(hosts: &mut [Box<dyn Host>], req: &CibRequest) -> Option<Result<(String, String), String>> {
    match req {
        CibRequest::File(f) => Some(source::read(f, None).map_err(|e| e.message)),
        CibRequest::Auto => {
            if !source::cibadmin_installed() {
                return None;
            }
            source::read("live", None).ok().map(Ok)
        }
        CibRequest::Live => {
            let mut errors = Vec::new();
            for h in hosts.iter_mut() {
                match source::query(h.as_mut()) {
                    Ok(x) => return Some(Ok(x)),
                    Err(e) => errors.push(e.message),
                }
            }
            if errors.is_empty() {
                errors.push("no node to run `cibadmin -Q` on".into());
            }
            Some(Err(errors.join("; ")))
        }
    }
}

/// The pacemaker facts (None: no CIB asked for, and none found here).
pub fn gather(hosts: &mut [Box<dyn Host>], req: &CibRequest, fence: bool, bar: &ProgressBar) -> Option<PacemakerFacts> {
    bar.set_message("pacemaker CIB");
    let (source, text) = match read(hosts, req)? {
        Ok(x) => x,
        Err(e) => return Some(PacemakerFacts { source: String::new(), error: Some(e), ..Default::default() }),
    };
    let mut f = PacemakerFacts { source: source.clone(), ..Default::default() };
    match crate::pacemaker::parse(&text) {
        Err(e) => f.error = Some(format!("{source}:{e}")),
        Ok(cib) => {
            if fence {
                let (targets, notes) = crate::pacemaker::fence::test_targets(&cib);
                f.device_checks = Some(super::fence::check_devices(&targets, bar));
                f.not_tested = notes;
            }
            f.cib = Some(cib);
        }
    }
    Some(f)
}
