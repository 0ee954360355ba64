//! # strata-server
//!
//! Starting and stopping a node: bind the ports (failing fast if taken),
//! open the logs, start the controller (a voter here, or a client of the
//! voters), register the broker, serve gRPC and HTTP, follow metadata, and
//! on shutdown close everything in order (leadership handed away, listeners
//! closed, replication stopped, logs flushed with clean-shutdown markers,
//! controller stopped last). Every long-running task belongs to a named
//! group of one cancellation tree (`supervisor`).
//!
//! This crate is the one place that knows both the broker core and the Raft
//! controller: it implements the broker's `ControllerLink` over them.

pub mod config;
mod controller_links;
pub mod limits;
mod supervisor;
#[cfg(feature = "testkit")]
pub mod testkit;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use strata_broker::api::grpc::GrpcService;
use strata_broker::controller_link::{ControllerCallError, ControllerLink};
use strata_broker::metrics::Metrics;
use strata_broker::replica_manager::ReplicaManager;
use strata_broker::service::BrokerService;
use strata_broker::tasks;
use strata_controller::{
    Controller, ControllerClient, ControllerConfig, ControllerError, MetadataCommand, MetadataFollower, RaftService,
};
use strata_storage::{BackgroundConfig, LogManager, StorageError};
use tokio_util::sync::CancellationToken;

pub use crate::config::{Cli, Command, ConfigError, ServerConfig};
use crate::controller_links::{LocalController, RemoteController};
use crate::supervisor::TaskGroup;

/// Largest gRPC message either way (a produce or fetch of many batches).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;
/// Longest a shutdown waits for the controller to fence this broker.
const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a broker-only node's request to the controller quorum may take.
const CONTROLLER_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long startup waits for the controller and broker registration.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a node could not start or stop cleanly. Each variant either names
/// its cause in its message or returns it as its source, never both, so a
/// report of the chain names each cause once.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A port could not be bound.
    #[error("cannot listen on {address} ({what})")]
    Bind {
        /// The address.
        address: String,
        /// Which listener.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The data directory could not be opened or closed.
    #[error("storage")]
    Storage(#[from] StorageError),
    /// The controller failed to start.
    #[error("controller")]
    Controller(#[from] ControllerError),
    /// This broker could not register with the controller quorum.
    #[error("registering with the controller")]
    Register(#[source] ControllerCallError),
    /// The TLS certificate, key or CA files are unusable.
    #[error("TLS")]
    Tls(#[source] strata_tls::TlsError),
    /// A listener or another supervised task failed.
    #[error("{task} failed")]
    Task {
        /// The task's name.
        task: &'static str,
        /// Its failure.
        source: supervisor::TaskError,
    },
}

/// How often the TLS files are checked for changes.
const TLS_RELOAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Logs a loud warning for every listener bound to a non-loopback address
/// without TLS: anyone who reaches it can read and write everything.
fn warn_if_exposed_without_tls(config: &ServerConfig) {
    if config.tls.is_some() {
        return;
    }
    let kafka = config.kafka.as_ref().map(|k| k.listen);
    for (what, addr) in [
        ("client gRPC", Some(config.listen)),
        ("controller", Some(config.controller_listen)),
        ("HTTP", Some(config.http_listen)),
        ("Kafka", kafka),
    ] {
        if let Some(addr) = addr.filter(|a| !a.ip().is_loopback()) {
            tracing::warn!(
                listener = what,
                %addr,
                "PLAINTEXT AND UNAUTHENTICATED on a non-loopback address: anyone who can reach it can read, write and \
                 administer this cluster; set --tls-cert-file/--tls-key-file/--tls-ca-file"
            );
        }
    }
}

/// Runs a node until `shutdown` resolves, then stops it cleanly. A node with
/// the controller role runs a voter of the quorum (Raft on
/// `controller_listen`); a node with the broker role serves clients on
/// `listen`, registers and heartbeats, reaching the controller in process or,
/// without the controller role, over the voters' gRPC API. A listener that
/// fails while serving stops the node the same way, and `run` returns its
/// error.
pub async fn run(config: ServerConfig, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    serve(config, shutdown, None).await
}

/// [`run`] with the client gRPC service behind `tap` (the test kit's
/// recording and fault-injecting layer), if any.
#[cfg(feature = "testkit")]
pub async fn run_with(
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
    tap: Option<testkit::TapLayer>,
) -> Result<(), ServerError> {
    serve(config, shutdown, tap).await
}

/// What may sit in front of the client gRPC service: the test kit's layer
/// in test builds, nothing otherwise.
#[cfg(feature = "testkit")]
type Tap = testkit::TapLayer;
#[cfg(not(feature = "testkit"))]
type Tap = tower::layer::util::Identity;

async fn serve(config: ServerConfig, shutdown: impl Future<Output = ()>, tap: Option<Tap>) -> Result<(), ServerError> {
    config.validate()?;
    let broker_config = Arc::new(config.broker_config()?);
    let broker_id = broker_config.node_id;
    let bind = |what, address: std::net::SocketAddr| async move {
        tokio::net::TcpListener::bind(address).await.map_err(|source| ServerError::Bind {
            address: address.to_string(),
            what,
            source,
        })
    };
    let roles = config.roles;
    let grpc_listener = if roles.broker { Some(bind("client gRPC", config.listen).await?) } else { None };
    let http_listener = bind("HTTP", config.http_listen).await?;
    let kafka_listener = match (&config.kafka, roles.broker) {
        (Some(k), true) => Some(bind("Kafka", k.listen).await?),
        _ => None,
    };
    let raft_listener =
        if roles.controller { Some(bind("controller Raft gRPC", config.controller_listen).await?) } else { None };
    // TLS: one server configuration per listener (each offers its own
    // application protocol), one client configuration for the links this
    // node opens to the others (presenting its certificate: mutual TLS).
    let server_tls = |alpn: &[&[u8]]| match &config.tls {
        Some(files) => strata_tls::ServerTls::new(files, alpn).map(Some).map_err(ServerError::Tls),
        None => Ok(None),
    };
    let grpc_tls = server_tls(&[b"h2"])?;
    let raft_tls = server_tls(&[b"h2"])?;
    let kafka_tls = server_tls(&[])?;
    let http_tls = server_tls(&[b"h2", b"http/1.1"])?;
    let link_tls = match &config.tls {
        Some(files) => Some(strata_tls::ClientTls::new(files, &[b"h2"]).map_err(ServerError::Tls)?),
        None => None,
    };
    warn_if_exposed_without_tls(&config);
    std::fs::create_dir_all(&config.data_dir).map_err(|e| StorageError::io(&config.data_dir, "creating", e))?;

    let mut logs = LogManager::open(&config.data_dir, config.log.clone())?;
    if let Ok((soft, _)) = limits::open_file_limits() {
        if let Some(warning) = limits::descriptor_warning(logs.list().len(), soft) {
            tracing::warn!("{warning}");
        }
    }
    logs.start_background(BackgroundConfig {
        retention_check: config.log_retention_check_interval,
        cleaner_check: config.log_cleaner_check_interval,
        ..BackgroundConfig::default()
    });
    for (tp, reason) in logs.offline() {
        tracing::error!(partition = %tp, %reason, "partition is offline");
    }
    let replicas = Arc::new(ReplicaManager::new(broker_id, logs, config.log.clone()));
    let voter_addresses: HashMap<u64, String> = config.voters.iter().map(|v| (v.node_id, v.address.clone())).collect();

    // One tree; the groups below are stopped one at a time, in reverse
    // order of what depends on them.
    let root = CancellationToken::new();
    let mut raft = TaskGroup::new("controller quorum", &root);
    let mut metadata = TaskGroup::new("metadata follower", &root);
    let mut heartbeats = TaskGroup::new("heartbeats", &root);
    let mut serving = TaskGroup::new("serving", &root);

    // The controller: a voter here, or a client of the voters.
    let mut local_controller = None;
    let link: Arc<dyn ControllerLink> = match raft_listener {
        Some(raft_listener) => {
            let controller = Controller::start_with_grpc_tls(
                ControllerConfig {
                    node_id: config.node_id,
                    data_dir: config.data_dir.join("controller"),
                    voters: config.voters.iter().map(|v| v.node_id).collect(),
                    ..ControllerConfig::default()
                },
                voter_addresses,
                link_tls.clone(),
                tokio::runtime::Handle::current(),
            )?;
            // Raft between voters, on its own port: only controller peers
            // and brokers reach it.
            let raft_service = match raft_tls {
                Some(_) => RaftService::new(controller.clone()).require_node_certificates(),
                None => RaftService::new(controller.clone()),
            };
            let builder = tonic::transport::Server::builder().add_service(raft_service.into_server());
            match raft_tls.clone() {
                Some(tls) => {
                    let incoming = strata_tls::TlsIncoming::spawn(raft_listener, tls, "controller Raft", raft.token());
                    let server = builder.serve_with_incoming_shutdown(incoming, raft.token().cancelled_owned());
                    raft.spawn("controller Raft gRPC listener", async move { server.await.map_err(Into::into) });
                }
                None => {
                    let server = builder.serve_with_incoming_shutdown(
                        tonic::transport::server::TcpIncoming::from(raft_listener).with_nodelay(Some(true)),
                        raft.token().cancelled_owned(),
                    );
                    raft.spawn("controller Raft gRPC listener", async move { server.await.map_err(Into::into) });
                }
            }
            local_controller = Some(controller.clone());
            Arc::new(LocalController(controller))
        }
        None => {
            let client = ControllerClient::with_tls(voter_addresses, CONTROLLER_REQUEST_TIMEOUT, link_tls.clone())?;
            let follower = MetadataFollower::new(client.clone());
            let image = follower.subscribe();
            metadata.spawn_infallible("metadata follower", follower.run(metadata.token()));
            Arc::new(RemoteController { client, image })
        }
    };
    if roles.broker {
        tasks::register(
            link.as_ref(),
            broker_id,
            config.advertised_address.clone(),
            config.rack.clone(),
            config.kafka.as_ref().map(|k| k.advertised_address.clone()),
            STARTUP_TIMEOUT,
        )
        .await
        .map_err(ServerError::Register)?;
    }
    replicas.apply_metadata(link.metadata());
    replicas.start_replication_with_tls(tokio::runtime::Handle::current(), link_tls.clone());

    let service = Arc::new(BrokerService::new(
        broker_config,
        replicas.clone(),
        link.clone(),
        Arc::new(Metrics::default()),
        serving.token(),
    ));
    serving.spawn_infallible(
        "metadata applier",
        tasks::follow_metadata(link.subscribe(), replicas.clone(), serving.token()),
    );
    if roles.broker {
        heartbeats
            .spawn_infallible("controller heartbeat", tasks::heartbeat(link.clone(), broker_id, heartbeats.token()));
        serving.spawn_infallible(
            "ISR maintenance",
            strata_broker::replication::isr::maintain_isr(
                replicas.clone(),
                link.clone(),
                config.replica_lag_time_max,
                serving.token(),
            ),
        );
        serving.spawn_infallible("group member expiry", tasks::expire_group_members(service.clone(), serving.token()));
        serving.spawn_infallible("offsets compaction", tasks::compact_group_offsets(service.clone(), serving.token()));
    }
    if let Some(listener) = grpc_listener {
        let builder = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .initial_stream_window_size(Some(8 << 20))
            .initial_connection_window_size(Some(32 << 20))
            .layer(tower::util::option_layer(tap))
            .add_service(GrpcService::server(service.clone(), MAX_MESSAGE_BYTES));
        match grpc_tls.clone() {
            Some(tls) => {
                let incoming = strata_tls::TlsIncoming::spawn(listener, tls, "client gRPC", serving.token());
                let server = builder.serve_with_incoming_shutdown(incoming, serving.token().cancelled_owned());
                serving.spawn("client gRPC listener", async move { server.await.map_err(Into::into) });
            }
            None => {
                let server = builder.serve_with_incoming_shutdown(
                    // tonic ignores `Server::tcp_nodelay` for a
                    // caller-provided listener: without this, Nagle +
                    // delayed ACK add ~40 ms to every response.
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                    serving.token().cancelled_owned(),
                );
                serving.spawn("client gRPC listener", async move { server.await.map_err(Into::into) });
            }
        }
    }
    if let Some(listener) = kafka_listener {
        serving.spawn_infallible(
            "Kafka listener",
            strata_broker::api::kafka::serve(listener, kafka_tls.clone(), service.clone(), serving.token()),
        );
    }
    // Certificate rotation: every listener and the node links pick up
    // changed files for their next handshakes.
    for (what, tls) in
        [("client gRPC", &grpc_tls), ("controller Raft", &raft_tls), ("Kafka", &kafka_tls), ("HTTP", &http_tls)]
    {
        if let Some(tls) = tls {
            serving.spawn_infallible("TLS reload", tls.clone().watch(what, TLS_RELOAD_INTERVAL, serving.token()));
        }
    }
    if let Some(tls) = &link_tls {
        serving.spawn_infallible("TLS reload", tls.clone().watch("node links", TLS_RELOAD_INTERVAL, serving.token()));
    }
    let http = strata_broker::http::serve(http_listener, http_tls, service.clone(), serving.token().cancelled_owned());
    serving.spawn("HTTP listener", async move { http.await.map_err(Into::into) });
    tracing::info!(
        node_id = config.node_id,
        broker = roles.broker,
        controller = roles.controller,
        listen = %config.listen,
        http = %config.http_listen,
        kafka = %config.kafka.as_ref().map_or_else(|| "off".to_string(), |k| k.listen.to_string()),
        data_dir = %config.data_dir.display(),
        "strata-server is serving"
    );

    // Serve until the stop signal, a drain, or a task that ends on its own
    // (a failed listener: the node stops rather than run half-deaf).
    // A drain (`POST /drain`, a Kubernetes preStop hook) runs the controlled
    // shutdown step early: leadership moves away while the process still
    // answers; the stop signal then finds it done.
    tokio::pin!(shutdown);
    let mut failures = Vec::new();
    let mut drain_requested = service.drain.requested.subscribe();
    let drained_early = tokio::select! {
        _ = &mut shutdown => false,
        _ = drain_requested.wait_for(|r| *r) => true,
        end = serving.next_exit() => { note_early_exit(end, &mut failures); false }
    };
    if drained_early {
        tracing::info!("drain requested: handing leadership away before the stop");
    }
    if roles.broker {
        // Controlled shutdown: stop heartbeating, then have the controller
        // fence this broker now, so its partitions move (or, without another
        // in-sync replica, show as leaderless) at once instead of after the
        // session timeout. Bounded: a cluster without a quorum does not hold
        // the exit.
        failures.extend(heartbeats.stop().await);
        let fence = MetadataCommand::ControlledShutdown { node_id: broker_id };
        match tokio::time::timeout(CONTROLLED_SHUTDOWN_TIMEOUT, link.propose(fence)).await {
            Ok(Ok(_)) => tracing::info!("controlled shutdown: leadership released"),
            Ok(Err(e)) => {
                tracing::warn!(error = %strata_record::ErrorChain(&e), "controlled shutdown failed; the session timeout will fence this broker")
            }
            Err(_) => tracing::warn!("controlled shutdown timed out; the session timeout will fence this broker"),
        }
        // Give up leadership locally at once (the metadata follower may not
        // have applied the change yet): waiting acks=all produces answer
        // NOT_LEADER_OR_FOLLOWER and their producers move to the new leaders.
        replicas.apply_metadata(link.metadata());
    }
    service.drain.done.send_replace(true);
    if drained_early && failures.is_empty() {
        tokio::select! {
            _ = &mut shutdown => {}
            end = serving.next_exit() => note_early_exit(end, &mut failures),
        }
    }
    tracing::info!("shutting down: closing listeners, flushing logs");
    failures.extend(serving.stop().await);
    replicas.stop_replication();
    failures.extend(metadata.stop().await);
    drop(service);
    drop(link);
    let closed = match Arc::try_unwrap(replicas) {
        Ok(r) => r.close().map_err(ServerError::from),
        Err(_) => Err(ServerError::Task {
            task: "shutdown",
            source: "partitions still in use; logs not closed cleanly".into(),
        }),
    };
    if let Some(controller) = local_controller {
        controller.shutdown().await;
    }
    failures.extend(raft.stop().await);
    if let Some((task, source)) = failures.into_iter().next() {
        return Err(ServerError::Task { task, source });
    }
    closed?;
    tracing::info!("clean shutdown complete");
    Ok(())
}

/// A serving task ended before shutdown: always a failure (they run until
/// cancelled), recorded so `run` reports it.
fn note_early_exit((task, result): supervisor::TaskEnd, failures: &mut Vec<(&'static str, supervisor::TaskError)>) {
    let error = result.err().unwrap_or_else(|| "stopped unexpectedly".into());
    tracing::error!(task, error = %strata_record::ErrorChain(&*error), "a serving task ended; stopping the node");
    failures.push((task, error));
}
