//! The consumer as a group member: `subscribe`, the rebalance listener, and
//! the reconciliation the application's calls run (`poll`, `stream`,
//! `close`): revoke what the coordinator took away (commit, callback, stop),
//! take what it gave (committed offsets, callback), drop what was lost
//! (callback, no commit), then report the owned partitions to the heartbeat
//! task (`membership.rs`), which heartbeats at once.

use std::sync::Mutex;
use strata_record::TopicPartition;

use super::membership::{MemberConfig, Membership, Subscription};
use super::reconcile::{self, Tp};
use super::Consumer;
use crate::error::ClientError;
use crate::PartitionOffset;

/// Callbacks on partition ownership changes of a subscribed consumer
/// (Kafka's `ConsumerRebalanceListener`). They run inside the consumer's
/// own calls (`poll`, `stream`, `unsubscribe`, `close`), never on another
/// thread, so a callback sees the consumer's state as of that call. Each
/// has a do-nothing default.
///
/// # Example
///
/// ```no_run
/// use strata_client::{Consumer, ConsumerConfig, RebalanceListener, TopicPartition};
///
/// struct Log;
/// impl RebalanceListener for Log {
///     fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
///         println!("now reading {partitions:?}");
///     }
///     fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
///         println!("giving up {partitions:?} (positions committed)");
///     }
/// }
///
/// # async fn run() -> Result<(), strata_client::ClientError> {
/// let config = ConsumerConfig { group_id: Some("billing".into()), ..ConsumerConfig::new(["127.0.0.1:9700"]) };
/// let mut consumer = Consumer::connect(config).await?;
/// consumer.set_rebalance_listener(Box::new(Log));
/// consumer.subscribe(["events"])?;
/// loop {
///     for record in consumer.poll().await? {
///         println!("{}-{}@{}", record.topic, record.partition, record.offset);
///     }
/// }
/// # }
/// ```
pub trait RebalanceListener {
    /// The group moved these partitions to other members. Called after
    /// their positions were committed (with `enable_auto_commit`) and
    /// before the coordinator is told they are given up; also for every
    /// owned partition on `unsubscribe` and `close`.
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }

    /// The group gave these partitions to this consumer; they start at the
    /// group's committed offsets (else per `auto_offset_reset`).
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }

    /// The consumer lost these partitions without giving them up: it was
    /// fenced or evicted by the coordinator, or cut off from it for a whole
    /// session timeout. Another member may own them already, so nothing was
    /// committed; records handed out since the last commit will be read
    /// again by the new owner.
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }
}

/// The consumer's listener, if any (a mutex only so the consumer stays
/// `Sync`; it is used from `&mut self` calls).
#[derive(Default)]
pub(super) struct Listener(Mutex<Option<Box<dyn RebalanceListener + Send>>>);

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = self.0.lock().map(|l| l.is_some()).unwrap_or(false);
        f.debug_tuple("Listener").field(&if set { "set" } else { "none" }).finish()
    }
}

impl Listener {
    fn call(&mut self, f: impl FnOnce(&mut dyn RebalanceListener)) {
        if let Some(l) = self.0.get_mut().unwrap_or_else(|e| e.into_inner()).as_mut() {
            f(l.as_mut());
        }
    }
}

impl Consumer {
    /// Joins the consumer group (`ConsumerConfig::group_id`, required) and
    /// reads the partitions of `topics` its coordinator assigns to this
    /// consumer: the partitions are shared among the group's members and
    /// move when members come and go. Returns at once; the assignment
    /// arrives with the following `poll`s (which return nothing until it
    /// does). Calling it again replaces the subscription.
    ///
    /// `assign` and `subscribe` are mutually exclusive: this fails on a
    /// consumer with assigned partitions (`assign` of no partitions first).
    pub fn subscribe<I, S>(&mut self, topics: I) -> Result<(), ClientError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut topics: Vec<String> = topics.into_iter().map(Into::into).collect();
        topics.sort();
        topics.dedup();
        if topics.is_empty() || topics.iter().any(|t| t.trim().is_empty()) {
            return Err(ClientError::InvalidArgument(
                "subscribe needs one or more non-empty topic names (unsubscribe() leaves the group)".into(),
            ));
        }
        self.subscribe_to(Subscription::Topics(topics))
    }

    /// As [`Consumer::subscribe`], for every topic whose whole name matches
    /// the regular expression `pattern` (e.g. `"orders-.*"`), evaluated by
    /// the coordinator: topics created later that match are assigned too.
    /// An expression the coordinator cannot compile fails the next `poll`
    /// with INVALID_REGULAR_EXPRESSION.
    pub fn subscribe_pattern(&mut self, pattern: &str) -> Result<(), ClientError> {
        if pattern.trim().is_empty() {
            return Err(ClientError::InvalidArgument("subscribe_pattern needs a non-empty regular expression".into()));
        }
        self.subscribe_to(Subscription::Pattern(pattern.to_owned()))
    }

    fn subscribe_to(&mut self, subscription: Subscription) -> Result<(), ClientError> {
        if self.closed {
            return Err(ClientError::Closed);
        }
        let Some(group) = &self.group else {
            return Err(ClientError::InvalidArgument(
                "subscribe needs a consumer group (ConsumerConfig::group_id); assign() reads without one".into(),
            ));
        };
        if let Some(m) = &self.membership {
            m.set_subscription(subscription);
            return Ok(());
        }
        if !self.assignment.is_empty() {
            return Err(ClientError::InvalidArgument(format!(
                "subscribe() and assign() are mutually exclusive: this consumer has {} assigned partition(s); \
                 call assign() with no partitions first",
                self.assignment.len()
            )));
        }
        let config = MemberConfig {
            group: group.id.clone(),
            instance_id: self.config.group_instance_id.clone().filter(|i| !i.is_empty()),
            client_id: self.config.client_id.clone(),
            session_timeout: self.config.session_timeout,
            rebalance_timeout: self.config.rebalance_timeout,
            assignor: self.config.group_assignor.clone().filter(|a| !a.is_empty()),
            request_timeout: self.config.request_timeout,
        };
        let membership = Membership::start(config, subscription, group.groups.clone());
        group.set_member(Some(membership.shared().clone()));
        self.membership = Some(membership);
        self.lost_generation = 0;
        self.reconciled_epoch = None;
        Ok(())
    }

    /// Leaves the group: commits the owned partitions' positions (with
    /// `enable_auto_commit`), calls `on_partitions_revoked` for them and
    /// tells the coordinator (a static member's partitions stay reserved
    /// for it until its session timeout). The consumer can then `assign` or
    /// `subscribe` again. On a consumer that is not subscribed, it clears
    /// the assigned partitions.
    pub async fn unsubscribe(&mut self) -> Result<(), ClientError> {
        if self.closed {
            return Err(ClientError::Closed);
        }
        if self.membership.is_none() {
            self.assign(Vec::<TopicPartition>::new());
            return Ok(());
        }
        self.prefetch = None;
        self.leave_group().await
    }

    /// Sets the callbacks run when the group moves partitions (replacing
    /// any earlier listener).
    pub fn set_rebalance_listener(&mut self, listener: Box<dyn RebalanceListener + Send>) {
        *self.listener.0.get_mut().unwrap_or_else(|e| e.into_inner()) = Some(listener);
    }

    /// Whether the consumer is subscribed (a group member).
    pub fn is_subscribed(&self) -> bool {
        self.membership.is_some()
    }

    /// The member id the coordinator gave this consumer (`None` when not
    /// subscribed or while joining).
    pub fn member_id(&self) -> Option<String> {
        let (id, _) = self.membership.as_ref()?.identity();
        (!id.is_empty()).then_some(id)
    }

    /// The member epoch of the assignment this consumer has taken on:
    /// `None` until the first assignment arrived and was applied by a
    /// `poll` (or `stream`), and while it rejoins after losing its
    /// partitions. From then on `assignment()` is the group's assignment
    /// to this member as of that epoch.
    pub fn member_epoch(&self) -> Option<i32> {
        self.membership.as_ref()?;
        self.reconciled_epoch
    }

    /// Whether a subscribed consumer holds exactly what the coordinator
    /// means it to: its latest assignment is taken on and nothing is still
    /// moving (no partition to give up, none waiting to be released by
    /// another member). A tool that reads "to the end" waits for this before
    /// it may stop; `false` for a consumer that is not subscribed.
    pub fn assignment_settled(&self) -> bool {
        self.membership.as_ref().is_some_and(|m| m.settled() && !m.has_changed()) && !self.reconcile_pending
    }

    /// The membership's fatal error, if it failed (reported by every
    /// `poll`).
    pub(super) fn membership_error(&self) -> Option<ClientError> {
        self.membership.as_ref()?.fatal()
    }

    /// Moves the owned partitions to the latest assignment (see the module
    /// docs); a no-op unless the membership changed since the last call.
    pub(super) async fn reconcile(&mut self) -> Result<(), ClientError> {
        if let Some(e) = self.membership_error() {
            return Err(e);
        }
        let Some(membership) = self.membership.as_mut() else { return Ok(()) };
        if !membership.has_changed() && !self.reconcile_pending {
            return Ok(());
        }
        let snapshot = membership.snapshot();
        // Cancel safety: `snapshot` marked the change seen; if this future is
        // dropped during the revocation's commit, the next call redoes it.
        self.reconcile_pending = true;
        let lost = snapshot.lost_generation != self.lost_generation;
        let plan = reconcile::plan(&self.assignment, snapshot.target.as_deref(), lost);
        self.lost_generation = snapshot.lost_generation;
        if !plan.is_empty() {
            tracing::debug!(epoch = snapshot.member_epoch, ?plan, "reconciling the group's assignment");
        }
        if !plan.lost.is_empty() {
            tracing::warn!(partitions = ?plan.lost, "partitions lost: dropped without committing");
            self.drop_partitions(&plan.lost);
            self.listener.call(|l| l.on_partitions_lost(&plan.lost));
        }
        if !plan.revoke.is_empty() {
            self.revoke(&plan.revoke).await;
        }
        if !plan.assign.is_empty() {
            for TopicPartition { topic, .. } in &plan.assign {
                self.cluster.want(topic);
            }
            self.assignment = plan.owned_after(&self.assignment);
            self.listener.call(|l| l.on_partitions_assigned(&plan.assign));
        }
        self.reconciled_epoch = snapshot.target.is_some().then_some(snapshot.member_epoch);
        if let Some(m) = &self.membership {
            m.report_owned(snapshot.lost_generation, self.assignment.clone());
        }
        self.reconcile_pending = false;
        Ok(())
    }

    /// Gives partitions up: commits their positions (with auto-commit; a
    /// failure is logged, the partitions are given up anyway), calls the
    /// listener, stops fetching them.
    async fn revoke(&mut self, partitions: &[Tp]) {
        if let Some(group) = self.group.as_ref().filter(|_| self.config.enable_auto_commit) {
            let offsets: Vec<PartitionOffset> = partitions
                .iter()
                .filter_map(|tp| Some(PartitionOffset::new(tp.clone(), *self.positions.get(tp)?)))
                .collect();
            if let Err(e) = group.commit(group.changed(offsets)).await {
                tracing::warn!(group = %group.id, error = %e, "committing revoked partitions failed");
            }
        }
        self.listener.call(|l| l.on_partitions_revoked(partitions));
        self.drop_partitions(partitions);
    }

    /// Forgets partitions: position, buffered records, pause, prefetches.
    fn drop_partitions(&mut self, partitions: &[Tp]) {
        self.assignment.retain(|tp| !partitions.contains(tp));
        for tp in partitions {
            self.positions.remove(tp);
            self.high_watermarks.remove(tp);
            self.paused.remove(tp);
        }
        self.buffered.retain(|r| !partitions.iter().any(|tp| tp.topic == r.topic && tp.partition == r.partition));
        self.prefetch = None;
    }

    /// Waits up to `max_wait` for the membership to change (a subscribed
    /// consumer that owns nothing yet).
    pub(super) async fn wait_for_change(&self) {
        match &self.membership {
            Some(m) => {
                let mut changes = m.watch();
                let _ = tokio::time::timeout(self.config.max_wait, changes.changed()).await;
            }
            None => tokio::time::sleep(self.config.max_wait).await,
        }
    }

    /// The final steps of a member (`unsubscribe`, `close`): losses are
    /// dropped uncommitted, the owned positions committed (with
    /// auto-commit; else in-flight commits awaited), `on_partitions_revoked`
    /// called, then the leave sent.
    pub(super) async fn leave_group(&mut self) -> Result<(), ClientError> {
        // A fatal membership error does not stop the leave.
        let _ = self.reconcile().await;
        let committed = match &self.group {
            Some(group) if self.config.enable_auto_commit => group.commit(self.current_positions()).await,
            Some(group) => group.commit(Vec::new()).await,
            None => Ok(()),
        };
        let owned = self.assignment.clone();
        if !owned.is_empty() {
            self.listener.call(|l| l.on_partitions_revoked(&owned));
            self.drop_partitions(&owned);
        }
        let left = match self.membership.as_mut() {
            Some(m) => m.leave().await,
            None => Ok(()),
        };
        if let Some(group) = &self.group {
            group.set_member(None);
        }
        self.membership = None;
        self.reconciled_epoch = None;
        committed.and(left)
    }

    /// Refuses a commit of partitions a member does not own.
    pub(super) fn check_owned(&self, offsets: &[PartitionOffset]) -> Result<(), ClientError> {
        if self.membership.is_none() {
            return Ok(());
        }
        match offsets.iter().find(|o| !self.assignment.contains(&o.tp)) {
            Some(o) => Err(ClientError::InvalidArgument(format!(
                "cannot commit {}: the group has not assigned that partition to this consumer (now)",
                o.tp
            ))),
            None => Ok(()),
        }
    }
}
