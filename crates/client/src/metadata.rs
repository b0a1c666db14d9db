//! The client's view of the cluster, built from Metadata responses: brokers,
//! the controller, topics with their ids and each partition's leader,
//! replicas and ISR. Plain data; lives on the CLI's main thread.

use std::collections::BTreeMap;

use kafka_protocol::messages::MetadataResponse;
use uuid::Uuid;

/// A broker's address as Metadata announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerInfo {
    /// `HOST:PORT`, with IPv6 literals bracketed.
    pub fn address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub id: i32,
    pub error_code: i16,
    /// -1 when the partition has no leader.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline_replicas: Vec<i32>,
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub id: Uuid,
    pub error_code: i16,
    pub internal: bool,
    /// Sorted by partition id.
    pub partitions: Vec<PartitionInfo>,
}

impl TopicInfo {
    /// The partition with this id.
    pub fn partition(&self, id: i32) -> Option<&PartitionInfo> {
        self.partitions.iter().find(|p| p.id == id)
    }

    /// Number of partitions.
    pub fn partition_count(&self) -> i32 {
        i32::try_from(self.partitions.len()).unwrap_or(i32::MAX)
    }
}

/// What the client knows of the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterMetadata {
    pub cluster_id: Option<String>,
    /// -1 when unknown.
    pub controller_id: i32,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<String, TopicInfo>,
}

impl ClusterMetadata {
    /// Builds the view from a Metadata response.
    pub fn from_response(response: &MetadataResponse) -> Self {
        let brokers = response
            .brokers
            .iter()
            .map(|b| {
                let info = BrokerInfo {
                    id: b.node_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.as_ref().map(|r| r.to_string()),
                };
                (info.id, info)
            })
            .collect();
        let topics = response
            .topics
            .iter()
            .filter_map(|t| {
                let name = t.name.as_ref()?.0.to_string();
                let mut partitions: Vec<PartitionInfo> = t
                    .partitions
                    .iter()
                    .map(|p| PartitionInfo {
                        id: p.partition_index,
                        error_code: p.error_code,
                        leader: p.leader_id.0,
                        leader_epoch: p.leader_epoch,
                        replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                        isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                        offline_replicas: p.offline_replicas.iter().map(|b| b.0).collect(),
                    })
                    .collect();
                partitions.sort_by_key(|p| p.id);
                let info = TopicInfo {
                    name: name.clone(),
                    id: t.topic_id,
                    error_code: t.error_code,
                    internal: t.is_internal,
                    partitions,
                };
                Some((name, info))
            })
            .collect();
        ClusterMetadata {
            cluster_id: response.cluster_id.as_ref().map(|c| c.to_string()),
            controller_id: response.controller_id.0,
            brokers,
            topics,
        }
    }

    /// Replaces the brokers and the given topics with a newer response's.
    pub fn merge(&mut self, newer: ClusterMetadata) {
        self.cluster_id = newer.cluster_id;
        self.controller_id = newer.controller_id;
        self.brokers = newer.brokers;
        self.topics.extend(newer.topics);
    }

    /// The leader of a partition, if it has one.
    pub fn leader_of(&self, topic: &str, partition: i32) -> Option<i32> {
        let p = self.topics.get(topic)?.partition(partition)?;
        (p.leader >= 0).then_some(p.leader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::{BrokerId, TopicName};
    use kafka_protocol::protocol::StrBytes;

    #[test]
    fn builds_view() {
        let response = MetadataResponse::default()
            .with_controller_id(BrokerId(1))
            .with_brokers(vec![MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(StrBytes::from_static_str("::1"))
                .with_port(9092)])
            .with_topics(vec![MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
                .with_partitions(vec![
                    MetadataResponsePartition::default()
                        .with_partition_index(1)
                        .with_leader_id(BrokerId(-1)),
                    MetadataResponsePartition::default()
                        .with_partition_index(0)
                        .with_leader_id(BrokerId(1))
                        .with_replica_nodes(vec![BrokerId(1)]),
                ])]);
        let view = ClusterMetadata::from_response(&response);
        assert_eq!(view.brokers[&1].address(), "[::1]:9092");
        assert_eq!(view.leader_of("t", 0), Some(1));
        assert_eq!(view.leader_of("t", 1), None);
        assert_eq!(view.leader_of("u", 0), None);
        assert_eq!(view.topics["t"].partitions[0].id, 0);
        assert_eq!(view.topics["t"].partition_count(), 2);
    }
}
