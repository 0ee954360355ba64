//! `strata partition reassign|reassignments`, `strata cluster rebalance`,
//! `strata broker decommission`: moving replicas, with an optional
//! replication throttle and a wait until the moves are done.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use strata_client::{Admin, MoveListing, MoveOutcome};

use super::output::{id_list, print_json, print_text, Output, Table};
use super::Global;

/// The cluster config `--throttle` sets.
const THROTTLE_CONFIG: &str = "replication.throttled.rate";

#[derive(Debug, Subcommand)]
pub(crate) enum PartitionCommand {
    /// Move a partition's replicas to other brokers (or cancel a move).
    Reassign {
        /// Topic name.
        topic: String,
        /// The partition.
        #[arg(long, short = 'p', value_name = "P")]
        partition: u32,
        /// The new replicas, preferred leader first, e.g. `2,3,4`.
        #[arg(long, value_name = "IDS", value_delimiter = ',', required_unless_present = "cancel")]
        replicas: Vec<u32>,
        /// Cancel the move in progress instead (back to the old replicas).
        #[arg(long, conflicts_with = "replicas")]
        cancel: bool,
        #[command(flatten)]
        moving: MoveArgs,
    },
    /// The moves in progress, with each new replica's progress.
    Reassignments {
        /// Only these topics.
        topics: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum BrokerCommand {
    /// Move every replica off a broker and place nothing new there; once
    /// it holds no replica it can be stopped and removed. Run it again to
    /// see what is left.
    Decommission {
        /// The broker's node id.
        id: u32,
        /// Only show the moves it would start.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        moving: MoveArgs,
    },
}

/// Options of every command that moves replicas.
#[derive(Debug, Args)]
pub(crate) struct MoveArgs {
    /// Cap the bytes per second leaders send to new replicas (the cluster's
    /// `replication.throttled.rate`; stays set until changed with
    /// `strata cluster alter-config --delete replication.throttled.rate`).
    #[arg(long, value_name = "BYTES_PER_SEC")]
    pub throttle: Option<u64>,
    /// Wait until the moves complete, printing progress (at most this long,
    /// e.g. `10m`; default: do not wait).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub wait: Option<Duration>,
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s.find(|c: char| !c.is_ascii_digit()).map_or((s, "s"), |i| s.split_at(i));
    let n: u64 = n.parse().map_err(|_| format!("'{s}' is not a duration like 90s, 10m or 1h"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("'{s}' is not a duration like 90s, 10m or 1h")),
    }
}

pub(crate) async fn run_partition(cmd: PartitionCommand, global: &Global) -> Result<()> {
    let admin = global.admin().await?;
    match cmd {
        PartitionCommand::Reassign { topic, partition, replicas, cancel, moving } => {
            throttle(&admin, &moving).await?;
            let target = (!cancel).then_some(replicas);
            let outcomes = admin.alter_reassignments(&[(topic, partition, target)]).await?;
            report(&admin, outcomes, &moving, global.output, |_| true).await
        }
        PartitionCommand::Reassignments { topics } => {
            let moves = admin.list_reassignments(&topics).await?;
            print_moves(&moves, global.output)
        }
    }
}

pub(crate) async fn run_broker(cmd: BrokerCommand, global: &Global) -> Result<()> {
    let admin = global.admin().await?;
    match cmd {
        BrokerCommand::Decommission { id, dry_run, moving } => {
            if !dry_run {
                throttle(&admin, &moving).await?;
            }
            let outcomes = admin.decommission_broker(id, dry_run).await?;
            if dry_run {
                return print_outcomes(&outcomes, global.output);
            }
            report(&admin, outcomes, &moving, global.output, |m| m.removing.contains(&id)).await?;
            if moving.wait.is_some() {
                let left = replicas_on(&admin, id).await?;
                if left > 0 {
                    bail!("broker {id} still holds {left} replica(s)");
                }
                if global.output == Output::Text {
                    print_text(&format!("broker {id} holds no replicas: it can be stopped and removed\n"))?;
                }
            }
            Ok(())
        }
    }
}

/// `strata cluster rebalance`.
pub(crate) async fn rebalance(admin: &Admin, dry_run: bool, moving: &MoveArgs, output: Output) -> Result<()> {
    if !dry_run {
        throttle(admin, moving).await?;
    }
    let outcomes = admin.rebalance(dry_run).await?;
    if dry_run {
        return print_outcomes(&outcomes, output);
    }
    report(admin, outcomes, moving, output, |_| true).await
}

/// Replicas (current or targeted) broker `id` holds.
async fn replicas_on(admin: &Admin, id: u32) -> Result<usize> {
    let topics = admin.describe_placements(&[]).await?;
    Ok(topics.iter().flat_map(|t| &t.partitions).filter(|p| p.replicas.contains(&id)).count())
}

async fn throttle(admin: &Admin, moving: &MoveArgs) -> Result<()> {
    if let Some(rate) = moving.throttle {
        admin.alter_broker_configs(&[(THROTTLE_CONFIG.to_owned(), rate.to_string())], &[]).await?;
    }
    Ok(())
}

/// Prints what was started, then (with `--wait`) progress until the moves
/// `mine` selects are all done. Fails if any request was refused.
async fn report(
    admin: &Admin,
    outcomes: Vec<MoveOutcome>,
    moving: &MoveArgs,
    output: Output,
    mine: impl Fn(&MoveListing) -> bool,
) -> Result<()> {
    print_outcomes(&outcomes, output)?;
    let refused: Vec<String> =
        outcomes.iter().filter_map(|o| o.error.as_ref().map(|e| format!("{}-{}: {e}", o.topic, o.partition))).collect();
    if !refused.is_empty() {
        bail!("{} move(s) refused: {}", refused.len(), refused.join("; "));
    }
    let Some(limit) = moving.wait else { return Ok(()) };
    let started: Vec<(String, u32)> = outcomes.iter().map(|o| (o.topic.clone(), o.partition)).collect();
    let deadline = Instant::now() + limit;
    let mut last_print = Instant::now();
    loop {
        let moves = admin.list_reassignments(&[]).await?;
        let left: Vec<&MoveListing> = moves
            .iter()
            .filter(|m| mine(m) || started.iter().any(|(t, p)| *t == m.topic && *p == m.partition))
            .collect();
        if left.is_empty() {
            if output == Output::Text {
                print_text(&format!("done: {} move(s) complete\n", started.len()))?;
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{} move(s) still running after {:?}", left.len(), limit);
        }
        if output == Output::Text && last_print.elapsed() >= Duration::from_secs(5) {
            print_text(&format!("{} move(s) running\n", left.len()))?;
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn print_outcomes(outcomes: &[MoveOutcome], output: Output) -> Result<()> {
    match output {
        Output::Text => {
            let mut t = Table::new(&["TOPIC", "PARTITION", "TARGET", "RESULT"]);
            for o in outcomes {
                let result = match &o.error {
                    None if o.replicas.is_empty() => "cancelled".to_owned(),
                    None => "started".to_owned(),
                    Some(e) => e.to_string(),
                };
                t.row(vec![o.topic.clone(), o.partition.to_string(), id_list(&o.replicas), result]);
            }
            if outcomes.is_empty() {
                print_text("nothing to move\n")?;
            } else {
                print_text(&t.render())?;
            }
        }
        Output::Json => print_json(&Value::Array(
            outcomes
                .iter()
                .map(|o| {
                    json!({
                        "topic": o.topic,
                        "partition": o.partition,
                        "target": o.replicas,
                        "error": o.error.as_ref().map(ToString::to_string),
                    })
                })
                .collect(),
        ))?,
    }
    Ok(())
}

/// `caught up/leader end` per adding replica, e.g. `4:1200/5000`.
fn progress(m: &MoveListing) -> String {
    if m.progress.is_empty() {
        return "-".to_owned();
    }
    let end = m.leader_log_end.map_or("?".to_owned(), |e| e.to_string());
    m.progress
        .iter()
        .map(|(b, leo)| format!("{b}:{}/{end}", leo.map_or("-".to_owned(), |o| o.to_string())))
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_moves(moves: &[MoveListing], output: Output) -> Result<()> {
    match output {
        Output::Text => {
            if moves.is_empty() {
                return Ok(print_text("no moves in progress\n")?);
            }
            let mut t = Table::new(&["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR", "ADDING", "REMOVING", "PROGRESS"]);
            for m in moves {
                t.row(vec![
                    m.topic.clone(),
                    m.partition.to_string(),
                    m.leader.map_or("-".to_owned(), |l| l.to_string()),
                    id_list(&m.replicas),
                    id_list(&m.isr),
                    id_list(&m.adding),
                    id_list(&m.removing),
                    progress(m),
                ]);
            }
            print_text(&t.render())?;
        }
        Output::Json => print_json(&Value::Array(
            moves
                .iter()
                .map(|m| {
                    json!({
                        "topic": m.topic,
                        "partition": m.partition,
                        "leader": m.leader,
                        "replicas": m.replicas,
                        "isr": m.isr,
                        "adding": m.adding,
                        "removing": m.removing,
                        "target": m.target,
                        "leader_log_end_offset": m.leader_log_end,
                        "progress": m.progress.iter().map(|(b, o)| json!({"broker": b, "log_end_offset": o})).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        ))?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn progress_names_each_new_replica() {
        let m = MoveListing {
            topic: "t".into(),
            partition: 0,
            replicas: vec![2, 3, 4, 1],
            isr: vec![1, 2, 3],
            leader: Some(1),
            adding: vec![4],
            removing: vec![1],
            target: vec![2, 3, 4],
            leader_log_end: Some(5000),
            progress: vec![(4, Some(1200))],
        };
        assert_eq!(progress(&m), "4:1200/5000");
    }
}
