//! Deleting records below an offset (Kafka's DeleteRecords, `strata topic
//! trim`): the leader raises its log start offset (durably, with the log's
//! checkpoint) and drops the segments wholly below it; followers follow the
//! leader's log start from their next fetch, so every replica ends at the
//! same start.

use strata_metadata::AclOperation;
use strata_record::TopicPartition;

use crate::admin::refuse_internal;
use crate::authorizer::{Resource, Session};
use crate::blocking::blocking;
use crate::error::{BrokerError, ErrorKind};
use crate::service::BrokerService;

impl BrokerService {
    /// Deletes `tp`'s records below `before` (`None`: below the high
    /// watermark, Kafka's -1); the partition's new log start offset. Only
    /// the leader does it, only up to the high watermark; needs Delete on
    /// the topic.
    pub async fn delete_records(
        &self,
        session: &Session,
        tp: &TopicPartition,
        before: Option<u64>,
    ) -> Result<u64, BrokerError> {
        self.authorize(session, AclOperation::Delete, Resource::Topic(&tp.topic))?;
        refuse_internal(&tp.topic, "trimmed")?;
        let p = self.replicas.lookup(&tp.topic, tp.partition)?;
        if p.leader_epoch_if_leader().is_none() {
            return Err(BrokerError::new(ErrorKind::NotLeaderOrFollower, format!("this broker does not lead {tp}")));
        }
        let hw = p.high_watermark();
        let offset = before.unwrap_or(hw);
        if offset > hw {
            return Err(BrokerError::new(
                ErrorKind::OffsetOutOfRange,
                format!("{tp}: cannot delete below offset {offset}, above the high watermark {hw}"),
            ));
        }
        let log = p.log.clone();
        blocking(move || log.delete_before(offset))
            .map_err(|e| crate::api_error::storage_error(&tp.topic, tp.partition, e))?;
        tracing::info!(partition = %tp, offset, principal = %session.principal, "records deleted below an offset");
        Ok(p.log.log_start_offset())
    }
}
