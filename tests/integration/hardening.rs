//! The hardening issue's data-loss cases, each reproduced the way a user (or
//! a hostile client) meets it: compaction gaps that wedged consumers and lost
//! committed offsets at restart, and clients writing, creating or deleting
//! the internal `__consumer_offsets` topic.
use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Kafka's UNKNOWN_TOPIC_OR_PARTITION.
const UNKNOWN_TOPIC: i16 = 3;

/// Housekeeping (retention and compaction) every 300 ms instead of 5 minutes.
const FAST_HOUSEKEEPING: (&str, &str) = ("log.retention.check.interval.ms", "300");

/// Waits until the broker has logged a compaction of `topic` that removed
/// records, `times` times.
fn wait_for_compactions(broker: &Broker, topic: &str, times: usize) {
    wait_until(Duration::from_secs(60), "compaction", || {
        let output = broker.output();
        let done = output
            .lines()
            .filter(|l| l.contains("compacted") && l.contains(topic))
            .count();
        (done >= times).then_some(())
    });
}

/// The `.log` files of one partition directory.
fn segment_files(data_dir: &Path, topic: &str, partition: i32) -> Vec<PathBuf> {
    let dir = data_dir.join(format!("{topic}-{partition}"));
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    logs
}

/// Rounds of one record per key over 10 keys, each round its own batch:
/// every round supersedes the one before, so compaction empties whole
/// sealed segments.
const ROUNDS: usize = 30;
/// The offset of the last record produced.
const LAST_OFFSET: i64 = ROUNDS as i64 * 10 - 1;

/// Produces `ROUNDS` rounds; returns the last value of each key.
fn produce_rounds(broker: &Broker, topic: &str) -> Vec<(String, String)> {
    let producer = producer(broker, &[("linger.ms", "0")]);
    let mut last = Vec::new();
    for round in 0..ROUNDS {
        last.clear();
        let recs: Vec<Rec> = (0..10)
            .map(|k| {
                let (key, value) = (
                    format!("key-{k}"),
                    format!("round {round:02} {}", "v".repeat(64)),
                );
                last.push((key.clone(), value.clone()));
                Rec::new(Some(&key), Some(&value)).to(0)
            })
            .collect();
        produce_ok(&producer, topic, &recs);
    }
    last
}

/// Checks what a consumer from the log start reads of the compacted topic:
/// offsets rising to the last one, each key's newest value last; returns
/// how many records it read.
fn assert_compacted_reads(
    broker: &Broker,
    topic: &str,
    newest: &[(String, String)],
    what: &str,
) -> usize {
    let messages = consume_all(broker, topic, &[0])
        .remove(&0)
        .unwrap_or_default();
    let offsets: Vec<i64> = messages.iter().map(|m| m.offset()).collect();
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "{what}: offsets must rise: {offsets:?}"
    );
    assert_eq!(
        offsets.last(),
        Some(&LAST_OFFSET),
        "{what}: the consumer reaches the log end"
    );
    for (key, value) in newest {
        let seen = messages
            .iter()
            .rfind(|m| m.key() == Some(key.as_bytes()))
            .and_then(value_str);
        assert_eq!(
            seen.as_deref(),
            Some(value.as_str()),
            "{what}: newest value of {key}"
        );
    }
    messages.len()
}

#[test]
fn a_compacted_topic_is_read_past_its_emptied_segments_after_a_restart() {
    let mut broker = Broker::start_with(&[FAST_HOUSEKEEPING]);
    let topic = topic_name("compacted");
    create_topic(
        &broker,
        &topic,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("internal.segment.bytes", "10000"),
        ],
    );
    let newest = produce_rounds(&broker, &topic);
    // Sealed segments at about 0, 90, 180 and 270: once the cleaner has
    // passed over the last sealed one, the second holds nothing newer than
    // the third and is removed; the first stays (emptied: it holds the log
    // start).
    let segments_settled = || {
        let files = segment_files(broker.data_dir(), &topic, 0);
        let sizes: Vec<u64> = files
            .iter()
            .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
            .collect();
        let later_nonempty = sizes.iter().skip(1).all(|&s| s > 0);
        (later_nonempty && files.len() == 3 && sizes[0] == 0).then_some(files)
    };
    wait_until(
        Duration::from_secs(60),
        "compaction to empty and drop segments",
        segments_settled,
    );
    assert_compacted_reads(&broker, &topic, &newest, "before the restart");

    broker.restart();
    // The batch cache served the records before; now they come from the
    // cleaned segments.
    let read = assert_compacted_reads(&broker, &topic, &newest, "after the restart");
    assert!(
        read < ROUNDS * 10,
        "compaction removed superseded records ({read} left)"
    );
}

/// Kafka's placement of a group: `abs(javaHashCode(group)) % partitions`.
fn offsets_partition_of(group: &str) -> i32 {
    broker::group::offsets_partition(group, 50)
}

fn group_consumer(broker: &Broker, group: &str) -> BaseConsumer {
    consumer_with(
        broker,
        &[("group.id", group), ("enable.auto.commit", "false")],
    )
}

fn commit(consumer: &BaseConsumer, topic: &str, offset: i64) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
        .expect("add partition");
    consumer
        .commit(&tpl, CommitMode::Sync)
        .unwrap_or_else(|e| panic!("commit {offset}: {e}"));
}

fn committed(broker: &Broker, group: &str, topic: &str) -> Offset {
    let consumer = group_consumer(broker, group);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let answer = consumer
        .committed_offsets(tpl, CLIENT_TIMEOUT)
        .expect("committed offsets");
    answer.elements()[0].offset()
}

#[test]
fn committed_offsets_survive_compaction_of_the_offsets_topic_and_a_restart() {
    let mut broker = Broker::start_with(&[FAST_HOUSEKEEPING]);
    let topic = topic_name("committed");
    create_topic(&broker, &topic, 1, &[]);
    let group = "compacted-commits";
    let consumer = group_consumer(&broker, group);
    commit(&consumer, &topic, 100);
    // Small segments, so that commits fill and seal several of them.
    assert_eq!(
        set_topic_config(&broker, OFFSETS_TOPIC, "internal.segment.bytes", "1000"),
        0
    );
    for offset in 101..=160 {
        commit(&consumer, &topic, offset);
    }
    drop(consumer);
    wait_for_compactions(&broker, OFFSETS_TOPIC, 1);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(committed(&broker, group, &topic), Offset::Offset(160));

    broker.restart();
    assert_eq!(
        committed(&broker, group, &topic),
        Offset::Offset(160),
        "the newest commit is loaded from the compacted offsets partition"
    );
}

#[test]
fn clients_cannot_produce_to_the_offsets_topic() {
    let broker = Broker::start();
    let topic = topic_name("any");
    create_topic(&broker, &topic, 1, &[]);
    // Create the offsets topic the way the broker does: a group's commit.
    commit(&group_consumer(&broker, "g"), &topic, 1);
    let producer = producer(&broker, &[("message.timeout.ms", "5000")]);
    let outcome = produce(&producer, OFFSETS_TOPIC, &[Rec::value("garbage").to(0)]);
    let error = outcome[0]
        .as_ref()
        .expect_err("a client write to an internal topic fails");
    assert_eq!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::InvalidTopic),
        "Kafka answers INVALID_TOPIC_EXCEPTION: {error}"
    );
    assert_eq!(committed(&broker, "g", &topic), Offset::Offset(1));
}

/// A batch whose CRC is right but whose records are garbage: recovery keeps
/// it (it is whole), the group loader cannot decode it.
fn undecodable_batch(base_offset: i64) -> Vec<u8> {
    let mut batch = vec![0u8; 61];
    batch.extend_from_slice(&[0xff; 40]);
    let length = (batch.len() - 12) as i32;
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    batch[16] = 2; // magic
    batch[23..27].copy_from_slice(&0i32.to_be_bytes()); // lastOffsetDelta
    batch[43..51].copy_from_slice(&(-1i64).to_be_bytes()); // producer id
    batch[51..53].copy_from_slice(&(-1i16).to_be_bytes());
    batch[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    batch[57..61].copy_from_slice(&1i32.to_be_bytes()); // one record
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

/// Appends a batch after the last one of a stopped broker's active segment.
fn append_to_active_segment(segment: &Path, batch_at: impl FnOnce(i64) -> Vec<u8>) {
    let mut bytes = std::fs::read(segment).expect("read segment");
    let mut at = 0;
    let mut next = -1;
    for (header, _) in wire::batch::BatchIter::new(&bytes) {
        at += header.size;
        next = header.last_offset() + 1;
    }
    assert!(next > 0, "the segment holds the group's commit");
    bytes.truncate(at);
    bytes.extend_from_slice(&batch_at(next));
    std::fs::write(segment, bytes).expect("write segment");
}

#[test]
fn an_undecodable_batch_in_the_offsets_topic_costs_only_itself() {
    let mut broker = Broker::start();
    let topic = topic_name("loader");
    create_topic(&broker, &topic, 1, &[]);
    let group = "survives-garbage";
    commit(&group_consumer(&broker, group), &topic, 100);
    broker.terminate();
    let partition = offsets_partition_of(group);
    let segments = segment_files(broker.data_dir(), OFFSETS_TOPIC, partition);
    let active = segments.last().expect("an offsets segment");
    append_to_active_segment(active, undecodable_batch);

    broker.restart();
    assert_eq!(
        committed(&broker, group, &topic),
        Offset::Offset(100),
        "the commit before the bad batch is loaded"
    );
    commit(&group_consumer(&broker, group), &topic, 101);
    broker.restart();
    assert_eq!(
        committed(&broker, group, &topic),
        Offset::Offset(101),
        "the commit after the bad batch is loaded"
    );
}

/// A raw Metadata request naming `topic`, with auto-creation allowed.
fn metadata_error(broker: &Broker, topic: &str) -> i16 {
    let mut conn = RawConn::connect(broker);
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
            TopicName(StrBytes::from_string(topic.to_string())),
        ))]))
        .with_allow_auto_topic_creation(true);
    let response: MetadataResponse = conn.request(&request, 9);
    response.topics[0].error_code
}

#[test]
fn the_offsets_topic_is_never_auto_created_small_nor_deleted_by_clients() {
    let broker = Broker::start_with(&[("num.partitions", "1")]);
    assert_eq!(
        metadata_error(&broker, OFFSETS_TOPIC),
        UNKNOWN_TOPIC,
        "Metadata does not create an internal topic"
    );
    // (Raw requests: a librdkafka consumer's FindCoordinator would create it.)
    assert_eq!(
        metadata_error(&broker, OFFSETS_TOPIC),
        UNKNOWN_TOPIC,
        "still not there"
    );
    let admin = admin(&broker);
    let runtime = futures::executor::block_on(admin.create_topics(
        &[NewTopic::new(OFFSETS_TOPIC, 1, TopicReplication::Fixed(1))],
        &admin_options(),
    ))
    .expect("create_topics");
    let refused = runtime[0]
        .as_ref()
        .expect_err("CreateTopics of an internal topic fails");
    assert_eq!(refused.1, RDKafkaErrorCode::InvalidTopic);

    let topic = topic_name("placed");
    create_topic(&broker, &topic, 1, &[]);
    commit(&group_consumer(&broker, "placed-group"), &topic, 7);
    assert_eq!(
        partition_count(&broker, OFFSETS_TOPIC),
        Some(50),
        "the coordinator creates the offsets topic with offsets.topic.num.partitions"
    );

    let deleted =
        futures::executor::block_on(admin.delete_topics(&[OFFSETS_TOPIC], &admin_options()))
            .expect("delete_topics");
    let refused = deleted[0]
        .as_ref()
        .expect_err("DeleteTopics of an internal topic fails");
    assert_eq!(refused.1, RDKafkaErrorCode::InvalidTopic);
    assert_eq!(partition_count(&broker, OFFSETS_TOPIC), Some(50));
    assert_eq!(
        committed(&broker, "placed-group", &topic),
        Offset::Offset(7)
    );
}

/// One raw request to a quorum node; its JSON answer, or `None` when the
/// node closed the connection without one.
fn quorum_exchange(addr: &str, json: &str) -> Option<serde_json::Value> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the quorum");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut frame = (json.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(json.as_bytes());
    stream.write_all(&frame).expect("write");
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

/// `tidemark cluster status` against the embedded quorum, with `secret`.
fn cluster_status(addr: &str, secret: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["cluster", "status", "--json", "--quorum", addr])
        .env("TIDEMARK_QUORUM_SECRET", secret)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run tidemark cluster status")
}

#[test]
fn the_embedded_quorum_takes_commands_only_with_its_secret_and_sheds_idle_connections() {
    use std::os::unix::fs::PermissionsExt;
    let broker = Broker::start();
    let topic = topic_name("kept");
    create_topic(&broker, &topic, 1, &[]);
    let quorum_dir = broker.data_dir().join("__quorum");
    let addr = std::fs::read_to_string(quorum_dir.join("embedded-listen")).expect("listen file");
    let addr = addr.trim().to_string();
    let secret_file = quorum_dir.join("embedded-secret");
    let mode = std::fs::metadata(&secret_file)
        .expect("the secret file")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the secret is readable by its owner only"
    );
    let secret = std::fs::read_to_string(&secret_file).expect("read the secret");

    // A local process without the secret can neither delete a topic nor
    // re-register a broker elsewhere.
    let delete = format!(
        r#"{{"auth":null,"request":{{"Write":{{"expected_revision":null,"command":{{"DeleteTopic":{{"name":"{topic}"}}}}}}}}}}"#
    );
    let answer = quorum_exchange(&addr, &delete);
    assert_eq!(answer, Some(serde_json::json!("Unauthenticated")));
    assert_eq!(
        partition_count(&broker, &topic),
        Some(1),
        "the topic is still there"
    );

    // Idle connections that never authenticate do not lock out the admin.
    let idle: Vec<std::net::TcpStream> = (0..200)
        .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
        .collect();
    assert!(idle.len() > 100, "opened {} idle connections", idle.len());
    let status = cluster_status(&addr, secret.trim());
    assert!(
        status.status.success(),
        "cluster status with the secret works beside {} idle connections: {}",
        idle.len(),
        String::from_utf8_lossy(&status.stderr)
    );
    let mut first = idle.into_iter().next().expect("an idle connection");
    wait_for_close(&mut first, Duration::from_secs(10))
        .expect("an idle connection is closed once its deadline passes");
    let refused = cluster_status(&addr, "wrong");
    assert!(!refused.status.success(), "a wrong secret is refused");
}

/// Copies a directory tree (a partition's files).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy");
    for entry in std::fs::read_dir(from)
        .expect("list")
        .filter_map(|e| e.ok())
    {
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy a file");
    }
}

#[test]
fn leftovers_of_a_deleted_topic_are_never_served_by_its_successor() {
    let mut broker = Broker::start();
    let topic = topic_name("reborn");
    create_topic(&broker, &topic, 1, &[]);
    let old_producer = producer(&broker, &[]);
    let old: Vec<Rec> = (0..50)
        .map(|i| Rec::value(format!("old {i}")).to(0))
        .collect();
    produce_ok(&old_producer, &topic, &old);
    drop(old_producer);
    broker.terminate();
    // What a crash in the middle of the deletion leaves: the directory of
    // the deleted topic, and one of a topic that is gone altogether.
    let saved = tempfile::tempdir().expect("temp dir");
    let partition_dir = broker.data_dir().join(format!("{topic}-0"));
    copy_dir(&partition_dir, saved.path());
    broker.restart();
    let admin = admin(&broker);
    futures::executor::block_on(admin.delete_topics(&[topic.as_str()], &admin_options()))
        .expect("delete_topics")[0]
        .as_ref()
        .expect("deleted");
    wait_until(Duration::from_secs(20), "the deletion", || {
        partition_count(&broker, &topic).is_none().then_some(())
    });
    create_topic(&broker, &topic, 1, &[]);
    broker.terminate();
    let _ = std::fs::remove_dir_all(&partition_dir);
    copy_dir(saved.path(), &partition_dir);
    let orphan = broker.data_dir().join("long-gone-topic-0");
    copy_dir(saved.path(), &orphan);

    broker.restart();
    assert_eq!(
        watermarks(&broker, &topic, 0),
        (0, 0),
        "the new topic starts empty: the old topic's directory is not adopted"
    );
    let producer = producer(&broker, &[]);
    produce_ok(&producer, &topic, &[Rec::value("new").to(0)]);
    let read = consume_all(&broker, &topic, &[0])
        .remove(&0)
        .unwrap_or_default();
    let values: Vec<Option<String>> = read.iter().map(value_str).collect();
    assert_eq!(values, vec![Some("new".to_string())]);
    assert!(
        !orphan.exists(),
        "a directory no topic owns is removed at start"
    );
    let leftovers: Vec<String> = std::fs::read_dir(broker.data_dir())
        .expect("list data dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&topic) || n.ends_with("-delete"))
        .collect();
    assert_eq!(
        leftovers,
        vec![format!("{topic}-0")],
        "only the live partition's directory"
    );
}

/// The cluster id of one Metadata answer, if the broker answered.
fn cluster_id_once(addr: &str) -> Option<String> {
    use kafka_protocol::messages::RequestHeader;
    use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = MetadataRequest::default().with_topics(Some(vec![]));
    let mut body = bytes::BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(3)
        .with_request_api_version(9)
        .with_correlation_id(1)
        .encode(&mut body, MetadataRequest::header_version(9))
        .ok()?;
    request.encode(&mut body, 9).ok()?;
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    stream.write_all(&frame).ok()?;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let mut answer = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut answer).ok()?;
    let mut answer = bytes::Bytes::from(answer);
    let _correlation = answer.split_to(4);
    let _tagged_fields = answer.split_to(1);
    let response = MetadataResponse::decode(&mut answer, 9).ok()?;
    response.cluster_id.map(|id| id.to_string())
}

#[test]
fn a_starting_broker_answers_only_with_the_real_cluster_id() {
    let data = tempfile::tempdir().expect("data dir");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["dev", "--cores", "2", "--listen", &addr, "--data-dir"])
        .arg(data.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start tidemark dev");
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < 40 && std::time::Instant::now() < deadline {
        if let Some(id) = cluster_id_once(&addr) {
            seen.push(id);
        } else {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.len() >= 40, "the broker answered Metadata: {seen:?}");
    let last = seen.last().cloned();
    assert!(
        seen.iter().all(|id| Some(id) == last.as_ref()),
        "one cluster id from the first answer on: {seen:?}"
    );
    assert_ne!(
        last.as_deref(),
        Some("tidemark-dev-cluster"),
        "not the placeholder"
    );
}

/// Lifts this process' soft descriptor limit to at least `wanted` (within
/// the hard limit), for tests that open thousands of connections; brokers
/// started afterwards inherit it.
fn raise_descriptor_limit(wanted: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit on this process with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < wanted {
            limit.rlim_cur = wanted.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// The broker's resident memory, in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib / 1024)
        .expect("VmRSS")
}

#[test]
fn memory_a_burst_of_connections_took_is_returned_after_they_close() {
    use std::io::{Read, Write};
    raise_descriptor_limit(9000);
    let broker = Broker::start();
    let pid = broker.pid();
    let before = rss_mib(pid);
    // ApiVersions v0: api key 18, version 0, correlation id 1, client id "t".
    let request = [0, 18, 0, 0, 0, 0, 0, 1, 0, 1, b't'];
    let mut frame = (request.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&request);
    let mut connections = Vec::new();
    for _ in 0..8000 {
        let Ok(mut stream) = std::net::TcpStream::connect(broker.addr()) else {
            break;
        };
        stream.write_all(&frame).expect("send ApiVersions");
        connections.push(stream);
    }
    for stream in &mut connections {
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).expect("an answer");
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        stream.read_exact(&mut body).expect("the answer's body");
    }
    let open = rss_mib(pid);
    assert!(
        open > before + 40,
        "{} connections take memory ({before} -> {open} MiB)",
        connections.len()
    );
    drop(connections);
    let after = wait_until(Duration::from_secs(40), "memory to be returned", || {
        let now = rss_mib(pid);
        (now < before + 20).then_some(now)
    });
    println!("resident memory: {before} MiB, {open} MiB with 8,000 connections, {after} MiB after");
}
