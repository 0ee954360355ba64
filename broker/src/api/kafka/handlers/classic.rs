//! The classic group protocol at the Kafka edge — JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup, DescribeGroups — over the coordinator's
//! `group::classic` state machine: a join waits until its generation forms,
//! a follower's sync until the leader's assignment arrives. A group is of
//! one kind at a time: a join while KIP-848 members hold the group is
//! INCONSISTENT_GROUP_PROTOCOL.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError as K;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    DescribeGroupsRequest, DescribeGroupsResponse, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

use crate::api::kafka::codes::code_of;
use crate::authorizer::{Resource, Session};
use crate::group::classic::{ClassicError, Join, Phase};
use crate::group::validate_group_id;
use crate::service::BrokerService;
use strata_metadata::AclOperation;

/// Kafka's code for a classic-group error.
pub(crate) fn code(e: &ClassicError) -> i16 {
    match e {
        ClassicError::UnknownMemberId => K::UnknownMemberId,
        ClassicError::IllegalGeneration => K::IllegalGeneration,
        ClassicError::RebalanceInProgress => K::RebalanceInProgress,
        ClassicError::MemberIdRequired(_) => K::MemberIdRequired,
        ClassicError::InconsistentGroupProtocol | ClassicError::GroupIsConsumerProtocol => K::InconsistentGroupProtocol,
        ClassicError::InvalidSessionTimeout => K::InvalidSessionTimeout,
        ClassicError::FencedInstanceId => K::FencedInstanceId,
    }
    .code()
}

/// An error code if this broker cannot serve `group_id` as a classic group.
async fn refuse(core: &BrokerService, group_id: &str) -> Option<i16> {
    if let Err(e) = validate_group_id(group_id) {
        return Some(code_of(e.kind()));
    }
    match core.find_coordinator(group_id).await {
        Err(e) => Some(code_of(e.kind())),
        Ok(c) if c.node_id != core.config.node_id => Some(K::NotCoordinator.code()),
        Ok(_) => None,
    }
}

/// The answer for a member whose group is not here: NOT_COORDINATOR when
/// the group moved to another coordinator while the request waited (the
/// client finds the new one), UNKNOWN_MEMBER_ID otherwise.
fn gone(core: &BrokerService, group_id: &str) -> i16 {
    if core.coordinates(group_id) {
        K::UnknownMemberId.code()
    } else {
        K::NotCoordinator.code()
    }
}

fn ms(v: i32) -> Duration {
    Duration::from_millis(u64::try_from(v).unwrap_or(0))
}

/// JoinGroup 0–9.
pub(crate) async fn join(
    core: &BrokerService,
    req: JoinGroupRequest,
    version: i16,
    client_id: &str,
    client_host: String,
) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default();
    r.generation_id = -1;
    r.member_id = req.member_id.clone();
    let group_id = req.group_id.0.to_string();
    if let Some(c) = refuse(core, &group_id).await {
        r.error_code = c;
        return r;
    }
    if core.consumer_group_is_active(&group_id).await {
        r.error_code = code(&ClassicError::GroupIsConsumerProtocol);
        return r;
    }
    let rebalance_timeout = if version >= 1 { ms(req.rebalance_timeout_ms) } else { ms(req.session_timeout_ms) };
    let join = Join {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
        client_id: client_id.to_string(),
        client_host,
        session_timeout: ms(req.session_timeout_ms),
        rebalance_timeout,
        protocol_type: req.protocol_type.to_string(),
        protocols: req.protocols.iter().map(|p| (p.name.to_string(), p.metadata.clone())).collect(),
        requires_known_member_id: version >= 4,
    };
    let groups = core.classic_groups.clone();
    let ticket = match groups.join(&group_id, join, Instant::now()) {
        Ok(t) => t,
        Err(e) => {
            tracing::debug!(group = %group_id, member = %req.member_id.as_str(), error = ?e, "JoinGroup refused");
            if let ClassicError::MemberIdRequired(id) = &e {
                r.member_id = StrBytes::from_string(id.clone());
            }
            r.error_code = code(&e);
            return r;
        }
    };
    let (member_id, since, mut changed) = (ticket.member_id, ticket.since, ticket.changed);
    r.member_id = StrBytes::from_string(member_id.clone());
    let give_up = Instant::now() + rebalance_timeout + Duration::from_secs(5);
    loop {
        let now = Instant::now();
        let state = groups.with(&group_id, now, |g| {
            (g.joined(&member_id, since), g.members.contains_key(&member_id), g.phase, g.protocol_type.clone())
        });
        let Some((joined, member, phase, protocol_type)) = state else {
            r.error_code = gone(core, &group_id);
            return r;
        };
        if let Some(mut j) = joined {
            if let Some(leader) = ticket.reported_leader.clone() {
                j.leader = leader;
                j.members.clear();
            }
            tracing::debug!(group = %group_id, member = %member_id, generation = j.generation, leader = %j.leader, "JoinGroup answered");
            r.generation_id = j.generation;
            r.protocol_type = Some(StrBytes::from_string(protocol_type));
            r.protocol_name = Some(StrBytes::from_string(j.protocol));
            r.leader = StrBytes::from_string(j.leader);
            r.members = j
                .members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    let mut m = JoinGroupResponseMember::default();
                    m.member_id = StrBytes::from_string(id);
                    m.group_instance_id = instance.map(StrBytes::from_string);
                    m.metadata = metadata;
                    m
                })
                .collect();
            return r;
        }
        if !member {
            r.error_code = K::UnknownMemberId.code();
            return r;
        }
        if now >= give_up {
            r.error_code = K::RebalanceInProgress.code();
            return r;
        }
        let wake = match phase {
            Phase::PreparingRebalance { deadline } => deadline.min(give_up),
            _ => give_up,
        };
        tokio::select! {
            _ = changed.changed() => {}
            _ = tokio::time::sleep_until(wake) => {}
            _ = core.stopping.cancelled() => {
                r.error_code = K::CoordinatorNotAvailable.code();
                return r;
            }
        }
    }
}

/// SyncGroup 0–5.
pub(crate) async fn sync(core: &BrokerService, req: SyncGroupRequest) -> SyncGroupResponse {
    let mut r = SyncGroupResponse::default();
    let group_id = req.group_id.0.to_string();
    if let Some(c) = refuse(core, &group_id).await {
        r.error_code = c;
        return r;
    }
    let groups = core.classic_groups.clone();
    let member_id = req.member_id.to_string();
    let assignments: Vec<(String, Bytes)> =
        req.assignments.iter().map(|a| (a.member_id.to_string(), a.assignment.clone())).collect();
    let Some(mut changed) = groups.with(&group_id, Instant::now(), |g| g.subscribe()) else {
        r.error_code = K::UnknownMemberId.code();
        return r;
    };
    let give_up = Instant::now() + Duration::from_secs(60);
    let mut first = Some(assignments);
    loop {
        let instance = req.group_instance_id.as_deref();
        match groups.sync(
            &group_id,
            &member_id,
            instance,
            req.generation_id,
            first.take().unwrap_or_default(),
            Instant::now(),
        ) {
            Ok(Some(assignment)) => {
                let (protocol_type, protocol) = groups
                    .with(&group_id, Instant::now(), |g| {
                        (g.protocol_type.clone(), g.protocol.clone().unwrap_or_default())
                    })
                    .unwrap_or_default();
                r.protocol_type = Some(StrBytes::from_string(protocol_type));
                r.protocol_name = Some(StrBytes::from_string(protocol));
                r.assignment = assignment;
                return r;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(group = %group_id, member = %member_id, generation = req.generation_id, error = ?e, "SyncGroup refused");
                r.error_code = if e == ClassicError::UnknownMemberId { gone(core, &group_id) } else { code(&e) };
                return r;
            }
        }
        if Instant::now() >= give_up {
            r.error_code = K::RebalanceInProgress.code();
            return r;
        }
        tokio::select! {
            _ = changed.changed() => {}
            _ = tokio::time::sleep_until(give_up) => {}
            _ = core.stopping.cancelled() => {
                r.error_code = K::CoordinatorNotAvailable.code();
                return r;
            }
        }
    }
}

/// Heartbeat 0–4.
pub(crate) async fn heartbeat(core: &BrokerService, req: HeartbeatRequest) -> HeartbeatResponse {
    let mut r = HeartbeatResponse::default();
    let group_id = req.group_id.0.to_string();
    if let Some(c) = refuse(core, &group_id).await {
        r.error_code = c;
        return r;
    }
    if let Err(e) = core.classic_groups.heartbeat(
        &group_id,
        &req.member_id,
        req.group_instance_id.as_deref(),
        req.generation_id,
        Instant::now(),
    ) {
        tracing::debug!(group = %group_id, member = %req.member_id.as_str(), generation = req.generation_id, error = ?e, "Heartbeat refused");
        r.error_code = code(&e);
    }
    r
}

/// LeaveGroup 0–5 (one member before v3, a batch after).
pub(crate) async fn leave(core: &BrokerService, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let mut r = LeaveGroupResponse::default();
    let group_id = req.group_id.0.to_string();
    if let Some(c) = refuse(core, &group_id).await {
        r.error_code = c;
        return r;
    }
    let now = Instant::now();
    if version < 3 {
        if let Err(e) = core.classic_groups.leave(&group_id, &req.member_id, None, now) {
            r.error_code = code(&e);
        }
        return r;
    }
    for m in req.members {
        let mut out = MemberResponse::default();
        out.member_id = m.member_id.clone();
        out.group_instance_id = m.group_instance_id.clone();
        let instance = m.group_instance_id.as_ref().map(|i| i.to_string());
        if let Err(e) = core.classic_groups.leave(&group_id, &m.member_id, instance.as_deref(), now) {
            out.error_code = code(&e);
        }
        r.members.push(out);
    }
    r
}

/// DescribeGroups 0–5: classic groups with their members' metadata and
/// assignments; KIP-848 groups with their members; others `Dead`.
pub(crate) async fn describe(
    core: &BrokerService,
    session: &Session,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut r = DescribeGroupsResponse::default();
    for id in req.groups {
        let mut d = DescribedGroup::default();
        d.group_id = id.clone();
        d.authorized_operations = i32::MIN;
        let group_id = id.0.to_string();
        if let Err(e) = core.authorize(session, AclOperation::Describe, Resource::Group(&group_id)) {
            d.error_code = code_of(e.kind());
            r.groups.push(d);
            continue;
        }
        if let Some((state, protocol_type, protocol, members)) = core.classic_groups.describe(&group_id) {
            d.group_state = StrBytes::from_static_str(state);
            d.protocol_type = StrBytes::from_string(protocol_type);
            d.protocol_data = StrBytes::from_string(protocol);
            d.members = members
                .into_iter()
                .map(|(m, metadata)| {
                    let mut dm = DescribedGroupMember::default();
                    dm.member_id = StrBytes::from_string(m.id);
                    dm.group_instance_id = m.instance_id.map(StrBytes::from_string);
                    dm.client_id = StrBytes::from_string(m.client_id);
                    dm.client_host = StrBytes::from_string(m.client_host);
                    dm.member_metadata = metadata;
                    dm.member_assignment = m.assignment;
                    dm
                })
                .collect();
        } else {
            match core.describe_groups(vec![group_id]).await.pop().map(|(_, d)| d) {
                Some(Ok(g)) if !g.members.is_empty() || g.state.as_str() != "dead" => {
                    d.group_state = StrBytes::from_static_str(super::groups::kafka_state(g.state.as_str()));
                    d.protocol_type = StrBytes::from_static_str("consumer");
                    d.members = g
                        .members
                        .into_iter()
                        .map(|m| {
                            let mut dm = DescribedGroupMember::default();
                            dm.member_id = StrBytes::from_string(m.member_id);
                            dm.group_instance_id = m.instance_id.map(StrBytes::from_string);
                            dm.client_id = StrBytes::from_string(m.client_id);
                            dm.client_host = StrBytes::from_string(m.client_host);
                            dm
                        })
                        .collect();
                }
                Some(Err(e)) if e.kind() != crate::error::ErrorKind::GroupIdNotFound => {
                    d.error_code = code_of(e.kind())
                }
                _ => d.group_state = StrBytes::from_static_str("Dead"),
            }
        }
        r.groups.push(d);
    }
    r
}
