//! The cluster's topic registry: which topics exist, their ids, partition
//! counts and config overrides.
//!
//! In this single-broker form it is a JSON file under
//! `<data_dir>/__cluster_metadata/`, shared by every shard behind a lock that
//! is only taken on the control plane (topic admin and Metadata requests),
//! never on the produce or fetch path. The quorum service replaces the file
//! as the source of truth when clusters arrive (issue 5).
//!
//! It also hands out producer ids (InitProducerId) in blocks: the file keeps
//! the first id of the next unallocated block, so ids stay unique across
//! restarts with one write per `PRODUCER_ID_BLOCK_SIZE` ids.
use crate::config::{TopicConfig, TopicConfigError};
use model::limits::PARTITIONS_PER_TOPIC_MAX;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use thiserror::Error;
use uuid::Uuid;

/// Producer ids reserved per write of the registry: Kafka's
/// `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

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
    #[error("invalid replication factor {0}: this broker holds one replica per partition")]
    InvalidReplicationFactor(i16),
    #[error(transparent)]
    InvalidConfig(#[from] TopicConfigError),
    #[error("cannot persist topic metadata to {path}: {source}")]
    Persist {
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

#[derive(Debug, Default, Serialize, Deserialize)]
struct Registry {
    topics: BTreeMap<String, TopicMeta>,
    /// The first producer id of the next block not handed out yet (absent in
    /// files written before producer ids existed: 0).
    #[serde(default)]
    next_producer_id_block: i64,
}

/// A change to one topic config: set a value, or return to the default.
#[derive(Debug, Clone)]
pub enum ConfigChange {
    Set(String, String),
    Delete(String),
}

pub struct MetadataStore {
    /// In a cluster: the newest quorum view every shard has applied.
    applied_revision: std::sync::atomic::AtomicU64,
    path: PathBuf,
    topic_defaults: TopicConfig,
    registry: RwLock<Registry>,
    /// The ids left in the block this process reserved last.
    producer_ids: Mutex<Range<i64>>,
}

impl MetadataStore {
    /// Loads the registry from `data_dir`, or starts an empty one.
    pub fn open(data_dir: &Path, topic_defaults: TopicConfig) -> Result<Self, MetadataError> {
        let dir = data_dir.join("__cluster_metadata");
        let path = dir.join("topics.json");
        std::fs::create_dir_all(&dir).map_err(|source| MetadataError::Persist {
            path: dir.clone(),
            source,
        })?;
        let registry = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| MetadataError::Corrupt {
                path: path.clone(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Registry::default(),
            Err(source) => return Err(MetadataError::Persist { path, source }),
        };
        Ok(MetadataStore {
            applied_revision: std::sync::atomic::AtomicU64::new(0),
            path,
            topic_defaults,
            registry: RwLock::new(registry),
            producer_ids: Mutex::new(0..0),
        })
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
        replication_factor: i16,
        configs: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, MetadataError> {
        validate_topic_name(name)?;
        if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
            return Err(MetadataError::InvalidPartitions(format!(
                "{partitions} is not between 1 and {PARTITIONS_PER_TOPIC_MAX}"
            )));
        }
        if replication_factor != 1 && replication_factor != -1 {
            return Err(MetadataError::InvalidReplicationFactor(replication_factor));
        }
        let canonical = TopicConfig::canonical_overrides(&self.topic_defaults, configs)?;
        check_not_taken(name, &self.read().topics)?;
        Ok(canonical)
    }

    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicMeta, MetadataError> {
        let configs = self.check_new_topic(name, partitions, replication_factor, &configs)?;
        let mut registry = self.write();
        check_not_taken(name, &registry.topics)?;
        let topic = TopicMeta {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            configs,
        };
        registry.topics.insert(name.to_string(), topic.clone());
        self.persist(&registry).inspect_err(|_| {
            registry.topics.remove(name);
        })?;
        Ok(topic)
    }

    pub fn delete_topic(&self, name: &str) -> Result<TopicMeta, MetadataError> {
        let mut registry = self.write();
        let topic = registry
            .topics
            .remove(name)
            .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        self.persist(&registry).inspect_err(|_| {
            registry.topics.insert(name.to_string(), topic.clone());
        })?;
        Ok(topic)
    }

    /// Grows a topic to `total` partitions (Kafka never shrinks one).
    pub fn add_partitions(
        &self,
        name: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<TopicMeta, MetadataError> {
        let mut registry = self.write();
        let topic = registry
            .topics
            .get_mut(name)
            .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        if total <= topic.partitions || total > PARTITIONS_PER_TOPIC_MAX {
            return Err(MetadataError::InvalidPartitions(format!(
                "topic {name} has {} partitions; the new count must be larger and at most {PARTITIONS_PER_TOPIC_MAX}, not {total}",
                topic.partitions
            )));
        }
        if validate_only {
            return Ok(topic.clone());
        }
        let before = topic.partitions;
        topic.partitions = total;
        let updated = topic.clone();
        self.persist(&registry).inspect_err(|_| {
            if let Some(t) = registry.topics.get_mut(name) {
                t.partitions = before;
            }
        })?;
        Ok(updated)
    }

    /// Applies config changes to a topic, all or nothing.
    pub fn alter_topic_configs(
        &self,
        name: &str,
        changes: &[ConfigChange],
        validate_only: bool,
    ) -> Result<TopicMeta, MetadataError> {
        let mut registry = self.write();
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
        if validate_only {
            return Ok(updated);
        }
        let previous = registry.topics.insert(name.to_string(), updated.clone());
        self.persist(&registry).inspect_err(|_| {
            if let Some(p) = previous.clone() {
                registry.topics.insert(name.to_string(), p);
            }
        })?;
        Ok(updated)
    }

    /// In a cluster: takes the changed and removed topics of a quorum view
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

    /// In a cluster: takes the topics from the quorum service's view (the
    /// local file is not the source of truth there and is left alone).
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

    /// In a cluster: notes that every shard applied view `revision`.
    pub fn set_applied_revision(&self, revision: u64) {
        use std::sync::atomic::Ordering;
        self.applied_revision.fetch_max(revision, Ordering::SeqCst);
    }

    pub fn applied_revision(&self) -> u64 {
        self.applied_revision
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The first producer id this registry has not handed out.
    pub fn next_producer_id_block(&self) -> i64 {
        self.read().next_producer_id_block
    }

    /// In a cluster: the next id of the block the quorum service gave this
    /// broker, if any is left.
    pub fn take_producer_id(&self) -> Option<i64> {
        let mut ids = self.producer_ids.lock().unwrap_or_else(|e| e.into_inner());
        let id = ids.clone().next()?;
        ids.start += 1;
        Some(id)
    }

    /// In a cluster: a new block of producer ids from the quorum service.
    pub fn add_producer_id_block(&self, block: Range<i64>) {
        *self.producer_ids.lock().unwrap_or_else(|e| e.into_inner()) = block;
    }

    /// A producer id never handed out before, by this process or an earlier
    /// one on the same data dir. Reserves (and persists) a new block when the
    /// current one is used up.
    pub fn allocate_producer_id(&self) -> Result<i64, MetadataError> {
        let mut ids = self.producer_ids.lock().unwrap_or_else(|e| e.into_inner());
        if ids.is_empty() {
            *ids = self.reserve_producer_id_block()?;
        }
        let id = ids.start;
        ids.start += 1;
        Ok(id)
    }

    fn reserve_producer_id_block(&self) -> Result<Range<i64>, MetadataError> {
        let mut registry = self.write();
        let start = registry.next_producer_id_block.max(0);
        let end = start
            .checked_add(PRODUCER_ID_BLOCK_SIZE)
            .ok_or(MetadataError::ProducerIdsExhausted)?;
        registry.next_producer_id_block = end;
        self.persist(&registry).inspect_err(|_| {
            registry.next_producer_id_block = start;
        })?;
        Ok(start..end)
    }

    fn persist(&self, registry: &Registry) -> Result<(), MetadataError> {
        let bytes = serde_json::to_vec_pretty(registry).map_err(|e| MetadataError::Corrupt {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        fsutil::write_file_atomically(&self.path, &bytes).map_err(|source| MetadataError::Persist {
            path: self.path.clone(),
            source,
        })
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

    #[test]
    fn topics_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path(), TopicConfig::default()).unwrap();
        let mut cfg = BTreeMap::new();
        cfg.insert("retention.ms".into(), "1000".into());
        let t = store.create_topic("orders", 3, 1, cfg).unwrap();
        assert!(matches!(
            store.create_topic("orders", 1, 1, BTreeMap::new()),
            Err(MetadataError::TopicAlreadyExists(_))
        ));
        let again = MetadataStore::open(dir.path(), TopicConfig::default()).unwrap();
        assert_eq!(again.topic("orders").unwrap(), t);
        assert_eq!(again.topic_config(&t).retention_ms, 1000);
    }

    #[test]
    fn producer_ids_are_unique_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path(), TopicConfig::default()).unwrap();
        let first: Vec<i64> = (0..1500)
            .map(|_| store.allocate_producer_id().unwrap())
            .collect();
        assert_eq!(first, (0..1500).collect::<Vec<_>>());
        store.create_topic("t", 1, 1, BTreeMap::new()).unwrap();
        drop(store);
        let again = MetadataStore::open(dir.path(), TopicConfig::default()).unwrap();
        // The rest of the second block is skipped: it may have been handed out.
        assert_eq!(again.allocate_producer_id().unwrap(), 2000);
        assert!(again.topic("t").is_some());
    }

    #[test]
    fn names_and_counts_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path(), TopicConfig::default()).unwrap();
        for bad in ["", ".", "..", "a b", "ü", &"x".repeat(250)] {
            assert!(
                store.create_topic(bad, 1, 1, BTreeMap::new()).is_err(),
                "{bad}"
            );
        }
        assert!(store.create_topic("t", 0, 1, BTreeMap::new()).is_err());
        assert!(store.create_topic("t", 1, 3, BTreeMap::new()).is_err());
        store.create_topic("t", 2, 1, BTreeMap::new()).unwrap();
        assert!(store.add_partitions("t", 1, false).is_err());
        assert_eq!(store.add_partitions("t", 4, false).unwrap().partitions, 4);
    }

    #[test]
    fn config_changes_are_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path(), TopicConfig::default()).unwrap();
        store.create_topic("t", 1, 1, BTreeMap::new()).unwrap();
        let bad = [
            ConfigChange::Set("retention.ms".into(), "5".into()),
            ConfigChange::Set("segment.bytes".into(), "x".into()),
        ];
        assert!(store.alter_topic_configs("t", &bad, false).is_err());
        assert!(store.topic("t").unwrap().configs.is_empty());
        let good = [ConfigChange::Set("retention.ms".into(), "5".into())];
        let t = store.alter_topic_configs("t", &good, false).unwrap();
        assert_eq!(t.configs["retention.ms"], "5");
    }
}
