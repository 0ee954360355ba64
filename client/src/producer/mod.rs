//! The producer: partitions records, batches them per partition, and sends
//! batches to partition leaders from one background task.
//!
//! - **Partitioning**: an explicit partition; else Kafka's murmur2 of the
//!   key; else the topic's *sticky* partition (KIP-480): keyless records stay
//!   on one partition until its batch closes, then move to another.
//! - **Batching**: a batch closes at `batch_size` bytes or when `linger`
//!   expires; a request carries every ready batch of each partition led by
//!   one broker (up to `max_request_bytes`), with at most `max_in_flight`
//!   requests per broker.
//! - **Ordering**: kept per partition, even across retries. An idempotent
//!   producer has up to `max_in_flight` (at most 5) requests in flight per
//!   partition: the leader appends them in sequence order (a request that
//!   overtakes an earlier one waits for it), and after a retriable failure
//!   the partition's batches go again in their original order. A producer
//!   that is not idempotent has one request in flight per partition.
//! - **Delivery**: exactly once per acknowledged record with idempotence (the
//!   default with `acks = all`): the producer has a producer id from the
//!   cluster and numbers its batches per partition; a leader (the old one or
//!   a new one after a failover) answers a retried batch with the offsets it
//!   first got and never writes it twice, and refuses a batch that would
//!   skip one. A record whose delivery failed (its `delivery_timeout`
//!   passed) may or may not be in the log; the producer then takes a new
//!   producer id for the batches after it. Without idempotence (`acks` 0 or
//!   1, or `enable_idempotence: false`) delivery is at least once: a retried
//!   request may have been written before the error (a lost response), so a
//!   record can appear twice, as with Kafka.
//! - **acks=0**: the delivery future resolves once the broker answered the
//!   request, with `offset: None` (the broker does not report offsets).

mod accumulator;
mod completion;
mod sender;
mod wire;

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use strata_protocol::v1::ErrorCode;
use strata_record::batch::HEADER_LEN;
use strata_record::compression::Compression;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;

use crate::connection::{parse_bootstrap, MAX_MESSAGE_BYTES};
use crate::error::ClientError;
use crate::metadata::Cluster;
use accumulator::{Accumulator, RecordRef, Target};
use completion::BatchCompletion;
use strata_record::murmur2::partition_for_key;

/// Metadata refreshes `send` tries for a topic it does not know yet before
/// it reports the topic unknown (fewer when `retries` is lower).
const METADATA_ATTEMPTS: u32 = 5;

/// How many acknowledgements the leader waits for before answering.
///
/// # Example
///
/// ```
/// use strata_client::Acks;
///
/// let acks: Acks = "all".parse().unwrap();
/// assert_eq!(acks, Acks::All);
/// assert_eq!(acks.as_i32(), -1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// `acks=0`: no acknowledgement; offsets are not reported.
    None,
    /// `acks=1`: the leader wrote the records.
    Leader,
    /// `acks=all` (-1): every in-sync replica has them.
    #[default]
    All,
}

impl Acks {
    /// The wire value: 0, 1 or -1.
    pub fn as_i32(self) -> i32 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

impl FromStr for Acks {
    type Err = ClientError;

    /// Parses `0`, `1`, `all` or `-1`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "0" => Ok(Acks::None),
            "1" => Ok(Acks::Leader),
            "all" | "ALL" | "-1" => Ok(Acks::All),
            other => Err(ClientError::InvalidArgument(format!("acks must be 0, 1 or all, not '{other}'"))),
        }
    }
}

/// Producer settings; `ProducerConfig::new(bootstrap)` fills in the defaults.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use strata_client::{Acks, ProducerConfig};
///
/// let config = ProducerConfig {
///     acks: Acks::Leader,
///     linger: Duration::from_millis(20),
///     batch_size: 256 * 1024,
///     ..ProducerConfig::new(["127.0.0.1:9700"])
/// };
/// assert_eq!(config.max_in_flight, 5);
/// ```
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// `host:port` addresses to reach the cluster (entries may be
    /// comma-separated lists).
    pub bootstrap: Vec<String>,
    /// TLS to the brokers (default: plaintext).
    pub security: crate::Security,
    /// Acknowledgements to wait for (default `all`).
    pub acks: Acks,
    /// How long a batch waits for more records before it is sent (5 ms).
    pub linger: Duration,
    /// Bytes at which a batch is closed and sent (1 MiB, as librdkafka's
    /// `batch.size`; capped by the topic's `max.message.bytes`). Under light
    /// load batches close at `linger` long before; under heavy load large
    /// batches keep an idempotent producer's five batches in flight per
    /// partition from limiting its throughput.
    pub batch_size: usize,
    /// Requests in flight per broker (5).
    pub max_in_flight: usize,
    /// Retries of a batch after a retriable error (unbounded, as Kafka's
    /// `retries`: `delivery_timeout` bounds them).
    pub retries: u32,
    /// Pause before the first retry (100 ms); it doubles with each further
    /// retry of a batch, up to 1 s.
    pub retry_backoff: Duration,
    /// How long a batch keeps being retried after its first failure before
    /// its records fail (120 s, as Kafka's `delivery.timeout.ms`): long
    /// enough to ride through a leader failover.
    pub delivery_timeout: Duration,
    /// How long the broker may take to answer a produce request (30 s).
    pub request_timeout: Duration,
    /// Largest produce request, and so largest record (8 MiB).
    pub max_request_bytes: usize,
    /// Bytes of records buffered before `send` waits (32 MiB).
    pub buffer_memory: usize,
    /// How each batch is compressed (Kafka's `compression.type`; `None`
    /// by default). Consumers decompress whatever they fetch.
    pub compression: Compression,
    /// The codec's level (Kafka's `compression.<codec>.level`): gzip 1–9,
    /// zstd -131072–22; the codec's default when `None`.
    pub compression_level: Option<i32>,
    /// Idempotence (on by default, as Kafka's `enable.idempotence` since
    /// 3.0; in force with `acks = all` only): the producer gets a producer
    /// id and numbers its batches per partition, and the partition leader
    /// writes a retried batch once, answering the retry with the offsets it
    /// first got. A retry after a lost answer, a timeout or a leader
    /// failover then never duplicates records, and records of a partition
    /// are written in the order they were sent. Should a batch fail for
    /// good (its delivery timeout passed) the producer takes a new producer
    /// id and numbers the following batches afresh.
    pub enable_idempotence: bool,
    /// How often the producer refreshes the metadata of the topics it
    /// writes even when nothing fails (5 min, Kafka's
    /// `metadata.max.age.ms`): partitions added to a topic are used from
    /// the next refresh.
    pub metadata_max_age: Duration,
}

impl ProducerConfig {
    /// The defaults, with the given bootstrap addresses.
    pub fn new<I, S>(bootstrap: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ProducerConfig {
            bootstrap: bootstrap.into_iter().map(Into::into).collect(),
            security: crate::Security::default(),
            acks: Acks::All,
            linger: Duration::from_millis(5),
            batch_size: 1024 * 1024,
            max_in_flight: 5,
            retries: u32::MAX,
            retry_backoff: Duration::from_millis(100),
            delivery_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(30),
            max_request_bytes: 8 * 1024 * 1024,
            buffer_memory: 32 * 1024 * 1024,
            compression: Compression::None,
            compression_level: None,
            enable_idempotence: true,
            metadata_max_age: Duration::from_secs(300),
        }
    }

    fn validate(&self) -> Result<(), ClientError> {
        let bad = |m: &str| Err(ClientError::InvalidArgument(m.to_owned()));
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1 byte");
        }
        if self.max_in_flight == 0 {
            return bad("max_in_flight must be at least 1");
        }
        if self.metadata_max_age < Duration::from_millis(100) {
            return bad("metadata_max_age must be at least 100 ms");
        }
        if self.max_request_bytes <= HEADER_LEN || self.max_request_bytes > MAX_MESSAGE_BYTES - 1024 * 1024 {
            return bad("max_request_bytes must be between 62 bytes and 63 MiB");
        }
        if self.buffer_memory == 0 {
            return bad("buffer_memory must be at least 1 byte");
        }
        self.compression
            .check_level(self.compression_level)
            .map_err(|e| ClientError::InvalidArgument(format!("compression_level: {e}")))?;
        Ok(())
    }
}

impl Default for ProducerConfig {
    /// The defaults, bootstrapping from `127.0.0.1:9700`.
    fn default() -> Self {
        ProducerConfig::new(["127.0.0.1:9700"])
    }
}

/// Asks any broker for a new producer id and epoch (retrying while the
/// controller elects, within the cluster's retry time).
pub(crate) async fn init_producer_id(cluster: &Cluster, timeout: Duration) -> Result<(i64, i16), ClientError> {
    let deadline = tokio::time::Instant::now() + crate::metadata::DEFAULT_RETRY_TIMEOUT;
    loop {
        let attempt = async {
            let mut client = cluster.any_client().await?;
            let r = crate::connection::call(
                "InitProducerId",
                timeout,
                client.init_producer_id(strata_protocol::v1::InitProducerIdRequest {}),
            )
            .await?;
            if let Some(e) = ClientError::from_api(r.error.as_ref()) {
                return Err(e);
            }
            let epoch = i16::try_from(r.producer_epoch).map_err(|_| {
                ClientError::InvalidResponse(format!("producer epoch {} out of range", r.producer_epoch))
            })?;
            Ok((r.producer_id, epoch))
        };
        match attempt.await {
            Ok(p) => return Ok(p),
            Err(e) if e.is_retriable() && tokio::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "InitProducerId failed; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A record to send.
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use strata_client::ProducerRecord;
///
/// let record = ProducerRecord::new("events", "hello")
///     .with_key("user-42")
///     .with_header("trace", Some("abc"));
/// assert_eq!(record.value, Some(Bytes::from_static(b"hello")));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    /// Topic to write to.
    pub topic: String,
    /// Partition; `None` lets the producer choose (key hash or sticky).
    pub partition: Option<u32>,
    /// Key, or `None` for a null key.
    pub key: Option<Bytes>,
    /// Value, or `None` for a null value (a tombstone).
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Timestamp in ms since the Unix epoch; `None` means now.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A keyless record with a value.
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> Self {
        ProducerRecord { topic: topic.into(), value: Some(value.into()), ..Default::default() }
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the partition.
    pub fn with_partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the timestamp (ms since the Unix epoch).
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, key: impl Into<String>, value: Option<impl Into<Bytes>>) -> Self {
        self.headers.push((key.into(), value.map(Into::into)));
        self
    }
}

/// Where an acknowledged record landed.
///
/// # Example
///
/// ```no_run
/// # async fn run(producer: strata_client::Producer) -> Result<(), strata_client::ClientError> {
/// let meta = producer.send(strata_client::ProducerRecord::new("events", "x")).await?.await?;
/// println!("{}-{}@{:?} ts={}", meta.topic, meta.partition, meta.offset, meta.timestamp);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Offset the broker assigned; `None` with `acks=0`.
    pub offset: Option<u64>,
    /// The record's timestamp (ms since the Unix epoch).
    pub timestamp: i64,
}

/// Resolves when the broker acknowledged (or definitively rejected) one
/// record. Dropping it does not cancel the send.
///
/// # Example
///
/// ```no_run
/// # async fn run(producer: strata_client::Producer) -> Result<(), strata_client::ClientError> {
/// let mut pending = Vec::new();
/// for i in 0..100 {
///     pending.push(producer.send(strata_client::ProducerRecord::new("events", format!("{i}"))).await?);
/// }
/// for delivery in pending {
///     let meta = delivery.await?;
///     assert!(meta.offset.is_some());
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "the delivery future is the only way to learn whether the record was written"]
pub struct DeliveryFuture {
    /// The record's batch, shared by all its records' futures.
    batch: Arc<BatchCompletion>,
    /// The record's position in its batch (its offset delta).
    index: u32,
    timestamp: i64,
    /// This future's slot in the batch's waker list, once registered.
    slot: Option<usize>,
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut state = this.batch.state();
        match &state.outcome {
            Some(Ok(base_offset)) => Poll::Ready(Ok(RecordMetadata {
                topic: this.batch.topic.to_string(),
                partition: this.batch.partition,
                offset: base_offset.map(|b| b + u64::from(this.index)),
                timestamp: this.timestamp,
            })),
            Some(Err(e)) => Poll::Ready(Err(e.clone())),
            None => {
                match this.slot {
                    Some(i) if i < state.wakers.len() => {
                        if !state.wakers[i].will_wake(cx.waker()) {
                            state.wakers[i] = cx.waker().clone();
                        }
                    }
                    _ => {
                        this.slot = Some(state.wakers.len());
                        state.wakers.push(cx.waker().clone());
                    }
                }
                Poll::Pending
            }
        }
    }
}

/// State shared by producer handles and the sender task.
#[derive(Debug)]
pub(crate) struct Shared {
    config: ProducerConfig,
    cluster: Arc<Cluster>,
    acc: Mutex<Accumulator>,
    /// Wakes the sender: a batch opened or became ready, a request ended.
    wake: Notify,
    /// Signals batch completions to `flush`.
    done: Notify,
    /// Bytes of buffered records (backpressure).
    buffer: Semaphore,
    /// No more `send`s accepted.
    closed: AtomicBool,
}

impl Shared {
    fn acc(&self) -> MutexGuard<'_, Accumulator> {
        self.acc.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the sender to send everything now and stop once idle.
    fn begin_close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.acc().closing = true;
        self.wake.notify_one();
    }
}

/// Stops the sender when the last producer handle goes away.
#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.begin_close();
    }
}

/// Sends records to Strata. Cheap to clone; clones share one accumulator and
/// background sender. See the module docs for ordering and delivery
/// guarantees.
///
/// # Example
///
/// ```no_run
/// use strata_client::{Producer, ProducerConfig, ProducerRecord};
///
/// # async fn run() -> Result<(), strata_client::ClientError> {
/// let producer = Producer::connect(ProducerConfig::new(["127.0.0.1:9700"])).await?;
/// let delivery = producer.send(ProducerRecord::new("events", "hello").with_key("k1")).await?;
/// let meta = delivery.await?;
/// println!("written to partition {} at offset {:?}", meta.partition, meta.offset);
/// producer.close().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Producer {
    shared: Arc<Shared>,
    handle: Arc<Handle>,
}

/// Refreshes the producer's metadata every `metadata_max_age` until the
/// producer is closed or dropped (it holds no strong reference).
async fn refresh_metadata(shared: std::sync::Weak<Shared>) {
    loop {
        let Some(age) = shared.upgrade().map(|s| s.config.metadata_max_age) else { return };
        tokio::time::sleep(age).await;
        let Some(s) = shared.upgrade() else { return };
        if s.closed.load(Ordering::SeqCst) {
            return;
        }
        if let Err(e) = s.cluster.refresh().await {
            tracing::debug!(error = %e, "periodic metadata refresh failed; the next one retries");
        }
    }
}

impl Producer {
    /// Checks the config, contacts the cluster and starts the sender task.
    /// Must run inside a tokio runtime.
    pub async fn connect(config: ProducerConfig) -> Result<Producer, ClientError> {
        config.validate()?;
        let cluster = Cluster::connect(
            parse_bootstrap(&config.bootstrap)?,
            &config.security,
            config.request_timeout,
            crate::metadata::DEFAULT_RETRY_TIMEOUT,
        )
        .await?;
        let mut acc = Accumulator::new(config.batch_size, config.linger);
        if config.enable_idempotence && config.acks == Acks::All {
            // Five per partition, as Kafka allows an idempotent producer.
            acc.set_producer(init_producer_id(&cluster, config.request_timeout).await?, config.max_in_flight.min(5));
        }
        let shared = Arc::new(Shared {
            acc: Mutex::new(acc),
            buffer: Semaphore::new(config.buffer_memory.min(Semaphore::MAX_PERMITS)),
            config,
            cluster,
            wake: Notify::new(),
            done: Notify::new(),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(refresh_metadata(Arc::downgrade(&shared)));
        let task = tokio::spawn(sender::run(shared.clone()));
        let handle = Arc::new(Handle { shared: shared.clone(), task: Mutex::new(Some(task)) });
        Ok(Producer { shared, handle })
    }

    /// The config in force.
    pub fn config(&self) -> &ProducerConfig {
        &self.shared.config
    }

    /// Queues a record and returns the future of its acknowledgement. Waits
    /// while more than `buffer_memory` bytes are buffered (backpressure), and
    /// for topic metadata the first time a topic is used. Fails at once for
    /// an unknown topic or partition, a record larger than
    /// `max_request_bytes`, or a closed producer.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture, ClientError> {
        let shared = &self.shared;
        let config = &shared.config;
        if shared.closed.load(Ordering::SeqCst) {
            return Err(ClientError::Closed);
        }
        if record.topic.is_empty() {
            return Err(ClientError::InvalidArgument("topic name is empty".into()));
        }
        let size = HEADER_LEN + record_size_bound(&record);
        if size > config.max_request_bytes {
            return Err(ClientError::InvalidArgument(format!(
                "record too large: {size} bytes exceeds max_request_bytes ({})",
                config.max_request_bytes
            )));
        }
        let meta = shared
            .cluster
            .topic_metadata(&record.topic, config.retries.min(METADATA_ATTEMPTS), config.retry_backoff)
            .await?;
        let count = meta.partition_count();
        if count == 0 {
            let msg = format!("topic '{}' has no partitions yet", record.topic);
            return Err(ClientError::server(ErrorCode::LeaderNotAvailable, msg));
        }
        let target = match (record.partition, &record.key) {
            (Some(p), _) if p >= count => {
                let msg = format!("partition {p} of topic '{}' does not exist ({count} partitions)", record.topic);
                return Err(ClientError::server(ErrorCode::UnknownTopicOrPartition, msg));
            }
            (Some(p), _) => Target::Partition(p),
            (None, Some(key)) => Target::Partition(partition_for_key(key, count)),
            (None, None) => Target::Sticky,
        };
        let permits = size.min(config.buffer_memory);
        let permit_count = u32::try_from(permits).unwrap_or(u32::MAX);
        shared.buffer.acquire_many(permit_count).await.map_err(|_| ClientError::Closed)?.forget();
        let release = || shared.buffer.add_permits(permit_count as usize);
        if shared.closed.load(Ordering::SeqCst) {
            release();
            return Err(ClientError::Closed);
        }
        let timestamp = record.timestamp.unwrap_or_else(now_ms);
        let headers: Vec<(&str, Option<&[u8]>)> =
            record.headers.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
        let fields =
            RecordRef { timestamp, key: record.key.as_deref(), value: record.value.as_deref(), headers: &headers };
        let appended = shared.acc().append(&record.topic, target, &meta, &fields, permit_count as usize);
        match appended {
            Ok((_, delivery, wake)) => {
                if wake {
                    shared.wake.notify_one();
                }
                Ok(delivery)
            }
            Err(e) => {
                release();
                Err(e)
            }
        }
    }

    /// Sends every record queued so far without waiting for `linger`, and
    /// waits until each is acknowledged or has failed (the outcome is on its
    /// [`DeliveryFuture`]). Records sent concurrently with `flush` may or may
    /// not be waited for.
    pub async fn flush(&self) {
        let upto = self.shared.acc().close_all();
        self.shared.wake.notify_one();
        loop {
            let notified = self.shared.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.shared.acc().completed_below(upto) {
                return;
            }
            notified.await;
        }
    }

    /// Stops accepting records, flushes, and stops the background task.
    /// Further `send`s fail with [`ClientError::Closed`]; other clones are
    /// closed too.
    pub async fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.flush().await;
        self.shared.begin_close();
        let task = self.handle.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "producer sender task ended abnormally");
            }
        }
    }
}

/// An upper bound of the bytes a record takes in a batch.
fn record_size_bound(r: &ProducerRecord) -> usize {
    let field = |b: Option<&Bytes>| 5 + b.map_or(0, Bytes::len);
    // length, attributes, timestamp delta, offset delta, header count.
    let mut n = 5 + 1 + 10 + 5 + 5 + field(r.key.as_ref()) + field(r.value.as_ref());
    for (k, v) in &r.headers {
        n += 5 + k.len() + field(v.as_ref());
    }
    n
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
