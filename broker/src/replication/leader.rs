//! [`LeaderState`]: what a partition leader knows about its followers, and
//! the decisions `docs/replication.md` derives from it — the high watermark over the
//! maximal ISR, and when to shrink or expand the ISR. Pure: no I/O, time is
//! passed in, so every rule is unit-tested directly.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One follower as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerProgress {
    /// Its log end offset (its last fetch offset); `None` until it fetches
    /// in this leader epoch.
    pub leo: Option<u64>,
    /// The last time it was caught up with the leader (Kafka's
    /// `lastCaughtUpTimeMs`).
    pub last_caught_up: Instant,
    /// When it last fetched, and the leader's LEO at that moment.
    last_fetch: Option<(Instant, u64)>,
}

/// An ISR change proposed to the controller and not yet seen committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingIsr {
    /// The proposed ISR.
    pub isr: Vec<u32>,
    /// When it was proposed (a lost proposal is retried after a while).
    pub proposed_at: Instant,
}

/// The leader side of one partition in one leader epoch.
#[derive(Debug, Clone)]
pub struct LeaderState {
    /// This broker.
    pub leader_id: u32,
    /// The epoch this broker leads in.
    pub leader_epoch: u32,
    /// The controller's partition epoch of the ISR below.
    pub partition_epoch: u32,
    /// The log end offset when this epoch began: a follower joins the ISR
    /// only once it reached it (it has fetched in this epoch).
    pub epoch_start_offset: u64,
    /// All assigned replicas.
    pub replicas: Vec<u32>,
    /// The committed ISR (from the controller's metadata).
    pub isr: Vec<u32>,
    /// An ISR change in flight.
    pub pending: Option<PendingIsr>,
    followers: BTreeMap<u32, FollowerProgress>,
    high_watermark: u64,
}

/// How long an unanswered ISR proposal blocks the next one.
pub(crate) const PENDING_ISR_RETRY: Duration = Duration::from_secs(5);

impl LeaderState {
    /// A leader taking over at `log_end` with the high watermark it had
    /// (`high_watermark`, at most `log_end`). Followers get a full
    /// `replica.lag.time.max` from now before they can be shrunk out.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        leader_id: u32,
        leader_epoch: u32,
        partition_epoch: u32,
        replicas: Vec<u32>,
        isr: Vec<u32>,
        log_end: u64,
        high_watermark: u64,
        now: Instant,
    ) -> Self {
        let followers = replicas
            .iter()
            .filter(|&&r| r != leader_id)
            .map(|&r| (r, FollowerProgress { leo: None, last_caught_up: now, last_fetch: None }))
            .collect();
        LeaderState {
            leader_id,
            leader_epoch,
            partition_epoch,
            epoch_start_offset: log_end,
            replicas,
            isr,
            pending: None,
            followers,
            high_watermark: high_watermark.min(log_end),
        }
    }

    /// The high watermark (never decreases while this state lives).
    pub fn high_watermark(&self) -> u64 {
        self.high_watermark
    }

    /// A follower's progress, if it is a replica.
    pub fn follower(&self, id: u32) -> Option<&FollowerProgress> {
        self.followers.get(&id)
    }

    /// Applies a committed ISR from the controller (same leader epoch). A
    /// pending proposal is settled by it (whether ours won or not).
    pub fn set_isr(&mut self, partition_epoch: u32, isr: Vec<u32>) {
        if partition_epoch < self.partition_epoch {
            return;
        }
        self.partition_epoch = partition_epoch;
        self.isr = isr;
        self.pending = None;
    }

    /// Takes a replica set changed within this epoch (a reassignment): new
    /// followers start unheard-from (outside the high watermark until they
    /// join the ISR), removed ones are forgotten.
    pub fn set_replicas(&mut self, replicas: &[u32], now: Instant) {
        if self.replicas == replicas {
            return;
        }
        self.followers.retain(|r, _| replicas.contains(r));
        for &r in replicas.iter().filter(|&&r| r != self.leader_id) {
            self.followers.entry(r).or_insert(FollowerProgress { leo: None, last_caught_up: now, last_fetch: None });
        }
        self.replicas = replicas.to_vec();
    }

    /// Records a fetch by follower `replica` at `fetch_offset` (its LEO)
    /// while the leader's log ends at `leader_leo`. Returns false for a
    /// broker that is not a follower of this partition.
    pub fn record_fetch(&mut self, replica: u32, fetch_offset: u64, leader_leo: u64, now: Instant) -> bool {
        let Some(f) = self.followers.get_mut(&replica) else { return false };
        if fetch_offset >= leader_leo {
            f.last_caught_up = now;
        } else if let Some((at, leo_then)) = f.last_fetch {
            // Caught up to where the leader was at its previous fetch: it
            // was caught up then (Kafka's rule, so steady appends do not
            // make a keeping-up follower look lagging).
            if fetch_offset >= leo_then {
                f.last_caught_up = f.last_caught_up.max(at);
            }
        }
        f.leo = Some(fetch_offset);
        f.last_fetch = Some((now, leader_leo));
        true
    }

    /// The committed ISR plus members whose addition is pending: the set
    /// the high watermark waits for (`docs/replication.md`: both choices err on the
    /// safe side).
    pub fn maximal_isr(&self) -> Vec<u32> {
        let mut m = self.isr.clone();
        if let Some(p) = &self.pending {
            for r in &p.isr {
                if !m.contains(r) {
                    m.push(*r);
                }
            }
        }
        m
    }

    /// Recomputes the high watermark for a leader log ending at `leader_leo`:
    /// the minimum LEO over the maximal ISR (a member that has not fetched in
    /// this epoch holds it where it is). Returns the new value if it rose.
    pub fn update_high_watermark(&mut self, leader_leo: u64) -> Option<u64> {
        let mut hw = leader_leo;
        for r in self.maximal_isr() {
            if r == self.leader_id {
                continue;
            }
            match self.followers.get(&r).and_then(|f| f.leo) {
                Some(leo) => hw = hw.min(leo),
                None => return None,
            }
        }
        (hw > self.high_watermark).then(|| {
            self.high_watermark = hw;
            hw
        })
    }

    /// The ISR the leader should propose now, if any: laggards (no catch-up
    /// for `lag_max`) out, caught-up followers (LEO ≥ HW and ≥ this epoch's
    /// start) in. Never empty, always with the leader; `None` while a
    /// recent proposal is unanswered or nothing changes.
    pub fn desired_isr(&self, now: Instant, lag_max: Duration) -> Option<Vec<u32>> {
        if self.pending.as_ref().is_some_and(|p| now.duration_since(p.proposed_at) < PENDING_ISR_RETRY) {
            return None;
        }
        let mut isr: Vec<u32> = self
            .isr
            .iter()
            .copied()
            .filter(|&r| {
                r == self.leader_id
                    || self.followers.get(&r).is_some_and(|f| now.duration_since(f.last_caught_up) <= lag_max)
            })
            .collect();
        if !isr.contains(&self.leader_id) {
            isr.insert(0, self.leader_id);
        }
        for (&r, f) in &self.followers {
            let caught_up = f.leo.is_some_and(|leo| leo >= self.high_watermark && leo >= self.epoch_start_offset);
            if !isr.contains(&r) && caught_up && now.duration_since(f.last_caught_up) <= lag_max {
                isr.push(r);
            }
        }
        let mut sorted_new = isr.clone();
        sorted_new.sort_unstable();
        let mut sorted_old = self.isr.clone();
        sorted_old.sort_unstable();
        (sorted_new != sorted_old).then_some(isr)
    }

    /// Notes a proposal in flight.
    pub fn mark_pending(&mut self, isr: Vec<u32>, now: Instant) {
        self.pending = Some(PendingIsr { isr, proposed_at: now });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: Duration = Duration::from_secs(10);

    fn leader(now: Instant) -> LeaderState {
        LeaderState::new(1, 5, 7, vec![1, 2, 3], vec![1, 2, 3], 100, 90, now)
    }

    #[test]
    fn high_watermark_is_the_minimum_over_the_isr_and_never_falls() {
        let t = Instant::now();
        let mut l = leader(t);
        assert_eq!(l.high_watermark(), 90);
        assert_eq!(l.update_high_watermark(100), None, "followers not heard from yet");
        l.record_fetch(2, 100, 100, t);
        assert_eq!(l.update_high_watermark(100), None, "follower 3 unknown");
        l.record_fetch(3, 95, 100, t);
        assert_eq!(l.update_high_watermark(100), Some(95));
        l.record_fetch(3, 93, 100, t); // a slower report never lowers the HW
        assert_eq!(l.update_high_watermark(100), None);
        assert_eq!(l.high_watermark(), 95);
        l.record_fetch(3, 100, 110, t);
        assert_eq!(l.update_high_watermark(110), Some(100));
    }

    #[test]
    fn a_follower_outside_the_isr_does_not_hold_the_high_watermark() {
        let t = Instant::now();
        let mut l = LeaderState::new(1, 1, 1, vec![1, 2, 3], vec![1, 2], 50, 0, t);
        l.record_fetch(2, 50, 50, t);
        assert_eq!(l.update_high_watermark(50), Some(50));
        // ...but a pending addition does.
        l.mark_pending(vec![1, 2, 3], t);
        assert_eq!(l.update_high_watermark(60), None);
        l.record_fetch(3, 55, 60, t);
        l.record_fetch(2, 60, 60, t);
        assert_eq!(l.update_high_watermark(60), Some(55));
    }

    #[test]
    fn laggards_are_shrunk_out_and_caught_up_followers_added() {
        let t = Instant::now();
        let mut l = leader(t);
        l.record_fetch(2, 100, 100, t);
        l.record_fetch(3, 80, 100, t);
        assert_eq!(l.desired_isr(t + LAG, LAG), None, "within the lag window");
        let later = t + LAG + Duration::from_millis(1);
        l.record_fetch(2, 100, 100, later);
        assert_eq!(l.desired_isr(later, LAG), Some(vec![1, 2]));
        l.mark_pending(vec![1, 2], later);
        assert_eq!(l.desired_isr(later, LAG), None, "one proposal at a time");
        assert!(l.desired_isr(later + PENDING_ISR_RETRY, LAG).is_some(), "retried after a while");
        l.set_isr(8, vec![1, 2]);
        assert!(l.pending.is_none());
        // Follower 3 catches up to the HW in this epoch: back in.
        l.update_high_watermark(100);
        l.record_fetch(3, 100, 100, later);
        assert_eq!(l.desired_isr(later, LAG), Some(vec![1, 2, 3]));
    }

    #[test]
    fn a_follower_behind_the_epoch_start_stays_out() {
        let t = Instant::now();
        let mut l = LeaderState::new(1, 2, 2, vec![1, 2], vec![1], 100, 100, t);
        l.record_fetch(2, 99, 100, t);
        assert_eq!(l.desired_isr(t, LAG), None);
        l.record_fetch(2, 100, 100, t);
        assert_eq!(l.desired_isr(t, LAG), Some(vec![1, 2]));
    }

    #[test]
    fn keeping_up_under_steady_appends_counts_as_caught_up() {
        let t = Instant::now();
        let mut l = leader(t);
        // Each fetch reaches where the leader was at the previous fetch.
        let mut leo = 100;
        for i in 1..=30u64 {
            let now = t + Duration::from_secs(i);
            l.record_fetch(2, leo, leo + 10, now);
            l.record_fetch(3, leo, leo + 10, now);
            leo += 10;
        }
        assert_eq!(l.desired_isr(t + Duration::from_secs(30), LAG), None);
        assert!(l.record_fetch(2, 0, 0, t));
        assert!(!l.record_fetch(9, 0, 0, t), "not a replica");
    }

    #[test]
    fn a_replica_added_by_a_reassignment_joins_the_isr_once_caught_up() {
        let t = Instant::now();
        let mut l = LeaderState::new(1, 1, 1, vec![1, 2], vec![1, 2], 100, 100, t);
        l.record_fetch(2, 100, 100, t);
        assert!(!l.record_fetch(3, 0, 100, t), "not a replica yet");
        l.set_replicas(&[1, 2, 3], t);
        assert!(l.record_fetch(3, 40, 100, t));
        assert_eq!(l.desired_isr(t, LAG), None, "behind the high watermark");
        assert_eq!(l.update_high_watermark(110), None, "follower 2 has not reached 110 yet");
        l.record_fetch(2, 110, 110, t);
        assert_eq!(l.update_high_watermark(110), Some(110), "the catching-up replica does not hold the HW");
        l.record_fetch(3, 110, 110, t);
        assert_eq!(l.desired_isr(t, LAG), Some(vec![1, 2, 3]));
        // Completion drops broker 2.
        l.set_replicas(&[1, 3], t);
        assert!(l.follower(2).is_none());
        assert!(l.follower(3).is_some_and(|f| f.leo == Some(110)), "progress kept");
    }

    #[test]
    fn stale_isr_updates_are_ignored() {
        let t = Instant::now();
        let mut l = leader(t);
        l.set_isr(6, vec![1]);
        assert_eq!(l.isr, vec![1, 2, 3]);
    }
}
