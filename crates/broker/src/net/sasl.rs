//! SASL authentication of a connection on a SASL_PLAINTEXT or SASL_SSL
//! listener, before its request pipeline starts: ApiVersions as often as
//! the client likes, then SaslHandshake (v1: the tokens travel in
//! SaslAuthenticate requests; v0: as bare length-prefixed frames, Kafka's
//! oldest form), then the mechanism's rounds. Requests are read one at a
//! time (clients do not pipeline while authenticating), so nothing is read
//! past the last SASL frame and the pipeline takes the stream as it is.
//!
//! Refusals, as Kafka answers them: an unknown mechanism gets
//! UNSUPPORTED_SASL_MECHANISM with the enabled list, SaslAuthenticate before
//! a handshake ILLEGAL_SASL_STATE, bad credentials SASL_AUTHENTICATION_FAILED
//! after `connection.failed.authentication.delay.ms`; any other request, a
//! bad frame or a silence longer than `socket.request.read.timeout.ms`
//! closes the connection. Each costs only that connection. Runs on the
//! connection's shard.
use super::connection::Stream;
use super::oauth::TokenValidator;
use crate::broker::scram_users::{ListenerCredentials, ViewCredentials};
use crate::broker::{decode_request, DecodedRequest, RequestBody};
use crate::config::tls::SaslSettings;
use crate::security::sasl::{SaslExchange, SaslMechanism, SaslStep, TokenCheck};
use crate::security::scram::SaslError;
use crate::security::Principal;
use crate::shard::Shard;
use bytes::{Bytes, BytesMut};
use futures::future::{select, Either};
use futures::io::AsyncWriteExt;
use kafka_protocol::messages::{ApiKey, SaslAuthenticateResponse, SaslHandshakeResponse};
use kafka_protocol::protocol::{Encodable, StrBytes};
use std::rc::Rc;
use std::time::Duration;
use thiserror::Error;
use wire::frame::{encode_response, read_frame, FrameError};
use wire::ResponseError;

/// SASL tokens are small; a larger frame before authentication closes the
/// connection (an unauthenticated client cannot make the broker buffer
/// 100 MiB).
const SASL_FRAME_BYTES_MAX: u32 = 64 << 10;

/// Why a connection did not authenticate.
#[derive(Debug, Error)]
pub enum AuthenticationError {
    #[error("no frame within {0:?} while authenticating")]
    Timeout(Duration),
    #[error("the client closed the connection while authenticating")]
    Closed,
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("request {0:?} is not expected before authentication")]
    Unexpected(ApiKey),
    #[error("malformed request while authenticating: {0}")]
    Malformed(String),
    #[error("mechanism {0} is not enabled")]
    UnsupportedMechanism(String),
    #[error("SaslAuthenticate before SaslHandshake")]
    IllegalState,
    #[error("{mechanism}: {error}")]
    Failed {
        mechanism: &'static str,
        error: SaslError,
    },
}

/// Where the exchange stands.
enum Phase {
    /// No handshake yet.
    Handshake,
    /// After SaslHandshake v1: tokens arrive in SaslAuthenticate requests.
    Authenticate(SaslMechanism, SaslExchange),
    /// After SaslHandshake v0: tokens arrive as bare frames.
    RawTokens(SaslMechanism, SaslExchange),
}

/// A client that logged in.
pub struct Authenticated {
    /// `User:<name>`.
    pub principal: Principal,
    pub mechanism: SaslMechanism,
    /// Whether its session expires after `connections.max.reauth.ms`:
    /// not for SaslHandshake v0 clients, which cannot re-authenticate.
    pub expires: bool,
    /// How long its credential has left, when it ends (a token).
    pub credential_left: Option<Duration>,
}

/// Authenticates the client on `stream`.
pub async fn authenticate<S: Stream>(
    shard: &Rc<Shard>,
    stream: &mut S,
    settings: &SaslSettings,
    tokens: Option<&TokenValidator>,
) -> Result<Authenticated, AuthenticationError> {
    let wait = Duration::from_millis(shard.config.connection_settings().frame_timeout_ms);
    let mut phase = Phase::Handshake;
    loop {
        let frame = next_frame(stream, wait).await?;
        phase = match phase {
            Phase::RawTokens(mechanism, mut exchange) => {
                match step(shard, &mut exchange, tokens, &frame) {
                    Ok(SaslStep::Continue(token)) => {
                        write_raw(stream, &token).await?;
                        Phase::RawTokens(mechanism, exchange)
                    }
                    Ok(SaslStep::Done { answer, user, .. }) => {
                        write_raw(stream, &answer).await?;
                        return Ok(Authenticated {
                            principal: Principal::user(user),
                            mechanism,
                            expires: false,
                            credential_left: None,
                        });
                    }
                    Err(error) => {
                        // v0 has no error frame: the connection just closes.
                        delay_failure(shard).await;
                        return Err(AuthenticationError::Failed {
                            mechanism: mechanism.name(),
                            error,
                        });
                    }
                }
            }
            phase => match request_step(shard, stream, settings, tokens, phase, frame).await? {
                Ok(phase) => phase,
                Err(authenticated) => return Ok(authenticated),
            },
        };
    }
}

/// Handles one Kafka request while authenticating: the next phase, or the
/// principal once authenticated.
async fn request_step<S: Stream>(
    shard: &Rc<Shard>,
    stream: &mut S,
    settings: &SaslSettings,
    tokens: Option<&TokenValidator>,
    phase: Phase,
    frame: BytesMut,
) -> Result<Result<Phase, Authenticated>, AuthenticationError> {
    let decoded = decode_request(frame.freeze())
        .map_err(|e| AuthenticationError::Malformed(e.to_string()))?;
    let (api_key, version, correlation_id, body) = match decoded {
        DecodedRequest::UnsupportedApiVersions { correlation_id } => {
            let body =
                crate::broker::api_versions_response(ResponseError::UnsupportedVersion.code());
            write_response(stream, ApiKey::ApiVersions, 0, correlation_id, &body).await?;
            return Ok(Ok(phase));
        }
        DecodedRequest::Request {
            api_key,
            version,
            header,
            body,
        } => (api_key, version, header.correlation_id, body),
    };
    match (phase, body) {
        (phase, RequestBody::ApiVersions) => {
            let body = crate::broker::api_versions_response(0);
            write_response(stream, api_key, version, correlation_id, &body).await?;
            Ok(Ok(phase))
        }
        (Phase::Handshake, RequestBody::SaslHandshake(request)) => {
            let name = request.mechanism.to_string();
            let enabled: Vec<StrBytes> = settings
                .mechanisms
                .iter()
                .map(|m| StrBytes::from_static_str(m.name()))
                .collect();
            let chosen = SaslMechanism::parse(&name).filter(|m| settings.mechanisms.contains(m));
            let Some(mechanism) = chosen else {
                let body = SaslHandshakeResponse::default()
                    .with_error_code(ResponseError::UnsupportedSaslMechanism.code())
                    .with_mechanisms(enabled);
                write_response(stream, api_key, version, correlation_id, &body).await?;
                return Err(AuthenticationError::UnsupportedMechanism(name));
            };
            let body = SaslHandshakeResponse::default().with_mechanisms(enabled);
            write_response(stream, api_key, version, correlation_id, &body).await?;
            let exchange = SaslExchange::start(mechanism);
            Ok(Ok(match version {
                0 => Phase::RawTokens(mechanism, exchange),
                _ => Phase::Authenticate(mechanism, exchange),
            }))
        }
        (Phase::Authenticate(mechanism, mut exchange), RequestBody::SaslAuthenticate(request)) => {
            match step(shard, &mut exchange, tokens, &request.auth_bytes) {
                Ok(SaslStep::Continue(token)) => {
                    let body =
                        SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(token));
                    write_response(stream, api_key, version, correlation_id, &body).await?;
                    Ok(Ok(Phase::Authenticate(mechanism, exchange)))
                }
                Ok(SaslStep::Done {
                    answer,
                    user,
                    credential_expires_at_s,
                }) => {
                    let mut body =
                        SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(answer));
                    let credential_left = crate::security::credential_left(
                        credential_expires_at_s,
                        crate::broker::scram_users::unix_now_s(),
                    );
                    // v1 carries the session lifetime (KIP-368).
                    if version >= 1 {
                        body.session_lifetime_ms = crate::security::lifetime_ms(
                            crate::security::login_lifetime(reauth_max(shard), credential_left),
                        );
                    }
                    write_response(stream, api_key, version, correlation_id, &body).await?;
                    Ok(Err(Authenticated {
                        principal: Principal::user(user),
                        mechanism,
                        expires: version >= 1,
                        credential_left,
                    }))
                }
                Err(error) => {
                    delay_failure(shard).await;
                    let message = format!(
                        "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
                        mechanism.name()
                    );
                    let body = SaslAuthenticateResponse::default()
                        .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                        .with_error_message(Some(StrBytes::from_string(message)));
                    write_response(stream, api_key, version, correlation_id, &body).await?;
                    Err(AuthenticationError::Failed {
                        mechanism: mechanism.name(),
                        error,
                    })
                }
            }
        }
        (_, RequestBody::SaslAuthenticate(_))
        | (Phase::Authenticate(..), RequestBody::SaslHandshake(_)) => {
            let body = SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code())
                .with_error_message(Some(StrBytes::from_static_str(
                    "Unexpected SASL request in this state",
                )));
            if api_key == ApiKey::SaslHandshake {
                let body = SaslHandshakeResponse::default()
                    .with_error_code(ResponseError::IllegalSaslState.code());
                write_response(stream, api_key, version, correlation_id, &body).await?;
            } else {
                write_response(stream, api_key, version, correlation_id, &body).await?;
            }
            Err(AuthenticationError::IllegalState)
        }
        _ => Err(AuthenticationError::Unexpected(api_key)),
    }
}

fn step(
    shard: &Rc<Shard>,
    exchange: &mut SaslExchange,
    tokens: Option<&TokenValidator>,
    message: &[u8],
) -> Result<SaslStep, SaslError> {
    let view = shard.replication().view().unwrap_or_default();
    // Without randomness there is no safe nonce: the login fails.
    let nonce = crate::security::scram::server_nonce().ok_or(SaslError::BadCredentials)?;
    let store = ListenerCredentials {
        users: ViewCredentials(view),
        tokens: tokens.map(|t| t as &dyn TokenCheck),
    };
    exchange.step(message, &store, || nonce)
}

/// `connections.max.reauth.ms` as SaslAuthenticate answers it.
fn reauth_max(shard: &Shard) -> Duration {
    Duration::from_millis(shard.config.connections_max_reauth_ms)
}

async fn delay_failure(shard: &Rc<Shard>) {
    let delay = Duration::from_millis(shard.config.failed_authentication_delay_ms);
    if !delay.is_zero() {
        glommio::timer::sleep(delay).await;
    }
}

async fn next_frame<S: Stream>(
    stream: &mut S,
    wait: Duration,
) -> Result<BytesMut, AuthenticationError> {
    let read = read_frame(stream, SASL_FRAME_BYTES_MAX);
    match select(Box::pin(read), Box::pin(glommio::timer::sleep(wait))).await {
        Either::Left((Ok(Some(frame)), _)) => Ok(frame),
        Either::Left((Ok(None), _)) => Err(AuthenticationError::Closed),
        Either::Left((Err(e), _)) => Err(e.into()),
        Either::Right(_) => Err(AuthenticationError::Timeout(wait)),
    }
}

async fn write_response<S: Stream, T: Encodable>(
    stream: &mut S,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Result<(), AuthenticationError> {
    let bytes = encode_response(api_key, version, correlation_id, body)?;
    write_bytes(stream, bytes).await
}

async fn write_bytes<S: Stream>(stream: &mut S, bytes: Bytes) -> Result<(), AuthenticationError> {
    stream.write_all(&bytes).await.map_err(FrameError::Io)?;
    stream.flush().await.map_err(FrameError::Io)?;
    Ok(())
}

/// A SaslHandshake v0 token: its length, then the bytes.
async fn write_raw<S: Stream>(stream: &mut S, token: &[u8]) -> Result<(), AuthenticationError> {
    let mut framed = Vec::with_capacity(4 + token.len());
    framed.extend_from_slice(&(token.len() as u32).to_be_bytes());
    framed.extend_from_slice(token);
    write_bytes(stream, Bytes::from(framed)).await
}
