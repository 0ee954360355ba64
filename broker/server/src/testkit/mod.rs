//! The one way tests stand up an in-process node, and the one way they wait
//! for something to become true. A [`TestNode`] runs [`crate::run`] (the
//! real server, controller and broker, on free loopback ports) inside the
//! test's runtime; multi-process clusters are `strata-tests`' (they run the
//! built binaries through `deploy/local-cluster.sh`). A [`TestCluster`]
//! runs several such nodes as one cluster, behind a [`Wiretap`] that
//! records requests and injects faults in front of the real brokers.

mod cluster;
mod grpc_frame;
mod wiretap;

/// A node's settings, which [`TestCluster::start_with`] lets tests adjust.
pub use crate::config::ServerConfig;
pub use cluster::TestCluster;
pub use wiretap::{TapLayer, Tapped, Wiretap};

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::DevArgs;
use strata_protocol::v1::strata_client::StrataClient;
use tonic::transport::Channel;

use crate::{ServerError, MAX_MESSAGE_BYTES};

/// How long a node may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Ports tests hand to servers: below Linux's ephemeral range (32768–60999
/// by default), so the kernel never gives a port picked here to some
/// outgoing connection between the check and the server's bind (that race
/// failed tests with "Address already in use"), and below the 20000–32000
/// that `strata-tests`' local clusters take.
const TEST_PORTS: std::ops::Range<u32> = 12_000..20_000;

/// The next candidate in `TEST_PORTS`; starts at a per-process random
/// offset, so a leftover server of an earlier test binary is unlikely to
/// hold the first ports tried.
static NEXT_PORT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(u32::MAX);

/// A loopback port no other test of this process was given and that was
/// free when checked.
pub fn free_port() -> u16 {
    use std::sync::atomic::Ordering;
    let span = TEST_PORTS.end - TEST_PORTS.start;
    if NEXT_PORT.load(Ordering::SeqCst) == u32::MAX {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let seed = (h.finish() % u64::from(span)) as u32;
        let _ = NEXT_PORT.compare_exchange(u32::MAX, seed, Ordering::SeqCst, Ordering::SeqCst);
    }
    for _ in 0..span {
        let n = NEXT_PORT.fetch_add(1, Ordering::SeqCst);
        let port = (TEST_PORTS.start + n % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {TEST_PORTS:?}");
}

/// A free loopback address (see [`free_port`]).
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// Waits until `check` holds, polling every 20 ms; panics naming `what`
/// after `timeout`. Returns how long it took.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

/// The blocking twin of [`eventually`], for tests that drive processes from
/// a plain thread (where a check often runs a process): polls `check`
/// every 50 ms until it holds; panics naming
/// `what` after `timeout`. Returns how long it took.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

/// A `strata-server dev` node running in this process.
#[derive(Debug)]
pub struct TestNode {
    /// A gRPC client connected to the node.
    pub client: StrataClient<Channel>,
    /// The node's settings (its ports and data directory).
    pub args: DevArgs,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), ServerError>>>,
}

impl TestNode {
    /// Starts a node with its data in `dir` on free ports.
    pub async fn start(dir: &Path) -> TestNode {
        Self::start_with(Self::args(dir.to_path_buf(), None)).await
    }

    /// Starts a node with its data in `dir/data` and `toml` as its config
    /// file (`dir/strata.toml`).
    pub async fn start_with_toml(dir: &Path, toml: &str) -> TestNode {
        let config = dir.join("strata.toml");
        if let Err(e) = std::fs::write(&config, toml) {
            panic!("writing {}: {e}", config.display());
        }
        Self::start_with(Self::args(dir.join("data"), Some(config))).await
    }

    /// Starts a node with exactly these settings (e.g. those a stopped node
    /// returned, to restart it on the same ports and data).
    pub async fn start_with(args: DevArgs) -> TestNode {
        let config = match ServerConfig::dev(&args) {
            Ok(c) => c,
            Err(e) => panic!("test node config: {e}"),
        };
        Self::start_node(config, args, None).await
    }

    /// Starts a node with `config` (whose addresses and data directory are
    /// those of `args`) behind `tap`.
    pub async fn start_tapped(config: ServerConfig, args: DevArgs, tap: TapLayer) -> TestNode {
        Self::start_node(config, args, Some(tap)).await
    }

    async fn start_node(config: ServerConfig, args: DevArgs, tap: Option<TapLayer>) -> TestNode {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(crate::run_with(
            config,
            async move {
                let _ = rx.await;
            },
            tap,
        ));
        let deadline = Instant::now() + START_TIMEOUT;
        let client = loop {
            if let Ok(c) = StrataClient::connect(format!("http://{}", args.listen)).await {
                break c.max_decoding_message_size(MAX_MESSAGE_BYTES).max_encoding_message_size(MAX_MESSAGE_BYTES);
            }
            assert!(!task.is_finished(), "the test node exited during startup");
            assert!(Instant::now() < deadline, "the test node did not answer within {START_TIMEOUT:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        TestNode { client, args, stop: Some(tx), task: Some(task) }
    }

    /// Stops the node cleanly (panicking if the shutdown reports an error)
    /// and returns its settings for a restart.
    pub async fn stop(mut self) -> DevArgs {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("the test node stopped with an error: {}", strata_record::ErrorChain(&e)),
                Err(e) => panic!("the test node's task failed: {e}"),
            }
        }
        self.args.clone()
    }

    /// Drains the node (`POST /drain`): the controller moves the
    /// leadership of its partitions away while it keeps answering, as
    /// before a rolling restart. Panics unless the drain finished.
    pub async fn drain(&self) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.args.http_listen;
        let mut stream = match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(e) => panic!("connecting to the test node's HTTP listener {addr}: {e}"),
        };
        let request = "POST /drain HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let mut answer = String::new();
        if let Err(e) = async {
            stream.write_all(request.as_bytes()).await?;
            stream.read_to_string(&mut answer).await
        }
        .await
        {
            panic!("POST /drain to {addr}: {e}");
        }
        assert!(answer.starts_with("HTTP/1.1 200"), "POST /drain to {addr} answered: {answer}");
    }

    fn args(data_dir: std::path::PathBuf, config: Option<std::path::PathBuf>) -> DevArgs {
        DevArgs {
            data_dir,
            listen: free_addr(),
            controller_listen: free_addr(),
            http_listen: free_addr(),
            kafka_listen: free_addr(),
            config,
        }
    }
}
