//! ACLs through the admin client: create, list by filter, delete by
//! filter. Fields are the names `strata acl` shows (`topic`, `prefixed`,
//! `User:alice`, `Read`, `allow`); the brokers validate them.

use strata_protocol::v1;

use crate::admin::{Admin, ADMIN_TIMEOUT};
use crate::connection::call;
use crate::error::ClientError;

/// One ACL, in the names users type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Acl {
    /// `topic`, `group`, `cluster` or `transactional-id`.
    pub resource_type: String,
    /// The name, prefix or `*` (the cluster is `kafka-cluster`).
    pub resource_name: String,
    /// `literal` or `prefixed`.
    pub pattern_type: String,
    /// `User:NAME` or `User:*`.
    pub principal: String,
    /// An IP address or `*`.
    pub host: String,
    /// Kafka's operation name (`Read`, `Write`, `Describe`, `All`, …).
    pub operation: String,
    /// `allow` or `deny`.
    pub permission: String,
}

/// Which ACLs to list or delete: an empty field matches anything; the
/// pattern may also be `any` or `match` (every ACL that applies to the
/// resource name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclFilter {
    /// As [`Acl::resource_type`], or empty.
    pub resource_type: String,
    /// As [`Acl::resource_name`], or empty.
    pub resource_name: String,
    /// `literal`, `prefixed`, `match`, `any` or empty.
    pub pattern_type: String,
    /// As [`Acl::principal`], or empty.
    pub principal: String,
    /// As [`Acl::host`], or empty.
    pub host: String,
    /// As [`Acl::operation`], or empty.
    pub operation: String,
    /// As [`Acl::permission`], or empty.
    pub permission: String,
}

fn to_wire(a: &Acl) -> v1::AclBinding {
    v1::AclBinding {
        resource_type: a.resource_type.clone(),
        resource_name: a.resource_name.clone(),
        pattern_type: a.pattern_type.clone(),
        principal: a.principal.clone(),
        host: a.host.clone(),
        operation: a.operation.clone(),
        permission: a.permission.clone(),
    }
}

fn filter_to_wire(f: &AclFilter) -> v1::AclFilter {
    v1::AclFilter {
        resource_type: f.resource_type.clone(),
        resource_name: f.resource_name.clone(),
        pattern_type: f.pattern_type.clone(),
        principal: f.principal.clone(),
        host: f.host.clone(),
        operation: f.operation.clone(),
        permission: f.permission.clone(),
    }
}

fn from_wire(b: v1::AclBinding) -> Acl {
    Acl {
        resource_type: b.resource_type,
        resource_name: b.resource_name,
        pattern_type: b.pattern_type,
        principal: b.principal,
        host: b.host,
        operation: b.operation,
        permission: b.permission,
    }
}

impl Admin {
    /// Adds `acls` (all or none); how many were new.
    pub async fn create_acls(&self, acls: &[Acl]) -> Result<u32, ClientError> {
        let request = v1::CreateAclsRequest { acls: acls.iter().map(to_wire).collect() };
        self.until_controller_answers(|| async {
            let response = self
                .with_retry(|mut c| {
                    let request = request.clone();
                    async move { call("CreateAcls", ADMIN_TIMEOUT, c.create_acls(request)).await }
                })
                .await?;
            ClientError::from_api(response.error.as_ref()).map_or(Ok(response.created), Err)
        })
        .await
    }

    /// The ACLs `filter` selects, sorted.
    pub async fn list_acls(&self, filter: &AclFilter) -> Result<Vec<Acl>, ClientError> {
        let request = v1::DescribeAclsRequest { filter: Some(filter_to_wire(filter)) };
        let response = self
            .with_retry(|mut c| {
                let request = request.clone();
                async move { call("DescribeAcls", ADMIN_TIMEOUT, c.describe_acls(request)).await }
            })
            .await?;
        if let Some(e) = ClientError::from_api(response.error.as_ref()) {
            return Err(e);
        }
        let mut acls: Vec<Acl> = response.acls.into_iter().map(from_wire).collect();
        acls.sort();
        Ok(acls)
    }

    /// Removes every ACL any of `filters` selects; the ACLs removed.
    pub async fn delete_acls(&self, filters: &[AclFilter]) -> Result<Vec<Acl>, ClientError> {
        let request = v1::DeleteAclsRequest { filters: filters.iter().map(filter_to_wire).collect() };
        self.until_controller_answers(|| async {
            let response = self
                .with_retry(|mut c| {
                    let request = request.clone();
                    async move { call("DeleteAcls", ADMIN_TIMEOUT, c.delete_acls(request)).await }
                })
                .await?;
            match ClientError::from_api(response.error.as_ref()) {
                Some(e) => Err(e),
                None => Ok(response.deleted.into_iter().map(from_wire).collect()),
            }
        })
        .await
    }
}
