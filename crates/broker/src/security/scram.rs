//! SCRAM (RFC 5802, with SHA-256 and SHA-512 as RFC 7677 and Kafka's KIP-84
//! use them) and PLAIN checked against the same stored credentials, as
//! Redpanda does: the broker never stores a password, only the salt, the
//! iteration count, StoredKey and ServerKey. Pure: the caller looks up the
//! credential and supplies the server nonce; no I/O, no clock.
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use thiserror::Error;

pub use wire::scram::{constant_time_eq, ScramMechanism, ITERATIONS_MAX, ITERATIONS_MIN};

/// A fresh server nonce: 18 random bytes as base64 (printable, without
/// commas, as SCRAM asks); `None` without randomness.
pub fn server_nonce() -> Option<String> {
    wire::scram::random_nonce()
}

/// The salt length of credentials made here (the bootstrap user,
/// `tidemark user create`).
pub const SALT_BYTES: usize = 32;

/// A fresh random salt; `None` if the system has no randomness to give.
pub fn random_salt() -> Option<Vec<u8>> {
    use ring::rand::SecureRandom;
    let mut salt = vec![0u8; SALT_BYTES];
    ring::rand::SystemRandom::new().fill(&mut salt).ok()?;
    Some(salt)
}

/// What the broker keeps of a user's password for one mechanism.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: u32,
}

impl ScramCredential {
    /// From the salted password a client sends in AlterUserScramCredentials.
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salt: Vec<u8>,
        salted_password: &[u8],
        iterations: u32,
    ) -> ScramCredential {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        ScramCredential {
            salt,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }

    /// From a password (the bootstrap user; tests).
    pub fn from_password(
        mechanism: ScramMechanism,
        password: &str,
        salt: Vec<u8>,
        iterations: u32,
    ) -> ScramCredential {
        let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
        ScramCredential::from_salted_password(mechanism, salt, &salted, iterations)
    }

    /// Whether `password` is the one this credential was made from (PLAIN).
    pub fn matches_password(&self, mechanism: ScramMechanism, password: &str) -> bool {
        let salted = mechanism.salted_password(password.as_bytes(), &self.salt, self.iterations);
        let client_key = mechanism.hmac(&salted, b"Client Key");
        constant_time_eq(&mechanism.hash(&client_key), &self.stored_key)
    }
}

/// Why an exchange failed. Every variant is answered with
/// SASL_AUTHENTICATION_FAILED; the text is for the broker's log, and the
/// client is told only that its credentials were refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SaslError {
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("unknown user or wrong password")]
    BadCredentials,
    #[error("channel binding is not supported")]
    ChannelBinding,
    #[error("the authorization id differs from the user name")]
    AuthorizationId,
    #[error("SCRAM extensions (delegation tokens) are not supported")]
    Extensions,
    #[error("the nonce does not continue the server's")]
    Nonce,
    #[error("a message arrived after the exchange ended")]
    Finished,
    #[error("token refused: {0}")]
    InvalidToken(String),
}

/// The server side of one SCRAM exchange: client-first, then client-final.
#[derive(Debug)]
pub struct ScramServer {
    mechanism: ScramMechanism,
    state: ScramState,
}

#[derive(Debug)]
enum ScramState {
    AwaitingClientFirst,
    AwaitingClientFinal {
        user: String,
        credential: ScramCredential,
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
    },
    Finished,
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism) -> ScramServer {
        ScramServer {
            mechanism,
            state: ScramState::AwaitingClientFirst,
        }
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// Whether the next message is client-first.
    pub fn awaits_client_first(&self) -> bool {
        matches!(self.state, ScramState::AwaitingClientFirst)
    }

    /// Answers client-first with server-first. `credential_of` looks the
    /// user up; `server_nonce` is fresh random printable text.
    pub fn client_first(
        &mut self,
        message: &[u8],
        credential_of: impl FnOnce(&str) -> Option<ScramCredential>,
        server_nonce: &str,
    ) -> Result<Vec<u8>, SaslError> {
        if !matches!(self.state, ScramState::AwaitingClientFirst) {
            return Err(SaslError::Finished);
        }
        self.state = ScramState::Finished;
        let text =
            std::str::from_utf8(message).map_err(|_| SaslError::Malformed("client-first"))?;
        let (gs2_header, bare) = split_gs2_header(text)?;
        let mut fields = bare.split(',');
        let user = fields
            .next()
            .and_then(|f| f.strip_prefix("n="))
            .ok_or(SaslError::Malformed("client-first user"))
            .and_then(decode_saslname)?;
        let client_nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .filter(|n| !n.is_empty())
            .ok_or(SaslError::Malformed("client-first nonce"))?;
        if fields.next().is_some() {
            return Err(SaslError::Extensions);
        }
        if let Some(authzid) = gs2_authzid(gs2_header)? {
            if authzid != user {
                return Err(SaslError::AuthorizationId);
            }
        }
        let credential = credential_of(&user).ok_or(SaslError::BadCredentials)?;
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&credential.salt),
            credential.iterations
        );
        let answer = server_first.clone().into_bytes();
        self.state = ScramState::AwaitingClientFinal {
            user,
            credential,
            gs2_header: gs2_header.to_string(),
            client_first_bare: bare.to_string(),
            server_first,
            nonce,
        };
        Ok(answer)
    }

    /// Checks client-final's proof; answers server-final and the user.
    pub fn client_final(&mut self, message: &[u8]) -> Result<(Vec<u8>, String), SaslError> {
        let ScramState::AwaitingClientFinal {
            user,
            credential,
            gs2_header,
            client_first_bare,
            server_first,
            nonce,
        } = std::mem::replace(&mut self.state, ScramState::Finished)
        else {
            return Err(SaslError::Finished);
        };
        let text =
            std::str::from_utf8(message).map_err(|_| SaslError::Malformed("client-final"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(SaslError::Malformed("client-final proof"))?;
        let mut fields = without_proof.split(',');
        let binding = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or(SaslError::Malformed("client-final channel binding"))?;
        if BASE64.decode(binding).ok().as_deref() != Some(gs2_header.as_bytes()) {
            return Err(SaslError::ChannelBinding);
        }
        let client_nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or(SaslError::Malformed("client-final nonce"))?;
        if client_nonce != nonce {
            return Err(SaslError::Nonce);
        }
        if fields.next().is_some() {
            return Err(SaslError::Extensions);
        }
        let proof = BASE64
            .decode(proof)
            .map_err(|_| SaslError::Malformed("client proof"))?;
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let m = self.mechanism;
        let client_signature = m.hmac(&credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(SaslError::BadCredentials);
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        if !constant_time_eq(&m.hash(&client_key), &credential.stored_key) {
            return Err(SaslError::BadCredentials);
        }
        let server_signature = m.hmac(&credential.server_key, auth_message.as_bytes());
        let server_final = format!("v={}", BASE64.encode(server_signature));
        Ok((server_final.into_bytes(), user))
    }
}

/// `gs2-header` and `client-first-message-bare`: the header is `n,,` or
/// `n,a=<authzid>,` (or `y,...`: the client could bind but thinks the
/// server cannot); `p=` asks for channel binding, which Kafka does not do.
fn split_gs2_header(text: &str) -> Result<(&str, &str), SaslError> {
    let flag_end = text.find(',').ok_or(SaslError::Malformed("gs2 header"))?;
    match &text[..flag_end] {
        "n" | "y" => {}
        flag if flag.starts_with("p=") => return Err(SaslError::ChannelBinding),
        _ => return Err(SaslError::Malformed("gs2 header")),
    }
    let authz_end = text[flag_end + 1..]
        .find(',')
        .ok_or(SaslError::Malformed("gs2 header"))?
        + flag_end
        + 1;
    Ok((&text[..=authz_end], &text[authz_end + 1..]))
}

fn gs2_authzid(gs2_header: &str) -> Result<Option<String>, SaslError> {
    let authz = gs2_header
        .split(',')
        .nth(1)
        .ok_or(SaslError::Malformed("gs2 header"))?;
    match authz {
        "" => Ok(None),
        a => a
            .strip_prefix("a=")
            .ok_or(SaslError::Malformed("authorization id"))
            .and_then(decode_saslname)
            .map(Some),
    }
}

/// RFC 5802's saslname: `=2C` is a comma, `=3D` an equals sign, and no
/// other `=` may appear.
fn decode_saslname(text: &str) -> Result<String, SaslError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let escape = rest
            .get(at..at + 3)
            .ok_or(SaslError::Malformed("user name"))?;
        out.push(match escape {
            "=2C" => ',',
            "=3D" => '=',
            _ => return Err(SaslError::Malformed("user name")),
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(SaslError::Malformed("user name"));
    }
    Ok(out)
}

/// PLAIN (RFC 4616): `[authzid] NUL authcid NUL password`, as (user,
/// password). An authorization id other than the user is refused, as Kafka.
pub fn parse_plain(message: &[u8]) -> Result<(String, String), SaslError> {
    let text = std::str::from_utf8(message).map_err(|_| SaslError::Malformed("PLAIN message"))?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed("PLAIN message"));
    };
    if user.is_empty() || password.is_empty() {
        return Err(SaslError::Malformed("PLAIN message"));
    }
    if !authzid.is_empty() && authzid != user {
        return Err(SaslError::AuthorizationId);
    }
    Ok((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example exchange (user "user", password "pencil").
    #[test]
    fn the_rfc_7677_exchange() {
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let credential =
            ScramCredential::from_password(ScramMechanism::Sha256, "pencil", salt, 4096);
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        let first = server
            .client_first(
                b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
                |u| (u == "user").then(|| credential.clone()),
                "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            )
            .unwrap();
        assert_eq!(
            String::from_utf8(first).unwrap(),
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let (last, user) = server
            .client_final(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        assert_eq!(
            String::from_utf8(last).unwrap(),
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        assert_eq!(user, "user");
        assert_eq!(server.client_final(b"again"), Err(SaslError::Finished));
    }

    #[test]
    fn a_wrong_proof_an_unknown_user_and_bad_messages_are_refused() {
        let salt = b"salt".to_vec();
        let credential =
            ScramCredential::from_password(ScramMechanism::Sha512, "right", salt, 4096);
        let lookup = |u: &str| (u == "alice").then(|| credential.clone());
        let mut server = ScramServer::new(ScramMechanism::Sha512);
        server
            .client_first(b"n,,n=alice,r=abc", lookup, "xyz")
            .unwrap();
        let forged = format!("c=biws,r=abcxyz,p={}", BASE64.encode([7u8; 64]));
        assert_eq!(
            server.client_final(forged.as_bytes()),
            Err(SaslError::BadCredentials)
        );

        let first = |message: &[u8]| {
            ScramServer::new(ScramMechanism::Sha512).client_first(message, lookup, "n")
        };
        assert_eq!(first(b"n,,n=bob,r=abc"), Err(SaslError::BadCredentials));
        assert_eq!(
            first(b"p=tls-unique,,n=alice,r=abc"),
            Err(SaslError::ChannelBinding)
        );
        assert_eq!(
            first(b"n,a=bob,n=alice,r=abc"),
            Err(SaslError::AuthorizationId)
        );
        assert_eq!(
            first(b"n,,n=alice,r=abc,tokenauth=true"),
            Err(SaslError::Extensions)
        );
        for garbage in [
            &b""[..],
            b"\xff\xfe",
            b"n,,",
            b"x,,n=alice,r=a",
            b"n,,n=al=ice,r=a",
            b"n,,r=a",
        ] {
            assert!(
                matches!(first(garbage), Err(SaslError::Malformed(_))),
                "{garbage:?}"
            );
        }
        let mut server = ScramServer::new(ScramMechanism::Sha512);
        server
            .client_first(b"n,,n=alice,r=abc", lookup, "xyz")
            .unwrap();
        assert_eq!(
            server.client_final(b"c=biws,r=other,p=AAAA"),
            Err(SaslError::Nonce)
        );
    }

    #[test]
    fn plain_checks_the_password_against_the_scram_credential() {
        let credential = ScramCredential::from_password(
            ScramMechanism::Sha256,
            "s3cret",
            b"NaCl".to_vec(),
            4096,
        );
        assert!(credential.matches_password(ScramMechanism::Sha256, "s3cret"));
        assert!(!credential.matches_password(ScramMechanism::Sha256, "s3cret!"));
        assert_eq!(
            parse_plain(b"\0alice\0s3cret").unwrap(),
            ("alice".into(), "s3cret".into())
        );
        assert_eq!(
            parse_plain(b"alice\0alice\0pw").unwrap(),
            ("alice".into(), "pw".into())
        );
        assert_eq!(
            parse_plain(b"bob\0alice\0pw"),
            Err(SaslError::AuthorizationId)
        );
        assert!(parse_plain(b"alice\0pw").is_err());
        assert!(parse_plain(b"\0alice\0").is_err());
    }

    #[test]
    fn saslnames_unescape() {
        assert_eq!(decode_saslname("a=2Cb=3Dc").unwrap(), "a,b=c");
        assert!(decode_saslname("a=2").is_err());
        assert!(decode_saslname("").is_err());
    }
}
