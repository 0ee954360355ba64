//! Moving replicas on a running cluster (`docs/operations.md`, "Scale
//! out" and "Decommission a broker"): three nodes, then a fourth
//! broker-only node joins; `strata cluster rebalance` gives it its share
//! and `strata broker decommission` empties another, while an idempotent
//! acks=all producer keeps writing. Afterwards every acknowledged record is
//! readable at its offset exactly once and each partition's replicas hold
//! the same bytes. A throttled move shows its progress and cancels; Kafka
//! admin clients move and list through Kafka's APIs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_client::{Acks, Producer, ProducerConfig, ProducerRecord};
use strata_server::testkit::wait_until;
use strata_tests::cli::{strata, strata_json};
use strata_tests::oracle::{self, count_duplicates, produce_until, verify_acknowledged};
use strata_tests::ServerProcess as Node;

fn ok(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Three broker+controller nodes, running; a fourth (broker only) made
/// but not started.
fn cluster(root: &std::path::Path) -> (Vec<Node>, String) {
    let mut nodes: Vec<Node> = (1..=3).map(|id| Node::node(root, id, "broker,controller")).collect();
    nodes.push(Node::node(root, 4, "broker"));
    let voters = Node::voters(&nodes);
    for n in nodes.iter_mut().take(3) {
        n.add_env(&[("STRATA_REPLICA_LAG_TIME_MAX_MS", "3000")]);
        n.start(&voters);
    }
    nodes[3].add_env(&[("STRATA_REPLICA_LAG_TIME_MAX_MS", "3000")]);
    wait_until("three nodes ready", Duration::from_secs(30), || nodes.iter().take(3).all(Node::ready));
    (nodes, voters)
}

fn bootstrap_all(nodes: &[Node]) -> String {
    nodes.iter().filter(|n| n.ready()).map(Node::bootstrap).collect::<Vec<_>>().join(",")
}

/// (replicas, preferred leaderships) per broker id, from `cluster info`
/// and the topics' replica lists.
fn replica_counts(b: &str, topic: &str) -> std::collections::BTreeMap<u64, usize> {
    let d = strata_json(b, &["topic", "describe", topic]);
    let mut out = std::collections::BTreeMap::new();
    for p in d["partitions"].as_array().unwrap() {
        for r in p["replicas"].as_array().unwrap() {
            *out.entry(r.as_u64().unwrap()).or_insert(0) += 1;
        }
    }
    out
}

fn replicas_of(b: &str, topic: &str, partition: usize) -> Vec<u64> {
    let d = strata_json(b, &["topic", "describe", topic]);
    d["partitions"][partition]["replicas"].as_array().unwrap().iter().map(|r| r.as_u64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_broker_takes_its_share_and_a_decommissioned_one_empties_under_acks_all_load() {
    let root = tempfile::tempdir().unwrap();
    let (mut nodes, voters) = cluster(root.path());
    let b = nodes[0].bootstrap();
    ok(strata(&b, &["topic", "create", "moving", "-p", "6", "-r", "3", "-c", "min.insync.replicas=2"]), "create");

    let producer = Arc::new(
        Producer::connect(ProducerConfig {
            acks: Acks::All,
            enable_idempotence: true,
            linger: Duration::from_millis(2),
            retries: 1000,
            retry_backoff: Duration::from_millis(100),
            request_timeout: Duration::from_secs(10),
            ..ProducerConfig::new([bootstrap_all(&nodes)])
        })
        .await
        .expect("producer"),
    );
    let done = Arc::new(AtomicBool::new(false));
    let load = {
        let (producer, done) = (producer.clone(), done.clone());
        tokio::spawn(async move { produce_until(&producer, "moving", 6, "m", &done).await })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Scale out: broker 4 joins and holds nothing until the rebalance.
    nodes[3].start(&voters);
    wait_until("broker 4 ready", Duration::from_secs(30), || nodes[3].ready());
    assert_eq!(replica_counts(&b, "moving").get(&4), None);
    let plan = strata_json(&b, &["cluster", "rebalance", "--dry-run"]);
    assert!(!plan.as_array().unwrap().is_empty(), "a dry run plans moves onto broker 4: {plan}");
    assert_eq!(replica_counts(&b, "moving").get(&4), None, "a dry run moves nothing");
    let out = ok(strata(&b, &["cluster", "rebalance", "--wait", "120s"]), "rebalance");
    assert!(out.contains("done"), "{out}");
    let counts = replica_counts(&b, "moving");
    let (min, max) = (counts.values().min().unwrap(), counts.values().max().unwrap());
    assert!(counts.len() == 4 && max - min <= 1, "18 replicas over 4 brokers: {counts:?}");
    let info = strata_json(&b, &["cluster", "info"]);
    let b4 = info["brokers"].as_array().unwrap().iter().find(|x| x["node_id"] == 4).unwrap().clone();
    assert!(b4["replicas"].as_u64().unwrap() >= 4, "{info}");

    // Decommission broker 2: everything moves off it, nothing new lands.
    let out = ok(strata(&b, &["broker", "decommission", "2", "--wait", "120s"]), "decommission");
    assert!(out.contains("can be stopped"), "{out}");
    assert_eq!(replica_counts(&b, "moving").get(&2), None);
    ok(strata(&b, &["topic", "create", "after", "-p", "4", "-r", "3"]), "create after");
    assert_eq!(replica_counts(&b, "after").get(&2), None, "a decommissioned broker gets no new replicas");
    wait_until("broker 2's logs deleted", Duration::from_secs(20), || {
        !nodes[1].data_dir.join("moving-0").exists()
            && (0..6).all(|p| !nodes[1].data_dir.join(format!("moving-{p}")).exists())
    });

    tokio::time::sleep(Duration::from_secs(1)).await;
    done.store(true, Ordering::SeqCst);
    let run = load.await.unwrap();
    eprintln!(
        "moves under load: {} acknowledged, {} failed, longest acknowledgement {:?}",
        run.acked.len(),
        run.failed,
        run.max_ack_latency
    );
    assert!(run.acked.len() > 300, "too few acknowledged records: {}", run.acked.len());
    assert_eq!(run.failed, 0, "acks=all producing failed while replicas moved: {:?}", run.errors);
    let all = bootstrap_all(&nodes);
    verify_acknowledged(&all, "moving", 6, &run.acked, "moves").await;
    let (records, duplicates) = count_duplicates(&all, "moving", 6, &run.acked).await;
    assert_eq!(duplicates, 0, "{records} records, {duplicates} written twice");

    // Replicas byte-identical: stop every node, then compare each
    // partition's logs on its final replicas.
    let placement: Vec<Vec<u64>> = (0..6).map(|p| replicas_of(&b, "moving", p)).collect();
    for n in nodes.iter_mut() {
        n.stop();
    }
    for (p, replicas) in placement.iter().enumerate() {
        let logs: Vec<(u64, Vec<u8>)> = replicas
            .iter()
            .map(|r| (*r, oracle::log_bytes(&root.path().join(format!("node{r}")).join(format!("moving-{p}")))))
            .collect();
        assert!(!logs[0].1.is_empty(), "moving-{p} is empty on broker {}", logs[0].0);
        for (r, bytes) in &logs[1..] {
            assert!(
                bytes == &logs[0].1,
                "moving-{p}: broker {r} differs from broker {} ({} vs {} bytes)",
                logs[0].0,
                bytes.len(),
                logs[0].1.len()
            );
        }
    }
}

/// Bytes the leaders sent to replicas being added, summed over nodes.
fn reassignment_bytes(nodes: &[Node]) -> u64 {
    nodes
        .iter()
        .filter_map(|n| strata_tests::http_get(n.http, "/metrics"))
        .flat_map(|(_, body)| {
            body.lines()
                .filter_map(|l| l.strip_prefix("strata_reassignment_bytes_total "))
                .filter_map(|v| v.trim().parse::<f64>().ok())
                .collect::<Vec<_>>()
        })
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_move_reports_progress_cancels_and_kafka_clients_move_replicas() {
    let root = tempfile::tempdir().unwrap();
    let (mut nodes, voters) = cluster(root.path());
    nodes[3].start(&voters);
    wait_until("broker 4 ready", Duration::from_secs(30), || nodes[3].ready());
    let b = bootstrap_all(&nodes);
    ok(strata(&b, &["topic", "create", "slow", "-p", "1", "-r", "2"]), "create");
    // About 3 MB in the partition.
    let producer =
        Producer::connect(ProducerConfig { acks: Acks::All, ..ProducerConfig::new([b.clone()]) }).await.unwrap();
    let value = "v".repeat(1000);
    let mut pending = Vec::new();
    for i in 0..3000 {
        pending
            .push(producer.send(ProducerRecord::new("slow", format!("{i}-{value}")).with_partition(0)).await.unwrap());
    }
    for d in pending {
        d.await.expect("acknowledged");
    }
    let replicas = replicas_of(&b, "slow", 0);
    let new = (1..=4u64).find(|x| !replicas.contains(x)).unwrap();
    let target = format!("{new},{}", replicas[0]);

    // 100 KB/s: the 3 MB take ~30 s, so the move is seen in progress.
    let before = reassignment_bytes(&nodes);
    let started = Instant::now();
    ok(
        strata(&b, &["partition", "reassign", "slow", "-p", "0", "--replicas", &target, "--throttle", "100000"]),
        "reassign",
    );
    assert_eq!(strata_json(&b, &["cluster", "describe-config"])["replication.throttled.rate"], "100000");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let moves = strata_json(&b, &["partition", "reassignments"]);
    let m = &moves.as_array().unwrap()[0];
    assert_eq!(m["adding"], serde_json::json!([new]), "{moves}");
    assert_eq!(m["removing"], serde_json::json!([replicas[1]]), "{moves}");
    let end = m["leader_log_end_offset"].as_u64().expect("progress from the leader");
    let at = m["progress"][0]["log_end_offset"].as_u64().unwrap_or(0);
    assert!(at < end, "the throttled replica is still catching up: {moves}");
    let sent = reassignment_bytes(&nodes) - before;
    let allowed = 100_000 * (started.elapsed().as_secs() + 2) + (1 << 20);
    assert!(sent > 0 && sent <= allowed, "{sent} bytes sent to the new replica in {:?} at 100 KB/s", started.elapsed());

    // Cancel: back to the old replicas; the new replica's log goes.
    ok(strata(&b, &["partition", "reassign", "slow", "-p", "0", "--cancel"]), "cancel");
    assert_eq!(replicas_of(&b, "slow", 0), replicas);
    let new_dir = root.path().join(format!("node{new}")).join("slow-0");
    wait_until("the cancelled replica's log deleted", Duration::from_secs(20), || !new_dir.exists());
    assert_eq!(strata_json(&b, &["partition", "reassignments"]), serde_json::json!([]));

    // Unthrottled, through Kafka's AlterPartitionReassignments (kafka-python):
    // the move completes and kafka-python lists nothing in progress.
    ok(strata(&b, &["cluster", "alter-config", "--delete", "replication.throttled.rate"]), "unthrottle");
    let kafka = nodes.iter().map(|n| n.kafka.to_string()).collect::<Vec<_>>().join(",");
    let out = strata_tests::kafka_python::run_script("kafka_clients.py", &["reassign", &kafka, "slow", "0", &target]);
    let report: serde_json::Value = serde_json::from_str(&ok(out, "kafka-python reassign")).unwrap();
    assert_eq!(report, serde_json::json!({"slow-0": null}), "accepted without error");
    wait_until("the Kafka-started move completes", Duration::from_secs(60), || {
        replicas_of(&b, "slow", 0) == target.split(',').map(|x| x.parse::<u64>().unwrap()).collect::<Vec<_>>()
    });
    let listed = strata_tests::kafka_python::run_script("kafka_clients.py", &["list-reassignments", &kafka]);
    assert_eq!(ok(listed, "kafka-python list").trim(), "{}");
    // The moved replica serves the whole log.
    let records = oracle::consume_all(&b, "slow", 0).await;
    assert_eq!(records.len(), 3000);
    for n in nodes.iter_mut() {
        n.stop();
    }
    let logs: Vec<Vec<u8>> =
        target.split(',').map(|r| oracle::log_bytes(&root.path().join(format!("node{r}")).join("slow-0"))).collect();
    assert!(logs[0] == logs[1], "the moved replica differs from the leader's log");
}
