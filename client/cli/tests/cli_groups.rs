//! The `strata group …` and `strata consume --group` commands against the
//! in-process fake cluster (the real binary, run as a process).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

#[path = "../../tests/fake/mod.rs"]
mod fake;

use std::process::Command;

use fake::{bounded, FakeCluster};
use serde_json::Value;
use strata_client::{Producer, ProducerConfig, ProducerRecord};

#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `strata --bootstrap B ARGS` off the runtime's threads.
async fn strata(fake: &FakeCluster, args: &[&str]) -> Run {
    let bootstrap = fake.addrs[0].clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--bootstrap")
            .arg(bootstrap)
            .args(&args)
            .env_remove("STRATA_BOOTSTRAP")
            .output()
            .expect("run strata");
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

async fn ok(fake: &FakeCluster, args: &[&str]) -> Run {
    let run = strata(fake, args).await;
    assert_eq!(run.code, Some(0), "strata {args:?}: {run:?}");
    assert!(run.stderr.is_empty(), "strata {args:?}: {run:?}");
    run
}

async fn fails(fake: &FakeCluster, args: &[&str], needle: &str) -> Run {
    let run = strata(fake, args).await;
    assert_eq!(run.code, Some(1), "strata {args:?} should fail: {run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{run:?}");
    assert!(lines[0].starts_with("error: ") && lines[0].contains(needle), "expected '{needle}': {run:?}");
    run
}

async fn produce(fake: &FakeCluster, partition: u32, values: &[&str]) {
    let producer = Producer::connect(ProducerConfig::new(fake.addrs.clone())).await.unwrap();
    for v in values {
        producer.send(ProducerRecord::new("t", v.to_string()).with_partition(partition)).await.unwrap().await.unwrap();
    }
    producer.close().await;
}

/// The group's commits for partitions 0 and 1 of `t`.
fn committed(fake: &FakeCluster, group: &str) -> (Option<u64>, Option<u64>) {
    let s = fake.state();
    (s.committed(group, "t", 0), s.committed(group, "t", 1))
}

fn rows(stdout: &str, header: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with(header))
        .skip(1)
        .take_while(|l| !l.is_empty() && !l.starts_with('('))
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn consume_with_a_group_resumes_and_groups_are_described_reset_and_deleted() {
    bounded(async {
        let fake = FakeCluster::start(2).await;
        fake.create_topic("t", 2);
        produce(&fake, 0, &["a", "b", "c"]).await;
        produce(&fake, 1, &["d"]).await;

        // No commit, no --from-beginning: starts at the end (reads nothing)
        // and commits that position.
        let run = ok(&fake, &["consume", "t", "--group", "late"]).await;
        assert_eq!(run.stdout, "");
        assert_eq!(fake.state().committed("late", "t", 0), Some(3));

        // --from-beginning applies without a commit; what was printed is
        // committed, so a second run prints only what came since.
        let run = ok(&fake, &["consume", "t", "--group", "g", "--from-beginning", "--format", "%p:%v\n"]).await;
        let mut lines: Vec<&str> = run.stdout.lines().collect();
        lines.sort_unstable();
        assert_eq!(lines, ["0:a", "0:b", "0:c", "1:d"]);
        assert_eq!(committed(&fake, "g"), (Some(3), Some(1)));
        produce(&fake, 0, &["e"]).await;
        let run = ok(&fake, &["consume", "t", "--group", "g", "--from-beginning"]).await;
        assert_eq!(run.stdout, "e\n");
        // --count stops mid-way: only what was printed is committed.
        produce(&fake, 0, &["f", "g"]).await;
        let run = ok(&fake, &["consume", "t", "--group", "g", "--count", "1"]).await;
        assert_eq!(run.stdout, "f\n");
        assert_eq!(fake.state().committed("g", "t", 0), Some(5));

        // describe: header and per-partition lag.
        let run = ok(&fake, &["group", "describe", "g"]).await;
        assert!(
            run.stdout.starts_with("GROUP        g\nSTATE        empty\nCOORDINATOR  1\nMEMBERS      0\n"),
            "{run:?}"
        );
        assert!(run.stdout.contains("TOTAL-LAG    1\n"), "{run:?}");
        assert_eq!(
            rows(&run.stdout, "TOPIC"),
            [["t", "0", "5", "6", "1", "-"], ["t", "1", "1", "1", "0", "-"]],
            "{}",
            run.stdout
        );
        let j: Value =
            serde_json::from_str(&ok(&fake, &["group", "describe", "g", "--output", "json"]).await.stdout).unwrap();
        assert_eq!(j["partitions"][0]["lag"], 1);
        assert_eq!(j["total_lag"], 1);

        let run = ok(&fake, &["group", "list"]).await;
        assert_eq!(rows(&run.stdout, "GROUP"), [["g", "empty", "1"], ["late", "empty", "1"]]);

        // reset: a dry run changes nothing; then earliest is committed.
        let run = ok(&fake, &["group", "reset", "g", "--to", "earliest", "--dry-run"]).await;
        assert_eq!(rows(&run.stdout, "TOPIC")[..2], [["t", "0", "5", "0"], ["t", "1", "1", "0"]]);
        assert!(run.stdout.contains("dry run"), "{run:?}");
        assert_eq!(fake.state().committed("g", "t", 0), Some(5));
        let run = ok(&fake, &["group", "reset", "g", "--to", "offset:100", "--output", "json"]).await;
        let j: Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(j["partitions"][0], serde_json::json!({"topic": "t", "partition": 0, "old": 5, "new": 6}));
        ok(&fake, &["group", "reset", "g", "--to", "earliest", "--topic", "t"]).await;
        assert_eq!(committed(&fake, "g"), (Some(0), Some(0)));
        fails(&fake, &["group", "reset", "nobody", "--to", "latest"], "has no committed offsets").await;
        fails(&fake, &["group", "reset", "g", "--to", "latest", "--topic", "nope"], "unknown topic 'nope'").await;
        let run = strata(&fake, &["group", "reset", "g", "--to", "yesterday"]).await;
        assert_eq!(run.code, Some(2), "{run:?}");

        // A group with members: reset and delete are refused.
        fake.add_member("busy", "member-1", "t", vec![0, 1]);
        fake.state().offsets.entry("busy".into()).or_default();
        let run = ok(&fake, &["group", "describe", "busy"]).await;
        assert!(run.stdout.contains("STATE        stable"), "{run:?}");
        assert_eq!(rows(&run.stdout, "MEMBER-ID")[0][0], "member-1");
        assert_eq!(rows(&run.stdout, "TOPIC")[0], ["t", "0", "-", "6", "6", "member-1"]);
        fails(
            &fake,
            &["group", "reset", "busy", "--to", "earliest", "--topic", "t"],
            "NON_EMPTY_GROUP: group 'busy' still has 1 member(s)",
        )
        .await;
        fails(&fake, &["group", "delete", "busy"], "NON_EMPTY_GROUP").await;

        let run = ok(&fake, &["group", "delete", "g"]).await;
        assert_eq!(run.stdout, "deleted group 'g'\n");
        fails(&fake, &["group", "describe", "g"], "GROUP_ID_NOT_FOUND: group 'g' not found").await;
        let run = strata(&fake, &["consume", "t", "--group", "g", "--offset", "1"]).await;
        assert_eq!(run.code, Some(2), "{run:?}");
    })
    .await;
}
