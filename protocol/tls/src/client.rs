//! The client side: whom to trust and what to present, reloadable like the
//! server side (a node's client certificate rotates with its server one).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::files::{self, provider};
use crate::{ClientTlsStream, TlsError, TlsFiles};

/// A client's TLS configuration: the CA to trust (the public web roots
/// when none is given) and, for mutual TLS, a certificate and key. Clones
/// share one configuration; [`ClientTls::reload_if_changed`] swaps it for
/// the connections opened afterwards.
#[derive(Debug, Clone)]
pub struct ClientTls {
    files: TlsFiles,
    alpn: Vec<Vec<u8>>,
    current: Arc<RwLock<(Arc<ClientConfig>, Vec<u8>)>>,
}

impl ClientTls {
    /// Builds it from `files` (cert and key together or neither); `alpn`
    /// lists the protocols offered (`h2` for gRPC).
    pub fn new(files: &TlsFiles, alpn: &[&[u8]]) -> Result<Self, TlsError> {
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let loaded = (build(files, &alpn)?, files::contents(files)?);
        Ok(ClientTls { files: files.clone(), alpn, current: Arc::new(RwLock::new(loaded)) })
    }

    /// The rustls configuration for a connection opened now.
    pub fn config(&self) -> Arc<ClientConfig> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).0.clone()
    }

    /// Rebuilds the configuration if a file changed (`Ok(true)`); an error
    /// keeps the previous one.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let contents = files::contents(&self.files)?;
        if contents == self.current.read().unwrap_or_else(|p| p.into_inner()).1 {
            return Ok(false);
        }
        let config = build(&self.files, &self.alpn)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (config, contents);
        Ok(true)
    }

    /// Checks the files every `interval` until `stop`, reloading on change.
    pub async fn watch(self, what: &'static str, interval: Duration, stop: CancellationToken) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => match self.reload_if_changed() {
                    Ok(true) => tracing::info!(link = what, "TLS certificate files changed: reloaded"),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(link = what, error = %e, "TLS certificate files changed but cannot be loaded; still using the previous ones"),
                },
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Runs the handshake over `tcp`, verifying the server's certificate
    /// against `host` (a DNS name or an IP address).
    pub async fn connect(&self, host: &str, tcp: TcpStream) -> std::io::Result<ClientTlsStream<TcpStream>> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, TlsError::ServerName(host.into())))?;
        tokio_rustls::TlsConnector::from(self.config()).connect(name, tcp).await
    }
}

fn build(files: &TlsFiles, alpn: &[Vec<u8>]) -> Result<Arc<ClientConfig>, TlsError> {
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
    config.alpn_protocols = alpn.to_vec();
    Ok(Arc::new(config))
}
