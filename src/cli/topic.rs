//! `tidemark topic create | list | describe | delete`: topic administration in
//! the manner of kafka-topics.sh, over the blocking client. Runs on the CLI's
//! main thread.

use clap::{Args, Subcommand};

use client::{Client, ClientError, ConfigEntry, NewTopic, TopicInfo};

/// Create, list, describe and delete topics.
#[derive(Args, Debug)]
pub struct TopicArgs {
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
    pub command: TopicCommand,
}

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions (the broker's default when omitted).
        #[arg(long)]
        partitions: Option<i32>,
        /// Replication factor (the broker's default when omitted).
        #[arg(long = "replication-factor")]
        replication_factor: Option<i16>,
        /// A topic configuration override, KEY=VALUE (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
    },
    /// List topic names.
    List,
    /// Show a topic's partitions (leader, replicas, ISR) and configuration.
    Describe {
        /// Topic name.
        name: String,
        /// Print every configuration entry, not only the topic's overrides.
        #[arg(long = "all-configs")]
        all_configs: bool,
    },
    /// Delete a topic.
    Delete {
        /// Topic name.
        name: String,
    },
}

/// Runs a `topic` subcommand.
pub fn run(args: TopicArgs) -> Result<(), ClientError> {
    let config = super::client_config(
        &args.bootstrap_server,
        args.timeout_ms,
        args.command_config.as_deref(),
    )?;
    match args.command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            config: configs,
        } => {
            let topic = NewTopic {
                name,
                partitions,
                replication_factor,
                configs: parse_configs(&configs)?,
            };
            validate_new_topic(&topic)?;
            Client::connect(config)?.create_topic(&topic)?;
            println!("Created topic {}.", topic.name);
            Ok(())
        }
        TopicCommand::List => {
            let mut client = Client::connect(config)?;
            let metadata = client.refresh_metadata(None, false)?;
            for name in metadata.topics.keys() {
                println!("{name}");
            }
            Ok(())
        }
        TopicCommand::Describe { name, all_configs } => {
            let mut client = Client::connect(config)?;
            let topic = client.topic(&name, false)?;
            let configs = client.describe_topic_configs(&name)?;
            print!("{}", describe_text(&topic, &configs, all_configs));
            Ok(())
        }
        TopicCommand::Delete { name } => {
            Client::connect(config)?.delete_topic(&name)?;
            println!("Deleted topic {name}.");
            Ok(())
        }
    }
}

/// Parses `KEY=VALUE` overrides.
fn parse_configs(raw: &[String]) -> Result<Vec<(String, String)>, ClientError> {
    raw.iter()
        .map(|entry| match entry.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
            _ => Err(ClientError::InvalidArgument(format!(
                "--config expects KEY=VALUE, got '{entry}'"
            ))),
        })
        .collect()
}

fn validate_new_topic(topic: &NewTopic) -> Result<(), ClientError> {
    if topic.name.is_empty() {
        return Err(ClientError::InvalidArgument(
            "topic name is empty".to_owned(),
        ));
    }
    if matches!(topic.partitions, Some(p) if p < 1) {
        return Err(ClientError::InvalidArgument(
            "--partitions must be at least 1".to_owned(),
        ));
    }
    if matches!(topic.replication_factor, Some(r) if r < 1) {
        return Err(ClientError::InvalidArgument(
            "--replication-factor must be at least 1".to_owned(),
        ));
    }
    Ok(())
}

fn join_ids(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

fn config_text(entry: &ConfigEntry) -> String {
    let value = match (&entry.value, entry.sensitive) {
        (_, true) => "<sensitive>",
        (Some(v), false) => v.as_str(),
        (None, false) => "null",
    };
    format!("{}={}", entry.name, value)
}

/// A topic id as Kafka prints it: URL-safe base64 of the 16 bytes, unpadded.
fn kafka_uuid(id: &uuid::Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

/// The kafka-topics.sh style description of a topic.
fn describe_text(topic: &TopicInfo, configs: &[ConfigEntry], all_configs: bool) -> String {
    let replication = topic.partitions.first().map_or(0, |p| p.replicas.len());
    let overrides: Vec<String> = configs
        .iter()
        .filter(|c| c.is_topic_override())
        .map(config_text)
        .collect();
    let mut out = format!(
        "Topic: {}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}\n",
        topic.name,
        kafka_uuid(&topic.id),
        topic.partitions.len(),
        replication,
        overrides.join(",")
    );
    for p in &topic.partitions {
        let leader = if p.leader < 0 {
            "none".to_owned()
        } else {
            p.leader.to_string()
        };
        out.push_str(&format!(
            "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}",
            topic.name,
            p.id,
            leader,
            join_ids(&p.replicas),
            join_ids(&p.isr)
        ));
        if !p.offline_replicas.is_empty() {
            out.push_str(&format!("\tOffline: {}", join_ids(&p.offline_replicas)));
        }
        if p.error_code != 0 {
            out.push_str(&format!("\tError: {}", client::error_name(p.error_code)));
        }
        out.push('\n');
    }
    if all_configs {
        out.push_str("Configs:\n");
        for c in configs {
            let marker = if c.is_topic_override() {
                " (override)"
            } else {
                ""
            };
            out.push_str(&format!("\t{}{}\n", config_text(c), marker));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use client::PartitionInfo;

    #[test]
    fn configs_parsed() {
        let got = parse_configs(&["a=1".into(), "b=x=y".into(), "c=".into()]).expect("ok");
        assert_eq!(
            got,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x=y".into()),
                ("c".into(), String::new())
            ]
        );
        assert!(parse_configs(&["novalue".into()]).is_err());
        assert!(parse_configs(&["=v".into()]).is_err());
    }

    #[test]
    fn topic_id_like_kafka() {
        // Kafka prints Uuid(0x0123..., ...) as URL-safe base64 without padding.
        let id = uuid::Uuid::from_bytes([
            0xfb, 0xff, 0xbf, 0x00, 0x10, 0x83, 0x10, 0x51, 0x87, 0x20, 0x92, 0x8b, 0x30, 0xd3,
            0x8f, 0x41,
        ]);
        assert_eq!(kafka_uuid(&id), "-_-_ABCDEFGHIJKLMNOPQQ");
        assert_eq!(kafka_uuid(&uuid::Uuid::nil()).len(), 22);
    }

    #[test]
    fn describe_format() {
        let topic = TopicInfo {
            name: "t".into(),
            id: uuid::Uuid::nil(),
            error_code: 0,
            internal: false,
            partitions: vec![PartitionInfo {
                id: 0,
                error_code: 0,
                leader: 1,
                leader_epoch: 0,
                replicas: vec![1, 2],
                isr: vec![1],
                offline_replicas: vec![],
            }],
        };
        let configs = vec![
            ConfigEntry {
                name: "cleanup.policy".into(),
                value: Some("compact".into()),
                source: 1,
                read_only: false,
                sensitive: false,
            },
            ConfigEntry {
                name: "retention.ms".into(),
                value: Some("1".into()),
                source: 5,
                read_only: false,
                sensitive: false,
            },
        ];
        let text = describe_text(&topic, &configs, false);
        assert!(text.starts_with("Topic: t\tTopicId: AAAAAAAAAAAAAAAAAAAAAA\tPartitionCount: 1\tReplicationFactor: 2\tConfigs: cleanup.policy=compact\n"));
        assert!(text.contains("\tTopic: t\tPartition: 0\tLeader: 1\tReplicas: 1,2\tIsr: 1\n"));
        assert!(!text.contains("retention.ms"));
        assert!(describe_text(&topic, &configs, true).contains("\tretention.ms=1\n"));
    }
}
