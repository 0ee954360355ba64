//! The group RPCs at the gRPC edge: `FindCoordinator`, `CommitOffsets`,
//! `FetchOffsets`, `ListGroups`, `DescribeGroups`, `DeleteGroups` and
//! `ConsumerGroupHeartbeat`, to and from the core's group types. The API
//! marks "not given" with empty strings and zeros; the core with `Option`.

use std::time::Duration;

use strata_protocol::v1;
use strata_record::TopicPartition;

use crate::group::assignor::TopicPartitionSet;
use crate::group::member::insert;
use crate::group::membership::MemberHeartbeat;
use crate::group::model::GroupState;
use crate::group::views::{CommitPartition, GroupOffset, MemberDescription, OffsetCommit, PartitionCommit};
use crate::service::BrokerService;

/// The API form of a set.
fn to_api(set: &TopicPartitionSet) -> Vec<v1::TopicPartitions> {
    set.iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(t, ps)| v1::TopicPartitions { topic: t.clone(), partitions: ps.iter().copied().collect() })
        .collect()
}

/// A set from its API form (an entry with no partitions adds nothing).
fn from_api(tps: &[v1::TopicPartitions]) -> TopicPartitionSet {
    let mut set = TopicPartitionSet::new();
    for tp in tps {
        for &p in &tp.partitions {
            insert(&mut set, &tp.topic, p);
        }
    }
    set
}

/// The API form of a committed offset: -1, empty and -1 when there is none.
fn committed(o: GroupOffset) -> v1::CommittedOffset {
    let GroupOffset { tp, committed } = o;
    v1::CommittedOffset {
        topic: tp.topic,
        partition: tp.partition,
        offset: committed.as_ref().map_or(-1, |v| v.offset),
        commit_timestamp: committed.as_ref().map_or(-1, |v| v.commit_timestamp),
        metadata: committed.map(|v| v.metadata).unwrap_or_default(),
        error: None,
    }
}

fn member(m: MemberDescription) -> v1::GroupMemberDescription {
    v1::GroupMemberDescription {
        member_id: m.member_id,
        instance_id: m.instance_id.unwrap_or_default(),
        client_id: m.client_id,
        client_host: m.client_host,
        member_epoch: m.member_epoch,
        assignment: to_api(&m.assignment),
        target_assignment: to_api(&m.target_assignment),
        subscription: m.subscription,
    }
}

/// `FindCoordinator`.
pub(crate) async fn find_coordinator(
    core: &BrokerService,
    req: v1::FindCoordinatorRequest,
) -> v1::FindCoordinatorResponse {
    match core.find_coordinator(&req.group_id).await {
        Ok(c) => v1::FindCoordinatorResponse { error: None, node_id: c.node_id, address: c.address },
        Err(e) => v1::FindCoordinatorResponse { error: Some(e.into()), node_id: 0, address: String::new() },
    }
}

/// `CommitOffsets`: a request-level failure leaves `partitions` empty.
pub(crate) async fn commit_offsets(core: &BrokerService, req: v1::CommitOffsetsRequest) -> v1::CommitOffsetsResponse {
    let commit = OffsetCommit {
        group_id: req.group_id,
        member_id: req.member_id,
        member_epoch: req.member_epoch,
        partitions: req
            .partitions
            .into_iter()
            .map(|c| CommitPartition {
                tp: TopicPartition { topic: c.topic, partition: c.partition },
                offset: c.offset,
                metadata: c.metadata,
            })
            .collect(),
    };
    match core.commit_offsets(commit).await {
        Ok(outcome) => {
            let write_error = outcome.write_error;
            let partitions = outcome
                .partitions
                .into_iter()
                .map(|(tp, result)| v1::OffsetCommitResult {
                    topic: tp.topic,
                    partition: tp.partition,
                    error: match result {
                        PartitionCommit::Committed => None,
                        PartitionCommit::Rejected(e) => Some(e.into()),
                        PartitionCommit::WriteFailed => write_error.as_ref().map(Into::into),
                    },
                })
                .collect();
            v1::CommitOffsetsResponse { error: None, partitions }
        }
        Err(e) => v1::CommitOffsetsResponse { error: Some(e.into()), partitions: Vec::new() },
    }
}

/// `FetchOffsets`: offset -1 where the group committed nothing.
pub(crate) async fn fetch_offsets(core: &BrokerService, req: v1::FetchOffsetsRequest) -> v1::FetchOffsetsResponse {
    let topics = req.partitions.into_iter().map(|tp| (tp.topic, tp.partitions)).collect();
    match core.fetch_offsets(&req.group_id, topics).await {
        Ok(offsets) => {
            v1::FetchOffsetsResponse { error: None, partitions: offsets.into_iter().map(committed).collect() }
        }
        Err(e) => v1::FetchOffsetsResponse { error: Some(e.into()), partitions: Vec::new() },
    }
}

/// `ListGroups`: a shard still loading is `COORDINATOR_LOAD_IN_PROGRESS`
/// beside the groups of the others.
pub(crate) async fn list_groups(core: &BrokerService) -> v1::ListGroupsResponse {
    let list = core.list_groups().await;
    v1::ListGroupsResponse {
        error: list.loading.map(Into::into),
        groups: list
            .groups
            .into_iter()
            .map(|g| v1::GroupListing {
                group_id: g.group_id,
                state: g.state.as_str().to_string(),
                coordinator: g.coordinator,
            })
            .collect(),
    }
}

/// `DescribeGroups`: an unknown group is `GROUP_ID_NOT_FOUND` with state
/// `dead`.
pub(crate) async fn describe_groups(
    core: &BrokerService,
    req: v1::DescribeGroupsRequest,
) -> v1::DescribeGroupsResponse {
    let me = core.replicas.node_id();
    let groups = core
        .describe_groups(req.group_ids)
        .await
        .into_iter()
        .map(|(group_id, d)| match d {
            Ok(d) => v1::GroupDescription {
                group_id,
                error: None,
                state: d.state.as_str().to_string(),
                group_epoch: d.group_epoch,
                assignor: d.assignor.to_string(),
                coordinator: d.coordinator,
                members: d.members.into_iter().map(member).collect(),
                offsets: d.offsets.into_iter().map(committed).collect(),
            },
            Err(e) => v1::GroupDescription {
                group_id,
                error: Some(e.into()),
                state: GroupState::Dead.as_str().to_string(),
                coordinator: me,
                ..Default::default()
            },
        })
        .collect();
    v1::DescribeGroupsResponse { groups }
}

/// `DeleteGroups`.
pub(crate) async fn delete_groups(core: &BrokerService, req: v1::DeleteGroupsRequest) -> v1::DeleteGroupsResponse {
    let results = core
        .delete_groups(req.group_ids)
        .await
        .into_iter()
        .map(|(group_id, r)| v1::GroupResult { group_id, error: r.err().map(Into::into) })
        .collect();
    v1::DeleteGroupsResponse { results }
}

/// `ConsumerGroupHeartbeat`: an error answer echoes the member's id and
/// epoch.
pub(crate) async fn consumer_group_heartbeat(
    core: &BrokerService,
    req: v1::ConsumerGroupHeartbeatRequest,
    client_host: String,
) -> v1::ConsumerGroupHeartbeatResponse {
    let coordinator = core.replicas.node_id();
    match core.consumer_group_heartbeat(&req.group_id, member_heartbeat(&req), client_host).await {
        Ok(o) => v1::ConsumerGroupHeartbeatResponse {
            error: None,
            member_id: o.member_id,
            member_epoch: o.member_epoch,
            heartbeat_interval_ms: o.heartbeat_interval.as_millis().min(u32::MAX as u128) as u32,
            assignment: to_api(&o.assignment),
            coordinator,
            reconciling: o.reconciling,
        },
        Err(e) => v1::ConsumerGroupHeartbeatResponse {
            error: Some(e.into()),
            member_id: req.member_id,
            member_epoch: req.member_epoch,
            coordinator,
            ..Default::default()
        },
    }
}

/// The state machine's input from the API's message: empty strings and
/// zero timeouts mean "not given".
fn member_heartbeat(req: &v1::ConsumerGroupHeartbeatRequest) -> MemberHeartbeat {
    let given = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let ms = |ms: u32| (ms > 0).then(|| Duration::from_millis(ms.into()));
    MemberHeartbeat {
        member_id: req.member_id.clone(),
        member_epoch: req.member_epoch,
        instance_id: given(&req.instance_id),
        client_id: req.client_id.clone(),
        session_timeout: ms(req.session_timeout_ms),
        rebalance_timeout: ms(req.rebalance_timeout_ms),
        subscribed_topic_names: req.subscribed_topic_names.clone(),
        subscribed_topic_regex: given(&req.subscribed_topic_regex),
        server_assignor: given(&req.server_assignor),
        owned_partitions: from_api(&req.owned_partitions),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::member::{contains, count, iter};

    #[test]
    fn sets_round_trip_through_the_api_form() {
        let mut s = TopicPartitionSet::new();
        insert(&mut s, "a", 2);
        insert(&mut s, "a", 0);
        insert(&mut s, "b", 1);
        assert_eq!(count(&s), 3);
        assert_eq!(from_api(&to_api(&s)), s);
        assert_eq!(iter(&s).collect::<Vec<_>>(), [("a", 0), ("a", 2), ("b", 1)]);
        assert!(contains(&s, "a", 2) && !contains(&s, "b", 0));
    }

    #[test]
    fn owned_partitions_use_the_api_form() {
        let owned = vec![v1::TopicPartitions { topic: "t".into(), partitions: vec![1, 0] }];
        let set = from_api(&owned);
        assert_eq!(iter(&set).collect::<Vec<_>>(), [("t", 0), ("t", 1)]);
    }

    #[test]
    fn empty_strings_and_zero_timeouts_are_not_given() {
        let req = v1::ConsumerGroupHeartbeatRequest {
            group_id: "g".into(),
            member_id: "m".into(),
            member_epoch: 3,
            session_timeout_ms: 0,
            rebalance_timeout_ms: 7000,
            ..Default::default()
        };
        let hb = member_heartbeat(&req);
        assert_eq!((hb.member_id.as_str(), hb.member_epoch), ("m", 3));
        assert_eq!(hb.instance_id, None);
        assert_eq!(hb.subscribed_topic_regex, None);
        assert_eq!(hb.server_assignor, None);
        assert_eq!(hb.session_timeout, None);
        assert_eq!(hb.rebalance_timeout, Some(Duration::from_secs(7)));
    }
}
