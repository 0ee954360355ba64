//! The gRPC API of a real in-process node (`strata_server::run`) over
//! loopback: every RPC, every error code a client can provoke, and the rule
//! that a rejected request writes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_protocol::v1::strata_client::StrataClient;
use strata_protocol::v1::*;
use strata_record::batch::{split_batches, BatchBuilder};
use tonic::transport::Channel;

/// The in-process node every test here runs against.
use ::strata_server::testkit::TestNode as Node;

fn batch(n: usize, ts: i64, tag: &str) -> Bytes {
    let mut b = BatchBuilder::new();
    for i in 0..n {
        let key = format!("{tag}-k{i}");
        let value = format!("{tag}-v{i}");
        b.append(ts + i as i64, Some(key.as_bytes()), Some(value.as_bytes()), &[("h", Some(b"1"))]).unwrap();
    }
    b.build().unwrap()
}

fn code(e: &Option<Error>) -> ErrorCode {
    strata_protocol::errors::code_of(e)
}

async fn create(c: &mut StrataClient<Channel>, name: &str, partitions: u32, configs: &[(&str, &str)]) -> Option<Error> {
    let spec = TopicSpec {
        name: name.into(),
        partitions,
        replication_factor: 1,
        configs: configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>(),
    };
    let r = c.create_topics(CreateTopicsRequest { topics: vec![spec], validate_only: false }).await.unwrap();
    r.into_inner().results.remove(0).error
}

async fn produce(c: &mut StrataClient<Channel>, topic: &str, partition: u32, records: Bytes) -> PartitionProduceResult {
    let req = ProduceRequest {
        acks: 1,
        timeout_ms: 5000,
        partitions: vec![PartitionRecords { topic: topic.into(), partition, records }],
    };
    c.produce(req).await.unwrap().into_inner().partitions.remove(0)
}

async fn fetch(
    c: &mut StrataClient<Channel>,
    topic: &str,
    partition: u32,
    offset: u64,
    wait_ms: u32,
) -> FetchedPartition {
    let req = FetchRequest {
        max_wait_ms: wait_ms,
        min_bytes: 1,
        max_bytes: 1 << 20,
        partitions: vec![FetchPartition {
            topic: topic.into(),
            partition,
            fetch_offset: offset,
            partition_max_bytes: 0,
        }],
    };
    c.fetch(req).await.unwrap().into_inner().partitions.remove(0)
}

fn keys(records: Bytes) -> Vec<(u64, String)> {
    split_batches(records, usize::MAX)
        .flat_map(|b| b.unwrap().records().map(|r| r.unwrap()).collect::<Vec<_>>())
        .map(|r| (r.offset, String::from_utf8(r.key.unwrap().to_vec()).unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_fetch_list_offsets_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path()).await;
    let c = &mut node.client;
    assert_eq!(code(&create(c, "orders", 3, &[("retention.ms", "-1")]).await), ErrorCode::None);

    let r = produce(c, "orders", 1, batch(5, 1000, "a")).await;
    assert_eq!((code(&r.error), r.base_offset), (ErrorCode::None, 0));
    let mut two = batch(2, 2000, "b").to_vec();
    two.extend_from_slice(&batch(3, 3000, "c"));
    let r = produce(c, "orders", 1, Bytes::from(two)).await;
    assert_eq!((code(&r.error), r.base_offset), (ErrorCode::None, 5));

    let f = fetch(c, "orders", 1, 6, 0).await;
    assert_eq!(code(&f.error), ErrorCode::None);
    assert_eq!(f.high_watermark, 10);
    let got = keys(f.records);
    assert_eq!(got.first(), Some(&(5, "b-k0".to_string())), "fetch starts at the batch holding the offset");
    assert_eq!(got.last(), Some(&(9, "c-k2".to_string())));

    // Long poll: a fetch at the end waits, and returns as soon as data lands.
    let mut waiter = c.clone();
    let started = Instant::now();
    let pending = tokio::spawn(async move { fetch(&mut waiter, "orders", 1, 10, 10_000).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!pending.is_finished(), "long poll returned with no data");
    produce(c, "orders", 1, batch(1, 4000, "d")).await;
    let f = pending.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(keys(f.records), vec![(10, "d-k0".to_string())]);
    // With nothing arriving it returns empty after max_wait.
    let f = fetch(c, "orders", 0, 0, 100).await;
    assert!(f.records.is_empty() && f.error.is_none());

    let lo = |ts| ListOffsetsPartition { topic: "orders".into(), partition: 1, timestamp: ts };
    let req = ListOffsetsRequest { partitions: vec![lo(-2), lo(-1), lo(2001), lo(99_999)] };
    let r = c.list_offsets(req).await.unwrap().into_inner().partitions;
    let offsets: Vec<(i64, i64)> = r.iter().map(|p| (p.offset, p.timestamp)).collect();
    assert_eq!(offsets, vec![(0, -1), (11, -1), (6, 2001), (-1, -1)]);

    let d = c.describe_topics(DescribeTopicsRequest { names: vec!["orders".into()] }).await.unwrap().into_inner();
    let p1 = &d.topics[0].partitions[1];
    assert_eq!((p1.leader, p1.log_end_offset, p1.high_watermark), (1, 11, 11));
    assert_eq!(d.topics[0].configs.get("retention.ms").map(String::as_str), Some("-1"));
    let cl = c.describe_cluster(DescribeClusterRequest {}).await.unwrap().into_inner();
    assert_eq!(cl.controller_id, 1);
    assert_eq!(cl.brokers.len(), 1);
    assert!(!cl.cluster_id.is_empty());

    let args = node.stop().await;
    let mut node = Node::start_with(args).await;
    let c = &mut node.client;
    let f = fetch(c, "orders", 1, 0, 0).await;
    let all = keys(f.records);
    assert_eq!(all.len(), 11, "every record survives a restart");
    assert!(all.iter().enumerate().all(|(i, (o, _))| *o == i as u64));
    let t = c.list_topics(ListTopicsRequest {}).await.unwrap().into_inner();
    assert_eq!(t.topics.iter().map(|t| (t.name.as_str(), t.partitions)).collect::<Vec<_>>(), vec![("orders", 3)]);
    assert_eq!(cl.cluster_id, c.describe_cluster(DescribeClusterRequest {}).await.unwrap().into_inner().cluster_id);
    let r = produce(c, "orders", 1, batch(1, 5000, "e")).await;
    assert_eq!(r.base_offset, 11, "offsets continue after a restart");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_code_a_client_can_provoke_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path()).await;
    let mut c = node.client.clone();
    assert_eq!(code(&create(&mut c, "t", 1, &[("max.message.bytes", "2000")]).await), ErrorCode::None);
    assert_eq!(code(&create(&mut c, "t", 1, &[]).await), ErrorCode::TopicAlreadyExists);
    assert_eq!(code(&create(&mut c, "bad name!", 1, &[]).await), ErrorCode::InvalidTopicName);
    assert_eq!(code(&create(&mut c, &"x".repeat(250), 1, &[]).await), ErrorCode::InvalidTopicName);
    assert_eq!(code(&create(&mut c, "u", 1, &[("retention.ms", "soon")]).await), ErrorCode::InvalidConfig);
    assert_eq!(code(&create(&mut c, "u", 1, &[("no.such.key", "1")]).await), ErrorCode::InvalidConfig);
    assert_eq!(code(&create(&mut c, "u", 100_000, &[]).await), ErrorCode::InvalidPartitions);
    let spec = TopicSpec { name: "v".into(), partitions: 1, replication_factor: 3, configs: HashMap::new() };
    let r = c.create_topics(CreateTopicsRequest { topics: vec![spec], validate_only: false }).await.unwrap();
    assert_eq!(code(&r.into_inner().results[0].error), ErrorCode::InvalidReplicationFactor);

    let good = produce(&mut c, "t", 0, batch(2, 1, "g")).await;
    assert_eq!(code(&good.error), ErrorCode::None);
    // Wrong CRC: the last byte of the second batch flipped; the first batch
    // of the same request must not be written either.
    let mut bad = batch(1, 1, "x").to_vec();
    let mut second = batch(1, 1, "y").to_vec();
    let last = second.len() - 1;
    second[last] ^= 0x55;
    bad.extend_from_slice(&second);
    let r = produce(&mut c, "t", 0, Bytes::from(bad)).await;
    assert_eq!(code(&r.error), ErrorCode::CorruptBatch);
    assert!(r.error.unwrap().message.contains("CRC"));
    let big = batch(1, 1, &"z".repeat(3000));
    assert_eq!(code(&produce(&mut c, "t", 0, big).await.error), ErrorCode::RecordTooLarge);
    assert_eq!(code(&produce(&mut c, "t", 0, Bytes::from_static(b"garbage")).await.error), ErrorCode::CorruptBatch);
    assert_eq!(code(&produce(&mut c, "t", 0, Bytes::new()).await.error), ErrorCode::InvalidRequest);
    assert_eq!(code(&produce(&mut c, "nope", 0, batch(1, 1, "n")).await.error), ErrorCode::UnknownTopicOrPartition);
    assert_eq!(code(&produce(&mut c, "t", 7, batch(1, 1, "n")).await.error), ErrorCode::UnknownTopicOrPartition);
    let req = ProduceRequest {
        acks: 2,
        timeout_ms: 0,
        partitions: vec![PartitionRecords { topic: "t".into(), partition: 0, records: batch(1, 1, "n") }],
    };
    assert_eq!(code(&c.produce(req).await.unwrap().into_inner().partitions[0].error), ErrorCode::InvalidRequest);

    let f = fetch(&mut c, "t", 0, 0, 0).await;
    assert_eq!(f.high_watermark, 2, "rejected requests wrote nothing");
    assert_eq!(keys(f.records).len(), 2);
    let f = fetch(&mut c, "t", 0, 3, 0).await;
    assert_eq!(code(&f.error), ErrorCode::OffsetOutOfRange);
    assert_eq!((f.log_start_offset, f.log_end_offset), (0, 2));
    assert!(f.error.unwrap().message.contains("valid offsets are 0 to 2"));
    assert_eq!(code(&fetch(&mut c, "nope", 0, 0, 0).await.error), ErrorCode::UnknownTopicOrPartition);

    let d = c.delete_topics(DeleteTopicsRequest { names: vec!["t".into(), "nope".into()] }).await.unwrap().into_inner();
    assert_eq!(code(&d.results[0].error), ErrorCode::None);
    assert_eq!(code(&d.results[1].error), ErrorCode::UnknownTopicOrPartition);
    assert!(!dir.path().join("t-0").exists(), "a deleted topic's log is removed");
    assert_eq!(code(&fetch(&mut c, "t", 0, 0, 0).await.error), ErrorCode::UnknownTopicOrPartition);
    drop(c);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elect_leaders_reports_every_partition() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path()).await;
    let mut c = node.client.clone();
    assert_eq!(code(&create(&mut c, "t", 2, &[]).await), ErrorCode::None);
    let tp = |topic: &str, partitions: &[u32]| TopicPartitions { topic: topic.into(), partitions: partitions.to_vec() };
    let elect = |election: &str, partitions: Vec<TopicPartitions>| ElectLeadersRequest {
        election: election.into(),
        partitions,
    };
    let summary = |r: &ElectLeadersResponse| -> Vec<(String, u32, ErrorCode, i32)> {
        r.results.iter().map(|x| (x.topic.clone(), x.partition, code(&x.error), x.leader)).collect()
    };

    // Every partition: each is led by its preferred (only) replica, so nothing to report.
    let r = c.elect_leaders(elect("", vec![])).await.unwrap().into_inner();
    assert_eq!((code(&r.error), r.results.len()), (ErrorCode::None, 0), "{r:?}");

    // A topic without partitions means all of them; unknown topics and partitions are per-partition errors.
    let r = c
        .elect_leaders(elect("preferred", vec![tp("t", &[]), tp("t", &[1, 7]), tp("nope", &[])]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.error), ErrorCode::None);
    assert_eq!(
        summary(&r),
        vec![
            ("nope".into(), 0, ErrorCode::UnknownTopicOrPartition, -1),
            ("t".into(), 0, ErrorCode::ElectionNotNeeded, 1),
            ("t".into(), 1, ErrorCode::ElectionNotNeeded, 1),
            ("t".into(), 7, ErrorCode::UnknownTopicOrPartition, -1),
        ]
    );
    let msg = &r.results[1].error.as_ref().unwrap().message;
    assert!(msg.contains("t-0") && msg.contains("preferred replica 1"), "{msg}");

    // Unclean: every partition has a leader.
    let r = c.elect_leaders(elect("unclean", vec![tp("t", &[0])])).await.unwrap().into_inner();
    assert_eq!(summary(&r), vec![("t".into(), 0, ErrorCode::ElectionNotNeeded, 1)]);

    // An unknown election type is a request-level error.
    let r = c.elect_leaders(elect("random", vec![])).await.unwrap().into_inner();
    assert_eq!(code(&r.error), ErrorCode::InvalidRequest);
    assert!(r.results.is_empty());
    node.stop().await;
}
