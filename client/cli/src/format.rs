//! `consume --format`: a kcat-style template, or `json`.

use anyhow::{bail, Result};
use serde_json::{json, Value};
use strata_client::ConsumerRecord;

use super::output::json_bytes;

/// The help text of `--format`.
pub(crate) const FORMAT_HELP: &str = "How to print each record. A template with the escapes \
%k key, %v value, %p partition, %o offset, %t timestamp (ms since the Unix epoch), \
%h headers (k=v,k=v; a null header value prints as k), %% a percent sign, \\n newline, \
\\t tab, \\\\ backslash; keys and values are written as raw bytes, a null key or value as \
nothing. Or `json`: one JSON object per line with topic, partition, offset, timestamp, \
key, value, headers ([{\"key\":..,\"value\":..}]); bytes that are valid UTF-8 are JSON \
strings, other bytes {\"base64\": \"...\"}, null stays null. Default `%v\\n`, or `json` \
with --output json.";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Literal(Vec<u8>),
    Key,
    Value,
    Partition,
    Offset,
    Timestamp,
    Headers,
}

/// How records are printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordFormat {
    /// One JSON object per line.
    Json,
    /// A parsed template.
    Template(Vec<Piece>),
}

impl RecordFormat {
    /// Parses `--format`; an unknown escape is an error naming it.
    pub(crate) fn parse(s: &str) -> Result<RecordFormat> {
        if s == "json" {
            return Ok(RecordFormat::Json);
        }
        let mut pieces = Vec::new();
        let mut literal = Vec::new();
        let mut chars = s.chars();
        let flush = |literal: &mut Vec<u8>, pieces: &mut Vec<Piece>| {
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(literal)));
            }
        };
        while let Some(c) = chars.next() {
            match c {
                '%' => {
                    let piece = match chars.next() {
                        Some('k') => Piece::Key,
                        Some('v') => Piece::Value,
                        Some('p') => Piece::Partition,
                        Some('o') => Piece::Offset,
                        Some('t') => Piece::Timestamp,
                        Some('h') => Piece::Headers,
                        Some('%') => {
                            literal.push(b'%');
                            continue;
                        }
                        Some(other) => {
                            bail!("unknown escape '%{other}' in --format (known: %k %v %p %o %t %h %% \\n \\t \\\\)")
                        }
                        None => bail!("--format ends in a lone '%' (write %% for a percent sign)"),
                    };
                    flush(&mut literal, &mut pieces);
                    pieces.push(piece);
                }
                '\\' => match chars.next() {
                    Some('n') => literal.push(b'\n'),
                    Some('t') => literal.push(b'\t'),
                    Some('r') => literal.push(b'\r'),
                    Some('\\') => literal.push(b'\\'),
                    Some(other) => bail!("unknown escape '\\{other}' in --format (known: \\n \\t \\r \\\\)"),
                    None => literal.push(b'\\'),
                },
                c => {
                    let mut buf = [0; 4];
                    literal.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        flush(&mut literal, &mut pieces);
        Ok(RecordFormat::Template(pieces))
    }

    /// Appends the record as this format prints it.
    pub(crate) fn write(&self, r: &ConsumerRecord, out: &mut Vec<u8>) {
        match self {
            RecordFormat::Json => {
                // Writing to a Vec cannot fail.
                let _ = serde_json::to_writer(&mut *out, &record_json(r));
                out.push(b'\n');
            }
            RecordFormat::Template(pieces) => {
                for piece in pieces {
                    match piece {
                        Piece::Literal(b) => out.extend_from_slice(b),
                        Piece::Key => out.extend_from_slice(r.key.as_deref().unwrap_or_default()),
                        Piece::Value => out.extend_from_slice(r.value.as_deref().unwrap_or_default()),
                        Piece::Partition => out.extend_from_slice(r.partition.to_string().as_bytes()),
                        Piece::Offset => out.extend_from_slice(r.offset.to_string().as_bytes()),
                        Piece::Timestamp => out.extend_from_slice(r.timestamp.to_string().as_bytes()),
                        Piece::Headers => {
                            for (i, (k, v)) in r.headers.iter().enumerate() {
                                if i > 0 {
                                    out.push(b',');
                                }
                                out.extend_from_slice(k.as_bytes());
                                if let Some(v) = v {
                                    out.push(b'=');
                                    out.extend_from_slice(v);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A record as a JSON object.
pub(crate) fn record_json(r: &ConsumerRecord) -> Value {
    let headers: Vec<Value> =
        r.headers.iter().map(|(k, v)| json!({ "key": k, "value": json_bytes(v.as_deref()) })).collect();
    json!({
        "topic": r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "timestamp": r.timestamp,
        "key": json_bytes(r.key.as_deref()),
        "value": json_bytes(r.value.as_deref()),
        "headers": headers,
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn record() -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: 2,
            offset: 41,
            timestamp: 1700000000000,
            key: Some(Bytes::from_static(b"k1")),
            value: Some(Bytes::from_static(b"v1")),
            headers: vec![("a".into(), Some(Bytes::from_static(b"1"))), ("b".into(), None)],
        }
    }

    fn render(fmt: &str, r: &ConsumerRecord) -> String {
        let mut out = Vec::new();
        RecordFormat::parse(fmt).unwrap().write(r, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn templates_expand_every_escape() {
        let r = record();
        assert_eq!(render("%v\\n", &r), "v1\n");
        assert_eq!(render("%k=%v p%p o%o t%t [%h] 100%%\\t\\\\", &r), "k1=v1 p2 o41 t1700000000000 [a=1,b] 100%\t\\");
        let nulls = ConsumerRecord { key: None, value: None, headers: vec![], ..r };
        assert_eq!(render("<%k|%v|%h>", &nulls), "<||>");
    }

    #[test]
    fn unknown_escapes_are_errors() {
        assert!(RecordFormat::parse("%x").unwrap_err().to_string().contains("'%x'"));
        assert!(RecordFormat::parse("abc%").is_err());
        assert!(RecordFormat::parse("\\q").is_err());
    }

    #[test]
    fn json_records_have_every_field() {
        let v: Value = serde_json::from_str(render("json", &record()).trim_end()).unwrap();
        assert_eq!(
            v,
            json!({
                "topic": "t", "partition": 2, "offset": 41, "timestamp": 1700000000000i64,
                "key": "k1", "value": "v1",
                "headers": [{"key": "a", "value": "1"}, {"key": "b", "value": null}],
            })
        );
    }
}
