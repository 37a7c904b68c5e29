//! `twonode arbiter serve`: the daemon around the sans-IO arbiter [`core`].
//!
//! * one thread owns the [`Arbiter`] ([`core_thread`]); the I/O loop ([`super::reactor`], its
//!   own thread) sends it every client event with the time its bytes arrived, and executes the
//!   actions meant for each socket, in order; the core's timer request drives `Event::Tick`;
//! * the loop frames messages (`u16 type | u32 length`, the 32 KiB cap), takes PREINIT in clear
//!   text and, on `Action::StartTls`, runs the TLS server handshake on the same socket;
//! * the client certificate is verified against the configured CA by OpenSSL (see [`tls_config`]); its CN goes
//!   to the core, which compares it with the cluster name (like corosync-qnetd's
//!   `CERT_VerifyCertName`);
//! * a status socket (unix, JSON) answers `twonode arbiter status`;
//! * SIGTERM/SIGINT: stop accepting, close every client, remove the status socket, exit 0.
//!   A restarted arbiter grants no vote before a full lease has passed (the core's start hold).
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use openssl::ssl::SslAcceptor;
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

use super::core::{self, Action, Arbiter, ConnId, Event, Level, Millis};
use super::reactor::{Batch, Clock, ConnCmd, CoreLink, IoHandle, Reactor, ReactorConfig, ToCore};
use super::wire::{self, TlsSupported};

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
    /// I/O worker processes (0 or 1: none, the sockets are served in this process). Each client
    /// is a file descriptor, and RLIMIT_NOFILE caps a process's; with N workers the arbiter holds
    /// N times as many clients (about 10,000 two-node clusters per 20,000 descriptors).
    pub workers: usize,
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
            workers: 0,
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

/// What reaches the core thread.
pub(super) enum CoreIn {
    Io(ToCore),
    /// What one packet from an I/O worker carried, in order.
    IoBatch(Vec<ToCore>),
    Status(oneshot::Sender<serde_json::Value>),
    /// Stop (the I/O loop closes every client).
    Shutdown,
}

/// The in-process way from the I/O loop to the core thread.
struct InProcess(std::sync::mpsc::Sender<CoreIn>);

impl CoreLink for InProcess {
    fn send(&mut self, m: ToCore) -> bool {
        self.0.send(CoreIn::Io(m)).is_ok()
    }
}

/// The core thread's way to the sockets: the I/O loop of this process, or the worker processes.
pub(super) trait Deliver {
    fn deliver(&mut self, batches: Vec<(ConnId, Batch)>);
    /// Send what `deliver` gathered (the core calls this whenever its queue runs empty, and at
    /// least every [`FLUSH_EVERY`] events).
    fn flush(&mut self) {}
}

/// Most events the core handles before it flushes its output.
const FLUSH_EVERY: usize = 256;

impl Deliver for Arc<IoHandle> {
    fn deliver(&mut self, batches: Vec<(ConnId, Batch)>) {
        IoHandle::deliver(self, batches)
    }
}

/// Server-side facts for the status output.
#[derive(Debug, Clone, serde::Serialize)]
struct ServerInfo {
    listen: String,
    tls: String,
    client_cert_required: bool,
    uptime_s: u64,
    lease_margin_ms: u64,
    /// I/O worker processes (0: the sockets are served in the main process).
    workers: usize,
    version: &'static str,
}

/// Run the arbiter until SIGTERM/SIGINT (or `shutdown` resolves). `ready` gets the bound address.
///
/// Three threads: the I/O loop ([`super::reactor`]), the core (decisions, [`core_thread`]) and
/// the caller's tokio runtime, which only waits for signals and answers the status socket. With
/// `workers`, the I/O loops run in worker processes instead ([`super::workers`]).
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
    let start = Instant::now();
    let workers = if cfg.workers > 1 { cfg.workers } else { 0 };
    let (core_tx, core_rx) = std::sync::mpsc::channel::<CoreIn>();
    // the end of the socket side: `None` when the I/O thread stopped as asked, or why it failed
    // (its error, a worker's end)
    let (end_tx, mut end_rx) = tokio::sync::mpsc::unbounded_channel::<Option<String>>();
    let mut io_thread = None;
    let mut pool = None;
    let io_stop: Option<Arc<IoHandle>>;
    let deliver: Box<dyn Deliver + Send> = if workers == 0 {
        let (reactor, io) = Reactor::new(listener, ReactorConfig {
            tls,
            handshake_timeout: Duration::from_secs(cfg.tls.handshake_timeout_s.max(1)),
            max_clients: cfg.max_clients,
            clock: Clock(start),
            first_id: 1,
            id_step: 1,
        })
        .context("setting up the I/O loop (epoll)")?;
        let mut link = InProcess(core_tx.clone());
        let end = end_tx.clone();
        io_thread = Some(
            std::thread::Builder::new()
                .name("arbiter-io".into())
                .spawn(move || {
                    let failed = reactor.run(&mut link).err().map(|e| format!("the I/O loop failed: {e}"));
                    let _ = end.send(failed);
                })
                .context("starting the I/O thread")?,
        );
        io_stop = Some(io.clone());
        Box::new(io)
    } else {
        drop(tls); // each worker loads the TLS files itself
        let log_level = tracing::level_filters::LevelFilter::current().to_string().to_lowercase();
        let share = if cfg.max_clients > 0 { cfg.max_clients.div_ceil(workers) } else { 0 };
        let spec = |index: u64| super::workers::WorkerSpec {
            index,
            count: workers as u64,
            tls: (cfg.arbiter.tls != TlsSupported::Unsupported).then(|| cfg.tls.clone()),
            handshake_timeout_s: cfg.tls.handshake_timeout_s,
            max_clients: share,
            log_format: cfg.log_format,
            log_level: log_level.clone(),
        };
        let (w, out) = super::workers::Workers::start(listener, workers, spec, core_tx.clone(), Clock(start), end_tx.clone())
            .context("starting the I/O workers")?;
        pool = Some(w);
        io_stop = None;
        Box::new(out)
    };
    drop(end_tx);
    tracing::info!(listen = %local, tls = ?cfg.arbiter.tls, client_cert_required = cfg.arbiter.client_cert_required,
        lease_margin_ms = cfg.arbiter.lease_margin_ms, status_socket = %cfg.status_socket.display(), workers, "arbiter started");
    if let Some(r) = ready {
        let _ = r.send(local);
    }

    let info = ServerInfo {
        listen: local.to_string(),
        tls: cfg.tls.mode.clone(),
        client_cert_required: cfg.arbiter.client_cert_required,
        uptime_s: 0,
        lease_margin_ms: cfg.arbiter.lease_margin_ms,
        workers,
        version: env!("CARGO_PKG_VERSION"),
    };
    let core = {
        let cfg = cfg.arbiter.clone();
        let mut deliver = deliver;
        std::thread::Builder::new()
            .name("arbiter-core".into())
            .spawn(move || core_thread(cfg, start, core_rx, &mut *deliver, info))
            .context("starting the core thread")?
    };

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
    let mut failed = None;
    let reason = tokio::select! {
        _ = term.recv() => "SIGTERM".to_string(),
        _ = int.recv() => "SIGINT".to_string(),
        _ = shutdown => "shutdown request".to_string(),
        end = end_rx.recv() => {
            // `None`: every sender gone without a word (the I/O thread panicked)
            match end.unwrap_or_else(|| Some("the I/O side stopped".into())) {
                None => "the I/O loop stopped".to_string(),
                Some(why) => {
                    failed = Some(why.clone());
                    why
                }
            }
        }
    };
    tracing::info!(%reason, "arbiter stopping: closing all clients");
    if let Some(io) = io_stop {
        io.stop();
    }
    // the core thread ends here; with workers, its end of their links closes with it, and each
    // worker closes its clients and exits
    let _ = core_tx.send(CoreIn::Shutdown);
    drop(core_tx);
    let joined = tokio::task::spawn_blocking(move || {
        if let Some(t) = io_thread {
            let _ = t.join();
        }
        let _ = core.join();
        if let Some(p) = pool {
            p.reap(Duration::from_secs(3));
        }
    });
    let _ = tokio::time::timeout(Duration::from_secs(5), joined).await;
    if !cfg.status_socket.as_os_str().is_empty() {
        let _ = std::fs::remove_file(&cfg.status_socket);
    }
    if let Some(why) = failed {
        bail!("the arbiter stopped: {why}");
    }
    tracing::info!("arbiter stopped");
    Ok(())
}

fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    // mio's bind sets SO_REUSEADDR (a restarted arbiter rebinds at once) and a backlog of 1024
    let l = mio::net::TcpListener::bind(addr)?;
    use std::os::fd::{FromRawFd, IntoRawFd};
    // SAFETY: the descriptor was just taken out of `l`, which no longer owns it.
    Ok(unsafe { std::net::TcpListener::from_raw_fd(l.into_raw_fd()) })
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

/// The core's thread: owns the [`Arbiter`], feeds it the I/O loop's events with their arrival
/// times and its timer ticks, and hands each event's commands to the I/O loop.
fn core_thread(cfg: core::Config, start: Instant, rx: std::sync::mpsc::Receiver<CoreIn>, io: &mut dyn Deliver, info: ServerInfo) {
    use std::sync::mpsc::{RecvTimeoutError, TryRecvError};
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
    let mut timer: Option<Millis> = None;
    // first tick right away: the core may want a timer from the start (restart hold)
    let acts = arb.handle(feed(clock.now()), Event::Tick);
    io.deliver(apply(acts, None, &mut timer));
    // events handled since the output was last flushed
    let mut unflushed = 0;
    loop {
        if unflushed >= FLUSH_EVERY {
            io.flush();
            unflushed = 0;
        }
        // events that already arrived go first: a timer must not judge silence (dead peer,
        // lease) while the messages that end it wait in the queue
        let msg = match rx.try_recv() {
            Ok(m) => Some(m),
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                // the queue ran empty: send what was decided before waiting
                if unflushed > 0 {
                    io.flush();
                    unflushed = 0;
                }
                match timer {
                    Some(at) => {
                        let now = clock.now();
                        if at <= now {
                            None
                        } else {
                            match rx.recv_timeout(Duration::from_millis(at - now)) {
                                Ok(m) => Some(m),
                                Err(RecvTimeoutError::Timeout) => None,
                                Err(RecvTimeoutError::Disconnected) => break,
                            }
                        }
                    }
                    None => match rx.recv() {
                        Ok(m) => Some(m),
                        Err(_) => break,
                    },
                }
            }
        };
        unflushed += match &msg {
            Some(CoreIn::IoBatch(v)) => v.len(),
            _ => 1,
        };
        let Some(msg) = msg else {
            timer = None;
            let acts = arb.handle(feed(clock.now()), Event::Tick);
            io.deliver(apply(acts, None, &mut timer));
            continue;
        };
        let mut one = |m: ToCore| match m {
            ToCore::Connected { conn, peer } => {
                let acts = arb.handle(feed(clock.now()), Event::ClientConnected { conn, peer: peer.to_string() });
                io.deliver(apply(acts, None, &mut timer));
            }
            ToCore::Event { ev, reply_to, at } => {
                lag.note(clock.now(), at);
                let acts = arb.handle(feed(at), ev);
                io.deliver(apply(acts, reply_to, &mut timer));
            }
        };
        match msg {
            CoreIn::Io(m) => one(m),
            CoreIn::IoBatch(v) => v.into_iter().for_each(one),
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
}

/// One event's actions as the I/O loop's batches (one per socket, commands in order); the
/// timer request is kept, log lines are written.
fn apply(acts: Vec<Action>, reply_to: Option<ConnId>, timer: &mut Option<Millis>) -> Vec<(ConnId, Batch)> {
    let mut batches: Vec<(ConnId, Batch)> = Vec::new();
    let mut push = |conn: ConnId, cmd: ConnCmd| match batches.iter_mut().find(|(c, _)| *c == conn) {
        Some((_, b)) => b.cmds.push(cmd),
        None => batches.push((conn, Batch { cmds: vec![cmd], reply: Some(conn) == reply_to })),
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
            batches.push((r, Batch { cmds: Vec::new(), reply: true }));
        }
    }
    batches
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
