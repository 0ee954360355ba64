//! The record accumulator: per-partition queues of batches being filled
//! (`open`), closed and waiting to be sent (`ready`), and the requests in
//! flight per partition: one for a producer that is not idempotent (so a
//! retry cannot reorder records), up to five for an idempotent one (the
//! leader orders them by sequence). All state sits behind one mutex that
//! `send` and the sender task hold only briefly; no I/O happens under it.

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
    /// In batch-id order, which is sequence order.
    ready: VecDeque<ReadyBatch>,
    /// Requests in flight.
    in_flight: usize,
    /// Batches in those requests.
    in_flight_batches: usize,
    retry_at: Option<Instant>,
    /// The idempotent producer id and epoch this partition's batches carry.
    producer: Option<(i64, i16)>,
    /// The sequence the next closed batch starts at (idempotence).
    next_seq: i32,
    /// A batch failed for good or found a gap: nothing more is sent until
    /// the partition is quiet and starts over under a new producer id.
    reset: bool,
    /// Ids of its batches not yet completed (open, ready or in flight).
    unacked: BTreeSet<u64>,
}

impl PartitionQueue {
    /// Puts `batches` back in id (= sequence) order among the ready ones.
    fn requeue(&mut self, batches: Vec<ReadyBatch>) {
        if batches.is_empty() {
            return;
        }
        let mut all: Vec<ReadyBatch> = self.ready.drain(..).chain(batches).collect();
        all.sort_by_key(|b| b.id);
        self.ready = all.into();
    }
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
    /// The idempotent producer's newest id and epoch, which new partitions
    /// take; `None` when not idempotent.
    producer: Option<(i64, i16)>,
    /// Requests in flight per partition.
    max_in_flight: usize,
    /// Batches in flight per partition (an idempotent producer's leader
    /// remembers a producer's last five batches: a retry must be one of them).
    max_in_flight_batches: usize,
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
            max_in_flight: 1,
            max_in_flight_batches: usize::MAX,
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
                            close_open(q);
                            wake = true;
                        }
                        let previous = tq.sticky.map(|(p, _)| p);
                        pick_partition(&mut self.rng, meta, previous)
                    }
                }
            }
        };
        let q = tq.partitions.entry(partition).or_insert_with(|| PartitionQueue { producer, ..Default::default() });
        if q.open.as_ref().is_some_and(|b| !fits(b, record, batch_size)) {
            close_open(q);
            wake = true;
        }
        let open = match &mut q.open {
            Some(open) => open,
            slot @ None => {
                let id = self.next_batch_id;
                self.next_batch_id += 1;
                self.incomplete.insert(id);
                q.unacked.insert(id);
                wake = true;
                slot.insert(OpenBatch {
                    id,
                    // Room for a typical batch; a larger one grows (doubling).
                    builder: BatchBuilder::with_capacity(batch_size.min(64 * 1024)),
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
            close_open(q);
            wake = true;
        }
        if target == Target::Sticky {
            tq.sticky = Some((partition, id));
        }
        Ok((partition, delivery, wake))
    }

    /// Makes the producer idempotent: batches closed from now on carry
    /// `producer` and their partition's sequences, and up to
    /// `max_in_flight` batches per partition may be in flight, in as many
    /// requests. At most five: a retried batch must be among the last five
    /// the leader appended for the producer, and every batch appended after
    /// it was sent while it was in flight.
    pub(crate) fn set_producer(&mut self, producer: (i64, i16), max_in_flight: usize) {
        self.producer = Some(producer);
        self.max_in_flight = max_in_flight.clamp(1, 5);
        self.max_in_flight_batches = self.max_in_flight;
    }

    /// Whether the producer is idempotent.
    pub(crate) fn idempotent(&self) -> bool {
        self.producer.is_some()
    }

    /// Marks a partition to start over under a new producer id (a batch of
    /// it failed for good, or the leader found a gap in its sequence).
    pub(crate) fn mark_reset(&mut self, topic: &str, partition: u32) {
        if let Some(q) = self.topics.get_mut(topic).and_then(|t| t.partitions.get_mut(&partition)) {
            q.reset = true;
        }
    }

    /// Whether a partition waits for a new producer id and has nothing in
    /// flight any more (so renumbering its batches cannot race a send).
    pub(crate) fn reset_due(&self) -> bool {
        self.topics
            .values()
            .flat_map(|t| t.partitions.values())
            .any(|q| q.reset && q.in_flight == 0 && (!q.ready.is_empty() || q.open.is_some()))
    }

    /// Takes every batch waiting in a partition due for a reset (when no
    /// new producer id can be had, they fail rather than wait forever);
    /// they count as completed.
    pub(crate) fn take_reset_waiting(&mut self) -> Vec<ReadyBatch> {
        let mut out = Vec::new();
        for q in self.topics.values_mut().flat_map(|t| t.partitions.values_mut()) {
            if !q.reset || q.in_flight > 0 {
                continue;
            }
            close_open(q);
            for b in q.ready.drain(..) {
                q.unacked.remove(&b.id);
                self.incomplete.remove(&b.id);
                out.push(b);
            }
        }
        out
    }

    /// Whether `partition` has a batch older than `id` not yet completed
    /// (so a gap before `id` may still be filled by its retry).
    pub(crate) fn unacked_before(&self, topic: &str, partition: u32, id: u64) -> bool {
        self.topics
            .get(topic)
            .and_then(|t| t.partitions.get(&partition))
            .is_some_and(|q| q.unacked.first().is_some_and(|&first| first < id))
    }

    /// Starts the quiet partitions waiting for it over under `producer`:
    /// their sequences restart at 0 and their waiting batches are
    /// renumbered in order. New partitions take it too.
    pub(crate) fn reset_producer(&mut self, producer: (i64, i16)) {
        let (id, epoch) = producer;
        self.producer = Some(producer);
        for q in self.topics.values_mut().flat_map(|t| t.partitions.values_mut()) {
            if !q.reset || q.in_flight > 0 {
                continue;
            }
            q.reset = false;
            q.producer = Some(producer);
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

    /// Closes every open batch so the sender sends it without waiting for
    /// `linger`; returns the id below which every batch existing now lies.
    pub(crate) fn close_all(&mut self) -> u64 {
        for tq in self.topics.values_mut() {
            for q in tq.partitions.values_mut() {
                close_open(q);
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
        let (max_in_flight, max_batches) = (self.max_in_flight, self.max_in_flight_batches);
        let mut wake_at = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        for (topic, tq) in &mut self.topics {
            for (&partition, q) in &mut tq.partitions {
                if q.reset || q.in_flight >= max_in_flight || q.in_flight_batches >= max_batches {
                    continue;
                }
                let room = max_batches - q.in_flight_batches;
                if let Some(at) = q.retry_at {
                    if at > now {
                        wake_at(at);
                        continue;
                    }
                    q.retry_at = None;
                }
                if q.open.as_ref().is_some_and(|open| self.closing || open.created + self.linger <= now) {
                    close_open(q);
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
                        if b.solo || total + b.bytes.len() > max_bytes || batches.len() >= room {
                            break;
                        }
                        total += b.bytes.len();
                        batches.extend(q.ready.pop_front());
                    }
                }
                q.in_flight += 1;
                q.in_flight_batches += batches.len();
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
        q.in_flight = q.in_flight.saturating_sub(1);
        q.in_flight_batches = q.in_flight_batches.saturating_sub(requeue.len() + completed.len());
        for id in completed {
            q.unacked.remove(id);
        }
        if !requeue.is_empty() {
            q.requeue(requeue);
            q.retry_at = retry_at.max(q.retry_at);
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
fn close_open(q: &mut PartitionQueue) {
    let Some(mut open) = q.open.take() else { return };
    if let Some((id, epoch)) = q.producer {
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
        acc.set_producer((7, 0), 5);
        let m = meta(2);
        for i in 0..9 {
            let _ = acc.append("t", Target::Partition(i % 2), &m, &rec(&[1; 40]), 1).unwrap();
        }
        let (drained, _) = acc.drain(Instant::now(), 1 << 20);
        type Stamps = Vec<(i64, i16, i32, u32)>;
        let mut by_partition: Vec<(u32, Stamps)> =
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
        acc.mark_reset("t", 0);
        assert!(acc.reset_due());
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
    fn an_idempotent_partition_pipelines_up_to_five_batches_in_order() {
        let mut acc = Accumulator::new(200, Duration::ZERO);
        acc.set_producer((7, 0), 5);
        let m = meta(1);
        let add = |acc: &mut Accumulator, n: usize| {
            for _ in 0..n {
                let _ = acc.append("t", Target::Partition(0), &m, &rec(&[1; 40]), 1).unwrap();
            }
        };
        // Later than every batch's creation: linger (zero) has passed.
        let now = Instant::now() + Duration::from_secs(1);
        add(&mut acc, 2);
        let (first, _) = acc.drain(now, 1 << 20);
        assert_eq!(first[0].batches.len(), 1);
        // A second request goes while the first is in flight, and together
        // they hold at most five batches.
        add(&mut acc, 20);
        let (second, _) = acc.drain(now, 1 << 20);
        assert_eq!(second[0].batches.len(), 4, "five batches in flight at most");
        assert!(acc.drain(now, 1 << 20).0.is_empty(), "no room until one completes");
        let seqs = |d: &Drained| d.batches.iter().map(|b| stamp(b).2).collect::<Vec<_>>();
        assert_eq!(seqs(&first[0]), vec![0]);
        assert_eq!(seqs(&second[0]), vec![2, 4, 6, 8]);
        // The first comes back for a retry: the partition waits for its
        // backoff, then sends it first, ahead of the newer batches.
        let retry = first.into_iter().next().unwrap().batches;
        acc.settle("t", 0, retry, Some(now + Duration::from_millis(10)), &[]);
        assert!(acc.drain(now, 1 << 20).0.is_empty(), "backoff");
        let (again, _) = acc.drain(now + Duration::from_millis(20), 1 << 20);
        assert_eq!(seqs(&again[0]), vec![0], "the retried batch first, and only it fits");
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
