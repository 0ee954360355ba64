//! The HTTP side: `/healthz` (the process serves), `/readyz` (this node knows
//! a controller leader, has applied the committed metadata if it votes, and,
//! if it is a broker, is registered and back in the in-sync replicas of the
//! partitions it replicates: it has joined and caught up) and
//! `/metrics` (Prometheus text format), and `POST /drain` (from this host,
//! or over HTTPS with a client certificate the cluster's CA verified: hand
//! this broker's partition leadership away before a stop).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;

use strata_metadata::AclOperation;

use crate::authorizer::{Resource, Session};
use crate::service::BrokerService;

/// Serves the HTTP endpoints until `shutdown` resolves, in plaintext or
/// over TLS with `tls`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<strata_tls::ServerTls>>,
    service: Arc<BrokerService>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/drain", post(drain))
        .with_state(service);
    let Some(tls) = tls else {
        return axum::serve(listener, app.into_make_service_with_connect_info::<HttpPeer>())
            .with_graceful_shutdown(shutdown)
            .await;
    };
    let local = listener.local_addr()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let incoming = strata_tls::TlsIncoming::spawn(listener, tls, "HTTP", stop.clone());
    let _stop_accepting = stop.drop_guard();
    // `tap_io` gives the listener's address type (`HttpPeer`) as `ConnectInfo`.
    let listener = axum::serve::ListenerExt::tap_io(TlsListener { incoming, local }, |_| {});
    axum::serve(listener, app.into_make_service_with_connect_info::<HttpPeer>()).with_graceful_shutdown(shutdown).await
}

/// Who called an HTTP endpoint: the address, and who the client
/// certificate the cluster's CA verified names (an operator or a node), if
/// the connection presented one.
#[derive(Debug, Clone)]
pub struct HttpPeer {
    addr: SocketAddr,
    certified: Option<Session>,
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>> for HttpPeer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        HttpPeer { addr: *stream.remote_addr(), certified: None }
    }
}

/// Who may drain this broker: a caller on this host (a preStop hook), or a
/// node or an admin (allowed to alter the cluster) over HTTPS with a client
/// certificate of the cluster's CA.
fn may_drain(peer: &HttpPeer, is_admin: impl Fn(&Session) -> bool) -> bool {
    peer.addr.ip().is_loopback() || peer.certified.as_ref().is_some_and(is_admin)
}

/// The TLS connections of the HTTP port, as axum takes a listener.
struct TlsListener {
    incoming: tokio_stream::wrappers::ReceiverStream<std::io::Result<strata_tls::TlsConn>>,
    local: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = strata_tls::TlsConn;
    type Addr = HttpPeer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        use tokio_stream::StreamExt;
        loop {
            match self.incoming.next().await {
                Some(Ok(conn)) => {
                    let addr = conn.info().remote.unwrap_or_else(|| ([0, 0, 0, 0], 0).into());
                    let certified = conn.info().certificates.is_some().then(|| Session::of_tls(conn.info(), addr.ip()));
                    return (conn, HttpPeer { addr, certified });
                }
                Some(Err(_)) => continue,
                // The accept loop ended: the server is shutting down.
                None => std::future::pending().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<HttpPeer> {
        Ok(HttpPeer { addr: self.local, certified: None })
    }
}

/// `POST /drain?timeout_secs=N` parameters.
#[derive(Debug, serde::Deserialize)]
struct DrainQuery {
    timeout_secs: Option<u64>,
}

/// Longest `POST /drain` waits by default.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs the controlled shutdown step now (the server keeps answering until
/// it is stopped) and answers once it ran: 200 with how many partitions
/// this broker still leads (those with no other in-sync replica), 504 if
/// it did not finish in time, 403 for a caller [`may_drain`] refuses.
async fn drain(
    State(s): State<Arc<BrokerService>>,
    ConnectInfo(peer): ConnectInfo<HttpPeer>,
    Query(q): Query<DrainQuery>,
) -> impl IntoResponse {
    if !may_drain(&peer, |who| s.is_authorized(who, AclOperation::Alter, Resource::Cluster)) {
        return (
            StatusCode::FORBIDDEN,
            format!(
                "drain is accepted from this host, or over HTTPS with a client certificate of a node or of an admin \
                 (Alter on the cluster); not from {} ({})\n",
                peer.addr.ip(),
                peer.certified.as_ref().map_or("no certificate", |s| s.principal.as_str())
            ),
        );
    }
    let timeout = q.timeout_secs.map_or(DRAIN_TIMEOUT, std::time::Duration::from_secs);
    s.drain.requested.send_replace(true);
    let mut done = s.drain.done.subscribe();
    if tokio::time::timeout(timeout, done.wait_for(|d| *d)).await.is_err() {
        return (StatusCode::GATEWAY_TIMEOUT, format!("drain did not finish within {} s\n", timeout.as_secs()));
    }
    let led = s.replicas.partitions().iter().filter(|p| p.leader_epoch_if_leader().is_some()).count();
    (StatusCode::OK, format!("drained: this broker leads {led} partition(s)\n"))
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
    if let Some(status) = s.controller.local_voter() {
        let lag = status.commit_index.saturating_sub(status.applied_index);
        if lag > MAX_READY_APPLY_LAG {
            return Err(format!("controller is catching up ({lag} committed metadata entries not applied yet)"));
        }
    }
    if s.config.is_broker {
        let image = s.replicas.image();
        let me = s.config.node_id;
        if !image.brokers.contains_key(&me) {
            return Err(format!("broker {me} is not registered with the controller yet"));
        }
        // Caught up: in the ISR of every partition it replicates whose
        // leader is another live broker (a partition without one cannot
        // take it back, so it does not hold readiness). A rolling restart
        // waits on this before it stops the next broker.
        let live = |id: u32| image.brokers.get(&id).is_some_and(|b| !b.fenced);
        let behind: Vec<String> = image
            .topics
            .values()
            .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
            .filter(|(_, p)| p.replicas.contains(&me) && !p.isr.contains(&me))
            .filter(|(_, p)| p.leader.is_some_and(|l| l != me && live(l)))
            .map(|(t, p)| format!("{}-{}", t.name, p.partition))
            .collect();
        if let Some(first) = behind.first() {
            return Err(format!(
                "catching up: not yet back in the in-sync replicas of {} partition(s) ({first}{})",
                behind.len(),
                if behind.len() > 1 { ", ..." } else { "" }
            ));
        }
    }
    Ok(())
}

/// Metadata entries a voter may have committed but not applied and still
/// count as caught up (a busy controller always has a few in flight).
const MAX_READY_APPLY_LAG: u64 = 100;

async fn metrics(State(s): State<Arc<BrokerService>>) -> impl IntoResponse {
    let leader = s.controller.local_voter().is_some_and(|v| v.leader_id == Some(u64::from(s.config.node_id)));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_is_for_this_host_or_a_certified_admin() {
        let peer = |ip: [u8; 4], who: Option<&str>| HttpPeer {
            addr: SocketAddr::from((ip, 1234)),
            certified: who.map(|w| Session::new(w, ip.into())),
        };
        let admin_only = |s: &Session| s.principal == "User:admin";
        assert!(may_drain(&peer([127, 0, 0, 1], None), admin_only));
        assert!(!may_drain(&peer([10, 1, 2, 3], None), admin_only), "a stranger on the network");
        assert!(may_drain(&peer([10, 1, 2, 3], Some("User:admin")), admin_only), "an admin's certificate");
        assert!(!may_drain(&peer([10, 1, 2, 3], Some("User:app")), admin_only), "a certificate without the right");
    }
}
