//! Replica moves through the admin client: reassign or cancel partitions,
//! list moves with their progress, rebalance, decommission a broker, and
//! the cluster-wide broker configs (the replication throttle).

use std::collections::BTreeMap;

use strata_protocol::v1;

use crate::admin::{Admin, ADMIN_TIMEOUT};
use crate::connection::call;
use crate::error::ClientError;

/// What became of one partition's move request.
#[derive(Debug, Clone)]
pub struct MoveOutcome {
    /// The topic.
    pub topic: String,
    /// The partition number.
    pub partition: u32,
    /// The target replicas (empty for a cancel).
    pub replicas: Vec<u32>,
    /// Why it was refused, if it was.
    pub error: Option<ClientError>,
}

/// One move in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveListing {
    /// The topic.
    pub topic: String,
    /// The partition number.
    pub partition: u32,
    /// Every replica now (the target, then those leaving).
    pub replicas: Vec<u32>,
    /// In-sync replicas.
    pub isr: Vec<u32>,
    /// The leader.
    pub leader: Option<u32>,
    /// Replicas being added.
    pub adding: Vec<u32>,
    /// Replicas being removed.
    pub removing: Vec<u32>,
    /// The replicas it ends with.
    pub target: Vec<u32>,
    /// The leader's log end offset, when the leader answered.
    pub leader_log_end: Option<u64>,
    /// Each adding replica's log end offset as the leader last saw it.
    pub progress: Vec<(u32, Option<u64>)>,
}

fn outcomes(response: v1::ReassignmentResults) -> Result<Vec<MoveOutcome>, ClientError> {
    if let Some(e) = ClientError::from_api(response.error.as_ref()) {
        return Err(e);
    }
    Ok(response
        .results
        .into_iter()
        .map(|r| MoveOutcome {
            error: ClientError::from_api(r.error.as_ref()),
            topic: r.topic,
            partition: r.partition,
            replicas: r.replicas,
        })
        .collect())
}

impl Admin {
    /// Moves each `(topic, partition)` to its replica list, or cancels its
    /// move with `None`; one outcome per request, in order.
    pub async fn alter_reassignments(
        &self,
        moves: &[(String, u32, Option<Vec<u32>>)],
    ) -> Result<Vec<MoveOutcome>, ClientError> {
        let request = v1::AlterPartitionReassignmentsRequest {
            reassignments: moves
                .iter()
                .map(|(topic, partition, target)| v1::PartitionReassignment {
                    topic: topic.clone(),
                    partition: *partition,
                    replicas: target.clone().unwrap_or_default(),
                    cancel: target.is_none(),
                })
                .collect(),
        };
        self.until_controller_answers(|| async {
            let response = self
                .with_retry(|mut c| {
                    let request = request.clone();
                    async move {
                        call("AlterPartitionReassignments", ADMIN_TIMEOUT, c.alter_partition_reassignments(request))
                            .await
                    }
                })
                .await?;
            outcomes(response)
        })
        .await
    }

    /// Plans the moves that even out replicas and leaders over the brokers
    /// and, unless `dry_run`, starts them.
    pub async fn rebalance(&self, dry_run: bool) -> Result<Vec<MoveOutcome>, ClientError> {
        self.until_controller_answers(|| async {
            let response = self
                .with_retry(|mut c| async move {
                    call("Rebalance", ADMIN_TIMEOUT, c.rebalance(v1::RebalanceRequest { dry_run })).await
                })
                .await?;
            outcomes(response)
        })
        .await
    }

    /// Moves every replica off broker `node_id` (unless `dry_run`) and
    /// places nothing new there.
    pub async fn decommission_broker(&self, node_id: u32, dry_run: bool) -> Result<Vec<MoveOutcome>, ClientError> {
        self.until_controller_answers(|| async {
            let response = self
                .with_retry(|mut c| async move {
                    let request = v1::DecommissionBrokerRequest { node_id, dry_run };
                    call("DecommissionBroker", ADMIN_TIMEOUT, c.decommission_broker(request)).await
                })
                .await?;
            outcomes(response)
        })
        .await
    }

    /// The moves in progress (of `topics`, or all), with each adding
    /// replica's progress asked of the partition's leader.
    pub async fn list_reassignments(&self, topics: &[String]) -> Result<Vec<MoveListing>, ClientError> {
        let request = v1::ListPartitionReassignmentsRequest { topics: topics.to_vec() };
        let response = self
            .with_retry(|mut c| {
                let request = request.clone();
                async move {
                    call("ListPartitionReassignments", ADMIN_TIMEOUT, c.list_partition_reassignments(request)).await
                }
            })
            .await?;
        if let Some(e) = ClientError::from_api(response.error.as_ref()) {
            return Err(e);
        }
        let mut listings: Vec<MoveListing> = response.reassignments.into_iter().map(listing).collect();
        // Progress is known to each partition's leader: ask each leader once.
        let leaders: std::collections::BTreeSet<u32> = listings.iter().filter_map(|l| l.leader).collect();
        let mut from_leaders: BTreeMap<(String, u32), MoveListing> = BTreeMap::new();
        for leader in leaders {
            let Ok(mut c) = self.cluster.broker_client(leader).await else { continue };
            let Ok(r) =
                call("ListPartitionReassignments", ADMIN_TIMEOUT, c.list_partition_reassignments(request.clone()))
                    .await
            else {
                continue;
            };
            for l in r.reassignments.into_iter().map(listing).filter(|l| l.leader_log_end.is_some()) {
                from_leaders.insert((l.topic.clone(), l.partition), l);
            }
        }
        for l in &mut listings {
            if let Some(led) = from_leaders.remove(&(l.topic.clone(), l.partition)) {
                l.leader_log_end = led.leader_log_end;
                l.progress = led.progress;
            }
        }
        listings.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(listings)
    }

    /// Sets and deletes cluster-wide dynamic broker configs; the configs in
    /// force after the change.
    pub async fn alter_broker_configs(
        &self,
        set: &[(String, String)],
        delete: &[String],
    ) -> Result<BTreeMap<String, String>, ClientError> {
        let request = v1::AlterBrokerConfigsRequest {
            set: set.iter().cloned().collect(),
            delete: delete.to_vec(),
            validate_only: false,
        };
        self.until_controller_answers(|| async {
            let response = self
                .with_retry(|mut c| {
                    let request = request.clone();
                    async move { call("AlterBrokerConfigs", ADMIN_TIMEOUT, c.alter_broker_configs(request)).await }
                })
                .await?;
            broker_configs(response)
        })
        .await
    }

    /// The cluster-wide dynamic broker configs in force.
    pub async fn describe_broker_configs(&self) -> Result<BTreeMap<String, String>, ClientError> {
        let response = self
            .with_retry(|mut c| async move {
                call(
                    "DescribeBrokerConfigs",
                    ADMIN_TIMEOUT,
                    c.describe_broker_configs(v1::DescribeBrokerConfigsRequest {}),
                )
                .await
            })
            .await?;
        broker_configs(response)
    }
}

impl Admin {
    /// Adds controller voter `node_id` at `address` (it joins as a learner
    /// and votes once caught up) or, with `address` `None`, removes it;
    /// the voters and learners after the change.
    pub async fn change_controller_voter(
        &self,
        node_id: u64,
        address: Option<&str>,
    ) -> Result<(Vec<u64>, Vec<u64>), ClientError> {
        let request = v1::ChangeControllerVoterRequest {
            node_id,
            address: address.unwrap_or_default().to_owned(),
            remove: address.is_none(),
        };
        self.until_controller_answers(|| async {
            let response = self
                .with_retry(|mut c| {
                    let request = request.clone();
                    async move { call("ChangeControllerVoter", ADMIN_TIMEOUT, c.change_controller_voter(request)).await }
                })
                .await?;
            match ClientError::from_api(response.error.as_ref()) {
                Some(e) => Err(e),
                None => Ok((response.voters, response.learners)),
            }
        })
        .await
    }
}

fn broker_configs(response: v1::BrokerConfigsResponse) -> Result<BTreeMap<String, String>, ClientError> {
    match ClientError::from_api(response.error.as_ref()) {
        Some(e) => Err(e),
        None => Ok(response.configs.into_iter().collect()),
    }
}

fn listing(r: v1::OngoingReassignment) -> MoveListing {
    MoveListing {
        topic: r.topic,
        partition: r.partition,
        replicas: r.replicas,
        isr: r.isr,
        leader: u32::try_from(r.leader).ok(),
        adding: r.adding,
        removing: r.removing,
        target: r.target,
        leader_log_end: u64::try_from(r.leader_log_end_offset).ok(),
        progress: r.progress.into_iter().map(|p| (p.broker, u64::try_from(p.log_end_offset).ok())).collect(),
    }
}
