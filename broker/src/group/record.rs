//! The records of the offsets topic: a binary, versioned key and value,
//! big-endian (as Kafka's), never trusted when read back (every malformed
//! input is an error, never a panic).
//!
//! ```text
//! key   (version 1, an offset commit):
//!   u16 version = 1 · u16 group_len · group (UTF-8) · u16 topic_len ·
//!   topic (UTF-8) · u32 partition
//! value (version 1):
//!   u16 version = 1 · i64 offset · i64 commit_timestamp_ms ·
//!   u32 metadata_len · metadata (UTF-8)
//! value absent (a null record value): a tombstone — the group no longer
//!   has an offset for that partition.
//! ```
//!
//! The key identifies one (group, topic, partition), so the latest record
//! per key is the state (the topic can be compacted by key later). Key
//! version 2 is reserved for group metadata (membership, a later change); a
//! reader skips versions it does not know.

use std::fmt;

/// Key version of an offset commit.
pub(crate) const OFFSET_KEY_VERSION: u16 = 1;
/// Value version written by this build.
pub(crate) const OFFSET_VALUE_VERSION: u16 = 1;

/// The key of an offset record: which group's offset of which partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct OffsetKey {
    /// The group id.
    pub group: String,
    /// The committed topic.
    pub topic: String,
    /// The committed partition.
    pub partition: u32,
}

/// The value of an offset record: the committed position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OffsetValue {
    /// The next offset to consume (never negative).
    pub offset: i64,
    /// Free-form metadata the committer attached.
    pub metadata: String,
    /// When the coordinator accepted the commit (ms since the Unix epoch).
    pub commit_timestamp: i64,
}

/// Why bytes read from the offsets topic are not an offset record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordError {
    /// Fewer bytes than the field needs.
    Truncated(&'static str),
    /// A version this build does not know (written by a newer one).
    UnknownVersion {
        /// Key or value.
        what: &'static str,
        /// The version found.
        version: u16,
    },
    /// A string field is not UTF-8.
    NotUtf8(&'static str),
    /// Bytes left after the last field.
    TrailingBytes(&'static str),
    /// A field is out of its range (a negative offset, a too-long string).
    Invalid(&'static str),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Truncated(w) => write!(f, "offset record truncated in {w}"),
            RecordError::UnknownVersion { what, version } => write!(f, "unknown offset {what} version {version}"),
            RecordError::NotUtf8(w) => write!(f, "offset record {w} is not UTF-8"),
            RecordError::TrailingBytes(w) => write!(f, "bytes after the end of the offset {w}"),
            RecordError::Invalid(w) => write!(f, "invalid offset record: {w}"),
        }
    }
}

impl std::error::Error for RecordError {}

impl OffsetKey {
    /// The key bytes. Fails if the group or topic is longer than 65535 bytes.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, RecordError> {
        let mut out = Vec::with_capacity(10 + self.group.len() + self.topic.len());
        out.extend_from_slice(&OFFSET_KEY_VERSION.to_be_bytes());
        put_short_str(&mut out, &self.group, "key group")?;
        put_short_str(&mut out, &self.topic, "key topic")?;
        out.extend_from_slice(&self.partition.to_be_bytes());
        Ok(out)
    }

    /// Parses key bytes.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut r = Reader { buf: bytes, pos: 0 };
        let version = r.u16("key version")?;
        if version != OFFSET_KEY_VERSION {
            return Err(RecordError::UnknownVersion { what: "key", version });
        }
        let group = r.short_str("key group")?;
        let topic = r.short_str("key topic")?;
        let partition = r.u32("key partition")?;
        r.finish("key")?;
        Ok(OffsetKey { group, topic, partition })
    }
}

impl OffsetValue {
    /// The value bytes. Fails on a negative offset.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, RecordError> {
        if self.offset < 0 {
            return Err(RecordError::Invalid("negative offset"));
        }
        let meta = self.metadata.as_bytes();
        let len = u32::try_from(meta.len()).map_err(|_| RecordError::Invalid("metadata longer than 4 GiB"))?;
        let mut out = Vec::with_capacity(22 + meta.len());
        out.extend_from_slice(&OFFSET_VALUE_VERSION.to_be_bytes());
        out.extend_from_slice(&self.offset.to_be_bytes());
        out.extend_from_slice(&self.commit_timestamp.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(meta);
        Ok(out)
    }

    /// Parses value bytes.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut r = Reader { buf: bytes, pos: 0 };
        let version = r.u16("value version")?;
        if version != OFFSET_VALUE_VERSION {
            return Err(RecordError::UnknownVersion { what: "value", version });
        }
        let offset = r.i64("value offset")?;
        if offset < 0 {
            return Err(RecordError::Invalid("negative offset"));
        }
        let commit_timestamp = r.i64("value commit timestamp")?;
        let len = r.u32("value metadata length")? as usize;
        let metadata = r.string(len, "value metadata")?;
        r.finish("value")?;
        Ok(OffsetValue { offset, metadata, commit_timestamp })
    }
}

fn put_short_str(out: &mut Vec<u8>, s: &str, what: &'static str) -> Result<(), RecordError> {
    let len = u16::try_from(s.len()).map_err(|_| RecordError::Invalid(what))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// A bounds-checked cursor over untrusted bytes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8], RecordError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or(RecordError::Truncated(what))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], RecordError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, RecordError> {
        self.array(what).map(u16::from_be_bytes)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, RecordError> {
        self.array(what).map(u32::from_be_bytes)
    }

    fn i64(&mut self, what: &'static str) -> Result<i64, RecordError> {
        self.array(what).map(i64::from_be_bytes)
    }

    fn string(&mut self, len: usize, what: &'static str) -> Result<String, RecordError> {
        let b = self.take(len, what)?;
        std::str::from_utf8(b).map(str::to_string).map_err(|_| RecordError::NotUtf8(what))
    }

    fn short_str(&mut self, what: &'static str) -> Result<String, RecordError> {
        let len = self.u16(what)? as usize;
        self.string(len, what)
    }

    fn finish(&self, what: &'static str) -> Result<(), RecordError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(RecordError::TrailingBytes(what))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> OffsetKey {
        OffsetKey { group: "billing-ü".into(), topic: "orders".into(), partition: 7 }
    }

    fn value() -> OffsetValue {
        OffsetValue { offset: 42, metadata: "host=a; gen=3".into(), commit_timestamp: 1_700_000_000_123 }
    }

    #[test]
    fn key_and_value_round_trip() {
        let k = key();
        assert_eq!(OffsetKey::decode(&k.encode().unwrap()).unwrap(), k);
        let v = value();
        assert_eq!(OffsetValue::decode(&v.encode().unwrap()).unwrap(), v);
        let empty = OffsetValue { offset: 0, metadata: String::new(), commit_timestamp: -1 };
        assert_eq!(OffsetValue::decode(&empty.encode().unwrap()).unwrap(), empty);
        let k0 = OffsetKey { group: "g".into(), topic: String::new(), partition: u32::MAX };
        assert_eq!(OffsetKey::decode(&k0.encode().unwrap()).unwrap(), k0);
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        let k = OffsetKey { group: "g".into(), topic: "t".into(), partition: 2 }.encode().unwrap();
        assert_eq!(k, [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 2]);
        let v = OffsetValue { offset: 5, metadata: "m".into(), commit_timestamp: 9 }.encode().unwrap();
        assert_eq!(v, [0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 1, b'm']);
    }

    #[test]
    fn hostile_bytes_are_errors_not_panics() {
        let k = key().encode().unwrap();
        let v = value().encode().unwrap();
        // Every truncation and every extension is rejected.
        for n in 0..k.len() {
            assert!(OffsetKey::decode(&k[..n]).is_err(), "key cut at {n}");
        }
        for n in 0..v.len() {
            assert!(OffsetValue::decode(&v[..n]).is_err(), "value cut at {n}");
        }
        let mut long = k.clone();
        long.push(0);
        assert_eq!(OffsetKey::decode(&long), Err(RecordError::TrailingBytes("key")));
        // Unknown versions, huge lengths, bad UTF-8, negative offsets.
        assert!(matches!(OffsetKey::decode(&[0, 2, 0, 0]), Err(RecordError::UnknownVersion { version: 2, .. })));
        assert!(matches!(OffsetValue::decode(&[0xff, 0xff]), Err(RecordError::UnknownVersion { .. })));
        assert!(OffsetKey::decode(&[0, 1, 0xff, 0xff, b'a']).is_err());
        assert_eq!(OffsetKey::decode(&[0, 1, 0, 1, 0xff, 0, 0, 0, 0, 0, 0]), Err(RecordError::NotUtf8("key group")));
        let mut huge = v.clone();
        huge[18..22].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(OffsetValue::decode(&huge).is_err());
        let neg = [0u8, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(OffsetValue::decode(&neg), Err(RecordError::Invalid("negative offset")));
        assert!(OffsetValue { offset: -1, ..value() }.encode().is_err());
        // A deterministic pseudo-random sweep: never a panic.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..200usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = OffsetKey::decode(&bytes);
            let _ = OffsetValue::decode(&bytes);
        }
    }
}
