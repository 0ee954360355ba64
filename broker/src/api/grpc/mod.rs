//! The gRPC edge (`strata.v1.Strata`): decodes each RPC, calls the broker
//! core in process, and encodes the answer, mapping the core's errors to the
//! API's codes (`errors`). The data path (produce, fetch, list offsets)
//! and the admin RPCs convert to and from the core's own types here
//! (`data`, `topics`, `elect`, `groups`, and `replica` for the brokers'
//! own `ReplicaFetch`, both ways). See `docs/architecture.md`, "One core,
//! edges".

mod batch_routes;
pub(crate) mod data;
pub(crate) mod elect;
pub(crate) mod errors;
pub(crate) mod groups;
pub(crate) mod replica;
pub(crate) mod topics;
pub(crate) mod users;

use std::sync::Arc;

pub use batch_routes::BatchRoutes;

use strata_protocol::v1::strata_server::{Strata, StrataServer};
use strata_protocol::v1::*;
use tonic::{Request, Response, Status};

use crate::service::BrokerService;

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
        Ok(Response::new(topics::create(&self.core, req.into_inner()).await))
    }

    async fn delete_topics(&self, req: Request<DeleteTopicsRequest>) -> Result<Response<DeleteTopicsResponse>, Status> {
        Ok(Response::new(topics::delete(&self.core, req.into_inner()).await))
    }

    async fn list_topics(&self, _req: Request<ListTopicsRequest>) -> Result<Response<ListTopicsResponse>, Status> {
        Ok(Response::new(topics::list(&self.core)))
    }

    async fn describe_topics(
        &self,
        req: Request<DescribeTopicsRequest>,
    ) -> Result<Response<DescribeTopicsResponse>, Status> {
        Ok(Response::new(topics::describe(&self.core, req.into_inner())))
    }

    async fn produce(&self, req: Request<ProduceRequest>) -> Result<Response<ProduceResponse>, Status> {
        Ok(Response::new(data::produce(&self.core, req.into_inner()).await))
    }

    async fn init_producer_id(
        &self,
        _req: Request<InitProducerIdRequest>,
    ) -> Result<Response<InitProducerIdResponse>, Status> {
        Ok(Response::new(data::init_producer_id(&self.core).await))
    }

    async fn fetch(&self, req: Request<FetchRequest>) -> Result<Response<FetchResponse>, Status> {
        Ok(Response::new(data::fetch(&self.core, req.into_inner()).await))
    }

    async fn list_offsets(&self, req: Request<ListOffsetsRequest>) -> Result<Response<ListOffsetsResponse>, Status> {
        Ok(Response::new(data::list_offsets(&self.core, req.into_inner()).await))
    }

    async fn describe_cluster(
        &self,
        _req: Request<DescribeClusterRequest>,
    ) -> Result<Response<DescribeClusterResponse>, Status> {
        Ok(Response::new(topics::describe_cluster(&self.core).await))
    }

    async fn upsert_scram_credentials(
        &self,
        req: Request<UpsertScramCredentialsRequest>,
    ) -> Result<Response<UserResults>, Status> {
        Ok(Response::new(users::upsert(&self.core, req.into_inner()).await))
    }

    async fn delete_scram_credentials(
        &self,
        req: Request<DeleteScramCredentialsRequest>,
    ) -> Result<Response<UserResults>, Status> {
        Ok(Response::new(users::delete(&self.core, req.into_inner()).await))
    }

    async fn describe_users(
        &self,
        _req: Request<DescribeUsersRequest>,
    ) -> Result<Response<DescribeUsersResponse>, Status> {
        Ok(Response::new(users::describe(&self.core)))
    }

    async fn elect_leaders(&self, req: Request<ElectLeadersRequest>) -> Result<Response<ElectLeadersResponse>, Status> {
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
        Ok(Response::new(groups::find_coordinator(&self.core, req.into_inner()).await))
    }

    async fn commit_offsets(
        &self,
        req: Request<CommitOffsetsRequest>,
    ) -> Result<Response<CommitOffsetsResponse>, Status> {
        Ok(Response::new(groups::commit_offsets(&self.core, req.into_inner()).await))
    }

    async fn fetch_offsets(&self, req: Request<FetchOffsetsRequest>) -> Result<Response<FetchOffsetsResponse>, Status> {
        Ok(Response::new(groups::fetch_offsets(&self.core, req.into_inner()).await))
    }

    async fn list_groups(&self, _req: Request<ListGroupsRequest>) -> Result<Response<ListGroupsResponse>, Status> {
        Ok(Response::new(groups::list_groups(&self.core).await))
    }

    async fn describe_groups(
        &self,
        req: Request<DescribeGroupsRequest>,
    ) -> Result<Response<DescribeGroupsResponse>, Status> {
        Ok(Response::new(groups::describe_groups(&self.core, req.into_inner()).await))
    }

    async fn delete_groups(&self, req: Request<DeleteGroupsRequest>) -> Result<Response<DeleteGroupsResponse>, Status> {
        Ok(Response::new(groups::delete_groups(&self.core, req.into_inner()).await))
    }

    async fn consumer_group_heartbeat(
        &self,
        req: Request<ConsumerGroupHeartbeatRequest>,
    ) -> Result<Response<ConsumerGroupHeartbeatResponse>, Status> {
        let host = peer_addr(&req).map(|a| a.ip().to_string()).unwrap_or_default();
        Ok(Response::new(groups::consumer_group_heartbeat(&self.core, req.into_inner(), host).await))
    }
}

/// The caller's address, over plaintext or TLS.
pub(crate) fn peer_addr<T>(req: &Request<T>) -> Option<std::net::SocketAddr> {
    req.remote_addr().or_else(|| req.extensions().get::<strata_tls::TlsConnectInfo>().and_then(|i| i.remote))
}
