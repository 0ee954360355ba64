//! Consumer groups, client side: finding a group's coordinator, the group
//! requests routed to it (commit and fetch offsets, describe, delete),
//! listing the groups of every broker, and consumer lag.
//!
//! Coordinator routing: the coordinator of each group is cached; a request
//! answered NOT_COORDINATOR or COORDINATOR_NOT_AVAILABLE (or a lost
//! connection) forgets it and asks `FindCoordinator` again, and
//! COORDINATOR_LOAD_IN_PROGRESS waits; both with an exponential backoff,
//! within `COORDINATOR_RETRY_TIMEOUT` overall (a coordinator failover takes a
//! few seconds), like the producer's retries.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strata_record::TopicPartition;

use strata_protocol::v1::{
    self, CommitOffsetsRequest, DeleteGroupsRequest, DescribeGroupsRequest, ErrorCode, FetchOffsetsRequest,
    FindCoordinatorRequest, ListGroupsRequest, OffsetCommitPartition, TopicPartitions,
};

use crate::admin::Admin;
use crate::connection::{call, Client};
use crate::consumer::offsets;
use crate::error::ClientError;
use crate::metadata::Cluster;
use crate::{PartitionOffset, SeekTo};

/// How long a group request keeps retrying coordinator errors.
pub(crate) const COORDINATOR_RETRY_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Tries to learn a topic's metadata before reporting it unknown (lag).
const METADATA_ATTEMPTS: u32 = 2;
const METADATA_BACKOFF: Duration = Duration::from_millis(100);

/// The broker coordinating a group, as `find_coordinator` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCoordinator {
    /// Node id of the coordinator.
    pub node_id: u32,
    /// Its `host:port`.
    pub address: String,
}

/// A group's committed offset for one partition.
///
/// # Example
///
/// ```no_run
/// # async fn run(admin: strata_client::Admin) -> Result<(), strata_client::ClientError> {
/// for c in admin.fetch_offsets("billing", None).await? {
///     println!("{}-{} next offset {:?} ({})", c.topic, c.partition, c.offset, c.metadata);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The next offset to consume; `None` when the group committed nothing
    /// for the partition.
    pub offset: Option<u64>,
    /// Metadata stored with the offset.
    pub metadata: String,
    /// When it was committed (ms since the Unix epoch), if known.
    pub commit_timestamp: Option<i64>,
}

/// One group as `list_groups` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// `"empty"` (offsets only), `"stable"`, `"reconciling"`, `"assigning"`
    /// or `"dead"`.
    pub state: String,
    /// Node id of its coordinator.
    pub coordinator: u32,
}

/// A member of a group, as `describe_groups` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// Member id (given by the coordinator).
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    /// The member's client id.
    pub client_id: String,
    /// The member's host.
    pub client_host: String,
    /// The member's epoch.
    pub member_epoch: i32,
    /// Partitions it owns: `(topic, partitions)`.
    pub assignment: Vec<(String, Vec<u32>)>,
    /// Partitions it is moving to: `(topic, partitions)`.
    pub target_assignment: Vec<(String, Vec<u32>)>,
    /// What it subscribes to: topic names (comma-separated) or `/pattern/`.
    pub subscription: String,
}

impl GroupMember {
    /// Whether the member owns the partition.
    pub fn owns(&self, topic: &str, partition: u32) -> bool {
        self.assignment.iter().any(|(t, ps)| t == topic && ps.contains(&partition))
    }
}

/// A group's state, members and committed offsets, as `describe_groups`
/// returns it.
///
/// # Example
///
/// ```no_run
/// # async fn run(admin: strata_client::Admin) -> Result<(), strata_client::ClientError> {
/// let g = admin.describe_groups(&["billing".to_string()]).await?.remove(0);
/// println!("{} is {} with {} member(s), coordinator {}", g.group_id, g.state, g.members.len(), g.coordinator);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// `"empty"`, `"stable"`, `"reconciling"`, `"assigning"` or `"dead"`.
    pub state: String,
    /// The group epoch.
    pub group_epoch: i32,
    /// `"range"` or `"uniform"` (empty without members).
    pub assignor: String,
    /// Node id of its coordinator.
    pub coordinator: u32,
    /// Members.
    pub members: Vec<GroupMember>,
    /// Committed offsets, sorted by topic and partition.
    pub offsets: Vec<CommittedOffset>,
}

impl GroupDescription {
    /// Whether the group is active: it has members or is in a state other
    /// than `empty`/`dead`. Offsets of an active group must not be reset
    /// and the group cannot be deleted.
    pub fn is_active(&self) -> bool {
        !self.members.is_empty() || !matches!(self.state.as_str(), "" | "empty" | "dead")
    }

    /// The member owning a partition, if any.
    pub fn owner(&self, topic: &str, partition: u32) -> Option<&GroupMember> {
        self.members.iter().find(|m| m.owns(topic, partition))
    }
}

/// A group's position in one partition against the partition's end.
///
/// `lag` is `log_end − committed`; without a committed offset it is
/// `log_end − log_start` (everything still in the log: what a consumer
/// starting from the earliest offset would read). The log fields and `lag`
/// are `None` for a partition that no longer exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The committed offset, if any.
    pub committed: Option<u64>,
    /// First offset still in the log.
    pub log_start: Option<u64>,
    /// The high watermark: the offset up to which consumers can read.
    pub log_end: Option<u64>,
    /// Records the group has not consumed.
    pub lag: Option<u64>,
}

impl PartitionLag {
    /// The lag of a partition from its committed offset and log bounds.
    pub fn compute(committed: Option<u64>, log_start: u64, log_end: u64) -> u64 {
        match committed {
            Some(c) => log_end.saturating_sub(c),
            None => log_end.saturating_sub(log_start),
        }
    }
}

/// Group requests with coordinator routing; shared by [`Admin`] and the
/// consumer.
#[derive(Debug)]
pub(crate) struct Groups {
    cluster: Arc<Cluster>,
    coordinators: Mutex<HashMap<String, GroupCoordinator>>,
    retry_timeout: Duration,
}

impl Groups {
    pub(crate) fn new(cluster: Arc<Cluster>) -> Groups {
        Groups { cluster, coordinators: Mutex::new(HashMap::new()), retry_timeout: COORDINATOR_RETRY_TIMEOUT }
    }

    pub(crate) fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    fn cached(&self, group: &str) -> Option<GroupCoordinator> {
        self.coordinators.lock().unwrap_or_else(|e| e.into_inner()).get(group).cloned()
    }

    fn forget(&self, group: &str) {
        self.coordinators.lock().unwrap_or_else(|e| e.into_inner()).remove(group);
    }

    /// One `FindCoordinator` through any broker; caches the answer.
    async fn find_once(&self, group: &str) -> Result<GroupCoordinator, ClientError> {
        let mut client = self.cluster.any_client().await?;
        let request = FindCoordinatorRequest { group_id: group.to_owned() };
        let response = call("FindCoordinator", self.cluster.request_timeout, client.find_coordinator(request)).await?;
        if let Some(e) = ClientError::from_api(response.error.as_ref()) {
            return Err(e);
        }
        if response.address.is_empty() {
            return Err(ClientError::server(
                ErrorCode::CoordinatorNotAvailable,
                format!("no coordinator address returned for group '{group}'"),
            ));
        }
        let coordinator = GroupCoordinator { node_id: response.node_id, address: response.address };
        self.coordinators.lock().unwrap_or_else(|e| e.into_inner()).insert(group.to_owned(), coordinator.clone());
        Ok(coordinator)
    }

    /// A client for the coordinator of `group` (cached, else asked once):
    /// for callers that run their own retry loop (the heartbeat).
    pub(crate) async fn coordinator_client(&self, group: &str) -> Result<Client, ClientError> {
        let coordinator = match self.cached(group) {
            Some(c) => c,
            None => self.find_once(group).await?,
        };
        self.cluster.address_client(&coordinator.address).await
    }

    /// After a request to the coordinator of `group` failed with `err`:
    /// forgets the coordinator when the error says it moved or is
    /// unreachable (the next request asks `FindCoordinator` again).
    pub(crate) async fn coordinator_failed(&self, group: &str, err: &ClientError) {
        match err {
            ClientError::Server { code: ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable, .. } => {
                self.forget(group)
            }
            ClientError::Transport(_) | ClientError::Connect { .. } | ClientError::Timeout(_) => {
                self.forget(group);
                let _ = self.cluster.refresh().await;
            }
            _ => {}
        }
    }

    /// Asks for the coordinator of `group` (not the cache), retrying while
    /// none is available.
    pub(crate) async fn find_coordinator(&self, group: &str) -> Result<GroupCoordinator, ClientError> {
        check_group_id(group)?;
        self.retrying(group, || self.find_once(group)).await
    }

    /// Runs `f` against the coordinator of `group`, retrying coordinator
    /// errors and lost connections (see the module docs). `f` turns a
    /// request-level error of the response into `Err`.
    async fn on_coordinator<T, F, Fut>(&self, group: &str, f: F) -> Result<T, ClientError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        check_group_id(group)?;
        self.retrying(group, || async {
            let coordinator = match self.cached(group) {
                Some(c) => c,
                None => self.find_once(group).await?,
            };
            let client = self.cluster.address_client(&coordinator.address).await?;
            f(client).await
        })
        .await
    }

    async fn retrying<T, F, Fut>(&self, group: &str, f: F) -> Result<T, ClientError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let started = Instant::now();
        let mut backoff = BACKOFF_START;
        let mut tries = 0u32;
        loop {
            tries += 1;
            let err = match f().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let retry = match &err {
                ClientError::Server {
                    code: ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable, ..
                } => {
                    self.forget(group);
                    true
                }
                ClientError::Server { code: ErrorCode::CoordinatorLoadInProgress, .. } => true,
                ClientError::Server { code, .. } => code.is_retriable() && *code != ErrorCode::UnknownTopicOrPartition,
                ClientError::Transport(_) | ClientError::Connect { .. } | ClientError::Timeout(_) => {
                    if err.is_retriable() {
                        self.forget(group);
                        let _ = self.cluster.refresh().await;
                    }
                    err.is_retriable()
                }
                _ => false,
            };
            if !retry {
                return Err(name_group(group, err));
            }
            if started.elapsed() + backoff > self.retry_timeout {
                return Err(gave_up(group, tries, started.elapsed(), err));
            }
            tracing::debug!(group, error = %err, ?backoff, "retrying a group request");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Commits `offsets` for `group` as a standalone (non-member) commit.
    pub(crate) async fn commit(&self, group: &str, offsets: &[PartitionOffset]) -> Result<(), ClientError> {
        self.commit_as(group, "", 0, offsets).await
    }

    /// Commits `offsets` for `group` as the member `member_id` at `member_epoch` (empty id: a standalone
    /// commit, refused with NON_EMPTY_GROUP while the group has members). A
    /// member's commit is refused with STALE_MEMBER_EPOCH when its epoch is
    /// behind the coordinator's, FENCED_MEMBER_EPOCH / UNKNOWN_MEMBER_ID
    /// when it is no longer a member.
    pub(crate) async fn commit_as(
        &self,
        group: &str,
        member_id: &str,
        member_epoch: i32,
        offsets: &[PartitionOffset],
    ) -> Result<(), ClientError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let request = CommitOffsetsRequest {
            group_id: group.to_owned(),
            member_id: member_id.to_owned(),
            member_epoch,
            partitions: offsets
                .iter()
                .map(|o| OffsetCommitPartition {
                    topic: o.tp.topic.clone(),
                    partition: o.tp.partition,
                    offset: o.offset,
                    metadata: o.metadata.clone(),
                })
                .collect(),
        };
        let timeout = self.cluster.request_timeout;
        let response = self
            .on_coordinator(group, |mut c| {
                let request = request.clone();
                async move {
                    let r = call("CommitOffsets", timeout, c.commit_offsets(request)).await?;
                    match ClientError::from_api(r.error.as_ref()) {
                        Some(e) => Err(e),
                        None => Ok(r),
                    }
                }
            })
            .await?;
        for o in offsets {
            let tp = &o.tp;
            let result = response.partitions.iter().find(|r| r.topic == tp.topic && r.partition == tp.partition);
            let Some(result) = result else {
                return Err(ClientError::InvalidResponse(format!(
                    "no CommitOffsets result for partition {tp} of group '{group}'"
                )));
            };
            if let Some(ClientError::Server { code, message }) = ClientError::from_api(result.error.as_ref()) {
                return Err(ClientError::server(
                    code,
                    format!("cannot commit the offset of {tp} for group '{group}': {message}"),
                ));
            }
        }
        Ok(())
    }

    /// Committed offsets of `group`: of the given `(topic, partitions)`
    /// (no partitions: every committed partition of the topic), or of every
    /// partition it committed for. Partitions asked for by number are all
    /// returned (`offset: None` without a commit); sorted. An unknown group
    /// has committed nothing.
    pub(crate) async fn fetch(
        &self,
        group: &str,
        partitions: Option<&[(String, Vec<u32>)]>,
    ) -> Result<Vec<CommittedOffset>, ClientError> {
        let asked: Vec<(String, Vec<u32>)> = partitions.map(<[_]>::to_vec).unwrap_or_default();
        let request = FetchOffsetsRequest {
            group_id: group.to_owned(),
            partitions: asked
                .iter()
                .map(|(topic, partitions)| TopicPartitions { topic: topic.clone(), partitions: partitions.clone() })
                .collect(),
        };
        let timeout = self.cluster.request_timeout;
        let result = self
            .on_coordinator(group, |mut c| {
                let request = request.clone();
                async move {
                    let r = call("FetchOffsets", timeout, c.fetch_offsets(request)).await?;
                    match ClientError::from_api(r.error.as_ref()) {
                        Some(e) => Err(e),
                        None => Ok(r.partitions),
                    }
                }
            })
            .await;
        let fetched = match result {
            Ok(p) => p,
            Err(e) if e.code() == Some(ErrorCode::GroupIdNotFound) => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut out: BTreeMap<TopicPartition, CommittedOffset> = BTreeMap::new();
        for c in fetched {
            if let Some(ClientError::Server { code, message }) = ClientError::from_api(c.error.as_ref()) {
                if code != ErrorCode::GroupIdNotFound {
                    return Err(ClientError::server(
                        code,
                        format!(
                            "cannot fetch the committed offset of {}-{} for group '{group}': {message}",
                            c.topic, c.partition
                        ),
                    ));
                }
            }
            out.insert(TopicPartition::of(c.topic.clone(), c.partition), committed_offset(c));
        }
        for (topic, partitions) in &asked {
            for p in partitions {
                out.entry(TopicPartition::of(topic.clone(), *p)).or_insert_with(|| CommittedOffset {
                    topic: topic.clone(),
                    partition: *p,
                    offset: None,
                    metadata: String::new(),
                    commit_timestamp: None,
                });
            }
        }
        Ok(out.into_values().collect())
    }

    /// Every broker's groups, merged and sorted by id.
    pub(crate) async fn list(&self) -> Result<Vec<GroupListing>, ClientError> {
        self.cluster.refresh().await?;
        let brokers = self.cluster.brokers();
        let timeout = self.cluster.request_timeout;
        let asks = brokers.iter().map(|(id, address)| async move {
            let mut client = self.cluster.address_client(address).await?;
            let r =
                call(&format!("ListGroups to broker {id}"), timeout, client.list_groups(ListGroupsRequest {})).await?;
            match ClientError::from_api(r.error.as_ref()) {
                Some(ClientError::Server { code, message }) => {
                    Err(ClientError::server(code, format!("broker {id} cannot list its groups: {message}")))
                }
                Some(e) => Err(e),
                None => Ok(r.groups),
            }
        });
        let mut merged: BTreeMap<String, GroupListing> = BTreeMap::new();
        for answer in futures::future::join_all(asks).await {
            for g in answer? {
                merged.entry(g.group_id.clone()).or_insert(GroupListing {
                    group_id: g.group_id,
                    state: g.state,
                    coordinator: g.coordinator,
                });
            }
        }
        Ok(merged.into_values().collect())
    }

    /// Describes one group at its coordinator.
    pub(crate) async fn describe(&self, group: &str) -> Result<GroupDescription, ClientError> {
        let request = DescribeGroupsRequest { group_ids: vec![group.to_owned()] };
        let timeout = self.cluster.request_timeout;
        let described = self
            .on_coordinator(group, |mut c| {
                let request = request.clone();
                async move {
                    let r = call("DescribeGroups", timeout, c.describe_groups(request)).await?;
                    let Some(d) = r.groups.into_iter().find(|d| d.group_id == group) else {
                        return Err(ClientError::InvalidResponse(format!(
                            "no DescribeGroups result for group '{group}'"
                        )));
                    };
                    match ClientError::from_api(d.error.as_ref()) {
                        Some(e) => Err(e),
                        None => Ok(d),
                    }
                }
            })
            .await?;
        Ok(group_description(described))
    }

    /// Deletes one group at its coordinator.
    pub(crate) async fn delete(&self, group: &str) -> Result<(), ClientError> {
        let request = DeleteGroupsRequest { group_ids: vec![group.to_owned()] };
        let timeout = self.cluster.request_timeout;
        self.on_coordinator(group, |mut c| {
            let request = request.clone();
            async move {
                let r = call("DeleteGroups", timeout, c.delete_groups(request)).await?;
                let Some(result) = r.results.into_iter().find(|d| d.group_id == group) else {
                    return Err(ClientError::InvalidResponse(format!("no DeleteGroups result for group '{group}'")));
                };
                match ClientError::from_api(result.error.as_ref()) {
                    Some(e) => Err(e),
                    None => Ok(()),
                }
            }
        })
        .await
    }

    /// The lag of each committed offset (see [`PartitionLag`]), in input
    /// order.
    pub(crate) async fn lag(&self, committed: &[CommittedOffset]) -> Result<Vec<PartitionLag>, ClientError> {
        let mut exists: HashMap<&str, u32> = HashMap::new();
        for c in committed {
            if exists.contains_key(c.topic.as_str()) {
                continue;
            }
            let count = match self.cluster.topic_metadata(&c.topic, METADATA_ATTEMPTS, METADATA_BACKOFF).await {
                Ok(t) => t.partition_count(),
                Err(e) if e.code() == Some(ErrorCode::UnknownTopicOrPartition) => 0,
                Err(e) => return Err(e),
            };
            exists.insert(&c.topic, count);
        }
        let live: Vec<&CommittedOffset> = committed.iter().filter(|c| c.partition < exists[c.topic.as_str()]).collect();
        // One lookup per bound: a request names each partition once.
        let starts: Vec<(TopicPartition, SeekTo)> =
            live.iter().map(|c| (TopicPartition::of(c.topic.clone(), c.partition), SeekTo::Beginning)).collect();
        let ends: Vec<(TopicPartition, SeekTo)> =
            live.iter().map(|c| (TopicPartition::of(c.topic.clone(), c.partition), SeekTo::End)).collect();
        let starts = offsets::resolve(&self.cluster, &starts).await?;
        let ends = offsets::resolve(&self.cluster, &ends).await?;
        let mut by_partition: HashMap<(&str, u32), (u64, u64)> = HashMap::new();
        for (i, c) in live.iter().enumerate() {
            by_partition.insert((c.topic.as_str(), c.partition), (starts[i], ends[i]));
        }
        Ok(committed
            .iter()
            .map(|c| {
                let bounds = by_partition.get(&(c.topic.as_str(), c.partition));
                PartitionLag {
                    topic: c.topic.clone(),
                    partition: c.partition,
                    committed: c.offset,
                    log_start: bounds.map(|b| b.0),
                    log_end: bounds.map(|b| b.1),
                    lag: bounds.map(|&(start, end)| PartitionLag::compute(c.offset, start, end)),
                }
            })
            .collect())
    }
}

/// Consumer-group administration.
///
/// # Example
///
/// ```no_run
/// # async fn run(admin: strata_client::Admin) -> Result<(), strata_client::ClientError> {
/// use strata_client::PartitionOffset;
/// admin.commit_offsets("billing", &[PartitionOffset::new(("events", 0), 42)]).await?;
/// for lag in admin.group_lag("billing").await? {
///     println!("{}-{} committed {:?} end {:?} lag {:?}", lag.topic, lag.partition, lag.committed, lag.log_end, lag.lag);
/// }
/// for g in admin.list_groups().await? {
///     println!("{} {}", g.group_id, g.state);
/// }
/// # Ok(())
/// # }
/// ```
impl Admin {
    /// The broker coordinating `group` (asked afresh; retried while none is
    /// available yet).
    pub async fn find_coordinator(&self, group: &str) -> Result<GroupCoordinator, ClientError> {
        self.groups().find_coordinator(group).await
    }

    /// Commits offsets for `group` (the next offset to consume in each
    /// partition, with its metadata). A standalone commit (not from a group
    /// member): the coordinator refuses it while the group has members.
    pub async fn commit_offsets(&self, group: &str, offsets: &[PartitionOffset]) -> Result<(), ClientError> {
        self.groups().commit(group, offsets).await
    }

    /// The committed offsets of `group`, sorted by topic and partition: of
    /// `partitions` (`(topic, partition numbers)`, no numbers meaning every
    /// partition the group committed for in that topic), or of every
    /// partition it committed for when `None`. Partitions asked for by
    /// number are always returned, with `offset: None` when nothing was
    /// committed. A group that does not exist has committed nothing.
    pub async fn fetch_offsets(
        &self,
        group: &str,
        partitions: Option<&[(String, Vec<u32>)]>,
    ) -> Result<Vec<CommittedOffset>, ClientError> {
        self.groups().fetch(group, partitions).await
    }

    /// All groups, sorted by id: every broker is asked for the groups it
    /// coordinates; a broker that cannot answer fails the call.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, ClientError> {
        self.groups().list().await
    }

    /// Describes `groups` (each asked at its coordinator), in the order
    /// given. A group the coordinator reports an error for
    /// (GROUP_ID_NOT_FOUND...) fails the call with that error.
    pub async fn describe_groups(&self, groups: &[String]) -> Result<Vec<GroupDescription>, ClientError> {
        let asks = groups.iter().map(|g| self.groups().describe(g));
        futures::future::join_all(asks).await.into_iter().collect()
    }

    /// Deletes `groups` (their committed offsets); each is tried, and the
    /// first failure is returned (NON_EMPTY_GROUP for a group with members,
    /// GROUP_ID_NOT_FOUND...).
    pub async fn delete_groups(&self, groups: &[String]) -> Result<(), ClientError> {
        let asks = groups.iter().map(|g| self.groups().delete(g));
        futures::future::join_all(asks).await.into_iter().collect()
    }

    /// Per partition `group` committed for: the committed offset, the log
    /// end (high watermark) and the lag (see [`PartitionLag`]).
    pub async fn group_lag(&self, group: &str) -> Result<Vec<PartitionLag>, ClientError> {
        let committed = self.groups().fetch(group, None).await?;
        self.groups().lag(&committed).await
    }

    /// The lag of the given committed offsets (e.g. partitions assigned to
    /// a group's members but not committed yet, with `offset: None`), in
    /// input order.
    pub async fn lag_of(&self, committed: &[CommittedOffset]) -> Result<Vec<PartitionLag>, ClientError> {
        self.groups().lag(committed).await
    }

    /// The offsets the given `(partition, position)` pairs resolve to, in
    /// input order (`ListOffsets` to each partition's leader): `Beginning`
    /// the log start, `End` the high watermark, a timestamp the first record
    /// at or after it (the end if none).
    pub async fn list_offsets(&self, wanted: &[(TopicPartition, SeekTo)]) -> Result<Vec<u64>, ClientError> {
        let cluster = self.groups().cluster();
        for (tp, _) in wanted {
            cluster.topic_metadata(&tp.topic, METADATA_ATTEMPTS, METADATA_BACKOFF).await?;
        }
        offsets::resolve(cluster, wanted).await
    }
}

/// Refuses an empty group id before any request.
pub(crate) fn check_group_id(group: &str) -> Result<(), ClientError> {
    if group.trim().is_empty() {
        return Err(ClientError::server(ErrorCode::InvalidGroupId, "the group id must not be empty"));
    }
    Ok(())
}

/// A broker error whose message does not name the group gets it prefixed.
fn name_group(group: &str, err: ClientError) -> ClientError {
    match err {
        ClientError::Server { code, message } if !message.contains(&format!("'{group}'")) => {
            let message =
                if message.is_empty() { format!("group '{group}'") } else { format!("group '{group}': {message}") };
            ClientError::Server { code, message }
        }
        other => other,
    }
}

fn gave_up(group: &str, tries: u32, elapsed: Duration, err: ClientError) -> ClientError {
    let what =
        format!("no answer from the coordinator of group '{group}' after {tries} tries in {} ms", elapsed.as_millis());
    match err {
        ClientError::Server { code, message } => ClientError::server(code, format!("{what}: {message}")),
        other => ClientError::server(ErrorCode::CoordinatorNotAvailable, format!("{what}: {other}")),
    }
}

fn committed_offset(c: v1::CommittedOffset) -> CommittedOffset {
    CommittedOffset {
        topic: c.topic,
        partition: c.partition,
        offset: u64::try_from(c.offset).ok(),
        metadata: c.metadata,
        commit_timestamp: Some(c.commit_timestamp).filter(|t| *t >= 0),
    }
}

fn topic_partitions(tps: Vec<TopicPartitions>) -> Vec<(String, Vec<u32>)> {
    let mut out: Vec<(String, Vec<u32>)> = tps
        .into_iter()
        .map(|tp| {
            let mut ps = tp.partitions;
            ps.sort_unstable();
            (tp.topic, ps)
        })
        .collect();
    out.sort();
    out
}

fn group_description(d: v1::GroupDescription) -> GroupDescription {
    let mut offsets: Vec<CommittedOffset> = d.offsets.into_iter().map(committed_offset).collect();
    offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    GroupDescription {
        group_id: d.group_id,
        state: d.state,
        group_epoch: d.group_epoch,
        assignor: d.assignor,
        coordinator: d.coordinator,
        members: d
            .members
            .into_iter()
            .map(|m| GroupMember {
                member_id: m.member_id,
                instance_id: Some(m.instance_id).filter(|i| !i.is_empty()),
                client_id: m.client_id,
                client_host: m.client_host,
                member_epoch: m.member_epoch,
                assignment: topic_partitions(m.assignment),
                target_assignment: topic_partitions(m.target_assignment),
                subscription: m.subscription,
            })
            .collect(),
        offsets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_counts_from_the_commit_or_else_the_log_start() {
        assert_eq!(PartitionLag::compute(Some(3), 0, 10), 7);
        assert_eq!(PartitionLag::compute(None, 4, 10), 6);
        // A commit past the end (the log was truncated) is no negative lag.
        assert_eq!(PartitionLag::compute(Some(12), 0, 10), 0);
    }

    #[test]
    fn errors_name_the_group_once() {
        let e = name_group("g", ClientError::server(ErrorCode::GroupIdNotFound, "no such group"));
        assert_eq!(e.to_string(), "GROUP_ID_NOT_FOUND: group 'g': no such group");
        let e = name_group("g", ClientError::server(ErrorCode::NonEmptyGroup, "group 'g' has 2 members"));
        assert_eq!(e.to_string(), "NON_EMPTY_GROUP: group 'g' has 2 members");
        let e = gave_up("g", 5, Duration::from_millis(1200), ClientError::server(ErrorCode::NotCoordinator, "moved"));
        assert_eq!(
            e.to_string(),
            "NOT_COORDINATOR: no answer from the coordinator of group 'g' after 5 tries in 1200 ms: moved"
        );
        assert_eq!(check_group_id(" ").unwrap_err().code(), Some(ErrorCode::InvalidGroupId));
    }

    #[test]
    fn an_active_group_has_members_or_a_live_state() {
        let mut d = GroupDescription {
            group_id: "g".into(),
            state: "empty".into(),
            group_epoch: 0,
            assignor: String::new(),
            coordinator: 1,
            members: vec![],
            offsets: vec![],
        };
        assert!(!d.is_active());
        d.state = "stable".into();
        assert!(d.is_active());
    }
}
