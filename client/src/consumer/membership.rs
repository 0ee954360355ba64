//! Group membership, the background part (Kafka's KIP-848 consumer
//! protocol): one task per subscribed consumer sends `ConsumerGroupHeartbeat`
//! to the group's coordinator and keeps the state the consumer reconciles
//! against (member id, epoch, the latest assignment, losses, fatal errors).
//!
//! The task never touches the consumer's partitions: the application's
//! calls (`poll`, `stream`, `close`) compare what the consumer owns with the
//! latest assignment, revoke and assign (see `reconcile.rs`), report the
//! partitions they now own here and wake the task, which then heartbeats at
//! once (a prompt report is what keeps a rebalance short: the coordinator
//! hands a partition to its new owner only after the old one reported it
//! gave it up). Otherwise it heartbeats at the interval the coordinator asks.
//!
//! Errors: UNKNOWN_MEMBER_ID / FENCED_MEMBER_EPOCH mean the member lost its
//! partitions: the loss is recorded (the consumer drops them without
//! committing) and the task rejoins (epoch 0; a static member with its
//! instance id, which gets its partitions back). Coordinator moves and lost
//! connections are retried with the same member id and epoch (a new
//! coordinator adopts the member). After a whole session timeout without a
//! successful heartbeat the member fences itself the same way (the
//! coordinator has evicted it by then: a zombie must not keep reading).
//! Anything else non-retriable (a bad regular expression, an unknown
//! assignor, a full group...) is fatal and surfaces from `poll`.
//!
//! The task ends when the consumer leaves (epoch -1, or -2 for a static
//! member whose partitions stay reserved until its session timeout), on a
//! fatal error, or when the consumer is dropped (the task is aborted without
//! leaving: to the coordinator that is a crash, detected by the session
//! timeout).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use strata_protocol::v1::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, ErrorCode, TopicPartitions};
use tokio::sync::{oneshot, watch, Notify};
use tokio::task::JoinHandle;

use strata_record::TopicPartition;

use super::reconcile::Tp;
use crate::connection::call;
use crate::error::ClientError;
use crate::groups::Groups;

/// Member epoch that leaves the group (partitions reassigned at once).
const LEAVE_EPOCH: i32 = -1;
/// Member epoch a static member leaves with (partitions kept for it until
/// its session timeout).
const STATIC_LEAVE_EPOCH: i32 = -2;
const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Longest `leave` keeps retrying a coordinator that moved or is away.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the member subscribes to (sent in full on every heartbeat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subscription {
    /// These topics.
    Topics(Vec<String>),
    /// Every topic whose whole name matches this regular expression
    /// (evaluated by the coordinator, so topics created later join in).
    Pattern(String),
}

/// The member's settings, from the consumer's config.
#[derive(Debug, Clone)]
pub(crate) struct MemberConfig {
    pub group: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub assignor: Option<String>,
    pub request_timeout: Duration,
}

/// The state the task and the consumer share.
#[derive(Debug)]
struct State {
    subscription: Subscription,
    /// Given by the coordinator on join; empty while (re)joining.
    member_id: String,
    /// The latest epoch received; 0 while (re)joining.
    member_epoch: i32,
    /// The latest complete assignment received, sorted; `None` before the
    /// first (and after a loss, until the rejoin's).
    target: Option<Vec<Tp>>,
    /// What the consumer reported owning (sent on every heartbeat).
    owned: Vec<Tp>,
    /// Bumped on every loss: the consumer drops what it owns without
    /// committing when it sees a new one.
    lost_generation: u64,
    /// A fatal error: the task has stopped.
    fatal: Option<ClientError>,
    /// The task has ended (left, failed).
    stopped: bool,
    /// A leave the consumer asked for: the epoch to send and who waits.
    leave: Option<(i32, oneshot::Sender<Result<(), ClientError>>)>,
    /// When to heartbeat again.
    interval: Duration,
    /// The coordinator said the member is still moving (its assignment will
    /// change without the group changing).
    reconciling: bool,
}

/// The shared part: state, the task's wake-up, and the change counter the
/// consumer watches (bumped when the assignment changes, on a loss and on a
/// fatal error; not on every heartbeat).
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    wake: Notify,
    changes: watch::Sender<u64>,
}

/// What a reconciliation works from.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub member_epoch: i32,
    pub target: Option<Vec<Tp>>,
    pub lost_generation: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn changed(&self) {
        self.changes.send_modify(|v| *v += 1);
    }

    /// The member id, epoch and owned partitions a commit is sent with.
    pub(crate) fn commit_identity(&self) -> (String, i32, Vec<Tp>) {
        let s = self.lock();
        (s.member_id.clone(), s.member_epoch, s.owned.clone())
    }

    /// After a commit was refused with STALE_MEMBER_EPOCH: heartbeats now
    /// and waits (up to `timeout`) for an epoch other than `stale`.
    pub(crate) async fn wait_for_new_epoch(&self, stale: i32, timeout: Duration) {
        self.wake.notify_one();
        let deadline = Instant::now() + timeout;
        while self.lock().member_epoch == stale && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The next heartbeat.
    fn request(&self, config: &MemberConfig) -> ConsumerGroupHeartbeatRequest {
        let s = self.lock();
        let (topics, regex) = match &s.subscription {
            Subscription::Topics(t) => (t.clone(), String::new()),
            Subscription::Pattern(p) => (Vec::new(), p.clone()),
        };
        ConsumerGroupHeartbeatRequest {
            group_id: config.group.clone(),
            member_id: s.member_id.clone(),
            member_epoch: s.member_epoch,
            instance_id: config.instance_id.clone().unwrap_or_default(),
            client_id: config.client_id.clone(),
            session_timeout_ms: millis(config.session_timeout),
            rebalance_timeout_ms: millis(config.rebalance_timeout),
            subscribed_topic_names: topics,
            subscribed_topic_regex: regex,
            server_assignor: config.assignor.clone().unwrap_or_default(),
            // Partitions of the latest assignment the consumer has not
            // taken yet count as owned: it may take them any moment, so the
            // coordinator must not hand them to another member meanwhile.
            owned_partitions: topic_partitions(&owned_or_pending(&s.owned, s.target.as_deref())),
        }
    }

    /// A successful heartbeat's answer.
    fn apply(&self, r: ConsumerGroupHeartbeatResponse, config: &MemberConfig) {
        let mut target: Vec<Tp> = r
            .assignment
            .into_iter()
            .flat_map(|tp| tp.partitions.into_iter().map(move |p| TopicPartition::of(tp.topic.clone(), p)))
            .collect();
        target.sort();
        target.dedup();
        let mut s = self.lock();
        if !r.member_id.is_empty() && r.member_id != s.member_id {
            tracing::info!(group = %config.group, member = %r.member_id, epoch = r.member_epoch, "joined the group");
            s.member_id = r.member_id;
        }
        let new_epoch = s.member_epoch != r.member_epoch;
        s.member_epoch = r.member_epoch;
        s.reconciling = r.reconciling;
        s.interval = match r.heartbeat_interval_ms {
            0 => config.session_timeout / 3,
            ms => Duration::from_millis(u64::from(ms)),
        };
        let new_target = s.target.as_ref() != Some(&target);
        if new_target {
            tracing::debug!(group = %config.group, epoch = s.member_epoch, ?target, "new assignment");
            s.target = Some(target);
        }
        drop(s);
        if new_target || new_epoch {
            self.changed();
        }
    }

    /// The member lost its partitions: the consumer drops them without
    /// committing, and the task rejoins as a new member.
    fn lose(&self, config: &MemberConfig, why: &str) {
        let mut s = self.lock();
        tracing::warn!(
            group = %config.group, member = %s.member_id, epoch = s.member_epoch, owned = s.owned.len(),
            "lost the group's partitions ({why}): rejoining"
        );
        s.member_id.clear();
        s.member_epoch = 0;
        s.target = None;
        s.owned.clear();
        s.lost_generation += 1;
        drop(s);
        self.changed();
    }

    /// A fatal error: recorded for `poll`; the task stops.
    fn fail(&self, err: ClientError) {
        let mut s = self.lock();
        tracing::error!(error = %err, "group membership failed");
        s.fatal = Some(err);
        s.stopped = true;
        if let Some((_, reply)) = s.leave.take() {
            let _ = reply.send(Ok(()));
        }
        drop(s);
        self.changed();
    }
}

/// What a heartbeat reports owning: `owned` plus every partition of the
/// latest assignment received (`target`) that the consumer has not taken
/// yet, sorted.
fn owned_or_pending(owned: &[Tp], target: Option<&[Tp]>) -> Vec<Tp> {
    let mut all: Vec<Tp> = owned.iter().chain(target.unwrap_or_default()).cloned().collect();
    all.sort();
    all.dedup();
    all
}

/// The consumer's handle on its membership; dropping it stops the task
/// without leaving the group.
#[derive(Debug)]
pub(crate) struct Membership {
    shared: Arc<Shared>,
    changes: watch::Receiver<u64>,
    task: JoinHandle<()>,
    leave_epoch: i32,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Membership {
    /// Starts the heartbeat task; it joins at once.
    pub(crate) fn start(config: MemberConfig, subscription: Subscription, groups: Arc<Groups>) -> Membership {
        let state = State {
            subscription,
            member_id: String::new(),
            member_epoch: 0,
            target: None,
            owned: Vec::new(),
            lost_generation: 0,
            fatal: None,
            stopped: false,
            leave: None,
            interval: config.session_timeout / 3,
            reconciling: true,
        };
        let (changes_tx, changes) = watch::channel(0);
        let shared = Arc::new(Shared { state: Mutex::new(state), wake: Notify::new(), changes: changes_tx });
        let leave_epoch = if config.instance_id.is_some() { STATIC_LEAVE_EPOCH } else { LEAVE_EPOCH };
        let task = tokio::spawn(run(shared.clone(), groups, config));
        Membership { shared, changes, task, leave_epoch }
    }

    /// The shared state (for the committer).
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Replaces the subscription (sent with the next heartbeat, now).
    pub(crate) fn set_subscription(&self, subscription: Subscription) {
        let mut s = self.shared.lock();
        if s.subscription != subscription {
            s.subscription = subscription;
            drop(s);
            self.shared.wake.notify_one();
        }
    }

    /// Whether something happened since the last `snapshot`.
    pub(crate) fn has_changed(&self) -> bool {
        self.changes.has_changed().unwrap_or(false)
    }

    /// A receiver that wakes on the next change (to wait without holding
    /// the consumer).
    pub(crate) fn watch(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// The state to reconcile against (marks the changes seen).
    pub(crate) fn snapshot(&mut self) -> Snapshot {
        self.changes.borrow_and_update();
        let s = self.shared.lock();
        Snapshot { member_epoch: s.member_epoch, target: s.target.clone(), lost_generation: s.lost_generation }
    }

    /// Whether the coordinator's latest answer gave the member its whole
    /// target (nothing left to give up or to wait for).
    pub(crate) fn settled(&self) -> bool {
        let s = self.shared.lock();
        s.target.is_some() && !s.reconciling && s.fatal.is_none()
    }

    /// The fatal error the membership stopped on, if any.
    pub(crate) fn fatal(&self) -> Option<ClientError> {
        self.shared.lock().fatal.clone()
    }

    /// The member id and epoch (empty and 0 while joining).
    pub(crate) fn identity(&self) -> (String, i32) {
        let s = self.shared.lock();
        (s.member_id.clone(), s.member_epoch)
    }

    /// Reports what the consumer owns now, reconciled against the state of
    /// `lost_generation`, and heartbeats at once if that changed. Ignored
    /// when a loss happened meanwhile (those partitions are gone anyway).
    pub(crate) fn report_owned(&self, lost_generation: u64, owned: Vec<Tp>) {
        let mut s = self.shared.lock();
        if s.lost_generation != lost_generation || s.owned == owned {
            return;
        }
        s.owned = owned;
        drop(s);
        self.shared.wake.notify_one();
    }

    /// Leaves the group (epoch -1; -2 for a static member) once the task
    /// finished its current heartbeat; the task then ends.
    pub(crate) async fn leave(&mut self) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut s = self.shared.lock();
            if s.stopped {
                return Ok(());
            }
            s.leave = Some((self.leave_epoch, tx));
        }
        self.shared.wake.notify_one();
        rx.await.unwrap_or(Ok(()))
    }
}

/// The heartbeat loop (see the module docs).
async fn run(shared: Arc<Shared>, groups: Arc<Groups>, config: MemberConfig) {
    let mut next = Instant::now();
    let mut backoff = BACKOFF_START;
    // When the last heartbeat succeeded, while the member holds a member id.
    let mut last_ok: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()) => {}
            _ = shared.wake.notified() => {}
        }
        let leave = shared.lock().leave.take();
        if let Some((epoch, reply)) = leave {
            let result = leave_group(&shared, &groups, &config, epoch).await;
            shared.lock().stopped = true;
            let _ = reply.send(result);
            return;
        }
        let request = shared.request(&config);
        match heartbeat(&groups, &config, request).await {
            Ok(response) => {
                shared.apply(response, &config);
                last_ok = Some(Instant::now());
                backoff = BACKOFF_START;
                next = Instant::now() + shared.lock().interval;
            }
            Err(e) => {
                match e.code() {
                    Some(ErrorCode::UnknownMemberId | ErrorCode::FencedMemberEpoch) => {
                        shared.lose(&config, &e.to_string());
                        last_ok = None;
                    }
                    _ if is_retriable(&e) => {
                        if e.code() == Some(ErrorCode::UnreleasedInstanceId) {
                            tracing::warn!(group = %config.group, error = %e, "cannot join yet: retrying");
                        } else {
                            tracing::debug!(group = %config.group, error = %e, "heartbeat failed: retrying");
                        }
                        if last_ok.is_some_and(|t| t.elapsed() >= config.session_timeout) {
                            let why = format!("no heartbeat succeeded for the session timeout; last error: {e}");
                            shared.lose(&config, &why);
                            last_ok = None;
                        }
                    }
                    _ => {
                        shared.fail(e);
                        return;
                    }
                }
                next = Instant::now() + backoff;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Errors a heartbeat is retried after (same member id and epoch).
fn is_retriable(e: &ClientError) -> bool {
    e.is_retriable()
        || matches!(
            e.code(),
            // An instance id still held by a restarted static member's old
            // incarnation is released once that one goes quiet.
            Some(ErrorCode::UnknownServerError | ErrorCode::RequestTimedOut | ErrorCode::UnreleasedInstanceId)
        )
}

/// One heartbeat to the coordinator; the response's error as `Err`.
async fn heartbeat(
    groups: &Groups,
    config: &MemberConfig,
    request: ConsumerGroupHeartbeatRequest,
) -> Result<ConsumerGroupHeartbeatResponse, ClientError> {
    let timeout = config.request_timeout.min(config.session_timeout).max(Duration::from_millis(100));
    // The whole attempt (finding the coordinator included) is bounded, so a
    // member cut off from its coordinator notices within about a session
    // and fences itself.
    let attempt = async {
        let mut client = groups.coordinator_client(&config.group).await?;
        let response = call("ConsumerGroupHeartbeat", timeout, client.consumer_group_heartbeat(request)).await?;
        match ClientError::from_api(response.error.as_ref()) {
            Some(ClientError::Server { code, message }) => Err(ClientError::server(
                code,
                if message.contains(&format!("'{}'", config.group)) {
                    message
                } else {
                    format!("group '{}': {message}", config.group)
                },
            )),
            Some(e) => Err(e),
            None => Ok(response),
        }
    };
    let result = tokio::time::timeout(timeout, attempt).await.unwrap_or_else(|_| {
        Err(ClientError::Timeout(format!("group '{}': no heartbeat answer within {timeout:?}", config.group)))
    });
    if let Err(e) = &result {
        groups.coordinator_failed(&config.group, e).await;
    }
    result
}

/// Sends the leave heartbeat, retrying coordinator moves for a while. A
/// member the coordinator no longer knows has left already.
async fn leave_group(shared: &Shared, groups: &Groups, config: &MemberConfig, epoch: i32) -> Result<(), ClientError> {
    let mut request = shared.request(config);
    if request.member_id.is_empty() {
        return Ok(());
    }
    request.member_epoch = epoch;
    request.owned_partitions.clear();
    let started = Instant::now();
    let mut backoff = BACKOFF_START;
    loop {
        match heartbeat(groups, config, request.clone()).await {
            Ok(_) => {
                tracing::info!(group = %config.group, member = %request.member_id, epoch, "left the group");
                return Ok(());
            }
            Err(e) if matches!(e.code(), Some(ErrorCode::UnknownMemberId | ErrorCode::FencedMemberEpoch)) => {
                return Ok(())
            }
            Err(e) if is_retriable(&e) && started.elapsed() + backoff < LEAVE_TIMEOUT => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            Err(e) => return Err(e),
        }
    }
}

/// `(topic, partition)`s grouped per topic, as the protocol lists them.
fn topic_partitions(tps: &[Tp]) -> Vec<TopicPartitions> {
    let mut out: Vec<TopicPartitions> = Vec::new();
    for TopicPartition { topic, partition: p } in tps {
        match out.iter_mut().find(|tp| &tp.topic == topic) {
            Some(tp) => tp.partitions.push(*p),
            None => out.push(TopicPartitions { topic: topic.clone(), partitions: vec![*p] }),
        }
    }
    out
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_report_partitions_assigned_but_not_yet_taken() {
        let tp = |p: u32| TopicPartition::of("t", p);
        assert_eq!(owned_or_pending(&[tp(1), tp(0)], Some(&[tp(2), tp(1)])), [tp(0), tp(1), tp(2)]);
        assert_eq!(owned_or_pending(&[tp(0)], None), [tp(0)]);
    }

    #[test]
    fn owned_partitions_are_grouped_per_topic() {
        let tps = vec![TopicPartition::of("a", 0), TopicPartition::of("b", 2), TopicPartition::of("a", 3)];
        let got = topic_partitions(&tps);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].topic.as_str(), got[0].partitions.clone()), ("a", vec![0, 3]));
        assert_eq!((got[1].topic.as_str(), got[1].partitions.clone()), ("b", vec![2]));
    }

    #[test]
    fn member_errors_rejoin_coordinator_errors_retry_others_are_fatal() {
        let fatal = |c| !is_retriable(&ClientError::server(c, "x"));
        assert!(!fatal(ErrorCode::NotCoordinator));
        assert!(!fatal(ErrorCode::CoordinatorNotAvailable));
        assert!(!fatal(ErrorCode::CoordinatorLoadInProgress));
        assert!(is_retriable(&ClientError::Timeout("x".into())));
        for c in [
            ErrorCode::InvalidRegularExpression,
            ErrorCode::UnsupportedAssignor,
            ErrorCode::InvalidGroupId,
            ErrorCode::GroupMaxSizeReached,
        ] {
            assert!(fatal(c), "{c:?}");
        }
    }
}
