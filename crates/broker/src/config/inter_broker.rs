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
    let (username, password) = super::jaas::credentials(text)
        .map_err(|m| invalid(&format!("{}{jaas_key}", listener.config_prefix()), &m))?;
    Ok(ClientLogin {
        mechanism,
        username,
        password,
    })
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
