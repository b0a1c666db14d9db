//! Topic administration: CreateTopics, DeleteTopics and DescribeConfigs, sent
//! to the controller (or any broker). Runs on the CLI's main thread.

use std::time::Duration;

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{Client, ClientError, Target};

/// DescribeConfigs resource type of a topic.
const RESOURCE_TOPIC: i8 = 2;

/// A topic to create. `None` leaves the choice to the broker's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    pub partitions: Option<i32>,
    pub replication_factor: Option<i16>,
    pub configs: Vec<(String, String)>,
}

/// One configuration entry of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    /// Kafka's ConfigSource: 1 dynamic topic config, 5 default, ...
    pub source: i8,
    pub read_only: bool,
    pub sensitive: bool,
}

impl ConfigEntry {
    /// Kafka's DYNAMIC_TOPIC_CONFIG source: set on the topic itself.
    pub const SOURCE_TOPIC: i8 = 1;

    /// Whether the value was set on the topic (not inherited).
    pub fn is_topic_override(&self) -> bool {
        self.source == Self::SOURCE_TOPIC
    }
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn timeout_ms(timeout: Duration) -> i32 {
    i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX)
}

/// The CreateTopics request for one topic at `version` (v2..v3 cannot ask
/// for the broker's default partition count or replication factor).
fn create_topics_request(topic: &NewTopic, timeout: Duration, version: i16) -> CreateTopicsRequest {
    let default = if version >= 4 { -1 } else { 1 };
    let configs = topic
        .configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(str_bytes(k))
                .with_value(Some(str_bytes(v)))
        })
        .collect();
    let creatable = CreatableTopic::default()
        .with_name(TopicName(str_bytes(&topic.name)))
        .with_num_partitions(topic.partitions.unwrap_or(default))
        .with_replication_factor(topic.replication_factor.unwrap_or(default as i16))
        .with_configs(configs);
    CreateTopicsRequest::default()
        .with_topics(vec![creatable])
        .with_timeout_ms(timeout_ms(timeout))
}

/// The DeleteTopics request for one topic: names move into `topics` at v6.
fn delete_topics_request(name: &str, timeout: Duration, version: i16) -> DeleteTopicsRequest {
    let request = DeleteTopicsRequest::default().with_timeout_ms(timeout_ms(timeout));
    if version >= 6 {
        request.with_topics(vec![
            DeleteTopicState::default().with_name(Some(TopicName(str_bytes(name))))
        ])
    } else {
        request.with_topic_names(vec![TopicName(str_bytes(name))])
    }
}

impl Client {
    /// Creates a topic; Kafka errors come back as `ClientError::Kafka`.
    pub fn create_topic(&mut self, topic: &NewTopic) -> Result<(), ClientError> {
        let timeout = self.config.request_timeout;
        let (_, response) = self.call(Target::Controller, |version| {
            create_topics_request(topic, timeout, version)
        })?;
        let result = response
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == topic.name)
            .ok_or_else(|| {
                ClientError::Protocol("CreateTopics: topic missing in response".into())
            })?;
        if result.error_code != 0 {
            return Err(ClientError::kafka(
                "CreateTopics",
                result.error_code,
                &topic.name,
                result.error_message.as_deref(),
            ));
        }
        Ok(())
    }

    /// Deletes a topic by name.
    pub fn delete_topic(&mut self, name: &str) -> Result<(), ClientError> {
        let timeout = self.config.request_timeout;
        let (_, response) = self.call(Target::Controller, |version| {
            delete_topics_request(name, timeout, version)
        })?;
        let result = response
            .responses
            .iter()
            .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(name))
            .or(response.responses.first())
            .ok_or_else(|| {
                ClientError::Protocol("DeleteTopics: topic missing in response".into())
            })?;
        if result.error_code != 0 {
            return Err(ClientError::kafka(
                "DeleteTopics",
                result.error_code,
                name,
                result.error_message.as_deref(),
            ));
        }
        Ok(())
    }

    /// Every configuration entry of a topic, as the broker reports it.
    pub fn describe_topic_configs(&mut self, name: &str) -> Result<Vec<ConfigEntry>, ClientError> {
        let resource = DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(str_bytes(name))
            .with_configuration_keys(None);
        let (_, response) = self.call(Target::Any, |_| {
            DescribeConfigsRequest::default().with_resources(vec![resource])
        })?;
        let result = response
            .results
            .into_iter()
            .find(|r| r.resource_name.as_str() == name)
            .ok_or_else(|| {
                ClientError::Protocol("DescribeConfigs: topic missing in response".into())
            })?;
        if result.error_code != 0 {
            return Err(ClientError::kafka(
                "DescribeConfigs",
                result.error_code,
                name,
                result.error_message.as_deref(),
            ));
        }
        let mut entries: Vec<ConfigEntry> = result
            .configs
            .into_iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.map(|v| v.to_string()),
                source: c.config_source,
                read_only: c.read_only,
                sensitive: c.is_sensitive,
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::{Decodable, Encodable};

    fn topic() -> NewTopic {
        NewTopic {
            name: "orders".to_owned(),
            partitions: None,
            replication_factor: Some(1),
            configs: vec![("cleanup.policy".to_owned(), "compact".to_owned())],
        }
    }

    #[test]
    fn create_request_round_trips() {
        for version in 2..=7 {
            let r = create_topics_request(&topic(), Duration::from_secs(5), version);
            let mut buf = bytes::BytesMut::new();
            r.encode(&mut buf, version).expect("encode");
            let back = CreateTopicsRequest::decode(&mut buf.freeze(), version).expect("decode");
            let t = &back.topics[0];
            assert_eq!(t.name.0.as_str(), "orders");
            assert_eq!(t.num_partitions, if version >= 4 { -1 } else { 1 });
            assert_eq!(t.replication_factor, 1);
            assert_eq!(t.configs[0].value.as_deref(), Some("compact"));
            assert_eq!(back.timeout_ms, 5000);
        }
    }

    #[test]
    fn delete_request_round_trips() {
        for version in 1..=6 {
            let r = delete_topics_request("orders", Duration::from_secs(1), version);
            let mut buf = bytes::BytesMut::new();
            r.encode(&mut buf, version).expect("encode");
            let back = DeleteTopicsRequest::decode(&mut buf.freeze(), version).expect("decode");
            let name = if version >= 6 {
                back.topics[0].name.as_ref().map(|n| n.0.to_string())
            } else {
                back.topic_names.first().map(|n| n.0.to_string())
            };
            assert_eq!(name.as_deref(), Some("orders"));
        }
    }
}
