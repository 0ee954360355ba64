//! # strata-tests
//!
//! Owns the whole-cluster tests: they start real `strata-server` processes on
//! loopback, inject faults (kill -9, stop, restart, hostile input) and check
//! the guarantees in `docs/storage.md` and `docs/replication.md` from the outside. This
//! library is the harness: finding the built binaries, picking free ports,
//! starting, waiting for, signalling and reaping the processes it started
//! ([`ServerProcess`] for single servers, [`local_cluster`] for clusters
//! run through `deploy/local-cluster.sh`). Waiting for a condition is
//! `strata_server::testkit::{eventually, wait_until}`, shared with the
//! in-process tests.
//!
//! It must never be a dependency of another crate, never talk to anything but
//! 127.0.0.1, and never end a process it did not start (it signals only PIDs
//! of children it spawned).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

pub mod cli;
pub mod client_report;
pub mod kafka_python;
pub mod kafkajs;
pub mod kcat;
pub mod local_cluster;
pub mod oracle;
pub mod server_process;

pub use server_process::{Launch, ServerProcess};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// `GET path` over HTTPS (TLS configured by `tls`, the server verified as
/// 127.0.0.1): status and body, `None` if no answer came.
pub fn https_get(addr: SocketAddr, path: &str, tls: &strata_tls::ClientTls) -> Option<(u16, String)> {
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
    let conn = rustls::ClientConnection::new(tls.config(), name).ok()?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    // A server may close without TLS close_notify: keep what arrived.
    let _ = s.read_to_end(&mut raw);
    let resp = String::from_utf8_lossy(&raw);
    let code = resp.split_whitespace().nth(1)?.parse().ok()?;
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((code, body))
}

/// The cargo target directory the binaries were built in (`target/`),
/// where the tests keep the client installs they make (venvs, npm).
pub fn target_dir() -> PathBuf {
    binary("strata-server").parent().and_then(Path::parent).map(PathBuf::from).expect("the target directory")
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    strata_server::testkit::free_port()
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
