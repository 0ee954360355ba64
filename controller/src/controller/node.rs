//! The Raft thread: owns the `RawNode`, the storage and the state machine,
//! and runs the Ready loop in the order raft-rs requires (`docs/dependencies.md`, "raft-rs").

use std::collections::HashMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, ConfChangeV2, Entry, EntryType, Message, Snapshot};
use raft::{RawNode, StateRole, Storage as _};
use tokio::sync::{oneshot, watch};

use super::journal::MetadataJournal;
use super::transport::Transport;
use super::ControllerStatus;
use crate::error::ControllerError;
use crate::metadata::{CommandOutcome, MetadataCommand, MetadataError, MetadataImage, VoterChange};
use crate::raft_storage::RaftStorage;

/// The reply to a proposal.
pub(crate) type Reply = oneshot::Sender<Result<CommandOutcome, ControllerError>>;

/// Work for the Raft thread.
pub(crate) enum Command {
    /// Propose a metadata command and reply once it is applied.
    Propose { cmd: MetadataCommand, reply: Reply },
    /// A broker heartbeat (this node must lead).
    Heartbeat { node_id: u32, reply: oneshot::Sender<Result<(), ControllerError>> },
    /// A Raft message from a peer.
    Raft(Box<Message>),
    /// Stop the thread.
    Stop,
}

/// Commands handled per wake-up before the Ready is processed.
const MAX_BATCH: usize = 4096;
/// Ready rounds per wake-up before yielding to new commands.
const MAX_READY_ROUNDS: usize = 16;
/// Bytes of a proposal context: node id, incarnation, sequence number.
const CONTEXT_LEN: usize = 24;

/// How often the leader looks for brokers whose session expired.
pub(crate) const SESSION_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// A session check this late means the controller itself was stalled.
const STALL_GRACE: Duration = Duration::from_secs(1);

/// How long the leader waits before proposing the same fence/unfence again.
const LIVENESS_RETRY: Duration = Duration::from_secs(1);

/// The leader's in-memory view of broker liveness (never replicated).
#[derive(Debug)]
pub(crate) struct Liveness {
    /// The term this view belongs to; a new term (new leadership) resets it.
    pub term: u64,
    /// When this node became leader: the session start of brokers not seen since.
    pub leader_since: Instant,
    /// The last heartbeat (or registration) of each broker.
    pub last_seen: HashMap<u32, Instant>,
    /// Fence (`true`) / unfence (`false`) proposals in flight, by broker.
    pub proposed: HashMap<(u32, bool), Instant>,
    /// When the next session check is due.
    pub next_check: Instant,
}

impl Liveness {
    pub(crate) fn new(term: u64) -> Self {
        let now = Instant::now();
        Liveness {
            term,
            leader_since: now,
            last_seen: HashMap::new(),
            proposed: HashMap::new(),
            next_check: now + SESSION_CHECK_INTERVAL,
        }
    }
}

/// Everything the Raft thread owns.
pub(crate) struct Node {
    pub raw: RawNode<RaftStorage>,
    pub id: u64,
    pub tick_interval: Duration,
    pub snapshot_every: u64,
    pub transport: Box<dyn Transport>,
    pub image: Arc<MetadataImage>,
    pub image_tx: watch::Sender<Arc<MetadataImage>>,
    /// Recent commands for brokers following metadata as deltas.
    pub journal: MetadataJournal,
    /// Commands applied since the image was last published.
    pub staged: Vec<(u64, bytes::Bytes)>,
    /// A snapshot installed since the image was last published (its offset).
    pub snapshot_installed: Option<u64>,
    pub status_tx: watch::Sender<ControllerStatus>,
    /// Random per start, so a context from an earlier run never matches.
    pub incarnation: u64,
    pub next_seq: u64,
    pub pending: HashMap<u64, Reply>,
    /// Results of applied proposals, sent once the new image is published so
    /// a caller that sees its reply also sees its change in `metadata()`.
    pub completed: Vec<(Reply, Result<CommandOutcome, ControllerError>)>,
    /// The sequence number of our in-flight `InitCluster`, if any.
    pub init_in_flight: Option<u64>,
    pub was_leader: bool,
    /// A broker that sends no heartbeat for this long is fenced (by the leader).
    pub session_timeout: Duration,
    pub liveness: Liveness,
    /// How often the leader runs a preferred-leader balance check (zero: never).
    pub leader_balance_interval: Duration,
    /// When the next balance check is due.
    pub next_balance: Instant,
    /// When an unclean election may be proposed again.
    pub next_unclean: Option<Instant>,
    /// Controller addresses, shared with the proposal forwarder.
    pub addresses: super::PeerAddresses,
    /// When the leader next looks for learners to promote.
    pub next_promotion: Instant,
}

/// How often the leader looks for caught-up learners to promote.
const PROMOTION_CHECK: Duration = Duration::from_millis(200);

impl Node {
    /// Runs until `Stop` or a fatal storage error; pending proposals then fail
    /// with `Stopped` (their reply channels are dropped).
    pub(super) fn run(mut self, rx: mpsc::Receiver<Command>) {
        let mut next_tick = Instant::now() + self.tick_interval;
        let mut busy = self.raw.has_ready();
        loop {
            let wake = next_tick.min(self.liveness.next_check);
            let wait = if busy { Duration::ZERO } else { wake.saturating_duration_since(Instant::now()) };
            let first = match rx.recv_timeout(wait) {
                Ok(cmd) => Some(cmd),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut stop = false;
            for cmd in first.into_iter().chain(std::iter::from_fn(|| rx.try_recv().ok()).take(MAX_BATCH)) {
                match cmd {
                    Command::Propose { cmd, reply } => self.propose(cmd, reply),
                    Command::Heartbeat { node_id, reply } => {
                        let _ = reply.send(self.heartbeat(node_id));
                    }
                    Command::Raft(msg) => {
                        if let Err(e) = self.raw.step(*msg) {
                            tracing::debug!(error = %strata_record::ErrorChain(&e), "dropping raft message");
                        }
                    }
                    Command::Stop => stop = true,
                }
            }
            if stop {
                break;
            }
            if Instant::now() >= next_tick {
                self.raw.tick();
                next_tick = Instant::now() + self.tick_interval;
                self.pending.retain(|_, reply| !reply.is_closed());
            }
            if Instant::now() >= self.liveness.next_check {
                self.check_sessions();
            }
            match self.process_readies() {
                Ok(more) => busy = more,
                Err(e) => {
                    tracing::error!(node = self.id, error = %strata_record::ErrorChain(&e), "controller raft loop failed; stopping");
                    break;
                }
            }
        }
        tracing::debug!(node = self.id, "controller raft thread stopped");
    }

    fn propose(&mut self, cmd: MetadataCommand, reply: Reply) {
        if self.raw.raft.state != StateRole::Leader {
            let _ = reply.send(Err(ControllerError::NotLeader { leader: self.leader() }));
            return;
        }
        if let MetadataCommand::RegisterBroker { node_id, .. } = cmd {
            // A registration counts as a heartbeat.
            self.liveness().last_seen.insert(node_id, Instant::now());
        }
        if let MetadataCommand::ChangeControllerVoter { change } = cmd {
            match self.propose_voter_change(&change) {
                Ok(seq) => {
                    self.pending.insert(seq, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            }
            return;
        }
        match self.propose_raw(&cmd) {
            Ok(seq) => {
                self.pending.insert(seq, reply);
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// The liveness view of the current leadership (reset when the term changed,
    /// so every broker's session restarts at the election).
    fn liveness(&mut self) -> &mut Liveness {
        let term = self.raw.raft.term;
        if self.liveness.term != term {
            self.liveness = Liveness::new(term);
        }
        &mut self.liveness
    }

    /// Records a heartbeat on the leader; a fenced broker gets unfenced.
    fn heartbeat(&mut self, node_id: u32) -> Result<(), ControllerError> {
        if self.raw.raft.state != StateRole::Leader {
            return Err(ControllerError::NotLeader { leader: self.leader() });
        }
        let Some(fenced) = self.image.brokers.get(&node_id).map(|b| b.fenced) else {
            return Err(MetadataError::UnknownBroker { node_id }.into());
        };
        let now = Instant::now();
        self.liveness().last_seen.insert(node_id, now);
        if fenced {
            self.propose_liveness(node_id, false, now);
        }
        Ok(())
    }

    /// On the leader: proposes `FenceBroker` for every unfenced broker whose
    /// session expired.
    fn check_sessions(&mut self) {
        let now = Instant::now();
        let late = now.saturating_duration_since(self.liveness.next_check);
        self.liveness.next_check = now + SESSION_CHECK_INTERVAL;
        if self.raw.raft.state != StateRole::Leader {
            return;
        }
        let timeout = self.session_timeout;
        let image = self.image.clone();
        let live = self.liveness();
        if late >= STALL_GRACE {
            // This process did not run (SIGSTOP, a paused VM, an overloaded
            // host): heartbeats that arrived meanwhile are still queued, so
            // silence says nothing about the brokers. Give every session the
            // stalled time back instead of fencing the whole cluster.
            tracing::warn!(stalled_ms = late.as_millis() as u64, "controller was stalled; extending broker sessions");
            live.leader_since += late;
            for seen in live.last_seen.values_mut() {
                *seen += late;
            }
        }
        live.proposed.retain(|_, at| now.duration_since(*at) < LIVENESS_RETRY);
        let expired: Vec<u32> = image
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .filter(|b| {
                let seen = live.last_seen.get(&b.node_id).copied().unwrap_or(live.leader_since);
                now.duration_since(seen) >= timeout
            })
            .map(|b| b.node_id)
            .collect();
        for node_id in expired {
            self.propose_liveness(node_id, true, now);
        }
    }

    /// Proposes fencing (or unfencing) a broker unless the same proposal was
    /// made very recently.
    fn propose_liveness(&mut self, node_id: u32, fence: bool, now: Instant) {
        let recent =
            self.liveness.proposed.get(&(node_id, fence)).is_some_and(|at| now.duration_since(*at) < LIVENESS_RETRY);
        if recent {
            return;
        }
        let cmd =
            if fence { MetadataCommand::FenceBroker { node_id } } else { MetadataCommand::UnfenceBroker { node_id } };
        match self.propose_raw(&cmd) {
            Ok(_) => {
                tracing::info!(node = self.id, broker = node_id, fence, "proposing a broker liveness change");
                self.liveness.proposed.insert((node_id, fence), now);
            }
            Err(e) => {
                tracing::debug!(broker = node_id, error = %strata_record::ErrorChain(&e), "could not propose a broker liveness change")
            }
        }
    }

    /// Turns a voter change into a Raft configuration change (one at a
    /// time): an added node first joins as a learner ([`Self::promote_learners`]
    /// makes it a voter once caught up); a removed leader first hands its
    /// leadership to the most caught-up voter, and the change is retried
    /// there (the caller sees `NotLeader` with the new leader).
    fn propose_voter_change(&mut self, change: &VoterChange) -> Result<u64, ControllerError> {
        let invalid = |reason: String| ControllerError::from(MetadataError::InvalidVoterChange { reason });
        let conf = self.raw.store().conf_state().clone();
        let (kind, node_id, address) = match change {
            VoterChange::Add { node_id, address } => {
                if *node_id == 0 || address.trim().is_empty() {
                    return Err(invalid("a node id (non-zero) and its controller address are needed".into()));
                }
                if conf.voters.contains(node_id) {
                    return Err(invalid(format!("node {node_id} is already a voter")));
                }
                if conf.learners.contains(node_id) {
                    return Err(invalid(format!("node {node_id} is already joining (catching up as a learner)")));
                }
                (ConfChangeType::AddLearnerNode, *node_id, address.clone())
            }
            VoterChange::Remove { node_id } => {
                let member = conf.voters.contains(node_id) || conf.learners.contains(node_id);
                if !member {
                    return Err(invalid(format!(
                        "node {node_id} is not a controller voter (voters {:?})",
                        conf.voters
                    )));
                }
                if conf.voters == [*node_id] {
                    return Err(invalid(format!("node {node_id} is the last voter")));
                }
                if *node_id == self.id {
                    let to = conf
                        .voters
                        .iter()
                        .copied()
                        .filter(|v| *v != self.id)
                        .max_by_key(|v| self.raw.raft.prs().get(*v).map_or(0, |p| p.matched));
                    if let Some(to) = to {
                        tracing::info!(
                            node = self.id,
                            to,
                            "handing controller leadership over before leaving the quorum"
                        );
                        self.raw.transfer_leader(to);
                    }
                    return Err(ControllerError::NotLeader { leader: to });
                }
                (ConfChangeType::RemoveNode, *node_id, String::new())
            }
        };
        if self.raw.raft.has_pending_conf() {
            return Err(invalid("another voter change is in progress; retry when it is done".into()));
        }
        self.propose_conf_change(kind, node_id, address)
    }

    fn propose_conf_change(
        &mut self,
        kind: ConfChangeType,
        node_id: u64,
        address: String,
    ) -> Result<u64, ControllerError> {
        let mut cc = ConfChange::default();
        cc.set_change_type(kind);
        cc.node_id = node_id;
        cc.context = address.into_bytes().into();
        let (seq, ctx) = self.next_context();
        self.raw.propose_conf_change(ctx, cc)?;
        tracing::info!(node = self.id, member = node_id, change = ?kind, "proposing a controller configuration change");
        Ok(seq)
    }

    /// On the leader: makes a learner whose log caught up with the commit
    /// index a voter (one change at a time).
    fn promote_learners(&mut self, is_leader: bool) {
        let now = Instant::now();
        if !is_leader || now < self.next_promotion || self.raw.raft.has_pending_conf() {
            return;
        }
        self.next_promotion = now + PROMOTION_CHECK;
        let committed = self.raw.raft.raft_log.committed;
        let ready = self
            .raw
            .store()
            .conf_state()
            .learners
            .iter()
            .copied()
            .find(|l| self.raw.raft.prs().get(*l).is_some_and(|p| p.matched >= committed));
        if let Some(learner) = ready {
            let address = self.image.controller_addresses.get(&learner).cloned().unwrap_or_default();
            if let Err(e) = self.propose_conf_change(ConfChangeType::AddNode, learner, address) {
                tracing::debug!(learner, error = %strata_record::ErrorChain(&e), "could not promote a learner");
            }
        }
    }

    fn propose_raw(&mut self, cmd: &MetadataCommand) -> Result<u64, ControllerError> {
        let (seq, ctx) = self.next_context();
        self.raw.propose(ctx, cmd.encode())?;
        Ok(seq)
    }

    /// The next proposal's sequence number and the entry context naming
    /// it (node id, incarnation, sequence), which tells its reply apart.
    fn next_context(&mut self) -> (u64, Vec<u8>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut ctx = Vec::with_capacity(CONTEXT_LEN);
        ctx.extend_from_slice(&self.id.to_le_bytes());
        ctx.extend_from_slice(&self.incarnation.to_le_bytes());
        ctx.extend_from_slice(&seq.to_le_bytes());
        (seq, ctx)
    }

    /// The sequence number of a proposal made by this run of this node.
    fn own_seq(&self, ctx: &[u8]) -> Option<u64> {
        let ctx: &[u8; CONTEXT_LEN] = ctx.try_into().ok()?;
        let word = |i: usize| {
            u64::from_le_bytes([
                ctx[i],
                ctx[i + 1],
                ctx[i + 2],
                ctx[i + 3],
                ctx[i + 4],
                ctx[i + 5],
                ctx[i + 6],
                ctx[i + 7],
            ])
        };
        (word(0) == self.id && word(8) == self.incarnation).then(|| word(16))
    }

    fn leader(&self) -> Option<u64> {
        Some(self.raw.raft.leader_id).filter(|&l| l != 0)
    }

    /// Handles Readies until none is left (or a round limit); returns true if
    /// work remains. Then the housekeeping that follows applying.
    fn process_readies(&mut self) -> Result<bool, ControllerError> {
        let mut rounds = 0;
        while self.raw.has_ready() && rounds < MAX_READY_ROUNDS {
            self.on_ready()?;
            rounds += 1;
        }
        self.after_apply()?;
        Ok(self.raw.has_ready())
    }

    /// Hands messages to the transport. raft-rs pauses a follower it sent a
    /// snapshot to until the snapshot is reported; delivery is best effort
    /// and unacknowledged here, so each is reported finished at once: the
    /// follower is then probed, and a lost snapshot is sent again when the
    /// probe shows it still needs one (without this, one lost snapshot
    /// stalled that follower until the next leader change).
    fn send(&mut self, msgs: Vec<Message>) {
        let snapshots: Vec<u64> =
            msgs.iter().filter(|m| m.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot).map(|m| m.to).collect();
        self.transport.send(msgs);
        for to in snapshots {
            self.raw.report_snapshot(to, raft::SnapshotStatus::Finish);
        }
    }

    /// One Ready, in the order raft-rs requires.
    fn on_ready(&mut self) -> Result<(), ControllerError> {
        let mut ready = self.raw.ready();
        // 1. A leader may send before persisting (Raft thesis 10.2.1).
        if !ready.messages().is_empty() {
            self.send(ready.take_messages());
        }
        // 2. A snapshot from the leader replaces the state machine.
        if !ready.snapshot().is_empty() {
            self.apply_snapshot(ready.snapshot().clone())?;
        }
        // 3. Committed entries (already persisted locally).
        self.apply_entries(ready.take_committed_entries())?;
        // 4. Persist new entries and the hard state (fsync'd).
        if !ready.entries().is_empty() {
            self.raw.mut_store().append(ready.entries())?;
        }
        if let Some(hs) = ready.hs() {
            self.raw.mut_store().set_hard_state(hs)?;
        }
        // 5. Only now the messages that must follow persistence (votes, acks).
        if !ready.persisted_messages().is_empty() {
            self.send(ready.take_persisted_messages());
        }
        // 6. Advance, then the light ready.
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit)?;
        }
        if !light.messages().is_empty() {
            self.send(light.take_messages());
        }
        self.apply_entries(light.take_committed_entries())?;
        self.raw.advance_apply();
        Ok(())
    }

    fn apply_snapshot(&mut self, snap: Snapshot) -> Result<(), ControllerError> {
        let index = snap.get_metadata().index;
        let mut image: MetadataImage = serde_json::from_slice(&snap.data).map_err(|e| {
            ControllerError::corrupt(self.raw.store().dir(), format!("snapshot {index} from the leader: {e}"))
        })?;
        image.offset = index;
        self.raw.mut_store().apply_snapshot(snap)?;
        self.image = Arc::new(image);
        self.staged.clear();
        self.snapshot_installed = Some(index);
        Ok(())
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<(), ControllerError> {
        for entry in entries {
            if entry.index <= self.image.offset {
                continue;
            }
            let result = match entry.get_entry_type() {
                EntryType::EntryNormal if entry.data.is_empty() => None, // a new leader's no-op
                EntryType::EntryNormal => {
                    let img = Arc::make_mut(&mut self.image);
                    let result = MetadataCommand::decode(&entry.data).and_then(|cmd| img.apply(&cmd));
                    self.staged.push((entry.index, bytes::Bytes::from(entry.data.to_vec())));
                    if let Err(e) = &result {
                        tracing::debug!(index = entry.index, error = %strata_record::ErrorChain(e), "metadata command rejected");
                    }
                    Some(result.map_err(ControllerError::from))
                }
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => self.apply_conf_change(&entry)?,
            };
            Arc::make_mut(&mut self.image).offset = entry.index;
            if let Some(seq) = self.own_seq(&entry.context) {
                if self.init_in_flight == Some(seq) {
                    self.init_in_flight = None;
                }
                if let (Some(reply), Some(result)) = (self.pending.remove(&seq), result) {
                    self.completed.push((reply, result));
                }
            }
        }
        Ok(())
    }

    /// Applies a configuration change, and keeps the addresses of the
    /// members it adds (in the image, so restarts and snapshots keep them;
    /// in the transport and forwarder, so messages reach them). One already
    /// persisted is not applied to Raft twice on replay; its address is.
    /// The outcome answers the proposer.
    fn apply_conf_change(
        &mut self,
        entry: &Entry,
    ) -> Result<Option<Result<CommandOutcome, ControllerError>>, ControllerError> {
        if entry.get_entry_type() == EntryType::EntryConfChange {
            if let Ok(cc) = ConfChange::parse_from_bytes(&entry.data) {
                self.remember_member(&cc);
            }
        }
        if entry.index <= self.raw.store().conf_index() {
            return Ok(None);
        }
        if self.raw.store().conf_state().voters.is_empty() {
            // A joining node that got log entries instead of a snapshot
            // lacks the first voters (they are not in the log): applying a
            // change on an empty configuration could make it a quorum of
            // one. Stay out until a snapshot brings the configuration.
            tracing::error!(
                node = self.id,
                index = entry.index,
                "a configuration change reached this node before the quorum's configuration did; not applied \
                 (remove this node's controller directory and add it again)"
            );
            let reason = "this node lacks the quorum's configuration".to_string();
            return Ok(Some(Err(MetadataError::InvalidVoterChange { reason }.into())));
        }
        let cs = if entry.get_entry_type() == EntryType::EntryConfChange {
            ConfChange::parse_from_bytes(&entry.data)
                .map_err(raft::Error::from)
                .and_then(|cc| self.raw.apply_conf_change(&cc))
        } else {
            ConfChangeV2::parse_from_bytes(&entry.data)
                .map_err(raft::Error::from)
                .and_then(|cc| self.raw.apply_conf_change(&cc))
        };
        let adds_learner = entry.get_entry_type() == EntryType::EntryConfChange
            && ConfChange::parse_from_bytes(&entry.data)
                .is_ok_and(|cc| cc.get_change_type() == ConfChangeType::AddLearnerNode);
        match cs {
            Ok(cs) => {
                if adds_learner {
                    // The first voters are not in the log (they were
                    // bootstrapped), so a new member must start from a
                    // snapshot holding the configuration: compact now, and
                    // the leader can only send it one.
                    self.raw.store().request_snapshot();
                }
                let outcome =
                    CommandOutcome::VotersChanged { voters: sorted(&cs.voters), learners: sorted(&cs.learners) };
                tracing::info!(node = self.id, voters = ?cs.voters, learners = ?cs.learners, "controller configuration changed");
                self.raw.mut_store().set_conf_state(cs, entry.index)?;
                Ok(Some(Ok(outcome)))
            }
            Err(e) => {
                tracing::warn!(index = entry.index, error = %strata_record::ErrorChain(&e), "ignoring an invalid configuration change");
                let reason = strata_record::ErrorChain(&e).to_string();
                Ok(Some(Err(MetadataError::InvalidVoterChange { reason }.into())))
            }
        }
    }

    /// Records (or forgets) a member's controller address as `cc` says.
    fn remember_member(&mut self, cc: &ConfChange) {
        let id = cc.node_id;
        match cc.get_change_type() {
            ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                let Ok(address) = std::str::from_utf8(&cc.context) else { return };
                if address.is_empty() || id == self.id {
                    return;
                }
                Arc::make_mut(&mut self.image).controller_addresses.insert(id, address.to_string());
                self.transport.set_peer(id, address);
                self.addresses.write().unwrap_or_else(|p| p.into_inner()).insert(id, address.to_string());
            }
            ConfChangeType::RemoveNode => {
                Arc::make_mut(&mut self.image).controller_addresses.remove(&id);
                if id != self.id {
                    self.transport.remove_peer(id);
                    self.addresses.write().unwrap_or_else(|p| p.into_inner()).remove(&id);
                }
            }
        }
    }

    /// Leadership bookkeeping, cluster-id initialization, snapshots, publishing.
    fn after_apply(&mut self) -> Result<(), ControllerError> {
        let is_leader = self.raw.raft.state == StateRole::Leader;
        if self.was_leader && !is_leader {
            let leader = self.leader();
            for (_, reply) in self.pending.drain() {
                let _ = reply.send(Err(ControllerError::NotLeader { leader }));
            }
            self.init_in_flight = None;
        }
        self.was_leader = is_leader;
        if is_leader && self.image.cluster_id.is_empty() && self.init_in_flight.is_none() {
            // Only once everything before this term is applied, so an
            // InitCluster from an earlier leader is seen first.
            let current = self.raw.store().term(self.image.offset).ok() == Some(self.raw.raft.term);
            if current {
                let cluster_id = uuid::Uuid::new_v4().to_string();
                match self.propose_raw(&MetadataCommand::InitCluster { cluster_id }) {
                    Ok(seq) => self.init_in_flight = Some(seq),
                    Err(e) => {
                        tracing::debug!(error = %strata_record::ErrorChain(&e), "could not propose the cluster id")
                    }
                }
            }
        }
        self.maybe_balance_leaders(is_leader);
        self.promote_learners(is_leader);
        self.maybe_snapshot()?;
        let published = Arc::ptr_eq(&self.image_tx.borrow(), &self.image);
        if !published {
            let staged = std::mem::take(&mut self.staged);
            self.journal.publish(self.image.clone(), staged, self.snapshot_installed.take());
            self.image_tx.send_replace(self.image.clone());
        }
        let status = self.status();
        self.status_tx.send_if_modified(|s| {
            let changed = *s != status;
            *s = status;
            changed
        });
        for (reply, result) in self.completed.drain(..) {
            let _ = reply.send(result);
        }
        Ok(())
    }

    /// On the leader, at most once per `leader_balance_interval`: proposes a
    /// preferred election for the partitions whose preferred replica could
    /// lead but does not. Only once the image is applied up to the current
    /// term, so the check sees what earlier leaders committed.
    fn maybe_balance_leaders(&mut self, is_leader: bool) {
        let interval = self.leader_balance_interval;
        let now = Instant::now();
        if !is_leader || self.raw.store().term(self.image.offset).ok() != Some(self.raw.raft.term) {
            return;
        }
        self.maybe_elect_unclean(now);
        if interval.is_zero() || now < self.next_balance {
            return;
        }
        self.next_balance = now + interval;
        let partitions = super::balance::imbalanced_partitions(&self.image);
        if partitions.is_empty() {
            return;
        }
        let count = partitions.len();
        let cmd = MetadataCommand::ElectLeaders {
            partitions: Some(partitions),
            election: crate::metadata::ElectionType::Preferred,
        };
        match self.propose_raw(&cmd) {
            Ok(_) => tracing::info!(node = self.id, partitions = count, "proposing a preferred leader election"),
            Err(e) => {
                tracing::debug!(error = %strata_record::ErrorChain(&e), "could not propose a preferred leader election")
            }
        }
    }

    /// On the leader: elects an out-of-ISR leader for leaderless partitions
    /// of topics that allow it (at most once per second), loudly.
    fn maybe_elect_unclean(&mut self, now: Instant) {
        if self.next_unclean.is_some_and(|at| now < at) {
            return;
        }
        let partitions = super::balance::unclean_candidates(&self.image);
        if partitions.is_empty() {
            return;
        }
        self.next_unclean = Some(now + LIVENESS_RETRY);
        tracing::warn!(
            node = self.id,
            ?partitions,
            "UNCLEAN leader election: no in-sync replica is alive and the topic allows unclean election; \
             records acknowledged by the lost replicas may be lost"
        );
        let cmd = MetadataCommand::ElectLeaders {
            partitions: Some(partitions),
            election: crate::metadata::ElectionType::Unclean,
        };
        if let Err(e) = self.propose_raw(&cmd) {
            tracing::debug!(error = %strata_record::ErrorChain(&e), "could not propose an unclean leader election");
        }
    }

    fn maybe_snapshot(&mut self) -> Result<(), ControllerError> {
        let applied = self.image.offset;
        let snap_index = self.raw.store().snapshot_index();
        let requested = self.raw.store().take_snapshot_request().is_some();
        let due = applied >= snap_index.saturating_add(self.snapshot_every.max(1));
        if applied > snap_index && (due || requested) {
            let data = serde_json::to_vec(&*self.image)
                .map_err(|e| ControllerError::corrupt(self.raw.store().dir(), format!("encoding snapshot: {e}")))?;
            self.raw.mut_store().compact(applied, data)?;
            tracing::debug!(node = self.id, index = applied, "took a metadata snapshot and compacted the raft log");
        }
        Ok(())
    }

    pub(super) fn status(&self) -> ControllerStatus {
        let mut voters = self.raw.store().conf_state().voters.clone();
        voters.sort_unstable();
        ControllerStatus {
            node_id: self.id,
            leader_id: self.leader(),
            term: self.raw.raft.term,
            commit_index: self.raw.raft.raft_log.committed,
            applied_index: self.image.offset,
            voter_match_index: if self.raw.raft.state == raft::StateRole::Leader {
                voters.iter().filter_map(|&v| self.raw.raft.prs().get(v).map(|p| (v, p.matched))).collect()
            } else {
                Default::default()
            },
            voters,
        }
    }
}

fn sorted(ids: &[u64]) -> Vec<u64> {
    let mut v = ids.to_vec();
    v.sort_unstable();
    v
}
