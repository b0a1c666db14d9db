//! `--command-config FILE`: the client properties Kafka's command-line
//! tools take (`kafka-topics.sh --command-config client.properties`), read
//! into the client's TLS and SASL settings, so that `tidemark topic|user|
//! acl|group|produce|consume` reach a secured listener with the same file
//! (the one `tidemark dev --secure` writes, for one). Keys Kafka's Java
//! client reads: `security.protocol`, `ssl.truststore.location` and
//! `ssl.keystore.location` (PEM), `ssl.key.password`, `sasl.mechanism`,
//! `sasl.jaas.config`. Runs on the CLI's main thread.
use client::security::{SaslLogin, SaslMechanism, Security};
use client::ClientError;
use quorum::tls::pem;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The keys read; any other is reported and ignored, as Kafka's tools do.
const KNOWN_KEYS: &[&str] = &[
    "security.protocol",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.key.password",
    "ssl.endpoint.identification.algorithm",
    "sasl.mechanism",
    "sasl.jaas.config",
];

/// The security `file` asks for.
pub fn load(file: &Path) -> Result<Security, ClientError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| ClientError::io(format!("reading {}", file.display()), e))?;
    let properties = parse_properties(&text);
    for key in properties.keys() {
        if !KNOWN_KEYS.contains(&key.as_str()) {
            eprintln!(
                "tidemark: {}: {key} is not a setting this client reads (ignored)",
                file.display()
            );
        }
    }
    security(&properties)
        .map_err(|m| ClientError::InvalidArgument(format!("{}: {m}", file.display())))
}

/// Java's properties format as client files use it: `key=value` or
/// `key: value` lines, `#` and `!` comments, a trailing backslash joining
/// the next line.
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut properties = BTreeMap::new();
    let mut pending = String::new();
    for line in text.lines() {
        let line = line.trim_start();
        if pending.is_empty() && (line.starts_with('#') || line.starts_with('!')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(continued) => {
                pending.push_str(continued);
                continue;
            }
            None => pending.push_str(line),
        }
        let entry = std::mem::take(&mut pending);
        let Some(at) = entry.find(['=', ':']) else {
            continue;
        };
        let (key, value) = (entry[..at].trim(), entry[at + 1..].trim());
        if !key.is_empty() {
            properties.insert(key.to_string(), value.to_string());
        }
    }
    properties
}

fn security(properties: &BTreeMap<String, String>) -> Result<Security, String> {
    let get = |key: &str| properties.get(key).map(String::as_str);
    let protocol = get("security.protocol")
        .unwrap_or("PLAINTEXT")
        .to_ascii_uppercase();
    let (tls, sasl) = match protocol.as_str() {
        "PLAINTEXT" => (false, false),
        "SSL" => (true, false),
        "SASL_PLAINTEXT" => (false, true),
        "SASL_SSL" => (true, true),
        other => {
            return Err(format!(
                "security.protocol={other}: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
            ))
        }
    };
    Ok(Security {
        tls: match tls {
            true => Some(tls_config(properties)?),
            false => None,
        },
        sasl: match sasl {
            true => Some(sasl_login(properties)?),
            false => None,
        },
    })
}

fn tls_config(properties: &BTreeMap<String, String>) -> Result<Arc<rustls::ClientConfig>, String> {
    let get = |key: &str| properties.get(key).map(String::as_str);
    for key in ["ssl.truststore.type", "ssl.keystore.type"] {
        quorum::tls::check_store_type(key, get(key))?;
    }
    if get("ssl.endpoint.identification.algorithm").is_some_and(|v| v.trim().is_empty()) {
        return Err(
            "ssl.endpoint.identification.algorithm: this client always checks the broker's name"
                .into(),
        );
    }
    let truststore = get("ssl.truststore.location")
        .ok_or("TLS needs ssl.truststore.location: the CA certificates (PEM) the broker's certificate chains to")?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        pem::certificates(&read(truststore)?, Path::new(truststore)).map_err(|e| e.to_string())?
    {
        roots.add(cert).map_err(|e| format!("{truststore}: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match get("ssl.keystore.location") {
        None => builder.with_no_client_auth(),
        Some(keystore) => {
            let text = read(keystore)?;
            let what = PathBuf::from(keystore);
            let chain = pem::certificates(&text, &what).map_err(|e| e.to_string())?;
            let key = pem::private_key(&text, &what, get("ssl.key.password"))
                .map_err(|e| e.to_string())?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("{keystore}: {e}"))?
        }
    };
    Ok(Arc::new(config))
}

fn sasl_login(properties: &BTreeMap<String, String>) -> Result<SaslLogin, String> {
    let name = properties
        .get("sasl.mechanism")
        .ok_or("SASL needs sasl.mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (Kafka's default, GSSAPI, is not built)")?;
    let mechanism = SaslMechanism::parse(name.trim()).ok_or_else(|| {
        format!(
            "sasl.mechanism={name}: this client logs in with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
        )
    })?;
    let jaas = properties
        .get("sasl.jaas.config")
        .ok_or("SASL needs sasl.jaas.config with username=\"...\" password=\"...\"")?;
    let (username, password) =
        broker::config::jaas::credentials(jaas).map_err(|m| format!("sasl.jaas.config: {m}"))?;
    Ok(SaslLogin {
        mechanism,
        username,
        password,
    })
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_parse_as_java_reads_them() {
        let p = parse_properties(
            "# a comment\n! another\nsecurity.protocol=SASL_SSL\nsasl.mechanism: SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n  username=\"alice\" password=\"a=b\";\n",
        );
        assert_eq!(p["security.protocol"], "SASL_SSL");
        assert_eq!(p["sasl.mechanism"], "SCRAM-SHA-512");
        let login = sasl_login(&p).unwrap();
        assert_eq!(login.username, "alice");
        assert_eq!(login.password, "a=b");
        assert_eq!(
            login.mechanism,
            SaslMechanism::Scram(wire::scram::ScramMechanism::Sha512)
        );
    }

    #[test]
    fn incomplete_settings_are_refused_with_the_key() {
        let refused = |text: &str| security(&parse_properties(text)).unwrap_err();
        assert!(refused("security.protocol=SSL").contains("ssl.truststore.location"));
        assert!(refused("security.protocol=SASL_PLAINTEXT").contains("sasl.mechanism"));
        assert!(
            refused("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=GSSAPI").contains("GSSAPI")
        );
        assert!(
            refused("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN")
                .contains("sasl.jaas.config")
        );
        assert!(refused("security.protocol=KERBEROS").contains("security.protocol"));
        assert!(security(&parse_properties("security.protocol=PLAINTEXT"))
            .unwrap()
            .tls
            .is_none());
    }
}
