//! SASL/OAUTHBEARER (docs/security.md) as librdkafka users meet it: a
//! producer whose token callback hands it a JWT signed by the provider's
//! key writes records, under the principal of the token's subject (an ACL
//! for that subject decides); an expired token, one for another audience,
//! one signed by another key and an unsigned one (librdkafka's unsecured kind)
//! are refused and cost only that connection; a JWKS that is not a file
//! refuses to start.
use crate::common::*;
use base64::Engine;
use rdkafka::client::OAuthToken;
use rdkafka::config::ClientConfig;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::ClientContext;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn enc(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An identity provider: an ES256 key and its JWKS.
struct Provider {
    key: EcdsaKeyPair,
    kid: String,
}

impl Provider {
    fn new(kid: &str) -> Provider {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Provider {
            key,
            kid: kid.into(),
        }
    }

    fn write_jwks(&self, path: &Path) {
        let point = self.key.public_key().as_ref();
        let jwks = format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-256","use":"sig","kid":"{}","x":"{}","y":"{}"}}]}}"#,
            self.kid,
            enc(&point[1..33]),
            enc(&point[33..65])
        );
        std::fs::write(path, jwks).unwrap();
    }

    /// A token for `subject` and `audience`, expiring `lifetime_s` from now.
    fn token(&self, subject: &str, audience: &str, lifetime_s: i64) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let header = format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{}"}}"#, self.kid);
        let claims = format!(
            r#"{{"sub":"{subject}","aud":"{audience}","iss":"https://idp.test","iat":{now},"exp":{}}}"#,
            now + lifetime_s
        );
        let signed = format!("{}.{}", enc(header.as_bytes()), enc(claims.as_bytes()));
        let signature = self
            .key
            .sign(&SystemRandom::new(), signed.as_bytes())
            .unwrap();
        format!("{signed}.{}", enc(signature.as_ref()))
    }
}

/// A producer context whose token callback returns a fixed token and
/// which records each delivery.
struct TokenContext {
    token: String,
    deliveries: Mutex<Vec<Result<i64, String>>>,
}

impl ClientContext for TokenContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        let expires = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64 + 600_000;
        Ok(OAuthToken {
            token: self.token.clone(),
            principal_name: "unused".into(),
            lifetime_ms: expires,
        })
    }
}

impl ProducerContext for TokenContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let outcome = match result {
            Ok(message) => Ok(rdkafka::Message::offset(message)),
            Err((e, _)) => Err(e.to_string()),
        };
        self.deliveries.lock().unwrap().push(outcome);
    }
}

/// An unsigned JWT (`alg: none`), what librdkafka's unsecured token
/// handler makes.
fn unsecured_token(subject: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = format!(
        r#"{{"sub":"{subject}","aud":"kafka","iss":"https://idp.test","exp":{}}}"#,
        now + 300
    );
    format!("{}.{}.", enc(br#"{"alg":"none"}"#), enc(claims.as_bytes()))
}

/// Produces one record, authenticating with `token`, and returns its
/// delivery (the offset, or librdkafka's error).
fn produce_with_token(addr: &str, topic: &str, token: String) -> Result<i64, String> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", addr)
        .set("security.protocol", "sasl_plaintext")
        .set("sasl.mechanisms", "OAUTHBEARER")
        .set("message.timeout.ms", "8000");
    let context = TokenContext {
        token,
        deliveries: Mutex::new(Vec::new()),
    };
    let producer: BaseProducer<TokenContext> =
        config.create_with_context(context).expect("producer");
    producer
        .send(BaseRecord::to(topic).payload("signed").key("k"))
        .map_err(|(e, _)| e.to_string())?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        producer.poll(Duration::from_millis(100));
        if let Some(outcome) = producer.context().deliveries.lock().unwrap().pop() {
            return outcome;
        }
    }
    Err("no delivery report".into())
}

/// A broker with a PLAINTEXT listener (the harness's port) and a
/// SASL_PLAINTEXT one offering OAUTHBEARER with the JWKS at `jwks_url`,
/// with ACLs on; and that listener's address.
fn start_oauth_broker(jwks_url: &str, extra: &[(&str, &str)]) -> (Broker, String) {
    let oauth_addr = format!("127.0.0.1:{}", free_port());
    let listeners = format!("PLAINTEXT://127.0.0.1:{{port}},SASL_PLAINTEXT://{oauth_addr}");
    let mut settings = vec![
        ("listeners", listeners.as_str()),
        ("sasl.enabled.mechanisms", "OAUTHBEARER"),
        ("sasl.oauthbearer.jwks.endpoint.url", jwks_url),
        ("sasl.oauthbearer.expected.audience", "kafka"),
        ("sasl.oauthbearer.expected.issuer", "https://idp.test"),
        (
            "authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        ),
        ("super.users", "User:ANONYMOUS"),
    ];
    settings.extend_from_slice(extra);
    (Broker::start_with(&settings), oauth_addr)
}

/// Lets `principal` write to `topic` (an ACL made over PLAINTEXT).
fn allow_writes(broker: &Broker, topic: &str, principal: &str) {
    let acl = kafka_protocol::messages::create_acls_request::AclCreation::default()
        .with_resource_type(2)
        .with_resource_name(topic.to_string().into())
        .with_resource_pattern_type(3)
        .with_principal(principal.to_string().into())
        .with_host("*".into())
        .with_operation(4)
        .with_permission_type(3);
    let created = RawConn::connect(broker).request(
        &kafka_protocol::messages::CreateAclsRequest::default().with_creations(vec![acl]),
        3,
    );
    assert_eq!(created.results[0].error_code, 0);
}

/// Logs in on a raw connection with `token` (SaslHandshake v1,
/// SaslAuthenticate v2): the answer.
fn raw_token_login(
    raw: &mut RawConn,
    token: &str,
) -> kafka_protocol::messages::SaslAuthenticateResponse {
    use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
    let handshake = raw.request(
        &SaslHandshakeRequest::default().with_mechanism("OAUTHBEARER".into()),
        1,
    );
    assert_eq!(handshake.error_code, 0);
    let message = format!("n,,\x01auth=Bearer {token}\x01\x01");
    raw.request(
        &SaslAuthenticateRequest::default().with_auth_bytes(message.into_bytes().into()),
        2,
    )
}

/// With `connections.max.reauth.ms` set, a session ends when its token
/// does if that comes first (KIP-368, as Kafka's authenticator): the
/// lifetime answered is the token's, and a request after it closes the
/// connection.
#[test]
fn a_session_ends_when_its_token_expires() {
    let dir = temporary_data_dir();
    let provider = Provider::new("key-1");
    let jwks = dir.path().join("jwks.json");
    provider.write_jwks(&jwks);
    let url = format!("file://{}", jwks.display());
    let (_broker, oauth_addr) =
        start_oauth_broker(&url, &[("connections.max.reauth.ms", "600000")]);
    let mut short = RawConn::connect_to(&oauth_addr);
    let answer = raw_token_login(&mut short, &provider.token("carol", "kafka", 3));
    assert_eq!(answer.error_code, 0, "{:?}", answer.error_message);
    assert!(
        (1..=3000).contains(&answer.session_lifetime_ms),
        "a 3 s token gives a session of at most 3 s, not the 600 s of connections.max.reauth.ms: {}",
        answer.session_lifetime_ms
    );
    let mut long = RawConn::connect_to(&oauth_addr);
    let answer = raw_token_login(&mut long, &provider.token("carol", "kafka", 3600));
    assert_eq!(
        answer.session_lifetime_ms, 600_000,
        "the shorter bound wins"
    );
    std::thread::sleep(Duration::from_millis(3500));
    let (_, frame) =
        short.encode_request(&kafka_protocol::messages::MetadataRequest::default(), 12);
    short.send_bytes(&frame);
    short.assert_closed("a request after the token expired");
    let metadata = long.request(&kafka_protocol::messages::MetadataRequest::default(), 12);
    assert!(
        !metadata.brokers.is_empty(),
        "the long session still serves"
    );
}

#[test]
fn signed_tokens_write_as_their_subject_and_bad_tokens_are_refused() {
    let dir = temporary_data_dir();
    let provider = Provider::new("key-1");
    let jwks = dir.path().join("jwks.json");
    provider.write_jwks(&jwks);
    let url = format!("file://{}", jwks.display());
    let (mut broker, oauth_addr) = start_oauth_broker(&url, &[]);
    create_topic(&broker, "tokens", 1, &[]);
    // ACLs decide by the token's subject: only carol may write.
    allow_writes(&broker, "tokens", "User:carol");

    let valid = provider.token("carol", "kafka", 300);
    assert_eq!(produce_with_token(&oauth_addr, "tokens", valid), Ok(0));
    let dave = provider.token("dave", "kafka", 300);
    let refused = produce_with_token(&oauth_addr, "tokens", dave).unwrap_err();
    assert!(refused.contains("uthoriz"), "dave: {refused}");

    let stranger = Provider::new("key-1");
    for (what, token) in [
        ("an expired token", provider.token("carol", "kafka", -120)),
        ("another audience", provider.token("carol", "other", 300)),
        ("another key", stranger.token("carol", "kafka", 300)),
        ("an unsigned token", unsecured_token("carol")),
    ] {
        assert!(
            produce_with_token(&oauth_addr, "tokens", token).is_err(),
            "{what} was let in"
        );
        broker.assert_alive_after(what);
    }
    let read = consume_all(&broker, "tokens", &[0]);
    let values: Vec<Option<String>> = read[&0].iter().map(value_str).collect();
    assert_eq!(values, [Some("signed".to_string())]);
}

/// `openssl s_server -WWW`: an https server of the files in `dir`, with
/// `identity`'s certificate; killed when dropped.
struct HttpsFiles {
    child: std::process::Child,
    port: u16,
}

impl HttpsFiles {
    fn serve(dir: &Path, identity: &crate::common::secure::Issued) -> HttpsFiles {
        let port = free_port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-WWW", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&identity.cert)
            .arg("-key")
            .arg(&identity.key)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server (Debian's openssl package)");
        wait_until(Duration::from_secs(10), "openssl s_server listens", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        HttpsFiles { child, port }
    }
}

impl Drop for HttpsFiles {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The provider's keys fetched over https, its server's certificate
/// checked against a private CA given as Kafka gives it (the JAAS options
/// of the listener's OAUTHBEARER login module). When the provider rotates
/// its key, a token signed by the new one is let in once the broker has
/// fetched the keys again, which a token naming an unknown key triggers.
#[test]
fn keys_fetched_over_https_validate_tokens_and_rotated_keys_are_found() {
    let dir = temporary_data_dir();
    let ca = crate::common::secure::Ca::new(dir.path(), "idp-ca");
    let server = ca.issue(dir.path(), "idp", "localhost", false);
    let jwks = dir.path().join("jwks.json");
    let first = Provider::new("key-1");
    first.write_jwks(&jwks);
    let idp = HttpsFiles::serve(dir.path(), &server);
    let url = format!("https://127.0.0.1:{}/jwks.json", idp.port);
    let jaas = format!(
        r#"org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required ssl.truststore.location="{}" ssl.truststore.type="PEM";"#,
        ca.pem.display()
    );
    let (broker, oauth_addr) = start_oauth_broker(
        &url,
        &[(
            "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config",
            &jaas,
        )],
    );
    create_topic(&broker, "https-keys", 1, &[]);
    allow_writes(&broker, "https-keys", "User:carol");
    let token = first.token("carol", "kafka", 300);
    assert_eq!(produce_with_token(&oauth_addr, "https-keys", token), Ok(0));

    let rotated = Provider::new("key-2");
    rotated.write_jwks(&jwks);
    let offset = wait_until(
        Duration::from_secs(40),
        "the rotated key is fetched",
        || {
            produce_with_token(
                &oauth_addr,
                "https-keys",
                rotated.token("carol", "kafka", 300),
            )
            .ok()
        },
    );
    assert_eq!(offset, 1);
}

/// Without the private CA the provider's certificate is not trusted: the
/// broker starts, says why, and lets no token in.
#[test]
fn an_https_provider_whose_certificate_is_not_trusted_lets_no_token_in() {
    let dir = temporary_data_dir();
    let ca = crate::common::secure::Ca::new(dir.path(), "idp-ca");
    let server = ca.issue(dir.path(), "idp", "localhost", false);
    let provider = Provider::new("key-1");
    provider.write_jwks(&dir.path().join("jwks.json"));
    let idp = HttpsFiles::serve(dir.path(), &server);
    let url = format!("https://127.0.0.1:{}/jwks.json", idp.port);
    let (broker, oauth_addr) = start_oauth_broker(&url, &[]);
    create_topic(&broker, "untrusted-idp", 1, &[]);
    allow_writes(&broker, "untrusted-idp", "User:carol");
    let token = provider.token("carol", "kafka", 300);
    assert!(produce_with_token(&oauth_addr, "untrusted-idp", token).is_err());
    assert!(
        broker.output().contains("the JWKS cannot be fetched yet"),
        "{}",
        broker.output()
    );
}

#[test]
fn a_plain_http_jwks_url_refuses_to_start() {
    let port = free_port();
    let output = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["dev", "--cores", "1", "--data-dir"])
        .arg(temporary_data_dir().path())
        .args([
            "--set",
            &format!("listeners=SASL_PLAINTEXT://127.0.0.1:{port}"),
        ])
        .args(["--set", "sasl.enabled.mechanisms=OAUTHBEARER"])
        .args([
            "--set",
            "sasl.oauthbearer.jwks.endpoint.url=http://idp.example/jwks",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run tidemark");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("https://"), "{stderr}");
}
