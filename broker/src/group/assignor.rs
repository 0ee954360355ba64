//! Server-side partition assignors of consumer groups (KIP-848): the
//! coordinator, not a client, computes every member's target partitions.
//!
//! Both assignors guarantee:
//! - every partition of every topic that at least one member subscribes to
//!   (and that exists in the topic map) goes to exactly one member, and only
//!   to a member subscribed to its topic; nothing else is assigned;
//! - the result is deterministic and depends only on the members as a set,
//!   not on their order in the slice;
//! - every member gets an entry, possibly empty; a topic appears in a
//!   member's set only if it holds at least one of its partitions.
//!
//! Member ids are expected to be unique; a repeated id is merged into one
//! member (union of topics and of current partitions, smallest instance id).
//!
//! - **Range** ([`Assignor::Range`]) is Kafka's `RangeAssignor`: per topic,
//!   its subscribers are ordered by (instance id, else member id; then member
//!   id) and take contiguous ranges, the first `n % m` one partition more.
//!   Static members thus keep their ranges across restarts. Not sticky and,
//!   over many topics, not balanced (the first members get the extras of
//!   every topic).
//! - **Uniform** ([`Assignor::Uniform`]) is sticky and balanced. Members keep
//!   their still-valid `current` partitions, the rest go one by one (sorted
//!   by topic, partition) to the least-loaded subscriber, then partitions are
//!   moved from a member to a subscriber of their topic holding two or more
//!   fewer until no such move exists. When all members with a subscription
//!   have the same one, each keeps its current partitions up to a quota
//!   (`total / m`, the `total % m` extra slots going to the members holding
//!   the most), which moves the fewest partitions possible and makes counts
//!   differ by at most one. With differing subscriptions the result is
//!   locally balanced: no member holds a partition that a subscriber of its
//!   topic with at least two fewer partitions could take. Running it again
//!   with its own output as `current` changes nothing.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

/// Topic -> partition numbers: a member's share of the group's topics.
pub(crate) type TopicPartitionSet = BTreeMap<String, BTreeSet<u32>>;
/// Member id -> its target partitions: what an assignor computes.
pub(crate) type Assignment = BTreeMap<String, TopicPartitionSet>;

/// One member as the assignor sees it: what it may take and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberSpec {
    /// The member id given by the coordinator.
    pub member_id: String,
    /// group.instance.id of a static member (used instead of member_id for ordering by the range assignor, so a
    /// restarted static member gets the same ranges).
    pub instance_id: Option<String>,
    /// The topics this member subscribes to (already resolved from names/regex; only topics that exist).
    pub topics: BTreeSet<String>,
    /// The member's current target assignment (for stickiness); may contain topics/partitions that no longer exist
    /// or it no longer subscribes to — ignore those.
    pub current: TopicPartitionSet,
}

/// The server-side assignors a group can use (`group.remote.assignor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Assignor {
    /// Sticky and balanced; the default, as in Kafka.
    #[default]
    Uniform,
    /// Kafka's per-topic contiguous ranges.
    Range,
}

impl Assignor {
    /// The assignor a member asks for by name: "uniform" | "range" (exact, lowercase); None otherwise.
    pub(crate) fn from_name(name: &str) -> Option<Assignor> {
        match name {
            "uniform" => Some(Assignor::Uniform),
            "range" => Some(Assignor::Range),
            _ => None,
        }
    }

    /// The name reported to clients (inverse of [`Assignor::from_name`]).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }

    /// The group's target assignment. `topics`: topic -> partition count, for every topic any member subscribes
    /// to (a subscribed topic missing here is ignored). Returns an entry for EVERY member (possibly empty set).
    pub(crate) fn assign(self, members: &[MemberSpec], topics: &BTreeMap<String, u32>) -> Assignment {
        let members = normalize(members, topics);
        let subs = subscribers(&members);
        let held = match self {
            Assignor::Range => range(&members, &subs, topics),
            Assignor::Uniform => uniform(&members, &subs, topics),
        };
        members
            .iter()
            .zip(held)
            .map(|(m, tps)| {
                let mut set = TopicPartitionSet::new();
                for (topic, p) in tps {
                    set.entry(topic.to_string()).or_default().insert(p);
                }
                (m.id.to_string(), set)
            })
            .collect()
    }
}

/// A (topic, partition) borrowed from the inputs.
type Tp<'a> = (&'a str, u32);

/// A member reduced to what the assignors use; members are indexed in member-id order.
struct Member<'a> {
    id: &'a str,
    instance_id: Option<&'a str>,
    /// Subscribed topics that exist and have at least one partition.
    topics: BTreeSet<&'a str>,
    /// The partitions of `current` that are still valid for this member.
    current: BTreeSet<Tp<'a>>,
}

/// Merges repeated ids, sorts by member id, drops unknown topics and invalid current partitions.
fn normalize<'a>(specs: &'a [MemberSpec], topics: &'a BTreeMap<String, u32>) -> Vec<Member<'a>> {
    let mut by_id: BTreeMap<&str, Member<'a>> = BTreeMap::new();
    for spec in specs {
        let m = by_id.entry(&spec.member_id).or_insert_with(|| Member {
            id: &spec.member_id,
            instance_id: None,
            topics: BTreeSet::new(),
            current: BTreeSet::new(),
        });
        if let Some(i) = spec.instance_id.as_deref() {
            m.instance_id = Some(m.instance_id.map_or(i, |old| old.min(i)));
        }
        let known = spec.topics.iter().filter_map(|t| topics.get_key_value(t.as_str()));
        m.topics.extend(known.filter(|(_, &n)| n > 0).map(|(t, _)| t.as_str()));
    }
    for spec in specs {
        #[allow(clippy::expect_used, reason = "invariant: every spec was inserted into `by_id` above")]
        let m = by_id.get_mut(spec.member_id.as_str()).expect("inserted above");
        for (topic, parts) in &spec.current {
            if let Some((name, &n)) = topics.get_key_value(topic.as_str()) {
                if m.topics.contains(name.as_str()) {
                    m.current.extend(parts.iter().filter(|&&p| p < n).map(|&p| (name.as_str(), p)));
                }
            }
        }
    }
    by_id.into_values().collect()
}

/// Topic -> indexes of its subscribers (ascending, so in member-id order); only topics someone subscribes to.
fn subscribers<'a>(members: &[Member<'a>]) -> BTreeMap<&'a str, Vec<usize>> {
    let mut subs: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, m) in members.iter().enumerate() {
        for topic in &m.topics {
            subs.entry(topic).or_default().push(i);
        }
    }
    subs
}

/// Kafka's range assignment: per topic, contiguous ranges in (instance id or member id, member id) order.
fn range<'a>(
    members: &[Member<'a>],
    subs: &BTreeMap<&'a str, Vec<usize>>,
    topics: &BTreeMap<String, u32>,
) -> Vec<BTreeSet<Tp<'a>>> {
    let mut held = vec![BTreeSet::new(); members.len()];
    for (&topic, idxs) in subs {
        let mut order = idxs.clone();
        order.sort_by_key(|&i| (members[i].instance_id.unwrap_or(members[i].id), members[i].id));
        let n = topics[topic] as usize;
        let (base, extra) = (n / order.len(), n % order.len());
        let mut next = 0;
        for (rank, &i) in order.iter().enumerate() {
            let len = base + usize::from(rank < extra);
            held[i].extend((next..next + len).map(|p| (topic, p as u32)));
            next += len;
        }
    }
    held
}

/// The sticky, balanced assignment: keep (up to a quota), fill the least loaded, then rebalance.
fn uniform<'a>(
    members: &[Member<'a>],
    subs: &BTreeMap<&'a str, Vec<usize>>,
    topics: &BTreeMap<String, u32>,
) -> Vec<BTreeSet<Tp<'a>>> {
    let caps = keep_caps(members, topics);
    let mut held = vec![BTreeSet::new(); members.len()];
    let mut taken = BTreeSet::new();
    // A partition in several members' `current` stays with the first of them in member-id order.
    for (i, m) in members.iter().enumerate() {
        for &tp in m.current.iter() {
            if held[i].len() >= caps[i] {
                break;
            }
            if taken.insert(tp) {
                held[i].insert(tp);
            }
        }
    }
    for (&topic, idxs) in subs {
        for tp in (0..topics[topic]).map(|p| (topic, p)).filter(|tp| !taken.contains(tp)) {
            #[allow(clippy::expect_used, reason = "invariant: `subs` lists only topics with a subscriber")]
            let to = *idxs.iter().min_by_key(|&&i| (held[i].len(), i)).expect("topic has a subscriber");
            held[to].insert(tp);
        }
    }
    rebalance(&mut held, subs);
    held
}

/// How many current partitions each member may keep. With one common subscription: `total / m` each, the
/// `total % m` extra slots to the members holding the most (ties by member id) so the fewest partitions move.
/// With differing subscriptions: no limit (the rebalance step restores balance).
fn keep_caps(members: &[Member], topics: &BTreeMap<String, u32>) -> Vec<usize> {
    let active: Vec<usize> = (0..members.len()).filter(|&i| !members[i].topics.is_empty()).collect();
    let homogeneous = active.windows(2).all(|w| members[w[0]].topics == members[w[1]].topics);
    if !homogeneous || active.is_empty() {
        return vec![usize::MAX; members.len()];
    }
    let total: usize = members[active[0]].topics.iter().map(|&t| topics[t] as usize).sum();
    let (base, extra) = (total / active.len(), total % active.len());
    let mut by_holding = active;
    by_holding.sort_by_key(|&i| (Reverse(members[i].current.len()), i));
    let mut caps = vec![0; members.len()];
    for (rank, &i) in by_holding.iter().enumerate() {
        caps[i] = base + usize::from(rank < extra);
    }
    caps
}

/// Moves partitions from a member to a subscriber of their topic with at least two fewer until no such move
/// exists. Each move lowers the sum of squared loads, so this ends.
fn rebalance<'a>(held: &mut [BTreeSet<Tp<'a>>], subs: &BTreeMap<&'a str, Vec<usize>>) {
    while let Some((from, to, tp)) = find_move(held, subs) {
        held[from].remove(&tp);
        held[to].insert(tp);
    }
}

/// The next rebalancing move: from the most loaded member that can give (ties by member id), its highest
/// partition of the topic whose least-loaded subscriber (then lowest member id, then topic) has the fewest.
fn find_move<'a>(held: &[BTreeSet<Tp<'a>>], subs: &BTreeMap<&'a str, Vec<usize>>) -> Option<(usize, usize, Tp<'a>)> {
    let min_load = held.iter().map(BTreeSet::len).min()?;
    let mut order: Vec<usize> = (0..held.len()).collect();
    order.sort_by_key(|&i| (Reverse(held[i].len()), i));
    for from in order {
        let load = held[from].len();
        if load < min_load + 2 {
            return None;
        }
        let topics: BTreeSet<&str> = held[from].iter().map(|&(t, _)| t).collect();
        let target = topics
            .iter()
            .flat_map(|&t| subs[t].iter().map(move |&to| (held[to].len(), to, t)))
            .filter(|&(l, _, _)| l + 2 <= load)
            .min();
        if let Some((_, to, topic)) = target {
            #[allow(clippy::expect_used, reason = "invariant: `from` was chosen because it holds `topic`")]
            let tp = *held[from].range((topic, 0)..=(topic, u32::MAX)).next_back().expect("holds the topic");
            return Some((from, to, tp));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn member(id: &str, topics: &[&str]) -> MemberSpec {
        let topics = topics.iter().map(|t| t.to_string()).collect();
        MemberSpec { member_id: id.into(), instance_id: None, topics, current: TopicPartitionSet::new() }
    }

    fn holding(mut m: MemberSpec, current: &[(&str, &[u32])]) -> MemberSpec {
        m.current = current.iter().map(|(t, ps)| (t.to_string(), ps.iter().copied().collect())).collect();
        m
    }

    fn topic_map(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
        list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn parts(a: &Assignment, id: &str) -> Vec<(String, u32)> {
        a[id].iter().flat_map(|(t, ps)| ps.iter().map(move |&p| (t.clone(), p))).collect()
    }

    fn count(a: &Assignment, id: &str) -> usize {
        a[id].values().map(BTreeSet::len).sum()
    }

    /// Members' `current` set to what `a` assigned them.
    fn with_current(members: &[MemberSpec], a: &Assignment) -> Vec<MemberSpec> {
        members.iter().map(|m| MemberSpec { current: a[&m.member_id].clone(), ..m.clone() }).collect()
    }

    /// Partitions held in `after` by someone other than their holder in `before`.
    fn moved(before: &Assignment, after: &Assignment) -> usize {
        let owner: BTreeMap<(String, u32), &str> =
            before.keys().flat_map(|id| parts(before, id).into_iter().map(move |tp| (tp, id.as_str()))).collect();
        let owner = &owner;
        after
            .keys()
            .flat_map(|id| parts(after, id).into_iter().filter(move |tp| owner.get(tp).is_some_and(|o| o != id)))
            .count()
    }

    /// Every subscribed partition exactly once, only to subscribers, an entry for every member, no empty topics.
    fn check_valid(members: &[MemberSpec], topics: &BTreeMap<String, u32>, a: &Assignment) {
        let ids: BTreeSet<&String> = members.iter().map(|m| &m.member_id).collect();
        assert_eq!(a.keys().collect::<BTreeSet<_>>(), ids);
        let mut seen = BTreeSet::new();
        for m in members {
            for (t, ps) in &a[&m.member_id] {
                assert!(!ps.is_empty() && m.topics.contains(t), "{} got {t}", m.member_id);
                assert!(ps.iter().all(|&p| p < topics[t] && seen.insert((t.clone(), p))), "{t}: {ps:?}");
            }
        }
        let wanted = topics.iter().filter(|(t, _)| members.iter().any(|m| m.topics.contains(*t)));
        assert_eq!(seen.len(), wanted.map(|(_, &n)| n as usize).sum::<usize>());
    }

    #[test]
    fn names_round_trip() {
        for a in [Assignor::Uniform, Assignor::Range] {
            assert_eq!(Assignor::from_name(a.name()), Some(a));
        }
        assert_eq!(Assignor::from_name("Range"), None);
        assert_eq!(Assignor::from_name("sticky"), None);
        assert_eq!(Assignor::default(), Assignor::Uniform);
    }

    #[test]
    fn no_members_and_member_without_topics() {
        let topics = topic_map(&[("a", 3)]);
        for a in [Assignor::Uniform, Assignor::Range] {
            assert!(a.assign(&[], &topics).is_empty());
            let members = [member("m1", &[]), member("m2", &["a", "gone"])];
            let out = a.assign(&members, &topics);
            check_valid(&members, &topics, &out);
            assert!(out["m1"].is_empty());
            assert_eq!(count(&out, "m2"), 3);
        }
    }

    #[test]
    fn range_splits_like_kafka() {
        let topics = topic_map(&[("a", 7), ("b", 6), ("c", 2)]);
        let members = [member("m3", &["a", "b", "c"]), member("m1", &["a", "b", "c"]), member("m2", &["a", "b"])];
        let out = Assignor::Range.assign(&members, &topics);
        check_valid(&members, &topics, &out);
        let set = |ps: &[u32]| ps.iter().copied().collect::<BTreeSet<u32>>();
        assert_eq!(out["m1"]["a"], set(&[0, 1, 2]));
        assert_eq!(out["m2"]["a"], set(&[3, 4]));
        assert_eq!(out["m3"]["a"], set(&[5, 6]));
        assert_eq!((out["m1"]["b"].clone(), out["m3"]["b"].clone()), (set(&[0, 1]), set(&[4, 5])));
        assert_eq!((out["m1"]["c"].clone(), out["m3"]["c"].clone()), (set(&[0]), set(&[1])));
        assert!(!out["m2"].contains_key("c"));
    }

    #[test]
    fn range_is_stable_for_static_members() {
        let topics = topic_map(&[("a", 5)]);
        let with_instance = |id: &str, inst: &str| MemberSpec { instance_id: Some(inst.into()), ..member(id, &["a"]) };
        let before = Assignor::Range.assign(&[with_instance("x", "i1"), with_instance("y", "i2")], &topics);
        // Restarted with new member ids that sort the other way round.
        let after = Assignor::Range.assign(&[with_instance("z", "i1"), with_instance("b", "i2")], &topics);
        assert_eq!(before["x"], after["z"]);
        assert_eq!(before["y"], after["b"]);
        assert_eq!(count(&after, "z"), 3);
    }

    #[test]
    fn uniform_even_and_uneven_splits() {
        for (n, want) in [(6, [2, 2, 2]), (7, [3, 2, 2]), (2, [1, 1, 0])] {
            let topics = topic_map(&[("a", n)]);
            let members = [member("m1", &["a"]), member("m2", &["a"]), member("m3", &["a"])];
            let out = Assignor::Uniform.assign(&members, &topics);
            check_valid(&members, &topics, &out);
            assert_eq!([count(&out, "m1"), count(&out, "m2"), count(&out, "m3")], want);
        }
    }

    #[test]
    fn uniform_leave_moves_only_the_leavers_partitions() {
        let topics = topic_map(&[("a", 6)]);
        let three = [member("m1", &["a"]), member("m2", &["a"]), member("m3", &["a"])];
        let before = Assignor::Uniform.assign(&three, &topics);
        let two = with_current(&three[..2], &before);
        let after = Assignor::Uniform.assign(&two, &topics);
        for id in ["m1", "m2"] {
            assert!(parts(&before, id).iter().all(|tp| parts(&after, id).contains(tp)));
            assert_eq!(count(&after, id), 3);
        }
    }

    #[test]
    fn uniform_join_moves_the_minimum() {
        let topics = topic_map(&[("a", 6)]);
        let three = [member("m1", &["a"]), member("m2", &["a"]), member("m3", &["a"])];
        let before = Assignor::Uniform.assign(&three, &topics);
        let mut four = with_current(&three, &before);
        four.push(member("m0", &["a"]));
        let after = Assignor::Uniform.assign(&four, &topics);
        // 6 over 4 is 2,2,1,1: the newcomer needs one partition, and one is all that moves.
        assert_eq!(moved(&before, &after), 1);
        assert_eq!(count(&after, "m0"), 1);
        let mut counts: Vec<usize> = ["m1", "m2", "m3"].iter().map(|id| count(&after, id)).collect();
        counts.sort();
        assert_eq!(counts, [1, 2, 2]);
    }

    #[test]
    fn uniform_extra_slots_go_to_members_holding_more() {
        let topics = topic_map(&[("a", 5)]);
        // m2 holds 3, m1 holds 2 of 5 over 2 members: m2 keeps its extra one, nothing moves.
        let members =
            [holding(member("m1", &["a"]), &[("a", &[0, 1])]), holding(member("m2", &["a"]), &[("a", &[2, 3, 4])])];
        let out = Assignor::Uniform.assign(&members, &topics);
        assert_eq!(parts(&out, "m2").len(), 3);
        assert_eq!(out["m1"]["a"], [0, 1].into());
    }

    #[test]
    fn uniform_ignores_deleted_topics_shrunk_partitions_and_unsubscribed_topics() {
        let topics = topic_map(&[("a", 2), ("b", 2)]);
        let m1 = holding(member("m1", &["a"]), &[("a", &[0, 1, 5]), ("gone", &[0]), ("b", &[0, 1])]);
        let m2 = holding(member("m2", &["a", "b"]), &[("a", &[0])]);
        let out = Assignor::Uniform.assign(&[m1.clone(), m2.clone()], &topics);
        check_valid(&[m1, m2], &topics, &out);
        assert_eq!(parts(&out, "m1"), [("a".to_string(), 0), ("a".to_string(), 1)]);
        assert_eq!(parts(&out, "m2"), [("b".to_string(), 0), ("b".to_string(), 1)]);
    }

    #[test]
    fn uniform_heterogeneous_subscriptions_balance() {
        // m1 can only take "a"; m2 takes "a" and "b": the greedy fill is corrected to 3 each.
        let topics = topic_map(&[("a", 3), ("b", 3)]);
        let members = [member("m1", &["a"]), member("m2", &["a", "b"])];
        let out = Assignor::Uniform.assign(&members, &topics);
        check_valid(&members, &topics, &out);
        assert_eq!(out["m1"]["a"].len(), 3);
        assert_eq!(out["m2"]["b"].len(), 3);
        assert!(!out["m2"].contains_key("a"));
    }

    #[test]
    fn uniform_conflicting_current_claims_are_resolved() {
        let topics = topic_map(&[("a", 4)]);
        let members =
            [holding(member("m1", &["a"]), &[("a", &[0, 1])]), holding(member("m2", &["a"]), &[("a", &[1, 2])])];
        let out = Assignor::Uniform.assign(&members, &topics);
        check_valid(&members, &topics, &out);
        assert_eq!(out["m1"]["a"], [0, 1].into());
        assert_eq!(out["m2"]["a"], [2, 3].into());
    }

    const TOPICS: [&str; 4] = ["a", "b", "c", "d"];

    /// Topics (some with 0 partitions), members with random subscriptions (some to missing topics), random
    /// instance ids (possibly shared) and random, partly invalid, `current`. `same_subs`: all subscribe alike.
    fn scenario(same_subs: bool) -> impl Strategy<Value = (Vec<MemberSpec>, BTreeMap<String, u32>)> {
        let name = || prop::sample::select(vec!["a", "b", "c", "d", "gone"]).prop_map(String::from);
        let topics =
            prop::collection::btree_map(prop::sample::select(TOPICS.to_vec()).prop_map(String::from), 0u32..9, 0..4);
        let current = prop::collection::btree_map(name(), prop::collection::btree_set(0u32..10, 0..5), 0..3);
        let member = (prop::option::of(0u8..3), prop::collection::btree_set(name(), 0..4), current);
        (topics, prop::collection::vec(member, 0..7)).prop_map(move |(topics, specs)| {
            let first_subs = specs.first().map(|s| s.1.clone()).unwrap_or_default();
            let members = specs
                .into_iter()
                .enumerate()
                .map(|(i, (inst, subs, current))| MemberSpec {
                    member_id: format!("m{i}"),
                    instance_id: inst.map(|k| format!("i{k}")),
                    topics: if same_subs { first_subs.clone() } else { subs },
                    current,
                })
                .collect();
            (members, topics)
        })
    }

    proptest! {
        #[test]
        fn every_subscribed_partition_once_to_a_subscriber((members, topics) in scenario(false)) {
            for a in [Assignor::Uniform, Assignor::Range] {
                check_valid(&members, &topics, &a.assign(&members, &topics));
            }
        }

        #[test]
        fn independent_of_member_order(
            ((members, topics), shuffled) in scenario(false).prop_flat_map(|s| (Just(s.clone()), Just(s.0).prop_shuffle()))
        ) {
            for a in [Assignor::Uniform, Assignor::Range] {
                prop_assert_eq!(a.assign(&members, &topics), a.assign(&shuffled, &topics));
            }
        }

        #[test]
        fn uniform_homogeneous_is_balanced((members, topics) in scenario(true)) {
            let out = Assignor::Uniform.assign(&members, &topics);
            let counts: Vec<usize> = out.keys().map(|id| count(&out, id)).collect();
            let (min, max) = (counts.iter().min().unwrap_or(&0), counts.iter().max().unwrap_or(&0));
            prop_assert!(max - min <= 1, "{:?}", counts);
        }

        #[test]
        fn uniform_is_locally_balanced((members, topics) in scenario(false)) {
            let out = Assignor::Uniform.assign(&members, &topics);
            for m in &members {
                for t in out[&m.member_id].keys() {
                    for other in members.iter().filter(|o| o.topics.contains(t)) {
                        prop_assert!(count(&out, &m.member_id) <= count(&out, &other.member_id) + 1);
                    }
                }
            }
        }

        #[test]
        fn uniform_rerun_on_own_output_changes_nothing((members, topics) in any::<bool>().prop_flat_map(scenario)) {
            let first = Assignor::Uniform.assign(&members, &topics);
            let again = Assignor::Uniform.assign(&with_current(&members, &first), &topics);
            prop_assert_eq!(first, again);
        }

        #[test]
        fn uniform_homogeneous_join_and_leave_move_the_minimum((members, topics) in scenario(true)) {
            let Some(first) = members.first() else { return Ok(()) };
            let before = Assignor::Uniform.assign(&members, &topics);
            // Leave: every survivor keeps all it had.
            let after = Assignor::Uniform.assign(&with_current(&members[1..], &before), &topics);
            for m in &members[1..] {
                prop_assert!(parts(&before, &m.member_id).iter().all(|tp| parts(&after, &m.member_id).contains(tp)));
            }
            // Join: the newcomer needs total / (m + 1) partitions; exactly those move, all to it.
            let mut joined = with_current(&members, &before);
            joined.push(MemberSpec { member_id: "new".into(), current: TopicPartitionSet::new(), ..first.clone() });
            let after = Assignor::Uniform.assign(&joined, &topics);
            let total: usize = before.keys().map(|id| count(&before, id)).sum();
            prop_assert_eq!(count(&after, "new"), total / joined.len());
            prop_assert_eq!(moved(&before, &after), total / joined.len());
        }
    }
}
