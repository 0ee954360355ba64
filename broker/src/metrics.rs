//! Prometheus metrics: request counters kept live, partition gauges read at
//! scrape time, rendered in the text exposition format for `/metrics`.

use crate::error::ErrorKind;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::replica_manager::ReplicaManager;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupPartitionLabels {
    group: String,
    topic: String,
    partition: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    group: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    topic: String,
    partition: String,
}

/// Counters updated on the request path (cheap atomics).
#[derive(Debug, Default)]
pub struct Metrics {
    produce_records: Counter,
    produce_bytes: Counter,
    fetch_requests: Counter,
    fetch_bytes: Counter,
    cold_reads: Counter,
    throttled_replication_bytes: Counter,
    errors: Family<CodeLabels, Counter>,
    groups: Gauge,
}

impl Metrics {
    /// Counts an accepted produce.
    pub fn record_produce(&self, records: u64, bytes: u64) {
        self.produce_records.inc_by(records);
        self.produce_bytes.inc_by(bytes);
    }

    /// Counts a served fetch.
    pub fn record_fetch(&self, bytes: u64) {
        self.fetch_requests.inc();
        self.fetch_bytes.inc_by(bytes);
    }

    /// Counts a fetch pass (consumer or follower) that read a sealed
    /// segment off the async workers: how often readers are catching up.
    pub fn record_cold_read(&self) {
        self.cold_reads.inc();
    }

    /// Counts bytes sent to replicas a reassignment adds (under the
    /// replication throttle).
    pub fn record_throttled_replication(&self, bytes: usize) {
        self.throttled_replication_bytes.inc_by(bytes as u64);
    }

    /// Counts an error returned to a client.
    pub fn record_error(&self, kind: ErrorKind) {
        self.errors.get_or_create(&CodeLabels { code: kind.name().to_string() }).inc();
    }

    /// Sets how many consumer groups this broker coordinates.
    pub fn set_groups(&self, groups: usize) {
        self.groups.set(groups as i64);
    }

    /// The text exposition of every metric, partition gauges read now.
    /// `committed` holds the (group, topic, partition, offset) commits of the
    /// groups coordinated here: each gets a committed-offset gauge, and a lag
    /// gauge (high watermark − committed) when this broker hosts a replica
    /// of the partition (its high watermark; a follower's trails the
    /// leader's by at most one fetch). `members` holds each coordinated
    /// group's member count.
    pub fn render(
        &self,
        replicas: &ReplicaManager,
        is_controller_leader: bool,
        committed: &[(String, String, u32, u64)],
        members: &[(String, usize)],
    ) -> String {
        let mut r = Registry::with_prefix("strata");
        r.register("produce_records", "Records appended by produce requests", self.produce_records.clone());
        r.register("produce_bytes", "Record-batch bytes appended by produce requests", self.produce_bytes.clone());
        r.register("fetch_requests", "Fetch requests served", self.fetch_requests.clone());
        r.register("fetch_bytes", "Record-batch bytes returned by fetches", self.fetch_bytes.clone());
        r.register(
            "cold_reads",
            "Fetch passes (consumers and followers) that read a sealed segment, off the async workers",
            self.cold_reads.clone(),
        );
        r.register(
            "reassignment_bytes",
            "Bytes a leader sent to replicas a reassignment adds (limited by replication.throttled.rate)",
            self.throttled_replication_bytes.clone(),
        );
        r.register("errors", "Errors returned to clients, by code", self.errors.clone());
        r.register(
            "groups",
            "Consumer groups coordinated by this broker (with committed offsets)",
            self.groups.clone(),
        );
        let end = Family::<PartitionLabels, Gauge>::default();
        let start = Family::<PartitionLabels, Gauge>::default();
        let hw = Family::<PartitionLabels, Gauge>::default();
        let size = Family::<PartitionLabels, Gauge>::default();
        let leads = Family::<PartitionLabels, Gauge>::default();
        let isr_size = Family::<PartitionLabels, Gauge>::default();
        let (mut under_replicated, mut under_min_isr) = (0i64, 0i64);
        for p in replicas.partitions() {
            let l = PartitionLabels { topic: p.tp.topic.clone(), partition: p.tp.partition.to_string() };
            let (isr, assigned, min_isr) = p.isr_counts();
            let leader = p.leader_epoch_if_leader().is_some();
            leads.get_or_create(&l).set(i64::from(leader));
            isr_size.get_or_create(&l).set(isr as i64);
            if leader && isr < assigned {
                under_replicated += 1;
            }
            if leader && (isr as u32) < min_isr {
                under_min_isr += 1;
            }
            end.get_or_create(&l).set(p.log.log_end_offset() as i64);
            start.get_or_create(&l).set(p.log.log_start_offset() as i64);
            hw.get_or_create(&l).set(p.high_watermark() as i64);
            size.get_or_create(&l).set(p.log.size_bytes() as i64);
        }
        r.register("partition_log_end_offset", "Offset the next record appended gets", end);
        r.register("partition_log_start_offset", "First offset still in the log", start);
        r.register("partition_high_watermark", "Offset below which records are visible", hw);
        r.register("partition_size_bytes", "Bytes held by the partition's segments", size);
        r.register("partition_is_leader", "1 when this broker leads the partition", leads);
        r.register("partition_isr_size", "In-sync replicas of the partition (as last committed)", isr_size);
        let g = Gauge::<i64>::default();
        g.set(under_replicated);
        r.register("under_replicated_partitions", "Partitions led here whose ISR is smaller than their replica set", g);
        let g = Gauge::<i64>::default();
        g.set(under_min_isr);
        r.register(
            "under_min_isr_partitions",
            "Partitions led here whose ISR is below min.insync.replicas (acks=all fails)",
            g,
        );
        let offline = Gauge::<i64>::default();
        offline.set(replicas.offline().len() as i64);
        r.register("offline_partitions", "Partitions whose logs failed to open", offline);
        let group_offset = Family::<GroupPartitionLabels, Gauge>::default();
        let group_lag = Family::<GroupPartitionLabels, Gauge>::default();
        for (group, topic, partition, offset) in committed {
            let l =
                GroupPartitionLabels { group: group.clone(), topic: topic.clone(), partition: partition.to_string() };
            group_offset.get_or_create(&l).set(i64::try_from(*offset).unwrap_or(i64::MAX));
            let tp = strata_storage::TopicPartition { topic: topic.clone(), partition: *partition };
            if let Some(p) = replicas.replica(&tp) {
                group_lag.get_or_create(&l).set(p.high_watermark().saturating_sub(*offset) as i64);
            }
        }
        r.register(
            "group_committed_offset",
            "A consumer group's committed offset (groups coordinated here)",
            group_offset,
        );
        r.register(
            "group_lag",
            "Records between a group's committed offset and the high watermark (partitions hosted here)",
            group_lag,
        );
        let group_members = Family::<GroupLabels, Gauge>::default();
        for (group, n) in members {
            group_members.get_or_create(&GroupLabels { group: group.clone() }).set(*n as i64);
        }
        r.register("group_members", "Members of a consumer group (groups coordinated here)", group_members);
        let leader = Gauge::<i64>::default();
        leader.set(i64::from(is_controller_leader));
        r.register("controller_is_leader", "1 when this node is the active controller", leader);
        let mut out = String::new();
        if encode(&mut out, &r).is_err() {
            out.push_str("# metrics encoding failed\n");
        }
        out
    }
}
