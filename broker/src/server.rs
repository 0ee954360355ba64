//! Starting and stopping a node: bind the ports (failing fast if taken),
//! open the logs, start the controller, register the broker, serve gRPC and
//! HTTP, follow metadata, and on shutdown close everything cleanly (logs
//! flushed, clean-shutdown markers written).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use strata_controller::{
    Controller, ControllerClient, ControllerConfig, ControllerError, MetadataCommand, MetadataFollower, MetadataImage,
    RaftService,
};
use strata_protocol::v1::strata_server::StrataServer;
use strata_storage::{BackgroundConfig, LogManager, StorageError};
use tokio::sync::watch;

use crate::config::{ConfigError, ServerConfig};
use crate::controller_link::ControllerLink;
use crate::metrics::Metrics;
use crate::replica_manager::ReplicaManager;
use crate::service::BrokerService;

/// Largest gRPC message either way (a produce or fetch of many batches).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;
/// Longest a shutdown waits for the controller to fence this broker.
const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a broker-only node's request to the controller quorum may take.
const CONTROLLER_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long startup waits for the controller and broker registration.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a node could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A port could not be bound.
    #[error("cannot listen on {address} ({what}): {source}")]
    Bind {
        /// The address.
        address: String,
        /// Which listener.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The data directory could not be opened.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The controller failed.
    #[error("controller: {0}")]
    Controller(#[from] ControllerError),
    /// Serving failed.
    #[error("serving {what}: {reason}")]
    Serve {
        /// Which server.
        what: &'static str,
        /// The failure.
        reason: String,
    },
}

/// Runs a node until `shutdown` resolves, then stops it cleanly. A node with
/// the controller role runs a voter of the quorum (Raft on
/// `controller_listen`); a node with the broker role serves clients on
/// `listen`, registers and heartbeats, reaching the controller in process or,
/// without the controller role, over the voters' gRPC API.
pub async fn run(config: ServerConfig, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    config.validate()?;
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
    let raft_listener =
        if roles.controller { Some(bind("controller Raft gRPC", config.controller_listen).await?) } else { None };
    std::fs::create_dir_all(&config.data_dir).map_err(|e| StorageError::io(&config.data_dir, "creating", e))?;

    let mut logs = LogManager::open(&config.data_dir, config.log.clone())?;
    logs.start_background(BackgroundConfig {
        retention_check: config.log_retention_check_interval,
        ..BackgroundConfig::default()
    });
    for (tp, reason) in logs.offline() {
        tracing::error!(partition = %tp, %reason, "partition is offline");
    }
    let replicas = Arc::new(ReplicaManager::new(config.node_id as u32, logs, config.log.clone()));
    let voter_addresses: HashMap<u64, String> = config.voters.iter().map(|v| (v.node_id, v.address.clone())).collect();
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    // The controller: a voter here, or a client of the voters.
    let (raft_stop_tx, raft_stop_rx) = watch::channel(false);
    let mut raft = None;
    let mut metadata_follower = None;
    let link = match raft_listener {
        Some(raft_listener) => {
            let controller = Controller::start_with_grpc(
                ControllerConfig {
                    node_id: config.node_id,
                    data_dir: config.data_dir.join("controller"),
                    voters: config.voters.iter().map(|v| v.node_id).collect(),
                    ..ControllerConfig::default()
                },
                voter_addresses,
                tokio::runtime::Handle::current(),
            )?;
            // Raft between voters, on its own port: only controller peers
            // and brokers reach it.
            raft = Some(tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(RaftService::new(controller.clone()).into_server())
                    .serve_with_incoming_shutdown(
                        tonic::transport::server::TcpIncoming::from(raft_listener).with_nodelay(Some(true)),
                        stopped(raft_stop_rx),
                    ),
            ));
            ControllerLink::Local(controller)
        }
        None => {
            let client = ControllerClient::new(voter_addresses, CONTROLLER_REQUEST_TIMEOUT)?;
            let follower = MetadataFollower::new(client.clone());
            let image = follower.subscribe();
            metadata_follower = Some(tokio::spawn(follower.run(stop_rx.clone())));
            ControllerLink::Remote { client, image }
        }
    };
    if roles.broker {
        register(&link, &config).await?;
    }
    replicas.apply_metadata(link.metadata());
    replicas.start_replication(tokio::runtime::Handle::current());

    let config = Arc::new(config);
    let service = Arc::new(BrokerService::new(
        config.clone(),
        replicas.clone(),
        link.clone(),
        Arc::new(Metrics::default()),
        stop_rx.clone(),
    ));
    let follower = tokio::spawn(follow_metadata(link.subscribe(), replicas.clone(), stop_rx.clone()));
    let (heartbeat_stop_tx, heartbeat_stop_rx) = watch::channel(false);
    let heartbeats =
        roles.broker.then(|| tokio::spawn(heartbeat(link.clone(), config.node_id as u32, heartbeat_stop_rx)));
    let isr = roles.broker.then(|| {
        tokio::spawn(crate::replication::isr::maintain_isr(
            replicas.clone(),
            link.clone(),
            config.replica_lag_time_max,
            stop_rx.clone(),
        ))
    });
    let group_upkeep = roles.broker.then(|| tokio::spawn(expire_group_members(service.clone(), stop_rx.clone())));
    let offsets_compaction =
        roles.broker.then(|| tokio::spawn(compact_group_offsets(service.clone(), stop_rx.clone())));
    let grpc = grpc_listener.map(|listener| {
        tokio::spawn(
            tonic::transport::Server::builder()
                .tcp_nodelay(true)
                .initial_stream_window_size(Some(8 << 20))
                .initial_connection_window_size(Some(32 << 20))
                .add_service(
                    StrataServer::from_arc(service.clone())
                        .max_decoding_message_size(MAX_MESSAGE_BYTES)
                        .max_encoding_message_size(MAX_MESSAGE_BYTES),
                )
                .serve_with_incoming_shutdown(
                    // tonic ignores `Server::tcp_nodelay` for a caller-provided
                    // listener: without this, Nagle + delayed ACK add ~40 ms to
                    // every response.
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                    stopped(stop_rx.clone()),
                ),
        )
    });
    let http = tokio::spawn(crate::http::serve(http_listener, service.clone(), stopped(stop_rx.clone())));
    tracing::info!(
        node_id = config.node_id,
        broker = roles.broker,
        controller = roles.controller,
        listen = %config.listen,
        http = %config.http_listen,
        data_dir = %config.data_dir.display(),
        "strata-server is serving"
    );

    // A drain (`POST /drain`, a Kubernetes preStop hook) runs the controlled
    // shutdown step early: leadership moves away while the process still
    // answers; the stop signal then finds it done.
    tokio::pin!(shutdown);
    let mut drain_requested = service.drain.requested.subscribe();
    let drained_early = tokio::select! {
        _ = &mut shutdown => false,
        _ = drain_requested.wait_for(|r| *r) => true,
    };
    if drained_early {
        tracing::info!("drain requested: handing leadership away before the stop");
    }
    if let Some(heartbeats) = heartbeats {
        // Controlled shutdown: stop heartbeating, then have the controller
        // fence this broker now, so its partitions move (or, without another
        // in-sync replica, show as leaderless) at once instead of after the
        // session timeout. Bounded: a cluster without a quorum does not hold
        // the exit.
        let _ = heartbeat_stop_tx.send(true);
        let _ = heartbeats.await;
        let fence = MetadataCommand::ControlledShutdown { node_id: config.node_id as u32 };
        match tokio::time::timeout(CONTROLLED_SHUTDOWN_TIMEOUT, link.propose(fence)).await {
            Ok(Ok(_)) => tracing::info!("controlled shutdown: leadership released"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "controlled shutdown failed; the session timeout will fence this broker")
            }
            Err(_) => tracing::warn!("controlled shutdown timed out; the session timeout will fence this broker"),
        }
        // Give up leadership locally at once (the metadata follower may not
        // have applied the change yet): waiting acks=all produces answer
        // NOT_LEADER_OR_FOLLOWER and their producers move to the new leaders.
        replicas.apply_metadata(link.metadata());
    }
    service.drain.done.send_replace(true);
    if drained_early {
        shutdown.await;
    }
    tracing::info!("shutting down: closing listeners, flushing logs");
    let _ = stop_tx.send(true);
    let grpc_result = match grpc {
        Some(grpc) => grpc.await.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())),
        None => Ok(()),
    };
    let http_result = http.await;
    let _ = follower.await;
    if let Some(isr) = isr {
        let _ = isr.await;
    }
    if let Some(task) = group_upkeep {
        let _ = task.await;
    }
    if let Some(task) = offsets_compaction {
        let _ = task.await;
    }
    replicas.stop_replication();
    if let Some(task) = metadata_follower {
        let _ = task.await;
    }
    drop(service);
    let closed = match Arc::try_unwrap(replicas) {
        Ok(r) => r.close().map_err(ServerError::from),
        Err(_) => Err(ServerError::Serve {
            what: "shutdown",
            reason: "partitions still in use; logs not closed cleanly".into(),
        }),
    };
    if let ControllerLink::Local(controller) = link {
        controller.shutdown().await;
    }
    let _ = raft_stop_tx.send(true);
    if let Some(raft) = raft {
        let _ = raft.await;
    }
    if let Err(reason) = grpc_result {
        return Err(ServerError::Serve { what: "gRPC", reason });
    }
    if let Ok(Err(e)) = http_result {
        return Err(ServerError::Serve { what: "HTTP", reason: e.to_string() });
    }
    closed?;
    tracing::info!("clean shutdown complete");
    Ok(())
}

/// Registers this broker with the controller, retrying while a leader is
/// being elected.
async fn register(controller: &ControllerLink, config: &ServerConfig) -> Result<(), ServerError> {
    let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
    loop {
        match controller
            .register_broker(config.node_id as u32, config.advertised_address.clone(), config.rack.clone())
            .await
        {
            Ok(_) => return Ok(()),
            Err(e @ (ControllerError::NotLeader { .. } | ControllerError::Timeout)) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(e.into());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// How often the loaded offsets partitions are checked for compaction.
const OFFSETS_COMPACTION_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Compacts the offsets partitions this broker coordinates when due
/// (`group::compaction`), until stopped.
async fn compact_group_offsets(service: Arc<BrokerService>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(OFFSETS_COMPACTION_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        for index in service.groups.loaded() {
            let Ok(h) = service.shard_at(index).await else { continue };
            match service.compact_offsets(&h, service.config.offsets_compaction_min_records).await {
                Ok(Some(done)) => tracing::info!(partition = index, ?done, "compacted consumer-group offsets"),
                Ok(None) => {}
                Err(e) => tracing::warn!(partition = index, error = %e, "compacting consumer-group offsets failed"),
            }
        }
    }
}

/// How often group members' sessions are checked.
const GROUP_EXPIRY_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Evicts consumer-group members whose session ran out, until stopped (a
/// group whose members all died must become empty without a heartbeat).
async fn expire_group_members(service: Arc<BrokerService>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(GROUP_EXPIRY_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => service.groups.expire_members(&service.topic_partition_counts()),
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Applies every metadata change to the hosted partitions until stopped.
async fn follow_metadata(
    mut updates: watch::Receiver<Arc<MetadataImage>>,
    replicas: Arc<ReplicaManager>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            changed = updates.changed() => {
                if changed.is_err() {
                    return;
                }
                let image = updates.borrow_and_update().clone();
                let replicas = replicas.clone();
                let _ = tokio::task::spawn_blocking(move || replicas.apply_metadata(image)).await;
            }
            _ = stop.changed() => return,
        }
    }
}

/// How often the broker tells the active controller it is alive (the
/// controller fences it after `session_timeout`, 3 s, of silence).
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(1000);

/// Heartbeats to the active controller until stopped.
async fn heartbeat(controller: ControllerLink, node_id: u32, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = controller.heartbeat(node_id).await {
                    tracing::warn!(node_id, error = %e, "heartbeat to the controller failed");
                }
            }
            _ = stop.changed() => return,
        }
    }
}
