//! Kafka's key hash and default partitioner, bit for bit, so keys land on
//! the same partition number as with a Kafka client. Shared: the client
//! partitions records with it, the broker places consumer groups on the
//! offsets topic with it.

/// MurmurHash2 (32-bit) exactly as Kafka's `Utils.murmur2`: seed
/// `0x9747b28c`, little-endian 4-byte blocks, the tail handled with Java's
/// switch fall-through, wrapping 32-bit arithmetic and logical shifts.
///
/// # Example
///
/// ```
/// assert_eq!(strata_record::murmur2::murmur2(b"21"), -973932308);
/// ```
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    // Java: `int h = seed ^ length` (the length as a 32-bit int).
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
    // The fall-through of `case 3: case 2: case 1:`.
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

/// The partition Kafka's default partitioner picks for a key:
/// `(murmur2(key) & 0x7fffffff) % num_partitions`.
///
/// # Panics
///
/// If `num_partitions` is 0 (a topic always has at least one partition).
///
/// # Example
///
/// ```
/// use strata_record::murmur2::partition_for_key;
///
/// let p = partition_for_key(b"user-42", 12);
/// assert!(p < 12);
/// assert_eq!(p, partition_for_key(b"user-42", 12));
/// ```
pub fn partition_for_key(key: &[u8], num_partitions: u32) -> u32 {
    assert!(num_partitions > 0, "a topic has at least one partition");
    ((murmur2(key) & 0x7fff_ffff) as u32) % num_partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's `UtilsTest.testMurmur2`.
    #[test]
    fn matches_kafka_vectors() {
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
    fn partition_is_positive_hash_modulo_count() {
        // murmur2("21") = -973932308; & 0x7fffffff = 1173551340.
        assert_eq!(partition_for_key(b"21", 7), 1173551340 % 7);
        assert_eq!(partition_for_key(b"abc", 1), 0);
        assert_eq!(partition_for_key(b"", 5), ((murmur2(b"") & 0x7fff_ffff) as u32) % 5);
        for n in 1..50 {
            assert!(partition_for_key(b"foobar", n) < n);
        }
    }
}
