//! `tidemark quorum` (run one quorum node) and `tidemark cluster status`
//! (ask a quorum who leads and what it holds). Main thread: each builds its
//! own tokio runtime; the quorum's signal watcher is one extra thread.
//!
//! `cluster status --quorum-tls-config FILE` speaks mutual TLS to the quorum
//! as a broker does: FILE is a broker config (the broker's own file works)
//! whose `quorum.ssl.*` keys, and `quorum.secret` and `quorum.endpoints`,
//! are used; Kafka's tools take `--zk-tls-config-file` the same way (KIP-515).
use broker::config::BrokerConfig;
use clap::{Args, Subcommand};
use quorum::config::{QuorumConfig, QuorumFile, SECRET_ENV};
use quorum::protocol::NodeStatus;
use quorum::ClusterView;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct QuorumArgs {
    /// This node's id (one of the ids in --peers).
    #[arg(long)]
    pub node_id: Option<u64>,
    /// Address to serve the quorum protocol on, HOST:PORT.
    #[arg(long)]
    pub listen: Option<String>,
    /// Every node of the group: 1=HOST:PORT,2=HOST:PORT,3=HOST:PORT.
    #[arg(long)]
    pub peers: Option<String>,
    /// Where the Raft log, vote and snapshots live.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// A TOML file with the same settings and more (flags win).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Print the quorum's leader, revision, brokers and topics.
    Status {
        /// Quorum nodes, HOST:PORT,HOST:PORT,... (default: the
        /// `quorum.endpoints` of --quorum-tls-config).
        #[arg(long)]
        quorum: Option<String>,
        /// A broker config file whose quorum.ssl.* keys (and quorum.secret,
        /// quorum.endpoints) are used to reach a TLS quorum.
        #[arg(long, value_name = "FILE")]
        quorum_tls_config: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn init_logging() {
    super::logging::init("info,openraft=warn");
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))
}

/// Resolves on SIGTERM or SIGINT (watched from a plain thread).
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .map_err(|e| format!("cannot watch signals: {e}"))?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("quorum-signals".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                let _ = tx.send(());
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    Ok(async move {
        let _ = rx.await;
    })
}

pub fn run_quorum(args: QuorumArgs) -> Result<(), String> {
    init_logging();
    let file = match &args.config {
        Some(path) => QuorumFile::load(path).map_err(|e| e.to_string())?,
        None => QuorumFile::default(),
    };
    let config = QuorumConfig::build(file, args.node_id, args.listen, args.peers, args.data_dir)
        .map_err(|e| e.to_string())?;
    let shutdown = shutdown_signal()?;
    runtime(2)?
        .block_on(quorum::node::run(config, shutdown))
        .map_err(|e| e.to_string())
}

#[derive(Serialize)]
struct Status {
    nodes: Vec<Result<NodeStatus, String>>,
    leader: Option<String>,
    view: Option<ClusterView>,
    error: Option<String>,
}

pub fn run_cluster(args: ClusterArgs) -> Result<(), String> {
    let ClusterCommand::Status {
        quorum,
        quorum_tls_config,
        json,
    } = args.command;
    let mut client_config = match &quorum_tls_config {
        Some(path) => BrokerConfig::from_file(path).map_err(|e| e.to_string())?,
        None => BrokerConfig::default(),
    };
    if let Some(quorum) = quorum {
        client_config.quorum_endpoints = quorum;
    }
    if let Ok(secret) = std::env::var(SECRET_ENV) {
        if !secret.is_empty() {
            client_config.quorum_secret = Some(secret);
        }
    }
    let endpoints = client_config.quorum_endpoints();
    if endpoints.is_empty() {
        return Err(
            "give the quorum nodes with --quorum (or quorum.endpoints in --quorum-tls-config)"
                .into(),
        );
    }
    let status = runtime(1)?.block_on(async {
        let mut client = client_config
            .quorum_client()
            .with_timeouts(Duration::from_secs(3), Duration::from_secs(6));
        let mut nodes = Vec::new();
        for endpoint in &endpoints {
            nodes.push(client.status(endpoint).await.map_err(|e| e.to_string()));
        }
        let (view, error) = match client.read().await {
            Ok(view) => (Some(view), None),
            Err(e) => (None, Some(e.to_string())),
        };
        Status {
            nodes,
            leader: client.leader().map(str::to_string),
            view,
            error,
        }
    });
    if json {
        let text = serde_json::to_string_pretty(&status).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        print_status(&status);
    }
    match status.error {
        Some(e) => Err(format!("no linearizable read: {e}")),
        None => Ok(()),
    }
}

fn print_status(status: &Status) {
    for node in &status.nodes {
        match node {
            Ok(n) => println!(
                "node {} {} term {} leader {:?} applied {:?} revision {}",
                n.node_id, n.role, n.term, n.leader, n.last_applied_index, n.revision
            ),
            Err(e) => println!("node unreachable: {e}"),
        }
    }
    println!("leader: {}", status.leader.as_deref().unwrap_or("none"));
    let Some(view) = &status.view else {
        return;
    };
    println!(
        "cluster id: {}  revision: {}",
        view.cluster_id, view.revision
    );
    for b in view.brokers.values() {
        let rack = b.rack.as_deref().unwrap_or("-");
        println!("broker {} {}:{} rack {rack}", b.broker_id, b.host, b.port);
    }
    for t in view.topics.values() {
        println!(
            "topic {} ({} partitions, id {})",
            t.name,
            t.partitions.len(),
            t.topic_id
        );
        for (i, p) in t.partitions.iter().enumerate() {
            println!(
                "  {i}: leader {} epoch {} replicas {:?} isr {:?}",
                model::BrokerId::to_wire(p.leader),
                p.leader_epoch,
                p.replicas,
                p.isr
            );
        }
    }
}
