//! The metadata journal: the recently applied metadata commands kept in
//! memory, so brokers can follow metadata as deltas from the offset they have
//! applied (`FetchMetadata`) instead of receiving whole images.
//!
//! The Raft thread publishes into it together with each new image, so a
//! reader always sees commands and an image of the same offset.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::metadata::MetadataImage;

/// Commands kept for delta fetches; a broker further behind gets a snapshot.
pub(crate) const JOURNAL_CAPACITY: usize = 10_000;

/// What a broker at some offset needs to catch up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataDelta {
    /// The commands after the requested offset, in order, and the offset
    /// reached after applying them.
    Entries {
        /// `(offset, JSON-encoded MetadataCommand)` pairs.
        entries: Vec<(u64, Bytes)>,
        /// The offset the follower is at after applying `entries`.
        offset: u64,
    },
    /// The whole image: the requested offset is older than what is kept.
    Snapshot(Arc<MetadataImage>),
}

#[derive(Debug)]
struct State {
    /// Every command with an offset above `base` and up to `image.offset` is in `entries`.
    base: u64,
    entries: VecDeque<(u64, Bytes)>,
    image: Arc<MetadataImage>,
}

/// Shared between the Raft thread (writer) and the handles (readers).
#[derive(Debug, Clone)]
pub(crate) struct MetadataJournal {
    state: Arc<Mutex<State>>,
    capacity: usize,
}

impl MetadataJournal {
    /// A journal starting at `image` (loaded from a snapshot and replay; the
    /// commands before it are not known individually).
    pub(crate) fn new(image: Arc<MetadataImage>, capacity: usize) -> Self {
        let state = State { base: image.offset, entries: VecDeque::new(), image };
        MetadataJournal { state: Arc::new(Mutex::new(state)), capacity: capacity.max(1) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes `image` with the commands applied since the last publish.
    /// `snapshot_installed` is the offset of a snapshot that replaced the
    /// image in between (`commands` then follow it): earlier commands no
    /// longer lead to the image.
    pub(crate) fn publish(
        &self,
        image: Arc<MetadataImage>,
        commands: Vec<(u64, Bytes)>,
        snapshot_installed: Option<u64>,
    ) {
        let mut s = self.state();
        if let Some(offset) = snapshot_installed {
            s.entries.clear();
            s.base = offset;
        }
        s.entries.extend(commands);
        while s.entries.len() > self.capacity {
            if let Some((offset, _)) = s.entries.pop_front() {
                s.base = offset;
            }
        }
        s.image = image;
    }

    /// The offset of the newest published image.
    pub(crate) fn offset(&self) -> u64 {
        self.state().image.offset
    }

    /// What a follower that applied everything up to `after` needs: the
    /// commands since (possibly none) or, when they are no longer kept, the
    /// whole image. A follower ahead of this node gets no entries and keeps
    /// its offset.
    pub(crate) fn since(&self, after: u64) -> MetadataDelta {
        let s = self.state();
        if after < s.base {
            return MetadataDelta::Snapshot(s.image.clone());
        }
        let entries = s.entries.iter().filter(|(o, _)| *o > after).cloned().collect();
        MetadataDelta::Entries { entries, offset: after.max(s.image.offset) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(offset: u64) -> Arc<MetadataImage> {
        Arc::new(MetadataImage { offset, ..Default::default() })
    }

    fn cmd(o: u64) -> (u64, Bytes) {
        (o, Bytes::from(format!("c{o}")))
    }

    #[test]
    fn deltas_then_snapshot_once_trimmed() {
        let j = MetadataJournal::new(image(5), 3);
        assert_eq!(j.since(5), MetadataDelta::Entries { entries: vec![], offset: 5 });
        assert!(matches!(j.since(4), MetadataDelta::Snapshot(i) if i.offset == 5));
        j.publish(image(8), vec![cmd(6), cmd(8)], None); // 7 was a no-op entry
        assert_eq!(j.since(5), MetadataDelta::Entries { entries: vec![cmd(6), cmd(8)], offset: 8 });
        assert_eq!(j.since(6), MetadataDelta::Entries { entries: vec![cmd(8)], offset: 8 });
        assert_eq!(j.since(7), MetadataDelta::Entries { entries: vec![cmd(8)], offset: 8 });
        j.publish(image(10), vec![cmd(9), cmd(10)], None);
        // Capacity 3: 6 was dropped, so a follower at 5 needs a snapshot.
        assert!(matches!(j.since(5), MetadataDelta::Snapshot(i) if i.offset == 10));
        assert_eq!(j.since(6), MetadataDelta::Entries { entries: vec![cmd(8), cmd(9), cmd(10)], offset: 10 });
        // A follower ahead of this node (it read from a more advanced voter).
        assert_eq!(j.since(12), MetadataDelta::Entries { entries: vec![], offset: 12 });
    }

    #[test]
    fn a_snapshot_install_resets_the_journal() {
        let j = MetadataJournal::new(image(2), 100);
        j.publish(image(4), vec![cmd(3), cmd(4)], None);
        j.publish(image(50), vec![], Some(50));
        assert!(matches!(j.since(4), MetadataDelta::Snapshot(i) if i.offset == 50));
        assert_eq!(j.since(50), MetadataDelta::Entries { entries: vec![], offset: 50 });
        j.publish(image(63), vec![cmd(62)], Some(60));
        assert!(matches!(j.since(50), MetadataDelta::Snapshot(i) if i.offset == 63));
        assert_eq!(j.since(60), MetadataDelta::Entries { entries: vec![cmd(62)], offset: 63 });
    }
}
