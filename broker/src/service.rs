//! The gRPC service (`strata.v1.Strata`): routes each RPC to the module that
//! handles it.

use std::sync::Arc;

use strata_protocol::v1::strata_server::Strata;
use strata_protocol::v1::*;
use tonic::{Request, Response, Status};

use crate::config::ServerConfig;
use crate::controller_link::SharedControllerLink;
use crate::group::GroupCoordinator;
use crate::metrics::Metrics;
use crate::replica_manager::ReplicaManager;

/// How long acks=all waits for replication when the request says 0.
const DEFAULT_PRODUCE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Longest acks=all wait a request may ask for.
const MAX_PRODUCE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// State shared by every request.
#[derive(Debug, Clone)]
pub struct BrokerService {
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) replicas: Arc<ReplicaManager>,
    pub(crate) controller: SharedControllerLink,
    pub(crate) metrics: Arc<Metrics>,
    /// The consumer groups this broker coordinates.
    pub(crate) groups: Arc<GroupCoordinator>,
    /// Cancelled when the server shuts down: parked long polls return.
    pub(crate) stopping: tokio_util::sync::CancellationToken,
    /// A drain (leadership handed away before a stop) asked for and done.
    pub drain: Arc<Drain>,
    /// Partition count per topic as of a metadata offset (group upkeep).
    pub(crate) topic_counts: Arc<std::sync::Mutex<Option<TopicCounts>>>,
}

/// Partition count per topic, as of a metadata offset.
pub(crate) type TopicCounts = (u64, Arc<std::collections::BTreeMap<String, u32>>);

/// The drain handshake between the HTTP endpoint and the server loop:
/// `requested` turns true when `POST /drain` arrives, `done` once the
/// controlled shutdown step ran (at a drain or at the stop signal).
#[derive(Debug)]
pub struct Drain {
    /// Set by the endpoint.
    pub requested: tokio::sync::watch::Sender<bool>,
    /// Set by the server loop.
    pub done: tokio::sync::watch::Sender<bool>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain { requested: tokio::sync::watch::channel(false).0, done: tokio::sync::watch::channel(false).0 }
    }
}

impl BrokerService {
    /// A service over the given parts.
    pub fn new(
        config: Arc<ServerConfig>,
        replicas: Arc<ReplicaManager>,
        controller: SharedControllerLink,
        metrics: Arc<Metrics>,
        stopping: tokio_util::sync::CancellationToken,
    ) -> Self {
        BrokerService {
            config,
            replicas,
            controller,
            metrics,
            groups: Arc::new(GroupCoordinator::new()),
            stopping,
            drain: Arc::new(Drain::default()),
            topic_counts: Arc::default(),
        }
    }
}

#[tonic::async_trait]
impl Strata for BrokerService {
    async fn create_topics(&self, req: Request<CreateTopicsRequest>) -> Result<Response<CreateTopicsResponse>, Status> {
        Ok(Response::new(self.create_topics(req.into_inner()).await))
    }

    async fn delete_topics(&self, req: Request<DeleteTopicsRequest>) -> Result<Response<DeleteTopicsResponse>, Status> {
        Ok(Response::new(self.delete_topics(req.into_inner()).await))
    }

    async fn list_topics(&self, _req: Request<ListTopicsRequest>) -> Result<Response<ListTopicsResponse>, Status> {
        Ok(Response::new(self.list_topics()))
    }

    async fn describe_topics(
        &self,
        req: Request<DescribeTopicsRequest>,
    ) -> Result<Response<DescribeTopicsResponse>, Status> {
        Ok(Response::new(self.describe_topics(req.into_inner())))
    }

    async fn produce(&self, req: Request<ProduceRequest>) -> Result<Response<ProduceResponse>, Status> {
        let req = req.into_inner();
        let timeout = match req.timeout_ms {
            0 => DEFAULT_PRODUCE_TIMEOUT,
            ms => std::time::Duration::from_millis(ms.into()).min(MAX_PRODUCE_TIMEOUT),
        };
        let mut out = ProduceResponse { partitions: Vec::with_capacity(req.partitions.len()) };
        // Partitions of one request are appended and (for acks=all)
        // replicated concurrently.
        let results = futures::future::join_all(
            req.partitions.into_iter().map(|pr| self.produce_partition(pr, req.acks, timeout)),
        )
        .await;
        out.partitions.extend(results);
        Ok(Response::new(out))
    }

    async fn fetch(&self, req: Request<FetchRequest>) -> Result<Response<FetchResponse>, Status> {
        Ok(Response::new(BrokerService::fetch(self, req.into_inner()).await))
    }

    async fn list_offsets(&self, req: Request<ListOffsetsRequest>) -> Result<Response<ListOffsetsResponse>, Status> {
        Ok(Response::new(self.list_offsets(req.into_inner()).await))
    }

    async fn describe_cluster(
        &self,
        _req: Request<DescribeClusterRequest>,
    ) -> Result<Response<DescribeClusterResponse>, Status> {
        Ok(Response::new(self.describe_cluster().await))
    }

    async fn elect_leaders(&self, req: Request<ElectLeadersRequest>) -> Result<Response<ElectLeadersResponse>, Status> {
        Ok(Response::new(BrokerService::elect_leaders(self, req.into_inner()).await))
    }

    async fn replica_fetch(&self, req: Request<ReplicaFetchRequest>) -> Result<Response<ReplicaFetchResponse>, Status> {
        Ok(Response::new(BrokerService::replica_fetch(self, req.into_inner()).await))
    }

    async fn find_coordinator(
        &self,
        req: Request<FindCoordinatorRequest>,
    ) -> Result<Response<FindCoordinatorResponse>, Status> {
        Ok(Response::new(BrokerService::find_coordinator(self, req.into_inner()).await))
    }

    async fn commit_offsets(
        &self,
        req: Request<CommitOffsetsRequest>,
    ) -> Result<Response<CommitOffsetsResponse>, Status> {
        Ok(Response::new(BrokerService::commit_offsets(self, req.into_inner()).await))
    }

    async fn fetch_offsets(&self, req: Request<FetchOffsetsRequest>) -> Result<Response<FetchOffsetsResponse>, Status> {
        Ok(Response::new(BrokerService::fetch_offsets(self, req.into_inner()).await))
    }

    async fn list_groups(&self, _req: Request<ListGroupsRequest>) -> Result<Response<ListGroupsResponse>, Status> {
        Ok(Response::new(BrokerService::list_groups(self).await))
    }

    async fn describe_groups(
        &self,
        req: Request<DescribeGroupsRequest>,
    ) -> Result<Response<DescribeGroupsResponse>, Status> {
        Ok(Response::new(BrokerService::describe_groups(self, req.into_inner()).await))
    }

    async fn delete_groups(&self, req: Request<DeleteGroupsRequest>) -> Result<Response<DeleteGroupsResponse>, Status> {
        Ok(Response::new(BrokerService::delete_groups(self, req.into_inner()).await))
    }

    async fn consumer_group_heartbeat(
        &self,
        req: Request<ConsumerGroupHeartbeatRequest>,
    ) -> Result<Response<ConsumerGroupHeartbeatResponse>, Status> {
        let host = req.remote_addr().map(|a| a.ip().to_string()).unwrap_or_default();
        Ok(Response::new(BrokerService::consumer_group_heartbeat(self, req.into_inner(), host).await))
    }
}
