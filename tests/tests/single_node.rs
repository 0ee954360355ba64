//! Whole-system tests of one `strata-server dev` process, driven from the
//! outside through the Rust client (and the raw gRPC client for requests the
//! client library would never send):
//!
//! - 100,000 keyed records round-trip exactly, at the partition and offset
//!   their acknowledgement reported, partitioned by Kafka's murmur2;
//! - a clean restart keeps everything, and a kill -9 in the middle of an
//!   acks=all stream loses no acknowledged record;
//! - every error code a client can provoke arrives as that code, and the
//!   rejected request writes nothing (also through `validate_only`);
//! - hostile bytes and absurd numbers never take the server down;
//! - fetch long polls wake on new data and otherwise end at `max_wait`, and
//!   a parked long poll does not hold up SIGTERM;
//! - `/healthz`, `/readyz` and `/metrics` say what they should.
//!
//! Every wait is bounded; a failing test prints the server's log.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use strata_client::{
    partition_for_key, Admin, ClientError, Consumer, ConsumerConfig, ConsumerRecord, DeliveryFuture, ErrorCode,
    Producer, ProducerConfig, ProducerRecord, RecordMetadata, SeekTo,
};
use strata_protocol::v1::strata_client::StrataClient;
use strata_protocol::v1::{
    CreateTopicsRequest, DescribeClusterRequest, FetchPartition, FetchRequest, FetchResponse, ListOffsetsPartition,
    ListOffsetsRequest, PartitionRecords, ProduceRequest, TopicSpec,
};
use strata_record::batch::{set_base_offset, split_batches, BatchBuilder};
use strata_record::compression::Compression;
use strata_tests::{http_get, ServerProcess};
use tempfile::TempDir;
use tonic::transport::Channel;

// ---------------------------------------------------------------------------
// Harness helpers
// ---------------------------------------------------------------------------

/// A dev server with its own temporary data directory. If the test panics,
/// the tail of the server's log is printed before the process is killed.
struct Server {
    dev: ServerProcess,
    _dir: TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let dev = blocking(|| ServerProcess::dev(&dir.path().join("data")));
        Server { dev, _dir: dir }
    }
}

impl Deref for Server {
    type Target = ServerProcess;
    fn deref(&self) -> &ServerProcess {
        &self.dev
    }
}

impl DerefMut for Server {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.dev
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.dev.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            eprintln!("---- strata-server log (last {} lines) ----\n{}\n----", tail.len(), tail.join("\n"));
        }
    }
}

/// Runs blocking harness code (starting, stopping, killing the server) on a
/// runtime worker without stalling the other tasks.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Awaits `fut`, failing the test if it takes longer than `secs` seconds.
async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no result within {secs} s"),
    }
}

async fn admin(server: &Server) -> Admin {
    within(15, "Admin::connect", Admin::connect([server.bootstrap()])).await.expect("admin connects")
}

async fn producer_with(server: &Server, f: impl FnOnce(&mut ProducerConfig)) -> Producer {
    let mut config = ProducerConfig::new([server.bootstrap()]);
    f(&mut config);
    within(15, "Producer::connect", Producer::connect(config)).await.expect("producer connects")
}

async fn producer(server: &Server) -> Producer {
    producer_with(server, |_| {}).await
}

async fn consumer(server: &Server, max_wait: Duration) -> Consumer {
    let config = ConsumerConfig { max_wait, ..ConsumerConfig::new([server.bootstrap()]) };
    within(15, "Consumer::connect", Consumer::connect(config)).await.expect("consumer connects")
}

async fn raw(server: &Server) -> StrataClient<Channel> {
    let client = within(15, "raw connect", StrataClient::connect(format!("http://{}", server.listen)))
        .await
        .expect("raw gRPC client connects");
    client.max_decoding_message_size(64 << 20).max_encoding_message_size(64 << 20)
}

async fn create_topic(admin: &Admin, name: &str, partitions: u32, configs: &[(&str, &str)]) {
    let configs: Vec<(String, String)> = configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    within(30, "create_topic", admin.create_topic(name, partitions, 1, &configs))
        .await
        .unwrap_or_else(|e| panic!("creating topic {name}: {e}"));
}

/// `(log_end_offset, high_watermark)` of every partition of `topic`.
async fn offsets(admin: &Admin, topic: &str) -> Vec<(u64, u64)> {
    let described =
        within(15, "describe_topics", admin.describe_topics(&[topic.to_string()])).await.expect("describe topic");
    assert_eq!(described.len(), 1, "{described:?}");
    described[0].partitions.iter().map(|p| (p.log_end_offset, p.high_watermark)).collect()
}

async fn topic_names(admin: &Admin) -> Vec<String> {
    within(15, "list_topics", admin.list_topics()).await.expect("list topics").into_iter().map(|t| t.name).collect()
}

/// Sends one record and waits for its acknowledgement.
async fn send_one(producer: &Producer, record: ProducerRecord) -> Result<RecordMetadata, ClientError> {
    within(40, "send one record", async {
        match producer.send(record).await {
            Ok(delivery) => delivery.await,
            Err(e) => Err(e),
        }
    })
    .await
}

/// Reads every partition of `topic` from the beginning up to `ends`
/// (exclusive), one vector per partition, in offset order.
async fn read_all(server: &Server, topic: &str, ends: &[u64]) -> Vec<Vec<ConsumerRecord>> {
    let mut consumer = consumer(server, Duration::from_millis(200)).await;
    consumer.assign((0..ends.len() as u32).map(|p| (topic.to_string(), p)));
    for p in 0..ends.len() as u32 {
        let start = within(15, "seek", consumer.seek(topic, p, SeekTo::Beginning)).await.expect("seek to beginning");
        assert_eq!(start, 0, "{topic}-{p} starts at offset 0");
    }
    let mut out: Vec<Vec<ConsumerRecord>> = vec![Vec::new(); ends.len()];
    within(90, "reading everything back", async {
        while out.iter().zip(ends).any(|(got, &end)| (got.len() as u64) < end) {
            for r in consumer.poll().await.expect("poll") {
                out[r.partition as usize].push(r);
            }
        }
    })
    .await;
    // One more round: nothing lies past the ends.
    let extra = within(15, "final poll", consumer.poll()).await.expect("poll");
    assert!(extra.is_empty(), "records past the high watermark: {:?}", &extra[..extra.len().min(3)]);
    out
}

/// Number of `.log` segment files in `<data>/<topic>-<partition>/`.
fn segment_count(server: &Server, topic: &str, partition: u32) -> usize {
    let dir = server.data_dir.join(format!("{topic}-{partition}"));
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("partition directory {}: {e}", dir.display()))
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log")))
        .count()
}

/// Whether the process is alive (not exited, not a zombie).
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// The server still serves gRPC and HTTP, and its process is alive.
async fn assert_alive(server: &Server, client: &mut StrataClient<Channel>, after: &str) {
    let pid = server.pid().expect("server was started");
    assert!(process_alive(pid), "strata-server (pid {pid}) died after {after}");
    let cluster = within(10, "DescribeCluster", client.describe_cluster(DescribeClusterRequest {}))
        .await
        .unwrap_or_else(|e| panic!("DescribeCluster failed after {after}: {e}"))
        .into_inner();
    assert!(!cluster.cluster_id.is_empty(), "no cluster id after {after}");
    let health = blocking(|| http_get(server.http, "/healthz"));
    assert_eq!(health.map(|(code, _)| code), Some(200), "/healthz after {after}");
}

fn expect_server_error(result: Result<impl std::fmt::Debug, ClientError>, code: ErrorCode, what: &str) -> String {
    match result {
        Err(ClientError::Server { code: got, message }) => {
            assert_eq!(got, code, "{what}: wrong code (message: {message})");
            assert!(!message.is_empty(), "{what}: the error names no cause");
            message
        }
        other => panic!("{what}: expected {} from the broker, got {other:?}", code.as_str_name()),
    }
}

/// A valid one-record batch.
fn batch(value: &str) -> Bytes {
    let mut b = BatchBuilder::new();
    b.append(1_700_000_000_000, Some(b"k"), Some(value.as_bytes()), &[("h", Some(b"v"))]).expect("append");
    b.build().expect("build")
}

/// Produces `records` to `topic`-`partition` with the raw client; returns
/// the partition's result (or the gRPC status as a string).
async fn raw_produce(
    client: &mut StrataClient<Channel>,
    topic: &str,
    partition: u32,
    acks: i32,
    records: Bytes,
) -> Result<strata_protocol::v1::PartitionProduceResult, String> {
    let request = ProduceRequest {
        acks,
        timeout_ms: 5_000,
        partitions: vec![PartitionRecords { topic: topic.to_string(), partition, records }],
    };
    match within(20, "raw Produce", client.produce(request)).await {
        Ok(r) => {
            let mut r = r.into_inner();
            assert_eq!(r.partitions.len(), 1, "one result per partition sent: {r:?}");
            Ok(r.partitions.remove(0))
        }
        Err(status) => Err(status.to_string()),
    }
}

fn code_of(error: &Option<strata_protocol::v1::Error>) -> ErrorCode {
    strata_protocol::errors::code_of(error)
}

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), written
/// out independently of the client so the test checks compatibility, not
/// the client against itself.
fn kafka_murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

fn kafka_partition(key: &[u8], partitions: u32) -> u32 {
    ((kafka_murmur2(key) & 0x7fff_ffff) as u32) % partitions
}

// ---------------------------------------------------------------------------
// 1 + 2: 100k records round trip, restart, kill -9
// ---------------------------------------------------------------------------

const BIG_TOPIC: &str = "big";
const BIG_PARTITIONS: u32 = 4;
const BIG_RECORDS: usize = 100_000;

/// Record `i` of a stream: key `{prefix}key-{i}`, a ~100-byte record in all
/// with a value padded by an `i`-dependent pattern, two headers (the second
/// sometimes with a null value), and an explicit timestamp except every
/// tenth record, which leaves it to the producer.
fn numbered_record(topic: &str, prefix: &str, i: usize) -> ProducerRecord {
    let mut value = format!("value-{i}-").into_bytes();
    while value.len() < 64 {
        value.push(b'a' + ((i + value.len()) % 26) as u8);
    }
    let mut r = ProducerRecord::new(topic, value)
        .with_key(format!("{prefix}key-{i}"))
        .with_header("seq", Some(i.to_string()))
        .with_header("origin", if i.is_multiple_of(3) { None } else { Some(Bytes::from_static(b"single_node")) });
    if !i.is_multiple_of(10) {
        r = r.with_timestamp(1_700_000_000_000 + i as i64);
    }
    r
}

/// The index `i` in a key `{prefix}key-{i}`.
fn index_of_key(key: &[u8], prefix: &str) -> usize {
    let key = std::str::from_utf8(key).expect("utf-8 key");
    key.strip_prefix(prefix).and_then(|k| k.strip_prefix("key-")).and_then(|i| i.parse().ok()).unwrap_or_else(|| {
        panic!("unexpected key {key:?}");
    })
}

/// A sent record and where its acknowledgement said it landed.
#[derive(Debug, Clone)]
struct Acked {
    record: ProducerRecord,
    meta: RecordMetadata,
}

/// Asserts `got` is exactly the record `sent`, with the acknowledged
/// partition, offset and timestamp.
fn assert_same(got: &ConsumerRecord, sent: &Acked, what: &str) {
    let offset = sent.meta.offset.expect("acks=all reports offsets");
    assert_eq!((got.partition, got.offset), (sent.meta.partition, offset), "{what}: position");
    assert_eq!(got.key, sent.record.key, "{what}: key at {}-{}", got.partition, got.offset);
    assert_eq!(got.value, sent.record.value, "{what}: value at {}-{}", got.partition, got.offset);
    assert_eq!(got.headers, sent.record.headers, "{what}: headers at {}-{}", got.partition, got.offset);
    assert_eq!(got.timestamp, sent.meta.timestamp, "{what}: timestamp at {}-{}", got.partition, got.offset);
}

/// Every acknowledged record of `acked` (all records of the topic) is in
/// `read` at its acknowledged offset; partitions hold nothing else; offsets
/// are dense from 0 and follow the send order.
fn assert_exact_log(acked: &[Acked], read: &[Vec<ConsumerRecord>], what: &str) {
    let mut by_partition: Vec<Vec<&Acked>> = vec![Vec::new(); read.len()];
    for a in acked {
        by_partition[a.meta.partition as usize].push(a);
    }
    for (p, (sent, got)) in by_partition.iter().zip(read).enumerate() {
        assert_eq!(
            got.len(),
            sent.len(),
            "{what}: partition {p} holds {} records, {} were sent",
            got.len(),
            sent.len()
        );
        for (j, (s, g)) in sent.iter().zip(got).enumerate() {
            assert_eq!(g.offset, j as u64, "{what}: offsets of partition {p} are not dense from 0");
            assert_eq!(
                s.meta.offset,
                Some(j as u64),
                "{what}: the record sent {j}th to partition {p} ({:?}) was acknowledged at another offset",
                s.record.key
            );
            assert_same(g, s, what);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_round_trip_and_survive_restart_and_kill() {
    let mut server = Server::start();
    let admin = admin(&server).await;
    // 1 MiB segments: each partition's ~2.5 MB spans several segments.
    create_topic(&admin, BIG_TOPIC, BIG_PARTITIONS, &[("segment.bytes", "1048576")]).await;

    // Kafka compatibility of the partitioner the mapping is checked against.
    for (key, hash) in [("21", -973_932_308), ("foobar", -790_332_482), ("abc", 479_470_107)] {
        assert_eq!(kafka_murmur2(key.as_bytes()), hash, "reference murmur2({key})");
        assert_eq!(partition_for_key(key.as_bytes(), 7), kafka_partition(key.as_bytes(), 7));
    }

    // ---- 1. produce 100k keyed records, acks=all ----
    let started = Instant::now();
    let producer = producer(&server).await;
    let mut pending: Vec<(ProducerRecord, DeliveryFuture)> = Vec::with_capacity(BIG_RECORDS);
    within(120, "sending 100k records", async {
        for i in 0..BIG_RECORDS {
            let record = numbered_record(BIG_TOPIC, "", i);
            let delivery = producer.send(record.clone()).await.unwrap_or_else(|e| panic!("send {i}: {e}"));
            pending.push((record, delivery));
        }
    })
    .await;
    let mut acked: Vec<Acked> = Vec::with_capacity(BIG_RECORDS);
    within(120, "acknowledgements of 100k records", async {
        for (record, delivery) in pending {
            let meta = delivery.await.unwrap_or_else(|e| panic!("delivery of {:?}: {e}", record.key));
            acked.push(Acked { record, meta });
        }
    })
    .await;
    within(30, "producer close", producer.close()).await;
    eprintln!("produced {BIG_RECORDS} records in {:?}", started.elapsed());

    let mut per_partition = vec![0u64; BIG_PARTITIONS as usize];
    for a in &acked {
        let key = a.record.key.as_deref().expect("keyed");
        assert_eq!(a.meta.topic, BIG_TOPIC);
        assert_eq!(a.meta.partition, partition_for_key(key, BIG_PARTITIONS), "client partitioner for {key:?}");
        assert_eq!(a.meta.partition, kafka_partition(key, BIG_PARTITIONS), "Kafka murmur2 partition of {key:?}");
        if let Some(ts) = a.record.timestamp {
            assert_eq!(a.meta.timestamp, ts, "acknowledged timestamp of {key:?}");
        }
        per_partition[a.meta.partition as usize] += 1;
    }
    assert!(per_partition.iter().all(|&n| n > 20_000), "murmur2 spreads keys evenly: {per_partition:?}");
    let ends = per_partition.clone();
    let described = offsets(&admin, BIG_TOPIC).await;
    assert_eq!(described.iter().map(|(_, hw)| *hw).collect::<Vec<_>>(), ends, "high watermarks after 100k records");
    assert_eq!(described.iter().map(|(leo, _)| *leo).collect::<Vec<_>>(), ends, "log end offsets");

    let segments = segment_count(&server, BIG_TOPIC, 0);
    assert!(segments >= 2, "{BIG_TOPIC}-0 should span several 1 MiB segments, has {segments}");
    let started = Instant::now();
    let read = read_all(&server, BIG_TOPIC, &ends).await;
    assert_exact_log(&acked, &read, "first read");
    eprintln!("read back and checked {BIG_RECORDS} records in {:?}", started.elapsed());
    drop(read);

    // ---- 2a. clean restart ----
    let cluster_before = within(15, "describe_cluster", admin.describe_cluster()).await.expect("describe cluster");
    let topics_before = within(15, "list_topics", admin.list_topics()).await.expect("list topics");
    drop(admin);
    blocking(|| server.stop());
    blocking(|| server.start_again());
    let admin = self::admin(&server).await;
    let cluster_after = within(15, "describe_cluster", admin.describe_cluster()).await.expect("describe cluster");
    assert_eq!(cluster_after.cluster_id, cluster_before.cluster_id, "cluster id changed across a restart");
    let topics_after = within(15, "list_topics", admin.list_topics()).await.expect("list topics");
    assert_eq!(topics_after, topics_before, "topic list changed across a restart");
    assert_eq!(offsets(&admin, BIG_TOPIC).await.iter().map(|(_, hw)| *hw).collect::<Vec<_>>(), ends);
    let read = read_all(&server, BIG_TOPIC, &ends).await;
    assert_exact_log(&acked, &read, "read after a clean restart");
    drop(read);

    // New records continue at the next offsets.
    let producer = self::producer(&server).await;
    let mut ends = ends;
    for p in 0..BIG_PARTITIONS {
        let record = ProducerRecord::new(BIG_TOPIC, format!("after-restart-{p}")).with_key("x").with_partition(p);
        let meta = send_one(&producer, record.clone()).await.expect("produce after restart");
        assert_eq!(meta.offset, Some(ends[p as usize]), "partition {p}: the first offset after a restart");
        acked.push(Acked { record, meta });
        ends[p as usize] += 1;
    }
    within(30, "producer close", producer.close()).await;

    // ---- 2b. kill -9 in the middle of an acks=all stream ----
    const CRASH_TOPIC: &str = "crash";
    const CRASH_PARTITIONS: u32 = 2;
    // 64 KiB segments: the crash lands after many segment rolls.
    create_topic(&admin, CRASH_TOPIC, CRASH_PARTITIONS, &[("segment.bytes", "65536")]).await;
    let producer = producer_with(&server, |c| {
        c.buffer_memory = 256 * 1024;
        c.retries = 2;
        c.retry_backoff = Duration::from_millis(50);
        c.request_timeout = Duration::from_secs(10);
    })
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicBool::new(false));
    let crash_acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let crash_failed: Arc<Mutex<Vec<(usize, ClientError)>>> = Arc::default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, ProducerRecord, DeliveryFuture)>();
    let sender = tokio::spawn({
        let (producer, stop, killed) = (producer.clone(), stop.clone(), killed.clone());
        async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let record = numbered_record(CRASH_TOPIC, "crash-", i);
                match producer.send(record.clone()).await {
                    Ok(delivery) => tx.send((i, record, delivery)).expect("resolver alive"),
                    // Once the server is gone, `send` may fail at once (no metadata).
                    Err(e) if killed.load(Ordering::SeqCst) => {
                        eprintln!("send {i} after the kill failed at once: {e}");
                        break;
                    }
                    Err(e) => panic!("send {i} failed before the kill: {e}"),
                }
                i += 1;
            }
            i
        }
    });
    let resolver = tokio::spawn({
        let (acked, failed) = (crash_acked.clone(), crash_failed.clone());
        async move {
            while let Some((i, record, delivery)) = rx.recv().await {
                match delivery.await {
                    Ok(meta) => acked.lock().unwrap().push(Acked { record, meta }),
                    Err(e) => failed.lock().unwrap().push((i, e)),
                }
            }
        }
    });
    within(60, "3000 acknowledgements before the kill", async {
        while crash_acked.lock().unwrap().len() < 3000 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    killed.store(true, Ordering::SeqCst);
    blocking(|| server.kill());
    let acked_at_kill = crash_acked.lock().unwrap().len();
    // Let the stream run into the dead server for a moment, then stop it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let sent = within(60, "the sender stops", sender).await.expect("sender task");
    within(60, "every delivery resolves after the kill", resolver).await.expect("resolver task");
    within(30, "producer close", producer.close()).await;
    let crash_acked = std::mem::take(&mut *crash_acked.lock().unwrap());
    let crash_failed = std::mem::take(&mut *crash_failed.lock().unwrap());
    eprintln!(
        "kill -9 with {acked_at_kill} acknowledged; in all {sent} sent, {} acknowledged, {} failed",
        crash_acked.len(),
        crash_failed.len()
    );
    assert_eq!(crash_acked.len() + crash_failed.len(), sent, "every delivery future resolved");
    assert!(!crash_failed.is_empty(), "the kill did not interrupt the stream (nothing failed)");
    for (i, e) in crash_failed.iter().take(3) {
        eprintln!("  failed delivery {i}: {e}");
    }

    blocking(|| server.start_again());
    let admin = self::admin(&server).await;
    let cluster_after = within(15, "describe_cluster", admin.describe_cluster()).await.expect("describe cluster");
    assert_eq!(cluster_after.cluster_id, cluster_before.cluster_id, "cluster id changed across kill -9");
    let names = topic_names(&admin).await;
    assert_eq!(names, [BIG_TOPIC, CRASH_TOPIC], "topics after kill -9");
    // The big topic is untouched by the crash.
    assert_eq!(offsets(&admin, BIG_TOPIC).await.iter().map(|(_, hw)| *hw).collect::<Vec<_>>(), ends);
    let crash_offsets = offsets(&admin, CRASH_TOPIC).await;
    let crash_ends: Vec<u64> = crash_offsets.iter().map(|(_, hw)| *hw).collect();
    for (p, (leo, hw)) in crash_offsets.iter().enumerate() {
        assert_eq!(leo, hw, "single node: partition {p} high watermark is its log end");
        let max_acked = crash_acked.iter().filter(|a| a.meta.partition == p as u32).filter_map(|a| a.meta.offset).max();
        if let Some(max) = max_acked {
            assert!(*hw > max, "partition {p}: acknowledged offset {max} lost, high watermark {hw} after the crash");
        }
    }
    let segments = segment_count(&server, CRASH_TOPIC, 0);
    assert!(segments >= 3, "{CRASH_TOPIC}-0 should span several 64 KiB segments, has {segments}");
    let read = read_all(&server, CRASH_TOPIC, &crash_ends).await;
    for (p, records) in read.iter().enumerate() {
        let mut last_index = None;
        for (j, r) in records.iter().enumerate() {
            assert_eq!(r.offset, j as u64, "crash topic: offsets of partition {p} are not dense from 0");
            // Whatever survived is a record that was sent, intact, in send order.
            let i = index_of_key(r.key.as_deref().expect("keyed"), "crash-");
            let original = numbered_record(CRASH_TOPIC, "crash-", i);
            assert_eq!((&r.key, &r.value, &r.headers), (&original.key, &original.value, &original.headers));
            if let Some(ts) = original.timestamp {
                assert_eq!(r.timestamp, ts, "timestamp of crash record {i}");
            }
            assert!(last_index < Some(i), "partition {p}: record {i} at offset {j} follows record {last_index:?}");
            last_index = Some(i);
        }
    }
    for a in &crash_acked {
        let offset = a.meta.offset.expect("acks=all reports offsets");
        let got = read[a.meta.partition as usize].get(offset as usize).unwrap_or_else(|| {
            panic!("acknowledged record {:?} at {}-{offset} lost in the crash", a.record.key, a.meta.partition)
        });
        assert_same(got, a, "acknowledged before kill -9");
    }

    // And the restarted server takes new records at the next offsets.
    let producer = self::producer(&server).await;
    let meta = send_one(&producer, ProducerRecord::new(CRASH_TOPIC, "after crash").with_partition(0)).await.unwrap();
    assert_eq!(meta.offset, Some(crash_ends[0]), "first offset after the crash");
    within(30, "producer close", producer.close()).await;
    blocking(|| server.stop());
}

/// A batch of `n` records `{tag}-{i}` from producer `pid`, first sequence `seq`.
fn producer_batch(pid: i64, seq: i32, n: usize, tag: &str) -> Bytes {
    let mut b = BatchBuilder::new();
    b.set_producer(pid, 0, seq);
    for i in 0..n {
        b.append(1_700_000_000_000, None, Some(format!("{tag}-{i}").as_bytes()), &[]).expect("append");
    }
    b.build().expect("build")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_producers_batches_are_appended_in_sequence_order() {
    let server = Server::start();
    let admin = admin(&server).await;
    let mut client = raw(&server).await;
    create_topic(&admin, "seq", 1, &[]).await;
    let init = within(10, "InitProducerId", client.init_producer_id(strata_protocol::v1::InitProducerIdRequest {}))
        .await
        .expect("InitProducerId")
        .into_inner();
    assert_eq!(init.error, None);
    let (pid, other) = (init.producer_id, init.producer_id + 1_000_000);
    assert!(pid >= 0 && init.producer_epoch == 0, "{init:?}");

    // The second batch overtakes the first: it waits for it, then follows it.
    let mut c2 = client.clone();
    let second = tokio::spawn(async move { raw_produce(&mut c2, "seq", 0, -1, producer_batch(pid, 3, 2, "b")).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "a batch ahead of its sequence waits for the one before it");
    let first = raw_produce(&mut client, "seq", 0, -1, producer_batch(pid, 0, 3, "a")).await.expect("first");
    let second = second.await.expect("join").expect("second");
    assert_eq!((code_of(&first.error), first.base_offset), (ErrorCode::None, 0));
    assert_eq!((code_of(&second.error), second.base_offset), (ErrorCode::None, 3), "{second:?}");
    // A retry of either is answered with its first offsets and writes nothing.
    let again = raw_produce(&mut client, "seq", 0, -1, producer_batch(pid, 0, 3, "a")).await.expect("retry");
    assert_eq!((code_of(&again.error), again.base_offset), (ErrorCode::None, 0));
    assert_eq!(offsets(&admin, "seq").await, vec![(5, 5)]);

    // A real gap waits, then is refused and writes nothing.
    let started = Instant::now();
    let gap = raw_produce(&mut client, "seq", 0, -1, producer_batch(pid, 9, 1, "c")).await.expect("gap");
    assert_eq!(code_of(&gap.error), ErrorCode::OutOfOrderSequenceNumber, "{gap:?}");
    assert!(started.elapsed() >= Duration::from_secs(1), "it waited for the missing batches first");
    assert_eq!(offsets(&admin, "seq").await, vec![(5, 5)]);

    // A producer the log does not know (its state expired) is taken at any
    // sequence once nothing before it came.
    let late = raw_produce(&mut client, "seq", 0, -1, producer_batch(other, 40, 1, "d")).await.expect("late");
    assert_eq!((code_of(&late.error), late.base_offset), (ErrorCode::None, 5), "{late:?}");
    let values: Vec<String> = read_all(&server, "seq", &[6])
        .await
        .remove(0)
        .into_iter()
        .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(values, ["a-0", "a-1", "a-2", "b-0", "b-1", "d-0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topics_compression_type_decides_how_batches_are_stored() {
    let server = Server::start();
    let admin = admin(&server).await;
    let mut client = raw(&server).await;
    create_topic(&admin, "as-sent", 1, &[]).await;
    create_topic(&admin, "zstd-only", 1, &[("compression.type", "zstd")]).await;
    create_topic(&admin, "plain-only", 1, &[("compression.type", "uncompressed")]).await;
    let sent = [
        compressed_batch(Compression::Gzip, 20),
        compressed_batch(Compression::None, 5),
        compressed_batch(Compression::Lz4, 7),
    ];
    for (topic, want) in [("as-sent", None), ("zstd-only", Some(4u8)), ("plain-only", Some(0))] {
        for b in &sent {
            let r = raw_produce(&mut client, topic, 0, -1, b.clone()).await.expect("a produce result");
            assert_eq!(code_of(&r.error), ErrorCode::None, "{topic}: {r:?}");
        }
        let part = FetchPartition { topic: topic.into(), partition: 0, fetch_offset: 0, partition_max_bytes: 0 };
        let f =
            raw_fetch(&mut client, FetchRequest { max_wait_ms: 0, min_bytes: 0, max_bytes: 0, partitions: vec![part] })
                .await;
        let stored: Vec<_> = split_batches(f.partitions[0].records.clone(), usize::MAX).map(|b| b.unwrap()).collect();
        assert_eq!(stored.len(), 3, "{topic}");
        for (s, b) in stored.iter().zip(&sent) {
            let arrived = b[22] & 0x07;
            assert_eq!(s.header().compression(), want.unwrap_or(arrived), "{topic}: stored codec");
            if want.is_none() {
                assert_eq!(&s.bytes()[21..], &b[21..], "{topic}: stored as it arrived");
            }
        }
        let values: Vec<Bytes> = stored.iter().flat_map(|s| s.records()).map(|r| r.unwrap().value.unwrap()).collect();
        assert_eq!(values.len(), 32, "{topic}");
        assert_eq!(&values[19][..], format!("compressible record 19 {}", "z".repeat(100)).as_bytes(), "{topic}");
    }
    let err = admin.create_topic("bad", 1, 1, &[("compression.type".into(), "brotli".into())]).await.unwrap_err();
    assert!(err.to_string().contains("compression.type"), "{err}");
}

// ---------------------------------------------------------------------------
// 3: every error a client can provoke, and nothing written
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_carry_their_code_and_write_nothing() {
    let server = Server::start();
    let admin = admin(&server).await;
    let producer = producer(&server).await;
    let mut client = raw(&server).await;

    create_topic(&admin, "errs", 1, &[]).await;
    send_one(&producer, ProducerRecord::new("errs", "first").with_key("k")).await.expect("first record");
    assert_eq!(offsets(&admin, "errs").await, vec![(1, 1)]);

    // CORRUPT_BATCH: the last byte of a valid batch flipped (CRC mismatch).
    let mut bad = BytesMut::from(&batch("crc victim")[..]);
    let last = bad.len() - 1;
    bad[last] ^= 0x5a;
    let r = raw_produce(&mut client, "errs", 0, -1, bad.freeze()).await.expect("a produce result");
    assert_eq!(code_of(&r.error), ErrorCode::CorruptBatch, "{r:?}");
    let message = r.error.as_ref().unwrap().message.to_lowercase();
    assert!(message.contains("crc"), "the message names the CRC: {message}");
    assert_eq!(offsets(&admin, "errs").await, vec![(1, 1)], "a corrupt batch wrote something");
    // A good batch followed by a corrupt one in the same request: all or nothing.
    let mut two = BytesMut::from(&batch("good half")[..]);
    let mut bad = BytesMut::from(&batch("bad half")[..]);
    let middle = bad.len() / 2;
    bad[middle] ^= 0x01;
    two.extend_from_slice(&bad);
    let r = raw_produce(&mut client, "errs", 0, 1, two.freeze()).await.expect("a produce result");
    assert_eq!(code_of(&r.error), ErrorCode::CorruptBatch, "{r:?}");
    assert_eq!(offsets(&admin, "errs").await, vec![(1, 1)], "half of a rejected request was written");

    // RECORD_TOO_LARGE via the producer, against max.message.bytes=1000.
    create_topic(&admin, "small", 1, &[("max.message.bytes", "1000")]).await;
    let big = ProducerRecord::new("small", vec![b'x'; 2000]).with_key("big");
    let message = expect_server_error(send_one(&producer, big).await, ErrorCode::RecordTooLarge, "2000-byte record");
    assert!(message.contains("1000"), "the message names the limit: {message}");
    assert_eq!(offsets(&admin, "small").await, vec![(0, 0)], "a too-large record wrote something");
    let meta = send_one(&producer, ProducerRecord::new("small", vec![b'y'; 500])).await.expect("a record under it");
    assert_eq!(meta.offset, Some(0), "the rejected record took no offset");

    // UNKNOWN_TOPIC_OR_PARTITION: produce and fetch, client and raw.
    let e = send_one(&producer, ProducerRecord::new("no-such-topic", "x")).await;
    expect_server_error(e, ErrorCode::UnknownTopicOrPartition, "produce to an unknown topic");
    let r = raw_produce(&mut client, "no-such-topic", 0, -1, batch("x")).await.expect("a produce result");
    assert_eq!(code_of(&r.error), ErrorCode::UnknownTopicOrPartition, "{r:?}");
    let r = raw_produce(&mut client, "errs", 7, -1, batch("x")).await.expect("a produce result");
    assert_eq!(code_of(&r.error), ErrorCode::UnknownTopicOrPartition, "produce to partition 7 of 1: {r:?}");
    let e = send_one(&producer, ProducerRecord::new("errs", "x").with_partition(7)).await;
    expect_server_error(e, ErrorCode::UnknownTopicOrPartition, "producer to partition 7 of 1");
    let mut c = consumer(&server, Duration::from_millis(100)).await;
    c.assign(vec![("no-such-topic".to_string(), 0)]);
    let e = within(30, "poll an unknown topic", c.poll()).await;
    expect_server_error(e, ErrorCode::UnknownTopicOrPartition, "fetch from an unknown topic");
    let fetched = within(
        10,
        "raw Fetch",
        client.fetch(FetchRequest {
            max_wait_ms: 100,
            min_bytes: 1,
            max_bytes: 1 << 20,
            partitions: vec![FetchPartition {
                topic: "no-such-topic".into(),
                partition: 0,
                fetch_offset: 0,
                partition_max_bytes: 0,
            }],
        }),
    )
    .await
    .expect("fetch answers")
    .into_inner();
    assert_eq!(code_of(&fetched.partitions[0].error), ErrorCode::UnknownTopicOrPartition, "{fetched:?}");
    assert!(!topic_names(&admin).await.contains(&"no-such-topic".to_string()), "an unknown topic was auto-created");
    assert_eq!(offsets(&admin, "errs").await, vec![(1, 1)]);

    // INVALID_TOPIC_NAME.
    let topics_before = topic_names(&admin).await;
    for name in ["bad/name".to_string(), "a".repeat(250), "..".to_string(), "spa ce".to_string()] {
        let e = within(30, "create_topic", admin.create_topic(&name, 1, 1, &[])).await;
        expect_server_error(e, ErrorCode::InvalidTopicName, &format!("topic name {name:?}"));
    }
    assert_eq!(topic_names(&admin).await, topics_before, "an invalid topic was created");

    // TOPIC_ALREADY_EXISTS, and the existing topic is unchanged.
    let e = within(30, "create_topic", admin.create_topic("errs", 3, 1, &[])).await;
    expect_server_error(e, ErrorCode::TopicAlreadyExists, "creating 'errs' twice");
    assert_eq!(offsets(&admin, "errs").await, vec![(1, 1)], "re-creating a topic changed it");

    // OFFSET_OUT_OF_RANGE through Consumer::seek + poll, with the valid range.
    let mut c = consumer(&server, Duration::from_millis(100)).await;
    c.assign(vec![("errs".to_string(), 0)]);
    c.seek("errs", 0, SeekTo::Offset(1000)).await.expect("seek to an offset");
    let e = within(30, "poll past the end", c.poll()).await;
    let message = expect_server_error(e, ErrorCode::OffsetOutOfRange, "fetch at offset 1000 of a 1-record log");
    assert!(message.contains("1000") && message.contains("0 to 1"), "the message gives the valid range: {message}");
    assert_eq!(c.position("errs", 0), Some(1000), "a failed poll moved the position");
    c.seek("errs", 0, SeekTo::Beginning).await.expect("seek to the beginning");
    let records = within(30, "poll", c.poll()).await.expect("poll from the beginning");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].value.as_deref(), Some(&b"first"[..]));

    // INVALID_CONFIG.
    for (k, v) in [("retention.ms", "abc"), ("no.such.config", "1"), ("segment.bytes", "0"), ("flush.policy", "maybe")]
    {
        let e = within(30, "create_topic", admin.create_topic("cfg", 1, 1, &[(k.into(), v.into())])).await;
        let message = expect_server_error(e, ErrorCode::InvalidConfig, &format!("config {k}={v}"));
        assert!(message.contains(k), "the message names the key {k}: {message}");
    }
    // INVALID_REPLICATION_FACTOR: three replicas on one broker.
    let e = within(30, "create_topic", admin.create_topic("rf3", 1, 3, &[])).await;
    expect_server_error(e, ErrorCode::InvalidReplicationFactor, "replication factor 3 on one broker");
    // INVALID_PARTITIONS: an absurd partition count.
    let e = within(30, "create_topic", admin.create_topic("huge", u32::MAX, 1, &[])).await;
    expect_server_error(e, ErrorCode::InvalidPartitions, "u32::MAX partitions");
    // UNKNOWN_TOPIC_OR_PARTITION when deleting a topic that is not there.
    let e = within(30, "delete_topic", admin.delete_topic("no-such-topic")).await;
    expect_server_error(e, ErrorCode::UnknownTopicOrPartition, "deleting an unknown topic");
    assert_eq!(topic_names(&admin).await, topics_before, "a rejected topic was created");

    within(30, "producer close", producer.close()).await;
    assert_alive(&server, &mut client, "the error requests").await;
}

/// `CreateTopics` with `validate_only` answers what a real creation would,
/// and creates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_only_checks_what_creation_checks() {
    let server = Server::start();
    let admin = admin(&server).await;
    let mut client = raw(&server).await;
    create_topic(&admin, "errs", 1, &[]).await;
    let topics_before = topic_names(&admin).await;
    let spec = |name: &str, partitions: u32, replication_factor: u32| TopicSpec {
        name: name.into(),
        partitions,
        replication_factor,
        configs: Default::default(),
    };
    let bad_config = TopicSpec { configs: [("retention.ms".into(), "abc".into())].into(), ..spec("cfg", 1, 1) };
    let mut wrong = Vec::new();
    for (what, topic, code) in [
        ("a valid topic", spec("fresh", 2, 1), ErrorCode::None),
        ("an existing name", spec("errs", 1, 1), ErrorCode::TopicAlreadyExists),
        ("a bad name", spec("bad/name", 1, 1), ErrorCode::InvalidTopicName),
        ("a bad config", bad_config, ErrorCode::InvalidConfig),
        ("replication factor 3 on one broker", spec("rf3", 1, 3), ErrorCode::InvalidReplicationFactor),
        ("u32::MAX partitions", spec("huge", u32::MAX, 1), ErrorCode::InvalidPartitions),
    ] {
        let response = within(
            30,
            "CreateTopics validate_only",
            client.create_topics(CreateTopicsRequest { topics: vec![topic], validate_only: true }),
        )
        .await
        .expect("CreateTopics answers")
        .into_inner();
        assert_eq!(response.results.len(), 1, "{response:?}");
        let got = code_of(&response.results[0].error);
        if got != code {
            wrong.push(format!("validate_only with {what}: expected {code:?}, got {got:?}"));
        }
    }
    assert_eq!(topic_names(&admin).await, topics_before, "validate_only created a topic");
    assert!(wrong.is_empty(), "validate_only accepts what creation rejects:\n{}", wrong.join("\n"));
}

// ---------------------------------------------------------------------------
// 4: hostile input never crashes the server
// ---------------------------------------------------------------------------

fn garbage(len: usize, mut seed: u64) -> Bytes {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

/// `bytes` with the big-endian `value` written at `at` and, if `fix_crc`,
/// the CRC-32C recomputed (so only the structure is wrong).
fn patched(bytes: &Bytes, at: usize, value: &[u8], fix_crc: bool) -> Bytes {
    let mut b = BytesMut::from(&bytes[..]);
    b[at..at + value.len()].copy_from_slice(value);
    if fix_crc {
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    b.freeze()
}

/// A valid batch of `n` records compressed with `codec`.
fn compressed_batch(codec: Compression, n: usize) -> Bytes {
    let mut b = BatchBuilder::new();
    for i in 0..n {
        b.append(1_700_000_000_000, None, Some(format!("compressible record {i} {}", "z".repeat(100)).as_bytes()), &[])
            .expect("append");
    }
    b.build_compressed(codec, None).expect("build")
}

/// One record of `zeros` zero bytes, zstd-compressed: a valid batch that
/// inflates far past what the broker allows.
fn zstd_bomb(zeros: usize) -> Bytes {
    let mut b = BatchBuilder::new();
    b.append(1_700_000_000_000, None, Some(&vec![0u8; zeros]), &[]).expect("append");
    let bomb = b.build_compressed(Compression::Zstd, Some(1)).expect("build");
    assert!(bomb.len() < 64 * 1024, "a bomb is small: {} bytes", bomb.len());
    bomb
}

async fn raw_fetch(client: &mut StrataClient<Channel>, request: FetchRequest) -> FetchResponse {
    within(10, "raw Fetch", client.fetch(request)).await.expect("fetch answers").into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_never_crashes_the_server() {
    let server = Server::start();
    let admin = admin(&server).await;
    let mut client = raw(&server).await;
    create_topic(&admin, "target", 1, &[]).await;
    let r = raw_produce(&mut client, "target", 0, -1, batch("seed")).await.expect("a produce result");
    assert_eq!(code_of(&r.error), ErrorCode::None, "{r:?}");
    let good = batch("hostile");
    let one_mib = 1024 * 1024;

    // Produce: each hostile payload is rejected with a code and writes nothing.
    let count_2_31 = (1u32 << 31).to_be_bytes();
    let cases: Vec<(&str, Bytes, &[ErrorCode])> = vec![
        ("garbage bytes", garbage(1000, 0x5eed), &[ErrorCode::CorruptBatch, ErrorCode::RecordTooLarge]),
        ("a 3-byte fragment", garbage(3, 7), &[ErrorCode::CorruptBatch]),
        ("a truncated batch", good.slice(..good.len() / 2), &[ErrorCode::CorruptBatch]),
        ("a header without records", good.slice(..61), &[ErrorCode::CorruptBatch]),
        (
            "a declared length of u32::MAX",
            patched(&good, 8, &u32::MAX.to_be_bytes(), false),
            &[ErrorCode::CorruptBatch, ErrorCode::RecordTooLarge],
        ),
        (
            "a declared length past the bytes",
            patched(&good, 8, &4000u32.to_be_bytes(), false),
            &[ErrorCode::CorruptBatch],
        ),
        (
            "a declared length below the header",
            patched(&good, 8, &3u32.to_be_bytes(), false),
            &[ErrorCode::CorruptBatch],
        ),
        ("2^31 records claimed (CRC fixed)", patched(&good, 57, &count_2_31, true), &[ErrorCode::CorruptBatch]),
        ("2^31 records claimed (CRC stale)", patched(&good, 57, &count_2_31, false), &[ErrorCode::CorruptBatch]),
        (
            "last offset delta 2^31-1 and 2^31 records (CRC fixed)",
            patched(&patched(&good, 23, &(i32::MAX as u32).to_be_bytes(), false), 57, &count_2_31, true),
            &[ErrorCode::CorruptBatch],
        ),
        ("0 records claimed (CRC fixed)", patched(&good, 57, &0u32.to_be_bytes(), true), &[ErrorCode::CorruptBatch]),
        ("magic 0xff (CRC fixed)", patched(&good, 16, &[0xff], true), &[ErrorCode::CorruptBatch]),
        ("compression bits set (CRC fixed)", patched(&good, 21, &[0x00, 0x07], true), &[ErrorCode::CorruptBatch]),
        ("gzip bits on plain records (CRC fixed)", patched(&good, 21, &[0x00, 0x01], true), &[ErrorCode::CorruptBatch]),
        ("zstd bits on plain records (CRC fixed)", patched(&good, 21, &[0x00, 0x04], true), &[ErrorCode::CorruptBatch]),
        (
            "a compressed batch whose count lies (CRC fixed)",
            patched(&compressed_batch(Compression::Lz4, 3), 57, &4u32.to_be_bytes(), true),
            &[ErrorCode::CorruptBatch],
        ),
        (
            "a compressed batch cut short (CRC fixed)",
            {
                let c = compressed_batch(Compression::Gzip, 3);
                let cut = c.slice(..c.len() - 6);
                patched(&cut, 8, &((cut.len() - 12) as u32).to_be_bytes(), true)
            },
            &[ErrorCode::CorruptBatch],
        ),
        ("a zstd bomb: 100 MiB of zeros in a few KiB", zstd_bomb(100 * one_mib), &[ErrorCode::CorruptBatch]),
        (
            "a record length varint of 2^31 (CRC fixed)",
            patched(&good, 61, &[0xff, 0xff, 0xff, 0xff, 0x0f], true),
            &[ErrorCode::CorruptBatch],
        ),
        ("4 MiB of garbage", garbage(4 * one_mib, 99), &[ErrorCode::CorruptBatch, ErrorCode::RecordTooLarge]),
        ("no bytes at all", Bytes::new(), &[ErrorCode::InvalidRequest, ErrorCode::CorruptBatch]),
    ];
    for (what, records, codes) in cases {
        match raw_produce(&mut client, "target", 0, -1, records).await {
            Ok(r) => assert!(codes.contains(&code_of(&r.error)), "{what}: expected one of {codes:?}, got {r:?}"),
            Err(status) => panic!("{what}: answered with a gRPC status instead of a partition error: {status}"),
        }
        assert_alive(&server, &mut client, what).await;
        assert_eq!(offsets(&admin, "target").await, vec![(1, 1)], "{what} wrote something");
    }
    // Nonsense acks and unknown partitions.
    for acks in [2, -2, i32::MIN, i32::MAX] {
        let r = raw_produce(&mut client, "target", 0, acks, batch("acks")).await.expect("a produce result");
        assert_eq!(code_of(&r.error), ErrorCode::InvalidRequest, "acks={acks}: {r:?}");
    }
    let r = raw_produce(&mut client, "target", u32::MAX, -1, batch("p")).await.expect("a produce result");
    assert_eq!(code_of(&r.error), ErrorCode::UnknownTopicOrPartition, "{r:?}");
    let r = raw_produce(&mut client, &"t".repeat(100_000), 0, -1, batch("p")).await.expect("a produce result");
    assert_eq!(code_of(&r.error), ErrorCode::UnknownTopicOrPartition, "a 100 kB topic name: {r:?}");
    assert_alive(&server, &mut client, "nonsense acks and partitions").await;
    assert_eq!(offsets(&admin, "target").await, vec![(1, 1)]);

    // A producer-supplied base offset is not trusted: the broker assigns 1.
    let r = raw_produce(&mut client, "target", 0, -1, {
        let mut b = BytesMut::from(&batch("base offset lie")[..]);
        set_base_offset(&mut b, u64::MAX - 1).unwrap();
        b.freeze()
    })
    .await
    .expect("a produce result");
    assert_eq!((code_of(&r.error), r.base_offset), (ErrorCode::None, 1), "{r:?}");
    assert_eq!(offsets(&admin, "target").await, vec![(2, 2)]);

    // Fetch: max_bytes 0, absurd offsets and partitions, absurd waits.
    let part = |fetch_offset: u64, partition_max_bytes: u32| FetchPartition {
        topic: "target".into(),
        partition: 0,
        fetch_offset,
        partition_max_bytes,
    };
    let f = raw_fetch(
        &mut client,
        FetchRequest { max_wait_ms: 0, min_bytes: 0, max_bytes: 0, partitions: vec![part(0, 0)] },
    )
    .await;
    assert_eq!(code_of(&f.partitions[0].error), ErrorCode::None, "{f:?}");
    assert!(!f.partitions[0].records.is_empty(), "max_bytes 0 still returns a batch");
    let f = raw_fetch(
        &mut client,
        FetchRequest { max_wait_ms: 0, min_bytes: 1, max_bytes: 1, partitions: vec![part(0, 1)] },
    )
    .await;
    assert!(!f.partitions[0].records.is_empty(), "max_bytes 1 still returns a whole batch: {f:?}");
    assert_alive(&server, &mut client, "fetches with max_bytes 0 and 1").await;
    for offset in [u64::MAX, u64::MAX - 1, i64::MAX as u64, 1 << 63, 3] {
        let started = Instant::now();
        let f = raw_fetch(
            &mut client,
            FetchRequest {
                max_wait_ms: u32::MAX,
                min_bytes: u32::MAX,
                max_bytes: 0,
                partitions: vec![part(offset, 0)],
            },
        )
        .await;
        let p = &f.partitions[0];
        assert_eq!(code_of(&p.error), ErrorCode::OffsetOutOfRange, "fetch at {offset}: {f:?}");
        assert_eq!((p.log_start_offset, p.log_end_offset), (0, 2), "the valid range at {offset}: {f:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "an out-of-range fetch waited {:?}", started.elapsed());
        assert_alive(&server, &mut client, &format!("a fetch at offset {offset}")).await;
    }
    let f = raw_fetch(
        &mut client,
        FetchRequest {
            max_wait_ms: 0,
            min_bytes: 0,
            max_bytes: u32::MAX,
            partitions: vec![
                FetchPartition { topic: "target".into(), partition: u32::MAX, fetch_offset: 0, partition_max_bytes: 0 },
                FetchPartition { topic: "".into(), partition: 0, fetch_offset: 0, partition_max_bytes: 0 },
                part(0, u32::MAX),
                part(0, u32::MAX),
            ],
        },
    )
    .await;
    let codes: Vec<ErrorCode> = f.partitions.iter().map(|p| code_of(&p.error)).collect();
    assert_eq!(
        codes,
        [ErrorCode::UnknownTopicOrPartition, ErrorCode::UnknownTopicOrPartition, ErrorCode::None, ErrorCode::None]
    );
    // min_bytes that can never be met ends at max_wait with what there is.
    let started = Instant::now();
    let f = raw_fetch(
        &mut client,
        FetchRequest { max_wait_ms: 300, min_bytes: u32::MAX, max_bytes: 0, partitions: vec![part(0, 0)] },
    )
    .await;
    assert!(!f.partitions[0].records.is_empty() && started.elapsed() < Duration::from_secs(3), "{f:?}");
    assert_alive(&server, &mut client, "fetches of absurd partitions and sizes").await;

    // ListOffsets with timestamps that mean nothing.
    for (timestamp, expect) in [
        (-7, Some(ErrorCode::InvalidRequest)),
        (-3, Some(ErrorCode::InvalidRequest)),
        (i64::MIN, Some(ErrorCode::InvalidRequest)),
        (i64::MAX, None),
    ] {
        let listed = within(
            10,
            "ListOffsets",
            client.list_offsets(ListOffsetsRequest {
                partitions: vec![ListOffsetsPartition { topic: "target".into(), partition: 0, timestamp }],
            }),
        )
        .await
        .expect("list offsets answers")
        .into_inner();
        let p = &listed.partitions[0];
        match expect {
            Some(code) => assert_eq!(code_of(&p.error), code, "timestamp {timestamp}: {listed:?}"),
            None => assert_eq!((code_of(&p.error), p.offset), (ErrorCode::None, -1), "timestamp {timestamp}"),
        }
        assert_alive(&server, &mut client, &format!("ListOffsets with timestamp {timestamp}")).await;
    }

    // The log is intact after all that.
    let read = read_all(&server, "target", &[2]).await;
    let values: Vec<_> = read[0].iter().map(|r| r.value.clone().unwrap()).collect();
    assert_eq!(values, [Bytes::from_static(b"seed"), Bytes::from_static(b"base offset lie")]);
}

// ---------------------------------------------------------------------------
// 5: long poll
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_wakes_on_new_data_and_otherwise_waits_max_wait() {
    let server = Server::start();
    let admin = admin(&server).await;
    create_topic(&admin, "lp", 1, &[]).await;
    let producer = producer(&server).await;
    let mut c = consumer(&server, Duration::from_secs(5)).await;
    c.assign(vec![("lp".to_string(), 0)]);
    assert_eq!(c.seek("lp", 0, SeekTo::End).await.expect("seek to the end"), 0);

    let delayed = tokio::spawn({
        let producer = producer.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            send_one(&producer, ProducerRecord::new("lp", "wake up")).await
        }
    });
    let started = Instant::now();
    let records = within(15, "long poll", c.poll()).await.expect("poll");
    let waited = started.elapsed();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].value.as_deref(), Some(&b"wake up"[..]));
    assert!(waited >= Duration::from_millis(250), "the poll returned before the record existed ({waited:?})");
    assert!(waited < Duration::from_millis(2500), "the poll did not wake promptly on new data ({waited:?})");
    within(15, "delayed produce", delayed).await.unwrap().expect("delayed record acknowledged");

    let started = Instant::now();
    let records = within(15, "long poll", c.poll()).await.expect("poll");
    let waited = started.elapsed();
    assert!(records.is_empty(), "{records:?}");
    assert!(
        waited >= Duration::from_millis(4500) && waited < Duration::from_millis(7500),
        "an empty poll should end after about max_wait (5 s), took {waited:?}"
    );
    within(30, "producer close", producer.close()).await;
}

/// SIGTERM while a consumer is parked in a long poll: the server shuts down
/// cleanly and promptly, and the poll ends instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_prompt_during_a_long_poll() {
    let mut server = Server::start();
    let admin = admin(&server).await;
    create_topic(&admin, "parked", 1, &[]).await;
    drop(admin);
    let mut c = consumer(&server, Duration::from_secs(15)).await;
    c.assign(vec![("parked".to_string(), 0)]);
    c.seek("parked", 0, SeekTo::End).await.expect("seek to the end");
    let parked = tokio::spawn(async move {
        let started = Instant::now();
        let result = c.poll().await;
        (started.elapsed(), result.map(|r| r.len()))
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    blocking(|| server.stop());
    let took = started.elapsed();
    let (polled, result) = within(40, "the parked poll ends", parked).await.expect("poll task");
    eprintln!("stop took {took:?}; the parked poll ended after {polled:?} with {result:?}");
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?} to stop the server during a 15 s long poll");
}

// ---------------------------------------------------------------------------
// 6: HTTP endpoints
// ---------------------------------------------------------------------------

/// The value of the sample line `name{labels} value` (or `name value`)
/// whose labels include all of `labels`.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric_name, label_text) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        if metric_name != name {
            return None;
        }
        let found: Vec<String> = label_text.split(',').map(str::to_string).collect();
        labels.iter().all(|(k, v)| found.contains(&format!("{k}=\"{v}\""))).then(|| value.parse().ok()).flatten()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_endpoints_report_health_readiness_and_metrics() {
    let server = Server::start();
    let get = |path: &str| {
        let http = server.http;
        let path = path.to_string();
        blocking(move || http_get(http, &path)).unwrap_or_else(|| panic!("no HTTP answer"))
    };
    assert_eq!(get("/healthz").0, 200);
    assert_eq!(get("/readyz").0, 200, "ready once started");
    let (code, text) = get("/metrics");
    assert_eq!(code, 200);
    assert!(text.contains("# TYPE strata_produce_records counter"), "Prometheus text format:\n{text}");
    let before = metric(&text, "strata_produce_records_total", &[]).expect("strata_produce_records_total");

    let admin = admin(&server).await;
    create_topic(&admin, "metered", 2, &[]).await;
    let producer = producer(&server).await;
    for i in 0..5u32 {
        let meta = send_one(&producer, ProducerRecord::new("metered", format!("m{i}")).with_partition(i % 2))
            .await
            .expect("produce");
        assert_eq!(meta.offset, Some(u64::from(i / 2)));
    }
    within(30, "producer close", producer.close()).await;

    let (code, text) = get("/metrics");
    assert_eq!(code, 200);
    let after = metric(&text, "strata_produce_records_total", &[]).expect("strata_produce_records_total");
    assert_eq!(after - before, 5.0, "strata_produce_records_total counts the 5 records");
    for (partition, hw) in [("0", 3.0), ("1", 2.0)] {
        let labels = [("topic", "metered"), ("partition", partition)];
        assert_eq!(
            metric(&text, "strata_partition_high_watermark", &labels),
            Some(hw),
            "strata_partition_high_watermark{{topic=\"metered\",partition=\"{partition}\"}} in:\n{text}"
        );
    }
    assert_eq!(get("/healthz").0, 200);
    assert_eq!(get("/no-such-page").0, 404);
}

/// A consumer reading from the beginning reads sealed segments, off the
/// async workers (`strata_cold_reads_total` counts those passes); one
/// tailing the active segment never does. Both get exactly what was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catching_up_reads_sealed_segments_off_the_async_workers() {
    let server = Server::start();
    let cold_reads = || {
        let http = server.http;
        let (_, text) = blocking(move || http_get(http, "/metrics")).expect("metrics");
        metric(&text, "strata_cold_reads_total", &[]).expect("strata_cold_reads_total")
    };
    let admin = admin(&server).await;
    create_topic(&admin, "cold", 1, &[("segment.bytes", "65536")]).await;
    let producer = producer(&server).await;
    let value = "v".repeat(1000);
    for i in 0..300 {
        send_one(&producer, ProducerRecord::new("cold", format!("{i}-{value}")).with_partition(0))
            .await
            .expect("produce");
    }
    assert!(segment_count(&server, "cold", 0) > 2, "the log rolled");
    let before = cold_reads();
    let read = read_all(&server, "cold", &[300]).await;
    for (i, r) in read[0].iter().enumerate() {
        assert_eq!(r.offset, i as u64);
        assert_eq!(r.value.as_deref(), Some(format!("{i}-{value}").as_bytes()));
    }
    let after_catch_up = cold_reads();
    assert!(after_catch_up > before, "reading from offset 0 read sealed segments: {before} -> {after_catch_up}");

    // Tail: start at the log end, then read what is produced next.
    let mut consumer = consumer(&server, Duration::from_millis(200)).await;
    consumer.assign([("cold".to_string(), 0)]);
    within(15, "seek", consumer.seek("cold", 0, SeekTo::End)).await.expect("seek to end");
    for i in 300..310 {
        send_one(&producer, ProducerRecord::new("cold", format!("{i}")).with_partition(0)).await.expect("produce");
    }
    let mut tail = Vec::new();
    within(30, "tailing", async {
        while tail.len() < 10 {
            tail.extend(consumer.poll().await.expect("poll"));
        }
    })
    .await;
    assert_eq!(tail.iter().map(|r| r.offset).collect::<Vec<_>>(), (300..310).collect::<Vec<_>>());
    assert_eq!(cold_reads(), after_catch_up, "a tailing consumer reads only the active segment");
    within(30, "producer close", producer.close()).await;
}
