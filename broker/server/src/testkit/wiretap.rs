//! A tower layer around a test node's client gRPC service: it records every
//! unary request (decoded later with prost by the test), and answers chosen
//! ones with an injected `ErrorCode` instead of the broker, or delays them.
//! Faults are a layer in front of the real broker, so the broker itself
//! stays the one under test; one [`Wiretap`] is shared by a cluster's nodes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::BodyExt;
use prost::Message;
use strata_protocol::v1::{
    CommitOffsetsRequest, CommitOffsetsResponse, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, Error,
    ErrorCode, FetchOffsetsRequest, FetchOffsetsResponse, PartitionProduceResult, ProduceRequest, ProduceResponse,
};
use tonic::body::Body;
use tonic::Status;

use super::grpc_frame;

/// Errors to answer a partition's produce entries with.
#[derive(Debug)]
struct ProduceFault {
    topic: String,
    partition: u32,
    code: ErrorCode,
    times: u32,
    /// The broker serves the entry and its answer is lost (replaced by
    /// `code`), rather than the entry never reaching the broker.
    served: bool,
}

/// Errors to answer a group's requests with.
#[derive(Debug)]
struct GroupFault {
    group: String,
    code: ErrorCode,
    times: u32,
}

#[derive(Debug, Default)]
struct State {
    /// (node, method, message) of every unary request, in arrival order.
    recorded: Vec<(u32, String, Bytes)>,
    produce_faults: Vec<ProduceFault>,
    group_faults: Vec<GroupFault>,
    delays: HashMap<String, Duration>,
    /// Members whose next heartbeat answer moving their epoch is lost.
    lose_epoch_moves: Vec<String>,
    /// How many such answers were lost.
    lost: usize,
}

/// What a cluster's nodes received, and the faults they are to answer
/// with. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Wiretap {
    state: Arc<Mutex<State>>,
}

/// The message an injected fault answers with.
fn injected(code: ErrorCode) -> Error {
    Error::new(code, format!("injected {}", code.as_str_name()))
}

impl Wiretap {
    /// The layer for node `node`'s gRPC service.
    pub fn layer(&self, node: u32) -> TapLayer {
        TapLayer { tap: self.clone(), node }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The `method` requests (e.g. `"Produce"`) received so far, each with
    /// the id of the node that received it, in arrival order.
    pub fn requests<M: Message + Default>(&self, method: &str) -> Vec<(u32, M)> {
        self.state()
            .recorded
            .iter()
            .filter(|(_, m, _)| m == method)
            .map(|(node, _, bytes)| match M::decode(bytes.clone()) {
                Ok(message) => (*node, message),
                Err(e) => panic!("wiretap: a recorded {method} request does not decode: {e}"),
            })
            .collect()
    }

    /// How many `method` requests the nodes received.
    pub fn count(&self, method: &str) -> usize {
        self.state().recorded.iter().filter(|(_, m, _)| m == method).count()
    }

    /// Answers the next `times` produce entries for `topic`-`partition` with
    /// `code` (the other partitions of a request still reach the broker).
    pub fn fail_produce(&self, topic: &str, partition: u32, code: ErrorCode, times: u32) {
        self.add_produce_fault(topic, partition, code, times, false);
    }

    /// Lets the broker serve the next `times` produce entries for
    /// `topic`-`partition` and loses their answers: the producer is told
    /// `code` (e.g. `REQUEST_TIMED_OUT`) although the records were written,
    /// as when a connection drops after the broker's append.
    pub fn lose_produce_answers(&self, topic: &str, partition: u32, code: ErrorCode, times: u32) {
        self.add_produce_fault(topic, partition, code, times, true);
    }

    fn add_produce_fault(&self, topic: &str, partition: u32, code: ErrorCode, times: u32, served: bool) {
        self.state().produce_faults.push(ProduceFault { topic: topic.to_owned(), partition, code, times, served });
    }

    /// Answers the next `times` offset commits, offset fetches and
    /// heartbeats of `group` with `code`, faults queued first answering
    /// first.
    pub fn fail_group(&self, group: &str, code: ErrorCode, times: u32) {
        self.state().group_faults.push(GroupFault { group: group.to_owned(), code, times });
    }

    /// Loses the next heartbeat answer that moves `member_id`'s epoch: the
    /// broker serves the heartbeat, the member is answered
    /// `COORDINATOR_NOT_AVAILABLE` instead (a response lost on the way), so
    /// the broker's epoch for it is ahead of the member's own.
    pub fn lose_epoch_move(&self, member_id: &str) {
        self.state().lose_epoch_moves.push(member_id.to_owned());
    }

    /// How many answers [`Wiretap::lose_epoch_move`] lost so far.
    pub fn lost_answers(&self) -> usize {
        self.state().lost
    }

    /// Whether the heartbeat answer `answer` to `request` is to be lost.
    fn loses(&self, request: &ConsumerGroupHeartbeatRequest, answer: &ConsumerGroupHeartbeatResponse) -> bool {
        let mut s = self.state();
        let moved = answer.error.is_none() && answer.member_epoch > request.member_epoch && request.member_epoch > 0;
        match s.lose_epoch_moves.iter().position(|m| *m == request.member_id) {
            Some(i) if moved => {
                s.lose_epoch_moves.remove(i);
                s.lost += 1;
                true
            }
            _ => false,
        }
    }

    /// Drops every fault not yet answered.
    pub fn clear_faults(&self) {
        let mut s = self.state();
        s.produce_faults.clear();
        s.group_faults.clear();
    }

    /// Holds every later `method` request for `delay` before it is served.
    pub fn delay(&self, method: &str, delay: Duration) {
        self.state().delays.insert(method.to_owned(), delay);
    }

    /// Records a request and decides how it is answered.
    fn intercept(&self, node: u32, method: &str, message: Bytes) -> (Option<Duration>, Verdict) {
        let mut s = self.state();
        s.recorded.push((node, method.to_owned(), message.clone()));
        let delay = s.delays.get(method).copied();
        let group_of = |m: &str| -> Option<String> {
            match m {
                "CommitOffsets" => CommitOffsetsRequest::decode(message.clone()).ok().map(|r| r.group_id),
                "FetchOffsets" => FetchOffsetsRequest::decode(message.clone()).ok().map(|r| r.group_id),
                "ConsumerGroupHeartbeat" => {
                    ConsumerGroupHeartbeatRequest::decode(message.clone()).ok().map(|r| r.group_id)
                }
                _ => None,
            }
        };
        let verdict = if method == "Produce" {
            match ProduceRequest::decode(message.clone()) {
                Ok(request) => produce_verdict(&mut s.produce_faults, request),
                Err(_) => Verdict::Forward,
            }
        } else if let Some(group) = group_of(method) {
            let losing = !s.lose_epoch_moves.is_empty();
            match s.group_faults.iter_mut().find(|f| f.group == group && f.times > 0) {
                None if method == "ConsumerGroupHeartbeat" && losing => {
                    match ConsumerGroupHeartbeatRequest::decode(message.clone()) {
                        Ok(request) => Verdict::Heartbeat(request),
                        Err(_) => Verdict::Forward,
                    }
                }
                None => Verdict::Forward,
                Some(f) => {
                    f.times -= 1;
                    let error = Some(injected(f.code));
                    let answer = match method {
                        "CommitOffsets" => CommitOffsetsResponse { error, partitions: vec![] }.encode_to_vec(),
                        "FetchOffsets" => FetchOffsetsResponse { error, partitions: vec![] }.encode_to_vec(),
                        _ => ConsumerGroupHeartbeatResponse { error, ..Default::default() }.encode_to_vec(),
                    };
                    Verdict::Answer(answer)
                }
            }
        } else {
            Verdict::Forward
        };
        (delay, verdict)
    }
}

/// How an intercepted request is answered.
enum Verdict {
    /// By the broker, unchanged.
    Forward,
    /// By the wiretap, with this message.
    Answer(Vec<u8>),
    /// The broker serves `request` (the entries without a fault, and those
    /// whose answer is lost); the injected results are added to its answer,
    /// and the lost answers replaced by their codes.
    Produce { request: ProduceRequest, injected: Vec<PartitionProduceResult>, lost: Vec<(String, u32, ErrorCode)> },
    /// The broker serves this heartbeat; its answer may be lost.
    Heartbeat(ConsumerGroupHeartbeatRequest),
}

fn produce_verdict(faults: &mut [ProduceFault], request: ProduceRequest) -> Verdict {
    let mut kept = Vec::new();
    let mut failed = Vec::new();
    let mut lost = Vec::new();
    for entry in request.partitions {
        let fault = faults.iter_mut().find(|f| f.topic == entry.topic && f.partition == entry.partition && f.times > 0);
        match fault {
            Some(f) if f.served => {
                f.times -= 1;
                lost.push((entry.topic.clone(), entry.partition, f.code));
                kept.push(entry);
            }
            Some(f) => {
                f.times -= 1;
                failed.push(PartitionProduceResult {
                    topic: entry.topic,
                    partition: entry.partition,
                    error: Some(injected(f.code)),
                    ..Default::default()
                });
            }
            None => kept.push(entry),
        }
    }
    if failed.is_empty() && lost.is_empty() {
        Verdict::Forward
    } else if kept.is_empty() {
        Verdict::Answer(ProduceResponse { partitions: failed }.encode_to_vec())
    } else {
        Verdict::Produce { request: ProduceRequest { partitions: kept, ..request }, injected: failed, lost }
    }
}

/// The [`tower_layer::Layer`] wrapping one node's gRPC service.
#[derive(Debug, Clone)]
pub struct TapLayer {
    tap: Wiretap,
    node: u32,
}

impl<S> tower_layer::Layer<S> for TapLayer {
    type Service = Tapped<S>;

    fn layer(&self, inner: S) -> Tapped<S> {
        Tapped { inner, tap: self.tap.clone(), node: self.node }
    }
}

/// A node's gRPC service behind its wiretap.
#[derive(Debug, Clone)]
pub struct Tapped<S> {
    inner: S,
    tap: Wiretap,
    node: u32,
}

type HttpResponse = http::Response<Body>;

/// The error answer of a request the wiretap could not handle.
fn broken(what: &str, e: impl std::fmt::Display) -> HttpResponse {
    Status::internal(format!("wiretap: {what}: {e}")).into_http()
}

impl<S> tower_service::Service<http::Request<Body>> for Tapped<S>
where
    S: tower_service::Service<http::Request<Body>, Response = HttpResponse> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = HttpResponse;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<HttpResponse, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this call.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let (tap, node) = (self.tap.clone(), self.node);
        Box::pin(async move {
            let method = request.uri().path().rsplit('/').next().unwrap_or_default().to_owned();
            let (mut parts, body) = request.into_parts();
            let body = match body.collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return Ok(broken("reading the request", e)),
            };
            let rebuilt =
                |parts, body: Bytes| http::Request::from_parts(parts, Body::new(http_body_util::Full::new(body)));
            let Some(message) = grpc_frame::decode(&body) else {
                return inner.call(rebuilt(parts, body)).await;
            };
            let (delay, verdict) = tap.intercept(node, &method, message);
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            match verdict {
                Verdict::Forward => inner.call(rebuilt(parts, body)).await,
                Verdict::Answer(answer) => Ok(grpc_frame::ok_response(&answer)),
                Verdict::Produce { request, injected, lost } => {
                    parts.headers.remove(http::header::CONTENT_LENGTH);
                    let body = grpc_frame::encode(&request.encode_to_vec());
                    let response = inner.call(rebuilt(parts, body)).await?;
                    Ok(merge_produce(response, injected, lost).await)
                }
                Verdict::Heartbeat(heartbeat) => {
                    let response = inner.call(rebuilt(parts, body)).await?;
                    let (parts, body) = response.into_parts();
                    let collected = match body.collect().await {
                        Ok(c) => c,
                        Err(e) => return Ok(broken("reading the heartbeat answer", e)),
                    };
                    let trailers = collected.trailers().cloned().unwrap_or_default();
                    let data = collected.to_bytes();
                    let answer = grpc_frame::decode(&data).and_then(|m| ConsumerGroupHeartbeatResponse::decode(m).ok());
                    if answer.is_some_and(|a| tap.loses(&heartbeat, &a)) {
                        let error = Some(injected(ErrorCode::CoordinatorNotAvailable));
                        return Ok(grpc_frame::ok_response(
                            &ConsumerGroupHeartbeatResponse { error, ..Default::default() }.encode_to_vec(),
                        ));
                    }
                    Ok(http::Response::from_parts(parts, grpc_frame::body(data, trailers)))
                }
            }
        })
    }
}

/// The broker's produce answer with the injected results added and the
/// lost answers replaced.
async fn merge_produce(
    response: HttpResponse,
    extra: Vec<PartitionProduceResult>,
    lost: Vec<(String, u32, ErrorCode)>,
) -> HttpResponse {
    let (mut parts, body) = response.into_parts();
    let collected = match body.collect().await {
        Ok(c) => c,
        Err(e) => return broken("reading the produce answer", e),
    };
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let data = collected.to_bytes();
    let Some(message) = grpc_frame::decode(&data) else {
        // An error status (no message): passed on as it came.
        return http::Response::from_parts(parts, grpc_frame::body(data, trailers));
    };
    let mut answer = match ProduceResponse::decode(message) {
        Ok(a) => a,
        Err(e) => return broken("decoding the produce answer", e),
    };
    for r in &mut answer.partitions {
        if let Some((_, _, code)) = lost.iter().find(|(t, p, _)| *t == r.topic && *p == r.partition) {
            *r = PartitionProduceResult {
                topic: r.topic.clone(),
                partition: r.partition,
                error: Some(injected(*code)),
                ..Default::default()
            };
        }
    }
    answer.partitions.extend(extra);
    parts.headers.remove(http::header::CONTENT_LENGTH);
    http::Response::from_parts(parts, grpc_frame::body(grpc_frame::encode(&answer.encode_to_vec()), trailers))
}
