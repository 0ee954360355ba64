//! The authorizer: one decision, in the core, for every edge. Given who is
//! calling (a [`Session`]) and what it wants (an operation on a resource),
//! it answers from the ACLs in the cluster metadata with Kafka's rules:
//! super users may do anything; a matching deny wins; otherwise a matching
//! allow (or one that implies the operation) is needed; no ACL, no access.

use std::collections::BTreeSet;
use std::net::IpAddr;

use strata_metadata::{applies_to, AclBinding, AclOperation, AclPermission, ResourceType, CLUSTER_RESOURCE_NAME};

use crate::error::{BrokerError, ErrorKind};
use crate::service::BrokerService;

/// The principal of a caller nobody authenticated (Kafka's name).
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// Who is calling: a principal (`User:NAME`) and the host it calls from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// `User:NAME`: a SASL user, a client certificate's name, a node
    /// (`User:strata-node-N`), or [`ANONYMOUS`].
    pub principal: String,
    /// The client's address.
    pub host: IpAddr,
    /// Never refused: a node proven by its certificate (nodes act for the
    /// cluster itself, as Kafka's inter-broker principal does), or a
    /// loopback caller of a cluster that has no user yet (to create the
    /// first one).
    pub privileged: bool,
}

impl Session {
    /// A caller known by `principal` (`User:NAME`).
    pub fn new(principal: impl Into<String>, host: IpAddr) -> Self {
        Session { principal: principal.into(), host, privileged: false }
    }

    /// A caller nobody authenticated.
    pub fn anonymous(host: IpAddr) -> Self {
        Session::new(ANONYMOUS, host)
    }

    /// A caller on this machine while the cluster has no user: whoever can
    /// run commands on a node may create the first user (as the operator
    /// of a fresh Kafka cluster adds its first SCRAM user with
    /// `kafka-storage format --add-scram`).
    pub fn first_user_bootstrap(host: IpAddr) -> Self {
        Session { principal: ANONYMOUS.to_string(), host, privileged: true }
    }

    /// Who a TLS peer is by its certificate alone: a node it proves, the
    /// client certificate's name (`User:CN`), or anonymous.
    pub fn of_tls(info: &strata_tls::TlsConnectInfo, host: IpAddr) -> Self {
        match (info.node_id(), info.principal_name()) {
            (Some(node), _) => Session::node(node, host),
            (None, Some(name)) => Session::new(format!("User:{name}"), host),
            (None, None) => Session::anonymous(host),
        }
    }

    /// A node proven by its certificate.
    pub fn node(node_id: u64, host: IpAddr) -> Self {
        Session { principal: format!("User:strata-node-{node_id}"), host, privileged: true }
    }
}

/// Whether the authorizer is on, and who bypasses it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// Off: everyone may do everything (the default, and `dev`).
    pub enabled: bool,
    /// Principals (`User:admin`) that may do everything.
    pub super_users: Vec<String>,
}

/// The resource a request touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// A topic by name.
    Topic(&'a str),
    /// A consumer group by id.
    Group(&'a str),
    /// The cluster.
    Cluster,
    /// A transactional id.
    TransactionalId(&'a str),
}

impl Resource<'_> {
    fn kind(self) -> ResourceType {
        match self {
            Resource::Topic(_) => ResourceType::Topic,
            Resource::Group(_) => ResourceType::Group,
            Resource::Cluster => ResourceType::Cluster,
            Resource::TransactionalId(_) => ResourceType::TransactionalId,
        }
    }

    fn resource_name(&self) -> &str {
        match self {
            Resource::Topic(n) | Resource::Group(n) | Resource::TransactionalId(n) => n,
            Resource::Cluster => CLUSTER_RESOURCE_NAME,
        }
    }

    /// The error a denial of this kind of resource gets (Kafka's codes).
    fn denied(self) -> ErrorKind {
        match self {
            Resource::Topic(_) => ErrorKind::TopicAuthorizationFailed,
            Resource::Group(_) => ErrorKind::GroupAuthorizationFailed,
            Resource::Cluster => ErrorKind::ClusterAuthorizationFailed,
            Resource::TransactionalId(_) => ErrorKind::TransactionalIdAuthorizationFailed,
        }
    }
}

/// The operations whose allow also allows `op` (Kafka: any of read, write,
/// delete and alter implies describe; alter-configs implies
/// describe-configs), with `op` itself and `All`.
fn allowing(op: AclOperation) -> &'static [AclOperation] {
    use AclOperation as O;
    match op {
        O::Describe => &[O::Describe, O::All, O::Read, O::Write, O::Delete, O::Alter],
        O::DescribeConfigs => &[O::DescribeConfigs, O::All, O::AlterConfigs],
        O::Read => &[O::Read, O::All],
        O::Write => &[O::Write, O::All],
        O::Create => &[O::Create, O::All],
        O::Delete => &[O::Delete, O::All],
        O::Alter => &[O::Alter, O::All],
        O::ClusterAction => &[O::ClusterAction, O::All],
        O::AlterConfigs => &[O::AlterConfigs, O::All],
        O::IdempotentWrite => &[O::IdempotentWrite, O::All],
        O::All => &[O::All],
    }
}

/// True when `acl` speaks about this caller (its principal or everyone, its
/// host or any).
fn concerns(acl: &AclBinding, session: &Session) -> bool {
    (acl.principal == session.principal || acl.principal == "User:*")
        && (acl.host == "*" || acl.host.parse::<IpAddr>().is_ok_and(|h| h == session.host))
}

/// Kafka's decision for `session` doing `op` on `resource` under `acls`
/// (super users and a disabled authorizer are the caller's business).
pub fn decide(acls: &BTreeSet<AclBinding>, session: &Session, op: AclOperation, resource: Resource<'_>) -> bool {
    let (kind, name) = (resource.kind(), resource.resource_name());
    let relevant =
        || acls.iter().filter(move |a| a.resource_type == kind && applies_to(a, name) && concerns(a, session));
    let denied = relevant()
        .any(|a| a.permission == AclPermission::Deny && (a.operation == op || a.operation == AclOperation::All));
    if denied {
        return false;
    }
    let ops = allowing(op);
    relevant().any(|a| a.permission == AclPermission::Allow && ops.contains(&a.operation))
}

impl BrokerService {
    /// True when no ACL is consulted: the authorizer is off, or the caller
    /// is privileged or a super user.
    fn bypasses_authorizer(&self, session: &Session) -> bool {
        let config = &self.config.authorizer;
        !config.enabled || session.privileged || config.super_users.contains(&session.principal)
    }

    /// True when `session` may do `op` on `resource`.
    pub fn is_authorized(&self, session: &Session, op: AclOperation, resource: Resource<'_>) -> bool {
        if self.bypasses_authorizer(session) {
            return true;
        }
        decide(&self.controller.metadata().acls, session, op, resource)
    }

    /// `Ok` when `session` may do `op` on `resource`; else Kafka's
    /// authorization error for that kind of resource, naming the principal,
    /// the operation and the resource.
    pub fn authorize(&self, session: &Session, op: AclOperation, resource: Resource<'_>) -> Result<(), BrokerError> {
        if self.is_authorized(session, op, resource) {
            return Ok(());
        }
        tracing::debug!(principal = %session.principal, host = %session.host, op = op.name(), ?resource, "denied");
        Err(BrokerError::new(
            resource.denied(),
            format!(
                "{} (from {}) may not {} {} '{}'",
                session.principal,
                session.host,
                op.name(),
                resource.kind().name(),
                resource.resource_name()
            ),
        ))
    }

    /// Kafka's rule for a producer id without a transactional id:
    /// idempotent-write on the cluster, or write on some topic.
    pub fn may_init_producer_id(&self, session: &Session) -> bool {
        self.is_authorized(session, AclOperation::IdempotentWrite, Resource::Cluster)
            || self.is_authorized_on_any_topic(session, AclOperation::Write)
    }

    /// True when `session` may do `op` on some topic (Kafka lets a producer
    /// allowed to write anywhere have a producer id).
    pub fn is_authorized_on_any_topic(&self, session: &Session, op: AclOperation) -> bool {
        if self.bypasses_authorizer(session) {
            return true;
        }
        let image = self.controller.metadata();
        let ops = allowing(op);
        let allowed = image.acls.iter().any(|a| {
            a.resource_type == ResourceType::Topic
                && a.permission == AclPermission::Allow
                && ops.contains(&a.operation)
                && concerns(a, session)
        });
        // A deny on every topic (literal `*`) still wins.
        allowed && !denies_all(&image.acls, session, op)
    }
}

/// True when a literal `*` deny for `op` covers this caller on every topic.
fn denies_all(acls: &BTreeSet<AclBinding>, session: &Session, op: AclOperation) -> bool {
    acls.iter().any(|a| {
        a.resource_type == ResourceType::Topic
            && a.resource_name == "*"
            && a.pattern_type == strata_metadata::PatternType::Literal
            && a.permission == AclPermission::Deny
            && (a.operation == op || a.operation == AclOperation::All)
            && concerns(a, session)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

    use strata_metadata::PatternType;

    use super::*;

    fn acl(
        principal: &str,
        kind: ResourceType,
        name: &str,
        pattern: PatternType,
        op: AclOperation,
        permission: AclPermission,
    ) -> AclBinding {
        AclBinding {
            resource_type: kind,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: principal.into(),
            host: "*".into(),
            operation: op,
            permission,
        }
    }

    fn alice() -> Session {
        Session::new("User:alice", "10.0.0.1".parse().unwrap())
    }

    #[test]
    fn no_acl_means_no_access() {
        let acls = BTreeSet::new();
        assert!(!decide(&acls, &alice(), AclOperation::Read, Resource::Topic("t")));
        assert!(!decide(&acls, &alice(), AclOperation::Describe, Resource::Cluster));
    }

    #[test]
    fn a_prefixed_read_allows_reading_and_describing_matching_topics_only() {
        let acls: BTreeSet<_> = [acl(
            "User:alice",
            ResourceType::Topic,
            "orders-",
            PatternType::Prefixed,
            AclOperation::Read,
            AclPermission::Allow,
        )]
        .into();
        let s = alice();
        assert!(decide(&acls, &s, AclOperation::Read, Resource::Topic("orders-eu")));
        assert!(decide(&acls, &s, AclOperation::Describe, Resource::Topic("orders-eu")), "read implies describe");
        assert!(!decide(&acls, &s, AclOperation::Write, Resource::Topic("orders-eu")));
        assert!(!decide(&acls, &s, AclOperation::Read, Resource::Topic("payments")));
        assert!(!decide(&acls, &s, AclOperation::Read, Resource::Topic("orders")), "the prefix is 'orders-'");
        assert!(!decide(&acls, &s, AclOperation::Read, Resource::Group("orders-eu")), "topics only");
        let bob = Session::new("User:bob", s.host);
        assert!(!decide(&acls, &bob, AclOperation::Read, Resource::Topic("orders-eu")));
    }

    #[test]
    fn deny_wins_over_allow_and_wildcards_match_everyone() {
        let acls: BTreeSet<_> = [
            acl("User:*", ResourceType::Topic, "*", PatternType::Literal, AclOperation::All, AclPermission::Allow),
            acl(
                "User:alice",
                ResourceType::Topic,
                "secret",
                PatternType::Literal,
                AclOperation::Read,
                AclPermission::Deny,
            ),
        ]
        .into();
        let s = alice();
        assert!(decide(&acls, &s, AclOperation::Write, Resource::Topic("anything")));
        assert!(!decide(&acls, &s, AclOperation::Read, Resource::Topic("secret")));
        assert!(decide(&acls, &s, AclOperation::Write, Resource::Topic("secret")), "only read is denied");
        let bob = Session::new("User:bob", s.host);
        assert!(decide(&acls, &bob, AclOperation::Read, Resource::Topic("secret")));
    }

    #[test]
    fn a_host_restricts_an_acl_to_that_address() {
        let mut a =
            acl("User:alice", ResourceType::Group, "g", PatternType::Literal, AclOperation::Read, AclPermission::Allow);
        a.host = "10.0.0.1".into();
        let acls: BTreeSet<_> = [a].into();
        assert!(decide(&acls, &alice(), AclOperation::Read, Resource::Group("g")));
        let elsewhere = Session::new("User:alice", "10.0.0.2".parse().unwrap());
        assert!(!decide(&acls, &elsewhere, AclOperation::Read, Resource::Group("g")));
    }

    #[test]
    fn alter_configs_implies_describe_configs_but_not_the_reverse() {
        let acls: BTreeSet<_> = [acl(
            "User:alice",
            ResourceType::Cluster,
            CLUSTER_RESOURCE_NAME,
            PatternType::Literal,
            AclOperation::AlterConfigs,
            AclPermission::Allow,
        )]
        .into();
        assert!(decide(&acls, &alice(), AclOperation::DescribeConfigs, Resource::Cluster));
        assert!(!decide(&acls, &alice(), AclOperation::Alter, Resource::Cluster));
    }
}
