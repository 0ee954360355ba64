//! OffsetForLeaderEpoch (KIP-101/320): where a leader epoch ends in the
//! leader's log, so a consumer that saw an older leader can check its
//! position was not truncated away. The same epoch cache answers followers.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::api::kafka::codes::code_of;
use crate::authorizer::{Resource, Session};
use crate::service::BrokerService;
use strata_metadata::AclOperation;

/// Answers `req` from this broker's replicas, which must lead.
pub(crate) fn handle(
    core: &BrokerService,
    session: &Session,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let mut r = OffsetForLeaderEpochResponse::default();
    for t in req.topics {
        let mut tr = OffsetForLeaderTopicResult::default();
        tr.topic = t.topic.clone();
        for p in t.partitions {
            let mut e = EpochEndOffset::default();
            e.partition = p.partition;
            e.leader_epoch = -1;
            e.end_offset = -1;
            let answered = core
                .authorize(session, AclOperation::Describe, Resource::Topic(&t.topic.0))
                .map_err(|e| code_of(e.kind()))
                .and_then(|()| answer(core, &t.topic.0, p.partition, p.current_leader_epoch, p.leader_epoch));
            match answered {
                Ok(Some((epoch, end))) => {
                    e.leader_epoch = epoch as i32;
                    e.end_offset = end as i64;
                }
                Ok(None) => {}
                Err(code) => e.error_code = code,
            }
            tr.partitions.push(e);
        }
        r.topics.push(tr);
    }
    r
}

/// `(epoch, end offset)`, `None` when the cache cannot tell (Kafka's
/// undefined epoch and offset), or Kafka's error code.
fn answer(
    core: &BrokerService,
    topic: &str,
    partition: i32,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> Result<Option<(u32, u64)>, i16> {
    let partition = u32::try_from(partition).map_err(|_| ResponseError::UnknownTopicOrPartition.code())?;
    let p = core.replicas.lookup(topic, partition).map_err(|e| code_of(e.kind()))?;
    if p.leader_epoch_if_leader().is_none() {
        return Err(ResponseError::NotLeaderOrFollower.code());
    }
    super::epoch::check(&p, current_leader_epoch)?;
    let Ok(asked) = u32::try_from(leader_epoch) else { return Ok(None) };
    Ok(p.log.end_offset_for_epoch(asked))
}
