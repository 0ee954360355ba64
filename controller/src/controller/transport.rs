//! How Raft messages leave a controller node. The Ready loop hands every
//! outgoing message to a [`Transport`]; incoming messages enter through a
//! [`RaftInbox`]. A gRPC transport (multi-voter quorum) implements the same
//! trait and feeds decoded peer messages to the inbox.

use std::collections::{HashMap, HashSet};
use std::sync::{mpsc, Arc, Mutex};

use raft::eraftpb::Message;

use super::node::Command;

/// Sends Raft messages to peer controllers. Delivery is best effort: Raft
/// retries whatever gets lost.
pub trait Transport: Send + 'static {
    /// Sends `msgs` (each names its recipient in `to`). Must not block for long:
    /// it runs on the Raft thread.
    fn send(&mut self, msgs: Vec<Message>);
}

/// A transport that drops everything: a single voter has no peers.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopTransport;

impl Transport for NoopTransport {
    fn send(&mut self, msgs: Vec<Message>) {
        if !msgs.is_empty() {
            tracing::trace!(count = msgs.len(), "no transport: dropping raft messages");
        }
    }
}

/// Where Raft messages from peers are delivered to a running controller.
#[derive(Debug, Clone)]
pub struct RaftInbox {
    pub(crate) tx: mpsc::Sender<Command>,
}

impl RaftInbox {
    /// Hands a message from a peer to the Raft thread; false if it has stopped.
    pub fn deliver(&self, msg: Message) -> bool {
        self.tx.send(Command::Raft(Box::new(msg))).is_ok()
    }
}

/// An in-process network between controllers, for tests: every message is
/// delivered straight to the recipient's inbox unless a node is isolated.
#[derive(Debug, Clone, Default)]
pub struct InMemoryNetwork {
    inner: Arc<Mutex<NetworkState>>,
}

#[derive(Debug, Default)]
struct NetworkState {
    inboxes: HashMap<u64, RaftInbox>,
    isolated: HashSet<u64>,
}

impl InMemoryNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// A transport for node `from` over this network.
    pub fn transport(&self, from: u64) -> InMemoryTransport {
        InMemoryTransport { from, network: self.clone() }
    }

    /// Makes node `id` reachable at `inbox` (replacing any earlier registration).
    pub fn register(&self, id: u64, inbox: RaftInbox) {
        self.state().inboxes.insert(id, inbox);
    }

    /// Cuts node `id` off: nothing it sends or should receive is delivered.
    pub fn isolate(&self, id: u64) {
        self.state().isolated.insert(id);
    }

    /// Reconnects an isolated node.
    pub fn heal(&self, id: u64) {
        self.state().isolated.remove(&id);
    }

    fn state(&self) -> std::sync::MutexGuard<'_, NetworkState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One node's end of an [`InMemoryNetwork`].
#[derive(Debug, Clone)]
pub struct InMemoryTransport {
    from: u64,
    network: InMemoryNetwork,
}

impl Transport for InMemoryTransport {
    fn send(&mut self, msgs: Vec<Message>) {
        let state = self.network.state();
        if state.isolated.contains(&self.from) {
            return;
        }
        for msg in msgs {
            if state.isolated.contains(&msg.to) {
                continue;
            }
            if let Some(inbox) = state.inboxes.get(&msg.to) {
                inbox.deliver(msg);
            }
        }
    }
}
