//! Accepting TLS connections: handshakes off the accept loop, bounded in
//! time, each connection carrying its peer's address and certificates.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::{PeerCertificates, ServerTls, ServerTlsStream};

/// How long a client may take to finish its handshake before the
/// connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for the server to take them.
const BACKLOG: usize = 128;

/// An accepted TLS connection.
#[derive(Debug)]
pub struct TlsConn {
    inner: ServerTlsStream<TcpStream>,
    info: TlsConnectInfo,
}

/// Who is at the other end of a [`TlsConn`] (tonic puts it in every
/// request's extensions).
#[derive(Debug, Clone)]
pub struct TlsConnectInfo {
    /// The peer's address.
    pub remote: Option<SocketAddr>,
    /// The certificate chain the peer presented, if it presented one
    /// (verified against the CA).
    pub certificates: Option<PeerCertificates>,
    /// The node id the leaf certificate names, parsed once at the
    /// handshake (every replica fetch and Raft call asks for it).
    node: Option<u64>,
}

impl TlsConnectInfo {
    /// The node id the peer's certificate names (`strata-node-N`), if it
    /// presented one that does.
    pub fn node_id(&self) -> Option<u64> {
        self.node
    }

    /// The name a client certificate maps to as a principal (`User:NAME`):
    /// its subject common name, else its first DNS name (as Kafka's
    /// `ssl.principal.mapping.rules` are usually set to take the CN).
    pub fn principal_name(&self) -> Option<String> {
        let leaf = self.certificates.as_ref()?.first()?;
        crate::identity::common_name(leaf).or_else(|| crate::identity::names(leaf).into_iter().next())
    }

    /// Who the peer is, for log lines and errors: its address and the names
    /// in its certificate (or "no certificate").
    pub fn describe(&self) -> String {
        let names = self
            .certificates
            .as_ref()
            .and_then(|c| c.first())
            .map(crate::identity::names)
            .map_or_else(|| "no certificate".to_string(), |n| format!("certificate {n:?}"));
        match self.remote {
            Some(addr) => format!("{addr} ({names})"),
            None => names,
        }
    }
}

/// The node a request's TLS peer proves to be, for services that only
/// nodes may call: `Ok(node id)`, or `Err(who it was instead)` naming the
/// peer and its certificate.
pub fn calling_node<T>(req: &tonic::Request<T>) -> Result<u64, String> {
    match req.extensions().get::<TlsConnectInfo>() {
        Some(info) => info.node_id().ok_or_else(|| info.describe()),
        None => Err("a connection without TLS".to_string()),
    }
}

impl TlsConn {
    /// Who is at the other end.
    pub fn info(&self) -> &TlsConnectInfo {
        &self.info
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = TlsConnectInfo;
    fn connect_info(&self) -> TlsConnectInfo {
        self.info.clone()
    }
}

/// The accepted, handshaken connections of a listener, as a stream (what
/// tonic's `serve_with_incoming` and the Kafka listener take).
#[derive(Debug)]
pub struct TlsIncoming;

impl TlsIncoming {
    /// Accepts on `listener` until `stop` or until the stream is dropped;
    /// each handshake runs on its own task with [`HANDSHAKE_TIMEOUT`] and
    /// the configuration `tls` holds when it starts. A failed handshake
    /// (plaintext on a TLS port, an untrusted client certificate, a client
    /// that stalls) closes that connection only, with a debug log line.
    pub fn spawn(
        listener: TcpListener,
        tls: Arc<ServerTls>,
        what: &'static str,
        stop: CancellationToken,
    ) -> ReceiverStream<io::Result<TlsConn>> {
        let (tx, rx) = mpsc::channel(BACKLOG);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stop.cancelled() => return,
                    _ = tx.closed() => return,
                };
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(listener = what, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let certificates = stream.get_ref().1.peer_certificates().map(|c| Arc::new(c.to_vec()));
                            let node = certificates.as_ref().and_then(|c| c.first()).and_then(crate::identity::node_id);
                            let info = TlsConnectInfo { remote: Some(peer), certificates, node };
                            let _ = tx.send(Ok(TlsConn { inner: stream, info })).await;
                        }
                        Ok(Err(e)) => tracing::debug!(listener = what, %peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(listener = what, %peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        ReceiverStream::new(rx)
    }
}
