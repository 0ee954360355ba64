//! Kafka clients against a 3-node `deploy/local-cluster.sh` cluster: an
//! idempotent librdkafka producer (acks=all) keeps producing while the
//! partition's leader is killed with SIGKILL, and every record it was told
//! was delivered is in the log exactly once, read back by librdkafka from
//! the surviving brokers; the new leader fences requests that carry the
//! old leader epoch.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::time::{Duration, Instant};

use strata_client::Admin;
use strata_tests::client_report::json;
use strata_tests::kafka_python::{python, run_script};
use strata_tests::local_cluster::LocalCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_kafka_producer_rides_through_a_leader_kill() {
    const N: usize = 20_000;
    let cluster = LocalCluster::up(3);
    let admin = Admin::connect([cluster.bootstrap_all()]).await.expect("admin");
    admin.create_topic("orders", 1, 3, &[]).await.expect("create");
    let kafka = cluster.kafka_bootstrap_all();
    // ~4 s of records at 5,000/s; the leader dies about a second in.
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/kafka_clients.py");
    let producer = std::process::Command::new(python())
        .arg(&script)
        .args(["paced", "confluent", &kafka, "orders", &N.to_string(), "5000", "o"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("producer");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let leader = admin.describe_topics(&["orders".to_string()]).await.expect("describe")[0].partitions[0]
        .leader
        .expect("a leader") as usize;
    cluster.kill(leader);
    let out = tokio::task::spawn_blocking(move || producer.wait_with_output()).await.unwrap().unwrap();
    assert!(out.status.success(), "producer: {}", String::from_utf8_lossy(&out.stderr));
    let v = json(&out);
    assert_eq!(v["acked"], N, "every record delivered through the leader change: {v}");

    // Read from the survivors: every delivered record exactly once.
    let survivors: Vec<String> = (1..=3).filter(|&i| i != leader).map(|i| cluster.kafka(i).to_string()).collect();
    let started = Instant::now();
    let v = loop {
        let v = json(&run_script(
            "kafka_clients.py",
            &["consume", "confluent", &survivors.join(","), "orders", &N.to_string(), "o"],
        ));
        if v["complete"] == true || started.elapsed() > Duration::from_secs(60) {
            break v;
        }
    };
    assert_eq!(v["bad"], serde_json::json!([]), "{v}");
    assert_eq!(v["complete"], true, "an acknowledged record is missing: {v}");
    assert_eq!(v["count"], N, "a record was written twice: {v}");
    assert_eq!(v["order_ok"], true, "{v}");

    // KIP-320 on the new leader: a client that still holds the old epoch is
    // fenced (FENCED_LEADER_EPOCH, no records), one ahead of the leader is
    // told to wait (UNKNOWN_LEADER_EPOCH), the current epoch and "unknown"
    // (-1) are served.
    let p = &admin.describe_topics(&["orders".to_string()]).await.expect("describe")[0].partitions[0];
    let (new_leader, epoch) = (p.leader.expect("a new leader") as usize, p.leader_epoch as i64);
    assert!(epoch >= 1, "the kill moved leadership: epoch {epoch}");
    let v = json(&run_script(
        "kafka_clients.py",
        &["epochs", &cluster.kafka(new_leader).to_string(), "orders", &epoch.to_string()],
    ));
    let code = |api: &str, e: i64| v[api][e.to_string()][0].as_i64().unwrap();
    for api in ["fetch", "list_offsets"] {
        assert_eq!((code(api, epoch - 1), code(api, epoch + 1)), (74, 75), "{api}: {v}");
        assert_eq!((code(api, epoch), code(api, -1)), (0, 0), "{api}: {v}");
    }
    assert_eq!(v["fetch"][(epoch - 1).to_string()][1], 0, "a fenced fetch returns no records: {v}");
    assert!(v["fetch"][epoch.to_string()][1].as_i64().unwrap() > 0, "{v}");
    assert_eq!(v["list_offsets"][epoch.to_string()][1], N, "{v}");
}
