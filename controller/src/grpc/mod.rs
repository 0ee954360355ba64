//! The controller quorum over gRPC (`strata.v1.ControllerRaft`, port 9701 by
//! default): [`GrpcTransport`] carries Raft messages to peer voters,
//! [`RaftService`] receives them (and proposals forwarded by followers), and
//! the forwarder lets any voter propose through the leader.
//!
//! Raft messages are raft-rs's rust-protobuf 2 types, carried as `bytes` in
//! our own prost messages (`write_to_bytes` / `parse_from_bytes`). They are
//! decoded only here, from controller peers: the controller port must not be
//! reachable by clients (`docs/dependencies.md`, "raft-rs"; RUSTSEC-2024-0437).

mod forward;
mod service;
#[cfg(test)]
pub(crate) mod tests;
mod transport;

use std::time::Duration;

use strata_protocol::v1::controller_raft_client::ControllerRaftClient;
use strata_tls::ClientTls;
use tonic::transport::{Channel, Endpoint};

pub(crate) use forward::{Forwarded, Forwarder};
pub use service::RaftService;
pub use transport::GrpcTransport;

/// How long connecting to a peer voter may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one `Step` call to a peer may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest gRPC message on the controller port (snapshots travel in `Step`).
pub const MAX_GRPC_MESSAGE: usize = 256 << 20;

/// An endpoint for a peer's `host:port` (or a full `http://` URI).
fn endpoint(address: &str) -> Result<Endpoint, tonic::transport::Error> {
    let uri = if address.contains("://") { address.to_string() } else { format!("http://{address}") };
    Ok(Endpoint::from_shared(uri)?.connect_timeout(CONNECT_TIMEOUT).tcp_nodelay(true))
}

/// A lazily connecting client for a peer; `request_timeout` bounds every
/// call; with `tls`, the connection is TLS and presents this node's
/// certificate.
fn client(
    address: &str,
    request_timeout: Option<Duration>,
    tls: Option<&ClientTls>,
) -> Result<ControllerRaftClient<Channel>, tonic::transport::Error> {
    let timeout = |ep: Endpoint| match request_timeout {
        Some(t) => ep.timeout(t),
        None => ep,
    };
    let channel = match tls {
        Some(tls) => {
            let address = address.split_once("://").map_or(address, |(_, a)| a);
            strata_tls::channel(address, tls, CONNECT_TIMEOUT, timeout)?
        }
        None => timeout(endpoint(address)?).connect_lazy(),
    };
    Ok(ControllerRaftClient::new(channel)
        .max_decoding_message_size(MAX_GRPC_MESSAGE)
        .max_encoding_message_size(MAX_GRPC_MESSAGE))
}
