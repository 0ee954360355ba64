//! `ReplicaManager`: the partitions this broker hosts, kept in step with the
//! controller's metadata: logs are opened for partitions led here, and
//! deleted with their topics.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use strata_controller::MetadataImage;
use strata_protocol::v1::{Error, ErrorCode};
use strata_storage::{LogConfig, LogManager, TopicPartition};

use crate::partition::Partition;
use crate::topic_config;

/// Partitions hosted by this broker.
#[derive(Debug)]
pub struct ReplicaManager {
    node_id: u32,
    logs: LogManager,
    defaults: LogConfig,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    image: RwLock<Arc<MetadataImage>>,
    applying: std::sync::Mutex<()>,
}

impl ReplicaManager {
    /// Wraps the data directory's logs.
    pub fn new(node_id: u32, logs: LogManager, defaults: LogConfig) -> Self {
        ReplicaManager {
            node_id,
            logs,
            defaults,
            partitions: RwLock::new(HashMap::new()),
            image: RwLock::new(Arc::new(MetadataImage::default())),
            applying: std::sync::Mutex::new(()),
        }
    }

    /// The metadata this broker last applied.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The log defaults topic configs override.
    pub fn defaults(&self) -> &LogConfig {
        &self.defaults
    }

    /// Brings hosted partitions in line with `image`. Applications are
    /// serialized, and an image older than the one already applied is
    /// ignored: applying a stale image could delete a newly created topic's
    /// log.
    pub fn apply_metadata(&self, image: Arc<MetadataImage>) {
        let _serial = self.applying.lock().unwrap_or_else(|p| p.into_inner());
        if image.offset < self.image().offset {
            return;
        }
        let mut wanted: HashMap<TopicPartition, (u32, BTreeMap<String, String>)> = HashMap::new();
        for topic in image.topics.values() {
            for p in &topic.partitions {
                if p.leader == Some(self.node_id) {
                    if let Ok(tp) = TopicPartition::new(&topic.name, p.partition) {
                        wanted.insert(tp, (p.leader_epoch, topic.configs.clone()));
                    }
                }
            }
        }
        let mut partitions = self.partitions.write().unwrap_or_else(|p| p.into_inner());
        partitions.retain(|tp, _| wanted.contains_key(tp));
        for (tp, (epoch, configs)) in wanted {
            if partitions.get(&tp).is_some_and(|p| p.leader_epoch == epoch) {
                continue;
            }
            let config = match topic_config::log_config(&self.defaults, &configs) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(partition = %tp, error = %e, "topic config rejected; using broker defaults");
                    self.defaults.clone()
                }
            };
            match self.logs.get_or_create(&tp, Some(config.clone())) {
                Ok(log) => {
                    if let Err(e) = log.set_config(config) {
                        tracing::error!(partition = %tp, error = %e, "could not apply topic config");
                    }
                    partitions.insert(tp.clone(), Arc::new(Partition::new(tp, log, epoch)));
                }
                Err(e) => tracing::error!(partition = %tp, error = %e, "could not open partition log"),
            }
        }
        drop(partitions);
        // Logs of topics that no longer exist are deleted.
        for tp in self.logs.list() {
            let exists = image.topics.get(&tp.topic).is_some_and(|t| (tp.partition as usize) < t.partitions.len());
            if !exists {
                match self.logs.delete(&tp) {
                    Ok(_) => tracing::info!(partition = %tp, "deleted log of a deleted topic"),
                    Err(e) => tracing::error!(partition = %tp, error = %e, "could not delete log"),
                }
            }
        }
        *self.image.write().unwrap_or_else(|p| p.into_inner()) = image;
    }

    /// The partition to serve `topic`/`partition`, or the API error saying
    /// why not.
    pub fn lookup(&self, topic: &str, partition: u32) -> Result<Arc<Partition>, Error> {
        let image = self.image();
        let Some(t) = image.topics.get(topic) else {
            return Err(Error::new(ErrorCode::UnknownTopicOrPartition, format!("unknown topic '{topic}'")));
        };
        let Some(p) = t.partitions.get(partition as usize) else {
            return Err(Error::new(
                ErrorCode::UnknownTopicOrPartition,
                format!("topic '{topic}' has {} partitions; there is no partition {partition}", t.partitions.len()),
            ));
        };
        if p.leader != Some(self.node_id) {
            return Err(match p.leader {
                Some(l) => Error::new(
                    ErrorCode::NotLeaderOrFollower,
                    format!("broker {} is not the leader of {topic}-{partition}; broker {l} is", self.node_id),
                ),
                None => Error::new(ErrorCode::LeaderNotAvailable, format!("{topic}-{partition} has no leader")),
            });
        }
        let tp = TopicPartition { topic: topic.to_string(), partition };
        self.partitions.read().unwrap_or_else(|p| p.into_inner()).get(&tp).cloned().ok_or_else(|| {
            Error::new(ErrorCode::LeaderNotAvailable, format!("{topic}-{partition} is not open yet on this broker"))
        })
    }

    /// Every hosted partition.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Partitions whose logs could not be opened.
    pub fn offline(&self) -> Vec<(TopicPartition, String)> {
        self.logs.offline()
    }

    /// Clean shutdown of every log.
    pub fn close(self) -> Result<(), strata_storage::StorageError> {
        self.partitions.write().unwrap_or_else(|p| p.into_inner()).clear();
        self.logs.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_controller::{PartitionInfo, TopicInfo};

    fn image(offset: u64, topics: &[&str]) -> Arc<MetadataImage> {
        let mut img = MetadataImage { offset, ..MetadataImage::default() };
        for t in topics {
            let p = PartitionInfo {
                partition: 0,
                replicas: vec![1],
                isr: vec![1],
                leader: Some(1),
                leader_epoch: 0,
                partition_epoch: 0,
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
        assert_eq!(rm.lookup("fresh", 0).unwrap_err().error_code(), ErrorCode::UnknownTopicOrPartition);
        assert!(!dir.path().join("fresh-0").exists(), "a deleted topic's log is removed");
    }
}
