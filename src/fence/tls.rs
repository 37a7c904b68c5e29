//! TLS and minimal HTTP/1.1 plumbing shared by the RIBCL and Redfish drivers.
//!
//! Blocking std sockets + rustls (ring provider, chosen explicitly so another crate enabling a
//! second provider cannot make the choice ambiguous). Certificate checking is ON unless the
//! caller asks for `insecure`; a CA file (PEM) can replace the built-in web roots.
use super::power::PowerError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// How the peer's certificate is checked.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Accept any certificate (self-signed iLO/BMC certificates). Handshake signatures are still
    /// checked, so the channel is encrypted, but the peer is not authenticated.
    pub insecure: bool,
    /// Trust these PEM certificates instead of the built-in web roots.
    pub ca_file: Option<PathBuf>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts every certificate; used only with an explicit `ssl_insecure=1`.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Load PEM certificates from `path` (for `ssl_ca=FILE`).
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, PowerError> {
    use rustls::pki_types::pem::PemObject;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| PowerError::Config(format!("cannot read CA file {}: {e}", path.display())))?
        .collect();
    let certs = certs.map_err(|e| PowerError::Config(format!("CA file {} is not valid PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(PowerError::Config(format!(
            "CA file {} holds no CERTIFICATE block: give the PEM certificate of the device or its CA",
            path.display()
        )));
    }
    Ok(certs)
}

/// Build the client configuration for `opts`.
pub fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>, PowerError> {
    let prov = provider();
    let builder = ClientConfig::builder_with_provider(prov.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| PowerError::Config(format!("TLS set-up: {e}")))?;
    let cfg = if opts.insecure {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyCert(prov))).with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match &opts.ca_file {
            Some(path) => {
                for cert in load_ca_file(path)? {
                    roots.add(cert).map_err(|e| {
                        PowerError::Config(format!("CA file {}: certificate not usable as trust anchor: {e}", path.display()))
                    })?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(cfg))
}

/// Map an I/O error during an exchange with `what` to a PowerError kind with a useful message.
pub fn io_error(what: &str, e: &io::Error) -> PowerError {
    if let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        return tls_error(what, tls);
    }
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            PowerError::Timeout(format!("{what}: no answer in time ({e})"))
        }
        io::ErrorKind::ConnectionRefused => PowerError::Unreachable(format!(
            "{what}: connection refused: nothing listens there; check the address and ipport"
        )),
        io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe => {
            PowerError::Protocol(format!("{what}: the device closed the connection ({e})"))
        }
        _ => PowerError::Unreachable(format!("{what}: {e}")),
    }
}

fn tls_error(what: &str, e: &rustls::Error) -> PowerError {
    match e {
        rustls::Error::InvalidCertificate(reason) => PowerError::Protocol(format!(
            "{what}: TLS certificate not trusted ({reason:?}). iLOs and BMCs ship self-signed \
             certificates: give its certificate with ssl_ca=FILE (--ca), or accept any \
             certificate explicitly with ssl_insecure=1 (--ssl-insecure)"
        )),
        rustls::Error::AlertReceived(alert) => PowerError::Protocol(format!(
            "{what}: the device refused the TLS handshake ({alert:?}); old iLO/iLO2 firmware \
             speaks only SSLv3/TLS 1.0, which twonode does not offer: update the firmware or use \
             the external fence_ilo agent with --tls1.0"
        )),
        other => PowerError::Protocol(format!("{what}: TLS error: {other}")),
    }
}

/// Open a TCP connection (bounded by `connect_timeout`), then a TLS session; every later read
/// and write is bounded by `io_timeout`. The handshake is completed here, so certificate
/// problems surface as errors of this call.
pub fn connect(
    host: &str,
    port: u16,
    cfg: &Arc<ClientConfig>,
    connect_timeout: Duration,
    io_timeout: Duration,
) -> Result<TlsStream, PowerError> {
    let what = format!("{host}:{port}");
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| PowerError::Unreachable(format!("{what}: cannot resolve address: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(PowerError::Unreachable(format!("{what}: address resolves to nothing")));
    }
    let mut last = None;
    let mut tcp = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, connect_timeout) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let tcp = match tcp {
        Some(t) => t,
        None => {
            let e = last.unwrap_or_else(|| io::Error::other("no address"));
            return Err(match e.kind() {
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => PowerError::Unreachable(format!(
                    "{what}: no answer to the TCP connection within {:.1} s (login_timeout); \
                     is the device on this network?",
                    connect_timeout.as_secs_f64()
                )),
                _ => io_error(&what, &e),
            });
        }
    };
    let _ = tcp.set_nodelay(true);
    tcp.set_read_timeout(Some(io_timeout)).map_err(|e| io_error(&what, &e))?;
    tcp.set_write_timeout(Some(io_timeout)).map_err(|e| io_error(&what, &e))?;
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| PowerError::Config(format!("{host}: not a valid host name for TLS: {e}")))?;
    let conn = ClientConnection::new(cfg.clone(), name).map_err(|e| tls_error(&what, &e))?;
    let mut stream = StreamOwned::new(conn, tcp);
    // Drive the handshake now so that certificate errors are reported as such.
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                PowerError::Protocol(format!("{what}: the device closed the connection during the TLS handshake"))
            } else {
                io_error(&what, &e)
            }
        })?;
    }
    Ok(stream)
}

/// Read from `stream` into `buf` until EOF (clean or not: iLOs often close without close_notify).
/// Returns Ok even when the peer closed abruptly, as long as the read did not time out.
pub fn read_to_eof(stream: &mut impl Read, buf: &mut Vec<u8>, deadline: Instant, what: &str) -> Result<(), PowerError> {
    let mut chunk = [0u8; 8192];
    loop {
        if Instant::now() > deadline {
            return Err(PowerError::Timeout(format!("{what}: reply not complete in time")));
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset) => {
                return Ok(())
            }
            Err(e) => return Err(io_error(what, &e)),
        }
    }
}

/// How complete a reply read so far is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Keep reading (until EOF or the deadline).
    No,
    /// Complete: stop reading now.
    Yes,
    /// Looks complete, but the peer may add more: wait a short quiet period, then stop.
    Probably,
}

/// Read until the peer closes, `check` says the reply is complete, or (after `Probably`) the
/// peer stays quiet for 300 ms. Peers that keep the connection open are then not waited for.
pub fn read_reply(
    stream: &mut TlsStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    what: &str,
    check: &dyn Fn(&[u8]) -> Completion,
) -> Result<(), PowerError> {
    let quiet = Duration::from_millis(300);
    let mut chunk = [0u8; 8192];
    loop {
        let state = check(buf);
        if state == Completion::Yes {
            return Ok(());
        }
        let now = Instant::now();
        if now > deadline {
            return Err(PowerError::Timeout(format!("{what}: reply not complete in time")));
        }
        let wait = if state == Completion::Probably { quiet.min(deadline - now) } else { deadline - now };
        let _ = stream.sock.set_read_timeout(Some(wait.max(Duration::from_millis(1))));
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset) => {
                return Ok(())
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
                && state == Completion::Probably =>
            {
                return Ok(())
            }
            Err(e) => return Err(io_error(what, &e)),
        }
    }
}

/// Completion of an HTTP response: head parsed and the body complete by Content-Length or the
/// final chunk; without either, the peer's EOF ends it.
pub fn http_completion(raw: &[u8]) -> Completion {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(head)) = resp.parse(raw) else { return Completion::No };
    let body = &raw[head..];
    for h in resp.headers.iter() {
        let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
        if h.name.eq_ignore_ascii_case("content-length") {
            return match v.trim().parse::<usize>() {
                Ok(n) if body.len() >= n => Completion::Yes,
                _ => Completion::No,
            };
        }
        if h.name.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked") {
            return if body.ends_with(b"\r\n0\r\n\r\n") || body == b"0\r\n\r\n" {
                Completion::Yes
            } else {
                Completion::No
            };
        }
    }
    if resp.code == Some(204) || resp.code == Some(304) {
        return Completion::Yes;
    }
    Completion::No
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Parse a complete HTTP/1.x response (head and body) from `raw`. Returns None when `raw` does
/// not start with an HTTP status line (e.g. a raw RIBCL reply).
pub fn parse_http_response(raw: &[u8]) -> Result<Option<HttpResponse>, String> {
    if !raw.starts_with(b"HTTP/") {
        return Ok(None);
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(raw).map_err(|e| format!("malformed HTTP response head: {e}"))? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Err("HTTP response head incomplete".into()),
    };
    let status = resp.code.unwrap_or(0);
    let reason = resp.reason.unwrap_or("").to_string();
    let hdrs: Vec<(String, String)> = resp
        .headers
        .iter()
        .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).trim().to_string()))
        .collect();
    let rest = &raw[head_len..];
    let chunked = hdrs
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else if let Some((_, len)) = hdrs.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-length")) {
        let len: usize = len.parse().map_err(|_| format!("bad Content-Length {len:?}"))?;
        if rest.len() < len {
            return Err(format!("HTTP body truncated: {} of {len} bytes", rest.len()));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Some(HttpResponse { status, reason, headers: hdrs, body }))
}

/// Decode a chunked body (tolerates a missing final chunk when the peer just closed).
pub fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return Ok(out); // peer closed without the 0 chunk
        };
        let line = String::from_utf8_lossy(&data[..eol]);
        let size_txt = line.split(';').next().unwrap_or("").trim();
        if size_txt.is_empty() {
            data = &data[eol + 2..];
            continue;
        }
        let size = usize::from_str_radix(size_txt, 16).map_err(|_| format!("bad chunk size {size_txt:?}"))?;
        if size == 0 {
            return Ok(out);
        }
        let start = eol + 2;
        let end = (start + size).min(data.len());
        out.extend_from_slice(&data[start..end]);
        if end < start + size {
            return Ok(out);
        }
        data = &data[(end + 2).min(data.len())..];
    }
}

/// One HTTP request on a fresh connection (`Connection: close`), returning the parsed response.
#[allow(clippy::too_many_arguments)]
pub fn https_request(
    host: &str,
    port: u16,
    cfg: &Arc<ClientConfig>,
    connect_timeout: Duration,
    io_timeout: Duration,
    method: &str,
    path: &str,
    extra_headers: &[(&str, String)],
    body: &[u8],
) -> Result<HttpResponse, PowerError> {
    let what = format!("{host}:{port}");
    let mut stream = connect(host, port, cfg, connect_timeout, io_timeout)?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n");
    for (k, v) in extra_headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PATCH" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes).map_err(|e| io_error(&what, &e))?;
    stream.flush().map_err(|e| io_error(&what, &e))?;
    let mut raw = Vec::new();
    read_reply(&mut stream, &mut raw, Instant::now() + io_timeout, &what, &http_completion)?;
    parse_http_response(&raw)
        .map_err(|e| PowerError::Protocol(format!("{what}: {e}")))?
        .ok_or_else(|| PowerError::Protocol(format!("{what}: the reply is not HTTP")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunk_handles_split_chunks() {
        let body = b"5\r\nhello\r\n7\r\n world!\r\n0\r\n\r\n";
        assert_eq!(dechunk(body).unwrap(), b"hello world!");
    }

    #[test]
    fn parse_http_with_content_length() {
        let raw = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabcdef";
        let r = parse_http_response(raw).unwrap().unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.body, b"abc");
        assert!(parse_http_response(b"<?xml version").unwrap().is_none());
    }
}
