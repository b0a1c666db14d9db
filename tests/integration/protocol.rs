//! Connection-level protocol rules on a raw socket: pipelined requests are
//! answered in request order (even when their partitions live on different
//! shards), and a Produce with acks=0 gets no response at all.
use crate::common;

use common::*;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, HeaderVersion, StrBytes};
use rdkafka::message::Message;

const PARTITIONS: i32 = 4;

fn produce_request(topic: &str, partition: i32, acks: i16, value: &str) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(one_record_batch(value.as_bytes())))])])
}

enum Sent {
    ApiVersions,
    Metadata,
    Produce { partition: i32, sequence: i64 },
}

#[test]
fn pipelined_requests_are_answered_in_order_and_acks_0_gets_no_answer() {
    let broker = Broker::start();
    let topic = topic_name("pipeline");
    create_topic(&broker, &topic, PARTITIONS, &[]);
    let mut conn = RawConn::connect(&broker);

    // 60 requests written back to back before reading anything: Produce to every
    // partition (so to both shards), Metadata and ApiVersions mixed in, and every
    // seventh Produce with acks=0.
    let mut expected = Vec::new();
    let mut wire = Vec::new();
    let mut per_partition = [0i64; PARTITIONS as usize];
    let mut acks0_values = Vec::new();
    for i in 0..60 {
        let (correlation_id, frame, sent) = match i % 3 {
            0 => {
                let request = ApiVersionsRequest::default()
                    .with_client_software_name(StrBytes::from_static_str("pipeline"))
                    .with_client_software_version(StrBytes::from_static_str("1"));
                let (c, f) = conn.encode_request(&request, 3);
                (c, f, Some(Sent::ApiVersions))
            }
            1 => {
                let request = MetadataRequest::default()
                    .with_topics(Some(vec![MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(topic.clone()))))]));
                let (c, f) = conn.encode_request(&request, 12);
                (c, f, Some(Sent::Metadata))
            }
            _ => {
                let partition = (i / 3) % PARTITIONS;
                let value = format!("pipelined {i}");
                let acks = if i % 7 == 2 { 0 } else { -1 };
                let (c, f) =
                    conn.encode_request(&produce_request(&topic, partition, acks, &value), 7);
                let sequence = per_partition[partition as usize];
                per_partition[partition as usize] += 1;
                if acks == 0 {
                    acks0_values.push((partition, sequence, value));
                    (c, f, None)
                } else {
                    (
                        c,
                        f,
                        Some(Sent::Produce {
                            partition,
                            sequence,
                        }),
                    )
                }
            }
        };
        wire.extend_from_slice(&frame);
        if let Some(sent) = sent {
            expected.push((correlation_id, sent));
        }
    }
    assert!(
        !acks0_values.is_empty(),
        "the pipeline holds acks=0 requests"
    );
    conn.send_bytes(&wire);

    for (correlation_id, sent) in &expected {
        let mut body = conn.read_frame().unwrap_or_else(|e| {
            panic!("reading the response to correlation id {correlation_id}: {e}")
        });
        let header_version = match sent {
            Sent::ApiVersions => ApiVersionsResponse::header_version(3),
            Sent::Metadata => MetadataResponse::header_version(12),
            Sent::Produce { .. } => ProduceResponse::header_version(7),
        };
        let header = ResponseHeader::decode(&mut body, header_version).expect("response header");
        assert_eq!(
            header.correlation_id, *correlation_id,
            "responses must come back in request order (acks=0 Produce gets none)"
        );
        match sent {
            Sent::ApiVersions => {
                let r = ApiVersionsResponse::decode(&mut body, 3).expect("ApiVersions");
                assert_eq!(r.error_code, 0);
            }
            Sent::Metadata => {
                let r = MetadataResponse::decode(&mut body, 12).expect("Metadata");
                assert_eq!(r.topics.len(), 1);
                assert_eq!(r.topics[0].partitions.len(), PARTITIONS as usize);
            }
            Sent::Produce {
                partition,
                sequence,
            } => {
                let r = ProduceResponse::decode(&mut body, 7).expect("Produce");
                let p = &r.responses[0].partition_responses[0];
                assert_eq!(p.index, *partition);
                assert_eq!(p.error_code, 0, "Produce to partition {partition}");
                // Requests on one connection are applied in order.
                assert_eq!(
                    p.base_offset, *sequence,
                    "offset of the Produce #{sequence} to partition {partition}"
                );
            }
        }
    }

    // The acks=0 records were stored where their order puts them.
    let consumed = consume_all(&broker, &topic, &(0..PARTITIONS).collect::<Vec<_>>());
    for (partition, offset, value) in acks0_values {
        let m = consumed[&partition]
            .iter()
            .find(|m| m.offset() == offset)
            .unwrap_or_else(|| panic!("acks=0 record {partition}/{offset} missing"));
        assert_eq!(m.payload(), Some(value.as_bytes()));
    }
    for (p, messages) in &consumed {
        assert_eq!(
            messages.len() as i64,
            per_partition[*p as usize],
            "records in partition {p}"
        );
        assert_dense(messages, 0, &format!("partition {p}"));
    }
}
