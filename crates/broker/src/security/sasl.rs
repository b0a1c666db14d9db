//! One SASL exchange on the server side, whatever the mechanism: PLAIN
//! (one message, its password checked against the user's SCRAM credential)
//! or SCRAM-SHA-256/512 (two rounds). Pure: the caller gives each client
//! message, a lookup of stored credentials and fresh nonces, and sends the
//! answers; `net::sasl` does the framing.
pub use super::oauth::TokenIdentity;
use super::scram::{parse_plain, SaslError, ScramCredential, ScramMechanism, ScramServer};

/// The mechanisms Tidemark's SASL listeners can offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    Scram(ScramMechanism),
    OAuthBearer,
}

impl SaslMechanism {
    pub fn parse(name: &str) -> Option<SaslMechanism> {
        match name {
            "PLAIN" => Some(SaslMechanism::Plain),
            "OAUTHBEARER" => Some(SaslMechanism::OAuthBearer),
            other => ScramMechanism::from_name(other).map(SaslMechanism::Scram),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
            SaslMechanism::Scram(m) => m.name(),
        }
    }
}

/// What the exchange answers a client message with.
#[derive(Debug, PartialEq, Eq)]
pub enum SaslStep {
    /// Send this and wait for the client's next message.
    Continue(Vec<u8>),
    /// Authenticated as `user`; send `answer` (empty for PLAIN).
    /// `credential_expires_at_s` is when the credential itself ends (an
    /// OAUTHBEARER token's `exp`, seconds since the epoch): a session must
    /// not outlive it (KIP-368).
    Done {
        answer: Vec<u8>,
        user: String,
        credential_expires_at_s: Option<u64>,
    },
}

/// Validates an OAUTHBEARER token.
pub trait TokenCheck {
    fn verify_token(&self, token: &str) -> Result<TokenIdentity, SaslError>;
}

/// The stored credentials an exchange may read: user and mechanism to the
/// credential.
pub trait CredentialStore {
    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential>;

    /// Who a valid OAUTHBEARER token speaks for.
    fn verify_token(&self, token: &str) -> Result<TokenIdentity, SaslError>;
}

/// One connection's exchange (one per authenticating connection, so its
/// size does not matter).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum SaslExchange {
    Plain { finished: bool },
    Scram(ScramServer),
    OAuthBearer { finished: bool },
}

impl SaslExchange {
    pub fn start(mechanism: SaslMechanism) -> SaslExchange {
        match mechanism {
            SaslMechanism::Plain => SaslExchange::Plain { finished: false },
            SaslMechanism::Scram(m) => SaslExchange::Scram(ScramServer::new(m)),
            SaslMechanism::OAuthBearer => SaslExchange::OAuthBearer { finished: false },
        }
    }

    /// Takes the client's next message. `nonce` makes a fresh server nonce
    /// when SCRAM needs one.
    pub fn step(
        &mut self,
        message: &[u8],
        store: &dyn CredentialStore,
        nonce: impl FnOnce() -> String,
    ) -> Result<SaslStep, SaslError> {
        match self {
            SaslExchange::Plain { finished } => {
                if std::mem::replace(finished, true) {
                    return Err(SaslError::Finished);
                }
                let (user, password) = parse_plain(message)?;
                // Either stored mechanism proves the password, as Redpanda
                // checks PLAIN against its SCRAM users.
                let proven = ScramMechanism::ALL.into_iter().any(|m| {
                    store
                        .scram_credential(&user, m)
                        .is_some_and(|c| c.matches_password(m, &password))
                });
                if !proven {
                    return Err(SaslError::BadCredentials);
                }
                Ok(SaslStep::Done {
                    answer: Vec::new(),
                    user,
                    credential_expires_at_s: None,
                })
            }
            SaslExchange::OAuthBearer { finished } => {
                if std::mem::replace(finished, true) {
                    return Err(SaslError::Finished);
                }
                let token = super::oauth::bearer_token(message)
                    .map_err(|_| SaslError::Malformed("OAUTHBEARER client response"))?;
                let identity = store.verify_token(token)?;
                Ok(SaslStep::Done {
                    answer: Vec::new(),
                    user: identity.subject,
                    credential_expires_at_s: Some(identity.expires_at_s),
                })
            }
            SaslExchange::Scram(server) => {
                if server.awaits_client_first() {
                    let m = server.mechanism();
                    let first =
                        server.client_first(message, |u| store.scram_credential(u, m), &nonce())?;
                    Ok(SaslStep::Continue(first))
                } else {
                    let (answer, user) = server.client_final(message)?;
                    Ok(SaslStep::Done {
                        answer,
                        user,
                        credential_expires_at_s: None,
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct Store(BTreeMap<(String, ScramMechanism), ScramCredential>);

    impl CredentialStore for Store {
        fn scram_credential(&self, user: &str, m: ScramMechanism) -> Option<ScramCredential> {
            self.0.get(&(user.to_string(), m)).cloned()
        }

        fn verify_token(&self, token: &str) -> Result<TokenIdentity, SaslError> {
            // A stand-in validator: "ok:<user>" is valid until 1000 s.
            token
                .strip_prefix("ok:")
                .map(|user| TokenIdentity {
                    subject: user.to_string(),
                    expires_at_s: 1000,
                })
                .ok_or(SaslError::InvalidToken("not ok".into()))
        }
    }

    fn store() -> Store {
        let c =
            ScramCredential::from_password(ScramMechanism::Sha512, "pw", b"salt".to_vec(), 4096);
        Store(BTreeMap::from([(
            ("alice".to_string(), ScramMechanism::Sha512),
            c,
        )]))
    }

    #[test]
    fn oauthbearer_logs_in_as_the_token_subject_until_the_token_expires() {
        let store = store();
        let mut exchange = SaslExchange::start(SaslMechanism::OAuthBearer);
        assert_eq!(
            exchange.step(b"n,,\x01auth=Bearer ok:carol\x01\x01", &store, String::new),
            Ok(SaslStep::Done {
                answer: vec![],
                user: "carol".into(),
                credential_expires_at_s: Some(1000),
            })
        );
        let mut bad = SaslExchange::start(SaslMechanism::OAuthBearer);
        assert!(bad
            .step(b"n,,\x01auth=Bearer forged\x01\x01", &store, String::new)
            .is_err());
    }

    #[test]
    fn plain_logs_in_against_any_stored_scram_mechanism_once() {
        let store = store();
        let mut plain = SaslExchange::start(SaslMechanism::Plain);
        let done = plain.step(b"\0alice\0pw", &store, String::new).unwrap();
        assert_eq!(
            done,
            SaslStep::Done {
                answer: vec![],
                user: "alice".into(),
                credential_expires_at_s: None,
            }
        );
        assert_eq!(
            plain.step(b"\0alice\0pw", &store, String::new),
            Err(SaslError::Finished)
        );
        let mut wrong = SaslExchange::start(SaslMechanism::Plain);
        assert_eq!(
            wrong.step(b"\0alice\0nope", &store, String::new),
            Err(SaslError::BadCredentials)
        );
        let mut unknown = SaslExchange::start(SaslMechanism::Plain);
        assert_eq!(
            unknown.step(b"\0bob\0pw", &store, String::new),
            Err(SaslError::BadCredentials)
        );
    }

    #[test]
    fn scram_takes_two_rounds_and_only_its_own_mechanism() {
        let store = store();
        let mut sha256 = SaslExchange::start(SaslMechanism::Scram(ScramMechanism::Sha256));
        assert_eq!(
            sha256.step(b"n,,n=alice,r=abc", &store, || "x".into()),
            Err(SaslError::BadCredentials),
            "alice has a SHA-512 credential only"
        );
        let mut sha512 = SaslExchange::start(SaslMechanism::Scram(ScramMechanism::Sha512));
        let first = sha512
            .step(b"n,,n=alice,r=abc", &store, || "xyz".into())
            .unwrap();
        assert!(matches!(first, SaslStep::Continue(ref m) if m.starts_with(b"r=abcxyz,s=")));
        assert!(sha512
            .step(b"c=biws,r=abcxyz,p=AAAA", &store, String::new)
            .is_err());
        assert_eq!(
            SaslMechanism::parse("SCRAM-SHA-256"),
            Some(SaslMechanism::Scram(ScramMechanism::Sha256))
        );
        assert_eq!(SaslMechanism::parse("GSSAPI"), None);
    }
}
