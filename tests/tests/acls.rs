//! ACLs on a 3-node TLS + SCRAM cluster (`STRATA_SECURE=1
//! deploy/local-cluster.sh up 3`, authorizer on, super user `admin`): the
//! same decisions through the gRPC listener (the `strata` CLI with a user
//! and password) and the Kafka listener (kcat, librdkafka), ACLs changed
//! through the CLI and through two Kafka clients' admin APIs
//! (confluent-kafka, kafka-python), and every broker applying a change
//! within seconds.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use strata_tests::binary;
use strata_tests::local_cluster::LocalCluster;

/// How long an ACL change may take to reach every broker.
const PROPAGATION: Duration = Duration::from_secs(10);

struct Secure<'a> {
    cluster: &'a LocalCluster,
    ca: PathBuf,
    admin_password: String,
}

impl Secure<'_> {
    /// `strata` as `user` against `bootstrap`, `input` on stdin.
    fn cli(&self, user: &str, password: &str, bootstrap: &str, args: &[&str], input: &str) -> Output {
        let mut cmd = Command::new(binary("strata"));
        cmd.args(["--bootstrap", bootstrap]).arg("--ca-file").arg(&self.ca).args(args);
        cmd.env("STRATA_USER", user).env("STRATA_PASSWORD", password);
        strata_tests::cli::run_with_input(&mut cmd, input)
    }

    /// `strata` as the super user against every node; must succeed.
    fn admin(&self, args: &[&str], input: &str) -> String {
        let out = self.cli("admin", &self.admin_password, &self.cluster.bootstrap_all(), args, input);
        assert!(out.status.success(), "admin: strata {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `strata` as alice against every node.
    fn alice(&self, args: &[&str], input: &str) -> Output {
        self.cli("alice", "alice-pw", &self.cluster.bootstrap_all(), args, input)
    }

    /// kcat over SASL_SSL with SCRAM-SHA-512 as `user`, `input` on stdin.
    fn kcat(&self, user: &str, password: &str, args: &[&str], input: &str) -> Output {
        let mut cmd = Command::new(strata_tests::kcat::kcat());
        cmd.args(["-b", &self.cluster.kafka_bootstrap_all(), "-X", "security.protocol=sasl_ssl"])
            .args(["-X", "sasl.mechanisms=SCRAM-SHA-512", "-X"])
            .arg(format!("sasl.username={user}"))
            .arg("-X")
            .arg(format!("sasl.password={password}"))
            .arg("-X")
            .arg(format!("ssl.ca.location={}", self.ca.display()))
            .args(args);
        strata_tests::cli::run_with_input(&mut cmd, input)
    }

    /// Alice reads `topic` to its end through kcat (no group).
    fn alice_kcat_reads(&self, topic: &str) -> Output {
        self.kcat("alice", "alice-pw", &["-C", "-t", topic, "-o", "beginning", "-e", "-q"], "")
    }
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn lines(out: &Output) -> Vec<String> {
    let mut l: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
    l.sort();
    l
}

/// Waits until `check` holds, or panics naming `what`.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PROPAGATION;
    while !check() {
        assert!(Instant::now() < deadline, "not within {PROPAGATION:?}: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn expected(prefix: &str, n: usize) -> Vec<String> {
    let mut v: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    v.sort();
    v
}

fn another_ca(dir: &Path) -> PathBuf {
    let (key, cert) = (dir.join("other-ca-key.pem"), dir.join("other-ca.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=somebody else's CA", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    cert
}

#[test]
fn acls_decide_alike_on_both_listeners_of_a_secure_cluster() {
    strata_tests::kcat::ensure_commands(&["openssl", "curl"], &["openssl", "curl"]);
    let cluster = LocalCluster::up_with_env(3, &[("STRATA_SECURE", "1")]);
    let s = Secure {
        cluster: &cluster,
        ca: cluster.dir().join("tls").join("ca.pem"),
        admin_password: std::fs::read_to_string(cluster.dir().join("admin.password")).unwrap().trim().to_string(),
    };
    // The super user sets the scene: it may do everything.
    for (topic, partitions) in [("orders-eu", "2"), ("orders-us", "1"), ("payments", "1")] {
        s.admin(&["topic", "create", topic, "-p", partitions, "-r", "3"], "");
        let records: String = (0..10).map(|i| format!("{topic}-{i}\n")).collect();
        s.admin(&["produce", topic], &records);
    }
    s.admin(&["user", "create", "alice"], "alice-pw\n");

    // Authentication comes first: clear errors, on both listeners.
    let wrong = s.cli("alice", "wrong", &cluster.bootstrap_all(), &["topic", "list"], "");
    assert!(text(&wrong).contains("SASL_AUTHENTICATION_FAILED"), "{}", text(&wrong));
    let mut anonymous = Command::new(binary("strata"));
    anonymous.args(["--bootstrap", &cluster.bootstrap_all()]).arg("--ca-file").arg(&s.ca).args(["topic", "list"]);
    let anonymous = strata_tests::cli::run_with_input(&mut anonymous, "");
    assert!(text(&anonymous).contains("authenticates its clients"), "{}", text(&anonymous));
    let mut plaintext = Command::new(binary("strata"));
    let plaintext = strata_tests::cli::run_with_input(
        plaintext.args(["--bootstrap", &cluster.bootstrap(1), "topic", "list"]).env_remove("STRATA_TLS"),
        "",
    );
    assert!(!plaintext.status.success() && text(&plaintext).contains("serves TLS"), "{}", text(&plaintext));
    let other = another_ca(cluster.dir());
    let mut untrusted = Command::new(binary("strata"));
    untrusted.args(["--bootstrap", &cluster.bootstrap(1)]).arg("--ca-file").arg(&other).args(["topic", "list"]);
    let untrusted = strata_tests::cli::run_with_input(&mut untrusted, "");
    assert!(
        !untrusted.status.success() && text(&untrusted).to_lowercase().contains("certificate"),
        "{}",
        text(&untrusted)
    );
    let kafka_wrong = s.kcat("alice", "wrong", &["-L"], "");
    assert!(!kafka_wrong.status.success() && text(&kafka_wrong).contains("uthentication"), "{}", text(&kafka_wrong));

    // No ACL, no access: alice is authenticated but may do nothing.
    let denied = s.alice(&["consume", "orders-eu"], "");
    assert!(!denied.status.success(), "{}", text(&denied));
    assert!(
        text(&denied).contains("TOPIC_AUTHORIZATION_FAILED") && text(&denied).contains("User:alice"),
        "{}",
        text(&denied)
    );
    assert!(!s.alice_kcat_reads("orders-eu").status.success());

    // Read on the prefix "orders-": every broker lets alice describe
    // orders-eu (and still not payments) within seconds.
    s.admin(
        &[
            "acl",
            "add",
            "--principal",
            "User:alice",
            "--operation",
            "read",
            "--topic",
            "orders-",
            "--pattern",
            "prefixed",
        ],
        "",
    );
    for i in 1..=3 {
        let node = cluster.bootstrap(i);
        eventually(&format!("node {i} applies the new ACL"), || {
            s.cli("alice", "alice-pw", &node, &["topic", "describe", "orders-eu"], "").status.success()
        });
        let payments = s.cli("alice", "alice-pw", &node, &["topic", "describe", "payments"], "");
        assert!(text(&payments).contains("TOPIC_AUTHORIZATION_FAILED"), "node {i}: {}", text(&payments));
    }
    // Both doors: alice reads orders-*, cannot write them, cannot read payments.
    let grpc = s.alice(&["consume", "orders-eu"], "");
    assert!(grpc.status.success(), "{}", text(&grpc));
    assert_eq!(lines(&grpc), expected("orders-eu", 10));
    let kafka = s.alice_kcat_reads("orders-eu");
    assert!(kafka.status.success(), "{}", text(&kafka));
    assert_eq!(lines(&kafka), expected("orders-eu", 10));
    assert_eq!(lines(&s.alice_kcat_reads("orders-us")), expected("orders-us", 10));
    let write = s.alice(&["produce", "orders-eu"], "nope\n");
    assert!(!write.status.success() && text(&write).contains("AUTHORIZATION_FAILED"), "{}", text(&write));
    let write = s.kcat("alice", "alice-pw", &["-P", "-t", "orders-eu"], "nope\n");
    assert!(text(&write).contains("Topic authorization failed"), "{}", text(&write));
    let payments = s.alice(&["consume", "payments"], "");
    assert!(text(&payments).contains("TOPIC_AUTHORIZATION_FAILED"), "{}", text(&payments));
    let payments = s.alice_kcat_reads("payments");
    assert!(
        !payments.status.success() && text(&payments).contains("Topic authorization failed"),
        "{}",
        text(&payments)
    );
    // A group needs its own ACL, on both doors.
    let group = s.alice(&["consume", "orders-us", "--group", "g-alice", "--from-beginning"], "");
    assert!(text(&group).contains("GROUP_AUTHORIZATION_FAILED"), "{}", text(&group));
    s.admin(&["acl", "add", "--principal", "User:alice", "--operation", "read", "--group", "g-alice"], "");
    eventually("alice may use group g-alice", || {
        let out = s.alice(&["consume", "orders-us", "--group", "g-alice", "--from-beginning"], "");
        out.status.success() && lines(&out) == expected("orders-us", 10)
    });
    let kafka_group = s.kcat("alice", "alice-pw", &["-G", "g-alice-k", "-e", "-q", "-o", "beginning", "orders-us"], "");
    assert!(text(&kafka_group).contains("may not"), "no ACL for group g-alice-k: {}", text(&kafka_group));

    // Deny wins over allow.
    s.admin(&["acl", "add", "--principal", "User:alice", "--operation", "read", "--topic", "orders-eu", "--deny"], "");
    eventually("the deny reaches every door", || {
        !s.alice(&["consume", "orders-eu"], "").status.success() && !s.alice_kcat_reads("orders-eu").status.success()
    });
    assert_eq!(lines(&s.alice(&["consume", "orders-us"], "")), expected("orders-us", 10), "the deny is literal");

    // Kafka's ACL admin APIs through two independent clients, as the super
    // user; the CLI (gRPC) sees the same ACLs.
    let out = strata_tests::kafka_python::run_script_env(
        "kafka_acls.py",
        &[&cluster.kafka_bootstrap_all(), "User:bob"],
        &[
            ("STRATA_TEST_KAFKA_SSL_CA", s.ca.to_str().unwrap()),
            ("STRATA_TEST_KAFKA_SASL", &format!("SCRAM-SHA-512:admin:{}", s.admin_password)),
        ],
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["created"].as_object().unwrap().values().all(|v| v == true), "{report}");
    // (resource type, name, pattern, principal, operation, permission) in
    // Kafka's codes: topic 2, group 3; literal 3, prefixed 4; read 3,
    // write 4; deny 2, allow 3.
    let all = serde_json::json!([
        [2, "orders-", 4, "User:bob", 3, 3],
        [2, "orders-eu", 3, "User:bob", 4, 2],
        [3, "g1", 3, "User:bob", 3, 3]
    ]);
    assert_eq!(report["confluent_listed"], all, "{report}");
    assert_eq!(report["kafka_python_before"], all, "{report}");
    assert_eq!(report["deleted"], serde_json::json!([["orders-eu", 4, 2]]), "{report}");
    eventually("the CLI lists bob's two remaining ACLs", || {
        let bob = s.admin(&["--output", "json", "acl", "list", "--principal", "User:bob"], "");
        let bob: serde_json::Value = serde_json::from_str(&bob).unwrap();
        bob["acls"].as_array().unwrap().len() == 2
    });

    // Removing alice's ACLs takes her access away again.
    let removed = s.admin(&["--output", "json", "acl", "remove", "--principal", "User:alice"], "");
    let removed: serde_json::Value = serde_json::from_str(&removed).unwrap();
    assert_eq!(removed["removed"].as_array().unwrap().len(), 3, "{removed}");
    eventually("alice loses orders-us", || !s.alice_kcat_reads("orders-us").status.success());
}
