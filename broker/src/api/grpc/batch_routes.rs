//! The two RPCs whose answers carry record batches — `Fetch` (consumers)
//! and `ReplicaFetch` (followers) — served beside the generated service so
//! the batches go from the log's mapping to the socket without being copied
//! into an encode buffer (`strata_protocol::zero_copy`). The wire bytes are
//! the generated service's; every other RPC is the generated service's own.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use strata_protocol::v1::strata_server::StrataServer;
use strata_protocol::zero_copy::{self, ChunkBody, Chunks};
use tonic::body::Body;
use tonic::codec::{Codec, Streaming};
use tonic::server::NamedService;
use tonic::Status;
use tonic_prost::ProstCodec;
use tower_service::Service;

use super::authenticate::{authenticate, Caller};
use super::{data, replica, GrpcService};
use crate::service::BrokerService;

const FETCH: &str = "/strata.v1.Strata/Fetch";
const REPLICA_FETCH: &str = "/strata.v1.Strata/ReplicaFetch";

/// `strata.v1.Strata` with `Fetch` and `ReplicaFetch` answered zero-copy.
#[derive(Debug, Clone)]
pub struct BatchRoutes {
    generated: StrataServer<GrpcService>,
    core: Arc<BrokerService>,
    max_message_bytes: usize,
}

impl BatchRoutes {
    pub(super) fn new(
        generated: StrataServer<GrpcService>,
        core: Arc<BrokerService>,
        max_message_bytes: usize,
    ) -> Self {
        BatchRoutes { generated, core, max_message_bytes }
    }
}

impl NamedService for BatchRoutes {
    const NAME: &'static str = <StrataServer<GrpcService> as NamedService>::NAME;
}

impl Service<http::Request<Body>> for BatchRoutes {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<http::Request<Body>>::poll_ready(&mut self.generated, cx)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        let (core, max) = (self.core.clone(), self.max_message_bytes);
        // The generated service is always ready (tonic's servers are).
        let mut generated = self.generated.clone();
        let caller = Caller::of(&req);
        Box::pin(async move {
            let session = match authenticate(&core, caller).await {
                Ok(session) => session,
                Err(status) => return Ok(status.into_http()),
            };
            match req.uri().path() {
                FETCH => Ok(unary(req, max, |m| async move {
                    Ok(zero_copy::fetch_response(data::fetch(&core, &session, m).await))
                })
                .await),
                REPLICA_FETCH => {
                    let peer = req.extensions().get::<strata_tls::TlsConnectInfo>().cloned();
                    Ok(unary(req, max, |m: strata_protocol::v1::ReplicaFetchRequest| async move {
                        replica::authorize(&core, m.replica_id, peer.as_ref())?;
                        Ok(zero_copy::replica_fetch_response(replica::replica_fetch(&core, m).await))
                    })
                    .await)
                }
                _ => {
                    req.extensions_mut().insert(session);
                    generated.call(req).await
                }
            }
        })
    }
}

/// Decodes a unary request as the generated service does (length-prefixed,
/// uncompressed, at most `max` bytes), answers it with `handle`, and sends
/// the answer's chunks as they are.
async fn unary<M, F, Fut>(req: http::Request<Body>, max: usize, handle: F) -> http::Response<Body>
where
    M: prost::Message + Default + Send + 'static,
    F: FnOnce(M) -> Fut,
    Fut: Future<Output = Result<Chunks, Status>>,
{
    let decoder = ProstCodec::<M, M>::default().decoder();
    let mut stream = Streaming::<M>::new_request(decoder, req.into_body(), None, Some(max));
    let message = match stream.message().await {
        Ok(Some(m)) => m,
        Ok(None) => return Status::invalid_argument("the request carries no message").into_http(),
        Err(status) => return status.into_http(),
    };
    let chunks = match handle(message).await {
        Ok(chunks) => chunks,
        Err(status) => return status.into_http(),
    };
    if chunks.len() > max {
        return Status::out_of_range(format!(
            "the answer is {} bytes, above the {max}-byte message limit",
            chunks.len()
        ))
        .into_http();
    }
    let mut response = http::Response::new(Body::new(ChunkBody::ok_response(chunks.into_grpc_frame())));
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
    response
}
