//! Topic-partition names and their directory names (`<topic>-<partition>`).

use std::fmt;

/// A topic name that breaks Kafka's rules; says which rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid topic name: {reason}")]
pub struct InvalidTopicName {
    /// What is wrong with the name.
    pub reason: String,
}

/// Longest topic name, as in Kafka (so `<topic>-<partition>` and suffixes
/// stay within file-name limits).
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// Topic name (validated).
    pub topic: String,
    /// Partition number.
    pub partition: u32,
}

impl TopicPartition {
    /// A validated topic-partition.
    pub fn new(topic: &str, partition: u32) -> Result<Self, InvalidTopicName> {
        validate_topic_name(topic)?;
        Ok(TopicPartition { topic: topic.to_string(), partition })
    }

    /// A topic-partition as a client or request names it, not validated
    /// (a name the cluster does not have is answered as unknown there).
    pub fn of(topic: impl Into<String>, partition: u32) -> Self {
        TopicPartition { topic: topic.into(), partition }
    }

    /// Directory name: `<topic>-<partition>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    /// Parses a directory name; `None` for anything that is not one.
    pub fn from_dir_name(name: &str) -> Option<Self> {
        let (topic, partition) = name.rsplit_once('-')?;
        if partition.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        TopicPartition::new(topic, partition.parse().ok()?).ok()
    }
}

impl From<(String, u32)> for TopicPartition {
    /// A topic-partition from a pair, unvalidated (the broker answers an
    /// invalid name with UNKNOWN_TOPIC_OR_PARTITION).
    fn from((topic, partition): (String, u32)) -> Self {
        TopicPartition { topic, partition }
    }
}

impl From<(&str, u32)> for TopicPartition {
    /// A topic-partition from a pair, unvalidated.
    fn from((topic, partition): (&str, u32)) -> Self {
        TopicPartition { topic: topic.to_string(), partition }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Kafka's topic-name rules: 1 to 249 characters of `[a-zA-Z0-9._-]`, not
/// `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), InvalidTopicName> {
    let bad = |reason: String| Err(InvalidTopicName { reason });
    if name.is_empty() {
        return bad("must not be empty".into());
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return bad(format!("is {} characters long; the limit is {MAX_TOPIC_NAME_LEN}", name.len()));
    }
    if name == "." || name == ".." {
        return bad(format!("'{name}' is reserved"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return bad(format!("'{name}' contains '{c}'; allowed are ASCII letters, digits, '.', '_' and '-'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_directories() {
        let tp = TopicPartition::new("my-topic.v2", 17).unwrap();
        assert_eq!(tp.dir_name(), "my-topic.v2-17");
        assert_eq!(TopicPartition::from_dir_name("my-topic.v2-17"), Some(tp));
        assert_eq!(TopicPartition::from_dir_name("nodash"), None);
        assert_eq!(TopicPartition::from_dir_name("t-x1"), None);
        assert_eq!(TopicPartition::from_dir_name("-3"), None);
        assert_eq!(TopicPartition::from_dir_name("t-99999999999"), None);
    }

    #[test]
    fn kafka_topic_name_rules() {
        assert!(validate_topic_name("a").is_ok());
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "ü", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?}");
        }
    }
}
