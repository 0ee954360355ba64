//! Proposal forwarding: a follower sends a proposal to the leader's
//! `ControllerRaft.Propose` and maps the answer back to a local result.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use strata_protocol::v1::controller_raft_client::ControllerRaftClient;
use strata_protocol::v1::{
    DescribeQuorumRequest, DescribeQuorumResponse, FetchMetadataRequest, FetchMetadataResponse, HeartbeatRequest,
    ProposeRequest, ProposeResponse,
};
use tonic::transport::Channel;
use tonic::Code;

use crate::controller::{MetadataDelta, QuorumStatus};
use crate::error::ControllerError;
use crate::metadata::{CommandOutcome, MetadataCommand, MetadataError, MetadataImage};

/// The result of one forwarding attempt.
#[derive(Debug)]
pub(crate) enum Forwarded<T = CommandOutcome> {
    /// A final answer (outcome or error).
    Done(Result<T, ControllerError>),
    /// The target was unreachable, not the leader or stopping: try again,
    /// preferably at `leader_hint`.
    Retry { leader_hint: Option<u64> },
}

/// Clients for the voters' `ControllerRaft.Propose`, connected on first use.
#[derive(Debug)]
pub(crate) struct Forwarder {
    /// The voters' addresses, shared with the Raft thread, which changes
    /// them as voters join and leave.
    addresses: Arc<RwLock<HashMap<u64, String>>>,
    /// TLS to the voters (this node's certificate), when the cluster runs it.
    tls: Option<strata_tls::ClientTls>,
    /// Connected clients with the address each was made for.
    clients: Mutex<HashMap<u64, (String, ControllerRaftClient<Channel>)>>,
}

impl Forwarder {
    pub(crate) fn new(addresses: Arc<RwLock<HashMap<u64, String>>>, tls: Option<strata_tls::ClientTls>) -> Self {
        Forwarder { addresses, tls, clients: Mutex::new(HashMap::new()) }
    }

    /// Forwards `cmd` to voter `leader`, waiting at most `timeout`. Must run
    /// inside a tokio runtime.
    pub(crate) async fn propose(&self, leader: u64, cmd: &MetadataCommand, timeout: Duration) -> Forwarded {
        let Some(mut client) = self.client(leader) else {
            return Forwarded::Retry { leader_hint: None };
        };
        let request = ProposeRequest { command: cmd.encode().into() };
        match tokio::time::timeout(timeout, client.propose(request)).await {
            Err(_) => Forwarded::Done(Err(ControllerError::Timeout)),
            Ok(Err(status)) => {
                tracing::debug!(leader, error = %status, "forwarding a proposal failed");
                self.clients.lock().unwrap_or_else(|p| p.into_inner()).remove(&leader);
                Forwarded::Retry { leader_hint: None }
            }
            Ok(Ok(response)) => decode_response(response.into_inner()),
        }
    }

    /// Forwards broker `node_id`'s heartbeat to voter `leader`, waiting at
    /// most `timeout`. Must run inside a tokio runtime.
    pub(crate) async fn heartbeat(&self, leader: u64, node_id: u32, timeout: Duration) -> Forwarded<()> {
        let Some(mut client) = self.client(leader) else {
            return Forwarded::Retry { leader_hint: None };
        };
        match tokio::time::timeout(timeout, client.heartbeat(HeartbeatRequest { node_id })).await {
            Err(_) => Forwarded::Done(Err(ControllerError::Timeout)),
            Ok(Ok(_)) => Forwarded::Done(Ok(())),
            Ok(Err(status)) => match status.code() {
                Code::NotFound => Forwarded::Done(Err(MetadataError::UnknownBroker { node_id }.into())),
                Code::DeadlineExceeded => Forwarded::Done(Err(ControllerError::Timeout)),
                Code::FailedPrecondition => Forwarded::Retry { leader_hint: None },
                _ => {
                    tracing::debug!(leader, error = %status, "forwarding a heartbeat failed");
                    self.clients.lock().unwrap_or_else(|p| p.into_inner()).remove(&leader);
                    Forwarded::Retry { leader_hint: None }
                }
            },
        }
    }

    /// Asks voter `leader` for the quorum status, waiting at most `timeout`.
    pub(crate) async fn describe_quorum(&self, leader: u64, timeout: Duration) -> Forwarded<QuorumStatus> {
        let Some(mut client) = self.client(leader) else {
            return Forwarded::Retry { leader_hint: None };
        };
        match tokio::time::timeout(timeout, client.describe_quorum(DescribeQuorumRequest {})).await {
            Err(_) => Forwarded::Done(Err(ControllerError::Timeout)),
            Ok(Err(status)) => {
                tracing::debug!(leader, error = %status, "asking for the quorum status failed");
                self.forget(leader);
                Forwarded::Retry { leader_hint: None }
            }
            Ok(Ok(response)) => decode_quorum(response.into_inner()),
        }
    }

    /// Fetches metadata after `after` from voter `voter` (any voter serves
    /// it), long-polling up to `max_wait`. Returns the delta and the leader
    /// the voter knows of.
    pub(crate) async fn fetch_metadata(
        &self,
        voter: u64,
        after: u64,
        max_wait: Duration,
    ) -> Result<(MetadataDelta, Option<u64>), ControllerError> {
        let Some(mut client) = self.client(voter) else {
            return Err(ControllerError::Remote {
                kind: "Unreachable".into(),
                message: format!("no address for voter {voter}"),
            });
        };
        let request = FetchMetadataRequest { after_offset: after, max_wait_ms: max_wait.as_millis() as u32 };
        let response =
            match tokio::time::timeout(max_wait + Duration::from_secs(5), client.fetch_metadata(request)).await {
                Err(_) => return Err(ControllerError::Timeout),
                Ok(Err(status)) => {
                    self.forget(voter);
                    return Err(ControllerError::Remote {
                        kind: format!("{:?}", status.code()),
                        message: status.message().to_string(),
                    });
                }
                Ok(Ok(response)) => response.into_inner(),
            };
        decode_delta(response, after)
    }

    fn forget(&self, id: u64) {
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }

    fn client(&self, id: u64) -> Option<ControllerRaftClient<Channel>> {
        let address = self.addresses.read().unwrap_or_else(|p| p.into_inner()).get(&id)?.clone();
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((a, c)) = clients.get(&id) {
            if *a == address {
                return Some(c.clone());
            }
        }
        match super::client(&address, None, self.tls.as_ref()) {
            Ok(c) => {
                clients.insert(id, (address, c.clone()));
                Some(c)
            }
            Err(e) => {
                tracing::warn!(leader = id, %address, error = %strata_record::ErrorChain(&e), "bad controller voter address");
                None
            }
        }
    }
}

/// The `Propose` reply for a local proposal's result.
pub(crate) fn encode_result(result: &Result<CommandOutcome, ControllerError>, leader_hint: u64) -> ProposeResponse {
    let mut response = ProposeResponse { leader_hint, ..Default::default() };
    match result {
        Ok(outcome) => match serde_json::to_vec(outcome) {
            Ok(json) => response.outcome = json.into(),
            Err(e) => {
                response.error_kind = "Remote".into();
                response.error_message = format!("cannot encode the outcome: {e}");
            }
        },
        Err(e) => {
            response.error_kind = e.kind().to_string();
            response.error_message = strata_record::ErrorChain(e).to_string();
            if let ControllerError::Metadata(m) = e {
                response.metadata_error = serde_json::to_vec(m).unwrap_or_default().into();
            }
        }
    }
    response
}

/// Maps a `Propose` reply back to a local result.
pub(crate) fn decode_response(response: ProposeResponse) -> Forwarded {
    let hint = Some(response.leader_hint).filter(|&l| l != 0);
    let remote = |message: String| ControllerError::Remote { kind: response.error_kind.clone(), message };
    let result = match response.error_kind.as_str() {
        "" => serde_json::from_slice::<CommandOutcome>(&response.outcome)
            .map_err(|e| ControllerError::Remote { kind: "Undecodable".into(), message: format!("outcome: {e}") }),
        "Metadata" => match serde_json::from_slice::<MetadataError>(&response.metadata_error) {
            Ok(m) => Err(ControllerError::Metadata(m)),
            Err(_) => Err(remote(response.error_message.clone())),
        },
        "NotLeader" | "Stopped" => return Forwarded::Retry { leader_hint: hint },
        "Timeout" => Err(ControllerError::Timeout),
        _ => Err(remote(response.error_message.clone())),
    };
    Forwarded::Done(result)
}

/// The `DescribeQuorum` reply for this node's status.
pub(crate) fn encode_quorum(status: &crate::controller::ControllerStatus) -> DescribeQuorumResponse {
    match QuorumStatus::from_leader(status) {
        None => {
            DescribeQuorumResponse { is_leader: false, leader_id: status.leader_id.unwrap_or(0), ..Default::default() }
        }
        Some(q) => DescribeQuorumResponse {
            is_leader: true,
            leader_id: q.leader_id,
            term: q.term,
            commit_index: q.commit_index,
            voters: q
                .voter_match_index
                .iter()
                .map(|(&node_id, &match_index)| strata_protocol::v1::QuorumVoter { node_id, match_index })
                .collect(),
        },
    }
}

fn decode_quorum(response: DescribeQuorumResponse) -> Forwarded<QuorumStatus> {
    if !response.is_leader {
        return Forwarded::Retry { leader_hint: Some(response.leader_id).filter(|&l| l != 0) };
    }
    Forwarded::Done(Ok(QuorumStatus {
        leader_id: response.leader_id,
        term: response.term,
        commit_index: response.commit_index,
        voter_match_index: response.voters.iter().map(|v| (v.node_id, v.match_index)).collect(),
    }))
}

/// The `FetchMetadata` reply for a delta.
pub(crate) fn encode_delta(
    delta: &MetadataDelta,
    leader: Option<u64>,
) -> Result<FetchMetadataResponse, ControllerError> {
    let leader_id = leader.unwrap_or(0);
    Ok(match delta {
        MetadataDelta::Entries { entries, offset } => FetchMetadataResponse {
            offset: *offset,
            entries: entries
                .iter()
                .map(|(offset, command)| strata_protocol::v1::MetadataEntry {
                    offset: *offset,
                    command: command.clone(),
                })
                .collect(),
            snapshot: Default::default(),
            leader_id,
        },
        MetadataDelta::Snapshot(image) => FetchMetadataResponse {
            offset: image.offset,
            entries: Vec::new(),
            snapshot: serde_json::to_vec(&**image)
                .map_err(|e| ControllerError::Remote {
                    kind: "Encode".into(),
                    message: format!("metadata snapshot: {e}"),
                })?
                .into(),
            leader_id,
        },
    })
}

/// Checks and decodes a `FetchMetadata` reply to a request after `after`.
/// A reply that cannot be what a voter sends is an error naming the problem.
fn decode_delta(response: FetchMetadataResponse, after: u64) -> Result<(MetadataDelta, Option<u64>), ControllerError> {
    let leader = Some(response.leader_id).filter(|&l| l != 0);
    let bad = |message: String| ControllerError::Remote { kind: "BadMetadataResponse".into(), message };
    if !response.snapshot.is_empty() {
        let mut image: MetadataImage =
            serde_json::from_slice(&response.snapshot).map_err(|e| bad(format!("snapshot does not decode: {e}")))?;
        if image.offset != response.offset {
            return Err(bad(format!("snapshot at {} labelled {}", image.offset, response.offset)));
        }
        image.offset = response.offset;
        return Ok((MetadataDelta::Snapshot(std::sync::Arc::new(image)), leader));
    }
    let mut last = after;
    for e in &response.entries {
        if e.offset <= last || e.offset > response.offset {
            return Err(bad(format!(
                "entry at offset {} out of order (after {last}, up to {})",
                e.offset, response.offset
            )));
        }
        last = e.offset;
    }
    if response.offset < after {
        return Err(bad(format!("offset {} is behind the requested {after}", response.offset)));
    }
    let entries = response.entries.into_iter().map(|e| (e.offset, e.command)).collect();
    Ok((MetadataDelta::Entries { entries, offset: response.offset }, leader))
}
