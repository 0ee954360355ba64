//! How a client proves who it talks to and who it is: TLS to the brokers
//! (trusting a CA, optionally presenting a certificate).

use strata_tls::{ClientTls, TlsFiles};

use crate::error::ClientError;

/// The client's security settings (default: plaintext).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    /// TLS to every broker: `Some` turns it on; its CA (unset: the public
    /// web roots) verifies the brokers, its certificate and key (optional)
    /// identify the client.
    pub tls: Option<TlsFiles>,
}

impl Security {
    /// TLS trusting `ca` (PEM), no client certificate.
    pub fn tls_with_ca(ca: impl Into<std::path::PathBuf>) -> Self {
        Security { tls: Some(TlsFiles { ca: Some(ca.into()), ..TlsFiles::default() }) }
    }

    /// The TLS configuration the connections use, if any.
    pub(crate) fn client_tls(&self) -> Result<Option<ClientTls>, ClientError> {
        self.tls
            .as_ref()
            .map(|files| {
                ClientTls::new(files, &[b"h2"])
                    .map_err(|e| ClientError::InvalidArgument(format!("TLS: {}", strata_record::ErrorChain(&e))))
            })
            .transpose()
    }
}
