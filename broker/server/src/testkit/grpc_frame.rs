//! The gRPC wire framing the wiretap needs: a unary message is one frame
//! (a compression flag, a 4-byte big-endian length, the message), and an
//! answer is that frame followed by trailers carrying `grpc-status`.

use std::convert::Infallible;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue};
use http_body::Frame;
use http_body_util::StreamBody;
use tonic::body::Body;

/// The message of a body holding one uncompressed frame, if it is one.
pub(super) fn decode(body: &Bytes) -> Option<Bytes> {
    if body.len() < 5 || body[0] != 0 {
        return None;
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    (body.len() == 5 + len).then(|| body.slice(5..))
}

/// One uncompressed frame holding `message`.
pub(super) fn encode(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(message.len() as u32);
    out.put_slice(message);
    out.freeze()
}

/// A body of `data` then `trailers`.
pub(super) fn body(data: Bytes, trailers: HeaderMap) -> Body {
    let frames = vec![Ok::<_, Infallible>(Frame::data(data)), Ok(Frame::trailers(trailers))];
    Body::new(StreamBody::new(futures::stream::iter(frames)))
}

/// A successful unary answer carrying `message`.
pub(super) fn ok_response(message: &[u8]) -> http::Response<Body> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let mut response = http::Response::new(body(encode(message), trailers));
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response
}
