//! kafkajs (Node.js): a Kafka client written from the protocol spec in
//! JavaScript, sharing no code with librdkafka or kafka-python — a third
//! independent implementation the Kafka-listener tests run
//! (`tests/node/kafkajs_clients.js`). [`PACKAGES`] are installed from the
//! npm registry into a directory under `target/` on first use with the
//! machine's `node` and `npm` (installed with `apt-get` when missing), so
//! `cargo test` needs nothing installed by hand.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// kafkajs and the pure-JavaScript snappy codec it is given.
pub const PACKAGES: &[&str] = &["kafkajs@2.2.4", "kafkajs-snappy@1.1.0"];
/// Names the install directory after what it holds.
const DIR: &str = "node-kafkajs-1";

/// The `node_modules` directory holding [`PACKAGES`].
pub fn node_modules() -> PathBuf {
    static MODULES: OnceLock<PathBuf> = OnceLock::new();
    MODULES.get_or_init(provision).clone()
}

fn has(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success())
}

fn installed(modules: &Path) -> bool {
    modules.join("kafkajs/package.json").is_file() && modules.join("kafkajs-snappy/package.json").is_file()
}

fn provision() -> PathBuf {
    if !(has("node") && has("npm")) {
        let out = Command::new("sh")
            .args(["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm"])
            .output()
            .expect("run apt-get");
        assert!(out.status.success(), "apt-get install nodejs npm failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    let target = crate::target_dir();
    let dir = target.join(DIR);
    let modules = dir.join("node_modules");
    if installed(&modules) {
        return modules;
    }
    std::fs::create_dir_all(&dir).expect("create the kafkajs directory");
    let out = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--silent", "--no-save", "--prefix"])
        .arg(&dir)
        .args(PACKAGES)
        .output()
        .expect("run npm");
    assert!(out.status.success(), "npm install {PACKAGES:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(installed(&modules), "npm install left no kafkajs in {}", modules.display());
    modules
}

/// Runs `tests/node/kafkajs_clients.js` with `args`; panics with its stderr
/// if it fails.
pub fn run(args: &[&str]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("node/kafkajs_clients.js");
    let out = Command::new("node")
        .arg(&script)
        .args(args)
        .env("NODE_PATH", node_modules())
        .env("KAFKAJS_NO_PARTITIONER_WARNING", "1")
        .output()
        .unwrap_or_else(|e| panic!("run node: {e}"));
    assert!(
        out.status.success(),
        "kafkajs_clients.js {:?} failed:\n{}",
        &args[..args.len().min(2)],
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
