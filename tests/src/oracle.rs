//! The acknowledged-records oracle of the replication tests: produce
//! acks=all records while faults or moves happen, then check from the
//! outside that every acknowledged record is readable at its acknowledged
//! offset, offsets are dense, nothing was written twice, and every replica
//! of a partition holds the same bytes.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use strata_client::{Consumer, ConsumerConfig, Producer, ProducerRecord, SeekTo};
use strata_storage::{Log, LogConfig};

/// An acknowledged record: (partition, offset, value).
pub type Acked = (u32, u64, String);

/// What a producing run got back.
#[derive(Debug, Default)]
pub struct ProduceRun {
    /// Acknowledged records.
    pub acked: Vec<Acked>,
    /// Sends that failed (not acknowledged; allowed, never checked for).
    pub failed: usize,
    /// The first few failures, for the report of a test that forbids them.
    pub errors: Vec<String>,
    /// The longest a record waited for its acknowledgement.
    pub max_ack_latency: Duration,
}

impl ProduceRun {
    fn fail(&mut self, e: impl std::fmt::Display) {
        self.failed += 1;
        if self.errors.len() < 5 {
            self.errors.push(format!("{:?}: {e}", std::time::SystemTime::now()));
        }
    }
}

/// Produces windows of 50 records round-robin over `partitions` until
/// `done`; values are `{tag}-{seq}`.
pub async fn produce_until(
    producer: &Producer,
    topic: &str,
    partitions: u32,
    tag: &str,
    done: &AtomicBool,
) -> ProduceRun {
    let mut run = ProduceRun::default();
    let mut seq = 0u64;
    while !done.load(Ordering::SeqCst) {
        let mut pending = Vec::new();
        for _ in 0..50 {
            let value = format!("{tag}-{seq}");
            let record = ProducerRecord::new(topic, value.clone()).with_partition((seq % u64::from(partitions)) as u32);
            seq += 1;
            match producer.send(record).await {
                Ok(d) => pending.push((value, Instant::now(), d)),
                Err(e) => run.fail(e),
            }
        }
        for (value, sent, d) in pending {
            match d.await {
                Ok(meta) => {
                    run.max_ack_latency = run.max_ack_latency.max(sent.elapsed());
                    run.acked.push((meta.partition, meta.offset.expect("acks=all has an offset"), value));
                }
                Err(e) => run.fail(e),
            }
        }
    }
    run
}

/// Reads every record of `topic`-`partition` from the start up to the high
/// watermark: offset → value.
pub async fn consume_all(bootstrap: &str, topic: &str, partition: u32) -> BTreeMap<u64, String> {
    let mut consumer = Consumer::connect(ConsumerConfig::new([bootstrap])).await.expect("consumer");
    consumer.assign(vec![(topic.to_string(), partition)]);
    consumer.seek(topic, partition, SeekTo::Beginning).await.expect("seek");
    let end = consumer.lookup_offset(topic, partition, SeekTo::End).await.expect("end offset");
    let mut out = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while consumer.position(topic, partition).unwrap_or(0) < end {
        assert!(Instant::now() < deadline, "consuming {topic}-{partition} to {end} took too long");
        for r in consumer.poll().await.expect("poll") {
            let value = String::from_utf8_lossy(&r.value.unwrap_or_default()).to_string();
            assert!(out.insert(r.offset, value).is_none(), "offset {} delivered twice", r.offset);
        }
    }
    out
}

/// Every record of one partition, read until at least the last
/// acknowledged offset is readable: a leader that just took over reports a
/// high watermark behind the old leader's until its followers fetch again
/// (Kafka's too), so a read right after a leader change can end early.
pub async fn consume_acknowledged(bootstrap: &str, topic: &str, p: u32, acked: &[Acked]) -> BTreeMap<u64, String> {
    let need = acked.iter().filter(|(ap, _, _)| *ap == p).map(|(_, o, _)| o + 1).max().unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let records = consume_all(bootstrap, topic, p).await;
        if records.len() as u64 >= need {
            return records;
        }
        assert!(Instant::now() < deadline, "{topic}-{p}: {} records readable, {need} acknowledged", records.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The oracle on the consumer side: dense offsets from 0, and every
/// acknowledged record exactly at its acknowledged offset.
pub async fn verify_acknowledged(bootstrap: &str, topic: &str, partitions: u32, acked: &[Acked], what: &str) {
    for p in 0..partitions {
        let records = consume_acknowledged(bootstrap, topic, p, acked).await;
        for (i, offset) in records.keys().enumerate() {
            assert_eq!(*offset, i as u64, "{what}: {topic}-{p}: offsets not dense at {i}");
        }
        for (ap, offset, value) in acked.iter().filter(|(ap, _, _)| *ap == p) {
            assert_eq!(
                records.get(offset),
                Some(value),
                "{what}: acknowledged record {value} missing at {topic}-{ap}@{offset}"
            );
        }
    }
}

/// (records in the log, records whose value is there more than once),
/// reading each partition at least past its last acknowledged offset.
pub async fn count_duplicates(bootstrap: &str, topic: &str, partitions: u32, acked: &[Acked]) -> (usize, usize) {
    let mut seen = HashSet::new();
    let mut total = 0;
    for p in 0..partitions {
        let records = consume_acknowledged(bootstrap, topic, p, acked).await;
        for (i, offset) in records.keys().enumerate() {
            assert_eq!(*offset, i as u64, "{topic}-{p}: offsets not dense at {i} when counting duplicates");
        }
        for value in records.into_values() {
            total += 1;
            seen.insert(value);
        }
    }
    (total, total - seen.len())
}

/// The stored bytes of one replica's log in `dir` (a clean copy: read it
/// after its node stopped).
pub fn log_bytes(dir: &Path) -> Vec<u8> {
    let log = Log::open(dir, LogConfig::default()).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()));
    let mut bytes = Vec::new();
    let mut at = log.log_start_offset();
    while at < log.log_end_offset() {
        let read = log.read(at, 1 << 20).expect("read replica log");
        bytes.extend_from_slice(&read.batches);
        at = read.next_offset;
    }
    bytes
}
