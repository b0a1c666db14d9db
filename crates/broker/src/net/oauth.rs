//! The OAUTHBEARER token validator of one listener: the provider's JWKS and
//! `security::oauth` to check each token with it. The keys come from a file
//! or an https URL (`sasl.oauthbearer.jwks.endpoint.url`) and are fetched
//! by a thread of the validator's own, never on a shard: once at start (a
//! JWKS file that does not load refuses to start; an https provider that
//! does not answer is retried, as a provider outage must not stop a
//! broker), then every `sasl.oauthbearer.jwks.endpoint.refresh.ms`, and at
//! most every ten seconds when a token names a key the set lacks (the
//! provider rotated its keys: that login fails, the next one finds the key).
//! Shared by every shard; each validation runs on the connection's shard
//! and only reads the current key set.
use crate::config::tls::{JwksSource, OAuthSettings};
use crate::security::oauth::{validate, Jwks, TokenError, TokenIdentity};
use std::io::Read;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Fewest seconds between fetches of the JWKS for an unknown key.
const UNKNOWN_KEY_RELOAD: Duration = Duration::from_secs(10);
/// Pause before fetching again after a failed fetch.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);
/// Bound on one https fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest JWKS accepted (providers publish a few keys: kilobytes).
const JWKS_BYTES_MAX: u64 = 1 << 20;

pub struct TokenValidator {
    rules: crate::security::oauth::TokenRules,
    jwks: RwLock<Option<Arc<Jwks>>>,
    /// Wakes the fetcher early: a token named a key the set lacks.
    unknown_key: flume::Sender<()>,
}

impl TokenValidator {
    /// Fetches the JWKS once and starts the thread that keeps it fresh.
    pub fn load(settings: OAuthSettings) -> Result<Arc<TokenValidator>, String> {
        let fetcher = JwksFetcher::new(&settings)?;
        let first = match (fetcher.fetch(), &settings.jwks) {
            (Ok(jwks), _) => Some(Arc::new(jwks)),
            (Err(e), JwksSource::File(_)) => return Err(e),
            (Err(e), JwksSource::Https { .. }) => {
                tracing::warn!(error = %e, "the JWKS cannot be fetched yet; OAUTHBEARER logins fail until it is (retrying)");
                None
            }
        };
        let (unknown_key, wakes) = flume::bounded(1);
        let validator = Arc::new(TokenValidator {
            rules: settings.rules.clone(),
            jwks: RwLock::new(first),
            unknown_key,
        });
        let refresh = Duration::from_millis(settings.refresh_ms);
        let shared = Arc::downgrade(&validator);
        std::thread::Builder::new()
            .name("jwks-refresh".into())
            .spawn(move || keep_fresh(shared, fetcher, refresh, wakes))
            .map_err(|e| format!("cannot start the JWKS fetcher: {e}"))?;
        Ok(validator)
    }

    /// Who `token` speaks for, if it is valid now.
    pub fn identity(&self, token: &str) -> Result<TokenIdentity, TokenError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let jwks = self.jwks.read().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(jwks) = jwks else {
            return Err(TokenError::UnknownKey(None));
        };
        let result = validate(token, &jwks, &self.rules, now);
        if matches!(result, Err(TokenError::UnknownKey(_))) {
            // Full: a wake is pending already.
            let _ = self.unknown_key.try_send(());
        }
        result
    }

    fn replace(&self, jwks: Jwks) {
        *self.jwks.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(jwks));
    }
}

/// The fetcher thread: every `refresh`, after a failure sooner, and when a
/// shard saw an unknown key (at most every `UNKNOWN_KEY_RELOAD`). Ends
/// when the validator is dropped.
fn keep_fresh(
    validator: std::sync::Weak<TokenValidator>,
    fetcher: JwksFetcher,
    refresh: Duration,
    wakes: flume::Receiver<()>,
) {
    let mut last_fetch = Instant::now();
    let mut wait = refresh;
    loop {
        let woken = wakes.recv_timeout(wait).is_ok();
        if woken && last_fetch.elapsed() < UNKNOWN_KEY_RELOAD {
            wait = UNKNOWN_KEY_RELOAD.saturating_sub(last_fetch.elapsed());
            continue;
        }
        let Some(validator) = validator.upgrade() else {
            return;
        };
        last_fetch = Instant::now();
        wait = match fetcher.fetch() {
            Ok(jwks) => {
                validator.replace(jwks);
                refresh
            }
            Err(e) => {
                tracing::warn!(error = %e, "the JWKS does not load; keeping the old keys");
                RETRY_AFTER_FAILURE.min(refresh)
            }
        };
    }
}

/// Reads the JWKS from where the settings say.
struct JwksFetcher {
    source: JwksSource,
    /// For an https source.
    agent: Option<ureq::Agent>,
}

impl JwksFetcher {
    fn new(settings: &OAuthSettings) -> Result<JwksFetcher, String> {
        let agent = match &settings.jwks {
            JwksSource::File(_) => None,
            JwksSource::Https { truststore, .. } => Some(https_agent(truststore.as_deref())?),
        };
        Ok(JwksFetcher {
            source: settings.jwks.clone(),
            agent,
        })
    }

    fn fetch(&self) -> Result<Jwks, String> {
        let (text, from) = match (&self.source, &self.agent) {
            (JwksSource::File(path), _) => (
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read the JWKS {}: {e}", path.display()))?,
                path.display().to_string(),
            ),
            (JwksSource::Https { url, .. }, Some(agent)) => (get(agent, url)?, url.clone()),
            (JwksSource::Https { url, .. }, None) => {
                return Err(format!("no https client for {url}"))
            }
        };
        Jwks::parse(&text).map_err(|e| format!("the JWKS {from}: {e}"))
    }
}

/// An https client trusting `truststore`'s CAs, or Mozilla's roots.
fn https_agent(truststore: Option<&std::path::Path>) -> Result<ureq::Agent, String> {
    use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
    let roots = match truststore {
        None => RootCerts::WebPki,
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read the JWKS truststore {}: {e}", path.display()))?;
            let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(format!(
                    "the JWKS truststore {} holds no certificate",
                    path.display()
                ));
            }
            RootCerts::new_with_certs(&certs)
        }
    };
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(roots)
        .build();
    let config = ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(FETCH_TIMEOUT))
        .https_only(true)
        .build();
    Ok(config.into())
}

/// GETs `url`: its body as text, at most `JWKS_BYTES_MAX` bytes.
fn get(agent: &ureq::Agent, url: &str) -> Result<String, String> {
    let response = agent
        .get(url)
        .header("Accept", "application/json")
        .call()
        .map_err(|e| format!("cannot fetch the JWKS {url}: {e}"))?;
    let mut text = String::new();
    response
        .into_body()
        .into_reader()
        .take(JWKS_BYTES_MAX)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read the JWKS {url}: {e}"))?;
    Ok(text)
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
