//! Debian tools the tests install when missing: kcat (librdkafka 2.0), the
//! command-line Kafka client the
//! tests drive the Kafka listener with. Taken from PATH; when missing it is
//! installed with `apt-get` (the tests run as root on CI machines), so
//! `cargo test` needs nothing installed by hand.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The kcat binary.
pub fn kcat() -> PathBuf {
    static KCAT: OnceLock<PathBuf> = OnceLock::new();
    KCAT.get_or_init(provision).clone()
}

fn found() -> Option<PathBuf> {
    let out = Command::new("sh").args(["-c", "command -v kcat"]).output().ok()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
}

fn provision() -> PathBuf {
    if let Some(p) = found() {
        return p;
    }
    let install = |update: bool| {
        let script = if update {
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat"
        } else {
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat"
        };
        Command::new("sh").args(["-c", script]).output()
    };
    for update in [false, true] {
        if let Ok(out) = install(update) {
            if out.status.success() {
                if let Some(p) = found() {
                    return p;
                }
            }
        }
    }
    panic!("kcat is not installed and `apt-get install kcat` failed (the Kafka tests need kcat from Debian; run them as root or install it)");
}

/// Installs Debian's `packages` with `apt-get` unless every one of
/// `commands` is already on PATH (what the secure local cluster needs:
/// openssl and curl). Panics with apt-get's output if that fails.
pub fn ensure_commands(commands: &[&str], packages: &[&str]) {
    let missing = |c: &&str| {
        !Command::new("sh").args(["-c", &format!("command -v {c}")]).output().is_ok_and(|o| o.status.success())
    };
    if !commands.iter().any(missing) {
        return;
    }
    let script =
        format!("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {}", packages.join(" "));
    let out = Command::new("sh").args(["-c", &script]).output().expect("run apt-get");
    assert!(out.status.success(), "apt-get install {packages:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}
