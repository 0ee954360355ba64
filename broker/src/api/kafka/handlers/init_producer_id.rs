//! InitProducerId: a new idempotent producer id (epoch 0) from the
//! cluster's producer-id blocks. Transactional ids are refused: Strata has
//! no transactions yet.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::api::kafka::codes::code_of;
use crate::authorizer::Session;
use crate::service::BrokerService;

/// Answers `req`.
pub(crate) async fn handle(
    core: &BrokerService,
    session: &Session,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut r = InitProducerIdResponse::default();
    r.producer_id = ProducerId(-1);
    r.producer_epoch = -1;
    if req.transactional_id.is_some() {
        r.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return r;
    }
    if !core.may_init_producer_id(session) {
        r.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return r;
    }
    match core.init_producer_id().await {
        Ok(p) => {
            r.producer_id = ProducerId(p.producer_id);
            r.producer_epoch = p.producer_epoch;
        }
        Err(e) => r.error_code = code_of(e.kind()),
    }
    r
}
