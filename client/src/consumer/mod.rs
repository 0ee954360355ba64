//! The consumer: reads assigned partitions from their leaders, from
//! positions the caller sets with `seek`.
//!
//! The caller assigns partitions and owns positions. With a `group_id`
//! (Kafka's "assign and commit" mode), positions are committed to the
//! group's coordinator (`commit_sync`, `commit_async`, auto-commit) and a
//! partition assigned without a `seek` starts at the group's committed
//! offset, or per `auto_offset_reset` when there is none (or it is out of
//! range). Group membership, where the coordinator assigns partitions
//! (`subscribe`), is not implemented yet. An out-of-range position is
//! otherwise reported (OFFSET_OUT_OF_RANGE), never silently reset.

mod fetch;
mod group;
pub(crate) mod offsets;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::Stream;
use strata_protocol::v1::ErrorCode;

use crate::connection::{parse_bootstrap, MAX_MESSAGE_BYTES};
use crate::error::ClientError;
use crate::groups::{check_group_id, Groups};
use crate::metadata::Cluster;
pub use group::CommitHandle;
use group::GroupState;

/// Rounds one `poll` tries while every fetch fails retriably (leader moved,
/// broker unreachable) before it reports the error.
const POLL_ATTEMPTS: u32 = 3;
/// Pause between such rounds.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// Tries to learn a topic's metadata before reporting it unknown.
const METADATA_ATTEMPTS: u32 = 3;

/// Where to move a partition's position.
///
/// # Example
///
/// ```no_run
/// use strata_client::SeekTo;
///
/// # async fn run(mut consumer: strata_client::Consumer) -> Result<(), strata_client::ClientError> {
/// consumer.seek("events", 0, SeekTo::Beginning).await?;
/// consumer.seek("events", 1, SeekTo::Timestamp(1_700_000_000_000)).await?;
/// consumer.seek("events", 2, SeekTo::Offset(42)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekTo {
    /// The first offset still in the log.
    Beginning,
    /// The end: only records produced from now on.
    End,
    /// This offset.
    Offset(u64),
    /// The first record whose timestamp (ms since the Unix epoch) is at or
    /// after this; the end if there is none.
    Timestamp(i64),
}

/// Consumer settings; `ConsumerConfig::new(bootstrap)` fills in the
/// defaults.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use strata_client::ConsumerConfig;
///
/// let config = ConsumerConfig { max_wait: Duration::from_millis(100), ..ConsumerConfig::new(["127.0.0.1:9700"]) };
/// assert_eq!(config.min_bytes, 1);
/// ```
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// `host:port` addresses to reach the cluster (entries may be
    /// comma-separated lists).
    pub bootstrap: Vec<String>,
    /// Longest a fetch waits on the broker for `min_bytes` (500 ms).
    pub max_wait: Duration,
    /// Bytes a fetch waits for before returning (1: any data).
    pub min_bytes: usize,
    /// Upper bound of record bytes per fetch response (50 MiB; one batch
    /// larger than this is still returned).
    pub max_bytes: usize,
    /// Upper bound of record bytes per partition per fetch (8 MiB).
    pub max_partition_bytes: usize,
    /// How long a request may take beyond `max_wait` (30 s).
    pub request_timeout: Duration,
    /// Where a partition assigned without a `seek` starts (the beginning),
    /// when there is no `group_id`.
    pub initial_position: SeekTo,
    /// The consumer group whose committed offsets this consumer starts from
    /// and commits to (`None`: no group). Group membership (`subscribe`,
    /// partitions assigned by the coordinator) is not implemented yet: with
    /// a group id the partitions are still `assign`ed by the caller.
    pub group_id: Option<String>,
    /// With a `group_id`: where a partition starts when the group has no
    /// committed offset for it, or the committed offset is no longer in the
    /// log (`Latest`, like Kafka).
    pub auto_offset_reset: OffsetReset,
    /// With a `group_id`: commit the positions of the assigned partitions
    /// every `auto_commit_interval` (checked in `poll` and `stream`, in the
    /// background) and on `close` (true).
    pub enable_auto_commit: bool,
    /// How often auto-commit commits (5 s).
    pub auto_commit_interval: Duration,
}

/// Where a partition of a consumer group starts when the group has no
/// usable committed offset for it (Kafka's `auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// The first offset still in the log.
    Earliest,
    /// The end: only records produced from now on (the default).
    #[default]
    Latest,
}

impl OffsetReset {
    fn seek_to(self) -> SeekTo {
        match self {
            OffsetReset::Earliest => SeekTo::Beginning,
            OffsetReset::Latest => SeekTo::End,
        }
    }
}

impl ConsumerConfig {
    /// The defaults, with the given bootstrap addresses.
    pub fn new<I, S>(bootstrap: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ConsumerConfig {
            bootstrap: bootstrap.into_iter().map(Into::into).collect(),
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_bytes: 50 * 1024 * 1024,
            max_partition_bytes: 8 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            initial_position: SeekTo::Beginning,
            group_id: None,
            auto_offset_reset: OffsetReset::Latest,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
        }
    }
}

impl Default for ConsumerConfig {
    /// The defaults, bootstrapping from `127.0.0.1:9700`.
    fn default() -> Self {
        ConsumerConfig::new(["127.0.0.1:9700"])
    }
}

/// A record read from a partition.
///
/// # Example
///
/// ```no_run
/// # async fn run(mut consumer: strata_client::Consumer) -> Result<(), strata_client::ClientError> {
/// for r in consumer.poll().await? {
///     let value = r.value.as_deref().map(String::from_utf8_lossy);
///     println!("{}-{}@{} {:?} headers={}", r.topic, r.partition, r.offset, value, r.headers.len());
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Offset.
    pub offset: u64,
    /// Timestamp in ms since the Unix epoch.
    pub timestamp: i64,
    /// Key, `None` for a null key.
    pub key: Option<Bytes>,
    /// Value, `None` for a null value.
    pub value: Option<Bytes>,
    /// Headers in the order the producer added them.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Reads records from assigned partitions.
///
/// # Example
///
/// ```no_run
/// use futures::StreamExt;
/// use strata_client::{Consumer, ConsumerConfig, SeekTo};
///
/// # async fn run() -> Result<(), strata_client::ClientError> {
/// let mut consumer = Consumer::connect(ConsumerConfig::new(["127.0.0.1:9700"])).await?;
/// consumer.assign(vec![("events".to_string(), 0), ("events".to_string(), 1)]);
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
    assignment: Vec<(String, u32)>,
    /// Next offset to hand out, per assigned partition with a known one.
    positions: HashMap<(String, u32), u64>,
    high_watermarks: HashMap<(String, u32), u64>,
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
    closed: bool,
}

/// Fetched rounds a prefetch pipeline keeps waiting for the consumer.
const PREFETCH_DEPTH: usize = 1;

/// Next offset per partition, in assignment order.
type Positions = Vec<((String, u32), u64)>;

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
        let cluster = Cluster::connect(parse_bootstrap(&config.bootstrap)?, config.request_timeout).await?;
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
            closed: false,
        })
    }

    /// Replaces the assigned partitions. Positions of partitions that stay
    /// assigned are kept; new ones start, unless sought, at the group's
    /// committed offset (with a `group_id`; else per `auto_offset_reset`) or
    /// at `config.initial_position` (without one).
    pub fn assign(&mut self, partitions: Vec<(String, u32)>) {
        let mut assignment: Vec<(String, u32)> = Vec::with_capacity(partitions.len());
        for tp in partitions {
            if !assignment.contains(&tp) {
                self.cluster.want(&tp.0);
                assignment.push(tp);
            }
        }
        self.positions.retain(|tp, _| assignment.contains(tp));
        self.high_watermarks.retain(|tp, _| assignment.contains(tp));
        self.buffered.retain(|r| assignment.iter().any(|(t, p)| *t == r.topic && *p == r.partition));
        self.assignment = assignment;
    }

    /// The assigned partitions.
    pub fn assignment(&self) -> &[(String, u32)] {
        &self.assignment
    }

    /// Moves the position of an assigned partition and returns it.
    /// `Beginning`, `End` and `Timestamp` ask the partition leader
    /// (`ListOffsets`).
    pub async fn seek(&mut self, topic: &str, partition: u32, to: SeekTo) -> Result<u64, ClientError> {
        let tp = (topic.to_owned(), partition);
        if !self.assignment.contains(&tp) {
            return Err(ClientError::InvalidArgument(format!("partition {topic}-{partition} is not assigned")));
        }
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
        let offsets = offsets::resolve(&self.cluster, &[(topic.to_owned(), partition, to)]).await?;
        Ok(offsets[0])
    }

    /// The next offset `poll` or `stream` hands out for a partition; `None`
    /// when it is not assigned or its start is not resolved yet.
    pub fn position(&self, topic: &str, partition: u32) -> Option<u64> {
        self.positions.get(&(topic.to_owned(), partition)).copied()
    }

    /// The high watermark the last fetch reported for a partition.
    pub fn high_watermark(&self, topic: &str, partition: u32) -> Option<u64> {
        self.high_watermarks.get(&(topic.to_owned(), partition)).copied()
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
    pub async fn poll(&mut self) -> Result<Vec<ConsumerRecord>, ClientError> {
        if self.closed {
            return Err(ClientError::Closed);
        }
        self.maybe_auto_commit();
        if self.buffered.is_empty() {
            self.fill().await?;
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
    /// Dropping the stream loses nothing: records fetched but not yet
    /// yielded stay buffered for the next `poll` or `stream`.
    pub fn stream(&mut self) -> impl Stream<Item = Result<ConsumerRecord, ClientError>> + '_ {
        futures::stream::unfold(self, |consumer| async move {
            loop {
                if consumer.closed {
                    return Some((Err(ClientError::Closed), consumer));
                }
                consumer.maybe_auto_commit();
                if let Some(r) = consumer.buffered.pop_front() {
                    consumer.advance(&r.topic, r.partition, r.offset + 1);
                    return Some((Ok(r), consumer));
                }
                if let Err(e) = consumer.fill().await {
                    return Some((Err(e), consumer));
                }
            }
        })
    }

    /// Runs fetch rounds into `buffered` until one brings records, one
    /// returns empty-handed after the long poll, or retriable failures use
    /// up `POLL_ATTEMPTS`.
    async fn fill(&mut self) -> Result<(), ClientError> {
        if self.assignment.is_empty() {
            return Err(ClientError::InvalidArgument("no partitions assigned".into()));
        }
        let topics: Vec<String> = self.assignment.iter().map(|(t, _)| t.clone()).collect();
        self.ensure_metadata(topics.iter().map(String::as_str)).await?;
        for (topic, partition) in &self.assignment {
            let count = self.cluster.topic(topic).map_or(0, |m| m.partition_count());
            if *partition >= count {
                let msg = format!("partition {partition} of topic '{topic}' does not exist ({count} partitions)");
                return Err(ClientError::server(ErrorCode::UnknownTopicOrPartition, msg));
            }
        }
        self.resolve_missing_positions().await?;
        let positions: Vec<((String, u32), u64)> =
            self.assignment.iter().map(|tp| (tp.clone(), self.positions[tp])).collect();
        let mut attempt = 0;
        loop {
            attempt += 1;
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
            if attempt >= POLL_ATTEMPTS {
                return Err(err);
            }
            let _ = self.cluster.refresh().await;
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
    }

    /// Sets a partition's position, allocating its key only when new.
    fn advance(&mut self, topic: &str, partition: u32, offset: u64) {
        match self.positions.get_mut(&(topic.to_owned(), partition)) {
            Some(p) => *p = offset,
            None => {
                self.positions.insert((topic.to_owned(), partition), offset);
            }
        }
    }

    /// The next prefetched round if it was issued from exactly `positions`
    /// (otherwise the pipeline is dropped, which aborts it). Cancel-safe:
    /// if this is dropped while waiting, the pipeline stays for the next
    /// call.
    async fn take_prefetch(&mut self, positions: &[((String, u32), u64)]) -> Option<fetch::Fetched> {
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
    fn start_prefetch(&mut self, positions: Vec<((String, u32), u64)>) {
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
        let missing: Vec<(String, u32)> =
            self.assignment.iter().filter(|tp| !self.positions.contains_key(*tp)).cloned().collect();
        if missing.is_empty() {
            return Ok(());
        }
        let targets: Vec<(String, u32, SeekTo)> = match &self.group {
            None => missing.into_iter().map(|(t, p)| (t, p, self.config.initial_position)).collect(),
            Some(group) => self.group_starts(group, missing).await?,
        };
        let offsets = offsets::resolve(&self.cluster, &targets).await?;
        for ((t, p, _), o) in targets.into_iter().zip(offsets) {
            self.positions.insert((t, p), o);
        }
        Ok(())
    }

    /// Where each partition of a group starts: its committed offset when
    /// it is within the log, else per `auto_offset_reset`.
    async fn group_starts(
        &self,
        group: &GroupState,
        missing: Vec<(String, u32)>,
    ) -> Result<Vec<(String, u32, SeekTo)>, ClientError> {
        let mut by_topic: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for (t, p) in &missing {
            by_topic.entry(t.clone()).or_default().push(*p);
        }
        let asked: Vec<(String, Vec<u32>)> = by_topic.into_iter().collect();
        let committed: HashMap<(String, u32), u64> = group
            .groups
            .fetch(&group.id, Some(&asked))
            .await?
            .into_iter()
            .filter_map(|c| Some(((c.topic, c.partition), c.offset?)))
            .collect();
        // The log bounds of partitions with a commit, to check it is in range.
        let with_commit: Vec<&(String, u32)> = missing.iter().filter(|tp| committed.contains_key(*tp)).collect();
        // One lookup per bound: a request names each partition once.
        let starts: Vec<(String, u32, SeekTo)> =
            with_commit.iter().map(|(t, p)| (t.clone(), *p, SeekTo::Beginning)).collect();
        let ends: Vec<(String, u32, SeekTo)> = with_commit.iter().map(|(t, p)| (t.clone(), *p, SeekTo::End)).collect();
        let starts = offsets::resolve(&self.cluster, &starts).await?;
        let ends = offsets::resolve(&self.cluster, &ends).await?;
        let range: HashMap<&(String, u32), (u64, u64)> =
            with_commit.iter().enumerate().map(|(i, tp)| (*tp, (starts[i], ends[i]))).collect();
        let reset = self.config.auto_offset_reset;
        let mut starts = Vec::with_capacity(missing.len());
        let mut from_commits = Vec::new();
        for tp in &missing {
            let to = match (committed.get(tp), range.get(tp)) {
                (Some(&c), Some(&(start, end))) if c >= start && c <= end => {
                    from_commits.push((tp.clone(), c));
                    SeekTo::Offset(c)
                }
                (Some(&c), Some(&(start, end))) => {
                    tracing::info!(
                        group = %group.id, topic = %tp.0, partition = tp.1, committed = c, start, end, ?reset,
                        "committed offset is out of range: resetting"
                    );
                    reset.seek_to()
                }
                _ => reset.seek_to(),
            };
            starts.push((tp.0.clone(), tp.1, to));
        }
        group.note_committed(from_commits);
        Ok(starts)
    }

    /// Resolves the starting position of every assigned partition that has
    /// none (as the next `poll` would: the committed offset, else
    /// `auto_offset_reset`, with a group; `initial_position` without), so
    /// that `position` reports it.
    pub async fn resolve_positions(&mut self) -> Result<(), ClientError> {
        if self.closed {
            return Err(ClientError::Closed);
        }
        let topics: Vec<String> = self.assignment.iter().map(|(t, _)| t.clone()).collect();
        self.ensure_metadata(topics.iter().map(String::as_str)).await?;
        self.resolve_missing_positions().await
    }

    /// The group id, if the consumer has one.
    pub fn group_id(&self) -> Option<&str> {
        self.group.as_ref().map(|g| g.id.as_str())
    }

    fn group_or_err(&self) -> Result<&GroupState, ClientError> {
        if self.closed {
            return Err(ClientError::Closed);
        }
        self.group.as_ref().ok_or_else(|| {
            ClientError::InvalidArgument("committed offsets need a consumer group (ConsumerConfig::group_id)".into())
        })
    }

    /// The positions of the assigned partitions that have one.
    fn current_positions(&self) -> Vec<(String, u32, u64)> {
        self.assignment.iter().filter_map(|tp| Some((tp.0.clone(), tp.1, *self.positions.get(tp)?))).collect()
    }

    /// Commits the current position of every assigned partition (the
    /// offset after the last record handed out by `poll` or `stream`, or
    /// where it was sought to) to the group, and waits for the coordinator's
    /// answer. Commits are applied in the order they were asked for.
    pub async fn commit_sync(&self) -> Result<(), ClientError> {
        self.commit_async().await
    }

    /// Starts committing the current positions (as `commit_sync`) in the
    /// background; the handle yields the result. Commits are applied in the
    /// order they were asked for.
    pub fn commit_async(&self) -> CommitHandle {
        match self.group_or_err() {
            Ok(group) => group.commit(self.current_positions()),
            Err(e) => CommitHandle::ready(Err(e)),
        }
    }

    /// Commits the given `(topic, partition, next offset to consume)` to the
    /// group (e.g. only what the application has processed) and waits for
    /// the answer.
    pub async fn commit_offsets(&self, offsets: &[(String, u32, u64)]) -> Result<(), ClientError> {
        self.group_or_err()?.commit(offsets.to_vec()).await
    }

    /// The group's committed offset for a partition (the next offset to
    /// consume), `None` if it committed none.
    pub async fn committed(&self, topic: &str, partition: u32) -> Result<Option<u64>, ClientError> {
        let group = self.group_or_err()?;
        let asked = [(topic.to_owned(), vec![partition])];
        let committed = group.groups.fetch(&group.id, Some(&asked)).await?;
        Ok(committed.into_iter().find(|c| c.topic == topic && c.partition == partition).and_then(|c| c.offset))
    }

    /// With a group and auto-commit, once the interval has passed: queues a
    /// commit of the positions that changed since the last commit.
    fn maybe_auto_commit(&mut self) {
        let Some(group) = &self.group else { return };
        if !self.config.enable_auto_commit || self.last_auto_commit.elapsed() < self.config.auto_commit_interval {
            return;
        }
        self.last_auto_commit = Instant::now();
        let changed = group.changed(self.current_positions());
        if !changed.is_empty() {
            group.commit_in_background(changed);
        }
    }

    /// Closes the consumer: with a group and `enable_auto_commit`, commits
    /// the current positions (and returns that commit's result); with a
    /// group, waits for commits still in flight. Later calls fail with
    /// [`ClientError::Closed`]; closing again does nothing.
    pub async fn close(&mut self) -> Result<(), ClientError> {
        if self.closed {
            return Ok(());
        }
        self.prefetch = None;
        let result = match &self.group {
            Some(group) if self.config.enable_auto_commit => group.commit(self.current_positions()).await,
            // An empty commit: done once every earlier one is.
            Some(group) => group.commit(Vec::new()).await,
            None => Ok(()),
        };
        self.closed = true;
        self.buffered.clear();
        result
    }
}

/// The error for a partition without a known leader.
pub(crate) fn no_leader(topic: &str, partition: u32) -> ClientError {
    ClientError::server(ErrorCode::LeaderNotAvailable, format!("no leader known for partition {topic}-{partition}"))
}
