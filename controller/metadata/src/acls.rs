//! Access-control lists, Kafka's model: a binding allows or denies one
//! principal one operation on the resources a pattern names, from a host.
//! They live in the replicated metadata so every broker authorizes alike;
//! the decision itself is the broker core's authorizer.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{CommandOutcome, MetadataError, MetadataImage};

/// The only name a cluster resource has (Kafka's `kafka-cluster`).
pub const CLUSTER_RESOURCE_NAME: &str = "kafka-cluster";

/// Most bindings one command may create or filters it may carry.
pub const MAX_ACLS_PER_COMMAND: usize = 1000;

/// Most bindings the cluster holds.
pub const MAX_ACLS: usize = 100_000;

/// What kind of thing an ACL protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ResourceType {
    /// A topic.
    Topic,
    /// A consumer group.
    Group,
    /// The cluster itself (admin operations).
    Cluster,
    /// A transactional id.
    TransactionalId,
}

/// How a binding's resource name selects resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PatternType {
    /// Exactly that name (`*` = every resource of the type).
    Literal,
    /// Every name that starts with it.
    Prefixed,
}

/// What a principal may (or may not) do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AclOperation {
    /// Every operation.
    All,
    /// Consume; join a group; commit offsets.
    Read,
    /// Produce.
    Write,
    /// Create topics.
    Create,
    /// Delete topics, groups, records.
    Delete,
    /// Change ACLs, users, partitions.
    Alter,
    /// See that it exists: metadata, offsets, group state.
    Describe,
    /// Inter-broker operations.
    ClusterAction,
    /// Read configs.
    DescribeConfigs,
    /// Change configs.
    AlterConfigs,
    /// Idempotent produce (producer ids).
    IdempotentWrite,
}

/// Allow or deny; a matching deny always wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AclPermission {
    /// Denies, whatever else allows.
    Deny,
    /// Allows, unless something denies.
    Allow,
}

/// One ACL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    /// The kind of resource.
    pub resource_type: ResourceType,
    /// The name or prefix (`*` with a literal pattern: all of them).
    pub resource_name: String,
    /// How the name matches.
    pub pattern_type: PatternType,
    /// `User:NAME`, or `User:*` for everyone.
    pub principal: String,
    /// The client's IP address, or `*` for any host.
    pub host: String,
    /// The operation.
    pub operation: AclOperation,
    /// Allow or deny.
    pub permission: AclPermission,
}

/// Which bindings a describe or delete selects: `None` = any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilter {
    /// The kind of resource.
    pub resource_type: Option<ResourceType>,
    /// The exact name (with `pattern` any/literal/prefixed), or a resource
    /// name every matching binding applies to (with [`PatternFilter::Match`]).
    pub resource_name: Option<String>,
    /// Which patterns.
    pub pattern: PatternFilter,
    /// The exact principal.
    pub principal: Option<String>,
    /// The exact host.
    pub host: Option<String>,
    /// The exact operation.
    pub operation: Option<AclOperation>,
    /// The exact permission.
    pub permission: Option<AclPermission>,
}

/// The pattern part of a filter (Kafka's ANY, MATCH, LITERAL, PREFIXED).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PatternFilter {
    /// Any pattern with exactly the filter's name.
    #[default]
    Any,
    /// Every binding that applies to the filter's resource name: its literal,
    /// the `*` wildcard and every prefix of it.
    Match,
    /// Only literal bindings.
    Literal,
    /// Only prefixed bindings.
    Prefixed,
}

impl ResourceType {
    /// The name users type (`topic`, `group`, `cluster`, `transactional-id`).
    pub fn name(self) -> &'static str {
        match self {
            ResourceType::Topic => "topic",
            ResourceType::Group => "group",
            ResourceType::Cluster => "cluster",
            ResourceType::TransactionalId => "transactional-id",
        }
    }
}

impl ResourceType {
    /// Parses [`ResourceType::name`] (also `transactional_id`), ignoring case.
    pub fn parse(s: &str) -> Option<ResourceType> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "topic" => Some(ResourceType::Topic),
            "group" => Some(ResourceType::Group),
            "cluster" => Some(ResourceType::Cluster),
            "transactional-id" => Some(ResourceType::TransactionalId),
            _ => None,
        }
    }
}

impl PatternType {
    /// `literal` or `prefixed`.
    pub fn name(self) -> &'static str {
        match self {
            PatternType::Literal => "literal",
            PatternType::Prefixed => "prefixed",
        }
    }

    /// Parses [`PatternType::name`], ignoring case.
    pub fn parse(s: &str) -> Option<PatternType> {
        match s.to_ascii_lowercase().as_str() {
            "literal" => Some(PatternType::Literal),
            "prefixed" => Some(PatternType::Prefixed),
            _ => None,
        }
    }
}

impl PatternFilter {
    /// Parses `any` (or empty), `match`, `literal`, `prefixed`.
    pub fn parse(s: &str) -> Option<PatternFilter> {
        match s.to_ascii_lowercase().as_str() {
            "" | "any" => Some(PatternFilter::Any),
            "match" => Some(PatternFilter::Match),
            "literal" => Some(PatternFilter::Literal),
            "prefixed" => Some(PatternFilter::Prefixed),
            _ => None,
        }
    }
}

impl AclPermission {
    /// `allow` or `deny`.
    pub fn name(self) -> &'static str {
        match self {
            AclPermission::Allow => "allow",
            AclPermission::Deny => "deny",
        }
    }

    /// Parses [`AclPermission::name`], ignoring case.
    pub fn parse(s: &str) -> Option<AclPermission> {
        match s.to_ascii_lowercase().as_str() {
            "allow" => Some(AclPermission::Allow),
            "deny" => Some(AclPermission::Deny),
            _ => None,
        }
    }
}

impl AclOperation {
    /// Every operation, in Kafka's order.
    pub const EVERY: [AclOperation; 11] = [
        AclOperation::All,
        AclOperation::Read,
        AclOperation::Write,
        AclOperation::Create,
        AclOperation::Delete,
        AclOperation::Alter,
        AclOperation::Describe,
        AclOperation::ClusterAction,
        AclOperation::DescribeConfigs,
        AclOperation::AlterConfigs,
        AclOperation::IdempotentWrite,
    ];

    /// Kafka's name (`Read`, `DescribeConfigs`, …).
    pub fn name(self) -> &'static str {
        match self {
            AclOperation::All => "All",
            AclOperation::Read => "Read",
            AclOperation::Write => "Write",
            AclOperation::Create => "Create",
            AclOperation::Delete => "Delete",
            AclOperation::Alter => "Alter",
            AclOperation::Describe => "Describe",
            AclOperation::ClusterAction => "ClusterAction",
            AclOperation::DescribeConfigs => "DescribeConfigs",
            AclOperation::AlterConfigs => "AlterConfigs",
            AclOperation::IdempotentWrite => "IdempotentWrite",
        }
    }

    /// Parses a name, ignoring case and `-`/`_` (`read`, `describe-configs`).
    pub fn parse(s: &str) -> Option<AclOperation> {
        let key: String = s.chars().filter(|c| *c != '-' && *c != '_').collect::<String>().to_ascii_lowercase();
        AclOperation::EVERY.into_iter().find(|op| op.name().to_ascii_lowercase() == key)
    }
}

impl fmt::Display for AclBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} on {} {} '{}' from host {}",
            self.principal,
            match self.permission {
                AclPermission::Allow => "is allowed",
                AclPermission::Deny => "is denied",
            },
            self.operation.name(),
            match self.pattern_type {
                PatternType::Literal => "",
                PatternType::Prefixed => "prefixed",
            },
            self.resource_type.name(),
            self.resource_name,
            self.host
        )
    }
}

impl AclBinding {
    /// Checks what Kafka checks before storing a binding.
    pub fn validate(&self) -> Result<(), MetadataError> {
        let invalid = |reason: String| MetadataError::InvalidAcl { reason };
        if self.resource_name.is_empty() || self.resource_name.len() > 1024 {
            return Err(invalid("a resource name is 1..=1024 bytes".into()));
        }
        if self.resource_type == ResourceType::Cluster
            && (self.resource_name != CLUSTER_RESOURCE_NAME || self.pattern_type != PatternType::Literal)
        {
            return Err(invalid(format!("the cluster resource is the literal name '{CLUSTER_RESOURCE_NAME}'")));
        }
        if self.pattern_type == PatternType::Prefixed && self.resource_name == "*" {
            return Err(invalid("'*' is a wildcard only with a literal pattern".into()));
        }
        match self.principal.split_once(':') {
            Some(("User", name)) if !name.is_empty() && name.len() <= 1024 => {}
            _ => return Err(invalid(format!("principal '{}' is not User:NAME or User:*", self.principal))),
        }
        if self.host != "*" && self.host.parse::<std::net::IpAddr>().is_err() {
            return Err(invalid(format!("host '{}' is neither '*' nor an IP address", self.host)));
        }
        Ok(())
    }
}

impl AclFilter {
    /// True when `acl` is selected.
    pub fn matches(&self, acl: &AclBinding) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        self.resource_type.is_none_or(|t| t == acl.resource_type)
            && eq(&self.principal, &acl.principal)
            && eq(&self.host, &acl.host)
            && self.operation.is_none_or(|o| o == acl.operation)
            && self.permission.is_none_or(|p| p == acl.permission)
            && match self.pattern {
                PatternFilter::Any => eq(&self.resource_name, &acl.resource_name),
                PatternFilter::Literal => {
                    acl.pattern_type == PatternType::Literal && eq(&self.resource_name, &acl.resource_name)
                }
                PatternFilter::Prefixed => {
                    acl.pattern_type == PatternType::Prefixed && eq(&self.resource_name, &acl.resource_name)
                }
                PatternFilter::Match => match &self.resource_name {
                    None => true,
                    Some(name) => applies_to(acl, name),
                },
            }
    }
}

/// True when `acl`'s pattern covers the resource called `name`.
pub fn applies_to(acl: &AclBinding, name: &str) -> bool {
    match acl.pattern_type {
        PatternType::Literal => acl.resource_name == name || acl.resource_name == "*",
        PatternType::Prefixed => name.starts_with(&acl.resource_name),
    }
}

impl MetadataImage {
    pub(crate) fn create_acls(&mut self, acls: &[AclBinding]) -> Result<CommandOutcome, MetadataError> {
        if acls.len() > MAX_ACLS_PER_COMMAND {
            return Err(MetadataError::InvalidAcl { reason: format!("at most {MAX_ACLS_PER_COMMAND} ACLs at a time") });
        }
        for acl in acls {
            acl.validate()?;
        }
        let new: BTreeSet<&AclBinding> = acls.iter().filter(|a| !self.acls.contains(*a)).collect();
        if self.acls.len() + new.len() > MAX_ACLS {
            return Err(MetadataError::InvalidAcl { reason: format!("the cluster holds at most {MAX_ACLS} ACLs") });
        }
        let created = new.len();
        self.acls.extend(new.into_iter().cloned());
        Ok(CommandOutcome::AclsCreated { created })
    }

    pub(crate) fn delete_acls(&mut self, filters: &[AclFilter]) -> Result<CommandOutcome, MetadataError> {
        if filters.len() > MAX_ACLS_PER_COMMAND {
            return Err(MetadataError::InvalidAcl {
                reason: format!("at most {MAX_ACLS_PER_COMMAND} filters at a time"),
            });
        }
        let deleted: Vec<Vec<AclBinding>> =
            filters.iter().map(|f| self.acls.iter().filter(|a| f.matches(a)).cloned().collect()).collect();
        for acl in deleted.iter().flatten() {
            self.acls.remove(acl);
        }
        Ok(CommandOutcome::AclsDeleted { deleted })
    }

    /// The bindings `filter` selects.
    pub fn describe_acls(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.acls.iter().filter(|a| filter.matches(a)).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

    use super::*;
    use crate::MetadataCommand;

    fn acl(name: &str, pattern: PatternType, op: AclOperation, permission: AclPermission) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: op,
            permission,
        }
    }

    #[test]
    fn acls_are_created_once_described_and_deleted_by_filter() {
        let mut image = MetadataImage::default();
        let a = acl("orders-", PatternType::Prefixed, AclOperation::Read, AclPermission::Allow);
        let b = acl("payments", PatternType::Literal, AclOperation::Write, AclPermission::Deny);
        let out = image.apply(&MetadataCommand::CreateAcls { acls: vec![a.clone(), b.clone()] }).unwrap();
        assert_eq!(out, CommandOutcome::AclsCreated { created: 2 });
        let out = image.apply(&MetadataCommand::CreateAcls { acls: vec![a.clone()] }).unwrap();
        assert_eq!(out, CommandOutcome::AclsCreated { created: 0 }, "creating twice is a no-op");
        let by_match = AclFilter {
            resource_type: Some(ResourceType::Topic),
            resource_name: Some("orders-eu".into()),
            pattern: PatternFilter::Match,
            ..AclFilter::default()
        };
        assert_eq!(image.describe_acls(&by_match), vec![a.clone()]);
        let exact_name = AclFilter { resource_name: Some("orders-eu".into()), ..AclFilter::default() };
        assert!(image.describe_acls(&exact_name).is_empty(), "ANY matches names exactly");
        let deny = AclFilter { permission: Some(AclPermission::Deny), ..AclFilter::default() };
        let out = image.apply(&MetadataCommand::DeleteAcls { filters: vec![deny] }).unwrap();
        assert_eq!(out, CommandOutcome::AclsDeleted { deleted: vec![vec![b]] });
        assert_eq!(image.acls.iter().cloned().collect::<Vec<_>>(), vec![a]);
    }

    #[test]
    fn invalid_acls_change_nothing() {
        let mut image = MetadataImage::default();
        let good = acl("t", PatternType::Literal, AclOperation::Read, AclPermission::Allow);
        let bad = [
            AclBinding { resource_name: String::new(), ..good.clone() },
            AclBinding { principal: "alice".into(), ..good.clone() },
            AclBinding { principal: "Group:x".into(), ..good.clone() },
            AclBinding { host: "example.com".into(), ..good.clone() },
            AclBinding { resource_name: "*".into(), pattern_type: PatternType::Prefixed, ..good.clone() },
            AclBinding { resource_type: ResourceType::Cluster, ..good.clone() },
        ];
        for b in bad {
            let cmd = MetadataCommand::CreateAcls { acls: vec![good.clone(), b.clone()] };
            assert!(matches!(image.apply(&cmd), Err(MetadataError::InvalidAcl { .. })), "{b:?}");
        }
        assert_eq!(image, MetadataImage::default());
        let cluster = AclBinding {
            resource_type: ResourceType::Cluster,
            resource_name: CLUSTER_RESOURCE_NAME.into(),
            host: "10.0.0.1".into(),
            ..good
        };
        image.apply(&MetadataCommand::CreateAcls { acls: vec![cluster] }).unwrap();
    }

    #[test]
    fn acls_survive_a_snapshot_and_a_command_round_trip() {
        let mut image = MetadataImage::default();
        let cmd = MetadataCommand::CreateAcls {
            acls: vec![acl("orders-", PatternType::Prefixed, AclOperation::Read, AclPermission::Allow)],
        };
        assert_eq!(MetadataCommand::decode(&cmd.encode()).unwrap(), cmd);
        image.apply(&cmd).unwrap();
        let json = serde_json::to_vec(&image).unwrap();
        assert_eq!(serde_json::from_slice::<MetadataImage>(&json).unwrap(), image);
        assert_eq!(AclOperation::parse("describe-configs"), Some(AclOperation::DescribeConfigs));
        assert_eq!(AclOperation::parse("READ"), Some(AclOperation::Read));
        assert_eq!(AclOperation::parse("any"), None);
    }
}
