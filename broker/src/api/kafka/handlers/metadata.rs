//! Metadata: the brokers that run a Kafka listener (at their advertised
//! Kafka addresses), and each asked topic's partitions with leaders, leader
//! epochs, replicas and ISR from the cluster metadata.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::StrBytes;

use super::topic_name;
use crate::admin::NewTopic;
use crate::api::kafka::codes::code_of;
use crate::authorizer::Session;
use crate::error::ErrorKind;
use crate::service::BrokerService;

/// Answers `req`. Before v1 an empty topic list means every topic; from v1
/// on that is a null list. An unknown topic named in the request is created
/// with the broker's defaults when the broker allows it
/// (`auto_create_topics`) and so does the request (always before v4,
/// `allow_auto_topic_creation` from v4), as Kafka does; otherwise it gets
/// UNKNOWN_TOPIC_OR_PARTITION.
pub(crate) async fn handle(
    core: &BrokerService,
    session: &Session,
    req: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let create = core.config.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    if create {
        auto_create(core, session, &req).await;
    }
    let image = core.controller.metadata();
    let mut r = MetadataResponse::default();
    r.cluster_id = Some(StrBytes::from_string(image.cluster_id.clone()));
    // Admin clients send topic changes to the "controller"; any broker
    // serves them here (the core forwards to the controller quorum), as
    // KRaft brokers name one of themselves.
    r.controller_id = BrokerId(core.config.node_id as i32);
    r.brokers = image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .filter_map(|b| {
            let (host, port) = split_host_port(b.kafka_address.as_deref()?)?;
            let mut broker = MetadataResponseBroker::default();
            broker.node_id = BrokerId(b.node_id as i32);
            broker.host = StrBytes::from_string(host.to_string());
            broker.port = port;
            broker.rack = b.rack.clone().map(StrBytes::from_string);
            Some(broker)
        })
        .collect();
    // A null list (v1+), or an empty one in v0, asks for every topic.
    let all = req.topics.as_ref().is_none_or(|t| t.is_empty() && version == 0);
    // Topics asked by name, or (v10+, KIP-848 consumers resolving their
    // assignment) by id; an unknown id is UNKNOWN_TOPIC_ID.
    let mut names = Vec::new();
    let mut unknown_ids = Vec::new();
    for t in req.topics.unwrap_or_default() {
        match t.name {
            Some(n) => names.push(n.0.to_string()),
            None if !t.topic_id.is_nil() => match image.topic_by_id(&t.topic_id.to_string()) {
                Some(found) => names.push(found.name.clone()),
                None => unknown_ids.push(t.topic_id),
            },
            None => {}
        }
    }
    let described = if all || !names.is_empty() { core.describe_topics(session, names) } else { Vec::new() };
    r.topics = unknown_ids
        .into_iter()
        .map(|id| {
            let mut t = MetadataResponseTopic::default();
            t.topic_id = id;
            t.error_code = ResponseError::UnknownTopicId.code();
            t
        })
        .collect();
    r.topics.extend(
        described
            .into_iter()
            .filter(|(name, _)| !(all && name.starts_with("__")))
            .map(|(name, result)| {
                let mut t = MetadataResponseTopic::default();
                t.name = Some(topic_name(&name));
                match result {
                    Err(e) => t.error_code = code_of(e.kind()),
                    Ok(d) => {
                        t.topic_id = uuid::Uuid::parse_str(&d.topic_id).unwrap_or_default();
                        t.is_internal = d.name.starts_with("__");
                        t.partitions = d
                            .partitions
                            .iter()
                            .map(|p| {
                                let mut mp = MetadataResponsePartition::default();
                                mp.partition_index = p.partition as i32;
                                match p.leader {
                                    Some(l) => mp.leader_id = BrokerId(l as i32),
                                    None => {
                                        mp.leader_id = BrokerId(-1);
                                        mp.error_code = ResponseError::LeaderNotAvailable.code();
                                    }
                                }
                                mp.leader_epoch = p.leader_epoch as i32;
                                mp.replica_nodes = p.replicas.iter().map(|&b| BrokerId(b as i32)).collect();
                                mp.isr_nodes = p.isr.iter().map(|&b| BrokerId(b as i32)).collect();
                                mp
                            })
                            .collect();
                    }
                }
                t
            })
            .collect::<Vec<_>>(),
    );
    r
}

/// Creates the topics `req` names that do not exist (defaults for
/// partitions, replication and configs). Failures (an invalid name, too
/// few brokers) show in the answer as the topic's error.
async fn auto_create(core: &BrokerService, session: &Session, req: &MetadataRequest) {
    let Some(topics) = &req.topics else { return };
    let image = core.controller.metadata();
    let missing: Vec<NewTopic> = topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .filter(|name| !image.topics.contains_key(name) && !name.starts_with("__"))
        .map(|name| NewTopic { name, partitions: None, replication_factor: None, configs: Default::default() })
        .collect();
    if missing.is_empty() {
        return;
    }
    for (name, result) in core.create_topics(session, missing, false).await {
        match result {
            Ok(()) => {
                tracing::info!(topic = %name, "created a topic a Kafka client asked for (auto.create.topics.enable)")
            }
            Err(e) if e.kind() == ErrorKind::TopicAlreadyExists => {}
            Err(e) => tracing::debug!(topic = %name, error = %e, "could not auto-create a topic"),
        }
    }
}

/// `host:port` → (host, port); IPv6 hosts may be bracketed.
pub(crate) fn split_host_port(address: &str) -> Option<(&str, i32)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host, port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_into_host_and_port() {
        assert_eq!(split_host_port("127.0.0.1:9092"), Some(("127.0.0.1", 9092)));
        assert_eq!(split_host_port("strata-0.strata:9092"), Some(("strata-0.strata", 9092)));
        assert_eq!(split_host_port("[::1]:9092"), Some(("::1", 9092)));
        assert_eq!(split_host_port("nohost"), None);
        assert_eq!(split_host_port("h:notaport"), None);
    }
}
