//! gzip as Kafka uses it: one member written, concatenated members read.

use std::io::Write;

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

use super::{read_bounded, Compression, CompressionError};

/// zlib's default level, what Kafka's producer uses when none is given.
const DEFAULT_LEVEL: u32 = 6;

pub(super) fn compress(input: &[u8], level: Option<i32>) -> Result<Vec<u8>, CompressionError> {
    let level = level.and_then(|l| u32::try_from(l).ok()).unwrap_or(DEFAULT_LEVEL);
    let mut enc = GzEncoder::new(Vec::with_capacity(input.len() / 2 + 64), flate2::Compression::new(level));
    enc.write_all(input).map_err(|e| Compression::Gzip.corrupt(e))?;
    enc.finish().map_err(|e| Compression::Gzip.corrupt(e))
}

pub(super) fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    read_bounded(Compression::Gzip, MultiGzDecoder::new(input), limit)
}
