//! The single-node quorum that `tidemark dev` runs inside the broker
//! process, so a newcomer gets a cluster of one (quorum, controller and
//! broker) with nothing else to start. It is an ordinary quorum node on its
//! own thread and tokio runtime, listening on a loopback port that is chosen
//! once and kept in its data dir (`<log.dirs>/__quorum/embedded-listen`), so
//! restarts find the same address.
use super::config::{QuorumConfig, QuorumFile};
use std::path::Path;
use thiserror::Error;

/// The embedded node's data dir, under the broker's.
const QUORUM_DIR: &str = "__quorum";
/// The file that keeps the embedded node's address across restarts.
const LISTEN_FILE: &str = "embedded-listen";

#[derive(Debug, Error)]
pub enum EmbeddedError {
    #[error("embedded quorum data dir {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("embedded quorum config: {0}")]
    Config(String),
    #[error("cannot start the embedded quorum thread: {0}")]
    Thread(std::io::Error),
}

/// Starts the embedded quorum node under `broker_data_dir` and returns the
/// `host:port` brokers reach it on. The node runs until the process ends.
pub fn start_embedded_quorum(broker_data_dir: &Path) -> Result<String, EmbeddedError> {
    let dir = broker_data_dir.join(QUORUM_DIR);
    let io = |e| EmbeddedError::DataDir(dir.display().to_string(), e);
    std::fs::create_dir_all(&dir).map_err(io)?;
    let addr = listen_address(&dir).map_err(io)?;
    let config = QuorumConfig::build(
        QuorumFile::default(),
        Some(1),
        Some(addr.clone()),
        Some(format!("1={addr}")),
        Some(dir.clone()),
    )
    .map_err(|e| EmbeddedError::Config(e.to_string()))?;
    // The embedded node takes no secret: it listens on loopback only.
    let config = QuorumConfig {
        secret: None,
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
    Ok(addr)
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
    crate::storage::write_file_atomically(&file, addr.as_bytes())?;
    Ok(addr)
}
