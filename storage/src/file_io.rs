//! Thin, fail-point-instrumented wrappers over the file system calls the log
//! makes, so tests can inject `ENOSPC`, `EIO` and failed fsyncs
//! (`--features failpoints`, fail point names `storage::<call>`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use bytes::Bytes;
use memmap2::Mmap;

use crate::error::{Result, StorageError};

#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
pub(crate) fn injected(name: &str) -> io::Error {
    match name {
        "enospc" => io::Error::from_raw_os_error(libc::ENOSPC),
        _ => io::Error::from_raw_os_error(libc::EIO),
    }
}

/// Reserves disk blocks for `[offset, offset + len)` so later writes there
/// cannot fail for lack of space. Falls back to growing the file where the
/// file system has no `fallocate`.
pub(crate) fn preallocate(file: &File, path: &Path, offset: u64, len: u64) -> Result<()> {
    fail::fail_point!("storage::fallocate", |v| Err(StorageError::io(
        path,
        "preallocating",
        injected(v.as_deref().unwrap_or("enospc"))
    )));
    // SAFETY: plain syscall on an fd we own; arguments are in range (checked
    // by the caller against u32 segment sizes).
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, offset as libc::off_t, len as libc::off_t) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => {
            tracing::debug!(path = %path.display(), "fallocate unsupported; growing the file instead");
            file.set_len(offset + len).map_err(|e| StorageError::io(path, "growing", e))
        }
        _ => Err(StorageError::io(path, "preallocating", err)),
    }
}

/// Writes all of `buf` at `offset`.
pub(crate) fn write_all_at(file: &File, path: &Path, buf: &[u8], offset: u64) -> Result<()> {
    fail::fail_point!("storage::write", |v| Err(StorageError::io(
        path,
        "writing",
        injected(v.as_deref().unwrap_or("eio"))
    )));
    file.write_all_at(buf, offset).map_err(|e| StorageError::io(path, "writing", e))
}

const MAX_PARTS: usize = 4;

/// Writes `parts` back to back at `offset` with as few `pwritev` calls as
/// the kernel allows (one, normally).
pub(crate) fn write_parts_at(file: &File, path: &Path, parts: &[&[u8]], offset: u64) -> Result<()> {
    fail::fail_point!("storage::write", |v| Err(StorageError::io(
        path,
        "writing",
        injected(v.as_deref().unwrap_or("eio"))
    )));
    if parts.len() > MAX_PARTS {
        return Err(StorageError::InvalidArgument { what: "write parts", reason: format!("at most {MAX_PARTS}") });
    }
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut done = 0usize;
    while done < total {
        // The iovec list past what was written (on the stack: this is the
        // append hot path).
        let mut skip = done;
        let mut iov = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; MAX_PARTS];
        let mut count = 0;
        for p in parts.iter().take(MAX_PARTS) {
            if skip >= p.len() {
                skip -= p.len();
                continue;
            }
            let rest = &p[skip..];
            skip = 0;
            iov[count] = libc::iovec { iov_base: rest.as_ptr() as *mut libc::c_void, iov_len: rest.len() };
            count += 1;
        }
        // SAFETY: every iovec points into a live slice borrowed for this call.
        let n = unsafe {
            libc::pwritev(file.as_raw_fd(), iov.as_ptr(), count as libc::c_int, (offset + done as u64) as libc::off_t)
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(StorageError::io(path, "writing", err));
        }
        if n == 0 {
            return Err(StorageError::io(path, "writing", io::Error::from(io::ErrorKind::WriteZero)));
        }
        done += n as usize;
    }
    Ok(())
}

/// fdatasync.
pub(crate) fn sync_data(file: &File, path: &Path) -> Result<()> {
    fail::fail_point!("storage::fsync", |v| Err(StorageError::io(
        path,
        "syncing",
        injected(v.as_deref().unwrap_or("eio"))
    )));
    file.sync_data().map_err(|e| StorageError::io(path, "syncing", e))
}

/// fsync of a directory, making file creations, renames and deletions in it
/// durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(|e| StorageError::io(dir, "opening directory", e))?;
    d.sync_all().map_err(|e| StorageError::io(dir, "syncing directory", e))
}

/// Replaces a small state file atomically: temp file, fsync, rename, fsync of
/// the directory. A crash leaves either the old or the new content.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| StorageError::io(&tmp, "creating", e))?;
    f.write_all(contents).map_err(|e| StorageError::io(&tmp, "writing", e))?;
    sync_data(&f, &tmp)?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| StorageError::io(path, "renaming into place", e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Maps the first `len` bytes of `file` read-only as zero-copy `Bytes`.
pub(crate) fn map(file: &File, path: &Path, len: u64) -> Result<Bytes> {
    if len == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the mapping is read-only. Strata never shrinks a segment file
    // below bytes it has handed out (truncation zero-fills instead), and
    // external modification of the data directory is outside the contract.
    let map = unsafe { memmap2::MmapOptions::new().len(len as usize).map(file) }
        .map_err(|e| StorageError::io(path, "mapping", e))?;
    Ok(Bytes::from_owner(MappedRegion(map)))
}

/// Opens `path` read-only and maps its whole length.
pub(crate) fn map_path(path: &Path) -> Result<Bytes> {
    let f = File::open(path).map_err(|e| StorageError::io(path, "opening", e))?;
    let len = f.metadata().map_err(|e| StorageError::io(path, "reading metadata of", e))?.len();
    map(&f, path, len)
}

/// Owner of a mapping behind `Bytes::from_owner`.
struct MappedRegion(Mmap);

impl AsRef<[u8]> for MappedRegion {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// The size and the space an unprivileged writer can still use of the file
/// system holding `path`, in bytes (what Kafka's DescribeLogDirs reports as
/// total and usable bytes).
pub fn disk_space(path: &Path) -> io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte"))?;
    // SAFETY: statvfs writes only into the struct we hand it; the path is a
    // valid NUL-terminated string that outlives the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let block = st.f_frsize as u64;
    Ok((st.f_blocks as u64 * block, st.f_bavail as u64 * block))
}
