//! Zstandard frames. The decoder's window is capped by the output limit:
//! a frame header cannot make it reserve more memory than the output it
//! is allowed to produce.

use std::io::Write;

use super::{read_bounded, Compression, CompressionError};

/// The level Kafka's producer uses when none is given (zstd's default).
const DEFAULT_LEVEL: i32 = 3;
/// Smallest and largest window log the decoder accepts (zstd's own bounds
/// without the "long distance" extension).
const WINDOW_LOG_MIN: u32 = 10;
const WINDOW_LOG_MAX: u32 = 27;

pub(super) fn compress(input: &[u8], level: Option<i32>) -> Result<Vec<u8>, CompressionError> {
    let corrupt = |e: std::io::Error| Compression::Zstd.corrupt(e);
    let mut enc =
        zstd::stream::write::Encoder::new(Vec::with_capacity(input.len() / 2 + 64), level.unwrap_or(DEFAULT_LEVEL))
            .map_err(corrupt)?;
    // The size is known: it goes in the frame header, and lets a reader
    // size its window to the content.
    enc.set_pledged_src_size(Some(input.len() as u64)).map_err(corrupt)?;
    enc.write_all(input).map_err(corrupt)?;
    enc.finish().map_err(corrupt)
}

pub(super) fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    // A frame that declares its size (Kafka's clients' do) is judged by it
    // before any decoding.
    if let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(input) {
        if size > u64::try_from(limit).unwrap_or(u64::MAX) {
            return Err(Compression::Zstd.too_large(limit));
        }
    }
    let corrupt = |e: std::io::Error| Compression::Zstd.corrupt(e);
    let mut dec = zstd::stream::read::Decoder::with_buffer(input).map_err(corrupt)?;
    dec.window_log_max(window_log_for(limit)).map_err(corrupt)?;
    read_bounded(Compression::Zstd, dec, limit)
}

/// The smallest window log whose window holds `limit` bytes, within zstd's
/// bounds.
fn window_log_for(limit: usize) -> u32 {
    let needed = usize::BITS - limit.saturating_sub(1).leading_zeros();
    needed.clamp(WINDOW_LOG_MIN, WINDOW_LOG_MAX)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_window_covers_the_limit_within_zstds_bounds() {
        assert_eq!(super::window_log_for(1 << 20), 20);
        assert_eq!(super::window_log_for((1 << 20) + 1), 21);
        assert_eq!(super::window_log_for(1), 10);
        assert_eq!(super::window_log_for(usize::MAX), 27);
    }
}
