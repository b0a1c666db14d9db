//! TLS of the quorum protocol, with mutual authentication: the rustls
//! configs of a quorum node (server side, a client certificate required) and
//! of its clients (peer nodes, brokers' `QuorumClient`s, admin tools), built
//! from PEM files as Kafka names them (`ssl.keystore.location`: key and
//! chain in one file, `ssl.key.password` for an encrypted PKCS#8 key,
//! `ssl.truststore.location`: CA certificates); the handshakes, bounded by a
//! deadline; and the one stream type both plaintext and TLS connections are
//! used through.
//!
//! Certificates are rotated without a restart: before each handshake the
//! PEM files' size and modification time are compared with those they were
//! loaded from, and changed files that load replace the config (a change
//! that does not load, such as a half-written file, keeps the old one).
//! Connections already open keep theirs. Runs on the tokio runtime of the
//! quorum process, of a broker's quorum agent, or of an admin command.
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// How long a TLS handshake may take, either side.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// The PEM files of one side of the quorum's TLS, and how strictly the
/// other side's name is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The private key and the certificate chain, in one PEM file.
    pub keystore: PathBuf,
    /// Decrypts an `ENCRYPTED PRIVATE KEY` (PKCS#8) in the keystore.
    pub key_password: Option<String>,
    /// The CA certificates the other side's certificate must chain to.
    pub truststore: PathBuf,
    /// As a client: whether the server's certificate must name the host of
    /// the endpoint (Kafka's `ssl.endpoint.identification.algorithm=https`,
    /// its default); off only for an empty algorithm.
    pub verify_hostname: bool,
}

impl TlsFiles {
    /// Kafka's `ssl.endpoint.identification.algorithm`: `https` (the
    /// default, when `None`) checks the host name, an empty value does not.
    pub fn parse_identification(value: Option<&str>) -> Result<bool, String> {
        match value.map(str::trim) {
            None => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("https") => Ok(true),
            Some("") => Ok(false),
            Some(other) => Err(format!("{other}: expected https or an empty value")),
        }
    }
}

/// Kafka's `ssl.keystore.type` and `ssl.truststore.type`: only PEM is read.
pub fn check_store_type(key: &str, value: Option<&str>) -> Result<(), String> {
    match value.map(str::trim) {
        None => Ok(()),
        Some(kind) if kind.eq_ignore_ascii_case("PEM") => Ok(()),
        Some(kind) => Err(format!("{key}: {kind}: Tidemark reads PEM stores only")),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {message}")]
    Pem { what: String, message: String },
    #[error("TLS: {0}")]
    Config(String),
}

/// Why a connection could not be opened or accepted.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connecting to {0} timed out")]
    ConnectTimeout(String),
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr}: the TLS handshake did not finish within {timeout:?}")]
    HandshakeTimeout { addr: String, timeout: Duration },
    #[error("{addr}: TLS handshake failed: {source}")]
    Handshake {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}: the host is not a valid DNS name or IP address")]
    ServerName(String),
    #[error("{addr}: TLS certificates: {source}")]
    Certificates { addr: String, source: TlsError },
}

/// A connection of the quorum protocol: plaintext TCP or TLS over it.
pub trait Connection: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Connection for T {}

/// An open connection, whichever it is.
pub struct Stream(Box<dyn Connection>);

impl Stream {
    pub fn plain(tcp: TcpStream) -> Stream {
        Stream(Box::new(tcp))
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

/// Opens a connection to `endpoint` (`host:port`), within `timeout` for
/// TCP and `HANDSHAKE_TIMEOUT` for TLS when `tls` is given.
pub async fn connect(
    endpoint: &str,
    tls: Option<&ClientTls>,
    timeout: Duration,
) -> Result<Stream, ConnectError> {
    let tcp = tokio::time::timeout(timeout, TcpStream::connect(endpoint))
        .await
        .map_err(|_| ConnectError::ConnectTimeout(endpoint.to_string()))?
        .map_err(|source| ConnectError::Connect {
            addr: endpoint.to_string(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    match tls {
        None => Ok(Stream::plain(tcp)),
        Some(tls) => tls.handshake(endpoint, tcp).await,
    }
}

/// The files a config was loaded from, as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    path: PathBuf,
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> FileStamp {
    let meta = std::fs::metadata(path).ok();
    FileStamp {
        path: path.to_path_buf(),
        modified: meta.as_ref().and_then(|m| m.modified().ok()),
        len: meta.map_or(0, |m| m.len()),
    }
}

/// A config and the stamps of the files it came from; reloaded when they change.
struct Reloading<C> {
    files: TlsFiles,
    load: fn(&TlsFiles) -> Result<Arc<C>, TlsError>,
    current: Mutex<(Arc<C>, Vec<FileStamp>)>,
}

impl<C> Reloading<C> {
    fn new(
        files: &TlsFiles,
        load: fn(&TlsFiles) -> Result<Arc<C>, TlsError>,
    ) -> Result<Reloading<C>, TlsError> {
        // Stamped before reading: a change while loading is seen next time.
        let stamps = stamps(files);
        let config = load(files)?;
        Ok(Reloading {
            files: files.clone(),
            load,
            current: Mutex::new((config, stamps)),
        })
    }

    /// The config, reloaded first if a file changed and still loads.
    fn get(&self) -> Arc<C> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let now = stamps(&self.files);
        if now != current.1 {
            match (self.load)(&self.files) {
                Ok(config) => {
                    tracing::info!(keystore = %self.files.keystore.display(), "reloaded the quorum's TLS certificates");
                    *current = (config, now);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "changed quorum TLS certificates do not load; keeping the old ones");
                    current.1 = now;
                }
            }
        }
        current.0.clone()
    }
}

fn stamps(files: &TlsFiles) -> Vec<FileStamp> {
    vec![stamp(&files.keystore), stamp(&files.truststore)]
}

/// The server side of a TLS quorum node: TLS 1.2 and 1.3, and a client
/// certificate that chains to the truststore is required.
pub struct ServerTls(Reloading<ServerConfig>);

impl ServerTls {
    pub fn load(files: &TlsFiles) -> Result<ServerTls, TlsError> {
        Ok(ServerTls(Reloading::new(files, server_config)?))
    }

    /// Runs the server side of the handshake within `HANDSHAKE_TIMEOUT`.
    pub async fn accept(&self, tcp: TcpStream, peer: &str) -> Result<Stream, ConnectError> {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.0.get());
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => Ok(Stream(Box::new(stream))),
            Ok(Err(source)) => Err(ConnectError::Handshake {
                addr: peer.to_string(),
                source,
            }),
            Err(_) => Err(ConnectError::HandshakeTimeout {
                addr: peer.to_string(),
                timeout: HANDSHAKE_TIMEOUT,
            }),
        }
    }
}

/// The client side: presents the keystore's certificate and checks the
/// server's against the truststore (and its name, unless turned off).
/// Cheap to clone: clones share the config and its reloads.
#[derive(Clone)]
pub struct ClientTls(Arc<Reloading<ClientConfig>>);

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("keystore", &self.0.files.keystore)
            .field("truststore", &self.0.files.truststore)
            .field("verify_hostname", &self.0.files.verify_hostname)
            .finish()
    }
}

impl ClientTls {
    pub fn load(files: &TlsFiles) -> Result<ClientTls, TlsError> {
        Ok(ClientTls(Arc::new(Reloading::new(files, client_config)?)))
    }

    /// Runs the client side of the handshake with `endpoint`'s host as the
    /// server name, within `HANDSHAKE_TIMEOUT`.
    async fn handshake(&self, endpoint: &str, tcp: TcpStream) -> Result<Stream, ConnectError> {
        let name = server_name(endpoint)?;
        let connector = tokio_rustls::TlsConnector::from(self.0.get());
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, tcp)).await {
            Ok(Ok(stream)) => Ok(Stream(Box::new(stream))),
            Ok(Err(source)) => Err(ConnectError::Handshake {
                addr: endpoint.to_string(),
                source,
            }),
            Err(_) => Err(ConnectError::HandshakeTimeout {
                addr: endpoint.to_string(),
                timeout: HANDSHAKE_TIMEOUT,
            }),
        }
    }
}

/// The host of `host:port` (`[v6]:port` too) as a TLS server name: a DNS
/// name or an IP address.
fn server_name(endpoint: &str) -> Result<ServerName<'static>, ConnectError> {
    let host = match endpoint.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => endpoint,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|_| ConnectError::ServerName(endpoint.to_string()))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Kafka's default `ssl.enabled.protocols`: TLSv1.2 and TLSv1.3.
const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS12, &rustls::version::TLS13];

fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let (chain, key) = keystore(files)?;
    let roots = Arc::new(trusted_roots(&files.truststore)?);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(format!("the keystore's key and certificate: {e}")))?;
    Ok(Arc::new(config))
}

fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, TlsError> {
    let (chain, key) = keystore(files)?;
    let roots = Arc::new(trusted_roots(&files.truststore)?);
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match files.verify_hostname {
        true => builder.with_webpki_verifier(webpki),
        false => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyNameVerifier(webpki))),
    };
    let config = builder
        .with_client_auth_cert(chain, key)
        .map_err(|e| TlsError::Config(format!("the keystore's key and certificate: {e}")))?;
    Ok(Arc::new(config))
}

/// Checks the server's chain as webpki does but accepts any name on it
/// (`ssl.endpoint.identification.algorithm=`, empty, as in Kafka). webpki
/// checks the name after the chain, so a name error means the chain passed.
/// The broker's followers use it too.
#[derive(Debug)]
pub struct AnyNameVerifier(pub Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyNameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let checked =
            self.0
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        match checked {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

type Keystore = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn keystore(files: &TlsFiles) -> Result<Keystore, TlsError> {
    let text = read(&files.keystore)?;
    let what = &files.keystore;
    let chain = pem::certificates(&text, what)?;
    let key = pem::private_key(&text, what, files.key_password.as_deref())?;
    Ok((chain, key))
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn trusted_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in pem::certificates(&read(path)?, path)? {
        roots.add(cert).map_err(|e| pem::error(path, e))?;
    }
    Ok(roots)
}

/// PEM keystores and truststores as Kafka's `ssl.keystore.type=PEM` holds
/// them. Pure; the broker's listeners read their PEM through these too.
pub mod pem {
    use super::TlsError;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::path::Path;

    pub fn error(what: &Path, message: impl ToString) -> TlsError {
        TlsError::Pem {
            what: what.display().to_string(),
            message: message.to_string(),
        }
    }

    /// Every CERTIFICATE of `text` (at least one), in order.
    pub fn certificates(text: &str, what: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(text.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| error(what, e))?;
        if chain.is_empty() {
            return Err(error(what, "holds no CERTIFICATE"));
        }
        Ok(chain)
    }

    /// The private key of a keystore: plain PEM (PKCS#8, PKCS#1 or SEC1),
    /// or an ENCRYPTED PRIVATE KEY decrypted with `password`
    /// (`ssl.key.password`).
    pub fn private_key(
        text: &str,
        what: &Path,
        password: Option<&str>,
    ) -> Result<PrivateKeyDer<'static>, TlsError> {
        if let Some(block) = block(text, "ENCRYPTED PRIVATE KEY") {
            let password = password
                .ok_or_else(|| error(what, "the key is encrypted: set ssl.key.password"))?;
            let (_, document) =
                pkcs8::SecretDocument::from_pem(block).map_err(|e| error(what, e))?;
            let encrypted = pkcs8::EncryptedPrivateKeyInfoRef::try_from(document.as_bytes())
                .map_err(|e| error(what, e))?;
            let plain = encrypted
                .decrypt(password)
                .map_err(|_| error(what, "cannot decrypt the key with ssl.key.password"))?;
            return Ok(PrivateKeyDer::Pkcs8(plain.as_bytes().to_vec().into()));
        }
        PrivateKeyDer::from_pem_slice(text.as_bytes())
            .map_err(|e| error(what, format!("no private key: {e}")))
    }

    /// The first `-----BEGIN <label>-----` block of `text`, with its markers.
    fn block<'a>(text: &'a str, label: &str) -> Option<&'a str> {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        let start = text.find(&begin)?;
        let stop = text[start..].find(&end)? + start + end.len();
        Some(&text[start..stop])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A CA in `dir`, and a function issuing keystores it signs.
    struct TestCa {
        issuer: CertifiedIssuer<'static, KeyPair>,
        pem: PathBuf,
    }

    impl TestCa {
        fn new(dir: &Path, name: &str) -> TestCa {
            let mut params = CertificateParams::default();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let issuer =
                CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
            let pem = dir.join(format!("{name}.pem"));
            std::fs::write(&pem, issuer.pem()).unwrap();
            TestCa { issuer, pem }
        }

        /// Keystore files for `names`, trusting `trust`'s CA.
        fn files(&self, dir: &Path, file: &str, names: &[&str], trust: &TestCa) -> TlsFiles {
            let params =
                CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                    .unwrap();
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &self.issuer).unwrap();
            let keystore = dir.join(format!("{file}.pem"));
            std::fs::write(&keystore, format!("{}{}", key.serialize_pem(), cert.pem())).unwrap();
            TlsFiles {
                keystore,
                key_password: None,
                truststore: trust.pem.clone(),
                verify_hostname: true,
            }
        }
    }

    /// Serves one connection with `server`: echoes a byte after the
    /// handshake; returns whether the handshake passed.
    async fn serve_once(server: ServerTls) -> (String, tokio::task::JoinHandle<bool>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move {
            let (tcp, peer) = listener.accept().await.unwrap();
            match server.accept(tcp, &peer.to_string()).await {
                Ok(mut stream) => {
                    let mut byte = [0u8];
                    if stream.read_exact(&mut byte).await.is_ok() {
                        let _ = stream.write_all(&byte).await;
                        let _ = stream.flush().await;
                    }
                    true
                }
                Err(_) => false,
            }
        });
        (addr, task)
    }

    /// Connects with `client` (or plaintext) and tries one echo.
    async fn echo(addr: &str, client: Option<&ClientTls>) -> bool {
        let Ok(mut stream) = connect(addr, client, Duration::from_secs(2)).await else {
            return false;
        };
        let mut byte = [0u8];
        stream.write_all(b"x").await.is_ok()
            && stream.flush().await.is_ok()
            && stream.read_exact(&mut byte).await.is_ok()
            && &byte == b"x"
    }

    #[tokio::test]
    async fn only_certificates_of_the_trusted_ca_pass_the_handshake() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, other) = (
            TestCa::new(dir.path(), "ca"),
            TestCa::new(dir.path(), "other"),
        );
        let names = ["localhost", "127.0.0.1"];
        let server_files = ca.files(dir.path(), "node", &names, &ca);
        let good = ClientTls::load(&ca.files(dir.path(), "broker", &names, &ca)).unwrap();
        let stranger = ClientTls::load(&other.files(dir.path(), "stranger", &names, &ca)).unwrap();
        let cases: [(&str, Option<&ClientTls>, bool); 3] = [
            ("a certificate of the trusted CA", Some(&good), true),
            ("a certificate of another CA", Some(&stranger), false),
            ("plaintext", None, false),
        ];
        for (what, client, passes) in cases {
            let (addr, server) = serve_once(ServerTls::load(&server_files).unwrap()).await;
            let echoed = echo(&addr, client).await;
            assert_eq!(server.await.unwrap(), passes, "{what}: server handshake");
            assert_eq!(echoed, passes, "{what}: echo");
        }
    }

    #[tokio::test]
    async fn the_server_certificate_must_name_the_endpoint_host_unless_turned_off() {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new(dir.path(), "ca");
        let server_files = ca.files(dir.path(), "node", &["quorum-9.example"], &ca);
        let mut client_files = ca.files(dir.path(), "broker", &["localhost"], &ca);
        let strict = ClientTls::load(&client_files).unwrap();
        let (addr, server) = serve_once(ServerTls::load(&server_files).unwrap()).await;
        assert!(
            !echo(&addr, Some(&strict)).await,
            "127.0.0.1 is not quorum-9.example"
        );
        assert!(!server.await.unwrap());
        client_files.verify_hostname = false;
        let lax = ClientTls::load(&client_files).unwrap();
        let (addr, server) = serve_once(ServerTls::load(&server_files).unwrap()).await;
        assert!(echo(&addr, Some(&lax)).await, "the chain alone is checked");
        assert!(server.await.unwrap());
    }

    #[test]
    fn a_missing_or_empty_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new(dir.path(), "ca");
        let mut files = ca.files(dir.path(), "node", &["localhost"], &ca);
        files.truststore = dir.path().join("absent.pem");
        let err = ClientTls::load(&files).unwrap_err().to_string();
        assert!(err.contains("absent.pem"), "{err}");
        std::fs::write(&files.truststore, "").unwrap();
        let err = ServerTls::load(&files).err().unwrap().to_string();
        assert!(err.contains("holds no CERTIFICATE"), "{err}");
    }

    #[test]
    fn server_names_come_from_the_endpoint_host() {
        assert!(matches!(
            server_name("quorum-0.quorum.kafka.svc:9093").unwrap(),
            ServerName::DnsName(_)
        ));
        assert!(matches!(
            server_name("127.0.0.1:9093").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]:9093").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(server_name("bad host:1").is_err());
    }

    #[test]
    fn only_pem_stores_and_https_identification_are_accepted() {
        assert!(check_store_type("ssl.keystore.type", Some("PEM")).is_ok());
        assert!(check_store_type("ssl.keystore.type", None).is_ok());
        assert!(check_store_type("ssl.truststore.type", Some("JKS")).is_err());
        assert_eq!(TlsFiles::parse_identification(None), Ok(true));
        assert_eq!(TlsFiles::parse_identification(Some("HTTPS")), Ok(true));
        assert_eq!(TlsFiles::parse_identification(Some("")), Ok(false));
        assert!(TlsFiles::parse_identification(Some("none")).is_err());
    }
}
