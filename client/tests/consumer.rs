//! Consumer against the real broker in process, over real gRPC; records are
//! written with the real producer.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

mod kit;

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use kit::{b, bounded, create_topic, create_topic_with, TestCluster};
use strata_client::{
    ClientError, Consumer, ConsumerConfig, ConsumerRecord, ErrorCode, Producer, ProducerConfig, ProducerRecord, SeekTo,
};

async fn consumer(cluster: &TestCluster) -> Consumer {
    let config = ConsumerConfig { max_wait: Duration::from_millis(100), ..ConsumerConfig::new(cluster.addrs()) };
    Consumer::connect(config).await.unwrap()
}

/// Writes `records` and waits for their acknowledgements.
async fn produce(cluster: &TestCluster, records: Vec<ProducerRecord>) {
    let producer = Producer::connect(ProducerConfig {
        linger: Duration::from_millis(10),
        batch_size: 400,
        ..ProducerConfig::new(cluster.addrs())
    })
    .await
    .unwrap();
    let mut pending = Vec::new();
    for r in records {
        pending.push(producer.send(r).await.unwrap());
    }
    for d in pending {
        d.await.unwrap();
    }
    producer.close().await;
}

/// Polls until `n` records arrived (or a poll returns nothing).
async fn poll_n(c: &mut Consumer, n: usize) -> Vec<ConsumerRecord> {
    let mut out = Vec::new();
    while out.len() < n {
        let got = c.poll().await.unwrap();
        if got.is_empty() {
            break;
        }
        out.extend(got);
    }
    out
}

fn record(i: i64) -> ProducerRecord {
    let mut r = ProducerRecord::new("t", format!("value-{i}")).with_partition(0).with_timestamp(1_000 * (i + 1));
    if i % 3 != 0 {
        r.key = Some(Bytes::from(format!("key-{i}")));
    }
    if i % 5 == 0 {
        r.value = None;
    }
    r.headers = vec![("n".into(), Some(Bytes::from(i.to_string()))), ("empty".into(), None)];
    r
}

#[tokio::test]
async fn round_trip_keeps_keys_values_headers_and_timestamps() {
    bounded(async {
        let cluster = TestCluster::start(2).await;
        create_topic(&cluster, "t", 2).await;
        let sent: Vec<ProducerRecord> = (0..40).map(record).collect();
        produce(&cluster, sent.clone()).await;
        produce(&cluster, vec![ProducerRecord::new("t", "other").with_partition(1)]).await;

        let mut c = consumer(&cluster).await;
        c.assign(vec![("t", 0), ("t", 1)]);
        assert_eq!(c.seek("t", 0, SeekTo::Beginning).await.unwrap(), 0);
        let got = poll_n(&mut c, 41).await;
        assert_eq!(got.len(), 41);
        let p0: Vec<&ConsumerRecord> = got.iter().filter(|r| r.partition == 0).collect();
        for (i, (r, s)) in p0.iter().zip(&sent).enumerate() {
            assert_eq!(r.offset, i as u64);
            assert_eq!(r.topic, "t");
            assert_eq!((&r.key, &r.value, &r.headers), (&s.key, &s.value, &s.headers));
            assert_eq!(r.timestamp, s.timestamp.unwrap());
        }
        let p1: Vec<&ConsumerRecord> = got.iter().filter(|r| r.partition == 1).collect();
        assert_eq!(p1.len(), 1);
        assert_eq!(p1[0].value, Some(b("other")));
        assert_eq!(c.position("t", 0), Some(40));
        assert_eq!(c.position("t", 1), Some(1));
        assert_eq!(c.high_watermark("t", 0), Some(40));
        // Caught up: the long poll comes back empty.
        assert!(c.poll().await.unwrap().is_empty());
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn seek_to_an_offset_inside_a_batch_skips_the_records_below_it() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 1).await;
        produce(&cluster, (0..10).map(|i| ProducerRecord::new("t", format!("v{i}"))).collect()).await;
        assert_eq!(cluster.batches("t", 0).await.len(), 1, "all ten in one batch");
        let mut c = consumer(&cluster).await;
        c.assign(vec![("t", 0)]);
        c.seek("t", 0, SeekTo::Offset(7)).await.unwrap();
        let got = poll_n(&mut c, 3).await;
        let offsets: Vec<u64> = got.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![7, 8, 9]);
        assert_eq!(got[0].value, Some(b("v7")));
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn seek_to_end_then_read_only_new_records() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 1).await;
        produce(&cluster, (0..5).map(|i| ProducerRecord::new("t", format!("old{i}"))).collect()).await;
        let mut c = consumer(&cluster).await;
        c.assign(vec![("t", 0)]);
        assert_eq!(c.seek("t", 0, SeekTo::End).await.unwrap(), 5);
        assert!(c.poll().await.unwrap().is_empty());
        produce(&cluster, vec![ProducerRecord::new("t", "new")]).await;
        let got = poll_n(&mut c, 1).await;
        assert_eq!(got.iter().map(|r| (r.offset, r.value.clone())).collect::<Vec<_>>(), vec![(5, Some(b("new")))]);
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn seek_by_timestamp() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 1).await;
        produce(&cluster, (0..10).map(record).collect()).await; // timestamps 1000, 2000, ...
        let mut c = consumer(&cluster).await;
        c.assign(vec![("t", 0)]);
        assert_eq!(c.seek("t", 0, SeekTo::Timestamp(2_500)).await.unwrap(), 2);
        assert_eq!(poll_n(&mut c, 8).await.first().map(|r| (r.offset, r.timestamp)), Some((2, 3_000)));
        // After the last record: the end of the partition.
        assert_eq!(c.seek("t", 0, SeekTo::Timestamp(99_000)).await.unwrap(), 10);
        assert_eq!(c.lookup_offset("t", 0, SeekTo::Beginning).await.unwrap(), 0);
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn offset_out_of_range_is_an_error_not_a_reset() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 1).await;
        produce(&cluster, (0..3).map(|i| ProducerRecord::new("t", format!("v{i}"))).collect()).await;
        let mut c = consumer(&cluster).await;
        c.assign(vec![("t", 0)]);
        c.seek("t", 0, SeekTo::Offset(1_000)).await.unwrap();
        let err = c.poll().await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::OffsetOutOfRange));
        let text = err.to_string();
        assert!(
            text.contains("fetch offset 1000 is out of range for partition t-0: valid offsets are 0 to 3"),
            "{text}"
        );
        assert_eq!(c.position("t", 0), Some(1_000), "position unchanged");
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn stream_yields_records_and_keeps_the_rest_buffered() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 1).await;
        produce(&cluster, (0..20).map(|i| ProducerRecord::new("t", format!("v{i}"))).collect()).await;
        let mut c = consumer(&cluster).await;
        c.assign(vec![("t", 0)]);
        let first: Vec<u64> = {
            let stream = c.stream();
            futures::pin_mut!(stream);
            let mut v = Vec::new();
            for _ in 0..5 {
                v.push(stream.next().await.unwrap().unwrap().offset);
            }
            v
        };
        assert_eq!(first, vec![0, 1, 2, 3, 4]);
        assert_eq!(c.position("t", 0), Some(5), "initial position is the beginning");
        let rest = poll_n(&mut c, 15).await;
        assert_eq!(rest.first().map(|r| r.offset), Some(5));
        assert_eq!(rest.len(), 15);
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn follows_a_moved_leader_and_reports_bad_assignments() {
    bounded(async {
        let cluster = TestCluster::start(2).await;
        create_topic_with(&cluster, "t", 1, 2, &[]).await;
        produce(&cluster, vec![ProducerRecord::new("t", "a")]).await;
        let mut c = consumer(&cluster).await;
        c.assign(vec![("t", 0)]);
        assert_eq!(poll_n(&mut c, 1).await.len(), 1);
        // The leader is drained: the other replica takes over.
        let old = cluster.leader("t", 0).await.unwrap();
        cluster.node(old).drain().await;
        assert_eq!(cluster.leader("t", 0).await, Some(3 - old));
        produce(&cluster, vec![ProducerRecord::new("t", "b")]).await;
        let got = poll_n(&mut c, 1).await;
        assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![1]);

        let err = c.seek("t", 9, SeekTo::Beginning).await.unwrap_err();
        assert!(matches!(err, ClientError::InvalidArgument(_)), "{err}");
        c.assign(vec![("t", 9)]);
        assert_eq!(c.poll().await.unwrap_err().code(), Some(ErrorCode::UnknownTopicOrPartition));
        c.assign(vec![("missing", 0)]);
        assert_eq!(c.poll().await.unwrap_err().code(), Some(ErrorCode::UnknownTopicOrPartition));
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_dead_broker_is_reported_after_retries() {
    bounded(async {
        let mut cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 1).await;
        let mut c = consumer(&cluster).await;
        c.assign(vec![("t", 0)]);
        assert!(c.poll().await.unwrap().is_empty());
        cluster.stop_node(1).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let err = c.poll().await.unwrap_err();
        assert!(err.is_retriable(), "{err}");
        assert!(!err.to_string().contains('\n'));
    })
    .await;
}
