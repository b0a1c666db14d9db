//! Broker and topic configuration.
//!
//! Owns the typed view of the TOML config file (keys use Kafka's names, e.g.
//! `log.dirs`, `num.partitions`, `log.segment.bytes`) and of per-topic configs
//! (`segment.bytes`, `retention.ms`, ...). Built on the main thread before any
//! shard starts; every shard gets an immutable copy. `listeners` reads the
//! listener keys, `tls` the `ssl.*` and `sasl.*` keys of secured listeners,
//! `inter_broker` how this broker connects to the others, `jaas` Kafka's
//! login module entries, `quorum_tls` the
//! `quorum.ssl.*` keys of the broker's quorum client.
pub mod inter_broker;
pub mod jaas;
pub mod listeners;
pub mod quorum_tls;
pub mod tls;

pub use listeners::{Listener, Listeners, SecurityProtocol};
pub use model::topic_config::{
    broker_synonym, kafka_synonym, CompressionLevels, ConfigOrigin, FlushPolicy, ProduceSettings,
    TimestampType, TopicCompression, TopicConfig, TopicConfigDef, TopicConfigError,
    TOPIC_CONFIG_DEFS,
};
pub use tls::{SecurityKeys, TlsSettings};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key {key}: {message}")]
    Invalid { key: String, message: String },
}

/// The broker's configuration. Field names are Kafka's where Kafka has one.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    #[serde(rename = "node.id")]
    pub node_id: i32,
    /// Where the broker listens for Kafka clients: `NAME://HOST:PORT,...`
    /// (`listeners::parse`).
    #[serde(rename = "listeners")]
    pub listen: String,
    /// The addresses clients are told to use; defaults to `listeners`.
    #[serde(rename = "advertised.listeners")]
    pub advertised: Option<String>,
    /// Listener name to security protocol, `NAME:PROTOCOL,...`.
    #[serde(rename = "listener.security.protocol.map")]
    pub listener_protocol_map: Option<String>,
    /// The listener other brokers replicate over.
    #[serde(rename = "inter.broker.listener.name")]
    pub inter_broker_listener_name: Option<String>,
    /// Picks the inter-broker listener by its protocol instead.
    #[serde(rename = "security.inter.broker.protocol")]
    pub inter_broker_protocol: Option<String>,
    /// The `ssl.*`, `sasl.*` and `listener.name.*` keys (`tls::SecurityKeys`).
    #[serde(skip)]
    pub security: SecurityKeys,
    #[serde(rename = "log.dirs")]
    pub data_dir: PathBuf,
    /// Number of shards (executors); 0 means one per available core.
    #[serde(rename = "num.shards")]
    pub shards: usize,
    #[serde(rename = "auto.create.topics.enable")]
    pub auto_create_topics: bool,
    #[serde(rename = "num.partitions")]
    pub default_partitions: i32,
    #[serde(rename = "message.max.bytes")]
    pub message_max_bytes: i32,
    #[serde(rename = "log.segment.bytes")]
    pub segment_bytes: i64,
    /// Appends are refused (KAFKA_STORAGE_ERROR) while the data dir's
    /// filesystem has less free space than this, so that a full disk is
    /// never met mid-write and deletes still have room. -1: 5% of the
    /// filesystem, at most 1 GiB.
    #[serde(rename = "log.disk.free.min.bytes")]
    pub disk_free_min_bytes: i64,
    #[serde(rename = "log.roll.ms")]
    pub segment_ms: i64,
    #[serde(rename = "log.retention.ms")]
    pub retention_ms: i64,
    #[serde(rename = "log.retention.bytes")]
    pub retention_bytes: i64,
    #[serde(rename = "log.retention.check.interval.ms")]
    pub retention_check_interval_ms: u64,
    #[serde(rename = "log.index.interval.bytes")]
    pub index_interval_bytes: u32,
    /// Tidemark's flush policy on the produce path.
    #[serde(rename = "log.flush.policy")]
    pub flush_policy: FlushPolicy,
    /// Largest request frame accepted; larger frames close the connection.
    #[serde(rename = "socket.request.max.bytes")]
    pub socket_request_max_bytes: u32,
    /// Per-partition in-memory batch cache used by Fetch.
    #[serde(rename = "log.cache.bytes.per.partition")]
    pub cache_bytes_per_partition: usize,
    /// All batch caches of one shard together: with many partitions each
    /// gets `min(per partition, per shard / partitions on the shard)`.
    #[serde(rename = "log.cache.bytes.per.shard")]
    pub cache_bytes_per_shard: usize,
    /// Most O_DIRECT writes of one partition's log in flight at once.
    #[serde(rename = "log.writes.in.flight")]
    pub writes_in_flight: usize,
    /// Most requests one connection may have in flight (pipelining depth).
    #[serde(rename = "max.inflight.requests.per.connection")]
    pub max_inflight_per_connection: usize,
    /// Most bytes one connection may hold in requests being handled and
    /// answers not yet sent; past it the broker stops reading its requests.
    #[serde(rename = "connection.inflight.max.bytes")]
    pub connection_inflight_max_bytes: usize,
    /// The same bound for all connections of one shard together (each
    /// connection may still hold a small fair share beyond it).
    #[serde(rename = "shard.inflight.max.bytes")]
    pub shard_inflight_max_bytes: usize,
    /// Most bytes a Fetch answer carries (Kafka's broker `fetch.max.bytes`).
    #[serde(rename = "fetch.max.bytes")]
    pub fetch_max_bytes: i32,
    /// Most client connections the broker keeps open at once.
    #[serde(rename = "max.connections")]
    pub max_connections: usize,
    /// Most client connections from one IP address.
    #[serde(rename = "max.connections.per.ip")]
    pub max_connections_per_ip: usize,
    /// A connection with nothing read, nothing written and no request in
    /// process for this long is closed.
    #[serde(rename = "connections.max.idle.ms")]
    pub connections_max_idle_ms: u64,
    /// A failed SASL authentication is answered after this delay, so that
    /// guessing passwords is slow (Kafka's key and default).
    #[serde(rename = "connection.failed.authentication.delay.ms")]
    pub failed_authentication_delay_ms: u64,
    /// A SASL session lasts this long; the client must log in again on
    /// the same connection before it ends (KIP-368). 0: forever.
    #[serde(rename = "connections.max.reauth.ms")]
    pub connections_max_reauth_ms: u64,
    /// Kafka's authorizer switch: empty (no authorization) or
    /// `org.apache.kafka.metadata.authorizer.StandardAuthorizer`, which
    /// turns on the ACLs kept in the quorum.
    #[serde(rename = "authorizer.class.name")]
    pub authorizer_class_name: String,
    /// Principals allowed everything, separated by semicolons
    /// (`User:admin;User:broker`), as Kafka writes them.
    #[serde(rename = "super.users")]
    pub super_users: String,
    /// Whether a resource no ACL names is open to everyone (Kafka's default:
    /// no).
    #[serde(rename = "allow.everyone.if.no.acl.found")]
    pub allow_everyone_if_no_acl_found: bool,
    /// `super.users` and `allow.everyone.if.no.acl.found` as the authorizer
    /// reads them; `None` when `authorizer.class.name` is empty.
    #[serde(skip)]
    pub authorizer: Option<model::acl::AuthorizerRules>,
    /// Once the first byte of a request frame arrives, the whole frame must
    /// arrive within this time, or the connection is closed (slowloris).
    #[serde(rename = "socket.request.read.timeout.ms")]
    pub socket_request_read_timeout_ms: u64,
    /// File descriptors kept free for the logs (segments, indexes,
    /// checkpoints): a connection accepted into the last ones is closed.
    #[serde(rename = "log.fd.reserve")]
    pub log_fd_reserve: usize,
    #[serde(rename = "cluster.id")]
    pub cluster_id: String,
    /// Partitions of `__consumer_offsets`, fixed when it is first created.
    #[serde(rename = "offsets.topic.num.partitions")]
    pub offsets_topic_partitions: i32,
    #[serde(rename = "group.min.session.timeout.ms")]
    pub group_min_session_timeout_ms: i32,
    #[serde(rename = "group.max.session.timeout.ms")]
    pub group_max_session_timeout_ms: i32,
    /// How long a group that starts from empty waits for more members.
    #[serde(rename = "group.initial.rebalance.delay.ms")]
    pub group_initial_rebalance_delay_ms: u64,
    /// How long an idle shard spins before it parks (0: park at once).
    /// Spinning answers cross-shard messages faster but burns CPU.
    #[serde(rename = "shard.spin.before.park.us")]
    pub spin_before_park_us: u64,
    /// The quorum service's client endpoints, `host:port,host:port,...`.
    /// Empty: the broker is its own single-node cluster (no replication).
    #[serde(rename = "quorum.endpoints")]
    pub quorum_endpoints: String,
    /// The quorum service's shared secret, if it has one.
    #[serde(rename = "quorum.secret")]
    pub quorum_secret: Option<String>,
    /// Set by `tidemark dev` when it runs its own single-node quorum: the
    /// broker is alone, so it never connects to another.
    #[serde(skip)]
    pub embedded_quorum: bool,
    /// Mutual TLS to the quorum, with KIP-515's keys (`zookeeper.` becomes
    /// `quorum.`): `quorum_tls::QuorumTlsKeys`.
    #[serde(flatten)]
    pub quorum_tls: quorum_tls::QuorumTlsKeys,
    /// This broker's rack: the controller spreads replicas over racks.
    #[serde(rename = "broker.rack")]
    pub rack: Option<String>,
    /// How often the broker renews its session with the quorum service.
    #[serde(rename = "broker.heartbeat.interval.ms")]
    pub heartbeat_interval_ms: u64,
    /// A follower that has not caught up for this long leaves the ISR.
    #[serde(rename = "replica.lag.time.max.ms")]
    pub replica_lag_time_max_ms: i64,
    /// How long a follower's fetch waits at the leader for new records.
    #[serde(rename = "replica.fetch.wait.max.ms")]
    pub replica_fetch_wait_max_ms: i32,
    /// Replication factor of auto-created topics and of CreateTopics that
    /// leave it to the broker (-1).
    #[serde(rename = "default.replication.factor")]
    pub default_replication_factor: i16,
    /// Replication factor of `__consumer_offsets` in a cluster (fewer when
    /// fewer brokers are alive when it is created).
    #[serde(rename = "offsets.topic.replication.factor")]
    pub offsets_topic_replication_factor: i16,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        let cache_bytes_per_shard = default_cache_bytes_per_shard();
        BrokerConfig {
            node_id: 1,
            listen: "127.0.0.1:9092".to_string(),
            advertised: None,
            listener_protocol_map: None,
            inter_broker_listener_name: None,
            inter_broker_protocol: None,
            security: SecurityKeys::default(),
            data_dir: PathBuf::from("./data"),
            shards: 0,
            auto_create_topics: true,
            default_partitions: 1,
            message_max_bytes: 1_048_588,
            segment_bytes: 1 << 30,
            disk_free_min_bytes: -1,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            retention_check_interval_ms: 300_000,
            index_interval_bytes: 4096,
            flush_policy: FlushPolicy::AcksAll,
            socket_request_max_bytes: 100 * 1024 * 1024,
            cache_bytes_per_partition: cache_bytes_per_shard,
            cache_bytes_per_shard,
            writes_in_flight: 4,
            max_inflight_per_connection: 64,
            connection_inflight_max_bytes: 64 << 20,
            shard_inflight_max_bytes: default_shard_inflight_max_bytes(),
            fetch_max_bytes: 57_671_680,
            max_connections: 10_000,
            max_connections_per_ip: i32::MAX as usize,
            connections_max_idle_ms: 600_000,
            socket_request_read_timeout_ms: 30_000,
            failed_authentication_delay_ms: 100,
            connections_max_reauth_ms: 0,
            authorizer_class_name: String::new(),
            super_users: String::new(),
            allow_everyone_if_no_acl_found: false,
            authorizer: None,
            log_fd_reserve: 1024,
            cluster_id: "tidemark-dev-cluster".to_string(),
            offsets_topic_partitions: 50,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_initial_rebalance_delay_ms: 3_000,
            spin_before_park_us: 0,
            quorum_endpoints: String::new(),
            quorum_secret: None,
            embedded_quorum: false,
            quorum_tls: quorum_tls::QuorumTlsKeys::default(),
            rack: None,
            heartbeat_interval_ms: 2_000,
            replica_lag_time_max_ms: 30_000,
            replica_fetch_wait_max_ms: 500,
            default_replication_factor: 1,
            offsets_topic_replication_factor: 3,
        }
    }
}

impl BrokerConfig {
    /// `log.disk.free.min.bytes` for the filesystem of `dir` (the default
    /// depends on its size).
    pub fn disk_free_min_bytes_for(&self, dir: &std::path::Path) -> u64 {
        const DEFAULT_MAX_BYTES: u64 = 1 << 30;
        if self.disk_free_min_bytes >= 0 {
            return self.disk_free_min_bytes as u64;
        }
        let total = storage::disk_space::total_bytes(dir).unwrap_or(0);
        (total / 20).min(DEFAULT_MAX_BYTES)
    }

    /// The quorum endpoints, or none when the broker stands alone.
    pub fn quorum_endpoints(&self) -> Vec<String> {
        self.quorum_endpoints
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Whether this broker is part of a cluster run by a quorum service.
    pub fn in_cluster(&self) -> bool {
        !self.quorum_endpoints().is_empty()
    }

    /// Whether other brokers may share this broker's cluster: a quorum
    /// service of its own, not `tidemark dev`'s embedded one.
    pub fn has_peers(&self) -> bool {
        self.in_cluster() && !self.embedded_quorum
    }

    /// Reads a TOML file. Keys are Kafka's dotted names, quoted in TOML:
    /// `"log.dirs" = "/var/lib/tidemark"`.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let parse_error = |message: String| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        };
        let table: toml::Table = toml::from_str(&text).map_err(|e| parse_error(e.to_string()))?;
        Self::from_table(table).map_err(parse_error)
    }

    /// The config of a TOML table: the security keys go to `security`, the
    /// others to the typed fields.
    fn from_table(mut table: toml::Table) -> Result<Self, String> {
        let claimed: Vec<String> = table
            .keys()
            .filter(|k| SecurityKeys::claims(k))
            .cloned()
            .collect();
        let mut security = SecurityKeys::default();
        for key in claimed {
            let value = table.remove(&key).expect("key listed from this table");
            let text = match value {
                toml::Value::String(s) => s,
                other => other.to_string(),
            };
            security.insert(key, text);
        }
        let mut config: BrokerConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())?;
        config.security = security;
        config.authorizer = config.authorizer_rules()?;
        config.quorum_tls.load().map_err(|e| e.to_string())?;
        Ok(config)
    }

    /// Kafka's StandardAuthorizer (and the class name of Kafka's older,
    /// ZooKeeper-era authorizer, which read the same ACLs) turn on ACLs;
    /// any other class cannot be loaded here and is refused.
    fn authorizer_rules(&self) -> Result<Option<model::acl::AuthorizerRules>, String> {
        const KNOWN: [&str; 2] = [
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "kafka.security.authorizer.AclAuthorizer",
        ];
        let class = self.authorizer_class_name.trim();
        if class.is_empty() {
            return Ok(None);
        }
        if !KNOWN.contains(&class) {
            return Err(format!(
                "authorizer.class.name: {class} is not an authorizer Tidemark has; use {}",
                KNOWN[0]
            ));
        }
        let super_users = self
            .super_users
            .split(';')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(String::from)
            .collect::<Vec<_>>();
        if let Some(bad) = super_users.iter().find(|u| !u.contains(':')) {
            return Err(format!(
                "super.users: {bad} is not a principal (expected User:name)"
            ));
        }
        Ok(Some(model::acl::AuthorizerRules {
            super_users,
            allow_if_no_acl: self.allow_everyone_if_no_acl_found,
        }))
    }

    /// Applies `key=value` overrides given on the command line, with the same
    /// keys and value syntax as the file.
    pub fn apply_overrides(&mut self, overrides: &[String]) -> Result<(), ConfigError> {
        if overrides.is_empty() {
            return Ok(());
        }
        let mut table = toml::Table::new();
        // The same Kafka key names serialize the current values.
        let current = toml::Value::try_from(&*self).map_err(|e| ConfigError::Invalid {
            key: "*".into(),
            message: e.to_string(),
        })?;
        if let toml::Value::Table(t) = current {
            table.extend(t);
        }
        let mut security = self.security.clone();
        for item in overrides {
            let (key, raw) = item.split_once('=').ok_or_else(|| ConfigError::Invalid {
                key: item.clone(),
                message: "expected key=value".into(),
            })?;
            let key = key.trim().to_string();
            if SecurityKeys::claims(&key) {
                // Kept as given: a password may look like a number.
                security.insert(key, raw.trim().to_string());
            } else {
                table.insert(key, parse_override_value(raw));
            }
        }
        let mut config = Self::from_table(table).map_err(|message| ConfigError::Invalid {
            key: "--set".into(),
            message,
        })?;
        config.security = security;
        *self = config;
        Ok(())
    }

    /// Checks values that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: key.to_string(),
            message: message.to_string(),
        };
        if self.default_partitions < 1 {
            return Err(invalid("num.partitions", "must be at least 1"));
        }
        if self.segment_bytes < 14 {
            return Err(invalid("log.segment.bytes", "must be at least 14"));
        }
        if self.message_max_bytes < 0 {
            return Err(invalid("message.max.bytes", "must not be negative"));
        }
        if self.index_interval_bytes == 0 {
            return Err(invalid("log.index.interval.bytes", "must be positive"));
        }
        if self.max_inflight_per_connection == 0 {
            return Err(invalid(
                "max.inflight.requests.per.connection",
                "must be positive",
            ));
        }
        self.validate_connection_limits()?;
        if !(1..=model::limits::PARTITIONS_PER_TOPIC_MAX).contains(&self.offsets_topic_partitions) {
            return Err(invalid(
                "offsets.topic.num.partitions",
                "must be at least 1",
            ));
        }
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return Err(invalid(
                "group.min.session.timeout.ms",
                "must not exceed group.max.session.timeout.ms",
            ));
        }
        self.validate_listeners()?;
        self.quorum_tls.check(self.in_cluster())?;
        Ok(())
    }

    /// The listeners parse, their security keys are known, and every
    /// listener's TLS and SASL settings are complete.
    fn validate_listeners(&self) -> Result<(), ConfigError> {
        let listeners = self.listeners()?;
        self.security.validate(&listeners)?;
        for listener in listeners.all() {
            if listener.protocol.uses_sasl() {
                tls::SaslSettings::for_listener(&self.security, listener)?;
            }
            if listener.protocol.uses_tls() {
                TlsSettings::for_listener(&self.security, listener)?;
            }
        }
        if self.in_cluster() {
            self.inter_broker_client()?;
        }
        Ok(())
    }

    /// How this broker's followers connect to their leaders.
    pub fn inter_broker_client(&self) -> Result<inter_broker::InterBrokerClient, ConfigError> {
        let listeners = self.listeners()?;
        inter_broker::InterBrokerClient::from_config(&self.security, listeners.inter_broker())
    }

    /// The listeners (`listeners::parse`).
    pub fn listeners(&self) -> Result<Listeners, ConfigError> {
        listeners::parse(listeners::ListenerKeys {
            listeners: &self.listen,
            advertised: self.advertised.as_deref(),
            protocol_map: self.listener_protocol_map.as_deref(),
            inter_broker_name: self.inter_broker_listener_name.as_deref(),
            inter_broker_protocol: self.inter_broker_protocol.as_deref(),
        })
    }

    fn validate_connection_limits(&self) -> Result<(), ConfigError> {
        let positive = [
            (
                "connection.inflight.max.bytes",
                self.connection_inflight_max_bytes,
            ),
            ("shard.inflight.max.bytes", self.shard_inflight_max_bytes),
            ("max.connections", self.max_connections),
            ("max.connections.per.ip", self.max_connections_per_ip),
            (
                "connections.max.idle.ms",
                self.connections_max_idle_ms as usize,
            ),
            (
                "socket.request.read.timeout.ms",
                self.socket_request_read_timeout_ms as usize,
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key: key.to_string(),
                    message: "must be positive".to_string(),
                });
            }
        }
        if self.fetch_max_bytes < 1024 {
            return Err(ConfigError::Invalid {
                key: "fetch.max.bytes".to_string(),
                message: "must be at least 1024".to_string(),
            });
        }
        Ok(())
    }

    /// What the connection pipeline takes from the config.
    pub fn connection_settings(&self) -> ConnectionSettings {
        ConnectionSettings {
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            idle_ms: self.connections_max_idle_ms,
            frame_timeout_ms: self.socket_request_read_timeout_ms,
            fd_reserve: self.log_fd_reserve,
            connection_inflight_max_bytes: self.connection_inflight_max_bytes,
            shard_inflight_max_bytes: self.shard_inflight_max_bytes,
        }
    }

    /// The (host, port) other brokers and the quorum know this broker by:
    /// the inter-broker listener's advertised address.
    pub fn advertised_addr(&self) -> Result<(String, i32), ConfigError> {
        let listeners = self.listeners()?;
        let own = listeners.inter_broker();
        Ok((own.advertised_host.clone(), own.advertised_port as i32))
    }

    /// The topic config a new topic gets when it sets nothing itself.
    pub fn default_topic_config(&self) -> TopicConfig {
        TopicConfig {
            segment_bytes: self.segment_bytes,
            segment_ms: self.segment_ms,
            retention_bytes: self.retention_bytes,
            retention_ms: self.retention_ms,
            max_message_bytes: self.message_max_bytes,
            ..TopicConfig::default()
        }
    }
}

/// The limits and timeouts of client connections (see `BrokerConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionSettings {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub idle_ms: u64,
    pub frame_timeout_ms: u64,
    pub fd_reserve: usize,
    pub connection_inflight_max_bytes: usize,
    pub shard_inflight_max_bytes: usize,
}

/// An eighth of the memory this process may use, split over the CPUs, and at
/// least 256 MiB: what a shard's connections may hold in requests and answers.
fn default_shard_inflight_max_bytes() -> usize {
    const FLOOR_BYTES: u64 = 256 << 20;
    let memory = usable_memory_bytes().unwrap_or(4 << 30);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    (memory / 8 / cpus).max(FLOOR_BYTES) as usize
}

/// A quarter of the memory this process may use, split over the CPUs (one
/// shard each). O_DIRECT bypasses the page cache, so the batch cache is what
/// keeps a recent backlog in memory, as the page cache does for Apache Kafka.
fn default_cache_bytes_per_shard() -> usize {
    const FLOOR_BYTES: u64 = 64 << 20;
    let memory = usable_memory_bytes().unwrap_or(4 << 30);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    (memory / 4 / cpus).max(FLOOR_BYTES) as usize
}

/// Physical memory, or the cgroup (v2) limit when one is set and smaller.
fn usable_memory_bytes() -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    let (pages, page_size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let physical = (pages > 0 && page_size > 0).then(|| pages as u64 * page_size as u64)?;
    let cgroup_limit = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok());
    Some(cgroup_limit.map_or(physical, |limit| limit.min(physical)))
}

/// `--set key=value`: integers and booleans keep their type, anything else is a string.
fn parse_override_value(raw: &str) -> toml::Value {
    let raw = raw.trim();
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    match raw {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_use_kafka_names() {
        let mut c = BrokerConfig::default();
        c.apply_overrides(&[
            "num.partitions=3".into(),
            "auto.create.topics.enable=false".into(),
            "log.dirs=/tmp/x".into(),
        ])
        .unwrap();
        assert_eq!(c.default_partitions, 3);
        assert!(!c.auto_create_topics);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn the_example_config_in_deploy_parses() {
        let c: BrokerConfig =
            toml::from_str(include_str!("../../../../deploy/broker.toml")).unwrap();
        c.validate().unwrap();
        assert_eq!(c.default_partitions, 3);
        assert_eq!(c.flush_policy, FlushPolicy::AcksAll);
    }

    #[test]
    fn unknown_override_key_is_refused() {
        let mut c = BrokerConfig::default();
        assert!(c.apply_overrides(&["no.such.key=1".into()]).is_err());
    }

    #[test]
    fn advertised_address_replaces_wildcard() {
        let c = BrokerConfig {
            listen: "0.0.0.0:9092".into(),
            ..BrokerConfig::default()
        };
        assert_eq!(c.advertised_addr().unwrap(), ("127.0.0.1".into(), 9092));
    }

    #[test]
    fn security_keys_from_the_file_and_from_overrides() {
        let table: toml::Table = toml::from_str(
            r#"
            "listeners" = "PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9093"
            "ssl.keystore.location" = "/etc/tidemark/broker.pem"
            "listener.name.ssl.ssl.client.auth" = "none"
            "num.partitions" = 2
            "#,
        )
        .unwrap();
        let mut c = BrokerConfig::from_table(table).unwrap();
        assert_eq!(c.default_partitions, 2);
        c.apply_overrides(&["ssl.key.password=1234".into(), "num.partitions=4".into()])
            .unwrap();
        assert_eq!(c.default_partitions, 4);
        let ssl = c.listeners().unwrap().get("SSL").cloned().unwrap();
        let tls = TlsSettings::for_listener(&c.security, &ssl).unwrap();
        assert_eq!(tls.key_password.as_deref(), Some("1234"));
        c.validate().unwrap();
    }

    #[test]
    fn a_sasl_ssl_listener_needs_its_keystore_and_known_mechanisms() {
        let mut c = BrokerConfig::default();
        c.apply_overrides(&["listeners=SASL_SSL://127.0.0.1:19801".into()])
            .unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("needs a keystore"), "{err}");
        c.apply_overrides(&[
            "listeners=SASL_PLAINTEXT://127.0.0.1:19801".into(),
            "sasl.enabled.mechanisms=GSSAPI".into(),
        ])
        .unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("GSSAPI (Kerberos) is not built"), "{err}");
        c.apply_overrides(&[
            "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512".into(),
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=x required;".into(),
        ])
        .unwrap();
        c.validate().unwrap();
    }
}
