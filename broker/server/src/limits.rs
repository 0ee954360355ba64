//! The process's open-file limit. A broker holds one descriptor per
//! partition (its active segment) besides its connections, so the usual
//! soft limit of 1,024 stops a node with a thousand partitions with
//! "too many open files". The server raises the soft limit to the hard one
//! at start, as Go's runtime and most servers do, and warns when the
//! partitions it opened leave little headroom under it.

use std::io;

/// Descriptors kept free for connections, indexes being rebuilt, snapshots
/// and the Raft log, beyond one per partition.
pub const DESCRIPTOR_HEADROOM: u64 = 1024;

/// The soft and hard limits on open files.
pub fn open_file_limits() -> io::Result<(u64, u64)> {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `l` is a valid, writable rlimit for the call to fill in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((l.rlim_cur, l.rlim_max))
}

/// Raises the soft open-file limit to the hard limit; returns the soft
/// limit before and after.
pub fn raise_open_file_limit() -> io::Result<(u64, u64)> {
    let (soft, hard) = open_file_limits()?;
    if soft >= hard {
        return Ok((soft, soft));
    }
    let l = libc::rlimit { rlim_cur: hard, rlim_max: hard };
    // SAFETY: `l` is a valid rlimit; the call only reads it.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &l) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((soft, open_file_limits()?.0))
}

/// A warning to log when `partitions` logs plus [`DESCRIPTOR_HEADROOM`]
/// exceed the soft limit `soft`, naming both and what to do.
pub fn descriptor_warning(partitions: usize, soft: u64) -> Option<String> {
    let needed = partitions as u64 + DESCRIPTOR_HEADROOM;
    (needed > soft).then(|| {
        format!(
            "{partitions} partition logs need about {needed} open files, above the limit of {soft}: \
             raise it (ulimit -n, LimitNOFILE= in systemd, or the container runtime's nofile) \
             or new partitions and connections will fail with \"too many open files\""
        )
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a test: a panic is the failure report

    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let (_, hard) = open_file_limits().unwrap();
        let (_, after) = raise_open_file_limit().unwrap();
        assert_eq!(after, hard);
        assert_eq!(open_file_limits().unwrap().0, hard);
        // Raising again changes nothing.
        assert_eq!(raise_open_file_limit().unwrap(), (hard, hard));
    }

    #[test]
    fn too_many_partitions_for_the_limit_are_named() {
        assert_eq!(descriptor_warning(10, 4096), None);
        let w = descriptor_warning(5000, 4096).unwrap();
        assert!(w.contains("5000 partition logs") && w.contains("6024") && w.contains("4096"), "{w}");
    }
}
