//! Produce: each partition's record batches go to the core's produce path
//! as they arrived (the same validation, idempotence and acks as gRPC).
//! acks=0 gets no answer at all, as Kafka does.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use strata_record::TopicPartition;

use super::topic_name;
use crate::api::kafka::codes::code_of;
use crate::authorizer::Session;
use crate::produce::{Acks, ProducePartition};
use crate::service::BrokerService;

/// Answers `req` (`None` for acks=0).
pub(crate) async fn handle(core: &BrokerService, session: &Session, req: ProduceRequest) -> Option<ProduceResponse> {
    if req.transactional_id.is_some() {
        return Some(refuse_all(&req, ResponseError::TransactionalIdAuthorizationFailed.code()));
    }
    let acks = match req.acks {
        0 => Acks::None,
        1 => Acks::Leader,
        -1 => Acks::All,
        _ => return Some(refuse_all(&req, ResponseError::InvalidRequiredAcks.code())),
    };
    let timeout = (req.timeout_ms > 0).then(|| Duration::from_millis(req.timeout_ms as u64));
    // (topic, partition index, position among the partitions produced to;
    // none for a negative index). The core answers in the order given.
    let mut order = Vec::new();
    let mut partitions = Vec::new();
    for topic in &req.topic_data {
        let name = topic.name.0.to_string();
        for p in &topic.partition_data {
            let at = u32::try_from(p.index).ok().map(|partition| {
                partitions.push(ProducePartition {
                    tp: TopicPartition { topic: name.clone(), partition },
                    records: p.records.clone().unwrap_or_else(Bytes::new),
                });
                partitions.len() - 1
            });
            order.push((name.clone(), p.index, at));
        }
    }
    let results = core.produce(session, acks, timeout, partitions).await;
    if acks == Acks::None {
        return None;
    }
    let mut r = ProduceResponse::default();
    let mut topics: Vec<TopicProduceResponse> = Vec::new();
    for (name, index, at) in order {
        let mut pr = PartitionProduceResponse::default();
        pr.index = index;
        pr.log_append_time_ms = -1;
        pr.base_offset = -1;
        pr.log_start_offset = -1;
        match at.and_then(|i| results.get(i)) {
            None => pr.error_code = ResponseError::UnknownTopicOrPartition.code(),
            Some((_, result)) => match result {
                Ok(produced) => {
                    pr.base_offset = produced.base_offset as i64;
                    pr.log_start_offset = produced.log_start_offset as i64;
                }
                Err(e) => {
                    pr.error_code = code_of(e.kind());
                    pr.error_message = Some(e.message().to_string().into());
                }
            },
        }
        match topics.last_mut() {
            Some(t) if t.name.0.as_str() == name => t.partition_responses.push(pr),
            _ => {
                let mut t = TopicProduceResponse::default();
                t.name = topic_name(&name);
                t.partition_responses.push(pr);
                topics.push(t);
            }
        }
    }
    r.responses = topics;
    Some(r)
}

/// Every partition of `req` answered with `code`.
fn refuse_all(req: &ProduceRequest, code: i16) -> ProduceResponse {
    let mut r = ProduceResponse::default();
    r.responses = req
        .topic_data
        .iter()
        .map(|t| {
            let mut tr = TopicProduceResponse::default();
            tr.name = t.name.clone();
            tr.partition_responses = t
                .partition_data
                .iter()
                .map(|p| {
                    let mut pr = PartitionProduceResponse::default();
                    pr.index = p.index;
                    pr.error_code = code;
                    pr.base_offset = -1;
                    pr
                })
                .collect();
            tr
        })
        .collect();
    r
}
