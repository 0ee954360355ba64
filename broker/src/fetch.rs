//! Fetch: read whole batches below the high watermark, and long-poll until
//! `min_bytes` are available or `max_wait_ms` passes. Waiters are woken by
//! the partitions' high-watermark signals, not by polling.

use std::time::Duration;

use strata_protocol::v1::{Error, ErrorCode, FetchRequest, FetchResponse, FetchedPartition};
use strata_storage::StorageError;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::api_error;
use crate::long_poll::wait_for_change;
use crate::service::BrokerService;

/// Longest a fetch may wait, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);

impl BrokerService {
    /// Serves a fetch request, waiting for data as asked.
    pub(crate) async fn fetch(&self, req: FetchRequest) -> FetchResponse {
        let deadline = Instant::now() + Duration::from_millis(u64::from(req.max_wait_ms)).min(MAX_WAIT_CAP);
        let min_bytes = req.min_bytes.max(1) as usize;
        loop {
            let (watchers, response, bytes, errors) = self.fetch_once(&req);
            if bytes >= min_bytes || errors || Instant::now() >= deadline || watchers.is_empty() {
                self.metrics.record_fetch(bytes as u64);
                return response;
            }
            if self.stopping.is_cancelled() {
                self.metrics.record_fetch(bytes as u64);
                return response;
            }
            if !wait_for_change(watchers, deadline, &self.stopping).await {
                let (_, response, bytes, _) = self.fetch_once(&req);
                self.metrics.record_fetch(bytes as u64);
                return response;
            }
        }
    }

    /// One pass over the partitions: the response, the bytes it carries,
    /// whether any partition errored, and watchers taken before reading (so
    /// no append between the read and the wait is missed).
    fn fetch_once(&self, req: &FetchRequest) -> (Vec<watch::Receiver<u64>>, FetchResponse, usize, bool) {
        let max_bytes = if req.max_bytes == 0 { usize::MAX } else { req.max_bytes as usize };
        let mut used = 0usize;
        let mut errors = false;
        let mut watchers = Vec::new();
        let mut out = FetchResponse::default();
        for fp in &req.partitions {
            let mut r = FetchedPartition { topic: fp.topic.clone(), partition: fp.partition, ..Default::default() };
            match self.replicas.lookup(&fp.topic, fp.partition) {
                Err(e) => {
                    r.error = Some(e);
                    errors = true;
                }
                Ok(p) => {
                    watchers.push(p.watch_high_watermark());
                    let hw = p.high_watermark();
                    r.high_watermark = hw;
                    r.log_start_offset = p.log.log_start_offset();
                    r.log_end_offset = p.log.log_end_offset();
                    let budget = match fp.partition_max_bytes {
                        0 => max_bytes.saturating_sub(used),
                        n => (n as usize).min(max_bytes.saturating_sub(used)),
                    };
                    if budget == 0 && used > 0 {
                        out.partitions.push(r);
                        continue;
                    }
                    match p.log.read_up_to(fp.fetch_offset, budget.max(1), hw) {
                        Ok(read) => {
                            used += read.batches.len();
                            r.records = read.batches;
                        }
                        Err(StorageError::OffsetOutOfRange { offset, log_start, log_end }) => {
                            errors = true;
                            r.error = Some(Error::new(
                                ErrorCode::OffsetOutOfRange,
                                format!(
                                    "{}-{}: fetch offset {offset} is out of range; valid offsets are {log_start} to {log_end}",
                                    fp.topic, fp.partition
                                ),
                            ));
                        }
                        Err(e) => {
                            errors = true;
                            r.error = Some(api_error::storage_error(&fp.topic, fp.partition, &e));
                        }
                    }
                }
            }
            if let Some(e) = &r.error {
                self.metrics.record_error(e.error_code());
            }
            out.partitions.push(r);
        }
        (watchers, out, used, errors)
    }
}
