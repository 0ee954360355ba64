//! Consumer-group membership (KIP-848 style) end to end: `strata-client`
//! consumers that `subscribe` against a real `strata-server dev`, sharing
//! partitions through the group coordinator. Checked from the outside:
//! every record is received exactly once while members join and leave
//! (revoke-before-assign: a partition never has two owners), a consumer
//! that dies without leaving loses its partitions to the others after its
//! session timeout with at-least-once delivery, a static member restarts
//! without moving the other members' partitions, a pattern subscription
//! picks up topics created later, and two `strata consume --group` processes
//! share a topic.
//!
//! One server at a time (the tests take a lock), on 127.0.0.1 only; session
//! timeouts of 3 s keep the whole file well under a minute and a half.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_client::{
    Admin, ClientError, Consumer, ConsumerConfig, GroupDescription, OffsetReset, Producer, ProducerConfig,
    ProducerRecord, RebalanceListener, SeekTo,
};
use strata_tests::local_cluster::LocalCluster;
use strata_tests::{binary, ServerProcess};
use tokio::task::JoinHandle;

const SESSION_TIMEOUT: Duration = Duration::from_secs(3);
/// Bounds every wait in this file.
const WAIT: Duration = Duration::from_secs(30);

/// One server at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Env {
    _lock: tokio::sync::MutexGuard<'static, ()>,
    server: ServerProcess,
    _dir: tempfile::TempDir,
}

impl Env {
    async fn start() -> Env {
        let lock = ONE_AT_A_TIME.lock().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let server = ServerProcess::dev(&dir.path().join("data"));
        Env { _lock: lock, server, _dir: dir }
    }

    fn bootstrap(&self) -> String {
        self.server.bootstrap()
    }

    async fn admin(&self) -> Admin {
        Admin::connect([self.bootstrap()]).await.expect("admin")
    }
}

type Tp = strata_client::TopicPartition;

/// What every member of a test shares: who owns each partition (from the
/// listener callbacks), which members died, ownership violations, and the
/// records received.
#[derive(Default)]
struct Watch {
    owners: Mutex<BTreeMap<Tp, String>>,
    dead: Mutex<HashSet<String>>,
    violations: Mutex<Vec<String>>,
    /// (topic, partition, offset, member).
    seen: Mutex<Vec<(String, u32, u64, String)>>,
}

impl Watch {
    fn owned_by_live(&self) -> BTreeMap<Tp, String> {
        let dead = self.dead.lock().unwrap().clone();
        self.owners
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, m)| !dead.contains(*m))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn owned_by(&self, member: &str) -> BTreeSet<Tp> {
        self.owners.lock().unwrap().iter().filter(|(_, m)| *m == member).map(|(tp, _)| tp.clone()).collect()
    }

    /// (records received, distinct records).
    fn counts(&self) -> (usize, usize) {
        let seen = self.seen.lock().unwrap();
        let distinct: HashSet<(&String, u32, u64)> = seen.iter().map(|(t, p, o, _)| (t, *p, *o)).collect();
        (seen.len(), distinct.len())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Assigned(Vec<Tp>),
    Revoked(Vec<Tp>),
    Lost(Vec<Tp>),
}

struct Recorder {
    name: String,
    watch: Arc<Watch>,
    events: Arc<Mutex<Vec<Event>>>,
}

impl RebalanceListener for Recorder {
    fn on_partitions_assigned(&mut self, partitions: &[Tp]) {
        let mut owners = self.watch.owners.lock().unwrap();
        let dead = self.watch.dead.lock().unwrap();
        for tp in partitions {
            match owners.get(tp) {
                Some(other) if !dead.contains(other) => self
                    .watch
                    .violations
                    .lock()
                    .unwrap()
                    .push(format!("{tp:?} assigned to {} while {other} owns it", self.name)),
                _ => {
                    owners.insert(tp.clone(), self.name.clone());
                }
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
        let mut owners = self.watch.owners.lock().unwrap();
        for tp in partitions {
            if owners.get(tp) == Some(&self.name) {
                owners.remove(tp);
            } else {
                let msg = format!("{} gave up {tp:?} owned by {:?}", self.name, owners.get(tp));
                self.watch.violations.lock().unwrap().push(msg);
            }
        }
    }
}

fn consumer_config(bootstrap: &str, group: &str) -> ConsumerConfig {
    ConsumerConfig {
        max_wait: Duration::from_millis(200),
        group_id: Some(group.to_owned()),
        auto_offset_reset: OffsetReset::Earliest,
        session_timeout: SESSION_TIMEOUT,
        auto_commit_interval: Duration::from_secs(1),
        ..ConsumerConfig::new([bootstrap])
    }
}

/// A consumer running in its own task until `stop` (then it closes), or
/// until aborted (a crash: dropped without leaving).
struct Member {
    name: String,
    stop: Arc<AtomicBool>,
    task: JoinHandle<Result<(), ClientError>>,
    events: Arc<Mutex<Vec<Event>>>,
    member_id: Arc<Mutex<Option<String>>>,
}

fn spawn_member(name: &str, config: ConsumerConfig, topic: &str, watch: &Arc<Watch>) -> Member {
    let stop = Arc::new(AtomicBool::new(false));
    let events = Arc::new(Mutex::new(Vec::new()));
    let member_id = Arc::new(Mutex::new(None));
    let recorder = Recorder { name: name.to_owned(), watch: watch.clone(), events: events.clone() };
    let (task_stop, task_watch, task_id, task_name) = (stop.clone(), watch.clone(), member_id.clone(), name.to_owned());
    let topic = topic.to_owned();
    let task = tokio::spawn(async move {
        let name = task_name.clone();
        let result = async move {
            let mut c = Consumer::connect(config).await?;
            c.set_rebalance_listener(Box::new(recorder));
            c.subscribe([topic.as_str()])?;
            while !task_stop.load(Ordering::SeqCst) {
                let records = match c.poll().await {
                    Ok(r) => r,
                    // A leader or the coordinator moving: poll again.
                    Err(e) if e.is_retriable() => {
                        eprintln!("member {task_name}: retrying after: {e}");
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                *task_id.lock().unwrap() = c.member_id();
                let mut seen = task_watch.seen.lock().unwrap();
                seen.extend(records.into_iter().map(|r| (r.topic, r.partition, r.offset, task_name.clone())));
            }
            c.close().await
        }
        .await;
        if let Err(e) = &result {
            eprintln!("member {name} failed: {e}");
        }
        result
    });
    Member { name: name.to_owned(), stop, task, events, member_id }
}

impl Member {
    async fn close(self) {
        self.stop.store(true, Ordering::SeqCst);
        let result = tokio::time::timeout(WAIT, self.task).await.expect("member did not stop");
        result.expect("member task").unwrap_or_else(|e| panic!("member {} failed: {e}", self.name));
    }

    /// A crash: the task (and its consumer, heartbeats included) is
    /// dropped without leaving the group.
    fn kill(self, watch: &Watch) {
        watch.dead.lock().unwrap().insert(self.name.clone());
        self.task.abort();
    }
}

/// Produces `per_partition` records to each of `partitions` of `topic`.
async fn produce(bootstrap: &str, topic: &str, partitions: u32, per_partition: u32) {
    let producer = Producer::connect(ProducerConfig::new([bootstrap])).await.expect("producer");
    let mut pending = Vec::new();
    for i in 0..per_partition {
        for p in 0..partitions {
            let record = ProducerRecord::new(topic, format!("{p}-{i}")).with_partition(p);
            pending.push(producer.send(record).await.expect("send"));
        }
    }
    for d in pending {
        d.await.expect("delivered");
    }
    producer.close().await;
}

/// Produces to `topic` round-robin over its partitions, about `rate`
/// records/s, until `stop`; returns how many were acknowledged (a send that
/// fails, e.g. while a leader moves, is not retried).
fn produce_steadily(
    bootstrap: &str,
    topic: &str,
    partitions: u32,
    rate: u64,
    stop: Arc<AtomicBool>,
) -> JoinHandle<u64> {
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    tokio::spawn(async move {
        let producer = Producer::connect(ProducerConfig::new([bootstrap])).await.expect("producer");
        let (mut n, mut acked): (u64, u64) = (0, 0);
        let started = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            let record =
                ProducerRecord::new(topic.as_str(), n.to_string()).with_partition((n % u64::from(partitions)) as u32);
            if let Err(e) = async { producer.send(record).await?.await }.await {
                eprintln!("send failed: {e}");
            } else {
                acked += 1;
            }
            n += 1;
            let due = started + Duration::from_millis(n * 1000 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        producer.close().await;
        acked
    })
}

async fn describe(admin: &Admin, group: &str) -> Option<GroupDescription> {
    admin.describe_groups(&[group.to_owned()]).await.ok()?.into_iter().next()
}

/// Waits until `f` holds, polling every 50 ms; panics naming `what` after
/// `WAIT`. Returns how long it took.
async fn wait_for(what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < WAIT, "{what}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

/// Waits until the group is stable with `members` members each holding
/// `per_member` partitions, and returns the description.
async fn wait_stable(admin: &Admin, group: &str, members: usize, per_member: usize) -> GroupDescription {
    let started = Instant::now();
    loop {
        if let Some(d) = describe(admin, group).await {
            let ok = d.members.len() == members
                && d.members.iter().all(|m| {
                    let n: usize = m.assignment.iter().map(|(_, ps)| ps.len()).sum();
                    n == per_member && m.assignment == m.target_assignment
                });
            if ok {
                return d;
            }
            assert!(started.elapsed() < WAIT, "group {group} not stable: {d:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every offset below each partition's end was received.
async fn assert_nothing_skipped(admin: &Admin, watch: &Watch, topic: &str, partitions: u32) -> u64 {
    let ends = admin
        .list_offsets(&(0..partitions).map(|p| (Tp::of(topic, p), SeekTo::End)).collect::<Vec<_>>())
        .await
        .expect("ends");
    let total: u64 = ends.iter().sum();
    wait_for("every record received", || watch.counts().1 as u64 >= total).await;
    let seen = watch.seen.lock().unwrap();
    for (p, end) in ends.iter().enumerate() {
        let got: BTreeSet<u64> = seen.iter().filter(|(t, q, _, _)| t == topic && *q == p as u32).map(|s| s.2).collect();
        let want: BTreeSet<u64> = (0..*end).collect();
        assert_eq!(got, want, "partition {p}: records skipped or invented");
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn members_share_partitions_and_each_record_is_received_once() {
    let env = Env::start().await;
    let b = env.bootstrap();
    let admin = env.admin().await;
    admin.create_topic("shared", 6, 1, &[]).await.expect("create");
    let watch = Arc::new(Watch::default());
    let started = Instant::now();

    // Records arrive while members join one after the other: every join
    // moves partitions away from members that are reading them.
    let producing = tokio::spawn({
        let b = b.clone();
        async move { produce(&b, "shared", 6, 300).await }
    });
    let mut members = vec![spawn_member("m1", consumer_config(&b, "share"), "shared", &watch)];
    tokio::time::sleep(Duration::from_millis(400)).await;
    members.push(spawn_member("m2", consumer_config(&b, "share"), "shared", &watch));
    tokio::time::sleep(Duration::from_millis(400)).await;
    members.push(spawn_member("m3", consumer_config(&b, "share"), "shared", &watch));
    producing.await.expect("producer");

    let d = wait_stable(&admin, "share", 3, 2).await;
    assert_eq!(d.assignor, "uniform");
    assert_nothing_skipped(&admin, &watch, "shared", 6).await;
    // Each member's partitions as the group describes them are the ones its
    // callbacks say it owns.
    for m in &members {
        let id = m.member_id.lock().unwrap().clone().expect("member id");
        let described = d.members.iter().find(|x| x.member_id == id).expect("described member");
        let owned: BTreeSet<Tp> =
            described.assignment.iter().flat_map(|(t, ps)| ps.iter().map(move |p| Tp::of(t.clone(), *p))).collect();
        assert_eq!(owned, watch.owned_by(&m.name), "member {}", m.name);
        assert!(m.events.lock().unwrap().iter().any(|e| matches!(e, Event::Assigned(_))));
    }
    for m in members {
        m.close().await;
    }
    let (received, distinct) = watch.counts();
    assert_eq!((received, distinct), (1800, 1800), "every record exactly once");
    assert!(watch.violations.lock().unwrap().is_empty(), "{:?}", watch.violations.lock().unwrap());
    assert!(watch.owners.lock().unwrap().is_empty(), "{:?}", watch.owners.lock().unwrap());
    let d = describe(&admin, "share").await.expect("described");
    assert!(d.members.is_empty() && d.state == "empty", "{d:?}");
    eprintln!("exactly-once with 3 joining members: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_member_loses_its_partitions_after_the_session_timeout() {
    let env = Env::start().await;
    let b = env.bootstrap();
    let admin = env.admin().await;
    admin.create_topic("deaths", 6, 1, &[]).await.expect("create");
    let watch = Arc::new(Watch::default());
    let stop_producing = Arc::new(AtomicBool::new(false));
    let producing = produce_steadily(&b, "deaths", 6, 200, stop_producing.clone());
    let next = AtomicU64::new(0);
    let spawn = |watch: &Arc<Watch>| {
        let name = format!("m{}", next.fetch_add(1, Ordering::SeqCst));
        spawn_member(&name, consumer_config(&b, "deaths"), "deaths", watch)
    };
    let mut members: Vec<Member> = (0..3).map(|_| spawn(&watch)).collect();
    let producing_since = Instant::now();

    let mut times = Vec::new();
    let mut redelivered = Vec::new();
    for round in 0..3 {
        wait_stable(&admin, "deaths", 3, 2).await;
        wait_for("callbacks caught up", || watch.owned_by_live().len() == 6).await;
        // Steady state first (a rebalance just committed everything moved):
        // the kill lands anywhere in the victim's auto-commit cycle.
        tokio::time::sleep(Duration::from_millis(1300)).await;
        // Duplicates so far.
        let (received, distinct) = watch.counts();
        let dups_before = received - distinct;
        let victim = members.remove(round % members.len());
        let victim_partitions = watch.owned_by(&victim.name);
        assert_eq!(victim_partitions.len(), 2);
        let died = Instant::now();
        victim.kill(&watch);
        wait_for("reassignment after a death", || watch.owned_by_live().len() == 6).await;
        let took = died.elapsed();
        // The session runs from the victim's last heartbeat, up to one
        // heartbeat interval (a third of the session) before it died.
        let earliest = SESSION_TIMEOUT - SESSION_TIMEOUT / 3 - Duration::from_millis(100);
        assert!(took >= earliest, "moved after {took:?}: before the session ran out");
        times.push(took);
        // The new owners start from the dead member's last commit: what it
        // received after that is received again.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (received, distinct) = watch.counts();
        let dups = received - distinct - dups_before;
        redelivered.push(dups);
        eprintln!(
            "death {round}: partitions {victim_partitions:?} reassigned after {took:?}; {dups} record(s) redelivered"
        );
        members.push(spawn(&watch));
    }
    stop_producing.store(true, Ordering::SeqCst);
    let produced = producing.await.expect("producer");
    let rate = produced as f64 / producing_since.elapsed().as_secs_f64();
    let total = assert_nothing_skipped(&admin, &watch, "deaths", 6).await;
    assert_eq!(total, produced);
    for m in members {
        m.close().await;
    }
    assert!(watch.violations.lock().unwrap().is_empty(), "{:?}", watch.violations.lock().unwrap());
    times.sort();
    let mut sorted = redelivered.clone();
    sorted.sort();
    eprintln!(
        "dead member -> full reassignment: median {:?} (all {times:?}); redelivered records: median {} (all {redelivered:?}); \
         session timeout {SESSION_TIMEOUT:?}, auto-commit every 1 s, {rate:.0} records/s produced",
        times[1], sorted[1]
    );
    // At-least-once: duplicates only from the uncommitted window: what a
    // dead member's 2 of 6 partitions receive between auto-commits (1 s) plus
    // a poll (200 ms) and some slack.
    let window = (rate * 2.0 / 6.0 * 1.7).ceil() as usize + 5;
    for d in &redelivered {
        assert!(*d <= window, "{d} records redelivered: more than the uncommitted window ({window})");
    }
    assert!(times[2] < SESSION_TIMEOUT + Duration::from_secs(4), "{times:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_static_member_restarts_without_moving_the_others() {
    let env = Env::start().await;
    let b = env.bootstrap();
    let admin = env.admin().await;
    admin.create_topic("static", 6, 1, &[]).await.expect("create");
    produce(&b, "static", 6, 10).await;
    let watch = Arc::new(Watch::default());
    let static_config = || ConsumerConfig { group_instance_id: Some("inst-1".into()), ..consumer_config(&b, "static") };
    let s1 = spawn_member("s1", static_config(), "static", &watch);
    let others = [
        spawn_member("d1", consumer_config(&b, "static"), "static", &watch),
        spawn_member("d2", consumer_config(&b, "static"), "static", &watch),
    ];
    let before = wait_stable(&admin, "static", 3, 2).await;
    wait_for("all 60 records", || watch.counts().1 == 60).await;
    let s1_partitions = watch.owned_by("s1");
    let other_events: Vec<usize> = others.iter().map(|m| m.events.lock().unwrap().len()).collect();
    let epochs = |d: &GroupDescription| -> BTreeMap<String, i32> {
        d.members.iter().filter(|m| m.instance_id.is_none()).map(|m| (m.member_id.clone(), m.member_epoch)).collect()
    };

    // s1 closes (commits, leaves with -2) and a new process with the same
    // instance id starts well within the session timeout.
    s1.close().await;
    let d = describe(&admin, "static").await.expect("described");
    let reserved: usize = d
        .members
        .iter()
        .filter(|m| m.instance_id.is_none())
        .map(|m| m.assignment.iter().map(|(_, p)| p.len()).sum::<usize>())
        .sum();
    assert_eq!(reserved, 4, "the others kept their partitions while s1 was away: {d:?}");
    produce(&b, "static", 6, 10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let restarted = Instant::now();
    let s1b = spawn_member("s1b", static_config(), "static", &watch);
    wait_for("s1b has s1's partitions", || watch.owned_by("s1b") == s1_partitions).await;
    eprintln!("static member back on its {} partitions after {:?}", s1_partitions.len(), restarted.elapsed());
    let after = wait_stable(&admin, "static", 3, 2).await;
    wait_for("all 120 records", || watch.counts().1 == 120).await;

    // No rebalance: the others got no callback and kept their epochs.
    let now: Vec<usize> = others.iter().map(|m| m.events.lock().unwrap().len()).collect();
    assert_eq!(now, other_events, "the other members saw a rebalance");
    assert_eq!(epochs(&after), epochs(&before), "the other members' epochs moved");
    let s1b_member = after.members.iter().find(|m| m.instance_id.as_deref() == Some("inst-1")).expect("static member");
    assert_eq!(s1b_member.instance_id.as_deref(), Some("inst-1"));
    // It resumed from s1's commits: nothing twice.
    let (received, distinct) = watch.counts();
    assert_eq!(received, distinct, "records received twice across the restart");
    s1b.close().await;
    for m in others {
        m.close().await;
    }
    assert!(watch.violations.lock().unwrap().is_empty(), "{:?}", watch.violations.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pattern_subscription_picks_up_new_topics() {
    let env = Env::start().await;
    let b = env.bootstrap();
    let admin = env.admin().await;
    admin.create_topic("orders-1", 2, 1, &[]).await.expect("create");
    admin.create_topic("other", 2, 1, &[]).await.expect("create");
    let mut c = Consumer::connect(consumer_config(&b, "pattern")).await.expect("consumer");
    c.subscribe_pattern("orders-.*").expect("subscribe");
    let started = Instant::now();
    while c.assignment().len() < 2 {
        assert!(started.elapsed() < WAIT, "no assignment: {:?}", c.assignment());
        c.poll().await.expect("poll");
    }
    assert!(c.assignment().iter().all(|tp| tp.topic == "orders-1"), "{:?}", c.assignment());

    admin.create_topic("orders-2", 3, 1, &[]).await.expect("create");
    let created = Instant::now();
    produce(&b, "orders-2", 3, 5).await;
    let mut got = 0;
    while c.assignment().len() < 5 || got < 15 {
        assert!(created.elapsed() < Duration::from_secs(10), "orders-2 not assigned in time: {:?}", c.assignment());
        let records = c.poll().await.expect("poll");
        assert!(records.iter().all(|r| r.topic == "orders-2"), "unexpected records");
        got += records.len();
    }
    eprintln!("new matching topic assigned and read within {:?}", created.elapsed());
    assert_eq!(got, 15);
    assert!(c.assignment().iter().all(|tp| tp.topic.starts_with("orders-")));
    let d = describe(&admin, "pattern").await.expect("described");
    assert_eq!(d.members[0].subscription, "/orders-.*/");

    // A regular expression the coordinator cannot compile is fatal.
    let mut bad = Consumer::connect(consumer_config(&b, "pattern-bad")).await.expect("consumer");
    bad.subscribe_pattern("orders-(").expect("subscribe");
    let started = Instant::now();
    let err = loop {
        match bad.poll().await {
            Ok(_) => assert!(started.elapsed() < WAIT, "no error for a bad pattern"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.code(), Some(strata_client::ErrorCode::InvalidRegularExpression), "{err}");
    bad.close().await.expect("close");
    c.close().await.expect("close");
}

/// `strata consume cli --group G --count N --from-beginning --format %p:%o`
/// as a child process. (--from-beginning: a partition whose start is looked
/// up after records were produced must not start at the end.)
fn cli_consumer(bootstrap: &str, group: &str, count: u32) -> Child {
    Command::new(binary("strata"))
        .args(["--bootstrap", bootstrap, "consume", "cli", "--group", group, "--count", &count.to_string()])
        .args(["--from-beginning", "--format", "%p:%o\\n"])
        .env_remove("STRATA_BOOTSTRAP")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strata")
}

/// Child processes, SIGKILLed if still running when dropped (a failed test
/// leaves nothing behind).
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_cli_consumers_share_a_topic() {
    let env = Env::start().await;
    let b = env.bootstrap();
    let admin = env.admin().await;
    admin.create_topic("cli", 4, 1, &[]).await.expect("create");
    let mut children = Children(vec![cli_consumer(&b, "cli-group", 40), cli_consumer(&b, "cli-group", 40)]);
    // Both joined and hold partitions before anything is produced.
    wait_stable(&admin, "cli-group", 2, 2).await;
    let d = describe(&admin, "cli-group").await.expect("described");
    assert!(d.members.iter().all(|m| m.client_id == "strata-cli"), "{d:?}");
    produce(&b, "cli", 4, 20).await;

    let started = Instant::now();
    loop {
        let running = children.0.iter_mut().map(|c| c.try_wait()).filter(|w| matches!(w, Ok(None))).count();
        if running == 0 {
            break;
        }
        assert!(started.elapsed() < WAIT, "{running} strata consume process(es) did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let outputs: Vec<std::process::Output> =
        std::mem::take(&mut children.0).into_iter().map(|c| c.wait_with_output().expect("output")).collect();
    let mut all: Vec<String> = Vec::new();
    for out in &outputs {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.is_empty(), "{:?} {stderr}", out.status);
        let lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
        assert_eq!(lines.len(), 40, "{lines:?}");
        all.extend(lines);
    }
    let distinct: BTreeSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), 80, "every record printed once between the two");
    // Each printed its own partitions (2 and 2, 20 records each).
    for out in &outputs {
        let partitions: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split(':').next().map(str::to_owned))
            .collect();
        assert_eq!(partitions.len(), 2, "{partitions:?}");
    }
    // Both left, after committing what they printed.
    let d = describe(&admin, "cli-group").await.expect("described");
    assert!(d.members.is_empty(), "{d:?}");
    let committed: Vec<Option<u64>> = d.offsets.iter().map(|c| c.offset).collect();
    assert_eq!(committed, vec![Some(20); 4], "{d:?}");
}

/// `strata consume T --group G` without --count or --follow reads its share
/// to the end and exits. Joining a group whose other member holds every
/// partition, its first assignment is empty (the partitions are released to
/// it only after the other member gave them up): it must wait for its share
/// instead of exiting with nothing read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cli_reading_to_the_end_waits_for_its_share() {
    let env = Env::start().await;
    let b = env.bootstrap();
    let admin = env.admin().await;
    admin.create_topic("cli", 4, 1, &[]).await.expect("create");
    produce(&b, "cli", 4, 10).await;
    let watch = Arc::new(Watch::default());
    // The holder reads but commits nothing, so the CLI's share starts at the
    // beginning.
    let config = ConsumerConfig { enable_auto_commit: false, ..consumer_config(&b, "end-group") };
    let holder = spawn_member("holder", config, "cli", &watch);
    wait_stable(&admin, "end-group", 1, 4).await;
    let child = Command::new(binary("strata"))
        .args(["--bootstrap", &b, "consume", "cli", "--group", "end-group", "--from-beginning", "--format", "%p:%o\\n"])
        .env_remove("STRATA_BOOTSTRAP")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strata");
    let mut children = Children(vec![child]);
    let started = Instant::now();
    while matches!(children.0[0].try_wait(), Ok(None)) {
        assert!(started.elapsed() < WAIT, "strata consume did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = children.0.remove(0).wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "{:?} {stderr}", out.status);
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(lines, 20, "its share (2 of 4 partitions, 10 records each) read to the end");
    holder.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn members_carry_on_when_the_coordinator_is_killed() {
    let _lock = ONE_AT_A_TIME.lock().await;
    let cluster =
        tokio::task::spawn_blocking(|| LocalCluster::up_with_env(3, &[("STRATA_OFFSETS_TOPIC_PARTITIONS", "3")]))
            .await
            .expect("cluster");
    let b = cluster.bootstrap_all();
    let admin = Admin::connect([b.clone()]).await.expect("admin");
    admin.create_topic("fo", 6, 3, &[]).await.expect("create");
    let group = "fo-group";
    let coordinator = admin.find_coordinator(group).await.expect("coordinator").node_id;
    // Every replica of the offsets topic in sync, so the coordinator's
    // partition fails over without losing anything.
    wait_in_sync(&admin, "__consumer_offsets").await;
    wait_in_sync(&admin, "fo").await;

    let watch = Arc::new(Watch::default());
    let stop_producing = Arc::new(AtomicBool::new(false));
    let producing = produce_steadily(&b, "fo", 6, 100, stop_producing.clone());
    // A session timeout longer than a failover (the controller fences the
    // dead broker after 3 s), so members are adopted, not fenced.
    let config = || ConsumerConfig { session_timeout: Duration::from_secs(8), ..consumer_config(&b, group) };
    let members = [spawn_member("f1", config(), "fo", &watch), spawn_member("f2", config(), "fo", &watch)];
    wait_stable(&admin, group, 2, 3).await;
    let events_before: Vec<usize> = members.iter().map(|m| m.events.lock().unwrap().len()).collect();

    let killed = Instant::now();
    tokio::task::block_in_place(|| cluster.kill(coordinator as usize));
    let (_, distinct_at_kill) = watch.counts();
    // Reading goes on: records produced after the kill arrive.
    wait_for("records after the coordinator died", || watch.counts().1 >= distinct_at_kill + 300).await;
    let new_coordinator = admin.find_coordinator(group).await.expect("new coordinator").node_id;
    assert_ne!(new_coordinator, coordinator);
    let d = wait_stable(&admin, group, 2, 3).await;
    eprintln!(
        "coordinator {coordinator} killed: group stable at coordinator {} after {:?}",
        d.coordinator,
        killed.elapsed()
    );
    stop_producing.store(true, Ordering::SeqCst);
    producing.await.expect("producer");
    assert_nothing_skipped(&admin, &watch, "fo", 6).await;
    let lost =
        members.iter().flat_map(|m| m.events.lock().unwrap().clone()).filter(|e| matches!(e, Event::Lost(_))).count();
    let moved: Vec<usize> = members.iter().map(|m| m.events.lock().unwrap().len()).collect();
    let (received, distinct) = watch.counts();
    eprintln!(
        "after the coordinator kill: {} redelivered record(s), {lost} partition loss(es), callbacks {events_before:?} -> {moved:?}",
        received - distinct
    );
    assert_eq!(lost, 0, "members were fenced instead of adopted");
    for m in members {
        m.close().await;
    }
    assert!(watch.violations.lock().unwrap().is_empty(), "{:?}", watch.violations.lock().unwrap());
}

/// Waits until every partition of `topic` has all its replicas in sync.
async fn wait_in_sync(admin: &Admin, topic: &str) {
    let started = Instant::now();
    loop {
        if let Ok(t) = admin.describe_topics(&[topic.to_owned()]).await {
            if t.iter()
                .all(|t| !t.partitions.is_empty() && t.partitions.iter().all(|p| p.isr.len() == p.replicas.len()))
            {
                return;
            }
        }
        assert!(started.elapsed() < WAIT, "{topic} not in sync");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Scale: a hundred members in one group (the performance issue's "100
/// consumer-group members"), each with its own connections and heartbeats,
/// converge on one partition each while records arrive, and every record is
/// received exactly once. How long convergence took is printed (a figure,
/// not a check).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_members_converge_and_each_record_is_received_once() {
    const MEMBERS: u32 = 100;
    let env = Env::start().await;
    let b = env.bootstrap();
    let admin = env.admin().await;
    admin.create_topic("wide", MEMBERS, 1, &[]).await.expect("create");
    let watch = Arc::new(Watch::default());
    let started = Instant::now();
    let producing = tokio::spawn({
        let b = b.clone();
        async move { produce(&b, "wide", MEMBERS, 20).await }
    });
    let mut members = Vec::new();
    for i in 0..MEMBERS {
        members.push(spawn_member(&format!("m{i}"), consumer_config(&b, "hundred"), "wide", &watch));
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    producing.await.expect("producer");
    wait_stable(&admin, "hundred", MEMBERS as usize, 1).await;
    let converged = started.elapsed();
    assert_nothing_skipped(&admin, &watch, "wide", MEMBERS).await;
    for m in members {
        m.close().await;
    }
    let (received, distinct) = watch.counts();
    assert_eq!((received, distinct), (2000, 2000), "every record exactly once");
    assert!(watch.violations.lock().unwrap().is_empty(), "{:?}", watch.violations.lock().unwrap());
    let d = describe(&admin, "hundred").await.expect("described");
    assert!(d.members.is_empty() && d.state == "empty", "{d:?}");
    eprintln!("100 members converged in {converged:?}, done in {:?}", started.elapsed());
}
