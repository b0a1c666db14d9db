//! The OAUTHBEARER token validator of one listener: the provider's JWKS,
//! read from its file at start (a broker whose JWKS does not load refuses
//! to start) and again every `sasl.oauthbearer.jwks.endpoint.refresh.ms`,
//! or at most every ten seconds when a token names a key it lacks (the
//! provider rotated its keys), and `security::oauth` to check each token.
//! Shared by every shard; each validation runs on the connection's shard.
use crate::config::tls::OAuthSettings;
use crate::security::oauth::{validate, Jwks, TokenError, TokenIdentity};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Fewest seconds between reads of the JWKS for an unknown key.
const UNKNOWN_KEY_RELOAD: Duration = Duration::from_secs(10);

pub struct TokenValidator {
    settings: OAuthSettings,
    jwks: RwLock<(Arc<Jwks>, Instant)>,
}

impl TokenValidator {
    /// Reads the JWKS file once.
    pub fn load(settings: OAuthSettings) -> Result<Arc<TokenValidator>, String> {
        let jwks = read_jwks(&settings)?;
        Ok(Arc::new(TokenValidator {
            settings,
            jwks: RwLock::new((Arc::new(jwks), Instant::now())),
        }))
    }

    /// Who `token` speaks for, if it is valid now.
    pub fn identity(&self, token: &str) -> Result<TokenIdentity, TokenError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let refresh = Duration::from_millis(self.settings.refresh_ms);
        let (jwks, age) = self.current();
        let jwks = if age >= refresh {
            self.reload().unwrap_or(jwks)
        } else {
            jwks
        };
        match validate(token, &jwks, &self.settings.rules, now) {
            Err(TokenError::UnknownKey(_)) if age >= UNKNOWN_KEY_RELOAD => {
                let jwks = self.reload().unwrap_or(jwks);
                validate(token, &jwks, &self.settings.rules, now)
            }
            result => result,
        }
    }

    fn current(&self) -> (Arc<Jwks>, Duration) {
        let guard = self.jwks.read().unwrap_or_else(|p| p.into_inner());
        (guard.0.clone(), guard.1.elapsed())
    }

    /// Reads the file again; on failure the old keys stay (logged).
    fn reload(&self) -> Option<Arc<Jwks>> {
        let mut guard = self.jwks.write().unwrap_or_else(|p| p.into_inner());
        guard.1 = Instant::now();
        match read_jwks(&self.settings) {
            Ok(jwks) => {
                guard.0 = Arc::new(jwks);
                Some(guard.0.clone())
            }
            Err(e) => {
                tracing::warn!(error = %e, "the JWKS does not load; keeping the old keys");
                None
            }
        }
    }
}

fn read_jwks(settings: &OAuthSettings) -> Result<Jwks, String> {
    let path = &settings.jwks_file;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the JWKS {}: {e}", path.display()))?;
    Jwks::parse(&text).map_err(|e| format!("the JWKS {}: {e}", path.display()))
}

impl crate::security::sasl::TokenCheck for TokenValidator {
    fn verify_token(
        &self,
        token: &str,
    ) -> Result<TokenIdentity, crate::security::scram::SaslError> {
        self.identity(token)
            .map_err(|e| crate::security::scram::SaslError::InvalidToken(e.to_string()))
    }
}
