//! Writing offset records: one batch appended through the leader path
//! exactly like an acks=all produce (min ISR check before appending, the
//! shard's leader epoch stamped, wait until the high watermark passes the
//! batch). Returns the log offset of each record; the caller updates the
//! shard only after this succeeds.

use std::time::Duration;

use crate::error::{BrokerError, ErrorKind};
use strata_record::batch::{BatchBuilder, RecordBatch};

use super::coordinator::ShardHandle;
use super::record::{OffsetKey, OffsetValue};
use super::OFFSETS_TOPIC;
use crate::api_error;
use crate::produce::wait_committed;
use crate::service::BrokerService;

/// How long a commit waits for the in-sync replicas (Kafka's
/// `offsets.commit.timeout.ms` is 5 s).
pub(crate) const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl BrokerService {
    /// Appends `records` (a value `None` is a tombstone) as one batch to the
    /// shard's offsets partition and waits until it is committed. Returns
    /// the offset of the first record (the others follow densely).
    pub(crate) async fn append_offset_records(
        &self,
        h: &ShardHandle,
        records: &[(OffsetKey, Option<OffsetValue>)],
    ) -> Result<u64, BrokerError> {
        self.append_offset_records_from(h, records, None).await
    }

    /// [`BrokerService::append_offset_records`], each record optionally
    /// marked as a copy of the one at `sources[i]` (compaction).
    pub(crate) async fn append_offset_records_from(
        &self,
        h: &ShardHandle,
        records: &[(OffsetKey, Option<OffsetValue>)],
        sources: Option<&[u64]>,
    ) -> Result<u64, BrokerError> {
        let index = h.index;
        let p = &h.partition;
        let internal =
            |what: String| BrokerError::new(ErrorKind::UnknownServerError, format!("{OFFSETS_TOPIC}-{index}: {what}"));
        let mut b = BatchBuilder::new();
        let ts = now_ms();
        for (i, (k, v)) in records.iter().enumerate() {
            let key = k.encode().map_err(|e| BrokerError::new(ErrorKind::InvalidRequest, e.to_string()))?;
            let value = v.as_ref().map(OffsetValue::encode).transpose().map_err(|e| internal(e.to_string()))?;
            let source = sources.and_then(|s| s.get(i)).map(|at| at.to_be_bytes());
            let headers: Vec<(&str, Option<&[u8]>)> =
                source.iter().map(|at| (super::compaction::SOURCE_OFFSET_HEADER, Some(&at[..]))).collect();
            b.append(ts, Some(&key), value.as_deref(), &headers).map_err(|e| internal(e.to_string()))?;
        }
        let bytes = b.build().map_err(|e| internal(e.to_string()))?;
        let batch = RecordBatch::new(bytes, p.log.config().max_batch_bytes)
            .map_err(|e| api_error::batch_error(OFFSETS_TOPIC, index, 0, e))?;
        p.check_min_isr(ErrorKind::NotEnoughReplicas)?;
        let info = {
            // Shared: a load of this partition waits for the append to end.
            let _gate = h.gate.read().await;
            if p.leader_epoch_if_leader() != Some(h.epoch) {
                return Err(BrokerError::new(
                    ErrorKind::NotCoordinator,
                    format!("{OFFSETS_TOPIC}-{index}: leadership moved; find the coordinator again"),
                ));
            }
            let log = p.log.clone();
            let epoch = h.epoch;
            tokio::task::spawn_blocking(move || log.append_batches(&[batch], epoch))
                .await
                .map_err(|e| internal(format!("append task failed: {e}")))?
                .map_err(|e| api_error::storage_error(OFFSETS_TOPIC, index, e))?
        };
        p.after_leader_append();
        wait_committed(p, h.epoch, info.last_offset + 1, COMMIT_TIMEOUT, &self.stopping).await.map_err(|e| match e
            .kind()
        {
            ErrorKind::NotLeaderOrFollower | ErrorKind::LeaderNotAvailable => {
                BrokerError::new(ErrorKind::NotCoordinator, e.message())
            }
            _ => e,
        })?;
        Ok(info.first_offset)
    }
}
