//! # strata-storage
//!
//! Owns the on-disk partition log: segmented, append-only files of record
//! batches (`LogSegment`), sparse offset and time indexes, crash recovery
//! from a recovery-point checkpoint (`loader`), retention, the flush policy,
//! and the `LogManager` that holds every log of a data directory. Layout and
//! invariants are those of `docs/storage.md`, "Storage invariants".
//!
//! It must never panic on bytes read from disk or handed to `append`, never
//! write a batch that did not validate, never silently drop a batch that
//! validated (damage below the recovery point or in a sealed segment is an
//! error), and never shrink a file region that may be mapped by a reader.
//! For replication it keeps only per-replica state beside the log (the
//! leader-epoch cache, the checkpointed high watermark) and appends a
//! leader's batches unchanged; it knows nothing of the protocol, networking
//! or async runtimes.

mod checkpoint;
mod cleaner;
mod clock;
mod config;
mod epoch_cache;
mod error;
mod file_io;
mod format;
mod index;
mod loader;
mod log;
mod log_replica;
mod manager;
mod parallel;
mod prefault;
mod producer_state;
mod scan;
mod segment;

pub use checkpoint::{LogCheckpoint, CHECKPOINT_FILE, CLEAN_SHUTDOWN_FILE};
pub use cleaner::{CleanOptions, CleanReport, CLEANER_CHECKPOINT_FILE};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{FlushPolicy, LogConfig};
pub use epoch_cache::{LeaderEpochCache, LEADER_EPOCH_CHECKPOINT_FILE};
pub use error::{Result, StorageError};
pub use file_io::disk_space;
pub use format::{FORMAT_FILE, FORMAT_VERSION};
pub use loader::{RecoveryReport, TruncatedTail};
pub use log::{AppendInfo, Log, ReadResult, RetentionResult};
pub use manager::{BackgroundConfig, LogManager, RESERVED_DIRS};
pub use parallel::{map_unordered, LOG_THREADS};
pub use prefault::fault_in;
pub use producer_state::{BatchMetadata, NewProducers, ProducerEntry, ProducerStateManager, MAX_CACHED_BATCHES};
pub use strata_record::{validate_topic_name, InvalidTopicName, TopicPartition, MAX_TOPIC_NAME_LEN};
