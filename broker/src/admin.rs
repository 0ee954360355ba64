//! Topic administration, offset lookup and cluster description: validated
//! here, decided by the controller, applied to local logs before replying so
//! a client can produce to a topic as soon as creation returns.

use std::collections::BTreeMap;

use strata_metadata::{MetadataCommand, MetadataError};

use crate::controller_link::ControllerCallError;
use strata_record::TopicPartition;
use strata_storage::validate_topic_name;

use crate::api_error;
use crate::error::{BrokerError, ErrorKind};
use crate::service::BrokerService;
use crate::topic_config;

use crate::authorizer::{Resource, Session};
use strata_metadata::AclOperation;

impl BrokerService {
    /// Creates each topic (or, with `validate_only`, runs every check
    /// creation would and changes nothing); the result per topic name.
    pub async fn create_topics(
        &self,
        session: &Session,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<(String, Result<(), BrokerError>)> {
        let mut results = Vec::with_capacity(topics.len());
        for spec in topics {
            let name = spec.name.clone();
            // Kafka: create on the cluster, or on the topic itself.
            let result = if self.is_authorized(session, AclOperation::Create, Resource::Cluster) {
                Ok(())
            } else {
                self.authorize(session, AclOperation::Create, Resource::Topic(&name))
            };
            let result = match result {
                Ok(()) => self.create_topic(spec, validate_only).await,
                Err(e) => Err(e),
            };
            if let Err(e) = &result {
                self.metrics.record_error(e.kind());
            }
            results.push((name, result));
        }
        self.apply_current_metadata().await;
        results
    }

    /// Applies the controller's current metadata to this broker's replicas
    /// now (so the caller's next request finds them), on the blocking pool:
    /// it creates or deletes logs, thousands for a wide topic, each with
    /// durable writes.
    pub(crate) async fn apply_current_metadata(&self) {
        let (replicas, image) = (self.replicas.clone(), self.controller.metadata());
        if let Err(e) = tokio::task::spawn_blocking(move || replicas.apply_metadata(image)).await {
            tracing::error!(error = %e, "applying the cluster metadata failed");
        }
    }

    async fn create_topic(&self, spec: NewTopic, validate_only: bool) -> Result<(), BrokerError> {
        validate_topic_name(&spec.name).map_err(|e| BrokerError::new(ErrorKind::InvalidTopicName, e.to_string()))?;
        refuse_internal(&spec.name, "created")?;
        let partitions = spec.partitions.unwrap_or(self.config.default_partitions);
        let rf = match (spec.replication_factor, self.config.default_replication_factor) {
            (None, 0) => {
                // Kafka-style default: 3 replicas, or every live broker if fewer.
                let live = self.controller.metadata().unfenced_brokers().len() as u32;
                live.clamp(1, 3)
            }
            (None, default) => default,
            (Some(rf), _) => rf,
        };
        let configs = spec.configs;
        let effective = topic_config::effective(&self.controller.metadata().broker_configs, &configs, rf);
        topic_config::log_config(self.replicas.defaults(), &effective)
            .map_err(|e| BrokerError::new(ErrorKind::InvalidConfig, e.to_string()))?;
        topic_config::topic_settings(&effective, rf)
            .map_err(|e| BrokerError::new(ErrorKind::InvalidConfig, e.to_string()))?;
        if validate_only {
            // The state machine is pure: apply the command to a copy of the
            // current metadata to run exactly the checks creation would.
            let mut image = (*self.controller.metadata()).clone();
            let cmd = MetadataCommand::CreateTopic {
                name: spec.name.clone(),
                topic_id: "validate-only".into(),
                partitions,
                replication_factor: rf,
                configs,
            };
            return image.apply(&cmd).map(|_| ()).map_err(|e| controller_error(&ControllerCallError::Metadata(e)));
        }
        self.controller
            .create_topic(&spec.name, partitions, rf, configs)
            .await
            .map(|_| ())
            .map_err(|e| controller_error(&e))
    }

    /// Deletes each topic; the result per name.
    pub async fn delete_topics(&self, session: &Session, names: Vec<String>) -> Vec<(String, Result<(), BrokerError>)> {
        let mut results = Vec::with_capacity(names.len());
        for name in names {
            let allowed = self.authorize(session, AclOperation::Delete, Resource::Topic(&name));
            let result = match allowed.and_then(|()| refuse_internal(&name, "deleted")) {
                Err(e) => Err(e),
                Ok(()) => self.controller.delete_topic(&name).await.map_err(|e| controller_error(&e)),
            };
            results.push((name, result));
        }
        self.apply_current_metadata().await;
        results
    }

    /// Every topic `session` may describe, with its partition count and
    /// replication factor.
    pub fn list_topics(&self, session: &Session) -> Vec<TopicSummary> {
        let image = self.controller.metadata();
        image
            .topics
            .values()
            .filter(|t| self.is_authorized(session, AclOperation::Describe, Resource::Topic(&t.name)))
            .map(|t| TopicSummary {
                name: t.name.clone(),
                topic_id: t.id.clone(),
                partitions: t.partitions.len() as u32,
                replication_factor: t.partitions.first().map_or(0, |p| p.replicas.len() as u32),
            })
            .collect()
    }

    /// The named topics (all with no names): each partition's leader,
    /// epoch, replicas and ISR from the metadata, and its offsets from this
    /// broker's replica where it hosts one (a follower's may lag; clients
    /// ask the leader).
    /// Topics `session` may not describe are left out of "all", and
    /// answer `TOPIC_AUTHORIZATION_FAILED` when named.
    pub fn describe_topics(
        &self,
        session: &Session,
        names: Vec<String>,
    ) -> Vec<(String, Result<TopicDescription, BrokerError>)> {
        let image = self.controller.metadata();
        let names: Vec<String> = if names.is_empty() {
            image
                .topics
                .keys()
                .filter(|n| self.is_authorized(session, AclOperation::Describe, Resource::Topic(n)))
                .cloned()
                .collect()
        } else {
            names
        };
        let mut topics = Vec::with_capacity(names.len());
        for name in names {
            if let Err(e) = self.authorize(session, AclOperation::Describe, Resource::Topic(&name)) {
                topics.push((name, Err(e)));
                continue;
            }
            let Some(t) = image.topics.get(&name) else {
                let e = BrokerError::new(ErrorKind::UnknownTopicOrPartition, format!("unknown topic '{name}'"));
                topics.push((name, Err(e)));
                continue;
            };
            let partitions = t
                .partitions
                .iter()
                .map(|p| PartitionState {
                    partition: p.partition,
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    offsets: self.replicas.lookup(&t.name, p.partition).ok().map(|local| LocalOffsets {
                        log_start_offset: local.log.log_start_offset(),
                        log_end_offset: local.log.log_end_offset(),
                        high_watermark: local.high_watermark(),
                    }),
                })
                .collect();
            topics.push((
                name,
                Ok(TopicDescription {
                    name: t.name.clone(),
                    topic_id: t.id.clone(),
                    partitions,
                    configs: t.configs.clone(),
                }),
            ));
        }
        topics
    }

    /// The offset a partition's spec resolves to (`ListOffsets`).
    pub async fn list_offset(
        &self,
        session: &Session,
        tp: &TopicPartition,
        spec: OffsetSpec,
    ) -> Result<ListedOffset, BrokerError> {
        self.authorize(session, AclOperation::Describe, Resource::Topic(&tp.topic))?;
        let p = self.replicas.lookup(&tp.topic, tp.partition)?;
        Ok(match spec {
            OffsetSpec::Earliest => ListedOffset { offset: Some(p.log.log_start_offset()), timestamp: None },
            OffsetSpec::Latest => ListedOffset { offset: Some(p.high_watermark()), timestamp: None },
            OffsetSpec::Timestamp(_) | OffsetSpec::MaxTimestamp => {
                let log = p.log.clone();
                let found = tokio::task::spawn_blocking(move || match spec {
                    OffsetSpec::Timestamp(ts) => log.offset_for_timestamp(ts),
                    _ => log.max_timestamp_offset(),
                })
                .await
                .map_err(|e| BrokerError::new(ErrorKind::UnknownServerError, "lookup task failed").with_source(e))?
                .map_err(|e| api_error::storage_error(&tp.topic, tp.partition, e))?;
                match found {
                    Some((offset, timestamp)) if offset < p.high_watermark() => {
                        ListedOffset { offset: Some(offset), timestamp: Some(timestamp) }
                    }
                    _ => ListedOffset { offset: None, timestamp: None },
                }
            }
        })
    }

    /// The cluster: its id, the controller leader, the brokers and the
    /// controller voters with their replication lag.
    pub async fn describe_cluster(&self) -> ClusterDescription {
        let image = self.controller.metadata();
        // The voters' lag is known to the leader only: ask it (bounded), and
        // fall back to what this node knows when it cannot be reached.
        let quorum = tokio::time::timeout(DESCRIBE_QUORUM_TIMEOUT, self.controller.describe_quorum())
            .await
            .ok()
            .and_then(Result::ok);
        let local = self.controller.local_voter();
        let leader = quorum.as_ref().map(|q| q.leader_id).or_else(|| self.controller.leader_hint());
        ClusterDescription {
            cluster_id: image.cluster_id.clone(),
            controller_id: leader,
            brokers: image.brokers.values().cloned().collect(),
            voters: self
                .voter_addresses(&image, quorum.as_ref())
                .into_iter()
                .map(|(node_id, address)| crate::config::Voter { node_id, address })
                .collect::<Vec<_>>()
                .iter()
                .map(|v| VoterState {
                    node_id: v.node_id,
                    address: v.address.clone(),
                    is_leader: leader == Some(v.node_id),
                    // The leader knows every voter's replicated index; without
                    // it, a voter knows only its own apply lag.
                    lag: match (&quorum, &local) {
                        (Some(q), _) => {
                            q.voter_match_index.get(&v.node_id).map_or(0, |m| q.commit_index.saturating_sub(*m))
                        }
                        (None, Some(s)) if s.node_id == v.node_id => s.commit_index.saturating_sub(s.applied_index),
                        _ => 0,
                    },
                })
                .collect(),
            metadata_offset: image.offset,
        }
    }
}

/// Topics whose name starts with `__` are the broker's own (the offsets
/// topic): users cannot create or delete them.
pub(crate) fn refuse_internal(name: &str, what: &str) -> Result<(), BrokerError> {
    if crate::group::is_internal_topic(name) {
        return Err(BrokerError::new(
            ErrorKind::InvalidTopicName,
            format!("'{name}': topic names starting with '__' are reserved for internal topics and cannot be {what} by users"),
        ));
    }
    Ok(())
}

/// How long `DescribeCluster` waits for the controller leader's quorum view.
const DESCRIBE_QUORUM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The API error for a controller failure.
pub(crate) fn controller_error(e: &ControllerCallError) -> BrokerError {
    let code = match e {
        ControllerCallError::Metadata(m) => match m {
            MetadataError::TopicAlreadyExists { .. } => ErrorKind::TopicAlreadyExists,
            MetadataError::UnknownTopic { .. } => ErrorKind::UnknownTopicOrPartition,
            MetadataError::InvalidPartitions { .. } | MetadataError::PartitionCountNotRaised { .. } => {
                ErrorKind::InvalidPartitions
            }
            MetadataError::InvalidConfigChange { .. } => ErrorKind::InvalidConfig,
            MetadataError::InvalidReplicationFactor { .. } => ErrorKind::InvalidReplicationFactor,
            MetadataError::UnknownPartition { .. } => ErrorKind::UnknownTopicOrPartition,
            MetadataError::InvalidReplicaAssignment { .. } | MetadataError::CannotDecommission { .. } => {
                ErrorKind::InvalidReplicaAssignment
            }
            MetadataError::ReassignmentInProgress { .. } => ErrorKind::ReassignmentInProgress,
            MetadataError::NoReassignmentInProgress { .. } => ErrorKind::NoReassignmentInProgress,
            _ => ErrorKind::InvalidRequest,
        },
        ControllerCallError::NotLeader { .. } => ErrorKind::NotController,
        ControllerCallError::Timeout => ErrorKind::RequestTimedOut,
        _ => ErrorKind::UnknownServerError,
    };
    BrokerError::new(code, strata_record::ErrorChain(e).to_string())
}

/// Which offset a `ListOffsets` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The high watermark (the next offset a consumer will see).
    Latest,
    /// The first offset whose record's timestamp is at or after this (ms).
    Timestamp(i64),
    /// The first record carrying the largest timestamp (KIP-734).
    MaxTimestamp,
}

/// What a `ListOffsets` found for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// The offset; `None` when no record is at or after the timestamp.
    pub offset: Option<u64>,
    /// The found record's timestamp, for a timestamp lookup.
    pub timestamp: Option<i64>,
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Its name (Kafka's rules; `__` names are the broker's own).
    pub name: String,
    /// Partitions (`None`: the broker's default).
    pub partitions: Option<u32>,
    /// Replicas per partition (`None`: the broker's default, else 3 or
    /// every live broker if fewer).
    pub replication_factor: Option<u32>,
    /// Topic configs (`retention.ms`, `min.insync.replicas`, ...).
    pub configs: BTreeMap<String, String>,
}

/// A topic as `list_topics` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSummary {
    /// Its name.
    pub name: String,
    /// Its id (fixed at creation).
    pub topic_id: String,
    /// Its partition count.
    pub partitions: u32,
    /// Replicas of its first partition.
    pub replication_factor: u32,
}

/// A topic as `describe_topics` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// Its name.
    pub name: String,
    /// Its id.
    pub topic_id: String,
    /// Each partition, in order.
    pub partitions: Vec<PartitionState>,
    /// Its configs as set at creation.
    pub configs: BTreeMap<String, String>,
}

/// One partition's replication state, and its offsets where known here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    /// The partition number.
    pub partition: u32,
    /// Its leader, if it has one.
    pub leader: Option<u32>,
    /// The leader's epoch.
    pub leader_epoch: u32,
    /// Its replicas, preferred leader first.
    pub replicas: Vec<u32>,
    /// The in-sync replicas.
    pub isr: Vec<u32>,
    /// Offsets of this broker's replica (`None` without one).
    pub offsets: Option<LocalOffsets>,
}

/// A replica's offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalOffsets {
    /// First offset still in the log.
    pub log_start_offset: u64,
    /// Offset the next record will get.
    pub log_end_offset: u64,
    /// Offset up to which consumers read.
    pub high_watermark: u64,
}

/// The cluster as `describe_cluster` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    /// The cluster's id.
    pub cluster_id: String,
    /// The controller leader, if one is known.
    pub controller_id: Option<u64>,
    /// Every registered broker (fenced ones too).
    pub brokers: Vec<strata_metadata::BrokerInfo>,
    /// The controller quorum's voters.
    pub voters: Vec<VoterState>,
    /// The metadata log offset this node has applied.
    pub metadata_offset: u64,
}

/// A controller voter as `describe_cluster` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterState {
    /// Its node id.
    pub node_id: u64,
    /// Its controller address.
    pub address: String,
    /// Whether it leads the quorum.
    pub is_leader: bool,
    /// Metadata entries it is behind the leader's commit.
    pub lag: u64,
}
