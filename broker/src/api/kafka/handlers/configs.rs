//! DescribeConfigs: a topic's every config with its value and source
//! (set on the topic, or the broker's default), as Kafka's admin tools list
//! them; a broker resource gets the broker-wide defaults.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::api::kafka::codes::code_of;
use crate::authorizer::{Resource, Session};
use crate::service::BrokerService;
use crate::topic_config;
use strata_metadata::AclOperation;

/// Kafka's resource types.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
/// Kafka's config types (v3+).
const STRING: i8 = 2;

/// Answers `req`.
pub(crate) fn handle(core: &BrokerService, session: &Session, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let mut r = DescribeConfigsResponse::default();
    for res in req.resources {
        let mut out = DescribeConfigsResult::default();
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name.clone();
        let wanted = |key: &str| res.configuration_keys.as_ref().is_none_or(|keys| keys.iter().any(|k| &**k == key));
        let resource = if res.resource_type == TOPIC { Resource::Topic(&res.resource_name) } else { Resource::Cluster };
        if let Err(e) = core.authorize(session, AclOperation::DescribeConfigs, resource) {
            (out.error_code, out.error_message) = super::refusal(&e);
            r.results.push(out);
            continue;
        }
        let entries = match res.resource_type {
            TOPIC => match core.describe_topics(session, vec![res.resource_name.to_string()]).pop() {
                Some((_, Ok(d))) => {
                    let rf = d.partitions.first().map_or(0, |p| p.replicas.len() as u32);
                    let cluster = core.controller.metadata().broker_configs.clone();
                    Some(topic_config::described(core.replicas.defaults(), rf, &d.configs, &cluster))
                }
                Some((_, Err(e))) => {
                    out.error_code = code_of(e.kind());
                    out.error_message = Some(StrBytes::from_string(e.message().to_string()));
                    None
                }
                None => None,
            },
            BROKER => {
                let cluster = core.controller.metadata().broker_configs.clone();
                let mut entries = topic_config::described(core.replicas.defaults(), 3, &Default::default(), &cluster);
                // The run-time broker configs that are not topic defaults.
                for (k, v) in &cluster {
                    if let Some(key) = crate::reassign::BROKER_CONFIG_KEYS.iter().find(|key| **key == k.as_str()) {
                        if !entries.iter().any(|(e, _, _)| e == key) {
                            entries.push((key, v.clone(), topic_config::ConfigSource::Cluster));
                        }
                    }
                }
                Some(entries)
            }
            other => {
                out.error_code = ResponseError::InvalidRequest.code();
                out.error_message = Some(StrBytes::from_string(format!("resource type {other} is not supported")));
                None
            }
        };
        for (key, value, source) in entries.unwrap_or_default() {
            if !wanted(key) {
                continue;
            }
            let mut c = DescribeConfigsResourceResult::default();
            c.name = StrBytes::from_static_str(key);
            c.value = Some(StrBytes::from_string(value));
            // The cluster-wide default broker resource changes at run
            // time; a single broker's static config does not.
            c.read_only = res.resource_type == BROKER && !res.resource_name.is_empty();
            c.config_source = source.kafka_code();
            c.config_type = STRING;
            out.configs.push(c);
        }
        r.results.push(out);
    }
    r
}
