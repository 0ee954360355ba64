//! ListGroups and DeleteGroups over the group coordinator: the same groups
//! `strata group list|delete` manage.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, GroupId, ListGroupsRequest, ListGroupsResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::api::kafka::codes::code_of;
use crate::authorizer::{Resource, Session};
use crate::service::BrokerService;
use strata_metadata::AclOperation;

/// Answers a ListGroups (groups coordinated by this broker, as in Kafka).
pub(crate) async fn list(core: &BrokerService, session: &Session, req: ListGroupsRequest) -> ListGroupsResponse {
    let list = core.list_groups().await;
    let mut r = ListGroupsResponse::default();
    if let Some(e) = &list.loading {
        r.error_code = code_of(e.kind());
    }
    for g in list.groups {
        let state = kafka_state(g.state.as_str());
        if !req.states_filter.is_empty() && !req.states_filter.iter().any(|s| s.eq_ignore_ascii_case(state)) {
            continue;
        }
        if !req.types_filter.is_empty() && !req.types_filter.iter().any(|t| t.eq_ignore_ascii_case("consumer")) {
            continue;
        }
        let mut l = ListedGroup::default();
        l.group_id = GroupId(StrBytes::from_string(g.group_id));
        l.protocol_type = StrBytes::from_static_str("consumer");
        l.group_state = StrBytes::from_static_str(state);
        l.group_type = StrBytes::from_static_str("consumer");
        r.groups.push(l);
    }
    for (group_id, state, _) in core.classic_groups.list() {
        if !req.states_filter.is_empty() && !req.states_filter.iter().any(|s| s.eq_ignore_ascii_case(state)) {
            continue;
        }
        if !req.types_filter.is_empty() && !req.types_filter.iter().any(|t| t.eq_ignore_ascii_case("classic")) {
            continue;
        }
        let mut l = ListedGroup::default();
        l.group_id = GroupId(StrBytes::from_string(group_id));
        l.protocol_type = StrBytes::from_static_str("consumer");
        l.group_state = StrBytes::from_static_str(state);
        l.group_type = StrBytes::from_static_str("classic");
        r.groups.push(l);
    }
    // Kafka lists the groups the caller may describe.
    r.groups.retain(|g| core.is_authorized(session, AclOperation::Describe, Resource::Group(&g.group_id.0)));
    r
}

/// Kafka's name of a consumer group state (KIP-848's names).
pub(crate) fn kafka_state(state: &str) -> &'static str {
    match state {
        "empty" => "Empty",
        "stable" => "Stable",
        "reconciling" => "Reconciling",
        "assigning" => "Assigning",
        _ => "Dead",
    }
}

/// Answers a DeleteGroups: only groups without members can go.
pub(crate) async fn delete(core: &BrokerService, session: &Session, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut r = DeleteGroupsResponse::default();
    let mut ids = Vec::new();
    for g in &req.groups_names {
        match core.authorize(session, AclOperation::Delete, Resource::Group(&g.0)) {
            Ok(()) => ids.push(g.0.to_string()),
            Err(e) => {
                let mut d = DeletableGroupResult::default();
                d.group_id = g.clone();
                d.error_code = code_of(e.kind());
                r.results.push(d);
            }
        }
    }
    for (id, result) in core.delete_groups(ids).await {
        let mut d = DeletableGroupResult::default();
        d.group_id = GroupId(StrBytes::from_string(id));
        d.error_code = result.err().map_or(0, |e| code_of(e.kind()));
        r.results.push(d);
    }
    r
}
