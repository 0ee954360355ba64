//! `strata topic create|list|describe|delete|rebalance-leaders`.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use strata_client::{Admin, ClientError, ElectionOutcome, ElectionType, TopicDescription};

use super::output::{id_list, print_json, print_text, Output, Table};
use super::Global;

#[derive(Debug, Subcommand)]
pub(crate) enum TopicCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List topics.
    List,
    /// Show a topic's partitions (leader, replicas, ISR, offsets) and configs.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Delete a topic and its data.
    Delete {
        /// Topic name.
        name: String,
    },
    /// Delete a partition's records below an offset (every replica).
    Trim {
        /// Topic name.
        name: String,
        /// The partition.
        #[arg(long, short = 'p', value_name = "P")]
        partition: u32,
        /// Records below this offset go (default: every committed record).
        #[arg(long, value_name = "OFFSET")]
        before: Option<u64>,
    },
    /// Grow a topic to more partitions (placed like a new topic's).
    AddPartitions {
        /// Topic name.
        name: String,
        /// The partition count after the change.
        #[arg(long, value_name = "N")]
        count: u32,
    },
    /// Change a topic's configs on the running cluster.
    AlterConfig {
        /// Topic name.
        name: String,
        /// A config to set, e.g. `retention.ms=3600000` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_config)]
        set: Vec<(String, String)>,
        /// A config to return to the broker default (repeatable).
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
    /// Move partition leadership back to the preferred replicas (Kafka's
    /// preferred leader election), for the named topics or every topic.
    RebalanceLeaders {
        /// Topics to rebalance (every topic when none is given).
        topics: Vec<String>,
        /// Instead, give leaderless partitions a leader even from outside
        /// the ISR (possible data loss), where the topic allows it
        /// (`unclean.leader.election.enable=true`).
        #[arg(long)]
        unclean: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// Topic name.
    name: String,
    /// Number of partitions (broker default when absent).
    #[arg(long, short = 'p', value_name = "N")]
    partitions: Option<u32>,
    /// Replicas per partition (broker default when absent).
    #[arg(long, short = 'r', value_name = "R")]
    replication_factor: Option<u32>,
    /// A topic config, e.g. `retention.ms=86400000` (repeatable).
    #[arg(long = "config", short = 'c', value_name = "KEY=VALUE", value_parser = parse_config)]
    configs: Vec<(String, String)>,
}

pub(crate) fn parse_config(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("'{s}' is not KEY=VALUE")),
    }
}

pub(crate) async fn run(cmd: TopicCommand, global: &Global) -> Result<()> {
    let admin = global.admin().await?;
    match cmd {
        TopicCommand::Create(args) => create(&admin, args, global.output).await,
        TopicCommand::List => list(&admin, global.output).await,
        TopicCommand::Describe { name } => describe(&admin, &name, global.output).await,
        TopicCommand::Delete { name } => {
            admin.delete_topic(&name).await?;
            match global.output {
                Output::Text => print_text(&format!("deleted topic '{name}'\n"))?,
                Output::Json => print_json(&json!({ "topic": name, "deleted": true }))?,
            }
            Ok(())
        }
        TopicCommand::Trim { name, partition, before } => {
            let start = admin.delete_records(&name, partition, before).await?;
            match global.output {
                Output::Text => print_text(&format!("{name}-{partition} now starts at offset {start}\n"))?,
                Output::Json => {
                    print_json(&json!({ "topic": name, "partition": partition, "log_start_offset": start }))?
                }
            }
            Ok(())
        }
        TopicCommand::AddPartitions { name, count } => {
            admin.create_partitions(&name, count).await?;
            match global.output {
                Output::Text => print_text(&format!("topic '{name}' now has {count} partitions\n"))?,
                Output::Json => print_json(&json!({ "topic": name, "partitions": count }))?,
            }
            Ok(())
        }
        TopicCommand::AlterConfig { name, set, delete } => {
            if set.is_empty() && delete.is_empty() {
                anyhow::bail!("nothing to change: give --set KEY=VALUE or --delete KEY");
            }
            admin.alter_topic_configs(&name, &set, &delete).await?;
            match global.output {
                Output::Text => {
                    print_text(&format!("altered topic '{name}': {} set, {} deleted\n", set.len(), delete.len()))?
                }
                Output::Json => print_json(&json!({
                    "topic": name,
                    "set": set.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<String, serde_json::Value>>(),
                    "deleted": delete,
                }))?,
            }
            Ok(())
        }
        TopicCommand::RebalanceLeaders { topics, unclean } => {
            let election = if unclean { ElectionType::Unclean } else { ElectionType::Preferred };
            let partitions: Vec<(String, Vec<u32>)> = topics.into_iter().map(|t| (t, Vec::new())).collect();
            let outcomes = admin.elect_leaders(election, &partitions).await?;
            match global.output {
                Output::Text => print_text(&election_text(&outcomes))?,
                Output::Json => print_json(&election_json(election, &outcomes))?,
            }
            Ok(())
        }
    }
}

/// Moved partitions, then skipped ones with their reasons, in one table.
fn election_text(outcomes: &[ElectionOutcome]) -> String {
    if outcomes.is_empty() {
        return "no partition needed a new leader\n".to_owned();
    }
    let moved = outcomes.iter().filter(|o| o.moved()).count();
    let mut s = format!("moved {moved} partition(s), skipped {}\n", outcomes.len() - moved);
    let mut table = Table::new(&["TOPIC", "PARTITION", "LEADER", "RESULT"]);
    let (moved, skipped): (Vec<&ElectionOutcome>, Vec<&ElectionOutcome>) = outcomes.iter().partition(|o| o.moved());
    for o in moved.into_iter().chain(skipped) {
        table.row(vec![
            o.topic.clone(),
            o.partition.to_string(),
            o.leader.map_or("none".to_owned(), |l| l.to_string()),
            o.error.as_ref().map_or("moved".to_owned(), ClientError::to_string),
        ]);
    }
    s.push_str(&table.render());
    s
}

fn election_json(election: ElectionType, outcomes: &[ElectionOutcome]) -> Value {
    let moved: Vec<Value> = outcomes
        .iter()
        .filter(|o| o.moved())
        .map(|o| json!({ "topic": o.topic, "partition": o.partition, "leader": o.leader }))
        .collect();
    let skipped: Vec<Value> = outcomes
        .iter()
        .filter_map(|o| {
            let e = o.error.as_ref()?;
            let (code, message) = match e {
                ClientError::Server { code, message } => (code.as_str_name().to_owned(), message.clone()),
                other => ("UNKNOWN_SERVER_ERROR".to_owned(), other.to_string()),
            };
            Some(json!({
                "topic": o.topic,
                "partition": o.partition,
                "leader": o.leader,
                "error": code,
                "message": message,
            }))
        })
        .collect();
    json!({ "election": election.as_str(), "moved": moved, "skipped": skipped })
}

async fn create(admin: &Admin, args: CreateArgs, output: Output) -> Result<()> {
    if args.partitions == Some(0) {
        bail!("--partitions must be at least 1");
    }
    if args.replication_factor == Some(0) {
        bail!("--replication-factor must be at least 1");
    }
    let partitions = args.partitions.unwrap_or(0);
    let rf = args.replication_factor.unwrap_or(0);
    admin.create_topic(&args.name, partitions, rf, &args.configs).await?;
    // Report what the broker made of the defaults.
    let created = admin.list_topics().await.ok().and_then(|ts| ts.into_iter().find(|t| t.name == args.name));
    let (partitions, rf) = created.map_or((partitions, rf), |t| (t.partitions, t.replication_factor));
    match output {
        Output::Text => {
            print_text(&format!("created topic '{}' ({partitions} partitions, replication factor {rf})\n", args.name))?
        }
        Output::Json => print_json(&json!({
            "topic": args.name,
            "created": true,
            "partitions": partitions,
            "replication_factor": rf,
            "configs": args.configs.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect::<serde_json::Map<String, Value>>(),
        }))?,
    }
    Ok(())
}

async fn list(admin: &Admin, output: Output) -> Result<()> {
    let topics = admin.list_topics().await?;
    match output {
        Output::Text => {
            let mut table = Table::new(&["NAME", "PARTITIONS", "REPLICAS", "ID"]);
            for t in &topics {
                table.row(vec![
                    t.name.clone(),
                    t.partitions.to_string(),
                    t.replication_factor.to_string(),
                    t.topic_id.clone(),
                ]);
            }
            print_text(&table.render())?;
        }
        Output::Json => {
            let list: Vec<Value> = topics
                .iter()
                .map(|t| {
                    json!({
                        "name": t.name,
                        "topic_id": t.topic_id,
                        "partitions": t.partitions,
                        "replication_factor": t.replication_factor,
                    })
                })
                .collect();
            print_json(&Value::Array(list))?;
        }
    }
    Ok(())
}

async fn describe(admin: &Admin, name: &str, output: Output) -> Result<()> {
    let mut topics = admin.describe_topics(&[name.to_owned()]).await?;
    let Some(pos) = topics.iter().position(|t| t.name == name) else {
        bail!("UNKNOWN_TOPIC_OR_PARTITION: unknown topic '{name}'");
    };
    let t = topics.swap_remove(pos);
    match output {
        Output::Text => print_text(&describe_text(&t))?,
        Output::Json => print_json(&describe_json(&t))?,
    }
    Ok(())
}

fn describe_text(t: &TopicDescription) -> String {
    let rf = t.partitions.iter().map(|p| p.replicas.len()).max().unwrap_or(0);
    let mut s = String::new();
    s.push_str(&format!("NAME         {}\n", t.name));
    s.push_str(&format!("ID           {}\n", t.topic_id));
    s.push_str(&format!("PARTITIONS   {}\n", t.partitions.len()));
    s.push_str(&format!("REPLICAS     {rf}\n"));
    s.push_str("\nCONFIGS\n");
    if t.configs.is_empty() {
        s.push_str("(none set)\n");
    } else {
        let mut table = Table::new(&["KEY", "VALUE"]);
        for (k, v) in &t.configs {
            table.row(vec![k.clone(), v.clone()]);
        }
        s.push_str(&table.render());
    }
    s.push_str("\nPARTITIONS\n");
    let mut table =
        Table::new(&["PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "LOG-START", "LOG-END", "HIGH-WATERMARK"]);
    for p in &t.partitions {
        table.row(vec![
            p.partition.to_string(),
            p.leader.map_or("none".to_owned(), |l| l.to_string()),
            p.leader_epoch.to_string(),
            id_list(&p.replicas),
            id_list(&p.isr),
            // Offsets only the leader knows: "?" when it could not be asked.
            known(p, p.log_start_offset),
            known(p, p.log_end_offset),
            known(p, p.high_watermark),
        ]);
    }
    s.push_str(&table.render());
    s
}

/// An offset of the leader's, or "?" when the leader could not be asked.
fn known(p: &strata_client::PartitionDescription, offset: u64) -> String {
    if p.offsets_from_leader {
        offset.to_string()
    } else {
        "?".to_owned()
    }
}

fn describe_json(t: &TopicDescription) -> Value {
    let partitions: Vec<Value> = t
        .partitions
        .iter()
        .map(|p| {
            json!({
                "partition": p.partition,
                "leader": p.leader,
                "leader_epoch": p.leader_epoch,
                "replicas": p.replicas,
                "isr": p.isr,
                "log_start_offset": p.log_start_offset,
                "log_end_offset": p.log_end_offset,
                "high_watermark": p.high_watermark,
                "offsets_from_leader": p.offsets_from_leader,
            })
        })
        .collect();
    json!({
        "name": t.name,
        "topic_id": t.topic_id,
        "partitions": partitions,
        "configs": t.configs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_key_value() {
        assert_eq!(parse_config("a.b=1").unwrap(), ("a.b".to_string(), "1".to_string()));
        assert_eq!(parse_config("k=").unwrap(), ("k".to_string(), String::new()));
        assert!(parse_config("novalue").is_err());
        assert!(parse_config("=1").is_err());
    }

    #[test]
    fn election_results_list_moved_then_skipped_with_reasons() {
        assert_eq!(election_text(&[]), "no partition needed a new leader\n");
        let outcomes = vec![
            ElectionOutcome {
                topic: "a".into(),
                partition: 0,
                leader: Some(1),
                error: Some(ClientError::server(
                    strata_client::ErrorCode::ElectionNotNeeded,
                    "a-0 is already led by its preferred replica 1",
                )),
            },
            ElectionOutcome { topic: "a".into(), partition: 1, leader: Some(2), error: None },
        ];
        let text = election_text(&outcomes);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "moved 1 partition(s), skipped 1");
        assert!(lines[1].starts_with("TOPIC"), "{text}");
        assert_eq!(lines[2].split_whitespace().collect::<Vec<_>>(), ["a", "1", "2", "moved"]);
        assert!(lines[3].contains("ELECTION_NOT_NEEDED: a-0 is already led"), "{text}");
        let j = election_json(ElectionType::Preferred, &outcomes);
        assert_eq!(j["election"], "preferred");
        assert_eq!(j["moved"], json!([{ "topic": "a", "partition": 1, "leader": 2 }]));
        assert_eq!(j["skipped"][0]["error"], "ELECTION_NOT_NEEDED");
        assert_eq!(j["skipped"][0]["leader"], 1);
    }
}
