//! Topic and cluster administration: create, delete, list and describe
//! topics; describe brokers and controller voters; elect partition leaders.
//! Consumer-group administration is in `groups.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use strata_protocol::v1::{
    self, CreateTopicsRequest, DeleteTopicsRequest, DescribeClusterRequest, DescribeTopicsRequest, ElectLeadersRequest,
    ErrorCode, ListTopicsRequest, TopicPartitions, TopicSpec,
};

use crate::connection::{call, parse_bootstrap};
use crate::error::ClientError;
use crate::groups::Groups;
use crate::metadata::Cluster;

/// How long an admin request may take.
pub(crate) const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Tries of a request answered NOT_CONTROLLER (the controller moved).
const NOT_CONTROLLER_TRIES: u32 = 3;
const NOT_CONTROLLER_BACKOFF: Duration = Duration::from_millis(200);

/// Administrative client. Requests go to any reachable broker, which
/// forwards what needs the controller.
///
/// # Example
///
/// ```no_run
/// use strata_client::Admin;
///
/// # async fn run() -> Result<(), strata_client::ClientError> {
/// let admin = Admin::connect(["127.0.0.1:9700"]).await?;
/// admin.create_topic("events", 3, 1, &[("retention.ms".into(), "86400000".into())]).await?;
/// for t in admin.list_topics().await? {
///     println!("{} partitions={} rf={}", t.name, t.partitions, t.replication_factor);
/// }
/// let cluster = admin.describe_cluster().await?;
/// println!("cluster {} with {} brokers", cluster.cluster_id, cluster.brokers.len());
/// admin.delete_topic("events").await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Admin {
    pub(crate) cluster: Arc<Cluster>,
    /// Consumer-group requests (coordinator routing); see `groups.rs`.
    groups: Arc<Groups>,
}

/// One topic as `list_topics` returns it.
///
/// # Example
///
/// ```no_run
/// # async fn run(admin: strata_client::Admin) -> Result<(), strata_client::ClientError> {
/// let names: Vec<String> = admin.list_topics().await?.into_iter().map(|t| t.name).collect();
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSummary {
    /// Topic name.
    pub name: String,
    /// Cluster-assigned topic id.
    pub topic_id: String,
    /// Number of partitions.
    pub partitions: u32,
    /// Replicas per partition.
    pub replication_factor: u32,
}

/// A topic's partitions and configs, as `describe_topics` returns them.
///
/// # Example
///
/// ```no_run
/// # async fn run(admin: strata_client::Admin) -> Result<(), strata_client::ClientError> {
/// for topic in admin.describe_topics(&["events".to_string()]).await? {
///     for p in &topic.partitions {
///         println!("{}-{} leader={:?} isr={:?} hw={}", topic.name, p.partition, p.leader, p.isr, p.high_watermark);
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// Topic name.
    pub name: String,
    /// Cluster-assigned topic id.
    pub topic_id: String,
    /// Partitions in partition order.
    pub partitions: Vec<PartitionDescription>,
    /// Topic configs (Kafka names: `retention.ms`, ...).
    pub configs: BTreeMap<String, String>,
}

/// One partition of a [`TopicDescription`].
///
/// # Example
///
/// ```no_run
/// # fn show(p: &strata_client::PartitionDescription) {
/// let under_replicated = p.isr.len() < p.replicas.len();
/// println!("partition {} leader {:?} under-replicated: {under_replicated}", p.partition, p.leader);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDescription {
    /// Partition number.
    pub partition: u32,
    /// Leader broker id; `None` when the partition has no leader.
    pub leader: Option<u32>,
    /// Epoch of the current leader.
    pub leader_epoch: u32,
    /// Replica broker ids.
    pub replicas: Vec<u32>,
    /// In-sync replica broker ids.
    pub isr: Vec<u32>,
    /// First offset still in the log.
    pub log_start_offset: u64,
    /// Offset the next record will get.
    pub log_end_offset: u64,
    /// Offset up to which consumers can read.
    pub high_watermark: u64,
    /// Whether the three offsets above are the partition leader's (asked of
    /// the leader itself); `false` when no leader could be asked, and the
    /// offsets are then only what the answering broker's replica holds
    /// (zero on a broker without one).
    pub offsets_from_leader: bool,
}

/// The cluster as `describe_cluster` returns it.
///
/// # Example
///
/// ```no_run
/// # async fn run(admin: strata_client::Admin) -> Result<(), strata_client::ClientError> {
/// let c = admin.describe_cluster().await?;
/// let healthy = c.controller_id.is_some() && c.brokers.iter().all(|b| b.state == "unfenced");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    /// Cluster id.
    pub cluster_id: String,
    /// Node id of the active controller; `None` when none is elected.
    pub controller_id: Option<u32>,
    /// Brokers.
    pub brokers: Vec<BrokerDescription>,
    /// Controller quorum voters.
    pub voters: Vec<VoterDescription>,
    /// Offset of the metadata log the answering broker has applied.
    pub metadata_offset: u64,
}

/// One broker of a [`ClusterDescription`].
///
/// # Example
///
/// ```no_run
/// # fn show(b: &strata_client::BrokerDescription) {
/// println!("{} at {} rack={} {}", b.node_id, b.address, b.rack.as_deref().unwrap_or("-"), b.state);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerDescription {
    /// Node id.
    pub node_id: u32,
    /// `host:port` clients connect to.
    pub address: String,
    /// Rack, if the broker has one.
    pub rack: Option<String>,
    /// `"unfenced"` (serving) or `"fenced"`.
    pub state: String,
}

/// One controller voter of a [`ClusterDescription`].
///
/// # Example
///
/// ```no_run
/// # fn show(v: &strata_client::VoterDescription) {
/// println!("voter {} at {} leader={} lag={}", v.node_id, v.address, v.is_leader, v.lag);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterDescription {
    /// Node id.
    pub node_id: u32,
    /// Raft address.
    pub address: String,
    /// Whether it is the Raft leader (the active controller).
    pub is_leader: bool,
    /// Raft log entries behind the leader.
    pub lag: u64,
}

/// Which leader election [`Admin::elect_leaders`] runs (Kafka's `ElectionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ElectionType {
    /// Move leadership back to each partition's preferred replica (the first
    /// of its replicas) where that replica is alive and in sync.
    #[default]
    Preferred,
    /// Give leaderless partitions a leader, from outside the ISR if needed
    /// (possible data loss) where the topic sets `unclean.leader.election.enable=true`.
    Unclean,
}

impl ElectionType {
    /// The API's name: `"preferred"` or `"unclean"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ElectionType::Preferred => "preferred",
            ElectionType::Unclean => "unclean",
        }
    }
}

/// What a leader election did to one partition, as `elect_leaders` returns it.
///
/// # Example
///
/// ```no_run
/// # fn show(o: &strata_client::ElectionOutcome) {
/// match &o.error {
///     None => println!("{}-{} now led by {:?}", o.topic, o.partition, o.leader),
///     Some(e) => println!("{}-{} kept its leader: {e}", o.topic, o.partition),
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ElectionOutcome {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: u32,
    /// The leader after the election; `None` when the partition has none.
    pub leader: Option<u32>,
    /// `None` when the leader moved; otherwise why it did not
    /// (`ELECTION_NOT_NEEDED`, `PREFERRED_LEADER_NOT_AVAILABLE`,
    /// `ELIGIBLE_LEADERS_NOT_AVAILABLE`, `UNKNOWN_TOPIC_OR_PARTITION`).
    pub error: Option<ClientError>,
}

impl ElectionOutcome {
    /// Whether the partition got a new leader.
    pub fn moved(&self) -> bool {
        self.error.is_none()
    }
}

impl Admin {
    /// Connects through the first reachable `host:port` of `bootstrap` (each
    /// entry may also be a comma-separated list).
    pub async fn connect<I, S>(bootstrap: I) -> Result<Admin, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::connect_with(bootstrap, &crate::Security::default()).await
    }

    /// [`Self::connect`] with `security` (TLS to the brokers).
    pub async fn connect_with<I, S>(bootstrap: I, security: &crate::Security) -> Result<Admin, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let cluster = Cluster::connect(
            parse_bootstrap(bootstrap)?,
            security,
            ADMIN_TIMEOUT,
            crate::metadata::DEFAULT_RETRY_TIMEOUT,
        )
        .await?;
        let groups = Arc::new(Groups::new(cluster.clone()));
        Ok(Admin { cluster, groups })
    }

    /// The consumer-group requests.
    pub(crate) fn groups(&self) -> &Groups {
        &self.groups
    }

    /// Creates a topic. `partitions` and `replication_factor` 0 mean the
    /// broker defaults; `configs` are topic configs (`retention.ms`, ...).
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        replication_factor: u32,
        configs: &[(String, String)],
    ) -> Result<(), ClientError> {
        let spec = TopicSpec {
            name: name.to_owned(),
            partitions,
            replication_factor,
            configs: configs.iter().cloned().collect(),
        };
        let request = CreateTopicsRequest { topics: vec![spec], validate_only: false };
        self.until_controller_answers(|| async {
            let response = self
                .with_retry(|mut c| {
                    let request = request.clone();
                    async move { call("CreateTopics", ADMIN_TIMEOUT, c.create_topics(request)).await }
                })
                .await?;
            topic_result(name, response.results)
        })
        .await
    }

    /// Deletes a topic and its data.
    pub async fn delete_topic(&self, name: &str) -> Result<(), ClientError> {
        let request = DeleteTopicsRequest { names: vec![name.to_owned()] };
        self.until_controller_answers(|| async {
            let response = self
                .with_retry(|mut c| {
                    let request = request.clone();
                    async move { call("DeleteTopics", ADMIN_TIMEOUT, c.delete_topics(request)).await }
                })
                .await?;
            topic_result(name, response.results)
        })
        .await
    }

    /// Changes `name`'s configs: sets `set`, returns `delete` to the broker
    /// defaults (every broker applies the change within seconds).
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        set: &[(String, String)],
        delete: &[String],
    ) -> Result<(), ClientError> {
        let request = v1::AlterTopicConfigsRequest {
            topic: name.to_owned(),
            set: set.iter().cloned().collect(),
            delete: delete.to_vec(),
            validate_only: false,
        };
        self.until_controller_answers(|| async {
            let response = self
                .with_retry(|mut c| {
                    let request = request.clone();
                    async move { call("AlterTopicConfigs", ADMIN_TIMEOUT, c.alter_topic_configs(request)).await }
                })
                .await?;
            topic_result(name, vec![response])
        })
        .await
    }

    /// Deletes `topic`-`partition`'s records below `before` (`None`: below
    /// the high watermark), at the partition's leader; the new log start
    /// offset.
    pub async fn delete_records(&self, topic: &str, partition: u32, before: Option<u64>) -> Result<u64, ClientError> {
        let request = v1::DeleteRecordsRequest {
            topic: topic.to_owned(),
            partition,
            before_offset: before.map_or(-1, |o| i64::try_from(o).unwrap_or(i64::MAX)),
        };
        let mut last = None;
        // A leader that moved between the describe and the call: ask again.
        for _ in 0..5 {
            let described = self.describe_topics(&[topic.to_owned()]).await?;
            let leader = described
                .first()
                .and_then(|t| t.partitions.iter().find(|p| p.partition == partition))
                .ok_or_else(|| ClientError::InvalidArgument(format!("topic '{topic}' has no partition {partition}")))?
                .leader;
            let Some(leader) = leader else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let mut c = self.cluster.broker_client(leader).await?;
            let response = call("DeleteRecords", ADMIN_TIMEOUT, c.delete_records(request.clone())).await?;
            match ClientError::from_api(response.error.as_ref()) {
                None => return Ok(response.low_watermark),
                Some(e) if e.is_retriable() => last = Some(e),
                Some(e) => return Err(e),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(last.unwrap_or_else(|| ClientError::Timeout(format!("no leader for {topic}-{partition}"))))
    }

    /// Grows `name` to `count` partitions.
    pub async fn create_partitions(&self, name: &str, count: u32) -> Result<(), ClientError> {
        let request = v1::CreatePartitionsRequest { topic: name.to_owned(), count, validate_only: false };
        self.until_controller_answers(|| async {
            let response = self
                .with_retry(|mut c| {
                    let request = request.clone();
                    async move { call("CreatePartitions", ADMIN_TIMEOUT, c.create_partitions(request)).await }
                })
                .await?;
            topic_result(name, vec![response])
        })
        .await
    }

    /// All topics, sorted by name.
    pub async fn list_topics(&self) -> Result<Vec<TopicSummary>, ClientError> {
        let response = self
            .with_retry(
                |mut c| async move { call("ListTopics", ADMIN_TIMEOUT, c.list_topics(ListTopicsRequest {})).await },
            )
            .await?;
        let mut topics: Vec<TopicSummary> = response
            .topics
            .into_iter()
            .map(|t| TopicSummary {
                name: t.name,
                topic_id: t.topic_id,
                partitions: t.partitions,
                replication_factor: t.replication_factor,
            })
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// Describes the named topics (every topic when `names` is empty), in
    /// the order the broker returns them. A topic the broker reports an
    /// error for (unknown topic...) fails the call with that error.
    pub async fn describe_topics(&self, names: &[String]) -> Result<Vec<TopicDescription>, ClientError> {
        let mut topics = self.describe_placements(names).await?;
        self.offsets_from_leaders(&mut topics).await;
        Ok(topics)
    }

    /// [`Admin::describe_topics`] as one broker knows them — replicas,
    /// ISR, leaders — without asking each leader for its offsets (which
    /// waits on a leader that does not answer): for views of placement
    /// such as `strata cluster info`.
    pub async fn describe_placements(&self, names: &[String]) -> Result<Vec<TopicDescription>, ClientError> {
        let request = DescribeTopicsRequest { names: names.to_vec() };
        let response = self
            .with_retry(|mut c| {
                let request = request.clone();
                async move { call("DescribeTopics", ADMIN_TIMEOUT, c.describe_topics(request)).await }
            })
            .await?;
        response.topics.into_iter().map(describe_topic).collect()
    }

    /// Replaces each partition's offsets with its leader's: any broker can
    /// describe a topic, but only the leader knows its log end and high
    /// watermark (a follower lags, a broker without a replica knows none).
    /// One `DescribeTopics` per leader broker, concurrently; a leader that
    /// cannot be reached leaves its partitions marked not from the leader.
    async fn offsets_from_leaders(&self, topics: &mut [TopicDescription]) {
        let mut leaders: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
        for t in topics.iter() {
            for p in &t.partitions {
                if let Some(l) = p.leader {
                    leaders.entry(l).or_default().insert(t.name.clone());
                }
            }
        }
        let asks = leaders.into_iter().map(|(leader, names)| async move {
            let request = DescribeTopicsRequest { names: names.into_iter().collect() };
            let answer = match self.cluster.broker_client(leader).await {
                Ok(mut c) => call("DescribeTopics", ADMIN_TIMEOUT, c.describe_topics(request)).await,
                Err(e) => Err(e),
            };
            (leader, answer)
        });
        for (leader, answer) in futures::future::join_all(asks).await {
            let Ok(answer) = answer else { continue };
            for from in answer.topics {
                let Some(t) = topics.iter_mut().find(|t| t.name == from.name && t.topic_id == from.topic_id) else {
                    continue;
                };
                for fp in from.partitions {
                    // Only what the broker says of partitions it leads in
                    // the epoch we know: its own replica is the leader's.
                    let ours = t.partitions.iter_mut().find(|p| p.partition == fp.partition);
                    if let Some(p) = ours.filter(|p| {
                        p.leader == Some(leader) && fp.leader == leader as i32 && fp.leader_epoch == p.leader_epoch
                    }) {
                        p.log_start_offset = fp.log_start_offset;
                        p.log_end_offset = fp.log_end_offset;
                        p.high_watermark = fp.high_watermark;
                        p.offsets_from_leader = true;
                    }
                }
            }
        }
    }

    /// Brokers, controller and voters.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription, ClientError> {
        let c = self
            .with_retry(|mut c| async move {
                call("DescribeCluster", ADMIN_TIMEOUT, c.describe_cluster(DescribeClusterRequest {})).await
            })
            .await?;
        Ok(ClusterDescription {
            cluster_id: c.cluster_id,
            controller_id: u32::try_from(c.controller_id).ok(),
            brokers: c
                .brokers
                .into_iter()
                .map(|b| BrokerDescription {
                    node_id: b.node_id,
                    address: b.address,
                    rack: Some(b.rack).filter(|r| !r.is_empty()),
                    state: b.state,
                })
                .collect(),
            voters: c
                .voters
                .into_iter()
                .map(|v| VoterDescription {
                    node_id: v.node_id,
                    address: v.address,
                    is_leader: v.is_leader,
                    lag: v.lag,
                })
                .collect(),
            metadata_offset: c.metadata_offset,
        })
    }

    /// Runs a leader election (Kafka's `kafka-leader-election.sh`) for
    /// `partitions`: `(topic, partition numbers)` pairs, where no partition
    /// numbers mean every partition of the topic, and an empty slice means
    /// every partition of every topic. Returns one outcome per partition
    /// (sorted by topic and partition): partitions that needed nothing are
    /// reported with `ELECTION_NOT_NEEDED` when named, and left out when
    /// every partition was asked for. A request-level failure (controller
    /// unreachable, ...) is an error.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use strata_client::ElectionType;
    ///
    /// # async fn run(admin: strata_client::Admin) -> Result<(), strata_client::ClientError> {
    /// let outcomes = admin.elect_leaders(ElectionType::Preferred, &[("events".into(), vec![])]).await?;
    /// let moved = outcomes.iter().filter(|o| o.moved()).count();
    /// println!("{moved} partition(s) moved to their preferred leader");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: &[(String, Vec<u32>)],
    ) -> Result<Vec<ElectionOutcome>, ClientError> {
        let request = ElectLeadersRequest {
            election: election.as_str().to_owned(),
            partitions: partitions
                .iter()
                .map(|(topic, partitions)| TopicPartitions { topic: topic.clone(), partitions: partitions.clone() })
                .collect(),
        };
        self.until_controller_answers(|| async {
            let response = self
                .with_retry(|mut c| {
                    let request = request.clone();
                    async move { call("ElectLeaders", ADMIN_TIMEOUT, c.elect_leaders(request)).await }
                })
                .await?;
            if let Some(e) = ClientError::from_api(response.error.as_ref()) {
                return Err(e);
            }
            let mut outcomes: Vec<ElectionOutcome> = response
                .results
                .into_iter()
                .map(|r| ElectionOutcome {
                    error: ClientError::from_api(r.error.as_ref()),
                    topic: r.topic,
                    partition: r.partition,
                    leader: u32::try_from(r.leader).ok(),
                })
                .collect();
            outcomes.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
            Ok(outcomes)
        })
        .await
    }

    /// Runs `f` again (a few times, with a pause) while it fails with
    /// NOT_CONTROLLER: the controller moved and the broker will learn the new
    /// one shortly.
    pub(crate) async fn until_controller_answers<T, F, Fut>(&self, f: F) -> Result<T, ClientError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let mut attempt = 1;
        loop {
            match f().await {
                Err(e) if e.code() == Some(ErrorCode::NotController) && attempt < NOT_CONTROLLER_TRIES => {
                    attempt += 1;
                    tokio::time::sleep(NOT_CONTROLLER_BACKOFF).await;
                }
                other => return other,
            }
        }
    }

    /// Runs `f` against a reachable broker; tries another broker after a
    /// lost connection, and again after NOT_CONTROLLER answers.
    pub(crate) async fn with_retry<T, F, Fut>(&self, f: F) -> Result<T, ClientError>
    where
        F: Fn(crate::connection::Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        // A broker that died (or is restarting) is skipped: retry on
        // another one until `retry_timeout`. Only failures where the request
        // cannot have been applied are retried.
        let deadline = tokio::time::Instant::now() + self.cluster.retry_timeout;
        let mut backoff = Duration::from_millis(100);
        loop {
            let result = match self.cluster.any_client().await {
                Ok(client) => f(client).await,
                Err(e) => Err(e),
            };
            let unreachable = match &result {
                Err(ClientError::Transport(s)) => s.code() == tonic::Code::Unavailable,
                Err(ClientError::Connect { .. }) => true,
                _ => false,
            };
            if !unreachable || tokio::time::Instant::now() + backoff >= deadline {
                return result;
            }
            let _ = self.cluster.refresh().await;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }
}

/// Maps the result for `name` to `Ok` or its error, retrying nothing.
fn topic_result(name: &str, results: Vec<v1::TopicResult>) -> Result<(), ClientError> {
    match results.into_iter().find(|r| r.name == name) {
        Some(r) => match ClientError::from_api(r.error.as_ref()) {
            Some(e) => Err(e),
            None => Ok(()),
        },
        None => Err(ClientError::InvalidResponse(format!("no result for topic '{name}'"))),
    }
}

fn describe_topic(t: v1::TopicDescription) -> Result<TopicDescription, ClientError> {
    if let Some(e) = ClientError::from_api(t.error.as_ref()) {
        return Err(e);
    }
    let mut partitions: Vec<PartitionDescription> = t
        .partitions
        .into_iter()
        .map(|p| PartitionDescription {
            partition: p.partition,
            leader: u32::try_from(p.leader).ok(),
            leader_epoch: p.leader_epoch,
            replicas: p.replicas,
            isr: p.isr,
            log_start_offset: p.log_start_offset,
            log_end_offset: p.log_end_offset,
            high_watermark: p.high_watermark,
            offsets_from_leader: false,
        })
        .collect();
    partitions.sort_by_key(|p| p.partition);
    Ok(TopicDescription { name: t.name, topic_id: t.topic_id, partitions, configs: t.configs.into_iter().collect() })
}
