//! Users' SCRAM credentials in the view (KIP-554): the checks and the
//! change of an upsert or a deletion. Pure, applied by `state::apply` on
//! every quorum node alike. A change is marked in the change log with
//! `SECURITY_TOUCHED`, a name no topic can have, so watchers are sent the
//! security state only when it changed.
use super::model::{ClusterView, StoredScramCredential};
use super::state::{CommandError, Outcome};

/// The change-log entry of a change to `ClusterView::security`.
pub const SECURITY_TOUCHED: &str = "<security>";
/// The SCRAM mechanisms a credential may be for.
pub const SCRAM_MECHANISMS: [&str; 2] = ["SCRAM-SHA-256", "SCRAM-SHA-512"];
/// Kafka's iteration bounds for SCRAM credentials.
pub const SCRAM_ITERATIONS_MIN: u32 = 4096;
pub const SCRAM_ITERATIONS_MAX: u32 = 16384;
/// Users with credentials, at most: the security state is sent whole.
pub const USERS_MAX: usize = 4096;
const USER_NAME_BYTES_MAX: usize = 255;
const SALT_BYTES_MAX: usize = 1024;

fn key_bytes(mechanism: &str) -> usize {
    match mechanism {
        "SCRAM-SHA-512" => 64,
        _ => 32,
    }
}

/// Sets `user`'s credential for `mechanism`, creating the user.
pub fn upsert_scram(
    view: &mut ClusterView,
    user: &str,
    mechanism: &str,
    credential: &StoredScramCredential,
    touched: &mut Vec<String>,
) -> Result<Outcome, CommandError> {
    check_mechanism(mechanism)?;
    if user.is_empty() || user.len() > USER_NAME_BYTES_MAX {
        return Err(unacceptable("the user name must have 1 to 255 bytes"));
    }
    if !(SCRAM_ITERATIONS_MIN..=SCRAM_ITERATIONS_MAX).contains(&credential.iterations) {
        return Err(unacceptable(&format!(
            "iterations must be between {SCRAM_ITERATIONS_MIN} and {SCRAM_ITERATIONS_MAX}"
        )));
    }
    if credential.salt.is_empty() || credential.salt.len() > SALT_BYTES_MAX {
        return Err(unacceptable("the salt must have 1 to 1024 bytes"));
    }
    let want = key_bytes(mechanism);
    if credential.stored_key.len() != want || credential.server_key.len() != want {
        return Err(unacceptable("the keys do not fit the mechanism"));
    }
    let users = &mut view.security.scram;
    if !users.contains_key(user) && users.len() >= USERS_MAX {
        return Err(unacceptable(&format!(
            "there are {USERS_MAX} users already"
        )));
    }
    users
        .entry(user.to_string())
        .or_default()
        .insert(mechanism.to_string(), credential.clone());
    touched.push(SECURITY_TOUCHED.to_string());
    Ok(Outcome::Done)
}

/// Removes `user`'s credential for `mechanism`, and the user with its last.
pub fn delete_scram(
    view: &mut ClusterView,
    user: &str,
    mechanism: &str,
    touched: &mut Vec<String>,
) -> Result<Outcome, CommandError> {
    check_mechanism(mechanism)?;
    let users = &mut view.security.scram;
    let removed = users.get_mut(user).and_then(|m| m.remove(mechanism));
    if removed.is_none() {
        return Err(CommandError::UnknownCredential {
            user: user.to_string(),
            mechanism: mechanism.to_string(),
        });
    }
    if users.get(user).is_some_and(|m| m.is_empty()) {
        users.remove(user);
    }
    touched.push(SECURITY_TOUCHED.to_string());
    Ok(Outcome::Done)
}

/// Whether setting this credential would leave the view as it is.
pub fn upsert_changes_nothing(
    view: &ClusterView,
    user: &str,
    mechanism: &str,
    credential: &StoredScramCredential,
) -> bool {
    view.security.scram.get(user).and_then(|m| m.get(mechanism)) == Some(credential)
}

fn check_mechanism(mechanism: &str) -> Result<(), CommandError> {
    if SCRAM_MECHANISMS.contains(&mechanism) {
        Ok(())
    } else {
        Err(CommandError::UnsupportedMechanism(mechanism.to_string()))
    }
}

fn unacceptable(message: &str) -> CommandError {
    CommandError::UnacceptableCredential(message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(iterations: u32) -> StoredScramCredential {
        StoredScramCredential {
            salt: vec![1; 16],
            stored_key: vec![2; 32],
            server_key: vec![3; 32],
            iterations,
        }
    }

    #[test]
    fn upsert_then_delete_each_mechanism() {
        let mut view = ClusterView::default();
        let mut touched = Vec::new();
        upsert_scram(
            &mut view,
            "alice",
            "SCRAM-SHA-256",
            &credential(4096),
            &mut touched,
        )
        .unwrap();
        assert_eq!(touched, [SECURITY_TOUCHED]);
        assert!(upsert_changes_nothing(
            &view,
            "alice",
            "SCRAM-SHA-256",
            &credential(4096)
        ));
        assert!(!upsert_changes_nothing(
            &view,
            "alice",
            "SCRAM-SHA-256",
            &credential(8192)
        ));
        delete_scram(&mut view, "alice", "SCRAM-SHA-256", &mut touched).unwrap();
        assert!(
            view.security.scram.is_empty(),
            "the user goes with its last credential"
        );
        assert!(matches!(
            delete_scram(&mut view, "alice", "SCRAM-SHA-256", &mut touched),
            Err(CommandError::UnknownCredential { .. })
        ));
    }

    #[test]
    fn bad_credentials_are_refused() {
        let mut view = ClusterView::default();
        let mut t = Vec::new();
        let cases = [
            ("", "SCRAM-SHA-256", credential(4096)),
            ("bob", "SCRAM-SHA-256", credential(100)),
            ("bob", "SCRAM-SHA-256", credential(1 << 20)),
            ("bob", "SCRAM-SHA-512", credential(4096)),
        ];
        for (user, mechanism, c) in cases {
            assert!(matches!(
                upsert_scram(&mut view, user, mechanism, &c, &mut t),
                Err(CommandError::UnacceptableCredential(_))
            ));
        }
        assert!(matches!(
            upsert_scram(&mut view, "bob", "PLAIN", &credential(4096), &mut t),
            Err(CommandError::UnsupportedMechanism(_))
        ));
        assert!(view.security.scram.is_empty() && t.is_empty());
    }
}
