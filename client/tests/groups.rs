//! Consumer groups (offsets, coordinator routing, lag, the consumer's
//! committed positions) against the in-process fake cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

mod fake;

use std::time::Duration;

use fake::{bounded, FakeCluster};
use strata_client::{
    Admin, Consumer, ConsumerConfig, ErrorCode, OffsetReset, Producer, ProducerConfig, ProducerRecord, SeekTo,
};

/// Writes `n` records to each of `partitions` of `topic`.
async fn produce(fake: &FakeCluster, topic: &str, partitions: &[u32], n: usize) {
    let producer = Producer::connect(ProducerConfig::new(fake.addrs.clone())).await.unwrap();
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

fn group_config(fake: &FakeCluster, group: &str) -> ConsumerConfig {
    ConsumerConfig {
        max_wait: Duration::from_millis(50),
        group_id: Some(group.to_owned()),
        ..ConsumerConfig::new(fake.addrs.clone())
    }
}

#[tokio::test]
async fn offsets_commit_and_fetch_round_trip() {
    bounded(async {
        let fake = FakeCluster::start(2).await;
        fake.create_topic("t", 3);
        fake.set_coordinator("g", 2);
        let admin = Admin::connect([fake.addrs[0].clone()]).await.unwrap();

        let c = admin.find_coordinator("g").await.unwrap();
        assert_eq!((c.node_id, c.address.as_str()), (2, fake.addrs[1].as_str()));

        // Nothing committed yet: an unknown group has no offsets.
        assert!(admin.fetch_offsets("g", None).await.unwrap().is_empty());
        admin
            .commit_offsets("g", &[("t".into(), 0, 5, "meta-0".into()), ("t".into(), 2, 9, String::new())])
            .await
            .unwrap();
        let all = admin.fetch_offsets("g", None).await.unwrap();
        let got: Vec<(u32, Option<u64>, &str)> =
            all.iter().map(|c| (c.partition, c.offset, c.metadata.as_str())).collect();
        assert_eq!(got, vec![(0, Some(5), "meta-0"), (2, Some(9), "")]);
        assert!(all[0].commit_timestamp.is_some());

        // Asked by number, a partition without a commit is there with None.
        let some = admin.fetch_offsets("g", Some(&[("t".into(), vec![1, 2])])).await.unwrap();
        let got: Vec<(u32, Option<u64>)> = some.iter().map(|c| (c.partition, c.offset)).collect();
        assert_eq!(got, vec![(1, None), (2, Some(9))]);

        // A commit for a partition that does not exist names it and the group.
        let err = admin.commit_offsets("g", &[("t".into(), 7, 1, String::new())]).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::UnknownTopicOrPartition));
        assert!(err.to_string().contains("t-7") && err.to_string().contains("group 'g'"), "{err}");
        let err = admin.commit_offsets("", &[("t".into(), 0, 1, String::new())]).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::InvalidGroupId));

        // Groups live on their coordinators: listing asks every broker.
        fake.set_coordinator("h", 1);
        admin.commit_offsets("h", &[("t".into(), 1, 1, String::new())]).await.unwrap();
        let listed: Vec<(String, u32)> =
            admin.list_groups().await.unwrap().into_iter().map(|g| (g.group_id, g.coordinator)).collect();
        assert_eq!(listed, vec![("g".to_string(), 2), ("h".to_string(), 1)]);

        let d = admin.describe_groups(&["g".to_string()]).await.unwrap().remove(0);
        assert_eq!((d.state.as_str(), d.coordinator, d.members.len(), d.offsets.len()), ("empty", 2, 0, 2));
        assert!(!d.is_active());

        admin.delete_groups(&["g".to_string()]).await.unwrap();
        let err = admin.describe_groups(&["g".to_string()]).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::GroupIdNotFound));
        assert_eq!(err.to_string(), "GROUP_ID_NOT_FOUND: group 'g' not found");
        let err = admin.delete_groups(&["g".to_string()]).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::GroupIdNotFound));
    })
    .await;
}

#[tokio::test]
async fn requests_follow_the_coordinator_when_it_moves() {
    bounded(async {
        let fake = FakeCluster::start(3).await;
        fake.create_topic("t", 1);
        fake.set_coordinator("g", 1);
        let admin = Admin::connect(fake.addrs.clone()).await.unwrap();
        admin.commit_offsets("g", &[("t".into(), 0, 1, String::new())]).await.unwrap();
        admin.commit_offsets("g", &[("t".into(), 0, 2, String::new())]).await.unwrap();
        assert_eq!(fake.state().find_coordinator_calls, 1, "the coordinator is cached");

        // The coordinator moves: the cached one answers NOT_COORDINATOR, the
        // client asks again and the commit lands on the new one.
        fake.set_coordinator("g", 3);
        admin.commit_offsets("g", &[("t".into(), 0, 3, String::new())]).await.unwrap();
        assert_eq!(fake.state().find_coordinator_calls, 2);
        assert_eq!(fake.state().committed("g", "t", 0), Some(3));
        let brokers: Vec<u32> = {
            let s = fake.state();
            s.commit_requests.iter().map(|r| r.partitions[0].offset as u32).collect()
        };
        assert_eq!(brokers, vec![1, 2, 3, 3], "the commit of 3 was refused once, then retried");

        // Loading and unavailable coordinators are waited for.
        fake.inject_group("g", ErrorCode::CoordinatorLoadInProgress, 2);
        fake.inject_group("g", ErrorCode::CoordinatorNotAvailable, 1);
        assert_eq!(admin.fetch_offsets("g", None).await.unwrap()[0].offset, Some(3));

        // A coordinator that never settles is given up on, naming the group.
        fake.inject_group("g", ErrorCode::NotCoordinator, 1000);
        let started = std::time::Instant::now();
        let err = admin.fetch_offsets("g", None).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::NotCoordinator));
        assert!(err.to_string().contains("coordinator of group 'g'"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(15));
    })
    .await;
}

/// partition, committed, log end, lag.
type Row = (u32, Option<u64>, Option<u64>, Option<u64>);

#[tokio::test]
async fn lag_is_the_log_end_minus_the_committed_offset() {
    bounded(async {
        let fake = FakeCluster::start(2).await;
        fake.create_topic("t", 3);
        produce(&fake, "t", &[0, 1, 2], 10).await;
        fake.state().topics.get_mut("t").unwrap().partitions[2].start = 4;
        let admin = Admin::connect(fake.addrs.clone()).await.unwrap();
        admin
            .commit_offsets("g", &[("t".into(), 0, 3, String::new()), ("t".into(), 1, 10, String::new())])
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
    })
    .await;
}

#[tokio::test]
async fn a_consumer_resumes_from_the_committed_offset_after_reopening() {
    bounded(async {
        let fake = FakeCluster::start(2).await;
        fake.create_topic("t", 2);
        produce(&fake, "t", &[0, 1], 5).await;

        // No commit and the default reset (latest): nothing old is read.
        let mut c =
            Consumer::connect(ConsumerConfig { enable_auto_commit: false, ..group_config(&fake, "g") }).await.unwrap();
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

        produce(&fake, "t", &[1], 2).await;
        // Reopened: each partition starts at its committed offset.
        let mut c = Consumer::connect(group_config(&fake, "g")).await.unwrap();
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
        assert_eq!(fake.state().committed("g", "t", 1), Some(7));
        c.close().await.unwrap();

        // A committed offset no longer in the log is reset (earliest here).
        fake.state().topics.get_mut("t").unwrap().partitions[0].start = 5;
        let mut c =
            Consumer::connect(ConsumerConfig { auto_offset_reset: OffsetReset::Earliest, ..group_config(&fake, "g") })
                .await
                .unwrap();
        c.assign(vec![("t", 0)]);
        c.resolve_positions().await.unwrap();
        assert_eq!(c.position("t", 0), Some(5));

        // Without a group, commits are refused by name.
        let plain = Consumer::connect(ConsumerConfig::new(fake.addrs.clone())).await.unwrap();
        let err = plain.commit_sync().await.unwrap_err();
        assert!(err.to_string().contains("group_id"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn auto_commit_runs_on_poll_after_the_interval_and_on_close() {
    bounded(async {
        let fake = FakeCluster::start(1).await;
        fake.create_topic("t", 1);
        produce(&fake, "t", &[0], 4).await;
        let config = ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            auto_commit_interval: Duration::from_millis(200),
            ..group_config(&fake, "auto")
        };
        let mut c = Consumer::connect(config).await.unwrap();
        c.assign(vec![("t", 0)]);
        assert_eq!(c.poll().await.unwrap().len(), 4);
        assert_eq!(fake.state().committed("auto", "t", 0), None, "the interval has not passed");

        tokio::time::sleep(Duration::from_millis(250)).await;
        // This poll commits the position the previous one reached.
        assert!(c.poll().await.unwrap().is_empty());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while fake.state().committed("auto", "t", 0) != Some(4) {
            assert!(std::time::Instant::now() < deadline, "no auto-commit");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        produce(&fake, "t", &[0], 3).await;
        let mut got = 0;
        while got < 3 {
            got += c.poll().await.unwrap().len();
        }
        // Closing commits what was handed out.
        c.close().await.unwrap();
        assert_eq!(fake.state().committed("auto", "t", 0), Some(7));

        // With auto-commit off, close commits nothing.
        produce(&fake, "t", &[0], 1).await;
        let mut c = Consumer::connect(ConsumerConfig { enable_auto_commit: false, ..group_config(&fake, "auto") })
            .await
            .unwrap();
        c.assign(vec![("t", 0)]);
        assert_eq!(c.poll().await.unwrap().iter().map(|r| r.offset).collect::<Vec<_>>(), vec![7]);
        c.close().await.unwrap();
        assert_eq!(fake.state().committed("auto", "t", 0), Some(7));
    })
    .await;
}
