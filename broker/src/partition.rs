//! `Partition`: a partition this broker leads, its log, and the signal that
//! wakes long-polling fetches when the high watermark moves.

use std::sync::Arc;

use strata_storage::{Log, TopicPartition};
use tokio::sync::watch;

/// A partition led by this broker.
#[derive(Debug)]
pub struct Partition {
    /// Which partition.
    pub tp: TopicPartition,
    /// Its log.
    pub log: Arc<Log>,
    /// Leader epoch stamped on appended batches.
    pub leader_epoch: u32,
    high_watermark: watch::Sender<u64>,
}

impl Partition {
    /// Wraps an open log.
    pub fn new(tp: TopicPartition, log: Arc<Log>, leader_epoch: u32) -> Self {
        let (high_watermark, _) = watch::channel(log.log_end_offset());
        Partition { tp, log, leader_epoch, high_watermark }
    }

    /// Offset below which records are visible to consumers. With a single
    /// replica (this build) every appended record is committed, so it is the
    /// log end offset; replication makes it the minimum over the ISR.
    pub fn high_watermark(&self) -> u64 {
        *self.high_watermark.borrow()
    }

    /// Publishes the log's new end after an append (wakes fetchers).
    pub fn advance_high_watermark(&self) {
        let end = self.log.log_end_offset();
        self.high_watermark.send_if_modified(|hw| {
            let moved = end > *hw;
            *hw = end;
            moved
        });
    }

    /// A receiver that changes whenever the high watermark moves.
    pub fn watch_high_watermark(&self) -> watch::Receiver<u64> {
        self.high_watermark.subscribe()
    }
}
