//! `LogManager`: owns a data directory, opens every partition log in it at
//! start and closes them at a clean stop (several at once: `parallel`),
//! creates and deletes logs, and runs the background flusher, checkpointer
//! and retention passes on one thread.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::clock::{Clock, SystemClock};
use crate::config::LogConfig;
use crate::error::{Result, StorageError};
use crate::log::Log;
use crate::parallel;
use strata_record::TopicPartition;

const LOCK_FILE: &str = ".lock";

/// Directory names in a data directory that belong to other components
/// (the controller's Raft state, the `lost+found` of an ext4 volume mounted
/// as the data directory) and are skipped without a warning.
pub const RESERVED_DIRS: &[&str] = &["controller", "lost+found"];
const DELETE_SUFFIX: &str = ".deleting";

/// How often the background thread runs each duty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackgroundConfig {
    /// Tick of the flusher (interval-policy logs flush when due).
    pub flush_check: Duration,
    /// Recovery-point checkpoints (Kafka's 60 s); sealed segments' mappings
    /// are released on the same tick.
    pub checkpoint_interval: Duration,
    /// Retention passes (Kafka's `log.retention.check.interval.ms`, 5 min).
    pub retention_check: Duration,
    /// How often the cleaner looks for compacted logs to clean (Kafka's
    /// `log.cleaner.backoff.ms`, 15 s). It runs on a thread of its own.
    pub cleaner_check: Duration,
    /// Disk bytes per second one cleaning pass reads and writes at most
    /// (`None`: unlimited).
    pub cleaner_io_bytes_per_sec: Option<u64>,
}

impl Default for BackgroundConfig {
    fn default() -> Self {
        BackgroundConfig {
            flush_check: Duration::from_millis(50),
            checkpoint_interval: Duration::from_secs(60),
            retention_check: Duration::from_secs(300),
            cleaner_check: Duration::from_secs(15),
            cleaner_io_bytes_per_sec: Some(100 << 20),
        }
    }
}

/// The logs of one data directory.
#[derive(Debug)]
pub struct LogManager {
    inner: Arc<Inner>,
    background: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
    /// The compaction thread (stops with the background one's flag).
    cleaner: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    default_config: LogConfig,
    clock: Arc<dyn Clock>,
    logs: RwLock<BTreeMap<TopicPartition, Arc<Log>>>,
    offline: RwLock<BTreeMap<TopicPartition, String>>,
    _lock: File,
}

impl LogManager {
    /// Opens `dir` (creating it), taking an exclusive lock on it, and opens
    /// every partition log inside. A partition that fails to open (corrupt
    /// sealed segment, I/O error) is listed by [`LogManager::offline`]
    /// instead of failing the whole directory.
    pub fn open(dir: impl Into<PathBuf>, default_config: LogConfig) -> Result<Self> {
        Self::open_with_clock(dir, default_config, Arc::new(SystemClock))
    }

    /// [`LogManager::open`] with an injected clock.
    pub fn open_with_clock(dir: impl Into<PathBuf>, default_config: LogConfig, clock: Arc<dyn Clock>) -> Result<Self> {
        default_config.validate()?;
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| StorageError::io(&dir, "creating data directory", e))?;
        let lock = lock_dir(&dir)?;
        crate::format::check_or_stamp(&dir)?;
        let mut found = Vec::new();
        let entries = std::fs::read_dir(&dir).map_err(|e| StorageError::io(&dir, "listing", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io(&dir, "listing", e))?;
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(DELETE_SUFFIX) {
                remove_dir_logged(&path);
                continue;
            }
            let Some(tp) = TopicPartition::from_dir_name(&name) else {
                if !RESERVED_DIRS.contains(&name.as_str()) {
                    tracing::warn!(dir = %path.display(), "ignoring a directory that is not <topic>-<partition>");
                }
                continue;
            };
            found.push((tp, path));
        }
        let opened = parallel::map_unordered(found, parallel::LOG_THREADS, |(tp, path)| {
            let log = Log::open_with_clock(&path, default_config.clone(), clock.clone());
            (tp, log)
        });
        let mut logs = BTreeMap::new();
        let mut offline = BTreeMap::new();
        for (tp, log) in opened {
            match log {
                Ok(log) => {
                    logs.insert(tp, Arc::new(log));
                }
                Err(e) => {
                    tracing::error!(partition = %tp, error = %strata_record::ErrorChain(&e), "partition log is offline");
                    offline.insert(tp, e.to_string());
                }
            }
        }
        Ok(LogManager {
            inner: Arc::new(Inner {
                dir,
                default_config,
                clock,
                logs: RwLock::new(logs),
                offline: RwLock::new(offline),
                _lock: lock,
            }),
            background: None,
            cleaner: None,
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Partitions with an open log.
    pub fn list(&self) -> Vec<TopicPartition> {
        read(&self.inner.logs).keys().cloned().collect()
    }

    /// Partitions that could not be opened, with the reason.
    pub fn offline(&self) -> Vec<(TopicPartition, String)> {
        read(&self.inner.offline).iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The open log of a partition.
    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Log>> {
        read(&self.inner.logs).get(tp).cloned()
    }

    /// The log of a partition, created with `config` (or the default) if it
    /// does not exist. Refuses an offline partition.
    pub fn get_or_create(&self, tp: &TopicPartition, config: Option<LogConfig>) -> Result<Arc<Log>> {
        if let Some(log) = self.get(tp) {
            return Ok(log);
        }
        if let Some(reason) = read(&self.inner.offline).get(tp) {
            return Err(StorageError::InvalidArgument {
                what: "partition",
                reason: format!("{tp} is offline: {reason}"),
            });
        }
        let mut logs = self.inner.logs.write().unwrap_or_else(|p| p.into_inner());
        if let Some(log) = logs.get(tp) {
            return Ok(log.clone());
        }
        let config = config.unwrap_or_else(|| self.inner.default_config.clone());
        let log = Arc::new(Log::open_with_clock(self.inner.dir.join(tp.dir_name()), config, self.inner.clock.clone())?);
        crate::file_io::sync_dir(&self.inner.dir)?;
        logs.insert(tp.clone(), log.clone());
        Ok(log)
    }

    /// Deletes a partition's log: renamed aside first (atomic), then removed.
    pub fn delete(&self, tp: &TopicPartition) -> Result<bool> {
        let removed = self.inner.logs.write().unwrap_or_else(|p| p.into_inner()).remove(tp);
        self.inner.offline.write().unwrap_or_else(|p| p.into_inner()).remove(tp);
        let path = self.inner.dir.join(tp.dir_name());
        if !path.exists() {
            return Ok(removed.is_some());
        }
        let aside = self.inner.dir.join(format!("{}{DELETE_SUFFIX}", tp.dir_name()));
        std::fs::rename(&path, &aside).map_err(|e| StorageError::io(&path, "renaming for deletion", e))?;
        crate::file_io::sync_dir(&self.inner.dir)?;
        remove_dir_logged(&aside);
        Ok(true)
    }

    /// Flushes every log.
    pub fn flush_all(&self) -> Result<()> {
        for log in self.logs() {
            log.flush()?;
        }
        Ok(())
    }

    /// Writes every log's recovery-point checkpoint.
    pub fn checkpoint_all(&self) -> Result<()> {
        for log in self.logs() {
            log.checkpoint()?;
        }
        Ok(())
    }

    /// Runs a retention pass over every log.
    pub fn enforce_retention_all(&self) -> Result<()> {
        for log in self.logs() {
            log.enforce_retention()?;
        }
        Ok(())
    }

    /// Starts the background thread (flush when due, checkpoint, retention).
    pub fn start_background(&mut self, cfg: BackgroundConfig) {
        if self.background.is_some() {
            return;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (inner, flag) = (self.inner.clone(), stop.clone());
        let handle = std::thread::Builder::new()
            .name("strata-log-bg".into())
            .spawn(move || background_loop(&inner, &flag, cfg))
            .ok();
        if let Some(h) = handle {
            self.background = Some((stop.clone(), h));
        } else {
            tracing::error!("could not start the log background thread");
        }
        let inner = self.inner.clone();
        let cleaner = std::thread::Builder::new()
            .name("strata-log-cleaner".into())
            .spawn(move || cleaner_loop(&inner, &stop, cfg))
            .ok();
        if cleaner.is_none() {
            tracing::error!("could not start the log cleaner thread");
        }
        self.cleaner = cleaner;
    }

    /// Clean shutdown: stops the background thread and closes every log
    /// (flush, trim, checkpoint, clean-shutdown marker).
    pub fn close(mut self) -> Result<()> {
        self.stop_background();
        let logs = std::mem::take(&mut *self.inner.logs.write().unwrap_or_else(|p| p.into_inner()));
        let closed = parallel::map_unordered(logs.into_iter().collect(), parallel::LOG_THREADS, |(tp, log)| {
            let result = match Arc::try_unwrap(log) {
                Ok(log) => log.close(),
                Err(shared) => shared.flush().map(|_| ()),
            };
            (tp, result)
        });
        let mut first_err = None;
        for (tp, result) in closed {
            if let Err(e) = result {
                tracing::error!(partition = %tp, error = %strata_record::ErrorChain(&e), "closing log failed");
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn logs(&self) -> Vec<Arc<Log>> {
        read(&self.inner.logs).values().cloned().collect()
    }
}

impl LogManager {
    fn stop_background(&mut self) {
        if let Some((stop, handle)) = self.background.take() {
            stop.store(true, Ordering::SeqCst);
            let _ = handle.join();
        }
        if let Some(cleaner) = self.cleaner.take() {
            let _ = cleaner.join();
        }
    }
}

impl Drop for LogManager {
    fn drop(&mut self) {
        self.stop_background();
    }
}

/// Cleans compacted logs whose dirty share reached their threshold, one
/// log at a time, every `cleaner_check`.
fn cleaner_loop(inner: &Inner, stop: &AtomicBool, cfg: BackgroundConfig) {
    let mut next = Instant::now() + cfg.cleaner_check;
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(cfg.flush_check.min(cfg.cleaner_check));
        if Instant::now() < next {
            continue;
        }
        next = Instant::now() + cfg.cleaner_check;
        let logs: Vec<Arc<Log>> = read(&inner.logs).values().cloned().collect();
        for log in logs {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let config = log.config();
            let now_ms = inner.clock.now_ms();
            if !config.compact || log.dirty_ratio(now_ms) * 1000.0 < f64::from(config.min_cleanable_dirty_permille) {
                continue;
            }
            let opts = crate::CleanOptions {
                now_ms,
                max_keys: CLEANER_MAX_KEYS,
                io_bytes_per_sec: cfg.cleaner_io_bytes_per_sec,
            };
            match log.clean(&opts) {
                Ok(r) if r.segments_rewritten > 0 => {
                    tracing::info!(dir = %log.dir().display(), report = ?r, "compacted")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(dir = %log.dir().display(), error = %strata_record::ErrorChain(&e), "compaction failed")
                }
            }
        }
    }
}

/// Keys one cleaning pass maps at most (about 100 MB of map for 64-byte keys).
const CLEANER_MAX_KEYS: usize = 1_000_000;

fn background_loop(inner: &Inner, stop: &AtomicBool, cfg: BackgroundConfig) {
    let mut last_checkpoint = Instant::now();
    let mut last_retention = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(cfg.flush_check);
        let logs: Vec<Arc<Log>> = read(&inner.logs).values().cloned().collect();
        let checkpoint = last_checkpoint.elapsed() >= cfg.checkpoint_interval;
        let retention = last_retention.elapsed() >= cfg.retention_check;
        for log in logs {
            let dir = log.dir().display().to_string();
            if let Err(e) = log.flush_if_due() {
                tracing::error!(%dir, error = %strata_record::ErrorChain(&e), "background flush failed");
            }
            if checkpoint {
                if let Err(e) = log.checkpoint() {
                    tracing::error!(%dir, error = %strata_record::ErrorChain(&e), "checkpoint failed");
                }
                // Bounds mappings held by cold partitions; hot ones remap on
                // their next read.
                log.release_cold_mappings();
            }
            if retention {
                if let Err(e) = log.enforce_retention() {
                    tracing::error!(%dir, error = %strata_record::ErrorChain(&e), "retention failed");
                }
            }
        }
        if checkpoint {
            last_checkpoint = Instant::now();
        }
        if retention {
            last_retention = Instant::now();
        }
    }
}

fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StorageError::io(&path, "opening lock file", e))?;
    // SAFETY: flock on an fd we own.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(StorageError::DirectoryLocked { path: dir.to_path_buf() });
    }
    Ok(f)
}

fn remove_dir_logged(path: &Path) {
    if let Err(e) = std::fs::remove_dir_all(path) {
        tracing::warn!(dir = %path.display(), error = %strata_record::ErrorChain(&e), "could not remove deleted partition directory");
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}
