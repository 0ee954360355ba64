//! The client's view of the cluster: brokers (id → address) from
//! `DescribeCluster` and, for the topics in use, each partition's leader from
//! `DescribeTopics`. Refreshed on demand (a miss, NOT_LEADER_OR_FOLLOWER,
//! UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, a lost connection);
//! concurrent refresh requests share one round trip.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use strata_protocol::v1::{DescribeClusterRequest, DescribeTopicsRequest, ErrorCode};

use crate::connection::{call, Client, Connections};
use crate::error::ClientError;

/// How long calls that need a partition's leader keep retrying through a
/// leader failover (the controller fences a dead leader after its 3 s
/// session and elects another) before they give up.
pub(crate) const DEFAULT_RETRY_TIMEOUT: Duration = Duration::from_secs(10);

/// The error a call reports after retrying `partitions` for `waited`:
/// the last error, made to name the partitions when it does not already.
pub(crate) fn gave_up(last: ClientError, partitions: &[String], waited: Duration) -> ClientError {
    let text = last.to_string();
    if partitions.iter().any(|p| text.contains(p.as_str())) {
        return last;
    }
    let shown = match partitions {
        [one] => format!("partition {one}"),
        [first, ..] => format!("partitions {first} and {} more", partitions.len() - 1),
        [] => "the request".to_string(),
    };
    match last {
        ClientError::Server { code, message } => ClientError::Server { code, message: format!("{shown}: {message}") },
        other => ClientError::Timeout(format!(
            "{shown}: no leader answered within {} s of retries (last error: {other})",
            waited.as_secs()
        )),
    }
}

/// What the client knows of one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicMetadata {
    /// Leader broker id per partition (index = partition), `None` without a
    /// leader or when the leader's address is unknown.
    pub leaders: Vec<Option<u32>>,
    /// Partitions that have a reachable leader.
    pub available: Vec<u32>,
    /// The topic's `max.message.bytes`, when set on the topic: batches are
    /// kept below it so small records are never rejected together.
    pub max_batch_bytes: Option<usize>,
}

impl TopicMetadata {
    pub(crate) fn partition_count(&self) -> u32 {
        self.leaders.len() as u32
    }
}

/// The cached cluster view.
#[derive(Debug, Default)]
pub(crate) struct Metadata {
    brokers: HashMap<u32, String>,
    topics: HashMap<String, Arc<TopicMetadata>>,
    /// Per-topic errors from the last `DescribeTopics` (unknown topic...).
    errors: HashMap<String, ClientError>,
}

/// Connections plus metadata: what producers, consumers and admins share.
#[derive(Debug)]
pub(crate) struct Cluster {
    bootstrap: Vec<String>,
    connections: Connections,
    pub(crate) request_timeout: Duration,
    /// How long leader-bound calls retry through a failover.
    pub(crate) retry_timeout: Duration,
    metadata: RwLock<Metadata>,
    /// Topics whose leaders a refresh describes.
    wanted: Mutex<BTreeSet<String>>,
    /// The address that answered last; tried first.
    last_good: Mutex<Option<String>>,
    /// Number of refreshes started; with `refresh_lock`'s value (the number
    /// of the last refresh that succeeded) it lets a caller skip a refresh
    /// that started after it asked for one.
    refresh_started: AtomicU64,
    refresh_lock: tokio::sync::Mutex<u64>,
}

impl Cluster {
    /// Contacts the cluster through the bootstrap addresses (the first that
    /// answers `DescribeCluster`) and learns its brokers.
    pub(crate) async fn connect(
        bootstrap: Vec<String>,
        security: &crate::Security,
        request_timeout: Duration,
        retry_timeout: Duration,
    ) -> Result<Arc<Self>, ClientError> {
        let cluster = Arc::new(Cluster {
            bootstrap,
            connections: Connections::new(security.client_tls()?, security.authorization()?),
            request_timeout,
            retry_timeout,
            metadata: RwLock::new(Metadata::default()),
            wanted: Mutex::new(BTreeSet::new()),
            last_good: Mutex::new(None),
            refresh_started: AtomicU64::new(0),
            refresh_lock: tokio::sync::Mutex::new(0),
        });
        cluster.refresh().await?;
        Ok(cluster)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Metadata> {
        self.metadata.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Cached metadata of `topic`, if known.
    pub(crate) fn topic(&self, topic: &str) -> Option<Arc<TopicMetadata>> {
        self.read().topics.get(topic).cloned()
    }

    /// Why the last refresh found no metadata for `topic` (unknown topic...).
    pub(crate) fn topic_error(&self, topic: &str) -> Option<ClientError> {
        self.read().errors.get(topic).cloned()
    }

    /// Cached leader of a partition.
    pub(crate) fn leader(&self, topic: &str, partition: u32) -> Option<u32> {
        self.read().topics.get(topic)?.leaders.get(partition as usize).copied().flatten()
    }

    /// Adds `topic` to the topics refreshes describe.
    pub(crate) fn want(&self, topic: &str) {
        let mut wanted = self.wanted.lock().unwrap_or_else(|e| e.into_inner());
        if !wanted.contains(topic) {
            wanted.insert(topic.to_owned());
        }
    }

    /// Metadata of `topic`, refreshing up to `attempts` times (with
    /// `backoff` between tries) while it is unknown or leaderless. Fails
    /// with the broker's error for the topic (UNKNOWN_TOPIC_OR_PARTITION...).
    pub(crate) async fn topic_metadata(
        &self,
        topic: &str,
        attempts: u32,
        backoff: Duration,
    ) -> Result<Arc<TopicMetadata>, ClientError> {
        if let Some(t) = self.topic(topic) {
            return Ok(t);
        }
        self.want(topic);
        let mut last = None;
        for attempt in 0..=attempts {
            if attempt > 0 {
                tokio::time::sleep(backoff).await;
            }
            match self.refresh().await {
                Ok(()) => {}
                Err(e) if e.is_retriable() => {
                    last = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            }
            if let Some(t) = self.topic(topic) {
                return Ok(t);
            }
            match self.topic_error(topic) {
                Some(e) if !e.is_retriable() => return Err(e),
                Some(e) => last = Some(e),
                None => {}
            }
        }
        Err(last.unwrap_or_else(|| {
            ClientError::server(ErrorCode::UnknownTopicOrPartition, format!("unknown topic '{topic}'"))
        }))
    }

    /// A client for broker `id`.
    pub(crate) async fn broker_client(&self, id: u32) -> Result<Client, ClientError> {
        let address = self.broker_address(id)?;
        self.connections.client(&address).await
    }

    /// The channel to broker `id` (see [`Connections::channel`]) and the
    /// credentials header calls on it carry.
    pub(crate) async fn broker_channel(
        &self,
        id: u32,
    ) -> Result<(tonic::transport::Channel, Option<http::HeaderValue>), ClientError> {
        let address = self.broker_address(id)?;
        Ok((self.connections.channel(&address).await?, self.connections.authorization().cloned()))
    }

    fn broker_address(&self, id: u32) -> Result<String, ClientError> {
        self.read().brokers.get(&id).cloned().ok_or_else(|| {
            ClientError::server(
                ErrorCode::LeaderNotAvailable,
                format!("broker {id} is not in the client's cluster metadata"),
            )
        })
    }

    /// A client for the broker at `address` (`host:port`), e.g. a group
    /// coordinator named by `FindCoordinator`.
    pub(crate) async fn address_client(&self, address: &str) -> Result<Client, ClientError> {
        self.connections.client(address).await
    }

    /// The known brokers `(id, address)`, by id.
    pub(crate) fn brokers(&self) -> Vec<(u32, String)> {
        let mut out: Vec<(u32, String)> = self.read().brokers.iter().map(|(id, a)| (*id, a.clone())).collect();
        out.sort_unstable();
        out
    }

    /// A client for any broker that accepts a connection: the last one that
    /// answered, then known brokers, then the bootstrap list.
    pub(crate) async fn any_client(&self) -> Result<Client, ClientError> {
        let mut last = None;
        for address in self.candidates() {
            match self.connections.client(&address).await {
                Ok(c) => {
                    *self.last_good.lock().unwrap_or_else(|e| e.into_inner()) = Some(address);
                    return Ok(c);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::InvalidArgument("no broker address known".into())))
    }

    fn candidates(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut push = |a: &String| {
            if !out.contains(a) {
                out.push(a.clone());
            }
        };
        if let Some(a) = self.last_good.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            push(a);
        }
        {
            let meta = self.read();
            let mut ids: Vec<_> = meta.brokers.keys().copied().collect();
            ids.sort_unstable();
            for id in ids {
                push(&meta.brokers[&id]);
            }
        }
        for a in &self.bootstrap {
            push(a);
        }
        out
    }

    /// Refreshes brokers and the wanted topics. Callers that asked while a
    /// refresh was already running wait for the next one, and a caller whose
    /// request is covered by a refresh that started after it asked returns
    /// at once.
    pub(crate) async fn refresh(&self) -> Result<(), ClientError> {
        let seen = self.refresh_started.load(Ordering::SeqCst);
        let mut last_ok = self.refresh_lock.lock().await;
        if *last_ok > seen {
            return Ok(());
        }
        let seq = self.refresh_started.fetch_add(1, Ordering::SeqCst) + 1;
        let mut last_err = None;
        for address in self.candidates() {
            match self.refresh_from(&address).await {
                Ok(()) => {
                    *self.last_good.lock().unwrap_or_else(|e| e.into_inner()) = Some(address);
                    *last_ok = seq;
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!(%address, error = %e, "metadata refresh failed");
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| ClientError::InvalidArgument("no broker address known".into())))
    }

    async fn refresh_from(&self, address: &str) -> Result<(), ClientError> {
        let mut client = self.connections.client(address).await?;
        let cluster =
            call("DescribeCluster", self.request_timeout, client.describe_cluster(DescribeClusterRequest {})).await?;
        let brokers: HashMap<u32, String> = cluster.brokers.into_iter().map(|b| (b.node_id, b.address)).collect();
        let names: Vec<String> = self.wanted.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect();
        let described = if names.is_empty() {
            Vec::new()
        } else {
            let request = DescribeTopicsRequest { names: names.clone() };
            call("DescribeTopics", self.request_timeout, client.describe_topics(request)).await?.topics
        };
        let mut meta = self.metadata.write().unwrap_or_else(|e| e.into_inner());
        meta.brokers = brokers;
        for name in &names {
            meta.topics.remove(name);
            meta.errors.remove(name);
        }
        for t in described {
            if let Some(err) = ClientError::from_api(t.error.as_ref()) {
                meta.errors.insert(t.name, err);
                continue;
            }
            let count = t.partitions.iter().map(|p| p.partition as usize + 1).max().unwrap_or(0);
            let mut leaders = vec![None; count];
            for p in &t.partitions {
                let leader = u32::try_from(p.leader).ok().filter(|id| meta.brokers.contains_key(id));
                leaders[p.partition as usize] = leader;
            }
            let available = (0..count as u32).filter(|&p| leaders[p as usize].is_some()).collect();
            let max_batch_bytes = t.configs.get("max.message.bytes").and_then(|v| v.trim().parse().ok());
            meta.topics.insert(t.name, Arc::new(TopicMetadata { leaders, available, max_batch_bytes }));
        }
        for name in &names {
            if !meta.topics.contains_key(name) && !meta.errors.contains_key(name) {
                let err = ClientError::server(ErrorCode::UnknownTopicOrPartition, format!("unknown topic '{name}'"));
                meta.errors.insert(name.clone(), err);
            }
        }
        Ok(())
    }
}
