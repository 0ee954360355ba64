//! Resolving a [`SeekTo`] to an offset with `ListOffsets` sent to each
//! partition's leader, retrying after leader moves.

use std::collections::HashMap;
use std::time::Duration;

use strata_protocol::v1::{ListOffsetsPartition, ListOffsetsRequest};

use strata_record::TopicPartition;

use super::SeekTo;
use crate::connection::call;
use crate::error::ClientError;
use crate::metadata::Cluster;

/// `ListOffsets` timestamp for the earliest offset.
const EARLIEST: i64 = -2;
/// `ListOffsets` timestamp for the latest offset (the high watermark).
const LATEST: i64 = -1;
/// First pause before `ListOffsets` is retried; it doubles up to
/// `MAX_BACKOFF` until the cluster's `retry_timeout` runs out.
const BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The offset each `(partition, to)` resolves to, in input order.
/// `Offset(o)` resolves to `o` without a request; a timestamp after the last
/// record resolves to the end of the partition.
pub(crate) async fn resolve(cluster: &Cluster, wanted: &[(TopicPartition, SeekTo)]) -> Result<Vec<u64>, ClientError> {
    let mut out: Vec<Option<u64>> = wanted
        .iter()
        .map(|(_, to)| match to {
            SeekTo::Offset(o) => Some(*o),
            _ => None,
        })
        .collect();
    let lookups: Vec<(usize, i64)> = wanted
        .iter()
        .enumerate()
        .filter_map(|(i, (_, to))| match to {
            SeekTo::Beginning => Some((i, EARLIEST)),
            SeekTo::End => Some((i, LATEST)),
            SeekTo::Timestamp(ts) => Some((i, (*ts).max(0))),
            SeekTo::Offset(_) => None,
        })
        .collect();
    let found = list(cluster, wanted, &lookups).await?;
    // Timestamps past the last record: the end of the partition.
    let past_end: Vec<(usize, i64)> = found.iter().filter(|(_, o)| *o < 0).map(|&(i, _)| (i, LATEST)).collect();
    let ends = list(cluster, wanted, &past_end).await?;
    for (i, offset) in found.into_iter().chain(ends) {
        if offset >= 0 {
            out[i] = Some(offset as u64);
        }
    }
    out.into_iter()
        .zip(wanted)
        .map(|(o, (tp, _))| {
            o.ok_or_else(|| ClientError::InvalidResponse(format!("no offset returned for partition {tp}")))
        })
        .collect()
}

/// Runs `ListOffsets` for `lookups` (index into `wanted`, wire timestamp),
/// returning `(index, offset)` pairs; the offset may be -1.
async fn list(
    cluster: &Cluster,
    wanted: &[(TopicPartition, SeekTo)],
    lookups: &[(usize, i64)],
) -> Result<Vec<(usize, i64)>, ClientError> {
    let mut results = Vec::with_capacity(lookups.len());
    let mut todo: Vec<(usize, i64)> = lookups.to_vec();
    let deadline = tokio::time::Instant::now() + cluster.retry_timeout;
    let mut backoff = BACKOFF;
    while !todo.is_empty() {
        let mut retry = Vec::new();
        let mut last_err = None;
        let mut by_leader: HashMap<u32, Vec<(usize, i64)>> = HashMap::new();
        for &(i, ts) in &todo {
            let TopicPartition { topic, partition } = &wanted[i].0;
            cluster.want(topic);
            match cluster.leader(topic, *partition) {
                Some(l) => by_leader.entry(l).or_default().push((i, ts)),
                None => {
                    // A topic the cluster does not have fails at once; a
                    // leaderless partition of a known one is retried.
                    if cluster.topic(topic).is_none() {
                        if let Some(e) = cluster.topic_error(topic) {
                            return Err(e);
                        }
                    }
                    retry.push((i, ts));
                    last_err = Some(crate::consumer::no_leader(topic, *partition));
                }
            }
        }
        for (leader, items) in by_leader {
            let request = ListOffsetsRequest {
                partitions: items
                    .iter()
                    .map(|&(i, timestamp)| ListOffsetsPartition {
                        topic: wanted[i].0.topic.clone(),
                        partition: wanted[i].0.partition,
                        timestamp,
                    })
                    .collect(),
            };
            let response = match cluster.broker_client(leader).await {
                Ok(mut c) => call("ListOffsets", cluster.request_timeout, c.list_offsets(request)).await,
                Err(e) => Err(e),
            };
            let response = match response {
                Ok(r) => r,
                Err(e) if e.is_retriable() => {
                    retry.extend(items);
                    last_err = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            for (i, ts) in items {
                let TopicPartition { topic, partition } = &wanted[i].0;
                let listed = response.partitions.iter().find(|r| &r.topic == topic && r.partition == *partition);
                let Some(listed) = listed else {
                    return Err(ClientError::InvalidResponse(format!(
                        "no ListOffsets result for partition {topic}-{partition}"
                    )));
                };
                match ClientError::from_api(listed.error.as_ref()) {
                    None => results.push((i, listed.offset)),
                    Some(e) if e.is_retriable() => {
                        retry.push((i, ts));
                        last_err = Some(e);
                    }
                    Some(e) => return Err(e),
                }
            }
        }
        if !retry.is_empty() {
            if tokio::time::Instant::now() + backoff >= deadline {
                let names: Vec<String> = retry.iter().map(|&(i, _)| wanted[i].0.to_string()).collect();
                let last = last_err.unwrap_or(ClientError::Timeout("ListOffsets kept failing".into()));
                return Err(crate::metadata::gave_up(last, &names, cluster.retry_timeout));
            }
            let _ = cluster.refresh().await;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        todo = retry;
    }
    Ok(results)
}
