//! One client must not starve the others: pipelined Fetches whose answers a
//! client never reads stay within the connection's memory budget, parked
//! long polls cost no CPU until their `min_bytes` arrive, and idle, slow,
//! too many and descriptor-exhausting connections are closed or refused
//! without taking a partition offline.
use crate::common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{FetchRequest, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

const FETCH_VERSION: i16 = 11;

/// The broker's resident memory (VmRSS).
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS value");
    kib * 1024
}

/// The broker's CPU time so far (user + system).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the whole line.
    let ticks = fields[11] + fields[12];
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Sets the broker's RLIMIT_NOFILE (soft and hard) while it runs.
fn set_nofile_limit(pid: u32, limit: u64) {
    let new = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: prlimit reads `new` and writes nothing (old is null).
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &new,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

fn fetch_request(
    topic: &str,
    offset: i64,
    min_bytes: i32,
    max_wait_ms: i32,
    max_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(max_bytes)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(max_bytes)])])
}

fn produce_request(topic: &str, batch: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch))])])
}

/// Produces one record of `value` and returns (error code, base offset).
fn raw_produce(conn: &mut RawConn, topic: &str, value: &[u8]) -> (i16, i64) {
    let response: ProduceResponse =
        conn.request(&produce_request(topic, one_record_batch(value)), 7);
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// The bytes of records in a Fetch answer of one partition, and its error.
fn fetched(response: &kafka_protocol::messages::FetchResponse) -> (i16, usize) {
    let p = &response.responses[0].partitions[0];
    (p.error_code, p.records.as_ref().map_or(0, |r| r.len()))
}

/// Reads and decodes one Fetch answer from `conn`.
fn read_fetch_answer(conn: &mut RawConn) -> kafka_protocol::messages::FetchResponse {
    use bytes::Buf;
    use kafka_protocol::protocol::{Decodable, HeaderVersion};
    let mut body = conn.read_frame().expect("a Fetch answer");
    let header_version =
        <kafka_protocol::messages::FetchResponse as HeaderVersion>::header_version(FETCH_VERSION);
    kafka_protocol::messages::ResponseHeader::decode(&mut body, header_version)
        .expect("response header");
    let response = kafka_protocol::messages::FetchResponse::decode(&mut body, FETCH_VERSION)
        .expect("decode Fetch answer");
    assert_eq!(body.remaining(), 0);
    response
}

/// A normal client's produce and consume, timed.
fn produce_and_consume(broker: &Broker, topic: &str) -> Duration {
    let started = Instant::now();
    let mut conn = RawConn::connect(broker);
    let (error, offset) = raw_produce(&mut conn, topic, b"a normal client");
    assert_eq!(error, 0, "produce of a normal client");
    let response = conn.request(
        &fetch_request(topic, offset, 1, 5_000, 1 << 20),
        FETCH_VERSION,
    );
    let (error, bytes) = fetched(&response);
    assert_eq!(error, 0, "fetch of a normal client");
    assert!(bytes > 0, "the normal client's record is fetched");
    started.elapsed()
}

/// Whether a new connection gets an answer to ApiVersions (false if the
/// broker closes it).
fn answers_api_versions(broker: &Broker) -> bool {
    let mut conn = RawConn::connect(broker);
    let request = kafka_protocol::messages::ApiVersionsRequest::default();
    let (_, frame) = conn.encode_request(&request, 0);
    conn.stream.write_all(&frame).is_ok() && conn.read_frame().is_ok()
}

#[test]
fn unread_pipelined_fetches_hold_a_bounded_amount_of_memory() {
    // A small batch cache, so that every Fetch reads its 16 MB from the
    // segments into buffers of its own (the worst case for memory).
    let mut broker = Broker::start_with(&[
        ("log.cache.bytes.per.partition", "1048576"),
        ("log.cache.bytes.per.shard", "1048576"),
    ]);
    let topic = topic_name("unread-fetches");
    create_topic(&broker, &topic, 1, &[]);
    let mut conn = RawConn::connect(&broker);
    let value = vec![0x5au8; 900_000];
    for _ in 0..64 {
        assert_eq!(raw_produce(&mut conn, &topic, &value).0, 0);
    }
    // ~57 MB in the log. A warm-up fetch, then the broker's memory at rest.
    let warm = conn.request(&fetch_request(&topic, 0, 1, 0, 16 << 20), FETCH_VERSION);
    assert!(fetched(&warm).1 > 8 << 20, "a 16 MB fetch reads much");
    let pid = broker.pid();
    let before = rss_bytes(pid);

    // Two clients pipeline 64 Fetches of 16 MB each and never read.
    const CONNECTIONS: usize = 2;
    let mut hostile = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut c = RawConn::connect(&broker);
        let mut frames = BytesMut::new();
        for i in 0..64 {
            let offset = (i % 32) as i64;
            let (_, frame) = c.encode_request(
                &fetch_request(&topic, offset, 1, 0, 16 << 20),
                FETCH_VERSION,
            );
            frames.extend_from_slice(&frame);
        }
        c.send_bytes(&frames);
        hostile.push(c);
    }
    let mut peak = before;
    let watch_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < watch_until {
        peak = peak.max(rss_bytes(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    let growth = peak.saturating_sub(before);
    // Each connection may hold connection.inflight.max.bytes (64 MiB) plus
    // a 64 KiB floor per pipelined fetch: 136 MiB for two. A segment read
    // passes through a DMA buffer and a copy, and the allocator keeps some
    // freed buffers, so the process grows by up to about three times that
    // (129 to 289 MiB measured; 1,695 MiB before the budget).
    const BOUND: u64 = 448 << 20;
    eprintln!(
        "RSS {} MiB at rest, peak {} MiB with {CONNECTIONS} x 64 unread 16 MB fetches (+{} MiB, bound {} MiB)",
        before >> 20,
        peak >> 20,
        growth >> 20,
        BOUND >> 20
    );
    assert!(
        growth < BOUND,
        "unread fetches grew the broker by {} MiB (bound {} MiB)",
        growth >> 20,
        BOUND >> 20
    );

    // Meanwhile a normal client still produces and consumes.
    let other = topic_name("beside-unread");
    create_topic(&broker, &other, 1, &[]);
    let took = produce_and_consume(&broker, &other);
    assert!(took < Duration::from_secs(5), "normal client took {took:?}");
    broker.assert_alive();

    // The hostile client reads at last: its answers come, in order.
    let first = read_fetch_answer(&mut hostile[0]);
    assert_eq!(fetched(&first).0, 0);
    drop(hostile);
    broker.assert_alive();
}

#[test]
fn parked_long_polls_cost_no_cpu_until_min_bytes_arrive() {
    let mut broker = Broker::start();
    let topic = topic_name("parked-polls");
    create_topic(&broker, &topic, 1, &[]);
    let mut conn = RawConn::connect(&broker);
    for i in 0..3 {
        assert_eq!(
            raw_produce(&mut conn, &topic, format!("few {i}").as_bytes()).0,
            0
        );
    }
    // 50 long polls with data past their offset, far less than min_bytes.
    const POLLS: usize = 50;
    const MAX_WAIT_MS: i32 = 5_000;
    let mut polls = Vec::new();
    for _ in 0..POLLS {
        let mut c = RawConn::connect(&broker);
        let (_, frame) = c.encode_request(
            &fetch_request(&topic, 0, 1_000_000, MAX_WAIT_MS, 1 << 20),
            FETCH_VERSION,
        );
        c.send_bytes(&frame);
        polls.push(c);
    }
    let sent = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    let pid = broker.pid();
    let cpu_before = cpu_time(pid);
    let window = Instant::now();
    // The topic is fed 10 records a second meanwhile, far below min_bytes.
    let mut fed = 0;
    while window.elapsed() < Duration::from_secs(3) {
        assert_eq!(
            raw_produce(&mut conn, &topic, format!("fed {fed}").as_bytes()).0,
            0
        );
        fed += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let cpu = cpu_time(pid) - cpu_before;
    let window = window.elapsed();
    eprintln!("{POLLS} parked long polls, {fed} records fed: {cpu:?} of CPU in {window:?}");
    assert!(
        cpu < Duration::from_millis(300),
        "{POLLS} parked long polls cost {cpu:?} of CPU in {window:?} ({fed} records fed)"
    );

    // A normal client is not slowed down by them.
    let other = topic_name("beside-polls");
    create_topic(&broker, &other, 1, &[]);
    let took = produce_and_consume(&broker, &other);
    eprintln!("a normal produce and consume beside them took {took:?}");
    assert!(took < Duration::from_millis(500), "took {took:?}");

    // The parked polls answer at max_wait with what there is.
    for c in &mut polls {
        let (error, bytes) = fetched(&read_fetch_answer(c));
        assert_eq!(error, 0);
        assert!(bytes > 0, "the three records");
    }
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_millis(MAX_WAIT_MS as u64 - 500)
            && waited < Duration::from_millis(MAX_WAIT_MS as u64 + 3_000),
        "the parked polls answered after {waited:?}"
    );
    broker.assert_alive();
}

#[test]
fn a_long_poll_answers_once_min_bytes_arrive() {
    let broker = Broker::start();
    let topic = topic_name("min-bytes");
    create_topic(&broker, &topic, 1, &[]);
    let mut producer = RawConn::connect(&broker);
    assert_eq!(raw_produce(&mut producer, &topic, b"small").0, 0);

    let mut poll = RawConn::connect(&broker);
    let (_, frame) = poll.encode_request(
        &fetch_request(&topic, 0, 20_000, 20_000, 1 << 20),
        FETCH_VERSION,
    );
    poll.send_bytes(&frame);
    // Another small record: still far from min_bytes, no answer yet.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(raw_produce(&mut producer, &topic, b"still small").0, 0);
    poll.stream
        .set_read_timeout(Some(Duration::from_millis(700)))
        .expect("read timeout");
    let mut byte = [0u8; 1];
    match poll.stream.peek(&mut byte) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("the poll answered before min_bytes: {other:?}"),
    }
    // Then enough bytes: the poll answers at once, not at max_wait.
    let arrived = Instant::now();
    assert_eq!(raw_produce(&mut producer, &topic, &[7u8; 25_000]).0, 0);
    poll.stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("read timeout");
    let (error, bytes) = fetched(&read_fetch_answer(&mut poll));
    let took = arrived.elapsed();
    eprintln!("a long poll answered {took:?} after min_bytes arrived ({bytes} bytes)");
    assert_eq!(error, 0);
    assert!(bytes >= 20_000, "min_bytes reached: {bytes}");
    assert!(took < Duration::from_secs(1), "answered after {took:?}");
}

#[test]
fn idle_connections_are_closed_after_connections_max_idle_ms() {
    let broker = Broker::start_with(&[("connections.max.idle.ms", "1000")]);
    let mut idle = RawConn::connect(&broker);
    assert!(!idle.api_versions().is_empty());
    let mut busy = RawConn::connect(&broker);
    let started = Instant::now();
    // The busy one asks something every 300 ms and stays open.
    while started.elapsed() < Duration::from_millis(2_500) {
        assert!(!busy.api_versions().is_empty(), "a busy connection stays");
        std::thread::sleep(Duration::from_millis(300));
    }
    let closed = wait_for_close(&mut idle.stream, Duration::from_secs(5));
    let after = started.elapsed();
    assert!(closed.is_ok(), "the idle connection: {closed:?}");
    // It was closed before the loop above ended (within about 1 s of idling).
    let mut again = RawConn::connect(&broker);
    assert!(!again.api_versions().is_empty());
    eprintln!("idle connection closed (observed {after:?} after its last request)");
}

#[test]
fn a_frame_that_never_completes_is_closed_after_its_deadline() {
    let broker = Broker::start_with(&[
        ("socket.request.read.timeout.ms", "1000"),
        ("connections.max.idle.ms", "60000"),
    ]);
    let mut slow = TcpStream::connect(broker.addr()).expect("connect");
    // A frame that claims 100 bytes, then one byte every 200 ms.
    slow.write_all(&[0, 0, 0, 100, 0, 18]).expect("frame start");
    let started = Instant::now();
    let mut closed_after = None;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(200));
        if slow.write_all(&[0]).is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        slow.set_read_timeout(Some(Duration::from_millis(1)))
            .expect("timeout");
        let mut buf = [0u8; 16];
        match slow.read(&mut buf) {
            Ok(0) => {
                closed_after = Some(started.elapsed());
                break;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            _ => {
                closed_after = Some(started.elapsed());
                break;
            }
        }
    }
    let closed_after = closed_after.expect("the slow frame's connection was never closed");
    eprintln!("a slowloris frame was closed after {closed_after:?}");
    assert!(
        closed_after >= Duration::from_millis(800) && closed_after < Duration::from_secs(4),
        "closed after {closed_after:?}"
    );
    let mut conn = RawConn::connect(&broker);
    assert!(!conn.api_versions().is_empty(), "others are served");
}

#[test]
fn connections_over_the_per_ip_and_broker_limits_are_closed_at_once() {
    let broker = Broker::start_with(&[("max.connections.per.ip", "3")]);
    let mut kept: Vec<RawConn> = (0..3).map(|_| RawConn::connect(&broker)).collect();
    for c in &mut kept {
        assert!(!c.api_versions().is_empty());
    }
    let mut extra = TcpStream::connect(broker.addr()).expect("connect");
    let started = Instant::now();
    let closed = wait_for_close(&mut extra, Duration::from_secs(5));
    assert!(closed.is_ok(), "the 4th connection from one IP: {closed:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "closed at once");
    for c in &mut kept {
        assert!(!c.api_versions().is_empty(), "the first three still work");
    }
    drop(kept.pop());
    wait_until(Duration::from_secs(5), "a freed place", || {
        answers_api_versions(&broker).then_some(())
    });

    let broker = Broker::start_with(&[("max.connections", "2")]);
    let mut kept: Vec<RawConn> = (0..2).map(|_| RawConn::connect(&broker)).collect();
    for c in &mut kept {
        assert!(!c.api_versions().is_empty());
    }
    let mut extra = TcpStream::connect(broker.addr()).expect("connect");
    assert!(
        wait_for_close(&mut extra, Duration::from_secs(5)).is_ok(),
        "the 3rd connection over max.connections=2"
    );
    assert!(!kept[0].api_versions().is_empty());
}

/// Opens connections until `count` are open or connecting fails.
fn flood(broker: &Broker, count: usize) -> Vec<TcpStream> {
    let mut flood = Vec::with_capacity(count);
    for _ in 0..count {
        match TcpStream::connect_timeout(
            &broker.addr().parse().expect("addr"),
            Duration::from_millis(500),
        ) {
            Ok(s) => flood.push(s),
            Err(_) => break,
        }
    }
    flood
}

/// Sends a produce of `value` that fills the active segment of a topic with
/// `internal.segment.bytes=4096`, so the next one needs a roll.
fn produce_frame(conn: &mut RawConn, topic: &str, value: &[u8]) -> BytesMut {
    conn.encode_request(&produce_request(topic, one_record_batch(value)), 7)
        .1
}

fn read_produce_answer(conn: &mut RawConn) -> (i16, i64) {
    use kafka_protocol::protocol::{Decodable, HeaderVersion};
    let mut body = conn.read_frame().expect("a Produce answer");
    kafka_protocol::messages::ResponseHeader::decode(
        &mut body,
        <ProduceResponse as HeaderVersion>::header_version(7),
    )
    .expect("response header");
    let response = ProduceResponse::decode(&mut body, 7).expect("decode Produce answer");
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Starts a broker, creates a topic with 4 KiB segments, opens a producer's
/// connection and lowers the broker's RLIMIT_NOFILE to what it has open plus
/// `headroom`.
fn broker_near_its_fd_limit(settings: &[(&str, &str)], headroom: u64) -> (Broker, String, RawConn) {
    let broker = Broker::start_with(settings);
    let topic = topic_name("fd-flood");
    create_topic(&broker, &topic, 1, &[("internal.segment.bytes", "4096")]);
    let mut producer = RawConn::connect(&broker);
    assert_eq!(raw_produce(&mut producer, &topic, &[1u8; 1000]).0, 0);
    let open = open_fds(broker.pid()) as u64;
    set_nofile_limit(broker.pid(), open + headroom);
    eprintln!(
        "broker has {open} descriptors open; RLIMIT_NOFILE set to {}",
        open + headroom
    );
    (broker, topic, producer)
}

#[test]
fn a_connection_flood_out_of_descriptors_does_not_take_a_log_offline() {
    // No reserve: the flood takes every descriptor, the roll fails with
    // EMFILE, and must be retried until descriptors come back.
    let (mut broker, topic, mut producer) =
        broker_near_its_fd_limit(&[("log.fd.reserve", "0")], 150);
    let flooded = flood(&broker, 400);
    std::thread::sleep(Duration::from_millis(500));
    eprintln!("{} flood connections open", flooded.len());
    // Produce enough to need new segments while the descriptors are gone.
    let mut frames = BytesMut::new();
    for _ in 0..6 {
        frames.extend_from_slice(&produce_frame(&mut producer, &topic, &[2u8; 1500]));
    }
    producer.send_bytes(&frames);
    std::thread::sleep(Duration::from_millis(1500));
    drop(flooded);
    for i in 0..6 {
        let (error, _) = read_produce_answer(&mut producer);
        assert_eq!(error, 0, "produce {i} after the flood closed");
    }
    let output = broker.output();
    assert!(
        output.contains("out of file descriptors, retrying"),
        "the roll ran out of descriptors (the test must reach that point)"
    );
    assert!(
        !output.contains("the log goes offline"),
        "the log went offline:\n{output}"
    );
    let accept_warnings = output.matches("accept failed").count();
    assert!(
        accept_warnings <= 4,
        "{accept_warnings} accept warnings: not rate-limited"
    );
    // More rolls, and everything reads back.
    for _ in 0..10 {
        assert_eq!(raw_produce(&mut producer, &topic, &[3u8; 1500]).0, 0);
    }
    assert_eq!(watermarks(&broker, &topic, 0), (0, 17));
    let consumed = consume_all(&broker, &topic, &[0]);
    assert_dense(&consumed[&0], 0, "after the flood");
    broker.assert_alive();
}

#[test]
fn descriptors_reserved_for_the_logs_keep_rolls_working_during_a_flood() {
    let (mut broker, topic, mut producer) = broker_near_its_fd_limit(&[], 200);
    let flooded = flood(&broker, 400);
    std::thread::sleep(Duration::from_millis(500));
    // While the flood is open: produce that needs new segments works.
    for i in 0..10 {
        let (error, _) = raw_produce(&mut producer, &topic, &[4u8; 1500]);
        assert_eq!(error, 0, "produce {i} during the flood");
    }
    let output = broker.output();
    assert!(!output.contains("out of file descriptors"), "{output}");
    assert!(
        output.contains("connection refused"),
        "the flood was refused"
    );
    assert!(
        output.matches("connection refused").count() <= 4,
        "refusals are rate-limited"
    );
    drop(flooded);
    assert_eq!(watermarks(&broker, &topic, 0), (0, 11));
    broker.assert_alive();
}
