//! Hardening items 12 and 13 (issue 10): the cluster's metadata must stay
//! servable whatever clients create, and creating topics must cost what
//! changed. Against `tidemark dev` (the embedded quorum) and a real
//! `tidemark quorum` process with fake brokers.
use crate::common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::quorum::Quorum;
use common::{set_topic_config, Broker, RawConn};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use quorum::client::ViewChange;
use quorum::{BrokerInfo, ClientError, QuorumClient};

/// The tests of this file take turns: the timing of the 10,000 topics must
/// not depend on the others' load.
fn run_alone() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

/// Kafka's INVALID_CONFIG.
const INVALID_CONFIG: i16 = 40;
/// The quorum's frame limit, which the view once had to fit in.
const FRAME_BYTES_MAX: usize = 16 << 20;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn new_topic(topic: &str, configs: &[(&str, String)]) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.to_string()))
                        .with_value(Some(StrBytes::from_string(v.clone())))
                })
                .collect(),
        )
}

fn create_topics(conn: &mut RawConn, topics: Vec<CreatableTopic>) -> CreateTopicsResponse {
    let version = conn.negotiate::<CreateTopicsRequest>();
    let request = CreateTopicsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(30_000);
    conn.request(&request, version)
}

fn delete_topics(conn: &mut RawConn, topics: &[String]) -> DeleteTopicsResponse {
    let version = conn.negotiate::<DeleteTopicsRequest>().min(5);
    let request = DeleteTopicsRequest::default()
        .with_topic_names(topics.iter().map(|t| name(t)).collect())
        .with_timeout_ms(30_000);
    conn.request(&request, version)
}

/// Every topic the broker's Metadata lists.
fn listed_topics(conn: &mut RawConn) -> BTreeSet<String> {
    let version = conn.negotiate::<MetadataRequest>();
    let request = MetadataRequest::default().with_topics(None);
    let response: MetadataResponse = conn.request(&request, version);
    response
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect()
}

/// A topic config as DescribeConfigs shows it.
fn described(conn: &mut RawConn, topic: &str, key: &str) -> Option<String> {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let version = conn.negotiate::<DescribeConfigsRequest>();
    let resource = DescribeConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(StrBytes::from_string(topic.to_string()))
        .with_configuration_keys(Some(vec![StrBytes::from_string(key.to_string())]));
    let response: DescribeConfigsResponse = conn.request(
        &DescribeConfigsRequest::default().with_resources(vec![resource]),
        version,
    );
    let result = response.results.first()?;
    let config = result.configs.iter().find(|c| c.name.as_str() == key)?;
    config.value.as_ref().map(|v| v.to_string())
}

fn wait_for_topics(conn: &mut RawConn, wanted: &BTreeSet<String>, what: &str) {
    let mut last = BTreeSet::new();
    let found = common::wait_until(Duration::from_secs(30), what, || {
        last = listed_topics(conn);
        Some(wanted.is_subset(&last)).filter(|ok| *ok).or_else(|| {
            std::thread::sleep(Duration::from_millis(200));
            None
        })
    });
    assert!(found, "{what}: {:?} are missing", wanted.difference(&last));
}

#[test]
fn huge_config_values_are_refused_or_canonical_and_every_topic_stays_deletable() {
    let _alone = run_alone();
    let mut broker = Broker::start();
    let mut conn = RawConn::connect(&broker);
    // Five 3.5 MiB values of leading zeros once pushed the view past 16 MiB.
    let huge = format!("{}1", "0".repeat(3_500_000));
    let mut refused = 0;
    for i in 0..5 {
        let topic = format!("huge-{i}");
        let response = create_topics(
            &mut conn,
            vec![new_topic(&topic, &[("retention.ms", huge.clone())])],
        );
        let code = response.topics[0].error_code;
        assert!(
            code == 0 || code == INVALID_CONFIG,
            "CreateTopics {topic}: {code}"
        );
        if code == 0 {
            assert_eq!(
                described(&mut conn, &topic, "retention.ms").as_deref(),
                Some("1")
            );
        } else {
            refused += 1;
        }
    }
    println!("{refused} of 5 huge values refused with INVALID_CONFIG");
    // Short leading zeros are a valid long, stored as its decimal.
    let zeros = format!("{}1", "0".repeat(1000));
    let response = create_topics(
        &mut conn,
        vec![new_topic("zeros", &[("retention.ms", zeros)])],
    );
    assert_eq!(response.topics[0].error_code, 0);
    assert_eq!(
        described(&mut conn, "zeros", "retention.ms").as_deref(),
        Some("1")
    );
    let alter = set_topic_config(&broker, "zeros", "retention.ms", &huge);
    assert_eq!(
        alter, INVALID_CONFIG,
        "IncrementalAlterConfigs with a 3.5 MiB value"
    );
    let alter = set_topic_config(&broker, "zeros", "segment.ms", "00000060000");
    assert_eq!(alter, 0);
    assert_eq!(
        described(&mut conn, "zeros", "segment.ms").as_deref(),
        Some("60000")
    );

    let others: Vec<String> = (0..20).map(|i| format!("plain-{i}")).collect();
    let response = create_topics(
        &mut conn,
        others.iter().map(|t| new_topic(t, &[])).collect(),
    );
    assert!(response.topics.iter().all(|t| t.error_code == 0));
    let mut all: BTreeSet<String> = others.iter().cloned().collect();
    all.insert("zeros".into());
    wait_for_topics(&mut conn, &all, "every topic listed");

    broker.restart();
    let mut conn = RawConn::connect(&broker);
    wait_for_topics(&mut conn, &all, "every topic listed after a restart");
    let doomed: Vec<String> = all.iter().cloned().collect();
    let response = delete_topics(&mut conn, &doomed);
    for r in &response.responses {
        assert_eq!(r.error_code, 0, "DeleteTopics {:?}", r.name);
    }
    broker.restart();
    let mut conn = RawConn::connect(&broker);
    let listed = listed_topics(&mut conn);
    assert!(
        listed.is_disjoint(&all),
        "deleted topics came back: {listed:?}"
    );
    broker.assert_alive();
}

const SECRET: &str = "hardening-secret";

fn fake_broker(id: i32) -> BrokerInfo {
    BrokerInfo {
        incarnation: None,
        listeners: Vec::new(),
        broker_id: model::BrokerId(id),
        host: "127.0.0.1".into(),
        port: 19000 + id as u16,
        rack: None,
    }
}

/// Keeps a fake broker's session alive (registering again when told to).
fn keep_alive(cluster: &Quorum, id: i32) -> tokio::task::JoinHandle<()> {
    let mut client = QuorumClient::new(cluster.endpoint_list(), Some(SECRET.into()))
        .with_timeouts(Duration::from_secs(3), Duration::from_secs(30));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Err(ClientError::UnknownBroker(_)) = client.heartbeat(model::BrokerId(id)).await
            {
                let _ = client.register_broker(fake_broker(id)).await;
            }
        }
    })
}

fn status_has_view(cluster: &Quorum) -> Option<u64> {
    let out = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args([
            "cluster",
            "status",
            "--json",
            "--quorum",
            &cluster.endpoints(),
        ])
        .env("TIDEMARK_QUORUM_SECRET", SECRET)
        .output()
        .ok()?;
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let topics = status.get("view")?.get("topics")?.as_object()?.len();
    Some(topics as u64)
}

/// A view of 25 topics of 10,000 three-replica partitions (valid for Kafka,
/// and about 22 MiB of JSON) is served in pages and deltas: reads, watches
/// from scratch, the CLI, deletion and a restart all work.
#[test]
fn a_view_past_the_frame_limit_is_read_watched_and_deleted_in_pieces() {
    let _alone = run_alone();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(view_past_the_frame_limit());
}

async fn view_past_the_frame_limit() {
    let mut cluster = Quorum::start_with(1, Some(SECRET), Some(50));
    let mut client = QuorumClient::new(cluster.endpoint_list(), Some(SECRET.into()))
        .with_timeouts(Duration::from_secs(10), Duration::from_secs(30));
    let mut heartbeats = Vec::new();
    for id in 1..=3 {
        client
            .register_broker(fake_broker(id))
            .await
            .expect("register");
        heartbeats.push(keep_alive(&cluster, id));
    }
    let topics: Vec<String> = (0..25).map(|i| format!("wide-{i:02}")).collect();
    for topic in &topics {
        let created = client
            .create_topic(topic, 10_000, 3, Default::default())
            .await;
        created.unwrap_or_else(|e| panic!("create {topic}: {e}"));
    }
    let view = client.read().await.expect("a paged linearizable read");
    assert_eq!(view.topics.len(), 25);
    let bytes = serde_json::to_vec(&view).unwrap().len();
    assert!(bytes > FRAME_BYTES_MAX, "the view is only {bytes} bytes");
    println!("view of {bytes} bytes");

    let mut watcher = QuorumClient::new(cluster.endpoint_list(), Some(SECRET.into()))
        .with_timeouts(Duration::from_secs(10), Duration::from_secs(30));
    let Ok(ViewChange::Full(full)) = watcher.watch_changes(0, Duration::from_secs(1)).await else {
        panic!("a watcher from scratch gets the view in pages");
    };
    assert_eq!(full.topics.len(), 25);
    assert_eq!(
        status_has_view(&cluster),
        Some(25),
        "cluster status past 16 MiB"
    );

    client
        .delete_topic(&topics[0])
        .await
        .expect("delete a topic");
    match watcher
        .watch_changes(full.revision, Duration::from_secs(5))
        .await
    {
        Ok(ViewChange::Delta(delta)) => {
            assert_eq!(delta.removed, vec![topics[0].clone()]);
            assert!(delta.changed.is_empty());
        }
        other => panic!("expected a delta, got {other:?}"),
    }

    cluster.kill(0);
    cluster.spawn(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let view = loop {
        match client.read().await {
            Ok(view) => break view,
            Err(ClientError::Unavailable { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("read after a restart: {e}"),
        }
    };
    assert_eq!(view.topics.len(), 24);
    for topic in &topics[1..] {
        client
            .delete_topic(topic)
            .await
            .expect("delete after a restart");
    }
    assert!(client.read().await.expect("read").topics.is_empty());
    heartbeats.iter().for_each(|h| h.abort());
}

#[test]
fn ten_thousand_topics_in_batches_of_a_hundred_take_under_a_minute() {
    let _alone = run_alone();
    const TOPICS: usize = 10_000;
    const BATCH: usize = 100;
    let broker = Broker::start();
    let mut conn = RawConn::connect(&broker);
    let started = Instant::now();
    let mut lap = Instant::now();
    for batch in 0..TOPICS / BATCH {
        let topics = (0..BATCH)
            .map(|i| new_topic(&format!("many-{:05}", batch * BATCH + i), &[]))
            .collect();
        let response = create_topics(&mut conn, topics);
        for t in &response.topics {
            assert_eq!(
                t.error_code, 0,
                "CreateTopics {:?}: {:?}",
                t.name, t.error_message
            );
        }
        let done = (batch + 1) * BATCH;
        if done.is_multiple_of(1000) {
            println!(
                "topics {:>5}..{done:>5}: {:.2} s",
                done - 1000,
                lap.elapsed().as_secs_f64()
            );
            lap = Instant::now();
        }
    }
    let total = started.elapsed();
    println!("10,000 topics created in {:.1} s", total.as_secs_f64());
    let listing = Instant::now();
    let listed = listed_topics(&mut conn);
    println!(
        "Metadata of every topic in {:.1} s",
        listing.elapsed().as_secs_f64()
    );
    let ours = listed.iter().filter(|t| t.starts_with("many-")).count();
    assert_eq!(ours, TOPICS, "Metadata lists every topic");
    broker.discard();
    assert!(
        total < Duration::from_secs(60),
        "10,000 topics took {total:?}"
    );
}
