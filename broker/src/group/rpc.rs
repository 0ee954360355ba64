//! The group RPCs on `BrokerService`: commit, fetch, list, describe and
//! delete. Each validates its input, finds the shard this broker
//! coordinates (or says it does not), writes through
//! [`BrokerService::append_offset_records`] and updates the shard only
//! once that append is committed.

use strata_protocol::v1::*;

use crate::error::{BrokerError, ErrorKind};

use super::coordinator::ShardHandle;
use super::model::{Group, GroupState};
use super::record::{OffsetKey, OffsetValue};
use super::writer::now_ms;
use super::{validate_group_id, MAX_METADATA_BYTES, OFFSETS_TOPIC};
use crate::service::BrokerService;

/// The API form of one committed offset (or -1 when there is none).
fn committed(topic: &str, partition: u32, value: Option<&OffsetValue>) -> CommittedOffset {
    CommittedOffset {
        topic: topic.to_string(),
        partition,
        offset: value.map_or(-1, |v| v.offset),
        metadata: value.map(|v| v.metadata.clone()).unwrap_or_default(),
        commit_timestamp: value.map_or(-1, |v| v.commit_timestamp),
        error: None,
    }
}

/// Every committed offset of a group, in (topic, partition) order.
fn all_offsets(g: &Group) -> Vec<CommittedOffset> {
    g.offsets().map(|(t, p, v)| committed(t, p, Some(v))).collect()
}

impl BrokerService {
    fn is_leadership_error(e: &BrokerError) -> bool {
        matches!(
            e.kind(),
            ErrorKind::NotCoordinator | ErrorKind::CoordinatorNotAvailable | ErrorKind::CoordinatorLoadInProgress
        )
    }

    /// Checks one partition of a commit against the metadata and limits.
    fn check_commit_partition(&self, c: &OffsetCommitPartition) -> Result<OffsetValue, BrokerError> {
        let image = self.controller.metadata();
        let Some(t) = image.topics.get(&c.topic) else {
            return Err(BrokerError::new(ErrorKind::UnknownTopicOrPartition, format!("unknown topic '{}'", c.topic)));
        };
        if c.partition as usize >= t.partitions.len() {
            return Err(BrokerError::new(
                ErrorKind::UnknownTopicOrPartition,
                format!(
                    "topic '{}' has {} partitions; there is no partition {}",
                    c.topic,
                    t.partitions.len(),
                    c.partition
                ),
            ));
        }
        let offset = i64::try_from(c.offset)
            .map_err(|_| BrokerError::new(ErrorKind::InvalidRequest, format!("offset {} is out of range", c.offset)))?;
        if c.metadata.len() > MAX_METADATA_BYTES {
            return Err(BrokerError::new(
                ErrorKind::InvalidRequest,
                format!("offset metadata is {} bytes; the limit is {MAX_METADATA_BYTES}", c.metadata.len()),
            ));
        }
        Ok(OffsetValue { offset, metadata: c.metadata.clone(), commit_timestamp: 0 })
    }

    /// `CommitOffsets`: validates each partition, appends the valid ones as
    /// one batch (acks=all), then records them.
    pub(crate) async fn commit_offsets(&self, req: CommitOffsetsRequest) -> CommitOffsetsResponse {
        let request_error = |e: BrokerError| {
            self.metrics.record_error(e.kind());
            CommitOffsetsResponse { error: Some(e.into()), partitions: Vec::new() }
        };
        if let Err(e) = validate_group_id(&req.group_id) {
            return request_error(e);
        }
        let h = match self.shard_for(&req.group_id, true).await {
            Ok(h) => h,
            Err(e) => return request_error(e),
        };
        let adoptable = h.loaded_at.elapsed() < super::membership::ADOPTION_WINDOW;
        let member_check = match h.lock().group(&req.group_id) {
            Some(g) => Some(g.check_commit(&req.member_id, req.member_epoch, adoptable)),
            None if !req.member_id.is_empty() => Some(super::model::Group::new(req.group_id.clone()).check_commit(
                &req.member_id,
                req.member_epoch,
                adoptable,
            )),
            None => None,
        };
        if let Some(Err(e)) = member_check {
            return request_error(e);
        }
        let now = now_ms();
        let mut results: Vec<OffsetCommitResult> = Vec::with_capacity(req.partitions.len());
        let mut records = Vec::new();
        let mut valid = Vec::new();
        for (i, c) in req.partitions.iter().enumerate() {
            results.push(OffsetCommitResult { topic: c.topic.clone(), partition: c.partition, error: None });
            match self.check_commit_partition(c) {
                Ok(mut v) => {
                    v.commit_timestamp = now;
                    let key = OffsetKey { group: req.group_id.clone(), topic: c.topic.clone(), partition: c.partition };
                    records.push((key, Some(v)));
                    valid.push(i);
                }
                Err(e) => results[i].error = Some(e.into()),
            }
        }
        if !records.is_empty() {
            match self.append_offset_records(&h, &records).await {
                Ok(first) => {
                    let mut shard = h.lock();
                    for (n, (key, value)) in records.into_iter().enumerate() {
                        shard.apply(&key, first + n as u64, value);
                    }
                }
                Err(e) if Self::is_leadership_error(&e) => return request_error(e),
                Err(e) => {
                    for &i in &valid {
                        results[i].error = Some((&e).into());
                    }
                }
            }
        }
        for r in &results {
            if let Some(e) = &r.error {
                self.metrics.record_error(crate::api::grpc::errors::proto_kind(e));
            }
        }
        CommitOffsetsResponse { error: None, partitions: results }
    }

    /// `FetchOffsets`: the listed partitions (or every committed one), -1
    /// where the group committed nothing.
    pub(crate) async fn fetch_offsets(&self, req: FetchOffsetsRequest) -> FetchOffsetsResponse {
        let h = match self.shard_for(&req.group_id, false).await {
            Ok(h) => h,
            Err(e) => {
                self.metrics.record_error(e.kind());
                return FetchOffsetsResponse { error: Some(e.into()), partitions: Vec::new() };
            }
        };
        let image = self.controller.metadata();
        let shard = h.lock();
        let group = shard.group(&req.group_id);
        let lookup = |t: &str, p: u32| committed(t, p, group.and_then(|g| g.offset(t, p)));
        let mut partitions = Vec::new();
        if req.partitions.is_empty() {
            partitions = group.map(all_offsets).unwrap_or_default();
        }
        for tp in &req.partitions {
            if !tp.partitions.is_empty() {
                partitions.extend(tp.partitions.iter().map(|&p| lookup(&tp.topic, p)));
            } else if let Some(t) = image.topics.get(&tp.topic) {
                partitions.extend((0..t.partitions.len() as u32).map(|p| lookup(&tp.topic, p)));
            } else if let Some(g) = group {
                // A topic no longer in the metadata: what was committed for it.
                partitions
                    .extend(g.offsets().filter(|(t, _, _)| *t == tp.topic).map(|(t, p, v)| committed(t, p, Some(v))));
            }
        }
        FetchOffsetsResponse { error: None, partitions }
    }

    /// `ListGroups`: the live groups of every offsets partition led here.
    /// While a shard is loading the response carries
    /// `COORDINATOR_LOAD_IN_PROGRESS` (with the groups of the others).
    pub(crate) async fn list_groups(&self) -> ListGroupsResponse {
        self.groups.sweep(&self.replicas);
        let me = self.replicas.node_id();
        let image = self.replicas.image();
        let Some(t) = image.topics.get(OFFSETS_TOPIC) else { return ListGroupsResponse::default() };
        let led: Vec<u32> = t.partitions.iter().filter(|p| p.leader == Some(me)).map(|p| p.partition).collect();
        let shards = futures::future::join_all(led.into_iter().map(|i| self.shard_at(i))).await;
        let mut out = ListGroupsResponse::default();
        for s in shards {
            match s {
                Ok(h) => out.groups.extend(h.lock().groups().map(|g| GroupListing {
                    group_id: g.id.clone(),
                    state: g.state().as_str().to_string(),
                    coordinator: me,
                })),
                Err(e) if e.kind() == ErrorKind::CoordinatorLoadInProgress => out.error = Some(e.into()),
                // Leadership moved meanwhile: the new leader lists them.
                Err(_) => {}
            }
        }
        out.groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// `DescribeGroups`: state, members with their assignments, and committed offsets;
    /// `GROUP_ID_NOT_FOUND` (state `dead`) for an unknown group.
    pub(crate) async fn describe_groups(&self, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
        let mut out = DescribeGroupsResponse::default();
        for id in req.group_ids {
            let d = match self.coordinated_group(&id).await {
                Ok((_, group)) => GroupDescription {
                    group_id: id,
                    error: None,
                    state: group.state().as_str().to_string(),
                    group_epoch: group.membership.group_epoch,
                    assignor: group.membership.assignor().name().to_string(),
                    coordinator: self.replicas.node_id(),
                    members: group.membership.describe(),
                    offsets: all_offsets(&group),
                },
                Err(e) => {
                    self.metrics.record_error(e.kind());
                    GroupDescription {
                        group_id: id,
                        error: Some(e.into()),
                        state: GroupState::Dead.as_str().to_string(),
                        coordinator: self.replicas.node_id(),
                        ..Default::default()
                    }
                }
            };
            out.groups.push(d);
        }
        out
    }

    /// The shard and a copy of a live group this broker coordinates, or
    /// the error: invalid id, not the coordinator, `GROUP_ID_NOT_FOUND`.
    async fn coordinated_group(&self, id: &str) -> Result<(ShardHandle, Group), BrokerError> {
        validate_group_id(id)?;
        let not_found = || BrokerError::new(ErrorKind::GroupIdNotFound, format!("no group '{id}'"));
        if !self.controller.metadata().topics.contains_key(OFFSETS_TOPIC) {
            return Err(not_found());
        }
        let h = self.shard_for(id, false).await?;
        let group = h.lock().group(id).cloned().ok_or_else(not_found)?;
        Ok((h, group))
    }

    /// `DeleteGroups`: tombstones for every offset of each group, committed
    /// like acks=all, then the group is gone.
    pub(crate) async fn delete_groups(&self, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
        let mut out = DeleteGroupsResponse::default();
        for id in req.group_ids {
            let error = self.delete_group(&id).await.err();
            if let Some(e) = &error {
                self.metrics.record_error(e.kind());
            }
            out.results.push(GroupResult { group_id: id, error: error.map(Into::into) });
        }
        out
    }

    async fn delete_group(&self, id: &str) -> Result<(), BrokerError> {
        let (h, group) = self.coordinated_group(id).await?;
        group.check_delete()?;
        let tombstones: Vec<(OffsetKey, Option<OffsetValue>)> = group
            .offsets()
            .map(|(t, p, _)| (OffsetKey { group: id.to_string(), topic: t.to_string(), partition: p }, None))
            .collect();
        if tombstones.is_empty() {
            return Ok(());
        }
        let first = self.append_offset_records(&h, &tombstones).await?;
        let mut shard = h.lock();
        for (n, (key, _)) in tombstones.iter().enumerate() {
            shard.apply(key, first + n as u64, None);
        }
        Ok(())
    }
}
