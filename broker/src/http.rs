//! The HTTP side: `/healthz` (the process serves), `/readyz` (this node knows
//! a controller leader, has applied the committed metadata if it votes, and
//! is registered if it is a broker: it can take requests) and
//! `/metrics` (Prometheus text format).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::service::BrokerService;

/// Serves the HTTP endpoints until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Arc<BrokerService>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(service);
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

async fn healthz(State(s): State<Arc<BrokerService>>) -> impl IntoResponse {
    let offline = s.replicas.offline();
    let mut body = String::from("ok\n");
    for (tp, reason) in offline {
        body.push_str(&format!("offline partition {tp}: {reason}\n"));
    }
    (StatusCode::OK, body)
}

async fn readyz(State(s): State<Arc<BrokerService>>) -> impl IntoResponse {
    match readiness(&s) {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")),
    }
}

/// Why this node cannot serve yet, if it cannot.
pub fn readiness(s: &BrokerService) -> Result<(), String> {
    if s.controller.leader_hint().is_none() {
        return Err("no controller leader known".into());
    }
    if let Some(c) = s.controller.local() {
        let status = c.status();
        let lag = status.commit_index.saturating_sub(status.applied_index);
        if lag > MAX_READY_APPLY_LAG {
            return Err(format!("controller is catching up ({lag} committed metadata entries not applied yet)"));
        }
    }
    if s.config.roles.broker {
        let image = s.replicas.image();
        let me = s.config.node_id as u32;
        if !image.brokers.contains_key(&me) {
            return Err(format!("broker {me} is not registered with the controller yet"));
        }
    }
    Ok(())
}

/// Metadata entries a voter may have committed but not applied and still
/// count as caught up (a busy controller always has a few in flight).
const MAX_READY_APPLY_LAG: u64 = 100;

async fn metrics(State(s): State<Arc<BrokerService>>) -> impl IntoResponse {
    let leader = s.controller.local().is_some_and(|c| c.status().leader_id == Some(s.config.node_id));
    s.groups.sweep(&s.replicas);
    s.metrics.set_groups(s.groups.group_count());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        s.metrics.render(&s.replicas, leader, &s.groups.committed_offsets(), &s.groups.member_counts()),
    )
}

/// Binds the HTTP listener (kept separate so startup fails fast on a taken port).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}
