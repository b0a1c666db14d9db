//! SASL listeners (docs/security.md) as their users meet them: the
//! bootstrap user logs in with SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN
//! through librdkafka on SASL_PLAINTEXT and SASL_SSL and round-trips
//! records; a user made with Kafka's `kafka-configs` logs in, and not once
//! deleted; a wrong password, an unknown user, an unsupported mechanism,
//! SASL requests out of order and requests before authentication get
//! Kafka's error codes (or a closed connection) and cost only that
//! connection; mechanisms Tidemark lacks (GSSAPI) refuse to start.
use crate::common::kafka_tools::kafka_tool;
use crate::common::secure::*;
use crate::common::*;
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, MetadataRequest, SaslAuthenticateRequest,
    SaslHandshakeRequest,
};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN: &str = "admin";
const ADMIN_PASSWORD: &str = "admin-secret:with:colons";
/// Kafka's error codes, as a client checks them.
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const ILLEGAL_SASL_STATE: i16 = 34;
const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// A broker with a PLAINTEXT listener (the harness's port), a
/// SASL_PLAINTEXT one offering PLAIN and both SCRAMs, and the bootstrap
/// user `admin`.
struct SaslBroker {
    broker: Broker,
    sasl_addr: String,
}

fn start_sasl_broker(extra: &[(&str, String)]) -> SaslBroker {
    start_sasl_broker_logging(extra, "info")
}

/// The same, with `TIDEMARK_LOG=log`.
fn start_sasl_broker_logging(extra: &[(&str, String)], log: &str) -> SaslBroker {
    let sasl_addr = format!("127.0.0.1:{}", free_port());
    let mut settings: Vec<(&str, String)> = vec![
        (
            "listeners",
            format!("PLAINTEXT://127.0.0.1:{{port}},SASL_PLAINTEXT://{sasl_addr}"),
        ),
        (
            "sasl.enabled.mechanisms",
            "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512".to_string(),
        ),
        ("connection.failed.authentication.delay.ms", "300".into()),
    ];
    settings.extend(extra.iter().cloned());
    let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let bootstrap = format!("{ADMIN}:{ADMIN_PASSWORD}");
    let environment = [
        ("TIDEMARK_BOOTSTRAP_USER", bootstrap.as_str()),
        ("TIDEMARK_LOG", log),
    ];
    let broker = Broker::start_with_environment(&pairs, &environment);
    SaslBroker { broker, sasl_addr }
}

/// librdkafka settings of a SASL client.
fn sasl_client(
    bootstrap: &str,
    protocol: &str,
    mechanism: &str,
    user: &str,
    password: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("bootstrap.servers", bootstrap.to_string()),
        ("security.protocol", protocol.to_string()),
        ("sasl.mechanisms", mechanism.to_string()),
        ("sasl.username", user.to_string()),
        ("sasl.password", password.to_string()),
    ]
}

#[test]
fn the_bootstrap_user_round_trips_records_with_each_mechanism() {
    let sasl = start_sasl_broker(&[]);
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] {
        let topic = format!("over-{}", mechanism.to_lowercase());
        create_topic(&sasl.broker, &topic, 1, &[]);
        let settings = sasl_client(
            &sasl.sasl_addr,
            "sasl_plaintext",
            mechanism,
            ADMIN,
            ADMIN_PASSWORD,
        );
        round_trip(&sasl.broker, &topic, &settings);
    }
}

#[test]
fn bad_credentials_are_refused_and_cost_only_that_connection() {
    let mut sasl = start_sasl_broker(&[]);
    create_topic(&sasl.broker, "guarded", 1, &[]);
    for (mechanism, user, password, what) in [
        (
            "SCRAM-SHA-256",
            ADMIN,
            "wrong",
            "a wrong SCRAM-SHA-256 password",
        ),
        ("SCRAM-SHA-512", "nobody", ADMIN_PASSWORD, "an unknown user"),
        ("PLAIN", ADMIN, "admin-secret", "a wrong PLAIN password"),
    ] {
        let settings = sasl_client(&sasl.sasl_addr, "sasl_plaintext", mechanism, user, password);
        assert!(
            !can_produce(&sasl.broker, "guarded", &settings),
            "{what} was let in"
        );
        sasl.broker.assert_alive_after(what);
    }
    // A plaintext client on the SASL port: its first request is not SASL.
    let plaintext = vec![("bootstrap.servers", sasl.sasl_addr.clone())];
    assert!(!can_produce(&sasl.broker, "guarded", &plaintext));
    // The right password still works, on the same listener.
    let settings = sasl_client(
        &sasl.sasl_addr,
        "sasl_plaintext",
        "SCRAM-SHA-256",
        ADMIN,
        ADMIN_PASSWORD,
    );
    round_trip(&sasl.broker, "guarded", &settings);
}

#[test]
fn sasl_requests_get_kafkas_error_codes() {
    let mut sasl = start_sasl_broker(&[]);
    // An unknown mechanism: UNSUPPORTED_SASL_MECHANISM with the enabled ones.
    let mut raw = RawConn::connect_to(&sasl.sasl_addr);
    let answer = raw.request(
        &SaslHandshakeRequest::default().with_mechanism("GSSAPI".into()),
        1,
    );
    assert_eq!(answer.error_code, UNSUPPORTED_SASL_MECHANISM);
    let offered: Vec<String> = answer.mechanisms.iter().map(|m| m.to_string()).collect();
    assert_eq!(offered, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]);
    raw.assert_closed("after an unsupported mechanism");

    // SaslAuthenticate before SaslHandshake: ILLEGAL_SASL_STATE.
    let mut raw = RawConn::connect_to(&sasl.sasl_addr);
    let answer = raw.request(
        &SaslAuthenticateRequest::default().with_auth_bytes(plain_token(ADMIN, ADMIN_PASSWORD)),
        2,
    );
    assert_eq!(answer.error_code, ILLEGAL_SASL_STATE);
    raw.assert_closed("after ILLEGAL_SASL_STATE");

    // A wrong PLAIN password: SASL_AUTHENTICATION_FAILED, after the delay.
    let mut raw = RawConn::connect_to(&sasl.sasl_addr);
    let handshake = raw.request(
        &SaslHandshakeRequest::default().with_mechanism("PLAIN".into()),
        1,
    );
    assert_eq!(handshake.error_code, 0);
    let asked = Instant::now();
    let answer = raw.request(
        &SaslAuthenticateRequest::default().with_auth_bytes(plain_token(ADMIN, "nope")),
        2,
    );
    assert_eq!(answer.error_code, SASL_AUTHENTICATION_FAILED);
    assert!(
        asked.elapsed() >= Duration::from_millis(250),
        "answered after {:?}, before connection.failed.authentication.delay.ms",
        asked.elapsed()
    );
    raw.assert_closed("after a failed login");

    // The right one, then the pipeline: Metadata is answered, and a second
    // handshake is ILLEGAL_SASL_STATE.
    let mut raw = RawConn::connect_to(&sasl.sasl_addr);
    raw.request(
        &SaslHandshakeRequest::default().with_mechanism("PLAIN".into()),
        1,
    );
    let answer = raw.request(
        &SaslAuthenticateRequest::default().with_auth_bytes(plain_token(ADMIN, ADMIN_PASSWORD)),
        2,
    );
    assert_eq!(answer.error_code, 0, "{:?}", answer.error_message);
    let metadata = raw.request(&MetadataRequest::default(), 12);
    assert!(!metadata.brokers.is_empty());
    let again = raw.request(
        &SaslHandshakeRequest::default().with_mechanism("PLAIN".into()),
        1,
    );
    assert_eq!(again.error_code, ILLEGAL_SASL_STATE);

    // A Kafka request before authentication, and garbage: closed.
    let mut raw = RawConn::connect_to(&sasl.sasl_addr);
    let (_, frame) = raw.encode_request(&MetadataRequest::default(), 12);
    raw.send_bytes(&frame);
    raw.assert_closed("after Metadata before authentication");
    let mut raw = RawConn::connect_to(&sasl.sasl_addr);
    raw.send_bytes(&[0, 0, 0, 5, 1, 2, 3, 4, 5]);
    raw.assert_closed("after a garbage frame");
    // An oversized frame before authentication is not buffered.
    let mut raw = RawConn::connect_to(&sasl.sasl_addr);
    raw.send_bytes(&(50u32 << 20).to_be_bytes());
    raw.assert_closed("after a 50 MiB frame header");
    sasl.broker.assert_alive_after("bad SASL requests");
}

/// The broker closed `raw` (end of stream or reset, not a timeout).
#[test]
fn scram_over_sasl_ssl() {
    let pki = temporary_data_dir();
    let ca = Ca::new(pki.path(), "ca");
    let server = ca.issue(pki.path(), "broker", "localhost", false);
    let secure_addr = format!("127.0.0.1:{}", free_port());
    let sasl = start_sasl_broker(&[
        (
            "listeners",
            format!("PLAINTEXT://127.0.0.1:{{port}},SASL_SSL://{secure_addr}"),
        ),
        ("ssl.keystore.type", "PEM".into()),
        (
            "ssl.keystore.location",
            server.keystore.display().to_string(),
        ),
    ]);
    create_topic(&sasl.broker, "over-sasl-ssl", 1, &[]);
    let mut settings = sasl_client(
        &secure_addr,
        "sasl_ssl",
        "SCRAM-SHA-512",
        ADMIN,
        ADMIN_PASSWORD,
    );
    settings.push(("ssl.ca.location", ca.pem.display().to_string()));
    round_trip(&sasl.broker, "over-sasl-ssl", &settings);
    let mut wrong = settings.clone();
    wrong.retain(|(k, _)| *k != "sasl.password");
    wrong.push(("sasl.password", "wrong".into()));
    assert!(!can_produce(&sasl.broker, "over-sasl-ssl", &wrong));
}

/// `kafka-configs` over the PLAINTEXT listener, as an operator manages
/// SCRAM users (KIP-554).
fn scram_users(broker: &Broker, args: &[&str]) -> String {
    let addr = broker.addr();
    let mut all = vec!["--bootstrap-server", addr.as_str()];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--entity-type", "users", "--entity-name", "alice"]);
    kafka_tool("kafka-configs", &all, b"").ok("kafka-configs")
}

#[test]
fn a_user_made_with_kafka_configs_logs_in_until_deleted() {
    let sasl = start_sasl_broker(&[]);
    create_topic(&sasl.broker, "alices", 1, &[]);
    scram_users(
        &sasl.broker,
        &[
            "--alter",
            "--add-config",
            "SCRAM-SHA-256=[iterations=8192,password=alice-secret]",
        ],
    );
    // `kafka-configs --describe --entity-type users` also asks
    // DescribeClientQuotas, which waits for quotas (issue 15): ask
    // DescribeUserScramCredentials as the AdminClient does.
    let described =
        RawConn::connect(&sasl.broker).request(&DescribeUserScramCredentialsRequest::default(), 0);
    let users: Vec<(String, Vec<(i8, i32)>)> = described
        .results
        .iter()
        .map(|r| {
            let infos = r
                .credential_infos
                .iter()
                .map(|c| (c.mechanism, c.iterations));
            (r.user.to_string(), infos.collect())
        })
        .collect();
    // SCRAM-SHA-256 is mechanism 1; the bootstrap user has both, 4096 each.
    assert_eq!(
        users,
        [
            ("admin".to_string(), vec![(1, 4096), (2, 4096)]),
            ("alice".to_string(), vec![(1, 8192)])
        ]
    );
    let alice = sasl_client(
        &sasl.sasl_addr,
        "sasl_plaintext",
        "SCRAM-SHA-256",
        "alice",
        "alice-secret",
    );
    round_trip(&sasl.broker, "alices", &alice);
    // PLAIN checks the same stored credential.
    let plain = sasl_client(
        &sasl.sasl_addr,
        "sasl_plaintext",
        "PLAIN",
        "alice",
        "alice-secret",
    );
    assert!(can_produce(&sasl.broker, "alices", &plain));
    scram_users(
        &sasl.broker,
        &["--alter", "--delete-config", "SCRAM-SHA-256"],
    );
    assert!(!can_produce(&sasl.broker, "alices", &alice));
    assert!(!can_produce(&sasl.broker, "alices", &plain));
}

#[test]
fn mechanisms_tidemark_lacks_refuse_to_start() {
    for mechanism in ["GSSAPI", "CRAM-MD5"] {
        let port = free_port();
        let output = Command::new(env!("CARGO_BIN_EXE_tidemark"))
            .args(["dev", "--cores", "1", "--data-dir"])
            .arg(temporary_data_dir().path())
            .args([
                "--set",
                &format!("listeners=SASL_PLAINTEXT://127.0.0.1:{port}"),
            ])
            .args(["--set", &format!("sasl.enabled.mechanisms={mechanism}")])
            .stdin(Stdio::null())
            .output()
            .expect("run tidemark");
        assert!(!output.status.success(), "{mechanism}: it started");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(mechanism) && stderr.contains("sasl.enabled.mechanisms"),
            "{mechanism}: {stderr}"
        );
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "{mechanism}: the port was served"
        );
    }
}

/// `tidemark user ARGS` against `broker`'s PLAINTEXT listener, with `stdin`.
fn tidemark_user(broker: &Broker, args: &[&str], stdin: &[u8]) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("user")
        .args(args)
        .args(["--bootstrap-server", &broker.addr()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tidemark user");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn tidemark_user_creates_lists_and_deletes_users() {
    let sasl = start_sasl_broker(&[]);
    create_topic(&sasl.broker, "bobs", 1, &[]);
    // The password from standard input, SCRAM-SHA-512 only.
    let (ok, out, err) = tidemark_user(
        &sasl.broker,
        &[
            "create",
            "bob",
            "--mechanism",
            "SCRAM-SHA-512",
            "--iterations",
            "8192",
        ],
        b"bob-secret\n",
    );
    assert!(ok, "{out}{err}");
    // Every shard applies the quorum's change on its own: a list on another
    // connection sees bob soon after, as in Kafka (eventually consistent).
    let listed = wait_until(Duration::from_secs(10), "bob is listed", || {
        let (ok, listed, err) = tidemark_user(&sasl.broker, &["list"], b"");
        assert!(ok, "{err}");
        listed
            .lines()
            .any(|l| l.starts_with("bob "))
            .then_some(listed)
    });
    let bob = listed
        .lines()
        .find(|l| l.starts_with("bob "))
        .unwrap_or_default();
    assert!(bob.contains("SCRAM-SHA-512 (iterations=8192)"), "{listed}");
    assert!(!bob.contains("SCRAM-SHA-256"), "{listed}");
    assert!(listed.lines().any(|l| l.starts_with("admin ")), "{listed}");
    let bob_512 = sasl_client(
        &sasl.sasl_addr,
        "sasl_plaintext",
        "SCRAM-SHA-512",
        "bob",
        "bob-secret",
    );
    round_trip(&sasl.broker, "bobs", &bob_512);
    let bob_256 = sasl_client(
        &sasl.sasl_addr,
        "sasl_plaintext",
        "SCRAM-SHA-256",
        "bob",
        "bob-secret",
    );
    assert!(
        !can_produce(&sasl.broker, "bobs", &bob_256),
        "a mechanism bob has no credential for"
    );
    // Out-of-range iterations: the broker's UNACCEPTABLE_CREDENTIAL.
    let (ok, _, err) = tidemark_user(
        &sasl.broker,
        &["create", "carol", "--password", "x", "--iterations", "100"],
        b"",
    );
    assert!(!ok && err.contains("UNACCEPTABLE_CREDENTIAL"), "{err}");
    let (ok, out, err) = tidemark_user(&sasl.broker, &["delete", "bob"], b"");
    assert!(ok, "{out}{err}");
    wait_until(Duration::from_secs(10), "bob is no longer listed", || {
        let (_, listed, _) = tidemark_user(&sasl.broker, &["list"], b"");
        (!listed.lines().any(|l| l.starts_with("bob "))).then_some(())
    });
    assert!(!can_produce(&sasl.broker, "bobs", &bob_512));
    let (ok, _, err) = tidemark_user(&sasl.broker, &["delete", "bob"], b"");
    assert!(!ok && err.contains("no user named bob"), "{err}");
}

#[test]
fn sessions_expire_unless_the_client_reauthenticates() {
    let sasl = start_sasl_broker(&[("connections.max.reauth.ms", "2000".into())]);
    let login = |raw: &mut RawConn| {
        let handshake = raw.request(
            &SaslHandshakeRequest::default().with_mechanism("PLAIN".into()),
            1,
        );
        assert_eq!(handshake.error_code, 0);
        raw.request(
            &SaslAuthenticateRequest::default().with_auth_bytes(plain_token(ADMIN, ADMIN_PASSWORD)),
            2,
        )
    };
    let mut lapsing = RawConn::connect_to(&sasl.sasl_addr);
    let answer = login(&mut lapsing);
    assert_eq!(answer.error_code, 0);
    assert_eq!(answer.session_lifetime_ms, 2000);
    let mut renewing = RawConn::connect_to(&sasl.sasl_addr);
    assert_eq!(login(&mut renewing).error_code, 0);
    std::thread::sleep(Duration::from_millis(1200));
    // Re-authentication on the same connection, before the session ends.
    let again = login(&mut renewing);
    assert_eq!(again.error_code, 0, "{:?}", again.error_message);
    assert_eq!(again.session_lifetime_ms, 2000);
    std::thread::sleep(Duration::from_millis(1300));
    // 2.5 s after the first logins: the renewed session still serves...
    let metadata = renewing.request(&MetadataRequest::default(), 12);
    assert!(!metadata.brokers.is_empty());
    // ...and the lapsed one is closed at its next request.
    let (_, frame) = lapsing.encode_request(&MetadataRequest::default(), 12);
    lapsing.send_bytes(&frame);
    lapsing.assert_closed("a request after the session expired");
}

#[test]
fn librdkafka_reauthenticates_and_keeps_producing() {
    let log = "info,tidemark_broker::net::accept=debug,tidemark_broker::broker::scram_users=debug";
    let sasl = start_sasl_broker_logging(&[("connections.max.reauth.ms", "1500".into())], log);
    create_topic(&sasl.broker, "long-session", 1, &[]);
    let settings = sasl_client(
        &sasl.sasl_addr,
        "sasl_plaintext",
        "SCRAM-SHA-512",
        ADMIN,
        ADMIN_PASSWORD,
    );
    let producer = producer_with_bootstrap(&sasl.broker.addr(), &borrowed(&settings));
    // Five seconds of records, more than three session lifetimes.
    let mut acked = Vec::new();
    for i in 0..25 {
        let outcome = produce(
            &producer,
            "long-session",
            &[Rec::value(format!("r{i}")).to(0)],
        );
        acked.push(outcome[0].clone().expect("acknowledged"));
        std::thread::sleep(Duration::from_millis(200));
    }
    let offsets: Vec<i64> = acked.iter().map(|(_, o)| *o).collect();
    assert_eq!(offsets, (0..25).collect::<Vec<i64>>());
    // librdkafka logged in again on its connections: few logins, several
    // re-authentications, and no connection closed for an expired session.
    let output = sasl.broker.output();
    let logins = output.matches("SASL login").count();
    let renewals = output.matches("SASL re-authentication").count();
    assert!((1..=2).contains(&logins), "{logins} logins\n{output}");
    assert!(renewals >= 2, "{renewals} re-authentications\n{output}");
    assert!(!output.contains("session expired"), "{output}");
}
