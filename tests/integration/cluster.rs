//! Clusters end to end: a 3-node quorum service and 3 brokers on loopback
//! ports, topics with replication factor 3, driven with librdkafka (and a
//! raw Kafka connection where an exact error code matters). Brokers and
//! quorum nodes are killed with SIGKILL while clients run.
use crate::common;

use common::quorum::Quorum;
use common::{
    consume_all, create_replicated_topic, enqueue, producer, topic_name, wait_until, Broker,
    RawConn, CLIENT_TIMEOUT,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::Producer;
use std::collections::{BTreeMap, HashSet};
use std::thread;
use std::time::Duration;

/// Failovers here take a session timeout plus an election: seconds.
const FAILOVER_WAIT: Duration = Duration::from_secs(60);
const BROKERS: i32 = 3;

struct TestCluster {
    quorum: Quorum,
    brokers: Vec<Broker>,
}

/// What every test cluster's brokers are started with.
const CLUSTER_SETTINGS: [(&str, &str); 5] = [
    ("broker.heartbeat.interval.ms", "300"),
    ("group.initial.rebalance.delay.ms", "0"),
    ("replica.lag.time.max.ms", "5000"),
    ("replica.fetch.wait.max.ms", "100"),
    ("default.replication.factor", "3"),
];

impl TestCluster {
    fn start() -> TestCluster {
        TestCluster::start_with(|_| (Vec::new(), Vec::new()))
    }

    /// A cluster whose broker `id` also gets the settings and environment
    /// `extra(id)` gives.
    fn start_with(
        extra: impl Fn(i32) -> (Vec<(&'static str, String)>, Vec<(&'static str, String)>),
    ) -> TestCluster {
        TestCluster::start_on(Quorum::start(3), extra)
    }

    /// The same, on `quorum`.
    fn start_on(
        quorum: Quorum,
        extra: impl Fn(i32) -> (Vec<(&'static str, String)>, Vec<(&'static str, String)>),
    ) -> TestCluster {
        let endpoints = quorum.endpoints();
        let brokers = (1..=BROKERS)
            .map(|id| {
                let (settings, environment) = extra(id);
                let mut all: Vec<(&str, &str)> = CLUSTER_SETTINGS.to_vec();
                all.extend(settings.iter().map(|(k, v)| (*k, v.as_str())));
                let environment: Vec<(&str, &str)> =
                    environment.iter().map(|(k, v)| (*k, v.as_str())).collect();
                Broker::start_member_with_environment(id, &endpoints, &all, &environment)
            })
            .collect();
        let cluster = TestCluster { quorum, brokers };
        cluster.wait_for_brokers(0, BROKERS as usize);
        cluster
    }

    /// Broker `i` (0-based) as a cluster member has id `i + 1`.
    fn broker(&self, id: i32) -> &Broker {
        &self.brokers[(id - 1) as usize]
    }

    fn broker_mut(&mut self, id: i32) -> &mut Broker {
        &mut self.brokers[(id - 1) as usize]
    }

    fn wait_for_brokers(&self, via: usize, count: usize) {
        let consumer = metadata_client(&self.brokers[via]);
        wait_until(FAILOVER_WAIT, "every broker registered", || {
            let md = consumer.fetch_metadata(None, CLIENT_TIMEOUT).ok()?;
            (md.brokers().len() == count).then_some(())
        });
    }
}

fn metadata_client(broker: &Broker) -> BaseConsumer {
    common::consumer(broker)
}

/// (leader, replicas, isr) of a partition as `via` reports it.
fn partition_state(via: &Broker, topic: &str, partition: i32) -> Option<(i32, Vec<i32>, Vec<i32>)> {
    let md = metadata_client(via)
        .fetch_metadata(Some(topic), CLIENT_TIMEOUT)
        .ok()?;
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    let p = t.partitions().iter().find(|p| p.id() == partition)?;
    let sorted = |ids: &[i32]| {
        let mut v = ids.to_vec();
        v.sort_unstable();
        v
    };
    Some((p.leader(), sorted(p.replicas()), sorted(p.isr())))
}

fn wait_for_isr(via: &Broker, topic: &str, partition: i32, isr: &[i32]) -> i32 {
    wait_until(
        FAILOVER_WAIT,
        &format!("ISR {isr:?} of {topic}/{partition}"),
        || {
            let (leader, _, got) = partition_state(via, topic, partition)?;
            (got == isr && leader > 0).then_some(leader)
        },
    )
}

#[test]
fn replicas_spread_and_every_broker_lists_the_cluster() {
    let cluster = TestCluster::start();
    let topic = topic_name("spread");
    create_topic(cluster.broker(1), &topic, 6, &[]);
    let mut leaders = BTreeMap::new();
    for p in 0..6 {
        let leader = wait_for_isr(cluster.broker(2), &topic, p, &[1, 2, 3]);
        *leaders.entry(leader).or_insert(0) += 1;
        let (_, replicas, _) = partition_state(cluster.broker(3), &topic, p).expect("metadata");
        assert_eq!(replicas, vec![1, 2, 3], "replication factor 3 by default");
    }
    assert_eq!(
        leaders.len(),
        3,
        "leaders spread over the brokers: {leaders:?}"
    );
}

#[test]
fn killing_a_partition_leader_keeps_every_acknowledged_record() {
    let mut cluster = TestCluster::start();
    kill_the_leader_under_load_and_read_back_every_acknowledged_record(&mut cluster);
}

/// Brokers replicate over a SASL_SSL listener of their own: TLS both ways
/// (each broker's certificate checked against the CA and the host it
/// advertises, and asked for by the others), then a SCRAM-SHA-512 login as
/// the brokers' user, a super user of the authorizer, as a Kafka operator
/// sets it up; and they reach the quorum over mutual TLS. Replicas join the
/// ISR over it, and a failover under load loses no acknowledged record.
/// Clients use the PLAINTEXT listener.
#[test]
fn brokers_replicating_over_sasl_ssl_with_mutual_tls_lose_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = start_secure_cluster(dir.path(), |_| REPLICATOR_PASSWORD);
    kill_the_leader_under_load_and_read_back_every_acknowledged_record(&mut cluster);
}

/// A broker whose own login is refused (a wrong password in its JAAS
/// entry) cannot replicate: it drops out of the ISR, the others go on, and
/// its log says why.
#[test]
fn a_broker_with_the_wrong_replication_password_drops_out_of_the_isr_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start_secure_cluster(dir.path(), |id| match id {
        3 => "not-the-password",
        _ => REPLICATOR_PASSWORD,
    });
    let topic = topic_name("refused-follower");
    create_topic(cluster.broker(1), &topic, 3, &[]);
    // Leaders spread over the brokers: the partitions broker 3 does not
    // lead lose it from their ISR and still take acks=all records.
    let mut checked = 0;
    for partition in 0..3 {
        let leader = wait_until(FAILOVER_WAIT, "a leader", || {
            let (leader, _, _) = partition_state(cluster.broker(1), &topic, partition)?;
            (leader > 0).then_some(leader)
        });
        if leader == 3 {
            continue;
        }
        wait_for_isr(cluster.broker(1), &topic, partition, &[1, 2]);
        let producer = producer(cluster.broker(1), &[("acks", "all")]);
        let acked = common::produce_ok(
            &producer,
            &topic,
            &[common::Rec::value("kept").to(partition)],
        );
        assert_eq!(acked, [(partition, 0)]);
        checked += 1;
    }
    assert!(
        checked >= 1,
        "some partition is led by a broker that logs in"
    );
    wait_until(FAILOVER_WAIT, "broker 3 says its login was refused", || {
        let log = cluster.broker(3).output();
        (log.contains("the leader refused this follower") && log.contains("SASL login"))
            .then_some(())
    });
}

const REPLICATOR_PASSWORD: &str = "replicator-secret";

/// Three brokers whose inter-broker listener is SASL_SSL with mutual TLS
/// and SCRAM-SHA-512, broker `id` logging in with `password_of(id)`, on a
/// three-node quorum that speaks mutual TLS only.
fn start_secure_cluster(
    dir: &std::path::Path,
    password_of: impl Fn(i32) -> &'static str,
) -> TestCluster {
    use common::secure::Ca;
    let ca = Ca::new(dir, "cluster-ca");
    let stores: Vec<_> = (1..=BROKERS)
        .map(|id| ca.issue(dir, &format!("broker-{id}"), &format!("broker-{id}"), false))
        .collect();
    let internal_ports: Vec<u16> = (1..=BROKERS).map(|_| common::free_port()).collect();
    let node = ca.issue(dir, "quorum-node", "quorum", false);
    let node_keys = format!(
        "\"ssl.keystore.location\" = \"{}\"\n\"ssl.truststore.location\" = \"{}\"\n",
        node.keystore.display(),
        ca.pem.display()
    );
    let status_config = dir.join("status.toml");
    std::fs::write(
        &status_config,
        format!(
            "\"quorum.ssl.client.enable\" = true\n\"quorum.ssl.keystore.location\" = \"{}\"\n\"quorum.ssl.truststore.location\" = \"{}\"\n",
            stores[0].keystore.display(),
            ca.pem.display()
        ),
    )
    .unwrap();
    let quorum = Quorum::start_tls(3, &node_keys, status_config);
    TestCluster::start_on(quorum, |id| {
        let i = (id - 1) as usize;
        let settings = vec![
            ("quorum.ssl.client.enable", "true".to_string()),
            (
                "quorum.ssl.keystore.location",
                stores[i].keystore.display().to_string(),
            ),
            (
                "quorum.ssl.truststore.location",
                ca.pem.display().to_string(),
            ),
            (
                "listeners",
                format!(
                    "PLAINTEXT://127.0.0.1:{{port}},INTERNAL://127.0.0.1:{}",
                    internal_ports[i]
                ),
            ),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,INTERNAL:SASL_SSL".to_string(),
            ),
            ("inter.broker.listener.name", "INTERNAL".to_string()),
            (
                "listener.name.internal.ssl.keystore.location",
                stores[i].keystore.display().to_string(),
            ),
            (
                "listener.name.internal.ssl.truststore.location",
                ca.pem.display().to_string(),
            ),
            (
                "listener.name.internal.ssl.client.auth",
                "required".to_string(),
            ),
            (
                "listener.name.internal.sasl.enabled.mechanisms",
                "SCRAM-SHA-512".to_string(),
            ),
            (
                "sasl.mechanism.inter.broker.protocol",
                "SCRAM-SHA-512".to_string(),
            ),
            (
                "listener.name.internal.scram-sha-512.sasl.jaas.config",
                format!(
                    r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="replicator" password="{}";"#,
                    password_of(id)
                ),
            ),
            (
                "authorizer.class.name",
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer".to_string(),
            ),
            // The test's clients come in anonymously over PLAINTEXT.
            ("super.users", "User:replicator;User:ANONYMOUS".to_string()),
        ];
        let environment = vec![(
            "TIDEMARK_BOOTSTRAP_USER",
            format!("replicator:{REPLICATOR_PASSWORD}"),
        )];
        (settings, environment)
    })
}

/// Produces 3,000 records with an idempotent producer, SIGKILLs the
/// partition's leader after the first hundred are acknowledged, and reads
/// the log back from the new leader: every acknowledged record once, at
/// its offset. Then the old leader returns and rejoins the ISR.
fn kill_the_leader_under_load_and_read_back_every_acknowledged_record(cluster: &mut TestCluster) {
    let topic = topic_name("failover");
    create_topic(
        cluster.broker(1),
        &topic,
        1,
        &[("min.insync.replicas", "2")],
    );
    let leader = wait_for_isr(cluster.broker(1), &topic, 0, &[1, 2, 3]);
    let survivor = if leader == 1 { 2 } else { 1 };
    let producer = producer(
        cluster.broker(survivor),
        &[
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "60000"),
            ("retry.backoff.ms", "50"),
        ],
    );
    let total = 3000usize;
    for i in 0..total {
        enqueue(
            &producer,
            &topic,
            &common::Rec::value(format!("record-{i}")).to(0),
        );
        if i == total / 3 {
            // Kill while batches are in flight, once some are acknowledged.
            wait_until(FAILOVER_WAIT, "first acknowledgments", || {
                producer.poll(Duration::from_millis(5));
                (producer.context().log.lock().unwrap().len() > 100).then_some(())
            });
            cluster.broker_mut(leader).kill9();
        }
        if i % 100 == 0 {
            producer.poll(Duration::from_millis(1));
        }
    }
    producer
        .flush(Duration::from_secs(90))
        .expect("flush after failover");
    producer.poll(Duration::from_millis(100));
    let reports = producer.context().log.lock().unwrap().clone();
    let acked: BTreeMap<String, i64> = reports
        .iter()
        .filter_map(|(_, value, outcome)| {
            let value = String::from_utf8(value.clone()?).ok()?;
            outcome.as_ref().ok().map(|(_, offset)| (value, *offset))
        })
        .collect();
    assert!(
        acked.len() > total / 3,
        "records were acknowledged after the failover: {}",
        acked.len()
    );

    let new_leader = wait_until(FAILOVER_WAIT, "a new leader", || {
        let (l, _, _) = partition_state(cluster.broker(survivor), &topic, 0)?;
        (l > 0 && l != leader).then_some(l)
    });
    let messages = consume_all(cluster.broker(new_leader), &topic, &[0])
        .remove(&0)
        .unwrap();
    common::assert_dense(&messages, 0, "offsets after failover");
    let mut seen = HashSet::new();
    let mut stored = BTreeMap::new();
    for m in &messages {
        let value = String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap();
        assert!(seen.insert(value.clone()), "{value} is stored twice");
        stored.insert(value, m.offset());
    }
    for (value, offset) in &acked {
        assert_eq!(
            stored.get(value),
            Some(offset),
            "acknowledged {value} at {offset} is kept there"
        );
    }

    eprintln!(
        "acknowledged {} of {total}, stored {}",
        acked.len(),
        messages.len()
    );
    // The old leader comes back: it truncates what it alone had, catches up
    // and rejoins the ISR.
    cluster.broker_mut(leader).restart();
    wait_for_isr(cluster.broker(survivor), &topic, 0, &[1, 2, 3]);
}

#[test]
fn min_insync_replicas_refuses_acks_all_until_a_replica_returns() {
    let mut cluster = TestCluster::start();
    let topic = topic_name("min-isr");
    create_topic(
        cluster.broker(1),
        &topic,
        1,
        &[("min.insync.replicas", "2")],
    );
    let leader = wait_for_isr(cluster.broker(1), &topic, 0, &[1, 2, 3]);
    let others: Vec<i32> = (1..=BROKERS).filter(|&b| b != leader).collect();
    for &b in &others {
        cluster.broker_mut(b).kill9();
    }
    wait_for_isr(cluster.broker(leader), &topic, 0, &[leader]);
    let mut conn = RawConn::connect(cluster.broker(leader));
    assert_eq!(
        raw_produce(&mut conn, &topic, -1),
        19,
        "acks=all: NOT_ENOUGH_REPLICAS"
    );
    assert_eq!(raw_produce(&mut conn, &topic, 1), 0, "acks=1 still works");

    cluster.broker_mut(others[0]).restart();
    let mut isr = vec![leader, others[0]];
    isr.sort_unstable();
    wait_for_isr(cluster.broker(leader), &topic, 0, &isr);
    assert_eq!(
        raw_produce(&mut conn, &topic, -1),
        0,
        "acks=all with two in sync"
    );
}

#[test]
fn the_cluster_outlives_its_quorum_leader() {
    let mut cluster = TestCluster::start();
    let topic = topic_name("quorum-kill");
    create_topic(cluster.broker(1), &topic, 2, &[]);
    wait_for_isr(cluster.broker(1), &topic, 0, &[1, 2, 3]);
    let leader = cluster.quorum.wait_for_leader(FAILOVER_WAIT);
    cluster.quorum.kill(leader);

    // Produce and fetch do not need the quorum.
    let p = producer(cluster.broker(2), &[]);
    let recs: Vec<common::Rec> = (0..50)
        .map(|i| common::Rec::value(format!("v{i}")).to(i % 2))
        .collect();
    common::produce_ok(&p, &topic, &recs);
    let got = consume_all(cluster.broker(3), &topic, &[0, 1]);
    assert_eq!(got.values().map(Vec::len).sum::<usize>(), 50);

    // A new quorum leader takes topic creation.
    let next = cluster.quorum.wait_for_leader(FAILOVER_WAIT);
    assert_ne!(next, leader);
    let second = topic_name("after-election");
    create_topic(cluster.broker(3), &second, 1, &[]);
    wait_for_isr(cluster.broker(1), &second, 0, &[1, 2, 3]);
    cluster.quorum.spawn(leader);
}

#[test]
fn a_consumer_group_resumes_after_its_coordinator_dies() {
    let mut cluster = TestCluster::start();
    let topic = topic_name("group-failover");
    create_topic(cluster.broker(1), &topic, 1, &[]);
    wait_for_isr(cluster.broker(1), &topic, 0, &[1, 2, 3]);
    let p = producer(cluster.broker(1), &[]);
    let recs: Vec<common::Rec> = (0..40)
        .map(|i| common::Rec::value(format!("v{i}")).to(0))
        .collect();
    common::produce_ok(&p, &topic, &recs);

    let group = "cluster-group";
    consume_and_commit(cluster.broker(2), group, &topic, 30);
    let offsets_partition = broker::group::offsets_partition(group, 50);
    let coordinator = wait_until(FAILOVER_WAIT, "the coordinator's partition", || {
        let (leader, _, isr) =
            partition_state(cluster.broker(1), "__consumer_offsets", offsets_partition)?;
        (isr.len() == 3).then_some(leader)
    });
    cluster.broker_mut(coordinator).kill9();
    let survivor = if coordinator == 1 { 2 } else { 1 };
    let first = first_offset_consumed(cluster.broker(survivor), group, &topic);
    assert_eq!(
        first, 30,
        "the group resumes at its commit, kept by the new coordinator"
    );
}

/// Consumes `count` records as a member of `group` and commits after them.
fn consume_and_commit(broker: &Broker, group: &str, topic: &str, count: i64) {
    let consumer = group_member(broker, group);
    consumer.subscribe(&[topic]).expect("subscribe");
    wait_until(FAILOVER_WAIT, "records to commit", || {
        let m = consumer.poll(Duration::from_millis(100))?.ok()?;
        if m.offset() + 1 < count {
            return None;
        }
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, rdkafka::Offset::Offset(count))
            .expect("offset");
        consumer
            .commit(&tpl, rdkafka::consumer::CommitMode::Sync)
            .ok()
    });
}

fn first_offset_consumed(broker: &Broker, group: &str, topic: &str) -> i64 {
    let consumer = group_member(broker, group);
    consumer.subscribe(&[topic]).expect("subscribe");
    wait_until(FAILOVER_WAIT, "a record after the failover", || {
        consumer
            .poll(Duration::from_millis(100))
            .and_then(|r| r.ok())
            .map(|m| m.offset())
    })
}

fn group_member(broker: &Broker, group: &str) -> BaseConsumer {
    common::consumer_with(
        broker,
        &[
            ("group.id", group),
            ("auto.offset.reset", "earliest"),
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "300"),
        ],
    )
}

/// A follower learns the leader's high watermark only from its next fetch
/// answer, so when the leader dies right after acknowledging acks=all
/// records, the broker elected next knows an older high watermark. While
/// the controller still lists a third, silent replica in the ISR (brokers
/// are expired one at a time), that high watermark cannot move: the new
/// leader must not tell a consumer that the log ends there (KIP-207's
/// OFFSET_NOT_AVAILABLE until it reaches the epoch's start), or a
/// consumer reading "up to the end" misses acknowledged records.
#[test]
fn a_new_leader_never_reports_a_log_end_below_acknowledged_records() {
    // Follower long polls that outlast the test's steps: a follower hears
    // of the high watermark its last fetch moved only when the poll ends.
    let mut cluster = TestCluster::start_with(|_| {
        (
            vec![
                ("replica.fetch.wait.max.ms", "4000".to_string()),
                ("replica.lag.time.max.ms", "10000".to_string()),
            ],
            Vec::new(),
        )
    });
    let topic = topic_name("epoch-start");
    create_topic(cluster.broker(1), &topic, 1, &[]);
    let leader = wait_for_isr(cluster.broker(1), &topic, 0, &[1, 2, 3]);
    let order = replica_order(cluster.broker(1), &topic, 0);
    // The controller moves leadership to the first other replica in order.
    let next = *order.iter().find(|&&b| b != leader).unwrap();
    let silent = *order.iter().find(|&&b| b != leader && b != next).unwrap();
    let records: Vec<common::Rec> = (0..10)
        .map(|i| common::Rec::value(format!("acked-{i}")).to(0))
        .collect();
    common::produce_ok(
        &producer(cluster.broker(leader), &[("acks", "all")]),
        &topic,
        &records,
    );
    cluster.broker_mut(leader).kill9();
    // Half a session later, before the leader's session lapses: `silent`
    // stops, so it is still an ISR member when `next` is elected, and it
    // never fetches from `next`.
    thread::sleep(Duration::from_millis(
        common::quorum::SESSION_TIMEOUT_MS / 2,
    ));
    let stopped = cluster.broker(silent).pid();
    // SAFETY: kill(2) on the pid of a child the harness has not reaped.
    unsafe {
        libc::kill(stopped as libc::pid_t, libc::SIGSTOP);
    }
    wait_until(FAILOVER_WAIT, "the next replica leads", || {
        let (l, _, _) = partition_state(cluster.broker(next), &topic, 0)?;
        (l == next).then_some(())
    });
    let (_, end) = common::watermarks(cluster.broker(next), &topic, 0);
    // SAFETY: as above; the broker is killed next in any case.
    unsafe {
        libc::kill(stopped as libc::pid_t, libc::SIGCONT);
    }
    cluster.broker_mut(silent).kill9();
    assert_eq!(
        end, 10,
        "the new leader's log end covers every acknowledged record"
    );
    let messages = consume_all(cluster.broker(next), &topic, &[0])
        .remove(&0)
        .unwrap();
    let values: Vec<String> = messages.iter().filter_map(common::value_str).collect();
    let expected: Vec<String> = (0..10).map(|i| format!("acked-{i}")).collect();
    assert_eq!(values, expected);
}

/// The replicas of a partition in the controller's order (the order it
/// elects leaders in), as `via` reports them.
fn replica_order(via: &Broker, topic: &str, partition: i32) -> Vec<i32> {
    let md = metadata_client(via)
        .fetch_metadata(Some(topic), CLIENT_TIMEOUT)
        .expect("metadata");
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .expect("topic");
    let p = t
        .partitions()
        .iter()
        .find(|p| p.id() == partition)
        .expect("partition");
    p.replicas().to_vec()
}

fn create_topic(broker: &Broker, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    create_replicated_topic(broker, name, partitions, 3, configs);
}

/// One record to partition 0 with `acks`; returns the partition's error code.
fn raw_produce(conn: &mut RawConn, topic: &str, acks: i16) -> i16 {
    let record = (
        1_700_000_000_000,
        None,
        Some(bytes::Bytes::from_static(b"raw")),
    );
    let batch = wire::batch::encode_records(&[record], Compression::None).expect("encode a batch");
    let request = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch))])]);
    let response = conn.request(&request, 9);
    response.responses[0].partition_responses[0].error_code
}

/// Kafka's kafka-verifiable-producer and kafka-verifiable-consumer, as
/// Kafka's and Redpanda's system tests run them, through a SIGKILL of the
/// partition leader: every acknowledged record is read back once, at the
/// offset it was acknowledged with.
#[test]
fn kafka_verifiable_producer_and_consumer_lose_nothing_when_the_leader_is_killed() {
    use common::kafka_tools::{assert_read_back_once, verifiable_consume, VerifiableProducer};
    let mut cluster = TestCluster::start();
    let topic = topic_name("verifiable-failover");
    create_topic(
        cluster.broker(1),
        &topic,
        1,
        &[("min.insync.replicas", "2")],
    );
    let leader = wait_for_isr(cluster.broker(1), &topic, 0, &[1, 2, 3]);
    let bootstrap: Vec<String> = cluster.brokers.iter().map(Broker::addr).collect();
    const RECORDS: usize = 8000;
    let producer = VerifiableProducer::start(&bootstrap.join(","), &topic, RECORDS, 1000);
    producer.wait_for_first_ack();
    std::thread::sleep(Duration::from_secs(2));
    cluster.broker_mut(leader).kill9();
    let run = producer.finish();
    run.assert_sent_and_acknowledged_after(RECORDS, "failover");
    let survivor = if leader == 1 { 2 } else { 1 };
    let (_, end) = common::watermarks(cluster.broker(survivor), &topic, 0);
    let consumed = verifiable_consume(&cluster.broker(survivor).addr(), &topic, end as usize);
    assert_eq!(consumed.len(), end as usize, "the whole log read");
    assert_read_back_once(&run.acked, &consumed);
}

/// Topic identity holds in a cluster: a topic deleted and created again
/// while one of its replicas is down is placed on that broker again (its
/// session has not lapsed yet), and when the broker returns with the old
/// incarnation's directory, it never serves those records: it discards the
/// directory, copies the new topic from its leader, and once it leads, its
/// consumers read the new records at their offsets and nothing older.
#[test]
fn a_topic_recreated_while_a_replica_is_down_is_never_served_from_its_old_files() {
    let mut cluster = TestCluster::start();
    let topic = topic_name("reborn");
    create_topic(cluster.broker(1), &topic, 1, &[]);
    // Two failovers raise the first incarnation's leader epoch above the
    // second's, so that the follower's divergence check (KIP-101) alone
    // would keep the old records: only the directory's topic id tells them
    // apart.
    for _ in 0..2 {
        let leader = wait_for_isr(cluster.broker(1), &topic, 0, &[1, 2, 3]);
        let other = if leader == 1 { 2 } else { 1 };
        cluster.broker_mut(leader).kill9();
        wait_until(FAILOVER_WAIT, "a new leader", || {
            let (l, _, _) = partition_state(cluster.broker(other), &topic, 0)?;
            (l > 0 && l != leader).then_some(())
        });
        cluster.broker_mut(leader).restart();
    }
    wait_for_isr(cluster.broker(1), &topic, 0, &[1, 2, 3]);
    let old: Vec<common::Rec> = (0..50)
        .map(|i| common::Rec::value(format!("old-{i}")).to(0))
        .collect();
    common::produce_ok(
        &producer(cluster.broker(1), &[("acks", "all")]),
        &topic,
        &old,
    );

    cluster.broker_mut(3).kill9();
    let admin = common::admin(cluster.broker(1));
    let deleted = futures::executor::block_on(
        admin.delete_topics(&[topic.as_str()], &common::admin_options()),
    )
    .expect("DeleteTopics");
    assert!(deleted.iter().all(|r| r.is_ok()), "{deleted:?}");
    // Within broker 3's session timeout, so the controller still counts it.
    create_topic(cluster.broker(1), &topic, 1, &[]);
    let (_, replicas, _) = wait_until(FAILOVER_WAIT, "the new topic's metadata", || {
        partition_state(cluster.broker(1), &topic, 0).filter(|(leader, _, _)| *leader > 0)
    });
    assert_eq!(
        replicas,
        vec![1, 2, 3],
        "the new topic is placed on broker 3 too"
    );
    let live = wait_until(FAILOVER_WAIT, "a live leader of the new topic", || {
        let (leader, _, _) = partition_state(cluster.broker(1), &topic, 0)?;
        (leader == 1 || leader == 2).then_some(leader)
    });
    let first: Vec<common::Rec> = (0..5)
        .map(|i| common::Rec::value(format!("new-{i}")).to(0))
        .collect();
    common::produce_ok(
        &producer(cluster.broker(live), &[("acks", "1")]),
        &topic,
        &first,
    );

    cluster.broker_mut(3).restart();
    let leader = wait_for_isr(cluster.broker(1), &topic, 0, &[1, 2, 3]);
    let more: Vec<common::Rec> = (5..10)
        .map(|i| common::Rec::value(format!("new-{i}")).to(0))
        .collect();
    common::produce_ok(
        &producer(cluster.broker(leader), &[("acks", "all")]),
        &topic,
        &more,
    );

    // Broker 3 alone is left, in the ISR: it becomes the leader.
    cluster.broker_mut(1).kill9();
    cluster.broker_mut(2).kill9();
    wait_until(FAILOVER_WAIT, "broker 3 leads the new topic", || {
        let (leader, _, _) = partition_state(cluster.broker(3), &topic, 0)?;
        (leader == 3).then_some(())
    });
    let messages = consume_all(cluster.broker(3), &topic, &[0])
        .remove(&0)
        .unwrap();
    common::assert_dense(&messages, 0, "the new topic's offsets on broker 3");
    let values: Vec<String> = messages.iter().filter_map(common::value_str).collect();
    let expected: Vec<String> = (0..10).map(|i| format!("new-{i}")).collect();
    assert_eq!(values, expected, "broker 3 serves the new topic only");
}
