//! Topic configs under Kafka's names, validated and turned into the storage
//! engine's `LogConfig`. Unknown keys and bad values are rejected by name.

use std::collections::BTreeMap;

use strata_record::compression::{Compression, CompressionError};
use strata_storage::{FlushPolicy, LogConfig};

/// The topic config keys this broker understands.
pub(crate) const KNOWN_KEYS: &[&str] = &[
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "max.message.bytes",
    "flush.policy",
    "flush.interval.ms",
    "flush.max.delay.ms",
    "min.insync.replicas",
    "unclean.leader.election.enable",
    "compression.type",
    "cleanup.policy",
    "delete.retention.ms",
    "min.compaction.lag.ms",
    "min.cleanable.dirty.ratio",
];

/// The settings of a topic that its partitions apply outside the log:
/// replication and compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSettings {
    /// acks=all needs at least this many in-sync replicas.
    pub min_insync_replicas: u32,
    /// A replica outside the ISR may become leader (data loss).
    pub unclean_leader_election: bool,
    /// How the leader stores produced batches (`compression.type`).
    pub compression: CompressionPolicy,
}

impl TopicSettings {
    /// The defaults for a topic with `replication_factor` replicas.
    pub(crate) fn defaults(replication_factor: u32) -> Self {
        TopicSettings {
            min_insync_replicas: default_min_insync(replication_factor),
            unclean_leader_election: false,
            compression: CompressionPolicy::Producer,
        }
    }
}

/// A topic's `compression.type`, as Kafka has it: keep what the producer
/// sent, or store every batch with one codec (recompressing what differs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompressionPolicy {
    /// `producer` (the default): batches are stored as they arrived.
    #[default]
    Producer,
    /// `uncompressed`, `gzip`, `snappy`, `lz4` or `zstd`.
    Codec(Compression),
}

/// The default `min.insync.replicas` for a replication factor: 2 from RF 3
/// up (one replica may fail without blocking acks=all, and an acknowledged
/// record is always on two brokers), else 1.
pub(crate) fn default_min_insync(replication_factor: u32) -> u32 {
    if replication_factor >= 3 {
        2
    } else {
        1
    }
}

/// Reads the replication keys of `configs` for a topic with
/// `replication_factor` replicas; values are checked by name.
pub(crate) fn topic_settings(
    configs: &BTreeMap<String, String>,
    replication_factor: u32,
) -> Result<TopicSettings, TopicConfigError> {
    let mut r = TopicSettings::defaults(replication_factor);
    for (key, value) in configs {
        let err = |reason: String| TopicConfigError { key: key.clone(), value: value.clone(), reason };
        match key.as_str() {
            "min.insync.replicas" => {
                let n = value.trim().parse::<u32>().map_err(|_| err("not a positive integer".into()))?;
                if n == 0 || n > replication_factor {
                    return Err(err(format!("must be between 1 and the replication factor ({replication_factor})")));
                }
                r.min_insync_replicas = n;
            }
            "unclean.leader.election.enable" => {
                r.unclean_leader_election = match value.trim().to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(err("must be true or false".into())),
                }
            }
            "compression.type" => {
                r.compression = match value.trim().to_ascii_lowercase().as_str() {
                    "producer" => CompressionPolicy::Producer,
                    "uncompressed" | "gzip" | "snappy" | "lz4" | "zstd" => {
                        CompressionPolicy::Codec(value.parse().map_err(|e: CompressionError| err(e.to_string()))?)
                    }
                    _ => return Err(err("must be producer, uncompressed, gzip, snappy, lz4 or zstd".into())),
                }
            }
            _ => {}
        }
    }
    Ok(r)
}

/// Why a topic config is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid topic config {key}={value}: {reason}")]
pub(crate) struct TopicConfigError {
    /// The key.
    pub key: String,
    /// The value given.
    pub value: String,
    /// What is wrong.
    pub reason: String,
}

/// Applies `configs` over `base` (the broker's defaults), validating every
/// key and value. `retention.ms` / `retention.bytes` of -1 mean unlimited, as
/// in Kafka.
pub(crate) fn log_config(base: &LogConfig, configs: &BTreeMap<String, String>) -> Result<LogConfig, TopicConfigError> {
    let mut c = base.clone();
    let mut flush_policy: Option<String> = None;
    let mut cleanup: Option<(bool, bool)> = None;
    let mut flush_interval: Option<u64> = None;
    let mut flush_delay: Option<u64> = None;
    for (key, value) in configs {
        let err = |reason: &str| TopicConfigError { key: key.clone(), value: value.clone(), reason: reason.into() };
        let number = || value.trim().parse::<i64>().map_err(|_| err("not an integer"));
        let positive =
            || number().and_then(|n| u64::try_from(n).ok().filter(|&n| n > 0).ok_or_else(|| err("must be positive")));
        let unlimited_or_positive = || match number()? {
            -1 => Ok(None),
            n if n > 0 => Ok(Some(n as u64)),
            _ => Err(err("must be positive, or -1 for unlimited")),
        };
        match key.as_str() {
            "retention.ms" => c.retention_ms = unlimited_or_positive()?,
            "retention.bytes" => c.retention_bytes = unlimited_or_positive()?,
            "segment.bytes" => c.segment_bytes = positive()?,
            "segment.ms" => c.segment_ms = positive()?,
            "max.message.bytes" => {
                c.max_batch_bytes = usize::try_from(positive()?).map_err(|_| err("too large"))?;
            }
            "flush.policy" => flush_policy = Some(value.clone()),
            "cleanup.policy" => cleanup = Some(parse_cleanup_policy(value).map_err(&err)?),
            "delete.retention.ms" => {
                c.delete_retention_ms = u64::try_from(number()?).map_err(|_| err("must not be negative"))?
            }
            "min.compaction.lag.ms" => {
                c.min_compaction_lag_ms = u64::try_from(number()?).map_err(|_| err("must not be negative"))?
            }
            "min.cleanable.dirty.ratio" => {
                let ratio = value.trim().parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r));
                let ratio = ratio.ok_or_else(|| err("must be a number between 0 and 1"))?;
                c.min_cleanable_dirty_permille = (ratio * 1000.0).round() as u32;
            }
            // Keys outside the log: see `topic_settings`.
            "min.insync.replicas" | "unclean.leader.election.enable" | "compression.type" => {}
            "flush.interval.ms" => flush_interval = Some(positive()?),
            "flush.max.delay.ms" => {
                flush_delay = Some(number().and_then(|n| u64::try_from(n).map_err(|_| err("must not be negative")))?)
            }
            _ => return Err(err(&format!("unknown config key; known keys: {}", KNOWN_KEYS.join(", ")))),
        }
    }
    if let Some((compact, delete)) = cleanup {
        c.compact = compact;
        if !delete {
            // Compacted only: records go when superseded, never by age or size.
            c.retention_ms = None;
            c.retention_bytes = None;
        }
    }
    if let Some(p) = flush_policy.as_deref() {
        c.flush = match p {
            "always" => FlushPolicy::Always,
            "group_commit" => FlushPolicy::GroupCommit { max_delay_ms: flush_delay.unwrap_or(0) },
            "interval" => FlushPolicy::Interval { interval_ms: flush_interval.unwrap_or(1000) },
            _ => {
                return Err(TopicConfigError {
                    key: "flush.policy".into(),
                    value: p.into(),
                    reason: "must be always, group_commit or interval".into(),
                })
            }
        };
    }
    c.validate().map_err(|e| TopicConfigError {
        key: "(combined)".into(),
        value: String::new(),
        reason: e.to_string(),
    })?;
    Ok(c)
}

/// Kafka's `cleanup.policy`: `delete`, `compact`, or both (comma-separated,
/// either order) as (compact, delete).
fn parse_cleanup_policy(value: &str) -> Result<(bool, bool), &'static str> {
    let (mut compact, mut delete) = (false, false);
    for part in value.split(',').map(|p| p.trim().to_ascii_lowercase()) {
        match part.as_str() {
            "compact" => compact = true,
            "delete" => delete = true,
            _ => return Err("must be delete, compact, or compact,delete"),
        }
    }
    if !compact && !delete {
        return Err("must be delete, compact, or compact,delete");
    }
    Ok((compact, delete))
}

/// Every known topic config of a topic with `configs` set on it,
/// `cluster` defaults set at run time and `replication_factor` replicas:
/// `(key, value, source)`, where a value set on neither is the node's
/// default (Kafka's DescribeConfigs lists them all, with their source).
pub(crate) fn described(
    base: &LogConfig,
    replication_factor: u32,
    configs: &BTreeMap<String, String>,
    cluster: &BTreeMap<String, String>,
) -> Vec<(&'static str, String, ConfigSource)> {
    let built_in = LogConfig::default();
    let from_cluster = effective(cluster, &BTreeMap::new(), replication_factor);
    KNOWN_KEYS
        .iter()
        .map(|&key| {
            if let Some(v) = configs.get(key) {
                return (key, v.clone(), ConfigSource::Topic);
            }
            if let Some(v) = from_cluster.get(key) {
                return (key, v.clone(), ConfigSource::Cluster);
            }
            let value = default_value(key, base, replication_factor);
            // A node's config file ([log]) overriding the built-in default.
            let source = if value == default_value(key, &built_in, replication_factor) {
                ConfigSource::Default
            } else {
                ConfigSource::Broker
            };
            (key, value, source)
        })
        .collect()
}

/// The configs a topic runs with: the cluster-wide defaults set at run
/// time (`strata cluster alter-config`, Kafka's default-broker resource)
/// under the topic's own. A cluster `min.insync.replicas` above the
/// topic's replication factor applies as the replication factor.
pub(crate) fn effective(
    cluster: &BTreeMap<String, String>,
    topic: &BTreeMap<String, String>,
    replication_factor: u32,
) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> =
        cluster.iter().filter(|(k, _)| KNOWN_KEYS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    if let Some(v) = out.get_mut("min.insync.replicas") {
        if v.trim().parse::<u32>().is_ok_and(|n| n > replication_factor) {
            *v = replication_factor.max(1).to_string();
        }
    }
    out.extend(topic.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

/// Where a described config value comes from (Kafka's config sources).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConfigSource {
    /// Set on the topic (Kafka's DYNAMIC_TOPIC_CONFIG).
    Topic,
    /// A cluster-wide default set at run time (DYNAMIC_DEFAULT_BROKER_CONFIG).
    Cluster,
    /// This node's config file (STATIC_BROKER_CONFIG).
    Broker,
    /// The built-in default (DEFAULT_CONFIG).
    Default,
}

impl ConfigSource {
    /// Kafka's code for it in DescribeConfigs and CreateTopics answers.
    pub(crate) fn kafka_code(self) -> i8 {
        match self {
            ConfigSource::Topic => 1,
            ConfigSource::Cluster => 3,
            ConfigSource::Broker => 4,
            ConfigSource::Default => 5,
        }
    }
}

/// `key`'s value when the topic does not set it, under `base`.
fn default_value(key: &str, base: &LogConfig, replication_factor: u32) -> String {
    let unlimited = |v: Option<u64>| v.map_or_else(|| "-1".to_string(), |n| n.to_string());
    let (policy, interval, delay) = match base.flush {
        FlushPolicy::Always => ("always", 1000, 0),
        FlushPolicy::GroupCommit { max_delay_ms } => ("group_commit", 1000, max_delay_ms),
        FlushPolicy::Interval { interval_ms } => ("interval", interval_ms, 0),
    };
    match key {
        "retention.ms" => unlimited(base.retention_ms),
        "retention.bytes" => unlimited(base.retention_bytes),
        "segment.bytes" => base.segment_bytes.to_string(),
        "segment.ms" => base.segment_ms.to_string(),
        "max.message.bytes" => base.max_batch_bytes.to_string(),
        "flush.policy" => policy.to_string(),
        "flush.interval.ms" => interval.to_string(),
        "flush.max.delay.ms" => delay.to_string(),
        "min.insync.replicas" => default_min_insync(replication_factor).to_string(),
        "unclean.leader.election.enable" => "false".to_string(),
        "compression.type" => "producer".to_string(),
        "cleanup.policy" => if base.compact { "compact" } else { "delete" }.to_string(),
        "delete.retention.ms" => base.delete_retention_ms.to_string(),
        "min.compaction.lag.ms" => base.min_compaction_lag_ms.to_string(),
        "min.cleanable.dirty.ratio" => format!("{}", f64::from(base.min_cleanable_dirty_permille) / 1000.0),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn every_known_key_is_described_with_its_default_or_its_value() {
        let d = described(&LogConfig::default(), 3, &map(&[("retention.ms", "1000")]), &map(&[]));
        assert_eq!(d.len(), KNOWN_KEYS.len());
        assert!(d.contains(&("retention.ms", "1000".into(), ConfigSource::Topic)));
        assert!(d.contains(&("min.insync.replicas", "2".into(), ConfigSource::Default)));
        assert!(d.contains(&("compression.type", "producer".into(), ConfigSource::Default)));
        // A node's config file overriding a default shows as the broker's.
        let node = LogConfig { segment_bytes: 4096, ..LogConfig::default() };
        let d = described(&node, 3, &map(&[]), &map(&[("retention.bytes", "100"), ("retention.ms", "5")]));
        assert!(d.contains(&("segment.bytes", "4096".into(), ConfigSource::Broker)), "{d:?}");
        assert!(d.contains(&("retention.bytes", "100".into(), ConfigSource::Cluster)), "{d:?}");
        assert!(d.contains(&("flush.policy", "group_commit".into(), ConfigSource::Default)), "{d:?}");
        assert!(d.iter().all(|(_, v, _)| !v.is_empty()), "{d:?}");
        // The defaults listed are accepted back as topic configs.
        let all: BTreeMap<String, String> = d.iter().map(|(k, v, _)| (k.to_string(), v.clone())).collect();
        log_config(&LogConfig::default(), &all).expect("the described values are valid configs");
    }

    #[test]
    fn cluster_defaults_sit_under_the_topics_own_configs() {
        let cluster =
            map(&[("retention.ms", "60000"), ("min.insync.replicas", "2"), ("replication.throttled.rate", "9")]);
        let e = effective(&cluster, &map(&[("retention.ms", "1000")]), 3);
        assert_eq!(
            e,
            map(&[("retention.ms", "1000"), ("min.insync.replicas", "2")]),
            "the topic wins; non-topic keys stay out"
        );
        let e = effective(&cluster, &map(&[]), 1);
        assert_eq!(e["min.insync.replicas"], "1", "clamped to the replication factor");
        assert_eq!(e["retention.ms"], "60000");
        topic_settings(&e, 1).expect("a clamped default is valid");
    }

    #[test]
    fn kafka_keys_map_onto_log_config() {
        let c = log_config(
            &LogConfig::default(),
            &map(&[
                ("retention.ms", "-1"),
                ("retention.bytes", "1048576"),
                ("segment.bytes", "65536"),
                ("max.message.bytes", "2048"),
                ("flush.policy", "interval"),
                ("flush.interval.ms", "250"),
            ]),
        )
        .unwrap();
        assert_eq!(c.retention_ms, None);
        assert_eq!(c.retention_bytes, Some(1 << 20));
        assert_eq!(c.segment_bytes, 65536);
        assert_eq!(c.max_batch_bytes, 2048);
        assert_eq!(c.flush, FlushPolicy::Interval { interval_ms: 250 });
    }

    #[test]
    fn compression_type_takes_kafkas_topic_values() {
        assert_eq!(topic_settings(&map(&[]), 1).unwrap().compression, CompressionPolicy::Producer);
        for (v, want) in [
            ("producer", CompressionPolicy::Producer),
            ("uncompressed", CompressionPolicy::Codec(Compression::None)),
            ("gzip", CompressionPolicy::Codec(Compression::Gzip)),
            ("Snappy", CompressionPolicy::Codec(Compression::Snappy)),
            ("lz4", CompressionPolicy::Codec(Compression::Lz4)),
            ("zstd", CompressionPolicy::Codec(Compression::Zstd)),
        ] {
            assert_eq!(topic_settings(&map(&[("compression.type", v)]), 1).unwrap().compression, want, "{v}");
        }
        assert!(log_config(&LogConfig::default(), &map(&[("compression.type", "zstd")])).is_ok());
    }

    #[test]
    fn replication_keys_are_checked_against_the_replication_factor() {
        assert_eq!(topic_settings(&map(&[]), 3).unwrap().min_insync_replicas, 2);
        assert_eq!(topic_settings(&map(&[]), 1).unwrap().min_insync_replicas, 1);
        let r = topic_settings(&map(&[("min.insync.replicas", "3"), ("unclean.leader.election.enable", "TRUE")]), 3)
            .unwrap();
        assert_eq!(
            r,
            TopicSettings {
                min_insync_replicas: 3,
                unclean_leader_election: true,
                compression: CompressionPolicy::Producer
            }
        );
        for (k, v) in [
            ("min.insync.replicas", "4"),
            ("min.insync.replicas", "0"),
            ("unclean.leader.election.enable", "y"),
            ("compression.type", "none"),
            ("compression.type", "brotli"),
        ] {
            let e = topic_settings(&map(&[(k, v)]), 3).unwrap_err();
            assert!(e.to_string().contains(k), "{e}");
        }
        assert!(log_config(&LogConfig::default(), &map(&[("min.insync.replicas", "2")])).is_ok());
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        for (k, v) in [
            ("retention.ms", "abc"),
            ("segment.bytes", "0"),
            ("nope", "1"),
            ("flush.policy", "sometimes"),
            ("segment.bytes", "10"),
        ] {
            let e = log_config(&LogConfig::default(), &map(&[(k, v)])).unwrap_err();
            assert!(e.to_string().contains(if k == "segment.bytes" && v == "10" { "segment_bytes" } else { k }), "{e}");
        }
    }
}
