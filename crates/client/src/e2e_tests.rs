//! End-to-end tests of the client over real sockets against a tiny in-process
//! mock broker (threads, std::net): version negotiation with the v0 fallback,
//! Metadata routing, Produce, ListOffsets, Fetch with a truncated tail, the
//! retry after NOT_LEADER_OR_FOLLOWER, and the admin APIs.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{decode_request_header_from_buffer, Decodable, Encodable, StrBytes};
use kafka_protocol::records::Compression;

use super::conn::read_frame;
use super::records::{encode_batch, ProducerRecord};
use super::*;

const TOPIC: &str = "t";
const PARTITIONS: i32 = 2;

#[derive(Default)]
struct State {
    /// Per partition: (base offset, batch with its base offset patched).
    logs: BTreeMap<i32, Vec<(i64, Bytes)>>,
    next: BTreeMap<i32, i64>,
}

struct Mock {
    port: u16,
    state: Mutex<State>,
    /// Answer ApiVersions v3 with UNSUPPORTED_VERSION in the v0 layout.
    reject_v3: bool,
    /// Answer the next Produce with NOT_LEADER_OR_FOLLOWER.
    fail_next_produce: AtomicBool,
    metadata_requests: AtomicUsize,
}

fn start_mock(reject_v3: bool) -> Arc<Mock> {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mock = Arc::new(Mock {
        port,
        state: Mutex::new(State::default()),
        reject_v3,
        fail_next_produce: AtomicBool::new(false),
        metadata_requests: AtomicUsize::new(0),
    });
    let m = mock.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let m = m.clone();
            std::thread::spawn(move || m.serve(stream));
        }
    });
    mock
}

fn frame_out<R: Encodable + HeaderVersionOf>(correlation_id: i32, version: i16, body: &R) -> Bytes {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0; 4]);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, R::hv(version))
        .expect("header");
    body.encode(&mut buf, version).expect("body");
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}

/// The response header version of a response type.
trait HeaderVersionOf {
    fn hv(version: i16) -> i16;
}
impl<T: kafka_protocol::protocol::HeaderVersion> HeaderVersionOf for T {
    fn hv(version: i16) -> i16 {
        T::header_version(version)
    }
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

impl Mock {
    fn serve(&self, mut stream: TcpStream) {
        while let Ok(mut frame) = read_frame(&mut stream, "mock") {
            let header = decode_request_header_from_buffer(&mut frame).expect("header");
            let (v, c) = (header.request_api_version, header.correlation_id);
            let out = match ApiKey::try_from(header.request_api_key).expect("key") {
                ApiKey::ApiVersions => self.api_versions(v, c),
                ApiKey::Metadata => {
                    let r = MetadataRequest::decode(&mut frame, v).expect("metadata");
                    frame_out(c, v, &self.metadata(&r))
                }
                ApiKey::Produce => {
                    let r = ProduceRequest::decode(&mut frame, v).expect("produce");
                    let response = self.produce(&r);
                    if r.acks == 0 {
                        continue;
                    }
                    frame_out(c, v, &response)
                }
                ApiKey::ListOffsets => {
                    let r = ListOffsetsRequest::decode(&mut frame, v).expect("list");
                    frame_out(c, v, &self.list_offsets(&r))
                }
                ApiKey::Fetch => {
                    let r = FetchRequest::decode(&mut frame, v).expect("fetch");
                    frame_out(c, v, &self.fetch(&r))
                }
                ApiKey::CreateTopics => {
                    let r = CreateTopicsRequest::decode(&mut frame, v).expect("create");
                    let code = if r.topics[0].name.0.as_str() == TOPIC {
                        36
                    } else {
                        0
                    };
                    let result = CreatableTopicResult::default()
                        .with_name(r.topics[0].name.clone())
                        .with_error_code(code);
                    frame_out(
                        c,
                        v,
                        &CreateTopicsResponse::default().with_topics(vec![result]),
                    )
                }
                ApiKey::DescribeConfigs => {
                    let entry = DescribeConfigsResourceResult::default()
                        .with_name(StrBytes::from_static_str("cleanup.policy"))
                        .with_value(Some(StrBytes::from_static_str("compact")))
                        .with_config_source(1);
                    let result = DescribeConfigsResult::default()
                        .with_resource_type(2)
                        .with_resource_name(StrBytes::from_static_str(TOPIC))
                        .with_configs(vec![entry]);
                    frame_out(
                        c,
                        v,
                        &DescribeConfigsResponse::default().with_results(vec![result]),
                    )
                }
                other => panic!("mock does not serve {other:?}"),
            };
            if stream.write_all(&out).is_err() {
                return;
            }
        }
    }

    fn api_versions(&self, v: i16, c: i32) -> Bytes {
        let keys = [
            (0, 3, 11),
            (1, 4, 12),
            (2, 1, 8),
            (3, 1, 12),
            (18, 0, 2),
            (19, 2, 7),
            (32, 1, 4),
        ];
        let api_keys: Vec<ApiVersion> = keys
            .iter()
            .map(|&(k, min, max)| {
                ApiVersion::default()
                    .with_api_key(k)
                    .with_min_version(min)
                    .with_max_version(max)
            })
            .collect();
        let mut response = ApiVersionsResponse::default().with_api_keys(api_keys);
        if v >= 3 && self.reject_v3 {
            response = response.with_error_code(35);
            return frame_out(c, 0, &response);
        }
        frame_out(c, v, &response)
    }

    fn metadata(&self, r: &MetadataRequest) -> MetadataResponse {
        self.metadata_requests.fetch_add(1, Ordering::SeqCst);
        let broker = MetadataResponseBroker::default()
            .with_node_id(BrokerId(1))
            .with_host(StrBytes::from_static_str("127.0.0.1"))
            .with_port(i32::from(self.port));
        let wanted: Vec<String> = match &r.topics {
            None => vec![TOPIC.to_owned()],
            Some(ts) => ts
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                .collect(),
        };
        let topics = wanted
            .iter()
            .map(|n| {
                let t = MetadataResponseTopic::default().with_name(Some(name(n)));
                if n != TOPIC {
                    return t.with_error_code(3);
                }
                t.with_partitions(
                    (0..PARTITIONS)
                        .map(|p| {
                            MetadataResponsePartition::default()
                                .with_partition_index(p)
                                .with_leader_id(BrokerId(1))
                                .with_replica_nodes(vec![BrokerId(1)])
                                .with_isr_nodes(vec![BrokerId(1)])
                        })
                        .collect(),
                )
            })
            .collect();
        MetadataResponse::default()
            .with_brokers(vec![broker])
            .with_controller_id(BrokerId(1))
            .with_topics(topics)
    }

    fn produce(&self, r: &ProduceRequest) -> ProduceResponse {
        let fail = self.fail_next_produce.swap(false, Ordering::SeqCst);
        let mut state = self.state.lock().expect("state");
        let mut partitions = Vec::new();
        for p in &r.topic_data[0].partition_data {
            let mut response = PartitionProduceResponse::default().with_index(p.index);
            if fail {
                partitions.push(response.with_error_code(6));
                continue;
            }
            let batch = p.records.clone().expect("records");
            let base = *state.next.get(&p.index).unwrap_or(&0);
            let count = i32::from_be_bytes([batch[57], batch[58], batch[59], batch[60]]);
            let mut patched = BytesMut::from(&batch[..]);
            patched[..8].copy_from_slice(&base.to_be_bytes());
            state
                .logs
                .entry(p.index)
                .or_default()
                .push((base, patched.freeze()));
            state.next.insert(p.index, base + i64::from(count));
            response = response.with_base_offset(base);
            partitions.push(response);
        }
        let topic = TopicProduceResponse::default()
            .with_name(r.topic_data[0].name.clone())
            .with_partition_responses(partitions);
        ProduceResponse::default().with_responses(vec![topic])
    }

    fn list_offsets(&self, r: &ListOffsetsRequest) -> ListOffsetsResponse {
        let state = self.state.lock().expect("state");
        let partitions = r.topics[0]
            .partitions
            .iter()
            .map(|p| {
                let end = *state.next.get(&p.partition_index).unwrap_or(&0);
                let offset = if p.timestamp == -2 { 0 } else { end };
                ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_offset(offset)
            })
            .collect();
        ListOffsetsResponse::default().with_topics(vec![ListOffsetsTopicResponse::default()
            .with_name(r.topics[0].name.clone())
            .with_partitions(partitions)])
    }

    fn fetch(&self, r: &FetchRequest) -> FetchResponse {
        let state = self.state.lock().expect("state");
        let partitions = r.topics[0]
            .partitions
            .iter()
            .map(|p| {
                let end = *state.next.get(&p.partition).unwrap_or(&0);
                let d = PartitionData::default()
                    .with_partition_index(p.partition)
                    .with_high_watermark(end)
                    .with_log_start_offset(0);
                if p.fetch_offset > end {
                    return d.with_error_code(1);
                }
                let mut data = BytesMut::new();
                let log = state.logs.get(&p.partition).cloned().unwrap_or_default();
                let mut tail = None;
                for (base, batch) in &log {
                    let count = i64::from(i32::from_be_bytes([
                        batch[57], batch[58], batch[59], batch[60],
                    ]));
                    if base + count > p.fetch_offset {
                        data.extend_from_slice(batch);
                        tail.get_or_insert_with(|| batch.clone());
                    }
                }
                // End with a truncated batch, as a size-limited fetch may.
                if let Some(t) = tail {
                    data.extend_from_slice(&t[..30]);
                }
                d.with_records(Some(data.freeze()))
            })
            .collect();
        FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic(r.topics[0].topic.clone())
            .with_partitions(partitions)])
    }
}

fn client_for(mock: &Mock) -> Client {
    let config = ClientConfig::new(&format!("127.0.0.1:{}", mock.port), Duration::from_secs(5));
    Client::connect(config).expect("connect")
}

fn records(values: &[&str], keyed: bool) -> Bytes {
    let rs: Vec<ProducerRecord> = values
        .iter()
        .map(|v| ProducerRecord {
            key: keyed.then(|| Bytes::from(format!("key-{v}"))),
            value: Some(Bytes::from(v.to_string())),
        })
        .collect();
    encode_batch(&rs, Compression::Gzip, 1).expect("batch")
}

fn fetch_all(client: &mut Client, partition: i32, from: i64) -> Vec<ConsumerRecord> {
    let position = FetchPosition {
        partition,
        offset: from,
        max_bytes: 1 << 20,
    };
    let mut fetched = client.fetch(TOPIC, &[position], &FetchOptions::default());
    let data = fetched.remove(0).result.expect("fetch");
    assert!(data.records.truncated, "mock ends in a partial batch");
    data.records.records
}

#[test]
fn produce_then_fetch_end_to_end() {
    for reject_v3 in [false, true] {
        let mock = start_mock(reject_v3);
        let mut client = client_for(&mock);
        let topic = client.topic(TOPIC, false).expect("topic");
        assert_eq!(topic.partition_count(), 2);

        let results = client.produce(
            TOPIC,
            vec![(0, records(&["a", "b"], true)), (1, records(&["c"], false))],
            Acks::All,
        );
        assert!(results.iter().all(|r| r.result.is_ok()), "{results:?}");
        let results = client.produce(TOPIC, vec![(0, records(&["d"], false))], Acks::Leader);
        assert_eq!(results[0].result.as_ref().ok(), Some(&2));

        let latest = client
            .list_offsets(TOPIC, &[0, 1], OffsetSpec::Latest)
            .expect("latest");
        assert_eq!(latest, vec![(0, 3), (1, 1)]);
        let earliest = client
            .list_offsets(TOPIC, &[0, 1], OffsetSpec::Earliest)
            .expect("earliest");
        assert_eq!(earliest, vec![(0, 0), (1, 0)]);

        let got = fetch_all(&mut client, 0, 1);
        let values: Vec<_> = got
            .iter()
            .map(|r| r.value.clone().expect("value"))
            .collect();
        assert_eq!(values, vec![Bytes::from("b"), Bytes::from("d")]);
        assert_eq!(got[0].key.as_deref(), Some(&b"key-b"[..]));
        assert_eq!(got[1].offset, 2);
    }
}

#[test]
fn retry_after_not_leader() {
    let mock = start_mock(false);
    let mut client = client_for(&mock);
    client.topic(TOPIC, false).expect("topic");
    let before = mock.metadata_requests.load(Ordering::SeqCst);
    mock.fail_next_produce.store(true, Ordering::SeqCst);
    let results = client.produce(TOPIC, vec![(1, records(&["x"], false))], Acks::All);
    assert_eq!(results[0].result.as_ref().ok(), Some(&0));
    assert_eq!(mock.metadata_requests.load(Ordering::SeqCst), before + 1);
}

#[test]
fn acks_zero_gets_no_response() {
    let mock = start_mock(false);
    let mut client = client_for(&mock);
    client.topic(TOPIC, false).expect("topic");
    let results = client.produce(TOPIC, vec![(0, records(&["x"], false))], Acks::None);
    assert_eq!(results[0].result.as_ref().ok(), Some(&-1));
    // The connection stays in step: the next request's response matches.
    let results = client.produce(TOPIC, vec![(0, records(&["y"], false))], Acks::All);
    assert_eq!(results[0].result.as_ref().ok(), Some(&1));
}

#[test]
fn errors_carry_kafka_names() {
    let mock = start_mock(false);
    let mut client = client_for(&mock);
    let err = client.topic("missing", false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Metadata: UNKNOWN_TOPIC_OR_PARTITION (3) on missing"
    );
    let exists = NewTopic {
        name: TOPIC.to_owned(),
        partitions: Some(1),
        replication_factor: None,
        configs: vec![],
    };
    let err = client.create_topic(&exists).unwrap_err();
    assert_eq!(
        err.to_string(),
        "CreateTopics: TOPIC_ALREADY_EXISTS (36) on t"
    );
    client
        .create_topic(&NewTopic {
            name: "fresh".to_owned(),
            ..exists
        })
        .expect("create");
    let configs = client.describe_topic_configs(TOPIC).expect("configs");
    assert!(configs[0].is_topic_override());
    // DeleteTopics is not offered by the mock: a version error, not a hang.
    let err = client.delete_topic(TOPIC).unwrap_err();
    assert!(matches!(
        err,
        ClientError::UnsupportedVersion {
            api: "DeleteTopics",
            ..
        }
    ));
    // Fetching past the end is reported clearly.
    let position = FetchPosition {
        partition: 0,
        offset: 99,
        max_bytes: 1024,
    };
    let err = client
        .fetch(TOPIC, &[position], &FetchOptions::default())
        .remove(0)
        .result
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "t-0: offset 99 is out of range (log start 0, high watermark 0)"
    );
}
