//! The broker's listeners, read with Kafka's keys: `listeners`
//! (`NAME://HOST:PORT,...`), `advertised.listeners`,
//! `listener.security.protocol.map`, `inter.broker.listener.name` and
//! `security.inter.broker.protocol`. Pure parsing and validation, done on
//! the main thread before any shard starts.
//!
//! As Kafka does: a listener's name maps to its security protocol through
//! the protocol map (whose default maps each protocol's own name to it);
//! names are upper case; a listener missing from `advertised.listeners`
//! advertises its bind address; the inter-broker listener is named by
//! `inter.broker.listener.name` or found by `security.inter.broker.protocol`
//! (never both). Tidemark also takes a bare `HOST:PORT` as a listener named
//! PLAINTEXT, and a bare advertised `HOST:PORT` for a single listener, the
//! forms of its earlier releases.
use super::ConfigError;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

/// Kafka's security protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(text: &str) -> Option<SecurityProtocol> {
        match text.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether connections on it speak TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections on it must authenticate with SASL first.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One listener: where every shard binds it, and what clients are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Upper case, as Kafka normalises it.
    pub name: String,
    pub protocol: SecurityProtocol,
    pub bind: SocketAddr,
    pub advertised_host: String,
    pub advertised_port: u16,
}

impl Listener {
    /// The prefix of this listener's own settings:
    /// `listener.name.<lower-case name>.`, as Kafka spells it.
    pub fn config_prefix(&self) -> String {
        format!("listener.name.{}.", self.name.to_ascii_lowercase())
    }
}

/// All listeners of the broker, in the order `listeners` gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listeners {
    all: Vec<Listener>,
    inter_broker: usize,
}

impl Listeners {
    pub fn all(&self) -> &[Listener] {
        &self.all
    }

    /// The listener the other brokers replicate over; its advertised
    /// address is the one registered with the quorum for them.
    pub fn inter_broker(&self) -> &Listener {
        &self.all[self.inter_broker]
    }

    pub fn get(&self, name: &str) -> Option<&Listener> {
        self.all.iter().find(|l| l.name.eq_ignore_ascii_case(name))
    }
}

/// The keys the listeners are read from.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListenerKeys<'a> {
    pub listeners: &'a str,
    pub advertised: Option<&'a str>,
    pub protocol_map: Option<&'a str>,
    pub inter_broker_name: Option<&'a str>,
    pub inter_broker_protocol: Option<&'a str>,
}

const DEFAULT_PROTOCOL_MAP: &str =
    "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";

/// Reads and checks the listeners.
pub fn parse(keys: ListenerKeys<'_>) -> Result<Listeners, ConfigError> {
    let map = parse_protocol_map(keys.protocol_map.unwrap_or(DEFAULT_PROTOCOL_MAP))?;
    let mut all: Vec<Listener> = Vec::new();
    for entry in entries(keys.listeners) {
        let (name, host, port) = split_entry("listeners", entry)?;
        let protocol = map
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| *p)
            .ok_or_else(|| {
                invalid(
                    "listener.security.protocol.map",
                    format!("listener {name} has no security protocol"),
                )
            })?;
        if all.iter().any(|l| l.name == name) {
            return Err(invalid(
                "listeners",
                format!("listener {name} is named twice"),
            ));
        }
        let bind = resolve(&host, port)?;
        if all.iter().any(|l| l.bind == bind) {
            return Err(invalid(
                "listeners",
                format!("{bind} is bound by two listeners"),
            ));
        }
        all.push(Listener {
            advertised_host: advertisable(&host),
            advertised_port: port,
            name,
            protocol,
            bind,
        });
    }
    if all.is_empty() {
        return Err(invalid("listeners", "names no listener".to_string()));
    }
    if let Some(advertised) = keys.advertised {
        apply_advertised(&mut all, advertised)?;
    }
    let inter_broker = inter_broker_index(&all, keys)?;
    Ok(Listeners { all, inter_broker })
}

fn entries(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// `NAME://HOST:PORT` (or a bare `HOST:PORT`, named PLAINTEXT) as
/// (upper-case name, host, port). IPv6 hosts are bracketed.
fn split_entry(key: &str, entry: &str) -> Result<(String, String, u16), ConfigError> {
    let (name, address) = match entry.split_once("://") {
        Some((name, address)) => (name.trim().to_ascii_uppercase(), address),
        None => ("PLAINTEXT".to_string(), entry),
    };
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid_name {
        return Err(invalid(key, format!("{entry}: bad listener name")));
    }
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| invalid(key, format!("{entry}: expected NAME://HOST:PORT")))?;
    let port: u16 = port
        .parse()
        .map_err(|_| invalid(key, format!("{entry}: bad port")))?;
    let host = host.trim_matches(|c| c == '[' || c == ']').to_string();
    Ok((name, host, port))
}

/// The address to bind: an empty host binds every interface, as in Kafka.
fn resolve(host: &str, port: u16) -> Result<SocketAddr, ConfigError> {
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut it| it.next())
        .ok_or_else(|| invalid("listeners", format!("{host}:{port}: cannot resolve")))
}

/// A wildcard or empty host is advertised as the loopback address.
fn advertisable(host: &str) -> String {
    match host {
        "" | "0.0.0.0" | "::" => "127.0.0.1".to_string(),
        other => other.to_string(),
    }
}

fn apply_advertised(all: &mut [Listener], text: &str) -> Result<(), ConfigError> {
    const KEY: &str = "advertised.listeners";
    let list: Vec<&str> = entries(text).collect();
    if let [single] = list.as_slice() {
        if !single.contains("://") {
            // The earlier releases' form: the one listener's address.
            if all.len() > 1 {
                return Err(invalid(
                    KEY,
                    format!(
                        "{single}: name the listener (NAME://HOST:PORT) when there are several"
                    ),
                ));
            }
            let (_, host, port) = split_entry(KEY, single)?;
            all[0].advertised_host = advertisable(&host);
            all[0].advertised_port = port;
            return Ok(());
        }
    }
    let mut seen: Vec<String> = Vec::new();
    for entry in list {
        if !entry.contains("://") {
            return Err(invalid(KEY, format!("{entry}: expected NAME://HOST:PORT")));
        }
        let (name, host, port) = split_entry(KEY, entry)?;
        if seen.contains(&name) {
            return Err(invalid(KEY, format!("listener {name} is advertised twice")));
        }
        let listener = all
            .iter_mut()
            .find(|l| l.name == name)
            .ok_or_else(|| invalid(KEY, format!("listener {name} is not in listeners")))?;
        listener.advertised_host = advertisable(&host);
        listener.advertised_port = port;
        seen.push(name);
    }
    Ok(())
}

fn parse_protocol_map(text: &str) -> Result<Vec<(String, SecurityProtocol)>, ConfigError> {
    const KEY: &str = "listener.security.protocol.map";
    entries(text)
        .map(|pair| {
            let (name, protocol) = pair
                .split_once(':')
                .ok_or_else(|| invalid(KEY, format!("{pair}: expected NAME:PROTOCOL")))?;
            let protocol = SecurityProtocol::parse(protocol)
                .ok_or_else(|| invalid(KEY, format!("{pair}: unknown security protocol")))?;
            Ok((name.trim().to_ascii_uppercase(), protocol))
        })
        .collect()
}

/// Kafka's rule: `inter.broker.listener.name` names it, or
/// `security.inter.broker.protocol` picks the listener named after that
/// protocol (default PLAINTEXT); never both. Tidemark takes the first
/// listener when neither is set and no listener is named PLAINTEXT, so a
/// single-listener broker needs no extra key.
fn inter_broker_index(all: &[Listener], keys: ListenerKeys<'_>) -> Result<usize, ConfigError> {
    match (keys.inter_broker_name, keys.inter_broker_protocol) {
        (Some(_), Some(_)) => Err(invalid(
            "inter.broker.listener.name",
            "set either it or security.inter.broker.protocol, not both".to_string(),
        )),
        (Some(name), None) => all
            .iter()
            .position(|l| l.name.eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| {
                invalid(
                    "inter.broker.listener.name",
                    format!("{name} is not in listeners"),
                )
            }),
        (None, Some(protocol)) => {
            let protocol = SecurityProtocol::parse(protocol).ok_or_else(|| {
                invalid(
                    "security.inter.broker.protocol",
                    format!("{protocol}: unknown security protocol"),
                )
            })?;
            all.iter()
                .position(|l| l.name == protocol.name())
                .ok_or_else(|| {
                    invalid(
                        "security.inter.broker.protocol",
                        format!("no listener is named {protocol}"),
                    )
                })
        }
        (None, None) => Ok(all.iter().position(|l| l.name == "PLAINTEXT").unwrap_or(0)),
    }
}

fn invalid(key: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listeners(text: &str) -> Result<Listeners, ConfigError> {
        parse(ListenerKeys {
            listeners: text,
            ..ListenerKeys::default()
        })
    }

    #[test]
    fn a_bare_address_is_a_plaintext_listener() {
        let l = listeners("127.0.0.1:9092").unwrap();
        let only = &l.all()[0];
        assert_eq!(only.name, "PLAINTEXT");
        assert_eq!(only.protocol, SecurityProtocol::Plaintext);
        assert_eq!(only.bind, "127.0.0.1:9092".parse().unwrap());
        assert_eq!(l.inter_broker().name, "PLAINTEXT");
    }

    #[test]
    fn several_listeners_with_kafka_names_and_a_custom_one() {
        let l = parse(ListenerKeys {
            listeners: "plaintext://:9092, SSL://127.0.0.1:9093,INTERNAL://127.0.0.1:9094",
            advertised: Some("SSL://broker1.example.com:19093,PLAINTEXT://broker1:9092"),
            protocol_map: Some("PLAINTEXT:PLAINTEXT,SSL:SSL,INTERNAL:SSL"),
            inter_broker_name: Some("internal"),
            inter_broker_protocol: None,
        })
        .unwrap();
        let names: Vec<&str> = l.all().iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["PLAINTEXT", "SSL", "INTERNAL"]);
        assert_eq!(l.all()[0].bind, "0.0.0.0:9092".parse().unwrap());
        assert_eq!(l.all()[0].advertised_host, "broker1");
        let ssl = l.get("ssl").unwrap();
        assert_eq!(
            (ssl.advertised_host.as_str(), ssl.advertised_port),
            ("broker1.example.com", 19093)
        );
        assert_eq!(l.inter_broker().name, "INTERNAL");
        assert_eq!(l.inter_broker().protocol, SecurityProtocol::Ssl);
        // Not advertised: its bind address.
        assert_eq!(l.inter_broker().advertised_host, "127.0.0.1");
        assert_eq!(l.inter_broker().config_prefix(), "listener.name.internal.");
    }

    #[test]
    fn the_inter_broker_listener_by_protocol() {
        let l = parse(ListenerKeys {
            listeners: "PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9093",
            inter_broker_protocol: Some("SSL"),
            ..ListenerKeys::default()
        })
        .unwrap();
        assert_eq!(l.inter_broker().name, "SSL");
        // Without either key: the PLAINTEXT listener, as Kafka's default.
        let l = listeners("SSL://127.0.0.1:9093,PLAINTEXT://127.0.0.1:9092").unwrap();
        assert_eq!(l.inter_broker().name, "PLAINTEXT");
    }

    #[test]
    fn bad_listener_lists_are_refused_with_the_key() {
        let cases = [
            ("FOO://127.0.0.1:9092", "listener.security.protocol.map"),
            (
                "PLAINTEXT://127.0.0.1:9092,PLAINTEXT://127.0.0.1:9093",
                "listeners",
            ),
            (
                "PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9092",
                "listeners",
            ),
            ("PLAINTEXT://127.0.0.1", "listeners"),
            ("PLAINTEXT://127.0.0.1:99999", "listeners"),
            ("", "listeners"),
            ("BAD NAME://127.0.0.1:1", "listeners"),
        ];
        for (text, key) in cases {
            match listeners(text) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn advertised_listeners_must_name_known_listeners() {
        let keys = |advertised| ListenerKeys {
            listeners: "PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9093",
            advertised: Some(advertised),
            ..ListenerKeys::default()
        };
        assert!(parse(keys("SASL_SSL://h:1")).is_err());
        assert!(parse(keys("h:1")).is_err(), "unnamed with two listeners");
        assert!(parse(keys("SSL://h:1,SSL://h:2")).is_err());
        let both_keys = ListenerKeys {
            inter_broker_name: Some("SSL"),
            inter_broker_protocol: Some("SSL"),
            ..keys("SSL://h:1")
        };
        assert!(parse(both_keys).is_err());
    }
}
