//! The current-leader-epoch check Kafka's Fetch (v9+), ListOffsets (v4+)
//! and OffsetForLeaderEpoch requests carry (KIP-320): a client that saw an
//! older leader epoch is fenced, one that saw a newer one (this broker has
//! not heard of it yet) is told to retry.

use kafka_protocol::error::ResponseError;

use crate::partition::Partition;

/// Kafka's error code when `current` (-1: the client does not know, skip
/// the check) is not the epoch of the leader `p`; a follower is not
/// checked here (the request's own path answers NOT_LEADER_OR_FOLLOWER).
pub(crate) fn check(p: &Partition, current: i32) -> Result<(), i16> {
    let (Ok(current), Some(epoch)) = (u32::try_from(current), p.leader_epoch_if_leader()) else { return Ok(()) };
    match current.cmp(&epoch) {
        std::cmp::Ordering::Less => Err(ResponseError::FencedLeaderEpoch.code()),
        std::cmp::Ordering::Greater => Err(ResponseError::UnknownLeaderEpoch.code()),
        std::cmp::Ordering::Equal => Ok(()),
    }
}
