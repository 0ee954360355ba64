//! The consumer's group offsets: where a partition of a group starts (the
//! committed offset), commits (sync, async, auto, explicit) and `close`.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;
use strata_record::TopicPartition;

use super::group::{CommitHandle, GroupState};
use super::{offsets, Consumer, SeekTo};
use crate::error::ClientError;
use crate::PartitionOffset;

impl Consumer {
    /// Where each partition of a group starts: its committed offset when
    /// it is within the log, else per `auto_offset_reset`.
    pub(super) async fn group_starts(
        &self,
        group: &GroupState,
        missing: Vec<TopicPartition>,
    ) -> Result<Vec<(TopicPartition, SeekTo)>, ClientError> {
        let mut by_topic: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for TopicPartition { topic: t, partition: p } in &missing {
            by_topic.entry(t.clone()).or_default().push(*p);
        }
        let asked: Vec<(String, Vec<u32>)> = by_topic.into_iter().collect();
        let committed: HashMap<TopicPartition, u64> = group
            .groups
            .fetch(&group.id, Some(&asked))
            .await?
            .into_iter()
            .filter_map(|c| Some((TopicPartition::of(c.topic, c.partition), c.offset?)))
            .collect();
        // The log bounds of partitions with a commit, to check it is in range.
        let with_commit: Vec<&TopicPartition> = missing.iter().filter(|tp| committed.contains_key(*tp)).collect();
        // One lookup per bound: a request names each partition once.
        let starts: Vec<(TopicPartition, SeekTo)> =
            with_commit.iter().map(|&tp| (tp.clone(), SeekTo::Beginning)).collect();
        let ends: Vec<(TopicPartition, SeekTo)> = with_commit.iter().map(|&tp| (tp.clone(), SeekTo::End)).collect();
        let starts = offsets::resolve(&self.cluster, &starts).await?;
        let ends = offsets::resolve(&self.cluster, &ends).await?;
        let range: HashMap<&TopicPartition, (u64, u64)> =
            with_commit.iter().enumerate().map(|(i, tp)| (*tp, (starts[i], ends[i]))).collect();
        let reset = self.config.auto_offset_reset;
        let mut starts = Vec::with_capacity(missing.len());
        let mut from_commits = Vec::new();
        for tp in &missing {
            let to = match (committed.get(tp), range.get(tp)) {
                (Some(&c), Some(&(start, end))) if c >= start && c <= end => {
                    from_commits.push((tp.clone(), c));
                    SeekTo::Offset(c)
                }
                (Some(&c), Some(&(start, end))) => {
                    tracing::info!(
                        group = %group.id, topic = %tp.topic, partition = tp.partition, committed = c, start, end, ?reset,
                        "committed offset is out of range: resetting"
                    );
                    reset.seek_to()
                }
                _ => reset.seek_to(),
            };
            starts.push((tp.clone(), to));
        }
        group.note_committed(from_commits);
        Ok(starts)
    }

    /// The group id, if the consumer has one.
    pub fn group_id(&self) -> Option<&str> {
        self.group.as_ref().map(|g| g.id.as_str())
    }

    fn group_or_err(&self) -> Result<&GroupState, ClientError> {
        if self.closed {
            return Err(ClientError::Closed);
        }
        self.group.as_ref().ok_or_else(|| {
            ClientError::InvalidArgument("committed offsets need a consumer group (ConsumerConfig::group_id)".into())
        })
    }

    /// The positions of the assigned partitions that have one.
    pub(super) fn current_positions(&self) -> Vec<PartitionOffset> {
        self.assignment
            .iter()
            .filter_map(|tp| Some(PartitionOffset::new(tp.clone(), *self.positions.get(tp)?)))
            .collect()
    }

    /// Commits the current position of every assigned partition (the
    /// offset after the last record handed out by `poll` or `stream`, or
    /// where it was sought to) to the group, and waits for the coordinator's
    /// answer. Commits are applied in the order they were asked for.
    pub async fn commit_sync(&self) -> Result<(), ClientError> {
        self.commit_async().await
    }

    /// Starts committing the current positions (as `commit_sync`) in the
    /// background; the handle yields the result. Commits are applied in the
    /// order they were asked for.
    pub fn commit_async(&self) -> CommitHandle {
        match self.group_or_err() {
            Ok(group) => group.commit(self.current_positions()),
            Err(e) => CommitHandle::ready(Err(e)),
        }
    }

    /// Commits the given positions (the next offset to consume in each
    /// partition, with its metadata) to the group (e.g. only what the
    /// application has processed) and waits for the answer. A subscribed
    /// consumer can commit only partitions the group assigned it (an
    /// invalid-argument error names the first other).
    pub async fn commit_offsets(&self, offsets: &[PartitionOffset]) -> Result<(), ClientError> {
        let group = self.group_or_err()?;
        self.check_owned(offsets)?;
        group.commit(offsets.to_vec()).await
    }

    /// The group's committed offset for a partition (the next offset to
    /// consume), `None` if it committed none.
    pub async fn committed(&self, topic: &str, partition: u32) -> Result<Option<u64>, ClientError> {
        let group = self.group_or_err()?;
        let asked = [(topic.to_owned(), vec![partition])];
        let committed = group.groups.fetch(&group.id, Some(&asked)).await?;
        Ok(committed.into_iter().find(|c| c.topic == topic && c.partition == partition).and_then(|c| c.offset))
    }

    /// With a group and auto-commit, once the interval has passed: queues a
    /// commit of the positions that changed since the last commit.
    pub(super) fn maybe_auto_commit(&mut self) {
        let Some(group) = &self.group else { return };
        if !self.config.enable_auto_commit || self.last_auto_commit.elapsed() < self.config.auto_commit_interval {
            return;
        }
        self.last_auto_commit = Instant::now();
        let changed = group.changed(self.current_positions());
        if !changed.is_empty() {
            group.commit_in_background(changed);
        }
    }

    /// Closes the consumer: with a group and `enable_auto_commit`, commits
    /// the current positions (and returns that commit's result); with a
    /// group, waits for commits still in flight. A subscribed consumer then
    /// calls `on_partitions_revoked` for what it owns and leaves the group
    /// (a static member's partitions stay reserved for it until its
    /// session timeout). Later calls fail with [`ClientError::Closed`];
    /// closing again does nothing. Dropping a consumer without closing it
    /// stops its heartbeats without leaving: the group moves its partitions
    /// only after the session timeout.
    pub async fn close(&mut self) -> Result<(), ClientError> {
        if self.closed {
            return Ok(());
        }
        self.prefetch = None;
        if self.membership.is_some() {
            let result = self.leave_group().await;
            self.closed = true;
            self.buffered.clear();
            return result;
        }
        let result = match &self.group {
            Some(group) if self.config.enable_auto_commit => group.commit(self.current_positions()).await,
            // An empty commit: done once every earlier one is.
            Some(group) => group.commit(Vec::new()).await,
            None => Ok(()),
        };
        self.closed = true;
        self.buffered.clear();
        result
    }
}
