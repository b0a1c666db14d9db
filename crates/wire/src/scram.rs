//! SCRAM (RFC 5802, with SHA-256 and SHA-512 as RFC 7677 and Kafka's
//! KIP-84 use them): the mechanisms with their Kafka names and ids, the
//! key derivation both sides share, and the client side of an exchange,
//! which the broker's followers and the CLI's client log in with (the
//! server side is the broker's `security::scram`). Pure: the caller
//! supplies the nonce and carries the messages.
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ring::{digest, hmac, pbkdf2};
use std::num::NonZeroU32;
use thiserror::Error;

/// Kafka's bounds on SCRAM iterations (`ScramMechanism`'s minimum; a
/// maximum so that one login cannot cost a shard seconds of hashing).
pub const ITERATIONS_MIN: u32 = 4096;
pub const ITERATIONS_MAX: u32 = 16384;

/// A SCRAM mechanism, with Kafka's names and the ids AlterUserScramCredentials
/// and DescribeUserScramCredentials carry (KIP-554).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// KIP-554's type id: 1 for SHA-256, 2 for SHA-512.
    pub fn kafka_id(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_kafka_id(id: i8) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.kafka_id() == id)
    }

    fn hmac_algorithm(self) -> hmac::Algorithm {
        match self {
            ScramMechanism::Sha256 => hmac::HMAC_SHA256,
            ScramMechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest_algorithm(self) -> &'static digest::Algorithm {
        match self {
            ScramMechanism::Sha256 => &digest::SHA256,
            ScramMechanism::Sha512 => &digest::SHA512,
        }
    }

    fn pbkdf2_algorithm(self) -> pbkdf2::Algorithm {
        match self {
            ScramMechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramMechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        let key = hmac::Key::new(self.hmac_algorithm(), key);
        hmac::sign(&key, data).as_ref().to_vec()
    }

    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest_algorithm(), data)
            .as_ref()
            .to_vec()
    }

    /// Hi(password, salt, i) of RFC 5802: PBKDF2 with this HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.digest_algorithm().output_len()];
        let iterations = NonZeroU32::new(iterations.max(1)).expect("at least one iteration");
        pbkdf2::derive(
            self.pbkdf2_algorithm(),
            iterations,
            salt,
            password,
            &mut out,
        );
        out
    }
}

/// A fresh nonce: 18 random bytes as base64 (printable, without commas,
/// as SCRAM asks); `None` without randomness.
pub fn random_nonce() -> Option<String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 18];
    ring::rand::SystemRandom::new().fill(&mut bytes).ok()?;
    Some(BASE64.encode(bytes))
}

/// Why a server's SCRAM answer is refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ScramClientError {
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("the server's nonce does not continue the client's")]
    Nonce,
    #[error("the server's signature is wrong: it does not know the credential")]
    ServerSignature,
    #[error("a message arrived out of order")]
    Finished,
}

/// Whether two byte strings are equal, in time that does not depend on
/// where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// RFC 5802's saslname: a comma is `=2C` and an equals sign `=3D`.
fn encode_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// One SCRAM exchange, client side (no Debug: it holds the password).
pub struct ScramClient {
    mechanism: ScramMechanism,
    password: String,
    client_first_bare: String,
    nonce: String,
    /// Set by `client_final`: what server-final must carry.
    expected_server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    /// Starts an exchange for `user`; `nonce` is fresh random printable
    /// text without commas.
    pub fn new(mechanism: ScramMechanism, user: &str, password: &str, nonce: &str) -> ScramClient {
        ScramClient {
            mechanism,
            password: password.to_string(),
            client_first_bare: format!("n={},r={nonce}", encode_saslname(user)),
            nonce: nonce.to_string(),
            expected_server_signature: None,
        }
    }

    /// client-first, with the gs2 header of a client that does not bind
    /// the channel (Kafka never does).
    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// Answers server-first with client-final. The iteration count is held
    /// to the bounds the broker itself accepts, so a hostile leader cannot
    /// make a follower's shard hash for seconds.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramClientError> {
        let text = std::str::from_utf8(server_first)
            .map_err(|_| ScramClientError::Malformed("server-first"))?;
        let mut fields = text.split(',');
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or(ScramClientError::Malformed("server-first nonce"))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(ScramClientError::Nonce);
        }
        let salt = fields
            .next()
            .and_then(|f| f.strip_prefix("s="))
            .and_then(|s| BASE64.decode(s).ok())
            .ok_or(ScramClientError::Malformed("server-first salt"))?;
        let iterations = fields
            .next()
            .and_then(|f| f.strip_prefix("i="))
            .and_then(|i| i.parse::<u32>().ok())
            .filter(|i| (ITERATIONS_MIN..=ITERATIONS_MAX).contains(i))
            .ok_or(ScramClientError::Malformed("server-first iterations"))?;
        let m = self.mechanism;
        let salted = m.salted_password(self.password.as_bytes(), &salt, iterations);
        let without_proof = format!("c={},r={nonce}", BASE64.encode("n,,"));
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let client_key = m.hmac(&salted, b"Client Key");
        let client_signature = m.hmac(&m.hash(&client_key), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = m.hmac(&salted, b"Server Key");
        self.expected_server_signature = Some(m.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }

    /// Checks server-final: the server proved it knows the credential.
    pub fn check_server_final(&self, server_final: &[u8]) -> Result<(), ScramClientError> {
        let expected = self
            .expected_server_signature
            .as_ref()
            .ok_or(ScramClientError::Finished)?;
        let text = std::str::from_utf8(server_final)
            .map_err(|_| ScramClientError::Malformed("server-final"))?;
        let signature = text
            .strip_prefix("v=")
            .and_then(|v| BASE64.decode(v).ok())
            .ok_or(ScramClientError::Malformed("server-final"))?;
        match constant_time_eq(&signature, expected) {
            true => Ok(()),
            false => Err(ScramClientError::ServerSignature),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example, from the client's side.
    #[test]
    fn the_rfc_7677_exchange() {
        let mut client = ScramClient::new(
            ScramMechanism::Sha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO",
        );
        assert_eq!(client.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let last = client
            .client_final(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
            .unwrap();
        assert_eq!(
            String::from_utf8(last).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        client
            .check_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert_eq!(
            client.check_server_final(b"v=AAAA"),
            Err(ScramClientError::ServerSignature)
        );
    }

    #[test]
    fn a_server_first_that_does_not_continue_the_nonce_or_costs_too_much_is_refused() {
        let mut client = ScramClient::new(ScramMechanism::Sha256, "u", "p", "abc");
        assert_eq!(
            client.client_final(b"r=zzz123,s=c2FsdA==,i=4096"),
            Err(ScramClientError::Nonce)
        );
        assert_eq!(
            client.client_final(b"r=abc,s=c2FsdA==,i=4096"),
            Err(ScramClientError::Nonce)
        );
        assert!(client
            .client_final(b"r=abcdef,s=c2FsdA==,i=100000000")
            .is_err());
        assert!(client.client_final(b"garbage").is_err());
        assert_eq!(
            client.check_server_final(b"v=x"),
            Err(ScramClientError::Finished)
        );
    }
}
