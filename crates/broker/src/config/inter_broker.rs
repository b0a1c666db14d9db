//! How this broker connects to the others (its followers' connections to
//! their leaders), from the inter-broker listener's settings, as Kafka's
//! inter-broker client reads them: on a TLS listener, the listener's own
//! keystore is the client certificate and its truststore checks the other
//! broker's certificate, whose name is checked against the host it
//! advertises unless `ssl.endpoint.identification.algorithm` is empty; on
//! a SASL listener, `sasl.mechanism.inter.broker.protocol` names the
//! mechanism and the listener's JAAS config for that mechanism
//! (`listener.name.<l>.<mechanism>.sasl.jaas.config`) gives the user name
//! and password. Pure: parsed on the main thread at start.
use super::listeners::Listener;
use super::tls::{SecurityKeys, TlsSettings};
use super::ConfigError;
use crate::security::sasl::SaslMechanism;
use crate::security::scram_client::ClientLogin;

/// Kafka's key naming the SASL mechanism brokers log in to each other with.
pub const MECHANISM_KEY: &str = "sasl.mechanism.inter.broker.protocol";
const HOSTNAME_CHECK_KEY: &str = "ssl.endpoint.identification.algorithm";

/// What a follower's connection to its leader needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterBrokerClient {
    /// The inter-broker listener's name (each broker advertises it).
    pub listener: String,
    /// Set on an SSL or SASL_SSL listener.
    pub tls: Option<ClientTls>,
    /// Set on a SASL_PLAINTEXT or SASL_SSL listener.
    pub login: Option<ClientLogin>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTls {
    /// The listener's settings: its keystore is the client certificate.
    pub settings: TlsSettings,
    /// Kafka's default `https`: the leader's certificate must name the host
    /// it advertises.
    pub check_hostname: bool,
}

impl InterBrokerClient {
    /// The client settings for the inter-broker listener `listener`.
    pub fn from_config(
        keys: &SecurityKeys,
        listener: &Listener,
    ) -> Result<InterBrokerClient, ConfigError> {
        let tls = match listener.protocol.uses_tls() {
            false => None,
            true => Some(client_tls(keys, listener)?),
        };
        let login = match listener.protocol.uses_sasl() {
            false => None,
            true => Some(client_login(keys, listener)?),
        };
        Ok(InterBrokerClient {
            listener: listener.name.clone(),
            tls,
            login,
        })
    }
}

fn client_tls(keys: &SecurityKeys, listener: &Listener) -> Result<ClientTls, ConfigError> {
    // Without a truststore a follower cannot check its leader: a lone
    // broker (`tidemark dev`) never connects to another, so that is said
    // when a follower tries (`replication::peer`), not refused at start.
    let settings = TlsSettings::for_listener(keys, listener)?;
    let check_hostname = match keys.get_even_if_empty(listener, HOSTNAME_CHECK_KEY) {
        None => true,
        Some(v) if v.eq_ignore_ascii_case("https") => true,
        Some(v) if v.trim().is_empty() => false,
        Some(v) => {
            return Err(invalid(
                &format!("{}{HOSTNAME_CHECK_KEY}", listener.config_prefix()),
                &format!("{v}: expected https or an empty value"),
            ))
        }
    };
    Ok(ClientTls {
        settings,
        check_hostname,
    })
}

/// The mechanism and credentials, as Kafka: GSSAPI is Kafka's default
/// mechanism and is not built here, so the key must be set.
fn client_login(keys: &SecurityKeys, listener: &Listener) -> Result<ClientLogin, ConfigError> {
    let name = keys.get(listener, MECHANISM_KEY).ok_or_else(|| {
        invalid(
            MECHANISM_KEY,
            &format!(
                "brokers log in to each other over SASL listener {}: name the mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; Kafka's default, GSSAPI, is not built)",
                listener.name
            ),
        )
    })?;
    let mechanism = match SaslMechanism::parse(name.trim()) {
        Some(SaslMechanism::OAuthBearer) => {
            return Err(invalid(
                MECHANISM_KEY,
                "OAUTHBEARER between brokers is not built (it needs a token endpoint)",
            ))
        }
        Some(m) => m,
        None => {
            return Err(invalid(
                MECHANISM_KEY,
                &format!("{name}: not a mechanism Tidemark's brokers log in with"),
            ))
        }
    };
    let enabled = super::tls::SaslSettings::for_listener(keys, listener)?;
    if !enabled.mechanisms.contains(&mechanism) {
        return Err(invalid(
            MECHANISM_KEY,
            &format!(
                "{name} is not in listener {}'s sasl.enabled.mechanisms",
                listener.name
            ),
        ));
    }
    let jaas_key = format!("{}.sasl.jaas.config", name.trim().to_ascii_lowercase());
    let text = keys
        .get(listener, &jaas_key)
        .or_else(|| keys.get(listener, "sasl.jaas.config"))
        .ok_or_else(|| {
            invalid(
                &format!("{}{jaas_key}", listener.config_prefix()),
                "the broker's own user name and password for logging in to the other brokers (username=\"...\" password=\"...\")",
            )
        })?;
    let (username, password) = jaas_credentials(text)
        .map_err(|m| invalid(&format!("{}{jaas_key}", listener.config_prefix()), &m))?;
    Ok(ClientLogin {
        mechanism,
        username,
        password,
    })
}

/// The `username` and `password` options of a JAAS login module entry,
/// `<LoginModule class> required username="u" password="p";` (values in
/// double quotes with backslash escapes, or bare words, as Kafka's
/// `JaasConfig` tokenizes them). Other options (PLAIN's `user_<name>`) are
/// ignored: users are the SCRAM credentials in the quorum.
pub fn jaas_credentials(text: &str) -> Result<(String, String), String> {
    let options = jaas_options(text)?;
    let find = |name: &str| {
        options
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    match (find("username"), find("password")) {
        (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => Ok((u, p)),
        _ => Err("the login module needs username=\"...\" and password=\"...\"".to_string()),
    }
}

/// The `key=value` options of the first login module entry.
pub fn jaas_options(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut tokens = jaas_tokens(text)?.into_iter();
    let (Some(_class), Some(flag)) = (tokens.next(), tokens.next()) else {
        return Err("expected `<LoginModule class> required key=\"value\" ...;`".to_string());
    };
    if !["required", "requisite", "sufficient", "optional"].contains(&flag.as_str()) {
        return Err(format!("{flag}: expected the control flag `required`"));
    }
    let mut options = Vec::new();
    let mut rest: Vec<String> = tokens.collect();
    if rest.last().map(String::as_str) == Some(";") {
        rest.pop();
    }
    let mut i = 0;
    while i < rest.len() {
        match (rest.get(i + 1).map(String::as_str), rest.get(i + 2)) {
            (Some("="), Some(value)) => options.push((rest[i].clone(), value.clone())),
            _ => return Err(format!("{}: expected key=\"value\"", rest[i])),
        }
        i += 3;
    }
    Ok(options)
}

/// Words, quoted strings, `=` and `;`.
fn jaas_tokens(text: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '=' | ';' => {
                tokens.push(c.to_string());
                chars.next();
            }
            '"' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None => return Err("an unterminated quoted value".to_string()),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(escaped) => value.push(escaped),
                            None => return Err("an unterminated quoted value".to_string()),
                        },
                        Some(other) => value.push(other),
                    }
                }
                tokens.push(value);
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '=' || c == ';' || c == '"' {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(word);
            }
        }
    }
    Ok(tokens)
}

fn invalid(key: &str, message: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::listeners::SecurityProtocol;
    use crate::security::scram::ScramMechanism;

    fn listener(protocol: SecurityProtocol) -> Listener {
        Listener {
            name: "INTERNAL".into(),
            protocol,
            bind: "127.0.0.1:9094".parse().unwrap(),
            advertised_host: "broker1.example.com".into(),
            advertised_port: 9094,
        }
    }

    fn keys(pairs: &[(&str, &str)]) -> SecurityKeys {
        SecurityKeys::from_pairs(pairs)
    }

    #[test]
    fn jaas_entries_give_the_user_and_password() {
        assert_eq!(
            jaas_credentials(
                r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="p\"w;x";"#
            ),
            Ok(("broker".to_string(), "p\"w;x".to_string()))
        );
        assert_eq!(
            jaas_credentials(
                r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="s" user_admin="s" user_alice="a";"#
            ),
            Ok(("admin".to_string(), "s".to_string()))
        );
        assert!(jaas_credentials(r#"X required username="a";"#).is_err());
        assert!(jaas_credentials(r#"X required username="a" password="unterminated;"#).is_err());
        assert!(jaas_credentials("X banana username=a password=b;").is_err());
        assert!(jaas_credentials("").is_err());
    }

    #[test]
    fn a_sasl_ssl_listener_gives_a_certificate_check_and_a_login() {
        let l = listener(SecurityProtocol::SaslSsl);
        let k = keys(&[
            (
                "listener.name.internal.ssl.keystore.location",
                "/tls/broker.pem",
            ),
            (
                "listener.name.internal.ssl.truststore.location",
                "/tls/ca.pem",
            ),
            (MECHANISM_KEY, "SCRAM-SHA-512"),
            (
                "listener.name.internal.scram-sha-512.sasl.jaas.config",
                r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="pw";"#,
            ),
        ]);
        let client = InterBrokerClient::from_config(&k, &l).unwrap();
        assert!(client.tls.as_ref().unwrap().check_hostname);
        let login = client.login.unwrap();
        assert_eq!(
            login.mechanism,
            SaslMechanism::Scram(ScramMechanism::Sha512)
        );
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("broker", "pw")
        );
    }

    #[test]
    fn an_empty_identification_algorithm_turns_the_hostname_check_off() {
        let l = listener(SecurityProtocol::Ssl);
        let k = keys(&[
            ("ssl.keystore.location", "/tls/broker.pem"),
            ("ssl.truststore.location", "/tls/ca.pem"),
            (
                "listener.name.internal.ssl.endpoint.identification.algorithm",
                "",
            ),
        ]);
        let client = InterBrokerClient::from_config(&k, &l).unwrap();
        assert!(!client.tls.unwrap().check_hostname);
        assert_eq!(client.login, None);
    }

    #[test]
    fn what_a_broker_cannot_log_in_with_refuses_to_start() {
        let l = listener(SecurityProtocol::SaslPlaintext);
        let jaas = (
            "sasl.jaas.config",
            r#"X required username="b" password="p";"#,
        );
        let refused =
            |pairs: &[(&str, &str)]| InterBrokerClient::from_config(&keys(pairs), &l).is_err();
        assert!(refused(&[jaas]), "no mechanism");
        assert!(refused(&[jaas, (MECHANISM_KEY, "GSSAPI")]));
        assert!(refused(&[jaas, (MECHANISM_KEY, "OAUTHBEARER")]));
        assert!(
            refused(&[jaas, (MECHANISM_KEY, "PLAIN")]),
            "PLAIN is not enabled by default"
        );
        assert!(
            refused(&[(MECHANISM_KEY, "SCRAM-SHA-256")]),
            "no credentials"
        );
        assert!(!refused(&[jaas, (MECHANISM_KEY, "SCRAM-SHA-256")]));
    }
}
