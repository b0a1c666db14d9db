//! The `tidemark` command line: `dev` starts a broker, `topic`, `produce`,
//! `consume` and `group` speak the Kafka protocol to any Kafka-compatible cluster.
//! Runs on the main thread, before any shard exists.
pub mod acl;
pub mod bench;
pub mod command_config;
pub mod consume;
pub mod dev;
pub mod dev_secure;
pub mod group;
pub mod logging;
pub mod produce;
pub mod quorum;
pub mod topic;
pub mod tune;
pub mod user;

use clap::{Parser, Subcommand};

/// The client settings of the commands that speak the Kafka protocol:
/// the bootstrap list, the request timeout, and the TLS and SASL settings of
/// `--command-config FILE`, if given.
pub fn client_config(
    bootstrap: &str,
    timeout_ms: u64,
    command_config: Option<&std::path::Path>,
) -> Result<client::ClientConfig, client::ClientError> {
    let mut config =
        client::ClientConfig::new(bootstrap, std::time::Duration::from_millis(timeout_ms));
    if let Some(file) = command_config {
        config.security = command_config::load(file)?;
    }
    Ok(config)
}

/// Tidemark: a Kafka-compatible message broker.
#[derive(Parser, Debug)]
#[command(name = "tidemark", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start one broker with zero configuration (a single-node cluster).
    Dev(dev::DevArgs),
    /// Start a broker from a configuration file.
    Broker(dev::BrokerArgs),
    /// Create, list, describe and delete topics.
    Topic(topic::TopicArgs),
    /// Produce lines from standard input to a topic.
    Produce(produce::ProduceArgs),
    /// Consume a topic to standard output.
    Consume(consume::ConsumeArgs),
    /// List, describe, reset the offsets of, and delete consumer groups.
    Group(group::GroupArgs),
    /// Check (or apply) the Linux settings in tuning/.
    Tune(tune::TuneArgs),
    /// Load generator: produce, consume or end-to-end against any Kafka-compatible broker.
    Bench(bench::BenchArgs),
    /// Run one node of the quorum service (the cluster's metadata store).
    Quorum(quorum::QuorumArgs),
    /// Ask a quorum about the cluster (`cluster status`).
    Cluster(quorum::ClusterArgs),
    /// Create, delete and list SASL/SCRAM users.
    User(user::UserArgs),
    /// Create, list and delete ACLs.
    Acl(acl::AclArgs),
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let result: Result<(), String> = match cli.command {
        Command::Dev(args) => dev::run_dev(args).map_err(|e| e.to_string()),
        Command::Broker(args) => dev::run_broker(args).map_err(|e| e.to_string()),
        Command::Topic(args) => topic::run(args).map_err(|e| e.to_string()),
        Command::Produce(args) => produce::run(args).map_err(|e| e.to_string()),
        Command::Consume(args) => consume::run(args).map_err(|e| e.to_string()),
        Command::Group(args) => group::run(args).map_err(|e| e.to_string()),
        Command::Tune(args) => tune::run(args),
        Command::Bench(args) => bench::run(args).map_err(|e| e.to_string()),
        Command::Quorum(args) => quorum::run_quorum(args),
        Command::Cluster(args) => quorum::run_cluster(args),
        Command::User(args) => user::run(args),
        Command::Acl(args) => acl::run(args),
    };
    match result {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("tidemark: {message}");
            1
        }
    }
}
