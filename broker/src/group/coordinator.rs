//! `GroupCoordinator`: the shards (groups per offsets partition) this broker
//! serves, each tied to the leader epoch it was loaded in. The first request
//! for a partition after this broker became its leader (or after a new
//! epoch) starts loading the shard from the log on a blocking thread;
//! requests meanwhile wait briefly, then get `COORDINATOR_LOAD_IN_PROGRESS`.
//! A partition no longer led here (or led in another epoch) has its shard
//! dropped: a request then gets `NOT_COORDINATOR` or triggers a reload.
//!
//! Appends hold an append gate (shared) and a load takes it exclusively
//! before it fixes the end it reads to, so no append that began under an
//! earlier epoch can land after a load read past it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{BrokerError, ErrorKind};
use strata_storage::TopicPartition;
use tokio::sync::{watch, RwLock};

use super::loader::load_shard;
use super::shard::Shard;
use super::OFFSETS_TOPIC;
use crate::partition::Partition;
use crate::replica_manager::ReplicaManager;

/// A loaded shard ready to serve, with what its appends must use.
#[derive(Debug, Clone)]
pub(crate) struct ShardHandle {
    /// The offsets partition (led here).
    pub partition: Arc<Partition>,
    /// Its index in the offsets topic.
    pub index: u32,
    /// The leader epoch the shard was loaded in: appends use it and fail if
    /// leadership moved.
    pub epoch: u32,
    /// The groups.
    pub shard: Arc<Mutex<Shard>>,
    /// When the shard was loaded (a new coordinator adopts members for a
    /// while after that).
    pub loaded_at: Instant,
    /// Held shared by appends, exclusively by a load.
    pub gate: Arc<RwLock<()>>,
}

impl ShardHandle {
    /// The shard, locked (never held across an await).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Shard> {
        self.shard.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug)]
enum SlotState {
    /// Being loaded; the receiver turns true when the load ends.
    Loading(watch::Receiver<bool>),
    Loaded(Arc<Mutex<Shard>>, Instant),
}

#[derive(Debug)]
struct Slot {
    epoch: u32,
    state: SlotState,
}

/// The coordinator's state: one slot per offsets partition led here.
#[derive(Debug, Default)]
pub(crate) struct GroupCoordinator {
    slots: Arc<Mutex<HashMap<u32, Slot>>>,
    gates: Mutex<HashMap<u32, Arc<RwLock<()>>>>,
    /// Serializes creation of the offsets topic.
    pub(crate) creating: tokio::sync::Mutex<()>,
}

impl GroupCoordinator {
    /// A coordinator with nothing loaded.
    pub(crate) fn new() -> Self {
        GroupCoordinator::default()
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<u32, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn gate(&self, index: u32) -> Arc<RwLock<()>> {
        self.gates.lock().unwrap_or_else(|p| p.into_inner()).entry(index).or_default().clone()
    }

    /// The shard of offsets partition `index` (replica `p`), loading it if
    /// this is the first request in the current leader epoch. Waits up to
    /// `wait` for a load; `COORDINATOR_LOAD_IN_PROGRESS` after that,
    /// `NOT_COORDINATOR` if this broker does not lead `p`.
    pub(crate) async fn acquire(
        &self,
        p: Arc<Partition>,
        index: u32,
        wait: Duration,
    ) -> Result<ShardHandle, BrokerError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let Some(epoch) = p.leader_epoch_if_leader() else {
                self.slots().remove(&index);
                return Err(not_coordinator(&p, index));
            };
            let mut done = {
                let mut slots = self.slots();
                match slots.get(&index) {
                    Some(Slot { epoch: e, state: SlotState::Loaded(shard, loaded_at) }) if *e == epoch => {
                        return Ok(ShardHandle {
                            partition: p.clone(),
                            index,
                            epoch,
                            shard: shard.clone(),
                            loaded_at: *loaded_at,
                            gate: self.gate(index),
                        });
                    }
                    Some(Slot { epoch: e, state: SlotState::Loading(rx) }) if *e == epoch => rx.clone(),
                    _ => {
                        let (tx, rx) = watch::channel(false);
                        slots.insert(index, Slot { epoch, state: SlotState::Loading(rx.clone()) });
                        drop(slots);
                        self.spawn_load(p.clone(), index, epoch, tx);
                        rx
                    }
                }
            };
            match tokio::time::timeout_at(deadline, done.wait_for(|d| *d)).await {
                Err(_) => {
                    return Err(BrokerError::new(
                        ErrorKind::CoordinatorLoadInProgress,
                        format!(
                            "{OFFSETS_TOPIC}-{index}: the coordinator is loading the groups' offsets; retry shortly"
                        ),
                    ))
                }
                // The load task vanished without a word: forget it so the
                // next request loads again.
                Ok(Err(_)) => {
                    let mut slots = self.slots();
                    if matches!(slots.get(&index), Some(Slot { epoch: e, state: SlotState::Loading(_) }) if *e == epoch)
                    {
                        slots.remove(&index);
                    }
                }
                Ok(Ok(_)) => {}
            }
            // Loaded (or failed: the slot is gone and the next pass reloads
            // or reports); look again.
            if !matches!(self.slots().get(&index), Some(Slot { epoch: e, state: SlotState::Loaded(..) }) if *e == epoch)
            {
                return Err(BrokerError::new(
                    ErrorKind::CoordinatorNotAvailable,
                    format!("{OFFSETS_TOPIC}-{index}: loading the groups' offsets failed or leadership moved; retry"),
                ));
            }
        }
    }

    /// Loads the shard on a blocking thread (after in-flight appends end)
    /// and installs it if the slot still waits for this epoch; a failed
    /// load clears the slot so the next request retries.
    fn spawn_load(&self, p: Arc<Partition>, index: u32, epoch: u32, done: watch::Sender<bool>) {
        let gate = self.gate(index);
        let slots = self.slots.clone();
        tokio::spawn(async move {
            let exclusive = gate.write().await;
            let log = p.log.clone();
            let end = log.log_end_offset();
            let started = std::time::Instant::now();
            let loaded = tokio::task::spawn_blocking(move || load_shard(&log, end)).await;
            drop(exclusive);
            let mut slots = slots.lock().unwrap_or_else(|p| p.into_inner());
            let ours =
                matches!(slots.get(&index), Some(Slot { epoch: e, state: SlotState::Loading(_) }) if *e == epoch);
            match loaded {
                Ok(Ok((shard, stats))) => {
                    tracing::info!(
                        partition = index,
                        epoch,
                        groups = shard.len(),
                        records = stats.records,
                        skipped = stats.skipped,
                        end_offset = stats.end_offset,
                        ms = started.elapsed().as_millis() as u64,
                        "loaded consumer groups"
                    );
                    if ours {
                        slots.insert(
                            index,
                            Slot { epoch, state: SlotState::Loaded(Arc::new(Mutex::new(shard)), Instant::now()) },
                        );
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(partition = index, epoch, error = %strata_record::ErrorChain(&e), "loading consumer groups failed");
                    if ours {
                        slots.remove(&index);
                    }
                }
                Err(e) => {
                    tracing::error!(partition = index, epoch, error = %strata_record::ErrorChain(&e), "the group load task failed");
                    if ours {
                        slots.remove(&index);
                    }
                }
            }
            drop(slots);
            let _ = done.send(true);
        });
    }

    /// Drops the shards of partitions this broker no longer leads in the
    /// epoch they were loaded in.
    pub(crate) fn sweep(&self, replicas: &ReplicaManager) {
        self.slots().retain(|&index, slot| still_leads(replicas, index, slot.epoch));
    }

    /// Every committed offset in the loaded shards, as (group, topic,
    /// partition, offset): what the lag metrics are computed from.
    pub(crate) fn committed_offsets(&self) -> Vec<(String, String, u32, u64)> {
        let mut out = Vec::new();
        for slot in self.slots().values() {
            if let SlotState::Loaded(shard, _) = &slot.state {
                let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
                for g in shard.groups() {
                    out.extend(g.offsets().map(|(t, p, v)| (g.id.clone(), t.to_string(), p, v.offset.max(0) as u64)));
                }
            }
        }
        out
    }

    /// The offsets partitions whose shard is loaded here.
    pub(crate) fn loaded(&self) -> Vec<u32> {
        self.slots().iter().filter(|(_, s)| matches!(s.state, SlotState::Loaded(..))).map(|(i, _)| *i).collect()
    }

    /// Each live group's member count, in the loaded shards (the
    /// `strata_group_members` gauge).
    pub(crate) fn member_counts(&self) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        for slot in self.slots().values() {
            if let SlotState::Loaded(shard, _) = &slot.state {
                let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
                out.extend(shard.groups().map(|g| (g.id.clone(), g.membership.len())));
            }
        }
        out
    }

    /// Live groups in the loaded shards (the `strata_groups` gauge).
    pub(crate) fn group_count(&self) -> usize {
        self.slots()
            .values()
            .map(|s| match &s.state {
                SlotState::Loaded(shard, _) => shard.lock().unwrap_or_else(|p| p.into_inner()).len(),
                SlotState::Loading(_) => 0,
            })
            .sum()
    }
}

impl GroupCoordinator {
    /// Evicts members of every loaded group whose session (or revocation)
    /// ran out, so a group whose members all died becomes empty even with
    /// nobody heartbeating. `topics`: every topic's partition count.
    pub(crate) fn expire_members(&self, topics: &std::collections::BTreeMap<String, u32>) {
        let now = Instant::now();
        for slot in self.slots().values() {
            let SlotState::Loaded(shard, _) = &slot.state else { continue };
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            for g in shard.groups_mut() {
                for (member, why) in g.membership.expire(now, topics) {
                    tracing::info!(group = %g.id, %member, reason = why, "evicted a group member");
                }
            }
        }
    }
}

fn not_coordinator(p: &Partition, index: u32) -> BrokerError {
    let e = p.not_leader();
    let code = match e.kind() {
        ErrorKind::NotLeaderOrFollower => ErrorKind::NotCoordinator,
        _ => ErrorKind::CoordinatorNotAvailable,
    };
    BrokerError::new(
        code,
        format!("this broker does not coordinate groups of {OFFSETS_TOPIC}-{index}: {}", e.message()),
    )
}

/// Whether this broker still leads offsets partition `index` in `epoch`.
fn still_leads(replicas: &ReplicaManager, index: u32, epoch: u32) -> bool {
    let tp = TopicPartition { topic: OFFSETS_TOPIC.to_string(), partition: index };
    replicas.replica(&tp).is_some_and(|p| p.leader_epoch_if_leader() == Some(epoch))
}
