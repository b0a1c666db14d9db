//! The broker's copy of the cluster's topics: which topics exist, their ids,
//! partition counts and config overrides, as the quorum service's view
//! says (the agent mirrors every view change into it), and the checks a
//! topic request passes before it is proposed to the controller. Shared by
//! every shard behind a lock that is only taken on the control plane (topic
//! admin and Metadata requests), never on the produce or fetch path.
//!
//! It also holds the block of producer ids the controller gave this broker
//! (InitProducerId). `standalone` reads the registry file of the standalone
//! mode of earlier releases, for the import into the quorum on first start.
pub mod standalone;

use crate::config::{TopicConfig, TopicConfigError};
use model::limits::PARTITIONS_PER_TOPIC_MAX;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Mutex, RwLock};
use thiserror::Error;
use uuid::Uuid;

#[derive(Debug, Error)]
pub enum MetadataError {
    #[error("topic {0} already exists")]
    TopicAlreadyExists(String),
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    #[error("invalid topic name {0:?}: {1}")]
    InvalidTopic(String, &'static str),
    /// The name differs from an existing topic's only by '.' against '_'
    /// (the message is Kafka's).
    #[error("Topic '{name}' collides with existing topic: {existing}")]
    TopicCollision { name: String, existing: String },
    /// A client asked to create, delete or write an internal topic.
    #[error("topic {0} is internal: only the broker creates, writes and deletes it")]
    InternalTopic(String),
    #[error("invalid partition count: {0}")]
    InvalidPartitions(String),
    #[error("invalid replication factor {0}")]
    InvalidReplicationFactor(i16),
    #[error(transparent)]
    InvalidConfig(#[from] TopicConfigError),
    #[error("cannot read the standalone topic registry {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("topic metadata file {path} is unreadable: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("producer ids are exhausted")]
    ProducerIdsExhausted,
    /// The quorum's disk is full: it takes no new topics or configs.
    #[error("the controller's disk is full: only deletions are accepted")]
    DiskFull,
    /// The quorum service refused or could not be reached.
    #[error("the controller: {0}")]
    Controller(String),
}

/// One topic as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    /// Topic-level config overrides, Kafka key -> value.
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct Registry {
    topics: BTreeMap<String, TopicMeta>,
}

/// A change to one topic config: set a value, or return to the default.
#[derive(Debug, Clone)]
pub enum ConfigChange {
    Set(String, String),
    Delete(String),
}

pub struct MetadataStore {
    /// The newest quorum view every shard has applied.
    applied_revision: std::sync::atomic::AtomicU64,
    topic_defaults: TopicConfig,
    registry: RwLock<Registry>,
    /// The ids left in the block this process reserved last.
    producer_ids: Mutex<Range<i64>>,
}

impl MetadataStore {
    /// An empty copy, filled by the first cluster view.
    pub fn new(topic_defaults: TopicConfig) -> Self {
        MetadataStore {
            applied_revision: std::sync::atomic::AtomicU64::new(0),
            topic_defaults,
            registry: RwLock::new(Registry::default()),
            producer_ids: Mutex::new(0..0),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.registry.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn topics(&self) -> Vec<TopicMeta> {
        self.read().topics.values().cloned().collect()
    }

    pub fn topic(&self, name: &str) -> Option<TopicMeta> {
        self.read().topics.get(name).cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<TopicMeta> {
        self.read().topics.values().find(|t| t.id == id).cloned()
    }

    /// The effective config of a topic: broker defaults plus its overrides.
    pub fn topic_config(&self, topic: &TopicMeta) -> TopicConfig {
        // Overrides were checked when stored; one that no longer checks
        // (stored by an older version) is left out, the others still apply.
        let (config, skipped) =
            TopicConfig::with_stored_overrides(&self.topic_defaults, &topic.configs);
        for e in skipped {
            tracing::warn!(topic = %topic.name, error = %e, "a stored topic config is ignored");
        }
        config
    }

    pub fn topic_defaults(&self) -> &TopicConfig {
        &self.topic_defaults
    }

    /// Checks a creation without making it (CreateTopics with validate_only).
    /// Returns the configs in the canonical form they are stored in.
    pub fn check_new_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, MetadataError> {
        validate_topic_name(name)?;
        if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
            return Err(MetadataError::InvalidPartitions(format!(
                "{partitions} is not between 1 and {PARTITIONS_PER_TOPIC_MAX}"
            )));
        }
        let canonical = TopicConfig::canonical_overrides(&self.topic_defaults, configs)?;
        check_not_taken(name, &self.read().topics)?;
        Ok(canonical)
    }

    /// Checks growing a topic to `total` partitions (Kafka never shrinks
    /// one) before the controller is asked.
    pub fn check_partition_count(&self, name: &str, total: i32) -> Result<(), MetadataError> {
        let registry = self.read();
        let topic = registry
            .topics
            .get(name)
            .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        if total <= topic.partitions || total > PARTITIONS_PER_TOPIC_MAX {
            return Err(MetadataError::InvalidPartitions(format!(
                "topic {name} has {} partitions; the new count must be larger and at most {PARTITIONS_PER_TOPIC_MAX}, not {total}",
                topic.partitions
            )));
        }
        Ok(())
    }

    /// The topic as config changes would leave it, all of them checked
    /// (all or nothing), before the controller is asked; the configs come
    /// back in canonical form.
    pub fn check_config_changes(
        &self,
        name: &str,
        changes: &[ConfigChange],
    ) -> Result<TopicMeta, MetadataError> {
        let registry = self.read();
        let topic = registry
            .topics
            .get(name)
            .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        let mut configs = topic.configs.clone();
        for change in changes {
            match change {
                ConfigChange::Set(k, v) => {
                    configs.insert(k.clone(), v.clone());
                }
                // Deleting a key that is not set, or unknown, is a no-op,
                // as in Kafka.
                ConfigChange::Delete(k) => {
                    configs.remove(k);
                }
            }
        }
        let mut updated = topic.clone();
        updated.configs = TopicConfig::canonical_overrides(&self.topic_defaults, &configs)?;
        Ok(updated)
    }

    /// Takes the changed and removed topics of a quorum view
    /// change, leaving the others as they are (the cost is what changed).
    pub fn mirror_changes(&self, changed: Vec<TopicMeta>, removed: &[String]) {
        let mut registry = self.write();
        for name in removed {
            registry.topics.remove(name);
        }
        for topic in changed {
            registry.topics.insert(topic.name.clone(), topic);
        }
    }

    /// Takes the topics from the quorum service's view.
    pub fn mirror_topics(&self, topics: Vec<TopicMeta>) {
        let mut registry = self.write();
        let changed = registry.topics.len() != topics.len()
            || topics
                .iter()
                .any(|t| registry.topics.get(&t.name) != Some(t));
        if changed {
            registry.topics = topics.into_iter().map(|t| (t.name.clone(), t)).collect();
        }
    }

    /// Notes that every shard applied view `revision`.
    pub fn set_applied_revision(&self, revision: u64) {
        use std::sync::atomic::Ordering;
        self.applied_revision.fetch_max(revision, Ordering::SeqCst);
    }

    pub fn applied_revision(&self) -> u64 {
        self.applied_revision
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The next id of the block the quorum service gave this broker, if any
    /// is left.
    pub fn take_producer_id(&self) -> Option<i64> {
        let mut ids = self.producer_ids.lock().unwrap_or_else(|e| e.into_inner());
        let id = ids.clone().next()?;
        ids.start += 1;
        Some(id)
    }

    /// A new block of producer ids from the quorum service.
    pub fn add_producer_id_block(&self, block: Range<i64>) {
        *self.producer_ids.lock().unwrap_or_else(|e| e.into_inner()) = block;
    }
}

/// Kafka's internal topics (`Topic.INTERNAL_TOPICS`): the broker creates and
/// writes them; clients may read them but not produce to, create or delete
/// them.
pub const INTERNAL_TOPICS: [&str; 2] = ["__consumer_offsets", "__transaction_state"];

pub fn is_internal_topic(name: &str) -> bool {
    INTERNAL_TOPICS.contains(&name)
}

/// Kafka's rule: 1 to 249 characters of ASCII letters, digits, '.', '_' and
/// '-', and not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<(), MetadataError> {
    model::topic_name::check(name).map_err(|why| MetadataError::InvalidTopic(name.to_string(), why))
}

/// Refuses `name` when a topic of that name exists, or one whose name
/// collides with it in Kafka's metric names.
fn check_not_taken(name: &str, topics: &BTreeMap<String, TopicMeta>) -> Result<(), MetadataError> {
    if topics.contains_key(name) {
        return Err(MetadataError::TopicAlreadyExists(name.to_string()));
    }
    match model::topic_name::colliding_topic(name, topics) {
        Some(existing) => Err(MetadataError::TopicCollision {
            name: name.to_string(),
            existing: existing.to_string(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(topics: &[(&str, i32)]) -> MetadataStore {
        let store = MetadataStore::new(TopicConfig::default());
        store.mirror_topics(
            topics
                .iter()
                .map(|&(name, partitions)| TopicMeta {
                    name: name.to_string(),
                    id: Uuid::new_v4(),
                    partitions,
                    configs: BTreeMap::new(),
                })
                .collect(),
        );
        store
    }

    #[test]
    fn names_and_counts_are_checked() {
        let store = store_with(&[("t", 2)]);
        let none = BTreeMap::new();
        for bad in ["", ".", "..", "a b", "ü", &"x".repeat(250)] {
            assert!(store.check_new_topic(bad, 1, &none).is_err(), "{bad}");
        }
        assert!(store.check_new_topic("u", 0, &none).is_err());
        assert!(store
            .check_new_topic("u", PARTITIONS_PER_TOPIC_MAX + 1, &none)
            .is_err());
        assert!(matches!(
            store.check_new_topic("t", 1, &none),
            Err(MetadataError::TopicAlreadyExists(_))
        ));
        assert!(store.check_new_topic("u", 3, &none).is_ok());
        assert!(store.check_partition_count("t", 1).is_err());
        assert!(store.check_partition_count("t", 4).is_ok());
        assert!(store.check_partition_count("missing", 4).is_err());
    }

    #[test]
    fn config_changes_are_checked_all_or_nothing() {
        let store = store_with(&[("t", 1)]);
        let bad = [
            ConfigChange::Set("retention.ms".into(), "5".into()),
            ConfigChange::Set("segment.bytes".into(), "x".into()),
        ];
        assert!(store.check_config_changes("t", &bad).is_err());
        let good = [ConfigChange::Set("retention.ms".into(), "5".into())];
        let t = store.check_config_changes("t", &good).unwrap();
        assert_eq!(t.configs["retention.ms"], "5");
        assert!(
            store.topic("t").unwrap().configs.is_empty(),
            "a check changes nothing"
        );
    }

    #[test]
    fn producer_ids_come_from_the_block_given() {
        let store = MetadataStore::new(TopicConfig::default());
        assert_eq!(store.take_producer_id(), None);
        store.add_producer_id_block(5..7);
        assert_eq!(store.take_producer_id(), Some(5));
        assert_eq!(store.take_producer_id(), Some(6));
        assert_eq!(store.take_producer_id(), None);
    }
}
