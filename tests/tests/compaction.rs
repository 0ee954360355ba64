//! Compacted topics on a 3-node cluster (`docs/operations.md`, "Compacted
//! topics"): kcat writes updates and tombstones through the Kafka door; the
//! cleaner keeps the latest record per key on every replica; kcat (Kafka
//! door) and `strata consume` (gRPC door) read the same records from offset
//! 0; a record without a key is refused; an idempotent producer keeps
//! producing across compaction and a leader restart without an error or a
//! duplicate.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use strata_client::{Acks, Producer, ProducerConfig, ProducerRecord};
use strata_record::batch::split_stored_batches;
use strata_storage::{Log, LogConfig};
use strata_tests::cli::{strata, strata_json};
use strata_tests::local_cluster::LocalCluster;

/// (offset, key, value; `None` for a tombstone).
type Row = (u64, String, Option<String>);

fn ok(out: std::process::Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn kcat_produce(c: &LocalCluster, lines: &str, null_values: bool) {
    let mut kcat = std::process::Command::new(strata_tests::kcat::kcat());
    kcat.args(["-b", &c.kafka_bootstrap_all(), "-P", "-t", "compacted", "-K", "\t", "-X", "acks=all"]);
    if null_values {
        kcat.arg("-Z");
    }
    ok(strata_tests::cli::run_with_input(&mut kcat, lines), "kcat produce");
}

/// Every record from offset 0 as kcat (librdkafka) reads it.
fn kcat_rows(c: &LocalCluster) -> Vec<Row> {
    let out = std::process::Command::new(strata_tests::kcat::kcat())
        .args(["-b", &c.kafka_bootstrap_all(), "-C", "-t", "compacted", "-o", "beginning", "-e", "-q"])
        .args(["-f", "%o\t%k\t%S\t%s\n"])
        .output()
        .unwrap();
    let text = ok(out, "kcat consume");
    text.lines()
        .map(|l| {
            let mut f = l.splitn(4, '\t');
            let offset = f.next().unwrap().parse().unwrap();
            let key = f.next().unwrap().to_string();
            // %S is the value's length, -1 for a null value.
            let len: i64 = f.next().unwrap().parse().unwrap();
            let value = (len >= 0).then(|| f.next().unwrap_or_default().to_string());
            (offset, key, value)
        })
        .collect()
}

/// Every record from offset 0 as `strata consume` (the Rust client) reads it.
fn strata_rows(c: &LocalCluster) -> Vec<Row> {
    let out = strata(&c.bootstrap_all(), &["consume", "compacted", "--from-beginning", "--format", "json"]);
    ok(out, "strata consume")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let text = |f: &serde_json::Value| f.as_str().map(str::to_string);
            (v["offset"].as_u64().unwrap(), text(&v["key"]).unwrap_or_default(), text(&v["value"]))
        })
        .collect()
}

/// The records in one replica's log directory (read after its node stopped).
fn replica_rows(dir: &std::path::Path) -> Vec<Row> {
    let log = Log::open(dir, LogConfig::default()).unwrap();
    let mut out = Vec::new();
    let mut at = log.log_start_offset();
    while at < log.log_end_offset() {
        let r = log.read(at, 1 << 20).unwrap();
        for b in split_stored_batches(r.batches, usize::MAX) {
            for rec in b.unwrap().records() {
                let rec = rec.unwrap();
                let s = |b: Option<bytes::Bytes>| b.map(|b| String::from_utf8_lossy(&b).into_owned());
                out.push((rec.offset, s(rec.key).unwrap_or_default(), s(rec.value)));
            }
        }
        at = r.next_offset;
    }
    out
}

/// The latest row per key, tombstones included.
fn latest(rows: &[Row]) -> BTreeMap<String, Row> {
    rows.iter().map(|r| (r.1.clone(), r.clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_topic_keeps_the_latest_record_per_key_on_every_replica() {
    let c = LocalCluster::up_with_env(3, &[("STRATA_LOG_CLEANER_CHECK_INTERVAL_MS", "200")]);
    let b = c.bootstrap_all();
    let configs =
        ["cleanup.policy=compact", "segment.bytes=4096", "min.cleanable.dirty.ratio=0.01", "delete.retention.ms=0"];
    let mut create = vec!["topic", "create", "compacted", "-p", "1", "-r", "3"];
    for cfg in &configs {
        create.extend(["-c", cfg]);
    }
    ok(strata(&b, &create), "create");
    let d = strata_json(&b, &["topic", "describe", "compacted"]);
    assert_eq!(d["configs"]["cleanup.policy"], "compact", "{d}");

    // Keys are required.
    let mut produce = std::process::Command::new(strata_tests::binary("strata"));
    produce.args(["--bootstrap", &b, "produce", "compacted"]);
    let refused = strata_tests::cli::run_with_input(&mut produce, "no key here\n");
    assert!(!refused.status.success(), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("INVALID_RECORD"), "{refused:?}");

    // An idempotent producer writes first...
    let producer = Producer::connect(ProducerConfig {
        acks: Acks::All,
        enable_idempotence: true,
        ..ProducerConfig::new([b.clone()])
    })
    .await
    .unwrap();
    let send = |tag: &'static str, n: usize| {
        let producer = &producer;
        async move {
            let mut pending = Vec::new();
            for i in 0..n {
                let record = ProducerRecord::new("compacted", format!("{tag}-{i}")).with_key(format!("p{}", i % 5));
                pending.push(producer.send(record).await.unwrap());
            }
            for d in pending {
                d.await.unwrap_or_else(|e| panic!("{tag}: {e}"));
            }
        }
    };
    send("before", 200).await;
    // ...then kcat: 30 rounds of updates to ten keys, two of them deleted.
    let updates: String =
        (0..30).flat_map(|round| (0..10).map(move |k| format!("k{k}\tv{round}-{}\n", "x".repeat(40)))).collect();
    kcat_produce(&c, &updates, false);
    kcat_produce(&c, "k3\t\nk7\t\n", true);
    // A batch whose last record is superseded by a later batch: compaction
    // leaves it ending in a gap, which a consumer must step over.
    kcat_produce(&c, "z1\tkept\nz2\tsuperseded\n", false);
    kcat_produce(&c, "z2\tlatest\n", false);
    // Fill past the tombstones so they land in sealed (cleanable) segments.
    let filler: String = (0..120).map(|i| format!("f{i}\t{}\n", "y".repeat(60))).collect();
    kcat_produce(&c, &filler, false);
    let produced = 200 + 300 + 2 + 3 + 120;

    let deadline = Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let rows = strata_rows(&c);
        if rows.len() < produced / 2 && rows.iter().all(|r| r.1 != "k3" && r.1 != "k7") {
            break rows;
        }
        assert!(Instant::now() < deadline, "not compacted: {} of {produced} records left", rows.len());
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    // One log, two doors: the same records, offsets and all.
    assert_eq!(kcat_rows(&c), rows, "kcat and the Strata client disagree");
    for w in rows.windows(2) {
        assert!(w[0].0 < w[1].0, "offsets keep their order: {:?}", w);
    }
    let last = latest(&rows);
    for k in (0..10).filter(|k| *k != 3 && *k != 7) {
        let row = &last[&format!("k{k}")];
        assert!(row.2.as_deref().is_some_and(|v| v.starts_with("v29-")), "latest value of k{k} kept: {row:?}");
    }
    for k in ["k3", "k7"] {
        assert!(!last.contains_key(k), "{k} deleted, its tombstone gone after delete.retention.ms=0");
    }
    for p in 0..5 {
        assert!(last[&format!("p{p}")].2.as_deref().is_some_and(|v| v.starts_with("before-19")), "{p}");
    }
    assert_eq!(last["z1"].2.as_deref(), Some("kept"));
    assert_eq!(last["z2"].2.as_deref(), Some("latest"));
    assert!(!rows.iter().any(|r| r.2.as_deref() == Some("superseded")), "z2's first value compacted away");

    // The idempotent producer goes on after compaction and a leader
    // restart: no sequence error, nothing written twice.
    let d = strata_json(&b, &["topic", "describe", "compacted"]);
    let leader = d["partitions"][0]["leader"].as_u64().unwrap() as usize;
    c.stop(leader);
    c.start(leader);
    send("after", 100).await;
    producer.close().await;
    let rows = strata_rows(&c);
    let after: Vec<&Row> = rows.iter().filter(|r| r.2.as_deref().is_some_and(|v| v.starts_with("after-"))).collect();
    let distinct: std::collections::BTreeSet<&str> = after.iter().filter_map(|r| r.2.as_deref()).collect();
    assert_eq!(after.len(), distinct.len(), "a record written twice");

    // Every replica compacted its own log to the same latest records.
    c.down();
    let mut per_node = Vec::new();
    for node in 1..=3 {
        let rows = replica_rows(&c.dir().join(format!("node{node}")).join("compacted-0"));
        assert!(rows.len() < produced, "node {node} kept all {} records", rows.len());
        per_node.push(latest(&rows));
    }
    assert!(per_node.iter().all(|l| l == &per_node[0]), "replicas disagree on the latest records");
}
