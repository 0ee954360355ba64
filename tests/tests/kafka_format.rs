//! Strata's record batches against an implementation nobody here wrote:
//! kafka-python's RecordBatch v2 (`tests/python/kafka_batches.py`). Both
//! ways: a segment file written through the normal produce path decodes
//! with kafka-python (its CRC-32C check, offsets, timestamps, keys, values,
//! headers), and batches kafka-python built are accepted byte for byte and
//! read back by the Strata client and CLI — uncompressed and in every codec
//! (gzip, snappy raw and xerial-framed, lz4, zstd).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use strata_client::{Admin, Compression, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord};
use strata_protocol::v1::strata_client::StrataClient;
use strata_protocol::v1::{FetchPartition, FetchRequest, PartitionRecords, ProduceRequest};
use strata_tests::{binary, kafka_python, ServerProcess};

/// Hex of optional bytes, as the oracle prints them.
fn hx(b: Option<&[u8]>) -> Value {
    b.map_or(Value::Null, |b| Value::String(b.iter().map(|x| format!("{x:02x}")).collect()))
}

/// A record as written: timestamp, key, value, headers.
type Written = (i64, Option<Vec<u8>>, Option<Vec<u8>>, Vec<(String, Option<Vec<u8>>)>);

/// The records the tests write: keys, null keys and values, headers with
/// null values, non-ASCII header names, timestamps out of order.
fn records() -> Vec<Written> {
    (0..40u32)
        .map(|i| {
            let ts = 1_700_000_000_000 + i64::from(i % 7) * 1000 - i64::from(i % 3) * 10;
            let key = (i % 4 != 0).then(|| format!("key-{i}").into_bytes());
            let value =
                (i % 9 != 5).then(|| format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i as usize)).into_bytes());
            let headers = match i % 3 {
                0 => vec![],
                1 => vec![("trace".to_string(), Some(vec![i as u8, 0, 255]))],
                _ => vec![("né".to_string(), None), ("a".to_string(), Some(vec![]))],
            };
            (ts, key, value, headers)
        })
        .collect()
}

fn expected_json(offset: u64, r: &Written) -> Value {
    json!({
        "offset": offset,
        "timestamp": r.0,
        "key": hx(r.1.as_deref()),
        "value": hx(r.2.as_deref()),
        "headers": r.3.iter().map(|(k, v)| json!([k, hx(v.as_deref())])).collect::<Vec<_>>(),
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

async fn create_topic(bootstrap: &str, name: &str) {
    let admin = Admin::connect([bootstrap]).await.unwrap();
    admin.create_topic(name, 1, 1, &[]).await.unwrap();
}

#[test]
fn segments_written_by_the_produce_path_decode_with_kafka_python() {
    let python = kafka_python::python(); // provision before the server runs
    assert!(python.exists());
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::dev(&dir.path().join("data"));
    let bootstrap = server.bootstrap();
    let written = records();
    runtime().block_on(async {
        for codec in Compression::ALL {
            let topic = format!("oracle-{codec}");
            create_topic(&bootstrap, &topic).await;
            let mut config = ProducerConfig::new([bootstrap.as_str()]);
            config.linger = Duration::from_millis(5);
            config.compression = codec;
            let producer = Producer::connect(config).await.unwrap();
            let mut deliveries = Vec::new();
            // Several batches: flush every 15 records.
            for (i, (ts, key, value, headers)) in written.iter().enumerate() {
                let record = ProducerRecord {
                    topic: topic.clone(),
                    partition: Some(0),
                    key: key.clone().map(Bytes::from),
                    value: value.clone().map(Bytes::from),
                    headers: headers.iter().map(|(k, v)| (k.clone(), v.clone().map(Bytes::from))).collect(),
                    timestamp: Some(*ts),
                };
                deliveries.push(producer.send(record).await.unwrap());
                if i % 15 == 14 {
                    producer.flush().await;
                }
            }
            producer.flush().await;
            for d in deliveries {
                d.await.unwrap();
            }
        }
    });
    server.stop();
    let mut producer_ids = std::collections::BTreeSet::new();
    for codec in Compression::ALL {
        let segment = dir.path().join(format!("data/oracle-{codec}-0/00000000000000000000.log"));
        let out = kafka_python::run(&["decode", segment.to_str().unwrap()]);
        let decoded: Vec<Value> =
            String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(decoded.len(), written.len(), "{codec}: kafka-python decoded every record");
        let batches: std::collections::BTreeSet<u64> =
            decoded.iter().map(|d| d["batch_base_offset"].as_u64().unwrap()).collect();
        assert!(batches.len() >= 3, "{codec}: several batches: {batches:?}");
        // The idempotent producer's fields as kafka-python reads them: one
        // producer id at epoch 0, each batch's base sequence the number of
        // records before it (sequences count records from 0 per partition).
        let mut seq_of_batch = std::collections::BTreeMap::new();
        for (i, d) in decoded.iter().enumerate() {
            let p = d["producer"].as_array().unwrap();
            let (id, epoch, seq) = (p[0].as_i64().unwrap(), p[1].as_i64().unwrap(), p[2].as_i64().unwrap());
            assert!(id >= 0 && epoch == 0, "{codec}: record {i}: producer {p:?}");
            producer_ids.insert(id);
            let first = *seq_of_batch.entry(d["batch_base_offset"].as_u64().unwrap()).or_insert(seq);
            assert_eq!(first, seq, "{codec}: one base sequence per batch");
        }
        for (base, seq) in &seq_of_batch {
            assert_eq!(*seq as u64, *base, "{codec}: the batch at offset {base} starts at sequence {seq}");
        }
        for (i, (d, r)) in decoded.iter().zip(&written).enumerate() {
            let mut got = d.clone();
            let obj = got.as_object_mut().unwrap();
            obj.remove("producer");
            assert_eq!(obj.remove("codec"), Some(json!(codec.id())), "{codec}: record {i}'s batch codec");
            // A producer writes -1 (no leader epoch); the leader stamps its own
            // (0 on a fresh one-node cluster).
            assert_eq!(obj.remove("leader_epoch"), Some(json!(0)), "{codec}: record {i}: the leader's epoch");
            obj.remove("batch_base_offset");
            assert_eq!(got, expected_json(i as u64, r), "{codec}: record {i}");
        }
    }
    assert_eq!(producer_ids.len(), Compression::ALL.len(), "each producer got its own id: {producer_ids:?}");
}

/// What kafka-python builds a batch with, and the codec id it must carry.
const FOREIGN: [(&str, u8); 6] = [("none", 0), ("gzip", 1), ("snappy", 2), ("snappy-raw", 2), ("lz4", 3), ("zstd", 4)];

#[test]
fn batches_built_by_kafka_python_in_every_codec_are_stored_byte_for_byte_and_read_back() {
    kafka_python::python();
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::dev(&dir.path().join("data"));
    let bootstrap = server.bootstrap();
    let written = records();
    // Three batches of the same records, built by kafka-python.
    let spec: Vec<Vec<Value>> = written.chunks(15).map(|c| c.iter().map(|r| expected_json(0, r)).collect()).collect();
    let spec = serde_json::to_string(&spec).unwrap();
    for (codec, id) in FOREIGN {
        let out = kafka_python::run(&["build", &spec, codec]);
        let built: Vec<Vec<u8>> = String::from_utf8(out.stdout).unwrap().lines().map(unhex).collect();
        assert_eq!(built.len(), 3);
        for b in &built {
            assert_eq!(b[22] & 0x07, id, "{codec}: kafka-python compressed the batch");
        }
        let topic = format!("foreign-{codec}");
        runtime().block_on(produce_and_read_back(&bootstrap, &topic, &built, &written));
        // And the CLI.
        let out = std::process::Command::new(binary("strata"))
            .args(["--bootstrap", &bootstrap, "consume", &topic, "--from-beginning", "--count", "40"])
            .args(["--format", "%o %k\\n"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{codec}: {}", String::from_utf8_lossy(&out.stderr));
        let lines: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect();
        assert_eq!(lines.len(), 40, "{codec}");
        assert_eq!(lines[1], "1 key-1", "{codec}");
        assert_eq!(lines[39], "39 key-39", "{codec}");
    }
}

fn unhex(l: &str) -> Vec<u8> {
    (0..l.len()).step_by(2).map(|i| u8::from_str_radix(&l[i..i + 2], 16).unwrap()).collect()
}

/// Produces `built` (raw batches) to `topic`, checks they are stored as
/// they arrived, and reads them back with the Strata consumer.
async fn produce_and_read_back(bootstrap: &str, topic: &str, built: &[Vec<u8>], written: &[Written]) {
    create_topic(bootstrap, topic).await;
    let mut raw = StrataClient::connect(format!("http://{bootstrap}")).await.unwrap();
    for batch in built {
        let response = raw
            .produce(ProduceRequest {
                acks: -1,
                timeout_ms: 10_000,
                partitions: vec![PartitionRecords {
                    topic: topic.into(),
                    partition: 0,
                    records: Bytes::from(batch.clone()),
                }],
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.partitions[0].error, None, "{topic}: a kafka-python batch is accepted");
    }
    // Stored as it arrived: only base_offset and partition_leader_epoch
    // (bytes 0-7 and 12-15, outside the CRC) are the broker's.
    let fetched = raw
        .fetch(FetchRequest {
            max_wait_ms: 0,
            min_bytes: 0,
            max_bytes: 0,
            partitions: vec![FetchPartition {
                topic: topic.into(),
                partition: 0,
                fetch_offset: 0,
                partition_max_bytes: 0,
            }],
        })
        .await
        .unwrap()
        .into_inner();
    let stored = &fetched.partitions[0].records;
    let mut expected = Vec::new();
    let mut base = 0u64;
    for batch in built {
        let mut b = batch.clone();
        b[0..8].copy_from_slice(&base.to_be_bytes());
        // The leader's epoch: 0 on a fresh one-node cluster.
        b[12..16].copy_from_slice(&0u32.to_be_bytes());
        base += 15;
        expected.extend_from_slice(&b);
    }
    assert_eq!(stored.len(), expected.len(), "{topic}");
    assert!(stored[..] == expected[..], "{topic}: stored bytes differ from kafka-python's beyond offset and epoch");

    // The Strata client reads them back.
    let mut config = ConsumerConfig::new([bootstrap]);
    config.max_wait = Duration::from_millis(100);
    let mut consumer = Consumer::connect(config).await.unwrap();
    consumer.assign([(topic, 0)]);
    let mut got = Vec::new();
    while got.len() < written.len() {
        got.extend(tokio::time::timeout(Duration::from_secs(10), consumer.poll()).await.unwrap().unwrap());
    }
    for (i, (c, r)) in got.iter().zip(written).enumerate() {
        let as_json = json!({
            "offset": c.offset,
            "timestamp": c.timestamp,
            "key": hx(c.key.as_deref()),
            "value": hx(c.value.as_deref()),
            "headers": c.headers.iter().map(|(k, v)| json!([k, hx(v.as_deref())])).collect::<Vec<_>>(),
        });
        assert_eq!(as_json, expected_json(i as u64, r), "{topic}: record {i}");
    }
}
