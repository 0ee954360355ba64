//! Tests of [`super::membership::Membership`]: joins, incremental moves
//! (revoke before assign), leaves, evictions, static members, fencing,
//! pattern subscriptions, adoption by a new coordinator, and a seeded
//! simulation of clients that checks no partition ever has two owners.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::assignor::TopicPartitionSet;
use super::member;
use super::membership::{epoch, HeartbeatContext, HeartbeatOutcome, MemberHeartbeat, Membership};
use crate::error::ErrorKind;

const SESSION_MS: u64 = 3000;

fn topics(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
    list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
}

/// A client's view: what it owns, its id and epoch.
#[derive(Debug, Clone, Default)]
struct Client {
    id: String,
    epoch: i32,
    owned: TopicPartitionSet,
    instance: String,
    topics: Vec<String>,
    pattern: String,
}

impl Client {
    fn new(topics: &[&str]) -> Client {
        Client { topics: topics.iter().map(|t| t.to_string()).collect(), ..Client::default() }
    }

    fn request(&self, group_epoch_override: Option<i32>) -> MemberHeartbeat {
        let given = |s: &str| (!s.is_empty()).then(|| s.to_string());
        MemberHeartbeat {
            member_id: self.id.clone(),
            member_epoch: group_epoch_override.unwrap_or(self.epoch),
            instance_id: given(&self.instance),
            client_id: "test".into(),
            session_timeout: Some(Duration::from_millis(SESSION_MS)),
            rebalance_timeout: Some(Duration::from_millis(5000)),
            subscribed_topic_names: self.topics.clone(),
            subscribed_topic_regex: given(&self.pattern),
            server_assignor: None,
            owned_partitions: self.owned.clone(),
        }
    }
}

struct World {
    group: Membership,
    topics: BTreeMap<String, u32>,
    now: Instant,
    next_id: u32,
    adoptable: bool,
}

impl World {
    fn new(t: &[(&str, u32)]) -> World {
        World { group: Membership::default(), topics: topics(t), now: Instant::now(), next_id: 0, adoptable: false }
    }

    fn send(&mut self, req: &MemberHeartbeat) -> Result<HeartbeatOutcome, ErrorKind> {
        self.next_id += 1;
        let ctx = HeartbeatContext {
            now: self.now,
            topics: &self.topics,
            adoptable: self.adoptable,
            client_host: "127.0.0.1".into(),
            new_member_id: format!("m{}", self.next_id),
        };
        self.group.heartbeat("g", req, ctx).map_err(|e| e.kind())
    }

    /// A heartbeat from an honest client that applies the answer at once:
    /// gives up what it lost, takes what it was given.
    fn beat(&mut self, c: &mut Client) -> HeartbeatOutcome {
        let o = self
            .send(&c.request(None))
            .unwrap_or_else(|e| panic!("heartbeat of {:?} failed: {e:?}\n{:#?}", c.id, self.group));
        c.id = o.member_id.clone();
        c.epoch = o.member_epoch;
        c.owned = o.assignment.clone();
        o
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    fn held_by(&self, c: &Client) -> usize {
        self.group.member(&c.id).map_or(0, |m| member::count(&m.assigned) + member::count(&m.revoking))
    }
}

fn count(c: &Client) -> usize {
    member::count(&c.owned)
}

fn settle(w: &mut World, clients: &mut [Client]) {
    for _ in 0..6 {
        for c in clients.iter_mut() {
            w.beat(c);
        }
    }
}

#[test]
fn three_members_share_six_partitions_evenly() {
    let mut w = World::new(&[("t", 6)]);
    let mut cs = vec![Client::new(&["t"]), Client::new(&["t"]), Client::new(&["t"])];
    settle(&mut w, &mut cs);
    assert_eq!(cs.iter().map(count).collect::<Vec<_>>(), [2, 2, 2]);
    assert!(w.group.is_stable());
    let all: BTreeSet<(String, u32)> =
        cs.iter().flat_map(|c| member::iter(&c.owned).map(|(t, p)| (t.to_string(), p)).collect::<Vec<_>>()).collect();
    assert_eq!(all.len(), 6);
    assert!(cs.iter().all(|c| c.epoch == w.group.assignment_epoch));
}

#[test]
fn a_partition_moves_only_after_its_owner_gave_it_up() {
    let mut w = World::new(&[("t", 4)]);
    let mut a = Client::new(&["t"]);
    w.beat(&mut a);
    assert_eq!(count(&a), 4);
    let epoch_a = a.epoch;
    // B joins: the target splits 2/2, but A still owns all four.
    let mut b = Client::new(&["t"]);
    let ob = w.beat(&mut b);
    assert!(ob.assignment.is_empty(), "B must wait until A revoked: {:?}", ob.assignment);
    assert!(ob.heartbeat_interval <= Duration::from_millis(250), "a waiting member heartbeats fast");
    // A's next heartbeat (still reporting all four) is told to keep two.
    let req = a.request(None);
    let oa = w.send(&req).unwrap();
    assert_eq!(member::count(&oa.assignment), 2);
    assert_eq!(oa.member_epoch, epoch_a, "the epoch waits for the revocation");
    // B asks again before A reported: still nothing.
    assert!(w.beat(&mut b).assignment.is_empty());
    // A gives up the two, reports it, moves to the new epoch.
    a.owned = oa.assignment.clone();
    let oa = w.beat(&mut a);
    assert!(oa.member_epoch > epoch_a);
    // Now B gets them.
    assert_eq!(member::count(&w.beat(&mut b).assignment), 2);
    assert!(w.group.is_stable());
}

#[test]
fn leaving_and_session_expiry_hand_partitions_to_the_others() {
    let mut w = World::new(&[("t", 6)]);
    let mut cs = vec![Client::new(&["t"]), Client::new(&["t"]), Client::new(&["t"])];
    settle(&mut w, &mut cs);
    // A clean leave: the partitions move at the others' next heartbeats.
    let gone = cs.remove(0);
    w.send(&MemberHeartbeat { member_epoch: epoch::LEAVE, ..gone.request(None) }).unwrap();
    settle(&mut w, &mut cs);
    assert_eq!(cs.iter().map(count).collect::<Vec<_>>(), [3, 3]);
    // A silent member is evicted after its session timeout.
    let dead = cs.remove(1);
    w.advance(Duration::from_millis(SESSION_MS / 2));
    w.beat(&mut cs[0]);
    assert_eq!(w.held_by(&dead), 3, "not evicted before the session ends");
    w.advance(Duration::from_millis(SESSION_MS));
    w.beat(&mut cs[0]); // kept alive; the dead one expires here
    assert!(w.group.member(&dead.id).is_none());
    settle(&mut w, &mut cs);
    assert_eq!(count(&cs[0]), 6);
    // The evicted member is fenced, and a background expiry does the same
    // when nobody heartbeats.
    assert_eq!(w.send(&dead.request(None)).unwrap_err(), ErrorKind::UnknownMemberId);
    w.advance(Duration::from_secs(10));
    let expired = w.group.expire(w.now, &w.topics.clone());
    assert_eq!(expired.len(), 1);
    assert!(w.group.is_empty());
}

#[test]
fn a_static_member_gets_its_partitions_back_without_a_rebalance() {
    let mut w = World::new(&[("t", 6)]);
    let mut s = Client { instance: "host-1".into(), ..Client::new(&["t"]) };
    let mut cs = vec![Client::new(&["t"]), Client::new(&["t"])];
    for _ in 0..6 {
        w.beat(&mut s);
        for c in cs.iter_mut() {
            w.beat(c);
        }
    }
    let mine = s.owned.clone();
    let group_epoch = w.group.group_epoch;
    let others: Vec<_> = cs.iter().map(|c| (c.epoch, c.owned.clone())).collect();
    // Static leave: partitions stay reserved.
    w.send(&MemberHeartbeat { member_epoch: epoch::LEAVE_STATIC, ..s.request(None) }).unwrap();
    w.advance(Duration::from_millis(1000));
    for c in cs.iter_mut() {
        w.beat(c);
    }
    // Restart with the same instance id: a new member id, the same partitions.
    let mut s2 = Client { instance: "host-1".into(), ..Client::new(&["t"]) };
    w.beat(&mut s2);
    assert_ne!(s2.id, s.id);
    assert_eq!(s2.owned, mine);
    for c in cs.iter_mut() {
        w.beat(c);
    }
    assert_eq!(w.group.group_epoch, group_epoch, "no rebalance");
    assert_eq!(cs.iter().map(|c| (c.epoch, c.owned.clone())).collect::<Vec<_>>(), others);
    // The old incarnation is fenced.
    assert_eq!(w.send(&s.request(None)).unwrap_err(), ErrorKind::UnknownMemberId);
    // A static member that stays away past its session is evicted.
    w.send(&MemberHeartbeat { member_epoch: epoch::LEAVE_STATIC, ..s2.request(None) }).unwrap();
    for _ in 0..3 {
        w.advance(Duration::from_millis(SESSION_MS / 2));
        settle(&mut w, &mut cs);
    }
    assert!(w.group.member(&s2.id).is_none());
    assert_eq!(cs.iter().map(count).sum::<usize>(), 6);
}

#[test]
fn wrong_epochs_and_commits_are_fenced() {
    let mut w = World::new(&[("t", 2)]);
    let mut a = Client::new(&["t"]);
    w.beat(&mut a);
    w.beat(&mut a);
    assert_eq!(w.send(&a.request(Some(a.epoch + 5))).unwrap_err(), ErrorKind::FencedMemberEpoch);
    assert_eq!(
        w.send(&Client { id: "nobody".into(), epoch: 3, ..Client::new(&["t"]) }.request(None)).unwrap_err(),
        ErrorKind::UnknownMemberId
    );
    let g = &w.group;
    assert!(g.check_commit("g", &a.id, a.epoch, false).is_ok());
    assert_eq!(g.check_commit("g", &a.id, a.epoch - 1, false).unwrap_err().kind(), ErrorKind::StaleMemberEpoch);
    assert_eq!(g.check_commit("g", &a.id, a.epoch + 1, false).unwrap_err().kind(), ErrorKind::FencedMemberEpoch);
    assert_eq!(g.check_commit("g", "", -1, false).unwrap_err().kind(), ErrorKind::NonEmptyGroup);
    assert_eq!(g.check_commit("g", "zombie", 1, false).unwrap_err().kind(), ErrorKind::UnknownMemberId);
    assert_eq!(
        g.check_commit("g", "zombie", 1, true).unwrap_err().kind(),
        ErrorKind::CoordinatorLoadInProgress,
        "a new coordinator lets an unknown member retry until it heartbeats"
    );
    // Owning a partition it was never given fences the member.
    let mut liar = Client::new(&["t"]);
    w.beat(&mut liar);
    liar.owned = a.owned.clone();
    assert_eq!(w.send(&liar.request(None)).unwrap_err(), ErrorKind::FencedMemberEpoch);
    // Bad input is named.
    let bad = MemberHeartbeat { subscribed_topic_regex: Some("(".into()), ..Client::new(&[]).request(None) };
    assert_eq!(w.send(&bad).unwrap_err(), ErrorKind::InvalidRegularExpression);
    let bad = MemberHeartbeat { server_assignor: Some("sticky".into()), ..Client::new(&["t"]).request(None) };
    assert_eq!(w.send(&bad).unwrap_err(), ErrorKind::UnsupportedAssignor);
    let bad = MemberHeartbeat { session_timeout: Some(Duration::from_millis(10)), ..Client::new(&["t"]).request(None) };
    assert_eq!(w.send(&bad).unwrap_err(), ErrorKind::InvalidRequest);
    let bad = MemberHeartbeat { member_epoch: -7, ..a.request(None) };
    assert_eq!(w.send(&bad).unwrap_err(), ErrorKind::InvalidRequest);
}

#[test]
fn a_pattern_subscription_picks_up_new_and_grown_topics() {
    let mut w = World::new(&[("orders-1", 2), ("payments", 2)]);
    let mut a = Client { pattern: "orders-.*".into(), ..Client::new(&[]) };
    w.beat(&mut a);
    assert_eq!(a.owned.keys().collect::<Vec<_>>(), ["orders-1"]);
    w.topics.insert("orders-2".into(), 3);
    w.beat(&mut a);
    assert_eq!(count(&a), 5);
    w.topics.insert("orders-2".into(), 4);
    w.beat(&mut a);
    assert_eq!(count(&a), 6);
    w.topics.remove("orders-1");
    w.beat(&mut a);
    assert_eq!(a.owned.keys().collect::<Vec<_>>(), ["orders-2"]);
}

#[test]
fn a_member_that_does_not_revoke_in_time_is_evicted() {
    let mut w = World::new(&[("t", 2)]);
    let mut a = Client::new(&["t"]);
    w.beat(&mut a);
    let mut b = Client::new(&["t"]);
    w.beat(&mut b);
    // A keeps heartbeating but never gives up the partition it lost.
    let stuck = a.owned.clone();
    for _ in 0..4 {
        w.advance(Duration::from_secs(2));
        a.owned = stuck.clone();
        let _ = w.send(&a.request(None));
        w.beat(&mut b);
    }
    assert!(w.group.member(&a.id).is_none(), "evicted after the rebalance timeout");
    w.beat(&mut b);
    assert_eq!(count(&b), 2);
}

#[test]
fn a_new_coordinator_adopts_members_and_withholds_unclaimed_partitions() {
    let mut old = World::new(&[("t", 6)]);
    let mut cs = vec![Client::new(&["t"]), Client::new(&["t"]), Client::new(&["t"])];
    settle(&mut old, &mut cs);
    // The coordinator moves: a fresh membership that adopts.
    let mut w = World::new(&[("t", 6)]);
    w.adoptable = true;
    let before: Vec<_> = cs.iter().map(|c| c.owned.clone()).collect();
    w.beat(&mut cs[0]);
    w.beat(&mut cs[1]);
    assert_eq!(cs[0].owned, before[0], "adopted with what it owned");
    // The third member has not come back: its partitions are withheld.
    for _ in 0..3 {
        w.beat(&mut cs[0]);
        w.beat(&mut cs[1]);
    }
    assert_eq!(count(&cs[0]) + count(&cs[1]), 4);
    w.beat(&mut cs[2]);
    assert_eq!(cs[2].owned, before[2]);
    settle(&mut w, &mut cs);
    assert_eq!(cs.iter().map(count).collect::<Vec<_>>(), [2, 2, 2]);
    // A member that never returns: after the window its partitions go out.
    let mut w = World::new(&[("t", 6)]);
    w.adoptable = true;
    let mut two = vec![cs[0].clone(), cs[1].clone()];
    settle(&mut w, &mut two);
    assert_eq!(two.iter().map(count).sum::<usize>(), 4);
    for _ in 0..3 {
        w.advance(Duration::from_millis(SESSION_MS / 2));
        settle(&mut w, &mut two);
    }
    assert_eq!(two.iter().map(count).collect::<Vec<_>>(), [3, 3]);
}

/// What a simulated client does next.
#[derive(Debug, Clone)]
enum Step {
    Join,
    Beat(usize),
    Leave(usize),
    Die(usize),
    /// The client hears its answer but applies revocations only later.
    SlowBeat(usize),
    Time(u64),
    NewTopic,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => Just(Step::Join),
        8 => (0usize..8).prop_map(Step::Beat),
        1 => (0usize..8).prop_map(Step::Leave),
        1 => (0usize..8).prop_map(Step::Die),
        3 => (0usize..8).prop_map(Step::SlowBeat),
        2 => (100u64..2000).prop_map(Step::Time),
        1 => Just(Step::NewTopic),
    ]
}

/// No partition is owned by two live clients at once, and the server never
/// lets two members hold the same partition.
fn check_exclusive(w: &World, clients: &[Client]) {
    let mut owners: BTreeMap<(String, u32), &str> = BTreeMap::new();
    for c in clients.iter().filter(|c| w.group.member(&c.id).is_some()) {
        for (t, p) in member::iter(&c.owned) {
            if let Some(other) = owners.insert((t.to_string(), p), &c.id) {
                panic!("{t}-{p} owned by {other} and {}", c.id);
            }
        }
    }
    let mut held = BTreeSet::new();
    for c in clients {
        if let Some(m) = w.group.member(&c.id) {
            for (t, p) in member::iter(&m.assigned).chain(member::iter(&m.revoking)) {
                assert!(held.insert((t.to_string(), p)), "{t}-{p} held twice by the coordinator");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_membership_histories_never_double_assign(steps in proptest::collection::vec(step(), 1..120)) {
        let mut w = World::new(&[("a", 5), ("b", 3)]);
        let mut clients: Vec<Client> = Vec::new();
        let mut pending: Vec<Option<HeartbeatOutcome>> = Vec::new();
        let mut topics_made = 0;
        for s in steps {
            match s {
                Step::Join => {
                    let mut c = Client { pattern: "a|b|new-.*".into(), ..Client::new(&[]) };
                    w.beat(&mut c);
                    clients.push(c);
                    pending.push(None);
                }
                Step::Beat(i) | Step::SlowBeat(i) if i < clients.len() => {
                    // A slow client first applies what it heard last time.
                    if let Some(o) = pending[i].take() {
                        clients[i].owned = o.assignment;
                    }
                    let req = clients[i].request(None);
                    match w.send(&req) {
                        Ok(o) => {
                            clients[i].id = o.member_id.clone();
                            clients[i].epoch = o.member_epoch;
                            if matches!(s, Step::SlowBeat(_)) {
                                // Takes new partitions at once, gives up
                                // revoked ones only at its next heartbeat.
                                for (t, p) in member::iter(&o.assignment) {
                                    member::insert(&mut clients[i].owned, t, p);
                                }
                                pending[i] = Some(o);
                            } else {
                                clients[i].owned = o.assignment;
                            }
                        }
                        Err(ErrorKind::UnknownMemberId | ErrorKind::FencedMemberEpoch) => {
                            // Lost: drop everything and rejoin.
                            clients[i].owned.clear();
                            clients[i].id.clear();
                            clients[i].epoch = 0;
                            pending[i] = None;
                        }
                        Err(e) => panic!("unexpected {e:?}"),
                    }
                }
                Step::Leave(i) if i < clients.len() => {
                    let c = clients.remove(i);
                    pending.remove(i);
                    w.send(&MemberHeartbeat { member_epoch: epoch::LEAVE, ..c.request(None) }).unwrap();
                }
                Step::Die(i) if i < clients.len() => {
                    // Silent: the client stops; a real one fences itself
                    // after a session without heartbeats, so it owns nothing.
                    let mut c = clients.remove(i);
                    pending.remove(i);
                    c.owned.clear();
                }
                Step::Time(ms) => {
                    w.advance(Duration::from_millis(ms));
                    // Clients that went a session without a heartbeat fence
                    // themselves (modelled by the coordinator's eviction).
                    w.group.expire(w.now, &w.topics.clone());
                    for (c, p) in clients.iter_mut().zip(pending.iter_mut()) {
                        if w.group.member(&c.id).is_none() {
                            c.owned.clear();
                            *p = None;
                        }
                    }
                }
                Step::NewTopic => {
                    topics_made += 1;
                    w.topics.insert(format!("new-{topics_made}"), 2);
                }
                _ => {}
            }
            check_exclusive(&w, &clients);
        }
        // Healing: everyone heartbeats promptly while dead members' sessions
        // run out; all partitions end up owned.
        for _ in 0..8 {
            w.advance(Duration::from_millis(SESSION_MS / 2));
            for i in 0..clients.len() {
                if let Some(o) = pending[i].take() {
                    clients[i].owned = o.assignment;
                }
                let mut c = clients[i].clone();
                if w.send(&c.request(None)).is_err() {
                    c.owned.clear();
                    c.id.clear();
                    c.epoch = 0;
                }
                w.beat(&mut c);
                clients[i] = c;
                check_exclusive(&w, &clients);
            }
        }
        if !clients.is_empty() {
            let total: u32 = w.topics.values().sum();
            prop_assert_eq!(clients.iter().map(count).sum::<usize>(), total as usize);
            prop_assert!(w.group.is_stable());
        }
    }
}

#[test]
fn a_second_live_consumer_with_the_same_instance_id_is_refused_until_the_first_goes_quiet() {
    let mut w = World::new(&[("t", 2)]);
    let mut first = Client { instance: "host-1".into(), ..Client::new(&["t"]) };
    let mut other = Client::new(&["t"]);
    for _ in 0..3 {
        w.beat(&mut first);
        w.beat(&mut other);
    }
    let mine = first.owned.clone();
    let group_epoch = w.group.group_epoch;
    let twin = Client { instance: "host-1".into(), ..Client::new(&["t"]) };
    assert_eq!(w.send(&twin.request(None)).unwrap_err(), ErrorKind::UnreleasedInstanceId);
    // The first one crashes (no leave); once it has been quiet for two
    // heartbeat intervals the restarted instance takes its place at once,
    // without a rebalance (its session has not run out).
    w.advance(Duration::from_millis(SESSION_MS / 2));
    w.beat(&mut other);
    assert_eq!(w.send(&twin.request(None)).unwrap_err(), ErrorKind::UnreleasedInstanceId);
    w.advance(Duration::from_millis(SESSION_MS / 4));
    w.beat(&mut other);
    let mut twin = twin;
    w.beat(&mut twin);
    assert_eq!(twin.owned, mine);
    assert_eq!(w.group.group_epoch, group_epoch);
    assert_eq!(w.send(&first.request(None)).unwrap_err(), ErrorKind::UnknownMemberId);
}
