//! One Kafka-protocol connection from a follower's shard to its leader
//! broker, on glommio's TcpStream: a request at a time, each bounded by a
//! timeout. Requests are encoded and responses decoded by the same
//! functions the blocking client uses (`wire::request_codec`).
//!
//! The connection is secured as the inter-broker listener asks
//! (`PeerSecurity`, built at start from `config::inter_broker`): TLS with
//! the listener's certificate as the client's, then a SASL login as this
//! broker's own user (SaslHandshake, SaslAuthenticate), as Kafka's
//! inter-broker client does. When the leader gives the login a lifetime
//! (KIP-368), the follower opens a new connection before it ends rather
//! than re-authenticating on this one.
use crate::security::sasl::SaslMechanism;
use crate::security::scram::server_nonce;
use crate::security::scram_client::{plain_message, ClientLogin, ScramClient};
use bytes::Bytes;
use futures::{AsyncRead, AsyncWrite};
use futures_lite::AsyncWriteExt;
use futures_rustls::client::TlsStream;
use futures_rustls::TlsConnector;
use glommio::net::TcpStream;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::{Request, StrBytes};
use rustls::pki_types::ServerName;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use thiserror::Error;
use wire::frame::{read_frame, FrameError};
use wire::request_codec::{decode_response, encode_request, CodecError};

/// Largest response a follower accepts from its leader.
const RESPONSE_BYTES_MAX: u32 = 256 << 20;
const SASL_HANDSHAKE_VERSION: i16 = 1;
const SASL_AUTHENTICATE_VERSION: i16 = 2;
/// A login with a lifetime is replaced when this share of it is left.
const RELOGIN_MARGIN_DIVISOR: u32 = 10;

#[derive(Debug, Error)]
pub enum PeerError {
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("{0} timed out")]
    Timeout(&'static str),
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    #[error("{0}")]
    Protocol(#[from] CodecError),
    #[error("the leader closed the connection")]
    Closed,
    #[error("TLS to {0}: {1}")]
    Tls(String, String),
    #[error("SASL login to {addr} as {user} failed: {reason}")]
    Login {
        addr: String,
        user: String,
        reason: String,
    },
}

/// The client side of the inter-broker listener's TLS, reloaded with its
/// certificates (`net::tls::TlsContext` is one).
pub trait ClientTlsSource: Send + Sync {
    /// The config for new connections; `None` when the listener has none.
    fn client_config(&self) -> Option<Arc<rustls::ClientConfig>>;
}

/// How followers secure their connections to leaders: built on the main
/// thread at start, shared by every shard.
#[derive(Default, Clone)]
pub struct PeerSecurity {
    pub tls: Option<Arc<dyn ClientTlsSource>>,
    pub login: Option<ClientLogin>,
}

impl std::fmt::Debug for PeerSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSecurity")
            .field("tls", &self.tls.is_some())
            .field("login", &self.login)
            .finish()
    }
}

/// The connection's byte stream: plain TCP or TLS over it.
enum PeerStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

// SAFETY: both variants only write into `buf`: glommio's stream receives
// into it, rustls' client stream copies its plaintext into it.
unsafe impl wire::frame::WritesOnly for PeerStream {}

impl AsyncRead for PeerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            PeerStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            PeerStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            PeerStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            PeerStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            PeerStream::Plain(s) => Pin::new(s).poll_flush(cx),
            PeerStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            PeerStream::Plain(s) => Pin::new(s).poll_close(cx),
            PeerStream::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

pub struct PeerConnection {
    stream: PeerStream,
    pub addr: String,
    client_id: String,
    correlation_id: i32,
    /// When the login should be replaced by a new connection.
    relogin_at: Option<Instant>,
}

/// `future`, or `None` if it takes longer than `limit`.
pub async fn within<T>(limit: Duration, future: impl Future<Output = T>) -> Option<T> {
    let timer = glommio::timer::sleep(limit);
    match futures::future::select(Box::pin(future), Box::pin(timer)).await {
        futures::future::Either::Left((value, _)) => Some(value),
        futures::future::Either::Right(_) => None,
    }
}

impl PeerConnection {
    /// Connects to `addr` (the leader's inter-broker `host:port`), then
    /// secures the connection as `security` asks; each step within `limit`.
    pub async fn connect(
        addr: &str,
        local_id: model::BrokerId,
        security: &PeerSecurity,
        limit: Duration,
    ) -> Result<Self, PeerError> {
        let tcp = within(limit, TcpStream::connect(addr))
            .await
            .ok_or(PeerError::Timeout("connect"))?
            .map_err(|e| {
                PeerError::Connect(addr.to_string(), std::io::Error::other(e.to_string()))
            })?;
        let _ = tcp.set_nodelay(true);
        let stream = match &security.tls {
            None => PeerStream::Plain(tcp),
            Some(source) => PeerStream::Tls(Box::new(
                tls_handshake(addr, tcp, source.as_ref(), limit).await?,
            )),
        };
        let mut connection = PeerConnection {
            stream,
            addr: addr.to_string(),
            client_id: format!("tidemark-replica-{local_id}"),
            correlation_id: 0,
            relogin_at: None,
        };
        if let Some(login) = &security.login {
            connection.log_in(login, limit).await?;
        }
        Ok(connection)
    }

    /// Whether the leader's login lifetime is nearly over: open a new
    /// connection before it closes this one.
    pub fn login_expiring(&self) -> bool {
        self.relogin_at.is_some_and(|at| Instant::now() >= at)
    }

    /// Sends `request` at `version` and waits for its response.
    pub async fn call<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        limit: Duration,
    ) -> Result<R::Response, PeerError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let id = self.correlation_id;
        let frame = encode_request(request, version, id, &self.client_id)?;
        let exchange = async {
            self.stream.write_all(&frame).await?;
            let body = read_frame(&mut self.stream, RESPONSE_BYTES_MAX)
                .await?
                .ok_or(PeerError::Closed)?;
            Ok::<_, PeerError>(body)
        };
        let body = within(limit, exchange)
            .await
            .ok_or(PeerError::Timeout("request"))??;
        Ok(decode_response::<R>(body.freeze(), version, id)?)
    }

    /// Logs in as `login` (Kafka's SASL exchange: SaslHandshake v1, then
    /// SaslAuthenticate messages until the mechanism is done).
    async fn log_in(&mut self, login: &ClientLogin, limit: Duration) -> Result<(), PeerError> {
        let addr = self.addr.clone();
        let refused = |reason: String| PeerError::Login {
            addr: addr.clone(),
            user: login.username.clone(),
            reason,
        };
        let handshake = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(login.mechanism.name()));
        let offered = self.call(&handshake, SASL_HANDSHAKE_VERSION, limit).await?;
        if offered.error_code != 0 {
            let names: Vec<_> = offered.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(refused(format!(
                "the leader does not offer {} (error {}; it offers {})",
                login.mechanism.name(),
                offered.error_code,
                names.join(", ")
            )));
        }
        let lifetime_ms = match login.mechanism {
            SaslMechanism::Plain => {
                self.authenticate(plain_message(login), login, limit)
                    .await?
                    .1
            }
            SaslMechanism::Scram(mechanism) => {
                let nonce =
                    server_nonce().ok_or_else(|| refused("no randomness for a nonce".into()))?;
                let mut scram =
                    ScramClient::new(mechanism, &login.username, &login.password, &nonce);
                let (server_first, _) = self
                    .authenticate(scram.client_first(), login, limit)
                    .await?;
                let client_final = scram
                    .client_final(&server_first)
                    .map_err(|e| refused(e.to_string()))?;
                let (server_final, lifetime_ms) =
                    self.authenticate(client_final, login, limit).await?;
                scram
                    .check_server_final(&server_final)
                    .map_err(|e| refused(format!("the leader's proof: {e}")))?;
                lifetime_ms
            }
            SaslMechanism::OAuthBearer => {
                return Err(refused("OAUTHBEARER between brokers is not built".into()))
            }
        };
        self.relogin_at = relogin_deadline(lifetime_ms);
        Ok(())
    }

    /// One SaslAuthenticate: the server's answer and the session lifetime
    /// it gives (0: none).
    async fn authenticate(
        &mut self,
        message: Vec<u8>,
        login: &ClientLogin,
        limit: Duration,
    ) -> Result<(Bytes, i64), PeerError> {
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(message));
        let answer = self
            .call(&request, SASL_AUTHENTICATE_VERSION, limit)
            .await?;
        if answer.error_code != 0 {
            return Err(PeerError::Login {
                addr: self.addr.clone(),
                user: login.username.clone(),
                reason: format!(
                    "error {}: {}",
                    answer.error_code,
                    answer.error_message.as_ref().map_or("", |m| m.as_str())
                ),
            });
        }
        Ok((answer.auth_bytes, answer.session_lifetime_ms))
    }
}

/// A login of `lifetime_ms` is replaced once nine tenths of it passed.
fn relogin_deadline(lifetime_ms: i64) -> Option<Instant> {
    let lifetime = Duration::from_millis(u64::try_from(lifetime_ms).ok().filter(|&ms| ms > 0)?);
    Instant::now().checked_add(lifetime - lifetime / RELOGIN_MARGIN_DIVISOR)
}

/// The client side of TLS to `addr`, checking the leader's certificate
/// against the name in `addr` (host or IP), as Kafka's `https` algorithm.
async fn tls_handshake(
    addr: &str,
    tcp: TcpStream,
    source: &dyn ClientTlsSource,
    limit: Duration,
) -> Result<TlsStream<TcpStream>, PeerError> {
    let tls_error = |message: String| PeerError::Tls(addr.to_string(), message);
    let config = source
        .client_config()
        .ok_or_else(|| {
            tls_error("the inter-broker listener has no truststore to check the leader's certificate with: set ssl.truststore.location".into())
        })?;
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| tls_error(format!("{host} is not a name a certificate can carry: {e}")))?;
    within(limit, TlsConnector::from(config).connect(name, tcp))
        .await
        .ok_or(PeerError::Timeout("TLS handshake"))?
        .map_err(|e| tls_error(e.to_string()))
}
