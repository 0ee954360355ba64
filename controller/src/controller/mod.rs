//! The controller handle: starts the Raft thread and talks to it.

mod balance;
#[cfg(test)]
mod fault_tests;
mod journal;
mod node;
#[cfg(test)]
mod tests;
mod transport;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use raft::eraftpb::Message;
use raft::RawNode;
use tokio::sync::{oneshot, watch};

pub use journal::MetadataDelta;
pub use transport::{InMemoryNetwork, InMemoryTransport, NoopTransport, RaftInbox, Transport};

use self::journal::{MetadataJournal, JOURNAL_CAPACITY};
use self::node::{Command, Liveness, Node};
use crate::error::ControllerError;
use crate::grpc::{Forwarded, Forwarder, GrpcTransport};
use crate::logging::raft_logger;
use crate::metadata::{CommandOutcome, MetadataCommand, MetadataImage, TopicInfo};
use crate::raft_storage::RaftStorage;

/// Controller addresses by node id, shared by the Raft thread (which
/// changes them as members join and leave) and the proposal forwarder.
pub(crate) type PeerAddresses = Arc<RwLock<HashMap<u64, String>>>;

/// Pause between attempts while `propose_anywhere` looks for a leader.
const FORWARD_RETRY: Duration = Duration::from_millis(50);

/// How long `Drop` waits for the Raft thread before leaving it to finish alone.
const DROP_JOIN_WAIT: Duration = Duration::from_secs(5);

/// Settings of one controller node.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// This node's Raft id (non-zero).
    pub node_id: u64,
    /// Directory of the Raft log, hard state and snapshots.
    pub data_dir: PathBuf,
    /// The voters used to bootstrap a new cluster (persisted on first start;
    /// later the persisted configuration wins). `[node_id]` for `dev`.
    pub voters: Vec<u64>,
    /// Duration of one Raft tick.
    pub tick_interval: Duration,
    /// Ticks without a leader before a follower campaigns.
    pub election_tick: usize,
    /// Ticks between leader heartbeats.
    pub heartbeat_tick: usize,
    /// Take a snapshot (and compact the log) every this many applied entries
    /// (0 counts as 1).
    pub snapshot_every: u64,
    /// How long `propose` waits for its command to be applied.
    pub propose_timeout: Duration,
    /// A registered broker that sends no heartbeat for this long is fenced by
    /// the leader (whose timers start at its election).
    pub session_timeout: Duration,
    /// How often the leader looks for partitions not led by their preferred
    /// replica (the first of `replicas`) although it is unfenced and in the
    /// ISR, and proposes a preferred election for them (Kafka's
    /// `auto.leader.rebalance.enable` with `leader.imbalance.check.interval.seconds`).
    /// `Duration::ZERO` disables automatic balancing.
    pub leader_balance_interval: Duration,
}

impl ControllerConfig {
    /// The single-voter configuration `strata-server dev` uses, with defaults:
    /// 100 ms ticks, election after 10, heartbeat every tick, a snapshot every
    /// 1000 entries, 5 s proposal timeout, 3 s broker session timeout, a
    /// preferred-leader balance check every 10 s.
    pub fn single_node(node_id: u64, data_dir: impl Into<PathBuf>) -> Self {
        ControllerConfig {
            node_id,
            data_dir: data_dir.into(),
            voters: vec![node_id],
            tick_interval: Duration::from_millis(100),
            election_tick: 10,
            heartbeat_tick: 1,
            snapshot_every: 1000,
            propose_timeout: Duration::from_secs(5),
            session_timeout: Duration::from_secs(3),
            leader_balance_interval: Duration::from_secs(10),
        }
    }
}

impl Default for ControllerConfig {
    /// [`ControllerConfig::single_node`] for node 1 in `./controller`.
    fn default() -> Self {
        ControllerConfig::single_node(1, "controller")
    }
}

/// A point-in-time view of this node's Raft state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerStatus {
    /// This node's id.
    pub node_id: u64,
    /// The leader this node knows of.
    pub leader_id: Option<u64>,
    /// The current Raft term.
    pub term: u64,
    /// The highest log index known to be committed.
    pub commit_index: u64,
    /// The highest log index applied to the metadata image.
    pub applied_index: u64,
    /// The current voters, ascending.
    pub voters: Vec<u64>,
    /// On the leader: the highest log index known to be replicated on each
    /// voter (its lag is `commit_index - match`). Empty on followers.
    pub voter_match_index: std::collections::BTreeMap<u64, u64>,
}

/// The quorum as its leader sees it: what `strata cluster info` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    /// The leader that answered.
    pub leader_id: u64,
    /// Its term.
    pub term: u64,
    /// Its commit index.
    pub commit_index: u64,
    /// For each voter, the highest log index known to be replicated on it
    /// (its lag is `commit_index - match`).
    pub voter_match_index: std::collections::BTreeMap<u64, u64>,
}

impl QuorumStatus {
    /// The quorum status from a leader's own status; `None` if it does not lead.
    pub fn from_leader(status: &ControllerStatus) -> Option<QuorumStatus> {
        (status.leader_id == Some(status.node_id)).then(|| QuorumStatus {
            leader_id: status.node_id,
            term: status.term,
            commit_index: status.commit_index,
            voter_match_index: status.voter_match_index.clone(),
        })
    }
}

/// A cloneable async handle on a running controller node.
#[derive(Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: u64,
    tx: mpsc::Sender<Command>,
    image_rx: watch::Receiver<Arc<MetadataImage>>,
    journal: MetadataJournal,
    status_rx: watch::Receiver<ControllerStatus>,
    stopped_rx: watch::Receiver<bool>,
    propose_timeout: Duration,
    /// The voters this node was configured with (not the persisted set).
    voters: Vec<u64>,
    /// Forwards proposals to the leader (nodes started with `start_with_grpc`).
    forwarder: Option<Forwarder>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").field("node_id", &self.inner.node_id).finish_non_exhaustive()
    }
}

/// Sets the `stopped` flag when the Raft thread ends, even by a panic.
struct StoppedGuard(watch::Sender<bool>);

impl Drop for StoppedGuard {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

impl Controller {
    /// Opens the data directory, reloads the Raft state and the metadata image,
    /// and starts the Raft thread. Single voter only (`voters == [node_id]`);
    /// a single voter campaigns at once and leads within one loop turn.
    pub fn start(config: ControllerConfig) -> Result<Controller, ControllerError> {
        if config.voters != [config.node_id] {
            return Err(ControllerError::Raft(raft::Error::ConfigInvalid(format!(
                "Controller::start runs a single voter: voters must be [{}], got {:?}; \
                 use start_with_transport for a quorum",
                config.node_id, config.voters
            ))));
        }
        Self::start_with_transport(config, Box::new(NoopTransport))
    }

    /// Like [`Controller::start`], for any voter set, sending Raft messages
    /// through `transport`; peers' messages come in through [`Controller::raft_inbox`].
    pub fn start_with_transport(
        config: ControllerConfig,
        transport: Box<dyn Transport>,
    ) -> Result<Controller, ControllerError> {
        Self::start_inner(config, transport, None, PeerAddresses::default())
    }

    /// Starts a voter of a multi-voter quorum over gRPC. `voter_addresses`
    /// maps every voter's id to its controller `host:port`; it replaces
    /// `config.voters`. A node not among them whose data directory holds no
    /// Raft state joins: it waits, with no vote, until a voter adds it
    /// (`strata cluster add-voter`). Raft messages leave through a
    /// [`GrpcTransport`] whose tasks run on `runtime`; peers' messages arrive
    /// through a [`crate::RaftService`] the caller serves on this node's
    /// address. [`Controller::propose_anywhere`] (and the convenience methods)
    /// forward proposals to the leader. Works for a single voter too.
    pub fn start_with_grpc(
        config: ControllerConfig,
        voter_addresses: HashMap<u64, String>,
        runtime: tokio::runtime::Handle,
    ) -> Result<Controller, ControllerError> {
        Self::start_with_grpc_tls(config, voter_addresses, None, runtime)
    }

    /// [`Self::start_with_grpc`], with TLS (this node's certificate, the
    /// cluster's CA) on the connections to the other voters when given.
    pub fn start_with_grpc_tls(
        mut config: ControllerConfig,
        voter_addresses: HashMap<u64, String>,
        tls: Option<strata_tls::ClientTls>,
        runtime: tokio::runtime::Handle,
    ) -> Result<Controller, ControllerError> {
        config.voters = sorted(&voter_addresses.keys().copied().collect::<Vec<_>>());
        let transport = GrpcTransport::with_tls(config.node_id, &voter_addresses, tls.clone(), &runtime);
        let addresses = Arc::new(RwLock::new(voter_addresses));
        Self::start_inner(config, Box::new(transport), Some(Forwarder::new(addresses.clone(), tls)), addresses)
    }

    fn start_inner(
        config: ControllerConfig,
        mut transport: Box<dyn Transport>,
        forwarder: Option<Forwarder>,
        addresses: PeerAddresses,
    ) -> Result<Controller, ControllerError> {
        let id = config.node_id;
        if id == 0 || config.voters.is_empty() || config.voters.contains(&0) {
            return Err(ControllerError::Raft(raft::Error::ConfigInvalid(format!(
                "node id and voters must be non-zero (node {id}, voters {:?})",
                config.voters
            ))));
        }
        let mut storage = RaftStorage::open(&config.data_dir)?;
        if !storage.is_initialized() && !config.voters.contains(&id) {
            if forwarder.is_none() {
                return Err(ControllerError::Raft(raft::Error::ConfigInvalid(format!(
                    "node {id} is not in the controller voters {:?}",
                    config.voters
                ))));
            }
            tracing::warn!(
                node = id,
                voters = ?config.voters,
                "this node is not a controller voter and holds no Raft state: it waits to be added \
                 (strata cluster add-voter {id} --address <its controller address>)"
            );
        } else if !storage.is_initialized() {
            storage.bootstrap(&config.voters)?;
        } else if sorted(&storage.conf_state().voters) != sorted(&config.voters) {
            tracing::info!(
                persisted = ?storage.conf_state().voters,
                configured = ?config.voters,
                "using the persisted controller voter set"
            );
        }
        let image = load_image(&storage)?;
        // Members added at run time: the image remembers their addresses.
        for (peer, address) in &image.controller_addresses {
            transport.set_peer(*peer, address);
            addresses.write().unwrap_or_else(|p| p.into_inner()).insert(*peer, address.clone());
        }
        let raft_config = raft::Config {
            id,
            election_tick: config.election_tick,
            heartbeat_tick: config.heartbeat_tick,
            applied: storage.snapshot_index(),
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        let single_voter = storage.conf_state().voters == [id] && storage.conf_state().learners.is_empty();
        let mut raw = RawNode::new(&raft_config, storage, &raft_logger(id))?;
        if single_voter {
            raw.campaign()?;
        }

        let image = Arc::new(image);
        let (image_tx, image_rx) = watch::channel(image.clone());
        let journal = MetadataJournal::new(image.clone(), JOURNAL_CAPACITY);
        let (stopped_tx, stopped_rx) = watch::channel(false);
        let (tx, rx) = mpsc::channel();
        let mut node = Node {
            raw,
            id,
            tick_interval: config.tick_interval,
            snapshot_every: config.snapshot_every,
            transport,
            image,
            image_tx,
            journal: journal.clone(),
            staged: Vec::new(),
            snapshot_installed: None,
            status_tx: watch::channel(empty_status(id)).0,
            incarnation: uuid::Uuid::new_v4().as_u64_pair().0,
            next_seq: 1,
            pending: HashMap::new(),
            completed: Vec::new(),
            init_in_flight: None,
            was_leader: false,
            session_timeout: config.session_timeout,
            liveness: Liveness::new(0),
            leader_balance_interval: config.leader_balance_interval,
            next_balance: Instant::now() + config.leader_balance_interval,
            next_unclean: None,
            addresses,
            next_promotion: Instant::now(),
        };
        let (status_tx, status_rx) = watch::channel(node.status());
        node.status_tx = status_tx;
        let thread = std::thread::Builder::new()
            .name(format!("strata-controller-{id}"))
            .spawn(move || {
                let _guard = StoppedGuard(stopped_tx);
                node.run(rx);
            })
            .map_err(|e| ControllerError::io(&config.data_dir, e))?;
        Ok(Controller {
            inner: Arc::new(Inner {
                node_id: id,
                tx,
                image_rx,
                journal,
                status_rx,
                stopped_rx,
                propose_timeout: config.propose_timeout,
                voters: config.voters.clone(),
                forwarder,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Proposes `cmd` and waits until it is committed and applied; returns the
    /// state machine's verdict. Fails fast with `NotLeader` on a non-leader,
    /// with `Timeout` after the configured wait, `Stopped` once stopped.
    pub async fn propose(&self, cmd: MetadataCommand) -> Result<CommandOutcome, ControllerError> {
        let (reply, rx) = oneshot::channel();
        self.inner.tx.send(Command::Propose { cmd, reply }).map_err(|_| ControllerError::Stopped)?;
        match tokio::time::timeout(self.inner.propose_timeout, rx).await {
            Err(_) => Err(ControllerError::Timeout),
            Ok(Err(_)) => Err(ControllerError::Stopped),
            Ok(Ok(result)) => result,
        }
    }

    /// Proposes `cmd` from any voter: locally when this node leads, else
    /// forwarded to the leader's `ControllerRaft.Propose` (nodes started with
    /// [`Controller::start_with_grpc`]; other nodes just [`Controller::propose`]).
    /// While no leader is known, or the one tried is unreachable or no longer
    /// leads, it retries, all within the configured proposal timeout
    /// (`Timeout` after it). The leader's errors come back as the same
    /// variants (`Metadata(..)` unchanged; `Remote` for the leader's storage
    /// or raft-rs failures). A proposal whose leader was lost while it was in
    /// flight may be applied and also retried: a retried create can then
    /// report `TopicAlreadyExists`.
    pub async fn propose_anywhere(&self, cmd: MetadataCommand) -> Result<CommandOutcome, ControllerError> {
        let Some(forwarder) = &self.inner.forwarder else { return self.propose(cmd).await };
        self.on_leader(
            |remaining| {
                let cmd = cmd.clone();
                async move {
                    tokio::time::timeout(remaining, self.propose(cmd)).await.unwrap_or(Err(ControllerError::Timeout))
                }
            },
            |leader, remaining| forwarder.propose(leader, &cmd, remaining),
        )
        .await
    }

    /// Records a heartbeat of broker `node_id` on the leader (forwarded there
    /// from other voters of a gRPC quorum, retrying like [`Controller::propose_anywhere`]).
    /// Liveness is in memory on the leader, not replicated: a broker that
    /// sends none for `session_timeout` is fenced (`FenceBroker`), and a
    /// heartbeat from a fenced broker unfences it (`UnfenceBroker`, proposed
    /// in the background). Fails with `Metadata(UnknownBroker)` for a broker
    /// the leader has not registered.
    pub async fn heartbeat(&self, node_id: u32) -> Result<(), ControllerError> {
        let Some(forwarder) = &self.inner.forwarder else { return self.heartbeat_local(node_id).await };
        self.on_leader(
            |_| self.heartbeat_local(node_id),
            |leader, remaining| forwarder.heartbeat(leader, node_id, remaining),
        )
        .await
    }

    /// Runs a request on the controller leader: `local` when this node
    /// leads, else `remote` against the leader it knows (or was hinted).
    /// Retries while no leader is known, the one tried is unreachable or no
    /// longer leads, or this node lost leadership mid-request; all within the
    /// proposal timeout (`Timeout` after it, `Stopped` once stopped).
    async fn on_leader<T, L, LF, R, RF>(&self, local: L, remote: R) -> Result<T, ControllerError>
    where
        L: Fn(Duration) -> LF,
        LF: std::future::Future<Output = Result<T, ControllerError>>,
        R: Fn(u64, Duration) -> RF,
        RF: std::future::Future<Output = Forwarded<T>>,
    {
        let me = self.inner.node_id;
        let deadline = Instant::now() + self.inner.propose_timeout;
        let mut hint = None;
        loop {
            if self.is_stopped() {
                return Err(ControllerError::Stopped);
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ControllerError::Timeout);
            }
            match self.status().leader_id.or(hint.take()) {
                Some(leader) if leader == me => match local(remaining).await {
                    Err(ControllerError::NotLeader { leader }) => hint = leader.filter(|&l| l != me),
                    result => return result,
                },
                Some(leader) => match remote(leader, remaining).await {
                    Forwarded::Done(result) => return result,
                    Forwarded::Retry { leader_hint } => hint = leader_hint.filter(|&l| l != leader),
                },
                None => {}
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(FORWARD_RETRY.min(remaining)).await;
        }
    }

    /// Records a heartbeat on this node, which must lead (`NotLeader` otherwise).
    pub(crate) async fn heartbeat_local(&self, node_id: u32) -> Result<(), ControllerError> {
        let (reply, rx) = oneshot::channel();
        self.inner.tx.send(Command::Heartbeat { node_id, reply }).map_err(|_| ControllerError::Stopped)?;
        rx.await.map_err(|_| ControllerError::Stopped)?
    }

    /// Creates a topic with a fresh UUID; returns it with its partition assignment.
    pub async fn create_topic(
        &self,
        name: impl Into<String>,
        partitions: u32,
        replication_factor: u32,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicInfo, ControllerError> {
        let cmd = MetadataCommand::CreateTopic {
            name: name.into(),
            topic_id: uuid::Uuid::new_v4().to_string(),
            partitions,
            replication_factor,
            configs,
        };
        match self.propose_anywhere(cmd).await? {
            CommandOutcome::TopicCreated { topic } => Ok(topic),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes a topic; returns the deleted topic's id.
    pub async fn delete_topic(&self, name: impl Into<String>) -> Result<String, ControllerError> {
        match self.propose_anywhere(MetadataCommand::DeleteTopic { name: name.into() }).await? {
            CommandOutcome::TopicDeleted { topic_id, .. } => Ok(topic_id),
            other => Err(unexpected(other)),
        }
    }

    /// Registers (or re-registers and unfences) a broker; true if it is new.
    pub async fn register_broker(
        &self,
        node_id: u32,
        address: impl Into<String>,
        rack: Option<String>,
    ) -> Result<bool, ControllerError> {
        match self
            .propose_anywhere(MetadataCommand::RegisterBroker {
                node_id,
                address: address.into(),
                rack,
                kafka_address: None,
            })
            .await?
        {
            CommandOutcome::BrokerRegistered { new, .. } => Ok(new),
            other => Err(unexpected(other)),
        }
    }

    /// This node's Raft id.
    pub fn node_id(&self) -> u64 {
        self.inner.node_id
    }

    /// The voters this node was started with (`ControllerConfig::voters`, or
    /// the ids of `start_with_grpc`'s voter map), ascending as given.
    pub fn configured_voters(&self) -> &[u64] {
        &self.inner.voters
    }

    /// The latest applied metadata image.
    pub fn metadata(&self) -> Arc<MetadataImage> {
        self.inner.image_rx.borrow().clone()
    }

    /// A receiver that sees every newly applied image (possibly skipping some).
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.inner.image_rx.clone()
    }

    /// The metadata a follower that applied everything up to `after` needs
    /// (the commands since, or a snapshot), waiting up to `max_wait` while
    /// nothing newer is applied on this node. Serves brokers without the
    /// controller role (`ControllerRaft.FetchMetadata`).
    pub async fn fetch_metadata(&self, after: u64, max_wait: Duration) -> Result<MetadataDelta, ControllerError> {
        if self.inner.journal.offset() <= after {
            let mut rx = self.inner.image_rx.clone();
            let _ = tokio::time::timeout(max_wait, rx.wait_for(|image| image.offset > after)).await;
        }
        if self.is_stopped() {
            return Err(ControllerError::Stopped);
        }
        Ok(self.inner.journal.since(after))
    }

    /// The quorum as the leader sees it (asked of the leader when this node
    /// does not lead), retrying like [`Controller::propose_anywhere`].
    pub async fn describe_quorum(&self) -> Result<QuorumStatus, ControllerError> {
        let local = |_| async {
            let status = self.status();
            QuorumStatus::from_leader(&status).ok_or(ControllerError::NotLeader { leader: status.leader_id })
        };
        match &self.inner.forwarder {
            None => local(Duration::ZERO).await,
            Some(forwarder) => {
                self.on_leader(local, |leader, remaining| forwarder.describe_quorum(leader, remaining)).await
            }
        }
    }

    /// True when `node_id` is a controller voter or learner now (one added
    /// at run time included), as far as this node has applied.
    pub fn is_member(&self, node_id: u64) -> bool {
        self.status().voters.contains(&node_id) || self.metadata().controller_addresses.contains_key(&node_id)
    }

    /// This node's Raft status.
    pub fn status(&self) -> ControllerStatus {
        self.inner.status_rx.borrow().clone()
    }

    /// True once the Raft thread has stopped (shutdown or a fatal error).
    pub fn is_stopped(&self) -> bool {
        *self.inner.stopped_rx.borrow()
    }

    /// Waits until a leader is known and the cluster id is applied here.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), ControllerError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.is_stopped() {
                return Err(ControllerError::Stopped);
            }
            if self.status().leader_id.is_some() && !self.metadata().cluster_id.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ControllerError::Timeout);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Where a transport delivers Raft messages from peers.
    pub fn raft_inbox(&self) -> RaftInbox {
        RaftInbox { tx: self.inner.tx.clone() }
    }

    /// Hands one Raft message from a peer to this node.
    pub fn step(&self, msg: Message) -> Result<(), ControllerError> {
        self.inner.tx.send(Command::Raft(Box::new(msg))).map_err(|_| ControllerError::Stopped)
    }

    /// Stops the Raft thread and waits for it. Other clones then fail with `Stopped`.
    pub async fn shutdown(self) {
        let _ = self.inner.tx.send(Command::Stop);
        let mut stopped = self.inner.stopped_rx.clone();
        let _ = stopped.wait_for(|s| *s).await;
        let handle = self.inner.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            // The thread has finished its work; joining returns at once.
            let _ = handle.join();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.tx.send(Command::Stop);
        let Some(handle) = self.thread.get_mut().unwrap_or_else(|p| p.into_inner()).take() else { return };
        let deadline = Instant::now() + DROP_JOIN_WAIT;
        while !handle.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if handle.is_finished() {
            let _ = handle.join();
        } else {
            tracing::warn!(node = self.node_id, "controller raft thread still busy; not waiting for it");
        }
    }
}

fn load_image(storage: &RaftStorage) -> Result<MetadataImage, ControllerError> {
    let index = storage.snapshot_index();
    if index == 0 {
        return Ok(MetadataImage::default());
    }
    let path = storage.dir().join(crate::raft_storage::SNAPSHOT_FILE);
    let mut image: MetadataImage = serde_json::from_slice(&storage.snapshot_ref().data)
        .map_err(|e| ControllerError::corrupt(&path, format!("snapshot data: {e}")))?;
    if image.offset != index {
        return Err(ControllerError::corrupt(&path, format!("image at {} in a snapshot at {index}", image.offset)));
    }
    image.offset = index;
    Ok(image)
}

fn sorted(ids: &[u64]) -> Vec<u64> {
    let mut v = ids.to_vec();
    v.sort_unstable();
    v
}

fn empty_status(node_id: u64) -> ControllerStatus {
    ControllerStatus {
        node_id,
        leader_id: None,
        term: 0,
        commit_index: 0,
        applied_index: 0,
        voters: Vec::new(),
        voter_match_index: Default::default(),
    }
}

fn unexpected(outcome: CommandOutcome) -> ControllerError {
    // Unreachable: each command has one kind of outcome.
    ControllerError::Raft(raft::Error::ConfigInvalid(format!("unexpected command outcome {outcome:?}")))
}
