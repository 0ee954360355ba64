//! CreatePartitions (0–3): grows topics through the core; explicit replica
//! assignments are refused (placement is rack-aware and automatic).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::authorizer::Session;
use crate::service::BrokerService;

/// Answers `req`, one result per topic.
pub(crate) async fn create(
    core: &BrokerService,
    session: &Session,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut r = CreatePartitionsResponse::default();
    for t in req.topics {
        let mut out = CreatePartitionsTopicResult::default();
        out.name = t.name.clone();
        if t.assignments.is_some() {
            out.error_code = ResponseError::InvalidReplicaAssignment.code();
            out.error_message = Some(StrBytes::from_static_str("explicit replica assignments are not supported"));
        } else {
            let count = u32::try_from(t.count).unwrap_or(0);
            if let Err(e) = core.create_partitions(session, &t.name, count, req.validate_only).await {
                (out.error_code, out.error_message) = super::refusal(&e);
            }
        }
        r.results.push(out);
    }
    r
}
