//! Clients ride through a leader failover, as Kafka's do: a consumer (CLI
//! and library) started the moment a partition leader is killed with -9
//! reads every record, and a producer with default settings that keeps
//! sending through the kill loses no send. Three `strata-server` processes
//! started by `deploy/local-cluster.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use strata_client::{
    Acks, Admin, Consumer, ConsumerConfig, DeliveryFuture, Producer, ProducerConfig, ProducerRecord, SeekTo,
};
use strata_server::testkit::wait_until;
use strata_tests::binary;
use strata_tests::cli::strata;
use strata_tests::local_cluster::LocalCluster;

const TOPIC: &str = "failover";
const THROUGH: &str = "through";
const PARTITIONS: u32 = 3;
const RECORDS: usize = 60_000;

/// Reads every record of `TOPIC` with the library consumer, starting at
/// once (no sleep) after the kill: offsets per partition must be dense and
/// every value present once.
async fn consume_everything(bootstrap: String) -> BTreeSet<String> {
    let mut consumer = Consumer::connect(ConsumerConfig::new([bootstrap])).await.expect("consumer connects");
    consumer.assign((0..PARTITIONS).map(|p| (TOPIC.to_string(), p)));
    for p in 0..PARTITIONS {
        consumer.seek(TOPIC, p, SeekTo::Beginning).await.expect("seek to the beginning through the failover");
    }
    let mut values = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while values.len() < RECORDS {
        assert!(Instant::now() < deadline, "library consumer: {} of {RECORDS} records in 90 s", values.len());
        for r in consumer.poll().await.expect("poll rides through the failover") {
            let v = String::from_utf8_lossy(&r.value.unwrap_or_default()).into_owned();
            assert!(values.insert(v.clone()), "record {v} delivered twice");
        }
    }
    values
}

/// Sends to `THROUGH` with the default producer settings (acks=all) until
/// `stop_at`, returning every delivery future.
async fn produce_until(producer: &Producer, stop_at: Instant) -> Vec<(String, DeliveryFuture)> {
    let mut sent = Vec::new();
    let mut i = 0u64;
    while Instant::now() < stop_at {
        let value = format!("t{i}");
        let delivery = producer.send(ProducerRecord::new(THROUGH, value.clone())).await.expect("send accepted");
        sent.push((value, delivery));
        i += 1;
        if i.is_multiple_of(50) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    sent
}

async fn fully_replicated(admin: &Admin) -> bool {
    let d = admin.describe_topics(&[TOPIC.to_string(), THROUGH.to_string()]).await;
    d.is_ok_and(|ts| ts.iter().all(|t| t.partitions.iter().all(|p| p.leader.is_some() && p.isr.len() == 3)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_ride_through_a_leader_kill() {
    let c = LocalCluster::up(3);
    let b = c.bootstrap(1);
    for topic in [TOPIC, THROUGH] {
        let out = strata(&b, &["topic", "create", topic, "--partitions", "3", "--replication-factor", "3"]);
        assert!(out.status.success(), "create {topic}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let admin = Admin::connect([c.bootstrap_all()]).await.expect("admin");
    let start = Instant::now();
    while !fully_replicated(&admin).await {
        assert!(start.elapsed() < Duration::from_secs(30), "topics not fully replicated in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 60,000 acknowledged records, acks=all.
    let producer = Producer::connect(ProducerConfig { acks: Acks::All, ..ProducerConfig::new([c.bootstrap_all()]) })
        .await
        .expect("producer");
    let mut deliveries = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        deliveries.push(producer.send(ProducerRecord::new(TOPIC, format!("r{i}"))).await.expect("send"));
    }
    for d in deliveries {
        d.await.expect("acks=all write acknowledged");
    }

    // A producer with default settings keeps sending through the kill.
    let through = Producer::connect(ProducerConfig::new([c.bootstrap_all()])).await.expect("producer");
    let through_task = {
        let stop_at = Instant::now() + Duration::from_secs(8);
        tokio::spawn(async move {
            let sent = produce_until(&through, stop_at).await;
            let mut acked = BTreeSet::new();
            let mut failures = Vec::new();
            for (value, d) in sent {
                match d.await {
                    Ok(_) => {
                        acked.insert(value);
                    }
                    Err(e) => failures.push(format!("{value}: {e}")),
                }
            }
            through.close().await;
            (acked, failures)
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Kill the leader of partition 0 and, at once, read everything from the
    // survivors: the CLI and the library consumer side by side.
    let victim = admin.describe_topics(&[TOPIC.to_string()]).await.expect("describe")[0].partitions[0]
        .leader
        .expect("partition 0 has a leader") as usize;
    let survivors: Vec<String> = (1..=3).filter(|&i| i != victim).map(|i| c.bootstrap(i)).collect();
    let survivors = survivors.join(",");
    c.kill(victim);
    let cli = Command::new(binary("strata"))
        .args(["--bootstrap", &survivors, "consume", TOPIC, "--from-beginning", "--count"])
        .arg(RECORDS.to_string())
        .args(["--format", "%v\n"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn strata consume");
    let library = consume_everything(survivors.clone()).await;
    let out = tokio::task::spawn_blocking(move || cli.wait_with_output()).await.expect("join").expect("strata runs");
    assert!(out.status.success(), "strata consume failed: {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).expect("utf-8").lines().collect();
    assert_eq!(lines.len(), RECORDS, "strata consume printed {} records", lines.len());
    let cli_values: BTreeSet<String> = lines.iter().map(|l| l.to_string()).collect();
    let expected: BTreeSet<String> = (0..RECORDS).map(|i| format!("r{i}")).collect();
    assert_eq!(cli_values, expected, "strata consume: records missing or duplicated");
    assert_eq!(library, expected, "library consumer: records missing");

    // Every send of the producer that kept going through the kill succeeded,
    // and each acknowledged record is there.
    let (acked, failures) = through_task.await.expect("producer task");
    assert!(
        failures.is_empty(),
        "{} sends failed through the failover, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    assert!(acked.len() > 100, "too few records sent through the failover ({})", acked.len());
    let mut consumer = Consumer::connect(ConsumerConfig::new([survivors.clone()])).await.expect("consumer");
    consumer.assign((0..PARTITIONS).map(|p| (THROUGH.to_string(), p)));
    let mut ends = Vec::new();
    for p in 0..PARTITIONS {
        consumer.seek(THROUGH, p, SeekTo::Beginning).await.expect("seek");
        ends.push(consumer.lookup_offset(THROUGH, p, SeekTo::End).await.expect("end"));
    }
    let mut read = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (0..PARTITIONS).any(|p| consumer.position(THROUGH, p).unwrap_or(0) < ends[p as usize]) {
        assert!(Instant::now() < deadline, "reading back {THROUGH} took over 60 s");
        for r in consumer.poll().await.expect("poll") {
            read.insert(String::from_utf8_lossy(&r.value.unwrap_or_default()).into_owned());
        }
    }
    let lost: Vec<&String> = acked.difference(&read).take(5).collect();
    assert!(lost.is_empty(), "acknowledged records missing after the failover: {lost:?}");

    // A describe through a node that does not lead a partition shows the
    // leader's figures, not its own (a broker without a replica knows none).
    wait_until("a new leader for partition 0", Duration::from_secs(30), || {
        let d = strata_tests::cli::strata_json(&survivors, &["topic", "describe", TOPIC]);
        d["partitions"][0]["leader"].as_u64().is_some_and(|l| l as usize != victim)
    });
    for node in (1..=3).filter(|&i| i != victim) {
        // The new leader's high watermark catches up with its log end as
        // soon as the other survivor fetches from it.
        let mut last = serde_json::Value::Null;
        let mut ok = false;
        for _ in 0..100 {
            last = strata_tests::cli::strata_json(&c.bootstrap(node), &["topic", "describe", TOPIC]);
            let p = |i: usize| &last["partitions"][i];
            let total: u64 = (0..PARTITIONS as usize).map(|i| p(i)["high_watermark"].as_u64().unwrap_or(0)).sum();
            ok = total == RECORDS as u64 && (0..PARTITIONS as usize).all(|i| p(i)["offsets_from_leader"] == true);
            if ok {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(ok, "describe via node {node} does not show the leaders' figures: {last}");
    }
    c.down();
}
