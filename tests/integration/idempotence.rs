//! Idempotent producers: librdkafka with `enable.idempotence=true` stores
//! every record exactly once, also when a proxy in the test cuts its
//! connections mid-stream and it retries; and a producer id keeps its
//! sequence across a kill -9 and restart of the broker (raw protocol, so
//! every sequence number is chosen by the test).
use crate::common;

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::*;
use indexmap::IndexMap;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse, ProducerId,
    TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
/// How long any proxy loop may run.
const PROXY_LIFETIME: Duration = Duration::from_secs(180);

/// Checks that every value `v-0 .. v-{count-1}` was consumed exactly once
/// and that each partition's offsets are dense from 0.
fn assert_exactly_once(broker: &Broker, topic: &str, partitions: &[i32], count: usize) {
    let consumed = consume_all(broker, topic, partitions);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (p, messages) in &consumed {
        assert_dense(messages, 0, &format!("{topic}/{p}"));
        for m in messages {
            let value = value_str(m).expect("a value");
            *seen.entry(value).or_default() += 1;
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "records stored more than once: {twice:?}");
    let missing: Vec<usize> = (0..count)
        .filter(|i| !seen.contains_key(&format!("v-{i}")))
        .collect();
    assert!(missing.is_empty(), "records missing: {missing:?}");
    assert_eq!(seen.len(), count, "unexpected extra records");
}

fn values(count: usize) -> Vec<Rec> {
    (0..count)
        .map(|i| Rec::new(Some(&format!("k{}", i % 17)), Some(&format!("v-{i}"))))
        .collect()
}

#[test]
fn idempotent_librdkafka_producer_stores_every_record_once() {
    let broker = Broker::start();
    let topic = topic_name("idem");
    create_topic(&broker, &topic, 3, &[]);
    let producer = producer(
        &broker,
        &[("enable.idempotence", "true"), ("batch.num.messages", "50")],
    );
    produce_ok(&producer, &topic, &values(2000));
    assert_exactly_once(&broker, &topic, &[0, 1, 2], 2000);
}

// ---------------------------------------------------------------------------
// A TCP proxy that cuts connections
// ---------------------------------------------------------------------------

/// Forwards connections to the broker; each of the first `cuts_max`
/// connections is dropped once it has carried `cut_after_bytes` bytes from
/// the client, so requests in flight lose their answers (or their tails).
struct CuttingProxy {
    stop: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
    acceptor: Option<JoinHandle<()>>,
}

impl CuttingProxy {
    fn start(
        listener: TcpListener,
        target: String,
        cut_after_bytes: usize,
        cuts_max: usize,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(AtomicUsize::new(0));
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let (stop2, cuts2) = (stop.clone(), cuts.clone());
        let acceptor = thread::spawn(move || {
            let deadline = Instant::now() + PROXY_LIFETIME;
            let mut connections = 0usize;
            while !stop2.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((client, _)) => {
                        connections += 1;
                        // The first connections are cut; later ones are left alone.
                        let limit = (connections <= cuts_max).then_some(cut_after_bytes);
                        forward(client, &target, limit, stop2.clone(), cuts2.clone());
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(10))
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        CuttingProxy {
            stop,
            cuts,
            acceptor: Some(acceptor),
        }
    }

    fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

/// Starts the two pumps of one proxied connection.
fn forward(
    client: TcpStream,
    target: &str,
    cut_after_bytes: Option<usize>,
    stop: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
) {
    let Ok(server) = TcpStream::connect(target) else {
        return;
    };
    let _ = client.set_nonblocking(false);
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let closed = Arc::new(AtomicBool::new(false));
    let up = Pump {
        from: client,
        to: server,
        limit: cut_after_bytes,
        closed: closed.clone(),
        stop: stop.clone(),
        cuts,
    };
    let down = Pump {
        from: server2,
        to: client2,
        limit: None,
        closed,
        stop,
        cuts: Arc::new(AtomicUsize::new(0)),
    };
    thread::spawn(move || up.run());
    thread::spawn(move || down.run());
}

struct Pump {
    from: TcpStream,
    to: TcpStream,
    limit: Option<usize>,
    /// Set when either direction ends: the other one stops too.
    closed: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
}

impl Pump {
    fn run(mut self) {
        let _ = self.from.set_read_timeout(Some(Duration::from_millis(100)));
        let deadline = Instant::now() + PROXY_LIFETIME;
        let mut buf = [0u8; 4096];
        let mut carried = 0usize;
        while Instant::now() < deadline
            && !self.closed.load(Ordering::SeqCst)
            && !self.stop.load(Ordering::SeqCst)
        {
            let n = match self.from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue
                }
                Err(_) => break,
            };
            // Forward only up to the limit, then cut: a request is left half sent.
            let n = match self.limit {
                Some(limit) if carried + n >= limit => {
                    let part = limit.saturating_sub(carried).min(n);
                    let _ = self.to.write_all(&buf[..part]);
                    self.cuts.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                _ => n,
            };
            if self.to.write_all(&buf[..n]).is_err() {
                break;
            }
            carried += n;
        }
        self.closed.store(true, Ordering::SeqCst);
        let _ = self.from.shutdown(Shutdown::Both);
        let _ = self.to.shutdown(Shutdown::Both);
    }
}

#[test]
fn cut_connections_are_retried_and_no_record_is_stored_twice() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
    let proxy_port = listener.local_addr().expect("proxy addr").port();
    // Clients learn the proxy's address from Metadata, so every connection
    // (bootstrap and produce) goes through it.
    let advertised = format!("127.0.0.1:{proxy_port}");
    let broker = Broker::start_with(&[("advertised.listeners", &advertised)]);
    let proxy = CuttingProxy::start(listener, broker.addr(), 40_000, 4);
    let topic = topic_name("idem-cut");
    create_topic(&broker, &topic, 2, &[]);
    let count = 4000;
    let producer = producer(
        &broker,
        &[
            ("enable.idempotence", "true"),
            ("batch.num.messages", "40"),
            ("linger.ms", "2"),
            ("message.timeout.ms", "90000"),
        ],
    );
    let outcomes = produce(&producer, &topic, &values(count));
    let failed: Vec<_> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| o.is_err())
        .take(5)
        .collect();
    assert!(failed.is_empty(), "records not acknowledged: {failed:?}");
    assert!(proxy.cuts() >= 1, "the proxy never cut a connection");
    assert_exactly_once(&broker, &topic, &[0, 1], count);
    drop(proxy);
}

// ---------------------------------------------------------------------------
// Raw protocol: the producer id outlives a kill -9
// ---------------------------------------------------------------------------

/// One batch of `n` records from `producer_id` at `epoch`, sequences from `seq`.
fn idempotent_batch(producer_id: i64, epoch: i16, seq: i32, n: usize) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: seq + i as i32,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from(format!("seq {}", seq + i as i32))),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode record batch");
    buf.freeze()
}

/// Produces one batch with acks=all; returns (error code, base offset).
fn produce_batch(conn: &mut RawConn, topic: &str, batch: Bytes) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch))])]);
    let version = conn.negotiate::<ProduceRequest>();
    let response: ProduceResponse = conn.request(&request, version);
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn init_producer_id(conn: &mut RawConn, transactional_id: Option<&str>) -> InitProducerIdResponse {
    let version = conn.negotiate::<InitProducerIdRequest>();
    let request = InitProducerIdRequest::default()
        .with_transactional_id(
            transactional_id.map(|t| TransactionalId(StrBytes::from_string(t.to_string()))),
        )
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    conn.request(&request, version)
}

#[test]
fn a_producer_id_keeps_its_sequence_across_kill_9() {
    let mut broker = Broker::start();
    let topic = topic_name("idem-kill");
    create_topic(&broker, &topic, 1, &[]);
    let mut conn = RawConn::connect(&broker);
    let init = init_producer_id(&mut conn, None);
    assert_eq!(init.error_code, 0);
    assert_eq!(init.producer_epoch, 0);
    let pid = init.producer_id.0;
    assert!(pid >= 0);
    let refused = init_producer_id(&mut conn, Some("tx-1"));
    assert_eq!(refused.error_code, COORDINATOR_NOT_AVAILABLE);

    // Five batches of two records: sequences 0, 2, 4, 6, 8 at offsets 0..10.
    for i in 0..5 {
        let (code, base) = produce_batch(&mut conn, &topic, idempotent_batch(pid, 0, i * 2, 2));
        assert_eq!((code, base), (0, i as i64 * 2), "batch {i}");
    }
    // A retry before the crash is a duplicate too.
    assert_eq!(
        produce_batch(&mut conn, &topic, idempotent_batch(pid, 0, 8, 2)),
        (0, 8)
    );
    drop(conn);
    broker.kill9();
    broker.restart();

    let mut conn = RawConn::connect(&broker);
    assert_eq!(
        produce_batch(&mut conn, &topic, idempotent_batch(pid, 0, 10, 2)),
        (0, 10),
        "the next sequence after the restart is accepted"
    );
    for (seq, offset) in [(10, 10), (8, 8), (4, 4)] {
        assert_eq!(
            produce_batch(&mut conn, &topic, idempotent_batch(pid, 0, seq, 2)),
            (0, offset),
            "the retry of sequence {seq} is answered with its original offset"
        );
    }
    let (code, _) = produce_batch(&mut conn, &topic, idempotent_batch(pid, 0, 20, 1));
    assert_eq!(code, OUT_OF_ORDER_SEQUENCE_NUMBER, "a gap is refused");
    assert_eq!(
        watermarks(&broker, &topic, 0),
        (0, 12),
        "nothing stored twice"
    );

    let again = init_producer_id(&mut conn, None);
    assert_eq!(again.error_code, 0);
    assert!(
        again.producer_id.0 > pid,
        "producer ids are never reused across restarts: {} after {pid}",
        again.producer_id.0
    );
}
