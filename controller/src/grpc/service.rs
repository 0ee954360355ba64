//! [`RaftService`]: the server side of `strata.v1.ControllerRaft`.

use std::collections::HashSet;

use protobuf::Message as _;
use raft::eraftpb::Message;
use strata_protocol::v1::controller_raft_server::{ControllerRaft, ControllerRaftServer};
use strata_protocol::v1::{
    DescribeQuorumRequest, DescribeQuorumResponse, FetchMetadataRequest, FetchMetadataResponse, HeartbeatRequest,
    HeartbeatResponse, ProposeRequest, ProposeResponse, RaftMessages, StepResponse,
};
use tonic::{Request, Response, Status};

use super::forward::{encode_delta, encode_quorum, encode_result};
use super::MAX_GRPC_MESSAGE;
use crate::controller::Controller;
use crate::error::ControllerError;
use crate::metadata::{MetadataCommand, MetadataError};

/// Serves `ControllerRaft` for one controller node: Raft messages from peer
/// voters go to [`Controller::step`], forwarded proposals to
/// [`Controller::propose`] (this node must lead).
#[derive(Debug, Clone)]
pub struct RaftService {
    controller: Controller,
    node_id: u64,
    voters: HashSet<u64>,
    /// Every call must come over TLS from a node certificate
    /// (`strata-node-N`), and speak only for that node.
    node_certificates: bool,
}

impl RaftService {
    /// A service for `controller`, accepting Raft messages from the voters it
    /// was configured with (`ControllerConfig::voters`, or the voter map given
    /// to [`Controller::start_with_grpc`]) and from members added at run
    /// time ([`Controller::is_member`]).
    pub fn new(controller: Controller) -> Self {
        let voters = controller.configured_voters().iter().copied().collect();
        Self::with_voters(controller, voters)
    }

    /// A service accepting Raft messages only from `voters`.
    pub fn with_voters(controller: Controller, voters: HashSet<u64>) -> Self {
        let node_id = controller.node_id();
        RaftService { controller, node_id, voters, node_certificates: false }
    }

    /// Requires a node certificate on every call (a TLS cluster): Raft
    /// messages must come from the node the certificate names, broker
    /// commands (registration, heartbeats, ISR changes) must speak for it.
    /// Anything else is refused, changes nothing, and is logged with the
    /// peer's identity.
    pub fn require_node_certificates(mut self) -> Self {
        self.node_certificates = true;
        self
    }

    /// The calling node, when certificates are required (`Ok(None)` when
    /// they are not).
    fn caller<T>(&self, req: &Request<T>, what: &str) -> Result<Option<u64>, Status> {
        if !self.node_certificates {
            return Ok(None);
        }
        strata_tls::calling_node(req).map(Some).map_err(|peer| {
            tracing::warn!(%peer, call = what, "refused a controller call without a node certificate");
            Status::permission_denied(format!(
                "{what} on the controller port needs a node certificate (naming strata-node-N); got {peer}"
            ))
        })
    }

    /// Refuses `claimed` unless it is the calling node.
    fn must_be(caller: Option<u64>, claimed: u64, what: &str) -> Result<(), Status> {
        match caller {
            Some(node) if node != claimed => {
                tracing::warn!(
                    certificate_node = node,
                    claimed,
                    call = what,
                    "refused a controller call for another node"
                );
                Err(Status::permission_denied(format!("{what} for node {claimed} from a certificate of node {node}")))
            }
            _ => Ok(()),
        }
    }

    /// The tonic server to mount (`Server::builder().add_service(..)`), with
    /// message size limits large enough for snapshots.
    pub fn into_server(self) -> ControllerRaftServer<RaftService> {
        ControllerRaftServer::new(self)
            .max_decoding_message_size(MAX_GRPC_MESSAGE)
            .max_encoding_message_size(MAX_GRPC_MESSAGE)
    }
}

/// Longest a `FetchMetadata` long poll waits, whatever the broker asked.
const MAX_METADATA_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

#[tonic::async_trait]
impl ControllerRaft for RaftService {
    async fn fetch_metadata(
        &self,
        request: Request<FetchMetadataRequest>,
    ) -> Result<Response<FetchMetadataResponse>, Status> {
        self.caller(&request, "FetchMetadata")?;
        let request = request.into_inner();
        let wait = std::time::Duration::from_millis(request.max_wait_ms.into()).min(MAX_METADATA_WAIT);
        let delta = self
            .controller
            .fetch_metadata(request.after_offset, wait)
            .await
            .map_err(|e| Status::unavailable(strata_record::ErrorChain(&e).to_string()))?;
        let leader = self.controller.status().leader_id;
        encode_delta(&delta, leader).map(Response::new).map_err(|e| Status::internal(e.to_string()))
    }

    async fn describe_quorum(
        &self,
        request: Request<DescribeQuorumRequest>,
    ) -> Result<Response<DescribeQuorumResponse>, Status> {
        self.caller(&request, "DescribeQuorum")?;
        if self.controller.is_stopped() {
            return Err(Status::unavailable("the controller has stopped"));
        }
        Ok(Response::new(encode_quorum(&self.controller.status())))
    }

    async fn step(&self, request: Request<RaftMessages>) -> Result<Response<StepResponse>, Status> {
        let caller = self.caller(&request, "a Raft message")?;
        let batch = request.into_inner();
        let mut msgs = Vec::with_capacity(batch.messages.len());
        for (i, bytes) in batch.messages.iter().enumerate() {
            let msg = Message::parse_from_bytes(bytes)
                .map_err(|e| Status::invalid_argument(format!("raft message {i} does not decode: {e}")))?;
            if msg.to != self.node_id {
                return Err(Status::invalid_argument(format!(
                    "raft message {i} is for node {}, this is node {}",
                    msg.to, self.node_id
                )));
            }
            if msg.from == self.node_id || !(self.voters.contains(&msg.from) || self.controller.is_member(msg.from)) {
                return Err(Status::permission_denied(format!(
                    "raft message {i} from node {}, not a peer controller voter",
                    msg.from
                )));
            }
            Self::must_be(caller, msg.from, "a Raft message")?;
            msgs.push(msg);
        }
        for msg in msgs {
            self.controller.step(msg).map_err(|_| Status::unavailable("the controller has stopped"))?;
        }
        Ok(Response::new(StepResponse {}))
    }

    async fn propose(&self, request: Request<ProposeRequest>) -> Result<Response<ProposeResponse>, Status> {
        let caller = self.caller(&request, "a proposal")?;
        let cmd = MetadataCommand::decode(&request.into_inner().command)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if let Some(broker) = cmd.acting_broker() {
            Self::must_be(caller, broker.into(), "a broker command")?;
        }
        let result = self.controller.propose(cmd).await;
        let leader_hint = self.controller.status().leader_id.unwrap_or(0);
        Ok(Response::new(encode_result(&result, leader_hint)))
    }

    async fn heartbeat(&self, request: Request<HeartbeatRequest>) -> Result<Response<HeartbeatResponse>, Status> {
        let caller = self.caller(&request, "a broker heartbeat")?;
        let node_id = request.into_inner().node_id;
        Self::must_be(caller, node_id.into(), "a broker heartbeat")?;
        match self.controller.heartbeat_local(node_id).await {
            Ok(()) => Ok(Response::new(HeartbeatResponse {})),
            Err(e @ ControllerError::NotLeader { .. }) => Err(Status::failed_precondition(e.to_string())),
            Err(e @ ControllerError::Metadata(MetadataError::UnknownBroker { .. })) => {
                Err(Status::not_found(e.to_string()))
            }
            Err(e @ ControllerError::Stopped) => Err(Status::unavailable(e.to_string())),
            Err(e @ ControllerError::Timeout) => Err(Status::deadline_exceeded(e.to_string())),
            Err(e) => Err(Status::internal(strata_record::ErrorChain(&e).to_string())),
        }
    }
}
