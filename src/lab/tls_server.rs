//! The TLS listener under the lab's HTTPS BMC simulators (RIBCL iLO, Redfish): a fresh self-signed
//! certificate for localhost and 127.0.0.1 (what a BMC out of the box presents), an accept loop on
//! its own thread, and one thread per connection handed the TLS stream. Stops (and closes its
//! port) when dropped or on `stop()`.
use anyhow::{Context, Result};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A server-side TLS stream over a blocking TCP socket.
pub type ServerStream = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

pub struct TlsListener {
    addr: SocketAddr,
    cert_pem: String,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl TlsListener {
    /// Bind BIND and serve: each connection gets a thread named NAME running `handle(stream,
    /// stop)`, its socket blocking with TCP_NODELAY, READ_TIMEOUT on reads (short when the handler
    /// must notice `stop` while a client idles) and 10 s on writes. `stop` turns true when the
    /// listener stops.
    pub fn start<F>(bind: SocketAddr, name: &str, read_timeout: Duration, handle: F) -> Result<TlsListener>
    where
        F: Fn(ServerStream, &AtomicBool) + Send + Sync + 'static,
    {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .context("generating the self-signed certificate")?;
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_no_client_auth()
            .with_single_cert(vec![ck.cert.der().clone()], key)
            .context("TLS server certificate")?;
        let server = Arc::new(server);
        let listener = TcpListener::bind(bind).with_context(|| format!("binding {bind}"))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, handle) = (stop.clone(), Arc::new(handle));
        let conn_name = format!("{name}-conn");
        let accept = std::thread::Builder::new().name(format!("{name}-accept")).spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((sock, _)) => {
                        let (server, stop, handle) = (server.clone(), stop2.clone(), handle.clone());
                        let _ = std::thread::Builder::new().name(conn_name.clone()).spawn(move || {
                            let _ = sock.set_nonblocking(false);
                            let _ = sock.set_nodelay(true);
                            let _ = sock.set_read_timeout(Some(read_timeout));
                            let _ = sock.set_write_timeout(Some(Duration::from_secs(10)));
                            if let Ok(conn) = rustls::ServerConnection::new(server) {
                                handle(rustls::StreamOwned::new(conn, sock), &stop);
                            }
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        })?;
        Ok(TlsListener { addr, cert_pem: ck.cert.pem(), stop, accept: Some(accept) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The certificate clients see (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Stop accepting and close the port (connections being served end on their own).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.stop();
    }
}
