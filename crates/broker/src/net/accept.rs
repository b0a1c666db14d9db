//! The accept loop of one shard: admits each connection against the
//! broker's limits (`limits.rs`) or closes it at once, and backs off when
//! `accept` itself fails (out of descriptors: EMFILE, ENFILE), with one log
//! line per interval instead of one per failure.
//!
//! On a TLS listener the handshake runs in the connection's own task,
//! within `socket.request.read.timeout.ms`; on a SASL listener the client
//! then authenticates (`sasl.rs`) before its first other request. A failed
//! handshake or login closes that connection only.
//!
//! Runs on every shard, one loop per listener, each on its own
//! SO_REUSEPORT socket.
use super::connection::{serve_connection, Stream};
use super::limits::{ConnectionPermit, ConnectionTracker};
use super::oauth::TokenValidator;
use super::tls::TlsContext;
use crate::broker::budget::ShardBudget;
use crate::config::tls::SaslSettings;
use crate::security::{Principal, SaslSession, Session};
use crate::shard::Shard;
use glommio::net::{TcpListener, TcpStream};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a shard serves on one listener.
#[derive(Clone)]
pub struct ListenerContext {
    /// The listener's name, upper case.
    pub name: Rc<str>,
    /// Set on SSL and SASL_SSL listeners.
    pub tls: Option<Arc<TlsContext>>,
    /// Set on SASL_PLAINTEXT and SASL_SSL listeners.
    pub sasl: Option<Arc<SaslSettings>>,
    /// Set when the listener offers OAUTHBEARER.
    pub tokens: Option<Arc<TokenValidator>>,
}

/// First pause after a failed accept; it doubles up to `BACKOFF_MAX`.
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one log line per this interval for each kind of trouble.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Accepts connections on one listener until the shard stops; `budget` is
/// the shard's, shared by all its listeners.
pub async fn accept_loop(
    shard: Rc<Shard>,
    listener: TcpListener,
    context: ListenerContext,
    tracker: Arc<ConnectionTracker>,
    budget: Rc<ShardBudget>,
) {
    let mut backoff = Backoff::default();
    let mut failures = RateLimitedLog::default();
    let mut refusals = RateLimitedLog::default();
    while !shard.is_stopping() {
        match listener.accept().await {
            Ok(stream) => {
                backoff.reset();
                admit(&shard, stream, &context, &tracker, &budget, &mut refusals);
            }
            Err(e) => {
                if let Some(more) = failures.note() {
                    tracing::warn!(shard = shard.id, error = %e, failures_since_last_log = more, "accept failed; backing off");
                }
                glommio::timer::sleep(backoff.next()).await;
            }
        }
    }
}

/// Serves `stream` if the limits admit it; closes it at once otherwise.
fn admit(
    shard: &Rc<Shard>,
    stream: TcpStream,
    context: &ListenerContext,
    tracker: &Arc<ConnectionTracker>,
    budget: &Rc<ShardBudget>,
    refusals: &mut RateLimitedLog,
) {
    let Ok(peer) = stream.peer_addr() else {
        // Already gone.
        return;
    };
    match tracker.admit(peer.ip(), stream.as_raw_fd()) {
        Ok(permit) => {
            let connection = open(
                shard.clone(),
                stream,
                peer,
                context.clone(),
                budget.clone(),
                permit,
            );
            glommio::spawn_local(connection).detach();
        }
        Err(refusal) => {
            if let Some(more) = refusals.note() {
                tracing::warn!(shard = shard.id, %peer, reason = %refusal, refused_since_last_log = more, "connection refused");
            }
            drop(stream);
        }
    }
}

/// Runs the TLS handshake if the listener has one, then serves the
/// connection; the permit is held until it closes.
async fn open(
    shard: Rc<Shard>,
    stream: TcpStream,
    peer: SocketAddr,
    context: ListenerContext,
    budget: Rc<ShardBudget>,
    permit: ConnectionPermit,
) {
    let _ = stream.set_nodelay(true);
    match &context.tls {
        None => {
            let principal = Principal::anonymous();
            authenticate_and_serve(shard, stream, peer, &context, principal, budget).await;
        }
        Some(tls) => {
            let deadline =
                Duration::from_millis(shard.config.connection_settings().frame_timeout_ms);
            match tls.handshake(stream, deadline).await {
                Ok((stream, principal)) => {
                    tracing::debug!(%peer, listener = %context.name, %principal, "TLS connection");
                    authenticate_and_serve(shard, stream, peer, &context, principal, budget).await;
                }
                Err(e) => {
                    tracing::debug!(%peer, listener = %context.name, error = %e, "closing connection");
                }
            }
        }
    }
    drop(permit);
}

/// On a SASL listener, authenticates the client first (its principal is
/// then the SASL user, also over TLS, as in Kafka); then serves the
/// connection as `principal`.
async fn authenticate_and_serve<S: Stream>(
    shard: Rc<Shard>,
    mut stream: S,
    peer: SocketAddr,
    context: &ListenerContext,
    principal: Principal,
    budget: Rc<ShardBudget>,
) {
    let (principal, sasl) = match &context.sasl {
        None => (principal, None),
        Some(settings) => {
            let tokens = context.tokens.as_deref();
            match super::sasl::authenticate(&shard, &mut stream, settings, tokens).await {
                Ok(login) => {
                    tracing::debug!(%peer, listener = %context.name, principal = %login.principal, mechanism = login.mechanism.name(), "SASL login");
                    let session = sasl_session(&shard, context, &login);
                    (login.principal, Some(session))
                }
                Err(e @ super::sasl::AuthenticationError::Failed { .. }) => {
                    // Kafka logs each failed login at INFO, with the peer.
                    tracing::info!(%peer, listener = %context.name, error = %e, "failed authentication");
                    close_after_answer(&mut stream).await;
                    return;
                }
                Err(e) => {
                    tracing::debug!(%peer, listener = %context.name, error = %e, "closing connection while authenticating");
                    close_after_answer(&mut stream).await;
                    return;
                }
            }
        }
    };
    let session = Rc::new(Session {
        listener: context.name.clone(),
        principal,
        client_host: Rc::from(format!("/{}", peer.ip())),
        sasl,
    });
    serve_connection(shard, stream, peer.to_string(), session, budget).await;
}

/// How long a refused client gets to read its answer before the
/// connection is dropped.
const ANSWER_LINGER: Duration = Duration::from_secs(1);

/// Closes a connection whose last answer (a refused login) must reach the
/// client: sends FIN after it, then reads and discards what the client
/// still sends until it closes too, for at most `ANSWER_LINGER`. Dropping
/// the socket with unread bytes would send a reset, and a reset can make
/// the client's kernel discard the answer before the client reads it.
async fn close_after_answer<S: Stream>(stream: &mut S) {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let drain = async {
        if stream.close().await.is_err() {
            return;
        }
        let mut scratch = [0u8; 512];
        while matches!(stream.read(&mut scratch).await, Ok(n) if n > 0) {}
    };
    let timer = glommio::timer::sleep(ANSWER_LINGER);
    futures::future::select(Box::pin(drain), Box::pin(timer)).await;
}

/// The lifetime of a login just made (KIP-368).
fn sasl_session(
    shard: &Shard,
    context: &ListenerContext,
    login: &super::sasl::Authenticated,
) -> SaslSession {
    let mechanism = login.mechanism;
    let lifetime = match login.expires {
        true => Duration::from_millis(shard.config.connections_max_reauth_ms),
        false => Duration::ZERO,
    };
    let session = SaslSession {
        mechanism,
        lifetime,
        expires: Default::default(),
        tokens: context
            .tokens
            .clone()
            .map(|t| t as Arc<dyn crate::security::sasl::TokenCheck>),
        reauthentication: Default::default(),
    };
    session.logged_in(Instant::now(), login.credential_left);
    session
}

/// The pause after each of a run of failed accepts.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: BACKOFF_MIN }
    }
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        pause
    }

    fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }
}

/// Lets one event in `LOG_INTERVAL` be logged, counting the others.
#[derive(Debug, Default)]
struct RateLimitedLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    /// `Some(events suppressed since the last line)` when this one may be
    /// logged.
    fn note(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(last) if now.duration_since(last) < LOG_INTERVAL => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::default();
        let pauses: Vec<u128> = (0..9).map(|_| b.next().as_millis()).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.reset();
        assert_eq!(b.next(), BACKOFF_MIN);
    }

    #[test]
    fn one_line_per_interval() {
        let mut log = RateLimitedLog::default();
        assert_eq!(log.note(), Some(0));
        assert_eq!((0..100).filter_map(|_| log.note()).count(), 0);
        log.last = Some(Instant::now() - LOG_INTERVAL);
        assert_eq!(log.note(), Some(100));
    }
}
