//! The client side of a SASL login, for a follower that logs in to its
//! leader over a SASL inter-broker listener: the credentials
//! (`ClientLogin`, from the inter-broker listener's JAAS config, as in
//! Kafka), PLAIN's single message, and SCRAM's client-first, client-final
//! and the check of server-final (RFC 5802). Pure: the caller supplies the
//! client nonce and carries the messages.
use super::sasl::SaslMechanism;
use super::scram::{constant_time_eq, SaslError, ScramMechanism, ITERATIONS_MAX, ITERATIONS_MIN};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

/// Who a broker logs in as when it connects to another broker.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientLogin {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for ClientLogin {
    /// Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientLogin")
            .field("mechanism", &self.mechanism.name())
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// PLAIN's one message: no authorization id, the user, the password.
pub fn plain_message(login: &ClientLogin) -> Vec<u8> {
    format!("\0{}\0{}", login.username, login.password).into_bytes()
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
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, SaslError> {
        let text =
            std::str::from_utf8(server_first).map_err(|_| SaslError::Malformed("server-first"))?;
        let mut fields = text.split(',');
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or(SaslError::Malformed("server-first nonce"))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(SaslError::Nonce);
        }
        let salt = fields
            .next()
            .and_then(|f| f.strip_prefix("s="))
            .and_then(|s| BASE64.decode(s).ok())
            .ok_or(SaslError::Malformed("server-first salt"))?;
        let iterations = fields
            .next()
            .and_then(|f| f.strip_prefix("i="))
            .and_then(|i| i.parse::<u32>().ok())
            .filter(|i| (ITERATIONS_MIN..=ITERATIONS_MAX).contains(i))
            .ok_or(SaslError::Malformed("server-first iterations"))?;
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
    pub fn check_server_final(&self, server_final: &[u8]) -> Result<(), SaslError> {
        let expected = self
            .expected_server_signature
            .as_ref()
            .ok_or(SaslError::Finished)?;
        let text =
            std::str::from_utf8(server_final).map_err(|_| SaslError::Malformed("server-final"))?;
        let signature = text
            .strip_prefix("v=")
            .and_then(|v| BASE64.decode(v).ok())
            .ok_or(SaslError::Malformed("server-final"))?;
        match constant_time_eq(&signature, expected) {
            true => Ok(()),
            false => Err(SaslError::BadCredentials),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::scram::{ScramCredential, ScramServer};

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
            Err(SaslError::BadCredentials)
        );
    }

    #[test]
    fn logs_in_to_the_server_side_with_either_mechanism() {
        for m in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            let credential = ScramCredential::from_password(m, "s3cret", b"salt".to_vec(), 4096);
            let lookup = |u: &str| (u == "broker,1").then(|| credential.clone());
            let mut client = ScramClient::new(m, "broker,1", "s3cret", "abc");
            let mut server = ScramServer::new(m);
            let first = server
                .client_first(&client.client_first(), lookup, "xyz")
                .unwrap();
            let last = client.client_final(&first).unwrap();
            let (server_final, user) = server.client_final(&last).unwrap();
            assert_eq!(user, "broker,1");
            client.check_server_final(&server_final).unwrap();
        }
    }

    #[test]
    fn a_server_first_that_does_not_continue_the_nonce_or_costs_too_much_is_refused() {
        let mut client = ScramClient::new(ScramMechanism::Sha256, "u", "p", "abc");
        assert_eq!(
            client.client_final(b"r=zzz123,s=c2FsdA==,i=4096"),
            Err(SaslError::Nonce)
        );
        assert_eq!(
            client.client_final(b"r=abc,s=c2FsdA==,i=4096"),
            Err(SaslError::Nonce)
        );
        assert!(client
            .client_final(b"r=abcdef,s=c2FsdA==,i=100000000")
            .is_err());
        assert!(client.client_final(b"garbage").is_err());
        assert_eq!(client.check_server_final(b"v=x"), Err(SaslError::Finished));
    }

    #[test]
    fn plain_sends_the_user_and_password() {
        let login = ClientLogin {
            mechanism: SaslMechanism::Plain,
            username: "broker".into(),
            password: "pw".into(),
        };
        assert_eq!(
            crate::security::scram::parse_plain(&plain_message(&login)).unwrap(),
            ("broker".to_string(), "pw".to_string())
        );
        assert!(!format!("{login:?}").contains("pw"));
    }
}
