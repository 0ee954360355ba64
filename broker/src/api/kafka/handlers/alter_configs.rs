//! IncrementalAlterConfigs (0–1) and AlterConfigs (0–2) for topics and
//! for the cluster-wide broker default (resource type BROKER, empty name):
//! each resource becomes a [`ConfigChange`] for the core, which validates
//! it, stores it through the controller quorum and lets every broker apply
//! it. Per-broker resources (a broker id as the name) are refused, named.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest, AlterConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::alter_configs::ConfigChange;
use crate::authorizer::Session;
use crate::service::BrokerService;

/// Kafka's resource type of a topic.
const TOPIC: i8 = 2;
/// Kafka's resource type of a broker (empty name: the cluster default).
const BROKER: i8 = 4;

/// IncrementalAlterConfigs operations.
const SET: i8 = 0;
const DELETE: i8 = 1;

/// `(error code, message)` of one resource's change.
async fn alter(
    core: &BrokerService,
    session: &Session,
    resource_type: i8,
    name: &str,
    change: Result<ConfigChange, String>,
    validate_only: bool,
) -> (i16, Option<StrBytes>) {
    let invalid = |message: String| (ResponseError::InvalidRequest.code(), Some(StrBytes::from_string(message)));
    let change = match change {
        Ok(c) => c,
        Err(message) => return invalid(message),
    };
    let result = match (resource_type, name) {
        (TOPIC, _) => core.alter_topic_configs(session, name, change, validate_only).await,
        (BROKER, "") => core.alter_broker_configs(session, change, validate_only).await,
        (BROKER, id) => {
            return invalid(format!(
                "broker {id}: dynamic configs are cluster-wide here; use the default broker resource (empty name)"
            ))
        }
        (other, _) => return invalid(format!("resource type {other}: only topic (2) and broker (4) configs change")),
    };
    match result {
        Ok(()) => (0, None),
        Err(e) => super::refusal(&e),
    }
}

/// Answers an IncrementalAlterConfigs: SET and DELETE per key; APPEND and
/// SUBTRACT (list-valued configs) are refused, as no topic config here is
/// a list.
pub(crate) async fn incremental(
    core: &BrokerService,
    session: &Session,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut r = IncrementalAlterConfigsResponse::default();
    for res in req.resources {
        let mut change = ConfigChange::default();
        let mut bad = None;
        for c in &res.configs {
            match (c.config_operation, &c.value) {
                (SET, Some(v)) => {
                    change.set.insert(c.name.to_string(), v.to_string());
                }
                (SET, None) => bad = Some(format!("SET of '{}' without a value", c.name)),
                (DELETE, _) => change.delete.push(c.name.to_string()),
                (op, _) => bad = Some(format!("operation {op} on '{}': only SET (0) and DELETE (1) apply", c.name)),
            }
        }
        let change = bad.map_or(Ok(change), Err);
        let (error_code, error_message) =
            alter(core, session, res.resource_type, &res.resource_name, change, req.validate_only).await;
        let mut out = incremental_alter_configs_response::AlterConfigsResourceResponse::default();
        (out.error_code, out.error_message) = (error_code, error_message);
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name;
        r.responses.push(out);
    }
    r
}

/// Answers an AlterConfigs: the given keys become the topic's whole config
/// (every other key returns to its default), as Kafka's legacy API does.
pub(crate) async fn replace(core: &BrokerService, session: &Session, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut r = AlterConfigsResponse::default();
    for res in req.resources {
        let mut change = ConfigChange::default();
        for c in &res.configs {
            if let Some(v) = &c.value {
                change.set.insert(c.name.to_string(), v.to_string());
            }
        }
        let image = core.controller.metadata();
        let current = match res.resource_type {
            TOPIC => image.topics.get(res.resource_name.as_str()).map(|t| t.configs.clone()),
            BROKER => Some(image.broker_configs.clone()),
            _ => None,
        };
        drop(image);
        change.delete = current.unwrap_or_default().into_keys().filter(|k| !change.set.contains_key(k)).collect();
        let (error_code, error_message) =
            alter(core, session, res.resource_type, &res.resource_name, Ok(change), req.validate_only).await;
        let mut out = alter_configs_response::AlterConfigsResourceResponse::default();
        (out.error_code, out.error_message) = (error_code, error_message);
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name;
        r.responses.push(out);
    }
    r
}
