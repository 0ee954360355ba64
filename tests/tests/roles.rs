//! Separate roles: three controller-only voters and two broker-only nodes on
//! loopback. Brokers register and heartbeat over the voters' gRPC API and
//! follow metadata as deltas; they keep working across a controller leader
//! kill -9, and a killed broker is fenced and its partitions lose their leader.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use strata_server::testkit::wait_until;
use strata_tests::binary;
use strata_tests::cli::{strata, strata_json};
use strata_tests::ServerProcess as Node;

fn topic_names(node: &Node) -> Vec<String> {
    let v = strata_json(&node.bootstrap(), &["topic", "list"]);
    let list = v.as_array().cloned().or_else(|| v["topics"].as_array().cloned()).unwrap_or_default();
    list.iter().filter_map(|t| t["name"].as_str().map(str::to_string)).collect()
}

fn broker_state(via: &Node, id: u64) -> Option<String> {
    let v = strata_json(&via.bootstrap(), &["cluster", "info"]);
    let b = v["brokers"].as_array()?.iter().find(|b| b["node_id"] == id)?.clone();
    b["state"].as_str().map(str::to_string)
}

#[test]
fn controller_only_voters_and_broker_only_nodes() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = (1..=3).map(|id| Node::node(root.path(), id, "controller")).collect();
    nodes.extend((4..=5).map(|id| Node::node(root.path(), id, "broker")));
    let voters = Node::voters(&nodes);
    assert_eq!(voters.split(',').count(), 3);
    for n in nodes.iter_mut() {
        n.start(&voters);
    }
    wait_until("all five ready", Duration::from_secs(30), || nodes.iter().all(Node::ready));
    let (b4, b5) = (3, 4);

    // The cluster as a broker-only node reports it: the controller leader
    // (asked for its voters' lag), two unfenced brokers, no controller-only
    // node among the brokers.
    let info = strata_json(&nodes[b4].bootstrap(), &["cluster", "info"]);
    let leader = info["controller_id"].as_u64().expect("a controller leader");
    assert!((1..=3).contains(&leader), "{info}");
    let brokers: Vec<u64> = info["brokers"].as_array().unwrap().iter().filter_map(|b| b["node_id"].as_u64()).collect();
    assert_eq!(brokers, vec![4, 5], "{info}");
    let voter_ids: Vec<u64> = info["voters"].as_array().unwrap().iter().filter_map(|v| v["node_id"].as_u64()).collect();
    assert_eq!(voter_ids, vec![1, 2, 3], "{info}");
    // Controller-only nodes serve no client API.
    assert!(!strata(&nodes[0].bootstrap(), &["topic", "list"]).status.success());

    // A topic created through one broker reaches the other through its
    // metadata deltas; partitions spread over both brokers.
    let out =
        strata(&nodes[b4].bootstrap(), &["topic", "create", "r", "--partitions", "4", "--replication-factor", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_until("r on broker 5", Duration::from_secs(10), || topic_names(&nodes[b5]).contains(&"r".to_string()));
    let describe = strata_json(&nodes[b5].bootstrap(), &["topic", "describe", "r"]);
    let leaders: Vec<u64> =
        describe["partitions"].as_array().unwrap().iter().filter_map(|p| p["leader"].as_u64()).collect();
    assert_eq!(leaders.len(), 4, "{describe}");
    assert!(leaders.contains(&4) && leaders.contains(&5), "{describe}");

    let lines: String = (0..200).map(|i| format!("k{i}:v{i}\n")).collect();
    let mut produce = Command::new(binary("strata"))
        .args(["--bootstrap", &nodes[b5].bootstrap(), "produce", "r", "--key-separator", ":"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    produce.stdin.as_mut().unwrap().write_all(lines.as_bytes()).unwrap();
    let out = produce.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let consumed = |via: &Node| {
        let out = strata(&via.bootstrap(), &["consume", "r", "--format", "%v\\n"]);
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    assert_eq!(consumed(&nodes[b4]), 200);

    // kill -9 the controller leader: the brokers find the new one and
    // metadata changes keep flowing to both.
    let li = nodes.iter().position(|n| n.id == leader).unwrap();
    nodes[li].kill();
    let took = wait_until("a new controller leader", Duration::from_secs(15), || {
        strata_json(&nodes[b4].bootstrap(), &["cluster", "info"])["controller_id"]
            .as_u64()
            .is_some_and(|c| c != leader && (1..=3).contains(&c))
    });
    eprintln!("brokers saw the new controller leader after {took:?}");
    wait_until("create r2 after failover", Duration::from_secs(15), || {
        strata(&nodes[b5].bootstrap(), &["topic", "create", "r2"]).status.success()
            || topic_names(&nodes[b5]).contains(&"r2".to_string())
    });
    wait_until("r2 on broker 4", Duration::from_secs(10), || topic_names(&nodes[b4]).contains(&"r2".to_string()));
    assert!(broker_state(&nodes[b5], 4).as_deref() == Some("unfenced"), "brokers stay unfenced across the failover");

    // kill -9 a broker: it is fenced and its partitions (replication factor
    // 1) lose their leader with a bumped leader epoch.
    let before = strata_json(&nodes[b5].bootstrap(), &["topic", "describe", "r"]);
    nodes[b4].kill();
    wait_until("broker 4 fenced", Duration::from_secs(15), || broker_state(&nodes[b5], 4).as_deref() == Some("fenced"));
    wait_until("broker 4's partitions leaderless", Duration::from_secs(10), || {
        let after = strata_json(&nodes[b5].bootstrap(), &["topic", "describe", "r"]);
        before["partitions"].as_array().unwrap().iter().filter(|p| p["leader"] == 4).all(|p| {
            let now = &after["partitions"][p["partition"].as_u64().unwrap() as usize];
            now["leader"].is_null() && now["leader_epoch"].as_u64() > p["leader_epoch"].as_u64()
        })
    });

    // It restarts, is unfenced, leads its partitions again; nothing was lost.
    nodes[li].start(&voters);
    nodes[b4].start(&voters);
    wait_until("broker 4 ready", Duration::from_secs(30), || nodes[b4].ready());
    wait_until("broker 4 unfenced", Duration::from_secs(15), || {
        broker_state(&nodes[b5], 4).as_deref() == Some("unfenced")
    });
    wait_until("every partition led again", Duration::from_secs(10), || {
        strata_json(&nodes[b5].bootstrap(), &["topic", "describe", "r"])["partitions"]
            .as_array()
            .is_some_and(|ps| ps.iter().all(|p| !p["leader"].is_null()))
    });
    assert_eq!(consumed(&nodes[b4]), 200);

    // A clean stop of a broker-only node is a controlled shutdown.
    let status = nodes[b4].sigterm().unwrap();
    assert!(status.success(), "clean exit after SIGTERM: {status}");
    let fenced = wait_until("fenced by controlled shutdown", Duration::from_secs(10), || {
        broker_state(&nodes[b5], 4).as_deref() == Some("fenced")
    });
    assert!(fenced < Duration::from_millis(2500), "fenced only after {fenced:?}");
    // Controller-only nodes stop cleanly too.
    let status = nodes[(li + 1) % 3].sigterm().unwrap();
    assert!(status.success(), "controller-only clean exit: {status}");
}
