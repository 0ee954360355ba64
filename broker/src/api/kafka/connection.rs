//! One Kafka client connection: frames in, answers out, strictly one
//! request at a time and in order (Kafka mutes a connection while its
//! request is served; clients rely on responses coming back in order). A
//! malformed, oversized or unsupported request closes this connection with
//! a log line and never touches another.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use std::io::IoSlice;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::frame::{read_frame, FrameError, MAX_REQUEST_BYTES};
use super::handlers::{Client, Reply};
use super::sasl::SaslSession;
use super::{handlers, versions};
use crate::authorizer::Session;
use crate::service::BrokerService;

/// A connection with no request for this long is closed (Kafka's
/// `connections.max.idle.ms`).
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Why a request closes its connection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BadRequest {
    /// Fewer bytes than the fixed part of a request header.
    #[error("request of {0} bytes is shorter than a request header")]
    Short(usize),
    /// An API key Kafka does not define.
    #[error("unknown API key {0}")]
    UnknownApi(i16),
    /// An API or version this edge does not serve.
    #[error("{api:?} v{version} is not supported (ApiVersions lists what is)")]
    Unsupported {
        /// The API.
        api: ApiKey,
        /// The version asked for.
        version: i16,
    },
    /// The bytes do not decode as the API's message.
    #[error("{api:?} v{version} does not decode: {reason}")]
    Malformed {
        /// The API.
        api: ApiKey,
        /// Its version.
        version: i16,
        /// What the decoder said.
        reason: String,
    },
    /// A raw SASL token (after a v0 handshake) that did not authenticate.
    #[error("SASL authentication failed")]
    AuthenticationFailed,
    /// A request other than the SASL ones before the client authenticated.
    #[error("{0:?} before SASL authentication")]
    Unauthenticated(ApiKey),
    /// The answer could not be encoded (a bug, reported rather than hidden).
    #[error("encoding the {api:?} v{version} answer: {reason}")]
    Encode {
        /// The API.
        api: ApiKey,
        /// Its version.
        version: i16,
        /// What the encoder said.
        reason: String,
    },
}

/// Serves one connection until the peer closes it, it misbehaves, it idles
/// out or the broker stops.
pub(crate) async fn serve_connection<S>(
    mut stream: S,
    peer: SocketAddr,
    tls_session: Session,
    core: Arc<BrokerService>,
    stop: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut sasl = SaslSession::new(core.clone());
    loop {
        let next = tokio::select! {
            r = tokio::time::timeout(IDLE_TIMEOUT, read_frame(&mut stream, MAX_REQUEST_BYTES)) => r,
            _ = stop.cancelled() => return,
        };
        let frame = match next {
            Err(_) => {
                tracing::debug!(%peer, "closing an idle Kafka connection");
                return;
            }
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => {
                tracing::debug!(%peer, user = sasl.user().unwrap_or("-"), "Kafka client closed its connection");
                return;
            }
            Ok(Err(FrameError::Io(e))) => {
                // A client that goes away mid-connection (reset, closed).
                tracing::debug!(%peer, error = %e, "Kafka connection ended");
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(%peer, error = %e, "closing a Kafka connection: bad frame");
                return;
            }
        };
        let answer = tokio::select! {
            a = answer(&core, frame, peer, &tls_session, &mut sasl) => a,
            _ = stop.cancelled() => return,
        };
        match answer {
            Ok(Some(parts)) => {
                if let Err(e) = write_parts(&mut stream, &parts).await {
                    tracing::debug!(%peer, error = %e, "Kafka client went away before its answer");
                    return;
                }
                if sasl.failed() {
                    tracing::info!(%peer, "closing a Kafka connection: SASL authentication failed");
                    return;
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing a Kafka connection: bad request");
                return;
            }
        }
    }
}

/// A decoded request: what it asks and how to address the answer.
pub(crate) struct Decoded {
    /// The API.
    pub(crate) api: ApiKey,
    /// Its version.
    pub(crate) version: i16,
    /// Echoed in the answer's header.
    pub(crate) correlation_id: i32,
    /// The header's client id (empty when null).
    pub(crate) client_id: String,
    /// The request itself.
    pub(crate) request: RequestKind,
}

/// What a frame holds: a request to serve, or an answer already known
/// (an ApiVersions this edge cannot parse, answered so the client
/// downgrades).
pub(crate) enum Parsed {
    /// Serve it.
    Request(Box<Decoded>),
    /// Send this framed answer.
    Answer(Bytes),
}

/// Decodes one frame. Never panics and allocates at most in proportion to
/// the frame, whatever its bytes (`tests::arbitrary_frames_never_panic`).
pub(crate) fn parse(mut frame: Bytes) -> Result<Parsed, BadRequest> {
    if frame.len() < 8 {
        return Err(BadRequest::Short(frame.len()));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api = ApiKey::try_from(key).map_err(|_| BadRequest::UnknownApi(key))?;
    if !versions::supports(api, version) {
        if api == ApiKey::ApiVersions {
            // Kafka's rule: an ApiVersions the broker does not know is
            // answered in v0 with UNSUPPORTED_VERSION and the ranges, so
            // the client can retry with a version both sides know.
            let answer = ResponseKind::ApiVersions(unsupported_versions());
            return encode(ApiKey::ApiVersions, 0, correlation_id, &answer).map(Parsed::Answer);
        }
        return Err(BadRequest::Unsupported { api, version });
    }
    let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
        .map_err(|e| BadRequest::Malformed { api, version, reason: format!("header: {e:#}") })?;
    let request = RequestKind::decode(api, &mut frame, version).map_err(|e| BadRequest::Malformed {
        api,
        version,
        reason: format!("{e:#}"),
    })?;
    let client_id = header.client_id.map(|c| c.to_string()).unwrap_or_default();
    Ok(Parsed::Request(Box::new(Decoded { api, version, correlation_id, client_id, request })))
}

/// The framed answer to one request as parts for a vectored write (`None`:
/// the request wants none, as an acks=0 Produce).
pub(crate) async fn answer(
    core: &BrokerService,
    frame: Bytes,
    peer: SocketAddr,
    tls_session: &Session,
    sasl: &mut SaslSession,
) -> Result<Option<Vec<Bytes>>, BadRequest> {
    if sasl.expects_raw_token() {
        let reply = sasl.raw_token(&frame).await.ok_or(BadRequest::AuthenticationFailed)?;
        let size = u32::try_from(reply.len()).unwrap_or(0).to_be_bytes();
        return Ok(Some(vec![Bytes::copy_from_slice(&size), reply]));
    }
    let d = match parse(frame)? {
        Parsed::Answer(bytes) => return Ok(Some(vec![bytes])),
        Parsed::Request(d) => d,
    };
    if !sasl.may_serve(d.api) {
        return Err(BadRequest::Unauthenticated(d.api));
    }
    let sasl_answer = match &d.request {
        RequestKind::SaslHandshake(r) => Some(ResponseKind::SaslHandshake(sasl.handshake(r, d.version))),
        RequestKind::SaslAuthenticate(r) => Some(ResponseKind::SaslAuthenticate(sasl.authenticate(r).await)),
        _ => None,
    };
    if let Some(response) = sasl_answer {
        return encode(d.api, d.version, d.correlation_id, &response).map(|b| Some(vec![b]));
    }
    // A SASL user is the principal; without SASL, the TLS identity.
    let sasl_session = sasl.user().map(|u| Session::new(format!("User:{u}"), peer.ip()));
    let session = sasl_session.as_ref().unwrap_or(tls_session);
    let client = Client { peer, id: &d.client_id, session };
    match handlers::handle(core, d.request, d.version, d.correlation_id, client).await {
        None => Ok(None),
        Some(Reply::Framed(parts)) => Ok(Some(parts)),
        Some(Reply::Message(response)) => encode(d.api, d.version, d.correlation_id, &response).map(|b| Some(vec![b])),
    }
}

/// Writes every part, as few syscalls as the socket allows.
async fn write_parts<W: AsyncWrite + Unpin>(w: &mut W, parts: &[Bytes]) -> std::io::Result<()> {
    let (mut part, mut offset) = (0, 0);
    while part < parts.len() {
        let slices: Vec<IoSlice<'_>> = std::iter::once(&parts[part][offset..])
            .chain(parts[part + 1..].iter().map(|b| &b[..]))
            .take(64)
            .map(IoSlice::new)
            .collect();
        let mut n = w.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let left = parts[part].len() - offset;
            if n >= left {
                n -= left;
                part += 1;
                offset = 0;
            } else {
                offset += n;
                n = 0;
            }
        }
        // Skip empty parts so the next round starts on bytes.
        while part < parts.len() && parts[part].len() == offset {
            part += 1;
            offset = 0;
        }
    }
    Ok(())
}

fn unsupported_versions() -> ApiVersionsResponse {
    let mut r = handlers::api_versions::advertised();
    r.error_code = kafka_protocol::error::ResponseError::UnsupportedVersion.code();
    r
}

/// `[size][response header][body]`.
fn encode(api: ApiKey, version: i16, correlation_id: i32, body: &ResponseKind) -> Result<Bytes, BadRequest> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    header
        .encode(&mut buf, api.response_header_version(version))
        .and_then(|()| body.encode(&mut buf, version))
        .map_err(|e| BadRequest::Encode { api, version, reason: format!("{e:#}") })?;
    let size = i32::try_from(buf.len() - 4).map_err(|_| BadRequest::Encode {
        api,
        version,
        reason: format!("{} bytes do not fit a frame", buf.len()),
    })?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

    use super::*;
    use proptest::prelude::*;

    fn frame(api: i16, version: i16, rest: &[u8]) -> Bytes {
        let mut b = Vec::new();
        b.extend_from_slice(&api.to_be_bytes());
        b.extend_from_slice(&version.to_be_bytes());
        b.extend_from_slice(&7i32.to_be_bytes());
        b.extend_from_slice(rest);
        Bytes::from(b)
    }

    #[tokio::test]
    async fn parts_are_written_whole_and_in_order() {
        let parts: Vec<Bytes> = (0..200u8).map(|i| Bytes::from(vec![i; usize::from(i) % 7])).collect();
        let want: Vec<u8> = parts.iter().flat_map(|b| b.to_vec()).collect();
        // A pipe much smaller than the answer: many partial writes.
        let (mut a, mut b) = tokio::io::duplex(16);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut b, &mut got).await.unwrap();
            got
        });
        write_parts(&mut a, &parts).await.unwrap();
        drop(a);
        assert_eq!(reader.await.unwrap(), want);
    }

    #[test]
    fn what_cannot_be_served_is_named() {
        assert!(matches!(parse(Bytes::from_static(b"abc")), Err(BadRequest::Short(3))));
        assert!(matches!(parse(frame(999, 0, &[])), Err(BadRequest::UnknownApi(999))));
        assert!(matches!(parse(frame(1, 99, &[])), Err(BadRequest::Unsupported { api: ApiKey::Fetch, version: 99 })));
        // Metadata v1 claiming two billion topics, with nothing behind it:
        // refused by the decoder, not allocated.
        let mut body = vec![0xff, 0xff]; // null client id
        body.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(parse(frame(3, 1, &body)), Err(BadRequest::Malformed { api: ApiKey::Metadata, .. })));
    }

    #[test]
    fn an_unknown_api_versions_version_gets_the_v0_error_answer() {
        let Parsed::Answer(bytes) = parse(frame(18, 99, &[])).unwrap() else { panic!("not answered") };
        let mut body = bytes.slice(4..);
        assert_eq!(i32::from_be_bytes(body[..4].try_into().unwrap()), 7, "correlation id echoed");
        body = body.slice(4..);
        // v0 body: error code, then [api key, min, max] entries.
        assert_eq!(i16::from_be_bytes([body[0], body[1]]), 35, "UNSUPPORTED_VERSION");
        let n = i32::from_be_bytes(body[2..6].try_into().unwrap()) as usize;
        assert_eq!(n, versions::SUPPORTED.len());
        let entries: Vec<[i16; 3]> =
            body[6..].chunks(6).map(|c| [0, 2, 4].map(|i| i16::from_be_bytes([c[i], c[i + 1]]))).collect();
        assert!(entries.contains(&[18, 0, 4]), "{entries:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

        /// Arbitrary bytes behind every served API and version: parsing
        /// answers or refuses, never panics (an allocation sized by a wire
        /// count would abort the test process).
        #[test]
        fn arbitrary_frames_never_panic(
            which in 0..versions::SUPPORTED.len(),
            version_offset in 0i16..16,
            rest in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let (api, min, max) = versions::SUPPORTED[which];
            let version = (min + version_offset).min(max);
            let _ = parse(frame(api as i16, version, &rest));
        }

        /// Truncating a valid request anywhere is refused cleanly.
        #[test]
        fn truncated_frames_never_panic(cut in 0usize..64) {
            let mut body = vec![0xff, 0xff]; // null client id
            body.extend_from_slice(&1i32.to_be_bytes()); // one topic
            body.extend_from_slice(&1i16.to_be_bytes());
            body.push(b't');
            body.push(1); // allow auto creation
            let whole = frame(3, 4, &body);
            let _ = parse(whole.slice(..cut.min(whole.len())));
        }
    }
}
