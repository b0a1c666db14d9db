//! Reading partitions: ListOffsets (earliest / latest) and Fetch, sent to each
//! partition's leader with topic names (Fetch is capped below v13), records
//! decoded with any compression. CLI main thread only.

use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::error::codes;
use super::records::{decode_fetched, DecodedRecords};
use super::{Client, ClientError, Target};

/// Which end of a partition ListOffsets resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
}

impl OffsetSpec {
    /// ListOffsets' special timestamps.
    fn timestamp(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
        }
    }
}

/// Where to fetch one partition from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchPosition {
    pub partition: i32,
    pub offset: i64,
    /// partition_max_bytes of the request.
    pub max_bytes: i32,
}

/// Fetch long-poll settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchOptions {
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    pub max_bytes: i32,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            max_wait_ms: 500,
            min_bytes: 1,
            max_bytes: 50 * 1024 * 1024,
        }
    }
}

/// What one partition's fetch returned.
#[derive(Debug)]
pub struct PartitionFetch {
    pub position: FetchPosition,
    pub result: Result<FetchedData, ClientError>,
}

/// The data of one partition in a Fetch response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedData {
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub records: DecodedRecords,
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

fn list_offsets_request(
    topic: &str,
    partitions: &[i32],
    spec: OffsetSpec,
    timeout_ms: i32,
) -> ListOffsetsRequest {
    let partitions = partitions
        .iter()
        .map(|p| {
            ListOffsetsPartition::default()
                .with_partition_index(*p)
                .with_timestamp(spec.timestamp())
        })
        .collect();
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(partitions)])
        .with_timeout_ms(timeout_ms)
}

/// Per-partition offsets of a ListOffsets response, in the order asked.
fn list_offsets_results(
    topic: &str,
    asked: &[i32],
    response: &ListOffsetsResponse,
) -> Vec<Result<i64, ClientError>> {
    let partitions: Vec<_> = response
        .topics
        .iter()
        .filter(|t| t.name.0.as_str() == topic)
        .flat_map(|t| t.partitions.iter())
        .collect();
    asked
        .iter()
        .map(
            |partition| match partitions.iter().find(|p| p.partition_index == *partition) {
                None => Err(ClientError::Protocol(format!(
                    "ListOffsets: no response for {topic}-{partition}"
                ))),
                Some(p) if p.error_code != codes::NONE => Err(ClientError::kafka(
                    "ListOffsets",
                    p.error_code,
                    format!("{topic}-{partition}"),
                    None,
                )),
                Some(p) => Ok(p.offset),
            },
        )
        .collect()
}

/// The Fetch request of a consumer (replica id -1, read uncommitted) for
/// `positions` of one topic; valid at every version the client sends.
pub fn fetch_request(
    topic: &str,
    positions: &[FetchPosition],
    options: &FetchOptions,
) -> FetchRequest {
    let partitions = positions
        .iter()
        .map(|p| {
            FetchPartition::default()
                .with_partition(p.partition)
                .with_fetch_offset(p.offset)
                .with_partition_max_bytes(p.max_bytes)
        })
        .collect();
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(options.max_wait_ms)
        .with_min_bytes(options.min_bytes)
        .with_max_bytes(options.max_bytes)
        .with_isolation_level(0)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(partitions)])
}

/// Per-partition data of a Fetch response, in the order asked.
fn fetch_results(
    topic: &str,
    asked: &[FetchPosition],
    response: FetchResponse,
) -> Vec<Result<FetchedData, ClientError>> {
    if response.error_code != codes::NONE {
        let code = response.error_code;
        return asked
            .iter()
            .map(|_| Err(ClientError::kafka("Fetch", code, topic, None)))
            .collect();
    }
    let mut partitions: Vec<_> = response
        .responses
        .into_iter()
        .filter(|t| t.topic.0.as_str() == topic)
        .flat_map(|t| t.partitions.into_iter())
        .collect();
    asked
        .iter()
        .map(|position| {
            let index = partitions
                .iter()
                .position(|p| p.partition_index == position.partition);
            match index {
                None => Ok(FetchedData {
                    // Absent from the response: nothing new for this partition.
                    high_watermark: -1,
                    log_start_offset: -1,
                    records: DecodedRecords::default(),
                }),
                Some(i) => partition_data(topic, position, partitions.swap_remove(i)),
            }
        })
        .collect()
}

fn partition_data(
    topic: &str,
    position: &FetchPosition,
    p: kafka_protocol::messages::fetch_response::PartitionData,
) -> Result<FetchedData, ClientError> {
    match p.error_code {
        codes::NONE => {}
        codes::OFFSET_OUT_OF_RANGE => {
            return Err(ClientError::OffsetOutOfRange {
                topic: topic.to_owned(),
                partition: position.partition,
                offset: position.offset,
                log_start_offset: p.log_start_offset,
                high_watermark: p.high_watermark,
            })
        }
        code => {
            return Err(ClientError::kafka(
                "Fetch",
                code,
                format!("{topic}-{}", position.partition),
                None,
            ))
        }
    }
    let records = match p.records {
        Some(data) => decode_fetched(data, position.offset)?,
        None => DecodedRecords::default(),
    };
    Ok(FetchedData {
        high_watermark: p.high_watermark,
        log_start_offset: p.log_start_offset,
        records,
    })
}

impl Client {
    /// Resolves the earliest or latest offset of each partition.
    pub fn list_offsets(
        &mut self,
        topic: &str,
        partitions: &[i32],
        spec: OffsetSpec,
    ) -> Result<Vec<(i32, i64)>, ClientError> {
        let timeout_ms = self.request_timeout_ms();
        let outcomes = self.route_with_retry(
            "ListOffsets",
            topic,
            partitions.to_vec(),
            |p| *p,
            |client, leader, group| {
                let results = client
                    .call(Target::Broker(leader), |_| {
                        list_offsets_request(topic, group, spec, timeout_ms)
                    })
                    .map(|(_, response)| list_offsets_results(topic, group, &response));
                zip_results(group, results)
            },
        );
        let mut offsets = Vec::with_capacity(outcomes.len());
        for (partition, result) in outcomes {
            offsets.push((partition, result?));
        }
        offsets.sort_unstable();
        Ok(offsets)
    }

    /// Fetches each position from its leader, waiting up to `max_wait_ms`
    /// on the broker's side.
    pub fn fetch(
        &mut self,
        topic: &str,
        positions: &[FetchPosition],
        options: &FetchOptions,
    ) -> Vec<PartitionFetch> {
        let read_timeout = self.config.request_timeout
            + Duration::from_millis(u64::try_from(options.max_wait_ms).unwrap_or(0));
        let outcomes = self.route_with_retry(
            "Fetch",
            topic,
            positions.to_vec(),
            |p| p.partition,
            |client, leader, group| {
                let results = client
                    .set_broker_timeout(leader, read_timeout)
                    .and_then(|()| {
                        client.call(Target::Broker(leader), |_| {
                            fetch_request(topic, group, options)
                        })
                    })
                    .map(|(_, response)| fetch_results(topic, group, response));
                zip_results(group, results)
            },
        );
        outcomes
            .into_iter()
            .map(|(position, result)| PartitionFetch { position, result })
            .collect()
    }
}

/// Pairs each item with its result, or with the request's failure.
fn zip_results<I: Clone, T>(
    items: &[I],
    results: Result<Vec<Result<T, ClientError>>, ClientError>,
) -> Vec<(I, Result<T, ClientError>)> {
    match results {
        Ok(results) => items.iter().cloned().zip(results).collect(),
        Err(e) => items
            .iter()
            .map(|i| (i.clone(), Err(e.duplicate())))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{encode_batch, ProducerRecord};
    use bytes::Bytes;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::protocol::{Decodable, Encodable};
    use kafka_protocol::records::Compression;

    fn pos(partition: i32, offset: i64) -> FetchPosition {
        FetchPosition {
            partition,
            offset,
            max_bytes: 1 << 20,
        }
    }

    #[test]
    fn requests_encode_at_client_versions() {
        for version in 4..=12 {
            let r = fetch_request("t", &[pos(0, 5), pos(1, 0)], &FetchOptions::default());
            let mut buf = bytes::BytesMut::new();
            r.encode(&mut buf, version).expect("fetch encodes");
            let back = FetchRequest::decode(&mut buf.freeze(), version).expect("decode");
            assert_eq!(back.topics[0].topic.0.as_str(), "t");
            assert_eq!(back.topics[0].partitions[0].fetch_offset, 5);
            assert_eq!(back.replica_id, -1);
        }
        for version in 1..=10 {
            let r = list_offsets_request("t", &[0, 1], OffsetSpec::Earliest, 1000);
            let mut buf = bytes::BytesMut::new();
            r.encode(&mut buf, version).expect("list offsets encodes");
            let back = ListOffsetsRequest::decode(&mut buf.freeze(), version).expect("decode");
            assert_eq!(back.replica_id, -1);
            assert_eq!(back.topics[0].partitions[1].timestamp, -2);
        }
    }

    #[test]
    fn fetch_results_decode_and_errors() {
        let batch = encode_batch(
            &[ProducerRecord {
                key: None,
                value: Some(Bytes::from_static(b"hello")),
            }],
            Compression::Zstd,
            7,
        )
        .expect("batch");
        let response =
            FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
                .with_topic(topic_name("t"))
                .with_partitions(vec![
                    PartitionData::default()
                        .with_partition_index(0)
                        .with_high_watermark(1)
                        .with_records(Some(batch)),
                    PartitionData::default()
                        .with_partition_index(1)
                        .with_error_code(1)
                        .with_log_start_offset(10)
                        .with_high_watermark(20),
                ])]);
        // Through the wire format, as the client receives it.
        let mut buf = bytes::BytesMut::new();
        response.encode(&mut buf, 12).expect("encode");
        let response = FetchResponse::decode(&mut buf.freeze(), 12).expect("decode");
        let results = fetch_results("t", &[pos(0, 0), pos(1, 5), pos(2, 0)], response);
        let data = results[0].as_ref().expect("partition 0");
        assert_eq!(
            data.records.records[0].value.as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(data.records.next_offset, Some(1));
        let err = results[1].as_ref().unwrap_err();
        assert_eq!(
            err.to_string(),
            "t-1: offset 5 is out of range (log start 10, high watermark 20)"
        );
        assert!(results[2]
            .as_ref()
            .expect("absent")
            .records
            .records
            .is_empty());
    }
}
