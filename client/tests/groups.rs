//! Consumer groups (offsets, coordinator routing, lag, the consumer's
//! committed positions) against the real broker in process.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

mod kit;

use std::time::Duration;

use kit::{bounded, committed, create_topic, create_topic_with, group_on, TestCluster};
use strata_client::{
    Admin, Consumer, ConsumerConfig, ErrorCode, OffsetReset, PartitionOffset, Producer, ProducerConfig, ProducerRecord,
    SeekTo,
};
use strata_protocol::v1::CommitOffsetsRequest;

/// Writes `n` records to each of `partitions` of `topic`.
async fn produce(cluster: &TestCluster, topic: &str, partitions: &[u32], n: usize) {
    let producer = Producer::connect(ProducerConfig::new(cluster.addrs())).await.unwrap();
    let mut pending = Vec::new();
    for &p in partitions {
        for i in 0..n {
            pending
                .push(producer.send(ProducerRecord::new(topic, format!("p{p}-{i}")).with_partition(p)).await.unwrap());
        }
    }
    for d in pending {
        d.await.unwrap();
    }
    producer.close().await;
}

fn group_config(cluster: &TestCluster, group: &str) -> ConsumerConfig {
    ConsumerConfig {
        max_wait: Duration::from_millis(50),
        group_id: Some(group.to_owned()),
        ..ConsumerConfig::new(cluster.addrs())
    }
}

#[tokio::test]
async fn offsets_commit_and_fetch_round_trip() {
    bounded(async {
        let cluster = TestCluster::start(2).await;
        create_topic(&cluster, "t", 3).await;
        let g = group_on(&cluster, "g", 2).await;
        let g = g.as_str();
        let admin = Admin::connect([cluster.addr(1)]).await.unwrap();

        let c = admin.find_coordinator(g).await.unwrap();
        assert_eq!((c.node_id, c.address), (2, cluster.addr(2)));

        // Nothing committed yet: an unknown group has no offsets.
        assert!(admin.fetch_offsets(g, None).await.unwrap().is_empty());
        admin
            .commit_offsets(
                g,
                &[PartitionOffset::new(("t", 0), 5).with_metadata("meta-0"), PartitionOffset::new(("t", 2), 9)],
            )
            .await
            .unwrap();
        let all = admin.fetch_offsets(g, None).await.unwrap();
        let got: Vec<(u32, Option<u64>, &str)> =
            all.iter().map(|c| (c.partition, c.offset, c.metadata.as_str())).collect();
        assert_eq!(got, vec![(0, Some(5), "meta-0"), (2, Some(9), "")]);
        assert!(all[0].commit_timestamp.is_some());

        // Asked by number, a partition without a commit is there with None.
        let some = admin.fetch_offsets(g, Some(&[("t".into(), vec![1, 2])])).await.unwrap();
        let got: Vec<(u32, Option<u64>)> = some.iter().map(|c| (c.partition, c.offset)).collect();
        assert_eq!(got, vec![(1, None), (2, Some(9))]);

        // A commit for a partition that does not exist names it and the group.
        let err = admin.commit_offsets(g, &[PartitionOffset::new(("t", 7), 1)]).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::UnknownTopicOrPartition));
        assert!(err.to_string().contains("t-7") && err.to_string().contains(&format!("group '{g}'")), "{err}");
        let err = admin.commit_offsets("", &[PartitionOffset::new(("t", 0), 1)]).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::InvalidGroupId));

        // Groups live on their coordinators: listing asks every broker.
        let h = group_on(&cluster, "h", 1).await;
        admin.commit_offsets(&h, &[PartitionOffset::new(("t", 1), 1)]).await.unwrap();
        let listed: Vec<(String, u32)> =
            admin.list_groups().await.unwrap().into_iter().map(|g| (g.group_id, g.coordinator)).collect();
        assert_eq!(listed, vec![(g.to_string(), 2), (h, 1)]);

        let d = admin.describe_groups(&[g.to_string()]).await.unwrap().remove(0);
        assert_eq!((d.state.as_str(), d.coordinator, d.members.len(), d.offsets.len()), ("empty", 2, 0, 2));
        assert!(!d.is_active());

        admin.delete_groups(&[g.to_string()]).await.unwrap();
        let err = admin.describe_groups(&[g.to_string()]).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::GroupIdNotFound));
        assert_eq!(err.to_string(), format!("GROUP_ID_NOT_FOUND: no group '{g}'"));
        let err = admin.delete_groups(&[g.to_string()]).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::GroupIdNotFound));
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn requests_follow_the_coordinator_when_it_moves() {
    bounded(async {
        let cluster = TestCluster::start(3).await;
        create_topic(&cluster, "t", 1).await;
        let finds = || cluster.wiretap.count("FindCoordinator");
        let admin = Admin::connect(cluster.addrs()).await.unwrap();
        admin.commit_offsets("g", &[PartitionOffset::new(("t", 0), 1)]).await.unwrap();
        admin.commit_offsets("g", &[PartitionOffset::new(("t", 0), 2)]).await.unwrap();
        assert_eq!(finds(), 1, "the coordinator is cached");

        // The coordinator moves (it is drained: the controller moves its
        // offsets partitions away): the cached one answers NOT_COORDINATOR,
        // the client asks again and the commit lands on the new one.
        let old = Admin::connect([cluster.addr(1)]).await.unwrap().find_coordinator("g").await.unwrap().node_id;
        cluster.node(old).drain().await;
        let lookups = finds();
        admin.commit_offsets("g", &[PartitionOffset::new(("t", 0), 3)]).await.unwrap();
        assert_eq!(finds() - lookups, 1, "asked again once");
        let new = Admin::connect([cluster.addr(1)]).await.unwrap().find_coordinator("g").await.unwrap().node_id;
        assert_ne!(new, old);
        assert_eq!(committed(&cluster, "g", "t", 0).await, Some(3));
        let requests = cluster.wiretap.requests::<CommitOffsetsRequest>("CommitOffsets");
        let brokers: Vec<u32> = requests.iter().map(|(_, r)| r.partitions[0].offset as u32).collect();
        let nodes: Vec<u32> = requests.iter().map(|(node, _)| *node).collect();
        assert_eq!(nodes, vec![old, old, old, new], "refused by the old coordinator, served by the new");
        assert_eq!(brokers, vec![1, 2, 3, 3], "the commit of 3 was refused once, then retried");

        // Loading and unavailable coordinators are waited for.
        cluster.wiretap.fail_group("g", ErrorCode::CoordinatorLoadInProgress, 2);
        cluster.wiretap.fail_group("g", ErrorCode::CoordinatorNotAvailable, 1);
        assert_eq!(admin.fetch_offsets("g", None).await.unwrap()[0].offset, Some(3));

        // A coordinator that never settles is given up on, naming the group.
        cluster.wiretap.fail_group("g", ErrorCode::NotCoordinator, 1000);
        let started = std::time::Instant::now();
        let err = admin.fetch_offsets("g", None).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::NotCoordinator));
        assert!(err.to_string().contains("coordinator of group 'g'"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(15));
    })
    .await;
}

/// Node settings running retention every 100 ms.
fn fast_retention(_: u32, config: &mut strata_server::testkit::ServerConfig) {
    config.log_retention_check_interval = Duration::from_millis(100);
}

/// Waits until retention moved the start of `t`-`partition` to `start`.
async fn wait_for_log_start(admin: &Admin, partition: u32, start: u64) {
    strata_server::testkit::eventually("retention moved the log start", Duration::from_secs(10), || async {
        let d = admin.describe_topics(&["t".to_string()]).await.unwrap().remove(0);
        d.partitions[partition as usize].log_start_offset == start
    })
    .await;
}

/// partition, committed, log end, lag.
type Row = (u32, Option<u64>, Option<u64>, Option<u64>);

#[tokio::test]
async fn lag_is_the_log_end_minus_the_committed_offset() {
    bounded(async {
        // Segments of 1 KiB, and retention keeps only the last segment:
        // what is below it is removed (the log start moves).
        let cluster = TestCluster::start_with(2, fast_retention).await;
        create_topic_with(&cluster, "t", 3, 1, &[("segment.bytes", "1024"), ("retention.bytes", "1")]).await;
        produce(&cluster, "t", &[0, 1], 10).await;
        // Partition 2: 4 records of a segment each, then 6 in one batch (a
        // segment of their own); the first 4 go.
        let producer = Producer::connect(ProducerConfig::new(cluster.addrs())).await.unwrap();
        for i in 0..4 {
            let record = ProducerRecord::new("t", format!("p2-{i}-{}", "x".repeat(1100))).with_partition(2);
            producer.send(record).await.unwrap().await.unwrap();
        }
        producer.close().await;
        let producer = Producer::connect(ProducerConfig {
            linger: Duration::from_millis(200),
            ..ProducerConfig::new(cluster.addrs())
        })
        .await
        .unwrap();
        let mut pending = Vec::new();
        for i in 4..10 {
            pending.push(producer.send(ProducerRecord::new("t", format!("p2-{i}")).with_partition(2)).await.unwrap());
        }
        for d in pending {
            d.await.unwrap();
        }
        producer.close().await;
        let admin = Admin::connect(cluster.addrs()).await.unwrap();
        wait_for_log_start(&admin, 2, 4).await;
        admin
            .commit_offsets("g", &[PartitionOffset::new(("t", 0), 3), PartitionOffset::new(("t", 1), 10)])
            .await
            .unwrap();

        let lag = admin.group_lag("g").await.unwrap();
        let got: Vec<Row> = lag.iter().map(|l| (l.partition, l.committed, l.log_end, l.lag)).collect();
        assert_eq!(got, vec![(0, Some(3), Some(10), Some(7)), (1, Some(10), Some(10), Some(0))]);

        // Without a commit, the lag counts from the log start; a partition
        // that no longer exists has no lag.
        let mut committed = admin.fetch_offsets("g", Some(&[("t".into(), vec![2])])).await.unwrap();
        assert_eq!(committed[0].offset, None);
        committed.push(strata_client::CommittedOffset {
            topic: "gone".into(),
            partition: 0,
            offset: Some(5),
            metadata: String::new(),
            commit_timestamp: None,
        });
        let lag = admin.lag_of(&committed).await.unwrap();
        assert_eq!((lag[0].log_start, lag[0].log_end, lag[0].lag), (Some(4), Some(10), Some(6)));
        assert_eq!((lag[1].committed, lag[1].log_end, lag[1].lag), (Some(5), None, None));
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_consumer_resumes_from_the_committed_offset_after_reopening() {
    bounded(async {
        // Segments of 1 KiB; retention keeps 1000 bytes.
        let cluster = TestCluster::start_with(2, fast_retention).await;
        create_topic_with(&cluster, "t", 2, 1, &[("segment.bytes", "1024"), ("retention.bytes", "1000")]).await;
        produce(&cluster, "t", &[0, 1], 5).await;

        // No commit and the default reset (latest): nothing old is read.
        let mut c = Consumer::connect(ConsumerConfig { enable_auto_commit: false, ..group_config(&cluster, "g") })
            .await
            .unwrap();
        c.assign(vec![("t", 0), ("t", 1)]);
        c.resolve_positions().await.unwrap();
        assert_eq!((c.position("t", 0), c.position("t", 1)), (Some(5), Some(5)));
        assert_eq!(c.committed("t", 0).await.unwrap(), None);
        // A seek wins over the group's position; commit_sync stores positions.
        c.seek("t", 0, SeekTo::Offset(2)).await.unwrap();
        let got = c.poll().await.unwrap();
        assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![2, 3, 4]);
        c.seek("t", 0, SeekTo::Offset(4)).await.unwrap();
        c.commit_sync().await.unwrap();
        assert_eq!(c.committed("t", 0).await.unwrap(), Some(4));
        assert_eq!(c.committed("t", 1).await.unwrap(), Some(5));
        c.close().await.unwrap();
        assert!(c.poll().await.is_err(), "closed");

        produce(&cluster, "t", &[1], 2).await;
        // Reopened: each partition starts at its committed offset.
        let mut c = Consumer::connect(group_config(&cluster, "g")).await.unwrap();
        c.assign(vec![("t", 0), ("t", 1)]);
        let mut got: Vec<(u32, u64)> = Vec::new();
        while got.len() < 3 {
            let records = c.poll().await.unwrap();
            assert!(!records.is_empty(), "got only {got:?}");
            got.extend(records.iter().map(|r| (r.partition, r.offset)));
        }
        got.sort_unstable();
        assert_eq!(got, vec![(0, 4), (1, 5), (1, 6)]);

        // An async commit reports through its handle.
        c.commit_async().await.unwrap();
        assert_eq!(committed(&cluster, "g", "t", 1).await, Some(7));
        c.close().await.unwrap();

        // A committed offset no longer in the log is reset (earliest here):
        // a large record pushes partition 0's first five out by retention.
        let producer = Producer::connect(ProducerConfig::new(cluster.addrs())).await.unwrap();
        producer.send(ProducerRecord::new("t", vec![b'x'; 2000]).with_partition(0)).await.unwrap().await.unwrap();
        producer.close().await;
        wait_for_log_start(&Admin::connect(cluster.addrs()).await.unwrap(), 0, 5).await;
        let mut c = Consumer::connect(ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            ..group_config(&cluster, "g")
        })
        .await
        .unwrap();
        c.assign(vec![("t", 0)]);
        c.resolve_positions().await.unwrap();
        assert_eq!(c.position("t", 0), Some(5));

        // Without a group, commits are refused by name.
        let plain = Consumer::connect(ConsumerConfig::new(cluster.addrs())).await.unwrap();
        let err = plain.commit_sync().await.unwrap_err();
        assert!(err.to_string().contains("group_id"), "{err}");
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn auto_commit_runs_on_poll_after_the_interval_and_on_close() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 1).await;
        produce(&cluster, "t", &[0], 4).await;
        let config = ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            auto_commit_interval: Duration::from_millis(200),
            ..group_config(&cluster, "auto")
        };
        let mut c = Consumer::connect(config).await.unwrap();
        c.assign(vec![("t", 0)]);
        assert_eq!(c.poll().await.unwrap().len(), 4);
        assert_eq!(committed(&cluster, "auto", "t", 0).await, None, "the interval has not passed");

        tokio::time::sleep(Duration::from_millis(250)).await;
        // This poll commits the position the previous one reached.
        assert!(c.poll().await.unwrap().is_empty());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while committed(&cluster, "auto", "t", 0).await != Some(4) {
            assert!(std::time::Instant::now() < deadline, "no auto-commit");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        produce(&cluster, "t", &[0], 3).await;
        let mut got = 0;
        while got < 3 {
            got += c.poll().await.unwrap().len();
        }
        // Closing commits what was handed out.
        c.close().await.unwrap();
        assert_eq!(committed(&cluster, "auto", "t", 0).await, Some(7));

        // With auto-commit off, close commits nothing.
        produce(&cluster, "t", &[0], 1).await;
        let mut c = Consumer::connect(ConsumerConfig { enable_auto_commit: false, ..group_config(&cluster, "auto") })
            .await
            .unwrap();
        c.assign(vec![("t", 0)]);
        assert_eq!(c.poll().await.unwrap().iter().map(|r| r.offset).collect::<Vec<_>>(), vec![7]);
        c.close().await.unwrap();
        assert_eq!(committed(&cluster, "auto", "t", 0).await, Some(7));
        cluster.stop().await;
    })
    .await;
}
