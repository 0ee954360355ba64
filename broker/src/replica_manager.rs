//! `ReplicaManager`: the partition replicas this broker hosts, kept in step
//! with the controller's metadata: logs are opened for every partition with
//! a replica here, each replica becomes leader or follower as the leader
//! epochs say, followers are handed to the fetchers, and logs are deleted
//! with their topics.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock, RwLock};

use crate::error::{BrokerError, ErrorKind};
use strata_metadata::{MetadataImage, PartitionInfo};
use strata_storage::{LogConfig, LogManager, TopicPartition};

use crate::partition::{system_clock, Clock, ClockHandle, Partition};
use crate::replication::fetcher::ReplicaFetcherManager;
use crate::replication::throttle::{self, ReplicationThrottle};
use crate::topic_config;

/// Partitions hosted by this broker.
#[derive(Debug)]
pub struct ReplicaManager {
    node_id: u32,
    logs: LogManager,
    defaults: LogConfig,
    clock: ClockHandle,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    image: RwLock<Arc<MetadataImage>>,
    applying: std::sync::Mutex<()>,
    fetchers: OnceLock<ReplicaFetcherManager>,
    throttle: ReplicationThrottle,
}

/// What the image wants hosted for one partition.
struct Wanted<'a> {
    topic_id: &'a str,
    info: &'a PartitionInfo,
    /// The topic's configs over the cluster-wide defaults.
    configs: Arc<BTreeMap<String, String>>,
}

impl ReplicaManager {
    /// Wraps the data directory's logs.
    pub fn new(node_id: u32, logs: LogManager, defaults: LogConfig) -> Self {
        Self::with_clock(node_id, logs, defaults, system_clock())
    }

    /// [`ReplicaManager::new`] whose partitions take "now" from `clock`
    /// (a simulation's time).
    pub fn with_clock(node_id: u32, logs: LogManager, defaults: LogConfig, clock: Clock) -> Self {
        ReplicaManager {
            node_id,
            logs,
            defaults,
            clock: ClockHandle(clock),
            partitions: RwLock::new(HashMap::new()),
            image: RwLock::new(Arc::new(MetadataImage::default())),
            applying: std::sync::Mutex::new(()),
            fetchers: OnceLock::new(),
            throttle: ReplicationThrottle::default(),
        }
    }

    /// Starts replicating: follower partitions fetch from their leaders with
    /// tasks on `runtime`. Without it (tests of one broker) nothing fetches.
    pub fn start_replication(&self, runtime: tokio::runtime::Handle) {
        self.start_replication_with_tls(runtime, None);
    }

    /// [`Self::start_replication`], fetching over TLS with `tls` (this
    /// node's certificate, the cluster's CA) when given.
    pub fn start_replication_with_tls(&self, runtime: tokio::runtime::Handle, tls: Option<strata_tls::ClientTls>) {
        let _ = self.fetchers.set(ReplicaFetcherManager::new(self.node_id, runtime, tls));
        self.apply_metadata(self.image());
    }

    /// This broker's id.
    pub fn node_id(&self) -> u32 {
        self.node_id
    }

    /// The metadata this broker last applied.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The directory holding this broker's partition logs.
    pub fn log_dir(&self) -> &std::path::Path {
        self.logs.dir()
    }

    /// The rate limit on data sent to replicas a reassignment adds.
    pub fn throttle(&self) -> &ReplicationThrottle {
        &self.throttle
    }

    /// The log defaults topic configs override.
    pub fn defaults(&self) -> &LogConfig {
        &self.defaults
    }

    /// Brings hosted replicas in line with `image`. Applications are
    /// serialized, and an image older than the one already applied is
    /// ignored: applying a stale image could delete a newly created topic's
    /// log.
    pub fn apply_metadata(&self, image: Arc<MetadataImage>) {
        let _serial = self.applying.lock().unwrap_or_else(|p| p.into_inner());
        if image.offset < self.image().offset || image.cluster_id.is_empty() {
            // Stale, or not yet the cluster's metadata (a broker that has
            // not caught up): applying it could delete live logs.
            return;
        }
        let rate = image.broker_configs.get(throttle::THROTTLE_CONFIG).map(|v| throttle::parse_rate(v));
        match rate {
            Some(Err(e)) => tracing::error!(error = %e, "replication throttle ignored"),
            Some(Ok(r)) => self.throttle.set_rate(Some(r)),
            None => self.throttle.set_rate(None),
        }
        let mut wanted: HashMap<TopicPartition, Wanted<'_>> = HashMap::new();
        for topic in image.topics.values() {
            let mut configs = None;
            for info in &topic.partitions {
                if info.replicas.contains(&self.node_id) {
                    if let Ok(tp) = TopicPartition::new(&topic.name, info.partition) {
                        let configs = configs
                            .get_or_insert_with(|| {
                                let rf = info.reassignment.as_ref().map_or(info.replicas.len(), |r| r.target.len());
                                Arc::new(topic_config::effective(&image.broker_configs, &topic.configs, rf as u32))
                            })
                            .clone();
                        wanted.insert(tp, Wanted { topic_id: &topic.id, info, configs });
                    }
                }
            }
        }
        let mut partitions = self.partitions.write().unwrap_or_else(|p| p.into_inner());
        partitions.retain(|tp, p| wanted.get(tp).is_some_and(|w| w.topic_id == p.topic_id));
        let mut new = Vec::new();
        for (tp, w) in &wanted {
            let rf = w.info.replicas.len() as u32;
            let replication = topic_config::topic_settings(&w.configs, rf).unwrap_or_else(|e| {
                tracing::error!(partition = %tp, error = %strata_record::ErrorChain(&e), "replication config rejected; using defaults");
                topic_config::TopicSettings::defaults(rf)
            });
            match partitions.get(tp) {
                Some(p) => {
                    if let Err(e) = p.apply(w.info, replication) {
                        tracing::error!(partition = %tp, error = %strata_record::ErrorChain(&e), "could not change the replica's role");
                    }
                    // A topic config changed on a running cluster: the log
                    // takes it from its next append or retention pass.
                    match topic_config::log_config(&self.defaults, &w.configs) {
                        Ok(config) if config != p.log.config() => {
                            if let Err(e) = p.log.set_config(config) {
                                tracing::error!(partition = %tp, error = %strata_record::ErrorChain(&e), "could not apply a changed topic config");
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::error!(partition = %tp, error = %strata_record::ErrorChain(&e), "changed topic config rejected; keeping the old one")
                        }
                    }
                }
                None => new.push((tp, w, replication)),
            }
        }
        // Opening a replica records its leader epoch durably (an fsync or
        // two): thousands of new replicas (a restart) open several at once.
        let opened = strata_storage::map_unordered(new, strata_storage::LOG_THREADS, |(tp, w, replication)| {
            let config = match topic_config::log_config(&self.defaults, &w.configs) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(partition = %tp, error = %strata_record::ErrorChain(&e), "topic config rejected; using broker defaults");
                    self.defaults.clone()
                }
            };
            let opened = self.logs.get_or_create(tp, Some(config.clone())).and_then(|log| {
                if let Err(e) = log.set_config(config) {
                    tracing::error!(partition = %tp, error = %strata_record::ErrorChain(&e), "could not apply topic config");
                }
                Partition::with_clock(
                    self.node_id,
                    tp.clone(),
                    w.topic_id.to_string(),
                    log,
                    w.info,
                    replication,
                    self.clock.0.clone(),
                )
            });
            (tp, opened)
        });
        for (tp, opened) in opened {
            match opened {
                Ok(p) => {
                    partitions.insert(tp.clone(), Arc::new(p));
                }
                Err(e) => {
                    tracing::error!(partition = %tp, error = %strata_record::ErrorChain(&e), "could not open partition log")
                }
            }
        }
        let followed = self.followed(&partitions, &image);
        drop(partitions);
        if let Some(f) = self.fetchers.get() {
            f.assign(followed);
        }
        // Logs of topics that no longer exist (or moved off this broker) are deleted.
        for tp in self.logs.list() {
            if !wanted.contains_key(&tp) {
                match self.logs.delete(&tp) {
                    Ok(_) => tracing::info!(partition = %tp, "deleted the log of a partition no longer hosted here"),
                    Err(e) => {
                        tracing::error!(partition = %tp, error = %strata_record::ErrorChain(&e), "could not delete log")
                    }
                }
            }
        }
        drop(wanted);
        *self.image.write().unwrap_or_else(|p| p.into_inner()) = image;
    }

    /// Follower partitions grouped by leader, with the leader's address.
    fn followed(
        &self,
        partitions: &HashMap<TopicPartition, Arc<Partition>>,
        image: &MetadataImage,
    ) -> HashMap<u32, (String, Vec<Arc<Partition>>)> {
        let mut by_leader: HashMap<u32, (String, Vec<Arc<Partition>>)> = HashMap::new();
        for p in partitions.values() {
            if let Some(l) = p.followed_leader() {
                if let Some(b) = image.brokers.get(&l) {
                    by_leader.entry(l).or_insert_with(|| (b.address.clone(), Vec::new())).1.push(p.clone());
                }
            }
        }
        by_leader
    }

    /// The partition to serve `topic`/`partition` as its leader, or the API
    /// error saying why not.
    pub fn lookup(&self, topic: &str, partition: u32) -> Result<Arc<Partition>, BrokerError> {
        let image = self.image();
        let Some(t) = image.topics.get(topic) else {
            return Err(BrokerError::new(ErrorKind::UnknownTopicOrPartition, format!("unknown topic '{topic}'")));
        };
        let Some(p) = t.partitions.get(partition as usize) else {
            return Err(BrokerError::new(
                ErrorKind::UnknownTopicOrPartition,
                format!("topic '{topic}' has {} partitions; there is no partition {partition}", t.partitions.len()),
            ));
        };
        if p.leader != Some(self.node_id) {
            return Err(match p.leader {
                Some(l) => BrokerError::new(
                    ErrorKind::NotLeaderOrFollower,
                    format!("broker {} is not the leader of {topic}-{partition}; broker {l} is", self.node_id),
                ),
                None => BrokerError::new(ErrorKind::LeaderNotAvailable, format!("{topic}-{partition} has no leader")),
            });
        }
        let tp = TopicPartition { topic: topic.to_string(), partition };
        let found = self.partitions.read().unwrap_or_else(|p| p.into_inner()).get(&tp).cloned();
        match found {
            Some(p) if p.leader_epoch_if_leader().is_some() => Ok(p),
            Some(p) => Err(p.not_leader()),
            None => Err(BrokerError::new(
                ErrorKind::LeaderNotAvailable,
                format!("{topic}-{partition} is not open yet on this broker"),
            )),
        }
    }

    /// The hosted replica of a partition, whatever its role.
    pub fn replica(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        self.partitions.read().unwrap_or_else(|p| p.into_inner()).get(tp).cloned()
    }

    /// Every hosted partition.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Partitions whose logs could not be opened.
    pub fn offline(&self) -> Vec<(TopicPartition, String)> {
        self.logs.offline()
    }

    /// Stops the fetchers (before a clean shutdown).
    pub fn stop_replication(&self) {
        if let Some(f) = self.fetchers.get() {
            f.shutdown();
        }
    }

    /// Clean shutdown of every log.
    pub fn close(self) -> Result<(), strata_storage::StorageError> {
        self.stop_replication();
        self.partitions.write().unwrap_or_else(|p| p.into_inner()).clear();
        self.logs.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_metadata::{PartitionInfo, TopicInfo};

    fn image(offset: u64, topics: &[&str]) -> Arc<MetadataImage> {
        let mut img = MetadataImage { offset, cluster_id: "c".into(), ..MetadataImage::default() };
        for t in topics {
            let p = PartitionInfo {
                partition: 0,
                replicas: vec![1],
                isr: vec![1],
                leader: Some(1),
                leader_epoch: 0,
                partition_epoch: 0,
                reassignment: None,
            };
            let info =
                TopicInfo { id: format!("id-{t}"), name: t.to_string(), configs: BTreeMap::new(), partitions: vec![p] };
            img.topics.insert(t.to_string(), info);
        }
        Arc::new(img)
    }

    #[test]
    fn a_stale_image_never_deletes_a_newer_topic() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogManager::open(dir.path(), LogConfig::default()).unwrap();
        let rm = ReplicaManager::new(1, logs, LogConfig::default());
        rm.apply_metadata(image(5, &["fresh"]));
        assert!(rm.lookup("fresh", 0).is_ok());
        rm.apply_metadata(image(4, &[]));
        assert!(rm.lookup("fresh", 0).is_ok(), "stale image applied");
        assert!(dir.path().join("fresh-0").exists());
        rm.apply_metadata(image(6, &[]));
        assert_eq!(rm.lookup("fresh", 0).unwrap_err().kind(), ErrorKind::UnknownTopicOrPartition);
        assert!(!dir.path().join("fresh-0").exists(), "a deleted topic's log is removed");
    }
}
