//! `strata-server run`: the flags of `docs/interfaces.md`, the same settings as
//! `STRATA_*` environment variables and as a TOML file, and a clear one-line
//! refusal (non-zero exit) for what this build does not run yet.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use strata_tests::{binary, free_port, Launch, ServerProcess};

/// Starts `strata-server` as `launch` and waits until it is ready.
fn start(launch: Launch, client: u16, http: u16, log: &std::path::Path) -> ServerProcess {
    let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let mut node = ServerProcess::launch(launch, addr(client), addr(http), log);
    node.wait_ready(Duration::from_secs(30));
    node
}

fn topic_list(bootstrap: &str) -> serde_json::Value {
    let out = Command::new(binary("strata"))
        .args(["--bootstrap", bootstrap, "--output", "json", "topic", "list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn run_takes_flags_env_and_toml() {
    let dir = tempfile::tempdir().unwrap();
    let (client, raft, http) = (free_port(), free_port(), free_port());
    // Flags.
    let args = [
        "run".to_string(),
        "--node-id".into(),
        "1".into(),
        "--roles".into(),
        "broker,controller".into(),
        "--data-dir".into(),
        dir.path().join("flags").display().to_string(),
        "--listen".into(),
        format!("127.0.0.1:{client}"),
        "--controller-listen".into(),
        format!("127.0.0.1:{raft}"),
        "--http-listen".into(),
        format!("127.0.0.1:{http}"),
        "--controller-voters".into(),
        format!("1@127.0.0.1:{raft}"),
        "--advertised-address".into(),
        format!("127.0.0.1:{client}"),
        "--rack".into(),
        "r1".into(),
    ];
    let launch = Launch { args: args.to_vec(), env: Vec::new(), clear_strata_env: true };
    let node = start(launch, client, http, &dir.path().join("flags.log"));
    let out = Command::new(binary("strata"))
        .args(["--bootstrap", &format!("127.0.0.1:{client}"), "--output", "json", "cluster", "info"])
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&out.stdout);
    assert!(info.contains("r1"), "rack from --rack: {info}");
    drop(node);

    // The same through STRATA_* variables and a TOML file.
    let (client, raft, http) = (free_port(), free_port(), free_port());
    let toml = dir.path().join("strata.toml");
    std::fs::write(&toml, format!("node_id = 4\ncontroller_voters = \"4@127.0.0.1:{raft}\"\ndefault_partitions = 3\n"))
        .unwrap();
    let env = [
        ("STRATA_CONFIG", toml.display().to_string()),
        ("STRATA_DATA_DIR", dir.path().join("env").display().to_string()),
        ("STRATA_LISTEN", format!("127.0.0.1:{client}")),
        ("STRATA_CONTROLLER_LISTEN", format!("127.0.0.1:{raft}")),
        ("STRATA_HTTP_LISTEN", format!("127.0.0.1:{http}")),
    ];
    let launch = Launch {
        args: vec!["run".into()],
        env: env.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        clear_strata_env: true,
    };
    let _node = start(launch, client, http, &dir.path().join("env.log"));
    let bootstrap = format!("127.0.0.1:{client}");
    let out =
        Command::new(binary("strata")).args(["--bootstrap", &bootstrap, "topic", "create", "t"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list = topic_list(&bootstrap);
    assert!(list.to_string().contains("\"partitions\":3"), "default_partitions from TOML: {list}");
}

#[test]
fn what_this_build_cannot_run_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["run".into()], "--node-id"),
        (
            vec!["run".into(), "--node-id".into(), "1".into(), "--controller-voters".into(), "2@a:1,3@b:1".into()],
            "not among the voters",
        ),
        (vec!["run".into(), "--node-id".into(), "1".into(), "--roles".into(), "chef".into()], "unknown role"),
        // A voter must have the controller role; a controller must be a voter.
        (
            vec!["run".into(), "--node-id".into(), "1".into(), "--roles".into(), "broker".into()],
            "lacks the controller role",
        ),
        (
            vec![
                "run".into(),
                "--node-id".into(),
                "4".into(),
                "--roles".into(),
                "controller".into(),
                "--controller-voters".into(),
                "1@a:1".into(),
            ],
            "not among the voters",
        ),
        (vec!["run".into(), "--node-id".into(), "x".into()], "invalid value"),
    ];
    for (args, needle) in cases {
        let out = Command::new(binary("strata-server"))
            .args(&args)
            .env("STRATA_DATA_DIR", dir.path())
            .env("STRATA_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env("STRATA_HTTP_LISTEN", format!("127.0.0.1:{}", free_port()))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: not one line: {err}");
    }
}

#[test]
fn a_data_directory_of_the_old_batch_format_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("events-0")).unwrap();
    std::fs::write(data.join("events-0/00000000000000000000.log"), b"pre-release batches").unwrap();
    let out = Command::new(binary("strata-server"))
        .args(["dev", "--data-dir"])
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--controller-listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--http-listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--kafka-listen", &format!("127.0.0.1:{}", free_port())])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an old-format directory must not be served: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    for needle in ["format 1", "format 2", "empty directory"] {
        assert!(err.contains(needle), "{needle:?} missing: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(std::fs::read(data.join("events-0/00000000000000000000.log")).unwrap(), b"pre-release batches");
}

/// The server raises its soft open-file limit to the hard one (one
/// descriptor per partition: 1,024 would stop a node at about a thousand
/// partitions), whatever limit it inherits.
#[test]
fn the_server_raises_its_open_file_limit() {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `l` is valid and writable; the calls only read or fill it.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) }, 0);
    let hard = l.rlim_max;
    let inherited = libc::rlimit { rlim_cur: 512.min(hard), rlim_max: hard };
    // The child inherits this process's limits; lowered here only for the spawn.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &inherited) }, 0);
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::dev(&dir.path().join("data"));
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &l) }, 0);
    server.wait_ready(Duration::from_secs(30));
    let pid = server.pid().expect("running");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("Max open files line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[3], hard.to_string(), "soft limit raised to the hard one: {line}");
}
