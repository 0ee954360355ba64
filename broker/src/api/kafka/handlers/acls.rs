//! CreateAcls, DescribeAcls and DeleteAcls (1–3): Kafka's numeric codes to
//! and from the metadata's ACL types; the core stores and decides. Changing
//! ACLs needs alter on the cluster, listing them describe.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse, DescribeAclsRequest,
    DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use strata_metadata::{AclBinding, AclFilter, AclOperation, AclPermission, PatternFilter, PatternType, ResourceType};

use crate::authorizer::{Resource, Session};
use crate::service::BrokerService;

/// Kafka's "any" in every filter field.
const ANY: i8 = 1;

fn resource_type(code: i8) -> Option<ResourceType> {
    match code {
        2 => Some(ResourceType::Topic),
        3 => Some(ResourceType::Group),
        4 => Some(ResourceType::Cluster),
        5 => Some(ResourceType::TransactionalId),
        _ => None,
    }
}

fn resource_type_code(t: ResourceType) -> i8 {
    match t {
        ResourceType::Topic => 2,
        ResourceType::Group => 3,
        ResourceType::Cluster => 4,
        ResourceType::TransactionalId => 5,
    }
}

fn pattern_code(p: PatternType) -> i8 {
    match p {
        PatternType::Literal => 3,
        PatternType::Prefixed => 4,
    }
}

fn operation(code: i8) -> Option<AclOperation> {
    (2..=12).contains(&code).then(|| AclOperation::EVERY[(code - 2) as usize])
}

fn operation_code(op: AclOperation) -> i8 {
    AclOperation::EVERY.iter().position(|o| *o == op).map_or(0, |i| i as i8 + 2)
}

fn permission(code: i8) -> Option<AclPermission> {
    match code {
        2 => Some(AclPermission::Deny),
        3 => Some(AclPermission::Allow),
        _ => None,
    }
}

fn permission_code(p: AclPermission) -> i8 {
    match p {
        AclPermission::Deny => 2,
        AclPermission::Allow => 3,
    }
}

/// The filter of a DescribeAcls request or a DeleteAcls entry (the same
/// seven fields in two message types).
macro_rules! filter_of {
    ($f:expr) => {
        filter(
            $f.resource_type_filter,
            $f.resource_name_filter.as_ref(),
            $f.pattern_type_filter,
            $f.principal_filter.as_ref(),
            $f.host_filter.as_ref(),
            $f.operation,
            $f.permission_type,
        )
    };
}

/// A filter from its seven fields, or why it is invalid.
#[allow(clippy::too_many_arguments)] // Kafka's seven filter fields
fn filter(
    resource: i8,
    name: Option<&StrBytes>,
    pattern: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    op: i8,
    perm: i8,
) -> Result<AclFilter, String> {
    let pick = |code: i8, what: &str, parse: &dyn Fn(i8) -> Option<()>| -> Result<(), String> {
        if code == ANY || parse(code).is_some() {
            Ok(())
        } else {
            Err(format!("unknown {what} code {code}"))
        }
    };
    pick(resource, "resource type", &|c| resource_type(c).map(|_| ()))?;
    pick(op, "operation", &|c| operation(c).map(|_| ()))?;
    pick(perm, "permission", &|c| permission(c).map(|_| ()))?;
    let pattern = match pattern {
        1 => PatternFilter::Any,
        2 => PatternFilter::Match,
        3 => PatternFilter::Literal,
        4 => PatternFilter::Prefixed,
        other => return Err(format!("unknown pattern type code {other}")),
    };
    Ok(AclFilter {
        resource_type: resource_type(resource),
        resource_name: name.map(|n| n.to_string()),
        pattern,
        principal: principal.map(|p| p.to_string()),
        host: host.map(|h| h.to_string()),
        operation: operation(op),
        permission: permission(perm),
    })
}

/// Answers a CreateAcls: each creation valid and stored, or its error.
pub(crate) async fn create(core: &BrokerService, session: &Session, req: CreateAclsRequest) -> CreateAclsResponse {
    let mut r = CreateAclsResponse::default();
    let denied = core.authorize(session, AclOperation::Alter, Resource::Cluster).err();
    let mut valid = Vec::new();
    let mut results: Vec<Result<usize, (i16, String)>> = Vec::new();
    for c in &req.creations {
        if let Some(e) = &denied {
            let (code, message) = super::refusal(e);
            results.push(Err((code, message.map(|m| m.to_string()).unwrap_or_default())));
            continue;
        }
        let binding = (|| {
            Some(AclBinding {
                resource_type: resource_type(c.resource_type)?,
                resource_name: c.resource_name.to_string(),
                pattern_type: match c.resource_pattern_type {
                    3 => PatternType::Literal,
                    4 => PatternType::Prefixed,
                    _ => return None,
                },
                principal: c.principal.to_string(),
                host: c.host.to_string(),
                operation: operation(c.operation)?,
                permission: permission(c.permission_type)?,
            })
        })();
        match binding.map(|b| b.validate().map(|()| b)) {
            Some(Ok(b)) => {
                valid.push(b);
                results.push(Ok(valid.len() - 1));
            }
            Some(Err(e)) => results.push(Err((ResponseError::InvalidRequest.code(), e.to_string()))),
            None => results.push(Err((
                ResponseError::InvalidRequest.code(),
                "an ACL needs a known resource type, a literal or prefixed pattern, an operation and allow or deny"
                    .into(),
            ))),
        }
    }
    let stored = if valid.is_empty() { Ok(0) } else { core.create_acls(valid).await };
    r.results = results
        .into_iter()
        .map(|result| {
            let mut x = AclCreationResult::default();
            let failure = match (result, &stored) {
                (Err(e), _) => Some(e),
                (Ok(_), Err(e)) => Some((crate::api::kafka::codes::code_of(e.kind()), e.message().to_string())),
                (Ok(_), Ok(_)) => None,
            };
            if let Some((code, message)) = failure {
                x.error_code = code;
                x.error_message = Some(StrBytes::from_string(message));
            }
            x
        })
        .collect();
    r
}

/// Answers a DescribeAcls: the matching ACLs grouped by resource pattern.
pub(crate) fn describe(core: &BrokerService, session: &Session, req: DescribeAclsRequest) -> DescribeAclsResponse {
    let mut r = DescribeAclsResponse::default();
    if let Err(e) = core.authorize(session, AclOperation::Describe, Resource::Cluster) {
        (r.error_code, r.error_message) = super::refusal(&e);
        return r;
    }
    let f = match filter_of!(req) {
        Ok(f) => f,
        Err(message) => {
            r.error_code = ResponseError::InvalidRequest.code();
            r.error_message = Some(StrBytes::from_string(message));
            return r;
        }
    };
    for acl in core.describe_acls(&f) {
        let mut d = AclDescription::default();
        d.principal = StrBytes::from_string(acl.principal.clone());
        d.host = StrBytes::from_string(acl.host.clone());
        d.operation = operation_code(acl.operation);
        d.permission_type = permission_code(acl.permission);
        let (t, p) = (resource_type_code(acl.resource_type), pattern_code(acl.pattern_type));
        match r
            .resources
            .iter_mut()
            .find(|x| x.resource_type == t && x.pattern_type == p && x.resource_name == *acl.resource_name)
        {
            Some(x) => x.acls.push(d),
            None => {
                let mut x = DescribeAclsResource::default();
                x.resource_type = t;
                x.pattern_type = p;
                x.resource_name = StrBytes::from_string(acl.resource_name);
                x.acls.push(d);
                r.resources.push(x);
            }
        }
    }
    r
}

/// Answers a DeleteAcls: per filter, the ACLs it removed.
pub(crate) async fn delete(core: &BrokerService, session: &Session, req: DeleteAclsRequest) -> DeleteAclsResponse {
    let mut r = DeleteAclsResponse::default();
    let denied = core.authorize(session, AclOperation::Alter, Resource::Cluster).err();
    let parsed: Vec<Result<AclFilter, (i16, Option<StrBytes>)>> = req
        .filters
        .iter()
        .map(|f| match &denied {
            Some(e) => Err(super::refusal(e)),
            None => filter_of!(f).map_err(|m| (ResponseError::InvalidRequest.code(), Some(StrBytes::from_string(m)))),
        })
        .collect();
    let valid: Vec<AclFilter> = parsed.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
    let deleted = if valid.is_empty() { Ok(Vec::new()) } else { core.delete_acls(valid).await };
    let mut deleted_per_filter = match &deleted {
        Ok(d) => d.clone().into_iter(),
        Err(_) => Vec::new().into_iter(),
    };
    for p in parsed {
        let mut fr = DeleteAclsFilterResult::default();
        match (p, &deleted) {
            (Err((code, message)), _) => (fr.error_code, fr.error_message) = (code, message),
            (Ok(_), Err(e)) => (fr.error_code, fr.error_message) = super::refusal(e),
            (Ok(_), Ok(_)) => {
                fr.matching_acls = deleted_per_filter
                    .next()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|acl| {
                        let mut m = DeleteAclsMatchingAcl::default();
                        m.resource_type = resource_type_code(acl.resource_type);
                        m.resource_name = StrBytes::from_string(acl.resource_name);
                        m.pattern_type = pattern_code(acl.pattern_type);
                        m.principal = StrBytes::from_string(acl.principal);
                        m.host = StrBytes::from_string(acl.host);
                        m.operation = operation_code(acl.operation);
                        m.permission_type = permission_code(acl.permission);
                        m
                    })
                    .collect();
            }
        }
        r.filter_results.push(fr);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_codes_are_kafkas() {
        assert_eq!(operation(3), Some(AclOperation::Read));
        assert_eq!(operation(12), Some(AclOperation::IdempotentWrite));
        assert_eq!(operation(1), None, "any is a filter value, not an operation");
        for op in AclOperation::EVERY {
            assert_eq!(operation(operation_code(op)), Some(op));
        }
    }
}
