//! One shared completion per batch (instead of a channel per record), and a
//! cheap hasher for the accumulator's maps.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use crate::error::ClientError;

/// The outcome of a batch: the offset of its first record (`None` with
/// `acks=0`), or the error that failed it.
pub(crate) type BatchOutcome = Result<Option<u64>, ClientError>;

#[derive(Debug, Default)]
pub(crate) struct CompletionState {
    pub outcome: Option<BatchOutcome>,
    /// Tasks waiting on records of the batch; a future keeps its slot.
    pub wakers: Vec<Waker>,
}

/// Where the records of one batch learn their outcome. Each
/// `DeliveryFuture` holds the `Arc` and its record's index in the batch.
#[derive(Debug)]
pub(crate) struct BatchCompletion {
    pub topic: Arc<str>,
    pub partition: u32,
    state: Mutex<CompletionState>,
}

impl BatchCompletion {
    pub(crate) fn new(topic: Arc<str>, partition: u32) -> Arc<Self> {
        Arc::new(BatchCompletion { topic, partition, state: Mutex::new(CompletionState::default()) })
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, CompletionState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the outcome (the first one wins) and wakes the waiting tasks.
    pub(crate) fn complete(&self, outcome: BatchOutcome) {
        let wakers = {
            let mut st = self.state();
            if st.outcome.is_some() {
                return;
            }
            st.outcome = Some(outcome);
            std::mem::take(&mut st.wakers)
        };
        for w in wakers {
            w.wake();
        }
    }
}

/// Owned by the batch: fails its records with `Closed` if the batch is
/// dropped without an outcome (the sender stopped), as a dropped channel
/// sender did.
#[derive(Debug)]
pub(crate) struct Completer(pub Arc<BatchCompletion>);

impl Completer {
    pub(crate) fn complete(&self, outcome: BatchOutcome) {
        self.0.complete(outcome);
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        self.0.complete(Err(ClientError::Closed));
    }
}

/// FxHash (as in rustc): much cheaper than SipHash for short keys; the keys
/// here (topic names, partition numbers) come from the application, not
/// from the network.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            #[allow(clippy::expect_used, reason = "chunks_exact(8) yields 8-byte chunks")]
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;
