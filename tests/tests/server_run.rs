//! `strata-server run`: the flags of `docs/interfaces.md`, the same settings as
//! `STRATA_*` environment variables and as a TOML file, and a clear one-line
//! refusal (non-zero exit) for what this build does not run yet.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use strata_tests::{binary, free_port, http_get};

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        // SAFETY: signals only the child this test spawned and has not reaped.
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.0.wait();
    }
}

fn wait_ready(http: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(([127, 0, 0, 1], http).into(), "/readyz").is_none_or(|(code, _)| code != 200) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("strata-server exited early: {status}");
        }
        assert!(Instant::now() < deadline, "not ready in time");
        std::thread::sleep(Duration::from_millis(50));
    }
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
    let mut child = Command::new(binary("strata-server"))
        .args(["run", "--node-id", "1", "--roles", "broker,controller"])
        .arg("--data-dir")
        .arg(dir.path().join("flags"))
        .args(["--listen", &format!("127.0.0.1:{client}")])
        .args(["--controller-listen", &format!("127.0.0.1:{raft}")])
        .args(["--http-listen", &format!("127.0.0.1:{http}")])
        .args(["--controller-voters", &format!("1@127.0.0.1:{raft}")])
        .args(["--advertised-address", &format!("127.0.0.1:{client}"), "--rack", "r1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(http, &mut child);
    let node = Node(child);
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
    let mut child = Command::new(binary("strata-server"))
        .arg("run")
        .env("STRATA_CONFIG", &toml)
        .env("STRATA_DATA_DIR", dir.path().join("env"))
        .env("STRATA_LISTEN", format!("127.0.0.1:{client}"))
        .env("STRATA_CONTROLLER_LISTEN", format!("127.0.0.1:{raft}"))
        .env("STRATA_HTTP_LISTEN", format!("127.0.0.1:{http}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(http, &mut child);
    let _node = Node(child);
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
