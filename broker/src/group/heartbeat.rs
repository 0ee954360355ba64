//! `ConsumerGroupHeartbeat` on `BrokerService`: finds the shard this broker
//! coordinates for the group (creating the offsets topic on first need),
//! and runs the group's [`super::membership::Membership`] state machine
//! under the shard's lock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use strata_protocol::v1::*;

use super::member::from_api;
use super::member::to_api;
use super::membership::{epoch, HeartbeatContext, MemberHeartbeat, ADOPTION_WINDOW};
use super::validate_group_id;
use crate::error::BrokerError;
use crate::service::BrokerService;

impl BrokerService {
    /// Every topic with its partition count (what subscriptions resolve
    /// against), rebuilt only when the metadata moved on: every heartbeat
    /// and expiry pass asks for it.
    pub(crate) fn topic_partition_counts(&self) -> Arc<BTreeMap<String, u32>> {
        let image = self.controller.metadata();
        let mut cache = self.topic_counts.lock().unwrap_or_else(|p| p.into_inner());
        match &*cache {
            Some((offset, counts)) if *offset == image.offset => counts.clone(),
            _ => {
                let counts: Arc<BTreeMap<String, u32>> =
                    Arc::new(image.topics.iter().map(|(name, t)| (name.clone(), t.partitions.len() as u32)).collect());
                *cache = Some((image.offset, counts.clone()));
                counts
            }
        }
    }

    /// `ConsumerGroupHeartbeat`: join, heartbeat or leave; the answer
    /// carries the member's epoch and the partitions it may own.
    pub(crate) async fn consumer_group_heartbeat(
        &self,
        req: ConsumerGroupHeartbeatRequest,
        client_host: String,
    ) -> ConsumerGroupHeartbeatResponse {
        let me = self.replicas.node_id();
        let fail = |e: BrokerError| {
            self.metrics.record_error(e.kind());
            ConsumerGroupHeartbeatResponse {
                error: Some(e.into()),
                member_id: req.member_id.clone(),
                member_epoch: req.member_epoch,
                coordinator: me,
                ..Default::default()
            }
        };
        if let Err(e) = validate_group_id(&req.group_id) {
            return fail(e);
        }
        let h = match self.shard_for(&req.group_id, true).await {
            Ok(h) => h,
            Err(e) => return fail(e),
        };
        let topics = self.topic_partition_counts();
        let ctx = HeartbeatContext {
            now: Instant::now(),
            topics: &topics,
            adoptable: h.loaded_at.elapsed() < ADOPTION_WINDOW,
            client_host,
            new_member_id: uuid::Uuid::new_v4().to_string(),
        };
        let outcome = {
            let mut shard = h.lock();
            let group = shard.group_mut(&req.group_id);
            let before = group.membership.len();
            let outcome = group.membership.heartbeat(&req.group_id, &member_heartbeat(&req), ctx);
            let after = group.membership.len();
            if after != before || req.member_epoch == epoch::LEAVE_STATIC {
                tracing::info!(
                    group = %req.group_id,
                    member = %outcome.as_ref().map_or(req.member_id.as_str(), |o| o.member_id.as_str()),
                    member_epoch = req.member_epoch,
                    members = after,
                    group_epoch = group.membership.group_epoch,
                    "group membership changed"
                );
            }
            outcome
        };
        match outcome {
            Ok(o) => ConsumerGroupHeartbeatResponse {
                error: None,
                member_id: o.member_id,
                member_epoch: o.member_epoch,
                heartbeat_interval_ms: o.heartbeat_interval.as_millis().min(u32::MAX as u128) as u32,
                assignment: to_api(&o.assignment),
                coordinator: me,
                reconciling: o.reconciling,
            },
            Err(e) => fail(e),
        }
    }
}

/// The state machine's input from the API's message: empty strings and
/// zero timeouts mean "not given".
pub(crate) fn member_heartbeat(req: &ConsumerGroupHeartbeatRequest) -> MemberHeartbeat {
    let given = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let ms = |ms: u32| (ms > 0).then(|| std::time::Duration::from_millis(ms.into()));
    MemberHeartbeat {
        member_id: req.member_id.clone(),
        member_epoch: req.member_epoch,
        instance_id: given(&req.instance_id),
        client_id: req.client_id.clone(),
        session_timeout: ms(req.session_timeout_ms),
        rebalance_timeout: ms(req.rebalance_timeout_ms),
        subscribed_topic_names: req.subscribed_topic_names.clone(),
        subscribed_topic_regex: given(&req.subscribed_topic_regex),
        server_assignor: given(&req.server_assignor),
        owned_partitions: from_api(&req.owned_partitions),
    }
}
