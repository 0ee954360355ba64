//! The `strata` command-line tool end to end, against a real
//! `strata-server dev` process: topics, produce/consume round trips and
//! formats, follow mode, errors (one line on stderr, non-zero exit), cluster
//! info/health, consumer groups (consume --group, group
//! list/describe/reset/delete) and the benchmark summaries.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use strata_tests::{binary, free_port, ServerProcess};

/// Longest any one CLI invocation may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// One finished `strata` invocation.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim_end()).unwrap_or_else(|e| panic!("not one JSON document ({e}): {self:?}"))
    }
}

/// Runs `strata ARGS` with `--bootstrap` and optional stdin, with a timeout.
fn strata(bootstrap: &str, args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut child = Command::new(binary("strata"))
        .arg("--bootstrap")
        .arg(bootstrap)
        .args(args)
        .env_remove("STRATA_BOOTSTRAP")
        .env_remove("RUST_BACKTRACE")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strata");
    let writer = stdin.map(|input| {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        })
    });
    let read_all = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = read_all(Box::new(child.stdout.take().expect("stdout pipe")));
    let err = read_all(Box::new(child.stderr.take().expect("stderr pipe")));
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for strata") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("strata {args:?} did not finish within {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    Run { code: status.code(), stdout: out.join().unwrap(), stderr: err.join().unwrap() }
}

/// Runs and asserts success with nothing on stderr.
fn ok(bootstrap: &str, args: &[&str], stdin: Option<&[u8]>) -> Run {
    let run = strata(bootstrap, args, stdin);
    assert_eq!(run.code, Some(0), "strata {args:?} failed: {run:?}");
    assert!(run.stderr.is_empty(), "strata {args:?} wrote to stderr: {run:?}");
    run
}

/// Runs and asserts failure: a non-zero exit and exactly one stderr line
/// `error: ...` containing `needle`.
fn fails(bootstrap: &str, args: &[&str], stdin: Option<&[u8]>, needle: &str) -> Run {
    let run = strata(bootstrap, args, stdin);
    assert!(matches!(run.code, Some(c) if c != 0), "strata {args:?} should fail: {run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "strata {args:?}: stderr is not one line: {run:?}");
    assert!(lines[0].starts_with("error: "), "strata {args:?}: {run:?}");
    assert!(lines[0].contains(needle), "strata {args:?}: expected '{needle}' in {:?}", lines[0]);
    assert!(!run.stderr.contains("panicked"), "{run:?}");
    run
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn data_dir() -> (tempfile::TempDir, ServerProcess) {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::dev(&dir.path().join("data"));
    (dir, server)
}

#[test]
fn topics_are_created_listed_described_and_deleted() {
    let (_dir, server) = data_dir();
    let b = &server.bootstrap();

    let run = ok(b, &["topic", "create", "orders", "--partitions", "3", "--config", "retention.ms=86400000"], None);
    assert!(run.stdout.contains("created topic 'orders' (3 partitions"), "{run:?}");
    let run = ok(b, &["topic", "create", "audit", "--output", "json"], None);
    let created = run.json();
    assert_eq!(created["topic"], "audit");
    assert_eq!(created["created"], true);

    let run = ok(b, &["topic", "list"], None);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("NAME") && lines[0].contains("PARTITIONS"), "{run:?}");
    assert!(lines[1].starts_with("audit") && lines[2].starts_with("orders"), "{run:?}");
    let list = ok(b, &["topic", "list", "--output", "json"], None).json();
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["audit", "orders"]);
    assert_eq!(list[1]["partitions"], 3);
    assert_eq!(list[1]["replication_factor"], 1);

    let run = ok(b, &["topic", "describe", "orders"], None);
    for needle in ["retention.ms", "86400000", "LEADER", "ISR", "LOG-START", "HIGH-WATERMARK"] {
        assert!(run.stdout.contains(needle), "'{needle}' missing: {}", run.stdout);
    }
    let table: Vec<&str> = run.stdout.lines().skip_while(|l| !l.starts_with("PARTITION ")).skip(1).collect();
    assert_eq!(table.len(), 3, "{}", run.stdout);
    for (i, row) in table.iter().enumerate() {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells, [&i.to_string(), "1", "0", "1", "1", "0", "0", "0"], "{row}");
    }
    let d = ok(b, &["topic", "describe", "orders", "--output", "json"], None).json();
    assert_eq!(d["name"], "orders");
    assert_eq!(d["configs"]["retention.ms"], "86400000");
    let parts = d["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(p["partition"], i);
        assert_eq!(p["leader"], 1);
        assert_eq!(p["replicas"], serde_json::json!([1]));
        assert_eq!(p["isr"], serde_json::json!([1]));
        assert_eq!(p["high_watermark"], 0);
    }

    fails(b, &["topic", "create", "orders"], None, "TOPIC_ALREADY_EXISTS");
    fails(b, &["topic", "create", "x", "--config", "no.such.key=1"], None, "no.such.key");

    let run = ok(b, &["topic", "delete", "audit"], None);
    assert!(run.stdout.contains("deleted topic 'audit'"), "{run:?}");
    let deleted = ok(b, &["topic", "delete", "orders", "--output", "json"], None).json();
    assert_eq!(deleted["deleted"], true);
    assert_eq!(ok(b, &["topic", "list", "--output", "json"], None).json(), serde_json::json!([]));
    fails(b, &["topic", "describe", "orders"], None, "UNKNOWN_TOPIC_OR_PARTITION");
}

/// The codec bits of every batch in a partition's first segment.
fn stored_codecs(data: &std::path::Path, topic: &str) -> Vec<u8> {
    let log = std::fs::read(data.join(format!("{topic}-0/00000000000000000000.log"))).unwrap();
    let mut codecs = Vec::new();
    let mut pos = 0;
    while pos + 61 <= log.len() {
        let length = u32::from_be_bytes(log[pos + 8..pos + 12].try_into().unwrap()) as usize;
        if length == 0 {
            break; // preallocated space
        }
        codecs.push(log[pos + 22] & 0x07);
        pos += 12 + length;
    }
    codecs
}

#[test]
fn produce_compresses_with_the_codec_asked_for() {
    let (dir, server) = data_dir();
    let b = &server.bootstrap();
    let input: String =
        (0..3000).map(|i| format!("{{\"n\":{i},\"event\":\"click\",\"user\":\"u-{}\"}}\n", i % 50)).collect();
    for (codec, id) in [("none", 0u8), ("gzip", 1), ("snappy", 2), ("lz4", 3), ("zstd", 4)] {
        let topic = format!("c-{codec}");
        ok(b, &["topic", "create", &topic], None);
        let mut args = vec!["produce", topic.as_str(), "--compression", codec];
        if codec == "gzip" {
            args.extend(["--compression-level", "9"]);
        }
        ok(b, &args, Some(input.as_bytes()));
        let run = ok(b, &["consume", &topic], None);
        if run.stdout != input {
            let got: Vec<&str> = run.stdout.lines().collect();
            let want: Vec<&str> = input.lines().collect();
            let first = got.iter().zip(&want).position(|(a, b)| a != b);
            panic!(
                "{codec}: the lines came back changed: {} lines of {}, first difference at {first:?}: {:?}",
                got.len(),
                want.len(),
                first.map(|i| (got[i], want[i]))
            );
        }
        let codecs = stored_codecs(&dir.path().join("data"), &topic);
        assert!(!codecs.is_empty() && codecs.iter().all(|&c| c == id), "{codec}: stored codecs {codecs:?}");
    }
    fails(b, &["produce", "c-none", "--compression", "brotli"], Some(b"x\n"), "brotli");
    fails(
        b,
        &["produce", "c-none", "--compression", "gzip", "--compression-level", "12"],
        Some(b"x\n"),
        "levels 1 to 9",
    );
}

#[test]
fn produced_lines_come_back_identical_and_in_order() {
    let (_dir, server) = data_dir();
    let b = &server.bootstrap();
    ok(b, &["topic", "create", "events", "--partitions", "3"], None);

    const N: usize = 20_000;
    let input: String = (0..N).map(|i| format!("key-{}:value {i}: with colon\n", i % 997)).collect();
    let run = ok(
        b,
        &["produce", "events", "--key-separator", ":", "--header", "src=cli", "--header", "n=7"],
        Some(input.as_bytes()),
    );
    assert_eq!(run.stdout.trim(), format!("produced {N} records to topic 'events'"));

    let run = ok(b, &["consume", "events", "--from-beginning", "--format", "json"], None);
    let records: Vec<Value> = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), N);
    // Per partition: offsets 0, 1, 2... and input order; keys hash to one
    // partition; every line exactly once.
    let mut next_offset: BTreeMap<u64, u64> = BTreeMap::new();
    let mut last_line: BTreeMap<u64, i64> = BTreeMap::new();
    let mut seen = HashSet::new();
    for r in &records {
        let p = r["partition"].as_u64().unwrap();
        assert_eq!(r["topic"], "events");
        assert_eq!(r["offset"].as_u64().unwrap(), *next_offset.get(&p).unwrap_or(&0), "{r}");
        next_offset.insert(p, r["offset"].as_u64().unwrap() + 1);
        let value = r["value"].as_str().unwrap();
        let line: i64 = value.strip_prefix("value ").unwrap().split(':').next().unwrap().parse().unwrap();
        assert!(line > *last_line.get(&p).unwrap_or(&-1), "partition {p} out of order at {r}");
        last_line.insert(p, line);
        assert!(seen.insert(line), "line {line} twice");
        let key = format!("key-{}", line % 997);
        assert_eq!(r["key"], key.as_str());
        assert_eq!(value, format!("value {line}: with colon"));
        assert_eq!(u64::from(strata_client::partition_for_key(key.as_bytes(), 3)), p, "{r}");
        assert_eq!(r["headers"], serde_json::json!([{"key": "src", "value": "cli"}, {"key": "n", "value": "7"}]));
        assert!(r["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
    }
    assert_eq!(next_offset.len(), 3, "all partitions used");

    // The default start is the beginning, and the default format `%v\n`.
    let run = ok(b, &["consume", "events"], None);
    assert_eq!(run.stdout.lines().count(), N);
    // --count.
    let run = ok(b, &["consume", "events", "--count", "5"], None);
    assert_eq!(run.stdout.lines().count(), 5);
    // --partition, --offset and every format escape.
    let p1: Vec<&Value> = records.iter().filter(|r| r["partition"] == 1).collect();
    let run = ok(
        b,
        &[
            "consume",
            "events",
            "--partition",
            "1",
            "--offset",
            "100",
            "--count",
            "3",
            "--format",
            "%k|%v|%p|%o|%t|%h|100%%\\n",
        ],
        None,
    );
    let expected: String = p1[100..103]
        .iter()
        .map(|r| {
            format!(
                "{}|{}|1|{}|{}|src=cli,n=7|100%\n",
                r["key"].as_str().unwrap(),
                r["value"].as_str().unwrap(),
                r["offset"],
                r["timestamp"]
            )
        })
        .collect();
    assert_eq!(run.stdout, expected);
    // --offset without --count reads to the end of the partition.
    let run = ok(
        b,
        &["consume", "events", "-p", "1", "--offset", &(p1.len() - 2).to_string(), "--format", "%o\\t%v\\n"],
        None,
    );
    assert_eq!(run.stdout.lines().count(), 2, "{run:?}");
    assert!(run.stdout.starts_with(&format!("{}\t", p1.len() - 2)), "{run:?}");

    // --from-timestamp: only records stamped at or after it.
    std::thread::sleep(Duration::from_millis(20));
    let since = now_ms();
    ok(b, &["produce", "events", "--partition", "2"], Some(b"late-1\nlate-2\nlate-3"));
    let run = ok(b, &["consume", "events", "--from-timestamp", &since.to_string()], None);
    assert_eq!(run.stdout, "late-1\nlate-2\nlate-3\n");
    let run = ok(b, &["consume", "events", "--from-timestamp", &(now_ms() + 60_000).to_string()], None);
    assert_eq!(run.stdout, "");
}

#[test]
fn follow_prints_records_produced_after_it_started() {
    let (_dir, server) = data_dir();
    let b = &server.bootstrap();
    ok(b, &["topic", "create", "live", "--partitions", "2"], None);
    ok(b, &["produce", "live"], Some(b"before\n"));

    let mut child: Child = Command::new(binary("strata"))
        .args(["--bootstrap", b, "consume", "live", "--follow", "--format", "%v\\n"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(20));
    let mut lines = vec![first.expect("the record produced before follow started")];
    ok(b, &["produce", "live"], Some(b"after-1\nafter-2\n"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while lines.len() < 3 && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            lines.push(l);
        }
    }
    // Still running: --follow does not stop at the end. Ended by its PID.
    assert!(child.try_wait().unwrap().is_none(), "consume --follow exited");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(lines, ["before", "after-1", "after-2"]);
}

#[test]
fn every_error_is_one_line_and_a_non_zero_exit() {
    let (_dir, server) = data_dir();
    let b = &server.bootstrap();
    ok(b, &["topic", "create", "t", "--partitions", "2"], None);
    ok(b, &["produce", "t", "--partition", "0"], Some(b"a\nb\nc\n"));

    fails(b, &["produce", "nope"], Some(b"x\n"), "UNKNOWN_TOPIC_OR_PARTITION: unknown topic 'nope'");
    fails(b, &["consume", "nope"], None, "UNKNOWN_TOPIC_OR_PARTITION: unknown topic 'nope'");
    fails(b, &["produce", "t", "--partition", "9"], Some(b"x\n"), "partition 9");
    fails(b, &["consume", "t", "--partition", "9"], None, "partition 9");
    fails(b, &["topic", "create", "bad name!"], None, "INVALID_TOPIC_NAME");
    fails(b, &["consume", "t", "--partition", "0", "--offset", "4"], None, "OFFSET_OUT_OF_RANGE");
    fails(b, &["consume", "t", "--offset", "1000"], None, "valid offsets are 0 to");

    // A record above the topic's max.message.bytes is refused by name.
    ok(b, &["topic", "create", "small", "--config", "max.message.bytes=1000"], None);
    let mut big = vec![b'x'; 3000];
    big.push(b'\n');
    fails(b, &["produce", "small"], Some(&big), "RECORD_TOO_LARGE");
    fails(b, &["produce", "small", "--acks", "1"], Some(&big), "RECORD_TOO_LARGE");
    // Many small records under that limit are batched below it, not
    // rejected together (the producer caps batches at the topic's limit).
    let small: String = (0..200).map(|i| format!("small-record-{i:04}-{}\n", "y".repeat(40))).collect();
    ok(b, &["produce", "small", "--partition", "0"], Some(small.as_bytes()));
    let out = ok(b, &["consume", "small", "--format", "%v\n"], None);
    assert_eq!(out.stdout.lines().count(), 200);

    // Nothing listening.
    let closed = format!("127.0.0.1:{}", free_port());
    fails(&closed, &["topic", "list"], None, &format!("cannot connect to {closed}"));
    fails(&closed, &["produce", "t"], Some(b"x\n"), "cannot connect");
    fails(&closed, &["consume", "t"], None, "cannot connect");
    fails(&closed, &["cluster", "health"], None, "cannot connect");

    // Consumer groups: unknown groups, nothing to reset, bad positions.
    fails(b, &["group", "describe", "nope"], None, "GROUP_ID_NOT_FOUND");
    fails(b, &["group", "delete", "nope"], None, "GROUP_ID_NOT_FOUND");
    fails(b, &["group", "reset", "nope", "--to", "earliest"], None, "has no committed offsets");
    fails(b, &["group", "reset", "nope", "--to", "latest", "--topic", "missing"], None, "unknown topic 'missing'");
    let run = fails(b, &["group", "reset", "g", "--to", "yesterday"], None, "offset:N or timestamp:MS");
    assert_eq!(run.code, Some(2));
    let run = fails(b, &["consume", "t", "--group", "g", "--offset", "1"], None, "cannot be used with");
    assert_eq!(run.code, Some(2));

    // Bad arguments.
    fails(b, &["consume", "t", "--format", "%x"], None, "unknown escape '%x'");
    let run = fails(b, &["consume", "t", "--offset", "1", "--from-beginning"], None, "cannot be used with");
    assert_eq!(run.code, Some(2));
    fails(b, &["produce", "t", "--acks", "2"], Some(b""), "'2'");
    fails(b, &["topic", "frobnicate"], None, "unrecognized subcommand");
}

#[test]
fn cluster_info_and_health() {
    let (_dir, mut server) = data_dir();
    let b = &server.bootstrap();
    ok(b, &["topic", "create", "h", "--partitions", "2"], None);

    let run = ok(b, &["cluster", "info"], None);
    for needle in ["CLUSTER", "CONTROLLER", "BROKERS", "VOTERS", "unfenced", b.as_str()] {
        assert!(run.stdout.contains(needle), "'{needle}' missing: {}", run.stdout);
    }
    let info = ok(b, &["cluster", "info", "--output", "json"], None).json();
    assert!(!info["cluster_id"].as_str().unwrap().is_empty());
    assert_eq!(info["controller_id"], 1);
    assert_eq!(info["brokers"][0]["address"], b.as_str());
    assert_eq!(info["brokers"][0]["state"], "unfenced");
    assert_eq!(info["voters"][0]["is_leader"], true);

    let run = ok(b, &["cluster", "health"], None);
    assert!(run.stdout.contains("HEALTHY     yes"), "{run:?}");
    let health = ok(b, &["cluster", "health", "--output", "json"], None).json();
    assert_eq!(health["healthy"], true);
    assert_eq!(health["partitions"], 2);
    assert_eq!(health["problems"], serde_json::json!([]));

    server.stop();
    fails(b, &["cluster", "health"], None, "cannot connect");
    fails(b, &["cluster", "info"], None, "cannot connect");
}

#[test]
fn bench_summaries_are_one_json_line() {
    let (_dir, server) = data_dir();
    let b = &server.bootstrap();

    let produce =
        strata(b, &["bench", "produce", "--topic", "bench", "--records", "20000", "--acks", "1", "--json"], None);
    assert_eq!(produce.code, Some(0), "{produce:?}");
    assert_eq!(produce.stdout.lines().count(), 1, "{produce:?}");
    let s = produce.json();
    for key in
        ["records", "seconds", "records_per_sec", "mb_per_sec", "p50_ms", "p99_ms", "p99_9_ms", "p99_99_ms", "max_ms"]
    {
        assert!(s[key].is_number(), "{key} missing: {s}");
    }
    assert_eq!(s["records"], 20000);
    assert_eq!(s["bytes"], 20000 * 1024);
    assert_eq!(s["bench"], "produce");
    let d = ok(b, &["topic", "describe", "bench", "--output", "json"], None).json();
    assert_eq!(d["partitions"][0]["high_watermark"], 20000, "the topic was created with one partition");

    let consume = strata(b, &["bench", "consume", "--topic", "bench", "--json"], None);
    assert_eq!(consume.code, Some(0), "{consume:?}");
    let s = consume.json();
    assert_eq!(s["records"], 20000);
    assert!(s["mb_per_sec"].as_f64().unwrap() > 0.0, "{s}");

    let e2e = strata(
        b,
        &["bench", "e2e", "--topic", "lat", "--records", "2000", "--rate", "2000", "--partitions", "2", "--json"],
        None,
    );
    assert_eq!(e2e.code, Some(0), "{e2e:?}");
    assert_eq!(e2e.stdout.lines().count(), 1, "{e2e:?}");
    let s = e2e.json();
    for key in
        ["records", "seconds", "records_per_sec", "mb_per_sec", "p50_ms", "p99_ms", "p99_9_ms", "p99_99_ms", "max_ms"]
    {
        assert!(s[key].is_number(), "{key} missing: {s}");
    }
    assert_eq!(s["records"], 2000);
    assert!(s["seconds"].as_f64().unwrap() >= 0.9, "paced at 2000/s: {s}");
    let d = ok(b, &["topic", "describe", "lat", "--output", "json"], None).json();
    assert_eq!(d["partitions"].as_array().unwrap().len(), 2);
}

#[test]
fn rebalance_leaders_on_a_single_node_moves_nothing() {
    let (_dir, server) = data_dir();
    let b = &server.bootstrap();
    ok(b, &["topic", "create", "orders", "--partitions", "2"], None);

    let run = ok(b, &["topic", "rebalance-leaders"], None);
    assert_eq!(run.stdout, "no partition needed a new leader\n");
    let run = ok(b, &["topic", "rebalance-leaders", "orders"], None);
    assert!(run.stdout.starts_with("moved 0 partition(s), skipped 2\n"), "{run:?}");
    assert_eq!(run.stdout.matches("ELECTION_NOT_NEEDED").count(), 2, "{run:?}");
    let j = ok(b, &["topic", "rebalance-leaders", "orders", "--output", "json"], None).json();
    assert_eq!(j["election"], "preferred");
    assert_eq!(j["moved"], serde_json::json!([]));
    let skipped = j["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 2);
    assert!(skipped.iter().all(|s| s["error"] == "ELECTION_NOT_NEEDED" && s["leader"] == 1), "{j}");
    let j = ok(b, &["topic", "rebalance-leaders", "nope", "--unclean", "--output", "json"], None).json();
    assert_eq!(j["election"], "unclean");
    assert_eq!(j["skipped"][0]["error"], "UNKNOWN_TOPIC_OR_PARTITION");
}

/// Rows of the table whose header line starts with `header`, split on
/// whitespace, up to the first blank or non-table line.
fn table_rows(stdout: &str, header: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with(header))
        .skip(1)
        .take_while(|l| !l.is_empty() && !l.starts_with('(') && !l.starts_with("reset ") && !l.starts_with("dry run"))
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

#[test]
fn consumer_groups_resume_and_are_described_reset_and_deleted() {
    let (_dir, server) = data_dir();
    let b = &server.bootstrap();
    ok(b, &["topic", "create", "t", "--partitions", "2"], None);
    ok(b, &["produce", "t", "--partition", "0"], Some(b"a\nb\nc\n"));
    ok(b, &["produce", "t", "--partition", "1"], Some(b"d\n"));

    // No committed offset and no --from-beginning: starts at the end (as
    // Kafka's console consumer) and commits that position.
    let run = ok(b, &["consume", "t", "--group", "late"], None);
    assert_eq!(run.stdout, "");
    let late = ok(b, &["group", "describe", "late", "--output", "json"], None).json();
    assert_eq!(late["partitions"][0]["committed"], 3, "{late}");
    assert_eq!(late["total_lag"], 0, "{late}");

    // --from-beginning applies without a commit; what was printed is
    // committed, so the next run prints only what came since.
    let run = ok(b, &["consume", "t", "--group", "g", "--from-beginning", "--format", "%p:%v\n"], None);
    let mut lines: Vec<&str> = run.stdout.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["0:a", "0:b", "0:c", "1:d"]);
    ok(b, &["produce", "t", "--partition", "0"], Some(b"e\n"));
    let run = ok(b, &["consume", "t", "--group", "g", "--from-beginning"], None);
    assert_eq!(run.stdout, "e\n");
    // --count stops part-way: only what was printed is committed.
    ok(b, &["produce", "t", "--partition", "0"], Some(b"f\ng\n"));
    let run = ok(b, &["consume", "t", "--group", "g", "--count", "1"], None);
    assert_eq!(run.stdout, "f\n");

    // describe: header, then committed offset, log end and lag per partition.
    let run = ok(b, &["group", "describe", "g"], None);
    assert!(run.stdout.starts_with("GROUP        g\nSTATE        empty\nCOORDINATOR  1\nMEMBERS      0\n"), "{run:?}");
    assert!(run.stdout.contains("TOTAL-LAG    1\n"), "{run:?}");
    assert_eq!(
        table_rows(&run.stdout, "TOPIC"),
        [["t", "0", "5", "6", "1", "-"], ["t", "1", "1", "1", "0", "-"]],
        "{run:?}"
    );
    let j = ok(b, &["group", "describe", "g", "--output", "json"], None).json();
    assert_eq!(j["partitions"][0]["lag"], 1, "{j}");
    // The same lag as a Prometheus gauge on the coordinator (which hosts the
    // partition here).
    let (_, metrics) = strata_tests::http_get(server.http, "/metrics").expect("metrics");
    let lag = r#"strata_group_lag{group="g",topic="t",partition="0"} 1"#;
    assert!(metrics.lines().any(|l| l == lag), "{metrics}");
    assert_eq!(j["coordinator"], 1);

    let run = ok(b, &["group", "list"], None);
    let listed = table_rows(&run.stdout, "GROUP");
    assert_eq!(listed.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(), ["g", "late"], "{run:?}");
    let list = ok(b, &["group", "list", "--output", "json"], None).json();
    assert_eq!(list[0]["group"], "g");
    assert_eq!(list[0]["state"], "empty");

    // reset: a dry run commits nothing; offsets are clamped to the log.
    let run = ok(b, &["group", "reset", "g", "--to", "earliest", "--dry-run"], None);
    assert_eq!(table_rows(&run.stdout, "TOPIC"), [["t", "0", "5", "0"], ["t", "1", "1", "0"]], "{run:?}");
    assert!(run.stdout.contains("dry run"), "{run:?}");
    let j = ok(b, &["group", "reset", "g", "--to", "offset:100", "--output", "json"], None).json();
    assert_eq!(j["partitions"][0], serde_json::json!({"topic": "t", "partition": 0, "old": 5, "new": 6}), "{j}");
    let run = ok(b, &["group", "reset", "g", "--to", "earliest", "--topic", "t"], None);
    assert!(run.stdout.contains("reset 2 partition(s) of group 'g' to earliest"), "{run:?}");
    let run = ok(b, &["consume", "t", "--group", "g", "--format", "%p:%v\n"], None);
    assert_eq!(run.stdout.lines().count(), 7, "{run:?}");
    let run = ok(b, &["group", "reset", "g", "--to", &format!("timestamp:{}", now_ms() + 60_000)], None);
    assert_eq!(table_rows(&run.stdout, "TOPIC"), [["t", "0", "6", "6"], ["t", "1", "1", "1"]], "{run:?}");

    // delete, then the group is gone.
    let run = ok(b, &["group", "delete", "g"], None);
    assert_eq!(run.stdout, "deleted group 'g'\n");
    fails(b, &["group", "describe", "g"], None, "GROUP_ID_NOT_FOUND");
    let run = ok(b, &["group", "list", "--output", "json"], None);
    assert_eq!(run.json().as_array().unwrap().len(), 1, "{run:?}");
}
