//! Fetch: long-polls the core's fetch path (max_wait, min_bytes, max_bytes,
//! per-partition limits) and returns whole stored batches from the batch
//! holding each fetch offset; clients skip the records before it. The last
//! stable offset is the high watermark (no transactions). The record bytes
//! are copied into the encoded answer here; sending the mapped slices with
//! a vectored write is still to come.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use strata_record::TopicPartition;

use super::topic_name;
use crate::api::kafka::codes::code_of;
use crate::fetch::{FetchParams, PartitionFetch};
use crate::service::BrokerService;

/// Answers `req`.
pub(crate) async fn handle(core: &BrokerService, req: FetchRequest) -> FetchResponse {
    let mut wanted = Vec::new();
    let mut bad = Vec::new();
    for t in &req.topics {
        let topic = t.topic.0.to_string();
        for p in &t.partitions {
            match (u32::try_from(p.partition), u64::try_from(p.fetch_offset)) {
                (Ok(partition), Ok(offset)) => wanted.push(PartitionFetch {
                    tp: TopicPartition { topic: topic.clone(), partition },
                    offset,
                    max_bytes: usize::try_from(p.partition_max_bytes).ok().filter(|&n| n > 0),
                }),
                _ => bad.push((topic.clone(), p.partition)),
            }
        }
    }
    let params = FetchParams {
        max_wait: Duration::from_millis(req.max_wait_ms.max(0) as u64),
        min_bytes: req.min_bytes.max(1) as usize,
        max_bytes: usize::try_from(req.max_bytes).ok().filter(|&n| n > 0),
        partitions: wanted,
    };
    let fetched = if params.partitions.is_empty() { Vec::new() } else { core.fetch(&params).await };
    let mut r = FetchResponse::default();
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    let mut push = |topic: &str, data: PartitionData| match topics.last_mut() {
        Some(t) if t.topic.0.as_str() == topic => t.partitions.push(data),
        _ => {
            let mut t = FetchableTopicResponse::default();
            t.topic = topic_name(topic);
            t.partitions.push(data);
            topics.push(t);
        }
    };
    for f in fetched {
        let mut d = PartitionData::default();
        d.partition_index = f.tp.partition as i32;
        d.preferred_read_replica = BrokerId(-1);
        d.aborted_transactions = Some(Vec::new());
        match &f.error {
            Some(e) => {
                d.error_code = code_of(e.kind());
                d.high_watermark = -1;
                d.last_stable_offset = -1;
                d.log_start_offset = -1;
                d.records = Some(Bytes::new());
            }
            None => {
                d.high_watermark = f.high_watermark as i64;
                d.last_stable_offset = f.high_watermark as i64;
                d.log_start_offset = f.log_start_offset as i64;
                d.records = Some(f.records);
            }
        }
        push(&f.tp.topic, d);
    }
    for (topic, partition) in bad {
        let mut d = PartitionData::default();
        d.partition_index = partition;
        d.error_code = kafka_protocol::error::ResponseError::OffsetOutOfRange.code();
        d.high_watermark = -1;
        d.last_stable_offset = -1;
        d.log_start_offset = -1;
        d.preferred_read_replica = BrokerId(-1);
        d.records = Some(Bytes::new());
        push(&topic, d);
    }
    r.responses = topics;
    r
}
