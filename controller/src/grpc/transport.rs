//! [`GrpcTransport`]: Raft messages to peer voters over `ControllerRaft.Step`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use protobuf::Message as _;
use raft::eraftpb::Message;
use strata_protocol::v1::RaftMessages;
use tokio::runtime::Handle;
use tokio::sync::mpsc::{self, error::TrySendError};

use crate::controller::Transport;

/// Messages queued per peer before new ones are dropped.
pub(super) const PEER_QUEUE: usize = 4096;
/// Most messages in one `Step` call.
const MAX_BATCH_MESSAGES: usize = 512;
/// A `Step` batch stops growing past this many bytes.
const MAX_BATCH_BYTES: usize = 8 << 20;
/// Pause after a failed `Step` before the next attempt.
const BACKOFF: Duration = Duration::from_millis(100);

/// A [`Transport`] over gRPC to the voters (and learners; the set changes
/// with [`Transport::set_peer`]). `send` never blocks: it
/// queues each message for its recipient (dropping and counting it when that
/// queue is full; Raft retries) and one tokio task per peer ships the queue in
/// batches, one `Step` call each, over a lazily (re)connected channel. The
/// tasks end when the transport is dropped (the Raft thread stopped).
#[derive(Debug)]
pub struct GrpcTransport {
    node_id: u64,
    /// Each peer's queue and address.
    peers: HashMap<u64, (mpsc::Sender<Message>, String)>,
    dropped: Arc<AtomicU64>,
    tls: Option<strata_tls::ClientTls>,
    runtime: Handle,
}

impl GrpcTransport {
    /// A transport for node `node_id` to every other voter in `voter_addresses`
    /// (`id → host:port`), its peer tasks spawned on `runtime`.
    pub fn new(node_id: u64, voter_addresses: &HashMap<u64, String>, runtime: &Handle) -> Self {
        Self::with_tls(node_id, voter_addresses, None, runtime)
    }

    /// [`Self::new`], over TLS with `tls` (this node's certificate, the
    /// cluster's CA) when given.
    pub fn with_tls(
        node_id: u64,
        voter_addresses: &HashMap<u64, String>,
        tls: Option<strata_tls::ClientTls>,
        runtime: &Handle,
    ) -> Self {
        let dropped = Arc::new(AtomicU64::new(0));
        let mut t = GrpcTransport { node_id, peers: HashMap::new(), dropped, tls, runtime: runtime.clone() };
        for (&peer, address) in voter_addresses {
            t.set_peer(peer, address);
        }
        t
    }

    /// A counter of the messages dropped so far (full queue, unknown peer,
    /// failed send): it stays readable after the transport moves into the
    /// controller.
    pub fn dropped_counter(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }
}

impl Transport for GrpcTransport {
    fn send(&mut self, msgs: Vec<Message>) {
        for msg in msgs {
            let to = msg.to;
            let queued = match self.peers.get(&to) {
                Some((tx, _)) => match tx.try_send(msg) {
                    Ok(()) => true,
                    Err(TrySendError::Full(_)) | Err(TrySendError::Closed(_)) => false,
                },
                None => {
                    tracing::debug!(node = self.node_id, to, "raft message for an unknown peer; dropped");
                    false
                }
            };
            if !queued {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn set_peer(&mut self, peer: u64, address: &str) {
        if peer == self.node_id || self.peers.get(&peer).is_some_and(|(_, a)| a == address) {
            return;
        }
        // A replaced sender ends the old task (its queue closes).
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        let task = run_peer(self.node_id, peer, address.to_string(), self.tls.clone(), rx, self.dropped.clone());
        self.runtime.spawn(task);
        self.peers.insert(peer, (tx, address.to_string()));
    }

    fn remove_peer(&mut self, peer: u64) {
        self.peers.remove(&peer);
    }
}

/// Ships one peer's queue until the transport is dropped.
async fn run_peer(
    node_id: u64,
    peer: u64,
    address: String,
    tls: Option<strata_tls::ClientTls>,
    mut rx: mpsc::Receiver<Message>,
    dropped: Arc<AtomicU64>,
) {
    let mut client = None;
    while let Some(first) = rx.recv().await {
        let mut messages = Vec::new();
        let mut bytes = 0;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg.write_to_bytes() {
                Ok(b) => {
                    bytes += b.len();
                    messages.push(Bytes::from(b));
                }
                Err(e) => {
                    tracing::warn!(node = node_id, peer, error = %strata_record::ErrorChain(&e), "cannot encode a raft message; dropped");
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            if messages.len() < MAX_BATCH_MESSAGES && bytes < MAX_BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        if messages.is_empty() {
            continue;
        }
        let count = messages.len() as u64;
        let c = match &mut client {
            Some(c) => c,
            None => match super::client(&address, Some(super::STEP_TIMEOUT), tls.as_ref()) {
                Ok(c) => client.insert(c),
                Err(e) => {
                    tracing::warn!(node = node_id, peer, %address, error = %strata_record::ErrorChain(&e), "bad controller peer address");
                    dropped.fetch_add(count, Ordering::Relaxed);
                    tokio::time::sleep(BACKOFF).await;
                    continue;
                }
            },
        };
        if let Err(status) = c.step(RaftMessages { messages }).await {
            tracing::debug!(node = node_id, peer, %address, error = %status, "raft step to peer failed; batch dropped");
            dropped.fetch_add(count, Ordering::Relaxed);
            // Reconnect next time: the peer may have restarted on a new connection.
            client = None;
            tokio::time::sleep(BACKOFF).await;
        }
    }
    tracing::debug!(node = node_id, peer, "raft transport to peer stopped");
}
