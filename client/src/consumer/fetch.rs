//! One round of fetching: a `Fetch` per leader broker (concurrently) for the
//! assigned partitions, then decoding of the returned batches into records
//! from each partition's position on.

use std::collections::HashMap;
use strata_record::TopicPartition;

use bytes::Bytes;
use strata_protocol::v1::{ErrorCode, FetchPartition, FetchRequest, FetchResponse, FetchedPartition};
use strata_record::batch::{split_stored_batches, BatchError, BatchHeader};

use super::{ConsumerConfig, ConsumerRecord};
use crate::connection::call;
use crate::error::ClientError;
use crate::metadata::Cluster;

/// What one fetch round produced.
#[derive(Debug, Default)]
pub(crate) struct Round {
    /// Records at or after each partition's position, in partition then
    /// offset order.
    pub records: Vec<ConsumerRecord>,
    /// High watermarks reported, by partition.
    pub high_watermarks: Vec<(TopicPartition, u64)>,
    /// A retriable failure (lost connection, leader moved) hit some
    /// partition: metadata should be refreshed before the next round.
    pub retriable: Option<ClientError>,
    /// Partitions whose fetched batches held no record at or after the
    /// position (a compacted topic's cleaner removed them): the position
    /// moves past those batches, as Kafka's consumer does, or the same
    /// batches would come back forever.
    pub skipped: Vec<(TopicPartition, u64)>,
}

/// The raw outcome of one round of `Fetch` requests, before decoding.
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    /// One result per leader asked.
    responses: Vec<Result<FetchResponse, ClientError>>,
    /// A partition had no known leader.
    no_leader: Option<ClientError>,
}

impl Fetched {
    /// Where each partition of `positions` would continue after this
    /// round's records, from the batch headers alone (no validation): `None`
    /// when the round brought no batch at all or hit an error, so no
    /// follow-up fetch is worth issuing ahead of time.
    pub(crate) fn next_positions(&self, positions: &[(TopicPartition, u64)]) -> Option<Vec<(TopicPartition, u64)>> {
        if self.no_leader.is_some() {
            return None;
        }
        let mut next: Vec<(TopicPartition, u64)> = positions.to_vec();
        let mut any = false;
        for response in &self.responses {
            let response = response.as_ref().ok()?;
            for fetched in &response.partitions {
                if fetched.error.as_ref().is_some_and(|e| e.error_code() != ErrorCode::None) {
                    return None;
                }
                let Some(slot) =
                    next.iter_mut().find(|(tp, _)| tp.topic == fetched.topic && tp.partition == fetched.partition)
                else {
                    continue;
                };
                let mut rest: &[u8] = &fetched.records;
                while let Ok(h) = BatchHeader::parse(rest) {
                    let total = h.total_len();
                    if total > rest.len() {
                        break;
                    }
                    if h.next_offset() > slot.1 {
                        slot.1 = h.next_offset();
                        any = true;
                    }
                    rest = &rest[total..];
                }
            }
        }
        any.then_some(next)
    }
}

/// Sends one `Fetch` per leader (concurrently) for the partitions of
/// `positions` and collects the responses.
pub(crate) async fn send_fetches(
    cluster: &Cluster,
    config: &ConsumerConfig,
    positions: &[(TopicPartition, u64)],
) -> Fetched {
    let mut fetched = Fetched::default();
    let mut by_leader: HashMap<u32, Vec<FetchPartition>> = HashMap::new();
    let partition_max = clamp_u32(config.max_partition_bytes);
    for (TopicPartition { topic, partition }, offset) in positions {
        match cluster.leader(topic, *partition) {
            Some(leader) => by_leader.entry(leader).or_default().push(FetchPartition {
                topic: topic.clone(),
                partition: *partition,
                fetch_offset: *offset,
                partition_max_bytes: partition_max,
            }),
            None => fetched.no_leader = Some(super::no_leader(topic, *partition)),
        }
    }
    let timeout = config.max_wait + config.request_timeout;
    let requests = by_leader.into_iter().map(|(leader, partitions)| async move {
        let request = FetchRequest {
            max_wait_ms: clamp_u32(config.max_wait.as_millis()),
            min_bytes: clamp_u32(config.min_bytes),
            max_bytes: clamp_u32(config.max_bytes),
            partitions,
        };
        let mut client = cluster.broker_client(leader).await?;
        call(&format!("Fetch from broker {leader}"), timeout, client.fetch(request)).await
    });
    fetched.responses = futures::future::join_all(requests).await;
    fetched
}

/// Decodes the responses of a round fetched from `positions`. A
/// non-retriable error (OFFSET_OUT_OF_RANGE, a corrupt batch...) fails the
/// whole round, so no position moves.
pub(crate) fn decode_round(positions: &[(TopicPartition, u64)], fetched: Fetched) -> Result<Round, ClientError> {
    let mut round = Round { retriable: fetched.no_leader, ..Round::default() };
    let position_of: HashMap<(&str, u32), u64> =
        positions.iter().map(|(tp, o)| ((tp.topic.as_str(), tp.partition), *o)).collect();
    for response in fetched.responses {
        let response = match response {
            Ok(r) => r,
            Err(e) if e.is_retriable() => {
                round.retriable = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        for fetched in response.partitions {
            let Some(&position) = position_of.get(&(fetched.topic.as_str(), fetched.partition)) else {
                continue;
            };
            if let Some(err) = ClientError::from_api(fetched.error.as_ref()) {
                if err.code() == Some(ErrorCode::OffsetOutOfRange) {
                    return Err(out_of_range(&fetched, position));
                }
                if err.is_retriable() {
                    round.retriable = Some(err);
                    continue;
                }
                return Err(err);
            }
            round
                .high_watermarks
                .push((TopicPartition::of(fetched.topic.clone(), fetched.partition), fetched.high_watermark));
            let before = round.records.len();
            let end = decode(&fetched.topic, fetched.partition, fetched.records, position, &mut round.records)?;
            if round.records.len() == before && end > position {
                round.skipped.push((TopicPartition::of(fetched.topic.clone(), fetched.partition), end));
            }
        }
    }
    Ok(round)
}

/// OFFSET_OUT_OF_RANGE with the valid range the broker reported.
fn out_of_range(f: &FetchedPartition, position: u64) -> ClientError {
    let detail = f.error.as_ref().map(|e| e.message.trim()).filter(|m| !m.is_empty());
    let mut message = format!(
        "fetch offset {position} is out of range for partition {}-{}: valid offsets are {} to {}",
        f.topic, f.partition, f.log_start_offset, f.log_end_offset
    );
    if let Some(detail) = detail {
        message.push_str(&format!(" ({detail})"));
    }
    ClientError::server(ErrorCode::OffsetOutOfRange, message)
}

/// Appends the records of `bytes` (whole batches back to back) whose offset
/// is at least `position`: a fetch starts at the batch holding the position,
/// so the first batch may begin below it.
pub(crate) fn decode(
    topic: &str,
    partition: u32,
    bytes: Bytes,
    position: u64,
    out: &mut Vec<ConsumerRecord>,
) -> Result<u64, ClientError> {
    let corrupt = |e: &BatchError, at: u64| {
        ClientError::InvalidResponse(format!(
            "corrupt record batch for partition {topic}-{partition} at offset {at}: {e}"
        ))
    };
    let mut next = position;
    let mut end = position;
    let mut decoded_any = false;
    for batch in split_stored_batches(bytes, usize::MAX) {
        let batch = match batch {
            Ok(b) => b,
            // A partial batch after whole ones (the broker cut at max_bytes):
            // the next fetch starts there.
            Err(BatchError::Truncated { .. }) if decoded_any => break,
            Err(e) => return Err(corrupt(&e, next)),
        };
        decoded_any = true;
        end = end.max(batch.header().next_offset());
        if batch.header().next_offset() <= position {
            continue;
        }
        out.reserve(batch.header().record_count as usize);
        for record in batch.records() {
            let record = record.map_err(|e| corrupt(&e, batch.header().base_offset))?;
            if record.offset < position {
                continue;
            }
            next = record.offset + 1;
            out.push(ConsumerRecord {
                topic: topic.to_owned(),
                partition,
                offset: record.offset,
                timestamp: record.timestamp,
                key: record.key,
                value: record.value,
                headers: record.headers.into_iter().map(|h| (h.key, h.value)).collect(),
            });
        }
    }
    Ok(end)
}

fn clamp_u32(n: impl TryInto<u32>) -> u32 {
    n.try_into().unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use strata_record::batch::{filter_records, set_base_offset, BatchBuilder, Filtered, RecordBatch};

    use super::*;

    fn batch(base: u64, values: &[&str]) -> Bytes {
        let mut b = BatchBuilder::new();
        for v in values {
            b.append(1000, Some(b"k"), Some(v.as_bytes()), &[("h", Some(b"v"))]).unwrap();
        }
        let mut bytes = BytesMut::from(&b.build().unwrap()[..]);
        set_base_offset(&mut bytes, base).unwrap();
        bytes.freeze()
    }

    #[test]
    fn skips_records_below_position_and_ignores_a_cut_tail() {
        let mut all = BytesMut::new();
        all.extend_from_slice(&batch(10, &["a", "b", "c"]));
        all.extend_from_slice(&batch(13, &["d", "e"]));
        let third = batch(15, &["f"]);
        all.extend_from_slice(&third[..third.len() - 3]);
        let mut out = Vec::new();
        decode("t", 0, all.freeze(), 11, &mut out).unwrap();
        let got: Vec<(u64, &[u8])> = out.iter().map(|r| (r.offset, r.value.as_deref().unwrap())).collect();
        assert_eq!(got, vec![(11, &b"b"[..]), (12, b"c"), (13, b"d"), (14, b"e")]);
        assert_eq!(out[0].headers, vec![("h".to_string(), Some(Bytes::from_static(b"v")))]);
    }

    #[test]
    fn a_batch_thinned_by_compaction_moves_the_position_past_it() {
        let b = RecordBatch::new(batch(10, &["a", "b", "c", "d"]), usize::MAX).unwrap();
        let Filtered::Rewritten(thinned) = filter_records(&b, |r| r.offset == 10).unwrap() else { panic!() };
        let mut out = Vec::new();
        // Position 11 is inside the batch, past its only record.
        let end = decode("t", 0, thinned, 11, &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(end, 14, "the batch's span ends at 13");
    }

    #[test]
    fn a_corrupt_batch_is_an_error() {
        let mut bytes = BytesMut::from(&batch(0, &["a"])[..]);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let err = decode("t", 3, bytes.freeze(), 0, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("corrupt record batch for partition t-3"), "{err}");
    }
}
