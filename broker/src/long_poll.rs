//! The wait at the heart of every long poll (consumer and replica fetches):
//! park until a partition signal moves, the deadline passes or the server
//! stops — woken by the signals, never by polling.

use futures::future::select_all;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Waits until one of `watchers` changes (true), or `deadline` passes or
/// `stopping` turns (false). Watchers must be taken before the read they
/// guard, so no change between that read and this wait is missed.
pub(crate) async fn wait_for_change(
    watchers: Vec<watch::Receiver<u64>>,
    deadline: Instant,
    stopping: &CancellationToken,
) -> bool {
    if watchers.is_empty() || stopping.is_cancelled() {
        return false;
    }
    let changes = watchers.into_iter().map(|mut w| Box::pin(async move { w.changed().await }));
    tokio::select! {
        r = tokio::time::timeout_at(deadline, select_all(changes)) => r.is_ok(),
        _ = stopping.cancelled() => false,
    }
}
