//! gRPC over TLS from the client side: tonic drives HTTP/2 over the
//! connections a [`Connector`] opens (TCP, then the TLS handshake against
//! the URI's host), so every node link and client uses the same rustls
//! configuration, client certificate included.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

use crate::{ClientTls, ClientTlsStream};

/// Opens TLS connections for tonic.
#[derive(Debug, Clone)]
pub struct Connector {
    tls: ClientTls,
}

impl Connector {
    /// Connections verified and authenticated with `tls`.
    pub fn new(tls: ClientTls) -> Self {
        Connector { tls }
    }
}

impl tower::Service<Uri> for Connector {
    type Response = TokioIo<ClientTlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let host = uri.host().ok_or_else(|| std::io::Error::other(format!("no host in {uri}")))?;
            let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            Ok(TokioIo::new(tls.connect(&host, tcp).await?))
        })
    }
}

/// A channel to `address` (`host:port`) over TLS, connected now: a refused
/// handshake (an untrusted certificate, a plaintext server) is the error.
pub async fn connect_channel(
    address: &str,
    tls: &ClientTls,
    connect_timeout: Duration,
    endpoint: impl FnOnce(Endpoint) -> Endpoint,
) -> Result<Channel, tonic::transport::Error> {
    let ep = Endpoint::from_shared(format!("http://{address}"))?.connect_timeout(connect_timeout);
    endpoint(ep).connect_with_connector(Connector::new(tls.clone())).await
}

/// A lazily connected channel to `address` (`host:port`) over TLS, with the
/// given connect timeout; `endpoint` adjusts the endpoint further (windows,
/// keepalive) before it is built.
pub fn channel(
    address: &str,
    tls: &ClientTls,
    connect_timeout: Duration,
    endpoint: impl FnOnce(Endpoint) -> Endpoint,
) -> Result<Channel, tonic::transport::Error> {
    let ep = Endpoint::from_shared(format!("http://{address}"))?.connect_timeout(connect_timeout);
    Ok(endpoint(ep).connect_with_connector_lazy(Connector::new(tls.clone())))
}
