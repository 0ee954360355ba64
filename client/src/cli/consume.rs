//! `strata consume`: print a topic's records.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::{ArgGroup, Args};
use strata_client::{Admin, Consumer, ConsumerConfig, OffsetReset, SeekTo, TopicDescription};

use super::format::{RecordFormat, FORMAT_HELP};
use super::output::Output;
use super::Global;

/// How often `consume --group` commits what it printed (and on exit).
const GROUP_COMMIT_INTERVAL: Duration = Duration::from_secs(5);

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
/// With --group G (as Kafka's console consumer with a group, but without
/// group membership yet: every partition is read): each partition starts at
/// the group's committed offset; without one, at the beginning with
/// --from-beginning, else at the end. The offsets after the records printed
/// are committed every 5 s and on exit (also on Ctrl-C), so the next run
/// continues from there.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("start").args(["from_beginning", "offset", "from_timestamp"])))]
pub(crate) struct ConsumeArgs {
    /// Topic name.
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
    /// Read only this partition (repeatable).
    #[arg(long, short = 'p', value_name = "P")]
    partition: Vec<u32>,
    /// Consumer group: start from its committed offsets and commit what is
    /// printed.
    #[arg(long, short = 'g', value_name = "G", conflicts_with_all = ["offset", "from_timestamp"])]
    group: Option<String>,
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
    let admin = Admin::connect(global.bootstrap()).await?;
    let description = describe(&admin, topic).await?;
    let partitions = selected_partitions(&description, &args.partition)?;

    let config = ConsumerConfig {
        max_wait: Duration::from_millis(500),
        group_id: args.group.clone(),
        auto_offset_reset: if args.from_beginning { OffsetReset::Earliest } else { OffsetReset::Latest },
        // What was printed is committed below, not what was fetched.
        enable_auto_commit: false,
        ..ConsumerConfig::new(global.bootstrap())
    };
    let mut consumer = Consumer::connect(config).await?;
    consumer.assign(partitions.iter().map(|&p| (topic.to_owned(), p)).collect());

    // Reading stops at the end each partition has now, unless told otherwise.
    let bounded = !args.follow && args.count.is_none();
    let mut ends: HashMap<u32, u64> = HashMap::new();
    if bounded || args.offset.is_some() {
        for &p in &partitions {
            ends.insert(p, consumer.lookup_offset(topic, p, SeekTo::End).await?);
        }
    }
    if args.group.is_some() {
        consumer.resolve_positions().await?;
    }
    for &p in partitions.iter().filter(|_| args.group.is_none()) {
        let to = match (args.offset, args.from_timestamp) {
            (Some(o), _) => {
                let start = consumer.lookup_offset(topic, p, SeekTo::Beginning).await?;
                let end = ends[&p];
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

    let unfinished = |consumer: &Consumer, p: &u32| {
        !bounded || consumer.position(topic, *p).is_some_and(|o| o < ends.get(p).copied().unwrap_or(0))
    };
    let mut active: Vec<u32> = partitions.iter().copied().filter(|p| unfinished(&consumer, p)).collect();
    if active.len() != partitions.len() && !active.is_empty() {
        consumer.assign(active.iter().map(|&p| (topic.to_owned(), p)).collect());
    }

    // With a group: the offset after the last record printed (and flushed)
    // per partition, and what of it is committed.
    let mut printed_to: HashMap<u32, u64> =
        partitions.iter().filter_map(|&p| Some((p, consumer.position(topic, p)?))).collect();
    let mut committed: HashMap<u32, u64> = HashMap::new();
    let mut last_commit = Instant::now();

    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut stdout = std::io::stdout();
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut printed: u64 = 0;
    let limit = args.count.unwrap_or(u64::MAX);
    let result: Result<()> = async {
        while printed < limit && !active.is_empty() {
            let records = tokio::select! {
                r = consumer.poll() => r?,
                _ = &mut ctrl_c => break,
            };
            let mut reached: Vec<(u32, u64)> = Vec::new();
            for r in &records {
                if bounded && r.offset >= ends[&r.partition] {
                    continue;
                }
                format.write(r, &mut buf);
                reached.push((r.partition, r.offset + 1));
                printed += 1;
                if printed >= limit {
                    break;
                }
            }
            if !buf.is_empty() {
                stdout.write_all(&buf)?;
                stdout.flush()?;
                buf.clear();
            }
            printed_to.extend(reached);
            if args.group.is_some() && last_commit.elapsed() >= GROUP_COMMIT_INTERVAL {
                commit_printed(&consumer, topic, &printed_to, &mut committed).await?;
                last_commit = Instant::now();
            }
            if bounded {
                let before = active.len();
                active.retain(|p| unfinished(&consumer, p));
                if active.len() != before && !active.is_empty() {
                    consumer.assign(active.iter().map(|&p| (topic.to_owned(), p)).collect());
                }
            }
        }
        stdout.flush()?;
        Ok(())
    }
    .await;
    if args.group.is_some() {
        // What was printed is committed even when the command fails
        // (stdout closed, a fetch error); a commit failure is reported
        // unless the command already failed.
        let committing = commit_printed(&consumer, topic, &printed_to, &mut committed).await;
        let closing = consumer.close().await.map_err(anyhow::Error::from);
        result?;
        committing?;
        closing?;
        return Ok(());
    }
    result
}

/// Commits, for the group, the offsets after the records printed where they
/// moved since the last commit.
async fn commit_printed(
    consumer: &Consumer,
    topic: &str,
    printed_to: &HashMap<u32, u64>,
    committed: &mut HashMap<u32, u64>,
) -> Result<()> {
    let mut offsets: Vec<(String, u32, u64)> = printed_to
        .iter()
        .filter(|(p, o)| committed.get(p) != Some(o))
        .map(|(&p, &o)| (topic.to_owned(), p, o))
        .collect();
    if offsets.is_empty() {
        return Ok(());
    }
    offsets.sort_unstable();
    consumer.commit_offsets(&offsets).await?;
    committed.extend(offsets.into_iter().map(|(_, p, o)| (p, o)));
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
