//! The client side: whom to trust and what to present.

use std::sync::Arc;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use crate::files::{self, provider};
use crate::{ClientTlsStream, TlsError, TlsFiles};

/// A client's TLS configuration: the CA to trust (the public web roots
/// when none is given) and, for mutual TLS, a certificate and key.
#[derive(Debug, Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
}

impl ClientTls {
    /// Builds it from `files` (cert and key together or neither); `alpn`
    /// lists the protocols offered (`h2` for gRPC).
    pub fn new(files: &TlsFiles, alpn: &[&[u8]]) -> Result<Self, TlsError> {
        let roots = match &files.ca {
            Some(ca) => files::roots(ca)?,
            None => rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() },
        };
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Rustls)?
            .with_root_certificates(roots);
        let mut config = match (&files.cert, &files.key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(files::certificates("certificate", cert)?, files::private_key(key)?)
                .map_err(TlsError::Rustls)?,
            (None, None) => builder.with_no_client_auth(),
            (Some(p), None) | (None, Some(p)) => {
                return Err(TlsError::Pem {
                    what: "certificate",
                    path: p.clone(),
                    reason: "a client certificate needs both a certificate file and a key file".into(),
                })
            }
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(ClientTls { config: Arc::new(config) })
    }

    /// The rustls configuration (for callers that drive the handshake).
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// Runs the handshake over `tcp`, verifying the server's certificate
    /// against `host` (a DNS name or an IP address).
    pub async fn connect(&self, host: &str, tcp: TcpStream) -> std::io::Result<ClientTlsStream<TcpStream>> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, TlsError::ServerName(host.into())))?;
        tokio_rustls::TlsConnector::from(self.config.clone()).connect(name, tcp).await
    }
}
