//! HTTPS: a listener that completes TLS handshakes (rustls through tokio-rustls, with ring's
//! cryptography) in their own tasks, so a client that never finishes its handshake holds up
//! no other connection.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;

use crate::ServeError;

/// Longest a client may take over its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections handshaken and not yet taken by the server.
const QUEUE: usize = 256;

/// The TLS configuration from a PEM certificate chain and a PEM private key. Errors name the
/// file that cannot be used and why.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, ServeError> {
    let tls_file = |flag, path: &Path, problem| ServeError::TlsFile {
        flag,
        path: path.to_path_buf(),
        problem,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            tls_file(
                "--tls-cert",
                cert,
                format!("not a PEM certificate file: {e}"),
            )
        })?;
    if chain.is_empty() {
        return Err(tls_file(
            "--tls-cert",
            cert,
            "no certificate in it (a PEM `BEGIN CERTIFICATE` block)".to_string(),
        ));
    }
    let private_key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| tls_file("--tls-key", key, format!("not a PEM private key file: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|error| ServeError::Tls {
            what: "setting up TLS".to_string(),
            error,
        })?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|error| ServeError::Tls {
            what: format!(
                "--tls-cert {} and --tls-key {} do not make a usable pair",
                cert.display(),
                key.display()
            ),
            error,
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Connections accepted on a TCP listener, handed to the server once their TLS handshake is
/// done.
pub struct TlsListener {
    address: SocketAddr,
    connections: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Starts accepting on `listener` (call within the runtime).
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> io::Result<Self> {
        let address = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (handshaken, connections) = mpsc::channel(QUEUE);
        tokio::spawn(async move {
            while !handshaken.is_closed() {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, mostly: wait for some to close.
                        tracing::warn!("cannot accept a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, handshaken) = (acceptor.clone(), handshaken.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = handshaken.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self {
            address,
            connections,
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        self.connections
            .recv()
            .await
            .expect("the accepting task runs while the listener lives")
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.address)
    }
}
