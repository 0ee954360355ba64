//! Produce: validate every batch of a partition's records, then append them
//! all under one lock with one durability wait. acks=0 and 1 reply after the
//! leader's append; acks=all first checks `min.insync.replicas`, then waits
//! until the high watermark passes the last appended offset (woken by the
//! high watermark moving, never by polling).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_record::batch::{split_batches, BatchHeader, RecordBatch};
use strata_record::TopicPartition;
use strata_storage::{NewProducers, StorageError};

use crate::api_error;
use crate::error::{BrokerError, ErrorKind};
use crate::partition::Partition;
use crate::service::BrokerService;
use crate::topic_config::CompressionPolicy;

/// How long acks=all waits for replication when the request sets no time.
const DEFAULT_PRODUCE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest acks=all wait a request may ask for.
const MAX_PRODUCE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a batch that arrived ahead of its producer's sequence waits for
/// the batches before it (in other requests of a pipelining producer).
const SEQUENCE_GAP_WAIT: Duration = Duration::from_secs(2);
/// A partition's records up to this size, uncompressed and stored as they
/// are, are validated and appended on the async task itself: a trip to
/// the blocking pool (two thread hand-offs) costs more than the CRC and the
/// copy into the page cache. Larger or compressed ones, and every fsync
/// wait, go to the blocking pool.
const INLINE_APPEND_BYTES: usize = 64 * 1024;

/// How many replicas must have a produce's records before it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// acks=0: the producer does not wait (the edge may still answer).
    None,
    /// acks=1: the leader's append.
    Leader,
    /// acks=all: every in-sync replica, and at least `min.insync.replicas`.
    All,
}

/// One partition's record batches in a produce request.
#[derive(Debug, Clone)]
pub struct ProducePartition {
    /// Where they go.
    pub tp: TopicPartition,
    /// One or more record batches, back to back, as the producer built them.
    pub records: Bytes,
}

/// Where one partition's records landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    /// Offset of the first record appended.
    pub base_offset: u64,
    /// The partition's log start offset after the append.
    pub log_start_offset: u64,
}

use crate::authorizer::{Resource, Session};
use strata_metadata::AclOperation;

impl BrokerService {
    /// Appends each partition's records (the partitions concurrently) and
    /// says, per partition, where they landed or why not. `timeout` bounds
    /// the acks=all wait (`None`: 30 s; at most 300 s).
    pub async fn produce(
        &self,
        session: &Session,
        acks: Acks,
        timeout: Option<Duration>,
        partitions: Vec<ProducePartition>,
    ) -> Vec<(TopicPartition, Result<Produced, BrokerError>)> {
        let timeout = timeout.map_or(DEFAULT_PRODUCE_TIMEOUT, |t| t.min(MAX_PRODUCE_TIMEOUT));
        futures::future::join_all(partitions.into_iter().map(|pp| async move {
            if let Err(e) = self.authorize(session, AclOperation::Write, Resource::Topic(&pp.tp.topic)) {
                return (pp.tp, Err(e));
            }
            let result = self.produce_partition(&pp.tp, pp.records, acks, timeout).await;
            (pp.tp, result)
        }))
        .await
    }

    /// Appends one partition's records and says where they landed.
    async fn produce_partition(
        &self,
        tp: &TopicPartition,
        records: Bytes,
        acks: Acks,
        timeout: Duration,
    ) -> Result<Produced, BrokerError> {
        match self.append(&tp.topic, tp.partition, records, acks, timeout).await {
            Ok((base_offset, log_start_offset, records, bytes)) => {
                self.metrics.record_produce(records, bytes);
                Ok(Produced { base_offset, log_start_offset })
            }
            Err(e) => {
                self.metrics.record_error(e.kind());
                Err(e)
            }
        }
    }

    async fn append(
        &self,
        topic: &str,
        partition: u32,
        records: Bytes,
        acks: Acks,
        timeout: Duration,
    ) -> Result<(u64, u64, u64, u64), BrokerError> {
        crate::admin::refuse_internal(topic, "written")?;
        let p = self.replicas.lookup(topic, partition)?;
        if acks == Acks::All {
            p.check_min_isr(ErrorKind::NotEnoughReplicas)?;
        }
        if records.is_empty() {
            return Err(BrokerError::new(
                ErrorKind::InvalidRequest,
                format!("{topic}-{partition}: no record batches given"),
            ));
        }
        let bytes = records.len() as u64;
        let max = p.log.config().max_batch_bytes;
        let policy = p.compression_policy();
        let keys_required = p.log.config().compact;
        let log = p.log.clone();
        let epoch = p.leader_epoch_if_leader().ok_or_else(|| p.not_leader())?;
        let tp = p.tp.clone();
        let task_failed = |e| BrokerError::new(ErrorKind::UnknownServerError, "append task failed").with_source(e);
        // An idempotent producer pipelines requests, and concurrent requests
        // may reach the log out of order: a batch ahead of its producer's
        // sequence waits (briefly) for the one before it.
        let mut log_end = p.watch_log_end();
        let wait_until = tokio::time::Instant::now() + SEQUENCE_GAP_WAIT.min(timeout);
        let mut new_producers = NewProducers::StartAtZero;
        // Validation decompresses and may recompress: CPU work for the
        // blocking pool, with the first append (and its fsync wait), not for
        // the async workers; a small plain request is cheaper inline.
        let (batches, mut appended) = if inline_append(&records, policy) {
            let batches = Arc::new(accepted_batches(&tp, records, max, policy, keys_required)?);
            let appended = log.append_batches_unsynced(&batches, epoch, NewProducers::StartAtZero);
            (batches, appended)
        } else {
            let log = log.clone();
            let first = tokio::task::spawn_blocking(move || {
                let batches = Arc::new(accepted_batches(&tp, records, max, policy, keys_required)?);
                let appended = append_and_sync(&log, &batches, epoch, NewProducers::StartAtZero);
                Ok::<_, BrokerError>((batches, appended))
            });
            first.await.map_err(task_failed)??
        };
        let count: u64 = batches.iter().map(|b| u64::from(b.header().record_count)).sum();
        let info = loop {
            match appended {
                Err(StorageError::OutOfOrderSequence { producer_id, expected, found })
                    if sequence_ahead(expected, found) =>
                {
                    if tokio::time::Instant::now() < wait_until {
                        let _ = tokio::time::timeout_at(wait_until, log_end.changed()).await;
                        if p.leader_epoch_if_leader() != Some(epoch) {
                            return Err(p.not_leader());
                        }
                    } else if new_producers == NewProducers::StartAtZero && p.log.producer_entry(producer_id).is_none()
                    {
                        // Nothing before it came: the producer's state
                        // expired or went with its batches (Kafka takes any
                        // sequence from a producer it does not know).
                        new_producers = NewProducers::AnySequence;
                    } else {
                        let e = StorageError::OutOfOrderSequence { producer_id, expected, found };
                        return Err(api_error::storage_error(topic, partition, e));
                    }
                }
                other => break other.map_err(|e| api_error::storage_error(topic, partition, e))?,
            }
            let (log, batches) = (log.clone(), batches.clone());
            appended = tokio::task::spawn_blocking(move || append_and_sync(&log, &batches, epoch, new_producers))
                .await
                .map_err(task_failed)?;
        };
        let info = match info {
            (info, None) => info,
            (info, Some(delay)) => {
                let log = log.clone();
                tokio::task::spawn_blocking(move || log.wait_durable_for(&info, delay).map(|()| info))
                    .await
                    .map_err(task_failed)?
                    .map_err(|e| api_error::storage_error(topic, partition, e))?
            }
        };
        p.after_leader_append();
        if acks == Acks::All {
            wait_committed(&p, epoch, info.last_offset + 1, timeout, &self.stopping).await?;
        }
        Ok((info.first_offset, p.log.log_start_offset(), count, bytes))
    }
}

/// Appends and waits for the durability the flush policy asks (on the
/// blocking pool), in the shape of [`strata_storage::Log::append_batches_unsynced`]
/// with nothing left to wait for.
fn append_and_sync(
    log: &strata_storage::Log,
    batches: &[RecordBatch],
    epoch: u32,
    new: NewProducers,
) -> Result<(strata_storage::AppendInfo, Option<Duration>), StorageError> {
    log.append_batches_with(batches, epoch, new).map(|info| (info, None))
}

/// Whether a partition's `records` are small, uncompressed and kept as they
/// are (see [`INLINE_APPEND_BYTES`]). Headers that do not parse are left to
/// the blocking path, which names the problem.
fn inline_append(records: &Bytes, policy: CompressionPolicy) -> bool {
    if records.len() > INLINE_APPEND_BYTES || matches!(policy, CompressionPolicy::Codec(_)) {
        return false;
    }
    let mut pos = 0;
    while pos < records.len() {
        match BatchHeader::parse(&records[pos..]) {
            Ok(h) if h.compression() == 0 => pos += h.total_len(),
            _ => return false,
        }
    }
    true
}

/// Whether sequence `found` is ahead of `expected` (a batch before it has not
/// arrived yet) rather than behind it (an old retry), sequences wrapping at
/// 2^31.
fn sequence_ahead(expected: i32, found: i32) -> bool {
    let distance = (i64::from(found) - i64::from(expected)).rem_euclid(1 << 31);
    distance > 0 && distance < 1 << 30
}

/// Splits and validates a produce's `records` (decompressing compressed
/// batches to check every record), re-encoding each batch whose codec is not
/// the one the topic's `compression.type` asks for. Any bad batch fails
/// them all: nothing is written. A compacted topic (`keys_required`) takes
/// only records with a key, as Kafka's.
fn accepted_batches(
    tp: &TopicPartition,
    records: Bytes,
    max_batch_bytes: usize,
    policy: CompressionPolicy,
    keys_required: bool,
) -> Result<Vec<RecordBatch>, BrokerError> {
    let mut batches = Vec::new();
    for (i, b) in split_batches(records, max_batch_bytes).enumerate() {
        let bad = |e| api_error::batch_error(&tp.topic, tp.partition, i, e);
        let batch = b.map_err(bad)?;
        if keys_required {
            for r in batch.records() {
                if r.map_err(bad)?.key.is_none() {
                    return Err(BrokerError::new(
                        ErrorKind::InvalidRecord,
                        format!(
                            "{tp}: a compacted topic (cleanup.policy=compact) takes only records with a key; batch {i} has one without"
                        ),
                    ));
                }
            }
        }
        let batch = match policy {
            CompressionPolicy::Codec(codec) if codec != batch.compression() => {
                batch.recompressed(codec, None).map_err(bad)?
            }
            _ => batch,
        };
        batches.push(batch);
    }
    Ok(batches)
}

/// Where an acks=all append ending at `end` (exclusive), made in leader
/// `epoch`, stands: `Ok(true)` once committed, `Ok(false)` while it must
/// wait, or the error that fails it (leadership moved; the ISR fell below
/// `min.insync.replicas`). Sync, so a simulation drives the same rule.
pub fn commit_status(p: &Partition, epoch: u32, end: u64) -> Result<bool, BrokerError> {
    if p.leader_epoch_if_leader() != Some(epoch) {
        return Err(BrokerError::new(
            ErrorKind::NotLeaderOrFollower,
            format!("{}: leadership moved before the records were replicated; they may be lost", p.tp),
        ));
    }
    // Before the high watermark (as Kafka's DelayedProduce): once the ISR
    // shrank below the minimum, the leader alone moves the high watermark,
    // and completing then would acknowledge a record held by one replica.
    p.check_min_isr(ErrorKind::NotEnoughReplicasAfterAppend)?;
    Ok(p.high_watermark() >= end)
}

/// Waits until the high watermark reaches `end` while this broker still
/// leads in `epoch`; fails if leadership moves, the ISR falls below
/// `min.insync.replicas`, or `timeout` passes.
pub(crate) async fn wait_committed(
    p: &Partition,
    epoch: u32,
    end: u64,
    timeout: Duration,
    stopping: &tokio_util::sync::CancellationToken,
) -> Result<(), BrokerError> {
    let mut hw = p.watch_high_watermark();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        hw.borrow_and_update();
        if commit_status(p, epoch, end)? {
            return Ok(());
        }
        if stopping.is_cancelled() {
            // After a controlled shutdown the followers fetch from the new
            // leader: this high watermark will not move again. Answer now so
            // the producer retries there instead of waiting out its timeout.
            return Err(BrokerError::new(
                ErrorKind::NotLeaderOrFollower,
                format!("{}: this broker is shutting down; the records may not be replicated", p.tp),
            ));
        }
        let changed = tokio::select! {
            r = tokio::time::timeout_at(deadline, hw.changed()) => r,
            _ = stopping.cancelled() => continue,
        };
        match changed {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(p.not_leader()),
            Err(_) => {
                return Err(BrokerError::new(
                    ErrorKind::RequestTimedOut,
                    format!(
                        "{}: not replicated to the in-sync replicas within {} ms (high watermark {}, needed {end})",
                        p.tp,
                        timeout.as_millis(),
                        p.high_watermark()
                    ),
                ))
            }
        }
    }
}

#[cfg(test)]
mod inline_tests {
    use super::*;
    use strata_record::batch::{compress_batch, BatchBuilder};
    use strata_record::compression::Compression;

    fn batch(value_len: usize) -> Bytes {
        let mut b = BatchBuilder::new();
        b.append(0, None, Some(&vec![7u8; value_len][..]), &[]).unwrap();
        b.build().unwrap()
    }

    #[test]
    fn only_small_plain_batches_stored_as_sent_are_appended_inline() {
        let two = Bytes::from([batch(100), batch(200)].concat());
        assert!(inline_append(&two, CompressionPolicy::Producer));
        assert!(!inline_append(&batch(INLINE_APPEND_BYTES), CompressionPolicy::Producer), "too large");
        let zstd = compress_batch(&batch(100), Compression::Zstd, None).unwrap();
        assert!(!inline_append(&Bytes::from([batch(100), zstd].concat()), CompressionPolicy::Producer));
        assert!(!inline_append(&two, CompressionPolicy::Codec(Compression::None)), "the topic re-encodes");
        assert!(!inline_append(&two.slice(..30), CompressionPolicy::Producer), "a cut header");
    }
}

#[cfg(test)]
mod sequence_tests {
    use super::sequence_ahead;

    #[test]
    fn ahead_and_behind_wrap_at_2_to_the_31() {
        assert!(sequence_ahead(5, 6));
        assert!(sequence_ahead(5, 500));
        assert!(!sequence_ahead(5, 5));
        assert!(!sequence_ahead(5, 1), "an old retry is behind");
        assert!(sequence_ahead(i32::MAX, 3), "past the wrap");
        assert!(!sequence_ahead(3, i32::MAX), "before the wrap is behind");
    }
}
