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
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    CreateAclsRequest, DescribeClusterRequest, DescribeGroupsRequest, GroupId, MetadataRequest,
    TopicName,
};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};
use std::process::{Command, Stdio};
use std::time::Duration;

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
            ("sasl.enabled.mechanisms", "SCRAM-SHA-256,PLAIN"),
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

/// Kafka's AclOperation codes, one bit each in an authorized-operations
/// field (KIP-430).
mod op {
    pub const READ: i32 = 1 << 3;
    pub const WRITE: i32 = 1 << 4;
    pub const CREATE: i32 = 1 << 5;
    pub const DELETE: i32 = 1 << 6;
    pub const ALTER: i32 = 1 << 7;
    pub const DESCRIBE: i32 = 1 << 8;
    pub const CLUSTER_ACTION: i32 = 1 << 9;
    pub const DESCRIBE_CONFIGS: i32 = 1 << 10;
    pub const ALTER_CONFIGS: i32 = 1 << 11;
    pub const IDEMPOTENT_WRITE: i32 = 1 << 12;
    /// What Kafka 4.x reports on a topic, a group and the cluster to a
    /// principal allowed everything (AclEntry.supportedOperations).
    pub const ALL_TOPIC: i32 =
        READ | WRITE | CREATE | DELETE | ALTER | DESCRIBE | DESCRIBE_CONFIGS | ALTER_CONFIGS;
    pub const ALL_GROUP: i32 = READ | DESCRIBE | DELETE | DESCRIBE_CONFIGS | ALTER_CONFIGS;
    pub const ALL_CLUSTER: i32 = CREATE
        | CLUSTER_ACTION
        | DESCRIBE_CONFIGS
        | ALTER_CONFIGS
        | IDEMPOTENT_WRITE
        | ALTER
        | DESCRIBE;
    /// The field's value when not asked for (and when withheld).
    pub const NOT_ASKED: i32 = i32::MIN;
}

/// The authorized-operations fields a client gets on `raw`: the cluster's
/// from Metadata v10 and from DescribeCluster, each named topic's (with
/// its error code), and each group's from DescribeGroups.
struct AuthorizedOperations {
    metadata_cluster: i32,
    describe_cluster: i32,
    topics: Vec<(String, i16, i32)>,
    groups: Vec<(String, i16, i32)>,
}

fn authorized_operations(
    raw: &mut RawConn,
    topics: &[&str],
    groups: &[&str],
    ask: bool,
) -> AuthorizedOperations {
    let request = MetadataRequest::default()
        .with_topics(Some(
            topics
                .iter()
                .map(|t| {
                    MetadataRequestTopic::default().with_name(Some(TopicName(t.to_string().into())))
                })
                .collect(),
        ))
        .with_allow_auto_topic_creation(false)
        .with_include_cluster_authorized_operations(ask)
        .with_include_topic_authorized_operations(ask);
    let metadata = raw.request(&request, 10);
    let cluster = raw.request(
        &DescribeClusterRequest::default().with_include_cluster_authorized_operations(ask),
        1,
    );
    assert_eq!(cluster.error_code, 0, "DescribeCluster");
    let described = raw.request(
        &DescribeGroupsRequest::default()
            .with_groups(
                groups
                    .iter()
                    .map(|g| GroupId(g.to_string().into()))
                    .collect(),
            )
            .with_include_authorized_operations(ask),
        5,
    );
    AuthorizedOperations {
        metadata_cluster: metadata.cluster_authorized_operations,
        describe_cluster: cluster.cluster_authorized_operations,
        topics: metadata
            .topics
            .iter()
            .map(|t| {
                let name = t.name.as_ref().map_or(String::new(), |n| n.0.to_string());
                (name, t.error_code, t.topic_authorized_operations)
            })
            .collect(),
        groups: described
            .groups
            .iter()
            .map(|g| {
                (
                    g.group_id.0.to_string(),
                    g.error_code,
                    g.authorized_operations,
                )
            })
            .collect(),
    }
}

#[test]
fn authorized_operations_are_those_the_acls_allow() {
    const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
    const GROUP_AUTHORIZATION_FAILED: i16 = 30;
    let acl = start_acl_broker();
    create_topic(&acl.broker, "ops-orders", 1, &[]);
    create_topic(&acl.broker, "ops-hidden", 1, &[]);
    let grant = |args: &[&str]| {
        let mut all = vec!["create", "--allow", "User:alice"];
        all.extend_from_slice(args);
        let (ok, out) = tidemark_acl(&acl.broker, &all);
        assert!(ok, "tidemark acl {all:?}: {out}");
    };
    grant(&["--operation", "Write", "--topic", "ops-orders"]);
    grant(&[
        "--operation",
        "AlterConfigs",
        "--topic",
        "ops-",
        "--prefixed",
    ]);
    grant(&["--operation", "Read", "--group", "ops-readers"]);
    grant(&["--operation", "IdempotentWrite", "--cluster"]);
    // A DENY of one operation takes only that one away.
    let (ok, out) = tidemark_acl(
        &acl.broker,
        &[
            "create",
            "--deny",
            "User:alice",
            "--operation",
            "AlterConfigs",
            "--topic",
            "ops-hidden",
        ],
    );
    assert!(ok, "{out}");
    grant(&["--operation", "Describe", "--topic", "ops-hidden"]);

    let topics = ["ops-orders", "ops-hidden", "ops-secret"];
    let groups = ["ops-readers", "ops-others"];
    let mut alice = sasl_plain_conn(&acl.sasl_addr, "alice", "alice-secret");
    let seen = authorized_operations(&mut alice, &topics, &groups, true);
    // Write implies Describe, AlterConfigs implies DescribeConfigs.
    assert_eq!(
        seen.topics[0],
        (
            "ops-orders".into(),
            0,
            op::WRITE | op::DESCRIBE | op::ALTER_CONFIGS | op::DESCRIBE_CONFIGS
        )
    );
    // The DENY of AlterConfigs leaves the DescribeConfigs that the prefixed
    // ALLOW implies: as in Kafka, a DENY denies only its own operation.
    assert_eq!(
        seen.topics[1],
        ("ops-hidden".into(), 0, op::DESCRIBE | op::DESCRIBE_CONFIGS)
    );
    // A topic alice may not Describe discloses nothing.
    assert_eq!(
        seen.topics[2],
        (
            "ops-secret".into(),
            TOPIC_AUTHORIZATION_FAILED,
            op::NOT_ASKED
        )
    );
    // Kafka answers 0 for the cluster to a principal without Describe on it.
    assert_eq!((seen.metadata_cluster, seen.describe_cluster), (0, 0));
    assert_eq!(
        seen.groups,
        [
            ("ops-readers".into(), 0, op::READ | op::DESCRIBE),
            (
                "ops-others".into(),
                GROUP_AUTHORIZATION_FAILED,
                op::NOT_ASKED
            ),
        ]
    );

    grant(&["--operation", "Describe", "--cluster"]);
    let seen = wait_until(Duration::from_secs(10), "Describe on the cluster", || {
        let seen = authorized_operations(&mut alice, &topics, &groups, true);
        (seen.describe_cluster != 0).then_some(seen)
    });
    assert_eq!(seen.describe_cluster, op::IDEMPOTENT_WRITE | op::DESCRIBE);
    assert_eq!(seen.metadata_cluster, seen.describe_cluster);

    // Not asked: the schema's default everywhere.
    let quiet = authorized_operations(&mut alice, &topics, &groups, false);
    assert_eq!(
        (quiet.metadata_cluster, quiet.describe_cluster),
        (op::NOT_ASKED, op::NOT_ASKED)
    );
    assert!(
        quiet.topics.iter().all(|t| t.2 == op::NOT_ASKED),
        "{:?}",
        quiet.topics
    );
    assert!(
        quiet.groups.iter().all(|g| g.2 == op::NOT_ASKED),
        "{:?}",
        quiet.groups
    );

    // A super user may do everything that applies.
    let mut admin = sasl_plain_conn(&acl.sasl_addr, "admin", "admin-secret");
    let seen = authorized_operations(&mut admin, &topics[..2], &groups, true);
    assert!(
        seen.topics.iter().all(|t| t.2 == op::ALL_TOPIC),
        "{:?}",
        seen.topics
    );
    assert_eq!(
        (seen.metadata_cluster, seen.describe_cluster),
        (op::ALL_CLUSTER, op::ALL_CLUSTER)
    );
    assert!(
        seen.groups.iter().all(|g| g.2 == op::ALL_GROUP),
        "{:?}",
        seen.groups
    );
}

#[test]
fn auto_creation_without_create_is_an_authorization_failure() {
    const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
    let acl = start_acl_broker();
    let grant = |operation: &str| {
        let args = [
            "create",
            "--allow",
            "User:alice",
            "--operation",
            operation,
            "--topic",
            "made",
        ];
        let (ok, out) = tidemark_acl(&acl.broker, &args);
        assert!(ok, "{out}");
    };
    grant("Describe");
    let mut alice = sasl_plain_conn(&acl.sasl_addr, "alice", "alice-secret");
    let ask = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(TopicName("made".into())))
        ]))
        .with_allow_auto_topic_creation(true);
    // Kafka: a topic the client may see but not create is refused, not unknown.
    let answer = alice.request(&ask, 10);
    assert_eq!(answer.topics[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(partition_count(&acl.broker, "made"), None, "not created");
    grant("Create");
    wait_until(Duration::from_secs(10), "auto-creation with Create", || {
        (alice.request(&ask, 10).topics[0].error_code == 0).then_some(())
    });
}

#[test]
fn without_an_authorizer_every_operation_is_authorized() {
    let broker = Broker::start();
    create_topic(&broker, "open-topic", 1, &[]);
    let seen = authorized_operations(
        &mut RawConn::connect(&broker),
        &["open-topic"],
        &["g"],
        true,
    );
    assert_eq!(seen.topics, [("open-topic".into(), 0, op::ALL_TOPIC)]);
    assert_eq!(
        (seen.metadata_cluster, seen.describe_cluster),
        (op::ALL_CLUSTER, op::ALL_CLUSTER)
    );
    assert_eq!(seen.groups, [("g".into(), 0, op::ALL_GROUP)]);
}
