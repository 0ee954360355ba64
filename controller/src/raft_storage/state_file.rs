//! Small state files (hard state, conf state, snapshot): one checksummed
//! payload, replaced atomically (temp file → fsync → rename → fsync dir).

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::Path;

use crate::error::ControllerError;

const MAGIC: &[u8; 4] = b"SRS1";
const HEADER_LEN: usize = 12;
/// Largest state file we agree to read (a snapshot of a big cluster is well below).
pub(crate) const MAX_STATE_FILE_BYTES: u64 = 1 << 30;

/// Suffix of the temporary file written before the rename.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// Writes `payload` to `dir/name` atomically and durably.
pub(crate) fn write_atomic(dir: &Path, name: &str, payload: &[u8]) -> Result<(), ControllerError> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let len = u32::try_from(payload.len())
        .map_err(|_| ControllerError::corrupt(&path, format!("state of {} bytes is too large", payload.len())))?;
    let mut buf = Vec::with_capacity(HEADER_LEN + payload.len());
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    buf.extend_from_slice(payload);
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| ControllerError::io(&tmp, e))?;
    f.write_all(&buf).map_err(|e| ControllerError::io(&tmp, e))?;
    f.sync_all().map_err(|e| ControllerError::io(&tmp, e))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(|e| ControllerError::io(&path, e))?;
    sync_dir(dir)
}

/// Reads and checks `path`; `Ok(None)` if it does not exist.
pub(crate) fn read(path: &Path) -> Result<Option<Vec<u8>>, ControllerError> {
    let len = match fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ControllerError::io(path, e)),
    };
    if len > MAX_STATE_FILE_BYTES {
        return Err(ControllerError::corrupt(path, format!("{len} bytes is larger than any state file we write")));
    }
    let bytes = fs::read(path).map_err(|e| ControllerError::io(path, e))?;
    decode(&bytes).map(Some).map_err(|reason| ControllerError::corrupt(path, reason))
}

fn decode(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!("{} bytes is shorter than the header", bytes.len()));
    }
    let (header, payload) = bytes.split_at(HEADER_LEN);
    if &header[0..4] != MAGIC {
        return Err("bad magic".into());
    }
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let crc = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if len != payload.len() {
        return Err(format!("header says {len} payload bytes, file has {}", payload.len()));
    }
    if crc32fast::hash(payload) != crc {
        return Err("checksum mismatch".into());
    }
    Ok(payload.to_vec())
}

/// fsyncs a directory so a rename or a new file in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), ControllerError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| ControllerError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(&dir.path().join("x")).unwrap(), None);
        write_atomic(dir.path(), "x", b"hello").unwrap();
        assert_eq!(read(&dir.path().join("x")).unwrap().as_deref(), Some(&b"hello"[..]));
        assert!(!dir.path().join("x.tmp").exists());
        write_atomic(dir.path(), "x", b"").unwrap();
        assert_eq!(read(&dir.path().join("x")).unwrap().as_deref(), Some(&b""[..]));

        let good = fs::read(dir.path().join("x")).unwrap();
        for bad in [&b""[..], b"SRS1", b"XXXX\0\0\0\0\0\0\0\0", &good[..good.len() - 1]] {
            fs::write(dir.path().join("y"), bad).unwrap();
            assert!(matches!(read(&dir.path().join("y")), Err(ControllerError::Corrupt { .. })));
        }
        write_atomic(dir.path(), "z", b"abc").unwrap();
        let mut bytes = fs::read(dir.path().join("z")).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        fs::write(dir.path().join("z"), bytes).unwrap();
        assert!(matches!(read(&dir.path().join("z")), Err(ControllerError::Corrupt { .. })));
    }
}
