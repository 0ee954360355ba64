//! Blocking work inside a request handler — reading a cold segment, whose
//! page faults wait on the disk — without stalling the other connections
//! the same async worker serves.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `f` in place, after handing this worker's other tasks to another
/// worker (`block_in_place`) on a multi-threaded runtime; on a
/// current-thread runtime (some tests) there is no other worker and `f`
/// simply runs.
pub(crate) fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}
