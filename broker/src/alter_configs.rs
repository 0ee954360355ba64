//! Changing a topic on a running cluster — its configs, its partition
//! count: validated here (configs against the merged result, the same
//! checks as at creation), stored through the controller quorum, and
//! applied by every broker to its replicas when the metadata reaches it
//! (`ReplicaManager::apply_metadata`).

use std::collections::BTreeMap;

use strata_metadata::{AclOperation, MetadataCommand};

use crate::admin::{controller_error, refuse_internal};
use crate::authorizer::{Resource, Session};
use crate::error::{BrokerError, ErrorKind};
use crate::service::BrokerService;
use crate::topic_config;

/// A change of one topic's configs (Kafka's IncrementalAlterConfigs SET and
/// DELETE; AlterConfigs is "set these, delete the rest").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigChange {
    /// Keys to set, with their values.
    pub set: BTreeMap<String, String>,
    /// Keys to return to the broker default.
    pub delete: Vec<String>,
}

impl BrokerService {
    /// Applies `change` to `topic` (or only checks it, with
    /// `validate_only`); needs AlterConfigs on the topic.
    pub async fn alter_topic_configs(
        &self,
        session: &Session,
        topic: &str,
        change: ConfigChange,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        self.authorize(session, AclOperation::AlterConfigs, Resource::Topic(topic))?;
        refuse_internal(topic, "reconfigured")?;
        let invalid = |reason: String| BrokerError::new(ErrorKind::InvalidConfig, reason);
        if let Some(k) =
            change.set.keys().chain(&change.delete).find(|k| !topic_config::KNOWN_KEYS.contains(&k.as_str()))
        {
            return Err(invalid(format!(
                "unknown topic config '{k}' (known: {})",
                topic_config::KNOWN_KEYS.join(", ")
            )));
        }
        let image = self.controller.metadata();
        let Some(t) = image.topics.get(topic) else {
            return Err(BrokerError::new(ErrorKind::UnknownTopicOrPartition, format!("unknown topic '{topic}'")));
        };
        let mut merged = t.configs.clone();
        merged.extend(change.set.iter().map(|(k, v)| (k.clone(), v.clone())));
        for k in &change.delete {
            merged.remove(k);
        }
        let rf = t
            .partitions
            .first()
            .map_or(1, |p| p.reassignment.as_ref().map_or(p.replicas.len(), |r| r.target.len()) as u32);
        let merged = topic_config::effective(&image.broker_configs, &merged, rf);
        topic_config::log_config(self.replicas.defaults(), &merged).map_err(|e| invalid(e.to_string()))?;
        topic_config::topic_settings(&merged, rf).map_err(|e| invalid(e.to_string()))?;
        drop(image);
        if validate_only {
            return Ok(());
        }
        let cmd = MetadataCommand::AlterTopicConfigs {
            name: topic.to_string(),
            set: change.set.clone(),
            delete: change.delete.clone(),
        };
        self.controller.propose(cmd).await.map_err(|e| controller_error(&e))?;
        // Read your writes: a describe on this broker right after sees it.
        self.controller
            .wait_visible(|image| {
                image.topics.get(topic).is_some_and(|t| {
                    change.set.iter().all(|(k, v)| t.configs.get(k) == Some(v))
                        && change.delete.iter().all(|k| !t.configs.contains_key(k))
                })
            })
            .await;
        self.apply_current_metadata().await;
        tracing::info!(%topic, principal = %session.principal, "topic configs changed");
        Ok(())
    }
}

impl BrokerService {
    /// Grows `topic` to `count` partitions (or only checks it, with
    /// `validate_only`); needs Alter on the topic. New partitions are
    /// placed rack-aware with the topic's replication factor; producers and
    /// group consumers see them at their next metadata refresh.
    pub async fn create_partitions(
        &self,
        session: &Session,
        topic: &str,
        count: u32,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        self.authorize(session, AclOperation::Alter, Resource::Topic(topic))?;
        refuse_internal(topic, "grown")?;
        let cmd = MetadataCommand::CreatePartitions { name: topic.to_string(), count };
        if validate_only {
            // The state machine is pure: try the command on a copy.
            let mut image = (*self.controller.metadata()).clone();
            return image
                .apply(&cmd)
                .map(|_| ())
                .map_err(|e| controller_error(&crate::controller_link::ControllerCallError::Metadata(e)));
        }
        self.controller.propose(cmd).await.map_err(|e| controller_error(&e))?;
        self.apply_current_metadata().await;
        tracing::info!(%topic, count, principal = %session.principal, "partitions added");
        Ok(())
    }
}
