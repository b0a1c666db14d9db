//! SASL/SCRAM users (KIP-554): DescribeUserScramCredentials and
//! AlterUserScramCredentials, as Kafka's AdminClient sends them. The caller
//! salts the password (the broker never sees it). Runs on the CLI's main
//! thread.

use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::{Client, ClientError, Target};

/// One user and the SCRAM mechanisms it has credentials for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramUser {
    pub name: String,
    /// (mechanism id: 1 SCRAM-SHA-256, 2 SCRAM-SHA-512; iterations)
    pub credentials: Vec<(i8, i32)>,
}

/// A credential to set: the salt and the salted password, never the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramUpsertion {
    pub user: String,
    pub mechanism: i8,
    pub iterations: i32,
    pub salt: Vec<u8>,
    pub salted_password: Vec<u8>,
}

impl Client {
    /// Every user with a SCRAM credential.
    pub fn describe_scram_users(&mut self) -> Result<Vec<ScramUser>, ClientError> {
        let (_, response) = self.call(Target::Any, |_| {
            DescribeUserScramCredentialsRequest::default()
        })?;
        if response.error_code != 0 {
            return Err(ClientError::kafka(
                "DescribeUserScramCredentials",
                response.error_code,
                "",
                response.error_message.as_deref(),
            ));
        }
        Ok(response
            .results
            .iter()
            .map(|r| ScramUser {
                name: r.user.to_string(),
                credentials: r
                    .credential_infos
                    .iter()
                    .map(|c| (c.mechanism, c.iterations))
                    .collect(),
            })
            .collect())
    }

    /// Sets and deletes credentials in one request; the first refused
    /// user's error comes back.
    pub fn alter_scram_credentials(
        &mut self,
        upsertions: &[ScramUpsertion],
        deletions: &[(String, i8)],
    ) -> Result<(), ClientError> {
        let request = AlterUserScramCredentialsRequest::default()
            .with_upsertions(
                upsertions
                    .iter()
                    .map(|u| {
                        ScramCredentialUpsertion::default()
                            .with_name(StrBytes::from_string(u.user.clone()))
                            .with_mechanism(u.mechanism)
                            .with_iterations(u.iterations)
                            .with_salt(u.salt.clone().into())
                            .with_salted_password(u.salted_password.clone().into())
                    })
                    .collect(),
            )
            .with_deletions(
                deletions
                    .iter()
                    .map(|(user, mechanism)| {
                        ScramCredentialDeletion::default()
                            .with_name(StrBytes::from_string(user.clone()))
                            .with_mechanism(*mechanism)
                    })
                    .collect(),
            );
        let (_, response) = self.call(Target::Controller, |_| request)?;
        match response.results.iter().find(|r| r.error_code != 0) {
            None => Ok(()),
            Some(refused) => Err(ClientError::kafka(
                "AlterUserScramCredentials",
                refused.error_code,
                refused.user.to_string(),
                refused.error_message.as_deref(),
            )),
        }
    }
}
