//! The `strata group …` and `strata consume --group` commands against the
//! real broker in process (the real binary, run as a process).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

#[path = "../../tests/kit/mod.rs"]
mod kit;

use std::process::Command;

use kit::{bounded, create_topic, TestCluster};
use serde_json::Value;
use strata_client::{Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord};

#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `strata --bootstrap B ARGS` off the runtime's threads.
async fn strata(cluster: &TestCluster, args: &[&str]) -> Run {
    let bootstrap = cluster.addr(1);
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

async fn ok(cluster: &TestCluster, args: &[&str]) -> Run {
    let run = strata(cluster, args).await;
    assert_eq!(run.code, Some(0), "strata {args:?}: {run:?}");
    assert!(run.stderr.is_empty(), "strata {args:?}: {run:?}");
    run
}

async fn fails(cluster: &TestCluster, args: &[&str], needle: &str) -> Run {
    let run = strata(cluster, args).await;
    assert_eq!(run.code, Some(1), "strata {args:?} should fail: {run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{run:?}");
    assert!(lines[0].starts_with("error: ") && lines[0].contains(needle), "expected '{needle}': {run:?}");
    run
}

async fn produce(cluster: &TestCluster, partition: u32, values: &[&str]) {
    let producer = Producer::connect(ProducerConfig::new(cluster.addrs())).await.unwrap();
    for v in values {
        producer.send(ProducerRecord::new("t", v.to_string()).with_partition(partition)).await.unwrap().await.unwrap();
    }
    producer.close().await;
}

/// The group's commits for partitions 0 and 1 of `t`.
async fn committed(cluster: &TestCluster, group: &str) -> (Option<u64>, Option<u64>) {
    (kit::committed(cluster, group, "t", 0).await, kit::committed(cluster, group, "t", 1).await)
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
        let cluster = TestCluster::start(1).await;
        create_topic(&cluster, "t", 2).await;
        produce(&cluster, 0, &["a", "b", "c"]).await;
        produce(&cluster, 1, &["d"]).await;

        // No commit, no --from-beginning: starts at the end (reads nothing)
        // and commits that position.
        let run = ok(&cluster, &["consume", "t", "--group", "late"]).await;
        assert_eq!(run.stdout, "");
        assert_eq!(kit::committed(&cluster, "late", "t", 0).await, Some(3));

        // --from-beginning applies without a commit; what was printed is
        // committed, so a second run prints only what came since.
        let run = ok(&cluster, &["consume", "t", "--group", "g", "--from-beginning", "--format", "%p:%v\n"]).await;
        let mut lines: Vec<&str> = run.stdout.lines().collect();
        lines.sort_unstable();
        assert_eq!(lines, ["0:a", "0:b", "0:c", "1:d"]);
        assert_eq!(committed(&cluster, "g").await, (Some(3), Some(1)));
        produce(&cluster, 0, &["e"]).await;
        let run = ok(&cluster, &["consume", "t", "--group", "g", "--from-beginning"]).await;
        assert_eq!(run.stdout, "e\n");
        // --count stops mid-way: only what was printed is committed.
        produce(&cluster, 0, &["f", "g"]).await;
        let run = ok(&cluster, &["consume", "t", "--group", "g", "--count", "1"]).await;
        assert_eq!(run.stdout, "f\n");
        assert_eq!(kit::committed(&cluster, "g", "t", 0).await, Some(5));

        // describe: header and per-partition lag.
        let run = ok(&cluster, &["group", "describe", "g"]).await;
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
            serde_json::from_str(&ok(&cluster, &["group", "describe", "g", "--output", "json"]).await.stdout).unwrap();
        assert_eq!(j["partitions"][0]["lag"], 1);
        assert_eq!(j["total_lag"], 1);

        let run = ok(&cluster, &["group", "list"]).await;
        assert_eq!(rows(&run.stdout, "GROUP"), [["g", "empty", "1"], ["late", "empty", "1"]]);

        // reset: a dry run changes nothing; then earliest is committed.
        let run = ok(&cluster, &["group", "reset", "g", "--to", "earliest", "--dry-run"]).await;
        assert_eq!(rows(&run.stdout, "TOPIC")[..2], [["t", "0", "5", "0"], ["t", "1", "1", "0"]]);
        assert!(run.stdout.contains("dry run"), "{run:?}");
        assert_eq!(kit::committed(&cluster, "g", "t", 0).await, Some(5));
        let run = ok(&cluster, &["group", "reset", "g", "--to", "offset:100", "--output", "json"]).await;
        let j: Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(j["partitions"][0], serde_json::json!({"topic": "t", "partition": 0, "old": 5, "new": 6}));
        ok(&cluster, &["group", "reset", "g", "--to", "earliest", "--topic", "t"]).await;
        assert_eq!(committed(&cluster, "g").await, (Some(0), Some(0)));
        fails(&cluster, &["group", "reset", "nobody", "--to", "latest"], "has no committed offsets").await;
        fails(&cluster, &["group", "reset", "g", "--to", "latest", "--topic", "nope"], "unknown topic 'nope'").await;
        let run = strata(&cluster, &["group", "reset", "g", "--to", "yesterday"]).await;
        assert_eq!(run.code, Some(2), "{run:?}");

        // A group with members: reset and delete are refused.
        let mut member = Consumer::connect(ConsumerConfig {
            group_id: Some("busy".into()),
            enable_auto_commit: false,
            max_wait: std::time::Duration::from_millis(50),
            ..ConsumerConfig::new(cluster.addrs())
        })
        .await
        .unwrap();
        member.subscribe(["t"]).unwrap();
        while member.assignment().len() != 2 {
            member.poll().await.unwrap();
        }
        let id = member.member_id().unwrap();
        let mut run = ok(&cluster, &["group", "describe", "busy"]).await;
        while !run.stdout.contains("STATE        stable") {
            member.poll().await.unwrap();
            run = ok(&cluster, &["group", "describe", "busy"]).await;
        }
        assert_eq!(rows(&run.stdout, "MEMBER-ID")[0][0], id);
        assert_eq!(rows(&run.stdout, "TOPIC")[0], ["t", "0", "-", "6", "6", id.as_str()]);
        fails(
            &cluster,
            &["group", "reset", "busy", "--to", "earliest", "--topic", "t"],
            "NON_EMPTY_GROUP: group 'busy' still has 1 member(s)",
        )
        .await;
        fails(&cluster, &["group", "delete", "busy"], "NON_EMPTY_GROUP").await;

        let run = ok(&cluster, &["group", "delete", "g"]).await;
        assert_eq!(run.stdout, "deleted group 'g'\n");
        fails(&cluster, &["group", "describe", "g"], "GROUP_ID_NOT_FOUND: no group 'g'").await;
        let run = strata(&cluster, &["consume", "t", "--group", "g", "--offset", "1"]).await;
        assert_eq!(run.code, Some(2), "{run:?}");
        member.close().await.unwrap();
        cluster.stop().await;
    })
    .await;
}
