//! The Fetch answer written by hand for the versions served (4–12), so the
//! record bytes go to the socket as the log's mapped slices: the answer is
//! a list of parts — encoded fields, then a partition's stored batches as
//! they are, then more fields — sent with one vectored write. Checked byte
//! for byte against kafka-protocol's own encoder (tests below).

use bytes::{BufMut, Bytes, BytesMut};

/// The first flexible (compact, tagged-field) version of Fetch.
const FIRST_FLEXIBLE: i16 = 12;

/// One partition's answer.
#[derive(Debug, Clone)]
pub(crate) struct PartitionAnswer {
    /// The partition.
    pub(crate) index: i32,
    /// Kafka's error code (0: none).
    pub(crate) error_code: i16,
    /// High watermark (-1 with an error).
    pub(crate) high_watermark: i64,
    /// Last stable offset (the high watermark: no transactions).
    pub(crate) last_stable_offset: i64,
    /// Log start offset.
    pub(crate) log_start_offset: i64,
    /// Whole stored batches (a slice of the log's mapping).
    pub(crate) records: Bytes,
}

/// One topic's answer.
#[derive(Debug, Clone)]
pub(crate) struct TopicAnswer {
    /// The topic.
    pub(crate) name: String,
    /// Its partitions, in request order.
    pub(crate) partitions: Vec<PartitionAnswer>,
}

/// Encoded parts with the record slices between them.
struct Parts {
    done: Vec<Bytes>,
    cur: BytesMut,
    flexible: bool,
}

impl Parts {
    fn len(&mut self, n: usize) {
        if self.flexible {
            uvarint(&mut self.cur, n as u64 + 1);
        } else {
            self.cur.put_i32(n as i32);
        }
    }

    fn string(&mut self, s: &str) {
        if self.flexible {
            uvarint(&mut self.cur, s.len() as u64 + 1);
        } else {
            self.cur.put_i16(s.len() as i16);
        }
        self.cur.put_slice(s.as_bytes());
    }

    fn no_tagged_fields(&mut self) {
        if self.flexible {
            self.cur.put_u8(0);
        }
    }

    fn records(&mut self, records: Bytes) {
        self.len(records.len());
        if !records.is_empty() {
            let head = std::mem::take(&mut self.cur).freeze();
            self.done.push(head);
            self.done.push(records);
        }
    }
}

fn uvarint(buf: &mut BytesMut, mut n: u64) {
    while n >= 0x80 {
        buf.put_u8((n as u8) | 0x80);
        n >>= 7;
    }
    buf.put_u8(n as u8);
}

/// The framed answer (`[size][header][body]`) as parts for a vectored
/// write; `version` must be one `versions::SUPPORTED` lists for Fetch.
pub(crate) fn encode(version: i16, correlation_id: i32, topics: Vec<TopicAnswer>) -> Vec<Bytes> {
    let flexible = version >= FIRST_FLEXIBLE;
    let mut p = Parts { done: Vec::new(), cur: BytesMut::with_capacity(256), flexible };
    p.cur.put_i32(0); // size, filled in below
    p.cur.put_i32(correlation_id);
    p.no_tagged_fields(); // response header v1
    p.cur.put_i32(0); // throttle_time_ms
    if version >= 7 {
        p.cur.put_i16(0); // error_code
        p.cur.put_i32(0); // session_id
    }
    p.len(topics.len());
    for t in topics {
        p.string(&t.name);
        p.len(t.partitions.len());
        for a in t.partitions {
            p.cur.put_i32(a.index);
            p.cur.put_i16(a.error_code);
            p.cur.put_i64(a.high_watermark);
            p.cur.put_i64(a.last_stable_offset);
            if version >= 5 {
                p.cur.put_i64(a.log_start_offset);
            }
            p.len(0); // aborted_transactions: none
            if version >= 11 {
                p.cur.put_i32(-1); // preferred_read_replica
            }
            p.records(a.records);
            p.no_tagged_fields();
        }
        p.no_tagged_fields();
    }
    p.no_tagged_fields();
    let tail = p.cur.freeze();
    let mut parts = p.done;
    parts.push(tail);
    let total: usize = parts.iter().map(Bytes::len).sum();
    let size = ((total - 4) as i32).to_be_bytes();
    let mut first = BytesMut::from(&parts[0][..]);
    first[..4].copy_from_slice(&size);
    parts[0] = first.freeze();
    parts
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a test: a panic is the failure report

    use super::*;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{ApiKey, BrokerId, FetchResponse, ResponseHeader, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn sample() -> Vec<TopicAnswer> {
        let p = |index, error_code, records: &'static [u8]| PartitionAnswer {
            index,
            error_code,
            high_watermark: if error_code == 0 { 1000 + i64::from(index) } else { -1 },
            last_stable_offset: if error_code == 0 { 1000 + i64::from(index) } else { -1 },
            log_start_offset: if error_code == 0 { 7 } else { -1 },
            records: Bytes::from_static(records),
        };
        vec![
            TopicAnswer {
                name: "orders".into(),
                partitions: vec![p(0, 0, b"batch-bytes-0"), p(1, 0, b""), p(2, 3, b"")],
            },
            TopicAnswer { name: "e".repeat(200), partitions: vec![p(5, 0, &[1u8; 300])] },
            TopicAnswer { name: "empty".into(), partitions: vec![] },
        ]
    }

    /// kafka-protocol's encoding of the same answer.
    fn reference(version: i16, topics: &[TopicAnswer]) -> Vec<u8> {
        let mut r = FetchResponse::default();
        for t in topics {
            let mut ft = FetchableTopicResponse::default();
            ft.topic = TopicName(StrBytes::from_string(t.name.clone()));
            for a in &t.partitions {
                let mut d = PartitionData::default();
                d.partition_index = a.index;
                d.error_code = a.error_code;
                d.high_watermark = a.high_watermark;
                d.last_stable_offset = a.last_stable_offset;
                // (kafka-protocol refuses a field the version lacks unless
                // it holds its default)
                d.log_start_offset = if version >= 5 { a.log_start_offset } else { -1 };
                d.aborted_transactions = Some(Vec::new());
                d.preferred_read_replica = BrokerId(-1);
                d.records = Some(a.records.clone());
                ft.partitions.push(d);
            }
            r.responses.push(ft);
        }
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        let mut h = ResponseHeader::default();
        h.correlation_id = 99;
        h.encode(&mut buf, ApiKey::Fetch.response_header_version(version)).unwrap();
        r.encode(&mut buf, version).unwrap();
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        buf.to_vec()
    }

    #[test]
    fn the_answer_matches_kafka_protocols_encoder_in_every_version() {
        for version in 4..=12 {
            let parts = encode(version, 99, sample());
            let ours: Vec<u8> = parts.iter().flat_map(|b| b.to_vec()).collect();
            assert_eq!(ours, reference(version, &sample()), "Fetch v{version}");
        }
    }

    #[test]
    fn record_bytes_are_passed_through_not_copied() {
        let records = Bytes::from(vec![9u8; 4096]);
        let topics = vec![TopicAnswer {
            name: "t".into(),
            partitions: vec![PartitionAnswer {
                index: 0,
                error_code: 0,
                high_watermark: 1,
                last_stable_offset: 1,
                log_start_offset: 0,
                records: records.clone(),
            }],
        }];
        let parts = encode(12, 1, topics);
        assert!(parts.iter().any(|p| p.as_ptr() == records.as_ptr() && p.len() == records.len()));
    }
}
