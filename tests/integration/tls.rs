//! TLS listeners (docs/security.md) as librdkafka users meet them: records
//! round trip over SSL and over mutual TLS; Metadata answers each listener's
//! own address; a wrong client certificate, an expired one, one from another
//! CA, a plaintext client on the TLS port and a TLS client on the plaintext
//! port are each refused, cost only that connection, and leave the broker
//! serving; an encrypted key is opened with `ssl.key.password`; replaced
//! certificates are picked up without a restart.
use crate::common::secure::*;
use crate::common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A broker with a PLAINTEXT listener (the harness's port) and an SSL one.
struct TlsBroker {
    broker: Broker,
    ssl_addr: String,
    _pki: tempfile::TempDir,
}

fn start_tls_broker(
    extra: &[(&str, String)],
    pki: tempfile::TempDir,
    keystore: &Path,
) -> TlsBroker {
    let ssl_port = free_port();
    let ssl_addr = format!("127.0.0.1:{ssl_port}");
    let listeners = format!("PLAINTEXT://{},SSL://{ssl_addr}", "127.0.0.1:{port}");
    let keystore = keystore.display().to_string();
    let mut settings: Vec<(&str, String)> = vec![
        ("listeners", listeners),
        ("ssl.keystore.type", "PEM".to_string()),
        ("ssl.keystore.location", keystore),
    ];
    settings.extend(extra.iter().cloned());
    let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let broker = Broker::start_with(&pairs);
    TlsBroker {
        broker,
        ssl_addr,
        _pki: pki,
    }
}

#[test]
fn records_round_trip_over_ssl_and_metadata_answers_the_ssl_address() {
    let pki = temporary_data_dir();
    let ca = Ca::new(pki.path(), "ca");
    let server = ca.issue(pki.path(), "broker", "localhost", false);
    let tls = start_tls_broker(&[], pki, &server.keystore);
    create_topic(&tls.broker, "over-ssl", 1, &[]);
    // librdkafka reaches the partition leader at the address Metadata gives
    // for the SSL listener: with the PLAINTEXT address this would fail.
    round_trip(
        &tls.broker,
        "over-ssl",
        &ssl_client(&tls.ssl_addr, &ca.pem, None),
    );
    // The PLAINTEXT listener still serves plaintext clients.
    let plain = consume_all(&tls.broker, "over-ssl", &[0]);
    assert_eq!(plain[&0].len(), 3);
}

#[test]
fn mutual_tls_admits_only_certificates_of_the_trusted_ca() {
    let pki = temporary_data_dir();
    let ca = Ca::new(pki.path(), "ca");
    let other_ca = Ca::new(pki.path(), "other-ca");
    let server = ca.issue(pki.path(), "broker", "localhost", false);
    let alice = ca.issue(pki.path(), "alice", "alice", false);
    let expired = ca.issue(pki.path(), "expired", "old", true);
    let stranger = other_ca.issue(pki.path(), "stranger", "mallory", false);
    let extra = [
        ("ssl.truststore.type", "PEM".to_string()),
        ("ssl.truststore.location", ca.pem.display().to_string()),
        ("listener.name.ssl.ssl.client.auth", "required".to_string()),
    ];
    let mut tls = start_tls_broker(&extra, pki, &server.keystore);
    create_topic(&tls.broker, "mtls", 1, &[]);
    round_trip(
        &tls.broker,
        "mtls",
        &ssl_client(&tls.ssl_addr, &ca.pem, Some(&alice)),
    );
    for (who, identity) in [
        ("no certificate", None),
        ("an expired certificate", Some(&expired)),
        ("a certificate of another CA", Some(&stranger)),
    ] {
        let settings = ssl_client(&tls.ssl_addr, &ca.pem, identity);
        assert!(
            !can_produce(&tls.broker, "mtls", &settings),
            "a client with {who} was let in"
        );
        tls.broker.assert_alive_after(who);
    }
    // Refusals cost nothing else: alice still reads her three records.
    let settings = ssl_client(&tls.ssl_addr, &ca.pem, Some(&alice));
    let read = consume_all_with(&tls.broker, "mtls", &[0], &borrowed(&settings));
    assert_eq!(read[&0].len(), 3);
}

#[test]
fn the_wrong_protocol_on_either_port_is_refused_and_costs_only_that_connection() {
    let pki = temporary_data_dir();
    let ca = Ca::new(pki.path(), "ca");
    let server = ca.issue(pki.path(), "broker", "localhost", false);
    let mut tls = start_tls_broker(&[], pki, &server.keystore);
    create_topic(&tls.broker, "wrong-protocol", 1, &[]);
    // A plaintext Kafka client on the TLS port.
    let plaintext_on_tls = vec![("bootstrap.servers", tls.ssl_addr.clone())];
    assert!(!can_produce(
        &tls.broker,
        "wrong-protocol",
        &plaintext_on_tls
    ));
    // Raw garbage on the TLS port: the handshake fails, the connection closes.
    use std::io::{Read, Write};
    let mut raw = std::net::TcpStream::connect(&tls.ssl_addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    raw.write_all(&[0, 0, 0, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
        .unwrap();
    let mut buf = [0u8; 64];
    let closed = matches!(raw.read(&mut buf), Ok(0) | Err(_))
        || matches!(raw.read(&mut buf), Ok(0) | Err(_));
    assert!(closed, "the broker kept a connection that spoke no TLS");
    // A TLS client on the plaintext port.
    let tls_on_plaintext = ssl_client(&tls.broker.addr(), &ca.pem, None);
    assert!(!can_produce(
        &tls.broker,
        "wrong-protocol",
        &tls_on_plaintext
    ));
    tls.broker
        .assert_alive_after("clients speaking the wrong protocol");
    round_trip(
        &tls.broker,
        "wrong-protocol",
        &ssl_client(&tls.ssl_addr, &ca.pem, None),
    );
}

#[test]
fn an_encrypted_key_is_opened_with_ssl_key_password() {
    let pki = temporary_data_dir();
    let ca = Ca::new(pki.path(), "ca");
    let server = ca.issue(pki.path(), "broker", "localhost", false);
    // Encrypted as a user would: PKCS#8 with AES-256 (PBES2).
    let encrypted = pki.path().join("broker-encrypted.key");
    let status = Command::new("openssl")
        .args([
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-passout",
            "pass:s3cret",
        ])
        .arg("-in")
        .arg(&server.key)
        .arg("-out")
        .arg(&encrypted)
        .stdout(Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success());
    let keystore = pki.path().join("broker-encrypted.pem");
    let text = std::fs::read_to_string(&encrypted).unwrap()
        + &std::fs::read_to_string(&server.cert).unwrap();
    std::fs::write(&keystore, text).unwrap();
    let tls = start_tls_broker(
        &[("ssl.key.password", "s3cret".to_string())],
        pki,
        &keystore,
    );
    create_topic(&tls.broker, "encrypted-key", 1, &[]);
    round_trip(
        &tls.broker,
        "encrypted-key",
        &ssl_client(&tls.ssl_addr, &ca.pem, None),
    );

    // Without the password the broker refuses to start, saying why.
    let keystore = keystore.display().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["dev", "--cores", "1", "--data-dir"])
        .arg(temporary_data_dir().path())
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args([
            "--set",
            &format!("listeners=SSL://127.0.0.1:{}", free_port()),
        ])
        .args(["--set", &format!("ssl.keystore.location={keystore}")])
        .stdin(Stdio::null())
        .output()
        .expect("run tidemark");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ssl.key.password"), "{stderr}");
}

#[test]
fn replaced_certificates_are_used_without_a_restart() {
    let pki = temporary_data_dir();
    let old_ca = Ca::new(pki.path(), "old-ca");
    let new_ca = Ca::new(pki.path(), "new-ca");
    let old = old_ca.issue(pki.path(), "broker-old", "localhost", false);
    let new = new_ca.issue(pki.path(), "broker-new", "localhost", false);
    let keystore = pki.path().join("broker.pem");
    std::fs::copy(&old.keystore, &keystore).unwrap();
    let tls = start_tls_broker(&[], pki, &keystore);
    create_topic(&tls.broker, "reloaded", 1, &[]);
    let trusting_new = ssl_client(&tls.ssl_addr, &new_ca.pem, None);
    assert!(!can_produce(&tls.broker, "reloaded", &trusting_new));
    // Written aside and renamed into place, as cert-manager and certbot do.
    let staged = keystore.with_extension("staged");
    std::fs::copy(&new.keystore, &staged).unwrap();
    std::fs::rename(&staged, &keystore).unwrap();
    wait_until(
        Duration::from_secs(40),
        "the new certificate in use",
        || can_produce(&tls.broker, "reloaded", &trusting_new).then_some(()),
    );
}
