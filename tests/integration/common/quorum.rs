//! A quorum service for cluster tests: `tidemark quorum` processes on free
//! loopback ports, started with the documented flags (`--node-id --listen
//! --peers --data-dir`) plus a config file with short timeouts, so that a
//! lost broker or quorum leader is noticed in about a second.
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::free_port;

/// Broker sessions lapse after this long without a heartbeat.
pub const SESSION_TIMEOUT_MS: u64 = 1500;

pub struct QuorumNode {
    pub id: u64,
    pub addr: String,
    pub data_dir: PathBuf,
    /// Everything the node printed (all its runs).
    pub log: PathBuf,
    child: Option<Child>,
}

/// Quorum nodes, killed (SIGKILL) on drop; their logs are printed if the
/// test failed.
pub struct Quorum {
    dir: Option<tempfile::TempDir>,
    config: PathBuf,
    peers: String,
    secret: Option<String>,
    /// `--quorum-tls-config` for `cluster status`, for a TLS quorum.
    status_config: Option<PathBuf>,
    pub nodes: Vec<QuorumNode>,
}

impl Quorum {
    /// `size` nodes without a secret, with the default snapshot threshold.
    pub fn start(size: u64) -> Quorum {
        Quorum::start_with(size, None, None)
    }

    /// `size` nodes sharing `secret`, snapshotting every `snapshot_entries`.
    pub fn start_with(size: u64, secret: Option<&str>, snapshot_entries: Option<u64>) -> Quorum {
        let extra = snapshot_entries
            .map(|entries| format!("\"quorum.snapshot.entries\" = {entries}\n"))
            .unwrap_or_default();
        Quorum::start_configured(size, secret, &extra, None)
    }

    /// `size` nodes whose config file also holds `node_keys` (TOML lines,
    /// such as the `ssl.*` keys of a TLS quorum); `status_config` is the
    /// `--quorum-tls-config` file `cluster status` needs to reach them.
    pub fn start_tls(size: u64, node_keys: &str, status_config: PathBuf) -> Quorum {
        Quorum::start_configured(size, None, node_keys, Some(status_config))
    }

    fn start_configured(
        size: u64,
        secret: Option<&str>,
        extra: &str,
        status_config: Option<PathBuf>,
    ) -> Quorum {
        let dir = tempfile::Builder::new()
            .prefix("tidemark-quorum-")
            .tempdir()
            .expect("temp dir");
        let addrs: Vec<(u64, String)> = (1..=size)
            .map(|id| (id, format!("127.0.0.1:{}", free_port())))
            .collect();
        let peers: Vec<String> = addrs.iter().map(|(id, a)| format!("{id}={a}")).collect();
        let config = dir.path().join("quorum.toml");
        let mut text = format!(
            "\"broker.session.timeout.ms\" = {SESSION_TIMEOUT_MS}\n\
             \"quorum.heartbeat.interval.ms\" = 100\n\
             \"quorum.election.timeout.ms\" = 600\n"
        );
        if let Some(secret) = secret {
            text.push_str(&format!("\"quorum.secret\" = \"{secret}\"\n"));
        }
        text.push_str(extra);
        std::fs::write(&config, text).expect("write quorum config");
        let nodes = addrs
            .iter()
            .map(|(id, addr)| QuorumNode {
                id: *id,
                addr: addr.clone(),
                data_dir: dir.path().join(format!("data-{id}")),
                log: dir.path().join(format!("quorum-{id}.log")),
                child: None,
            })
            .collect();
        let mut quorum = Quorum {
            dir: Some(dir),
            config,
            peers: peers.join(","),
            secret: secret.map(str::to_string),
            status_config,
            nodes,
        };
        for i in 0..quorum.nodes.len() {
            quorum.spawn(i);
        }
        quorum
    }

    /// Starts node `i` (again).
    pub fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        assert!(node.child.is_none(), "quorum node already running");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("open node log");
        let child = Command::new(env!("CARGO_BIN_EXE_tidemark"))
            .arg("quorum")
            .args(["--node-id", &node.id.to_string()])
            .args(["--listen", &node.addr])
            .args(["--peers", &self.peers])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .arg("--config")
            .arg(&self.config)
            .env("TIDEMARK_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn tidemark quorum");
        node.child = Some(child);
    }

    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `host:port,host:port,...` for `--quorum`.
    pub fn endpoints(&self) -> String {
        self.endpoint_list().join(",")
    }

    /// Every node's `host:port`, for a `QuorumClient`.
    pub fn endpoint_list(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    /// The index of the node listening on `addr`.
    pub fn index_of(&self, addr: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.addr == addr)
            .expect("a node of this quorum")
    }

    /// The index of the node that leads, asked with `tidemark cluster status`.
    pub fn leader_index(&self) -> Option<usize> {
        let mut status = Command::new(env!("CARGO_BIN_EXE_tidemark"));
        status
            .args(["cluster", "status", "--json", "--quorum", &self.endpoints()])
            .stdin(Stdio::null());
        if let Some(secret) = &self.secret {
            status.env("TIDEMARK_QUORUM_SECRET", secret);
        }
        if let Some(config) = &self.status_config {
            status.arg("--quorum-tls-config").arg(config);
        }
        let out = status.output().ok()?;
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        // The endpoint that answered the linearizable read as leader.
        status.get("view")?.as_object()?;
        let leader = status.get("leader")?.as_str()?;
        self.nodes.iter().position(|n| n.addr == leader)
    }

    pub fn wait_for_leader(&self, timeout: Duration) -> usize {
        super::wait_until(timeout, "a quorum leader", || self.leader_index())
    }
}

impl Drop for Quorum {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        if std::thread::panicking() {
            for node in &self.nodes {
                let text = std::fs::read_to_string(&node.log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(60)..];
                eprintln!("---- quorum node {} log ----\n{}", node.id, tail.join("\n"));
            }
            if let Some(dir) = self.dir.take() {
                eprintln!("keeping the quorum's files in {}", dir.keep().display());
            }
        }
    }
}
