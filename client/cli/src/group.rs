//! `strata group list|describe|reset|delete`.

use std::collections::BTreeMap;
use strata_client::TopicPartition;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use strata_client::{
    Admin, ClientError, CommittedOffset, ErrorCode, GroupDescription, GroupListing, PartitionLag, PartitionOffset,
    SeekTo,
};

use super::output::{print_json, print_text, Output, Table};
use super::Global;

#[derive(Debug, Subcommand)]
pub(crate) enum GroupCommand {
    /// List consumer groups (every broker is asked for the groups it
    /// coordinates).
    List,
    /// Show a group's state, coordinator and members, and per partition its
    /// committed offset, log end and lag.
    Describe {
        /// Group id.
        group: String,
    },
    /// Reset a group's committed offsets (refused while the group has
    /// members). Prints each partition's old and new offset.
    Reset(ResetArgs),
    /// Delete a consumer group (its committed offsets); refused while it has
    /// members.
    Delete {
        /// Group id.
        group: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ResetArgs {
    /// Group id.
    group: String,
    /// Where to: `earliest`, `latest`, `offset:N` (clamped to each
    /// partition's log start..end) or `timestamp:MS` (the first record at or
    /// after MS ms since the Unix epoch; the end if none).
    #[arg(long, value_name = "POSITION", value_parser = parse_reset_to)]
    to: ResetTo,
    /// Reset every partition of this topic (repeatable); without it, the
    /// partitions the group has committed offsets for.
    #[arg(long, value_name = "T")]
    topic: Vec<String>,
    /// Show what would change without committing anything.
    #[arg(long)]
    dry_run: bool,
}

/// `--to` of `group reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResetTo {
    Earliest,
    Latest,
    Offset(u64),
    Timestamp(i64),
}

impl std::fmt::Display for ResetTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResetTo::Earliest => write!(f, "earliest"),
            ResetTo::Latest => write!(f, "latest"),
            ResetTo::Offset(o) => write!(f, "offset:{o}"),
            ResetTo::Timestamp(ms) => write!(f, "timestamp:{ms}"),
        }
    }
}

fn parse_reset_to(s: &str) -> Result<ResetTo, String> {
    let bad = || format!("'{s}' is not earliest, latest, offset:N or timestamp:MS");
    match s {
        "earliest" => Ok(ResetTo::Earliest),
        "latest" => Ok(ResetTo::Latest),
        _ => match s.split_once(':') {
            Some(("offset", n)) => n.parse().map(ResetTo::Offset).map_err(|_| bad()),
            Some(("timestamp", ms)) => ms.parse().map(ResetTo::Timestamp).map_err(|_| bad()),
            _ => Err(bad()),
        },
    }
}

pub(crate) async fn run(cmd: GroupCommand, global: &Global) -> Result<()> {
    let admin = global.admin().await?;
    match cmd {
        GroupCommand::List => {
            let groups = admin.list_groups().await?;
            match global.output {
                Output::Text => print_text(&list_text(&groups))?,
                Output::Json => print_json(&list_json(&groups))?,
            }
            Ok(())
        }
        GroupCommand::Describe { group } => {
            let d = describe_one(&admin, &group).await?;
            let lags = admin.lag_of(&lag_partitions(&d)).await?;
            match global.output {
                Output::Text => print_text(&describe_text(&d, &lags))?,
                Output::Json => print_json(&describe_json(&d, &lags))?,
            }
            Ok(())
        }
        GroupCommand::Reset(args) => reset(&admin, args, global.output).await,
        GroupCommand::Delete { group } => {
            admin.delete_groups(std::slice::from_ref(&group)).await?;
            match global.output {
                Output::Text => print_text(&format!("deleted group '{group}'\n"))?,
                Output::Json => print_json(&json!({ "group": group, "deleted": true }))?,
            }
            Ok(())
        }
    }
}

async fn describe_one(admin: &Admin, group: &str) -> Result<GroupDescription> {
    let mut described = admin.describe_groups(&[group.to_owned()]).await?;
    if described.is_empty() {
        bail!("GROUP_ID_NOT_FOUND: group '{group}' not found");
    }
    Ok(described.swap_remove(0))
}

/// The partitions `describe` shows: those with a committed offset, and
/// those owned by a member without one.
fn lag_partitions(d: &GroupDescription) -> Vec<CommittedOffset> {
    let mut out: BTreeMap<TopicPartition, CommittedOffset> =
        d.offsets.iter().map(|c| (TopicPartition::of(c.topic.clone(), c.partition), c.clone())).collect();
    for m in &d.members {
        for (topic, partitions) in &m.assignment {
            for &p in partitions {
                out.entry(TopicPartition::of(topic.clone(), p)).or_insert_with(|| CommittedOffset {
                    topic: topic.clone(),
                    partition: p,
                    offset: None,
                    metadata: String::new(),
                    commit_timestamp: None,
                });
            }
        }
    }
    out.into_values().collect()
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn list_text(groups: &[GroupListing]) -> String {
    let mut table = Table::new(&["GROUP", "STATE", "COORDINATOR"]);
    for g in groups {
        table.row(vec![g.group_id.clone(), g.state.clone(), g.coordinator.to_string()]);
    }
    table.render()
}

fn list_json(groups: &[GroupListing]) -> Value {
    Value::Array(
        groups.iter().map(|g| json!({ "group": g.group_id, "state": g.state, "coordinator": g.coordinator })).collect(),
    )
}

/// `topic:0,1 other:2`.
fn assignment_text(assignment: &[(String, Vec<u32>)]) -> String {
    if assignment.is_empty() {
        return "-".to_owned();
    }
    assignment
        .iter()
        .map(|(t, ps)| format!("{t}:{}", ps.iter().map(u32::to_string).collect::<Vec<_>>().join(",")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn total_lag(lags: &[PartitionLag]) -> u64 {
    lags.iter().filter_map(|l| l.lag).sum()
}

pub(crate) fn describe_text(d: &GroupDescription, lags: &[PartitionLag]) -> String {
    let mut s = String::new();
    s.push_str(&format!("GROUP        {}\n", d.group_id));
    s.push_str(&format!("STATE        {}\n", d.state));
    s.push_str(&format!("COORDINATOR  {}\n", d.coordinator));
    s.push_str(&format!("MEMBERS      {}\n", d.members.len()));
    if !d.assignor.is_empty() {
        s.push_str(&format!("ASSIGNOR     {}\n", d.assignor));
    }
    s.push_str(&format!("TOTAL-LAG    {}\n", total_lag(lags)));
    if !d.members.is_empty() {
        s.push('\n');
        let mut table =
            Table::new(&["MEMBER-ID", "INSTANCE-ID", "CLIENT-ID", "HOST", "EPOCH", "SUBSCRIPTION", "ASSIGNMENT"]);
        let dash = |s: &str| if s.is_empty() { "-".to_owned() } else { s.to_owned() };
        for m in &d.members {
            let mut assignment = assignment_text(&m.assignment);
            if !m.target_assignment.is_empty() && m.target_assignment != m.assignment {
                assignment.push_str(&format!(" (moving to {})", assignment_text(&m.target_assignment)));
            }
            table.row(vec![
                m.member_id.clone(),
                m.instance_id.clone().unwrap_or_else(|| "-".to_owned()),
                dash(&m.client_id),
                dash(&m.client_host),
                m.member_epoch.to_string(),
                dash(&m.subscription),
                assignment,
            ]);
        }
        s.push_str(&table.render());
    }
    s.push('\n');
    if lags.is_empty() {
        s.push_str("(no committed offsets)\n");
        return s;
    }
    let mut table = Table::new(&["TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG", "MEMBER"]);
    for l in lags {
        table.row(vec![
            l.topic.clone(),
            l.partition.to_string(),
            opt(l.committed),
            opt(l.log_end),
            opt(l.lag),
            d.owner(&l.topic, l.partition).map_or_else(|| "-".to_owned(), |m| m.member_id.clone()),
        ]);
    }
    s.push_str(&table.render());
    if lags.iter().any(|l| l.committed.is_none()) {
        s.push_str("(COMMITTED -: nothing committed; LAG then counts from the log start)\n");
    }
    if lags.iter().any(|l| l.log_end.is_none()) {
        s.push_str("(LOG-END -: the partition no longer exists)\n");
    }
    s
}

pub(crate) fn describe_json(d: &GroupDescription, lags: &[PartitionLag]) -> Value {
    let tps = |a: &[(String, Vec<u32>)]| -> Value {
        a.iter().map(|(t, ps)| json!({ "topic": t, "partitions": ps })).collect::<Vec<_>>().into()
    };
    let members: Vec<Value> = d
        .members
        .iter()
        .map(|m| {
            json!({
                "member_id": m.member_id,
                "instance_id": m.instance_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "member_epoch": m.member_epoch,
                "assignment": tps(&m.assignment),
                "target_assignment": tps(&m.target_assignment),
                "subscription": m.subscription,
            })
        })
        .collect();
    let partitions: Vec<Value> = lags
        .iter()
        .map(|l| {
            json!({
                "topic": l.topic,
                "partition": l.partition,
                "committed": l.committed,
                "log_start": l.log_start,
                "log_end": l.log_end,
                "lag": l.lag,
                "lag_from": if l.committed.is_some() { "committed" } else { "log_start" },
                "member": d.owner(&l.topic, l.partition).map(|m| m.member_id.clone()),
            })
        })
        .collect();
    json!({
        "group": d.group_id,
        "state": d.state,
        "group_epoch": d.group_epoch,
        "assignor": d.assignor,
        "coordinator": d.coordinator,
        "members": members,
        "partitions": partitions,
        "total_lag": total_lag(lags),
    })
}

/// One partition's reset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResetRow {
    pub topic: String,
    pub partition: u32,
    pub old: Option<u64>,
    pub new: u64,
}

/// The error a reset or delete of an active group fails with.
fn non_empty(d: &GroupDescription) -> ClientError {
    ClientError::server(
        ErrorCode::NonEmptyGroup,
        format!(
            "group '{}' still has {} member(s) (state {}): stop its consumers before resetting its offsets",
            d.group_id,
            d.members.len(),
            d.state
        ),
    )
}

async fn reset(admin: &Admin, args: ResetArgs, output: Output) -> Result<()> {
    let group = args.group.as_str();
    match admin.describe_groups(&[group.to_owned()]).await {
        Ok(d) => {
            if let Some(d) = d.iter().find(|d| d.is_active()) {
                return Err(non_empty(d).into());
            }
        }
        // A group that does not exist yet has no members: its offsets can
        // be set (with --topic).
        Err(e) if e.code() == Some(ErrorCode::GroupIdNotFound) => {}
        Err(e) => return Err(e.into()),
    }
    // The partitions to reset, with their current commits.
    let current: Vec<CommittedOffset> = if args.topic.is_empty() {
        let committed = admin.fetch_offsets(group, None).await?;
        if committed.is_empty() {
            bail!("group '{group}' has no committed offsets to reset: name the topics with --topic");
        }
        committed
    } else {
        let described = admin.describe_topics(&args.topic).await?;
        let mut asked = Vec::new();
        for name in &args.topic {
            let Some(t) = described.iter().find(|t| &t.name == name) else {
                bail!("UNKNOWN_TOPIC_OR_PARTITION: unknown topic '{name}'");
            };
            if !asked.iter().any(|(n, _): &(String, Vec<u32>)| n == name) {
                asked.push((name.clone(), t.partitions.iter().map(|p| p.partition).collect()));
            }
        }
        admin.fetch_offsets(group, Some(&asked)).await?
    };
    let to: Vec<(TopicPartition, SeekTo)> = current
        .iter()
        .map(|c| {
            let seek = match args.to {
                ResetTo::Earliest => SeekTo::Beginning,
                ResetTo::Latest => SeekTo::End,
                ResetTo::Offset(_) => SeekTo::Beginning,
                ResetTo::Timestamp(ms) => SeekTo::Timestamp(ms),
            };
            (TopicPartition::of(c.topic.clone(), c.partition), seek)
        })
        .collect();
    let mut new = admin.list_offsets(&to).await?;
    if let ResetTo::Offset(n) = args.to {
        // Clamped to [log start, end]: `new` holds the starts so far.
        let ends: Vec<(TopicPartition, SeekTo)> = to.iter().map(|(tp, _)| (tp.clone(), SeekTo::End)).collect();
        let ends = admin.list_offsets(&ends).await?;
        new = new.iter().zip(&ends).map(|(&start, &end)| n.clamp(start, end.max(start))).collect();
    }
    let rows: Vec<ResetRow> = current
        .iter()
        .zip(new)
        .map(|(c, new)| ResetRow { topic: c.topic.clone(), partition: c.partition, old: c.offset, new })
        .collect();
    if !args.dry_run {
        let commits: Vec<PartitionOffset> = rows
            .iter()
            .map(|r| PartitionOffset::new(TopicPartition::of(r.topic.clone(), r.partition), r.new))
            .collect();
        admin.commit_offsets(group, &commits).await?;
    }
    match output {
        Output::Text => print_text(&reset_text(group, args.to, args.dry_run, &rows))?,
        Output::Json => print_json(&reset_json(group, args.to, args.dry_run, &rows))?,
    }
    Ok(())
}

pub(crate) fn reset_text(group: &str, to: ResetTo, dry_run: bool, rows: &[ResetRow]) -> String {
    let mut table = Table::new(&["TOPIC", "PARTITION", "OLD", "NEW"]);
    for r in rows {
        table.row(vec![r.topic.clone(), r.partition.to_string(), opt(r.old), r.new.to_string()]);
    }
    let mut s = table.render();
    if dry_run {
        s.push_str(&format!(
            "dry run: would reset {} partition(s) of group '{group}' to {to} (nothing committed)\n",
            rows.len()
        ));
    } else {
        s.push_str(&format!("reset {} partition(s) of group '{group}' to {to}\n", rows.len()));
    }
    s
}

pub(crate) fn reset_json(group: &str, to: ResetTo, dry_run: bool, rows: &[ResetRow]) -> Value {
    let partitions: Vec<Value> = rows
        .iter()
        .map(|r| json!({ "topic": r.topic, "partition": r.partition, "old": r.old, "new": r.new }))
        .collect();
    json!({ "group": group, "to": to.to_string(), "dry_run": dry_run, "partitions": partitions })
}

#[cfg(test)]
mod tests {
    use strata_client::GroupMember;

    use super::*;

    fn description() -> GroupDescription {
        GroupDescription {
            group_id: "billing".into(),
            state: "stable".into(),
            group_epoch: 3,
            assignor: "uniform".into(),
            coordinator: 2,
            members: vec![GroupMember {
                member_id: "m-1".into(),
                instance_id: None,
                client_id: "app".into(),
                client_host: "10.0.0.1".into(),
                member_epoch: 3,
                assignment: vec![("events".into(), vec![0, 1])],
                target_assignment: vec![],
                subscription: "events".into(),
            }],
            offsets: vec![],
        }
    }

    fn lag(partition: u32, committed: Option<u64>, end: Option<u64>) -> PartitionLag {
        PartitionLag {
            topic: "events".into(),
            partition,
            committed,
            log_start: end.map(|_| 2),
            log_end: end,
            lag: end.map(|e| PartitionLag::compute(committed, 2, e)),
        }
    }

    #[test]
    fn reset_targets_parse() {
        assert_eq!(parse_reset_to("earliest"), Ok(ResetTo::Earliest));
        assert_eq!(parse_reset_to("latest"), Ok(ResetTo::Latest));
        assert_eq!(parse_reset_to("offset:42"), Ok(ResetTo::Offset(42)));
        assert_eq!(parse_reset_to("timestamp:1700000000000"), Ok(ResetTo::Timestamp(1_700_000_000_000)));
        assert!(parse_reset_to("offset:-1").unwrap_err().contains("earliest, latest, offset:N or timestamp:MS"));
        assert!(parse_reset_to("beginning").is_err());
        assert_eq!(ResetTo::Offset(7).to_string(), "offset:7");
    }

    #[test]
    fn describe_shows_header_members_and_lag_table() {
        let d = description();
        let lags = vec![lag(0, Some(5), Some(9)), lag(1, None, Some(6)), lag(2, Some(1), None)];
        let text = describe_text(&d, &lags);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "GROUP        billing");
        assert_eq!(lines[1], "STATE        stable");
        assert_eq!(lines[2], "COORDINATOR  2");
        assert_eq!(lines[3], "MEMBERS      1");
        assert_eq!(lines[5], "TOTAL-LAG    8", "{text}");
        let members = lines.iter().position(|l| l.starts_with("MEMBER-ID")).unwrap();
        assert_eq!(
            lines[members + 1].split_whitespace().collect::<Vec<_>>(),
            ["m-1", "-", "app", "10.0.0.1", "3", "events", "events:0,1"]
        );
        let header = lines.iter().position(|l| l.starts_with("TOPIC")).unwrap();
        assert_eq!(
            lines[header].split_whitespace().collect::<Vec<_>>(),
            ["TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG", "MEMBER"]
        );
        let row = |i: usize| lines[header + i].split_whitespace().collect::<Vec<_>>();
        assert_eq!(row(1), ["events", "0", "5", "9", "4", "m-1"]);
        assert_eq!(row(2), ["events", "1", "-", "6", "4", "m-1"]);
        assert_eq!(row(3), ["events", "2", "1", "-", "-", "-"]);
        assert!(text.contains("LAG then counts from the log start"), "{text}");
        assert!(text.contains("no longer exists"), "{text}");

        let j = describe_json(&d, &lags);
        assert_eq!(j["group"], "billing");
        assert_eq!(j["total_lag"], 8);
        assert_eq!(j["members"][0]["assignment"], json!([{ "topic": "events", "partitions": [0, 1] }]));
        assert_eq!(
            j["partitions"][0],
            json!({
                "topic": "events", "partition": 0, "committed": 5, "log_start": 2, "log_end": 9,
                "lag": 4, "lag_from": "committed", "member": "m-1",
            })
        );
        assert_eq!(j["partitions"][1]["committed"], Value::Null);
        assert_eq!(j["partitions"][1]["lag_from"], "log_start");
        assert_eq!(j["partitions"][2]["lag"], Value::Null);
    }

    #[test]
    fn an_empty_group_says_it_has_no_offsets() {
        let mut d = description();
        d.members.clear();
        d.state = "empty".into();
        let text = describe_text(&d, &[]);
        assert!(text.ends_with("\n(no committed offsets)\n"), "{text}");
        assert!(!text.contains("MEMBER-ID"), "{text}");
        assert!(non_empty(&description())
            .to_string()
            .starts_with("NON_EMPTY_GROUP: group 'billing' still has 1 member(s)"));
    }

    #[test]
    fn list_and_reset_render() {
        let groups = vec![GroupListing { group_id: "a".into(), state: "empty".into(), coordinator: 1 }];
        assert_eq!(list_text(&groups), "GROUP  STATE  COORDINATOR\na      empty  1\n");
        assert_eq!(list_json(&groups), json!([{ "group": "a", "state": "empty", "coordinator": 1 }]));
        let rows = vec![
            ResetRow { topic: "t".into(), partition: 0, old: Some(10), new: 0 },
            ResetRow { topic: "t".into(), partition: 1, old: None, new: 0 },
        ];
        let text = reset_text("g", ResetTo::Earliest, false, &rows);
        assert_eq!(text, "TOPIC  PARTITION  OLD  NEW\nt      0          10   0\nt      1          -    0\nreset 2 partition(s) of group 'g' to earliest\n");
        assert!(reset_text("g", ResetTo::Latest, true, &rows)
            .contains("dry run: would reset 2 partition(s) of group 'g' to latest (nothing committed)"));
        let j = reset_json("g", ResetTo::Offset(3), true, &rows);
        assert_eq!(j["to"], "offset:3");
        assert_eq!(j["dry_run"], true);
        assert_eq!(j["partitions"][1], json!({ "topic": "t", "partition": 1, "old": null, "new": 0 }));
    }
}
