//! Fetch: read whole batches below the high watermark, and long-poll until
//! `min_bytes` are available or `max_wait_ms` passes. Waiters are woken by
//! the partitions' high-watermark signals, not by polling.

use std::time::Duration;

use bytes::Bytes;
use strata_record::TopicPartition;
use strata_storage::{fault_in, StorageError};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::api_error;
use crate::blocking::blocking;
use crate::error::{BrokerError, ErrorKind};
use crate::long_poll::wait_for_change;
use crate::service::BrokerService;

/// Longest a fetch may wait, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);

/// What a consumer fetch asks for.
#[derive(Debug, Clone)]
pub struct FetchParams {
    /// Longest to wait for `min_bytes` (capped at 30 s).
    pub max_wait: Duration,
    /// Bytes that end the wait early (at least 1).
    pub min_bytes: usize,
    /// Most bytes over all partitions (`None`: no limit); the first
    /// partition with data always gets at least one whole batch.
    pub max_bytes: Option<usize>,
    /// The partitions, in order.
    pub partitions: Vec<PartitionFetch>,
}

/// One partition of a fetch.
#[derive(Debug, Clone)]
pub struct PartitionFetch {
    /// Which partition.
    pub tp: TopicPartition,
    /// The offset to read from (the batch holding it comes whole).
    pub offset: u64,
    /// Most bytes for this partition (`None`: what the request allows).
    pub max_bytes: Option<usize>,
}

/// What one partition of a fetch returned.
#[derive(Debug)]
pub struct FetchedPartition {
    /// Which partition.
    pub tp: TopicPartition,
    /// Whole record batches from the fetch offset, below the high
    /// watermark, exactly as stored (zero copy from the log).
    pub records: Bytes,
    /// The partition's high watermark (0 with an error).
    pub high_watermark: u64,
    /// Its log start offset.
    pub log_start_offset: u64,
    /// Its log end offset.
    pub log_end_offset: u64,
    /// Why this partition returned nothing, if it failed.
    pub error: Option<BrokerError>,
}

use crate::authorizer::{Resource, Session};
use strata_metadata::AclOperation;

impl BrokerService {
    /// Serves a consumer fetch of what `session` may read, waiting for data
    /// as asked; a partition it may not read answers
    /// `TOPIC_AUTHORIZATION_FAILED` at once, in its place.
    pub async fn fetch(&self, session: &Session, req: &FetchParams) -> Vec<FetchedPartition> {
        let denied: Vec<Option<BrokerError>> = req
            .partitions
            .iter()
            .map(|fp| self.authorize(session, AclOperation::Read, Resource::Topic(&fp.tp.topic)).err())
            .collect();
        if denied.iter().all(Option::is_none) {
            return self.fetch_allowed(req).await;
        }
        let allowed = FetchParams {
            partitions: req
                .partitions
                .iter()
                .zip(&denied)
                .filter(|(_, d)| d.is_none())
                .map(|(p, _)| p.clone())
                .collect(),
            max_wait: Duration::ZERO,
            ..*req
        };
        let mut fetched =
            if allowed.partitions.is_empty() { Vec::new() } else { self.fetch_allowed(&allowed).await }.into_iter();
        req.partitions
            .iter()
            .zip(denied)
            .filter_map(|(fp, d)| match d {
                None => fetched.next(),
                Some(e) => Some(FetchedPartition {
                    tp: fp.tp.clone(),
                    records: Bytes::new(),
                    high_watermark: 0,
                    log_start_offset: 0,
                    log_end_offset: 0,
                    error: Some(e),
                }),
            })
            .collect()
    }

    async fn fetch_allowed(&self, req: &FetchParams) -> Vec<FetchedPartition> {
        let deadline = Instant::now() + req.max_wait.min(MAX_WAIT_CAP);
        let min_bytes = req.min_bytes.max(1);
        loop {
            let (watchers, response, bytes, errors) = self.fetch_pass(req);
            if bytes >= min_bytes || errors || Instant::now() >= deadline || watchers.is_empty() {
                self.metrics.record_fetch(bytes as u64);
                return response;
            }
            if self.stopping.is_cancelled() {
                self.metrics.record_fetch(bytes as u64);
                return response;
            }
            if !wait_for_change(watchers, deadline, &self.stopping).await {
                let (_, response, bytes, _) = self.fetch_pass(req);
                self.metrics.record_fetch(bytes as u64);
                return response;
            }
        }
    }

    /// [`Self::fetch_once`], off the async worker when a partition is read
    /// from a sealed segment (a catching-up consumer), with its pages
    /// faulted in before the response is written to the socket.
    fn fetch_pass(&self, req: &FetchParams) -> (Vec<watch::Receiver<u64>>, Vec<FetchedPartition>, usize, bool) {
        let cold = req.partitions.iter().any(|fp| {
            self.replicas.lookup(&fp.tp.topic, fp.tp.partition).is_ok_and(|p| p.log.reads_sealed_segment(fp.offset))
        });
        if !cold {
            return self.fetch_once(req);
        }
        self.metrics.record_cold_read();
        blocking(|| {
            let pass = self.fetch_once(req);
            for r in &pass.1 {
                fault_in(&r.records);
            }
            pass
        })
    }

    /// One pass over the partitions: the results, the bytes they carry,
    /// whether any partition errored, and watchers taken before reading (so
    /// no append between the read and the wait is missed).
    fn fetch_once(&self, req: &FetchParams) -> (Vec<watch::Receiver<u64>>, Vec<FetchedPartition>, usize, bool) {
        let max_bytes = req.max_bytes.unwrap_or(usize::MAX);
        let mut used = 0usize;
        let mut errors = false;
        let mut watchers = Vec::new();
        let mut out = Vec::with_capacity(req.partitions.len());
        for fp in &req.partitions {
            let (topic, partition) = (&fp.tp.topic, fp.tp.partition);
            let mut r = FetchedPartition {
                tp: fp.tp.clone(),
                records: Bytes::new(),
                high_watermark: 0,
                log_start_offset: 0,
                log_end_offset: 0,
                error: None,
            };
            match self.replicas.lookup(topic, partition) {
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
                    let left = max_bytes.saturating_sub(used);
                    let budget = fp.max_bytes.map_or(left, |n| n.min(left));
                    if budget == 0 && used > 0 {
                        out.push(r);
                        continue;
                    }
                    match p.log.read_up_to(fp.offset, budget.max(1), hw) {
                        Ok(read) => {
                            used += read.batches.len();
                            r.records = read.batches;
                        }
                        Err(StorageError::OffsetOutOfRange { offset, log_start, log_end }) => {
                            errors = true;
                            r.error = Some(BrokerError::new(
                                ErrorKind::OffsetOutOfRange,
                                format!(
                                    "{topic}-{partition}: fetch offset {offset} is out of range; valid offsets are {log_start} to {log_end}"
                                ),
                            ));
                        }
                        Err(e) => {
                            errors = true;
                            r.error = Some(api_error::storage_error(topic, partition, e));
                        }
                    }
                }
            }
            if let Some(e) = &r.error {
                self.metrics.record_error(e.kind());
            }
            out.push(r);
        }
        (watchers, out, used, errors)
    }
}
