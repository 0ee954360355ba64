//! `deploy/local-cluster.sh`, the local N-node launcher of `docs/interfaces.md`, driven
//! through `strata_tests::local_cluster::LocalCluster`: up, produce/consume,
//! kill -9 and restart, pause/resume (fenced past the 3 s session timeout),
//! down leaving no process; and its one-line usage errors.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use strata_server::testkit::wait_until;
use strata_tests::binary;
use strata_tests::cli::{strata, strata_json};
use strata_tests::local_cluster::LocalCluster;

/// `state` of broker `id` in `strata cluster info` asked of node `via`.
fn broker_state(c: &LocalCluster, via: usize, id: u64) -> Option<String> {
    let info = strata_json(&c.bootstrap(via), &["cluster", "info"]);
    let b = info["brokers"].as_array()?.iter().find(|b| b["node_id"] == id)?;
    b["state"].as_str().map(str::to_string)
}

/// Asserts the script failed with exactly one line on stderr containing `what`.
fn one_line_error(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected a failure, got {}: {stderr}", out.status);
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line expected: {stderr:?}");
    assert!(stderr.contains(what), "{what:?} not in {stderr:?}");
}

#[test]
fn up_produce_consume_kill_start_pause_resume_down() {
    let t0 = Instant::now();
    // STRATA_* variables reach the servers (the script's flags don't set a rack).
    let c = LocalCluster::up_with_env(3, &[("STRATA_RACK", "lc-rack")]);
    eprintln!("up 3 took {:?}", t0.elapsed());
    for i in 1..=3 {
        assert!(c.ready(i), "node {i} not ready after up");
        assert!(c.pid(i).is_some(), "node {i} has no live pid");
    }
    let status = c.ok(&["status"]);
    assert_eq!(status.lines().filter(|l| l.contains("alive yes ready yes")).count(), 3, "{status}");

    // Three voters with one leader, three unfenced brokers.
    wait_until("3 voters and 3 unfenced brokers", Duration::from_secs(10), || {
        let info = strata_json(&c.bootstrap(1), &["cluster", "info"]);
        let voters = info["voters"].as_array().map_or(0, Vec::len);
        let leaders = info["voters"].as_array().map_or(0, |v| v.iter().filter(|v| v["is_leader"] == true).count());
        let unfenced = info["brokers"].as_array().map_or(0, |b| b.iter().filter(|b| b["state"] == "unfenced").count());
        voters == 3 && leaders == 1 && unfenced == 3
    });
    let info = strata_json(&c.bootstrap(2), &["cluster", "info"]);
    assert!(info["brokers"].as_array().unwrap().iter().all(|b| b["rack"] == "lc-rack"), "{info}");

    // Usage errors against a live 3-node cluster: one line, non-zero exit.
    one_line_error(&c.run(&["kill", "9"]), "node 9 out of range");
    one_line_error(&c.run(&["start", "1"]), "node 1 is already running");

    // A topic over the three brokers (replication factor 1), 100 records in
    // and out.
    let all = c.bootstrap_all();
    let out = strata(&all, &["topic", "create", "lc", "--partitions", "3", "--replication-factor", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: String = (0..100).map(|i| format!("k{i}:v{i}\n")).collect();
    let mut produce = Command::new(binary("strata"))
        .args(["--bootstrap", &all, "produce", "lc", "--key-separator", ":"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    produce.stdin.take().unwrap().write_all(lines.as_bytes()).unwrap();
    let out = produce.wait_with_output().unwrap();
    assert!(out.status.success(), "produce: {}", String::from_utf8_lossy(&out.stderr));
    let out = strata(&c.bootstrap(3), &["consume", "lc", "--from-beginning", "--format", "%v\\n"]);
    assert!(out.status.success(), "consume: {}", String::from_utf8_lossy(&out.stderr));
    let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    got.sort();
    let mut want: Vec<String> = (0..100).map(|i| format!("v{i}")).collect();
    want.sort();
    assert_eq!(got, want);

    // kill -9 node 2: its broker is fenced after the session timeout.
    let pid2 = c.pid(2).unwrap();
    c.kill(2);
    assert!(!c.is_node_process(pid2), "node 2 (pid {pid2}) survived kill");
    assert_eq!(c.pid(2), None);
    one_line_error(&c.run(&["kill", "2"]), "node 2 is not running");
    let took =
        wait_until("broker 2 fenced", Duration::from_secs(15), || broker_state(&c, 1, 2).as_deref() == Some("fenced"));
    eprintln!("broker 2 fenced {took:?} after kill -9");

    // start 2: ready (the script waits for /readyz) and unfenced again.
    c.start(2);
    assert!(c.ready(2));
    assert_ne!(c.pid(2), Some(pid2));
    wait_until("broker 2 unfenced", Duration::from_secs(15), || broker_state(&c, 1, 2).as_deref() == Some("unfenced"));

    // pause 3 (SIGSTOP): alive but silent, fenced after the 3 s session
    // timeout; resume 3: unfenced and ready again.
    let pid3 = c.pid(3).unwrap();
    let paused = Instant::now();
    c.pause(3);
    assert!(c.ok(&["status"]).lines().any(|l| l.starts_with("node 3:") && l.contains("state paused")));
    wait_until("broker 3 fenced while paused", Duration::from_secs(15), || {
        broker_state(&c, 1, 3).as_deref() == Some("fenced")
    });
    let fenced_after = paused.elapsed();
    eprintln!("broker 3 fenced {fenced_after:?} after SIGSTOP");
    // The 3 s session timeout runs from the last heartbeat (sent every 1 s)
    // before SIGSTOP, so fencing comes 2..3 s (plus detection) after it.
    assert!(fenced_after >= Duration::from_millis(1800), "fenced before the session timeout: {fenced_after:?}");
    assert_eq!(c.pid(3), Some(pid3), "a paused node is still alive");
    c.resume(3);
    wait_until("broker 3 unfenced after resume", Duration::from_secs(15), || {
        broker_state(&c, 1, 3).as_deref() == Some("unfenced")
    });
    wait_until("node 3 ready after resume", Duration::from_secs(10), || c.ready(3));

    // down: every node process is gone, and status says so.
    let pids: Vec<u32> = (1..=3).map(|i| c.pid(i).expect("running before down")).collect();
    let t = Instant::now();
    c.down();
    eprintln!("down took {:?}", t.elapsed());
    for pid in &pids {
        assert!(!c.is_node_process(*pid), "pid {pid} still running after down");
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(state.is_empty() || state.contains(") Z"), "pid {pid} still alive: {state}");
    }
    let status = c.ok(&["status"]);
    assert_eq!(status.lines().filter(|l| l.contains("alive no")).count(), 3, "{status}");
    eprintln!("whole test took {:?}", t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(60), "took {:?}", t0.elapsed());
}

#[test]
fn usage_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(LocalCluster::script())
            .args(args)
            .env("STRATA_CLUSTER_DIR", dir.path().join("c"))
            .env("STRATA_BIN_DIR", binary("strata-server").parent().unwrap())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    one_line_error(&run(&["frobnicate"]), "unknown command 'frobnicate'");
    one_line_error(&run(&[]), "no command given");
    one_line_error(&run(&["up"]), "up takes the number of nodes");
    one_line_error(&run(&["up", "x"]), "N must be a number");
    one_line_error(&run(&["up", "0"]), "between 1 and 100");
    one_line_error(&run(&["kill"]), "kill takes one node number");
    one_line_error(&run(&["kill", "1"]), "no cluster in");
    one_line_error(&run(&["status"]), "no cluster in");
    one_line_error(&run(&["down"]), "no cluster in");
    // Nothing was started or written by the failed commands.
    assert!(!dir.path().join("c").exists());
}
