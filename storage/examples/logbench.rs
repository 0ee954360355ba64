//! `logbench`: throughput of `strata_storage::Log` next to plain file I/O
//! measured in the same run, on the same disk, with the same batch bytes.
//!
//! ```text
//! cargo run --release -p strata-storage --example logbench -- --json
//! ```
//!
//! One batch is encoded once with `BatchBuilder` and appended over and over
//! (the log rewrites `base_offset` on the way to disk), so the figures are
//! the log's, not the encoder's. MB = 10^6 bytes of encoded batches (what
//! reaches the file); `append_payload_mb_per_s` counts record values only.
//!
//! Every write run goes to a fresh file; written data is synced outside
//! the timed region and, where permitted, the page cache is dropped before
//! every write run, so that one run's writeback and cache state do not land
//! in the next one's timing (on the VM this was written on, a buffered write
//! runs up to 2x slower while earlier written files are still cached).
//! Each figure is the median of `--runs` runs (default 3), interleaved with
//! its baseline. In this order:
//!
//! 1. warm-up: a short plain write and a short log append, thrown away;
//! 2. no fsync on the path: `--runs` times (plain `write_all` loop,
//!    `Log::append` with `FlushPolicy::Interval` (never due)), then plain
//!    once more, so baselines bracket every log run;
//! 3. read-back with `Log::read(offset, 1 MiB)` following `next_offset`, of
//!    one more log written (untimed) after the last plain run, its pages in
//!    the page cache as its writes left them: from a freshly reopened log
//!    (new mapping) touching one byte per 4 KiB page of every returned slice,
//!    so each mmap'd page is really faulted in; a second pass over the same
//!    mapping; a reopened log summing every byte (what a consumer that looks
//!    at all the data pays); and, if the cache can be dropped, from disk.
//!    The plain counterpart is `read(2)` of the last plain file (also still
//!    cached) into a 1 MiB buffer, with the same touch or sum;
//! 4. fsync on the path: `--runs` times (plain `write_all` + `sync_data` per
//!    batch, `Log::append` with `FlushPolicy::GroupCommit { max_delay_ms: 0
//!    }` and a single appender, so every append waits for its own
//!    fdatasync), then plain + `sync_data` once more.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a panic is the report

// `json!` with this many fields needs more than the default 128.
#![recursion_limit = "256"]

use std::error::Error;
use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::json;
use strata_record::batch::{BatchBuilder, HEADER_LEN};
use strata_storage::{FlushPolicy, Log, LogConfig};

type Res<T> = Result<T, Box<dyn Error>>;

const MB: f64 = 1e6;
const READ_CHUNK: usize = 1 << 20;
const PAGE: usize = 4096;
const WARMUP_BYTES: u64 = 64_000_000;
/// "Never" for the interval flusher, kept well inside `i64` milliseconds.
const NEVER_MS: u64 = 1_000 * 3_600 * 24 * 365;

const USAGE: &str = "usage: logbench [--total-mb N] [--fsync-total-mb N] [--record-bytes N] [--batch-bytes N] [--dir PATH] [--runs N] [--no-drop-caches] [--json]

  --total-mb N        MB (10^6 bytes) written by each no-fsync run (default 1024)
  --fsync-total-mb N  MB written by each fsync-per-batch run (default 128)
  --record-bytes N    bytes of each record's value (default 1024)
  --batch-bytes N     record values per batch = batch-bytes / record-bytes (default 16384)
  --dir PATH          where to create the scratch directory (default ./target, else the system temp dir)
  --runs N            runs of each measurement; figures are medians (default 3)
  --no-drop-caches    do not write to /proc/sys/vm/drop_caches between runs
  --json              print one JSON line instead of a table";

struct Args {
    total_mb: u64,
    fsync_total_mb: u64,
    record_bytes: usize,
    batch_bytes: usize,
    dir: Option<PathBuf>,
    drop_caches: bool,
    reps: usize,
    json: bool,
}

fn parse_args() -> Res<Args> {
    let mut a = Args {
        total_mb: 1024,
        fsync_total_mb: 128,
        record_bytes: 1024,
        batch_bytes: 16384,
        dir: None,
        drop_caches: true,
        reps: 3,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--total-mb" => a.total_mb = value("--total-mb")?.parse()?,
            "--fsync-total-mb" => a.fsync_total_mb = value("--fsync-total-mb")?.parse()?,
            "--record-bytes" => a.record_bytes = value("--record-bytes")?.parse()?,
            "--batch-bytes" => a.batch_bytes = value("--batch-bytes")?.parse()?,
            "--dir" => a.dir = Some(PathBuf::from(value("--dir")?)),
            "--runs" => a.reps = value("--runs")?.parse()?,
            "--no-drop-caches" => a.drop_caches = false,
            "--json" => a.json = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            // `cargo bench` passes `--bench` to every target; ignore it.
            "--bench" => {}
            other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
        }
    }
    if a.record_bytes == 0 || a.batch_bytes == 0 || a.total_mb == 0 || a.fsync_total_mb == 0 || a.reps == 0 {
        return Err(format!("sizes must be positive\n{USAGE}").into());
    }
    Ok(a)
}

/// One timed run: bytes moved, wall time, and per-operation latencies.
struct Run {
    bytes: u64,
    elapsed: Duration,
    lat_ns: Vec<u64>,
}

impl Run {
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / MB / self.elapsed.as_secs_f64()
    }
}

/// p50 and p99 of the per-operation latencies of `runs` together, in µs.
fn percentiles_us(runs: &[&Run]) -> (f64, f64) {
    let mut all: Vec<u64> = runs.iter().flat_map(|r| r.lat_ns.iter().copied()).collect();
    if all.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    all.sort_unstable();
    let at = |q: f64| all[((all.len() - 1) as f64 * q).round() as usize] as f64 / 1e3;
    (at(0.5), at(0.99))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// `batch_bytes / record_bytes` records (at least one) of `record_bytes`
/// each, no key, no headers, current timestamps (so the log never rolls a
/// segment for age).
fn build_batch(record_bytes: usize, batch_bytes: usize) -> Res<(Bytes, u32)> {
    let n = (batch_bytes / record_bytes).max(1);
    let value: Vec<u8> = (0..record_bytes).map(|i| (i % 251) as u8).collect();
    let mut b = BatchBuilder::with_capacity(HEADER_LEN + n * (record_bytes + 16));
    let ts = now_ms();
    for _ in 0..n {
        b.append(ts, None, Some(&value), &[])?;
    }
    let count = b.record_count();
    Ok((b.build()?, count))
}

/// Syncs everything and, if allowed, drops the page cache. Returns whether
/// the cache was dropped.
fn settle(drop_caches: bool) -> bool {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    drop_caches && std::fs::write("/proc/sys/vm/drop_caches", "1\n").is_ok()
}

/// Plain sequential `write_all` of `batch`, `n` times, to a new file;
/// `sync_data` after each write if `sync_each`. Without it the data is synced
/// after the clock stops.
fn plain_write(path: &Path, batch: &[u8], n: u64, sync_each: bool) -> Res<Run> {
    let mut f = OpenOptions::new().create(true).write(true).truncate(true).open(path)?;
    let mut lat_ns = Vec::with_capacity(n as usize);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        f.write_all(batch)?;
        if sync_each {
            f.sync_data()?;
        }
        lat_ns.push(t.elapsed().as_nanos() as u64);
    }
    let elapsed = start.elapsed();
    f.sync_data()?;
    Ok(Run { bytes: n * batch.len() as u64, elapsed, lat_ns })
}

fn log_config(flush: FlushPolicy) -> LogConfig {
    LogConfig { flush, ..LogConfig::default() }
}

/// Appends `batch` `n` times to a new log in `dir`. The log is flushed after
/// the clock stops (a no-op under group commit) and handed back.
fn log_append(dir: &Path, batch: &[u8], records: u32, n: u64, flush: FlushPolicy) -> Res<(Run, Log)> {
    let log = Log::open(dir, log_config(flush))?;
    let mut lat_ns = Vec::with_capacity(n as usize);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        log.append(batch, 1)?;
        lat_ns.push(t.elapsed().as_nanos() as u64);
    }
    let elapsed = start.elapsed();
    log.flush()?;
    let want = n * u64::from(records);
    if log.log_end_offset() != want {
        return Err(format!("log end is {} after {n} appends, expected {want}", log.log_end_offset()).into());
    }
    Ok((Run { bytes: n * batch.len() as u64, elapsed, lat_ns }, log))
}

/// Sums one byte per 4 KiB page (and the last byte), forcing every page of
/// an mmap'd slice to be faulted in.
fn touch(b: &[u8]) -> u64 {
    let mut sum = 0u64;
    for i in (0..b.len()).step_by(PAGE) {
        sum = sum.wrapping_add(u64::from(b[i]));
    }
    sum.wrapping_add(u64::from(b.last().copied().unwrap_or(0)))
}

/// Sums every byte as little-endian u64 words: a consumer that looks at all
/// of the data (vectorizes; memory-bandwidth bound).
fn scan_all(b: &[u8]) -> u64 {
    let mut words = b.chunks_exact(8);
    let mut sum = 0u64;
    for w in &mut words {
        sum = sum.wrapping_add(u64::from_le_bytes(w.try_into().unwrap_or_default()));
    }
    words.remainder().iter().fold(sum, |s, &x| s.wrapping_add(u64::from(x)))
}

/// Reads the whole log from its start, 1 MiB per `read`, following
/// `next_offset`, passing every returned slice to `look`.
fn log_read(log: &Log, expect_bytes: u64, look: fn(&[u8]) -> u64) -> Res<Run> {
    let (mut offset, end) = (log.log_start_offset(), log.log_end_offset());
    let (mut bytes, mut sum, mut calls) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    while offset < end {
        let r = log.read(offset, READ_CHUNK)?;
        if r.batches.is_empty() || r.next_offset <= offset {
            return Err(format!("read at {offset} made no progress").into());
        }
        sum = sum.wrapping_add(look(&r.batches));
        bytes += r.batches.len() as u64;
        offset = r.next_offset;
        calls += 1;
    }
    let elapsed = start.elapsed();
    black_box(sum);
    if bytes != expect_bytes {
        return Err(format!("read back {bytes} bytes in {calls} reads, appended {expect_bytes}").into());
    }
    Ok(Run { bytes, elapsed, lat_ns: Vec::new() })
}

/// Plain `read` of a whole file into a 1 MiB buffer (the kernel copies every
/// byte), passing each chunk to `look` as [`log_read`] does.
fn plain_read(path: &Path, look: fn(&[u8]) -> u64) -> Res<Run> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; READ_CHUNK];
    let (mut bytes, mut sum) = (0u64, 0u64);
    let start = Instant::now();
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sum = sum.wrapping_add(look(&buf[..n]));
        bytes += n as u64;
    }
    let elapsed = start.elapsed();
    black_box(sum);
    Ok(Run { bytes, elapsed, lat_ns: Vec::new() })
}

fn batches_for(total_mb: u64, batch_len: usize) -> u64 {
    (total_mb * 1_000_000).div_ceil(batch_len as u64).max(1)
}

fn round(x: f64, places: i32) -> f64 {
    let p = 10f64.powi(places);
    (x * p).round() / p
}

fn default_base_dir() -> PathBuf {
    let target = PathBuf::from("target");
    if target.is_dir() {
        target
    } else {
        std::env::temp_dir()
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

fn rates(runs: &[Run]) -> Vec<f64> {
    runs.iter().map(|r| round(r.mb_per_s(), 1)).collect()
}

fn median_rate(runs: &[Run]) -> f64 {
    median(runs.iter().map(Run::mb_per_s).collect())
}

fn best_rate(runs: &[Run]) -> f64 {
    runs.iter().map(Run::mb_per_s).fold(f64::NAN, f64::max)
}

fn main() -> Res<()> {
    let args = parse_args()?;
    let base = args.dir.clone().unwrap_or_else(default_base_dir);
    std::fs::create_dir_all(&base)?;
    let scratch = tempfile::Builder::new().prefix("logbench-").tempdir_in(&base)?;
    let dir = scratch.path();
    let drop_caches = args.drop_caches;
    let reps = args.reps;

    let (batch, records) = build_batch(args.record_bytes, args.batch_bytes)?;
    let batch_len = batch.len();
    let payload = u64::from(records) * args.record_bytes as u64;
    let n = batches_for(args.total_mb, batch_len);
    let n_fsync = batches_for(args.fsync_total_mb, batch_len);
    let interval = FlushPolicy::Interval { interval_ms: NEVER_MS };
    let group = FlushPolicy::GroupCommit { max_delay_ms: 0 };
    if !args.json {
        eprintln!(
            "logbench: {records} x {} B records per batch, {batch_len} B per batch, {n} batches per no-fsync run, {n_fsync} per fsync run, {reps} runs of each, in {}",
            args.record_bytes,
            dir.display()
        );
    }

    // Warm-up: code, allocator, page allocator, CPU frequency.
    let dropped = settle(drop_caches);
    let warm_n = batches_for(WARMUP_BYTES / 1_000_000, batch_len).min(n);
    plain_write(&dir.join("warmup.dat"), &batch, warm_n, false)?;
    std::fs::remove_file(dir.join("warmup.dat"))?;
    let (_, warm_log) = log_append(&dir.join("warmup-log"), &batch, records, warm_n, interval)?;
    drop(warm_log);
    std::fs::remove_dir_all(dir.join("warmup-log"))?;
    settle(drop_caches);

    // No fsync on the path: plain, then (log, plain) `reps` times, each run
    // after a cache drop (on this VM a buffered write slows down by up to
    // half when earlier written files are still cached).
    let plain_path = dir.join("plain.dat");
    let log_dir = dir.join("log-interval");
    let mut plain_runs = Vec::new();
    let mut append_runs = Vec::new();
    for _ in 0..reps {
        plain_runs.push(plain_write(&plain_path, &batch, n, false)?);
        std::fs::remove_file(&plain_path)?;
        settle(drop_caches);
        let (run, log) = log_append(&log_dir, &batch, records, n, interval)?;
        drop(log);
        std::fs::remove_dir_all(&log_dir)?;
        append_runs.push(run);
        settle(drop_caches);
    }
    // The last plain file is kept for the read-back, next to one more
    // (untimed) log written now, both with the pages their writes left in
    // the page cache.
    plain_runs.push(plain_write(&plain_path, &batch, n, false)?);
    let (_, log) = log_append(&log_dir, &batch, records, n, interval)?;
    log.close()?;
    settle(false);

    // Read-back, each kind `reps` times, every log pass on a freshly reopened
    // log (new mapping) unless said otherwise.
    let appended = append_runs[0].bytes;
    let (mut read, mut read_mapped, mut read_scan) = (Vec::new(), Vec::new(), Vec::new());
    let (mut plain_read_warm, mut plain_read_scan) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let log = Log::open(&log_dir, log_config(interval))?;
        read.push(log_read(&log, appended, touch)?);
        read_mapped.push(log_read(&log, appended, touch)?);
        log.close()?;
        plain_read_warm.push(plain_read(&plain_path, touch)?);
        let log = Log::open(&log_dir, log_config(interval))?;
        read_scan.push(log_read(&log, appended, scan_all)?);
        log.close()?;
        plain_read_scan.push(plain_read(&plain_path, scan_all)?);
    }
    let (mut read_cold, mut plain_read_cold) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        if !settle(drop_caches) {
            break;
        }
        let log = Log::open(&log_dir, log_config(interval))?;
        read_cold.push(log_read(&log, appended, touch)?);
        log.close()?;
        settle(true);
        plain_read_cold.push(plain_read(&plain_path, touch)?);
    }
    std::fs::remove_dir_all(&log_dir)?;
    std::fs::remove_file(&plain_path)?;
    settle(drop_caches);

    // fsync on the path: plain + fdatasync, then (group commit, plain +
    // fdatasync) `reps` times.
    let gc_dir = dir.join("log-group-commit");
    let mut plain_fsync_runs = Vec::new();
    let mut gc_runs = Vec::new();
    for _ in 0..reps {
        plain_fsync_runs.push(plain_write(&plain_path, &batch, n_fsync, true)?);
        std::fs::remove_file(&plain_path)?;
        settle(drop_caches);
        let (run, log) = log_append(&gc_dir, &batch, records, n_fsync, group)?;
        log.close()?;
        std::fs::remove_dir_all(&gc_dir)?;
        gc_runs.push(run);
        settle(drop_caches);
    }
    plain_fsync_runs.push(plain_write(&plain_path, &batch, n_fsync, true)?);
    std::fs::remove_file(&plain_path)?;

    let append_mb = median_rate(&append_runs);
    let baseline = median_rate(&plain_runs);
    let read_mb = median_rate(&read);
    let gc_mb = median_rate(&gc_runs);
    let baseline_fsync = median_rate(&plain_fsync_runs);
    let batches_per_s = append_mb * MB / batch_len as f64;
    let (a_p50, a_p99) = percentiles_us(&append_runs.iter().collect::<Vec<_>>());
    let (b_p50, b_p99) = percentiles_us(&plain_runs.iter().collect::<Vec<_>>());
    let (gc_p50, gc_p99) = percentiles_us(&gc_runs.iter().collect::<Vec<_>>());
    let (bf_p50, bf_p99) = percentiles_us(&plain_fsync_runs.iter().collect::<Vec<_>>());
    let opt = |runs: &[Run]| (!runs.is_empty()).then(|| round(median_rate(runs), 1));
    let out = json!({
        "flush_policy": interval.name(),
        "record_bytes": args.record_bytes,
        "records_per_batch": records,
        "batch_bytes": batch_len,
        "batch_payload_bytes": payload,
        "total_bytes": appended,
        "fsync_total_bytes": gc_runs[0].bytes,
        "runs": reps,
        "mb": "10^6 bytes of encoded batches; every *_mb_per_s is the median of its runs",
        "append_mb_per_s": round(append_mb, 1),
        "append_samples_mb_per_s": rates(&append_runs),
        "append_payload_mb_per_s": round(append_mb * payload as f64 / batch_len as f64, 1),
        "append_records_per_s": round(batches_per_s * f64::from(records), 0),
        "append_batches_per_s": round(batches_per_s, 0),
        "append_p50_us": round(a_p50, 2),
        "append_p99_us": round(a_p99, 2),
        "baseline_write_mb_per_s": round(baseline, 1),
        "baseline_write_samples_mb_per_s": rates(&plain_runs),
        "baseline_write_p50_us": round(b_p50, 2),
        "baseline_write_p99_us": round(b_p99, 2),
        "append_vs_baseline": round(append_mb / baseline, 3),
        "append_vs_baseline_best": round(best_rate(&append_runs) / best_rate(&plain_runs), 3),
        "read_mb_per_s": round(read_mb, 1),
        "read_samples_mb_per_s": rates(&read),
        "read_mapped_mb_per_s": round(median_rate(&read_mapped), 1),
        "read_scan_mb_per_s": round(median_rate(&read_scan), 1),
        "read_cold_mb_per_s": opt(&read_cold),
        "read_touch": "read*: 1 byte per 4 KiB page of each returned slice; *_scan: every byte summed",
        "baseline_read_mb_per_s": round(median_rate(&plain_read_warm), 1),
        "baseline_read_scan_mb_per_s": round(median_rate(&plain_read_scan), 1),
        "baseline_read_cold_mb_per_s": opt(&plain_read_cold),
        "read_vs_append": round(read_mb / append_mb, 3),
        "read_vs_baseline_read": round(read_mb / median_rate(&plain_read_warm), 3),
        "read_scan_vs_baseline_read_scan": round(median_rate(&read_scan) / median_rate(&plain_read_scan), 3),
        "read_cold_vs_baseline_read_cold": (!read_cold.is_empty())
            .then(|| round(median_rate(&read_cold) / median_rate(&plain_read_cold), 3)),
        "group_commit_mb_per_s": round(gc_mb, 1),
        "group_commit_samples_mb_per_s": rates(&gc_runs),
        "group_commit_appends_per_s": round(gc_mb * MB / batch_len as f64, 0),
        "group_commit_p50_us": round(gc_p50, 1),
        "group_commit_p99_us": round(gc_p99, 1),
        "baseline_write_fdatasync_mb_per_s": round(baseline_fsync, 1),
        "baseline_write_fdatasync_samples_mb_per_s": rates(&plain_fsync_runs),
        "baseline_write_fdatasync_p50_us": round(bf_p50, 1),
        "baseline_write_fdatasync_p99_us": round(bf_p99, 1),
        "group_commit_vs_baseline": round(gc_mb / baseline_fsync, 3),
        "page_cache_dropped": dropped,
        "dir": dir.display().to_string(),
    });

    if args.json {
        println!("{out}");
        return Ok(());
    }
    let f = |k: &str| out[k].as_f64().map_or_else(|| "n/a".to_string(), |v| format!("{v:.1}"));
    let r = |k: &str| out[k].as_f64().map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}"));
    let rows = [
        ("plain write_all", f("baseline_write_mb_per_s")),
        ("log append, flush=interval (no fsync)", f("append_mb_per_s")),
        ("  append / plain write", r("append_vs_baseline")),
        ("log read, reopened (page cache, new mmap)", f("read_mb_per_s")),
        ("log read, same mapping again", f("read_mapped_mb_per_s")),
        ("plain read, page cache", f("baseline_read_mb_per_s")),
        ("log read + sum every byte, reopened", f("read_scan_mb_per_s")),
        ("plain read + sum every byte", f("baseline_read_scan_mb_per_s")),
        ("log read, cold (page cache dropped)", f("read_cold_mb_per_s")),
        ("plain read, cold", f("baseline_read_cold_mb_per_s")),
        ("  read / append", r("read_vs_append")),
        ("plain write + fdatasync each", f("baseline_write_fdatasync_mb_per_s")),
        ("log append, group commit (1 appender)", f("group_commit_mb_per_s")),
        ("  group commit / plain + fdatasync", r("group_commit_vs_baseline")),
    ];
    println!("{:<44} {:>10}", "median of runs (MB = 10^6 B of batches)", "MB/s");
    for (name, v) in rows {
        println!("{name:<44} {v:>10}");
    }
    println!(
        "append p50/p99 {} / {} us, {} records/s; group commit p50/p99 {} / {} us; plain+fdatasync p50/p99 {} / {} us; page cache dropped: {dropped}",
        out["append_p50_us"],
        out["append_p99_us"],
        out["append_records_per_s"],
        out["group_commit_p50_us"],
        out["group_commit_p99_us"],
        out["baseline_write_fdatasync_p50_us"],
        out["baseline_write_fdatasync_p99_us"],
    );
    Ok(())
}
