//! `strata user create|delete|list` against a real server: credentials
//! land in the cluster metadata (salted by the CLI; no password crosses the
//! wire or is listed), per mechanism, with their iteration counts.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::process::{Command, Output};

use strata_tests::{binary, ServerProcess};

fn strata(bootstrap: &str, args: &[&str], stdin: &str) -> Output {
    strata_tests::cli::run_with_input(Command::new(binary("strata")).args(["--bootstrap", bootstrap]).args(args), stdin)
}

fn listed(bootstrap: &str) -> serde_json::Value {
    let out = strata(bootstrap, &["--output", "json", "user", "list"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn users_are_created_listed_and_deleted_per_mechanism() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::dev(&dir.path().join("data"));
    let b = server.bootstrap();
    assert_eq!(listed(&b), serde_json::json!([]));

    let out = strata(&b, &["user", "create", "alice"], "correct horse\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = strata(&b, &["user", "create", "bob", "--mechanism", "SCRAM-SHA-256", "--iterations", "4096"], "pw\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = listed(&b);
    assert_eq!(
        v,
        serde_json::json!([
            {"user": "alice", "credentials": [
                {"mechanism": "SCRAM-SHA-256", "iterations": 8192},
                {"mechanism": "SCRAM-SHA-512", "iterations": 8192}]},
            {"user": "bob", "credentials": [{"mechanism": "SCRAM-SHA-256", "iterations": 4096}]}
        ])
    );
    assert!(!v.to_string().contains("horse"), "no secret is listed");
    assert!(!server.log().contains("correct horse"), "the password never reaches the server");

    // Refused, with the reason: too few iterations, no password.
    let out = strata(&b, &["user", "create", "carol", "--iterations", "100"], "pw\n");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("iterations"));
    let out = strata(&b, &["user", "create", "carol"], "");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("password"));

    let out = strata(&b, &["user", "delete", "alice", "--mechanism", "SCRAM-SHA-256"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(listed(&b)[0]["credentials"], serde_json::json!([{"mechanism": "SCRAM-SHA-512", "iterations": 8192}]));
    for name in ["alice", "bob"] {
        let out = strata(&b, &["user", "delete", name], "");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(listed(&b), serde_json::json!([]));
    let out = strata(&b, &["user", "delete", "alice"], "");
    assert!(!out.status.success(), "deleting an unknown user fails");
}
