//! FindCoordinator: the broker coordinating a group, at its Kafka address
//! (v0–3 one key, v4 a batch). Transactions have no coordinator here.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::metadata::split_host_port;
use crate::api::kafka::codes::code_of;
use crate::authorizer::{Resource, Session};
use crate::service::BrokerService;
use strata_metadata::AclOperation;

/// Kafka's key type of a consumer group.
const GROUP: i8 = 0;

/// Answers `req`.
pub(crate) async fn handle(
    core: &BrokerService,
    session: &Session,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let mut r = FindCoordinatorResponse::default();
    if version >= 4 {
        for key in req.coordinator_keys {
            r.coordinators.push(find(core, session, key, req.key_type).await);
        }
    } else {
        let c = find(core, session, req.key, req.key_type).await;
        r.error_code = c.error_code;
        r.error_message = c.error_message;
        r.node_id = c.node_id;
        r.host = c.host;
        r.port = c.port;
    }
    r
}

async fn find(core: &BrokerService, session: &Session, key: StrBytes, key_type: i8) -> Coordinator {
    let mut c = Coordinator::default();
    c.node_id = BrokerId(-1);
    c.port = -1;
    if key_type != GROUP {
        c.error_code = ResponseError::InvalidRequest.code();
        c.error_message = Some(StrBytes::from_static_str("transactions are not supported"));
        c.key = key;
        return c;
    }
    if let Err(e) = core.authorize(session, AclOperation::Describe, Resource::Group(&key)) {
        (c.error_code, c.error_message) = super::refusal(&e);
        c.key = key;
        return c;
    }
    match core.find_coordinator(&key).await {
        Err(e) => {
            c.error_code = code_of(e.kind());
            c.error_message = Some(StrBytes::from_string(e.message().to_string()));
        }
        Ok(found) => {
            let image = core.controller.metadata();
            let address = image.brokers.get(&found.node_id).and_then(|b| b.kafka_address.clone());
            match address.as_deref().and_then(split_host_port) {
                Some((host, port)) => {
                    c.node_id = BrokerId(found.node_id as i32);
                    c.host = StrBytes::from_string(host.to_string());
                    c.port = port;
                }
                None => {
                    c.error_code = ResponseError::CoordinatorNotAvailable.code();
                    c.error_message = Some(StrBytes::from_string(format!(
                        "the coordinator, broker {}, runs no Kafka listener",
                        found.node_id
                    )));
                }
            }
        }
    }
    c.key = key;
    c
}
