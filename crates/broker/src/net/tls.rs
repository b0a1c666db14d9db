//! TLS for a listener: the rustls server config built from its `ssl.*`
//! settings (PEM keystore and truststore, `ssl.client.auth`, protocol
//! versions), the handshake of one connection (bounded by a deadline, so a
//! silent client costs only its own connection), and the principal its
//! client certificate maps to. On the inter-broker listener it also holds
//! the client side Kafka's inter-broker client uses: the same keystore as
//! the client certificate, the same truststore to check the other broker,
//! which followers open their connections to their leaders with
//! (`replication::peer`).
//!
//! Certificates are reloaded without a restart: a watcher thread (not a
//! shard: it reads files) looks at the PEM files' size and modification
//! time every `RELOAD_CHECK` and, when they changed and still load, swaps
//! the config that new handshakes use. Connections already open keep theirs.
//! Built on the main thread at start; every shard reads the same context.
use crate::config::inter_broker::ClientTls;
use crate::config::tls::{ClientAuth, KeyStore, PemSource, TlsVersion};
use crate::config::{Listener, TlsSettings};
use crate::replication::peer::ClientTlsSource;
use crate::security::{Principal, PrincipalMappingError, SslPrincipalMapper};
use futures::future::{select, Either};
use futures::{AsyncRead, AsyncWrite};
use futures_rustls::server::TlsStream;
use futures_rustls::TlsAcceptor;
use glommio::net::TcpStream;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use thiserror::Error;

/// How often the watcher looks at the certificate files.
pub const RELOAD_CHECK: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {message}")]
    Pem { what: String, message: String },
    #[error("listener {listener}: {message}")]
    Config { listener: String, message: String },
    #[error(transparent)]
    Mapping(#[from] PrincipalMappingError),
}

/// Why a connection's handshake failed.
#[derive(Debug, Error)]
pub enum HandshakeError {
    #[error("the TLS handshake did not finish within {0:?}")]
    Timeout(Duration),
    #[error("TLS handshake failed: {0}")]
    Failed(std::io::Error),
    #[error(transparent)]
    Principal(#[from] PrincipalMappingError),
}

/// One TLS listener's config, shared by every shard.
pub struct TlsContext {
    listener: String,
    settings: TlsSettings,
    /// On the inter-broker listener: whether the client side checks the
    /// other broker's name (`ssl.endpoint.identification.algorithm`).
    client_hostname_check: Option<bool>,
    mapper: SslPrincipalMapper,
    current: RwLock<Loaded>,
}

struct Loaded {
    config: Arc<ServerConfig>,
    /// The client side, on the inter-broker listener.
    client: Option<Arc<ClientConfig>>,
    files: Vec<FileStamp>,
}

/// What the watcher compares to see a file change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    path: PathBuf,
    modified: Option<SystemTime>,
    len: u64,
}

impl TlsContext {
    /// Loads the listener's keystore and truststore.
    pub fn load(listener: &Listener, settings: TlsSettings) -> Result<Arc<TlsContext>, TlsError> {
        TlsContext::load_with_client(listener, settings, None)
    }

    /// Loads the inter-broker listener, with the client side `client` asks for.
    pub fn load_inter_broker(
        listener: &Listener,
        client: &ClientTls,
    ) -> Result<Arc<TlsContext>, TlsError> {
        TlsContext::load_with_client(
            listener,
            client.settings.clone(),
            Some(client.check_hostname),
        )
    }

    fn load_with_client(
        listener: &Listener,
        settings: TlsSettings,
        client_hostname_check: Option<bool>,
    ) -> Result<Arc<TlsContext>, TlsError> {
        let mapper = SslPrincipalMapper::parse(&settings.principal_mapping_rules)?;
        let loaded = load(&listener.name, &settings, client_hostname_check)?;
        Ok(Arc::new(TlsContext {
            listener: listener.name.clone(),
            settings,
            client_hostname_check,
            mapper,
            current: RwLock::new(loaded),
        }))
    }

    /// The acceptor new handshakes use.
    pub fn acceptor(&self) -> TlsAcceptor {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        TlsAcceptor::from(current.config.clone())
    }

    /// Runs the server side of the handshake within `deadline`, then maps
    /// the client certificate (if any) to the connection's principal:
    /// `User:ANONYMOUS` without one, as Kafka.
    pub async fn handshake(
        &self,
        stream: TcpStream,
        deadline: Duration,
    ) -> Result<(TlsConnection, Principal), HandshakeError> {
        let accept = self.acceptor().accept(stream);
        let timer = glommio::timer::sleep(deadline);
        let stream = match select(accept, Box::pin(timer)).await {
            Either::Left((Ok(stream), _)) => stream,
            Either::Left((Err(e), _)) => return Err(HandshakeError::Failed(e)),
            Either::Right(_) => return Err(HandshakeError::Timeout(deadline)),
        };
        let principal = match stream.get_ref().1.peer_certificates() {
            Some([leaf, ..]) => self.mapper.principal_of(leaf.as_ref())?,
            _ => Principal::anonymous(),
        };
        Ok((TlsConnection(stream), principal))
    }

    /// Reloads the config if a file it was built from changed. A change
    /// that does not load (a half-written file) keeps the old config and
    /// is tried again at the next check.
    fn reload_if_changed(&self) {
        let changed = {
            let current = self.current.read().unwrap_or_else(|p| p.into_inner());
            current.files.iter().any(|f| stamp(&f.path) != *f)
        };
        if !changed {
            return;
        }
        match load(&self.listener, &self.settings, self.client_hostname_check) {
            Ok(loaded) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = loaded;
                tracing::info!(listener = %self.listener, "reloaded TLS certificates");
            }
            Err(e) => {
                tracing::warn!(listener = %self.listener, error = %e, "changed TLS certificates do not load; keeping the old ones");
            }
        }
    }
}

impl ClientTlsSource for TlsContext {
    fn client_config(&self) -> Option<Arc<ClientConfig>> {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        current.client.clone()
    }
}

/// The server side of one TLS connection, after its handshake.
pub struct TlsConnection(TlsStream<TcpStream>);

// SAFETY: reading hands `buf` to rustls' plaintext reader, which copies
// into it and never reads it (futures-rustls `Stream::poll_read`).
unsafe impl wire::frame::WritesOnly for TlsConnection {}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

/// Starts the thread that reloads changed certificates of `contexts`.
pub fn watch_for_changes(contexts: Vec<Arc<TlsContext>>) -> std::io::Result<()> {
    if contexts.is_empty() {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("tls-reload".into())
        .spawn(move || loop {
            std::thread::sleep(RELOAD_CHECK);
            for context in &contexts {
                context.reload_if_changed();
            }
        })
        .map(|_| ())
}

fn load(
    listener: &str,
    settings: &TlsSettings,
    client_hostname_check: Option<bool>,
) -> Result<Loaded, TlsError> {
    let mut files = Vec::new();
    let (chain, key) = match &settings.keystore {
        KeyStore::File(path) => {
            let text = read(path, &mut files)?;
            (
                certificates(&text, path)?,
                private_key(&text, path, settings)?,
            )
        }
        KeyStore::Inline { key, chain } => {
            let what = Path::new("ssl.keystore.certificate.chain");
            (
                certificates(chain, what)?,
                private_key(key, Path::new("ssl.keystore.key"), settings)?,
            )
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = settings
        .versions
        .iter()
        .map(|v| match v {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        .collect();
    let config_error = |message: String| TlsError::Config {
        listener: listener.to_string(),
        message,
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| config_error(e.to_string()))?;
    let roots = match &settings.truststore {
        Some(source) => Some(Arc::new(trusted_roots(source, &mut files)?)),
        None => None,
    };
    let client = match (client_hostname_check, &roots) {
        (Some(check_hostname), Some(roots)) => Some(
            client_config(
                ClientSide {
                    provider: provider.clone(),
                    versions: &versions,
                    roots: roots.clone(),
                    check_hostname,
                },
                chain.clone(),
                key.clone_key(),
            )
            .map_err(config_error)?,
        ),
        _ => None,
    };
    let builder = match (roots, settings.client_auth) {
        (_, ClientAuth::None) | (None, _) => builder.with_no_client_auth(),
        (Some(roots), auth) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = match auth {
                ClientAuth::Requested => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            builder.with_client_cert_verifier(
                verifier.build().map_err(|e| config_error(e.to_string()))?,
            )
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| config_error(format!("the keystore's key and certificate: {e}")))?;
    Ok(Loaded {
        config: Arc::new(config),
        client,
        files,
    })
}

/// What the client side of the inter-broker listener is built from.
struct ClientSide<'a> {
    provider: Arc<rustls::crypto::CryptoProvider>,
    versions: &'a [&'static rustls::SupportedProtocolVersion],
    roots: Arc<RootCertStore>,
    check_hostname: bool,
}

/// The config a follower connects to its leader with: the listener's
/// certificate as the client's (for a leader that asks for one), the
/// leader's certificate checked against the truststore.
fn client_config(
    side: ClientSide<'_>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(side.provider.clone())
        .with_protocol_versions(side.versions)
        .map_err(|e| e.to_string())?;
    let builder = match side.check_hostname {
        true => builder.with_root_certificates(side.roots),
        false => {
            let inner = WebPkiServerVerifier::builder_with_provider(side.roots, side.provider)
                .build()
                .map_err(|e| e.to_string())?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(quorum::tls::AnyNameVerifier(inner)))
        }
    };
    let config = builder
        .with_client_auth_cert(chain, key)
        .map_err(|e| format!("the keystore's key and certificate as a client's: {e}"))?;
    Ok(Arc::new(config))
}

fn read(path: &Path, files: &mut Vec<FileStamp>) -> Result<String, TlsError> {
    let text = std::fs::read_to_string(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    files.push(stamp(path));
    Ok(text)
}

fn stamp(path: &Path) -> FileStamp {
    let meta = std::fs::metadata(path).ok();
    FileStamp {
        path: path.to_path_buf(),
        modified: meta.as_ref().and_then(|m| m.modified().ok()),
        len: meta.map_or(0, |m| m.len()),
    }
}

fn pem_error(what: &Path, message: impl ToString) -> TlsError {
    TlsError::Pem {
        what: what.display().to_string(),
        message: message.to_string(),
    }
}

/// The PEM readers are the quorum's (`quorum::tls::pem`), shared by both
/// sides of Tidemark's TLS; their errors are PEM errors here.
fn from_pem(e: quorum::tls::TlsError) -> TlsError {
    match e {
        quorum::tls::TlsError::Pem { what, message } => TlsError::Pem { what, message },
        other => TlsError::Pem {
            what: "PEM".into(),
            message: other.to_string(),
        },
    }
}

fn certificates(text: &str, what: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    quorum::tls::pem::certificates(text, what).map_err(from_pem)
}

/// The private key of a keystore: plain PEM (PKCS#8, PKCS#1 or SEC1), or
/// an ENCRYPTED PRIVATE KEY decrypted with `ssl.key.password`.
fn private_key(
    text: &str,
    what: &Path,
    settings: &TlsSettings,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    quorum::tls::pem::private_key(text, what, settings.key_password.as_deref()).map_err(from_pem)
}

fn trusted_roots(
    source: &PemSource,
    files: &mut Vec<FileStamp>,
) -> Result<RootCertStore, TlsError> {
    let (text, what) = match source {
        PemSource::File(path) => (read(path, files)?, path.clone()),
        PemSource::Inline(text) => (text.clone(), PathBuf::from("ssl.truststore.certificates")),
    };
    let mut roots = RootCertStore::empty();
    for cert in certificates(&text, &what)? {
        roots.add(cert).map_err(|e| pem_error(&what, e))?;
    }
    Ok(roots)
}
