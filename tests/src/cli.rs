//! The `strata` CLI as the cluster tests run it.

use std::process::{Command, Output};

use crate::binary;

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

/// Runs `cmd` with `input` on its stdin and its output captured.
pub fn run_with_input(cmd: &mut Command, input: &str) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("wait")
}
