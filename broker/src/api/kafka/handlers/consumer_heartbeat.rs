//! ConsumerGroupHeartbeat v0-1 (KIP-848, `group.protocol=consumer`; v1 has the
//! client choose its member id, KIP-1082, and subscribe by regex): join,
//! heartbeat and leave through the broker's group coordinator, which is
//! KIP-848's model already. Kafka's request leaves a field null when it is
//! unchanged since the last heartbeat; the coordinator wants the whole
//! state, so the member's current subscription and partitions fill the
//! gaps. Partitions travel by topic id.

use std::time::Duration;

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;

use crate::api::kafka::codes::code_of;
use crate::group::assignor::TopicPartitionSet;
use crate::group::member::{insert, iter};
use crate::group::membership::{epoch, MemberHeartbeat};
use crate::service::BrokerService;

/// Answers `req` from a client at `client_host`.
pub(crate) async fn handle(
    core: &BrokerService,
    req: ConsumerGroupHeartbeatRequest,
    client_host: String,
) -> ConsumerGroupHeartbeatResponse {
    let group_id = req.group_id.0.to_string();
    let mut r = ConsumerGroupHeartbeatResponse::default();
    if core.classic_groups.is_active(&group_id) {
        // One kind at a time: the classic members hold the group.
        r.error_code = kafka_protocol::error::ResponseError::GroupIdNotFound.code();
        r.error_message = Some(StrBytes::from_string(format!("group '{group_id}' is a classic group with members")));
        r.member_id = Some(req.member_id.clone());
        r.member_epoch = req.member_epoch;
        return r;
    }
    let image = core.controller.metadata();
    let known =
        if req.member_epoch > epoch::JOIN { core.member_defaults(&group_id, &req.member_id).await } else { None };
    let (names, pattern) = match (&req.subscribed_topic_names, &req.subscribed_topic_regex, &known) {
        (None, None, Some((names, pattern, _))) => (names.clone(), pattern.clone()),
        (names, regex, _) => (
            names.iter().flatten().map(|n| n.0.to_string()).collect(),
            regex.as_ref().map(|r| r.to_string()).unwrap_or_default(),
        ),
    };
    let owned = match (&req.topic_partitions, &known) {
        (Some(tps), _) => {
            let mut set = TopicPartitionSet::new();
            for tp in tps {
                if let Some(t) = image.topic_by_id(&tp.topic_id.to_string()) {
                    for &p in &tp.partitions {
                        if let Ok(p) = u32::try_from(p) {
                            insert(&mut set, &t.name, p);
                        }
                    }
                }
            }
            set
        }
        (None, Some((_, _, assigned))) => assigned.clone(),
        (None, None) => TopicPartitionSet::new(),
    };
    let hb = MemberHeartbeat {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.as_ref().map(|i| i.to_string()).filter(|i| !i.is_empty()),
        client_id: String::new(),
        session_timeout: None,
        rebalance_timeout: u64::try_from(req.rebalance_timeout_ms).ok().filter(|&ms| ms > 0).map(Duration::from_millis),
        subscribed_topic_names: names,
        subscribed_topic_regex: (!pattern.is_empty()).then_some(pattern),
        server_assignor: req.server_assignor.as_ref().map(|a| a.to_string()).filter(|a| !a.is_empty()),
        owned_partitions: owned,
    };
    match core.consumer_group_heartbeat(&group_id, hb, client_host).await {
        Ok(o) => {
            r.member_id = Some(StrBytes::from_string(o.member_id));
            r.member_epoch = o.member_epoch;
            r.heartbeat_interval_ms = o.heartbeat_interval.as_millis().min(i32::MAX as u128) as i32;
            if o.member_epoch >= 0 {
                let mut by_topic: Vec<TopicPartitions> = Vec::new();
                for (topic, p) in iter(&o.assignment) {
                    let Some(id) = image.topics.get(topic).and_then(|t| uuid::Uuid::parse_str(&t.id).ok()) else {
                        continue;
                    };
                    match by_topic.iter_mut().find(|t| t.topic_id == id) {
                        Some(t) => t.partitions.push(p as i32),
                        None => {
                            let mut t = TopicPartitions::default();
                            t.topic_id = id;
                            t.partitions.push(p as i32);
                            by_topic.push(t);
                        }
                    }
                }
                let mut a = Assignment::default();
                a.topic_partitions = by_topic;
                r.assignment = Some(a);
            }
        }
        Err(e) => {
            r.error_code = code_of(e.kind());
            r.error_message = Some(StrBytes::from_string(e.message().to_string()));
            r.member_id = Some(req.member_id.clone());
            r.member_epoch = req.member_epoch;
        }
    }
    r
}
