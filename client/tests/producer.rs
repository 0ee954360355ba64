//! Producer against the real broker in process, over real gRPC.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

mod kit;

use std::time::{Duration, Instant};

use bytes::Bytes;
use kit::{b, bounded, create_topic, create_topic_with, TestCluster};
use strata_client::{partition_for_key, Acks, Admin, ClientError, ErrorCode, Producer, ProducerConfig, ProducerRecord};
use strata_protocol::v1::ProduceRequest;

fn config(cluster: &TestCluster) -> ProducerConfig {
    ProducerConfig { retry_backoff: Duration::from_millis(20), ..ProducerConfig::new(cluster.addrs()) }
}

async fn values(cluster: &TestCluster, topic: &str, partition: u32) -> Vec<Bytes> {
    cluster.records(topic, partition).await.into_iter().map(|r| r.value.unwrap()).collect()
}

/// One entry of a produce request: topic, partition, batches in it.
type Entry = (String, u32, usize);

/// The produce requests the brokers received: (node, entries).
fn produce_log(cluster: &TestCluster) -> Vec<(u32, Vec<Entry>)> {
    let requests = cluster.wiretap.requests::<ProduceRequest>("Produce");
    requests
        .into_iter()
        .map(|(node, r)| {
            let entries = r
                .partitions
                .into_iter()
                .map(|p| (p.topic, p.partition, strata_record::batch::split_batches(p.records, usize::MAX).count()))
                .collect();
            (node, entries)
        })
        .collect()
}

#[tokio::test]
async fn many_small_sends_become_few_requests_with_dense_offsets() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 1).await;
        let producer =
            Producer::connect(ProducerConfig { linger: Duration::from_millis(50), ..config(&cluster) }).await.unwrap();
        let mut pending = Vec::new();
        for i in 0..500 {
            pending.push(producer.send(ProducerRecord::new("t", format!("value-{i:04}"))).await.unwrap());
        }
        for (i, d) in pending.into_iter().enumerate() {
            let meta = d.await.unwrap();
            assert_eq!((meta.topic.as_str(), meta.partition, meta.offset), ("t", 0, Some(i as u64)));
        }
        // 500 records of ~20 bytes fit in one 64 KiB batch sent at linger.
        let requests = cluster.wiretap.count("Produce");
        assert!(requests <= 2, "{requests} produce requests for 500 small records");
        let got = values(&cluster, "t", 0).await;
        assert_eq!(got.len(), 500);
        assert!(got.iter().enumerate().all(|(i, v)| v == &b(&format!("value-{i:04}"))));
        producer.close().await;
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn batch_size_closes_batches_without_waiting_for_linger() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 1).await;
        let producer =
            Producer::connect(ProducerConfig { linger: Duration::from_secs(60), batch_size: 1024, ..config(&cluster) })
                .await
                .unwrap();
        let started = Instant::now();
        let mut pending = Vec::new();
        for i in 0..40 {
            pending.push(producer.send(ProducerRecord::new("t", vec![i as u8; 100])).await.unwrap());
        }
        // The 4 KB sent in 1 KiB batches (8 or 9 records of ~108 bytes) do
        // not wait for the 60 s linger; only the last, open batch would.
        for d in pending.drain(..30) {
            d.await.unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        let sizes: Vec<usize> = cluster.batches("t", 0).await.iter().map(|b| b.bytes().len()).collect();
        assert!(sizes.len() >= 4, "{} batches", sizes.len());
        assert!(sizes.iter().all(|&n| n <= 1024), "{sizes:?}");
        producer.flush().await;
        for d in pending {
            d.await.unwrap();
        }
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn linger_holds_a_lone_record_until_flush() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 1).await;
        let producer =
            Producer::connect(ProducerConfig { linger: Duration::from_secs(60), ..config(&cluster) }).await.unwrap();
        let mut d = producer.send(ProducerRecord::new("t", "lonely")).await.unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(300), &mut d).await.is_err(), "sent before linger");
        assert_eq!(cluster.wiretap.count("Produce"), 0);
        producer.flush().await;
        assert_eq!(d.await.unwrap().offset, Some(0));
        assert_eq!(cluster.wiretap.count("Produce"), 1);
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn keys_partition_like_kafka_and_requests_group_per_leader() {
    bounded(async {
        let cluster = TestCluster::start(2).await;
        create_topic(&cluster, "t", 4).await; // partitions 0, 2 on broker 1; 1, 3 on broker 2
        let producer =
            Producer::connect(ProducerConfig { linger: Duration::from_millis(30), ..config(&cluster) }).await.unwrap();
        let mut pending = Vec::new();
        for i in 0..200 {
            let key = format!("key-{}", i % 17);
            let record = ProducerRecord::new("t", format!("{i}")).with_key(key.clone());
            pending.push((key, producer.send(record).await.unwrap()));
        }
        let explicit = producer.send(ProducerRecord::new("t", "explicit").with_partition(3)).await.unwrap();
        let mut next = [0u64; 4];
        for (key, d) in pending {
            let meta = d.await.unwrap();
            assert_eq!(meta.partition, partition_for_key(key.as_bytes(), 4));
            // Dense offsets, in send order, per partition.
            assert_eq!(meta.offset, Some(next[meta.partition as usize]));
            next[meta.partition as usize] += 1;
        }
        assert_eq!(explicit.await.unwrap().partition, 3);
        let mut leaders = Vec::new();
        for p in 0..4 {
            leaders.push(cluster.leader("t", p).await.unwrap());
        }
        let log = produce_log(&cluster);
        assert!(log.iter().all(|(broker, entries)| entries.iter().all(|(_, p, _)| leaders[*p as usize] == *broker)));
        // One request per broker carried several partitions.
        assert!(log.iter().any(|(_, entries)| entries.len() > 1));
        assert!(log.len() <= 6, "{} requests", log.len());
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn keyless_records_stick_to_a_partition_per_batch() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 4).await;
        let producer = Producer::connect(ProducerConfig {
            linger: Duration::from_millis(20),
            batch_size: 600,
            ..config(&cluster)
        })
        .await
        .unwrap();
        let mut pending = Vec::new();
        for i in 0..60 {
            pending.push(producer.send(ProducerRecord::new("t", vec![i as u8; 50])).await.unwrap());
        }
        let mut used = std::collections::BTreeSet::new();
        for d in pending {
            used.insert(d.await.unwrap().partition);
        }
        assert!(used.len() >= 2, "keyless records all went to {used:?}");
        // Each batch filled up before the partition changed: few batches.
        let mut batches = 0;
        for p in 0..4 {
            batches += cluster.batches("t", p).await.len();
        }
        assert!(batches <= 8, "{batches} batches for 60 records of ~57 bytes in 600-byte batches");
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn record_too_large_fails_exactly_that_batch() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic_with(&cluster, "t", 2, 1, &[("max.message.bytes", "1000")]).await;
        let producer = Producer::connect(ProducerConfig {
            linger: Duration::from_millis(50),
            batch_size: 1500,
            ..config(&cluster)
        })
        .await
        .unwrap();
        let small_before = producer.send(ProducerRecord::new("t", "a").with_partition(0)).await.unwrap();
        let big = producer.send(ProducerRecord::new("t", vec![b'x'; 2000]).with_partition(0)).await.unwrap();
        let small_after = producer.send(ProducerRecord::new("t", "c").with_partition(0)).await.unwrap();
        let other = producer.send(ProducerRecord::new("t", "d").with_partition(1)).await.unwrap();
        let err = big.await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::RecordTooLarge), "{err}");
        let text = err.to_string();
        assert!(text.starts_with("RECORD_TOO_LARGE: ") && text.contains("exceeds the limit of 1000 bytes"), "{err}");
        assert_eq!(small_before.await.unwrap().offset, Some(0));
        assert_eq!(small_after.await.unwrap().offset, Some(1));
        assert_eq!(other.await.unwrap().offset, Some(0));
        assert_eq!(values(&cluster, "t", 0).await, vec![b("a"), b("c")]);
        // The broker rejected an entry holding both batches; the producer
        // split it and sent each batch alone.
        let log = produce_log(&cluster);
        assert!(log.iter().any(|(_, entries)| entries.contains(&("t".into(), 0, 2))), "{log:?}");
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn corrupt_batch_fails_its_records_with_the_code() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 2).await;
        cluster.wiretap.fail_produce("t", 1, ErrorCode::CorruptBatch, 1);
        let producer =
            Producer::connect(ProducerConfig { linger: Duration::from_millis(20), ..config(&cluster) }).await.unwrap();
        let bad: Vec<_> = futures::future::join_all(
            (0..3).map(|i| producer.send(ProducerRecord::new("t", format!("{i}")).with_partition(1))),
        )
        .await;
        let good = producer.send(ProducerRecord::new("t", "ok").with_partition(0)).await.unwrap();
        for d in bad {
            let e = d.unwrap().await.unwrap_err();
            assert_eq!(e.code(), Some(ErrorCode::CorruptBatch));
            assert_eq!(e.to_string(), "CORRUPT_BATCH: injected CORRUPT_BATCH");
        }
        assert_eq!(good.await.unwrap().offset, Some(0));
        // Not retried: a non-retriable error.
        assert!(cluster.wiretap.count("Produce") <= 2);
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn not_leader_once_is_retried_after_a_metadata_refresh_keeping_order() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 1).await;
        cluster.wiretap.fail_produce("t", 0, ErrorCode::NotLeaderOrFollower, 1);
        let producer =
            Producer::connect(ProducerConfig { linger: Duration::from_millis(5), batch_size: 300, ..config(&cluster) })
                .await
                .unwrap();
        let describes_before = cluster.wiretap.count("DescribeTopics");
        let mut pending = Vec::new();
        for i in 0..50 {
            pending.push(producer.send(ProducerRecord::new("t", format!("v{i:02}"))).await.unwrap());
        }
        for (i, d) in pending.into_iter().enumerate() {
            assert_eq!(d.await.unwrap().offset, Some(i as u64));
        }
        let expected: Vec<Bytes> = (0..50).map(|i| b(&format!("v{i:02}"))).collect();
        assert_eq!(values(&cluster, "t", 0).await, expected, "order kept across the retry");
        assert!(cluster.wiretap.count("DescribeTopics") > describes_before, "metadata was refreshed");
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_moved_leader_is_followed() {
    bounded(async {
        let cluster = TestCluster::start(2).await;
        create_topic_with(&cluster, "t", 1, 2, &[]).await;
        let producer = Producer::connect(config(&cluster)).await.unwrap();
        let first = producer.send(ProducerRecord::new("t", "one")).await.unwrap().await.unwrap();
        assert_eq!(first.offset, Some(0));
        // The leader is drained: the controller moves the partition to the
        // other replica while the old leader keeps answering.
        let old = cluster.leader("t", 0).await.unwrap();
        let new = 3 - old;
        cluster.node(old).drain().await;
        assert_eq!(cluster.leader("t", 0).await, Some(new));
        let second = producer.send(ProducerRecord::new("t", "two")).await.unwrap().await.unwrap();
        assert_eq!(second.offset, Some(1));
        let brokers: Vec<u32> = produce_log(&cluster).iter().map(|(broker, _)| *broker).collect();
        assert_eq!(brokers, vec![old, old, new], "first to the leader, refused by it, retried on the new one");
        producer.close().await;
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn retries_run_out_with_the_servers_error() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 1).await;
        cluster.wiretap.fail_produce("t", 0, ErrorCode::NotEnoughReplicas, 100);
        let producer = Producer::connect(ProducerConfig { retries: 2, ..config(&cluster) }).await.unwrap();
        let err = producer.send(ProducerRecord::new("t", "x")).await.unwrap().await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::NotEnoughReplicas));
        assert_eq!(cluster.wiretap.count("Produce"), 3, "one try and two retries");
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn unknown_topic_and_partition_fail_the_send() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 2).await;
        let producer = Producer::connect(ProducerConfig { retries: 1, ..config(&cluster) }).await.unwrap();
        let err = producer.send(ProducerRecord::new("nope", "x")).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::UnknownTopicOrPartition));
        assert!(err.to_string().contains("'nope'"), "{err}");
        let err = producer.send(ProducerRecord::new("t", "x").with_partition(5)).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::UnknownTopicOrPartition));
        let too_big = ProducerRecord::new("t", vec![0u8; 9 << 20]);
        assert!(matches!(producer.send(too_big).await, Err(ClientError::InvalidArgument(m)) if m.contains("record too large")));
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn acks_zero_resolves_without_offsets() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 1).await;
        let producer = Producer::connect(ProducerConfig { acks: Acks::None, ..config(&cluster) }).await.unwrap();
        let meta = producer.send(ProducerRecord::new("t", "x")).await.unwrap().await.unwrap();
        assert_eq!((meta.partition, meta.offset), (0, None));
        // Nothing acknowledges the append: it shows in the log soon after.
        strata_server::testkit::eventually("the record is in the log", Duration::from_secs(5), || async {
            values(&cluster, "t", 0).await == vec![b("x")]
        })
        .await;
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn send_waits_when_the_buffer_is_full() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 1).await;
        cluster.wiretap.delay("Produce", Duration::from_millis(300));
        let producer = Producer::connect(ProducerConfig {
            buffer_memory: 2048,
            batch_size: 512,
            linger: Duration::ZERO,
            ..config(&cluster)
        })
        .await
        .unwrap();
        let started = Instant::now();
        let mut pending = Vec::new();
        for i in 0..12 {
            pending.push(producer.send(ProducerRecord::new("t", vec![i as u8; 400])).await.unwrap());
        }
        // 12 records of ~450 bytes never fit in 2 KiB at once: sends waited
        // for at least one slow produce round trip.
        assert!(started.elapsed() >= Duration::from_millis(250), "{:?}", started.elapsed());
        for (i, d) in pending.into_iter().enumerate() {
            assert_eq!(d.await.unwrap().offset, Some(i as u64));
        }
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn close_flushes_and_later_sends_fail() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 1).await;
        let producer =
            Producer::connect(ProducerConfig { linger: Duration::from_secs(60), ..config(&cluster) }).await.unwrap();
        let clone = producer.clone();
        let d = producer.send(ProducerRecord::new("t", "last words")).await.unwrap();
        producer.close().await;
        assert_eq!(d.await.unwrap().offset, Some(0));
        assert!(matches!(clone.send(ProducerRecord::new("t", "late")).await, Err(ClientError::Closed)));
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn dropping_the_producer_still_delivers_queued_records() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 1).await;
        let producer =
            Producer::connect(ProducerConfig { linger: Duration::from_secs(60), ..config(&cluster) }).await.unwrap();
        let d = producer.send(ProducerRecord::new("t", "orphan")).await.unwrap();
        drop(producer);
        assert_eq!(d.await.unwrap().offset, Some(0));
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn connecting_to_nothing_names_the_address() {
    bounded(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let err = Producer::connect(ProducerConfig::new([addr.clone()])).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
        assert!(text.starts_with(&format!("cannot connect to {addr}: ")), "{text}");
        assert!(!text.contains('\n'));
    })
    .await;
}

#[tokio::test]
async fn records_for_a_deleted_topic_fail_with_unknown_topic() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 1).await;
        let producer = Producer::connect(ProducerConfig { retries: 2, ..config(&cluster) }).await.unwrap();
        producer.send(ProducerRecord::new("t", "a")).await.unwrap().await.unwrap();
        Admin::connect(cluster.addrs()).await.unwrap().delete_topic("t").await.unwrap();
        let err = producer.send(ProducerRecord::new("t", "b")).await.unwrap().await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::UnknownTopicOrPartition), "{err}");
        assert_eq!(err.to_string(), "UNKNOWN_TOPIC_OR_PARTITION: unknown topic 't'");
        cluster.stop().await;
    })
    .await;
}

/// Sends `n` records to `t`-0 in several batches while `lose` of the
/// broker's answers are lost (written, but the producer hears
/// `REQUEST_TIMED_OUT` and retries); returns the values in the log and each
/// record's reported offset.
async fn send_through_lost_answers(idempotent: bool, n: usize, lose: u32) -> (Vec<Bytes>, Vec<u64>, TestCluster) {
    let cluster = TestCluster::start(1).await;
    create_topic(&cluster, "t", 1).await;
    cluster.wiretap.lose_produce_answers("t", 0, ErrorCode::RequestTimedOut, lose);
    let producer = Producer::connect(ProducerConfig {
        enable_idempotence: idempotent,
        batch_size: 2048,
        linger: Duration::from_millis(2),
        ..config(&cluster)
    })
    .await
    .unwrap();
    let mut pending = Vec::new();
    for i in 0..n {
        pending.push(
            producer
                .send(ProducerRecord::new("t", format!("v{i:05}-{}", "x".repeat(90))).with_partition(0))
                .await
                .unwrap(),
        );
        if i % 50 == 49 {
            tokio::task::yield_now().await;
        }
    }
    let mut offsets = Vec::new();
    for d in pending {
        offsets.push(d.await.unwrap().offset.unwrap());
    }
    producer.close().await;
    (values(&cluster, "t", 0).await, offsets, cluster)
}

#[tokio::test]
async fn idempotence_writes_each_record_once_when_answers_are_lost() {
    bounded(async {
        let (got, offsets, cluster) = send_through_lost_answers(true, 600, 4).await;
        assert_eq!(cluster.wiretap.count("InitProducerId"), 1, "one producer id");
        let produced = produce_log(&cluster);
        assert!(produced.len() >= 8, "retries were sent: {} requests", produced.len());
        assert_eq!(got.len(), 600, "every record exactly once");
        for (i, v) in got.iter().enumerate() {
            assert!(v.starts_with(format!("v{i:05}-").as_bytes()), "record {i} out of place");
        }
        // Each record's reported offset is where it is in the log.
        assert_eq!(offsets, (0..600).collect::<Vec<u64>>());
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn without_idempotence_lost_answers_duplicate_records() {
    // The control for the test above: the same faults do duplicate records
    // when the producer is not idempotent, so that test can fail.
    bounded(async {
        let (got, _, cluster) = send_through_lost_answers(false, 600, 4).await;
        assert_eq!(cluster.wiretap.count("InitProducerId"), 0);
        assert!(got.len() > 600, "the retries after lost answers wrote records again: {}", got.len());
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn acks_below_all_turn_idempotence_off() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 1).await;
        let producer = Producer::connect(ProducerConfig { acks: Acks::Leader, ..config(&cluster) }).await.unwrap();
        producer.send(ProducerRecord::new("t", "x")).await.unwrap().await.unwrap();
        assert_eq!(cluster.wiretap.count("InitProducerId"), 0);
        let records = cluster.records("t", 0).await;
        assert_eq!(records.len(), 1);
        producer.close().await;
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_sequence_gap_makes_the_producer_start_over_under_a_new_id() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 1).await;
        // The leader refuses a batch as out of order once (as after a batch
        // before it failed for good): nothing was written, so the producer
        // takes a new id, renumbers what waits and sends it again.
        cluster.wiretap.fail_produce("t", 0, ErrorCode::OutOfOrderSequenceNumber, 1);
        let producer = Producer::connect(config(&cluster)).await.unwrap();
        let mut pending = Vec::new();
        for i in 0..50 {
            pending.push(producer.send(ProducerRecord::new("t", format!("v{i}")).with_partition(0)).await.unwrap());
        }
        for (i, d) in pending.into_iter().enumerate() {
            assert_eq!(d.await.unwrap().offset, Some(i as u64));
        }
        assert_eq!(cluster.wiretap.count("InitProducerId"), 2, "a second producer id after the gap");
        let ids: std::collections::BTreeSet<i64> = cluster
            .wiretap
            .requests::<ProduceRequest>("Produce")
            .into_iter()
            .flat_map(|(_, r)| r.partitions)
            .flat_map(|p| {
                strata_record::batch::split_batches(p.records, usize::MAX).map(|b| b.unwrap().header().producer_id)
            })
            .collect();
        assert_eq!(ids.len(), 2, "batches went under two producer ids: {ids:?}");
        assert_eq!(values(&cluster, "t", 0).await.len(), 50);
        producer.close().await;
        cluster.stop().await;
    })
    .await;
}
