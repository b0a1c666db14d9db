//! The long chaos run (ignored by default: `cargo test --release --test
//! chaos -- --ignored --nocapture`). A 3-node quorum and 3 brokers; a
//! librdkafka producer (acks=all, idempotent) writes numbered records to a
//! topic of 3 partitions with replication factor 3 and min.insync.replicas
//! 2, while each cycle kills (SIGKILL) a broker or a quorum node, waits,
//! and starts it again. At the end every partition is read back from its
//! leader: every acknowledged record must be there exactly once at the
//! offset it was acknowledged with, and the offsets must be dense.
//!
//! `CHAOS_CYCLES` (default 20) sets the number of kill cycles.
use crate::common;

use common::quorum::Quorum;
use common::{consume_all, create_replicated_topic, enqueue, topic_name, wait_until, Broker, Rec};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::Producer;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 3;
const WAIT: Duration = Duration::from_secs(120);

fn settings() -> Vec<(&'static str, &'static str)> {
    vec![
        ("broker.heartbeat.interval.ms", "300"),
        ("replica.lag.time.max.ms", "5000"),
        ("replica.fetch.wait.max.ms", "100"),
        ("default.replication.factor", "3"),
    ]
}

/// Every partition's ISR holds all three brokers, as `via` reports it.
fn fully_in_sync(via: &Broker, topic: &str) -> bool {
    let Ok(md) = common::consumer(via).fetch_metadata(Some(topic), common::CLIENT_TIMEOUT) else {
        return false;
    };
    md.topics().iter().any(|t| {
        t.name() == topic
            && t.partitions().len() == PARTITIONS as usize
            && t.partitions()
                .iter()
                .all(|p| p.isr().len() == 3 && p.leader() > 0)
    })
}

#[test]
#[ignore = "a long run: cargo test --release --test integration chaos:: -- --ignored --nocapture"]
fn chaos_kill_cycles_lose_no_acknowledged_record() {
    let cycles: usize = std::env::var("CHAOS_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut quorum = Quorum::start(3);
    let endpoints = quorum.endpoints();
    let s = settings();
    let mut brokers: Vec<Broker> = (1..=3)
        .map(|id| Broker::start_member(id, &endpoints, &s))
        .collect();
    let topic = topic_name("chaos");
    create_replicated_topic(
        &brokers[0],
        &topic,
        PARTITIONS,
        3,
        &[("min.insync.replicas", "2")],
    );
    wait_until(WAIT, "the topic in sync", || {
        fully_in_sync(&brokers[0], &topic).then_some(())
    });

    let stop = Arc::new(AtomicBool::new(false));
    let bootstrap = brokers
        .iter()
        .map(Broker::addr)
        .collect::<Vec<_>>()
        .join(",");
    let writer = {
        let (stop, topic) = (stop.clone(), topic.clone());
        std::thread::spawn(move || produce_until(stop, &topic, &bootstrap))
    };

    let started = Instant::now();
    for cycle in 0..cycles {
        std::thread::sleep(Duration::from_millis(1500));
        let victim = cycle % 4;
        if victim < 3 {
            brokers[victim].kill9();
            std::thread::sleep(Duration::from_millis(2500));
            brokers[victim].restart();
        } else {
            let leader = quorum.wait_for_leader(WAIT);
            quorum.kill(leader);
            std::thread::sleep(Duration::from_millis(2500));
            quorum.spawn(leader);
        }
        let via = &brokers[(victim + 1) % 3];
        wait_until(WAIT, "the ISR whole again", || {
            fully_in_sync(via, &topic).then_some(())
        });
        eprintln!(
            "cycle {} done ({} s)",
            cycle + 1,
            started.elapsed().as_secs()
        );
    }
    stop.store(true, Ordering::SeqCst);
    let acked = writer.join().expect("producer thread");

    let mut stored: BTreeMap<String, (i32, i64)> = BTreeMap::new();
    let mut duplicates = 0usize;
    let all = consume_all(&brokers[0], &topic, &(0..PARTITIONS).collect::<Vec<_>>());
    for (partition, messages) in &all {
        common::assert_dense(
            messages,
            messages.first().map_or(0, |m| m.offset()),
            "chaos offsets",
        );
        for m in messages {
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            if stored.insert(value, (*partition, m.offset())).is_some() {
                duplicates += 1;
            }
        }
    }
    let lost: Vec<&String> = acked
        .iter()
        .filter(|(value, at)| stored.get(*value) != Some(at))
        .map(|(value, _)| value)
        .collect();
    eprintln!(
        "chaos: {cycles} kill cycles in {} s, {} records acknowledged, {} stored, {} lost, {} duplicates",
        started.elapsed().as_secs(),
        acked.len(),
        stored.len(),
        lost.len(),
        duplicates
    );
    assert!(
        lost.is_empty(),
        "acknowledged records lost: {:?}",
        &lost[..lost.len().min(10)]
    );
    assert_eq!(duplicates, 0, "records stored twice");
}

/// Produces numbered records until `stop`; returns what was acknowledged,
/// value -> (partition, offset).
fn produce_until(
    stop: Arc<AtomicBool>,
    topic: &str,
    bootstrap: &str,
) -> BTreeMap<String, (i32, i64)> {
    let p = producer_at(bootstrap);
    let mut sent = 0u64;
    let mut seen = HashSet::new();
    while !stop.load(Ordering::SeqCst) {
        for _ in 0..50 {
            let rec = Rec::value(format!("r{sent}")).to((sent % PARTITIONS as u64) as i32);
            enqueue(&p, topic, &rec);
            sent += 1;
        }
        p.poll(Duration::from_millis(20));
    }
    p.flush(Duration::from_secs(120)).expect("final flush");
    p.poll(Duration::from_millis(100));
    let reports = p.context().log.lock().unwrap().clone();
    let mut acked = BTreeMap::new();
    for (_, value, outcome) in reports {
        let (Some(value), Ok(at)) = (value, outcome) else {
            continue;
        };
        let value = String::from_utf8_lossy(&value).into_owned();
        if seen.insert(value.clone()) {
            acked.insert(value, at);
        }
    }
    eprintln!(
        "producer: {sent} records sent, {} acknowledged",
        acked.len()
    );
    acked
}

fn producer_at(bootstrap: &str) -> common::TestProducer {
    common::producer_with_bootstrap(
        bootstrap,
        &[
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "120000"),
            ("retry.backoff.ms", "50"),
            ("linger.ms", "5"),
        ],
    )
}
