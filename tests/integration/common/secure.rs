//! Clients of secured listeners, shared by the TLS and SASL tests: a test
//! certificate authority issuing PEM files (rcgen), librdkafka settings for
//! SSL, and the round trip and produce probe both suites assert with.
use super::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A test certificate authority.
pub struct Ca {
    pub issuer: CertifiedIssuer<'static, KeyPair>,
    pub pem: PathBuf,
}

/// A certificate with its key, as PEM files: the key alone, the
/// certificate alone, and both in one file (Tidemark's keystore).
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub keystore: PathBuf,
}

impl Ca {
    pub fn new(dir: &Path, name: &str) -> Ca {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let pem = dir.join(format!("{name}.pem"));
        std::fs::write(&pem, issuer.pem()).unwrap();
        Ca { issuer, pem }
    }

    /// A certificate for `common_name`, valid for localhost and 127.0.0.1,
    /// expired when `expired`.
    pub fn issue(&self, dir: &Path, file: &str, common_name: &str, expired: bool) -> Issued {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Tidemark Tests");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let paths = Issued {
            cert: dir.join(format!("{file}.crt")),
            key: dir.join(format!("{file}.key")),
            keystore: dir.join(format!("{file}.pem")),
        };
        std::fs::write(&paths.cert, cert.pem()).unwrap();
        std::fs::write(&paths.key, key.serialize_pem()).unwrap();
        std::fs::write(
            &paths.keystore,
            format!("{}{}", key.serialize_pem(), cert.pem()),
        )
        .unwrap();
        paths
    }
}

/// librdkafka settings of an SSL client trusting `ca`, with `identity`'s
/// certificate when given.
pub fn ssl_client(
    bootstrap: &str,
    ca: &Path,
    identity: Option<&Issued>,
) -> Vec<(&'static str, String)> {
    let mut settings = vec![
        ("bootstrap.servers", bootstrap.to_string()),
        ("security.protocol", "ssl".to_string()),
        ("ssl.ca.location", ca.display().to_string()),
    ];
    if let Some(identity) = identity {
        settings.push((
            "ssl.certificate.location",
            identity.cert.display().to_string(),
        ));
        settings.push(("ssl.key.location", identity.key.display().to_string()));
    }
    settings
}

pub fn borrowed<'a>(settings: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    settings.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Creates a one-partition topic through a client with `settings` (a
/// secured listener's) and waits until that client sees its leader.
pub fn create_topic_as(broker: &Broker, name: &str, settings: &[(&str, String)]) {
    let settings = borrowed(settings);
    let mut config = client_config(broker);
    for (key, value) in &settings {
        config.set(*key, *value);
    }
    let admin: Admin = config.create().expect("create admin client");
    create_topic_through(&admin, name, 1, 1, &[]);
    wait_for_partitions_through(&consumer_with(broker, &settings), name, 1);
}

/// Produces three records through `settings` and reads them back through
/// the same listener: the values in order at offsets 0, 1, 2.
pub fn round_trip(broker: &Broker, topic: &str, settings: &[(&str, String)]) {
    let settings = borrowed(settings);
    let producer = producer_with_bootstrap(&broker.addr(), &settings);
    let recs: Vec<Rec> = ["a", "b", "c"]
        .iter()
        .map(|v| Rec::value(*v).to(0))
        .collect();
    let acked = produce_ok(&producer, topic, &recs);
    assert_eq!(acked, [(0, 0), (0, 1), (0, 2)]);
    let read = consume_all_with(broker, topic, &[0], &settings);
    let values: Vec<Option<String>> = read[&0].iter().map(value_str).collect();
    assert_eq!(
        values,
        [Some("a".into()), Some("b".into()), Some("c".into())]
    );
    assert_dense(&read[&0], 0, topic);
}

/// Whether a producer with `settings` gets a record acknowledged within a
/// few seconds.
pub fn can_produce(broker: &Broker, topic: &str, settings: &[(&str, String)]) -> bool {
    let mut settings = settings.to_vec();
    settings.push(("message.timeout.ms", "4000".to_string()));
    let producer = producer_with_bootstrap(&broker.addr(), &borrowed(&settings));
    let outcome = produce(&producer, topic, &[Rec::value("probe").to(0)]);
    let _ = producer.flush(Duration::from_secs(1));
    outcome[0].is_ok()
}

/// A PLAIN token: authorisation id, user, password, NUL-separated.
pub fn plain_token(user: &str, password: &str) -> bytes::Bytes {
    bytes::Bytes::from(format!("\0{user}\0{password}"))
}

/// A raw connection to a SASL_PLAINTEXT listener, logged in with PLAIN as
/// `user` (SaslHandshake v1, SaslAuthenticate v2).
pub fn sasl_plain_conn(addr: &str, user: &str, password: &str) -> RawConn {
    use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
    let mut raw = RawConn::connect_to(addr);
    let handshake = raw.request(
        &SaslHandshakeRequest::default().with_mechanism("PLAIN".into()),
        1,
    );
    assert_eq!(handshake.error_code, 0, "SaslHandshake PLAIN");
    let answer = raw.request(
        &SaslAuthenticateRequest::default().with_auth_bytes(plain_token(user, password)),
        2,
    );
    assert_eq!(
        answer.error_code, 0,
        "PLAIN login of {user}: {:?}",
        answer.error_message
    );
    raw
}
