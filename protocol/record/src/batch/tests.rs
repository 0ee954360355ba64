use bytes::Bytes;
use proptest::prelude::*;

use super::header::{CRC, CRC_START, LEADER_EPOCH, RECORD_COUNT};
use super::*;
use crate::compression::{Compression, CompressionError};

type Hdr = (String, Option<Vec<u8>>);

#[derive(Debug, Clone)]
struct Input {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<Hdr>,
}

fn input() -> impl Strategy<Value = Input> {
    (
        -1_000_000i64..4_000_000_000_000i64,
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
        proptest::collection::vec(
            ("[a-z\u{e9}]{0,8}", proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16))),
            0..3,
        ),
    )
        .prop_map(|(timestamp, key, value, headers)| Input { timestamp, key, value, headers })
}

fn build(inputs: &[Input]) -> Bytes {
    build_with(inputs, Compression::None)
}

fn build_with(inputs: &[Input], codec: Compression) -> Bytes {
    let mut b = BatchBuilder::new();
    for r in inputs {
        let headers: Vec<(&str, Option<&[u8]>)> = r.headers.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
        b.append(r.timestamp, r.key.as_deref(), r.value.as_deref(), &headers).expect("append");
    }
    b.build_compressed(codec, None).expect("build")
}

fn codec() -> impl Strategy<Value = Compression> {
    (0usize..5).prop_map(|i| Compression::ALL[i])
}

fn recrc(buf: &mut [u8]) {
    // The crc32c crate directly, not the module's own helper.
    let crc = crc32c::crc32c(&buf[CRC_START..]);
    buf[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

const MAX: usize = 1 << 20;

proptest! {
    #[test]
    fn encode_then_decode_round_trips(inputs in proptest::collection::vec(input(), 1..20), base in 0u64..u64::MAX / 2, codec in codec()) {
        let mut raw = build_with(&inputs, codec).to_vec();
        set_base_offset(&mut raw, base).unwrap();
        set_partition_leader_epoch(&mut raw, 7).unwrap();
        let batch = RecordBatch::new(Bytes::from(raw), MAX).unwrap();
        let h = *batch.header();
        prop_assert_eq!(batch.compression(), codec);
        prop_assert_eq!(h.compression(), codec.id());
        prop_assert_eq!(h.base_offset, base);
        prop_assert_eq!(h.partition_leader_epoch, 7);
        prop_assert_eq!(h.record_count as usize, inputs.len());
        prop_assert_eq!(h.last_offset(), base + inputs.len() as u64 - 1);
        prop_assert_eq!(h.max_timestamp, inputs.iter().map(|r| r.timestamp).max().unwrap());
        let records: Vec<Record> = batch.records().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(records.len(), inputs.len());
        for (i, (rec, inp)) in records.iter().zip(&inputs).enumerate() {
            prop_assert_eq!(rec.offset, base + i as u64);
            prop_assert_eq!(rec.timestamp, inp.timestamp);
            prop_assert_eq!(rec.key.as_deref(), inp.key.as_deref());
            prop_assert_eq!(rec.value.as_deref(), inp.value.as_deref());
            let hs: Vec<Hdr> = rec.headers.iter().map(|h| (h.key.clone(), h.value.as_ref().map(|v| v.to_vec()))).collect();
            prop_assert_eq!(&hs, &inp.headers);
        }
    }

    /// Every byte the format protects (all but `base_offset` and
    /// `partition_leader_epoch`, which the broker rewrites) is checked.
    #[test]
    fn any_single_flipped_protected_byte_is_detected(
        inputs in proptest::collection::vec(input(), 1..5),
        pos_seed in any::<usize>(),
        flip in 1u8..=255,
        codec in codec(),
    ) {
        let raw = build_with(&inputs, codec).to_vec();
        let protected: Vec<usize> = (8..raw.len()).filter(|p| !(LEADER_EPOCH..LEADER_EPOCH + 4).contains(p)).collect();
        let pos = protected[pos_seed % protected.len()];
        let mut bad = raw.clone();
        bad[pos] ^= flip;
        prop_assert!(validate(&bad, MAX).is_err(), "flip at {} not detected", pos);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = validate(&bytes, MAX);
        for b in split_batches(Bytes::from(bytes), MAX).flatten() {
            for r in b.records() { let _ = r; }
        }
    }

    /// Hostile bytes that pass the CRC (a forger recomputes it) still never
    /// panic and never yield a record that is not in the buffer.
    #[test]
    fn recrced_mutations_never_panic(inputs in proptest::collection::vec(input(), 1..4), edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), codec in codec()) {
        let mut raw = build_with(&inputs, codec).to_vec();
        for (p, v) in edits {
            let p = HEADER_LEN + p % (raw.len() - HEADER_LEN);
            raw[p] = v;
        }
        recrc(&mut raw);
        if let Ok(batch) = RecordBatch::new(Bytes::from(raw), MAX) {
            let n = batch.records().filter(|r| r.is_ok()).count();
            prop_assert_eq!(n, batch.header().record_count as usize);
        }
    }

    #[test]
    fn every_truncation_is_rejected(inputs in proptest::collection::vec(input(), 1..4), cut_seed in any::<usize>()) {
        let raw = build(&inputs);
        let cut = cut_seed % raw.len();
        let is_truncated = matches!(validate(&raw[..cut], MAX), Err(BatchError::Truncated { .. }));
        prop_assert!(is_truncated);
    }
}

fn one() -> Bytes {
    build(&[Input { timestamp: 1000, key: Some(b"k".to_vec()), value: Some(b"v".to_vec()), headers: vec![] }])
}

#[test]
fn wrong_magic_is_named() {
    let mut raw = one().to_vec();
    raw[16] = 9;
    assert_eq!(validate(&raw, MAX), Err(BatchError::BadMagic { found: 9, expected: MAGIC }));
}

#[test]
fn wrong_crc_is_named() {
    let mut raw = one().to_vec();
    raw[CRC] ^= 1;
    assert!(matches!(validate(&raw, MAX), Err(BatchError::CrcMismatch { .. })));
}

#[test]
fn oversized_batch_is_rejected_before_reading_it() {
    let raw = one();
    assert_eq!(validate(&raw, 10), Err(BatchError::TooLarge { size: raw.len(), max: 10 }));
}

#[test]
fn record_count_mismatch_is_named() {
    let mut raw = one().to_vec();
    raw[RECORD_COUNT..RECORD_COUNT + 4].copy_from_slice(&2u32.to_be_bytes());
    recrc(&mut raw);
    assert_eq!(validate(&raw, MAX), Err(BatchError::RecordCountMismatch { declared: 2, found: 1 }));
    raw[RECORD_COUNT..RECORD_COUNT + 4].copy_from_slice(&0u32.to_be_bytes());
    recrc(&mut raw);
    assert!(matches!(validate(&raw, MAX), Err(BatchError::InvalidHeader(_))));
}

#[test]
fn bad_length_is_named() {
    let mut raw = one().to_vec();
    raw[8..12].copy_from_slice(&3u32.to_be_bytes());
    assert!(matches!(validate(&raw, MAX), Err(BatchError::InvalidLength { length: 3, .. })));
    let mut long = one().to_vec();
    long.push(0);
    assert!(matches!(validate(&long, MAX), Err(BatchError::InvalidLength { .. })));
}

#[test]
fn the_crc_is_castagnoli_over_the_bytes_after_it() {
    // CRC-32C's published check value (RFC 3720, "123456789").
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    let raw = one();
    let stored = u32::from_be_bytes([raw[CRC], raw[CRC + 1], raw[CRC + 2], raw[CRC + 3]]);
    assert_eq!(stored, crc32c::crc32c(&raw[CRC_START..]));
    assert_eq!(raw[16], MAGIC, "magic at byte 16, as in Kafka");
    // Fields are big-endian: a batch no broker has seen carries Kafka's
    // NO_PARTITION_LEADER_EPOCH and producer id -1.
    assert_eq!(&raw[12..16], &[0xFF; 4]);
    assert_eq!(&raw[43..51], &[0xFF; 8]);
    assert_eq!(&raw[57..61], &1u32.to_be_bytes(), "record count");
}

#[test]
fn codec_ids_kafka_does_not_define_are_refused_by_name() {
    for id in 5..=7u8 {
        let mut raw = one().to_vec();
        // Big-endian: the codec bits are in the attributes' second byte.
        raw[22] |= id;
        recrc(&mut raw);
        assert_eq!(validate(&raw, MAX), Err(BatchError::UnsupportedCompression(id)));
    }
}

#[test]
fn records_that_are_not_what_the_codec_says_are_refused() {
    // Uncompressed records under a codec's bit, CRC recomputed by a forger.
    for codec in &Compression::ALL[1..] {
        let mut raw = one().to_vec();
        raw[22] |= codec.id();
        recrc(&mut raw);
        let err = validate(&raw, MAX).unwrap_err();
        assert!(matches!(err, BatchError::Compression(_)), "{codec}: {err}");
        assert!(err.to_string().contains(codec.name()), "{err}");
    }
}

#[test]
fn a_compressed_batch_whose_count_lies_is_refused() {
    let two = [one_input(1), one_input(2)];
    let mut raw = build_with(&two, Compression::Zstd).to_vec();
    raw[RECORD_COUNT..RECORD_COUNT + 4].copy_from_slice(&3u32.to_be_bytes());
    recrc(&mut raw);
    assert_eq!(validate(&raw, MAX), Err(BatchError::RecordCountMismatch { declared: 3, found: 2 }));
}

#[test]
fn a_decompression_bomb_is_refused_before_it_is_inflated() {
    // One 80 MiB record of zeros: a few megabytes at most compressed (snappy
    // packs 21:1), more than the 64 MiB a batch under a 4 MiB limit may
    // inflate to.
    let zeros = vec![0u8; 80 << 20];
    const MAX: usize = 4 << 20;
    for codec in &Compression::ALL[1..] {
        let mut b = BatchBuilder::new();
        b.append(1, None, Some(&zeros), &[]).unwrap();
        let bomb = b.build_compressed(*codec, None).unwrap();
        assert!(bomb.len() < MAX, "{codec}: {} bytes", bomb.len());
        let err = validate(&bomb, MAX).unwrap_err();
        assert!(matches!(err, BatchError::Compression(CompressionError::TooLarge { .. })), "{codec}: {err}");
        assert_eq!(uncompressed_limit(MAX), 64 << 20);
    }
}

#[test]
fn recompression_keeps_every_field_but_codec_length_and_crc() {
    let inputs: Vec<Input> = (0..50).map(one_input).collect();
    let mut raw = build_with(&inputs, Compression::Gzip).to_vec();
    set_base_offset(&mut raw, 42).unwrap();
    let gz = RecordBatch::new(Bytes::from(raw), MAX).unwrap();
    for codec in Compression::ALL {
        let built = gz.recompressed(codec, None).unwrap();
        // What it builds is a valid batch, as a reader finds it.
        let re = RecordBatch::new(built.bytes().clone(), MAX).unwrap();
        assert_eq!(re.header(), built.header());
        assert_eq!(re.compression(), codec);
        let (a, b) = (*gz.header(), *re.header());
        assert_eq!(
            (a.base_offset, a.first_timestamp, a.max_timestamp, a.record_count),
            (b.base_offset, b.first_timestamp, b.max_timestamp, b.record_count)
        );
        assert_eq!(
            (a.producer_id, a.producer_epoch, a.base_sequence),
            (b.producer_id, b.producer_epoch, b.base_sequence)
        );
        assert_eq!(a.attributes & !COMPRESSION_MASK, b.attributes & !COMPRESSION_MASK);
        let x: Vec<Record> = gz.records().collect::<Result<_, _>>().unwrap();
        let y: Vec<Record> = re.records().collect::<Result<_, _>>().unwrap();
        assert_eq!(x, y);
    }
}

fn one_input(i: i64) -> Input {
    Input {
        timestamp: 1000 + i,
        key: Some(format!("k{i}").into_bytes()),
        value: Some(vec![b'v'; 100]),
        headers: vec![],
    }
}

#[test]
fn split_yields_each_batch_then_stops_at_garbage() {
    let mut all = one().to_vec();
    all.extend_from_slice(&one());
    all.extend_from_slice(&[1, 2, 3]);
    let items: Vec<_> = split_batches(Bytes::from(all), MAX).collect();
    assert_eq!(items.len(), 3);
    assert!(items[0].is_ok() && items[1].is_ok());
    assert!(matches!(items[2], Err(BatchError::Truncated { .. })));
}

#[test]
fn empty_builder_refuses_to_build() {
    assert!(matches!(BatchBuilder::new().build(), Err(BatchError::Build(_))));
}

#[test]
fn record_size_predicts_growth() {
    let mut b = BatchBuilder::new();
    for i in 0..5i64 {
        let before = b.size_in_bytes();
        let predicted = b.record_size(100 + i, Some(b"key"), Some(&[7u8; 300]), &[("h", Some(b"v"))]);
        b.append(100 + i, Some(b"key"), Some(&[7u8; 300]), &[("h", Some(b"v"))]).unwrap();
        assert_eq!(b.size_in_bytes() - before, predicted);
    }
}

#[test]
fn producer_fields_are_stamped_under_the_crc() {
    let mut b = BatchBuilder::new();
    b.set_producer(7, 2, 40);
    b.append(1, None, Some(b"v"), &[]).unwrap();
    b.append(2, None, Some(b"w"), &[]).unwrap();
    let built = RecordBatch::new(b.build().unwrap(), MAX).unwrap();
    let h = built.header();
    assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (7, 2, 40));
    let mut raw = one().to_vec();
    set_producer(&mut raw, 9, 0, i32::MAX).unwrap();
    let h = *RecordBatch::new(Bytes::from(raw.clone()), MAX).unwrap().header();
    assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (9, 0, i32::MAX));
    raw[45] ^= 1;
    assert!(matches!(validate(&raw, MAX), Err(BatchError::CrcMismatch { .. })), "the producer id is under the CRC");
}
