//! Group membership (subscribe, heartbeats, reconciliation, rebalance
//! callbacks, member commits) against the real broker's coordinator, in
//! process.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

mod kit;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kit::{bounded, committed, create_topic, TestCluster};
use strata_client::{
    ClientError, Consumer, ConsumerConfig, ErrorCode, OffsetReset, PartitionOffset, Producer, ProducerConfig,
    ProducerRecord, RebalanceListener,
};
use strata_protocol::v1::{CommitOffsetsRequest, ConsumerGroupHeartbeatRequest};

type Tp = strata_client::TopicPartition;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Assigned(Vec<Tp>),
    Revoked(Vec<Tp>),
    Lost(Vec<Tp>),
}

/// Records callbacks, and checks against a map shared by all consumers
/// that no partition is ever owned twice.
struct Recorder {
    name: &'static str,
    events: Arc<Mutex<Vec<Event>>>,
    owners: Arc<Mutex<BTreeMap<Tp, &'static str>>>,
}

impl RebalanceListener for Recorder {
    fn on_partitions_assigned(&mut self, partitions: &[Tp]) {
        let mut owners = self.owners.lock().unwrap();
        for tp in partitions {
            if let Some(other) = owners.insert(tp.clone(), self.name) {
                panic!("{tp:?} assigned to {} while {other} owns it", self.name);
            }
        }
        self.events.lock().unwrap().push(Event::Assigned(partitions.to_vec()));
    }
    fn on_partitions_revoked(&mut self, partitions: &[Tp]) {
        self.free(partitions);
        self.events.lock().unwrap().push(Event::Revoked(partitions.to_vec()));
    }
    fn on_partitions_lost(&mut self, partitions: &[Tp]) {
        self.free(partitions);
        self.events.lock().unwrap().push(Event::Lost(partitions.to_vec()));
    }
}

impl Recorder {
    fn free(&self, partitions: &[Tp]) {
        let mut owners = self.owners.lock().unwrap();
        for tp in partitions {
            assert_eq!(owners.remove(tp), Some(self.name), "{} gave up {tp:?} it did not own", self.name);
        }
    }
}

fn config(cluster: &TestCluster, group: &str) -> ConsumerConfig {
    ConsumerConfig {
        max_wait: Duration::from_millis(100),
        group_id: Some(group.to_owned()),
        auto_offset_reset: OffsetReset::Earliest,
        session_timeout: Duration::from_secs(2),
        ..ConsumerConfig::new(cluster.addrs())
    }
}

async fn member(
    cfg: ConsumerConfig,
    name: &'static str,
    owners: &Arc<Mutex<BTreeMap<Tp, &'static str>>>,
) -> (Consumer, Arc<Mutex<Vec<Event>>>) {
    let mut c = Consumer::connect(cfg).await.unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    c.set_rebalance_listener(Box::new(Recorder { name, events: events.clone(), owners: owners.clone() }));
    (c, events)
}

async fn produce(cluster: &TestCluster, topic: &str, partitions: u32, per_partition: usize) {
    let producer = Producer::connect(ProducerConfig::new(cluster.addrs())).await.unwrap();
    let mut pending = Vec::new();
    for p in 0..partitions {
        for i in 0..per_partition {
            pending
                .push(producer.send(ProducerRecord::new(topic, format!("{p}-{i}")).with_partition(p)).await.unwrap());
        }
    }
    for d in pending {
        d.await.unwrap();
    }
    producer.close().await;
}

/// The offset commits the brokers received.
fn commit_requests(cluster: &TestCluster) -> Vec<CommitOffsetsRequest> {
    cluster.wiretap.requests("CommitOffsets").into_iter().map(|(_, r)| r).collect()
}

/// The heartbeats the brokers received.
fn heartbeats(cluster: &TestCluster) -> Vec<ConsumerGroupHeartbeatRequest> {
    cluster.wiretap.requests("ConsumerGroupHeartbeat").into_iter().map(|(_, r)| r).collect()
}

/// Polls until `f` holds (panicking after 10 s), collecting the records.
async fn poll_until(c: &mut Consumer, got: &mut Vec<(String, u32, u64)>, mut f: impl FnMut(&Consumer, usize) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f(c, got.len()) {
        assert!(Instant::now() < deadline, "condition not reached; assignment {:?}", c.assignment());
        got.extend(c.poll().await.unwrap().into_iter().map(|r| (r.topic, r.partition, r.offset)));
    }
}

#[tokio::test]
async fn two_members_share_the_partitions_and_the_survivor_takes_them_all() {
    bounded(async {
        let cluster = TestCluster::start(2).await;
        create_topic(&cluster, "t", 4).await;
        produce(&cluster, "t", 4, 5).await;
        let owners = Arc::default();
        let (mut a, a_events) = member(config(&cluster, "g"), "a", &owners).await;
        let (mut b, b_events) = member(config(&cluster, "g"), "b", &owners).await;
        a.subscribe(["t"]).unwrap();
        let mut got = Vec::new();
        poll_until(&mut a, &mut got, |c, _| c.assignment().len() == 4).await;
        assert!(a.member_id().is_some() && a.member_epoch().is_some());
        assert_eq!(a_events.lock().unwrap()[0], Event::Assigned((0..4).map(|p| Tp::of("t", p)).collect()));

        // b joins: a gives up two partitions (committing them) before b
        // gets them.
        b.subscribe(["t"]).unwrap();
        let mut got_b = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while a.assignment().len() != 2 || b.assignment().len() != 2 {
            assert!(Instant::now() < deadline, "a {:?} b {:?}", a.assignment(), b.assignment());
            got.extend(a.poll().await.unwrap().into_iter().map(|r| (r.topic, r.partition, r.offset)));
            got_b.extend(b.poll().await.unwrap().into_iter().map(|r| (r.topic, r.partition, r.offset)));
        }
        let revoked: Vec<Event> =
            a_events.lock().unwrap().iter().filter(|e| matches!(e, Event::Revoked(_))).cloned().collect();
        assert_eq!(revoked.len(), 1, "{:?}", a_events.lock().unwrap());
        // Every commit is a member commit.
        let commits = commit_requests(&cluster);
        assert!(!commits.is_empty());
        assert!(commits.iter().all(|r| !r.member_id.is_empty() && r.member_epoch > 0), "{commits:?}");

        // Every record exactly once between them (b starts from a's commit).
        let mut all: Vec<(String, u32, u64)> = got.iter().chain(&got_b).cloned().collect();
        while all.len() < 20 {
            all.extend(a.poll().await.unwrap().into_iter().map(|r| (r.topic, r.partition, r.offset)));
            all.extend(b.poll().await.unwrap().into_iter().map(|r| (r.topic, r.partition, r.offset)));
        }
        let unique: BTreeSet<&(String, u32, u64)> = all.iter().collect();
        assert_eq!((all.len(), unique.len()), (20, 20), "{all:?}");

        // a closes (revoke callback, leave -1): b gets everything at once.
        a.close().await.unwrap();
        assert!(matches!(a_events.lock().unwrap().last(), Some(Event::Revoked(_))));
        let left = heartbeats(&cluster).iter().any(|h| h.member_epoch == -1);
        assert!(left, "dynamic members leave with epoch -1");
        poll_until(&mut b, &mut Vec::new(), |c, _| c.assignment().len() == 4).await;
        assert!(b_events.lock().unwrap().iter().all(|e| !matches!(e, Event::Lost(_))));
        b.close().await.unwrap();
        assert!(owners.lock().unwrap().is_empty(), "{:?}", owners.lock().unwrap());
        let admin = strata_client::Admin::connect(cluster.addrs()).await.unwrap();
        let d = admin.describe_groups(&["g".to_string()]).await.unwrap().remove(0);
        assert!(d.members.is_empty(), "both left: {d:?}");
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_fenced_member_loses_its_partitions_without_committing_and_rejoins() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 2).await;
        produce(&cluster, "t", 2, 3).await;
        let owners = Arc::default();
        let (mut c, events) = member(config(&cluster, "g"), "c", &owners).await;
        c.subscribe(["t"]).unwrap();
        let mut got = Vec::new();
        poll_until(&mut c, &mut got, |_, n| n == 6).await;
        let first_id = c.member_id().unwrap();
        let commits_before = commit_requests(&cluster).len();

        // The next heartbeat is answered FENCED_MEMBER_EPOCH.
        cluster.wiretap.fail_group("g", ErrorCode::FencedMemberEpoch, 1);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !events.lock().unwrap().iter().any(|e| matches!(e, Event::Lost(_))) {
            assert!(Instant::now() < deadline, "no loss: {:?}", events.lock().unwrap());
            c.poll().await.unwrap();
        }
        poll_until(&mut c, &mut Vec::new(), |c, _| c.assignment().len() == 2).await;
        assert_ne!(c.member_id().unwrap(), first_id, "rejoined as a new member");
        let ev = events.lock().unwrap().clone();
        let lost = ev.iter().position(|e| matches!(e, Event::Lost(_))).unwrap();
        assert_eq!(ev[lost], Event::Lost(vec![Tp::of("t", 0), Tp::of("t", 1)]));
        assert!(matches!(ev[lost + 1], Event::Assigned(_)), "{ev:?}");
        assert!(!ev.iter().any(|e| matches!(e, Event::Revoked(_))), "lost, not revoked: {ev:?}");
        let commits = commit_requests(&cluster)[commits_before..].to_vec();
        assert!(commits.iter().all(|r| r.member_id != first_id), "the fenced member committed: {commits:?}");
        // It resumes from the committed offsets: nothing lost, nothing new.
        assert!(c.poll().await.unwrap().len() <= 6);
        c.close().await.unwrap();
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_member_cut_off_for_its_session_timeout_fences_itself() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 1).await;
        let owners = Arc::default();
        let cfg = ConsumerConfig { session_timeout: Duration::from_millis(1000), ..config(&cluster, "g") };
        let (mut c, events) = member(cfg, "c", &owners).await;
        c.subscribe(["t"]).unwrap();
        poll_until(&mut c, &mut Vec::new(), |c, _| c.assignment().len() == 1).await;

        // The coordinator stops answering: after the session timeout the
        // member drops its partition (lost, no commit) and keeps trying.
        cluster.wiretap.fail_group("g", ErrorCode::CoordinatorNotAvailable, 1_000_000);
        let started = Instant::now();
        while c.assignment().len() == 1 {
            assert!(started.elapsed() < Duration::from_secs(5), "still owns its partition");
            let polled = Instant::now();
            assert!(c.poll().await.unwrap().is_empty());
            assert!(polled.elapsed() < Duration::from_secs(1), "poll took {:?}", polled.elapsed());
        }
        assert!(started.elapsed() >= Duration::from_millis(800), "fenced after {:?}", started.elapsed());
        assert!(matches!(events.lock().unwrap().last(), Some(Event::Lost(_))));
        // While it owns nothing, poll returns within about max_wait.
        let polled = Instant::now();
        assert!(c.poll().await.unwrap().is_empty());
        assert!(polled.elapsed() < Duration::from_millis(600), "{:?}", polled.elapsed());

        cluster.wiretap.clear_faults();
        poll_until(&mut c, &mut Vec::new(), |c, _| c.assignment().len() == 1).await;
        c.close().await.unwrap();
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_commit_with_a_stale_epoch_is_retried_with_the_new_one() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 1).await;
        produce(&cluster, "t", 1, 3).await;
        let cfg = ConsumerConfig { enable_auto_commit: false, ..config(&cluster, "g") };
        let mut c = Consumer::connect(cfg).await.unwrap();
        c.subscribe(["t"]).unwrap();
        let mut got = Vec::new();
        poll_until(&mut c, &mut got, |_, n| n == 3).await;
        let id = c.member_id().unwrap();
        let old_epoch = c.member_epoch().unwrap();
        // The coordinator moves the member on (a second member joins, for
        // another topic) before the member heard of it: the answer that
        // carried its new epoch is lost on the way.
        create_topic(&cluster, "u", 1).await;
        cluster.wiretap.lose_epoch_move(&id);
        let mut other = Consumer::connect(config(&cluster, "g")).await.unwrap();
        other.subscribe(["u"]).unwrap();
        poll_until(&mut other, &mut Vec::new(), |c, _| c.assignment().len() == 1).await;
        strata_server::testkit::eventually("the epoch move was lost", Duration::from_secs(10), || async {
            cluster.wiretap.lost_answers() == 1
        })
        .await;
        assert_eq!(c.member_epoch(), Some(old_epoch), "the member has not heard of its new epoch");
        c.commit_sync().await.unwrap();
        assert_eq!(committed(&cluster, "g", "t", 0).await, Some(3));
        let epochs: Vec<i32> =
            commit_requests(&cluster).iter().filter(|r| r.member_id == id).map(|r| r.member_epoch).collect();
        // The group moved on by more than one epoch (the new member's join
        // and its assignment); the retry carries the broker's.
        assert!(
            epochs.len() == 2 && epochs[0] == old_epoch && epochs[1] > old_epoch,
            "{epochs:?}: refused once, retried with the new epoch"
        );

        // Committing a partition it does not own is refused up front.
        let err = c.commit_offsets(&[PartitionOffset::new(("t", 5), 1)]).await.unwrap_err();
        assert!(err.to_string().contains("t-5"), "{err}");
        c.close().await.unwrap();
        other.close().await.unwrap();
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn fatal_membership_errors_fail_poll() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 1).await;
        let mut c = Consumer::connect(config(&cluster, "g")).await.unwrap();
        c.subscribe_pattern("orders-(").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let err = loop {
            match c.poll().await {
                Ok(r) => assert!(r.is_empty()),
                Err(e) => break e,
            }
            assert!(Instant::now() < deadline, "no error");
        };
        assert_eq!(err.code(), Some(ErrorCode::InvalidRegularExpression), "{err}");
        assert!(err.to_string().contains("group 'g'"), "{err}");
        assert_eq!(c.poll().await.unwrap_err().code(), Some(ErrorCode::InvalidRegularExpression));
        // Close still works (nothing to leave).
        c.close().await.unwrap();
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn subscribe_and_assign_are_exclusive_and_subscribe_needs_a_group() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 1).await;
        let mut plain = Consumer::connect(ConsumerConfig::new(cluster.addrs())).await.unwrap();
        let err = plain.subscribe(["t"]).unwrap_err();
        assert!(matches!(&err, ClientError::InvalidArgument(m) if m.contains("group_id")), "{err}");

        let mut c = Consumer::connect(config(&cluster, "g")).await.unwrap();
        c.assign(vec![("t", 0)]);
        let err = c.subscribe(["t"]).unwrap_err();
        assert!(err.to_string().contains("mutually exclusive"), "{err}");
        assert!(c.subscribe(Vec::<String>::new()).is_err());
        c.assign(Vec::<strata_client::TopicPartition>::new());
        c.subscribe(["t"]).unwrap();
        c.assign(vec![("t", 0)]);
        let err = c.poll().await.unwrap_err();
        assert!(err.to_string().contains("mutually exclusive"), "{err}");
        // Unsubscribed, it can assign again.
        poll_until(&mut c, &mut Vec::new(), |c, _| c.assignment().len() == 1).await;
        c.unsubscribe().await.unwrap();
        assert!(c.assignment().is_empty() && !c.is_subscribed());
        c.assign(vec![("t", 0)]);
        c.poll().await.unwrap();
        c.close().await.unwrap();
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_dropped_consumer_stops_heartbeating_and_a_static_member_leaves_with_minus_two() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 2).await;
        let mut c = Consumer::connect(config(&cluster, "g")).await.unwrap();
        c.subscribe(["t"]).unwrap();
        poll_until(&mut c, &mut Vec::new(), |c, _| c.assignment().len() == 2).await;
        let id = c.member_id().unwrap();
        drop(c);
        let sent = |cluster: &TestCluster| heartbeats(cluster).iter().filter(|h| h.member_id == id).count();
        let before = sent(&cluster);
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(sent(&cluster), before, "heartbeats after the consumer was dropped");

        let cfg = ConsumerConfig { group_instance_id: Some("i-1".into()), ..config(&cluster, "s") };
        let mut c = Consumer::connect(cfg).await.unwrap();
        c.subscribe(["t"]).unwrap();
        poll_until(&mut c, &mut Vec::new(), |c, _| c.assignment().len() == 2).await;
        c.close().await.unwrap();
        let all = heartbeats(&cluster);
        let last = all.iter().rev().find(|h| h.group_id == "s").unwrap();
        assert_eq!((last.member_epoch, last.instance_id.as_str()), (-2, "i-1"));
        cluster.stop().await;
    })
    .await;
}

/// A `poll` dropped in the middle of a revocation (here: every poll cut
/// off at its first wait, as `timeout(d, consumer.poll())` or a `select!`
/// may do) does not lose it: a later poll finishes giving the partitions up.
#[tokio::test]
async fn a_revocation_cut_off_by_a_dropped_poll_is_finished_by_the_next() {
    bounded(async {
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 4).await;
        produce(&cluster, "t", 4, 3).await;
        let owners = Arc::default();
        let (mut a, a_events) = member(config(&cluster, "g"), "a", &owners).await;
        a.subscribe(["t"]).unwrap();
        poll_until(&mut a, &mut Vec::new(), |c, _| c.assignment().len() == 4).await;
        let (mut b, _) = member(config(&cluster, "g"), "b", &owners).await;
        b.subscribe(["t"]).unwrap();
        poll_until(&mut b, &mut Vec::new(), |c, _| c.member_id().is_some()).await;
        // a hears of the new assignment while each of its polls is dropped
        // at the first wait (the revocation's commit among them).
        let until = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < until {
            let _ = tokio::time::timeout(Duration::ZERO, a.poll()).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        poll_until(&mut a, &mut Vec::new(), |c, _| c.assignment().len() == 2).await;
        assert!(
            a_events.lock().unwrap().iter().any(|e| matches!(e, Event::Revoked(_))),
            "{:?}",
            a_events.lock().unwrap()
        );
        a.close().await.unwrap();
        b.close().await.unwrap();
        cluster.stop().await;
    })
    .await;
}
