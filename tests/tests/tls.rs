//! TLS on every listener of real `strata-server run` nodes, with
//! certificates from a private CA made here: the CLI, kcat,
//! confluent-kafka and kafka-python connect over TLS; plaintext and
//! clients trusting another CA are refused with a clear error; a
//! three-node cluster replicates over mutual TLS; renewed certificate
//! files are served to new connections without a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use strata_tests::client_report::{assert_complete, json};
use strata_tests::kafka_python::run_script_env;
use strata_tests::{binary, https_get, ServerProcess};
use strata_tls::generate::Authority;
use strata_tls::{ClientTls, TlsFiles};

/// A node's certificate: named `strata-node-N` and `localhost`, valid for
/// 127.0.0.1.
fn node_files(ca: &Authority, dir: &Path, id: u64) -> TlsFiles {
    ca.write(dir, &format!("node-{id}"), &[&format!("strata-node-{id}"), "localhost"]).unwrap()
}

/// `strata ARGS…` with `tls` arguments before them; `input` on stdin.
fn strata(bootstrap: &str, tls: &[&str], args: &[&str], input: &str) -> Output {
    strata_tests::cli::run_with_input(
        Command::new(binary("strata")).arg("--bootstrap").arg(bootstrap).args(tls).args(args),
        input,
    )
}

fn ok(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn start_node(root: &Path, ca: &Authority, id: u64) -> (ServerProcess, TlsFiles) {
    let files = node_files(ca, &root.join("tls"), id);
    let mut node = ServerProcess::node(root, id, "broker,controller");
    node.with_tls(&files);
    (node, files)
}

#[test]
fn every_listener_speaks_tls_and_strangers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tls")).unwrap();
    let ca = Authority::new("strata test CA").unwrap();
    let (mut node, files) = start_node(dir.path(), &ca, 1);
    let voters = ServerProcess::voters(std::slice::from_ref(&node));
    node.start(&voters);
    node.wait_ready(Duration::from_secs(30));
    let ca_file = files.ca.as_ref().unwrap().display().to_string();
    let tls = ["--ca-file", ca_file.as_str()];
    let bootstrap = node.bootstrap();

    // The CLI over TLS: create, produce, consume.
    ok(&strata(&bootstrap, &tls, &["topic", "create", "secure", "-p", "2", "-r", "1"], ""), "create over TLS");
    let lines: String = (0..50).map(|i| format!("k{i}:v{i}\n")).collect();
    ok(&strata(&bootstrap, &tls, &["produce", "secure", "--key-separator", ":"], &lines), "produce over TLS");
    let read =
        ok(&strata(&bootstrap, &tls, &["consume", "secure", "--from-beginning", "--format", "%k=%v\n"], ""), "consume");
    assert_eq!(read.lines().count(), 50, "{read}");

    // Plaintext to the TLS port, and TLS trusting another CA: refused, and
    // the error says what went wrong.
    let plain = strata(&bootstrap, &[], &["topic", "list"], "");
    assert!(!plain.status.success());
    let stderr = String::from_utf8_lossy(&plain.stderr);
    assert!(stderr.contains("serves TLS: connect with --tls"), "plaintext gets told why: {stderr}");
    let other_dir = tempfile::tempdir().unwrap();
    let other = Authority::new("another CA").unwrap().write(other_dir.path(), "x", &["x"]).unwrap();
    let other_ca = other.ca.as_ref().unwrap().display().to_string();
    let stranger = strata(&bootstrap, &["--ca-file", &other_ca], &["topic", "list"], "");
    assert!(!stranger.status.success());
    let stderr = String::from_utf8_lossy(&stranger.stderr);
    assert!(stderr.to_lowercase().contains("certificate"), "a foreign CA names the certificate problem: {stderr}");

    // HTTPS: metrics and readiness over TLS; plaintext HTTP gets nothing.
    let https = ClientTls::new(&TlsFiles { ca: files.ca.clone(), ..TlsFiles::default() }, &[b"http/1.1"]).unwrap();
    let (code, body) = https_get(node.http, "/metrics", &https).expect("metrics over HTTPS");
    assert_eq!(code, 200, "{body}");
    assert!(strata_tests::http_get(node.http, "/readyz").is_none(), "plaintext HTTP to the TLS port answers nothing");

    // Kafka clients with security.protocol=SSL: kcat, librdkafka, kafka-python.
    let kafka = node.kafka.to_string();
    let kcat = strata_tests::kcat::kcat();
    let ssl = ["-X", "security.protocol=ssl", "-X"];
    let ca_opt = format!("ssl.ca.location={ca_file}");
    let mut produce = Command::new(&kcat)
        .args(["-b", &kafka, "-P", "-t", "secure", "-K", ":"])
        .args(ssl)
        .arg(&ca_opt)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let more: String = (50..60).map(|i| format!("k{i}:v{i}\n")).collect();
    produce.stdin.take().unwrap().write_all(more.as_bytes()).unwrap();
    ok(&produce.wait_with_output().unwrap(), "kcat produce over TLS");
    let read = Command::new(&kcat)
        .args(["-b", &kafka, "-C", "-t", "secure", "-o", "beginning", "-e", "-q", "-f", "%k\n"])
        .args(ssl)
        .arg(&ca_opt)
        .output()
        .unwrap();
    assert_eq!(ok(&read, "kcat consume over TLS").lines().count(), 60);
    let env = [("STRATA_TEST_KAFKA_SSL_CA", ca_file.as_str())];
    for client in ["confluent", "kafka-python"] {
        let topic = format!("ssl-{client}");
        let v = json(&run_script_env(
            "kafka_clients.py",
            &["produce", client, &kafka, &topic, "2000", "lz4", client],
            &env,
        ));
        assert_eq!(v["acked"], 2000, "{client}: {v}");
        let v = json(&run_script_env("kafka_clients.py", &["consume", client, &kafka, &topic, "2000", client], &env));
        assert_complete(&format!("{client} over TLS"), &v, 2000);
    }
    // A Kafka client speaking plaintext to the TLS port is closed; the
    // listener keeps serving.
    let mut s = std::net::TcpStream::connect(node.kafka).unwrap();
    s.write_all(&[0, 0, 0, 10, 0, 18, 0, 3, 0, 0, 0, 1, 0, 0]).unwrap();
    ok(&strata(&bootstrap, &tls, &["topic", "list"], ""), "still serving");

    // The preStop hook of a TLS pod: `strata-server drain` with the pod's
    // own STRATA_TLS_* environment speaks HTTPS and is a certified caller.
    let path = |p: &Option<std::path::PathBuf>| p.as_ref().unwrap().display().to_string();
    let drained = Command::new(binary("strata-server"))
        .args(["drain", "--http", &node.http.to_string(), "--timeout-secs", "5"])
        .env("STRATA_TLS_CERT_FILE", path(&files.cert))
        .env("STRATA_TLS_KEY_FILE", path(&files.key))
        .env("STRATA_TLS_CA_FILE", path(&files.ca))
        .output()
        .unwrap();
    assert!(ok(&drained, "drain over HTTPS").contains("drained"), "{drained:?}");
}

/// Three voters and brokers with their own node certificates: Raft,
/// registration, heartbeats and replica fetches all run over mutual TLS,
/// and an RF=3 topic stays fully in sync. Then forgeries, each refused with
/// PERMISSION_DENIED and changing nothing: a replica fetch posing as a
/// follower with a client's certificate or another node's, Raft messages
/// and heartbeats from a certificate that is not the sender's.
#[test]
fn a_three_node_cluster_replicates_over_mutual_tls_and_refuses_impostors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tls")).unwrap();
    let ca = Authority::new("strata test CA").unwrap();
    let mut nodes: Vec<(ServerProcess, TlsFiles)> = (1..=3).map(|id| start_node(dir.path(), &ca, id)).collect();
    let servers: Vec<&ServerProcess> = nodes.iter().map(|(n, _)| n).collect();
    let voters = servers.iter().map(|n| format!("{}@{}", n.id, n.controller)).collect::<Vec<_>>().join(",");
    for (n, _) in nodes.iter_mut() {
        n.start(&voters);
    }
    for (n, _) in nodes.iter_mut() {
        n.wait_ready(Duration::from_secs(60));
    }
    let ca_file = nodes[0].1.ca.as_ref().unwrap().display().to_string();
    let tls = ["--ca-file", ca_file.as_str()];
    let bootstrap = nodes.iter().map(|(n, _)| n.bootstrap()).collect::<Vec<_>>().join(",");
    ok(&strata(&bootstrap, &tls, &["topic", "create", "replicated", "-p", "1", "-r", "3"], ""), "create");
    let lines: String = (0..200).map(|i| format!("v{i}\n")).collect();
    ok(&strata(&bootstrap, &tls, &["produce", "replicated", "--acks", "all"], &lines), "acks=all over mutual TLS");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = ok(&strata(&bootstrap, &tls, &["--output", "json", "topic", "describe", "replicated"], ""), "describe");
        let v: serde_json::Value = serde_json::from_str(d.trim()).unwrap();
        let p = &v["partitions"][0];
        if p["isr"].as_array().is_some_and(|isr| isr.len() == 3) && p["high_watermark"] == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "replicas not in sync over mutual TLS: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let describe = || {
        let d = ok(&strata(&bootstrap, &tls, &["--output", "json", "topic", "describe", "replicated"], ""), "describe");
        let v: serde_json::Value = serde_json::from_str(d.trim()).unwrap();
        v["partitions"][0].clone()
    };
    let before = describe();
    let leader = before["leader"].as_u64().unwrap() as usize;
    let follower = (1..=3).find(|&i| i != leader).unwrap() as u32;
    let (leader_node, _) = &nodes[leader - 1];
    let tls_dir = dir.path().join("tls");
    let client_files = ca.write(&tls_dir, "client", &["client-1"]).unwrap();
    let other_node_files = node_files(&ca, &tls_dir, if follower == 2 { 3 } else { 2 });
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use strata_protocol::v1;
        let channel = |files: &TlsFiles, addr: std::net::SocketAddr| {
            let tls = ClientTls::new(files, &[b"h2"]).unwrap();
            async move {
                strata_tls::connect_channel(&addr.to_string(), &tls, Duration::from_secs(5), |e| e).await.unwrap()
            }
        };
        // A replica fetch far past the end, as the follower: were it
        // accepted, the leader would take it as the follower's position.
        let forged = v1::ReplicaFetchRequest {
            replica_id: follower,
            max_wait_ms: 0,
            min_bytes: 0,
            max_bytes: 1 << 20,
            partitions: vec![v1::ReplicaFetchPartition {
                topic: "replicated".into(),
                partition: 0,
                fetch_offset: 10_000,
                last_fetched_epoch: before["leader_epoch"].as_i64().unwrap() as i32,
                current_leader_epoch: before["leader_epoch"].as_u64().unwrap() as u32,
                partition_max_bytes: 0,
            }],
        };
        for files in [&client_files, &other_node_files] {
            let mut c = v1::strata_client::StrataClient::new(channel(files, leader_node.listen).await);
            let status = c.replica_fetch(forged.clone()).await.expect_err("a forged replica fetch is refused");
            assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
        }
        // The controller port: a client certificate gets nothing, a node's
        // certificate cannot speak for another node.
        let mut raft = v1::controller_raft_client::ControllerRaftClient::new(channel(&client_files, leader_node.controller).await);
        let status = raft.describe_quorum(v1::DescribeQuorumRequest {}).await.expect_err("no node certificate");
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
        let mut raft =
            v1::controller_raft_client::ControllerRaftClient::new(channel(&other_node_files, leader_node.controller).await);
        let status = raft.heartbeat(v1::HeartbeatRequest { node_id: follower }).await.expect_err("another node's heartbeat");
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
        let mut msg = raft::eraftpb::Message::default();
        msg.set_msg_type(raft::eraftpb::MessageType::MsgHeartbeat);
        msg.from = u64::from(follower);
        msg.to = leader as u64;
        msg.term = 1_000;
        let bytes = protobuf::Message::write_to_bytes(&msg).unwrap();
        let status = raft.step(v1::RaftMessages { messages: vec![bytes.into()] }).await.expect_err("a forged Raft sender");
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    });
    std::thread::sleep(Duration::from_millis(500));
    let after = describe();
    for key in ["leader", "leader_epoch", "isr", "high_watermark"] {
        assert_eq!(before[key], after[key], "{key} changed after the forgeries: {before} -> {after}");
    }
    for (n, _) in &nodes {
        if n.id == leader as u64 {
            assert!(n.log().contains("refused a replica fetch"), "the refusal is logged with the peer");
        }
    }
}

/// cert-manager renews a node's certificate in place: new connections get
/// the new certificate (within the reload interval), the node keeps
/// serving, and established connections are not dropped.
#[test]
fn renewed_certificate_files_are_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let tls_dir = dir.path().join("tls");
    std::fs::create_dir_all(&tls_dir).unwrap();
    let ca = Authority::new("strata test CA").unwrap();
    let (mut node, files) = start_node(dir.path(), &ca, 1);
    let voters = ServerProcess::voters(std::slice::from_ref(&node));
    node.start(&voters);
    node.wait_ready(Duration::from_secs(30));
    let trust = ClientTls::new(&TlsFiles { ca: files.ca.clone(), ..TlsFiles::default() }, &[]).unwrap();
    let served_names = || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let tcp = tokio::net::TcpStream::connect(node.kafka).await.unwrap();
            let s = trust.connect("127.0.0.1", tcp).await.unwrap();
            strata_tls::identity::names(&s.get_ref().1.peer_certificates().unwrap()[0])
        })
    };
    assert!(served_names().contains(&"strata-node-1".to_string()));
    // An established HTTPS-free Kafka connection stays open across the renewal.
    let mut open = std::net::TcpStream::connect(node.kafka).unwrap();
    let renewed = ca.write(&tls_dir, "node-1", &["strata-node-1", "renewed.localhost"]).unwrap();
    assert_eq!(renewed, files);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !served_names().contains(&"renewed.localhost".to_string()) {
        assert!(Instant::now() < deadline, "the renewed certificate was not picked up; log:\n{}", node.log());
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(node.log().contains("reloaded"), "the reload is logged");
    open.write_all(&[0]).expect("the connection opened before the renewal is still open");
    let ca_file = files.ca.as_ref().unwrap().display().to_string();
    ok(&strata(&node.bootstrap(), &["--ca-file", &ca_file], &["topic", "list"], ""), "serving after the renewal");
}
