//! Kafka's classic consumer-group protocol (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup): the membership and generation state machine of
//! groups whose members assign partitions themselves (the leader member
//! computes the assignment, the coordinator relays it). What `subscribe()`
//! uses in kafka-python, kafkajs and librdkafka's default protocol.
//!
//! State, per group: Empty → PreparingRebalance (members (re)join until all
//! known members did or the rebalance timeout passes) → CompletingRebalance
//! (a new generation; the leader gets every member's metadata and sends the
//! assignment) → Stable. A join, a leave or an expired session starts the
//! next rebalance. Membership lives in memory on the coordinator; committed
//! offsets go to `__consumer_offsets` like every other commit. Waiting
//! (a join until the rebalance completes, a sync until the leader's
//! assignment) is done by the caller on the group's change signal.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;

/// How long an empty group waits for more members before its first
/// generation (Kafka's `group.initial.rebalance.delay.ms`, scaled down).
pub(crate) const INITIAL_REBALANCE_DELAY: Duration = Duration::from_millis(500);
/// Session timeouts accepted (Kafka's group.min/max.session.timeout.ms).
const MIN_SESSION: Duration = Duration::from_millis(1000);
const MAX_SESSION: Duration = Duration::from_secs(1800);

/// Why a classic-group request fails, as Kafka's errors name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClassicError {
    /// The member is not in the group.
    UnknownMemberId,
    /// The generation is not the group's.
    IllegalGeneration,
    /// A rebalance is running: rejoin.
    RebalanceInProgress,
    /// A first join gets its member id and must join again with it.
    MemberIdRequired(String),
    /// The protocol type or protocols do not match the group's.
    InconsistentGroupProtocol,
    /// The session timeout is out of range.
    InvalidSessionTimeout,
    /// The group is used by KIP-848 members (one kind at a time).
    GroupIsConsumerProtocol,
    /// A request names a static member's instance id with a member id that
    /// is no longer that instance's: an older incarnation (KIP-345).
    FencedInstanceId,
}

/// What the first half of a JoinGroup hands the waiting handler.
#[derive(Debug)]
pub(crate) struct JoinTicket {
    /// The member's id (new for a first or a static member's join).
    pub(crate) member_id: String,
    /// The generation the join waits to pass.
    pub(crate) since: i32,
    /// Fires on the group's changes.
    pub(crate) changed: watch::Receiver<u64>,
    /// The leader to answer with instead of the group's: a static member
    /// that replaced its old incarnation in a stable group is told the
    /// leader's id from before the replacement, so that a former leader does
    /// not compute an assignment a stable group would never hand out; it
    /// syncs as a follower and gets its stored assignment back.
    pub(crate) reported_leader: Option<String>,
}

/// One member of a classic group.
#[derive(Debug, Clone)]
pub(crate) struct ClassicMember {
    /// Its id.
    pub(crate) id: String,
    /// `group.instance.id` of a static member.
    pub(crate) instance_id: Option<String>,
    /// The client's id and host, for DescribeGroups.
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    /// (protocol name, metadata) in the member's preference order.
    protocols: Vec<(String, Bytes)>,
    last_seen: Instant,
    /// Its part of the leader's assignment in this generation.
    pub(crate) assignment: Bytes,
}

/// A group's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// No members.
    Empty,
    /// Members are (re)joining until the deadline.
    PreparingRebalance {
        /// When the rebalance completes with whoever joined.
        deadline: Instant,
    },
    /// A generation was formed; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
}

impl Phase {
    /// Kafka's name of the state.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Phase::Empty => "Empty",
            Phase::PreparingRebalance { .. } => "PreparingRebalance",
            Phase::CompletingRebalance => "CompletingRebalance",
            Phase::Stable => "Stable",
        }
    }
}

/// One classic group.
#[derive(Debug)]
pub(crate) struct ClassicGroup {
    /// The group id, for log lines.
    id: String,
    pub(crate) phase: Phase,
    pub(crate) generation: i32,
    pub(crate) protocol_type: String,
    pub(crate) protocol: Option<String>,
    pub(crate) leader: Option<String>,
    pub(crate) members: BTreeMap<String, ClassicMember>,
    /// Ids handed out with MEMBER_ID_REQUIRED, not joined yet.
    pending: BTreeSet<String>,
    /// Members that (re)joined in the running rebalance.
    joined: BTreeSet<String>,
    /// Bumped on every change waiters care about.
    changed: watch::Sender<u64>,
}

/// A JoinGroup as the state machine sees it.
#[derive(Debug, Clone)]
pub(crate) struct Join {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) session_timeout: Duration,
    pub(crate) rebalance_timeout: Duration,
    pub(crate) protocol_type: String,
    pub(crate) protocols: Vec<(String, Bytes)>,
    /// Whether the client understands MEMBER_ID_REQUIRED (JoinGroup v4+).
    pub(crate) requires_known_member_id: bool,
}

/// A completed join: the generation and, for the leader, every member's
/// metadata for the chosen protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Joined {
    pub(crate) generation: i32,
    pub(crate) protocol: String,
    pub(crate) leader: String,
    pub(crate) member_id: String,
    pub(crate) members: Vec<(String, Option<String>, Bytes)>,
}

impl ClassicGroup {
    /// The member a request names: by member id, fenced when the request
    /// also names an instance id now held by another member id.
    fn member_mut(&mut self, member_id: &str, instance_id: Option<&str>) -> Result<&mut ClassicMember, ClassicError> {
        if let Some(instance) = instance_id {
            match self.members.values().find(|m| m.instance_id.as_deref() == Some(instance)) {
                Some(m) if m.id != member_id => return Err(ClassicError::FencedInstanceId),
                Some(_) => {}
                None => return Err(ClassicError::UnknownMemberId),
            }
        }
        self.members.get_mut(member_id).ok_or(ClassicError::UnknownMemberId)
    }

    fn new(id: &str, protocol_type: &str) -> Self {
        ClassicGroup {
            id: id.to_string(),
            phase: Phase::Empty,
            generation: 0,
            protocol_type: protocol_type.to_string(),
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: BTreeSet::new(),
            joined: BTreeSet::new(),
            changed: watch::channel(0).0,
        }
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// A signal that fires on the group's next change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn start_rebalance(&mut self, now: Instant, why: &str) {
        tracing::debug!(group = %self.id, generation = self.generation, members = self.members.len(), why, "classic group rebalance starts");
        let longest = self.members.values().map(|m| m.rebalance_timeout).max().unwrap_or(Duration::ZERO);
        let wait = if self.phase == Phase::Empty { INITIAL_REBALANCE_DELAY.min(longest) } else { longest };
        self.phase = Phase::PreparingRebalance { deadline: now + wait };
        self.joined.clear();
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
        }
        self.notify();
    }

    /// The protocol every member supports, preferring the leader's order.
    fn choose_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        first
            .protocols
            .iter()
            .map(|(name, _)| name)
            .find(|name| self.members.values().all(|m| m.protocols.iter().any(|(n, _)| n == *name)))
            .cloned()
    }

    /// Completes the running rebalance when every member rejoined (and an
    /// empty group's initial delay passed) or its deadline passed; members
    /// that did not rejoin are removed.
    fn complete_if_due(&mut self, now: Instant) {
        let Phase::PreparingRebalance { deadline } = self.phase else { return };
        let all = !self.members.is_empty() && self.members.keys().all(|id| self.joined.contains(id));
        let first_generation = self.generation == 0 || self.leader.is_none();
        // Due at the deadline, or once every member rejoined — except that
        // a first generation waits out its initial delay for more members.
        let due = now >= deadline || (all && !first_generation);
        if !due {
            return;
        }
        let joined = std::mem::take(&mut self.joined);
        self.members.retain(|id, _| joined.contains(id));
        if self.members.is_empty() {
            self.phase = Phase::Empty;
            self.leader = None;
            self.protocol = None;
            self.generation += 1;
            self.notify();
            return;
        }
        self.generation += 1;
        self.protocol = self.choose_protocol();
        if !self.leader.as_ref().is_some_and(|l| self.members.contains_key(l)) {
            self.leader = self.members.keys().next().cloned();
        }
        self.phase = Phase::CompletingRebalance;
        self.notify();
    }

    /// Removes members whose session expired; a removal starts a rebalance.
    fn expire(&mut self, now: Instant) {
        let before = self.members.len();
        let joining = matches!(self.phase, Phase::PreparingRebalance { .. });
        let joined = &self.joined;
        // A member waiting in a join is alive.
        self.members.retain(|id, m| {
            (joining && joined.contains(id)) || now.saturating_duration_since(m.last_seen) < m.session_timeout
        });
        if self.members.len() != before {
            if self.members.is_empty() && !joining {
                self.phase = Phase::Empty;
                self.leader = None;
                self.notify();
            } else if !joining {
                self.start_rebalance(now, "a member's session expired");
            }
        }
    }

    /// The join result of `member_id` once the group formed a generation
    /// it belongs to.
    pub(crate) fn joined(&self, member_id: &str, since_generation: i32) -> Option<Joined> {
        if self.generation <= since_generation || !matches!(self.phase, Phase::CompletingRebalance | Phase::Stable) {
            return None;
        }
        self.members.get(member_id)?;
        let protocol = self.protocol.clone()?;
        let leader = self.leader.clone()?;
        let members = if leader == member_id {
            self.members
                .values()
                .map(|m| {
                    let meta =
                        m.protocols.iter().find(|(n, _)| *n == protocol).map(|(_, b)| b.clone()).unwrap_or_default();
                    (m.id.clone(), m.instance_id.clone(), meta)
                })
                .collect()
        } else {
            Vec::new()
        };
        Some(Joined { generation: self.generation, protocol, leader, member_id: member_id.to_string(), members })
    }
}

/// Every classic group this broker coordinates.
#[derive(Debug, Default)]
pub(crate) struct ClassicGroups {
    groups: Mutex<HashMap<String, ClassicGroup>>,
}

impl ClassicGroups {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, ClassicGroup>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the group (if it exists), after completing a due
    /// rebalance and expiring silent members.
    pub(crate) fn with<R>(&self, group_id: &str, now: Instant, f: impl FnOnce(&mut ClassicGroup) -> R) -> Option<R> {
        let mut groups = self.lock();
        let g = groups.get_mut(group_id)?;
        g.expire(now);
        g.complete_if_due(now);
        Some(f(g))
    }

    /// Whether the group exists with members (a classic group).
    pub(crate) fn is_active(&self, group_id: &str) -> bool {
        self.lock().get(group_id).is_some_and(|g| !g.members.is_empty())
    }

    /// The first half of a JoinGroup: records the member and starts or
    /// joins a rebalance. Returns the member id, the generation it waits to
    /// pass, and the change signal to wait on.
    pub(crate) fn join(&self, group_id: &str, req: Join, now: Instant) -> Result<JoinTicket, ClassicError> {
        if !(MIN_SESSION..=MAX_SESSION).contains(&req.session_timeout) {
            return Err(ClassicError::InvalidSessionTimeout);
        }
        if req.protocols.is_empty() || req.protocol_type.is_empty() {
            return Err(ClassicError::InconsistentGroupProtocol);
        }
        let mut groups = self.lock();
        let g = groups.entry(group_id.to_string()).or_insert_with(|| ClassicGroup::new(group_id, &req.protocol_type));
        g.expire(now);
        g.complete_if_due(now);
        if g.members.is_empty() {
            g.protocol_type = req.protocol_type.clone();
        } else if g.protocol_type != req.protocol_type
            || !g.members.values().all(|m| {
                m.id == req.member_id || m.protocols.iter().any(|(n, _)| req.protocols.iter().any(|(r, _)| r == n))
            })
        {
            return Err(ClassicError::InconsistentGroupProtocol);
        }
        // A static member rejoining under a new id takes its old place (and
        // fences the old id).
        let mut member_id = req.member_id.clone();
        let mut replaced = None;
        if let Some(instance) = &req.instance_id {
            if let Some(old) =
                g.members.values().find(|m| m.instance_id.as_ref() == Some(instance)).map(|m| m.id.clone())
            {
                if member_id.is_empty() || member_id != old {
                    let m = g.members.remove(&old);
                    member_id = if member_id.is_empty() {
                        format!("{}-{}", req.client_id, uuid::Uuid::new_v4())
                    } else {
                        member_id
                    };
                    if let Some(mut m) = m {
                        m.id = member_id.clone();
                        g.members.insert(member_id.clone(), m);
                    }
                    replaced = Some(g.leader.clone().unwrap_or_default());
                    if g.leader.as_deref() == Some(old.as_str()) {
                        g.leader = Some(member_id.clone());
                    }
                    g.joined.remove(&old);
                    if matches!(g.phase, Phase::PreparingRebalance { .. }) {
                        g.joined.insert(member_id.clone());
                    }
                }
            }
        }
        if member_id.is_empty() {
            let id = format!("{}-{}", req.client_id, uuid::Uuid::new_v4());
            if req.requires_known_member_id && req.instance_id.is_none() {
                g.pending.insert(id.clone());
                return Err(ClassicError::MemberIdRequired(id));
            }
            member_id = id;
        } else if !g.members.contains_key(&member_id) && !g.pending.remove(&member_id) && req.instance_id.is_none() {
            return Err(ClassicError::UnknownMemberId);
        }
        let protocols_changed = g.members.get(&member_id).is_none_or(|m| m.protocols != req.protocols);
        let m = g.members.entry(member_id.clone()).or_insert_with(|| ClassicMember {
            id: member_id.clone(),
            instance_id: req.instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            session_timeout: req.session_timeout,
            rebalance_timeout: req.rebalance_timeout,
            protocols: Vec::new(),
            last_seen: now,
            assignment: Bytes::new(),
        });
        m.protocols = req.protocols;
        m.session_timeout = req.session_timeout;
        m.rebalance_timeout = req.rebalance_timeout;
        m.client_host = req.client_host;
        m.last_seen = now;
        let since = g.generation;
        let leader = g.leader.as_deref() == Some(member_id.as_str());
        let ticket = |member_id: String, since: i32, g: &ClassicGroup, reported_leader: Option<String>| JoinTicket {
            member_id,
            since,
            changed: g.subscribe(),
            reported_leader,
        };
        match g.phase {
            Phase::PreparingRebalance { .. } => {}
            // KIP-345: a static member replacing its old incarnation in a
            // stable group keeps the generation and its assignment.
            Phase::Stable if !protocols_changed && replaced.is_some() => {
                return Ok(ticket(member_id, since - 1, g, replaced));
            }
            // While a generation waits for its assignment, a replaced
            // incarnation cannot take part in it: start over.
            Phase::CompletingRebalance if replaced.is_some() => {
                g.start_rebalance(now, "a static member was replaced while its generation completed")
            }
            // Kafka's rule: a known member rejoining with the same protocols
            // gets the current generation back (a follower in a stable
            // group, anyone while the generation completes) without a
            // rebalance; the leader, a new member or changed protocols
            // start one.
            Phase::CompletingRebalance if !protocols_changed => return Ok(ticket(member_id, since - 1, g, None)),
            Phase::Stable if !protocols_changed && !leader => return Ok(ticket(member_id, since - 1, g, None)),
            Phase::Empty | Phase::CompletingRebalance | Phase::Stable => {
                tracing::debug!(group = group_id, member = %member_id, leader, protocols_changed, "a join starts a rebalance");
                g.start_rebalance(now, "a member joined")
            }
        }
        g.joined.insert(member_id.clone());
        g.complete_if_due(now);
        Ok(ticket(member_id, since, g, None))
    }

    /// SyncGroup: the leader's assignment is stored and the group becomes
    /// stable. Returns the member's assignment once there is one (`None`:
    /// wait on the signal and ask again).
    pub(crate) fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Result<Option<Bytes>, ClassicError> {
        self.with(group_id, now, |g| {
            g.member_mut(member_id, instance_id)?.last_seen = now;
            if generation != g.generation {
                return Err(ClassicError::IllegalGeneration);
            }
            match g.phase {
                Phase::PreparingRebalance { .. } | Phase::Empty => Err(ClassicError::RebalanceInProgress),
                Phase::CompletingRebalance => {
                    if g.leader.as_deref() == Some(member_id) {
                        for (id, a) in assignments {
                            if let Some(m) = g.members.get_mut(&id) {
                                m.assignment = a;
                            }
                        }
                        g.phase = Phase::Stable;
                        g.notify();
                        Ok(g.members.get(member_id).map(|m| m.assignment.clone()))
                    } else {
                        Ok(None)
                    }
                }
                Phase::Stable => Ok(g.members.get(member_id).map(|m| m.assignment.clone())),
            }
        })
        .unwrap_or(Err(ClassicError::UnknownMemberId))
    }

    /// Heartbeat: keeps the session; says when a rebalance needs a rejoin.
    pub(crate) fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), ClassicError> {
        self.with(group_id, now, |g| {
            g.member_mut(member_id, instance_id)?.last_seen = now;
            if matches!(g.phase, Phase::PreparingRebalance { .. }) {
                return Err(ClassicError::RebalanceInProgress);
            }
            if generation != g.generation {
                return Err(ClassicError::IllegalGeneration);
            }
            Ok(())
        })
        .unwrap_or(Err(ClassicError::UnknownMemberId))
    }

    /// LeaveGroup of one member (by id, or by instance id for a static
    /// member); the others rebalance.
    pub(crate) fn leave(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
    ) -> Result<(), ClassicError> {
        self.with(group_id, now, |g| {
            // By instance id, a member id (if given) must be the instance's
            // current one; an admin's removal names the instance only.
            let id = match instance_id {
                Some(i) => match g.members.values().find(|m| m.instance_id.as_deref() == Some(i)) {
                    Some(m) if !member_id.is_empty() && m.id != member_id => {
                        return Err(ClassicError::FencedInstanceId);
                    }
                    found => found.map(|m| m.id.clone()),
                },
                None => g.members.contains_key(member_id).then(|| member_id.to_string()),
            };
            let Some(id) = id else { return Err(ClassicError::UnknownMemberId) };
            g.members.remove(&id);
            g.joined.remove(&id);
            if g.members.is_empty() {
                g.phase = Phase::Empty;
                g.leader = None;
                g.notify();
            } else if !matches!(g.phase, Phase::PreparingRebalance { .. }) {
                g.start_rebalance(now, "a member left");
            } else {
                g.complete_if_due(now);
            }
            Ok(())
        })
        .unwrap_or(Err(ClassicError::UnknownMemberId))
    }

    /// Checks an offset commit from a member of a classic group. As in
    /// Kafka, a member may still commit for its generation while the next
    /// rebalance is being prepared (it is still consuming; a member closing
    /// after another left commits then), but not while a new generation
    /// waits for its assignment.
    pub(crate) fn check_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), ClassicError> {
        self.with(group_id, now, |g| {
            g.member_mut(member_id, instance_id)?.last_seen = now;
            if g.phase == Phase::CompletingRebalance {
                return Err(ClassicError::RebalanceInProgress);
            }
            if generation != g.generation {
                return Err(ClassicError::IllegalGeneration);
            }
            Ok(())
        })
        .unwrap_or(Err(ClassicError::UnknownMemberId))
    }

    /// Expires silent members and completes due rebalances in every group
    /// (the broker's periodic sweep); forgets empty groups.
    pub(crate) fn sweep(&self, now: Instant) {
        let mut groups = self.lock();
        for g in groups.values_mut() {
            g.expire(now);
            g.complete_if_due(now);
        }
        groups.retain(|_, g| !(g.members.is_empty() && g.pending.is_empty() && g.phase == Phase::Empty));
    }

    /// Drops every group `coordinated` says this broker no longer
    /// coordinates (its offsets partition moved): its members went to the
    /// new coordinator and rejoin there; kept here, the stale members would
    /// stall the group's next rebalance if leadership came back.
    pub(crate) fn retain_coordinated(&self, coordinated: impl Fn(&str) -> bool) {
        self.lock().retain(|id, g| {
            let keep = coordinated(id);
            if !keep {
                tracing::info!(group = %id, members = g.members.len(), "dropping a classic group this broker no longer coordinates");
                // Waiting joins and syncs see the group gone and answer.
                g.notify();
            }
            keep
        });
    }

    /// `(group id, state name, members)` of every classic group.
    pub(crate) fn list(&self) -> Vec<(String, &'static str, usize)> {
        self.lock().iter().map(|(id, g)| (id.clone(), g.phase.name(), g.members.len())).collect()
    }

    /// A group's state, protocol type, protocol and members (each with its
    /// metadata for that protocol) for DescribeGroups.
    pub(crate) fn describe(&self, group_id: &str) -> Option<Described> {
        let groups = self.lock();
        let g = groups.get(group_id)?;
        let protocol = g.protocol.clone().unwrap_or_default();
        let members = g
            .members
            .values()
            .map(|m| {
                let meta = m.protocols.iter().find(|(n, _)| *n == protocol).map(|(_, b)| b.clone()).unwrap_or_default();
                (m.clone(), meta)
            })
            .collect();
        Some((g.phase.name(), g.protocol_type.clone(), protocol, members))
    }
}

/// What DescribeGroups shows of a classic group: state name, protocol
/// type, protocol, and each member with its metadata.
pub(crate) type Described = (&'static str, String, String, Vec<(ClassicMember, Bytes)>);

/// The shared handle the broker keeps.
pub(crate) type SharedClassicGroups = Arc<ClassicGroups>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

    use super::*;

    fn join(id: &str, t: Duration) -> Join {
        Join {
            member_id: id.into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/h".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: t,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"m"))],
            requires_known_member_id: true,
        }
    }

    /// Two members joined without the member-id round trip, generation 1
    /// formed and synced: (groups, then, leader, follower).
    fn stable_pair(rt: Duration) -> (ClassicGroups, Instant, String, String) {
        let groups = ClassicGroups::default();
        let t0 = Instant::now();
        let mut j = join("", rt);
        j.requires_known_member_id = false;
        let a = groups.join("g", j.clone(), t0).unwrap().member_id;
        let b = groups.join("g", j, t0).unwrap().member_id;
        let t1 = t0 + INITIAL_REBALANCE_DELAY;
        let leader = groups.with("g", t1, |g| g.leader.clone()).unwrap().unwrap();
        let follower = if leader == a { b } else { a };
        groups.sync("g", &leader, None, 1, vec![], t1).unwrap();
        (groups, t1, leader, follower)
    }

    #[test]
    fn two_members_form_a_generation_the_leader_assigns_and_a_leave_rebalances() {
        let groups = ClassicGroups::default();
        let t0 = Instant::now();
        let rt = Duration::from_secs(5);
        let Err(ClassicError::MemberIdRequired(a)) = groups.join("g", join("", rt), t0) else { panic!("id first") };
        let Err(ClassicError::MemberIdRequired(b)) = groups.join("g", join("", rt), t0) else { panic!("id first") };
        assert!(matches!(groups.join("g", join("stranger", rt), t0), Err(ClassicError::UnknownMemberId)));
        let ticket = groups.join("g", join(&a, rt), t0).unwrap();
        let (a, since) = (ticket.member_id, ticket.since);
        let b = groups.join("g", join(&b, rt), t0).unwrap().member_id;
        // The empty group waits its initial delay for more members.
        assert_eq!(groups.with("g", t0, |g| g.joined(&a, since)).unwrap(), None);
        let t1 = t0 + INITIAL_REBALANCE_DELAY;
        let ja = groups.with("g", t1, |g| g.joined(&a, since)).unwrap().expect("generation formed");
        let jb = groups.with("g", t1, |g| g.joined(&b, since)).unwrap().expect("generation formed");
        assert_eq!((ja.generation, jb.generation), (1, 1));
        assert_eq!(ja.leader, jb.leader);
        let (leader, follower) = if ja.leader == a { (&a, &b) } else { (&b, &a) };
        let leader_view = if ja.leader == a { &ja } else { &jb };
        assert_eq!(leader_view.members.len(), 2, "the leader sees every member");
        assert_eq!(groups.sync("g", follower, None, 1, vec![], t1).unwrap(), None, "the follower waits for the leader");
        assert!(matches!(groups.heartbeat("g", follower, None, 0, t1), Err(ClassicError::IllegalGeneration)));
        let assignment = vec![(a.clone(), Bytes::from_static(b"A")), (b.clone(), Bytes::from_static(b"B"))];
        assert!(groups.sync("g", leader, None, 1, assignment, t1).unwrap().is_some());
        assert_eq!(groups.sync("g", &a, None, 1, vec![], t1).unwrap(), Some(Bytes::from_static(b"A")));
        assert_eq!(groups.sync("g", &b, None, 1, vec![], t1).unwrap(), Some(Bytes::from_static(b"B")));
        groups.heartbeat("g", &a, None, 1, t1).unwrap();
        groups.check_commit("g", &a, None, 1, t1).unwrap();
        // b leaves: a must rejoin for generation 2.
        groups.leave("g", &b, None, t1).unwrap();
        assert!(matches!(groups.heartbeat("g", &a, None, 1, t1), Err(ClassicError::RebalanceInProgress)));
        groups
            .check_commit("g", &a, None, 1, t1)
            .expect("generation 1 may still commit while the rebalance is prepared");
        let since = groups.join("g", join(&a, rt), t1).unwrap().since;
        let j = groups.with("g", t1, |g| g.joined(&a, since)).unwrap().expect("all rejoined: no wait");
        assert_eq!((j.generation, j.leader.as_str()), (2, a.as_str()));
    }

    #[test]
    fn a_member_that_does_not_rejoin_is_dropped_at_the_deadline_and_sessions_expire() {
        let rt = Duration::from_secs(3);
        let (groups, t1, leader, other) = stable_pair(rt);
        let gen1 = groups.with("g", t1, |g| g.generation).unwrap();
        assert_eq!(gen1, 1);
        // The leader rejoins (a rebalance), the other stays silent: at the
        // deadline it is out.
        let since = groups.join("g", join(&leader, rt), t1).unwrap().since;
        assert_eq!(groups.with("g", t1, |g| g.joined(&leader, since)).unwrap(), None, "waits for the other");
        let j = groups.with("g", t1 + rt, |g| g.joined(&leader, since)).unwrap().expect("formed without it");
        assert_eq!(j.members.iter().map(|m| m.0.clone()).collect::<Vec<_>>(), vec![leader.clone()]);
        assert!(matches!(groups.heartbeat("g", &other, None, gen1, t1 + rt), Err(ClassicError::UnknownMemberId)));
        // The leader goes silent past its session: the group empties.
        groups.sweep(t1 + rt + Duration::from_secs(11));
        assert!(!groups.is_active("g"));
    }

    #[test]
    fn a_follower_rejoining_a_stable_group_gets_the_current_generation() {
        let rt = Duration::from_secs(5);
        let (groups, t1, leader, follower) = stable_pair(rt);
        let since = groups.join("g", join(&follower, rt), t1).unwrap().since;
        let again = groups.with("g", t1, |g| g.joined(&follower, since)).unwrap().expect("answered at once");
        assert_eq!(again.generation, 1, "no new generation for a follower's rejoin");
        groups.heartbeat("g", &leader, None, 1, t1).unwrap();
        // The leader's rejoin does rebalance.
        groups.join("g", join(&leader, rt), t1).unwrap();
        assert!(matches!(groups.heartbeat("g", &follower, None, 1, t1), Err(ClassicError::RebalanceInProgress)));
    }

    /// KIP-345: a static member that restarts (a join with its instance id
    /// and no member id) takes its old place in a stable group without a
    /// rebalance, keeps its assignment, is told the old leader (so a former
    /// leader syncs as a follower), and its old incarnation is fenced.
    #[test]
    fn a_restarted_static_member_keeps_its_assignment_without_a_rebalance() {
        let groups = ClassicGroups::default();
        let t0 = Instant::now();
        let rt = Duration::from_secs(5);
        let static_join = |id: &str, instance: &str| {
            let mut j = join(id, rt);
            j.instance_id = Some(instance.into());
            j
        };
        let a = groups.join("g", static_join("", "a"), t0).unwrap().member_id;
        let b = groups.join("g", static_join("", "b"), t0).unwrap().member_id;
        let t1 = t0 + INITIAL_REBALANCE_DELAY;
        let leader = groups.with("g", t1, |g| g.leader.clone()).unwrap().unwrap();
        let (leader_instance, other) = if leader == a { ("a", b.clone()) } else { ("b", a.clone()) };
        let assignment = vec![(a.clone(), Bytes::from_static(b"A")), (b.clone(), Bytes::from_static(b"B"))];
        groups.sync("g", &leader, None, 1, assignment, t1).unwrap();
        let leader_assignment = if leader == a { Bytes::from_static(b"A") } else { Bytes::from_static(b"B") };

        // The leader's process restarts: a new member id, same instance.
        let ticket = groups.join("g", static_join("", leader_instance), t1).unwrap();
        assert_ne!(ticket.member_id, leader);
        assert_eq!(ticket.reported_leader.as_deref(), Some(leader.as_str()), "told the old leader id");
        let j = groups.with("g", t1, |g| g.joined(&ticket.member_id, ticket.since)).unwrap().expect("at once");
        assert_eq!(j.generation, 1, "no new generation");
        groups.heartbeat("g", &other, None, 1, t1).expect("the other member sees no rebalance");
        let got = groups.sync("g", &ticket.member_id, Some(leader_instance), 1, vec![], t1).unwrap();
        assert_eq!(got, Some(leader_assignment), "its assignment survives the restart");
        // The old incarnation is fenced, by instance id, in every request.
        let fenced = Err(ClassicError::FencedInstanceId);
        assert_eq!(groups.heartbeat("g", &leader, Some(leader_instance), 1, t1), fenced);
        assert_eq!(groups.check_commit("g", &leader, Some(leader_instance), 1, t1), fenced);
        assert_eq!(groups.leave("g", &leader, Some(leader_instance), t1), fenced);
        assert_eq!(groups.heartbeat("g", &leader, None, 1, t1), Err(ClassicError::UnknownMemberId));
        groups.heartbeat("g", &ticket.member_id, Some(leader_instance), 1, t1).unwrap();
        // An admin removes the instance by its id alone: a rebalance.
        groups.leave("g", "", Some(leader_instance), t1).unwrap();
        assert_eq!(groups.heartbeat("g", &other, None, 1, t1), Err(ClassicError::RebalanceInProgress));
    }

    /// A group whose offsets partition moved away is dropped, and a member
    /// waiting in a join is woken to answer (its signal fires).
    #[test]
    fn groups_this_broker_no_longer_coordinates_are_dropped() {
        let rt = Duration::from_secs(5);
        let (groups, t1, leader, _) = stable_pair(rt);
        let mut other = join("", rt);
        other.requires_known_member_id = false;
        groups.join("h", other, t1).unwrap();
        let mut waiting = groups.join("g", join(&leader, rt), t1).unwrap().changed;
        waiting.mark_unchanged();
        groups.retain_coordinated(|id| id == "h");
        assert!(waiting.has_changed().unwrap_or(true), "the waiting join is woken");
        assert!(!groups.is_active("g") && groups.is_active("h"));
        assert!(groups.with("g", t1, |_| ()).is_none());
    }

    #[test]
    fn protocols_must_overlap_and_sessions_be_in_range() {
        let groups = ClassicGroups::default();
        let t0 = Instant::now();
        let mut j = join("", Duration::from_secs(1));
        j.requires_known_member_id = false;
        groups.join("g", j.clone(), t0).unwrap();
        let mut other = j.clone();
        other.protocols = vec![("cooperative-sticky".into(), Bytes::new())];
        assert_eq!(groups.join("g", other, t0).unwrap_err(), ClassicError::InconsistentGroupProtocol);
        let mut short = j;
        short.session_timeout = Duration::from_millis(10);
        assert_eq!(groups.join("h", short, t0).unwrap_err(), ClassicError::InvalidSessionTimeout);
    }
}
