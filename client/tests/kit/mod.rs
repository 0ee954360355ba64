//! What the client's tests share: the real broker in process
//! (`strata_server::testkit::TestCluster`, its wiretap recording requests
//! and injecting faults), a deadline per test, and a few look-ups through
//! the real API.
#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use strata_client::Admin;
pub(crate) use strata_server::testkit::TestCluster;

/// Runs a test body with a deadline so a bug hangs no test run.
pub(crate) async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f).await.expect("test timed out")
}

/// Bytes of a `&str`.
pub(crate) fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Creates `topic` (replication factor 1) with `configs` and waits until
/// every running node sees a leader for each partition.
pub(crate) async fn create_topic_with(
    cluster: &TestCluster,
    topic: &str,
    partitions: u32,
    rf: u32,
    configs: &[(&str, &str)],
) {
    let admin = Admin::connect(cluster.addrs()).await.unwrap();
    let configs: Vec<(String, String)> = configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    admin.create_topic(topic, partitions, rf, &configs).await.unwrap();
    for p in 0..partitions {
        strata_server::testkit::eventually("the partition has a leader", Duration::from_secs(10), || async move {
            cluster.leader(topic, p).await.is_some()
        })
        .await;
    }
}

/// Creates `topic` with `partitions` partitions and replication factor 1.
pub(crate) async fn create_topic(cluster: &TestCluster, topic: &str, partitions: u32) {
    create_topic_with(cluster, topic, partitions, 1, &[]).await;
}

/// The offset `group` committed for `topic`-`partition`, through the real
/// `FetchOffsets`.
pub(crate) async fn committed(cluster: &TestCluster, group: &str, topic: &str, partition: u32) -> Option<u64> {
    let admin = Admin::connect(cluster.addrs()).await.unwrap();
    let offsets = admin.fetch_offsets(group, Some(&[(topic.to_owned(), vec![partition])])).await.unwrap();
    offsets.first().and_then(|c| c.offset)
}

/// A group name starting with `prefix` that node `node` coordinates.
pub(crate) async fn group_on(cluster: &TestCluster, prefix: &str, node: u32) -> String {
    let admin = Admin::connect(cluster.addrs()).await.unwrap();
    for i in 0..200 {
        let group = format!("{prefix}{i}");
        if admin.find_coordinator(&group).await.unwrap().node_id == node {
            return group;
        }
    }
    panic!("no group '{prefix}N' is coordinated by node {node}");
}
