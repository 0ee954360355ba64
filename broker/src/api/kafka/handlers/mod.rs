//! One handler per Kafka API: each turns the decoded request into calls on
//! the broker core and builds the answer for the version asked.

mod acls;
mod alter_configs;
pub(crate) mod api_versions;
mod classic;
mod cluster;
mod configs;
mod consumer_heartbeat;
mod coordinator;
mod delete_records;
mod denied;
mod epoch;
mod fetch;
mod groups;
mod init_producer_id;
mod leader_epoch;
mod list_offsets;
mod log_dirs;
mod metadata;
mod offsets;
mod partitions;
mod produce;
mod reassignments;
mod scram_users;
mod topics;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{GroupId, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use strata_metadata::AclOperation;

use crate::authorizer::{Resource, Session};
use crate::service::BrokerService;

/// What a handler answers with.
pub(crate) enum Reply {
    /// A message to encode.
    Message(Box<ResponseKind>),
    /// An answer already framed, as parts for one vectored write (Fetch,
    /// whose record bytes are the log's own slices).
    Framed(Vec<bytes::Bytes>),
}

/// Who sent a request: its address and the header's client id.
pub(crate) struct Client<'a> {
    /// The peer address.
    pub(crate) peer: std::net::SocketAddr,
    /// The header's client id (empty when null).
    pub(crate) id: &'a str,
    /// Who it is, for the authorizer.
    pub(crate) session: &'a Session,
}

impl Client<'_> {
    /// The host as Kafka shows it in DescribeGroups (`/127.0.0.1`).
    fn host(&self) -> String {
        format!("/{}", self.peer.ip())
    }
}

/// The answer to `request` (`None`: none is sent). Only APIs listed in
/// `versions::SUPPORTED` reach here; anything else is a bug in that table.
pub(crate) async fn handle(
    core: &BrokerService,
    request: RequestKind,
    version: i16,
    correlation_id: i32,
    client: Client<'_>,
) -> Option<Reply> {
    let session = client.session;
    Some(Reply::Message(Box::new(match request {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions::advertised()),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(core, session, r, version).await),
        RequestKind::Produce(r) => {
            return produce::handle(core, session, r).await.map(|r| Reply::Message(Box::new(ResponseKind::Produce(r))))
        }
        RequestKind::Fetch(r) => {
            return Some(Reply::Framed(fetch::handle(core, session, r, version, correlation_id).await))
        }
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets::handle(core, session, r, version).await),
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(init_producer_id::handle(core, session, r).await)
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(leader_epoch::handle(core, session, r))
        }
        RequestKind::ConsumerGroupHeartbeat(r) => match group_denied(core, session, &r.group_id) {
            Some(code) => ResponseKind::ConsumerGroupHeartbeat(denied::consumer_heartbeat(code)),
            None => ResponseKind::ConsumerGroupHeartbeat(consumer_heartbeat::handle(core, r, client.host()).await),
        },
        RequestKind::JoinGroup(r) => match group_denied(core, session, &r.group_id) {
            Some(code) => ResponseKind::JoinGroup(denied::join(code)),
            None => ResponseKind::JoinGroup(classic::join(core, r, version, client.id, client.host()).await),
        },
        RequestKind::SyncGroup(r) => match group_denied(core, session, &r.group_id) {
            Some(code) => ResponseKind::SyncGroup(denied::sync(code)),
            None => ResponseKind::SyncGroup(classic::sync(core, r).await),
        },
        RequestKind::Heartbeat(r) => match group_denied(core, session, &r.group_id) {
            Some(code) => ResponseKind::Heartbeat(denied::heartbeat(code)),
            None => ResponseKind::Heartbeat(classic::heartbeat(core, r).await),
        },
        RequestKind::LeaveGroup(r) => match group_denied(core, session, &r.group_id) {
            Some(code) => ResponseKind::LeaveGroup(denied::leave(code)),
            None => ResponseKind::LeaveGroup(classic::leave(core, r, version).await),
        },
        RequestKind::DescribeGroups(r) => ResponseKind::DescribeGroups(classic::describe(core, session, r).await),
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(coordinator::handle(core, session, r, version).await)
        }
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(offsets::commit(core, session, r).await),
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(offsets::fetch(core, session, r, version).await),
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(groups::list(core, session, r).await),
        RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(groups::delete(core, session, r).await),
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(topics::create(core, session, r).await),
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(topics::delete(core, session, r).await),
        RequestKind::DescribeConfigs(r) => ResponseKind::DescribeConfigs(configs::handle(core, session, r)),
        RequestKind::DescribeCluster(r) => ResponseKind::DescribeCluster(cluster::handle(core, session, r).await),
        RequestKind::DescribeLogDirs(r) => ResponseKind::DescribeLogDirs(log_dirs::handle(core, session, r)),
        RequestKind::AlterUserScramCredentials(r) => {
            ResponseKind::AlterUserScramCredentials(scram_users::alter(core, session, r).await)
        }
        RequestKind::DescribeUserScramCredentials(r) => {
            ResponseKind::DescribeUserScramCredentials(scram_users::describe(core, session, r))
        }
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(alter_configs::incremental(core, session, r).await)
        }
        RequestKind::DeleteRecords(r) => ResponseKind::DeleteRecords(delete_records::handle(core, session, r).await),
        RequestKind::CreatePartitions(r) => ResponseKind::CreatePartitions(partitions::create(core, session, r).await),
        RequestKind::AlterConfigs(r) => ResponseKind::AlterConfigs(alter_configs::replace(core, session, r).await),
        RequestKind::CreateAcls(r) => ResponseKind::CreateAcls(acls::create(core, session, r).await),
        RequestKind::AlterPartitionReassignments(r) => {
            ResponseKind::AlterPartitionReassignments(reassignments::alter(core, session, r, version).await)
        }
        RequestKind::ListPartitionReassignments(r) => {
            ResponseKind::ListPartitionReassignments(reassignments::list(core, session, r))
        }
        RequestKind::DescribeAcls(r) => ResponseKind::DescribeAcls(acls::describe(core, session, r)),
        RequestKind::DeleteAcls(r) => ResponseKind::DeleteAcls(acls::delete(core, session, r).await),
        other => {
            tracing::error!(request = ?std::mem::discriminant(&other), "a Kafka API advertised without a handler");
            return None;
        }
    })))
}

/// `GROUP_AUTHORIZATION_FAILED` unless `session` may read (use) the group.
fn group_denied(core: &BrokerService, session: &Session, group: &GroupId) -> Option<i16> {
    (!core.is_authorized(session, AclOperation::Read, Resource::Group(group.0.as_str())))
        .then(|| ResponseError::GroupAuthorizationFailed.code())
}

/// The code and message of a refusal, for an answer's error fields.
pub(crate) fn refusal(e: &crate::error::BrokerError) -> (i16, Option<StrBytes>) {
    (crate::api::kafka::codes::code_of(e.kind()), Some(StrBytes::from_string(e.message().to_string())))
}

/// A topic name for an answer.
pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}
