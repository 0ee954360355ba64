//! The data path at the gRPC edge: `Produce`, `Fetch` and `ListOffsets`
//! messages to and from the core's types. Record bytes pass through as the
//! same `Bytes` (no copy either way).

use std::time::Duration;

use strata_protocol::v1::{self, Error, ErrorCode};
use strata_record::TopicPartition;

use crate::admin::{ListedOffset, OffsetSpec};
use crate::authorizer::Session;
use crate::fetch::{FetchParams, PartitionFetch};
use crate::produce::{Acks, ProducePartition};
use crate::service::BrokerService;

/// `ListOffsets` timestamps with a meaning of their own.
const EARLIEST: i64 = -2;
const LATEST: i64 = -1;

fn tp(topic: String, partition: u32) -> TopicPartition {
    TopicPartition { topic, partition }
}

/// `Produce`: acks 0, 1 or -1 (all); a timeout of 0 means the default.
pub(crate) async fn produce(core: &BrokerService, session: &Session, req: v1::ProduceRequest) -> v1::ProduceResponse {
    let acks = match req.acks {
        0 => Acks::None,
        1 => Acks::Leader,
        -1 => Acks::All,
        other => {
            let partitions = req
                .partitions
                .into_iter()
                .map(|pr| v1::PartitionProduceResult {
                    topic: pr.topic,
                    partition: pr.partition,
                    error: Some(Error::new(
                        ErrorCode::InvalidRequest,
                        format!("acks must be 0, 1 or -1 (all), not {other}"),
                    )),
                    ..Default::default()
                })
                .collect();
            return v1::ProduceResponse { partitions };
        }
    };
    let timeout = (req.timeout_ms > 0).then(|| Duration::from_millis(req.timeout_ms.into()));
    let partitions =
        req.partitions.into_iter().map(|pr| ProducePartition { tp: tp(pr.topic, pr.partition), records: pr.records });
    let results = core.produce(session, acks, timeout, partitions.collect()).await;
    v1::ProduceResponse {
        partitions: results
            .into_iter()
            .map(|(tp, result)| {
                let mut r =
                    v1::PartitionProduceResult { topic: tp.topic, partition: tp.partition, ..Default::default() };
                match result {
                    Ok(produced) => {
                        r.base_offset = produced.base_offset;
                        r.log_start_offset = produced.log_start_offset;
                    }
                    Err(e) => r.error = Some(e.into()),
                }
                r
            })
            .collect(),
    }
}

/// `Fetch`: zero byte limits mean "no limit" / "the request's limit".
pub(crate) async fn fetch(core: &BrokerService, session: &Session, req: v1::FetchRequest) -> v1::FetchResponse {
    let params = FetchParams {
        max_wait: Duration::from_millis(u64::from(req.max_wait_ms)),
        min_bytes: req.min_bytes as usize,
        max_bytes: (req.max_bytes > 0).then_some(req.max_bytes as usize),
        partitions: req
            .partitions
            .into_iter()
            .map(|fp| PartitionFetch {
                tp: tp(fp.topic, fp.partition),
                offset: fp.fetch_offset,
                max_bytes: (fp.partition_max_bytes > 0).then_some(fp.partition_max_bytes as usize),
            })
            .collect(),
    };
    let fetched = core.fetch(session, &params).await;
    v1::FetchResponse {
        partitions: fetched
            .into_iter()
            .map(|f| v1::FetchedPartition {
                topic: f.tp.topic,
                partition: f.tp.partition,
                error: f.error.map(Error::from),
                high_watermark: f.high_watermark,
                log_start_offset: f.log_start_offset,
                log_end_offset: f.log_end_offset,
                records: f.records,
            })
            .collect(),
    }
}

/// `ListOffsets`: timestamp -2 is the earliest offset, -1 the latest, any
/// other negative value is refused; offset and timestamp -1 mean none.
pub(crate) async fn list_offsets(
    core: &BrokerService,
    session: &Session,
    req: v1::ListOffsetsRequest,
) -> v1::ListOffsetsResponse {
    let mut partitions = Vec::with_capacity(req.partitions.len());
    for lp in req.partitions {
        let mut r =
            v1::ListedOffset { topic: lp.topic, partition: lp.partition, offset: -1, timestamp: -1, error: None };
        let spec = match lp.timestamp {
            EARLIEST => OffsetSpec::Earliest,
            LATEST => OffsetSpec::Latest,
            ts if ts < 0 => {
                r.error = Some(Error::new(
                    ErrorCode::InvalidRequest,
                    format!("timestamp {ts}: use -2 (earliest), -1 (latest) or a time in ms"),
                ));
                partitions.push(r);
                continue;
            }
            ts => OffsetSpec::Timestamp(ts),
        };
        match core.list_offset(session, &tp(r.topic.clone(), r.partition), spec).await {
            Ok(ListedOffset { offset, timestamp }) => {
                r.offset = offset.map_or(-1, |o| o as i64);
                r.timestamp = timestamp.unwrap_or(-1);
            }
            Err(e) => r.error = Some(e.into()),
        }
        partitions.push(r);
    }
    v1::ListOffsetsResponse { partitions }
}

/// `InitProducerId`.
pub(crate) async fn init_producer_id(core: &BrokerService) -> v1::InitProducerIdResponse {
    match core.init_producer_id().await {
        Ok(p) => v1::InitProducerIdResponse {
            error: None,
            producer_id: p.producer_id,
            producer_epoch: i32::from(p.producer_epoch),
        },
        Err(e) => v1::InitProducerIdResponse { error: Some(e.into()), producer_id: -1, producer_epoch: -1 },
    }
}
