//! The server side: a rustls configuration built from [`TlsFiles`] and
//! rebuilt when the files change.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use tokio_util::sync::CancellationToken;

use crate::files::{self, provider};
use crate::{TlsError, TlsFiles};

/// A listener's TLS configuration, reloadable. Each handshake takes the
/// configuration current when it starts ([`ServerTls::config`]); a reload
/// swaps it for later handshakes only.
#[derive(Debug)]
pub struct ServerTls {
    files: TlsFiles,
    alpn: Vec<Vec<u8>>,
    current: RwLock<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    config: Arc<ServerConfig>,
    /// The files' bytes when loaded: a reload happens when they differ.
    contents: Vec<u8>,
}

impl ServerTls {
    /// Loads `files` (certificate and key required; with a CA, client
    /// certificates signed by it are verified when presented — a client
    /// without one may still connect and authenticate otherwise). `alpn`
    /// lists the application protocols offered (`h2` for gRPC).
    pub fn new(files: &TlsFiles, alpn: &[&[u8]]) -> Result<Arc<Self>, TlsError> {
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let (config, contents) = build(files, &alpn)?;
        Ok(Arc::new(ServerTls { files: files.clone(), alpn, current: RwLock::new(Loaded { config, contents }) }))
    }

    /// The configuration for a handshake starting now.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).config.clone()
    }

    /// Rebuilds the configuration if a file changed. `Ok(true)`: the new
    /// files are in use; an error keeps the previous configuration.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let contents = files::contents(&self.files)?;
        if contents == self.current.read().unwrap_or_else(|p| p.into_inner()).contents {
            return Ok(false);
        }
        let (config, contents) = build(&self.files, &self.alpn)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Loaded { config, contents };
        Ok(true)
    }

    /// Checks the files every `interval` until `stop`, reloading on change
    /// (logged; a failed reload is logged and the old files stay in use).
    pub async fn watch(self: Arc<Self>, what: &'static str, interval: Duration, stop: CancellationToken) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => match self.reload_if_changed() {
                    Ok(true) => tracing::info!(listener = what, "TLS certificate files changed: reloaded"),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(listener = what, error = %e, "TLS certificate files changed but cannot be loaded; still using the previous ones"),
                },
                _ = stop.cancelled() => return,
            }
        }
    }
}

fn build(files: &TlsFiles, alpn: &[Vec<u8>]) -> Result<(Arc<ServerConfig>, Vec<u8>), TlsError> {
    let snapshot = files::contents(files)?;
    let (Some(cert), Some(key)) = (&files.cert, &files.key) else {
        return Err(TlsError::Pem {
            what: "certificate",
            path: files.cert.clone().unwrap_or_default(),
            reason: "a TLS listener needs both a certificate file and a key file".into(),
        });
    };
    let chain = files::certificates("certificate", cert)?;
    let key = files::private_key(key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?;
    let builder = match &files.ca {
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(files::roots(ca)?), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(TlsError::Rustls)?;
    config.alpn_protocols = alpn.to_vec();
    // The server's suite order (AES-128-GCM first), not the client's:
    // OpenSSL-based clients (librdkafka) list AES-256 first.
    config.ignore_client_order = true;
    Ok((Arc::new(config), snapshot))
}
