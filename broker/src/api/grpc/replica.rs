//! `ReplicaFetch` at the gRPC edge, both ways: the leader decodes a
//! follower's fetch and encodes its answer; the follower's fetcher encodes
//! its fetch and decodes the answer. Record bytes pass through as the same
//! `Bytes`.

use std::time::Duration;

use strata_protocol::v1;
use strata_protocol::v1::strata_client::StrataClient;
use strata_record::TopicPartition;
use tonic::transport::{Channel, Endpoint};

use super::errors;
use crate::replication::messages::{EpochEnd, FollowerFetch, FollowerFetched, ReplicaFetch};
use crate::service::BrokerService;

/// The leader's side: serves the fetch and encodes each partition's answer.
pub(crate) async fn replica_fetch(core: &BrokerService, req: v1::ReplicaFetchRequest) -> v1::ReplicaFetchResponse {
    let answers = core.replica_fetch(fetch_from_api(req)).await;
    v1::ReplicaFetchResponse { partitions: answers.into_iter().map(fetched_to_api).collect() }
}

/// In a TLS cluster only the follower itself may fetch as itself (a forged
/// fetch would move the high watermark and the ISR): `peer` must hold the
/// node certificate of `replica_id`. Refusals are logged with the peer.
pub(crate) fn authorize(
    core: &BrokerService,
    replica_id: u32,
    peer: Option<&strata_tls::TlsConnectInfo>,
) -> Result<(), tonic::Status> {
    if !core.config.node_certificates {
        return Ok(());
    }
    let claimed = u64::from(replica_id);
    // The accepted path only compares the id parsed at the handshake; the
    // peer's description is built for refusals alone.
    match peer.map(|p| (p.node_id(), p)) {
        Some((Some(node), _)) if node == claimed => Ok(()),
        Some((Some(node), p)) => {
            let peer = p.describe();
            tracing::warn!(%peer, certificate_node = node, claimed, "refused a replica fetch for another node");
            Err(tonic::Status::permission_denied(format!(
                "a replica fetch as node {claimed} from a certificate of node {node}"
            )))
        }
        other => {
            let peer = other.map_or_else(|| "a connection without TLS".to_string(), |(_, p)| p.describe());
            tracing::warn!(%peer, claimed, "refused a replica fetch without a node certificate");
            Err(tonic::Status::permission_denied(format!(
                "replica fetches need the follower's node certificate (naming strata-node-{claimed}); got {peer}"
            )))
        }
    }
}

/// Largest gRPC message a follower accepts.
const MAX_MESSAGE: usize = 64 << 20;

/// HTTP/2 flow-control windows of a follower's connection to its leader.
const STREAM_WINDOW: u32 = 24 << 20;
const CONNECTION_WINDOW: u32 = 48 << 20;

/// The follower's side: a (lazily connected) channel to one leader broker.
#[derive(Debug, Clone)]
pub(crate) struct LeaderClient {
    address: String,
    client: StrataClient<Channel>,
}

impl LeaderClient {
    /// A client for the leader at `address` (host:port); it connects on
    /// first use.
    /// With `tls`, the connection is TLS and presents this node's
    /// certificate (the leader checks it names this node).
    pub(crate) fn new(address: &str, tls: Option<&strata_tls::ClientTls>) -> Result<Self, String> {
        let bad = |e: tonic::transport::Error| format!("bad leader address {address}: {e}");
        // A whole replica fetch (up to 16 MiB) fits the stream window: with
        // hyper's 2 MiB default the leader stalls for a window update every
        // 2 MiB of every answer.
        let windows = |ep: Endpoint| {
            ep.tcp_nodelay(true)
                .initial_stream_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
        };
        let channel = match tls {
            Some(tls) => strata_tls::channel(address, tls, Duration::from_secs(1), windows).map_err(bad)?,
            None => windows(
                Endpoint::from_shared(format!("http://{address}"))
                    .map_err(bad)?
                    .connect_timeout(Duration::from_secs(1)),
            )
            .connect_lazy(),
        };
        let client =
            StrataClient::new(channel).max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(MAX_MESSAGE);
        Ok(LeaderClient { address: address.to_string(), client })
    }

    /// The leader's address.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// Sends `fetch` and decodes the leader's answer.
    pub(crate) async fn fetch(&mut self, fetch: &ReplicaFetch) -> Result<Vec<FollowerFetched>, tonic::Status> {
        let response = self.client.replica_fetch(fetch_to_api(fetch)).await?.into_inner();
        Ok(response.partitions.into_iter().map(fetched_from_api).collect())
    }
}

fn fetch_to_api(f: &ReplicaFetch) -> v1::ReplicaFetchRequest {
    v1::ReplicaFetchRequest {
        replica_id: f.replica_id,
        max_wait_ms: f.max_wait.as_millis().min(u128::from(u32::MAX)) as u32,
        min_bytes: f.min_bytes,
        max_bytes: f.max_bytes,
        partitions: f
            .partitions
            .iter()
            .map(|p| v1::ReplicaFetchPartition {
                topic: p.tp.topic.clone(),
                partition: p.tp.partition,
                fetch_offset: p.fetch_offset,
                last_fetched_epoch: p.last_fetched_epoch,
                current_leader_epoch: p.current_leader_epoch,
                partition_max_bytes: p.max_bytes,
            })
            .collect(),
    }
}

fn fetch_from_api(req: v1::ReplicaFetchRequest) -> ReplicaFetch {
    ReplicaFetch {
        replica_id: req.replica_id,
        max_wait: Duration::from_millis(req.max_wait_ms.into()),
        min_bytes: req.min_bytes,
        max_bytes: req.max_bytes,
        partitions: req
            .partitions
            .into_iter()
            .map(|p| FollowerFetch {
                tp: TopicPartition { topic: p.topic, partition: p.partition },
                fetch_offset: p.fetch_offset,
                last_fetched_epoch: p.last_fetched_epoch,
                current_leader_epoch: p.current_leader_epoch,
                max_bytes: p.partition_max_bytes,
            })
            .collect(),
    }
}

fn fetched_to_api(r: FollowerFetched) -> v1::ReplicaFetchedPartition {
    v1::ReplicaFetchedPartition {
        topic: r.tp.topic,
        partition: r.tp.partition,
        error: r.error.map(Into::into),
        high_watermark: r.high_watermark,
        log_start_offset: r.log_start_offset,
        log_end_offset: r.log_end_offset,
        diverging_epoch: r.diverging_epoch.map(|d| v1::EpochEndOffset { epoch: d.epoch, end_offset: d.end_offset }),
        records: r.records,
    }
}

fn fetched_from_api(r: v1::ReplicaFetchedPartition) -> FollowerFetched {
    FollowerFetched {
        tp: TopicPartition { topic: r.topic, partition: r.partition },
        error: r.error.map(errors::from_api),
        high_watermark: r.high_watermark,
        log_start_offset: r.log_start_offset,
        log_end_offset: r.log_end_offset,
        diverging_epoch: r.diverging_epoch.map(|d| EpochEnd { epoch: d.epoch, end_offset: d.end_offset }),
        records: r.records,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{BrokerError, ErrorKind};

    #[test]
    fn a_fetch_and_its_answer_survive_the_wire_form() {
        let fetch = ReplicaFetch {
            replica_id: 2,
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_bytes: 16 << 20,
            partitions: vec![FollowerFetch {
                tp: TopicPartition::of("t", 3),
                fetch_offset: 42,
                last_fetched_epoch: -1,
                current_leader_epoch: 7,
                max_bytes: 0,
            }],
        };
        let back = fetch_from_api(fetch_to_api(&fetch));
        assert_eq!((back.replica_id, back.max_wait, back.min_bytes, back.max_bytes), (2, fetch.max_wait, 1, 16 << 20));
        assert_eq!(back.partitions, fetch.partitions);

        let mut answer = FollowerFetched::new(TopicPartition::of("t", 3));
        answer.error = Some(BrokerError::new(ErrorKind::OffsetOutOfRange, "t-3: offset 42 is out of range"));
        answer.log_start_offset = 50;
        answer.log_end_offset = 90;
        answer.diverging_epoch = Some(EpochEnd { epoch: 4, end_offset: 40 });
        answer.records = bytes::Bytes::from_static(b"batch");
        let back = fetched_from_api(fetched_to_api(answer));
        let e = back.error.expect("the error crosses");
        assert_eq!((e.kind(), e.message()), (ErrorKind::OffsetOutOfRange, "t-3: offset 42 is out of range"));
        assert_eq!((back.log_start_offset, back.log_end_offset), (50, 90));
        assert_eq!(back.diverging_epoch, Some(EpochEnd { epoch: 4, end_offset: 40 }));
        assert_eq!(&back.records[..], b"batch");
    }
}
