//! LZ4 in the frame format, as Kafka's clients write it since KIP-57:
//! independent 64 KiB blocks, no block or content checksums (Java's reader
//! refuses dependent blocks).

use std::io::Write;

use lz4_flex::frame::{BlockMode, BlockSize, FrameDecoder, FrameEncoder, FrameInfo};

use super::{read_bounded, Compression, CompressionError};

pub(super) fn compress(input: &[u8]) -> Result<Vec<u8>, CompressionError> {
    let info = FrameInfo::new().block_mode(BlockMode::Independent).block_size(BlockSize::Max64KB);
    let mut enc = FrameEncoder::with_frame_info(info, Vec::with_capacity(input.len() / 2 + 64));
    enc.write_all(input).map_err(|e| Compression::Lz4.corrupt(e))?;
    enc.finish().map_err(|e| Compression::Lz4.corrupt(e))
}

pub(super) fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    read_bounded(Compression::Lz4, FrameDecoder::new(input), limit)
}
