//! Replica placement for new partitions.

/// Chooses the replicas of partition `partition` among `brokers` (unfenced
/// broker ids, ascending), round-robin from an offset derived from the
/// partition number, so consecutive partitions get different first replicas
/// (preferred leaders) and leadership spreads over the brokers.
///
/// Returns fewer than `replication_factor` ids only if there are fewer brokers;
/// callers check that first. Rack awareness comes later.
pub fn place_replicas(brokers: &[u32], partition: u32, replication_factor: u32) -> Vec<u32> {
    let n = brokers.len();
    if n == 0 {
        return Vec::new();
    }
    let start = partition as usize % n;
    let count = (replication_factor as usize).min(n);
    (0..count).map(|i| brokers[(start + i) % n]).collect()
}
