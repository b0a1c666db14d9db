//! The broker's TLS to the quorum service, with the keys of Kafka's
//! ZooKeeper client (KIP-515) under `quorum.` instead of `zookeeper.`:
//! `quorum.ssl.client.enable`, `quorum.ssl.keystore.location` (PEM: key and
//! chain in one file), `quorum.ssl.key.password`,
//! `quorum.ssl.truststore.location` (PEM CA certificates),
//! `quorum.ssl.keystore.type` / `quorum.ssl.truststore.type` (PEM only) and
//! `quorum.ssl.endpoint.identification.algorithm` (`https`, the default,
//! checks the quorum node's certificate against the endpoint's host).
//!
//! The PEM files are read when the config is read (`load`), so a broker
//! whose certificates do not load refuses to start; afterwards
//! `quorum::tls::ClientTls` reloads them when they change. Built on the
//! main thread; the quorum agent's thread builds its clients from it.
use super::ConfigError;
use quorum::tls::{check_store_type, ClientTls, TlsFiles};
use quorum::QuorumClient;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct QuorumTlsKeys {
    /// Speak mutual TLS to the quorum (Kafka: `zookeeper.ssl.client.enable`).
    #[serde(rename = "quorum.ssl.client.enable")]
    pub enable: bool,
    #[serde(rename = "quorum.ssl.keystore.location")]
    pub keystore_location: Option<PathBuf>,
    #[serde(rename = "quorum.ssl.key.password")]
    pub key_password: Option<String>,
    #[serde(rename = "quorum.ssl.truststore.location")]
    pub truststore_location: Option<PathBuf>,
    #[serde(rename = "quorum.ssl.keystore.type")]
    pub keystore_type: Option<String>,
    #[serde(rename = "quorum.ssl.truststore.type")]
    pub truststore_type: Option<String>,
    #[serde(rename = "quorum.ssl.endpoint.identification.algorithm")]
    pub endpoint_identification: Option<String>,
    /// The loaded client side; set by `load` exactly when `enable` is.
    #[serde(skip)]
    pub client: Option<ClientTls>,
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

impl QuorumTlsKeys {
    /// The files the keys name: `None` when TLS is off. Unlike Kafka, which
    /// ignores the store keys while `zookeeper.ssl.client.enable` is false,
    /// a store named with TLS off is refused: the operator meant TLS.
    pub fn files(&self) -> Result<Option<TlsFiles>, ConfigError> {
        let store_type = |key: &str, value: &Option<String>| {
            check_store_type(key, value.as_deref()).map_err(|m| invalid(key, m))
        };
        store_type("quorum.ssl.keystore.type", &self.keystore_type)?;
        store_type("quorum.ssl.truststore.type", &self.truststore_type)?;
        let algorithm = "quorum.ssl.endpoint.identification.algorithm";
        let verify_hostname =
            TlsFiles::parse_identification(self.endpoint_identification.as_deref())
                .map_err(|m| invalid(algorithm, m))?;
        if !self.enable {
            if self.keystore_location.is_some() || self.truststore_location.is_some() {
                return Err(invalid(
                    "quorum.ssl.client.enable",
                    "quorum.ssl stores are set but TLS to the quorum is off: set it to true",
                ));
            }
            return Ok(None);
        }
        let required = |key: &str, value: &Option<PathBuf>, why: &str| {
            value.clone().ok_or_else(|| invalid(key, why))
        };
        Ok(Some(TlsFiles {
            keystore: required(
                "quorum.ssl.keystore.location",
                &self.keystore_location,
                "the quorum requires a client certificate: give the broker's key and chain (PEM)",
            )?,
            key_password: self.key_password.clone().filter(|p| !p.is_empty()),
            truststore: required(
                "quorum.ssl.truststore.location",
                &self.truststore_location,
                "give the CA certificates (PEM) that signed the quorum nodes' certificates",
            )?,
            verify_hostname,
        }))
    }

    /// Reads the PEM files when TLS is on.
    pub fn load(&mut self) -> Result<(), ConfigError> {
        self.client = match self.files()? {
            None => None,
            Some(files) => Some(
                ClientTls::load(&files)
                    .map_err(|e| invalid("quorum.ssl.keystore.location", e.to_string()))?,
            ),
        };
        Ok(())
    }

    /// The keys are consistent, were loaded, and there is a quorum to use
    /// them with (the embedded quorum of a standalone broker is plaintext).
    pub fn check(&self, in_cluster: bool) -> Result<(), ConfigError> {
        self.files()?;
        if self.enable && !in_cluster {
            return Err(invalid(
                "quorum.ssl.client.enable",
                "needs quorum.endpoints: the embedded quorum of a standalone broker is plaintext on loopback",
            ));
        }
        if self.enable != self.client.is_some() {
            return Err(invalid(
                "quorum.ssl.client.enable",
                "the quorum TLS files were not loaded",
            ));
        }
        Ok(())
    }
}

impl super::BrokerConfig {
    /// A client of the quorum with this broker's endpoints, secret and TLS.
    pub fn quorum_client(&self) -> QuorumClient {
        debug_assert_eq!(self.quorum_tls.enable, self.quorum_tls.client.is_some());
        let client = QuorumClient::new(self.quorum_endpoints(), self.quorum_secret.clone());
        match &self.quorum_tls.client {
            Some(tls) => client.with_tls(tls.clone()),
            None => client,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::BrokerConfig;
    use super::*;

    fn parse(text: &str) -> Result<BrokerConfig, String> {
        BrokerConfig::from_table(toml::from_str(text).unwrap())
    }

    /// A CA-signed keystore and the CA, as PEM files in `dir`.
    fn pem_files(dir: &std::path::Path) -> (PathBuf, PathBuf) {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca = CertificateParams::default();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let (keystore, truststore) = (dir.join("broker.pem"), dir.join("ca.pem"));
        std::fs::write(&keystore, format!("{}{}", key.serialize_pem(), cert.pem())).unwrap();
        std::fs::write(&truststore, ca.pem()).unwrap();
        (keystore, truststore)
    }

    #[test]
    fn quorum_tls_keys_load_the_files_and_survive_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let (keystore, truststore) = pem_files(dir.path());
        let mut c = parse(&format!(
            r#"
            "quorum.endpoints" = "q1:9093"
            "quorum.ssl.client.enable" = true
            "quorum.ssl.keystore.type" = "PEM"
            "quorum.ssl.keystore.location" = "{}"
            "quorum.ssl.truststore.location" = "{}"
            "#,
            keystore.display(),
            truststore.display()
        ))
        .unwrap();
        c.validate().unwrap();
        let files = c.quorum_tls.files().unwrap().unwrap();
        assert_eq!(files.keystore, keystore);
        assert!(files.verify_hostname);
        assert!(c.quorum_tls.client.is_some());
        c.apply_overrides(&["quorum.ssl.endpoint.identification.algorithm=".into()])
            .unwrap();
        c.validate().unwrap();
        assert!(!c.quorum_tls.files().unwrap().unwrap().verify_hostname);
        assert!(c.quorum_tls.client.is_some(), "reloaded after the override");
    }

    #[test]
    fn incomplete_or_misplaced_quorum_tls_keys_are_refused() {
        let with_endpoints = |extra: &str| format!("\"quorum.endpoints\" = \"q1:9093\"\n{extra}");
        for bad in [
            "\"quorum.ssl.client.enable\" = true\n",
            "\"quorum.ssl.client.enable\" = true\n\"quorum.ssl.keystore.location\" = \"/k.pem\"\n",
            "\"quorum.ssl.keystore.location\" = \"/k.pem\"\n",
            "\"quorum.ssl.truststore.type\" = \"JKS\"\n",
            "\"quorum.ssl.endpoint.identification.algorithm\" = \"none\"\n",
            "\"quorum.ssl.client.enable\" = true\n\"quorum.ssl.keystore.location\" = \"/absent.pem\"\n\"quorum.ssl.truststore.location\" = \"/absent-ca.pem\"\n",
            "\"quorum.ssl.no.such.key\" = 1\n",
        ] {
            assert!(parse(&with_endpoints(bad)).is_err(), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let (keystore, truststore) = pem_files(dir.path());
        let standalone = parse(&format!(
            "\"quorum.ssl.client.enable\" = true\n\"quorum.ssl.keystore.location\" = \"{}\"\n\"quorum.ssl.truststore.location\" = \"{}\"\n",
            keystore.display(),
            truststore.display()
        ))
        .unwrap();
        let err = standalone.validate().unwrap_err().to_string();
        assert!(err.contains("embedded quorum"), "{err}");
    }

    #[test]
    fn the_cluster_example_in_deploy_turns_quorum_tls_on() {
        let c: BrokerConfig =
            toml::from_str(include_str!("../../../../deploy/broker-cluster.toml")).unwrap();
        let files = c.quorum_tls.files().unwrap().expect("TLS on");
        assert_eq!(
            files.keystore,
            PathBuf::from("/etc/tidemark/tls/broker.pem")
        );
        assert_eq!(files.truststore, PathBuf::from("/etc/tidemark/tls/ca.pem"));
    }
}
