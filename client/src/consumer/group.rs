//! The consumer's committed offsets. Every commit (sync, async, auto, on
//! revocation) goes through one background task in the order it was asked
//! for, so an older commit never lands after a newer one.
//!
//! A subscribed consumer (group member) commits as its member id at its
//! current epoch, read when the commit is sent, and only partitions it owns
//! then (a partition it gave up or lost may be another member's already).
//! STALE_MEMBER_EPOCH (the coordinator moved the member to a newer epoch
//! the heartbeat has not brought yet) is retried once, with the new epoch,
//! for the partitions still owned.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use strata_record::TopicPartition;

use strata_protocol::v1::ErrorCode;
use tokio::sync::{mpsc, oneshot};

use super::membership::Shared;
use super::reconcile::{owned_only, stale_epoch_retry};
use crate::error::ClientError;
use crate::groups::Groups;
use crate::PartitionOffset;

/// How long a commit refused with STALE_MEMBER_EPOCH waits for the
/// heartbeat to bring the member's new epoch before its one retry.
const NEW_EPOCH_WAIT: Duration = Duration::from_secs(3);

/// `(topic, partition)` → next offset to consume.
pub(crate) type Offsets = HashMap<TopicPartition, u64>;

/// The outcome of a commit started with `Consumer::commit_async`: await it
/// for the result (dropping it does not cancel the commit; a failure is
/// then only logged).
///
/// # Example
///
/// ```no_run
/// # async fn run(mut consumer: strata_client::Consumer) -> Result<(), strata_client::ClientError> {
/// let records = consumer.poll().await?;
/// let commit = consumer.commit_async();
/// // ... process `records` meanwhile ...
/// commit.await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct CommitHandle {
    rx: oneshot::Receiver<Result<(), ClientError>>,
}

impl CommitHandle {
    /// A handle already resolved to `result`.
    pub(crate) fn ready(result: Result<(), ClientError>) -> CommitHandle {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(result);
        CommitHandle { rx }
    }
}

impl Future for CommitHandle {
    type Output = Result<(), ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx).map(|r| r.unwrap_or(Err(ClientError::Closed)))
    }
}

struct CommitJob {
    offsets: Vec<PartitionOffset>,
    reply: Option<oneshot::Sender<Result<(), ClientError>>>,
    /// The member id when the commit was asked for (a member's commit).
    member_id: Option<String>,
}

/// A consumer's group: its id, the committer task and what was committed.
#[derive(Debug)]
pub(crate) struct GroupState {
    pub id: String,
    pub groups: Arc<Groups>,
    jobs: mpsc::UnboundedSender<CommitJob>,
    /// Offsets the group is known to have committed (by this consumer's
    /// successful commits, or fetched when a partition started from them).
    committed: Arc<Mutex<Offsets>>,
    /// The membership of a subscribed consumer: commits carry its member id
    /// and epoch and only its owned partitions.
    member: Arc<Mutex<Option<Arc<Shared>>>>,
}

impl std::fmt::Debug for CommitJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitJob").field("offsets", &self.offsets).finish_non_exhaustive()
    }
}

impl GroupState {
    /// Starts the committer task of `group` (it ends once the consumer is
    /// dropped and every queued commit is done).
    pub(crate) fn start(id: String, groups: Arc<Groups>) -> GroupState {
        let (jobs, mut rx) = mpsc::unbounded_channel::<CommitJob>();
        let committed: Arc<Mutex<Offsets>> = Arc::default();
        let member: Arc<Mutex<Option<Arc<Shared>>>> = Arc::default();
        let (task_groups, task_committed, task_member, group) =
            (groups.clone(), committed.clone(), member.clone(), id.clone());
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                let member = task_member.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let result = match member {
                    None => task_groups.commit(&group, &job.offsets).await.map(|()| job.offsets),
                    Some(member) => {
                        let asked_as = job.member_id.as_deref().unwrap_or_default();
                        commit_as_member(&task_groups, &group, &member, asked_as, job.offsets).await
                    }
                };
                let result = match result {
                    Ok(done) => {
                        let mut c = task_committed.lock().unwrap_or_else(|e| e.into_inner());
                        c.extend(done.into_iter().map(|o| (o.tp, o.offset)));
                        Ok(())
                    }
                    Err(e) => Err(e),
                };
                match &result {
                    Ok(()) => {}
                    Err(e) if job.reply.is_none() => {
                        tracing::warn!(group = %group, error = %e, "offset auto-commit failed")
                    }
                    Err(e) => tracing::debug!(group = %group, error = %e, "offset commit failed"),
                }
                if let Some(reply) = job.reply {
                    let _ = reply.send(result);
                }
            }
        });
        GroupState { id, groups, jobs, committed, member }
    }

    /// The member id now, for a member.
    fn member_id(&self) -> Option<String> {
        let member = self.member.lock().unwrap_or_else(|e| e.into_inner());
        member.as_ref().map(|m| m.commit_identity().0)
    }

    /// Makes commits member commits (`Some`) or standalone ones (`None`).
    pub(crate) fn set_member(&self, member: Option<Arc<Shared>>) {
        *self.member.lock().unwrap_or_else(|e| e.into_inner()) = member;
    }

    /// Queues a commit; its result arrives through the handle.
    pub(crate) fn commit(&self, offsets: Vec<PartitionOffset>) -> CommitHandle {
        let (tx, rx) = oneshot::channel();
        if self.jobs.send(CommitJob { offsets, reply: Some(tx), member_id: self.member_id() }).is_err() {
            return CommitHandle::ready(Err(ClientError::Closed));
        }
        CommitHandle { rx }
    }

    /// Queues a commit whose failure is only logged (auto-commit).
    pub(crate) fn commit_in_background(&self, offsets: Vec<PartitionOffset>) {
        let _ = self.jobs.send(CommitJob { offsets, reply: None, member_id: self.member_id() });
    }

    /// Notes offsets known to be committed.
    pub(crate) fn note_committed(&self, offsets: impl IntoIterator<Item = (TopicPartition, u64)>) {
        self.committed.lock().unwrap_or_else(|e| e.into_inner()).extend(offsets);
    }

    /// Of `positions`, those that differ from what is known committed.
    pub(crate) fn changed(&self, positions: Vec<PartitionOffset>) -> Vec<PartitionOffset> {
        let committed = self.committed.lock().unwrap_or_else(|e| e.into_inner());
        positions.into_iter().filter(|o| committed.get(&o.tp) != Some(&o.offset)).collect()
    }
}

/// Commits `offsets`, asked for as member `asked_as`, as the member (see
/// the module docs); returns what was committed. Nothing is committed if
/// the member lost its partitions and rejoined since (its positions are
/// void: the partitions started over from the committed offsets).
async fn commit_as_member(
    groups: &Groups,
    group: &str,
    member: &Shared,
    asked_as: &str,
    offsets: Vec<PartitionOffset>,
) -> Result<Vec<PartitionOffset>, ClientError> {
    let (member_id, mut epoch, owned) = member.commit_identity();
    if !asked_as.is_empty() && asked_as != member_id {
        tracing::debug!(group, asked_as, member_id, "not committing positions of a member that rejoined since");
        return Ok(Vec::new());
    }
    let (mut offsets, not_owned) = owned_only(offsets, &owned);
    if !not_owned.is_empty() {
        tracing::debug!(group, ?not_owned, "not committing partitions this member no longer owns");
    }
    let mut retried = false;
    loop {
        if offsets.is_empty() {
            return Ok(offsets);
        }
        match groups.commit_as(group, &member_id, epoch, &offsets).await {
            Ok(()) => return Ok(offsets),
            Err(e) if e.code() == Some(ErrorCode::StaleMemberEpoch) => {
                member.wait_for_new_epoch(epoch, NEW_EPOCH_WAIT).await;
                let (now_id, now_epoch, now_owned) = member.commit_identity();
                match stale_epoch_retry(&offsets, retried, &member_id, &now_id, &now_owned) {
                    Some(still_owned) => {
                        tracing::debug!(
                            group,
                            stale = epoch,
                            epoch = now_epoch,
                            "retrying a commit with the new epoch"
                        );
                        offsets = still_owned;
                        epoch = now_epoch;
                        retried = true;
                    }
                    None => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
}
