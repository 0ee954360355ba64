//! The consumer's side of a consumer group (before membership): committed
//! offsets. Every commit (sync, async, auto) goes through one background
//! task in the order it was asked for, so an older commit never lands after
//! a newer one.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot};

use crate::error::ClientError;
use crate::groups::Groups;

/// `(topic, partition)` → next offset to consume.
pub(crate) type Offsets = HashMap<(String, u32), u64>;

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
    offsets: Vec<(String, u32, u64)>,
    reply: Option<oneshot::Sender<Result<(), ClientError>>>,
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
        let (task_groups, task_committed, group) = (groups.clone(), committed.clone(), id.clone());
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                let offsets: Vec<(String, u32, u64, String)> =
                    job.offsets.iter().map(|(t, p, o)| (t.clone(), *p, *o, String::new())).collect();
                let result = task_groups.commit(&group, &offsets).await;
                match &result {
                    Ok(()) => {
                        let mut c = task_committed.lock().unwrap_or_else(|e| e.into_inner());
                        for (t, p, o) in job.offsets {
                            c.insert((t, p), o);
                        }
                    }
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
        GroupState { id, groups, jobs, committed }
    }

    /// Queues a commit; its result arrives through the handle.
    pub(crate) fn commit(&self, offsets: Vec<(String, u32, u64)>) -> CommitHandle {
        let (tx, rx) = oneshot::channel();
        if self.jobs.send(CommitJob { offsets, reply: Some(tx) }).is_err() {
            return CommitHandle::ready(Err(ClientError::Closed));
        }
        CommitHandle { rx }
    }

    /// Queues a commit whose failure is only logged (auto-commit).
    pub(crate) fn commit_in_background(&self, offsets: Vec<(String, u32, u64)>) {
        let _ = self.jobs.send(CommitJob { offsets, reply: None });
    }

    /// Notes offsets known to be committed.
    pub(crate) fn note_committed(&self, offsets: impl IntoIterator<Item = ((String, u32), u64)>) {
        self.committed.lock().unwrap_or_else(|e| e.into_inner()).extend(offsets);
    }

    /// Of `positions`, those that differ from what is known committed.
    pub(crate) fn changed(&self, positions: Vec<(String, u32, u64)>) -> Vec<(String, u32, u64)> {
        let committed = self.committed.lock().unwrap_or_else(|e| e.into_inner());
        positions.into_iter().filter(|(t, p, o)| committed.get(&(t.clone(), *p)) != Some(o)).collect()
    }
}
