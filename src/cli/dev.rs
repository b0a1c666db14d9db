//! `tidemark dev` and `tidemark broker`: build the configuration, open the
//! topic registry, start the shards, and stop them cleanly on SIGINT/SIGTERM.
//! Runs on the main thread.
use super::dev_secure::{self, SecureError};
use broker::config::{BrokerConfig, ConfigError};
use broker::metadata::{standalone, MetadataStore};
use broker::replication::agent::{spawn_agent, AgentSetup, LocalRegistry, AGENT_QUEUE_MAX};
use broker::server::start_shards;
use clap::Args;
use quorum::embedded::{embedded_quorum_exists, start_embedded_quorum};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Address to listen on (and advertise).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub listen: String,
    /// Where topics and records are stored.
    #[arg(long, default_value = "./data")]
    pub data_dir: PathBuf,
    /// Number of shards (one executor per core); default: every core.
    #[arg(long)]
    pub cores: Option<usize>,
    /// A TOML config file (Kafka key names) applied before the flags.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override any config key: --set log.segment.bytes=1048576
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Serve SASL_SSL only, with ACLs: make (once, in <data dir>/secure/) a
    /// CA, a broker and a client certificate and the super user admin's
    /// password, and print the client settings (docs/security.md).
    #[arg(long)]
    pub secure: bool,
}

#[derive(Args, Debug)]
pub struct BrokerArgs {
    /// The broker's TOML config file (Kafka key names); the flags below win.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// This broker's id in the cluster (`node.id`).
    #[arg(long)]
    pub broker_id: Option<i32>,
    /// Address to listen on for Kafka clients (`listeners`).
    #[arg(long)]
    pub listen: Option<String>,
    /// The quorum service's endpoints, `host:port,host:port,...`
    /// (`quorum.endpoints`); without it the broker runs its own single-node
    /// quorum in its process, as `tidemark dev` does.
    #[arg(long)]
    pub quorum: Option<String>,
    /// Where topics and records are stored (`log.dirs`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Override any config key: --set num.partitions=3
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

#[derive(Debug, Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Metadata(#[from] broker::metadata::MetadataError),
    #[error("cannot create data directory {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error("{0}")]
    Shards(String),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("cannot start the quorum agent: {0}")]
    Agent(std::io::Error),
    #[error(transparent)]
    EmbeddedQuorum(#[from] quorum::embedded::EmbeddedError),
    #[error(transparent)]
    Secure(#[from] SecureError),
}

pub fn run_dev(args: DevArgs) -> Result<(), StartError> {
    let mut config = match &args.config {
        Some(path) => BrokerConfig::from_file(path)?,
        None => BrokerConfig::default(),
    };
    config.listen = args.listen.clone();
    config.data_dir = args.data_dir.clone();
    if let Some(cores) = args.cores {
        config.shards = cores;
    }
    config.apply_overrides(&args.overrides)?;
    if args.secure {
        make_secure(&mut config, &args)?;
    }
    secret_from_environment(&mut config);
    serve(config)
}

/// `--secure`: the certificates and the admin's password (made on the
/// first start), the settings that turn on SASL_SSL and ACLs, the admin as
/// the bootstrap user, and the client settings written and printed.
fn make_secure(config: &mut BrokerConfig, args: &DevArgs) -> Result<(), StartError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| StartError::DataDir(config.data_dir.clone(), e))?;
    let data_dir =
        std::fs::canonicalize(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone());
    let (files, password) = dev_secure::ensure_material(&data_dir)?;
    let user_keys = dev_secure::user_keys(args.config.as_deref(), &args.overrides);
    let settings = dev_secure::secure_overrides(config, &user_keys, &args.listen, &files)?;
    config.apply_overrides(&settings)?;
    let client = dev_secure::ClientSettings::for_config(config, &files, &password)?;
    let bootstrap_user = dev_secure::bootstrap_user(&password)?;
    client.write(&files)?;
    // Read by the broker when it loads its listeners; still the only
    // thread of the process here, so nothing reads the environment while it
    // changes.
    std::env::set_var(
        broker::broker::scram_users::BOOTSTRAP_USER_VARIABLE,
        bootstrap_user,
    );
    print!("{}", client.banner(&files, config));
    Ok(())
}

pub fn run_broker(args: BrokerArgs) -> Result<(), StartError> {
    let mut config = match &args.config {
        Some(path) => BrokerConfig::from_file(path)?,
        None => BrokerConfig::default(),
    };
    if let Some(id) = args.broker_id {
        config.node_id = id;
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(quorum) = args.quorum {
        config.quorum_endpoints = quorum;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    config.apply_overrides(&args.overrides)?;
    secret_from_environment(&mut config);
    serve(config)
}

/// As for `tidemark quorum`: the environment keeps the secret off command
/// lines and config files.
fn secret_from_environment(config: &mut BrokerConfig) {
    if let Ok(secret) = std::env::var(quorum::config::SECRET_ENV) {
        if !secret.is_empty() {
            config.quorum_secret = Some(secret);
        }
    }
}

/// How long a cluster broker waits at start for its first cluster view
/// before it says it is up anyway (its shards take connections only once
/// the view arrives).
const FIRST_VIEW_WAIT: Duration = Duration::from_secs(60);

/// Runs a broker until SIGINT or SIGTERM. A broker always has a
/// controller: the quorum service at `quorum.endpoints`, or, when none is
/// configured, a single-node quorum in this process, which it joins.
pub fn serve(mut config: BrokerConfig) -> Result<(), StartError> {
    let embedded_quorum = !config.in_cluster();
    init_logging();
    keep_request_buffers_in_the_heap();
    return_freed_memory_in_the_background();
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| StartError::DataDir(config.data_dir.clone(), e))?;
    let data_dir =
        std::fs::canonicalize(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone());
    // A data dir that never had an embedded quorum may hold the registry of
    // the standalone mode of earlier releases: its topics are handed to the
    // new quorum, once (tests/integration/upgrade.rs).
    let first_quorum_start = embedded_quorum && !embedded_quorum_exists(&data_dir);
    if embedded_quorum {
        let quorum = start_embedded_quorum(&data_dir, config.quorum_secret.clone())?;
        config.quorum_endpoints = quorum.addr;
        config.quorum_secret = Some(quorum.secret);
        config.embedded_quorum = true;
    }
    let shard_count = if config.shards == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        config.shards
    };
    // The quorum service's view says which topics exist and which
    // partitions this broker holds; the agent fills this copy of it.
    let metadata = Arc::new(MetadataStore::new(config.default_topic_config()));
    let import = match first_quorum_start {
        true => standalone::read(&data_dir)?.map(|registry| LocalRegistry {
            topics: registry.topics.into_values().collect(),
            next_producer_id: registry.next_producer_id_block,
        }),
        false => None,
    };
    let (host, port) = config.advertised_addr()?;
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .map_err(StartError::Signals)?;
    let config = Arc::new(BrokerConfig {
        data_dir: data_dir.clone(),
        ..config
    });
    let (agent_calls_tx, agent_calls) = flume::bounded(AGENT_QUEUE_MAX);
    let shards = start_shards(
        config.clone(),
        metadata.clone(),
        shard_count,
        agent_calls_tx,
    )
    .map_err(StartError::Shards)?;
    let (ready, first_view) = std::sync::mpsc::channel();
    spawn_agent(AgentSetup {
        config: config.clone(),
        metadata: metadata.clone(),
        inboxes: shards.inboxes(),
        calls: agent_calls,
        import,
        ready,
    })
    .map_err(StartError::Agent)?;
    if first_view.recv_timeout(FIRST_VIEW_WAIT).is_ok() {
        // Only a view says what is orphaned: without one, keep everything.
        remove_orphan_partitions(&data_dir, &metadata);
    } else {
        tracing::warn!("no cluster view from the quorum yet: serving without one");
    }
    println!(
        "tidemark: listening on {} (advertised as {host}:{port}), {shard_count} shards, data in {}, {} topics",
        listener_summary(&config)?,
        data_dir.display(),
        metadata.topics().len()
    );
    signals.forever().next();
    println!("tidemark: stopping (flushing and closing logs)");
    shards.shutdown();
    println!("tidemark: stopped");
    Ok(())
}

/// `NAME://HOST:PORT` of each listener, for the start-up line.
fn listener_summary(config: &BrokerConfig) -> Result<String, ConfigError> {
    let listeners = config.listeners()?;
    let each: Vec<String> = listeners
        .all()
        .iter()
        .map(|l| format!("{}://{}", l.name, l.bind))
        .collect();
    Ok(each.join(","))
}

/// Partition directories of topics the registry (or the cluster's view,
/// which it mirrors) no longer has are the remains of a deletion cut short
/// by a crash, as are directories renamed for deletion: remove them. A
/// directory of an earlier topic of the same name is discarded when its
/// partition is opened (`claim_partition_dir`), not here, so this never
/// races a shard that opens it.
fn remove_orphan_partitions(data_dir: &std::path::Path, metadata: &MetadataStore) {
    let owned = |topic: &str, partition: i32| {
        metadata
            .topic(topic)
            .is_some_and(|t| (0..t.partitions).contains(&partition))
    };
    let removed = storage::sweep(data_dir, owned);
    if removed > 0 {
        tracing::info!(removed, "removed the directories of deleted partitions");
    }
}

/// Produce requests of a megabyte or more are read into buffers that glibc
/// would otherwise mmap and munmap one by one: a page fault and a zeroed page
/// per 4 KiB, and a TLB shootdown across cores per free. Keeping them in the
/// heap lets freed buffers be reused (measured in docs/performance.md).
fn keep_request_buffers_in_the_heap() {
    const MMAP_THRESHOLD_BYTES: libc::c_int = 64 << 20;
    const TRIM_THRESHOLD_BYTES: libc::c_int = 256 << 20;
    // SAFETY: mallopt only changes glibc's allocation thresholds.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES);
    }
}

/// Keeping freed buffers in the heap (above) also means that memory freed
/// after a burst (18,000 connections: 476 MB) stays resident for good. So a
/// thread off the shards hands it back with malloc_trim when more than
/// `HELD_FREE_BYTES_MAX` lies free in malloc's arenas, at most every
/// `TRIM_INTERVAL`: under load the heap is reused before it gets that large,
/// and the page faults after a trim cost a few milliseconds per interval.
fn return_freed_memory_in_the_background() {
    const TRIM_INTERVAL: Duration = Duration::from_secs(10);
    const HELD_FREE_BYTES_MAX: usize = 64 << 20;
    let trimmer = std::thread::Builder::new()
        .name("memory-trim".to_string())
        .spawn(|| loop {
            std::thread::sleep(TRIM_INTERVAL);
            // SAFETY: mallinfo2 and malloc_trim only read and trim glibc's
            // own heap; both are thread-safe.
            unsafe {
                if libc::mallinfo2().fordblks > HELD_FREE_BYTES_MAX {
                    libc::malloc_trim(0);
                }
            }
        });
    if let Err(e) = trimmer {
        tracing::warn!(error = %e, "cannot start the memory trimmer: freed memory stays resident");
    }
}

fn init_logging() {
    super::logging::init("info");
}
