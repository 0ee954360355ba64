//! `strata cluster info|health|rebalance|alter-config|describe-config`.

use anyhow::{bail, Result};
use clap::Subcommand;
use serde_json::{json, Value};
use strata_client::{Admin, ClusterDescription, TopicDescription};

use super::output::{print_json, print_text, Output, Table};
use super::Global;

#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
    /// Cluster id, active controller, brokers (address, rack, state) and
    /// controller voters.
    Info,
    /// Exit 0 only when healthy: a controller leader is known, every broker
    /// is unfenced, and every partition of every topic has a leader.
    /// Otherwise print why and exit 1.
    Health,
    /// Even out replicas and preferred leaders over the brokers (e.g. after
    /// adding one): moves replicas, copying their data.
    Rebalance {
        /// Only show the moves it would start.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        moving: super::moves::MoveArgs,
    },
    /// Change cluster-wide broker configs at run time
    /// (`replication.throttled.rate`).
    AlterConfig {
        /// A config to set, e.g. `replication.throttled.rate=10485760`.
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = super::topic::parse_config)]
        set: Vec<(String, String)>,
        /// A config to remove (repeatable).
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
    /// The cluster-wide broker configs set at run time.
    DescribeConfig,
    /// Add a controller voter: start the node first (same
    /// `--controller-voters`, not listing itself); it catches up as a
    /// learner and then votes.
    AddVoter {
        /// The node's id.
        id: u64,
        /// Its controller (Raft) address, as the other voters reach it.
        #[arg(long, value_name = "HOST:PORT")]
        address: String,
        /// Wait until it votes (at most this long, e.g. `60s`).
        #[arg(long, value_name = "DURATION", value_parser = super::moves::parse_duration)]
        wait: Option<std::time::Duration>,
    },
    /// Remove a controller voter (a failed one, or one being retired).
    RemoveVoter {
        /// The node's id.
        id: u64,
    },
}

pub(crate) async fn run(cmd: ClusterCommand, global: &Global) -> Result<()> {
    let admin = global.admin().await?;
    match cmd {
        ClusterCommand::Info => info(&admin, global.output).await,
        ClusterCommand::Health => health(&admin, global.output).await,
        ClusterCommand::Rebalance { dry_run, moving } => {
            super::moves::rebalance(&admin, dry_run, &moving, global.output).await
        }
        ClusterCommand::AlterConfig { set, delete } => {
            if set.is_empty() && delete.is_empty() {
                bail!("nothing to change: give --set KEY=VALUE or --delete KEY");
            }
            let configs = admin.alter_broker_configs(&set, &delete).await?;
            print_configs(&configs, global.output)
        }
        ClusterCommand::DescribeConfig => print_configs(&admin.describe_broker_configs().await?, global.output),
        ClusterCommand::AddVoter { id, address, wait } => {
            let (voters, learners) = admin.change_controller_voter(id, Some(&address)).await?;
            print_voters(&voters, &learners, global.output)?;
            let Some(limit) = wait else { return Ok(()) };
            let deadline = std::time::Instant::now() + limit;
            loop {
                let c = admin.describe_cluster().await?;
                if c.voters.iter().any(|v| u64::from(v.node_id) == id) {
                    if global.output == Output::Text {
                        print_text(&format!("node {id} is a voter\n"))?;
                    }
                    return Ok(());
                }
                if std::time::Instant::now() >= deadline {
                    bail!("node {id} is not a voter after {limit:?} (is it running, at {address}?)");
                }
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
        }
        ClusterCommand::RemoveVoter { id } => {
            let (voters, learners) = admin.change_controller_voter(id, None).await?;
            print_voters(&voters, &learners, global.output)
        }
    }
}

fn print_voters(voters: &[u64], learners: &[u64], output: Output) -> Result<()> {
    let list = |ids: &[u64]| {
        if ids.is_empty() {
            "-".to_owned()
        } else {
            ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
        }
    };
    match output {
        Output::Text => print_text(&format!("VOTERS    {}\nLEARNERS  {}\n", list(voters), list(learners)))?,
        Output::Json => print_json(&json!({"voters": voters, "learners": learners}))?,
    }
    Ok(())
}

fn print_configs(configs: &std::collections::BTreeMap<String, String>, output: Output) -> Result<()> {
    match output {
        Output::Text => {
            let mut t = Table::new(&["CONFIG", "VALUE"]);
            for (k, v) in configs {
                t.row(vec![k.clone(), v.clone()]);
            }
            print_text(&t.render())?;
        }
        Output::Json => print_json(&json!(configs))?,
    }
    Ok(())
}

async fn info(admin: &Admin, output: Output) -> Result<()> {
    let c = admin.describe_cluster().await?;
    // Placement only: a paused or dead leader must not hold `info` up.
    let topics = admin.describe_placements(&[]).await?;
    let load = load(&topics);
    match output {
        Output::Text => print_text(&info_text(&c, &load))?,
        Output::Json => print_json(&info_json(&c, &load))?,
    }
    Ok(())
}

/// Replicas and leaderships per broker.
fn load(topics: &[TopicDescription]) -> std::collections::BTreeMap<u32, (usize, usize)> {
    let mut out = std::collections::BTreeMap::new();
    for p in topics.iter().flat_map(|t| &t.partitions) {
        for r in &p.replicas {
            out.entry(*r).or_insert((0, 0)).0 += 1;
        }
        if let Some(l) = p.leader {
            out.entry(l).or_insert((0, 0)).1 += 1;
        }
    }
    out
}

fn info_text(c: &ClusterDescription, load: &std::collections::BTreeMap<u32, (usize, usize)>) -> String {
    let mut s = String::new();
    s.push_str(&format!("CLUSTER          {}\n", c.cluster_id));
    s.push_str(&format!("CONTROLLER       {}\n", c.controller_id.map_or("none".to_owned(), |id| id.to_string())));
    s.push_str(&format!("METADATA OFFSET  {}\n", c.metadata_offset));
    s.push_str("\nBROKERS\n");
    let mut brokers = Table::new(&["ID", "ADDRESS", "RACK", "STATE", "REPLICAS", "LEADERS"]);
    for b in &c.brokers {
        let (replicas, leaders) = load.get(&b.node_id).copied().unwrap_or((0, 0));
        brokers.row(vec![
            b.node_id.to_string(),
            b.address.clone(),
            b.rack.clone().unwrap_or_else(|| "-".into()),
            b.state.clone(),
            replicas.to_string(),
            leaders.to_string(),
        ]);
    }
    s.push_str(&brokers.render());
    s.push_str("\nVOTERS\n");
    let mut voters = Table::new(&["ID", "ADDRESS", "LEADER", "LAG"]);
    for v in &c.voters {
        voters.row(vec![
            v.node_id.to_string(),
            v.address.clone(),
            if v.is_leader { "yes" } else { "no" }.to_owned(),
            v.lag.to_string(),
        ]);
    }
    s.push_str(&voters.render());
    s
}

fn info_json(c: &ClusterDescription, load: &std::collections::BTreeMap<u32, (usize, usize)>) -> Value {
    json!({
        "cluster_id": c.cluster_id,
        "controller_id": c.controller_id,
        "metadata_offset": c.metadata_offset,
        "brokers": c.brokers.iter().map(|b| json!({
            "node_id": b.node_id,
            "address": b.address,
            "rack": b.rack,
            "state": b.state,
            "replicas": load.get(&b.node_id).map_or(0, |l| l.0),
            "leaders": load.get(&b.node_id).map_or(0, |l| l.1),
        })).collect::<Vec<_>>(),
        "voters": c.voters.iter().map(|v| json!({
            "node_id": v.node_id,
            "address": v.address,
            "is_leader": v.is_leader,
            "lag": v.lag,
        })).collect::<Vec<_>>(),
    })
}

/// Why the cluster is not healthy; empty when it is.
fn problems(c: &ClusterDescription, topics: &[TopicDescription]) -> Vec<String> {
    let mut out = Vec::new();
    if c.controller_id.is_none() {
        out.push("no active controller".to_owned());
    }
    if c.brokers.is_empty() {
        out.push("no brokers registered".to_owned());
    }
    for b in &c.brokers {
        if b.state != "unfenced" {
            out.push(format!("broker {} ({}) is {}", b.node_id, b.address, b.state));
        }
    }
    for t in topics {
        let leaderless: Vec<String> =
            t.partitions.iter().filter(|p| p.leader.is_none()).map(|p| p.partition.to_string()).collect();
        if !leaderless.is_empty() {
            out.push(format!("topic '{}': partitions without a leader: {}", t.name, leaderless.join(",")));
        }
    }
    out
}

async fn health(admin: &Admin, output: Output) -> Result<()> {
    let c = admin.describe_cluster().await?;
    // Leaders are in any broker's metadata: no need to wait on each leader.
    let topics = admin.describe_placements(&[]).await?;
    let problems = problems(&c, &topics);
    let partitions: usize = topics.iter().map(|t| t.partitions.len()).sum();
    let healthy = problems.is_empty();
    match output {
        Output::Text => {
            let mut s = format!(
                "HEALTHY     {}\nCONTROLLER  {}\nBROKERS     {} ({} unfenced)\nTOPICS      {} ({} partitions)\n",
                if healthy { "yes" } else { "no" },
                c.controller_id.map_or("none".to_owned(), |id| id.to_string()),
                c.brokers.len(),
                c.brokers.iter().filter(|b| b.state == "unfenced").count(),
                topics.len(),
                partitions,
            );
            for p in &problems {
                s.push_str(&format!("PROBLEM     {p}\n"));
            }
            print_text(&s)?;
        }
        Output::Json => print_json(&json!({
            "healthy": healthy,
            "controller_id": c.controller_id,
            "brokers": c.brokers.len(),
            "unfenced_brokers": c.brokers.iter().filter(|b| b.state == "unfenced").count(),
            "topics": topics.len(),
            "partitions": partitions,
            "problems": problems,
        }))?,
    }
    if !healthy {
        bail!("cluster is unhealthy: {}", problems.join("; "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_client::{BrokerDescription, PartitionDescription};

    fn cluster(controller: Option<u32>, states: &[&str]) -> ClusterDescription {
        ClusterDescription {
            cluster_id: "c".into(),
            controller_id: controller,
            brokers: states
                .iter()
                .enumerate()
                .map(|(i, s)| BrokerDescription {
                    node_id: i as u32 + 1,
                    address: format!("h:{i}"),
                    rack: None,
                    state: s.to_string(),
                })
                .collect(),
            voters: Vec::new(),
            metadata_offset: 0,
        }
    }

    fn topic(leaders: &[Option<u32>]) -> TopicDescription {
        TopicDescription {
            name: "t".into(),
            topic_id: "id".into(),
            partitions: leaders
                .iter()
                .enumerate()
                .map(|(i, l)| PartitionDescription {
                    partition: i as u32,
                    leader: *l,
                    leader_epoch: 0,
                    replicas: vec![1],
                    isr: vec![1],
                    log_start_offset: 0,
                    log_end_offset: 0,
                    high_watermark: 0,
                    offsets_from_leader: false,
                })
                .collect(),
            configs: Default::default(),
        }
    }

    #[test]
    fn health_names_each_problem() {
        assert!(problems(&cluster(Some(1), &["unfenced"]), &[topic(&[Some(1)])]).is_empty());
        let p = problems(&cluster(None, &["unfenced", "fenced"]), &[topic(&[Some(1), None, None])]);
        assert_eq!(
            p,
            vec![
                "no active controller".to_string(),
                "broker 2 (h:1) is fenced".to_string(),
                "topic 't': partitions without a leader: 1,2".to_string(),
            ]
        );
    }
}
