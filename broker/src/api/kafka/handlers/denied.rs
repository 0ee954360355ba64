//! The answers of group requests the authorizer refused before they reach
//! the coordinator: the response with only its error code set.

use kafka_protocol::messages::{
    ConsumerGroupHeartbeatResponse, HeartbeatResponse, JoinGroupResponse, LeaveGroupResponse, SyncGroupResponse,
};

pub(crate) fn join(code: i16) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default();
    r.error_code = code;
    r.generation_id = -1;
    r
}

pub(crate) fn sync(code: i16) -> SyncGroupResponse {
    let mut r = SyncGroupResponse::default();
    r.error_code = code;
    r
}

pub(crate) fn heartbeat(code: i16) -> HeartbeatResponse {
    let mut r = HeartbeatResponse::default();
    r.error_code = code;
    r
}

pub(crate) fn leave(code: i16) -> LeaveGroupResponse {
    let mut r = LeaveGroupResponse::default();
    r.error_code = code;
    r
}

pub(crate) fn consumer_heartbeat(code: i16) -> ConsumerGroupHeartbeatResponse {
    let mut r = ConsumerGroupHeartbeatResponse::default();
    r.error_code = code;
    r.error_message = Some("the principal may not read this group".into());
    r
}
