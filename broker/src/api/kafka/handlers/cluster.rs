//! DescribeCluster: the cluster id, the controller leader and the brokers
//! at their Kafka addresses.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::metadata::split_host_port;
use crate::authorizer::{Resource, Session};
use crate::service::BrokerService;
use strata_metadata::AclOperation;

/// Answers `req`.
pub(crate) async fn handle(
    core: &BrokerService,
    session: &Session,
    _req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let mut r = DescribeClusterResponse::default();
    if let Err(e) = core.authorize(session, AclOperation::Describe, Resource::Cluster) {
        (r.error_code, r.error_message) = super::refusal(&e);
        return r;
    }
    let c = core.describe_cluster().await;
    r.cluster_id = StrBytes::from_string(c.cluster_id);
    // As in Metadata: a broker that serves admin requests, not the Raft
    // leader (which may run no Kafka listener).
    r.controller_id = BrokerId(core.config.node_id as i32);
    r.cluster_authorized_operations = i32::MIN;
    r.endpoint_type = 1;
    r.brokers = c
        .brokers
        .iter()
        .filter_map(|b| {
            let (host, port) = split_host_port(b.kafka_address.as_deref()?)?;
            let mut d = DescribeClusterBroker::default();
            d.broker_id = BrokerId(b.node_id as i32);
            d.host = StrBytes::from_string(host.to_string());
            d.port = port;
            d.rack = b.rack.clone().map(StrBytes::from_string);
            d.is_fenced = b.fenced;
            Some(d)
        })
        .collect();
    r
}
