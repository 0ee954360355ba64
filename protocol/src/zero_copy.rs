//! gRPC messages that carry record batches, encoded without copying the
//! batches.
//!
//! prost encodes a message into one contiguous buffer, so every produce
//! request and every fetch response would copy its record batches (megabytes
//! per request) once more than the kernel does. Here such a message is a
//! list of [`Bytes`] chunks: the small fields encoded by prost, and each
//! large `bytes` field as a shared handle on the caller's buffer (a producer's
//! built batch, a slice of a log segment's mapping). HTTP/2 writes the chunks
//! with one vectored write per frame, so the batch bytes go from their buffer
//! straight to the socket.
//!
//! The wire bytes are exactly what prost would write for the same message
//! (tests decode them with prost); only who holds the bytes differs.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use prost::encoding::{encode_key, encode_varint, WireType};
use prost::Message;

use crate::v1;

/// A `bytes` field at least this long is shared, not copied: below it a
/// chunk of its own costs more than the copy.
const SHARE_AT: usize = 4096;

/// A protobuf message as chunks that, back to back, are its encoding.
#[derive(Debug, Default)]
pub struct Chunks {
    parts: Vec<Bytes>,
    /// Small fields not yet cut into a chunk.
    pending: BytesMut,
    len: usize,
}

impl Chunks {
    /// An empty message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Encoded length so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends the fields of `message` (copied: keep large fields out of it
    /// and add them with [`Chunks::bytes_field`]).
    pub fn message<M: Message>(&mut self, message: &M) {
        let n = message.encoded_len();
        self.pending.reserve(n);
        message.encode_raw(&mut self.pending);
        self.len += n;
    }

    /// Appends `bytes` field `tag`, sharing `value` when it is large. An
    /// empty value writes nothing (proto3 leaves defaults out, as prost).
    pub fn bytes_field(&mut self, tag: u32, value: Bytes) {
        self.bytes_field_parts(tag, std::slice::from_ref(&value));
    }

    /// Appends `bytes` field `tag` whose value is `parts` back to back (a
    /// partition's batches), each shared when it is large.
    pub fn bytes_field_parts(&mut self, tag: u32, parts: &[Bytes]) {
        let total: usize = parts.iter().map(Bytes::len).sum();
        if total == 0 {
            return;
        }
        self.length_delimited_key(tag, total);
        self.len += total;
        for part in parts {
            if part.len() < SHARE_AT {
                self.pending.put_slice(part);
            } else {
                self.cut();
                self.parts.push(part.clone());
            }
        }
    }

    /// Appends `inner` as the embedded-message field `tag` (always written,
    /// as prost writes a present sub-message, even an empty one).
    pub fn message_field(&mut self, tag: u32, mut inner: Chunks) {
        self.length_delimited_key(tag, inner.len);
        self.len += inner.len;
        if inner.parts.is_empty() {
            self.pending.put_slice(&inner.pending);
            return;
        }
        self.cut();
        inner.cut();
        self.parts.append(&mut inner.parts);
    }

    fn length_delimited_key(&mut self, tag: u32, len: usize) {
        let before = self.pending.len();
        encode_key(tag, WireType::LengthDelimited, &mut self.pending);
        encode_varint(len as u64, &mut self.pending);
        self.len += self.pending.len() - before;
    }

    /// Moves the pending small fields into a chunk of their own.
    fn cut(&mut self) {
        if !self.pending.is_empty() {
            self.parts.push(self.pending.split().freeze());
        }
    }

    /// The chunks, in order.
    pub fn into_parts(mut self) -> Vec<Bytes> {
        self.cut();
        self.parts
    }

    /// The message as one gRPC length-prefixed frame (uncompressed flag,
    /// 4-byte big-endian length), ready to be an HTTP/2 body.
    pub fn into_grpc_frame(self) -> Vec<Bytes> {
        let mut head = BytesMut::with_capacity(5);
        head.put_u8(0);
        head.put_u32(u32::try_from(self.len).unwrap_or(u32::MAX));
        let mut parts = Vec::with_capacity(self.parts.len() + 2);
        parts.push(head.freeze());
        parts.extend(self.into_parts());
        parts
    }
}

/// A produce request with each partition's batches shared, not copied:
/// `batches` are one partition's batches in order (they are sent back to
/// back as that partition's `records`).
pub fn produce_request<'a>(
    acks: i32,
    timeout_ms: u32,
    partitions: impl IntoIterator<Item = (&'a str, u32, &'a [Bytes])>,
) -> Chunks {
    let mut out = Chunks::new();
    out.message(&v1::ProduceRequest { acks, timeout_ms, partitions: Vec::new() });
    for (topic, partition, batches) in partitions {
        let mut p = Chunks::new();
        p.message(&v1::PartitionRecords { topic: topic.to_owned(), partition, records: Bytes::new() });
        // PartitionRecords.records = 3.
        p.bytes_field_parts(3, batches);
        // ProduceRequest.partitions = 3.
        out.message_field(3, p);
    }
    out
}

/// A fetch response with each partition's records shared with the log.
pub fn fetch_response(response: v1::FetchResponse) -> Chunks {
    // FetchedPartition.records = 7.
    let parts = response.partitions.into_iter().map(|mut p| (std::mem::take(&mut p.records), p));
    partitions_with_records(parts, 7)
}

/// A replica fetch response with each partition's records shared with the
/// log.
pub fn replica_fetch_response(response: v1::ReplicaFetchResponse) -> Chunks {
    // ReplicaFetchedPartition.records = 8.
    let parts = response.partitions.into_iter().map(|mut p| (std::mem::take(&mut p.records), p));
    partitions_with_records(parts, 8)
}

/// A response whose field 1 is its repeated partitions: each partition's
/// other fields by prost, then its records as field `records_tag`.
fn partitions_with_records<P: Message>(parts: impl Iterator<Item = (Bytes, P)>, records_tag: u32) -> Chunks {
    let mut out = Chunks::new();
    for (records, p) in parts {
        let mut inner = Chunks::new();
        inner.message(&p);
        inner.bytes_field(records_tag, records);
        out.message_field(1, inner);
    }
    out
}

/// An HTTP/2 body of shared chunks, then (for a server's answer) gRPC's
/// trailers. Each chunk goes out as it is: nothing is copied into a buffer.
#[derive(Debug)]
pub struct ChunkBody {
    chunks: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
    remaining: u64,
}

impl ChunkBody {
    /// A request body: the chunks, no trailers.
    pub fn request(chunks: Vec<Bytes>) -> Self {
        let remaining = chunks.iter().map(|c| c.len() as u64).sum();
        ChunkBody { chunks: chunks.into(), trailers: None, remaining }
    }

    /// A successful gRPC answer: the chunks, then `grpc-status: 0`.
    pub fn ok_response(chunks: Vec<Bytes>) -> Self {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        ChunkBody { trailers: Some(trailers), ..Self::request(chunks) }
    }
}

impl Body for ChunkBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(chunk) = self.chunks.pop_front() {
            self.remaining -= chunk.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        // Exact only without trailers (a trailers frame is not data, but an
        // exact hint would let hyper end the stream before sending them).
        if self.trailers.is_none() {
            SizeHint::with_exact(self.remaining)
        } else {
            let mut hint = SizeHint::new();
            hint.set_lower(self.remaining);
            hint
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(parts: Vec<Bytes>) -> Vec<u8> {
        parts.concat()
    }

    fn big(n: usize, seed: u8) -> Bytes {
        (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect::<Vec<u8>>().into()
    }

    #[test]
    fn a_fetch_response_is_byte_for_byte_what_prost_writes() {
        let response = v1::FetchResponse {
            partitions: vec![
                v1::FetchedPartition {
                    topic: "orders".into(),
                    partition: 3,
                    error: None,
                    high_watermark: 1 << 40,
                    log_start_offset: 7,
                    log_end_offset: 1 << 40,
                    records: big(1 << 20, 1),
                },
                v1::FetchedPartition { topic: "empty".into(), ..Default::default() },
                v1::FetchedPartition {
                    topic: "small".into(),
                    error: Some(v1::Error { code: 1, message: "out of range".into() }),
                    records: big(100, 2),
                    ..Default::default()
                },
            ],
        };
        let expected = response.encode_to_vec();
        let chunks = fetch_response(response.clone());
        assert_eq!(chunks.len(), expected.len());
        let parts = chunks.into_parts();
        assert!(parts.len() >= 3, "the large records are a chunk of their own");
        assert_eq!(joined(parts), expected);
    }

    #[test]
    fn a_large_batch_is_shared_not_copied() {
        let records = big(64 * 1024, 3);
        let response = v1::FetchResponse {
            partitions: vec![v1::FetchedPartition {
                topic: "t".into(),
                records: records.clone(),
                ..Default::default()
            }],
        };
        let parts = fetch_response(response).into_parts();
        assert!(parts.iter().any(|p| p.as_ptr() == records.as_ptr() && p.len() == records.len()));
    }

    #[test]
    fn a_replica_fetch_response_is_what_prost_writes() {
        let response = v1::ReplicaFetchResponse {
            partitions: vec![v1::ReplicaFetchedPartition {
                topic: "t".into(),
                partition: 1,
                diverging_epoch: Some(v1::EpochEndOffset { epoch: 4, end_offset: 99 }),
                records: big(10_000, 4),
                ..Default::default()
            }],
        };
        let expected = response.encode_to_vec();
        assert_eq!(joined(replica_fetch_response(response).into_parts()), expected);
    }

    #[test]
    fn a_produce_request_sends_the_batches_back_to_back() {
        let (a, b, c) = (big(300, 5), big(50_000, 6), big(8_000, 7));
        let batches = [a.clone(), b.clone(), c.clone()];
        let lone = [big(5000, 8)];
        let chunks = produce_request(-1, 30_000, [("x", 0, &batches[..]), ("y", 9, &lone[..]), ("z", 1, &[][..])]);
        let expected = v1::ProduceRequest {
            acks: -1,
            timeout_ms: 30_000,
            partitions: vec![
                v1::PartitionRecords { topic: "x".into(), partition: 0, records: [a, b, c].concat().into() },
                v1::PartitionRecords { topic: "y".into(), partition: 9, records: lone[0].clone() },
                v1::PartitionRecords { topic: "z".into(), partition: 1, records: Bytes::new() },
            ],
        }
        .encode_to_vec();
        assert_eq!(chunks.len(), expected.len());
        assert_eq!(joined(chunks.into_parts()), expected);
    }

    #[test]
    fn the_grpc_frame_is_prefixed_with_flag_and_length() {
        let response = v1::FetchResponse {
            partitions: vec![v1::FetchedPartition { topic: "t".into(), records: big(5000, 9), ..Default::default() }],
        };
        let expected = response.encode_to_vec();
        let framed = joined(fetch_response(response).into_grpc_frame());
        assert_eq!(framed[0], 0);
        assert_eq!(u32::from_be_bytes(framed[1..5].try_into().unwrap()) as usize, expected.len());
        assert_eq!(&framed[5..], &expected[..]);
    }

    #[test]
    fn the_body_yields_every_chunk_then_the_trailers() {
        use futures_util_free::poll_all;
        let chunks = vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cde")];
        let (data, trailers) = poll_all(ChunkBody::ok_response(chunks));
        assert_eq!(data, b"abcde");
        assert_eq!(trailers.unwrap().get("grpc-status").unwrap(), "0");
        let (data, trailers) = poll_all(ChunkBody::request(vec![Bytes::from_static(b"xyz")]));
        assert_eq!(data, b"xyz");
        assert!(trailers.is_none());
    }

    /// Drives a body to its end without a runtime (it never pends).
    mod futures_util_free {
        use super::*;
        use std::task::Waker;

        pub(super) fn poll_all(mut body: ChunkBody) -> (Vec<u8>, Option<HeaderMap>) {
            let mut cx = Context::from_waker(Waker::noop());
            let (mut data, mut trailers) = (Vec::new(), None);
            while let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut body).poll_frame(&mut cx) {
                match frame.into_data() {
                    Ok(d) => data.extend_from_slice(&d),
                    Err(frame) => trailers = frame.into_trailers().ok(),
                }
            }
            assert!(body.is_end_stream());
            (data, trailers)
        }
    }
}
