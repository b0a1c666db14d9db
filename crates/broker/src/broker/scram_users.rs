//! DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554):
//! the users of SASL/SCRAM (and PLAIN, checked against them), kept in the
//! quorum's view. An upsertion carries the client's salted password; the
//! broker keeps only StoredKey and ServerKey, as Kafka does. Also
//! SaslHandshake and SaslAuthenticate arriving after authentication:
//! re-authentication (KIP-368) when the session has a lifetime, else
//! ILLEGAL_SASL_STATE, as Kafka answers them; and the bootstrap user. Runs
//! on the shard that got the request.
use super::authz::RequestAuthorizer;
use super::{str_bytes, RequestContext};
use crate::security::sasl::{
    CredentialStore, SaslExchange, SaslMechanism, SaslStep, TokenCheck, TokenIdentity,
};
use crate::security::scram::{SaslError, ScramCredential, ScramMechanism};
use crate::security::SaslSession;
use crate::shard::Shard;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::*;
use model::acl::AclOperation;
use quorum::credentials::{SCRAM_ITERATIONS_MAX, SCRAM_ITERATIONS_MIN};
use quorum::model::{ClusterView, StoredScramCredential};
use quorum::state::Command;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;
use wire::ResponseError;

pub async fn describe(
    shard: &Rc<Shard>,
    request: DescribeUserScramCredentialsRequest,
    ctx: &RequestContext,
) -> DescribeUserScramCredentialsResponse {
    // Kafka: Describe on the cluster.
    if !RequestAuthorizer::of(shard, ctx).allows_cluster(AclOperation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(str_bytes("Authorization failed.")));
    }
    let view = shard.replication().view().unwrap_or_default();
    let users: Vec<String> = match &request.users {
        // Null or empty: every user, as Kafka.
        None => view.security.scram.keys().cloned().collect(),
        Some(list) if list.is_empty() => view.security.scram.keys().cloned().collect(),
        Some(list) => list.iter().map(|u| u.name.to_string()).collect(),
    };
    let mut seen = BTreeSet::new();
    let duplicated: BTreeSet<&String> = users.iter().filter(|u| !seen.insert(*u)).collect();
    let mut described = BTreeSet::new();
    let mut results = Vec::new();
    for user in &users {
        if !described.insert(user) {
            continue;
        }
        results.push(describe_user(&view, user, duplicated.contains(user)));
    }
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

fn describe_user(
    view: &ClusterView,
    user: &str,
    duplicated: bool,
) -> DescribeUserScramCredentialsResult {
    let result = DescribeUserScramCredentialsResult::default().with_user(str_bytes(user));
    if duplicated {
        return result
            .with_error_code(ResponseError::DuplicateResource.code())
            .with_error_message(Some(str_bytes(format!("Cannot describe SCRAM credentials for the same user twice in a single request: {user}"))));
    }
    let Some(credentials) = view.security.scram.get(user) else {
        return result
            .with_error_code(ResponseError::ResourceNotFound.code())
            .with_error_message(Some(str_bytes(format!(
                "Attempt to describe a user credential that does not exist: {user}"
            ))));
    };
    let infos = credentials
        .iter()
        .filter_map(|(name, c)| {
            let mechanism = ScramMechanism::from_name(name)?;
            Some(
                CredentialInfo::default()
                    .with_mechanism(mechanism.kafka_id())
                    .with_iterations(c.iterations as i32),
            )
        })
        .collect();
    result.with_credential_infos(infos)
}

/// One user's alterations, checked before any is proposed.
#[derive(Debug, Default)]
struct UserChange {
    commands: Vec<Command>,
    error: Option<(i16, String)>,
}

pub async fn alter(
    shard: &Rc<Shard>,
    request: AlterUserScramCredentialsRequest,
    ctx: &RequestContext,
) -> AlterUserScramCredentialsResponse {
    let view = shard.replication().view().unwrap_or_default();
    let mut changes = plan(&view, &request);
    // Kafka: Alter on the cluster, else every user is refused.
    if !RequestAuthorizer::of(shard, ctx).allows_cluster(AclOperation::Alter) {
        for change in changes.values_mut() {
            change.commands.clear();
            let code = ResponseError::ClusterAuthorizationFailed.code();
            change.error = Some((code, "Authorization failed.".into()));
        }
    }
    let valid: Vec<(String, usize)> = changes
        .iter()
        .filter(|(_, c)| c.error.is_none())
        .map(|(user, c)| (user.clone(), c.commands.len()))
        .collect();
    let commands: Vec<Command> = changes
        .values_mut()
        .filter(|c| c.error.is_none())
        .flat_map(|c| std::mem::take(&mut c.commands))
        .collect();
    if !commands.is_empty() {
        let outcomes = propose_all(shard, commands).await;
        let mut outcomes = outcomes.into_iter();
        for (user, count) in valid {
            let failed = outcomes.by_ref().take(count).find_map(Result::err);
            if let Some(error) = failed {
                changes.entry(user).or_default().error = Some(error);
            }
        }
    }
    let results = changes
        .into_iter()
        .map(|(user, change)| {
            let (code, message) = change.error.unwrap_or((0, String::new()));
            AlterUserScramCredentialsResult::default()
                .with_user(str_bytes(user))
                .with_error_code(code)
                .with_error_message((code != 0).then(|| str_bytes(message)))
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

/// Checks every deletion and upsertion as Kafka's controller does, per user:
/// a user with one bad alteration gets none of its alterations applied.
fn plan(
    view: &ClusterView,
    request: &AlterUserScramCredentialsRequest,
) -> BTreeMap<String, UserChange> {
    let mut changes: BTreeMap<String, UserChange> = BTreeMap::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut refuse = |changes: &mut BTreeMap<String, UserChange>,
                      user: &str,
                      code: ResponseError,
                      message: String| {
        let change = changes.entry(user.to_string()).or_default();
        if change.error.is_none() {
            change.error = Some((code.code(), message));
        }
    };
    // Kafka's controller (ScramControlManager): a user named by two
    // alterations of one request, whatever their mechanisms, gets neither.
    let duplicates: BTreeSet<String> = request
        .deletions
        .iter()
        .map(|d| d.name.to_string())
        .chain(request.upsertions.iter().map(|u| u.name.to_string()))
        .filter(|user| !seen.insert(user.clone()))
        .collect();
    for deletion in &request.deletions {
        let user = deletion.name.to_string();
        changes.entry(user.clone()).or_default();
        let Some(mechanism) = checked(
            &mut changes,
            &mut refuse,
            &user,
            deletion.mechanism,
            &duplicates,
        ) else {
            continue;
        };
        let exists = view
            .security
            .scram
            .get(&user)
            .is_some_and(|m| m.contains_key(mechanism.name()));
        if !exists {
            refuse(
                &mut changes,
                &user,
                ResponseError::ResourceNotFound,
                format!("Attempt to delete a user credential that does not exist: {user}"),
            );
            continue;
        }
        let command = Command::DeleteScramCredential {
            user: user.clone(),
            mechanism: mechanism.name().to_string(),
        };
        changes.entry(user).or_default().commands.push(command);
    }
    for upsertion in &request.upsertions {
        let user = upsertion.name.to_string();
        changes.entry(user.clone()).or_default();
        let Some(mechanism) = checked(
            &mut changes,
            &mut refuse,
            &user,
            upsertion.mechanism,
            &duplicates,
        ) else {
            continue;
        };
        if user.is_empty() {
            refuse(
                &mut changes,
                &user,
                ResponseError::UnacceptableCredential,
                "Username must not be empty".into(),
            );
            continue;
        }
        let iterations = upsertion.iterations;
        if !(SCRAM_ITERATIONS_MIN as i32..=SCRAM_ITERATIONS_MAX as i32).contains(&iterations) {
            let message = format!("Iterations must be between {SCRAM_ITERATIONS_MIN} and {SCRAM_ITERATIONS_MAX}, not {iterations}");
            refuse(
                &mut changes,
                &user,
                ResponseError::UnacceptableCredential,
                message,
            );
            continue;
        }
        if upsertion.salt.is_empty() || upsertion.salted_password.is_empty() {
            refuse(
                &mut changes,
                &user,
                ResponseError::UnacceptableCredential,
                "The salt and the salted password must not be empty".into(),
            );
            continue;
        }
        let credential = ScramCredential::from_salted_password(
            mechanism,
            upsertion.salt.to_vec(),
            &upsertion.salted_password,
            iterations as u32,
        );
        let command = Command::UpsertScramCredential {
            user: user.clone(),
            mechanism: mechanism.name().to_string(),
            credential: stored(credential),
        };
        changes.entry(user).or_default().commands.push(command);
    }
    changes
}

type Refuse<'a> = dyn FnMut(&mut BTreeMap<String, UserChange>, &str, ResponseError, String) + 'a;

/// The mechanism of one alteration, unless it is unknown or its user is
/// named twice.
fn checked(
    changes: &mut BTreeMap<String, UserChange>,
    refuse: &mut Refuse<'_>,
    user: &str,
    mechanism_id: i8,
    duplicates: &BTreeSet<String>,
) -> Option<ScramMechanism> {
    if duplicates.contains(user) {
        refuse(
            changes,
            user,
            ResponseError::DuplicateResource,
            format!("A user credential cannot be altered twice in the same request: {user}"),
        );
        return None;
    }
    let Some(mechanism) = ScramMechanism::from_kafka_id(mechanism_id) else {
        refuse(
            changes,
            user,
            ResponseError::UnsupportedSaslMechanism,
            format!("Unknown SCRAM mechanism type {mechanism_id}"),
        );
        return None;
    };
    Some(mechanism)
}

/// The view's form of a credential.
pub fn stored(credential: ScramCredential) -> StoredScramCredential {
    StoredScramCredential {
        salt: credential.salt,
        stored_key: credential.stored_key,
        server_key: credential.server_key,
        iterations: credential.iterations,
    }
}

/// Proposes `commands`; one result per command, in order.
async fn propose_all(shard: &Rc<Shard>, commands: Vec<Command>) -> Vec<Result<(), (i16, String)>> {
    super::proposals::propose_each(shard, commands)
        .await
        .into_iter()
        .map(|answered| answered.map(|_| ()))
        .collect()
}

/// SaslHandshake on an authenticated connection: the start of a
/// re-authentication (KIP-368) when its session expires, with the
/// mechanism it logged in with; otherwise (no SASL, no session lifetime,
/// v0) Kafka's ILLEGAL_SASL_STATE.
pub async fn sasl_handshake(
    _shard: &Rc<Shard>,
    request: SaslHandshakeRequest,
    ctx: &RequestContext,
) -> SaslHandshakeResponse {
    let illegal =
        SaslHandshakeResponse::default().with_error_code(ResponseError::IllegalSaslState.code());
    let Some(sasl) = reauthenticating(ctx) else {
        return illegal;
    };
    let offered = vec![str_bytes(sasl.mechanism.name())];
    match SaslMechanism::parse(request.mechanism.as_str()) {
        Some(m) if m == sasl.mechanism => {
            *sasl.reauthentication.borrow_mut() = Some(SaslExchange::start(m));
            SaslHandshakeResponse::default().with_mechanisms(offered)
        }
        // Kafka: re-authentication keeps the mechanism.
        _ => SaslHandshakeResponse::default()
            .with_error_code(ResponseError::UnsupportedSaslMechanism.code())
            .with_mechanisms(offered),
    }
}

/// The SASL session of a connection that may re-authenticate.
fn reauthenticating(ctx: &RequestContext) -> Option<&SaslSession> {
    let sasl = ctx.session.sasl.as_ref()?;
    (ctx.version >= 1 && !sasl.lifetime.is_zero()).then_some(sasl)
}

/// SaslAuthenticate on an authenticated connection: a round of the
/// re-authentication its SaslHandshake started. It must prove the same
/// principal; a failure, or another principal, ends the session (the next
/// request closes the connection).
pub async fn sasl_authenticate(
    shard: &Rc<Shard>,
    request: SaslAuthenticateRequest,
    ctx: &RequestContext,
) -> SaslAuthenticateResponse {
    let illegal = || {
        SaslAuthenticateResponse::default()
            .with_error_code(ResponseError::IllegalSaslState.code())
            .with_error_message(Some(str_bytes(
                "SaslAuthenticate is expected only after SaslHandshake, on a SASL listener",
            )))
    };
    let Some(sasl) = ctx.session.sasl.as_ref() else {
        return illegal();
    };
    let Some(mut exchange) = sasl.reauthentication.borrow_mut().take() else {
        return illegal();
    };
    let view = shard.replication().view().unwrap_or_default();
    let store = ListenerCredentials {
        users: ViewCredentials(view),
        tokens: sasl.tokens.as_deref(),
    };
    let Some(nonce) = crate::security::scram::server_nonce() else {
        return illegal();
    };
    let failed = |message: String| {
        sasl.expires.set(Some(std::time::Instant::now()));
        SaslAuthenticateResponse::default()
            .with_error_code(ResponseError::SaslAuthenticationFailed.code())
            .with_error_message(Some(str_bytes(message)))
    };
    match exchange.step(&request.auth_bytes, &store, || nonce) {
        Ok(SaslStep::Continue(token)) => {
            *sasl.reauthentication.borrow_mut() = Some(exchange);
            SaslAuthenticateResponse::default().with_auth_bytes(token.into())
        }
        Ok(SaslStep::Done { user, .. }) if user != ctx.session.principal.name => failed(format!(
            "re-authentication as {user} must keep the principal {}",
            ctx.session.principal
        )),
        Ok(SaslStep::Done {
            answer,
            credential_expires_at_s,
            ..
        }) => {
            tracing::debug!(principal = %ctx.session.principal, "SASL re-authentication");
            let left = crate::security::credential_left(credential_expires_at_s, unix_now_s());
            let lifetime = sasl.logged_in(std::time::Instant::now(), left);
            SaslAuthenticateResponse::default()
                .with_auth_bytes(answer.into())
                .with_session_lifetime_ms(crate::security::lifetime_ms(lifetime))
        }
        Err(error) => {
            tracing::info!(principal = %ctx.session.principal, %error, "failed re-authentication");
            let delay =
                std::time::Duration::from_millis(shard.config.failed_authentication_delay_ms);
            glommio::timer::sleep(delay).await;
            failed(format!(
                "Authentication failed during re-authentication with SASL mechanism {}",
                sasl.mechanism.name()
            ))
        }
    }
}

/// The view's SCRAM credentials, for the SASL exchange.
pub struct ViewCredentials(pub Arc<ClusterView>);

impl ViewCredentials {
    pub fn scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Option<ScramCredential> {
        let c = self.0.security.scram.get(user)?.get(mechanism.name())?;
        Some(ScramCredential {
            salt: c.salt.clone(),
            stored_key: c.stored_key.clone(),
            server_key: c.server_key.clone(),
            iterations: c.iterations,
        })
    }
}

/// Seconds since the epoch, by the wall clock (tokens' `exp` is one).
pub fn unix_now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What a listener's exchanges check against: the users in the view and,
/// with OAUTHBEARER, the provider's keys.
pub struct ListenerCredentials<'a> {
    pub users: ViewCredentials,
    pub tokens: Option<&'a dyn TokenCheck>,
}

impl CredentialStore for ListenerCredentials<'_> {
    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.users.scram_credential(user, mechanism)
    }

    fn verify_token(&self, token: &str) -> Result<TokenIdentity, SaslError> {
        let validator = self
            .tokens
            .ok_or(SaslError::InvalidToken("OAUTHBEARER is not enabled".into()))?;
        validator.verify_token(token)
    }
}

/// The first user, from `TIDEMARK_BOOTSTRAP_USER=name:password` (as
/// Redpanda's RP_BOOTSTRAP_USER): without a user no SASL client can log in
/// to create one.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapUser {
    pub name: String,
    pub password: String,
}

impl std::fmt::Debug for BootstrapUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password, not even in a debug log.
        write!(f, "BootstrapUser({})", self.name)
    }
}

/// The environment variable that names the first user.
pub const BOOTSTRAP_USER_VARIABLE: &str = "TIDEMARK_BOOTSTRAP_USER";

/// Iterations of the bootstrap user's credentials: Kafka's minimum, as
/// kafka-configs uses by default.
const BOOTSTRAP_ITERATIONS: u32 = 4096;

impl BootstrapUser {
    /// `name:password`; the password may itself hold colons.
    pub fn parse(text: &str) -> Result<BootstrapUser, String> {
        let (name, password) = text
            .split_once(':')
            .ok_or_else(|| format!("{BOOTSTRAP_USER_VARIABLE} must be name:password"))?;
        if name.is_empty() || password.is_empty() {
            return Err(format!(
                "{BOOTSTRAP_USER_VARIABLE} must be name:password, both non-empty"
            ));
        }
        Ok(BootstrapUser {
            name: name.to_string(),
            password: password.to_string(),
        })
    }

    /// From the environment, if set.
    pub fn from_environment() -> Result<Option<BootstrapUser>, String> {
        match std::env::var(BOOTSTRAP_USER_VARIABLE) {
            Ok(text) => BootstrapUser::parse(&text).map(Some),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("{BOOTSTRAP_USER_VARIABLE} is not UTF-8"))
            }
        }
    }

    /// The commands that give the user SCRAM-SHA-256 and SCRAM-SHA-512
    /// credentials, each with its own random salt.
    fn commands(&self) -> Option<Vec<Command>> {
        let mut commands = Vec::new();
        for mechanism in ScramMechanism::ALL {
            let salt = crate::security::scram::random_salt()?;
            let credential = ScramCredential::from_password(
                mechanism,
                &self.password,
                salt,
                BOOTSTRAP_ITERATIONS,
            );
            commands.push(Command::UpsertScramCredential {
                user: self.name.clone(),
                mechanism: mechanism.name().to_string(),
                credential: stored(credential),
            });
        }
        Some(commands)
    }
}

/// Creates the bootstrap user unless the view already has a user of that
/// name (its password may have been changed since: it is left alone).
/// Retries while the quorum cannot take the write; runs once, on shard 0,
/// after the first view.
pub async fn create_bootstrap_user(shard: Rc<Shard>, user: BootstrapUser) {
    const RETRY: std::time::Duration = std::time::Duration::from_secs(1);
    const ATTEMPTS: usize = 60;
    for _ in 0..ATTEMPTS {
        if shard.is_stopping() {
            return;
        }
        let view = shard.replication().view().unwrap_or_default();
        if view.security.scram.contains_key(&user.name) {
            tracing::info!(user = %user.name, "bootstrap user exists; left as it is");
            return;
        }
        let Some(commands) = user.commands() else {
            tracing::error!("no randomness for a salt: the bootstrap user is not created");
            return;
        };
        let outcomes = propose_all(&shard, commands).await;
        match outcomes.iter().find_map(|o| o.as_ref().err()) {
            None => {
                tracing::info!(user = %user.name, "bootstrap user created (SCRAM-SHA-256, SCRAM-SHA-512)");
                return;
            }
            Some((code, message)) => {
                tracing::warn!(user = %user.name, code, %message, "cannot create the bootstrap user yet; retrying");
            }
        }
        glommio::timer::sleep(RETRY).await;
    }
    tracing::error!(user = %user.name, "gave up creating the bootstrap user");
}

#[cfg(test)]
mod bootstrap_tests {
    use super::*;

    #[test]
    fn bootstrap_user_is_name_colon_password() {
        let user = BootstrapUser::parse("admin:s3:cr:et").unwrap();
        assert_eq!(user.name, "admin");
        assert_eq!(user.password, "s3:cr:et");
        assert!(BootstrapUser::parse("admin").is_err());
        assert!(BootstrapUser::parse(":pw").is_err());
        assert!(BootstrapUser::parse("admin:").is_err());
        assert!(!format!("{user:?}").contains("s3"));
    }

    #[test]
    fn bootstrap_credentials_accept_the_password() {
        let user = BootstrapUser::parse("admin:secret").unwrap();
        let commands = user.commands().unwrap();
        assert_eq!(commands.len(), 2);
        for command in commands {
            let Command::UpsertScramCredential {
                mechanism,
                credential,
                ..
            } = command
            else {
                panic!("{command:?}");
            };
            let mechanism = ScramMechanism::from_name(&mechanism).unwrap();
            let credential = ScramCredential {
                salt: credential.salt,
                stored_key: credential.stored_key,
                server_key: credential.server_key,
                iterations: credential.iterations,
            };
            assert!(credential.matches_password(mechanism, "secret"));
            assert!(!credential.matches_password(mechanism, "secreT"));
        }
    }
}
