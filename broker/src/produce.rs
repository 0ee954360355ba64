//! Produce: validate every batch of a partition's records, then append them
//! all under one lock with one durability wait (acks=1 and acks=all; a
//! single replica is the whole ISR).

use bytes::Bytes;
use strata_protocol::batch::{split_batches, RecordBatch};
use strata_protocol::v1::{Error, ErrorCode, PartitionProduceResult, PartitionRecords};

use crate::api_error;
use crate::service::BrokerService;

impl BrokerService {
    /// Appends one partition's records and says where they landed.
    pub(crate) async fn produce_partition(&self, pr: PartitionRecords, acks: i32) -> PartitionProduceResult {
        let (topic, partition) = (pr.topic.clone(), pr.partition);
        let mut result = PartitionProduceResult { topic: pr.topic, partition, ..Default::default() };
        if !matches!(acks, -1..=1) {
            result.error =
                Some(Error::new(ErrorCode::InvalidRequest, format!("acks must be 0, 1 or -1 (all), not {acks}")));
            return result;
        }
        match self.append(&topic, partition, pr.records).await {
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

    async fn append(&self, topic: &str, partition: u32, records: Bytes) -> Result<(u64, u64, u64, u64), Error> {
        let p = self.replicas.lookup(topic, partition)?;
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
        let epoch = p.leader_epoch;
        let info = tokio::task::spawn_blocking(move || log.append_batches(&batches, epoch))
            .await
            .map_err(|e| Error::new(ErrorCode::UnknownServerError, format!("append task failed: {e}")))?
            .map_err(|e| api_error::storage_error(topic, partition, &e))?;
        p.advance_high_watermark();
        Ok((info.first_offset, p.log.log_start_offset(), count, bytes))
    }
}
