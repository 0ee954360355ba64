//! Server configuration: defaults, then a TOML file, then `STRATA_*`
//! environment variables, then flags (each later source wins). Flag and key
//! names are a contract (`docs/interfaces.md`, "Interfaces users touch").

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;
pub use strata_broker::config::Voter;
use strata_storage::LogConfig;

/// `strata-server` command line.
#[derive(Debug, Parser)]
#[command(name = "strata-server", version, about = "Strata broker and controller")]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The server's modes.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// A one-node cluster (controller + broker) on 127.0.0.1 for a laptop.
    Dev(DevArgs),
    /// A node of a cluster, configured by flags, env and a TOML file.
    Run(Box<RunArgs>),
    /// Asks the node serving HTTP on `--http` (this host) to hand its
    /// partition leadership to other brokers before it is stopped (a
    /// Kubernetes `preStop` hook); exits 0 once done.
    Drain(DrainArgs),
}

/// Flags of `strata-server drain`.
#[derive(Debug, Clone, Args)]
pub struct DrainArgs {
    /// The node's HTTP address (loopback: the endpoint refuses other hosts).
    #[arg(long, default_value = "127.0.0.1:9702")]
    pub http: SocketAddr,
    /// Longest wait for the controller to move leadership away.
    #[arg(long, default_value_t = 45)]
    pub timeout_secs: u64,
    /// With TLS on the node (the same flags and env as the server's, so a
    /// pod's preStop hook needs nothing more): its certificate is presented
    /// as the client's and the node verified by the name in it.
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// The node's TLS files, as `run` and `drain` take them.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// PEM certificate chain of this node: with `--tls-key-file`, every
    /// listener (client gRPC, Kafka, HTTP, controller) serves TLS and this
    /// node presents it to the others (mutual TLS). Reloaded when it changes.
    #[arg(long, env = "STRATA_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `--tls-cert-file`.
    #[arg(long, env = "STRATA_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA bundle: the certificates of other nodes and of clients that
    /// present one are verified against it (unset: the public web roots).
    #[arg(long, env = "STRATA_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,
}

impl TlsArgs {
    /// The files, each flag over its TOML key.
    pub fn files(&self, file: &FileConfig) -> strata_tls::TlsFiles {
        strata_tls::TlsFiles {
            cert: self.tls_cert_file.clone().or(file.tls_cert_file.clone()),
            key: self.tls_key_file.clone().or(file.tls_key_file.clone()),
            ca: self.tls_ca_file.clone().or(file.tls_ca_file.clone()),
        }
    }
}

/// Parses a node id: a number ≥ 1, or a StatefulSet pod name whose trailing
/// `-N` is the id (`strata-2` → 2), so a pod can pass its own name.
pub fn parse_node_id(s: &str) -> Result<u64, String> {
    let digits = s.rsplit_once('-').map_or(s, |(_, n)| n);
    let id: u64 = digits
        .parse()
        .map_err(|_| format!("'{s}' is neither a node id nor a pod name ending in -N (e.g. strata-2)"))?;
    if id == 0 {
        return Err(format!(
            "'{s}' gives node id 0, which is reserved; number nodes from 1 (a StatefulSet: spec.ordinals.start: 1)"
        ));
    }
    Ok(id)
}

/// Flags of `strata-server dev`.
#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    /// Data directory.
    #[arg(long, env = "STRATA_DATA_DIR", default_value = "./strata-data")]
    pub data_dir: PathBuf,
    /// Client gRPC address.
    #[arg(long, env = "STRATA_LISTEN", default_value = "127.0.0.1:9700")]
    pub listen: SocketAddr,
    /// Controller Raft address.
    #[arg(long, env = "STRATA_CONTROLLER_LISTEN", default_value = "127.0.0.1:9701")]
    pub controller_listen: SocketAddr,
    /// HTTP address (/healthz, /readyz, /metrics).
    #[arg(long, env = "STRATA_HTTP_LISTEN", default_value = "127.0.0.1:9702")]
    pub http_listen: SocketAddr,
    /// Kafka protocol address (for Kafka clients and tools).
    #[arg(long, env = "STRATA_KAFKA_LISTEN", default_value = "127.0.0.1:9092")]
    pub kafka_listen: SocketAddr,
    /// TOML config file (broker defaults such as `[log]`).
    #[arg(long, env = "STRATA_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Flags of `strata-server run`; each is also `STRATA_<FLAG>` and a TOML key.
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// This node's id (≥ 1), or a pod name ending in it (`strata-2`).
    #[arg(long, env = "STRATA_NODE_ID", value_parser = parse_node_id)]
    pub node_id: Option<u64>,
    /// Comma-separated roles: broker, controller.
    #[arg(long, env = "STRATA_ROLES")]
    pub roles: Option<String>,
    /// Data directory.
    #[arg(long, env = "STRATA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Client gRPC address.
    #[arg(long, env = "STRATA_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Controller Raft address.
    #[arg(long, env = "STRATA_CONTROLLER_LISTEN")]
    pub controller_listen: Option<SocketAddr>,
    /// HTTP address (/healthz, /readyz, /metrics).
    #[arg(long, env = "STRATA_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// Kafka protocol address (unset: no Kafka listener).
    #[arg(long, env = "STRATA_KAFKA_LISTEN")]
    pub kafka_listen: Option<SocketAddr>,
    /// Address Kafka clients are told to use for this broker (default: the
    /// Kafka listen address).
    #[arg(long, env = "STRATA_KAFKA_ADVERTISED_ADDRESS")]
    pub kafka_advertised_address: Option<String>,
    /// Kafka clients' Metadata requests create unknown topics with the
    /// broker defaults (Kafka's auto.create.topics.enable; default true).
    #[arg(long, env = "STRATA_AUTO_CREATE_TOPICS_ENABLE")]
    pub auto_create_topics_enable: Option<bool>,
    /// Controller voters: `id@host:port,…`.
    #[arg(long, env = "STRATA_CONTROLLER_VOTERS")]
    pub controller_voters: Option<String>,
    /// This controller joins a running quorum although `--controller-voters`
    /// does not name it: it waits until `strata cluster add-voter` adds it.
    #[arg(long, env = "STRATA_CONTROLLER_JOIN")]
    pub controller_join: Option<bool>,
    /// Address clients are told to use for this broker.
    #[arg(long, env = "STRATA_ADVERTISED_ADDRESS")]
    pub advertised_address: Option<String>,
    /// Rack (failure domain) of this broker.
    #[arg(long, env = "STRATA_RACK")]
    pub rack: Option<String>,
    /// A follower that has not caught up with its leader for this long
    /// leaves the ISR (Kafka's replica.lag.time.max.ms).
    #[arg(long, env = "STRATA_REPLICA_LAG_TIME_MAX_MS")]
    pub replica_lag_time_max_ms: Option<u64>,
    /// Partitions of the internal offsets topic `__consumer_offsets`
    /// (Kafka's offsets.topic.num.partitions), used when it is created.
    #[arg(long, env = "STRATA_OFFSETS_TOPIC_PARTITIONS")]
    pub offsets_topic_partitions: Option<u32>,
    /// How often retention deletes expired segments (Kafka's
    /// log.retention.check.interval.ms; default 5 min).
    #[arg(long, env = "STRATA_LOG_RETENTION_CHECK_INTERVAL_MS")]
    pub log_retention_check_interval_ms: Option<u64>,
    /// How often the log cleaner looks for compacted topics to clean
    /// (Kafka's log.cleaner.backoff.ms; default 15 s).
    #[arg(long, env = "STRATA_LOG_CLEANER_CHECK_INTERVAL_MS")]
    pub log_cleaner_check_interval_ms: Option<u64>,
    /// Records an offsets-topic partition holds before its coordinator
    /// compacts it by key (default 10000; it also waits until at most half
    /// are live keys).
    #[arg(long, env = "STRATA_OFFSETS_COMPACTION_MIN_RECORDS")]
    pub offsets_compaction_min_records: Option<u64>,
    /// TLS on every listener and node link.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// SASL mechanisms Kafka clients must authenticate with, comma-separated
    /// (SCRAM-SHA-256, SCRAM-SHA-512, PLAIN); unset: no SASL.
    #[arg(long, env = "STRATA_SASL_MECHANISMS")]
    pub sasl_mechanisms: Option<String>,
    /// Offer PLAIN (a password in the clear) on a Kafka listener without
    /// TLS; refused otherwise.
    #[arg(long, env = "STRATA_SASL_ALLOW_PLAIN_WITHOUT_TLS")]
    pub sasl_allow_plain_without_tls: Option<bool>,
    /// Enforce ACLs (`on`|`off`, default off): with it on, whatever no ACL
    /// allows is denied, except to super users and nodes.
    #[arg(long, env = "STRATA_AUTHORIZER")]
    pub authorizer: Option<String>,
    /// Principals allowed everything, comma-separated (`User:admin,…`).
    #[arg(long, env = "STRATA_SUPER_USERS")]
    pub super_users: Option<String>,
    /// TOML config file.
    #[arg(long, env = "STRATA_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The TOML file: the same keys as the flags (snake_case), plus broker
/// defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// `--node-id`.
    pub node_id: Option<u64>,
    /// `--roles`.
    pub roles: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--controller-listen`.
    pub controller_listen: Option<SocketAddr>,
    /// `--http-listen`.
    pub http_listen: Option<SocketAddr>,
    /// `--kafka-listen`.
    pub kafka_listen: Option<SocketAddr>,
    /// `--kafka-advertised-address`.
    pub kafka_advertised_address: Option<String>,
    /// `--auto-create-topics-enable`.
    pub auto_create_topics_enable: Option<bool>,
    /// `--controller-voters`.
    pub controller_voters: Option<String>,
    /// `--controller-join`.
    pub controller_join: Option<bool>,
    /// `--advertised-address`.
    pub advertised_address: Option<String>,
    /// `--rack`.
    pub rack: Option<String>,
    /// `--tls-cert-file`.
    pub tls_cert_file: Option<PathBuf>,
    /// `--tls-key-file`.
    pub tls_key_file: Option<PathBuf>,
    /// `--tls-ca-file`.
    pub tls_ca_file: Option<PathBuf>,
    /// `--sasl-mechanisms`.
    pub sasl_mechanisms: Option<String>,
    /// `--sasl-allow-plain-without-tls`.
    pub sasl_allow_plain_without_tls: Option<bool>,
    /// `--authorizer`.
    pub authorizer: Option<String>,
    /// `--super-users`.
    pub super_users: Option<String>,
    /// Partitions of a topic created without a count.
    pub default_partitions: Option<u32>,
    /// Replication factor of a topic created without one (unset: 3, or
    /// the number of live brokers if fewer).
    pub default_replication_factor: Option<u32>,
    /// See the flag.
    pub replica_lag_time_max_ms: Option<u64>,
    /// See the flag.
    pub offsets_topic_partitions: Option<u32>,
    /// See the flag.
    pub log_retention_check_interval_ms: Option<u64>,
    /// See the flag.
    pub log_cleaner_check_interval_ms: Option<u64>,
    /// See the flag.
    pub offsets_compaction_min_records: Option<u64>,
    /// Defaults of every partition log (topic configs override them).
    pub log: Option<LogConfig>,
}

/// Why the configuration is unusable; names the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("config file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for these settings.
    #[error("config file {}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser refused.
        source: Box<toml::de::Error>,
    },
    /// The `[log]` section holds an unusable setting.
    #[error("invalid setting [log]")]
    Log {
        /// What is wrong.
        source: strata_storage::StorageError,
    },
    /// A setting is missing or invalid.
    #[error("invalid setting {name}: {reason}")]
    Invalid {
        /// The setting (flag name).
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Roles a node plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Serves partitions to clients.
    pub broker: bool,
    /// Votes in the controller quorum.
    pub controller: bool,
}

/// The resolved configuration a server runs with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// This node's id (≥ 1; raft-rs reserves 0).
    pub node_id: u64,
    /// Broker, controller voter, or both.
    pub roles: Roles,
    /// Where logs and the controller's state live.
    pub data_dir: PathBuf,
    /// The client gRPC listener.
    pub listen: SocketAddr,
    /// The controller quorum's listener (voters only).
    pub controller_listen: SocketAddr,
    /// Health, readiness and metrics.
    pub http_listen: SocketAddr,
    /// The Kafka protocol listener and the `host:port` Kafka clients are
    /// told to reach this broker at (`None`: no Kafka listener).
    pub kafka: Option<KafkaListenerConfig>,
    /// The controller quorum's voters.
    pub voters: Vec<Voter>,
    /// The `host:port` clients are told to reach this broker at.
    pub advertised_address: String,
    /// The rack replicas are spread across, if any.
    pub rack: Option<String>,
    /// Partitions of a topic created without a count.
    pub default_partitions: u32,
    /// 0: 3, or the number of live brokers if fewer.
    pub default_replication_factor: u32,
    /// Kafka Metadata requests create unknown topics.
    pub auto_create_topics: bool,
    /// A follower not caught up for this long leaves the ISR.
    pub replica_lag_time_max: std::time::Duration,
    /// Partitions of `__consumer_offsets` when this broker creates it.
    pub offsets_topic_partitions: u32,
    /// How often retention runs over the logs.
    pub log_retention_check_interval: std::time::Duration,
    /// How often the cleaner looks for compacted logs to clean.
    pub log_cleaner_check_interval: std::time::Duration,
    /// Records below an offsets partition's high watermark before it is
    /// compacted.
    pub offsets_compaction_min_records: u64,
    /// Storage defaults for every log.
    pub log: LogConfig,
    /// TLS on every listener and node link (`None`: plaintext).
    pub tls: Option<strata_tls::TlsFiles>,
    /// SASL mechanisms the Kafka listener requires (empty: none).
    pub sasl_mechanisms: Vec<strata_broker::api::kafka::SaslMechanism>,
    /// ACL enforcement and super users.
    pub authorizer: strata_broker::authorizer::AuthorizerConfig,
    /// A controller not among the configured voters joins the running
    /// quorum (`--controller-join`).
    pub controller_join: bool,
}

/// Where the Kafka protocol listener binds and what it advertises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaListenerConfig {
    /// The address to bind.
    pub listen: SocketAddr,
    /// The `host:port` given to Kafka clients in metadata answers.
    pub advertised_address: String,
}

/// Records an offsets partition holds before compaction, by default.
pub const DEFAULT_OFFSETS_COMPACTION_MIN_RECORDS: u64 = 10_000;

/// Kafka's log.retention.check.interval.ms default.
pub const DEFAULT_LOG_RETENTION_CHECK_INTERVAL_MS: u64 = 300_000;

/// Default pause between the log cleaner's looks for work (Kafka's 15 s).
pub const DEFAULT_LOG_CLEANER_CHECK_INTERVAL_MS: u64 = 15_000;

/// Kafka's default offsets.topic.num.partitions is 50; 16 keeps a small
/// cluster's partition count modest.
const DEFAULT_OFFSETS_TOPIC_PARTITIONS: u32 = 16;

/// Kafka's default is 30 s; a shorter window restores acks=all throughput
/// sooner after a follower stalls.
const DEFAULT_REPLICA_LAG_TIME_MAX_MS: u64 = 10_000;

impl ServerConfig {
    /// `strata-server dev`: node 1, both roles, voters = itself.
    pub fn dev(args: &DevArgs) -> Result<Self, ConfigError> {
        let file = load_file(args.config.as_deref())?;
        Ok(ServerConfig {
            node_id: 1,
            roles: Roles { broker: true, controller: true },
            data_dir: args.data_dir.clone(),
            listen: args.listen,
            controller_listen: args.controller_listen,
            http_listen: args.http_listen,
            kafka: Some(KafkaListenerConfig {
                listen: args.kafka_listen,
                advertised_address: args.kafka_listen.to_string(),
            }),
            voters: vec![Voter { node_id: 1, address: args.controller_listen.to_string() }],
            advertised_address: args.listen.to_string(),
            rack: file.rack.clone(),
            default_partitions: file.default_partitions.unwrap_or(1),
            default_replication_factor: file.default_replication_factor.unwrap_or(0),
            auto_create_topics: file.auto_create_topics_enable.unwrap_or(true),
            replica_lag_time_max: std::time::Duration::from_millis(
                file.replica_lag_time_max_ms.unwrap_or(DEFAULT_REPLICA_LAG_TIME_MAX_MS),
            ),
            offsets_topic_partitions: file.offsets_topic_partitions.unwrap_or(DEFAULT_OFFSETS_TOPIC_PARTITIONS),
            log_retention_check_interval: std::time::Duration::from_millis(
                file.log_retention_check_interval_ms.unwrap_or(DEFAULT_LOG_RETENTION_CHECK_INTERVAL_MS),
            ),
            log_cleaner_check_interval: std::time::Duration::from_millis(
                file.log_cleaner_check_interval_ms.unwrap_or(DEFAULT_LOG_CLEANER_CHECK_INTERVAL_MS),
            ),
            offsets_compaction_min_records: file
                .offsets_compaction_min_records
                .unwrap_or(DEFAULT_OFFSETS_COMPACTION_MIN_RECORDS),
            log: file.log.clone().unwrap_or_default(),
            tls: None,
            sasl_mechanisms: Vec::new(),
            authorizer: strata_broker::authorizer::AuthorizerConfig::default(),
            controller_join: false,
        })
    }

    /// `strata-server run`: flags/env over the TOML file over defaults.
    pub fn run(args: &RunArgs) -> Result<Self, ConfigError> {
        let file = load_file(args.config.as_deref())?;
        let node_id = args
            .node_id
            .or(file.node_id)
            .ok_or(ConfigError::Invalid { name: "--node-id", reason: "required (or STRATA_NODE_ID)".into() })?;
        let roles = parse_roles(args.roles.as_deref().or(file.roles.as_deref()).unwrap_or("broker,controller"))?;
        let listen = args.listen.or(file.listen).unwrap_or_else(|| ([127, 0, 0, 1], 9700).into());
        let controller_listen =
            args.controller_listen.or(file.controller_listen).unwrap_or_else(|| ([127, 0, 0, 1], 9701).into());
        let http_listen = args.http_listen.or(file.http_listen).unwrap_or_else(|| ([127, 0, 0, 1], 9702).into());
        let voters = match args.controller_voters.as_deref().or(file.controller_voters.as_deref()) {
            Some(v) => parse_voters(v)?,
            None => vec![Voter { node_id, address: controller_listen.to_string() }],
        };
        Ok(ServerConfig {
            node_id,
            roles,
            data_dir: args.data_dir.clone().or(file.data_dir.clone()).unwrap_or_else(|| PathBuf::from("./strata-data")),
            listen,
            controller_listen,
            http_listen,
            kafka: args.kafka_listen.or(file.kafka_listen).map(|listen| KafkaListenerConfig {
                listen,
                advertised_address: args
                    .kafka_advertised_address
                    .clone()
                    .or(file.kafka_advertised_address.clone())
                    .unwrap_or_else(|| listen.to_string()),
            }),
            voters,
            advertised_address: args
                .advertised_address
                .clone()
                .or(file.advertised_address.clone())
                .unwrap_or_else(|| listen.to_string()),
            // An empty value (a pod label that is not set) means no rack.
            rack: args.rack.clone().or(file.rack.clone()).filter(|r| !r.trim().is_empty()),
            default_partitions: file.default_partitions.unwrap_or(1),
            default_replication_factor: file.default_replication_factor.unwrap_or(0),
            auto_create_topics: args.auto_create_topics_enable.or(file.auto_create_topics_enable).unwrap_or(true),
            replica_lag_time_max: std::time::Duration::from_millis(
                args.replica_lag_time_max_ms
                    .or(file.replica_lag_time_max_ms)
                    .unwrap_or(DEFAULT_REPLICA_LAG_TIME_MAX_MS),
            ),
            offsets_topic_partitions: args
                .offsets_topic_partitions
                .or(file.offsets_topic_partitions)
                .unwrap_or(DEFAULT_OFFSETS_TOPIC_PARTITIONS),
            log_retention_check_interval: std::time::Duration::from_millis(
                args.log_retention_check_interval_ms
                    .or(file.log_retention_check_interval_ms)
                    .unwrap_or(DEFAULT_LOG_RETENTION_CHECK_INTERVAL_MS),
            ),
            log_cleaner_check_interval: std::time::Duration::from_millis(
                args.log_cleaner_check_interval_ms
                    .or(file.log_cleaner_check_interval_ms)
                    .unwrap_or(DEFAULT_LOG_CLEANER_CHECK_INTERVAL_MS),
            ),
            offsets_compaction_min_records: args
                .offsets_compaction_min_records
                .or(file.offsets_compaction_min_records)
                .unwrap_or(DEFAULT_OFFSETS_COMPACTION_MIN_RECORDS),
            log: file.log.clone().unwrap_or_default(),
            tls: {
                let files = args.tls.files(&file);
                (files != strata_tls::TlsFiles::default()).then_some(files)
            },
            sasl_mechanisms: parse_sasl_mechanisms(
                args.sasl_mechanisms.as_deref().or(file.sasl_mechanisms.as_deref()),
                args.sasl_allow_plain_without_tls.or(file.sasl_allow_plain_without_tls).unwrap_or(false),
                args.tls.files(&file).cert.is_some(),
            )?,
            authorizer: parse_authorizer(
                args.authorizer.as_deref().or(file.authorizer.as_deref()),
                args.super_users.as_deref().or(file.super_users.as_deref()),
            )?,
            controller_join: args.controller_join.or(file.controller_join).unwrap_or(false),
        })
    }

    /// What the broker core reads while serving (after [`Self::validate`]).
    pub fn broker_config(&self) -> Result<strata_broker::BrokerConfig, ConfigError> {
        Ok(strata_broker::BrokerConfig {
            node_id: self.broker_id()?,
            is_broker: self.roles.broker,
            default_partitions: self.default_partitions,
            default_replication_factor: self.default_replication_factor,
            auto_create_topics: self.auto_create_topics,
            node_certificates: self.tls.is_some(),
            sasl_mechanisms: self.sasl_mechanisms.clone(),
            authenticate_clients: !self.sasl_mechanisms.is_empty(),
            grpc_passwords: !self.sasl_mechanisms.is_empty()
                && (self.tls.is_some()
                    || self.sasl_mechanisms.contains(&strata_broker::api::kafka::SaslMechanism::Plain)),
            authorizer: self.authorizer.clone(),
            offsets_topic_partitions: self.offsets_topic_partitions,
            offsets_compaction_min_records: self.offsets_compaction_min_records,
            voters: self.voters.clone(),
        })
    }

    /// The node id as brokers and partitions know it (32 bits; the
    /// controller's Raft ids are 64).
    pub fn broker_id(&self) -> Result<u32, ConfigError> {
        u32::try_from(self.node_id).map_err(|_| ConfigError::Invalid {
            name: "--node-id",
            reason: format!("{} is too large; node ids go up to {}", self.node_id, u32::MAX),
        })
    }

    /// Checks what this build can run.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id == 0 {
            return Err(ConfigError::Invalid {
                name: "--node-id",
                reason: "0 is reserved; number nodes from 1".into(),
            });
        }
        self.broker_id()?;
        self.log.validate().map_err(|source| ConfigError::Log { source })?;
        if self.replica_lag_time_max.is_zero() {
            return Err(ConfigError::Invalid { name: "--replica-lag-time-max-ms", reason: "must be positive".into() });
        }
        if self.log_cleaner_check_interval.is_zero() {
            return Err(ConfigError::Invalid {
                name: "--log-cleaner-check-interval-ms",
                reason: "must be positive".into(),
            });
        }
        if self.log_retention_check_interval.is_zero() {
            return Err(ConfigError::Invalid {
                name: "--log-retention-check-interval-ms",
                reason: "must be positive".into(),
            });
        }
        if self.offsets_topic_partitions == 0 {
            return Err(ConfigError::Invalid { name: "--offsets-topic-partitions", reason: "must be positive".into() });
        }
        if self.default_partitions == 0 {
            return Err(ConfigError::Invalid { name: "default_partitions", reason: "must be positive".into() });
        }
        if let Some(tls) = &self.tls {
            if tls.cert.is_none() || tls.key.is_none() {
                return Err(ConfigError::Invalid {
                    name: "--tls-cert-file",
                    reason: "TLS needs both --tls-cert-file and --tls-key-file (--tls-ca-file alone does nothing)"
                        .into(),
                });
            }
        }
        let voter = self.voters.iter().any(|v| v.node_id == self.node_id);
        if self.roles.controller && !voter && !self.controller_join {
            return Err(ConfigError::Invalid {
                name: "--controller-voters",
                reason: format!(
                    "node {} has the controller role but is not among the voters (to join a running quorum, \
                     add --controller-join and then run strata cluster add-voter)",
                    self.node_id
                ),
            });
        }
        if !self.roles.controller && voter {
            return Err(ConfigError::Invalid {
                name: "--roles",
                reason: format!(
                    "node {} is among the controller voters but lacks the controller role (use --roles broker,controller or controller)",
                    self.node_id
                ),
            });
        }
        Ok(())
    }
}

fn load_file(path: Option<&Path>) -> Result<FileConfig, ConfigError> {
    let Some(path) = path else { return Ok(FileConfig::default()) };
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.to_path_buf(), source: Box::new(e) })
}

/// Parses `broker,controller`.
pub fn parse_roles(s: &str) -> Result<Roles, ConfigError> {
    let mut roles = Roles { broker: false, controller: false };
    for r in s.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        match r {
            "broker" => roles.broker = true,
            "controller" => roles.controller = true,
            other => {
                return Err(ConfigError::Invalid {
                    name: "--roles",
                    reason: format!("unknown role '{other}' (broker, controller)"),
                })
            }
        }
    }
    if !roles.broker && !roles.controller {
        return Err(ConfigError::Invalid { name: "--roles", reason: "at least one role".into() });
    }
    Ok(roles)
}

/// Parses `1@host:port,2@host:port`.
pub fn parse_voters(s: &str) -> Result<Vec<Voter>, ConfigError> {
    let bad = |reason: String| ConfigError::Invalid { name: "--controller-voters", reason };
    let mut voters = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, address) = part.split_once('@').ok_or_else(|| bad(format!("'{part}' is not id@host:port")))?;
        let node_id: u64 = id.parse().map_err(|_| bad(format!("'{id}' is not a node id")))?;
        if node_id == 0 {
            return Err(bad(format!("'{part}': node id 0 is reserved; number nodes from 1")));
        }
        if !address.contains(':') {
            return Err(bad(format!("'{address}' has no port")));
        }
        if voters.iter().any(|v: &Voter| v.node_id == node_id) {
            return Err(bad(format!("node {node_id} is listed twice")));
        }
        voters.push(Voter { node_id, address: address.to_string() });
    }
    if voters.is_empty() {
        return Err(bad("empty".into()));
    }
    Ok(voters)
}

/// `--authorizer on|off` and `--super-users User:a,User:b`.
fn parse_authorizer(
    enabled: Option<&str>,
    super_users: Option<&str>,
) -> Result<strata_broker::authorizer::AuthorizerConfig, ConfigError> {
    let enabled = match enabled.map(str::trim) {
        None | Some("off" | "false") => false,
        Some("on" | "true") => true,
        Some(other) => {
            return Err(ConfigError::Invalid { name: "--authorizer", reason: format!("{other:?} is not on or off") })
        }
    };
    let mut users = Vec::new();
    for p in super_users.unwrap_or_default().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if p.strip_prefix("User:").is_none_or(str::is_empty) {
            return Err(ConfigError::Invalid {
                name: "--super-users",
                reason: format!("{p:?} is not a principal User:NAME"),
            });
        }
        users.push(p.to_string());
    }
    Ok(strata_broker::authorizer::AuthorizerConfig { enabled, super_users: users })
}

/// `--sasl-mechanisms`: known names, and PLAIN only with TLS unless allowed.
fn parse_sasl_mechanisms(
    value: Option<&str>,
    allow_plain_without_tls: bool,
    tls: bool,
) -> Result<Vec<strata_broker::api::kafka::SaslMechanism>, ConfigError> {
    use strata_broker::api::kafka::SaslMechanism;
    let mut out = Vec::new();
    for name in value.unwrap_or_default().split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let m = SaslMechanism::parse(name).ok_or_else(|| ConfigError::Invalid {
            name: "--sasl-mechanisms",
            reason: format!("unknown mechanism {name:?} (SCRAM-SHA-256, SCRAM-SHA-512, PLAIN)"),
        })?;
        if m == SaslMechanism::Plain && !tls && !allow_plain_without_tls {
            return Err(ConfigError::Invalid {
                name: "--sasl-mechanisms",
                reason: "PLAIN sends passwords in the clear: enable TLS, or set --sasl-allow-plain-without-tls true"
                    .into(),
            });
        }
        if !out.contains(&m) {
            out.push(m);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voters_and_roles_parse_or_name_the_problem() {
        let v = parse_voters("1@a:9701, 2@b:9701").unwrap();
        assert_eq!(v[1], Voter { node_id: 2, address: "b:9701".into() });
        for bad in ["", "x@a:1", "1@a", "1a:1", "1@a:1,1@b:1"] {
            assert!(parse_voters(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_roles("broker,controller").unwrap(), Roles { broker: true, controller: true });
        assert!(parse_roles("broker,chef").is_err());
        assert!(parse_roles("").is_err());
        assert_eq!(parse_roles("broker").unwrap(), Roles { broker: true, controller: false });
        assert_eq!(parse_roles("controller").unwrap(), Roles { broker: false, controller: true });
    }

    #[test]
    fn authorizer_flags_parse_or_name_the_problem() {
        let off = parse_authorizer(None, None).unwrap();
        assert!(!off.enabled && off.super_users.is_empty(), "off by default");
        let on = parse_authorizer(Some("on"), Some("User:admin, User:ops")).unwrap();
        assert!(on.enabled);
        assert_eq!(on.super_users, vec!["User:admin".to_string(), "User:ops".to_string()]);
        assert!(parse_authorizer(Some("yes please"), None).is_err());
        for bad in ["admin", "User:", "Group:x"] {
            let e = parse_authorizer(Some("on"), Some(bad)).unwrap_err().to_string();
            assert!(e.contains("--super-users"), "{bad}: {e}");
        }
    }

    #[test]
    fn roles_must_agree_with_the_voter_list() {
        let voters = Some("1@127.0.0.1:9701".to_string());
        let run = |id, roles: &str| {
            let args = RunArgs {
                node_id: Some(id),
                roles: Some(roles.into()),
                controller_voters: voters.clone(),
                ..RunArgs::default()
            };
            ServerConfig::run(&args).and_then(|c| c.validate())
        };
        assert!(run(1, "broker,controller").is_ok());
        assert!(run(1, "controller").is_ok());
        assert!(run(2, "broker").is_ok(), "a broker-only node outside the voters");
        assert!(run(1, "broker").unwrap_err().to_string().contains("lacks the controller role"));
        assert!(run(2, "controller").unwrap_err().to_string().contains("not among the voters"));
        let joining = RunArgs { controller_join: Some(true), ..RunArgs::default() };
        let joining = RunArgs {
            node_id: Some(2),
            roles: Some("controller".into()),
            controller_voters: Some("1@127.0.0.1:9701".into()),
            ..joining
        };
        assert!(ServerConfig::run(&joining).and_then(|c| c.validate()).is_ok(), "--controller-join");
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strata.toml");
        std::fs::write(&path, "node_id = 3\nrack = \"r1\"\ndefault_partitions = 6\n[log]\nsegment_bytes = 65536\n")
            .unwrap();
        let args = RunArgs { node_id: Some(7), config: Some(path.clone()), ..RunArgs::default() };
        let c = ServerConfig::run(&args).unwrap();
        assert_eq!(c.node_id, 7);
        assert_eq!(c.rack.as_deref(), Some("r1"));
        assert_eq!(c.default_partitions, 6);
        assert_eq!(c.log.segment_bytes, 65536);
        assert_eq!(c.voters, vec![Voter { node_id: 7, address: "127.0.0.1:9701".into() }]);
        assert_eq!(c.offsets_topic_partitions, 16);
        std::fs::write(&path, "offsets_topic_partitions = 3\n").unwrap();
        assert_eq!(ServerConfig::run(&args).unwrap().offsets_topic_partitions, 3);
        let flag = RunArgs { offsets_topic_partitions: Some(5), ..args.clone() };
        assert_eq!(ServerConfig::run(&flag).unwrap().offsets_topic_partitions, 5);
        let zero = RunArgs { offsets_topic_partitions: Some(0), ..args.clone() };
        assert!(ServerConfig::run(&zero).unwrap().validate().is_err());
        std::fs::write(&path, "nod_id = 3\n").unwrap();
        // What the user sees is the chain: the file once, then the parser's
        // complaint naming the key.
        let err = strata_record::ErrorChain(&ServerConfig::run(&args).unwrap_err()).to_string();
        assert!(err.contains("nod_id"), "{err}");
        assert_eq!(err.matches(&*path.display().to_string()).count(), 1, "{err}");
    }

    #[test]
    fn node_ids_beyond_32_bits_are_refused_not_truncated() {
        let args = RunArgs { node_id: Some(u64::from(u32::MAX) + 2), ..RunArgs::default() };
        let c = ServerConfig::run(&args).unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("--node-id") && err.contains("too large"), "{err}");
        assert!(c.broker_config().is_err());
    }

    #[test]
    fn node_ids_come_from_numbers_or_pod_names_and_zero_is_refused() {
        assert_eq!(parse_node_id("3"), Ok(3));
        assert_eq!(parse_node_id("strata-2"), Ok(2));
        assert_eq!(parse_node_id("my-strata-cluster-12"), Ok(12));
        assert!(parse_node_id("strata-0").unwrap_err().contains("ordinals.start: 1"));
        assert!(parse_node_id("0").is_err());
        assert!(parse_node_id("strata").unwrap_err().contains("pod name ending in -N"));
        assert!(parse_node_id("").is_err());
        let cli = Cli::try_parse_from(["strata-server", "run", "--node-id", "strata-3"]).unwrap();
        let Command::Run(args) = cli.command else { panic!("run") };
        assert_eq!(args.node_id, Some(3));
        assert!(parse_voters("0@a:1").is_err());
        let cli = Cli::try_parse_from(["strata-server", "drain", "--http", "127.0.0.1:9702", "--timeout-secs", "5"]);
        assert!(matches!(cli.unwrap().command, Command::Drain(DrainArgs { timeout_secs: 5, .. })));
    }

    /// Every `run` setting is a named flag: a field that lost its `#[arg]`
    /// would silently become a positional argument (it happened to
    /// `--controller-voters`, and a three-voter node then formed a quorum
    /// of one).
    #[test]
    fn every_run_flag_parses() {
        let cli = Cli::try_parse_from([
            "strata-server",
            "run",
            "--node-id",
            "2",
            "--roles",
            "broker,controller",
            "--data-dir",
            "/d",
            "--listen",
            "127.0.0.1:1",
            "--controller-listen",
            "127.0.0.1:2",
            "--http-listen",
            "127.0.0.1:3",
            "--kafka-listen",
            "127.0.0.1:4",
            "--kafka-advertised-address",
            "k:4",
            "--auto-create-topics-enable",
            "false",
            "--controller-voters",
            "1@h:1,2@h:2,3@h:3",
            "--advertised-address",
            "a:1",
            "--rack",
            "r",
            "--replica-lag-time-max-ms",
            "5000",
            "--offsets-topic-partitions",
            "3",
            "--log-retention-check-interval-ms",
            "1000",
            "--offsets-compaction-min-records",
            "10",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else { panic!("run") };
        let c = ServerConfig::run(&args).unwrap();
        assert_eq!(c.voters.len(), 3);
        assert_eq!(
            c.kafka,
            Some(KafkaListenerConfig { listen: ([127, 0, 0, 1], 4).into(), advertised_address: "k:4".into() })
        );
        assert!(!c.auto_create_topics);
        assert_eq!((c.advertised_address.as_str(), c.rack.as_deref()), ("a:1", Some("r")));
        assert_eq!(c.offsets_topic_partitions, 3);
        // Nothing is positional.
        assert!(Cli::try_parse_from(["strata-server", "run", "--node-id", "1", "stray"]).is_err());
    }

    #[test]
    fn an_empty_rack_is_no_rack() {
        let args = RunArgs { node_id: Some(1), rack: Some(String::new()), ..RunArgs::default() };
        assert_eq!(ServerConfig::run(&args).unwrap().rack, None);
    }
}
