//! Runs independent per-partition work (opening or closing thousands of
//! logs) on a few threads at once. That work waits on fsyncs far more than
//! it computes: a broker with 10,000 partitions took 27 s to open its logs
//! and 43 s to close them one at a time, longer than Kubernetes' default
//! 30 s grace period for a stop.

use std::sync::Mutex;

/// Threads that open or close logs at once (Kafka's
/// `num.recovery.threads.per.data.dir`, sized here for fsync-bound work).
pub const LOG_THREADS: usize = 8;

/// `f` applied to every item on up to `threads` threads; results in no
/// particular order. A panic in `f` is re-raised here, as if it ran inline.
pub fn map_unordered<T, R, F>(items: Vec<T>, threads: usize, f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.into_iter().map(f).collect();
    }
    let queue = Mutex::new(items.into_iter());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                let Some(item) = next else { break };
                let r = f(item);
                results.lock().unwrap_or_else(|p| p.into_inner()).push(r);
            });
        }
    });
    results.into_inner().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_mapped_once() {
        for threads in [1, 3, 8, 64] {
            let mut out = map_unordered((0..1000).collect(), threads, |i: u32| i * 2);
            out.sort_unstable();
            assert_eq!(out, (0..1000).map(|i| i * 2).collect::<Vec<_>>());
        }
        assert!(map_unordered(Vec::<u32>::new(), 8, |i| i).is_empty());
    }

    #[test]
    fn a_panic_in_the_work_reaches_the_caller() {
        let r = std::panic::catch_unwind(|| map_unordered((0..100).collect(), 4, |i: u32| assert!(i != 57)));
        assert!(r.is_err());
    }
}
