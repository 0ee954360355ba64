//! DeleteRecords (0–2): each partition's records below the given offset
//! (-1: the high watermark) go, on the leader and then on its followers;
//! the answer is the new low watermark (log start offset).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use strata_record::TopicPartition;

use crate::api::kafka::codes::code_of;
use crate::authorizer::Session;
use crate::service::BrokerService;

/// Answers `req`, one result per partition.
pub(crate) async fn handle(
    core: &BrokerService,
    session: &Session,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let mut r = DeleteRecordsResponse::default();
    for t in req.topics {
        let mut tr = DeleteRecordsTopicResult::default();
        tr.name = t.name.clone();
        for p in t.partitions {
            let mut pr = DeleteRecordsPartitionResult::default();
            pr.partition_index = p.partition_index;
            pr.low_watermark = -1;
            let before = match p.offset {
                -1 => Ok(None),
                o => u64::try_from(o).map(Some).map_err(|_| ResponseError::OffsetOutOfRange.code()),
            };
            let partition = u32::try_from(p.partition_index).map_err(|_| ResponseError::UnknownTopicOrPartition.code());
            match (partition, before) {
                (Ok(partition), Ok(before)) => {
                    let tp = TopicPartition { topic: t.name.0.to_string(), partition };
                    match core.delete_records(session, &tp, before).await {
                        Ok(low) => pr.low_watermark = i64::try_from(low).unwrap_or(i64::MAX),
                        Err(e) => pr.error_code = code_of(e.kind()),
                    }
                }
                (Err(code), _) | (_, Err(code)) => pr.error_code = code,
            }
            tr.partitions.push(pr);
        }
        r.topics.push(tr);
    }
    r
}
