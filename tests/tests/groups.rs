//! Consumer groups across three `strata-server` processes and a kill -9 of
//! the group's coordinator: committed offsets (acks=all into
//! `__consumer_offsets`) survive it — the new leader of the group's offsets
//! partition loads them from its replica and serves them — and live members
//! keep their partitions through it: the new coordinator adopts them from
//! their heartbeats, so nothing is revoked, lost or consumed twice.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::strata_client::{
    Consumer, ConsumerConfig, OffsetReset, Producer, ProducerConfig, ProducerRecord, RebalanceListener,
};

use strata_protocol::errors::code_of;
use strata_protocol::v1::strata_client::StrataClient;
use strata_protocol::v1::*;
use strata_tests::local_cluster::LocalCluster;
use tonic::transport::Channel;

const OFFSETS_TOPIC: &str = "__consumer_offsets";
const ENV: &[(&str, &str)] = &[("STRATA_OFFSETS_TOPIC_PARTITIONS", "3")];

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

/// Waits until every partition of `topic` has all three replicas in sync.
async fn wait_in_sync(via: &str, topic: &str) {
    until_ok("in sync", || async {
        let mut c = StrataClient::connect(format!("http://{via}")).await.map_err(|e| e.to_string())?;
        let r = c
            .describe_topics(DescribeTopicsRequest { names: vec![topic.into()] })
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
    until_ok("commit", || async {
        let mut c = connect(&address).await;
        let r = c.commit_offsets(commit.clone()).await.map_err(|e| e.to_string())?.into_inner();
        match (r.error, r.partitions.iter().find_map(|p| p.error.clone())) {
            (None, None) => Ok(()),
            (e, p) => Err(format!("{e:?} {p:?}")),
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

/// Waits (bounded) until `f` holds.
async fn wait_for(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Ownership events of one consumer, shared with the test.
#[derive(Debug, Default)]
struct Events {
    /// (consumer, event, partitions) in order.
    log: Vec<(usize, &'static str, Vec<(String, u32)>)>,
    /// Current owner of each partition.
    owners: BTreeMap<(String, u32), usize>,
    /// A partition assigned while another consumer owned it.
    overlaps: Vec<String>,
}

struct Track(usize, Arc<Mutex<Events>>);

impl RebalanceListener for Track {
    fn on_partitions_assigned(&mut self, ps: &[(String, u32)]) {
        let mut e = self.1.lock().unwrap();
        for tp in ps {
            if let Some(o) = e.owners.insert(tp.clone(), self.0) {
                let msg = format!("{tp:?} given to {} while {o} owned it", self.0);
                e.overlaps.push(msg);
            }
        }
        e.log.push((self.0, "assigned", ps.to_vec()));
    }
    fn on_partitions_revoked(&mut self, ps: &[(String, u32)]) {
        let mut e = self.1.lock().unwrap();
        for tp in ps {
            e.owners.remove(tp);
        }
        e.log.push((self.0, "revoked", ps.to_vec()));
    }
    fn on_partitions_lost(&mut self, ps: &[(String, u32)]) {
        let mut e = self.1.lock().unwrap();
        for tp in ps {
            e.owners.remove(tp);
        }
        e.log.push((self.0, "lost", ps.to_vec()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn members_keep_their_partitions_across_a_coordinator_kill() {
    let cluster = LocalCluster::up_with_env(3, ENV);
    let mut admin = connect(&cluster.bootstrap(1)).await;
    let r = admin
        .create_topics(CreateTopicsRequest {
            topics: vec![TopicSpec { name: "m".into(), partitions: 6, replication_factor: 3, ..Default::default() }],
            validate_only: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code_of(&r.results[0].error), ErrorCode::None, "{:?}", r.results[0].error);
    let group = "adopted-group";
    let (coordinator, _) = find(&cluster.bootstrap(1), group, None).await;
    wait_offsets_topic_in_sync(&cluster.bootstrap(1)).await;
    wait_in_sync(&cluster.bootstrap(1), "m").await;

    let bootstrap: Vec<String> = (1..=3).map(|i| cluster.bootstrap(i)).collect();
    let events = Arc::new(Mutex::new(Events::default()));
    let received = Arc::new(Mutex::new(BTreeSet::<(u32, u64)>::new()));
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut members = Vec::new();
    for i in 0..2 {
        let config = ConsumerConfig {
            group_id: Some(group.into()),
            auto_offset_reset: OffsetReset::Earliest,
            session_timeout: Duration::from_secs(10),
            max_wait: Duration::from_millis(200),
            auto_commit_interval: Duration::from_millis(500),
            ..ConsumerConfig::new(bootstrap.clone())
        };
        let mut consumer = Consumer::connect(config).await.unwrap();
        consumer.set_rebalance_listener(Box::new(Track(i, events.clone())));
        consumer.subscribe(["m"]).unwrap();
        let (received, stop) = (received.clone(), stop.clone());
        members.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.notified() => break,
                    polled = consumer.poll() => {
                        // Errors while the cluster fails over are retried.
                        if let Ok(records) = polled {
                            let mut got = received.lock().unwrap();
                            got.extend(records.iter().map(|r| (r.partition, r.offset)));
                        }
                    }
                }
            }
            let id = consumer.member_id();
            let _ = consumer.close().await;
            id
        }));
    }
    wait_for("both members to own three partitions", || {
        let e = events.lock().unwrap();
        e.owners.len() == 6 && e.owners.values().filter(|&&o| o == 0).count() == 3
    })
    .await;

    let producer = Producer::connect(ProducerConfig::new(bootstrap.clone())).await.unwrap();
    let mut sent = BTreeSet::new();
    let produce = async |from: usize, to: usize, sent: &mut BTreeSet<(u32, u64)>| {
        for n in from..to {
            let record = ProducerRecord::new("m", format!("v{n}")).with_partition((n % 6) as u32);
            for attempt in 0.. {
                let delivered = match producer.send(record.clone()).await {
                    Ok(d) => d.await,
                    Err(e) => Err(e),
                };
                match delivered {
                    Ok(meta) => {
                        sent.insert((meta.partition, meta.offset.expect("acks=all has an offset")));
                        break;
                    }
                    Err(e) => {
                        assert!(attempt < 100, "record {n} never acknowledged: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    };
    produce(0, 120, &mut sent).await;
    wait_for("the first records", || sent.is_subset(&received.lock().unwrap())).await;
    let before = events.lock().unwrap().log.len();

    // kill -9 the coordinator; keep producing; members keep consuming.
    let killed_at = Instant::now();
    cluster.kill(coordinator as usize);
    produce(120, 240, &mut sent).await;
    wait_for("every record after the failover", || sent.is_subset(&received.lock().unwrap())).await;
    eprintln!("all records consumed {:.1} s after the coordinator kill", killed_at.elapsed().as_secs_f64());
    // The new coordinator knows both members, by their old ids.
    let survivor = (1..=3).find(|&i| i != coordinator as usize).unwrap();
    let (_, address) = find(&cluster.bootstrap(survivor), group, Some(coordinator)).await;
    let described = until_ok("describe", || async {
        let mut c = connect(&address).await;
        let r = c
            .describe_groups(DescribeGroupsRequest { group_ids: vec![group.into()] })
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        let g = r.groups.into_iter().next().ok_or("no group")?;
        if g.error.is_some() || g.members.len() != 2 || g.state != "stable" {
            return Err(format!("{g:?}"));
        }
        Ok(g)
    })
    .await;
    stop.notify_waiters();
    let mut ids = Vec::new();
    for m in members {
        ids.push(m.await.unwrap().unwrap_or_default());
    }
    let mut described_ids: Vec<String> = described.members.iter().map(|m| m.member_id.clone()).collect();
    described_ids.sort();
    ids.sort();
    assert_eq!(described_ids, ids, "the new coordinator adopted the same members");
    let e = events.lock().unwrap();
    assert!(e.overlaps.is_empty(), "{:?}", e.overlaps);
    // Between the kill and the close, nobody lost, gave up or gained anything.
    let during: Vec<_> = e.log[before..].iter().filter(|(_, what, _)| *what != "revoked").collect();
    assert!(during.is_empty(), "ownership changed across the coordinator move: {during:?}");
    let closing_revokes = e.log[before..].iter().filter(|(_, what, _)| *what == "revoked").count();
    assert!(closing_revokes <= 2, "only the closes revoke: {:?}", &e.log[before..]);
}
