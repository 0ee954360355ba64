//! Output helpers: the `--output` switch, aligned text tables, JSON lines,
//! and the JSON form of record bytes.

use std::io::Write;

use base64::Engine as _;
use serde_json::{json, Value};

/// `--output`: tables for humans or JSON for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Output {
    /// Human-readable text and tables.
    Text,
    /// One JSON document per result (one line).
    Json,
}

/// A text table: a header row and rows, columns padded to the widest cell.
#[derive(Debug)]
pub(crate) struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub(crate) fn new(header: &[&str]) -> Table {
        Table { rows: vec![header.iter().map(|h| h.to_string()).collect()] }
    }

    /// Adds a row.
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row, with a trailing newline.
    pub(crate) fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| self.rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Writes `text` to stdout.
pub(crate) fn print_text(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Writes `value` to stdout as one JSON line.
pub(crate) fn print_json(value: &Value) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Record bytes in JSON: `null` when absent, a string when the bytes are
/// valid UTF-8, else `{"base64": "<standard base64>"}`.
pub(crate) fn json_bytes(bytes: Option<&[u8]>) -> Value {
    match bytes {
        None => Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => Value::String(s.to_owned()),
            Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(b) }),
        },
    }
}

/// A list of ids as `1,2,3` (`-` when empty).
pub(crate) fn id_list(ids: &[u32]) -> String {
    if ids.is_empty() {
        "-".to_owned()
    } else {
        ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let mut t = Table::new(&["NAME", "PARTITIONS"]);
        t.row(vec!["events-long".into(), "3".into()]);
        t.row(vec!["x".into(), "12".into()]);
        assert_eq!(t.render(), "NAME         PARTITIONS\nevents-long  3\nx            12\n");
    }

    #[test]
    fn bytes_are_strings_when_utf8_else_base64() {
        assert_eq!(json_bytes(None), Value::Null);
        assert_eq!(json_bytes(Some("héllo".as_bytes())), json!("héllo"));
        assert_eq!(json_bytes(Some(&[0xff, 0x00])), json!({"base64": "/wA="}));
    }
}
