//! SASL on the Kafka listener of real nodes, against users created with
//! `strata user create`: kcat and confluent-kafka over SASL_SSL with
//! SCRAM-SHA-512 and SCRAM-SHA-256, kafka-python over SASL_PLAINTEXT with
//! PLAIN where the operator allowed it; a wrong password and a client that
//! skips SASL are refused with an authentication error and get nothing; the
//! gRPC port of such a cluster answers only clients with a certificate.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use strata_tests::client_report::{assert_complete, json};
use strata_tests::kafka_python::run_script_env;
use strata_tests::{binary, ServerProcess};
use strata_tls::generate::Authority;

use strata_tests::cli::run_with_input as run;

fn ok(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A one-node cluster with these extra `STRATA_*` settings.
fn node(root: &Path, env: &[(&str, &str)], tls: Option<&strata_tls::TlsFiles>) -> ServerProcess {
    let mut n = ServerProcess::node(root, 1, "broker,controller");
    if let Some(files) = tls {
        n.with_tls(files);
    }
    n.add_env(env);
    let voters = ServerProcess::voters(std::slice::from_ref(&n));
    n.start(&voters);
    n.wait_ready(Duration::from_secs(30));
    n
}

#[test]
fn kafka_clients_authenticate_with_scram_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let tls_dir = dir.path().join("tls");
    std::fs::create_dir_all(&tls_dir).unwrap();
    let authority = Authority::new("test CA").unwrap();
    let files = authority.write(&tls_dir, "node-1", &["strata-node-1", "localhost"]).unwrap();
    let admin = authority.write(&tls_dir, "admin", &["admin"]).unwrap();
    let n = node(dir.path(), &[("STRATA_SASL_MECHANISMS", "SCRAM-SHA-256,SCRAM-SHA-512")], Some(&files));
    let ca = files.ca.as_ref().unwrap().display().to_string();
    let (cert, key) =
        (admin.cert.as_ref().unwrap().display().to_string(), admin.key.as_ref().unwrap().display().to_string());
    let strata = |args: &[&str], input: &str| {
        run(
            Command::new(binary("strata"))
                .args(["--bootstrap", &n.bootstrap(), "--ca-file", &ca, "--cert-file", &cert, "--key-file", &key])
                .args(args),
            input,
        )
    };
    ok(&strata(&["user", "create", "alice"], "wonderland\n"), "create alice");
    ok(&strata(&["topic", "create", "private", "-p", "2", "-r", "1"], ""), "create topic");
    // The gRPC door is as closed as the Kafka one (once a user exists):
    // no certificate and no password, no answer.
    let anonymous = run(
        Command::new(binary("strata")).args(["--bootstrap", &n.bootstrap(), "--ca-file", &ca, "topic", "list"]),
        "",
    );
    assert!(!anonymous.status.success());
    assert!(String::from_utf8_lossy(&anonymous.stderr).contains("client certificate"), "{anonymous:?}");
    // A password works as well as a certificate.
    let listed = run(
        Command::new(binary("strata"))
            .args(["--bootstrap", &n.bootstrap(), "--ca-file", &ca, "--user", "alice", "topic", "list"])
            .env("STRATA_PASSWORD", "wonderland"),
        "",
    );
    assert!(ok(&listed, "topic list as alice").contains("private"));

    let kafka = n.kafka.to_string();
    let kcat = strata_tests::kcat::kcat();
    let kcat_as = |password: &str| {
        let mut c = Command::new(&kcat);
        c.args(["-b", &kafka, "-X", "security.protocol=sasl_ssl", "-X", "sasl.mechanisms=SCRAM-SHA-512"])
            .args(["-X", "sasl.username=alice", "-X", &format!("sasl.password={password}")])
            .args(["-X", &format!("ssl.ca.location={ca}")]);
        c
    };
    let lines: String = (0..40).map(|i| format!("k{i}:v{i}\n")).collect();
    ok(&run(kcat_as("wonderland").args(["-P", "-t", "private", "-K", ":"]), &lines), "kcat SCRAM-SHA-512 produce");
    let read = ok(
        &run(kcat_as("wonderland").args(["-C", "-t", "private", "-o", "beginning", "-e", "-q", "-f", "%k\n"]), ""),
        "kcat SCRAM-SHA-512 consume",
    );
    assert_eq!(read.lines().count(), 40);

    // A wrong password: an authentication error, no metadata.
    let out = run(kcat_as("looking-glass").args(["-L", "-m", "5"]), "");
    assert!(!out.status.success(), "a wrong password is refused");
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("authentication") || err.contains("sasl"), "{err}");
    assert!(n.log().contains("failed to authenticate"), "the failure is logged");
    // SSL without SASL: the listener closes the connection at the first
    // request that is not part of the SASL exchange.
    let out = run(
        Command::new(&kcat)
            .args(["-b", &kafka, "-X", "security.protocol=ssl", "-X", &format!("ssl.ca.location={ca}")])
            .args(["-L", "-m", "5"]),
        "",
    );
    assert!(!out.status.success(), "a client that skips SASL gets nothing");

    // librdkafka through confluent-kafka, SCRAM-SHA-256.
    let env = [("STRATA_TEST_KAFKA_SSL_CA", ca.as_str()), ("STRATA_TEST_KAFKA_SASL", "SCRAM-SHA-256:alice:wonderland")];
    let v = json(&run_script_env(
        "kafka_clients.py",
        &["produce", "confluent", &kafka, "scram", "1000", "zstd", "s"],
        &env,
    ));
    assert_eq!(v["acked"], 1000, "{v}");
    let v = json(&run_script_env("kafka_clients.py", &["consume", "confluent", &kafka, "scram", "1000", "s"], &env));
    assert_complete("confluent-kafka over SASL_SSL SCRAM-SHA-256", &v, 1000);

    // Kafka's user admin APIs (KIP-554) through librdkafka, authenticated
    // as alice: librdkafka salts the new user's password, and the user it
    // made can then authenticate.
    ok(&strata(&["topic", "create", "as-new-user", "-p", "1", "-r", "1"], ""), "create topic");
    let v = json(&run_script_env("kafka_clients.py", &["scram-users", &kafka, "carol", "c4rol-pw"], &env));
    assert_eq!(v["described"], serde_json::json!([["SCRAM_SHA_256", 4096]]), "{v}");
    assert_eq!(v["produced_as_user"], 1, "the user created through Kafka's API authenticates: {v}");
    assert_eq!(v["after_delete"], "RESOURCE_NOT_FOUND", "{v}");
}

#[test]
fn plain_without_tls_only_where_allowed() {
    let dir = tempfile::tempdir().unwrap();
    // Refused at start: PLAIN without TLS and without the explicit allowance.
    let out = Command::new(binary("strata-server"))
        .args(["run", "--node-id", "1", "--data-dir"])
        .arg(dir.path().join("refused"))
        .args(["--sasl-mechanisms", "PLAIN"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PLAIN sends passwords in the clear"), "{out:?}");

    let n = node(
        dir.path(),
        &[("STRATA_SASL_MECHANISMS", "PLAIN,SCRAM-SHA-256"), ("STRATA_SASL_ALLOW_PLAIN_WITHOUT_TLS", "true")],
        None,
    );
    // The first user comes from the node's own machine, unauthenticated;
    // after it, gRPC wants a password too (here in the clear: PLAIN is).
    ok(
        &run(
            Command::new(binary("strata")).args(["--bootstrap", &n.bootstrap(), "user", "create", "bob"]),
            "builder\n",
        ),
        "user",
    );
    let anonymous = run(Command::new(binary("strata")).args(["--bootstrap", &n.bootstrap(), "user", "list"]), "");
    assert!(String::from_utf8_lossy(&anonymous.stderr).contains("authenticates its clients"), "{anonymous:?}");
    let as_bob = run(
        Command::new(binary("strata"))
            .args(["--bootstrap", &n.bootstrap(), "user", "list"])
            .env("STRATA_USER", "bob")
            .env("STRATA_PASSWORD", "builder"),
        "",
    );
    assert!(ok(&as_bob, "user list as bob").contains("bob"));
    let kafka = n.kafka.to_string();
    let env = [("STRATA_TEST_KAFKA_SASL", "PLAIN:bob:builder")];
    let v = json(&run_script_env(
        "kafka_clients.py",
        &["produce", "kafka-python", &kafka, "plain", "500", "gzip", "p"],
        &env,
    ));
    assert_eq!(v["acked"], 500, "{v}");
    let v = json(&run_script_env("kafka_clients.py", &["consume", "kafka-python", &kafka, "plain", "500", "p"], &env));
    assert_complete("kafka-python over SASL_PLAINTEXT PLAIN", &v, 500);
}
