//! Who a gRPC call comes from, decided once per call before any handler
//! runs: a node its certificate proves, a user whose password the
//! `authorization` header carries (`Basic base64(user:password)`, checked
//! against the same SCRAM credentials as Kafka's SASL), a client
//! certificate's name, a local caller before the first user exists, or
//! anonymous where the cluster does not authenticate.

use base64::Engine;
use tonic::body::Body;
use tonic::Status;

use crate::authorizer::Session;
use crate::service::BrokerService;

/// Longest `authorization` header value read.
const MAX_AUTHORIZATION_BYTES: usize = 4096;

/// What authentication reads from a request, taken before any await (a
/// request's body is not `Sync`).
pub(super) struct Caller {
    tls: Option<strata_tls::TlsConnectInfo>,
    host: std::net::IpAddr,
    authorization: Option<http::HeaderValue>,
    path: String,
}

impl Caller {
    /// The caller of `req`.
    pub(super) fn of(req: &http::Request<Body>) -> Self {
        let tls = req.extensions().get::<strata_tls::TlsConnectInfo>().cloned();
        let tcp = req.extensions().get::<tonic::transport::server::TcpConnectInfo>();
        let host = tls
            .as_ref()
            .and_then(|t| t.remote)
            .or_else(|| tcp.and_then(|t| t.remote_addr()))
            .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
        Caller {
            tls,
            host,
            authorization: req.headers().get(http::header::AUTHORIZATION).cloned(),
            path: req.uri().path().to_string(),
        }
    }
}

/// The caller's session, or the refusal to send back.
pub(super) async fn authenticate(core: &BrokerService, caller: Caller) -> Result<Session, Status> {
    let Caller { tls, host, authorization, path } = caller;
    let tls = tls.as_ref();
    if let Some(node) = tls.and_then(|t| t.node_id()) {
        return Ok(Session::node(node, host));
    }
    if let Some(value) = authorization {
        if !core.config.grpc_passwords {
            return Err(Status::unauthenticated(
                "SASL_AUTHENTICATION_FAILED: this cluster takes passwords only over TLS with SASL on \
                 (connect with --tls, or use a client certificate)",
            ));
        }
        let (user, password) = basic_credentials(value.as_bytes())
            .ok_or_else(|| Status::unauthenticated("SASL_AUTHENTICATION_FAILED: a malformed authorization header"))?;
        if core.check_password(&user, &password).await {
            return Ok(Session::new(format!("User:{user}"), host));
        }
        tracing::info!(%user, %host, "refused a gRPC call: wrong user name or password");
        return Err(Status::unauthenticated(format!(
            "SASL_AUTHENTICATION_FAILED: wrong user name or password for user '{user}'"
        )));
    }
    if let Some(name) = tls.and_then(strata_tls::TlsConnectInfo::principal_name) {
        return Ok(Session::new(format!("User:{name}"), host));
    }
    if core.config.authenticate_clients && host.is_loopback() && core.controller.metadata().users.is_empty() {
        tracing::warn!(%path, "an unauthenticated local gRPC call is served because the cluster has no user yet: create one");
        return Ok(Session::first_user_bootstrap(host));
    }
    if core.config.authenticate_clients {
        let who = tls.map_or_else(|| format!("{host} (no TLS)"), |t| t.describe());
        tracing::info!(peer = %who, %path, "refused an unauthenticated gRPC call");
        return Err(Status::unauthenticated(format!(
            "this cluster authenticates its clients: give a user and password (--user/--password) or a \
             client certificate (--cert-file/--key-file); got {who}"
        )));
    }
    Ok(Session::anonymous(host))
}

/// `(user, password)` from `Basic base64(user:password)`.
fn basic_credentials(value: &[u8]) -> Option<(String, String)> {
    if value.len() > MAX_AUTHORIZATION_BYTES {
        return None;
    }
    let encoded = value.strip_prefix(b"Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    (!user.is_empty()).then(|| (user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_parse_and_refuse_garbage() {
        let header = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("alice:pa:ss"));
        assert_eq!(basic_credentials(header.as_bytes()), Some(("alice".into(), "pa:ss".into())));
        assert_eq!(basic_credentials(b"Bearer abc"), None);
        assert_eq!(basic_credentials(b"Basic !!!"), None);
        let no_user = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(":pw"));
        assert_eq!(basic_credentials(no_user.as_bytes()), None);
        assert_eq!(basic_credentials(&vec![b'A'; MAX_AUTHORIZATION_BYTES + 1]), None);
    }
}
