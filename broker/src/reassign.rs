//! Moving replicas on a running cluster (`docs/operations.md`, "Move
//! replicas"): explicit reassignments, their progress and cancel, a
//! rebalance onto every broker, decommissioning a broker, and the
//! cluster-wide broker configs (the replication throttle among them). The
//! moves themselves are metadata (`strata_metadata::Reassignment`); each
//! broker follows them through `ReplicaManager::apply_metadata`.

use std::collections::BTreeMap;

use strata_metadata::{AclOperation, CommandOutcome, MetadataCommand, MetadataImage, ReassignmentRequest};

use crate::admin::controller_error;
use crate::alter_configs::ConfigChange;
use crate::authorizer::{Resource, Session};
use crate::controller_link::ControllerCallError;
use crate::error::{BrokerError, ErrorKind};
use crate::replication::throttle;
use crate::service::BrokerService;
use crate::topic_config;

/// One partition's replicas and the move it is in, as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMove {
    /// The topic.
    pub topic: String,
    /// The partition number.
    pub partition: u32,
    /// Every replica now (target and leaving ones during a move).
    pub replicas: Vec<u32>,
    /// The in-sync replicas.
    pub isr: Vec<u32>,
    /// The leader.
    pub leader: Option<u32>,
    /// Replicas being added.
    pub adding: Vec<u32>,
    /// Replicas being removed.
    pub removing: Vec<u32>,
    /// The replicas it ends with.
    pub target: Vec<u32>,
}

/// One request's result.
#[derive(Debug, Clone)]
pub struct MoveResult {
    /// The topic.
    pub topic: String,
    /// The partition number.
    pub partition: u32,
    /// The target (`None`: a cancel).
    pub target: Option<Vec<u32>>,
    /// Why it was refused, if it was.
    pub error: Option<BrokerError>,
}

/// Broker configs that may be set cluster-wide at run time besides the
/// topic defaults (every topic config key, under its topic name).
pub const BROKER_CONFIG_KEYS: &[&str] = &[throttle::THROTTLE_CONFIG];

impl BrokerService {
    /// Starts (`Some` target) or cancels (`None`) moves; Alter on the
    /// cluster. Each partition stands alone, as in Kafka.
    pub async fn alter_reassignments(
        &self,
        session: &Session,
        requests: Vec<ReassignmentRequest>,
    ) -> Result<Vec<MoveResult>, BrokerError> {
        self.authorize(session, AclOperation::Alter, Resource::Cluster)?;
        let outcome = self
            .controller
            .propose(MetadataCommand::AlterPartitionReassignments { reassignments: requests })
            .await
            .map_err(|e| controller_error(&e))?;
        self.apply_current_metadata().await;
        let results = move_results(outcome);
        tracing::info!(
            principal = %session.principal,
            started = results.iter().filter(|r| r.error.is_none()).count(),
            refused = results.iter().filter(|r| r.error.is_some()).count(),
            "reassignments changed"
        );
        Ok(results)
    }

    /// Partitions moving now (all, or those of `only` that are); Describe
    /// on the cluster.
    pub fn list_reassignments(
        &self,
        session: &Session,
        only: Option<&[(String, u32)]>,
    ) -> Result<Vec<PartitionMove>, BrokerError> {
        self.authorize(session, AclOperation::Describe, Resource::Cluster)?;
        let image = self.controller.metadata();
        Ok(moves(&image, |t, p| only.is_none_or(|l| l.iter().any(|(lt, lp)| lt == t && *lp == p))))
    }

    /// Plans (and unless `dry_run`, starts) the moves that even out
    /// replicas and preferred leaders over the brokers; Alter on the
    /// cluster. Returns the planned targets.
    pub async fn rebalance(&self, session: &Session, dry_run: bool) -> Result<Vec<MoveResult>, BrokerError> {
        self.authorize(session, AclOperation::Alter, Resource::Cluster)?;
        self.run_plan(MetadataCommand::RebalanceReplicas {}, dry_run).await
    }

    /// Marks `node_id` as leaving and moves every replica off it (unless
    /// `dry_run`); Alter on the cluster.
    pub async fn decommission_broker(
        &self,
        session: &Session,
        node_id: u32,
        dry_run: bool,
    ) -> Result<Vec<MoveResult>, BrokerError> {
        self.authorize(session, AclOperation::Alter, Resource::Cluster)?;
        let results = self.run_plan(MetadataCommand::DecommissionBroker { node_id }, dry_run).await?;
        if !dry_run {
            tracing::info!(node_id, moves = results.len(), principal = %session.principal, "decommissioning broker");
        }
        Ok(results)
    }

    /// Runs a planning command: on a copy of the image for a dry run, else
    /// through the quorum.
    async fn run_plan(&self, cmd: MetadataCommand, dry_run: bool) -> Result<Vec<MoveResult>, BrokerError> {
        let outcome = if dry_run {
            let mut image = (*self.controller.metadata()).clone();
            image.apply(&cmd).map_err(|e| controller_error(&ControllerCallError::Metadata(e)))?
        } else {
            let outcome = self.controller.propose(cmd).await.map_err(|e| controller_error(&e))?;
            self.apply_current_metadata().await;
            outcome
        };
        Ok(move_results(outcome))
    }

    /// Changes the cluster-wide broker configs (or only checks, with
    /// `validate_only`); AlterConfigs on the cluster.
    pub async fn alter_broker_configs(
        &self,
        session: &Session,
        change: ConfigChange,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        self.authorize(session, AclOperation::AlterConfigs, Resource::Cluster)?;
        let invalid = |reason: String| BrokerError::new(ErrorKind::InvalidConfig, reason);
        let known = |k: &str| BROKER_CONFIG_KEYS.contains(&k) || topic_config::KNOWN_KEYS.contains(&k);
        if let Some(k) = change.set.keys().chain(&change.delete).find(|k| !known(k)) {
            return Err(invalid(format!(
                "'{k}' cannot be changed at run time (cluster configs: {}, and every topic config as a default: {})",
                BROKER_CONFIG_KEYS.join(", "),
                topic_config::KNOWN_KEYS.join(", ")
            )));
        }
        if let Some(v) = change.set.get(throttle::THROTTLE_CONFIG) {
            throttle::parse_rate(v).map_err(invalid)?;
        }
        // Topic defaults are checked as a topic's configs would be (the
        // replication factor is checked per topic, where it applies).
        let defaults: BTreeMap<String, String> = change
            .set
            .iter()
            .filter(|(k, _)| topic_config::KNOWN_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        topic_config::log_config(self.replicas.defaults(), &defaults).map_err(|e| invalid(e.to_string()))?;
        topic_config::topic_settings(&defaults, u32::MAX).map_err(|e| invalid(e.to_string()))?;
        if validate_only {
            return Ok(());
        }
        let cmd = MetadataCommand::AlterBrokerConfigs { set: change.set.clone(), delete: change.delete.clone() };
        self.controller.propose(cmd).await.map_err(|e| controller_error(&e))?;
        // Read your writes: a DescribeConfigs to this broker right after
        // sees the change.
        self.controller
            .wait_visible(|image| {
                change.set.iter().all(|(k, v)| image.broker_configs.get(k) == Some(v))
                    && change.delete.iter().all(|k| !image.broker_configs.contains_key(k))
            })
            .await;
        self.apply_current_metadata().await;
        tracing::info!(principal = %session.principal, "cluster broker configs changed");
        Ok(())
    }

    /// The cluster-wide broker configs in force; DescribeConfigs on the cluster.
    pub fn broker_configs(&self, session: &Session) -> Result<BTreeMap<String, String>, BrokerError> {
        self.authorize(session, AclOperation::DescribeConfigs, Resource::Cluster)?;
        Ok(self.controller.metadata().broker_configs.clone())
    }
}

/// The moving partitions `keep` selects, in topic then partition order.
fn moves(image: &MetadataImage, keep: impl Fn(&str, u32) -> bool) -> Vec<PartitionMove> {
    let mut out = Vec::new();
    for t in image.topics.values() {
        for p in &t.partitions {
            let Some(r) = &p.reassignment else { continue };
            if keep(&t.name, p.partition) {
                out.push(PartitionMove {
                    topic: t.name.clone(),
                    partition: p.partition,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    leader: p.leader,
                    adding: r.adding.clone(),
                    removing: r.removing.clone(),
                    target: r.target.clone(),
                });
            }
        }
    }
    out
}

/// Per-partition results of a reassignment outcome.
fn move_results(outcome: CommandOutcome) -> Vec<MoveResult> {
    let results = match outcome {
        CommandOutcome::ReassignmentsAltered { results } | CommandOutcome::BrokerDecommissioning { results, .. } => {
            results
        }
        _ => Vec::new(),
    };
    results
        .into_iter()
        .map(|r| MoveResult {
            error: r.error.map(|e| controller_error(&ControllerCallError::Metadata(e))),
            topic: r.topic,
            partition: r.partition,
            target: r.target,
        })
        .collect()
}
