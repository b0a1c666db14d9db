//! Apache Kafka's own command-line tools and other outside programs, run by
//! tests with a bound on their time: `scripts/kafka-tool.sh NAME ARGS...`
//! (Kafka 4.x from Maven Central, Java 17) against a broker of the test.
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
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
