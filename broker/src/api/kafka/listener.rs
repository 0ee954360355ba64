//! The Kafka listener: accepts connections and serves each on its own task.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::connection::serve_connection;
use crate::service::BrokerService;

/// Serves Kafka clients on `listener` until `stop` is cancelled.
pub async fn serve(listener: TcpListener, core: Arc<BrokerService>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                tokio::spawn(serve_connection(stream, peer, core.clone(), stop.clone()));
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
