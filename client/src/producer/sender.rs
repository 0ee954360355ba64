//! The producer's background task: drains sendable batches from the
//! accumulator, groups them by leader broker into produce requests, sends
//! them with bounded concurrency per broker, and resolves, retries or fails
//! their records from the answers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_protocol::v1::{ErrorCode, PartitionProduceResult};
use strata_record::batch::compress_batch;
use strata_record::compression::Compression;
use tokio::sync::Semaphore;

use super::accumulator::Drained;
use super::wire::{self, PartitionBatches};
use super::{Acks, Shared};
use crate::connection::call;
use crate::error::ClientError;

/// Longest pause between two retries of a batch.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(1);

/// Extra time the client waits beyond the broker's own produce timeout, so
/// a broker-side REQUEST_TIMED_OUT arrives before the client gives up.
const TIMEOUT_SLACK: Duration = Duration::from_secs(5);

/// The sender loop; returns once the producer is closing and every batch
/// has completed.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut limits: HashMap<u32, Arc<Semaphore>> = HashMap::new();
    loop {
        if shared.acc().reset_due() {
            reset_producer(&shared).await;
            continue;
        }
        let (drained, next) = {
            let mut acc = shared.acc();
            if acc.closing && acc.is_idle() {
                acc.stopped = true;
                break;
            }
            acc.drain(Instant::now(), shared.config.max_request_bytes)
        };
        if !drained.is_empty() {
            dispatch(&shared, drained, &mut limits);
        }
        match next {
            Some(at) => {
                tokio::select! {
                    _ = shared.wake.notified() => {}
                    _ = tokio::time::sleep_until(at.into()) => {}
                }
            }
            None => shared.wake.notified().await,
        }
    }
    shared.done.notify_waiters();
    tracing::debug!("producer sender stopped");
}

/// Takes a new producer id for the partitions that must start over (a
/// batch failed for good, or the leader found a gap). If none can be had
/// (the cluster's retry time passed), the batches waiting in those
/// partitions fail with that error instead of waiting forever.
async fn reset_producer(shared: &Shared) {
    match super::init_producer_id(&shared.cluster, shared.config.request_timeout).await {
        Ok(p) => {
            tracing::info!(producer_id = p.0, "partitions start over under a new producer id");
            shared.acc().reset_producer(p);
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot get a new producer id; failing the batches waiting for one");
            let failed = shared.acc().take_reset_waiting();
            let mut permits = 0;
            for b in failed {
                permits += b.permits;
                b.completer.complete(Err(e.clone()));
            }
            finish(shared, permits);
        }
    }
}

/// Groups drained partitions by leader and spawns one task per request.
fn dispatch(shared: &Arc<Shared>, drained: Vec<Drained>, limits: &mut HashMap<u32, Arc<Semaphore>>) {
    let mut by_leader: HashMap<u32, Vec<Drained>> = HashMap::new();
    for d in drained {
        match shared.cluster.leader(&d.topic, d.partition) {
            Some(leader) => by_leader.entry(leader).or_default().push(d),
            None => {
                let err = shared.cluster.topic_error(&d.topic).unwrap_or_else(|| {
                    let msg = format!("no leader known for partition {}-{}", d.topic, d.partition);
                    ClientError::server(ErrorCode::LeaderNotAvailable, msg)
                });
                let shared = shared.clone();
                tokio::spawn(async move {
                    let _ = shared.cluster.refresh().await;
                    settle_failed(&shared, d, &err);
                    shared.wake.notify_one();
                });
            }
        }
    }
    let max_bytes = shared.config.max_request_bytes;
    for (leader, parts) in by_leader {
        let limit =
            limits.entry(leader).or_insert_with(|| Arc::new(Semaphore::new(shared.config.max_in_flight))).clone();
        let mut request: Vec<Drained> = Vec::new();
        let mut size = 0;
        for d in parts {
            let n = d.bytes();
            if !request.is_empty() && size + n > max_bytes {
                spawn_request(shared, leader, limit.clone(), std::mem::take(&mut request));
                size = 0;
            }
            size += n;
            request.push(d);
        }
        if !request.is_empty() {
            spawn_request(shared, leader, limit, request);
        }
    }
}

fn spawn_request(shared: &Arc<Shared>, leader: u32, limit: Arc<Semaphore>, parts: Vec<Drained>) {
    let shared = shared.clone();
    tokio::spawn(async move {
        let parts = encode(&shared, parts).await;
        let result = {
            // The semaphore is never closed.
            let _permit = limit.acquire_owned().await;
            produce(&shared, leader, &parts).await
        };
        match result {
            Ok(results) => handle_results(&shared, parts, results).await,
            Err(e) => {
                tracing::debug!(leader, error = %e, "produce request failed");
                if e.is_retriable() && e.needs_metadata_refresh() {
                    let _ = shared.cluster.refresh().await;
                }
                for d in parts {
                    settle_failed(&shared, d, &e);
                }
            }
        }
        shared.wake.notify_one();
    });
}

async fn produce(shared: &Shared, leader: u32, parts: &[Drained]) -> Result<Vec<PartitionProduceResult>, ClientError> {
    let config = &shared.config;
    let partitions: Vec<PartitionBatches<'_>> = parts
        .iter()
        .map(|d| PartitionBatches {
            topic: &d.topic,
            partition: d.partition,
            batches: d.batches.iter().map(|b| b.bytes.clone()).collect(),
        })
        .collect();
    let (channel, authorization) = shared.cluster.broker_channel(leader).await?;
    let timeout_ms = u32::try_from(config.request_timeout.as_millis()).unwrap_or(u32::MAX);
    let what = format!("Produce to broker {leader}");
    let produce = wire::produce(channel, authorization, config.acks.as_i32(), timeout_ms, &partitions);
    Ok(call(&what, config.request_timeout + TIMEOUT_SLACK, produce).await?.partitions)
}

/// Puts each batch into its final encoding once: compressed with the
/// producer's codec, on the blocking pool (CPU work, off the accumulator's
/// lock and the async workers).
async fn encode(shared: &Shared, mut parts: Vec<Drained>) -> Vec<Drained> {
    let (codec, level) = (shared.config.compression, shared.config.compression_level);
    let pending = parts.iter().flat_map(|d| &d.batches).any(|b| !b.encoded);
    if codec == Compression::None || !pending {
        return parts;
    }
    let job = tokio::task::spawn_blocking(move || {
        for b in parts.iter_mut().flat_map(|d| d.batches.iter_mut()).filter(|b| !b.encoded) {
            match compress_batch(&b.bytes, codec, level) {
                Ok(bytes) => b.bytes = bytes,
                // The level was checked when the producer was made, and an
                // in-memory codec has nothing else to fail on; sending the
                // batch uncompressed is still correct.
                Err(e) => tracing::warn!(error = %e, "batch sent uncompressed"),
            }
            b.encoded = true;
        }
        parts
    });
    match job.await {
        Ok(parts) => parts,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // The runtime is shutting down: the batches were dropped with the
        // task, and their completers failed their records with `Closed`.
        Err(_) => Vec::new(),
    }
}

async fn handle_results(shared: &Arc<Shared>, parts: Vec<Drained>, results: Vec<PartitionProduceResult>) {
    let mut by_partition: HashMap<(&str, u32), &PartitionProduceResult> = HashMap::new();
    for r in &results {
        by_partition.entry((r.topic.as_str(), r.partition)).or_insert(r);
    }
    let mut outcomes = Vec::with_capacity(parts.len());
    let mut refresh = false;
    for d in parts {
        let outcome = match by_partition.get(&(&*d.topic, d.partition)) {
            Some(r) => match ClientError::from_api(r.error.as_ref()) {
                None => Ok(r.base_offset),
                Some(e) => Err(e),
            },
            None if shared.config.acks == Acks::None => Ok(0),
            None => Err(ClientError::InvalidResponse(format!(
                "no produce result for partition {}-{}",
                d.topic, d.partition
            ))),
        };
        if let Err(e) = &outcome {
            refresh |= e.is_retriable() && e.needs_metadata_refresh();
        }
        outcomes.push((d, outcome));
    }
    if refresh {
        let _ = shared.cluster.refresh().await;
    }
    for (d, outcome) in outcomes {
        match outcome {
            Ok(base_offset) => settle_ok(shared, d, base_offset),
            Err(e) => settle_failed(shared, d, &e),
        }
    }
}

/// Resolves every record of a written entry: record `i` of the entry gets
/// `base_offset + i` (batches are back to back in the log).
fn settle_ok(shared: &Shared, d: Drained, base_offset: u64) {
    let with_offsets = shared.config.acks != Acks::None;
    let mut offset = base_offset;
    let mut ids = Vec::with_capacity(d.batches.len());
    let mut permits = 0;
    for batch in d.batches {
        ids.push(batch.id);
        permits += batch.permits;
        batch.completer.complete(Ok(with_offsets.then_some(offset)));
        offset += u64::from(batch.records);
    }
    shared.acc().settle(&d.topic, d.partition, Vec::new(), None, &ids);
    finish(shared, permits);
}

/// Handles an entry the broker (or the transport) rejected: an entry of
/// several batches rejected as a whole for its content is split so each
/// batch is judged alone; retriable errors go back to the queue until the
/// batch used its retries; everything else fails the entry's records.
fn settle_failed(shared: &Shared, d: Drained, err: &ClientError) {
    // A duplicate among several batches: sent alone, each retried batch is
    // answered with its original offsets.
    let content_error = matches!(
        err.code(),
        Some(ErrorCode::RecordTooLarge | ErrorCode::CorruptBatch | ErrorCode::DuplicateSequenceNumber)
    );
    if content_error && d.batches.len() > 1 {
        tracing::debug!(topic = %d.topic, partition = d.partition, error = %err, "splitting rejected entry");
        let requeue = d
            .batches
            .into_iter()
            .map(|mut b| {
                b.solo = true;
                b
            })
            .collect();
        shared.acc().settle(&d.topic, d.partition, requeue, None, &[]);
        return;
    }
    // A sequence gap (a batch before these failed for good): nothing of
    // these was written; they go again, renumbered under a new producer id.
    let renumber = err.code() == Some(ErrorCode::OutOfOrderSequenceNumber);
    let retriable = err.is_retriable() || renumber;
    let mut requeue = Vec::new();
    let mut failed = Vec::new();
    let now = Instant::now();
    let mut backoff_exponent = 0;
    for mut b in d.batches {
        let first_failure = *b.first_failure.get_or_insert(now);
        let in_time = now.saturating_duration_since(first_failure) < shared.config.delivery_timeout;
        if retriable && b.attempts < shared.config.retries && in_time {
            b.attempts += 1;
            backoff_exponent = backoff_exponent.max(b.attempts.saturating_sub(1).min(6));
            requeue.push(b);
        } else {
            failed.push(b);
        }
    }
    if !requeue.is_empty() {
        tracing::debug!(topic = %d.topic, partition = d.partition, error = %err, "retrying batches");
    }
    let ids: Vec<u64> = failed.iter().map(|b| b.id).collect();
    let first_id = requeue.iter().chain(&failed).map(|b| b.id).min().unwrap_or(0);
    let mut permits = 0;
    for b in failed {
        permits += b.permits;
        b.completer.complete(Err(err.clone()));
    }
    // Exponential backoff (as Kafka's retry.backoff.max.ms), so a leader
    // failover of a few seconds is ridden through without hammering the
    // cluster while it elects.
    let backoff =
        (shared.config.retry_backoff * (1 << backoff_exponent)).min(MAX_RETRY_BACKOFF.max(shared.config.retry_backoff));
    let retry_at = now + backoff;
    {
        // One lock: the renumbering must see the requeued batches.
        let mut acc = shared.acc();
        // A gap the retry of an earlier batch still in the works may fill is
        // not one: only a gap nothing earlier can fill, or a batch that
        // failed for good, makes the partition start over.
        let gap = !ids.is_empty() || (renumber && !acc.unacked_before(&d.topic, d.partition, first_id));
        acc.settle(&d.topic, d.partition, requeue, Some(retry_at), &ids);
        if gap && acc.idempotent() {
            acc.mark_reset(&d.topic, d.partition);
            tracing::warn!(topic = %d.topic, partition = d.partition, error = %err, "a batch failed for good or found a sequence gap; the partition starts over under a new producer id");
        }
    }
    finish(shared, permits);
}

fn finish(shared: &Shared, permits: usize) {
    if permits > 0 {
        shared.buffer.add_permits(permits);
    }
    shared.done.notify_waiters();
}
