//! Controller membership on a running quorum (`docs/operations.md`,
//! "Replace a controller voter"): a failed voter is removed, a new node
//! joins as a learner and becomes a voter, and the quorum keeps
//! committing with it — after another original voter dies, and after the
//! remaining one restarts with its original `--controller-voters` (it
//! finds the new voter's address in its own metadata).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::time::Duration;

use strata_server::testkit::wait_until;
use strata_tests::cli::{strata, strata_json};
use strata_tests::ServerProcess as Node;

fn voters(via: &Node) -> Vec<u64> {
    let info = strata_json(&via.bootstrap(), &["cluster", "info"]);
    let mut v: Vec<u64> =
        info["voters"].as_array().map(|a| a.iter().filter_map(|v| v["node_id"].as_u64()).collect()).unwrap_or_default();
    v.sort_unstable();
    v
}

fn create(via: &Node, topic: &str) -> std::process::Output {
    strata(&via.bootstrap(), &["topic", "create", topic, "-p", "1", "-r", "1"])
}

/// The last lines of a node's log, for a failure report.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_failed_voter_is_replaced_and_the_quorum_keeps_committing() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = (1..=3).map(|id| Node::node(root.path(), id, "broker,controller")).collect();
    let original = Node::voters(&nodes);
    for n in nodes.iter_mut() {
        n.start(&original);
    }
    wait_until("three nodes ready", Duration::from_secs(30), || nodes.iter().all(Node::ready));
    assert_eq!(voters(&nodes[0]), vec![1, 2, 3]);
    assert!(create(&nodes[0], "before").status.success());

    // Voter 3 fails for good; the operator removes it.
    nodes[2].kill();
    let out = strata(&nodes[0].bootstrap(), &["cluster", "remove-voter", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_until("voters 1 and 2", Duration::from_secs(10), || voters(&nodes[0]) == vec![1, 2]);
    let out = strata(&nodes[0].bootstrap(), &["cluster", "remove-voter", "3"]);
    assert!(stderr(&out).contains("not a controller voter"), "{}", stderr(&out));

    // A new node starts with the original voter list (not naming itself)
    // and --controller-join, and waits; add-voter makes it a learner, then
    // a voter.
    let mut new = Node::node(root.path(), 4, "controller");
    new.add_env(&[("STRATA_CONTROLLER_JOIN", "true")]);
    new.start(&original);
    let address = new.controller.to_string();
    let out = strata(&nodes[0].bootstrap(), &["cluster", "add-voter", "4", "--address", &address, "--wait", "60s"]);
    assert!(out.status.success(), "{}\n{}", stderr(&out), new.log());
    assert_eq!(voters(&nodes[0]), vec![1, 2, 4]);
    let out = strata(&nodes[0].bootstrap(), &["cluster", "add-voter", "4", "--address", &address]);
    assert!(stderr(&out).contains("already a voter"), "{}", stderr(&out));

    // Voter 1 dies too: 2 and 4 are a majority of {1, 2, 4} only if the new
    // voter really votes and stores entries.
    nodes[0].kill();
    let out = create(&nodes[1], "after");
    assert!(out.status.success(), "the quorum {{2, 4}} commits: {}\n{}", stderr(&out), new.log());

    // Voter 2 restarts with its original flags (voters 1, 2, 3): the new
    // voter's address comes from its own metadata, or nothing commits.
    nodes[1].stop();
    nodes[1].start(&original);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !nodes[1].ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "node 2 not ready again within 30 s\n--- node 2 ---\n{}\n--- node 4 ---\n{}",
            tail(&nodes[1].log()),
            tail(&new.log())
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = create(&nodes[1], "after-restart");
    assert!(out.status.success(), "{}\n{}", stderr(&out), nodes[1].log());
    let topics = strata_json(&nodes[1].bootstrap(), &["topic", "list"]);
    for t in ["before", "after", "after-restart"] {
        assert!(topics.to_string().contains(t), "{t} missing: {topics}");
    }
}

#[test]
fn three_voters_grow_to_five_and_commit_without_two_of_the_first() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = (1..=3).map(|id| Node::node(root.path(), id, "broker,controller")).collect();
    let original = Node::voters(&nodes);
    for n in nodes.iter_mut() {
        n.start(&original);
    }
    wait_until("three nodes ready", Duration::from_secs(30), || nodes.iter().all(Node::ready));
    // Two new controllers join, one change at a time.
    let mut joined = Vec::new();
    for id in [4, 5] {
        let mut n = Node::node(root.path(), id, "controller");
        n.add_env(&[("STRATA_CONTROLLER_JOIN", "true")]);
        n.start(&original);
        let address = n.controller.to_string();
        let id = id.to_string();
        let out = strata(&nodes[2].bootstrap(), &["cluster", "add-voter", &id, "--address", &address, "--wait", "60s"]);
        assert!(out.status.success(), "{}\n{}", stderr(&out), n.log());
        joined.push(n);
    }
    assert_eq!(voters(&nodes[2]), vec![1, 2, 3, 4, 5]);
    // Voters 1 and 2 die: 3, 4 and 5 are a majority of five only if both
    // new voters vote.
    nodes[0].kill();
    nodes[1].kill();
    let out = create(&nodes[2], "with-five");
    assert!(out.status.success(), "{{3, 4, 5}} commit: {}\n{}", stderr(&out), tail(&joined[1].log()));
}
