//! The one way these tests run `strata-server` as a process: `dev` for a
//! one-node cluster, `run` for a node of a multi-process cluster, or any
//! other launch (the Kubernetes manifests' env, a TOML file). Every process
//! logs to a file beside its data directory, is signalled only by the PID
//! of the child this harness spawned, and is SIGKILLed and reaped on drop.
//! (Clusters started through `deploy/local-cluster.sh` are
//! [`crate::local_cluster`]'s: they exercise the script itself.)

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{binary, free_port, http_get};

/// How long a clean stop may take before the process is killed and the
/// stop reported as unclean.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// What `strata-server` is started with, after the binary's path.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// Command-line arguments.
    pub args: Vec<String>,
    /// Environment variables set for the process.
    pub env: Vec<(String, String)>,
    /// Drop every `STRATA_*` variable this test inherited first, so only
    /// `env` configures the server.
    pub clear_strata_env: bool,
}

/// A `strata-server` process this test started.
#[derive(Debug)]
pub struct ServerProcess {
    /// Node id (1 for `dev`).
    pub id: u64,
    /// `--roles` of a `run` node (`dev` is both).
    pub roles: &'static str,
    /// Client gRPC address.
    pub listen: SocketAddr,
    /// Controller Raft address.
    pub controller: SocketAddr,
    /// HTTP address (health, readiness, metrics).
    pub http: SocketAddr,
    /// Kafka protocol address.
    pub kafka: SocketAddr,
    /// Data directory (kept across restarts).
    pub data_dir: PathBuf,
    launch: Launch,
    child: Option<Child>,
    log_path: PathBuf,
    /// Set for a TLS node: how its HTTPS readiness endpoint is reached.
    https: Option<strata_tls::ClientTls>,
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

impl ServerProcess {
    /// Starts `strata-server dev` on free loopback ports with its data in
    /// `data_dir`, and waits until `/readyz` says ready.
    pub fn dev(data_dir: &Path) -> ServerProcess {
        let (listen, controller, http) = (loopback(free_port()), loopback(free_port()), loopback(free_port()));
        let kafka = loopback(free_port());
        let launch = Launch {
            args: vec![
                "dev".into(),
                "--data-dir".into(),
                data_dir.display().to_string(),
                "--listen".into(),
                listen.to_string(),
                "--http-listen".into(),
                http.to_string(),
                "--controller-listen".into(),
                controller.to_string(),
                "--kafka-listen".into(),
                kafka.to_string(),
            ],
            ..Launch::default()
        };
        let mut s = ServerProcess {
            id: 1,
            roles: "broker,controller",
            listen,
            controller,
            http,
            kafka,
            data_dir: data_dir.to_path_buf(),
            launch,
            child: None,
            log_path: data_dir.with_extension("server.log"),
            https: None,
        };
        s.spawn();
        s.wait_ready(Duration::from_secs(30));
        s
    }

    /// A stopped `strata-server run` node with fresh loopback ports and its
    /// data in `root/node<id>`; [`ServerProcess::start`] runs it.
    pub fn node(root: &Path, id: u64, roles: &'static str) -> ServerProcess {
        let data_dir = root.join(format!("node{id}"));
        ServerProcess {
            id,
            roles,
            listen: loopback(free_port()),
            controller: loopback(free_port()),
            http: loopback(free_port()),
            kafka: loopback(free_port()),
            log_path: data_dir.with_extension("server.log"),
            data_dir,
            launch: Launch::default(),
            child: None,
            https: None,
        }
    }

    /// Starts a process launched as `launch`, serving clients on `listen`
    /// and HTTP on `http`, logging to `log_path`; does not wait for it.
    pub fn launch(launch: Launch, listen: SocketAddr, http: SocketAddr, log_path: &Path) -> ServerProcess {
        let mut s = ServerProcess {
            id: 0,
            roles: "",
            listen,
            controller: loopback(0),
            http,
            kafka: loopback(0),
            data_dir: PathBuf::new(),
            launch,
            child: None,
            log_path: log_path.to_path_buf(),
            https: None,
        };
        s.spawn();
        s
    }

    /// The `--controller-voters` value for the controller nodes among `nodes`.
    pub fn voters(nodes: &[ServerProcess]) -> String {
        nodes
            .iter()
            .filter(|n| n.roles.contains("controller"))
            .map(|n| format!("{}@{}", n.id, n.controller))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts a [`ServerProcess::node`] with these controller voters; does
    /// not wait for it (see [`ServerProcess::ready`]).
    pub fn start(&mut self, voters: &str) {
        self.launch.args = vec![
            "run".into(),
            "--node-id".into(),
            self.id.to_string(),
            "--roles".into(),
            self.roles.into(),
            "--data-dir".into(),
            self.data_dir.display().to_string(),
            "--listen".into(),
            self.listen.to_string(),
            "--controller-listen".into(),
            self.controller.to_string(),
            "--http-listen".into(),
            self.http.to_string(),
            "--kafka-listen".into(),
            self.kafka.to_string(),
            "--controller-voters".into(),
            voters.into(),
        ];
        self.spawn();
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "node {} is still running", self.id);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log_path).expect("server log file");
        let mut cmd = Command::new(binary("strata-server"));
        if self.launch.clear_strata_env {
            for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("STRATA_")) {
                cmd.env_remove(k);
            }
        }
        let rust_log = std::env::var("RUST_LOG").unwrap_or_else(|_| "info,raft=warn".into());
        let child = cmd
            .args(&self.launch.args)
            .env("RUST_LOG", rust_log)
            .envs(self.launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn strata-server");
        self.child = Some(child);
    }

    /// The bootstrap string clients use.
    pub fn bootstrap(&self) -> String {
        self.listen.to_string()
    }

    /// True when `/readyz` answers 200.
    pub fn ready(&self) -> bool {
        match &self.https {
            Some(tls) => crate::https_get(self.http, "/readyz", tls),
            None => http_get(self.http, "/readyz"),
        }
        .is_some_and(|(code, _)| code == 200)
    }

    /// Adds environment variables (`STRATA_*` settings) to this (not yet
    /// started) node's launch.
    pub fn add_env(&mut self, env: &[(&str, &str)]) {
        self.launch.env.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    }

    /// Makes this (not yet started) node serve TLS on every listener with
    /// `files` (through `STRATA_TLS_*`), and checks its readiness over
    /// HTTPS trusting `files.ca`.
    pub fn with_tls(&mut self, files: &strata_tls::TlsFiles) {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        self.launch.env.retain(|(k, _)| !k.starts_with("STRATA_TLS_"));
        self.launch.env.push(("STRATA_TLS_CERT_FILE".into(), path(&files.cert)));
        self.launch.env.push(("STRATA_TLS_KEY_FILE".into(), path(&files.key)));
        self.launch.env.push(("STRATA_TLS_CA_FILE".into(), path(&files.ca)));
        let trust = strata_tls::TlsFiles { ca: files.ca.clone(), ..strata_tls::TlsFiles::default() };
        self.https = Some(strata_tls::ClientTls::new(&trust, &[b"http/1.1"]).expect("TLS client config"));
    }

    /// Polls `/readyz` until 200, panicking with the server log on timeout
    /// or if the process exits.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("strata-server exited early ({status}); log:\n{}", self.log());
                }
            }
            if self.ready() {
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

    /// SIGTERM, then the exit status (`None` if it was not running, or did
    /// not exit within `timeout` and was killed).
    pub fn sigterm_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        signal(&child, libc::SIGTERM);
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                signal(&child, libc::SIGKILL);
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit status (see [`ServerProcess::sigterm_within`]).
    pub fn sigterm(&mut self) -> Option<ExitStatus> {
        self.sigterm_within(STOP_TIMEOUT)
    }

    /// SIGTERM, then waits for a clean exit (asserting exit status 0).
    pub fn stop(&mut self) {
        if self.child.is_some() {
            let status = self.sigterm();
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

    /// Stops the process cleanly and starts it again on the same ports and
    /// data directory, waiting until it is ready.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Starts it again (same launch, ports and data) after
    /// [`ServerProcess::kill`] or [`ServerProcess::stop`], waiting until it
    /// is ready.
    pub fn start_again(&mut self) {
        self.spawn();
        self.wait_ready(Duration::from_secs(30));
    }
}

impl Drop for ServerProcess {
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
