//! Apache Kafka 4.x's topic configs: every key Kafka's `LogConfig` defines,
//! with its type, its default, the values its validator accepts and the
//! canonical form a value is stored and described in (what Kafka's
//! `ConfigDef` parses a value to and renders it back as). Which of them
//! Tidemark acts on is decided in `topic`. Pure data and functions, used by
//! every shard and the quorum's callers alike.
//!
//! Taken from Kafka 4.4's definitions (its `LogConfig` and `TopicConfig`),
//! checked against a Kafka 4.4 broker's CreateTopics and DescribeConfigs.

/// Kafka's `ConfigDef.Type` of a topic config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    Boolean,
    String,
    Int,
    Long,
    Double,
    List,
}

impl ConfigKind {
    /// The `ConfigType` code DescribeConfigs (v3+) gives this type.
    pub fn describe_code(self) -> i8 {
        match self {
            ConfigKind::Boolean => 1,
            ConfigKind::String => 2,
            ConfigKind::Int => 3,
            ConfigKind::Long => 5,
            ConfigKind::Double => 6,
            ConfigKind::List => 7,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ConfigKind::Boolean => "BOOLEAN",
            ConfigKind::String => "STRING",
            ConfigKind::Int => "INT",
            ConfigKind::Long => "LONG",
            ConfigKind::Double => "DOUBLE",
            ConfigKind::List => "LIST",
        }
    }
}

/// What a key's validator accepts beyond its type.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// Any value of the type.
    Any,
    /// An Int or Long within these inclusive bounds.
    Range(i64, i64),
    /// A gzip level: 1 to 9, or -1 (the codec's default).
    GzipLevel,
    /// A Double within these inclusive bounds (NaN passes, as in Kafka).
    Between(f64, f64),
    /// Exactly one of these strings, case included (Kafka's `ValidString`).
    OneOf(&'static [&'static str]),
    /// A list whose items are each one of these (Kafka's `ValidList`);
    /// repeated items count once.
    ItemsOf(&'static [&'static str]),
    /// `*`, or `partition:broker` pairs (Kafka's
    /// `ThrottledReplicaListValidator`).
    ThrottledReplicas,
}

/// One topic config as Kafka defines it.
#[derive(Debug)]
pub struct TopicConfigDef {
    pub name: &'static str,
    pub kind: ConfigKind,
    /// Kafka's default, as DescribeConfigs shows it; `None` when the key has
    /// none (it is then only listed once set).
    pub default: Option<&'static str>,
    rule: Rule,
    /// What the key does, in Tidemark's words, for DescribeConfigs'
    /// documentation (v3+).
    pub doc: &'static str,
}

const fn def(
    name: &'static str,
    kind: ConfigKind,
    default: Option<&'static str>,
    rule: Rule,
    doc: &'static str,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        kind,
        default,
        rule,
        doc,
    }
}

const I32_MAX: i64 = i32::MAX as i64;
const I64_MAX_TEXT: &str = "9223372036854775807";
const CODECS: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];

use ConfigKind::{Boolean, Double, Int, List, Long};

/// Every topic config of Kafka 4.x, sorted by name.
pub const TOPIC_CONFIG_DEFS: &[TopicConfigDef] = &[
    def(
        "cleanup.policy",
        List,
        Some("delete"),
        Rule::ItemsOf(&["compact", "delete"]),
        "What happens to old segments: delete (by retention.ms and retention.bytes), compact (keep the newest record of each key), both, or neither (an empty list: kept forever).",
    ),
    def(
        "compression.gzip.level",
        Int,
        Some("-1"),
        Rule::GzipLevel,
        "The gzip level the broker compresses with when compression.type is gzip: 1 to 9, or -1 for the codec's default.",
    ),
    def(
        "compression.lz4.level",
        Int,
        Some("9"),
        Rule::Range(1, 17),
        "The lz4 level the broker compresses with when compression.type is lz4: 1 to 17.",
    ),
    def(
        "compression.type",
        ConfigKind::String,
        Some("producer"),
        Rule::OneOf(CODECS),
        "The codec batches are stored with: producer keeps the producer's; uncompressed, gzip, snappy, lz4 or zstd recompress batches sent with another codec.",
    ),
    def(
        "compression.zstd.level",
        Int,
        Some("3"),
        Rule::Range(-131072, 22),
        "The zstd level the broker compresses with when compression.type is zstd: -131072 to 22.",
    ),
    def(
        "delete.retention.ms",
        Long,
        Some("86400000"),
        Rule::Range(0, i64::MAX),
        "How long a compacted topic keeps tombstones (records with a null value), in milliseconds.",
    ),
    def(
        "errors.deadletterqueue.group.enable",
        Boolean,
        Some("false"),
        Rule::Any,
        "Whether share groups may use this topic as a dead-letter queue (no share groups in Tidemark: no effect).",
    ),
    def(
        "file.delete.delay.ms",
        Long,
        Some("60000"),
        Rule::Range(0, i64::MAX),
        "How long a deleted segment's files are kept before removal, in milliseconds (no effect in Tidemark: they go at once).",
    ),
    def(
        "flush.messages",
        Long,
        Some(I64_MAX_TEXT),
        Rule::Range(1, i64::MAX),
        "Records between two forced flushes of the log (no effect in Tidemark: the broker's log.flush.policy decides).",
    ),
    def(
        "flush.ms",
        Long,
        Some(I64_MAX_TEXT),
        Rule::Range(0, i64::MAX),
        "Milliseconds between two forced flushes of the log (no effect in Tidemark: the broker's log.flush.policy decides).",
    ),
    def(
        "follower.replication.throttled.replicas",
        List,
        Some(""),
        Rule::ThrottledReplicas,
        "Replicas whose follower-side replication is throttled: * or partition:broker pairs (no effect in Tidemark).",
    ),
    def(
        "index.interval.bytes",
        Int,
        Some("4096"),
        Rule::Range(0, I32_MAX),
        "Bytes of log between two entries of the offset index (Tidemark uses the broker's log.index.interval.bytes).",
    ),
    // Kafka's internal key for tests: a segment size below segment.bytes's
    // 1 MiB floor. Tidemark needs a segment to hold a batch header.
    def(
        "internal.segment.bytes",
        Int,
        None,
        Rule::Range(14, I32_MAX),
        "For tests: the segment size, overriding segment.bytes and its 1 MiB floor.",
    ),
    def(
        "leader.replication.throttled.replicas",
        List,
        Some(""),
        Rule::ThrottledReplicas,
        "Replicas whose leader-side replication is throttled: * or partition:broker pairs (no effect in Tidemark).",
    ),
    def(
        "local.retention.bytes",
        Long,
        Some("-2"),
        Rule::Range(-2, i64::MAX),
        "With tiered storage, the bytes kept on local disk; -2 follows retention.bytes (no tiered storage in Tidemark).",
    ),
    def(
        "local.retention.ms",
        Long,
        Some("-2"),
        Rule::Range(-2, i64::MAX),
        "With tiered storage, how long segments stay on local disk; -2 follows retention.ms (no tiered storage in Tidemark).",
    ),
    def(
        "max.compaction.lag.ms",
        Long,
        Some(I64_MAX_TEXT),
        Rule::Range(1, i64::MAX),
        "The longest a record may stay uncompacted, in milliseconds (no effect in Tidemark's cleaner).",
    ),
    def(
        "max.decompressed.message.bytes",
        Int,
        Some("2147483639"),
        Rule::Range(1, 2147483639),
        "The largest decompressed size of one record (no effect in Tidemark, which bounds each batch's decompressed size).",
    ),
    def(
        "max.message.bytes",
        Int,
        Some("1048588"),
        Rule::Range(0, I32_MAX),
        "The largest record batch the topic accepts, in bytes, after any recompression.",
    ),
    def(
        "message.timestamp.after.max.ms",
        Long,
        Some("3600000"),
        Rule::Range(0, i64::MAX),
        "With CreateTime, how far in the future of the broker's clock a record's timestamp may be, in milliseconds.",
    ),
    def(
        "message.timestamp.before.max.ms",
        Long,
        Some(I64_MAX_TEXT),
        Rule::Range(0, i64::MAX),
        "With CreateTime, how far in the past of the broker's clock a record's timestamp may be, in milliseconds.",
    ),
    def(
        "message.timestamp.type",
        ConfigKind::String,
        Some("CreateTime"),
        Rule::OneOf(&["CreateTime", "LogAppendTime"]),
        "CreateTime keeps the producer's timestamps; LogAppendTime gives each batch the broker's clock when it is appended.",
    ),
    def(
        "min.cleanable.dirty.ratio",
        Double,
        Some("0.5"),
        Rule::Between(0.0, 1.0),
        "The share of a log not yet compacted that triggers compaction (no effect in Tidemark's cleaner).",
    ),
    def(
        "min.compaction.lag.ms",
        Long,
        Some("0"),
        Rule::Range(0, i64::MAX),
        "The least time a record stays uncompacted, in milliseconds (no effect in Tidemark's cleaner).",
    ),
    def(
        "min.insync.replicas",
        Int,
        Some("1"),
        Rule::Range(1, I32_MAX),
        "The in-sync replicas an acks=all produce needs.",
    ),
    def(
        "preallocate",
        Boolean,
        Some("false"),
        Rule::Any,
        "Whether new segment files are preallocated (Tidemark always preallocates).",
    ),
    def(
        "remote.copy.lag.bytes",
        Long,
        Some("-1"),
        Rule::Range(-1, i64::MAX),
        "With tiered storage, the local bytes after a segment that make it eligible for upload (no tiered storage in Tidemark).",
    ),
    def(
        "remote.copy.lag.ms",
        Long,
        Some("0"),
        Rule::Range(-1, i64::MAX),
        "With tiered storage, the age that makes a segment eligible for upload (no tiered storage in Tidemark).",
    ),
    def(
        "remote.log.copy.disable",
        Boolean,
        Some("false"),
        Rule::Any,
        "With tiered storage, stops uploads while keeping remote data readable (no tiered storage in Tidemark).",
    ),
    def(
        "remote.log.delete.on.disable",
        Boolean,
        Some("false"),
        Rule::Any,
        "With tiered storage, deletes remote data when remote.storage.enable is turned off (no tiered storage in Tidemark).",
    ),
    def(
        "remote.storage.enable",
        Boolean,
        Some("false"),
        Rule::Any,
        "Tiered storage for the topic; Tidemark has none, so only false is accepted.",
    ),
    def(
        "retention.bytes",
        Long,
        Some("-1"),
        Rule::Any,
        "The size above which the oldest whole segments are deleted (with cleanup.policy delete); -1 for no limit.",
    ),
    def(
        "retention.ms",
        Long,
        Some("604800000"),
        Rule::Range(-1, i64::MAX),
        "The age after which whole segments are deleted (with cleanup.policy delete), by their newest record's timestamp; -1 keeps them forever.",
    ),
    def(
        "segment.bytes",
        Int,
        Some("1073741824"),
        Rule::Range(1 << 20, I32_MAX),
        "The size at which the active segment is closed and a new one started: at least 1 MiB.",
    ),
    def(
        "segment.index.bytes",
        Int,
        Some("10485760"),
        Rule::Range(4, I32_MAX),
        "The largest size of a segment's offset index (no effect in Tidemark).",
    ),
    def(
        "segment.jitter.ms",
        Long,
        Some("0"),
        Rule::Range(0, i64::MAX),
        "A random spread of segment.ms, in milliseconds (no effect in Tidemark).",
    ),
    def(
        "segment.ms",
        Long,
        Some("604800000"),
        Rule::Range(1, i64::MAX),
        "The age at which the active segment is closed and a new one started, in milliseconds.",
    ),
    def(
        "unclean.leader.election.enable",
        Boolean,
        Some("false"),
        Rule::Any,
        "Whether a replica outside the ISR may become leader when no ISR member is alive, losing the records it lacks.",
    ),
];

/// Topic configs Kafka 4.0 removed (Kafka 4.x refuses them as unknown), and
/// what replaced them.
const REMOVED_KEYS: &[(&str, &str)] = &[
    (
        "message.timestamp.difference.max.ms",
        "message.timestamp.before.max.ms and message.timestamp.after.max.ms",
    ),
    (
        "message.format.version",
        "nothing: every batch is RecordBatch v2",
    ),
    (
        "message.downconversion.enable",
        "nothing: brokers no longer convert batches for old consumers",
    ),
];

/// The broker setting Kafka names as each topic config's synonym (the
/// default it falls back to) in DescribeConfigs, for the keys whose synonym
/// has a default. Kafka's `ServerTopicConfigSynonyms`.
const KAFKA_SYNONYMS: &[(&str, &str)] = &[
    ("cleanup.policy", "log.cleanup.policy"),
    ("compression.gzip.level", "compression.gzip.level"),
    ("compression.lz4.level", "compression.lz4.level"),
    ("compression.type", "compression.type"),
    ("compression.zstd.level", "compression.zstd.level"),
    ("delete.retention.ms", "log.cleaner.delete.retention.ms"),
    ("file.delete.delay.ms", "log.segment.delete.delay.ms"),
    ("flush.messages", "log.flush.interval.messages"),
    ("index.interval.bytes", "log.index.interval.bytes"),
    ("local.retention.bytes", "log.local.retention.bytes"),
    ("local.retention.ms", "log.local.retention.ms"),
    ("max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms"),
    (
        "max.decompressed.message.bytes",
        "max.decompressed.message.bytes",
    ),
    ("max.message.bytes", "message.max.bytes"),
    (
        "message.timestamp.after.max.ms",
        "log.message.timestamp.after.max.ms",
    ),
    (
        "message.timestamp.before.max.ms",
        "log.message.timestamp.before.max.ms",
    ),
    ("message.timestamp.type", "log.message.timestamp.type"),
    (
        "min.cleanable.dirty.ratio",
        "log.cleaner.min.cleanable.ratio",
    ),
    ("min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms"),
    ("min.insync.replicas", "min.insync.replicas"),
    ("preallocate", "log.preallocate"),
    ("remote.copy.lag.bytes", "log.remote.copy.lag.bytes"),
    ("remote.copy.lag.ms", "log.remote.copy.lag.ms"),
    ("retention.bytes", "log.retention.bytes"),
    ("segment.bytes", "log.segment.bytes"),
    ("segment.index.bytes", "log.index.size.max.bytes"),
    (
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
    ),
];

/// The broker-level synonym Kafka describes a topic config's default under.
pub fn kafka_synonym(name: &str) -> Option<&'static str> {
    KAFKA_SYNONYMS
        .iter()
        .find(|(key, _)| *key == name)
        .map(|(_, synonym)| *synonym)
}

/// Kafka's definition of a topic config, if Kafka 4.x has one.
pub fn topic_config_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIG_DEFS
        .binary_search_by(|d| d.name.cmp(name))
        .ok()
        .map(|i| &TOPIC_CONFIG_DEFS[i])
}

/// For a key Kafka 4.0 removed: what replaced it.
pub fn removed_key_replacement(name: &str) -> Option<&'static str> {
    REMOVED_KEYS
        .iter()
        .find(|(key, _)| *key == name)
        .map(|(_, instead)| *instead)
}

impl TopicConfigDef {
    /// `value` parsed as Kafka's `ConfigDef` parses this key's type, checked
    /// by its validator, and rendered back as Kafka renders it: a number as
    /// its decimal, a boolean in lower case, a string trimmed, a list as
    /// trimmed items joined by commas. The error is the reason.
    pub fn canonical(&self, value: &str) -> Result<String, String> {
        let value = value.trim();
        let not_of_type = || format!("not a value of type {}", self.kind.name());
        match self.kind {
            ConfigKind::Boolean => match value.to_ascii_lowercase().as_str() {
                v @ ("true" | "false") => Ok(v.to_string()),
                _ => Err("expected true or false".to_string()),
            },
            ConfigKind::Int => {
                let v = value.parse::<i32>().map_err(|_| not_of_type())?;
                self.check_number(v as i64)
            }
            ConfigKind::Long => {
                let v = value.parse::<i64>().map_err(|_| not_of_type())?;
                self.check_number(v)
            }
            ConfigKind::Double => {
                let v = value.parse::<f64>().map_err(|_| not_of_type())?;
                self.check_double(v)
            }
            ConfigKind::String => self.check_string(value),
            ConfigKind::List => self.check_list(&list_items(value)),
        }
    }

    fn check_number(&self, v: i64) -> Result<String, String> {
        match self.rule {
            Rule::Range(min, _) if v < min => Err(format!("must be at least {min}")),
            Rule::Range(_, max) if v > max => Err(format!("must be at most {max}")),
            Rule::GzipLevel if v != -1 && !(1..=9).contains(&v) => {
                Err("must be between 1 and 9, or -1".to_string())
            }
            _ => Ok(v.to_string()),
        }
    }

    fn check_double(&self, v: f64) -> Result<String, String> {
        if let Rule::Between(min, max) = self.rule {
            // As Kafka's `Range`: comparisons with NaN are false, so it passes.
            if v < min || v > max {
                return Err(format!("must be between {min} and {max}"));
            }
        }
        Ok(java_double(v))
    }

    fn check_string(&self, value: &str) -> Result<String, String> {
        match self.rule {
            Rule::OneOf(allowed) if !allowed.contains(&value) => {
                Err(format!("must be one of {}", allowed.join(", ")))
            }
            _ => Ok(value.to_string()),
        }
    }

    fn check_list(&self, items: &[&str]) -> Result<String, String> {
        match self.rule {
            Rule::ItemsOf(allowed) => {
                let mut kept: Vec<&str> = Vec::with_capacity(allowed.len());
                for item in items {
                    if !allowed.contains(item) {
                        return Err(format!("each item must be one of {}", allowed.join(", ")));
                    }
                    if !kept.contains(item) {
                        kept.push(item);
                    }
                }
                Ok(kept.join(","))
            }
            Rule::ThrottledReplicas => {
                let pairs = items.iter().all(|i| i.is_empty() || is_replica_pair(i));
                if !pairs && items.concat() != "*" {
                    return Err(
                        "must be * or partition:broker pairs separated by commas".to_string()
                    );
                }
                Ok(items.join(","))
            }
            _ => Ok(items.join(",")),
        }
    }
}

/// The items of a list value as Kafka splits them: nothing for an empty
/// value, else the comma-separated items, trimmed.
pub fn list_items(value: &str) -> Vec<&str> {
    let value = value.trim();
    if value.is_empty() {
        return Vec::new();
    }
    value.split(',').map(str::trim).collect()
}

fn is_replica_pair(item: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    item.split_once(':')
        .is_some_and(|(partition, broker)| digits(partition) && digits(broker))
}

/// A double as Java's `Double.toString` writes it (what Kafka describes):
/// `0.5`, `1.0`, `1.0E-4`, `NaN`.
fn java_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    let magnitude = v.abs();
    if v == 0.0 || (1e-3..1e7).contains(&magnitude) {
        let text = format!("{v}");
        return if text.contains('.') {
            text
        } else {
            format!("{text}.0")
        };
    }
    let text = format!("{v:e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    if mantissa.contains('.') {
        format!("{mantissa}E{exponent}")
    } else {
        format!("{mantissa}.0E{exponent}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(key: &str, value: &str) -> Result<String, String> {
        topic_config_def(key).expect("a Kafka key").canonical(value)
    }

    #[test]
    fn the_table_is_sorted_and_complete() {
        let names: Vec<&str> = TOPIC_CONFIG_DEFS.iter().map(|d| d.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted, "sorted, no duplicates");
        // Kafka 4.4 lists 37 keys, and the internal one.
        assert_eq!(names.len(), 38);
        for d in TOPIC_CONFIG_DEFS {
            if let Some(default) = d.default {
                assert_eq!(
                    d.canonical(default).as_deref(),
                    Ok(default),
                    "the default of {} is valid and canonical",
                    d.name
                );
            }
        }
    }

    #[test]
    fn synonyms_name_kafka_keys() {
        for (key, _) in KAFKA_SYNONYMS {
            assert!(topic_config_def(key).is_some(), "{key} is a topic config");
        }
        assert_eq!(kafka_synonym("cleanup.policy"), Some("log.cleanup.policy"));
        assert_eq!(kafka_synonym("flush.ms"), None);
    }

    #[test]
    fn values_are_parsed_as_kafka_parses_them() {
        assert_eq!(canonical("retention.ms", " 0060000 ").unwrap(), "60000");
        assert_eq!(canonical("flush.ms", "+5").unwrap(), "5");
        assert!(canonical("segment.jitter.ms", "0x10").is_err());
        assert_eq!(canonical("preallocate", "TRUE").unwrap(), "true");
        assert!(canonical("preallocate", "yes").is_err());
        assert_eq!(canonical("compression.type", " zstd ").unwrap(), "zstd");
        assert!(canonical("compression.type", "ZSTD").is_err());
        assert!(canonical("message.timestamp.type", "logappendtime").is_err());
        assert_eq!(
            canonical("min.cleanable.dirty.ratio", "0.50000").unwrap(),
            "0.5"
        );
        assert_eq!(canonical("min.cleanable.dirty.ratio", "1").unwrap(), "1.0");
        assert_eq!(
            canonical("min.cleanable.dirty.ratio", "1e-4").unwrap(),
            "1.0E-4"
        );
        assert!(canonical("min.cleanable.dirty.ratio", "1.5").is_err());
        assert_eq!(canonical("retention.bytes", "-5").unwrap(), "-5");
        assert!(canonical("max.compaction.lag.ms", "0").is_err());
        assert!(canonical("segment.bytes", "4096").is_err());
        assert_eq!(canonical("segment.bytes", "1048576").unwrap(), "1048576");
        assert!(canonical("compression.gzip.level", "0").is_err());
        assert_eq!(canonical("compression.gzip.level", "-1").unwrap(), "-1");
        assert!(canonical("compression.zstd.level", "23").is_err());
        assert!(canonical("min.insync.replicas", "2147483648").is_err());
    }

    #[test]
    fn lists_are_trimmed_checked_and_deduplicated() {
        assert_eq!(
            canonical("cleanup.policy", "compact , delete").unwrap(),
            "compact,delete"
        );
        assert_eq!(
            canonical("cleanup.policy", "delete,delete").unwrap(),
            "delete"
        );
        assert_eq!(canonical("cleanup.policy", "").unwrap(), "");
        assert!(canonical("cleanup.policy", "compact, bogus").is_err());
        assert!(canonical("cleanup.policy", "compact,").is_err());
        let throttled = "leader.replication.throttled.replicas";
        assert_eq!(canonical(throttled, " 0:1 , 1:2 ").unwrap(), "0:1,1:2");
        assert_eq!(canonical(throttled, "*").unwrap(), "*");
        assert!(canonical(throttled, "x").is_err());
        assert!(canonical(throttled, "*,0:1").is_err());
    }

    #[test]
    fn removed_keys_are_unknown_with_their_replacement() {
        assert!(topic_config_def("message.timestamp.difference.max.ms").is_none());
        assert!(
            removed_key_replacement("message.timestamp.difference.max.ms")
                .unwrap()
                .contains("message.timestamp.before.max.ms")
        );
        assert!(removed_key_replacement("retention.ms").is_none());
    }
}
