//! The quorum service over mutual TLS (docs/security.md, "TLS to the quorum
//! service"): three `tidemark quorum` nodes with certificates of a test CA
//! elect a leader over TLS (they refuse plaintext, so their Raft traffic is
//! TLS), a broker with a certificate of that CA joins and serves records to
//! librdkafka, and `cluster status` reaches them with `--quorum-tls-config`.
//! Refused, while the node keeps serving: a client and a broker with a
//! certificate of another CA, a TLS client without a certificate, a
//! plaintext client. After the Raft leader is killed, a new one is elected
//! and the broker goes on through it.
use crate::common;

use common::quorum::Quorum;
use common::secure::{borrowed, round_trip, Ca, Issued};
use common::{create_topic, free_port, topic_name, wait_until, Broker};
use quorum::tls::{ClientTls, TlsFiles};
use quorum::{ClientError, ClusterView, QuorumClient};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// The broker settings (`--set`) of a quorum client showing `identity`.
fn client_settings(identity: &Issued, ca: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("quorum.ssl.client.enable", "true".to_string()),
        ("quorum.ssl.keystore.type", "PEM".to_string()),
        (
            "quorum.ssl.keystore.location",
            identity.keystore.display().to_string(),
        ),
        ("quorum.ssl.truststore.location", ca.display().to_string()),
    ]
}

fn tls_client(quorum: &Quorum, identity: &Issued, ca: &Path) -> QuorumClient {
    let files = TlsFiles {
        keystore: identity.keystore.clone(),
        key_password: None,
        truststore: ca.to_path_buf(),
        verify_hostname: true,
    };
    QuorumClient::new(quorum.endpoint_list(), None)
        .with_tls(ClientTls::load(&files).expect("client certificates load"))
        .with_timeouts(Duration::from_secs(2), Duration::from_secs(4))
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// Opens a TLS connection that trusts the quorum's CA but shows no
/// certificate, sends a Status request and returns whether an answer came.
async fn answered_without_a_certificate(addr: &str, ca: &Path) -> bool {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots.add(cert.expect("CA certificate")).expect("CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let Ok(mut stream) = connector.connect(name, tcp).await else {
        return false;
    };
    let frame = quorum::protocol::RequestFrame {
        auth: None,
        request: quorum::protocol::Request::Status,
    };
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        quorum::protocol::call(&mut stream, &frame),
    )
    .await;
    matches!(answer, Ok(Ok(_)))
}

/// Whether broker `id` is registered, asked through `client`.
fn registered(client: &mut QuorumClient, id: i32) -> Option<ClusterView> {
    let view = block_on(client.read()).ok()?;
    view.brokers
        .contains_key(&model::BrokerId(id))
        .then_some(view)
}

/// A `tidemark broker` with `settings`, started by hand: a broker that
/// cannot reach the quorum never prints that it is listening, so the
/// harness's `Broker` would wait for it.
fn spawn_broker(
    id: i32,
    quorum: &Quorum,
    settings: &[(&'static str, String)],
    data: &Path,
) -> std::process::Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidemark"));
    cmd.arg("broker")
        .args(["--broker-id", &id.to_string()])
        .args(["--quorum", &quorum.endpoints()])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(data)
        .args(["--set", "num.shards=1"]);
    for (key, value) in settings {
        cmd.arg("--set").arg(format!("{key}={value}"));
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    common::raise_memlock_limit(&mut cmd);
    cmd.spawn().expect("spawn tidemark broker")
}

fn quorum_logs(quorum: &Quorum) -> String {
    quorum
        .nodes
        .iter()
        .map(|n| std::fs::read_to_string(&n.log).unwrap_or_default())
        .collect()
}

#[test]
fn a_tls_quorum_serves_brokers_it_trusts_and_refuses_everyone_else() {
    let pki = tempfile::tempdir().expect("pki dir");
    let dir = pki.path();
    let ca = Ca::new(dir, "quorum-ca");
    let other = Ca::new(dir, "other-ca");
    // One certificate for the three nodes: they all listen on 127.0.0.1.
    let node = ca.issue(dir, "quorum-node", "quorum", false);
    let broker_identity = ca.issue(dir, "broker-1", "broker-1", false);
    let admin = ca.issue(dir, "admin", "admin", false);
    let stranger = other.issue(dir, "stranger", "stranger", false);

    let node_keys = format!(
        "\"ssl.keystore.type\" = \"PEM\"\n\"ssl.keystore.location\" = \"{}\"\n\
         \"ssl.truststore.location\" = \"{}\"\n",
        node.keystore.display(),
        ca.pem.display()
    );
    let admin_config = dir.join("admin.toml");
    let admin_text: String = client_settings(&admin, &ca.pem)
        .iter()
        .map(|(k, v)| match *k {
            "quorum.ssl.client.enable" => format!("\"{k}\" = {v}\n"),
            _ => format!("\"{k}\" = \"{v}\"\n"),
        })
        .collect();
    std::fs::write(&admin_config, admin_text).expect("admin config");
    let mut quorum = Quorum::start_tls(3, &node_keys, admin_config);
    let first_leader = quorum.wait_for_leader(WAIT);

    let mut settings = client_settings(&broker_identity, &ca.pem);
    settings.push(("broker.heartbeat.interval.ms", "300".to_string()));
    let broker = Broker::start_member(1, &quorum.endpoints(), &borrowed(&settings));
    let topic = topic_name("quorum-tls");
    create_topic(&broker, &topic, 1, &[]);
    round_trip(&broker, &topic, &[("bootstrap.servers", broker.addr())]);

    let mut good = tls_client(&quorum, &admin, &ca.pem);
    let view = registered(&mut good, 1).expect("broker 1 registered over TLS");
    assert!(view.topics.contains_key(&topic), "the topic is in the view");

    let refused = block_on(tls_client(&quorum, &stranger, &other.pem).read());
    assert!(
        matches!(refused, Err(ClientError::Unavailable { .. })),
        "a certificate of another CA: {refused:?}"
    );
    let mut plaintext = QuorumClient::new(quorum.endpoint_list(), None)
        .with_timeouts(Duration::from_secs(2), Duration::from_secs(4));
    let refused = block_on(plaintext.read());
    assert!(
        matches!(refused, Err(ClientError::Unavailable { .. })),
        "plaintext: {refused:?}"
    );
    let addr = quorum.nodes[0].addr.clone();
    assert!(
        !block_on(answered_without_a_certificate(&addr, &ca.pem)),
        "a TLS client without a certificate is not answered"
    );
    let refusals = quorum_logs(&quorum)
        .matches("quorum connection refused")
        .count();
    assert!(
        refusals >= 3,
        "each refusal is a failed handshake ({refusals})"
    );

    // A broker whose certificate another CA signed never registers.
    let outsider_data = tempfile::tempdir().expect("data dir");
    let outsider_settings = client_settings(&stranger, &ca.pem);
    let mut outsider = spawn_broker(2, &quorum, &outsider_settings, outsider_data.path());
    std::thread::sleep(Duration::from_secs(5));
    let still_out = registered(&mut good, 1).map(|v| !v.brokers.contains_key(&model::BrokerId(2)));
    let _ = outsider.kill();
    let _ = outsider.wait();
    assert_eq!(still_out, Some(true), "broker 2 must not register");
    let after = quorum_logs(&quorum)
        .matches("quorum connection refused")
        .count();
    assert!(after > refusals, "the outsider's handshakes were refused");

    // The nodes and the broker keep serving; a new leader is elected over
    // TLS and the broker follows it.
    let still = topic_name("quorum-tls-still");
    create_topic(&broker, &still, 1, &[]);
    round_trip(&broker, &still, &[("bootstrap.servers", broker.addr())]);
    quorum.kill(first_leader);
    let second_leader = wait_until(WAIT, "a new quorum leader", || {
        quorum.leader_index().filter(|i| *i != first_leader)
    });
    assert_ne!(second_leader, first_leader);
    let after_failover = topic_name("quorum-tls-failover");
    create_topic(&broker, &after_failover, 1, &[]);
    round_trip(
        &broker,
        &after_failover,
        &[("bootstrap.servers", broker.addr())],
    );
}
