//! The client's one error type.

use std::error::Error as StdError;
use std::sync::Arc;

use strata_protocol::v1::{self, ErrorCode};

/// Why a client call failed. `Display` is one line naming the cause, meant to
/// be shown to a user as it is (the `strata` CLI prints it unchanged).
///
/// The error is `Clone` because one failure (a broker rejecting a batch, a
/// lost connection) resolves every record it concerns.
///
/// # Example
///
/// ```no_run
/// use strata_client::{Admin, ClientError, ErrorCode};
///
/// # async fn run() -> Result<(), ClientError> {
/// let admin = Admin::connect(["127.0.0.1:9700"]).await?;
/// match admin.create_topic("events", 3, 1, &[]).await {
///     Ok(()) => println!("created"),
///     Err(e) if e.code() == Some(ErrorCode::TopicAlreadyExists) => println!("already there"),
///     Err(e) => return Err(e),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// A gRPC call failed below the API: the connection broke, the broker
    /// is unavailable, or it answered with a gRPC status instead of a result.
    #[error("request failed ({:?}): {}", .0.code(), status_message(.0))]
    Transport(tonic::Status),
    /// No connection could be opened to a broker.
    /// It prints its cause (so `{}` alone names it) and so does not also
    /// return it as a source.
    #[error("cannot connect to {address}: {}", chain(.cause.as_ref()))]
    Connect {
        /// The `host:port` that was dialled.
        address: String,
        /// What the transport reported.
        cause: Arc<tonic::transport::Error>,
    },
    /// The broker's machine-readable error for a topic, partition or batch
    /// (unknown topic, not leader, offset out of range, record too large...).
    #[error("{}", server_line(*.code, .message))]
    Server {
        /// The API error code.
        code: ErrorCode,
        /// The broker's message naming the cause.
        message: String,
    },
    /// The caller passed something the client refuses before any request
    /// (an empty topic name, a record larger than `max_request_bytes`...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The broker answered with something the client cannot use (a corrupt
    /// record batch in a fetch, a result for a partition it did not ask for).
    #[error("invalid response from broker: {0}")]
    InvalidResponse(String),
    /// A request got no answer in time; the text says which request.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The producer or consumer was closed.
    #[error("client is closed")]
    Closed,
}

impl ClientError {
    /// A [`ClientError::Server`] from a code and message.
    pub fn server(code: ErrorCode, message: impl Into<String>) -> Self {
        ClientError::Server { code, message: message.into() }
    }

    /// The broker's error code, for [`ClientError::Server`] errors.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether sending the same request again may succeed: retriable broker
    /// codes (see `ErrorCode::is_retriable`; the group coordinator moving or
    /// loading included), lost connections and timeouts.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Server { code, .. } => code.is_retriable(),
            ClientError::Transport(status) => {
                matches!(
                    status.code(),
                    tonic::Code::Unavailable
                        | tonic::Code::Unknown
                        | tonic::Code::Cancelled
                        | tonic::Code::DeadlineExceeded
                        | tonic::Code::Aborted
                ) || is_graceful_goaway(status)
            }
            ClientError::Connect { .. } | ClientError::Timeout(_) => true,
            ClientError::InvalidArgument(_) | ClientError::InvalidResponse(_) | ClientError::Closed => false,
        }
    }

    /// Whether the error means the client's view of leaders is stale and
    /// metadata should be refreshed before retrying.
    pub(crate) fn needs_metadata_refresh(&self) -> bool {
        match self {
            ClientError::Server { code, .. } => matches!(
                code,
                ErrorCode::NotLeaderOrFollower | ErrorCode::UnknownTopicOrPartition | ErrorCode::LeaderNotAvailable
            ),
            ClientError::Transport(_) | ClientError::Connect { .. } | ClientError::Timeout(_) => true,
            _ => false,
        }
    }

    /// The error of an optional per-item API error (`None` or code NONE is
    /// success).
    pub(crate) fn from_api(error: Option<&v1::Error>) -> Option<Self> {
        let e = error?;
        match e.error_code() {
            ErrorCode::None => None,
            code => Some(ClientError::server(code, e.message.clone())),
        }
    }
}

/// Whether a transport failure is a broker closing its connection on
/// purpose (an HTTP/2 GOAWAY with NO_ERROR, sent when it shuts down).
/// tonic reports the requests caught by it as `Internal`, but the broker
/// never processed the streams it refused, and those it had accepted are
/// idempotent retries for the producer: sending again is right.
fn is_graceful_goaway(status: &tonic::Status) -> bool {
    let mut source = StdError::source(status);
    while let Some(err) = source {
        if let Some(h2) = err.downcast_ref::<h2::Error>() {
            return h2.is_go_away() && h2.is_remote() && h2.reason() == Some(h2::Reason::NO_ERROR);
        }
        source = err.source();
    }
    false
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        ClientError::Transport(status)
    }
}

fn server_line(code: ErrorCode, message: &str) -> String {
    if message.is_empty() {
        code.as_str_name().to_owned()
    } else {
        one_line(format!("{}: {}", code.as_str_name(), message.trim_end()))
    }
}

fn status_message(status: &tonic::Status) -> String {
    let mut line = String::new();
    push_segment(&mut line, status.message());
    if let Some(source) = StdError::source(status) {
        push_chain(&mut line, source);
    }
    if line.is_empty() {
        line.push_str("no message");
    }
    one_line(line)
}

/// An error and its sources on one line: `a: b: c`.
fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut line = String::new();
    push_chain(&mut line, error);
    if line.is_empty() {
        line = error.to_string();
    }
    one_line(line)
}

fn push_chain(line: &mut String, error: &(dyn StdError + 'static)) {
    let mut next = Some(error);
    while let Some(e) = next {
        push_segment(line, &e.to_string());
        next = e.source();
    }
}

/// Appends `text` as a `: `-separated segment unless it says nothing new
/// (already in the line, or hyper's bare "transport error" wrapper).
fn push_segment(line: &mut String, text: &str) {
    let text = text.trim();
    if text.is_empty() || line.contains(text) || text == "transport error" {
        return;
    }
    if !line.is_empty() {
        line.push_str(": ");
    }
    line.push_str(text);
}

fn one_line(s: String) -> String {
    if s.contains('\n') {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_naming_the_cause() {
        let e = ClientError::server(ErrorCode::UnknownTopicOrPartition, "unknown topic 'x'");
        assert_eq!(e.to_string(), "UNKNOWN_TOPIC_OR_PARTITION: unknown topic 'x'");
        assert_eq!(ClientError::server(ErrorCode::CorruptBatch, "").to_string(), "CORRUPT_BATCH");
        let t = ClientError::Transport(tonic::Status::unavailable("connection reset\nby peer"));
        assert_eq!(t.to_string(), "request failed (Unavailable): connection reset by peer");
        assert!(t.is_retriable());
        assert!(!ClientError::server(ErrorCode::RecordTooLarge, "x").is_retriable());
        assert!(ClientError::server(ErrorCode::NotLeaderOrFollower, "x").needs_metadata_refresh());
    }
}
