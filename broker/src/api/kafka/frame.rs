//! Kafka's framing: a 4-byte big-endian size, then that many bytes. Sizes
//! come from the peer, so they are checked before anything is read and the
//! buffer grows only with bytes that actually arrived.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest request accepted (Kafka's `socket.request.max.bytes` default).
pub(crate) const MAX_REQUEST_BYTES: usize = 100 << 20;

/// How much the read buffer grows at a time.
const READ_CHUNK: usize = 64 << 10;

/// Why a connection's next frame could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    /// The size prefix is negative or above the limit.
    #[error("frame size {size} is outside 0..={max}")]
    BadSize {
        /// The size the peer sent.
        size: i64,
        /// The largest accepted.
        max: usize,
    },
    /// The peer closed the connection inside a frame.
    #[error("connection closed after {got} of {want} bytes of a frame")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes announced.
        want: usize,
    },
    /// The socket failed.
    #[error("reading a frame")]
    Io(#[source] std::io::Error),
}

/// Reads the next frame's body; `Ok(None)` when the peer closed the
/// connection between frames.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> Result<Option<Bytes>, FrameError> {
    let mut size = [0u8; 4];
    match r.read_exact(&mut size).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(FrameError::Io(e)),
    }
    let size = i32::from_be_bytes(size);
    let want =
        usize::try_from(size).ok().filter(|&n| n <= max).ok_or(FrameError::BadSize { size: size.into(), max })?;
    let mut buf = BytesMut::with_capacity(want.min(READ_CHUNK));
    while buf.len() < want {
        buf.reserve((want - buf.len()).min(READ_CHUNK));
        let limit = want - buf.len();
        let n = (&mut *r).take(limit as u64).read_buf(&mut buf).await.map_err(FrameError::Io)?;
        if n == 0 {
            return Err(FrameError::Truncated { got: buf.len(), want });
        }
    }
    Ok(Some(buf.freeze()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a test: a panic is the failure report

    use super::*;

    async fn read(bytes: &[u8], max: usize) -> Result<Option<Bytes>, FrameError> {
        let mut r = bytes;
        read_frame(&mut r, max).await
    }

    #[tokio::test]
    async fn frames_are_read_whole_and_bounded() {
        let mut two = Vec::new();
        two.extend_from_slice(&3i32.to_be_bytes());
        two.extend_from_slice(b"abc");
        assert_eq!(read(&two, 10).await.unwrap().unwrap(), Bytes::from_static(b"abc"));
        assert!(read(&[], 10).await.unwrap().is_none(), "a close between frames is not an error");
        assert!(matches!(read(&11i32.to_be_bytes(), 10).await, Err(FrameError::BadSize { size: 11, max: 10 })));
        assert!(matches!(read(&(-1i32).to_be_bytes(), 10).await, Err(FrameError::BadSize { size: -1, .. })));
        let mut short = 5i32.to_be_bytes().to_vec();
        short.extend_from_slice(b"ab");
        assert!(matches!(read(&short, 10).await, Err(FrameError::Truncated { got: 2, want: 5 })));
        // A huge announced size with nothing behind it allocates nothing
        // like its size: the read fails at once.
        assert!(matches!(
            read(&(MAX_REQUEST_BYTES as i32).to_be_bytes(), MAX_REQUEST_BYTES).await,
            Err(FrameError::Truncated { got: 0, .. })
        ));
    }
}
