//! Fetch: long-polls the core's fetch path (max_wait, min_bytes, max_bytes,
//! per-partition limits) and returns whole stored batches from the batch
//! holding each fetch offset; clients skip the records before it. The last
//! stable offset is the high watermark (no transactions). The record bytes
//! go out as the log's mapped slices (`fetch_response`). A partition whose
//! current leader epoch (v9+) is not the leader's gets FENCED_LEADER_EPOCH
//! or UNKNOWN_LEADER_EPOCH and no records.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::FetchRequest;
use strata_record::TopicPartition;

use super::epoch;
use crate::api::kafka::codes::code_of;
use crate::api::kafka::fetch_response::{encode, PartitionAnswer, TopicAnswer};
use crate::authorizer::Session;
use crate::fetch::{FetchParams, PartitionFetch};
use crate::service::BrokerService;

/// Answers `req`, framed for a vectored write.
pub(crate) async fn handle(
    core: &BrokerService,
    session: &Session,
    req: FetchRequest,
    version: i16,
    correlation_id: i32,
) -> Vec<Bytes> {
    let mut wanted = Vec::new();
    let mut bad = Vec::new();
    let mut fenced = Vec::new();
    for t in &req.topics {
        let topic = t.topic.0.to_string();
        for p in &t.partitions {
            match (u32::try_from(p.partition), u64::try_from(p.fetch_offset)) {
                (Ok(partition), Ok(_)) if p.current_leader_epoch >= 0 => {
                    let checked =
                        core.replicas.lookup(&topic, partition).map(|r| epoch::check(&r, p.current_leader_epoch));
                    if let Ok(Err(code)) = checked {
                        fenced.push((topic.clone(), p.partition, code));
                        continue;
                    }
                }
                _ => {}
            }
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
    let fetched = if params.partitions.is_empty() { Vec::new() } else { core.fetch(session, &params).await };
    let mut topics: Vec<TopicAnswer> = Vec::new();
    let mut push = |topic: &str, a: PartitionAnswer| match topics.last_mut() {
        Some(t) if t.name == topic => t.partitions.push(a),
        _ => topics.push(TopicAnswer { name: topic.to_string(), partitions: vec![a] }),
    };
    let failed = |index: i32, error_code: i16| PartitionAnswer {
        index,
        error_code,
        high_watermark: -1,
        last_stable_offset: -1,
        log_start_offset: -1,
        records: Bytes::new(),
    };
    for f in fetched {
        let index = f.tp.partition as i32;
        let answer = match &f.error {
            Some(e) => failed(index, code_of(e.kind())),
            None => PartitionAnswer {
                index,
                error_code: 0,
                high_watermark: f.high_watermark as i64,
                last_stable_offset: f.high_watermark as i64,
                log_start_offset: f.log_start_offset as i64,
                records: f.records,
            },
        };
        push(&f.tp.topic, answer);
    }
    for (topic, partition) in bad {
        push(&topic, failed(partition, kafka_protocol::error::ResponseError::OffsetOutOfRange.code()));
    }
    for (topic, partition, code) in fenced {
        push(&topic, failed(partition, code));
    }
    encode(version, correlation_id, topics)
}
