//! Who a connection is: Kafka principals, and how a TLS client
//! certificate's subject becomes one (`principal`); SCRAM and PLAIN
//! exchanges over stored SCRAM credentials (`scram`, `sasl`), and the client
//! side a follower logs in to its leader with (`scram_client`). Pure: no I/O. `net`
//! sets a connection's principal when it authenticates; the Kafka API
//! layer reads it.
pub mod oauth;
pub mod principal;
pub mod sasl;
pub mod scram;
pub mod scram_client;

pub use principal::{Principal, PrincipalMappingError, SslPrincipalMapper};

use std::rc::Rc;

/// Who is on the other end of one connection, and where it came in: set
/// when the connection is accepted (and its TLS handshake done), read by
/// every request it sends. Lives on the connection's shard.
#[derive(Debug)]
pub struct Session {
    /// The listener's name (upper case): Metadata answers with each
    /// broker's address on this listener, as Kafka does.
    pub listener: Rc<str>,
    pub principal: Principal,
    /// The peer's address as Kafka shows it ("/127.0.0.1").
    pub client_host: Rc<str>,
    /// Set when the connection authenticated with SASL.
    pub sasl: Option<SaslSession>,
}

/// A SASL login's lifetime and its re-authentication (KIP-368): with
/// `connections.max.reauth.ms` set, the session expires that long after
/// each login, and the client must log in again on the same connection
/// (SaslHandshake v1 and SaslAuthenticate, same mechanism, same principal)
/// before it does; a request other than those after expiry closes the
/// connection, as in Kafka.
pub struct SaslSession {
    pub mechanism: sasl::SaslMechanism,
    /// Zero: sessions do not expire.
    pub lifetime: std::time::Duration,
    pub expires: std::cell::Cell<Option<std::time::Instant>>,
    /// The listener's OAUTHBEARER validator, for re-authentication.
    pub tokens: Option<std::sync::Arc<dyn sasl::TokenCheck>>,
    /// A re-authentication under way.
    pub reauthentication: std::cell::RefCell<Option<sasl::SaslExchange>>,
}

impl std::fmt::Debug for SaslSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslSession")
            .field("mechanism", &self.mechanism)
            .field("expires", &self.expires.get())
            .finish_non_exhaustive()
    }
}

impl SaslSession {
    /// Starts (or restarts) the session's lifetime at `now`, for a
    /// credential that itself lasts `credential_left` (an OAUTHBEARER
    /// token), if it ends. Returns this login's lifetime (zero: none).
    pub fn logged_in(
        &self,
        now: std::time::Instant,
        credential_left: Option<std::time::Duration>,
    ) -> std::time::Duration {
        let lifetime = login_lifetime(self.lifetime, credential_left);
        // A lifetime past what the clock can hold never expires.
        let expires = match lifetime.is_zero() {
            true => None,
            false => now.checked_add(lifetime),
        };
        self.expires.set(expires);
        lifetime
    }

    /// Whether the session has expired at `now`.
    pub fn expired(&self, now: std::time::Instant) -> bool {
        self.expires.get().is_some_and(|at| now >= at)
    }
}

/// The session lifetime SaslAuthenticate v1+ answers (0: none).
pub fn lifetime_ms(lifetime: std::time::Duration) -> i64 {
    i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX)
}

/// A login's lifetime, as Kafka's authenticator sets it (KIP-368): with
/// `connections.max.reauth.ms` (`max`) zero, sessions never expire;
/// otherwise the session ends at `max` or when its credential does,
/// whichever is first (and never lasts zero, which would mean never).
pub fn login_lifetime(
    max: std::time::Duration,
    credential_left: Option<std::time::Duration>,
) -> std::time::Duration {
    const SHORTEST: std::time::Duration = std::time::Duration::from_millis(1);
    match (max.is_zero(), credential_left) {
        (true, _) => std::time::Duration::ZERO,
        (false, None) => max,
        (false, Some(left)) => max.min(left).max(SHORTEST),
    }
}

/// How long is left of a credential that ends at `expires_at_s` (seconds
/// since the epoch), seen at `now_s`.
pub fn credential_left(expires_at_s: Option<u64>, now_s: u64) -> Option<std::time::Duration> {
    expires_at_s.map(|at| std::time::Duration::from_secs(at.saturating_sub(now_s)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_login_lasts_until_the_reauth_interval_or_the_credential_ends() {
        let minute = Duration::from_secs(60);
        assert_eq!(login_lifetime(Duration::ZERO, Some(minute)), Duration::ZERO);
        assert_eq!(login_lifetime(minute, None), minute);
        assert_eq!(
            login_lifetime(minute, Some(Duration::from_secs(5))),
            Duration::from_secs(5)
        );
        assert_eq!(
            login_lifetime(Duration::from_secs(5), Some(minute)),
            Duration::from_secs(5)
        );
        assert_eq!(
            login_lifetime(minute, Some(Duration::ZERO)),
            Duration::from_millis(1)
        );
        assert_eq!(
            credential_left(Some(100), 40),
            Some(Duration::from_secs(60))
        );
        assert_eq!(credential_left(Some(10), 40), Some(Duration::ZERO));
        assert_eq!(credential_left(None, 40), None);
    }
}
