//! The controller's error type.

use std::io;
use std::path::PathBuf;

use crate::metadata::MetadataError;

/// Everything that can go wrong starting the controller or proposing to it.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The state machine rejected the command (nothing changed).
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// This node is not the Raft leader; `leader` is the one it knows of.
    /// A proposal that fails this way after it was accepted (leadership lost
    /// while it was in flight) may or may not be applied later.
    #[error("not the controller leader (leader: {})", leader.map_or_else(|| "unknown".to_string(), |l| l.to_string()))]
    NotLeader {
        /// The current leader, if known.
        leader: Option<u64>,
    },
    /// The proposal was not applied within the configured wait; it may still be.
    #[error("timed out waiting for the controller")]
    Timeout,
    /// An I/O error on a controller file.
    #[error("controller storage error on {}", path.display())]
    Storage {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A controller file holds bytes that cannot be what we wrote.
    #[error("corrupt controller file {}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// raft-rs refused (invalid configuration, dropped proposal, ...).
    #[error("raft")]
    Raft(#[from] raft::Error),
    /// The controller has stopped (shut down, or failed and stopped).
    #[error("the controller has stopped")]
    Stopped,
    /// The leader a proposal was forwarded to failed it with an error that
    /// has no local equivalent (its storage, raft-rs, ...).
    #[error("controller leader failed the proposal ({kind}): {message}")]
    Remote {
        /// The leader's `ControllerError` variant name.
        kind: String,
        /// The leader's error message.
        message: String,
    },
}

impl ControllerError {
    /// The variant's name (`"Metadata"`, `"NotLeader"`, ...), as carried in
    /// `ProposeResponse.error_kind`; a `Remote` error keeps the leader's kind.
    pub fn kind(&self) -> &str {
        match self {
            ControllerError::Metadata(_) => "Metadata",
            ControllerError::NotLeader { .. } => "NotLeader",
            ControllerError::Timeout => "Timeout",
            ControllerError::Storage { .. } => "Storage",
            ControllerError::Corrupt { .. } => "Corrupt",
            ControllerError::Raft(_) => "Raft",
            ControllerError::Stopped => "Stopped",
            ControllerError::Remote { kind, .. } => kind,
        }
    }

    /// Wraps an I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        ControllerError::Storage { path: path.into(), source }
    }

    /// A corruption of `path`.
    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        ControllerError::Corrupt { path: path.into(), reason: reason.into() }
    }
}
