//! The on-disk record format of the Raft log: an append-only file of
//! `len: u32 LE · crc32(len bytes ‖ payload): u32 LE · payload`, where the
//! payload is a protobuf-encoded `eraftpb::Entry`.

use protobuf::Message as _;
use raft::eraftpb::Entry;

/// Bytes before each payload.
pub(crate) const RECORD_HEADER: usize = 8;
/// Largest entry payload we write or accept.
pub(crate) const MAX_ENTRY_BYTES: usize = 64 << 20;

/// Appends one encoded record for `entry` to `buf`.
pub(crate) fn encode_into(entry: &Entry, buf: &mut Vec<u8>) -> Result<(), String> {
    let payload = entry.write_to_bytes().map_err(|e| format!("encoding entry {}: {e}", entry.index))?;
    if payload.len() > MAX_ENTRY_BYTES {
        return Err(format!("entry {} is {} bytes, over the {MAX_ENTRY_BYTES} limit", entry.index, payload.len()));
    }
    let len = (payload.len() as u32).to_le_bytes();
    let mut h = crc32fast::Hasher::new();
    h.update(&len);
    h.update(&payload);
    buf.extend_from_slice(&len);
    buf.extend_from_slice(&h.finalize().to_le_bytes());
    buf.extend_from_slice(&payload);
    Ok(())
}

/// What a scan of a log file found.
#[derive(Debug)]
pub(crate) struct Scan {
    /// Decoded entries with the file position of their record.
    pub entries: Vec<(Entry, u64)>,
    /// Length of the valid prefix; anything after it is a torn tail.
    pub valid_len: u64,
}

/// Scans a whole log file. A damaged *last* record (short header, length past
/// the end, bad checksum on the final record, zero fill) is a torn write and
/// ends the valid prefix; damage followed by more data is corruption.
pub(crate) fn scan(buf: &[u8]) -> Result<Scan, String> {
    let mut entries = Vec::new();
    let mut pos = 0usize;
    while pos < buf.len() {
        let rest = &buf[pos..];
        if rest.iter().all(|&b| b == 0) || rest.len() < RECORD_HEADER {
            break;
        }
        let len_bytes = [rest[0], rest[1], rest[2], rest[3]];
        let len = u32::from_le_bytes(len_bytes) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len > rest.len() - RECORD_HEADER {
            break; // the write of this record did not finish
        }
        if len > MAX_ENTRY_BYTES {
            return Err(format!("record at byte {pos} claims {len} bytes, over the {MAX_ENTRY_BYTES} limit"));
        }
        let end = RECORD_HEADER + len;
        let payload = &rest[RECORD_HEADER..end];
        let mut h = crc32fast::Hasher::new();
        h.update(&len_bytes);
        h.update(payload);
        if h.finalize() != crc {
            if end == rest.len() {
                break; // the last record is torn
            }
            return Err(format!("checksum mismatch in record at byte {pos}, followed by more records"));
        }
        let entry = Entry::parse_from_bytes(payload).map_err(|e| format!("record at byte {pos}: {e}"))?;
        entries.push((entry, pos as u64));
        pos += end;
    }
    Ok(Scan { entries, valid_len: pos as u64 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry { index, term, data: data.to_vec().into(), ..Default::default() }
    }

    fn encode(entries: &[Entry]) -> Vec<u8> {
        let mut buf = Vec::new();
        for e in entries {
            encode_into(e, &mut buf).unwrap();
        }
        buf
    }

    #[test]
    fn roundtrip() {
        let es: Vec<_> = (1..=5).map(|i| entry(i, 1, b"payload")).collect();
        let buf = encode(&es);
        let scan = scan(&buf).unwrap();
        assert_eq!(scan.valid_len, buf.len() as u64);
        assert_eq!(scan.entries.iter().map(|(e, _)| e.clone()).collect::<Vec<_>>(), es);
        assert_eq!(scan.entries[0].1, 0);
    }

    #[test]
    fn torn_tails_end_the_valid_prefix() {
        let es: Vec<_> = (1..=3).map(|i| entry(i, 1, b"some data")).collect();
        let buf = encode(&es);
        let two = encode(&es[..2]).len();
        for cut in two..buf.len() {
            let s = scan(&buf[..cut]).unwrap();
            assert_eq!((s.entries.len(), s.valid_len), (2, two as u64), "cut at {cut}");
        }
        // Bad checksum on the last record, and a zero-filled tail.
        let mut flipped = buf.clone();
        *flipped.last_mut().unwrap() ^= 0xff;
        assert_eq!(scan(&flipped).unwrap().entries.len(), 2);
        let mut zeros = buf.clone();
        zeros.extend_from_slice(&[0; 100]);
        assert_eq!(scan(&zeros).unwrap().valid_len, buf.len() as u64);
    }

    #[test]
    fn damage_in_the_middle_is_an_error() {
        let es: Vec<_> = (1..=3).map(|i| entry(i, 1, b"some data")).collect();
        let mut buf = encode(&es);
        buf[RECORD_HEADER + 2] ^= 0xff;
        assert!(scan(&buf).is_err());
    }
}
