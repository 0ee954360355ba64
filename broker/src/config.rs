//! The settings the broker core reads while serving: its identity and the
//! defaults it applies. The server resolves them from flags, environment
//! and its TOML file (`strata-server`'s `config`) and hands them over; the
//! core never parses configuration itself.

/// What the broker core needs to know about its node and its defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// This node's id.
    pub node_id: u32,
    /// Whether this node serves partitions to clients (else it is a
    /// controller only; readiness then skips the broker checks).
    pub is_broker: bool,
    /// Partitions of a topic created without a count.
    pub default_partitions: u32,
    /// Replication factor of a topic created without one (0: 3, or the
    /// number of live brokers if fewer).
    pub default_replication_factor: u32,
    /// Partitions of `__consumer_offsets` when this broker creates it.
    pub offsets_topic_partitions: u32,
    /// Records below an offsets partition's high watermark before it is
    /// compacted.
    pub offsets_compaction_min_records: u64,
    /// The controller quorum's voters (`DescribeCluster` lists them).
    pub voters: Vec<Voter>,
    /// Kafka clients' Metadata requests create unknown topics with the
    /// defaults (Kafka's `auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// Replica fetches must come over TLS from the certificate of the
    /// follower they name (a TLS cluster); anything else is refused.
    pub node_certificates: bool,
    /// SASL mechanisms the Kafka listener requires clients to authenticate
    /// with (empty: no SASL).
    pub sasl_mechanisms: Vec<crate::api::kafka::SaslMechanism>,
    /// Every client must authenticate (SASL on): on gRPC with a user and
    /// password or a client certificate the cluster's CA verified.
    pub authenticate_clients: bool,
    /// gRPC calls may carry a user and password (TLS is on, or PLAIN is
    /// allowed in the clear).
    pub grpc_passwords: bool,
    /// ACL enforcement (off: everyone may do everything).
    pub authorizer: crate::authorizer::AuthorizerConfig,
}

/// One controller voter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    /// Node id.
    pub node_id: u64,
    /// Its controller address.
    pub address: String,
}
