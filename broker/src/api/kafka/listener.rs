//! The Kafka listener: accepts connections (plaintext, or TLS through
//! `strata_tls`) and serves each on its own task.

use std::sync::Arc;

use strata_tls::{ServerTls, TlsIncoming};
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

use super::connection::serve_connection;
use crate::authorizer::Session;
use crate::service::BrokerService;

/// Serves Kafka clients on `listener` until `stop` is cancelled, in
/// plaintext, or over TLS with `tls` (handshakes bounded in time, a failed
/// one closing only its connection).
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    core: Arc<BrokerService>,
    stop: CancellationToken,
) {
    if let Some(tls) = tls {
        let mut incoming = TlsIncoming::spawn(listener, tls, "Kafka", stop.clone());
        while let Some(Ok(conn)) = incoming.next().await {
            let peer = conn.info().remote.unwrap_or_else(|| ([0, 0, 0, 0], 0).into());
            let session = Session::of_tls(conn.info(), peer.ip());
            tokio::spawn(serve_connection(conn, peer, session, core.clone(), stop.clone()));
        }
        return;
    }
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let session = Session::anonymous(peer.ip());
                tokio::spawn(serve_connection(stream, peer, session, core.clone(), stop.clone()));
            }
            Err(e) => {
                // Out of descriptors or a reset before accept: keep serving
                // the others, after a pause so a persistent error is not a
                // busy loop.
                tracing::warn!(error = %e, "accepting a Kafka connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}
