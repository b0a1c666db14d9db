//! The client side of a SASL login, for a follower that logs in to its
//! leader over a SASL inter-broker listener: the credentials
//! (`ClientLogin`, from the inter-broker listener's JAAS config, as in
//! Kafka) and PLAIN's single message; SCRAM's client side is
//! `wire::scram::ScramClient`, shared with the CLI's client. Pure.
use super::sasl::SaslMechanism;
pub use wire::scram::{ScramClient, ScramClientError};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::scram::{ScramCredential, ScramMechanism, ScramServer};

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
