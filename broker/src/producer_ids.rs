//! Producer ids for idempotent producers (Kafka's `InitProducerId` without a
//! transactional id): each broker takes blocks of ids from the controller
//! (KIP-730) and hands them out one at a time, so starting a producer is a
//! Raft round trip only once per block.

use strata_metadata::{CommandOutcome, MetadataCommand};
use tokio::sync::Mutex;

use crate::admin::controller_error;
use crate::controller_link::SharedControllerLink;
use crate::error::{BrokerError, ErrorKind};
use crate::service::BrokerService;

/// Ids taken from the controller at a time (Kafka's block size).
const BLOCK: u32 = 1000;

/// What `InitProducerId` gives a producer: a fresh id at epoch 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdAndEpoch {
    /// The producer's id, unique in the cluster.
    pub producer_id: i64,
    /// Its epoch.
    pub producer_epoch: i16,
}

/// The broker's current block of ids: `[next, end)`.
#[derive(Debug, Default)]
pub(crate) struct ProducerIdManager {
    block: Mutex<(i64, i64)>,
}

impl ProducerIdManager {
    /// The next id, taking a new block from the controller when this one is
    /// used up. Callers queue on the block while it is being refilled.
    async fn next(&self, node_id: u32, controller: &SharedControllerLink) -> Result<i64, BrokerError> {
        let mut block = self.block.lock().await;
        if block.0 >= block.1 {
            let cmd = MetadataCommand::AllocateProducerIds { node_id, count: BLOCK };
            match controller.propose(cmd).await.map_err(|e| controller_error(&e))? {
                CommandOutcome::ProducerIdsAllocated { first, count, .. } => {
                    *block = (first, first + i64::from(count));
                    tracing::debug!(first, count, "took a block of producer ids");
                }
                other => {
                    return Err(BrokerError::new(
                        ErrorKind::UnknownServerError,
                        format!("the controller answered a producer-id allocation with {other:?}"),
                    ))
                }
            }
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }
}

impl BrokerService {
    /// A new idempotent producer's id and epoch (any broker answers).
    pub async fn init_producer_id(&self) -> Result<ProducerIdAndEpoch, BrokerError> {
        let producer_id = self.producer_ids.next(self.config.node_id, &self.controller).await?;
        Ok(ProducerIdAndEpoch { producer_id, producer_epoch: 0 })
    }
}
