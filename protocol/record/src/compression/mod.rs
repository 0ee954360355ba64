//! Kafka's batch compression codecs (`docs/storage.md`, "Compression"): the
//! records section of a batch is compressed as a whole with the codec its
//! attributes name. Decompression is always bounded: input from a socket or
//! a file never makes this crate allocate more than the caller's limit, so
//! a small batch that inflates to gigabytes is refused, not allocated.

mod gzip;
mod lz4;
mod snappy;
mod zstd;

use std::fmt;
use std::io::Read;
use std::str::FromStr;

/// A compression codec, numbered as in the low three bits of a batch's
/// attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// Records stored as they are.
    #[default]
    None,
    /// gzip (RFC 1952; concatenated members are read as one stream).
    Gzip,
    /// Snappy: raw blocks, or the xerial framing Java clients write.
    Snappy,
    /// LZ4 in the LZ4 frame format (Kafka's framing since KIP-57).
    Lz4,
    /// Zstandard frames.
    Zstd,
}

impl Compression {
    /// Every codec, in attribute order.
    pub const ALL: [Compression; 5] =
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

    /// The codec with attribute id `id`, if there is one.
    pub fn from_id(id: u8) -> Option<Self> {
        Self::ALL.get(usize::from(id)).copied()
    }

    /// The id stored in a batch's attributes.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// Kafka's name for the codec (`compression.type`).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// The levels this build can compress at, if the codec has levels
    /// (Kafka's `compression.<codec>.level` ranges, KIP-390).
    pub fn level_range(self) -> Option<(i32, i32)> {
        match self {
            Compression::Gzip => Some((1, 9)),
            Compression::Zstd => Some((-131_072, 22)),
            Compression::None | Compression::Snappy | Compression::Lz4 => None,
        }
    }

    /// Checks `level` against [`Compression::level_range`].
    pub fn check_level(self, level: Option<i32>) -> Result<(), CompressionError> {
        match (level, self.level_range()) {
            (None, _) => Ok(()),
            (Some(l), Some((lo, hi))) if (lo..=hi).contains(&l) => Ok(()),
            (Some(level), range) => Err(CompressionError::BadLevel { codec: self.name(), level, range }),
        }
    }

    /// Compresses `input` at `level` (the codec's default when `None`).
    pub fn compress(self, input: &[u8], level: Option<i32>) -> Result<Vec<u8>, CompressionError> {
        self.check_level(level)?;
        match self {
            Compression::None => Ok(input.to_vec()),
            Compression::Gzip => gzip::compress(input, level),
            Compression::Snappy => snappy::compress(input),
            Compression::Lz4 => lz4::compress(input),
            Compression::Zstd => zstd::compress(input, level),
        }
    }

    /// Decompresses `input`, refusing output longer than `limit` bytes
    /// before allocating it.
    pub fn decompress(self, input: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
        match self {
            Compression::None if input.len() > limit => Err(self.too_large(limit)),
            Compression::None => Ok(input.to_vec()),
            Compression::Gzip => gzip::decompress(input, limit),
            Compression::Snappy => snappy::decompress(input, limit),
            Compression::Lz4 => lz4::decompress(input, limit),
            Compression::Zstd => zstd::decompress(input, limit),
        }
    }

    fn too_large(self, limit: usize) -> CompressionError {
        CompressionError::TooLarge { codec: self.name(), limit }
    }

    fn corrupt(self, reason: impl fmt::Display) -> CompressionError {
        CompressionError::Corrupt { codec: self.name(), reason: reason.to_string() }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compression {
    type Err = CompressionError;

    /// Kafka's names; `uncompressed` (the topic config's word) is `none`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" | "uncompressed" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "snappy" => Ok(Compression::Snappy),
            "lz4" => Ok(Compression::Lz4),
            "zstd" => Ok(Compression::Zstd),
            _ => Err(CompressionError::UnknownCodec(s.to_string())),
        }
    }
}

/// Why bytes could not be compressed or decompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressionError {
    /// The decompressed records would exceed the limit in force.
    #[error("{codec} payload inflates past the limit of {limit} bytes")]
    TooLarge {
        /// The codec.
        codec: &'static str,
        /// The limit in force.
        limit: usize,
    },
    /// The compressed bytes are not a valid stream of the codec.
    #[error("{codec} payload is corrupt: {reason}")]
    Corrupt {
        /// The codec.
        codec: &'static str,
        /// What the decoder reported.
        reason: String,
    },
    /// A compression level the codec does not have.
    #[error("{codec} has {}, not level {level}", match range { Some((lo, hi)) => format!("levels {lo} to {hi}"), None => "no levels".to_string() })]
    BadLevel {
        /// The codec.
        codec: &'static str,
        /// The level asked for.
        level: i32,
        /// The levels it has.
        range: Option<(i32, i32)>,
    },
    /// A codec name this build does not know.
    #[error("unknown compression type {0:?}: expected none, gzip, snappy, lz4 or zstd")]
    UnknownCodec(String),
}

/// Reads `reader` to its end into a buffer of at most `limit` bytes; one
/// byte more means the stream inflates past the limit.
fn read_bounded(codec: Compression, reader: impl Read, limit: usize) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(cap).read_to_end(&mut out).map_err(|e| codec.corrupt(e))?;
    if out.len() > limit {
        return Err(codec.too_large(limit));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
