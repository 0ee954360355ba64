//! A group's membership, KIP-848 style: members heartbeat, the coordinator
//! computes a target assignment whenever the group changes (a member joins,
//! leaves or is evicted, a subscription changes, a subscribed topic appears
//! or grows) and moves each member towards it incrementally, one heartbeat
//! at a time:
//!
//! 1. partitions a member holds but is no longer targeted for move to its
//!    `revoking` set; its epoch stays until it reports (in its owned
//!    partitions) that it gave them all up;
//! 2. then its epoch moves to the target's, and it is given every target
//!    partition no other member holds (assigned or revoking) — so a
//!    partition is never given to a member before its previous owner
//!    released it; the ones still held are given at a later heartbeat.
//!
//! Members that stay in place keep their partitions and never stop.
//! Membership lives in memory on the coordinator. When the coordinator
//! moves, the new one *adopts* members that heartbeat with an epoch it does
//! not know (within [`ADOPTION_WINDOW`] of loading), trusting the partitions
//! they report owning, and withholds partitions nobody claimed for one
//! session timeout (a member that could not heartbeat for that long fences
//! itself), so no partition gets two owners across the move. Pure: time is
//! passed in.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::error::{BrokerError, ErrorKind};
use strata_record::TopicPartition;

use super::assignor::{Assignment, Assignor, MemberSpec, TopicPartitionSet};
use super::member::{self, Member, Subscription};

/// Shortest and longest session timeout a member may ask for.
pub(crate) const MIN_SESSION_TIMEOUT: Duration = Duration::from_millis(1000);
/// See [`MIN_SESSION_TIMEOUT`].
pub(crate) const MAX_SESSION_TIMEOUT: Duration = Duration::from_secs(300);
/// Session timeout of a member that asks for none (Kafka's 45 s).
pub(crate) const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(45);
/// Rebalance timeout of a member that asks for none.
pub(crate) const DEFAULT_REBALANCE_TIMEOUT: Duration = Duration::from_secs(60);
/// Heartbeat interval while a member is moving (revoking, or waiting for
/// partitions another member still holds): short, so moves finish fast.
pub(crate) const RECONCILING_HEARTBEAT: Duration = Duration::from_millis(250);
/// Most members a group may have.
pub(crate) const MAX_GROUP_SIZE: usize = 1000;
/// How long after loading a coordinator adopts unknown members.
pub(crate) const ADOPTION_WINDOW: Duration = Duration::from_secs(15);
/// Evicted member ids remembered per group (never adopted again).
const EVICTED_REMEMBERED: usize = 256;

/// The special member epochs of a heartbeat.
pub(crate) mod epoch {
    /// Join.
    pub(crate) const JOIN: i32 = 0;
    /// Leave the group.
    pub(crate) const LEAVE: i32 = -1;
    /// A static member leaves for now.
    pub(crate) const LEAVE_STATIC: i32 = -2;
}

/// One member heartbeat (KIP-848) as the group state machine takes it; each
/// edge decodes its own message into this.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MemberHeartbeat {
    /// The member's id; empty when it joins (the coordinator gives one).
    pub(crate) member_id: String,
    /// Its epoch: `epoch::JOIN` to join, `LEAVE`/`LEAVE_STATIC` to leave,
    /// else the epoch it was last given.
    pub(crate) member_epoch: i32,
    /// `group.instance.id` of a static member.
    pub(crate) instance_id: Option<String>,
    /// The client's id, for `DescribeGroups`.
    pub(crate) client_id: String,
    /// How long without a heartbeat before eviction (`None`: 45 s).
    pub(crate) session_timeout: Option<std::time::Duration>,
    /// How long the member may take to give up revoked partitions.
    pub(crate) rebalance_timeout: Option<std::time::Duration>,
    /// The subscription by topic names...
    pub(crate) subscribed_topic_names: Vec<String>,
    /// ...or by a regular expression (whole-name match).
    pub(crate) subscribed_topic_regex: Option<String>,
    /// The assignor the member asks for (`None`: the group's choice).
    pub(crate) server_assignor: Option<String>,
    /// The partitions the member owns now.
    pub(crate) owned_partitions: TopicPartitionSet,
}

/// What the coordinator knows that a heartbeat needs besides the request.
#[derive(Debug)]
pub(crate) struct HeartbeatContext<'a> {
    /// Now.
    pub now: Instant,
    /// Every topic with its partition count.
    pub topics: &'a BTreeMap<String, u32>,
    /// Whether unknown members with an epoch are adopted (the coordinator
    /// loaded the group recently).
    pub adoptable: bool,
    /// The address the request came from.
    pub client_host: String,
    /// A fresh member id, used if the member joins.
    pub new_member_id: String,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeartbeatOutcome {
    /// The member's id.
    pub member_id: String,
    /// Its epoch now.
    pub member_epoch: i32,
    /// When to heartbeat next.
    pub heartbeat_interval: Duration,
    /// What it may own now.
    pub assignment: TopicPartitionSet,
    /// Whether it is still moving towards its target.
    pub reconciling: bool,
}

/// The membership part of a group.
#[derive(Debug, Clone, Default)]
pub(crate) struct Membership {
    /// Bumped on every change that needs a new target assignment.
    pub group_epoch: i32,
    /// The epoch of `target`.
    pub assignment_epoch: i32,
    /// The target assignment per member.
    target: Assignment,
    /// The subscribed topics and partition counts `target` was computed for.
    topics_seen: BTreeMap<String, u32>,
    /// A hash of the whole topic list `topics_seen` was resolved from: while
    /// it and the group are unchanged, nothing needs resolving again.
    topics_fingerprint: u64,
    /// Members by id.
    members: BTreeMap<String, Member>,
    /// Until then, partitions nobody holds are not given out (after an
    /// adoption: their owner may not have come back yet).
    withhold_until: Option<Instant>,
    /// Recently evicted member ids.
    evicted: VecDeque<String>,
}

fn err(code: ErrorKind, msg: String) -> BrokerError {
    BrokerError::new(code, msg)
}

impl Membership {
    /// Whether the group has members (static members that left for now
    /// included).
    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// How many members.
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// A member by id.
    pub(crate) fn member(&self, id: &str) -> Option<&Member> {
        self.members.get(id)
    }

    /// The assignor the group uses: the one most members ask for (ties to
    /// the name first in order), `uniform` when none asks.
    pub(crate) fn assignor(&self) -> Assignor {
        let mut votes: BTreeMap<&'static str, (usize, Assignor)> = BTreeMap::new();
        for a in self.members.values().filter_map(|m| m.assignor) {
            votes.entry(a.name()).or_insert((0, a)).0 += 1;
        }
        let mut best: Option<(usize, Assignor)> = None;
        for (n, a) in votes.into_values() {
            if best.is_none_or(|(b, _)| n > b) {
                best = Some((n, a));
            }
        }
        best.map_or(Assignor::default(), |(_, a)| a)
    }

    /// Whether every member holds exactly its target at the group's epoch.
    pub(crate) fn is_stable(&self) -> bool {
        self.members.values().all(|m| m.epoch == self.assignment_epoch && m.revoking.is_empty() && self.holds_target(m))
    }

    /// One heartbeat: join, leave, or report and receive an assignment.
    pub(crate) fn heartbeat(
        &mut self,
        group_id: &str,
        req: &MemberHeartbeat,
        ctx: HeartbeatContext<'_>,
    ) -> Result<HeartbeatOutcome, BrokerError> {
        self.expire(ctx.now, ctx.topics);
        let left = |id: &str, e: i32| HeartbeatOutcome {
            member_id: id.to_string(),
            member_epoch: e,
            heartbeat_interval: Duration::ZERO,
            assignment: TopicPartitionSet::new(),
            reconciling: false,
        };
        match req.member_epoch {
            epoch::LEAVE | epoch::LEAVE_STATIC => {
                let static_leave = req.member_epoch == epoch::LEAVE_STATIC;
                match self.members.get_mut(&req.member_id) {
                    Some(m) if static_leave && m.instance_id.is_some() => {
                        m.left = true;
                        m.last_heartbeat = ctx.now;
                    }
                    Some(_) => {
                        self.remove(&req.member_id, ctx.topics);
                    }
                    None => {}
                }
                return Ok(left(&req.member_id, req.member_epoch));
            }
            e if e < 0 => {
                return Err(err(ErrorKind::InvalidRequest, format!("member epoch {e} means nothing")));
            }
            _ => {}
        }
        let subscription = match self.members.get(&req.member_id) {
            Some(m)
                if m.subscription
                    .is_same(&req.subscribed_topic_names, req.subscribed_topic_regex.as_deref().unwrap_or("")) =>
            {
                m.subscription.clone()
            }
            _ => Subscription::parse(&req.subscribed_topic_names, req.subscribed_topic_regex.as_deref().unwrap_or(""))?,
        };
        let assignor = match req.server_assignor.as_deref() {
            None | Some("") => None,
            Some(name) => Some(Assignor::from_name(name).ok_or_else(|| {
                err(ErrorKind::UnsupportedAssignor, format!("no assignor '{name}'; use 'uniform' or 'range'"))
            })?),
        };
        let session_timeout = req.session_timeout.unwrap_or(DEFAULT_SESSION_TIMEOUT);
        if !(MIN_SESSION_TIMEOUT..=MAX_SESSION_TIMEOUT).contains(&session_timeout) {
            return Err(err(
                ErrorKind::InvalidRequest,
                format!(
                    "session timeout {} ms is outside {}..={} ms",
                    session_timeout.as_millis(),
                    MIN_SESSION_TIMEOUT.as_millis(),
                    MAX_SESSION_TIMEOUT.as_millis()
                ),
            ));
        }
        let owned = req.owned_partitions.clone();
        let id = if req.member_epoch == epoch::JOIN {
            self.join(group_id, req, &ctx)?
        } else {
            self.known_or_adopted(group_id, req, &owned, &ctx)?
        };
        let changed = {
            let Some(m) = self.members.get_mut(&id) else {
                return Err(err(ErrorKind::UnknownMemberId, format!("group '{group_id}' lost member '{id}'")));
            };
            m.last_heartbeat = ctx.now;
            m.left = false;
            m.session_timeout = session_timeout;
            m.rebalance_timeout = req.rebalance_timeout.unwrap_or(DEFAULT_REBALANCE_TIMEOUT);
            m.client_id = req.client_id.clone();
            m.client_host = ctx.client_host.clone();
            let changed = m.subscription != subscription || m.assignor != assignor;
            m.subscription = subscription;
            m.assignor = assignor;
            changed
        };
        if changed {
            self.group_epoch += 1;
        }
        self.check_owned(group_id, &id, &owned, ctx.topics)?;
        self.release(&id, &owned);
        self.refresh(ctx.topics);
        self.reconcile(&id, ctx.now, ctx.topics);
        let m = &self.members[&id];
        let moving = !m.revoking.is_empty() || !self.holds_target(m);
        let base = heartbeat_interval(m.session_timeout);
        Ok(HeartbeatOutcome {
            member_id: id.clone(),
            member_epoch: m.epoch,
            heartbeat_interval: if moving { base.min(RECONCILING_HEARTBEAT) } else { base },
            assignment: m.assigned.clone(),
            reconciling: moving,
        })
    }

    /// A join (epoch 0): a new member, a static member taking over its
    /// instance's place, or a member that lost its partitions starting over.
    fn join(&mut self, group_id: &str, req: &MemberHeartbeat, ctx: &HeartbeatContext) -> Result<String, BrokerError> {
        let instance = req.instance_id.clone();
        if let Some(instance) = &instance {
            let old =
                self.members.values().find(|m| m.instance_id.as_ref() == Some(instance)).map(|m| m.member_id.clone());
            if let Some(old) = old {
                let m = &self.members[&old];
                let quiet = ctx.now.saturating_duration_since(m.last_heartbeat);
                if !m.left && quiet < 2 * heartbeat_interval(m.session_timeout) {
                    return Err(err(
                        ErrorKind::UnreleasedInstanceId,
                        format!(
                            "group '{group_id}': instance id '{instance}' is in use by member '{old}' (heard from \
                             {} ms ago); is a second consumer running with the same group.instance.id?",
                            quiet.as_millis()
                        ),
                    ));
                }
                // The instance restarted (left, or its old incarnation went
                // quiet): the new member takes the old one's place, epoch and
                // partitions; the old id is fenced.
                let mut m = self
                    .members
                    .remove(&old)
                    .ok_or_else(|| err(ErrorKind::UnknownServerError, "lost a member".into()))?;
                let id = if req.member_id.is_empty() { ctx.new_member_id.clone() } else { req.member_id.clone() };
                m.member_id = id.clone();
                if let Some(t) = self.target.remove(&old) {
                    self.target.insert(id.clone(), t);
                }
                self.members.insert(id.clone(), m);
                self.remember_evicted(old);
                return Ok(id);
            }
        }
        if let Some(m) = self.members.get_mut(&req.member_id) {
            // Epoch 0 from a known member: it gave up everything.
            m.assigned.clear();
            m.revoking.clear();
            m.revoking_since = None;
            m.previous_epoch = m.epoch;
            m.epoch = 0;
            return Ok(req.member_id.clone());
        }
        if self.members.len() >= MAX_GROUP_SIZE {
            return Err(err(
                ErrorKind::GroupMaxSizeReached,
                format!("group '{group_id}' has {MAX_GROUP_SIZE} members, the most it may have"),
            ));
        }
        let id = if req.member_id.is_empty() { ctx.new_member_id.clone() } else { req.member_id.clone() };
        self.members.insert(id.clone(), new_member(&id, instance, 0, ctx.now));
        self.group_epoch += 1;
        Ok(id)
    }

    /// A heartbeat with an epoch: the member must be known (or adoptable)
    /// and at its epoch (or the one before, if a response was lost).
    fn known_or_adopted(
        &mut self,
        group_id: &str,
        req: &MemberHeartbeat,
        owned: &TopicPartitionSet,
        ctx: &HeartbeatContext,
    ) -> Result<String, BrokerError> {
        let id = req.member_id.clone();
        if let Some(m) = self.members.get(&id) {
            if req.member_epoch == m.epoch || req.member_epoch == m.previous_epoch {
                return Ok(id);
            }
            return Err(err(
                ErrorKind::FencedMemberEpoch,
                format!(
                    "member '{id}' of group '{group_id}' is at epoch {}, not {}; rejoin",
                    m.epoch, req.member_epoch
                ),
            ));
        }
        if !ctx.adoptable || id.is_empty() || self.evicted.contains(&id) || self.members.len() >= MAX_GROUP_SIZE {
            return Err(err(
                ErrorKind::UnknownMemberId,
                format!("group '{group_id}' has no member '{id}' (evicted, or the coordinator moved); rejoin"),
            ));
        }
        // The coordinator moved: take the member back as it says it was.
        let instance = req.instance_id.clone();
        let mut m = new_member(&id, instance, req.member_epoch, ctx.now);
        for (t, p) in member::iter(owned) {
            if !exists(ctx.topics, t, p) {
                continue;
            }
            if self.members.values().any(|o| o.holds(t, p)) {
                // Claimed by an earlier adoptee: this one must let go.
                member::insert(&mut m.revoking, t, p);
            } else {
                member::insert(&mut m.assigned, t, p);
            }
        }
        let window_end = ctx.now + req.session_timeout.unwrap_or(DEFAULT_SESSION_TIMEOUT);
        if self.members.is_empty() || self.withhold_until.is_some() {
            self.withhold_until = Some(self.withhold_until.map_or(window_end, |w| w.max(window_end)));
        }
        self.group_epoch = self.group_epoch.max(req.member_epoch) + 1;
        self.assignment_epoch = self.assignment_epoch.max(req.member_epoch);
        // The new target sticks to what the member holds.
        self.target.insert(id.clone(), m.assigned.clone());
        self.members.insert(id.clone(), m);
        tracing::info!(group = group_id, member = %id, epoch = req.member_epoch, "adopted a member after a coordinator move");
        Ok(id)
    }

    /// Refuses owned partitions the member was never given (a confused or
    /// stale client): another member may hold them.
    fn check_owned(
        &self,
        group_id: &str,
        id: &str,
        owned: &TopicPartitionSet,
        topics: &BTreeMap<String, u32>,
    ) -> Result<(), BrokerError> {
        let m = &self.members[id];
        if let Some((t, p)) = member::iter(owned).find(|(t, p)| exists(topics, t, *p) && !m.holds(t, *p)) {
            return Err(err(
                ErrorKind::FencedMemberEpoch,
                format!("member '{id}' of group '{group_id}' owns {t}-{p}, which it was not given; rejoin"),
            ));
        }
        Ok(())
    }

    /// Partitions the member no longer reports owning stop being revoked.
    fn release(&mut self, id: &str, owned: &TopicPartitionSet) {
        if let Some(m) = self.members.get_mut(id) {
            let revoking = std::mem::take(&mut m.revoking);
            for (t, p) in member::iter(&revoking) {
                if member::contains(owned, t, p) {
                    member::insert(&mut m.revoking, t, p);
                }
            }
            if m.revoking.is_empty() {
                m.revoking_since = None;
            }
        }
    }

    /// Evicts members whose session (or revocation) ran out. Returns them
    /// with the reason.
    pub(crate) fn expire(&mut self, now: Instant, topics: &BTreeMap<String, u32>) -> Vec<(String, &'static str)> {
        let gone: Vec<(String, &'static str)> =
            self.members.values().filter_map(|m| m.expired(now).map(|why| (m.member_id.clone(), why))).collect();
        for (id, _) in &gone {
            self.remove(id, topics);
            self.remember_evicted(id.clone());
        }
        if self.withhold_until.is_some_and(|w| now >= w) {
            self.withhold_until = None;
        }
        gone
    }

    fn remember_evicted(&mut self, id: String) {
        self.evicted.push_back(id);
        while self.evicted.len() > EVICTED_REMEMBERED {
            self.evicted.pop_front();
        }
    }

    fn remove(&mut self, id: &str, topics: &BTreeMap<String, u32>) {
        if self.members.remove(id).is_some() {
            self.target.remove(id);
            self.group_epoch += 1;
            self.refresh(topics);
        }
    }

    /// Recomputes the target assignment when the group changed, or when the
    /// topics its members subscribe to appeared, vanished or grew.
    pub(crate) fn refresh(&mut self, topics: &BTreeMap<String, u32>) {
        let fingerprint = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            topics.hash(&mut h);
            h.finish()
        };
        if self.group_epoch == self.assignment_epoch && fingerprint == self.topics_fingerprint {
            return;
        }
        self.topics_fingerprint = fingerprint;
        let resolved: Vec<_> = self.members.values().map(|m| (m, m.subscription.resolve(topics))).collect();
        let mut seen = BTreeMap::new();
        for (_, ts) in &resolved {
            for t in ts {
                seen.insert(t.clone(), topics[t]);
            }
        }
        if seen != self.topics_seen {
            self.group_epoch += 1;
        }
        if self.group_epoch == self.assignment_epoch && seen == self.topics_seen {
            return;
        }
        let specs: Vec<MemberSpec> = resolved
            .into_iter()
            .map(|(m, ts)| MemberSpec {
                member_id: m.member_id.clone(),
                instance_id: m.instance_id.clone(),
                topics: ts,
                current: self.target.get(&m.member_id).cloned().unwrap_or_default(),
            })
            .collect();
        self.target = self.assignor().assign(&specs, &seen);
        self.topics_seen = seen;
        self.assignment_epoch = self.group_epoch;
    }

    /// Moves one member towards its target (see the module doc).
    fn reconcile(&mut self, id: &str, now: Instant, topics: &BTreeMap<String, u32>) {
        let withholding = self.withhold_until.is_some_and(|w| now < w);
        let no_target = TopicPartitionSet::new();
        let target = self.target.get(id).unwrap_or(&no_target);
        let Some(m) = self.members.get(id) else { return };
        // Target partitions it lacks that no other member holds (usually
        // none: a settled member lacks nothing).
        let free: Vec<TopicPartition> = member::iter(target)
            .filter(|&(t, p)| !member::contains(&m.assigned, t, p))
            .filter(|&(t, p)| !self.members.values().any(|o| o.member_id != id && o.holds(t, p)))
            .map(|(t, p)| TopicPartition::of(t, p))
            .collect();
        let Some(m) = self.members.get_mut(id) else { return };
        for set in [&mut m.assigned, &mut m.revoking] {
            for (t, ps) in set.iter_mut() {
                ps.retain(|p| exists(topics, t, *p));
            }
            member::prune(set);
        }
        // Held but no longer targeted: to be given up first.
        let lost: Vec<TopicPartition> = member::iter(&m.assigned)
            .filter(|&(t, p)| !member::contains(target, t, p))
            .map(|(t, p)| TopicPartition::of(t, p))
            .collect();
        for tp in &lost {
            member::remove(&mut m.assigned, &tp.topic, tp.partition);
            member::insert(&mut m.revoking, &tp.topic, tp.partition);
        }
        if !m.revoking.is_empty() {
            m.revoking_since.get_or_insert(now);
            return;
        }
        m.revoking_since = None;
        if m.epoch != self.assignment_epoch {
            m.previous_epoch = m.epoch;
            m.epoch = self.assignment_epoch;
        }
        // While withholding, partitions already held are kept, none added.
        if !withholding {
            for tp in &free {
                member::insert(&mut m.assigned, &tp.topic, tp.partition);
            }
        }
    }

    /// Whether member `m` holds exactly its target.
    fn holds_target(&self, m: &Member) -> bool {
        self.target.get(&m.member_id).map_or(m.assigned.is_empty(), |t| *t == m.assigned)
    }

    /// Checks a commit's member id and epoch (a commit with no member id
    /// is an admin/manual commit, refused while the group has members).
    pub(crate) fn check_commit(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
        adoptable: bool,
    ) -> Result<(), BrokerError> {
        if member_id.is_empty() {
            if self.members.is_empty() {
                return Ok(());
            }
            return Err(err(
                ErrorKind::NonEmptyGroup,
                format!("group '{group_id}' has {} member(s); a commit must come from one of them", self.members.len()),
            ));
        }
        let Some(m) = self.members.get(member_id) else {
            if adoptable && !self.evicted.iter().any(|e| e == member_id) {
                return Err(err(
                    ErrorKind::CoordinatorLoadInProgress,
                    format!("group '{group_id}': the coordinator is re-learning its members; retry"),
                ));
            }
            return Err(err(ErrorKind::UnknownMemberId, format!("group '{group_id}' has no member '{member_id}'")));
        };
        if member_epoch < m.epoch {
            return Err(err(
                ErrorKind::StaleMemberEpoch,
                format!("member '{member_id}' is at epoch {}, the commit says {member_epoch}", m.epoch),
            ));
        }
        if member_epoch > m.epoch {
            return Err(err(
                ErrorKind::FencedMemberEpoch,
                format!("member '{member_id}' is at epoch {}, the commit says {member_epoch}", m.epoch),
            ));
        }
        Ok(())
    }

    /// The members as `DescribeGroups` shows them.
    pub(crate) fn describe(&self) -> Vec<super::views::MemberDescription> {
        self.members
            .values()
            .map(|m| {
                let mut held = m.assigned.clone();
                for (t, p) in member::iter(&m.revoking) {
                    member::insert(&mut held, t, p);
                }
                super::views::MemberDescription {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    member_epoch: m.epoch,
                    assignment: held,
                    target_assignment: self.target.get(&m.member_id).cloned().unwrap_or_default(),
                    subscription: m.subscription.describe(),
                }
            })
            .collect()
    }
}

fn new_member(id: &str, instance_id: Option<String>, epoch: i32, now: Instant) -> Member {
    Member {
        member_id: id.to_string(),
        instance_id,
        client_id: String::new(),
        client_host: String::new(),
        epoch,
        previous_epoch: epoch,
        subscription: Subscription::Topics(Default::default()),
        assignor: None,
        session_timeout: DEFAULT_SESSION_TIMEOUT,
        rebalance_timeout: DEFAULT_REBALANCE_TIMEOUT,
        last_heartbeat: now,
        assigned: TopicPartitionSet::new(),
        revoking: TopicPartitionSet::new(),
        revoking_since: None,
        left: false,
    }
}

/// The heartbeat interval of a member with this session timeout (a third of
/// it, within 100 ms..5 s).
fn heartbeat_interval(session_timeout: Duration) -> Duration {
    (session_timeout / 3).clamp(Duration::from_millis(100), Duration::from_secs(5))
}

/// Whether `topic`-`partition` exists.
fn exists(topics: &BTreeMap<String, u32>, topic: &str, partition: u32) -> bool {
    topics.get(topic).is_some_and(|&n| partition < n)
}
