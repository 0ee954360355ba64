//! The client side (a producer with a possibly stale metadata view, acks=all
//! and acks=1; sampling consumers reading below the leader's HW) and the
//! leader's produce path, mirroring produce.rs step by step.

use bytes::Bytes;
use strata_broker::sim::{commit_status, BrokerError as Error, ErrorKind as ErrorCode};
use strata_record::batch::{split_batches, BatchBuilder, RecordBatch};
use strata_storage::TopicPartition;

use super::{Ev, Msg, Pending, Waiter, World, BROKERS, CLIENT, PRODUCE_TIMEOUT, TOPIC};

/// min.insync.replicas of the simulated topic.
const MIN_ISR: usize = 2;

/// The records (offset, value) of a run of whole batches.
pub(super) fn records_of(bytes: Bytes) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    for b in split_batches(bytes, usize::MAX) {
        let b: RecordBatch = b.expect("a stored batch parses");
        for r in b.records() {
            let r = r.expect("a stored record parses");
            let v = r.value.map(|v| String::from_utf8_lossy(&v).into_owned()).unwrap_or_default();
            out.push((r.offset, v));
        }
    }
    out
}

impl World {
    /// The client refreshes its metadata from some live broker.
    fn refresh_view(&mut self) {
        let live: Vec<u32> = BROKERS.iter().copied().filter(|b| self.brokers[b].rm.is_some()).collect();
        if live.is_empty() {
            return;
        }
        let b = self.rng.pick(&live);
        self.view = self.brokers[&b].rm.as_ref().expect("live").image();
    }

    pub(super) fn produce_tick(&mut self) {
        if self.healed {
            return;
        }
        let next = self.rng.range(10, 60);
        self.after(next, Ev::ProduceTick);
        let partition = self.rng.range(0, u64::from(self.partitions) - 1) as u32;
        let acks = if self.rng.chance(750) { -1 } else { 1 };
        if self.rng.chance(100) {
            self.refresh_view();
        }
        let leader =
            self.view.topics.get(TOPIC).and_then(|t| t.partitions.get(partition as usize)).and_then(|p| p.leader);
        let Some(leader) = leader else {
            self.refresh_view();
            return;
        };
        let count = self.rng.range(1, 3);
        let mut builder = BatchBuilder::new();
        let mut values = Vec::new();
        for _ in 0..count {
            self.seq_no += 1;
            let value = format!("p{partition}-{}", self.seq_no);
            let ts = 1_700_000_000_000 + self.now() as i64;
            builder.append(ts, None, Some(value.as_bytes()), &[]).expect("record");
            values.push(value);
        }
        let records = builder.build().expect("batch");
        let id = self.id();
        self.pending.insert(id, Pending { partition, acks, values });
        self.send(CLIENT, leader, Msg::Produce { id, partition, acks, records });
    }

    /// The leader's produce path (produce.rs `append`): lookup, min ISR
    /// for acks=all, split and validate, append in the leader epoch, wake
    /// the followers; acks=all then waits for the high watermark.
    pub(super) fn produce_arrive(&mut self, b: u32, id: u64, partition: u32, acks: i32, records: Bytes) {
        let rm = self.brokers[&b].rm.as_ref().expect("live");
        let appended = (|| {
            let p = rm.lookup(TOPIC, partition)?;
            if acks == -1 {
                p.check_min_isr(ErrorCode::NotEnoughReplicas)?;
            }
            let max = p.log.config().max_batch_bytes;
            let mut batches = Vec::new();
            for b in split_batches(records, max) {
                batches.push(b.map_err(|e| Error::new(ErrorCode::InvalidRequest, e.to_string()))?);
            }
            let epoch = p.leader_epoch_if_leader().ok_or_else(|| p.not_leader())?;
            let info = p
                .log
                .append_batches(&batches, epoch)
                .map_err(|e| Error::new(ErrorCode::UnknownServerError, e.to_string()))?;
            p.after_leader_append();
            Ok::<_, Error>((p, epoch, info))
        })();
        match appended {
            Err(e) => {
                self.trace(format!("{b} rejects produce #{id}: {:?}", e.kind()));
                self.send(b, CLIENT, Msg::ProduceResp { id, result: Err(format!("{:?}", e.kind())) });
            }
            Ok((p, epoch, info)) => {
                self.trace(format!(
                    "{b} appended #{id} acks={acks} p{partition} e{epoch} [{}..={}]",
                    info.first_offset, info.last_offset
                ));
                self.wake_parked(b, partition);
                if acks == 1 {
                    self.send(b, CLIENT, Msg::ProduceResp { id, result: Ok(info.first_offset) });
                } else {
                    let deadline = self.now() + PRODUCE_TIMEOUT;
                    let w = Waiter { id, p, epoch, end: info.last_offset + 1, first: info.first_offset, deadline };
                    self.brokers.get_mut(&b).expect("broker").waiters.push(w);
                }
            }
        }
    }

    /// Completes or fails broker `b`'s acks=all waiters (produce.rs
    /// `commit_status`), checking that a completed one had a large enough
    /// ISR.
    pub(super) fn eval_waiters(&mut self, b: u32) {
        let now = self.now();
        let waiters = std::mem::take(&mut self.brokers.get_mut(&b).expect("broker").waiters);
        let mut keep = Vec::new();
        for w in waiters {
            let result = match commit_status(&w.p, w.epoch, w.end) {
                Ok(true) => {
                    let isr = w.p.state().isr;
                    if isr.len() < MIN_ISR {
                        self.violation(format!(
                            "broker {b} acknowledged acks=all #{} ({}@{}..{}) with ISR {isr:?} below min.insync.replicas {MIN_ISR}",
                            w.id, w.p.tp, w.first, w.end
                        ));
                    }
                    Ok(w.first)
                }
                Ok(false) if now >= w.deadline => Err("RequestTimedOut".to_string()),
                Ok(false) => {
                    keep.push(w);
                    continue;
                }
                Err(e) => Err(format!("{:?}", e.kind())),
            };
            self.trace(format!("{b} completes #{} {result:?}", w.id));
            self.send(b, CLIENT, Msg::ProduceResp { id: w.id, result });
        }
        let broker = self.brokers.get_mut(&b).expect("broker");
        keep.append(&mut broker.waiters);
        broker.waiters = keep;
    }

    pub(super) fn produce_reply(&mut self, id: u64, result: Result<u64, String>) {
        let Some(pending) = self.pending.remove(&id) else { return };
        match result {
            Ok(first) => {
                for (i, v) in pending.values.into_iter().enumerate() {
                    if pending.acks == -1 {
                        self.report.acked_all += 1;
                        self.acked_all.push((pending.partition, first + i as u64, v));
                    } else {
                        self.report.acked_one += 1;
                    }
                }
                self.trace(format!("client: #{id} acknowledged at {first}"));
            }
            Err(e) => {
                self.report.produce_errors += 1;
                self.trace(format!("client: #{id} failed {e}"));
                self.refresh_view();
            }
        }
    }

    /// A consumer reads a random stretch below a leader's HW; every record
    /// seen is remembered (and must never change).
    pub(super) fn consume_tick(&mut self) {
        if self.healed {
            return;
        }
        let next = self.rng.range(50, 150);
        self.after(next, Ev::ConsumeTick);
        let b = self.rng.pick(&BROKERS);
        let partition = self.rng.range(0, u64::from(self.partitions) - 1) as u32;
        let Some(rm) = self.brokers[&b].rm.as_ref() else { return };
        let Ok(p) = rm.lookup(TOPIC, partition) else { return };
        let hw = p.high_watermark();
        let start = p.log.log_start_offset();
        if hw <= start {
            return;
        }
        let from = self.rng.range(start, hw - 1);
        let read = p.log.read_up_to(from, 2048, hw).expect("read below the HW");
        for (offset, value) in records_of(read.batches) {
            if offset < from || offset >= hw {
                continue;
            }
            self.report.consumed += 1;
            match self.seen.get(&(partition, offset)) {
                Some(v) if *v != value => {
                    let old = v.clone();
                    self.violation(format!(
                        "a consumer read p{partition}@{offset} = {old} earlier and now {value} (from broker {b}, hw {hw})"
                    ));
                }
                Some(_) => {}
                None => {
                    self.seen.insert((partition, offset), value);
                }
            }
        }
    }

    /// No leader's high watermark goes down within its leader epoch, even
    /// across a restart (a restarted broker is fenced before it registers,
    /// so it never resumes an epoch it led).
    pub(super) fn check_hw(&mut self, b: u32) {
        let inc = self.brokers[&b].inc;
        let Some(rm) = self.brokers[&b].rm.as_ref() else { return };
        let mut ps = rm.partitions();
        ps.sort_by(|x, y| x.tp.cmp(&y.tp));
        for p in ps {
            let Some(epoch) = p.leader_epoch_if_leader() else { continue };
            let hw = p.high_watermark();
            let key = (b, p.tp.partition, epoch);
            match self.hw_seen.get(&key).copied() {
                Some((prev_inc, prev)) if hw < prev && prev_inc == inc => {
                    self.violation(format!(
                        "leader {b} of {} in epoch {epoch}: high watermark went down from {prev} to {hw}",
                        p.tp
                    ));
                }
                Some((_, prev)) if hw < prev => {
                    self.report.hw_restart_regressions += 1;
                    self.violation(format!(
                        "leader {b} of {} restarted and resumed epoch {epoch}: high watermark {prev} -> {hw}",
                        p.tp
                    ));
                }
                Some((prev_inc, prev)) if hw == prev && prev_inc == inc => continue,
                _ => {}
            }
            self.hw_seen.insert(key, (inc, hw));
        }
    }

    /// The topic's partition `i` as a storage key.
    pub(super) fn tp(i: u32) -> TopicPartition {
        TopicPartition { topic: TOPIC.to_string(), partition: i }
    }
}
