//! When the healed cluster is quiescent, and the final checks against the
//! logs on disk (`docs/replication.md`, "What this guarantees").

use std::collections::BTreeMap;

use bytes::Bytes;
use strata_storage::Log;

use super::client::records_of;
use super::{World, BROKERS, TOPIC};

/// Every byte of a log, read from its start.
fn read_all(log: &Log) -> Vec<u8> {
    let (mut out, mut from, end) = (Vec::new(), log.log_start_offset(), log.log_end_offset());
    while from < end {
        let r = log.read(from, 1 << 20).expect("read the whole log");
        if r.next_offset <= from {
            break;
        }
        out.extend_from_slice(&r.batches);
        from = r.next_offset;
    }
    out
}

impl World {
    /// All brokers up with the latest metadata, every partition led with
    /// a full ISR, every replica at the leader's end with HW = LEO.
    pub(super) fn is_quiescent(&self) -> bool {
        let Some(topic) = self.image.topics.get(TOPIC) else { return false };
        for b in BROKERS {
            match &self.brokers[&b].rm {
                Some(rm) if rm.image().offset == self.image.offset => {}
                _ => return false,
            }
        }
        for info in &topic.partitions {
            let Some(leader) = info.leader else { return false };
            if info.isr.len() != BROKERS.len() {
                return false;
            }
            let tp = Self::tp(info.partition);
            let lp = self.brokers[&leader].rm.as_ref().and_then(|rm| rm.replica(&tp));
            let Some(lp) = lp else { return false };
            if lp.leader_epoch_if_leader() != Some(info.leader_epoch) {
                return false;
            }
            let leo = lp.log.log_end_offset();
            for b in BROKERS {
                let Some(p) = self.brokers[&b].rm.as_ref().and_then(|rm| rm.replica(&tp)) else { return false };
                if p.log.log_end_offset() != leo || p.high_watermark() != leo {
                    return false;
                }
            }
        }
        true
    }

    /// Each partition's controller state and each replica's, for a report.
    pub(super) fn describe_state(&self) -> String {
        let mut out = String::new();
        let Some(topic) = self.image.topics.get(TOPIC) else { return "no topic".into() };
        for info in &topic.partitions {
            out.push_str(&format!(
                "\n  p{}: leader {:?} epoch {} isr {:?} pe {};",
                info.partition, info.leader, info.leader_epoch, info.isr, info.partition_epoch
            ));
            for b in BROKERS {
                let p = self.brokers[&b].rm.as_ref().and_then(|rm| rm.replica(&Self::tp(info.partition)));
                match p {
                    Some(p) => {
                        let st = p.state();
                        out.push_str(&format!(
                            " [{b}: leo {} hw {} epoch {} leader? {:?} isr {:?} cache {:?}]",
                            p.log.log_end_offset(),
                            p.high_watermark(),
                            st.leader_epoch,
                            p.leader_epoch_if_leader(),
                            st.isr,
                            p.log.epoch_entries()
                        ));
                    }
                    None => out.push_str(&format!(" [{b}: none]")),
                }
            }
        }
        for b in BROKERS {
            let applied = self.brokers[&b].rm.as_ref().map(|rm| rm.image().offset);
            out.push_str(&format!("\n  broker {b}: applied {applied:?} of {}", self.image.offset));
        }
        out
    }

    /// The oracle: identical replicas, dense offsets, every acks=all
    /// acknowledged record at its offset, every consumed record unchanged.
    pub(super) fn final_oracle(&mut self) {
        let mut finals: BTreeMap<u32, BTreeMap<u64, String>> = BTreeMap::new();
        for i in 0..self.partitions {
            let tp = Self::tp(i);
            let mut logs: Vec<(u32, Vec<u8>)> = Vec::new();
            for b in BROKERS {
                let p = self.brokers[&b].rm.as_ref().and_then(|rm| rm.replica(&tp)).expect("replica");
                logs.push((b, read_all(&p.log)));
            }
            let (b0, first) = &logs[0];
            for (b, bytes) in &logs[1..] {
                if bytes != first {
                    let at = first
                        .iter()
                        .zip(bytes.iter())
                        .position(|(x, y)| x != y)
                        .unwrap_or(first.len().min(bytes.len()));
                    self.violation(format!(
                        "{tp}: replicas {b0} and {b} differ ({} vs {} bytes, first difference at byte {at})",
                        first.len(),
                        bytes.len()
                    ));
                }
            }
            let records = records_of(Bytes::from(first.clone()));
            let mut map = BTreeMap::new();
            for (expected, (offset, value)) in records.into_iter().enumerate() {
                if offset != expected as u64 {
                    self.violation(format!("{tp}: offsets not dense: record {expected} has offset {offset}"));
                    break;
                }
                map.insert(offset, value);
            }
            self.trace(format!("final {tp}: {} records", map.len()));
            finals.insert(i, map);
        }
        let acked = std::mem::take(&mut self.acked_all);
        for (partition, offset, value) in &acked {
            let found = finals.get(partition).and_then(|m| m.get(offset));
            if found != Some(value) {
                self.violation(format!(
                    "acks=all record {value} acknowledged at p{partition}@{offset} is lost: the log holds {found:?} there"
                ));
            }
        }
        let seen = std::mem::take(&mut self.seen);
        for ((partition, offset), value) in &seen {
            let found = finals.get(partition).and_then(|m| m.get(offset));
            if found != Some(value) {
                self.violation(format!(
                    "a consumer read {value} at p{partition}@{offset} below the HW, but the final log holds {found:?}"
                ));
            }
        }
    }
}
