//! The TLS and SASL settings of a listener, from Kafka's `ssl.*` and
//! `sasl.*` keys, each of which may be given for one listener with Kafka's
//! `listener.name.<name>.` prefix (the prefixed key wins). Pure: reads and
//! checks the keys; the files they name are loaded by `net::tls` when the
//! listener starts.
//!
//! Tidemark reads PEM only (`ssl.keystore.type=PEM`, `ssl.truststore.type=PEM`,
//! as Kafka 2.7+ allows); a JKS or PKCS12 store is refused at start with that
//! reason, never ignored.
use super::listeners::{Listener, Listeners};
use super::ConfigError;
use crate::security::sasl::SaslMechanism;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The `ssl.*` keys Tidemark reads. Any other `ssl.` key is refused, so that
/// a setting carried over from Kafka is never silently dropped.
const KNOWN_KEYS: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.key",
    "ssl.keystore.certificate.chain",
    "ssl.key.password",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.certificates",
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.principal.mapping.rules",
    // Client-side settings of Kafka's inter-broker client; accepted so that
    // a Kafka broker config carries over, and used by brokers' own clients.
    "ssl.endpoint.identification.algorithm",
    "ssl.protocol",
];

/// Keys Kafka has that Tidemark refuses with a reason.
const REFUSED_KEYS: &[(&str, &str)] = &[
    (
        "ssl.keystore.password",
        "PEM keystores take ssl.key.password (for an encrypted key) only",
    ),
    (
        "ssl.truststore.password",
        "PEM truststores have no password",
    ),
    (
        "ssl.cipher.suites",
        "Tidemark offers rustls's safe default suites only",
    ),
];

/// The `ssl.`, `sasl.` and `listener.name.` keys of the config, kept as
/// text because their names are built from listener names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityKeys {
    keys: BTreeMap<String, String>,
}

impl SecurityKeys {
    /// Whether `key` belongs here rather than to the typed config.
    pub fn claims(key: &str) -> bool {
        key.starts_with("ssl.") || key.starts_with("sasl.") || key.starts_with("listener.name.")
    }

    pub fn insert(&mut self, key: String, value: String) {
        self.keys.insert(key, value);
    }

    /// Keys and values as a test writes them.
    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> SecurityKeys {
        let mut keys = SecurityKeys::default();
        for (k, v) in pairs {
            keys.insert(k.to_string(), v.to_string());
        }
        keys
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.keys.iter()
    }

    /// The value of `key` for `listener`: its prefixed key, else the global one.
    pub fn get(&self, listener: &Listener, key: &str) -> Option<&str> {
        let own = format!("{}{key}", listener.config_prefix());
        self.keys
            .get(&own)
            .or_else(|| self.keys.get(key))
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// Like `get`, but an empty value counts as set: Kafka turns some
    /// checks off with an empty value (`ssl.endpoint.identification.algorithm=`).
    pub fn get_even_if_empty(&self, listener: &Listener, key: &str) -> Option<&str> {
        let own = format!("{}{key}", listener.config_prefix());
        self.keys
            .get(&own)
            .or_else(|| self.keys.get(key))
            .map(String::as_str)
    }

    /// Every key is one Tidemark reads, and every prefix names a listener.
    pub fn validate(&self, listeners: &Listeners) -> Result<(), ConfigError> {
        for key in self.keys.keys() {
            let bare = match key.strip_prefix("listener.name.") {
                Some(rest) => {
                    let (name, bare) = rest
                        .split_once('.')
                        .ok_or_else(|| invalid(key, "expected listener.name.<listener>.<key>"))?;
                    if listeners.get(name).is_none() {
                        return Err(invalid(key, &format!("no listener is named {name}")));
                    }
                    bare
                }
                None => key.as_str(),
            };
            check_known(key, bare)?;
        }
        Ok(())
    }
}

fn check_known(key: &str, bare: &str) -> Result<(), ConfigError> {
    if let Some((_, reason)) = REFUSED_KEYS.iter().find(|(k, _)| *k == bare) {
        return Err(invalid(key, reason));
    }
    if is_jaas_config(bare) {
        return Ok(());
    }
    if is_server_callback_handler(bare) {
        return Ok(());
    }
    if !KNOWN_KEYS.contains(&bare) && !SASL_KEYS.contains(&bare) {
        return Err(invalid(key, "unknown key"));
    }
    Ok(())
}

/// The `sasl.*` keys Tidemark reads.
const SASL_KEYS: &[&str] = &[
    "sasl.enabled.mechanisms",
    // The mechanism brokers log in to each other with (config::inter_broker).
    "sasl.mechanism.inter.broker.protocol",
    // OAUTHBEARER (KIP-768).
    "sasl.oauthbearer.jwks.endpoint.url",
    "sasl.oauthbearer.expected.audience",
    "sasl.oauthbearer.expected.issuer",
    "sasl.oauthbearer.sub.claim.name",
    "sasl.oauthbearer.clock.skew.seconds",
    "sasl.oauthbearer.jwks.endpoint.refresh.ms",
    "sasl.oauthbearer.scope.claim.name",
];

/// Kafka's server callback handler of OAUTHBEARER (KIP-768), named per
/// mechanism: `listener.name.<l>.oauthbearer.sasl.server.callback.handler.class`.
const OAUTH_VALIDATOR_CLASS: &str =
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler";

fn is_server_callback_handler(bare: &str) -> bool {
    bare.ends_with(".sasl.server.callback.handler.class")
}

/// `sasl.jaas.config` or `<mechanism>.sasl.jaas.config`: Kafka's login
/// modules. The inter-broker listener's entry for
/// `sasl.mechanism.inter.broker.protocol` gives the user and password this
/// broker logs in to the others with (`config::inter_broker`); no entry
/// decides who may log in: Tidemark's users are the SCRAM credentials in
/// the quorum, managed with AlterUserScramCredentials.
pub fn is_jaas_config(bare: &str) -> bool {
    bare == "sasl.jaas.config" || bare.ends_with(".sasl.jaas.config")
}

/// What a SASL listener offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslSettings {
    pub mechanisms: Vec<SaslMechanism>,
    /// Set when OAUTHBEARER is enabled.
    pub oauth: Option<OAuthSettings>,
}

/// Where the provider's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// `file:///path/to/jwks.json`.
    File(PathBuf),
    /// `https://...`, its server checked against Mozilla's roots or, as
    /// Kafka's JAAS option `ssl.truststore.location` of the listener's
    /// OAUTHBEARER login module gives it, a PEM file of CAs.
    Https {
        url: String,
        truststore: Option<PathBuf>,
    },
}

/// How OAUTHBEARER tokens are validated (KIP-768's keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthSettings {
    /// `sasl.oauthbearer.jwks.endpoint.url`.
    pub jwks: JwksSource,
    /// `sasl.oauthbearer.jwks.endpoint.refresh.ms` (default one hour): how
    /// often the file is read again.
    pub refresh_ms: u64,
    pub rules: crate::security::oauth::TokenRules,
}

impl OAuthSettings {
    fn for_listener(
        keys: &SecurityKeys,
        listener: &Listener,
    ) -> Result<OAuthSettings, ConfigError> {
        let key = |bare: &str| format!("{}{bare}", listener.config_prefix());
        let get = |bare: &str| keys.get(listener, bare);
        let url_key = "sasl.oauthbearer.jwks.endpoint.url";
        let url = get(url_key).ok_or_else(|| {
            invalid(
                &key(url_key),
                "OAUTHBEARER needs the provider's keys: https://idp.example/jwks or file:///path/to/jwks.json",
            )
        })?;
        let jwks = match (url.strip_prefix("file://"), url.starts_with("https://")) {
            (Some(path), _) => JwksSource::File(PathBuf::from(path)),
            (None, true) => JwksSource::Https {
                url: url.to_string(),
                truststore: oauth_truststore(keys, listener)?,
            },
            (None, false) => {
                return Err(invalid(
                    &key(url_key),
                    "expected an https:// or file:// URL (Kafka also takes http://; Tidemark refuses it, since keys fetched without TLS could be forged on the way)",
                ))
            }
        };
        if let Some(class) = get("oauthbearer.sasl.server.callback.handler.class") {
            if class != OAUTH_VALIDATOR_CLASS {
                return Err(invalid(
                    &key("oauthbearer.sasl.server.callback.handler.class"),
                    &format!("only {OAUTH_VALIDATOR_CLASS} is built"),
                ));
            }
        }
        let number = |bare: &str, default: u64| -> Result<u64, ConfigError> {
            get(bare)
                .map(|v| {
                    v.parse::<u64>()
                        .map_err(|_| invalid(&key(bare), "expected a number"))
                })
                .transpose()
                .map(|v| v.unwrap_or(default))
        };
        let defaults = crate::security::oauth::TokenRules::default();
        let audience = get("sasl.oauthbearer.expected.audience")
            .map(|a| {
                a.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let rules = crate::security::oauth::TokenRules {
            audience,
            issuer: get("sasl.oauthbearer.expected.issuer").map(String::from),
            subject_claim: get("sasl.oauthbearer.sub.claim.name")
                .map_or(defaults.subject_claim, String::from),
            clock_skew_s: number("sasl.oauthbearer.clock.skew.seconds", defaults.clock_skew_s)?,
        };
        Ok(OAuthSettings {
            jwks,
            refresh_ms: number("sasl.oauthbearer.jwks.endpoint.refresh.ms", 3_600_000)?.max(1000),
            rules,
        })
    }
}

/// Kafka's way to trust a private provider's CA: the JAAS options of the
/// listener's OAUTHBEARER login module, `ssl.truststore.location="..."`
/// with `ssl.truststore.type="PEM"` (only PEM is read).
fn oauth_truststore(
    keys: &SecurityKeys,
    listener: &Listener,
) -> Result<Option<PathBuf>, ConfigError> {
    let jaas_key = "oauthbearer.sasl.jaas.config";
    let Some(text) = keys.get(listener, jaas_key) else {
        return Ok(None);
    };
    let key = format!("{}{jaas_key}", listener.config_prefix());
    let options = super::jaas::options(text).map_err(|m| invalid(&key, &m))?;
    let option = |name: &str| {
        options
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(kind) = option("ssl.truststore.type") {
        if !kind.eq_ignore_ascii_case("PEM") {
            return Err(invalid(
                &key,
                &format!("ssl.truststore.type={kind}: only PEM is read"),
            ));
        }
    }
    Ok(option("ssl.truststore.location").map(PathBuf::from))
}

impl SaslSettings {
    /// `sasl.enabled.mechanisms` of `listener`. Tidemark's default is
    /// SCRAM-SHA-256 and SCRAM-SHA-512 (Kafka's, GSSAPI, is not built);
    /// PLAIN must be enabled by name, as it sends the password itself.
    pub fn for_listener(
        keys: &SecurityKeys,
        listener: &Listener,
    ) -> Result<SaslSettings, ConfigError> {
        let key = format!("{}sasl.enabled.mechanisms", listener.config_prefix());
        let text = keys
            .get(listener, "sasl.enabled.mechanisms")
            .unwrap_or("SCRAM-SHA-256,SCRAM-SHA-512");
        let mut mechanisms = Vec::new();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let mechanism = match (SaslMechanism::parse(name), name) {
                (Some(m), _) => m,
                (None, "GSSAPI") => return Err(invalid(&key, "GSSAPI (Kerberos) is not built")),
                (None, other) => {
                    return Err(invalid(&key, &format!("{other}: unknown SASL mechanism")))
                }
            };
            if !mechanisms.contains(&mechanism) {
                mechanisms.push(mechanism);
            }
        }
        if mechanisms.is_empty() {
            return Err(invalid(&key, "names no mechanism"));
        }
        let oauth = match mechanisms.contains(&SaslMechanism::OAuthBearer) {
            true => Some(OAuthSettings::for_listener(keys, listener)?),
            false => None,
        };
        Ok(SaslSettings { mechanisms, oauth })
    }
}

/// Where PEM text comes from: a file (reloaded when it changes) or the
/// config itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemSource {
    File(PathBuf),
    Inline(String),
}

/// The keystore: the broker's private key and certificate chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStore {
    /// One PEM file with the key and the chain (`ssl.keystore.location`).
    File(PathBuf),
    /// `ssl.keystore.key` and `ssl.keystore.certificate.chain`.
    Inline { key: String, chain: String },
}

/// Kafka's `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

/// A TLS protocol version of `ssl.enabled.protocols`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// What a TLS listener needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub keystore: KeyStore,
    pub key_password: Option<String>,
    /// The CAs client certificates must chain to.
    pub truststore: Option<PemSource>,
    pub client_auth: ClientAuth,
    pub versions: Vec<TlsVersion>,
    /// `ssl.principal.mapping.rules`, parsed by `net::principal`.
    pub principal_mapping_rules: String,
}

impl TlsSettings {
    /// The settings of the TLS listener `listener`.
    pub fn for_listener(
        keys: &SecurityKeys,
        listener: &Listener,
    ) -> Result<TlsSettings, ConfigError> {
        let get = |key: &str| keys.get(listener, key);
        let key_name = |key: &str| format!("{}{key}", listener.config_prefix());
        for store in ["ssl.keystore.type", "ssl.truststore.type"] {
            if let Some(kind) = get(store) {
                if !kind.eq_ignore_ascii_case("PEM") {
                    return Err(invalid(
                        &key_name(store),
                        &format!("{kind}: Tidemark reads PEM stores only"),
                    ));
                }
            }
        }
        let keystore = match (get("ssl.keystore.location"), get("ssl.keystore.key"), get("ssl.keystore.certificate.chain")) {
            (Some(path), None, None) => KeyStore::File(PathBuf::from(path)),
            (None, Some(key), Some(chain)) => KeyStore::Inline {
                key: key.to_string(),
                chain: chain.to_string(),
            },
            (None, None, None) => {
                return Err(invalid(
                    &key_name("ssl.keystore.location"),
                    &format!("listener {} speaks TLS and needs a keystore", listener.name),
                ))
            }
            _ => {
                return Err(invalid(
                    &key_name("ssl.keystore.location"),
                    "give either ssl.keystore.location or both ssl.keystore.key and ssl.keystore.certificate.chain",
                ))
            }
        };
        let truststore = match (
            get("ssl.truststore.location"),
            get("ssl.truststore.certificates"),
        ) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    &key_name("ssl.truststore.location"),
                    "give either ssl.truststore.location or ssl.truststore.certificates",
                ))
            }
            (Some(path), None) => Some(PemSource::File(PathBuf::from(path))),
            (None, Some(pem)) => Some(PemSource::Inline(pem.to_string())),
            (None, None) => None,
        };
        let client_auth = match get("ssl.client.auth").map(|v| v.trim().to_ascii_lowercase()) {
            None => ClientAuth::None,
            Some(v) if v == "none" => ClientAuth::None,
            Some(v) if v == "requested" => ClientAuth::Requested,
            Some(v) if v == "required" => ClientAuth::Required,
            Some(v) => {
                return Err(invalid(
                    &key_name("ssl.client.auth"),
                    &format!("{v}: expected required, requested or none"),
                ))
            }
        };
        if client_auth != ClientAuth::None && truststore.is_none() {
            return Err(invalid(
                &key_name("ssl.truststore.location"),
                "ssl.client.auth asks for client certificates: give the CAs to check them against",
            ));
        }
        Ok(TlsSettings {
            keystore,
            key_password: get("ssl.key.password").map(str::to_string),
            truststore,
            client_auth,
            versions: parse_versions(
                &key_name("ssl.enabled.protocols"),
                get("ssl.enabled.protocols"),
            )?,
            principal_mapping_rules: get("ssl.principal.mapping.rules")
                .unwrap_or("DEFAULT")
                .to_string(),
        })
    }
}

/// Kafka's default is TLSv1.2,TLSv1.3; older versions are not offered.
fn parse_versions(key: &str, text: Option<&str>) -> Result<Vec<TlsVersion>, ConfigError> {
    let Some(text) = text else {
        return Ok(vec![TlsVersion::Tls12, TlsVersion::Tls13]);
    };
    let mut versions = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let version = match name {
            "TLSv1.2" => TlsVersion::Tls12,
            "TLSv1.3" => TlsVersion::Tls13,
            other => {
                return Err(invalid(
                    key,
                    &format!("{other}: only TLSv1.2 and TLSv1.3 are offered"),
                ))
            }
        };
        if !versions.contains(&version) {
            versions.push(version);
        }
    }
    if versions.is_empty() {
        return Err(invalid(key, "names no protocol"));
    }
    Ok(versions)
}

fn invalid(key: &str, message: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::listeners::{parse, ListenerKeys};
    use super::*;

    fn two_listeners() -> Listeners {
        parse(ListenerKeys {
            listeners: "PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9093",
            ..ListenerKeys::default()
        })
        .unwrap()
    }

    fn keys(pairs: &[(&str, &str)]) -> SecurityKeys {
        SecurityKeys::from_pairs(pairs)
    }

    #[test]
    fn a_listener_prefix_wins_over_the_global_key() {
        let listeners = two_listeners();
        let keys = keys(&[
            ("ssl.keystore.location", "/etc/tidemark/broker.pem"),
            ("ssl.truststore.location", "/etc/tidemark/ca.pem"),
            ("ssl.client.auth", "requested"),
            ("listener.name.ssl.ssl.client.auth", "required"),
        ]);
        keys.validate(&listeners).unwrap();
        let ssl = TlsSettings::for_listener(&keys, listeners.get("SSL").unwrap()).unwrap();
        assert_eq!(ssl.client_auth, ClientAuth::Required);
        assert_eq!(
            ssl.keystore,
            KeyStore::File("/etc/tidemark/broker.pem".into())
        );
        assert_eq!(ssl.versions, [TlsVersion::Tls12, TlsVersion::Tls13]);
        assert_eq!(ssl.principal_mapping_rules, "DEFAULT");
        let plain = TlsSettings::for_listener(&keys, listeners.get("PLAINTEXT").unwrap()).unwrap();
        assert_eq!(plain.client_auth, ClientAuth::Requested);
    }

    #[test]
    fn unknown_refused_and_misplaced_keys_are_errors() {
        let listeners = two_listeners();
        for bad in [
            "ssl.no.such.key",
            "ssl.keystore.password",
            "ssl.cipher.suites",
            "listener.name.nope.ssl.client.auth",
            "listener.name.ssl",
            "sasl.server.callback.handler.class",
        ] {
            assert!(keys(&[(bad, "x")]).validate(&listeners).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_tls_listener_needs_a_pem_keystore_and_client_auth_needs_cas() {
        let listeners = two_listeners();
        let ssl = listeners.get("SSL").unwrap();
        assert!(TlsSettings::for_listener(&keys(&[]), ssl).is_err());
        let jks = keys(&[
            ("ssl.keystore.type", "JKS"),
            ("ssl.keystore.location", "/k.jks"),
        ]);
        assert!(TlsSettings::for_listener(&jks, ssl).is_err());
        let no_cas = keys(&[
            ("ssl.keystore.location", "/k.pem"),
            ("ssl.client.auth", "required"),
        ]);
        assert!(TlsSettings::for_listener(&no_cas, ssl).is_err());
        let old = keys(&[
            ("ssl.keystore.location", "/k.pem"),
            ("ssl.enabled.protocols", "TLSv1.1"),
        ]);
        assert!(TlsSettings::for_listener(&old, ssl).is_err());
        let inline = keys(&[
            ("ssl.keystore.key", "KEY"),
            ("ssl.keystore.certificate.chain", "CHAIN"),
        ]);
        let settings = TlsSettings::for_listener(&inline, ssl).unwrap();
        assert!(matches!(settings.keystore, KeyStore::Inline { .. }));
    }
}
