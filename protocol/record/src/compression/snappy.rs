//! Snappy as Kafka's clients write it: librdkafka sends raw snappy blocks,
//! Java (snappy-java) and kafka-python the xerial framing — a 16-byte
//! header (`\x82SNAPPY\0`, version, compatible version) then chunks, each a
//! big-endian i32 length and a raw block. Both are read; raw is written.

use super::{Compression, CompressionError};

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\0";
const XERIAL_HEADER_LEN: usize = 16;

pub(super) fn compress(input: &[u8]) -> Result<Vec<u8>, CompressionError> {
    snap::raw::Encoder::new().compress_vec(input).map_err(|e| Compression::Snappy.corrupt(e))
}

pub(super) fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    if input.len() >= XERIAL_HEADER_LEN && input.starts_with(XERIAL_MAGIC) {
        return decompress_xerial(&input[XERIAL_HEADER_LEN..], limit);
    }
    let mut out = Vec::new();
    raw_block(input, limit, &mut out)?;
    Ok(out)
}

fn decompress_xerial(mut chunks: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    while !chunks.is_empty() {
        let Some((len, rest)) = chunks.split_first_chunk::<4>() else {
            return Err(Compression::Snappy.corrupt("xerial chunk length truncated"));
        };
        let len = usize::try_from(i32::from_be_bytes(*len))
            .map_err(|_| Compression::Snappy.corrupt("negative xerial chunk length"))?;
        let block = rest.get(..len).ok_or_else(|| Compression::Snappy.corrupt("xerial chunk runs past the end"))?;
        raw_block(block, limit - out.len(), &mut out)?;
        chunks = &rest[len..];
    }
    Ok(out)
}

/// Appends one raw block's content to `out`; its declared length is
/// checked against `room` before anything is allocated.
fn raw_block(block: &[u8], room: usize, out: &mut Vec<u8>) -> Result<(), CompressionError> {
    let n = snap::raw::decompress_len(block).map_err(|e| Compression::Snappy.corrupt(e))?;
    if n > room {
        return Err(Compression::Snappy.too_large(out.len() + room));
    }
    let start = out.len();
    out.resize(start + n, 0);
    let written =
        snap::raw::Decoder::new().decompress(block, &mut out[start..]).map_err(|e| Compression::Snappy.corrupt(e))?;
    if written != n {
        return Err(Compression::Snappy.corrupt("block shorter than its declared length"));
    }
    Ok(())
}
