//! The single-node quorum that `tidemark dev` runs inside the broker
//! process, so a newcomer gets a cluster of one (quorum, controller and
//! broker) with nothing else to start. It is an ordinary quorum node on its
//! own thread and tokio runtime, listening on a loopback port that is chosen
//! once and kept in its data dir (`<log.dirs>/__quorum/embedded-listen`), so
//! restarts find the same address.
//!
//! Loopback is not a boundary between local users, so the node has a secret
//! like any quorum: random on first start, kept owner-only in
//! `<log.dirs>/__quorum/embedded-secret` (or `TIDEMARK_QUORUM_SECRET` when
//! the environment gives one). Admin tools pass it the same way.
use super::config::{QuorumConfig, QuorumFile};
use std::path::Path;
use thiserror::Error;

/// The embedded node's data dir, under the broker's.
const QUORUM_DIR: &str = "__quorum";
/// The file that keeps the embedded node's address across restarts.
const LISTEN_FILE: &str = "embedded-listen";
/// The file that keeps the embedded node's secret, mode 0600.
pub const SECRET_FILE: &str = "embedded-secret";

#[derive(Debug, Error)]
pub enum EmbeddedError {
    #[error("embedded quorum data dir {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("embedded quorum config: {0}")]
    Config(String),
    #[error("cannot start the embedded quorum thread: {0}")]
    Thread(std::io::Error),
}

/// The embedded node as its broker reaches it.
#[derive(Debug, Clone)]
pub struct EmbeddedQuorum {
    /// `host:port` on loopback.
    pub addr: String,
    /// The secret every request must carry.
    pub secret: String,
}

/// Starts the embedded quorum node under `broker_data_dir`, with `secret`
/// or else the one kept in its data dir, and returns how brokers reach it.
/// The node runs until the process ends.
pub fn start_embedded_quorum(
    broker_data_dir: &Path,
    secret: Option<String>,
) -> Result<EmbeddedQuorum, EmbeddedError> {
    let dir = broker_data_dir.join(QUORUM_DIR);
    let io = |e| EmbeddedError::DataDir(dir.display().to_string(), e);
    std::fs::create_dir_all(&dir).map_err(io)?;
    let addr = listen_address(&dir).map_err(io)?;
    let secret = match secret {
        Some(secret) => secret,
        None => kept_secret(&dir).map_err(io)?,
    };
    let config = QuorumConfig::build(
        QuorumFile::default(),
        Some(1),
        Some(addr.clone()),
        Some(format!("1={addr}")),
        Some(dir.clone()),
    )
    .map_err(|e| EmbeddedError::Config(e.to_string()))?;
    let config = QuorumConfig {
        secret: Some(secret.clone()),
        ..config
    };
    std::thread::Builder::new()
        .name("embedded-quorum".to_string())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build();
            let result = match runtime {
                Ok(rt) => rt
                    .block_on(super::node::run(config, std::future::pending()))
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "the embedded quorum stopped");
            }
        })
        .map_err(EmbeddedError::Thread)?;
    Ok(EmbeddedQuorum { addr, secret })
}

/// The secret kept from the first start, or a new random one (256 bits from
/// the OS's generator, as hex) written owner-only. A kept file readable by
/// others is narrowed to the owner again.
fn kept_secret(dir: &Path) -> std::io::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = dir.join(SECRET_FILE);
    if let Ok(text) = std::fs::read_to_string(&file) {
        let secret = text.trim();
        if !secret.is_empty() {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
            return Ok(secret.to_string());
        }
    }
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let temporary = dir.join(format!("{SECRET_FILE}.new"));
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    out.write_all(secret.as_bytes())?;
    out.sync_all()?;
    std::fs::rename(&temporary, &file)?;
    Ok(secret)
}

/// Whether `broker_data_dir` already has an embedded quorum (so this is
/// not its first start).
pub fn embedded_quorum_exists(broker_data_dir: &Path) -> bool {
    broker_data_dir.join(QUORUM_DIR).join(LISTEN_FILE).exists()
}

/// The address kept from the first start, or a free loopback port now.
fn listen_address(dir: &Path) -> std::io::Result<String> {
    let file = dir.join(LISTEN_FILE);
    if let Ok(text) = std::fs::read_to_string(&file) {
        let addr = text.trim();
        if !addr.is_empty() {
            return Ok(addr.to_string());
        }
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    fsutil::write_file_atomically(&file, addr.as_bytes())?;
    Ok(addr)
}
