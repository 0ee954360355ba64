//! AlterPartitionReassignments (0–1) and ListPartitionReassignments (0):
//! Kafka's admin APIs for moving replicas, over the core's moves
//! (`crate::reassign`). A whole-request refusal (no Alter/Describe on the
//! cluster) is the top-level error, as in Kafka.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};
use kafka_protocol::protocol::StrBytes;
use strata_metadata::ReassignmentRequest;

use crate::authorizer::Session;
use crate::service::BrokerService;

fn ids(list: &[u32]) -> Vec<BrokerId> {
    list.iter().map(|b| BrokerId(i32::try_from(*b).unwrap_or(i32::MAX))).collect()
}

/// Answers an AlterPartitionReassignments. With v1's
/// `allow_replication_factor_change` false, a target of another size than
/// the partition's replica count is refused (KIP-860).
pub(crate) async fn alter(
    core: &BrokerService,
    session: &Session,
    req: AlterPartitionReassignmentsRequest,
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    let mut r = AlterPartitionReassignmentsResponse::default();
    r.allow_replication_factor_change = req.allow_replication_factor_change;
    let image = core.controller.metadata();
    // Requests the core sees, and refusals made here, by (topic, partition).
    let mut requests = Vec::new();
    let mut refused = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            let partition = u32::try_from(p.partition_index).unwrap_or(u32::MAX);
            let target = match &p.replicas {
                None => None,
                Some(list) => {
                    let Ok(list) = list.iter().map(|b| u32::try_from(b.0)).collect::<Result<Vec<u32>, _>>() else {
                        refused.push((
                            t.name.to_string(),
                            partition,
                            ResponseError::InvalidReplicaAssignment,
                            "a negative broker id".to_string(),
                        ));
                        continue;
                    };
                    Some(list)
                }
            };
            let current = image.topics.get(t.name.as_str()).and_then(|x| x.partitions.get(partition as usize));
            let current_rf = current.map(|c| c.reassignment.as_ref().map_or(c.replicas.len(), |m| m.original.len()));
            if let (Some(target), Some(rf)) = (&target, current_rf) {
                if version >= 1 && !req.allow_replication_factor_change && target.len() != rf {
                    let message = format!(
                        "{} replicas for a partition with {rf}: the replication factor would change",
                        target.len()
                    );
                    refused.push((t.name.to_string(), partition, ResponseError::InvalidReplicationFactor, message));
                    continue;
                }
            }
            requests.push(ReassignmentRequest { topic: t.name.to_string(), partition, target });
        }
    }
    drop(image);
    let results = if requests.is_empty() {
        Vec::new()
    } else {
        match core.alter_reassignments(session, requests).await {
            Ok(results) => results,
            Err(e) => {
                (r.error_code, r.error_message) = super::refusal(&e);
                return r;
            }
        }
    };
    let mut by_topic: std::collections::BTreeMap<String, Vec<ReassignablePartitionResponse>> = Default::default();
    for m in results {
        let mut out = ReassignablePartitionResponse::default();
        out.partition_index = i32::try_from(m.partition).unwrap_or(i32::MAX);
        if let Some(e) = &m.error {
            (out.error_code, out.error_message) = super::refusal(e);
        }
        by_topic.entry(m.topic).or_default().push(out);
    }
    for (topic, partition, error, message) in refused {
        let mut out = ReassignablePartitionResponse::default();
        out.partition_index = i32::try_from(partition).unwrap_or(i32::MAX);
        out.error_code = error.code();
        out.error_message = Some(StrBytes::from_string(message));
        by_topic.entry(topic).or_default().push(out);
    }
    for (name, partitions) in by_topic {
        let mut t = ReassignableTopicResponse::default();
        t.name = StrBytes::from_string(name).into();
        t.partitions = partitions;
        r.responses.push(t);
    }
    r
}

/// Answers a ListPartitionReassignments: every move, or those of the
/// partitions named.
pub(crate) fn list(
    core: &BrokerService,
    session: &Session,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let mut r = ListPartitionReassignmentsResponse::default();
    let only: Option<Vec<(String, u32)>> = req.topics.map(|topics| {
        topics
            .iter()
            .flat_map(|t| {
                t.partition_indexes.iter().filter_map(|p| u32::try_from(*p).ok()).map(|p| (t.name.to_string(), p))
            })
            .collect()
    });
    let moves = match core.list_reassignments(session, only.as_deref()) {
        Ok(m) => m,
        Err(e) => {
            (r.error_code, r.error_message) = super::refusal(&e);
            return r;
        }
    };
    let mut by_topic: std::collections::BTreeMap<String, Vec<OngoingPartitionReassignment>> = Default::default();
    for m in moves {
        let mut p = OngoingPartitionReassignment::default();
        p.partition_index = i32::try_from(m.partition).unwrap_or(i32::MAX);
        p.replicas = ids(&m.replicas);
        p.adding_replicas = ids(&m.adding);
        p.removing_replicas = ids(&m.removing);
        by_topic.entry(m.topic).or_default().push(p);
    }
    for (name, partitions) in by_topic {
        let mut t = OngoingTopicReassignment::default();
        t.name = StrBytes::from_string(name).into();
        t.partitions = partitions;
        r.topics.push(t);
    }
    r
}
