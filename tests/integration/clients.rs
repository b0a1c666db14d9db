//! Other Kafka clients, run as real processes: kcat (Debian's, on librdkafka
//! 2.0.2) and kafka-python, on plaintext and on every secured listener (SSL,
//! mutual TLS, SASL_PLAINTEXT and SASL_SSL with each mechanism).
use crate::common;
use crate::common::secure::Ca;

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// Runs `cmd` with `stdin` fed in, killing it after `timeout`.
fn run(cmd: &mut Command, stdin: &[u8], timeout: Duration) -> Output {
    let description = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {description}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = err_reader.join().unwrap_or_default();
            panic!(
                "{description} did not finish within {timeout:?}; stderr:\n{}",
                String::from_utf8_lossy(&err)
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    let _ = writer.join();
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// librdkafka reports a failed ApiVersions exchange (such as the tagged-field
/// trap in 2.0.2) as a log line and falls back to guessing: catch that.
fn assert_no_protocol_trouble(output: &Output, what: &str) {
    let stderr = text(&output.stderr);
    for bad in [
        "parse failure",
        "ApiVersionRequest failed",
        "Protocol read buffer underflow",
        "unsupported",
    ] {
        assert!(
            !stderr.contains(bad),
            "{what}: librdkafka logged {bad:?}:\n{stderr}"
        );
    }
}

#[test]
fn kcat_lists_produces_and_consumes() {
    if !require_tool("kcat", Command::new("kcat").arg("-V")) {
        return;
    }
    let broker = Broker::start();
    let topic = topic_name("kcat");
    create_topic(&broker, &topic, 2, &[]);
    let addr = broker.addr();
    let limit = Duration::from_secs(60);

    let listing = run(
        Command::new("kcat").args(["-b", &addr, "-L", "-t", &topic, "-m", "15"]),
        b"",
        limit,
    );
    assert_success(&listing, "kcat -L");
    assert_no_protocol_trouble(&listing, "kcat -L");
    let stdout = text(&listing.stdout);
    assert!(
        stdout.contains(&format!("topic \"{topic}\" with 2 partitions")),
        "kcat -L does not list the topic with 2 partitions:\n{stdout}"
    );
    assert!(
        stdout.contains(&format!("broker 1 at 127.0.0.1:{}", broker.port())),
        "kcat -L does not list broker 1:\n{stdout}"
    );

    // Keyed lines to partition 0, plain then gzip-compressed; headers on the second run.
    let lines: Vec<String> = (0..20)
        .map(|i| format!("key{}:line number {i}", i % 4))
        .collect();
    let (first, second) = lines.split_at(10);
    let produce = run(
        Command::new("kcat").args([
            "-b", &addr, "-P", "-t", &topic, "-p", "0", "-K", ":", "-X", "acks=all",
        ]),
        (first.join("\n") + "\n").as_bytes(),
        limit,
    );
    assert_success(&produce, "kcat -P");
    assert_no_protocol_trouble(&produce, "kcat -P");
    let produce = run(
        Command::new("kcat").args([
            "-b",
            &addr,
            "-P",
            "-t",
            &topic,
            "-p",
            "0",
            "-K",
            ":",
            "-z",
            "gzip",
            "-H",
            "origin=kcat",
        ]),
        (second.join("\n") + "\n").as_bytes(),
        limit,
    );
    assert_success(&produce, "kcat -P -z gzip");
    assert_eq!(watermarks(&broker, &topic, 0), (0, 20));

    let consume = run(
        Command::new("kcat").args([
            "-b",
            &addr,
            "-C",
            "-t",
            &topic,
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%o|%k|%s|%h\n",
        ]),
        b"",
        limit,
    );
    assert_success(&consume, "kcat -C -e");
    assert_no_protocol_trouble(&consume, "kcat -C");
    let got: Vec<String> = text(&consume.stdout).lines().map(str::to_string).collect();
    let expected: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let (key, value) = line.split_once(':').unwrap();
            let headers = if i < 10 { "" } else { "origin=kcat" };
            format!("{i}|{key}|{value}|{headers}")
        })
        .collect();
    assert_eq!(got, expected, "kcat -C output (offset|key|value|headers)");

    // Query mode: the end offset (ListOffsets, timestamp -1).
    let query = run(
        Command::new("kcat").args(["-b", &addr, "-Q", "-t", &format!("{topic}:0:-1")]),
        b"",
        limit,
    );
    assert_success(&query, "kcat -Q");
    let stdout = text(&query.stdout);
    let offset_20 = stdout
        .split(|c: char| !c.is_ascii_digit())
        .any(|word| word == "20");
    assert!(
        stdout.contains(&topic) && offset_20,
        "kcat -Q for the end offset (20):\n{stdout}"
    );
}

fn python_has_kafka() -> bool {
    require_tool(
        "kafka-python (pip install kafka-python)",
        Command::new("python3").args(["-c", "import kafka"]),
    )
}

fn kafka_python(mode: &str) {
    if !python_has_kafka() {
        return;
    }
    let broker = Broker::start();
    let topic = topic_name(&format!("kafka-python-{mode}"));
    create_topic(&broker, &topic, 2, &[]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/kafka_python_client.py"
    );
    let output = run(
        Command::new("python3").args([script, &broker.addr(), &topic, mode]),
        b"",
        Duration::from_secs(120),
    );
    assert_success(&output, &format!("kafka-python ({mode})"));
    assert_eq!(text(&output.stdout).trim(), "OK");
    assert_eq!(watermarks(&broker, &topic, 0), (0, 15));
    assert_eq!(watermarks(&broker, &topic, 1), (0, 15));
}

/// Runs kafka_python_client.py against `bootstrap` with kafka-python
/// `settings`; returns what it printed.
fn kafka_python_with(bootstrap: &str, topic: &str, mode: &str, settings: &[String]) -> String {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/kafka_python_client.py"
    );
    let output = run(
        Command::new("python3")
            .args([script, bootstrap, topic, mode])
            .args(settings),
        b"",
        Duration::from_secs(120),
    );
    let what = format!("kafka-python {mode} {settings:?}");
    assert_success(&output, &what);
    text(&output.stdout).trim().to_string()
}

const PYTHON_ADMIN_PASSWORD: &str = "python-secret";

#[test]
fn kafka_python_round_trips_over_ssl_mtls_and_sasl_with_each_mechanism() {
    if !python_has_kafka() {
        return;
    }
    let pki = temporary_data_dir();
    let ca = Ca::new(pki.path(), "ca");
    let server = ca.issue(pki.path(), "broker", "localhost", false);
    let client = ca.issue(pki.path(), "client", "python", false);
    let addr = |_: &str| format!("127.0.0.1:{}", free_port());
    let (ssl, mtls, sasl_plain, sasl_ssl) =
        (addr("ssl"), addr("mtls"), addr("sasl"), addr("sasl_ssl"));
    let listeners = format!(
        "PLAINTEXT://127.0.0.1:{{port}},SSL://{ssl},MTLS://{mtls},SASL_PLAINTEXT://{sasl_plain},SASL_SSL://{sasl_ssl}"
    );
    let keystore = server.keystore.display().to_string();
    let truststore = ca.pem.display().to_string();
    let bootstrap_user = format!("admin:{PYTHON_ADMIN_PASSWORD}");
    let broker = Broker::start_with_environment(
        &[
            ("listeners", &listeners),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,SSL:SSL,MTLS:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
            ),
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", &keystore),
            ("ssl.truststore.type", "PEM"),
            ("ssl.truststore.location", &truststore),
            ("listener.name.mtls.ssl.client.auth", "required"),
            ("sasl.enabled.mechanisms", "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"),
        ],
        &[("TIDEMARK_BOOTSTRAP_USER", &bootstrap_user)],
    );
    let setting = |key: &str, value: &str| format!("{key}={value}");
    let trusting = setting("ssl_cafile", &truststore);
    let sasl = |protocol: &str, mechanism: &str, password: &str| {
        vec![
            setting("security_protocol", protocol),
            setting("sasl_mechanism", mechanism),
            setting("sasl_plain_username", "admin"),
            setting("sasl_plain_password", password),
        ]
    };
    let mut cases: Vec<(String, &str, Vec<String>)> = vec![
        (
            "ssl".into(),
            ssl.as_str(),
            vec![setting("security_protocol", "SSL"), trusting.clone()],
        ),
        (
            "mtls".into(),
            mtls.as_str(),
            vec![
                setting("security_protocol", "SSL"),
                trusting.clone(),
                setting("ssl_certfile", &client.cert.display().to_string()),
                setting("ssl_keyfile", &client.key.display().to_string()),
            ],
        ),
    ];
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let name = mechanism.to_lowercase();
        let plain = sasl("SASL_PLAINTEXT", mechanism, PYTHON_ADMIN_PASSWORD);
        cases.push((format!("sasl-plaintext-{name}"), sasl_plain.as_str(), plain));
        let mut over_tls = sasl("SASL_SSL", mechanism, PYTHON_ADMIN_PASSWORD);
        over_tls.push(trusting.clone());
        cases.push((format!("sasl-ssl-{name}"), sasl_ssl.as_str(), over_tls));
    }
    for (name, bootstrap, settings) in &cases {
        let topic = topic_name(&format!("kafka-python-{name}"));
        create_topic(&broker, &topic, 2, &[]);
        let printed = kafka_python_with(bootstrap, &topic, "explicit", settings);
        assert_eq!(printed, "OK", "kafka-python over {name}");
        // What it produced is there for any client to see.
        assert_eq!(watermarks(&broker, &topic, 0), (0, 15), "{name}");
        assert_eq!(watermarks(&broker, &topic, 1), (0, 15), "{name}");
    }

    let mut wrong = sasl("SASL_SSL", "SCRAM-SHA-512", "not-the-password");
    wrong.push(trusting);
    let printed = kafka_python_with(&sasl_ssl, "never-written", "refused", &wrong);
    assert_eq!(printed, "REFUSED SaslAuthenticationFailedError");
}

#[test]
fn kafka_python_produces_and_consumes_with_keys() {
    kafka_python("explicit");
}

#[test]
fn kafka_python_with_default_settings() {
    // kafka-python 3 (like the Java client since 3.0) enables idempotence by default.
    kafka_python("defaults");
}
