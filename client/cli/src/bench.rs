//! `strata bench produce|consume|e2e`: throughput and latency, in the manner
//! of Kafka's producer-perf-test, consumer-perf-test and end-to-end-latency
//! tools.
//!
//! - A progress line goes to stderr every second; the summary goes to stdout
//!   (one JSON line with `--json` or `--output json`).
//! - MB = 10^6 payload bytes (record values; keys are null here).
//! - Payload bytes are generated once (a pseudo-random pool records are
//!   sliced from), so the tool measures the system, not a random generator.
//! - Outstanding delivery futures are bounded by a window, so memory stays
//!   flat however many records are sent.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Bytes, BytesMut};
use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};
use strata_client::{
    Acks, Admin, ClientError, Compression, Consumer, ConsumerConfig, DeliveryFuture, ErrorCode, Producer,
    ProducerConfig, ProducerRecord, SeekTo,
};
use tokio::sync::{mpsc, Notify};

use super::consume::describe;
use super::output::{print_json, print_text, Output};
use super::produce::{parse_acks, parse_compression};
use super::Global;

/// Delivery futures outstanding at most, unless `--window` says otherwise.
const DEFAULT_WINDOW: u64 = 100_000;
/// Highest latency the histograms hold (longer ones are clamped): 10 min.
const MAX_LATENCY_NS: u64 = 600_000_000_000;
/// e2e: how long the consumer may go without a record once producing ended.
const E2E_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes at the start of an e2e record value: send time (ns since the run's
/// base instant) and sequence number, little-endian u64s.
const E2E_HEADER: usize = 16;

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Produce --records records of --record-size bytes as fast as possible
    /// (or at --rate) and report throughput and send-to-ack latency.
    Produce(BenchArgs),
    /// Read --records records (default: all there are) from the beginning
    /// of every partition as fast as possible and report throughput.
    Consume(BenchArgs),
    /// Produce at a fixed --rate (default 5000/s) while a consumer reads
    /// concurrently; report the latency from the produce call to receipt.
    /// The send time travels in the first 16 bytes of each value
    /// (--record-size at least 16); record timestamps carry the send time in
    /// ms too.
    E2e(BenchArgs),
}

#[derive(Debug, Clone, Args)]
pub(crate) struct BenchArgs {
    /// Topic to use.
    #[arg(long)]
    topic: String,
    /// Records to send or read (produce: 1000000; e2e: 10 s at --rate;
    /// consume: every record in the topic when the run starts).
    #[arg(long, value_name = "N")]
    records: Option<u64>,
    /// Value size of each record.
    #[arg(long, value_name = "BYTES", default_value_t = 1024)]
    record_size: usize,
    /// Acknowledgements to wait for: 0, 1 or all.
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    acks: Acks,
    /// Producer batch size (default: the producer's, 1 MiB).
    #[arg(long, value_name = "BYTES")]
    batch_size: Option<usize>,
    /// Producer linger (default: the producer's 5 ms; e2e: 0).
    #[arg(long, value_name = "MS")]
    linger_ms: Option<u64>,
    /// Records per second to send (default: unlimited; e2e: 5000).
    #[arg(long, value_name = "R")]
    rate: Option<f64>,
    /// Create the topic with P partitions if it does not exist (default 1).
    #[arg(long, value_name = "P")]
    partitions: Option<u32>,
    /// Records at the start left out of the figures (connection set-up,
    /// metadata, warm caches).
    #[arg(long, value_name = "N", default_value_t = 0)]
    warmup_records: u64,
    /// Compression codec of the producer's batches: none, gzip, snappy, lz4
    /// or zstd.
    #[arg(long, value_name = "C", default_value = "none", value_parser = parse_compression)]
    compression: Compression,
    /// Level of the codec (gzip 1-9, zstd -131072-22; default: the codec's).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    compression_level: Option<i32>,
    /// Whether the producer is idempotent (with --acks all; the producer's
    /// default is on).
    #[arg(long, value_name = "on|off", default_value = "on", action = clap::ArgAction::Set, value_parser = parse_on_off)]
    idempotence: bool,
    /// What record values hold: random bytes (incompressible) or json
    /// (JSON-like event text, compressible as real events are).
    #[arg(long, value_name = "KIND", default_value = "random")]
    payload: PayloadKind,
    /// Records sent and not yet acknowledged at most (the application's
    /// window; e.g. 1000 to see whether a small window starves the pipeline).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WINDOW, value_parser = clap::value_parser!(u64).range(1..))]
    window: u64,
    /// Print the summary as one JSON line.
    #[arg(long)]
    json: bool,
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        _ => Err(format!("'{s}' is not on or off")),
    }
}

/// What `--payload` generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum PayloadKind {
    /// Pseudo-random bytes.
    Random,
    /// JSON-like event objects with varying fields.
    Json,
}

pub(crate) async fn run(cmd: BenchCommand, global: &Global) -> Result<()> {
    let (kind, args) = match cmd {
        BenchCommand::Produce(a) => ("produce", a),
        BenchCommand::Consume(a) => ("consume", a),
        BenchCommand::E2e(a) => ("e2e", a),
    };
    if args.record_size == 0 {
        bail!("--record-size must be at least 1 byte");
    }
    if let Some(r) = args.rate {
        if !(r.is_finite() && r > 0.0) {
            bail!("--rate must be a positive number of records per second");
        }
    }
    let summary = match kind {
        "produce" => produce(&args, global).await?,
        "consume" => consume(&args, global).await?,
        _ => e2e(&args, global).await?,
    };
    if args.json || global.output == Output::Json {
        print_json(&summary.to_json(kind, &args))?;
    } else {
        print_text(&summary.to_text(kind))?;
    }
    Ok(())
}

/// What a run measured.
#[derive(Debug)]
struct Summary {
    records: u64,
    bytes: u64,
    seconds: f64,
    /// Latencies in ns (none for consume).
    latency: Option<Histogram<u64>>,
}

impl Summary {
    fn records_per_sec(&self) -> f64 {
        if self.seconds > 0.0 {
            self.records as f64 / self.seconds
        } else {
            0.0
        }
    }

    fn mb_per_sec(&self) -> f64 {
        if self.seconds > 0.0 {
            self.bytes as f64 / 1e6 / self.seconds
        } else {
            0.0
        }
    }

    /// (name, quantile) of the reported percentiles.
    const PERCENTILES: [(&'static str, f64); 4] = [("p50", 0.5), ("p99", 0.99), ("p99_9", 0.999), ("p99_99", 0.9999)];

    fn to_json(&self, kind: &str, args: &BenchArgs) -> Value {
        let mut m = Map::new();
        m.insert("bench".into(), json!(kind));
        m.insert("topic".into(), json!(args.topic));
        m.insert("records".into(), json!(self.records));
        m.insert("record_size".into(), json!(args.record_size));
        m.insert("payload".into(), json!(format!("{:?}", args.payload).to_lowercase()));
        m.insert("bytes".into(), json!(self.bytes));
        m.insert("seconds".into(), json!(round(self.seconds, 6)));
        m.insert("records_per_sec".into(), json!(round(self.records_per_sec(), 1)));
        m.insert("mb_per_sec".into(), json!(round(self.mb_per_sec(), 3)));
        if kind != "consume" {
            m.insert("acks".into(), json!(acks_name(args.acks)));
            m.insert("compression".into(), json!(args.compression.name()));
            m.insert("idempotence".into(), json!(args.idempotence && args.acks == Acks::All));
            m.insert("warmup_records".into(), json!(args.warmup_records));
            m.insert("window".into(), json!(args.window));
        }
        if let Some(h) = &self.latency {
            for (name, q) in Self::PERCENTILES {
                m.insert(format!("{name}_ms"), json!(ms(h.value_at_quantile(q))));
            }
            m.insert("max_ms".into(), json!(ms(h.max())));
            m.insert("mean_ms".into(), json!(round(h.mean() / 1e6, 3)));
        }
        Value::Object(m)
    }

    fn to_text(&self, kind: &str) -> String {
        let mut s = format!(
            "{kind}: {} records in {:.3} s: {:.1} records/s, {:.2} MB/s\n",
            self.records,
            self.seconds,
            self.records_per_sec(),
            self.mb_per_sec()
        );
        if let Some(h) = &self.latency {
            let what = if kind == "e2e" { "produce call to receipt" } else { "send to ack" };
            s.push_str(&format!(
                "latency ({what}) ms: p50 {:.3}  p99 {:.3}  p99.9 {:.3}  p99.99 {:.3}  max {:.3}  mean {:.3}\n",
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.99)),
                ms(h.value_at_quantile(0.999)),
                ms(h.value_at_quantile(0.9999)),
                ms(h.max()),
                h.mean() / 1e6,
            ));
        }
        s
    }
}

fn acks_name(acks: Acks) -> &'static str {
    match acks {
        Acks::None => "0",
        Acks::Leader => "1",
        Acks::All => "all",
    }
}

fn ms(ns: u64) -> f64 {
    round(ns as f64 / 1e6, 3)
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

#[allow(clippy::expect_used, reason = "the bounds are constants hdrhistogram accepts")]
fn histogram() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts.
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid histogram bounds")
}

fn record_latency(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record((d.as_nanos() as u64).clamp(1, MAX_LATENCY_NS));
}

/// Counters the progress reporter prints every second.
#[derive(Debug, Default)]
struct Progress {
    records: AtomicU64,
    bytes: AtomicU64,
}

impl Progress {
    fn add(&self, records: u64, bytes: u64) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// Prints `label: total, records/s, MB/s` for the last second on stderr,
/// every second, until aborted.
fn spawn_progress(label: &'static str, progress: Arc<Progress>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        let (mut last_records, mut last_bytes, mut last_at) = (0u64, 0u64, Instant::now());
        loop {
            tick.tick().await;
            let (records, bytes, now) =
                (progress.records.load(Ordering::Relaxed), progress.bytes.load(Ordering::Relaxed), Instant::now());
            let secs = now.duration_since(last_at).as_secs_f64().max(1e-9);
            eprintln!(
                "{label}: {records} records, {:.1} records/s, {:.2} MB/s",
                (records - last_records) as f64 / secs,
                (bytes - last_bytes) as f64 / 1e6 / secs
            );
            (last_records, last_bytes, last_at) = (records, bytes, now);
        }
    })
}

/// Aborts the progress task when dropped (also on an early error return).
struct ProgressGuard(tokio::task::JoinHandle<()>);

impl Drop for ProgressGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The payload pool `--payload` asks for: `len` bytes plus room to slice
/// records at varying offsets, generated once.
fn payload_pool_of(kind: PayloadKind, len: usize) -> Bytes {
    match kind {
        PayloadKind::Random => payload_pool(len),
        PayloadKind::Json => json_pool(len),
    }
}

/// Where record `i`'s value starts in `pool`: a varying offset in the
/// random pool; consecutive stretches of the JSON pool (which is large, so
/// a batch holds no repeated text and compresses as real events do).
fn record_offset(pool: &Bytes, i: u64, size: usize) -> usize {
    let span = pool.len().saturating_sub(size).max(1);
    if span > 4096 {
        (i as usize).wrapping_mul(size) % span
    } else {
        (i as usize).wrapping_mul(61) % 4096
    }
}

/// JSON pool size: far more than a batch, so records do not repeat.
const JSON_POOL_BYTES: usize = 16 << 20;

/// JSON-like event text (ids, users, paths and timings drawn from a
/// pseudo-random sequence), as compressible as typical event streams; at
/// least [`JSON_POOL_BYTES`].
fn json_pool(len: usize) -> Bytes {
    let len = len.max(JSON_POOL_BYTES);
    const EVENTS: [&str; 5] = ["page_view", "click", "add_to_cart", "checkout", "search"];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let mut s = String::with_capacity(len + 4096 + 256);
    while s.len() < len + 4096 {
        let (a, b, c, d) = (next(), next(), next(), next());
        s.push_str(&format!(
            "{{\"id\":{},\"user\":\"user-{}\",\"event\":\"{}\",\"path\":\"/products/{}\",\"ms\":{},\"ok\":{}}}\n",
            a % 10_000_000,
            b % 50_000,
            EVENTS[(c % 5) as usize],
            c % 20_000,
            d % 2_000,
            d % 7 != 0
        ));
    }
    s.truncate(len + 4096);
    Bytes::from(s)
}

/// Pseudo-random bytes, generated once: `len` bytes plus room to slice
/// records at varying offsets.
fn payload_pool(len: usize) -> Bytes {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut v = Vec::with_capacity(len + 4096);
    while v.len() < len + 4096 {
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(len + 4096);
    Bytes::from(v)
}

/// Makes sure the topic exists, creating it with `partitions` (default 1).
async fn ensure_topic(admin: &Admin, topic: &str, partitions: Option<u32>) -> Result<()> {
    match admin.describe_topics(&[topic.to_owned()]).await {
        Ok(ts) if ts.iter().any(|t| t.name == topic) => return Ok(()),
        Ok(_) => {}
        Err(e) if e.code() == Some(ErrorCode::UnknownTopicOrPartition) => {}
        Err(e) => return Err(e.into()),
    }
    match admin.create_topic(topic, partitions.unwrap_or(1).max(1), 0, &[]).await {
        Ok(()) => Ok(()),
        Err(e) if e.code() == Some(ErrorCode::TopicAlreadyExists) => Ok(()),
        Err(e) => Err(e).context(format!("cannot create topic '{topic}'")),
    }
}

/// Waits until record `i` is due at `rate` records/s from `start`.
///
/// A thread sleep, not a tokio timer: tokio's timer wheel ticks in whole
/// milliseconds, which would send a fixed rate as bursts (5 records every ms
/// at 5000/s). The sending loop runs on the thread that blocks on the
/// command's future, not on a runtime worker, so blocking it stalls no task.
fn pace(rate: Option<f64>, start: Instant, i: u64) {
    if let Some(rate) = rate {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}

fn producer_config(args: &BenchArgs, global: &Global, default_linger: Option<Duration>) -> ProducerConfig {
    let mut c = ProducerConfig {
        acks: args.acks,
        compression: args.compression,
        compression_level: args.compression_level,
        enable_idempotence: args.idempotence,
        security: global.security.clone(),
        ..ProducerConfig::new(global.bootstrap())
    };
    if let Some(b) = args.batch_size {
        c.batch_size = b;
        // A request must hold at least one whole batch.
        c.max_request_bytes = c.max_request_bytes.max(b.saturating_add(64 * 1024));
    }
    if let Some(l) = args.linger_ms.map(Duration::from_millis).or(default_linger) {
        c.linger = l;
    }
    c
}

/// What the delivery collector found.
struct Acked {
    latency: Histogram<u64>,
    error: Option<ClientError>,
    last_ack: Option<Instant>,
}

/// One record handed to the collector: its delivery, send time, and whether
/// it counts (not warm-up).
type Sent = (DeliveryFuture, Instant, bool);

/// Bounds the deliveries sent but not yet resolved (memory stays flat).
#[derive(Debug, Default)]
struct Window {
    /// Deliveries open at most.
    limit: u64,
    resolved: AtomicU64,
    progress: Notify,
    /// A delivery failed: stop sending.
    failed: AtomicBool,
}

impl Window {
    /// Waits until fewer than `limit` of the `sent` deliveries are open.
    async fn admit(&self, sent: u64) {
        loop {
            let notified = self.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if sent - self.resolved.load(Ordering::Acquire) < self.limit {
                return;
            }
            notified.await;
        }
    }

    fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    fn resolved_one(&self) {
        self.resolved.fetch_add(1, Ordering::Release);
        self.progress.notify_one();
    }
}

/// Awaits deliveries on its own task, in send order, so acks are timed as
/// they arrive rather than when the sending loop gets round to them. (In
/// send order: a record is timed once it and every record sent before it
/// are acknowledged. Records of one request are acknowledged together, so
/// this matters only when partitions have different leaders.) No
/// allocation per record.
fn spawn_collector(
    mut rx: mpsc::UnboundedReceiver<Sent>,
    window: Arc<Window>,
    progress: Arc<Progress>,
    record_size: u64,
) -> tokio::task::JoinHandle<Acked> {
    tokio::spawn(async move {
        let mut acked = Acked { latency: histogram(), error: None, last_ack: None };
        let mut batch = Vec::with_capacity(1024);
        while rx.recv_many(&mut batch, 1024).await > 0 {
            for (delivery, sent, counted) in batch.drain(..) {
                let result = delivery.await;
                let now = Instant::now();
                window.resolved_one();
                match result {
                    Ok(_) if counted => {
                        record_latency(&mut acked.latency, now - sent);
                        progress.add(1, record_size);
                        acked.last_ack = Some(now);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        window.failed.store(true, Ordering::Relaxed);
                        acked.error.get_or_insert(e);
                    }
                }
            }
        }
        acked
    })
}

async fn produce(args: &BenchArgs, global: &Global) -> Result<Summary> {
    let total = args.records.unwrap_or(1_000_000);
    if args.warmup_records >= total {
        bail!("--warmup-records ({}) must be below --records ({total})", args.warmup_records);
    }
    let admin = global.admin().await?;
    ensure_topic(&admin, &args.topic, args.partitions).await?;
    let producer = Producer::connect(producer_config(args, global, None)).await?;
    let pool = payload_pool_of(args.payload, args.record_size);
    let size = args.record_size;

    let progress = Arc::new(Progress::default());
    let window = Arc::new(Window { limit: args.window, ..Window::default() });
    let (tx, rx) = mpsc::unbounded_channel::<Sent>();
    let collector = spawn_collector(rx, window.clone(), progress.clone(), size as u64);
    let _progress = ProgressGuard(spawn_progress("produce", progress));

    let start = Instant::now();
    let mut measure_start = None;
    for i in 0..total {
        pace(args.rate, start, i);
        window.admit(i).await;
        if window.failed() {
            break;
        }
        let counted = i >= args.warmup_records;
        let sent = Instant::now();
        if counted && measure_start.is_none() {
            measure_start = Some(sent);
        }
        let offset = record_offset(&pool, i, size);
        let record = ProducerRecord::new(args.topic.clone(), pool.slice(offset..offset + size));
        let delivery = producer.send(record).await?;
        if tx.send((delivery, sent, counted)).is_err() {
            break;
        }
    }
    drop(tx);
    producer.flush().await;
    let acked = collector.await.context("delivery collector failed")?;
    producer.close().await;
    if let Some(e) = acked.error {
        return Err(anyhow!(e).context("a record was not acknowledged"));
    }
    let records = total - args.warmup_records;
    let seconds = match (measure_start, acked.last_ack) {
        (Some(s), Some(e)) => e.duration_since(s).as_secs_f64(),
        _ => 0.0,
    };
    Ok(Summary { records, bytes: records * size as u64, seconds, latency: Some(acked.latency) })
}

async fn consume(args: &BenchArgs, global: &Global) -> Result<Summary> {
    let admin = global.admin().await?;
    let topic = describe(&admin, &args.topic).await?;
    let config = ConsumerConfig {
        // 1 MiB responses: with the next fetch issued while one is decoded,
        // smaller responses overlap better and stay cache-resident (16 MiB
        // ones measured ~20% slower).
        max_partition_bytes: 1024 * 1024,
        max_bytes: 48 * 1024 * 1024,
        security: global.security.clone(),
        ..ConsumerConfig::new(global.bootstrap())
    };
    let mut consumer = Consumer::connect(config).await?;
    let partitions: Vec<u32> = topic.partitions.iter().map(|p| p.partition).collect();
    consumer.assign(partitions.iter().map(|&p| (args.topic.clone(), p)));
    let mut available = 0u64;
    for &p in &partitions {
        let start = consumer.seek(&args.topic, p, SeekTo::Beginning).await?;
        let end = consumer.lookup_offset(&args.topic, p, SeekTo::End).await?;
        available += end.saturating_sub(start);
    }
    let target = match args.records {
        Some(n) if n > available => {
            bail!("topic '{}' holds {available} records, fewer than --records {n}", args.topic)
        }
        Some(n) => n,
        None => available,
    };
    let progress = Arc::new(Progress::default());
    let _progress = ProgressGuard(spawn_progress("consume", progress.clone()));
    let start = Instant::now();
    let (mut records, mut bytes) = (0u64, 0u64);
    while records < target {
        let batch = consumer.poll().await?;
        let take = batch.len().min((target - records) as usize);
        let batch_bytes: u64 = batch[..take]
            .iter()
            .map(|r| (r.value.as_ref().map_or(0, Bytes::len) + r.key.as_ref().map_or(0, Bytes::len)) as u64)
            .sum();
        records += take as u64;
        bytes += batch_bytes;
        progress.add(take as u64, batch_bytes);
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(Summary { records, bytes, seconds, latency: None })
}

async fn e2e(args: &BenchArgs, global: &Global) -> Result<Summary> {
    let rate = args.rate.unwrap_or(5000.0);
    let total = args.records.unwrap_or((rate * 10.0).ceil() as u64).max(1);
    if args.warmup_records >= total {
        bail!("--warmup-records ({}) must be below --records ({total})", args.warmup_records);
    }
    let size = args.record_size;
    if size < E2E_HEADER {
        bail!("--record-size must be at least {E2E_HEADER} bytes for e2e (the send time travels in the value)");
    }
    let admin = global.admin().await?;
    ensure_topic(&admin, &args.topic, args.partitions).await?;
    let topic = describe(&admin, &args.topic).await?;
    let partitions: Vec<u32> = topic.partitions.iter().map(|p| p.partition).collect();

    // The consumer starts at the current end, then the producer starts.
    let config = ConsumerConfig {
        max_wait: Duration::from_millis(500),
        security: global.security.clone(),
        ..ConsumerConfig::new(global.bootstrap())
    };
    let mut consumer = Consumer::connect(config).await?;
    consumer.assign(partitions.iter().map(|&p| (args.topic.clone(), p)));
    for &p in &partitions {
        consumer.seek(&args.topic, p, SeekTo::End).await?;
    }
    let producer = Producer::connect(producer_config(args, global, Some(Duration::ZERO))).await?;
    let base = Instant::now();
    let progress = Arc::new(Progress::default());
    let produced_all = Arc::new(tokio::sync::Notify::new());
    let warmup = args.warmup_records;
    let reader = {
        let progress = progress.clone();
        let produced_all = produced_all.clone();
        tokio::spawn(async move { e2e_consume(consumer, total, warmup, base, size, progress, produced_all).await })
    };
    let _progress = ProgressGuard(spawn_progress("e2e", progress));

    let pool = payload_pool_of(args.payload, size);
    let window = Arc::new(Window { limit: args.window, ..Window::default() });
    let (tx, rx) = mpsc::unbounded_channel::<Sent>();
    let collector = spawn_collector(rx, window.clone(), Arc::new(Progress::default()), 0);
    let start = Instant::now();
    let mut send_error = None;
    for i in 0..total {
        pace(Some(rate), start, i);
        window.admit(i).await;
        if window.failed() {
            break;
        }
        let mut value = BytesMut::with_capacity(size);
        let sent = Instant::now();
        value.extend_from_slice(&(sent.duration_since(base).as_nanos() as u64).to_le_bytes());
        value.extend_from_slice(&i.to_le_bytes());
        let offset = record_offset(&pool, i, size);
        value.extend_from_slice(&pool[offset..offset + size - E2E_HEADER]);
        match producer.send(ProducerRecord::new(args.topic.clone(), value.freeze())).await {
            Ok(d) => {
                let _ = tx.send((d, sent, i >= warmup));
            }
            Err(e) => {
                send_error = Some(e);
                break;
            }
        }
    }
    drop(tx);
    producer.flush().await;
    produced_all.notify_one();
    let acked = collector.await.context("delivery collector failed")?;
    producer.close().await;
    if let Some(e) = send_error.or(acked.error) {
        reader.abort();
        return Err(anyhow!(e).context("producing failed"));
    }
    reader.await.context("e2e consumer failed")?
}

/// The e2e consumer: reads until every sequence number arrived, timing each
/// record from the send time in its value to its receipt.
async fn e2e_consume(
    mut consumer: Consumer,
    total: u64,
    warmup: u64,
    base: Instant,
    size: usize,
    progress: Arc<Progress>,
    produced_all: Arc<tokio::sync::Notify>,
) -> Result<Summary> {
    let mut latency = histogram();
    let mut seen = vec![false; total as usize];
    let mut received = 0u64;
    let mut first_counted: Option<Instant> = None;
    let mut last_receipt = Instant::now();
    let mut producer_done = false;
    let mut idle_since = Instant::now();
    while received < total {
        let records = tokio::select! {
            r = consumer.poll() => r?,
            _ = produced_all.notified(), if !producer_done => {
                producer_done = true;
                idle_since = Instant::now();
                continue;
            }
        };
        let now = Instant::now();
        if records.is_empty() {
            if producer_done && now.duration_since(idle_since) > E2E_IDLE_TIMEOUT {
                bail!("only {received} of {total} records reached the consumer");
            }
            continue;
        }
        idle_since = now;
        for r in records {
            let Some(v) = r.value.as_deref().filter(|v| v.len() >= E2E_HEADER) else { continue };
            let sent_ns = u64::from_le_bytes(v[0..8].try_into().unwrap_or_default());
            let seq = u64::from_le_bytes(v[8..16].try_into().unwrap_or_default());
            if seq >= total || std::mem::replace(&mut seen[seq as usize], true) {
                continue; // not ours, or a duplicate from a retry
            }
            received += 1;
            if seq < warmup {
                continue;
            }
            let sent = base + Duration::from_nanos(sent_ns);
            first_counted = Some(first_counted.map_or(sent, |f| f.min(sent)));
            record_latency(&mut latency, now.saturating_duration_since(sent));
            progress.add(1, size as u64);
            last_receipt = now;
        }
    }
    let records = total - warmup;
    let seconds = first_counted.map_or(0.0, |f| last_receipt.duration_since(f).as_secs_f64());
    Ok(Summary { records, bytes: records * size as u64, seconds, latency: Some(latency) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_report_rates_and_percentiles() {
        let mut h = histogram();
        for ms in 1..=100u64 {
            record_latency(&mut h, Duration::from_millis(ms));
        }
        let s = Summary { records: 2_000_000, bytes: 2_048_000_000, seconds: 2.0, latency: Some(h) };
        assert_eq!(s.records_per_sec(), 1_000_000.0);
        assert_eq!(s.mb_per_sec(), 1024.0);
        let args = BenchArgs {
            topic: "t".into(),
            records: None,
            record_size: 1024,
            acks: Acks::Leader,
            batch_size: None,
            linger_ms: None,
            rate: None,
            partitions: None,
            warmup_records: 0,
            compression: Compression::Zstd,
            compression_level: None,
            idempotence: true,
            payload: PayloadKind::Json,
            window: 1000,
            json: true,
        };
        let v = s.to_json("produce", &args);
        assert_eq!(v["compression"], "zstd");
        assert_eq!(v["payload"], "json");
        assert_eq!(v["window"], 1000);
        for key in ["records", "seconds", "records_per_sec", "mb_per_sec", "p50_ms", "p99_ms", "p99_9_ms", "p99_99_ms"]
        {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
        assert!((v["p50_ms"].as_f64().unwrap() - 50.0).abs() < 0.1, "{v}");
        assert_eq!(v["max_ms"].as_f64().unwrap().round(), 100.0);
        assert!(s.to_text("produce").contains("p99.99"));
    }

    #[test]
    fn the_json_pool_compresses_and_the_random_pool_does_not() {
        use strata_client::Compression;
        let json = json_pool(64 * 1024);
        assert_eq!(json.len(), JSON_POOL_BYTES + 4096);
        // Consecutive records are different text.
        let (a, b) = (record_offset(&json, 0, 1024), record_offset(&json, 1, 1024));
        assert_ne!(json[a..a + 1024], json[b..b + 1024]);
        assert!(json.starts_with(b"{\"id\":"));
        let random = payload_pool(64 * 1024);
        let packed = |b: &[u8]| Compression::Zstd.compress(b, None).unwrap().len();
        let sample = json.slice(..256 * 1024);
        assert!(packed(&sample) * 3 < sample.len(), "json packs at least 3:1");
        assert!(packed(&random) * 10 > random.len() * 9, "random bytes stay random");
    }

    #[test]
    fn the_payload_pool_is_not_constant() {
        let p = payload_pool(1024);
        assert_eq!(p.len(), 1024 + 4096);
        assert!(p.windows(8).take(64).any(|w| w != &p[..8]));
    }
}
