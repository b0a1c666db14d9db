//! Per-topic configuration: the Kafka topic configs Tidemark supports, parsed
//! from and rendered to the string pairs of CreateTopics, DescribeConfigs and
//! IncrementalAlterConfigs.
use std::collections::BTreeMap;
use thiserror::Error;

/// Every topic config key Tidemark accepts, in the order DescribeConfigs lists them.
pub const TOPIC_CONFIG_KEYS: &[&str] = &[
    "cleanup.policy",
    "delete.retention.ms",
    "max.message.bytes",
    "message.timestamp.type",
    "min.insync.replicas",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
    "unclean.leader.election.enable",
];

/// Longest config value accepted, in bytes, before it is parsed. Kafka has
/// no bound on strings, but every topic config Tidemark supports is a
/// number, a boolean or a short list whose canonical form is under 32
/// bytes; 64 KiB leaves room for any future list-valued key while keeping
/// one request from carrying megabytes into the quorum's view (a 3.5 MiB
/// `retention.ms` of leading zeros once pushed the view past its frame).
pub const CONFIG_VALUE_BYTES_MAX: usize = 64 << 10;
/// How much of a refused value an error message quotes.
const QUOTED_VALUE_CHARS_MAX: usize = 64;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TopicConfigError {
    #[error("unknown topic config {0}")]
    UnknownKey(String),
    /// The controller refused the configs (its bounds, see `quorum::state`).
    #[error("refused by the controller: {0}")]
    Refused(String),
    #[error("invalid value {value:?} for {key}: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: &'static str,
    },
}

/// The effective configuration of one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    pub segment_bytes: i64,
    pub segment_ms: i64,
    /// -1: no size limit.
    pub retention_bytes: i64,
    /// -1: no time limit.
    pub retention_ms: i64,
    pub max_message_bytes: i32,
    pub min_insync_replicas: i32,
    /// The controller may elect a leader outside the ISR (losing records)
    /// rather than leave a partition offline. Off, as in Kafka.
    pub unclean_leader_election: bool,
    /// `cleanup.policy` contains `delete`: retention removes old segments.
    pub cleanup_delete: bool,
    /// `cleanup.policy` contains `compact`: the cleaner keeps the last record per key.
    pub cleanup_compact: bool,
    /// How long compaction keeps tombstones (null values).
    pub delete_retention_ms: i64,
    /// The configs the topic set itself (the rest are the broker's defaults).
    pub overrides: BTreeMap<String, String>,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            retention_ms: 7 * 24 * 3600 * 1000,
            max_message_bytes: 1_048_588,
            min_insync_replicas: 1,
            unclean_leader_election: false,
            cleanup_delete: true,
            cleanup_compact: false,
            delete_retention_ms: 24 * 3600 * 1000,
            overrides: BTreeMap::new(),
        }
    }
}

impl TopicConfig {
    /// The broker defaults with `overrides` applied on top, each checked.
    pub fn with_overrides(
        defaults: &TopicConfig,
        overrides: &BTreeMap<String, String>,
    ) -> Result<TopicConfig, TopicConfigError> {
        let mut config = defaults.clone();
        config.overrides.clear();
        for (key, value) in overrides {
            config.set(key, value)?;
        }
        Ok(config)
    }

    /// Sets one config, checking its value. The override is kept in
    /// canonical form (a number as its parsed decimal, a boolean in lower
    /// case, a policy list deduplicated), as Kafka's `ConfigDef` parses it.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), TopicConfigError> {
        let invalid = |reason| TopicConfigError::InvalidValue {
            key: key.to_string(),
            value: quoted(value),
            reason,
        };
        if value.len() > CONFIG_VALUE_BYTES_MAX {
            return Err(invalid("longer than 64 KiB"));
        }
        let long = || {
            value
                .trim()
                .parse::<i64>()
                .map_err(|_| invalid("not a number"))
        };
        match key {
            "segment.bytes" => {
                let v = long()?;
                if !(14..=i32::MAX as i64).contains(&v) {
                    return Err(invalid("must be between 14 and 2147483647"));
                }
                self.segment_bytes = v;
            }
            "segment.ms" => {
                let v = long()?;
                if v < 1 {
                    return Err(invalid("must be at least 1"));
                }
                self.segment_ms = v;
            }
            "retention.bytes" => self.retention_bytes = long()?,
            "retention.ms" => {
                let v = long()?;
                if v < -1 {
                    return Err(invalid("must be -1 or more"));
                }
                self.retention_ms = v;
            }
            "max.message.bytes" => {
                let v = long()?;
                if !(0..=i32::MAX as i64).contains(&v) {
                    return Err(invalid("must be between 0 and 2147483647"));
                }
                self.max_message_bytes = v as i32;
            }
            "min.insync.replicas" => {
                let v = long()?;
                if !(1..=i32::MAX as i64).contains(&v) {
                    return Err(invalid("must be at least 1"));
                }
                self.min_insync_replicas = v as i32;
            }
            "unclean.leader.election.enable" => {
                self.unclean_leader_election = match value.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(invalid("expected true or false")),
                };
            }
            "cleanup.policy" => {
                let (mut delete, mut compact) = (false, false);
                for policy in value.split(',').map(str::trim) {
                    match policy {
                        "delete" => delete = true,
                        "compact" => compact = true,
                        _ => return Err(invalid("expected delete, compact or both")),
                    }
                }
                self.cleanup_delete = delete;
                self.cleanup_compact = compact;
            }
            "delete.retention.ms" => {
                let v = long()?;
                if v < 0 {
                    return Err(invalid("must not be negative"));
                }
                self.delete_retention_ms = v;
            }
            // Tidemark stores batches as sent, so the timestamp is the producer's.
            "message.timestamp.type" => {
                if value.trim() != "CreateTime" {
                    return Err(invalid("only \"CreateTime\" is supported"));
                }
            }
            _ => return Err(TopicConfigError::UnknownKey(quoted(key))),
        }
        let canonical = self
            .value_of(key)
            .unwrap_or_else(|| value.trim().to_string());
        self.overrides.insert(key.to_string(), canonical);
        Ok(())
    }

    /// `overrides` checked and in canonical form (what the registry and the
    /// quorum store).
    pub fn canonical_overrides(
        defaults: &TopicConfig,
        overrides: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, TopicConfigError> {
        Ok(TopicConfig::with_overrides(defaults, overrides)?.overrides)
    }

    /// The current value of a supported key, as DescribeConfigs shows it.
    pub fn value_of(&self, key: &str) -> Option<String> {
        let v = match key {
            "cleanup.policy" => match (self.cleanup_delete, self.cleanup_compact) {
                (true, true) => "compact,delete".to_string(),
                (false, true) => "compact".to_string(),
                _ => "delete".to_string(),
            },
            "delete.retention.ms" => self.delete_retention_ms.to_string(),
            "message.timestamp.type" => "CreateTime".to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "min.insync.replicas" => self.min_insync_replicas.to_string(),
            "unclean.leader.election.enable" => self.unclean_leader_election.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "retention.ms" => self.retention_ms.to_string(),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            _ => return None,
        };
        Some(v)
    }

    pub fn is_override(&self, key: &str) -> bool {
        self.overrides.contains_key(key)
    }
}

/// The start of `text`, for an error message.
fn quoted(text: &str) -> String {
    if text.chars().count() <= QUOTED_VALUE_CHARS_MAX {
        return text.to_string();
    }
    let head: String = text.chars().take(QUOTED_VALUE_CHARS_MAX).collect();
    format!("{head}... ({} bytes)", text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_are_checked_and_remembered() {
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "1000".to_string());
        let c = TopicConfig::with_overrides(&TopicConfig::default(), &o).unwrap();
        assert_eq!(c.retention_ms, 1000);
        assert!(c.is_override("retention.ms"));
        assert!(!c.is_override("segment.bytes"));
        assert_eq!(c.value_of("retention.ms").unwrap(), "1000");
    }

    #[test]
    fn bad_values_are_refused() {
        let mut c = TopicConfig::default();
        assert!(c.set("segment.bytes", "abc").is_err());
        assert!(c.set("segment.bytes", "3").is_err());
        assert!(c.set("cleanup.policy", "shred").is_err());
        c.set("cleanup.policy", "compact, delete").unwrap();
        assert!(c.cleanup_compact && c.cleanup_delete);
        assert_eq!(
            c.set("no.such", "1"),
            Err(TopicConfigError::UnknownKey("no.such".into()))
        );
    }

    #[test]
    fn values_are_stored_canonically_and_bounded() {
        let mut o = BTreeMap::new();
        o.insert(
            "retention.ms".to_string(),
            format!("{}1", "0".repeat(60_000)),
        );
        o.insert(
            "cleanup.policy".to_string(),
            "delete, compact,delete".into(),
        );
        o.insert("unclean.leader.election.enable".to_string(), "TRUE".into());
        let c = TopicConfig::canonical_overrides(&TopicConfig::default(), &o).unwrap();
        assert_eq!(c["retention.ms"], "1");
        assert_eq!(c["cleanup.policy"], "compact,delete");
        assert_eq!(c["unclean.leader.election.enable"], "true");
        o.insert(
            "retention.ms".to_string(),
            "0".repeat(CONFIG_VALUE_BYTES_MAX + 1),
        );
        let e = TopicConfig::canonical_overrides(&TopicConfig::default(), &o).unwrap_err();
        assert!(e.to_string().len() < 300, "{e}");
    }
}
