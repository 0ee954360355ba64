//! A member's heartbeat on `BrokerService`: finds the shard this broker
//! coordinates for the group (creating the offsets topic on first need),
//! and runs the group's [`super::membership::Membership`] state machine
//! under the shard's lock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::membership::{epoch, HeartbeatContext, HeartbeatOutcome, MemberHeartbeat, ADOPTION_WINDOW};
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

    /// Join, heartbeat or leave (KIP-848's `ConsumerGroupHeartbeat`): the
    /// answer carries the member's epoch and the partitions it may own.
    pub(crate) async fn consumer_group_heartbeat(
        &self,
        group_id: &str,
        hb: MemberHeartbeat,
        client_host: String,
    ) -> Result<HeartbeatOutcome, BrokerError> {
        let outcome = self.heartbeat(group_id, &hb, client_host).await;
        if let Err(e) = &outcome {
            self.metrics.record_error(e.kind());
        }
        outcome
    }

    /// A member's subscription (topic names, pattern) and the partitions
    /// it was last given: what a KIP-848 client means by leaving a
    /// heartbeat field null ("unchanged"). `None` for an unknown member.
    pub(crate) async fn member_defaults(
        &self,
        group_id: &str,
        member_id: &str,
    ) -> Option<(Vec<String>, String, super::assignor::TopicPartitionSet)> {
        let h = self.shard_for(group_id, false).await.ok()?;
        let shard = h.lock();
        let m = shard.group(group_id)?.membership.member(member_id)?;
        let (names, pattern) = match &m.subscription {
            super::member::Subscription::Topics(t) => (t.iter().cloned().collect(), String::new()),
            super::member::Subscription::Pattern { source, .. } => (Vec::new(), source.clone()),
        };
        Some((names, pattern, m.assigned.clone()))
    }

    /// Whether the group has KIP-848 members (a group is of one kind at a
    /// time: classic joins are refused meanwhile).
    pub(crate) async fn consumer_group_is_active(&self, group_id: &str) -> bool {
        let Ok(h) = self.shard_for(group_id, false).await else { return false };
        let shard = h.lock();
        shard.group(group_id).is_some_and(|g| !g.membership.is_empty())
    }

    async fn heartbeat(
        &self,
        group_id: &str,
        hb: &MemberHeartbeat,
        client_host: String,
    ) -> Result<HeartbeatOutcome, BrokerError> {
        validate_group_id(group_id)?;
        let h = self.shard_for(group_id, true).await?;
        let topics = self.topic_partition_counts();
        let ctx = HeartbeatContext {
            now: Instant::now(),
            topics: &topics,
            adoptable: h.loaded_at.elapsed() < ADOPTION_WINDOW,
            client_host,
            new_member_id: uuid::Uuid::new_v4().to_string(),
        };
        let mut shard = h.lock();
        let group = shard.group_mut(group_id);
        let before = group.membership.len();
        let outcome = group.membership.heartbeat(group_id, hb, ctx);
        let after = group.membership.len();
        if after != before || hb.member_epoch == epoch::LEAVE_STATIC {
            tracing::info!(
                group = %group_id,
                member = %outcome.as_ref().map_or(hb.member_id.as_str(), |o| o.member_id.as_str()),
                member_epoch = hb.member_epoch,
                members = after,
                group_epoch = group.membership.group_epoch,
                "group membership changed"
            );
        }
        outcome
    }
}
