//! CreateTopics and DeleteTopics: the core's topic admin with Kafka's
//! conventions (-1 partitions or replication factor: the broker's default;
//! explicit replica assignments are not supported yet).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use super::topic_name;
use crate::admin::NewTopic;
use crate::api::kafka::codes::code_of;
use crate::authorizer::Session;
use crate::service::BrokerService;
use crate::topic_config;

/// Answers a CreateTopics request.
pub(crate) async fn create(core: &BrokerService, session: &Session, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut results = Vec::new();
    let mut specs = Vec::new();
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut r = CreatableTopicResult::default();
        r.name = t.name.clone();
        r.num_partitions = -1;
        r.replication_factor = -1;
        if !t.assignments.is_empty() {
            r.error_code = ResponseError::InvalidReplicaAssignment.code();
            r.error_message = Some(StrBytes::from_static_str("explicit replica assignments are not supported"));
            results.push((name, Some(r)));
            continue;
        }
        let configs: BTreeMap<String, String> =
            t.configs.iter().filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string()))).collect();
        specs.push(NewTopic {
            name: name.clone(),
            partitions: u32::try_from(t.num_partitions).ok(),
            replication_factor: u32::try_from(t.replication_factor).ok(),
            configs,
        });
        results.push((name, None));
    }
    let created = core.create_topics(session, specs, req.validate_only).await;
    let described: BTreeMap<String, _> = core
        .describe_topics(session, created.iter().filter(|(_, r)| r.is_ok()).map(|(n, _)| n.clone()).collect())
        .into_iter()
        .filter_map(|(n, d)| Some((n, d.ok()?)))
        .collect();
    let mut created: BTreeMap<String, _> = created.into_iter().collect();
    let mut r = CreateTopicsResponse::default();
    for (name, early) in results {
        let result = match early {
            Some(r) => r,
            None => {
                let mut tr = CreatableTopicResult::default();
                tr.name = topic_name(&name);
                tr.num_partitions = -1;
                tr.replication_factor = -1;
                match created.remove(&name) {
                    Some(Err(e)) => {
                        tr.error_code = code_of(e.kind());
                        tr.error_message = Some(StrBytes::from_string(e.message().to_string()));
                    }
                    _ => {
                        if let Some(d) = described.get(&name) {
                            let rf = d.partitions.first().map_or(0, |p| p.replicas.len() as u32);
                            tr.topic_id = uuid::Uuid::parse_str(&d.topic_id).unwrap_or_default();
                            tr.num_partitions = d.partitions.len() as i32;
                            tr.replication_factor = rf as i16;
                            tr.configs = Some(
                                topic_config::described(
                                    core.replicas.defaults(),
                                    rf,
                                    &d.configs,
                                    &core.controller.metadata().broker_configs,
                                )
                                .into_iter()
                                .map(|(key, value, source)| {
                                    let mut c = CreatableTopicConfigs::default();
                                    c.name = StrBytes::from_static_str(key);
                                    c.value = Some(StrBytes::from_string(value));
                                    c.config_source = source.kafka_code();
                                    c
                                })
                                .collect(),
                            );
                        }
                    }
                }
                tr
            }
        };
        r.topics.push(result);
    }
    r
}

/// Answers a DeleteTopics request: topics by name (v1–5, and v6 entries
/// with a name) or by topic id (v6); an unknown id is UNKNOWN_TOPIC_ID.
pub(crate) async fn delete(core: &BrokerService, session: &Session, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let mut r = DeleteTopicsResponse::default();
    let image = core.controller.metadata();
    // (name, the id the request named it by)
    let mut wanted: Vec<(String, Option<uuid::Uuid>)> =
        req.topic_names.iter().map(|n| (n.0.to_string(), None)).collect();
    for t in &req.topics {
        match &t.name {
            Some(n) => wanted.push((n.0.to_string(), None)),
            None => match image.topic_by_id(&t.topic_id.to_string()) {
                Some(topic) => wanted.push((topic.name.clone(), Some(t.topic_id))),
                None => {
                    let mut d = DeletableTopicResult::default();
                    d.topic_id = t.topic_id;
                    d.error_code = ResponseError::UnknownTopicId.code();
                    d.error_message = Some(StrBytes::from_string(format!("no topic has id {}", t.topic_id)));
                    r.responses.push(d);
                }
            },
        }
    }
    let ids: std::collections::HashMap<String, uuid::Uuid> = wanted
        .iter()
        .filter_map(|(name, id)| {
            id.or_else(|| image.topics.get(name).and_then(|t| uuid::Uuid::parse_str(&t.id).ok()))
                .map(|id| (name.clone(), id))
        })
        .collect();
    drop(image);
    for (name, result) in core.delete_topics(session, wanted.into_iter().map(|(n, _)| n).collect()).await {
        let mut d = DeletableTopicResult::default();
        d.name = Some(topic_name(&name));
        d.topic_id = ids.get(&name).copied().unwrap_or_default();
        if let Err(e) = result {
            d.error_code = code_of(e.kind());
            d.error_message = Some(StrBytes::from_string(e.message().to_string()));
        }
        r.responses.push(d);
    }
    r
}
