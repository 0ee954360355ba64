//! `STRATA_SECURE=1 deploy/local-cluster.sh up 3`: a secure cluster with
//! certificates openssl made (a second, independent certificate
//! toolchain), TLS everywhere, SCRAM on the Kafka listener and an `admin`
//! user. The CLI works with the admin certificate, kcat with the admin
//! password over SASL_SSL, and a node killed with SIGKILL comes back into
//! the secure cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::process::Command;

use strata_tests::binary;
use strata_tests::local_cluster::LocalCluster;

#[test]
fn a_secure_local_cluster_serves_tls_and_scram() {
    // The script makes certificates with openssl and checks readiness over
    // HTTPS with curl.
    strata_tests::kcat::ensure_commands(&["openssl", "curl"], &["openssl", "curl"]);
    let cluster = LocalCluster::up_with_env(3, &[("STRATA_SECURE", "1")]);
    let tls = cluster.dir().join("tls");
    let password = std::fs::read_to_string(cluster.dir().join("admin.password")).unwrap().trim().to_string();
    let cli = |args: &[&str]| {
        let out = Command::new(binary("strata"))
            .args(["--bootstrap", &cluster.bootstrap_all()])
            .arg("--ca-file")
            .arg(tls.join("ca.pem"))
            .arg("--cert-file")
            .arg(tls.join("admin.pem"))
            .arg("--key-file")
            .arg(tls.join("admin-key.pem"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "strata {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(cli(&["user", "list"]).contains("admin"), "the script created the admin user");
    cli(&["topic", "create", "secured", "-p", "3", "-r", "3"]);
    let kcat = |args: &[&str]| {
        Command::new(strata_tests::kcat::kcat())
            .args(["-b", &cluster.kafka_bootstrap_all(), "-X", "security.protocol=sasl_ssl"])
            .args(["-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", "sasl.username=admin"])
            .arg("-X")
            .arg(format!("sasl.password={password}"))
            .arg("-X")
            .arg(format!("ssl.ca.location={}", tls.join("ca.pem").display()))
            .args(args)
            .output()
            .unwrap()
    };
    let md = kcat(&["-L", "-t", "secured"]);
    let text = String::from_utf8_lossy(&md.stdout);
    assert!(md.status.success() && text.contains("3 brokers") && text.contains("3 partitions"), "{text}");
    // A crash and a restart: the node rejoins with its certificate.
    cluster.kill(2);
    cluster.ok(&["start", "2"]);
    assert!(cli(&["cluster", "health"]).to_lowercase().contains("healthy"));
}
