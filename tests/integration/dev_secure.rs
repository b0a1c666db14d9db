//! `tidemark dev --secure` as a newcomer meets it (docs/security.md): the
//! client settings it prints and writes produce and consume through
//! librdkafka, kcat and Kafka's own tools; a client without the admin's
//! credentials (plaintext, TLS without SASL, a wrong password) is refused
//! and costs only its connection; a second start serves the same CA,
//! certificates and password, so the written settings stay valid.
use crate::common::kafka_tools::{kafka_tool, run_bounded};
use crate::common::secure::*;
use crate::common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn start_secure() -> Broker {
    Broker::start_dev_with_flags(&["--secure"], &[])
}

fn secure_file(broker: &Broker, name: &str) -> PathBuf {
    broker.data_dir().join("secure").join(name)
}

/// The `key=value` lines of a properties file `--secure` wrote.
fn written_settings(broker: &Broker, name: &str) -> Vec<(String, String)> {
    let path = secure_file(broker, name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} was not written: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("key=value");
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn librdkafka_settings(broker: &Broker) -> Vec<(String, String)> {
    written_settings(broker, "librdkafka.properties")
}

fn as_pairs(settings: &[(String, String)]) -> Vec<(&str, String)> {
    settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect()
}

fn setting<'a>(settings: &'a [(String, String)], key: &str) -> &'a str {
    settings
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {settings:?}"))
}

/// The settings with `key` replaced (or removed when `value` is `None`).
fn with(settings: &[(&str, String)], key: &str, value: Option<&str>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = settings
        .iter()
        .filter(|(k, _)| *k != key)
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    if let Some(value) = value {
        out.push((key.to_string(), value.to_string()));
    }
    out
}

#[test]
fn the_printed_settings_round_trip_records_and_nothing_else_gets_in() {
    let broker = start_secure();
    let settings = librdkafka_settings(&broker);
    assert_eq!(setting(&settings, "bootstrap.servers"), broker.addr());
    assert_eq!(setting(&settings, "security.protocol"), "SASL_SSL");
    assert_eq!(setting(&settings, "sasl.mechanisms"), "SCRAM-SHA-256");
    assert_eq!(setting(&settings, "sasl.username"), "admin");
    // What it printed to paste is what it wrote.
    let output = broker.output();
    for (key, value) in &settings {
        assert!(
            output.contains(&format!("    {key}={value}")),
            "{key}={value} not printed:\n{output}"
        );
    }
    for private in [
        "admin.password",
        "librdkafka.properties",
        "client.properties",
    ] {
        let mode = std::fs::metadata(secure_file(&broker, private))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{private} is readable by others");
    }

    let pairs = as_pairs(&settings);
    create_topic_as(&broker, "newcomer", &pairs);
    round_trip(&broker, "newcomer", &pairs);

    let addr = broker.addr();
    let plaintext = [("bootstrap.servers", addr.clone())];
    assert!(!can_produce(&broker, "newcomer", &plaintext));
    let tls_only = [
        ("bootstrap.servers", addr.clone()),
        ("security.protocol", "ssl".to_string()),
        (
            "ssl.ca.location",
            setting(&settings, "ssl.ca.location").to_string(),
        ),
    ];
    assert!(!can_produce(&broker, "newcomer", &tls_only));
    let wrong_password = with(&pairs, "sasl.password", Some("not-the-password"));
    assert!(!can_produce(
        &broker,
        "newcomer",
        &as_pairs(&wrong_password)
    ));
    // A client that does not trust the dev CA refuses the broker.
    let untrusting = with(&pairs, "ssl.ca.location", None);
    assert!(!can_produce(&broker, "newcomer", &as_pairs(&untrusting)));

    // The refusals cost only their connections.
    let mut broker = broker;
    broker.assert_alive_after("the refused clients");
    let producer = producer_with_bootstrap(&addr, &borrowed(&pairs));
    assert_eq!(
        produce_ok(&producer, "newcomer", &[Rec::value("d").to(0)]),
        [(0, 3)]
    );
}

#[test]
fn a_second_start_reuses_the_ca_the_certificates_and_the_password() {
    let mut broker = start_secure();
    let made_once = [
        "ca.pem",
        "ca.key",
        "broker.pem",
        "client.crt",
        "client.key",
        "admin.password",
    ];
    let read = |broker: &Broker| -> Vec<Vec<u8>> {
        made_once
            .iter()
            .map(|f| std::fs::read(secure_file(broker, f)).unwrap())
            .collect()
    };
    let first = read(&broker);
    let settings = librdkafka_settings(&broker);
    let pairs = as_pairs(&settings);
    create_topic_as(&broker, "kept", &pairs);
    let producer = producer_with_bootstrap(&broker.addr(), &borrowed(&pairs));
    assert_eq!(
        produce_ok(&producer, "kept", &[Rec::value("before").to(0)]),
        [(0, 0)]
    );
    drop(producer);

    broker.restart();
    assert_eq!(read(&broker), first, "the second start made new files");
    assert_eq!(librdkafka_settings(&broker), settings);
    // The settings of the first start still log in (the admin exists, with
    // the same password) and trust the broker (the same CA).
    let producer = producer_with_bootstrap(&broker.addr(), &borrowed(&pairs));
    assert_eq!(
        produce_ok(&producer, "kept", &[Rec::value("after").to(0)]),
        [(0, 1)]
    );
    let read_back = consume_all_with(&broker, "kept", &[0], &borrowed(&pairs));
    let values: Vec<Option<String>> = read_back[&0].iter().map(value_str).collect();
    assert_eq!(values, [Some("before".into()), Some("after".into())]);
}

#[test]
fn kcat_produces_through_the_written_file() {
    if !require_tool("kcat", Command::new("kcat").arg("-V")) {
        return;
    }
    let broker = start_secure();
    let settings = librdkafka_settings(&broker);
    let pairs = as_pairs(&settings);
    create_topic_as(&broker, "from-kcat", &pairs);
    let file = secure_file(&broker, "librdkafka.properties");
    // Debian 12's kcat links librdkafka 2.0.2, whose SCRAM repeats the
    // client nonce in its final message (fixed in librdkafka 2.6.1); Kafka
    // 4 refuses it as Tidemark does, so kcat uses PLAIN, which --secure
    // offers for such clients.
    let mut kcat = Command::new("kcat");
    kcat.arg("-F").arg(&file).args([
        "-X",
        "sasl.mechanisms=PLAIN",
        "-P",
        "-t",
        "from-kcat",
        "-p",
        "0",
    ]);
    run_bounded(kcat, b"one\ntwo\nthree\n", Duration::from_secs(60)).ok("kcat -P");
    let read = consume_all_with(&broker, "from-kcat", &[0], &borrowed(&pairs));
    let values: Vec<Option<String>> = read[&0].iter().map(value_str).collect();
    assert_eq!(
        values,
        [Some("one".into()), Some("two".into()), Some("three".into())]
    );
}

#[test]
fn kafkas_tools_work_with_the_written_java_properties() {
    let broker = start_secure();
    let java = secure_file(&broker, "client.properties");
    let java = java.to_str().unwrap();
    let addr = broker.addr();
    kafka_tool(
        "kafka-topics",
        &[
            "--bootstrap-server",
            &addr,
            "--command-config",
            java,
            "--create",
            "--topic",
            "from-java",
            "--partitions",
            "1",
        ],
        b"",
    )
    .ok("kafka-topics --create");
    let settings = librdkafka_settings(&broker);
    let pairs = as_pairs(&settings);
    wait_for_partitions_through(&consumer_with(&broker, &borrowed(&pairs)), "from-java", 1);
    let producer = producer_with_bootstrap(&addr, &borrowed(&pairs));
    let recs: Vec<Rec> = ["x", "y"].iter().map(|v| Rec::value(*v).to(0)).collect();
    produce_ok(&producer, "from-java", &recs);
    let printed = kafka_tool(
        "kafka-console-consumer",
        &[
            "--bootstrap-server",
            &addr,
            "--command-config",
            java,
            "--topic",
            "from-java",
            "--from-beginning",
            "--max-messages",
            "2",
            "--timeout-ms",
            "30000",
        ],
        b"",
    )
    .ok("kafka-console-consumer");
    assert_eq!(printed.lines().collect::<Vec<_>>(), ["x", "y"]);
}

/// `tidemark ARGS --bootstrap-server ADDR`, with `stdin`, bounded.
fn tidemark_cli(
    broker: &Broker,
    args: &[&str],
    stdin: &[u8],
) -> crate::common::kafka_tools::Finished {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tidemark"));
    command
        .args(args)
        .args(["--bootstrap-server", &broker.addr()]);
    run_bounded(command, stdin, Duration::from_secs(60))
}

/// The CLI reaches the secure broker with the Java properties file it
/// wrote, as Kafka's tools take it (`--command-config`): a topic made, two
/// records produced and consumed back in order, a user made who then logs
/// in; without the file it is refused.
#[test]
fn the_tidemark_cli_works_through_the_written_properties() {
    let broker = start_secure();
    let java = secure_file(&broker, "client.properties");
    let java = java.to_str().unwrap();
    let config = ["--command-config", java];
    let topic = ["topic", "create", "cli-secure", "--partitions", "1"];
    tidemark_cli(&broker, &[&topic[..], &config[..]].concat(), b"").ok("topic create");
    tidemark_cli(
        &broker,
        &[&["produce", "cli-secure"][..], &config[..]].concat(),
        b"one\ntwo\n",
    )
    .ok("produce");
    let consumed = tidemark_cli(
        &broker,
        &[
            &[
                "consume",
                "cli-secure",
                "--from-beginning",
                "--max-messages",
                "2",
            ][..],
            &config[..],
        ]
        .concat(),
        b"",
    )
    .ok("consume");
    assert_eq!(consumed.lines().collect::<Vec<_>>(), ["one", "two"]);

    let created = tidemark_cli(
        &broker,
        &[
            &["user", "create", "carol", "--mechanism", "SCRAM-SHA-512"][..],
            &config[..],
        ]
        .concat(),
        b"carol-secret\n",
    );
    assert!(created.status.success(), "user create: {}", created.stderr);
    let settings = librdkafka_settings(&broker);
    let carol = with(&as_pairs(&settings), "sasl.username", Some("carol"));
    let carol = with(&as_pairs(&carol), "sasl.password", Some("carol-secret"));
    let carol = with(&as_pairs(&carol), "sasl.mechanisms", Some("SCRAM-SHA-512"));
    let probe = consumer_with(&broker, &borrowed(&as_pairs(&carol)));
    assert!(
        rdkafka::consumer::Consumer::fetch_metadata(&probe, None, Duration::from_secs(10)).is_ok(),
        "carol logs in with the password the CLI set"
    );

    let refused = tidemark_cli(&broker, &["topic", "list", "--timeout-ms", "5000"], b"");
    assert!(
        !refused.status.success(),
        "a plaintext CLI on the SASL_SSL port was let in"
    );
}
