//! Admin against the real broker in process, over real gRPC.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

mod kit;

use kit::{bounded, TestCluster};
use std::time::Duration;

use strata_client::{Admin, ElectionType, ErrorCode};

#[tokio::test]
async fn topics_are_created_listed_described_and_deleted() {
    bounded(async {
        let cluster = TestCluster::start(2).await;
        // A bootstrap list with a dead address first still connects.
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
        let admin = Admin::connect([format!("{dead},{}", cluster.addr(2))]).await.unwrap();

        let configs = [("retention.ms".to_string(), "1000".to_string())];
        admin.create_topic("orders", 3, 2, &configs).await.unwrap();
        admin.create_topic("audit", 1, 1, &[]).await.unwrap();

        let topics = admin.list_topics().await.unwrap();
        let names: Vec<&str> = topics.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, vec!["audit", "orders"]);
        assert_eq!((topics[1].partitions, topics[1].replication_factor), (3, 2));
        assert!(!topics[1].topic_id.is_empty() && topics[0].topic_id != topics[1].topic_id, "{topics:?}");

        let described = admin.describe_topics(&["orders".to_string()]).await.unwrap();
        assert_eq!(described.len(), 1);
        let d = &described[0];
        assert_eq!(d.configs.get("retention.ms").map(String::as_str), Some("1000"));
        assert_eq!(d.partitions.iter().map(|p| p.partition).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(d.topic_id, topics[1].topic_id);
        // Two replicas, both in sync, one of them leading.
        let p = &d.partitions[1];
        let mut isr = p.isr.clone();
        isr.sort_unstable();
        assert_eq!(isr, vec![1, 2], "{p:?}");
        assert!(p.leader.is_some_and(|l| isr.contains(&l)), "{p:?}");
        assert_eq!(admin.describe_topics(&[]).await.unwrap().len(), 2);

        let err = admin.create_topic("orders", 1, 1, &[]).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::TopicAlreadyExists));
        assert_eq!(err.to_string(), "TOPIC_ALREADY_EXISTS: topic 'orders' already exists");
        let err = admin.create_topic("bad name!", 1, 1, &[]).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::InvalidTopicName));

        admin.delete_topic("orders").await.unwrap();
        let err = admin.delete_topic("orders").await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::UnknownTopicOrPartition));
        let err = admin.describe_topics(&["orders".to_string()]).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::UnknownTopicOrPartition));
        assert_eq!(admin.list_topics().await.unwrap().len(), 1);
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn cluster_is_described() {
    bounded(async {
        let cluster = TestCluster::start_with(2, |id, config| {
            if id == 1 {
                config.rack = Some("rack-a".into());
            }
        })
        .await;
        let admin = Admin::connect([cluster.addr(1)]).await.unwrap();
        let c = admin.describe_cluster().await.unwrap();
        assert!(!c.cluster_id.is_empty());
        assert_eq!(c.controller_id, Some(1));
        assert!(c.metadata_offset > 0, "{c:?}");
        let brokers: Vec<(u32, &str, Option<&str>)> =
            c.brokers.iter().map(|b| (b.node_id, b.address.as_str(), b.rack.as_deref())).collect();
        let (one, two) = (cluster.addr(1), cluster.addr(2));
        assert_eq!(brokers, vec![(1, one.as_str(), Some("rack-a")), (2, two.as_str(), None)]);
        assert!(c.brokers.iter().all(|b| b.state == "unfenced"));
        assert_eq!(c.voters.len(), 1);
        assert!(c.voters[0].is_leader);
        cluster.stop().await;
    })
    .await;
}

#[tokio::test]
async fn bad_bootstrap_lists_are_refused() {
    bounded(async {
        assert!(Admin::connect([" , "]).await.is_err());
        let err = Admin::connect(["no-port"]).await.unwrap_err();
        assert_eq!(err.to_string(), "invalid argument: bootstrap address 'no-port' is not host:port");
    })
    .await;
}

#[tokio::test]
async fn leaders_are_elected() {
    bounded(async {
        let mut cluster = TestCluster::start(2).await;
        let admin = Admin::connect(cluster.addrs()).await.unwrap();
        admin.create_topic("orders", 2, 2, &[]).await.unwrap();
        // Partition 1's preferred leader is restarted: while it is away the
        // other replica takes over, and it comes back as a follower.
        let described = admin.describe_topics(&["orders".to_string()]).await.unwrap().remove(0);
        let preferred = described.partitions[1].replicas[0];
        assert_ne!(described.partitions[0].replicas[0], preferred, "{described:?}");
        cluster.stop_node(preferred).await;
        cluster.restart_node(preferred).await;
        strata_server::testkit::eventually(
            "the preferred replica is back in sync",
            Duration::from_secs(10),
            || async {
                let d = admin.describe_topics(&["orders".to_string()]).await.unwrap().remove(0);
                let p = &d.partitions[1];
                p.isr.contains(&preferred) && p.leader.is_some_and(|l| l != preferred)
            },
        )
        .await;

        let out = admin.elect_leaders(ElectionType::Preferred, &[]).await.unwrap();
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            (out[0].topic.as_str(), out[0].partition, out[0].leader, out[0].moved()),
            ("orders", 1, Some(preferred), true)
        );

        let named = [("orders".to_string(), vec![]), ("nope".to_string(), vec![])];
        let out = admin.elect_leaders(ElectionType::Preferred, &named).await.unwrap();
        let got: Vec<(&str, u32, Option<ErrorCode>)> =
            out.iter().map(|o| (o.topic.as_str(), o.partition, o.error.as_ref().and_then(|e| e.code()))).collect();
        assert_eq!(
            got,
            vec![
                ("nope", 0, Some(ErrorCode::UnknownTopicOrPartition)),
                ("orders", 0, Some(ErrorCode::ElectionNotNeeded)),
                ("orders", 1, Some(ErrorCode::ElectionNotNeeded)),
            ]
        );
        assert!(admin.elect_leaders(ElectionType::Unclean, &[]).await.unwrap().is_empty());
        cluster.stop().await;
    })
    .await;
}
