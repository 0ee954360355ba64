//! Real Kafka clients from PyPI: kafka-python, the independent
//! implementation the format tests check Strata's record batches against
//! (`tests/python/kafka_batches.py`), and confluent-kafka (librdkafka,
//! bundled in its wheel) with kafka-python against the Kafka listener
//! (`tests/python/kafka_clients.py`). Taken from `STRATA_KAFKA_PYTHON` (a
//! python with [`PACKAGES`] installed) when set; otherwise a venv under
//! `target/` is made with `python3 -m venv` and [`PACKAGES`] installed from
//! PyPI on first use, so `cargo test` needs nothing installed by hand beyond
//! python3.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The kafka-python release the oracle is pinned to, and the codec
/// libraries it compresses and decompresses with (snappy, lz4, zstd; gzip is
/// Python's own).
pub const PACKAGES: &[&str] =
    &["kafka-python==3.0.12", "python-snappy==0.7.3", "lz4==4.4.5", "zstandard==0.25.0", "confluent-kafka==2.16.2"];
/// Names the venv after what it holds; a change of [`PACKAGES`] gets a new one.
const VENV: &str = "venv-kafka-clients-2";

/// A python interpreter that can `import kafka`.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(provision).clone()
}

fn imports_kafka(python: &std::path::Path) -> bool {
    Command::new(python)
        .args(["-c", "import kafka.record.default_records, snappy, lz4.frame, zstandard, confluent_kafka"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn provision() -> PathBuf {
    if let Some(p) = std::env::var_os("STRATA_KAFKA_PYTHON") {
        let p = PathBuf::from(p);
        assert!(imports_kafka(&p), "STRATA_KAFKA_PYTHON={} cannot import kafka-python and its codecs", p.display());
        return p;
    }
    let target = crate::target_dir();
    let venv = target.join(VENV);
    let python = venv.join("bin/python");
    if imports_kafka(&python) {
        return python;
    }
    let run = |cmd: &mut Command, what: &str| {
        let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run: {e} (the format tests need python3)"));
        assert!(out.status.success(), "{what} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv), "python3 -m venv");
    run(
        Command::new(venv.join("bin/pip")).args(["install", "--quiet", "--disable-pip-version-check"]).args(PACKAGES),
        "pip install kafka-python and its codecs",
    );
    assert!(imports_kafka(&python), "kafka-python installed but not importable from {}", python.display());
    python
}

/// Runs `tests/python/kafka_batches.py` with `args`; panics with its
/// stderr if it fails.
pub fn run(args: &[&str]) -> Output {
    run_script("kafka_batches.py", args)
}

/// Runs `tests/python/SCRIPT` with `args`; panics with its stderr if it
/// fails.
pub fn run_script(script: &str, args: &[&str]) -> Output {
    run_script_env(script, args, &[])
}

/// [`run_script`] with extra environment variables.
pub fn run_script_env(script: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python").join(script);
    let out = Command::new(python())
        .arg(path)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} {:?} failed:\n{}",
        &args[..args.len().min(2)],
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
