//! Produce: sends encoded record batches to their partitions' leaders (one
//! request per leader), reports each partition's outcome, and retries once
//! after a Metadata refresh when leadership moved. CLI main thread only.

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::error::codes;
use super::{Client, ClientError, Target};

/// The producer's `acks` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// 0: fire and forget, the broker sends no response.
    None,
    /// 1: the leader has appended.
    Leader,
    /// -1 / all: every in-sync replica has the batch.
    All,
}

impl Acks {
    /// Parses `0`, `1`, `-1` or `all`.
    pub fn parse(s: &str) -> Result<Acks, ClientError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "0" => Ok(Acks::None),
            "1" => Ok(Acks::Leader),
            "-1" | "all" => Ok(Acks::All),
            other => Err(ClientError::InvalidArgument(format!(
                "acks must be 0, 1, -1 or all, not '{other}'"
            ))),
        }
    }

    /// The wire value.
    pub fn code(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// The outcome of one partition's batch.
#[derive(Debug)]
pub struct PartitionProduceResult {
    pub partition: i32,
    /// The base offset the broker assigned (-1 with acks=0).
    pub result: Result<i64, ClientError>,
}

fn produce_request(
    topic: &str,
    batches: &[(i32, Bytes)],
    acks: Acks,
    timeout_ms: i32,
) -> ProduceRequest {
    let partition_data = batches
        .iter()
        .map(|(partition, batch)| {
            PartitionProduceData::default()
                .with_index(*partition)
                .with_records(Some(batch.clone()))
        })
        .collect();
    let topic_data = TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
        .with_partition_data(partition_data);
    ProduceRequest::default()
        .with_acks(acks.code())
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![topic_data])
}

/// Maps a Produce response to one result per batch sent, in order.
fn produce_results(
    topic: &str,
    sent: &[(i32, Bytes)],
    response: &ProduceResponse,
) -> Vec<Result<i64, ClientError>> {
    let partitions: Vec<_> = response
        .responses
        .iter()
        .filter(|t| t.name.0.as_str() == topic)
        .flat_map(|t| t.partition_responses.iter())
        .collect();
    sent.iter()
        .map(
            |(partition, _)| match partitions.iter().find(|p| p.index == *partition) {
                None => Err(ClientError::Protocol(format!(
                    "Produce: no response for {topic}-{partition}"
                ))),
                Some(p) if p.error_code != codes::NONE => Err(ClientError::kafka(
                    "Produce",
                    p.error_code,
                    format!("{topic}-{partition}"),
                    p.error_message.as_deref(),
                )),
                Some(p) => Ok(p.base_offset),
            },
        )
        .collect()
}

impl Client {
    /// Produces one batch per partition of `topic` (each `(partition, batch)`
    /// holds a RecordBatch v2). Uses the Metadata already known for the topic,
    /// refreshing it once when a leader moved or was unknown.
    pub fn produce(
        &mut self,
        topic: &str,
        batches: Vec<(i32, Bytes)>,
        acks: Acks,
    ) -> Vec<PartitionProduceResult> {
        let timeout_ms = self.request_timeout_ms();
        let outcomes = self.route_with_retry(
            "Produce",
            topic,
            batches,
            |(partition, _)| *partition,
            |client, leader, group| client.produce_to(leader, topic, group, acks, timeout_ms),
        );
        let mut results: Vec<PartitionProduceResult> = outcomes
            .into_iter()
            .map(|((partition, _), result)| PartitionProduceResult { partition, result })
            .collect();
        results.sort_by_key(|r| r.partition);
        results
    }

    /// One Produce request to one leader.
    fn produce_to(
        &mut self,
        leader: i32,
        topic: &str,
        group: &[(i32, Bytes)],
        acks: Acks,
        timeout_ms: i32,
    ) -> Vec<((i32, Bytes), Result<i64, ClientError>)> {
        let build = |_| produce_request(topic, group, acks, timeout_ms);
        let outcome = if acks == Acks::None {
            self.send_only(Target::Broker(leader), build)
                .map(|()| group.iter().map(|_| Ok(-1)).collect())
        } else {
            self.call(Target::Broker(leader), build)
                .map(|(_, response)| produce_results(topic, group, &response))
        };
        match outcome {
            Ok(results) => group.iter().cloned().zip(results).collect(),
            Err(e) => group
                .iter()
                .map(|item| (item.clone(), Err(e.duplicate())))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };
    use kafka_protocol::protocol::{Decodable, Encodable};

    #[test]
    fn acks_parse() {
        assert_eq!(Acks::parse("all").expect("all").code(), -1);
        assert_eq!(Acks::parse("-1").expect("-1"), Acks::All);
        assert_eq!(Acks::parse("0").expect("0"), Acks::None);
        assert_eq!(Acks::parse("1").expect("1"), Acks::Leader);
        assert!(Acks::parse("2").is_err());
    }

    #[test]
    fn request_round_trip() {
        let batches = vec![
            (0, Bytes::from_static(b"batch0")),
            (2, Bytes::from_static(b"b2")),
        ];
        for version in 3..=11 {
            let r = produce_request("t", &batches, Acks::All, 1000);
            let mut buf = bytes::BytesMut::new();
            r.encode(&mut buf, version).expect("encode");
            let back = ProduceRequest::decode(&mut buf.freeze(), version).expect("decode");
            assert_eq!(back, r);
        }
    }

    #[test]
    fn results_per_partition() {
        let response =
            ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_responses(vec![
                    PartitionProduceResponse::default()
                        .with_index(0)
                        .with_base_offset(42),
                    PartitionProduceResponse::default()
                        .with_index(2)
                        .with_error_code(6),
                ])]);
        let sent = vec![(0, Bytes::new()), (2, Bytes::new()), (3, Bytes::new())];
        let results = produce_results("t", &sent, &response);
        assert_eq!(results[0].as_ref().ok(), Some(&42));
        let err = results[1].as_ref().unwrap_err();
        assert_eq!(
            err.to_string(),
            "Produce: NOT_LEADER_OR_FOLLOWER (6) on t-2"
        );
        assert_eq!(err.kafka_code(), Some(6));
        assert!(matches!(results[2], Err(ClientError::Protocol(_))));
    }
}
