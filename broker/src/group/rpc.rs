//! The group operations on `BrokerService`: commit, fetch, list, describe
//! and delete. Each validates its input, finds the shard this broker
//! coordinates (or says it does not), writes through
//! [`BrokerService::append_offset_records`] and updates the shard only
//! once that append is committed. They take and return the core's types
//! ([`super::views`]); the edges encode them.

use strata_record::TopicPartition;

use crate::error::{BrokerError, ErrorKind};

use super::coordinator::ShardHandle;
use super::model::Group;
use super::record::{OffsetKey, OffsetValue};
use super::views::{
    CommitOutcome, CommitPartition, GroupDescription, GroupList, GroupListing, GroupOffset, OffsetCommit,
    PartitionCommit,
};
use super::writer::now_ms;
use super::{validate_group_id, MAX_METADATA_BYTES, OFFSETS_TOPIC};
use crate::service::BrokerService;

/// Every committed offset of a group, in (topic, partition) order.
fn all_offsets(g: &Group) -> Vec<GroupOffset> {
    g.offsets().map(|(t, p, v)| GroupOffset { tp: TopicPartition::of(t, p), committed: Some(v.clone()) }).collect()
}

impl BrokerService {
    fn is_leadership_error(e: &BrokerError) -> bool {
        matches!(
            e.kind(),
            ErrorKind::NotCoordinator | ErrorKind::CoordinatorNotAvailable | ErrorKind::CoordinatorLoadInProgress
        )
    }

    /// Checks one partition of a commit against the metadata and limits.
    fn check_commit_partition(&self, c: &CommitPartition) -> Result<OffsetValue, BrokerError> {
        let image = self.controller.metadata();
        let Some(t) = image.topics.get(&c.tp.topic) else {
            return Err(BrokerError::new(
                ErrorKind::UnknownTopicOrPartition,
                format!("unknown topic '{}'", c.tp.topic),
            ));
        };
        if c.tp.partition as usize >= t.partitions.len() {
            return Err(BrokerError::new(
                ErrorKind::UnknownTopicOrPartition,
                format!(
                    "topic '{}' has {} partitions; there is no partition {}",
                    c.tp.topic,
                    t.partitions.len(),
                    c.tp.partition
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

    /// Commits offsets: validates each partition, appends the valid ones
    /// as one batch (acks=all), then records them. A request-level failure
    /// (invalid group, not the coordinator, a fenced member) is the error.
    pub(crate) async fn commit_offsets(&self, req: OffsetCommit) -> Result<CommitOutcome, BrokerError> {
        let outcome = self.try_commit_offsets(req).await;
        match &outcome {
            Err(e) => self.metrics.record_error(e.kind()),
            Ok(o) => {
                for (_, p) in &o.partitions {
                    match p {
                        PartitionCommit::Rejected(e) => self.metrics.record_error(e.kind()),
                        PartitionCommit::WriteFailed => {
                            if let Some(e) = &o.write_error {
                                self.metrics.record_error(e.kind());
                            }
                        }
                        PartitionCommit::Committed => {}
                    }
                }
            }
        }
        outcome
    }

    async fn try_commit_offsets(&self, req: OffsetCommit) -> Result<CommitOutcome, BrokerError> {
        validate_group_id(&req.group_id)?;
        let h = self.shard_for(&req.group_id, true).await?;
        let adoptable = h.loaded_at.elapsed() < super::membership::ADOPTION_WINDOW;
        let member_check = match h.lock().group(&req.group_id) {
            Some(g) => Some(g.check_commit(&req.member_id, req.member_epoch, adoptable)),
            None if !req.member_id.is_empty() => {
                Some(Group::new(req.group_id.clone()).check_commit(&req.member_id, req.member_epoch, adoptable))
            }
            None => None,
        };
        if let Some(Err(e)) = member_check {
            return Err(e);
        }
        let now = now_ms();
        let mut partitions = Vec::with_capacity(req.partitions.len());
        let mut records = Vec::new();
        for c in &req.partitions {
            let result = match self.check_commit_partition(c) {
                Ok(mut v) => {
                    v.commit_timestamp = now;
                    let key =
                        OffsetKey { group: req.group_id.clone(), topic: c.tp.topic.clone(), partition: c.tp.partition };
                    records.push((key, Some(v)));
                    PartitionCommit::Committed
                }
                Err(e) => PartitionCommit::Rejected(e),
            };
            partitions.push((c.tp.clone(), result));
        }
        let mut write_error = None;
        if !records.is_empty() {
            match self.append_offset_records(&h, &records).await {
                Ok(first) => {
                    let mut shard = h.lock();
                    for (n, (key, value)) in records.into_iter().enumerate() {
                        shard.apply(&key, first + n as u64, value);
                    }
                }
                Err(e) if Self::is_leadership_error(&e) => return Err(e),
                Err(e) => {
                    for (_, p) in &mut partitions {
                        if matches!(p, PartitionCommit::Committed) {
                            *p = PartitionCommit::WriteFailed;
                        }
                    }
                    write_error = Some(e);
                }
            }
        }
        Ok(CommitOutcome { partitions, write_error })
    }

    /// The committed offsets of the listed partitions (a topic with no
    /// partitions listed: all of its partitions), or of every partition the
    /// group committed for when `topics` is empty; `committed` is `None`
    /// where the group committed nothing.
    pub(crate) async fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Vec<(String, Vec<u32>)>,
    ) -> Result<Vec<GroupOffset>, BrokerError> {
        let h = self.shard_for(group_id, false).await.inspect_err(|e| self.metrics.record_error(e.kind()))?;
        let image = self.controller.metadata();
        let shard = h.lock();
        let group = shard.group(group_id);
        let lookup = |t: &str, p: u32| GroupOffset {
            tp: TopicPartition::of(t, p),
            committed: group.and_then(|g| g.offset(t, p)).cloned(),
        };
        let mut offsets = Vec::new();
        if topics.is_empty() {
            offsets = group.map(all_offsets).unwrap_or_default();
        }
        for (topic, partitions) in &topics {
            if !partitions.is_empty() {
                offsets.extend(partitions.iter().map(|&p| lookup(topic, p)));
            } else if let Some(t) = image.topics.get(topic) {
                offsets.extend((0..t.partitions.len() as u32).map(|p| lookup(topic, p)));
            } else if let Some(g) = group {
                // A topic no longer in the metadata: what was committed for it.
                offsets.extend(
                    g.offsets()
                        .filter(|(t, _, _)| t == topic)
                        .map(|(t, p, v)| GroupOffset { tp: TopicPartition::of(t, p), committed: Some(v.clone()) }),
                );
            }
        }
        Ok(offsets)
    }

    /// The live groups of every offsets partition led here, by id. While a
    /// shard is loading the list says so (with the groups of the others).
    pub(crate) async fn list_groups(&self) -> GroupList {
        self.groups.sweep(&self.replicas);
        let me = self.replicas.node_id();
        let image = self.replicas.image();
        let Some(t) = image.topics.get(OFFSETS_TOPIC) else { return GroupList::default() };
        let led: Vec<u32> = t.partitions.iter().filter(|p| p.leader == Some(me)).map(|p| p.partition).collect();
        let shards = futures::future::join_all(led.into_iter().map(|i| self.shard_at(i))).await;
        let mut out = GroupList::default();
        for s in shards {
            match s {
                Ok(h) => out.groups.extend(h.lock().groups().map(|g| GroupListing {
                    group_id: g.id.clone(),
                    state: g.state(),
                    coordinator: me,
                })),
                Err(e) if e.kind() == ErrorKind::CoordinatorLoadInProgress => out.loading = Some(e),
                // Leadership moved meanwhile: the new leader lists them.
                Err(_) => {}
            }
        }
        out.groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// State, members with their assignments, and committed offsets of
    /// each group, in request order; `GROUP_ID_NOT_FOUND` for an unknown
    /// group.
    pub(crate) async fn describe_groups(
        &self,
        group_ids: Vec<String>,
    ) -> Vec<(String, Result<GroupDescription, BrokerError>)> {
        let mut out = Vec::with_capacity(group_ids.len());
        for id in group_ids {
            let d = match self.coordinated_group(&id).await {
                Ok((_, group)) => Ok(GroupDescription {
                    state: group.state(),
                    group_epoch: group.membership.group_epoch,
                    assignor: group.membership.assignor().name(),
                    coordinator: self.replicas.node_id(),
                    members: group.membership.describe(),
                    offsets: all_offsets(&group),
                }),
                Err(e) => {
                    self.metrics.record_error(e.kind());
                    Err(e)
                }
            };
            out.push((id, d));
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

    /// Deletes each group: tombstones for every offset, committed like
    /// acks=all, then the group is gone. The result per group, in request
    /// order.
    pub(crate) async fn delete_groups(&self, group_ids: Vec<String>) -> Vec<(String, Result<(), BrokerError>)> {
        let mut out = Vec::with_capacity(group_ids.len());
        for id in group_ids {
            let result = self.delete_group(&id).await;
            if let Err(e) = &result {
                self.metrics.record_error(e.kind());
            }
            out.push((id, result));
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
