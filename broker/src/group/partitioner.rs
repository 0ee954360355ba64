//! Which partition of the offsets topic holds a group: Kafka's rule,
//! `(murmur2(group_id) & 0x7fffffff) % partitions`, so a group maps to the
//! same partition number as it would in Kafka with the same partition count.
//!
//! The hash is `strata_record::murmur2`, the one the client partitions
//! records with (checked against Kafka's test vectors there).

use strata_record::murmur2::murmur2;

/// The offsets-topic partition that stores `group_id`'s offsets (and whose
/// leader coordinates the group). `partitions` 0 is treated as 1.
pub fn offsets_partition_for(group_id: &str, partitions: u32) -> u32 {
    ((murmur2(group_id.as_bytes()) & 0x7fff_ffff) as u32) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

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
