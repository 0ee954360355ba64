//! Which partition of the offsets topic holds a group: Kafka's rule,
//! `(murmur2(group_id) & 0x7fffffff) % partitions`, so a group maps to the
//! same partition number as it would in Kafka with the same partition count.
//!
//! The hash is a copy of the client's `murmur2` (the broker must not depend
//! on the client crate); both are checked against Kafka's test vectors.

/// MurmurHash2 (32-bit) exactly as Kafka's `Utils.murmur2`: seed
/// `0x9747b28c`, little-endian 4-byte blocks, the tail handled with Java's
/// switch fall-through, wrapping 32-bit arithmetic and logical shifts.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = blocks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The offsets-topic partition that stores `group_id`'s offsets (and whose
/// leader coordinates the group). `partitions` 0 is treated as 1.
pub fn offsets_partition_for(group_id: &str, partitions: u32) -> u32 {
    ((murmur2(group_id.as_bytes()) & 0x7fff_ffff) as u32) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_kafka_vectors() {
        let cases: [(&str, i32); 6] = [
            ("21", -973932308),
            ("foobar", -790332482),
            ("a-little-bit-long-string", -985981536),
            ("a-little-bit-longer-string", -1486304829),
            ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
            ("abc", 479470107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input.as_bytes()), expected, "murmur2({input:?})");
        }
    }

    #[test]
    fn group_partition_is_kafkas_and_in_range() {
        // murmur2("21") = -973932308; & 0x7fffffff = 1173551340.
        assert_eq!(offsets_partition_for("21", 50), 1173551340 % 50);
        assert_eq!(offsets_partition_for("abc", 1), 0);
        assert_eq!(offsets_partition_for("abc", 0), 0);
        for n in 1..64 {
            assert!(offsets_partition_for("my-group", n) < n);
        }
        // Stable: the same group always lands on the same partition.
        assert_eq!(offsets_partition_for("orders", 16), offsets_partition_for("orders", 16));
    }
}
