//! # strata-tests
//!
//! Owns the whole-cluster tests: they start real `strata-server` processes on
//! loopback, inject faults (kill -9, stop, restart, hostile input) and check
//! the guarantees in `docs/storage.md` and `docs/replication.md` from the outside. This
//! library is the harness: finding the built binaries, picking free ports,
//! starting, waiting for, signalling and reaping the processes it started.
//!
//! It must never be a dependency of another crate, never talk to anything but
//! 127.0.0.1, and never end a process it did not start (it signals only PIDs
//! of children it spawned).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

pub mod cluster;
pub mod local_cluster;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Path of a binary built by this workspace (`strata-server`, `strata`),
/// next to the test executable's directory (`target/<profile>/`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile> directory");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} not found: build it first (`cargo build --workspace --bins`; `cargo test --workspace` does it)",
        path.display()
    );
    path
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    strata_server::testkit::free_port()
}

/// A `strata-server dev` process this test started.
#[derive(Debug)]
pub struct DevServer {
    child: Option<Child>,
    /// Data directory (kept across restarts).
    pub data_dir: PathBuf,
    /// Client gRPC address.
    pub listen: SocketAddr,
    /// HTTP address.
    pub http: SocketAddr,
    controller: SocketAddr,
    log_path: PathBuf,
}

impl DevServer {
    /// Starts `strata-server dev` on free loopback ports with its data in
    /// `data_dir`, and waits until `/readyz` says ready.
    pub fn start(data_dir: &Path) -> DevServer {
        let addr = |p| SocketAddr::from(([127, 0, 0, 1], p));
        let mut s = DevServer {
            child: None,
            data_dir: data_dir.to_path_buf(),
            listen: addr(free_port()),
            http: addr(free_port()),
            controller: addr(free_port()),
            log_path: data_dir.with_extension("server.log"),
        };
        s.spawn();
        s
    }

    /// The bootstrap string clients use.
    pub fn bootstrap(&self) -> String {
        self.listen.to_string()
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log_path).expect("server log file");
        let child = Command::new(binary("strata-server"))
            .arg("dev")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(self.listen.to_string())
            .arg("--http-listen")
            .arg(self.http.to_string())
            .arg("--controller-listen")
            .arg(self.controller.to_string())
            .env("RUST_LOG", "info,raft=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn strata-server");
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(30));
    }

    /// Polls `/readyz` until 200, panicking with the server log on timeout or
    /// if the process exits.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("strata-server exited early ({status}); log:\n{}", self.log());
                }
            }
            if http_get(self.http, "/readyz").is_some_and(|(code, _)| code == 200) {
                return;
            }
            assert!(Instant::now() < deadline, "strata-server not ready after {timeout:?}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's combined stdout/stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// PID of the running process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM, then waits for a clean exit (asserting exit status 0).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, libc::SIGTERM);
            let status = wait_timeout(&mut child, Duration::from_secs(30));
            assert!(status.is_some_and(|s| s.success()), "unclean exit {status:?}; log:\n{}", self.log());
        }
    }

    /// SIGKILL (a crash), then reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, libc::SIGKILL);
            let _ = child.wait();
        }
    }

    /// Starts the process again on the same ports and data directory.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Starts it again after [`DevServer::kill`] or [`DevServer::stop`].
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.spawn();
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on the PID of a child this harness spawned and has not
    // reaped yet, so the PID cannot have been reused.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            signal(child, libc::SIGKILL);
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A minimal HTTP/1.0 GET on loopback: status code and body, or `None` when
/// nothing answers.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let code = resp.split_whitespace().nth(1)?.parse().ok()?;
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((code, body))
}
