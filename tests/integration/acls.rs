//! Kafka's ACLs (docs/security.md) as their users meet them: ACLs made and
//! removed with Kafka's `kafka-acls` decide what SASL users may do through
//! librdkafka (produce, fetch, commit, list topics), with Kafka's error
//! codes; a DENY wins over an ALLOW; a topic without ACLs is closed; super
//! users may do everything; without an authorizer the ACL APIs answer
//! SECURITY_DISABLED.
use crate::common::kafka_tools::kafka_tool;
use crate::common::secure::*;
use crate::common::*;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::CreateAclsRequest;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};
use std::process::{Command, Stdio};

/// Kafka's StandardAuthorizer, the value Kafka's docs give.
const AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// A broker with ACLs on: a PLAINTEXT listener whose anonymous clients are
/// super users (as a cluster's plaintext inter-broker listener must be, in
/// Kafka too), and a SASL_PLAINTEXT one for the users alice and bob.
struct AclBroker {
    broker: Broker,
    sasl_addr: String,
}

fn start_acl_broker() -> AclBroker {
    let sasl_addr = format!("127.0.0.1:{}", free_port());
    let listeners = format!("PLAINTEXT://127.0.0.1:{{port}},SASL_PLAINTEXT://{sasl_addr}");
    let broker = Broker::start_with_environment(
        &[
            ("listeners", &listeners),
            ("sasl.enabled.mechanisms", "SCRAM-SHA-256"),
            ("authorizer.class.name", AUTHORIZER),
            ("super.users", "User:admin;User:ANONYMOUS"),
        ],
        &[("TIDEMARK_BOOTSTRAP_USER", "admin:admin-secret")],
    );
    for user in ["alice", "bob"] {
        let status = Command::new(env!("CARGO_BIN_EXE_tidemark"))
            .args([
                "user",
                "create",
                user,
                "--password",
                &format!("{user}-secret"),
            ])
            .args(["--bootstrap-server", &broker.addr()])
            .stdin(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "tidemark user create {user}");
    }
    AclBroker { broker, sasl_addr }
}

fn user(acl: &AclBroker, name: &str) -> Vec<(&'static str, String)> {
    vec![
        ("bootstrap.servers", acl.sasl_addr.clone()),
        ("security.protocol", "sasl_plaintext".into()),
        ("sasl.mechanisms", "SCRAM-SHA-256".into()),
        ("sasl.username", name.into()),
        ("sasl.password", format!("{name}-secret")),
    ]
}

/// `kafka-acls ARGS` over the PLAINTEXT listener.
fn kafka_acls(broker: &Broker, args: &[&str]) -> String {
    let addr = broker.addr();
    let mut all = vec!["--bootstrap-server", addr.as_str()];
    all.extend_from_slice(args);
    kafka_tool("kafka-acls", &all, b"").ok("kafka-acls")
}

/// The error librdkafka reports for one record produced with `settings`.
fn produce_error(
    broker: &Broker,
    topic: &str,
    settings: &[(&'static str, String)],
) -> Option<RDKafkaErrorCode> {
    let mut settings = settings.to_vec();
    settings.push(("message.timeout.ms", "10000".into()));
    let producer = producer_with_bootstrap(&broker.addr(), &borrowed(&settings));
    match produce(&producer, topic, &[Rec::value("probe").to(0)]).remove(0) {
        Ok(_) => None,
        Err(KafkaError::MessageProduction(code)) => Some(code),
        Err(other) => panic!("unexpected produce error {other:?}"),
    }
}

#[test]
fn kafka_acls_decide_what_each_user_may_do() {
    let acl = start_acl_broker();
    create_topic(&acl.broker, "orders", 1, &[]);
    create_topic(&acl.broker, "no-acls", 1, &[]);
    let alice = user(&acl, "alice");
    let bob = user(&acl, "bob");
    // Before any ACL, nobody but the super users may write.
    assert_eq!(
        produce_error(&acl.broker, "orders", &alice),
        Some(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    kafka_acls(
        &acl.broker,
        &[
            "--add",
            "--allow-principal",
            "User:alice",
            "--producer",
            "--topic",
            "orders",
        ],
    );
    kafka_acls(
        &acl.broker,
        &[
            "--add",
            "--allow-principal",
            "User:alice",
            "--consumer",
            "--topic",
            "orders",
            "--group",
            "readers",
        ],
    );
    let listed = kafka_acls(&acl.broker, &["--list", "--topic", "orders"]);
    for operation in ["WRITE", "DESCRIBE", "CREATE", "READ"] {
        assert!(
            listed.contains(&format!("operation={operation}")),
            "{operation} missing from\n{listed}"
        );
    }
    // librdkafka asks for its group's coordinator even when it only
    // assigns partitions: the group needs an ACL too.
    let mut alice_reading = alice.clone();
    alice_reading.push(("group.id", "readers".into()));
    round_trip(&acl.broker, "orders", &alice_reading);
    assert_eq!(
        produce_error(&acl.broker, "orders", &bob),
        Some(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    assert_eq!(
        produce_error(&acl.broker, "no-acls", &alice),
        Some(RDKafkaErrorCode::TopicAuthorizationFailed),
        "a topic without ACLs is closed (allow.everyone.if.no.acl.found=false)"
    );
    // Commits need Read on the group.
    let commit = |settings: &[(&'static str, String)], group: &str| {
        let mut settings = settings.to_vec();
        settings.push(("group.id", group.to_string()));
        let consumer = consumer_with(&acl.broker, &borrowed(&settings));
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset("orders", 0, Offset::Offset(1))
            .unwrap();
        consumer.commit(&offsets, CommitMode::Sync).err()
    };
    assert_eq!(commit(&alice, "readers"), None);
    // Describe on "writers" lets her find its coordinator (FindCoordinator
    // needs it; without it librdkafka only waits), and no more.
    kafka_acls(
        &acl.broker,
        &[
            "--add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Describe",
            "--group",
            "writers",
        ],
    );
    let refused = commit(&alice, "writers").map(|e| e.rdkafka_error_code());
    assert_eq!(
        refused,
        Some(Some(RDKafkaErrorCode::GroupAuthorizationFailed))
    );
    // Bob lists no topics; alice sees only hers.
    let topics_of = |settings: &[(&'static str, String)]| {
        let consumer = consumer_with(&acl.broker, &borrowed(settings));
        let metadata = consumer.fetch_metadata(None, CLIENT_TIMEOUT).unwrap();
        let mut names: Vec<String> = metadata
            .topics()
            .iter()
            .map(|t| t.name().to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(topics_of(&alice), ["orders"]);
    assert!(topics_of(&bob).is_empty());
    // A DENY wins over her ALLOW.
    kafka_acls(
        &acl.broker,
        &[
            "--add",
            "--deny-principal",
            "User:alice",
            "--operation",
            "Write",
            "--topic",
            "orders",
        ],
    );
    assert_eq!(
        produce_error(&acl.broker, "orders", &alice),
        Some(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    // Removing every ACL of the topic closes it to her entirely.
    kafka_acls(&acl.broker, &["--remove", "--force", "--topic", "orders"]);
    let listed = kafka_acls(&acl.broker, &["--list", "--topic", "orders"]);
    assert!(!listed.contains("User:alice"), "{listed}");
    let read = consume_all_with(&acl.broker, "orders", &[0], &borrowed(&user(&acl, "admin")));
    assert_eq!(read[&0].len(), 3, "the super user still reads");
    assert_eq!(
        produce_error(&acl.broker, "orders", &alice),
        Some(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
}

#[test]
fn without_an_authorizer_the_acl_apis_answer_security_disabled() {
    const SECURITY_DISABLED: i16 = 54;
    let broker = Broker::start();
    let creation = AclCreation::default()
        .with_resource_type(2)
        .with_resource_name("t".into())
        .with_resource_pattern_type(3)
        .with_principal("User:alice".into())
        .with_host("*".into())
        .with_operation(3)
        .with_permission_type(3);
    let answer = RawConn::connect(&broker).request(
        &CreateAclsRequest::default().with_creations(vec![creation]),
        3,
    );
    assert_eq!(answer.results.len(), 1);
    assert_eq!(answer.results[0].error_code, SECURITY_DISABLED);
}

#[test]
fn an_authorizer_tidemark_does_not_have_refuses_to_start() {
    let output = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["dev", "--cores", "1", "--data-dir"])
        .arg(temporary_data_dir().path())
        .args(["--set", "authorizer.class.name=com.example.MyAuthorizer"])
        .stdin(Stdio::null())
        .output()
        .expect("run tidemark");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("com.example.MyAuthorizer"), "{stderr}");
}

/// `tidemark acl ARGS` against `broker`'s PLAINTEXT listener.
fn tidemark_acl(broker: &Broker, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("acl")
        .args(args)
        .args(["--bootstrap-server", &broker.addr()])
        .stdin(Stdio::null())
        .output()
        .expect("run tidemark acl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn tidemark_acl_creates_lists_and_deletes_acls() {
    let acl = start_acl_broker();
    create_topic(&acl.broker, "audit-log", 1, &[]);
    let bob = user(&acl, "bob");
    let (ok, out) = tidemark_acl(
        &acl.broker,
        &[
            "create",
            "--allow",
            "User:bob",
            "--operation",
            "write",
            "--operation",
            "Describe",
            "--topic",
            "audit",
            "--prefixed",
        ],
    );
    assert!(ok, "{out}");
    // A prefixed ACL applies to audit-log: list by the topic finds it.
    let (ok, listed) = tidemark_acl(&acl.broker, &["list", "--topic", "audit-log"]);
    assert!(ok, "{listed}");
    let rows: Vec<&str> = listed.lines().filter(|l| l.contains("User:bob")).collect();
    assert_eq!(rows.len(), 2, "{listed}");
    assert!(
        rows.iter()
            .all(|r| r.contains("Prefixed") && r.contains("Allow")),
        "{listed}"
    );
    assert_eq!(produce_error(&acl.broker, "audit-log", &bob), None);
    let (ok, out) = tidemark_acl(
        &acl.broker,
        &[
            "create",
            "--allow",
            "bob",
            "--operation",
            "Read",
            "--topic",
            "x",
        ],
    );
    assert!(!ok && out.contains("INVALID_REQUEST"), "{out}");
    let (ok, out) = tidemark_acl(&acl.broker, &["delete"]);
    assert!(!ok, "{out}");
    let (ok, out) = tidemark_acl(&acl.broker, &["delete", "--topic", "audit", "--prefixed"]);
    assert!(ok && out.contains("Deleted 2 ACL(s)"), "{out}");
    assert_eq!(
        produce_error(&acl.broker, "audit-log", &bob),
        Some(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
}
