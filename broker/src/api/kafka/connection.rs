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
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::frame::{read_frame, MAX_REQUEST_BYTES};
use super::{handlers, versions};
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
pub(crate) async fn serve_connection(stream: TcpStream, peer: SocketAddr, core: Arc<BrokerService>, stop: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    loop {
        let next = tokio::select! {
            r = tokio::time::timeout(IDLE_TIMEOUT, read_frame(&mut rd, MAX_REQUEST_BYTES)) => r,
            _ = stop.cancelled() => return,
        };
        let frame = match next {
            Err(_) => {
                tracing::debug!(%peer, "closing an idle Kafka connection");
                return;
            }
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                tracing::warn!(%peer, error = %strata_record::ErrorChain(&e), "closing a Kafka connection: bad frame");
                return;
            }
        };
        let answer = tokio::select! {
            a = answer(&core, frame) => a,
            _ = stop.cancelled() => return,
        };
        match answer {
            Ok(Some(bytes)) => {
                if let Err(e) = wr.write_all(&bytes).await {
                    tracing::debug!(%peer, error = %e, "Kafka client went away before its answer");
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

/// The framed answer to one request (`None`: the request wants none, as an
/// acks=0 Produce).
pub(crate) async fn answer(core: &BrokerService, mut frame: Bytes) -> Result<Option<Bytes>, BadRequest> {
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
            return encode(ApiKey::ApiVersions, 0, correlation_id, &ResponseKind::ApiVersions(unsupported_versions()))
                .map(Some);
        }
        return Err(BadRequest::Unsupported { api, version });
    }
    RequestHeader::decode(&mut frame, api.request_header_version(version))
        .map_err(|e| BadRequest::Malformed { api, version, reason: format!("header: {e:#}") })?;
    let request = RequestKind::decode(api, &mut frame, version)
        .map_err(|e| BadRequest::Malformed { api, version, reason: format!("{e:#}") })?;
    let Some(response) = handlers::handle(core, request, version).await else { return Ok(None) };
    encode(api, version, correlation_id, &response).map(Some)
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
