//! A paste from one node: one or more command outputs, each optionally after its shell prompt line
//! (`# drbdadm status r0`, `$ cat /proc/drbd`, `root@alice:~# drbdadm get-gi r0`,
//! `[root@alice ~]# dmesg | grep drbd`). The prompt's command picks the format (and tells which
//! resource/volume a bare get-gi or role output is about); sections without a prompt are detected.
use super::evidence::{self, Holder, KernelEvent, Mount, Service};
use super::{detect, number_lines, parse_as, Format, Hints, Line, ParseError};
use crate::drbd::state::DrbdState;
use serde::Serialize;

/// Everything read from one node's paste.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Paste {
    #[serde(flatten)]
    pub state: DrbdState,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kernel_log: Vec<KernelEvent>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub holders: Vec<Holder>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Service>,
    /// Section by section: the format read and the prompt line's command, when there was one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sections: Vec<SectionInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SectionInfo {
    pub first_line: usize,
    pub format: Format,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

const COMMANDS: [&str; 18] = [
    "drbdadm", "drbdsetup", "drbdsetup-84", "drbdsetup-9", "drbdmeta", "cat", "sudo", "dmesg", "journalctl", "grep",
    "mount", "fuser", "lsof", "clustat", "crm_mon", "pcs", "tail", "less",
];

/// A prompt line: returns the command after the prompt.
pub fn prompt_command(l: &str) -> Option<&str> {
    let t = l.trim_start();
    // find the first '#' or '$' followed by a space, with no spaces before it (a prompt word)
    let idx = t.find(['#', '$'])?;
    let head = &t[..idx];
    if head.contains(char::is_whitespace) && !(head.starts_with('[') && head.ends_with(']')) {
        return None;
    }
    let cmd = t[idx + 1..].strip_prefix(' ')?.trim();
    let mut words = cmd.split_whitespace();
    let mut first = words.next()?;
    if first == "sudo" {
        first = words.next().unwrap_or("");
    }
    let base = first.rsplit('/').next().unwrap_or(first);
    COMMANDS.contains(&base).then_some(cmd)
}

/// Lines that are paste artifacts, not output: documentation elision `...` and `----` rules.
pub fn is_artifact(l: &str) -> bool {
    let t = l.trim();
    t == "..." || (t.len() >= 4 && t.chars().all(|c| c == '-'))
}

/// The format and hints a command implies.
pub fn command_format(cmd: &str) -> (Option<Format>, Hints) {
    let cmd = cmd.split('|').next().unwrap_or(cmd);
    let words: Vec<&str> = cmd
        .split_whitespace()
        .filter(|w| *w != "sudo")
        .collect();
    let mut hints = Hints::default();
    let prog = words.first().map(|w| w.rsplit('/').next().unwrap_or(w)).unwrap_or("");
    let has = |s: &str| words.contains(&s);
    let args: Vec<&str> = words.iter().skip(1).filter(|w| !w.starts_with('-')).copied().collect();
    let sub = args.first().copied().unwrap_or("");
    let fmt = match prog {
        "cat" | "tail" | "less" | "grep" if cmd.contains("/proc/drbd") => Some(Format::ProcDrbd),
        "cat" | "grep" if cmd.contains("/proc/mounts") => Some(Format::Mounts),
        "cat" | "tail" | "less" | "grep" if cmd.contains("/var/log/") => Some(Format::KernelLog),
        "cat" | "less" if cmd.contains(".conf") || cmd.contains(".res") => Some(Format::Config),
        "dmesg" | "journalctl" => Some(Format::KernelLog),
        "mount" => Some(Format::Mounts),
        "fuser" | "lsof" => Some(Format::Holders),
        "clustat" | "crm_mon" | "pcs" => Some(Format::Clustat),
        "drbdadm" | "drbdsetup" | "drbdsetup-84" | "drbdsetup-9" => {
            hints.command = Some(sub.to_string());
            // resource argument: r0, r0/1, r0:bob
            if let Some(r) = args.get(1) {
                let (r, peer) = match r.split_once(':') {
                    Some((a, b)) => (a, Some(b.to_string())),
                    None => (*r, None),
                };
                let (r, vol) = match r.split_once('/') {
                    Some((a, v)) => (a, v.parse().ok()),
                    None => (r, None),
                };
                if let Ok(minor) = r.parse::<u32>() {
                    hints.minor = Some(minor); // 8.4 drbdsetup takes a minor
                } else if let Some(m) = r.strip_prefix("/dev/drbd").and_then(|m| m.parse().ok()) {
                    hints.minor = Some(m);
                } else if r != "all" {
                    hints.resource = Some(r.to_string());
                }
                hints.volume = vol;
                hints.peer = peer;
                if prog != "drbdadm" && (sub == "get-gi" || sub == "show-gi") {
                    // drbdsetup get-gi RES PEER_NODE_ID VOLUME
                    hints.peer_node_id = args.get(2).and_then(|x| x.parse().ok());
                    hints.volume = args.get(3).and_then(|x| x.parse().ok()).or(hints.volume);
                }
            }
            match sub {
                "status" if has("--json") => Some(Format::StatusJson),
                "status" => Some(Format::Status),
                "show" if has("--json") => Some(Format::ShowJson),
                "show" | "dump" => Some(Format::Config),
                "dump-xml" => Some(Format::ConfigXml),
                "events2" => Some(Format::Events2),
                "get-gi" => Some(Format::GetGi),
                "show-gi" => Some(Format::ShowGi),
                "role" | "cstate" | "dstate" => Some(Format::StateWords),
                _ => None,
            }
        }
        "drbdmeta" => {
            // drbdmeta MINOR v08 DEV internal get-gi
            hints.minor = words.get(1).and_then(|m| m.parse().ok());
            if has("get-gi") {
                Some(Format::GetGi)
            } else if has("show-gi") {
                Some(Format::ShowGi)
            } else {
                None
            }
        }
        _ => None,
    };
    (fmt, hints)
}

/// Parse a paste: split at prompt lines, read each section, merge the DRBD state.
pub fn parse_paste(text: &str) -> Result<Paste, ParseError> {
    let lines = number_lines(text, 1);
    // split into sections
    let mut sections: Vec<(Option<&str>, Vec<Line<'_>>)> = Vec::new();
    let mut cur: (Option<&str>, Vec<Line<'_>>) = (None, Vec::new());
    for &(no, l) in &lines {
        if let Some(cmd) = prompt_command(l) {
            if cur.0.is_some() || cur.1.iter().any(|x| !x.1.trim().is_empty()) {
                sections.push(std::mem::take(&mut cur));
            }
            cur = (Some(cmd), Vec::new());
            continue;
        }
        if is_artifact(l) {
            continue;
        }
        cur.1.push((no, l));
    }
    sections.push(cur);
    let mut out = Paste::default();
    let mut any = false;
    for (cmd, body) in sections {
        let non_blank = body.iter().any(|l| !l.1.trim().is_empty());
        let (fmt, hints) = cmd.map(command_format).unwrap_or_default();
        if !non_blank {
            // a prompt with no output: for fuser/lsof/mount that says "nothing", which is evidence
            if let (Some(f @ (Format::Holders | Format::Mounts)), Some(c)) = (fmt, cmd) {
                out.sections.push(SectionInfo { first_line: body.first().map_or(1, |l| l.0), format: f, command: Some(c.to_string()) });
            }
            continue;
        }
        let fmt = match fmt {
            Some(f) => f,
            None => detect(&body)?,
        };
        let first_line = body.first().map_or(1, |l| l.0);
        out.sections.push(SectionInfo { first_line, format: fmt, command: cmd.map(str::to_string) });
        match fmt {
            Format::KernelLog => out.kernel_log.extend(evidence::parse_kernel_log(&body)),
            Format::Mounts => out.mounts.extend(evidence::parse_mounts(&body)),
            Format::Holders => out.holders.extend(evidence::parse_holders(&body)),
            Format::Clustat => out.services.extend(evidence::parse_services(&body)),
            _ => {
                let st = parse_as(fmt, &body, &hints)?;
                out.state.merge(st);
                any = true;
            }
        }
    }
    if !any && out.sections.is_empty() {
        return Err(ParseError::new(1, lines.first().map_or("", |l| l.1), "empty input: nothing to parse"));
    }
    Ok(out)
}

/// Parse a paste that must hold DRBD state (not only host evidence).
pub fn parse_drbd_paste(text: &str) -> Result<Paste, ParseError> {
    let p = parse_paste(text)?;
    if !p.sections.iter().any(|s| s.format.is_drbd()) {
        let first = p.sections.first().map_or(1, |s| s.first_line);
        let lines = number_lines(text, 1);
        let content = lines.iter().find(|l| l.0 == first).map_or("", |l| l.1);
        return Err(ParseError::new(first, content, "no DRBD state in the input (only host evidence)"));
    }
    Ok(p)
}
