//! One member of a consumer group as the coordinator tracks it: who it is,
//! what it subscribes to, when it was last heard from, and which partitions
//! it holds — `assigned` (it may own them) and `revoking` (it must give them
//! up; nobody else gets them until it says it did).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::error::{BrokerError, ErrorKind};
use regex::Regex;

use super::assignor::{Assignor, TopicPartitionSet};
use super::is_internal_topic;

/// Longest subscription regular expression accepted.
pub(crate) const MAX_REGEX_LEN: usize = 1024;

/// What a member subscribes to.
#[derive(Debug, Clone)]
pub(crate) enum Subscription {
    /// These topics (those that exist).
    Topics(BTreeSet<String>),
    /// Every non-internal topic whose whole name matches.
    Pattern {
        /// The expression as the member sent it.
        source: String,
        /// Compiled, anchored at both ends.
        regex: Regex,
    },
}

impl PartialEq for Subscription {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Subscription::Topics(a), Subscription::Topics(b)) => a == b,
            (Subscription::Pattern { source: a, .. }, Subscription::Pattern { source: b, .. }) => a == b,
            _ => false,
        }
    }
}

impl Subscription {
    /// The subscription of a heartbeat: a pattern when one is given, else
    /// the topic names. A pattern that does not compile is
    /// `INVALID_REGULAR_EXPRESSION`.
    pub(crate) fn parse(names: &[String], pattern: &str) -> Result<Subscription, BrokerError> {
        if pattern.is_empty() {
            return Ok(Subscription::Topics(names.iter().filter(|n| !n.is_empty()).cloned().collect()));
        }
        if !names.is_empty() {
            return Err(BrokerError::new(
                ErrorKind::InvalidRequest,
                "a subscription is either topic names or a regular expression, not both",
            ));
        }
        if pattern.len() > MAX_REGEX_LEN {
            return Err(BrokerError::new(
                ErrorKind::InvalidRegularExpression,
                format!("the subscription pattern is {} bytes long; the limit is {MAX_REGEX_LEN}", pattern.len()),
            ));
        }
        let regex = regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
            .size_limit(1 << 20)
            .build()
            .map_err(|e| BrokerError::new(ErrorKind::InvalidRegularExpression, format!("pattern '{pattern}': {e}")))?;
        Ok(Subscription::Pattern { source: pattern.to_string(), regex })
    }

    /// Whether a heartbeat's subscription fields say the same as this one
    /// (so the compiled expression is reused, not rebuilt per heartbeat).
    pub(crate) fn is_same(&self, names: &[String], pattern: &str) -> bool {
        match self {
            Subscription::Topics(set) => {
                pattern.is_empty()
                    && names.iter().filter(|n| !n.is_empty()).count() == set.len()
                    && names.iter().filter(|n| !n.is_empty()).all(|n| set.contains(n))
            }
            Subscription::Pattern { source, .. } => names.is_empty() && source == pattern,
        }
    }

    /// The existing topics this subscription covers (internal topics never).
    pub(crate) fn resolve(&self, topics: &BTreeMap<String, u32>) -> BTreeSet<String> {
        let visible = topics.keys().filter(|t| !is_internal_topic(t));
        match self {
            Subscription::Topics(names) => visible.filter(|t| names.contains(*t)).cloned().collect(),
            Subscription::Pattern { regex, .. } => visible.filter(|t| regex.is_match(t)).cloned().collect(),
        }
    }

    /// The topic names, or the pattern, for `DescribeGroups`.
    pub(crate) fn describe(&self) -> String {
        match self {
            Subscription::Topics(names) => names.iter().cloned().collect::<Vec<_>>().join(","),
            Subscription::Pattern { source, .. } => format!("/{source}/"),
        }
    }
}

/// A member of a group.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// Given by the coordinator when it joined (or kept from its old
    /// coordinator when adopted).
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    /// Client id and address, for `DescribeGroups`.
    pub client_id: String,
    /// The address the member's requests came from.
    pub client_host: String,
    /// The member's epoch: the target assignment epoch it reconciled to.
    pub epoch: i32,
    /// The epoch before the last bump (a heartbeat whose response was lost
    /// may still carry it).
    pub previous_epoch: i32,
    /// What it subscribes to.
    pub subscription: Subscription,
    /// The assignor it asked for (`None`: the group's default).
    pub assignor: Option<Assignor>,
    /// Evicted after this long without a heartbeat.
    pub session_timeout: Duration,
    /// Evicted when revoking takes longer than this.
    pub rebalance_timeout: Duration,
    /// When it was last heard from.
    pub last_heartbeat: Instant,
    /// Partitions it may own.
    pub assigned: TopicPartitionSet,
    /// Partitions it must give up; held (by nobody else) until it reports
    /// it no longer owns them.
    pub revoking: TopicPartitionSet,
    /// When the current revocation began.
    pub revoking_since: Option<Instant>,
    /// A static member that left for now (epoch -2): its partitions stay
    /// reserved until its session expires.
    pub left: bool,
}

impl Member {
    /// Whether the member holds `topic`-`partition` (assigned or revoking).
    pub(crate) fn holds(&self, topic: &str, partition: u32) -> bool {
        contains(&self.assigned, topic, partition) || contains(&self.revoking, topic, partition)
    }

    /// When its session runs out.
    pub(crate) fn session_deadline(&self) -> Instant {
        self.last_heartbeat + self.session_timeout
    }

    /// Whether it has gone silent, or revoking took too long, at `now`.
    pub(crate) fn expired(&self, now: Instant) -> Option<&'static str> {
        if now > self.session_deadline() {
            return Some("session timeout");
        }
        match self.revoking_since {
            Some(since) if !self.revoking.is_empty() && now > since + self.rebalance_timeout => {
                Some("rebalance timeout (it did not give up revoked partitions)")
            }
            _ => None,
        }
    }
}

/// Whether a set holds `topic`-`partition`.
pub(crate) fn contains(set: &TopicPartitionSet, topic: &str, partition: u32) -> bool {
    set.get(topic).is_some_and(|ps| ps.contains(&partition))
}

/// Adds `topic`-`partition` to a set.
pub(crate) fn insert(set: &mut TopicPartitionSet, topic: &str, partition: u32) {
    set.entry(topic.to_string()).or_default().insert(partition);
}

/// Removes `topic`-`partition` from a set (and the topic once empty).
pub(crate) fn remove(set: &mut TopicPartitionSet, topic: &str, partition: u32) {
    if let Some(ps) = set.get_mut(topic) {
        ps.remove(&partition);
        if ps.is_empty() {
            set.remove(topic);
        }
    }
}

/// Removes empty topics from a set.
pub(crate) fn prune(set: &mut TopicPartitionSet) {
    set.retain(|_, ps| !ps.is_empty());
}

/// Every (topic, partition) of a set, in order.
pub(crate) fn iter(set: &TopicPartitionSet) -> impl Iterator<Item = (&str, u32)> {
    set.iter().flat_map(|(t, ps)| ps.iter().map(move |p| (t.as_str(), *p)))
}

/// How many partitions a set holds.
#[cfg(test)]
pub(crate) fn count(set: &TopicPartitionSet) -> usize {
    set.values().map(BTreeSet::len).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics() -> BTreeMap<String, u32> {
        [("orders-1", 2), ("orders-2", 3), ("payments", 1), ("__consumer_offsets", 16)]
            .into_iter()
            .map(|(t, n)| (t.to_string(), n))
            .collect()
    }

    #[test]
    fn subscriptions_resolve_to_existing_non_internal_topics() {
        let s = Subscription::parse(&["payments".into(), "missing".into()], "").unwrap();
        assert_eq!(s.resolve(&topics()).into_iter().collect::<Vec<_>>(), ["payments"]);
        let s = Subscription::parse(&[], "orders-.*").unwrap();
        assert_eq!(s.resolve(&topics()).into_iter().collect::<Vec<_>>(), ["orders-1", "orders-2"]);
        // Whole-name match, and internal topics never match.
        let s = Subscription::parse(&[], "orders").unwrap();
        assert!(s.resolve(&topics()).is_empty());
        let s = Subscription::parse(&[], ".*").unwrap();
        assert!(!s.resolve(&topics()).contains("__consumer_offsets"));
        assert_eq!(s.describe(), "/.*/");
    }

    #[test]
    fn bad_subscriptions_are_named_errors() {
        let e = Subscription::parse(&[], "orders-(").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRegularExpression);
        assert!(e.message().contains("orders-("), "{}", e.message());
        let e = Subscription::parse(&["a".into()], "b").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRequest);
        let e = Subscription::parse(&[], &"a".repeat(MAX_REGEX_LEN + 1)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRegularExpression);
        // A pattern whose compiled form is huge is refused, not built.
        let e = Subscription::parse(&[], "(a{1000}){1000}").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRegularExpression);
    }
}
