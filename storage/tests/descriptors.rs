//! A broker hosts thousands of partitions: each open log may hold one file
//! descriptor (its active segment's), not one per file it uses. Three per
//! log ran a 10,000-partition broker out of descriptors (EMFILE at 20,000).
//!
//! Its own test binary: the descriptor count is the process's, and no
//! other test may open files meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use strata_record::batch::BatchBuilder;
use strata_storage::{FlushPolicy, Log, LogConfig};

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn an_open_log_holds_one_descriptor_through_appends_and_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 8 * 1024,
        index_interval_bytes: 256,
        preallocate_bytes: 4096,
        flush: FlushPolicy::Interval { interval_ms: 3_600_000 },
        ..LogConfig::default()
    };
    const LOGS: usize = 200;
    let before = open_descriptors();
    let mut logs = Vec::new();
    for i in 0..LOGS {
        let log = Log::open(dir.path().join(format!("t-{i}")), config.clone()).unwrap();
        // Enough batches to roll a few segments (sealed ones hold none).
        for n in 0..20 {
            let mut b = BatchBuilder::new();
            b.append(0, None, Some(&[n as u8; 1000][..]), &[]).unwrap();
            log.append(&b.build().unwrap(), 0).unwrap();
        }
        assert!(log.segment_count() > 1);
        logs.push(log);
    }
    let held = open_descriptors() - before;
    assert!(held <= LOGS + 8, "{LOGS} open logs hold {held} descriptors");
    for log in logs {
        log.close().unwrap();
    }
    // Reopened after a clean shutdown: the same bound.
    let mut logs = Vec::new();
    for i in 0..LOGS {
        logs.push(Log::open(dir.path().join(format!("t-{i}")), config.clone()).unwrap());
    }
    let held = open_descriptors() - before;
    assert!(held <= LOGS + 8, "{LOGS} reopened logs hold {held} descriptors");
}
