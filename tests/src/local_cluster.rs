//! A local N-node cluster driven through `deploy/local-cluster.sh`, the
//! launcher users run (`docs/interfaces.md`, "Interfaces users touch"), so the tests
//! exercise the script itself: every start, stop and signal goes through it.
//!
//! Each cluster gets its own temporary `STRATA_CLUSTER_DIR`, a free port base
//! (`STRATA_BASE_PORT`) and this build's binaries (`STRATA_BIN_DIR`). Dropping
//! it runs `down` and then SIGKILLs any node process still alive, so a
//! panicking test leaves nothing behind. Only PIDs from the cluster's own pid
//! files are signalled, and only while `/proc/PID/cmdline` still names this
//! cluster's (unique) data directory.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{binary, http_get};

/// Port ranges (base, length) handed out in this process, so two clusters of
/// one test binary never race for the same ports.
static RANGES: Mutex<Vec<(u32, u32)>> = Mutex::new(Vec::new());

/// A cluster started with `local-cluster.sh up N`.
#[derive(Debug)]
pub struct LocalCluster {
    dir: tempfile::TempDir,
    /// `dir` with symlinks resolved, as the script writes it into `--data-dir`.
    root: PathBuf,
    n: usize,
    base: u16,
    /// Extra environment for the script, and so for every server it starts.
    env: Vec<(String, String)>,
    /// Every node PID seen in a pid file, for the last-resort cleanup.
    pids: Mutex<HashSet<u32>>,
}

impl LocalCluster {
    /// Path of `deploy/local-cluster.sh` in this workspace.
    pub fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/local-cluster.sh")
    }

    /// Runs `local-cluster.sh up n` on a free port range and a fresh temporary
    /// directory; panics with the script's output if it fails (after taking
    /// down whatever it started).
    pub fn up(n: usize) -> LocalCluster {
        Self::up_with_env(n, &[])
    }

    /// [`LocalCluster::up`] with extra environment variables (e.g. `STRATA_*`
    /// server settings) for every script run, so nodes restarted later with
    /// `start` get them too.
    pub fn up_with_env(n: usize, env: &[(&str, &str)]) -> LocalCluster {
        assert!(n >= 1, "a cluster needs a node");
        let dir = tempfile::Builder::new().prefix("strata-local-cluster").tempdir().expect("tempdir");
        let c = LocalCluster {
            root: dir.path().canonicalize().expect("canonical tempdir"),
            dir,
            n,
            base: free_base(n),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            pids: Mutex::new(HashSet::new()),
        };
        c.ok(&["up", &n.to_string()]);
        c
    }

    /// Runs the script with this cluster's environment.
    pub fn run(&self, args: &[&str]) -> Output {
        let out = Command::new(Self::script())
            .args(args)
            .current_dir(self.dir.path())
            .env("STRATA_CLUSTER_DIR", self.dir.path())
            .env("STRATA_BASE_PORT", self.base.to_string())
            .env("STRATA_BIN_DIR", binary("strata-server").parent().expect("binary directory"))
            .env("STRATA_READY_TIMEOUT", "30")
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info,raft=warn".into()))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .expect("run deploy/local-cluster.sh");
        self.remember_pids();
        out
    }

    /// Runs the script and panics (with its output) unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "local-cluster.sh {} failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Number of nodes.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The `STRATA_CLUSTER_DIR` of this cluster.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `kill I`: SIGKILL node `i`.
    pub fn kill(&self, i: usize) {
        self.ok(&["kill", &i.to_string()]);
    }

    /// `start I`: start node `i` again and wait until it is ready.
    pub fn start(&self, i: usize) {
        self.ok(&["start", &i.to_string()]);
    }

    /// `stop I`: SIGTERM node `i` and wait for it to exit.
    pub fn stop(&self, i: usize) {
        self.ok(&["stop", &i.to_string()]);
    }

    /// `pause I`: SIGSTOP node `i`.
    pub fn pause(&self, i: usize) {
        self.ok(&["pause", &i.to_string()]);
    }

    /// `resume I`: SIGCONT node `i`.
    pub fn resume(&self, i: usize) {
        self.ok(&["resume", &i.to_string()]);
    }

    /// `down`: stop every node (SIGTERM, SIGKILL after ~15 s).
    pub fn down(&self) {
        self.ok(&["down"]);
    }

    /// Client port of node `i` (1-based).
    pub fn port(&self, i: usize) -> u16 {
        assert!((1..=self.n).contains(&i), "node {i} out of range 1..={}", self.n);
        self.base + 10 * (i as u16 - 1)
    }

    /// Client address of node `i`, for `--bootstrap`.
    pub fn bootstrap(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.port(i))
    }

    /// Every node's client address, comma-separated.
    pub fn bootstrap_all(&self) -> String {
        (1..=self.n).map(|i| self.bootstrap(i)).collect::<Vec<_>>().join(",")
    }

    /// Kafka protocol address of node `i`.
    pub fn kafka(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port(i) + 3))
    }

    /// Every node's Kafka `host:port`, comma-separated (Kafka's
    /// `bootstrap.servers`).
    pub fn kafka_bootstrap_all(&self) -> String {
        (1..=self.n()).map(|i| self.kafka(i).to_string()).collect::<Vec<_>>().join(",")
    }

    /// HTTP address of node `i`.
    pub fn http(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port(i) + 2))
    }

    /// True when node `i`'s `/readyz` answers 200.
    pub fn ready(&self, i: usize) -> bool {
        http_get(self.http(i), "/readyz").is_some_and(|(code, _)| code == 200)
    }

    /// PID of node `i` from its pid file, if that process is alive.
    pub fn pid(&self, i: usize) -> Option<u32> {
        let pid = std::fs::read_to_string(self.dir.path().join(format!("node{i}.pid"))).ok()?.trim().parse().ok()?;
        self.pids.lock().unwrap().insert(pid);
        self.is_node_process(pid).then_some(pid)
    }

    /// Node `i`'s log so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("node{i}.log"))).unwrap_or_default()
    }

    /// True when `pid` is a live (not zombie) process of this cluster: its
    /// command line names a data directory under this cluster's directory.
    pub fn is_node_process(&self, pid: u32) -> bool {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next()));
        if matches!(state, None | Some('Z' | 'X')) {
            return false;
        }
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
        let root = format!("{}/", self.root.display());
        let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        args.first().is_some_and(|a| a.ends_with("/strata-server") || a == "strata-server")
            && args.iter().any(|a| a.starts_with(&root))
    }

    /// On a failed test: each node's last warnings and errors, so a failure
    /// seen only in CI can be diagnosed from its output.
    fn print_log_tails(&self) {
        const LINES: usize = 30;
        for i in 1..=self.n {
            let log = self.log(i);
            let notable: Vec<&str> = log.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).collect();
            eprintln!(
                "--- node {i}: last {} warnings/errors of {} log lines ---",
                notable.len().min(LINES),
                log.lines().count()
            );
            for line in &notable[notable.len().saturating_sub(LINES)..] {
                eprintln!("{line}");
            }
        }
    }

    fn remember_pids(&self) {
        for i in 1..=self.n {
            let _ = self.pid(i);
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_log_tails();
        }
        let out = self.run(&["down"]);
        if !out.status.success() && !std::thread::panicking() {
            eprintln!("local-cluster.sh down failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        // Last resort: anything of ours still alive (down failed, or a pid
        // file was lost) gets SIGKILL.
        let pids: Vec<u32> = self.pids.lock().unwrap().iter().copied().collect();
        let deadline = Instant::now() + Duration::from_secs(5);
        for pid in pids {
            while self.is_node_process(pid) {
                // SAFETY: kill(2) on a PID whose command line was just checked
                // to be a strata-server of this cluster's unique directory.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                    libc::kill(pid as libc::pid_t, libc::SIGCONT);
                }
                if Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// A port base in 20000..32000 (below Linux's ephemeral range, so clients'
/// outgoing ports never collide) where all `3n` ports of an `n`-node cluster
/// bind right now.
fn free_base(n: usize) -> u16 {
    let span = 10 * n as u32;
    let (lo, hi) = (20_000u32, 32_000u32);
    let slots = (hi - lo) / span;
    let seed = {
        use std::hash::{BuildHasher, Hasher};
        // RandomState's keys are random per process (and per instance).
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish()
    };
    let mut taken = RANGES.lock().unwrap();
    for k in 0..u64::from(slots) {
        let base = lo + ((seed.wrapping_add(k) % u64::from(slots)) as u32) * span;
        if taken.iter().any(|&(b, len)| base < b + len && b < base + span) {
            continue;
        }
        let bound: Result<Vec<TcpListener>, _> = (0..n as u32)
            .flat_map(|i| (0..3).map(move |o| base + 10 * i + o))
            .map(|p| TcpListener::bind(("127.0.0.1", p as u16)))
            .collect();
        if bound.is_ok() {
            taken.push((base, span));
            return base as u16;
        }
    }
    panic!("no free port range for {n} nodes in {lo}..{hi}");
}
