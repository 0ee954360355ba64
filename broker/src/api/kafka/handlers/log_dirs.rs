//! DescribeLogDirs 1–4: the broker's one log directory with the size of
//! every partition replica in it and the file system's total and usable
//! bytes — what `kafka-log-dirs.sh`, admin clients and consoles show as a
//! topic's disk use.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};
use kafka_protocol::protocol::StrBytes;

use super::topic_name;
use crate::authorizer::{Resource, Session};
use crate::service::BrokerService;
use strata_metadata::AclOperation;

/// Answers `req`: every replica on this broker (a null topic list), or the
/// named partitions that are here.
pub(crate) fn handle(core: &BrokerService, session: &Session, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    if let Err(e) = core.authorize(session, AclOperation::Describe, Resource::Cluster) {
        let mut r = DescribeLogDirsResponse::default();
        r.error_code = crate::api::kafka::codes::code_of(e.kind());
        return r;
    }
    let wanted: Option<HashSet<(String, i32)>> = req.topics.map(|topics| {
        topics.iter().flat_map(|t| t.partitions.iter().map(move |p| (t.topic.0.to_string(), *p))).collect()
    });
    let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for p in core.replicas.partitions() {
        let Ok(index) = i32::try_from(p.tp.partition) else { continue };
        if wanted.as_ref().is_some_and(|w| !w.contains(&(p.tp.topic.clone(), index))) {
            continue;
        }
        let mut out = DescribeLogDirsPartition::default();
        out.partition_index = index;
        out.partition_size = i64::try_from(p.log.size_bytes()).unwrap_or(i64::MAX);
        // Kafka's lag of a current (not future) replica: how far its log
        // end is behind the high watermark it knows.
        out.offset_lag = i64::try_from(p.high_watermark().saturating_sub(p.log.log_end_offset())).unwrap_or(0);
        by_topic.entry(p.tp.topic.clone()).or_default().push(out);
    }
    let dir = core.replicas.log_dir();
    let mut result = DescribeLogDirsResult::default();
    result.log_dir = StrBytes::from_string(dir.display().to_string());
    match strata_storage::disk_space(dir) {
        Ok((total, usable)) => {
            result.total_bytes = i64::try_from(total).unwrap_or(i64::MAX);
            result.usable_bytes = i64::try_from(usable).unwrap_or(i64::MAX);
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot read the log directory's disk space");
            result.total_bytes = -1;
            result.usable_bytes = -1;
        }
    }
    result.topics = by_topic
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            let mut t = DescribeLogDirsTopic::default();
            t.name = topic_name(&name);
            t.partitions = partitions;
            t
        })
        .collect();
    let mut r = DescribeLogDirsResponse::default();
    r.results.push(result);
    r
}
