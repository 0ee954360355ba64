//! Topic configs changed on a running 3-node cluster: through the CLI
//! (gRPC) every replica applies a new retention and drops its old segments
//! within seconds, a lowered `max.message.bytes` refuses a large record and
//! a deleted one accepts it again; through Kafka clients' admin APIs
//! (confluent-kafka's IncrementalAlterConfigs, kafka-python's AlterConfigs)
//! read back by the other client.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::time::{Duration, Instant};

use strata_tests::cli::{strata, strata_json};
use strata_tests::local_cluster::LocalCluster;

fn ok(out: std::process::Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The base offset of the first segment of partition 0 on each node, from
/// the segment files in its data directory (`<base offset>.log`).
fn log_starts(c: &LocalCluster, topic: &str) -> Vec<(usize, u64)> {
    (1..=3)
        .map(|i| {
            let dir = c.dir().join(format!("node{i}")).join(format!("{topic}-0"));
            let first = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter_map(|n| n.strip_suffix(".log")?.parse::<u64>().ok())
                .min()
                .unwrap_or_else(|| panic!("no segment in {}", dir.display()));
            (i, first)
        })
        .collect()
}

/// Creates `topic` (one partition, 3 replicas, 16 KiB segments) and writes
/// six runs of ~17 KB each: at least six batches, so several segments (a
/// segment rolls between batches, never inside one).
fn topic_with_segments(b: &str, topic: &str) {
    ok(strata(b, &["topic", "create", topic, "-p", "1", "-r", "3", "-c", "segment.bytes=16384"]), "create");
    for run in 0..6 {
        let records: String = (0..80).map(|i| format!("record-{run}-{i:03}-{}\n", "x".repeat(200))).collect();
        let mut produce = std::process::Command::new(strata_tests::binary("strata"));
        produce.args(["--bootstrap", b, "produce", topic, "--acks", "all"]);
        ok(strata_tests::cli::run_with_input(&mut produce, &records), "produce");
    }
}

/// Waits until every replica of `topic`-0 dropped its first segment.
fn wait_old_segments_gone(c: &LocalCluster, topic: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let starts = log_starts(c, topic);
        if starts.iter().all(|(_, s)| *s > 0) {
            return;
        }
        assert!(Instant::now() < deadline, "old segments of {topic} still on some replica: {starts:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn topic_configs_change_live_on_every_replica() {
    let c = LocalCluster::up_with_env(3, &[("STRATA_LOG_RETENTION_CHECK_INTERVAL_MS", "300")]);
    let b = c.bootstrap_all();
    topic_with_segments(&b, "live");
    let before = log_starts(&c, "live");
    assert!(before.iter().all(|(_, s)| *s == 0), "{before:?}");

    // Retention shrinks live: every replica drops its old segments.
    ok(strata(&b, &["topic", "alter-config", "live", "--set", "retention.bytes=20000"]), "alter retention");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let starts = log_starts(&c, "live");
        if starts.iter().all(|(_, s)| *s > 0) {
            break;
        }
        assert!(Instant::now() < deadline, "old segments still on some replica: {starts:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let described = strata_json(&b, &["topic", "describe", "live"]);
    assert_eq!(described["configs"]["retention.bytes"], "20000", "{described}");

    // A lowered max.message.bytes refuses a large record; deleting it
    // restores the default.
    ok(strata(&b, &["topic", "alter-config", "live", "--set", "max.message.bytes=1000"]), "alter max");
    let big = format!("{}\n", "y".repeat(5000));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut p = std::process::Command::new(strata_tests::binary("strata"));
        p.args(["--bootstrap", &b, "produce", "live"]);
        let out = strata_tests::cli::run_with_input(&mut p, &big);
        if !out.status.success() {
            assert!(String::from_utf8_lossy(&out.stderr).contains("RECORD_TOO_LARGE"), "{out:?}");
            break;
        }
        assert!(Instant::now() < deadline, "a 5000-byte record still accepted");
    }
    ok(strata(&b, &["topic", "alter-config", "live", "--delete", "max.message.bytes"]), "delete max");
    let mut p = std::process::Command::new(strata_tests::binary("strata"));
    p.args(["--bootstrap", &b, "produce", "live"]);
    ok(strata_tests::cli::run_with_input(&mut p, &big), "the default is back");

    // Bad changes name the problem and change nothing.
    let bad = strata(&b, &["topic", "alter-config", "live", "--set", "retention.ms=soon"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("retention.ms"), "{bad:?}");
    let bad = strata(&b, &["topic", "alter-config", "live", "--set", "no.such=1"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown topic config 'no.such'"), "{bad:?}");
    let bad = strata(&b, &["topic", "alter-config", "nope", "--set", "retention.ms=1"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("UNKNOWN_TOPIC"), "{bad:?}");

    // Kafka clients' admin APIs, each read back by the other client.
    ok(strata(&b, &["topic", "create", "kafka-live", "-p", "1", "-r", "3"]), "create");
    let out = strata_tests::kafka_python::run_script(
        "kafka_clients.py",
        &["alter-configs", &c.kafka_bootstrap_all(), "kafka-live"],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["after_incremental_set"],
        serde_json::json!({"retention.ms": "7200000", "max.message.bytes": "2000"}),
        "{v}"
    );
    assert_eq!(v["sources"], serde_json::json!({"retention.ms": 1, "segment.bytes": 5}), "{v}");
    assert_eq!(v["after_incremental_delete"]["retention.ms"], "7200000", "{v}");
    assert_ne!(v["after_incremental_delete"]["max.message.bytes"], "2000", "back to the default: {v}");
    assert_eq!(
        v["after_kafka_python_set"],
        serde_json::json!({"retention.ms": "7200000", "segment.ms": "600000"}),
        "{v}"
    );
    // AlterConfigs replaces the whole set: the other keys return to their
    // defaults.
    assert_eq!(v["after_replace"]["segment.bytes"], "1048576", "{v}");
    assert_ne!(v["after_replace"]["retention.ms"], "7200000", "{v}");
    assert_ne!(v["after_replace"]["segment.ms"], "600000", "{v}");
    assert_eq!(v["unknown_key"], "INVALID_CONFIG", "{v}");
    let d = strata_json(&b, &["topic", "describe", "kafka-live"]);
    assert_eq!(d["configs"]["segment.bytes"], "1048576", "the gRPC door sees the Kafka door's change: {d}");
    assert!(d["configs"].get("retention.ms").is_none(), "{d}");

    // A cluster-wide default changes every topic that does not set the key
    // itself, live: "inherits" loses its old segments on every replica.
    topic_with_segments(&b, "inherits");
    assert!(log_starts(&c, "inherits").iter().all(|(_, s)| *s == 0));
    let bad = strata(&b, &["cluster", "alter-config", "--set", "retention.bytes=lots"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("retention.bytes"), "{bad:?}");
    let bad = strata(&b, &["cluster", "alter-config", "--set", "log.dirs=/tmp"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cannot be changed at run time"), "{bad:?}");
    ok(strata(&b, &["cluster", "alter-config", "--set", "retention.bytes=20000"]), "cluster default");
    wait_old_segments_gone(&c, "inherits");
    // Kafka's view: set through the default broker resource by
    // confluent-kafka, reported as DYNAMIC_DEFAULT_BROKER_CONFIG (3) for
    // the broker and for a topic that does not override it.
    let out = strata_tests::kafka_python::run_script(
        "kafka_clients.py",
        &["cluster-defaults", &c.kafka_bootstrap_all(), "inherits", "retention.ms", "86400000"],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["alter_error"], 0, "{v}");
    assert_eq!(v["broker"], serde_json::json!(["86400000", 3]), "{v}");
    assert_eq!(v["topic"], serde_json::json!(["86400000", 3]), "{v}");
    let configs = strata_json(&b, &["cluster", "describe-config"]);
    assert_eq!(configs, serde_json::json!({"retention.bytes": "20000", "retention.ms": "86400000"}));
}

/// A topic grows from 3 to 6 partitions (CLI) and to 8 (confluent-kafka's
/// CreatePartitions): the new partitions are replicated like the old ones,
/// kcat produces to one and the CLI reads it back; shrinking is refused.
#[test]
fn partitions_are_added_live() {
    let c = LocalCluster::up(3);
    let b = c.bootstrap_all();
    ok(strata(&b, &["topic", "create", "grow", "-p", "3", "-r", "3"]), "create");
    ok(strata(&b, &["topic", "add-partitions", "grow", "--count", "6"]), "add partitions");
    let d = strata_json(&b, &["topic", "describe", "grow"]);
    let parts = d["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 6, "{d}");
    let leaders: std::collections::BTreeSet<u64> = parts[3..].iter().filter_map(|p| p["leader"].as_u64()).collect();
    assert_eq!(leaders.len(), 3, "new leaders spread over the brokers: {d}");
    assert!(parts.iter().all(|p| p["replicas"].as_array().unwrap().len() == 3), "{d}");
    // kcat writes to a new partition (it learns the count from Metadata);
    // the CLI reads it back from its leader.
    let lines: String = (0..20).map(|i| format!("grown-{i}\n")).collect();
    let mut kcat = std::process::Command::new(strata_tests::kcat::kcat());
    kcat.args(["-b", &c.kafka_bootstrap_all(), "-P", "-t", "grow", "-p", "5"]);
    ok(strata_tests::cli::run_with_input(&mut kcat, &lines), "kcat to partition 5");
    let read = ok(strata(&b, &["consume", "grow", "-p", "5", "--format", "%v\\n"]), "consume partition 5");
    assert_eq!(read.lines().count(), 20, "{read}");
    let shrink = strata(&b, &["topic", "add-partitions", "grow", "--count", "4"]);
    assert!(String::from_utf8_lossy(&shrink.stderr).contains("INVALID_PARTITIONS"), "{shrink:?}");
    let out = strata_tests::kafka_python::run_script(
        "kafka_clients.py",
        &["create-partitions", &c.kafka_bootstrap_all(), "grow", "8"],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, serde_json::json!({"partitions": 8, "shrink": "INVALID_PARTITIONS"}));

    // On the cluster: two librdkafka classic members subscribed by pattern
    // and an idempotent producer run while a topic grows from 3 to 6
    // (`group_churn.py grow`): the members share all six and every record
    // is read exactly once.
    ok(strata(&b, &["topic", "create", "grow-live", "-p", "3", "-r", "3"]), "create");
    let out = strata_tests::kafka_python::run_script(
        "group_churn.py",
        &["grow", "confluent-classic", &c.kafka_bootstrap_all(), "grow-live", "grow-live-group", "3000"],
    );
    let v = strata_tests::client_report::json(&out);
    assert_eq!(v["errors"], serde_json::json!([]), "{v}");
    assert_eq!(v["stages"]["grow"]["ok"], true, "records missing: {v}");
    assert_eq!(v["stages"]["grow"]["spread"], true, "the members do not share the six: {v}");
    assert_eq!(v["check"]["complete"], true, "{v}");
    assert_eq!(v["duplicates"], 0, "records read twice: {v}");
    assert_eq!(v["partitions"], serde_json::json!([0, 1, 2, 3, 4, 5]), "{v}");
}

/// A group consumer subscribed to a topic is handed the partitions added
/// while it runs, without a restart (the coordinator sees the new count in
/// the metadata and reassigns), and reads what is written to them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_group_consumer_gets_the_added_partitions() {
    use strata_client::{Consumer, ConsumerConfig, OffsetReset};
    let c = LocalCluster::up(3);
    let b = c.bootstrap_all();
    ok(strata(&b, &["topic", "create", "grow-g", "-p", "2", "-r", "3"]), "create");
    // Earliest: records written to a partition before it is assigned count
    // (the added ones get theirs right after the change).
    let config = ConsumerConfig {
        group_id: Some("grower".into()),
        auto_offset_reset: OffsetReset::Earliest,
        max_wait: Duration::from_millis(200),
        ..ConsumerConfig::new([b.as_str()])
    };
    let mut consumer = Consumer::connect(config).await.expect("consumer");
    consumer.subscribe(["grow-g"]).expect("subscribe");
    let mut seen = std::collections::BTreeSet::new();
    let produce_each = |partitions: u32| {
        for p in 0..partitions {
            let mut cmd = std::process::Command::new(strata_tests::binary("strata"));
            cmd.args(["--bootstrap", &b, "produce", "grow-g", "-p", &p.to_string()]);
            ok(strata_tests::cli::run_with_input(&mut cmd, &format!("p{p}\n")), "produce");
        }
    };
    produce_each(2);
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 2 {
        assert!(Instant::now() < deadline, "the first two partitions: saw {seen:?}");
        for r in consumer.poll().await.unwrap_or_default() {
            seen.insert(r.partition);
        }
    }
    ok(strata(&b, &["topic", "add-partitions", "grow-g", "--count", "5"]), "add partitions");
    produce_each(5);
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 5 {
        assert!(Instant::now() < deadline, "the added partitions reach the running member: saw {seen:?}");
        for r in consumer.poll().await.unwrap_or_default() {
            seen.insert(r.partition);
        }
    }
    consumer.close().await.expect("close");
}

/// Records deleted below an offset (the CLI, then confluent-kafka's and
/// kafka-python's DeleteRecords) are gone from every replica: after the
/// leader stops, the new leader starts at the same offset.
#[test]
fn records_are_deleted_below_an_offset_on_every_replica() {
    let c = LocalCluster::up(3);
    let b = c.bootstrap_all();
    ok(strata(&b, &["topic", "create", "trim", "-p", "1", "-r", "3"]), "create");
    let lines: String = (0..100).map(|i| format!("r{i}\n")).collect();
    let mut produce = std::process::Command::new(strata_tests::binary("strata"));
    produce.args(["--bootstrap", &b, "produce", "trim", "--acks", "all"]);
    ok(strata_tests::cli::run_with_input(&mut produce, &lines), "produce");
    let out = strata_json(&b, &["topic", "trim", "trim", "-p", "0", "--before", "40"]);
    assert_eq!(out["log_start_offset"], 40, "{out}");
    let first = |what: &str| -> (u64, usize) {
        let read = ok(strata(&b, &["consume", "trim", "--format", "%o\\n"]), what);
        let offsets: Vec<u64> = read.lines().map(|l| l.parse().unwrap()).collect();
        (offsets[0], offsets.len())
    };
    assert_eq!(first("after the CLI's trim"), (40, 60));
    let out = strata_tests::kafka_python::run_script(
        "kafka_clients.py",
        &["delete-records", &c.kafka_bootstrap_all(), "trim", "0", "70"],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["low_watermark"], 70, "{v}");
    assert_eq!(first("after Kafka's DeleteRecords"), (70, 30));
    let out = strata_tests::kafka_python::run_script(
        "kafka_clients.py",
        &["delete-records-kafka-python", &c.kafka_bootstrap_all(), "trim", "0", "80"],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["low_watermark"], 80, "{v}");
    assert_eq!(first("after kafka-python's DeleteRecords"), (80, 20));
    let above = strata(&b, &["topic", "trim", "trim", "-p", "0", "--before", "1000"]);
    assert!(String::from_utf8_lossy(&above.stderr).contains("above the high watermark"), "{above:?}");
    // The followers took the leader's log start: stop the leader, and the
    // new one starts at 80 too.
    let leader = strata_json(&b, &["topic", "describe", "trim"])["partitions"][0]["leader"].as_u64().unwrap() as usize;
    std::thread::sleep(Duration::from_secs(2));
    c.stop(leader);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = strata_json(&b, &["topic", "describe", "trim"]);
        let p = &d["partitions"][0];
        if p["leader"].as_u64().is_some_and(|l| l as usize != leader) && p["offsets_from_leader"] == true {
            assert_eq!(p["log_start_offset"], 80, "the new leader's log start: {d}");
            break;
        }
        assert!(Instant::now() < deadline, "no new leader: {d}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(first("from the new leader"), (80, 20));
}

/// A running producer writing keyless records uses partitions added while
/// it runs, from its next periodic metadata refresh (`metadata_max_age`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_producer_uses_the_added_partitions() {
    use strata_client::{Producer, ProducerConfig, ProducerRecord};
    let c = LocalCluster::up(3);
    let b = c.bootstrap_all();
    ok(strata(&b, &["topic", "create", "grow-p", "-p", "2", "-r", "3"]), "create");
    let config = ProducerConfig { metadata_max_age: Duration::from_millis(500), ..ProducerConfig::new([b.as_str()]) };
    let producer = Producer::connect(config).await.expect("producer");
    let mut used = std::collections::BTreeSet::new();
    for i in 0..20 {
        let meta = producer.send(ProducerRecord::new("grow-p", format!("v{i}"))).await.unwrap().await.unwrap();
        used.insert(meta.partition);
    }
    assert!(used.iter().all(|p| *p < 2), "{used:?}");
    ok(strata(&b, &["topic", "add-partitions", "grow-p", "--count", "4"]), "add partitions");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 0;
    while !(used.contains(&2) && used.contains(&3)) {
        assert!(Instant::now() < deadline, "the producer never wrote to the added partitions: {used:?}");
        let meta = producer.send(ProducerRecord::new("grow-p", format!("w{i}"))).await.unwrap().await.unwrap();
        used.insert(meta.partition);
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    producer.close().await;
}
