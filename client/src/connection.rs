//! One tonic `Channel` per broker address, opened on first use and shared
//! by every request to that broker (HTTP/2 multiplexes them).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_protocol::v1::strata_client::StrataClient;
use tokio::sync::OnceCell;
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};

use crate::error::ClientError;

/// Largest gRPC message the client encodes or decodes: above any produce
/// request (`max_request_bytes`) or fetch response (`max_bytes`) it allows.
pub(crate) const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// HTTP/2 flow-control windows: large enough that one stream can carry a
/// multi-MiB fetch response without waiting for window updates.
const STREAM_WINDOW: u32 = 8 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;

/// How long opening a TCP + HTTP/2 connection may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The generated gRPC client over a shared channel, adding the caller's
/// credentials to every call.
pub(crate) type Client = StrataClient<InterceptedService<Channel, Authorization>>;

/// Puts the `authorization` header (if the client has credentials) on every
/// request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Authorization {
    header: Option<http::HeaderValue>,
    metadata: Option<tonic::metadata::AsciiMetadataValue>,
}

impl Authorization {
    fn new(header: Option<http::HeaderValue>) -> Self {
        let metadata = header.as_ref().and_then(|h| h.to_str().ok()).and_then(|s| s.parse().ok()).map(
            |mut v: tonic::metadata::AsciiMetadataValue| {
                v.set_sensitive(true);
                v
            },
        );
        Authorization { header, metadata }
    }
}

impl Interceptor for Authorization {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.metadata {
            req.metadata_mut().insert("authorization", value.clone());
        }
        Ok(req)
    }
}

/// Channels by `host:port`.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    channels: Mutex<HashMap<String, Arc<OnceCell<Channel>>>>,
    /// TLS to the brokers, if the client uses it.
    tls: Option<strata_tls::ClientTls>,
    /// The credentials header, if the client has credentials.
    authorization: Authorization,
}

impl Connections {
    /// Connections over TLS with `tls` (plaintext when `None`).
    pub(crate) fn new(tls: Option<strata_tls::ClientTls>, authorization: Option<http::HeaderValue>) -> Self {
        Connections { channels: Mutex::default(), tls, authorization: Authorization::new(authorization) }
    }

    /// The credentials header for calls made without the generated client.
    pub(crate) fn authorization(&self) -> Option<&http::HeaderValue> {
        self.authorization.header.as_ref()
    }

    /// A client for `address`, connecting if no channel is open yet. A failed
    /// connect is not cached: the next call dials again.
    pub(crate) async fn client(&self, address: &str) -> Result<Client, ClientError> {
        Ok(StrataClient::with_interceptor(self.channel(address).await?, self.authorization.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    /// The channel to `address` itself, for calls made without the
    /// generated client (the zero-copy produce).
    pub(crate) async fn channel(&self, address: &str) -> Result<Channel, ClientError> {
        let cell = {
            let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
            channels.entry(address.to_owned()).or_default().clone()
        };
        Ok(cell.get_or_try_init(|| connect(address, self.tls.as_ref())).await?.clone())
    }
}

async fn connect(address: &str, tls: Option<&strata_tls::ClientTls>) -> Result<Channel, ClientError> {
    let bad = |e: tonic::transport::Error| ClientError::InvalidArgument(format!("bad broker address '{address}': {e}"));
    let tune = |ep: Endpoint| {
        ep.tcp_nodelay(true)
            .tcp_keepalive(Some(Duration::from_secs(60)))
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
    };
    tracing::debug!(address, tls = tls.is_some(), "connecting to broker");
    let failed = |e| ClientError::Connect { address: address.to_owned(), cause: Arc::new(e) };
    match tls {
        Some(tls) => {
            let host_port = address.split_once("://").map_or(address, |(_, a)| a);
            // Connected now, as the plaintext path is, so a TLS failure
            // (untrusted certificate, plaintext server) is reported here.
            strata_tls::connect_channel(host_port, tls, CONNECT_TIMEOUT, tune).await.map_err(failed)
        }
        None => {
            let uri = if address.contains("://") { address.to_owned() } else { format!("http://{address}") };
            let endpoint = tune(Endpoint::from_shared(uri).map_err(bad)?.connect_timeout(CONNECT_TIMEOUT));
            endpoint.connect().await.map_err(failed)
        }
    }
}

/// Runs one gRPC call with a deadline, mapping the status and the timeout to
/// [`ClientError`]s. `what` names the request in a timeout message.
pub(crate) async fn call<T, F>(what: &str, timeout: Duration, fut: F) -> Result<T, ClientError>
where
    F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(ClientError::Transport(status)),
        Err(_) => Err(ClientError::Timeout(format!("no answer to {what} within {} ms", timeout.as_millis()))),
    }
}

/// Splits bootstrap entries into addresses: each entry may itself be a
/// comma-separated list (`"a:9700,b:9700"`); blanks are dropped.
pub(crate) fn parse_bootstrap<I, S>(bootstrap: I) -> Result<Vec<String>, ClientError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out: Vec<String> = Vec::new();
    for entry in bootstrap {
        for addr in entry.as_ref().split(',').map(str::trim).filter(|a| !a.is_empty()) {
            let addr = addr.strip_prefix("http://").unwrap_or(addr).trim_end_matches('/');
            if !addr.contains(':') {
                return Err(ClientError::InvalidArgument(format!("bootstrap address '{addr}' is not host:port")));
            }
            if !out.iter().any(|a| a == addr) {
                out.push(addr.to_owned());
            }
        }
    }
    if out.is_empty() {
        return Err(ClientError::InvalidArgument("no bootstrap address given".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_lists_split_and_dedup() {
        let got = parse_bootstrap(["a:1, b:2", "http://a:1/", "c:3"]).unwrap();
        assert_eq!(got, vec!["a:1", "b:2", "c:3"]);
        assert!(parse_bootstrap([" , "]).is_err());
        assert!(parse_bootstrap(["localhost"]).is_err());
    }
}
