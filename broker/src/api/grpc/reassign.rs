//! Replica moves, cluster-wide broker configs and controller voter changes
//! at the gRPC edge, to and from the core's types (`crate::reassign`,
//! `crate::quorum`).

use strata_metadata::ReassignmentRequest;
use strata_protocol::v1;

use crate::alter_configs::ConfigChange;
use crate::authorizer::Session;
use crate::error::BrokerError;
use crate::reassign::MoveResult;
use crate::service::BrokerService;

fn results(r: Result<Vec<MoveResult>, BrokerError>) -> v1::ReassignmentResults {
    match r {
        Ok(list) => v1::ReassignmentResults {
            error: None,
            results: list
                .into_iter()
                .map(|m| v1::ReassignmentResult {
                    topic: m.topic,
                    partition: m.partition,
                    replicas: m.target.unwrap_or_default(),
                    error: m.error.map(Into::into),
                })
                .collect(),
        },
        Err(e) => v1::ReassignmentResults { error: Some(e.into()), results: Vec::new() },
    }
}

/// `AlterPartitionReassignments`.
pub(crate) async fn alter(
    core: &BrokerService,
    session: &Session,
    req: v1::AlterPartitionReassignmentsRequest,
) -> v1::ReassignmentResults {
    let requests = req
        .reassignments
        .into_iter()
        .map(|r| ReassignmentRequest {
            topic: r.topic,
            partition: r.partition,
            target: (!r.cancel).then_some(r.replicas),
        })
        .collect();
    results(core.alter_reassignments(session, requests).await)
}

/// `ListPartitionReassignments`, with the followers' progress for the
/// partitions led here.
pub(crate) fn list(
    core: &BrokerService,
    session: &Session,
    req: v1::ListPartitionReassignmentsRequest,
) -> v1::ListPartitionReassignmentsResponse {
    let moves = match core.list_reassignments(session, None) {
        Ok(m) => m,
        Err(e) => return v1::ListPartitionReassignmentsResponse { error: Some(e.into()), reassignments: Vec::new() },
    };
    let reassignments = moves
        .into_iter()
        .filter(|m| req.topics.is_empty() || req.topics.contains(&m.topic))
        .map(|m| {
            let led = core.replicas.lookup(&m.topic, m.partition).ok().and_then(|p| p.follower_log_ends());
            let (leader_end, progress) = match led {
                Some((end, followers)) => (
                    i64::try_from(end).unwrap_or(i64::MAX),
                    followers
                        .into_iter()
                        .filter(|(b, _)| m.adding.contains(b))
                        .map(|(broker, leo)| v1::ReplicaProgress {
                            broker,
                            log_end_offset: leo.map_or(-1, |o| i64::try_from(o).unwrap_or(i64::MAX)),
                        })
                        .collect(),
                ),
                None => (-1, Vec::new()),
            };
            v1::OngoingReassignment {
                topic: m.topic,
                partition: m.partition,
                replicas: m.replicas,
                isr: m.isr,
                leader: m.leader.map_or(-1, |l| i32::try_from(l).unwrap_or(-1)),
                adding: m.adding,
                removing: m.removing,
                target: m.target,
                leader_log_end_offset: leader_end,
                progress,
            }
        })
        .collect();
    v1::ListPartitionReassignmentsResponse { error: None, reassignments }
}

/// `Rebalance`.
pub(crate) async fn rebalance(
    core: &BrokerService,
    session: &Session,
    req: v1::RebalanceRequest,
) -> v1::ReassignmentResults {
    results(core.rebalance(session, req.dry_run).await)
}

/// `DecommissionBroker`.
pub(crate) async fn decommission(
    core: &BrokerService,
    session: &Session,
    req: v1::DecommissionBrokerRequest,
) -> v1::ReassignmentResults {
    results(core.decommission_broker(session, req.node_id, req.dry_run).await)
}

/// `AlterBrokerConfigs`, answered with the configs in force after it.
pub(crate) async fn alter_configs(
    core: &BrokerService,
    session: &Session,
    req: v1::AlterBrokerConfigsRequest,
) -> v1::BrokerConfigsResponse {
    let change = ConfigChange { set: req.set.into_iter().collect(), delete: req.delete };
    match core.alter_broker_configs(session, change, req.validate_only).await {
        Ok(()) => describe_configs(core, session),
        Err(e) => v1::BrokerConfigsResponse { error: Some(e.into()), configs: Default::default() },
    }
}

/// `ChangeControllerVoter`.
pub(crate) async fn change_voter(
    core: &BrokerService,
    session: &Session,
    req: v1::ChangeControllerVoterRequest,
) -> v1::ChangeControllerVoterResponse {
    let change = if req.remove {
        strata_metadata::VoterChange::Remove { node_id: req.node_id }
    } else {
        strata_metadata::VoterChange::Add { node_id: req.node_id, address: req.address }
    };
    match core.change_controller_voter(session, change).await {
        Ok((voters, learners)) => v1::ChangeControllerVoterResponse { error: None, voters, learners },
        Err(e) => v1::ChangeControllerVoterResponse { error: Some(e.into()), voters: Vec::new(), learners: Vec::new() },
    }
}

/// `DescribeBrokerConfigs`.
pub(crate) fn describe_configs(core: &BrokerService, session: &Session) -> v1::BrokerConfigsResponse {
    match core.broker_configs(session) {
        Ok(configs) => v1::BrokerConfigsResponse { error: None, configs: configs.into_iter().collect() },
        Err(e) => v1::BrokerConfigsResponse { error: Some(e.into()), configs: Default::default() },
    }
}
