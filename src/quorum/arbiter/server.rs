//! `twonode arbiter serve`: the tokio + OpenSSL driver of the sans-IO arbiter [`core`].
//!
//! * one task owns the [`Arbiter`]; every connection task sends it events and executes the
//!   actions meant for its socket (in order); the core's timer request drives `Event::Tick`;
//! * per connection: `u16 type | u32 length` framing with the 32 KiB cap (a longer message is
//!   reported to the core as `BadFrame(TooLong)` and its bytes are skipped without being
//!   buffered), PREINIT in clear text, then on `Action::StartTls` the TLS server handshake on the
//!   same socket (bytes the client sent after STARTTLS are handed to TLS, not lost);
//! * the client certificate is verified against the configured CA by OpenSSL (see [`tls_config`]); its CN goes
//!   to the core, which compares it with the cluster name (like corosync-qnetd's
//!   `CERT_VerifyCertName`);
//! * a status socket (unix, JSON) answers `twonode arbiter status`;
//! * SIGTERM/SIGINT: stop accepting, close every client, remove the status socket, exit 0.
//!   A restarted arbiter grants no vote before a full lease has passed (the core's start hold).
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use openssl::ssl::SslAcceptor;
use tokio::sync::{mpsc, oneshot};

use super::core::{self, Action, Arbiter, ConnId, Event, Level, Millis};
use super::wire::{self, Message, TlsSupported, WireError};

/// Default config file.
pub const DEFAULT_CONFIG: &str = "/etc/twonode/arbiter.toml";
/// Default status socket.
pub const DEFAULT_STATUS_SOCKET: &str = "/run/twonode-arbiter/status.sock";

/// TLS files and mode (`[tls]` in the config file).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsFiles {
    /// "on" (offer TLS, qnetd's default `-s on`), "required" (`-s req`) or "off" (`-s off`).
    pub mode: String,
    /// Require a client certificate with CN = cluster name (qnetd `-c on`, its default).
    pub client_cert_required: bool,
    /// Server certificate (PEM; CN "Qnetd Server"), its key (PEM), and the CA (PEM) client
    /// certificates must chain to. See `twonode arbiter certs --help`.
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    /// Seconds a client may take for the TLS handshake.
    pub handshake_timeout_s: u64,
}

impl Default for TlsFiles {
    fn default() -> Self {
        TlsFiles {
            mode: "on".into(),
            client_cert_required: true,
            cert: "/etc/twonode/arbiter/server.crt".into(),
            key: "/etc/twonode/arbiter/server.key".into(),
            ca: "/etc/twonode/arbiter/ca.crt".into(),
            handshake_timeout_s: 10,
        }
    }
}

/// Log line format on stderr (`log_format` in the config file, `--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `TIMESTAMP LEVEL target: message key=value...` (journald adds its own timestamp).
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, message, event, cluster, node, conn, ring,
    /// reason (those that apply), target — for log shippers.
    Json,
}

/// Install the log subscriber for the daemon: stderr, `TWONODE_LOG` (an env-filter) or
/// `default_level`, text (colours only on a terminal) or JSON lines. Once per process.
pub fn init_logging(format: LogFormat, default_level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("TWONODE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => b.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => b.json().flatten_event(true).with_current_span(false).with_span_list(false).try_init(),
    };
}

/// The config file (TOML). Every key is optional.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on ("::" = all, IPv4 too).
    pub listen: String,
    pub port: u16,
    /// Unix socket for `twonode arbiter status` ("" = none).
    pub status_socket: PathBuf,
    /// Refuse connections beyond this many (0 = no limit).
    pub max_clients: usize,
    /// Shortcut for `[arbiter] lease_margin_ms` (extra safety margin on every lease, ms).
    pub lease_margin_ms: Option<u64>,
    /// "text" (default) or "json" (one JSON object per log line).
    pub log_format: LogFormat,
    pub tls: TlsFiles,
    /// The core's settings (heartbeat bounds, clock drift bound, dead-peer coefficient...).
    pub arbiter: core::Config,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "::".into(),
            port: wire::DEFAULT_PORT,
            status_socket: DEFAULT_STATUS_SOCKET.into(),
            max_clients: 0,
            lease_margin_ms: None,
            log_format: LogFormat::Text,
            tls: TlsFiles::default(),
            arbiter: core::Config::default(),
        }
    }
}

impl ServerConfig {
    /// Read and check a config file.
    pub fn load(path: &Path) -> anyhow::Result<ServerConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading the arbiter config {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Parse and check config text.
    pub fn parse(text: &str) -> anyhow::Result<ServerConfig> {
        let mut cfg: ServerConfig = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        cfg.finish()?;
        Ok(cfg)
    }

    /// Apply the `[tls]` mode and shortcuts to the core config and check values.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        self.arbiter.tls = match self.tls.mode.as_str() {
            "on" | "supported" => TlsSupported::Supported,
            "required" | "req" => TlsSupported::Required,
            "off" => TlsSupported::Unsupported,
            other => bail!("tls.mode = {other:?}: use \"on\", \"required\" or \"off\""),
        };
        self.arbiter.client_cert_required = self.tls.client_cert_required && self.arbiter.tls != TlsSupported::Unsupported;
        if let Some(m) = self.lease_margin_ms {
            self.arbiter.lease_margin_ms = m;
        }
        if self.arbiter.max_msg_size as usize > wire::MAX_MSG_SIZE || self.arbiter.max_msg_size < 64 {
            bail!("arbiter.max_msg_size must be between 64 and {}", wire::MAX_MSG_SIZE);
        }
        if !(0.0..0.5).contains(&self.arbiter.clock_drift) {
            bail!("arbiter.clock_drift must be in [0, 0.5) (a rate bound such as 0.01 = 1 %)");
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        let ip: std::net::IpAddr = self
            .listen
            .parse()
            .with_context(|| format!("listen = {:?} is not an IP address", self.listen))?;
        Ok(SocketAddr::new(ip, self.port))
    }
}

/// Build the TLS acceptor from the `[tls]` files.
///
/// OpenSSL, not rustls: corosync-qdevice (NSS) sends the SNI "Qnetd Server" (with a space), which
/// rustls refuses as an illegal host name (fatal alert, `ServerNameMustContainOneHostName`), and
/// the ClientHello cannot be rewritten (it is part of the TLS 1.3 transcript). OpenSSL ignores it.
pub fn tls_config(t: &TlsFiles) -> anyhow::Result<Arc<SslAcceptor>> {
    use openssl::ssl::{SslFiletype, SslMethod, SslVerifyMode};
    for (p, what) in [(&t.cert, "server certificate"), (&t.key, "server key"), (&t.ca, "CA certificate")] {
        if !p.exists() {
            bail!("the {what} {} does not exist (create the files with `twonode arbiter certs init --dir DIR`)", p.display());
        }
    }
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).context("initialising OpenSSL")?;
    b.set_certificate_chain_file(&t.cert).with_context(|| format!("loading the server certificate {}", t.cert.display()))?;
    b.set_private_key_file(&t.key, SslFiletype::PEM).with_context(|| format!("loading the server key {}", t.key.display()))?;
    b.check_private_key()
        .with_context(|| format!("the key {} does not fit the certificate {}", t.key.display(), t.cert.display()))?;
    b.set_ca_file(&t.ca).with_context(|| format!("loading the CA {}", t.ca.display()))?;
    if let Ok(names) = openssl::x509::X509Name::load_client_ca_file(&t.ca) {
        b.set_client_ca_list(names);
    }
    let mut mode = SslVerifyMode::PEER;
    if t.client_cert_required {
        mode |= SslVerifyMode::FAIL_IF_NO_PEER_CERT;
    }
    b.set_verify(mode);
    // an idle TLS connection gives its read/write buffers back (about 34 KiB per connection)
    b.set_mode(openssl::ssl::SslMode::RELEASE_BUFFERS);
    Ok(Arc::new(b.build()))
}

/// A stream that first yields already-read bytes (what the client sent right after STARTTLS).
struct Rewind<S> {
    pre: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.pos < self.pre.len() {
            let n = (self.pre.len() - self.pos).min(buf.remaining());
            let start = self.pos;
            buf.put_slice(&self.pre[start..start + n]);
            self.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

type TlsStream = tokio_openssl::SslStream<Rewind<TcpStream>>;

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

thread_local! {
    /// One read buffer per runtime thread: a connection waits for readiness holding no buffer,
    /// reads into this one, and keeps only the bytes it got.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 64 * 1024]);
}

/// What woke an idle connection.
enum Wake {
    /// Bytes read (appended to the buffer; 0 = end of stream), or the read error.
    Read(std::io::Result<usize>),
    /// A batch from the core; `None`: the core forgot this connection (or stopped).
    Batch(Option<Batch>),
}

impl Stream {
    /// Wait for bytes or for a batch from the core. Holds no state of its own between polls
    /// (readiness is kept by tokio's registration, the waker by the mailbox), so an idle
    /// connection's task is small; reads go into the thread's scratch buffer and only the bytes
    /// read are appended to `buf` (an idle connection holds no read buffer at all).
    fn poll_idle(&mut self, buf: &mut Vec<u8>, mailbox: &Mailbox, cx: &mut TaskContext<'_>) -> Poll<Wake> {
        if let Poll::Ready(b) = mailbox.poll_recv(cx) {
            return Poll::Ready(Wake::Batch(b));
        }
        match self {
            Stream::Plain(s) => loop {
                match s.poll_read_ready(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(Wake::Read(Err(e))),
                    Poll::Ready(Ok(())) => {}
                }
                let got = SCRATCH.with(|scratch| {
                    let mut scratch = scratch.borrow_mut();
                    let r = s.try_read(&mut scratch);
                    if let Ok(n) = r {
                        buf.extend_from_slice(&scratch[..n]);
                    }
                    r
                });
                match got {
                    // readiness was stale; try_read cleared it, so poll_read_ready waits again
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    r => return Poll::Ready(Wake::Read(r)),
                }
            },
            Stream::Tls(s) => SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                let mut rb = ReadBuf::new(&mut scratch[..]);
                match Pin::new(&mut **s).poll_read(cx, &mut rb) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(e)) => Poll::Ready(Wake::Read(Err(e))),
                    Poll::Ready(Ok(())) => {
                        buf.extend_from_slice(rb.filled());
                        Poll::Ready(Wake::Read(Ok(rb.filled().len())))
                    }
                }
            }),
        }
    }
    async fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(b).await,
            Stream::Tls(s) => {
                s.write_all(b).await?;
                s.flush().await
            }
        }
    }
    async fn shutdown(&mut self) {
        let _ = match self {
            Stream::Plain(s) => s.shutdown().await,
            Stream::Tls(s) => s.shutdown().await,
        };
    }
}

/// What the core task tells one connection (all actions of one event for that socket, in order).
#[derive(Debug)]
enum ConnCmd {
    Send(Vec<u8>),
    StartTls,
    Close(String),
}

/// What the core sends a connection task: all commands of one event for that socket.
struct Batch {
    cmds: Vec<ConnCmd>,
    /// This batch answers an event the connection waits on (STARTTLS).
    reply: bool,
}

/// A connection's inbox: the core's batches for it and its task's waker, behind a mutex the
/// core and the task each take for a moment. About 80 bytes per connection, where a tokio
/// unbounded channel per connection cost about 800 (its shared state and first block of slots).
#[derive(Default)]
struct Mailbox(std::sync::Mutex<Inbox>);

#[derive(Default)]
struct Inbox {
    batches: std::collections::VecDeque<Batch>,
    waker: Option<std::task::Waker>,
    /// The core dropped its end ([`ConnTx`]).
    closed: bool,
}

impl Mailbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inbox> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next batch; `None` once the core dropped its end and every batch was taken.
    fn poll_recv(&self, cx: &mut TaskContext<'_>) -> Poll<Option<Batch>> {
        let mut i = self.lock();
        if let Some(b) = i.batches.pop_front() {
            if i.batches.is_empty() {
                i.batches = Default::default(); // an idle connection holds no queue memory
            }
            return Poll::Ready(Some(b));
        }
        if i.closed {
            return Poll::Ready(None);
        }
        if !i.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            i.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    async fn recv(&self) -> Option<Batch> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }
}

/// The core's end of a connection's [`Mailbox`]; dropping it closes the mailbox.
struct ConnTx(Arc<Mailbox>);

impl ConnTx {
    fn send(&self, b: Batch) {
        let w = {
            let mut i = self.0.lock();
            i.batches.push_back(b);
            i.waker.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }
}

impl Drop for ConnTx {
    fn drop(&mut self) {
        let w = {
            let mut i = self.0.lock();
            i.closed = true;
            i.waker.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }
}

enum CoreIn {
    Connected { conn: ConnId, peer: String, tx: ConnTx },
    /// `at`: when the bytes behind this event arrived (ms on the core's clock), so that time
    /// spent waiting in the core's queue never counts as client silence.
    Event { ev: Event, reply_to: Option<ConnId>, at: Millis },
    Status(oneshot::Sender<serde_json::Value>),
    /// Close every client and stop (connection tasks hold senders, so the channel never ends
    /// by itself while clients are connected).
    Shutdown,
}

/// Server-side facts for the status output.
#[derive(Debug, Clone, serde::Serialize)]
struct ServerInfo {
    listen: String,
    tls: String,
    client_cert_required: bool,
    uptime_s: u64,
    lease_margin_ms: u64,
    version: &'static str,
}

/// Run the arbiter until SIGTERM/SIGINT (or `shutdown` resolves). `ready` gets the bound address.
pub async fn serve(
    cfg: ServerConfig,
    ready: Option<oneshot::Sender<SocketAddr>>,
    shutdown: Option<oneshot::Receiver<()>>,
) -> anyhow::Result<()> {
    let tls = if cfg.arbiter.tls == TlsSupported::Unsupported { None } else { Some(tls_config(&cfg.tls)?) };
    let addr = cfg.listen_addr()?;
    let listener = bind(addr).with_context(|| format!("listening on {addr} (is corosync-qnetd or another arbiter running?)"))?;
    let local = listener.local_addr()?;
    let status_listener = if cfg.status_socket.as_os_str().is_empty() {
        None
    } else {
        Some(bind_status(&cfg.status_socket)?)
    };
    tracing::info!(listen = %local, tls = ?cfg.arbiter.tls, client_cert_required = cfg.arbiter.client_cert_required,
        lease_margin_ms = cfg.arbiter.lease_margin_ms, status_socket = %cfg.status_socket.display(), "arbiter started");
    if let Some(r) = ready {
        let _ = r.send(local);
    }

    let start = Instant::now();
    let info = ServerInfo {
        listen: local.to_string(),
        tls: cfg.tls.mode.clone(),
        client_cert_required: cfg.arbiter.client_cert_required,
        uptime_s: 0,
        lease_margin_ms: cfg.arbiter.lease_margin_ms,
        version: env!("CARGO_PKG_VERSION"),
    };
    let (core_tx, core_rx) = mpsc::unbounded_channel::<CoreIn>();
    let core_task = tokio::spawn(core_loop(cfg.arbiter.clone(), start, core_rx, info));

    if let Some(ul) = status_listener {
        let tx = core_tx.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = ul.accept().await else { continue };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let (otx, orx) = oneshot::channel();
                    if tx.send(CoreIn::Status(otx)).is_err() {
                        return;
                    }
                    if let Ok(v) = orx.await {
                        let mut text = serde_json::to_string(&v).unwrap_or_default();
                        text.push('\n');
                        let _ = s.write_all(text.as_bytes()).await;
                    }
                });
            }
        });
    }

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let shutdown = async move {
        match shutdown {
            Some(rx) => {
                let _ = rx.await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(shutdown);
    let live = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut next_id: ConnId = 1;
    let handshake_timeout = Duration::from_secs(cfg.tls.handshake_timeout_s.max(1));
    let reason = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = &mut shutdown => break "shutdown request",
            acc = listener.accept() => {
                let (sock, peer) = match acc {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if cfg.max_clients > 0 && live.load(std::sync::atomic::Ordering::Relaxed) >= cfg.max_clients {
                    tracing::warn!(%peer, max_clients = cfg.max_clients, "connection refused: too many clients");
                    drop(sock);
                    continue;
                }
                let _ = sock.set_nodelay(true);
                let id = next_id;
                next_id += 1;
                let mailbox = Arc::new(Mailbox::default());
                if core_tx.send(CoreIn::Connected { conn: id, peer: peer.to_string(), tx: ConnTx(mailbox.clone()) }).is_err() {
                    break "core stopped";
                }
                live.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let ctx = ConnCtx {
                    id,
                    peer,
                    core: core_tx.clone(),
                    mailbox,
                    tls: tls.clone(),
                    handshake_timeout,
                    clock: Clock(start),
                    live: live.clone(),
                };
                // spawned as it is (no wrapping async block): the task holds only this future
                tokio::spawn(run_conn(Box::new(ctx), sock));
            }
        }
    };
    tracing::info!(reason, "arbiter stopping: closing all clients");
    drop(listener);
    let _ = core_tx.send(CoreIn::Shutdown);
    drop(core_tx);
    // the core loop closes every connection when its channel ends
    let _ = tokio::time::timeout(Duration::from_secs(3), core_task).await;
    for _ in 0..30 {
        if live.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !cfg.status_socket.as_os_str().is_empty() {
        let _ = std::fs::remove_file(&cfg.status_socket);
    }
    tracing::info!("arbiter stopped");
    Ok(())
}

fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let sock = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    Ok(sock.listen(1024)?)
}

fn bind_status(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if path.exists() {
        // a live arbiter answers; a stale socket from a crash does not
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("{} is in use: another arbiter is running", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    let l = tokio::net::UnixListener::bind(path).with_context(|| format!("binding the status socket {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    Ok(l)
}

/// The arbiter's clock: milliseconds since the server started (monotonic).
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn now(self) -> Millis {
        self.0.elapsed().as_millis() as Millis
    }
}

/// How far behind the core task runs: the time events wait in its queue.
#[derive(Default)]
struct Lag {
    window_start: Millis,
    events: u64,
    late: u64,
    max_ms: Millis,
}

impl Lag {
    /// Events waiting longer than this are counted as late.
    const LATE_MS: Millis = 200;

    fn note(&mut self, real: Millis, at: Millis) {
        let lag = real.saturating_sub(at);
        self.events += 1;
        if lag > Self::LATE_MS {
            self.late += 1;
        }
        self.max_ms = self.max_ms.max(lag);
        if real >= self.window_start + 5000 {
            if self.late > 0 {
                tracing::warn!(target: "twonode::arbiter", event = "core_lag", late_events = self.late, events = self.events,
                    max_lag_ms = self.max_ms, "the arbiter's core ran behind (CPU starved?): events waited up to {} ms before being handled; \
                    dead-peer and lease checks use arrival times, so this delay is not counted as client silence", self.max_ms);
            }
            *self = Lag { window_start: real, ..Lag::default() };
        }
    }
}

async fn core_loop(cfg: core::Config, start: Instant, mut rx: mpsc::UnboundedReceiver<CoreIn>, info: ServerInfo) {
    let clock = Clock(start);
    let mut arb = Arbiter::new(cfg, clock.now());
    // lines the log filter drops are not even formatted (the most verbose level any directive enables)
    arb.set_min_log_level(match tracing::level_filters::LevelFilter::current() {
        f if f >= tracing::level_filters::LevelFilter::DEBUG => Level::Debug,
        f if f >= tracing::level_filters::LevelFilter::INFO => Level::Info,
        f if f >= tracing::level_filters::LevelFilter::WARN => Level::Warn,
        _ => Level::Error,
    });
    // the time fed to the core: an event's arrival time, never going back
    let mut fed: Millis = clock.now();
    let mut feed = |t: Millis| -> Millis {
        fed = fed.max(t);
        fed
    };
    let mut lag = Lag::default();
    let mut conns: HashMap<ConnId, ConnTx> = HashMap::new();
    let mut timer: Option<Millis> = None;
    // first tick right away: the core may want a timer from the start (restart hold)
    let acts = arb.handle(feed(clock.now()), Event::Tick);
    apply(acts, None, &mut conns, &mut timer);
    loop {
        let sleep = match timer {
            Some(at) => {
                let t = start + Duration::from_millis(at);
                tokio::time::sleep_until(tokio::time::Instant::from_std(t))
            }
            None => tokio::time::sleep(Duration::from_secs(3600)),
        };
        tokio::select! {
            // events that already arrived go first: a timer must not judge silence (dead peer,
            // lease) while the messages that end it wait in the queue
            biased;
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                match msg {
                    CoreIn::Connected { conn, peer, tx } => {
                        conns.insert(conn, tx);
                        let acts = arb.handle(feed(clock.now()), Event::ClientConnected { conn, peer });
                        apply(acts, None, &mut conns, &mut timer);
                    }
                    CoreIn::Event { ev, reply_to, at } => {
                        lag.note(clock.now(), at);
                        let closed = match &ev { Event::ClientClosed { conn } => Some(*conn), _ => None };
                        let acts = arb.handle(feed(at), ev);
                        apply(acts, reply_to, &mut conns, &mut timer);
                        if let Some(c) = closed {
                            conns.remove(&c);
                        }
                    }
                    CoreIn::Shutdown => break,
                    CoreIn::Status(otx) => {
                        let mut i = info.clone();
                        i.uptime_s = start.elapsed().as_secs();
                        let st = arb.status(feed(clock.now()));
                        let v = serde_json::json!({ "server": i, "arbiter": st });
                        let _ = otx.send(v);
                    }
                }
            }
            _ = sleep => {
                timer = None;
                let acts = arb.handle(feed(clock.now()), Event::Tick);
                apply(acts, None, &mut conns, &mut timer);
            }
        }
    }
    for (_, tx) in conns.drain() {
        tx.send(Batch { cmds: vec![ConnCmd::Close("arbiter shutting down".into())], reply: false });
    }
}

fn apply(
    acts: Vec<Action>,
    reply_to: Option<ConnId>,
    conns: &mut HashMap<ConnId, ConnTx>,
    timer: &mut Option<Millis>,
) {
    let mut batches: Vec<(ConnId, Vec<ConnCmd>)> = Vec::new();
    let mut push = |conn: ConnId, cmd: ConnCmd| match batches.iter_mut().find(|(c, _)| *c == conn) {
        Some((_, v)) => v.push(cmd),
        None => batches.push((conn, vec![cmd])),
    };
    for a in acts {
        match a {
            Action::Send { conn, msg } => match msg.encode() {
                Ok(bytes) => {
                    tracing::debug!(conn, msg = %msg.msg_type(), "send");
                    push(conn, ConnCmd::Send(bytes))
                }
                Err(e) => tracing::error!(conn, error = %e, "cannot encode a reply; dropped"),
            },
            Action::StartTls { conn } => push(conn, ConnCmd::StartTls),
            Action::Close { conn, reason } => push(conn, ConnCmd::Close(reason)),
            Action::SetTimer { at } => *timer = Some(at),
            Action::Log { level, text, fields } => log_core(level, &text, &fields),
        }
    }
    if let Some(r) = reply_to {
        if !batches.iter().any(|(c, _)| *c == r) {
            batches.push((r, Vec::new()));
        }
    }
    for (conn, cmds) in batches {
        let closing = cmds.iter().any(|c| matches!(c, ConnCmd::Close(_)));
        if let Some(tx) = conns.get(&conn) {
            tx.send(Batch { cmds, reply: Some(conn) == reply_to });
        }
        if closing {
            conns.remove(&conn);
        }
    }
}

/// One core log line as a tracing event with its structured fields (absent ones are omitted).
fn log_core(level: Level, text: &str, f: &core::LogFields) {
    let ring = f.ring.map(|r| format!("{}/{}", r.node_id, r.seq));
    let (event, cluster, node, conn, ring, reason) = (f.event, f.cluster.as_deref(), f.node, f.conn, ring.as_deref(), f.reason.as_deref());
    macro_rules! emit {
        ($lvl:ident) => {
            tracing::$lvl!(target: "twonode::arbiter", event, cluster, node, conn, ring, reason, "{text}")
        };
    }
    match level {
        Level::Debug => emit!(debug),
        Level::Info => emit!(info),
        Level::Warn => emit!(warn),
        Level::Error => emit!(error),
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

/// Hand every complete frame in `buf` to the core (a plain function, so that nothing of it lives
/// in the connection task's state while the task waits).
fn deliver(
    id: ConnId,
    peer: SocketAddr,
    buf: &mut Vec<u8>,
    skip: &mut usize,
    plain: bool,
    core: &mpsc::UnboundedSender<CoreIn>,
    arrived: Millis,
) -> Delivered {
    let ev = |ev: Event, reply_to: Option<ConnId>| CoreIn::Event { ev, reply_to, at: arrived };
    loop {
        if *skip > 0 {
            let n = (*skip).min(buf.len());
            buf.drain(..n);
            *skip -= n;
            if *skip > 0 {
                return Delivered::All;
            }
        }
        match wire::frame_len(buf) {
            Ok(None) => return Delivered::All,
            Err(error) => {
                let total = wire::Header::parse(buf).map(|h| h.total_len()).unwrap_or(buf.len());
                tracing::warn!(conn = id, %peer, %error, "oversized message skipped");
                *skip = total;
                if core.send(ev(Event::BadFrame { conn: id, error }, None)).is_err() {
                    return Delivered::CoreGone;
                }
            }
            Ok(Some(n)) => {
                let decoded = Message::decode(&buf[..n]);
                buf.drain(..n);
                match decoded {
                    Ok(msg) => {
                        let starttls = matches!(msg, Message::StartTls { .. }) && plain;
                        tracing::debug!(conn = id, msg = %msg.msg_type(), "received");
                        let reply_to = if starttls { Some(id) } else { None };
                        if core.send(ev(Event::Message { conn: id, msg }, reply_to)).is_err() {
                            return Delivered::CoreGone;
                        }
                        if starttls {
                            return Delivered::StartTls;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(conn = id, %peer, %error, "undecodable message");
                        if core.send(ev(Event::BadFrame { conn: id, error }, None)).is_err() {
                            return Delivered::CoreGone;
                        }
                    }
                }
            }
        }
    }
}

/// Outcome of executing a batch on the socket.
enum After {
    Continue,
    Closed,
}

/// What a connection's task needs besides its socket and buffer. Boxed: the task keeps its
/// future for the connection's lifetime, and a future holds its arguments twice (as passed and
/// as locals), so one pointer there instead of the fields keeps every task smaller.
struct ConnCtx {
    id: ConnId,
    peer: SocketAddr,
    core: mpsc::UnboundedSender<CoreIn>,
    mailbox: Arc<Mailbox>,
    tls: Option<Arc<SslAcceptor>>,
    handshake_timeout: Duration,
    clock: Clock,
    live: Arc<std::sync::atomic::AtomicUsize>,
}

async fn run_conn(c: Box<ConnCtx>, sock: TcpStream) {
    let mut stream = Some(Stream::Plain(sock));
    let mut buf: Vec<u8> = Vec::new();
    let mut skip: usize = 0;
    // arrival time of the bytes in `buf`
    let mut arrived: Millis = c.clock.now();
    let closed_by_us = 'conn: loop {
        let plain = matches!(stream, Some(Stream::Plain(_)));
        match deliver(c.id, c.peer, &mut buf, &mut skip, plain, &c.core, arrived) {
            Delivered::All => {}
            Delivered::CoreGone => break 'conn true,
            Delivered::StartTls => {
                // wait for the core's answer before reading on: what follows may be TLS
                loop {
                    let Some(b) = c.mailbox.recv().await else { break 'conn true };
                    let reply = b.reply;
                    match Box::pin(exec(&c, &mut stream, b.cmds, &mut buf)).await {
                        After::Continue => {}
                        After::Closed => break 'conn true,
                    }
                    if reply {
                        continue 'conn;
                    }
                }
            }
        }
        if buf.is_empty() && buf.capacity() > 0 {
            buf = Vec::new(); // every frame handled: hold no memory while idle
        }
        let Some(s) = stream.as_mut() else { break 'conn true };
        let woke = std::future::poll_fn(|cx| s.poll_idle(&mut buf, &c.mailbox, cx)).await;
        match woke {
            Wake::Read(Ok(0)) => break 'conn false,
            Wake::Read(Ok(_)) => arrived = c.clock.now(),
            Wake::Read(Err(e)) => {
                tracing::info!(conn = c.id, peer = %c.peer, error = %e, "read failed");
                break 'conn false;
            }
            Wake::Batch(None) => break 'conn true,
            Wake::Batch(Some(b)) => {
                // boxed: the TLS handshake's state lives only while a command runs, not in every
                // idle connection's task
                match Box::pin(exec(&c, &mut stream, b.cmds, &mut buf)).await {
                    After::Continue => {}
                    After::Closed => break 'conn true,
                }
            }
        }
        // never hold more than one capped frame plus a read's worth
        if skip == 0 && buf.len() > wire::MAX_MSG_SIZE + 65536 {
            tracing::warn!(conn = c.id, peer = %c.peer, "receive buffer overflow; closing");
            break 'conn false;
        }
    };
    if let Some(mut s) = stream.take() {
        Box::pin(s.shutdown()).await;
    }
    if !closed_by_us {
        let _ = c.core.send(CoreIn::Event { ev: Event::ClientClosed { conn: c.id }, reply_to: None, at: c.clock.now() });
    }
    c.live.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}

async fn exec(c: &ConnCtx, stream: &mut Option<Stream>, cmds: Vec<ConnCmd>, buf: &mut Vec<u8>) -> After {
    let (id, peer, core, clock) = (c.id, c.peer, &c.core, c.clock);
    for cmd in cmds {
        let Some(s) = stream.as_mut() else { return After::Closed };
        match cmd {
            ConnCmd::Send(bytes) => {
                if let Err(e) = s.write_all(&bytes).await {
                    tracing::info!(conn = id, %peer, error = %e, "write failed");
                    let _ = core.send(CoreIn::Event { ev: Event::ClientClosed { conn: id }, reply_to: None, at: clock.now() });
                    *stream = None;
                    return After::Closed;
                }
            }
            ConnCmd::Close(reason) => {
                tracing::info!(conn = id, %peer, %reason, "closing connection");
                s.shutdown().await;
                *stream = None;
                return After::Closed;
            }
            ConnCmd::StartTls => {
                let Some(cfg) = c.tls.clone() else {
                    tracing::error!(conn = id, "core asked for TLS but TLS is off; closing");
                    *stream = None;
                    return After::Closed;
                };
                let Some(Stream::Plain(tcp)) = stream.take() else {
                    tracing::warn!(conn = id, "STARTTLS on a TLS connection; closing");
                    return After::Closed;
                };
                let pre = std::mem::take(buf);
                let hs = tokio::time::timeout(c.handshake_timeout, async {
                    let ssl = openssl::ssl::Ssl::new(cfg.context())?;
                    let mut t = tokio_openssl::SslStream::new(ssl, Rewind { pre, pos: 0, inner: tcp })?;
                    Pin::new(&mut t).accept().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                    anyhow::Ok(t)
                })
                .await;
                match hs {
                    Ok(Ok(t)) => {
                        let peer_cn = t
                            .ssl()
                            .peer_certificate()
                            .and_then(|c| c.to_der().ok())
                            .and_then(|d| super::certs::cert_common_name(&d));
                        let proto = t.ssl().version_str();
                        tracing::info!(conn = id, %peer, peer_cn = peer_cn.as_deref().unwrap_or("-"), %proto, "TLS established");
                        *stream = Some(Stream::Tls(Box::new(t)));
                        let _ = core.send(CoreIn::Event { ev: Event::TlsEstablished { conn: id, peer_cn }, reply_to: None, at: clock.now() });
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(conn = id, %peer, error = %e, "TLS handshake failed (certificate not signed by the configured CA, or no client certificate?); closing");
                        let _ = core.send(CoreIn::Event { ev: Event::ClientClosed { conn: id }, reply_to: None, at: clock.now() });
                        return After::Closed;
                    }
                    Err(_) => {
                        tracing::warn!(conn = id, %peer, "TLS handshake timed out; closing");
                        let _ = core.send(CoreIn::Event { ev: Event::ClientClosed { conn: id }, reply_to: None, at: clock.now() });
                        return After::Closed;
                    }
                }
            }
        }
    }
    After::Continue
}

/// Ask a running arbiter for its status (JSON) over the status socket.
pub fn query_status(socket: &Path) -> anyhow::Result<serde_json::Value> {
    use std::io::Read;
    let mut s = std::os::unix::net::UnixStream::connect(socket).with_context(|| {
        format!("connecting to the arbiter's status socket {} (is `twonode arbiter serve` running? see its status_socket setting)", socket.display())
    })?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut text = String::new();
    s.read_to_string(&mut text).with_context(|| format!("reading from {}", socket.display()))?;
    serde_json::from_str(&text).with_context(|| format!("the answer on {} is not JSON", socket.display()))
}

/// Human rendering of the status, in the spirit of `corosync-qnetd-tool -lv`.
pub fn render_status(v: &serde_json::Value) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let srv = &v["server"];
    let arb = &v["arbiter"];
    let _ = writeln!(
        o,
        "twonode arbiter {} on {}: TLS {}{}, up {} s, {} connection(s)",
        srv["version"].as_str().unwrap_or("?"),
        srv["listen"].as_str().unwrap_or("?"),
        srv["tls"].as_str().unwrap_or("?"),
        if srv["client_cert_required"].as_bool() == Some(true) { " (client certificate required)" } else { "" },
        srv["uptime_s"].as_u64().unwrap_or(0),
        arb["connections"].as_u64().unwrap_or(0)
    );
    if let Some(h) = arb["startup_hold_remaining_ms"].as_u64() {
        let _ = writeln!(o, "Start hold: {:.1} s left in which a node not yet heard may still count a vote of a previous instance", h as f64 / 1000.0);
    }
    let clusters = arb["clusters"].as_array().cloned().unwrap_or_default();
    if clusters.is_empty() {
        let _ = writeln!(o, "No clusters connected.");
    }
    for c in clusters {
        let _ = writeln!(o, "Cluster \"{}\":", c["name"].as_str().unwrap_or("?"));
        let _ = writeln!(o, "    Algorithm:\t\t{}", c["algorithm"].as_str().unwrap_or("?"));
        let _ = writeln!(o, "    Tie-breaker:\t{}", c["tie_breaker"].as_str().unwrap_or("?"));
        if let Some(nodes) = c["restart_hold_nodes"].as_array().filter(|v| !v.is_empty()) {
            let ids: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
            let _ = writeln!(o, "    Restart hold:\t\tnode(s) {} may still count a vote of a previous instance", ids.join(", "));
        }
        if let Some(w) = c["waiting_for_lease_ms"].as_u64() {
            let _ = writeln!(o, "    Waiting:\t\tchosen partition waits {:.1} s for an old lease to expire", w as f64 / 1000.0);
        }
        for n in c["nodes"].as_array().cloned().unwrap_or_default() {
            let _ = writeln!(o, "    Node ID {}:", n["node_id"]);
            if n["conn"].is_null() && n.get("conn").is_some() {
                let _ = writeln!(o, "        Client address:\t\t{} (disconnected, its lease still runs)", n["peer"].as_str().unwrap_or("?"));
            } else {
                let _ = writeln!(o, "        Client address:\t\t{}", n["peer"].as_str().unwrap_or("?"));
            }
            let _ = writeln!(o, "        HB interval:\t\t{}ms", n["heartbeat_ms"]);
            let ring = match &n["ring_id"] {
                serde_json::Value::Object(r) => format!("{:x}.{:x}", r["node_id"].as_u64().unwrap_or(0), r["seq"].as_u64().unwrap_or(0)),
                _ => "-".into(),
            };
            let _ = writeln!(o, "        Ring ID:\t\t{ring}");
            let _ = writeln!(o, "        Heuristics:\t\t{}", n["heuristics"].as_str().unwrap_or("Undefined"));
            let _ = writeln!(o, "        TLS active:\t\t{}", if n["tls"].as_bool() == Some(true) { "Yes" } else { "No" });
            let _ = writeln!(o, "        Vote:\t\t\t{}", n["vote"].as_str().unwrap_or("-"));
            let last = n["last_seen_ms_ago"].as_u64().unwrap_or(0) as f64 / 1000.0;
            if n["holds_lease"].as_bool() == Some(true) {
                let rem = match n["lease_remaining_ms"].as_u64() {
                    Some(u64::MAX) => "never while disconnected (lms)".to_string(),
                    Some(0) | None => "while connected".to_string(),
                    Some(ms) => format!("certainly expired in {:.1} s", ms as f64 / 1000.0),
                };
                let _ = writeln!(o, "        Lease:\t\t\theld, {rem} (last message {last:.1} s ago)");
            } else {
                let _ = writeln!(o, "        Lease:\t\t\tnone (last message {last:.1} s ago)");
            }
        }
    }
    o
}

/// Used by tests: a config with TLS off on loopback, port chosen by the OS, no status socket.
pub fn loopback_config() -> ServerConfig {
    let mut c = ServerConfig {
        listen: "127.0.0.1".into(),
        port: 0,
        status_socket: PathBuf::new(),
        ..ServerConfig::default()
    };
    c.tls.mode = "off".into();
    let _ = c.finish();
    c
}

/// An arbiter serving on its own thread and tokio runtime (tests, tools embedding one): started
/// by [`Background::start`] once it listens, stopped (and joined) on drop.
pub struct Background {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Background {
    /// Start serving `cfg`; returns when it listens, or with the error that stopped it.
    pub fn start(cfg: ServerConfig) -> anyhow::Result<Background> {
        let (rtx, rrx) = std::sync::mpsc::channel();
        let (stx, srx) = oneshot::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            rt.block_on(async move {
                let (atx, arx) = oneshot::channel();
                let h = tokio::spawn(serve(cfg, Some(atx), Some(srx)));
                match arx.await {
                    Ok(a) => {
                        let _ = rtx.send(Ok(a));
                        h.await?
                    }
                    Err(_) => {
                        let e = match h.await {
                            Ok(Err(e)) => format!("{e:#}"),
                            other => format!("{other:?}"),
                        };
                        let _ = rtx.send(Err(e));
                        Ok(())
                    }
                }
            })
        });
        match rrx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(addr)) => Ok(Background { addr, stop: Some(stx), thread: Some(thread) }),
            Ok(Err(e)) => bail!("the arbiter did not start: {e}"),
            Err(_) => bail!("the arbiter did not start listening within 10 s"),
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[allow(dead_code)]
fn _assert_send() {
    fn is_send<T: Send>(_: T) {}
    let (_tx, rx) = mpsc::unbounded_channel();
    is_send(core_loop(core::Config::default(), Instant::now(), rx, ServerInfo {
        listen: String::new(), tls: String::new(), client_cert_required: false, uptime_s: 0, lease_margin_ms: 0, version: "",
    }));
    let _ = WireError::Truncated { need: 0, have: 0 };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_parses_and_rejects_typos() {
        let c = ServerConfig::parse(
            "listen = \"10.0.0.1\"\nport = 5404\nlease_margin_ms = 2500\n[tls]\nmode = \"required\"\ncert = \"/x/s.crt\"\n[arbiter]\nclock_drift = 0.02\n",
        )
        .unwrap();
        assert_eq!(c.listen_addr().unwrap().to_string(), "10.0.0.1:5404");
        assert_eq!(c.arbiter.tls, TlsSupported::Required);
        assert_eq!(c.arbiter.lease_margin_ms, 2500);
        assert!(ServerConfig::parse("lisen = \"::\"\n").is_err());
        assert!(ServerConfig::parse("[tls]\nmode = \"maybe\"\n").is_err());
        let off = ServerConfig::parse("[tls]\nmode = \"off\"\n").unwrap();
        assert!(!off.arbiter.client_cert_required);
        assert_eq!(off.log_format, LogFormat::Text);
        assert_eq!(ServerConfig::parse("log_format = \"json\"\n").unwrap().log_format, LogFormat::Json);
        assert!(ServerConfig::parse("log_format = \"xml\"\n").is_err());
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// Every connection's task holds this future for the connection's lifetime: at 20,000
    /// connections each 100 bytes are 2 MB. (Release builds lay it out smaller than this debug
    /// figure.) It was 816 bytes with a select! over the read and a channel receive and its arguments
    /// held in the future itself.
    #[tokio::test]
    async fn an_idle_connection_task_stays_small() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        let s = TcpStream::connect(a).await.unwrap();
        let (ctx, _crx) = mpsc::unbounded_channel();
        let c = ConnCtx {
            id: 1,
            peer: a,
            core: ctx,
            mailbox: Arc::default(),
            tls: None,
            handshake_timeout: Duration::from_secs(1),
            clock: Clock(Instant::now()),
            live: Arc::default(),
        };
        let f = run_conn(Box::new(c), s);
        let size = std::mem::size_of_val(&f);
        eprintln!("run_conn's future: {size} bytes");
        assert!(size <= 288, "run_conn's future is {size} bytes");
    }
}
