//! The record accumulator: per-partition queues of batches being filled
//! (`open`), closed and waiting to be sent (`ready`), and at most one request
//! in flight per partition. All state sits behind one mutex that `send` and
//! the sender task hold only briefly; no I/O happens under it.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_record::batch::{set_producer, BatchBuilder};

use super::completion::{BatchCompletion, Completer, FxMap};
use super::DeliveryFuture;
use crate::error::ClientError;
use crate::metadata::TopicMetadata;

/// Where the caller wants a record to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// An explicit or key-hashed partition.
    Partition(u32),
    /// Keyless: the topic's sticky partition (KIP-480).
    Sticky,
}

/// A batch still accepting records.
#[derive(Debug)]
struct OpenBatch {
    id: u64,
    builder: BatchBuilder,
    /// Where the batch's records learn their outcome.
    completer: Completer,
    /// Records appended so far.
    records: u32,
    created: Instant,
    permits: usize,
}

/// An encoded batch waiting to be sent (or re-sent).
#[derive(Debug)]
pub(crate) struct ReadyBatch {
    pub id: u64,
    pub bytes: Bytes,
    /// Resolves the delivery futures of the batch's records.
    pub completer: Completer,
    /// Records in the batch.
    pub records: u32,
    /// Buffer-memory permits to give back when the batch completes.
    pub permits: usize,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When the first attempt failed: retries stop `delivery_timeout` later.
    pub first_failure: Option<Instant>,
    /// Send this batch alone in its partition's entry (after the broker
    /// rejected an entry of several batches, so the error lands on exactly
    /// the batch at fault).
    pub solo: bool,
    /// `bytes` are in their final encoding (compressed if the producer
    /// compresses): a retry re-sends them unchanged.
    pub encoded: bool,
}

#[derive(Debug, Default)]
struct PartitionQueue {
    open: Option<OpenBatch>,
    ready: VecDeque<ReadyBatch>,
    in_flight: bool,
    retry_at: Option<Instant>,
    /// The sequence the next closed batch starts at (idempotence).
    next_seq: i32,
}

#[derive(Debug)]
struct TopicQueues {
    /// The topic's name, shared with its batches.
    name: Arc<str>,
    partitions: FxMap<u32, PartitionQueue>,
    /// The sticky partition and the id of the batch it was filling.
    sticky: Option<(u32, u64)>,
}

/// Batches taken out for one partition's entry in a produce request.
#[derive(Debug)]
pub(crate) struct Drained {
    pub topic: Arc<str>,
    pub partition: u32,
    pub batches: Vec<ReadyBatch>,
}

impl Drained {
    pub(crate) fn bytes(&self) -> usize {
        self.batches.iter().map(|b| b.bytes.len()).sum()
    }
}

/// The record fields `append` encodes.
pub(crate) struct RecordRef<'a> {
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
}

#[derive(Debug)]
pub(crate) struct Accumulator {
    topics: FxMap<Arc<str>, TopicQueues>,
    batch_size: usize,
    linger: Duration,
    next_batch_id: u64,
    /// Ids of batches created and not yet completed (acknowledged or failed).
    incomplete: BTreeSet<u64>,
    /// Send everything at once and let the sender stop when idle.
    pub closing: bool,
    /// The sender stopped: nothing appended now would ever be sent.
    pub stopped: bool,
    rng: u64,
    /// The idempotent producer's id and epoch; `None` when not idempotent.
    producer: Option<(i64, i16)>,
    /// A batch failed for good, so a partition's sequence may have a gap:
    /// nothing is sent until the sender took a new producer id
    /// ([`Accumulator::reset_producer`]).
    pub needs_reset: bool,
}

impl Accumulator {
    pub(crate) fn new(batch_size: usize, linger: Duration) -> Self {
        let seed = RandomState::new().hash_one(Instant::now()) | 1;
        Accumulator {
            topics: FxMap::default(),
            batch_size,
            linger,
            next_batch_id: 0,
            incomplete: BTreeSet::new(),
            closing: false,
            stopped: false,
            rng: seed,
            producer: None,
            needs_reset: false,
        }
    }

    /// Appends a record. Returns the partition chosen, the future of its
    /// delivery, and whether the sender should wake up (a batch was opened
    /// or became ready).
    pub(crate) fn append(
        &mut self,
        topic: &str,
        target: Target,
        meta: &TopicMetadata,
        record: &RecordRef<'_>,
        permits: usize,
    ) -> Result<(u32, DeliveryFuture, bool), ClientError> {
        if self.stopped {
            return Err(ClientError::Closed);
        }
        let producer = self.producer;
        // Never build a batch the topic would reject as too large (a lone
        // record over the limit still fails, alone, as in Kafka).
        let batch_size = meta.max_batch_bytes.map_or(self.batch_size, |max| self.batch_size.min(max));
        if !self.topics.contains_key(topic) {
            let name: Arc<str> = Arc::from(topic);
            let tq = TopicQueues { name: name.clone(), partitions: FxMap::default(), sticky: None };
            self.topics.insert(name, tq);
        }
        #[allow(clippy::expect_used, reason = "invariant: inserted just above")]
        let tq = self.topics.get_mut(topic).expect("inserted above");
        let mut wake = false;
        let partition = match target {
            Target::Partition(p) => p,
            Target::Sticky => {
                let sticky_batch = tq.sticky.and_then(|(p, id)| {
                    let q = tq.partitions.get_mut(&p)?;
                    q.open.as_ref().is_some_and(|b| b.id == id).then_some((p, q))
                });
                match sticky_batch {
                    Some((p, q)) if q.open.as_ref().is_some_and(|b| fits(b, record, batch_size)) => p,
                    other => {
                        // The sticky batch is complete: it goes out now and
                        // keyless records move to another partition.
                        if let Some((_, q)) = other {
                            close_open(q, producer);
                            wake = true;
                        }
                        let previous = tq.sticky.map(|(p, _)| p);
                        pick_partition(&mut self.rng, meta, previous)
                    }
                }
            }
        };
        let q = tq.partitions.entry(partition).or_default();
        if q.open.as_ref().is_some_and(|b| !fits(b, record, batch_size)) {
            close_open(q, producer);
            wake = true;
        }
        let open = match &mut q.open {
            Some(open) => open,
            slot @ None => {
                let id = self.next_batch_id;
                self.next_batch_id += 1;
                self.incomplete.insert(id);
                wake = true;
                slot.insert(OpenBatch {
                    id,
                    // Room for a whole batch: growing it would copy it.
                    builder: BatchBuilder::with_capacity(batch_size.min(1024 * 1024)),
                    completer: Completer(BatchCompletion::new(tq.name.clone(), partition)),
                    records: 0,
                    created: Instant::now(),
                    permits: 0,
                })
            }
        };
        if let Err(e) = open.builder.append(record.timestamp, record.key, record.value, record.headers) {
            if open.builder.is_empty() {
                self.incomplete.remove(&open.id);
                q.open = None;
            }
            return Err(ClientError::InvalidArgument(e.to_string()));
        }
        let batch = open.completer.0.clone();
        let delivery = DeliveryFuture { batch, index: open.records, timestamp: record.timestamp, slot: None };
        open.records += 1;
        open.permits += permits;
        let id = open.id;
        if open.builder.size_in_bytes() >= batch_size {
            close_open(q, producer);
            wake = true;
        }
        if target == Target::Sticky {
            tq.sticky = Some((partition, id));
        }
        Ok((partition, delivery, wake))
    }

    /// Makes the batches closed from now on an idempotent producer's.
    pub(crate) fn set_producer(&mut self, producer: (i64, i16)) {
        self.producer = Some(producer);
    }

    /// Whether the producer is idempotent.
    pub(crate) fn idempotent(&self) -> bool {
        self.producer.is_some()
    }

    /// Starts over under a new producer id: every partition's sequences
    /// restart at 0 and the batches waiting to be sent are renumbered in
    /// order (a batch in flight keeps the id it was sent with: the log
    /// takes both).
    pub(crate) fn reset_producer(&mut self, producer: (i64, i16)) {
        let (id, epoch) = producer;
        self.producer = Some(producer);
        self.needs_reset = false;
        for tq in self.topics.values_mut() {
            for q in tq.partitions.values_mut() {
                q.next_seq = 0;
                for b in &mut q.ready {
                    let mut bytes = b.bytes.to_vec();
                    match set_producer(&mut bytes, id, epoch, q.next_seq) {
                        Ok(()) => b.bytes = Bytes::from(bytes),
                        // The batch is one this producer built.
                        Err(e) => tracing::error!(error = %e, "cannot renumber a batch"),
                    }
                    q.next_seq = advance(q.next_seq, b.records);
                }
            }
        }
    }

    /// Closes every open batch so the sender sends it without waiting for
    /// `linger`; returns the id below which every batch existing now lies.
    pub(crate) fn close_all(&mut self) -> u64 {
        let producer = self.producer;
        for tq in self.topics.values_mut() {
            for q in tq.partitions.values_mut() {
                close_open(q, producer);
            }
        }
        self.next_batch_id
    }

    /// Whether every batch with an id below `upto` has completed.
    pub(crate) fn completed_below(&self, upto: u64) -> bool {
        self.incomplete.first().is_none_or(|&id| id >= upto)
    }

    /// Whether no batch is open, waiting or in flight.
    pub(crate) fn is_idle(&self) -> bool {
        self.incomplete.is_empty()
    }

    /// Takes what is sendable now: for each partition with nothing in flight
    /// and no retry pending, its ready batches (closing the open batch once
    /// `linger` expired, or at once when closing), up to `max_bytes` per
    /// partition. Marks those partitions in flight. Also returns when the
    /// next linger or retry deadline falls.
    pub(crate) fn drain(&mut self, now: Instant, max_bytes: usize) -> (Vec<Drained>, Option<Instant>) {
        let mut out = Vec::new();
        let mut next: Option<Instant> = None;
        if self.needs_reset {
            return (out, None);
        }
        let producer = self.producer;
        let mut wake_at = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        for (topic, tq) in &mut self.topics {
            for (&partition, q) in &mut tq.partitions {
                if q.in_flight {
                    continue;
                }
                if let Some(at) = q.retry_at {
                    if at > now {
                        wake_at(at);
                        continue;
                    }
                    q.retry_at = None;
                }
                if q.open.as_ref().is_some_and(|open| self.closing || open.created + self.linger <= now) {
                    close_open(q, producer);
                }
                let Some(first) = q.ready.pop_front() else {
                    if let Some(open) = &q.open {
                        wake_at(open.created + self.linger);
                    }
                    continue;
                };
                let mut total = first.bytes.len();
                let solo = first.solo;
                let mut batches = vec![first];
                if !solo {
                    while let Some(b) = q.ready.front() {
                        if b.solo || total + b.bytes.len() > max_bytes {
                            break;
                        }
                        total += b.bytes.len();
                        batches.extend(q.ready.pop_front());
                    }
                }
                q.in_flight = true;
                out.push(Drained { topic: topic.clone(), partition, batches });
            }
        }
        (out, next)
    }

    /// Ends a partition's request: `requeue` goes back to the front of its
    /// queue (in order) to be sent again after `retry_at`, `completed` are
    /// done (their buffer permits are the caller's to release).
    pub(crate) fn settle(
        &mut self,
        topic: &str,
        partition: u32,
        requeue: Vec<ReadyBatch>,
        retry_at: Option<Instant>,
        completed: &[u64],
    ) {
        for id in completed {
            self.incomplete.remove(id);
        }
        let Some(q) = self.topics.get_mut(topic).and_then(|t| t.partitions.get_mut(&partition)) else { return };
        q.in_flight = false;
        if !requeue.is_empty() {
            for b in requeue.into_iter().rev() {
                q.ready.push_front(b);
            }
            q.retry_at = retry_at;
        }
    }
}

/// A random partition with a leader (any partition if none has one),
/// other than `previous` when there is a choice.
fn pick_partition(rng: &mut u64, meta: &TopicMetadata, previous: Option<u32>) -> u32 {
    let all: Vec<u32>;
    let pool: &[u32] = if meta.available.is_empty() {
        all = (0..meta.partition_count()).collect();
        &all
    } else {
        &meta.available
    };
    let choices: Vec<u32> = match previous {
        Some(prev) if pool.len() > 1 => pool.iter().copied().filter(|&p| p != prev).collect(),
        _ => pool.to_vec(),
    };
    // xorshift64*: plenty for spreading batches.
    *rng ^= *rng >> 12;
    *rng ^= *rng << 25;
    *rng ^= *rng >> 27;
    let r = rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
    choices[(r % choices.len() as u64) as usize]
}

/// Whether `record` still goes into `batch` (an empty batch takes anything).
fn fits(batch: &OpenBatch, record: &RecordRef<'_>, batch_size: usize) -> bool {
    batch.builder.is_empty()
        || batch.builder.size_in_bytes()
            + batch.builder.record_size(record.timestamp, record.key, record.value, record.headers)
            <= batch_size
}

/// The sequence `records` after `seq` (sequences wrap at `i32::MAX`).
fn advance(seq: i32, records: u32) -> i32 {
    ((i64::from(seq) + i64::from(records)) % (i64::from(i32::MAX) + 1)) as i32
}

/// Encodes the open batch of `q` and queues it as ready; an idempotent
/// producer's batch takes the partition's next sequences.
fn close_open(q: &mut PartitionQueue, producer: Option<(i64, i16)>) {
    let Some(mut open) = q.open.take() else { return };
    if let Some((id, epoch)) = producer {
        open.builder.set_producer(id, epoch, q.next_seq);
        q.next_seq = advance(q.next_seq, open.records);
    }
    #[allow(clippy::expect_used, reason = "invariant: an open batch holds at least one record")]
    let bytes = open.builder.build().expect("an open batch holds at least one record");
    q.ready.push_back(ReadyBatch {
        id: open.id,
        bytes,
        completer: open.completer,
        records: open.records,
        permits: open.permits,
        attempts: 0,
        first_failure: None,
        solo: false,
        encoded: false,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(n: u32) -> TopicMetadata {
        TopicMetadata { leaders: vec![Some(1); n as usize], available: (0..n).collect(), max_batch_bytes: None }
    }

    fn rec(value: &[u8]) -> RecordRef<'_> {
        RecordRef { timestamp: 1, key: None, value: Some(value), headers: &[] }
    }

    /// (producer id, epoch, base sequence, records) of a drained batch.
    fn stamp(b: &ReadyBatch) -> (i64, i16, i32, u32) {
        let h = strata_record::batch::BatchHeader::parse(&b.bytes).unwrap();
        (h.producer_id, h.producer_epoch, h.base_sequence, b.records)
    }

    #[test]
    fn idempotent_batches_take_each_partitions_next_sequences_and_are_renumbered_on_reset() {
        let mut acc = Accumulator::new(200, Duration::ZERO);
        acc.set_producer((7, 0));
        let m = meta(2);
        for i in 0..9 {
            let _ = acc.append("t", Target::Partition(i % 2), &m, &rec(&[1; 40]), 1).unwrap();
        }
        let (drained, _) = acc.drain(Instant::now(), 1 << 20);
        let mut by_partition: Vec<(u32, Vec<(i64, i16, i32, u32)>)> =
            drained.iter().map(|d| (d.partition, d.batches.iter().map(stamp).collect())).collect();
        by_partition.sort();
        // Two records per 200-byte batch: sequences count records per partition.
        assert_eq!(by_partition[0], (0, vec![(7, 0, 0, 2), (7, 0, 2, 2), (7, 0, 4, 1)]));
        assert_eq!(by_partition[1], (1, vec![(7, 0, 0, 2), (7, 0, 2, 2)]));
        // Partition 0's entry comes back for a retry; a reset renumbers it
        // (and partition 1's entry, still in flight, keeps its stamps).
        let mut drained = drained;
        let p0 = drained.iter().position(|d| d.partition == 0).unwrap();
        let entry = drained.remove(p0);
        acc.settle("t", 0, entry.batches, None, &[]);
        acc.needs_reset = true;
        assert!(acc.drain(Instant::now(), 1 << 20).0.is_empty(), "nothing is sent while a reset is due");
        acc.reset_producer((8, 0));
        let _ = acc.append("t", Target::Partition(0), &m, &rec(&[1; 40]), 1).unwrap();
        let _ = acc.append("t", Target::Partition(0), &m, &rec(&[1; 40]), 1).unwrap();
        let (drained, _) = acc.drain(Instant::now(), 1 << 20);
        let again: Vec<_> = drained[0].batches.iter().map(stamp).collect();
        assert_eq!(again, vec![(8, 0, 0, 2), (8, 0, 2, 2), (8, 0, 4, 1), (8, 0, 5, 2)]);
        for b in &drained[0].batches {
            strata_record::batch::validate(&b.bytes, usize::MAX).unwrap();
        }
    }

    #[test]
    fn batches_close_at_batch_size_and_linger() {
        let mut acc = Accumulator::new(200, Duration::from_millis(50));
        let m = meta(1);
        for _ in 0..10 {
            let _ = acc.append("t", Target::Partition(0), &m, &rec(&[7; 40]), 50).unwrap();
        }
        let now = Instant::now();
        let (drained, next) = acc.drain(now, 1 << 20);
        assert_eq!(drained.len(), 1);
        // Several full batches went out in one entry; the open one waits.
        assert!(drained[0].batches.len() >= 2);
        assert!(drained[0].batches.iter().all(|b| b.bytes.len() <= 200));
        assert!(next.is_none(), "partition in flight: no deadline");
        acc.settle("t", 0, Vec::new(), None, &drained[0].batches.iter().map(|b| b.id).collect::<Vec<_>>());
        let (drained, next) = acc.drain(now, 1 << 20);
        assert!(drained.is_empty());
        assert!(next.is_some(), "linger deadline of the open batch");
        let (drained, _) = acc.drain(now + Duration::from_millis(60), 1 << 20);
        assert_eq!(drained.len(), 1);
    }

    #[test]
    fn sticky_partition_changes_when_its_batch_closes() {
        // A 61-byte header plus 47 bytes per record: two records fit in 200.
        let mut acc = Accumulator::new(200, Duration::from_secs(10));
        let m = meta(4);
        let (p0, _, _) = acc.append("t", Target::Sticky, &m, &rec(&[1; 40]), 1).unwrap();
        let (p1, _, _) = acc.append("t", Target::Sticky, &m, &rec(&[1; 40]), 1).unwrap();
        assert_eq!(p0, p1, "stays on the partition while its batch fills");
        // The third does not fit: the batch is complete, the record moves on.
        let (p2, _, _) = acc.append("t", Target::Sticky, &m, &rec(&[1; 40]), 1).unwrap();
        assert_ne!(p2, p0);
        let (p3, _, _) = acc.append("t", Target::Sticky, &m, &rec(&[1; 40]), 1).unwrap();
        assert_eq!(p3, p2);
        // The completed sticky batch is ready at once; the new one lingers.
        let records = |d: &Drained| d.batches.iter().map(|b| b.records as usize).sum::<usize>();
        let (drained, _) = acc.drain(Instant::now(), 1 << 20);
        assert_eq!(drained.iter().map(|d| (d.partition, records(d))).collect::<Vec<_>>(), vec![(p0, 2)]);
        let (drained, _) = acc.drain(Instant::now() + Duration::from_secs(11), 1 << 20);
        assert_eq!(drained.iter().map(|d| (d.partition, records(d))).collect::<Vec<_>>(), vec![(p2, 2)]);
    }

    #[test]
    fn requeued_batches_keep_their_order_and_wait_for_backoff() {
        let mut acc = Accumulator::new(100, Duration::ZERO);
        let m = meta(1);
        for _ in 0..3 {
            let _ = acc.append("t", Target::Partition(0), &m, &rec(&[1; 60]), 1).unwrap();
        }
        let now = Instant::now();
        let (mut drained, _) = acc.drain(now, 1 << 20);
        let batches = std::mem::take(&mut drained[0].batches);
        let ids: Vec<u64> = batches.iter().map(|b| b.id).collect();
        acc.settle("t", 0, batches, Some(now + Duration::from_millis(100)), &[]);
        let (drained, next) = acc.drain(now, 1 << 20);
        assert!(drained.is_empty());
        assert_eq!(next, Some(now + Duration::from_millis(100)));
        let (drained, _) = acc.drain(now + Duration::from_millis(100), 1 << 20);
        assert_eq!(drained[0].batches.iter().map(|b| b.id).collect::<Vec<_>>(), ids);
        assert!(!acc.completed_below(3));
        acc.settle("t", 0, Vec::new(), None, &ids);
        assert!(acc.is_idle());
    }
}
