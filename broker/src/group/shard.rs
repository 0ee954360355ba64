//! `Shard`: the groups of one offsets-topic partition, rebuilt by replaying
//! that partition's records in log order (commits set an offset, tombstones
//! delete it) and then kept current by the coordinator after each committed
//! append. Pure: no I/O, so replay is unit-tested directly.

use std::collections::BTreeMap;

use super::model::Group;
use super::record::{OffsetKey, OffsetValue, RecordError};

/// The groups stored in one offsets partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Shard {
    groups: BTreeMap<String, Group>,
}

impl Shard {
    /// An empty shard.
    pub(crate) fn new() -> Self {
        Shard::default()
    }

    /// Replays one record of the offsets log at `record_offset`: `value`
    /// `None` is a tombstone. Records that do not parse are errors (the
    /// caller logs and skips them); the shard is unchanged then.
    pub(crate) fn replay(
        &mut self,
        record_offset: u64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<(), RecordError> {
        let key = OffsetKey::decode(key.ok_or(RecordError::Invalid("record without a key"))?)?;
        let value = value.map(OffsetValue::decode).transpose()?;
        self.apply(&key, record_offset, value);
        Ok(())
    }

    /// Applies a commit (`Some`) or a tombstone (`None`) written at
    /// `record_offset`; older than what the key holds, it changes nothing.
    pub(crate) fn apply(&mut self, key: &OffsetKey, record_offset: u64, value: Option<OffsetValue>) {
        let group = self.groups.entry(key.group.clone()).or_insert_with(|| Group::new(key.group.clone()));
        group.apply(&key.topic, key.partition, record_offset, value);
    }

    /// Ends a full replay: tombstones and groups left with nothing are
    /// dropped (no older record can arrive after the whole log was read).
    pub(crate) fn finish_load(&mut self) {
        for g in self.groups.values_mut() {
            g.compact();
        }
        self.groups.retain(|_, g| !g.is_dead());
    }

    /// A live group (one with offsets or members).
    pub(crate) fn group(&self, id: &str) -> Option<&Group> {
        self.groups.get(id).filter(|g| !g.is_dead())
    }

    /// The group, created empty if unknown (membership changes, later).
    pub(crate) fn group_mut(&mut self, id: &str) -> &mut Group {
        self.groups.entry(id.to_string()).or_insert_with(|| Group::new(id))
    }

    /// Every group held (live or not), mutable: membership upkeep.
    pub(crate) fn groups_mut(&mut self) -> impl Iterator<Item = &mut Group> {
        self.groups.values_mut()
    }

    /// Every live group, by id.
    pub(crate) fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values().filter(|g| !g.is_dead())
    }

    /// How many live groups.
    pub(crate) fn len(&self) -> usize {
        self.groups().count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(g: &str, t: &str, p: u32) -> Vec<u8> {
        OffsetKey { group: g.into(), topic: t.into(), partition: p }.encode().unwrap()
    }

    fn val(offset: i64, meta: &str) -> Vec<u8> {
        OffsetValue { offset, metadata: meta.into(), commit_timestamp: 1000 + offset }.encode().unwrap()
    }

    /// The records of a small history, in log order.
    fn history() -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        vec![
            (key("a", "t", 0), Some(val(10, "x"))),
            (key("a", "t", 1), Some(val(5, ""))),
            (key("b", "t", 0), Some(val(1, ""))),
            (key("a", "t", 0), Some(val(12, "y"))), // overwrite
            (key("b", "t", 0), None),               // b deleted
            (key("c", "u", 3), Some(val(7, ""))),
            (key("c", "u", 3), None),
            (key("c", "u", 3), Some(val(8, "again"))), // recreated after deletion
        ]
    }

    fn replay_all(records: &[(Vec<u8>, Option<Vec<u8>>)]) -> Shard {
        let mut s = Shard::new();
        for (i, (k, v)) in records.iter().enumerate() {
            s.replay(i as u64, Some(k), v.as_deref()).unwrap();
        }
        s.finish_load();
        s
    }

    #[test]
    fn replay_applies_commits_overwrites_and_tombstones_in_order() {
        let s = replay_all(&history());
        let a = s.group("a").unwrap();
        assert_eq!(a.offset("t", 0).unwrap().offset, 12);
        assert_eq!(a.offset("t", 0).unwrap().metadata, "y");
        assert_eq!(a.offset("t", 1).unwrap().offset, 5);
        assert!(s.group("b").is_none(), "a fully deleted group is gone");
        assert_eq!(s.group("c").unwrap().offset("u", 3).unwrap().offset, 8);
        assert_eq!(s.groups().map(|g| g.id.as_str()).collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn reloading_the_same_log_gives_the_same_state() {
        let h = history();
        assert_eq!(replay_all(&h), replay_all(&h));
        // Live application (with tombstones kept) agrees with a replay.
        let mut live = Shard::new();
        for (i, (k, v)) in h.iter().enumerate() {
            live.replay(i as u64, Some(k), v.as_deref()).unwrap();
        }
        let replayed = replay_all(&h);
        for g in replayed.groups() {
            let l = live.group(&g.id).unwrap();
            assert_eq!(l.offsets().collect::<Vec<_>>(), g.offsets().collect::<Vec<_>>());
        }
        assert_eq!(live.len(), replayed.len());
    }

    #[test]
    fn late_application_of_an_older_record_changes_nothing() {
        let k = OffsetKey { group: "g".into(), topic: "t".into(), partition: 0 };
        let v = |o| Some(OffsetValue { offset: o, metadata: String::new(), commit_timestamp: 0 });
        let mut s = Shard::new();
        s.apply(&k, 11, v(2));
        s.apply(&k, 10, v(1)); // replicated earlier, applied later
        assert_eq!(s.group("g").unwrap().offset("t", 0).unwrap().offset, 2);
        s.apply(&k, 12, None);
        s.apply(&k, 9, v(0));
        assert!(s.group("g").is_none(), "a delete is not undone by an older commit");
    }

    #[test]
    fn bad_records_are_errors_and_leave_the_shard_unchanged() {
        let mut s = replay_all(&history());
        let before = s.clone();
        assert!(s.replay(100, None, Some(&val(1, ""))).is_err());
        assert!(s.replay(101, Some(&[0, 9]), None).is_err());
        assert!(s.replay(102, Some(&key("a", "t", 0)), Some(&[1, 2, 3])).is_err());
        assert_eq!(s, before);
    }
}
