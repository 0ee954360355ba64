//! Committed offsets across three `strata-server` processes: offsets
//! committed (acks=all into `__consumer_offsets`) survive a kill -9 of the
//! group's coordinator; the new leader of the group's offsets partition
//! loads them from its replica and serves them. Raw gRPC: the client's group
//! API is separate work.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::time::{Duration, Instant};

use strata_protocol::errors::code_of;
use strata_protocol::v1::strata_client::StrataClient;
use strata_protocol::v1::*;
use strata_tests::local_cluster::LocalCluster;
use tonic::transport::Channel;

const OFFSETS_TOPIC: &str = "__consumer_offsets";
const ENV: &[(&str, &str)] =
    &[("STRATA_OFFSETS_TOPIC_PARTITIONS", "3"), ("STRATA_OFFSETS_COMPACTION_MIN_RECORDS", "50")];

async fn connect(address: &str) -> StrataClient<Channel> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(c) = StrataClient::connect(format!("http://{address}")).await {
            return c;
        }
        assert!(Instant::now() < deadline, "cannot connect to {address}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Retries `f` while it answers a retriable error (or the call fails).
async fn until_ok<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match f().await {
            Ok(t) => return t,
            Err(e) => assert!(Instant::now() < deadline, "{what}: still failing: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The coordinator of `group` (node id, address), asked through `via`.
async fn find(via: &str, group: &str, not: Option<u32>) -> (u32, String) {
    until_ok("find coordinator", || async {
        let mut c = StrataClient::connect(format!("http://{via}")).await.map_err(|e| e.to_string())?;
        let r = c
            .find_coordinator(FindCoordinatorRequest { group_id: group.into() })
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        match r.error {
            Some(e) => Err(format!("{e:?}")),
            None if Some(r.node_id) == not => Err(format!("still node {}", r.node_id)),
            None => Ok((r.node_id, r.address)),
        }
    })
    .await
}

/// Waits until every offsets partition has all three replicas in sync.
async fn wait_offsets_topic_in_sync(via: &str) {
    until_ok("offsets topic in sync", || async {
        let mut c = StrataClient::connect(format!("http://{via}")).await.map_err(|e| e.to_string())?;
        let r = c
            .describe_topics(DescribeTopicsRequest { names: vec![OFFSETS_TOPIC.into()] })
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        let t = &r.topics[0];
        let ok = t.error.is_none() && !t.partitions.is_empty() && t.partitions.iter().all(|p| p.isr.len() == 3);
        if ok {
            Ok(())
        } else {
            Err(format!("{:?}", t.partitions))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_a_coordinator_kill() {
    let cluster = LocalCluster::up_with_env(3, ENV);
    let mut admin = connect(&cluster.bootstrap(1)).await;
    let r = admin
        .create_topics(CreateTopicsRequest {
            topics: vec![TopicSpec { name: "t".into(), partitions: 3, replication_factor: 3, ..Default::default() }],
            validate_only: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code_of(&r.results[0].error), ErrorCode::None, "{:?}", r.results[0].error);

    let group = "failover-group";
    let (coordinator, address) = find(&cluster.bootstrap(1), group, None).await;
    wait_offsets_topic_in_sync(&cluster.bootstrap(1)).await;
    let commit = CommitOffsetsRequest {
        group_id: group.into(),
        member_id: String::new(),
        member_epoch: -1,
        partitions: (0..3)
            .map(|p| OffsetCommitPartition {
                topic: "t".into(),
                partition: p,
                offset: 100 + u64::from(p),
                metadata: format!("m{p}"),
            })
            .collect(),
    };
    // Enough earlier commits that the coordinator compacts its offsets
    // partition (and the followers follow its log start) before the kill.
    let mut older = commit.clone();
    for round in 0..60u64 {
        for p in &mut older.partitions {
            p.offset = round;
        }
        let req = older.clone();
        until_ok("commit", || async {
            let mut c = connect(&address).await;
            let r = c.commit_offsets(req.clone()).await.map_err(|e| e.to_string())?.into_inner();
            match (r.error, r.partitions.iter().find_map(|p| p.error.clone())) {
                (None, None) => Ok(()),
                (e, p) => Err(format!("{e:?} {p:?}")),
            }
        })
        .await;
    }
    until_ok("commit", || async {
        let mut c = connect(&address).await;
        let r = c.commit_offsets(commit.clone()).await.map_err(|e| e.to_string())?.into_inner();
        match (r.error, r.partitions.iter().find_map(|p| p.error.clone())) {
            (None, None) => Ok(()),
            (e, p) => Err(format!("{e:?} {p:?}")),
        }
    })
    .await;
    until_ok("the group's offsets partition compacted", || async {
        let mut c = connect(&address).await;
        let r = c
            .describe_topics(DescribeTopicsRequest { names: vec![OFFSETS_TOPIC.into()] })
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        let starts: Vec<u64> = r.topics[0].partitions.iter().map(|p| p.log_start_offset).collect();
        if starts.iter().any(|&s| s > 0) {
            Ok(())
        } else {
            Err(format!("log starts {starts:?}"))
        }
    })
    .await;

    // kill -9 the coordinator: the acknowledged commit is on the in-sync
    // replicas, and the new leader of the offsets partition serves it.
    cluster.kill(coordinator as usize);
    let survivor = (1..=3).find(|&i| i != coordinator as usize).unwrap();
    let (new_coordinator, new_address) = find(&cluster.bootstrap(survivor), group, Some(coordinator)).await;
    assert_ne!(new_coordinator, coordinator);
    let fetched = until_ok("fetch from the new coordinator", || async {
        let mut c = connect(&new_address).await;
        let r = c
            .fetch_offsets(FetchOffsetsRequest { group_id: group.into(), partitions: vec![] })
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        match r.error {
            Some(e) => Err(format!("{e:?}")),
            None => Ok(r.partitions),
        }
    })
    .await;
    let got: Vec<(u32, i64, String)> = fetched.iter().map(|p| (p.partition, p.offset, p.metadata.clone())).collect();
    assert_eq!(got, [(0, 100, "m0".into()), (1, 101, "m1".into()), (2, 102, "m2".into())]);

    // The new coordinator accepts commits (two replicas: min ISR 2 holds).
    let mut c = connect(&new_address).await;
    let mut again = commit.clone();
    again.partitions.truncate(1);
    again.partitions[0].offset = 500;
    let r = c.commit_offsets(again).await.unwrap().into_inner();
    assert!(r.error.is_none() && r.partitions[0].error.is_none(), "{r:?}");
}
