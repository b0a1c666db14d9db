//! `tidemark acl create | list | delete`: Kafka's ACLs through the Kafka
//! API (CreateAcls, DescribeAcls, DeleteAcls), in the manner of
//! `kafka-acls`. Runs on the CLI's main thread, over a PLAINTEXT listener
//! as `User:ANONYMOUS` (the CLI's client speaks neither TLS nor SASL), so
//! that principal needs Alter on the cluster or a place in `super.users`.

use clap::{Args, Subcommand};
use client::acls::{Acl, AclQuery};
use client::Client;
use model::acl::{
    AclOperation, AclPermission, PatternType, ResourceType, ANY_HOST, ANY_ID, CLUSTER_RESOURCE,
    MATCH_ID,
};

/// Create, list and delete ACLs.
#[derive(Args, Debug)]
pub struct AclArgs {
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
    pub command: AclCommand,
}

/// The resource an ACL command names.
#[derive(Args, Debug, Default)]
pub struct ResourceArgs {
    /// A topic (`*` for every topic).
    #[arg(long, conflicts_with_all = ["group", "cluster"])]
    pub topic: Option<String>,
    /// A consumer group (`*` for every group).
    #[arg(long, conflicts_with_all = ["topic", "cluster"])]
    pub group: Option<String>,
    /// The cluster.
    #[arg(long, conflicts_with_all = ["topic", "group"])]
    pub cluster: bool,
    /// The name is a prefix (Kafka's PREFIXED pattern type).
    #[arg(long)]
    pub prefixed: bool,
}

impl ResourceArgs {
    fn named(&self) -> Option<(ResourceType, String)> {
        match (&self.topic, &self.group, self.cluster) {
            (Some(t), _, _) => Some((ResourceType::Topic, t.clone())),
            (_, Some(g), _) => Some((ResourceType::Group, g.clone())),
            (_, _, true) => Some((ResourceType::Cluster, CLUSTER_RESOURCE.to_string())),
            _ => None,
        }
    }

    fn pattern(&self) -> PatternType {
        match self.prefixed {
            true => PatternType::Prefixed,
            false => PatternType::Literal,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum AclCommand {
    /// Allow (or deny) a principal operations on a resource.
    Create {
        #[command(flatten)]
        resource: ResourceArgs,
        /// The principal allowed, `User:alice` (or `User:*`).
        #[arg(long = "allow", conflicts_with = "deny")]
        allow: Option<String>,
        /// The principal denied.
        #[arg(long = "deny")]
        deny: Option<String>,
        /// Read, Write, Create, Delete, Alter, Describe, ClusterAction,
        /// DescribeConfigs, AlterConfigs, IdempotentWrite, All (repeatable).
        #[arg(long = "operation", required = true)]
        operations: Vec<String>,
        /// The client host (IP address); every host by default.
        #[arg(long, default_value = ANY_HOST)]
        host: String,
    },
    /// List ACLs, of one resource or principal, or all.
    List {
        #[command(flatten)]
        resource: ResourceArgs,
        #[arg(long)]
        principal: Option<String>,
    },
    /// Delete the ACLs of a resource (or of a principal on it).
    Delete {
        #[command(flatten)]
        resource: ResourceArgs,
        #[arg(long)]
        principal: Option<String>,
    },
}

/// Runs an `acl` subcommand.
pub fn run(args: AclArgs) -> Result<(), String> {
    let config = super::client_config(
        &args.bootstrap_server,
        args.timeout_ms,
        args.command_config.as_deref(),
    )
    .map_err(|e| e.to_string())?;
    let mut client = Client::connect(config).map_err(|e| e.to_string())?;
    match args.command {
        AclCommand::Create {
            resource,
            allow,
            deny,
            operations,
            host,
        } => {
            let (resource_type, name) = resource
                .named()
                .ok_or("name the resource: --topic, --group or --cluster")?;
            let (principal, permission) = match (allow, deny) {
                (Some(p), None) => (p, AclPermission::Allow),
                (None, Some(p)) => (p, AclPermission::Deny),
                _ => return Err("give --allow PRINCIPAL or --deny PRINCIPAL".into()),
            };
            let acls = operations
                .iter()
                .map(|op| {
                    let operation = AclOperation::from_name(op)
                        .ok_or_else(|| format!("{op}: not an ACL operation"))?;
                    Ok(Acl {
                        resource_type: resource_type.id(),
                        resource_name: name.clone(),
                        pattern_type: resource.pattern().id(),
                        principal: principal.clone(),
                        host: host.clone(),
                        operation: operation.id(),
                        permission: permission.id(),
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            client.create_acls(&acls).map_err(|e| e.to_string())?;
            println!("Created {} ACL(s).", acls.len());
        }
        AclCommand::List {
            resource,
            principal,
        } => {
            let acls = client
                .describe_acls(&query(&resource, principal, false))
                .map_err(|e| e.to_string())?;
            print_acls(&acls);
        }
        AclCommand::Delete {
            resource,
            principal,
        } => {
            if resource.named().is_none() && principal.is_none() {
                return Err(
                    "name a resource or --principal: deleting every ACL at once is not offered"
                        .into(),
                );
            }
            let deleted = client
                .delete_acls(&query(&resource, principal, true))
                .map_err(|e| e.to_string())?;
            println!("Deleted {} ACL(s).", deleted.len());
            print_acls(&deleted);
        }
    }
    Ok(())
}

/// The filter of `list` (the ACLs that apply to a named resource, as
/// MATCH) or `delete` (exactly the resource's pattern).
fn query(resource: &ResourceArgs, principal: Option<String>, exact: bool) -> AclQuery {
    let named = resource.named();
    let pattern_type = match (&named, exact) {
        (None, _) => ANY_ID,
        (Some(_), true) => resource.pattern().id(),
        (Some(_), false) if resource.prefixed => resource.pattern().id(),
        (Some(_), false) => MATCH_ID,
    };
    AclQuery {
        resource_type: named.as_ref().map_or(ANY_ID, |(t, _)| t.id()),
        resource_name: named.map(|(_, n)| n),
        pattern_type,
        principal,
        host: None,
        operation: ANY_ID,
        permission: ANY_ID,
    }
}

fn print_acls(acls: &[Acl]) {
    println!(
        "{:<8} {:<24} {:<9} {:<24} {:<16} {:<16} PERMISSION",
        "TYPE", "RESOURCE", "PATTERN", "PRINCIPAL", "HOST", "OPERATION"
    );
    for acl in acls {
        let resource_type =
            ResourceType::from_id(acl.resource_type).map_or("?".into(), |t| format!("{t:?}"));
        let pattern =
            PatternType::from_id(acl.pattern_type).map_or("?".into(), |p| format!("{p:?}"));
        let operation = AclOperation::from_id(acl.operation).map_or("?", AclOperation::name);
        let permission =
            AclPermission::from_id(acl.permission).map_or("?".into(), |p| format!("{p:?}"));
        println!(
            "{:<8} {:<24} {:<9} {:<24} {:<16} {:<16} {}",
            resource_type,
            acl.resource_name,
            pattern,
            acl.principal,
            acl.host,
            operation,
            permission
        );
    }
}
