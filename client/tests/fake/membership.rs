//! The fake's group membership (a small KIP-848 coordinator): members join
//! with epoch 0, get a server-generated id and a round-robin target over the
//! partitions of the topics they subscribe to; a member is given a partition
//! only once no other member owns it or has it assigned (revoke before
//! assign); leaving with -1 frees the partitions, -2 (static) keeps them
//! for the instance id; members silent for their session timeout are
//! evicted. Patterns: `prefix.*` or an exact name.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use strata_protocol::v1::*;

use super::{err, State};

type Tp = (String, u32);

#[derive(Debug, Clone)]
pub(crate) struct FakeMember {
    pub id: String,
    pub instance_id: String,
    pub client_id: String,
    pub epoch: i32,
    pub topics: Vec<String>,
    pub regex: String,
    pub owned: BTreeSet<Tp>,
    /// The assignment last returned.
    pub assigned: BTreeSet<Tp>,
    pub session_timeout: Duration,
    pub last_seen: Instant,
    /// A static member that left with -2: its partitions stay reserved.
    pub left_static: bool,
}

#[derive(Debug, Default)]
pub(crate) struct FakeGroup {
    pub epoch: i32,
    pub members: BTreeMap<String, FakeMember>,
    pub next_id: u32,
}

impl FakeGroup {
    pub(crate) fn member(&self, id: &str) -> Option<&FakeMember> {
        self.members.get(id)
    }

    /// Commit validation: (member id, epoch) against the member's epoch.
    pub(crate) fn check_commit(&self, member_id: &str, epoch: i32) -> Option<Error> {
        let live = self.members.values().filter(|m| !m.left_static).count();
        if member_id.is_empty() {
            return if live == 0 { None } else { err(ErrorCode::NonEmptyGroup, "the group has members") };
        }
        let Some(m) = self.members.get(member_id) else {
            return err(ErrorCode::UnknownMemberId, format!("unknown member {member_id}"));
        };
        if epoch < m.epoch {
            err(ErrorCode::StaleMemberEpoch, format!("epoch {epoch} < {}", m.epoch))
        } else if epoch > m.epoch {
            err(ErrorCode::FencedMemberEpoch, format!("epoch {epoch} > {}", m.epoch))
        } else {
            None
        }
    }
}

fn matches(regex: &str, topic: &str) -> bool {
    if topic.starts_with("__") {
        return false;
    }
    match regex.strip_suffix(".*") {
        Some(prefix) => topic.starts_with(prefix),
        None => regex == topic,
    }
}

fn subscribed(s: &State, m: &FakeMember) -> Vec<Tp> {
    let mut out = Vec::new();
    for (name, t) in &s.topics {
        let wanted = m.topics.contains(name) || (!m.regex.is_empty() && matches(&m.regex, name));
        if wanted {
            out.extend((0..t.partitions.len() as u32).map(|p| (name.clone(), p)));
        }
    }
    out
}

/// Round-robin targets over the members (sorted by id) of what each
/// subscribes to.
fn targets(s: &State, g: &FakeGroup) -> BTreeMap<String, BTreeSet<Tp>> {
    let ids: Vec<&String> = g.members.keys().collect();
    let mut out: BTreeMap<String, BTreeSet<Tp>> = ids.iter().map(|id| ((*id).clone(), BTreeSet::new())).collect();
    let mut all: BTreeSet<Tp> = BTreeSet::new();
    for m in g.members.values() {
        all.extend(subscribed(s, m));
    }
    for (i, tp) in all.into_iter().enumerate() {
        // The i-th partition goes to the i-th member (round robin) among
        // those subscribed to its topic.
        let eligible: Vec<&String> =
            ids.iter().copied().filter(|id| subscribed(s, &g.members[*id]).contains(&tp)).collect();
        if !eligible.is_empty() {
            let id = eligible[i % eligible.len()];
            out.entry(id.clone()).or_default().insert(tp);
        }
    }
    out
}

fn topic_partitions(tps: &BTreeSet<Tp>) -> Vec<TopicPartitions> {
    let mut out: Vec<TopicPartitions> = Vec::new();
    for (t, p) in tps {
        match out.iter_mut().find(|x| &x.topic == t) {
            Some(x) => x.partitions.push(*p),
            None => out.push(TopicPartitions { topic: t.clone(), partitions: vec![*p] }),
        }
    }
    out
}

fn failed(code: ErrorCode, message: impl Into<String>) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse { error: err(code, message), ..Default::default() }
}

/// Serves one heartbeat at broker `id`.
pub(super) fn heartbeat(s: &mut State, id: u32, r: ConsumerGroupHeartbeatRequest) -> ConsumerGroupHeartbeatResponse {
    s.heartbeats.push(r.clone());
    if let Some(error) = s.group_check(id, &r.group_id) {
        return ConsumerGroupHeartbeatResponse { error: Some(error), ..Default::default() };
    }
    let now = Instant::now();
    let mut g = s.membership.remove(&r.group_id).unwrap_or_default();
    g.members.retain(|_, m| now.duration_since(m.last_seen) < m.session_timeout);
    let response = serve(s, &mut g, r.clone(), now);
    // The describe view of the members.
    let described = g
        .members
        .values()
        .filter(|m| !m.left_static)
        .map(|m| GroupMemberDescription {
            member_id: m.id.clone(),
            instance_id: m.instance_id.clone(),
            client_id: m.client_id.clone(),
            client_host: "127.0.0.1".into(),
            member_epoch: m.epoch,
            assignment: topic_partitions(&m.owned),
            target_assignment: topic_partitions(&m.assigned),
            subscription: if m.regex.is_empty() { m.topics.join(",") } else { format!("/{}/", m.regex) },
        })
        .collect();
    s.members.insert(r.group_id.clone(), described);
    s.offsets.entry(r.group_id.clone()).or_default();
    s.membership.insert(r.group_id, g);
    response
}

fn serve(
    s: &State,
    g: &mut FakeGroup,
    r: ConsumerGroupHeartbeatRequest,
    now: Instant,
) -> ConsumerGroupHeartbeatResponse {
    let member_id = match r.member_epoch {
        0 => {
            let reclaimed = (!r.instance_id.is_empty())
                .then(|| g.members.values().find(|m| m.instance_id == r.instance_id).map(|m| m.id.clone()))
                .flatten()
                .and_then(|old| g.members.remove(&old));
            g.next_id += 1;
            let id = format!("member-{}", g.next_id);
            let assigned = reclaimed.map(|m| m.assigned).unwrap_or_default();
            g.members.insert(
                id.clone(),
                FakeMember {
                    id: id.clone(),
                    instance_id: r.instance_id.clone(),
                    client_id: r.client_id.clone(),
                    epoch: 0,
                    topics: Vec::new(),
                    regex: String::new(),
                    owned: BTreeSet::new(),
                    assigned,
                    session_timeout: Duration::from_millis(u64::from(r.session_timeout_ms.max(1))),
                    last_seen: now,
                    left_static: false,
                },
            );
            id
        }
        -1 | -2 => {
            match g.members.get_mut(&r.member_id) {
                None => return failed(ErrorCode::UnknownMemberId, format!("unknown member {}", r.member_id)),
                Some(m) if r.member_epoch == -2 && !m.instance_id.is_empty() => {
                    m.left_static = true;
                    m.owned.clear();
                    m.last_seen = now;
                }
                Some(_) => {
                    g.members.remove(&r.member_id);
                }
            }
            return ConsumerGroupHeartbeatResponse {
                member_id: r.member_id,
                member_epoch: r.member_epoch,
                ..Default::default()
            };
        }
        epoch => {
            let Some(m) = g.members.get(&r.member_id) else {
                return failed(ErrorCode::UnknownMemberId, format!("unknown member {}", r.member_id));
            };
            if m.left_static {
                return failed(ErrorCode::UnknownMemberId, "left");
            }
            if epoch > m.epoch {
                return failed(ErrorCode::FencedMemberEpoch, format!("epoch {epoch} > {}", m.epoch));
            }
            r.member_id.clone()
        }
    };
    {
        let m = g.members.get_mut(&member_id).expect("member just found or created");
        m.topics = r.subscribed_topic_names.clone();
        m.regex = r.subscribed_topic_regex.clone();
        m.owned =
            r.owned_partitions.iter().flat_map(|tp| tp.partitions.iter().map(|p| (tp.topic.clone(), *p))).collect();
        m.last_seen = now;
    }
    let target = targets(s, g).remove(&member_id).unwrap_or_default();
    let taken: BTreeSet<Tp> = g
        .members
        .values()
        .filter(|o| o.id != member_id)
        .flat_map(|o| o.owned.iter().chain(&o.assigned).cloned())
        .collect();
    let m = &g.members[&member_id];
    let assignment: BTreeSet<Tp> =
        target.into_iter().filter(|tp| m.owned.contains(tp) || !taken.contains(tp)).collect();
    let bump = assignment != m.assigned || m.epoch == 0;
    if bump {
        g.epoch += 1;
    }
    let epoch = g.epoch;
    let m = g.members.get_mut(&member_id).expect("member");
    if bump {
        m.epoch = epoch;
        m.assigned = assignment;
    }
    ConsumerGroupHeartbeatResponse {
        error: None,
        member_id,
        member_epoch: m.epoch,
        heartbeat_interval_ms: s.heartbeat_interval_ms,
        assignment: topic_partitions(&m.assigned),
        coordinator: 1,
        // The fake hands out the whole target at once: never moving.
        reconciling: false,
    }
}
