//! Why TLS could not be set up.

use std::path::PathBuf;

/// A TLS configuration problem, naming the file or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("cannot read {what} file {path}")]
    Read {
        /// Which file (certificate, key, CA).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file holds nothing usable.
    #[error("{what} file {path}: {reason}")]
    Pem {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the certificate, key or CA.
    #[error("TLS configuration refused")]
    Rustls(#[source] rustls::Error),
    /// The client-certificate verifier could not be built from the CA.
    #[error("cannot verify client certificates with the CA: {0}")]
    Verifier(String),
    /// A server name to verify the peer against is not valid.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
}
