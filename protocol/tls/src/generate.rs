//! A private certificate authority that issues node and client
//! certificates (feature `generate`): what the tests and the local
//! cluster's secure mode use instead of openssl.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};

use crate::TlsFiles;

/// Why a certificate could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// rcgen refused the parameters.
    #[error("cannot generate a certificate")]
    Rcgen(#[source] rcgen::Error),
    /// A file could not be written.
    #[error("cannot write {path}")]
    Write {
        /// Which file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// A CA: its certificate (PEM) and what it signs with.
pub struct Authority {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").finish_non_exhaustive()
    }
}

impl Authority {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> Result<Self, GenerateError> {
        let key = KeyPair::generate().map_err(GenerateError::Rcgen)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(GenerateError::Rcgen)?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).map_err(GenerateError::Rcgen)?;
        Ok(Authority { cert_pem: cert.pem(), issuer: Issuer::new(params, key) })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A certificate for `names` (DNS SANs; the first is also the common
    /// name) and 127.0.0.1, good for serving and for client
    /// authentication: `(certificate PEM, private key PEM)`.
    pub fn issue(&self, names: &[&str]) -> Result<(String, String), GenerateError> {
        let key = KeyPair::generate().map_err(GenerateError::Rcgen)?;
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .map_err(GenerateError::Rcgen)?;
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        params.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).map_err(GenerateError::Rcgen)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Writes the CA certificate as `dir/ca.pem` and a certificate for
    /// `names` as `dir/<stem>.pem` + `dir/<stem>-key.pem` (mode 0600);
    /// returns the three as [`TlsFiles`].
    pub fn write(&self, dir: &Path, stem: &str, names: &[&str]) -> Result<TlsFiles, GenerateError> {
        let (cert, key) = self.issue(names)?;
        let ca = dir.join("ca.pem");
        let cert_path = dir.join(format!("{stem}.pem"));
        let key_path = dir.join(format!("{stem}-key.pem"));
        write(&ca, self.cert_pem.as_bytes(), 0o644)?;
        write(&cert_path, cert.as_bytes(), 0o644)?;
        write(&key_path, key.as_bytes(), 0o600)?;
        Ok(TlsFiles { cert: Some(cert_path), key: Some(key_path), ca: Some(ca) })
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// reader (a reloading server) never sees half a file.
fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), GenerateError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |source| GenerateError::Write { path: path.to_path_buf(), source };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}
