//! How a client proves who it talks to and who it is: TLS to the brokers
//! (trusting a CA, optionally presenting a certificate), and a user name
//! and password sent with every call (checked by the brokers against the
//! same SCRAM credentials Kafka clients authenticate with).

use strata_tls::{ClientTls, TlsFiles};

use crate::error::ClientError;

/// The client's security settings (default: plaintext).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    /// TLS to every broker: `Some` turns it on; its CA (unset: the public
    /// web roots) verifies the brokers, its certificate and key (optional)
    /// identify the client.
    pub tls: Option<TlsFiles>,
    /// A user and password sent with every call (over TLS: brokers refuse
    /// a password in the clear unless they allow PLAIN without TLS).
    pub credentials: Option<Credentials>,
}

/// A user name and password.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The user.
    pub user: String,
    /// The password.
    pub password: String,
}

/// Never prints the password.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("user", &self.user).finish_non_exhaustive()
    }
}

impl Security {
    /// TLS trusting `ca` (PEM), no client certificate.
    pub fn tls_with_ca(ca: impl Into<std::path::PathBuf>) -> Self {
        Security { tls: Some(TlsFiles { ca: Some(ca.into()), ..TlsFiles::default() }), credentials: None }
    }

    /// These settings plus `user` and `password` on every call.
    pub fn with_credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some(Credentials { user: user.into(), password: password.into() });
        self
    }

    /// The `authorization` header the credentials make (`Basic`, as HTTP's
    /// RFC 7617), marked sensitive so it is never logged.
    pub(crate) fn authorization(&self) -> Result<Option<http::HeaderValue>, ClientError> {
        use base64::Engine;
        let Some(c) = &self.credentials else { return Ok(None) };
        if c.user.is_empty() || c.user.contains(':') {
            return Err(ClientError::InvalidArgument("a user name is not empty and has no ':'".into()));
        }
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.user, c.password));
        let mut value = http::HeaderValue::from_str(&format!("Basic {token}"))
            .map_err(|e| ClientError::InvalidArgument(format!("credentials: {e}")))?;
        value.set_sensitive(true);
        Ok(Some(value))
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
