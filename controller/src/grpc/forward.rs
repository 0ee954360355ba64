//! Proposal forwarding: a follower sends a proposal to the leader's
//! `ControllerRaft.Propose` and maps the answer back to a local result.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use strata_protocol::v1::controller_raft_client::ControllerRaftClient;
use strata_protocol::v1::{HeartbeatRequest, ProposeRequest, ProposeResponse};
use tonic::transport::Channel;
use tonic::Code;

use crate::error::ControllerError;
use crate::metadata::{CommandOutcome, MetadataCommand, MetadataError};

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
    addresses: HashMap<u64, String>,
    clients: Mutex<HashMap<u64, ControllerRaftClient<Channel>>>,
}

impl Forwarder {
    pub(crate) fn new(addresses: HashMap<u64, String>) -> Self {
        Forwarder { addresses, clients: Mutex::new(HashMap::new()) }
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

    fn client(&self, id: u64) -> Option<ControllerRaftClient<Channel>> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&id) {
            return Some(c.clone());
        }
        let address = self.addresses.get(&id)?;
        match super::client(address, None) {
            Ok(c) => Some(clients.entry(id).or_insert(c).clone()),
            Err(e) => {
                tracing::warn!(leader = id, %address, error = %e, "bad controller voter address");
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
            response.error_message = e.to_string();
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
