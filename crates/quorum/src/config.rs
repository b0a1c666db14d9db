//! The quorum node's configuration: command-line flags, optionally a TOML
//! file with the same settings (Kafka-style dotted keys, quoted), and the
//! `TIDEMARK_QUORUM_SECRET` environment variable. Built on the main thread
//! before the quorum's runtime starts. Pure apart from reading the file.
//!
//! TLS (`tls`) uses ZooKeeper's and Kafka's key names: with
//! `ssl.keystore.location` set the node speaks TLS only and requires a
//! client certificate that chains to `ssl.truststore.location`.
use super::raft::NodeId;
use super::sessions::DEFAULT_SESSION_TIMEOUT_MS;
use super::tls::{check_store_type, TlsFiles};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const SECRET_ENV: &str = "TIDEMARK_QUORUM_SECRET";

#[derive(Debug, thiserror::Error)]
pub enum QuorumConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// The settings a config file may hold (every one optional: flags win).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuorumFile {
    #[serde(rename = "node.id")]
    pub node_id: Option<NodeId>,
    pub listen: Option<String>,
    /// `1=host:port,2=host:port,...`, as on the command line.
    pub peers: Option<String>,
    #[serde(rename = "data.dir")]
    pub data_dir: Option<PathBuf>,
    #[serde(rename = "quorum.secret")]
    pub secret: Option<String>,
    #[serde(rename = "broker.session.timeout.ms")]
    pub session_timeout_ms: Option<u64>,
    #[serde(rename = "quorum.heartbeat.interval.ms")]
    pub heartbeat_interval_ms: Option<u64>,
    /// The lower bound of the election timeout; the upper bound is twice it.
    #[serde(rename = "quorum.election.timeout.ms")]
    pub election_timeout_ms: Option<u64>,
    /// Log entries since the last snapshot that trigger a new one.
    #[serde(rename = "quorum.snapshot.entries")]
    pub snapshot_entries: Option<u64>,
    /// PEM: this node's private key and certificate chain. Turns TLS on.
    #[serde(rename = "ssl.keystore.location")]
    pub keystore_location: Option<PathBuf>,
    /// Decrypts an encrypted (PKCS#8) key in the keystore.
    #[serde(rename = "ssl.key.password")]
    pub key_password: Option<String>,
    /// PEM: the CAs whose certificates may connect (and peers must show).
    #[serde(rename = "ssl.truststore.location")]
    pub truststore_location: Option<PathBuf>,
    #[serde(rename = "ssl.keystore.type")]
    pub keystore_type: Option<String>,
    #[serde(rename = "ssl.truststore.type")]
    pub truststore_type: Option<String>,
    /// `https` (default): a peer's certificate must name its address in `peers`.
    #[serde(rename = "ssl.endpoint.identification.algorithm")]
    pub endpoint_identification: Option<String>,
}

impl QuorumFile {
    pub fn load(path: &Path) -> Result<QuorumFile, QuorumConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| QuorumConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| QuorumConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumConfig {
    pub node_id: NodeId,
    pub listen: String,
    /// Every voter of the group, this node included.
    pub peers: BTreeMap<NodeId, String>,
    pub data_dir: PathBuf,
    pub secret: Option<String>,
    pub session_timeout_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub election_timeout_ms: u64,
    pub snapshot_entries: u64,
    /// Set: the port speaks mutual TLS only, and so does the raft client.
    pub tls: Option<TlsFiles>,
}

/// `1=host:port,2=host:port` into a map.
pub fn parse_peers(text: &str) -> Result<BTreeMap<NodeId, String>, QuorumConfigError> {
    let mut peers = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = item.split_once('=').ok_or_else(|| {
            QuorumConfigError::Invalid(format!("peer {item:?} is not ID=HOST:PORT"))
        })?;
        let id: NodeId = id
            .trim()
            .parse()
            .map_err(|_| QuorumConfigError::Invalid(format!("peer id {id:?} is not a number")))?;
        if peers.insert(id, addr.trim().to_string()).is_some() {
            return Err(QuorumConfigError::Invalid(format!(
                "peer {id} is listed twice"
            )));
        }
    }
    Ok(peers)
}

impl QuorumConfig {
    /// Merges the file (if any) under the flags, then the secret from the environment.
    pub fn build(
        file: QuorumFile,
        node_id: Option<NodeId>,
        listen: Option<String>,
        peers: Option<String>,
        data_dir: Option<PathBuf>,
    ) -> Result<QuorumConfig, QuorumConfigError> {
        let missing = |what: &str| QuorumConfigError::Invalid(format!("{what} is required"));
        let tls = tls_files(&file)?;
        let node_id = node_id
            .or(file.node_id)
            .ok_or_else(|| missing("--node-id"))?;
        let listen = listen.or(file.listen).ok_or_else(|| missing("--listen"))?;
        let peers = parse_peers(&peers.or(file.peers).ok_or_else(|| missing("--peers"))?)?;
        let data_dir = data_dir
            .or(file.data_dir)
            .ok_or_else(|| missing("--data-dir"))?;
        let secret = std::env::var(SECRET_ENV)
            .ok()
            .or(file.secret)
            .filter(|s| !s.is_empty());
        let config = QuorumConfig {
            tls,
            node_id,
            listen,
            peers,
            data_dir,
            secret,
            session_timeout_ms: file
                .session_timeout_ms
                .unwrap_or(DEFAULT_SESSION_TIMEOUT_MS),
            heartbeat_interval_ms: file.heartbeat_interval_ms.unwrap_or(250),
            election_timeout_ms: file.election_timeout_ms.unwrap_or(1000),
            snapshot_entries: file.snapshot_entries.unwrap_or(5000),
        };
        config.validate()?;
        Ok(config)
    }
}

/// The node's TLS files: a keystore turns TLS on and then needs a
/// truststore, since every client must show a certificate (mutual TLS).
fn tls_files(file: &QuorumFile) -> Result<Option<TlsFiles>, QuorumConfigError> {
    let invalid = |m: String| QuorumConfigError::Invalid(m);
    check_store_type("ssl.keystore.type", file.keystore_type.as_deref()).map_err(invalid)?;
    check_store_type("ssl.truststore.type", file.truststore_type.as_deref()).map_err(invalid)?;
    let verify_hostname =
        TlsFiles::parse_identification(file.endpoint_identification.as_deref())
            .map_err(|m| invalid(format!("ssl.endpoint.identification.algorithm: {m}")))?;
    match (&file.keystore_location, &file.truststore_location) {
        (Some(keystore), Some(truststore)) => Ok(Some(TlsFiles {
            keystore: keystore.clone(),
            key_password: file.key_password.clone().filter(|p| !p.is_empty()),
            truststore: truststore.clone(),
            verify_hostname,
        })),
        (Some(_), None) => Err(invalid(
            "ssl.truststore.location is required with ssl.keystore.location: the quorum requires client certificates and checks them against it".into(),
        )),
        (None, Some(_)) => Err(invalid(
            "ssl.truststore.location without ssl.keystore.location: TLS needs this node's key and certificate".into(),
        )),
        (None, None) if file.key_password.is_some() => Err(invalid(
            "ssl.key.password without ssl.keystore.location".into(),
        )),
        (None, None) => Ok(None),
    }
}

impl QuorumConfig {
    fn validate(&self) -> Result<(), QuorumConfigError> {
        let invalid = |m: String| Err(QuorumConfigError::Invalid(m));
        if ![1, 3, 5].contains(&self.peers.len()) {
            return invalid(format!(
                "a quorum has 1, 3 or 5 nodes, not {}",
                self.peers.len()
            ));
        }
        if !self.peers.contains_key(&self.node_id) {
            return invalid(format!("node {} is not among the peers", self.node_id));
        }
        if self.heartbeat_interval_ms == 0 || self.election_timeout_ms <= self.heartbeat_interval_ms
        {
            return invalid(
                "quorum.election.timeout.ms must exceed quorum.heartbeat.interval.ms".into(),
            );
        }
        if self.session_timeout_ms == 0 || self.snapshot_entries == 0 {
            return invalid(
                "broker.session.timeout.ms and quorum.snapshot.entries must be positive".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_bad_ones_are_refused() {
        let peers = parse_peers("1=a:1, 2=b:2,3=c:3").unwrap();
        assert_eq!(peers[&2], "b:2");
        assert!(parse_peers("1=a:1,1=b:2").is_err());
        assert!(parse_peers("x=a:1").is_err());
        assert!(parse_peers("a:1").is_err());
    }

    #[test]
    fn flags_override_the_file_and_the_group_size_is_checked() {
        let file: QuorumFile = toml::from_str(
            "\"node.id\" = 2\nlisten = \"127.0.0.1:1\"\npeers = \"1=a:1,2=b:2,3=c:3\"\n\"data.dir\" = \"/tmp/q\"\n\"broker.session.timeout.ms\" = 1500\n",
        )
        .unwrap();
        let c = QuorumConfig::build(file, Some(3), None, None, None).unwrap();
        assert_eq!((c.node_id, c.session_timeout_ms), (3, 1500));
        let two = QuorumConfig::build(
            QuorumFile::default(),
            Some(1),
            Some("x:1".into()),
            Some("1=a:1,2=b:2".into()),
            Some("/d".into()),
        );
        assert!(two.is_err());
        assert!(toml::from_str::<QuorumFile>("bogus = 1").is_err());
    }

    fn build(text: &str) -> Result<QuorumConfig, QuorumConfigError> {
        let base =
            "listen = \"127.0.0.1:1\"\npeers = \"1=a:1\"\n\"node.id\" = 1\n\"data.dir\" = \"/q\"\n";
        let file: QuorumFile = toml::from_str(&format!("{base}{text}")).unwrap();
        QuorumConfig::build(file, None, None, None, None)
    }

    #[test]
    fn tls_keys_turn_on_mutual_tls_and_need_both_stores() {
        assert_eq!(build("").unwrap().tls, None);
        let c = build(
            "\"ssl.keystore.location\" = \"/etc/tidemark/tls/quorum.pem\"\n\
             \"ssl.truststore.location\" = \"/etc/tidemark/tls/ca.pem\"\n\
             \"ssl.key.password\" = \"k3y\"\n\
             \"ssl.keystore.type\" = \"PEM\"\n\"ssl.truststore.type\" = \"pem\"\n",
        )
        .unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.keystore, PathBuf::from("/etc/tidemark/tls/quorum.pem"));
        assert_eq!(tls.truststore, PathBuf::from("/etc/tidemark/tls/ca.pem"));
        assert_eq!(tls.key_password.as_deref(), Some("k3y"));
        assert!(tls.verify_hostname);
        let lax = build(
            "\"ssl.keystore.location\" = \"/k\"\n\"ssl.truststore.location\" = \"/t\"\n\
             \"ssl.endpoint.identification.algorithm\" = \"\"\n",
        )
        .unwrap();
        assert!(!lax.tls.unwrap().verify_hostname);
        for bad in [
            "\"ssl.keystore.location\" = \"/k\"\n",
            "\"ssl.truststore.location\" = \"/t\"\n",
            "\"ssl.key.password\" = \"x\"\n",
            "\"ssl.keystore.location\" = \"/k\"\n\"ssl.truststore.location\" = \"/t\"\n\"ssl.keystore.type\" = \"JKS\"\n",
            "\"ssl.keystore.location\" = \"/k\"\n\"ssl.truststore.location\" = \"/t\"\n\"ssl.endpoint.identification.algorithm\" = \"none\"\n",
        ] {
            assert!(build(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_example_config_in_deploy_parses() {
        let file: QuorumFile = toml::from_str(include_str!("../../../deploy/quorum.toml")).unwrap();
        let c = QuorumConfig::build(file, Some(2), None, None, Some("/q".into())).unwrap();
        assert_eq!(c.peers.len(), 3);
        assert!(c.tls.is_some(), "the example turns TLS on");
    }
}
