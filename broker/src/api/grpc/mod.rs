//! The gRPC edge (`strata.v1.Strata`): decodes each RPC, calls the broker
//! core in process, and encodes the answer, mapping the core's errors to the
//! API's codes (`errors`). The data path (produce, fetch, list offsets)
//! and the admin RPCs convert to and from the core's own types here
//! (`data`, `topics`, `elect`, `groups`, and `replica` for the brokers'
//! own `ReplicaFetch`, both ways). See `docs/architecture.md`, "One core,
//! edges".

pub(crate) mod acls;
mod authenticate;
mod batch_routes;
pub(crate) mod data;
pub(crate) mod elect;
pub(crate) mod errors;
pub(crate) mod groups;
pub(crate) mod reassign;
pub(crate) mod replica;
pub(crate) mod topics;
pub(crate) mod users;

use std::sync::Arc;

pub use batch_routes::BatchRoutes;

use strata_protocol::v1::strata_server::{Strata, StrataServer};
use strata_protocol::v1::*;
use tonic::{Request, Response, Status};

use crate::authorizer::{Resource, Session};
use crate::service::BrokerService;
use strata_metadata::AclOperation;

/// The `strata.v1.Strata` service over a broker core.
#[derive(Debug, Clone)]
pub struct GrpcService {
    core: Arc<BrokerService>,
}

impl GrpcService {
    /// The service for `core`, as a tonic server with message limits of
    /// `max_message_bytes` either way; the RPCs that answer with record
    /// batches send them without copying (`batch_routes`).
    pub fn server(core: Arc<BrokerService>, max_message_bytes: usize) -> BatchRoutes {
        let generated = StrataServer::new(GrpcService { core: core.clone() })
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes);
        BatchRoutes::new(generated, core, max_message_bytes)
    }
}

#[tonic::async_trait]
impl Strata for GrpcService {
    async fn create_topics(&self, req: Request<CreateTopicsRequest>) -> Result<Response<CreateTopicsResponse>, Status> {
        let session = session_of(&req);
        Ok(Response::new(topics::create(&self.core, &session, req.into_inner()).await))
    }

    async fn delete_topics(&self, req: Request<DeleteTopicsRequest>) -> Result<Response<DeleteTopicsResponse>, Status> {
        let session = session_of(&req);
        Ok(Response::new(topics::delete(&self.core, &session, req.into_inner()).await))
    }

    async fn list_topics(&self, req: Request<ListTopicsRequest>) -> Result<Response<ListTopicsResponse>, Status> {
        Ok(Response::new(topics::list(&self.core, &session_of(&req))))
    }

    async fn describe_topics(
        &self,
        req: Request<DescribeTopicsRequest>,
    ) -> Result<Response<DescribeTopicsResponse>, Status> {
        let session = session_of(&req);
        Ok(Response::new(topics::describe(&self.core, &session, req.into_inner())))
    }

    async fn produce(&self, req: Request<ProduceRequest>) -> Result<Response<ProduceResponse>, Status> {
        let session = session_of(&req);
        Ok(Response::new(data::produce(&self.core, &session, req.into_inner()).await))
    }

    async fn init_producer_id(
        &self,
        req: Request<InitProducerIdRequest>,
    ) -> Result<Response<InitProducerIdResponse>, Status> {
        let session = session_of(&req);
        if !self.core.may_init_producer_id(&session) {
            allow(&self.core, &session, AclOperation::IdempotentWrite, Resource::Cluster)?;
        }
        Ok(Response::new(data::init_producer_id(&self.core).await))
    }

    async fn fetch(&self, req: Request<FetchRequest>) -> Result<Response<FetchResponse>, Status> {
        let session = session_of(&req);
        Ok(Response::new(data::fetch(&self.core, &session, req.into_inner()).await))
    }

    async fn list_offsets(&self, req: Request<ListOffsetsRequest>) -> Result<Response<ListOffsetsResponse>, Status> {
        let session = session_of(&req);
        Ok(Response::new(data::list_offsets(&self.core, &session, req.into_inner()).await))
    }

    async fn describe_cluster(
        &self,
        _req: Request<DescribeClusterRequest>,
    ) -> Result<Response<DescribeClusterResponse>, Status> {
        // Open to every authenticated caller: clients bootstrap with it (as
        // Kafka's Metadata lists brokers to everyone).
        Ok(Response::new(topics::describe_cluster(&self.core).await))
    }

    async fn upsert_scram_credentials(
        &self,
        req: Request<UpsertScramCredentialsRequest>,
    ) -> Result<Response<UserResults>, Status> {
        allow(&self.core, &session_of(&req), AclOperation::Alter, Resource::Cluster)?;
        Ok(Response::new(users::upsert(&self.core, req.into_inner()).await))
    }

    async fn delete_scram_credentials(
        &self,
        req: Request<DeleteScramCredentialsRequest>,
    ) -> Result<Response<UserResults>, Status> {
        allow(&self.core, &session_of(&req), AclOperation::Alter, Resource::Cluster)?;
        Ok(Response::new(users::delete(&self.core, req.into_inner()).await))
    }

    async fn describe_users(
        &self,
        req: Request<DescribeUsersRequest>,
    ) -> Result<Response<DescribeUsersResponse>, Status> {
        allow(&self.core, &session_of(&req), AclOperation::Describe, Resource::Cluster)?;
        Ok(Response::new(users::describe(&self.core)))
    }

    async fn alter_topic_configs(
        &self,
        req: Request<AlterTopicConfigsRequest>,
    ) -> Result<Response<TopicResult>, Status> {
        let session = session_of(&req);
        Ok(Response::new(topics::alter_configs(&self.core, &session, req.into_inner()).await))
    }

    async fn delete_records(
        &self,
        req: Request<DeleteRecordsRequest>,
    ) -> Result<Response<DeleteRecordsResponse>, Status> {
        let session = session_of(&req);
        Ok(Response::new(topics::delete_records(&self.core, &session, req.into_inner()).await))
    }

    async fn create_partitions(&self, req: Request<CreatePartitionsRequest>) -> Result<Response<TopicResult>, Status> {
        let session = session_of(&req);
        Ok(Response::new(topics::create_partitions(&self.core, &session, req.into_inner()).await))
    }

    async fn alter_partition_reassignments(
        &self,
        req: Request<AlterPartitionReassignmentsRequest>,
    ) -> Result<Response<ReassignmentResults>, Status> {
        let session = session_of(&req);
        Ok(Response::new(reassign::alter(&self.core, &session, req.into_inner()).await))
    }

    async fn list_partition_reassignments(
        &self,
        req: Request<ListPartitionReassignmentsRequest>,
    ) -> Result<Response<ListPartitionReassignmentsResponse>, Status> {
        let session = session_of(&req);
        Ok(Response::new(reassign::list(&self.core, &session, req.into_inner())))
    }

    async fn rebalance(&self, req: Request<RebalanceRequest>) -> Result<Response<ReassignmentResults>, Status> {
        let session = session_of(&req);
        Ok(Response::new(reassign::rebalance(&self.core, &session, req.into_inner()).await))
    }

    async fn decommission_broker(
        &self,
        req: Request<DecommissionBrokerRequest>,
    ) -> Result<Response<ReassignmentResults>, Status> {
        let session = session_of(&req);
        Ok(Response::new(reassign::decommission(&self.core, &session, req.into_inner()).await))
    }

    async fn alter_broker_configs(
        &self,
        req: Request<AlterBrokerConfigsRequest>,
    ) -> Result<Response<BrokerConfigsResponse>, Status> {
        let session = session_of(&req);
        Ok(Response::new(reassign::alter_configs(&self.core, &session, req.into_inner()).await))
    }

    async fn describe_broker_configs(
        &self,
        req: Request<DescribeBrokerConfigsRequest>,
    ) -> Result<Response<BrokerConfigsResponse>, Status> {
        let session = session_of(&req);
        Ok(Response::new(reassign::describe_configs(&self.core, &session)))
    }

    async fn change_controller_voter(
        &self,
        req: Request<ChangeControllerVoterRequest>,
    ) -> Result<Response<ChangeControllerVoterResponse>, Status> {
        let session = session_of(&req);
        Ok(Response::new(reassign::change_voter(&self.core, &session, req.into_inner()).await))
    }

    async fn create_acls(&self, req: Request<CreateAclsRequest>) -> Result<Response<CreateAclsResponse>, Status> {
        allow(&self.core, &session_of(&req), AclOperation::Alter, Resource::Cluster)?;
        Ok(Response::new(acls::create(&self.core, req.into_inner()).await))
    }

    async fn describe_acls(&self, req: Request<DescribeAclsRequest>) -> Result<Response<DescribeAclsResponse>, Status> {
        allow(&self.core, &session_of(&req), AclOperation::Describe, Resource::Cluster)?;
        Ok(Response::new(acls::describe(&self.core, req.into_inner())))
    }

    async fn delete_acls(&self, req: Request<DeleteAclsRequest>) -> Result<Response<DeleteAclsResponse>, Status> {
        allow(&self.core, &session_of(&req), AclOperation::Alter, Resource::Cluster)?;
        Ok(Response::new(acls::delete(&self.core, req.into_inner()).await))
    }

    async fn elect_leaders(&self, req: Request<ElectLeadersRequest>) -> Result<Response<ElectLeadersResponse>, Status> {
        allow(&self.core, &session_of(&req), AclOperation::Alter, Resource::Cluster)?;
        Ok(Response::new(elect::elect_leaders(&self.core, req.into_inner()).await))
    }

    async fn replica_fetch(&self, req: Request<ReplicaFetchRequest>) -> Result<Response<ReplicaFetchResponse>, Status> {
        // (Served by `BatchRoutes` in the server; this path is the
        // generated service's, kept equivalent.)
        replica::authorize(&self.core, req.get_ref().replica_id, req.extensions().get::<strata_tls::TlsConnectInfo>())?;
        Ok(Response::new(replica::replica_fetch(&self.core, req.into_inner()).await))
    }

    async fn find_coordinator(
        &self,
        req: Request<FindCoordinatorRequest>,
    ) -> Result<Response<FindCoordinatorResponse>, Status> {
        allow(&self.core, &session_of(&req), AclOperation::Describe, Resource::Group(&req.get_ref().group_id))?;
        Ok(Response::new(groups::find_coordinator(&self.core, req.into_inner()).await))
    }

    async fn commit_offsets(
        &self,
        req: Request<CommitOffsetsRequest>,
    ) -> Result<Response<CommitOffsetsResponse>, Status> {
        let session = session_of(&req);
        let r = req.get_ref();
        allow(&self.core, &session, AclOperation::Read, Resource::Group(&r.group_id))?;
        for p in &r.partitions {
            allow(&self.core, &session, AclOperation::Read, Resource::Topic(&p.topic))?;
        }
        Ok(Response::new(groups::commit_offsets(&self.core, req.into_inner()).await))
    }

    async fn fetch_offsets(&self, req: Request<FetchOffsetsRequest>) -> Result<Response<FetchOffsetsResponse>, Status> {
        let session = session_of(&req);
        let r = req.get_ref();
        allow(&self.core, &session, AclOperation::Describe, Resource::Group(&r.group_id))?;
        for p in &r.partitions {
            allow(&self.core, &session, AclOperation::Describe, Resource::Topic(&p.topic))?;
        }
        Ok(Response::new(groups::fetch_offsets(&self.core, req.into_inner()).await))
    }

    async fn list_groups(&self, req: Request<ListGroupsRequest>) -> Result<Response<ListGroupsResponse>, Status> {
        let session = session_of(&req);
        let mut r = groups::list_groups(&self.core).await;
        r.groups.retain(|g| self.core.is_authorized(&session, AclOperation::Describe, Resource::Group(&g.group_id)));
        Ok(Response::new(r))
    }

    async fn describe_groups(
        &self,
        req: Request<DescribeGroupsRequest>,
    ) -> Result<Response<DescribeGroupsResponse>, Status> {
        let session = session_of(&req);
        for g in &req.get_ref().group_ids {
            allow(&self.core, &session, AclOperation::Describe, Resource::Group(g))?;
        }
        Ok(Response::new(groups::describe_groups(&self.core, req.into_inner()).await))
    }

    async fn delete_groups(&self, req: Request<DeleteGroupsRequest>) -> Result<Response<DeleteGroupsResponse>, Status> {
        let session = session_of(&req);
        for g in &req.get_ref().group_ids {
            allow(&self.core, &session, AclOperation::Delete, Resource::Group(g))?;
        }
        Ok(Response::new(groups::delete_groups(&self.core, req.into_inner()).await))
    }

    async fn consumer_group_heartbeat(
        &self,
        req: Request<ConsumerGroupHeartbeatRequest>,
    ) -> Result<Response<ConsumerGroupHeartbeatResponse>, Status> {
        let session = session_of(&req);
        allow(&self.core, &session, AclOperation::Read, Resource::Group(&req.get_ref().group_id))?;
        for t in &req.get_ref().subscribed_topic_names {
            allow(&self.core, &session, AclOperation::Describe, Resource::Topic(t))?;
        }
        let host = peer_addr(&req).map(|a| a.ip().to_string()).unwrap_or_default();
        Ok(Response::new(groups::consumer_group_heartbeat(&self.core, req.into_inner(), host).await))
    }
}

/// The caller, as `BatchRoutes` authenticated it (anonymous when the
/// service runs without it, as in unit tests).
pub(crate) fn session_of<T>(req: &Request<T>) -> Session {
    req.extensions()
        .get::<Session>()
        .cloned()
        .unwrap_or_else(|| Session::anonymous(peer_addr(req).map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip())))
}

/// `PERMISSION_DENIED` naming Kafka's code, the principal and the
/// operation, unless `session` may do `op` on `resource`.
fn allow(core: &BrokerService, session: &Session, op: AclOperation, resource: Resource<'_>) -> Result<(), Status> {
    core.authorize(session, op, resource)
        .map_err(|e| Status::permission_denied(format!("{}: {}", e.kind().name(), e.message())))
}

/// The caller's address, over plaintext or TLS.
pub(crate) fn peer_addr<T>(req: &Request<T>) -> Option<std::net::SocketAddr> {
    req.remote_addr().or_else(|| req.extensions().get::<strata_tls::TlsConnectInfo>().and_then(|i| i.remote))
}
