//! Test harness shared by the integration tests: starts a real `tidemark dev`
//! process on a free loopback port with a temporary data directory, and builds
//! the clients the tests talk to it with (librdkafka through the `rdkafka` crate,
//! and a raw Kafka-protocol connection through `kafka-protocol`).
//!
//! Every test owns its broker, so tests run in parallel. Every wait is bounded.
#![allow(dead_code)]

pub mod kafka_tools;
pub mod quorum;
pub mod secure;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// How long a broker may take to print `listening on`.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a broker may take to exit after SIGTERM.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Default bound for client operations (metadata, watermarks, admin calls).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);
/// Lines of broker output kept for failure messages.
const LOG_LINES_MAX: usize = 4000;

/// Returns a port on 127.0.0.1 that was free a moment ago.
/// A new empty directory for a broker's data, removed when dropped.
pub fn temporary_data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("tidemark-test-")
        .tempdir()
        .expect("create a temporary data dir")
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// A `tidemark dev` process (or a `tidemark broker` of a cluster) with its
/// own data directory. Killed (SIGKILL) on drop.
pub struct Broker {
    child: Option<Child>,
    port: u16,
    data_dir: tempfile::TempDir,
    settings: Vec<(String, String)>,
    log: Arc<Mutex<Vec<String>>>,
    incarnation: usize,
    /// `Some((broker id, quorum endpoints))` for a cluster member.
    member_of: Option<(i32, String)>,
    /// Environment variables of the broker process.
    environment: Vec<(String, String)>,
    /// Flags of `tidemark dev` beyond the harness's own (`--secure`).
    dev_flags: Vec<String>,
}

impl Broker {
    /// Starts a broker with the default configuration.
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    /// Starts a broker with `--set key=value` for each pair.
    pub fn start_with(settings: &[(&str, &str)]) -> Broker {
        Broker::launch(settings, None)
    }

    /// Starts a broker with `settings` and these environment variables.
    pub fn start_with_environment(
        settings: &[(&str, &str)],
        environment: &[(&str, &str)],
    ) -> Broker {
        let environment = environment
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Broker::launch_with(temporary_data_dir(), settings, None, environment)
    }

    /// Starts `tidemark dev` with these flags besides the harness's own
    /// (`--secure`, say), and `settings`.
    pub fn start_dev_with_flags(flags: &[&str], settings: &[(&str, &str)]) -> Broker {
        let mut broker = Broker::unstarted(temporary_data_dir(), settings, None, Vec::new());
        broker.dev_flags = flags.iter().map(|f| f.to_string()).collect();
        broker.spawn_on_a_free_port();
        broker
    }

    /// Starts `tidemark broker --broker-id ID --quorum ENDPOINTS`, a member
    /// of the cluster that quorum runs.
    pub fn start_member(broker_id: i32, quorum: &str, settings: &[(&str, &str)]) -> Broker {
        Broker::launch(settings, Some((broker_id, quorum.to_string())))
    }

    /// The same, with these environment variables.
    pub fn start_member_with_environment(
        broker_id: i32,
        quorum: &str,
        settings: &[(&str, &str)],
        environment: &[(&str, &str)],
    ) -> Broker {
        let environment = environment
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Broker::launch_with(
            temporary_data_dir(),
            settings,
            Some((broker_id, quorum.to_string())),
            environment,
        )
    }

    /// Starts `tidemark dev` on a data dir that already holds data (one
    /// written by an earlier release, say).
    pub fn start_in(data_dir: tempfile::TempDir, settings: &[(&str, &str)]) -> Broker {
        Broker::launch_in(data_dir, settings, None)
    }

    fn launch(settings: &[(&str, &str)], member_of: Option<(i32, String)>) -> Broker {
        Broker::launch_in(temporary_data_dir(), settings, member_of)
    }

    fn launch_in(
        data_dir: tempfile::TempDir,
        settings: &[(&str, &str)],
        member_of: Option<(i32, String)>,
    ) -> Broker {
        Broker::launch_with(data_dir, settings, member_of, Vec::new())
    }

    fn launch_with(
        data_dir: tempfile::TempDir,
        settings: &[(&str, &str)],
        member_of: Option<(i32, String)>,
        environment: Vec<(String, String)>,
    ) -> Broker {
        let mut broker = Broker::unstarted(data_dir, settings, member_of, environment);
        broker.spawn_on_a_free_port();
        broker
    }

    fn unstarted(
        data_dir: tempfile::TempDir,
        settings: &[(&str, &str)],
        member_of: Option<(i32, String)>,
        environment: Vec<(String, String)>,
    ) -> Broker {
        Broker {
            child: None,
            port: free_port(),
            data_dir,
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            log: Arc::new(Mutex::new(Vec::new())),
            incarnation: 0,
            member_of,
            environment,
            dev_flags: Vec::new(),
        }
    }

    /// Another test may grab the port between our probe and the broker's
    /// bind: then take another port (only possible on the first start).
    fn spawn_on_a_free_port(&mut self) {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.spawn() {
                Ok(()) => return,
                Err(message) if attempts < 4 && looks_like_addr_in_use(&message) => {
                    self.port = free_port();
                }
                Err(message) => panic!("{message}"),
            }
        }
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers` and raw connections.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// The process id of the running broker.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker is not running").id()
    }

    /// Everything the broker printed so far (all incarnations), last lines only.
    pub fn output(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Panics (with the broker's output) unless the process is still running.
    pub fn assert_alive(&mut self) {
        self.assert_alive_after("the test's last step");
    }

    /// Like `assert_alive`, naming what was just done to the broker.
    pub fn assert_alive_after(&mut self, what: &str) {
        let child = self.child.as_mut().expect("broker is not running");
        if let Some(status) = child.try_wait().expect("try_wait") {
            self.child = None;
            panic!(
                "the broker died ({status}) after {what}; its output:\n{}",
                self.output()
            );
        }
    }

    /// Kills the broker and leaves its data dir to a detached `rm -rf`, for
    /// tests that leave tens of thousands of files (removing them would
    /// take longer than the test).
    pub fn discard(mut self) {
        self.kill9();
        let empty = tempfile::Builder::new()
            .prefix("tidemark-test-")
            .tempdir()
            .expect("create a temporary data dir");
        let full = std::mem::replace(&mut self.data_dir, empty).keep();
        let _ = Command::new("rm")
            .arg("-rf")
            .arg(&full)
            .stdin(Stdio::null())
            .spawn();
    }

    /// Kills the broker with SIGKILL and reaps it. The data dir stays.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for the process to exit; returns its status.
    /// Panics (with the broker's output) if it does not exit in time.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("broker is not running");
        // SAFETY: plain kill(2) on the pid of a child we have not reaped yet.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the broker did not exit within {SHUTDOWN_TIMEOUT:?} of SIGTERM; its output:\n{}",
                    self.output()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the broker (SIGTERM, which must exit cleanly) if it is running, then
    /// starts it again on the same port and data dir.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            let status = self.terminate();
            assert!(
                status.success(),
                "the broker exited with {status} after SIGTERM; its output:\n{}",
                self.output()
            );
        }
        // The port may be held for a moment by the old process' sockets.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.spawn() {
                Ok(()) => return,
                Err(message) if attempts < 10 && looks_like_addr_in_use(&message) => {
                    thread::sleep(Duration::from_millis(500));
                }
                Err(message) => panic!("{message}"),
            }
        }
    }

    fn spawn(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "broker already running");
        self.incarnation += 1;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidemark"));
        match &self.member_of {
            None => {
                cmd.arg("dev").arg("--cores").arg("2").args(&self.dev_flags);
            }
            Some((id, quorum)) => {
                cmd.arg("broker")
                    .arg("--broker-id")
                    .arg(id.to_string())
                    .arg("--quorum")
                    .arg(quorum)
                    .arg("--set")
                    .arg("num.shards=2");
            }
        }
        cmd.arg("--listen")
            .arg(self.addr())
            .arg("--data-dir")
            .arg(self.data_dir.path());
        // `{port}` in a value is the broker's own port (picked here).
        let port = self.port.to_string();
        for (key, value) in &self.settings {
            cmd.arg("--set")
                .arg(format!("{key}={}", value.replace("{port}", &port)));
        }
        cmd.envs(self.environment.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        raise_memlock_limit(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot spawn {}: {e}", env!("CARGO_BIN_EXE_tidemark")))?;

        let (ready_tx, ready_rx) = mpsc::channel::<()>();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        self.drain(stdout, "out", ready_tx.clone());
        self.drain(stderr, "err", ready_tx);

        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            match ready_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(()) => break,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => thread::sleep(Duration::from_millis(100)),
            }
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                // Let the reader threads collect the last lines.
                thread::sleep(Duration::from_millis(300));
                return Err(format!(
                    "tidemark exited during start-up ({status}); its output:\n{}",
                    self.output()
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "tidemark printed no 'listening on' line within {STARTUP_TIMEOUT:?}; its output:\n{}",
                    self.output()
                ));
            }
        }
        self.child = Some(child);
        Ok(())
    }

    fn drain(
        &self,
        stream: impl Read + Send + 'static,
        name: &'static str,
        ready: mpsc::Sender<()>,
    ) {
        let log = Arc::clone(&self.log);
        let incarnation = self.incarnation;
        thread::spawn(move || {
            let reader = BufReader::new(stream);
            for line in reader.split(b'\n') {
                let Ok(line) = line else { break };
                let line = String::from_utf8_lossy(&line).into_owned();
                if line.contains("tidemark: listening on") {
                    let _ = ready.send(());
                }
                if let Ok(mut log) = log.lock() {
                    if log.len() >= LOG_LINES_MAX {
                        log.remove(0);
                    }
                    log.push(format!("[run {incarnation} {name}] {line}"));
                }
            }
        });
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            let output = self.output();
            let lines: Vec<&str> = output.lines().collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            eprintln!(
                "---- last broker output (data dir {}) ----\n{}\n----",
                self.data_dir.path().display(),
                tail.join("\n")
            );
        }
    }
}

fn looks_like_addr_in_use(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("in use") || m.contains("addrinuse") || m.contains("os error 98")
}

/// glommio registers io memory: lift RLIMIT_MEMLOCK in the child where we may.
pub fn raise_memlock_limit(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls (getrlimit/setrlimit) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) == 0 {
                let wanted = libc::rlimit {
                    rlim_cur: libc::RLIM_INFINITY,
                    rlim_max: libc::RLIM_INFINITY,
                };
                if libc::setrlimit(libc::RLIMIT_MEMLOCK, &wanted) != 0 {
                    let soft = libc::rlimit {
                        rlim_cur: limit.rlim_max,
                        rlim_max: limit.rlim_max,
                    };
                    libc::setrlimit(libc::RLIMIT_MEMLOCK, &soft);
                }
            }
            Ok(())
        });
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// librdkafka clients
// ---------------------------------------------------------------------------

/// The settings every librdkafka client in these tests shares.
pub fn client_config(broker: &Broker) -> ClientConfig {
    client_config_for(&broker.addr())
}

/// `client_config` for a list of brokers, `host:port,host:port`.
pub fn client_config_for(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", "15000")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500");
    config
}

/// One record to produce.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rec {
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Option<i64>,
}

impl Rec {
    pub fn new(key: Option<&str>, value: Option<&str>) -> Rec {
        Rec {
            key: key.map(|k| k.as_bytes().to_vec()),
            value: value.map(|v| v.as_bytes().to_vec()),
            ..Rec::default()
        }
    }

    pub fn value(value: impl Into<Vec<u8>>) -> Rec {
        Rec {
            value: Some(value.into()),
            ..Rec::default()
        }
    }

    pub fn to(mut self, partition: i32) -> Rec {
        self.partition = Some(partition);
        self
    }

    pub fn at(mut self, timestamp_ms: i64) -> Rec {
        self.timestamp = Some(timestamp_ms);
        self
    }

    pub fn header(mut self, key: &str, value: Option<&[u8]>) -> Rec {
        self.headers
            .push((key.to_string(), value.map(|v| v.to_vec())));
        self
    }
}

/// What the broker said about one produced record: `(partition, offset)` or the error.
pub type Outcome = Result<(i32, i64), KafkaError>;

/// One delivery report: record index, the record's value, and the outcome.
pub type Report = (usize, Option<Vec<u8>>, Outcome);

/// A producer context that keeps every delivery report, by record index.
#[derive(Default)]
pub struct Reports {
    next_index: AtomicUsize,
    outcomes: Mutex<HashMap<usize, Outcome>>,
    /// Every report in arrival order, with the value of the record.
    pub log: Mutex<Vec<Report>>,
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let (outcome, value) = match result {
            Ok(message) => (
                Ok((message.partition(), message.offset())),
                message.payload().map(|p| p.to_vec()),
            ),
            Err((error, message)) => (Err(error.clone()), message.payload().map(|p| p.to_vec())),
        };
        if let Ok(mut log) = self.log.lock() {
            log.push((index, value, outcome.clone()));
        }
        if let Ok(mut outcomes) = self.outcomes.lock() {
            outcomes.insert(index, outcome);
        }
    }
}

pub type TestProducer = BaseProducer<Reports>;

/// A producer with acks=all, no idempotence, a 5 ms linger, plus `extra` settings.
pub fn producer(broker: &Broker, extra: &[(&str, &str)]) -> TestProducer {
    producer_with_bootstrap(&broker.addr(), extra)
}

/// `producer` for a list of brokers, `host:port,host:port`.
pub fn producer_with_bootstrap(bootstrap: &str, extra: &[(&str, &str)]) -> TestProducer {
    let mut config = client_config_for(bootstrap);
    config
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    config
        .create_with_context(Reports::default())
        .expect("create producer")
}

/// Enqueues one record (retrying while the local queue is full) and returns its index.
pub fn enqueue(producer: &TestProducer, topic: &str, rec: &Rec) -> usize {
    let index = producer.context().next_index.fetch_add(1, Ordering::SeqCst);
    let headers = if rec.headers.is_empty() {
        None
    } else {
        let mut headers = OwnedHeaders::new_with_capacity(rec.headers.len());
        for (key, value) in &rec.headers {
            headers = headers.insert(Header {
                key: key.as_str(),
                value: value.as_deref(),
            });
        }
        Some(headers)
    };
    let mut record: BaseRecord<'_, [u8], [u8], usize> = BaseRecord::with_opaque_to(topic, index);
    record.partition = rec.partition;
    record.key = rec.key.as_deref();
    record.payload = rec.value.as_deref();
    record.timestamp = rec.timestamp;
    record.headers = headers;
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    loop {
        match producer.send(record) {
            Ok(()) => return index,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                if Instant::now() < deadline =>
            {
                record = back;
                producer.poll(Duration::from_millis(10));
            }
            Err((error, _)) => panic!("cannot enqueue a record for {topic}: {error}"),
        }
    }
}

/// Produces `recs` to `topic`, flushes, and returns one outcome per record, in order.
pub fn produce(producer: &TestProducer, topic: &str, recs: &[Rec]) -> Vec<Outcome> {
    let indexes: Vec<usize> = recs.iter().map(|r| enqueue(producer, topic, r)).collect();
    producer
        .flush(Duration::from_secs(60))
        .expect("flush the producer");
    wait_until(CLIENT_TIMEOUT, "every delivery report", || {
        producer.poll(Duration::from_millis(10));
        let outcomes = producer.context().outcomes.lock().unwrap();
        if indexes.iter().all(|i| outcomes.contains_key(i)) {
            Some(indexes.iter().map(|i| outcomes[i].clone()).collect())
        } else {
            None
        }
    })
}

/// Produces `recs` and panics unless every one was acknowledged; returns `(partition, offset)`s.
pub fn produce_ok(producer: &TestProducer, topic: &str, recs: &[Rec]) -> Vec<(i32, i64)> {
    produce(producer, topic, recs)
        .into_iter()
        .enumerate()
        .map(|(i, outcome)| {
            outcome.unwrap_or_else(|e| panic!("record {i} to {topic} was not acknowledged: {e}"))
        })
        .collect()
}

/// A consumer for `assign` use (a group id is needed by librdkafka for assign; nothing is committed).
pub fn consumer(broker: &Broker) -> BaseConsumer {
    consumer_with(broker, &[])
}

pub fn consumer_with(broker: &Broker, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut config = client_config(broker);
    config
        .set("group.id", "tidemark-tests")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "error")
        .set("fetch.wait.max.ms", "100");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    config.create().expect("create consumer")
}

/// `(low, high)` watermarks of one partition.
pub fn watermarks(broker: &Broker, topic: &str, partition: i32) -> (i64, i64) {
    fetch_watermarks(&consumer(broker), topic, partition)
}

/// `(low, high)` watermarks of one partition, asked through `consumer`. A
/// leader elected moments ago answers OFFSET_NOT_AVAILABLE until its high
/// watermark reaches the start of its epoch (KIP-207); librdkafka hands that
/// retriable error back to the caller, so this asks again, as Kafka's Java
/// consumer does on its own.
fn fetch_watermarks(consumer: &BaseConsumer, topic: &str, partition: i32) -> (i64, i64) {
    wait_until(
        Duration::from_secs(60),
        &format!("a leader of {topic}/{partition} that knows its log end"),
        || match consumer.fetch_watermarks(topic, partition, CLIENT_TIMEOUT) {
            Ok(marks) => Some(marks),
            Err(KafkaError::MetadataFetch(RDKafkaErrorCode::OffsetNotAvailable)) => None,
            Err(e) => panic!("watermarks of {topic}/{partition}: {e}"),
        },
    )
}

/// Reads every partition in `partitions` from its low watermark up to the high watermark
/// seen when called. Returns the messages per partition, in the order received.
pub fn consume_all(
    broker: &Broker,
    topic: &str,
    partitions: &[i32],
) -> BTreeMap<i32, Vec<OwnedMessage>> {
    consume_all_with(broker, topic, partitions, &[])
}

pub fn consume_all_with(
    broker: &Broker,
    topic: &str,
    partitions: &[i32],
    extra: &[(&str, &str)],
) -> BTreeMap<i32, Vec<OwnedMessage>> {
    let consumer = consumer_with(broker, extra);
    let mut ends = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for &p in partitions {
        let (low, high) = fetch_watermarks(&consumer, topic, p);
        if high > low {
            ends.insert(p, high);
            assignment
                .add_partition_offset(topic, p, Offset::Offset(low))
                .expect("add partition");
        }
    }
    let mut out: BTreeMap<i32, Vec<OwnedMessage>> =
        partitions.iter().map(|&p| (p, Vec::new())).collect();
    if assignment.count() == 0 {
        return out;
    }
    consumer.assign(&assignment).expect("assign");
    let done = |out: &BTreeMap<i32, Vec<OwnedMessage>>| {
        ends.iter()
            .all(|(p, &high)| out[p].last().is_some_and(|m| m.offset() + 1 >= high))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(&out) {
        if Instant::now() > deadline {
            let got: Vec<(i32, usize, Option<i64>)> = out
                .iter()
                .map(|(p, msgs)| (*p, msgs.len(), msgs.last().map(|m| m.offset())))
                .collect();
            panic!("consuming {topic} timed out: wanted up to {ends:?}, got (partition, count, last offset) {got:?}");
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(message)) => {
                let message = message.detach();
                out.entry(message.partition()).or_default().push(message);
            }
            // A broker that was just killed is still in the metadata until
            // its session lapses: librdkafka reports the failed connection
            // and retries, as a user's consumer keeps polling through it.
            Some(Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown,
            ))) => {}
            Some(Err(error)) => panic!("consuming {topic}: {error}"),
        }
    }
    out
}

/// Panics unless the offsets of `messages` are exactly `first, first+1, ...`.
pub fn assert_dense(messages: &[OwnedMessage], first: i64, what: &str) {
    let offsets: Vec<i64> = messages.iter().map(|m| m.offset()).collect();
    let expected: Vec<i64> = (first..first + messages.len() as i64).collect();
    assert_eq!(
        offsets, expected,
        "{what}: offsets are not dense from {first}"
    );
}

/// The headers of a consumed message as owned pairs.
pub fn headers_of(message: &OwnedMessage) -> Vec<(String, Option<Vec<u8>>)> {
    match message.headers() {
        None => Vec::new(),
        Some(headers) => headers
            .iter()
            .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
            .collect(),
    }
}

/// The payload of a consumed message as a string (lossy), `None` for a null value.
pub fn value_str(message: &OwnedMessage) -> Option<String> {
    message
        .payload()
        .map(|p| String::from_utf8_lossy(p).into_owned())
}

// ---------------------------------------------------------------------------
// Admin
// ---------------------------------------------------------------------------

pub type Admin = AdminClient<DefaultClientContext>;

pub fn admin(broker: &Broker) -> Admin {
    client_config(broker).create().expect("create admin client")
}

pub fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(15)))
        .request_timeout(Some(Duration::from_secs(20)))
}

/// Creates a topic (replication factor 1) and waits until its metadata shows every partition.
pub fn create_topic(broker: &Broker, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    create_replicated_topic(broker, name, partitions, 1, configs);
    wait_for_partitions(broker, name, partitions as usize);
}

/// CreateTopics with a replication factor; returns once the broker accepted it.
pub fn create_replicated_topic(
    broker: &Broker,
    name: &str,
    partitions: i32,
    replication_factor: i32,
    configs: &[(&str, &str)],
) {
    create_topic_through(
        &admin(broker),
        name,
        partitions,
        replication_factor,
        configs,
    );
}

/// CreateTopics through `admin` (a client of a secured listener, say).
pub fn create_topic_through(
    admin: &Admin,
    name: &str,
    partitions: i32,
    replication_factor: i32,
    configs: &[(&str, &str)],
) {
    let replication = TopicReplication::Fixed(replication_factor);
    let mut topic = NewTopic::new(name, partitions, replication);
    for (key, value) in configs {
        topic = topic.set(key, value);
    }
    let results = futures::executor::block_on(admin.create_topics([&topic], &admin_options()))
        .unwrap_or_else(|e| panic!("CreateTopics {name}: {e}"));
    for result in results {
        if let Err((topic, code)) = result {
            panic!("CreateTopics {topic}: {code:?}");
        }
    }
}

/// Waits until Metadata for `topic` shows `partitions` partitions, each with leader 1.
pub fn wait_for_partitions(broker: &Broker, topic: &str, partitions: usize) {
    wait_for_partitions_through(&consumer(broker), topic, partitions);
}

/// `wait_for_partitions`, asking through `consumer`.
pub fn wait_for_partitions_through(consumer: &BaseConsumer, topic: &str, partitions: usize) {
    wait_until(
        CLIENT_TIMEOUT,
        &format!("{topic} to have {partitions} partitions in Metadata"),
        || {
            let metadata = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(5))
                .ok()?;
            let t = metadata.topics().iter().find(|t| t.name() == topic)?;
            (t.error().is_none()
                && t.partitions().len() == partitions
                && t.partitions().iter().all(|p| p.leader() >= 0))
            .then_some(())
        },
    );
}

/// Partition count of `topic` in Metadata, `None` if the broker reports an error for it.
pub fn partition_count(broker: &Broker, topic: &str) -> Option<usize> {
    let consumer = consumer(broker);
    let metadata = consumer
        .fetch_metadata(Some(topic), CLIENT_TIMEOUT)
        .expect("fetch metadata");
    let t = metadata.topics().iter().find(|t| t.name() == topic)?;
    if t.error().is_some() {
        None
    } else {
        Some(t.partitions().len())
    }
}

// ---------------------------------------------------------------------------
// Raw Kafka protocol over a std TcpStream
// ---------------------------------------------------------------------------

/// A blocking Kafka-protocol connection, for what librdkafka cannot send.
pub struct RawConn {
    pub stream: TcpStream,
    correlation_id: i32,
}

impl RawConn {
    pub fn connect(broker: &Broker) -> RawConn {
        RawConn::connect_to(&broker.addr())
    }

    /// A connection to `addr` (another listener of a broker).
    pub fn connect_to(addr: &str) -> RawConn {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .expect("read timeout");
        stream
            .set_write_timeout(Some(Duration::from_secs(15)))
            .expect("write timeout");
        stream.set_nodelay(true).expect("nodelay");
        RawConn {
            stream,
            correlation_id: 0,
        }
    }

    /// Encodes a request frame (length prefix included) without sending it.
    pub fn encode_request<R: Request>(&mut self, request: &R, version: i16) -> (i32, BytesMut) {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("tidemark-tests")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .expect("encode request header");
        request
            .encode(&mut body, version)
            .expect("encode request body");
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        (self.correlation_id, frame)
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to broker");
    }

    /// Reads one length-prefixed frame.
    /// The broker closed this connection: reading ends or fails, rather
    /// than timing out on a connection left open.
    pub fn assert_closed(&mut self, what: &str) {
        match self.read_frame() {
            Ok(frame) => panic!("{what}: the connection is open and sent {frame:?}"),
            Err(e) => assert!(
                !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "{what}: the connection was left open ({e})"
            ),
        }
    }

    pub fn read_frame(&mut self) -> std::io::Result<Bytes> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let len = i32::from_be_bytes(len);
        assert!(
            (0..=512 * 1024 * 1024).contains(&len),
            "the broker sent a frame of length {len}"
        );
        let mut body = vec![0u8; len as usize];
        self.stream.read_exact(&mut body)?;
        Ok(Bytes::from(body))
    }

    /// Sends `request` at `version` and decodes its response.
    pub fn request<R: Request>(&mut self, request: &R, version: i16) -> R::Response {
        let (correlation_id, frame) = self.encode_request(request, version);
        self.send_bytes(&frame);
        let mut body = self
            .read_frame()
            .unwrap_or_else(|e| panic!("reading the response to API {} v{version}: {e}", R::KEY));
        let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))
            .expect("decode response header");
        assert_eq!(
            header.correlation_id, correlation_id,
            "response correlation id"
        );
        let response = R::Response::decode(&mut body, version)
            .unwrap_or_else(|e| panic!("decode the response to API {} v{version}: {e}", R::KEY));
        assert_eq!(
            body.remaining(),
            0,
            "{} bytes left after the response to API {} v{version}",
            body.remaining(),
            R::KEY
        );
        response
    }

    /// ApiVersions v3; returns key -> (min, max).
    pub fn api_versions(&mut self) -> BTreeMap<i16, (i16, i16)> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("tidemark-tests"))
            .with_client_software_version(StrBytes::from_static_str("0.1.0"));
        let response: ApiVersionsResponse = self.request(&request, 3);
        assert_eq!(response.error_code, 0, "ApiVersions error code");
        response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect()
    }

    /// The highest version of `R` both the broker and kafka-protocol speak.
    pub fn negotiate<R: Request>(&mut self) -> i16 {
        let versions = self.api_versions();
        let &(min, max) = versions
            .get(&R::KEY)
            .unwrap_or_else(|| panic!("the broker does not advertise API key {}", R::KEY));
        let version = max.min(R::VERSIONS.max);
        assert!(
            version >= min.max(R::VERSIONS.min),
            "no common version for API key {}: broker {min}..={max}, client {:?}",
            R::KEY,
            R::VERSIONS
        );
        version
    }
}

/// Reads from `stream` until EOF or an error, for at most `timeout`.
/// Returns `Ok(bytes read)` on EOF/reset, `Err` if the connection is still open at the end.
pub fn wait_for_close(stream: &mut TcpStream, timeout: Duration) -> Result<usize, String> {
    let deadline = Instant::now() + timeout;
    let mut total = 0;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "the connection is still open after {timeout:?} ({total} bytes received)"
            ));
        }
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(10))))
            .expect("set read timeout");
        match stream.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // Reset or aborted: closed by the broker.
            Err(_) => return Ok(total),
        }
    }
}

/// A unique topic name for a test.
pub fn topic_name(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Whether a command-line tool is installed. When CI is set, a missing tool is an error:
/// `.ci/run` installs it, so skipping there would hide a broken install step.
pub fn require_tool(name: &str, probe: &mut Command) -> bool {
    let found = probe
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("{name} is not installed, but CI is set: .ci/run must install it");
        }
        eprintln!("SKIPPED: {name} is not installed (.ci/run installs it); this test did not run");
    }
    found
}

/// IncrementalAlterConfigs SET `name`=`value` on a topic (raw: rdkafka 0.39 only has
/// the legacy AlterConfigs). Returns the resource's error code.
pub fn set_topic_config(broker: &Broker, topic: &str, name: &str, value: &str) -> i16 {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    use kafka_protocol::messages::{
        IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    };
    let mut conn = RawConn::connect(broker);
    let version = conn.negotiate::<IncrementalAlterConfigsRequest>();
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2) // topic
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configs(vec![AlterableConfig::default()
                .with_name(StrBytes::from_string(name.to_string()))
                .with_config_operation(0) // SET
                .with_value(Some(StrBytes::from_string(value.to_string())))]),
    ]);
    let response: IncrementalAlterConfigsResponse = conn.request(&request, version);
    assert_eq!(response.responses.len(), 1, "one resource answered");
    response.responses[0].error_code
}

/// Watermarks once they have stopped moving for `settle` (background work such as
/// retention may advance the low watermark in steps). Bounded by 60 s.
pub fn settled_watermarks(
    broker: &Broker,
    topic: &str,
    partition: i32,
    settle: Duration,
) -> (i64, i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = watermarks(broker, topic, partition);
    let mut since = Instant::now();
    loop {
        thread::sleep(Duration::from_millis(100));
        let now = watermarks(broker, topic, partition);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= settle {
            return last;
        }
        assert!(
            Instant::now() < deadline,
            "the watermarks of {topic}/{partition} kept moving for 60 s (last {last:?})"
        );
    }
}

/// A v2 RecordBatch of one record (no key, `value`, producer id -1) as a
/// plain producer encodes it, for raw Produce requests.
pub fn one_record_batch(value: &[u8]) -> Bytes {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_700_000_000_000,
        key: None,
        value: Some(Bytes::copy_from_slice(value)),
        headers: indexmap::IndexMap::new(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        [&record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode record batch");
    buf.freeze()
}
