//! OffsetCommit and OffsetFetch: a group's committed offsets, the same ones
//! the gRPC door and `strata group` see. A commit with no member id (a
//! consumer that assigns its partitions itself) is accepted while the group
//! has no members, as in Kafka; a member's commit carries its member id and
//! epoch (KIP-848, OffsetCommit v9).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse};
use kafka_protocol::protocol::StrBytes;
use strata_record::TopicPartition;

use super::topic_name;
use crate::api::kafka::codes::code_of;
use crate::authorizer::{Resource, Session};
use crate::group::views::{CommitPartition, GroupOffset, OffsetCommit, PartitionCommit};
use crate::service::BrokerService;
use strata_metadata::AclOperation;

/// Answers an OffsetCommit.
pub(crate) async fn commit(core: &BrokerService, session: &Session, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let mut r = OffsetCommitResponse::default();
    let mut partitions = Vec::new();
    let mut refused = Vec::new();
    let group_denied = !core.is_authorized(session, AclOperation::Read, Resource::Group(&req.group_id.0));
    for t in &req.topics {
        let topic_denied = !core.is_authorized(session, AclOperation::Read, Resource::Topic(&t.name.0));
        for p in &t.partitions {
            if group_denied || topic_denied {
                let code = if group_denied {
                    ResponseError::GroupAuthorizationFailed
                } else {
                    ResponseError::TopicAuthorizationFailed
                };
                refused.push((t.name.0.to_string(), p.partition_index, code.code()));
                continue;
            }
            match (u32::try_from(p.partition_index), u64::try_from(p.committed_offset)) {
                (Ok(partition), Ok(offset)) => partitions.push(CommitPartition {
                    tp: TopicPartition { topic: t.name.0.to_string(), partition },
                    offset,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default(),
                }),
                _ => refused.push((t.name.0.to_string(), p.partition_index, ResponseError::InvalidRequest.code())),
            }
        }
    }
    let group_id = req.group_id.0.to_string();
    let mut commit = OffsetCommit {
        group_id: group_id.clone(),
        member_id: req.member_id.to_string(),
        member_epoch: req.generation_id_or_member_epoch,
        partitions,
    };
    // A member of a classic group: checked against its generation, then
    // stored like any commit from outside the KIP-848 membership.
    let classic = if !commit.member_id.is_empty() && core.classic_groups.is_active(&group_id) {
        let checked = core.classic_groups.check_commit(
            &group_id,
            &commit.member_id,
            req.group_instance_id.as_deref(),
            commit.member_epoch,
            tokio::time::Instant::now(),
        );
        commit.member_id = String::new();
        commit.member_epoch = -1;
        Some(checked)
    } else {
        None
    };
    let mut answers: Vec<(String, i32, i16)> = Vec::new();
    let outcome = match classic {
        _ if commit.partitions.is_empty() && !refused.is_empty() => Ok(Default::default()),
        Some(Err(e)) => Err(super::classic::code(&e)),
        _ => core.commit_offsets(commit).await.map_err(|e| code_of(e.kind())),
    };
    match outcome {
        Ok(outcome) => {
            let write_error =
                outcome.write_error.as_ref().map_or(ResponseError::UnknownServerError.code(), |e| code_of(e.kind()));
            for (tp, result) in outcome.partitions {
                let code = match result {
                    PartitionCommit::Committed => 0,
                    PartitionCommit::Rejected(e) => code_of(e.kind()),
                    PartitionCommit::WriteFailed => write_error,
                };
                answers.push((tp.topic, tp.partition as i32, code));
            }
        }
        Err(code) => {
            for t in &req.topics {
                for p in &t.partitions {
                    if !refused.iter().any(|(rt, rp, _)| *rt == t.name.0.as_str() && *rp == p.partition_index) {
                        answers.push((t.name.0.to_string(), p.partition_index, code));
                    }
                }
            }
        }
    }
    answers.extend(refused);
    for (topic, partition, code) in answers {
        let mut p = OffsetCommitResponsePartition::default();
        p.partition_index = partition;
        p.error_code = code;
        match r.topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.partitions.push(p),
            None => {
                let mut t = OffsetCommitResponseTopic::default();
                t.name = topic_name(&topic);
                t.partitions.push(p);
                r.topics.push(t);
            }
        }
    }
    r
}

/// Answers an OffsetFetch: v1–7 one group (top-level fields), v8 a batch of
/// groups. Topics null (v2+) means every topic the group committed.
pub(crate) async fn fetch(
    core: &BrokerService,
    session: &Session,
    req: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let mut r = OffsetFetchResponse::default();
    if version >= 8 {
        for g in req.groups {
            let topics = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| {
                        (
                            t.name.0.to_string(),
                            t.partition_indexes.iter().filter_map(|&p| u32::try_from(p).ok()).collect(),
                        )
                    })
                    .collect()
            });
            let mut out = OffsetFetchResponseGroup::default();
            out.group_id = g.group_id.clone();
            match group_offsets(core, session, &g.group_id.0, topics).await {
                Err(code) => out.error_code = code,
                Ok(offsets) => {
                    for o in offsets {
                        let mut p = OffsetFetchResponsePartitions::default();
                        (p.partition_index, p.committed_offset, p.metadata) = fields(&o);
                        p.committed_leader_epoch = -1;
                        match out.topics.iter_mut().find(|t| t.name.0.as_str() == o.tp.topic) {
                            Some(t) => t.partitions.push(p),
                            None => {
                                let mut t = OffsetFetchResponseTopics::default();
                                t.name = topic_name(&o.tp.topic);
                                t.partitions.push(p);
                                out.topics.push(t);
                            }
                        }
                    }
                }
            }
            r.groups.push(out);
        }
        return r;
    }
    let topics = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| {
                (t.name.0.to_string(), t.partition_indexes.iter().filter_map(|&p| u32::try_from(p).ok()).collect())
            })
            .collect()
    });
    match group_offsets(core, session, &req.group_id.0, topics).await {
        Err(code) => r.error_code = code,
        Ok(offsets) => {
            for o in offsets {
                let mut p = OffsetFetchResponsePartition::default();
                (p.partition_index, p.committed_offset, p.metadata) = fields(&o);
                p.committed_leader_epoch = -1;
                match r.topics.iter_mut().find(|t| t.name.0.as_str() == o.tp.topic) {
                    Some(t) => t.partitions.push(p),
                    None => {
                        let mut t = OffsetFetchResponseTopic::default();
                        t.name = topic_name(&o.tp.topic);
                        t.partitions.push(p);
                        r.topics.push(t);
                    }
                }
            }
        }
    }
    r
}

/// The committed offsets asked for (`None`: every topic committed).
/// The group needs describe; topics the caller may not describe are
/// left out (Kafka answers them with an error; clients skip both alike).
async fn group_offsets(
    core: &BrokerService,
    session: &Session,
    group_id: &str,
    topics: Option<Vec<(String, Vec<u32>)>>,
) -> Result<Vec<GroupOffset>, i16> {
    core.authorize(session, AclOperation::Describe, Resource::Group(group_id)).map_err(|e| code_of(e.kind()))?;
    let mut offsets = core.fetch_offsets(group_id, topics.unwrap_or_default()).await.map_err(|e| code_of(e.kind()))?;
    offsets.retain(|o| core.is_authorized(session, AclOperation::Describe, Resource::Topic(&o.tp.topic)));
    Ok(offsets)
}

/// (partition, offset or -1, metadata) of one committed offset.
fn fields(o: &GroupOffset) -> (i32, i64, Option<StrBytes>) {
    match &o.committed {
        Some(v) => (o.tp.partition as i32, v.offset, Some(StrBytes::from_string(v.metadata.clone()))),
        None => (o.tp.partition as i32, -1, Some(StrBytes::from_static_str(""))),
    }
}
