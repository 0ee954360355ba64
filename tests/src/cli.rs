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
