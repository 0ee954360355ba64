//! Who a certificate names: what node certificates are checked against
//! (a SAN DNS name `strata-node-N`) and what client certificates map to
//! (a principal).

use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The DNS names in the certificate's subject alternative names and its
/// subject common name (if any), in that order; empty when it cannot be
/// parsed.
pub fn names(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, x509)) = X509Certificate::from_der(cert.as_ref()) else { return Vec::new() };
    let mut out = Vec::new();
    if let Ok(Some(san)) = x509.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(d) = name {
                out.push((*d).to_string());
            }
        }
    }
    if let Some(cn) = x509.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()) {
        out.push(cn.to_string());
    }
    out
}

/// The certificate's subject common name, if it has one.
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, x509) = X509Certificate::from_der(cert.as_ref()).ok()?;
    let cn = x509.subject().iter_common_name().next()?.as_str().ok()?.to_string();
    Some(cn)
}

/// The node id a node certificate claims: the `N` of a name
/// `strata-node-N` among [`names`].
pub fn node_id(cert: &CertificateDer<'_>) -> Option<u64> {
    names(cert).iter().find_map(|n| n.strip_prefix("strata-node-").and_then(|id| id.parse().ok()))
}
