//! Criterion benchmarks of the partition log's hot paths:
//!
//! - `append/*`: one 16 KiB batch (16 records of 1 KiB) per iteration, under
//!   `FlushPolicy::Interval` (page cache only, no fsync on the path) and
//!   `FlushPolicy::GroupCommit { max_delay_ms: 0 }` (one appender, so every
//!   append waits for its own fdatasync). Each sample writes to a fresh log
//!   that is deleted afterwards, so no sample pays for a segment roll or for
//!   the previous sample's writeback.
//! - `read/*`: a sequential pass over a pre-filled 256 MiB log with
//!   `read(offset, 1 MiB)`, touching one byte per 4 KiB page returned:
//!   `fresh_map` reopens the log before each pass (pages in the page cache,
//!   mappings new, so every page is faulted in), `mapped` reuses the log.
//! - `offset_for_timestamp/*`: lookups in that log (64 MiB segments).
//! - `validate/*`: `strata_record::batch::validate` of one 16 KiB batch.
//!
//! Batches are encoded once: the log rewrites `base_offset` on the way to
//! disk, so the same bytes can be appended repeatedly.
//!
//! `cargo bench -p strata-storage` takes about two minutes once built.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a panic is the report

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use rand::{rngs::StdRng, Rng, SeedableRng};
use strata_record::batch::{self, BatchBuilder, HEADER_LEN};
use strata_storage::{FlushPolicy, Log, LogConfig};

const RECORD_BYTES: usize = 1024;
const BATCH_BYTES: usize = 16 * 1024;
const READ_CHUNK: usize = 1 << 20;
const PREFILL_BYTES: usize = 256 << 20;
const PREFILL_SEGMENT_BYTES: u64 = 64 << 20;
const PAGE: usize = 4096;
/// "Never" for the interval flusher, kept well inside `i64` milliseconds.
const NEVER_MS: u64 = 1_000 * 3_600 * 24 * 365;
const INTERVAL: FlushPolicy = FlushPolicy::Interval { interval_ms: NEVER_MS };
const GROUP_COMMIT: FlushPolicy = FlushPolicy::GroupCommit { max_delay_ms: 0 };

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A batch of `BATCH_BYTES / RECORD_BYTES` records of `RECORD_BYTES` each;
/// record `i` has timestamp `first_ts + i`.
fn build_batch(first_ts: i64) -> Bytes {
    let value: Vec<u8> = (0..RECORD_BYTES).map(|i| (i % 251) as u8).collect();
    let n = BATCH_BYTES / RECORD_BYTES;
    let mut b = BatchBuilder::with_capacity(HEADER_LEN + n * (RECORD_BYTES + 16));
    for i in 0..n {
        b.append(first_ts + i as i64, None, Some(&value), &[]).expect("record fits");
    }
    b.build().expect("non-empty batch")
}

fn records_per_batch() -> i64 {
    (BATCH_BYTES / RECORD_BYTES) as i64
}

fn config(flush: FlushPolicy) -> LogConfig {
    LogConfig { flush, ..LogConfig::default() }
}

/// Sums one byte per 4 KiB page so mmap'd pages are really faulted in.
fn touch(b: &[u8]) -> u64 {
    let mut sum = 0u64;
    for i in (0..b.len()).step_by(PAGE) {
        sum = sum.wrapping_add(u64::from(b[i]));
    }
    sum
}

/// One sequential pass over the whole log; returns the bytes read.
fn read_all(log: &Log) -> u64 {
    let (mut offset, end) = (log.log_start_offset(), log.log_end_offset());
    let (mut bytes, mut sum) = (0u64, 0u64);
    while offset < end {
        let r = log.read(offset, READ_CHUNK).expect("read");
        assert!(r.next_offset > offset, "read made no progress at {offset}");
        sum = sum.wrapping_add(touch(&r.batches));
        bytes += r.batches.len() as u64;
        offset = r.next_offset;
    }
    black_box(sum);
    bytes
}

fn bench_append(c: &mut Criterion) {
    let batch = build_batch(now_ms());
    let mut g = c.benchmark_group("append");
    g.throughput(Throughput::Bytes(batch.len() as u64));
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    for (flush, secs) in [(INTERVAL, 3), (GROUP_COMMIT, 3)] {
        g.measurement_time(Duration::from_secs(secs));
        g.bench_function(BenchmarkId::new(flush.name(), "16KiB"), |b| {
            b.iter_custom(|iters| {
                let dir = tempfile::tempdir().expect("tempdir");
                let log = Log::open(dir.path(), config(flush)).expect("open");
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(log.append(&batch, 1).expect("append"));
                }
                let elapsed = start.elapsed();
                drop(log);
                drop(dir);
                elapsed
            })
        });
    }
    g.finish();
}

/// A closed log of about `PREFILL_BYTES` in 64 MiB segments, batch `i`
/// holding timestamps `t0 + 16 i ..`; returns the log bytes and `t0`.
fn prefill(dir: &Path) -> (u64, i64) {
    let cfg = LogConfig { segment_bytes: PREFILL_SEGMENT_BYTES, ..config(INTERVAL) };
    let log = Log::open(dir, cfg).expect("open");
    let t0 = now_ms() - 3_600_000;
    let mut bytes = 0u64;
    let mut i = 0i64;
    while bytes < PREFILL_BYTES as u64 {
        let b = build_batch(t0 + i * records_per_batch());
        log.append(&b, 1).expect("append");
        bytes += b.len() as u64;
        i += 1;
    }
    log.close().expect("close");
    (bytes, t0)
}

fn open_prefilled(dir: &Path) -> Log {
    let cfg = LogConfig { segment_bytes: PREFILL_SEGMENT_BYTES, ..config(INTERVAL) };
    Log::open(dir, cfg).expect("reopen")
}

fn bench_read_and_lookup(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (bytes, t0) = prefill(dir.path());

    let mut g = c.benchmark_group("read");
    g.throughput(Throughput::Bytes(bytes));
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    g.bench_function("fresh_map/1MiB", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let log = open_prefilled(dir.path());
                let start = Instant::now();
                assert_eq!(read_all(&log), bytes);
                elapsed += start.elapsed();
                log.close().expect("close");
            }
            elapsed
        })
    });
    let log = open_prefilled(dir.path());
    g.bench_function("mapped/1MiB", |b| b.iter(|| assert_eq!(read_all(&log), bytes)));
    g.finish();

    let records = log.log_end_offset() as i64;
    let mut rng = StdRng::seed_from_u64(7);
    let targets: Vec<i64> = (0..4096).map(|_| t0 + rng.random_range(0..records)).collect();
    // Record `o` has timestamp `t0 + o`.
    for &ts in targets.iter().take(64) {
        assert_eq!(log.offset_for_timestamp(ts).expect("lookup"), Some(((ts - t0) as u64, ts)));
    }
    let latest = t0 + records - 1;
    let mut g = c.benchmark_group("offset_for_timestamp");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    let mut k = 0usize;
    g.bench_function("random", |b| {
        b.iter(|| {
            let ts = targets[k % targets.len()];
            k += 1;
            black_box(log.offset_for_timestamp(ts).expect("lookup"))
        })
    });
    g.bench_function("latest", |b| b.iter(|| black_box(log.offset_for_timestamp(black_box(latest)).expect("lookup"))));
    g.finish();
    log.close().expect("close");
}

fn bench_validate(c: &mut Criterion) {
    let batch = build_batch(now_ms());
    let max = LogConfig::default().max_batch_bytes;
    let mut g = c.benchmark_group("validate");
    g.throughput(Throughput::Bytes(batch.len() as u64));
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g.bench_function("16KiB", |b| b.iter(|| black_box(batch::validate(black_box(&batch), max).expect("valid"))));
    g.finish();
}

criterion_group!(benches, bench_append, bench_read_and_lookup, bench_validate);
criterion_main!(benches);
