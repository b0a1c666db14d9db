//! `tidemark user create | delete | list`: the SASL/SCRAM users of a
//! cluster, managed through the Kafka API (AlterUserScramCredentials and
//! DescribeUserScramCredentials, KIP-554) as `kafka-configs --entity-type
//! users` manages them. The password is salted here; only the salted form
//! travels. Runs on the CLI's main thread, over a PLAINTEXT listener (the
//! CLI's client does not speak TLS or SASL).

use std::io::BufRead;

use broker::security::scram::{random_salt, ScramMechanism};
use clap::{Args, Subcommand};
use client::{Client, ScramUpsertion};

/// Create, delete and list SASL/SCRAM users.
#[derive(Args, Debug)]
pub struct UserArgs {
    /// The broker to bootstrap from (comma-separated list allowed).
    #[arg(short = 'b', long = "bootstrap-server", default_value = client::DEFAULT_BOOTSTRAP, global = true)]
    pub bootstrap_server: String,
    /// Request timeout in milliseconds.
    #[arg(long = "timeout-ms", default_value_t = 30_000, global = true)]
    pub timeout_ms: u64,
    /// Kafka client properties for a secured listener (`security.protocol`,
    /// `ssl.truststore.location`, `sasl.mechanism`, `sasl.jaas.config`), as
    /// Kafka's tools take them.
    #[arg(long = "command-config", global = true)]
    pub command_config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: UserCommand,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user, or set its password.
    Create {
        /// User name.
        name: String,
        /// The password; read from the first line of standard input when
        /// omitted (so that it stays out of the process list).
        #[arg(long)]
        password: Option<String>,
        /// SCRAM-SHA-256 or SCRAM-SHA-512 (repeatable; both by default).
        #[arg(long = "mechanism")]
        mechanisms: Vec<String>,
        /// PBKDF2 iterations, 4096 to 16384.
        #[arg(long, default_value_t = 4096)]
        iterations: i32,
    },
    /// Delete a user's credentials (all of them by default).
    Delete {
        /// User name.
        name: String,
        /// Only this mechanism's credential (repeatable).
        #[arg(long = "mechanism")]
        mechanisms: Vec<String>,
    },
    /// List users and their mechanisms.
    List,
}

/// Runs a `user` subcommand.
pub fn run(args: UserArgs) -> Result<(), String> {
    let config = super::client_config(
        &args.bootstrap_server,
        args.timeout_ms,
        args.command_config.as_deref(),
    )
    .map_err(|e| e.to_string())?;
    let mut client = Client::connect(config).map_err(|e| e.to_string())?;
    match args.command {
        UserCommand::Create {
            name,
            password,
            mechanisms,
            iterations,
        } => {
            let password = match password {
                Some(p) => p,
                None => read_password()?,
            };
            let upsertions = mechanisms_of(&mechanisms)?
                .into_iter()
                .map(|m| upsertion(&name, &password, m, iterations))
                .collect::<Result<Vec<_>, String>>()?;
            // One request per mechanism: Kafka refuses two alterations of
            // one user in a request (DUPLICATE_RESOURCE).
            for upsertion in upsertions {
                client
                    .alter_scram_credentials(&[upsertion], &[])
                    .map_err(|e| e.to_string())?;
            }
            println!("Created user {name}.");
        }
        UserCommand::Delete { name, mechanisms } => {
            let wanted = mechanisms_of(&mechanisms)?;
            let users = client.describe_scram_users().map_err(|e| e.to_string())?;
            let held: Vec<i8> = users
                .iter()
                .find(|u| u.name == name)
                .map(|u| u.credentials.iter().map(|(m, _)| *m).collect())
                .unwrap_or_default();
            // Without --mechanism, whatever the user has; a named mechanism
            // it lacks is sent anyway, and the broker's RESOURCE_NOT_FOUND
            // says so.
            let deletions: Vec<(String, i8)> = wanted
                .iter()
                .map(|m| m.kafka_id())
                .filter(|id| held.contains(id) || !mechanisms.is_empty())
                .map(|id| (name.clone(), id))
                .collect();
            if deletions.is_empty() {
                return Err(format!("no user named {name}"));
            }
            for deletion in deletions {
                client
                    .alter_scram_credentials(&[], &[deletion])
                    .map_err(|e| e.to_string())?;
            }
            println!("Deleted user {name}.");
        }
        UserCommand::List => {
            let users = client.describe_scram_users().map_err(|e| e.to_string())?;
            println!("{:<32} MECHANISMS", "NAME");
            for user in users {
                let mechanisms: Vec<String> = user
                    .credentials
                    .iter()
                    .map(|(id, iterations)| {
                        let name = ScramMechanism::from_kafka_id(*id).map_or("?", |m| m.name());
                        format!("{name} (iterations={iterations})")
                    })
                    .collect();
                println!("{:<32} {}", user.name, mechanisms.join(", "));
            }
        }
    }
    Ok(())
}

/// The named mechanisms, or both when none is named.
fn mechanisms_of(names: &[String]) -> Result<Vec<ScramMechanism>, String> {
    if names.is_empty() {
        return Ok(ScramMechanism::ALL.to_vec());
    }
    names
        .iter()
        .map(|n| {
            ScramMechanism::from_name(n)
                .ok_or_else(|| format!("{n}: not a SCRAM mechanism (SCRAM-SHA-256, SCRAM-SHA-512)"))
        })
        .collect()
}

fn upsertion(
    user: &str,
    password: &str,
    mechanism: ScramMechanism,
    iterations: i32,
) -> Result<ScramUpsertion, String> {
    let rounds = u32::try_from(iterations).map_err(|_| "iterations must be positive")?;
    let salt = random_salt().ok_or("no randomness for a salt")?;
    Ok(ScramUpsertion {
        user: user.to_string(),
        mechanism: mechanism.kafka_id(),
        iterations,
        salted_password: mechanism.salted_password(password.as_bytes(), &salt, rounds),
        salt,
    })
}

fn read_password() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading the password from standard input: {e}"))?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        return Err("give --password or the password on standard input".into());
    }
    Ok(password)
}
