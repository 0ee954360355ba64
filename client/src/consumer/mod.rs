//! The consumer: reads partitions from their leaders.
//!
//! Two ways to get partitions (mutually exclusive, as in Kafka):
//! - `assign`: the caller picks the partitions and owns positions (`seek`).
//!   With a `group_id`, positions are committed to the group's coordinator
//!   (`commit_sync`, `commit_async`, auto-commit) as standalone commits,
//!   which the coordinator refuses while the group has members.
//! - `subscribe` / `subscribe_pattern` (with a `group_id`): the consumer
//!   joins the group and its coordinator shares the partitions among the
//!   members (`membership.rs` heartbeats, `subscription.rs` reconciles).
//!
//! With a group, a partition without a `seek` starts at the group's
//! committed offset, or per `auto_offset_reset` when there is none (or it is
//! out of range). An out-of-range position is otherwise reported
//! (OFFSET_OUT_OF_RANGE), never silently reset.

mod commits;
mod config;
mod fetch;
mod group;
mod membership;
pub(crate) mod offsets;
mod reconcile;
mod subscription;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_record::TopicPartition;

use futures::Stream;
use strata_protocol::v1::ErrorCode;

use crate::connection::{parse_bootstrap, MAX_MESSAGE_BYTES};
use crate::error::ClientError;
use crate::groups::{check_group_id, Groups};
use crate::metadata::Cluster;
pub use config::{ConsumerConfig, ConsumerRecord, OffsetReset, SeekTo};
pub use group::CommitHandle;
use group::GroupState;
use membership::Membership;
use reconcile::Tp;
use subscription::Listener;
pub use subscription::RebalanceListener;

/// First pause between fetch rounds that failed retriably (leader moved,
/// broker unreachable); it doubles up to `MAX_RETRY_BACKOFF` until
/// `retry_timeout` runs out.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between such rounds.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(1);
/// Tries to learn a topic's metadata before reporting it unknown.
const METADATA_ATTEMPTS: u32 = 3;
/// Least time a subscribed consumer's `poll` gives the lookup of starting
/// positions (committed offsets) before it returns empty-handed.
const MIN_RESOLVE_WAIT: Duration = Duration::from_millis(200);

/// Reads records from assigned or (with a group) subscribed partitions.
///
/// # Example
///
/// ```no_run
/// use futures::StreamExt;
/// use strata_client::{Consumer, ConsumerConfig, SeekTo};
///
/// # async fn run() -> Result<(), strata_client::ClientError> {
/// let mut consumer = Consumer::connect(ConsumerConfig::new(["127.0.0.1:9700"])).await?;
/// consumer.assign([("events", 0), ("events", 1)]);
/// consumer.seek("events", 0, SeekTo::Offset(100)).await?;
/// for record in consumer.poll().await? {
///     println!("{}-{}@{}", record.topic, record.partition, record.offset);
/// }
/// let mut stream = Box::pin(consumer.stream());
/// while let Some(record) = stream.next().await {
///     let record = record?;
///     println!("{:?}", record.value);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Consumer {
    config: ConsumerConfig,
    cluster: Arc<Cluster>,
    assignment: Vec<TopicPartition>,
    /// Next offset to hand out, per assigned partition with a known one.
    positions: HashMap<TopicPartition, u64>,
    high_watermarks: HashMap<TopicPartition, u64>,
    /// Fetched records not yet handed out (only `stream` leaves some).
    buffered: VecDeque<ConsumerRecord>,
    /// Rounds fetched ahead of time: a background task issues each round
    /// as soon as the previous one's responses arrived (before they are
    /// decoded), from the positions that round leads to, keeping at most
    /// `PREFETCH_DEPTH` rounds waiting. A round is used only if the
    /// positions are still those when it is needed (no seek, no assignment
    /// change, no error); otherwise the whole pipeline is dropped.
    prefetch: Option<Prefetch>,
    /// The consumer group, with a `group_id`.
    group: Option<GroupState>,
    /// When auto-commit last ran (or the consumer started).
    last_auto_commit: Instant,
    /// The group membership of a subscribed consumer.
    membership: Option<Membership>,
    /// Rebalance callbacks.
    listener: Listener,
    /// The membership's loss count last reconciled.
    lost_generation: u64,
    /// The member epoch of the assignment last reconciled.
    reconciled_epoch: Option<i32>,
    /// A reconciliation began and has not finished (its future was dropped
    /// mid-revocation): the next call runs it again even though the
    /// membership has not changed since.
    reconcile_pending: bool,
    /// Partitions not fetched until resumed.
    paused: HashSet<Tp>,
    /// An `assign` refused (the consumer is subscribed), reported by the
    /// next `poll`.
    misuse: Option<ClientError>,
    closed: bool,
}

/// Fetched rounds a prefetch pipeline keeps waiting for the consumer.
const PREFETCH_DEPTH: usize = 1;

/// Next offset per partition, in assignment order.
type Positions = Vec<(TopicPartition, u64)>;

/// A pipeline of fetch rounds issued ahead of time; aborted when dropped.
#[derive(Debug)]
struct Prefetch {
    rounds: tokio::sync::mpsc::Receiver<(Positions, fetch::Fetched)>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Consumer {
    /// Checks the config and contacts the cluster.
    pub async fn connect(config: ConsumerConfig) -> Result<Consumer, ClientError> {
        if config.max_bytes == 0 || config.max_bytes > MAX_MESSAGE_BYTES - 1024 * 1024 {
            return Err(ClientError::InvalidArgument("max_bytes must be between 1 byte and 63 MiB".into()));
        }
        if config.max_partition_bytes == 0 {
            return Err(ClientError::InvalidArgument("max_partition_bytes must be at least 1 byte".into()));
        }
        if let Some(g) = &config.group_id {
            check_group_id(g)?;
        }
        let cluster = Cluster::connect(
            parse_bootstrap(&config.bootstrap)?,
            &config.security,
            config.request_timeout,
            config.retry_timeout,
        )
        .await?;
        let group = config.group_id.clone().map(|id| GroupState::start(id, Arc::new(Groups::new(cluster.clone()))));
        Ok(Consumer {
            config,
            cluster,
            assignment: Vec::new(),
            positions: HashMap::new(),
            high_watermarks: HashMap::new(),
            buffered: VecDeque::new(),
            prefetch: None,
            group,
            last_auto_commit: Instant::now(),
            membership: None,
            listener: Listener::default(),
            lost_generation: 0,
            reconciled_epoch: None,
            reconcile_pending: false,
            paused: HashSet::new(),
            misuse: None,
            closed: false,
        })
    }

    /// Replaces the assigned partitions. Positions of partitions that stay
    /// assigned are kept; new ones start, unless sought, at the group's
    /// committed offset (with a `group_id`; else per `auto_offset_reset`) or
    /// at `config.initial_position` (without one).
    ///
    /// Not for a subscribed consumer (`subscribe`; the group assigns its
    /// partitions): the call is then ignored and the next `poll` fails with
    /// an invalid-argument error naming the conflict (`unsubscribe` first).
    pub fn assign<T: Into<TopicPartition>>(&mut self, partitions: impl IntoIterator<Item = T>) {
        let partitions: Vec<TopicPartition> = partitions.into_iter().map(Into::into).collect();
        if self.membership.is_some() {
            self.misuse = Some(ClientError::InvalidArgument(
                "assign() and subscribe() are mutually exclusive: this consumer is subscribed to a group \
                 (call unsubscribe() first); the assignment was ignored"
                    .into(),
            ));
            return;
        }
        let mut assignment: Vec<TopicPartition> = Vec::with_capacity(partitions.len());
        for tp in partitions {
            if !assignment.contains(&tp) {
                self.cluster.want(&tp.topic);
                assignment.push(tp);
            }
        }
        self.positions.retain(|tp, _| assignment.contains(tp));
        self.high_watermarks.retain(|tp, _| assignment.contains(tp));
        self.paused.retain(|tp| assignment.contains(tp));
        self.buffered.retain(|r| assignment.iter().any(|tp| tp.topic == r.topic && tp.partition == r.partition));
        self.assignment = assignment;
    }

    /// The assigned partitions (for a subscribed consumer: those the group
    /// assigned it, as of the last `poll`).
    pub fn assignment(&self) -> &[TopicPartition] {
        &self.assignment
    }

    /// Stops fetching these assigned partitions until `resume` (positions
    /// are kept; records already fetched for them are still handed out).
    /// An unassigned partition is an invalid argument.
    pub fn pause(&mut self, partitions: &[TopicPartition]) -> Result<(), ClientError> {
        self.check_assigned(partitions)?;
        self.paused.extend(partitions.iter().cloned());
        self.prefetch = None;
        Ok(())
    }

    /// Fetches paused partitions again.
    pub fn resume(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            self.paused.remove(tp);
        }
        self.prefetch = None;
    }

    /// The paused partitions, sorted.
    pub fn paused(&self) -> Vec<TopicPartition> {
        let mut out: Vec<TopicPartition> = self.paused.iter().cloned().collect();
        out.sort();
        out
    }

    fn check_assigned(&self, partitions: &[TopicPartition]) -> Result<(), ClientError> {
        match partitions.iter().find(|tp| !self.assignment.contains(tp)) {
            Some(tp) => Err(ClientError::InvalidArgument(format!("partition {tp} is not assigned"))),
            None => Ok(()),
        }
    }

    /// Moves the position of an assigned partition and returns it.
    /// `Beginning`, `End` and `Timestamp` ask the partition leader
    /// (`ListOffsets`).
    pub async fn seek(&mut self, topic: &str, partition: u32, to: SeekTo) -> Result<u64, ClientError> {
        let tp = TopicPartition::of(topic, partition);
        self.check_assigned(std::slice::from_ref(&tp))?;
        let offset = self.lookup_offset(topic, partition, to).await?;
        self.buffered.retain(|r| !(r.topic == topic && r.partition == partition));
        self.positions.insert(tp, offset);
        Ok(offset)
    }

    /// The offset `to` resolves to for a partition, without moving
    /// anything (e.g. `SeekTo::End` for the current end of a partition).
    pub async fn lookup_offset(&self, topic: &str, partition: u32, to: SeekTo) -> Result<u64, ClientError> {
        if let SeekTo::Offset(o) = to {
            return Ok(o);
        }
        self.ensure_metadata(std::iter::once(topic)).await?;
        let offsets = offsets::resolve(&self.cluster, &[(TopicPartition::of(topic, partition), to)]).await?;
        Ok(offsets[0])
    }

    /// The next offset `poll` or `stream` hands out for a partition; `None`
    /// when it is not assigned or its start is not resolved yet.
    pub fn position(&self, topic: &str, partition: u32) -> Option<u64> {
        self.positions.get(&TopicPartition::of(topic, partition)).copied()
    }

    /// The high watermark the last fetch reported for a partition.
    pub fn high_watermark(&self, topic: &str, partition: u32) -> Option<u64> {
        self.high_watermarks.get(&TopicPartition::of(topic, partition)).copied()
    }

    /// Fetches from every assigned partition (one request per leader
    /// broker, waiting up to `max_wait` for data) and returns the records
    /// at or after each position, advancing positions past them. Returns an
    /// empty vector when nothing arrived in time. Leader moves and lost
    /// connections are retried a few times before they are reported; then
    /// positions are unchanged and `poll` may be called again.
    ///
    /// With a `group_id` and `enable_auto_commit`, once
    /// `auto_commit_interval` has passed, it first commits (in the
    /// background) the positions reached by the records handed out before.
    ///
    /// A subscribed consumer first takes on the group's latest assignment
    /// (revoking, assigning, running the rebalance listener) and does so
    /// again before returning, so no record of a partition it gave up is
    /// returned. While it owns nothing it returns an empty vector after
    /// `max_wait` at most. A fatal membership error (INVALID_REGULAR_EXPRESSION,
    /// UNSUPPORTED_ASSIGNOR, GROUP_MAX_SIZE_REACHED...) fails every `poll`.
    pub async fn poll(&mut self) -> Result<Vec<ConsumerRecord>, ClientError> {
        self.check_usable()?;
        self.reconcile().await?;
        self.maybe_auto_commit();
        if self.buffered.is_empty() {
            self.fill_or_wait().await?;
            self.reconcile().await?;
        }
        let records: Vec<ConsumerRecord> = Vec::from(std::mem::take(&mut self.buffered));
        // Records come partition by partition in offset order: only the last
        // of each run moves its partition's position.
        for (i, r) in records.iter().enumerate() {
            let last_of_run = records.get(i + 1).is_none_or(|n| n.partition != r.partition || n.topic != r.topic);
            if last_of_run {
                self.advance(&r.topic, r.partition, r.offset + 1);
            }
        }
        Ok(records)
    }

    /// The records of successive polls, one at a time. An error is yielded
    /// without ending the stream (stop at the first error to stop reading).
    /// A subscribed consumer reconciles its assignment between records, as
    /// `poll` does.
    /// Dropping the stream loses nothing: records fetched but not yet
    /// yielded stay buffered for the next `poll` or `stream`.
    pub fn stream(&mut self) -> impl Stream<Item = Result<ConsumerRecord, ClientError>> + '_ {
        futures::stream::unfold(self, |consumer| async move {
            loop {
                if let Err(e) = consumer.check_usable() {
                    return Some((Err(e), consumer));
                }
                if let Err(e) = consumer.reconcile().await {
                    return Some((Err(e), consumer));
                }
                consumer.maybe_auto_commit();
                if let Some(r) = consumer.buffered.pop_front() {
                    consumer.advance(&r.topic, r.partition, r.offset + 1);
                    return Some((Ok(r), consumer));
                }
                if let Err(e) = consumer.fill_or_wait().await {
                    return Some((Err(e), consumer));
                }
            }
        })
    }

    /// Fails a closed consumer, and once a refused `assign`.
    fn check_usable(&mut self) -> Result<(), ClientError> {
        if self.closed {
            return Err(ClientError::Closed);
        }
        match self.misuse.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// `fill`, for a subscribed consumer cut short when the membership
    /// changes (so a revocation is not held up by a long poll), or a wait
    /// of up to `max_wait` for a change while it owns nothing.
    async fn fill_or_wait(&mut self) -> Result<(), ClientError> {
        let Some(membership) = &self.membership else { return self.fill().await };
        if self.assignment.is_empty() {
            self.wait_for_change().await;
            return Ok(());
        }
        let mut changes = membership.watch();
        // Starting positions need the coordinator (committed offsets): while
        // it is away, return empty-handed after about max_wait and try again
        // on the next poll.
        let resolve_wait = self.config.max_wait.max(MIN_RESOLVE_WAIT);
        tokio::select! {
            resolved = tokio::time::timeout(resolve_wait, self.resolve_missing_positions()) => match resolved {
                Ok(resolved) => resolved?,
                Err(_) => return Ok(()),
            },
            _ = changes.changed() => return Ok(()),
        }
        tokio::select! {
            filled = self.fill() => filled,
            _ = changes.changed() => Ok(()),
        }
    }

    /// Runs fetch rounds into `buffered` until one brings records, one
    /// returns empty-handed after the long poll, or retriable failures use
    /// up `retry_timeout`. With every assigned partition paused it waits
    /// `max_wait` instead.
    async fn fill(&mut self) -> Result<(), ClientError> {
        if self.assignment.is_empty() {
            return Err(ClientError::InvalidArgument("no partitions assigned".into()));
        }
        let topics: Vec<String> = self.assignment.iter().map(|tp| tp.topic.clone()).collect();
        self.ensure_metadata(topics.iter().map(String::as_str)).await?;
        for TopicPartition { topic, partition } in &self.assignment {
            let mut count = self.cluster.topic(topic).map_or(0, |m| m.partition_count());
            if *partition >= count {
                // The topic may have grown since its metadata was read.
                let _ = self.cluster.refresh().await;
                count = self.cluster.topic(topic).map_or(0, |m| m.partition_count());
            }
            if *partition >= count {
                let msg = format!("partition {partition} of topic '{topic}' does not exist ({count} partitions)");
                return Err(ClientError::server(ErrorCode::UnknownTopicOrPartition, msg));
            }
        }
        self.resolve_missing_positions().await?;
        let mut positions: Vec<(TopicPartition, u64)> = Vec::with_capacity(self.assignment.len());
        for tp in self.assignment.iter().filter(|tp| !self.paused.contains(*tp)) {
            let Some(&position) = self.positions.get(tp) else {
                return Err(ClientError::InvalidArgument(format!("no position for partition {tp}")));
            };
            positions.push((tp.clone(), position));
        }
        if positions.is_empty() {
            tokio::time::sleep(self.config.max_wait).await;
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + self.config.retry_timeout;
        let mut backoff = RETRY_BACKOFF;
        loop {
            let fetched = match self.take_prefetch(&positions).await {
                Some(f) => f,
                None => fetch::send_fetches(&self.cluster, &self.config, &positions).await,
            };
            if self.prefetch.is_none() {
                if let Some(next) = fetched.next_positions(&positions) {
                    self.start_prefetch(next);
                }
            }
            let round = fetch::decode_round(&positions, fetched)?;
            self.high_watermarks.extend(round.high_watermarks);
            for (tp, to) in &round.skipped {
                self.advance(&tp.topic, tp.partition, *to);
            }
            let got_records = !round.records.is_empty();
            if self.buffered.is_empty() {
                self.buffered = VecDeque::from(round.records);
            } else {
                self.buffered.extend(round.records);
            }
            let Some(err) = round.retriable else { return Ok(()) };
            tracing::debug!(error = %err, "fetch round hit a retriable error");
            if got_records {
                return Ok(());
            }
            if tokio::time::Instant::now() + backoff >= deadline {
                let names: Vec<String> = positions.iter().map(|(tp, _)| tp.to_string()).collect();
                return Err(crate::metadata::gave_up(err, &names, self.config.retry_timeout));
            }
            let _ = self.cluster.refresh().await;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_RETRY_BACKOFF);
        }
    }

    /// Sets a partition's position, allocating its key only when new.
    fn advance(&mut self, topic: &str, partition: u32, offset: u64) {
        match self.positions.get_mut(&TopicPartition::of(topic, partition)) {
            Some(p) => *p = offset,
            None => {
                self.positions.insert(TopicPartition::of(topic, partition), offset);
            }
        }
    }

    /// The next prefetched round if it was issued from exactly `positions`
    /// (otherwise the pipeline is dropped, which aborts it). Cancel-safe:
    /// if this is dropped while waiting, the pipeline stays for the next
    /// call.
    async fn take_prefetch(&mut self, positions: &[(TopicPartition, u64)]) -> Option<fetch::Fetched> {
        let prefetch = self.prefetch.as_mut()?;
        match prefetch.rounds.recv().await {
            Some((at, fetched)) if at == positions => {
                if fetched.next_positions(&at).is_none() {
                    // The pipeline ends with this round.
                    self.prefetch = None;
                }
                Some(fetched)
            }
            _ => {
                self.prefetch = None;
                None
            }
        }
    }

    /// Starts fetching, in the background, the rounds that continue from
    /// `positions`.
    fn start_prefetch(&mut self, positions: Vec<(TopicPartition, u64)>) {
        let (cluster, config) = (self.cluster.clone(), self.config.clone());
        let (tx, rounds) = tokio::sync::mpsc::channel(PREFETCH_DEPTH);
        let task = tokio::spawn(async move {
            let mut at = positions;
            loop {
                let fetched = fetch::send_fetches(&cluster, &config, &at).await;
                let next = fetched.next_positions(&at);
                if tx.send((at, fetched)).await.is_err() {
                    return;
                }
                match next {
                    Some(n) => at = n,
                    None => return,
                }
            }
        });
        self.prefetch = Some(Prefetch { rounds, task });
    }

    async fn ensure_metadata<'a>(&self, topics: impl Iterator<Item = &'a str>) -> Result<(), ClientError> {
        for topic in topics {
            if self.cluster.topic(topic).is_none() {
                self.cluster.topic_metadata(topic, METADATA_ATTEMPTS, RETRY_BACKOFF).await?;
            }
        }
        Ok(())
    }

    async fn resolve_missing_positions(&mut self) -> Result<(), ClientError> {
        let missing: Vec<TopicPartition> =
            self.assignment.iter().filter(|tp| !self.positions.contains_key(*tp)).cloned().collect();
        if missing.is_empty() {
            return Ok(());
        }
        let targets: Vec<(TopicPartition, SeekTo)> = match &self.group {
            None => missing.into_iter().map(|tp| (tp, self.config.initial_position)).collect(),
            Some(group) => self.group_starts(group, missing).await?,
        };
        let offsets = offsets::resolve(&self.cluster, &targets).await?;
        for ((tp, _), o) in targets.into_iter().zip(offsets) {
            self.positions.insert(tp, o);
        }
        Ok(())
    }

    /// Resolves the starting position of every assigned partition that has
    /// none (as the next `poll` would: the committed offset, else
    /// `auto_offset_reset`, with a group; `initial_position` without), so
    /// that `position` reports it.
    pub async fn resolve_positions(&mut self) -> Result<(), ClientError> {
        if self.closed {
            return Err(ClientError::Closed);
        }
        let topics: Vec<String> = self.assignment.iter().map(|tp| tp.topic.clone()).collect();
        self.ensure_metadata(topics.iter().map(String::as_str)).await?;
        self.resolve_missing_positions().await
    }
}

/// The error for a partition without a known leader.
pub(crate) fn no_leader(topic: &str, partition: u32) -> ClientError {
    ClientError::server(ErrorCode::LeaderNotAvailable, format!("no leader known for partition {topic}-{partition}"))
}
