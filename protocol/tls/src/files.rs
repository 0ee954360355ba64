//! The PEM files a TLS endpoint is configured with, and reading them.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::TlsError;

/// The PEM files of a TLS endpoint: a certificate chain and its private key
/// (required for a server, optional for a client) and a CA bundle (whom to
/// trust; for a server, whose client certificates to accept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: Option<PathBuf>,
    /// The private key of the leaf certificate (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// The CA certificates to trust.
    pub ca: Option<PathBuf>,
}

pub(crate) fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { what, path: path.to_path_buf(), source })
}

/// The files' bytes, concatenated: a reload happens when they change.
pub(crate) fn contents(files: &TlsFiles) -> Result<Vec<u8>, TlsError> {
    let mut all = Vec::new();
    for (what, path) in [("certificate", &files.cert), ("key", &files.key), ("CA", &files.ca)] {
        if let Some(path) = path {
            all.extend_from_slice(&read(what, path)?);
            all.push(0);
        }
    }
    Ok(all)
}

pub(crate) fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(what, path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem).collect::<Result<_, _>>().map_err(|e| TlsError::Pem {
        what,
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(TlsError::Pem { what, path: path.to_path_buf(), reason: "no CERTIFICATE block".into() });
    }
    Ok(certs)
}

pub(crate) fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read("key", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
        what: "key",
        path: path.to_path_buf(),
        reason: format!("no usable private key ({e})"),
    })
}

pub(crate) fn roots(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates("CA", path)? {
        roots.add(cert).map_err(TlsError::Rustls)?;
    }
    Ok(roots)
}

/// The crypto provider every configuration here uses (aws-lc-rs).
pub(crate) fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    use rustls::CipherSuite as C;
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    // The AES-GCM suites from ring: its AES-GCM has a VAES + VPCLMULQDQ
    // (AVX2) path that aws-lc has only for AVX-512 CPUs. Key exchange
    // (post-quantum hybrids), signatures and keys stay aws-lc-rs's.
    {
        use rustls::crypto::ring::cipher_suite as ring;
        let faster = [
            ring::TLS13_AES_128_GCM_SHA256,
            ring::TLS13_AES_256_GCM_SHA384,
            ring::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            ring::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            ring::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            ring::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ];
        for s in p.cipher_suites.iter_mut() {
            if let Some(r) = faster.iter().find(|r| r.suite() == s.suite()) {
                *s = *r;
            }
        }
    }
    // AES-128-GCM before AES-256-GCM (rustls' default order): as safe for
    // TLS's purposes and 10 AES rounds per block instead of 14, which
    // shows in a broker's CPU per byte (docs/performance.md, "TLS").
    // Stable: every other suite keeps its place.
    p.cipher_suites.sort_by_key(|s| {
        !matches!(
            s.suite(),
            C::TLS13_AES_128_GCM_SHA256
                | C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    std::sync::Arc::new(p)
}
