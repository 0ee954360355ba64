//! ACLs at the gRPC edge: `CreateAcls`, `DescribeAcls` and `DeleteAcls`
//! messages (names as strings, as the CLI shows them) to and from the
//! metadata's types.

use strata_metadata::{AclBinding, AclFilter, AclOperation, AclPermission, PatternFilter, PatternType, ResourceType};
use strata_protocol::v1::{self, Error, ErrorCode};

use crate::service::BrokerService;

fn invalid(what: &str, value: &str) -> Error {
    Error::new(ErrorCode::InvalidRequest, format!("unknown {what} {value:?}"))
}

fn binding(b: v1::AclBinding) -> Result<AclBinding, Error> {
    Ok(AclBinding {
        resource_type: ResourceType::parse(&b.resource_type)
            .ok_or_else(|| invalid("resource type", &b.resource_type))?,
        resource_name: b.resource_name,
        pattern_type: PatternType::parse(&b.pattern_type).ok_or_else(|| invalid("pattern type", &b.pattern_type))?,
        principal: b.principal,
        host: b.host,
        operation: AclOperation::parse(&b.operation).ok_or_else(|| invalid("operation", &b.operation))?,
        permission: AclPermission::parse(&b.permission).ok_or_else(|| invalid("permission", &b.permission))?,
    })
}

/// An empty string is "any".
fn any<T>(value: &str, what: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Option<T>, Error> {
    if value.is_empty() {
        return Ok(None);
    }
    parse(value).map(Some).ok_or_else(|| invalid(what, value))
}

fn filter(f: v1::AclFilter) -> Result<AclFilter, Error> {
    let text = |s: String| (!s.is_empty()).then_some(s);
    Ok(AclFilter {
        resource_type: any(&f.resource_type, "resource type", ResourceType::parse)?,
        pattern: PatternFilter::parse(&f.pattern_type).ok_or_else(|| invalid("pattern type", &f.pattern_type))?,
        operation: any(&f.operation, "operation", AclOperation::parse)?,
        permission: any(&f.permission, "permission", AclPermission::parse)?,
        resource_name: text(f.resource_name),
        principal: text(f.principal),
        host: text(f.host),
    })
}

pub(crate) fn to_wire(b: AclBinding) -> v1::AclBinding {
    v1::AclBinding {
        resource_type: b.resource_type.name().to_string(),
        resource_name: b.resource_name,
        pattern_type: b.pattern_type.name().to_string(),
        principal: b.principal,
        host: b.host,
        operation: b.operation.name().to_string(),
        permission: b.permission.name().to_string(),
    }
}

/// `CreateAcls`: all or none.
pub(crate) async fn create(core: &BrokerService, req: v1::CreateAclsRequest) -> v1::CreateAclsResponse {
    let acls = match req.acls.into_iter().map(binding).collect::<Result<Vec<_>, _>>() {
        Ok(acls) => acls,
        Err(e) => return v1::CreateAclsResponse { error: Some(e), created: 0 },
    };
    match core.create_acls(acls).await {
        Ok(created) => v1::CreateAclsResponse { error: None, created: created as u32 },
        Err(e) => v1::CreateAclsResponse { error: Some(e.into()), created: 0 },
    }
}

/// `DescribeAcls`.
pub(crate) fn describe(core: &BrokerService, req: v1::DescribeAclsRequest) -> v1::DescribeAclsResponse {
    match filter(req.filter.unwrap_or_default()) {
        Ok(f) => {
            v1::DescribeAclsResponse { error: None, acls: core.describe_acls(&f).into_iter().map(to_wire).collect() }
        }
        Err(e) => v1::DescribeAclsResponse { error: Some(e), acls: Vec::new() },
    }
}

/// `DeleteAcls`.
pub(crate) async fn delete(core: &BrokerService, req: v1::DeleteAclsRequest) -> v1::DeleteAclsResponse {
    let filters = match req.filters.into_iter().map(filter).collect::<Result<Vec<_>, _>>() {
        Ok(f) => f,
        Err(e) => return v1::DeleteAclsResponse { error: Some(e), deleted: Vec::new() },
    };
    match core.delete_acls(filters).await {
        Ok(deleted) => {
            v1::DeleteAclsResponse { error: None, deleted: deleted.into_iter().flatten().map(to_wire).collect() }
        }
        Err(e) => v1::DeleteAclsResponse { error: Some(e.into()), deleted: Vec::new() },
    }
}
