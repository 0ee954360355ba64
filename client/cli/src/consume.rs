//! `strata consume`: print a topic's records.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{ArgGroup, Args};
use strata_client::{Admin, Consumer, ConsumerConfig, OffsetReset, SeekTo, TopicDescription};

use super::format::{RecordFormat, FORMAT_HELP};
use super::output::Output;
use super::Global;

/// How often `consume --group` commits what it printed (and on exit).
const GROUP_COMMIT_INTERVAL: Duration = Duration::from_secs(5);

/// `(topic, partition)`.
type Tp = strata_client::TopicPartition;

/// Print a topic's records (all partitions unless --partition).
///
/// Starts at the BEGINNING of each partition by default (as rpk does; Kafka's
/// console consumer starts at the end). Without --count or --follow it reads
/// up to the end each partition had when the command started (its high
/// watermark) and exits; with --count N it stops after N records, waiting for
/// them if needed; with --follow it keeps waiting for new records until
/// interrupted (Ctrl-C exits 0). Records of one partition are printed in
/// offset order.
///
/// With --group G the command joins consumer group G and reads the
/// partitions the group's coordinator assigns it: several `strata consume T
/// --group G` processes share T's partitions, and partitions move when one
/// starts or stops. Each partition starts at the group's committed offset;
/// without one, at the beginning with --from-beginning, else at the end.
/// The offsets after the records printed are committed every 5 s, when the
/// group moves a partition away, and on exit (also on Ctrl-C); then the
/// command leaves the group. Without --count or --follow it exits once every
/// partition it was given is read up to its end. --pattern makes TOPIC a
/// regular expression (whole-name match): every matching topic is read,
/// including ones created later. --group-instance-id makes it a static
/// member: restarted with the same id within the session timeout (10 s), it
/// gets the same partitions back without moving the other members'.
///
/// With --group and --partition, exactly those partitions are read (no group
/// membership) and committed to G, which the coordinator refuses while G
/// has members.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("start").args(["from_beginning", "offset", "from_timestamp"])))]
pub(crate) struct ConsumeArgs {
    /// Topic name (with --pattern: a regular expression over topic names).
    topic: String,
    /// Start at the first offset still in the log (the default; with
    /// --group: where the group has no committed offset).
    #[arg(long)]
    from_beginning: bool,
    /// Start at this offset in every partition read; an offset outside a
    /// partition's [log start, end] is an error.
    #[arg(long, short = 'o', value_name = "O")]
    offset: Option<u64>,
    /// Start at the first record whose timestamp is at or after MS (ms since
    /// the Unix epoch).
    #[arg(long, value_name = "MS")]
    from_timestamp: Option<i64>,
    /// Stop after N records (in total, over all partitions read).
    #[arg(long, short = 'n', value_name = "N")]
    count: Option<u64>,
    /// Keep waiting for new records instead of stopping at the end.
    #[arg(long, short = 'f')]
    follow: bool,
    /// Read only this partition (repeatable; with --group: without joining
    /// the group).
    #[arg(long, short = 'p', value_name = "P")]
    partition: Vec<u32>,
    /// Consumer group: share the partitions with its other consumers, start
    /// from its committed offsets and commit what is printed.
    #[arg(long, short = 'g', value_name = "G", conflicts_with_all = ["offset", "from_timestamp"])]
    group: Option<String>,
    /// TOPIC is a regular expression: read every topic whose whole name
    /// matches it, including topics created later (needs --group).
    #[arg(long, requires = "group", conflicts_with = "partition")]
    pattern: bool,
    /// Static group membership (group.instance.id): a restart with the
    /// same ID gets the same partitions back without a rebalance.
    #[arg(long, value_name = "ID", requires = "group", conflicts_with = "partition")]
    group_instance_id: Option<String>,
    #[arg(long, value_name = "FMT", help = FORMAT_HELP)]
    format: Option<String>,
}

pub(crate) async fn run(args: ConsumeArgs, global: &Global) -> Result<()> {
    let format = match (&args.format, global.output) {
        (Some(f), _) => RecordFormat::parse(f)?,
        (None, Output::Json) => RecordFormat::Json,
        (None, Output::Text) => RecordFormat::parse("%v\\n")?,
    };
    let topic = args.topic.as_str();
    let subscribe = args.group.is_some() && args.partition.is_empty();
    let admin = global.admin().await?;
    // A named topic must exist (its partitions are checked and, to stop at
    // the end, their ends read now).
    let partitions = match args.pattern {
        true => Vec::new(),
        false => selected_partitions(&describe(&admin, topic).await?, &args.partition)?,
    };

    let config = ConsumerConfig {
        max_wait: Duration::from_millis(500),
        group_id: args.group.clone(),
        auto_offset_reset: if args.from_beginning { OffsetReset::Earliest } else { OffsetReset::Latest },
        // Positions are kept at what was printed (records fetched but not
        // printed are sought back to), so committing positions commits
        // exactly what was printed.
        enable_auto_commit: args.group.is_some(),
        auto_commit_interval: GROUP_COMMIT_INTERVAL,
        group_instance_id: args.group_instance_id.clone(),
        client_id: "strata-cli".into(),
        security: global.security.clone(),
        ..ConsumerConfig::new(global.bootstrap())
    };
    let mut consumer = Consumer::connect(config).await?;

    // Reading stops at the end each partition has now, unless told otherwise.
    let bounded = !args.follow && args.count.is_none();
    let mut ends: HashMap<Tp, u64> = HashMap::new();
    if bounded || args.offset.is_some() {
        for &p in &partitions {
            ends.insert(Tp::of(topic, p), consumer.lookup_offset(topic, p, SeekTo::End).await?);
        }
    }
    if subscribe {
        if args.pattern {
            consumer.subscribe_pattern(topic)?;
        } else {
            consumer.subscribe([topic])?;
        }
    } else {
        consumer.assign(partitions.iter().map(|&p| (topic.to_owned(), p)));
        if args.group.is_some() {
            consumer.resolve_positions().await?;
        } else {
            seek_start(&mut consumer, &args, &partitions, &ends).await?;
        }
    }

    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut stdout = std::io::stdout();
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut printed: u64 = 0;
    let limit = args.count.unwrap_or(u64::MAX);
    let result: Result<()> = async {
        while printed < limit {
            if bounded && read_to_the_end(&mut consumer, &mut ends, subscribe).await? {
                break;
            }
            let records = tokio::select! {
                r = consumer.poll() => r?,
                _ = &mut ctrl_c => break,
            };
            if records.is_empty() {
                continue;
            }
            if bounded {
                lookup_ends(&consumer, records.iter().map(|r| Tp::of(r.topic.clone(), r.partition)), &mut ends).await?;
            }
            // Per partition of the batch: its first offset, and the offset
            // after the last record printed.
            let mut first: BTreeMap<Tp, u64> = BTreeMap::new();
            let mut reached: HashMap<Tp, u64> = HashMap::new();
            for r in &records {
                let tp = Tp::of(r.topic.clone(), r.partition);
                first.entry(tp.clone()).or_insert(r.offset);
                if printed >= limit || (bounded && ends.get(&tp).is_some_and(|&end| r.offset >= end)) {
                    continue;
                }
                format.write(r, &mut buf);
                reached.insert(tp, r.offset + 1);
                printed += 1;
            }
            let written = write_out(&mut stdout, &mut buf);
            if written.is_err() {
                reached.clear();
            }
            rewind_unprinted(&mut consumer, first, &reached).await?;
            written?;
        }
        stdout.flush()?;
        Ok(())
    }
    .await;
    // With a group, close commits what was printed (also when the command
    // fails: stdout closed, a fetch error) and leaves the group; a commit
    // failure is reported unless the command already failed.
    let closing = consumer.close().await.map_err(anyhow::Error::from);
    result?;
    closing
}

/// Without a group: moves every partition to where the command starts.
async fn seek_start(
    consumer: &mut Consumer,
    args: &ConsumeArgs,
    partitions: &[u32],
    ends: &HashMap<Tp, u64>,
) -> Result<()> {
    let topic = args.topic.as_str();
    for &p in partitions {
        let to = match (args.offset, args.from_timestamp) {
            (Some(o), _) => {
                let start = consumer.lookup_offset(topic, p, SeekTo::Beginning).await?;
                let end = ends.get(&Tp::of(topic, p)).copied().unwrap_or(start);
                if o < start || o > end {
                    bail!(
                        "OFFSET_OUT_OF_RANGE: offset {o} is out of range for partition {topic}-{p}: \
                         valid offsets are {start} to {end}"
                    );
                }
                SeekTo::Offset(o)
            }
            (None, Some(ms)) => SeekTo::Timestamp(ms),
            (None, None) => SeekTo::Beginning,
        };
        consumer.seek(topic, p, to).await?;
    }
    Ok(())
}

/// Reading to the end: pauses the partitions read up to their end and
/// tells whether that is all of them (for a group member: once it has taken
/// on its assignment).
async fn read_to_the_end(consumer: &mut Consumer, ends: &mut HashMap<Tp, u64>, subscribe: bool) -> Result<bool> {
    // A member's first assignments may be partial (partitions others still
    // hold come later): only a settled one can be finished.
    if subscribe && (consumer.member_epoch().is_none() || !consumer.assignment_settled()) {
        return Ok(false);
    }
    let owned = consumer.assignment().to_vec();
    lookup_ends(consumer, owned.iter().cloned(), ends).await?;
    let paused = consumer.paused();
    let finished: Vec<Tp> = owned
        .iter()
        .filter(|tp| {
            consumer.position(&tp.topic, tp.partition).is_some_and(|o| ends.get(*tp).is_none_or(|&end| o >= end))
        })
        .cloned()
        .collect();
    let newly: Vec<Tp> = finished.iter().filter(|tp| !paused.contains(tp)).cloned().collect();
    if !newly.is_empty() {
        consumer.pause(&newly)?;
    }
    Ok(finished.len() == owned.len())
}

/// Learns the end of partitions first seen now (assigned by the group
/// after the command started).
async fn lookup_ends(consumer: &Consumer, tps: impl Iterator<Item = Tp>, ends: &mut HashMap<Tp, u64>) -> Result<()> {
    for tp in tps {
        if let std::collections::hash_map::Entry::Vacant(slot) = ends.entry(tp) {
            let Tp { topic, partition } = slot.key();
            let end = consumer.lookup_offset(topic, *partition, SeekTo::End).await?;
            slot.insert(end);
        }
    }
    Ok(())
}

fn write_out(stdout: &mut std::io::Stdout, buf: &mut Vec<u8>) -> std::io::Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    let written = stdout.write_all(buf).and_then(|()| stdout.flush());
    buf.clear();
    written
}

/// Seeks partitions whose records were not all printed (--count reached,
/// past the end, stdout failed) back to the first one not printed, so the
/// position, which is what gets committed, is what was printed.
async fn rewind_unprinted(consumer: &mut Consumer, first: BTreeMap<Tp, u64>, reached: &HashMap<Tp, u64>) -> Result<()> {
    for (tp, first) in first {
        let to = reached.get(&tp).copied().unwrap_or(first);
        if consumer.position(&tp.topic, tp.partition).is_some_and(|o| o > to) {
            consumer.seek(&tp.topic, tp.partition, SeekTo::Offset(to)).await?;
        }
    }
    Ok(())
}

/// The topic's description; an unknown topic fails with the broker's error.
pub(crate) async fn describe(admin: &Admin, topic: &str) -> Result<TopicDescription> {
    let topics = admin.describe_topics(&[topic.to_owned()]).await?;
    match topics.into_iter().find(|t| t.name == topic) {
        Some(t) => Ok(t),
        None => bail!("UNKNOWN_TOPIC_OR_PARTITION: unknown topic '{topic}'"),
    }
}

/// The partitions asked for (all when none), each checked to exist.
fn selected_partitions(t: &TopicDescription, asked: &[u32]) -> Result<Vec<u32>> {
    let count = t.partitions.len() as u32;
    if asked.is_empty() {
        if count == 0 {
            bail!("topic '{}' has no partitions", t.name);
        }
        return Ok((0..count).collect());
    }
    let mut out = Vec::new();
    for &p in asked {
        if p >= count {
            bail!(
                "UNKNOWN_TOPIC_OR_PARTITION: partition {p} of topic '{}' does not exist ({count} partitions)",
                t.name
            );
        }
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}
