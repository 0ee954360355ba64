//! A node's tasks as one tree: every long-running task is spawned into a
//! named [`TaskGroup`] whose cancellation token is a child of the node's
//! root token. Shutdown stops the groups one at a time in the order the
//! server chooses (what depends on a thing stops before it), and a task
//! that ends on its own before shutdown — a listener that failed — is seen
//! at once instead of when the process is asked to stop.

use std::future::Future;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Why a supervised task failed (kept whole, so a report prints its chain).
pub(crate) type TaskError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a supervised task ended with: its name, and its error if it failed.
pub(crate) type TaskEnd = (&'static str, Result<(), TaskError>);

/// A set of named tasks stopped together.
#[derive(Debug)]
pub(crate) struct TaskGroup {
    name: &'static str,
    token: CancellationToken,
    tasks: JoinSet<TaskEnd>,
}

impl TaskGroup {
    /// An empty group under `parent` (cancelling the parent cancels it).
    pub(crate) fn new(name: &'static str, parent: &CancellationToken) -> Self {
        TaskGroup { name, token: parent.child_token(), tasks: JoinSet::new() }
    }

    /// The token this group's tasks stop on.
    pub(crate) fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Spawns a task that runs until it finishes or the group's token is
    /// cancelled (the task watches the token itself).
    pub(crate) fn spawn<F>(&mut self, task: &'static str, fut: F)
    where
        F: Future<Output = Result<(), TaskError>> + Send + 'static,
    {
        tracing::debug!(group = self.name, task, "starting task");
        self.tasks.spawn(async move { (task, fut.await) });
    }

    /// Spawns a task that cannot fail.
    pub(crate) fn spawn_infallible<F>(&mut self, task: &'static str, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawn(task, async move {
            fut.await;
            Ok(())
        });
    }

    /// Resolves when one of this group's tasks ends (never, while it has
    /// none running); the caller decides whether that ends the node.
    pub(crate) async fn next_exit(&mut self) -> TaskEnd {
        match self.tasks.join_next().await {
            Some(joined) => joined.unwrap_or_else(|e| ("(panicked task)", Err(e.into()))),
            None => std::future::pending().await,
        }
    }

    /// Cancels the group and waits for every task; returns the failures,
    /// each named, after logging them.
    pub(crate) async fn stop(mut self) -> Vec<(&'static str, TaskError)> {
        self.token.cancel();
        let mut failures = Vec::new();
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok((task, Ok(()))) => tracing::debug!(group = self.name, task, "task stopped"),
                Ok((task, Err(e))) => {
                    tracing::error!(group = self.name, task, error = %strata_record::ErrorChain(&*e), "task failed");
                    failures.push((task, e));
                }
                Err(e) => {
                    tracing::error!(group = self.name, error = %e, "task panicked");
                    failures.push(("(panicked task)", e.into()));
                }
            }
        }
        failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_cancels_every_task_and_names_the_failures() {
        let root = CancellationToken::new();
        let mut group = TaskGroup::new("test", &root);
        let t = group.token();
        group.spawn_infallible("waits", async move { t.cancelled().await });
        let t = group.token();
        group.spawn("fails at stop", async move {
            t.cancelled().await;
            Err("boom".into())
        });
        let failures = tokio::time::timeout(std::time::Duration::from_secs(5), group.stop()).await.unwrap();
        let failures: Vec<(&str, String)> = failures.into_iter().map(|(t, e)| (t, e.to_string())).collect();
        assert_eq!(failures, vec![("fails at stop", "boom".to_string())]);
        assert!(!root.is_cancelled(), "stopping a group must not cancel its parent");
    }

    #[tokio::test]
    async fn cancelling_the_root_reaches_every_group() {
        let root = CancellationToken::new();
        let a = TaskGroup::new("a", &root);
        let b = TaskGroup::new("b", &root);
        root.cancel();
        assert!(a.token().is_cancelled() && b.token().is_cancelled());
    }

    #[tokio::test]
    async fn a_task_that_ends_early_is_reported() {
        let root = CancellationToken::new();
        let mut group = TaskGroup::new("serving", &root);
        group.spawn("listener", async { Err("address in use".into()) });
        let (task, result) = group.next_exit().await;
        assert_eq!((task, result.map_err(|e| e.to_string())), ("listener", Err("address in use".to_string())));
    }
}
