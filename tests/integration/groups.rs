//! Consumer groups through real clients: librdkafka consumers in one group
//! share partitions, every record reaches exactly one of them while members
//! join and leave, a member killed without leaving loses its partitions after
//! its session timeout, committed offsets survive kill -9, and kcat -G
//! consumes as a group.
use crate::common;

use common::*;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Broker settings that keep group tests fast: no initial rebalance delay and
/// short sessions allowed.
const FAST_GROUPS: &[(&str, &str)] = &[
    ("group.initial.rebalance.delay.ms", "0"),
    ("group.min.session.timeout.ms", "1000"),
];

fn group_consumer(broker: &Broker, group: &str, session_ms: &str) -> BaseConsumer {
    group_consumer_with(broker, group, session_ms, &[])
}

/// A group member; `extra` overrides the defaults (range assignor).
fn group_consumer_with(
    broker: &Broker,
    group: &str,
    session_ms: &str,
    extra: &[(&str, &str)],
) -> BaseConsumer {
    let mut settings = vec![
        ("group.id", group),
        ("auto.offset.reset", "earliest"),
        ("session.timeout.ms", session_ms),
        ("heartbeat.interval.ms", "300"),
        ("partition.assignment.strategy", "range"),
    ];
    for (key, value) in extra {
        settings.retain(|(k, _)| k != key);
        settings.push((key, value));
    }
    consumer_with(broker, &settings)
}

/// What one consumer thread saw: (value, partition, offset) and its assignment.
#[derive(Default)]
struct Seen {
    records: Vec<(String, i32, i64)>,
    assigned: BTreeMap<usize, BTreeSet<i32>>,
}

/// A consumer polling in its own thread, committing each record synchronously.
struct Member {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Member {
    fn start(
        broker: &Broker,
        id: usize,
        group: &str,
        topic: &str,
        seen: Arc<Mutex<Seen>>,
    ) -> Member {
        Self::start_with(broker, id, group, topic, seen, &[])
    }

    fn start_with(
        broker: &Broker,
        id: usize,
        group: &str,
        topic: &str,
        seen: Arc<Mutex<Seen>>,
        extra: &[(&str, &str)],
    ) -> Member {
        let consumer = group_consumer_with(broker, group, "6000", extra);
        consumer.subscribe(&[topic]).expect("subscribe");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                    let value =
                        String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                    let mut tpl = TopicPartitionList::new();
                    tpl.add_partition_offset(
                        m.topic(),
                        m.partition(),
                        Offset::Offset(m.offset() + 1),
                    )
                    .expect("offset");
                    // Commit before counting the record as seen: if the commit
                    // fails (a rebalance), another member will deliver it.
                    if consumer.commit(&tpl, CommitMode::Sync).is_ok() {
                        seen.lock()
                            .unwrap()
                            .records
                            .push((value, m.partition(), m.offset()));
                    }
                }
                let assignment: BTreeSet<i32> = consumer
                    .assignment()
                    .map(|a| a.elements().iter().map(|e| e.partition()).collect())
                    .unwrap_or_default();
                seen.lock().unwrap().assigned.insert(id, assignment);
            }
            // Dropping the consumer closes it, which sends LeaveGroup.
        });
        Member {
            stop,
            thread: Some(thread),
        }
    }

    fn leave(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("consumer thread");
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn produce_values(broker: &Broker, topic: &str, range: std::ops::Range<usize>) {
    let producer = producer(broker, &[]);
    let recs: Vec<Rec> = range
        .map(|i| Rec::new(Some(&format!("k{i}")), Some(&format!("v{i}"))))
        .collect();
    produce_ok(&producer, topic, &recs);
}

fn wait_for_count(seen: &Arc<Mutex<Seen>>, count: usize, what: &str) {
    wait_until(Duration::from_secs(60), what, || {
        (seen.lock().unwrap().records.len() >= count).then_some(())
    });
}

/// Waits until the live members' assignments cover every partition once.
fn wait_for_balanced(seen: &Arc<Mutex<Seen>>, members: &[usize], partitions: i32) {
    wait_until(Duration::from_secs(60), "a settled assignment", || {
        let s = seen.lock().unwrap();
        let mut all = Vec::new();
        for id in members {
            let a = s.assigned.get(id)?;
            if a.is_empty() {
                return None;
            }
            all.extend(a.iter().copied());
        }
        all.sort_unstable();
        (all == (0..partitions).collect::<Vec<_>>()).then_some(())
    });
}

#[test]
fn three_consumers_share_six_partitions_and_see_every_record_once() {
    share_six_partitions_among_three("range", true);
}

#[test]
fn cooperative_sticky_members_share_partitions_and_see_every_record_once() {
    share_six_partitions_among_three("cooperative-sticky", false);
}

/// Members join and leave in phases; every record reaches exactly one member.
/// `even` checks the 2-2-2 split that the range assignor gives.
fn share_six_partitions_among_three(assignor: &str, even: bool) {
    let broker = Broker::start_with(FAST_GROUPS);
    let strategy = [("partition.assignment.strategy", assignor)];
    let topic = topic_name("group-share");
    create_topic(&broker, &topic, 6, &[]);
    let seen = Arc::new(Mutex::new(Seen::default()));

    let a = Member::start_with(&broker, 0, "share", &topic, seen.clone(), &strategy);
    wait_for_balanced(&seen, &[0], 6);
    produce_values(&broker, &topic, 0..200);
    wait_for_count(&seen, 200, "200 records by the only member");

    let b = Member::start_with(&broker, 1, "share", &topic, seen.clone(), &strategy);
    let c = Member::start_with(&broker, 2, "share", &topic, seen.clone(), &strategy);
    wait_for_balanced(&seen, &[0, 1, 2], 6);
    if even {
        let s = seen.lock().unwrap();
        for id in 0..3 {
            assert_eq!(
                s.assigned[&id].len(),
                2,
                "range gives each of 3 members 2 of 6 partitions"
            );
        }
    }
    produce_values(&broker, &topic, 200..400);
    wait_for_count(&seen, 400, "400 records by three members");

    b.leave();
    seen.lock().unwrap().assigned.remove(&1);
    wait_for_balanced(&seen, &[0, 2], 6);
    produce_values(&broker, &topic, 400..600);
    wait_for_count(&seen, 600, "600 records after a member left");
    a.leave();
    c.leave();

    let s = seen.lock().unwrap();
    let mut values: Vec<&str> = s.records.iter().map(|(v, _, _)| v.as_str()).collect();
    values.sort_unstable();
    let before = values.len();
    values.dedup();
    assert_eq!(before, values.len(), "a record was delivered twice");
    assert_eq!(values.len(), 600, "every record delivered");
    // Per partition, the offsets seen are dense from 0.
    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (_, p, o) in &s.records {
        by_partition.entry(*p).or_default().push(*o);
    }
    for (p, mut offsets) in by_partition {
        offsets.sort_unstable();
        assert_eq!(
            offsets,
            (0..offsets.len() as i64).collect::<Vec<_>>(),
            "partition {p}"
        );
    }
}

#[test]
fn a_killed_member_loses_its_partitions_after_its_session_timeout() {
    if !require_tool("kcat", Command::new("kcat").arg("-V")) {
        return;
    }
    let broker = Broker::start_with(FAST_GROUPS);
    let topic = topic_name("group-kill");
    create_topic(&broker, &topic, 4, &[]);
    let mut kcat = Command::new("kcat")
        .args(["-b", &broker.addr(), "-G", "killed", &topic])
        .args([
            "-X",
            "session.timeout.ms=2000",
            "-X",
            "heartbeat.interval.ms=300",
            "-q",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kcat -G");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let member = Member::start(&broker, 0, "killed", &topic, seen.clone());
    // With kcat in the group, the test's member holds only half the partitions.
    wait_until(
        Duration::from_secs(60),
        "kcat and the test sharing the group",
        || {
            let s = seen.lock().unwrap();
            (s.assigned.get(&0).map(|a| a.len()) == Some(2)).then_some(())
        },
    );
    kcat.kill().expect("kill -9 kcat");
    let _ = kcat.wait();
    let killed_at = Instant::now();
    wait_for_balanced(&seen, &[0], 4);
    let moved_after = killed_at.elapsed();
    assert!(
        moved_after < Duration::from_secs(30),
        "partitions moved only after {moved_after:?}"
    );
    member.leave();
}

#[test]
fn committed_offsets_survive_kill_9_and_restart() {
    let mut broker = Broker::start_with(FAST_GROUPS);
    let topic = topic_name("group-durable");
    create_topic(&broker, &topic, 1, &[]);
    produce_values(&broker, &topic, 0..100);
    {
        let consumer = group_consumer(&broker, "durable", "6000");
        consumer.subscribe(&[&topic]).expect("subscribe");
        let mut got = 0;
        wait_until(Duration::from_secs(60), "50 records", || {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                got += 1;
                if got == 50 {
                    let mut tpl = TopicPartitionList::new();
                    tpl.add_partition_offset(&topic, 0, Offset::Offset(m.offset() + 1))
                        .unwrap();
                    consumer.commit(&tpl, CommitMode::Sync).expect("commit");
                }
            }
            (got >= 50).then_some(())
        });
    }
    broker.kill9();
    broker.restart();
    let consumer = group_consumer(&broker, "durable", "6000");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let first = wait_until(
        Duration::from_secs(60),
        "the first record after restart",
        || {
            consumer
                .poll(Duration::from_millis(100))
                .and_then(|r| r.ok())
                .map(|m| m.offset())
        },
    );
    assert_eq!(first, 50, "consumption resumes at the committed offset");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&topic, 0);
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("OffsetFetch");
    assert_eq!(committed.elements()[0].offset(), Offset::Offset(50));
}

#[test]
fn kcat_consumes_as_a_group() {
    if !require_tool("kcat", Command::new("kcat").arg("-V")) {
        return;
    }
    let broker = Broker::start_with(FAST_GROUPS);
    let topic = topic_name("group-kcat");
    create_topic(&broker, &topic, 3, &[]);
    produce_values(&broker, &topic, 0..30);
    let run = || {
        let out = Command::new("timeout")
            .args([
                "60",
                "kcat",
                "-b",
                &broker.addr(),
                "-G",
                "kcat-group",
                &topic,
                "-e",
                "-q",
            ])
            .args(["-X", "auto.offset.reset=earliest", "-f", "%s\n"])
            .stdin(Stdio::null())
            .output()
            .expect("run kcat -G");
        assert!(
            out.status.success(),
            "kcat -G failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut values: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        values.sort();
        values
    };
    let mut expected: Vec<String> = (0..30).map(|i| format!("v{i}")).collect();
    expected.sort();
    assert_eq!(run(), expected, "the first group run reads everything");
    produce_values(&broker, &topic, 30..33);
    let mut rest: Vec<String> = (30..33).map(|i| format!("v{i}")).collect();
    rest.sort();
    assert_eq!(
        run(),
        rest,
        "the second run resumes from the committed offsets"
    );
}

#[test]
fn a_static_member_comes_back_under_its_instance_id() {
    let broker = Broker::start_with(FAST_GROUPS);
    let topic = topic_name("group-static");
    create_topic(&broker, &topic, 4, &[]);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s0 = [("group.instance.id", "s0")];
    let s1 = [("group.instance.id", "s1")];
    let first = Member::start_with(&broker, 0, "static", &topic, seen.clone(), &s0);
    let other = Member::start_with(&broker, 1, "static", &topic, seen.clone(), &s1);
    wait_for_balanced(&seen, &[0, 1], 4);
    produce_values(&broker, &topic, 0..100);
    wait_for_count(&seen, 100, "100 records by two static members");
    // A static member that closes does not leave (KIP-345): it comes back
    // under the same instance id, and the group is whole again.
    first.leave();
    seen.lock().unwrap().assigned.remove(&0);
    let again = Member::start_with(&broker, 0, "static", &topic, seen.clone(), &s0);
    wait_for_balanced(&seen, &[0, 1], 4);
    produce_values(&broker, &topic, 100..200);
    wait_for_count(&seen, 200, "200 records after the static member came back");
    again.leave();
    other.leave();
    let s = seen.lock().unwrap();
    let mut values: Vec<&str> = s.records.iter().map(|(v, _, _)| v.as_str()).collect();
    values.sort_unstable();
    values.dedup();
    assert_eq!(values.len(), 200, "every record delivered once");
    assert_eq!(s.records.len(), 200, "no record delivered twice");
}

/// A raw ListGroups at `version` with `types` (v5+) and `states` (v4+)
/// filters: (group id, protocol type, state, type) of each listed group.
fn list_groups(
    broker: &Broker,
    version: i16,
    states: &[&str],
    types: &[&str],
) -> BTreeSet<(String, String, String, String)> {
    use kafka_protocol::messages::{ListGroupsRequest, ListGroupsResponse};
    use kafka_protocol::protocol::StrBytes;
    let strs = |v: &[&str]| {
        v.iter()
            .map(|s| StrBytes::from_string(s.to_string()))
            .collect()
    };
    let request = ListGroupsRequest::default()
        .with_states_filter(strs(states))
        .with_types_filter(strs(types));
    let response: ListGroupsResponse = RawConn::connect(broker).request(&request, version);
    assert_eq!(response.error_code, 0, "ListGroups v{version} error code");
    response
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.to_string(),
                g.protocol_type.to_string(),
                g.group_state.to_string(),
                g.group_type.to_string(),
            )
        })
        .collect()
}

#[test]
fn list_groups_v5_lists_classic_groups_by_type_and_state() {
    let broker = Broker::start_with(FAST_GROUPS);
    let topic = topic_name("list-groups");
    create_topic(&broker, &topic, 1, &[]);
    // A live member of one group, and a group known only by a commit.
    let member = group_consumer(&broker, "listed-live", "6000");
    member.subscribe(&[&topic]).expect("subscribe");
    let committer = consumer_with(&broker, &[("group.id", "listed-offsets")]);
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(&topic, 0, Offset::Offset(0))
        .expect("add partition");
    committer
        .commit(&offsets, CommitMode::Sync)
        .expect("commit outside the group protocol");
    let row = |id: &str, protocol: &str, state: &str| {
        (
            id.to_string(),
            protocol.to_string(),
            state.to_string(),
            "classic".to_string(),
        )
    };
    let all: BTreeSet<_> = [
        row("listed-live", "consumer", "Stable"),
        row("listed-offsets", "", "Empty"),
    ]
    .into();
    wait_until(CLIENT_TIMEOUT, "the live member's group is stable", || {
        member.poll(Duration::from_millis(100));
        (list_groups(&broker, 5, &[], &[]) == all).then_some(())
    });
    // Kafka's GroupType.parse: case does not matter, an unknown type
    // matches no group.
    for types in [&["classic"][..], &["CLASSIC"], &["share", "Classic"]] {
        assert_eq!(list_groups(&broker, 5, &[], types), all, "types {types:?}");
    }
    for types in [&["consumer"][..], &["share"], &["no-such-type"]] {
        assert!(
            list_groups(&broker, 5, &[], types).is_empty(),
            "types {types:?}"
        );
    }
    let stable: BTreeSet<_> = [row("listed-live", "consumer", "Stable")].into();
    assert_eq!(list_groups(&broker, 5, &[" stable "], &["classic"]), stable);
    // Before v5 the answer has no type.
    let v4: BTreeSet<_> = all
        .iter()
        .map(|(id, p, s, _)| (id.clone(), p.clone(), s.clone(), String::new()))
        .collect();
    assert_eq!(list_groups(&broker, 4, &[], &[]), v4);
}
