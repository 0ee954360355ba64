//! `strata produce`: stdin lines to records, through the batching producer.

use std::io::BufRead;

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use clap::Args;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use serde_json::json;
use strata_client::{Acks, ClientError, Compression, Producer, ProducerConfig, ProducerRecord, RecordMetadata};
use tokio::sync::mpsc;

use super::output::{print_json, print_text, Output};
use super::Global;

/// Delivery futures kept before the oldest must resolve (memory stays flat).
const WINDOW: usize = 64 * 1024;
/// Lines the stdin reader hands over at a time.
const CHUNK_LINES: usize = 1024;

/// Write stdin to a topic, one record per line.
///
/// The trailing "\n" of each line is stripped; a last line without one is a
/// record too; an empty line is a record with an empty value. Exits 0 only once every record is
/// acknowledged at --acks; otherwise prints the first failure (with its line
/// number) and exits 1. Prints a one-line summary on stdout.
#[derive(Debug, Args)]
pub(crate) struct ProduceArgs {
    /// Topic name.
    topic: String,
    /// Acknowledgements to wait for: 0, 1 or all.
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    acks: Acks,
    /// Split each line at the first S: the part before is the key, the rest
    /// the value. A line without S has a null key and is all value.
    #[arg(long, short = 'K', value_name = "S")]
    key_separator: Option<String>,
    /// A header added to every record (repeatable).
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE", value_parser = parse_header)]
    headers: Vec<(String, Bytes)>,
    /// Write every record to this partition (default: by key hash, keyless
    /// records sticky per batch).
    #[arg(long, short = 'p', value_name = "P")]
    partition: Option<u32>,
    /// Compression codec of the batches: none, gzip, snappy, lz4 or zstd.
    #[arg(long, value_name = "C", default_value = "none", value_parser = parse_compression)]
    compression: Compression,
    /// Level of the codec (gzip 1-9, zstd -131072-22; default: the codec's).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    compression_level: Option<i32>,
}

pub(crate) fn parse_compression(s: &str) -> Result<Compression, String> {
    s.parse::<Compression>().map_err(|e| e.to_string())
}

pub(crate) fn parse_acks(s: &str) -> Result<Acks, String> {
    s.parse::<Acks>().map_err(|_| format!("'{s}' is not 0, 1 or all"))
}

fn parse_header(s: &str) -> Result<(String, Bytes), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), Bytes::copy_from_slice(v.as_bytes()))),
        _ => Err(format!("'{s}' is not KEY=VALUE")),
    }
}

/// Splits a line into key and value at the first `sep`.
fn split_key(line: Bytes, sep: Option<&[u8]>) -> (Option<Bytes>, Bytes) {
    let Some(sep) = sep.filter(|s| !s.is_empty()) else { return (None, line) };
    match line.windows(sep.len()).position(|w| w == sep) {
        Some(i) => (Some(line.slice(..i)), line.slice(i + sep.len()..)),
        None => (None, line),
    }
}

/// Reads stdin on its own thread (blocking reads never stall the runtime)
/// and hands lines over in chunks; an I/O error ends the stream.
fn spawn_stdin_reader() -> mpsc::Receiver<std::io::Result<Vec<Bytes>>> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut reader = std::io::BufReader::with_capacity(1 << 20, stdin.lock());
        let mut chunk = Vec::with_capacity(CHUNK_LINES);
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    chunk.push(Bytes::from(line));
                    if chunk.len() >= CHUNK_LINES && tx.blocking_send(Ok(std::mem::take(&mut chunk))).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
        if !chunk.is_empty() {
            let _ = tx.blocking_send(Ok(chunk));
        }
    });
    rx
}

type Delivery = std::pin::Pin<Box<dyn std::future::Future<Output = (u64, Result<RecordMetadata, ClientError>)> + Send>>;

pub(crate) async fn run(args: ProduceArgs, global: &Global) -> Result<()> {
    // An unknown topic is an error even when stdin is empty.
    let admin = global.admin().await?;
    let topic = super::consume::describe(&admin, &args.topic).await?;
    if let Some(p) = args.partition.filter(|&p| p as usize >= topic.partitions.len()) {
        bail!(
            "UNKNOWN_TOPIC_OR_PARTITION: partition {p} of topic '{}' does not exist ({} partitions)",
            args.topic,
            topic.partitions.len()
        );
    }
    let config = ProducerConfig {
        acks: args.acks,
        compression: args.compression,
        compression_level: args.compression_level,
        security: global.security.clone(),
        ..ProducerConfig::new(global.bootstrap())
    };
    let producer = Producer::connect(config).await?;
    let sep = args.key_separator.as_deref().map(str::as_bytes);
    let headers: Vec<(String, Option<Bytes>)> =
        args.headers.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
    let mut lines = spawn_stdin_reader();
    let mut pending: FuturesUnordered<Delivery> = FuturesUnordered::new();
    let mut line_no: u64 = 0;
    let mut acked: u64 = 0;

    let failure = |line: u64, e: ClientError| anyhow!("{e} (first failed record: line {line})");
    while let Some(chunk) = lines.recv().await {
        let chunk = chunk.map_err(|e| anyhow!("cannot read stdin: {e}"))?;
        for line in chunk {
            line_no += 1;
            let (key, value) = split_key(line, sep);
            let record = ProducerRecord {
                topic: args.topic.clone(),
                partition: args.partition,
                key,
                value: Some(value),
                headers: headers.clone(),
                timestamp: None,
            };
            let delivery = match producer.send(record).await {
                Ok(d) => d,
                // Topic-level refusals (unknown topic...) read best alone.
                Err(e) if e.code().is_some() && acked == 0 && pending.is_empty() => return Err(e.into()),
                Err(e) => return Err(failure(line_no, e)),
            };
            let n = line_no;
            pending.push(Box::pin(delivery.map(move |r| (n, r))));
            while pending.len() >= WINDOW {
                if let Some((n, r)) = pending.next().await {
                    r.map_err(|e| failure(n, e))?;
                    acked += 1;
                }
            }
        }
        // Notice failures early instead of reading all of stdin first.
        while let Some(Some((n, r))) = pending.next().now_or_never() {
            r.map_err(|e| failure(n, e))?;
            acked += 1;
        }
    }
    producer.flush().await;
    while let Some((n, r)) = pending.next().await {
        r.map_err(|e| failure(n, e))?;
        acked += 1;
    }
    producer.close().await;
    if acked != line_no {
        bail!("only {acked} of {line_no} records were acknowledged");
    }
    match global.output {
        Output::Text => print_text(&format!(
            "produced {acked} record{} to topic '{}'\n",
            if acked == 1 { "" } else { "s" },
            args.topic
        ))?,
        Output::Json => print_json(&json!({ "topic": args.topic, "records": acked }))?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_at_the_first_separator() {
        let line = Bytes::from_static(b"k1:v:1");
        assert_eq!(split_key(line.clone(), Some(b":")), (Some(Bytes::from_static(b"k1")), Bytes::from_static(b"v:1")));
        assert_eq!(split_key(line.clone(), Some(b"::")), (None, line.clone()));
        assert_eq!(split_key(line.clone(), None), (None, line));
        assert_eq!(split_key(Bytes::from_static(b":v"), Some(b":")), (Some(Bytes::new()), Bytes::from_static(b"v")));
    }

    #[test]
    fn headers_and_acks_parse() {
        assert_eq!(parse_header("a=b=c").unwrap(), ("a".to_string(), Bytes::from_static(b"b=c")));
        assert!(parse_header("=x").is_err());
        assert!(parse_header("x").is_err());
        assert_eq!(parse_acks("all").unwrap(), Acks::All);
        assert!(parse_acks("2").is_err());
    }
}
