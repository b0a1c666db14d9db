//! Per-topic configuration: every topic config Apache Kafka 4.x defines is
//! accepted, checked as Kafka checks it and kept in canonical form (see
//! `topic_defs`); the ones Tidemark acts on are also parsed into the typed
//! fields of `TopicConfig`, which the storage, produce and replication paths
//! read. The string pairs come from CreateTopics, IncrementalAlterConfigs and
//! AlterConfigs, and go back out through DescribeConfigs. Pure code.
use crate::topic_config_defs::{list_items, removed_key_replacement, topic_config_def, ConfigKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

pub use crate::topic_config_defs::{kafka_synonym, TopicConfigDef, TOPIC_CONFIG_DEFS};

/// Longest config value accepted, in bytes, before it is parsed. Kafka has
/// no bound on strings, but every topic config is a number, a boolean, a
/// codec name or a short list once canonical; 64 KiB leaves room for long
/// lists (throttled replicas) while keeping one request from carrying
/// megabytes into the quorum's view (a 3.5 MiB `retention.ms` of leading
/// zeros once pushed the view past its frame).
pub const CONFIG_VALUE_BYTES_MAX: usize = 64 << 10;
/// How much of a refused value an error message quotes.
const QUOTED_VALUE_CHARS_MAX: usize = 64;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TopicConfigError {
    #[error("unknown topic config {key}{hint}")]
    UnknownKey { key: String, hint: String },
    /// The controller refused the configs (its bounds, see `quorum::state`).
    #[error("refused by the controller: {0}")]
    Refused(String),
    #[error("invalid value {value:?} for {key}: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
    /// APPEND or SUBTRACT on a config that is not a list.
    #[error("cannot {operation} to {key}: its type is not LIST")]
    NotAList {
        key: String,
        operation: &'static str,
    },
    /// Two configs that are each valid but not together.
    #[error("conflicting topic configs: {0}")]
    Conflict(String),
}

impl TopicConfigError {
    fn unknown(key: &str) -> Self {
        let hint = removed_key_replacement(key)
            .map(|instead| format!(" (removed in Apache Kafka 4.0; instead: {instead})"))
            .unwrap_or_default();
        TopicConfigError::UnknownKey {
            key: quoted(key),
            hint,
        }
    }

    fn invalid(key: &str, value: &str, reason: impl Into<String>) -> Self {
        TopicConfigError::InvalidValue {
            key: key.to_string(),
            value: quoted(value),
            reason: reason.into(),
        }
    }
}

/// How batches get their timestamps (`message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// The producer's timestamps, as sent.
    CreateTime,
    /// The broker's clock when it appends the batch.
    LogAppendTime,
}

/// The codec batches are stored with (`compression.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicCompression {
    /// Whatever codec the producer used.
    Producer,
    Uncompressed,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// The levels `compression.*.level` give each codec when the broker
/// compresses (Kafka's defaults: gzip -1 = the codec's own, lz4 9, zstd 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressionLevels {
    pub gzip: i32,
    pub lz4: i32,
    pub zstd: i32,
}

/// What the produce path reads of a topic's config, copied out per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceSettings {
    pub max_message_bytes: i32,
    /// `cleanup.policy` contains `compact`: records need keys.
    pub compacted: bool,
    pub timestamp_type: TimestampType,
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    pub compression: TopicCompression,
    pub compression_levels: CompressionLevels,
}

/// Where a config's value comes from, as DescribeConfigs reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// Set on the topic.
    Topic,
    /// The broker's own setting (its config file or flags) of the key's
    /// broker-level synonym.
    Broker,
    /// Kafka's default.
    Default,
}

/// The effective configuration of one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    /// `segment.bytes`.
    pub segment_bytes: i64,
    /// `internal.segment.bytes`: wins over `segment.bytes` when set.
    pub internal_segment_bytes: Option<i64>,
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
    pub timestamp_type: TimestampType,
    /// CreateTime records older than the broker's clock by more than this
    /// are refused (INVALID_TIMESTAMP).
    pub timestamp_before_max_ms: i64,
    /// CreateTime records newer than the broker's clock by more than this
    /// are refused.
    pub timestamp_after_max_ms: i64,
    pub compression: TopicCompression,
    pub compression_levels: CompressionLevels,
    /// The configs the topic set itself, canonical (the rest are defaults).
    pub overrides: BTreeMap<String, String>,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            segment_bytes: 1 << 30,
            internal_segment_bytes: None,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            retention_ms: 7 * 24 * 3600 * 1000,
            max_message_bytes: 1_048_588,
            min_insync_replicas: 1,
            unclean_leader_election: false,
            cleanup_delete: true,
            cleanup_compact: false,
            delete_retention_ms: 24 * 3600 * 1000,
            timestamp_type: TimestampType::CreateTime,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
            compression: TopicCompression::Producer,
            compression_levels: CompressionLevels {
                gzip: -1,
                lz4: 9,
                zstd: 3,
            },
            overrides: BTreeMap::new(),
        }
    }
}

/// The topic keys whose defaults come from a broker setting of Tidemark's,
/// with that setting's name.
const BROKER_SYNONYMS: &[(&str, &str)] = &[
    ("max.message.bytes", "message.max.bytes"),
    ("retention.bytes", "log.retention.bytes"),
    ("retention.ms", "log.retention.ms"),
    ("segment.bytes", "log.segment.bytes"),
    ("segment.ms", "log.roll.ms"),
];

/// The broker setting a topic key takes its default from, if Tidemark has one.
pub fn broker_synonym(key: &str) -> Option<&'static str> {
    BROKER_SYNONYMS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, broker)| *broker)
}

impl TopicConfig {
    /// The broker defaults with `overrides` applied on top, each checked,
    /// then checked together.
    pub fn with_overrides(
        defaults: &TopicConfig,
        overrides: &BTreeMap<String, String>,
    ) -> Result<TopicConfig, TopicConfigError> {
        let mut config = defaults.clone();
        config.overrides.clear();
        for (key, value) in overrides {
            config.set(key, value)?;
        }
        config.check_combination()?;
        Ok(config)
    }

    /// Stored overrides applied one by one: an override that no longer
    /// checks (kept by an older version, with looser rules) is left out and
    /// returned, and the others still apply, so one stale value never costs
    /// a topic its other settings (say, its `cleanup.policy`).
    pub fn with_stored_overrides(
        defaults: &TopicConfig,
        overrides: &BTreeMap<String, String>,
    ) -> (TopicConfig, Vec<TopicConfigError>) {
        let mut config = defaults.clone();
        config.overrides.clear();
        let mut skipped = Vec::new();
        for (key, value) in overrides {
            if let Err(e) = config.set(key, value) {
                skipped.push(e);
            }
        }
        if let Err(e) = config.check_combination() {
            skipped.push(e);
        }
        (config, skipped)
    }

    /// Sets one config, checking its value as Kafka does; the override is
    /// kept in canonical form (see `TopicConfigDef::canonical`).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), TopicConfigError> {
        if value.len() > CONFIG_VALUE_BYTES_MAX {
            return Err(TopicConfigError::invalid(key, value, "longer than 64 KiB"));
        }
        let def = topic_config_def(key).ok_or_else(|| TopicConfigError::unknown(key))?;
        let canonical = def
            .canonical(value)
            .map_err(|reason| TopicConfigError::invalid(key, value, reason))?;
        self.apply(key, &canonical)
            .map_err(|reason| TopicConfigError::invalid(key, value, reason))?;
        self.overrides.insert(key.to_string(), canonical);
        Ok(())
    }

    /// Puts a canonical value of a key Tidemark acts on into its field;
    /// the other keys are only kept. The error is the reason.
    fn apply(&mut self, key: &str, canonical: &str) -> Result<(), String> {
        let long = || canonical.parse::<i64>().map_err(|e| e.to_string());
        let int = || canonical.parse::<i32>().map_err(|e| e.to_string());
        match key {
            "segment.bytes" => self.segment_bytes = long()?,
            "internal.segment.bytes" => self.internal_segment_bytes = Some(long()?),
            "segment.ms" => self.segment_ms = long()?,
            "retention.bytes" => self.retention_bytes = long()?,
            "retention.ms" => self.retention_ms = long()?,
            "max.message.bytes" => self.max_message_bytes = int()?,
            "min.insync.replicas" => self.min_insync_replicas = int()?,
            "unclean.leader.election.enable" => self.unclean_leader_election = canonical == "true",
            "cleanup.policy" => {
                let items = list_items(canonical);
                self.cleanup_delete = items.contains(&"delete");
                self.cleanup_compact = items.contains(&"compact");
            }
            "delete.retention.ms" => self.delete_retention_ms = long()?,
            "message.timestamp.type" => {
                self.timestamp_type = match canonical {
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    _ => TimestampType::CreateTime,
                }
            }
            "message.timestamp.before.max.ms" => self.timestamp_before_max_ms = long()?,
            "message.timestamp.after.max.ms" => self.timestamp_after_max_ms = long()?,
            "compression.type" => self.compression = compression_of(canonical),
            "compression.gzip.level" => self.compression_levels.gzip = int()?,
            "compression.lz4.level" => self.compression_levels.lz4 = int()?,
            "compression.zstd.level" => self.compression_levels.zstd = int()?,
            // As a Kafka broker whose tiered storage is off refuses it.
            "remote.storage.enable" if canonical == "true" => {
                return Err("tiered storage is not built in Tidemark".to_string())
            }
            _ => {}
        }
        Ok(())
    }

    /// The rules Kafka's `LogConfig.validateValues` applies across keys.
    fn check_combination(&self) -> Result<(), TopicConfigError> {
        let lag = |key| {
            self.value_of(key)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        };
        let (min_lag, max_lag) = (lag("min.compaction.lag.ms"), lag("max.compaction.lag.ms"));
        if min_lag > max_lag {
            return Err(TopicConfigError::Conflict(format!(
                "min.compaction.lag.ms ({min_lag}) > max.compaction.lag.ms ({max_lag})"
            )));
        }
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

    /// The current value of a key, as DescribeConfigs shows it; `None` for
    /// a key Kafka does not define, or one without a default that is not set.
    pub fn value_of(&self, key: &str) -> Option<String> {
        let def = topic_config_def(key)?;
        if let Some(value) = self.overrides.get(key) {
            return Some(value.clone());
        }
        // Unset keys hold their defaults: the broker's for its synonyms.
        let from_broker = match key {
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "retention.ms" => self.retention_ms.to_string(),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            _ => return def.default.map(str::to_string),
        };
        Some(from_broker)
    }

    pub fn is_override(&self, key: &str) -> bool {
        self.overrides.contains_key(key)
    }

    /// Where the value of `key` comes from.
    pub fn origin_of(&self, key: &str) -> ConfigOrigin {
        if self.is_override(key) {
            return ConfigOrigin::Topic;
        }
        let kafka_default = topic_config_def(key).and_then(|d| d.default);
        if broker_synonym(key).is_some() && self.value_of(key).as_deref() != kafka_default {
            ConfigOrigin::Broker
        } else {
            ConfigOrigin::Default
        }
    }

    pub fn produce_settings(&self) -> ProduceSettings {
        ProduceSettings {
            max_message_bytes: self.max_message_bytes,
            compacted: self.cleanup_compact,
            timestamp_type: self.timestamp_type,
            timestamp_before_max_ms: self.timestamp_before_max_ms,
            timestamp_after_max_ms: self.timestamp_after_max_ms,
            compression: self.compression,
            compression_levels: self.compression_levels,
        }
    }

    /// The size at which the active segment rolls.
    pub fn roll_bytes(&self) -> i64 {
        self.internal_segment_bytes.unwrap_or(self.segment_bytes)
    }

    /// The value of list config `key` after IncrementalAlterConfigs APPEND
    /// of `items` (comma-separated): the current items, then each new one
    /// not already there.
    pub fn appended(&self, key: &str, items: &str) -> Result<String, TopicConfigError> {
        let mut list = self.list_of(key, "APPEND")?;
        let added = list_items(items);
        if added.is_empty() || added.iter().any(|i| i.is_empty()) {
            return Err(TopicConfigError::invalid(
                key,
                items,
                "APPEND needs items that are not empty",
            ));
        }
        for item in added {
            if !list.iter().any(|i| i == item) {
                list.push(item.to_string());
            }
        }
        Ok(list.join(","))
    }

    /// The value of list config `key` after IncrementalAlterConfigs
    /// SUBTRACT of `items`: the current items but those.
    pub fn subtracted(&self, key: &str, items: &str) -> Result<String, TopicConfigError> {
        let mut list = self.list_of(key, "SUBTRACT")?;
        let removed = list_items(items);
        list.retain(|i| !removed.contains(&i.as_str()));
        Ok(list.join(","))
    }

    fn list_of(&self, key: &str, operation: &'static str) -> Result<Vec<String>, TopicConfigError> {
        let def = topic_config_def(key).ok_or_else(|| TopicConfigError::unknown(key))?;
        if def.kind != ConfigKind::List {
            return Err(TopicConfigError::NotAList {
                key: key.to_string(),
                operation,
            });
        }
        let current = self.value_of(key).unwrap_or_default();
        Ok(list_items(&current)
            .into_iter()
            .map(str::to_string)
            .collect())
    }
}

fn compression_of(canonical: &str) -> TopicCompression {
    match canonical {
        "uncompressed" => TopicCompression::Uncompressed,
        "gzip" => TopicCompression::Gzip,
        "snappy" => TopicCompression::Snappy,
        "lz4" => TopicCompression::Lz4,
        "zstd" => TopicCompression::Zstd,
        _ => TopicCompression::Producer,
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

/// When the log calls fdatasync on the produce path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlushPolicy {
    /// fdatasync before acknowledging acks=all (the default).
    AcksAll,
    /// fdatasync before acknowledging every produce, acks=1 too.
    Always,
    /// Never fdatasync on the produce path (only on segment roll and shutdown),
    /// like Apache Kafka's default of leaving it to the page cache and replicas.
    Never,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn overrides_are_checked_and_remembered() {
        let o = overrides(&[("retention.ms", "1000")]);
        let c = TopicConfig::with_overrides(&TopicConfig::default(), &o).unwrap();
        assert_eq!(c.retention_ms, 1000);
        assert!(c.is_override("retention.ms"));
        assert!(!c.is_override("segment.bytes"));
        assert_eq!(c.value_of("retention.ms").unwrap(), "1000");
        assert_eq!(c.origin_of("retention.ms"), ConfigOrigin::Topic);
        assert_eq!(c.origin_of("segment.bytes"), ConfigOrigin::Default);
    }

    #[test]
    fn bad_values_are_refused() {
        let mut c = TopicConfig::default();
        assert!(c.set("segment.bytes", "abc").is_err());
        assert!(c.set("segment.bytes", "3").is_err());
        assert!(c.set("cleanup.policy", "shred").is_err());
        c.set("cleanup.policy", "compact, delete").unwrap();
        assert!(c.cleanup_compact && c.cleanup_delete);
        assert!(matches!(
            c.set("no.such", "1"),
            Err(TopicConfigError::UnknownKey { .. })
        ));
        assert!(c.set("remote.storage.enable", "true").is_err());
        c.set("remote.storage.enable", "false").unwrap();
    }

    #[test]
    fn every_kafka_key_is_accepted_and_described() {
        let mut c = TopicConfig::default();
        c.set("compression.type", "zstd").unwrap();
        assert_eq!(c.compression, TopicCompression::Zstd);
        c.set("message.timestamp.type", "LogAppendTime").unwrap();
        assert_eq!(c.timestamp_type, TimestampType::LogAppendTime);
        c.set("min.cleanable.dirty.ratio", "0.25").unwrap();
        c.set("leader.replication.throttled.replicas", "*").unwrap();
        assert_eq!(c.value_of("flush.ms").unwrap(), i64::MAX.to_string());
        assert_eq!(c.value_of("min.cleanable.dirty.ratio").unwrap(), "0.25");
        assert_eq!(c.value_of("internal.segment.bytes"), None);
        assert_eq!(c.value_of("no.such"), None);
        let e = c
            .set("message.timestamp.difference.max.ms", "1000")
            .unwrap_err();
        assert!(e.to_string().contains("removed in Apache Kafka 4.0"), "{e}");
    }

    #[test]
    fn internal_segment_bytes_rolls_small_segments() {
        let mut c = TopicConfig::default();
        c.set("internal.segment.bytes", "4096").unwrap();
        assert_eq!(c.roll_bytes(), 4096);
        assert_eq!(c.value_of("segment.bytes").unwrap(), "1073741824");
    }

    #[test]
    fn compaction_lags_are_checked_together() {
        let o = overrides(&[
            ("min.compaction.lag.ms", "10"),
            ("max.compaction.lag.ms", "5"),
        ]);
        let e = TopicConfig::with_overrides(&TopicConfig::default(), &o).unwrap_err();
        assert!(matches!(e, TopicConfigError::Conflict(_)), "{e}");
    }

    #[test]
    fn stored_overrides_that_no_longer_check_are_skipped_alone() {
        let o = overrides(&[("segment.bytes", "4096"), ("cleanup.policy", "compact")]);
        let (c, skipped) = TopicConfig::with_stored_overrides(&TopicConfig::default(), &o);
        assert_eq!(skipped.len(), 1);
        assert!(c.cleanup_compact && !c.cleanup_delete);
        assert_eq!(c.segment_bytes, 1 << 30);
    }

    #[test]
    fn values_are_stored_canonically_and_bounded() {
        let mut o = overrides(&[
            ("cleanup.policy", "delete, compact,delete"),
            ("unclean.leader.election.enable", "TRUE"),
        ]);
        o.insert(
            "retention.ms".to_string(),
            format!("{}1", "0".repeat(60_000)),
        );
        let c = TopicConfig::canonical_overrides(&TopicConfig::default(), &o).unwrap();
        assert_eq!(c["retention.ms"], "1");
        assert_eq!(c["cleanup.policy"], "delete,compact");
        assert_eq!(c["unclean.leader.election.enable"], "true");
        o.insert(
            "retention.ms".to_string(),
            "0".repeat(CONFIG_VALUE_BYTES_MAX + 1),
        );
        let e = TopicConfig::canonical_overrides(&TopicConfig::default(), &o).unwrap_err();
        assert!(e.to_string().len() < 300, "{e}");
    }

    #[test]
    fn append_and_subtract_work_on_lists_only() {
        let mut c = TopicConfig::default();
        assert_eq!(
            c.appended("cleanup.policy", "compact").unwrap(),
            "delete,compact"
        );
        c.set("cleanup.policy", "delete,compact").unwrap();
        assert_eq!(
            c.appended("cleanup.policy", "compact").unwrap(),
            "delete,compact"
        );
        assert_eq!(c.subtracted("cleanup.policy", "delete").unwrap(), "compact");
        assert_eq!(
            c.subtracted("cleanup.policy", "compact,delete").unwrap(),
            ""
        );
        assert!(c.appended("cleanup.policy", "").is_err());
        assert!(matches!(
            c.appended("retention.ms", "5"),
            Err(TopicConfigError::NotAList { .. })
        ));
        assert!(matches!(
            c.subtracted("no.such", "5"),
            Err(TopicConfigError::UnknownKey { .. })
        ));
    }
}
