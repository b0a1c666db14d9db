//! Apache Kafka's own command-line tools and other outside programs, run by
//! tests with a bound on their time: `scripts/kafka-tool.sh NAME ARGS...`
//! (Kafka 4.x from Maven Central, Java 17) against a broker of the test.
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// A warm JVM tool takes a few seconds; a cold one fetches jars first.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(180);

/// What a finished program printed and how it ended.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Its standard output, after asserting that it succeeded.
    pub fn ok(self, what: &str) -> String {
        assert!(
            self.status.success(),
            "{what} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self.stdout
    }
}

fn read_all(mut from: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Runs `command` with `stdin` as its input, killing it after `timeout`
/// (a panic then, with what it printed).
pub fn run_bounded(mut command: Command, stdin: &[u8], timeout: Duration) -> Finished {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let mut input = child.stdin.take().expect("piped stdin");
    let stdin = stdin.to_vec();
    let writer = thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let stdout = read_all(child.stdout.take().expect("piped stdout"));
    let stderr = read_all(child.stderr.take().expect("piped stderr"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{command:?} took over {timeout:?}:\n--- stdout ---\n{}\n--- stderr ---\n{}",
                stdout.join().unwrap_or_default(),
                stderr.join().unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(50));
    };
    let _ = writer.join();
    Finished {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// The repository's root.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn java_and_maven_present() -> bool {
    ["java", "mvn"].iter().all(|tool| {
        Command::new(tool)
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Fails the test, saying what to install, when Java or Maven is missing:
/// a test that cannot run must not pass.
pub fn require_java_and_maven() {
    assert!(
        java_and_maven_present(),
        "this test needs `java` (17 or newer) and `mvn` on PATH: run `bash .ci/run`, \
         or install openjdk-17-jdk-headless and maven"
    );
}

/// `scripts/kafka-tool.sh`.
pub fn kafka_tool_script() -> PathBuf {
    repo_root().join("scripts/kafka-tool.sh")
}

/// Runs Kafka's tool `name` with `args` and `stdin`, bounded by
/// [`TOOL_TIMEOUT`].
pub fn kafka_tool(name: &str, args: &[&str], stdin: &[u8]) -> Finished {
    require_java_and_maven();
    let mut command = Command::new("bash");
    command.arg(kafka_tool_script()).arg(name).args(args);
    run_bounded(command, stdin, TOOL_TIMEOUT)
}

/// `kafka-verifiable-producer` (acks=all), running: the tool Kafka's and
/// Redpanda's system tests use to prove no loss. It prints one JSON event per
/// acknowledged send and a `tool_data` summary when it ends.
pub struct VerifiableProducer {
    child: Child,
    first_ack: mpsc::Receiver<()>,
    output: thread::JoinHandle<String>,
}

/// What a finished `kafka-verifiable-producer` reported.
pub struct VerifiableRun {
    /// (offset, value) of every acknowledged send.
    pub acked: Vec<(i64, String)>,
    /// Its final summary: `sent`, `acked`, `avg_throughput`, ...
    pub tool_data: serde_json::Value,
}

impl VerifiableRun {
    /// The producer sent all `count` records, and its last sends, after the
    /// disruption (`what`), were acknowledged: the tool runs with
    /// retries=0, so only sends in flight at the disruption may fail.
    pub fn assert_sent_and_acknowledged_after(&self, count: usize, what: &str) {
        assert_eq!(self.tool_data["sent"], count, "{}", self.tool_data);
        let last_acked = self
            .acked
            .iter()
            .filter_map(|(_, v)| v.parse::<usize>().ok())
            .max();
        assert!(
            last_acked >= Some(count * 9 / 10),
            "sends after the {what} acknowledged: {}",
            self.tool_data
        );
    }
}

/// How long a verifiable producer may run in all.
const VERIFIABLE_TIMEOUT: Duration = Duration::from_secs(240);

impl VerifiableProducer {
    /// Sends `count` records (values "0", "1", ...) to `topic` at
    /// `per_second`, to one partition or spread by the default partitioner.
    pub fn start(
        bootstrap: &str,
        topic: &str,
        count: usize,
        per_second: u32,
    ) -> VerifiableProducer {
        require_java_and_maven();
        let (count, rate) = (count.to_string(), per_second.to_string());
        let mut child = Command::new("bash")
            .arg(kafka_tool_script())
            .args(["kafka-verifiable-producer", "--bootstrap-server", bootstrap])
            .args(["--topic", topic, "--max-messages", &count])
            .args(["--throughput", &rate, "--acks", "-1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kafka-verifiable-producer");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tell, first_ack) = mpsc::channel();
        let output = thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("producer_send_success") {
                    let _ = tell.send(());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        VerifiableProducer {
            child,
            first_ack,
            output,
        }
    }

    /// Returns once a first send was acknowledged.
    pub fn wait_for_first_ack(&self) {
        self.first_ack
            .recv_timeout(TOOL_TIMEOUT)
            .expect("kafka-verifiable-producer's first acknowledged send");
    }

    /// Waits for the producer to end and returns what it reported.
    pub fn finish(mut self) -> VerifiableRun {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the producer") {
                break status;
            }
            if started.elapsed() > VERIFIABLE_TIMEOUT {
                let _ = self.child.kill();
                panic!("kafka-verifiable-producer still running after {VERIFIABLE_TIMEOUT:?}");
            }
            thread::sleep(Duration::from_millis(200));
        };
        let output = self.output.join().expect("the producer's output");
        assert!(
            status.success(),
            "kafka-verifiable-producer exited with {status}:\n{output}"
        );
        parse_producer_events(&output)
    }
}

fn parse_producer_events(stdout: &str) -> VerifiableRun {
    let mut acked = Vec::new();
    let mut tool_data = serde_json::Value::Null;
    for event in stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    {
        match event["name"].as_str() {
            Some("producer_send_success") => acked.push(offset_and_value(&event)),
            Some("tool_data") => tool_data = event,
            _ => {}
        }
    }
    VerifiableRun { acked, tool_data }
}

fn offset_and_value(event: &serde_json::Value) -> (i64, String) {
    (
        event["offset"].as_i64().expect("an offset"),
        event["value"].as_str().expect("a value").to_string(),
    )
}

/// (offset, value) of each of the first `count` records that
/// `kafka-verifiable-consumer --verbose` reads from the start of `topic`
/// in a new group.
pub fn verifiable_consume(bootstrap: &str, topic: &str, count: usize) -> Vec<(i64, String)> {
    static GROUPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let group = format!(
        "verifiable-{}-{}",
        std::process::id(),
        GROUPS.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    let max = count.to_string();
    let out = kafka_tool(
        "kafka-verifiable-consumer",
        &[
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
            "--group-id",
            &group,
            "--max-messages",
            &max,
            "--reset-policy",
            "earliest",
            "--verbose",
        ],
        b"",
    )
    .ok("kafka-verifiable-consumer");
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["name"] == "record_data")
        .map(|e| offset_and_value(&e))
        .collect()
}

/// Every acknowledged (offset, value) was consumed, once, at its offset.
pub fn assert_read_back_once(acked: &[(i64, String)], consumed: &[(i64, String)]) {
    let mut times: BTreeMap<&(i64, String), usize> = BTreeMap::new();
    for record in consumed {
        *times.entry(record).or_default() += 1;
    }
    let lost: Vec<_> = acked
        .iter()
        .filter(|r| !times.contains_key(r))
        .take(10)
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged records not read back (first 10): {lost:?}"
    );
    let twice: Vec<_> = times.iter().filter(|(_, &n)| n > 1).take(10).collect();
    assert!(
        twice.is_empty(),
        "records read more than once (first 10): {twice:?}"
    );
    let mut values: Vec<&str> = consumed.iter().map(|(_, v)| v.as_str()).collect();
    values.sort_unstable();
    let before = values.len();
    values.dedup();
    assert_eq!(values.len(), before, "a value at two offsets: a duplicate");
}
