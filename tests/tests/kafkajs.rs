//! kafkajs (Node.js, its own implementation of the Kafka protocol) against
//! `strata-server dev`: it produces in every codec it has, reads back
//! through a two-member classic consumer group, librdkafka reads what it
//! wrote, and its admin client creates, describes, lists and deletes topics.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use strata_client::Admin;
use strata_tests::client_report::{assert_complete, json};
use strata_tests::kafka_python::run_script;
use strata_tests::{kafkajs, ServerProcess};

const RECORDS: usize = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafkajs_produces_every_codec_and_a_group_reads_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::dev(&dir.path().join("data"));
    let kafka = server.kafka.to_string();
    let admin = Admin::connect([server.bootstrap()]).await.expect("admin");
    admin.create_topic("from-kafkajs", 4, 1, &[]).await.expect("create");
    let n = RECORDS.to_string();
    let codecs = ["none", "gzip", "snappy"];
    for codec in codecs {
        let v = json(&kafkajs::run(&["produce", &kafka, "from-kafkajs", &n, codec, &format!("kafkajs-{codec}")]));
        assert_eq!(v["acked"], RECORDS, "{codec}: {v}");
    }
    let tags = codecs.map(|c| format!("kafkajs-{c}")).join(",");
    let v = json(&kafkajs::run(&["consume", &kafka, "from-kafkajs", "kafkajs-readers", &n, &tags]));
    assert_complete("kafkajs's group reading what it wrote", &v, 3 * RECORDS);
    let assignments = v["assignments"].as_array().unwrap();
    assert!(assignments.iter().all(|a| !a.as_array().unwrap().is_empty()), "both members own partitions: {v}");
    // An independent reader of the same bytes: librdkafka.
    let v = json(&run_script("kafka_clients.py", &["consume", "confluent", &kafka, "from-kafkajs", &n, &tags]));
    assert_complete("librdkafka reading what kafkajs wrote", &v, 3 * RECORDS);
}

#[test]
fn kafkajs_admin_creates_describes_lists_and_deletes_topics() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::dev(&dir.path().join("data"));
    let v = json(&kafkajs::run(&["admin", &server.kafka.to_string(), "admin-kafkajs"]));
    assert_eq!(v["created"], true, "{v}");
    assert_eq!(v["listed"], true, "{v}");
    assert_eq!(v["partitions"], 4, "{v}");
    assert_eq!(v["configs"]["retention.ms"], "3600000", "{v}");
    assert_eq!(v["duplicate"], false, "kafkajs answers false for an existing topic: {v}");
    assert_eq!(v["offsets"], serde_json::json!([[0, "0", "0"], [1, "0", "0"], [2, "0", "0"], [3, "0", "0"]]), "{v}");
    assert_eq!(v["listed_after_delete"], false, "{v}");
}
