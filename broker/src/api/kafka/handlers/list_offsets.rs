//! ListOffsets: timestamp -2 is the log start, -1 the high watermark, -3
//! (v7+) the first record with the largest timestamp, -4 (v8+, earliest
//! local) the log start, -5 (v9+, latest tiered) none, any other
//! non-negative value the first record at or after that time (offset and
//! timestamp -1 when there is none, or when it is above the high
//! watermark).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use strata_record::TopicPartition;

use super::epoch;
use crate::admin::{ListedOffset, OffsetSpec};
use crate::api::kafka::codes::code_of;
use crate::authorizer::{Resource, Session};
use crate::service::BrokerService;
use strata_metadata::AclOperation;

/// Answers `req`.
pub(crate) async fn handle(
    core: &BrokerService,
    session: &Session,
    req: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let mut r = ListOffsetsResponse::default();
    for t in req.topics {
        let topic = t.name.0.to_string();
        let mut tr = ListOffsetsTopicResponse::default();
        tr.name = t.name.clone();
        for p in t.partitions {
            let mut pr = ListOffsetsPartitionResponse::default();
            pr.partition_index = p.partition_index;
            pr.offset = -1;
            pr.timestamp = -1;
            pr.leader_epoch = -1;
            let spec = match p.timestamp {
                -2 => Some(OffsetSpec::Earliest),
                -1 => Some(OffsetSpec::Latest),
                -3 if version >= 7 => Some(OffsetSpec::MaxTimestamp),
                // KIP-405's earliest local offset: every record is local.
                -4 if version >= 8 => Some(OffsetSpec::Earliest),
                // KIP-1005's latest tiered offset: nothing is tiered, so
                // there is none (offset -1, as Kafka answers without remote
                // storage).
                -5 if version >= 9 => {
                    tr.partitions.push(pr);
                    continue;
                }
                ts if ts >= 0 => Some(OffsetSpec::Timestamp(ts)),
                _ => None,
            };
            match (spec, u32::try_from(p.partition_index)) {
                (Some(spec), Ok(partition)) => {
                    let tp = TopicPartition { topic: topic.clone(), partition };
                    if let Err(e) = core.authorize(session, AclOperation::Describe, Resource::Topic(&topic)) {
                        pr.error_code = code_of(e.kind());
                        tr.partitions.push(pr);
                        continue;
                    }
                    let checked =
                        core.replicas.lookup(&topic, partition).map(|r| epoch::check(&r, p.current_leader_epoch));
                    if let Ok(Err(code)) = checked {
                        pr.error_code = code;
                        tr.partitions.push(pr);
                        continue;
                    }
                    match core.list_offset(session, &tp, spec).await {
                        Ok(ListedOffset { offset, timestamp }) => {
                            pr.offset = offset.map_or(-1, |o| o as i64);
                            pr.timestamp = timestamp.unwrap_or(-1);
                        }
                        Err(e) => pr.error_code = code_of(e.kind()),
                    }
                }
                (None, _) => pr.error_code = ResponseError::InvalidRequest.code(),
                (_, Err(_)) => pr.error_code = ResponseError::UnknownTopicOrPartition.code(),
            }
            tr.partitions.push(pr);
        }
        r.topics.push(tr);
    }
    r
}
