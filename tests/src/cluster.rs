//! A `strata-server run` node of a multi-process cluster on loopback, and
//! the small helpers the cluster tests share (the `strata` CLI, polling).

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{binary, free_port, http_get};

/// One `strata-server run` process this test started (killed on drop).
#[derive(Debug)]
pub struct ClusterNode {
    /// Node id.
    pub id: u64,
    /// `--roles` value (`broker,controller`, `broker` or `controller`).
    pub roles: &'static str,
    /// Client gRPC port.
    pub client: u16,
    /// Controller Raft port.
    pub raft: u16,
    /// HTTP port.
    pub http: u16,
    /// Data directory.
    pub dir: PathBuf,
    /// The running process, if any.
    pub child: Option<Child>,
}

impl ClusterNode {
    /// A stopped node with fresh loopback ports and a directory under `root`.
    pub fn new(root: &std::path::Path, id: u64, roles: &'static str) -> Self {
        ClusterNode {
            id,
            roles,
            client: free_port(),
            raft: free_port(),
            http: free_port(),
            dir: root.join(format!("node{id}")),
            child: None,
        }
    }

    /// The `--controller-voters` value for the controller nodes among `nodes`.
    pub fn voters(nodes: &[ClusterNode]) -> String {
        nodes
            .iter()
            .filter(|n| n.roles.contains("controller"))
            .map(|n| format!("{}@127.0.0.1:{}", n.id, n.raft))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts the process (stderr to a log file beside the data directory).
    pub fn start(&mut self, voters: &str) {
        let log = std::fs::File::create(self.dir.with_extension(format!("log{}", Instant::now().elapsed().as_nanos())))
            .expect("log file");
        let child = Command::new(binary("strata-server"))
            .args(["run", "--node-id", &self.id.to_string(), "--roles", self.roles])
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["--listen", &format!("127.0.0.1:{}", self.client)])
            .args(["--controller-listen", &format!("127.0.0.1:{}", self.raft)])
            .args(["--http-listen", &format!("127.0.0.1:{}", self.http)])
            .args(["--controller-voters", voters])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn strata-server");
        self.child = Some(child);
    }

    /// True when `/readyz` answers 200.
    pub fn ready(&self) -> bool {
        http_get(([127, 0, 0, 1], self.http).into(), "/readyz").is_some_and(|(c, _)| c == 200)
    }

    /// kill -9 (and reap) the process, if running.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: the PID of a child this test spawned and has not reaped.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGKILL);
            }
            let _ = c.wait();
        }
    }

    /// SIGTERM the process and wait for it to exit.
    pub fn sigterm(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: the PID of a child this test spawned and has not reaped.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        child.wait().ok()
    }

    /// The node's client address, for `--bootstrap`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.client)
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs the `strata` CLI against `bootstrap`.
pub fn strata(bootstrap: &str, args: &[&str]) -> Output {
    Command::new(binary("strata")).arg("--bootstrap").arg(bootstrap).args(args).output().expect("run strata")
}

/// `strata --output json ARGS…` parsed (null when it fails or prints no JSON).
pub fn strata_json(bootstrap: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    serde_json::from_slice(&strata(bootstrap, &all).stdout).unwrap_or_default()
}

/// Polls `f` every 50 ms until it holds; panics naming `what` after `timeout`.
/// Returns how long it took.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}
