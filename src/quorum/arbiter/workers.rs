//! One arbiter over several processes: `workers = N` in the config (`serve --workers N`).
//!
//! Every client socket is a file descriptor, and a process may hold only `RLIMIT_NOFILE` of them
//! (a hard limit that only CAP_SYS_RESOURCE can raise). Two connections per cluster make that
//! about 10,000 clusters per 20,000 descriptors. With workers, the decisions stay in one place
//! and the sockets are spread:
//!
//! * the main process (the hub) runs the core thread, exactly as in one process, and holds no
//!   client socket;
//! * each worker process (`twonode arbiter worker`, started by the hub with the listening socket
//!   as fd 3 and its end of a `SOCK_SEQPACKET` pair as fd 4) runs the I/O loop
//!   ([`super::reactor`]) on the shared listening socket: it accepts, frames, runs TLS, and passes
//!   every frame to the hub raw, with how long ago its bytes arrived; the hub decodes it and feeds
//!   the core as it would in one process;
//! * connection ids are spread so that id `c` lives in worker `(c - 1) % N`; the hub sends each
//!   worker the commands for its connections.
//!
//! A worker that stops takes its clients' state with it, and the hub could no longer vouch for
//! them: the whole arbiter stops (systemd restarts it; the restart hold keeps that safe).
//! Workers ignore SIGTERM and SIGINT (systemd signals the whole control group, a terminal's
//! Ctrl-C the whole process group): the hub stops them by closing their links, after it has
//! stopped deciding. If the hub itself dies, they are killed with it (`PR_SET_PDEATHSIG`).
//!
//! The link's records, in packets of at most [`PACKET`] bytes (integers big-endian):
//! * worker → hub: `tag u8 | conn u64 | age_ms u32 | ...` with tag 1 connected (`u16` length +
//!   peer address text), 2 frame (`reply u8 | u32` length + the frame's bytes), 3 too long
//!   (`len u32 | max u32`), 4 TLS established (`u16` length + the peer CN, 0xffff = none),
//!   5 closed;
//! * hub → worker: `conn u64 | reply u8 | count u16` then per command `1 | u32 length | bytes`
//!   (send), `2` (start TLS) or `3 | u16 length | reason` (close).
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::sync::mpsc::Sender;
use std::time::Duration;

use anyhow::{bail, Context};

use super::core::{ConnId, Event, Millis};
use super::reactor::{Batch, Clock, ConnCmd, CoreLink, IoHandle, Reactor, ReactorConfig, ToCore};
use super::server::{tls_config, CoreIn, Deliver, LogFormat, TlsFiles};
use super::wire::{Message, WireError};

/// Largest packet on the link (a frame is at most 32 KiB, so every record fits).
const PACKET: usize = 64 * 1024;

/// What a worker needs to know (JSON on its stdin).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WorkerSpec {
    pub index: u64,
    pub count: u64,
    /// TLS files; `None`: TLS off.
    pub tls: Option<TlsFiles>,
    pub handshake_timeout_s: u64,
    /// This worker's share of `max_clients` (0 = no limit).
    pub max_clients: usize,
    pub log_format: LogFormat,
    pub log_level: String,
}

// ---- the link's encoding ----

fn put_str16(out: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(0xfffe)];
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

/// A reader over one packet; every getter fails on a short packet (a broken link).
struct Rd<'a>(&'a [u8]);

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> anyhow::Result<&'a [u8]> {
        if self.0.len() < n {
            bail!("worker link: truncated record");
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> anyhow::Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> anyhow::Result<u16> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into()?))
    }
    fn u32(&mut self) -> anyhow::Result<u32> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into()?))
    }
    fn u64(&mut self) -> anyhow::Result<u64> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into()?))
    }
    fn str16(&mut self) -> anyhow::Result<String> {
        let n = self.u16()? as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
}

/// Append one worker → hub record. `raw`: the frame behind a message or an undecodable frame.
fn encode_up(out: &mut Vec<u8>, m: &ToCore, raw: Option<&[u8]>, now: Millis) {
    let head = |out: &mut Vec<u8>, tag: u8, conn: ConnId, at: Millis| {
        out.push(tag);
        out.extend_from_slice(&conn.to_be_bytes());
        out.extend_from_slice(&(now.saturating_sub(at).min(u32::MAX as u64) as u32).to_be_bytes());
    };
    match m {
        ToCore::Connected { conn, peer } => {
            head(out, 1, *conn, now);
            put_str16(out, &peer.to_string());
        }
        ToCore::Event { ev, reply_to, at } => match (ev, raw) {
            (Event::Message { conn, .. } | Event::BadFrame { conn, .. }, Some(raw)) => {
                head(out, 2, *conn, *at);
                out.push(u8::from(reply_to.is_some()));
                out.extend_from_slice(&(raw.len() as u32).to_be_bytes());
                out.extend_from_slice(raw);
            }
            (Event::BadFrame { conn, error: WireError::TooLong { len, max } }, None) => {
                head(out, 3, *conn, *at);
                out.extend_from_slice(&(*len as u32).to_be_bytes());
                out.extend_from_slice(&(*max as u32).to_be_bytes());
            }
            (Event::TlsEstablished { conn, peer_cn }, _) => {
                head(out, 4, *conn, *at);
                match peer_cn {
                    Some(cn) => put_str16(out, cn),
                    None => out.extend_from_slice(&0xffffu16.to_be_bytes()),
                }
            }
            (Event::ClientClosed { conn }, _) => head(out, 5, *conn, *at),
            // the loop sends every message and bad frame with its bytes, and never a tick
            (Event::Message { .. } | Event::BadFrame { .. } | Event::ClientConnected { .. } | Event::Tick, _) => {
                debug_assert!(false, "not sent over the worker link: {ev:?}");
            }
        },
    }
}

/// Decode one packet of worker → hub records into core input (times on the hub's clock).
fn decode_up(packet: &[u8], now: Millis) -> anyhow::Result<Vec<ToCore>> {
    let mut r = Rd(packet);
    let mut v = Vec::new();
    while !r.0.is_empty() {
        let tag = r.u8()?;
        let conn = r.u64()?;
        let at = now.saturating_sub(r.u32()? as u64);
        let ev = |ev: Event| ToCore::Event { ev, reply_to: None, at };
        v.push(match tag {
            1 => {
                let peer = r.str16()?;
                ToCore::Connected { conn, peer: peer.parse().with_context(|| format!("worker link: peer address {peer:?}"))? }
            }
            2 => {
                let reply = r.u8()? == 1;
                let n = r.u32()? as usize;
                let raw = r.take(n)?;
                let ev = match Message::decode(raw) {
                    Ok(msg) => Event::Message { conn, msg },
                    Err(error) => Event::BadFrame { conn, error },
                };
                ToCore::Event { ev, reply_to: reply.then_some(conn), at }
            }
            3 => {
                let (len, max) = (r.u32()? as usize, r.u32()? as usize);
                ev(Event::BadFrame { conn, error: WireError::TooLong { len, max } })
            }
            4 => {
                let n = r.u16()?;
                let peer_cn = if n == 0xffff { None } else { Some(String::from_utf8_lossy(r.take(n as usize)?).into_owned()) };
                ev(Event::TlsEstablished { conn, peer_cn })
            }
            5 => ev(Event::ClientClosed { conn }),
            t => bail!("worker link: unknown record type {t}"),
        });
    }
    Ok(v)
}

fn encode_down(out: &mut Vec<u8>, conn: ConnId, b: &Batch) {
    out.extend_from_slice(&conn.to_be_bytes());
    out.push(u8::from(b.reply));
    out.extend_from_slice(&(b.cmds.len().min(u16::MAX as usize) as u16).to_be_bytes());
    for c in b.cmds.iter().take(u16::MAX as usize) {
        match c {
            ConnCmd::Send(bytes) => {
                out.push(1);
                out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                out.extend_from_slice(bytes);
            }
            ConnCmd::StartTls => out.push(2),
            ConnCmd::Close(reason) => {
                out.push(3);
                put_str16(out, reason);
            }
        }
    }
}

fn decode_down(packet: &[u8]) -> anyhow::Result<Vec<(ConnId, Batch)>> {
    let mut r = Rd(packet);
    let mut v = Vec::new();
    while !r.0.is_empty() {
        let conn = r.u64()?;
        let reply = r.u8()? == 1;
        let n = r.u16()?;
        let mut cmds = Vec::with_capacity(n as usize);
        for _ in 0..n {
            cmds.push(match r.u8()? {
                1 => {
                    let len = r.u32()? as usize;
                    ConnCmd::Send(r.take(len)?.to_vec())
                }
                2 => ConnCmd::StartTls,
                3 => ConnCmd::Close(r.str16()?),
                t => bail!("worker link: unknown command type {t}"),
            });
        }
        v.push((conn, Batch { cmds, reply }));
    }
    Ok(v)
}

/// Send `buf` as packets of whole records, cut where `ends` says records end.
fn send_records(sock: &UnixDatagram, buf: &[u8], ends: &[usize]) -> std::io::Result<()> {
    let mut start = 0;
    let mut last = 0;
    for &e in ends {
        if e - start > PACKET && last > start {
            sock.send(&buf[start..last])?;
            start = last;
        }
        last = e;
    }
    if last > start {
        sock.send(&buf[start..last])?;
    }
    Ok(())
}

/// A `SOCK_SEQPACKET` pair (message boundaries kept, end of stream seen), as std sockets: their
/// `send`/`recv` are the plain calls that a seqpacket socket takes.
fn seqpacket_pair() -> anyhow::Result<(UnixDatagram, UnixDatagram)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).context("socketpair")?;
    Ok((UnixDatagram::from(a), UnixDatagram::from(b)))
}

// ---- the hub (main process) ----

/// The hub's way to its workers: each batch goes to the worker that holds its connection.
pub(super) struct HubOut {
    socks: Vec<UnixDatagram>,
    bufs: Vec<(Vec<u8>, Vec<usize>)>,
}

impl Deliver for HubOut {
    fn deliver(&mut self, batches: Vec<(ConnId, Batch)>) {
        let n = self.socks.len() as u64;
        for (conn, b) in batches {
            let w = ((conn.max(1) - 1) % n) as usize;
            let (buf, ends) = &mut self.bufs[w];
            encode_down(buf, conn, &b);
            ends.push(buf.len());
        }
    }
    fn flush(&mut self) {
        for (w, (buf, ends)) in self.bufs.iter_mut().enumerate() {
            if buf.is_empty() {
                continue;
            }
            if let Err(e) = send_records(&self.socks[w], buf, ends) {
                tracing::error!(worker = w, error = %e, "cannot reach an I/O worker");
            }
            buf.clear();
            ends.clear();
            if buf.capacity() > PACKET * 4 {
                *buf = Vec::new(); // a burst is over: give its memory back
            }
        }
    }
}

impl Drop for HubOut {
    fn drop(&mut self) {
        // the workers see the end of the link, close their clients and exit
        for s in &self.socks {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// The running workers.
pub(super) struct Workers {
    children: Vec<std::process::Child>,
}

impl Workers {
    /// Start `count` workers on `listener`; each one's records go to `core` (on `clock`); a
    /// worker's end is reported on `gone`.
    pub fn start(
        listener: std::net::TcpListener,
        count: usize,
        spec: impl Fn(u64) -> WorkerSpec,
        core: Sender<CoreIn>,
        clock: Clock,
        gone: tokio::sync::mpsc::UnboundedSender<Option<String>>,
    ) -> anyhow::Result<(Workers, HubOut)> {
        let exe = std::env::current_exe().context("finding this program to start the I/O workers")?;
        // a worker is `twonode arbiter worker`: an embedding program (a test harness) would run
        // itself with those arguments
        if exe.file_name().and_then(|n| n.to_str()) != Some("twonode") {
            bail!("workers = {count} needs the twonode program itself (this process is {}); use workers = 0", exe.display());
        }
        let mut children = Vec::new();
        let mut socks = Vec::new();
        // kept above the standard descriptors, so that moving them to 3 and 4 cannot clobber one another
        let listen_fd = nix::fcntl::fcntl(listener.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10)).context("dup")?;
        // SAFETY: fcntl returned a new descriptor that nothing else owns.
        let listen_fd = unsafe { OwnedFd::from_raw_fd(listen_fd) };
        drop(listener);
        for i in 0..count as u64 {
            let (hub, worker) = seqpacket_pair()?;
            let worker_fd = nix::fcntl::fcntl(worker.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10)).context("dup")?;
            // SAFETY: as above.
            let worker_fd = unsafe { OwnedFd::from_raw_fd(worker_fd) };
            drop(worker);
            let (lfd, wfd) = (listen_fd.as_raw_fd(), worker_fd.as_raw_fd());
            let mut cmd = std::process::Command::new(&exe);
            cmd.args(["arbiter", "worker"]).stdin(std::process::Stdio::piped());
            // SAFETY: only async-signal-safe calls (dup2, prctl) between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    nix::unistd::dup2(lfd, 3)?;
                    nix::unistd::dup2(wfd, 4)?;
                    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
                    Ok(())
                });
            }
            let mut child = cmd.spawn().with_context(|| format!("starting I/O worker {i} ({})", exe.display()))?;
            let json = serde_json::to_vec(&spec(i))?;
            let mut stdin = child.stdin.take().context("worker stdin")?;
            stdin.write_all(&json).context("sending a worker its settings")?;
            drop(stdin);
            drop(worker_fd);
            let rx = hub.try_clone()?;
            let (core, gone, pid) = (core.clone(), gone.clone(), child.id());
            std::thread::Builder::new().name(format!("arbiter-hub-{i}")).spawn(move || {
                let mut buf = vec![0u8; PACKET + 4096];
                let why = loop {
                    match rx.recv(&mut buf) {
                        Ok(0) => break "its link closed (the process ended: see its last log lines)".to_string(),
                        Ok(n) => match decode_up(&buf[..n], clock.now()) {
                            Ok(v) => {
                                if core.send(CoreIn::IoBatch(v)).is_err() {
                                    return;
                                }
                            }
                            Err(e) => break format!("{e:#}"),
                        },
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => break e.to_string(),
                    }
                };
                let _ = gone.send(Some(format!("I/O worker {i} (pid {pid}) stopped: {why}")));
            })?;
            children.push(child);
            socks.push(hub);
        }
        let bufs = (0..count).map(|_| (Vec::new(), Vec::new())).collect();
        Ok((Workers { children }, HubOut { socks, bufs }))
    }

    /// Wait up to `grace` for every worker to exit, then kill the rest.
    pub fn reap(mut self, grace: Duration) {
        let deadline = std::time::Instant::now() + grace;
        for c in &mut self.children {
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if std::time::Instant::now() >= deadline => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }
}

// ---- a worker process ----

/// A worker's way to the hub: records gathered during one turn of the loop, sent at its end.
struct Uplink {
    sock: UnixDatagram,
    buf: Vec<u8>,
    ends: Vec<usize>,
    clock: Clock,
}

impl CoreLink for Uplink {
    fn send(&mut self, m: ToCore) -> bool {
        self.send_frame(m, None)
    }
    fn send_frame(&mut self, m: ToCore, raw: Option<&[u8]>) -> bool {
        encode_up(&mut self.buf, &m, raw, self.clock.now());
        self.ends.push(self.buf.len());
        true
    }
    fn flush(&mut self) -> bool {
        if self.buf.is_empty() {
            return true;
        }
        let ok = send_records(&self.sock, &self.buf, &self.ends).is_ok();
        self.buf.clear();
        self.ends.clear();
        if self.buf.capacity() > PACKET * 4 {
            self.buf = Vec::new(); // a burst is over: give its memory back
        }
        ok
    }
}

/// `twonode arbiter worker`: run one I/O worker (started by the hub; settings on stdin, the
/// listening socket on fd 3, the link on fd 4).
pub fn run_worker() -> anyhow::Result<()> {
    use nix::sys::signal::{signal, SigHandler, Signal};
    for s in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: setting a signal to "ignore" installs no handler code.
        unsafe { signal(s, SigHandler::SigIgn) }.context("ignoring SIGTERM/SIGINT")?;
    }
    let mut text = Vec::new();
    std::io::stdin().read_to_end(&mut text).context("reading the worker settings")?;
    let spec: WorkerSpec = serde_json::from_slice(&text).context("worker settings (this command is started by `arbiter serve --workers`)")?;
    super::server::init_logging(spec.log_format, &spec.log_level);
    // SAFETY: the hub put the listening socket on fd 3 and the link on fd 4 for this process.
    let (listener, link) = unsafe { (std::net::TcpListener::from_raw_fd(3), UnixDatagram::from_raw_fd(4)) };
    let tls = match &spec.tls {
        Some(t) => Some(tls_config(t)?),
        None => None,
    };
    let clock = Clock(std::time::Instant::now());
    let (reactor, io) = Reactor::new(listener, ReactorConfig {
        tls,
        handshake_timeout: Duration::from_secs(spec.handshake_timeout_s.max(1)),
        max_clients: spec.max_clients,
        clock,
        first_id: spec.index + 1,
        id_step: spec.count,
    })?;
    let rx = link.try_clone()?;
    let down = io.clone();
    std::thread::Builder::new().name("arbiter-link".into()).spawn(move || {
        let mut buf = vec![0u8; PACKET + 4096];
        loop {
            match rx.recv(&mut buf) {
                Ok(0) => break,
                Ok(n) => match decode_down(&buf[..n]) {
                    Ok(b) => IoHandle::deliver(&down, b),
                    Err(e) => {
                        tracing::error!(error = %e, "bad packet from the hub; stopping");
                        break;
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        down.stop();
    })?;
    let mut up = Uplink { sock: link, buf: Vec::new(), ends: Vec::new(), clock };
    reactor.run(&mut up)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn records_cross_the_link_unchanged() {
        let raw = Message::EchoRequest { seq: Some(9) }.encode().unwrap();
        let peer: SocketAddr = "127.0.0.2:4000".parse().unwrap();
        let ups = [
            (ToCore::Connected { conn: 7, peer }, None),
            (ToCore::Event { ev: Event::Message { conn: 7, msg: Message::decode(&raw).unwrap() }, reply_to: Some(7), at: 90 }, Some(&raw[..])),
            (ToCore::Event { ev: Event::BadFrame { conn: 7, error: WireError::TooLong { len: 99999, max: 32768 } }, reply_to: None, at: 95 }, None),
            (ToCore::Event { ev: Event::TlsEstablished { conn: 7, peer_cn: Some("c1".into()) }, reply_to: None, at: 100 }, None),
            (ToCore::Event { ev: Event::TlsEstablished { conn: 7, peer_cn: None }, reply_to: None, at: 100 }, None),
            (ToCore::Event { ev: Event::ClientClosed { conn: 7 }, reply_to: None, at: 100 }, None),
        ];
        let mut buf = Vec::new();
        for (m, raw) in &ups {
            encode_up(&mut buf, m, *raw, 100);
        }
        // the hub's clock runs 1000 ms ahead of the worker's: ages carry over, clocks do not
        let got = decode_up(&buf, 1100).unwrap();
        let text = format!("{got:?}");
        assert!(text.contains("Connected { conn: 7, peer: 127.0.0.2:4000 }"), "{text}");
        assert!(matches!(&got[1], ToCore::Event { ev: Event::Message { conn: 7, .. }, reply_to: Some(7), at: 1090 }), "{text}");
        assert!(matches!(&got[2], ToCore::Event { ev: Event::BadFrame { error: WireError::TooLong { len: 99999, .. }, .. }, at: 1095, .. }));
        assert!(text.contains("peer_cn: Some(\"c1\")") && text.contains("peer_cn: None"), "{text}");
        assert!(matches!(&got[5], ToCore::Event { ev: Event::ClientClosed { conn: 7 }, at: 1100, .. }));
        assert!(decode_up(&buf[..buf.len() - 3], 0).is_err(), "a truncated packet is an error");

        let down = vec![
            (3, Batch { cmds: vec![ConnCmd::Send(vec![1, 2, 3]), ConnCmd::StartTls, ConnCmd::Close("bye".into())], reply: true }),
            (5, Batch { cmds: vec![], reply: false }),
        ];
        let mut buf = Vec::new();
        for (c, b) in &down {
            encode_down(&mut buf, *c, b);
        }
        assert_eq!(format!("{:?}", decode_down(&buf).unwrap()), format!("{down:?}"));
    }

    #[test]
    fn packets_hold_whole_records() {
        let (a, b) = seqpacket_pair().unwrap();
        let mut buf = Vec::new();
        let mut ends = Vec::new();
        for i in 0..40u64 {
            encode_down(&mut buf, i, &Batch { cmds: vec![ConnCmd::Send(vec![7; 4000])], reply: false });
            ends.push(buf.len());
        }
        send_records(&a, &buf, &ends).unwrap();
        drop(a);
        let mut got = Vec::new();
        let mut p = vec![0u8; PACKET + 4096];
        loop {
            let n = b.recv(&mut p).unwrap();
            if n == 0 {
                break;
            }
            assert!(n <= PACKET);
            got.extend(decode_down(&p[..n]).unwrap());
        }
        assert_eq!(got.len(), 40);
        assert_eq!(got[39].0, 39);
    }
}
