//! Three `strata-server run` processes on loopback forming a controller
//! quorum over gRPC: metadata changes from any node, leader failover after
//! kill -9 with no acknowledged change lost, rejoin, and a clear error (not a
//! hang) without a quorum.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strata_server::testkit::wait_until;
use strata_tests::binary;
use strata_tests::cli::strata;
use strata_tests::ServerProcess as Node;

fn controller_of(node: &Node) -> Option<u64> {
    let out = strata(&node.bootstrap(), &["--output", "json", "cluster", "info"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["controller_id"].as_u64()
}

fn topics(node: &Node) -> Vec<String> {
    let out = strata(&node.bootstrap(), &["--output", "json", "topic", "list"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let list = v.as_array().cloned().or_else(|| v["topics"].as_array().cloned()).unwrap_or_default();
    list.iter().filter_map(|t| t["name"].as_str().map(str::to_string)).collect()
}

#[test]
fn three_voters_fail_over_rejoin_and_refuse_without_quorum() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = (1..=3).map(|id| Node::node(root.path(), id, "broker,controller")).collect();
    let voters = Node::voters(&nodes);
    for n in nodes.iter_mut() {
        n.start(&voters);
    }
    wait_until("all three ready", Duration::from_secs(30), || nodes.iter().all(Node::ready));

    // A metadata change through a follower is forwarded to the leader and
    // seen everywhere.
    let leader = controller_of(&nodes[0]).expect("a controller leader");
    let follower = nodes.iter().position(|n| n.id != leader).unwrap();
    let out = strata(
        &nodes[follower].bootstrap(),
        &["topic", "create", "t1", "--partitions", "3", "--replication-factor", "1"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for n in &nodes {
        wait_until("t1 everywhere", Duration::from_secs(10), || topics(n).contains(&"t1".to_string()));
    }
    // Partitions are spread over the three brokers and the client routes to
    // each leader.
    let lines: String = (0..300).map(|i| format!("k{i}:v{i}\n")).collect();
    let mut produce = Command::new(binary("strata"))
        .args(["--bootstrap", &nodes[0].bootstrap(), "produce", "t1", "--key-separator", ":"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(produce.stdin.as_mut().unwrap(), lines.as_bytes()).unwrap();
    let out = produce.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = strata(&nodes[2].bootstrap(), &["consume", "t1", "--format", "%v\\n"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 300);

    // kill -9 the controller leader: the other two elect a new one, and the
    // acknowledged change (t1) is still there.
    // Topics are being created (through a node that stays up) while the
    // leader dies: every creation that was acknowledged must survive.
    let li = nodes.iter().position(|n| n.id == leader).unwrap();
    let other = (li + 1) % 3;
    let creator = nodes[other].bootstrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let creating = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && i < 200 {
                let name = format!("during-{i}");
                if strata(&creator, &["topic", "create", &name]).status.success() {
                    acked.push(name);
                }
                i += 1;
            }
            acked
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    nodes[li].kill();
    let elapsed = wait_until("a new controller leader", Duration::from_secs(15), || {
        controller_of(&nodes[other]).is_some_and(|c| c != leader)
    });
    eprintln!("controller failover took {elapsed:?}");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let acked = creating.join().unwrap();
    assert!(!acked.is_empty(), "no creation was acknowledged");
    let present = topics(&nodes[other]);
    for name in &acked {
        assert!(present.contains(name), "acknowledged topic {name} lost in the failover");
    }
    eprintln!("{} topic creations acknowledged around the leader kill; all present", acked.len());
    let out = strata(&nodes[other].bootstrap(), &["topic", "create", "t2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(topics(&nodes[other]).contains(&"t1".to_string()));
    // The new leader reports the dead voter as lagging behind the commit
    // index, and the live ones as caught up.
    let new_leader = controller_of(&nodes[other]).unwrap();
    let nl = nodes.iter().position(|n| n.id == new_leader).unwrap();
    let out = strata(&nodes[nl].bootstrap(), &["--output", "json", "cluster", "info"]);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let lag_of = |id: u64| {
        info["voters"].as_array().unwrap().iter().find(|v| v["node_id"] == id).and_then(|v| v["lag"].as_u64()).unwrap()
    };
    assert!(lag_of(leader) >= 1, "dead voter's lag: {info}");
    assert_eq!(lag_of(new_leader), 0, "{info}");

    // The killed node's broker misses its heartbeats: the controller fences
    // it and its partitions (replication factor 1: no other ISR member) lose
    // their leader with a bumped leader epoch.
    let describe = |n: &Node| -> serde_json::Value {
        let out = strata(&n.bootstrap(), &["--output", "json", "topic", "describe", "t1"]);
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    };
    let broker_state = |n: &Node, id: u64| -> Option<String> {
        let out = strata(&n.bootstrap(), &["--output", "json", "cluster", "info"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let b = v["brokers"].as_array()?.iter().find(|b| b["node_id"] == id)?.clone();
        b["state"].as_str().map(str::to_string)
    };
    let before = describe(&nodes[other]);
    let led: Vec<serde_json::Value> =
        before["partitions"].as_array().unwrap().iter().filter(|p| p["leader"] == leader).cloned().collect();
    let fenced_after = wait_until("the dead broker is fenced", Duration::from_secs(15), || {
        broker_state(&nodes[other], leader).as_deref() == Some("fenced")
    });
    eprintln!("broker fenced {fenced_after:?} after the failover");
    let after = describe(&nodes[other]);
    for p in &led {
        let now = &after["partitions"][p["partition"].as_u64().unwrap() as usize];
        assert!(now["leader"].is_null(), "no eligible leader with RF 1: {now}");
        assert!(now["leader_epoch"].as_u64() > p["leader_epoch"].as_u64(), "epoch bumped: {p} -> {now}");
    }

    // The old leader rejoins and catches up.
    nodes[li].start(&voters);
    wait_until("old leader ready again", Duration::from_secs(30), || nodes[li].ready());
    wait_until("old leader caught up", Duration::from_secs(10), || topics(&nodes[li]).contains(&"t2".to_string()));
    // Its broker heartbeats again: unfenced, and it leads its partitions again.
    wait_until("the broker is unfenced", Duration::from_secs(15), || {
        broker_state(&nodes[other], leader).as_deref() == Some("unfenced")
    });
    wait_until("its partitions have a leader again", Duration::from_secs(10), || {
        describe(&nodes[other])["partitions"].as_array().is_some_and(|ps| ps.iter().all(|p| !p["leader"].is_null()))
    });
    let out = strata(&nodes[li].bootstrap(), &["consume", "t1", "--format", "%v\\n"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 300, "records survive fencing and restart");

    // Two of three voters down: a metadata write fails with a clear error
    // instead of hanging, and works again once one returns.
    let (a, b) = ((li + 1) % 3, (li + 2) % 3);
    nodes[a].kill();
    nodes[b].kill();
    let started = Instant::now();
    let out = strata(&nodes[li].bootstrap(), &["topic", "create", "t3", "--replication-factor", "1"]);
    assert!(!out.status.success(), "created without a quorum");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.lines().count() == 1 && err.starts_with("error: "), "{err}");
    assert!(started.elapsed() < Duration::from_secs(40), "took {:?}", started.elapsed());
    nodes[a].start(&voters);
    wait_until("quorum back", Duration::from_secs(30), || {
        strata(&nodes[li].bootstrap(), &["topic", "create", "t3", "--replication-factor", "1"]).status.success()
            || topics(&nodes[li]).contains(&"t3".to_string())
    });

    // Controlled shutdown: SIGTERM makes the broker ask the controller to
    // fence it before it exits, so its partitions are released at once
    // rather than after the 3 s session timeout.
    nodes[b].start(&voters);
    wait_until("third node back", Duration::from_secs(30), || nodes[b].ready());
    wait_until("all unfenced", Duration::from_secs(15), || {
        nodes.iter().all(|n| broker_state(&nodes[li], n.id).as_deref() == Some("unfenced"))
    });
    let status = nodes[a].sigterm().unwrap();
    assert!(status.success(), "clean exit after SIGTERM: {status}");
    let id = nodes[a].id;
    let fenced = wait_until("fenced by controlled shutdown", Duration::from_secs(10), || {
        broker_state(&nodes[li], id).as_deref() == Some("fenced")
    });
    assert!(fenced < Duration::from_millis(2500), "fenced only after {fenced:?}: not a controlled shutdown");
}

/// The whole cluster freezes (SIGSTOP every node for longer than the 3 s
/// session) and thaws: the controller must not take its own stall for the
/// brokers' silence and fence everyone.
#[test]
fn a_stalled_controller_does_not_fence_brokers_that_were_alive() {
    let c = strata_tests::local_cluster::LocalCluster::up(3);
    let states = || -> Vec<String> {
        let v = strata_tests::cli::strata_json(&c.bootstrap_all(), &["cluster", "info"]);
        v["brokers"]
            .as_array()
            .map_or(vec![], |bs| bs.iter().map(|b| b["state"].as_str().unwrap_or("?").to_string()).collect())
    };
    assert_eq!(states(), vec!["unfenced"; 3]);
    for i in 1..=3 {
        c.pause(i);
    }
    std::thread::sleep(Duration::from_secs(4));
    for i in 1..=3 {
        c.resume(i);
    }
    // Long enough for a wrongful fence to be proposed and applied.
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let s = states();
        assert!(s.iter().all(|s| s != "fenced"), "brokers fenced after a whole-cluster stall: {s:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
