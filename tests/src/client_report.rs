//! What the real-client scripts (`tests/python/*.py`,
//! `tests/node/kafkajs_clients.js`) print — one JSON document on their last
//! line — and the check every read-back test makes of it.

use std::process::Output;

use serde_json::Value;

/// The JSON document on the last line of a script's stdout.
pub fn json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim().lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A read-back report (`check` in the scripts) is clean: no malformed
/// record, offsets in order, every record present, none twice.
pub fn assert_complete(what: &str, v: &Value, expected: usize) {
    assert_eq!(v["bad"], serde_json::json!([]), "{what}: {v}");
    assert_eq!(v["order_ok"], true, "{what}: offsets out of order: {v}");
    assert_eq!(v["complete"], true, "{what}: records missing: {v}");
    assert_eq!(v["count"], expected, "{what}: duplicates: {v}");
}
