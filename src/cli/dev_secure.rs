//! `tidemark dev --secure`: a development broker secured the way a Kafka
//! user secures one. On its first start it makes, in `<data dir>/secure/`,
//! a CA, a broker certificate (for localhost and 127.0.0.1), a client
//! certificate and a random password for the super user `admin`; every
//! later start reuses them. It turns on a SASL_SSL listener (SCRAM-SHA-256,
//! SCRAM-SHA-512 and PLAIN), creates `admin` as the bootstrap user, turns on
//! Kafka's StandardAuthorizer with `super.users=User:admin`, and writes the
//! client settings (librdkafka and Java properties files) beside the
//! certificates. Keys the user sets with `--set` or `--config` win, unless
//! they would undo what `--secure` promises: then it refuses to start and
//! says which key. Runs on the main thread before the broker starts.
use broker::broker::scram_users::BOOTSTRAP_USER_VARIABLE;
use broker::config::tls::{ClientAuth, SaslSettings};
use broker::config::{BrokerConfig, ConfigError, Listener, SecurityProtocol, TlsSettings};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The super user `--secure` creates.
pub const ADMIN_USER: &str = "admin";
/// Kafka's authorizer class, as its docs give it.
const AUTHORIZER_CLASS: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";
/// SCRAM is Kafka's habit; PLAIN is offered too because it is safe over TLS
/// and the mechanism managed Kafka services hand out, so copied client
/// configs work.
const MECHANISMS: &str = "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN";
/// The mechanism the written client settings use, in order of preference.
const CLIENT_MECHANISMS: [&str; 3] = ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"];
/// Random bytes of the admin's password (written as hex).
const PASSWORD_BYTES: usize = 20;
/// How long the certificates are valid, from January 1st of this year.
const CA_YEARS: i32 = 20;
const CERTIFICATE_YEARS: i32 = 10;

#[derive(Debug, Error)]
pub enum SecureError {
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make the certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("no randomness for the admin's password")]
    Randomness,
    #[error("{dir} is incomplete ({missing} is missing): remove the directory and start again to make new certificates and a new password")]
    Incomplete { dir: PathBuf, missing: String },
    #[error("--secure: {0}")]
    Clash(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SecureError {
    let path = path.to_path_buf();
    move |source| SecureError::Io { what, path, source }
}

/// The files of `<data dir>/secure/`.
#[derive(Debug, Clone)]
pub struct SecureFiles {
    pub dir: PathBuf,
}

impl SecureFiles {
    pub fn in_data_dir(data_dir: &Path) -> SecureFiles {
        SecureFiles {
            dir: data_dir.join("secure"),
        }
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    /// Kept so that more certificates can be signed with openssl.
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    /// The broker's key and certificate in one PEM file (the keystore).
    pub fn broker_keystore(&self) -> PathBuf {
        self.dir.join("broker.pem")
    }
    pub fn client_cert(&self) -> PathBuf {
        self.dir.join("client.crt")
    }
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client.key")
    }
    /// The client's key and certificate in one PEM file (a Java PEM keystore).
    pub fn client_keystore(&self) -> PathBuf {
        self.dir.join("client.pem")
    }
    pub fn admin_password(&self) -> PathBuf {
        self.dir.join("admin.password")
    }
    pub fn librdkafka_properties(&self) -> PathBuf {
        self.dir.join("librdkafka.properties")
    }
    pub fn java_properties(&self) -> PathBuf {
        self.dir.join("client.properties")
    }
    /// What a first start makes and every later start needs.
    fn made_once(&self) -> [PathBuf; 7] {
        [
            self.ca_cert(),
            self.ca_key(),
            self.broker_keystore(),
            self.client_cert(),
            self.client_key(),
            self.client_keystore(),
            self.admin_password(),
        ]
    }
}

/// The certificates and the admin's password: made on the first start
/// (into a fresh directory renamed into place, so that a start cut short
/// leaves nothing half made), read on every later one.
pub fn ensure_material(data_dir: &Path) -> Result<(SecureFiles, String), SecureError> {
    let files = SecureFiles::in_data_dir(data_dir);
    if !files.dir.exists() {
        let staging = SecureFiles {
            dir: data_dir.join("secure.new"),
        };
        if staging.dir.exists() {
            std::fs::remove_dir_all(&staging.dir).map_err(io_error("remove", &staging.dir))?;
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging.dir)
            .map_err(io_error("create", &staging.dir))?;
        make_material(&staging)?;
        std::fs::rename(&staging.dir, &files.dir).map_err(io_error("rename", &staging.dir))?;
    }
    for path in files.made_once() {
        if !path.exists() {
            return Err(SecureError::Incomplete {
                dir: files.dir.clone(),
                missing: path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into(),
            });
        }
    }
    let password = std::fs::read_to_string(files.admin_password())
        .map_err(io_error("read", &files.admin_password()))?
        .trim()
        .to_string();
    if password.is_empty() {
        return Err(SecureError::Incomplete {
            dir: files.dir.clone(),
            missing: "the password in admin.password".into(),
        });
    }
    Ok((files, password))
}

/// Writes the CA, the broker's and the client's keys and certificates, and
/// the password.
fn make_material(files: &SecureFiles) -> Result<(), SecureError> {
    let this_year = current_year();
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Tidemark dev CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = rcgen::date_time_ymd(this_year, 1, 1);
    ca_params.not_after = rcgen::date_time_ymd(this_year + CA_YEARS, 1, 1);
    let ca_key = KeyPair::generate()?;
    write_private(&files.ca_key(), &ca_key.serialize_pem())?;
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;
    write_public(&files.ca_cert(), &ca.pem())?;

    let (key, cert) = issue(&ca, "localhost", ExtendedKeyUsagePurpose::ServerAuth)?;
    write_private(&files.broker_keystore(), &format!("{key}{cert}"))?;
    let (key, cert) = issue(&ca, ADMIN_USER, ExtendedKeyUsagePurpose::ClientAuth)?;
    write_private(&files.client_key(), &key)?;
    write_public(&files.client_cert(), &cert)?;
    write_private(&files.client_keystore(), &format!("{key}{cert}"))?;

    write_private(
        &files.admin_password(),
        &format!("{}\n", random_password()?),
    )
}

/// A key and a certificate signed by `ca`, as PEM: for `localhost` and
/// `127.0.0.1`, with `common_name` as its subject.
fn issue(
    ca: &CertifiedIssuer<'static, KeyPair>,
    common_name: &str,
    usage: ExtendedKeyUsagePurpose,
) -> Result<(String, String), SecureError> {
    let this_year = current_year();
    let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![usage];
    params.not_before = rcgen::date_time_ymd(this_year, 1, 1);
    params.not_after = rcgen::date_time_ymd(this_year + CERTIFICATE_YEARS, 1, 1);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, ca)?;
    Ok((key.serialize_pem(), cert.pem()))
}

/// The year now, by the system clock (a certificate is valid from January
/// 1st of it, so a clock a few hours off does not matter).
fn current_year() -> i32 {
    const SECONDS_PER_YEAR: u64 = 31_556_952; // 365.2425 days
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    1970 + (seconds / SECONDS_PER_YEAR) as i32
}

fn random_password() -> Result<String, SecureError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; PASSWORD_BYTES];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| SecureError::Randomness)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A file only its owner may read (keys, the password, settings that hold it).
fn write_private(path: &Path, text: &str) -> Result<(), SecureError> {
    write_with_mode(path, text, 0o600)
}

fn write_public(path: &Path, text: &str) -> Result<(), SecureError> {
    write_with_mode(path, text, 0o644)
}

/// Replaces `path` with `text`: written beside it and renamed, with `mode`
/// from its creation on (never readable by others, not even for a moment).
fn write_with_mode(path: &Path, text: &str, mode: u32) -> Result<(), SecureError> {
    let partial = path.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&partial)
        .map_err(io_error("create", &partial))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_error("write", &partial))?;
    std::fs::rename(&partial, path).map_err(io_error("rename", &partial))
}

/// The keys the user gave: `--set` overrides, and a `--config` file's.
pub fn user_keys(config_file: Option<&Path>, overrides: &[String]) -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = overrides
        .iter()
        .filter_map(|o| o.split_once('='))
        .map(|(k, _)| k.trim().to_string())
        .collect();
    // The file was read and checked already (BrokerConfig::from_file).
    if let Some(text) = config_file.and_then(|p| std::fs::read_to_string(p).ok()) {
        if let Ok(table) = toml::from_str::<toml::Table>(&text) {
            keys.extend(table.keys().cloned());
        }
    }
    keys
}

/// The `key=value` settings `--secure` adds to the user's, given the keys
/// the user set, the `--listen` address and the files. A key the user set
/// wins, except where it would leave the broker without what `--secure`
/// promises (its own certificates, the authorizer, `admin` as a super user):
/// then a clash names the key.
pub fn secure_overrides(
    config: &BrokerConfig,
    user: &BTreeSet<String>,
    listen: &str,
    files: &SecureFiles,
) -> Result<Vec<String>, SecureError> {
    let clash = |message: String| Err(SecureError::Clash(message));
    if let Some(key) = user.iter().find(|k| {
        k.starts_with("ssl.keystore.")
            || k.starts_with("ssl.truststore.")
            || k.as_str() == "ssl.key.password"
    }) {
        return clash(format!(
            "{key} is set, but --secure serves its own certificates (in {}); to use yours, start without --secure and set the ssl.* keys as docs/security.md shows",
            files.dir.display()
        ));
    }
    let mut settings = Vec::new();
    if !user.contains("listeners") {
        let listeners = match listen.contains("://") {
            true => listen.to_string(),
            false => format!("SASL_SSL://{listen}"),
        };
        settings.push(format!("listeners={listeners}"));
    }
    settings.push("ssl.keystore.type=PEM".to_string());
    settings.push(format!(
        "ssl.keystore.location={}",
        files.broker_keystore().display()
    ));
    // So that `--set ssl.client.auth=required` needs nothing more.
    settings.push("ssl.truststore.type=PEM".to_string());
    settings.push(format!(
        "ssl.truststore.location={}",
        files.ca_cert().display()
    ));
    if !user.contains("sasl.enabled.mechanisms") {
        settings.push(format!("sasl.enabled.mechanisms={MECHANISMS}"));
    }
    if user.contains("authorizer.class.name") {
        if config.authorizer_class_name.trim().is_empty() {
            return clash("authorizer.class.name is empty, but --secure turns the authorizer on; leave the key out".into());
        }
    } else {
        settings.push(format!("authorizer.class.name={AUTHORIZER_CLASS}"));
    }
    let admin = format!("User:{ADMIN_USER}");
    if user.contains("super.users") {
        if !config.super_users.split(';').any(|u| u.trim() == admin) {
            return clash(format!(
                "super.users={} does not name {admin}, the super user --secure creates; add it",
                config.super_users
            ));
        }
    } else {
        settings.push(format!("super.users={admin}"));
    }
    Ok(settings)
}

/// `TIDEMARK_BOOTSTRAP_USER` for the admin, refused if the environment
/// already names another user or password.
pub fn bootstrap_user(password: &str) -> Result<String, SecureError> {
    let wanted = format!("{ADMIN_USER}:{password}");
    match std::env::var(BOOTSTRAP_USER_VARIABLE) {
        Ok(given) if given != wanted => Err(SecureError::Clash(format!(
            "{BOOTSTRAP_USER_VARIABLE} is set, but --secure creates the user {ADMIN_USER} with the password it keeps; unset it"
        ))),
        _ => Ok(wanted),
    }
}

/// What a client needs to reach the secure listener as `admin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    pub bootstrap: String,
    pub mechanism: &'static str,
    pub password: String,
    pub ca: PathBuf,
    /// The client's certificate and key, when the listener asks for one.
    pub certificate: Option<(PathBuf, PathBuf, PathBuf)>,
}

impl ClientSettings {
    /// The settings for the first SASL_SSL listener of `config`, with a
    /// mechanism it offers.
    pub fn for_config(
        config: &BrokerConfig,
        files: &SecureFiles,
        password: &str,
    ) -> Result<ClientSettings, SecureError> {
        let listeners = config.listeners()?;
        let listener = listeners
            .all()
            .iter()
            .find(|l| l.protocol == SecurityProtocol::SaslSsl)
            .ok_or_else(|| {
                SecureError::Clash(format!(
                    "listeners={} has no SASL_SSL listener for the secure clients",
                    config.listen
                ))
            })?;
        let offered = SaslSettings::for_listener(&config.security, listener)?.mechanisms;
        let mechanism = CLIENT_MECHANISMS
            .into_iter()
            .find(|m| offered.iter().any(|o| o.name() == *m))
            .ok_or_else(|| {
                SecureError::Clash(format!(
                    "listener {} offers none of {} for the admin to log in with",
                    listener.name,
                    CLIENT_MECHANISMS.join(", ")
                ))
            })?;
        let tls = TlsSettings::for_listener(&config.security, listener)?;
        let certificate = match tls.client_auth {
            ClientAuth::None => None,
            ClientAuth::Requested | ClientAuth::Required => Some((
                files.client_cert(),
                files.client_key(),
                files.client_keystore(),
            )),
        };
        Ok(ClientSettings {
            bootstrap: advertised(listener),
            mechanism,
            password: password.to_string(),
            ca: files.ca_cert(),
            certificate,
        })
    }

    /// librdkafka's properties (kcat -F, confluent-kafka, rdkafka).
    pub fn librdkafka(&self) -> Vec<(&'static str, String)> {
        let mut lines = vec![
            ("bootstrap.servers", self.bootstrap.clone()),
            ("security.protocol", "SASL_SSL".to_string()),
            ("sasl.mechanisms", self.mechanism.to_string()),
            ("sasl.username", ADMIN_USER.to_string()),
            ("sasl.password", self.password.clone()),
            ("ssl.ca.location", self.ca.display().to_string()),
        ];
        if let Some((cert, key, _)) = &self.certificate {
            lines.push(("ssl.certificate.location", cert.display().to_string()));
            lines.push(("ssl.key.location", key.display().to_string()));
        }
        lines
    }

    /// The Java client's properties (Kafka's tools take them with
    /// `--command-config`, `--producer.config`, `--consumer.config`).
    pub fn java(&self) -> Vec<(&'static str, String)> {
        let module = match self.mechanism {
            "PLAIN" => "org.apache.kafka.common.security.plain.PlainLoginModule",
            _ => "org.apache.kafka.common.security.scram.ScramLoginModule",
        };
        let mut lines = vec![
            ("bootstrap.servers", self.bootstrap.clone()),
            ("security.protocol", "SASL_SSL".to_string()),
            ("sasl.mechanism", self.mechanism.to_string()),
            (
                "sasl.jaas.config",
                format!(
                    "{module} required username=\"{ADMIN_USER}\" password=\"{}\";",
                    self.password
                ),
            ),
            ("ssl.truststore.type", "PEM".to_string()),
            ("ssl.truststore.location", self.ca.display().to_string()),
        ];
        if let Some((_, _, keystore)) = &self.certificate {
            lines.push(("ssl.keystore.type", "PEM".to_string()));
            lines.push(("ssl.keystore.location", keystore.display().to_string()));
        }
        lines
    }

    /// Writes both properties files (readable by their owner only: they
    /// hold the password). Rewritten on every start, so that they follow
    /// `--listen` and `--set`.
    pub fn write(&self, files: &SecureFiles) -> Result<(), SecureError> {
        write_private(
            &files.librdkafka_properties(),
            &properties(
                "librdkafka (kcat -F FILE, confluent-kafka), as admin",
                &self.librdkafka(),
            ),
        )?;
        write_private(
            &files.java_properties(),
            &properties(
                "Java clients and Kafka's tools (--command-config FILE), as admin",
                &self.java(),
            ),
        )
    }

    /// What `tidemark dev --secure` prints before it serves.
    pub fn banner(&self, files: &SecureFiles, config: &BrokerConfig) -> String {
        let mut text = format!(
            "tidemark: secure mode: TLS (CA {}), SASL ({}), ACLs on, super user User:{ADMIN_USER}\n",
            self.ca.display(),
            mechanisms_of(config),
        );
        if let Ok(listeners) = config.listeners() {
            for open in listeners
                .all()
                .iter()
                .filter(|l| l.protocol == SecurityProtocol::Plaintext)
            {
                text.push_str(&format!(
                    "tidemark: listener {} at {} is PLAINTEXT: its clients are User:ANONYMOUS and may do only what ACLs give them\n",
                    open.name, open.bind
                ));
            }
        }
        text.push_str("tidemark: client settings (librdkafka):\n");
        for (key, value) in self.librdkafka() {
            text.push_str(&format!("    {key}={value}\n"));
        }
        text.push_str(&format!(
            "tidemark: the same in {}; for Java clients and Kafka's tools: {}\n",
            files.librdkafka_properties().display(),
            files.java_properties().display()
        ));
        text
    }
}

fn mechanisms_of(config: &BrokerConfig) -> String {
    let Ok(listeners) = config.listeners() else {
        return String::new();
    };
    let names: BTreeSet<&str> = listeners
        .all()
        .iter()
        .filter(|l| l.protocol.uses_sasl())
        .filter_map(|l| SaslSettings::for_listener(&config.security, l).ok())
        .flat_map(|s| s.mechanisms.into_iter().map(|m| m.name()))
        .collect();
    names.into_iter().collect::<Vec<_>>().join(", ")
}

/// `host:port` as clients are told to connect.
fn advertised(listener: &Listener) -> String {
    match listener.advertised_host.contains(':') {
        true => format!(
            "[{}]:{}",
            listener.advertised_host, listener.advertised_port
        ),
        false => format!("{}:{}", listener.advertised_host, listener.advertised_port),
    }
}

/// A Java-style properties file. Values are written as they are: paths,
/// addresses, a hex password and the JAAS line need no escaping.
fn properties(title: &str, lines: &[(&'static str, String)]) -> String {
    let mut text = format!("# {title}. Written by tidemark dev --secure.\n");
    for (key, value) in lines {
        text.push_str(&format!("{key}={value}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn material_is_made_once_and_reused() {
        let data = dir();
        let (files, password) = ensure_material(data.path()).unwrap();
        assert_eq!(password.len(), PASSWORD_BYTES * 2);
        let ca = std::fs::read(files.ca_cert()).unwrap();
        let (_, again) = ensure_material(data.path()).unwrap();
        assert_eq!(again, password);
        assert_eq!(std::fs::read(files.ca_cert()).unwrap(), ca);
        use std::os::unix::fs::PermissionsExt;
        for private in [files.admin_password(), files.ca_key(), files.client_key()] {
            let mode = std::fs::metadata(&private).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", private.display());
        }
    }

    #[test]
    fn a_missing_file_is_named_not_remade() {
        let data = dir();
        let (files, _) = ensure_material(data.path()).unwrap();
        std::fs::remove_file(files.client_key()).unwrap();
        let error = ensure_material(data.path()).unwrap_err().to_string();
        assert!(error.contains("client.key"), "{error}");
    }

    fn secure_config(user: &[&str]) -> Result<(BrokerConfig, SecureFiles), SecureError> {
        let files = SecureFiles::in_data_dir(Path::new("/var/lib/tidemark"));
        let mut config = BrokerConfig::default();
        let user: Vec<String> = user.iter().map(|s| s.to_string()).collect();
        config.apply_overrides(&user)?;
        let keys = user_keys(None, &user);
        let ours = secure_overrides(&config, &keys, "127.0.0.1:9092", &files)?;
        config.apply_overrides(&ours)?;
        Ok((config, files))
    }

    #[test]
    fn the_defaults_are_one_sasl_ssl_listener_with_acls_and_scram() {
        let (config, files) = secure_config(&[]).unwrap();
        config.validate().unwrap();
        let listeners = config.listeners().unwrap();
        assert_eq!(listeners.all().len(), 1);
        assert_eq!(listeners.all()[0].protocol, SecurityProtocol::SaslSsl);
        let rules = config.authorizer.clone().unwrap();
        assert_eq!(rules.super_users, ["User:admin"]);
        let client = ClientSettings::for_config(&config, &files, "pw").unwrap();
        assert_eq!(client.bootstrap, "127.0.0.1:9092");
        assert_eq!(client.mechanism, "SCRAM-SHA-256");
        assert_eq!(client.certificate, None);
        let java = client.java();
        assert!(java.contains(&(
            "sasl.jaas.config",
            "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"pw\";".to_string()
        )));
    }

    #[test]
    fn the_users_keys_win() {
        let (config, files) = secure_config(&[
            "listeners=SASL_SSL://127.0.0.1:9300,PLAINTEXT://127.0.0.1:9301",
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "ssl.client.auth=required",
            "super.users=User:admin;User:ops",
        ])
        .unwrap();
        config.validate().unwrap();
        let client = ClientSettings::for_config(&config, &files, "pw").unwrap();
        assert_eq!(client.bootstrap, "127.0.0.1:9300");
        assert_eq!(client.mechanism, "SCRAM-SHA-512");
        assert!(client.certificate.is_some());
        assert!(client
            .librdkafka()
            .iter()
            .any(|(k, _)| *k == "ssl.certificate.location"));
        let banner = client.banner(&files, &config);
        assert!(banner.contains("PLAINTEXT"), "{banner}");
    }

    #[test]
    fn keys_that_undo_secure_clash_clearly() {
        for (key, named) in [
            (
                "ssl.keystore.location=/etc/mine.pem",
                "ssl.keystore.location",
            ),
            ("authorizer.class.name=", "authorizer.class.name"),
            ("super.users=User:bob", "super.users"),
        ] {
            let error = secure_config(&[key]).unwrap_err().to_string();
            assert!(error.contains(named), "{key}: {error}");
        }
        let (config, files) = secure_config(&["listeners=PLAINTEXT://127.0.0.1:9400"]).unwrap();
        let error = ClientSettings::for_config(&config, &files, "pw")
            .unwrap_err()
            .to_string();
        assert!(error.contains("no SASL_SSL listener"), "{error}");
    }
}
