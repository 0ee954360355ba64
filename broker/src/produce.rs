//! Produce: validate every batch of a partition's records, then append them
//! all under one lock with one durability wait. acks=0 and 1 reply after the
//! leader's append; acks=all first checks `min.insync.replicas`, then waits
//! until the high watermark passes the last appended offset (woken by the
//! high watermark moving, never by polling).

use std::time::Duration;

use bytes::Bytes;
use strata_protocol::v1::{Error, ErrorCode, PartitionProduceResult, PartitionRecords};
use strata_record::batch::{split_batches, RecordBatch};

use crate::api_error;
use crate::partition::Partition;
use crate::service::BrokerService;

impl BrokerService {
    /// Appends one partition's records and says where they landed.
    pub(crate) async fn produce_partition(
        &self,
        pr: PartitionRecords,
        acks: i32,
        timeout: Duration,
    ) -> PartitionProduceResult {
        let (topic, partition) = (pr.topic.clone(), pr.partition);
        let mut result = PartitionProduceResult { topic: pr.topic, partition, ..Default::default() };
        if !matches!(acks, -1..=1) {
            result.error =
                Some(Error::new(ErrorCode::InvalidRequest, format!("acks must be 0, 1 or -1 (all), not {acks}")));
            return result;
        }
        match self.append(&topic, partition, pr.records, acks, timeout).await {
            Ok((base_offset, log_start_offset, records, bytes)) => {
                result.base_offset = base_offset;
                result.log_start_offset = log_start_offset;
                self.metrics.record_produce(records, bytes);
            }
            Err(e) => {
                self.metrics.record_error(e.error_code());
                result.error = Some(e);
            }
        }
        result
    }

    async fn append(
        &self,
        topic: &str,
        partition: u32,
        records: Bytes,
        acks: i32,
        timeout: Duration,
    ) -> Result<(u64, u64, u64, u64), Error> {
        crate::admin::refuse_internal(topic, "written")?;
        let p = self.replicas.lookup(topic, partition)?;
        if acks == -1 {
            p.check_min_isr(ErrorCode::NotEnoughReplicas)?;
        }
        if records.is_empty() {
            return Err(Error::new(ErrorCode::InvalidRequest, format!("{topic}-{partition}: no record batches given")));
        }
        let bytes = records.len() as u64;
        let max = p.log.config().max_batch_bytes;
        let mut batches: Vec<RecordBatch> = Vec::new();
        for (i, b) in split_batches(records, max).enumerate() {
            batches.push(b.map_err(|e| api_error::batch_error(topic, partition, i, &e))?);
        }
        let count: u64 = batches.iter().map(|b| u64::from(b.header().record_count)).sum();
        let log = p.log.clone();
        let epoch = p.leader_epoch_if_leader().ok_or_else(|| p.not_leader())?;
        let info = tokio::task::spawn_blocking(move || log.append_batches(&batches, epoch))
            .await
            .map_err(|e| Error::new(ErrorCode::UnknownServerError, format!("append task failed: {e}")))?
            .map_err(|e| api_error::storage_error(topic, partition, &e))?;
        p.after_leader_append();
        if acks == -1 {
            wait_committed(&p, epoch, info.last_offset + 1, timeout, &self.stopping).await?;
        }
        Ok((info.first_offset, p.log.log_start_offset(), count, bytes))
    }
}

/// Where an acks=all append ending at `end` (exclusive), made in leader
/// `epoch`, stands: `Ok(true)` once committed, `Ok(false)` while it must
/// wait, or the error that fails it (leadership moved; the ISR fell below
/// `min.insync.replicas`). Sync, so a simulation drives the same rule.
pub fn commit_status(p: &Partition, epoch: u32, end: u64) -> Result<bool, Error> {
    if p.leader_epoch_if_leader() != Some(epoch) {
        return Err(Error::new(
            ErrorCode::NotLeaderOrFollower,
            format!("{}: leadership moved before the records were replicated; they may be lost", p.tp),
        ));
    }
    // Before the high watermark (as Kafka's DelayedProduce): once the ISR
    // shrank below the minimum, the leader alone moves the high watermark,
    // and completing then would acknowledge a record held by one replica.
    p.check_min_isr(ErrorCode::NotEnoughReplicasAfterAppend)?;
    Ok(p.high_watermark() >= end)
}

/// Waits until the high watermark reaches `end` while this broker still
/// leads in `epoch`; fails if leadership moves, the ISR falls below
/// `min.insync.replicas`, or `timeout` passes.
pub(crate) async fn wait_committed(
    p: &Partition,
    epoch: u32,
    end: u64,
    timeout: Duration,
    stopping: &tokio_util::sync::CancellationToken,
) -> Result<(), Error> {
    let mut hw = p.watch_high_watermark();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        hw.borrow_and_update();
        if commit_status(p, epoch, end)? {
            return Ok(());
        }
        if stopping.is_cancelled() {
            // After a controlled shutdown the followers fetch from the new
            // leader: this high watermark will not move again. Answer now so
            // the producer retries there instead of waiting out its timeout.
            return Err(Error::new(
                ErrorCode::NotLeaderOrFollower,
                format!("{}: this broker is shutting down; the records may not be replicated", p.tp),
            ));
        }
        let changed = tokio::select! {
            r = tokio::time::timeout_at(deadline, hw.changed()) => r,
            _ = stopping.cancelled() => continue,
        };
        match changed {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(p.not_leader()),
            Err(_) => {
                return Err(Error::new(
                    ErrorCode::RequestTimedOut,
                    format!(
                        "{}: not replicated to the in-sync replicas within {} ms (high watermark {}, needed {end})",
                        p.tp,
                        timeout.as_millis(),
                        p.high_watermark()
                    ),
                ))
            }
        }
    }
}
