//! The arbiter's I/O loop: one thread, one `epoll` (mio), every client socket in a slab.
//!
//! It replaces one tokio task per connection. At 20,000 connections a task, its I/O registration,
//! its context and its mailbox cost about 820 bytes each; here a connection is one [`Conn`] in a
//! slab (about 150 bytes) plus its buffers while it has bytes in flight, and readiness lives in
//! the kernel's epoll set. corosync-qnetd is built the same way (one poll loop, a small struct per
//! client).
//!
//! What the loop does, per connection:
//! * `u16 type | u32 length` framing with the 32 KiB cap: a longer message is reported to the core
//!   as `BadFrame(TooLong)` and its bytes are skipped without being buffered;
//! * every complete frame goes to the core (through a [`CoreLink`]) with the time its bytes
//!   arrived, so time spent in the core's queue never counts as client silence;
//! * after a STARTTLS it reads nothing more until the core answers; on `StartTls` it runs the TLS
//!   server handshake (non-blocking OpenSSL) on the same socket, handing it the bytes that the
//!   client sent after STARTTLS, under the handshake timeout;
//! * the core's commands for a socket run in order: bytes are written out before a later close or
//!   handshake starts.
//!
//! The core (decisions) runs elsewhere: on another thread of this process (see `server.rs`), or
//! in another process (see `workers.rs`). The loop reaches it only through [`CoreLink`] and gets
//! its answers through an [`IoHandle`].
use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use openssl::ssl::{HandshakeError, MidHandshakeSslStream, Ssl, SslAcceptor, SslStream};

use super::core::{ConnId, Event, Millis};
use super::wire::{self, Message};

const LISTENER: Token = Token(usize::MAX);
const WAKER: Token = Token(usize::MAX - 1);

/// The process's monotonic clock in the core's milliseconds.
#[derive(Clone, Copy)]
pub(super) struct Clock(pub Instant);

impl Clock {
    pub fn now(self) -> Millis {
        self.0.elapsed().as_millis() as Millis
    }
}

/// What the I/O loop tells the core.
#[derive(Debug)]
pub(super) enum ToCore {
    Connected { conn: ConnId, peer: SocketAddr },
    /// `at`: when the bytes behind this event arrived (ms on the core's clock).
    Event { ev: Event, reply_to: Option<ConnId>, at: Millis },
}

/// The I/O loop's way to the core. `false`: the core is gone (the loop stops).
pub(super) trait CoreLink {
    fn send(&mut self, m: ToCore) -> bool;
    /// A message or an undecodable frame, with the frame's bytes (a link to another process
    /// passes those instead of the decoded message).
    fn send_frame(&mut self, m: ToCore, _raw: Option<&[u8]>) -> bool {
        self.send(m)
    }
    /// The end of one turn of the loop: send what was gathered.
    fn flush(&mut self) -> bool {
        true
    }
}

/// What the core tells one connection (all actions of one event for that socket, in order).
#[derive(Debug)]
pub(super) enum ConnCmd {
    Send(Vec<u8>),
    StartTls,
    Close(String),
}

/// All commands of one core event for one socket.
#[derive(Debug)]
pub(super) struct Batch {
    pub cmds: Vec<ConnCmd>,
    /// This batch answers an event the connection waits on (STARTTLS).
    pub reply: bool,
}

/// The core's end of the loop: batches for connections, and the stop request. Shared by the core
/// thread (or the worker link) and the loop.
pub(super) struct IoHandle {
    batches: Mutex<Vec<(ConnId, Batch)>>,
    stop: AtomicBool,
    waker: Waker,
}

impl IoHandle {
    /// Queue batches for the loop; wakes it only when it has nothing queued yet (a wake is
    /// pending otherwise), so a burst of decisions costs one wake-up.
    pub fn deliver(&self, mut b: Vec<(ConnId, Batch)>) {
        if b.is_empty() {
            return;
        }
        let was_empty = {
            let mut q = self.batches.lock().unwrap_or_else(|e| e.into_inner());
            let was_empty = q.is_empty();
            if was_empty {
                std::mem::swap(&mut *q, &mut b);
            } else {
                q.append(&mut b);
            }
            was_empty
        };
        if was_empty {
            let _ = self.waker.wake();
        }
    }

    /// Ask the loop to close every client and return.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }
}

/// A stream that first yields already-read bytes (what the client sent right after STARTTLS).
struct Rewind {
    pre: Vec<u8>,
    pos: usize,
    inner: TcpStream,
}

impl Read for Rewind {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos < self.pre.len() {
            let n = (self.pre.len() - self.pos).min(buf.len());
            buf[..n].copy_from_slice(&self.pre[self.pos..self.pos + n]);
            self.pos += n;
            if self.pos == self.pre.len() {
                self.pre = Vec::new();
                self.pos = 0;
            }
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

impl Write for Rewind {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A connection's socket in each of its lives.
enum Io {
    Plain(TcpStream),
    /// TLS handshake under way (its deadline is in [`Reactor::handshakes`]).
    Handshake(Box<MidHandshakeSslStream<Rewind>>),
    Tls(Box<SslStream<Rewind>>),
    /// Between two lives (only while a method moves the socket).
    Gone,
}

fn would_block() -> std::io::Error {
    std::io::ErrorKind::WouldBlock.into()
}

impl Io {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Io::Plain(s) => s.read(buf),
            Io::Tls(s) => s.read(buf),
            Io::Handshake(_) | Io::Gone => Err(would_block()),
        }
    }
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Io::Plain(s) => s.write(buf),
            Io::Tls(s) => s.write(buf),
            Io::Handshake(_) | Io::Gone => Err(would_block()),
        }
    }
    /// Best effort: TLS close_notify, then the TCP write side.
    fn shutdown(&mut self) {
        match self {
            Io::Plain(s) => {
                let _ = s.shutdown(std::net::Shutdown::Write);
            }
            Io::Tls(s) => {
                let _ = s.shutdown();
                let _ = s.get_ref().inner.shutdown(std::net::Shutdown::Write);
            }
            Io::Handshake(_) | Io::Gone => {}
        }
    }
}

/// One client connection.
struct Conn {
    id: ConnId,
    peer: SocketAddr,
    io: Io,
    /// Bytes read and not yet a complete frame (empty, without capacity, while idle).
    buf: Vec<u8>,
    /// Bytes of an oversized frame still to be skipped.
    skip: usize,
    /// Bytes the socket did not take yet.
    out: Vec<u8>,
    /// Commands waiting for `out` to drain: they run in order after the bytes before them.
    later: VecDeque<ConnCmd>,
    /// Arrival time of the bytes in `buf`.
    arrived: Millis,
    /// A STARTTLS went to the core: read nothing until its answer.
    paused: bool,
}

/// The I/O loop.
pub(super) struct Reactor {
    poll: Poll,
    listener: TcpListener,
    handle: Arc<IoHandle>,
    conns: slab::Slab<Conn>,
    ids: HashMap<ConnId, usize>,
    /// Connection ids: `next_id`, then `next_id + id_step`, ...
    next_id: ConnId,
    id_step: ConnId,
    tls: Option<Arc<SslAcceptor>>,
    handshake_timeout: Duration,
    /// Handshakes under way: their deadlines (checked each turn; entries of finished ones are dropped).
    handshakes: Vec<(Instant, ConnId)>,
    max_clients: usize,
    clock: Clock,
    scratch: Vec<u8>,
    /// An accept failed (out of descriptors?): try again at this time.
    accept_retry: Option<Instant>,
    /// Accepts fail (logged once, until one succeeds again).
    accept_failing: bool,
}

/// How a connection ended, for [`Reactor::remove`].
#[derive(PartialEq)]
enum Ended {
    /// The core asked for it (or it is shutting down): the core knows.
    ByCore,
    /// The peer, an I/O error or a timeout: tell the core.
    Tell,
}

/// Settings of one I/O loop.
pub(super) struct ReactorConfig {
    pub tls: Option<Arc<SslAcceptor>>,
    pub handshake_timeout: Duration,
    pub max_clients: usize,
    pub clock: Clock,
    /// First connection id and the step between two (several loops share one core).
    pub first_id: ConnId,
    pub id_step: ConnId,
}

impl Reactor {
    /// A loop serving `listener` (already bound and listening), and the handle to reach it.
    pub fn new(listener: std::net::TcpListener, cfg: ReactorConfig) -> std::io::Result<(Reactor, Arc<IoHandle>)> {
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let handle = Arc::new(IoHandle { batches: Mutex::new(Vec::new()), stop: AtomicBool::new(false), waker });
        let r = Reactor {
            poll,
            listener,
            handle: handle.clone(),
            conns: slab::Slab::new(),
            ids: HashMap::new(),
            next_id: cfg.first_id.max(1),
            id_step: cfg.id_step.max(1),
            tls: cfg.tls,
            handshake_timeout: cfg.handshake_timeout,
            handshakes: Vec::new(),
            max_clients: cfg.max_clients,
            clock: cfg.clock,
            scratch: vec![0; 64 * 1024],
            accept_retry: None,
            accept_failing: false,
        };
        Ok((r, handle))
    }

    /// Serve until [`IoHandle::stop`] (every client is then closed) or until the core is gone.
    pub fn run(mut self, core: &mut impl CoreLink) -> std::io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.next_deadline().map(|t| t.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => {
                        if !self.accept_all(core) {
                            return Ok(());
                        }
                    }
                    WAKER => {}
                    Token(key) => {
                        let handshaking = self.conns.get(key).is_some_and(|c| matches!(c.io, Io::Handshake(_)));
                        if handshaking {
                            // a handshake may wait to read or to write: either readiness moves it
                            self.handshake(key, core);
                            continue;
                        }
                        if ev.is_writable() {
                            self.run_cmds(key, core);
                        }
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.readable(key, core);
                        }
                    }
                }
            }
            let batches = std::mem::take(&mut *self.handle.batches.lock().unwrap_or_else(|e| e.into_inner()));
            for (id, b) in batches {
                self.exec(id, b, core);
            }
            if self.handle.stop.load(Ordering::SeqCst) {
                self.close_all("arbiter shutting down");
                return Ok(());
            }
            self.check_timers(core);
            if !core.flush() {
                tracing::error!("the core is gone; closing every client");
                self.close_all("arbiter stopping");
                return Ok(());
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let hs = self.handshakes.iter().map(|(t, _)| *t).min();
        match (hs, self.accept_retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn check_timers(&mut self, core: &mut impl CoreLink) {
        let now = Instant::now();
        if self.accept_retry.is_some_and(|t| t <= now) {
            self.accept_retry = None;
            if !self.accept_all(core) {
                self.handle.stop();
            }
        }
        if self.handshakes.is_empty() {
            return;
        }
        let conns = &self.conns;
        let ids = &self.ids;
        let handshaking = |id: &ConnId| ids.get(id).and_then(|k| conns.get(*k)).is_some_and(|c| matches!(c.io, Io::Handshake(_)));
        // finished handshakes leave the list; those past their deadline leave it to be closed
        let mut due = Vec::new();
        self.handshakes.retain(|&(t, id)| {
            if !handshaking(&id) {
                return false;
            }
            if t <= now {
                due.push(id);
                return false;
            }
            true
        });
        for id in due {
            if let Some(&key) = self.ids.get(&id) {
                tracing::warn!(conn = id, peer = %self.conns[key].peer, "TLS handshake timed out; closing");
                self.remove(key, Ended::Tell, core);
            }
        }
    }

    /// Accept every pending connection; `false` when the core is gone.
    fn accept_all(&mut self, core: &mut impl CoreLink) -> bool {
        loop {
            let (mut sock, peer) = match self.listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // out of descriptors, typically: the client waits in the backlog; try again soon
                    if !self.accept_failing {
                        tracing::warn!(error = %e, clients = self.conns.len(),
                            "accept failed (out of file descriptors? raise LimitNOFILE or set workers = N); retrying every 50 ms");
                        self.accept_failing = true;
                    }
                    self.accept_retry = Some(Instant::now() + Duration::from_millis(50));
                    return true;
                }
            };
            if self.accept_failing {
                tracing::info!(clients = self.conns.len(), "accepting connections again");
                self.accept_failing = false;
            }
            if self.max_clients > 0 && self.conns.len() >= self.max_clients {
                tracing::warn!(%peer, max_clients = self.max_clients, "connection refused: too many clients");
                continue;
            }
            let _ = sock.set_nodelay(true);
            let entry = self.conns.vacant_entry();
            let key = entry.key();
            if let Err(e) = self.poll.registry().register(&mut sock, Token(key), Interest::READABLE | Interest::WRITABLE) {
                tracing::warn!(%peer, error = %e, "cannot watch a new connection; closed");
                continue;
            }
            let id = self.next_id;
            self.next_id += self.id_step;
            entry.insert(Conn {
                id,
                peer,
                io: Io::Plain(sock),
                buf: Vec::new(),
                skip: 0,
                out: Vec::new(),
                later: VecDeque::new(),
                arrived: 0,
                paused: false,
            });
            self.ids.insert(id, key);
            if !core.send(ToCore::Connected { conn: id, peer }) {
                return false;
            }
        }
    }

    /// Forget a connection (its socket closes when dropped).
    fn remove(&mut self, key: usize, how: Ended, core: &mut impl CoreLink) {
        let Some(c) = self.conns.try_remove(key) else { return };
        self.ids.remove(&c.id);
        if how == Ended::Tell {
            core.send(ToCore::Event { ev: Event::ClientClosed { conn: c.id }, reply_to: None, at: self.clock.now() });
        }
    }

    fn close_all(&mut self, reason: &str) {
        for (_, c) in self.conns.iter_mut() {
            tracing::info!(conn = c.id, peer = %c.peer, %reason, "closing connection");
            c.io.shutdown();
        }
        self.conns.clear();
        self.ids.clear();
    }

    /// Read everything the socket has (edge-triggered readiness) and hand the frames to the core.
    fn readable(&mut self, key: usize, core: &mut impl CoreLink) {
        loop {
            let Some(c) = self.conns.get_mut(key) else { return };
            if c.paused {
                return;
            }
            if matches!(c.io, Io::Handshake(_)) {
                self.handshake(key, core);
                return;
            }
            let got = c.io.read(&mut self.scratch);
            match got {
                Ok(0) => {
                    self.remove(key, Ended::Tell, core);
                    return;
                }
                Ok(n) => {
                    c.buf.extend_from_slice(&self.scratch[..n]);
                    c.arrived = self.clock.now();
                    let plain = matches!(c.io, Io::Plain(_));
                    match deliver(c.id, c.peer, &mut c.buf, &mut c.skip, plain, core, c.arrived) {
                        Delivered::All => {}
                        Delivered::StartTls => c.paused = true,
                        Delivered::CoreGone => {
                            self.handle.stop();
                            return;
                        }
                    }
                    if c.buf.is_empty() && c.buf.capacity() > 0 {
                        c.buf = Vec::new(); // every frame handled: hold no memory while idle
                    }
                    // never hold more than one capped frame plus a read's worth
                    if c.skip == 0 && c.buf.len() > wire::MAX_MSG_SIZE + 65536 {
                        tracing::warn!(conn = c.id, peer = %c.peer, "receive buffer overflow; closing");
                        self.remove(key, Ended::Tell, core);
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::info!(conn = c.id, peer = %c.peer, error = %e, "read failed");
                    self.remove(key, Ended::Tell, core);
                    return;
                }
            }
        }
    }

    /// A batch from the core for connection `id` (gone already: nothing to do).
    fn exec(&mut self, id: ConnId, b: Batch, core: &mut impl CoreLink) {
        let Some(&key) = self.ids.get(&id) else { return };
        let c = &mut self.conns[key];
        c.later.extend(b.cmds);
        if b.reply {
            c.paused = false;
        }
        self.run_cmds(key, core);
        if b.reply {
            // bytes may already wait in the socket: no new readiness edge will announce them
            self.readable(key, core);
        }
    }

    /// Write out what is pending, then run the queued commands in order, as far as the socket
    /// takes bytes.
    fn run_cmds(&mut self, key: usize, core: &mut impl CoreLink) {
        loop {
            let Some(c) = self.conns.get_mut(key) else { return };
            while !c.out.is_empty() {
                match c.io.write(&c.out) {
                    Ok(n) => {
                        c.out.drain(..n);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        tracing::info!(conn = c.id, peer = %c.peer, error = %e, "write failed");
                        self.remove(key, Ended::Tell, core);
                        return;
                    }
                }
            }
            if c.out.capacity() > 0 {
                c.out = Vec::new();
            }
            let Some(cmd) = c.later.pop_front() else {
                if c.later.capacity() > 0 {
                    c.later = VecDeque::new();
                }
                return;
            };
            match cmd {
                ConnCmd::Send(bytes) => c.out = bytes,
                ConnCmd::Close(reason) => {
                    tracing::info!(conn = c.id, peer = %c.peer, %reason, "closing connection");
                    c.io.shutdown();
                    self.remove(key, Ended::ByCore, core);
                    return;
                }
                ConnCmd::StartTls => {
                    if !self.start_tls(key, core) {
                        return;
                    }
                }
            }
        }
    }

    /// Begin the TLS server handshake; `false` when the connection is gone.
    fn start_tls(&mut self, key: usize, core: &mut impl CoreLink) -> bool {
        let c = &mut self.conns[key];
        let Some(acceptor) = self.tls.clone() else {
            tracing::error!(conn = c.id, "core asked for TLS but TLS is off; closing");
            self.remove(key, Ended::ByCore, core);
            return false;
        };
        let Io::Plain(tcp) = std::mem::replace(&mut c.io, Io::Gone) else {
            tracing::warn!(conn = c.id, "STARTTLS on a TLS connection; closing");
            self.remove(key, Ended::ByCore, core);
            return false;
        };
        let pre = std::mem::take(&mut c.buf);
        let rewind = Rewind { pre, pos: 0, inner: tcp };
        let started = Ssl::new(acceptor.context()).map_err(|e| e.to_string());
        let hs = match started {
            Ok(ssl) => ssl.accept(rewind),
            Err(e) => {
                tracing::warn!(conn = c.id, peer = %c.peer, error = %e, "TLS handshake failed (OpenSSL set-up); closing");
                self.remove(key, Ended::Tell, core);
                return false;
            }
        };
        self.handshakes.push((Instant::now() + self.handshake_timeout, c.id));
        self.handshake_step(key, hs, core)
    }

    /// Go on with a handshake under way (the socket is ready).
    fn handshake(&mut self, key: usize, core: &mut impl CoreLink) {
        let c = &mut self.conns[key];
        let Io::Handshake(mid) = std::mem::replace(&mut c.io, Io::Gone) else { return };
        let hs = mid.handshake();
        if self.handshake_step(key, hs, core) && matches!(self.conns[key].io, Io::Tls(_)) {
            // done: commands queued meanwhile run now, and data the client sent with its last
            // handshake bytes may already sit in OpenSSL's buffer
            self.run_cmds(key, core);
            self.readable(key, core);
        }
    }

    /// Take a handshake's outcome; `true` while the connection lives.
    fn handshake_step(&mut self, key: usize, hs: Result<SslStream<Rewind>, HandshakeError<Rewind>>, core: &mut impl CoreLink) -> bool {
        let c = &mut self.conns[key];
        match hs {
            Ok(t) => {
                let peer_cn = t.ssl().peer_certificate().and_then(|c| c.to_der().ok()).and_then(|d| super::certs::cert_common_name(&d));
                let proto = t.ssl().version_str();
                tracing::info!(conn = c.id, peer = %c.peer, peer_cn = peer_cn.as_deref().unwrap_or("-"), %proto, "TLS established");
                c.io = Io::Tls(Box::new(t));
                let at = self.clock.now();
                if !core.send(ToCore::Event { ev: Event::TlsEstablished { conn: c.id, peer_cn }, reply_to: None, at }) {
                    self.handle.stop();
                }
                true
            }
            Err(HandshakeError::WouldBlock(mid)) => {
                c.io = Io::Handshake(Box::new(mid));
                true
            }
            Err(HandshakeError::Failure(mid)) => {
                let e = mid.error().to_string();
                tracing::warn!(conn = c.id, peer = %c.peer, error = %e,
                    "TLS handshake failed (certificate not signed by the configured CA, or no client certificate?); closing");
                self.remove(key, Ended::Tell, core);
                false
            }
            Err(HandshakeError::SetupFailure(e)) => {
                tracing::warn!(conn = c.id, peer = %c.peer, error = %e, "TLS handshake failed (OpenSSL set-up); closing");
                self.remove(key, Ended::Tell, core);
                false
            }
        }
    }
}

/// What [`deliver`] did with the buffered bytes.
enum Delivered {
    /// Every complete frame went to the core.
    All,
    /// A STARTTLS went to the core: read nothing more before its answer (what follows may be TLS).
    StartTls,
    /// The core is gone.
    CoreGone,
}

/// Hand every complete frame in `buf` to the core.
fn deliver(
    id: ConnId,
    peer: SocketAddr,
    buf: &mut Vec<u8>,
    skip: &mut usize,
    plain: bool,
    core: &mut impl CoreLink,
    arrived: Millis,
) -> Delivered {
    let ev = |ev: Event, reply_to: Option<ConnId>| ToCore::Event { ev, reply_to, at: arrived };
    let mut start = 0;
    let result = loop {
        if *skip > 0 {
            let n = (*skip).min(buf.len() - start);
            start += n;
            *skip -= n;
            if *skip > 0 {
                break Delivered::All;
            }
        }
        let rest = &buf[start..];
        match wire::frame_len(rest) {
            Ok(None) => break Delivered::All,
            Err(error) => {
                let total = wire::Header::parse(rest).map(|h| h.total_len()).unwrap_or(rest.len());
                tracing::warn!(conn = id, %peer, %error, "oversized message skipped");
                *skip = total;
                if !core.send(ev(Event::BadFrame { conn: id, error }, None)) {
                    break Delivered::CoreGone;
                }
            }
            Ok(Some(n)) => {
                let raw = &rest[..n];
                let decoded = Message::decode(raw);
                start += n;
                match decoded {
                    Ok(msg) => {
                        let starttls = matches!(msg, Message::StartTls { .. }) && plain;
                        tracing::debug!(conn = id, msg = %msg.msg_type(), "received");
                        let reply_to = if starttls { Some(id) } else { None };
                        if !core.send_frame(ev(Event::Message { conn: id, msg }, reply_to), Some(raw)) {
                            break Delivered::CoreGone;
                        }
                        if starttls {
                            break Delivered::StartTls;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(conn = id, %peer, %error, "undecodable message");
                        if !core.send_frame(ev(Event::BadFrame { conn: id, error }, None), Some(raw)) {
                            break Delivered::CoreGone;
                        }
                    }
                }
            }
        }
    };
    buf.drain(..start);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At 20,000 connections every 100 bytes of a connection's slot are 2 MB.
    #[test]
    fn a_connection_slot_stays_small() {
        // a slab slot is the value or a vacant link, behind a tag
        let size = std::mem::size_of::<Conn>() + 8;
        eprintln!("a connection's slab entry: {size} bytes");
        assert!(size <= 176, "a connection's slab entry is {size} bytes");
    }

    struct Collect(Vec<ToCore>);
    impl CoreLink for Collect {
        fn send(&mut self, m: ToCore) -> bool {
            self.0.push(m);
            true
        }
    }

    #[test]
    fn frames_are_delivered_whole_and_oversized_ones_skipped() {
        let mut core = Collect(Vec::new());
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let one = Message::EchoRequest { seq: Some(7) }.encode().unwrap();
        // one and a half frames
        let mut buf = one.clone();
        buf.extend_from_slice(&one[..3]);
        let mut skip = 0;
        assert!(matches!(deliver(1, peer, &mut buf, &mut skip, true, &mut core, 5), Delivered::All));
        assert_eq!(core.0.len(), 1);
        assert_eq!(buf, one[..3]);
        // an oversized header: reported, and its bytes skipped as they come
        let mut big = vec![0u8, 3];
        big.extend_from_slice(&((wire::MAX_MSG_SIZE as u32) * 2).to_be_bytes());
        big.extend_from_slice(&[0; 100]);
        let mut buf = big;
        deliver(1, peer, &mut buf, &mut skip, true, &mut core, 6);
        assert!(buf.is_empty());
        assert!(skip > 0);
        assert!(matches!(core.0.last(), Some(ToCore::Event { ev: Event::BadFrame { .. }, .. })));
    }
}
