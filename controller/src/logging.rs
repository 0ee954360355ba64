//! Forwards raft-rs's `slog` records to `tracing` (target `raft`), so the
//! process has one logging system. raft is chatty at info: its info lines are
//! emitted at debug, its debug lines at trace.

use std::fmt::{self, Write as _};

use slog::{Drain, Level, OwnedKVList, Record, Serializer, KV};

/// A `slog::Drain` that emits each record as a `tracing` event with target `raft`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingDrain;

/// A `slog::Logger` for raft-rs that forwards to `tracing`.
pub fn raft_logger(node_id: u64) -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!("node" => node_id))
}

fn tracing_level(level: Level) -> tracing::Level {
    match level {
        Level::Critical | Level::Error => tracing::Level::ERROR,
        Level::Warning => tracing::Level::WARN,
        Level::Info => tracing::Level::DEBUG,
        Level::Debug | Level::Trace => tracing::Level::TRACE,
    }
}

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let level = tracing_level(record.level());
        let enabled = match level {
            tracing::Level::ERROR => tracing::enabled!(target: "raft", tracing::Level::ERROR),
            tracing::Level::WARN => tracing::enabled!(target: "raft", tracing::Level::WARN),
            tracing::Level::DEBUG => tracing::enabled!(target: "raft", tracing::Level::DEBUG),
            _ => tracing::enabled!(target: "raft", tracing::Level::TRACE),
        };
        if !enabled {
            return Ok(());
        }
        let mut line = KvLine(format!("{}", record.msg()));
        // Formatting into a String cannot fail.
        let _ = record.kv().serialize(record, &mut line);
        let _ = values.serialize(record, &mut line);
        let msg = line.0;
        match level {
            tracing::Level::ERROR => tracing::error!(target: "raft", "{msg}"),
            tracing::Level::WARN => tracing::warn!(target: "raft", "{msg}"),
            tracing::Level::DEBUG => tracing::debug!(target: "raft", "{msg}"),
            _ => tracing::trace!(target: "raft", "{msg}"),
        }
        Ok(())
    }
}

/// Appends ` key=value` pairs to the message.
struct KvLine(String);

impl Serializer for KvLine {
    fn emit_arguments(&mut self, key: slog::Key, val: &fmt::Arguments<'_>) -> slog::Result {
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_without_panicking() {
        let log = raft_logger(7);
        slog::info!(log, "hello"; "term" => 3);
        slog::error!(log, "bad {}", 1; "x" => "y");
    }
}
