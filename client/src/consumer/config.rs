//! The consumer's settings ([`ConsumerConfig`]), where a partition starts
//! ([`SeekTo`], [`OffsetReset`]) and what it hands out ([`ConsumerRecord`]).

use std::time::Duration;

use bytes::Bytes;

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
    /// TLS to the brokers (default: plaintext).
    pub security: crate::Security,
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
    /// How long `poll`, `seek` and offset lookups keep retrying while a
    /// partition has no reachable leader (a leader failover: refresh
    /// metadata, back off, retry) before they fail with an error naming the
    /// partition (10 s).
    pub retry_timeout: Duration,
    /// Where a partition assigned without a `seek` starts (the beginning),
    /// when there is no `group_id`.
    pub initial_position: SeekTo,
    /// The consumer group whose committed offsets this consumer starts from
    /// and commits to (`None`: no group). Needed by `subscribe`, where the
    /// group's coordinator shares the partitions among its members; with
    /// `assign` the caller picks the partitions and only commits to the
    /// group (refused while the group has members).
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
    /// Static membership (Kafka's `group.instance.id`): a member with an
    /// instance id that closes keeps its partitions reserved until its
    /// session times out, so a restart with the same id (a rolling deploy)
    /// gets them back without moving the other members' partitions. `None`:
    /// a dynamic member, whose partitions are reassigned as soon as it
    /// leaves. Unique per group.
    pub group_instance_id: Option<String>,
    /// How long the coordinator waits without a heartbeat before it evicts
    /// the member and gives its partitions to the others (10 s): shorter
    /// detects a dead consumer sooner, longer rides out pauses (GC, slow
    /// networks). The consumer also gives up its partitions by itself (without
    /// committing) when no heartbeat succeeded for this long, so a cut-off
    /// consumer stops reading what another member now owns. The broker
    /// accepts 1 s to 5 min.
    pub session_timeout: Duration,
    /// How long the member may take to give up partitions the coordinator
    /// moves to another member (30 s): the application must call `poll`
    /// (or use `stream`/`close`) within it, since revocation (commit,
    /// listener callback) runs in those calls; the coordinator evicts a
    /// member that has not given them up by then.
    pub rebalance_timeout: Duration,
    /// The coordinator's assignor the group uses: `"uniform"` (sticky,
    /// even spread) or `"range"` (per topic, consecutive ranges; co-partitions
    /// topics with the same partition count). `None`: the broker's default.
    pub group_assignor: Option<String>,
    /// Names this client in the group's member list (`strata group
    /// describe`) and in broker logs ("strata-client").
    pub client_id: String,
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
    pub(crate) fn seek_to(self) -> SeekTo {
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
            security: crate::Security::default(),
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_bytes: 50 * 1024 * 1024,
            max_partition_bytes: 8 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            retry_timeout: crate::metadata::DEFAULT_RETRY_TIMEOUT,
            initial_position: SeekTo::Beginning,
            group_id: None,
            auto_offset_reset: OffsetReset::Latest,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            group_instance_id: None,
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            group_assignor: None,
            client_id: "strata-client".to_owned(),
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
