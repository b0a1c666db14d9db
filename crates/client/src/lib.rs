//! A small blocking Kafka client over `std::net::TcpStream`, used by the
//! `tidemark topic / produce / consume` commands. It runs on the CLI's main
//! thread, never on a shard, and speaks to any Kafka-compatible cluster.
//!
//! It owns: ApiVersions negotiation per connection, Metadata (brokers,
//! leaders, topic ids), one connection per broker id, routing of Produce,
//! Fetch and ListOffsets to partition leaders with one retry after a Metadata
//! refresh on stale-leadership errors, and the admin APIs (CreateTopics,
//! DeleteTopics, DescribeConfigs), and the group side: FindCoordinator
//! routing, the group admin APIs and offsets ([`group`]), the consumer
//! protocol with the range assignor ([`consumer_protocol`]) and a classic
//! group member ([`group_member`]). Framing and encoding use `kafka-protocol`;
//! response frames are bounded by [`conn::FRAME_BYTES_MAX`].

pub mod acls;
pub mod admin;
pub mod conn;
pub mod consumer;
pub mod consumer_protocol;
#[cfg(test)]
mod e2e_tests;
pub mod error;
pub mod group;
pub mod group_member;
pub mod metadata;
pub mod partitioner;
pub mod producer;
pub mod records;
pub mod security;
pub mod users;

use std::collections::HashMap;
use std::time::Duration;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};

pub use admin::{ConfigEntry, NewTopic};
pub use conn::{ApiVersionTable, Connection, FRAME_BYTES_MAX};
pub use consumer::{FetchOptions, FetchPosition, FetchedData, OffsetSpec, PartitionFetch};
pub use error::{error_name, ClientError};
pub use group::{GroupDescription, GroupListing, MemberDescription, OffsetKey};
pub use group_member::{GroupMember, GroupMemberConfig};
pub use metadata::{BrokerInfo, ClusterMetadata, PartitionInfo, TopicInfo};
pub use partitioner::{murmur2, partition_for_key, Partitioner};
pub use producer::{Acks, PartitionProduceResult};
pub use records::{ConsumerRecord, DecodedRecords, ProducerRecord};
pub use users::{ScramUpsertion, ScramUser};

/// The default bootstrap server of every command.
pub const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9092";

/// How long to wait before refreshing Metadata after a stale-leader error.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// How many times `topic` asks while a new topic has no leader yet.
const TOPIC_METADATA_ATTEMPTS: u32 = 10;

/// How to reach the cluster.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `HOST:PORT` entries, tried in order until one answers.
    pub bootstrap_servers: Vec<String>,
    pub client_id: String,
    /// Connect, read and write timeout of every request.
    pub request_timeout: Duration,
    /// TLS and SASL, as `security.protocol` asks (plaintext by default).
    pub security: security::Security,
}

impl ClientConfig {
    /// A configuration for a comma-separated bootstrap list.
    pub fn new(bootstrap: &str, request_timeout: Duration) -> Self {
        ClientConfig {
            bootstrap_servers: bootstrap
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            client_id: "tidemark-cli".to_owned(),
            request_timeout,
            security: security::Security::default(),
        }
    }
}

/// Which broker a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Any broker (the first connection available).
    Any,
    /// The controller if Metadata named one, else any broker.
    Controller,
    /// A given broker id.
    Broker(i32),
}

/// A blocking client for one cluster.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    bootstrap: Option<Connection>,
    brokers: HashMap<i32, Connection>,
    metadata: ClusterMetadata,
    /// The coordinator broker of each group looked up (FindCoordinator).
    coordinators: HashMap<String, i32>,
}

impl Client {
    /// Connects to the first bootstrap server that answers and negotiates versions.
    pub fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        if config.bootstrap_servers.is_empty() {
            return Err(ClientError::InvalidArgument(
                "no bootstrap server given".to_owned(),
            ));
        }
        let mut last_error = None;
        for addr in &config.bootstrap_servers {
            match Connection::open_secured(
                addr,
                config.request_timeout,
                &config.client_id,
                &config.security,
            ) {
                Ok(conn) => {
                    return Ok(Client {
                        bootstrap: Some(conn),
                        brokers: HashMap::new(),
                        metadata: ClusterMetadata::default(),
                        coordinators: HashMap::new(),
                        config,
                    })
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| ClientError::Metadata("no bootstrap server".to_owned())))
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The last Metadata seen.
    pub fn metadata(&self) -> &ClusterMetadata {
        &self.metadata
    }

    /// Refreshes Metadata for `topics` (all topics when `None`). With
    /// `auto_create`, brokers that allow it create missing topics.
    pub fn refresh_metadata(
        &mut self,
        topics: Option<&[&str]>,
        auto_create: bool,
    ) -> Result<&ClusterMetadata, ClientError> {
        let (_, response) = self.call(Target::Any, |version| {
            metadata_request(topics, auto_create, version)
        })?;
        if response.error_code != 0 {
            return Err(ClientError::kafka(
                "Metadata",
                response.error_code,
                "",
                None,
            ));
        }
        let view = ClusterMetadata::from_response(&response);
        if topics.is_none() {
            self.metadata = view;
        } else {
            self.metadata.merge(view);
        }
        Ok(&self.metadata)
    }

    /// Metadata of one topic, refreshed; errors if the topic does not exist.
    /// A topic being created (LEADER_NOT_AVAILABLE) is asked again a few times.
    pub fn topic(&mut self, name: &str, auto_create: bool) -> Result<TopicInfo, ClientError> {
        let mut attempt = 0;
        loop {
            self.refresh_metadata(Some(&[name]), auto_create)?;
            let code = match self.metadata.topics.get(name) {
                Some(topic) if topic.error_code == 0 => return Ok(topic.clone()),
                Some(topic) => topic.error_code,
                None => error::codes::UNKNOWN_TOPIC_OR_PARTITION,
            };
            attempt += 1;
            if code != error::codes::LEADER_NOT_AVAILABLE || attempt >= TOPIC_METADATA_ATTEMPTS {
                return Err(ClientError::kafka("Metadata", code, name, None));
            }
            std::thread::sleep(RETRY_BACKOFF);
        }
    }

    /// Sends a request to `target` at the highest common version.
    pub fn call<R: Request>(
        &mut self,
        target: Target,
        build: impl FnOnce(i16) -> R,
    ) -> Result<(i16, R::Response), ClientError> {
        let key = self.resolve(target)?;
        let result = self.connection(key)?.call(build);
        self.drop_on_io_error(key, &result);
        result
    }

    /// Sends a request that gets no response (Produce with acks=0).
    pub fn send_only<R: Request>(
        &mut self,
        target: Target,
        build: impl FnOnce(i16) -> R,
    ) -> Result<(), ClientError> {
        let key = self.resolve(target)?;
        let result = self.connection(key)?.send_only(build);
        self.drop_on_io_error(key, &result);
        result
    }

    /// Sets the read timeout of the connection to a broker (opening it).
    pub fn set_broker_timeout(
        &mut self,
        broker: i32,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        let key = self.resolve(Target::Broker(broker))?;
        self.connection(key)?.set_timeout(timeout)
    }

    /// Which connection serves a target: `Some(id)` for a broker, `None`
    /// for the bootstrap connection.
    fn resolve(&self, target: Target) -> Result<Option<i32>, ClientError> {
        match target {
            Target::Broker(id) => Ok(Some(id)),
            Target::Controller
                if self
                    .metadata
                    .brokers
                    .contains_key(&self.metadata.controller_id) =>
            {
                Ok(Some(self.metadata.controller_id))
            }
            Target::Controller | Target::Any => {
                if self.bootstrap.is_some() {
                    Ok(None)
                } else if let Some(id) = self.brokers.keys().next() {
                    Ok(Some(*id))
                } else if let Some(id) = self.metadata.brokers.keys().next() {
                    Ok(Some(*id))
                } else {
                    Ok(None)
                }
            }
        }
    }

    fn connection(&mut self, key: Option<i32>) -> Result<&mut Connection, ClientError> {
        let timeout = self.config.request_timeout;
        let client_id = self.config.client_id.clone();
        let security = self.config.security.clone();
        match key {
            None => {
                if self.bootstrap.is_none() {
                    let conn = self.open_bootstrap()?;
                    self.bootstrap = Some(conn);
                }
                self.bootstrap
                    .as_mut()
                    .ok_or_else(|| ClientError::Metadata("no bootstrap connection".to_owned()))
            }
            Some(id) => {
                if !self.brokers.contains_key(&id) {
                    let broker = self.metadata.brokers.get(&id).ok_or_else(|| {
                        ClientError::Metadata(format!("broker {id} is not in the cluster metadata"))
                    })?;
                    let conn = Connection::open_secured(
                        &broker.address(),
                        timeout,
                        &client_id,
                        &security,
                    )?;
                    self.brokers.insert(id, conn);
                }
                self.brokers
                    .get_mut(&id)
                    .ok_or_else(|| ClientError::Metadata(format!("no connection to broker {id}")))
            }
        }
    }

    fn open_bootstrap(&self) -> Result<Connection, ClientError> {
        let mut last_error = None;
        for addr in &self.config.bootstrap_servers {
            match Connection::open_secured(
                addr,
                self.config.request_timeout,
                &self.config.client_id,
                &self.config.security,
            ) {
                Ok(conn) => return Ok(conn),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| ClientError::Metadata("no bootstrap server".to_owned())))
    }

    /// A connection that failed at the socket level is dropped, so the next
    /// request reconnects.
    fn drop_on_io_error<T>(&mut self, key: Option<i32>, result: &Result<T, ClientError>) {
        if matches!(
            result,
            Err(ClientError::Io { .. })
                | Err(ClientError::CorrelationMismatch { .. })
                | Err(ClientError::Protocol(_))
                | Err(ClientError::FrameTooLarge { .. })
        ) {
            match key {
                None => self.bootstrap = None,
                Some(id) => {
                    self.brokers.remove(&id);
                }
            }
        }
    }

    /// Sends per-partition work to each partition's leader (`send` gets one
    /// leader and its items), then retries once, after a Metadata refresh, the
    /// items that failed with a stale-leadership or connection error.
    fn route_with_retry<I: Clone, T>(
        &mut self,
        api: &'static str,
        topic: &str,
        items: Vec<I>,
        partition_of: impl Fn(&I) -> i32,
        mut send: impl FnMut(&mut Client, i32, &[I]) -> Vec<(I, Result<T, ClientError>)>,
    ) -> Vec<(I, Result<T, ClientError>)> {
        let mut done = Vec::with_capacity(items.len());
        let mut pending = items;
        for attempt in 0..2 {
            let mut by_leader: std::collections::BTreeMap<i32, Vec<I>> = Default::default();
            let mut outcomes = Vec::new();
            for item in pending.drain(..) {
                let partition = partition_of(&item);
                match self.metadata.leader_of(topic, partition) {
                    Some(leader) => by_leader.entry(leader).or_default().push(item),
                    None => {
                        let e = self.no_leader_error(api, topic, partition);
                        outcomes.push((item, Err(e)));
                    }
                }
            }
            for (leader, group) in by_leader {
                outcomes.extend(send(self, leader, &group));
            }
            for (item, result) in outcomes {
                if attempt == 0 && worth_retrying(&result) {
                    pending.push(item);
                } else {
                    done.push((item, result));
                }
            }
            if pending.is_empty() {
                break;
            }
            if let Err(e) = self.refresh_after_stale(topic) {
                for item in pending.drain(..) {
                    done.push((item, Err(e.duplicate())));
                }
                break;
            }
        }
        done
    }

    /// The error for a partition without a known leader.
    fn no_leader_error(&self, api: &'static str, topic: &str, partition: i32) -> ClientError {
        let code = match self.metadata.topics.get(topic) {
            Some(t) if t.partition(partition).is_some() => error::codes::LEADER_NOT_AVAILABLE,
            _ => error::codes::UNKNOWN_TOPIC_OR_PARTITION,
        };
        ClientError::kafka(api, code, format!("{topic}-{partition}"), None)
    }

    /// The request timeout in milliseconds, as the protocol carries it.
    fn request_timeout_ms(&self) -> i32 {
        i32::try_from(self.config.request_timeout.as_millis()).unwrap_or(i32::MAX)
    }

    /// Waits a little, then refreshes Metadata for one topic.
    fn refresh_after_stale(&mut self, topic: &str) -> Result<(), ClientError> {
        std::thread::sleep(RETRY_BACKOFF);
        self.refresh_metadata(Some(&[topic]), false).map(|_| ())
    }
}

/// Whether a failed partition operation is worth one retry after a refresh.
fn worth_retrying<T>(result: &Result<T, ClientError>) -> bool {
    match result {
        Err(ClientError::Kafka { code, .. }) => error::is_stale_metadata(*code),
        Err(ClientError::Io { .. }) => true,
        _ => false,
    }
}

/// Builds a Metadata request valid at `version`.
fn metadata_request(topics: Option<&[&str]>, auto_create: bool, version: i16) -> MetadataRequest {
    let topics = match topics {
        Some(names) => Some(
            names
                .iter()
                .map(|n| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string((*n).to_owned()))))
                })
                .collect(),
        ),
        // v0 has no null array: an empty one means every topic.
        None if version == 0 => Some(Vec::new()),
        None => None,
    };
    MetadataRequest::default()
        .with_topics(topics)
        // v0..v3 always allow auto-creation (the field does not exist).
        .with_allow_auto_topic_creation(auto_create || version < 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn metadata_request_encodes_at_every_version() {
        for version in 0..=12 {
            for topics in [None, Some(&["a", "b"][..])] {
                for auto in [false, true] {
                    let r = metadata_request(topics, auto, version);
                    let mut buf = bytes::BytesMut::new();
                    r.encode(&mut buf, version).expect("encodes");
                }
            }
        }
    }

    #[test]
    fn bootstrap_list_parsed() {
        let c = ClientConfig::new(" a:1, b:2 ,,", Duration::from_secs(1));
        assert_eq!(c.bootstrap_servers, vec!["a:1", "b:2"]);
    }

    #[test]
    fn connect_refused_is_an_io_error() {
        // Port 1 on loopback is closed in any sane test environment.
        let c = ClientConfig::new("127.0.0.1:1", Duration::from_millis(200));
        let err = Client::connect(c).unwrap_err();
        assert!(matches!(err, ClientError::Io { .. }), "{err}");
    }
}
