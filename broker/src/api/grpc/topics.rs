//! Topic and cluster administration at the gRPC edge: `CreateTopics`,
//! `DeleteTopics`, `ListTopics`, `DescribeTopics` and `DescribeCluster` to
//! and from the core's types.

use strata_protocol::v1;

use crate::admin::{NewTopic, TopicDescription};
use crate::authorizer::Session;
use crate::error::BrokerError;
use crate::service::BrokerService;

/// A per-topic result: no error, or the error.
fn topic_result(name: String, result: Result<(), BrokerError>) -> v1::TopicResult {
    v1::TopicResult { name, error: result.err().map(Into::into) }
}

/// `CreateTopics`: partitions and replication factor 0 mean the defaults.
pub(crate) async fn create(
    core: &BrokerService,
    session: &Session,
    req: v1::CreateTopicsRequest,
) -> v1::CreateTopicsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| NewTopic {
            name: t.name,
            partitions: (t.partitions > 0).then_some(t.partitions),
            replication_factor: (t.replication_factor > 0).then_some(t.replication_factor),
            configs: t.configs.into_iter().collect(),
        })
        .collect();
    let results = core.create_topics(session, topics, req.validate_only).await;
    v1::CreateTopicsResponse { results: results.into_iter().map(|(n, r)| topic_result(n, r)).collect() }
}

/// `DeleteTopics`.
pub(crate) async fn delete(
    core: &BrokerService,
    session: &Session,
    req: v1::DeleteTopicsRequest,
) -> v1::DeleteTopicsResponse {
    let results = core.delete_topics(session, req.names).await;
    v1::DeleteTopicsResponse { results: results.into_iter().map(|(n, r)| topic_result(n, r)).collect() }
}

/// `AlterTopicConfigs`.
pub(crate) async fn alter_configs(
    core: &BrokerService,
    session: &Session,
    req: v1::AlterTopicConfigsRequest,
) -> v1::TopicResult {
    let change = crate::alter_configs::ConfigChange { set: req.set.into_iter().collect(), delete: req.delete };
    let result = core.alter_topic_configs(session, &req.topic, change, req.validate_only).await;
    topic_result(req.topic, result)
}

/// `DeleteRecords`: -1 is the high watermark; other negatives are refused.
pub(crate) async fn delete_records(
    core: &BrokerService,
    session: &Session,
    req: v1::DeleteRecordsRequest,
) -> v1::DeleteRecordsResponse {
    let before = match req.before_offset {
        -1 => None,
        o => match u64::try_from(o) {
            Ok(o) => Some(o),
            Err(_) => {
                let e = v1::Error::new(v1::ErrorCode::InvalidRequest, format!("offset {o}: use -1 or an offset"));
                return v1::DeleteRecordsResponse { error: Some(e), low_watermark: 0 };
            }
        },
    };
    let tp = strata_record::TopicPartition { topic: req.topic, partition: req.partition };
    match core.delete_records(session, &tp, before).await {
        Ok(low_watermark) => v1::DeleteRecordsResponse { error: None, low_watermark },
        Err(e) => v1::DeleteRecordsResponse { error: Some(e.into()), low_watermark: 0 },
    }
}

/// `CreatePartitions`.
pub(crate) async fn create_partitions(
    core: &BrokerService,
    session: &Session,
    req: v1::CreatePartitionsRequest,
) -> v1::TopicResult {
    let result = core.create_partitions(session, &req.topic, req.count, req.validate_only).await;
    topic_result(req.topic, result)
}

/// `ListTopics`.
pub(crate) fn list(core: &BrokerService, session: &Session) -> v1::ListTopicsResponse {
    v1::ListTopicsResponse {
        topics: core
            .list_topics(session)
            .into_iter()
            .map(|t| v1::TopicSummary {
                name: t.name,
                topic_id: t.topic_id,
                partitions: t.partitions,
                replication_factor: t.replication_factor,
            })
            .collect(),
    }
}

/// `DescribeTopics`: no names means every topic; a leaderless partition's
/// leader is -1 and a partition without a replica here has zero offsets.
pub(crate) fn describe(
    core: &BrokerService,
    session: &Session,
    req: v1::DescribeTopicsRequest,
) -> v1::DescribeTopicsResponse {
    let topics = core
        .describe_topics(session, req.names)
        .into_iter()
        .map(|(name, result)| match result {
            Ok(t) => description(t),
            Err(e) => v1::TopicDescription { name, error: Some(e.into()), ..Default::default() },
        })
        .collect();
    v1::DescribeTopicsResponse { topics }
}

fn description(t: TopicDescription) -> v1::TopicDescription {
    v1::TopicDescription {
        name: t.name,
        topic_id: t.topic_id,
        error: None,
        partitions: t
            .partitions
            .into_iter()
            .map(|p| {
                let offsets = p.offsets.unwrap_or(crate::admin::LocalOffsets {
                    log_start_offset: 0,
                    log_end_offset: 0,
                    high_watermark: 0,
                });
                v1::PartitionDescription {
                    partition: p.partition,
                    leader: p.leader.map_or(-1, |l| l as i32),
                    leader_epoch: p.leader_epoch,
                    replicas: p.replicas,
                    isr: p.isr,
                    log_start_offset: offsets.log_start_offset,
                    log_end_offset: offsets.log_end_offset,
                    high_watermark: offsets.high_watermark,
                }
            })
            .collect(),
        configs: t.configs.into_iter().collect(),
    }
}

/// `DescribeCluster`: no controller leader known is -1; a broker without a
/// rack has an empty one.
pub(crate) async fn describe_cluster(core: &BrokerService) -> v1::DescribeClusterResponse {
    let c = core.describe_cluster().await;
    v1::DescribeClusterResponse {
        cluster_id: c.cluster_id,
        controller_id: c.controller_id.map_or(-1, |l| l as i32),
        brokers: c
            .brokers
            .into_iter()
            .map(|b| v1::BrokerDescription {
                node_id: b.node_id,
                address: b.address,
                rack: b.rack.unwrap_or_default(),
                state: if b.fenced { "fenced" } else { "unfenced" }.to_string(),
            })
            .collect(),
        voters: c
            .voters
            .into_iter()
            .map(|v| v1::VoterDescription {
                node_id: v.node_id as u32,
                address: v.address,
                is_leader: v.is_leader,
                lag: v.lag,
            })
            .collect(),
        metadata_offset: c.metadata_offset,
    }
}
