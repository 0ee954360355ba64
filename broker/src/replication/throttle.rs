//! The replication throttle (Kafka's `leader.replication.throttled.rate`
//! for the replicas a reassignment adds): a leader sends catching-up new
//! replicas at most this many bytes per second in all, so moving a
//! partition does not starve producers, consumers and in-sync followers.
//! In-sync followers are never throttled.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cluster-wide broker config naming the rate, in bytes per second.
pub const THROTTLE_CONFIG: &str = "replication.throttled.rate";

/// A token bucket shared by every partition this broker leads. The bucket
/// holds at most one second of tokens; one read may overdraw it (a batch
/// is sent whole), and the debt is paid before the next throttled read.
#[derive(Debug, Default)]
pub struct ReplicationThrottle {
    bucket: Mutex<Option<Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    rate: u64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate as f64).min(self.rate as f64);
        self.at = now;
    }
}

impl ReplicationThrottle {
    /// Sets the rate (`None` or 0: unthrottled). An unchanged rate keeps
    /// the bucket as it is.
    pub fn set_rate(&self, rate: Option<u64>) {
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        match rate.filter(|r| *r > 0) {
            None => *b = None,
            Some(rate) if b.as_ref().is_some_and(|b| b.rate == rate) => {}
            Some(rate) => *b = Some(Bucket { rate, tokens: rate as f64, at: Instant::now() }),
        }
    }

    /// The rate in force, if any.
    pub fn rate(&self) -> Option<u64> {
        self.bucket.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|b| b.rate)
    }

    /// Bytes a throttled read may take now: `usize::MAX` when unthrottled,
    /// 0 while the bucket is empty or in debt.
    pub fn available(&self, now: Instant) -> usize {
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        match b.as_mut() {
            None => usize::MAX,
            Some(b) => {
                b.refill(now);
                if b.tokens >= 1.0 {
                    b.tokens as usize
                } else {
                    0
                }
            }
        }
    }

    /// Takes `bytes` sent to throttled replicas.
    pub fn consume(&self, bytes: usize, now: Instant) {
        if let Some(b) = self.bucket.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            b.refill(now);
            b.tokens -= bytes as f64;
        }
    }

    /// How long until a throttled read gets at least one byte (zero when
    /// unthrottled or already possible).
    pub fn until_available(&self, now: Instant) -> Duration {
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        match b.as_mut() {
            None => Duration::ZERO,
            Some(b) => {
                b.refill(now);
                if b.tokens >= 1.0 {
                    Duration::ZERO
                } else {
                    Duration::from_secs_f64((1.0 - b.tokens) / b.rate as f64)
                }
            }
        }
    }
}

/// Parses the throttle config's value: a whole number of bytes per second.
pub fn parse_rate(value: &str) -> Result<u64, String> {
    value
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("{THROTTLE_CONFIG} must be a whole number of bytes per second, not {value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_holds_a_second_and_overdrafts_are_paid_back() {
        let t = ReplicationThrottle::default();
        let now = Instant::now();
        assert_eq!(t.available(now), usize::MAX, "unthrottled by default");
        t.set_rate(Some(1000));
        assert_eq!(t.available(now), 1000);
        t.consume(3000, now); // one big batch overdraws
        assert_eq!(t.available(now + Duration::from_secs(1)), 0, "still 1000 in debt");
        let wait = t.until_available(now + Duration::from_secs(1));
        assert!(wait > Duration::from_millis(990) && wait <= Duration::from_millis(1002), "{wait:?}");
        assert_eq!(t.available(now + Duration::from_millis(2500)), 500);
        assert_eq!(t.available(now + Duration::from_secs(60)), 1000, "never more than a second's worth");
        t.set_rate(Some(1000));
        assert_eq!(t.available(now + Duration::from_secs(60)), 1000, "an unchanged rate keeps the bucket");
        t.set_rate(None);
        assert_eq!(t.available(now), usize::MAX);
        assert_eq!(t.until_available(now), Duration::ZERO);
    }

    #[test]
    fn rates_parse_or_name_the_problem() {
        assert_eq!(parse_rate(" 10485760 "), Ok(10_485_760));
        assert!(parse_rate("10MB").unwrap_err().contains(THROTTLE_CONFIG));
    }
}
